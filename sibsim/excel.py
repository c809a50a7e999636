"""Excel workbook of a run (optional extra ``sibsim[excel]``, which installs openpyxl).

Values, not formulas: every number is what sibsim computed, so the workbook is an audit
trail of a run rather than a second model.  One table per sheet, each with a frozen header
row, a filter on every column, and number formats: money in the scenario's currency, rates
and probabilities as percentages, multiples as ``1.025x``, months as calendar dates when the
scenario gives ``meta.start``.  Sheets:

* ``Summary``: estimates with Monte Carlo standard errors, the unit (money in the scenario's
  currency) and a note naming each NPV's discount rate and whether savings include the tail;
* ``Budget years``: per budget year and party, expected cash, its quantiles and the payer's
  maximum exposure (:mod:`sibsim.budget`; ``budget.csv``);
* ``Expected cashflows``: the expected monthly ledger of every party;
* ``Cash percentiles``: monthly quantiles of each party's cumulative cash;
* ``Path percentiles``: 5/25/50/75/95 % of the per-path measures;
* ``Inputs``: the contract's terms as numbers and the expected counts per outcome at each
  measurement;
* ``Sources and assumptions``, ``Contract terms``: the scenario's words, and its terms in words;
* ``Run``: seed, paths and version, to repeat the run.

Text from the scenario (names, titles, sources, assumptions) is written as text, never as a
live formula, even when it starts with ``=``, ``+``, ``-`` or ``@`` (:mod:`sibsim.safetext`).
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .errors import OutputError
from .excel_formulas import BY_MONTH, SETTLEMENT, write_formula_sheets
from .metrics import npv_notes
from .output import SUFFIXES, atomic_path, excel_properties
from .safetext import excel_text_cells
from .stack_text import guarantee_text, payer_text, savings_share_text, tranche_text, waterfall_text

PERCENTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: Sheet names, in workbook order.
SHEETS = ("Summary", "Budget years", "Expected cashflows", "Cash percentiles", "Path percentiles", "Inputs",
          "Settlement", "Settlement by month", "Sources and assumptions", "Contract terms", "Run")
PERCENT = "0.00%"
MULTIPLE = '0.000"x"'
MONTH_DATE = "mmm yyyy"
COUNT = "#,##0.0"
WHOLE = "0"
TEXT = "@"


def money_format(currency: str) -> str:
    """Excel number format of an amount in ``currency`` (a validated ISO code): ``EUR 1,234.56``,
    negative in red with a minus sign."""
    return f'"{currency}" #,##0.00;[Red]-"{currency}" #,##0.00'


def unit_format(unit: str, currency: str) -> str:
    """The number format of a summary row's unit."""
    if unit in ("per year", "probability", "share"):
        return PERCENT
    if unit == "x":
        return MULTIPLE
    if unit == currency:
        return money_format(currency)
    return COUNT


def measure_format(name: str, currency: str) -> str:
    """The number format of a per-path measure (a column of ``paths.csv``)."""
    if name == "investor_irr":
        return PERCENT
    if name == "investor_moic":
        return MULTIPLE
    if name.endswith("_month") or name in ("irr_status", "termination_reason", "terminated"):
        return WHOLE if name != "terminated" else COUNT
    if name.endswith("primary_outcomes"):
        return COUNT
    return money_format(currency)


def heading(name: str) -> str:
    """A column heading a reader recognises: ``capital_calls`` -> ``Capital calls``, ``p90`` -> ``P90``."""
    text = str(name).replace("_se", " (s.e.)").replace("_", " ")
    if len(text) >= 2 and text[0] == "p" and text[1:3].isdigit():
        text = "P" + text[1:]
    return text[:1].upper() + text[1:]


