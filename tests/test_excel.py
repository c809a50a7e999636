"""Excel export (optional extra ``sibsim[excel]``; ``make test`` installs it)."""

import datetime

import pandas as pd
import pytest

from sibsim import cli, load_scenario, simulate
from sibsim.excel import MULTIPLE, PERCENT, SHEETS, heading, money_format, write_excel
from sibsim.excel_formulas import BY_MONTH, SETTLEMENT

from .conftest import SCENARIOS

openpyxl = pytest.importorskip("openpyxl", reason="Excel export needs: pip install 'sibsim[excel]'")


@pytest.fixture(scope="module")
def ck_book(colour_kitchen, tmp_path_factory):
    res = simulate(colour_kitchen, n_paths=300, seed=4, workers=1)
    path = write_excel(res, tmp_path_factory.mktemp("xl") / "ck.xlsx")
    return res, path, openpyxl.load_workbook(path)


def _column(sheet, name):
    names = [c.value for c in sheet[1]]
    return names.index(name) + 1


def test_workbook_holds_values_that_match_the_run(ck_book, colour_kitchen):
    res, path, book = ck_book
    assert tuple(book.sheetnames) == SHEETS
    summary = pd.read_excel(path, sheet_name="Summary", index_col=0)
    pd.testing.assert_series_equal(summary["Estimate"], res.summary()["estimate"], check_names=False, rtol=1e-12)
    ledgers = pd.read_excel(path, sheet_name="Expected cashflows", index_col=0)
    assert ledgers["Capital calls"].sum() == pytest.approx(734_000, abs=1e-6)
    budget = pd.read_excel(path, sheet_name="Budget years")
    assert len(budget) == len(res.budget())
    pd.testing.assert_series_equal(budget["P95"], res.budget()["p95"], check_names=False, rtol=1e-12)
    # Values, not formulas, except on the formula sheets (tests/test_excel_formulas.py).
    for sheet in book.worksheets:
        if sheet.title in (SETTLEMENT, BY_MONTH):
            continue
        for row in sheet.iter_rows():
            for cell in row:
                assert not (isinstance(cell.value, str) and cell.value.startswith("=")), (sheet.title, cell.coordinate)
    assumptions = pd.read_excel(path, sheet_name="Sources and assumptions")
    assert (assumptions["Kind"] == "source").sum() == len(dict(colour_kitchen.meta)["sources"])
    assert not list(path.parent.glob(".*")), "temporary file left behind"


def test_every_sheet_is_one_table_with_a_frozen_header_and_a_filter(ck_book):
    _, _, book = ck_book
    for sheet in book.worksheets:
        assert sheet.freeze_panes == "B2", sheet.title
        total = sheet.cell(row=sheet.max_row, column=1).value == "Total"  # below the table, out of its filter
        last = sheet.max_row - 1 if total else sheet.max_row
        assert sheet.auto_filter.ref == f"A1:{sheet.cell(row=1, column=sheet.max_column).column_letter}{last}", \
            sheet.title
        header = [c.value for c in sheet[1]]
        assert all(isinstance(h, str) and h and "_" not in h for h in header), (sheet.title, header)
        assert all(c.font.bold for c in sheet[1])
        # one table: no blank row between the header and the last row
        blank = [r for r in range(2, sheet.max_row + 1)
                 if all(sheet.cell(row=r, column=j).value is None for j in range(1, sheet.max_column + 1))]
        assert not blank, (sheet.title, blank)


