"""Excel export (optional extra ``sibsim[excel]``; ``make test`` installs it)."""

import pandas as pd
import pytest

from sibsim import cli, simulate
from sibsim.excel import write_excel

from .conftest import SCENARIOS

openpyxl = pytest.importorskip("openpyxl", reason="Excel export needs: pip install 'sibsim[excel]'")


def test_workbook_holds_values_that_match_the_run(colour_kitchen, tmp_path):
    res = simulate(colour_kitchen, n_paths=300, seed=4, workers=1)
    path = write_excel(res, tmp_path / "ck.xlsx")
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Summary", "Expected cashflows", "Percentiles", "Assumptions", "Run"]
    summary = pd.read_excel(path, sheet_name="Summary", index_col=0)
    pd.testing.assert_series_equal(summary["estimate"], res.summary()["estimate"], check_names=False, rtol=1e-12)
    ledgers = pd.read_excel(path, sheet_name="Expected cashflows", index_col=0)
    assert ledgers["capital_calls"].sum() == pytest.approx(734_000, abs=1e-6)
    # Values, not formulas.
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert not (isinstance(cell.value, str) and cell.value.startswith("=")), (sheet.title, cell.coordinate)
    assumptions = pd.read_excel(path, sheet_name="Assumptions")
    assert (assumptions["kind"] == "source").sum() == len(dict(colour_kitchen.meta)["sources"])
    assert not list(tmp_path.glob(".*")), "temporary file left behind"


def test_run_with_excel_flag(tmp_path):
    target = tmp_path / "x" / "run.xlsx"
    assert cli.main(["run", str(SCENARIOS / "peterborough.toml"), "--paths", "200", "--seed", "1", "--out",
                     str(tmp_path / "out"), "--no-plots", "--quiet", "--excel", str(target), "--workers", "1"]) == 0
    terms = pd.read_excel(target, sheet_name="Assumptions", header=None)
    assert terms.astype(str).apply(lambda col: col.str.contains("cohort trigger")).any().any()
