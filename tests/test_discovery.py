"""Scenario discovery (sibsim.discovery): PRIM finds a known box, a box found on noise does not hold up
on the held-out paths, the sampled paths are the run's own, and the command writes readable rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("prim")

from sibsim.discovery import Box, boxes_table, discover, input_columns, sampled  # noqa: E402
from sibsim.scenario import load_scenario  # noqa: E402
from sibsim.simulation import simulate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CK = load_scenario(ROOT / "scenarios" / "utrecht_colour_kitchen.toml")


def synthetic(n=8000, seed=0, shuffle=False):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"diploma": rng.uniform(0.05, 0.15, n), "relapse": rng.uniform(0.01, 0.06, n),
                      "dropout": rng.uniform(0.0, 0.02, n)})
    loss = ((x["diploma"] < 0.08) & (x["relapse"] > 0.04)).to_numpy() | (rng.random(n) < 0.03)
    if shuffle:
        loss = rng.permutation(loss)
    paths = pd.DataFrame({"investor_moic": np.where(loss, 0.7, 1.1), "net_savings": 1.0})
    return x, paths


def test_prim_finds_the_known_box():
    boxes, facts = discover(CK, data=synthetic(), max_boxes=1)
    (box,) = boxes
    limits = {name: (lo, hi) for name, lo, hi in box.limits}
    assert set(limits) == {"diploma", "relapse"}  # dropout plays no part: pruned away
    assert limits["diploma"][0] is None and limits["diploma"][1] == pytest.approx(0.08, abs=0.004)
    assert limits["relapse"][1] is None and limits["relapse"][0] == pytest.approx(0.04, abs=0.002)
    assert box.density > 0.9 and box.coverage > 0.7
    units = {"diploma": "%/month", "relapse": "%/month", "dropout": "%/month"}
    rule = box.rule(units)
    assert rule == f"diploma < {100 * limits['diploma'][1]:.2f} %/month and relapse > {100 * limits['relapse'][0]:.2f} %/month"


def test_a_box_found_on_noise_does_not_hold_up_on_the_held_out_paths():
    boxes, facts = discover(CK, data=synthetic(shuffle=True), max_boxes=2)
    for b in boxes:  # whatever PRIM fits on noise, its held-out density is the base rate
        assert abs(b.density - facts["held_out_base_rate"]) < 4 * b.density_se + 0.01
        assert b.fitted_density > b.density - 4 * b.density_se  # fitted looks at least as good


def test_the_sampled_paths_are_the_runs_own():
    c = load_scenario(ROOT / "scenarios" / "utrecht_colour_kitchen_recession.toml")
    inputs, paths = sampled(c, 1300, seed=4)
    alone = simulate(c, 1300, seed=4, workers=1).paths
    np.testing.assert_array_equal(paths["investor_moic"].to_numpy(), alone["investor_moic"].to_numpy())
    assert list(inputs.columns) == list(input_columns(c)) and "labour_market" in inputs.columns
    assert input_columns(c)["long_term_contract"] == "%" and input_columns(c)["diploma"] == "%/month"
    assert inputs["labour_market"].mean() == pytest.approx(1.0, abs=0.03)


def test_rules_read_in_the_inputs_units():
    b = Box((("diploma", None, 0.08), ("labour_market", 0.9, 1.1), ("recession", 0.5, None)), 0.7, 0.02, 0.1, 0.5,
            0.75, 100)
    assert b.rule({"diploma": "%/month", "labour_market": "x", "recession": "happens"}) == (
        "diploma < 8.00 %/month and 0.900x <= labour_market <= 1.100x and recession happens")
    t = boxes_table([b], {})
    assert list(t.columns)[:3] == ["box", "rule", "density"]


def test_the_discover_command(tmp_path, capsys):
    from sibsim.cli import main

    out = tmp_path / "d"
    assert main(["discover", str(ROOT / "scenarios" / "utrecht_colour_kitchen_modelled_recession.toml"),
                 "--paths", "3000", "--boxes", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "box 1: " in text and "of its paths, against" in text
    assert {p.name for p in out.iterdir()} == {"boxes.csv", "inputs.csv", "run.json"}
    inputs = pd.read_csv(out / "inputs.csv")
    assert len(inputs) == 3000 and "case" in inputs.columns
