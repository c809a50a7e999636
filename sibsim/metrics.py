"""Cashflows -> per-path measures of return and value, and their Monte Carlo summary.

Per path (:func:`path_metrics`): investor IRR (with a status, never a silent
NaN), multiple (MOIC), NPV, loss; payer outcome payments, gross and net
savings, NPV of net savings; payback months.

Across paths (:func:`summarise`): estimates with Monte Carlo standard errors
(:mod:`sibsim.estimators`: means use ``sd / sqrt(n)``, probabilities
``sqrt(p (1 - p) / n)``, ratios the delta method, and quantiles or tail means
(CVaR) the spread of the estimate over 20 independent batches of paths).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .cashflows import Cashflows, event_totals
from .estimators import Statistic
from .contracts import Contract
from .irr import STATUS_LABELS, irr, npv
from .montecarlo import Outcomes

#: Columns of ``Results.paths`` with their meaning (also written beside paths.csv).
PATH_COLUMNS = {
    "investor_irr": "annual IRR of all investors together; NaN where irr_status is not defined/total_loss",
    "irr_status": "defined, total_loss (nothing received: -100 %), net_outflows_only (money received, but each "
                  "month less than that month's capital call: no IRR), no_sign_change, no_root_in_range or "
                  "multiple_roots",
    "investor_moic": "multiple on invested capital: distributions / capital called",
    "investor_npv": "NPV of investor cash flows at analysis.investor_discount_rate (0: the nominal sum), money",
    "investor_loss": "capital called not returned (nominal), money; 0 when fully repaid",
    "capital_called": "capital paid in by investors, money",
    "distributions": "cash paid out to investors, incl. guarantee payouts, money",
    "outcome_payments": "outcome payments made by the payer, money",
    "retained_by_payer": "payments due but still withheld at the end because every investor is at its return cap: "
                         "kept by the payer, money",
    "defaulted_by_payer": "payments due that the payer did not pay (appropriation risk), money",
    "guarantee_payouts": "principal losses covered by guarantors (incl. capital protection), money",
    "terminated": "the contract ended early (a failed review or an external stop)",
    "termination_month": "month the contract ended early; empty if it ran its course",
    "termination_reason": "why it ended early: review or external event; empty if it ran its course",
    "guarantor_payments": "what guarantors paid out, less what they recouped, money",
    "provider_payments": "what the provider received beyond its delivery budget: success fees, split shares "
                         "and outcome payments made to it directly, money",
    "gross_savings": "what the payer spends on the counterfactual less what it spends on the treated group, "
                     "over the scenario's cost items (its spending on participants), in the term and the tail "
                     "after it, money",
    "gross_savings_within_term": "gross savings in the months of the term only (no tail), money",
    "net_savings": "gross savings less outcome payments, payer-borne fees and the payer's guarantee payouts "
                   "(capital protection), term and tail, money",
    "net_savings_within_term": "net savings counting only the savings within the term (every payment and "
                               "fee still counted), money",
    "payer_npv": "NPV of the payer's net savings at analysis.public_discount_rate (0: the nominal sum), money",
    "primary_outcomes": "treated participants reaching the primary outcome within the term",
    "net_primary_outcomes": "primary outcomes within the term in the direction the contract pays for: treated "
                            "minus counterfactual, or counterfactual minus treated (events avoided) for an "
                            "outcome measured as a relative_reduction",
    "investor_payback_month": "first month by which cumulative distributions reach the capital called; empty if never",
    "payer_payback_month": "month from which the payer's cumulative net savings stay >= 0; empty if never",
}
#: Money columns are in the scenario's currency (``meta.currency``, default EUR).
#: Per-party columns added after these, one per party: ``guarantor_paid:NAME`` (each guarantor, net of
#: recoveries) and, with several payers, ``payer_paid:NAME`` (each payer's outcome payments, net).
GUARANTOR_PAID, PAYER_PAID = "guarantor_paid:", "payer_paid:"
_REASONS = ["", "review", "external event"]


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
    names = [n for n in PATH_COLUMNS if n not in ("irr_status", "termination_reason")]
    names += [n for n in columns if n.startswith((GUARANTOR_PAID, PAYER_PAID))]
    frame = pd.DataFrame({name: columns[name] for name in names}, copy=False)
    status = pd.Categorical.from_codes(columns["irr_status"], categories=_STATUS_CATEGORIES)
    frame.insert(1, "irr_status", status)
    reason = pd.Categorical.from_codes(np.asarray(columns["termination_reason"], dtype=np.int8), categories=_REASONS)
    frame.insert(frame.columns.get_loc("termination_month") + 1, "termination_reason", reason)
    for col in ("investor_payback_month", "payer_payback_month", "termination_month"):
        frame[col] = frame[col].astype("Int64")
    return frame


def within_term(group, term: int, scales: np.ndarray | None = None) -> np.ndarray:
    """Occurrences of each outcome within the term per path and cohort, (P, C, K), in the outcome's
    unit (counts times its ``scale``).

    Whole counts are summed exactly (:func:`sibsim.cashflows.event_totals`) before the scale is applied.
    """
    total = event_totals(group, [term])[..., 0]  # whole counts: exact (sibsim.cashflows.event_totals)
    return scaled_within(total, scales)


def scaled_within(total: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    """Counts within the term (P, C, K) in the outcomes' units."""
    return total if scales is None else total * np.asarray(scales)[None, None, :]


