"""Payment mechanisms of sibsim.cashflows, one at a time, then mixed at random.

1. Hand-computed cases, to the cent: deterministic journeys (probabilities 0 or 1) through
   the engine, or hand-made :class:`Outcomes` arrays fed to :func:`settle`.  Every expected
   value is derived in the comments.  Every settlement also passes ``check_ledgers`` (the
   four ledger identities, caps, waterfall order, guarantees; see tests/test_cashflows.py).
2. Hypothesis properties over random small contracts mixing every mechanism: payments due
   monotone in treated outcomes, caps and waterfall order never violated, cash conserved
   across all parties, guarantees within share x loss and their cap.

Shared contract "A" (``base_doc`` in test_cashflows): 24 months, one cohort of 10 at month 0,
everyone in a job from the intake month on (10 job starts at 0, 10 sustained and long-term at
5, 10 off benefits every month), counterfactual nothing; benefit 500 per person-month in
year 1, 550 in year 2; investors A 30,000 and B 10,000; budget 8,000 in months 0-3 plus a
4,000 investor fee at 0 (calls 36,000); payer fee 1,000 at month 12; measurements at 3 and
12, paid 2 months later.  Its rate card (job start 1,000, sustained 3,000, long-term 2,000)
and 10 % savings share make the payments due 11,500 at month 5 and 54,500 at month 14.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sibsim import simulate
from sibsim.cashflows import measure, settle
from sibsim.contracts import (
    MEASURES,
    Cohort,
    CohortTrigger,
    Contract,
    Fee,
    Guarantee,
    Investor,
    OutcomePayer,
    Review,
    SavingsShare,
    Schedule,
    TierTable,
)
from sibsim.expectation import expected_group
from sibsim.irr import IRR_TOTAL_LOSS, irr
from sibsim.metrics import path_metrics
from sibsim.montecarlo import GroupOutcomes, Outcomes, simulate_outcomes, split_counts, start_distributions
from tests import legacy
from tests.test_cashflows import (
    CALLS_A,
    CALLS_B,
    EUR_TOL,
    G5,
    G10,
    JOB_AT_INTAKE,
    T_A,
    base_doc,
    cents,
    check_ledgers,
    ck_costs,
    ck_rows,
    contract_of,
    fv14,
    investor_flows,
    journey,
    money,
    monthly,
    outcome_row,
    random_template,
    rate,
    reference_irr,
    run_deterministic,
)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def hand_outcomes(contract: Contract, n_paths: int, events=(), employed=(), comparison_sizes=None,
                  payer_default=None) -> Outcomes:
    """Outcomes from hand-written lists.

    ``events``: ``(group, path, cohort, outcome, month, count)``, group ``"t"`` (treated) or ``"c"``
    (comparison, raw counts: the counterfactual is count x treated size / comparison size);
    ``employed``: ``(group, path, cohort, from_month, to_month_inclusive, count)``.
    """
    T, C = contract.horizon_months, len(contract.cohorts)
    treated_sizes = np.array([c.size for c in contract.cohorts])
    comparison_sizes = contract.comparison_sizes if comparison_sizes is None else np.asarray(comparison_sizes)
    arrays = {g: (np.zeros((n_paths, C, 4, T), np.int32), np.zeros((n_paths, C, T), np.int32)) for g in "tc"}
    for g, p, c, outcome, month, n in events:
        arrays[g][0][p, c, legacy.CK_OUTCOMES.index(outcome), month] += n
    for g, p, c, m0, m1, n in employed:
        arrays[g][1][p, c, m0:m1 + 1] += n
    return Outcomes(group(contract, *arrays["t"], treated_sizes), group(contract, *arrays["c"], comparison_sizes),
                    payer_default=None if payer_default is None else np.asarray(payer_default, dtype=bool))


def group(contract: Contract, events, employed, sizes) -> GroupOutcomes:
    """Old-style counts (the four CK outcomes, months in work) as the contract's events and cost units."""
    ev, costs = legacy.groups(contract, events, employed, sizes)
    return GroupOutcomes(ev.astype(np.int32), costs.astype(np.int32), np.asarray(sizes, np.int64), {})


def with_training(doc: dict) -> dict:
    """The same terms with one month of training in the machine, so that the diploma outcome exists
    (legacy.new_format leaves it out of a machine without training); for hand-made outcomes only,
    which settle() reads without the journey."""
    doc["journey"] = dict(doc["journey"], max_training_months=1)
    return doc


def settled(contract: Contract, outcomes: Outcomes):
    cash = settle(contract, outcomes)
    check_ledgers(contract, cash, outcomes=outcomes)
    return cash


def doc_paying_by(**payer) -> dict:
    """Contract A with the rate card and savings share replaced by ``payer`` keys."""
    doc = base_doc()
    del doc["payer"]["rate_card"]
    doc["payer"]["savings_share"] = 0.0
    doc["payer"].update(payer)
    return doc


# ---------------------------------------------------------------------------------------
# rate card on months / days off benefits; modelled ("expected") counterfactual
# ---------------------------------------------------------------------------------------
# Counterfactual journey for these tests: no training, a job with probability 1/2 each month,
# never lost, never long-term.  Its exact expectation for one person, d months after intake:
#   first job start in month d: 2^-(d+1); in work in month d: 1 - 2^-(d+1);
#   sustained (6 months in the job) in month d + 5 for a job started in month d.
# Before month m, for a cohort of 10: job starts 10 (1 - 2^-m);
#   months off benefits 10 sum_{d<m} (1 - 2^-(d+1)) = 10 (m - 1 + 2^-m);
#   sustained: jobs started by month m - 6: 10 (1 - 2^-(m-5)) for m >= 6.
# Treated (contract A) before month 3: 10 job starts, 30 months off; before 12: 10 starts,
# 10 sustained, 120 months off.  Net:
#   month 3:  job starts 10 x 2^-3 = 1.25; months off 30 - 10 x 2.125 = 8.75; sustained 0
#   month 12: job starts 10 x 2^-12 = 0.00244140625; months off 120 - 10 x (11 + 2^-12) = 9.99755859375;
#             sustained 10 - 10 (1 - 2^-7) = 0.078125; long-term 10 (counterfactual never long-term).
HALF_A_MONTH = journey(job_without_diploma=0.5)


def expected_doc(**rate_card) -> dict:
    doc = doc_paying_by(rate_card=rate_card)
    doc["comparison"] = {"method": "expected", "journey": HALF_A_MONTH}
    return doc


def test_rate_card_benefit_month_saved_with_expected_counterfactual():
    contract = contract_of(expected_doc(job_sustained=2_000, benefit_month_saved=100))
    assert contract.comparison.method == "expected" and contract.comparison.size_ratio == 1.0
    cash, row = run_deterministic(contract)
    cents(ck_rows(contract, cash.measured_outcomes[0]), [[0, 0], [1.25, 0.00244140625], [0, 0.078125], [0, 10]])
    cents(outcome_row(contract, cash.measured_outcomes[0], "benefit_months"), [8.75, 9.99755859375])
    # Entitlement @3: 100 x 8.75 = 875;  @12: 100 x 9.99755859375 + 2,000 x 0.078125 = 999.76 + 156.25.
    # Due 875 @5 and 1,156.005859375 - 875 = 281.005859375 @14 (job starts and long-term are unpriced).
    cents(cash.outcome_payments_due[0], monthly(T_A, {5: 875, 14: 281.01}))
    cents(row["outcome_payments"], 1_156.01)
    # Gross savings: net in work in month m is 10 x 2^-(m+1): 500 x that in year 1, 550 in year 2.
    m = np.arange(T_A)
    cents(cash.gross_savings[0], 10 * 0.5 ** (m + 1) * np.where(m < 12, 500, 550))
    cents(cash.gross_savings[0, :3], [2_500, 1_250, 625])
    # Measured savings (for a savings share): 500 x 8.75 @3; 500 x 9.99755859375 @12.
    _, saved = measure(contract, simulate_outcomes(contract, 1, np.random.default_rng(1)))
    cents(saved[0], [4_375, 4_998.78])


