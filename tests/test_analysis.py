"""Scenario comparison, evaluation noise and mid-term calibration."""

import dataclasses
import shutil

import numpy as np
import pytest

from sibsim import cli, load_scenario, simulate
from sibsim.calibration import Evidence, load_evidence, posterior, update
from sibsim.compare import compare
from sibsim.contracts import Prior
from sibsim.errors import ScenarioError
from sibsim.evaluation import evaluation_noise, with_comparison

from .conftest import SCENARIOS

CK = SCENARIOS / "utrecht_colour_kitchen.toml"
CKG = SCENARIOS / "utrecht_colour_kitchen_guarantee.toml"
EVIDENCE = SCENARIOS / "evidence" / "utrecht_colour_kitchen_year2.toml"


def test_compare_guarantee_shifts_loss_to_payer_with_common_random_numbers():
    base, variant = load_scenario(CK), load_scenario(CKG)
    table, (rb, rv) = compare([base, variant], n_paths=600, seed=3, workers=1)
    # Same paths: identical outcome payments, the guarantee halves every loss exactly.
    np.testing.assert_array_equal(rb.paths["outcome_payments"], rv.paths["outcome_payments"])
    np.testing.assert_allclose(rv.paths["investor_loss"], rb.paths["investor_loss"] / 2, atol=1e-6)
    np.testing.assert_allclose(rb.paths["net_savings"] - rv.paths["net_savings"], rv.paths["guarantee_payouts"],
                               atol=1e-6)
    label_b, label_v = base.title, variant.title
    assert table.loc["expected_loss", (label_v, "estimate")] == pytest.approx(
        table.loc["expected_loss", (label_b, "estimate")] / 2)
    assert table.loc["expected_net_savings", (label_v, "estimate")] < table.loc["expected_net_savings", (label_b, "estimate")]


def test_compare_cli_writes_table_and_plots(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(CK), str(CKG), "--paths", "200", "--workers", "1", "--out", str(out)]) == 0
    assert "[2] The Colour Kitchen SIB, Utrecht: variant" in capsys.readouterr().out
    assert (out / "compare.csv").exists() and len(list(out.glob("compare_*.png"))) == 4


def test_evaluation_noise_falls_with_comparison_group_size(colour_kitchen):
    frame = evaluation_noise(colour_kitchen, n_paths=1500, seed=2, size_ratios=(0.5, 2.0, 8.0), workers=1)
    noise = frame["noise_sd_outcome_payments"]
    assert noise["exact counterfactual"] == 0.0
    # Sampling noise of the comparison group ~ 1/sqrt(size): bigger groups, less noise.
    assert noise["comparison group x0.5"] > noise["comparison group x2"] > noise["comparison group x8"] > 0
    ratio = noise["comparison group x0.5"] / noise["comparison group x8"]
    assert 2.0 < ratio < 8.0  # ~ sqrt(16) = 4 with a margin for the treated group's own noise
    assert ((frame["noise_share_outcome_payments"] >= 0) & (frame["noise_share_outcome_payments"] < 1)).all()


def test_exact_counterfactual_keeps_treated_paths(colour_kitchen):
    a = simulate(colour_kitchen, n_paths=300, seed=5, workers=1)
    b = simulate(with_comparison(colour_kitchen, None), n_paths=300, seed=5, workers=1)
    np.testing.assert_array_equal(a.paths["primary_outcomes"], b.paths["primary_outcomes"])


def test_posterior_is_conjugate_beta_binomial():
    prior = Prior(0.04, 0.012)
    a, b = prior.alpha_beta
    post = posterior(prior, events=28, at_risk=1020)
    expected = Prior.from_alpha_beta(a + 28, b + 1020 - 28)
    assert post.mean == pytest.approx(expected.mean) and post.sd == pytest.approx(expected.sd)
    assert post.mean == pytest.approx((a + 28) / (a + b + 1020))
    assert posterior(Prior(0.3), 5, 10) == Prior(0.3)  # known values are not updated


