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
import re
from functools import partial

import numpy as np
import pytest

from sibsim.cashflows import settle
from sibsim.contracts import (
    DrawOrder,
    ExternalStop,
    Fee,
    Guarantee,
    Investor,
    Payer,
    Review,
    SavingsShare,
    Schedule,
    Step,
    Waterfall,
)
from sibsim.montecarlo import GroupOutcomes, Outcomes
from sibsim.scenario import contract_from_dict
from tests import legacy
from tests.test_cashflows import CENT, EUR_TOL, cents, monthly  # noqa: F401  (the suite's cent and identity tolerances)

SIZE = 10       # participants in the one cohort (treated and comparison)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


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
                 stopped=None, events: dict | None = None, comparison: dict | None = None) -> Outcomes:
    """Hand-made outcomes, one dict per path: ``job_starts`` {month: treated job starts} (EUR 1 each
    when paid), ``saved`` {month: comparison benefit months} (EUR ``benefit`` each saved); ``events``
    {outcome: [{month: count} per path]} for other treated outcomes, ``comparison`` the same for the
    comparison group."""
    T, P = contract.horizon_months, len(job_starts)
    K, Q = len(contract.outcomes), len(contract.costs)
    treated = np.zeros((P, 1, K, T), dtype=np.int32)
    counterfactual = np.zeros((P, 1, K, T), dtype=np.int32)
    comparison_costs = np.zeros((P, 1, Q, T), dtype=np.int32)
    for target, table in ((treated, {"job_start": job_starts, **(events or {})}), (counterfactual, comparison or {})):
        for name, per_path in table.items():
            k = contract.outcome_index(name)
            for p, entries in enumerate(per_path):
                for m, n in entries.items():
                    target[p, 0, k, m] += n
    for p, entries in enumerate(saved or []):
        for m, n in entries.items():
            comparison_costs[p, 0, 0, m] += n
    sizes = np.array([SIZE], np.int64)
    return Outcomes(GroupOutcomes(treated, np.zeros((P, 1, Q, T), np.int32), sizes, {}),
                    GroupOutcomes(counterfactual, comparison_costs, sizes, {}),
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
    # No payer's cumulative net payments (due, less defaulted, less retained) ever fall below zero.
    net_paid = np.cumsum(cash.payer_due - cash.payer_defaulted - cash.payer_retained, axis=2)
    assert (net_paid >= -EUR_TOL).all(), net_paid.min()
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
    # A payer above another's cap owes something only in a month that uses that cap up (counting this
    # month's payment whether or not it is defaulted on: the cap cut it off all the same).
    names = contract.payer_names
    for k, payer in enumerate(contract.payers):
        if payer.above_cap_of is not None:
            j = names.index(payer.above_cap_of)
            used = np.cumsum(cash.payer_due[j] - cash.payer_defaulted[j], axis=1) + cash.payer_defaulted[j]
            owing = cash.payer_due[k] > EUR_TOL
            assert (used[owing] >= contract.payers[j].payment_cap - EUR_TOL).all()
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


# ---------------------------------------------------------------------------------------
# (c) a grant drawn first, then a loan; an early stop leaves the grant with the loss
# ---------------------------------------------------------------------------------------
def test_grant_drawn_first_then_a_loan_and_an_early_stop_leaves_the_loss_with_the_grant():
    # Grant G 300 (never repaid), loan L 700 at 4 % simple interest (0.04 / 12 a month on principal
    # outstanding).  Draw order: G, then L.  Delivery 100 a month in months 0-9.  Steps: interest to L,
    # principal to L (nothing else: money left over is withheld).  Measurements at 5 and 10 (lag 0).
    # External stop at month 5 on path 0 (probability 0.5; path 1 runs to the end).
    c = base_contract(months=(5, 10), budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("G", 300.0, investor_class="grant", repayable=False),
                                 Investor("L", 700.0, kind="loan", interest=0.04, compounding="none")),
                   draw_order=DrawOrder((("G",), ("L",))),
                   waterfall_terms=Waterfall((Step("interest", ("L",)), Step("principal", ("L",)))),
                   external_stop=ExternalStop(5, probability=0.5))
    T = c.horizon_months
    assert T == 12
    r = 0.04 / 12
    cash = settled(c, outcomes_for(c, [{4: 250, 9: 600}, {4: 250, 9: 600}], stopped=np.array([True, False])))
    # Both paths: G draws months 0-2 (100 each: its 300), L from month 3.
    # Path 0, stopped at 5: L drew 100 @3, 100 @4.  Interest: month 4 on 100 (0.3333), month 5 on 200
    # (0.6667): 1.00.  The month-5 payment of 250 pays interest 1.00, principal 200; 49 is left and no
    # step can take it (the grant is never repaid): withheld to the end, the payer keeps it.  The
    # month-10 measurement is after the stop.  L is whole (201 for 200); the grant lost its 300.
    cents(cash.capital_calls[0], [monthly(T, ranges=[(0, 2, 100)]), monthly(T, {3: 100, 4: 100})])
    cents(cash.distributions[0], [np.zeros(T), monthly(T, {5: 201})])
    cents(cash.interest_paid[0, 1], monthly(T, {5: 300 * r}))
    cents(cash.principal_repaid[0, 1], monthly(T, {5: 200}))
    cents(cash.withheld_by_payer[0], monthly(T, ranges=[(5, T - 1, 49)]))
    cents(cash.retained_by_payer[0], monthly(T, {5: 49}))
    cents(cash.outcome_payments[0], monthly(T, {5: 201}))
    # Path 1: L also draws 100 in month 5 (before the month's waterfall): principal 300, interest
    # 1.00; the 250 pays 1.00 and 249 -> principal 51.  Interest months 6-10 on 51, 151, 251, 351,
    # 451 (a draw of 100 after each month's accrual): 1,255 x 0.04 / 12 = 4.1833.  The 600 at month 10
    # pays 4.1833 + 451; 144.8167 is withheld to the end.
    cents(cash.capital_calls[1], [monthly(T, ranges=[(0, 2, 100)]), monthly(T, ranges=[(3, 9, 100)])])
    cents(cash.distributions[1], [np.zeros(T), monthly(T, {5: 250, 10: 451 + 1_255 * r})])
    cents(cash.interest_paid[1, 1], monthly(T, {5: 300 * r, 10: 1_255 * r}))
    cents(cash.principal_repaid[1, 1], monthly(T, {5: 249, 10: 451}))
    cents(cash.withheld_by_payer[1], monthly(T, ranges=[(10, T - 1, 600 - 451 - 1_255 * r)]))
    assert 600 - 451 - 1_255 * r == pytest.approx(144.8167, abs=1e-4)


