"""Trust in the reports: the memo shows the run it names, one documented seed, savings within the term
beside the tail, scenario text that cannot become a spreadsheet formula, the scenario's currency on
every amount, the discount rate beside every NPV, and a cost per outcome avoided that is positive."""

import json
import math
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sibsim.metrics import NON_MONEY_UNITS
from sibsim import cli, load_scenario, report, simulate
from sibsim.cashflows import settle
from sibsim.montecarlo import simulate_outcomes

from .conftest import ROOT, SCENARIOS
from .test_report import parse

CK = SCENARIOS / "utrecht_colour_kitchen.toml"
PB = SCENARIOS / "peterborough.toml"
OBSERVED_CK = SCENARIOS / "observed" / "utrecht_colour_kitchen_example.toml"
SEEDED_COMMANDS = ("run", "compare", "noise", "update", "sensitivity", "report")


def _run(tmp_path, scenario=CK, *extra, name="run"):
    out = tmp_path / name
    assert cli.main(["run", str(scenario), "--out", str(out), "--no-plots", "--quiet", "--workers", "1",
                     *map(str, extra)]) == 0
    return out


def _section(memo: str, sid: str) -> str:
    start = memo.index(f'<section id="{sid}">')
    return memo[start:memo.index("</section>", start)]


# --- 18. the memo of a run directory, one seed ---------------------------------------------------------
def test_report_of_a_run_directory_shows_exactly_its_summary_csv(tmp_path, capsys):
    run_dir = _run(tmp_path, CK, "--paths", 1300, "--seed", 7)  # two engine blocks
    memo_path = tmp_path / "memo.html"
    assert cli.main(["report", str(run_dir), "--out", str(memo_path), "--workers", "1"]) == 0
    assert f"run {run_dir}" in capsys.readouterr().out
    memo = memo_path.read_text(encoding="utf-8")
    p = parse(memo)
    saved = pd.read_csv(run_dir / "summary.csv", index_col=0, dtype=str, keep_default_na=False)
    assert len(p.figures) >= 8
    for metric, (attrs, _) in p.figures.items():
        assert float(attrs["data-estimate"]) == float(saved.loc[metric, "estimate"]), metric
        se = float(saved.loc[metric, "std_error"] or "nan")
        assert float(attrs["data-std-error"]) == se or (math.isnan(se) and attrs["data-std-error"] == "nan")
    assert 'data-n-paths="1300"' in memo and 'data-seed="7"' in memo
    assert f"run directory {run_dir}" in memo


