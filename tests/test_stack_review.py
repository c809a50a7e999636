"""The reviewer's findings on the capital-stack engine, one hand-computed case each.

Each test is a small deal built like those of :mod:`tests.test_stack_deals` (a one-cohort contract
read by the loader, EUR 1 per treated ``job_start``, the stack set with ``dataclasses.replace``) and
settled on hand-made outcomes.  The expected numbers are derived in the comments from the rules of
the :mod:`sibsim.waterfall` docstring, :mod:`sibsim.stack`, ``docs/model.md`` section 2 and the
capital-stack section of ``docs/scenario.md``; every settlement also checks the ledger identities of
the :mod:`sibsim.cashflows` docstring (:func:`tests.test_stack_deals.check_identities`).

Findings: (1) ``to_cap`` paid an uncapped tranche that had drawn nothing; (2) a termination
guarantee paid a loss that later cash repaid again; (3) recycling released the vehicle a month
before a termination; (4) withheld money was attributed to the payers by cumulative contributions;
(5) a step cap limited the base, not the payment; (6) a non-paying guarantee between two ``share``
guarantees did not break their run; (7) the termination list never saw lagged payments; (8)
observed settlement applied a possible external stop as certain; (9) ``to_cap`` with ``pro_rata``
shares pro rata to capital drawn (documented); (10) memo wording; (11) the loader refused steps after
a split to a capped tranche.
"""

from __future__ import annotations

import dataclasses
import html
import re
import tomllib
from datetime import date

import numpy as np
import pytest

from sibsim import load_scenario, report, simulate
from sibsim.contracts import DrawOrder, ExternalStop, Guarantee, Investor, Payer, SavingsShare, Step, Waterfall
from sibsim.errors import ScenarioError
from sibsim.observed import Observed
from sibsim.scenario import contract_from_dict
from sibsim.settlement import settle as settle_observed

from .conftest import ROOT
from .test_stack_deals import (CENT, base_contract, cents, check_identities, monthly, outcomes_for, settled, with_payer,
                               with_stack)

STACK = ROOT / "tests" / "fixtures" / "valid_stack.toml"


# ---------------------------------------------------------------------------------------
# 1. to_cap: a tranche without a cap that has drawn nothing takes nothing (nor does a split)
# ---------------------------------------------------------------------------------------
def test_1_an_uncapped_tranche_that_drew_nothing_takes_nothing():
    # A and B, 100,000 each, no return cap, equal seniority; draw order [[A], [B]]; delivery 100,000
    # at month 0: A draws it all, B nothing.  150,000 paid at month 6.
    # Default waterfall (one to_cap step, pro rata to capital drawn within a seniority): B has no
    # capital to be repaid and no return to earn, so A takes all 150,000, B 0.
    c = base_contract(months=(6, 12), budget={0: 100_000.0})
    c = with_stack(c, investors=(Investor("A", 100_000.0), Investor("B", 100_000.0)),
                   draw_order=DrawOrder((("A",), ("B",))))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{5: 150_000}]))
    cents(cash.capital_calls[0], [monthly(T, {0: 100_000}), np.zeros(T)])
    cents(cash.distributions[0], [monthly(T, {6: 150_000}), np.zeros(T)])
    cents(cash.principal_repaid[0], [monthly(T, {6: 100_000}), np.zeros(T)])
    cents(cash.withheld_by_payer, 0.0)
    # A split gives a tranche that has drawn nothing nothing either.  Split A 50 %, B 50 %, then
    # to_cap to A: the split pays A 75,000 and B nothing (no claim), so B's 75,000 stays on offer
    # and the next step pays it to A: A 150,000 again, B 0, nothing withheld.
    c = with_stack(c, waterfall_terms=Waterfall((Step("split", shares=(("A", 0.5), ("B", 0.5))),
                                                 Step("to_cap", ("A",)))))
    cash = settled(c, outcomes_for(c, [{5: 150_000}]))
    cents(cash.distributions[0], [monthly(T, {6: 150_000}), np.zeros(T)])
    cents(cash.withheld_by_payer, 0.0)
    cents(cash.outcome_payments[0], monthly(T, {6: 150_000}))