# ---------------------------------------------------------------------------------------
# (d) two payers, each with its own cap (one binds), lag and default
# ---------------------------------------------------------------------------------------
def test_two_payers_with_their_own_caps_lags_and_a_default():
    # One rate card (EUR 1 per job start) shared 50/50: State (cap 300, lag 0) and City (cap 500,
    # lag 1, defaults on its second payment).  Tranches A 600 and B 400 (equal seniority, no caps;
    # the default waterfall: pro rata to commitments, 60/40).  Delivery 1,000 at month 0.
    # Path 0: 400 job starts before each of months 3, 6, 9: entitlement 400, 800, 1,200, i.e. 200
    # a measurement from each payer.
    #   State: 200 @3; 100 @6 (its cap of 300 binds); nothing @9.
    #   City: 200 @4; 200 @7 defaulted (not paid, and it does not use up the cap); 200 @10 (200 + 200
    #   = 400 of its 500 used).
    # Path 1: 100 job starts before month 3 only: State 50 @3, City 50 @4 (City defaults on nothing
    # due at 7).
    c = base_contract(months=(3, 6, 9), budget={0: 1_000.0})
    c = with_stack(c, investors=(Investor("A", 600.0), Investor("B", 400.0)),
                   payer_split=(Payer("State", share=0.5, payment_cap=300.0),
                                Payer("City", share=0.5, payment_cap=500.0, payment_lag_months=1,
                                      default_probability=0.1)))
    T = c.horizon_months
    assert T == 12 and c.payer_payment_months(1) == (4, 7, 10)
    defaults = (None, np.array([[False, True, False], [False, True, False]]))
    cash = settled(c, outcomes_for(c, [{2: 400, 5: 400, 8: 400}, {2: 100}], defaults=defaults))
    cents(cash.payer_due[0], [monthly(T, {3: 200, 6: 100}), monthly(T, {3: 50})])
    cents(cash.payer_due[1], [monthly(T, {4: 200, 7: 200, 10: 200}), monthly(T, {4: 50})])
    cents(cash.payer_defaulted[0], 0.0)
    cents(cash.payer_defaulted[1], [monthly(T, {7: 200}), np.zeros(T)])
    cents(cash.outcome_payments, [monthly(T, {3: 200, 4: 200, 6: 100, 10: 200}), monthly(T, {3: 50, 4: 50})])
    cents(cash.distributions[0], [monthly(T, {3: 120, 4: 120, 6: 60, 10: 120}),
                                  monthly(T, {3: 80, 4: 80, 6: 40, 10: 80})])
    cents(cash.distributions[1], [monthly(T, {3: 30, 4: 30}), monthly(T, {3: 20, 4: 20})])
    cents(cash.payer_retained, 0.0)


# ---------------------------------------------------------------------------------------
# (e) the provider's success fee, only once the investors are repaid
# ---------------------------------------------------------------------------------------
def test_success_fee_only_after_the_investors_are_repaid():
    # Tranches S 600 and J 400 (no caps), drawn pro rata at month 0 (600 / 400).  Steps:
    #   1. principal to S then J (sequential);
    #   2. success fee of 100 in all, only in a month when S and J are both repaid;
    #   3. split: J 60 %, provider 40 %.
    # Path 0: payments 500 @3, 700 @6, 300 @9.
    #   @3: S 500 (owes 100); the fee waits; nothing left for the split.
    #   @6: S 100, J 400: both repaid, 200 left: fee 100; split of 100: J 60, provider 40.
    #   @9: the fee is paid in full; split of 300: J 180, provider 120.
    # Path 1: payments 700 @3, 200 @6, 300 @9.
    #   @3: S 600, J 100.  @6: J 200 (owes 100): the fee still waits.
    #   @9: J 100 (repaid), fee 100, split of 100: J 60, provider 40.
    c = base_contract(months=(3, 6, 9), budget={0: 1_000.0})
    steps = (Step("principal", ("S", "J"), order="sequential"),
             Step("success_fee", amount=100.0, after=("S", "J")),
             Step("split", shares=(("J", 0.6), ("provider", 0.4))))
    c = with_stack(c, investors=(Investor("S", 600.0), Investor("J", 400.0, seniority=2)),
                   waterfall_terms=Waterfall(steps))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{2: 500, 5: 700, 8: 300}, {2: 700, 5: 200, 8: 300}]))
    cents(cash.distributions[0], [monthly(T, {3: 500, 6: 100}), monthly(T, {6: 460, 9: 180})])
    cents(cash.principal_repaid[0], [monthly(T, {3: 500, 6: 100}), monthly(T, {6: 400})])
    cents(cash.provider_payments[0], monthly(T, {6: 140, 9: 120}))
    cents(cash.distributions[1], [monthly(T, {3: 600}), monthly(T, {3: 100, 6: 200, 9: 160})])
    cents(cash.principal_repaid[1], [monthly(T, {3: 600}), monthly(T, {3: 100, 6: 200, 9: 100})])
    cents(cash.provider_payments[1], monthly(T, {9: 140}))
    cents(cash.interest_paid, 0.0)
    cents(cash.retained_by_payer, 0.0)


