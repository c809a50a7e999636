"""Statistical checks of the Monte Carlo engine (sibsim.engine, sibsim.montecarlo) on whole contracts.

What the other engine tests do not already cover (tests/test_engine_kernel.py: exact machines and
the kernel's draw order; tests/test_engine_vs_reference.py: random machines, fixed parameters, mean
totals; tests/test_reference_machine.py and tests/test_expectation_machine.py: closed forms of the
reference and of the exact expectation):

1. Analytic convergence of the engine itself on the Colour Kitchen chain (month by month: first
   job, employment with relapses, first sustained job and long-term contract by exact forward
   recursion, diplomas and exits of training), on parameter uncertainty (a Beta-mixed job
   probability, a Gamma-mixed Poisson rate) and on the whole distribution of a sojourn (chi-square).
2. The documented draw order of :func:`sibsim.montecarlo.simulate_outcomes`, replayed by hand.
3. Engine vs reference on the Colour Kitchen contract end to end (priors, both groups, a comparison
   group of another size, costs and settled cash through :func:`sibsim.cashflows.settle`), with a
   Bonferroni-corrected family of tests and a power check (a biased engine must fail it).
4. Reproducibility: same seed, same numbers, whatever the number of workers.

Every test uses fixed seeds, so it is deterministic; the thresholds are chosen so that a correct
engine would fail them with small probability for *any* seed (4 standard errors on a few dozen
checks; Bonferroni for the large engine-vs-reference comparison).
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from sibsim import load_scenario, simulate
from sibsim.cashflows import settle
from sibsim.engine import draw_parameters, simulate_group
from sibsim.journey import Exit, Journey, Outcome, Prior, RecurrentEvent, State
from sibsim.montecarlo import (GroupOutcomes, Outcomes, parameter_dict, split_counts, start_distributions,
                               simulate_outcomes)
from sibsim.reference import draw_parameters_reference, simulate_group_reference

from .conftest import SCENARIOS

Z = 4.0  # tolerance of the analytic checks, in standard errors
CK_FILE = SCENARIOS / "utrecht_colour_kitchen.toml"
#: Colour Kitchen's measures, in Contract.measures order: 4 outcomes, then the 2 cost items.
DIPLOMA, JOB_START, JOB_SUSTAINED, LONG_TERM_CONTRACT, BIJSTAND, IN_WORK = range(6)
S = 6  # months of a sustained job, and of a job before the long-term-contract branch


@lru_cache(maxsize=1)
def ck():
    return load_scenario(CK_FILE)


# --- helpers -------------------------------------------------------------------------------------
def ck_group(values: dict, start: str, intakes, sizes, n_months: int, n_paths: int, seed: int) -> np.ndarray:
    """The engine on Colour Kitchen's journey and measures, every parameter fixed (missing ones 0).

    Returns counts (paths, cohorts, 6 measures, months).
    """
    contract = ck()
    names = contract.journey.parameter_names
    journey = contract.journey.with_parameters({n: Prior(float(values.get(n, 0.0))) for n in names})
    params = draw_parameters(journey, np.random.default_rng(seed), n_paths)  # fixed: nothing drawn
    starts = np.zeros((len(intakes), len(journey.states)))
    starts[:, journey.state_names.index(start)] = 1.0
    return simulate_group(journey, contract.measures, params, np.array(intakes), np.array(sizes, dtype=np.int64),
                          starts, n_months, np.random.default_rng(seed))


def assert_share(observed: float, expected: float, n: int, label: str):
    """A share of n independent Bernoulli trials is within Z binomial SEs (+ one trial) of its expectation."""
    se = math.sqrt(expected * (1.0 - expected) / n)
    assert abs(observed - expected) <= Z * se + 1.0 / n, (
        f"{label}: observed {observed:.5f}, expected {expected:.5f} (SE {se:.2e}, n {n})")


def first_passage(p: float, p_r: float, S: int, q: float, n_months: int) -> np.ndarray:
    """Exact P(first absorption by month offset m), m = 0..n-1, of the no-training monthly chain.

    Written from the monthly rules, independently of the engine: a participant starts searching
    (job probability p per month, the first month included); a job ends with probability p_r per
    month (at the end of its last month; the next month is spent on benefits, the job trials resume
    the month after); a job reaching S months is absorbed with probability q (q = 1: first sustained
    job; q = long_term_contract: first long-term contract), else it goes on at relapse rate p_r.
    Forward equation on the state distribution at the end of each month.
    """
    search, work, beyond, absorbed = 1.0, np.zeros(S + 1), 0.0, 0.0  # work[d]: in a job for d < S months
    out = np.zeros(n_months)
    for m in range(n_months):
        started = search * p
        relapsed = (work.sum() + beyond) * p_r
        new_work = np.zeros(S + 1)
        new_work[1] = started
        new_work[2:] = work[1:-1] * (1.0 - p_r)
        reaching = new_work[S]  # jobs reaching S months this month
        new_work[S] = 0.0
        absorbed += reaching * q
        beyond = beyond * (1.0 - p_r) + reaching * (1.0 - q)
        search = search * (1.0 - p) + relapsed
        work = new_work
        out[m] = absorbed
        assert abs(search + work.sum() + beyond + absorbed - 1.0) < 1e-12
    return out


# --- 1. analytic convergence ---------------------------------------------------------------------
def test_job_search_without_training_or_relapse():
    """Start in job_search, no relapse: P(first job by offset m) = 1 - (1-p)^(m+1) = P(employed at m)
    (a "start"-timing search: a job can start in the first month); sustained by m = job by m - S + 1;
    long-term contract (the branch at S months) = that times q."""
    p, q, T = 0.07, 0.3, 30
    intakes, sizes, n_paths = [0, 5], [40, 40], 2500
    counts = ck_group(dict(job_without_diploma=p, job_with_diploma=0.9, long_term_contract=q), "job_search",
                      intakes, sizes, T, n_paths, seed=11)
    cum = counts.cumsum(axis=-1).sum(axis=0)  # (cohorts, measures, T)
    emp = counts[:, :, IN_WORK].sum(axis=0)
    job_by = lambda m: 1.0 - (1.0 - p) ** (m + 1) if m >= 0 else 0.0  # noqa: E731
    assert counts[:, :, DIPLOMA].sum() == 0
    for c, (intake, size) in enumerate(zip(intakes, sizes)):
        n = n_paths * size
        assert counts[:, c, :, :intake].sum() == 0
        # everyone is on bijstand or in work (in work: top-up) from intake on
        np.testing.assert_array_equal(counts[:, c, BIJSTAND, intake:] + counts[:, c, IN_WORK, intake:], size)
        for m in sorted({0, 1, 2, 3, 5, 10, 17, T - 1 - intake}):
            month = intake + m
            assert_share(cum[c, JOB_START, month] / n, job_by(m), n, f"cohort {c} job start by +{m}")
            assert_share(emp[c, month] / n, job_by(m), n, f"cohort {c} employed at +{m}")
            assert_share(cum[c, JOB_SUSTAINED, month] / n, job_by(m - S + 1), n, f"cohort {c} sustained by +{m}")
            assert_share(cum[c, LONG_TERM_CONTRACT, month] / n, q * job_by(m - S + 1), n, f"cohort {c} ltc by +{m}")


@pytest.mark.parametrize("relapse_long_term", [0.12, 0.02])
def test_relapse_employment_and_sustained_jobs(relapse_long_term):
    """Relapse p_r: first job unchanged; with relapse_long_term == p_r employment is the two-state
    chain e_m = p/(p+p_r) (1 - (1-p-p_r)^(m+1)) (the relapse month off work, trials from the next);
    first sustained job / first long-term contract follow the exact forward recursion (for m <= S:
    P(job by m-S+1) (1-p_r)^(S-1))."""
    p, p_r, q, T = 0.10, 0.12, 0.4, 40
    intakes, sizes, n_paths = [0, 7], [40, 40], 2500
    counts = ck_group(dict(job_without_diploma=p, relapse=p_r, relapse_long_term=relapse_long_term,
                           long_term_contract=q), "job_search", intakes, sizes, T, n_paths, seed=12)
    cum = counts.cumsum(axis=-1).sum(axis=0)
    emp = counts[:, :, IN_WORK].sum(axis=0)
    sustained = first_passage(p, p_r, S, 1.0, T)
    contract = first_passage(p, p_r, S, q, T)
    # the recursion agrees with the closed form while only first jobs can be sustained
    for m in range(S + 1):
        closed = (1.0 - (1.0 - p) ** (m - S + 2)) * (1.0 - p_r) ** (S - 1) if m >= S - 1 else 0.0
        assert sustained[m] == pytest.approx(closed, abs=1e-14)
    for c, (intake, size) in enumerate(zip(intakes, sizes)):
        n = n_paths * size
        for m in sorted({0, 1, S - 1, S, S + 1, 8, 15, 24, T - 1 - intake}):
            month = intake + m
            assert_share(cum[c, JOB_START, month] / n, 1.0 - (1.0 - p) ** (m + 1), n, f"job start by +{m}")
            assert_share(cum[c, JOB_SUSTAINED, month] / n, sustained[m], n, f"sustained by +{m}")
            assert_share(cum[c, LONG_TERM_CONTRACT, month] / n, contract[m], n, f"long-term contract by +{m}")
            if relapse_long_term == p_r:
                e = p / (p + p_r) * (1.0 - (1.0 - p - p_r) ** (m + 1))
                assert_share(emp[c, month] / n, e, n, f"employed at +{m}")


def test_training_diploma_and_exit():
    """Training (12 months at most; the diploma first, dropout among the rest): P(diploma by offset m)
    = p_d/h (1 - (1-h)^min(m+1, L)), h = 1-(1-p_d)(1-p_x); the job search starts the month after
    leaving training (or after L months), with the diploma's job probability after a diploma."""
    p_d, p_x, L, p_w, p_n, T = 0.12, 0.05, 12, 0.20, 0.08, 36
    h = 1.0 - (1.0 - p_d) * (1.0 - p_x)
    intakes, sizes, n_paths = [0, 4], [40, 40], 2500
    counts = ck_group(dict(diploma=p_d, dropout=p_x, job_with_diploma=p_w, job_without_diploma=p_n), "training",
                      intakes, sizes, T, n_paths, seed=13)
    cum = counts.cumsum(axis=-1).sum(axis=0)
    emp = counts[:, :, IN_WORK].sum(axis=0)

    def job_by(m: int) -> float:
        searching = lambda start, pj: 1.0 - (1.0 - pj) ** (m - start + 1) if m >= start else 0.0  # noqa: E731
        total = (1.0 - h) ** L * searching(L, p_n)  # trained L months without leaving
        for g in range(1, L + 1):  # left in training month g (offset g-1), search from offset g
            left = (1.0 - h) ** (g - 1)
            total += left * (p_d * searching(g, p_w) + (1.0 - p_d) * p_x * searching(g, p_n))
        return total

    for c, (intake, size) in enumerate(zip(intakes, sizes)):
        n = n_paths * size
        assert emp[c, : intake + 1].sum() == 0  # nobody works in the intake month (training)
        for m in sorted({0, 1, 2, 5, L - 1, L, L + 1, 20, T - 1 - intake}):
            month = intake + m
            diploma = p_d / h * (1.0 - (1.0 - h) ** min(m + 1, L))
            assert_share(cum[c, DIPLOMA, month] / n, diploma, n, f"diploma by +{m}")
            assert_share(cum[c, JOB_START, month] / n, job_by(m), n, f"job start by +{m}")
            assert_share(emp[c, month] / n, job_by(m), n, f"employed at +{m} (no relapse)")