def test_update_moves_priors_towards_the_data_and_pools_evidence(colour_kitchen):
    evidence = [Evidence("job_with_diploma", "treated", 10, 500), Evidence("job_with_diploma", "treated", 18, 520),
                Evidence("job_without_diploma", "comparison", 30, 3000)]
    updated, table = update(colour_kitchen, evidence)
    row = table.set_index("parameter").loc["job_with_diploma"]
    assert row["events"] == 28 and row["at_risk"] == 1020
    before, after = colour_kitchen.journey.prior("job_with_diploma"), updated.journey.prior("job_with_diploma")
    assert row["observed_rate"] < after.mean < before.mean
    assert after.sd < before.sd
    assert updated.comparison.journey.prior("job_without_diploma").mean == pytest.approx(
        (Prior(0.01, 0.004).alpha_beta[0] + 30) / (sum(Prior(0.01, 0.004).alpha_beta) + 3000))
    assert updated.journey.prior("diploma") == colour_kitchen.journey.prior("diploma")  # untouched
    # job_with_diploma is a known 0 without the programme: the treated evidence leaves it there
    assert updated.comparison.journey.prior("job_with_diploma") == Prior(0.0)
    assert updated.comparison.overrides == colour_kitchen.comparison.overrides


def test_treated_evidence_leaves_an_inherited_comparison_prior_alone(colour_kitchen):
    """The comparison journey inherits relapse from the treated one: evidence on the treated relapse
    updates the treated prior only (each group draws its own), so the comparison keeps it as an override."""
    updated, table = update(colour_kitchen, [Evidence("relapse", "treated", 9, 260)])
    a, b = Prior(0.035, 0.01).alpha_beta
    assert updated.journey.prior("relapse") == Prior.from_alpha_beta(a + 9, b + 251)
    assert updated.comparison.journey.prior("relapse") == Prior(0.035, 0.01)
    assert updated.comparison.overrides == colour_kitchen.comparison.overrides + ("relapse",)
    kept = table[table["group"] == "comparison"].iloc[0]
    assert kept["parameter"] == "relapse" and kept["note"].startswith("kept")


def test_posterior_of_a_rate_is_gamma_poisson():
    """Gamma(shape k, rate r) prior, n events in E participant-months: Gamma(k + n, r + E).

    Prior mean 0.5, sd 0.25 a month: k = (0.5 / 0.25)^2 = 4, r = 0.5 / 0.25^2 = 8 (months);
    7 events in 10 months: Gamma(11, 18), mean 11/18, sd sqrt(11)/18.
    """
    post = posterior(Prior(0.5, 0.25, kind="rate"), events=7, at_risk=10)
    assert post.kind == "rate"
    assert post.mean == pytest.approx(11 / 18, rel=1e-15)
    assert post.sd == pytest.approx(np.sqrt(11) / 18, rel=1e-15)
    assert posterior(Prior(0.5, kind="rate"), 7, 10) == Prior(0.5, kind="rate")  # known: not updated
    # More events than months: fine for a rate (a mean of 1.5 events a month)
    many = posterior(Prior(0.5, 0.25, kind="rate"), events=15, at_risk=10)
    assert many.mean == pytest.approx(19 / 18, rel=1e-15)


def test_events_equal_to_at_risk_for_a_probability_and_beyond_for_a_rate_only(colour_kitchen):
    # Every trial a success: the boundary events == at_risk is a valid probability update.
    updated, _ = update(colour_kitchen, [Evidence("diploma", "treated", 40, 40)])
    a, b = Prior(0.105, 0.03).alpha_beta
    assert updated.journey.prior("diploma") == Prior.from_alpha_beta(a + 40, b)
    # One more event than trials: not a probability.
    with pytest.raises(ScenarioError) as info:
        update(colour_kitchen, [Evidence("diploma", "treated", 41, 40)])
    assert info.value.problems == ["<evidence>: evidence[0].events: must be <= at_risk (40), got 41"]
    # A rate's events can outnumber its months: Peterborough's reconviction rate, Gamma(shape k, rate r)
    # with k = (0.0948 / 0.006)^2, r = 0.0948 / 0.006^2 per month; 30 events in 20 months.
    peterborough = load_scenario(SCENARIOS / "peterborough.toml")
    updated, table = update(peterborough, [Evidence("reconviction", "treated", 30, 20)])
    k, r = (0.0948 / 0.006) ** 2, 0.0948 / 0.006**2
    post = updated.journey.prior("reconviction")
    assert post.kind == "rate"
    assert post.mean == pytest.approx((k + 30) / (r + 20), rel=1e-12)
    assert post.sd == pytest.approx(np.sqrt(k + 30) / (r + 20), rel=1e-12)
    assert table.iloc[0][["posterior_alpha", "posterior_beta"]].tolist() == pytest.approx([k + 30, r + 20])
    # the comparison's own (overridden, known) rate is untouched
    assert updated.comparison == peterborough.comparison


