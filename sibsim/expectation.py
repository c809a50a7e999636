"""Exact expected outcomes of the participant journey: no sampling, no noise.

The monthly journey of :class:`sibsim.contracts.Journey` (specified step by step
in :mod:`sibsim.reference`) is a finite Markov chain once a few counters join
the state.  Propagating the state distribution of *one* participant month by
month gives, exactly, the expected first-time outcomes and the probability of
being in work in each month since intake; shifting those curves by each
cohort's intake month and scaling by its size gives ``E[...]`` of what
:func:`sibsim.montecarlo.simulate_group` returns.  Uses: a *modelled*
counterfactual (an "expected benefit duration" model, as in the Rotterdam
Buzinezzclub SIB, where no comparison group adds measurement noise) and tests.

States (at the end of a month)
------------------------------
``("train", k)``
    In training, ``k`` months done (``k < L``; the intake state when L > 0).
``("search", D, h)``
    On benefits, looking for work; ``D`` = 1 with a diploma.
``("job", d, D, c, h)``
    In work, in month ``d`` of the job (1 .. S; S means "sustained mark
    reached"); ``c`` = 1 on a long-term contract (only at ``d == S``).

``h`` is the history needed because each outcome counts only the first time:
0 no job yet, 1 a job started, 2 a job sustained, 3 a long-term contract.
Only states reachable from the intake state are built (with L = 0 nobody has
a diploma), e.g. 56 states for L = 12, S = 6 and 22 for L = 0, S = 6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contracts import OUTCOMES

DIPLOMA, JOB_START, JOB_SUSTAINED, LONG_TERM_CONTRACT = range(len(OUTCOMES))
TRAIN, SEARCH, JOB = "train", "search", "job"

#: Names of the per-path probabilities an edge probability is a product of (see `edge_probabilities`).
FACTORS = ("one", "diploma", "dropout", "stay", "job0", "no_job0", "job1", "no_job1",
           "relapse", "keep", "relapse_lt", "keep_lt", "contract", "no_contract")


@dataclass(frozen=True)
class Chain:
    """Transition structure of the monthly journey (reachable states only), independent of the probabilities.

    Attributes
    ----------
    states : tuple
        State labels (see the module docstring); ``states[0]`` is the intake state.
    src, dst : ndarray (edges,) int
        Source and destination state of each edge, sorted by destination.
    factors : ndarray (edges, 2) int
        Indices into :data:`FACTORS`: the edge probability is the product of the two.
    events : ndarray (edges, 4) float
        1 where taking the edge reaches an outcome (:data:`OUTCOMES` order) for the first time.
    working : ndarray (states,) bool
        The in-work (off-benefit) states.
    """

    states: tuple
    src: np.ndarray
    dst: np.ndarray
    factors: np.ndarray
    events: np.ndarray
    working: np.ndarray

    @property
    def n_states(self) -> int:
        return len(self.states)


def _reach_job_month(d: int, D: int, h: int, S: int) -> list:
    """Edges (dst, factors, events) of ending a month in month ``d`` of a job, not yet sustained before."""
    if d < S:
        return [((JOB, d, D, 0, h), (), ())]
    sustained = (JOB_SUSTAINED,) if h < 2 else ()
    contract = (LONG_TERM_CONTRACT,) if h < 3 else ()
    return [((JOB, S, D, 1, 3), ("contract",), sustained + contract),
            ((JOB, S, D, 0, max(h, 2)), ("no_contract",), sustained)]


def _successors(state: tuple, L: int, S: int) -> list:
    """Edges (dst, factor names, outcome indices) out of ``state``: one month of the reference chain."""
    if state[0] == TRAIN:
        k = state[1]
        after = (SEARCH, 0, 0) if k + 1 == L else (TRAIN, k + 1)
        return [((SEARCH, 1, 0), ("diploma",), (DIPLOMA,)),
                ((SEARCH, 0, 0), ("dropout",), ()),
                (after, ("stay",), ())]
    if state[0] == SEARCH:
        _, D, h = state
        first = (JOB_START,) if h == 0 else ()
        found = [(dst, (f"job{D}",) + f, first + ev) for dst, f, ev in _reach_job_month(1, D, max(h, 1), S)]
        return found + [(state, (f"no_job{D}",), ())]
    _, d, D, c, h = state
    relapse, keep = ("relapse_lt", "keep_lt") if c else ("relapse", "keep")
    stay = [(state, (), ())] if d == S else _reach_job_month(d + 1, D, h, S)
    return [((SEARCH, D, h), (relapse,), ())] + [(dst, (keep,) + f, ev) for dst, f, ev in stay]


def journey_chain(max_training_months: int, sustained_job_months: int) -> Chain:
    """Build the reachable states and edges of the journey, breadth first from the intake state.

    Parameters
    ----------
    max_training_months : int
        L, months of training at most (0: straight to job search).
    sustained_job_months : int
        S >= 1, months in one job that make it sustained.
    """
    L, S = max_training_months, sustained_job_months
    if L < 0 or S < 1:
        raise ValueError(f"need max_training_months >= 0 and sustained_job_months >= 1, got {L}, {S}")
    states = [(TRAIN, 0) if L > 0 else (SEARCH, 0, 0)]
    index = {states[0]: 0}
    edges = []
    for state in states:  # grows while we iterate: breadth-first search
        for dst, names, outcomes in _successors(state, L, S):
            if dst not in index:
                index[dst] = len(states)
                states.append(dst)
            names = (names + ("one", "one"))[:2]
            edges.append((index[state], index[dst], [FACTORS.index(n) for n in names], outcomes))
    edges.sort(key=lambda e: e[1])  # by destination, for the scatter-add
    events = np.zeros((len(edges), len(OUTCOMES)))
    for e, (*_, outcomes) in enumerate(edges):
        events[e, list(outcomes)] = 1.0
    return Chain(
        states=tuple(states),
        src=np.array([e[0] for e in edges], dtype=np.int64),
        dst=np.array([e[1] for e in edges], dtype=np.int64),
        factors=np.array([e[2] for e in edges], dtype=np.int64).reshape(-1, 2),
        events=events,
        working=np.array([s[0] == JOB for s in states]),
    )


def edge_probabilities(chain: Chain, journey_parameters: dict[str, np.ndarray]) -> np.ndarray:
    """Probability of each edge given its source state, per path: shape ``(paths, edges)``."""
    p = {k: np.asarray(v, dtype=float) for k, v in journey_parameters.items()}
    d, x = p["diploma"], p["dropout"]
    j0, j1 = p["job_without_diploma"], p["job_with_diploma"]
    r, r_lt, c = p["relapse"], p["relapse_long_term"], p["long_term_contract"]
    with np.errstate(under="ignore"):  # products of tiny probabilities may flush to 0: harmless
        columns = (np.ones_like(d), d, (1 - d) * x, (1 - d) * (1 - x), j0, 1 - j0, j1, 1 - j1,
                   r, 1 - r, r_lt, 1 - r_lt, c, 1 - c)
        factors = np.stack(columns, axis=1)  # (paths, FACTORS)
        return factors[:, chain.factors[:, 0]] * factors[:, chain.factors[:, 1]]


def expected_journey(journey_parameters: dict[str, np.ndarray], max_training_months: int,
                     sustained_job_months: int, n_months: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected outcomes of ONE participant, by month since intake.

    Parameters
    ----------
    journey_parameters : dict of str -> ndarray (paths,)
        Per-month probabilities (``long_term_contract``: per sustained job), as
        for :func:`sibsim.montecarlo.simulate_group`.
    max_training_months, sustained_job_months : int
        L >= 0 and S >= 1.
    n_months : int
        Months since intake to follow (month 0 is the intake month).

    Returns
    -------
    events : ndarray (paths, 4, n_months) float64
        Probability of reaching each outcome for the first time in that month.
    employed : ndarray (paths, n_months) float64
        Probability of being in work (off benefits) in that month.
    """
    chain = journey_chain(max_training_months, sustained_job_months)
    weight = edge_probabilities(chain, journey_parameters)
    n_paths = weight.shape[0]
    targets, starts = np.unique(chain.dst, return_index=True)  # edges are sorted by destination
    events = np.zeros((n_paths, len(OUTCOMES), n_months))
    employed = np.zeros((n_paths, n_months))
    prob = np.zeros((n_paths, chain.n_states))
    prob[:, 0] = 1.0
    # Probabilities of long-lived states decay geometrically: flushing them to 0 is harmless.
    with np.errstate(under="ignore"):
        for m in range(n_months):
            flow = prob[:, chain.src] * weight  # probability of taking each edge this month
            events[:, :, m] = flow @ chain.events
            prob = np.zeros_like(prob)
            prob[:, targets] = np.add.reduceat(flow, starts, axis=1)  # scatter-add by destination
            employed[:, m] = prob[:, chain.working].sum(axis=1)
    return events, employed


