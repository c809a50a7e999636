"""Correlated uncertainty (sibsim.uncertainty): the scenario's terms, their rules at the boundaries,
the copula's law, the draw order, and what a recession does to each counterfactual design.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sibsim import uncertainty
from sibsim.errors import ScenarioError
from sibsim.montecarlo import draw_group_parameters, simulate_outcomes
from sibsim.scenario import contract_from_dict, load_scenario
from sibsim.simulation import simulate
from sibsim.uncertainty import Copula, Factor, Shock, Uncertainty, matrix_problem

ROOT = Path(__file__).resolve().parent.parent
CK = ROOT / "scenarios" / "utrecht_colour_kitchen.toml"
JOBS = ["job_with_diploma", "job_without_diploma"]


def doc(**sections) -> dict:
    d = tomllib.loads(CK.read_text(encoding="utf-8"))
    d = copy.deepcopy(d)
    d.update(sections)
    return d


def problems(d: dict) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        contract_from_dict(d, "x.toml")
    return info.value.problems


def one_problem(d: dict) -> str:
    (line,) = problems(d)
    assert "\n" not in line
    return line


def factor(**kw) -> dict:
    return {"name": "labour_market", "sigma": 0.2, "parameters": JOBS, **kw}


def shock(**kw) -> dict:
    return {"name": "recession", "start_month": 12, "months": 18, "parameters": JOBS, "change": -0.3, **kw}


# --- the terms as read -----------------------------------------------------------------------------

def test_terms_are_read_as_written():
    c = contract_from_dict(doc(factors=[factor()], shocks=[shock(probability=0.25)],
                               correlation={"parameters": ["diploma", "relapse"], "matrix": [[1, -0.4], [-0.4, 1]]}))
    u = c.uncertainty
    assert u.factors == (Factor("labour_market", 0.2, tuple(JOBS), ("treated", "comparison")),)
    assert u.shocks == (Shock("recession", 12, 18, tuple(JOBS), -0.3, 0.25, ("treated", "comparison")),)
    assert u.copula == Copula(("diploma", "relapse"), ((1.0, -0.4), (-0.4, 1.0)))


def test_a_modelled_counterfactual_is_reached_by_nothing():
    c = load_scenario(ROOT / "scenarios" / "utrecht_colour_kitchen_modelled_recession.toml")
    assert all(t.groups == ("treated",) for t in c.uncertainty.factors + c.uncertainty.shocks)
    d = tomllib.loads((ROOT / "scenarios" / "utrecht_colour_kitchen.toml").read_text(encoding="utf-8"))
    d["comparison"] = {"method": "expected", "start": "job_search", "parameters": {"job_without_diploma": 0.01}}
    d["shocks"] = [shock(groups=["treated", "comparison"])]
    assert "shocks[0].groups: must not name comparison with a modelled counterfactual" in one_problem(d)


@pytest.mark.parametrize("value, ok", [(0.0, False), (1e-9, True), (2.0, True), (2.0000001, False), (-0.1, False)])
def test_factor_sigma_boundaries(value, ok):
    d = doc(factors=[factor(sigma=value)])
    if ok:
        assert contract_from_dict(d).uncertainty.factors[0].sigma == value
    else:
        assert "factors[0].sigma: must be" in one_problem(d)


@pytest.mark.parametrize("key, value, ok", [
    ("change", -1.0, True), ("change", -1.0000001, False), ("change", 0.0, False), ("change", 10.0, True),
    ("change", 10.5, False), ("months", 1, True), ("months", 0, False), ("start_month", 0, True),
    ("start_month", 59, True), ("start_month", 60, False), ("probability", 1.0, True), ("probability", 0.0, False),
    ("probability", 1.01, False), ("probability", 1e-9, True), ("months", 2.5, False),
])
def test_shock_boundaries(key, value, ok):
    d = doc(shocks=[shock(**{key: value})])
    if ok:
        assert getattr(contract_from_dict(d).uncertainty.shocks[0], key) == value
    else:
        assert f"shocks[0].{key}: must" in one_problem(d)


@pytest.mark.parametrize("section, item, field, fragment", [
    ("factors", factor(parameters=["job_finding"]), "factors[0].parameters", "got 'job_finding'"),
    ("factors", factor(parameters=[]), "factors[0].parameters", "non-empty list"),
    ("factors", factor(parameters=["relapse", "relapse"]), "factors[0].parameters", "twice"),
    ("factors", factor(distribution="normal"), "factors[0].distribution", "must be lognormal"),
    ("factors", factor(groups=["everyone"]), "factors[0].groups", "must be a non-empty list"),
    ("factors", factor(size=1), "factors[0].size", "unknown key"),
    ("shocks", shock(name=" recession"), "shocks[0].name", "white space"),
])
def test_one_line_errors(section, item, field, fragment):
    line = one_problem(doc(**{section: [item]}))
    assert line.startswith(f"x.toml: {field}: ") and fragment in line, line


def test_factor_and_shock_names_are_unique_together():
    line = one_problem(doc(factors=[factor(name="recession")], shocks=[shock()]))
    assert line.startswith("x.toml: shocks[0].name: must be unique")


# --- the correlation matrix ------------------------------------------------------------------------

@pytest.mark.parametrize("matrix, fragment", [
    ([[1, 0.5], [0.5, 1]], None),
    ([[1, 1], [1, 1]], None),                          # semi-definite: exactly 1 is a valid correlation
    ([[1, -1], [-1, 1]], None),
    ([[1, 0.5], [0.5 + 5e-13, 1]], None),              # within the symmetry tolerance
    ([[1, 0.5], [0.5 + 2e-12, 1]], "must be symmetric"),
    ([[1.0000001, 0], [0, 1]], "must have 1 on the diagonal"),
    ([[1, 1.0000001], [1.0000001, 1]], "entries in [-1, 1]"),
    ([[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]], "positive semi-definite"),
    ([[1, 0], [0, 1], [0, 0]], "must be 2 x 2"),
    ([[1, True], [True, 1]], "array of arrays of numbers"),
    ("identity", "array of arrays of numbers"),
])
def test_matrix_rules(matrix, fragment):
    n = 3 if len(matrix) == 3 and len(matrix[0]) == 3 else 2
    assert (matrix_problem(matrix, n) is None) == (fragment is None)
    if fragment:
        assert fragment in matrix_problem(matrix, n)


def test_copula_errors_name_the_field():
    line = one_problem(doc(correlation={"parameters": ["diploma", "relapse"], "matrix": [[1, 1.5], [1.5, 1]]}))
    assert line.startswith("x.toml: correlation.matrix: must have entries in [-1, 1]")
    line = one_problem(doc(correlation={"parameters": ["diploma", "comparison.job_with_diploma"],
                                        "matrix": [[1, 0], [0, 1]]}))
    assert "correlation.parameters[1]" in line and "is fixed at 0" in line
    line = one_problem(doc(correlation={"parameters": ["diploma"], "matrix": [[1]]}))
    assert "correlation.parameters: must list at least 2" in line


def test_copula_with_correlation_zero_draws_the_priors_independently():
    """Correlation 0: each margin is its prior (KS against the prior's cdf) and the ranks are independent."""
    n = 20_000
    base = contract_from_dict(doc())
    with0 = contract_from_dict(doc(correlation={"parameters": ["diploma", "relapse", "comparison.job_without_diploma"],
                                                "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}))
    t, cmp = draw_group_parameters(with0, np.random.default_rng(1), n)
    t_ind, _ = draw_group_parameters(base, np.random.default_rng(2), n)
    names = with0.journey.parameter_names
    priors = dict(with0.journey.parameters)
    for name in ("diploma", "relapse"):
        col = t[:, names.index(name)]
        assert stats.kstest(col, priors[name].cdf).pvalue > 1e-3
        assert stats.ks_2samp(col, t_ind[:, names.index(name)]).pvalue > 1e-3
    comp_prior = dict(with0.comparison.journey.parameters)["job_without_diploma"]
    assert stats.kstest(cmp[:, names.index("job_without_diploma")], comp_prior.cdf).pvalue > 1e-3
    rho = stats.spearmanr(t[:, names.index("diploma")], t[:, names.index("relapse")]).statistic
    assert abs(rho) < 4 / np.sqrt(n)


def test_copula_correlation_is_the_one_asked_for_and_the_test_can_tell():
    n = 20_000
    c = contract_from_dict(doc(correlation={"parameters": ["diploma", "relapse"], "matrix": [[1, 0.6], [0.6, 1]]}))
    t, _ = draw_group_parameters(c, np.random.default_rng(3), n)
    names = c.journey.parameter_names
    rho = stats.spearmanr(t[:, names.index("diploma")], t[:, names.index("relapse")]).statistic
    assert rho == pytest.approx(6 / np.pi * np.arcsin(0.3), abs=0.02)  # Spearman of a Gaussian copula
    assert abs(rho) > 4 / np.sqrt(n)  # the independence check above would fail on this
    priors = dict(c.journey.parameters)
    assert stats.kstest(t[:, names.index("diploma")], priors["diploma"].cdf).pvalue > 1e-3


# --- draws and reproducibility ---------------------------------------------------------------------

def test_without_terms_the_draws_are_unchanged():
    c = load_scenario(CK)
    plain = simulate_outcomes(c, 64, np.random.default_rng(9))
    empty = simulate_outcomes(dataclasses.replace(c, uncertainty=Uncertainty()), 64, np.random.default_rng(9))
    assert plain.draws == empty.draws and plain.common == {}


def test_a_factor_moves_both_groups_together():
    n = 3000
    c = contract_from_dict(doc(factors=[factor(sigma=0.5)]))
    out = simulate_outcomes(c, n, np.random.default_rng(4))
    k = c.outcome_names.index("job_start")
    treated = out.treated.events[:, :, k].sum(axis=(1, 2))
    comparison = out.comparison.events[:, :, k].sum(axis=(1, 2))
    mult = out.common["labour_market"]
    assert np.mean(mult) == pytest.approx(1.0, abs=0.05)  # mean 1
    assert stats.spearmanr(mult, comparison).statistic > 0.3
    assert stats.spearmanr(treated, comparison).statistic > 0.2
    plain = simulate_outcomes(contract_from_dict(doc()), n, np.random.default_rng(4))
    t0 = plain.treated.events[:, :, k].sum(axis=(1, 2))
    c0 = plain.comparison.events[:, :, k].sum(axis=(1, 2))
    assert abs(stats.spearmanr(t0, c0).statistic) < 0.1  # no shared labour market without it


def test_same_numbers_whatever_the_workers():
    c = load_scenario(ROOT / "scenarios" / "utrecht_colour_kitchen_recession.toml")
    one = simulate(c, 2 * 1200 + 7, seed=5, workers=1).paths
    two = simulate(c, 2 * 1200 + 7, seed=5, workers=2).paths
    np.testing.assert_array_equal(one["investor_moic"].to_numpy(), two["investor_moic"].to_numpy())


def test_an_uncertain_shock_happens_on_its_share_of_paths():
    c = contract_from_dict(doc(shocks=[shock(probability=0.3)]))
    out = simulate_outcomes(c, 4000, np.random.default_rng(6))
    assert out.common["recession"].mean() == pytest.approx(0.3, abs=4 * np.sqrt(0.21 / 4000))


def test_exits_pushed_above_one_are_one_line():
    d = doc(factors=[factor(sigma=2.0, parameters=["diploma", "dropout"])])
    d["journey"]["states"][0]["exits_in_order"] = False
    c = contract_from_dict(d, "x.toml")
    with pytest.raises(ScenarioError) as info:
        for seed in range(20):
            simulate_outcomes(c, 2000, np.random.default_rng(seed))
    (line,) = info.value.problems
    assert line.startswith("x.toml: factors[0]: in the treated group, journey.states[0] (training): exits sum above 1")


# --- what the recession does to each design --------------------------------------------------------

@pytest.mark.slow
def test_a_comparison_group_protects_investors_from_a_recession_a_modelled_counterfactual_does_not():
    n, seed = 6000, 2015
    runs = {name: simulate(load_scenario(ROOT / "scenarios" / f"{name}.toml"), n, seed=seed).paths["investor_moic"]
            for name in ("utrecht_colour_kitchen", "utrecht_colour_kitchen_recession",
                         "utrecht_colour_kitchen_modelled", "utrecht_colour_kitchen_modelled_recession")}
    mean = {k: v.mean() for k, v in runs.items()}
    se = {k: v.std(ddof=1) / np.sqrt(n) for k, v in runs.items()}
    drop_group = mean["utrecht_colour_kitchen"] - mean["utrecht_colour_kitchen_recession"]
    drop_model = mean["utrecht_colour_kitchen_modelled"] - mean["utrecht_colour_kitchen_modelled_recession"]
    se_diff = np.sqrt(sum(v**2 for v in se.values()))
    assert drop_model - drop_group > 4 * se_diff, (drop_group, drop_model, se_diff)
    assert drop_model > 4 * np.hypot(se["utrecht_colour_kitchen_modelled"],
                                     se["utrecht_colour_kitchen_modelled_recession"])
