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

from sibsim.engine import draw_parameters, simulate_group  # noqa: E402
from sibsim.journey import Branch, CostItem, Exit, Journey, Outcome, Prior, State  # noqa: E402

JOBS = ("job", "job_with_diploma", "long_term_job", "long_term_job_with_diploma")
BENEFITS = ("training", "job_search", "job_search_with_diploma", "relapsed", "relapsed_with_diploma")
#: Colour Kitchen's priors (scenarios/utrecht_colour_kitchen.toml), in the old engine's order.
PRIORS = {"diploma": (0.105, 0.03), "dropout": (0.012, 0.005), "job_with_diploma": (0.04, 0.012),
          "job_without_diploma": (0.025, 0.008), "relapse": (0.035, 0.01), "relapse_long_term": (0.01, 0.004),
          "long_term_contract": (0.49, 0.1)}
INTAKE = np.arange(0, 24, 2)
SIZES = np.full(12, 21, dtype=np.int64)
N_MONTHS = 60  # 48-month term plus the 12-month tail
BLOCK = 1190   # sibsim.montecarlo.block_size for Colour Kitchen


def colour_kitchen() -> tuple[Journey, tuple[Outcome, ...]]:
    """The scenario's journey and its measures (4 outcomes, 2 cost occupancies), as dataclasses."""
    states = (
        State("training", exits=(Exit("job_search_with_diploma", "diploma", "diploma"), Exit("job_search", "dropout")),
              exits_in_order=True, time_limit=12, after_limit="job_search"),
        State("job_search", exits=(Exit("job", "job_without_diploma"),), timing="start"),
        State("job_search_with_diploma", exits=(Exit("job_with_diploma", "job_with_diploma"),), timing="start"),
        State("job", exits=(Exit("relapsed", "relapse"),)),
        State("job_with_diploma", exits=(Exit("relapsed_with_diploma", "relapse"),)),
        State("long_term_job", exits=(Exit("relapsed", "relapse_long_term"),)),
        State("long_term_job_with_diploma", exits=(Exit("relapsed_with_diploma", "relapse_long_term"),)),
        State("relapsed", time_limit=1, after_limit="job_search"),
        State("relapsed_with_diploma", time_limit=1, after_limit="job_search_with_diploma"),
    )
    branches = (Branch(("job", "long_term_job"), 6, "long_term_job", "long_term_contract"),
                Branch(("job_with_diploma", "long_term_job_with_diploma"), 6, "long_term_job_with_diploma",
                       "long_term_contract"))
    journey = Journey(states, (("training", 1.0),), branches,
                      tuple((n, Prior(m, sd)) for n, (m, sd) in PRIORS.items()))
    measures = (Outcome("diploma", "event", event="diploma"),
                Outcome("job_start", "entry", states=JOBS),
                Outcome("job_sustained", "milestone", states=JOBS, months=6),
                Outcome("long_term_contract", "entry", states=("long_term_job", "long_term_job_with_diploma")),
                CostItem("bijstand", (), states=BENEFITS).as_outcome(),
                CostItem("top-up benefit in work", (), states=JOBS).as_outcome())
    return journey, measures


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
    journey, measures = colour_kitchen()
    params = draw_parameters(journey, np.random.default_rng(2015), args.paths)
    starts = np.zeros((len(INTAKE), len(journey.states)))
    starts[:, 0] = 1.0
    old_params = {n: params[:, j] for j, n in enumerate(journey.parameter_names)}
    blocks = [slice(a, min(a + BLOCK, args.paths)) for a in range(0, args.paths, BLOCK)]

    def new(kernel: str) -> None:
        rng = np.random.default_rng(1)
        for b in blocks:
            simulate_group(journey, measures, params[b], INTAKE, SIZES, starts, N_MONTHS, rng, kernel=kernel)

    def old() -> None:
        rng = np.random.default_rng(1)
        for b in blocks:
            numpy_engine.simulate_group({k: v[b] for k, v in old_params.items()}, 12, INTAKE, SIZES, N_MONTHS, 6, rng)

    first = {}
    for kernel in ("generic", "specialised"):
        t = time.perf_counter()
        simulate_group(journey, measures, params[:2], INTAKE, SIZES, starts, N_MONTHS, np.random.default_rng(0),
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
    print(f"Colour Kitchen, treated group, {args.paths} paths in blocks of {BLOCK}, best of {args.repeat}")
    print(f"  first call (compile or cache load): generic {first['generic']:.2f} s, "
          f"specialised {first['specialised']:.2f} s")
    for name, label in (("specialised", "specialised kernel (default)"), ("generic", "generic kernel"),
                        ("old", "numpy engine (numpy_engine.py)")):
        print(f"  {label:<32} {rate[name]:>10,.0f} paths/s  ({1e6 / rate[name]:.1f} us/path)  "
              f"{rate[name] / rate['old']:.2f}x the numpy engine")


if __name__ == "__main__":
    main()
