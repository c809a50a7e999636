"""Benchmarks (`make bench`): speed of the Colour Kitchen scenario end to end, from one run.

Every case runs in a fresh subprocess so its peak memory (max RSS of the process and of its
worker processes) is its own. Figures are reported as ratios against references measured in
the same run (the pure-Python reference simulator; the engine on one process), never as
absolute pass/fail thresholds.

    python benchmarks/run.py [--paths 100000] [--reference-paths 20] [--write benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "utrecht_colour_kitchen.toml"

CASE = r"""
import json, resource, sys, time
import numpy as np
kind, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from sibsim import load_scenario, simulate
contract = load_scenario(sys.argv[4])
t0 = time.perf_counter()
if kind == "engine":
    simulate(contract, n_paths=n, seed=1, workers=workers)
elif kind == "reference":
    from sibsim.cashflows import settle
    from sibsim.metrics import path_metrics
    from sibsim.reference import simulate_outcomes_reference
    outcomes = simulate_outcomes_reference(contract, n, seed=1)
    path_metrics(contract, settle(contract, outcomes), outcomes)
elif kind == "irr":
    from sibsim.irr import irr
    from sibsim.cashflows import settle
    from sibsim.montecarlo import simulate_outcomes
    flows = settle(contract, simulate_outcomes(contract, 2000, np.random.default_rng(1))).investor_net
    flows = np.tile(flows, (n // len(flows) + 1, 1))[:n]
    t0 = time.perf_counter()
    irr(flows)
seconds = time.perf_counter() - t0
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"seconds": seconds, "peak_mib": peak / 1024}))
"""


def measure(kind: str, n: int, workers: int = 1) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", CASE, kind, str(n), str(workers), str(SCENARIO)],
                          capture_output=True, text=True, env=env, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(kind=kind, paths=n, workers=workers, paths_per_s=n / result["seconds"])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=100_000)
    parser.add_argument("--reference-paths", type=int, default=20)
    parser.add_argument("--write", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args(argv)

    cores = os.cpu_count() or 1
    rows = [
        ("reference simulator (pure Python), 1 process", measure("reference", args.reference_paths)),
        ("engine, 1 process", measure("engine", min(args.paths, 20_000), 1)),
        (f"engine, {cores} processes", measure("engine", args.paths, cores)),
        ("IRR solver alone (investor flows)", measure("irr", 200_000)),
    ]
    reference = rows[0][1]["paths_per_s"]
    lines = [
        f"Machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}; "
        f"scenario: {SCENARIO.name} (252 participants + 252 comparison, {60} months), end to end "
        "(simulate + settle + IRR + metrics).",
        "",
        "| case | paths | seconds | paths/s | x reference | peak RSS (MiB, largest process) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in rows:
        ratio = "" if r["kind"] == "irr" else f"{r['paths_per_s'] / reference:,.0f}"
        lines.append(f"| {label} | {r['paths']:,} | {r['seconds']:.2f} | {r['paths_per_s']:,.0f} | {ratio} | "
                     f"{r['peak_mib']:.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        args.write.write_text("# Benchmark results\n\n" + table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
