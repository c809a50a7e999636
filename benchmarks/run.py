"""Benchmarks (`make bench`): speed of the Colour Kitchen scenario end to end, from one run.

Every case runs in a fresh subprocess so its peak memory (max RSS of the process and of its
largest worker process) is its own. The engine runs 1e5 and 1e6 paths on all cores; the pure-Python
reference simulator and a straightforward count-based numpy engine (benchmarks/count_engine.py)
are timed on small runs in the same invocation and extrapolated linearly in paths (both are
per-path costs). Figures are reported, never checked against pass/fail thresholds.

    python benchmarks/run.py [--paths 100000 1000000] [--reference-paths 200] [--count-paths 2000]
                             [--repeat 1] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCENARIO = ROOT / "scenarios" / "utrecht_colour_kitchen.toml"
NOTES_MARKER = "<!-- notes: kept when the table above is rewritten -->"

CASE = r"""
import json, os, resource, sys, threading, time
import numpy as np


def tree_memory_mib():
    # Memory of this process and all its descendants (workers), MiB, from /proc: the sum of their
    # proportional set sizes (PSS: a page shared by n processes counts 1/n in each), so pages the
    # forked workers share with the main process are counted once; VmRSS where PSS is not available.
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    total += next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
            except (OSError, StopIteration):
                with open(f"/proc/{pid}/status") as f:
                    total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration, ValueError):
            pass
    return total / 1024


peak_total, done = [0.0], threading.Event()


def sample():  # every 20 ms: the sum over processes peaks when every worker is busy
    while not done.is_set():
        peak_total[0] = max(peak_total[0], tree_memory_mib())
        done.wait(0.02)


threading.Thread(target=sample, daemon=True).start()
kind, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from sibsim import load_scenario, simulate
from sibsim.cashflows import settle
from sibsim.metrics import path_metrics
contract = load_scenario(sys.argv[4])
extra = {}
t0 = time.perf_counter()
if kind == "engine":
    simulate(contract, n_paths=n, seed=1, workers=workers)
elif kind == "reference":
    from sibsim.reference import simulate_outcomes_reference
    outcomes = simulate_outcomes_reference(contract, n, seed=1)
    path_metrics(contract, settle(contract, outcomes), outcomes)
elif kind == "count":
    sys.path.insert(0, sys.argv[5])
    from count_engine import simulate_outcomes_counts
    outcomes = simulate_outcomes_counts(contract, n, np.random.default_rng(1))
    path_metrics(contract, settle(contract, outcomes), outcomes)
elif kind == "floor":
    # The engine's random numbers alone: as many uniforms per path as it draws, each through the
    # logarithm of its geometric inversion (a lower bound on any engine sampling the same journeys).
    from sibsim.montecarlo import block_size, simulate_outcomes

    class Counting:
        def __init__(self, rng):
            self.rng, self.draws = rng, 0

        def random(self, size=None, **kw):
            self.draws += int(np.prod(size)) if size is not None else 1
            return self.rng.random(size, **kw)

        def __getattr__(self, name):
            return getattr(self.rng, name)

    probe = Counting(np.random.default_rng(1))
    simulate_outcomes(contract, block_size(contract), probe)
    extra["uniforms_per_path"] = probe.draws / block_size(contract)
    rng, chunk = np.random.default_rng(1), np.empty(1_000_000)
    total = int(extra["uniforms_per_path"] * n)
    t0 = time.perf_counter()
    for a in range(0, total, chunk.size):
        u = chunk[: min(chunk.size, total - a)]
        rng.random(out=u)
        np.negative(u, out=u)
        np.log1p(u, out=u)
