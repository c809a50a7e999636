"""Statistical checks of the Monte Carlo engine (sibsim.montecarlo).

1. Analytic convergence: on simple journeys the engine's monthly means match
   closed forms (or exact forward recursions of the monthly chain).
2. Engine vs reference: the vectorised event-time engine and the slow
   month-by-month reference (sibsim.reference, the executable specification)
   give the same distribution of outcomes, employment, parameters and cash.
3. Reproducibility: same seed, same numbers, whatever the number of workers.

Every test uses fixed seeds, so it is deterministic; the thresholds are chosen
so that a correct engine would fail them with small probability for *any*
seed (4 standard errors on a few dozen checks; Bonferroni for the large
engine-vs-reference comparison).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from sibsim import simulate
from sibsim.cashflows import settle
from sibsim.contracts import JOURNEY_PROBABILITIES, OUTCOMES
from sibsim.montecarlo import simulate_group, simulate_outcomes
from sibsim.reference import simulate_outcomes_reference
from sibsim.scenario import contract_from_dict

DIPLOMA, JOB_START, JOB_SUSTAINED, LONG_TERM_CONTRACT = range(len(OUTCOMES))
Z = 4.0  # tolerance of the analytic checks, in standard errors


# --- helpers -----------------------------------------------------------------------
def engine_group(probabilities: dict, max_training_months: int, intakes, sizes, n_months: int,
                 sustained_job_months: int, n_paths: int, seed: int):
    """Run simulate_group with fixed probabilities (missing ones are 0)."""
    params = {k: np.full(n_paths, float(probabilities.get(k, 0.0))) for k in JOURNEY_PROBABILITIES}
    return simulate_group(params, max_training_months, np.array(intakes), np.array(sizes, dtype=np.int64),
                          n_months, sustained_job_months, np.random.default_rng(seed))


def assert_share(observed: float, expected: float, n: int, label: str):
    """A share of n independent Bernoulli trials is within Z binomial SEs (+ one trial) of its expectation."""
    se = math.sqrt(expected * (1.0 - expected) / n)
    assert abs(observed - expected) <= Z * se + 1.0 / n, (
        f"{label}: observed {observed:.5f}, expected {expected:.5f} (SE {se:.2e}, n {n})")


def first_passage(p: float, p_r: float, S: int, q: float, n_months: int) -> np.ndarray:
    """Exact P(first absorption by month offset m), m = 0..n-1, of the no-training monthly chain.

    A participant starts searching (job probability p per month); a job ends
    with probability p_r per month (the relapse month on benefits, the next job
    trial the month after); a job reaching S months is absorbed with
    probability q (q = 1: first sustained job; q = long_term_contract: first
    long-term contract), else it goes on at relapse rate p_r.  Forward equation
    on the state distribution at the end of each month.
    """
    search, work, beyond, absorbed = 1.0, np.zeros(S + 1), 0.0, 0.0  # work[d]: in a job for d < S months
    out = np.zeros(n_months)
    for m in range(n_months):
        started = search * p
        relapsed = (work.sum() + beyond) * p_r
        new_work = np.zeros(S + 1)
        new_work[1] = started
        new_work[2:] = work[1:-1] * (1.0 - p_r)
        reaching = new_work[S]  # jobs reaching S months this month (the job-start month if S == 1)
        new_work[S] = 0.0
        absorbed += reaching * q
        beyond = beyond * (1.0 - p_r) + reaching * (1.0 - q)
        search = search * (1.0 - p) + relapsed
        work = new_work
        out[m] = absorbed
        assert abs(search + work.sum() + beyond + absorbed - 1.0) < 1e-12
    return out


def small_contract(journey: dict, comparison: dict, cohorts, *, term: int = 30, tail: int = 6,
                   sustained: int = 4, size_ratio: float = 1.0):
    """A small valid contract (horizon term + tail) around the given journeys."""
    return contract_from_dict({
        "meta": {"title": "engine statistics test"},
        "term": {"term_months": term, "tail_months": tail, "sustained_job_months": sustained},
        "investors": [{"name": "A", "commitment": 300_000.0, "return_cap": 0.15},
                      {"name": "B", "commitment": 100_000.0, "seniority": 2}],
        "provider": {"name": "P", "budget": [{"from_month": 0, "to_month": 11, "per_month": 10_000.0}]},
        "payer": {"name": "Payer", "measurement_months": [12, 24, term], "payment_lag_months": 2,
                  "savings_share": 0.2, "payment_cap": 400_000.0,
                  "rate_card": {"diploma": 1_500.0, "job_start": 500.0, "job_sustained": 4_000.0,
                                "long_term_contract": 3_000.0}},
        "savings": {"benefit": [{"age_band": "21+", "amount_per_month": 1_000.0, "share": 1.0}]},
        "cohorts": [{"intake_month": m, "size": n} for m, n in cohorts],
        "journey": journey,
        "comparison": {"size_ratio": size_ratio, "journey": comparison},
    })


# --- 1. analytic convergence ----------------------------------------------------
def test_job_search_without_training_or_relapse():
    """L = 0, p_r = 0: P(first job by offset m) = 1 - (1-p)^(m+1) = P(employed at m);
    sustained by m = job by m - S + 1; long-term contract = that times q."""
    p, S, q, T = 0.07, 4, 0.3, 30
    intakes, sizes, n_paths = [0, 5], [40, 40], 2500
    events, employed = engine_group(dict(job_without_diploma=p, job_with_diploma=0.9, long_term_contract=q),
                                    0, intakes, sizes, T, S, n_paths, seed=11)
    cum = events.cumsum(axis=-1).sum(axis=0)  # (cohorts, 4, T)
    emp = employed.sum(axis=0)
    job_by = lambda m: 1.0 - (1.0 - p) ** (m + 1) if m >= 0 else 0.0  # noqa: E731
    assert events[:, :, DIPLOMA].sum() == 0
    for c, (intake, size) in enumerate(zip(intakes, sizes)):
        n = n_paths * size
        assert events[:, c, :, :intake].sum() == 0 and employed[:, c, :intake].sum() == 0
        for m in sorted({0, 1, 2, 3, 5, 10, 17, T - 1 - intake}):
            month = intake + m
            assert_share(cum[c, JOB_START, month] / n, job_by(m), n, f"cohort {c} job start by +{m}")
            assert_share(emp[c, month] / n, job_by(m), n, f"cohort {c} employed at +{m}")
            assert_share(cum[c, JOB_SUSTAINED, month] / n, job_by(m - S + 1), n, f"cohort {c} sustained by +{m}")
            assert_share(cum[c, LONG_TERM_CONTRACT, month] / n, q * job_by(m - S + 1), n, f"cohort {c} ltc by +{m}")


@pytest.mark.parametrize("relapse_long_term", [0.12, 0.02])
def test_relapse_employment_and_sustained_jobs(relapse_long_term):
    """L = 0, relapse p_r: first job unchanged; with relapse_long_term == p_r employment is the
    two-state chain e_m = p/(p+p_r) (1 - (1-p-p_r)^(m+1)); first sustained job / first long-term
    contract follow the exact forward recursion (for m <= S: P(job by m-S+1) (1-p_r)^(S-1))."""
    p, p_r, S, q, T = 0.10, 0.12, 3, 0.4, 40
    intakes, sizes, n_paths = [0, 7], [40, 40], 2500
    events, employed = engine_group(
        dict(job_without_diploma=p, relapse=p_r, relapse_long_term=relapse_long_term, long_term_contract=q),
        0, intakes, sizes, T, S, n_paths, seed=12)
    cum = events.cumsum(axis=-1).sum(axis=0)
    emp = employed.sum(axis=0)
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
    """Training: P(diploma by offset m) = p_d/h (1 - (1-h)^min(m+1, L)), h = 1-(1-p_d)(1-p_x);
    the job search starts the month after leaving training (or after L months)."""
    p_d, p_x, L, p_w, p_n, T = 0.12, 0.05, 6, 0.20, 0.08, 36
    h = 1.0 - (1.0 - p_d) * (1.0 - p_x)
    intakes, sizes, n_paths = [0, 4], [40, 40], 2500
    events, employed = engine_group(dict(diploma=p_d, dropout=p_x, job_with_diploma=p_w, job_without_diploma=p_n),
                                    L, intakes, sizes, T, 6, n_paths, seed=13)
    cum = events.cumsum(axis=-1).sum(axis=0)
    emp = employed.sum(axis=0)

    def job_by(m: int) -> float:
        searching = lambda start, pj: 1.0 - (1.0 - pj) ** (m - start + 1) if m >= start else 0.0  # noqa: E731
        total = (1.0 - h) ** L * searching(L, p_n)  # trained L months without leaving
        for g in range(1, L + 1):  # left in training month g (offset g-1), search from offset g
            left = (1.0 - h) ** (g - 1)
            total += left * (p_d * searching(g, p_w) + (1.0 - p_d) * p_x * searching(g, p_n))
        return total

    for c, (intake, size) in enumerate(zip(intakes, sizes)):
        n = n_paths * size
        assert employed[:, c, : intake + 1].sum() == 0  # nobody works in the intake month (training)
        for m in sorted({0, 1, 2, L - 1, L, L + 1, 12, 20, T - 1 - intake}):
            month = intake + m
            diploma = p_d / h * (1.0 - (1.0 - h) ** min(m + 1, L))
            assert_share(cum[c, DIPLOMA, month] / n, diploma, n, f"diploma by +{m}")
            assert_share(cum[c, JOB_START, month] / n, job_by(m), n, f"job start by +{m}")
            assert_share(emp[c, month] / n, job_by(m), n, f"employed at +{m} (no relapse)")


def test_uncertain_job_probability():
    """Beta prior on the job probability: E[1 - (1-P)^k] = 1 - B(a, b+k)/B(a, b); path-level SEs."""
    prior = {"mean": 0.06, "sd": 0.03}
    journey = dict(max_training_months=0, diploma=0.0, dropout=0.0, job_with_diploma=0.0, job_without_diploma=prior,
                   relapse=0.0, relapse_long_term=0.0, long_term_contract=0.0)
    contract = small_contract(journey, journey, [(2, 25)])
    n_paths, size, T = 4000, 25, contract.horizon_months
    outcomes = simulate_outcomes(contract, n_paths, np.random.default_rng(14))
    a, b = contract.journey.job_without_diploma.alpha_beta
    for group in (outcomes.treated, outcomes.comparison):
        drawn = group.parameters["job_without_diploma"]
        assert abs(drawn.mean() - prior["mean"]) <= Z * prior["sd"] / math.sqrt(n_paths)
        assert drawn.std() == pytest.approx(prior["sd"], rel=0.1)
        shares = group.events[:, 0, JOB_START].cumsum(axis=-1) / size  # (paths, T)
        for m in (0, 3, 10, 20, T - 3):
            k = m + 1
            expected = 1.0 - math.exp(special.betaln(a, b + k) - special.betaln(a, b))
            observed = shares[:, 2 + m]
            se = observed.std(ddof=1) / math.sqrt(n_paths)
            assert abs(observed.mean() - expected) <= Z * se, f"job by +{m}: {observed.mean():.5f} vs {expected:.5f}"


def test_geometric_inversion_known_values():
    """CDF inversion: G = k exactly when 1 - (1-p)^(k-1) <= u < 1 - (1-p)^k; p = 0 never (the cap);
    p = 1 the first month, whatever u; the inputs are consumed in place."""
    from sibsim.montecarlo import _geometric_months, _log_stay

    def months(p, u, cap):
        log_q = _log_stay(np.full(len(u), p))
        return _geometric_months(log_q, np.array(u, dtype=float), cap)

    # p = 1/2: [0, 1/2) -> 1, [1/2, 3/4) -> 2, [3/4, 7/8) -> 3, ...; beyond the cap -> cap
    u = [0.0, 0.25, 0.4999999, 0.5, 0.7, 0.75, 0.8, 0.875, 0.999]
    np.testing.assert_array_equal(months(0.5, u, 12), [1, 1, 1, 2, 2, 3, 3, 4, 10])
    np.testing.assert_array_equal(months(0.5, u, 3), [1, 1, 1, 2, 2, 3, 3, 3, 3])
    assert months(0.5, u, 3).dtype == np.int32
    np.testing.assert_array_equal(months(0.0, u, 7), np.full(len(u), 7))   # never: at the cap
    np.testing.assert_array_equal(months(-0.0, u, 7), np.full(len(u), 7))  # also from a TOML -0.0
    np.testing.assert_array_equal(months(1.0, u, 7), np.ones(len(u)))      # at once
    # a large sample has the geometric distribution's frequencies
    p, n, cap = 0.2, 400_000, 15
    g = months(p, np.random.default_rng(3).random(n), cap)
    expected = np.r_[p * (1 - p) ** np.arange(cap - 1), (1 - p) ** (cap - 1)]
    observed = np.bincount(g, minlength=cap + 1)[1:]
    assert stats.chisquare(observed, n * expected).pvalue > 1e-4


def test_no_job_start_without_a_job_probability():
    """Regression: with job probability 0 nobody ever starts a job, including in the last month for
    participants searching from month 0 (the geometric cap must put 'never' beyond the horizon)."""
    T = 24
    for L in (0, 3):
        events, employed = engine_group(dict(diploma=0.3, relapse=0.1), L, [0, 0, 5], [10, 10, 10], T, 2,
                                        n_paths=200, seed=15)
        assert events[:, :, JOB_START:].sum() == 0 and employed.sum() == 0
    # and with a tiny probability, the last month is not special
    events, _ = engine_group(dict(job_without_diploma=1e-4), 0, [0], [100], T, 2, n_paths=200, seed=16)
    assert events[:, 0, JOB_START, T - 1].sum() <= 5  # expected 2


# --- 2. engine vs reference ------------------------------------------------------
FULL_FEATURES = dict(
    journey=dict(max_training_months=6, diploma={"mean": 0.15, "sd": 0.05}, dropout=0.04,
                 job_with_diploma={"mean": 0.15, "sd": 0.04}, job_without_diploma=0.07,
                 relapse={"mean": 0.10, "sd": 0.03}, relapse_long_term=0.03,
                 long_term_contract={"mean": 0.5, "sd": 0.15}),
    comparison=dict(max_training_months=0, diploma=0.0, dropout=0.0, job_with_diploma=0.0,
                    job_without_diploma={"mean": 0.05, "sd": 0.02}, relapse=0.10,
                    relapse_long_term={"mean": 0.02, "sd": 0.01}, long_term_contract=0.4),
    cohorts=[(0, 7), (3, 5)], sustained=4, size_ratio=1.5,  # comparison sizes rint(10.5) = 10, rint(7.5) = 8
)
EDGE_CASES = dict(  # S = 1 (sustained in the job-start month), L = 1, probabilities 0 and 1
    journey=dict(max_training_months=1, diploma=0.5, dropout=1.0, job_with_diploma=0.6, job_without_diploma=0.0,
                 relapse=0.3, relapse_long_term=0.0, long_term_contract={"mean": 0.3, "sd": 0.1}),
    comparison=dict(max_training_months=2, diploma=0.0, dropout=0.0, job_with_diploma=1.0,
                    job_without_diploma=0.25, relapse=1.0, relapse_long_term=0.5, long_term_contract=1.0),
    cohorts=[(0, 6), (10, 4)], sustained=1, size_ratio=1.0,
)
FAMILY_ALPHA = 1e-3  # chance that a correct engine fails the whole comparison (Bonferroni)
MIN_COUNT = 20  # cells with fewer pooled events are left to the cumulative and total checks


def _z_pvalues(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample z-test of means along axis 0 with the pooled variance; also pooled event counts."""
    na, nb = len(a), len(b)
    pooled = np.concatenate([a, b]).astype(float)
    var = pooled.var(axis=0, ddof=1)
    diff = a.mean(axis=0) - b.mean(axis=0)
    se = np.sqrt(var * (1.0 / na + 1.0 / nb))
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        z = np.where(se > 0, diff / se, np.where(diff == 0, 0.0, np.inf))
        p = 2.0 * stats.norm.sf(np.abs(z))
    return p, np.abs(pooled).sum(axis=0)


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (conservative on discrete data, which is fine here)."""
    with np.errstate(under="ignore"):  # scipy's exact KS distribution underflows harmlessly in its tails
        return stats.ks_2samp(a, b).pvalue


@pytest.mark.slow
@pytest.mark.parametrize("case", [FULL_FEATURES, EDGE_CASES], ids=["full_features", "edge_cases"])
def test_engine_matches_reference(case):
    contract = small_contract(case["journey"], case["comparison"], case["cohorts"], sustained=case["sustained"],
                              size_ratio=case["size_ratio"])
    T = contract.horizon_months
    engine = simulate_outcomes(contract, 50_000, np.random.default_rng(2015))
    reference = simulate_outcomes_reference(contract, 5_000, seed=2015)

    # structure: what settle() and the rest of the package expect
    for e, r in ((engine.treated, reference.treated), (engine.comparison, reference.comparison)):
        assert r.events.shape[1:] == e.events.shape[1:] and r.events.dtype == e.events.dtype == np.int32
        assert r.employed.shape[1:] == e.employed.shape[1:] and r.employed.dtype == e.employed.dtype == np.int32
        np.testing.assert_array_equal(r.sizes, e.sizes)
        assert set(r.parameters) == set(e.parameters) == set(JOURNEY_PROBABILITIES)
        # exact facts: nothing before intake; each participant reaches each outcome at most once
        for c, cohort in enumerate(contract.cohorts):
            for g in (e, r):
                assert g.events[:, c, :, : cohort.intake_month].sum() == 0
                assert g.employed[:, c, : cohort.intake_month].sum() == 0
                assert (g.events[:, c].sum(axis=-1) <= g.sizes[c]).all()
                assert (g.employed[:, c] <= g.sizes[c]).all()

    pvalues: dict[str, float] = {}

    def add(name: str, p) -> None:
        pvalues[name] = float(p)

    # per-(group, cohort, outcome, month) means, monthly and cumulative; employed per month
    for group in ("treated", "comparison"):
        e, r = getattr(engine, group), getattr(reference, group)
        for label, a, b in (("events", e.events, r.events),
                            ("cumulative", e.events.cumsum(axis=-1), r.events.cumsum(axis=-1)),
                            ("employed", e.employed, r.employed)):
            p, count = _z_pvalues(a, b)
            for idx in zip(*np.nonzero(count >= MIN_COUNT)):
                add(f"{group} {label} {tuple(int(i) for i in idx)}", p[idx])
            # cells too rare for a z-test: the engine, with 10x the paths, must not miss what the reference sees
            both = (a.sum(axis=0) == 0) & (b.sum(axis=0) > 0)
            assert not both.any(), f"{group} {label}: reference events where the engine has none at " \
                                   f"{np.argwhere(both)[:5].tolist()}"
        # per-path totals: distributions
        for k, outcome in enumerate(OUTCOMES):
            ta, tb = e.events[:, :, k].sum(axis=(1, 2)), r.events[:, :, k].sum(axis=(1, 2))
            if ta.any() or tb.any():
                add(f"{group} total {outcome} KS", _ks(ta, tb))
                values = np.union1d(ta, tb)
                table = np.array([[np.sum(ta == v) for v in values], [np.sum(tb == v) for v in values]])
                table = _merge_sparse_columns(table)
                if table.shape[1] > 1:
                    with np.errstate(under="ignore"):
                        add(f"{group} total {outcome} chi2", stats.chi2_contingency(table)[1])
        add(f"{group} employed months KS", _ks(e.employed.sum(axis=(1, 2)), r.employed.sum(axis=(1, 2))))
        # the parameter draws: numpy's beta and random.betavariate give the same Beta
        for name in JOURNEY_PROBABILITIES:
            pa, pb = e.parameters[name], r.parameters[name]
            if np.ptp(pa) == 0 and np.ptp(pb) == 0:
                assert pa[0] == pb[0], name
            else:
                add(f"{group} parameter {name} KS", _ks(pa, pb))

    # the reference settles like the engine
    cash_e, cash_r = settle(contract, engine), settle(contract, reference)
    for name in ("outcome_payments", "gross_savings"):
        a, b = getattr(cash_e, name).sum(axis=1), getattr(cash_r, name).sum(axis=1)
        add(f"settled {name} mean", _z_pvalues(a, b)[0])
        add(f"settled {name} KS", _ks(a, b))

    threshold = FAMILY_ALPHA / len(pvalues)
    worst = sorted(pvalues.items(), key=lambda kv: kv[1])[:5]
    assert worst[0][1] >= threshold, (f"engine and reference differ ({len(pvalues)} tests, "
                                      f"Bonferroni threshold {threshold:.1e}); smallest p-values: {worst}")
    assert len(pvalues) > 100  # the comparison has teeth


def _merge_sparse_columns(table: np.ndarray, min_expected: float = 5.0) -> np.ndarray:
    """Merge adjacent columns of a 2 x k contingency table until every expected count is >= min_expected."""
    cols = [table[:, j].astype(float) for j in range(table.shape[1])]
    total = table.sum()
    row_share = table.sum(axis=1) / total
    merged, current = [], np.zeros(2)
    for col in cols:
        current = current + col
        if (current.sum() * row_share).min() >= min_expected:
            merged.append(current)
            current = np.zeros(2)
    if current.sum() > 0:
        if merged:
            merged[-1] = merged[-1] + current
        else:
            merged.append(current)
    return np.array(merged).T


# --- 3. reproducibility ------------------------------------------------------------
N_PATHS = 2_500  # more than two blocks of the Colour Kitchen scenario (1,190 paths each)


def _assert_same_run(a, b):
    pd.testing.assert_frame_equal(a.paths, b.paths, check_exact=True)
    pd.testing.assert_frame_equal(a.expected_ledgers, b.expected_ledgers, check_exact=True)
    for key in a.outcome_shares:
        np.testing.assert_array_equal(a.outcome_shares[key], b.outcome_shares[key])
    for key in a.monthly:
        np.testing.assert_array_equal(a.monthly[key], b.monthly[key])


def test_same_seed_same_results(colour_kitchen):
    first = simulate(colour_kitchen, N_PATHS, seed=42, workers=1)
    assert first.block_size < N_PATHS / 2
    _assert_same_run(first, simulate(colour_kitchen, N_PATHS, seed=42, workers=1))
    other = simulate(colour_kitchen, N_PATHS, seed=43, workers=1)
    assert not first.paths.equals(other.paths)
    assert not np.array_equal(first.paths["outcome_payments"], other.paths["outcome_payments"])


def test_workers_do_not_change_results(colour_kitchen):
    one = simulate(colour_kitchen, N_PATHS, seed=7, workers=1)
    two = simulate(colour_kitchen, N_PATHS, seed=7, workers=2)
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
