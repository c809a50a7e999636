"""Totals of the engine's monthly counts (sibsim.cashflows.event_totals): exact.

Whole counts are summed in 64-bit integers (:func:`sibsim.tallies.counts_before`) and must equal
the integer sums exactly, whatever their size or sign; other counts are summed in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from sibsim import load_scenario
from sibsim.cashflows import block_totals, event_totals, settle
from sibsim.metrics import within_term
from sibsim.montecarlo import GroupOutcomes, simulate_outcomes
from sibsim.tallies import counts_before
from tests.conftest import SCENARIOS


def _exact(events: np.ndarray, months) -> np.ndarray:
    """Integer sums before each month, in int64 (the definition)."""
    T = events.shape[-1]
    return np.stack([events[..., : min(m, T)].astype(np.int64).sum(axis=-1) for m in months], axis=-1)


def _group(counts: np.ndarray, k: int) -> GroupOutcomes:
    return GroupOutcomes(counts[:, :, :k], counts[:, :, k:], np.ones(counts.shape[1], np.int64), {})


@pytest.fixture(scope="module")
def ck():
    return load_scenario(SCENARIOS / "utrecht_colour_kitchen.toml")


def test_engine_counts_sum_exactly(ck):
    outcomes = simulate_outcomes(ck, 300, np.random.default_rng(7))
    months = [0, 12, 24, 48, 51, 60, 500]
    for group in (outcomes.treated, outcomes.comparison):
        got = event_totals(group, months)
        np.testing.assert_array_equal(got, _exact(group.events, months))
        assert got.dtype == np.float64


def test_large_and_negative_whole_counts_sum_exactly_in_any_month_order():
    # Totals float32 could not hold (2**24 + 3) or float64 partial sums in another order would round
    # (2**53 against 1): summed as integers, they are exact.  Months unsorted, repeated, 0 and past T.
    counts = np.ones((2, 1, 3, 5), dtype=np.int64)
    counts[0, 0, 1, 0] = 2 ** 24 - 1
    counts[1, 0, 0] = [2 ** 53, -(2 ** 53), 1, 3, -2]
    group = _group(counts, 2)
    months = [5, 1, 0, 4, 4, 9]
    got = event_totals(group, months)
    np.testing.assert_array_equal(got, _exact(group.events, months))
    assert got[0, 0, 1, 1] == 2 ** 24 - 1 and got[0, 0, 1, 0] == 2 ** 24 + 3
    assert got[1, 0, 0, 0] == 2  # the large counts cancel exactly
    assert (float(2 ** 53) + 1.0 - 2 ** 53) == 0.0  # what float64, summing in this order, would lose


def test_counts_that_are_not_whole_are_summed_in_float64():
    counts = np.full((1, 2, 1, 4), 0.25)
    group = GroupOutcomes(counts, counts[:, :, :0], np.ones(2, np.int64), {})
    np.testing.assert_array_equal(event_totals(group, [0, 2, 4]), [[[[0.0, 0.5, 1.0]], [[0.0, 0.5, 1.0]]]])
    with pytest.raises(TypeError, match="integer dtype"):
        counts_before(counts, [1])


def test_the_block_totals_give_the_same_settlement_and_within_term_counts(ck):
    outcomes = simulate_outcomes(ck, 200, np.random.default_rng(11))
    totals = block_totals(ck, outcomes, [ck.term_months])
    with_totals, without = settle(ck, outcomes, totals), settle(ck, outcomes)
    for name in ("outcome_payments", "distributions", "capital_calls", "net_savings"):
        np.testing.assert_array_equal(getattr(with_totals, name), getattr(without, name))
    treated, comparison = totals.at(ck.term_months)
    np.testing.assert_array_equal(treated * ck.outcome_scales, within_term(outcomes.treated, ck.term_months,
                                                                          ck.outcome_scales))
    np.testing.assert_array_equal(comparison, within_term(outcomes.comparison, ck.term_months))


@pytest.mark.parametrize("name", ["utrecht_colour_kitchen", "peterborough", "dwp_innovation_fund"])
def test_outcomes_counted_as_totals_are_the_monthly_counts_summed(name):
    """What a block asks the engine for (outcomes as totals before settlement's months, costs per
    month): the same numbers as the monthly counts summed, the same draws, for a comparison group
    (simulated in slices of paths at Peterborough) and a modelled counterfactual (DWP)."""
    contract = load_scenario(SCENARIOS / f"{name}.toml")
    months = (0, 6, contract.term_months, contract.horizon_months + 3)
    full_rng, totals_rng = np.random.default_rng(5), np.random.default_rng(5)
    n = 160  # Peterborough's comparison group: slices of 150 paths
    full = simulate_outcomes(contract, n, full_rng)
    counted = simulate_outcomes(contract, n, totals_rng, totals_before=months)
    assert full_rng.bit_generator.state == totals_rng.bit_generator.state
    for a, b in ((full.treated, counted.treated), (full.comparison, counted.comparison)):
        assert np.array_equal(a.costs, b.costs)
        assert b.totals[0] == months
        np.testing.assert_array_equal(event_totals(b, months[::-1]), event_totals(a, months[::-1]))
    assert counted.treated.events is None
    with pytest.raises(ValueError, match="counted as totals before months"):
        event_totals(counted.treated, [7])