elif kind == "irr":
    from sibsim.irr import irr
    from sibsim.montecarlo import simulate_outcomes
    flows = settle(contract, simulate_outcomes(contract, 2000, np.random.default_rng(1))).investor_net
    flows = np.tile(flows, (n // len(flows) + 1, 1))[:n]
    from sibsim.simulation import _single_threaded_blas
    best = float("inf")
    with _single_threaded_blas():  # as in the engine's blocks
        for _ in range(3):  # best of 3: the machine may be shared
            t0 = time.perf_counter()
            irr(flows)
            best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter() - best
seconds = time.perf_counter() - t0
done.set()
usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
cpu_seconds = sum(u.ru_utime + u.ru_stime for u in usage)  # incl. imports: a little above the timed part
to_mib = 1 / 1024  # ru_maxrss is in KiB on Linux
print(json.dumps({"seconds": seconds,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mib,
                  "worker_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mib,
                  "total_peak_mib": peak_total[0], "cpu_seconds": cpu_seconds, **extra}))
"""


def measure(kind: str, n: int, workers: int = 1, repeat: int = 1) -> dict:
    """Best of ``repeat`` fresh subprocesses (peak memory from the same runs)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, "-c", CASE, kind, str(n), str(workers), str(SCENARIO), str(HERE)],
                              capture_output=True, text=True, env=env, check=True)
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    result = min(runs, key=lambda r: r["seconds"])
    result["peak_mib"] = max(r["peak_mib"] for r in runs)
    result["worker_peak_mib"] = max(r["worker_peak_mib"] for r in runs)
    result["total_peak_mib"] = max(r["total_peak_mib"] for r in runs)
    result.update(kind=kind, paths=n, workers=workers, paths_per_s=n / result["seconds"])
    return result


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, "
            f"numpy {numpy.__version__}; load average before the run {load} (1, 5, 15 min)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--reference-paths", type=int, default=200)
    parser.add_argument("--count-paths", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=1, help="best of N for each engine case")
    parser.add_argument("--write", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args(argv)

    cores = os.cpu_count() or 1
    about = machine()
    print(about, flush=True)
    reference = measure("reference", args.reference_paths)
    count = measure("count", args.count_paths)
    single = measure("engine", 20_000, 1, args.repeat)
    runs = [measure("engine", n, cores, args.repeat) for n in args.paths]
    irr_case = measure("irr", 200_000)
    floor = measure("floor", 20_000)

    def row(label, r, note=""):
        return (f"| {label} | {r['paths']:,} | {r['workers']} | {r['seconds']:.2f} | {r['cpu_seconds']:.1f} | "
                f"{r['paths_per_s']:,.0f} | "
                f"{r['peak_mib']:.0f} | {r['worker_peak_mib']:.0f} | {r['total_peak_mib']:.0f} | {note} |")

    lines = [
        f"Machine: {about}.",
        "",
        f"Scenario: {SCENARIO.name} (252 treated + 252 comparison participants, 60 months: term plus tail), "
        "end to end (simulate + settle + IRR + metrics, Results assembled). Seconds are wall time of one "
        "run in a fresh process (best of the repeats); peak RSS: the main process and the largest worker "
        "(getrusage), and the memory of the main process and its workers together (sum of their proportional set "
        "sizes, so pages shared between the forked processes count once; sampled every 20 ms from /proc). "
        "CPU seconds (user + system, main process and workers, including start-up) show the work done "
        "whatever else runs on the machine: on an idle machine the wall time of a run on all cores is "
        "about CPU seconds / cores.",
        "",
        "| case | paths | processes | seconds | CPU seconds (all processes) | paths/s | peak RSS main (MiB) "
        "| peak RSS largest worker (MiB) "
        "| peak memory all processes (PSS, MiB, sampled) | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        row("reference simulator (pure Python)", reference, "extrapolated below"),
        row("count-based numpy engine (binomial per cohort, state and month)", count, "extrapolated below"),
        row("engine, 1 process", single),
    ]
    lines += [row(f"engine, {cores} processes", r) for r in runs]
    lines += ["", "| engine run | x faster than reference (extrapolated) | x faster than count-based engine "
              "(extrapolated) | reference would need (s) | count-based would need (s) |", "|---|---:|---:|---:|---:|"]
    for r in [single] + runs:
        ref_s = r["paths"] / reference["paths_per_s"]
        cnt_s = r["paths"] / count["paths_per_s"]
        lines.append(f"| {r['paths']:,} paths, {r['workers']} process(es) | {ref_s / r['seconds']:,.0f} | "
                     f"{cnt_s / r['seconds']:,.1f} | {ref_s:,.0f} | {cnt_s:,.0f} |")
    lines += ["", f"IRR solver alone (investor flows, {irr_case['paths']:,} paths, 1 process, 1 BLAS thread, "
                  "best of 3): "
                  f"{irr_case['paths_per_s']:,.0f} paths/s."]
    share = (single["paths"] / floor["paths_per_s"]) / single["seconds"]
    lines += ["", f"Random numbers alone ({floor['uniforms_per_path']:,.0f} uniforms per path, as the engine "
                  "draws them, each with the logarithm of its geometric inversion; 1 process): "
                  f"{floor['paths_per_s']:,.0f} paths/s, {share:.0%} of the single-process engine's time; "
                  f"1,000,000 paths need at least {1e6 / floor['paths_per_s'] / cores:.1f} s for them on "
                  f"{cores} cores."]
    table = "\n".join(lines)
    print(table)
    if args.write:
        # Hand-written notes below the marker (e.g. figures before a change) survive a rewrite.
        old = args.write.read_text(encoding="utf-8") if args.write.exists() else ""
        notes = old[old.index(NOTES_MARKER):] if NOTES_MARKER in old else NOTES_MARKER + "\n"
        args.write.write_text("# Benchmark results\n\nWritten by `python benchmarks/run.py --write "
                              "benchmarks/RESULTS.md` (`make bench` prints the same table).\n\n" + table + "\n\n"
                              + notes, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