# ---------------------------------------------------------------------------------------
# 2. a guarantee payout repays principal and counts against the cap: no loss paid twice
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("then", ["withheld", "provider"])
def test_2_a_termination_guarantee_counts_against_the_cap_of_later_payments(then):
    # F 100,000 (return cap 5 % a year), drawn at month 0.  External stop at month 12 (certain); the
    # month-12 measurement is held (not after the termination) and paid 3 months later, at 15: 60,000.
    # Floor guarantee 1.0, paid at termination.  Waterfall: the default (to_cap), or to_cap then
    # everything left to the provider.
    #   Month 12: nothing received yet: loss 100,000 -> the guarantor pays 100,000.  F's cap claim:
    #   100,000 x 1.05^(12/12) = 105,000, less the payout: 5,000.
    #   Month 15: the claim has grown to 5,000 x 1.05^(3/12) = 5,061.36: F takes that (it repays no
    #   principal: the payout already did), and the other 54,938.64 goes on: withheld to the end
    #   (kept by the payer), or to the provider.  F in all: 100,000 @12 + 5,061.36 @15, worth
    #   100,000 / 1.05 + 5,000 / 1.05 = 100,000 at month 0 discounted at 5 %: exactly its cap (not
    #   160,000: the 60,000 on top of the payout).
    c = base_contract(term=15, months=(12,), lag=3, budget={0: 100_000.0})
    steps = None if then == "withheld" else Waterfall((Step("to_cap"), Step("split", shares=(("provider", 1.0),))))
    c = with_stack(c, investors=(Investor("F", 100_000.0, return_cap=0.05),), waterfall_terms=steps,
                   guarantees=(Guarantee("Foundation", ("F",), kind="floor", floor=1.0, pays="termination"),),
                   external_stop=ExternalStop(12))
    T = c.horizon_months
    assert T == 16
    cash = settled(c, outcomes_for(c, [{11: 60_000}]))
    np.testing.assert_array_equal(cash.termination_month, [12])
    to_f = 5_000 * 1.05 ** (3 / 12)
    assert to_f == pytest.approx(5_061.36, abs=CENT)
    cents(cash.capital_calls[0, 0], monthly(T, {0: 100_000}))
    cents(cash.outcome_payments_due[0], monthly(T, {15: 60_000}))
    cents(cash.guarantee_payouts[0, 0], monthly(T, {12: 100_000}))
    cents(cash.guarantor_payments[0, 0], monthly(T, {12: 100_000}))
    cents(cash.distributions[0, 0], monthly(T, {15: to_f}))
    cents(cash.principal_repaid[0, 0], 0.0)
    cents(cash.interest_paid[0, 0], 0.0)
    got = cash.distributions[0, 0] + cash.guarantee_payouts[0, 0]
    cents((got / 1.05 ** (np.arange(T) / 12)).sum(), 100_000)
    left = 60_000 - to_f
    if then == "withheld":
        cents(cash.withheld_by_payer[0], monthly(T, {15: left}))
        cents(cash.retained_by_payer[0], monthly(T, {15: left}))
        cents(cash.outcome_payments[0], monthly(T, {15: to_f}))
        cents(cash.provider_payments, 0.0)
    else:
        cents(cash.provider_payments[0], monthly(T, {15: left}))
        cents(cash.withheld_by_payer, 0.0)
        cents(cash.outcome_payments[0], monthly(T, {15: 60_000}))
    cents(cash.recoveries, 0.0)


