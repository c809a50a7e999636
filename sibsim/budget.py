"""The payer's budget years: per calendar year and party, expected cash, its bad-year quantiles
and the most the contract can make the payer pay.

A municipality budgets per calendar year (begrotingsjaar) and reserves for a bad year, so the
contract's months are grouped in *budget years*: calendar years when the scenario gives
``meta.start`` (month 0 is that calendar month), else contract years (months 0-11, 12-23, ...),
said so in every output (column ``basis``).

Each block of a run keeps, per path and budget year, the sums in :data:`PATH_SERIES`
(:func:`path_years`), stored as float32 (4 bytes a value: a run of a million paths keeps about
140 bytes a path for Colour Kitchen).  Quantiles (P50, P90, P95, and P05/P10 for the bad years of
savings) read these values: float32 holds EUR 1,000,000 to within EUR 0.07, far below their Monte
Carlo error.  The payer's and the investors' means are the float64 expected ledgers summed over the
year's months, so they agree to the cent with ``expected_ledgers.csv`` (each payer's own rows, with
several, and each guarantor's are the means of their per-path sums); standard errors read the
per-path sums.

The *maximum exposure* of a year is what the contract's terms let the payer pay in it at most,
whatever the outcomes: the payment caps of the payers that can pay in the year (from the year of
their first payment date on: money the waterfall holds back is paid in a later month), the fees
the payer owes in the year, and the most each guarantee the payer gives can pay if it can pay in
the year.  Caps bound the whole contract, so the years' maxima do not add up: the whole
contract's maximum is the caps plus every fee plus every guarantee's most, once.  A payer without
a payment cap has no maximum (NaN): its payments are bounded only by the outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .contracts import Contract
from .estimators import N_BATCHES

#: Per-path sums kept per budget year (float32): payers' outcome payments (net cash), what the payer
#: pays in all (outcome payments, its fees and its guarantees' payouts less recoveries: savings
#: less net savings), its gross savings, the investors' capital paid in and money received
#: (waterfall distributions and guarantee payouts).  With several payers, one ``payer_paid:NAME``
#: each; one ``guarantor_paid:NAME`` per guarantor that is not an outcome payer.
PATH_SERIES = ("outcome_payments", "total_paid", "savings", "capital_calls", "investor_received")
#: Quantiles of every row of :func:`budget_table` (P05 and P10 are the bad years of savings and net
#: position, P90 and P95 those of payments).
QUANTILES = (0.05, 0.10, 0.50, 0.90, 0.95)
#: Levels whose batch standard error the table gives.
QUANTILE_SE = (0.10, 0.90, 0.95)
#: Columns of :func:`budget_table`.
COLUMNS = ("year", "basis", "months", "first_month", "last_month", "party", "item", "mean", "mean_se",
           "p05", "p10", "p50", "p90", "p95", "p10_se", "p90_se", "p95_se", "maximum")
PAYER_PAID, GUARANTOR_PAID = "payer_paid:", "guarantor_paid:"
#: Rows of a payer, in table order.
PAYER_ITEMS = ("outcome payments", "fees", "guarantees", "total paid", "savings", "net position")
INVESTOR_ITEMS = ("capital paid in", "money received", "net")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class BudgetYears:
    """The contract's months grouped in budget years.

    Attributes
    ----------
    years : tuple of int
        Calendar years (``basis == "calendar"``) or contract years 1, 2, ... (``"contract year"``).
    basis : str
        ``"calendar"`` or ``"contract year"``.
    first, last : tuple of int
        First and last contract month of each budget year (the first and last may be partial).
    start : tuple of (int, int) or None
        Calendar year and month (0-11) of contract month 0, if known.
    """

    years: tuple[int, ...]
    basis: str
    first: tuple[int, ...]
    last: tuple[int, ...]
    start: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.years)

    def of_month(self, month: int) -> int:
        """Index of the budget year holding contract month ``month``."""
        return int(np.searchsorted(np.asarray(self.last), month))

    def month_label(self, month: int) -> str:
        """``Apr 2016`` for contract month 12 of a contract starting in April 2015; ``month 12`` without a start."""
        if self.start is None:
            return f"month {month}"
        y, m0 = self.start
        return f"{_MONTHS[(m0 + month) % 12]} {y + (m0 + month) // 12}"

    def label(self, k: int) -> str:
        """The year as a finance officer names it: ``2016`` or ``contract year 2``."""
        return str(self.years[k]) if self.basis == "calendar" else f"contract year {self.years[k]}"

    def span(self, k: int) -> str:
        """The months the year covers: ``Apr 2015–Dec 2015`` (or ``months 0–11``)."""
        a, b = self.first[k], self.last[k]
        if self.start is None:
            return f"months {a}–{b}"
        return f"{self.month_label(a)}–{self.month_label(b)}"

    def sums(self, monthly: np.ndarray) -> np.ndarray:
        """Sum a ``(..., months)`` array over each budget year's months: ``(..., years)``."""
        monthly = np.asarray(monthly, dtype=float)
        return np.add.reduceat(monthly, np.asarray(self.first), axis=-1)


