"""Tests for sibsim.irr: known IRRs, status classification, NPV identities."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import brentq

from sibsim import irr as irr_mod
from sibsim.irr import (
    IRR_DEFINED,
    IRR_MULTIPLE,
    IRR_NO_ROOT,
    IRR_NO_SIGN_CHANGE,
    IRR_TOTAL_LOSS,
    STATUS_LABELS,
    IRRResult,
    irr,
    npv,
)


@pytest.fixture(autouse=True)
def raise_on_fp_errors():
    """Every test runs with all floating-point warnings turned into errors."""
    with np.errstate(all="raise"):
        yield


def flows(months, **at):
    """Monthly flow vector of length ``months`` with ``{month: amount}`` entries."""
    cf = np.zeros(months)
    for t, amount in at.items():
        cf[int(t[1:])] = amount
    return cf


def discounted_abs(cf, rate):
    """Sum of |c_t| (1+R)^(-t/12): the scale against which an NPV residual is judged."""
    t = np.arange(cf.shape[-1]) / 12
    with np.errstate(under="ignore"):  # helper only: tiny flows may underflow
        return (np.abs(cf) * (1.0 + np.asarray(rate)[..., None]) ** -t).sum(-1)


# --------------------------------------------------------------------------- npv


def test_npv_known_values_and_shapes():
    cf = flows(13, m0=-100, m12=110)
    assert npv(cf, 0.10).shape == ()
    assert abs(npv(cf, 0.10)) < 1e-12
    assert npv(cf, 0.0) == pytest.approx(10.0, abs=1e-12)
    monthly = flows(2, m0=-100, m1=100)
    assert npv(monthly, 1.01**12 - 1) == pytest.approx(-100 + 100 / 1.01, rel=1e-13)

    stack = np.stack([cf, 2 * cf, -cf])
    rates = np.array([0.0, 0.1, 0.2])
    out = npv(stack, rates)
    assert out.shape == (3,)
    # Row 1 (2 cf at its IRR of 10 %) is zero up to rounding: compare it on the scale of its flows
    # (summation order differs between the matrix product and einsum), the others relatively.
    scale = np.abs(stack).sum(axis=1).max()
    np.testing.assert_allclose(out, [npv(stack[i], rates[i]) for i in range(3)], rtol=1e-13, atol=1e-15 * scale)
    np.testing.assert_allclose(npv(stack, 0.0), stack.sum(axis=1))
    np.testing.assert_allclose(npv(cf, rates), [npv(cf, r) for r in rates], rtol=1e-13, atol=1e-15 * scale)


# ------------------------------------------------------------------- hand cases


def test_ten_percent_a_year_exactly():
    res = irr(flows(13, m0=-100, m12=110))
    assert res.status == IRR_DEFINED
    assert res.rate == pytest.approx(0.10, abs=1e-10)


def test_zero_rate_and_loss_rate():
    assert irr([-100.0, 100.0]).rate == pytest.approx(0.0, abs=1e-10)
    res = irr(flows(13, m0=-100, m12=50))
    assert res.status == IRR_DEFINED
    assert res.rate == pytest.approx(-0.5, abs=1e-10)


def test_monthly_annuity():
    i, n, pv = 0.01, 36, 1000.0  # 1 % a month over 3 years
    pmt = pv * i / (1 - (1 + i) ** -n)
    cf = np.r_[-pv, np.full(n, pmt)]
    assert irr(cf).rate == pytest.approx((1 + i) ** 12 - 1, abs=1e-10)


def test_annual_annuity_within_monthly_columns():
    r, pv = 0.08, 1000.0
    pmt = pv * r / (1 - (1 + r) ** -4)
    cf = flows(49, m0=-pv, m12=pmt, m24=pmt, m36=pmt, m48=pmt)
    assert irr(cf).rate == pytest.approx(r, abs=1e-10)


def test_total_loss():
    res = irr(np.array([[-100.0, -5.0, 0.0], [0.0, 0.0, -1.0]]))
    np.testing.assert_array_equal(res.status, [IRR_TOTAL_LOSS] * 2)
    np.testing.assert_array_equal(res.rate, [-1.0, -1.0])
    assert list(res.labels()) == ["total_loss", "total_loss"]


def test_no_sign_change():
    res = irr(np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 5.0]]))
    np.testing.assert_array_equal(res.status, [IRR_NO_SIGN_CHANGE] * 2)
    assert np.isnan(res.rate).all()


def test_two_roots_are_reported_as_multiple():
    # -1, +2.3, -1.32 a year apart: NPV roots at exactly 10 % and 20 % a year.
    cf = flows(25, m0=-1.0, m12=2.3, m24=-1.32)
    for r in (0.1, 0.2):
        assert abs(npv(cf, r)) < 1e-12
    res = irr(cf)
    assert res.status == IRR_MULTIPLE and np.isnan(res.rate)
    assert res.labels() == "multiple_roots"


def npv_sign_changes(row, low=-0.99, high=100.0, points=20001):
    """Sign changes of one path's NPV on a fine grid of annual rates: its roots in range."""
    rates = np.expm1(np.linspace(np.log1p(low), np.log1p(high), points))
    return int(np.count_nonzero(np.diff(np.sign([npv(row, r) for r in rates]))))


