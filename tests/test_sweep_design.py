"""Sweeps and design searches: common random numbers (bit for bit against single runs), grids and
their one-line errors, a design search that finds a known optimum, and the chosen scenario file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from sibsim.design import (Constraint, chosen_scenario_text, design, parse_constraint, parse_objective, pareto,
                           reads_back)
from sibsim.errors import ScenarioError
from sibsim.expectation import expected_group
from sibsim.montecarlo import start_distributions
from sibsim.scenario import contract_from_dict, parse_toml
from sibsim.simulation import simulate
from sibsim.sweep import Axis, evaluate, parse_axis, simulation_key, sweep, variants
from sibsim.toml_text import dumps

ROOT = Path(__file__).resolve().parent.parent
CK = ROOT / "scenarios" / "utrecht_colour_kitchen.toml"


def test_parse_axis():
    assert parse_axis("payer.payment_cap=800000:1000000:3") == Axis("payer.payment_cap", ("800000", "900000", "1000000"))
    assert [float(v) for v in parse_axis("x=0.1:0.3:3").values] == pytest.approx([0.1, 0.2, 0.3], abs=1e-15)
    assert parse_axis('a.b=[1, 2],[3]').values == ("[1, 2]", "[3]")
    for bad, fragment in (("nofield", "FIELD=V1"), ("x=1:1:3", "LO < HI"), ("x=1:2:1", "N >= 2"), ("x=1,,2", "empty"),
                          ("x=1,1", "twice"), ("x=a:b:3", "two numbers")):
        with pytest.raises(ScenarioError) as info:
            parse_axis(bad)
        (line,) = info.value.problems
        assert fragment in line and "\n" not in line


def test_every_variant_is_its_single_run_bit_for_bit():
    """Settlement-only variants share one simulation per block; a journey change simulates its own:
    either way each variant's paths are exactly those of simulate() with the same seed."""
    vs = variants(CK, [parse_axis("payer.rate_card.diploma=1500,2500"), parse_axis("journey.parameters.relapse.mean=0.035,0.05")])
    contracts = [v.contract for v in vs]
    assert len({simulation_key(c) for c in contracts}) == 2  # the relapse changes what is simulated
    frames = evaluate(contracts, 1300, seed=9)
    for c, frame in zip(contracts, frames):
        alone = simulate(c, 1300, seed=9, workers=1).paths
        for col in ("investor_moic", "outcome_payments", "net_savings", "investor_irr"):
            np.testing.assert_array_equal(frame[col].to_numpy(), alone[col].to_numpy())


def test_a_refused_combination_stays_in_the_table_with_its_reason():
    table, _ = sweep(CK, [parse_axis("payer.payment_cap=-5,1000000")], 200, seed=1)
    assert list(table["valid"]) == [False, True]
    assert "payer.payment_cap: must be > 0, got -5" in table.loc[0, "problem"]
    assert np.isnan(table.loc[0, "expected_moic"]) and np.isfinite(table.loc[1, "expected_moic"])


def test_higher_prices_never_lower_what_is_due_path_by_path_on_common_random_numbers():
    """What the formula makes due (paid, plus retained above the caps) rises with the price on every
    path. (What investors receive need not: under a 10 %-a-year return cap, money repaid earlier
    accrues less capped return; that is the cap's terms, not noise.)"""
    _, vs = sweep(CK, [parse_axis("payer.rate_card.job_sustained=4000:7000:4")], 600, seed=2)
    frames = evaluate([v.contract for v in vs], 600, seed=2)
    due = np.array([(f["outcome_payments"] + f["retained_by_payer"]).to_numpy() for f in frames])
    assert np.all(np.diff(due, axis=0) >= -1e-6)
    assert np.any(np.diff(due, axis=0) > 1.0)


def test_design_finds_the_known_optimum():
    """Only diplomas are paid, at price p, with known probabilities: E[payments] = p E[diplomas], and
    E[diplomas] is exact (the journey's expectation). With payments <= 2,550 E[diplomas] the best
    price on a 100-euro grid is 2,500 (maximising payments); the search must find it."""
    fixed = ["journey.parameters.diploma=0.105", "journey.parameters.dropout=0.012",
             "payer.rate_card.job_sustained=0", "payer.rate_card.long_term_contract=0"]
    (base,) = [v.contract for v in variants(CK, [], fixed)]
    k = base.outcome_names.index("diploma")
    params = np.array([[p.mean for _, p in base.journey.parameters]])
    intake = np.array([c.intake_month for c in base.cohorts])
    sizes = np.array([c.size for c in base.cohorts])
    exact = expected_group(base.journey, base.measures, params, intake, sizes, start_distributions(base),
                           base.horizon_months)[0, :, k].sum()
    # by hand: each participant gets a diploma in its 12 training months with q sum ((1-q)(1-r))^t
    q, r = 0.105, 0.012
    assert exact == pytest.approx(252 * q * sum(((1 - q) * (1 - r)) ** t for t in range(12)), rel=1e-12)
    budget = 2550 * exact
    axes = [parse_axis("payer.rate_card.diploma=1000:4000:31")]
    r = design(CK, axes, [f"expected_outcome_payments<={budget}"], "max:expected_outcome_payments", 2000, seed=5,
               sets=fixed)
    assert r.table.loc[r.chosen, "payer.rate_card.diploma"] == "2500"
    assert r.chosen_values == {"payer.rate_card.diploma": "2500"}
    # payments are the price times the same diplomas on every path (common random numbers), up to the
    # prices at which the investors' return cap starts to bind (4,000 here)
    low = r.table["payer.rate_card.diploma"].astype(float) <= 3000
    pay = r.table.loc[low, "expected_outcome_payments"].to_numpy()
    prices = r.table.loc[low, "payer.rate_card.diploma"].astype(float).to_numpy()
    np.testing.assert_allclose(pay / prices, pay[0] / prices[0], rtol=1e-12)
    assert pay[0] / prices[0] == pytest.approx(exact, rel=0.01)  # the diplomas' mean: the exact expectation
    assert reads_back(chosen_scenario_text(CK, r), r)


