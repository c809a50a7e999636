"""Excel workbook of a run (optional extra ``sibsim[excel]``, which installs openpyxl).

Values, not formulas: every number is what sibsim computed, so the workbook is an audit
trail of a run rather than a second model.  Sheets:

* ``Summary``: estimates with Monte Carlo standard errors, the unit (money in the scenario's
  currency) and a note naming each NPV's discount rate and whether savings include the tail;
* ``Expected cashflows``: the expected monthly ledger of every party;
* ``Percentiles``: 5/25/50/75/95 % of the per-path measures, and monthly cumulative cash quantiles;
* ``Assumptions``: sources, stated assumptions and the contract terms;
* ``Run``: seed, paths and version, to repeat the run.

Text from the scenario (names, titles, sources, assumptions) is written as text, never as a
live formula, even when it starts with ``=``, ``+``, ``-`` or ``@`` (:mod:`sibsim.safetext`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import __version__
from .errors import OutputError
from .metrics import npv_notes
from .output import SUFFIXES, atomic_path, excel_properties
from .safetext import excel_text_cells
from .stack_text import guarantee_text, payer_text, savings_share_text, tranche_text, waterfall_text

PERCENTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


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


def write_excel(results, path: str | Path) -> Path:
    """Write the workbook atomically (temporary file in the same folder, then rename).

    The workbook's properties (``creator``, ``description``) mark it as sibsim's, so ``--force``
    can tell it from a workbook of someone else's.  ``path`` must end in ``.xlsx``: the format
    written.
    """
    try:
        import openpyxl  # noqa: F401
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise RuntimeError("Excel export needs the optional extra: pip install 'sibsim[excel]'") from None
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES["excel"]:
        raise OutputError(f"{path}: an Excel workbook must end in .xlsx (sibsim writes that format only), "
                          f"got {path.suffix or 'no suffix'}")
    contract = results.contract
    meta = dict(contract.meta)
    measures = results.paths.select_dtypes("number")
    percentiles = measures.quantile(list(PERCENTILES)).T
    percentiles.columns = [f"p{int(q * 100):02d}" for q in PERCENTILES]
    percentiles.insert(0, "mean", measures.mean())
    percentiles["note"] = [npv_notes(contract).get(name, "") for name in percentiles.index]  # NPV: its rate
    assumptions = pd.DataFrame(
        [("source", s) for s in meta.get("sources", ())] + [("assumption", a) for a in meta.get("assumptions", ())],
        columns=["kind", "text"])
    run = pd.DataFrame([("sibsim version", __version__), ("paths", results.n_paths),
                        ("seed", str(results.seed_entropy)), ("block size", results.block_size),
                        ("scenario file", contract.source),
                        # what-ifs from the command line: the file alone gives other numbers
                        ("changed on the command line", " ".join(contract.command_line_changes) or "nothing")],
                       columns=["item", "value"])
    with atomic_path(path) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as xl:
        results.summary().to_excel(xl, sheet_name="Summary")
        results.expected_ledgers.to_excel(xl, sheet_name="Expected cashflows")
        percentiles.to_excel(xl, sheet_name="Percentiles")
        results.cashflow_quantiles().to_excel(xl, sheet_name="Percentiles", index=False,
                                              startrow=len(percentiles) + 3)
        assumptions.to_excel(xl, sheet_name="Assumptions", index=False)
        contract_terms(contract).to_excel(xl, sheet_name="Assumptions", index=False,
                                          startrow=len(assumptions) + 3)
        run.to_excel(xl, sheet_name="Run", index=False)
        for key, value in excel_properties("run", [contract.source] if contract.source else []).items():
            setattr(xl.book.properties, key, value)
        excel_text_cells(xl.book)  # scenario text stays text: no live formulas from names
        for sheet in xl.book.worksheets:  # readable column widths
            for column in sheet.columns:
                width = max((len(str(c.value)) for c in column if c.value is not None), default=8)
                sheet.column_dimensions[column[0].column_letter].width = min(max(width + 2, 10), 80)
    return path