def test_uncertain_job_probability_is_a_beta_mixture():
    """Beta prior on the job probability, one draw per path: E[1 - (1-P)^k] = 1 - B(a, b+k)/B(a, b)."""
    contract = ck()
    prior = Prior(0.06, 0.03)
    names = contract.journey.parameter_names
    journey = contract.journey.with_parameters(
        {n: (prior if n == "job_without_diploma" else Prior(0.0)) for n in names})
    n_paths, size, T, intake = 4000, 25, 30, 2
    params = draw_parameters(journey, np.random.default_rng(14), n_paths)
    drawn = params[:, names.index("job_without_diploma")]
    assert abs(drawn.mean() - prior.mean) <= Z * prior.sd / math.sqrt(n_paths)
    assert drawn.std() == pytest.approx(prior.sd, rel=0.1)
    starts = np.eye(len(journey.states))[[journey.state_names.index("job_search")]]
    counts = simulate_group(journey, contract.measures, params, np.array([intake]), np.array([size]), starts, T,
                            np.random.default_rng(15))
    a, b = prior.alpha_beta
    shares = counts[:, 0, JOB_START].cumsum(axis=-1) / size  # (paths, T)
    for m in (0, 3, 10, 20, T - 1 - intake):
        k = m + 1
        expected = 1.0 - math.exp(special.betaln(a, b + k) - special.betaln(a, b))
        observed = shares[:, intake + m]
        se = observed.std(ddof=1) / math.sqrt(n_paths)  # path-level: parameter and individual noise
        assert abs(observed.mean() - expected) <= Z * se, f"job by +{m}: {observed.mean():.5f} vs {expected:.5f}"


