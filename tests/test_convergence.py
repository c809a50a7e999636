"""Convergence: the headline estimates on the first k paths, in the run outputs and the memo."""

import numpy as np
import pandas as pd
import pytest

from sibsim import cli, simulate
from sibsim.convergence import FIRST_STEP, HEADLINE, QUANTILE_FROM, Z95, convergence, steps
from sibsim.metrics import summarise

from .conftest import SCENARIOS

CK = SCENARIOS / "utrecht_colour_kitchen.toml"


def test_steps_run_1_2_5_up_to_the_run_and_end_with_it():
    assert steps(FIRST_STEP) == [100]
    assert steps(FIRST_STEP + 1) == [100, 101]
    assert steps(50) == [50]  # fewer paths than the first step: the run alone
    assert steps(1000) == [100, 200, 500, 1000]
    assert steps(1001) == [100, 200, 500, 1000, 1001]
    assert steps(20_000) == [100, 200, 500, 1000, 2000, 5000, 10_000, 20_000]


@pytest.fixture(scope="module")
def run(request):
    from sibsim import load_scenario

    return simulate(load_scenario(CK), n_paths=4000, seed=8, workers=1)


def test_each_row_is_the_summary_of_the_first_paths(run):
    frame = run.convergence()
    assert list(dict.fromkeys(frame["metric"])) == [m for m, _ in HEADLINE]
    for k in (200, 1000, 4000):
        first = summarise(run.paths.iloc[:k], {g: v[:k] for g, v in run.outcome_shares.items()}, run.contract)
        rows = frame[frame["paths"] == k].set_index("metric")
        np.testing.assert_array_equal(rows["estimate"], first.loc[rows.index, "estimate"])
        expected = first.loc[rows.index, "std_error"].copy()
        if k < QUANTILE_FROM:  # a quantile's batch error needs 100 paths a batch: not shown below
            expected["median_irr"] = np.nan
        np.testing.assert_array_equal(rows["std_error"], expected)
    last = frame[frame["paths"] == 4000].set_index("metric")
    np.testing.assert_array_equal(last["estimate"], run.summary().loc[last.index, "estimate"])
    open_ = ~frame["unit"].isin(["probability", "share"])  # probabilities' intervals are cut to [0, 1]
    np.testing.assert_allclose(frame.loc[open_, "low"], (frame["estimate"] - Z95 * frame["std_error"])[open_],
                               rtol=0, atol=0)
    np.testing.assert_allclose(frame.loc[open_, "high"], (frame["estimate"] + Z95 * frame["std_error"])[open_],
                               rtol=0, atol=0)


def test_errors_shrink_as_one_over_the_root_of_the_paths(run):
    # A mean's error on 4,000 paths is half its error on 1,000 (to sampling noise): a table that
    # measured every row on all paths (ratio 1) or on a fixed number would fail.
    frame = run.convergence().set_index(["metric", "paths"])
    for metric in ("expected_outcome_payments", "expected_net_savings", "expected_moic"):
        ratio = frame.loc[(metric, 1000), "std_error"] / frame.loc[(metric, 4000), "std_error"]
        assert ratio == pytest.approx(2.0, rel=0.25), (metric, ratio)


def test_quantile_errors_start_at_100_paths_a_batch_and_probabilities_stay_in_0_1(run):
    frame = run.convergence().set_index(["metric", "paths"])
    assert np.isnan(frame.loc[("median_irr", 1000), "std_error"])  # 50 paths a batch: too few
    assert np.isfinite(frame.loc[("median_irr", 2000), "std_error"])  # 100 a batch: the boundary
    assert np.isnan(frame.loc[("median_irr", 1000), ["low", "high"]]).all()
    probabilities = frame[frame["unit"] == "probability"]
    assert (probabilities["low"] >= 0).all() and (probabilities["high"] <= 1).all()
    # a probability near 0 (one path in 100 pays more than it saves) has its interval cut at 0
    paths = run.paths.copy()
    paths["net_savings"] = paths["net_savings"].abs() + 1.0
    paths.loc[0, "net_savings"] = -1.0
    near_zero = convergence(paths, run.outcome_shares, run.contract).set_index(["metric", "paths"])
    row = near_zero.loc[("probability_pays_more_than_saves", 100)]
    assert row["estimate"] == 0.01 and row["estimate"] - Z95 * row["std_error"] < 0 and row["low"] == 0.0


def test_metrics_a_deal_lacks_are_left_out(run):
    frame = convergence(run.paths, run.outcome_shares, run.contract,
                        metrics=(("expected_moic", "multiple"), ("no_such_metric", "nothing")))
    assert set(frame["metric"]) == {"expected_moic"} and list(frame["paths"]) == steps(4000)


def test_run_writes_the_convergence_table_and_plot(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["run", str(CK), "--paths", "300", "--workers", "1", "--out", str(out)]) == 0
    table = pd.read_csv(out / "convergence.csv")
    assert list(table.columns) == ["paths", "metric", "label", "estimate", "std_error", "low", "high", "unit"]
    assert sorted(set(table["paths"])) == [100, 200, 300]
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    last = table[table["paths"] == 300].set_index("metric")
    np.testing.assert_allclose(last["estimate"], summary.loc[last.index, "estimate"], rtol=1e-12)
    assert (out / "convergence.png").stat().st_size > 10_000


def test_the_memo_method_section_shows_how_the_figures_settle(tmp_path):
    memo = tmp_path / "memo.html"
    assert cli.main(["report", str(CK), "--paths", "600", "--workers", "1", "--out", str(memo)]) == 0
    html = memo.read_text(encoding="utf-8")
    method = html[html.index('<section id="method">'):]
    method = method[:method.index("</section>")]
    assert "<h3>How the figures settle</h3>" in method and 'id="fig-convergence"' in method
    for k in ("100 futures", "200 futures", "500 futures", "600 futures"):
        assert k in method
    assert "Investors&#x27; chance of a loss" in method or "Investors' chance of a loss" in method