def start_month(contract: Contract) -> tuple[int, int] | None:
    """Calendar year and month (0-11) of contract month 0, from ``meta.start`` (``YYYY-MM[-DD]``)."""
    text = contract.start
    if not text:
        return None
    year, month = str(text).split("-")[:2]
    return int(year), int(month) - 1


def budget_years(contract: Contract, from_month: int = 0) -> BudgetYears:
    """The budget years of the contract's horizon (calendar years when ``meta.start`` is given).

    ``from_month``: the years that remain from that month on, the first from that month (a
    re-forecast from a census: :mod:`sibsim.reforecast`).
    """
    T = contract.horizon_months
    start = start_month(contract)
    if start is None:
        first = tuple(range(0, T, 12))
        years = BudgetYears(tuple(k + 1 for k in range(len(first))), "contract year", first,
                            tuple(min(a + 11, T - 1) for a in first))
    else:
        year, m0 = start
        first = (0,) + tuple(range(12 - m0, T, 12))
        last = tuple(b - 1 for b in first[1:]) + (T - 1,)
        years = BudgetYears(tuple(year + k for k in range(len(first))), "calendar", first, last, start)
    if from_month <= 0:
        return years
    keep = [k for k in range(len(years)) if years.last[k] >= from_month]
    return BudgetYears(tuple(years.years[k] for k in keep), years.basis,
                       tuple(max(years.first[k], from_month) for k in keep),
                       tuple(years.last[k] for k in keep), years.start)


def path_years(contract: Contract, cash, from_month: int = 0) -> dict[str, np.ndarray]:
    """Per-path sums of :data:`PATH_SERIES` per budget year (from ``from_month`` on), ``(paths, years)`` float32 each."""
    years = budget_years(contract, from_month)
    out = {
        "outcome_payments": cash.outcome_payments,
        "total_paid": cash.gross_savings - cash.net_savings,
        "savings": cash.gross_savings,
        "capital_calls": cash.capital_calls.sum(axis=1),
        "investor_received": cash.distributions.sum(axis=1) + cash.guarantee_payouts.sum(axis=1),
    }
    if len(contract.payers) > 1 and cash.payer_due is not None:
        paid = cash.payer_due - cash.payer_defaulted - cash.payer_retained  # (J, P, T)
        for j, payer in enumerate(contract.payers):
            out[PAYER_PAID + payer.name] = paid[j]
    for name in _guarantors(contract):
        mask = np.array([g.guarantor == name for g in contract.guarantees])
        out[GUARANTOR_PAID + name] = (cash.guarantor_payments[mask] - cash.recoveries[mask]).sum(axis=0)
    return {k: years.sums(v).astype(np.float32) for k, v in out.items()}


def bytes_per_path(contract: Contract) -> int:
    """Bytes :func:`path_years` keeps per path."""
    series = len(PATH_SERIES) + (len(contract.payers) if len(contract.payers) > 1 else 0)
    series += len(_guarantors(contract))
    return 4 * series * len(budget_years(contract))


def _guarantors(contract: Contract) -> list[str]:
    """Guarantors that are not outcome payers (a payer's guarantees are among its costs)."""
    payers = set(contract.payer_names) | {contract.payer.name}
    return [name for name in dict.fromkeys(g.guarantor for g in contract.guarantees) if name not in payers]


# --- maximum exposure ------------------------------------------------------------------------
def guarantee_most(contract: Contract, guarantee) -> float:
    """The most a guarantee can pay (EUR): its cap, or what the tranches it covers can lose (their
    commitments, times its share for a ``share`` guarantee; at most its amount for a first loss)."""
    committed = sum(i.commitment for i in contract.investors if i.name in guarantee.investors)
    most = committed
    if guarantee.kind == "share":
        most = guarantee.share * committed
    elif guarantee.kind == "first_loss" and guarantee.amount is not None:
        most = min(guarantee.amount, committed)
    if guarantee.cap is not None:
        most = min(most, guarantee.cap)
    return float(most)


def guarantee_months(contract: Contract, guarantee) -> set[int]:
    """Months in which a guarantee can pay: its maturity month and/or the months the contract can
    terminate in (a review's month, an external stop's month)."""
    from .waterfall import guarantee_month

    months = set()
    if guarantee.pays in ("maturity", "termination_or_maturity"):
        months.add(guarantee_month(contract))
    if guarantee.pays in ("termination", "termination_or_maturity"):
        if contract.payer.review is not None:
            months.add(contract.payer.review.month)
        if contract.external_stop is not None:
            months.add(contract.external_stop.month)
    return {m for m in months if 0 <= m < contract.horizon_months}


