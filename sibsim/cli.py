"""Command line: ``sibsim run``, ``sibsim settle``, ``sibsim validate``.

Errors in input files are printed as ``file: field: rule`` lines (exit code 2),
never as tracebacks.  Every command that simulates takes ``--seed`` with one default,
:data:`DEFAULT_SEED`, and prints the seed it used.  Amounts are printed with the
scenario's currency.
"""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .errors import InsufficientMemoryError, OutputError, ScenarioError
from .metrics import PER_PARTICIPANT, PERCENT_UNITS
from .safetext import csv_safe
from .scenario import load_scenario
from .simulation import DEFAULT_SEED  # the seed of every command unless --seed is given

EXIT_INPUT = 2


def _format_value(value: float, unit: str) -> str:
    """A summary value as text; money (any unit not in metrics.NON_MONEY_UNITS is a currency) as ``GBP 1,234``."""
    if value != value:  # NaN
        return "n/a"
    if unit in PERCENT_UNITS:
        return f"{value:.2%}"
    if unit == "x":
        return f"{value:.3f}"
    if unit == PER_PARTICIPANT:
        return f"{value:,.3f}"
    return f"{unit} {value:,.0f}"


def format_summary(summary) -> str:
    """The summary as an aligned text table: estimate, Monte Carlo standard error, unit, and the note
    (which discount rate an NPV used, whether savings include the tail) where there is one."""
    lines = [f"{'metric':<44} {'estimate':>16} {'+/- s.e.':>14}  unit"]
    party = None
    for metric, row in summary.iterrows():
        if row["party"] != party:
            party = row["party"]
            lines.append(f"-- {party}")
        est = _format_value(row["estimate"], row["unit"])
        se = _format_value(row["std_error"], row["unit"])
        note = row.get("note", "") or ""
        lines.append(f"{metric:<44} {est:>16} {se:>14}  {row['unit']}" + (f"  ({note})" if note else ""))
    return "\n".join(lines)


def add_seed_argument(parser: argparse.ArgumentParser) -> None:
    """``--seed S``, the same for every command: default :data:`DEFAULT_SEED`, shown in ``--help``."""
    parser.add_argument("--seed", type=_seed, default=DEFAULT_SEED,
                        help=f"seed (default {DEFAULT_SEED}); same seed and paths, same numbers")


