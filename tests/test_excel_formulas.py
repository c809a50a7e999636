"""The workbook's formula sheets, recomputed by a real formula engine (LibreOffice, headless), give
what ``sibsim settle`` gives for the same counts, and follow a changed price, cap or count."""

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sibsim import load_scenario, simulate
from sibsim.excel import write_excel
from sibsim.excel_formulas import BY_MONTH, COUNTERFACTUAL, SAVINGS, SETTLEMENT, TREATED, formula_limits
from sibsim.settlement import settle

from .conftest import SCENARIOS

openpyxl = pytest.importorskip("openpyxl", reason="Excel export needs: pip install 'sibsim[excel]'")
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
needs_engine = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice not installed (Debian: apt-get install "
                                  "libreoffice-calc-nogui); the workbook's formulas were not recomputed")
OBSERVED = SCENARIOS / "observed" / "utrecht_colour_kitchen_example.toml"


def recompute(path: Path, tmp_path: Path) -> Path:
    """The workbook as LibreOffice computes it (formulas evaluated, values cached)."""
    out = tmp_path / "recomputed"
    profile = (tmp_path / "lo_profile").as_uri()
    subprocess.run([SOFFICE, "--headless", "--norestore", f"-env:UserInstallation={profile}",
                    "--convert-to", "xlsx", "--outdir", str(out), str(path)],
                   check=True, capture_output=True, timeout=300)
    return out / path.name


def _rows(sheet):
    names = [c.value for c in sheet[1]]
    return names, {name: j + 1 for j, name in enumerate(names)}


def set_inputs(book, settlement, contract, prices=None, cap=None):
    """Put the counts sibsim settled (pooled, at each measurement), its savings and changed terms on Inputs."""
    sheet = book["Inputs"]
    names, col = _rows(sheet)
    cash = settlement.cashflows
    months = list(contract.payer.measurement_months)
    for r in range(2, sheet.max_row + 1):
        section = sheet.cell(row=r, column=col["Section"]).value
        outcome = sheet.cell(row=r, column=col["Outcome"]).value
        month = sheet.cell(row=r, column=col["Month"]).value
        item = sheet.cell(row=r, column=col["Item"]).value
        value = sheet.cell(row=r, column=col["Value"])
        if section in (TREATED, COUNTERFACTUAL):
            k, m = contract.outcome_names.index(outcome), months.index(month)
            counts = cash.measured_treated if section == TREATED else cash.measured_counterfactual
            value.value = float(counts[0, k, m])
        elif section == SAVINGS:
            value.value = float(cash.gross_savings[0, month])
        elif item == "price per net outcome" and prices and outcome in prices:
            value.value = prices[outcome]
        elif item.startswith("payment cap of") and cap is not None:
            value.value = cap


def read_by_month(path):
    sheet = openpyxl.load_workbook(path, data_only=True)[BY_MONTH]
    names, col = _rows(sheet)
    rows = [[sheet.cell(row=r, column=j).value for j in range(1, len(names) + 1)]
            for r in range(2, sheet.max_row)]  # the last row is the total
    return {n: np.array([row[col[n] - 1] or 0.0 for row in rows], dtype=float) for n in names if n != "Date"}


def check_against_settle(values, contract, settlement):
    cash = settlement.cashflows
    T = contract.horizon_months
    assert len(values["Month"]) == T
    np.testing.assert_allclose(values["Due within the cap"], cash.outcome_payments_due[0], atol=1e-6)
    np.testing.assert_allclose(values["Outcome payments"], cash.outcome_payments[0], atol=1e-6)
    np.testing.assert_allclose(values["Kept by the payer"], cash.retained_by_payer[0], atol=1e-6)
    np.testing.assert_allclose(values["Capital called"], cash.capital_calls[0].sum(axis=0), atol=1e-6)
    for i, inv in enumerate(contract.investors):
        np.testing.assert_allclose(values[f"To {inv.name}"], cash.distributions[0, i], atol=1e-6)
        np.testing.assert_allclose(values[f"Called from {inv.name}"], cash.capital_calls[0, i], atol=1e-6)
    np.testing.assert_allclose(values["Net position"], cash.net_savings[0], atol=1e-6)
    schedule = settlement.schedule
    for inv in contract.investors:
        got = values[f"To {inv.name}"][schedule.index]
        np.testing.assert_allclose(got, schedule[f"to {inv.name}"], atol=1e-6)


@pytest.fixture(scope="module")
def ck_workbook(colour_kitchen, tmp_path_factory):
    res = simulate(colour_kitchen, n_paths=200, seed=9, workers=1)
    return write_excel(res, tmp_path_factory.mktemp("xlf") / "ck.xlsx")


def test_colour_kitchen_is_within_the_formula_sheets(colour_kitchen):
    assert formula_limits(colour_kitchen) == []
    guarantee = load_scenario(SCENARIOS / "utrecht_colour_kitchen_guarantee.toml")
    assert formula_limits(guarantee) == ["guarantees"]
    assert "several payers" in formula_limits(load_scenario(SCENARIOS / "peterborough.toml"))


def test_the_sheets_hold_formulas_that_read_inputs(ck_workbook):
    book = openpyxl.load_workbook(ck_workbook)
    by_month = book[BY_MONTH]
    formulas = [c.value for row in by_month.iter_rows(min_row=2) for c in row if isinstance(c.value, str)]
    assert sum(f.startswith("=") for f in formulas) > 500
    assert any("Inputs!" in f for f in formulas) and any(f"{SETTLEMENT}!" in f for f in formulas)
    assert book[SETTLEMENT]["F2"].value.startswith("=MAX(C2,0)*Inputs!")