# ---------------------------------------------------------------------------------------
# (f) a savings share that switches when the loan has its principal plus 5 % a year
# ---------------------------------------------------------------------------------------
def test_balance_linked_savings_share_95_until_the_loan_is_repaid_with_5_percent_then_40():
    # Loan L 1,000 drawn at month 0, 5 % a year compounded monthly.  Savings share 95 % until L has
    # received what it drew plus 5 % a year on it, then 40 %.  Savings: EUR 1 per benefit month the
    # comparison group spends (treated: none).  Measurements at 6 and 12 (lag 0).  Steps: interest to
    # L, principal to L, then everything to the provider.
    c = base_contract(months=(6, 12), budget={0: 1_000.0}, benefit=1.0)
    c = with_payer(c, savings_share=SavingsShare(0.95, rate_after=0.40, until_tranches=("L",), until_rate=0.05))
    steps = (Step("interest", ("L",)), Step("principal", ("L",)), Step("split", shares=(("provider", 1.0),)))
    c = with_stack(c, investors=(Investor("L", 1_000.0, kind="loan", interest=0.05),), waterfall_terms=Waterfall(steps))
    T = c.horizon_months
    R = 1.05 ** 0.5  # six months at 5 % a year
    cash = settled(c, outcomes_for(c, [{}, {}], saved=[{2: 600, 8: 1_000}, {2: 200, 8: 300}]))
    cents(cash.gross_savings, [monthly(T, {2: 600, 8: 1_000}), monthly(T, {2: 200, 8: 300})])
    # Path 0.  Month 6: L's balance 1,000 x 1.05^0.5 = 1,024.695; 95 % of the 600 saved = 570 is below
    # it: 570 due, paying interest 24.695 and principal 545.305 (principal left 454.695).
    # Month 12: balance 1,050 - 570 x 1.05^0.5 = 465.924 (= 454.695 x 1.05^0.5).  95 % of the new 1,000
    # would be 950 > 465.924: the first 465.924 / 0.95 = 490.446 saved are shared at 95 %, the other
    # 509.554 at 40 %: 465.924 + 203.822 = 669.745 due; L takes 465.924 (interest 11.229, principal
    # 454.695): repaid to the cent; the provider 203.822.
    need = 1_050 - 570 * R
    assert need == pytest.approx(465.9238, abs=1e-4)
    cents(cash.outcome_payments_due[0], monthly(T, {6: 570, 12: need + 0.4 * (1_000 - need / 0.95)}))
    cents(cash.distributions[0, 0], monthly(T, {6: 570, 12: need}))
    p6 = 1_000 - (570 - 1_000 * (R - 1))  # 454.695
    cents(cash.interest_paid[0, 0], monthly(T, {6: 1_000 * (R - 1), 12: p6 * (R - 1)}))
    cents(cash.principal_repaid[0, 0], monthly(T, {6: 570 - 1_000 * (R - 1), 12: p6}))
    cents(cash.provider_payments[0], monthly(T, {12: 0.4 * (1_000 - need / 0.95)}))
    # Path 1: 190 @6 (below 1,024.695: interest 24.695, principal 165.305 -> 834.695 left).  Month 12:
    # balance 1,050 - 190 x 1.05^0.5 = 855.308 > 95 % of 300 = 285: 285 due, all to L (interest
    # 834.695 x (1.05^0.5 - 1) = 20.613, principal 264.387); the provider nothing.
    p6 = 1_000 - (190 - 1_000 * (R - 1))
    cents(cash.outcome_payments_due[1], monthly(T, {6: 190, 12: 285}))
    cents(cash.distributions[1, 0], monthly(T, {6: 190, 12: 285}))
    cents(cash.interest_paid[1, 0], monthly(T, {6: 1_000 * (R - 1), 12: p6 * (R - 1)}))
    cents(cash.provider_payments[1], 0.0)
    cents(cash.net_savings, [monthly(T, {2: 600, 6: -570, 8: 1_000, 12: -(need + 0.4 * (1_000 - need / 0.95))}),
                             monthly(T, {2: 200, 6: -190, 8: 300, 12: -285})])


def _two_cohorts(sizes=(10, 30)):
    """The contract of deal (f) with two cohorts (intake months 0 and 1) of ``sizes``."""
    c = base_contract(months=(6, 12), budget={0: 1_000.0}, benefit=1.0)
    cohorts = tuple(dataclasses.replace(c.cohorts[0], intake_month=m, size=n) for m, n in enumerate(sizes))
    return dataclasses.replace(c, cohorts=cohorts)


def _saved_by_cohort(contract, saved: list[list[dict]]) -> Outcomes:
    """Outcomes with nothing but comparison benefit months: ``saved[p][c]`` {month: months} of cohort c."""
    T, P, C = contract.horizon_months, len(saved), len(contract.cohorts)
    K, Q = len(contract.outcomes), len(contract.costs)
    costs = np.zeros((P, C, Q, T), dtype=np.int32)
    for p, per_cohort in enumerate(saved):
        for c, entries in enumerate(per_cohort):
            for m, n in entries.items():
                costs[p, c, 0, m] += n
    sizes = np.array([co.size for co in contract.cohorts], np.int64)
    none = np.zeros((P, C, K, T), np.int32)
    return Outcomes(GroupOutcomes(none, np.zeros_like(costs), sizes, {}), GroupOutcomes(none.copy(), costs, sizes, {}))


