"""Cashflows -> per-path measures of return and value, and their Monte Carlo summary.

Per path (:func:`path_metrics`): investor IRR (with a status, never a silent
NaN), multiple (MOIC), NPV, loss; payer outcome payments, gross and net
savings, NPV of net savings; payback months.

Across paths (:func:`summarise`): estimates with Monte Carlo standard errors.
Means use ``sd / sqrt(n)``, probabilities ``sqrt(p (1 - p) / n)``, ratios the
delta method, and quantiles or tail means (CVaR) the spread of the estimate
over 20 independent batches of paths (batch means).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .cashflows import Cashflows
from .contracts import OUTCOMES, Contract
from .irr import STATUS_LABELS, irr, npv
from .montecarlo import Outcomes

#: Columns of ``Results.paths`` with their meaning (also written beside paths.csv).
PATH_COLUMNS = {
    "investor_irr": "annual IRR of all investors together; NaN where irr_status is not defined/total_loss",
    "irr_status": "defined, total_loss (nothing received: -100 %), net_outflows_only (money received, but each "
                  "month less than that month's capital call: no IRR), no_sign_change, no_root_in_range or "
                  "multiple_roots",
    "investor_moic": "multiple on invested capital: distributions / capital called",
    "investor_npv": "NPV of investor cash flows at analysis.investor_discount_rate, EUR",
    "investor_loss": "capital called not returned (nominal), EUR; 0 when fully repaid",
    "capital_called": "capital paid in by investors, EUR",
    "distributions": "cash paid out to investors, incl. guarantee payouts, EUR",
    "outcome_payments": "outcome payments made by the payer, EUR",
    "retained_by_payer": "payments due but still withheld at the end because every investor is at its return cap: "
                         "kept by the payer, EUR",
    "defaulted_by_payer": "payments due that the payer did not pay (appropriation risk), EUR",
    "guarantee_payouts": "principal losses covered by guarantors (incl. capital protection), EUR",
    "terminated": "the contract ended early at its review",
    "gross_savings": "benefit payments avoided (treated minus counterfactual), EUR",
    "net_savings": "gross savings less outcome payments and payer-borne fees, EUR",
    "payer_npv": "NPV of the payer's net savings at analysis.public_discount_rate, EUR",
    "primary_outcomes": "treated participants reaching the primary outcome within the term",
    "net_primary_outcomes": "primary outcomes within the term, treated minus counterfactual",
    "investor_payback_month": "first month by which cumulative distributions reach the capital called; empty if never",
    "payer_payback_month": "month from which the payer's cumulative net savings stay >= 0; empty if never",
}


def _payback(cumulative: np.ndarray, target: np.ndarray | float) -> np.ndarray:
    """First month where ``cumulative >= target`` (float months; NaN if never)."""
    hit = cumulative >= target - 1e-6
    first = hit.argmax(axis=1).astype(float)
    first[~hit.any(axis=1)] = np.nan
    return first


def path_metrics(contract: Contract, cash: Cashflows, outcomes: Outcomes) -> pd.DataFrame:
    """One row per path with the measures in :data:`PATH_COLUMNS`."""
    return path_frame(path_metric_arrays(contract, cash, outcomes))


_STATUS_CATEGORIES = [STATUS_LABELS[i] for i in sorted(STATUS_LABELS)]


def path_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """The ``Results.paths`` frame from :func:`path_metric_arrays` columns (possibly concatenated over blocks)."""
    frame = pd.DataFrame({name: columns[name] for name in PATH_COLUMNS if name != "irr_status"}, copy=False)
    status = pd.Categorical.from_codes(columns["irr_status"], categories=_STATUS_CATEGORIES)
    frame.insert(1, "irr_status", status)
    for col in ("investor_payback_month", "payer_payback_month"):
        frame[col] = frame[col].astype("Int64")
    return frame


def within_term(group, term: int) -> np.ndarray:
    """Events of each outcome within the term per path and cohort, (P, C, 4): int64 counts (or float expectations).

    Integer counts are summed in their own type (int32 cannot overflow here: at most one event of a
    kind per participant), which is exact and avoids a cast inside the reduction.
    """
    events = group.events[..., :term]
    if np.issubdtype(events.dtype, np.integer):
        return events.sum(axis=-1, dtype=events.dtype).astype(np.int64)
    return events.sum(axis=-1)


def path_metric_arrays(contract: Contract, cash: Cashflows, outcomes: Outcomes,
                       within: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The measures of :data:`PATH_COLUMNS` as plain arrays (``irr_status``: int8 codes of
    :data:`~sibsim.irr.STATUS_LABELS`; payback months: float with NaN for never).

    Cheap to send from a worker process; :func:`path_frame` turns them into the per-path frame.
    ``within``: :func:`within_term` of the treated and comparison groups, if already computed.
    """
    calls = cash.capital_calls.sum(axis=1)  # (P, T)
    called = calls.sum(axis=1)
    received = cash.distributions.sum(axis=1) + cash.guarantee_payouts.sum(axis=1)  # (P, T)
    distributed = received.sum(axis=1)
    investor_net = received - calls
    rate = irr(investor_net, received=received)  # calls and receipts kept apart for the status
    net = cash.net_savings
    cum_net = np.cumsum(net, axis=1)
    # Payer payback: after the last month with a negative cumulative position.
    negative = cum_net < -1e-6
    last_negative = np.where(negative.any(axis=1), negative.shape[1] - 1 - negative[:, ::-1].argmax(axis=1), -1)
    payer_payback = np.where(negative[:, -1], np.nan, last_negative + 1.0)
    k = OUTCOMES.index(contract.primary_outcome)
    term = contract.term_months
    if within is None:
        within = within_term(outcomes.treated, term), within_term(outcomes.comparison, term)
    primary = within[0][:, :, k].sum(axis=1)
    # Counterfactual: comparison counts scaled per cohort (integer sums first, then one product per cohort).
    counterfactual = (within[1][:, :, k] * outcomes.comparison_scale[None, :]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        moic = np.where(called > 0, distributed / np.where(called > 0, called, 1.0), np.nan)
    return {
        "investor_irr": rate.rate,
        "irr_status": np.asarray(rate.status, dtype=np.int8),
        "investor_moic": moic,
        "investor_npv": npv(investor_net, contract.investor_discount_rate),
        "investor_loss": np.maximum(called - distributed, 0.0),
        "capital_called": called,
        "distributions": distributed,
        "outcome_payments": cash.outcome_payments.sum(axis=1),
        "retained_by_payer": cash.retained_by_payer.sum(axis=1),
        "defaulted_by_payer": cash.defaulted_by_payer.sum(axis=1),
        "guarantee_payouts": cash.guarantee_payouts.sum(axis=(1, 2)),
        "terminated": np.asarray(cash.terminated, dtype=bool),
        "gross_savings": cash.gross_savings.sum(axis=1),
        "net_savings": net.sum(axis=1),
        "payer_npv": npv(net, contract.public_discount_rate),
        "primary_outcomes": primary,
        "net_primary_outcomes": primary - counterfactual,
        "investor_payback_month": _payback(np.cumsum(received, axis=1), called[:, None]),
        "payer_payback_month": payer_payback,
    }


def ranked_irr(paths: pd.DataFrame) -> np.ndarray:
    """Per-path IRR for quantiles and histograms: defined IRRs, total losses at -100 %, and paths that
    received money but lost it in every month (``net_outflows_only``) at -100 % as well: their NPV is
    negative at every rate, so they rank below every defined IRR, though they have no IRR of their own.
    NaN for the other statuses (no sign change, no root in range, several roots)."""
    status = paths["irr_status"]
    rate = paths["investor_irr"].to_numpy(dtype=float)
    bottom = (status == "net_outflows_only").to_numpy()
    ok = status.isin(["defined", "total_loss"]).to_numpy()
    return np.where(ok, rate, np.where(bottom, -1.0, np.nan))


# --- Monte Carlo summary ---------------------------------------------------------------
N_BATCHES = 20


def _batch_se(values: np.ndarray, statistic) -> float:
    """Standard error of ``statistic(values)`` from independent batches of paths."""
    n = len(values)
    if n < 2 * N_BATCHES:
        return float("nan")
    batches = np.array_split(values, N_BATCHES)
    stats = np.array([statistic(b) for b in batches], dtype=float)
    stats = stats[np.isfinite(stats)]
    if len(stats) < 2:
        return float("nan")
    # A batch of size n/B has B times the variance of the full-sample estimate.
    return float(stats.std(ddof=1) / np.sqrt(len(stats)))


def _mean(x):
    x = np.asarray(x, dtype=float)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def _prob(mask):
    p = float(np.mean(mask))
    return p, float(np.sqrt(p * (1 - p) / len(mask)))


def _quantile(x, q):
    x = np.asarray(x, dtype=float)
    f = lambda v: np.nanquantile(v, q) if np.isfinite(v).any() else np.nan  # noqa: E731
    return float(f(x)), _batch_se(x, f)


def _cvar(x, alpha=0.05):
    """Mean of the worst ``alpha`` share of outcomes (lower tail)."""
    def f(v):
        v = np.sort(v)
        k = max(int(np.ceil(alpha * len(v))), 1)
        return v[:k].mean()
    x = np.asarray(x, dtype=float)
    return float(f(x)), _batch_se(x, f)


def _ratio(num, den):
    """Ratio of means with a delta-method standard error."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    mn, md = num.mean(), den.mean()
    if md == 0:
        return float("nan"), float("nan")
    r = mn / md
    resid = (num - r * den) / md
    return float(r), float(resid.std(ddof=1) / np.sqrt(len(num)))


def summarise(paths: pd.DataFrame, outcome_shares: dict[str, np.ndarray]) -> pd.DataFrame:
    """Headline estimates with Monte Carlo standard errors.

    Parameters
    ----------
    paths : DataFrame
        :func:`path_metrics` rows for every path.
    outcome_shares : dict of str -> ndarray (paths,)
        Share of treated / comparison participants reaching each outcome within the term.

    Returns
    -------
    DataFrame indexed by metric, with columns ``estimate``, ``std_error``, ``unit``, ``party``.
    """
    irr_ok = paths["irr_status"].isin(["defined", "total_loss"]).to_numpy()
    irr_values = ranked_irr(paths)
    moic = paths["investor_moic"].to_numpy()
    investor_result = (paths["distributions"] - paths["capital_called"]).to_numpy()
    rows = [
        ("investors", "expected_moic", "x", _mean(moic)),
        ("investors", "median_irr", "per year", _quantile(irr_values, 0.5)),
        ("investors", "irr_p05", "per year", _quantile(irr_values, 0.05)),
        ("investors", "irr_p95", "per year", _quantile(irr_values, 0.95)),
        ("investors", "share_irr_defined", "share", _prob(irr_ok)),
        ("investors", "probability_of_loss", "probability", _prob(moic < 1 - 1e-12)),
        ("investors", "expected_loss", "EUR", _mean(paths["investor_loss"])),
        ("investors", "cvar05_net_result", "EUR", _cvar(investor_result)),
        ("investors", "expected_npv", "EUR", _mean(paths["investor_npv"])),
        ("investors", "expected_distributions", "EUR", _mean(paths["distributions"])),
        ("investors", "expected_capital_called", "EUR", _mean(paths["capital_called"])),
        ("investors", "expected_guarantee_payouts", "EUR", _mean(paths["guarantee_payouts"])),
        ("payer", "expected_outcome_payments", "EUR", _mean(paths["outcome_payments"])),
        ("payer", "expected_retained_above_caps", "EUR", _mean(paths["retained_by_payer"])),
        ("payer", "expected_defaulted", "EUR", _mean(paths["defaulted_by_payer"])),
        ("payer", "probability_terminated_early", "probability", _prob(paths["terminated"].to_numpy())),
        ("payer", "expected_gross_savings", "EUR", _mean(paths["gross_savings"])),
        ("payer", "expected_net_savings", "EUR", _mean(paths["net_savings"])),
        ("payer", "net_savings_p05", "EUR", _quantile(paths["net_savings"], 0.05)),
        ("payer", "probability_pays_more_than_saves", "probability", _prob(paths["net_savings"] < 0)),
        ("payer", "expected_npv_net_savings", "EUR", _mean(paths["payer_npv"])),
        ("payer", "cost_per_primary_outcome", "EUR", _ratio(paths["outcome_payments"], paths["primary_outcomes"])),
        ("payer", "cost_per_net_primary_outcome", "EUR",
         _ratio(paths["outcome_payments"], paths["net_primary_outcomes"])),
    ]
    for group, shares in outcome_shares.items():
        rows.append(("outcomes", group, "share", _mean(shares)))
    frame = pd.DataFrame(
        [(name, est, se, unit, party) for party, name, unit, (est, se) in rows],
        columns=["metric", "estimate", "std_error", "unit", "party"],
    ).set_index("metric")
    return frame