def test_rate_card_benefit_day_saved_is_days_per_month():
    contract = contract_of(expected_doc(benefit_day_saved=10))
    # 10 EUR a day = 10 x 365.25 / 12 = 304.375 EUR per month off benefits (legacy.new_format prices the
    # occupancy outcome benefit_months, counted in months, at 304.375 a month).
    assert contract.payer.price("benefit_months") == 304.375
    cash, _ = run_deterministic(contract)
    # @3: 304.375 x 8.75 = 2,663.28125;  @12: 304.375 x 9.99755859375 = 3,043.0068969726...
    # Due 2,663.28 @5 and 379.73 @14.
    cents(cash.outcome_payments_due[0], monthly(T_A, {5: 2_663.28, 14: 379.73}))
    # Same as giving the monthly price.
    same = settle(contract_of(expected_doc(benefit_month_saved=304.375)),
                  simulate_outcomes(contract, 1, np.random.default_rng(0)))
    np.testing.assert_array_equal(same.outcome_payments_due[0], cash.outcome_payments_due[0])


def test_expected_counterfactual_is_the_exact_expectation_without_sampling():
    # Uncertain comparison probability (a prior): each path draws its own probability, and the
    # counterfactual is exactly expected_group() at that probability -- no comparison sampling.
    doc = expected_doc(benefit_month_saved=100)
    doc["comparison"]["journey"] = journey(job_without_diploma={"mean": 0.5, "sd": 0.1})
    contract = contract_of(doc)
    outcomes = simulate_outcomes(contract, 5, np.random.default_rng(3))
    p = outcomes.comparison.parameters["job_without_diploma"]
    assert len(np.unique(p)) == 5
    journey_c = contract.comparison.journey
    params = np.column_stack([outcomes.comparison.parameters[n] for n in journey_c.parameter_names])
    counts = expected_group(journey_c, contract.measures, params, np.array([0]), np.array([10]),
                            start_distributions(contract, comparison=True), T_A)
    events, costs = split_counts(contract, counts)
    np.testing.assert_array_equal(outcomes.comparison.events, events)
    np.testing.assert_array_equal(outcomes.comparison.costs, costs)
    np.testing.assert_array_equal(outcomes.comparison.sizes, [10])  # treated size: no size_ratio
    # By hand: in work (months off benefits) in month d with probability 1 - (1 - p)^(d+1).
    d = np.arange(T_A)
    employed = events[:, 0, contract.outcome_index("benefit_months")]
    np.testing.assert_allclose(employed, 10 * (1 - (1 - p[:, None]) ** (d + 1)), rtol=1e-12)
    cash = settled(contract, outcomes)
    # Months off before 3: net = 30 - 10 sum_{d<3} (1 - (1-p)^(d+1)); paid 100 a month.
    q = 1 - p
    net3 = 30 - 10 * (3 - q - q**2 - q**3)
    cents(cash.outcome_payments_due[:, 5], 100 * net3)
    # With a fixed probability the counterfactual, hence every path, is the same whatever the seed.
    fixed = contract_of(expected_doc(benefit_month_saved=100))
    a = settle(fixed, simulate_outcomes(fixed, 3, np.random.default_rng(1))).outcome_payments_due
    b = settle(fixed, simulate_outcomes(fixed, 3, np.random.default_rng(2))).outcome_payments_due
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.broadcast_to(a[:1], a.shape))


# ---------------------------------------------------------------------------------------
# savings share with a switch
# ---------------------------------------------------------------------------------------
def test_savings_share_switches_rate_at_multiple_of_planned_capital():
    # 50 % of measured savings until 1.2 x planned capital (1.2 x 36,000 = 43,200) is paid,
    # i.e. up to savings of 43,200 / 0.5 = 86,400; then 10 %.
    # Measured savings (contract A): before 12: 12 x 5,000 = 60,000;
    #   before 18: 60,000 + 6 x 5,500 = 93,000;  before 24: 60,000 + 12 x 5,500 = 126,000.
    # Entitlement: 30,000;  43,200 + 10 % x (93,000 - 86,400) = 43,860;  43,200 + 10 % x 39,600 = 47,160.
    # Due (lag 0): 30,000 @12, 13,860 @18, 3,300 @24.
    share = {"rate": 0.5, "switch_multiple": 1.2, "rate_after": 0.1}
    doc = doc_paying_by(savings_share=share, measurement_months=[12, 18, 24], payment_lag_months=0)
    contract = contract_of(doc)
    assert contract.payer.savings_share == SavingsShare(0.5, 1.2, 0.1)
    assert contract.horizon_months == 25
    cash, row = run_deterministic(contract)
    cents(cash.outcome_payments_due[0], monthly(25, {12: 30_000, 18: 13_860, 24: 3_300}))
    cents(cash.distributions[0], [monthly(25, {12: 22_500, 18: 10_395, 24: 2_475}),
                                  monthly(25, {12: 7_500, 18: 3_465, 24: 825})])
    cents(row["outcome_payments"], 47_160)
    # Without the switch: 30,000, 46,500, 63,000 -> due 30,000, 16,500, 16,500.
    doc["payer"]["savings_share"] = 0.5
    flat, _ = run_deterministic(contract_of(doc))
    cents(flat.outcome_payments_due[0], monthly(25, {12: 30_000, 18: 16_500, 24: 16_500}))


def test_savings_share_kink_is_exact():
    share = SavingsShare(0.5, 1.2, 0.1)
    # Kink at savings 1.2 x 36,000 / 0.5 = 86,400 (entitlement 43,200): continuous, slope 0.5 then 0.1.
    got = share.entitlement(np.array([0, 80_000, 86_399.99, 86_400, 86_400.01, 100_000, -5_000.0]), 36_000)
    cents(got, [0, 40_000, 43_199.995, 43_200, 43_200.001, 43_200 + 1_360, 0])
    assert got[3] == 43_200.0
    # One rate throughout without a switch; capital per path broadcasts.
    cents(SavingsShare(0.3).entitlement(np.array([100.0, 1e6]), 1.0), [30, 300_000])
    cents(share.entitlement(np.array([100_000.0, 100_000.0]), np.array([36_000, 100_000])),
          [44_560, 50_000])


# ---------------------------------------------------------------------------------------
# tier tables
# ---------------------------------------------------------------------------------------
def tier_contract(tier: dict, comparison_ratio: float = 2.0, **payer) -> Contract:
    """Contract A paying by one tier table only; comparison group of 20 (counts x 0.5) by default;
    for hand-made outcomes (every outcome defined, the diploma too)."""
    doc = with_training(doc_paying_by(tiers=[tier], **payer))
    doc["comparison"]["size_ratio"] = comparison_ratio
    return contract_of(doc)


