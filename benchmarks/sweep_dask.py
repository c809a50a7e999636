"""Benchmark: a 200-design sweep of Colour Kitchen, serial against a Dask local cluster (same run).

The grid: 10 diploma prices x 10 sustained-job prices x 2 payment caps (settlement-only variants, so
each block simulates the outcomes once and settles 200 contracts). Both runs use the same seed; the
tables must be equal (checked here) and the figure is the ratio of wall times, measured in one process
one after the other (the machine is shared and noisy: a ratio, not seconds, is the result). The local
cluster's start-up and each worker's loading of the compiled kernels are not counted in the sweep.

    python benchmarks/sweep_dask.py [--paths 4000]   # prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "utrecht_colour_kitchen.toml"
GRID = ("payer.rate_card.diploma=1000:3700:10", "payer.rate_card.job_sustained=4000:8500:10",
        "payer.payment_cap=900000,1000000")


def main(argv=None) -> int:
    from sibsim.distributed import DaskRunner, block_runner
    from sibsim.sweep import parse_axis, sweep

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=4000)
    args = parser.parse_args(argv)
    axes = [parse_axis(g) for g in GRID]
    sweep(SCENARIO, axes[:1], 200, seed=1)  # compile and load the kernels before timing
    t0 = time.perf_counter()
    serial, _ = sweep(SCENARIO, axes, args.paths, seed=2015)
    t_serial = time.perf_counter() - t0
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    with DaskRunner("local", workers) as dask:
        t_start = time.perf_counter() - t0
        runner = block_runner(dask)
        dask.on_every_worker(sweep, SCENARIO, axes[:1], 200, 1)  # every worker loads the kernels
        t0 = time.perf_counter()
        parallel, _ = sweep(SCENARIO, axes, args.paths, seed=2015, runner=runner)
        t_dask = time.perf_counter() - t0
    cols = [c for c in serial.columns if c != "problem"]
    same = bool(serial[cols].equals(parallel[cols]))
    print(json.dumps({"designs": len(serial), "paths": args.paths, "workers": workers, "serial_s": t_serial,
                      "dask_s": t_dask, "cluster_start_s": t_start, "speedup": t_serial / t_dask,
                      "identical": same}))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