def test_balance_linked_savings_share_per_cohort_each_cohort_against_its_share_of_the_loan():
    # Deal (f) with two cohorts: A (10 participants, intake month 0) and B (30, month 1), so A carries
    # a quarter of the loan and B three quarters.  Per cohort, each cohort's new savings are shared at
    # 95 % up to its own need: its share of what L would need without any savings payment (1,000 x
    # 1.05^(m/12) here, as all the savings money reaches L), less what its own savings paid in (grown
    # at 5 % a year from the month after it was paid).
    c = _two_cohorts()
    per_cohort = SavingsShare(0.95, rate_after=0.40, until_tranches=("L",), until_rate=0.05, per_cohort=True)
    steps = (Step("interest", ("L",)), Step("principal", ("L",)), Step("split", shares=(("provider", 1.0),)))
    c = with_stack(c, investors=(Investor("L", 1_000.0, kind="loan", interest=0.05),), waterfall_terms=Waterfall(steps))
    c = with_payer(c, savings_share=per_cohort)
    T = c.horizon_months
    R = 1.05 ** 0.5  # six months at 5 % a year
    saved = [[{2: 800, 8: 200}, {8: 300}],               # A saves first, B later
             [{2: 150, 8: 250}, {2: 450, 8: 750}],       # in proportion to their sizes
             [{8: 200}, {2: 800, 8: 300}]]               # B saves first, A later
    cash = settled(c, _saved_by_cohort(c, saved))

    # Path 0.  Month 6: A needs 1,000 R / 4 = 256.174; 95 % of its 800 = 760 is more, so 256.174 at
    # 95 % (of 269.657 saved) and the other 530.343 at 40 %: a6 = 256.174 + 212.137 = 468.311.  B saved
    # nothing.  (Pooled, 760 would be due: A's savings would carry B's part.)
    a6 = 250 * R + 0.4 * (800 - 250 * R / 0.95)
    assert a6 == pytest.approx(468.311, abs=1e-3)
    # Month 12: A needs 1,050 / 4 - a6 R < 0: its 200 at 40 % = 80; B needs 1,050 x 3/4 = 787.5, and 95 %
    # of its 300 = 285 is less: 285.  365 due, all to L (its balance 1,050 - a6 R = 570.1).
    cents(cash.outcome_payments_due[0], monthly(T, {6: a6, 12: 80 + 285}))
    cents(cash.distributions[0, 0], monthly(T, {6: a6, 12: 365}))
    cents(cash.interest_paid[0, 0], monthly(T, {6: 1_000 * (R - 1), 12: (1_000 * R - a6) * (R - 1)}))
    cents(cash.provider_payments[0], 0.0)

    # Path 1: savings in proportion to the cohorts' shares, so each cohort's need is its share of the
    # pooled need and the payments are deal (f)'s path 0: 570 at month 6; at month 12 the loan needs
    # 1,050 - 570 R, the first (1,050 - 570 R) / 0.95 of the 1,000 saved at 95 %, the rest at 40 %.
    need = 1_050 - 570 * R
    cents(cash.outcome_payments_due[1], monthly(T, {6: 570, 12: need + 0.4 * (1_000 - need / 0.95)}))
    cents(cash.distributions[1, 0], monthly(T, {6: 570, 12: need}))
    cents(cash.provider_payments[1], monthly(T, {12: 0.4 * (1_000 - need / 0.95)}))

    # Path 2.  Month 6: B needs 750 R = 768.521 > 95 % of 800 = 760: 760 due.  Month 12: A needs
    # 1,050 / 4 = 262.5 > 95 % of 200 = 190: 190; B needs 787.5 - 760 R = 8.732: 8.732 at 95 % and the
    # rest of its 300 at 40 %: 125.055.  315.055 due; L's balance is 1,050 - 760 R = 271.232, so L is
    # repaid to the cent and the provider gets 43.823.
    b12 = (787.5 - 760 * R) + 0.4 * (300 - (787.5 - 760 * R) / 0.95)
    assert b12 == pytest.approx(125.055, abs=1e-3)
    cents(cash.outcome_payments_due[2], monthly(T, {6: 760, 12: 190 + b12}))
    cents(cash.distributions[2, 0], monthly(T, {6: 760, 12: 1_050 - 760 * R}))
    cents(cash.principal_repaid[2, 0].sum(), 1_000.0)
    cents(cash.provider_payments[2], monthly(T, {12: 190 + b12 - (1_050 - 760 * R)}))

    # Pooled, the same savings pay more on path 0 (A carries B) and the same on path 1.
    pooled = settled(with_payer(c, savings_share=dataclasses.replace(per_cohort, per_cohort=False)),
                     _saved_by_cohort(c, saved))
    cents(pooled.outcome_payments_due[0, 6], 760.0)
    cents(pooled.outcome_payments_due[1], cash.outcome_payments_due[1])


