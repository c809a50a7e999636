"""``sibsim portfolio PORTFOLIO``: a portfolio of deals on aligned paths, against independent deals."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sibsim portfolio PORTFOLIO [--paths N] [--seed S] [--out DIR] [--force]``."""
    from .cli import _positive_int, add_seed_argument
    from .distributed import add_scheduler_argument

    p = subparsers.add_parser("portfolio", help="simulate a portfolio of deals with shared shocks; diversification "
                                                "against independent deals")
    p.add_argument("portfolio", help="portfolio TOML file (docs/scenario.md, Portfolios)")
    p.add_argument("--paths", type=_positive_int, default=10_000, help="Monte Carlo paths (default 10000)")
    add_seed_argument(p)
    p.add_argument("--out", help="also write summary.csv, diversification.csv, paths.csv and a plot here")
    p.add_argument("--force", action="store_true", help="replace a sibsim output of another command or scenario")
    add_scheduler_argument(p, "the deals' blocks")
    p.set_defaults(func=cmd_portfolio)
    return p


def _value(value: float, unit: str, cur: str) -> str:
    from .cli import _format_value

    return _format_value(value, cur if unit == cur else unit)


def cmd_portfolio(args) -> int:
    from . import __version__
    from .output import destination, write_outputs
    from .portfolio import diversification
    from .safetext import csv_safe
    from .scenario_portfolio import load_portfolio

    path = Path(args.portfolio)
    portfolio = load_portfolio(path)
    inputs = [Path(f) for h in portfolio.holdings for f, _ in h.contract.files]
    dest = destination(args.out, "dir", "portfolio", [path], inputs=inputs, force=args.force) if args.out else None
    from .distributed import deal_runner, runner_for

    with runner_for(args.scheduler) as dask:
        runner = None if dask is None else deal_runner(dask)
        table, (together, apart) = diversification(portfolio, args.paths, args.seed, runner=runner)
    summary = together.summary()
    cur = portfolio.currency
    print(f"portfolio: {portfolio.title}; {len(portfolio.holdings)} holdings, {args.paths:,} paths, seed {args.seed}; "
          f"month 0 = {portfolio.start}")
    for h in portfolio.holdings:
        whose = f"{h.investor}'s " if h.investor else "the investors' "
        print(f"  {h.label}: {cur} {h.amount:,.0f} = {h.share:.1%} of {whose}commitment in {h.contract.title} "
              f"(from month {h.offset})")
    print(f"  shared, drawn once per path: {', '.join(portfolio.shared_names) or 'nothing'}")
    print(f"{'metric':<62} {'estimate':>16} {'+/- s.e.':>14}")
    for metric, row in summary.iterrows():
        print(f"{metric:<62} {_value(row['estimate'], row['unit'], cur):>16} {_value(row['std_error'], row['unit'], cur):>14}")
    print("diversification: the same deals with shared shocks and independent of each other (paired paths)")
    units = {"expected_moic": "x", "sd_moic": "x", "probability_of_loss": "probability", "cvar_5pct_result": cur}
    print(f"{'metric':<22} {'shared':>16} {'independent':>16} {'difference':>16} {'+/- s.e.':>14}")
    for metric, row in table.iterrows():
        u = units[metric]
        print(f"{metric:<22} {_value(row['shared'], u, cur):>16} {_value(row['independent'], u, cur):>16} "
              f"{_value(row['difference'], u, cur):>16} {_value(row['difference_std_error'], u, cur):>14}")
    if dest is not None:
        def plot(target):
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(7, 4))
            for res, label, color in ((together, "shared shocks", "#c0392b"), (apart, "independent deals", "grey")):
                ax.hist(res.path_table()["moic"], bins=60, histtype="step", lw=2, color=color, label=label, density=True)
            ax.axvline(1.0, color="black", ls=":", lw=1)
            ax.set(xlabel="portfolio multiple (cash received / capital called)", ylabel="density",
                   title=portfolio.title)
            ax.legend(frameon=False)
            fig.tight_layout()
            fig.savefig(target, dpi=150, format="png")
            plt.close(fig)

        writers = {"summary.csv": lambda p: csv_safe(summary).to_csv(p, float_format="%.12g"),
                   "diversification.csv": lambda p: table.to_csv(p, float_format="%.12g"),
                   "paths.csv": lambda p: csv_safe(together.path_table()).to_csv(p, index_label="path",
                                                                                float_format="%.12g"),
                   "portfolio_moic.png": plot}
        manifest = {"sibsim_version": __version__, "portfolio": str(path.resolve()), "n_paths": args.paths,
                    "seed": args.seed, "shared": list(portfolio.shared_names),
                    "holdings": [{"label": h.label, "amount": h.amount, "share": h.share, "offset_months": h.offset}
                                 for h in portfolio.holdings]}
        write_outputs(Path(args.out), writers, manifest, dest)
        print(f"wrote summary.csv, diversification.csv, paths.csv and portfolio_moic.png to {args.out}/")
    return 0
