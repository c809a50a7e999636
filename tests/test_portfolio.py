"""Portfolios (sibsim.portfolio): aligned paths, shared draws, the known law of independent deals,
money identities, calendar placement, and the portfolio file's rules at their boundaries."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sibsim.errors import ScenarioError
from sibsim.portfolio import _seeds, deal_shock, diversification, months_between, simulate_portfolio
from sibsim.scenario_portfolio import load_portfolio
from sibsim.simulation import simulate
from sibsim.uncertainty import Shock

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
SHIPPED = SCENARIOS / "portfolios" / "start_foundation_employment.toml"


def write(tmp_path, text: str) -> Path:
    rel = os.path.relpath(SCENARIOS, tmp_path).replace(os.sep, "/")
    path = tmp_path / "p.toml"
    path.write_text(text.replace("{S}", rel), encoding="utf-8")
    return path


TWO_CK = """
[portfolio]
title = "two Colour Kitchens"
[[holdings]]
label = "A"
scenario = "{S}/utrecht_colour_kitchen.toml"
amount = 734_000
[[holdings]]
label = "B"
scenario = "{S}/utrecht_colour_kitchen.toml"
amount = 734_000
"""


def test_two_identical_independent_deals_halve_the_variance_of_the_mean_return(tmp_path):
    p = load_portfolio(write(tmp_path, TWO_CK))
    n = 4000
    r = simulate_portfolio(p, n, seed=7)
    a, b = r.deals["A"]["moic"], r.deals["B"]["moic"]
    moic = r.path_table()["moic"].to_numpy()
    np.testing.assert_allclose(moic, (a + b) / 2, rtol=1e-12)  # equal, deterministic calls: the mean return
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(n)
    ratio = moic.var(ddof=1) / ((a.var(ddof=1) + b.var(ddof=1)) / 4)
    assert ratio == pytest.approx(1.0, abs=0.12)  # var of the mean of two = half of one's
    assert a.var() / b.var() == pytest.approx(1.0, abs=0.12)


def test_a_shared_factor_makes_the_deals_move_together_and_the_test_can_tell(tmp_path):
    text = TWO_CK + """