def test_per_cohort_shares_follow_the_cohorts_started_never_a_later_review():
    # Cohorts A (10, intake 0) and B (30, intake 8); a review at month 7 on job starts, which path 0
    # passes (5 job starts) and path 1 fails (none): path 1 terminates at month 7 and B never starts.
    # At month 6 only A has started, so A carries the whole balance on both paths: 95 % of its 800 =
    # 760 is below 1,000 x 1.05^0.5 = 1,024.70, so 760 due on both (as pooled), whatever the review
    # says a month later.
    c = _two_cohorts()
    c = dataclasses.replace(c, cohorts=(c.cohorts[0], dataclasses.replace(c.cohorts[1], intake_month=8)))
    share = SavingsShare(0.95, rate_after=0.40, until_tranches=("L",), until_rate=0.05, per_cohort=True)
    steps = (Step("interest", ("L",)), Step("principal", ("L",)), Step("split", shares=(("provider", 1.0),)))
    c = with_stack(c, investors=(Investor("L", 1_000.0, kind="loan", interest=0.05),), waterfall_terms=Waterfall(steps))
    c = with_payer(c, savings_share=share, review=Review(7, "job_start", "difference", 0.1))
    outcomes = _saved_by_cohort(c, [[{2: 800}, {}], [{2: 800}, {}]])
    starts = outcomes.treated.events.copy()
    starts[0, 0, c.outcome_index("job_start"), 3] = 5
    outcomes = dataclasses.replace(outcomes, treated=dataclasses.replace(outcomes.treated, events=starts))
    cash = settled(c, outcomes)
    np.testing.assert_array_equal(cash.termination_month, [-1, 7])
    cents(cash.outcome_payments_due[:, 6], [760.0 + 5.0, 760.0])  # path 0 also earns its 5 job starts


def test_balance_linked_savings_share_per_cohort_with_one_cohort_is_the_pooled_share():
    # One cohort carries the whole balance: per cohort and pooled are the same contract.
    c = base_contract(months=(6, 12), budget={0: 1_000.0}, benefit=1.0)
    steps = (Step("interest", ("L",)), Step("principal", ("L",)), Step("split", shares=(("provider", 1.0),)))
    c = with_stack(c, investors=(Investor("L", 1_000.0, kind="loan", interest=0.05),), waterfall_terms=Waterfall(steps))
    share = SavingsShare(0.95, rate_after=0.40, until_tranches=("L",), until_rate=0.05)
    outcomes = outcomes_for(c, [{}, {}, {}], saved=[{2: 600, 8: 1_000}, {2: 200, 8: 300}, {2: 1_500, 8: 40}])
    pooled = settled(with_payer(c, savings_share=share), outcomes)
    cohort = settled(with_payer(c, savings_share=dataclasses.replace(share, per_cohort=True)), outcomes)
    cents(cohort.outcome_payments_due, pooled.outcome_payments_due)
    cents(cohort.distributions, pooled.distributions)
    cents(cohort.provider_payments, pooled.provider_payments)


def test_per_cohort_needs_a_switch_that_follows_a_balance():
    with pytest.raises(ValueError, match="per_cohort needs until_tranches"):
        SavingsShare(0.5, switch_multiple=1.2, rate_after=0.1, per_cohort=True)


def test_a_payer_above_another_payers_cap_pays_what_that_cap_left():
    # Fund pays everything up to its cap of 6,000; Ministry (above_cap_of Fund, its own cap 2,000, same
    # lag 0) pays what Fund's cap left.  Payments due (job starts at EUR 1): 5,000 @3, 2,500 @6, 4,000 @9,
    # all to tranche A (uncapped).
    #   Path 0: Fund 5,000 @3, 1,000 @6 (cap reached), 0 @9; Ministry 1,500 @6 and 500 @9 (its cap):
    #   3,500 of the last payment is paid by nobody, as a single payer capped at 8,000 would leave it.
    #   Path 1: Fund defaults on its 1,000 @6: the default is not passed on (Ministry pays 1,500, what
    #   the cap left), and as a defaulted payment does not use up Fund's cap, Fund pays 1,000 @9 and
    #   Ministry the 500 left of its own cap.
    c = base_contract(months=(3, 6, 9), budget={0: 1_000.0})
    c = with_stack(c, investors=(Investor("A", 1_000.0),),
                   payer_split=(Payer("Fund", payment_cap=6_000.0, default_probability=0.1),
                                Payer("Ministry", payment_cap=2_000.0, above_cap_of="Fund")))
    T = c.horizon_months
    starts = {2: 5_000, 5: 2_500, 8: 4_000}
    defaults = (np.array([[False, False, False], [False, True, False]]), None)
    cash = settled(c, outcomes_for(c, [starts, starts], defaults=defaults))
    cents(cash.payer_due[0], [monthly(T, {3: 5_000, 6: 1_000}), monthly(T, {3: 5_000, 6: 1_000, 9: 1_000})])
    cents(cash.payer_defaulted[0], [np.zeros(T), monthly(T, {6: 1_000})])
    cents(cash.payer_due[1], [monthly(T, {6: 1_500, 9: 500}), monthly(T, {6: 1_500, 9: 500})])
    cents(cash.payer_defaulted[1], 0.0)
    cents(cash.distributions[:, 0], [monthly(T, {3: 5_000, 6: 2_500, 9: 500}), monthly(T, {3: 5_000, 6: 1_500, 9: 1_500})])
    # On path 0 the two pay what one payer capped at 8,000 pays.
    one = with_payer(with_stack(c, payer_split=()), payment_cap=8_000.0)
    cents(settled(one, outcomes_for(one, [starts])).outcome_payments[0], cash.outcome_payments[0])


