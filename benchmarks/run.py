"""Benchmarks (`make bench`): speed of the journey engine, from one run.

Every case runs in a fresh subprocess so its peak memory (max RSS of the process and of its
largest worker process) is its own. Cases:

* Colour Kitchen end to end (simulate + settle + IRR + metrics) on 1 process, and on all cores for
  1e5 and 1e6 paths;
* simulation alone (journeys of both groups, no settlement), Colour Kitchen, 1 process: the compiled
  engine (:mod:`sibsim.engine`) against the numpy engine it replaced (``benchmarks/numpy_engine.py``,
  the hard-coded chain), same paths, same run;
* the random-number floor: the uniforms the engine consumes per path (counted on a probe run) and
  their logarithms drawn alone, in float64 and float32, for the largest run's paths on the same
  cores, and how many times above it the engine is;
* the two largest non-Colour-Kitchen scenarios end to end on 1 process, each against the pure-Python
  reference simulator (:mod:`sibsim.reference`) run on a few paths and extrapolated linearly (a
  per-path cost), as for Colour Kitchen;
* the largest non-employment scenario (Peterborough: 4,000 participants over 96 months, 13 times
  Colour Kitchen's participant-months per path) end to end on all cores, against its own
  random-number floor measured in the same run;
* a 200-design sweep (``sibsim sweep``) on a Dask local cluster against the serial sweep
  (``benchmarks/sweep_dask.py``; needs the ``[distributed]`` extra, which ``make bench`` installs).

Figures are reported as ratios within the run (the machine is shared and noisy), never checked
against pass/fail thresholds.

    python benchmarks/run.py [--paths 100000 1000000] [--reference-paths 100] [--repeat 1]
                             [--write benchmarks/RESULTS.md]
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
#: The largest shipped scenarios besides Colour Kitchen (participants x months x measures).
OTHERS = (ROOT / "scenarios" / "werk_na_detentie.toml", ROOT / "scenarios" / "dwp_innovation_fund.toml")
#: The largest non-employment scenario (reoffending): participant-months per path, both groups.
LARGEST_OTHER = ROOT / "scenarios" / "peterborough.toml"
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


def _draw_uniforms(count, bits, seed):
    # As the engine draws them: chunks of engine.CHUNK uniforms and the logarithm of 1 - u.
    dtype = np.float64 if bits == "64" else np.float32
    rng = np.random.default_rng(seed)
    uni, log_q = np.empty(1 << 16, dtype), np.empty(1 << 16, dtype)
    for _ in range(-(-count // uni.size)):
        rng.random(out=uni, dtype=dtype)
        np.subtract(1.0, uni, out=log_q)
        np.log(log_q, out=log_q)


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
elif kind == "kernel":  # simulation alone: parameters and journeys of both groups
    from sibsim.montecarlo import block_size, simulate_outcomes
    simulate_outcomes(contract, 8, np.random.default_rng(0))  # compile (or load the cache) first
    size = block_size(contract)
    t0 = time.perf_counter()
    for a in range(0, n, size):
        simulate_outcomes(contract, min(size, n - a), np.random.default_rng(a))
elif kind == "numpy_engine":  # the hard-coded chain's numpy engine, the same journeys (Colour Kitchen only)
    sys.path.insert(0, sys.argv[5])
    from numpy_engine import JOURNEY_PROBABILITIES, simulate_group
    from sibsim.engine import draw_parameters
    from sibsim.montecarlo import block_size
    intake = np.array([c.intake_month for c in contract.cohorts])
    sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    size, T = block_size(contract), contract.horizon_months
    for a in range(0, n, size):
        rng = np.random.default_rng(a)
        m = min(size, n - a)
        groups = []
        for journey, L, group_sizes in ((contract.journey, 12, sizes), (contract.comparison.journey, 0,
                                                                         contract.comparison_sizes)):
            drawn = draw_parameters(journey, rng, m)
            q = {k: drawn[:, journey.parameter_names.index(k)] for k in JOURNEY_PROBABILITIES}
            simulate_group(q, L, intake, group_sizes, T, 6, rng)
elif kind in ("floor64", "floor32"):  # the random numbers alone: the engine's uniforms and their logs
    from concurrent.futures import ProcessPoolExecutor
    from sibsim import engine
    from sibsim.montecarlo import simulate_outcomes
    drawn, run_buffered = [0], engine._run_buffered
    def counting(*a, **k):
        used = run_buffered(*a, **k)
        drawn[0] += used
        return used
    engine._run_buffered = counting
    probe = 2_000
    simulate_outcomes(contract, probe, np.random.default_rng(0))
    engine._run_buffered = run_buffered
    per_path = drawn[0] / probe
    extra["uniforms_per_path"] = per_path
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(_draw_uniforms, int(per_path * n / workers), kind[-2:], w) for w in range(workers)]
        for job in jobs:
            job.result()
elif kind == "reference":
    from sibsim.cashflows import settle as settle_cash
    from sibsim.engine import draw_parameters
    from sibsim.montecarlo import GroupOutcomes, Outcomes, split_counts, start_distributions
    from sibsim.reference import simulate_group_reference
    rng = np.random.default_rng(1)
    intake = np.array([c.intake_month for c in contract.cohorts])
    sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    T = contract.horizon_months
    groups = []
    for journey, group_sizes, comparison in ((contract.journey, sizes, False),
                                             (contract.comparison.journey, contract.comparison_sizes, True)):
        params = draw_parameters(journey, rng, n)
        counts = simulate_group_reference(journey, contract.measures, params, intake, group_sizes,
                                          start_distributions(contract, comparison), T, rng)
        groups.append(GroupOutcomes(*split_counts(contract, counts), group_sizes, {}))
    outcomes = Outcomes(*groups)
    path_metrics(contract, settle_cash(contract, outcomes), outcomes)
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


def measure(kind: str, n: int, workers: int = 1, repeat: int = 1, scenario: Path = SCENARIO) -> dict:
    """Best of ``repeat`` fresh subprocesses (peak memory from the same runs)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, "-c", CASE, kind, str(n), str(workers), str(scenario), str(HERE)],
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
    parser.add_argument("--reference-paths", type=int, default=100)
    parser.add_argument("--other-paths", type=int, default=100_000,
                        help="paths of the largest non-employment scenario's run and floor")
    parser.add_argument("--repeat", type=int, default=1, help="best of N for each engine case")
    parser.add_argument("--write", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args(argv)

    cores = os.cpu_count() or 1
    about = machine()
    print(about, flush=True)
    reference = measure("reference", args.reference_paths)
    single = measure("engine", 20_000, 1, args.repeat)
    kernel = measure("kernel", 20_000, 1, args.repeat)
    old = measure("numpy_engine", 20_000, 1, args.repeat)
    runs = [measure("engine", n, cores, args.repeat) for n in args.paths]
    others = [(path, measure("engine", 20_000, 1, args.repeat, path), measure("reference", args.reference_paths,
                                                                               scenario=path))
              for path in OTHERS]
    irr_case = measure("irr", 200_000)
    # The random-number floor for the largest engine run, on the same cores, in both precisions.
    floors = {bits: measure(f"floor{bits}", runs[-1]["paths"], cores, args.repeat) for bits in ("64", "32")}
    largest = measure("engine", args.other_paths, cores, args.repeat, LARGEST_OTHER)
    largest_floor = measure("floor64", args.other_paths, cores, args.repeat, LARGEST_OTHER)

    def row(label, r, note=""):
        return (f"| {label} | {r['paths']:,} | {r['workers']} | {r['seconds']:.2f} | {r['cpu_seconds']:.1f} | "
                f"{r['paths_per_s']:,.0f} | "
                f"{r['peak_mib']:.0f} | {r['worker_peak_mib']:.0f} | {r['total_peak_mib']:.0f} | {note} |")

    lines = [
        f"Machine: {about}.",
        "",
        f"Scenario: {SCENARIO.name} (252 treated + 252 comparison participants, 60 months: term plus tail), "
        "end to end (simulate + settle + IRR + metrics, Results assembled) unless the case says otherwise. "
        "Seconds are wall time of one "
        "run in a fresh process (best of the repeats); peak RSS: the main process and the largest worker "
        "(getrusage), and the memory of the main process and its workers together (sum of their proportional set "
        "sizes, so pages shared between the forked processes count once; sampled every 20 ms from /proc). "
        "CPU seconds (user + system, main process and workers, including start-up and loading the compiled "
        "kernel from numba's cache) show the work done whatever else runs on the machine: on an idle machine "
        "the wall time of a run on all cores is about CPU seconds / cores.",
        "",
        "| case | paths | processes | seconds | CPU seconds (all processes) | paths/s | peak RSS main (MiB) "
        "| peak RSS largest worker (MiB) "
        "| peak memory all processes (PSS, MiB, sampled) | note |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        row("reference simulator (pure Python)", reference, "extrapolated below"),
        row("engine, 1 process", single),
        row("simulation alone: compiled engine", kernel, "both groups' journeys, no settlement"),
        row("simulation alone: numpy engine of the hard-coded chain", old, "benchmarks/numpy_engine.py"),
    ]
    lines += [row(f"engine, {cores} processes", r) for r in runs]
    lines += [row(f"{LARGEST_OTHER.stem}: engine, {cores} processes", largest, "largest non-employment scenario")]
    for path, engine_run, ref_run in others:
        lines += [row(f"{path.stem}: engine, 1 process", engine_run),
                  row(f"{path.stem}: reference simulator", ref_run, "extrapolated below")]
    lines += ["", f"Simulation alone, Colour Kitchen, 1 process: the compiled engine is "
                  f"{kernel['paths_per_s'] / old['paths_per_s']:.2f}x as fast as the numpy engine it replaced "
                  f"({kernel['paths_per_s']:,.0f} against {old['paths_per_s']:,.0f} paths/s, same run)."]
    lines += ["", "| engine run | x faster than the reference simulator (extrapolated) | reference would need (s) |",
              "|---|---:|---:|"]
    for r in [single] + runs:
        ref_s = r["paths"] / reference["paths_per_s"]
        lines.append(f"| {SCENARIO.stem}, {r['paths']:,} paths, {r['workers']} process(es) | "
                     f"{ref_s / r['seconds']:,.0f} | {ref_s:,.0f} |")
    for path, engine_run, ref_run in others:
        ref_s = engine_run["paths"] / ref_run["paths_per_s"]
        lines.append(f"| {path.stem}, {engine_run['paths']:,} paths, 1 process | {ref_s / engine_run['seconds']:,.0f} "
                     f"| {ref_s:,.0f} |")
    lines += ["", f"IRR solver alone (investor flows, {irr_case['paths']:,} paths, 1 process, 1 BLAS thread, "
                  "best of 3): "
                  f"{irr_case['paths_per_s']:,.0f} paths/s."]
    big = runs[-1]
    f64, f32 = floors["64"], floors["32"]
    lines += ["", f"Random-number floor ({big['paths']:,} paths, {cores} processes): the uniforms the engine draws "
                  f"({f64['uniforms_per_path']:,.0f} per path) and their logarithms, nothing else: "
                  f"{f64['seconds']:.2f} s in float64, {f32['seconds']:.2f} s in float32. The engine run "
                  f"({big['seconds']:.2f} s) is {big['seconds'] / f64['seconds']:.1f}x the float64 floor "
                  f"({big['seconds'] / f32['seconds']:.1f}x the float32 floor)."]
    lines += ["", f"Largest non-employment scenario, {LARGEST_OTHER.stem} ({largest['paths']:,} paths, {cores} "
                  f"processes): its floor (the {largest_floor['uniforms_per_path']:,.0f} uniforms per path it draws, "
                  f"and their logarithms, in float64) takes {largest_floor['seconds']:.2f} s; the engine run "
                  f"({largest['seconds']:.2f} s) is {largest['seconds'] / largest_floor['seconds']:.1f}x that floor."]
    # A 200-design sweep, serial against a Dask local cluster on all cores, in one process (sweep_dask.py).
    done = subprocess.run([sys.executable, str(HERE / "sweep_dask.py")], capture_output=True, text=True, cwd=ROOT)
    if done.returncode == 0:
        d = json.loads(done.stdout.strip().splitlines()[-1])
        lines += ["", f"Sweep of {d['designs']} designs ({d['paths']:,} paths each, Colour Kitchen's settlement terms): "
                      f"a Dask local cluster of {d['workers']} workers is {d['speedup']:.2f}x as fast as the serial sweep "
                      f"({d['dask_s']:.1f} s against {d['serial_s']:.1f} s, same run, identical tables; the cluster's "
                      f"start-up, {d['cluster_start_s']:.1f} s, not counted)."]
    else:
        lines += ["", f"Sweep on Dask: not measured ({(done.stderr.strip().splitlines() or ['no output'])[-1]})"]
    table = "\n".join(lines)
    print(table)
    if args.write:
        # Hand-written notes below the marker (e.g. figures before a change) survive a rewrite.
        old_text = args.write.read_text(encoding="utf-8") if args.write.exists() else ""
        notes = old_text[old_text.index(NOTES_MARKER):] if NOTES_MARKER in old_text else NOTES_MARKER + "\n"
        args.write.write_text("# Benchmark results\n\nWritten by `python benchmarks/run.py --write "
                              "benchmarks/RESULTS.md` (`make bench` prints the same table).\n\n" + table + "\n\n"
                              + notes, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
