"""Internal rate of return (IRR) of monthly cash-flow paths, vectorised over paths.

Conventions
-----------
Cash flows are in EUR, one row per Monte Carlo path and one column per month;
month 0 is not discounted. Rates are *annual effective* rates ``R`` with
monthly discounting, so the IRR is the root of

    NPV(R) = sum_t c_t * (1 + R) ** (-t / 12).

Why a grid and a bracket instead of Newton
------------------------------------------
An investor's flows in a Social Impact Bond are not always "pay in first,
get paid later": outcome payments can be recycled into later capital calls,
so a path may change sign several times and its NPV polynomial may have
several roots, or none in any sensible range. Newton's method (or
``numpy_financial.irr``) started from a guess returns one of them, or
diverges, without saying so. This module never returns a silently wrong
value:

1. paths with no IRR by construction are classified first (total loss,
   nothing ever received: reported as -100 %; money received but every
   month's net flow an outflow, because a larger capital call fell in the same
   month: NaN, status ``net_outflows_only``, never called a total loss; no
   sign change at all: NaN);
2. the NPV of every remaining path is evaluated on a fixed grid of annual
   rates, uniform in ``log(1 + R)`` over ``[low, high]``, with one matrix
   product, and the roots on the grid are counted;
3. only paths with exactly one root are refined, inside their grid bracket,
   by a safeguarded Illinois (regula falsi) iteration; paths with no root in
   range or with several roots get a status code and NaN.

Limitation: roots closer together than one grid cell, or outside
``[low, high]``, cannot be seen; raise ``grid_points`` or widen the range if
that matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IRR_DEFINED = 0         # exactly one root found in the search range
IRR_TOTAL_LOSS = 1      # outflows only, no inflow at all: rate -1.0 (-100 %)
IRR_NO_SIGN_CHANGE = 2  # inflows only, or all flows zero: NaN
IRR_NO_ROOT = 3         # flows change sign but NPV has no root in range: NaN
IRR_MULTIPLE = 4        # NPV changes sign more than once on the grid: NaN
IRR_NET_OUTFLOWS = 5    # money was received, but never more than was called in the same month: NaN
STATUS_LABELS = {
    IRR_DEFINED: "defined",
    IRR_TOTAL_LOSS: "total_loss",
    IRR_NO_SIGN_CHANGE: "no_sign_change",
    IRR_NO_ROOT: "no_root_in_range",
    IRR_MULTIPLE: "multiple_roots",
    IRR_NET_OUTFLOWS: "net_outflows_only",
}
_LABELS = np.array([STATUS_LABELS[k] for k in range(len(STATUS_LABELS))])

_CHUNK = 16384   # paths per block in the grid step: bounds the (paths, grid) NPV matrix
_MAX_ITER = 100  # refinement iterations


@dataclass(frozen=True)
class IRRResult:
    """IRR of each path and how it was obtained.

    Attributes
    ----------
    rate : numpy.ndarray of float64, shape (paths,)
        Annual effective IRR (0.05 means 5 % a year). -1.0 for total losses,
        NaN unless ``status`` is ``IRR_DEFINED`` or ``IRR_TOTAL_LOSS``.
    status : numpy.ndarray of int8, shape (paths,)
        One of the ``IRR_*`` codes; see ``STATUS_LABELS``.
    """

    rate: np.ndarray
    status: np.ndarray

    def labels(self) -> np.ndarray:
        """Return ``status`` as strings from ``STATUS_LABELS`` (same shape)."""
        return _LABELS[self.status]


def npv(cashflows, annual_rate, periods_per_year=12) -> np.ndarray:
    """Net present value of monthly cash flows at an annual effective rate.

    Parameters
    ----------
    cashflows : array_like, shape (paths, months) or (months,)
        Cash flows in EUR; column ``t`` is paid at month ``t`` (month 0 is not
        discounted).
    annual_rate : float or array_like, shape (paths,)
        Annual effective discount rate(s), > -1 (0.05 for 5 % a year). An
        array gives one rate per path (or, with 1-D ``cashflows``, the NPV of
        the single path at each rate).
    periods_per_year : int, default 12
        Periods (months) per year.

    Returns
    -------
    numpy.ndarray of float64
        NPV in EUR at month 0, shape (paths,); 0-d for 1-D ``cashflows`` and a
        scalar rate.
    """
    cf = np.asarray(cashflows, dtype=np.float64)
    rate = np.asarray(annual_rate, dtype=np.float64)
    if cf.ndim not in (1, 2) or rate.ndim > 1:
        raise ValueError("cashflows must be 1-D or 2-D and annual_rate scalar or 1-D")
    t = np.arange(cf.shape[-1]) / periods_per_year
    with np.errstate(over="ignore", under="ignore"):
        if rate.ndim == 0:
            return np.asarray(cf @ (1.0 + rate) ** -t)
        cf = np.broadcast_to(cf, (rate.size, t.size))
        out = np.empty(rate.size)
        step = max(1, 2**22 // max(t.size, 1))  # bound the (block, months) temporary
        for i in range(0, rate.size, step):
            disc = (1.0 + rate[i:i + step, None]) ** -t
            out[i:i + step] = np.einsum("ij,ij->i", cf[i:i + step], disc)
    return out


def irr(cashflows, periods_per_year=12, low=-0.99, high=100.0, grid_points=241,
        tol=1e-12, received=None) -> IRRResult:
    """Annual effective IRR of many monthly cash-flow paths at once.

    Parameters
    ----------
    cashflows : array_like, shape (paths, months) or (months,)
        Cash flows in EUR, investor's view (calls negative, payments
        positive); column ``t`` is month ``t``.
    periods_per_year : int, default 12
        Periods (months) per year.
    low, high : float, default -0.99, 100.0
        Annual rates bounding the search (-99 % to +10 000 % a year);
        ``-1 < low < high``.
    grid_points : int, default 241
        Points of the search grid, uniform in ``log(1 + R)``; roots closer
        together than one cell are not resolved.
    tol : float, default 1e-12
        Width of the final bracket in ``x = (1 + R) ** (-1 / periods_per_year)``
        (the monthly discount factor).
    received : array_like, shape (paths,) or (paths, months), optional
        Money received before netting against same-month outflows (distributions,
        guarantee payouts).  With it, a path whose net flows are all outflows is a
        total loss only if it received nothing; otherwise ``IRR_NET_OUTFLOWS``.
        Without it, the net flows alone decide.

    Returns
    -------
    IRRResult
        ``rate`` (annual, NaN where undefined) and ``status`` per path, each
        of shape (paths,); 0-d for 1-D ``cashflows``.
    """
    cf = np.asarray(cashflows, dtype=np.float64)
    one_path = cf.ndim == 1
    cf = np.atleast_2d(cf)
    if cf.ndim != 2:
        raise ValueError("cashflows must be 1-D or 2-D (paths, months)")
    if not -1.0 < low < high or grid_points < 2:
        raise ValueError("need -1 < low < high and grid_points >= 2")

    got = None
    if received is not None:
        got = np.asarray(received, dtype=np.float64)
        got = (got.reshape(cf.shape[0], -1) > 0).any(axis=1)
    u = np.linspace(np.log1p(low), np.log1p(high), grid_points)  # log(1 + R) grid
    rate, status = np.empty(cf.shape[0]), np.empty(cf.shape[0], dtype=np.int8)
    for i in range(0, cf.shape[0], _CHUNK):  # blocks bound every temporary
        blk = slice(i, i + _CHUNK)
        rate[blk], status[blk] = _solve_block(cf[blk], u, periods_per_year, tol)
    if got is not None:
        netted = (status == IRR_TOTAL_LOSS) & got
        status[netted], rate[netted] = IRR_NET_OUTFLOWS, np.nan
    if one_path:
        return IRRResult(rate=rate[0, ...], status=status[0, ...])
    return IRRResult(rate=rate, status=status)


def _scaled_discounts(u, months, ppy):
    """(months, grid) discount factors ``exp(-t u / ppy)``, each column scaled by a
    positive constant so that its largest entry is 1 (no overflow, same NPV signs)."""
    t = np.arange(months)[:, None]
    ref = np.where(u < 0, months - 1, 0)
    with np.errstate(under="ignore"):
        return np.exp(-(t - ref) * u / ppy)


def _solve_block(c, u, ppy, tol):
    """Classify a block of paths; send those with flows of both signs to the grid."""
    if not np.isfinite(c).all():
        raise ValueError("cashflows must be finite")
    has_pos, has_neg = (c > 0).any(axis=1), (c < 0).any(axis=1)
    status = np.full(c.shape[0], IRR_NO_SIGN_CHANGE, dtype=np.int8)
    rate = np.full(c.shape[0], np.nan)
    loss = has_neg & ~has_pos
    status[loss], rate[loss] = IRR_TOTAL_LOSS, -1.0
    mixed = has_pos & has_neg
    if mixed.any():
        cm = c if mixed.all() else c[mixed]
        # Months that are zero on every path are dropped: this divides each NPV
        # by a positive power of the discount factor, so the roots are unchanged.
        used = np.flatnonzero((cm != 0).any(axis=0))
        rate[mixed], status[mixed] = _grid_roots(cm[:, used[0]:used[-1] + 1], u, ppy, tol)
    return rate, status


def _grid_roots(c, u, ppy, tol):
    """Count grid roots of paths with flows of both signs; refine single roots."""
    disc = _scaled_discounts(u, c.shape[1], ppy)
    with np.errstate(over="ignore", under="ignore"):
        grid_npv = c @ disc  # (paths, grid), columns positively rescaled
    pos = grid_npv > 0
    zero = grid_npv == 0                     # exact root on a grid point
    if zero.any():
        s = pos.view(np.int8) - (grid_npv < 0).view(np.int8)
        strict = (s[:, :-1] * s[:, 1:]) < 0  # sign change inside a cell
        zero_start = zero.copy()
        zero_start[:, 1:] &= ~zero[:, :-1]   # a run of exact zeros is one root
        n_roots = np.count_nonzero(strict, axis=1) + np.count_nonzero(zero_start, axis=1)
    else:                                    # fast path: no zeros anywhere
        strict = pos[:, :-1] != pos[:, 1:]
        n_roots = np.count_nonzero(strict, axis=1)

    status = np.where(n_roots == 0, IRR_NO_ROOT, IRR_MULTIPLE).astype(np.int8)
    rate = np.full(c.shape[0], np.nan)
    one = n_roots == 1
    status[one] = IRR_DEFINED
    on_grid = one & zero.any(axis=1)
    rate[on_grid] = np.expm1(u[np.argmax(zero[on_grid], axis=1)])
    inside = np.flatnonzero(one & ~on_grid)
    if inside.size:
        g = np.argmax(strict[inside], axis=1)
        # Grid NPVs of the bracket ends, rescaled to the polynomial _refine uses;
        # their signs are the ones that defined the bracket.
        f_lo, f_hi = grid_npv[inside, g], grid_npv[inside, g + 1]
        cross = (u[g] < 0) & (u[g + 1] >= 0)
        f_hi = np.where(cross, f_hi * np.exp((c.shape[1] - 1) * u[g + 1] / ppy), f_hi)
        rate[inside] = _refine(c[inside], u[g], u[g + 1], f_lo, f_hi, ppy, tol)
    return rate, status


def _horner(coef, z):
    """Evaluate polynomials with coefficient rows ``coef`` (highest power first) at ``z``."""
    p = coef[0].copy()
    for row in coef[1:]:
        p *= z
        p += row
    return p


def _refine(c, u_lo, u_hi, f_lo, f_hi, ppy, tol):
    """Illinois iteration on each path's single root bracketed by ``log(1+R)`` in
    ``[u_lo, u_hi]`` (polynomial values ``f_lo``, ``f_hi`` there, opposite signs);
    returns annual rates.

    Works in ``z = x`` (``x = 1/(1 + r_month)``) for non-negative rates and in
    ``z = 1/x`` for negative ones, with the polynomial ``sum c_t z^t`` or
    ``sum c_t z^(T-1-t)`` respectively: both have the same root in the bracket
    and ``z <= ~1`` there, so Horner's rule cannot overflow.
    """
    rev = u_lo < 0
    sgn = np.where(rev, 1.0, -1.0)
    coef = np.where(rev[None, :], c.T, c.T[::-1])  # (months, paths), contiguous
    a, b = np.exp(sgn * u_lo / ppy), np.exp(sgn * u_hi / ppy)
    z_root = np.empty(c.shape[0])
    idx = np.arange(c.shape[0])
    # NaN from inf/inf can only arise for absurdly wide grid cells; `bad` catches it.
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        fa, fb = f_lo, f_hi
        side = np.zeros(idx.size, dtype=np.int8)
        for _ in range(_MAX_ITER):
            denom = fb - fa
            r = (a * fb - b * fa) / np.where(denom == 0, 1.0, denom)
            bad = ~((r > np.minimum(a, b)) & (r < np.maximum(a, b)))
            r = np.where(bad, 0.5 * (a + b), r)  # safeguard: bisect
            fr = _horner(coef, r)
            hit = fr == 0
            repl_b = ~hit & ((fr > 0) == (fb > 0))
            repl_a = ~hit & ~repl_b
            fa = np.where(repl_b & (side == -1), 0.5 * fa, fa)  # Illinois halving
            fb = np.where(repl_a & (side == 1), 0.5 * fb, fb)
            a, fa = np.where(repl_b, a, r), np.where(repl_b, fa, fr)
            b, fb = np.where(repl_a, b, r), np.where(repl_a, fb, fr)
            side = np.where(repl_b, -1, np.where(repl_a, 1, side)).astype(np.int8)
            width_x = np.abs(b - a) / np.where(rev, a * b, 1.0)
            done = hit | (width_x < tol)
            if done.any():
                z_root[idx[done]] = 0.5 * (a + b)[done]
                keep = ~done
                if not keep.any():
                    break
                idx, coef, rev = idx[keep], coef[:, keep], rev[keep]
                a, b, fa, fb, side = a[keep], b[keep], fa[keep], fb[keep], side[keep]
        else:  # not converged to tol: best estimate inside the (valid) bracket
            z_root[idx] = 0.5 * (a + b)
    u_root = ppy * np.log(z_root) * np.where(u_lo < 0, 1.0, -1.0)
    return np.expm1(u_root)
