"""Calendar-time regimes (shocks, sibsim.uncertainty) in the engine, the reference and the exact expectation.

1. Hand-computed: one state with a monthly exit probability cut for some calendar months; the
   expected exits per month are ``N S(m) p_m`` (S the survival to month m), for "end" and "start"
   timing, to within Monte Carlo error, and exactly in the exact expectation.
2. Deterministic machines (probabilities 0 or 1) whose every exit and branch is switched off in a
   middle regime: engine and reference agree exactly.
3. Random machines (tests/machines.py) with three regimes (hazards x 0.5, then x 1.6): engine and
   reference agree (z-tests, Bonferroni over the family); an engine not told of the regimes fails.
4. Colour Kitchen under a recession: the engine's mean counts equal the exact expectation.
5. One regime is the engine without regimes, bit for bit (what keeps every golden unchanged).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from scipy import stats

from sibsim import engine
from sibsim.expectation import expected_group
from sibsim.journey import Exit, Journey, Outcome, Prior, State
from sibsim.reference import simulate_group_reference
from sibsim.uncertainty import Regimes, scale_hazard
from tests.machines import colour_kitchen_journey, random_machines, sample_machines
from tests.test_engine_vs_reference import deterministic

FAMILY_ALPHA = 1e-3


def one_state(timing: str, p: float) -> Journey:
    states = (State("a", exits=(Exit("b", "p", "left"),), timing=timing), State("b"))
    return Journey(states, (("a", 1.0),), (), (("p", Prior(p)),))


def cut_regimes(p: float, n_paths: int, edges, values) -> Regimes:
    """Regimes of the one parameter ``p``: ``values[r]`` from calendar month ``edges[r]`` on."""
    params = np.array(values, dtype=float)[None, :, None].repeat(n_paths, axis=0)
    return Regimes(np.array(edges, dtype=np.int64), params)


@pytest.mark.parametrize("timing", ["end", "start"])
def test_exits_per_month_follow_the_cut_hazard(timing):
    T, n = 24, 200_000
    p = np.full(T, 0.10)
    p[6:15] = 0.04  # a shock from month 6 for 9 months
    j = one_state(timing, 0.10)
    measures = (Outcome("left", "event", event="left"),)
    reg = cut_regimes(0.10, 1, [0, 6, 15], [0.10, 0.04, 0.10])
    counts = engine.simulate_group(j, measures, np.full((1, 1), 0.10), np.array([0]), np.array([n]),
                                   np.array([[1.0, 0.0]]), T, np.random.default_rng(3), regimes=reg)[0, 0, 0]
    survive = np.concatenate([[1.0], np.cumprod(1 - p)[:-1]])
    expected = n * survive * p  # exits dated in month m: the month's trial ("end": at its end, "start": at its start)
    sd = np.sqrt(expected * (1 - survive * p))
    z = (counts - expected) / sd
    assert np.abs(z).max() < 4.5, (counts, expected.round())
    exact = expected_group(j, measures, np.full((1, 1), 0.10), np.array([0]), np.array([1]),
                           np.array([[1.0, 0.0]]), T, regimes=reg)[0, 0, 0]
    np.testing.assert_allclose(exact, survive * p, rtol=1e-12, atol=1e-15)


def test_one_regime_is_the_engine_without_regimes_bit_for_bit():
    j = colour_kitchen_journey([(n, Prior(v)) for n, v in [("diploma", 0.1), ("dropout", 0.01),
                                ("job_with_diploma", 0.04), ("job_without_diploma", 0.025), ("relapse", 0.035),
                                ("relapse_long_term", 0.01), ("long_term_contract", 0.5)]])
    measures = (Outcome("job", "entry", states=("job", "job_with_diploma")),
                Outcome("d", "event", event="diploma"))
    params = np.tile([0.1, 0.01, 0.04, 0.025, 0.035, 0.01, 0.5], (40, 1))
    args = (j, measures, params, np.array([0, 3]), np.array([20, 20]), np.eye(9)[[0, 0]], 36)
    plain = engine.simulate_group(*args, np.random.default_rng(5), kernel="generic")
    one = engine.simulate_group(*args, np.random.default_rng(5), kernel="generic",
                                regimes=Regimes(np.array([0]), params[:, None, :]))
    np.testing.assert_array_equal(plain, one)


def test_scale_hazard_known_values():
    np.testing.assert_allclose(scale_hazard(np.array([0.05]), np.array([0.7]), False), [1 - 0.95**0.7], rtol=1e-13)
    assert scale_hazard(np.array([0.05]), np.array([0.7]), False)[0] == pytest.approx(0.0352684, abs=1e-7)
    np.testing.assert_array_equal(scale_hazard(np.array([0.0, 1.0, 1.0, 0.3]), np.array([2.0, 0.5, 0.0, 0.0]), False),
                                  [0.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(scale_hazard(np.array([0.2]), np.array([1.5]), True), [0.3], rtol=1e-15)


# --- deterministic machines: exact agreement -----------------------------------------------------

def frozen_middle(m, lo: int, hi: int) -> Regimes:
    """Regimes of a machine: its parameters, every probability and rate 0 in months lo .. hi - 1."""
    base = m.params
    frozen = np.zeros_like(base)
    edges = [0] + [e for e in (lo, hi) if 0 < e < m.n_months]
    edges = sorted(set(edges))
    values = [frozen if lo <= e < hi else base for e in edges]
    return Regimes(np.array(edges, dtype=np.int64), np.stack(values, axis=1))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_machines())
def test_engine_matches_reference_exactly_with_a_frozen_regime(m):
    m = deterministic(m)
    lo, hi = m.n_months // 3, (2 * m.n_months) // 3 + 1
    reg = frozen_middle(m, lo, hi)
    expected = simulate_group_reference(m.journey, m.measures, reg.monthly(m.n_months), m.intake_months, m.sizes,
                                        m.starts, m.n_months, np.random.default_rng(0))
    counts = engine.simulate_group(m.journey, m.measures, m.params, np.array(m.intake_months), np.array(m.sizes),
                                   m.starts, m.n_months, np.random.default_rng(0), regimes=reg)
    np.testing.assert_array_equal(counts, expected)


# --- random machines: statistical agreement, with power --------------------------------------------

def scaled_regimes(m, n_paths: int) -> Regimes:
    """Three regimes: the machine's parameters, their hazards x 0.5, then x 1.6 (simultaneous sums kept <= 1)."""
    base = m.params[0]
    kinds = [prior.kind == "rate" for _, prior in m.journey.parameters]
    names = m.journey.parameter_names
    rows = []
    for f in (1.0, 0.5, 1.6):
        row = np.array([scale_hazard(np.array([v]), np.array([f]), k)[0] for v, k in zip(base, kinds)])
        for s in m.journey.states:
            cols = [names.index(e.probability) for e in s.exits]
            if not s.exits_in_order and len(cols) > 1 and row[cols].sum() > 1:
                row[cols] = base[cols]  # keep a valid state: this state unscaled
        rows.append(row)
    rows[0] = base
    edges = sorted({0, max(1, m.n_months // 3), max(2, (2 * m.n_months) // 3)})
    params = np.stack(rows[:len(edges)])[None].repeat(n_paths, axis=0)
    return Regimes(np.array(edges, dtype=np.int64), params)


def totals(counts) -> np.ndarray:
    return counts.sum(axis=(1, 3)).astype(float)


_FAMILY = {}


def family():
    if not _FAMILY:
        machines = [m for m in sample_machines(24) if m.n_months >= 3]
        out = []
        for i, m in enumerate(machines):
            per_path = sum(s * max(m.n_months - a, 0) for a, s in zip(m.intake_months, m.sizes))
            n = max(40, 20_000 // max(per_path, 1))
            reg = scaled_regimes(m, n)
            ref = simulate_group_reference(m.journey, m.measures, reg.monthly(m.n_months), m.intake_months, m.sizes,
                                           m.starts, m.n_months, np.random.default_rng(100 + i))
            out.append((m, n, totals(ref)))
        _FAMILY["machines"] = out
    return _FAMILY["machines"]


def pvalues(tell_engine: bool) -> tuple[np.ndarray, list]:
    ps, labels = [], []
    for i, (m, n, ref) in enumerate(family()):
        n_eng = 10 * n
        reg = scaled_regimes(m, n_eng)
        params = np.repeat(m.params, n_eng, axis=0)
        eng = totals(engine.simulate_group(m.journey, m.measures, params, np.array(m.intake_months), np.array(m.sizes),
                                           m.starts, m.n_months, np.random.default_rng(200 + i),
                                           regimes=reg if tell_engine else None))
        for k, measure in enumerate(m.measures):
            pooled = np.concatenate([ref[:, k], eng[:, k]]).var(ddof=1)
            if pooled == 0.0:
                continue
            z = (eng[:, k].mean() - ref[:, k].mean()) / np.sqrt(pooled * (1 / len(ref) + 1 / len(eng)))
            ps.append(2 * stats.norm.sf(abs(z)))
            labels.append(f"machine {i} {measure.name}: engine {eng[:, k].mean():.4g} reference {ref[:, k].mean():.4g}")
    return np.array(ps), labels


@pytest.mark.slow
def test_engine_matches_reference_under_regimes_on_random_machines():
    ps, labels = pvalues(True)
    worst = int(np.argmin(ps))
    assert ps[worst] >= FAMILY_ALPHA / len(ps), labels[worst]


@pytest.mark.slow
def test_an_engine_blind_to_the_regimes_fails_the_agreement_test():
    ps, _ = pvalues(False)
    assert ps.min() < FAMILY_ALPHA / len(ps), "the agreement test has no power"


# --- Colour Kitchen under a recession: engine = exact expectation ------------------------------------

def test_colour_kitchen_recession_engine_mean_equals_the_exact_expectation():
    values = [("diploma", 0.105), ("dropout", 0.012), ("job_with_diploma", 0.04), ("job_without_diploma", 0.025),
              ("relapse", 0.035), ("relapse_long_term", 0.01), ("long_term_contract", 0.49)]
    j = colour_kitchen_journey([(n, Prior(v)) for n, v in values])
    measures = (Outcome("job_start", "entry", states=("job", "job_with_diploma", "long_term_job",
                                                      "long_term_job_with_diploma")),
                Outcome("sustained", "milestone", states=("job", "job_with_diploma", "long_term_job",
                                                          "long_term_job_with_diploma"), months=6),
                Outcome("ltc", "entry", states=("long_term_job", "long_term_job_with_diploma")))
    T, n_paths = 48, 400
    base = np.array([v for _, v in values])
    cut = base.copy()
    cut[2:4] = scale_hazard(base[2:4], np.array([0.7, 0.7]), False)
    params = np.tile(base, (n_paths, 1))
    reg = Regimes(np.array([0, 12, 30]), np.stack([params, np.tile(cut, (n_paths, 1)), params], axis=1))
    intake, sizes = np.array([0, 6, 14]), np.array([30, 30, 30])
    starts = np.zeros((3, 9))
    starts[:, 0] = 1.0
    counts = engine.simulate_group(j, measures, params, intake, sizes, starts, T, np.random.default_rng(11),
                                   regimes=reg).sum(axis=3).astype(float)  # (paths, cohorts, measures)
    exact = expected_group(j, measures, params[:1], intake, sizes, starts, T,
                           regimes=Regimes(reg.starts, reg.params[:1])).sum(axis=3)[0]
    without = expected_group(j, measures, params[:1], intake, sizes, starts, T).sum(axis=3)[0]
    z = (counts.mean(axis=0) - exact) / (counts.std(axis=0, ddof=1) / np.sqrt(n_paths))
    assert np.abs(z).max() < 4.0, (counts.mean(axis=0), exact)
    z_without = (counts.mean(axis=0) - without) / (counts.std(axis=0, ddof=1) / np.sqrt(n_paths))
    assert np.abs(z_without).max() > 6.0  # the recession is visible: the test can tell