# ---------------------------------------------------------------------------------------
# 3. recycling releases the vehicle at the planned end of delivery or at a termination
# ---------------------------------------------------------------------------------------
def test_3_recycling_releases_at_the_termination_month_never_the_month_before():
    # F 1,000 (no cap); delivery 100 a month in months 0-9; recycling.  Measurements at 2 and 8 (lag
    # 0): 500 and 300.  Waterfall: to_cap; termination list: everything to the provider.  External
    # stop at month 6 on path 0 only.
    # Path 0: calls 100 @0, @1.  @2: 500 into the vehicle, 100 of it funds the month: 400 held; @3-@5:
    #   300, 200, 100 held (delivery is planned to month 9: nothing released, though nothing is spent
    #   after month 5).  @6, the termination: no delivery, the 100 held is released to the termination
    #   list: the provider 100 (not F at month 5, through the steps).  The month-8 measurement is after
    #   the stop.
    # Path 1: as path 0 to month 5; @6: the last 100 funds the month (0 held); @7: call 100; @8: 300
    #   in, 100 spent, 200 held; @9 (the planned end of delivery): 100 spent, the other 100 released:
    #   F 100.
    c = base_contract(months=(2, 8), budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("F", 1_000.0),), recycling=True,
                   waterfall_terms=Waterfall((Step("to_cap"),), (Step("split", shares=(("provider", 1.0),)),)),
                   external_stop=ExternalStop(6, probability=0.5))
    T = c.horizon_months
    assert T == 12
    cash = settled(c, outcomes_for(c, [{1: 500, 7: 300}, {1: 500, 7: 300}], stopped=np.array([True, False])))
    np.testing.assert_array_equal(cash.termination_month, [6, -1])
    cents(cash.capital_calls[:, 0], [monthly(T, {0: 100, 1: 100}), monthly(T, {0: 100, 1: 100, 7: 100})])
    cents(cash.recycled, [monthly(T, ranges=[(2, 5, 100)]), monthly(T, {8: 100, 9: 100}, ranges=[(2, 6, 100)])])
    cents(cash.vehicle_cash, [monthly(T, {2: 400, 3: 300, 4: 200, 5: 100}),
                              monthly(T, {2: 400, 3: 300, 4: 200, 5: 100, 8: 200})])
    cents(cash.outcome_payments_due, [monthly(T, {2: 500}), monthly(T, {2: 500, 8: 300})])
    cents(cash.provider_payments, [monthly(T, {6: 100}), np.zeros(T)])
    cents(cash.distributions[:, 0], [np.zeros(T), monthly(T, {9: 100})])
    cents(cash.withheld_by_payer, 0.0)


# ---------------------------------------------------------------------------------------
# 4. withheld money is each payer's own: no payer pays for another's withheld cash
# ---------------------------------------------------------------------------------------
def test_4_withheld_money_belongs_to_the_payer_whose_money_it_is():
    # F 100,000 at a 0 % return cap (its principal only), drawn at month 0.  Payer A buys job starts,
    # payer B sustained jobs (EUR 1 each), both into the vehicle; measurements at 12 and 15 (lag 0).
    #   @12: A pays 150,000: F takes 100,000 (its cap), 50,000 withheld, all A's.
    #   @15: B pays 100,000: on offer A's 50,000 and B's 100,000; F is at its cap: all withheld, each
    #   payer's own: A 50,000 (no change: A retains nothing more), B 100,000.
    # Net paid: A 150,000 - 50,000 = 100,000; B 100,000 - 100,000 = 0; never a negative month for A.
    # (Shared by cumulative contributions, 150 : 100, A would have 90,000 withheld at 15: a month-15
    # net payment of -40,000 by A, and B would have paid 40,000 that F never got.)
    c = base_contract(term=15, months=(12, 15), budget={0: 100_000.0})
    c = with_payer(c, rate_card=(("job_start", 1.0), ("job_sustained", 1.0)))
    c = with_stack(c, investors=(Investor("F", 100_000.0, return_cap=0.0),),
                   payer_split=(Payer("A", buys=("job_start",)), Payer("B", buys=("job_sustained",))))
    T = c.horizon_months
    assert T == 16
    cash = settled(c, outcomes_for(c, [{11: 150_000}], events={"job_sustained": [{14: 100_000}]}),
                   payer_splits=[np.zeros(T)])
    cents(cash.payer_due[:, 0], [monthly(T, {12: 150_000}), monthly(T, {15: 100_000})])
    cents(cash.distributions[0, 0], monthly(T, {12: 100_000}))
    cents(cash.payer_withheld[:, 0], [monthly(T, ranges=[(12, T - 1, 50_000)]), monthly(T, {15: 100_000})])
    cents(cash.payer_retained[:, 0], [monthly(T, {12: 50_000}), monthly(T, {15: 100_000})])
    net = cash.payer_due - cash.payer_defaulted - cash.payer_retained
    cents(net[:, 0], [monthly(T, {12: 100_000}), np.zeros(T)])
    cents(cash.outcome_payments[0], monthly(T, {12: 100_000}))
    cents(cash.net_savings[0], monthly(T, {12: -100_000}))


