"""The memo's named what-ifs: each case changes what it says and nothing else, moves the money the
way it must, and is paired with the base (its error is that of a difference, not of two runs)."""

import dataclasses

import numpy as np
import pytest

from sibsim import simulate
from sibsim.stress import MEASURES, standard_stresses, stress_test

N = 1200


@pytest.fixture(scope="module")
def ck_stress(colour_kitchen):
    return stress_test(colour_kitchen, n_paths=N, seed=3)


def _row(frame, stress, measure):
    return frame[(frame["stress"] == stress) & (frame["measure"] == measure)].iloc[0]


def test_each_case_changes_what_it_says(colour_kitchen):
    cases = {s.key: s for s in standard_stresses(colour_kitchen)}
    assert list(cases) == ["outflow", "relapse", "comparison", "labour_market", "payment_later"]
    j, cj = colour_kitchen.journey, colour_kitchen.comparison.journey

    def moved(old, new):
        return {k: new.prior(k).mean / old.prior(k).mean for k in old.parameter_names
                if new.prior(k) != old.prior(k)}

    out = cases["outflow"].variant
    assert moved(j, out.journey) == pytest.approx({"job_with_diploma": 0.8, "job_without_diploma": 0.8})
    assert out.comparison == colour_kitchen.comparison and out.payer == colour_kitchen.payer
    assert all(out.journey.prior(k).sd == j.prior(k).sd for k in j.parameter_names)  # the sd is kept
    rel = cases["relapse"].variant
    assert moved(j, rel.journey) == pytest.approx({"relapse": 1.5, "relapse_long_term": 1.5})
    comp = cases["comparison"].variant
    assert comp.journey == j
    # the comparison group finds jobs without a diploma only (a known 0 stays 0)
    assert moved(cj, comp.comparison.journey) == pytest.approx({"job_without_diploma": 1.2})
    dip = cases["labour_market"].variant
    assert moved(j, dip.journey) == pytest.approx({"job_with_diploma": 0.8, "job_without_diploma": 0.8})
    assert moved(cj, dip.comparison.journey) == pytest.approx({"job_without_diploma": 0.8})
    later = cases["payment_later"].variant
    assert later.payer.payment_lag_months == colour_kitchen.payer.payment_lag_months + 12
    assert later.journey == j and later.comparison == colour_kitchen.comparison


def test_the_money_moves_the_way_it_must(ck_stress):
    def diff(stress, measure):
        row = _row(ck_stress, stress, measure)
        return row["difference"], row["difference_se"]

    for stress in ("outflow", "relapse", "comparison", "labour_market"):
        d, se = diff(stress, "net_savings")
        assert d < -4 * se, stress  # every stress case costs the payer
    d, se = diff("outflow", "outcome_payments")
    assert d < -4 * se  # fewer outcomes, less paid
    d, se = diff("comparison", "outcome_payments")
    assert d < -4 * se  # a better comparison group: fewer net outcomes to pay for
    d, se = diff("payment_later", "gross_savings")
    assert abs(d) < 1e-6 and se < 1e-6  # the same futures: the savings do not move
    d, se = diff("payment_later", "investor_irr_median")
    assert d < -4 * se  # the same money later: a lower return


def test_a_later_payment_without_return_caps_pays_exactly_the_same(colour_kitchen):
    # Without return caps the waterfall passes every payment on: paying a year later moves no euro,
    # on every path. Only a paired computation gets 0 exactly (two runs would differ by noise).
    uncapped = dataclasses.replace(colour_kitchen, investors=tuple(
        dataclasses.replace(i, return_cap=None) for i in colour_kitchen.investors))
    frame = stress_test(uncapped, n_paths=300, seed=1)
    row = _row(frame, "payment_later", "outcome_payments")
    assert abs(row["difference"]) < 1e-6 and row["difference_se"] < 1e-6
    assert row["value"] == pytest.approx(row["base"], abs=1e-6)


def test_pairing_makes_the_error_that_of_a_difference(colour_kitchen, ck_stress):
    summary = simulate(colour_kitchen, n_paths=N, seed=3, workers=1).summary()
    # Two independent runs would give an error of about sqrt(2) x one run's; paired it is smaller: the
    # prior draws are shared exactly, the individual journeys in part (measured: 0.52 of it for
    # payments, 0.23 for net savings).
    for measure, metric, most in (("outcome_payments", "expected_outcome_payments", 0.7),
                                  ("net_savings", "expected_net_savings", 0.4)):
        alone = summary.loc[metric, "std_error"]
        assert _row(ck_stress, "outflow", measure)["difference_se"] < most * np.sqrt(2) * alone, measure


