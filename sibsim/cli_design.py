"""``sibsim sweep`` (a grid of any scenario fields) and ``sibsim design`` (outcome pricing under constraints)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _blocks(dask):
    """The sweep's runner on a Dask cluster (None: in this process)."""
    if dask is None:
        return None
    from .distributed import block_runner

    return block_runner(dask)


def add_parsers(subparsers) -> None:
    from .cli import _positive_int, add_seed_argument
    from .distributed import add_scheduler_argument
    from .design import DEFAULT_CONSTRAINTS, DEFAULT_OBJECTIVE

    def common(p, default_paths):
        p.add_argument("scenario", help="scenario TOML file")
        p.add_argument("--paths", type=_positive_int, default=default_paths,
                       help=f"Monte Carlo paths per candidate (default {default_paths})")
        add_seed_argument(p)
        p.add_argument("--out", help="write the table, a plot and run.json here")
        p.add_argument("--force", action="store_true", help="replace a sibsim output of another command or scenario")
        add_scheduler_argument(p)

    sw = subparsers.add_parser("sweep", help="simulate a grid of scenario field values on common random numbers")
    common(sw, 2000)
    sw.add_argument("--grid", action="append", required=True, metavar="FIELD=V1,V2|LO:HI:N",
                    help="a field and its values, e.g. payer.rate_card.diploma=1500,2000,2500 or "
                         "payer.payment_cap=800000:1200000:5 (repeatable: every combination)")
    sw.set_defaults(func=cmd_sweep)

    de = subparsers.add_parser("design", help="search contract terms meeting investor and payer constraints")
    common(de, 2000)
    de.add_argument("--search", action="append", required=True, metavar="FIELD=V1,V2|LO:HI:N",
                    help="a term to search and its candidates (repeatable: every combination)")
    de.add_argument("--constraint", action="append", metavar="METRIC<=BOUND",
                    help=f"repeatable; default: {' '.join(DEFAULT_CONSTRAINTS)}")
    de.add_argument("--objective", default=DEFAULT_OBJECTIVE, help=f"max:METRIC or min:METRIC (default {DEFAULT_OBJECTIVE})")
    de.set_defaults(func=cmd_design)


def _print_table(table, axes, columns) -> None:
    from .cli import _format_value

    units = {"expected_moic": "x", "expected_irr": "per year", "median_irr": "per year",
             "probability_of_loss": "probability", "expected_outcome_payments": "EUR",
             "expected_net_savings": "EUR", "probability_pays_more_than_saves": "probability"}
    head = [a.field for a in axes] + list(columns)
    print(" | ".join(f"{h:>22}" for h in head))
    for _, row in table.iterrows():
        cells = [f"{row[a.field]:>22}" for a in axes]
        if not row["valid"]:
            print(" | ".join(cells) + f" | refused: {row['problem']}")
            continue
        for c in columns:
            v = row[c]
            cells.append(f"{(_format_value(v, units[c]) if c in units else str(v)):>22}")
        print(" | ".join(cells))


def cmd_sweep(args) -> int:
    from . import __version__
    from .output import destination, write_outputs
    from .safetext import csv_safe
    from .scenario import load_scenario
    from .sweep import parse_axis, sweep

    scenario = Path(args.scenario)
    base = load_scenario(scenario)  # the base must load before any variant is tried
    axes = [parse_axis(t, "--grid") for t in args.grid]
    dest = destination(args.out, "dir", "sweep", [scenario], force=args.force) if args.out else None
    from .distributed import runner_for

    with runner_for(args.scheduler) as dask:
        table, _ = sweep(scenario, axes, args.paths, args.seed, _blocks(dask))
    print(f"sweep: {base.title}; {len(table)} variants, {args.paths:,} paths each, seed {args.seed}; "
          f"common random numbers (settlement-only variants share one simulation per block)")
    _print_table(table, axes, ("expected_moic", "expected_irr", "probability_of_loss", "expected_net_savings",
                               "probability_pays_more_than_saves"))
    if dest is not None:
        manifest = {"sibsim_version": __version__, "scenario": str(scenario.resolve()), "n_paths": args.paths,
                    "seed": args.seed, "grid": [{"field": a.field, "values": list(a.values)} for a in axes]}
        write_outputs(Path(args.out), {"sweep.csv": lambda p: csv_safe(table).to_csv(p, index=False,
                                                                                    float_format="%.12g")},
                      manifest, dest)
        print(f"wrote sweep.csv to {args.out}/")
    return 0


def cmd_design(args) -> int:
    from . import __version__
    from .design import (DEFAULT_CONSTRAINTS, chosen_scenario_text, design, frontier_figure, parse_constraint,
                         parse_objective, reads_back)
    from .errors import ScenarioError
    from .output import destination, write_outputs
    from .safetext import csv_safe
    from .scenario import load_scenario
    from .sweep import parse_axis

    scenario = Path(args.scenario)
    base = load_scenario(scenario)
    axes = [parse_axis(t, "--search") for t in args.search]
    constraints = [parse_constraint(t) for t in (args.constraint or DEFAULT_CONSTRAINTS)]
    objective = parse_objective(args.objective)
    dest = destination(args.out, "dir", "design", [scenario], force=args.force) if args.out else None
    from .distributed import runner_for

    with runner_for(args.scheduler) as dask:
        result = design(scenario, axes, constraints, objective, args.paths, args.seed, _blocks(dask))
    t = result.table
    print(f"design: {base.title}; {len(t)} candidates, {args.paths:,} paths each, seed {args.seed}, common random numbers")
    print(f"constraints: {'; '.join(map(str, constraints))}; objective: {args.objective}")
    _print_table(t, axes, ("expected_irr", "probability_of_loss", "probability_pays_more_than_saves",
                           "expected_net_savings", "feasible"))
    text = None
    if result.chosen is None:
        print("no candidate meets every constraint: widen the search, or relax a constraint")
    else:
        row = t.loc[result.chosen]
        print("chosen: " + ", ".join(f"{a.field} = {row[a.field]}" for a in axes)
              + "; margins (s.e.): " + ", ".join(f"{c.metric} {row[f'margin in s.e.: {c}']:.1f}" for c in constraints))
        text = chosen_scenario_text(scenario, result)
        # The written file must read back to the chosen contract (checked before anything is written).
        if not reads_back(text, result):
            raise ScenarioError(f"{scenario}: design: the chosen scenario does not read back to the chosen terms")
    if dest is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        def plot(target):
            fig = frontier_figure(result, base.title, base.currency)
            fig.savefig(target, dpi=150, format="png")
            plt.close(fig)

        writers = {"design.csv": lambda p: csv_safe(t).to_csv(p, index=False, float_format="%.12g"),
                   "frontier.png": plot}
        if text is not None:
            writers["design.toml"] = lambda p: Path(p).write_text(text, encoding="utf-8")
        manifest = {"sibsim_version": __version__, "scenario": str(scenario.resolve()), "n_paths": args.paths,
                    "seed": args.seed, "search": [{"field": a.field, "values": list(a.values)} for a in axes],
                    "constraints": [str(c) for c in constraints], "objective": args.objective,
                    "chosen": result.chosen_values or None}
        write_outputs(Path(args.out), writers, manifest, dest)
        print(f"wrote design.csv, frontier.png{', design.toml' if text else ''} to {args.out}/")
    return 0 if result.chosen is not None else 1