@needs_engine
def test_formulas_give_what_sibsim_settle_gives(colour_kitchen, ck_workbook, tmp_path):
    settlement = settle(colour_kitchen, OBSERVED)
    book = openpyxl.load_workbook(ck_workbook)
    set_inputs(book, settlement, colour_kitchen)
    path = tmp_path / "observed.xlsx"
    book.save(path)
    values = read_by_month(recompute(path, tmp_path))
    check_against_settle(values, colour_kitchen, settlement)
    assert values["Outcome payments"].sum() > 100_000  # something is paid: the comparison is not 0 == 0


@needs_engine
def test_formulas_follow_a_changed_price_cap_and_count(colour_kitchen, ck_workbook, tmp_path):
    # A higher price for sustained jobs and a lower cap (which now binds), on counts with five more
    # diplomas in cohort 0 by month 24.
    text = OBSERVED.read_text(encoding="utf-8")
    marker = "month = 24\ncohort = 0\ntreated = { diploma = 15,"
    assert text.count(marker) == 1
    observed = tmp_path / "more.toml"
    observed.write_text(text.replace(marker, "month = 24\ncohort = 0\ntreated = { diploma = 20,")
                        .replace('scenario = "../utrecht_colour_kitchen.toml"', ""), encoding="utf-8")
    rate_card = tuple((o, 8000.0 if o == "job_sustained" else p) for o, p in colour_kitchen.payer.rate_card)
    changed = dataclasses.replace(colour_kitchen, payer=dataclasses.replace(
        colour_kitchen.payer, rate_card=rate_card, payment_cap=400_000.0))
    settlement = settle(changed, observed)
    base = settle(colour_kitchen, OBSERVED)
    assert settlement.cashflows.outcome_payments_due.sum() == pytest.approx(400_000)  # the cap binds
    assert base.cashflows.outcome_payments_due.sum() < 400_000
    book = openpyxl.load_workbook(ck_workbook)
    set_inputs(book, settlement, changed, prices={"job_sustained": 8000.0}, cap=400_000.0)
    path = tmp_path / "changed.xlsx"
    book.save(path)
    values = read_by_month(recompute(path, tmp_path))
    check_against_settle(values, changed, settlement)


@needs_engine
def test_the_return_cap_keeps_money_with_the_payer(colour_kitchen, ck_workbook, tmp_path):
    # The run's own expected counts (the workbook as written): payments on them exceed what the 10 %
    # return cap lets the investors receive, so the payer keeps the rest, as sibsim computes.
    values = read_by_month(recompute(ck_workbook, tmp_path))
    kept = values["Kept by the payer"].sum()
    assert kept > 0
    np.testing.assert_allclose(values["Outcome payments"].sum() + kept, values["Due within the cap"].sum())
    np.testing.assert_allclose(sum(values[f"To {i.name}"].sum() for i in colour_kitchen.investors),
                               values["Distributed"].sum())


def test_a_contract_beyond_the_sheets_says_so_and_holds_no_formulas(tmp_path):
    contract = load_scenario(SCENARIOS / "peterborough.toml")
    res = simulate(contract, n_paths=100, seed=1, workers=1)
    book = openpyxl.load_workbook(write_excel(res, tmp_path / "pb.xlsx"))
    note = book[SETTLEMENT]["A2"].value
    assert "several payers" in note and "a cohort trigger" in note and "sibsim settle" in note
    for name in (SETTLEMENT, BY_MONTH):
        cells = [c.value for row in book[name].iter_rows() for c in row]
        assert not any(isinstance(v, str) and v.startswith("=") for v in cells)


def test_names_from_the_scenario_are_labels_never_parts_of_formulas(colour_kitchen, tmp_path):
    evil = "=HYPERLINK(\"http://x\",\"y\")"
    investors = (dataclasses.replace(colour_kitchen.investors[0], name=evil),) + colour_kitchen.investors[1:]
    contract = dataclasses.replace(colour_kitchen, investors=investors)
    res = simulate(contract, n_paths=50, seed=1, workers=1)
    book = openpyxl.load_workbook(write_excel(res, tmp_path / "evil.xlsx"))
    headers = [c for c in book[BY_MONTH][1] if isinstance(c.value, str) and evil in c.value]
    assert len(headers) == 2 and all(c.data_type == "s" for c in headers)  # called from, to
    formulas = [c.value for name in (SETTLEMENT, BY_MONTH) for row in book[name].iter_rows(min_row=2)
                for c in row if c.data_type == "f"]
    assert formulas and not any("HYPERLINK" in f for f in formulas)


def test_a_single_payer_of_its_own_that_defaults_or_pays_the_provider_is_beyond_the_sheets(colour_kitchen):
    from sibsim.stack import Payer

    p = colour_kitchen.payer
    for payer, limit in ((Payer(p.name, (), 1.0, p.payment_cap, p.payment_lag_months, 0.5), "a payer that may default"),
                         (Payer(p.name, (), 1.0, p.payment_cap, p.payment_lag_months, 0.0, paid_to="provider"),
                          "payments to the provider directly")):
        split = dataclasses.replace(colour_kitchen, payer=dataclasses.replace(p, payment_cap=None), payer_split=(payer,))
        assert limit in formula_limits(split)


def test_no_outcome_name_is_written_into_a_formula(ck_workbook, colour_kitchen):
    book = openpyxl.load_workbook(ck_workbook)
    formulas = [c.value for name in (SETTLEMENT, BY_MONTH) for row in book[name].iter_rows(min_row=2)
                for c in row if c.data_type == "f"]
    for outcome in colour_kitchen.outcome_names:
        assert not any(outcome in f for f in formulas), outcome  # counts are read from their own cells