def test_tiers_step_difference_with_minimum_at_first_point():
    contract = tier_contract({"outcome": "job_sustained", "measure": "difference",
                              "points": [[0.1, 10_000], [0.3, 25_000], [0.5, 40_000]]})
    assert contract.payer.tiers[0].minimum == 0.1  # default: the first point
    # Sustained jobs at month 6 (after the first measurement at 3).  Improvement (t - c) / 10 at 12:
    #   path 0: t 4, comparison 2 -> c 1: 0.3 -> exactly the 0.3 step: 25,000
    #   path 1: t 3, comparison 1 -> c 0.5: 0.25 -> 10,000
    #   path 2: t 1, c 0.5: 0.05 -> below the minimum: 0
    #   path 3: t 10, c 0: 1.0 -> beyond the top step: 40,000
    #   path 4: t 0, comparison 4 -> c 2: -0.2 -> 0
    t, c = [4, 3, 1, 10, 0], [2, 1, 1, 0, 4]
    events = [("t", p, 0, "job_sustained", 6, n) for p, n in enumerate(t)] + \
             [("c", p, 0, "job_sustained", 6, n) for p, n in enumerate(c)]
    cash = settled(contract, hand_outcomes(contract, 5, events))
    cents(cash.outcome_payments_due[:, 5], 0)  # improvement 0 before month 3
    cents(cash.outcome_payments_due[:, 14], [25_000, 10_000, 0, 40_000, 0])


def test_tiers_linear_with_explicit_minimum_on_benefit_months():
    contract = tier_contract({"outcome": "benefit_months", "measure": "difference", "interpolation": "linear",
                              "minimum": 1.0, "points": [[0.0, 0], [2.0, 20_000], [4.0, 30_000]]})
    # Net months off benefits per participant (10):
    #   path 0: 1 treated in work months 0-4 -> 0.3 @3, 0.5 @12: below the minimum 1.0 (interpolation
    #           alone would give 5,000): nothing.
    #   path 1: 3 treated in work months 0-4 (15), comparison 2 in work months 0-4 (x 0.5: 5):
    #           @3: (9 - 3) / 10 = 0.6 -> 0;  @12: (15 - 5) / 10 = 1.0 -> at the minimum: 10,000.
    #   path 2: 3 treated in work months 0-9: @3 0.9 -> 0;  @12: 30 / 10 = 3.0 -> 25,000.
    #   path 3: 10 treated in work throughout: @3: 3.0 -> 25,000;  @12: 12.0 -> flat beyond 4.0: 30,000.
    employed = [("t", 0, 0, 0, 4, 1), ("t", 1, 0, 0, 4, 3), ("c", 1, 0, 0, 4, 2), ("t", 2, 0, 0, 9, 3),
                ("t", 3, 0, 0, T_A - 1, 10)]
    cash = settled(contract, hand_outcomes(contract, 4, employed=employed))
    cents(cash.outcome_payments_due[:, 5], [0, 0, 0, 25_000])
    cents(cash.outcome_payments_due[:, 14], [0, 10_000, 25_000, 5_000])


def test_tiers_relative_increase_and_zero_counterfactual():
    contract = tier_contract({"outcome": "job_start", "measure": "relative_increase",
                              "points": [[0.2, 5_000], [0.5, 15_000]]})
    # Job starts at month 4; improvement (t - c) / c at 12 (comparison counts x 0.5):
    #   path 0: t 6, c 4: 0.5 -> 15,000;  path 1: t 5, c 4: 0.25 -> 5,000;
    #   path 2: t 3, c 0: +inf -> the top step, 15,000;  path 3: t 0, c 0: 0 -> 0;
    #   path 4: t 3, c 4: -0.25 -> 0.
    t, c = [6, 5, 3, 0, 3], [8, 8, 0, 0, 8]
    events = [("t", p, 0, "job_start", 4, n) for p, n in enumerate(t)] + \
             [("c", p, 0, "job_start", 4, n) for p, n in enumerate(c)]
    cash = settled(contract, hand_outcomes(contract, 5, events))
    cents(cash.outcome_payments_due[:, 14], [15_000, 5_000, 15_000, 0, 0])
    # Linear tables are flat beyond the last point, also at +inf; -inf and NaN pay nothing.
    linear = TierTable("job_start", "relative_increase", ((0.2, 5_000.0), (0.5, 15_000.0)), "linear", 0.2)
    cents(linear.amount(np.array([np.inf, 0.35, 0.2, 0.1999, -np.inf, np.nan])),
          [15_000, 10_000, 5_000, 0, 0, 0])


def test_tiers_relative_reduction_pays_for_fewer_events():
    # 'diploma' stands in for an outcome that should fall (e.g. reconvictions): (c - t) / c.
    contract = tier_contract({"outcome": "diploma", "measure": "relative_reduction",
                              "points": [[0.1, 10_000], [0.25, 20_000]]})
    #   path 0: t 6, c 8: 0.25 -> 20,000;  path 1: t 7, c 8: 0.125 -> 10,000;
    #   path 2: t 9, c 8: -0.125 -> 0;  path 3: t 0, c 0: 0 -> 0;  path 4: t 3, c 0: -inf -> 0.
    t, c = [6, 7, 9, 0, 3], [16, 16, 16, 0, 0]
    events = [("t", p, 0, "diploma", 1, n) for p, n in enumerate(t)] + \
             [("c", p, 0, "diploma", 1, n) for p, n in enumerate(c)]
    cash = settled(contract, hand_outcomes(contract, 5, events))
    # Events in month 1 are measured at both 3 and 12: paid at 5, nothing more at 14.
    cents(cash.outcome_payments_due[:, 5], [20_000, 10_000, 0, 0, 0])
    cents(cash.outcome_payments_due[:, 14], 0)


@pytest.mark.parametrize("cap", [None, 30_000])
def test_tiers_high_water_mark_across_measurements_and_payment_cap(cap):
    extra = {} if cap is None else {"payment_cap": cap}
    contract = tier_contract({"outcome": "job_start", "measure": "difference",
                              "points": [[0.1, 10_000], [0.3, 25_000], [0.5, 40_000]]},
                             measurement_months=[3, 12, 20], payment_lag_months=1, **extra)
    # Treated: 4 job starts at month 1, 6 more at month 15.  Comparison: 4 at month 5 (c = 2).
    # Improvement: @3: 4 / 10 = 0.4 -> 25,000;  @12: (4 - 2) / 10 = 0.2 -> 10,000 (a dip: no clawback);
    #              @20: (10 - 2) / 10 = 0.8 -> 40,000.
    # High-water mark 25,000, 25,000, 40,000 -> due 25,000 @4, 0 @13, 15,000 @21.
    # With a payment cap of 30,000: 25,000 @4, 5,000 @21.
    events = [("t", 0, 0, "job_start", 1, 4), ("t", 0, 0, "job_start", 15, 6), ("c", 0, 0, "job_start", 5, 4)]
    cash = settled(contract, hand_outcomes(contract, 1, events))
    last = 15_000 if cap is None else 5_000
    cents(cash.outcome_payments_due[0], monthly(T_A, {4: 25_000, 21: last}))