# ---------------------------------------------------------------------------------------
# 5. a step cap cuts the payment, not the cash the share is taken of
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["split", "success_fee", "split_two"])
def test_5_a_step_cap_limits_what_a_share_pays_not_its_base(kind):
    # F 100,000 (no cap) drawn at month 0; payments 12,000 @6 and 100,000 @12.  First step: half of
    # the cash on offer, cap 10,000 in all; then to_cap (F).
    #   split (provider 50 %) or success fee (share 0.5): @6 half of 12,000 = 6,000 (4,000 of the cap
    #   left), F 6,000; @12 half of 100,000 = 50,000, cut to the 4,000 left: F 96,000.
    #   split_two (provider 25 %, payer 25 %): @6 3,000 + 3,000 = 6,000, F 6,000; @12 25,000 + 25,000 =
    #   50,000 cut to 4,000, each share in proportion: 2,000 + 2,000; F 96,000.
    # (A cap on the base would have paid half of min(12,000, 10,000) = 5,000 @6, half of 5,000 @12.)
    c = base_contract(months=(6, 12), budget={0: 100_000.0})
    first = {"split": Step("split", shares=(("provider", 0.5),), cap=10_000.0),
             "success_fee": Step("success_fee", share=0.5, cap=10_000.0),
             "split_two": Step("split", shares=(("provider", 0.25), ("payer", 0.25)), cap=10_000.0)}[kind]
    c = with_stack(c, investors=(Investor("F", 100_000.0),), waterfall_terms=Waterfall((first, Step("to_cap"))))
    T = c.horizon_months
    to_payer = monthly(T, {6: 3_000, 12: 2_000}) if kind == "split_two" else np.zeros(T)
    cash = settled(c, outcomes_for(c, [{5: 12_000, 11: 100_000}]), payer_splits=[to_payer])
    if kind == "split_two":
        cents(cash.provider_payments[0], monthly(T, {6: 3_000, 12: 2_000}))
    else:
        cents(cash.provider_payments[0], monthly(T, {6: 6_000, 12: 4_000}))
    cents(cash.provider_payments[0].sum() + to_payer.sum(), 10_000)
    cents(cash.distributions[0, 0], monthly(T, {6: 6_000, 12: 96_000}))
    cents(cash.retained_by_payer[0], to_payer)
    cents(cash.withheld_by_payer, 0.0)


# ---------------------------------------------------------------------------------------
# 6. co-guarantors: consecutive share guarantees in the list; any other guarantee ends the run
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("middle", ["none", "termination_only", "paying"])
def test_6_a_guarantee_between_two_share_guarantees_ends_their_run_even_when_it_pays_nothing(middle):
    # F 100,000 (no cap) drawn at month 0; 40,000 paid at month 12, the last payment: the maturity
    # guarantees pay then, on the loss 100,000 - 40,000 = 60,000.  Guarantees in listed order:
    #   none: G1 share 0.5, G3 share 0.5 (consecutive: co-guarantors of the same loss): 30,000 each.
    #   termination_only: G1 share 0.5; G2 first loss 10,000 paying only at termination (the contract
    #     never terminates: it pays nothing); G3 share 0.5.  G2 sits between: G3 is not G1's
    #     co-guarantor, it covers the loss G1 and G2 left: 0.5 x (60,000 - 30,000) = 15,000.
    #   paying: the same with G2 paying at maturity: 10,000 (of the 30,000 left); G3 0.5 x (60,000 -
    #     30,000 - 10,000) = 10,000.
    c = base_contract(months=(12,), budget={0: 100_000.0})
    g1, g3 = Guarantee("G1", ("F",), share=0.5), Guarantee("G3", ("F",), share=0.5)
    g2 = Guarantee("G2", ("F",), kind="first_loss", amount=10_000.0,
                   pays="termination" if middle == "termination_only" else "maturity")
    guarantees = (g1, g3) if middle == "none" else (g1, g2, g3)
    c = with_stack(c, investors=(Investor("F", 100_000.0),), guarantees=guarantees)
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{11: 40_000}]))
    expected = {"none": [30_000, 30_000], "termination_only": [30_000, 0, 15_000],
                "paying": [30_000, 10_000, 10_000]}[middle]
    cents(cash.guarantor_payments[:, 0], [monthly(T, {12: x}) for x in expected])
    cents(cash.distributions[0, 0], monthly(T, {12: 40_000}))
    cents(cash.guarantee_payouts[0, 0], monthly(T, {12: sum(expected)}))


