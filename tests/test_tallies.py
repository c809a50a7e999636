"""The compiled reductions of sibsim.tallies equal the numpy formulas they replace, bit for bit.

Costs are priced by :func:`sibsim.cashflows.monthly_costs`; its numpy statement was
``(einsum("pcqt,pc->pqt", units, weights) * price).sum(axis=1)`` (per cohort:
``einsum("pcqt,qt->pct", units, price) * weights``).  The compiled pass must give the same
floating-point numbers (same products, same order of sums), so that no golden moves.
"""

from __future__ import annotations

import numpy as np
import pytest

from sibsim.tallies import priced_costs


def _statement(units, weights, price, by_cohort=False):
    if by_cohort:
        return np.einsum("pcqt,qt->pct", units, price) * weights[:, :, None]
    return (np.einsum("pcqt,pc->pqt", units, weights) * price[None]).sum(axis=1)


# (With a single month, einsum itself switches to another summation kernel; a horizon has many months.)
@pytest.mark.parametrize("shape", [(30, 12, 2, 60), (7, 3, 1, 200), (5, 1, 3, 9), (4, 2, 5, 2)])
@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("by_cohort", [False, True])
def test_priced_costs_equal_the_einsum_statement_bit_for_bit(shape, whole, by_cohort):
    rng = np.random.default_rng(sum(shape))
    units = rng.integers(0, 40, shape).astype(np.int32)
    if not whole:
        units = units * 0.37  # expectations (a modelled counterfactual) are not whole
    weights = rng.random(shape[:2]) * 1.7  # a comparison group's scale is not whole either
    price = rng.random((shape[2], shape[3])) * 900
    got = priced_costs(units, weights, price, by_cohort)
    assert np.array_equal(got, _statement(units, weights, price, by_cohort))


def test_priced_costs_read_strided_units_and_broadcast_weights():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 9, (6, 4, 5, 12)).astype(np.int32)
    units = counts[:, :, 3:]  # the cost items after the outcomes: a view, not contiguous
    price = rng.random((2, 12)) * 100
    weights = np.array([1.0, 0.5, 2.0, 1.0])
    expected = _statement(units, np.broadcast_to(weights, (6, 4)), price)
    assert np.array_equal(priced_costs(units, weights, price), expected)


def test_a_different_order_of_sums_would_be_seen():
    # The bit-for-bit check has power: summing the cohorts in reverse changes some numbers.
    rng = np.random.default_rng(5)
    units = rng.integers(0, 40, (40, 12, 2, 60)).astype(np.int32) * 0.37
    weights = rng.random((40, 12)) * 1.7
    price = rng.random((2, 60)) * 900
    reversed_order = _statement(units[:, ::-1], weights[:, ::-1], price)
    assert not np.array_equal(reversed_order, priced_costs(units, weights, price))
