"""Micro benchmark: the compiled engine's kernel against today's numpy engine, on Colour Kitchen.

Simulation alone (parameters drawn once beforehand, from the scenario's priors, and shared by both
engines), in blocks of the size sibsim uses (1,190 paths for Colour Kitchen), treated group only.
The first call compiles (or loads the numba cache) and is excluded. Both engines are timed in the
same run, alternately, ``--repeat`` times; the best time of each is reported (the machine may be
shared: the best run is the least disturbed one). Figures are printed, never checked.

    python benchmarks/engine_kernel.py [--paths 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    journey, measures = colour_kitchen()
    params = draw_parameters(journey, np.random.default_rng(2015), args.paths)
    starts = np.zeros((len(INTAKE), len(journey.states)))
    starts[:, 0] = 1.0
    old_params = {n: params[:, j] for j, n in enumerate(journey.parameter_names)}
    blocks = [slice(a, min(a + BLOCK, args.paths)) for a in range(0, args.paths, BLOCK)]

    def new() -> None:
        rng = np.random.default_rng(1)
        for b in blocks:
            simulate_group(journey, measures, params[b], INTAKE, SIZES, starts, N_MONTHS, rng)

    def old() -> None:
        rng = np.random.default_rng(1)
        for b in blocks:
            numpy_engine.simulate_group({k: v[b] for k, v in old_params.items()}, 12, INTAKE, SIZES, N_MONTHS, 6, rng)

    t = time.perf_counter()
    simulate_group(journey, measures, params[:2], INTAKE, SIZES, starts, N_MONTHS, np.random.default_rng(0))
    first = time.perf_counter() - t
    best = {"new": np.inf, "old": np.inf}
    for _ in range(args.repeat):
        for name, run in (("new", new), ("old", old)):
            t = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t)
    rate = {k: args.paths / v for k, v in best.items()}
    print(f"Colour Kitchen, treated group, {args.paths} paths in blocks of {BLOCK}, best of {args.repeat}")
    print(f"  first call (compile or cache load): {first:.2f} s")
    print(f"  compiled engine (sibsim.engine):   {rate['new']:>10,.0f} paths/s  ({1e6 / rate['new']:.1f} us/path)")
    print(f"  numpy engine (numpy_engine.py):    {rate['old']:>10,.0f} paths/s  ({1e6 / rate['old']:.1f} us/path)")
    print(f"  ratio new / old: {rate['new'] / rate['old']:.2f}x")


if __name__ == "__main__":
    main()
