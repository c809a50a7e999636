"""The payment calculator (``settle``): deterministic payments from observed outcomes."""

import dataclasses

import numpy as np
import pytest

from sibsim import cli, load_scenario, settle
from sibsim.observed import Observed

from .conftest import SCENARIOS

PB = SCENARIOS / "peterborough.toml"
PB_PUBLISHED = SCENARIOS / "observed" / "peterborough_published.toml"
PRICE = 25_000.0  # GBP per reconviction event avoided (the scenario's price since it counts events)


@pytest.fixture(scope="module")
def peterborough():
    return load_scenario(PB)


def counts(cohort1, cohort2, comparison=500):
    """Reconviction events in the treated cohorts against comparison groups of 1,000 men (500 events each)."""
    return Observed({
        ("treated", 0, "reconviction_events"): {36: cohort1},
        ("comparison", 0, "reconviction_events"): {36: comparison},
        ("treated", 1, "reconviction_events"): {58: cohort2},
        ("comparison", 1, "reconviction_events"): {58: comparison},
    })


def test_published_results_no_early_payment_final_payment_triggered(peterborough):
    """Cohort 1 -8.4 % is below the 10 % bar: nothing early; pooled -9 % clears 7.5 %: final payment."""
    result = settle(peterborough, PB_PUBLISHED)
    due = result.cashflows.outcome_payments_due[0]
    early_month = 36 + peterborough.payer.payment_lag_months  # cohort 1 measured at 36, paid 12 later
    final_month = 58 + peterborough.payer.payment_lag_months
    assert due[early_month] == 0.0
    # 225 reconviction events avoided in all: (1250 - 1145) + (1250 - 1130), at GBP 25,000 each.
    # (Counted as first reconvictions before, 90 at GBP 62,500: the same GBP 5,625,000.)
    assert final_month == 70
    assert due[final_month] == pytest.approx(225 * PRICE, abs=0.005)
    assert due.sum() == pytest.approx(225 * PRICE, abs=0.005)
    inv = result.investors.loc["all investors"]
    assert inv["capital_called"] == pytest.approx(5_000_000)
    assert inv["received"] == pytest.approx(5_625_000)
    assert inv["multiple"] == pytest.approx(1.125)
    # "capital back plus just over 3 % a year"
    assert inv["irr_status"] == "defined" and 0.03 < inv["irr"] < 0.035


def test_cohort_above_its_bar_is_paid_early_and_deducted_from_the_final(peterborough):
    result = settle(peterborough, counts(cohort1=445, cohort2=460))  # cohort 1: -11 %, pooled -9.5 %
    due = result.cashflows.outcome_payments_due[0]
    # The same events avoided as the first reconvictions of before (55 early, 95 in all), now at the
    # scenario's price per reconviction event (GBP 25,000, was 62,500 per first reconviction).
    assert due[48] == pytest.approx(55 * PRICE)
    assert due[70] == pytest.approx((95 - 55) * PRICE)
    assert due.sum() == pytest.approx(95 * PRICE)


def test_neither_bar_reached_nothing_paid(peterborough):
    result = settle(peterborough, counts(cohort1=470, cohort2=470))  # -6 % everywhere
    assert result.cashflows.outcome_payments_due.sum() == 0.0
    inv = result.investors.loc["all investors"]
    assert inv["received"] == 0.0 and inv["irr_status"] == "total_loss" and inv["irr"] == -1.0


def test_payment_cap_and_return_cap_apply(peterborough):
    # The Big Lottery Fund's cap and the Ministry's above it: GBP 2M + 1M, so 3M of the 5.625M due.
    fund, ministry = peterborough.payer_split
    capped = dataclasses.replace(peterborough, payer_split=(dataclasses.replace(fund, payment_cap=2_000_000),
                                                            dataclasses.replace(ministry, payment_cap=1_000_000)))
    cash = settle(capped, PB_PUBLISHED).cashflows
    assert cash.outcome_payments_due.sum() == pytest.approx(3_000_000)
    assert cash.payer_due.sum(axis=(1, 2)) == pytest.approx([2_000_000, 1_000_000])
    # A huge effect would pay more than the 13 % cap allows: the excess stays with the payer.
    result = settle(peterborough, counts(cohort1=100, cohort2=100))
    cash = result.cashflows
    assert cash.retained_by_payer.sum() > 0
    assert result.investors.loc["all investors", "irr"] <= 0.13 + 1e-9
    np.testing.assert_allclose(cash.outcome_payments_due, cash.outcome_payments + cash.defaulted_by_payer
                               + cash.retained_by_payer, atol=1e-6)


def test_colour_kitchen_invoice_by_hand(colour_kitchen):
    """Rate card on pooled net outcomes at months 12 and 24, paid 3 months later (high-water mark)."""
    result = settle(colour_kitchen, SCENARIOS / "observed" / "utrecht_colour_kitchen_example.toml")
    due = result.cashflows.outcome_payments_due[0]
    # Month 12, summed over cohorts 0-5: diploma 61-0, sustained 2-3 (nothing below zero), contract 1-0
    # -> 61*2000 + 0 + 1*4500 = 126,500 (comparison group as large as the treated group: scale 1).
    assert due[15] == pytest.approx(61 * 2000 + 1 * 4500)
    # Month 24, cohorts 0-11: diploma 151, sustained 28-17 = 11, contract 13-6 = 7
    # -> 302,000 + 60,500 + 31,500 = 394,000 in all, less the 126,500 already paid.
    assert due[27] == pytest.approx(394_000 - 126_500)
    assert result.investors.loc["all investors", "received"] == pytest.approx(394_000)
    per_investor = result.investors["received"].iloc[:2]
    assert per_investor.iloc[0] == pytest.approx(per_investor.iloc[1])  # equal commitments, pro rata


def test_settle_cli_prints_and_writes(tmp_path, capsys):
    out = tmp_path / "pb"
    assert cli.main(["settle", str(PB), str(PB_PUBLISHED), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5,625,000.00" in text and "GBP" in text and "3.13" in text
    assert {p.name for p in out.iterdir()} == {"schedule.csv", "investors.csv", "run.json"}


def test_settle_cli_bad_observed_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[measurement]]\nmonth = 36\ncohort = 0\ntreated = { reconviction_events = -3 }\n")
    assert cli.main(["settle", str(PB), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: measurement[0].treated.reconviction_events: count must be a finite number >= 0, got -3"]