def test_uncertain_rate_is_a_gamma_mixed_poisson():
    """Gamma prior (shape k, scale t) on a monthly event rate, one draw per path: the first event by
    offset m has P = 1 - E[exp(-(m+1) R)] = 1 - (1 + (m+1) t)^-k; every event: E[N] = (m+1) k t, and
    across paths the mean count of n men has variance (m+1)^2 k t^2 + (m+1) k t / n (negative binomial)."""
    prior = Prior(0.1, 0.06, kind="rate")
    shape, scale = (prior.mean / prior.sd) ** 2, prior.sd**2 / prior.mean

    journey = Journey((State("community", events=(RecurrentEvent("crime", "rate"),)),), (("community", 1.0),),
                      parameters=(("rate", prior),))
    measures = (Outcome("first", "event", event="crime"), Outcome("every", "event", event="crime", count="every"))
    n_paths, size, T = 4000, 30, 24
    params = draw_parameters(journey, np.random.default_rng(16), n_paths)
    counts = simulate_group(journey, measures, params, np.array([0]), np.array([size]), np.ones((1, 1)), T,
                            np.random.default_rng(17))
    cum = counts[:, 0].cumsum(axis=-1) / size  # (paths, 2, T): per man
    for m in (0, 2, 5, 11, T - 1):
        k = m + 1
        first, every = cum[:, 0, m], cum[:, 1, m]
        expected_first = 1.0 - (1.0 + k * scale) ** -shape
        assert abs(first.mean() - expected_first) <= Z * first.std(ddof=1) / math.sqrt(n_paths), m
        mean, var = k * shape * scale, k**2 * shape * scale**2 + k * shape * scale / size
        assert abs(every.mean() - mean) <= Z * math.sqrt(var / n_paths), m
        # the sample variance of the per-path means: its own SE from the 4th moment, estimated
        dev = (every - every.mean()) ** 2
        assert abs(dev.mean() - var) <= Z * dev.std(ddof=1) / math.sqrt(n_paths), (m, dev.mean(), var)