def test_report_of_a_run_directory_refuses_a_changed_scenario_in_one_line(tmp_path, capsys):
    scenario = tmp_path / "ck.toml"
    scenario.write_text(CK.read_text(encoding="utf-8"), encoding="utf-8")
    run_dir = _run(tmp_path, scenario, "--paths", 50)
    scenario.write_text(CK.read_text(encoding="utf-8") + "\n# edited after the run\n", encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "memo.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "changed since the run" in err and "Traceback" not in err
    assert not (tmp_path / "memo.html").exists()


def test_report_of_a_run_directory_errors_are_one_line(tmp_path, capsys):
    run_dir = _run(tmp_path, CK, "--paths", 50)
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([str(run_dir), "--paths", "60"], "own paths and seed"),  # a run directory brings its own
        ([str(empty)], "not a directory written by `sibsim run`"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert cli.main(["report", *argv, "--out", str(tmp_path / "m.html")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    # A summary.csv that the re-simulation does not reproduce (another version, an edit) is refused.
    summary = pd.read_csv(run_dir / "summary.csv", index_col=0)
    summary.loc["expected_moic", "estimate"] += 0.001
    summary.to_csv(run_dir / "summary.csv")
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "m.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did not reproduce its summary.csv" in err


def test_makefile_demo_renders_the_memo_of_the_run_it_made():
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").split("demo:", 1)[1].split("\n\n", 1)[0].splitlines()
    run = next(line for line in lines if "sibsim run " in line)
    memo = next(line for line in lines if "sibsim report " in line)
    out = re.search(r"--out (\S+)", run).group(1)
    assert re.search(rf"sibsim report {re.escape(out)}(\s|$)", memo), memo
    assert "--paths" not in memo.split("--sensitivity-paths")[0] and "--seed" not in memo


def test_memo_sensitivity_base_is_the_key_figures_run_by_default(tmp_path):
    out = tmp_path / "memo.html"
    assert cli.main(["report", str(CK), "--out", str(out), "--paths", "300", "--seed", "5", "--sensitivity",
                     "--workers", "1"]) == 0
    memo = out.read_text(encoding="utf-8")
    section = _section(memo, "sensitivity")
    assert 'data-sensitivity-run="same"' in section and "equals the key" in section
    # The tornado of the memo's own run: its base is the key figures, bit for bit.
    contract = load_scenario(CK)
    from sibsim.sensitivity import tornado

    torn = tornado(contract, n_paths=1300, seed=5)
    summary = simulate(contract, n_paths=1300, seed=5, workers=1).summary()["estimate"]
    for measure, metric in (("investor_moic", "expected_moic"), ("investor_irr_median", "median_irr"),
                            ("net_savings", "expected_net_savings")):
        assert (torn.loc[torn["measure"] == measure, "base"] == summary[metric]).all(), measure
    assert torn.attrs == {"n_paths": 1300, "seed": 5, "spawn_key": ()}


def test_memo_labels_a_smaller_sensitivity_run_as_separate(tmp_path):
    out = tmp_path / "memo.html"
    assert cli.main(["report", str(CK), "--out", str(out), "--paths", "300", "--seed", "5", "--sensitivity",
                     "--sensitivity-paths", "200", "--workers", "1"]) == 0
    section = _section(out.read_text(encoding="utf-8"), "sensitivity")
    assert 'data-sensitivity-run="separate"' in section and 'data-sensitivity-paths="200"' in section
    assert "separate run" in section and "200 simulated futures (seed 5)" in section
    assert "Monte Carlo error" in section


def test_one_documented_default_seed_for_every_command():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in SEEDED_COMMANDS:
        command = sub.choices[name]
        seed = next(a for a in command._actions if "--seed" in a.option_strings)
        assert f"(default {cli.DEFAULT_SEED}" in seed.help, (name, seed.help)
        if name != "report":  # report: a run directory brings its own seed; a scenario gets the default
            assert seed.default == cli.DEFAULT_SEED == 2015, name
        assert f"(default {cli.DEFAULT_SEED}" in command.format_help().replace("\n", " ").replace("  ", " ")


def test_the_seed_used_is_printed_in_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    excel = tmp_path / "run.xlsx"
    assert cli.main(["run", str(CK), "--paths", "50", "--out", str(out), "--no-plots", "--workers", "1"]
                    + (["--excel", str(excel)] if _has_openpyxl() else [])) == 0
    assert "paths, seed 2015," in capsys.readouterr().out.splitlines()[0]
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert manifest["seed"] == 2015 and manifest["seed_entropy"] == "2015"
    if _has_openpyxl():
        run = pd.read_excel(excel, sheet_name="Run")
        assert run.set_index("Item").loc["seed", "Value"] in (2015, "2015")
    assert cli.main(["compare", str(CK), str(CK), "--paths", "50", "--out", str(tmp_path / "cmp")]) == 0
    assert "seed 2015" in capsys.readouterr().out.splitlines()[0]
    assert json.loads((tmp_path / "cmp" / "run.json").read_text())["seed"] == 2015
    assert cli.main(["noise", str(CK), "--paths", "40", "--out", str(tmp_path / "noise")]) == 0
    assert "seed 2015" in capsys.readouterr().out.splitlines()[0]
    memo = tmp_path / "memo.html"
    assert cli.main(["report", str(CK), "--paths", "50", "--out", str(memo), "--workers", "1"]) == 0
    assert "seed 2015" in capsys.readouterr().out and 'data-seed="2015"' in memo.read_text(encoding="utf-8")


def _has_openpyxl() -> bool:
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        return False
    return True


# --- 19. savings within the term beside the tail ------------------------------------------------------
def test_summary_reports_savings_within_the_term_beside_the_tail(colour_kitchen):
    n, seed = 300, 3  # one engine block: its paths can be re-created below
    res = simulate(colour_kitchen, n_paths=n, seed=seed, workers=1)
    s = res.summary()
    names = list(s.index)
    for metric in ("expected_gross_savings", "expected_net_savings", "probability_pays_more_than_saves"):
        assert names.index(f"{metric}_within_term") == names.index(metric) + 1  # side by side
    # Independently from the cashflow ledgers of the same block.
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed).spawn(1)[0]))
    cash = settle(colour_kitchen, simulate_outcomes(colour_kitchen, n, rng))
    term = colour_kitchen.term_months
    gross_term = cash.gross_savings[:, :term].sum(axis=1)
    net_term = cash.net_savings.sum(axis=1) - cash.gross_savings[:, term:].sum(axis=1)
    np.testing.assert_allclose(res.paths["gross_savings_within_term"], gross_term, rtol=1e-12)
    np.testing.assert_allclose(res.paths["net_savings_within_term"], net_term, rtol=1e-12, atol=1e-6)
    assert s.loc["expected_net_savings_within_term", "estimate"] == pytest.approx(net_term.mean(), rel=1e-12)
    assert s.loc["probability_pays_more_than_saves_within_term", "estimate"] == np.mean(net_term < 0)
    # The 12-month tail only adds savings: without it the payer pays more than it saves far more often.
    assert s.loc["probability_pays_more_than_saves_within_term", "estimate"] > \
        s.loc["probability_pays_more_than_saves", "estimate"] + 0.1
    assert "12-month tail" in s.loc["expected_net_savings", "note"]
    assert "term only" in s.loc["expected_net_savings_within_term", "note"]


def test_no_savings_are_counted_after_term_and_tail(colour_kitchen):
    # With no tail the ledgers still run to the last payment (month 51), after the 48-month term.
    contract = replace(colour_kitchen, tail_months=0)
    assert contract.horizon_months > contract.term_months
    res = simulate(contract, n_paths=200, seed=1, workers=1)
    assert (res.expected_ledgers["gross_savings"].loc[contract.term_months:] == 0).all()
    s = res.summary()["estimate"]
    for metric in ("expected_gross_savings", "expected_net_savings", "probability_pays_more_than_saves"):
        assert s[metric] == s[f"{metric}_within_term"], metric


def test_memo_shows_savings_within_the_term_and_says_what_the_tail_assumes(tmp_path):
    res = simulate(load_scenario(CK), n_paths=300, seed=2, workers=1)
    memo = report.render_report(res)
    p = parse(memo)
    section = _section(memo, "key-figures")
    for metric in ("expected_net_savings_within_term", "probability_pays_more_than_saves_within_term",
                   "expected_net_savings", "probability_pays_more_than_saves"):
        assert f'data-metric="{metric}"' in section, metric
        assert float(p.figures[metric][0]["data-estimate"]) == res.summary().loc[metric, "estimate"]
    assert "term and 12-month tail" in section
    assert "12 months after the 48-month term" in section and "tail_months = 12" in section
    # Peterborough models no savings: no tail figures and no tail text.
    pb = report.render_report(simulate(load_scenario(PB), n_paths=100, seed=1, workers=1))
    assert 'data-metric="expected_net_savings_within_term"' not in _section(pb, "key-figures")


def test_tornado_moves_the_tail(colour_kitchen):
    from sibsim.sensitivity import tornado

    torn = tornado(colour_kitchen, n_paths=300, seed=4)
    rows = torn[torn["assumption"] == "tail_months"].set_index("measure")
    assert set(rows.index) == {"investor_moic", "investor_irr_median", "net_savings"}
    assert tuple(rows.loc["net_savings", ["low_setting", "base_setting", "high_setting"]]) == (0, 12, 24)
    ns = rows.loc["net_savings"]
    assert ns["low"] < ns["base"] - 3 * ns["low_se"] and ns["high"] > ns["base"] + 3 * ns["high_se"]
    # The investors are paid by a rate card within the term: the tail cannot reach them.
    assert abs(rows.loc["investor_moic", "high"] - rows.loc["investor_moic", "base"]) < 1e-12
    # The same base as every other row, and the tail is the largest effect on the payer here.
    net = torn[torn["measure"] == "net_savings"]
    assert (net["base"] == ns["base"]).all() and net.iloc[0]["assumption"] == "tail_months"
    memo = report.render_report(simulate(colour_kitchen, n_paths=300, seed=4, workers=1), sensitivity=torn)
    assert "Months after the term in which savings are counted (tail)" in _section(memo, "sensitivity")
    assert "at 24 months" in _section(memo, "sensitivity")


# --- 15. spreadsheet formula injection --------------------------------------------------------------------
INJECTED = {
    'name = "Gemeente Utrecht"': 'name = "=HYPERLINK(\\"http://x.example\\",\\"pay\\")"',
    'name = "Start Foundation"': 'name = "+Start Foundation"',
    'title = "The Colour Kitchen SIB, Utrecht (2015-2019)"': 'title = "=1+1 Colour Kitchen"',
}


@pytest.fixture
def injected(tmp_path):
    text = CK.read_text(encoding="utf-8")
    for old, new in INJECTED.items():
        assert old in text
        text = text.replace(old, new)
    text = text.replace("assumptions = [", 'assumptions = [\n  "@SUM(1,2) assumed",\n  "-2+3 assumed",', 1)
    path = tmp_path / "injected.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_formula_like_text_and_the_csv_helper():
    from sibsim.safetext import csv_safe, csv_text, formula_like

    for text in ("=1+1", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert formula_like(text) and csv_text(text) == "'" + text
    for value in ("Gemeente", "a=b", "", -5, 3.0, None):
        assert not formula_like(value) and csv_text(value) == value
    frame = pd.DataFrame({"name": ["=A1", "ok"], "amount": [-5.0, 2.0]}, index=pd.Index(["-x", "y"], name="k"))
    safe = csv_safe(frame)
    assert list(safe["name"]) == ["'=A1", "ok"] and list(safe.index) == ["'-x", "y"]
    assert safe["amount"].tolist() == [-5.0, 2.0] and frame["name"].iloc[0] == "=A1"  # numbers stay numbers


def test_workbook_writes_formula_like_scenario_text_as_text(injected, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    from sibsim.excel import write_excel

    res = simulate(load_scenario(injected), n_paths=100, seed=1, workers=1)
    from sibsim.excel_formulas import BY_MONTH, SETTLEMENT

    book = openpyxl.load_workbook(write_excel(res, tmp_path / "x.xlsx"))
    texts = {}
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if sheet.title in (SETTLEMENT, BY_MONTH) and cell.data_type == "f":
                    # sibsim's own formulas: never any text of the scenario's in them
                    assert "HYPERLINK" not in cell.value and "SUM(1,2)" not in cell.value
                    continue
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    texts[cell.value] = cell
    for text in ('=HYPERLINK("http://x.example","pay")', "@SUM(1,2) assumed",
                 "-2+3 assumed", "=1+1 Colour Kitchen"):
        assert text in texts, text  # kept exactly, as text
        assert texts[text].data_type == "s" and texts[text].quotePrefix, text
    summary = book["Summary"]
    assert any(isinstance(c.value, float) and c.value < 0 for row in summary.iter_rows() for c in row)
    # Every NPV names its discount rate in the workbook too (item 13).
    sheet = pd.read_excel(tmp_path / "x.xlsx", sheet_name="Summary", index_col=0)
    assert sheet.loc["expected_npv", "Note"] == "NPV at 5 % a year (analysis.investor_discount_rate)"
    percentiles = pd.read_excel(tmp_path / "x.xlsx", sheet_name="Path percentiles", index_col=0)
    assert percentiles.loc["payer_npv", "Note"] == "NPV at 3 % a year (analysis.public_discount_rate)"
    terms = pd.read_excel(tmp_path / "x.xlsx", sheet_name="Contract terms", header=None).astype(str)
    assert terms.apply(lambda col: col.str.contains("discount rate for NPVs")).any().any()


def test_settle_and_compare_csv_write_formula_like_text_as_text(injected, tmp_path):
    formula_like = re.compile(r"[=+\-@\t\r]").match
    out = tmp_path / "settle"
    assert cli.main(["settle", str(injected), str(OBSERVED_CK), "--out", str(out)]) == 0
    investors = (out / "investors.csv").read_text(encoding="utf-8")
    assert "\n'+Start Foundation," in investors and "\n+Start" not in investors
    frame = pd.read_csv(out / "investors.csv", index_col=0)
    assert pd.api.types.is_float_dtype(frame["capital_called"])  # numbers stay numbers
    schedule = pd.read_csv(out / "schedule.csv", index_col=0)
    assert all(not formula_like(c) for c in schedule.columns)
    assert cli.main(["compare", str(injected), str(CK), "--paths", "30", "--out", str(tmp_path / "cmp")]) == 0
    header = (tmp_path / "cmp" / "compare.csv").read_text(encoding="utf-8").splitlines()[0]
    assert "'=1+1 Colour Kitchen" in header and ",=1+1" not in header
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv", index_col=0)  # one header row
    assert (table.filter(like=": estimate").dtypes == float).all() and len(table.filter(like=": estimate").columns) == 2


# --- 14. the scenario's currency on every amount ----------------------------------------------------------
def test_run_summary_prints_the_scenarios_currency(tmp_path, capsys):
    assert cli.main(["run", str(PB), "--paths", "50", "--out", str(tmp_path / "pb"), "--no-plots",
                     "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "EUR" not in printed
    line = next(line for line in printed.splitlines() if line.startswith("expected_outcome_payments"))
    assert re.search(r"GBP [\d,]+ +GBP [\d,]+ +GBP", line), line
    summary = simulate(load_scenario(PB), n_paths=50, seed=1, workers=1).summary()
    money = summary[~summary["unit"].isin(NON_MONEY_UNITS)]
    assert len(money) >= 15 and (money["unit"] == "GBP").all()
    assert cli.main(["compare", str(PB), str(PB), "--paths", "30"]) == 0
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.startswith("expected_outcome_payments"))
    assert line.count("GBP ") == 6 and "EUR" not in printed  # two runs and their difference
    assert cli.main(["validate", str(PB)]) == 0
    assert "GBP 5,000,000 committed" in capsys.readouterr().out


# --- 13. the discount rate beside every NPV ---------------------------------------------------------------
def test_every_npv_names_its_discount_rate(colour_kitchen, tmp_path, capsys):
    s = simulate(colour_kitchen, n_paths=100, seed=1, workers=1).summary()
    assert s.loc["expected_npv", "note"].startswith("NPV at 5 % a year")
    assert s.loc["expected_npv_net_savings", "note"].startswith("NPV at 3 % a year")
    nominal = replace(colour_kitchen, investor_discount_rate=0.0)
    res = simulate(nominal, n_paths=100, seed=1, workers=1)
    assert "NPV at 0 % a year" in res.summary().loc["expected_npv", "note"]
    assert "nominal sum" in res.summary().loc["expected_npv", "note"]
    memo = report.render_report(res)
    appendix = _section(memo, "all-estimates")
    assert "NPV at 0 % a year (analysis.investor_discount_rate = 0): the nominal sum" in appendix
    assert "present value is the nominal sum" in _section(memo, "assumptions")
    assert cli.main(["run", str(CK), "--paths", "50", "--out", str(tmp_path / "r"), "--no-plots",
                     "--workers", "1"]) == 0
    line = next(li for li in capsys.readouterr().out.splitlines() if li.startswith("expected_npv "))
    assert "NPV at 5 % a year" in line
    assert pd.read_csv(tmp_path / "r" / "summary.csv", index_col=0).loc["expected_npv", "note"].startswith("NPV at")
    assert "this run: NPV at 3 % a year" in (tmp_path / "r" / "paths_columns.txt").read_text(encoding="utf-8")


# --- 16. cost per net outcome for an outcome meant to fall ------------------------------------------------
def test_cost_per_net_outcome_is_positive_for_an_outcome_paid_to_fall():
    pb = load_scenario(PB)
    s = simulate(pb, n_paths=400, seed=1, workers=1).summary()
    assert s.loc["cost_per_net_primary_outcome", "estimate"] > 0
    assert "avoided" in s.loc["cost_per_net_primary_outcome", "note"]
    # A better programme (fewer reconviction events) avoids more: more net outcomes, not fewer.
    journey = pb.journey
    rate = journey.prior("reconviction")
    better = replace(pb, journey=journey.with_parameters({"reconviction": replace(rate, mean=rate.mean * 0.9)}))
    worse_net = simulate(pb, n_paths=400, seed=1, workers=1).paths["net_primary_outcomes"].mean()
    better_net = simulate(better, n_paths=400, seed=1, workers=1).paths["net_primary_outcomes"].mean()
    assert better_net > worse_net > 0
    memo = report.render_report(simulate(pb, n_paths=100, seed=1, workers=1))
    assert "cost per reconviction event avoided" in _section(memo, "all-estimates")
    # Outcomes paid to rise keep treated minus counterfactual.
    ck = simulate(load_scenario(CK), n_paths=200, seed=1, workers=1).summary()
    assert ck.loc["cost_per_net_primary_outcome", "estimate"] > 0 and ck.loc["cost_per_net_primary_outcome",
                                                                                "note"] == ""


def test_a_formula_like_currency_never_reaches_the_csv_files(tmp_path, capsys):
    # The currency is scenario text too (the unit of every money row of summary.csv): the loader only
    # takes a three-letter code, so "@EUR" is refused in one line before anything is written.
    text = CK.read_text(encoding="utf-8").replace('currency = "EUR"', 'currency = "@EUR"')
    scenario = tmp_path / "at.toml"
    scenario.write_text(text, encoding="utf-8")
    assert cli.main(["run", str(scenario), "--out", str(tmp_path / "run"), "--paths", "40", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "meta.currency" in err, err
    assert not (tmp_path / "run").exists()


def test_report_of_a_run_directory_refuses_a_changed_base_scenario(tmp_path, capsys):
    # The variant's own file is unchanged, but the file it extends changed: run.json holds the SHA-256
    # of every file read, so the report names the changed base in one line.
    for name in ("utrecht_colour_kitchen.toml", "utrecht_colour_kitchen_guarantee.toml"):
        (tmp_path / name).write_text((SCENARIOS / name).read_text(encoding="utf-8"), encoding="utf-8")
    run_dir = _run(tmp_path, tmp_path / "utrecht_colour_kitchen_guarantee.toml", "--paths", 60)
    base = tmp_path / "utrecht_colour_kitchen.toml"
    base.write_text(base.read_text(encoding="utf-8").replace("job_sustained = 5_500", "job_sustained = 6_500"),
                    encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "memo.html"), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"scenario {base} changed since the run" in err, err
    assert not (tmp_path / "memo.html").exists()
