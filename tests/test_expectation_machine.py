"""Tests of sibsim.expectation on journeys given as data (sibsim.journey): exact expectations, no sampling.

1. Closed forms on small chains: geometric sojourns, first entries, censuses, milestones, Poisson
   events, time limits, branches, windows, lags, cohort shifts and start mixes.
2. Guards: the size of the augmented chain, a "start" state passed through twice, exits above 1.
3. The Colour Kitchen machine (the scenario's journey as dataclasses) against the old hard-coded
   chain (``git show main:sibsim/expectation.py``, copied below): equal to 1e-12.
4. Agreement with a brute-force Monte Carlo written here, literally from the rules of the
   sibsim.journey docstring: exactly on deterministic machines (probabilities 0 and 1),
   statistically on Colour Kitchen and on a Rotterdam-like chain.
5. Agreement with the reference simulator (sibsim.reference) on random valid machines
   (tests/machines.py): exactly with probabilities rounded to 0 or 1, statistically otherwise.
"""

from __future__ import annotations

import inspect
from math import comb, exp

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sibsim.expectation import MAX_STATES, build_chain, expected_group
from sibsim.journey import Branch, Exit, Journey, Outcome, Prior, RecurrentEvent, State
from tests.machines import colour_kitchen_journey

try:  # the reference simulator of any journey, and its random valid machines
    from sibsim.reference import simulate_group_reference
    from tests.machines import random_machines
    HAVE_REFERENCE = "measures" in inspect.signature(simulate_group_reference).parameters
except ImportError:
    HAVE_REFERENCE = False

EXACT = dict(rtol=1e-12, atol=1e-12)


def journey(states, start="a", branches=(), **params) -> Journey:
    """A journey whose parameters are ``params`` (fixed values, in keyword order)."""
    return Journey(tuple(states), ((start, 1.0),) if isinstance(start, str) else tuple(start), tuple(branches),
                   tuple((k, Prior(v)) for k, v in params.items()))


def values(j: Journey, n_paths: int = 1) -> np.ndarray:
    """(paths, P): every path at the prior means."""
    return np.tile([p.mean for _, p in j.parameters], (n_paths, 1))


def one(j: Journey, measures, months: int, params=None, start=None) -> np.ndarray:
    """(measures, months) expected counts of ONE participant entering in month 0."""
    starts = np.zeros((1, len(j.states)))
    for name, share in (start or j.start):
        starts[0, j.state_names.index(name)] = share
    p = values(j) if params is None else np.atleast_2d(params)
    return expected_group(j, tuple(measures), p, np.array([0]), np.array([1]), starts, months)[0, 0]


# --- 1. closed forms ------------------------------------------------------------------------------

P, K = 0.15, 30
k = np.arange(K)


@pytest.mark.parametrize("timing", ["end", "start"])
def test_geometric_sojourn_and_first_entry(timing):
    """Leaving a with p a month: in a at month k w.p. (1-p)^k ("end") or (1-p)^(k+1) ("start")."""
    j = journey([State("a", (Exit("b", "p", "left"),), timing=timing), State("b")], p=P)
    got = one(j, [Outcome("in_a", "occupancy", states=("a",)), Outcome("b", "entry", states=("b",)),
                  Outcome("left", "event", event="left"), Outcome("a", "entry", states=("a",))], K)
    shift = 0 if timing == "end" else 1
    np.testing.assert_allclose(got[0], (1 - P) ** (k + shift), **EXACT)
    # "end": the exit drawn at the end of month k-1, the entry dated k; "start": both in month k
    entry = np.where(k >= 1, P * (1 - P) ** np.maximum(k - 1, 0), 0.0) if timing == "end" else P * (1 - P) ** k
    np.testing.assert_allclose(got[1], entry, **EXACT)
    event = P * (1 - P) ** k if timing == "end" else P * (1 - P) ** k
    np.testing.assert_allclose(got[2], event, **EXACT)
    np.testing.assert_allclose(got[3], np.eye(K)[0], **EXACT)  # the intake is an entry
    # occupancy sum: the mean sojourn truncated at K months, (1 - (1-p)^K) / p for "end"
    if timing == "end":
        np.testing.assert_allclose(got[0].sum(), (1 - (1 - P) ** K) / P, **EXACT)
    np.testing.assert_allclose(got[1].sum(), 1 - (1 - P) ** (K - 1 + shift), **EXACT)  # 1-(1-p)^k


