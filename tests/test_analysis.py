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
    assert row["observed_rate"] < updated.journey.job_with_diploma.mean < colour_kitchen.journey.job_with_diploma.mean
    assert updated.journey.job_with_diploma.sd < colour_kitchen.journey.job_with_diploma.sd
    assert updated.comparison.journey.job_without_diploma.mean == pytest.approx((Prior(0.01, 0.004).alpha_beta[0] + 30)
                                                                                / (sum(Prior(0.01, 0.004).alpha_beta) + 3000))
    assert updated.journey.diploma == colour_kitchen.journey.diploma  # untouched


def test_update_cli_writes_a_variant_that_reloads(tmp_path, capsys):
    # The variant extends its base by bare file name, so it is written next to (a copy of) the base.
    base = tmp_path / CK.name
    shutil.copy(CK, base)
    out = tmp_path / "updated.toml"
    assert cli.main(["update", str(base), str(EVIDENCE), "--out", str(out), "--paths", "300", "--month", "24"]) == 0
    text = capsys.readouterr().out
    assert "Re-forecast" in text and "from month 24 on" in text
    contract = load_scenario(out)
    updated, _ = update(load_scenario(CK), load_evidence(EVIDENCE))
    assert contract.journey == updated.journey
    assert contract.investors == updated.investors and contract.payer == updated.payer
    assert cli.main(["update", str(CK), str(EVIDENCE), "--out", str(out)]) == 2  # no silent overwrite


@pytest.mark.parametrize("body, fragment", [
    ("[[evidence]]\nparameter = 'jobs'\nevents = 1\nat_risk = 2\n", "evidence[0].parameter: must be one of"),
    ("[[evidence]]\nparameter = 'relapse'\nevents = 5\nat_risk = 2\n", "evidence[0].events: must be <= at_risk (2), got 5"),
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