# ---------------------------------------------------------------------------------------
# (g) a payer paying the provider directly
# ---------------------------------------------------------------------------------------
def test_a_payer_paying_the_provider_directly_outside_the_waterfall():
    # City buys job starts (EUR 1 each) and pays the provider directly; State buys sustained jobs
    # (EUR 1 each) and pays into the vehicle.  Tranche A 500 at a 0 % return cap (its principal only),
    # drawn at month 0.  Measurements at 3 and 6 (lag 0).
    #   City: 100 @3, 50 @6 to the provider: outside the waterfall.
    #   State: 300 @3 -> A 300; 400 @6 -> A 200 (its cap), 200 withheld to the end: all State's (City
    #   put nothing into the vehicle).
    c = base_contract(months=(3, 6), budget={0: 500.0})
    c = with_payer(c, rate_card=(("job_start", 1.0), ("job_sustained", 1.0)))
    c = with_stack(c, investors=(Investor("A", 500.0, return_cap=0.0),),
                   payer_split=(Payer("City", buys=("job_start",), paid_to="provider"),
                                Payer("State", buys=("job_sustained",))))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{2: 100, 5: 50}], events={"job_sustained": [{2: 300, 5: 400}]}))
    cents(cash.provider_outcome_payments[0], monthly(T, {3: 100, 6: 50}))
    cents(cash.distributions[0, 0], monthly(T, {3: 300, 6: 200}))
    cents(cash.provider_payments, 0.0)
    cents(cash.payer_due[:, 0], [monthly(T, {3: 100, 6: 50}), monthly(T, {3: 300, 6: 400})])
    cents(cash.payer_withheld[:, 0], [np.zeros(T), monthly(T, ranges=[(6, T - 1, 200)])])
    cents(cash.payer_retained[:, 0], [np.zeros(T), monthly(T, {6: 200})])
    cents(cash.outcome_payments[0], monthly(T, {3: 400, 6: 250}))
    # The provider's delivery money came from A; its outcome money from City.
    cents(cash.provider_funding[0], monthly(T, {0: 500}))


# ---------------------------------------------------------------------------------------
# (h) a guarantor recouping its payout from a later payment
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("guarantor", ["Foundation", "Gov"])
def test_a_guarantee_paid_at_termination_is_recouped_from_a_later_payment(guarantor):
    # Tranche A 1,000 (no cap); delivery 100 a month in months 0-9; external stop at month 6.
    # Measurements at 3, 6 and 9, paid 2 months later (5, 8, 11).  Guarantee: half the loss, at
    # termination, recouped (the default waterfall: recoup first, then A).
    #   Calls in months 0-5: 600.  @5: 100 (measured at 3) -> A.
    #   @6 (termination): loss 600 - 100 = 500 -> the guarantor pays 250.
    #   @8: the month-6 measurement (held: not after the termination) pays 400: 250 back to the
    #   guarantor, 150 to A.  The month-9 measurement is after the stop.  A: 100 + 250 + 150 = 500.
    # Path 1: 200 measured at 6: @8 the 200 all goes to the guarantor (owed 250); A: 100 + 250.
    c = base_contract(months=(3, 6, 9), lag=2, budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("A", 1_000.0),),
                   guarantees=(Guarantee(guarantor, ("A",), share=0.5, pays="termination", recoup=True),),
                   external_stop=ExternalStop(6))
    assert c.waterfall.steps[0].pay == "recoup"
    T = c.horizon_months
    assert T == 12
    cash = settled(c, outcomes_for(c, [{1: 100, 4: 400, 7: 300}, {1: 100, 4: 200, 7: 300}]))
    cents(cash.capital_calls[:, 0], np.tile(monthly(T, ranges=[(0, 5, 100)]), (2, 1)))
    cents(cash.outcome_payments_due, [monthly(T, {5: 100, 8: 400}), monthly(T, {5: 100, 8: 200})])
    cents(cash.distributions[:, 0], [monthly(T, {5: 100, 8: 150}), monthly(T, {5: 100})])
    cents(cash.guarantee_payouts[:, 0], np.tile(monthly(T, {6: 250}), (2, 1)))
    cents(cash.guarantor_payments[0], np.tile(monthly(T, {6: 250}), (2, 1)))
    cents(cash.recoveries[0], [monthly(T, {8: 250}), monthly(T, {8: 200})])
    if guarantor == "Gov":  # the payer's capital protection: its payout and its recovery in its net savings
        cents(cash.net_savings, [monthly(T, {5: -100, 6: -250, 8: -400 + 250}),
                                 monthly(T, {5: -100, 6: -250, 8: -200 + 200})])
    else:
        cents(cash.net_savings, [monthly(T, {5: -100, 8: -400}), monthly(T, {5: -100, 8: -200})])


# ---------------------------------------------------------------------------------------
# regressions: draws respect availability without a draw order; nothing for a tranche that drew nothing
# ---------------------------------------------------------------------------------------
def test_a_tranche_is_not_drawn_before_it_is_available_even_without_a_draw_order():
    # A 600 (from month 0) and B 400 (available from month 6), no draw order, no caps; delivery 100 a
    # month in months 0-9.  Months 0-5: only A is available: it takes every call (600, all of it);
    # months 6-9: B (A has nothing left).  Payments: 300 @3 -> A only (B has put nothing in);
    # 500 @9 -> pro rata to commitments, 300 / 200.
    # (The engine drew 60 / 40 from month 0, B before it existed, and paid B 120 of the 300 at month 3.)
    c = base_contract(months=(3, 9), budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("A", 600.0), Investor("B", 400.0, available_from_month=6)))
    T = c.horizon_months
    planned = [monthly(T, ranges=[(0, 5, 100)]), monthly(T, ranges=[(6, 9, 100)])]
    cents(c.capital_calls(), planned)
    cash = settled(c, outcomes_for(c, [{2: 300, 8: 500}]))
    cents(cash.capital_calls[0], planned)
    cents(cash.distributions[0], [monthly(T, {3: 300, 9: 300}), monthly(T, {9: 200})])