def test_a_single_sign_change_of_the_cumulative_flows_is_not_enough():
    # Norström's criterion bounds the roots with R > 0 by the forward cumulative flows and those
    # with R < 0 by the backward ones: one change in one direction says nothing of the other.
    # -1, +2.5, -1.4 a year apart: cumulative -1, 1.5, 0.1 (one change) but roots at -15 % and +65 %.
    two = flows(49, m0=-1.0, m12=2.5, m24=-1.4)
    # Backward one change, forward two, and three roots (-81 %, +99 %, +623 %): the NPV has
    # opposite signs at the ends of the range, so a bracket would have "found" one of them.
    three = flows(49, m0=-0.3, m12=2.5, m24=-1.8, m36=-4.4, m48=0.9)
    assert [npv_sign_changes(two), npv_sign_changes(three)] == [2, 3]
    res = irr(np.stack([two, three]))
    np.testing.assert_array_equal(res.status, [IRR_MULTIPLE] * 2)
    assert np.isnan(res.rate).all()


def recycled_paths(n, months=60, seed=0):
    """Flows of both signs in any order (payments recycled into later calls), a few months each."""
    rng = np.random.default_rng(seed)
    cf = np.zeros((n, months))
    for p in range(n):
        at = rng.choice(months, size=rng.integers(2, 7), replace=False)
        cf[p, at] = np.round(rng.uniform(-5, 5, at.size), 1)
    return cf


def test_the_unique_root_route_agrees_with_the_grid(monkeypatch):
    # Paths the criterion routes past the grid must get what the grid gives them: same status,
    # same rate to the refinement's tolerance.
    cf = np.vstack([mixed_bag(), sib_paths(2000, months=61, seed=5), recycled_paths(3000, months=61)])
    fast = irr(cf)
    monkeypatch.setattr(irr_mod, "_NORSTROM_MAX_EXPONENT", 0.0)  # every path on the grid
    grid = irr(cf)
    np.testing.assert_array_equal(fast.status, grid.status)
    np.testing.assert_allclose(fast.rate, grid.rate, rtol=1e-10, atol=1e-12, equal_nan=True)
    assert (grid.status == IRR_MULTIPLE).sum() > 100  # the recycled paths do test the routing


def test_root_outside_range():
    above = flows(13, m0=-1.0, m12=200.0)   # 19 900 % a year > high
    below = flows(13, m0=-100.0, m12=0.5)   # -99.5 % a year < low
    res = irr(np.stack([above, below]))
    np.testing.assert_array_equal(res.status, [IRR_NO_ROOT] * 2)
    assert np.isnan(res.rate).all()
    wider = irr(above, high=1000.0)
    assert wider.status == IRR_DEFINED and wider.rate == pytest.approx(199.0, rel=1e-10)


def test_root_exactly_on_a_grid_point():
    # low=0 puts a grid point exactly at R=0, where the NPV is exactly 0.
    res = irr([-100.0, 100.0], low=0.0)
    assert res.status == IRR_DEFINED and res.rate == 0.0


def test_zero_months_time_shift_and_scale_invariance():
    base = irr(flows(13, m0=-100, m12=110)).rate
    shifted = np.r_[np.zeros(7), flows(13, m0=-100, m12=110), np.zeros(30)]
    assert irr(shifted).rate == pytest.approx(base, abs=1e-12)
    assert irr(1e6 * shifted).rate == pytest.approx(base, abs=1e-12)


def test_long_horizon_and_extreme_low_bound():
    cf = flows(600, m0=-1.0, m599=2.0)
    expected = 2.0 ** (12 / 599) - 1
    for low in (-0.99, -0.999999):
        res = irr(cf, low=low)
        assert res.status == IRR_DEFINED
        assert res.rate == pytest.approx(expected, abs=1e-10)
    # a deep loss over 50 years: (1+R)^(-50) factors of ~1e100 on the grid
    loss = flows(601, m0=-1.0, m600=1e-90)
    assert irr(loss).rate == pytest.approx(1e-90 ** (1 / 50) - 1, rel=1e-9)


def test_result_container_and_labels():
    res = irr(np.stack([flows(13, m0=-100, m12=110), flows(13), flows(13, m0=-1.0)]))
    assert isinstance(res, IRRResult)
    assert res.rate.shape == res.status.shape == (3,)
    assert res.status.dtype == np.int8
    assert list(res.labels()) == [STATUS_LABELS[s] for s in res.status]
    with pytest.raises(AttributeError):
        res.rate = None  # frozen


def test_invalid_arguments():
    with pytest.raises(ValueError):
        irr([-1.0, np.nan, 2.0])
    with pytest.raises(ValueError):
        irr([-1.0, 2.0], low=-1.0)
    with pytest.raises(ValueError):
        irr(np.zeros((2, 2, 2)))


# ----------------------------------------------------------------- properties