class _Progress:
    """A one-line progress bar on stderr (the caller draws it only when stderr is a terminal).

    Shows paths done, the rate in paths/s and the time left at that rate.
    """

    def __init__(self, stream=None, clock=time.perf_counter):
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.start = clock()

    def __call__(self, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total)
        elapsed = self.clock() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = f"{_duration((total - done) / rate)} left" if rate > 0 and done < total else "done"
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} paths "
                          f"{rate:,.0f} paths/s {_duration(elapsed)} elapsed, {left}\x1b[K")
        if done == total:
            self.stream.write("\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``: the precision a person waiting needs."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def _progress(args):
    """A progress bar when stderr is a terminal and the command is not quiet, else None."""
    return _Progress() if sys.stderr.isatty() and not getattr(args, "quiet", False) else None


def _need_openpyxl() -> None:
    """Refuse ``--excel`` before simulating when the optional extra is missing."""
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise OutputError("--excel: needs the optional extra; pip install 'sibsim[excel]' "
                          "or leave out --excel") from None


def _writers(results, plots: bool, svg: bool = False):
    from .metrics import GUARANTOR_PAID, PATH_COLUMNS, PAYER_PAID, npv_notes

    columns = dict(PATH_COLUMNS)
    for name, note in npv_notes(results.contract).items():  # the rates this run used
        columns[name] += f"; this run: {note}"
    for name in results.paths.columns:  # one column per guarantor (and per payer, with several)
        if name.startswith(GUARANTOR_PAID):
            columns[name] = f"what {name[len(GUARANTOR_PAID):]} paid out as guarantor, less what it recouped, money"
        elif name.startswith(PAYER_PAID):
            columns[name] = f"outcome payments made by {name[len(PAYER_PAID):]}, net of what it kept, money"

    def csv(frame, **kw):  # text columns (e.g. the currency from the scenario) stay text in a spreadsheet
        return lambda path: csv_safe(frame).to_csv(path, **kw)

    writers = {
        "summary.csv": csv(results.summary()),
        "paths.csv": csv(results.paths, index_label="path"),
        "cashflows.csv": csv(results.cashflow_quantiles(), index=False),
        "expected_ledgers.csv": csv(results.expected_ledgers),
        "convergence.csv": csv(results.convergence(), index=False),
        "budget.csv": csv(results.budget(), index=False),
        "paths_columns.txt": lambda p: p.write_text(
            "".join(f"{k}: {v}\n" for k, v in columns.items()), encoding="utf-8"),
    }
    if plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        def figure(plot, tight, fmt):
            def write(path):
                fig = plot()
                if tight:  # a figure with a legend below its panels lays itself out
                    fig.tight_layout()
                fig.savefig(path, dpi=150, format=fmt)  # 150 dpi PNG; SVG is vector
                plt.close(fig)
            return write

        figures = {  # name: (draw, lay out tightly)
            "irr_distribution": (lambda: results.plot_irr(), True),
            "cash_fan_investors": (lambda: results.plot_cash_fan(party="investors"), True),
            "cash_fan_payer": (lambda: results.plot_cash_fan(party="payer"), True),
            "outflow": (lambda: results.plot_outflow(), True),
            "net_savings": (lambda: results.plot_net_savings(), True),
            "convergence": (lambda: results.plot_convergence(), True),
            "budget": (lambda: results.plot_budget(), False),
        }
        for name, (plot, tight) in figures.items():
            writers[f"{name}.png"] = figure(plot, tight, "png")
            if svg:
                writers[f"{name}.svg"] = figure(plot, tight, "svg")
    return writers


def load_with_changes(path, args):
    """The scenario at ``path`` with the command line's ``--set`` and ``--scale`` changes (:mod:`sibsim.whatif`)."""
    from .whatif import load_whatif

    return load_whatif(path, getattr(args, "set", None) or (), getattr(args, "scale", None) or ())


def add_whatif_arguments(parser) -> None:
    """``--set FIELD=VALUE`` and ``--scale PARAMETER=FACTOR``, each repeatable."""
    parser.add_argument("--set", action="append", metavar="FIELD=VALUE",
                        help="change a scenario field before it is checked, e.g. --set payer.rate_card.diploma=2500 "
                             "(a TOML value; repeatable)")
    parser.add_argument("--scale", action="append", metavar="PARAMETER=FACTOR",
                        help="multiply a journey parameter (its mean) by FACTOR, e.g. --scale job_start=0.8; "
                             "comparison.NAME for the comparison group's own value (repeatable)")


def cmd_run(args) -> int:
    from .output import check_distinct, destination, write_outputs
    from .simulation import simulate  # it refuses a run that does not fit in memory, before allocating

    scenario = Path(args.scenario)
    contract = load_with_changes(scenario, args)
    out = Path(args.out)
    dest = destination(out, "dir", "run", [scenario], force=args.force)
    excel = None
    if args.excel:
        _need_openpyxl()
        excel = destination(args.excel, "excel", "run", [scenario], force=args.force, flag="--excel")
        check_distinct(dest, excel)
    started = time.perf_counter()
    results = simulate(contract, n_paths=args.paths, seed=args.seed, workers=args.workers, progress=_progress(args))
    seconds = time.perf_counter() - started
    manifest = {
        "sibsim_version": __version__,
        "scenario_path": str(scenario.resolve()),
        # Every file read (a variant, then the bases it extends) and one hash over them all: a
        # changed base changes the results, so it must change the record too.
        **contract.files_record(),
        "title": contract.title,
        # Command-line changes to the file (--set, --scale): `sibsim report RUN_DIR` applies them again.
        "command_line_changes": list(contract.command_line_changes),
        "n_paths": results.n_paths,
        "seed": args.seed,
        "seed_entropy": str(results.seed_entropy),
        "block_size": results.block_size,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
    }
    files = write_outputs(out, _writers(results, plots=not args.no_plots, svg=args.svg), manifest, dest)
    if excel is not None:
        from .excel import write_excel

        files.append(write_excel(results, excel.path))
    if not args.quiet:
        print(f"{contract.title}: {results.n_paths:,} paths, seed {results.seed_entropy}, {seconds:.1f} s"
              + (f"; changed on the command line: {' '.join(contract.command_line_changes)}"
                 if contract.command_line_changes else ""))
        print(format_summary(results.summary()))
        print(f"wrote {len(files)} files to {out}/: " + ", ".join(f.name for f in files))
    return 0


def _cents(value: float) -> str:
    """An amount to the cent; never ``-0.00`` (a float residue of -1e-10 is no debt)."""
    return f"{round(float(value), 2) + 0.0:,.2f}"  # + 0.0 turns -0.0 into 0.0


def _percent(value: float) -> str:
    return "n/a" if value != value else f"{round(float(value) * 100, 4) + 0.0:.4f}%"


def _without_negative_zero(frame, decimals: int | None = None):
    """Numeric columns rounded (optionally) and with -0.0 as 0.0, for files a spreadsheet reads."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype.kind == "f":
            values = frame[column].round(decimals) if decimals is not None else frame[column]
            frame[column] = values + 0.0
    return frame


def _check_declared_scenario(counts_file: str, scenario: Path, contract) -> None:
    """Refuse observed outcomes or evidence whose ``[meta] scenario`` names another deal: counts of one
    deal must never be settled (or used to update priors) under another deal's terms.  Counts are per
    cohort, so the deal named must have the same cohorts (intake months and sizes) as the scenario
    given (a copy, an edited version or a variant of it does); a named file that does not load is left
    to ``validate``."""
    from .observed import declared_scenario

    declared = declared_scenario(counts_file)
    if declared is None:
        return
    try:
        named = load_scenario(declared)
    except ScenarioError:
        return
    if named.cohorts != contract.cohorts:
        raise ScenarioError(f"{counts_file}: meta.scenario: names {declared}, another deal than {scenario} "
                            f"(cohorts differ: {len(named.cohorts)} against {len(contract.cohorts)}, or their "
                            "intake months or sizes); give that scenario or correct [meta] scenario")


def cmd_settle(args) -> int:
    from .output import destination, write_outputs
    from .settlement import settle

    scenario = Path(args.scenario)
    contract = load_scenario(scenario)
    _check_declared_scenario(args.observed, scenario, contract)
    dest = None
    if args.out:
        dest = destination(args.out, "dir", "settle", [scenario], inputs=[args.observed], force=args.force)
    result = settle(contract, args.observed)
    currency = contract.currency
    schedule = result.schedule
    calls = schedule["capital_calls"]
    called = calls[calls > 0]
    payments = schedule.drop(columns=["capital_calls"])
    payments = payments.loc[(payments.abs() > 0.005).any(axis=1)]
    with pd_options():
        print(f"{contract.title}: settlement of {args.observed}")
        if len(called):
            print(f"\nCapital calls: {currency} {_cents(called.sum())} in {len(called)} months "
                  f"(months {called.index.min()}-{called.index.max()}); every month in schedule.csv with --out")
        print(f"\nOutcome payments ({currency}):")
        print(payments.to_string(float_format=_cents) if len(payments) else "none")
        if result.termination:
            print(f"\nThe contract {result.termination}.")
        print(f"\nInvestors (amounts in {currency}):")
        print(result.investors.to_string(na_rep="n/a", formatters={  # na_rep: pandas skips formatters for NaN
            "capital_called": _cents, "received": _cents, "interest_paid": _cents, "principal_repaid": _cents,
            "multiple": lambda v: "n/a" if v != v else f"{round(float(v), 4) + 0.0:.4f}", "irr": _percent}))
    if dest is not None:
        out = dest.path
        manifest = {"sibsim_version": __version__, "scenario_path": str(scenario.resolve()),
                    "observed_path": str(Path(args.observed).resolve()), "title": contract.title,
                    "currency": currency, "termination": result.termination or "none",
                    **contract.files_record()}
        write_outputs(out, {
            "schedule.csv": lambda p: csv_safe(_without_negative_zero(result.schedule, 2)).to_csv(p, float_format="%.2f"),
            "investors.csv": lambda p: csv_safe(_without_negative_zero(result.investors)).to_csv(p),  # names stay text
        }, manifest, dest)
        print(f"\nwrote schedule.csv, investors.csv ({currency}) to {out}/")
    return 0


def cmd_reforecast(args) -> int:
    from .census import load_census
    from .output import destination, write_outputs
    from .reforecast import reforecast
    from .simulation import check_memory

    scenario = Path(args.scenario)
    contract = load_scenario(scenario)
    _check_declared_scenario(args.census, scenario, contract)
    dest = None
    if args.out:
        dest = destination(args.out, "dir", "reforecast", [scenario], inputs=[args.census], force=args.force)
    census = load_census(args.census, contract)
    check_memory(contract, args.paths)
    results = reforecast(contract, census, n_paths=args.paths, seed=args.seed, workers=args.workers)
    budget = results.budget()
    payer = contract.payer.name if len(contract.payers) == 1 else "all payers"
    rows = budget[(budget.party == payer) & budget.item.isin(["outcome payments", "total paid", "savings"])]
    table = rows.assign(year=rows.months)[["year", "item", "mean", "p50", "p90", "p95", "maximum"]]
    with pd_options():
        print(f"{contract.title}: re-forecast from the census at month {census.month} ({args.census}), "
              f"{args.paths:,} paths, seed {args.seed}")
        print(f"What {payer} pays and saves from month {census.month} on, per budget year ({contract.currency}):")
        print(table.to_string(index=False, na_rep="", float_format=lambda v: f"{v:,.0f}"))
        summary = results.summary()
        for metric in ("expected_moic", "probability_of_loss"):
            if metric in summary.index:
                print(f"{metric}: {summary.loc[metric, 'estimate']:.4f} (standard error {summary.loc[metric, 'std_error']:.4f})")
    if dest is not None:
        manifest = {"sibsim_version": __version__, "scenario_path": str(scenario.resolve()),
                    "census_path": str(Path(args.census).resolve()), "census_month": census.month,
                    "title": contract.title, "currency": contract.currency, "n_paths": args.paths,
                    "seed": args.seed, **contract.files_record()}
        write_outputs(dest.path, {
            "budget.csv": lambda p: csv_safe(budget).to_csv(p, index=False),
            "summary.csv": lambda p: csv_safe(results.summary()).to_csv(p),
        }, manifest, dest)
        print(f"\nwrote budget.csv (the budget years from month {census.month}), summary.csv to {dest.path}/")
    return 0


def _check_comparable(paths, contracts) -> None:
    """Two or more scenarios in one currency, or one line naming the file and the rule."""
    if len(contracts) < 2:
        raise ScenarioError(f"compare: two or more scenarios are needed, got {len(contracts)} ({paths[0]})")
    base = contracts[0].currency
    for path, contract in zip(paths[1:], contracts[1:]):
        if contract.currency != base:
            raise ScenarioError(f"{path}: meta.currency: {contract.currency}, but {paths[0]} is in {base}: "
                                "amounts in different currencies cannot be compared")


def cmd_compare(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .compare import OVERLAYS, compare, flat_columns, plot_overlay
    from .output import destination, write_outputs
    from .simulation import check_memory

    contracts = [load_with_changes(path, args) for path in args.scenarios]  # the same changes to each
    _check_comparable(args.scenarios, contracts)
    dest = destination(args.out, "dir", "compare", args.scenarios, force=args.force) if args.out else None
    check_memory(contracts, args.paths, args.workers)
    table, results = compare(contracts, n_paths=args.paths, seed=args.seed, workers=args.workers)
    labels = [label for label in table.columns.get_level_values(0).unique() if label != "unit"]
    shared = table.attrs["common_random_numbers"]
    units = [r.summary()["unit"] for r in results]  # each scenario in its own currency
    print(f"compare: {args.paths:,} paths, seed {args.seed}; differences are each scenario minus [1]"
          + (f"; every scenario changed on the command line: {' '.join(contracts[0].command_line_changes)}"
             if contracts[0].command_line_changes else ""))
    for i, label in enumerate(labels):
        if i == 0:
            how = "the base"
        elif shared[label]:
            how = "the same random numbers as [1] (common random numbers): differences paired path by path"
        else:
            how = ("not the random numbers of [1] (its groups, priors, journeys or settlement risks draw "
                   "differently): differences' errors as for independent runs (approximately)")
        print(f"[{i + 1}] {label}: {how}")
    head = [f"{f'[{i + 1}] estimate':>16} {'+/- s.e.':>14}" for i in range(len(labels))]
    head += [f"{f'[{i + 1}] - [1]':>16} {'+/- s.e.':>14}" for i in range(1, len(labels))]
    print(f"{'metric':<44} " + " | ".join(head))
    for metric in table.index:
        cells = [f"{_format_value(table.loc[metric, (label, 'estimate')], u[metric]):>16} "
                 f"{_format_value(table.loc[metric, (label, 'std_error')], u[metric]):>14}"
                 if metric in u.index else f"{'-':>16} {'':>14}"  # an outcome this deal does not define
                 for label, u in zip(labels, units)]
        for label, u in zip(labels[1:], units[1:]):
            both = metric in u.index and metric in units[0].index
            cells.append(f"{_format_value(table.loc[metric, (label, 'difference')], u[metric]):>16} "
                         f"{_format_value(table.loc[metric, (label, 'difference_std_error')], u[metric]):>14}"
                         if both else f"{'-':>16} {'':>14}")
        print(f"{metric:<44} " + " | ".join(cells))
    if args.out:
        def png(measure):
            def write(path):
                fig = plot_overlay(results, labels, measure)
                fig.tight_layout()
                fig.savefig(path, dpi=150, format="png")
                plt.close(fig)
            return write

        # One header row: unit, "<label>: estimate", "<label>: std_error", "<label>: difference" ...
        writers = {"compare.csv": lambda p: csv_safe(flat_columns(table)).to_csv(p)}  # titles stay text
        writers.update({f"compare_{m}.png": png(m) for m in OVERLAYS})
        manifest = {"sibsim_version": __version__, "scenarios": [str(Path(a).resolve()) for a in args.scenarios],
                    "n_paths": args.paths, "seed": args.seed,
                    "command_line_changes": list(contracts[0].command_line_changes),
                    "common_random_numbers_with_first": [bool(shared[label]) for label in labels]}
        write_outputs(Path(args.out), writers, manifest, dest)
        print(f"wrote compare.csv and {len(OVERLAYS)} plots to {args.out}/")
    return 0


def cmd_new(args) -> int:
    from .output import destination, write_text_atomic
    from .scenario import contract_from_dict, parse_toml
    from .template import scenario_template

    # A template is the user's once written: replaced only with --force, even over one of its own.
    dest = destination(args.out, "toml", "new", [], force=args.force, flag="file name", rerun_replaces=False)
    text = scenario_template(args.title)
    contract_from_dict(parse_toml(text, str(dest.path)), f"{dest.path} (--title)")  # it validates, or one line says why
    write_text_atomic(dest.path, text)
    print(f"wrote {dest.path}: a scenario template that validates and runs; replace every number marked "
          f"ASSUMPTION, then check it with: sibsim validate {dest.path}")
    return 0


def cmd_noise(args) -> int:
    from .evaluation import evaluation_noise
    from .output import destination, write_outputs

    contract = load_scenario(args.scenario)
    dest = destination(args.out, "dir", "noise", [args.scenario], force=args.force) if args.out else None
    frame = evaluation_noise(contract, n_paths=args.paths, seed=args.seed, workers=args.workers)
    cols = ["mean_outcome_payments", "sd_outcome_payments", "noise_sd_outcome_payments",
            "noise_share_outcome_payments", "probability_of_loss", "probability_of_loss_se"]
    with pd_options():
        print(f"{contract.title}: evaluation noise ({args.paths:,} paths, seed {args.seed}, common random numbers; "
              f"amounts in {contract.currency})")
        print(frame[cols].to_string(float_format=lambda v: f"{v:,.3f}"))
        print("noise_share: share of the spread of outcome payments that comes from measuring a comparison group "
              "of that size rather than from the programme's true effect.")
    if dest is not None:
        write_outputs(dest.path, {"evaluation_noise.csv": lambda p: csv_safe(frame).to_csv(p)},
                      {"sibsim_version": __version__, "scenario_path": str(Path(args.scenario).resolve()),
                       "n_paths": args.paths, "seed": args.seed}, dest)
        print(f"wrote evaluation_noise.csv to {dest.path}/")
    return 0


def cmd_update(args) -> int:
    from .calibration import check_evidence, load_evidence, load_variant_text, update, variant_toml
    from .compare import compare
    from .output import destination, write_text_atomic
    from .simulation import check_memory

    scenario = Path(args.scenario)
    contract = load_scenario(scenario)
    # The guard first: never an input (the scenario, its bases, the evidence), replace only with --force.
    dest = destination(args.out, "toml", "update", [scenario], inputs=[args.evidence], force=args.force,
                       rerun_replaces=False)
    _check_declared_scenario(args.evidence, scenario, contract)
    evidence = load_evidence(args.evidence)
    problems = check_evidence(contract, evidence, args.evidence)
    T = contract.horizon_months
    if args.month is not None and not 0 <= args.month <= T:  # -12 would sum the last 12 months, 500 nothing
        problems.append(f"{scenario}: --month: must be 0..{T} (the months of the scenario), got {args.month}")
    if problems:
        raise ScenarioError(problems)
    census = None
    if args.census is not None:
        from .census import load_census

        _check_declared_scenario(args.census, scenario, contract)
        census = load_census(args.census, contract)
    check_memory([contract, contract], args.paths)  # the re-forecast: prior and posterior, one structure
    posterior, table = update(contract, evidence, args.evidence)
    title = f"{contract.title}: updated with {Path(args.evidence).name}"
    posterior = dataclasses.replace(posterior, title=title)
    out = dest.path
    # Build the variant and check that it loads to the posterior BEFORE anything is written: a
    # variant that does not load must never be left on disk (nor replace a good one).
    text = variant_toml(scenario, out, table, title)
    try:
        check = load_variant_text(text, out)
    except ScenarioError as exc:
        raise ScenarioError([f"{args.evidence}: evidence: the posterior does not make a valid scenario, "
                             f"nothing written ({line})" for line in exc.problems]) from None
    if check.journey != posterior.journey or check.comparison != posterior.comparison:
        raise ScenarioError(f"{args.evidence}: evidence: the written priors would not reload to the posterior "
                            "exactly, nothing written")
    cols = ["group", "parameter", "events", "at_risk", "observed_rate", "prior_mean", "prior_sd",
            "posterior_mean", "posterior_sd", "note"]
    with pd_options():
        print(f"{contract.title}: priors updated with {args.evidence}")
        print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    summary, results = compare([contract, posterior], n_paths=args.paths, seed=args.seed, labels=["prior", "posterior"])
    units = results[0].summary()["unit"]
    shared = ("common random numbers" if summary.attrs["common_random_numbers"]["posterior"]
              else "same seed; the posterior's priors draw other random numbers")
    print(f"\nRe-forecast ({args.paths:,} paths, seed {args.seed}, {shared}): prior -> posterior")
    for metric in ("expected_moic", "probability_of_loss", "median_irr", "expected_outcome_payments",
                   "expected_net_savings", "expected_net_savings_within_term", "probability_pays_more_than_saves",
                   "probability_pays_more_than_saves_within_term"):
        cells = [f"{_format_value(summary.loc[metric, (l, 'estimate')], units[metric])} "
                 f"(+/- {_format_value(summary.loc[metric, (l, 'std_error')], units[metric])})" for l in ("prior", "posterior")]
        print(f"  {metric:<44} {cells[0]:>28} -> {cells[1]}")
    if args.month is not None:
        for label, res in zip(("prior", "posterior"), results):
            remaining = res.expected_ledgers["outcome_payments"].iloc[args.month:].sum()
            print(f"  expected outcome payments from month {args.month} on ({label}): "
                  f"{contract.currency} {remaining:,.0f}")
    if census is not None:
        _census_reforecast(contract, posterior, census, args)
    write_text_atomic(out, text)  # last: an interrupted re-forecast leaves no file, as main() reports
    print(f"\nwrote {out} (extends {scenario.name}); re-forecast in full with: sibsim run {out} --out DIR")
    return 0


def _census_reforecast(prior, posterior, census, args) -> None:
    """Print the payer's remaining outcome payments per budget year from the census, under the prior and
    the posterior (:func:`sibsim.reforecast.reforecast`, the same seed)."""
    from .reforecast import reforecast

    payer = prior.payer.name if len(prior.payers) == 1 else "all payers"
    print(f"\nFrom the census at month {census.month} ({args.census}): {payer}'s remaining outcome payments "
          f"per budget year ({prior.currency}; mean, P90, P95)")
    for label, c in (("prior", prior), ("posterior", posterior)):
        budget = reforecast(c, census, n_paths=args.paths, seed=args.seed).budget()
        rows = budget[(budget.party == payer) & (budget.item == "outcome payments")]
        cells = [f"{r.months}: {r.mean:,.0f} / {r.p90:,.0f} / {r.p95:,.0f}" for r in rows.itertuples()]
        print(f"  {label:<10} " + "; ".join(cells))


def pd_options():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 50)


def file_kind(path: Path) -> str:
    """What a file holds, by its content: ``observed``, ``evidence``, ``portfolio`` or ``scenario``.

    A TOML file with a top-level ``measurement`` array is observed outcomes, with an ``evidence``
    array evidence, whatever its name or folder; anything else (unreadable files included) is
    checked as a scenario, whose loader words the problem.  A ``.csv`` is observed outcomes, the
    only input sibsim reads as CSV (a wrong header is reported as such).
    """
    from .scenario import parse_toml, read_scenario_bytes

    if path.suffix.lower() == ".csv":
        return "observed"
    try:  # regular files only, read with a bound (a FIFO or /dev/zero is the loader's to refuse)
        doc = parse_toml(read_scenario_bytes(path).decode("utf-8-sig"), str(path))
    except (OSError, UnicodeDecodeError, ScenarioError):
        return "scenario"  # the scenario loader words the problem
    if "measurement" in doc:
        return "observed"
    if "evidence" in doc:
        return "evidence"
    if "portfolio" in doc and "holdings" in doc:
        return "portfolio"
    return "scenario"


def _validate_counts(name: str, kind: str, scenario: Path | None, declared: bool = False) -> list[str]:
    """Problems of an observed or evidence file; an ``ok`` line when there are none."""
    from .calibration import check_evidence, load_evidence
    from .observed import load_observed, outcomes_from_observed

    what = "observed outcomes" if kind == "observed" else "evidence"
    try:
        data = load_observed(name) if kind == "observed" else load_evidence(name)
    except ScenarioError as exc:  # the file's own rules need no scenario
        return exc.problems
    if scenario is None:
        return [f"{name}: {what}: need the scenario to check against: run sibsim validate --scenario SCENARIO "
                f"{name}, or put scenario = \"SCENARIO.toml\" (relative to the file) in its [meta]"]
    if declared and not scenario.is_file():
        return [f"{name}: meta.scenario: must name a readable scenario file, got {scenario} (file not found)"]
    contract = load_scenario(scenario)  # a ScenarioError names the scenario's own problems
    if kind == "observed":
        outcomes_from_observed(contract, data)  # every check against the scenario, all at once
        counted = sorted({m for series in data.counts.values() for m in series})
        return [f"{name}: ok: observed outcomes for {contract.title} ({scenario}); "
                f"{sum(len(s) for s in data.counts.values())} counts at months {', '.join(map(str, counted))}"]
    problems = check_evidence(contract, data, name)
    return problems or [f"{name}: ok: evidence for {contract.title} ({scenario}); {len(data)} entries"]


def cmd_validate(args) -> int:
    from .observed import declared_scenario

    status = 0
    said: set[str] = set()

    def print(line: str) -> None:  # noqa: A001 - a scenario two files check against is reported once
        if line not in said:
            said.add(line)
            builtins.print(line)

    for name in args.files:
        path = Path(name)
        kind = file_kind(path)
        if kind == "portfolio":
            from .scenario_portfolio import load_portfolio

            try:
                portfolio = load_portfolio(path)
            except ScenarioError as exc:
                for line in exc.problems:
                    print(line)
                status = 1
                continue
            print(f"{name}: ok: portfolio {portfolio.title}; {len(portfolio.holdings)} holdings "
                  f"({', '.join(h.label for h in portfolio.holdings)}); shared: "
                  f"{', '.join(portfolio.shared_names) or 'nothing'}")
            continue
        if kind != "scenario":
            scenario = Path(args.scenario) if args.scenario else declared_scenario(path)
            try:
                lines = _validate_counts(name, kind, scenario, declared=not args.scenario)
            except ScenarioError as exc:
                lines = exc.problems
            for line in lines:
                print(line)
            if not (len(lines) == 1 and lines[0].startswith(f"{name}: ok: ")):
                status = 1
            continue
        try:
            contract = load_scenario(name)
        except ScenarioError as exc:
            for line in exc.problems:
                print(line)
            status = 1
            continue
        for line in contract.warnings:  # worth saying, not refusing: the scenario is still valid
            print(line)
        # Amounts in the scenario's own currency; the term apart from the months followed after it.
        print(f"{name}: ok: {contract.title}; {contract.n_participants} participants in "
              f"{len(contract.cohorts)} cohorts; {contract.currency} {contract.total_commitment:,.0f} committed by "
              f"{len(contract.investors)} investor{'s' if len(contract.investors) != 1 else ''}; term {contract.term_months} months, tail "
              f"{contract.tail_months} months, horizon {contract.horizon_months} months (to the last payment "
              f"or saving followed)")
    return status


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sibsim", description="Monte Carlo simulation of Social Impact Bonds.")
    parser.add_argument("--version", action="version", version=f"sibsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="simulate a scenario and write summary, paths, cashflows and plots")
    run.add_argument("scenario", help="scenario TOML file")
    run.add_argument("--paths", type=_positive_int, default=10_000, help="Monte Carlo paths (default 10000)")
    add_seed_argument(run)
    run.add_argument("--out", required=True, help="output directory")
    run.add_argument("--workers", type=_positive_int, default=None, help="processes (default: all cores for large runs)")
    run.add_argument("--force", action="store_true", help="replace a sibsim output of another command or scenario")
    run.add_argument("--no-plots", action="store_true", help="skip the plots")
    run.add_argument("--svg", action="store_true", help="also write each plot as SVG (vector, for print)")
    run.add_argument("--quiet", action="store_true", help="print nothing")
    run.add_argument("--excel", help="also write an Excel workbook here (needs: pip install 'sibsim[excel]')")
    add_whatif_arguments(run)
    run.set_defaults(func=cmd_run)

    st = sub.add_parser("settle", help="payment calculator: who is paid what and when, from observed outcomes")
    st.add_argument("scenario", help="scenario TOML file")
    st.add_argument("observed", help="observed outcomes (.toml or .csv; see sibsim.observed)")
    st.add_argument("--out", help="also write schedule.csv and investors.csv here")
    st.add_argument("--force", action="store_true", help="replace a sibsim output of another command or scenario")
    st.set_defaults(func=cmd_settle)

    cmp_ = sub.add_parser("compare", help="simulate scenarios side by side (common random numbers)")
    cmp_.add_argument("scenarios", nargs="+", help="two or more scenario TOML files")
    cmp_.add_argument("--paths", type=_positive_int, default=10_000)
    add_seed_argument(cmp_)
    cmp_.add_argument("--workers", type=_positive_int, default=None)
    cmp_.add_argument("--out", help="write compare.csv and overlaid distributions here")
    cmp_.add_argument("--force", action="store_true", help="replace a sibsim output of another command or scenarios")
    add_whatif_arguments(cmp_)  # the same changes to every scenario compared
    cmp_.set_defaults(func=cmd_compare)

    new = sub.add_parser("new", help="write a commented scenario template that validates (to fill in)")
    new.add_argument("out", metavar="FILE.toml", help="the scenario file to write")
    new.add_argument("--title", default="My Social Impact Bond", help="the deal's title (meta.title)")
    new.add_argument("--force", action="store_true", help="replace a template sibsim new wrote before")
    new.set_defaults(func=cmd_new)

    noise = sub.add_parser("noise", help="how much payment risk comes from a small comparison group")
    noise.add_argument("scenario")
    noise.add_argument("--paths", type=_positive_int, default=4_000)
    add_seed_argument(noise)
    noise.add_argument("--workers", type=_positive_int, default=None)
    noise.add_argument("--out", help="write evaluation_noise.csv here")
    noise.add_argument("--force", action="store_true", help="replace a sibsim output of another command or scenario")
    noise.set_defaults(func=cmd_noise)

    upd = sub.add_parser("update", help="update the priors with observed counts (Beta-binomial) and re-forecast")
    upd.add_argument("scenario")
    upd.add_argument("evidence", help="evidence TOML: [[evidence]] parameter, group, events, at_risk")
    upd.add_argument("--out", required=True, help="the updated scenario to write (extends SCENARIO)")
    upd.add_argument("--paths", type=_positive_int, default=4_000)
    add_seed_argument(upd)
    upd.add_argument("--month", type=int, default=None, help="report expected payments from this month on")
    upd.add_argument("--census", default=None,
                     help="also re-forecast from this state census (sibsim reforecast), under prior and posterior")
    upd.add_argument("--force", action="store_true", help="replace a scenario that sibsim update wrote")
    upd.set_defaults(func=cmd_update)

    ref = sub.add_parser("reforecast", help="re-forecast the rest of the contract from a state census at month m")
    ref.add_argument("scenario")
    ref.add_argument("census", help="census TOML: [meta] month, observed; [[census]] group, cohort, state, count, months")
    ref.add_argument("--out", help="write budget.csv and summary.csv here")
    ref.add_argument("--paths", type=_positive_int, default=4_000)
    add_seed_argument(ref)
    ref.add_argument("--workers", type=_positive_int, default=None)
    ref.add_argument("--force", action="store_true", help="replace a sibsim output of another command or scenario")
    ref.set_defaults(func=cmd_reforecast)

    from . import cli_design, cli_discovery, cli_portfolio, report, sensitivity

    sensitivity.add_parser(sub)
    cli_portfolio.add_parser(sub)
    cli_design.add_parsers(sub)
    cli_discovery.add_parser(sub)
    report.add_parser(sub)

    val = sub.add_parser("validate", help="check scenario, observed-outcomes and evidence files; list every problem")
    val.add_argument("files", nargs="+", help="scenarios, observed outcomes (.toml, .csv) or evidence, told apart "
                                              "by their content")
    val.add_argument("--scenario", help="the scenario to check observed-outcomes and evidence files against "
                                        "(default: scenario in each file's [meta])")
    val.set_defaults(func=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ScenarioError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_INPUT
    except (OutputError, InsufficientMemoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:  # any I/O failure not caught where it happened: one line, never a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        # Each output is swapped in whole or not at all: none is left half-written (one finished before
        # the interruption, e.g. the run folder before its workbook, is kept).
        print("interrupted: nothing half-written was left behind", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
