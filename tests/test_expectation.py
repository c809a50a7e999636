"""Tests of sibsim.expectation: exact expected outcomes of the journey (no sampling).

1. Closed forms on simple journeys (job search, training, the two-state employment chain).
2. Exactness on deterministic journeys (every probability 0 or 1): the expectation *is* the
   outcome of the reference chain and of the engine.
3. Agreement with the Monte Carlo engine on the Colour Kitchen journeys (fixed probabilities),
   cell by cell with a Bonferroni bound, and tightly on the totals.
4. Per-path parameters and invariants.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sibsim.contracts import JOURNEY_PROBABILITIES, OUTCOMES, Prior
from sibsim.expectation import edge_probabilities, expected_group, journey_chain
from sibsim.montecarlo import draw_parameters, simulate_group
from sibsim.reference import Probabilities, simulate_group_reference

DIPLOMA, JOB_START, JOB_SUSTAINED, LONG_TERM_CONTRACT = range(len(OUTCOMES))
EXACT = dict(rtol=1e-12, atol=1e-12)


def fixed(n_paths: int = 1, **probabilities: float) -> dict[str, np.ndarray]:
    """Journey parameters, the same on every path (missing ones are 0)."""
    return {k: np.full(n_paths, float(probabilities.get(k, 0.0))) for k in JOURNEY_PROBABILITIES}


def one_participant(probabilities: dict, L: int, S: int, T: int):
    """Expected events (4, T) and employed (T,) of one participant entering in month 0."""
    events, employed = expected_group(fixed(**probabilities), L, np.array([0]), np.array([1]), T, S)
    return events[0, 0], employed[0, 0]


# --- 1. closed forms ------------------------------------------------------------------
def test_job_search_without_relapse():
    """L = 0, no relapse: E[first jobs by m] = n (1 - (1-p)^(m+1)) = E[employed at m]; sustained and
    long-term contracts follow S - 1 months later; nothing before intake."""
    p, S, q, T = 0.07, 4, 0.3, 30
    intakes, sizes = np.array([0, 5]), np.array([10, 3])
    events, employed = expected_group(fixed(2, job_without_diploma=p, job_with_diploma=0.9, long_term_contract=q),
                                      0, intakes, sizes, T, S)
    cum = events.cumsum(axis=-1)
    job_by = lambda m: 1.0 - (1.0 - p) ** (m + 1) if m >= 0 else 0.0  # noqa: E731
    assert not events[:, :, DIPLOMA].any()
    for c, (intake, size) in enumerate(zip(intakes, sizes)):
        assert not events[:, c, :, :intake].any() and not employed[:, c, :intake].any()
        for m in range(T - intake):
            month = intake + m
            np.testing.assert_allclose(cum[:, c, JOB_START, month], size * job_by(m), **EXACT)
            np.testing.assert_allclose(employed[:, c, month], size * job_by(m), **EXACT)
            np.testing.assert_allclose(cum[:, c, JOB_SUSTAINED, month], size * job_by(m - S + 1), **EXACT)
            np.testing.assert_allclose(cum[:, c, LONG_TERM_CONTRACT, month], size * q * job_by(m - S + 1), **EXACT)


def test_training_diploma():
    """P(diploma in training month k) = p_d (1-h)^k for k < L, h = 1-(1-p_d)(1-p_x); in all p_d/h (1-(1-h)^L)."""
    p_d, p_x, L, T = 0.12, 0.05, 6, 20
    h = 1.0 - (1.0 - p_d) * (1.0 - p_x)
    events, employed = one_participant(dict(diploma=p_d, dropout=p_x, job_with_diploma=0.3), L, 3, T)
    k = np.arange(T)
    np.testing.assert_allclose(events[DIPLOMA], np.where(k < L, p_d * (1.0 - h) ** k, 0.0), **EXACT)
    assert events[DIPLOMA].sum() == pytest.approx(p_d / h * (1.0 - (1.0 - h) ** L), abs=1e-14)
    assert employed[0] == 0.0  # the intake month is spent in training


@pytest.mark.parametrize("S", [1, 3])
def test_employment_two_state_chain(S):
    """L = 0, relapse_long_term == relapse: employment is the two-state chain
    e_m = p/(p+r) (1 - (1-p-r)^(m+1)) whatever S and the long-term contract."""
    p, r, T = 0.10, 0.12, 40
    events, employed = one_participant(dict(job_without_diploma=p, relapse=r, relapse_long_term=r,
                                            long_term_contract=0.4), 0, S, T)
    m = np.arange(T)
    np.testing.assert_allclose(employed, p / (p + r) * (1.0 - (1.0 - p - r) ** (m + 1)), **EXACT)
    np.testing.assert_allclose(events[JOB_START].cumsum(), 1.0 - (1.0 - p) ** (m + 1), **EXACT)
    if S == 1:  # every job is sustained in its first month: the first sustained job is the first job
        np.testing.assert_allclose(events[JOB_SUSTAINED], events[JOB_START], **EXACT)


# --- 2. deterministic journeys: expectation = outcome --------------------------------
zero_one = st.sampled_from([0.0, 1.0])


@settings(max_examples=150, deadline=None)
@given(probs=st.tuples(*[zero_one] * len(JOURNEY_PROBABILITIES)), L=st.integers(0, 4), S=st.integers(1, 4),
       intake=st.integers(0, 5), T=st.integers(1, 16))
def test_deterministic_journeys_are_exact(probs, L, S, intake, T):
    """With probabilities 0 and 1 the chain is deterministic: expectation, reference and engine coincide."""
    p = dict(zip(JOURNEY_PROBABILITIES, probs))
    intakes, sizes = np.array([intake]), np.array([2], dtype=np.int64)
    events, employed = expected_group(fixed(**p), L, intakes, sizes, T, S)
    ref_events, ref_employed = simulate_group_reference([Probabilities(**p)], L, [intake], [2], T, S, random.Random(0))
    eng_events, eng_employed = simulate_group(fixed(**p), L, intakes, sizes, T, S, np.random.default_rng(0))
    for other_events, other_employed in ((ref_events, ref_employed), (eng_events, eng_employed)):
        np.testing.assert_allclose(events, other_events, atol=1e-12)
        np.testing.assert_allclose(employed, other_employed, atol=1e-12)


# --- 3. agreement with the Monte Carlo engine ----------------------------------------
@pytest.fixture(scope="module")
def colour_kitchen_runs(colour_kitchen):
    """Engine runs and expectations of the treated and comparison journeys, probabilities fixed at the prior means."""
    n_paths, T, S = 4000, colour_kitchen.horizon_months, colour_kitchen.sustained_job_months
    intakes = np.array([c.intake_month for c in colour_kitchen.cohorts])
    sizes = np.array([c.size for c in colour_kitchen.cohorts], dtype=np.int64)
    runs = []
    for seed, journey in enumerate((colour_kitchen.journey, colour_kitchen.comparison.journey)):
        journey = replace(journey, **{k: Prior(prior.mean) for k, prior in journey.priors().items()})
        rng = np.random.default_rng(2015 + seed)
        params = draw_parameters(journey, rng, n_paths)
        sampled = simulate_group(params, journey.max_training_months, intakes, sizes, T, S, rng)
        expected = expected_group({k: v[:1] for k, v in params.items()}, journey.max_training_months,
                                  intakes, sizes, T, S)
        runs.append((sizes, n_paths, sampled, (expected[0][0], expected[1][0])))
    return runs


def test_engine_agrees_cell_by_cell(colour_kitchen_runs):
    """Per (cohort, outcome, month): the mean cumulative first events and the mean employed match the
    expectation. With fixed probabilities each count is Binomial(size, expected / size) on every path,
    so the standard errors are exact; Bonferroni over all cells (family-wise error 1e-3)."""
    checks = []  # (observed mean, expected, standard error) per cell
    for sizes, n_paths, (events, employed), (x_events, x_employed) in colour_kitchen_runs:
        for observed, expected, size in (
            (events.cumsum(axis=-1).mean(axis=0), x_events.cumsum(axis=-1), sizes[:, None, None]),
            (employed.mean(axis=0), x_employed, sizes[:, None]),
        ):
            share = np.clip(expected / size, 0.0, 1.0)
            se = np.sqrt(size * share * (1.0 - share) / n_paths)
            checks.append((observed.ravel(), expected.ravel(), se.ravel()))
    observed, expected, se = (np.concatenate(x) for x in zip(*checks))
    n_paths = colour_kitchen_runs[0][1]
    random_cells = se > 1e-12
    z = stats.norm.isf(1e-3 / (2 * random_cells.sum()))
    # deterministic cells (before intake, no diploma without training) match exactly
    np.testing.assert_allclose(observed[~random_cells], expected[~random_cells], atol=1e-9)
    excess = np.abs(observed - expected) - (z * se + 1.0 / n_paths)  # one trial of continuity
    worst = np.argmax(excess)
    assert excess[worst] <= 0, (f"cell {worst}: observed {observed[worst]:.4f}, expected {expected[worst]:.4f}, "
                                f"SE {se[worst]:.2e}, z bound {z:.2f}")


def test_engine_agrees_on_totals(colour_kitchen_runs):
    """Totals over the horizon (all cohorts): within 4 SEs and 1.5 % of the expectation."""
    for sizes, n_paths, (events, employed), (x_events, x_employed) in colour_kitchen_runs:
        per_path = np.concatenate([events.sum(axis=(1, 3)), employed.sum(axis=(1, 2))[:, None]], axis=1)
        expected = np.append(x_events.sum(axis=(0, 2)), x_employed.sum())
        se = per_path.std(axis=0, ddof=1) / np.sqrt(n_paths)
        mean = per_path.mean(axis=0)
        assert np.all(np.abs(mean - expected) <= 4.0 * se + 1e-9), (mean, expected, se)
        assert np.all(np.abs(mean - expected) <= 0.015 * expected + 1e-9), (mean, expected)


# --- 4. per-path parameters and invariants --------------------------------------------
def test_per_path_parameters():
    """Each path's expectation depends on its own probabilities only."""
    rng = np.random.default_rng(7)
    n_paths, L, S, T = 6, 3, 2, 24
    params = {k: rng.uniform(0.0, 0.6, n_paths) for k in JOURNEY_PROBABILITIES}
    params["diploma"][0], params["relapse"][1], params["long_term_contract"][2] = 1.0, 0.0, 1.0
    intakes, sizes = np.array([0, 3, 10]), np.array([5, 8, 2])
    events, employed = expected_group(params, L, intakes, sizes, T, S)
    for i in range(n_paths):
        one = expected_group({k: v[i:i + 1] for k, v in params.items()}, L, intakes, sizes, T, S)
        np.testing.assert_allclose(events[i], one[0][0], **EXACT)
        np.testing.assert_allclose(employed[i], one[1][0], **EXACT)