def test_a_tranche_without_a_cap_that_drew_nothing_receives_nothing():
    # Draw order A then B, both 1,000 and uncapped; delivery 100 a month in months 0-9: A funds it all,
    # B is never called.  The default waterfall (everything up to the caps, pro rata to commitments):
    # B has nothing to be repaid and no return to earn, so A takes the 300 at month 3 and the 200 at 9.
    # (The engine paid B half: 150 and 100, for nothing.)
    c = base_contract(months=(3, 9), budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("A", 1_000.0), Investor("B", 1_000.0)),
                   draw_order=DrawOrder((("A",), ("B",))))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{2: 300, 8: 200}]))
    cents(cash.capital_calls[0], [monthly(T, ranges=[(0, 9, 100)]), np.zeros(T)])
    cents(cash.distributions[0], [monthly(T, {3: 300, 9: 200}), np.zeros(T)])


def test_a_tranche_made_whole_by_a_guarantee_is_not_paid_its_loss_again_by_later_cash():
    # Recoverable grant A 1,000 (principal only), drawn 100 a month in months 0-9.  Steps: a split of
    # the cash on offer, A 50 %, provider 25 % (the other 25 % stays on offer: withheld, offered again
    # next month).  A first-loss guarantee of up to 1,000 on A at maturity (month 9: the last call and
    # the last payment).  Payment 600 at month 9.
    #   @9: A 300, provider 150, 150 withheld.  Guarantee: loss 1,000 - 300 = 700 -> 700: A is whole.
    #   @10, @11: the 150 is offered again; A can take nothing more (its principal is covered), and
    #   money withheld after a split is never split again: 150 withheld to the end (the payer keeps it).
    # (The engine paid A 75 @10 and 18.75 @11 again: 1,093.75 on 1,000 drawn, beyond a 0 % cap.)
    c = base_contract(months=(9,), budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("A", 1_000.0, kind="recoverable_grant"),),
                   waterfall_terms=Waterfall((Step("split", shares=(("A", 0.5), ("provider", 0.25))),)),
                   guarantees=(Guarantee("Foundation", ("A",), kind="first_loss", amount=1_000.0),))
    T = c.horizon_months
    assert T == 12
    cash = settled(c, outcomes_for(c, [{8: 600}]))
    cents(cash.distributions[0, 0], monthly(T, {9: 300}))
    cents(cash.guarantee_payouts[0, 0], monthly(T, {9: 700}))
    cents(cash.provider_payments[0], monthly(T, {9: 150}))
    cents(cash.withheld_by_payer[0], monthly(T, {9: 150, 10: 150, 11: 150}))


def test_a_split_gives_nothing_to_a_tranche_that_drew_nothing():
    # As above (A funds everything, B is never called), with steps: a split A 50 % / B 50 %, then
    # everything to A.  At month 3, 300: A 150 by the split; B's 150 stays on offer (B has nothing
    # to be repaid, no return to earn) and the next step gives it to A.  (The engine paid B 150.)
    c = base_contract(months=(3,), budget={m: 100.0 for m in range(10)})
    steps = (Step("split", shares=(("A", 0.5), ("B", 0.5))), Step("to_cap", ("A",)))
    c = with_stack(c, investors=(Investor("A", 1_000.0), Investor("B", 1_000.0)),
                   draw_order=DrawOrder((("A",), ("B",))), waterfall_terms=Waterfall(steps))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{2: 300}]))
    cents(cash.distributions[0], [monthly(T, {3: 300}), np.zeros(T)])


# ---------------------------------------------------------------------------------------
# more rules, each by hand: the termination list, a hurdle and the fees step, recycling
# ---------------------------------------------------------------------------------------
def test_the_termination_list_runs_in_the_month_of_an_early_stop_only():
    # S 600 (seniority 1) and J 400 (seniority 2), no caps, drawn at month 0.  Steps: everything to S
    # then J (S, uncapped, takes it all); on termination: principal to J first, then S.  External stop
    # at month 5 on path 0.  Payments: 500 @5 (measured at 5: held), 300 @8 (after the stop: not held).
    #   Path 0: @5 the termination list: J 400, S 100.   Path 1: @5 S 500; @8 S 300.
    c = base_contract(months=(5, 8), budget={0: 1_000.0})
    c = with_stack(c, investors=(Investor("S", 600.0), Investor("J", 400.0, seniority=2)),
                   waterfall_terms=Waterfall((Step("to_cap", ("S", "J")),),
                                             on_termination=(Step("principal", ("J", "S"), order="sequential"),)),
                   external_stop=ExternalStop(5, 0.5))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{4: 500, 7: 300}] * 2, stopped=np.array([True, False])))
    cents(cash.distributions[0], [monthly(T, {5: 100}), monthly(T, {5: 400})])
    cents(cash.distributions[1], [monthly(T, {5: 500, 8: 300}), np.zeros(T)])


def test_fees_in_arrears_then_principal_then_a_10_percent_hurdle_then_a_split():
    # S 600 and J 400 (seniority 2), no caps, drawn at month 0.  A fee paid by the waterfall: 30 due at
    # month 2, 10 at month 3.  Steps: fees; principal to S; J's capital plus 10 % a year (hurdle); split
    # J 50 % / provider 50 %.  Payments 20 @3, 1,200 @12.
    #   @3: fees due so far 40: 20 paid (20 in arrears).
    #   @12: fees 20; S 600; J's hurdle 400 x 1.10^(12/12) = 440; 140 left: J 70, provider 70.
    c = base_contract(months=(3, 12), budget={0: 1_000.0})
    steps = (Step("fees"), Step("principal", ("S",)), Step("hurdle", ("J",), rate=0.10),
             Step("split", shares=(("J", 0.5), ("provider", 0.5))))
    c = with_stack(c, investors=(Investor("S", 600.0), Investor("J", 400.0, seniority=2)),
                   fees=(Fee("servicer", "waterfall", Schedule(((2, 30.0), (3, 10.0)))),),
                   waterfall_terms=Waterfall(steps))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{2: 20, 11: 1_200}]))
    cents(cash.waterfall_fees[0], monthly(T, {3: 20, 12: 20}))
    cents(cash.distributions[0], [monthly(T, {12: 600}), monthly(T, {12: 440 + 70})])
    cents(cash.provider_payments[0], monthly(T, {12: 70}))
    cents(cash.principal_repaid[0, 1], monthly(T, {12: 400}))


