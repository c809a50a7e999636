"""The compiled engine agrees with the reference simulator on random state machines.

The family: 30 machines from tests/machines.py (time limits, duration branches, "start" states,
recurrent events, measures of every kind with windows and lags). For each machine and measure the
mean total per path (all cohorts and months) of the engine and of the reference are compared by a
two-sample z-test (pooled variance); the family of tests is Bonferroni-corrected to a 1e-3 chance
of a false alarm in all. A measure constant on both sides must be the same constant (a difference
between constants has a positive pooled variance and an unbounded z).

Power: the same family run through a deliberately biased engine (every exit probability times
1.15, the simultaneous sums kept at most 1) must fail it, else the test could not tell.

Deterministic machines (every probability rounded to 0 or 1, every rate 0, one start state) have
one possible history per participant: there the engine and the reference must agree exactly.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from scipy import stats

from sibsim.journey import Journey, Prior
from sibsim.reference import simulate_group_reference
from tests.machines import random_machines, sample_machines

engine = pytest.importorskip("sibsim.engine")

N_MACHINES = 30
FAMILY_ALPHA = 1e-3
REFERENCE_MONTHS = 30_000   # participant-months per machine in the reference (the slow side)
ENGINE_FACTOR = 10          # the engine runs 10 times the reference's paths


def paths_for(m, participant_months: int) -> int:
    """Paths (copies of the machine's cohorts) giving about ``participant_months``."""
    per_path = sum(size * max(m.n_months - intake, 0) for intake, size in zip(m.intake_months, m.sizes))
    return max(50, participant_months // max(per_path, 1))


def biased(m, factor: float = 1.15) -> np.ndarray:
    """The machine's parameters with every exit probability times ``factor`` (capped to stay valid)."""
    params = m.params.copy()
    names = m.journey.parameter_names
    for state in m.journey.states:
        cols = [names.index(ex.probability) for ex in state.exits]
        params[0, cols] = np.minimum(params[0, cols] * factor, 1.0)
        if not state.exits_in_order and params[0, cols].sum() > 1.0:
            params[0, cols] /= params[0, cols].sum()
    return params


def path_totals(simulate, m, params, n_paths, seed):
    """(n_paths, n_measures): each path's total count of each measure."""
    counts = simulate(m.journey, m.measures, np.repeat(params, n_paths, axis=0), np.array(m.intake_months),
                      np.array(m.sizes), m.starts, m.n_months, np.random.default_rng(seed))
    return counts.sum(axis=(1, 3)).astype(float)


@lru_cache(maxsize=1)
def family():
    """The machines, and the reference's path totals on each (computed once for both tests)."""
    machines = sample_machines(N_MACHINES)
    return [(m, path_totals(simulate_group_reference, m, m.params, paths_for(m, REFERENCE_MONTHS), seed=1000 + i))
            for i, m in enumerate(machines)]


def worst_disagreement(engine_params):
    """(pvalues, labels) of the family's z-tests, the engine run with ``engine_params(m)``."""
    pvalues, labels = [], []
    for i, (m, ref) in enumerate(family()):
        n = len(ref)
        eng = path_totals(engine.simulate_group, m, engine_params(m), ENGINE_FACTOR * n, seed=2000 + i)
        for k, measure in enumerate(m.measures):
            # Under the null both samples come from one distribution: the pooled variance is its
            # estimate (it stays right when one side saw none of a rare event).
            pooled = np.concatenate([ref[:, k], eng[:, k]]).var(ddof=1)
            if pooled == 0.0:
                continue  # the same constant on both sides
            z = (eng[:, k].mean() - ref[:, k].mean()) / np.sqrt(pooled * (1 / len(ref) + 1 / len(eng)))
            pvalues.append(2 * stats.norm.sf(abs(z)))
            labels.append(f"machine {i} measure {measure.name}: engine {eng[:, k].mean():.4g}, "
                          f"reference {ref[:, k].mean():.4g}, z {z:.1f}")
    return np.array(pvalues), labels


@pytest.mark.slow
def test_engine_matches_reference_on_random_machines():
    pvalues, labels = worst_disagreement(lambda m: m.params)
    threshold = FAMILY_ALPHA / len(pvalues)
    worst = int(np.argmin(pvalues))
    assert pvalues[worst] >= threshold, f"{labels[worst]} (p {pvalues[worst]:.2g} < {threshold:.2g})"


@pytest.mark.slow
def test_a_biased_engine_fails_the_agreement_test():
    pvalues, _labels = worst_disagreement(biased)
    assert pvalues.min() < FAMILY_ALPHA / len(pvalues), "the agreement test has no power"


def deterministic(m):
    """The machine with its probabilities rounded to 0 or 1, no recurrent events and one start state."""
    j = m.journey
    parameters = tuple((name, Prior(0.0 if prior.kind == "rate" else float(prior.mean >= 0.5), kind=prior.kind))
                       for name, prior in j.parameters)
    return dataclasses.replace(m, journey=Journey(j.states, ((j.start[0][0], 1.0),), j.branches, parameters))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_machines())
def test_engine_matches_reference_exactly_on_deterministic_machines(m):
    m = deterministic(m)  # simultaneous exits summing to at most 0.9 hold at most one 1 after rounding
    expected = simulate_group_reference(m.journey, m.measures, m.params, m.intake_months, m.sizes, m.starts,
                                        m.n_months, np.random.default_rng(0))
    counts = engine.simulate_group(m.journey, m.measures, m.params, np.array(m.intake_months), np.array(m.sizes),
                                   m.starts, m.n_months, np.random.default_rng(0))
    np.testing.assert_array_equal(counts, expected)