@pytest.mark.parametrize("name, evidence", [
    ("utrecht_colour_kitchen.toml", [Evidence("relapse", "treated", 9, 260), Evidence("diploma", "treated", 118, 1150),
                                     Evidence("job_without_diploma", "comparison", 30, 3000),
                                     Evidence("diploma", "comparison", 0, 100)]),  # a known 0: not updated
    ("peterborough.toml", [Evidence("reconviction", "treated", 300, 2400)]),
])
def test_written_variant_holds_the_posteriors_and_reloads_to_them(tmp_path, name, evidence):
    from sibsim.calibration import load_variant_text, variant_toml

    base = tmp_path / name
    shutil.copy(SCENARIOS / name, base)
    contract = load_scenario(base)
    updated, table = update(contract, evidence)
    text = variant_toml(base, tmp_path / "updated.toml", table, "updated")
    sections = {line for line in text.splitlines() if line.startswith("[")}
    groups = {e.group for e in evidence} | ({"comparison"} if "relapse" in text else set())
    assert sections == {"[meta]"} | {f"[{'journey' if g == 'treated' else 'comparison'}.parameters]" for g in groups}
    check = load_variant_text(text, tmp_path / "updated.toml")
    assert check.journey == updated.journey and check.comparison == updated.comparison


def test_a_shared_parameter_takes_the_treated_posterior_in_both_groups(tmp_path):
    from sibsim.calibration import load_variant_text, variant_toml

    base = tmp_path / "shared.toml"
    base.write_text(CK.read_text(encoding="utf-8").replace('start = "job_search"\n', 'start = "job_search"\n'
                                                           'shared = ["relapse"]\n', 1), encoding="utf-8")
    contract = load_scenario(base)
    assert contract.comparison.shared == ("relapse",)
    updated, table = update(contract, [Evidence("relapse", "treated", 9, 260)])
    assert updated.comparison.journey.prior("relapse") == updated.journey.prior("relapse") != Prior(0.035, 0.01)
    assert updated.comparison.overrides == contract.comparison.overrides
    check = load_variant_text(variant_toml(base, tmp_path / "u.toml", table, "u"), tmp_path / "u.toml")
    assert check.journey == updated.journey and check.comparison == updated.comparison


@pytest.mark.parametrize("body, fragment", [
    ("[[evidence]]\nparameter = 'relapse'\nevents = -1\nat_risk = 2\n", "evidence[0].events: must be an integer >= 0"),
    ("[[evidence]]\nparameter = 'relapse'\ngroup = 'x'\nevents = 1\nat_risk = 2\n", "evidence[0].group: must be treated"),
    ("evidence = 3\n", "evidence: must be a non-empty array of tables"),
])
def test_bad_evidence_is_one_line_per_problem(tmp_path, body, fragment):
    path = tmp_path / "e.toml"
    path.write_text(body)
    with pytest.raises(ScenarioError) as exc:
        load_evidence(path)
    assert any(line.startswith(f"{path}: ") and fragment in line for line in exc.value.problems)


def test_compare_labels_are_unique_even_for_equal_titles(colour_kitchen):
    twin = dataclasses.replace(colour_kitchen)
    table, _ = compare([colour_kitchen, twin], n_paths=50, seed=1, workers=1)
    assert len({c[0] for c in table.columns if c[0] != "unit"}) == 2


def test_evidence_on_an_inline_parameter_is_refused_with_how_to_name_it():
    from pathlib import Path

    from sibsim.calibration import check_evidence

    contract = load_scenario(Path(__file__).resolve().parent / "fixtures" / "valid_all_terms.toml")
    inline = Evidence("long_term_job->job_search", "treated", 3, 100, "evidence[0]")
    assert check_evidence(contract, [inline], "e.toml") == [
        "e.toml: evidence[0].parameter: must be a parameter declared in [journey.parameters] (an inline probability "
        "or rate cannot be updated: give it a name there), got 'long_term_job->job_search'"]
    declared = Evidence("relapse", "treated", 3, 100, "evidence[0]")
    assert check_evidence(contract, [declared], "e.toml") == []