def paying_years(contract: Contract, j: int, years: BudgetYears) -> np.ndarray:
    """(years,) bool: the budget years in which payer ``j`` can pay outcome payments: from the year of
    its first payment date on.  Not only the years with a payment date: money the waterfall holds back
    (above a return cap, or until capital is drawn) is paid in a later month, whenever it is taken."""
    months = [m for m in contract.payer_payment_months(j) if m < contract.horizon_months]
    months = [max(m, years.first[0]) for m in months]  # a re-forecast's years: held-back money may come later
    out = np.zeros(len(years), dtype=bool)
    if months:
        out[years.of_month(min(months)):] = True
    return out


def maximum_exposure(contract: Contract, from_month: int = 0) -> pd.DataFrame:
    """The most the contract's terms let the payer pay, per budget year and in all.

    Returns
    -------
    DataFrame
        Index: the budget years' labels, then ``"all years"``.  Columns ``outcome payments``
        (payment caps of the payers with a payment date in the year; NaN if one has no cap),
        ``fees`` (the payer's fees), ``guarantees`` (the most of each guarantee a payer gives
        that can pay in the year) and ``total paid`` (their sum), in the scenario's currency.
        ``from_month``: the years from that month on (:func:`budget_years`); the caps still bound
        all that is paid from then on, whatever was paid before.
    """
    years = budget_years(contract, from_month)
    B = len(years)
    payments = np.zeros(B + 1)
    for j, payer in enumerate(contract.payers):
        cap = np.inf if payer.payment_cap is None else float(payer.payment_cap)
        in_year = paying_years(contract, j, years)
        payments[:B] += np.where(in_year, cap, 0.0)
        payments[B] += cap if in_year.any() else 0.0
    fees = years.sums(contract.fee_schedule("payer"))
    fees = np.append(fees, fees.sum())
    guarantees = np.zeros(B + 1)
    payers = set(contract.payer_names) | {contract.payer.name}
    for g in contract.guarantees:
        if g.guarantor not in payers:
            continue
        months = guarantee_months(contract, g)
        most = guarantee_most(contract, g)
        months = [m for m in months if m >= years.first[0]]
        for k in {years.of_month(m) for m in months}:
            guarantees[k] += most
        guarantees[B] += most if months else 0.0
    payments = np.where(np.isinf(payments), np.nan, payments)
    frame = pd.DataFrame({"outcome payments": payments, "fees": fees, "guarantees": guarantees},
                         index=[years.label(k) for k in range(B)] + ["all years"])
    frame["total paid"] = frame.sum(axis=1, skipna=False)
    return frame


# --- the table -------------------------------------------------------------------------------
def _quantile_row(values: np.ndarray) -> dict:
    """Quantiles of :data:`QUANTILES` and batch errors of :data:`QUANTILE_SE` of one column."""
    q = np.quantile(values, QUANTILES)
    row = {f"p{int(round(level * 100)):02d}": float(v) for level, v in zip(QUANTILES, q)}
    if len(values) >= 2 * N_BATCHES:
        batches = np.array([np.quantile(b, QUANTILE_SE) for b in np.array_split(values, N_BATCHES)])
        se = batches.std(axis=0, ddof=1) / np.sqrt(N_BATCHES)
    else:
        se = np.full(len(QUANTILE_SE), np.nan)
    row.update({f"p{int(round(level * 100)):02d}_se": float(s) for level, s in zip(QUANTILE_SE, se)})
    return row


def _constant_row(value: float) -> dict:
    row = {f"p{int(round(level * 100)):02d}": float(value) for level in QUANTILES}
    row.update({f"p{int(round(level * 100)):02d}_se": 0.0 for level in QUANTILE_SE})
    return row