def test_design_search_end_to_end(tmp_path):
    axes = [parse_axis("payer.rate_card.diploma=1500,3000"), parse_axis("payer.rate_card.job_sustained=5500,7000")]
    r = design(CK, axes, ["probability_of_loss<=0.2", "expected_irr>=0.04"], "max:expected_net_savings", 800, seed=3)
    t = r.table
    assert t["feasible"].tolist() == [bool(a and b) for a, b in zip(t["probability_of_loss"] <= 0.2, t["expected_irr"] >= 0.04)]
    assert r.chosen is not None
    feasible = t[t["feasible"]]
    assert t.loc[r.chosen, "expected_net_savings"] == feasible["expected_net_savings"].max()
    text = chosen_scenario_text(CK, r)
    assert reads_back(text, r)  # the file reads back to the chosen terms
    assert "design (payer.rate_card.diploma" in contract_from_dict(parse_toml(text, "d.toml"), "d.toml").title
    none = design(CK, axes, ["probability_of_loss<=0.0"], "max:expected_net_savings", 300, seed=3)
    assert none.chosen is None and not none.table["feasible"].any()


def test_constraint_and_objective_parsing():
    assert parse_constraint("probability_of_loss<=0.2") == Constraint("probability_of_loss", "<=", 0.2)
    c = Constraint("expected_irr", ">=", 0.04)
    assert c.met(0.04) and not c.met(0.0399999)  # the bound itself meets it
    assert Constraint("x", "<=", 0.2).met(0.2)
    assert parse_objective("min:probability_of_loss") == ("probability_of_loss", -1)
    for bad in ("loss<0.2", "nonsense<=1", "probability_of_loss<=abc", "probability_of_loss<=inf"):
        with pytest.raises(ScenarioError):
            parse_constraint(bad)
    with pytest.raises(ScenarioError):
        parse_objective("maximise:expected_moic")


def test_pareto_front():
    import pandas as pd

    t = pd.DataFrame({"valid": [True] * 4, "a": [1, 2, 3, 2], "b": [3, 2, 1, 1]})
    assert list(pareto(t, "a", "b")) == [0, 1, 2]


def test_toml_text_round_trips_every_shipped_scenario():
    from sibsim.scenario import _read_document

    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        doc = _read_document(path)
        assert tomllib.loads(dumps(doc)) == doc, path.name


def test_cli_sweep_and_design(tmp_path, capsys):
    from sibsim.cli import main

    out = tmp_path / "sweep"
    assert main(["sweep", str(CK), "--grid", "payer.rate_card.diploma=1500,2500", "--paths", "300", "--out", str(out)]) == 0
    assert (out / "sweep.csv").is_file() and (out / "run.json").is_file()
    d = tmp_path / "design"
    code = main(["design", str(CK), "--search", "payer.rate_card.diploma=1500,3000", "--constraint",
                 "probability_of_loss<=0.5", "--paths", "300", "--out", str(d)])
    assert code == 0
    assert {p.name for p in d.iterdir()} == {"design.csv", "frontier.png", "design.toml", "run.json"}
    assert contract_from_dict(tomllib.loads((d / "design.toml").read_text(encoding="utf-8")), "d.toml").title.endswith(")")
    code = main(["design", str(CK), "--search", "payer.rate_card.diploma=1500", "--constraint",
                 "probability_of_loss<=0", "--paths", "200", "--out", str(tmp_path / "none")])
    assert code == 1 and "no candidate meets every constraint" in capsys.readouterr().out
    assert main(["design", str(CK), "--search", "payer.rate_card.diploma=1500", "--constraint", "bogus<=1"]) != 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --constraint bogus<=1: unknown metric")


def test_the_sweeps_metrics_are_the_runs_summary():
    """metrics_of reads a few columns; each metric equals the run's own summary row."""
    from sibsim.sweep import metrics_of

    (v,) = variants(CK, [parse_axis("payer.rate_card.diploma=2000")])
    results = simulate(v.contract, 900, seed=3, workers=1)
    summary = results.summary()
    mine = metrics_of(v.contract, results.paths)
    for name in ("expected_moic", "median_irr", "probability_of_loss", "expected_outcome_payments",
                 "expected_net_savings", "probability_pays_more_than_saves"):
        assert mine[name][0].estimate()[0] == pytest.approx(summary.loc[name, "estimate"], rel=1e-12, abs=1e-12), name
    table, _ = sweep(CK, [parse_axis("payer.rate_card.diploma=2000")], 900, seed=3)
    assert table.loc[0, "expected_moic"] == pytest.approx(summary.loc["expected_moic", "estimate"], rel=1e-12)