def test_first_and_every_entry_into_a_set_with_returns():
    """a <-> b (p out, back after one month): first entry into b by month k is 1-(1-p)^k; every entry counts all."""
    j = journey([State("a", (Exit("b", "p"),)), State("b", time_limit=1, after_limit="a")], p=P)
    got = one(j, [Outcome("first", "entry", states=("b",)), Outcome("every", "entry", states=("b",), count="every"),
                  Outcome("in_b", "occupancy", states=("b",))], K)
    np.testing.assert_allclose(np.cumsum(got[0]), 1 - (1 - P) ** k, **EXACT)
    np.testing.assert_allclose(got[1], got[2], **EXACT)  # every month in b is one entry
    # in b at k: b is one month, so P(b_k) = p * P(a_{k-1}) and P(a_k) = 1 - P(b_k)
    b = np.zeros(K)
    for m in range(1, K):
        b[m] = P * (1 - b[m - 1])
    np.testing.assert_allclose(got[2], b, **EXACT)


def test_status_census_of_a_two_state_chain():
    """On/off chain: P(in b at k) = pi + (0 - pi)(1-p-q)^k, counted only at the census months (and window)."""
    p, q = 0.2, 0.1
    j = journey([State("a", (Exit("b", "p"),)), State("b", (Exit("a", "q"),))], p=p, q=q)
    census = (0, 3, 12, 25)
    got = one(j, [Outcome("s", "status", states=("b",), at_months=census),
                  Outcome("w", "status", states=("b",), at_months=census, window=13, lag=2)], K)
    pi = p / (p + q)
    curve = pi - pi * (1 - p - q) ** k
    want = np.where(np.isin(k, census), curve, 0.0)
    np.testing.assert_allclose(got[0], want, **EXACT)
    lagged = np.zeros(K)
    lagged[[3 + 2, 12 + 2]] = curve[[3, 12]]  # month 25 is outside the 13-month window
    np.testing.assert_allclose(got[1], lagged, **EXACT)


def test_consecutive_and_cumulative_milestones():
    """Consecutive: M months in a reached at M-1 w.p. (1-p)^(M-1). Cumulative, with one-month spells in b:
    reached at month k w.p. C(M-1, k-M+1) p^(k-M+1) (1-p)^(2M-2-k) (negative binomial)."""
    M = 5
    j = journey([State("a", (Exit("b", "p"),)), State("b", time_limit=1, after_limit="a")], p=P)
    got = one(j, [Outcome("run", "milestone", states=("a",), months=M),
                  Outcome("cum", "milestone", states=("a",), months=M, consecutive=False),
                  Outcome("runs", "milestone", states=("a",), months=M, count="every")], K)
    cum = np.array([comb(M - 1, m - M + 1) * P ** (m - M + 1) * (1 - P) ** (2 * M - 2 - m)
                    if M - 1 <= m <= 2 * M - 2 else 0.0 for m in k])
    np.testing.assert_allclose(got[1], cum, **EXACT)
    np.testing.assert_allclose(got[1].sum(), 1.0, **EXACT)  # certain by month 2M-2
    survive = (1 - P) ** (M - 1)  # a run reaches M months if it survives M-1 end-of-month exits
    # every run: one starts at m at intake or after the one month in b, b at m-1 w.p. b[m-1]
    b = np.zeros(K)
    for m in range(1, K):
        b[m] = P * (1 - b[m - 1])
    starts = np.r_[1.0, b[:-1]]
    np.testing.assert_allclose(got[2], np.r_[np.zeros(M - 1), starts[: K - M + 1] * survive], **EXACT)
    # the first run: f[m] = P(a run starts at m, no earlier run reached M): an earlier run from t
    # failed after d < M months (exit at the end of t+d-1, b at t+d) and the next starts at t+d+1
    f = np.zeros(K)
    f[0] = 1.0
    for m in range(2, K):
        f[m] = sum(f[m - d - 1] * (1 - P) ** (d - 1) * P for d in range(1, M) if m - d - 1 >= 0)
    np.testing.assert_allclose(got[0], np.r_[np.zeros(M - 1), f[: K - M + 1] * survive], **EXACT)
    assert got[0][M - 1] == pytest.approx(survive, rel=1e-12)


def test_time_limit_with_an_exit():
    """a for at most 3 months (exit p): to c via the limit at month 3 w.p. (1-p)^3."""
    j = journey([State("a", (Exit("b", "p"),), time_limit=3, after_limit="c"), State("b"), State("c")], p=P)
    got = one(j, [Outcome("c", "entry", states=("c",)), Outcome("a", "occupancy", states=("a",)),
                  Outcome("b", "entry", states=("b",))], 8)
    np.testing.assert_allclose(got[0], np.eye(8)[3] * (1 - P) ** 3, **EXACT)
    np.testing.assert_allclose(got[1], np.r_[(1 - P) ** np.arange(3), np.zeros(5)], **EXACT)
    np.testing.assert_allclose(got[2][1:4], P * (1 - P) ** np.arange(3), **EXACT)