@pytest.mark.parametrize("timing", ["end", "start"])
def test_sojourn_has_the_geometric_distribution(timing):
    """The whole distribution of a sojourn, not only its mean: the month of arrival in b after a in
    ("end" timing) month k >= 1 has P = (1-p)^(k-1) p, ("start") month k >= 0: (1-p)^k p; the rest
    never arrives within the horizon (the geometric inversion's cap). Chi-square, and a tiny p
    leaves the last month no more likely than any other."""
    p, T, n = 0.2, 15, 200_000
    j = Journey((State("a", exits=(Exit("b", "p"),), timing=timing), State("b")), (("a", 1.0),),
                parameters=(("p", Prior(p)),))
    arrive = (Outcome("b", "entry", states=("b",)),)
    counts = simulate_group(j, arrive, np.full((1, 1), p), np.array([0]), np.array([n]), np.array([[1.0, 0.0]]),
                            T, np.random.default_rng(18))[0, 0, 0]
    first = 1 if timing == "end" else 0
    k = np.arange(first, T)
    expected = p * (1 - p) ** (k - first)
    observed = np.r_[counts[first:], n - counts.sum()]
    assert counts[:first].sum() == 0
    assert stats.chisquare(observed, n * np.r_[expected, 1 - expected.sum()]).pvalue > 1e-4
    tiny = simulate_group(j, arrive, np.full((1, 1), 1e-4), np.array([0]), np.array([20_000]),
                          np.array([[1.0, 0.0]]), T, np.random.default_rng(19))[0, 0, 0]
    assert tiny[T - 1] <= 12  # expected 2 (1e-4 x 20,000); a cap dated in the last month would give 20,000
    assert tiny.sum() <= 60   # expected about 28