def test_tiers_add_to_rate_card():
    doc = base_doc()
    doc["payer"]["tiers"] = [{"outcome": "job_sustained", "measure": "difference", "points": [[0.5, 7_000]]}]
    cash, _ = run_deterministic(contract_of(doc))
    # Contract A's 11,500 @5 and 54,500 @14, plus 7,000 earned at 12 (10 sustained of 10: 1.0 >= 0.5).
    cents(cash.outcome_payments_due[0], monthly(T_A, {5: 11_500, 14: 61_500}))


# ---------------------------------------------------------------------------------------
# cohort trigger
# ---------------------------------------------------------------------------------------
def trigger_contract(**trigger) -> Contract:
    """Two cohorts of 10 (intake 0 and 6), comparison ratio 1; paid by the trigger only, 2 months' lag;
    for hand-made outcomes (every outcome defined, the diploma too)."""
    doc = with_training(doc_paying_by(trigger=trigger))
    del doc["payer"]["measurement_months"]
    doc["cohorts"] = [{"intake_month": 0, "size": 10}, {"intake_month": 6, "size": 10}]
    return contract_of(doc)


def test_cohort_trigger_difference_early_and_pooled():
    contract = trigger_contract(outcome="job_sustained", measure="difference", follow_up_months=12,
                                cohort_threshold=0.3, pooled_threshold=0.1, price=1_000)
    # Cohorts measured 12 months after intake: months 12 and 18 (the final, pooled one); paid at 14, 20.
    months, final = contract.trigger_months
    assert list(months) == [12, 18] and final == 18 and contract.payment_months == (14, 20)
    # (t0, c0, t1, c1): treated / counterfactual sustained jobs of cohort 0 (month 8) and 1 (month 10).
    #   path 0: (5, 1, 3, 1): cohort 0: 0.4 >= 0.3 -> 4 x 1,000 early @14; cohort 1: 0.2 -> no;
    #           pooled (8 - 2) / 20 = 0.3 >= 0.1 -> 6,000 less 4,000 early = 2,000 @20.
    #           (Cohort 0's 5 further jobs at month 15 are after its follow-up: not counted.)
    #   path 1: (3, 1, 2, 1): none early; pooled 3 / 20 = 0.15 -> 3,000 @20.
    #   path 2: (2, 1, 1, 1): none early; pooled 1 / 20 = 0.05 < 0.1 -> nothing at all.
    #   path 3: (6, 0, 0, 4): cohort 0: 0.6 -> 6,000 early; pooled 2 / 20 = 0.1 -> 2,000 - 6,000 < 0:
    #           nothing more (and the early payment is not clawed back).
    #   path 4: (5, 1, 4, 0): 4,000 early @14 and 4,000 early @20; pooled 8 / 20 -> 8,000 - 8,000 = 0.
    counts = [(5, 1, 3, 1), (3, 1, 2, 1), (2, 1, 1, 1), (6, 0, 0, 4), (5, 1, 4, 0)]
    events = [("t", 0, 0, "job_sustained", 15, 5)]
    for p, (t0, c0, t1, c1) in enumerate(counts):
        events += [("t", p, 0, "job_sustained", 8, t0), ("c", p, 0, "job_sustained", 8, c0),
                   ("t", p, 1, "job_sustained", 10, t1), ("c", p, 1, "job_sustained", 10, c1)]
    cash = settled(contract, hand_outcomes(contract, 5, events))
    cents(cash.outcome_payments_due[:, 14], [4_000, 0, 0, 6_000, 4_000])
    cents(cash.outcome_payments_due[:, 20], [2_000, 3_000, 0, 0, 4_000])
    cents(cash.outcome_payments_due.sum(axis=1), [6_000, 3_000, 0, 6_000, 8_000])


def test_cohort_trigger_relative_reduction_peterborough_style():
    contract = trigger_contract(outcome="diploma", measure="relative_reduction", follow_up_months=12,
                                cohort_threshold=0.1, pooled_threshold=0.075, price=500)
    # 'diploma' stands in for reconvictions: paid per event avoided, (c - t) x 500.
    #   path 0: cohort 0 (t 8, c 10): 0.2 -> 2 x 500 = 1,000 early @14; cohort 1 (10, 10): 0 -> no;
    #           pooled (20 - 18) / 20 = 0.1 -> 1,000 less 1,000 early = 0.
    #   path 1: (9, 10): 0.1 -> 500 @14; (9, 10): 500 @20; pooled 2 / 20 = 0.1 -> 1,000 - 1,000 = 0.
    #   path 2: (10, 10): no; (8, 9): 1/9 -> 500 @20; pooled 1 / 19 = 0.053 < 0.075: no final payment,
    #           but the early payment stands.
    counts = [(8, 10, 10, 10), (9, 10, 9, 10), (10, 10, 8, 9)]
    events = []
    for p, (t0, c0, t1, c1) in enumerate(counts):
        events += [("t", p, 0, "diploma", 3, t0), ("c", p, 0, "diploma", 3, c0),
                   ("t", p, 1, "diploma", 9, t1), ("c", p, 1, "diploma", 9, c1)]
    cash = settled(contract, hand_outcomes(contract, 3, events))
    cents(cash.outcome_payments_due[:, 14], [1_000, 500, 0])
    cents(cash.outcome_payments_due[:, 20], [0, 500, 500])


def test_cohort_trigger_with_rate_card_and_measurement_dates():
    # The trigger adds to the rate card; its dates join the payment months.
    doc = base_doc()
    doc["payer"]["trigger"] = {"outcome": "job_start", "measure": "difference", "follow_up_months": 6,
                               "cohort_threshold": 0.5, "pooled_threshold": 0.5, "price": 100}
    contract = contract_of(doc)
    assert contract.payment_months == (5, 8, 14)
    cash, _ = run_deterministic(contract)
    # Cohort measured at 6: 10 job starts, improvement 1.0: 1,000 early @8; pooled = the same cohort:
    # 1,000 less 1,000 = 0 more.  Rate card and savings share as in contract A.
    cents(cash.outcome_payments_due[0], monthly(T_A, {5: 11_500, 8: 1_000, 14: 54_500}))


# ---------------------------------------------------------------------------------------
# investor classes, grants, guarantees, capital protection
# ---------------------------------------------------------------------------------------
def test_senior_junior_own_caps_and_a_grant():
    doc = base_doc()
    doc["investors"] = [
        {"name": "S", "commitment": 20_000, "return_cap": 0.05, "seniority": 1},
        {"name": "J", "commitment": 10_000, "return_cap": 0.10, "seniority": 2, "class": "junior"},
        {"name": "G", "commitment": 10_000, "class": "grant"},
    ]
    contract = contract_of(doc)
    assert [i.repayable for i in contract.investors] == [True, True, False]
    cash, row = run_deterministic(contract)
    # Calls pro rata to commitments, the grant included: 1/2, 1/4, 1/4 of 12,000 @0 and 8,000 @1-3.
    S_calls, J_calls = CALLS_A * 2 / 3, CALLS_B
    cents(cash.capital_calls[0], [S_calls, J_calls, J_calls])
    # Month 5: senior S's claim 6,000 g^5 + 4,000 (g^4 + g^3 + g^2) = 18,270.56 (g = 1.05^(1/12))
    #   > 11,500: S takes all of it.
    # Month 14: S's claim = 2/3 x 28,427.26 - 11,500 g^9 = 7,022.90 -> S; junior J's claim at 10 %:
    #   3,000 h^14 + 2,000 (h^13 + h^12 + h^11) = 9,952.98 -> J; retained 54,500 - 16,975.88 = 37,524.12.
    claim_s = fv14(S_calls, G5) - 11_500 * G5**9
    claim_j = fv14(J_calls, G10)
    cents([claim_s, claim_j], [7_022.90, 9_952.98])
    cents(cash.distributions[0], [monthly(T_A, {5: 11_500, 14: claim_s}), monthly(T_A, {14: claim_j}),
                                  np.zeros(T_A)])
    cents(cash.retained_by_payer[0], monthly(T_A, {14: 37_524.12}))
    assert float(irr(investor_flows(cash, 0, 0)).rate) == pytest.approx(0.05, abs=1e-9)
    assert float(irr(investor_flows(cash, 0, 1)).rate) == pytest.approx(0.10, abs=1e-9)
    assert int(irr(investor_flows(cash, 0, 2)).status) == IRR_TOTAL_LOSS  # the grant: 9,000 in, nothing back
    cents(row["investor_loss"], 36_000 - 11_500 - claim_s - claim_j)