def test_competing_and_ordered_exits():
    """Competing: p1 and p2 out of the month; in order: p1, then p2 among those left."""
    p1, p2 = 0.3, 0.5
    for order, want in ((False, (p1, p2)), (True, (p1, (1 - p1) * p2))):
        j = journey([State("a", (Exit("x", "p1"), Exit("y", "p2")), exits_in_order=order), State("x"), State("y")],
                    p1=p1, p2=p2)
        got = one(j, [Outcome("x", "entry", states=("x",)), Outcome("y", "entry", states=("y",))], 3)
        np.testing.assert_allclose(got[:, 1], want, **EXACT)


def test_poisson_events_every_and_first():
    """Rate r in a (left with p): E[events at k] = r (1-p)^k; first at k: ((1-p) e^-r)^k (1 - e^-r)."""
    r = 0.4
    j = journey([State("a", (Exit("b", "p"),), events=(RecurrentEvent("e", "r"),)), State("b")], p=P, r=r)
    got = one(j, [Outcome("every", "event", event="e", count="every"),
                  Outcome("first", "event", event="e")], K)
    np.testing.assert_allclose(got[0], r * (1 - P) ** k, **EXACT)
    np.testing.assert_allclose(got[1], ((1 - P) * exp(-r)) ** k * (1 - exp(-r)), **EXACT)


def test_first_event_shared_by_a_transition_and_a_recurrent_event():
    """e recurs at rate r in a and also marks the exit (p): the first e at k w.p. ((1-p)e^-r)^k (1 - e^-r (1-p))."""
    r = 0.3
    j = journey([State("a", (Exit("b", "p", "e"),), events=(RecurrentEvent("e", "r"),)), State("b")], p=P, r=r)
    got = one(j, [Outcome("first", "event", event="e"), Outcome("every", "event", event="e", count="every")], K)
    np.testing.assert_allclose(got[0], ((1 - P) * exp(-r)) ** k * (1 - exp(-r) * (1 - P)), **EXACT)
    np.testing.assert_allclose(got[1], (r + P) * (1 - P) ** k, **EXACT)


def test_branches_due_in_the_same_month_are_tried_in_order():
    """Two branches at 2 months in a: the first fires w.p. q1, the second w.p. (1 - q1) q2."""
    q1, q2 = 0.3, 0.6
    j = journey([State("a"), State("b"), State("c")],
                branches=[Branch(("a",), 2, "b", "q1"), Branch(("a", "c"), 2, "c", "q2")], q1=q1, q2=q2)
    got = one(j, [Outcome("b", "entry", states=("b",)), Outcome("c", "entry", states=("c",)),
                  Outcome("a", "occupancy", states=("a",))], 4)
    np.testing.assert_allclose(got, [[0, q1, 0, 0], [0, (1 - q1) * q2, 0, 0],
                                     [1, (1 - q1) * (1 - q2), (1 - q1) * (1 - q2), (1 - q1) * (1 - q2)]], **EXACT)


def test_branch_at_a_duration_and_through_a_start_state():
    """A branch at 3 months in a: to b (a "start" state) w.p. q, dated month 2; b passes on to c w.p. s a month."""
    q, s = 0.6, 0.25
    j = journey([State("a"), State("b", (Exit("c", "s"),), timing="start"), State("c")],
                branches=[Branch(("a",), 3, "b", "q", event="moved")], q=q, s=s)
    got = one(j, [Outcome("a", "occupancy", states=("a",)), Outcome("b", "entry", states=("b",)),
                  Outcome("c", "entry", states=("c",)), Outcome("moved", "event", event="moved"),
                  Outcome("in_b", "occupancy", states=("b",))], 6)
    np.testing.assert_allclose(got[0], [1, 1, 1 - q, 1 - q, 1 - q, 1 - q], **EXACT)
    np.testing.assert_allclose(got[1], np.eye(6)[2] * q, **EXACT)
    np.testing.assert_allclose(got[2], np.r_[0, 0, q * s * (1 - s) ** np.arange(4)], **EXACT)
    np.testing.assert_allclose(got[3], np.eye(6)[2] * q, **EXACT)
    np.testing.assert_allclose(got[4], np.r_[0, 0, q * (1 - s) ** np.arange(1, 5)], **EXACT)


