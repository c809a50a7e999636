"""Settlement: Outcomes -> monthly ledgers of every party, as ``(paths, months)`` arrays.

Pure functions of the contract and the simulated (or observed) outcomes; the
only randomness settlement needs, the payers' defaults and an external stop, is
drawn by the engine and carried in :class:`~sibsim.montecarlo.Outcomes`.

1. **Measure.** At each measurement month the evaluator counts outcomes achieved
   so far by the treated group and by the counterfactual (scaled to the treated
   group's size).
2. **Terminate.** If the contract has a review and the measured improvement is
   below its floor (any or all of its conditions), or an external event stops the
   programme, the contract ends there (the earlier of the two): later cohorts are
   not enrolled, no further capital is called, later measurements are not paid.
3. **Payments due.** Rate card on net outcomes, share of measured savings, tier
   tables on the measured improvement: a cumulative entitlement paid by high-water
   mark (a dip is never clawed back), each payer's ``payment_lag_months`` after the
   measurement.  A cohort trigger adds early per-cohort payments and a pooled final
   payment.  With several payers, each pays its share of the parts it buys (an
   outcome's price, tiers and trigger; the savings share), with its own high-water
   mark, lag, cap and defaults.  A savings share whose switch follows a balance is
   settled month by month (:class:`_BalanceLinkedSavings`).
4. **The capital stack** (:mod:`sibsim.waterfall`): caps and defaults, recycling,
   draws by the draw order, the ordered waterfall (and its termination list),
   guarantees.  A payer's cap counts every payment that fell due and was not
   defaulted on (paid, or withheld and still owed).  A defaulted payment was not
   paid, so it does not use up the cap; money withheld is still owed, so it does (it
   is paid, or kept by the payer only once no step can take it).  Hence paying more
   per outcome never leaves investors worse off.

Ledger identities (tested on every path):

* ``outcome_payments_due == outcome_payments + defaulted_by_payer + retained_by_payer``
* ``retained_by_payer.cumsum(months) == withheld_by_payer + what splits gave the payers``
* ``outcome_payments - provider_outcome_payments == distributions.sum(tranches) + recycled
  + change in vehicle_cash + provider_payments + waterfall_fees + guarantor_recoveries.sum(guarantees)``
* ``capital_calls.sum(tranches) + recycled == provider_funding + investor_fees``
* ``net_savings == gross_savings - outcome_payments - payer_fees - payers' guarantee payouts + their recoveries``
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import tallies, waterfall, waterfall_kernel
from .contracts import Contract
from .montecarlo import Outcomes


@dataclass(frozen=True)
class Cashflows:
    """Monthly ledgers in the contract's currency; ``P`` paths, ``I`` tranches, ``J`` payers, ``G`` guarantees, ``T`` months.

    Attributes
    ----------
    capital_calls : (P, I, T)
        Capital drawn from each tranche (:attr:`Contract.investors` order).
    distributions : (P, I, T)
        Cash the waterfall paid each tranche (interest, principal and return).
    interest_paid, principal_repaid : (P, I, T)
        The parts of ``distributions`` that paid interest and repaid principal (the rest is return).
    guarantee_payouts : (P, I, T)
        Cash paid to each tranche by guarantors.
    guarantor_payments, guarantor_recoveries : (G, P, T)
        What each guarantee paid out, and what its guarantor got back (``recoup``).
    outcome_payments_due : (P, T)
        What falls due under the payment formula, within the payers' caps (which count payments
        not defaulted on: with defaults, the total due, defaulted part included, can exceed them).
    defaulted_by_payer : (P, T)
        Due but not paid: a payer defaulted on that payment.
    retained_by_payer : (P, T)
        Due but kept by the payers: the change of ``withheld_by_payer`` (negative in a month
        where withheld money is paid after a new capital call) plus the payers' shares of splits.
    withheld_by_payer : (P, T)
        Owed at the end of the month but not paid: no waterfall step could take it.
    outcome_payments : (P, T)
        Net cash the payers pay: due, less defaulted, less retained (to the vehicle or the provider).
    payer_due, payer_defaulted, payer_retained, payer_withheld : (J, P, T)
        The same, per payer (:attr:`Contract.payers` order).
    provider_outcome_payments : (P, T)
        Outcome payments made to the provider directly, outside the waterfall.
    provider_payments : (P, T)
        What the waterfall paid the provider (success fees, split shares).
    waterfall_fees : (P, T)
        Fees paid by the waterfall's ``fees`` step.
    recycled : (P, T)
        Outcome money used to fund delivery instead of new capital.
    vehicle_cash : (P, T)
        Outcome money held by the vehicle at the end of the month (recycling).
    gross_savings : (P, T)
        What the payer does not spend: the counterfactual's costs less the treated group's.
    provider_funding, investor_fees : (P, T)
        Delivery budget and investor-borne fees actually spent (lower after early termination).
    payer_fees : (T,)
        Fees borne by the payer.
    measured_outcomes : (P, K, M)
        Net outcomes (treated minus counterfactual) per outcome at each measurement.
    measured_treated, measured_counterfactual : (P, K, M)
        The two counts behind them (the counterfactual: the comparison group scaled to the
        treated group, or its exact expectation).
    terminated : (P,) bool
        The contract ended early.
    termination_month, termination_reason : (P,)
        Month it ended (-1: it did not) and why (:data:`TERMINATION_REASONS`).
    payer_guarantee_mask : (G,) bool
        Guarantees given by a payer (capital protection).
    """

    capital_calls: np.ndarray
    distributions: np.ndarray
    guarantee_payouts: np.ndarray
    guarantor_payments: np.ndarray
    outcome_payments_due: np.ndarray
    defaulted_by_payer: np.ndarray
    retained_by_payer: np.ndarray
    withheld_by_payer: np.ndarray
    outcome_payments: np.ndarray
    recycled: np.ndarray
    vehicle_cash: np.ndarray
    gross_savings: np.ndarray
    provider_funding: np.ndarray
    investor_fees: np.ndarray
    payer_fees: np.ndarray
    measured_outcomes: np.ndarray
    terminated: np.ndarray
    payer_guarantee_mask: np.ndarray
    termination_month: np.ndarray | None = None
    termination_reason: np.ndarray | None = None
    interest_paid: np.ndarray | None = None
    principal_repaid: np.ndarray | None = None
    guarantor_recoveries: np.ndarray | None = None
    payer_due: np.ndarray | None = None
    payer_defaulted: np.ndarray | None = None
    payer_retained: np.ndarray | None = None
    payer_withheld: np.ndarray | None = None
    provider_outcome_payments: np.ndarray | None = None
    provider_payments: np.ndarray | None = None
    waterfall_fees: np.ndarray | None = None
    measured_treated: np.ndarray | None = None
    measured_counterfactual: np.ndarray | None = None

    def _or_zeros(self, value, shape):
        return np.zeros(shape) if value is None else value

    @property
    def recoveries(self) -> np.ndarray:
        """Guarantor recoveries, (G, P, T) (zeros when not recorded)."""
        return self._or_zeros(self.guarantor_recoveries, self.guarantor_payments.shape)

    @property
    def payer_guarantee_payouts(self) -> np.ndarray:
        """Guarantee payouts borne by the outcome payers (capital protection), net of recoveries, (P, T)."""
        mask = self.payer_guarantee_mask
        return (self.guarantor_payments[mask] - self.recoveries[mask]).sum(axis=0)

    @property
    def net_savings(self) -> np.ndarray:
        """Payers' monthly net position: savings less payments, fees and their guarantees, (P, T)."""
        return (self.gross_savings - self.outcome_payments - self.payer_fees[None, :]
                - self.payer_guarantee_payouts)

    @property
    def investor_net(self) -> np.ndarray:
        """All tranches together: distributions and guarantee payouts less capital calls, (P, T)."""
        return (self.distributions + self.guarantee_payouts - self.capital_calls).sum(axis=1)


