"""Exact expected counts of any journey (:mod:`sibsim.journey`): no sampling, no noise.

A journey is a finite Markov chain once a few counters join the state.  This module builds that
*augmented* chain once from the structure of the journey and the measures counted on it (only the
states reachable from the start states), then propagates the distribution of one participant month
by month, vectorised over Monte Carlo paths: the structure is fixed, only the edge probabilities
differ per path (each one a product of factors such as ``p``, ``1 - p``, ``1 - sum(p)`` or
``exp(-rate)`` of the path's parameter columns).  Shifting the per-participant curves by each
cohort's intake month and scaling them by its size gives ``E[counts]`` of what the Monte Carlo
engine returns.  Uses: a modelled counterfactual (``comparison.method = "expected"``: an expected
benefit-duration model, no comparison-group noise) and tests.

The augmented chain, its counters and the readings of the rules it makes precise are described in
:mod:`sibsim.augmented`.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .augmented import MAX_STATES, Chain, build_chain
from .journey import Journey, Outcome

__all__ = ["MAX_STATES", "Chain", "build_chain", "expected_curves", "expected_group", "factor_columns"]

#: Flows of one block of paths held at once: (paths in a block) x (edges) at most this many numbers.
BLOCK_CELLS = 2_000_000
#: Paths in a block at most (small blocks keep one month's flows in cache).
BLOCK_PATHS = 2048
#: Rounding allowed when competing exits sum to 1 (a sum above 1 + this is an error).
EXIT_SUM_TOLERANCE = 1e-12


def factor_columns(chain: Chain, params: np.ndarray) -> np.ndarray:
    """Each factor of ``chain.factor_keys`` per path, shape ``(paths, factors)``.

    Raises
    ------
    ValueError
        If a state's competing exits sum above 1 on some path.
    """
    params = np.asarray(params, dtype=float)
    out = np.empty((params.shape[0], len(chain.factor_keys)))
    for f, key in enumerate(chain.factor_keys):
        kind = key[0]
        if kind == "one":
            out[:, f] = 1.0
        elif kind == "p":
            out[:, f] = params[:, key[1]]
        elif kind == "q":
            out[:, f] = 1.0 - params[:, key[1]]
        elif kind == "stay":
            total = params[:, list(key[1])].sum(axis=1)
            if np.any(total > 1.0 + EXIT_SUM_TOLERANCE):
                path = int(np.argmax(total))
                raise ValueError(f"the exits of state {key[2]!r} sum to {total[path]:.6g} > 1 on path {path}")
            out[:, f] = np.maximum(1.0 - total, 0.0)  # only rounding below 0 is cut
        elif kind == "none":
            out[:, f] = np.exp(-params[:, list(key[1])].sum(axis=1))
        else:  # "some": at least one Poisson event
            out[:, f] = -np.expm1(-params[:, list(key[1])].sum(axis=1))
    return out


def expected_curves(chain: Chain, params: np.ndarray, start: np.ndarray, n_months: int,
                    by_month: tuple | None = None) -> np.ndarray:
    """Expected occurrences of each measure for ONE participant, by month since intake.

    Parameters
    ----------
    chain : Chain
    params : ndarray (paths, P)
        Parameter values of each path (columns in ``Journey.parameters`` order).
    start : ndarray (states,)
        Start distribution (only states in ``chain.start_node`` may carry weight).
    n_months : int
        Months since intake to follow (month 0 is the intake month).
    by_month : (regime params (paths, R, P), regime of each month since intake (n_months,)) or None
        Parameters piecewise constant in calendar time (:class:`sibsim.uncertainty.Regimes`, read
        from this participant's intake month on); None: ``params`` in every month.

    Returns
    -------
    ndarray (paths, measures, n_months) float64
        Before windows and lags: occurrences dated in each month since intake.
    """
    n_paths = params.shape[0]
    m = chain.now.shape[1]
    curves = np.zeros((n_paths, m, n_months))
    if n_months <= 0:
        return curves
    n_edges = len(chain.src)
    into = sparse.csr_matrix((np.ones(n_edges), (chain.dst, np.arange(n_edges))), shape=(chain.n_nodes, n_edges))
    init = np.zeros(chain.n_nodes)
    counts0 = np.zeros(m)
    for s, node in chain.start_node.items():
        init[node] += start[s]
        counts0 += start[s] * chain.start_counts[s]
    curves[:, :, 0] += counts0
    rate_states = sorted({s for _, s, _ in chain.rates})
    occupancy = (chain.occupied[:, None] == np.array(rate_states, dtype=np.int64)[None, :]).astype(float)
    block = max(1, min(BLOCK_PATHS, BLOCK_CELLS // max(len(chain.src), 1)))
    # Sparse: an edge counts for few measures, and few states carry recurrent events.
    counted = sparse.csr_matrix(np.concatenate([chain.now, chain.later], axis=1).T)  # (2 measures, edges)
    seen = sparse.csr_matrix(occupancy.T)
    # Edges-major layout (edges, paths): the gathers and the scatter-add move whole rows.
    # Probabilities of long-lived states decay geometrically: flushing them to 0 is harmless.
    def month_law(values):
        """Each edge's probability and each rate state's rates, for one block's parameters."""
        columns = factor_columns(chain, values).T.copy()  # (factors, paths)
        weight = columns[chain.factors[:, 0]]
        for k in range(1, chain.factors.shape[1]):
            weight *= columns[chain.factors[:, k]]
        rate = np.zeros((len(rate_states), m, values.shape[0]))
        for j, s, cols in chain.rates:
            rate[rate_states.index(s), j] += values[:, list(cols)].sum(axis=1)
        return weight, rate

    with np.errstate(under="ignore"):
        for lo in range(0, n_paths, block):
            hi = min(lo + block, n_paths)
            if by_month is None:
                weight, rate = month_law(params[lo:hi])
            else:
                laws = {}  # regime -> its law, computed when first reached
            out = np.zeros((n_months + 1, m, hi - lo))
            prob = np.repeat(init[:, None], hi - lo, axis=1)
            for k in range(n_months):
                if by_month is not None:
                    r = int(by_month[1][k])
                    if r not in laws:
                        laws[r] = month_law(by_month[0][lo:hi, r, :])
                    weight, rate = laws[r]
                flow = prob[chain.src] * weight  # probability of taking each edge this month
                both = counted @ flow
                out[k] += both[:m]
                out[k + 1] += both[m:]  # dated next month (the row past the end is dropped)
                if rate_states:
                    out[k] += np.einsum("sb,sjb->jb", seen @ flow, rate)
                prob = into @ flow  # scatter-add by destination
            curves[lo:hi] += out[:n_months].transpose(2, 1, 0)
    return curves


def _dated(curves: np.ndarray, measures: tuple[Outcome, ...]) -> np.ndarray:
    """Windows, census months and lags applied: occurrences by the month since intake they are dated in."""
    out = np.zeros_like(curves)
    n = curves.shape[2]
    for j, o in enumerate(measures):
        keep = np.ones(n, dtype=bool)
        if o.window is not None:
            keep[o.window:] = False
        if o.kind == "status":
            census = np.zeros(n, dtype=bool)
            census[[k for k in o.at_months if 0 <= k < n]] = True
            keep &= census
        if o.lag < n:
            out[:, j, o.lag:] = (curves[:, j] * keep)[:, : n - o.lag]
    return out


def expected_group(journey: Journey, measures: tuple[Outcome, ...], params: np.ndarray,
                   intake_months: np.ndarray, sizes: np.ndarray, starts: np.ndarray,
                   n_months: int, regimes=None) -> np.ndarray:
    """Exact expectation of the Monte Carlo engine's counts for the same per-path parameters.

    Parameters
    ----------
    journey : Journey
        The state machine (its parameters give the column order of ``params``).
    measures : tuple of Outcome
        What is counted (``Contract.measures``).
    params : ndarray (paths, P)
        Parameter values of each path: probabilities per month, rates in events per month.
    intake_months : ndarray (cohorts,) int
        Intake month of each cohort.
    sizes : ndarray (cohorts,) int
        Participants of each cohort.
    starts : ndarray (cohorts, states)
        Start distribution of each cohort (rows sum to 1), states in ``Journey.states`` order.
    n_months : int
        Months in the ledger (the horizon); later occurrences are not observed.
    regimes : sibsim.uncertainty.Regimes or None
        Parameters piecewise constant in calendar time (``regimes.params[:, 0]`` is ``params``):
        each cohort's curves then follow the regimes of its own calendar months.

    Returns
    -------
    ndarray (paths, cohorts, measures, months) float64
        Expected occurrences of each measure dated in each month, before ``Outcome.scale``.

    Raises
    ------
    ValueError
        If the augmented chain is too large (:data:`MAX_STATES`; the message names the counters),
        the journey is malformed, or a path's competing exits sum above 1.
    """
    measures = tuple(measures)
    params = np.atleast_2d(np.asarray(params, dtype=float))
    intake_months = np.asarray(intake_months, dtype=np.int64).reshape(-1)
    sizes = np.asarray(sizes, dtype=float).reshape(-1)
    starts = np.asarray(starts, dtype=float).reshape(intake_months.size, len(journey.states))
    if params.shape[1] != len(journey.parameters):
        raise ValueError(f"params has {params.shape[1]} columns, the journey {len(journey.parameters)} parameters")
    n_paths = params.shape[0]
    out = np.zeros((n_paths, intake_months.size, len(measures), n_months))
    live = intake_months < n_months
    if not live.any():
        return out
    follow = n_months - int(intake_months[live].min())  # months since intake to follow
    chain = build_chain(journey, measures, np.flatnonzero(starts[live].sum(axis=0) > 0))
    rows, which = np.unique(starts[live], axis=0, return_inverse=True)
    several = regimes is not None and regimes.n_regimes > 1
    if not several:
        curves = [_dated(expected_curves(chain, params, row, follow), measures) for row in rows]
    cache = {}  # (start row, intake) -> curves, with regimes (calendar months differ per intake)
    with np.errstate(under="ignore"):
        for c, r in zip(np.flatnonzero(live), np.asarray(which).reshape(-1)):
            intake = int(intake_months[c])
            if several:
                if (r, intake) not in cache:
                    of = regimes.of_month(np.arange(intake, n_months))
                    cache[r, intake] = _dated(expected_curves(chain, params, rows[r], n_months - intake,
                                                              (regimes.params, of)), measures)
                curve = cache[r, intake]
            else:
                curve = curves[r]
            out[:, c, :, intake:] = sizes[c] * curve[:, :, : n_months - intake]
    return out
