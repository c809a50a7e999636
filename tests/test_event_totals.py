"""Totals of the engine's monthly counts (sibsim.cashflows.event_totals): exact, whatever route.

Whole counts are summed in float32 when every row's total is below 2**23 (then exact) and in
float64 otherwise (or with a negative number); both must equal the integer sums exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from sibsim import load_scenario
from sibsim.cashflows import _exact_float32_sums, block_totals, event_totals, settle
from sibsim.metrics import within_term
from sibsim.montecarlo import GroupOutcomes, simulate_outcomes
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
        # ... and by the float32 route (the one the engine's counts are meant to take).
        assert _exact_float32_sums(group.events, np.ones((group.events.shape[-1], 1))) is not None


def test_a_total_of_2_to_the_23_or_more_is_summed_in_float64():
    # One row's total is 2**24 + 3: float32 cannot hold the partial sums (2**24 + 1 rounds), so the
    # float32 route would be wrong (shown below) and the float64 route must take over.
    counts = np.ones((2, 1, 3, 5), dtype=np.int32)
    counts[0, 0, 1, 0] = 2 ** 24 - 1
    counts[1, 0, 0, 2] = 2 ** 23 - 5  # below 2**23 in all (2**23 - 1): still float32, still exact
    group = _group(counts, 2)
    months = [1, 2, 4, 5]
    np.testing.assert_array_equal(event_totals(group, months), _exact(group.events, months))
    naive = counts.reshape(-1, 5).astype(np.float32) @ np.ones((5, 1), np.float32)
    assert naive[1, 0] != 2 ** 24 + 3  # what the guard prevents
    ones = np.ones((5, 1))
    assert _exact_float32_sums(group.events, ones) is None
    small = _group(counts[1:].copy(), 2)  # its largest total is 2**23 - 1: the float32 route, exact
    assert _exact_float32_sums(small.events, ones) is not None
    np.testing.assert_array_equal(event_totals(small, months), _exact(small.events, months))
    edge = _group(counts[1:].copy() + np.eye(1, 5, 4, dtype=np.int32), 2)  # total exactly 2**23: float64
    assert _exact_float32_sums(edge.events, ones) is None
    np.testing.assert_array_equal(event_totals(edge, months), _exact(edge.events, months))


def test_negative_integers_are_summed_in_float64():
    # A negative count is no count, but an integer array may hold one: partial sums can then exceed
    # the row's total, so only the float64 route is exact.
    counts = np.zeros((1, 1, 1, 4), dtype=np.int64)
    counts[0, 0, 0] = [2 ** 25 + 1, -(2 ** 25), 1, 0]
    group = _group(counts, 1)
    assert _exact_float32_sums(group.events, np.ones((4, 1))) is None
    np.testing.assert_array_equal(event_totals(group, [1, 2, 3, 4]), _exact(group.events, [1, 2, 3, 4]))


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