def primary_direction(contract: Contract) -> int:
    """+1 if more of the primary outcome is better, -1 if the contract pays for it to fall.

    An outcome is meant to fall (reconvictions at Peterborough) when the trigger, a tier
    table or the review measures it as a ``relative_reduction``; then a net outcome is an
    event avoided (counterfactual minus treated), so a better programme has more of them.
    """
    return contract.primary_direction


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
    k = contract.outcome_index(contract.primary_outcome)
    term = contract.term_months
    if within is None:
        scales = contract.outcome_scales
        within = within_term(outcomes.treated, term, scales), within_term(outcomes.comparison, term, scales)
    primary = within[0][:, :, k].sum(axis=1)
    # Counterfactual: comparison counts scaled per cohort (integer sums first, then one product per cohort).
    counterfactual = (within[1][:, :, k] * outcomes.comparison_scale[None, :]).sum(axis=1)
    net_primary = primary - counterfactual if primary_direction(contract) > 0 else counterfactual - primary
    gross = cash.gross_savings
    total_net = net.sum(axis=1)
    # Within the term: the savings of the tail months (after the term) are left out; every payment
    # and fee is still counted, wherever it falls (the payer owes them whatever the tail assumes).
    tail_savings = gross[:, term:].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        moic = np.where(called > 0, distributed / np.where(called > 0, called, 1.0), np.nan)
    P = len(called)
    end = cash.termination_month if cash.termination_month is not None else np.where(cash.terminated, 0, -1)
    reason = (cash.termination_reason if cash.termination_reason is not None
              else np.asarray(cash.terminated, dtype=np.int8))
    guarantor_net = (cash.guarantor_payments - cash.recoveries).sum(axis=2)  # (G, P)
    provider = np.zeros(P)
    for part in (cash.provider_payments, cash.provider_outcome_payments):
        if part is not None:
            provider = provider + part.sum(axis=1)
    parties = {}
    for name in dict.fromkeys(g.guarantor for g in contract.guarantees):
        mask = np.array([g.guarantor == name for g in contract.guarantees])
        parties[GUARANTOR_PAID + name] = guarantor_net[mask].sum(axis=0)
    if len(contract.payers) > 1 and cash.payer_due is not None:
        net_paid = (cash.payer_due - cash.payer_defaulted - cash.payer_retained).sum(axis=2)  # (J, P)
        for j, payer in enumerate(contract.payers):
            parties[PAYER_PAID + payer.name] = net_paid[j]
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
        "termination_month": np.where(end >= 0, end, np.nan),
        "termination_reason": reason,
        "guarantor_payments": guarantor_net.sum(axis=0),
        "provider_payments": provider,
        "gross_savings": gross.sum(axis=1),
        "gross_savings_within_term": gross[:, :term].sum(axis=1),
        "net_savings": total_net,
        "net_savings_within_term": total_net - tail_savings,
        "payer_npv": npv(net, contract.public_discount_rate),
        "primary_outcomes": primary,
        "net_primary_outcomes": net_primary,
        "investor_payback_month": _payback(np.cumsum(received, axis=1), called[:, None]),
        "payer_payback_month": payer_payback,
        **parties,
    }


#: Units of :func:`summarise` shown as percentages; with ``x`` (a multiple) the units that are not money
#: (every other unit is a currency).
PERCENT_UNITS = ("per year", "probability", "share")
#: Unit of an outcome row that can exceed one per participant (events, person-months or days, census
#: counts): the mean count per member of the group.
PER_PARTICIPANT = "per participant"
NON_MONEY_UNITS = ("x", PER_PARTICIPANT) + PERCENT_UNITS


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


