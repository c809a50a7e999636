"""The command line: run writes complete outputs atomically; validate lists problems; errors are one line."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from sibsim import cli, load_scenario, simulate
from sibsim.metrics import PATH_COLUMNS

from .conftest import ROOT, SCENARIOS

CK = SCENARIOS / "utrecht_colour_kitchen.toml"


def run(*args):
    return cli.main([str(a) for a in args])


def test_run_writes_every_output(tmp_path, capsys):
    out = tmp_path / "ck"
    assert run("run", CK, "--paths", 400, "--seed", 3, "--out", out, "--workers", 1) == 0
    printed = capsys.readouterr().out
    assert "expected_moic" in printed and "+/- s.e." in printed
    names = {p.name for p in out.iterdir()}
    assert {"summary.csv", "paths.csv", "cashflows.csv", "expected_ledgers.csv", "run.json",
            "irr_distribution.png", "cash_fan_investors.png", "cash_fan_payer.png", "outflow.png",
            "net_savings.png"} <= names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging directory left behind"
    paths = pd.read_csv(out / "paths.csv", index_col="path")
    assert len(paths) == 400 and list(paths.columns) == list(PATH_COLUMNS)
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["n_paths"] == 400 and manifest["seed"] == 3
    # The CSV holds exactly what the API returns for the same seed.
    again = simulate(load_scenario(CK), n_paths=400, seed=3, workers=1)
    pd.testing.assert_series_equal(paths["investor_moic"], again.paths["investor_moic"], check_names=False,
                                   check_index=False, rtol=1e-12)
    cash = pd.read_csv(out / "cashflows.csv")
    assert set(cash["party"]) == {"investors", "payer"}
    assert (cash["p05"] <= cash["p50"] + 1e-6).all() and (cash["p50"] <= cash["p95"] + 1e-6).all()
    ledgers = pd.read_csv(out / "expected_ledgers.csv", index_col="month")
    # Expected ledgers reconcile: paid + retained = due; calls total = capital called.
    assert (ledgers["outcome_payments"] + ledgers["retained_by_payer"] - ledgers["outcome_payments_due"]).abs().max() < 1e-6
    assert ledgers["capital_calls"].sum() == pytest.approx(734_000, abs=1e-6)


def test_rerun_same_scenario_replaces_and_other_scenario_is_refused(tmp_path, capsys):
    out = tmp_path / "ck"
    assert run("run", CK, "--paths", 50, "--seed", 1, "--out", out, "--no-plots", "--quiet") == 0
    assert run("run", CK, "--paths", 60, "--seed", 1, "--out", out, "--no-plots", "--quiet") == 0
    assert len(pd.read_csv(out / "paths.csv")) == 60
    other = tmp_path / "other.toml"
    shutil.copy(CK, other)
    assert run("run", other, "--paths", 50, "--out", out, "--no-plots", "--quiet") == 2
    err = capsys.readouterr().err
    assert "holds the outputs of 'sibsim run' for another scenario" in err and "--force" in err
    assert len(pd.read_csv(out / "paths.csv")) == 60  # untouched
    assert run("run", other, "--paths", 50, "--out", out, "--no-plots", "--quiet", "--force") == 0
    assert len(pd.read_csv(out / "paths.csv")) == 50


def test_refuses_a_directory_that_is_not_an_output(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert run("run", CK, "--paths", 20, "--out", out, "--no-plots", "--quiet") == 2
    assert "not a sibsim output directory" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me"


def test_failed_write_leaves_previous_outputs(tmp_path, monkeypatch):
    out = tmp_path / "ck"
    assert run("run", CK, "--paths", 30, "--seed", 1, "--out", out, "--no-plots", "--quiet") == 0
    before = (out / "paths.csv").read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    assert run("run", CK, "--paths", 40, "--seed", 2, "--out", out, "--no-plots", "--quiet") == 130
    assert (out / "paths.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"], "partial files left behind"


def test_validate_ok_and_problems(tmp_path, capsys):
    assert run("validate", CK) == 0
    assert "ok: The Colour Kitchen SIB" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    text = CK.read_text().replace("commitment = 367_000", "commitment = -5", 1)
    text = text.replace("relapse = { mean = 0.035, sd = 0.01 }", "relapse = 1.3", 1)
    bad.write_text(text)
    assert run("validate", bad) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert f"{bad}: investors[0].commitment: must be > 0, got -5" in lines
    assert f"{bad}: journey.parameters.relapse: must be <= 1, got 1.3" in lines


def test_run_with_bad_scenario_is_one_line_per_problem_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(CK.read_text().replace("size = 21", "size = 0", 1))
    proc = subprocess.run([sys.executable, "-m", "sibsim.cli", "run", str(bad), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {bad}: cohorts[0].size: must be >= 1, got 0"
    assert not (tmp_path / "o").exists()


def test_bad_command_line_values():
    with pytest.raises(SystemExit) as exc:
        run("run", CK, "--paths", "-3", "--out", "x")
    assert exc.value.code == 2


def test_format_summary_has_every_metric(colour_kitchen):
    summary = simulate(colour_kitchen, n_paths=100, seed=1, workers=1).summary()
    text = cli.format_summary(summary)
    for metric in summary.index:
        assert metric in text


def test_progress_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    import io

    stream = io.StringIO()
    bar = cli._Progress(stream)
    bar(500, 1000)
    bar(1000, 1000)
    text = stream.getvalue()
    assert "500/1,000 paths" in text and "1,000/1,000 paths" in text and text.endswith("\n")
    # Not a terminal (as under pytest and CI): nothing but the summary is printed.
    assert run("run", CK, "--paths", 30, "--out", tmp_path / "o", "--no-plots") == 0
    captured = capsys.readouterr()
    assert "paths" not in captured.err and "[#" not in captured.err
    # On a terminal the bar is drawn on stderr.
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert run("run", CK, "--paths", 30, "--out", tmp_path / "o", "--no-plots") == 0
    assert "30/30 paths" in capsys.readouterr().err


def test_validate_reports_a_scenario_problem_once_when_another_file_checks_against_it(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(CK.read_text().replace("commitment = 367_000", "commitment = -5", 1))
    evidence = tmp_path / "ev.toml"
    evidence.write_text('[meta]\nscenario = "bad.toml"\n\n[[evidence]]\nparameter = "relapse"\n'
                        'events = 1\nat_risk = 10\n')
    assert run("validate", bad, evidence) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    problem = f"{bad}: investors[0].commitment: must be > 0, got -5"
    assert lines.count(problem) == 1, lines
    assert run("validate", SCENARIOS / "peterborough.toml") == 0
    assert "committed by 1 investor; term" in capsys.readouterr().out  # one investor, not "1 investors"