def month_date(contract, month: int) -> datetime.date | None:
    """The first day of contract month ``month`` (None without ``meta.start``)."""
    from .budget import start_month

    start = start_month(contract)
    if start is None:
        return None
    year, m0 = start
    total = m0 + int(month)
    return datetime.date(year + total // 12, total % 12 + 1, 1)


def _value(v):
    """A cell value openpyxl writes: no NaN, NA or numpy scalars."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(v) else float(v)
    return v


def write_table(book, title: str, frame: pd.DataFrame, formats=None, row_formats=None):
    """One table on a new sheet: headings in bold on a frozen first row, a filter over every
    column, widths fitted to the contents.

    ``formats``: number format per column name; ``row_formats``: a function of the row (a dict
    of column name -> value) returning a format for the columns in ``formats`` given as ``None``.
    """
    from openpyxl.styles import Alignment, Font, PatternFill

    formats = formats or {}
    sheet = book.create_sheet(title)
    columns = list(frame.columns)
    sheet.append([heading(c) for c in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DCE6F0")
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for values in frame.itertuples(index=False, name=None):
        sheet.append([_value(v) for v in values])
        row = sheet.max_row
        record = dict(zip(columns, values))
        for j, column in enumerate(columns, start=1):
            if column not in formats:
                continue
            fmt = formats[column] if formats[column] is not None else row_formats(record)
            sheet.cell(row=row, column=j).number_format = fmt
    sheet.freeze_panes = "B2"
    if len(frame):
        sheet.auto_filter.ref = sheet.dimensions
    for j, column in enumerate(columns, start=1):
        cells = [heading(column)] + [v for v in frame[column].tolist() if _value(v) is not None]
        width = max((len(f"{v:,.2f}") + 5 if isinstance(v, float) else len(str(v)) for v in cells), default=8)
        sheet.column_dimensions[sheet.cell(row=1, column=j).column_letter].width = min(max(width + 2, 10), 70)
    return sheet


def contract_terms(contract) -> pd.DataFrame:
    """The contract's main terms as (term, value) rows, generated from the Contract itself."""
    cur = contract.currency
    rows = [("title", contract.title), ("term (months)", contract.term_months),
            ("tail followed (months)", contract.tail_months), ("participants", contract.n_participants),
            ("cohorts (intake month: size)", ", ".join(f"{c.intake_month}: {c.size}" for c in contract.cohorts)),
            ("capital committed", f"{cur} {contract.total_commitment:,.2f}")]
    for inv in contract.investors:
        rows.append((f"tranche: {inv.name}", f"{tranche_text(inv, cur)}; class {inv.investor_class}"))
    if contract.draw_order.groups:
        rows.append(("draw order", "; then ".join(", ".join(g) for g in contract.draw_order.groups)))
    for line in waterfall_text(contract):
        rows.append(("waterfall", line))
    payer = contract.payer
    rows.append(("outcome payer", payer.name))
    if len(contract.payers) > 1:
        for p in contract.payers:
            rows.append((f"payer: {p.name}", payer_text(p, cur)))
    for outcome, price in payer.rate_card:
        rows.append((f"price per net {outcome}", f"{cur} {price:,.2f}"))
    if payer.savings_share.rate:
        rows.append(("share of measured savings", savings_share_text(payer.savings_share)))
    for t in payer.tiers:
        rows.append((f"tier table on {t.outcome} ({t.measure})", "; ".join(f"{x:g}: {cur} {y:,.0f}" for x, y in t.points)))
    if payer.trigger is not None:
        tr = payer.trigger
        rows.append(("cohort trigger", f"{tr.outcome} {tr.measure}: cohort >= {tr.cohort_threshold:g}, pooled >= "
                     f"{tr.pooled_threshold:g}, {cur} {tr.price:,.0f} per net event"))
    if len(contract.payers) == 1:
        rows.append(("payment cap", "none" if payer.payment_cap is None else f"{cur} {payer.payment_cap:,.2f}"))
    rows.append(("measurement months", ", ".join(map(str, payer.measurement_months)) or "set by the trigger"))
    if len(contract.payers) == 1:
        rows.append(("payment lag (months)", payer.payment_lag_months))
    for what, rate in (("investors", contract.investor_discount_rate), ("payer", contract.public_discount_rate)):
        rows.append((f"discount rate for NPVs ({what})",
                     f"{rate:.2%} a year" + (" (0: NPV is the nominal sum)" if rate == 0 else "")))
    rows.append(("currency", cur))
    for g in contract.guarantees:
        rows.append((f"guarantee by {g.guarantor}", guarantee_text(g, cur)))
    if contract.external_stop is not None:
        stop = contract.external_stop
        rows.append(("external stop", f"{stop.reason} at month {stop.month}, probability {stop.probability:g}"))
    return pd.DataFrame(rows, columns=["term", "value"])


def inputs_table(results) -> pd.DataFrame:
    """The contract's terms as numbers, the counts at each measurement (the run's expected counts),
    the planned capital calls, the fees and the expected savings per month: the ``Inputs`` sheet,
    which the formula sheets read (:mod:`sibsim.excel_formulas`).

    Columns ``section``, ``item``, ``outcome``, ``month``, ``date``, ``value``, ``unit`` and ``key``
    (not written: which term a row holds, for the formulas' cell references).
    """
    from .excel_formulas import CALLS, CAPITAL, COUNTERFACTUAL, SAVINGS, TERMS, TREATED

    contract = results.contract
    cur = contract.currency
    rows = []

    def add(section, item, value, unit, outcome="", month=None, key=None):
        rows.append((section, item, outcome, month, None if month is None else month_date(contract, month),
                     value, unit, key))

    payer = contract.payer
    single = len(contract.payers) == 1
    for outcome, price in payer.rate_card:
        add(TERMS, "price per net outcome", float(price), cur, outcome=outcome, key=("price", outcome))
    for p in contract.payers:
        if p.payment_cap is not None:
            add(TERMS, f"payment cap of {p.name}", float(p.payment_cap), cur, key=("cap",) if single else None)
        add(TERMS, f"payment lag of {p.name}", int(p.payment_lag_months), "months", key=("lag",) if single else None)
    for m in payer.measurement_months:
        add(TERMS, "measurement", int(m), "contract month", month=int(m))
    for inv in contract.investors:
        add(CAPITAL, f"commitment of {inv.name}", float(inv.commitment), cur, key=("commitment", inv.name))
    rates = {inv.cap_rate for inv in contract.investors}
    if len(rates) == 1 and None not in rates:
        add(CAPITAL, "return cap (every tranche)", float(rates.pop()), "per year", key=("return_cap",))
    else:
        for inv in contract.investors:
            if inv.return_cap is not None:
                add(CAPITAL, f"return cap of {inv.name}", float(inv.return_cap), "per year")
    for fee in contract.fees:
        section = f"fees paid by the {fee.paid_by}" if fee.paid_by != "waterfall" else "fees paid from the waterfall"
        for month, amount in fee.schedule.entries:
            add(section, fee.name, float(amount), cur, month=int(month))
    measured = results.expected_measurements
    if measured is not None:
        for row in measured.itertuples(index=False):
            for section, group in ((TREATED, "treated"), (COUNTERFACTUAL, "counterfactual")):
                add(section, f"{row.outcome} by month {int(row.month)} (expected)", float(getattr(row, group)),
                    "count", outcome=row.outcome, month=int(row.month),
                    key=("count", section, row.outcome, int(row.month)))
    calls = contract.capital_calls().sum(axis=0)
    for month in np.flatnonzero(np.abs(calls) > 0):
        add(CALLS, "capital call", float(calls[month]), cur, month=int(month))
    savings = results.expected_ledgers["gross_savings"].to_numpy(dtype=float)
    for month, amount in enumerate(savings):
        add(SAVINGS, "savings", float(amount), cur, month=month)
    add("participants", "participants", int(contract.n_participants), "people")
    return pd.DataFrame(rows, columns=["section", "item", "outcome", "month", "date", "value", "unit", "key"])


def _inputs_format(currency: str):
    money = money_format(currency)

    def fmt(row):
        unit = row["unit"]
        if unit == currency:
            return money
        if unit == "per year":
            return PERCENT
        if unit == "count":
            return COUNT
        return WHOLE
    return fmt


def write_excel(results, path: str | Path) -> Path:
    """Write the workbook atomically (temporary file in the same folder, then rename).

    The workbook's properties (``creator``, ``description``) mark it as sibsim's, so ``--force``
    can tell it from a workbook of someone else's.  ``path`` must end in ``.xlsx``: the format
    written.
    """
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise RuntimeError("Excel export needs the optional extra: pip install 'sibsim[excel]'") from None
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES["excel"]:
        raise OutputError(f"{path}: an Excel workbook must end in .xlsx (sibsim writes that format only), "
                          f"got {path.suffix or 'no suffix'}")
    contract = results.contract
    cur = contract.currency
    money = money_format(cur)
    meta = dict(contract.meta)
    book = openpyxl.Workbook()
    book.remove(book.active)

    summary = results.summary().reset_index()
    write_table(book, "Summary", summary, {"estimate": None, "std_error": None},
                row_formats=lambda row: unit_format(row["unit"], cur))

    budget = results.budget()
    write_table(book, "Budget years", budget,
                {**{c: money for c in budget.columns[7:]}, "year": WHOLE, "first_month": WHOLE, "last_month": WHOLE})

    ledgers = results.expected_ledgers.reset_index()
    dated = month_date(contract, 0) is not None
    if dated:
        ledgers.insert(1, "date", [month_date(contract, m) for m in ledgers["month"]])
    write_table(book, "Expected cashflows", ledgers,
                {"month": WHOLE, "date": MONTH_DATE, **{c: money for c in results.expected_ledgers.columns}})

    cash = results.cashflow_quantiles()
    if dated:
        cash.insert(1, "date", [month_date(contract, m) for m in cash["month"]])
    write_table(book, "Cash percentiles", cash,
                {"month": WHOLE, "date": MONTH_DATE, **{c: money for c in cash.columns if c not in
                                                         ("month", "date", "party")}})

    measures = results.paths.select_dtypes("number")
    percentiles = measures.quantile(list(PERCENTILES)).T
    percentiles.columns = [f"p{int(q * 100):02d}" for q in PERCENTILES]
    percentiles.insert(0, "mean", measures.mean())
    percentiles["note"] = [npv_notes(contract).get(name, "") for name in percentiles.index]  # NPV: its rate
    percentiles = percentiles.rename_axis("measure").reset_index()
    write_table(book, "Path percentiles", percentiles, {c: None for c in ("mean", *percentiles.columns[2:7])},
                row_formats=lambda row: measure_format(row["measure"], cur))

    inputs = inputs_table(results)
    write_table(book, "Inputs", inputs.drop(columns="key"), {"month": WHOLE, "date": MONTH_DATE, "value": None},
                row_formats=_inputs_format(cur))
    write_formula_sheets(book, contract, inputs, money, MONTH_DATE,
                         [month_date(contract, m) for m in range(contract.horizon_months)] if dated else None)

    assumptions = pd.DataFrame(
        [("source", s) for s in meta.get("sources", ())] + [("assumption", a) for a in meta.get("assumptions", ())],
        columns=["kind", "text"])
    write_table(book, "Sources and assumptions", assumptions)
    write_table(book, "Contract terms", contract_terms(contract))
    run = pd.DataFrame([("sibsim version", __version__), ("paths", results.n_paths),
                        ("seed", str(results.seed_entropy)), ("block size", results.block_size),
                        ("scenario file", contract.source),
                        # what-ifs from the command line: the file alone gives other numbers
                        ("changed on the command line", " ".join(contract.command_line_changes) or "nothing")],
                       columns=["item", "value"])
    write_table(book, "Run", run)
    for key, value in excel_properties("run", [contract.source] if contract.source else []).items():
        setattr(book.properties, key, value)
    excel_text_cells(book, formula_sheets=(SETTLEMENT, BY_MONTH))  # scenario text stays text: no live formulas
    assert tuple(book.sheetnames) == SHEETS
    with atomic_path(path) as tmp:
        book.save(tmp)
    return path