# ---------------------------------------------------------------------------------------
# 7. the termination list runs from the termination month on, on lagged payments too
# ---------------------------------------------------------------------------------------
def test_7_the_termination_list_receives_payments_after_the_termination():
    # F 1,000 (no cap); delivery 100 a month in months 0-9.  Measurements at 3 and 6, paid 2 months
    # later (5 and 8).  Steps: to_cap; termination list: principal, then the rest to the provider.
    # External stop at month 6 on path 0.
    # Path 0: calls 100 in months 0-5 (600).  @5: 400 (before the stop) -> to_cap: F 400.  @8: the
    #   month-6 measurement (held) pays 500, after the termination: the termination list: principal
    #   600 - 400 = 200 to F, 300 to the provider.
    # Path 1 (no stop): calls 1,000; @5 400 and @8 500 through to_cap: F 900.
    c = base_contract(months=(3, 6), lag=2, budget={m: 100.0 for m in range(10)})
    c = with_stack(c, investors=(Investor("F", 1_000.0),),
                   waterfall_terms=Waterfall((Step("to_cap"),),
                                             (Step("principal"), Step("split", shares=(("provider", 1.0),)))),
                   external_stop=ExternalStop(6, probability=0.5))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{2: 400, 5: 500}, {2: 400, 5: 500}], stopped=np.array([True, False])))
    np.testing.assert_array_equal(cash.termination_month, [6, -1])
    cents(cash.capital_calls[:, 0], [monthly(T, ranges=[(0, 5, 100)]), monthly(T, ranges=[(0, 9, 100)])])
    cents(cash.outcome_payments_due, np.tile(monthly(T, {5: 400, 8: 500}), (2, 1)))
    cents(cash.distributions[:, 0], [monthly(T, {5: 400, 8: 200}), monthly(T, {5: 400, 8: 500})])
    cents(cash.principal_repaid[:, 0], [monthly(T, {5: 400, 8: 200}), monthly(T, {5: 400, 8: 500})])
    cents(cash.provider_payments, [monthly(T, {8: 300}), np.zeros(T)])
    cents(cash.withheld_by_payer, 0.0)


# ---------------------------------------------------------------------------------------
# 8. settling observed counts: a possible external stop did not happen; a certain one applies
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("probability", [0.25, 1.0])
def test_8_observed_settlement_applies_an_external_stop_only_when_it_is_certain(probability):
    # F 1,000 (no cap); delivery 100 a month in months 0-9; EUR 100 per net job start, measured at 6
    # and 12 (lag 0).  External stop at month 8.  Observed (cumulative): 4 job starts by month 6, 10
    # by month 12 in the treated group, none in the comparison group.
    #   probability 0.25: a risk of the simulation, not an observation: it did not happen.  Calls
    #     100 in months 0-9 (1,000); 400 @6, 600 @12, all to F.
    #   probability 1 (a certain what-if): the contract ends at month 8: calls in months 0-7 (800);
    #     only the month-6 measurement is paid: 400 to F.
    c = base_contract(months=(6, 12), budget={m: 100.0 for m in range(10)})
    c = with_payer(c, rate_card=(("job_start", 100.0),))
    c = with_stack(c, investors=(Investor("F", 1_000.0),),
                   external_stop=ExternalStop(8, probability=probability, reason="policy change"))
    T = c.horizon_months
    observed = Observed({("treated", 0, "job_start"): {6: 4, 12: 10},
                         ("comparison", 0, "job_start"): {6: 0, 12: 0}})
    s = settle_observed(c, observed)
    cash = s.cashflows
    check_identities(c, cash)
    if probability < 1:
        np.testing.assert_array_equal(cash.termination_month, [-1])
        assert s.termination == ""
        cents(cash.capital_calls[0, 0], monthly(T, ranges=[(0, 9, 100)]))
        cents(cash.outcome_payments_due[0], monthly(T, {6: 400, 12: 600}))
        cents(cash.distributions[0, 0], monthly(T, {6: 400, 12: 600}))
    else:
        np.testing.assert_array_equal(cash.termination_month, [8])
        assert "policy change" in s.termination
        cents(cash.capital_calls[0, 0], monthly(T, ranges=[(0, 7, 100)]))
        cents(cash.outcome_payments_due[0], monthly(T, {6: 400}))
        cents(cash.distributions[0, 0], monthly(T, {6: 400}))
    cents(s.investors.loc["F", "capital_called"], cash.capital_calls[0, 0].sum())