probability = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))


@settings(max_examples=100, deadline=None)
@given(probs=st.lists(probability, min_size=7, max_size=7), L=st.integers(0, 5), S=st.integers(1, 5),
       T=st.integers(1, 24), cohorts=st.lists(st.tuples(st.integers(0, 26), st.integers(1, 30)), min_size=1,
                                              max_size=3))
def test_invariants(probs, L, S, T, cohorts):
    """Cumulative first events never exceed the cohort size and come in order (long-term contract <=
    sustained <= job start); employed in [0, size] and never above first jobs; nothing before intake."""
    intakes, sizes = (np.array(x) for x in zip(*cohorts))
    events, employed = expected_group(fixed(**dict(zip(JOURNEY_PROBABILITIES, probs))), L, intakes, sizes, T, S)
    assert events.shape == (1, len(cohorts), 4, T) and employed.shape == (1, len(cohorts), T)
    eps = 1e-12 * sizes.max()
    cum = events[0].cumsum(axis=-1)
    size = sizes[:, None]
    assert events.min() >= -eps and employed.min() >= -eps
    assert np.all(cum <= size[:, :, None] + eps) and np.all(employed[0] <= size + eps)
    assert np.all(cum[:, LONG_TERM_CONTRACT] <= cum[:, JOB_SUSTAINED] + eps)
    assert np.all(cum[:, JOB_SUSTAINED] <= cum[:, JOB_START] + eps)
    assert np.all(employed[0] <= cum[:, JOB_START] + eps)
    for c, intake in enumerate(intakes):
        assert not events[0, c, :, :intake].any() and not employed[0, c, :intake].any()


@pytest.mark.parametrize("L, S, n_states", [(12, 6, 56), (0, 6, 22), (0, 1, 6), (2, 1, 14)])
def test_chain_is_stochastic(L, S, n_states):
    """The outgoing edge probabilities of every state sum to 1 (for any probabilities)."""
    chain = journey_chain(L, S)
    assert chain.n_states == n_states
    rng = np.random.default_rng(3)
    weight = edge_probabilities(chain, {k: np.append(rng.random(5), [0.0, 1.0]) for k in JOURNEY_PROBABILITIES})
    out = np.zeros((7, chain.n_states))
    np.add.at(out.T, chain.src, weight.T)
    np.testing.assert_allclose(out, 1.0, rtol=0, atol=1e-14)