def test_recycling_funds_delivery_then_releases_the_rest_once_delivery_has_ended():
    # A 1,000 (no cap); delivery 100 a month in months 0-9; recycling.  Payments 300 @3, 200 @10.
    #   @3: the 300 is held and funds months 3, 4 and 5 (held 200, 100, 0): no calls then; calls
    #   100 in months 0-2 and 6-9 (700).  @10: delivery has ended: the 200 is released to A.
    c = base_contract(months=(3, 10), budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("A", 1_000.0),), recycling=True)
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{2: 300, 9: 200}]))
    cents(cash.capital_calls[0, 0], monthly(T, ranges=[(0, 2, 100), (6, 9, 100)]))
    cents(cash.recycled[0], monthly(T, ranges=[(3, 5, 100)]))
    cents(cash.vehicle_cash[0], monthly(T, {3: 200, 4: 100}))
    cents(cash.distributions[0, 0], monthly(T, {10: 200}))


@pytest.mark.parametrize("combine, expected", [("any", [6, 6, -1]), ("all", [6, -1, -1])])
def test_a_review_with_two_conditions_any_or_all(combine, expected):
    # Review at month 6: job starts per participant below 10 (100 among 10), sustained jobs below 5
    # (50).  Path 0: 90 and 40 (both below); path 1: 90 and 60 (only job starts below); path 2: 120
    # and 60 (neither).  "any" stops paths 0 and 1, "all" path 0 only.  A stopped path draws months 0-5.
    c = base_contract(months=(6, 10), budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("A", 1_000.0),))
    c = with_payer(c, review=Review(6, "job_start", "difference", 10.0, more=(("job_sustained", "difference", 5.0),),
                                    combine=combine))
    cash = settled(c, outcomes_for(c, [{2: 90}, {2: 90}, {2: 120}],
                                   events={"job_sustained": [{3: 40}, {3: 60}, {3: 60}]}))
    np.testing.assert_array_equal(cash.termination_month, expected)
    cents(cash.capital_calls.sum(axis=(1, 2)), [600 if m == 6 else 1_000 for m in expected])


def test_a_step_cap_counts_what_the_step_paid_over_the_whole_contract():
    # A and B (500 each, no caps) drawn at month 0.  Steps: everything to A, but 250 in all; then
    # everything to B.  Payments 200 @3, 200 @6, 100 @9: A 200, then 50 (its step's 250 reached) and B
    # 150; then B 100.
    c = base_contract(months=(3, 6, 9), budget={0: 1_000.0})
    c = with_stack(c, investors=(Investor("A", 500.0), Investor("B", 500.0)),
                   waterfall_terms=Waterfall((Step("to_cap", ("A",), cap=250.0), Step("to_cap", ("B",)))))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{2: 200, 5: 200, 8: 100}]))
    cents(cash.distributions[0], [monthly(T, {3: 200, 6: 50}), monthly(T, {6: 150, 9: 100})])


def test_with_several_payers_the_formulas_cap_and_default_are_refused_not_ignored():
    c = with_stack(base_contract(), payer_split=(Payer("Fund", payment_cap=10.0), Payer("Ministry", above_cap_of="Fund")))
    for change in ({"payment_cap": 8_000.0}, {"default_probability": 0.1}):
        with pytest.raises(ValueError, match="give each Payer its payment_cap and default_probability"):
            with_payer(c, **change)


@pytest.mark.parametrize("ministry, rule", [
    (Payer("Ministry", payment_cap=2_000.0, above_cap_of="Fund", payment_lag_months=1),
     "payment_lag_months: must equal Fund's (0): it pays what that cap left, in the same month, got 1"),
    (Payer("Ministry", payment_cap=2_000.0, above_cap_of="Fund", paid_to="provider"),
     "paid_to: must equal Fund's ('investors'): it pays what that cap left, to the same party, got 'provider'"),
    (Payer("Ministry", payment_cap=2_000.0, above_cap_of="fund"), "above_cap_of: names no payer, got 'fund'"),
])
def test_a_payer_above_a_cap_that_could_not_be_read_is_refused_not_lost(ministry, rule):
    c = base_contract()
    with pytest.raises(ValueError, match=re.escape(f"payer 'Ministry': {rule}")):
        with_stack(c, payer_split=(Payer("Fund", payment_cap=6_000.0), ministry))
    with pytest.raises(ValueError, match="above_cap_of: must name a payer listed before this one"):  # listed first
        with_stack(c, payer_split=(Payer("Ministry", above_cap_of="Fund"), Payer("Fund", payment_cap=6_000.0)))
    with pytest.raises(ValueError, match="above_cap_of: must name a payer with a payment_cap"):  # Fund has no cap
        with_stack(c, payer_split=(Payer("Fund"), Payer("Ministry", above_cap_of="Fund")))
    with pytest.raises(ValueError, match="one payer at most pays above the cap of 'Fund', got a second"):
        with_stack(c, payer_split=(Payer("Fund", payment_cap=6_000.0), Payer("Ministry", above_cap_of="Fund"),
                                   Payer("Region", above_cap_of="Fund")))
    with_stack(c, payer_split=(Payer("Fund", payment_cap=6_000.0), Payer("Ministry", above_cap_of="Fund")))