# ---------------------------------------------------------------------------------------
# 9. to_cap shares pro rata to capital drawn (documented), what a capped tranche cannot take going round
# ---------------------------------------------------------------------------------------
def test_9_to_cap_pro_rata_shares_pro_rata_to_capital_drawn():
    # A 100,000 at a 0 % return cap (seniority 1), B 100,000 without a cap (seniority 2); draw order
    # [[A], [B]]; delivery 150,000 at month 0: A draws 100,000, B 50,000.  One step: to_cap, pro_rata
    # (seniority ignored).  Payments 90,000 @6, 150,000 @12.
    #   @6: pro rata to capital drawn, 100 : 50: A 60,000, B 30,000 (by seniority A would take all 90,000;
    #   pro rata to commitments, 45,000 each).
    #   @12: 100 : 50 of 150,000 is A 100,000, B 50,000, but A may take only 40,000 more (its cap): the
    #   60,000 it cannot take goes round to B: A 40,000, B 110,000.
    c = base_contract(months=(6, 12), budget={0: 150_000.0})
    c = with_stack(c, investors=(Investor("A", 100_000.0, return_cap=0.0), Investor("B", 100_000.0, seniority=2)),
                   draw_order=DrawOrder((("A",), ("B",))),
                   waterfall_terms=Waterfall((Step("to_cap", order="pro_rata"),)))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{5: 90_000, 11: 150_000}]))
    cents(cash.capital_calls[0], [monthly(T, {0: 100_000}), monthly(T, {0: 50_000})])
    cents(cash.distributions[0], [monthly(T, {6: 60_000, 12: 40_000}), monthly(T, {6: 30_000, 12: 110_000})])
    cents(cash.principal_repaid[0], [monthly(T, {6: 60_000, 12: 40_000}), monthly(T, {6: 30_000, 12: 20_000})])
    cents(cash.withheld_by_payer, 0.0)
    # Pro rata to capital drawn, not to what is owed.  A and B 100,000 each at 0 % caps, drawn at month
    # 0 (pro rata to commitments); steps: principal to A (cap 90,000), then to_cap to A and B pro rata.
    #   @6: 90,000 -> A (the principal step's cap).  @12: 50,000; the principal step is spent; to_cap
    #   pro rata to capital drawn (1 : 1): 25,000 each, but A is owed only 10,000: A 10,000, B 40,000
    #   (pro rata to what is owed, 10 : 100, would be 4,545.45 and 45,454.55).
    c = base_contract(months=(6, 12), budget={0: 200_000.0})
    c = with_stack(c, investors=(Investor("A", 100_000.0, return_cap=0.0), Investor("B", 100_000.0, return_cap=0.0)),
                   waterfall_terms=Waterfall((Step("principal", ("A",), cap=90_000.0),
                                              Step("to_cap", ("A", "B"), order="pro_rata"))))
    cash = settled(c, outcomes_for(c, [{5: 90_000, 11: 50_000}]))
    cents(cash.capital_calls[0], np.tile(monthly(T, {0: 100_000}), (2, 1)))
    cents(cash.distributions[0], [monthly(T, {6: 90_000, 12: 10_000}), monthly(T, {12: 40_000})])
    cents(cash.withheld_by_payer, 0.0)


# ---------------------------------------------------------------------------------------
# 10. memo wording: fees paid by the waterfall; the payers' default risk with [[payers]]
# ---------------------------------------------------------------------------------------
def _memo_text(contract) -> str:
    memo = report.render_report(simulate(contract, n_paths=10, seed=1), generated=date(2025, 1, 31))
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", memo)).split())