def guarantee_doc(**fund) -> dict:
    """Contract A with A senior, B junior (both uncapped) and a payment cap of 20,000:
    due 11,500 @5 and 8,500 @14, all to senior A; A loses 27,000 - 20,000 = 7,000, B all of its 9,000."""
    doc = base_doc()
    doc["investors"][1].update(seniority=2, **{"class": "junior"})
    doc["payer"]["payment_cap"] = 20_000
    doc["guarantees"] = [{"guarantor": "Fund", "investors": ["B"], "share": 0.5, **fund}]
    return doc


@pytest.mark.parametrize("cap, to_b", [(None, 4_500), (3_000, 3_000), (5_000, 4_500)])
def test_guarantee_covers_share_of_junior_loss_up_to_cap(cap, to_b):
    contract = contract_of(guarantee_doc(**({} if cap is None else {"cap": cap})))
    cash, row = run_deterministic(contract)
    cents(cash.distributions[0], [monthly(T_A, {5: 11_500, 14: 8_500}), np.zeros(T_A)])
    # Paid at the final payment month (14): 50 % of B's 9,000 = 4,500, or the cap if lower.
    cents(cash.guarantee_payouts[0], [np.zeros(T_A), monthly(T_A, {14: to_b})])
    cents(cash.guarantor_payments[:, 0], [monthly(T_A, {14: to_b})])
    cents(row["guarantee_payouts"], to_b)
    cents(row["distributions"], 20_000 + to_b)  # path table: distributions include guarantee payouts
    cents(row["investor_loss"], 36_000 - 20_000 - to_b)
    # Not the payer's guarantee: its net savings are unchanged (126,000 - 20,000 - 1,000).
    assert not cash.payer_guarantee_mask.any()
    cents(row["net_savings"], 105_000)
    ref = reference_irr(monthly(T_A, {0: -3_000, 14: to_b}, [(1, 3, -2_000)]))
    assert float(irr(investor_flows(cash, 0, 1)).rate) == pytest.approx(ref, abs=1e-9)


def test_guarantee_cap_shared_pro_rata_between_investors():
    doc = guarantee_doc()
    doc["guarantees"].append({"guarantor": "Bank", "investors": ["A", "B"], "share": 0.4, "cap": 5_000})
    cash, row = run_deterministic(contract_of(doc))
    # Bank: 40 % of A's 7,000 = 2,800 and of B's 9,000 = 3,600: 6,400 > cap 5,000, so x 5/6.4:
    # A 2,187.50, B 2,812.50.  Fund: B 4,500.  B gets 7,312.50 of its 9,000 loss back.
    cents(cash.guarantee_payouts[0, :, 14], [2_187.50, 7_312.50])
    cents(cash.guarantor_payments[:, 0, 14], [4_500, 5_000])
    cents(row["guarantee_payouts"], 9_500)
    cents(row["investor_loss"], 36_000 - 29_500)


def test_no_loss_no_guarantee_payout():
    doc = base_doc()
    doc["guarantees"] = [{"guarantor": "Fund", "investors": ["A", "B"], "share": 1.0}]
    cash, row = run_deterministic(contract_of(doc))
    cents(cash.guarantor_payments, 0)
    cents(row["distributions"], 66_000)


def test_capital_protection_is_a_guarantee_by_the_payer():
    # Contract A where the comparison group does better (test_cashflows): nothing is ever due;
    # investors lose their 36,000 (A 27,000, B 9,000).  Measurements 6 and 20, paid 8 and 22.
    doc = base_doc()
    doc["payer"]["measurement_months"] = [6, 20]
    doc["journey"] = journey(L=12, job_without_diploma=1.0, long_term_contract=1.0)
    doc["comparison"]["journey"] = JOB_AT_INTAKE
    doc["investors"][0]["capital_protection"] = 0.5
    doc["guarantees"] = [{"guarantor": "Fund", "investors": ["B"], "share": 0.5}]
    contract = contract_of(doc)
    assert contract.guarantees[-1] == Guarantee("Gemeente", ("A",), 0.5)
    cash, row = run_deterministic(contract)
    cents(cash.outcome_payments_due[0], np.zeros(T_A))
    # At the final payment month (22): the payer covers 50 % of A's 27,000 = 13,500; Fund 50 % of B's 9,000.
    np.testing.assert_array_equal(cash.payer_guarantee_mask, [False, True])
    cents(cash.guarantee_payouts[0], [monthly(T_A, {22: 13_500}), monthly(T_A, {22: 4_500})])
    cents(cash.payer_guarantee_payouts[0], monthly(T_A, {22: 13_500}))
    # Payer: gross -60,000, fee 1,000, capital protection 13,500 -> net -74,500 (Fund's 4,500 is not its).
    cents(cash.net_savings[0], monthly(T_A, {12: -1_000, 22: -13_500}, [(0, 11, -5_000)]))
    cents(row["net_savings"], -74_500)
    cents(row["investor_loss"], 36_000 - 18_000)
    assert row["investor_moic"] == pytest.approx(0.5, abs=1e-12)


# ---------------------------------------------------------------------------------------
# recycling
# ---------------------------------------------------------------------------------------
def recycling_doc(recycling: bool) -> dict:
    """Contract A with delivery running to month 7 and commitments A 36,000, B 12,000 (3/4, 1/4).

    Needs: 8,000 + 4,000 fee @0, 8,000 @1-4, 1,000 @5-7 (47,000).  Due 11,500 @5 (during delivery)
    and 54,500 @14 (after it)."""
    doc = base_doc()
    doc["investors"][0]["commitment"] = 36_000
    doc["investors"][1]["commitment"] = 12_000
    doc["provider"]["budget"] = [{"from_month": 0, "to_month": 4, "per_month": 8_000},
                                 {"from_month": 5, "to_month": 7, "per_month": 1_000}]
    doc["provider"]["recycling"] = recycling
    return doc