def budget_table(contract: Contract, years_paths: dict[str, np.ndarray], ledgers: pd.DataFrame,
                 from_month: int = 0) -> pd.DataFrame:
    """Per budget year and party: expected cash, its quantiles and the maximum exposure.

    Parameters
    ----------
    contract : Contract
    years_paths : dict of str -> ndarray (paths, years)
        :func:`path_years` of every path of the run.
    ledgers : DataFrame
        The run's expected ledgers (float64 means per month).

    Returns
    -------
    DataFrame with :data:`COLUMNS`, one row per budget year (then ``year`` empty and ``months``
    ``all years`` for the whole horizon), party and item.  Money in the scenario's currency;
    payments and costs positive, ``net position`` = savings less total paid, investors' ``net``
    = money received less capital paid in.  ``maximum``: :func:`maximum_exposure` on the payer's
    payment, fee, guarantee and total rows (and each payer's payments, with several), empty elsewhere.
    ``from_month``: the years from that month on, as ``years_paths`` were summed (a re-forecast).
    """
    years = budget_years(contract, from_month)
    B = len(years)
    n = len(next(iter(years_paths.values())))
    mean_years = {k: years.sums(ledgers[k].to_numpy()) for k in ledgers.columns}

    def with_total(per_year: np.ndarray) -> np.ndarray:  # (..., B) -> (..., B + 1)
        return np.concatenate([per_year, per_year.sum(axis=-1, keepdims=True)], axis=-1)

    def path(name):
        return with_total(years_paths[name].astype(np.float64))

    fees = with_total(mean_years["payer_fees"])
    total_paid = path("total_paid")
    paid_mean = with_total(mean_years["gross_savings"] - mean_years["net_savings"])
    series = {}  # (party, item) -> (per-path values (P, B+1) or None when the same on every path, means (B+1,))
    payer = contract.payer.name if len(contract.payers) == 1 else "all payers"
    payments = path("outcome_payments")
    series[(payer, "outcome payments")] = (payments, with_total(mean_years["outcome_payments"]))
    series[(payer, "fees")] = (None, fees)
    guarantees_mean = paid_mean - series[(payer, "outcome payments")][1] - fees
    if any(g.guarantor in set(contract.payer_names) | {contract.payer.name} for g in contract.guarantees):
        series[(payer, "guarantees")] = (total_paid - payments - fees[None, :], guarantees_mean)
    series[(payer, "total paid")] = (total_paid, paid_mean)
    savings = path("savings")
    series[(payer, "savings")] = (savings, with_total(mean_years["gross_savings"]))
    series[(payer, "net position")] = (savings - total_paid, with_total(mean_years["net_savings"]))
    if len(contract.payers) > 1:
        for p in contract.payers:
            values = path(PAYER_PAID + p.name)
            series[(p.name, "outcome payments")] = (values, None)
    calls, received = path("capital_calls"), path("investor_received")
    calls_mean = with_total(mean_years["capital_calls"])
    received_mean = with_total(mean_years["distributions"] + mean_years["guarantee_payouts"])
    series[("investors", "capital paid in")] = (calls, calls_mean)
    series[("investors", "money received")] = (received, received_mean)
    series[("investors", "net")] = (received - calls, received_mean - calls_mean)
    for name in _guarantors(contract):
        series[(name, "guarantee payouts")] = (path(GUARANTOR_PAID + name), None)

    exposure = maximum_exposure(contract, from_month)
    caps = {}
    for j, p in enumerate(contract.payers):
        per_year = np.append(paying_years(contract, j, years), False).astype(float)
        per_year[B] = 1.0 if per_year[:B].any() else 0.0
        caps[p.name] = per_year * (np.nan if p.payment_cap is None else p.payment_cap)
    rows = []
    for k in range(B + 1):
        total = k == B
        where = {"year": pd.NA if total else years.years[k], "basis": years.basis,
                 "months": "all years" if total else years.span(k),
                 "first_month": years.first[0] if total else years.first[k],
                 "last_month": years.last[-1] if total else years.last[k]}
        for (party, item), (values, means) in series.items():
            column = None if values is None else values[:, k]
            mean = float(means[k]) if means is not None else float(column.mean())
            row = {**where, "party": party, "item": item, "mean": mean,
                   "mean_se": 0.0 if column is None else (float(column.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan)}
            row.update(_constant_row(mean) if column is None else _quantile_row(column))
            row["maximum"] = np.nan
            if party == payer and item in exposure.columns:
                row["maximum"] = float(exposure.iloc[k][item])
            elif party in caps and item == "outcome payments" and len(contract.payers) > 1:
                row["maximum"] = float(caps[party][k])
            rows.append(row)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["year"] = frame["year"].astype("Int64")
    return frame


def reserve_rows(table: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The payer's rows a budget reads, one row per budget year (and ``all years``): expected total
    paid and its P90/P95, the maximum exposure, expected savings and their P10, expected net position
    and its P10 (the bad 1-in-10 year)."""
    payer = contract.payer.name if len(contract.payers) == 1 else "all payers"
    mine = table[table["party"] == payer]

    def item(name):
        return mine[mine["item"] == name].set_index("months")

    paid, savings, net = item("total paid"), item("savings"), item("net position")
    return pd.DataFrame({"label": [(_label(y, b)) for y, b in zip(paid["year"], paid["basis"])],
                         "paid_mean": paid["mean"], "paid_p90": paid["p90"], "paid_p95": paid["p95"],
                         "maximum": paid["maximum"], "savings_mean": savings["mean"], "savings_p10": savings["p10"],
                         "net_mean": net["mean"], "net_p10": net["p10"]})


def _label(year, basis) -> str:
    if pd.isna(year):
        return "All years"
    return str(int(year)) if basis == "calendar" else f"Contract year {int(year)}"
