"""Settlement: Outcomes -> monthly ledgers of every party, as ``(paths, months)`` arrays.

Pure functions of the contract and the simulated (or observed) outcomes; the
only randomness settlement needs, the payer's defaults, is drawn by the engine
and carried in :class:`~sibsim.montecarlo.Outcomes`.

1. **Measure.** At each measurement month the evaluator counts outcomes achieved
   so far by the treated group and by the counterfactual (scaled to the treated
   group's size).
2. **Review.** If the contract has a review and the measured improvement is
   below the floor, the contract ends there: later cohorts are not enrolled, no
   further capital is called, later measurements are not paid.
3. **Payments due.** Rate card on net outcomes (and net benefit months), share of
   measured savings (with a lower share once principal plus a return is paid),
   tier tables on the measured improvement: a cumulative entitlement paid by
   high-water mark (a dip is never clawed back), ``payment_lag_months`` after
   the measurement.  A cohort trigger adds early per-cohort payments and a
   pooled final payment.
4. **Cap and default.** Each payment may not be paid (appropriation risk).  The
   ``payment_cap`` limits what the payer pays in all: it counts every payment that
   fell due and was not defaulted on (paid, or withheld and still owed, see 6).  A
   defaulted payment was not paid, so it does not use up the cap; money withheld
   above the investors' return caps is still owed, so it does (it is paid, or kept
   by the payer only once every investor is at its cap, when the cap no longer
   matters to them).  Hence paying more per outcome never leaves investors worse off.
5. **Vehicle.** With recycling, payments received fund delivery before new capital
   is called and the rest is released when delivery ends; otherwise everything
   received is released at once.  Calls are pro rata to commitments.
6. **Waterfall.** Released cash goes to repayable investors by seniority class,
   pro rata within a class, never beyond an investor's return cap (capital
   called compounded at the capped rate, less what it received).  Money that no
   investor can take in a month (every return cap reached) is *withheld*: still
   owed, and paid as soon as a later capital call makes room.  What is withheld at
   the end stays with the payer (``retained_by_payer`` is the monthly change of
   ``withheld_by_payer``: positive when money is withheld, negative when withheld
   money is paid out later; its total is what the payer keeps).
7. **Guarantees.** At the final payment month a guarantor covers a share of each
   covered investor's principal loss, up to its cap.

Ledger identities (tested on every path):

* ``outcome_payments_due == outcome_payments + defaulted_by_payer + retained_by_payer``
* ``retained_by_payer.cumsum(months) == withheld_by_payer >= 0``
* ``outcome_payments == distributions.sum(investors) + recycled + change in vehicle_cash``
* ``capital_calls.sum(investors) + recycled == provider_funding + investor_fees``
* ``net_savings == gross_savings - outcome_payments - payer_fees - payer's guarantee payouts``
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contracts import Contract
from .montecarlo import Outcomes


@dataclass(frozen=True)
class Cashflows:
    """Monthly ledgers in the contract's currency; ``P`` paths, ``I`` investors, ``G`` guarantees, ``T`` months.

    Attributes
    ----------
    capital_calls : (P, I, T)
        Capital paid in by each investor.
    distributions : (P, I, T)
        Cash paid out to each investor from outcome payments.
    guarantee_payouts : (P, I, T)
        Cash paid to each investor by guarantors.
    guarantor_payments : (G, P, T)
        What each guarantee paid out, in :attr:`Contract.guarantees` order.
    outcome_payments_due : (P, T)
        What falls due under the payment formula, within the payment cap (which counts payments
        not defaulted on: with defaults, the total due, defaulted part included, can exceed it).
    defaulted_by_payer : (P, T)
        Due but not paid: the payer defaulted on that payment.
    retained_by_payer : (P, T)
        Change of ``withheld_by_payer``: due but not paid because every investor is at its
        return cap (negative in a month where withheld money is paid after a new capital
        call); summed over months, what the payer keeps.
    withheld_by_payer : (P, T)
        Owed at the end of the month but not paid: every investor is at its return cap.
    outcome_payments : (P, T)
        Net cash the payer pays: due, less defaulted, less retained (negative in a month
        where recycled money is handed back).
    recycled : (P, T)
        Outcome money used to fund delivery instead of new capital.
    vehicle_cash : (P, T)
        Outcome money held by the vehicle at the end of the month (recycling).
    gross_savings : (P, T)
        Benefit payments avoided: treated minus counterfactual months off benefits, times the benefit.
    provider_funding, investor_fees : (P, T)
        Delivery budget and investor-borne fees actually spent (lower after early termination).
    payer_fees : (T,)
        Fees borne by the payer.
    measured_outcomes : (P, 4, M)
        Net outcomes (treated minus counterfactual) per outcome type at each measurement.
    terminated : (P,) bool
        The contract ended at its review.
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
    payer_guarantee_mask: np.ndarray  # (G,) which guarantees the payer gives (capital protection)

    @property
    def payer_guarantee_payouts(self) -> np.ndarray:
        """Guarantee payouts borne by the outcome payer (capital protection), (P, T)."""
        return self.guarantor_payments[self.payer_guarantee_mask].sum(axis=0)

    @property
    def net_savings(self) -> np.ndarray:
        """Payer's monthly net position: savings less payments, fees and its guarantees, (P, T)."""
        return (self.gross_savings - self.outcome_payments - self.payer_fees[None, :]
                - self.payer_guarantee_payouts)

    @property
    def investor_net(self) -> np.ndarray:
        """All investors together: distributions and guarantee payouts less capital calls, (P, T)."""
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