def test_numbers_carry_currency_percent_multiple_and_date_formats(ck_book):
    _, _, book = ck_book
    money = money_format("EUR")
    summary = book["Summary"]
    est, unit = _column(summary, "Estimate"), _column(summary, "Unit")
    seen = {}
    for r in range(2, summary.max_row + 1):
        seen.setdefault(summary.cell(row=r, column=unit).value, set()).add(
            summary.cell(row=r, column=est).number_format)
    assert seen["EUR"] == {money} and seen["per year"] == {PERCENT} and seen["probability"] == {PERCENT}
    assert seen["x"] == {MULTIPLE}
    ledgers = book["Expected cashflows"]
    date = ledgers.cell(row=2, column=_column(ledgers, "Date"))
    assert date.value == datetime.datetime(2015, 4, 1) and date.number_format == "mmm yyyy"
    assert ledgers.cell(row=14, column=_column(ledgers, "Date")).value == datetime.datetime(2016, 4, 1)
    assert ledgers.cell(row=2, column=_column(ledgers, "Capital calls")).number_format == money
    budget = book["Budget years"]
    assert budget.cell(row=2, column=_column(budget, "P95")).number_format == money
    assert budget.cell(row=2, column=_column(budget, "Year")).value == 2015
    pct = book["Path percentiles"]
    rows = {pct.cell(row=r, column=1).value: r for r in range(2, pct.max_row + 1)}
    assert pct.cell(row=rows["investor_irr"], column=_column(pct, "P50")).number_format == PERCENT
    assert pct.cell(row=rows["investor_moic"], column=_column(pct, "Mean")).number_format == MULTIPLE
    assert pct.cell(row=rows["net_savings"], column=_column(pct, "P05")).number_format == money


def test_inputs_hold_the_terms_and_the_expected_counts(ck_book, colour_kitchen):
    res, path, _ = ck_book
    inputs = pd.read_excel(path, sheet_name="Inputs")
    prices = inputs[inputs["Item"] == "price per net outcome"].set_index("Outcome")["Value"]
    assert prices.to_dict() == {"diploma": 2000, "job_sustained": 5500, "long_term_contract": 4500}
    assert inputs.loc[inputs["Item"] == "payment cap of Gemeente Utrecht", "Value"].item() == 1_000_000
    treated = inputs[inputs["Section"] == "count (treated)"]
    assert sorted(treated["Month"].unique()) == [12, 24, 36, 48]
    m = res.expected_measurements
    want = m[(m.outcome == "diploma") & (m.month == 36)]["treated"].item()
    got = treated[(treated["Outcome"] == "diploma") & (treated["Month"] == 36)]["Value"].item()
    assert got == pytest.approx(want, rel=1e-12) and 0 < got <= colour_kitchen.n_participants


def test_expected_counts_are_the_mean_of_the_paths(colour_kitchen):
    # The counts at the last measurement are the outcome totals within the term (month 48 = term).
    res = simulate(colour_kitchen, n_paths=400, seed=2, workers=1)
    m = res.expected_measurements
    share = res.outcome_shares["treated_diploma"].mean() * colour_kitchen.n_participants
    assert m[(m.outcome == "diploma") & (m.month == 48)]["treated"].item() == pytest.approx(share, rel=1e-9)


def test_headings_read_as_words():
    assert heading("capital_calls") == "Capital calls" and heading("p90_se") == "P90 (s.e.)"
    assert heading("mean_se") == "Mean (s.e.)" and heading("estimate") == "Estimate"


def test_run_with_excel_flag(tmp_path):
    target = tmp_path / "x" / "run.xlsx"
    assert cli.main(["run", str(SCENARIOS / "peterborough.toml"), "--paths", "200", "--seed", "1", "--out",
                     str(tmp_path / "out"), "--no-plots", "--quiet", "--excel", str(target), "--workers", "1"]) == 0
    terms = pd.read_excel(target, sheet_name="Contract terms", header=None)
    assert terms.astype(str).apply(lambda col: col.str.contains("cohort trigger")).any().any()
    budget = pd.read_excel(target, sheet_name="Budget years")
    assert {"Big Lottery Fund", "Ministry of Justice", "all payers"} <= set(budget["Party"])


def test_without_a_start_date_months_stay_numbers(colour_kitchen, tmp_path):
    import dataclasses

    meta = tuple((k, v) for k, v in colour_kitchen.meta if k != "start")
    res = simulate(dataclasses.replace(colour_kitchen, meta=meta), n_paths=100, seed=1, workers=1)
    book = openpyxl.load_workbook(write_excel(res, tmp_path / "nostart.xlsx"))
    assert "Date" not in [c.value for c in book["Expected cashflows"][1]]
    assert set(pd.read_excel(tmp_path / "nostart.xlsx", sheet_name="Budget years")["Basis"]) == {"contract year"}
