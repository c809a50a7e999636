"""Micro benchmark: the compiled engine's kernels against today's numpy engine, on Colour Kitchen.

Simulation alone (parameters drawn once beforehand, from the scenario's priors, and shared by the
engines), in blocks of the size sibsim uses (1,190 paths for Colour Kitchen), treated group only:
the kernel generated for the machine (``kernel="specialised"``, sibsim.engine_codegen), the generic
kernel, and the numpy engine. The first calls compile (or load the numba cache) and are excluded.
The three are timed in the same run, in turn, ``--repeat`` times; the best time of each is reported
(the machine may be shared: the best run is the least disturbed one). Figures are printed, never
checked.

``--compile`` instead times, for each scenario in scenarios/, the first compilation of the
specialised kernels its simulation uses (treated and simulated comparison group), each in a fresh
process on an empty kernel cache, then the load from that cache in another fresh process.

    python benchmarks/engine_kernel.py [--paths 20000] [--repeat 3]
    python benchmarks/engine_kernel.py --compile
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy_engine  # noqa: E402

from sibsim import load_scenario  # noqa: E402
from sibsim.engine import draw_parameters, simulate_group  # noqa: E402
from sibsim.montecarlo import block_size, start_distributions  # noqa: E402

#: The shipped scenario: the journey, its measures, cohorts and horizon come from the file itself.
SCENARIO = HERE.parent / "scenarios" / "utrecht_colour_kitchen.toml"


def compile_times() -> None:
    """First compilation and cache load of each scenario's specialised kernels (fresh processes)."""
    for toml in sorted((HERE.parent / "scenarios").glob("*.toml")):
        with tempfile.TemporaryDirectory() as cache:
            env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
            env["XDG_CACHE_HOME"] = cache  # an empty kernel cache: the first run compiles
            runs = []
            for _ in range(2):
                out = subprocess.run([sys.executable, __file__, "--compile-one", str(toml)], env=env,
                                     capture_output=True, text=True, check=True)
                runs.append(out.stdout.strip())
            print(f"{toml.stem:<36} first: {runs[0]:<34} cached: {runs[1]}")


def compile_one(toml: str) -> None:
    """Time the specialised kernels of one scenario: the groups sibsim simulates, one path each."""
    from sibsim import load_scenario
    from sibsim.montecarlo import draw_group_parameters, start_distributions

    contract = load_scenario(toml)
    intake = np.array([c.intake_month for c in contract.cohorts], dtype=np.int64)
    sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    T = contract.horizon_months
    treated, comparison = draw_group_parameters(contract, np.random.default_rng(0), 1)
    groups = [(contract.journey, treated, sizes, start_distributions(contract))]
    if contract.comparison.method != "expected":
        groups.append((contract.comparison.journey, comparison, contract.comparison_sizes,
                       start_distributions(contract, comparison=True)))
    for kernel in ("generic", "specialised"):  # the generic one's cache load is not counted
        t = time.perf_counter()
        for journey, params, n, starts in groups:
            simulate_group(journey, contract.measures, params, intake, n, starts, T, np.random.default_rng(0),
                           kernel=kernel)
        elapsed = time.perf_counter() - t
    print(f"{elapsed:5.2f} s ({len(groups)} group{'s' if len(groups) > 1 else ''})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="first compile times per scenario instead")
    ap.add_argument("--compile-one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.compile:
        return compile_times()
    if args.compile_one:
        return compile_one(args.compile_one)
    contract = load_scenario(SCENARIO)  # treated group: 12 cohorts of 21, 60 months (term and tail)
    journey, measures = contract.journey, contract.measures
    intake = np.array([c.intake_month for c in contract.cohorts])
    sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    n_months, block = contract.horizon_months, block_size(contract)
    params = draw_parameters(journey, np.random.default_rng(2015), args.paths)
    starts = start_distributions(contract)
    old_params = {n: params[:, j] for j, n in enumerate(journey.parameter_names)}
    blocks = [slice(a, min(a + block, args.paths)) for a in range(0, args.paths, block)]

    def new(kernel: str) -> None:
        rng = np.random.default_rng(1)
        for b in blocks:
            simulate_group(journey, measures, params[b], intake, sizes, starts, n_months, rng, kernel=kernel)

    def old() -> None:
        rng = np.random.default_rng(1)
        for b in blocks:
            numpy_engine.simulate_group({k: v[b] for k, v in old_params.items()}, 12, intake, sizes, n_months, 6, rng)

    first = {}
    for kernel in ("generic", "specialised"):
        t = time.perf_counter()
        simulate_group(journey, measures, params[:2], intake, sizes, starts, n_months, np.random.default_rng(0),
                       kernel=kernel)
        first[kernel] = time.perf_counter() - t
    runs = {"specialised": lambda: new("specialised"), "generic": lambda: new("generic"), "old": old}
    best = dict.fromkeys(runs, np.inf)
    for _ in range(args.repeat):
        for name, run in runs.items():
            t = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t)
    rate = {k: args.paths / v for k, v in best.items()}
    print(f"Colour Kitchen, treated group, {args.paths} paths in blocks of {block}, best of {args.repeat}")
    print(f"  first call (compile or cache load): generic {first['generic']:.2f} s, "
          f"specialised {first['specialised']:.2f} s")
    for name, label in (("specialised", "specialised kernel (default)"), ("generic", "generic kernel"),
                        ("old", "numpy engine (numpy_engine.py)")):
        print(f"  {label:<32} {rate[name]:>10,.0f} paths/s  ({1e6 / rate[name]:.1f} us/path)  "
              f"{rate[name] / rate['old']:.2f}x the numpy engine")


if __name__ == "__main__":
    main()
