"""Budget years: calendar years from meta.start, per-path sums that add up, the maximum exposure
as a bound no simulated path breaks, and budget.csv / the memo section that show them."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from sibsim import load_scenario, simulate
from sibsim.budget import (COLUMNS, PAYER_ITEMS, QUANTILES, budget_years, guarantee_most,
                           maximum_exposure, reserve_rows)

from .conftest import SCENARIOS
from .test_cli import run

SHIPPED = sorted(p.name for p in SCENARIOS.glob("*.toml"))


def _with_start(contract, start):
    meta = dict(contract.meta)
    if start is None:
        meta.pop("start", None)
    else:
        meta["start"] = start
    return dataclasses.replace(contract, meta=tuple(meta.items()))


@pytest.fixture(scope="module")
def ck_run(colour_kitchen):
    return simulate(colour_kitchen, n_paths=3000, seed=11, workers=1)


@pytest.fixture(scope="module", params=["utrecht_colour_kitchen_guarantee.toml", "peterborough.toml",
                                        "rotterdam_buzinezzclub.toml", "new_york_state_employment.toml"])
def other_run(request):
    return simulate(load_scenario(SCENARIOS / request.param), n_paths=1200, seed=3, workers=1)


# --- the years -----------------------------------------------------------------------------------
def test_calendar_years_from_an_april_start(colour_kitchen):
    years = budget_years(colour_kitchen)  # meta.start = 2015-04, horizon 60 months
    assert colour_kitchen.horizon_months == 60
    assert years.basis == "calendar"
    assert years.years == (2015, 2016, 2017, 2018, 2019, 2020)
    assert years.first == (0, 9, 21, 33, 45, 57) and years.last == (8, 20, 32, 44, 56, 59)
    assert years.span(0) == "Apr 2015–Dec 2015" and years.span(5) == "Jan 2020–Mar 2020"
    # the boundary months: December in the old year, January in the new one
    assert years.of_month(8) == 0 and years.of_month(9) == 1 and years.of_month(59) == 5
    assert years.month_label(9) == "Jan 2016"


def test_a_january_start_makes_whole_years_and_no_start_contract_years(colour_kitchen):
    jan = budget_years(_with_start(colour_kitchen, "2015-01"))
    assert jan.years == (2015, 2016, 2017, 2018, 2019) and jan.first == (0, 12, 24, 36, 48)
    assert jan.last == (11, 23, 35, 47, 59)
    dec = budget_years(_with_start(colour_kitchen, "2014-12-01"))  # a single month in the first year
    assert dec.years[:2] == (2014, 2015) and dec.first[:2] == (0, 1) and dec.last[0] == 0
    none = budget_years(_with_start(colour_kitchen, None))
    assert none.basis == "contract year" and none.years == (1, 2, 3, 4, 5)
    assert none.first == (0, 12, 24, 36, 48) and none.label(1) == "contract year 2"
    assert none.span(1) == "months 12–23"


# --- the money adds up -------------------------------------------------------------------------------
def _check_adds_up(res):
    c, b, paths = res.contract, res.budget_paths, res.paths
    years = budget_years(c)
    for name, values in b.items():
        assert values.dtype == np.float32 and values.shape == (res.n_paths, len(years)), name
    tol = dict(rtol=2e-6, atol=0.05)  # float32 storage (module notes)
    np.testing.assert_allclose(b["outcome_payments"].sum(axis=1, dtype=float), paths["outcome_payments"], **tol)
    np.testing.assert_allclose(b["savings"].sum(axis=1, dtype=float), paths["gross_savings"], **tol)
    np.testing.assert_allclose(b["capital_calls"].sum(axis=1, dtype=float), paths["capital_called"], **tol)
    # paths.csv's distributions count guarantee payouts in (all the investors received)
    np.testing.assert_allclose(b["investor_received"].sum(axis=1, dtype=float), paths["distributions"], **tol)
    np.testing.assert_allclose((b["savings"] - b["total_paid"]).sum(axis=1, dtype=float), paths["net_savings"],
                               rtol=2e-6, atol=0.5)
    if len(c.payers) > 1:
        each = sum(b[f"payer_paid:{p.name}"].astype(float) for p in c.payers)
        np.testing.assert_allclose(each, b["outcome_payments"], **tol)
    table = res.budget()
    assert list(table.columns) == list(COLUMNS)
    # the means are the expected ledgers' (float64) and agree with the per-path sums
    led = res.expected_ledgers
    payer = c.payer.name if len(c.payers) == 1 else "all payers"
    rows = table[table["party"] == payer]
    for item, values in (("outcome payments", led["outcome_payments"]), ("savings", led["gross_savings"]),
                         ("net position", led["net_savings"]), ("fees", led["payer_fees"])):
        got = rows[rows["item"] == item]["mean"].to_numpy()
        np.testing.assert_allclose(got[:-1], years.sums(values.to_numpy()), rtol=1e-12, atol=1e-6)
        assert got[-1] == pytest.approx(values.sum(), rel=1e-12, abs=1e-6)  # the all-years row
    means = {item: rows[rows["item"] == item]["mean"].to_numpy() for item in PAYER_ITEMS if item in set(rows["item"])}
    guarantees = means.get("guarantees", 0.0)
    np.testing.assert_allclose(means["total paid"], means["outcome payments"] + means["fees"] + guarantees,
                               atol=1e-6)
    np.testing.assert_allclose(means["net position"], means["savings"] - means["total paid"], atol=1e-6)
    np.testing.assert_allclose(b["total_paid"].mean(axis=0, dtype=float), means["total paid"][:-1],
                               rtol=1e-5, atol=0.05)
    inv = table[table["party"] == "investors"]
    called = inv[inv["item"] == "capital paid in"]["mean"].to_numpy()
    received = inv[inv["item"] == "money received"]["mean"].to_numpy()
    np.testing.assert_allclose(inv[inv["item"] == "net"]["mean"].to_numpy(), received - called, atol=1e-6)
    # quantiles are ordered, and are those of the per-path values
    q = table[[f"p{int(round(x * 100)):02d}" for x in QUANTILES]].to_numpy()
    assert (np.diff(q, axis=1) >= -1e-9).all()
    paid = rows[rows["item"] == "total paid"]
    np.testing.assert_allclose(paid["p90"].to_numpy()[:-1],
                               np.quantile(b["total_paid"].astype(float), 0.9, axis=0), rtol=1e-12)


def test_colour_kitchen_budget_adds_up(ck_run):
    _check_adds_up(ck_run)


def test_every_kind_of_deal_adds_up(other_run):
    _check_adds_up(other_run)


# --- maximum exposure --------------------------------------------------------------------------------
def test_colour_kitchen_maximum_exposure_by_hand(colour_kitchen):
    # Payments fall due in months 15, 27, 39 and 51 (Jul 2016-2019), under a EUR 1,000,000 cap; the
    # evaluation (EUR 10,000 per measurement, months 12, 24, 36, 48) is the payer's fee; no guarantee.
    # From the first payment date on every year can pay (money held back is paid later): 2016-2020.
    frame = maximum_exposure(colour_kitchen)
    assert list(frame.index) == ["2015", "2016", "2017", "2018", "2019", "2020", "all years"]
    assert frame["outcome payments"].tolist() == [0, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6]
    assert frame["fees"].tolist() == [0, 1e4, 1e4, 1e4, 1e4, 0, 4e4]
    assert frame["guarantees"].tolist() == [0] * 7
    assert frame["total paid"].tolist() == [0, 1_010_000, 1_010_000, 1_010_000, 1_010_000, 1_000_000, 1_040_000]


def test_a_guarantee_by_the_payer_counts_in_the_year_it_can_pay():
    c = load_scenario(SCENARIOS / "utrecht_colour_kitchen_guarantee.toml")
    (g,) = c.guarantees
    assert guarantee_most(c, g) == pytest.approx(367_000)  # 50 % of EUR 734,000
    frame = maximum_exposure(c)
    # it pays at maturity: after the last payment (month 51, Jul 2019)
    assert frame.loc["2019", "guarantees"] == pytest.approx(367_000)
    assert frame["guarantees"].drop(["2019", "all years"]).eq(0).all()
    assert frame.loc["all years", "total paid"] == pytest.approx(1_000_000 + 40_000 + 367_000)
    capped = dataclasses.replace(c, guarantees=(dataclasses.replace(g, cap=100_000),))
    assert maximum_exposure(capped).loc["2019", "guarantees"] == pytest.approx(100_000)
    equal = dataclasses.replace(c, guarantees=(dataclasses.replace(g, cap=367_000),))  # the boundary
    assert maximum_exposure(equal).loc["2019", "guarantees"] == pytest.approx(367_000)


def test_without_a_cap_there_is_no_maximum(colour_kitchen):
    uncapped = dataclasses.replace(colour_kitchen, payer=dataclasses.replace(colour_kitchen.payer, payment_cap=None))
    frame = maximum_exposure(uncapped)
    assert np.isnan(frame.loc["2016", "outcome payments"]) and np.isnan(frame.loc["all years", "total paid"])
    assert frame.loc["2015", "outcome payments"] == 0  # before the first payment date nothing can fall due
    assert frame.loc["2016", "fees"] == 1e4


@pytest.mark.parametrize("name", SHIPPED)
def test_no_simulated_year_exceeds_the_maximum(name):
    res = simulate(load_scenario(SCENARIOS / name), n_paths=400, seed=5, workers=1)
    frame = maximum_exposure(res.contract)
    paid = res.budget_paths["total_paid"].astype(float)
    bound = frame["total paid"].to_numpy()
    finite = np.isfinite(bound[:-1])
    assert (paid[:, finite] <= bound[:-1][finite] + 0.05).all(), name
    if np.isfinite(bound[-1]):
        assert (paid.sum(axis=1) <= bound[-1] + 0.05).all(), name
    if len(res.contract.payers) > 1:
        table = res.budget()
        for p in res.contract.payers:
            rows = table[(table["party"] == p.name) & (table["item"] == "outcome payments")]
            paid_p = res.budget_paths[f"payer_paid:{p.name}"].astype(float)
            cap = rows["maximum"].to_numpy()[:-1]
            ok = np.isfinite(cap)
            assert (paid_p[:, ok] <= cap[ok] + 0.05).all()


def test_the_bound_is_reached_when_outcomes_are_plenty(colour_kitchen):
    # Prices 100 times higher and no return cap (which would keep payments below the payment cap):
    # the payment cap binds in every future, all at the first payment date; the contract pays the cap.
    rich = dataclasses.replace(colour_kitchen, payer=dataclasses.replace(
        colour_kitchen.payer, rate_card=tuple((k, 100 * v) for k, v in colour_kitchen.payer.rate_card)),
        investors=tuple(dataclasses.replace(i, return_cap=None) for i in colour_kitchen.investors))
    res = simulate(rich, n_paths=200, seed=1, workers=1)
    total = res.budget_paths["outcome_payments"].sum(axis=1, dtype=float)
    np.testing.assert_allclose(total, 1_000_000, atol=0.1)
    assert res.budget_paths["outcome_payments"][:, 1].min() == pytest.approx(1_000_000)  # all of it in 2016


# --- outputs ------------------------------------------------------------------------------------
def test_reserve_rows_read_the_table(ck_run, colour_kitchen):
    rows = reserve_rows(ck_run.budget(), colour_kitchen)
    assert rows["label"].tolist() == ["2015", "2016", "2017", "2018", "2019", "2020", "All years"]
    table = ck_run.budget()
    paid = table[(table["party"] == "Gemeente Utrecht") & (table["item"] == "total paid")]
    assert rows["paid_p95"].tolist() == paid["p95"].tolist()
    assert rows["maximum"].iloc[1] == 1_010_000
    assert (rows["paid_p90"] <= rows["paid_p95"]).all() and (rows["savings_p10"] <= rows["savings_mean"] + 1e-9).all()


def test_run_writes_budget_csv_and_the_memo_shows_it(tmp_path):
    out = tmp_path / "run"
    assert run("run", SCENARIOS / "utrecht_colour_kitchen.toml", "--paths", 600, "--seed", 4, "--out", out,
               "--quiet") == 0
    table = pd.read_csv(out / "budget.csv")
    assert list(table.columns) == list(COLUMNS)
    assert table["year"].dropna().astype(int).unique().tolist() == [2015, 2016, 2017, 2018, 2019, 2020]
    assert (table["basis"] == "calendar").all() and (table["months"] == "all years").sum() == table.groupby(
        ["party", "item"]).ngroups
    assert (out / "budget.png").stat().st_size > 10_000
    memo = tmp_path / "memo.html"
    assert run("report", out, "--out", memo) == 0
    html = memo.read_text(encoding="utf-8")
    assert "<h3>Budget years: what to reserve</h3>" in html and 'id="fig-budget"' in html
    section = html[html.index("Budget years: what to reserve"):html.index("Downside case")]
    mine = table[(table["party"] == "Gemeente Utrecht") & (table["item"] == "total paid")]
    for value in mine["p95"].dropna():
        assert f"{value:,.0f}" in section
    assert "1,010,000" in section and "1,040,000" in section


def test_money_held_back_is_paid_in_a_later_year_within_the_maximum():
    # Werk na detentie holds back what its return cap leaves and pays it after later capital calls, in a
    # year without a payment date (found by review): every year from the first payment date on can pay.
    contract = load_scenario(SCENARIOS / "werk_na_detentie.toml")
    dated = _with_start(contract, "2016-09")
    res = simulate(dated, n_paths=600, seed=2, workers=1)
    frame = maximum_exposure(dated)
    paid = res.budget_paths["total_paid"].astype(float)
    bound = frame["total paid"].to_numpy()[:-1]
    assert (paid <= bound + 0.05).all()
    years = budget_years(dated)
    first = years.of_month(min(dated.payment_months))
    assert (frame["outcome payments"].to_numpy()[first:-1] == dated.payers[0].payment_cap).all()
    assert (frame["outcome payments"].to_numpy()[:first] == 0).all()