def test_the_base_is_the_runs_own(colour_kitchen, ck_stress):
    res = simulate(colour_kitchen, n_paths=N, seed=3, workers=1)
    for m in ("outcome_payments", "net_savings"):
        np.testing.assert_allclose(ck_stress[ck_stress["measure"] == m]["base"], res.paths[m].mean(), rtol=1e-12)
    assert set(ck_stress["measure"]) == set(MEASURES) and ck_stress.attrs["n_paths"] == N


def test_a_case_the_scenario_names_nothing_for_says_why(colour_kitchen):
    plain = dataclasses.replace(colour_kitchen, relapse_parameters=())
    frame = stress_test(plain, n_paths=200, seed=1)
    rows = frame[frame["stress"] == "relapse"]
    assert len(rows) == len(MEASURES) and rows["difference"].isna().all()
    assert (rows["reason"] == "the scenario names no relapse parameters (analysis.relapse_parameters)").all()
    assert frame[frame["stress"] != "relapse"]["reason"].eq("").all()


def test_the_memo_answers_each_question_in_one_line(tmp_path):
    import re

    from sibsim import cli

    from .conftest import SCENARIOS

    memo = tmp_path / "memo.html"
    assert cli.main(["report", str(SCENARIOS / "utrecht_colour_kitchen.toml"), "--paths", "800", "--seed", "5",
                     "--out", str(memo)]) == 0
    html = memo.read_text(encoding="utf-8")
    section = html[html.index("<h3>What if ...?</h3>"):html.index("</section>", html.index("What if ...?"))]
    for label in ("Outflow 20 % lower", "Relapse 50 % higher", "Comparison group 20 % better", "Labour-market dip",
                  "Payment one year later"):
        assert section.count(f"<b>{label}</b>") == 1, label
    assert "job with diploma, job without diploma x 0.8 (programme group)" in section
    assert re.search(r"-EUR [\d,]+ \(± [\d,]+\)", section)  # a change with its paired error
    assert "<h3>Break-even success</h3>" in section
    assert re.search(r"The investors get their capital back on average if the programme is at least <b>0\.9\d* "
                     r"times</b>", section)
    assert "Gemeente Utrecht saves on average as much as it pays if the programme is at least" in section


def test_a_shared_parameter_moves_both_groups_as_the_model_does():
    # New York's job finding is one labour market (comparison.shared): lowering it for the programme
    # group lowers it for the comparison group too. Found by review: the paired run moved only one.
    from sibsim import load_scenario

    from .conftest import SCENARIOS

    contract = load_scenario(SCENARIOS / "new_york_state_employment.toml")
    assert "job_find" in contract.comparison.shared
    frame = stress_test(contract, n_paths=1000, seed=5)
    row = _row(frame, "outflow", "outcome_payments")
    assert "job find shared with the comparison group, which moves too" in row["change"]
    case = next(s for s in standard_stresses(contract) if s.key == "outflow")
    base = simulate(contract, n_paths=1000, seed=5, workers=1).paths["outcome_payments"]
    moved = simulate(case.variant, n_paths=1000, seed=5, workers=1).paths["outcome_payments"]
    direct = moved.mean() - base.mean()
    # the direct runs are not paired: their errors add up
    error = np.hypot(row["difference_se"], np.hypot(base.std(), moved.std()) / np.sqrt(1000))
    assert abs(row["difference"] - direct) < 4 * error, (row["difference"], direct, error)
    assert "job_find" not in next(s for s in standard_stresses(contract) if s.key == "comparison").change


def test_one_base_run_serves_the_what_ifs_and_the_break_even_search(colour_kitchen):
    from sibsim.sensitivity import _Paired, break_even

    base = _Paired(colour_kitchen, 300, 4)
    shared = stress_test(colour_kitchen, n_paths=300, seed=4, paired=base)
    alone = stress_test(colour_kitchen, n_paths=300, seed=4)
    assert shared.equals(alone)
    assert break_even(colour_kitchen, "investor", 300, 4, paired=base) == break_even(colour_kitchen, "investor", 300, 4)
    for n, seed in ((301, 4), (300, 5)):  # another run is refused, never used
        with pytest.raises(ValueError, match="paired: must be the base run"):
            stress_test(colour_kitchen, n_paths=n, seed=seed, paired=base)