def expected_group(journey_parameters: dict[str, np.ndarray], max_training_months: int,
                   intake_months: np.ndarray, sizes: np.ndarray, n_months: int,
                   sustained_job_months: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact expectation of :func:`sibsim.montecarlo.simulate_group` for the same per-path probabilities.

    Parameters
    ----------
    journey_parameters : dict of str -> ndarray (paths,)
        Per-month probabilities of each path (``long_term_contract``: per sustained job).
    max_training_months : int
        Months of training at most (0: straight to job search).
    intake_months, sizes : ndarray (cohorts,)
        Intake month and number of participants of each cohort.
    n_months : int
        Months in the ledger (the horizon); later events are not observed.
    sustained_job_months : int
        Months in one job that make it sustained.

    Returns
    -------
    events : ndarray (paths, cohorts, 4, months) float64
        Expected participants reaching each outcome (:data:`~sibsim.contracts.OUTCOMES`
        order) for the first time in each month.
    employed : ndarray (paths, cohorts, months) float64
        Expected participants in work (off benefits) in each month.
    """
    intake_months = np.asarray(intake_months, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=float)
    n_paths = len(journey_parameters["diploma"])
    since_first = n_months - int(intake_months.min()) if intake_months.size else 0  # months to follow
    per_events, per_employed = expected_journey(journey_parameters, max_training_months, sustained_job_months,
                                                max(since_first, 0))
    events = np.zeros((n_paths, sizes.size, len(OUTCOMES), n_months))
    employed = np.zeros((n_paths, sizes.size, n_months))
    with np.errstate(under="ignore"):
        for c, (intake, size) in enumerate(zip(intake_months, sizes)):
            if intake < n_months:
                events[:, c, :, intake:] = size * per_events[:, :, : n_months - intake]
                employed[:, c, intake:] = size * per_employed[:, : n_months - intake]
    return events, employed