# --- 1. measurement ------------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    """Cumulative counts of every outcome before selected months, per cohort.

    ``treated`` and ``counterfactual`` are (P, C, K, len(months)): ``[..., k, i]`` is outcome ``k``
    (:attr:`~sibsim.contracts.Contract.outcome_names` order, in its priced unit: the count times
    the outcome's ``scale``) dated before ``months[i]``; counterfactual counts are scaled to the
    treated cohort sizes.
    """

    months: tuple[int, ...]
    treated: np.ndarray
    counterfactual: np.ndarray

    def at(self, month: int) -> tuple[np.ndarray, np.ndarray]:
        """Treated and counterfactual counts before ``month``, (P, C, K) each."""
        i = self.months.index(month)
        return self.treated[..., i], self.counterfactual[..., i]

    def masked(self, enrolled: np.ndarray) -> "Counts":
        """Counts of enrolled cohorts only (``enrolled`` (P, C) is 0 or 1)."""
        mask = enrolled[:, :, None, None]
        return Counts(self.months, self.treated * mask, self.counterfactual * mask)


@dataclass(frozen=True)
class Totals:
    """Each group's outcome counts before each of ``months``, as counted (no scale), (P, C, K, M) each.

    Computed once per block (:func:`event_totals`) and read by settlement and the metrics alike.
    """

    months: tuple[int, ...]
    treated: np.ndarray
    comparison: np.ndarray

    def at(self, month: int) -> tuple[np.ndarray, np.ndarray]:
        i = self.months.index(month)
        return self.treated[..., i], self.comparison[..., i]


def event_totals(group, months) -> np.ndarray:
    """Occurrences of each outcome of ``group`` before each of ``months``, (P, C, K, len(months)).

    When the engine counted only totals (``group.events`` None, :attr:`GroupOutcomes.totals`),
    they are read from those, and a month it did not count is refused (ValueError).  Whole
    monthly counts (the engine's) are summed exactly in 64-bit integers, in one compiled pass
    (:func:`sibsim.tallies.counts_before`).  Other counts (expectations, observed shares) by one
    matrix product with a 0/1 "month t < m" matrix in float64.
    """
    events = group.events
    if events is None:  # counted as totals by the engine (GroupOutcomes.totals)
        counted, totals = group.totals
        missing = sorted({int(m) for m in months} - set(counted))
        if missing:
            raise ValueError(f"outcomes counted as totals before months {list(counted)} only, not {missing}")
        return totals[..., [counted.index(int(m)) for m in months]]
    if np.issubdtype(events.dtype, np.integer):
        return tallies.counts_before(events, months)
    T = events.shape[-1]
    before = (np.arange(T)[:, None] < np.asarray(months, dtype=np.int64)[None, :]).astype(float)
    out = events.reshape(-1, T).astype(float, copy=False) @ before
    return out.reshape(events.shape[:3] + (len(months),))


def settlement_months(contract: Contract) -> set[int]:
    """The months settlement reads counts before: measurements, the review, a trigger's cohort dates."""
    terms = contract.payer
    needed = set(terms.measurement_months)
    if terms.review is not None:
        needed.add(terms.review.month)
    if contract.trigger_months is not None:
        needed |= {int(m) for m in contract.trigger_months[0]}
    return needed


def block_totals(contract: Contract, outcomes: Outcomes, months=()) -> Totals:
    """:class:`Totals` before the settlement months and ``months`` (e.g. the end of the term)."""
    months = tuple(sorted(settlement_months(contract) | {int(m) for m in months}))
    return Totals(months, event_totals(outcomes.treated, months), event_totals(outcomes.comparison, months))


def cumulative_counts(contract: Contract, outcomes: Outcomes, months, totals: Totals | None = None) -> Counts:
    """Cumulative counts before each of ``months`` (0..T), from ``totals`` when given (they must cover them).

    Integer counts (the engine's) are summed exactly (:func:`event_totals`); the scale (units per
    count) and the counterfactual's cohort scaling are applied afterwards (both linear).
    """
    months = tuple(sorted({int(m) for m in months}))
    if totals is None:
        treated, comparison = event_totals(outcomes.treated, months), event_totals(outcomes.comparison, months)
    else:
        index = [totals.months.index(m) for m in months]
        treated, comparison = totals.treated[..., index], totals.comparison[..., index]
    units = contract.outcome_scales[None, None, :, None]
    scale = outcomes.comparison_scale[None, :, None, None]
    return Counts(months, treated * units, comparison * units * scale)


def improvement(treated: np.ndarray, counterfactual: np.ndarray, size, measure: str) -> np.ndarray:
    """Measured improvement of treated over counterfactual counts.

    ``difference``: ``(t - c) / size`` (share of the group); ``relative_increase``: ``(t - c) / c``;
    ``relative_reduction``: ``(c - t) / c`` (for outcomes that should fall, e.g. reconvictions).
    With ``c == 0`` a relative measure is +inf, 0 or -inf by the sign of the difference.
    """
    if measure == "difference":
        return (treated - counterfactual) / size
    diff = treated - counterfactual if measure == "relative_increase" else counterfactual - treated
    safe = np.where(counterfactual > 0, counterfactual, 1.0)
    at_zero = np.where(diff > 0, np.inf, np.where(diff < 0, -np.inf, 0.0))
    return np.where(counterfactual > 0, diff / safe, at_zero)


def net_events(treated, counterfactual, measure: str):
    """Net events paid for: treated minus counterfactual, or counterfactual minus treated for reductions."""
    return counterfactual - treated if measure == "relative_reduction" else treated - counterfactual


def measure(contract: Contract, outcomes: Outcomes) -> tuple[np.ndarray, np.ndarray]:
    """Evaluator's measurement at each measurement month, pooled over cohorts.

    Returns
    -------
    net_outcomes : ndarray (paths, outcomes, M)
        Outcomes (in their priced units) dated before each measurement month, treated minus counterfactual.
    net_savings_measured : ndarray (paths, M)
        EUR the payer saved before each measurement month (counterfactual minus treated costs).
    """
    counts = cumulative_counts(contract, outcomes, contract.payer.measurement_months)
    treated, cf = _pooled(counts, contract.payer.measurement_months)
    return treated - cf, _measured_savings(contract, _monthly_net_saved(contract, outcomes))


def _pooled(counts: Counts, months) -> tuple[np.ndarray, np.ndarray]:
    """Treated and counterfactual counts summed over cohorts at ``months``, (P, K, len(months)) each."""
    index = [counts.months.index(m) for m in months]
    if index == list(range(len(counts.months))):  # every month counted: no copy of the counts
        return counts.treated.sum(axis=1), counts.counterfactual.sum(axis=1)
    return counts.treated[..., index].sum(axis=1), counts.counterfactual[..., index].sum(axis=1)


def monthly_costs(contract: Contract, group_costs: np.ndarray, weights: np.ndarray,
                  by_cohort: bool = False) -> np.ndarray:
    """EUR the payer spends on a group each month, (P, T): cost units x EUR per unit, cohorts weighted.

    ``weights`` is (C,) or (P, C): enrolment, times the comparison scale for the counterfactual.
    ``by_cohort``: each cohort's, (P, C, T).
    """
    P, C = group_costs.shape[:2]
    if not contract.costs:
        return np.zeros((P, C, contract.horizon_months) if by_cohort else (P, contract.horizon_months))
    # Cohorts weighted first (whole units with weights 0 or 1: exact), then priced, item by item
    # (one compiled pass over the units: sibsim.tallies; per cohort: priced, then weighted).
    return tallies.priced_costs(group_costs, weights, contract.cost_per_unit(), by_cohort)


def _monthly_net_saved(contract: Contract, outcomes: Outcomes, enrolled=None, by_cohort: bool = False) -> np.ndarray:
    """EUR the payer saves each month: the counterfactual's costs less the treated group's, (P, T)
    (``by_cohort``: each cohort's, (P, C, T))."""
    scale = outcomes.comparison_scale
    P, C = outcomes.n_paths, len(scale)
    enrolled = np.ones((P, C)) if enrolled is None else enrolled
    return (monthly_costs(contract, outcomes.comparison.costs, enrolled * scale[None, :], by_cohort)
            - monthly_costs(contract, outcomes.treated.costs, enrolled, by_cohort))


def _cohort_weights(contract: Contract) -> np.ndarray:
    """(M, C): each cohort's share of the capital at each measurement month, its participants' share
    of those whose cohort started before that month.

    The capital drawn so far financed the cohorts started so far, alike per participant.  It
    depends on the terms only: never on a later review or stop (a measurement up to the review
    must not depend on its result), and a cohort yet to start carries nothing.  A measurement
    before any cohort started has no savings to share; it falls back to the planned sizes."""
    sizes = np.array([c.size for c in contract.cohorts], dtype=float)
    intake = np.array([c.intake_month for c in contract.cohorts])
    started = sizes[None, :] * (intake[None, :] < np.array(contract.payer.measurement_months)[:, None])
    total = started.sum(axis=1, keepdims=True)
    return np.where(total > 0, started / np.where(total > 0, total, 1.0), sizes / sizes.sum())


def _savings_followed(contract: Contract, monthly_saved: np.ndarray) -> np.ndarray:
    """The payer's savings: months of the term and the tail only, (P, T).

    The ledgers run to the last payment, which can fall after term + tail (a payment lag);
    savings in those months are not followed (``tail_months`` says how long they are), so a
    tail of 0 means savings within the term only.
    """
    followed = contract.term_months + contract.tail_months
    if followed >= monthly_saved.shape[1]:
        return monthly_saved
    out = monthly_saved.copy()
    out[:, followed:] = 0.0
    return out


def _measured_savings(contract: Contract, monthly_saved: np.ndarray) -> np.ndarray:
    """Cumulative EUR saved before each measurement month, (P, M) from (P, T) (or (P, C, M) from (P, C, T))."""
    months = np.array(contract.payer.measurement_months, dtype=int)
    saved = np.zeros(monthly_saved.shape[:-1] + (monthly_saved.shape[-1] + 1,))
    np.cumsum(monthly_saved, axis=-1, out=saved[..., 1:])
    return saved[..., months]


# --- 2. review and termination -------------------------------------------------------------
#: Why a contract ended early (:attr:`Cashflows.termination_reason`).
NOT_TERMINATED, BY_REVIEW, BY_EXTERNAL_EVENT = 0, 1, 2
TERMINATION_REASONS = {NOT_TERMINATED: "", BY_REVIEW: "review", BY_EXTERNAL_EVENT: "external event"}


def review_fails(contract: Contract, counts: Counts) -> np.ndarray:
    """(P,) bool: the review's conditions (any or all of them, as it says) are below their floors."""
    P = counts.treated.shape[0]
    review = contract.payer.review
    if review is None:
        return np.zeros(P, dtype=bool)
    treated, cf = counts.at(review.month)
    size = sum(co.size for co in contract.cohorts if co.intake_month < review.month)
    below = []
    for outcome, measure, floor in review.conditions:
        k = contract.outcome_index(outcome)
        t, c = treated[:, :, k].sum(axis=1), cf[:, :, k].sum(axis=1)
        below.append(improvement(t, c, max(size, 1), measure) < floor)
    return np.any(below, axis=0) if review.combine == "any" else np.all(below, axis=0)


def termination(contract: Contract, counts: Counts, stopped: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """When and why each path terminates early, and which cohorts take part.

    The earlier of a failed review and an external stop (``stopped`` (P,) bool: the external
    event happens on that path; None: on every path if the contract has one) ends the contract.

    Returns
    -------
    month : ndarray (P,) int
        Month of the termination (no intake, capital calls or measurements after it), or -1.
    reason : ndarray (P,) int8
        :data:`BY_REVIEW`, :data:`BY_EXTERNAL_EVENT` or :data:`NOT_TERMINATED`.
    enrolled : ndarray (P, C) float
        1 for cohorts that take part, 0 for cohorts that would have started after a termination.
    """
    P = counts.treated.shape[0]
    month = np.full(P, -1, dtype=np.int64)
    reason = np.zeros(P, dtype=np.int8)
    events = []
    if contract.payer.review is not None:
        events.append((contract.payer.review.month, review_fails(contract, counts), BY_REVIEW))
    stop = contract.external_stop
    if stop is not None:
        events.append((stop.month, np.ones(P, dtype=bool) if stopped is None else stopped, BY_EXTERNAL_EVENT))
    for m, hit, why in sorted(events, key=lambda e: e[0]):  # the earlier event ends the contract
        new = hit & (month < 0)
        month[new] = m
        reason[new] = why
    intake = np.array([co.intake_month for co in contract.cohorts])
    enrolled = np.where((month[:, None] >= 0) & (intake[None, :] >= month[:, None]), 0.0, 1.0)
    return month, reason, enrolled


# --- 3. payments due ------------------------------------------------------------------------
def part_weights(contract: Contract, part: str) -> np.ndarray:
    """Each payer's share of a part of the payments (an outcome's name or ``"savings"``), (J,)."""
    return np.array([p.share if p.buys_part(part) else 0.0 for p in contract.payers])


def entitlement(contract: Contract, treated_pooled: np.ndarray, cf_pooled: np.ndarray,
                measured_savings: np.ndarray, n_enrolled: np.ndarray, payer: int = 0) -> np.ndarray:
    """Cumulative EUR earned from ``payer`` at each measurement month, before high-water mark and cap, (P, M).

    ``treated_pooled`` and ``cf_pooled`` are (P, K, M) counts at the measurement months.  A
    savings share whose switch follows a balance is left out (settled month by month, see
    :func:`settle`).
    """
    terms = contract.payer
    net = treated_pooled - cf_pooled
    weights = np.array([part_weights(contract, o)[payer] for o in contract.outcome_names])
    earned = np.einsum("pkm,k->pm", np.maximum(net, 0.0), contract.prices * weights)
    if not terms.savings_share.follows_balance:
        planned_capital = contract.capital_calls().sum()
        w = part_weights(contract, "savings")[payer]
        if w:
            earned += terms.savings_share.entitlement(measured_savings, planned_capital) * w
    for table in terms.tiers:
        w = part_weights(contract, table.outcome)[payer]
        if not w:
            continue
        k = contract.outcome_index(table.outcome)
        imp = improvement(treated_pooled[:, k], cf_pooled[:, k], n_enrolled[:, None], table.measure)
        earned += table.amount(imp) * w
    return earned


def payments_due(contract: Contract, net_outcomes: np.ndarray, measured_savings: np.ndarray,
                 earned: np.ndarray | None = None, measured=None, lag: int | None = None) -> np.ndarray:
    """Outcome payments falling due each month from the measurement schedule, (P, T), before the cap.

    ``earned`` (P, M) is the cumulative entitlement (see :func:`entitlement`); when omitted it is the
    rate card on ``net_outcomes`` plus the savings share.  ``measured`` (P, M) bool marks the
    measurements that take place (False after an early termination).  ``lag``: months from a
    measurement to its payment (default: the payer's).
    """
    payer = contract.payer
    if earned is None:
        earned = np.einsum("pkm,k->pm", np.maximum(net_outcomes, 0.0), contract.prices)
        earned = earned + payer.savings_share.entitlement(measured_savings, contract.capital_calls().sum())
    if measured is not None:
        earned = np.where(measured, earned, -np.inf)
    cumulative = np.maximum(np.maximum.accumulate(earned, axis=-1), 0.0)  # high-water mark: no clawback
    per_measurement = np.diff(cumulative, axis=-1, prepend=0.0)
    due = np.zeros((earned.shape[0], contract.horizon_months))
    lag = payer.payment_lag_months if lag is None else lag
    pay_months = np.array(payer.measurement_months, dtype=int) + lag
    due[:, pay_months] += per_measurement  # measurement months are distinct, so are pay months
    return due


def trigger_payments(contract: Contract, counts: Counts, enrolled: np.ndarray,
                     termination_month: np.ndarray, lag: int | None = None) -> np.ndarray:
    """Early per-cohort and final pooled payments of the cohort trigger, (P, T).

    ``counts`` must hold the enrolled cohorts' counts at every cohort's measurement month.
    ``termination_month`` (P,) is -1 on paths that do not terminate early; ``lag`` months from a
    measurement to its payment (default: the payer's).
    """
    P = counts.treated.shape[0]
    due = np.zeros((P, contract.horizon_months))
    trigger = contract.payer.trigger
    if trigger is None:
        return due
    k = contract.outcome_index(trigger.outcome)
    lag = contract.payer.payment_lag_months if lag is None else lag
    cohort_months, final = contract.trigger_months
    sizes = np.array([c.size for c in contract.cohorts], dtype=float)

    def held(month):  # measurements after a termination do not take place
        return (termination_month < 0) | (month <= termination_month)

    # Each cohort is measured on its own follow-up window (events before intake are zero).
    at = [counts.at(int(m)) for m in cohort_months]
    t = np.stack([treated[:, j, k] for j, (treated, _) in enumerate(at)], axis=1)  # (P, C)
    c = np.stack([cf[:, j, k] for j, (_, cf) in enumerate(at)], axis=1)
    early_paid = np.zeros(P)
    for j, month in enumerate(cohort_months):
        hit = (improvement(t[:, j], c[:, j], sizes[j], trigger.measure) >= trigger.cohort_threshold)
        amount = np.where(hit & held(month) & (enrolled[:, j] > 0),
                          trigger.price * np.maximum(net_events(t[:, j], c[:, j], trigger.measure), 0.0), 0.0)
        due[:, month + lag] += amount
        early_paid += amount
    pooled_t, pooled_c = t.sum(axis=1), c.sum(axis=1)
    pooled_size = (sizes[None, :] * enrolled).sum(axis=1)
    hit = improvement(pooled_t, pooled_c, np.maximum(pooled_size, 1.0), trigger.measure) >= trigger.pooled_threshold
    final_amount = trigger.price * np.maximum(net_events(pooled_t, pooled_c, trigger.measure), 0.0)
    due[:, final + lag] += np.where(hit & held(final), np.maximum(final_amount - early_paid, 0.0), 0.0)
    return due


# --- 4. the balance-linked savings share --------------------------------------------------------
class _BalanceLinkedSavings:
    """A savings share whose switch follows the named tranches' balance, due month by month.

    At each measurement month ``m``, the savings measured since the last one (above their
    high-water mark) are shared at ``rate`` until the payments cover what the named tranches
    still need to reach their capital drawn plus ``until_rate`` a year on it (the balance at the
    start of month ``m``, less the savings-share payments already due to the vehicle and not yet
    paid), and at ``rate_after`` beyond.  Each payer pays its share ``lag`` months later; a share
    paid to the provider directly never reaches the tranches, so the switch waits for the part
    paid into the vehicle.

    Per cohort, each cohort ``c`` has its own high-water mark and its own need: its share ``w_c``
    (its participants' share of those whose cohort started before the measurement) of the balance
    the tranches would have without any savings-share payment, less what its own savings paid into
    the vehicle (both at ``until_rate`` a year, like the balance), less its own payments not yet
    paid.  Before each is floored at 0, the needs add up to the pooled need, so one cohort equals
    the pooled share; a cohort that saved nothing leaves its part of the need
    to its own later savings instead of another cohort's.  A cohort is credited with what fell
    due from its savings, paid or defaulted: the balance still shows a default, so the other
    cohorts' needs grow by it.
    """

    def __init__(self, contract: Contract, measured_savings: np.ndarray, measured: np.ndarray,
                 cohort_weights: np.ndarray | None = None):
        """``measured_savings`` (P, M) pooled or (P, C, M) per cohort; ``cohort_weights`` (M, C) the
        cohorts' shares of the balance at each measurement (rows summing to 1), per cohort only."""
        terms = contract.payer.savings_share
        self.rate, self.rate_after, self.until_rate = terms.rate, terms.rate_after, terms.until_rate
        self.columns = np.array([contract.tranche_names.index(n) for n in terms.until_tranches])
        self.months = {m: i for i, m in enumerate(contract.payer.measurement_months)}
        self.per_cohort = measured_savings.ndim == 3
        savings = measured_savings if self.per_cohort else measured_savings[:, None, :]
        self.savings = np.where(measured[:, None, :], savings, -np.inf)  # (P, C, M); not measured: no payment
        P, C = self.savings.shape[:2]
        self.cohort_weights = cohort_weights  # per cohort only: pooled, the one need is the balance's
        self.weights = part_weights(contract, "savings")                # (J,)
        self.lags = np.array([p.payment_lag_months for p in contract.payers])
        self.to_vehicle = np.array([p.paid_to != "provider" for p in contract.payers], dtype=float)
        T = contract.horizon_months
        self.high = np.zeros((P, C))
        self.schedule = np.zeros((len(self.lags), P, T + int(self.lags.max()) + 1))  # (J, P, month) due
        self.into_vehicle = np.zeros((P, C, self.schedule.shape[2]))  # each cohort's part paid into the vehicle
        self.credited = np.zeros((P, C))  # what each cohort's savings paid into the vehicle, at until_rate
        self.growth = (1.0 + self.until_rate) ** (1 / 12)

    def _needs(self, t: int, accounts) -> np.ndarray:
        """(P, C): the savings-share money each cohort still owes the tranches before the switch."""
        balance = np.maximum(accounts.hurdles[self.until_rate][:, self.columns], 0.0).sum(axis=1)
        pending = self.into_vehicle[:, :, t:].sum(axis=2)
        if not self.per_cohort:
            return np.maximum(balance[:, None] - pending, 0.0)
        before_savings = balance + self.credited.sum(axis=1)
        weights = self.cohort_weights[self.months[t]][None, :]
        return np.maximum(weights * before_savings[:, None] - self.credited - pending, 0.0)

    def __call__(self, t: int, accounts) -> np.ndarray:
        if self.per_cohort and t:
            # A payment due in month s is received then, after that month's accrual (as the balance
            # is): it grows from month s + 1 on.
            self.credited = (self.credited + self.into_vehicle[:, :, t - 1]) * self.growth
        i = self.months.get(t)
        if i is not None:
            needs = self._needs(t, accounts)
            # Only what goes into the vehicle can reach the tranches: the part paid to the provider
            # directly does not count towards the switch.
            share_to_vehicle = float(self.to_vehicle @ self.weights)
            need = (needs / share_to_vehicle if share_to_vehicle > 0
                    else np.full(needs.shape, np.inf))  # nothing reaches them: the first rate throughout
            counted = np.maximum(self.savings[:, :, i], self.high)
            new = counted - self.high
            self.high = counted
            first = self.rate * new
            # Past what the tranches still need, the rest of the new savings at the second rate (there
            # the need is finite and the first rate positive: never inf - inf or a division by 0).
            over = first > need
            amount = first.copy()
            amount[over] = need[over] + self.rate_after * (new[over] - need[over] / self.rate)
            total = amount.sum(axis=1)
            for j, lag in enumerate(self.lags):
                self.schedule[j, :, t + lag] += total * self.weights[j]
                self.into_vehicle[:, :, t + lag] += amount * (self.weights[j] * self.to_vehicle[j])
        return self.schedule[:, :, t]


# --- all together -------------------------------------------------------------------------------
#: The two readers of the capital stack's terms: the compiled engine and its numpy oracle.
STACK_ENGINES = {"compiled": waterfall_kernel.run, "reference": waterfall.run}
#: What :func:`settle` runs unless told: the compiled engine (tests that break the numpy
#: statement on purpose, to show a property's power, switch to ``"reference"``).
DEFAULT_STACK = "compiled"


def settle(contract: Contract, outcomes: Outcomes, totals: Totals | None = None, stack: str | None = None) -> Cashflows:
    """Turn simulated (or observed) outcomes into every party's monthly ledger.

    ``totals``: the block's :func:`block_totals`, if already computed (the same numbers).
    ``stack``: ``"compiled"`` runs the capital stack with :mod:`sibsim.waterfall_kernel`,
    ``"reference"`` with :mod:`sibsim.waterfall` (the numpy statement of the same rules, its
    oracle: the two agree to dust, see :mod:`sibsim.waterfall_kernel`); None: :data:`DEFAULT_STACK`."""
    stack = DEFAULT_STACK if stack is None else stack
    if stack not in STACK_ENGINES:
        raise ValueError(f"stack: one of {', '.join(STACK_ENGINES)}, got {stack!r}")
    T = contract.horizon_months
    P = outcomes.n_paths
    terms = contract.payer
    months = np.array(terms.measurement_months, dtype=int)
    counts = cumulative_counts(contract, outcomes, settlement_months(contract), totals)

    end, reason, enrolled = termination(contract, counts, outcomes.external_stop)
    terminated = end >= 0
    counts = counts.masked(enrolled)
    active = np.ones((P, T))  # months in which the contract still runs
    for m in np.unique(end[terminated]):
        active[end == m, m:] = 0.0

    monthly_saved = _monthly_net_saved(contract, outcomes, enrolled)
    treated_pooled, cf_pooled = _pooled(counts, terms.measurement_months)
    net_outcomes = treated_pooled - cf_pooled
    measured_savings = _measured_savings(contract, monthly_saved)
    sizes = np.array([c.size for c in contract.cohorts], dtype=float)
    # Tiers divide by the planned group: a measurement up to the review must not depend on its result
    # (and measurements after a termination are not paid), nor divide by 0 if no cohort had started.
    n_enrolled = np.full(P, sizes.sum())
    measured = np.ones((P, len(months)), dtype=bool)
    measured &= ~(terminated[:, None] & (months[None, :] > end[:, None]))
    payers = contract.payers
    due = np.zeros((len(payers), P, T))
    for j, payer in enumerate(payers):
        if len(months):
            earned = entitlement(contract, treated_pooled, cf_pooled, measured_savings, n_enrolled, payer=j)
            due[j] += payments_due(contract, net_outcomes, measured_savings, earned=earned, measured=measured,
                                   lag=payer.payment_lag_months)
        if terms.trigger is not None and (w := part_weights(contract, terms.trigger.outcome)[j]):
            trigger_due = trigger_payments(contract, counts, enrolled, end, lag=payer.payment_lag_months)
            due[j] += trigger_due if w == 1 else trigger_due * w
    savings = None
    if terms.savings_share.follows_balance and len(months):
        if terms.savings_share.per_cohort:
            by_cohort = _measured_savings(contract, _monthly_net_saved(contract, outcomes, enrolled, by_cohort=True))
            savings = _BalanceLinkedSavings(contract, by_cohort, measured, _cohort_weights(contract))
        else:
            savings = _BalanceLinkedSavings(contract, measured_savings, measured)

    provider_funding = contract.provider_budget.to_array(T)[None, :] * active
    investor_fees = contract.fee_schedule("investors")[None, :] * active
    defaults = outcomes.payer_defaults(len(payers))
    stack = STACK_ENGINES[stack](contract, due, defaults, provider_funding + investor_fees, end, savings)
    retained = stack.payer_retained.sum(axis=0)
    paid = (stack.payer_due - stack.payer_defaulted).sum(axis=0)
    payer_mask = np.array([g.guarantor in contract.payer_names for g in contract.guarantees], dtype=bool)
    return Cashflows(
        capital_calls=stack.capital_calls,
        distributions=stack.distributions,
        guarantee_payouts=stack.guarantee_payouts,
        guarantor_payments=stack.guarantor_payments,
        outcome_payments_due=stack.payer_due.sum(axis=0),
        defaulted_by_payer=stack.payer_defaulted.sum(axis=0),
        retained_by_payer=retained,
        withheld_by_payer=stack.payer_withheld.sum(axis=0),
        outcome_payments=paid - retained,
        recycled=stack.recycled,
        vehicle_cash=stack.vehicle_cash,
        gross_savings=_savings_followed(contract, monthly_saved),
        provider_funding=provider_funding,
        investor_fees=investor_fees,
        payer_fees=contract.fee_schedule("payer"),
        measured_outcomes=net_outcomes,
        measured_treated=treated_pooled,
        measured_counterfactual=cf_pooled,
        terminated=terminated,
        payer_guarantee_mask=payer_mask,
        termination_month=end,
        termination_reason=reason,
        interest_paid=stack.interest_paid,
        principal_repaid=stack.principal_repaid,
        guarantor_recoveries=stack.guarantor_recoveries,
        payer_due=stack.payer_due,
        payer_defaulted=stack.payer_defaulted,
        payer_retained=stack.payer_retained,
        payer_withheld=stack.payer_withheld,
        provider_outcome_payments=stack.provider_outcome_payments,
        provider_payments=stack.provider_payments,
        waterfall_fees=stack.waterfall_fees,
    )