def cumulative_counts(contract: Contract, outcomes: Outcomes, months) -> Counts:
    """Cumulative counts before each of ``months`` (0..T).

    Integer counts (the engine's) are summed exactly (whole numbers in float64, far below 2**53);
    the scale (units per count) and the counterfactual's cohort scaling are applied afterwards
    (both linear).
    """
    T = contract.horizon_months
    months = tuple(sorted({int(m) for m in months}))
    units = contract.outcome_scales[None, None, :, None]

    # Totals before each month read as one matrix product with a 0/1 "month t < m" matrix: the counts
    # are whole numbers far below 2**53, so float64 sums of them are exact, and BLAS beats a running
    # sum over every month (a 4-D temporary) or many short reductions.
    before = (np.arange(T)[:, None] < np.asarray(months, dtype=np.int64)[None, :]).astype(float)

    def reduce(group):
        part = group.events
        flat = part.reshape(-1, part.shape[-1]).astype(float, copy=False)
        out = (flat @ before[: part.shape[-1]]).reshape(part.shape[:3] + (len(months),))
        return out * units

    scale = outcomes.comparison_scale[None, :, None, None]
    return Counts(months, reduce(outcomes.treated), reduce(outcomes.comparison) * scale)


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


def monthly_costs(contract: Contract, group_costs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """EUR the payer spends on a group each month, (P, T): cost units x EUR per unit, cohorts weighted.

    ``weights`` is (C,) or (P, C): enrolment, times the comparison scale for the counterfactual.
    """
    if not contract.costs:
        return np.zeros((group_costs.shape[0], contract.horizon_months))
    price = contract.cost_per_unit()  # (Q, T)
    w = np.broadcast_to(weights, (group_costs.shape[0], group_costs.shape[1]))
    # Cohorts weighted first (units are whole numbers: exact), then priced: faster than one 3-operand einsum.
    return (np.einsum("pcqt,pc->pqt", group_costs, w) * price[None]).sum(axis=1)


def _monthly_net_saved(contract: Contract, outcomes: Outcomes, enrolled=None) -> np.ndarray:
    """EUR the payer saves each month: the counterfactual's costs less the treated group's, (P, T)."""
    scale = outcomes.comparison_scale
    P, C = outcomes.n_paths, len(scale)
    enrolled = np.ones((P, C)) if enrolled is None else enrolled
    return (monthly_costs(contract, outcomes.comparison.costs, enrolled * scale[None, :])
            - monthly_costs(contract, outcomes.treated.costs, enrolled))


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
    """Cumulative EUR saved before each measurement month, (P, M)."""
    months = np.array(contract.payer.measurement_months, dtype=int)
    saved = np.zeros((monthly_saved.shape[0], monthly_saved.shape[1] + 1))
    np.cumsum(monthly_saved, axis=1, out=saved[:, 1:])
    return saved[:, months]


# --- 2. review ------------------------------------------------------------------------------
def review_outcome(contract: Contract, counts: Counts) -> tuple[np.ndarray, np.ndarray]:
    """Which paths terminate at the review, and which cohorts stay enrolled.

    Returns
    -------
    terminated : ndarray (P,) bool
    enrolled : ndarray (P, C) float
        1 for cohorts that take part, 0 for cohorts that would have started after a termination.
    """
    P, C = counts.treated.shape[:2]
    review = contract.payer.review
    if review is None:
        return np.zeros(P, dtype=bool), np.ones((P, C))
    k = contract.outcome_index(review.outcome)
    treated, cf = counts.at(review.month)
    t, c = treated[:, :, k].sum(axis=1), cf[:, :, k].sum(axis=1)
    started = np.array([co.intake_month < review.month for co in contract.cohorts])
    size = sum(co.size for co in contract.cohorts if co.intake_month < review.month)
    terminated = improvement(t, c, max(size, 1), review.measure) < review.floor
    enrolled = np.where(terminated[:, None] & ~started[None, :], 0.0, 1.0)
    return terminated, enrolled


# --- 3. payments due ------------------------------------------------------------------------
def entitlement(contract: Contract, treated_pooled: np.ndarray, cf_pooled: np.ndarray,
                measured_savings: np.ndarray, n_enrolled: np.ndarray) -> np.ndarray:
    """Cumulative EUR earned at each measurement month, before high-water mark and cap, (P, M).

    ``treated_pooled`` and ``cf_pooled`` are (P, K, M) counts at the measurement months.
    """
    payer = contract.payer
    net = treated_pooled - cf_pooled
    earned = np.einsum("pkm,k->pm", np.maximum(net, 0.0), contract.prices)
    planned_capital = contract.capital_calls().sum()
    earned += payer.savings_share.entitlement(measured_savings, planned_capital)
    for table in payer.tiers:
        k = contract.outcome_index(table.outcome)
        imp = improvement(treated_pooled[:, k], cf_pooled[:, k], n_enrolled[:, None], table.measure)
        earned += table.amount(imp)
    return earned


def payments_due(contract: Contract, net_outcomes: np.ndarray, measured_savings: np.ndarray,
                 earned: np.ndarray | None = None, measured=None) -> np.ndarray:
    """Outcome payments falling due each month from the measurement schedule, (P, T), before the cap.

    ``earned`` (P, M) is the cumulative entitlement (see :func:`entitlement`); when omitted it is the
    rate card on ``net_outcomes`` plus the savings share.  ``measured`` (P, M) bool marks the
    measurements that take place (False after an early termination).
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
    pay_months = np.array(payer.measurement_months, dtype=int) + payer.payment_lag_months
    due[:, pay_months] += per_measurement  # measurement months are distinct, so are pay months
    return due


def trigger_payments(contract: Contract, counts: Counts, enrolled: np.ndarray,
                     terminated: np.ndarray, review_month: int | None) -> np.ndarray:
    """Early per-cohort and final pooled payments of the cohort trigger, (P, T).

    ``counts`` must hold the enrolled cohorts' counts at every cohort's measurement month.
    """
    P = counts.treated.shape[0]
    due = np.zeros((P, contract.horizon_months))
    trigger = contract.payer.trigger
    if trigger is None:
        return due
    k = contract.outcome_index(trigger.outcome)
    lag = contract.payer.payment_lag_months
    cohort_months, final = contract.trigger_months
    sizes = np.array([c.size for c in contract.cohorts], dtype=float)

    def held(month):  # measurements after a termination do not take place
        return ~terminated if review_month is not None and month > review_month else np.ones(P, dtype=bool)

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


def cap_and_default(contract: Contract, due: np.ndarray, payer_default: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Apply the payment cap and the payer's defaults, payment by payment in time order.

    The cap counts what the payer pays or still owes: every earlier payment that fell due
    and was not defaulted on.  A defaulted payment is not paid and does not use up the cap.

    Parameters
    ----------
    due : (P, T)
        Money falling due under the payment formula (rate card, savings share, tiers, trigger).
    payer_default : (P, len(contract.payment_months)) bool, or None
        Payments the payer does not pay (appropriation risk).

    Returns
    -------
    capped, defaulted : (P, T) each
        Money due within the cap; the part of it the payer defaulted on.
    """
    cap = contract.payer.payment_cap
    defaulted = np.zeros_like(due)
    pay_months = np.array(contract.payment_months, dtype=int)
    if cap is None:
        if payer_default is not None:
            defaulted[:, pay_months] = due[:, pay_months] * payer_default
        return due, defaulted
    capped = np.zeros_like(due)
    counted = np.zeros(due.shape[0])  # EUR paid or owed so far: what the cap has used up
    for j, month in enumerate(pay_months):  # payments fall due only in these months
        amount = np.minimum(due[:, month], np.maximum(cap - counted, 0.0))
        capped[:, month] = amount
        if payer_default is not None:
            defaulted[:, month] = amount * payer_default[:, j]
        counted += amount - defaulted[:, month]
    return capped, defaulted


# --- 5. vehicle: recycling ------------------------------------------------------------------
def fund_delivery(needs: np.ndarray, received: np.ndarray, recycling: bool) -> tuple[np.ndarray, ...]:
    """Decide how delivery is funded and when outcome money is released to investors.

    Parameters
    ----------
    needs : (P, T)
        Delivery budget plus investor fees, EUR.
    received : (P, T)
        Outcome payments received, EUR.

    Returns
    -------
    calls, recycled, released, cash : (P, T) each
        Capital to call; outcome money spent on delivery; outcome money released for
        distribution; outcome money held at the end of the month.
    """
    if not recycling:
        zeros = np.zeros_like(received)
        return needs, zeros, received, zeros
    T = needs.shape[1]
    has_need = (needs > 0).any(axis=1)
    # Last month with a need; a path with none (e.g. terminated before delivery) releases at once.
    delivery_ends = np.where(has_need, T - 1 - np.argmax(needs[:, ::-1] > 0, axis=1), 0)
    calls, recycled, released, held = (np.zeros_like(received) for _ in range(4))
    cash = np.zeros(received.shape[0])
    for t in range(T):  # over months; vectorised over paths
        cash = cash + received[:, t]
        use = np.minimum(cash, needs[:, t])
        recycled[:, t] = use
        calls[:, t] = needs[:, t] - use
        cash = cash - use
        after = t >= delivery_ends
        released[:, t] = np.where(after, cash, 0.0)
        cash = np.where(after, 0.0, cash)
        held[:, t] = cash
    return calls, recycled, released, held


# --- 6. waterfall -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Waterfall:
    """The investors' terms the waterfall reads, as arrays over investors."""

    weights: np.ndarray    # commitments, EUR: pro rata shares within a class
    capped: np.ndarray     # bool: has a return cap
    growth: np.ndarray     # monthly growth of the capped claim, (1 + cap) ** (1 / 12)
    repayable: np.ndarray  # bool: False for grants
    classes: tuple         # bool masks of the repayable members of each seniority class, senior first

    @classmethod
    def of(cls, contract: Contract) -> "_Waterfall":
        investors = contract.investors
        repayable = np.array([i.repayable for i in investors])
        seniorities = sorted({i.seniority for i in investors if i.repayable})
        return cls(np.array([i.commitment for i in investors]),
                   np.array([i.return_cap is not None for i in investors]),
                   np.array([1.0 if i.return_cap is None else (1.0 + i.return_cap) ** (1 / 12) for i in investors]),
                   repayable,
                   tuple(np.array([i.seniority == s for i in investors]) & repayable for s in seniorities))

    def pay(self, claim: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One month: share ``left`` (P,) EUR by seniority, pro rata within a class, within the
        capped claims ``claim`` (P, I); returns what each investor is paid and what is left."""
        room = np.where(self.capped, np.maximum(claim, 0.0), np.inf)
        paid = np.zeros_like(claim)
        # Nothing to do where no path has both cash on offer and an investor with room.
        if not ((left > 0) & ((room > 1e-9) & self.repayable).any(axis=1)).any():
            return paid, left
        for members in self.classes:
            # Water-filling: share pro rata; what a capped investor cannot take goes round again.
            for _ in range(int(members.sum())):
                open_ = members & (room - paid > 1e-9)  # (P, I)
                w = np.where(open_, self.weights, 0.0)
                total = w.sum(axis=1, keepdims=True)
                share = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
                # Clamp round-off: a capped room may sit a rounding step below zero, and the
                # remainder may come out a rounding step negative; neither may pay out < 0.
                give = np.minimum(left[:, None] * share, np.maximum(room - paid, 0.0))
                paid += give
                left = np.maximum(left - give.sum(axis=1), 0.0)
        # What pro rata shares leave over by round-off (a fraction of a cent) is not carried on:
        # carried month after month it would shrink into subnormal numbers.
        return paid, np.where(left < 1e-9, 0.0, left)


def distribute(contract: Contract, calls: np.ndarray, due: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pass released cash to investors by seniority, pro rata within a class, within return caps.

    Cash that no investor can take in a month (every repayable investor at its return cap)
    is withheld and offered again in the next months: a later capital call raises the capped
    claim and makes room for it.

    Parameters
    ----------
    calls : ndarray (I, T) or (P, I, T)
        Capital calls per investor, EUR.
    due : ndarray (P, T)
        Cash released for distribution, EUR.

    Returns
    -------
    distributions : ndarray (P, I, T)
        Grants (``repayable = False``) receive nothing.
    withheld : ndarray (P, T)
        EUR released but not yet distributed at the end of each month.
    """
    P, T = due.shape
    waterfall = _Waterfall.of(contract)
    calls = np.broadcast_to(calls, (P,) + calls.shape[-2:])
    claim = np.zeros((P, len(contract.investors)))  # capped claim still outstanding
    out = np.zeros((P, len(contract.investors), T))
    withheld = np.zeros((P, T))
    left = np.zeros(P)  # cash on offer: this month's release plus what was withheld before
    for t in range(T):  # over months (claims compound); vectorised over paths
        claim = claim * waterfall.growth + calls[:, :, t]
        paid, left = waterfall.pay(claim, left + due[:, t])
        out[:, :, t] = paid
        withheld[:, t] = left
        claim = claim - paid
    return out, withheld


# --- 7. guarantees ---------------------------------------------------------------------------
def guarantee_payouts(contract: Contract, calls: np.ndarray, distributions: np.ndarray,
                      month: int) -> tuple[np.ndarray, np.ndarray]:
    """Guarantors' cover of principal losses, paid at ``month``.

    Returns
    -------
    to_investors : (P, I, T)
    by_guarantee : (G, P, T)
    """
    P, I, T = distributions.shape
    to_investors = np.zeros((P, I, T))
    by_guarantee = np.zeros((len(contract.guarantees), P, T))
    loss = np.maximum(calls.sum(axis=2) - distributions.sum(axis=2), 0.0)  # (P, I)
    names = [i.name for i in contract.investors]
    for g, guarantee in enumerate(contract.guarantees):
        covered = np.array([n in guarantee.investors for n in names])
        cover = guarantee.share * loss * covered  # (P, I)
        if guarantee.cap is not None:
            total = cover.sum(axis=1, keepdims=True)
            scale = np.divide(guarantee.cap, total, out=np.ones_like(total), where=total > guarantee.cap)
            cover = cover * np.minimum(scale, 1.0)
        to_investors[:, :, month] += cover
        by_guarantee[g, :, month] = cover.sum(axis=1)
    return to_investors, by_guarantee


# --- all together -------------------------------------------------------------------------------
def settle(contract: Contract, outcomes: Outcomes) -> Cashflows:
    """Turn simulated (or observed) outcomes into every party's monthly ledger."""
    T = contract.horizon_months
    P = outcomes.n_paths
    payer = contract.payer
    months = np.array(payer.measurement_months, dtype=int)
    review_month = payer.review.month if payer.review is not None else None
    needed = set(payer.measurement_months) | ({review_month} if review_month is not None else set())
    if contract.trigger_months is not None:
        needed |= {int(m) for m in contract.trigger_months[0]}
    counts = cumulative_counts(contract, outcomes, needed)

    terminated, enrolled = review_outcome(contract, counts)
    counts = counts.masked(enrolled)
    active = np.ones((P, T))  # months in which the contract still runs
    if review_month is not None:
        active[terminated, review_month:] = 0.0

    monthly_saved = _monthly_net_saved(contract, outcomes, enrolled)
    treated_pooled, cf_pooled = _pooled(counts, payer.measurement_months)
    net_outcomes = treated_pooled - cf_pooled
    measured_savings = _measured_savings(contract, monthly_saved)
    sizes = np.array([c.size for c in contract.cohorts], dtype=float)
    # Tiers divide by the planned group: a measurement up to the review must not depend on its result
    # (and measurements after a termination are not paid), nor divide by 0 if no cohort had started.
    n_enrolled = np.full(P, sizes.sum())
    due = np.zeros((P, T))
    if len(months):
        earned = entitlement(contract, treated_pooled, cf_pooled, measured_savings, n_enrolled)
        measured = np.ones((P, len(months)), dtype=bool)
        if review_month is not None:
            measured &= ~(terminated[:, None] & (months[None, :] > review_month))
        due += payments_due(contract, net_outcomes, measured_savings, earned=earned, measured=measured)
    due += trigger_payments(contract, counts, enrolled, terminated, review_month)
    due, defaulted = cap_and_default(contract, due, outcomes.payer_default)
    received = due - defaulted

    provider_funding = contract.provider_budget.to_array(T)[None, :] * active
    investor_fees = contract.fee_schedule("investors")[None, :] * active
    call_total, recycled, released, cash = fund_delivery(provider_funding + investor_fees, received,
                                                         contract.recycling)
    calls = contract.call_weights[None, :, None] * call_total[:, None, :]
    distributions, withheld = distribute(contract, calls, released)
    retained = np.diff(withheld, axis=1, prepend=0.0)
    # Guarantees pay once the loss is final: after the last payment and the last capital call
    # (budget or investor-borne fee), so no later call or distribution changes the loss covered.
    last_call = max([contract.provider_budget.last_month]
                    + [f.schedule.last_month for f in contract.fees if f.paid_by == "investors"])
    payout_month = min(max(max(contract.payment_months, default=0), last_call), T - 1)
    to_investors, by_guarantee = guarantee_payouts(contract, calls, distributions, payout_month)
    return Cashflows(
        capital_calls=calls,
        distributions=distributions,
        guarantee_payouts=to_investors,
        guarantor_payments=by_guarantee,
        outcome_payments_due=due,
        defaulted_by_payer=defaulted,
        retained_by_payer=retained,
        withheld_by_payer=withheld,
        outcome_payments=received - retained,
        recycled=recycled,
        vehicle_cash=cash,
        gross_savings=_savings_followed(contract, monthly_saved),
        provider_funding=provider_funding,
        investor_fees=investor_fees,
        payer_fees=contract.fee_schedule("payer"),
        measured_outcomes=net_outcomes,
        terminated=terminated,
        payer_guarantee_mask=np.array([g.guarantor == payer.name for g in contract.guarantees], dtype=bool),
    )
