"""Hand-computed capital stacks (sibsim.stack, sibsim.waterfall): every payment known to the cent.

Each deal is a small contract built with the Python API (a one-cohort contract read by the loader,
then ``dataclasses.replace`` for the tranches, the waterfall, guarantees, payers, draw order and
external stop) and settled on hand-made :class:`Outcomes`: treated ``job_start`` events priced at
EUR 1 each (so an event count is a payment in EUR), a comparison group of the same size with
nothing, and, for savings, comparison benefit months at EUR 1 each (so units are EUR saved).

The expected numbers are derived in the comments month by month from the rules of the
:mod:`sibsim.waterfall` docstring (accrue, receive, draw, waterfall, guarantees); rates are written
as the formulas they come from (``1.05 ** (6 / 12)``), never copied from the engine.  Every deal also
checks the ledger identities of the :mod:`sibsim.cashflows` docstring (:func:`check_identities`).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import numpy as np
import pytest

from sibsim.cashflows import settle
from sibsim.contracts import (
    DrawOrder,
    ExternalStop,
    Guarantee,
    Investor,
    Payer,
    Review,
    SavingsShare,
    Step,
    Waterfall,
)
from sibsim.montecarlo import GroupOutcomes, Outcomes
from sibsim.scenario import contract_from_dict
from tests import legacy

CENT = 0.005   # "to the cent"
EUR_TOL = 1e-6  # identities, on every path and month
SIZE = 10       # participants in the one cohort (treated and comparison)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def cents(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=0, atol=CENT)


def monthly(T: int, entries: dict[int, float] | None = None, ranges=()) -> np.ndarray:
    """Hand-written monthly series: {month: EUR} plus (from, to_inclusive, EUR) ranges."""
    out = np.zeros(T)
    for m0, m1, v in ranges:
        out[m0:m1 + 1] = v
    for m, v in (entries or {}).items():
        out[m] = v
    return out


_NOBODY = dict(max_training_months=0, diploma=0.0, dropout=0.0, job_with_diploma=0.0, job_without_diploma=0.0,
               relapse=0.0, relapse_long_term=0.0, long_term_contract=0.0)


def base_contract(term: int = 12, months=(6, 12), lag: int = 0, budget: dict | None = None,
                  benefit: float = 0.0, savings_share: float = 0.0):
    """A one-cohort contract (10 participants from month 0) read by the loader, paying EUR 1 per net
    ``job_start`` at ``months`` (``lag`` months later); ``budget`` {month: EUR} of delivery; a benefit of
    ``benefit`` EUR per month on benefits (the payer's savings).  The stack is set by the caller."""
    budget = budget or {0: 1_000.0}
    doc = {
        "meta": {"title": "stack deal"},
        "term": {"term_months": term, "tail_months": 0, "sustained_job_months": 6},
        "investors": [{"name": "placeholder", "commitment": sum(budget.values())}],
        "provider": {"name": "Provider", "budget": [{"month": m, "amount": a} for m, a in sorted(budget.items())]},
        "payer": {"name": "Gov", "measurement_months": list(months), "payment_lag_months": lag,
                  "savings_share": savings_share, "rate_card": {"job_start": 1.0}},
        "savings": {"benefit": [{"age_band": "all", "amount_per_month": benefit, "share": 1.0}]},
        "cohorts": [{"intake_month": 0, "size": SIZE}],
        "journey": dict(_NOBODY, job_without_diploma=1.0),
        "comparison": {"size_ratio": 1.0, "journey": _NOBODY},
        "analysis": {"primary_outcome": "job_sustained"},
    }
    return contract_from_dict(legacy.new_format(doc), "<stack deal>")


def with_stack(contract, **changes):
    return dataclasses.replace(contract, **changes)


def with_payer(contract, **changes):
    return dataclasses.replace(contract, payer=dataclasses.replace(contract.payer, **changes))


def outcomes_for(contract, job_starts: list[dict], saved: list[dict] | None = None, defaults=None,
                 stopped=None) -> Outcomes:
    """Hand-made outcomes, one dict per path: ``job_starts`` {month: treated job starts} (EUR 1 each
    when paid), ``saved`` {month: comparison benefit months} (EUR ``benefit`` each saved)."""
    T, P = contract.horizon_months, len(job_starts)
    K, Q = len(contract.outcomes), len(contract.costs)
    k = contract.outcome_index("job_start")
    treated = np.zeros((P, 1, K, T), dtype=np.int32)
    comparison_costs = np.zeros((P, 1, Q, T), dtype=np.int32)
    for p, entries in enumerate(job_starts):
        for m, n in entries.items():
            treated[p, 0, k, m] += n
    for p, entries in enumerate(saved or []):
        for m, n in entries.items():
            comparison_costs[p, 0, 0, m] += n
    sizes = np.array([SIZE], np.int64)
    return Outcomes(GroupOutcomes(treated, np.zeros((P, 1, Q, T), np.int32), sizes, {}),
                    GroupOutcomes(np.zeros((P, 1, K, T), np.int32), comparison_costs, sizes, {}),
                    payer_default=defaults, external_stop=stopped)


def check_identities(contract, cash, payer_splits=None) -> None:
    """The ledger identities of the cashflows docstring, per payer and in total, on every path and month,
    and cash conserved across every party.  ``payer_splits`` (P, T): what splits gave the payers, if known
    (otherwise only checked to be a non-negative, non-decreasing total)."""
    close = partial(np.testing.assert_allclose, rtol=0, atol=EUR_TOL)
    calls, dist, gpay = cash.capital_calls, cash.distributions, cash.guarantee_payouts
    P, N, T = dist.shape
    J, G = len(contract.payers), len(contract.guarantees)
    assert cash.payer_due.shape == cash.payer_defaulted.shape == cash.payer_retained.shape == (J, P, T)
    assert cash.guarantor_payments.shape == cash.recoveries.shape == (G, P, T)
    # 1. due == paid + defaulted + retained, in total and per payer.
    close(cash.outcome_payments_due, cash.outcome_payments + cash.defaulted_by_payer + cash.retained_by_payer)
    close(cash.payer_due.sum(axis=0), cash.outcome_payments_due)
    close(cash.payer_defaulted.sum(axis=0), cash.defaulted_by_payer)
    close(cash.payer_retained.sum(axis=0), cash.retained_by_payer)
    close(cash.payer_withheld.sum(axis=0), cash.withheld_by_payer)
    # 2. retained, cumulated == withheld + what splits gave the payers.
    splits = np.cumsum(cash.retained_by_payer, axis=1) - cash.withheld_by_payer
    if payer_splits is not None:
        close(splits, np.cumsum(payer_splits, axis=1))
    assert (splits >= -EUR_TOL).all() and (np.diff(splits, axis=1) >= -EUR_TOL).all()
    # 3. what the payers pay into the vehicle is what the vehicle pays out (or holds).
    close(cash.outcome_payments - cash.provider_outcome_payments,
          dist.sum(axis=1) + cash.recycled + np.diff(cash.vehicle_cash, axis=1, prepend=0.0)
          + cash.provider_payments + cash.waterfall_fees + cash.recoveries.sum(axis=0))
    # 4. capital calls and recycled money fund delivery and investor fees.
    close(calls.sum(axis=1) + cash.recycled, cash.provider_funding + cash.investor_fees)
    # 5. the payers' net position.
    mask = np.array([g.guarantor in contract.payer_names for g in contract.guarantees], dtype=bool)
    np.testing.assert_array_equal(cash.payer_guarantee_mask, mask)
    close(cash.net_savings, cash.gross_savings - cash.outcome_payments - cash.payer_fees[None, :]
          - cash.guarantor_payments[mask].sum(axis=0) + cash.recoveries[mask].sum(axis=0))
    # Guarantors pay exactly what the tranches receive from guarantees.
    close(gpay.sum(axis=1), cash.guarantor_payments.sum(axis=0))
    # Every party, monthly: payers, tranches and guarantors pay in what the provider, the fee
    # recipients, the tranches, the guarantors and the vehicle receive.
    paid_in = cash.outcome_payments + calls.sum(axis=1) + cash.guarantor_payments.sum(axis=0)
    paid_out = (cash.provider_funding + cash.investor_fees + cash.provider_outcome_payments + cash.provider_payments
                + cash.waterfall_fees + dist.sum(axis=1) + gpay.sum(axis=1) + cash.recoveries.sum(axis=0)
                + np.diff(cash.vehicle_cash, axis=1, prepend=0.0))
    close(paid_in, paid_out)
    # The parts of a distribution: interest, then principal, the rest return.
    assert (cash.interest_paid >= -EUR_TOL).all() and (cash.principal_repaid >= -EUR_TOL).all()
    assert (cash.interest_paid + cash.principal_repaid <= dist + EUR_TOL).all()
    assert (np.cumsum(cash.principal_repaid, axis=2) <= np.cumsum(calls, axis=2) + EUR_TOL).all()
    # Signs.
    for name in ("capital_calls", "distributions", "guarantee_payouts", "guarantor_payments", "outcome_payments_due",
                 "defaulted_by_payer", "provider_payments", "provider_outcome_payments", "waterfall_fees", "recycled"):
        assert (getattr(cash, name) >= -EUR_TOL).all(), name
    assert (cash.payer_withheld >= -EUR_TOL).all() and (cash.recoveries >= -EUR_TOL).all()
    assert (np.cumsum(cash.recoveries, axis=2) <= np.cumsum(cash.guarantor_payments, axis=2) + EUR_TOL).all()
    # Grants are never repaid.
    for i, t in enumerate(contract.investors):
        if not t.repayable:
            assert (dist[:, i] == 0).all()
    # Payer caps: what each paid or owes (due, not defaulted).
    for j, payer in enumerate(contract.payers):
        if payer.payment_cap is not None:
            counted = (cash.payer_due[j] - cash.payer_defaulted[j]).sum(axis=1)
            assert (counted <= payer.payment_cap + EUR_TOL).all()
    # Guarantee caps.
    for g, guarantee in enumerate(contract.guarantees):
        if guarantee.cap is not None:
            assert (cash.guarantor_payments[g].sum(axis=1) <= guarantee.cap + EUR_TOL).all()


def settled(contract, outcomes, payer_splits=None):
    cash = settle(contract, outcomes)
    check_identities(contract, cash, payer_splits)
    return cash


# ---------------------------------------------------------------------------------------
# (a) a senior loan, 5 % compounded monthly on capital drawn, repaid first; then a split
# ---------------------------------------------------------------------------------------
R5 = 1.05 ** (1 / 12)  # a month's growth at 5 % a year compounded monthly: 1.004074124


def test_senior_loan_repaid_first_then_a_40_20_40_split():
    # Loan L, commitment 1,200 (200 never drawn), 5 % a year compounded monthly.  Draws: 600 in month 0
    # and 400 in month 1 (interest accrues from the month after a draw).  Payments: 300 at month 6,
    # 1,200 at month 12 (job starts before those months).
    # Steps: interest to L; principal to L; split: L 40 %, provider 20 %, payer 40 %.
    c = base_contract(months=(6, 12), budget={0: 600.0, 1: 400.0})
    loan = Investor("L", 1_200.0, kind="loan", interest=0.05, compounding="monthly")
    steps = (Step("interest", ("L",)), Step("principal", ("L",)),
             Step("split", shares=(("L", 0.4), ("provider", 0.2), ("payer", 0.4))))
    c = with_stack(c, investors=(loan,), waterfall_terms=Waterfall(steps))
    T = c.horizon_months
    assert T == 13
    # Month 6, after accrual: 600 x 1.05^(6/12) + 400 x 1.05^(5/12) = 614.817 + 408.215 = 1,023.032:
    # interest 23.032; the 300 pays it, then 276.968 of principal -> principal 723.032.
    b6 = 600 * R5 ** 6 + 400 * R5 ** 5
    i6 = b6 - 1_000
    assert i6 == pytest.approx(23.0320, abs=1e-4)
    p6 = 1_000 - (300 - i6)
    # Month 12: 723.032 x 1.05^(6/12) = 740.887: interest 17.855, principal 723.032; of the 1,200,
    # 459.113 is surplus: L 183.645, provider 91.823, payer 183.645 (kept by the payer).
    b12 = p6 * R5 ** 6
    surplus = 1_200 - b12
    assert b12 == pytest.approx(740.8873, abs=1e-4) and surplus == pytest.approx(459.1127, abs=1e-4)
    cash = settled(c, outcomes_for(c, [{5: 300, 11: 1_200}]), payer_splits=[monthly(T, {12: 0.4 * surplus})])
    cents(cash.capital_calls[0, 0], monthly(T, {0: 600, 1: 400}))
    cents(cash.outcome_payments_due[0], monthly(T, {6: 300, 12: 1_200}))
    cents(cash.distributions[0, 0], monthly(T, {6: 300, 12: b12 + 0.4 * surplus}))
    cents(cash.interest_paid[0, 0], monthly(T, {6: i6, 12: b12 - p6}))
    cents(cash.principal_repaid[0, 0], monthly(T, {6: 300 - i6, 12: p6}))
    cents(cash.provider_payments[0], monthly(T, {12: 0.2 * surplus}))
    cents(cash.retained_by_payer[0], monthly(T, {12: 0.4 * surplus}))
    cents(cash.withheld_by_payer[0], np.zeros(T))
    cents(cash.outcome_payments[0], monthly(T, {6: 300, 12: 1_200 - 0.4 * surplus}))
    cents(cash.net_savings[0], monthly(T, {6: -300, 12: -(1_200 - 0.4 * surplus)}))
    cents(cash.guarantee_payouts, 0.0)
    # The loan's own IRR: the interest exactly, plus its 40 % of the surplus on top.
    assert cash.distributions[0, 0].sum() - 1_000 == pytest.approx(i6 + (b12 - p6) + 0.4 * surplus, abs=CENT)


# ---------------------------------------------------------------------------------------
# (b) a first-loss guarantee, and a floor guarantee paying on an early termination
# ---------------------------------------------------------------------------------------
def test_first_loss_and_floor_guarantees_on_an_external_stop_a_failed_review_and_at_maturity():
    # Tranche S (equity, 1,000, no cap; the default waterfall: everything to S).  Delivery 100 a month in
    # months 0-9.  Measurements at 3, 6 and 10 (lag 0).  Review at month 6: job starts per participant
    # (difference) below 10 (100 job starts among 10) ends the contract.  External stop at month 4 on
    # the paths drawn for it.  Guarantees, in this order:
    #   first_loss by a foundation: the loss up to 100, at termination or maturity;
    #   floor 0.8 by the payer (capital protection), cap 300, at termination only.
    c = base_contract(months=(3, 6, 10), budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("S", 1_000.0),),
                   guarantees=(Guarantee("Foundation", ("S",), kind="first_loss", amount=100.0,
                                         pays="termination_or_maturity"),
                               Guarantee("Gov", ("S",), kind="floor", floor=0.8, cap=300.0, pays="termination")),
                   external_stop=ExternalStop(4, probability=0.5))
    c = with_payer(c, review=Review(6, "job_start", "difference", 10.0))
    T = c.horizon_months
    assert T == 12
    outcomes = outcomes_for(c, [{2: 50, 5: 20, 9: 130}, {2: 50, 5: 20, 9: 130}, {2: 50, 5: 60, 9: 140}],
                            stopped=np.array([True, False, False]))
    cash = settled(c, outcomes)
    # Path 0: stopped at month 4 (before the review): calls 100 in months 0-3 (400); only the month-3
    # measurement is held: 50 paid to S.  Month 4 guarantees: loss 400 - 50 = 350; first loss 100;
    # floor 0.8 x 400 - 50 - 100 = 170 (within the cap).  S: 50 + 100 + 170 = 320 = 0.8 x 400.
    # Path 1: 70 job starts before month 6 (7 per participant < 10): the review ends it at month 6.
    # Calls in months 0-5 (600); the month-6 measurement is held (not after the termination): 50 @3,
    # 20 @6.  Guarantees at month 6: loss 600 - 70 = 530; first loss 100; floor 0.8 x 600 - 70 - 100
    # = 310, capped at 300.  S: 70 + 100 + 300 = 470.
    # Path 2: 110 before month 6 passes; runs to the end: calls 1,000, payments 50 @3, 60 @6, 140 @10.
    # The maturity month is the last payment (10): loss 1,000 - 250 = 750, first loss 100; the floor
    # pays only on termination.  S: 250 + 100 = 350.
    np.testing.assert_array_equal(cash.termination_month, [4, 6, -1])
    np.testing.assert_array_equal(cash.termination_reason, [2, 1, 0])
    cents(cash.capital_calls[:, 0], [monthly(T, ranges=[(0, 3, 100)]), monthly(T, ranges=[(0, 5, 100)]),
                                     monthly(T, ranges=[(0, 9, 100)])])
    cents(cash.outcome_payments_due, [monthly(T, {3: 50}), monthly(T, {3: 50, 6: 20}),
                                      monthly(T, {3: 50, 6: 60, 10: 140})])
    cents(cash.distributions[:, 0], cash.outcome_payments_due)
    cents(cash.guarantor_payments[0], [monthly(T, {4: 100}), monthly(T, {6: 100}), monthly(T, {10: 100})])
    cents(cash.guarantor_payments[1], [monthly(T, {4: 170}), monthly(T, {6: 300}), np.zeros(T)])
    cents(cash.guarantee_payouts[:, 0], [monthly(T, {4: 270}), monthly(T, {6: 400}), monthly(T, {10: 100})])
    cents((cash.distributions + cash.guarantee_payouts).sum(axis=(1, 2)), [320, 470, 350])
    # The payer bears its floor guarantee: net savings -50 @3, -170 @4 on path 0; -50, -20 - 300 on path 1.
    cents(cash.net_savings, [monthly(T, {3: -50, 4: -170}), monthly(T, {3: -50, 6: -320}),
                             monthly(T, {3: -50, 6: -60, 10: -140})])
    cents(cash.recoveries, 0.0)


def test_a_floor_at_termination_pays_nothing_when_the_tranche_is_already_above_it():
    # The review fails at month 6 (75 job starts before it, 7.5 per participant): 600 drawn, 75
    # received.  First loss of 0.01: the loss is 525 -> it pays 0.01.  Floor 0.1: 0.1 x 600 = 60 is
    # below the 75.01 S already has -> nothing.
    c = base_contract(months=(3, 6, 10), budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("S", 1_000.0),),
                   guarantees=(Guarantee("Foundation", ("S",), kind="first_loss", amount=0.01, pays="termination"),
                               Guarantee("Gov", ("S",), kind="floor", floor=0.1, pays="termination")))
    c = with_payer(c, review=Review(6, "job_start", "difference", 10.0))
    cash = settled(c, outcomes_for(c, [{2: 50, 5: 25}]))
    T = c.horizon_months
    cents(cash.guarantor_payments[:, 0], [monthly(T, {6: 0.01}), np.zeros(T)])
