"""``sibsim discover SCENARIO``: PRIM boxes of the uncertain inputs leading to a loss or an overpayment."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    from .cli import _positive_int, add_seed_argument
    from .discovery import TARGETS

    p = subparsers.add_parser("discover", help="scenario discovery: which uncertain inputs lead to an investor loss "
                                               "or the payer overpaying (PRIM boxes)")
    p.add_argument("scenario", help="scenario TOML file")
    p.add_argument("--target", choices=sorted(TARGETS), default="loss",
                   help="loss: investors lose money; overpay: the payer pays more than it saves (default loss)")
    p.add_argument("--paths", type=_positive_int, default=10_000, help="Monte Carlo paths (default 10000)")
    add_seed_argument(p)
    p.add_argument("--boxes", type=_positive_int, default=3, help="boxes to find in turn (default 3)")
    p.add_argument("--out", help="also write boxes.csv and inputs.csv (what each path drew) here")
    p.add_argument("--force", action="store_true", help="replace a sibsim output of another command or scenario")
    p.set_defaults(func=cmd_discover)
    return p


def cmd_discover(args) -> int:
    from . import __version__
    from .discovery import TARGETS, boxes_table, cases, discover, input_columns, sampled
    from .output import destination, write_outputs
    from .safetext import csv_safe
    from .scenario import load_scenario

    scenario = Path(args.scenario)
    contract = load_scenario(scenario)
    dest = destination(args.out, "dir", "discover", [scenario], force=args.force) if args.out else None
    data = sampled(contract, args.paths, args.seed)
    boxes, facts = discover(contract, target=args.target, max_boxes=args.boxes, data=data)
    units = input_columns(contract)
    print(f"discover: {contract.title}; {args.paths:,} paths, seed {args.seed}; cases: {TARGETS[args.target]}, "
          f"{facts['base_rate']:.1%} of paths")
    print(f"inputs: {', '.join(f'{n} ({u})' for n, u in units.items())}")
    print("PRIM fitted on even paths; density, share of paths and coverage measured on the odd ones:")
    table = boxes_table(boxes, units)
    if table.empty:
        print("no box found: the cases are too few, or no combination of inputs concentrates them")
    for _, row in table.iterrows():
        print(f"  box {row['box']}: {row['rule']}: {row['density']:.0%} (s.e. {row['density_se']:.1%}) of its paths, "
              f"against {facts['held_out_base_rate']:.0%} overall; {row['mass']:.0%} of paths, "
              f"{row['coverage']:.0%} of the cases (fitted: {row['fitted_density']:.0%})")
    if dest is not None:
        inputs, paths = data
        frame = inputs.assign(case=cases(paths, args.target))
        manifest = {"sibsim_version": __version__, "scenario": str(scenario.resolve()), "n_paths": args.paths,
                    "seed": args.seed, "target": args.target, "base_rate": facts["base_rate"]}
        write_outputs(Path(args.out), {"boxes.csv": lambda p: csv_safe(table).to_csv(p, index=False, float_format="%.12g"),
                                       "inputs.csv": lambda p: frame.to_csv(p, index_label="path", float_format="%.12g")},
                      manifest, dest)
        print(f"wrote boxes.csv and inputs.csv to {args.out}/")
    return 0