@st.composite
def calls_then_payments(draw):
    """A few SIB-like paths: capital calls (<= 0) then outcome payments (>= 0), EUR."""
    paths = draw(st.integers(1, 6))
    n_calls = draw(st.integers(1, 36))
    n_pay = draw(st.integers(1, 60))
    # Money in whole cents (EUR): near-denormal amounts are not cash and only test float underflow.
    amounts = st.integers(0, 10**8).map(lambda cents: cents / 100)
    calls = draw(hnp.arrays(np.float64, (paths, n_calls), elements=amounts))
    pays = draw(hnp.arrays(np.float64, (paths, n_pay), elements=amounts))
    return np.hstack([-calls, pays])


@settings(max_examples=200, deadline=None)
@given(calls_then_payments())
def test_npv_vanishes_at_every_defined_irr(cf):
    res = irr(cf)
    has_pos, has_neg = (cf > 0).any(1), (cf < 0).any(1)
    np.testing.assert_array_equal(res.status == IRR_TOTAL_LOSS, has_neg & ~has_pos)
    np.testing.assert_array_equal(res.status == IRR_NO_SIGN_CHANGE, ~has_neg)
    # one sign change in the flows -> at most one root (Descartes): never ambiguous
    assert not (res.status == IRR_MULTIPLE).any()
    assert np.isnan(res.rate[res.status > IRR_TOTAL_LOSS]).all()
    ok = res.status == IRR_DEFINED
    if ok.any():
        r = res.rate[ok]
        assert ((r >= -0.99) & (r <= 100.0)).all()
        resid = np.abs(npv(cf[ok], r))
        assert (resid <= 1e-9 * discounted_abs(cf[ok], r)).all()


def sib_paths(n, months=60, seed=0):
    """Typical SIB flows (EUR): calls in months 0..35, payments at 15, 27, 39, 51."""
    rng = np.random.default_rng(seed)
    cf = np.zeros((n, months))
    cf[:, :36] = -rng.uniform(0, 1e5, (n, 36)) * (rng.random((n, 36)) < 0.5)
    cf[:, 0] -= 1e5
    for t in (15, 27, 39, 51):
        cf[:, t] += rng.uniform(0, 8e5, n) * (rng.random(n) < 0.8)
    return cf


def test_agrees_with_brentq():
    rng = np.random.default_rng(42)
    cf = np.zeros((12, 60))
    cf[:, :36] = -rng.uniform(0, 1e5, (12, 36))
    cf[:, 36:] = rng.uniform(0, 2e5, (12, 24))
    res = irr(cf)
    assert (res.status == IRR_DEFINED).all()
    for row, rate in zip(cf, res.rate):
        ref = brentq(lambda r: float(npv(row, r)), -0.99, 100.0, xtol=1e-14, rtol=1e-14)
        assert rate == pytest.approx(ref, abs=1e-10)


def mixed_bag():
    """Paths covering every status, in one (paths, 61) array."""
    rows = [
        flows(61, m0=-100, m12=110),
        flows(61),
        flows(61, m0=-5, m3=-1),
        flows(61, m2=10),
        flows(61, m0=-1.0, m12=2.3, m24=-1.32),
        flows(61, m0=-1.0, m12=200.0),
        flows(61, m5=-50, m60=80),
        -flows(61, m0=-100, m12=110),  # borrower's view: same rate
    ]
    return np.vstack([np.array(rows), sib_paths(40, months=61, seed=3)])


def test_vectorised_equals_per_path(monkeypatch):
    cf = mixed_bag()
    whole = irr(cf)
    # Every status but net_outflows_only, which needs the receipts (tested in test_trust_money.py).
    assert set(whole.status.tolist()) == set(STATUS_LABELS) - {irr_mod.IRR_NET_OUTFLOWS}
    single = [irr(row) for row in cf]
    assert all(s.rate.shape == () for s in single)
    np.testing.assert_array_equal(whole.status, [s.status for s in single])
    np.testing.assert_allclose(whole.rate, [s.rate for s in single],
                               rtol=1e-10, atol=1e-12, equal_nan=True)
    # tiny blocks exercise the chunk loop; results must not depend on it
    monkeypatch.setattr(irr_mod, "_CHUNK", 3)
    chunked = irr(cf)
    np.testing.assert_array_equal(whole.status, chunked.status)
    np.testing.assert_allclose(whole.rate, chunked.rate, rtol=1e-10, atol=1e-12, equal_nan=True)


def test_typical_sib_batch_is_consistent():
    cf = sib_paths(5000)
    res = irr(cf)
    ok = res.status == IRR_DEFINED
    assert ok.mean() > 0.9
    r = res.rate[ok]
    assert (np.abs(npv(cf[ok], r)) <= 1e-9 * discounted_abs(cf[ok], r)).all()
    # every path flagged ambiguous really has >= 2 sign changes of NPV on a fine grid
    multi = np.flatnonzero(res.status == IRR_MULTIPLE)[:20]
    fine = np.expm1(np.linspace(np.log(0.01), np.log(101.0), 5001))
    for i in multi:
        vals = np.array([npv(cf[i], r) for r in fine])
        assert np.count_nonzero(np.diff(np.sign(vals))) >= 2