def test_10_memo_names_who_pays_each_fee_and_the_payers_default_risk():
    # valid_stack.toml: fee Intermediary 2,000 at month 0 paid by the investors; fee Evaluator 1,000 at
    # month 12 paid by the waterfall (a fees step); two [[payers]], the Municipality missing a payment
    # with probability 2 % (the [payer] table itself has no default probability).  No start date:
    # months are numbered ("month 0", one month: singular).
    c = load_scenario(STACK)
    assert c.payer.default_probability == 0 and [p.default_probability for p in c.payers] == [0.02, 0.0]
    text = _memo_text(c)
    assert "Fee: Evaluator EUR 1,000 paid by the waterfall (out of outcome payments, at its fees step)," in text
    assert "Fee: Intermediary EUR 2,000 paid by the investors (out of the capital)," in text
    risk = "The payer's risk of not paying is modelled as a fixed probability per payment."
    assert text.count(risk) == 1
    # One month is "month 0", not "months 0".
    assert "(out of the capital), in month 0 " in text and "at its fees step), in month 12 " in text
    # No payer that may default: no such sentence.
    c = with_stack(c, payer_split=tuple(dataclasses.replace(p, default_probability=0.0) for p in c.payers))
    assert risk not in _memo_text(c)


# ---------------------------------------------------------------------------------------
# 11. a step after a split is refused only when the split takes all the cash, always
# ---------------------------------------------------------------------------------------
def _problems(doc: dict) -> list[str]:
    try:
        contract_from_dict(doc, "s.toml")
    except ScenarioError as exc:
        return [line.removeprefix("s.toml: ") for line in exc.problems]
    return []


def test_11_a_split_that_can_leave_cash_allows_later_steps():
    # valid_stack.toml's last step: split Junior 50 %, provider 20 %, payer 30 %.  Junior (return cap
    # 10 %) takes nothing once at its cap, so its share stays on offer: a step after the split is reached.
    doc = tomllib.loads(STACK.read_text(encoding="utf-8"))
    steps = doc["waterfall"]["steps"]
    assert steps[-1] == {"pay": "split", "shares": {"Junior": 0.5, "provider": 0.2, "payer": 0.3}}
    steps.append({"pay": "to_cap", "to": ["Senior loan"]})
    assert _problems(doc) == []
    # Deferred fee: no return cap, but available only from month 6 (it has drawn nothing before).
    steps[-2]["shares"] = {"Deferred fee": 0.5, "provider": 0.5}
    assert _problems(doc) == []
    # Senior loan: no return cap, available from month 0, but third in the draw order (after Grant,
    # Recoverable and Junior): until it draws, its share is left too.
    steps[-2]["shares"] = {"Senior loan": 0.5, "provider": 0.5}
    assert _problems(doc) == []
    # In the first group of the draw order it draws at the first call: with the provider it takes all.
    doc["capital"]["draw_order"] = [["Senior loan", "Grant"], ["Recoverable", "Junior"], ["Deferred fee"]]
    never = ("waterfall.steps[8]: never reached: waterfall.steps[7] takes all the cash left (shares adding up to 1, "
             "no cap, no after), got a 'to_cap' step after it")
    assert _problems(doc) == [never]
    steps[-2]["shares"] = {"provider": 0.7, "payer": 0.3}
    assert _problems(doc) == [never]


def test_11_the_step_after_a_split_to_a_capped_tranche_gets_what_the_split_leaves():
    # F 100,000 at a 0 % return cap, drawn at month 0.  Steps: split F 100 %; then everything to the
    # provider.  150,000 @6: the split pays F 100,000 (its cap) and leaves 50,000: the provider 50,000.
    # 20,000 @12: F is at its cap: all 20,000 to the provider.
    c = base_contract(months=(6, 12), budget={0: 100_000.0})
    c = with_stack(c, investors=(Investor("F", 100_000.0, return_cap=0.0),),
                   waterfall_terms=Waterfall((Step("split", shares=(("F", 1.0),)),
                                              Step("split", shares=(("provider", 1.0),)))))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{5: 150_000, 11: 20_000}]))
    cents(cash.distributions[0, 0], monthly(T, {6: 100_000}))
    cents(cash.provider_payments[0], monthly(T, {6: 50_000, 12: 20_000}))
    cents(cash.withheld_by_payer, 0.0)