[[factors]]
name = "labour_market"
sigma = 1.0
"""
    p = load_portfolio(write(tmp_path, text))
    n = 4000
    r = simulate_portfolio(p, n, seed=7)
    a, b = r.deals["A"]["moic"], r.deals["B"]["moic"]
    moic = r.path_table()["moic"].to_numpy()
    assert np.corrcoef(a, b)[0, 1] > 0.3
    assert moic.var(ddof=1) / ((a.var(ddof=1) + b.var(ddof=1)) / 4) > 1.3
    table, (together, apart) = diversification(p, n, seed=7)
    assert table.loc["sd_moic", "shared"] > table.loc["sd_moic", "independent"] * 1.1
    assert abs(np.corrcoef(apart.deals["A"]["moic"], apart.deals["B"]["moic"])[0, 1]) < 4 / np.sqrt(n)
    # the expected MOIC does not depend on the dependence (a paired difference within its error)
    assert abs(table.loc["expected_moic", "difference"]) < 4 * table.loc["expected_moic", "difference_std_error"]


def test_a_deal_in_a_portfolio_is_the_deal_run_alone(tmp_path):
    p = load_portfolio(write(tmp_path, TWO_CK))
    n = 1500
    r = simulate_portfolio(p, n, seed=11)
    seeds, _ = _seeds(11, 2)
    alone = simulate(p.holdings[1].contract, n, seed=seeds[1], workers=1).paths
    np.testing.assert_array_equal(r.deals["B"]["moic"], alone["investor_moic"].to_numpy())
    np.testing.assert_array_equal(r.deals["B"]["outcome_payments"], alone["outcome_payments"].to_numpy())
    same = simulate_portfolio(p, n, seed=11, independent=True)  # nothing shared: nothing changes
    np.testing.assert_array_equal(same.called, r.called)
    np.testing.assert_array_equal(same.received, r.received)


def test_money_adds_up_across_holdings_to_the_cent():
    p = load_portfolio(SHIPPED)
    r = simulate_portfolio(p, 600, seed=3)
    seeds, shared_seed = _seeds(3, len(p.holdings))
    from sibsim.portfolio import deal_paths, shared_draws
    common = shared_draws(p.shared, shared_seed, 600)
    called = np.zeros_like(r.called)
    for h, s in zip(p.holdings, seeds):
        d = deal_paths(h, s, 600, common)
        called[:, h.offset:h.offset + d["called"].shape[1]] += h.share * d["called"]
        assert np.all(np.abs(d["called"].sum(axis=1) * h.share - h.share * d["called"].sum(axis=1)) < 0.005)
    np.testing.assert_allclose(called, r.called, rtol=0, atol=0.005)
    # Start Foundation holds all its commitments: 367,000 + 340,000 called on every path
    np.testing.assert_allclose(r.called.sum(axis=1), 707_000.0, rtol=0, atol=0.005)


def test_the_shipped_portfolio_places_the_deals_and_the_recession_in_calendar_time():
    p = load_portfolio(SHIPPED)
    ck, bz = p.holdings
    assert (p.start, ck.offset, bz.offset) == ("2014-01", 15, 0)  # Colour Kitchen starts in 2015-04
    assert ck.share == 1.0 and ck.investor == "Start Foundation"
    (s_ck,) = ck.contract.uncertainty.shocks
    (s_bz,) = bz.contract.uncertainty.shocks
    assert (s_ck.start_month, s_ck.months) == (9, 18) and (s_bz.start_month, s_bz.months) == (24, 18)
    assert s_bz.groups == ("treated",)  # Buzinezzclub's counterfactual is the contract's model
    assert p.shared_names == ("dutch_labour_market", "recession")
    r = simulate_portfolio(p, 500, seed=1)
    assert set(r.shared) == {"dutch_labour_market", "recession"}


def test_deal_shock_known_values():
    s = Shock("r", 24, 18, ("x",), -0.3)
    assert deal_shock(s, 15, 60) == Shock("r", 9, 18, ("x",), -0.3)
    assert deal_shock(s, 30, 60) == Shock("r", 0, 12, ("x",), -0.3)  # begun before the deal: its rest
    assert deal_shock(s, 42, 60) is None  # over before the deal starts
    assert deal_shock(s, 0, 24) is None   # after the deal's horizon
    assert deal_shock(s, 0, 25) == s
    assert months_between("2014-01", "2015-04") == 15 and months_between("2015-04-30", "2015-04") == 0


@pytest.mark.parametrize("edit, field, fragment", [
    (("amount = 734_000\n[[holdings]]", "amount = 734_000.01\n[[holdings]]"), "holdings[0].amount", "must be <="),
    (('label = "B"', 'label = "A"'), "holdings[1].label", "must be unique"),
    (('amount = 734_000\n[[holdings]]', 'amount = 734_000\ninvestor = "Nobody"\n[[holdings]]'),
     "holdings[0].investor", "must be an investor"),
    (('amount = 734_000\n[[holdings]]', 'amount = 0\n[[holdings]]'), "holdings[0].amount", "must be > 0"),
    (('title = "two Colour Kitchens"', 'title = "two Colour Kitchens"\nshared = ["labour_market"]'),
     "portfolio.shared[0]", "at least two holdings"),
    (('scenario = "{S}/utrecht_colour_kitchen.toml"\namount = 734_000\n[[holdings]]',
      'scenario = "{S}/utrecht_colour_kitchen.json"\namount = 734_000\n[[holdings]]'), "holdings[0].scenario", ".toml"),
])
def test_portfolio_file_rules(tmp_path, edit, field, fragment):
    old, new = edit
    assert old in TWO_CK
    path = write(tmp_path, TWO_CK.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        load_portfolio(path)
    (line,) = info.value.problems
    assert line.startswith(f"{path}: {field}: ") and fragment in line, line


def test_amount_equal_to_the_commitment_is_accepted(tmp_path):
    p = load_portfolio(write(tmp_path, TWO_CK))
    assert p.holdings[0].share == 1.0


def test_a_holding_without_a_start_is_refused(tmp_path):
    text = TWO_CK.replace("utrecht_colour_kitchen.toml", "custody_days.toml").replace("734_000", "1")
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_portfolio(path)
    assert any("holdings[0].start: missing" in line for line in info.value.problems)


def test_a_broken_holding_reports_its_own_file(tmp_path):
    (tmp_path / "bad.toml").write_text('extends = "x.toml"\n', encoding="utf-8")
    path = write(tmp_path, TWO_CK.replace("{S}/utrecht_colour_kitchen.toml", "bad.toml", 1))
    with pytest.raises(ScenarioError) as info:
        load_portfolio(path)
    assert all("\n" not in line for line in info.value.problems)
    assert any("bad.toml: extends" in line for line in info.value.problems)


def test_the_portfolio_command_writes_its_outputs_and_never_overwrites_what_it_did_not_write(tmp_path, capsys):
    from sibsim.cli import main

    out = tmp_path / "out"
    assert main(["portfolio", str(SHIPPED), "--paths", "300", "--seed", "4", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"summary.csv", "diversification.csv", "paths.csv",
                                              "portfolio_moic.png", "run.json"}
    text = capsys.readouterr().out
    assert "shared, drawn once per path: dutch_labour_market, recession" in text
    assert main(["portfolio", str(SHIPPED), "--paths", "300", "--seed", "4", "--out", str(out)]) == 0  # its own
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    assert main(["portfolio", str(SHIPPED), "--paths", "300", "--out", str(mine)]) != 0
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_a_broken_portfolio_is_one_line_per_problem(tmp_path, capsys):
    from sibsim.cli import main

    path = write(tmp_path, TWO_CK.replace("amount = 734_000", "amount = -5", 1))
    assert main(["portfolio", str(path), "--paths", "10"]) != 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"error: {path}: holdings[0].amount: must be > 0, got -5"


def test_validate_tells_a_portfolio_apart(tmp_path, capsys):
    from sibsim.cli import main

    assert main(["validate", str(SHIPPED)]) == 0
    assert capsys.readouterr().out.strip().endswith("shared: dutch_labour_market, recession")
    path = write(tmp_path, TWO_CK.replace('label = "B"', 'label = "A"'))
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().out.strip() == f"{path}: holdings[1].label: must be unique, 'A' appears twice"


def test_a_one_deal_portfolio_reads_as_the_deals_own_summary(tmp_path):
    one = TWO_CK[:TWO_CK.index('[[holdings]]\nlabel = "B"')]
    p = load_portfolio(write(tmp_path, one))
    r = simulate_portfolio(p, 900, seed=5)
    seeds, _ = _seeds(5, 1)
    alone = simulate(p.holdings[0].contract, 900, seed=seeds[0], workers=1).summary()
    mine = r.summary()
    for ours, theirs in (("expected_moic", "expected_moic"), ("probability_of_loss", "probability_of_loss"),
                         ("payer Gemeente Utrecht: expected_net_savings", "expected_net_savings"),
                         ("payer Gemeente Utrecht: probability_pays_more_than_saves", "probability_pays_more_than_saves"),
                         ("payer Gemeente Utrecht: expected_outcome_payments", "expected_outcome_payments")):
        assert mine.loc[ours, "estimate"] == pytest.approx(alone.loc[theirs, "estimate"], rel=1e-12, abs=1e-12), ours
