"""Comparing deals: paired differences and their Monte Carlo errors, common random numbers read
from the runs, and the refusals (one scenario, several currencies)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from sibsim import cli, load_scenario, simulate
from sibsim.compare import compare, differences, flat_columns, shares_random_numbers
from sibsim.estimators import N_BATCHES, PAIRED_BATCH_FROM, Statistic
from sibsim.sensitivity import success_variant
from sibsim.whatif import load_whatif

from .conftest import SCENARIOS

CK = SCENARIOS / "utrecht_colour_kitchen.toml"
CKG = SCENARIOS / "utrecht_colour_kitchen_guarantee.toml"
PB = SCENARIOS / "peterborough.toml"


# --- the estimators, worked by hand ---------------------------------------------------------------
def test_paired_differences_of_means_probabilities_and_ratios_by_hand():
    a, b = np.array([1.0, 2.0, 3.0, 6.0]), np.array([2.0, 2.0, 5.0, 7.0])
    # b - a = 1, 0, 2, 1: mean 1, sd sqrt(2/3), se sqrt(2/3) / 2
    est, se = Statistic.mean(b).difference(Statistic.mean(a), paired=True)
    assert est == 1.0 and se == pytest.approx(np.sqrt(2 / 3) / 2, rel=1e-15)
    # independent: the two means' errors in quadrature (sd of a: sqrt(14/3), of b: sqrt(6))
    est, se = Statistic.mean(b).difference(Statistic.mean(a), paired=False)
    assert est == 1.0 and se == pytest.approx(np.hypot(np.sqrt(14 / 3) / 2, np.sqrt(6) / 2), rel=1e-15)
    # probabilities: the indicators' differences 0, 1, 0, -1: mean 0, sd sqrt(2/3)
    est, se = Statistic.probability([True, False, True, True]).difference(
        Statistic.probability([True, True, True, False]), paired=True)
    assert est == 0.0 and se == pytest.approx(np.sqrt(2 / 3) / 2, rel=1e-15)
    # ratio of means, delta method: residuals (num - r den) / mean(den) differenced per path
    num_a, den_a = np.array([2.0, 4.0, 6.0, 8.0]), np.array([1.0, 1.0, 2.0, 4.0])  # r = 20 / 8
    num_b, den_b = np.array([3.0, 4.0, 6.0, 11.0]), np.array([1.0, 2.0, 2.0, 3.0])  # r = 24 / 8
    res_a = (num_a - 2.5 * den_a) / 2.0
    res_b = (num_b - 3.0 * den_b) / 2.0
    est, se = Statistic.ratio(num_b, den_b).difference(Statistic.ratio(num_a, den_a), paired=True)
    assert est == pytest.approx(0.5, rel=1e-15)
    assert se == pytest.approx(np.std(res_b - res_a, ddof=1) / 2, rel=1e-14)
    # a denominator averaging zero has no ratio, and no difference error
    assert np.isnan(Statistic.ratio(num_b, np.zeros(4)).difference(Statistic.ratio(num_a, den_a), True)[1])


def test_quantile_differences_use_the_batches_differences():
    rng = np.random.default_rng(4)
    a = rng.normal(size=PAIRED_BATCH_FROM)  # the smallest run with a paired batch error: 100 paths a batch
    b = a + rng.normal(scale=0.1, size=a.size)
    est, se = Statistic.quantile(b, 0.5).difference(Statistic.quantile(a, 0.5), paired=True)
    assert est == pytest.approx(np.median(b) - np.median(a), rel=1e-14)
    per_batch = [np.median(y) - np.median(x) for x, y in zip(np.array_split(a, N_BATCHES), np.array_split(b, N_BATCHES))]
    assert se == pytest.approx(np.std(per_batch, ddof=1) / np.sqrt(N_BATCHES), rel=1e-14)
    # one path fewer: no paired error (batch errors of differences run low with small batches) ...
    assert np.isnan(Statistic.quantile(b[1:], 0.5).difference(Statistic.quantile(a[1:], 0.5), paired=True)[1])
    # ... while a single quantile keeps its batch error down to two paths a batch
    assert np.isfinite(Statistic.quantile(b[:2 * N_BATCHES], 0.5).estimate()[1])
    assert np.isnan(Statistic.quantile(b[:2 * N_BATCHES - 1], 0.5).estimate()[1])
    # runs of different lengths cannot be paired: independent errors
    est, se = Statistic.mean(b).difference(Statistic.mean(a[1:]), paired=True)
    assert se == pytest.approx(np.hypot(Statistic.mean(b).estimate()[1], Statistic.mean(a[1:]).estimate()[1]))


def test_an_unknown_estimator_is_refused():
    with pytest.raises(ValueError, match="Statistic.kind"):
        Statistic("median", (np.zeros(3),))


@pytest.mark.parametrize("kind", ["mean", "probability", "quantile", "upper_tail_mean"])
def test_paired_errors_are_calibrated_and_independent_ones_are_not(kind):
    """Over 300 replications of two strongly correlated runs of 4,000 paths, the paired error matches
    the spread of the difference estimates; the independent formula (what a comparison without common
    random numbers would have to use) is more than twice too large: the check has the power to tell them
    apart.  (Batch errors of quantile differences need about 100 paths a batch: at 20 they ran 30 % low.)"""
    rng = np.random.default_rng(11)
    n, reps = 4000, 300
    build = {"mean": Statistic.mean, "probability": lambda x: Statistic.probability(x > 0.3),
             "quantile": lambda x: Statistic.quantile(x, 0.5), "upper_tail_mean": Statistic.upper_tail_mean}[kind]
    diffs, paired, independent = [], [], []
    for _ in range(reps):
        common = rng.normal(size=n)
        a, b = common, common + 0.2 + rng.normal(scale=0.15, size=n)
        est, se = build(b).difference(build(a), paired=True)
        diffs.append(est)
        paired.append(se)
        independent.append(build(b).difference(build(a), paired=False)[1])
    spread = np.std(diffs, ddof=1)
    assert np.mean(paired) == pytest.approx(spread, rel=0.2)
    assert np.mean(independent) > 2 * spread


# --- common random numbers, read from the runs ----------------------------------------------------
def test_runs_share_random_numbers_only_when_they_drew_the_same():
    ck, guaranteed = load_scenario(CK), load_scenario(CKG)
    base = simulate(ck, n_paths=300, seed=5, workers=1)
    # Terms only (a guarantee): the same draws, path by path.
    assert shares_random_numbers(simulate(guaranteed, n_paths=300, seed=5, workers=1), base)
    assert shares_random_numbers(simulate(dataclasses.replace(ck), n_paths=300, seed=5, workers=1), base)
    # Another seed, another number of paths, or a changed prior (Beta draws by rejection consume
    # another number of uniforms): not the same random numbers.
    assert not shares_random_numbers(simulate(ck, n_paths=300, seed=6, workers=1), base)
    assert not shares_random_numbers(simulate(ck, n_paths=301, seed=5, workers=1), base)
    assert not shares_random_numbers(simulate(success_variant(ck, 0.9), n_paths=300, seed=5, workers=1), base)
    # A payer's default risk in one deal only draws uniforms the other does not: not shared either
    # (the digest covers the end of each block) ...
    risky = simulate(load_whatif(CK, ["payer.default_probability=0.1"]), n_paths=300, seed=5, workers=1)
    assert not shares_random_numbers(risky, base)
    # ... while two deals with the same risk and other prices draw the same numbers.
    pricier = load_whatif(CK, ["payer.default_probability=0.1", "payer.rate_card.diploma=3000"])
    assert shares_random_numbers(simulate(pricier, n_paths=300, seed=5, workers=1), risky)
    unknown = dataclasses.replace(base, draws="")
    assert not shares_random_numbers(unknown, unknown)


def test_compare_differences_are_the_estimates_differences_with_paired_errors():
    ck, guaranteed = load_scenario(CK), load_scenario(CKG)
    table, (rb, rg) = compare([ck, guaranteed], n_paths=600, seed=3, workers=1)
    label_b, label_g = ck.title, guaranteed.title
    assert table.attrs["common_random_numbers"] == {label_b: True, label_g: True}
    assert (label_b, "difference") not in table.columns  # the base has no difference from itself
    both = table.index[table[(label_b, "estimate")].notna() & table[(label_g, "estimate")].notna()]
    np.testing.assert_array_equal(table.loc[both, (label_g, "difference")],
                                  table.loc[both, (label_g, "estimate")] - table.loc[both, (label_b, "estimate")])
    # The guarantee moves the payer's net savings by exactly its payouts, path by path: the paired
    # error of the difference is the payouts' own error, far below either run's error.
    se = table.loc["expected_net_savings", (label_g, "difference_std_error")]
    assert se == pytest.approx(table.loc["expected_guarantee_payouts", (label_g, "std_error")], rel=1e-9)
    assert se < table.loc["expected_net_savings", (label_b, "std_error")] / 5
    # Outcome payments are identical on every path: a difference of 0 with an error of 0.
    assert table.loc["expected_outcome_payments", (label_g, "difference")] == 0.0
    assert table.loc["expected_outcome_payments", (label_g, "difference_std_error")] == 0.0
    # Without common random numbers the same function falls back to independent errors.
    other = simulate(success_variant(ck, 0.9), n_paths=600, seed=3, workers=1)
    frame = differences(other, rb)
    b, o = rb.summary(), other.summary()
    assert frame.loc["expected_net_savings", "std_error"] == pytest.approx(
        np.hypot(b.loc["expected_net_savings", "std_error"], o.loc["expected_net_savings", "std_error"]), rel=1e-12)


def test_compare_refuses_one_scenario_and_mixed_currencies():
    ck = load_scenario(CK)
    with pytest.raises(ValueError, match="two or more scenarios are needed, got 1"):
        compare([ck], n_paths=10, workers=1)
    with pytest.raises(ValueError, match=r"different currencies \(EUR, GBP\)"):
        compare([ck, load_scenario(PB)], n_paths=10, workers=1)


# --- the command ----------------------------------------------------------------------------------
def test_compare_command_one_line_refusals(capsys):
    assert cli.main(["compare", str(CK), "--paths", "20", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: compare: two or more scenarios are needed, got 1 ({CK})"]
    assert cli.main(["compare", str(CK), str(PB), "--paths", "20", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {PB}: meta.currency: GBP, but {CK} is in EUR: amounts in different currencies "
                   "cannot be compared"]
    # two scenarios in one currency (the boundary): compared
    assert cli.main(["compare", str(PB), str(PB), "--paths", "20", "--workers", "1"]) == 0


def test_compare_command_says_whether_random_numbers_were_shared_and_writes_one_header_row(tmp_path, capsys):
    variant = tmp_path / "fewer_diplomas.toml"
    text = CK.read_text(encoding="utf-8")
    assert 'title = "The Colour Kitchen SIB, Utrecht (2015-2019)"' in text
    # A changed prior: another scenario whose Beta draws consume other uniforms.
    changed = text.replace('title = "The Colour Kitchen SIB, Utrecht (2015-2019)"', 'title = "Fewer diplomas"')
    changed = changed.replace("mean = 0.105", "mean = 0.09", 1)
    assert changed.count("mean = 0.09") >= 1
    variant.write_text(changed, encoding="utf-8")
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(CK), str(CKG), str(variant), "--paths", "300", "--workers", "1",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("compare: 300 paths, seed 2015")
    assert printed[2].endswith("the same random numbers as [1] (common random numbers): differences paired path by path")
    assert "[3] Fewer diplomas: not the random numbers of [1]" in printed[3]
    assert "[2] - [1]" in printed[4] and "[3] - [1]" in printed[4]
    header = (out / "compare.csv").read_text(encoding="utf-8").splitlines()[0]
    table = pd.read_csv(out / "compare.csv", index_col=0)  # one header row
    assert header.startswith("metric,unit,")
    assert "Fewer diplomas: difference" in table.columns and "Fewer diplomas: difference_std_error" in table.columns
    assert table.loc["expected_moic", "unit"] == "x"
    assert (table.filter(like=": ").dtypes == float).all()
    import json

    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert manifest["common_random_numbers_with_first"] == [True, True, False]


def test_flat_columns_keeps_every_column_once(colour_kitchen):
    table, _ = compare([colour_kitchen, dataclasses.replace(colour_kitchen)], n_paths=60, seed=1, workers=1)
    flat = flat_columns(table)
    assert len(flat.columns) == len(table.columns) == len(set(flat.columns))
    assert flat.columns[0] == "unit" and flat.index.name == "metric"