def _rate_note(rate: float, field: str) -> str:
    """Which discount rate an NPV used, in words (a rate of 0 makes the NPV the nominal sum)."""
    if rate == 0:
        return f"NPV at 0 % a year ({field} = 0): the nominal sum, not discounted"
    return f"NPV at {rate * 100:g} % a year ({field})"


def npv_notes(contract: Contract) -> dict[str, str]:
    """The discount rate of each per-path NPV column (``investor_npv``, ``payer_npv``), in words."""
    return {"investor_npv": _rate_note(contract.investor_discount_rate, "analysis.investor_discount_rate"),
            "payer_npv": _rate_note(contract.public_discount_rate, "analysis.public_discount_rate")}


def summary_notes(contract: Contract | None) -> dict[str, str]:
    """What a summary row includes, for rows whose number depends on a setting: metric -> note.

    The NPV rows name their discount rate; the savings rows say whether they count the
    savings of the ``tail_months`` after the term.
    """
    if contract is None:
        return {}
    term, tail = contract.term_months, contract.tail_months
    with_tail = (f"savings within the {term}-month term and the {tail}-month tail after it"
                 if tail else f"savings within the {term}-month term (no tail: tail_months = 0)")
    within = f"savings within the {term}-month term only; every payment and fee counted"
    notes = {m: with_tail for m in ("expected_gross_savings", "expected_net_savings", "net_savings_p05",
                                    "probability_pays_more_than_saves")}
    notes.update({m: within for m in ("expected_gross_savings_within_term", "expected_net_savings_within_term",
                                      "probability_pays_more_than_saves_within_term")})
    npv = npv_notes(contract)
    notes["expected_npv"] = npv["investor_npv"]
    notes["expected_npv_net_savings"] = npv["payer_npv"] + "; " + with_tail
    if primary_direction(contract) < 0:
        notes["cost_per_net_primary_outcome"] = (f"per {contract.outcome_label(contract.primary_outcome)} avoided "
                                                 "(counterfactual minus treated): the contract pays for it to fall")
    return notes


def _party_rows(paths: pd.DataFrame, contract: Contract | None, cur: str) -> list:
    """Rows of the parties a deal may have beyond investors and one payer: each guarantor (expected
    payout, probability of paying, mean of its worst 5 % of payouts), each of several payers, the
    provider's payments from the waterfall, and why contracts terminate early."""
    rows = []
    if contract is None:
        return rows
    for column in paths.columns:
        if column.startswith(GUARANTOR_PAID):
            name, paid = column[len(GUARANTOR_PAID):], paths[column].to_numpy(float)
            rows += [("guarantors", f"expected_payout[{name}]", cur, Statistic.mean(paid)),
                     ("guarantors", f"probability_pays[{name}]", "probability", Statistic.probability(paid > 0.005)),
                     ("guarantors", f"cvar95_payout[{name}]", cur, Statistic.upper_tail_mean(paid))]
        elif column.startswith(PAYER_PAID):
            name = column[len(PAYER_PAID):]
            rows.append(("payer", f"expected_outcome_payments[{name}]", cur, Statistic.mean(paths[column])))
    if any(s.pay in ("success_fee", "split") for s in contract.waterfall.steps + contract.waterfall.on_termination) \
            or any(p.paid_to == "provider" for p in contract.payers):
        rows.append(("provider", "expected_provider_payments", cur, Statistic.mean(paths["provider_payments"])))
    if contract.external_stop is not None:
        reason = paths["termination_reason"].astype(str).to_numpy()
        rows += [("payer", "probability_terminated_by_review", "probability", Statistic.probability(reason == "review")),
                 ("payer", "probability_terminated_by_external_event", "probability",
                  Statistic.probability(reason == "external event"))]
    return rows