# --- 2. draw order of simulate_outcomes ----------------------------------------------------------
def _replay(contract, n_paths: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The module notes of sibsim.montecarlo, by hand: treated parameters (declared order), comparison
    parameters (shared ones not drawn again), treated journeys, comparison journeys, payer defaults."""
    intake = np.array([c.intake_month for c in contract.cohorts])
    sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    T = contract.horizon_months
    treated = np.column_stack([prior.draw(rng, n_paths) for _, prior in contract.journey.parameters])
    names = contract.journey.parameter_names
    comparison = np.column_stack([
        treated[:, names.index(n)] if n in contract.comparison.shared else prior.draw(rng, n_paths)
        for n, prior in contract.comparison.journey.parameters])
    t = simulate_group(contract.journey, contract.measures, treated, intake, sizes, start_distributions(contract),
                       T, rng)
    c = simulate_group(contract.comparison.journey, contract.measures, comparison, intake, contract.comparison_sizes,
                       start_distributions(contract, comparison=True), T, rng)
    default = rng.random((n_paths, len(contract.payment_months))) if contract.payer.default_probability > 0 else None
    return treated, comparison, t, c, default


@pytest.mark.parametrize("variant", ["colour_kitchen", "shared_and_defaults", "peterborough"])
def test_simulate_outcomes_follows_the_documented_draw_order(variant):
    if variant == "peterborough":
        contract = load_scenario(SCENARIOS / "peterborough.toml")
    else:
        contract = ck()
    if variant == "shared_and_defaults":  # relapse drawn once for both groups; a payer that can default
        contract = dataclasses.replace(
            contract, payer=dataclasses.replace(contract.payer, default_probability=0.3),
            comparison=dataclasses.replace(contract.comparison, shared=("relapse",)))
    n = 7
    rng, ref = np.random.default_rng(20), np.random.default_rng(20)
    out = simulate_outcomes(contract, n, rng)
    treated, comparison, t, c, default = _replay(contract, n, ref)
    assert rng.bit_generator.state == ref.bit_generator.state  # nothing else drawn
    np.testing.assert_array_equal(np.column_stack(list(out.treated.parameters.values())), treated)
    np.testing.assert_array_equal(np.column_stack(list(out.comparison.parameters.values())), comparison)
    k = len(contract.outcomes)
    np.testing.assert_array_equal(out.treated.events, t[:, :, :k])
    np.testing.assert_array_equal(out.treated.costs, t[:, :, k:])
    np.testing.assert_array_equal(out.comparison.events, c[:, :, :k])
    np.testing.assert_array_equal(out.comparison.costs, c[:, :, k:])
    if default is None:  # no payer can default (Peterborough has two payers): nothing drawn for them
        assert out.payer_defaults(len(contract.payers)) == [None] * len(contract.payers)
    else:
        np.testing.assert_array_equal(out.payer_default, default < 0.3)
    if variant == "shared_and_defaults":
        np.testing.assert_array_equal(out.comparison.parameters["relapse"], out.treated.parameters["relapse"])


# --- 3. engine vs reference on the Colour Kitchen contract ---------------------------------------
FAMILY_ALPHA = 1e-3  # chance that a correct engine fails the whole comparison (Bonferroni)
MIN_COUNT = 20       # cells with fewer pooled events are left to the cumulative and total checks
REFERENCE_PATHS = 600
ENGINE_PATHS = 6000


@lru_cache(maxsize=1)
def small_ck():
    """Colour Kitchen's terms, journey, priors, outcomes and costs, on 4 cohorts of 5 (a comparison
    group 1.4 times as large: 7 each), so the month-by-month reference runs in seconds."""
    contract = ck()
    cohorts = tuple(dataclasses.replace(c, size=5) for c in contract.cohorts[::3])
    return dataclasses.replace(contract, cohorts=cohorts,
                               comparison=dataclasses.replace(contract.comparison, size_ratio=1.4))


def reference_outcomes(contract, n_paths: int, seed: int) -> Outcomes:
    """simulate_outcomes with the reference simulator (its own stream; only the distributions agree)."""
    rng = np.random.default_rng(seed)
    intake = [c.intake_month for c in contract.cohorts]
    sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    T, measures = contract.horizon_months, contract.measures
    treated = draw_parameters_reference(contract.journey, rng, n_paths)
    comparison = draw_parameters_reference(contract.comparison.journey, rng, n_paths)
    t = simulate_group_reference(contract.journey, measures, treated, intake, sizes, start_distributions(contract),
                                 T, rng)
    c = simulate_group_reference(contract.comparison.journey, measures, comparison, intake, contract.comparison_sizes,
                                 start_distributions(contract, comparison=True), T, rng)
    return Outcomes(GroupOutcomes(*split_counts(contract, t), sizes, parameter_dict(contract.journey, treated)),
                    GroupOutcomes(*split_counts(contract, c), contract.comparison_sizes,
                                  parameter_dict(contract.comparison.journey, comparison)))


@lru_cache(maxsize=1)
def reference_run():
    contract = small_ck()
    outcomes = reference_outcomes(contract, REFERENCE_PATHS, seed=2015)
    return outcomes, settle(contract, outcomes)


def _z_pvalues(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample z-test of means along axis 0 with the pooled variance; also pooled event counts."""
    na, nb = len(a), len(b)
    pooled = np.concatenate([a, b]).astype(float)
    var = pooled.var(axis=0, ddof=1)
    diff = a.mean(axis=0) - b.mean(axis=0)
    se = np.sqrt(var * (1.0 / na + 1.0 / nb))
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(diff == 0, 0.0, np.inf))
        p = 2.0 * stats.norm.sf(np.abs(z))
    return p, np.abs(pooled).sum(axis=0)


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (conservative on discrete data, which is fine here)."""
    with np.errstate(under="ignore"):  # scipy's exact KS distribution underflows harmlessly in its tails
        return float(stats.ks_2samp(a, b).pvalue)


def _merge_sparse_columns(table: np.ndarray, min_expected: float = 5.0) -> np.ndarray:
    """Merge adjacent columns of a 2 x k contingency table until every expected count is >= min_expected."""
    row_share = table.sum(axis=1) / table.sum()
    merged, current = [], np.zeros(2)
    for j in range(table.shape[1]):
        current = current + table[:, j]
        if (current.sum() * row_share).min() >= min_expected:
            merged.append(current)
            current = np.zeros(2)
    if current.sum() > 0:
        if merged:
            merged[-1] = merged[-1] + current
        else:
            merged.append(current)
    return np.array(merged).T


def agreement_pvalues(contract, engine: Outcomes) -> tuple[dict[str, float], list[str]]:
    """The family of tests between ``engine``'s outcomes (and their settled cash) and the reference run.

    Also the cells too rare for a z-test in which the reference saw something and the engine, with
    10 times the paths, nothing (a correct engine has almost none: they must be none).
    """
    reference, cash_r = reference_run()
    pvalues: dict[str, float] = {}
    missed: list[str] = []
    names = contract.outcome_names + tuple(c.name for c in contract.costs)
    for group in ("treated", "comparison"):
        e, r = getattr(engine, group), getattr(reference, group)
        # cohorts summed: (paths, measures, months), outcomes then cost units
        a = np.concatenate([e.events, e.costs], axis=2).sum(axis=1)
        b = np.concatenate([r.events, r.costs], axis=2).sum(axis=1)
        for label, x, y in (("monthly", a, b), ("cumulative", a.cumsum(axis=-1), b.cumsum(axis=-1))):
            p, count = _z_pvalues(x, y)
            for k, month in zip(*np.nonzero(count >= MIN_COUNT)):
                pvalues[f"{group} {label} {names[k]} month {month}"] = float(p[k, month])
            none = (x.sum(axis=0) == 0) & (y.sum(axis=0) > 0)
            missed += [f"{group} {label} {names[k]} month {month}" for k, month in np.argwhere(none)]
        # per-path totals of each measure: whole distributions
        for k, name in enumerate(names):
            ta, tb = a[:, k].sum(axis=-1), b[:, k].sum(axis=-1)
            if ta.any() or tb.any():
                pvalues[f"{group} total {name} KS"] = _ks(ta, tb)
                values = np.union1d(ta, tb)
                table = _merge_sparse_columns(np.array([[np.sum(ta == v) for v in values],
                                                        [np.sum(tb == v) for v in values]], dtype=float))
                if table.shape[1] > 1:
                    with np.errstate(under="ignore"):
                        pvalues[f"{group} total {name} chi2"] = float(stats.chi2_contingency(table)[1])
    # the cash the contract settles on either's outcomes
    cash_e = settle(contract, engine)
    for name in ("outcome_payments", "gross_savings", "distributions", "capital_calls"):
        x, y = getattr(cash_e, name), getattr(cash_r, name)
        x, y = x.reshape(len(x), -1).sum(axis=1), y.reshape(len(y), -1).sum(axis=1)
        if np.ptp(x) == 0 and np.ptp(y) == 0:
            assert x[0] == pytest.approx(y[0]), name  # e.g. the capital called: the budget, whatever happens
            continue
        pvalues[f"settled {name} mean"] = float(_z_pvalues(x, y)[0])
        pvalues[f"settled {name} KS"] = _ks(x, y)
    payments_e, payments_r = cash_e.outcome_payments, cash_r.outcome_payments  # (paths, months)
    for month in contract.payment_months:  # each payment on its own
        p = _z_pvalues(payments_e[:, month], payments_r[:, month])[0]
        if np.isfinite(p):
            pvalues[f"settled outcome_payments month {month}"] = float(p)
    return pvalues, missed


@pytest.mark.slow
def test_engine_matches_reference_on_the_colour_kitchen_contract():
    contract = small_ck()
    assert tuple(contract.comparison_sizes) == (7, 7, 7, 7)
    engine = simulate_outcomes(contract, ENGINE_PATHS, np.random.default_rng(2016))
    reference, _ = reference_run()
    # structure: what settle() and the rest of the package expect
    for e, r in ((engine.treated, reference.treated), (engine.comparison, reference.comparison)):
        assert r.events.shape[1:] == e.events.shape[1:] and r.events.dtype == e.events.dtype == np.int32
        assert r.costs.shape[1:] == e.costs.shape[1:] and r.costs.dtype == e.costs.dtype == np.int32
        np.testing.assert_array_equal(r.sizes, e.sizes)
        assert list(r.parameters) == list(e.parameters)
        for c, cohort in enumerate(contract.cohorts):  # exact facts, on both
            for g in (e, r):
                assert g.events[:, c, :, : cohort.intake_month].sum() == 0
                assert (g.events[:, c].sum(axis=-1) <= g.sizes[c]).all()  # each outcome once ("first")
                # every participant is on bijstand or in work in every month after intake
                np.testing.assert_array_equal(g.costs[:, c, :, cohort.intake_month:].sum(axis=1), g.sizes[c])
    pvalues, missed = agreement_pvalues(contract, engine)
    assert not missed, f"reference counts where the engine has none: {missed[:5]}"
    threshold = FAMILY_ALPHA / len(pvalues)
    worst = sorted(pvalues.items(), key=lambda kv: kv[1])[:5]
    assert worst[0][1] >= threshold, (f"engine and reference differ ({len(pvalues)} tests, "
                                      f"Bonferroni threshold {threshold:.1e}); smallest p-values: {worst}")
    assert len(pvalues) > 300  # the comparison has teeth
    assert any(k.startswith("settled") for k in pvalues)


def biased(contract, change: str):
    """The contract as a biased engine would simulate it."""
    if change == "job search one month late":
        # an "end" instead of a "start" timing: no job can start in a search's first month
        states = tuple(dataclasses.replace(s, timing="end") if s.name.startswith("job_search") else s
                       for s in contract.journey.states)
        journey = dataclasses.replace(contract.journey, states=states)
        cj = dataclasses.replace(contract.comparison.journey, states=states)
    else:  # job finding 15 % too high in both groups (their priors' sd kept)
        def faster(j):
            p = j.prior("job_without_diploma")
            return j.with_parameters({"job_without_diploma": Prior(p.mean * 1.15, p.sd)})
        journey, cj = faster(contract.journey), faster(contract.comparison.journey)
    return dataclasses.replace(contract, journey=journey,
                               comparison=dataclasses.replace(contract.comparison, journey=cj))


@pytest.mark.slow
@pytest.mark.parametrize("change", ["job search one month late", "job finding +15 %"])
def test_a_biased_engine_fails_the_colour_kitchen_comparison(change):
    """Power: the same family, the engine run on a biased contract, must fail. At these sizes the
    smallest p-values were about 1e-90 (late search: no job in month 0) and 5e-20 (+15 %: the
    comparison group's cumulative job starts) against a Bonferroni threshold of about 8e-7."""
    contract = small_ck()
    engine = simulate_outcomes(biased(contract, change), ENGINE_PATHS, np.random.default_rng(2016))
    pvalues, _missed = agreement_pvalues(contract, engine)
    assert min(pvalues.values()) < FAMILY_ALPHA / len(pvalues), "the agreement test has no power"


# --- 4. reproducibility ----------------------------------------------------------------------------
N_PATHS = 2_500  # more than two blocks of the Colour Kitchen scenario (1,190 paths each)


def _assert_same_run(a, b):
    pd.testing.assert_frame_equal(a.paths, b.paths, check_exact=True)
    pd.testing.assert_frame_equal(a.expected_ledgers, b.expected_ledgers, check_exact=True)
    assert a.outcome_shares.keys() == b.outcome_shares.keys()
    for key in a.outcome_shares:
        np.testing.assert_array_equal(a.outcome_shares[key], b.outcome_shares[key])
    assert a.monthly.keys() == b.monthly.keys()
    for key in a.monthly:
        np.testing.assert_array_equal(a.monthly[key], b.monthly[key])
    assert a.draws == b.draws and len(a.draws) == 64  # the same random numbers, whatever the workers
    assert a.budget_paths.keys() == b.budget_paths.keys() and a.budget_paths
    for key in a.budget_paths:  # the budget years' per-path sums too
        np.testing.assert_array_equal(a.budget_paths[key], b.budget_paths[key])


def test_same_seed_same_results(colour_kitchen):
    first = simulate(colour_kitchen, N_PATHS, seed=42, workers=1)
    assert first.block_size < N_PATHS / 2
    _assert_same_run(first, simulate(colour_kitchen, N_PATHS, seed=42, workers=1))
    other = simulate(colour_kitchen, N_PATHS, seed=43, workers=1)
    assert not first.paths.equals(other.paths)
    assert not np.array_equal(first.paths["outcome_payments"], other.paths["outcome_payments"])


@pytest.mark.parametrize("scenario, n_paths", [("utrecht_colour_kitchen.toml", N_PATHS), ("peterborough.toml", 400)])
def test_workers_do_not_change_results(scenario, n_paths):
    contract = ck() if scenario == CK_FILE.name else load_scenario(SCENARIOS / scenario)
    one = simulate(contract, n_paths, seed=7, workers=1)
    assert one.block_size < n_paths / 2  # at least three blocks: two workers share them out
    two = simulate(contract, n_paths, seed=7, workers=2)
    _assert_same_run(one, two)


def test_seed_sequence_is_left_untouched(colour_kitchen):
    seq = np.random.SeedSequence(2015)
    state = (seq.entropy, seq.spawn_key, seq.pool_size, seq.n_children_spawned)
    first = simulate(colour_kitchen, N_PATHS, seed=seq, workers=1)
    assert (seq.entropy, seq.spawn_key, seq.pool_size, seq.n_children_spawned) == state
    _assert_same_run(first, simulate(colour_kitchen, N_PATHS, seed=seq, workers=1))
    # an int seed is shorthand for SeedSequence(seed)
    _assert_same_run(first, simulate(colour_kitchen, N_PATHS, seed=2015, workers=1))
    # a child SeedSequence (spawn_key) is honoured, and differs from its parent
    child = np.random.SeedSequence(2015).spawn(1)[0]
    assert not simulate(colour_kitchen, N_PATHS, seed=child, workers=1).paths.equals(first.paths)


def test_fresh_entropy_is_recorded(colour_kitchen):
    run = simulate(colour_kitchen, 500, seed=None, workers=1)
    _assert_same_run(run, simulate(colour_kitchen, 500, seed=run.seed_entropy, workers=1))