def test_recycling_funds_delivery_then_releases_at_delivery_end():
    contract = contract_of(recycling_doc(True))
    assert contract.recycling
    cash, row = run_deterministic(contract)
    # Month 5: 11,500 received, 1,000 needed -> recycled, no call; 10,500 held.
    # Month 6: 1,000 recycled, 9,500 held.  Month 7 (delivery ends): 1,000 recycled, 8,500 released.
    # Month 14: 54,500 released at once (delivery is over).
    cents(cash.recycled[0], monthly(T_A, ranges=[(5, 7, 1_000)]))
    cents(cash.vehicle_cash[0], monthly(T_A, {5: 10_500, 6: 9_500}))
    calls = monthly(T_A, {0: 12_000}, [(1, 4, 8_000)])  # nothing called in months 5-7: 44,000 not 47,000
    cents(cash.capital_calls[0], [calls * 3 / 4, calls / 4])
    cents(row["capital_called"], 44_000)
    # Nothing distributed before delivery ends; 8,500 @7 and 54,500 @14, 3/4 : 1/4.
    cents(cash.distributions[0], [monthly(T_A, {7: 6_375, 14: 40_875}), monthly(T_A, {7: 2_125, 14: 13_625})])
    # The payer pays 11,500 @5 and 54,500 @14 as without recycling; the provider gets its whole budget.
    cents(cash.outcome_payments[0], monthly(T_A, {5: 11_500, 14: 54_500}))
    cents(cash.provider_funding[0], monthly(T_A, ranges=[(0, 4, 8_000), (5, 7, 1_000)]))
    cents(row["distributions"], 63_000)
    ref = reference_irr(monthly(T_A, {0: -12_000, 7: 8_500, 14: 54_500}, [(1, 4, -8_000)]))
    assert row["investor_irr"] == pytest.approx(ref, abs=1e-9)
    # Without recycling: 47,000 called, 11,500 distributed at once @5.
    plain, plain_row = run_deterministic(contract_of(recycling_doc(False)))
    cents(plain_row["capital_called"], 47_000)
    cents(plain.distributions[0].sum(axis=0), monthly(T_A, {5: 11_500, 14: 54_500}))
    cents(plain.recycled, 0)
    # Same money in the end (66,000 - 47,000 = 63,000 - 44,000 = 19,000), only timed differently.
    cents(row["distributions"] - row["capital_called"], plain_row["distributions"] - plain_row["capital_called"])


def test_recycling_with_a_return_cap_retains_at_release():
    # Caps at 0 %: each investor's claim is what it paid in.  Month 7 releases 8,500 (< 44,000 called):
    # paid in full.  Month 14: claims 33,000 - 6,375 = 26,625 and 11,000 - 2,125 = 8,875 -> 35,500 paid,
    # 54,500 - 35,500 = 19,000 retained.
    doc = recycling_doc(True)
    for inv in doc["investors"]:
        inv["return_cap"] = 0.0
    cash, row = run_deterministic(contract_of(doc))
    cents(cash.distributions[0], [monthly(T_A, {7: 6_375, 14: 26_625}), monthly(T_A, {7: 2_125, 14: 8_875})])
    cents(cash.retained_by_payer[0], monthly(T_A, {14: 19_000}))
    cents(cash.outcome_payments[0], monthly(T_A, {5: 11_500, 14: 35_500}))
    cents(row["investor_moic"], 1.0)


# ---------------------------------------------------------------------------------------
# early termination at the review
# ---------------------------------------------------------------------------------------
def review_doc(**payer) -> dict:
    """Two cohorts of 10 (intake 0 and 12); budget 4,000 in months 0-15 plus the 4,000 fee @0 (68,000:
    A 51,000, B 17,000); rate card 1,000 per job start; measurements 3, 12, 20 paid 2 months later;
    review at 6: at least 0.5 net job starts per participant of the cohorts started so far."""
    doc = doc_paying_by(**{"rate_card": {"job_start": 1_000}, "measurement_months": [3, 12, 20], **payer})
    doc["cohorts"] = [{"intake_month": 0, "size": 10}, {"intake_month": 12, "size": 10}]
    doc["provider"]["budget"] = [{"from_month": 0, "to_month": 15, "per_month": 4_000}]
    doc["investors"][0]["commitment"] = 51_000
    doc["investors"][1]["commitment"] = 17_000
    doc["payer"]["review"] = {"month": 6, "outcome": "job_start", "measure": "difference", "floor": 0.5}
    return doc


def review_outcomes(contract):
    # Cohort 0: 3 (path 0) or 8 (path 1) job starts at month 1, in work from then on;
    # cohort 1: 10 job starts at its intake (12), in work from then on.  Comparison: nothing.
    events, employed = [], []
    for p, n in enumerate((3, 8)):
        events += [("t", p, 0, "job_start", 1, n), ("t", p, 1, "job_start", 12, 10)]
        employed += [("t", p, 0, 1, T_A - 1, n), ("t", p, 1, 12, T_A - 1, 10)]
    return hand_outcomes(contract, 2, events, employed)


def test_review_below_floor_terminates_above_changes_nothing():
    contract = contract_of(review_doc())
    assert contract.payer.review == Review(6, "job_start", "difference", 0.5)
    outcomes = review_outcomes(contract)
    cash = settled(contract, outcomes)
    # Review at 6: improvement 3 / 10 = 0.3 < 0.5 on path 0 -> terminated; 0.8 on path 1 -> continues.
    np.testing.assert_array_equal(cash.terminated, [True, False])
    # Path 0: delivery stops at the review month: budget 4,000 @0-5 (+ 4,000 fee @0), no call from 6 on.
    cents(cash.provider_funding[0], monthly(T_A, ranges=[(0, 5, 4_000)]))
    cents(cash.capital_calls[0].sum(axis=0), monthly(T_A, {0: 8_000}, [(1, 5, 4_000)]))
    assert (cash.capital_calls[0, :, 6:] == 0).all()
    cents(cash.capital_calls[0, :, 0], [6_000, 2_000])
    # Cohort 1 is never enrolled; only the measurement at 3 (before the review) is paid: 3 x 1,000 @5.
    cents(cash.outcome_payments_due[0], monthly(T_A, {5: 3_000}))
    cents(cash.distributions[0], [monthly(T_A, {5: 2_250}), monthly(T_A, {5: 750})])
    # Savings of cohort 0 only: 3 x 500 @1-11, 3 x 550 @12-23.
    cents(cash.gross_savings[0], monthly(T_A, ranges=[(1, 11, 1_500), (12, 23, 1_650)]))
    # Path 1: everything as planned: @3: 8 -> 8,000 @5; @12: 8 (cohort 1 not yet) -> 0; @20: 18 -> 10,000 @22.
    cents(cash.outcome_payments_due[1], monthly(T_A, {5: 8_000, 22: 10_000}))
    cents(cash.capital_calls[1].sum(axis=0), monthly(T_A, {0: 8_000}, [(1, 15, 4_000)]))
    cents(cash.gross_savings[1], monthly(T_A, ranges=[(1, 11, 4_000), (12, 23, 9_900)]))
    # ... identical, ledger by ledger, to the same contract without a review.
    no_review = dataclasses.replace(contract, payer=dataclasses.replace(contract.payer, review=None))
    plain = settled(no_review, outcomes)
    for name in ("capital_calls", "distributions", "outcome_payments_due", "outcome_payments", "gross_savings",
                 "provider_funding", "investor_fees", "measured_outcomes"):
        np.testing.assert_array_equal(getattr(cash, name)[1], getattr(plain, name)[1], err_msg=name)
    frame = path_metrics(contract, cash, outcomes)
    assert list(frame["terminated"]) == [True, False]
    cents(frame["capital_called"], [28_000, 68_000])


