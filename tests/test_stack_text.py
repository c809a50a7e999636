"""The capital stack in words (sibsim.stack_text): each sentence says the fixture's terms as written.

The expected sentences are read off tests/fixtures/valid_stack.toml by hand; the memo and the
workbook both print them, so a term shown wrongly (a pooled switch called per cohort, a cap left
out) fails here before it reaches a council memo.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sibsim import stack_text
from sibsim.contracts import SavingsShare
from sibsim.scenario import load_scenario

FIXTURE = Path(__file__).parent / "fixtures" / "valid_stack.toml"


@pytest.fixture(scope="module")
def contract():
    loaded = load_scenario(FIXTURE)
    return getattr(loaded, "contract", loaded)


def test_tranches_in_words(contract):
    words = [stack_text.tranche_text(t, contract.currency) for t in contract.investors]
    assert words == [
        "loan of EUR 30,000 held by Bank, 5 % a year interest on principal drawn and outstanding "
        "(compounded monthly), seniority 1",
        "equity of EUR 20,000, return capped at 10 % a year, seniority 2",
        "deferred provider fee of EUR 5,000 held by Provider, 3 % a year interest on principal drawn and "
        "outstanding (simple interest), seniority 3, drawn from month 6",
        "recoverable grant of EUR 5,000, its principal repaid at most, seniority 3",
        "grant of EUR 10,000",
    ]


def test_waterfall_in_words_in_order_with_its_termination_list(contract):
    assert stack_text.waterfall_text(contract) == [
        "1. fees due from the waterfall (arrears carried)",
        "2. guarantors repaid what they paid out",
        "3. accrued interest to Senior loan and Deferred fee (pro rata)",
        "4. outstanding principal to Senior loan, Junior and Recoverable (in the order listed)",
        "5. Junior until capital drawn plus 5 % a year is received",
        "6. a success fee to the provider of EUR 2,000 in all, only once Senior loan and Junior are repaid",
        "7. Deferred fee up to its return cap, at most EUR 10,000 in all",
        "8. the rest split: 50 % to Junior, 20 % to the provider, 30 % kept by the payer",
        "at an early termination: outstanding principal to Senior loan and Junior (in the order listed); "
        "a success fee to the provider of 10 % of what is left",
    ]


def test_guarantees_and_payers_in_words(contract):
    assert [stack_text.guarantee_text(g, contract.currency) for g in contract.guarantees] == [
        "50 % of the principal loss of Senior loan, at most EUR 10,000; pays at maturity (after the last "
        "payment and capital call)",
        "the first EUR 5,000 of the principal loss of Junior; pays at an early termination, else at maturity; "
        "recouped from later outcome payments",
        "Recoverable back to at least 80 % of principal drawn; pays if the contract terminates early, in that month",
    ]
    assert [stack_text.payer_text(p, contract.currency) for p in contract.payers] == [
        "60 % of the payments for diploma, job sustained and savings; cap EUR 100,000; 3 months after each "
        "measurement; each payment missed with probability 2 %",
        "40 % of every payment; no cap; 4 months after each measurement; paid to the provider directly",
    ]


def test_savings_share_in_words_says_its_switch_and_whether_cohorts_are_pooled(contract):
    share = contract.payer.savings_share
    assert stack_text.savings_share_text(share) == (
        "50 % of the measured savings until Senior loan and Junior have received the capital drawn plus 5 % a "
        "year, then 20 % (all cohorts' savings pooled)")
    one = dataclasses.replace(share, until_tranches=("Junior",), per_cohort=True)
    assert stack_text.savings_share_text(one) == (
        "50 % of the measured savings until Junior has received the capital drawn plus 5 % a year, then 20 % "
        "(each cohort's savings against its share of that balance)")
    assert stack_text.savings_share_text(SavingsShare(0.5, 1.2, 0.1)) == (
        "50 % of the measured savings until 1.2 times the capital has been paid, then 10 %")
    assert stack_text.savings_share_text(SavingsShare(0.5)) == "50 % of the measured savings"


def test_a_payer_above_another_payers_cap_in_words():
    from sibsim.contracts import Payer
    above = Payer("Ministry", payment_cap=1_744_249.0, payment_lag_months=12, above_cap_of="Big Lottery Fund")
    assert stack_text.payer_text(above, "GBP") == (
        "What Big Lottery Fund's cap leaves unpaid; cap GBP 1,744,249; 12 months after each measurement")