def test_windows_lags_cohorts_and_horizon():
    """Each cohort's curve is the participant's, times its size, shifted by its intake and cut at the horizon."""
    j = journey([State("a", (Exit("b", "p"),)), State("b")], p=P)
    m = (Outcome("b", "entry", states=("b",)), Outcome("bw", "entry", states=("b",), window=4, lag=3),
         Outcome("occ", "occupancy", states=("a",), lag=1))
    base = one(j, m[:1], 20)[0]
    starts = np.array([[1.0, 0.0]] * 3)
    got = expected_group(j, m, values(j, 2), np.array([0, 5, 25]), np.array([2, 7, 4]), starts, 20)
    assert got.shape == (2, 3, 3, 20)
    np.testing.assert_allclose(got[1], got[0], **EXACT)
    np.testing.assert_allclose(got[0, 0, 0], 2 * base, **EXACT)
    np.testing.assert_allclose(got[0, 1, 0], 7 * np.r_[np.zeros(5), base[:15]], **EXACT)
    assert not got[0, 2].any()  # an intake beyond the horizon counts nothing
    windowed = np.r_[np.zeros(3), base[:4], np.zeros(13)]
    np.testing.assert_allclose(got[0, 0, 1], 2 * windowed, **EXACT)
    np.testing.assert_allclose(got[0, 1, 2], 7 * np.r_[np.zeros(6), (1 - P) ** np.arange(14)], **EXACT)


def test_start_mix_and_per_path_parameters():
    """Start shares mix the participants' curves linearly; each path uses its own parameter row."""
    j = journey([State("a", (Exit("b", "p"),)), State("b")], start=(("a", 0.3), ("b", 0.7)), p=P)
    m = (Outcome("in_b", "occupancy", states=("b",)),)
    p = np.array([[0.1], [0.5]])
    got = expected_group(j, m, p, np.array([0, 0]), np.array([10, 10]),
                         np.array([[0.3, 0.7], [1.0, 0.0]]), 12)
    for i, pi in enumerate((0.1, 0.5)):
        a_only = 1 - (1 - pi) ** k[:12]
        np.testing.assert_allclose(got[i, 0, 0], 10 * (0.7 + 0.3 * a_only), **EXACT)
        np.testing.assert_allclose(got[i, 1, 0], 10 * a_only, **EXACT)


# --- 2. guards ------------------------------------------------------------------------------------

def test_chain_too_large_names_the_counters():
    j = journey([State("a", (Exit("b", "p"),)), State("b", (Exit("a", "q"),))], p=0.5, q=0.5)
    m = (Outcome("ca", "milestone", states=("a",), months=400, consecutive=False),
         Outcome("cb", "milestone", states=("b",), months=400, consecutive=False))
    with pytest.raises(ValueError, match=f"more than {MAX_STATES} augmented states.*cumulative months in") as err:
        expected_group(j, m, values(j), np.array([0]), np.array([1]), np.array([[1.0, 0.0]]), 10)
    assert "\n" not in str(err.value)


def test_start_state_passed_through_twice_is_refused():
    j = journey([State("a", (Exit("b", "p"),), timing="start"), State("b", (Exit("a", "p"),), timing="start")],
                p=0.5)
    with pytest.raises(ValueError, match="passed through twice"):
        build_chain(j, (), [0])


def test_exits_above_one_are_an_error_not_a_clip():
    j = journey([State("a", (Exit("b", "p"), Exit("c", "q"))), State("b"), State("c")], p=0.6, q=0.3)
    m = (Outcome("b", "entry", states=("b",)),)
    params = np.array([[0.6, 0.3], [0.6, 0.5]])
    with pytest.raises(ValueError, match="'a' sum to 1.1"):
        expected_group(j, m, params, np.array([0]), np.array([1]), np.array([[1.0, 0, 0]]), 4)


# --- 3. Colour Kitchen: the old hard-coded chain ------------------------------------------------

JOBS = ("job", "job_with_diploma", "long_term_job", "long_term_job_with_diploma")
CK_MEASURES = (Outcome("diploma", "event", event="diploma"), Outcome("job_start", "entry", states=JOBS),
               Outcome("job_sustained", "milestone", states=JOBS, months=6),
               Outcome("long_term_contract", "entry", states=("long_term_job", "long_term_job_with_diploma")),
               Outcome("months_in_work", "occupancy", states=JOBS))
CK_COMPARISON = {"diploma": Prior(0.0), "dropout": Prior(0.0), "job_with_diploma": Prior(0.0),
                 "job_without_diploma": Prior(0.01, 0.004), "long_term_contract": Prior(0.4, 0.1)}