def test_review_never_changes_payments_due_before_it():
    # Causality: a payment falling due before the review (measurement at 3, paid at 5 < 6) cannot
    # depend on the review's result.  Tier on the share of all 20 planned participants:
    # path 0 at 3: 3 / 20 = 0.15 < 0.25 -> nothing, whether or not the review later terminates
    # (dividing by the 10 participants of the cohort still enrolled after a termination would
    # give 0.3 and pay 10,000 at month 5 only because of what happens at month 6).
    contract = contract_of(review_doc(rate_card={}, tiers=[
        {"outcome": "job_start", "measure": "difference", "points": [[0.25, 10_000], [0.5, 20_000]]}]))
    outcomes = review_outcomes(contract)
    cash = settled(contract, outcomes)
    no_review = dataclasses.replace(contract, payer=dataclasses.replace(contract.payer, review=None))
    plain = settled(no_review, outcomes)
    np.testing.assert_array_equal(cash.terminated, [True, False])
    np.testing.assert_array_equal(cash.outcome_payments_due[:, :6], plain.outcome_payments_due[:, :6])
    # Path 1 @3: 8 / 20 = 0.4 -> 10,000 @5; @20: 18 / 20 = 0.9 -> 20,000: 10,000 more @22.
    cents(cash.outcome_payments_due, [np.zeros(T_A), monthly(T_A, {5: 10_000, 22: 10_000})])


def test_review_stops_trigger_measurements_after_it():
    doc = review_doc(rate_card={}, trigger={"outcome": "job_start", "measure": "difference",
                                            "follow_up_months": 4, "cohort_threshold": 0.2,
                                            "pooled_threshold": 0.2, "price": 100})
    del doc["payer"]["measurement_months"]
    contract = contract_of(doc)
    cash = settled(contract, review_outcomes(contract))
    # Cohort 0 measured at 4 (before the review): 3 / 10 and 8 / 10 >= 0.2 -> 300 / 800 early @6.
    # Cohort 1 at 16 (the pooled final): path 0 terminated -> nothing; path 1: cohort 1 10 / 10 -> 1,000
    # early @18, pooled 18 / 20 -> 1,800 less 1,800 early = 0.
    cents(cash.outcome_payments_due, [monthly(T_A, {6: 300}), monthly(T_A, {6: 800, 18: 1_000})])


# ---------------------------------------------------------------------------------------
# payer default
# ---------------------------------------------------------------------------------------
def test_payer_default_by_hand():
    contract = contract_of(base_doc())
    assert contract.payment_months == (5, 14)
    sim = simulate_outcomes(contract, 3, np.random.default_rng(0))
    # Path 0 misses the payment @14, path 1 the one @5, path 2 pays both.
    outcomes = dataclasses.replace(sim, payer_default=np.array([[False, True], [True, False], [False, False]]))
    cash = settled(contract, outcomes)
    # What is due does not change (no catch-up either: @14 is still 66,000 - 11,500).
    cents(cash.outcome_payments_due, np.broadcast_to(monthly(T_A, {5: 11_500, 14: 54_500}), (3, T_A)))
    cents(cash.defaulted_by_payer, [monthly(T_A, {14: 54_500}), monthly(T_A, {5: 11_500}), np.zeros(T_A)])
    cents(cash.outcome_payments, [monthly(T_A, {5: 11_500}), monthly(T_A, {14: 54_500}),
                                  monthly(T_A, {5: 11_500, 14: 54_500})])
    # Investors get less: path 0 only 8,625 / 2,875 @5.
    cents(cash.distributions[0], [monthly(T_A, {5: 8_625}), monthly(T_A, {5: 2_875})])
    cents(cash.distributions[1], [monthly(T_A, {14: 40_875}), monthly(T_A, {14: 13_625})])
    frame = path_metrics(contract, cash, outcomes)
    cents(frame["defaulted_by_payer"], [54_500, 11_500, 0])
    cents(frame["net_savings"], [126_000 - 11_500 - 1_000, 126_000 - 54_500 - 1_000, 126_000 - 66_000 - 1_000])
    cents(frame["investor_loss"], [36_000 - 11_500, 0, 0])


def test_payer_default_probability_through_simulate():
    doc = base_doc()
    doc["payer"]["default_probability"] = 0.3
    contract = contract_of(doc)
    n = 4_000
    outcomes = simulate_outcomes(contract, n, np.random.default_rng(2024))
    cash = settled(contract, outcomes)
    # Each of the 2 n payments (all > 0 here) is missed independently with probability 0.3.
    missed = cash.defaulted_by_payer[:, [5, 14]] > 0
    se = np.sqrt(0.3 * 0.7 / missed.size)
    assert abs(missed.mean() - 0.3) < 5 * se
    # The two payments are independent: P(both missed) = 0.09.
    assert abs((missed[:, 0] & missed[:, 1]).mean() - 0.09) < 5 * np.sqrt(0.09 * 0.91 / n)
    # Through simulate(): expected defaulted 0.3 x 66,000 = 19,800 within 5 standard errors.
    res = simulate(contract, n_paths=n, seed=11)
    est, se = res.summary().loc["expected_defaulted", ["estimate", "std_error"]]
    assert se > 0 and abs(est - 19_800) < 5 * se
    paid = res.summary().loc["expected_outcome_payments", "estimate"]
    assert paid == pytest.approx(66_000 - est, abs=1e-6)


# ---------------------------------------------------------------------------------------
# shipped scenarios with the new mechanisms: every identity on every path
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["peterborough", "rotterdam_buzinezzclub", "utrecht_colour_kitchen_guarantee"])
def test_identities_on_shipped_scenarios(name):
    from sibsim import load_scenario
    from tests.conftest import SCENARIOS

    contract = load_scenario(SCENARIOS / f"{name}.toml")
    outcomes = simulate_outcomes(contract, 200, np.random.default_rng(len(name)))
    cash = settle(contract, outcomes)
    check_ledgers(contract, cash, outcomes=outcomes)


# ---------------------------------------------------------------------------------------
# properties over random small contracts mixing every mechanism
# ---------------------------------------------------------------------------------------
INCREASING = ("difference", "relative_increase")  # more treated outcomes -> higher improvement