def summary_statistics(paths: pd.DataFrame, outcome_shares: dict[str, np.ndarray],
                       contract: Contract | None = None) -> list[tuple[str, str, str, Statistic]]:
    """The rows of :func:`summarise` before they are estimated: ``(party, metric, unit, Statistic)``.

    Kept apart so that two runs' rows can be differenced path by path
    (:meth:`sibsim.estimators.Statistic.difference`, read by :func:`sibsim.compare.compare`).
    """
    cur = contract.currency if contract is not None else "EUR"
    irr_ok = paths["irr_status"].isin(["defined", "total_loss"]).to_numpy()
    irr_values = ranked_irr(paths)
    moic = paths["investor_moic"].to_numpy()
    investor_result = (paths["distributions"] - paths["capital_called"]).to_numpy()
    rows = [
        ("investors", "expected_moic", "x", Statistic.mean(moic)),
        ("investors", "median_irr", "per year", Statistic.quantile(irr_values, 0.5)),
        ("investors", "irr_p05", "per year", Statistic.quantile(irr_values, 0.05)),
        ("investors", "irr_p95", "per year", Statistic.quantile(irr_values, 0.95)),
        ("investors", "share_irr_defined", "share", Statistic.probability(irr_ok)),
        ("investors", "probability_of_loss", "probability", Statistic.probability(moic < 1 - 1e-12)),
        ("investors", "expected_loss", cur, Statistic.mean(paths["investor_loss"])),
        ("investors", "cvar05_net_result", cur, Statistic.lower_tail_mean(investor_result)),
        ("investors", "expected_npv", cur, Statistic.mean(paths["investor_npv"])),
        ("investors", "expected_distributions", cur, Statistic.mean(paths["distributions"])),
        ("investors", "expected_capital_called", cur, Statistic.mean(paths["capital_called"])),
        ("investors", "expected_guarantee_payouts", cur, Statistic.mean(paths["guarantee_payouts"])),
        ("payer", "expected_outcome_payments", cur, Statistic.mean(paths["outcome_payments"])),
        ("payer", "expected_retained_above_caps", cur, Statistic.mean(paths["retained_by_payer"])),
        ("payer", "expected_defaulted", cur, Statistic.mean(paths["defaulted_by_payer"])),
        ("payer", "probability_terminated_early", "probability", Statistic.probability(paths["terminated"].to_numpy())),
        ("payer", "expected_gross_savings", cur, Statistic.mean(paths["gross_savings"])),
        ("payer", "expected_gross_savings_within_term", cur, Statistic.mean(paths["gross_savings_within_term"])),
        ("payer", "expected_net_savings", cur, Statistic.mean(paths["net_savings"])),
        ("payer", "expected_net_savings_within_term", cur, Statistic.mean(paths["net_savings_within_term"])),
        ("payer", "net_savings_p05", cur, Statistic.quantile(paths["net_savings"], 0.05)),
        ("payer", "probability_pays_more_than_saves", "probability", Statistic.probability(paths["net_savings"] < 0)),
        ("payer", "probability_pays_more_than_saves_within_term", "probability",
         Statistic.probability(paths["net_savings_within_term"] < 0)),
        ("payer", "expected_npv_net_savings", cur, Statistic.mean(paths["payer_npv"])),
        ("payer", "cost_per_primary_outcome", cur, Statistic.ratio(paths["outcome_payments"], paths["primary_outcomes"])),
        ("payer", "cost_per_net_primary_outcome", cur,
         Statistic.ratio(paths["outcome_payments"], paths["net_primary_outcomes"])),
    ]
    rows += _party_rows(paths, contract, cur)
    once = {o.name: o.once_per_participant for o in contract.outcomes} if contract is not None else {}
    for group, shares in outcome_shares.items():
        outcome = group.split("_", 1)[1]
        unit = "share" if once.get(outcome, True) else PER_PARTICIPANT
        rows.append(("outcomes", group, unit, Statistic.mean(shares)))
    return rows


def summarise(paths: pd.DataFrame, outcome_shares: dict[str, np.ndarray],
              contract: Contract | None = None) -> pd.DataFrame:
    """Headline estimates with Monte Carlo standard errors (:mod:`sibsim.estimators`).

    Parameters
    ----------
    paths : DataFrame
        :func:`path_metrics` rows for every path.
    outcome_shares : dict of str -> ndarray (paths,)
        Share of treated / comparison participants reaching each outcome within the term.
    contract : Contract, optional
        The contract simulated: money rows get its currency as their unit (default
        ``EUR``) and ``note`` says which discount rate each NPV used and whether savings
        include the tail (:func:`summary_notes`).

    Returns
    -------
    DataFrame indexed by metric, with columns ``estimate``, ``std_error``, ``unit``
    (the currency for money, ``x``, ``per year``, ``probability`` or ``share``), ``party``
    and ``note`` (empty where there is nothing to add).
    """
    notes = summary_notes(contract)
    rows = [(name, *stat.estimate(), unit, party, notes.get(name, ""))
            for party, name, unit, stat in summary_statistics(paths, outcome_shares, contract)]
    return pd.DataFrame(rows, columns=["metric", "estimate", "std_error", "unit", "party", "note"]).set_index("metric")