def colour_kitchen(start: str = "training") -> Journey:
    """scenarios/utrecht_colour_kitchen.toml's [journey], as dataclasses."""
    params = (("diploma", Prior(0.105, 0.03)), ("dropout", Prior(0.012, 0.005)),
              ("job_with_diploma", Prior(0.04, 0.012)), ("job_without_diploma", Prior(0.025, 0.008)),
              ("relapse", Prior(0.035, 0.01)), ("relapse_long_term", Prior(0.01, 0.004)),
              ("long_term_contract", Prior(0.49, 0.1)))
    j = colour_kitchen_journey(params, start)
    return j.with_parameters(CK_COMPARISON) if start == "job_search" else j


def draws(j: Journey, n_paths: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([p.draw(rng, n_paths) for _, p in j.parameters])


# The old module's chain (main:sibsim/expectation.py), verbatim but for docstrings: 4 outcomes and in work.
_OLD_FACTORS = ("one", "diploma", "dropout", "stay", "job0", "no_job0", "job1", "no_job1",
                "relapse", "keep", "relapse_lt", "keep_lt", "contract", "no_contract")


def _old_reach_job_month(d, D, h, S):
    if d < S:
        return [(("job", d, D, 0, h), (), ())]
    sustained = (2,) if h < 2 else ()
    contract = (3,) if h < 3 else ()
    return [(("job", S, D, 1, 3), ("contract",), sustained + contract),
            (("job", S, D, 0, max(h, 2)), ("no_contract",), sustained)]


def _old_successors(state, L, S):
    if state[0] == "train":
        k = state[1]
        after = ("search", 0, 0) if k + 1 == L else ("train", k + 1)
        return [(("search", 1, 0), ("diploma",), (0,)), (("search", 0, 0), ("dropout",), ()), (after, ("stay",), ())]
    if state[0] == "search":
        _, D, h = state
        first = (1,) if h == 0 else ()
        found = [(dst, (f"job{D}",) + f, first + ev) for dst, f, ev in _old_reach_job_month(1, D, max(h, 1), S)]
        return found + [(state, (f"no_job{D}",), ())]
    _, d, D, c, h = state
    relapse, keep = ("relapse_lt", "keep_lt") if c else ("relapse", "keep")
    stay = [(state, (), ())] if d == S else _old_reach_job_month(d + 1, D, h, S)
    return [(("search", D, h), (relapse,), ())] + [(dst, (keep,) + f, ev) for dst, f, ev in stay]


def old_expected_group(journey_parameters, max_training_months, intake_months, sizes, n_months,
                       sustained_job_months):
    """The old ``expected_group``: events (paths, cohorts, 4, months) and employed (paths, cohorts, months)."""
    L, S = max_training_months, sustained_job_months
    states = [("train", 0) if L > 0 else ("search", 0, 0)]
    index = {states[0]: 0}
    edges = []
    for state in states:
        for dst, names, outcomes in _old_successors(state, L, S):
            if dst not in index:
                index[dst] = len(states)
                states.append(dst)
            names = (names + ("one", "one"))[:2]
            edges.append((index[state], index[dst], [_OLD_FACTORS.index(n) for n in names], outcomes))
    edges.sort(key=lambda e: e[1])
    events_of = np.zeros((len(edges), 4))
    for e, (*_, outcomes) in enumerate(edges):
        events_of[e, list(outcomes)] = 1.0
    src = np.array([e[0] for e in edges])
    dst = np.array([e[1] for e in edges])
    fac = np.array([e[2] for e in edges]).reshape(-1, 2)
    working = np.array([s[0] == "job" for s in states])
    p = {k: np.asarray(v, dtype=float) for k, v in journey_parameters.items()}
    d, x = p["diploma"], p["dropout"]
    j0, j1 = p["job_without_diploma"], p["job_with_diploma"]
    r, r_lt, c = p["relapse"], p["relapse_long_term"], p["long_term_contract"]
    with np.errstate(under="ignore"):
        cols = np.stack((np.ones_like(d), d, (1 - d) * x, (1 - d) * (1 - x), j0, 1 - j0, j1, 1 - j1,
                         r, 1 - r, r_lt, 1 - r_lt, c, 1 - c), axis=1)
        weight = cols[:, fac[:, 0]] * cols[:, fac[:, 1]]
    n_paths = weight.shape[0]
    intake_months = np.asarray(intake_months, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=float)
    T = n_months - int(intake_months.min())
    targets, starts = np.unique(dst, return_index=True)
    per_events = np.zeros((n_paths, 4, T))
    per_employed = np.zeros((n_paths, T))
    prob = np.zeros((n_paths, len(states)))
    prob[:, 0] = 1.0
    with np.errstate(under="ignore"):
        for m in range(T):
            flow = prob[:, src] * weight
            per_events[:, :, m] = flow @ events_of
            prob = np.zeros_like(prob)
            prob[:, targets] = np.add.reduceat(flow, starts, axis=1)
            per_employed[:, m] = prob[:, working].sum(axis=1)
        events = np.zeros((n_paths, sizes.size, 4, n_months))
        employed = np.zeros((n_paths, sizes.size, n_months))
        for ci, (intake, size) in enumerate(zip(intake_months, sizes)):
            if intake < n_months:
                events[:, ci, :, intake:] = size * per_events[:, :, : n_months - intake]
                employed[:, ci, intake:] = size * per_employed[:, : n_months - intake]
    return events, employed


CK_INTAKES, CK_SIZES, CK_MONTHS = np.arange(0, 24, 2), np.full(12, 21), 60


@pytest.mark.parametrize("start, training", [("job_search", 0), ("training", 12)])
def test_colour_kitchen_matches_the_old_chain(start, training):
    j = colour_kitchen(start)
    params = draws(j, 300, seed=12)
    starts = np.zeros((12, len(j.states)))
    starts[:, j.state_names.index(start)] = 1.0
    new = expected_group(j, CK_MEASURES, params, CK_INTAKES, CK_SIZES, starts, CK_MONTHS)
    events, employed = old_expected_group(dict(zip(j.parameter_names, params.T)), training, CK_INTAKES, CK_SIZES,
                                          CK_MONTHS, 6)
    np.testing.assert_allclose(new[:, :, :4], events, **EXACT)
    np.testing.assert_allclose(new[:, :, 4], employed, **EXACT)
    assert events[:, :, 1:].sum() > 1000  # outcomes happen: the match is not vacuous


def test_colour_kitchen_chain_sizes():
    """Reachable augmented states: 62 treated (training 0..11 on top), 25 for the comparison group."""
    for start, n in (("training", 62), ("job_search", 25)):
        j = colour_kitchen(start)
        assert build_chain(j, CK_MEASURES, [j.state_names.index(start)]).n_nodes == n


# --- 4. a brute-force Monte Carlo, literally from the rules ---------------------------------------

def simulate(j: Journey, measures, params: np.ndarray, start: str, n_months: int, n: int,
             rng: np.random.Generator) -> np.ndarray:
    """(n participants, measures, n_months): each participant's dated counts, entering in month 0."""
    names = j.state_names
    state = {s.name: s for s in j.states}
    value = dict(zip(j.parameter_names, params))
    run_sets = {frozenset(b.states) for b in j.branches} | {
        frozenset(o.states) for o in measures if o.kind == "milestone"}
    out = np.zeros((n, len(measures), n_months))
    for i in range(n):
        raw = np.zeros((len(measures), n_months + 1))  # by month since intake, before windows and lags
        first: set = set()
        runs = dict.fromkeys(run_sets, 0)  # consecutive months in each set, up to last month
        cums = dict.fromkeys(run_sets, 0)
        where: list = [None]  # state occupied (None before intake)

        def occur_event(name, m, times=1):
            if name is None or times == 0:
                return
            for jj, o in enumerate(measures):
                if o.kind == "event" and o.event == name:
                    if o.count == "every":
                        raw[jj, m] += times
                    elif ("event", name) not in first:
                        raw[jj, m] += 1
            first.add(("event", name))

        def arrive(to, m):
            came = where[0]
            keys = []
            for jj, o in enumerate(measures):
                x = set(o.states)
                if o.kind == "entry" and to in x and (came is None or came not in x):
                    if o.count == "every":
                        raw[jj, m] += 1
                    elif ("entry", frozenset(x)) not in first:
                        raw[jj, m] += 1
                    keys.append(("entry", frozenset(x)))
            first.update(keys)
            for x in runs:
                if to not in x:
                    runs[x] = 0
            where[0] = to

        def draw(s):
            """The exit taken (or None) by one uniform draw."""
            u, acc, left = rng.random(), 0.0, 1.0
            for e in s.exits:
                p = value[e.probability]
                step = p * left if s.exits_in_order else p
                acc += step
                if s.exits_in_order:
                    left *= 1 - p
                if u < acc:
                    return e
            return None

        def start_timing(m, drawn):
            while state[where[0]].timing == "start" and state[where[0]].exits:
                assert where[0] not in drawn
                drawn.add(where[0])
                e = draw(state[where[0]])
                if e is None:
                    return
                occur_event(e.event, m)
                arrive(e.to, m)

        arrive(start, 0)
        months_in = 0
        for m in range(n_months):
            here = where[0]
            start_timing(m, set())
            if where[0] != here:
                months_in = 0
            s = where[0]
            for b in j.branches:  # step 3
                x = frozenset(b.states)
                if s in x and s != b.to and runs[x] + 1 == b.at_month:
                    if rng.random() < value[b.probability]:
                        occur_event(b.event, m)
                        arrive(b.to, m)
                        start_timing(m, set())
                        months_in = 0
                        break
            s = where[0]
            months_in += 1
            for x in runs:
                runs[x] = runs[x] + 1 if s in x else 0
                cums[x] += s in x
            reached = []
            for jj, o in enumerate(measures):  # step 4
                x = frozenset(o.states)
                if o.kind in ("occupancy", "status") and s in x:
                    raw[jj, m] += 1
                if o.kind == "milestone" and s in x:
                    key = ("milestone", x, o.months)
                    if o.consecutive and runs[x] == o.months and (o.count == "every" or key not in first):
                        raw[jj, m] += 1
                        reached.append(key)
                    if not o.consecutive and cums[x] == o.months:
                        raw[jj, m] += 1
            first.update(reached)
            for ev in {r.event for r in state[s].events}:
                occur_event(ev, m, rng.poisson(sum(value[r.rate] for r in state[s].events if r.event == ev)))
            st = state[s]
            if st.timing == "end" and st.exits and (e := draw(st)) is not None:  # step 5
                occur_event(e.event, m)
                if m + 1 < n_months:
                    arrive(e.to, m + 1)
                months_in = 0
            elif st.time_limit is not None and months_in == st.time_limit:  # step 6
                if m + 1 < n_months:
                    arrive(st.after_limit, m + 1)
                months_in = 0
        for jj, o in enumerate(measures):  # windows, census months, lags
            for m in range(n_months):
                inside = (o.window is None or m < o.window) and (o.kind != "status" or m in o.at_months)
                if inside and m + o.lag < n_months:
                    out[i, jj, m + o.lag] += raw[jj, m]
    assert names  # the state names are only read through `state`
    return out


def rotterdam(**changes) -> Journey:
    """A 6-month programme, then search -> job -> relapse; appointments while searching; a bonus contract."""
    params = dict(job_in_programme=0.06, job=0.08, relapse=0.05, appointments=0.7, permanent=0.3)
    params.update(changes)
    states = [
        State("programme", (Exit("job", "job_in_programme", "placed"),), time_limit=6, after_limit="search"),
        State("search", (Exit("job", "job"),), timing="start", events=(RecurrentEvent("appointment", "appointments"),)),
        State("job", (Exit("search", "relapse", "lost"),)),
        State("permanent_job", (Exit("search", "relapse"),)),
    ]
    return journey(states, start="programme", branches=[Branch(("job", "permanent_job"), 4, "permanent_job",
                                                                "permanent", event="made_permanent")], **params)


WORK = ("job", "permanent_job")
R_MEASURES = (
    Outcome("first_job", "entry", states=WORK), Outcome("jobs", "entry", states=WORK, count="every"),
    Outcome("work_13", "milestone", states=WORK, months=3), Outcome("works", "milestone", states=WORK, months=3,
                                                                    count="every"),
    Outcome("work_cum", "milestone", states=WORK, months=8, consecutive=False),
    Outcome("months_off", "occupancy", states=WORK, window=24, lag=3),
    Outcome("census", "status", states=("search",), at_months=(6, 12, 24)),
    Outcome("appointments", "event", event="appointment", count="every"),
    Outcome("first_appointment", "event", event="appointment", window=10, lag=2),
    Outcome("placed", "event", event="placed"), Outcome("lost", "event", event="lost", count="every"),
    Outcome("permanent", "entry", states=("permanent_job",)),
    Outcome("made_permanent", "event", event="made_permanent", count="every"),
)


def deterministic_cases():
    """Probabilities 0/1 (rates 0): one participant's journey is certain."""
    yield colour_kitchen(), CK_MEASURES, "training", dict(diploma=0.0, dropout=0.0, job_without_diploma=1.0,
                                                          relapse=0.0, long_term_contract=1.0)
    yield colour_kitchen(), CK_MEASURES, "training", dict(diploma=1.0, job_with_diploma=1.0, relapse=1.0,
                                                          long_term_contract=0.0)
    yield colour_kitchen(), CK_MEASURES, "training", dict(diploma=0.0, dropout=1.0, job_without_diploma=1.0,
                                                          relapse=0.0, long_term_contract=1.0, relapse_long_term=1.0)
    yield rotterdam(), R_MEASURES, "programme", dict(job_in_programme=0.0, job=1.0, relapse=0.0, appointments=0.0,
                                                     permanent=1.0)
    yield rotterdam(), R_MEASURES, "programme", dict(job_in_programme=1.0, job=1.0, relapse=1.0, appointments=0.0,
                                                     permanent=0.0)
    yield rotterdam(), R_MEASURES, "programme", dict(job_in_programme=0.0, job=0.0, relapse=1.0, appointments=0.0,
                                                     permanent=1.0)


@pytest.mark.parametrize("case", range(6))
def test_deterministic_machines_equal_the_brute_force_simulation(case):
    j, measures, start, setting = list(deterministic_cases())[case]
    p = np.array([setting.get(n, 0.0) for n in j.parameter_names])
    exact = one(j, measures, 40, p, start=((start, 1.0),))
    simulated = simulate(j, measures, p, start, 40, 1, np.random.default_rng(0))[0]
    np.testing.assert_array_equal(exact, simulated)
    assert exact.sum() > 0


@pytest.mark.parametrize("machine", ["colour_kitchen", "comparison", "rotterdam"])
def test_statistical_agreement_with_the_brute_force_simulation(machine):
    """Totals over the horizon and over three 12-month bands, per measure, within 4.5 standard errors.

    4,000 participants: a measure with per-participant sd 1 has SE 0.016, so a bias of 0.08 per
    participant (e.g. 8 % of a measure near 1) is missed with probability below 1 % (power > 0.99);
    with about 60 comparisons a false alarm has probability below 60 * 7e-6.
    """
    if machine == "rotterdam":
        j, measures, start = rotterdam(), R_MEASURES, "programme"
    else:
        start = "training" if machine == "colour_kitchen" else "job_search"
        j, measures = colour_kitchen(start), CK_MEASURES
    p = values(j)[0]
    n, months = 4000, 36
    exact = one(j, measures, months, p, start=((start, 1.0),))
    sim = simulate(j, measures, p, start, months, n, np.random.default_rng(2015))
    for lo, hi in ((0, months), (0, 12), (12, 24), (24, 36)):
        want = exact[:, lo:hi].sum(axis=1)
        per = sim[:, :, lo:hi].sum(axis=2)
        se = per.std(axis=0, ddof=1) / np.sqrt(n)
        z = np.where(se > 0, (per.mean(axis=0) - want) / np.where(se > 0, se, 1.0), 0.0)
        assert np.all(np.abs(z) < 4.5), (lo, hi, [(m.name, round(float(v), 2)) for m, v in zip(measures, z)])
        # a measure the simulation never saw is one the expectation (almost) never expects
        assert np.all((se > 0) | (want < 5.0 / n))


# --- 5. the reference simulator on random machines -------------------------------------------

needs_reference = pytest.mark.skipif(not HAVE_REFERENCE, reason="needs sibsim.reference of journeys")
machines = random_machines() if HAVE_REFERENCE else st.nothing()


def _one_start(m) -> np.ndarray:
    """Each cohort starts in the journey's first start state (the expectation is linear in the start)."""
    starts = np.zeros_like(m.starts)
    starts[:, m.journey.state_names.index(m.journey.start[0][0])] = 1.0
    return starts


@needs_reference
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(machines)
def test_deterministic_random_machines_equal_the_reference(m):
    """Probabilities rounded to 0 or 1 and rates 0: the expectation is the reference's outcome, cell by cell."""
    params = np.array([[0.0 if p.kind == "rate" else float(p.mean >= 0.5) for _, p in m.journey.parameters]])
    args = (m.journey, m.measures, params, np.array(m.intake_months), np.array(m.sizes), _one_start(m), m.n_months)
    reference = simulate_group_reference(*args, np.random.default_rng(0))
    np.testing.assert_array_equal(expected_group(*args), reference)


@needs_reference
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(machines)
def test_random_machines_agree_with_the_reference(m):
    """1,000 participants: each measure's total within 5 standard errors of the expectation.

    A bias of 0.2 standard deviations of a measure is missed with probability below 1e-6; when
    every participant has the same total (SE 0), that total is the expectation to 30/N (an
    outcome of probability below 1/N, worth at most the horizon's 24 months, may not show).
    """
    n = 1000
    args = (m.journey, m.measures, m.params, np.array([0]), np.array([n]), _one_start(m)[:1], m.n_months)
    want = expected_group(*args)[0, 0].sum(axis=1) / n
    rng = np.random.default_rng(12)
    per = np.stack([simulate_group_reference(*args[:3], [0], [1], args[5], m.n_months, rng)[0, 0].sum(axis=1)
                    for _ in range(n)])
    se = per.std(axis=0, ddof=1) / np.sqrt(n)
    gap = per.mean(axis=0) - want
    assert np.all(np.where(se > 0, np.abs(gap) < 5 * se, np.abs(gap) < 30 / n)), (gap, se)