@st.composite
def mechanism_cases(draw, monotone: bool):
    """A random small contract, hand-made outcomes, and the same with more treated outcomes."""
    measures = INCREASING if monotone else MEASURES
    # The Colour Kitchen outcomes (and months in work, benefit_months) and cost items, as legacy.new_format
    # writes them; the journey is not used (the outcomes are hand-made).
    template = random_template()
    measurable = template.outcome_names
    term = draw(st.integers(4, 18))
    cohorts = tuple(Cohort(draw(st.integers(0, term - 1)), draw(st.integers(1, 20)))
                    for _ in range(draw(st.integers(1, 3))))
    trigger = None
    if draw(st.booleans()):
        pooled = draw(rate(-0.5, 1.0))
        trigger = CohortTrigger(draw(st.sampled_from(measurable)), draw(st.sampled_from(measures)),
                                draw(st.integers(1, 8)), pooled + draw(rate(0.0, 1.0)), pooled,
                                draw(money(0.0, 5e3)))
    meas = tuple(sorted(draw(st.sets(st.integers(1, term), min_size=0 if trigger else 1, max_size=4))))
    rate_card = tuple((o, draw(money(0.0, 5e3))) for o in template.outcome_names if draw(st.booleans()))
    share_rate = draw(rate(0.0, 1.0))
    if draw(st.booleans()):
        share = SavingsShare(share_rate, draw(rate(0.1, 3.0)), draw(rate(0.0, share_rate)))
    else:
        share = SavingsShare(share_rate)
    tiers = []
    for _ in range(draw(st.integers(0, 2))):
        xs = sorted(draw(st.sets(st.integers(-10, 30), min_size=1, max_size=3)))
        ys = np.cumsum([draw(st.integers(0, 1_000_000)) for _ in xs]) / 100
        points = tuple((x / 10, float(y)) for x, y in zip(xs, ys))
        minimum = draw(st.none() | st.integers(-10, 30).map(lambda x: x / 10))
        tiers.append(TierTable(draw(st.sampled_from(measurable)), draw(st.sampled_from(measures)), points,
                               draw(st.sampled_from(("step", "linear"))),
                               points[0][0] if minimum is None else minimum))
    review = None
    if draw(st.booleans()):
        review = Review(draw(st.integers(1, term)), draw(st.sampled_from(measurable)),
                        draw(st.sampled_from(measures)), draw(rate(-0.5, 1.0)))
    payer = OutcomePayer("payer", rate_card, share, draw(st.none() | money(1.0, 2e5)), meas, draw(st.integers(0, 3)),
                         tiers=tuple(tiers), trigger=trigger, review=review)
    n_inv = draw(st.integers(1, 4))
    investors = tuple(
        Investor(f"i{k}", draw(money(100.0, 1e5)), return_cap=draw(st.none() | rate(0.0, 0.5)),
                 seniority=draw(st.integers(1, 3)), repayable=k == 0 or draw(st.booleans()))
        for k in range(n_inv))
    guarantees = []
    for _ in range(draw(st.integers(0, 2))):
        covered = draw(st.sets(st.sampled_from([i.name for i in investors]), min_size=1))
        guarantees.append(Guarantee(draw(st.sampled_from(("payer", "fund"))), tuple(sorted(covered)),
                                    draw(rate(0.01, 0.5)), draw(st.none() | money(1.0, 5e4))))
    budget = Schedule(tuple((draw(st.integers(0, term - 1)), draw(money(0.0, 2e4)))
                            for _ in range(draw(st.integers(1, 4)))))
    fees = (Fee("inv", "investors", Schedule(((draw(st.integers(0, term - 1)), draw(money(0.0, 5e3))),))),
            Fee("pay", "payer", Schedule(((draw(st.integers(0, term + 3)), draw(money(0.0, 5e3))),))))
    contract = dataclasses.replace(
        template, title="random", term_months=term, tail_months=draw(st.integers(0, 4)),
        investors=investors, provider_name="p", provider_budget=budget, fees=fees, payer=payer,
        costs=ck_costs(draw(money(0.0, 2000.0)), draw(rate(0.0, 1.0)), draw(rate(-0.1, 0.2))),
        cohorts=cohorts, comparison=dataclasses.replace(template.comparison, size_ratio=draw(rate(0.2, 3.0))),
        guarantees=tuple(guarantees), recycling=draw(st.booleans()))

    T, C = contract.horizon_months, len(cohorts)
    P = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    intake = np.array([c.intake_month for c in cohorts])
    started = (np.arange(T)[None, :] >= intake[:, None])  # (C, T): nothing happens before a cohort's intake
    tsz, csz = np.array([c.size for c in cohorts]), contract.comparison_sizes

    def arrays(sizes, p_event):
        events = rng.binomial(np.broadcast_to(sizes[None, :, None, None], (P, C, 4, T)), p_event)
        employed = rng.integers(0, sizes[None, :, None] + 1, size=(P, C, T))
        return events * started[None, :, None, :], employed * started[None, :, :]

    p_t, p_c = draw(st.sampled_from((0.0, 0.05, 0.2))), draw(st.sampled_from((0.0, 0.05, 0.2)))
    te, tm = arrays(tsz, p_t)
    ce, cm = arrays(csz, p_c)
    de = rng.integers(0, 3, size=te.shape) * (rng.random(te.shape) < 0.2) * started[None, :, None, :]
    # More months in work, never more than the cohort's members (the rest are on benefits).
    dm = np.minimum(rng.integers(0, 3, size=tm.shape) * (rng.random(tm.shape) < 0.2), tsz[None, :, None] - tm)
    dm = dm * started[None, :, :]
    default = None
    if draw(st.booleans()):
        default = rng.random((P, len(contract.payment_months))) < 0.3

    def outcomes(events, employed):
        return Outcomes(group(contract, events, employed, tsz), group(contract, ce, cm, csz), payer_default=default)

    return contract, outcomes(te, tm), outcomes(te + de, tm + dm)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mechanism_cases(monotone=True))
def test_property_payments_due_monotone_in_treated_outcomes(case):
    contract, base, more = case
    cash, cash_more = settle(contract, base), settle(contract, more)
    check_ledgers(contract, cash, check_irr=False, outcomes=base)
    check_ledgers(contract, cash_more, check_irr=False, outcomes=more)
    # Rate card, savings share, tiers and triggers on increasing measures (and the review: more
    # outcomes never terminate a contract that ran): what is owed never falls, at any month.
    # (The payment cap counts payments not defaulted on: with defaults and a cap, more outcomes can
    # fill the cap with honoured payments where fewer left room after a missed one, so the total
    # due, defaulted part included, can fall; what is paid or owed then is checked in
    # tests/test_trust_money.py.)
    if base.payer_default is None or contract.payer.payment_cap is None:
        owed = np.cumsum(cash.outcome_payments_due, axis=1)
        owed_more = np.cumsum(cash_more.outcome_payments_due, axis=1)
        assert (owed_more >= owed - EUR_TOL).all()
    assert (cash_more.terminated <= cash.terminated).all()
    # Without return caps nothing is retained, so without defaults what is paid never falls either.
    # (With defaults it can: more outcomes may move money from a payment that is honoured to one
    # that is missed, when the high-water mark is reached earlier.)
    if base.payer_default is None and all(i.return_cap is None for i in contract.investors if i.repayable):
        paid = np.cumsum(cash.outcome_payments, axis=1)
        paid_more = np.cumsum(cash_more.outcome_payments, axis=1)
        assert (paid_more >= paid - EUR_TOL).all()
    # Calls depend on outcomes only through recycling and the review.
    if not contract.recycling and contract.payer.review is None:
        np.testing.assert_array_equal(cash.capital_calls, cash_more.capital_calls)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mechanism_cases(monotone=False))
def test_property_caps_waterfall_conservation_guarantees(case):
    # check_ledgers: the four identities and cash conservation across payer, vehicle, investors,
    # guarantors and provider on every path and month; payment cap, return caps, seniority (a junior
    # paid only once every senior is at its cap), grants never repaid, guarantees <= share x loss
    # and <= cap, paid once the loss is final.
    contract, base, more = case
    for outcomes in (base, more):
        cash = settle(contract, outcomes)
        check_ledgers(contract, cash, check_irr=True, outcomes=outcomes)
        # Guarantees cover principal only: no investor ends above its capital through them.
        got = (cash.distributions + cash.guarantee_payouts).sum(axis=2)
        called = cash.capital_calls.sum(axis=2)
        gp = cash.guarantee_payouts.sum(axis=2)
        assert ((gp == 0) | (got <= called + EUR_TOL)).all()