# ---------------------------------------------------------------------------------------
# further: guarantors recouping share later cash pro rata to what each is owed
# ---------------------------------------------------------------------------------------
def test_recouping_guarantors_share_later_cash_pro_rata_to_what_each_paid_out():
    # F 100,000 (no cap) drawn at month 0; external stop at month 12 (certain); the month-12
    # measurement pays 20,000 at 15 (lag 3).  Co-guarantors G1 (share 0.3) and G2 (share 0.1), both at
    # termination and recouping.  @12: loss 100,000: G1 30,000, G2 10,000.  @15: the default waterfall
    # (recoup first) owes them 30,000 and 10,000: the 20,000 pro rata, 15,000 and 5,000; F nothing.
    # (A to_cap-style water-filling with equal weights, 10,000 each, would favour the smaller claim.)
    c = base_contract(term=15, months=(12,), lag=3, budget={0: 100_000.0})
    c = with_stack(c, investors=(Investor("F", 100_000.0),), external_stop=ExternalStop(12),
                   guarantees=(Guarantee("G1", ("F",), share=0.3, pays="termination", recoup=True),
                               Guarantee("G2", ("F",), share=0.1, pays="termination", recoup=True)))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{11: 20_000}]))
    cents(cash.guarantor_payments[:, 0], [monthly(T, {12: 30_000}), monthly(T, {12: 10_000})])
    cents(cash.recoveries[:, 0], [monthly(T, {15: 15_000}), monthly(T, {15: 5_000})])
    cents(cash.distributions, 0.0)
    cents(cash.withheld_by_payer, 0.0)


# ---------------------------------------------------------------------------------------
# further: a balance-linked savings share whose payer pays the provider directly
# ---------------------------------------------------------------------------------------
def test_a_balance_linked_savings_share_paid_to_the_provider_keeps_the_first_rate():
    # Loan L 1,000 drawn at month 0, 5 % a year.  Savings share 95 % until L has what it drew plus 5 %
    # a year, then 40 %.  The only payer of the savings, City, pays the provider directly: nothing of
    # it can reach L, so the switch never comes and the first rate applies throughout.  Savings: 600
    # before month 6, 1,000 before month 12 (EUR 1 a benefit month): City owes 570 @6, 950 @12, to the
    # provider; L receives nothing.  (The switch was computed as inf - inf: a floating-point error.)
    c = base_contract(months=(6, 12), budget={0: 1_000.0}, benefit=1.0)
    c = with_payer(c, savings_share=SavingsShare(0.95, rate_after=0.40, until_tranches=("L",), until_rate=0.05))
    c = with_stack(c, investors=(Investor("L", 1_000.0, kind="loan", interest=0.05),),
                   payer_split=(Payer("City", buys=("savings",), paid_to="provider"),))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{}], saved=[{2: 600, 8: 1_000}]))
    cents(cash.payer_due[0, 0], monthly(T, {6: 570, 12: 950}))
    cents(cash.provider_outcome_payments[0], monthly(T, {6: 570, 12: 950}))
    cents(cash.distributions, 0.0)
    cents(cash.net_savings[0], monthly(T, {2: 600, 6: -570, 8: 1_000, 12: -950}))


def test_money_withheld_after_a_split_is_never_split_again():
    # Found by the hand-computed deals: F 100 (capped at 0 %), a split 50 % F / 50 % provider, 400 in
    # month 1.  F takes its room 100 of its 200 share, the provider 200; the 100 F could not take is
    # withheld.  Offered again in months 2-5 it is not split again (the provider's share would
    # otherwise compound: 50, 25, 12.50, ...): it stays withheld, 100, to the end.
    from sibsim.stack import Step, Waterfall
    from tests.test_cashflows import base_doc, contract_of, distribute

    c = dataclasses.replace(contract_of(base_doc()), investors=(Investor("F", 100.0, return_cap=0.0),),
                            waterfall_terms=Waterfall((Step("split", shares=(("F", 0.5), ("provider", 0.5))),)))
    calls = np.zeros((1, 6))
    calls[0, 0] = 100.0
    due = np.zeros((1, 6))
    due[0, 1] = 400.0
    got, withheld = distribute(c, calls, due)
    np.testing.assert_allclose(got[0, 0], [0, 100, 0, 0, 0, 0], atol=0.005)
    np.testing.assert_allclose(withheld[0], [0, 100, 100, 100, 100, 100], atol=0.005)
