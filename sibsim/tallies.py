"""Compiled reductions of the engine's monthly counts: what settlement reads of a block.

The engine counts each outcome and cost item per (path, cohort, month)
(:class:`sibsim.montecarlo.GroupOutcomes`).  Settlement reads them twice: the outcomes counted
before a few months (the measurements, a review, the end of the term), and the cost items priced
per month.  Both are one pass over a block's counts, path by path, here; in numpy they were a
converted copy of the (strided) counts and a matrix product, and an ``einsum``.

The numbers are the numpy formulas' bit for bit: whole counts are summed in 64-bit integers
(exact), and costs are weighted cohort by cohort and priced item by item in the order of
:func:`sibsim.cashflows.monthly_costs`'s ``einsum`` (checked in tests/test_tallies.py).
"""

from __future__ import annotations

import numba
import numpy as np


def counts_before(events: np.ndarray, months) -> np.ndarray:
    """Whole counts ``events`` (P, C, K, T) summed before each of ``months``, (P, C, K, len(months)) float64.

    Month ``m`` counts months ``0 .. m - 1`` (all of them from ``m >= T`` on).  Exact: the sums
    are 64-bit integers, converted once at the end (exact below 2**53)."""
    if not np.issubdtype(events.dtype, np.integer):
        raise TypeError(f"counts_before: whole counts (an integer dtype), got {events.dtype}")
    months = np.asarray(months, dtype=np.int64)
    order = np.argsort(months, kind="stable")
    out = np.empty(events.shape[:3] + (len(months),))
    _counts_before(events, months[order], out)
    if (order != np.arange(len(months))).any():
        restored = np.empty_like(out)
        restored[..., order] = out
        out = restored
    return out


@numba.njit(cache=True)
def _counts_before(events, months, out):
    P, C, K, T = events.shape
    M = months.shape[0]
    for p in range(P):
        for c in range(C):
            for k in range(K):
                row = events[p, c, k]
                acc = np.int64(0)
                i = 0
                for t in range(T):
                    while i < M and months[i] <= t:
                        out[p, c, k, i] = acc
                        i += 1
                    acc += row[t]
                while i < M:
                    out[p, c, k, i] = acc
                    i += 1


def priced_costs(units: np.ndarray, weights: np.ndarray, price: np.ndarray, by_cohort: bool = False) -> np.ndarray:
    """EUR of cost items each month, cohorts weighted: (P, T), or (P, C, T) per cohort.

    ``units`` (P, C, Q, T): units of each cost item; ``weights`` (P, C); ``price`` (Q, T) EUR per
    unit.  In all: the units weighted and summed over cohorts (cohort by cohort), priced, summed
    over items (item by item).  Per cohort: the units priced and summed over items, then weighted."""
    P, C, Q, T = units.shape
    weights = np.ascontiguousarray(np.broadcast_to(weights, (P, C)), dtype=float)
    price = np.ascontiguousarray(price, dtype=float)
    if by_cohort:
        out = np.empty((P, C, T))
        _priced_by_cohort(units, weights, price, out)
    else:
        out = np.empty((P, T))
        _priced(units, weights, price, out)
    return out


@numba.njit(cache=True)
def _priced(units, weights, price, out):
    P, C, Q, T = units.shape
    weighted = np.empty(T)
    for p in range(P):
        for q in range(Q):
            for t in range(T):
                weighted[t] = 0.0
            for c in range(C):
                w = weights[p, c]
                row = units[p, c, q]
                for t in range(T):
                    weighted[t] += row[t] * w
            for t in range(T):
                if q == 0:
                    out[p, t] = weighted[t] * price[q, t]
                else:
                    out[p, t] += weighted[t] * price[q, t]


@numba.njit(cache=True)
def _priced_by_cohort(units, weights, price, out):
    P, C, Q, T = units.shape
    for p in range(P):
        for c in range(C):
            w = weights[p, c]
            for t in range(T):
                acc = 0.0
                for q in range(Q):
                    acc += units[p, c, q, t] * price[q, t]
                out[p, c, t] = acc * w
