"""The capital stack's scenario format (sibsim/scenario_stack.py), every rule at its exact boundary.

``tests/fixtures/valid_stack.toml`` writes every new term once (tranche kinds, draw order, a waterfall
with every step kind and a termination list, each guarantee kind, two payers, a balance-linked savings
share, a review with two conditions, an external stop, a waterfall fee).  Each test changes one thing
in it: the value at a rule's bound is accepted or refused as the rule says, one step beyond the other
way, and a refusal is exactly one line ``file: field: rule, got value``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from sibsim import load_scenario, waterfall
from sibsim.contracts import Review, SavingsShare
from sibsim.errors import ScenarioError
from sibsim.scenario import contract_from_dict
from sibsim.stack import DrawOrder, ExternalStop, Guarantee, Investor, Payer, Step, Waterfall

from .conftest import ROOT, SCENARIOS
from .test_scenario_errors import _ODD_VALUES, FIXTURES, VALID, _paths, assert_line_form

STACK = FIXTURES / "valid_stack.toml"
FILE = "s.toml"


def base() -> dict:
    return tomllib.loads(STACK.read_text(encoding="utf-8"))


def minimal() -> dict:
    return tomllib.loads(VALID.read_text(encoding="utf-8"))


def problems(doc: dict) -> list[str]:
    """The problems of ``doc`` without the file prefix ([] if it loads)."""
    try:
        contract_from_dict(doc, FILE)
    except ScenarioError as exc:
        for line in exc.problems:
            assert_line_form(line, FILE)
        return [line.removeprefix(f"{FILE}: ") for line in exc.problems]
    return []


def accepted(doc: dict):
    found = problems(doc)
    assert found == [], found
    return contract_from_dict(doc, FILE)


def refused(doc: dict, field: str, fragment: str) -> str:
    """``doc`` gives exactly one problem, on ``field``, whose rule contains ``fragment``."""
    found = problems(doc)
    assert len(found) == 1, found
    assert found[0].startswith(f"{field}: "), found
    assert fragment in found[0], found
    return found[0]


def tranche(doc: dict, name: str) -> dict:
    return next(t for t in doc["investors"] if t["name"] == name)


def steps(doc: dict) -> list:
    return doc["waterfall"]["steps"]


# --- the full scenario, field by field ---------------------------------------------------------
def test_full_stack_loads_into_the_expected_terms():
    c = load_scenario(STACK)
    assert c.investors == (
        Investor("Senior loan", 30_000.0, "senior", None, 1, True, "loan", 0.05, "monthly", 0, "Bank"),
        Investor("Junior", 20_000.0, "junior", 0.10, 2, True, "equity", 0.0, "monthly", 0, "Junior"),
        Investor("Deferred fee", 5_000.0, "senior", None, 3, True, "deferred_fee", 0.03, "none", 6, "Provider"),
        Investor("Recoverable", 5_000.0, "foundation", 0.0, 3, True, "recoverable_grant", 0.0, "monthly", 0,
                 "Recoverable"),
        Investor("Grant", 10_000.0, "grant", None, 1, False, "grant", 0.0, "monthly", 0, "Grant"),
    )
    assert c.draw_order == DrawOrder((("Grant",), ("Recoverable", "Junior"), ("Senior loan",), ("Deferred fee",)))
    assert c.waterfall_terms == Waterfall(
        steps=(
            Step("fees"),
            Step("recoup"),
            Step("interest", ("Senior loan", "Deferred fee"), "pro_rata"),
            Step("principal", ("Senior loan", "Junior", "Recoverable"), "sequential"),
            Step("hurdle", ("Junior",), rate=0.05),
            Step("success_fee", amount=2_000.0, after=("Senior loan", "Junior")),
            Step("to_cap", ("Deferred fee",), cap=10_000.0),
            Step("split", shares=(("Junior", 0.5), ("provider", 0.2), ("payer", 0.3))),
        ),
        on_termination=(Step("principal", ("Senior loan", "Junior"), "sequential"), Step("success_fee", share=0.1)),
    )
    assert c.waterfall is c.waterfall_terms
    assert c.guarantees == (
        Guarantee("Foundation X", ("Senior loan",), 0.5, 10_000.0, "share"),
        Guarantee("Municipality", ("Junior",), 1.0, None, "first_loss", amount=5_000.0,
                  pays="termination_or_maturity", recoup=True),
        Guarantee("Foundation X", ("Recoverable",), 1.0, None, "floor", floor=0.8, pays="termination"),
    )
    assert c.payer_split == (
        Payer("Municipality", ("diploma", "job_sustained", "savings"), 0.6, 100_000.0, 3, 0.02, "investors"),
        Payer("Ministry", (), 0.4, None, 4, 0.0, "provider"),
    )
    p = c.payer
    assert p.name == "Municipality and Ministry"  # no [payer] name: the payers' names joined
    assert (p.payment_lag_months, p.payment_cap, p.default_probability) == (3, None, 0.0)
    assert p.rate_card == (("diploma", 1_000.0), ("job_sustained", 4_000.0)) and p.measurement_months == (12, 24)
    assert p.savings_share == SavingsShare(0.5, None, 0.2, ("Senior loan", "Junior"), 0.05)
    assert p.savings_share.follows_balance
    assert p.review == Review(12, "diploma", "difference", 0.0, (("job_sustained", "difference", -0.5),), "all")
    assert c.external_stop == ExternalStop(18, 0.25, "policy change")
    assert [(f.name, f.paid_by) for f in c.fees] == [("Intermediary", "investors"), ("Evaluator", "waterfall")]
    # Derived: the payers' names and lags, and the guarantee by a payer counted as capital protection.
    assert c.payer_names == ("Municipality", "Ministry")
    assert c.payer_payment_months(0) == (15, 27) and c.payer_payment_months(1) == (16, 28)
    assert [g.guarantor in c.payer_names for g in c.guarantees] == [False, True, False]
    assert c.warnings == ()
    # The planned draws follow the draw order: the grant first, then the recoverable grant and the junior.
    draws = c.capital_calls()
    assert draws[4, 0] == pytest.approx(7_000) and draws[:, :2].sum() == pytest.approx(12_000)
    assert draws.sum(axis=1)[4] == pytest.approx(10_000) and draws[2].sum() == 0.0


def test_validate_prints_ok_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "sibsim.cli", "validate", str(STACK)],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"{STACK}: ok: Capital stack in full (test fixture)")
    # A broken stack: one line per problem, still no traceback.
    bad = tmp_path / "bad.toml"
    bad.write_text(STACK.read_text(encoding="utf-8").replace('["Senior loan"], ["Deferred fee"]]', '["Senior loan"]]')
                   .replace("probability = 0.25", "probability = 0"), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "sibsim.cli", "validate", str(bad)],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines() == [
        f"{bad}: capital.draw_order: must name every tranche exactly once, missing 'Deferred fee'",
        f"{bad}: external_stop.probability: must be > 0, got 0",
    ]


def test_any_value_anywhere_in_the_stack_gives_scenario_error_lines_only():
    """Replace (or delete) every value of the full stack by values of every TOML type."""
    doc0 = base()
    failures = []
    for path in list(_paths(doc0))[1:]:
        for value in _ODD_VALUES:
            doc = copy.deepcopy(doc0)
            node = doc
            for key in path[:-1]:
                node = node[key]
            if value is None:
                del node[path[-1]]
            else:
                node[path[-1]] = value
            try:
                contract_from_dict(doc, FILE)
            except ScenarioError as exc:
                for line in exc.problems:
                    try:
                        assert_line_form(line, FILE)
                    except AssertionError as err:
                        failures.append(f"{path} = {value!r:.30}: {err}")
                if len(set(exc.problems)) != len(exc.problems):
                    failures.append(f"{path} = {value!r:.30}: a problem reported twice: {exc.problems}")
            except Exception as exc:  # noqa: BLE001 - the point of the test
                failures.append(f"{path} = {value!r:.30}: raw {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures[:20])


# --- old scenarios keep their meaning ------------------------------------------------------------
#: Shipped scenarios written with the capital stack (their published terms need it); every other
#: shipped scenario must load to the default stack, as it did before the stack became data.
WITH_A_STACK = {"new_york_state_employment.toml", "peterborough.toml"}


@pytest.mark.parametrize("name", sorted(p.name for p in SCENARIOS.glob("*.toml") if p.name not in WITH_A_STACK))
def test_shipped_scenarios_have_the_default_stack(name):
    c = load_scenario(SCENARIOS / name)
    assert (c.draw_order, c.waterfall_terms, c.payer_split, c.external_stop) == (DrawOrder(), None, (), None)
    assert all((t.kind in ("equity", "grant"), t.interest, t.available_from_month, t.holder)
               == (True, 0.0, 0, t.name) for t in c.investors)
    assert all((g.kind, g.pays, g.recoup) == ("share", "maturity", False) for g in c.guarantees)
    assert c.payer.review is None or (c.payer.review.more, c.payer.review.combine) == ((), "any")


def test_new_york_state_reads_as_its_terms():
    """The published terms, as the loader reads them: one equity tranche capped at 12.5 % a year, the
    Rockefeller Foundation's USD 1.32M first loss paying at termination or maturity, two payers sharing
    every success payment, the Department of Labor's within its USD 12M grant."""
    c = load_scenario(SCENARIOS / "new_york_state_employment.toml")
    assert c.currency == "USD"
    (tranche,) = c.investors
    assert (tranche.kind, tranche.commitment, tranche.return_cap) == ("equity", 13_500_000, 0.125)
    (g,) = c.guarantees
    assert (g.guarantor, g.kind, g.amount, g.pays, g.recoup) == (
        "Rockefeller Foundation", "first_loss", 1_320_000, "termination_or_maturity", False)
    assert [p.name for p in c.payers] == ["US Department of Labor", "New York State"]
    dol, nys = c.payers
    assert dol.payment_cap == 12_000_000 and dol.share + nys.share == pytest.approx(1.0)
    assert {t.outcome: t.measure for t in c.payer.tiers} == {"days_incarcerated": "relative_reduction",
                                                              "employed_q4": "difference"}
    assert sum(co.size for co in c.cohorts) == 2000


def test_peterborough_reads_as_its_terms():
    """Two payers as the deal had them: the Big Lottery Fund's published GBP 6,255,751 first, the
    Ministry of Justice above it to GBP 8M in all (assumption); otherwise the default stack."""
    c = load_scenario(SCENARIOS / "peterborough.toml")
    fund, ministry = c.payers
    assert (fund.name, fund.payment_cap, fund.above_cap_of) == ("Big Lottery Fund", 6_255_751, None)
    assert (ministry.name, ministry.above_cap_of) == ("Ministry of Justice", "Big Lottery Fund")
    assert fund.payment_cap + ministry.payment_cap == 8_000_000
    assert fund.payment_lag_months == ministry.payment_lag_months == 12
    assert (c.draw_order, c.waterfall_terms, c.external_stop, c.guarantees) == (DrawOrder(), None, None, ())


def test_waterfall_by_seniority_is_the_default_and_nothing_else():
    doc = minimal()
    plain = accepted(doc)
    doc["waterfall"] = "by_seniority"
    assert accepted(doc) == plain and plain.waterfall_terms is None
    assert plain.waterfall == Waterfall((Step("to_cap", ("Alpha Fund", "Beta Foundation")),))
    doc["waterfall"] = "by seniority"
    refused(doc, "waterfall", "must be 'by_seniority' (the default: every tranche up to its return cap, senior "
                              "first) or a [waterfall] table of steps, got string 'by seniority'")
    doc["waterfall"] = 1
    refused(doc, "waterfall", "must be a table, got 1")


# --- tranches ------------------------------------------------------------------------------------
def test_kind_defaults_from_class_and_repayable():
    doc = minimal()
    doc["investors"][1]["class"] = "grant"
    assert [t.kind for t in accepted(doc).investors] == ["equity", "grant"]
    doc["investors"][1] = {"name": "Beta Foundation", "commitment": 30_000, "repayable": False}
    assert [t.kind for t in accepted(doc).investors] == ["equity", "grant"]


@pytest.mark.parametrize("kind, repayable, ok", [("loan", True, True), ("loan", False, False), ("grant", False, True),
                                                 ("grant", True, False), ("recoverable_grant", True, True)])
def test_repayable_must_agree_with_kind(kind, repayable, ok):
    doc = base()
    tranche(doc, "Junior").update(kind=kind, repayable=repayable)
    if kind == "recoverable_grant":
        del tranche(doc, "Junior")["return_cap"]
    if kind == "grant":  # a grant is named nowhere a grant is refused
        del doc["guarantees"][1]["classes"]
        doc["guarantees"][1]["investors"] = ["Senior loan"]
        doc["waterfall"]["steps"][3]["to"] = ["Senior loan", "Recoverable"]
        doc["waterfall"]["steps"][4]["to"] = ["Senior loan"]
        doc["waterfall"]["steps"][5]["after"] = ["Senior loan"]
        doc["waterfall"]["steps"][7]["shares"] = {"provider": 0.2, "payer": 0.3}
        doc["waterfall"]["on_termination"][0]["to"] = ["Senior loan"]
        doc["payer"]["savings_share"]["until"]["tranches"] = ["Senior loan"]
    if ok:
        assert tranche_of(accepted(doc), "Junior").kind == kind
    else:
        refused(doc, "investors[1].repayable", f"must agree with kind = {kind!r} (only a grant is not repaid), "
                                               f"got {str(repayable).lower()}")


def tranche_of(contract, name):
    return next(t for t in contract.investors if t.name == name)


def test_interest_only_on_loans_and_deferred_fees_at_the_boundary():
    doc = base()
    tranche(doc, "Junior")["interest"] = 0  # no interest: nothing to refuse
    assert tranche_of(accepted(doc), "Junior").interest == 0.0
    tranche(doc, "Junior")["interest"] = 0.0001
    refused(doc, "investors[1].interest", "only a loan or a deferred_fee bears interest, got 0.0001 on kind 'equity'")
    doc = minimal()  # the default kind (equity) says so
    doc["investors"][0]["interest"] = 0.05
    refused(doc, "investors[0].interest", "on kind 'equity' (the default kind: give kind = \"loan\")")
    doc["investors"][0]["kind"] = "loan"
    assert accepted(doc).investors[0].interest == 0.05
    for kind in ("deferred_fee",):
        doc["investors"][0]["kind"] = kind
        assert accepted(doc).investors[0].kind == kind


@pytest.mark.parametrize("value, ok", [(0, True), (1, True), (-0.0001, False), (1.0000001, False)])
def test_interest_is_an_annual_rate(value, ok):
    doc = base()
    tranche(doc, "Senior loan")["interest"] = value
    if value == 0:
        del tranche(doc, "Senior loan")["compounding"]
    if ok:
        assert tranche_of(accepted(doc), "Senior loan").interest == value
    else:
        refused(doc, "investors[0].interest", ">= 0" if value < 0 else "<= 1")


def test_compounding_only_with_interest():
    doc = base()
    tranche(doc, "Senior loan")["interest"] = 0
    refused(doc, "investors[0].compounding", "must come with interest > 0 (it says how interest accrues), "
                                             "got compounding = 'monthly' and interest = 0")
    del tranche(doc, "Senior loan")["interest"]
    refused(doc, "investors[0].compounding", "got compounding = 'monthly' and no interest")
    tranche(doc, "Senior loan")["interest"] = 1e-9
    assert tranche_of(accepted(doc), "Senior loan").compounding == "monthly"
    tranche(doc, "Senior loan")["compounding"] = "daily"
    refused(doc, "investors[0].compounding", "must be one of monthly, none, got string 'daily'")


@pytest.mark.parametrize("cap, ok", [(None, True), (0, True), (0.0001, False)])
def test_recoverable_grant_has_no_return_cap_above_zero(cap, ok):
    doc = base()
    t = tranche(doc, "Recoverable")
    del t["return_cap"]
    if cap is not None:
        t["return_cap"] = cap
    if ok:
        assert tranche_of(accepted(doc), "Recoverable").cap_rate == 0.0
    else:
        refused(doc, "investors[3].return_cap", "must be 0 or left out for a recoverable_grant (repaid its "
                                                "principal, nothing more), got 0.0001")


@pytest.mark.parametrize("month, ok", [(0, True), (24, True), (-1, False), (25, False)])
def test_available_from_month_within_the_term(month, ok):
    doc = base()
    tranche(doc, "Deferred fee")["available_from_month"] = month
    if ok:
        assert tranche_of(accepted(doc), "Deferred fee").available_from_month == month
    else:
        refused(doc, "investors[2].available_from_month", "must be >= 0" if month < 0 else "must be <= 24")


def test_available_from_month_needs_a_draw_order():
    doc = base()
    del doc["capital"]
    refused(doc, "investors[2].available_from_month", "needs [capital] draw_order (without one every call is "
                                                      "shared pro rata to commitments from month 0), got 6")
    tranche(doc, "Deferred fee")["available_from_month"] = 0
    assert accepted(doc).draw_order == DrawOrder()


def test_unknown_kind_and_holder_rules():
    doc = base()
    tranche(doc, "Junior")["kind"] = "bond"
    refused(doc, "investors[1].kind", "must be one of loan, equity, recoverable_grant, grant, deferred_fee, "
                                      "got string 'bond'")
    doc = base()
    tranche(doc, "Junior")["holder"] = " Bank"
    refused(doc, "investors[1].holder", "must not begin or end with white space")


# --- draw order and feasibility --------------------------------------------------------------------
def test_draw_order_names_every_tranche_exactly_once():
    doc = base()
    doc["capital"]["draw_order"] = [["Grant"], ["Recoverable", "Junior"], ["Senior loan"]]
    refused(doc, "capital.draw_order", "must name every tranche exactly once, missing 'Deferred fee'")
    doc["capital"]["draw_order"] = [["Grant"], ["Recoverable", "Junior"], ["Senior loan", "Deferred fee", "Grant"]]
    refused(doc, "capital.draw_order[2][2]", "must name each tranche once, got 'Grant' again (also "
                                             "capital.draw_order[0][0])")
    doc["capital"]["draw_order"] = [["grant"], ["Recoverable", "Junior"], ["Senior loan", "Deferred fee"]]
    refused(doc, "capital.draw_order[0][0]", "unknown tranche 'grant'; did you mean 'Grant'? names must match exactly")
    doc["capital"]["draw_order"] = [["Grant", "Recoverable", "Junior", "Senior loan", "Deferred fee"]]
    assert accepted(doc).draw_order.groups == (("Grant", "Recoverable", "Junior", "Senior loan", "Deferred fee"),)


@pytest.mark.parametrize("value", [[], ["Grant"], [[]], [["Grant"], []], "Grant", [[1]]])
def test_draw_order_is_an_array_of_groups(value):
    doc = base()
    doc["capital"]["draw_order"] = value
    refused(doc, "capital.draw_order", "must be an array of groups, each a non-empty array of tranche names")


def test_capital_table_needs_its_draw_order():
    doc = base()
    doc["capital"] = {}
    refused(doc, "capital.draw_order", "missing required field")


def _late_tranche(grant: float) -> dict:
    """Calls to month 10 are 7,000 + 10 x 5,000 = 57,000; the deferred fee (10,000) comes in month 11."""
    doc = base()
    tranche(doc, "Deferred fee").update(commitment=10_000, available_from_month=11)
    tranche(doc, "Grant")["commitment"] = grant  # 30,000 + 20,000 + 5,000 + grant available before month 11
    return doc


def test_planned_calls_fit_the_commitments_available_month_by_month():
    fits = accepted(_late_tranche(2_000))  # exactly 57,000 available to month 10: accepted
    waterfall.planned_draws(fits)  # the engine draws it without a shortfall
    line = refused(_late_tranche(1_999.99), "investors",
                   "planned capital calls (provider.budget + investor fees) must fit the commitments available "
                   "month by month (available_from_month): month 10 is short by EUR 0.01 (calls to date "
                   "EUR 57,000.00, commitments available EUR 56,999.99)")
    assert "total commitments" not in line  # 66,999.99 in all covers the 62,000: only the timing is short
    # The same contract built past the loader: the engine's draw finds the same month short.
    short = dataclasses.replace(fits, investors=tuple(
        dataclasses.replace(t, commitment=1_999.99) if t.name == "Grant" else t for t in fits.investors))
    with pytest.raises(RuntimeError, match="in month 10 exceed"):
        waterfall.planned_draws(short)


def test_capital_shortfall_equals_the_engine_month_by_month():
    """The loader's cumulative rule against the engine's draw, over shifted availabilities."""
    from sibsim.scenario_stack import capital_shortfall

    fits = accepted(_late_tranche(2_000))
    needs = {m: float(a) for m, a in enumerate(fits.provider_budget.to_array(12) + fits.fee_schedule("investors")[:12])}
    for month in range(0, 13):
        for grant in (1_000.0, 2_000.0, 7_000.0):
            investors = tuple(dataclasses.replace(t, available_from_month=month) if t.name == "Deferred fee" else
                              dataclasses.replace(t, commitment=grant) if t.name == "Grant" else t
                              for t in fits.investors)
            contract = dataclasses.replace(fits, investors=investors)
            short = capital_shortfall(investors, needs)
            try:
                waterfall.planned_draws(contract)
                engine = None
            except RuntimeError as exc:
                engine = int(str(exc).split(" in month ")[1].split()[0])
            assert (None if short is None else short[0]) == engine, (month, grant)


def test_total_commitments_rule_is_unchanged_at_its_boundary():
    doc = base()
    tranche(doc, "Grant")["commitment"] = 2_000  # 62,000 in all: exactly the calls
    assert accepted(doc).total_commitment == 62_000
    tranche(doc, "Grant")["commitment"] = 1_999.99
    refused(doc, "investors", "total commitments EUR 61,999.99 must cover the capital calls")


# --- the waterfall ------------------------------------------------------------------------------------
def test_waterfall_table_needs_steps():
    doc = base()
    del doc["waterfall"]["steps"]
    refused(doc, "waterfall.steps", "missing required field")
    doc["waterfall"]["steps"] = []
    refused(doc, "waterfall.steps", "must be a non-empty array of steps { pay = ... }, got an array")
    doc = base()
    doc["waterfall"]["on_termination"] = []
    refused(doc, "waterfall.on_termination", "must be a non-empty array of steps")


def test_step_pay_and_keys():
    doc = base()
    steps(doc)[2]["pay"] = "coupon"
    refused(doc, "waterfall.steps[2].pay", "must be one of fees, interest, principal, hurdle, to_cap, success_fee, "
                                           "split, recoup, got string 'coupon'")
    doc = base()
    del steps(doc)[2]["pay"]
    refused(doc, "waterfall.steps[2].pay", "missing required field (one of fees, interest")
    doc = base()
    steps(doc)[3]["rate"] = 0.05
    refused(doc, "waterfall.steps[3].rate", "unknown key for pay = 'principal' (allowed: after, cap, order, pay, to)")
    doc = base()
    steps(doc)[0]["to"] = ["Senior loan"]
    refused(doc, "waterfall.steps[0].to", "unknown key for pay = 'fees' (allowed: after, cap, pay)")
    doc = base()
    steps(doc)[2]["order"] = "random"
    refused(doc, "waterfall.steps[2].order", "must be one of seniority, pro_rata, sequential, got string 'random'")
    doc = base()
    steps(doc)[2] = "interest"
    refused(doc, "waterfall.steps[2]", "must be a table { pay = ... }, got string 'interest'")


def test_step_to_names_tranches_exactly_never_a_grant():
    doc = base()
    steps(doc)[2]["to"] = ["senior loan"]
    refused(doc, "waterfall.steps[2].to[0]", "unknown tranche 'senior loan'; did you mean 'Senior loan'?")
    steps(doc)[2]["to"] = ["Senior loan", "Senior loan"]
    refused(doc, "waterfall.steps[2].to[1]", "must name each tranche once, got 'Senior loan' twice")
    steps(doc)[2]["to"] = ["Grant"]
    refused(doc, "waterfall.steps[2].to[0]", "a grant is never repaid, got grant 'Grant'")
    steps(doc)[2]["to"] = []
    refused(doc, "waterfall.steps[2].to", "must be a non-empty array of tranche names")
    del steps(doc)[2]["to"]  # every repayable tranche
    assert accepted(doc).waterfall_terms.steps[2].to == ()


def test_step_after_names_tranches_never_a_grant():
    doc = base()
    steps(doc)[5]["after"] = ["Grant"]
    refused(doc, "waterfall.steps[5].after[0]", "a grant is never repaid (the step would never pay), got grant 'Grant'")
    steps(doc)[5]["after"] = ["Juniors"]
    refused(doc, "waterfall.steps[5].after[0]", "unknown tranche 'Juniors' (known: Deferred fee, Grant, Junior, "
                                                "Recoverable, Senior loan)")


@pytest.mark.parametrize("rate, ok", [(0, True), (1, True), (-0.0001, False), (1.0001, False)])
def test_hurdle_rate_is_an_annual_rate(rate, ok):
    doc = base()
    steps(doc)[4]["rate"] = rate
    if ok:
        assert accepted(doc).waterfall_terms.steps[4].rate == rate
    else:
        refused(doc, "waterfall.steps[4].rate", ">= 0" if rate < 0 else "<= 1")


def test_hurdle_needs_its_rate():
    doc = base()
    del steps(doc)[4]["rate"]
    refused(doc, "waterfall.steps[4].rate", "missing required field (for pay = 'hurdle')")


@pytest.mark.parametrize("cap, ok", [(0.01, True), (0, False), (0.001, False)])
def test_step_cap_is_a_positive_amount(cap, ok):
    doc = base()
    steps(doc)[2]["cap"] = cap
    if ok:
        assert accepted(doc).waterfall_terms.steps[2].cap == cap
    else:
        refused(doc, "waterfall.steps[2].cap", "must be > 0" if cap == 0 else "must be >= 0.01")


def test_success_fee_needs_exactly_one_of_amount_and_share():
    doc = base()
    steps(doc)[5]["share"] = 0.1
    refused(doc, "waterfall.steps[5]", "a success_fee needs exactly one of amount (> 0, in all) and share "
                                       "(0 < share <= 1, of the cash on offer), got both")
    del steps(doc)[5]["share"]
    del steps(doc)[5]["amount"]
    refused(doc, "waterfall.steps[5]", "got neither")


@pytest.mark.parametrize("key, value, ok", [("amount", 0.01, True), ("amount", 0, False), ("share", 1, True),
                                            ("share", 1e-9, True), ("share", 0, False), ("share", 1.0000001, False)])
def test_success_fee_amount_and_share_bounds(key, value, ok):
    doc = base()
    doc["waterfall"]["on_termination"][1] = {"pay": "success_fee", key: value}  # the last step: nothing after it
    if ok:
        assert getattr(accepted(doc).waterfall_terms.on_termination[1], key) == value
    else:
        refused(doc, f"waterfall.on_termination[1].{key}", "must be > 0" if value == 0 else "must be <= 1")


def test_split_shares_add_up_to_at_most_one_exactly_one_allowed():
    doc = base()
    shares = steps(doc)[7]["shares"]
    assert accepted(doc).waterfall_terms.steps[7].takes_all  # 0.5 + 0.2 + 0.3: exactly 1
    shares["payer"] = 0.3 + 1e-9
    refused(doc, "waterfall.steps[7].shares", "shares must add up to at most 1 (what is left goes on to the next "
                                              "steps), got 1.000000001")
    shares["payer"] = 0.2
    assert not accepted(doc).waterfall_terms.steps[7].takes_all


@pytest.mark.parametrize("share, ok", [(1e-9, True), (0, False), (-0.1, False)])
def test_each_split_share_is_above_zero(share, ok):
    doc = base()
    steps(doc)[7]["shares"]["payer"] = share
    if ok:
        assert dict(accepted(doc).waterfall_terms.steps[7].shares)["payer"] == share
    else:
        refused(doc, "waterfall.steps[7].shares.payer", f"must be > 0, got {share:g}")


def test_split_targets_are_tranches_provider_or_payer_never_a_grant():
    doc = base()
    steps(doc)[7]["shares"] = {"Grant": 0.5, "provider": 0.5}
    refused(doc, "waterfall.steps[7].shares.Grant", "a grant is never repaid, got grant 'Grant'")
    steps(doc)[7]["shares"] = {"Providers": 0.5}
    refused(doc, "waterfall.steps[7].shares.Providers", "unknown split target (a tranche, provider or payer) "
                                                        "'Providers'")
    steps(doc)[7]["shares"] = {}
    refused(doc, "waterfall.steps[7].shares", "must be a table { target = share }")
    doc = base()
    tranche(doc, "Junior")["name"] = "provider"
    for node in (doc["capital"]["draw_order"][1], steps(doc)[3]["to"], steps(doc)[4]["to"], steps(doc)[5]["after"],
                 doc["waterfall"]["on_termination"][0]["to"], doc["payer"]["savings_share"]["until"]["tranches"]):
        node[node.index("Junior")] = "provider"
    steps(doc)[7]["shares"] = {"provider": 0.5, "payer": 0.3}
    refused(doc, "waterfall.steps[7].shares.provider", "ambiguous: a tranche is named 'provider' too")


def test_a_step_after_a_split_of_everything_is_never_reached():
    doc = base()
    steps(doc).append({"pay": "to_cap"})
    accepted(doc)  # the split's Junior is capped: once it is at its cap, its share stays on offer
    steps(doc)[7]["shares"] = {"provider": 0.7, "payer": 0.3}
    refused(doc, "waterfall.steps[8]", "never reached: waterfall.steps[7] takes all the cash left (shares adding "
                                       "up to 1, no cap, no after), got a 'to_cap' step after it")
    steps(doc)[7]["cap"] = 1_000  # a cap leaves the rest on offer
    accepted(doc)
    del steps(doc)[7]["cap"]
    steps(doc)[7]["after"] = ["Senior loan"]  # so does a condition
    accepted(doc)
    del steps(doc)[7]["after"]
    steps(doc)[7]["shares"]["payer"] = 0.3 - 1e-9  # and shares below 1
    accepted(doc)


def test_a_step_after_everything_taken_otherwise_is_never_reached():
    doc = base()
    doc["waterfall"]["on_termination"] = [{"pay": "success_fee", "share": 1}, {"pay": "principal"}]
    refused(doc, "waterfall.on_termination[1]", "never reached: waterfall.on_termination[0] takes all the cash left "
                                                "(share = 1, no cap, no after)")
    doc["waterfall"]["on_termination"][0]["share"] = 0.999
    accepted(doc)
    doc = base()
    steps(doc)[6].pop("cap")  # an uncapped tranche takes nothing before it has drawn: cash can be left
    accepted(doc)


def test_fees_paid_by_the_waterfall_need_a_fees_step_and_back():
    doc = base()
    steps(doc).pop(0)
    refused(doc, "fees[1].paid_by", "'waterfall' needs a { pay = \"fees\" } step in [waterfall] steps, got none")
    doc["waterfall"]["on_termination"].insert(0, {"pay": "fees"})  # at termination only: not enough
    found = problems(doc)
    assert found == ["fees[1].paid_by: 'waterfall' needs a { pay = \"fees\" } step in [waterfall] steps, got none"]
    doc = base()
    doc["fees"][1]["paid_by"] = "payer"
    refused(doc, "waterfall.steps[0].pay", "a 'fees' step needs a fee with paid_by = 'waterfall', got none")
    doc = minimal()
    doc["fees"][0]["paid_by"] = "waterfall"  # the default waterfall pays no fees
    refused(doc, "fees[0].paid_by", "needs a { pay = \"fees\" } step in a [waterfall] (the default pays no fees)")


def test_a_recoup_step_needs_a_guarantee_that_recoups_and_back():
    doc = base()
    doc["guarantees"][1]["recoup"] = False
    refused(doc, "waterfall.steps[1].pay", "a 'recoup' step needs a guarantee with recoup = true, got none")
    doc = base()
    steps(doc).pop(1)
    refused(doc, "guarantees[1].recoup", "true needs a { pay = \"recoup\" } step in [waterfall] (only the default "
                                         "waterfall adds one), got none")
    del doc["waterfall"]  # the default waterfall adds the recoup step itself
    doc["fees"].pop(1)
    c = accepted(doc)
    assert c.waterfall_terms is None and c.waterfall.steps[0] == Step("recoup")


# --- guarantees ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("amount, ok", [(0.01, True), (0, False)])
def test_first_loss_needs_an_amount_above_zero(amount, ok):
    doc = base()
    doc["guarantees"][1]["amount"] = amount
    if ok:
        assert accepted(doc).guarantees[1].amount == amount
    else:
        refused(doc, "guarantees[1].amount", "must be > 0, got 0")


@pytest.mark.parametrize("floor, ok", [(1, True), (1e-9, True), (0, False), (1.0001, False)])
def test_floor_is_in_zero_one(floor, ok):
    doc = base()
    doc["guarantees"][2]["floor"] = floor
    if ok:
        assert accepted(doc).guarantees[2].floor == floor
    else:
        refused(doc, "guarantees[2].floor", "must be > 0" if floor == 0 else "must be <= 1")


def test_each_guarantee_kind_takes_its_own_term():
    doc = base()
    del doc["guarantees"][1]["amount"]
    refused(doc, "guarantees[1].amount", "missing required field")
    doc = base()
    doc["guarantees"][1]["share"] = 0.5
    refused(doc, "guarantees[1].share", "unknown key (allowed: amount, cap, classes, guarantor, investors, kind, "
                                        "pays, recoup)")
    doc = base()
    del doc["guarantees"][0]["share"]  # a share guarantee needs its share, as before
    refused(doc, "guarantees[0].share", "missing required field")
    doc = base()
    doc["guarantees"][0]["kind"] = "wrap"
    refused(doc, "guarantees[0].kind", "must be one of share, first_loss, floor, got string 'wrap'")
    doc = base()
    doc["guarantees"][0]["pays"] = "default"
    refused(doc, "guarantees[0].pays", "must be one of maturity, termination, termination_or_maturity")
    doc = base()
    doc["guarantees"][0]["recoup"] = "yes"
    refused(doc, "guarantees[0].recoup", "must be true or false, got string 'yes'")


def test_guarantees_on_grants_are_refused():
    doc = base()
    doc["guarantees"][0]["investors"] = ["Senior loan", "Grant"]
    refused(doc, "guarantees[0].investors[1]", "guarantees on grants are refused (a grant is never repaid: it has "
                                               "no loss to cover), got grant 'Grant'")
    doc = base()
    doc["guarantees"][1]["classes"] = ["grant"]
    refused(doc, "guarantees[1].classes[0]", "got class 'grant' with grant 'Grant'")
    doc = minimal()
    doc["investors"][1].update({"class": "grant", "capital_protection": 0.5})
    refused(doc, "investors[1].capital_protection", "guarantees on grants are refused")
    doc["investors"][1]["capital_protection"] = 0  # no protection: nothing to refuse
    accepted(doc)


def test_only_share_guarantees_count_towards_the_full_cover():
    doc = base()
    doc["guarantees"][0]["share"] = 1.0  # 100 % of the senior loan's loss, and a first loss on it too
    doc["guarantees"][1] = {"guarantor": "Municipality", "investors": ["Senior loan"], "kind": "first_loss",
                            "amount": 5_000, "recoup": True}
    assert [g.kind for g in accepted(doc).guarantees] == ["share", "first_loss", "floor"]
    doc["guarantees"].append({"guarantor": "Bank", "investors": ["Senior loan"], "share": 1e-9})
    refused(doc, "guarantees[3]", "guarantees must cover at most 100 % of an investor's losses in all")


@pytest.mark.parametrize("guarantor", ["municipality", "MINISTRY", "Ministry "])
def test_a_near_miss_of_any_payer_name_is_refused(guarantor):
    doc = base()
    doc["guarantees"][0]["guarantor"] = guarantor
    if guarantor.endswith(" "):
        refused(doc, "guarantees[0].guarantor", "must not begin or end with white space")
    else:
        near = "Municipality" if guarantor == "municipality" else "Ministry"
        refused(doc, "guarantees[0].guarantor", f"must be the payer's name exactly to be the payer ({near!r}), "
                                                f"got {guarantor!r}")


def test_a_guarantee_by_either_payer_is_capital_protection():
    doc = base()
    doc["guarantees"][0]["guarantor"] = "Ministry"
    c = accepted(doc)
    assert [g.guarantor in c.payer_names for g in c.guarantees] == [True, True, False]


def test_with_payers_the_formula_name_is_no_guarantor():
    doc = base()
    doc["payer"]["name"] = "State"
    assert accepted(doc).payer.name == "State"
    doc["guarantees"][0]["guarantor"] = "state"
    refused(doc, "guarantees[0].guarantor", "with [[payers]], [payer] name is no payer: name one of the payers "
                                            "('Municipality', 'Ministry') for capital protection, got 'state'")


# --- payers -------------------------------------------------------------------------------------------
def test_payer_names_are_unique_once_normalised():
    doc = base()
    doc["payers"][1]["name"] = "MUNICIPALITY"
    refused(doc, "payers[1].name", "must be unique, 'MUNICIPALITY' is a duplicate of payers[0].name 'Municipality'")


def test_buys_names_parts_of_the_formula():
    doc = base()
    doc["payers"][0]["buys"] = ["diploma", "housing", "savings", "job_sustained"]
    refused(doc, "payers[0].buys[1]", "must be a part the payment formula pays for (diploma, job_sustained, savings), "
                                      "got 'housing'")
    doc["payers"][0]["buys"] = ["diploma", "diploma", "savings", "job_sustained"]
    refused(doc, "payers[0].buys[1]", "must name each part once, got 'diploma' twice")
    doc["payers"][0]["buys"] = []
    refused(doc, "payers[0].buys", "must be a non-empty array of parts of the payment formula")
    doc["payer"]["savings_share"] = 0  # no savings share: "savings" is no part
    doc["payers"][0]["buys"] = ["diploma", "job_sustained", "savings"]
    refused(doc, "payers[0].buys[2]", "(diploma, job_sustained), got 'savings'")


def test_the_shares_of_each_part_add_up_to_one_within_1e_9():
    doc = base()
    doc["payers"][1]["share"] = 0.4 + 0.5e-9
    assert accepted(doc).payer_split[1].share == 0.4 + 0.5e-9
    doc["payers"][1]["share"] = 0.4 + 2e-9
    found = problems(doc)
    assert found == [f"payers: the shares of the payers buying {part!r} must add up to 1, got 1.000000002 "
                     f"(Municipality 0.6, Ministry 0.400000002)" for part in ("diploma", "job_sustained", "savings")]
    doc["payers"][0]["buys"] = ["job_sustained", "savings"]
    doc["payers"][1]["share"] = 0.4
    refused(doc, "payers", "the shares of the payers buying 'diploma' must add up to 1, got 0.4 (Ministry 0.4)")
    doc["payers"][1]["buys"] = ["job_sustained", "savings"]
    refused(doc, "payers", "buying 'diploma' must add up to 1, got 0 (no payer buys it)")
    doc["payers"][0]["share"] = 1.0  # disjoint parts, each paid in full by one payer
    doc["payers"][0]["buys"] = ["diploma"]
    doc["payers"][1]["share"] = 1.0
    assert [p.buys for p in accepted(doc).payer_split] == [("diploma",), ("job_sustained", "savings")]


@pytest.mark.parametrize("key, value, ok", [
    ("share", 1, None), ("share", 0, "must be > 0"), ("payment_lag_months", 0, True),
    ("payment_lag_months", -1, "must be >= 0"), ("default_probability", 0, True),
    ("default_probability", 0.999, True), ("default_probability", 1, "must be < 1"),
    ("payment_cap", 0.01, True), ("payment_cap", 0, "must be > 0"), ("paid_to", "investors", True),
    ("paid_to", "ministry", "must be one of investors, provider")])
def test_payer_terms_at_their_bounds(key, value, ok):
    doc = base()
    doc["payers"][1][key] = value
    if ok is True:
        assert getattr(accepted(doc).payer_split[1], key) == value
    elif ok is None:  # a share of 1 is allowed, but the parts' shares then add up to 1.6
        assert all("must add up to 1, got 1.6" in line for line in problems(doc))
    else:
        refused(doc, f"payers[1].{key}", ok)


def _topped_up() -> dict:
    """The fixture with Ministry paying above Municipality's cap (Municipality then buys everything)."""
    doc = base()
    doc["payers"][0]["share"] = 1.0
    doc["payers"][1] = {"name": "Ministry", "above_cap_of": "Municipality", "payment_lag_months": 3}
    return doc


def test_a_payer_above_another_payers_cap():
    contract = accepted(_topped_up())
    assert contract.payer_split[1].above_cap_of == "Municipality"
    assert not contract.payer_split[1].buys_part("diploma")


@pytest.mark.parametrize("lag, ok", [(3, True), (4, False), (2, False)])
def test_above_cap_of_has_the_same_lag(lag, ok):
    doc = _topped_up()
    doc["payers"][1]["payment_lag_months"] = lag
    if ok:
        accepted(doc)
    else:
        refused(doc, "payers[1].payment_lag_months", f"must equal Municipality's (3): it pays what that cap left, "
                                                     f"in the same month, got {lag}")


@pytest.mark.parametrize("paid_to, ok", [("investors", True), ("provider", False)])
def test_above_cap_of_pays_the_same_party(paid_to, ok):
    doc = _topped_up()
    doc["payers"][1]["paid_to"] = paid_to
    if ok:
        accepted(doc)
    else:
        refused(doc, "payers[1].paid_to", "must equal Municipality's ('investors'): it pays what that cap left, "
                                          "to the same party, got 'provider'")


def test_above_cap_of_names_an_earlier_payer_with_a_cap():
    doc = _topped_up()
    doc["payers"][1]["above_cap_of"] = "municipality"
    refused(doc, "payers[1].above_cap_of", "unknown payer 'municipality'; did you mean 'Municipality'?")
    doc["payers"][1]["above_cap_of"] = "Ministry"
    refused(doc, "payers[1].above_cap_of", "must name a payer listed before this one")
    doc = _topped_up()
    doc["payers"].reverse()
    doc["payers"][1]["share"] = 1.0
    refused(doc, "payers[0].above_cap_of", "must name a payer listed before this one")
    doc = _topped_up()
    del doc["payers"][0]["payment_cap"]
    refused(doc, "payers[1].above_cap_of", "must name a payer with a payment_cap (there is nothing above no cap)")


@pytest.mark.parametrize("key, value", [("buys", ["diploma"]), ("share", 1.0)])
def test_above_cap_of_buys_nothing_of_its_own(key, value):
    doc = _topped_up()
    doc["payers"][1][key] = value
    refused(doc, f"payers[1].{key}", "must be left out with above_cap_of (the payer buys nothing of its own")


def test_one_payer_at_most_above_a_cap():
    doc = _topped_up()
    doc["payers"].append({"name": "Region", "above_cap_of": "Municipality", "payment_lag_months": 3})
    refused(doc, "payers[2].above_cap_of", "one payer at most pays above the cap of 'Municipality', got a second")
    doc["payers"][1]["payment_cap"] = 500  # a chain is allowed: Region above Ministry's cap
    doc["payers"][2]["above_cap_of"] = "Ministry"
    assert accepted(doc).payer_split[2].above_cap_of == "Ministry"


def test_each_payer_gives_its_lag():
    doc = base()
    del doc["payers"][1]["payment_lag_months"]
    refused(doc, "payers[1].payment_lag_months", "missing required field")
    doc["payers"] = []
    refused(doc, "payers", "must have at least 1 entry")


@pytest.mark.parametrize("key, value", [("payment_cap", 1_000), ("payment_lag_months", 3), ("default_probability", 0)])
def test_with_payers_the_formula_gives_no_cap_lag_or_default(key, value):
    doc = base()
    doc["payer"][key] = value
    refused(doc, f"payer.{key}", f"with [[payers]], each payer gives its own (payers[].{key}), got {value}")


def test_without_payers_the_payer_still_needs_its_name():
    doc = minimal()
    del doc["payer"]["name"]
    refused(doc, "payer.name", "missing required field")


def test_one_payer_entry_takes_the_capital_protection():
    doc = minimal()
    doc["investors"][0]["capital_protection"] = 0.3
    del doc["payer"]["payment_lag_months"]
    doc["payers"] = [{"name": "City", "payment_lag_months": 2}]
    c = accepted(doc)
    assert c.payer.name == "Municipality" and c.payer.payment_lag_months == 2
    assert c.guarantees == (Guarantee("City", ("Alpha Fund",), 0.3),) and c.payer_names == ("City",)
    doc["payers"].append({"name": "State", "payment_lag_months": 2})
    doc["payers"][0]["share"] = doc["payers"][1]["share"] = 0.5
    refused(doc, "investors[0].capital_protection", "with several [[payers]], give a [[guarantees]] entry naming the "
                                                    "payer who protects (guarantor = one of 'City', 'State'), got 0.3")


# --- the savings share's balance-linked switch -------------------------------------------------------------
@pytest.mark.parametrize("rate, ok", [(1e-9, True), (1, True), (0, False), (1.0001, False)])
def test_until_rate_above_zero(rate, ok):
    doc = base()
    doc["payer"]["savings_share"]["until"]["rate"] = rate
    if ok:
        assert accepted(doc).payer.savings_share.until_rate == rate
    else:
        refused(doc, "payer.savings_share.until.rate", "must be > 0, got 0" if rate == 0 else "must be <= 1")


def test_until_not_with_switch_multiple():
    doc = base()
    doc["payer"]["savings_share"]["switch_multiple"] = 1.2
    refused(doc, "payer.savings_share.until", "give switch_multiple (a multiple of the planned capital) or until "
                                              "(the tranches' balance), not both")


def test_until_names_tranches_never_a_grant():
    doc = base()
    until = doc["payer"]["savings_share"]["until"]
    until["tranches"] = ["Senior loan", "junior"]
    refused(doc, "payer.savings_share.until.tranches[1]", "unknown tranche 'junior'; did you mean 'Junior'?")
    until["tranches"] = ["Grant"]
    refused(doc, "payer.savings_share.until.tranches[0]", "a grant is never repaid (the switch would never come)")
    del until["tranches"]
    refused(doc, "payer.savings_share.until.tranches", "missing required field")


@pytest.mark.parametrize("value, ok", [(True, True), (False, True), (1, False), ("true", False)])
def test_until_per_cohort_true_or_false_pooled_by_default(value, ok):
    doc = base()
    assert accepted(doc).payer.savings_share.per_cohort is False
    doc["payer"]["savings_share"]["until"]["per_cohort"] = value
    if ok:
        assert accepted(doc).payer.savings_share.per_cohort is value
    else:
        refused(doc, "payer.savings_share.until.per_cohort", "must be true or false, got")


def test_per_cohort_belongs_to_until():
    doc = base()
    doc["payer"]["savings_share"]["per_cohort"] = True
    refused(doc, "payer.savings_share.per_cohort", "unknown key (allowed: rate, rate_after, switch_multiple, until)")


@pytest.mark.parametrize("after, ok", [(0.5, True), (0.5000001, False)])
def test_rate_after_at_most_rate_with_until(after, ok):
    doc = base()
    doc["payer"]["savings_share"]["rate_after"] = after
    if ok:
        assert accepted(doc).payer.savings_share.rate_after == after
    else:
        refused(doc, "payer.savings_share.rate_after", "must be <= rate (0.5)")


def test_until_needs_a_share_above_zero():
    doc = base()
    doc["payer"]["savings_share"].update(rate=0, rate_after=0)
    doc["payers"][0]["buys"] = ["diploma", "job_sustained"]
    refused(doc, "payer.savings_share.until", "must come with rate > 0 (a share of nothing never switches), got rate 0")


# --- the review --------------------------------------------------------------------------------------------
def test_review_one_condition_or_conditions_not_both():
    doc = base()
    doc["payer"]["review"]["outcome"] = "diploma"
    refused(doc, "payer.review", "give either outcome, measure and floor (one condition) or conditions, not both, "
                                 "got conditions and outcome")
    doc = base()
    review = doc["payer"]["review"]
    review["conditions"] = review["conditions"][:1]
    assert accepted(doc).payer.review == Review(12, "diploma", "difference", 0.0, (), "all")
    del review["conditions"]
    del review["combine"]
    found = problems(doc)
    assert found == [f"payer.review.{k}: missing required field" for k in ("outcome", "measure", "floor")]
    review.update(outcome="diploma", measure="difference", floor=0.0)
    assert accepted(doc).payer.review == Review(12, "diploma", "difference", 0.0)
    review["combine"] = "any"
    refused(doc, "payer.review.combine", "must come with conditions (it says how they combine), got string 'any'")


@pytest.mark.parametrize("combine, ok", [("any", True), ("all", True), ("some", False), ("ANY", False)])
def test_review_combine(combine, ok):
    doc = base()
    doc["payer"]["review"]["combine"] = combine
    if ok:
        assert accepted(doc).payer.review.combine == combine
    else:
        refused(doc, "payer.review.combine", f"must be one of any, all, got string {combine!r}")


def test_review_conditions_each_checked():
    doc = base()
    conditions = doc["payer"]["review"]["conditions"]
    conditions[1]["outcome"] = "housing"
    refused(doc, "payer.review.conditions[1].outcome", "must be one of diploma, job_sustained, got string 'housing'")
    del conditions[1]["outcome"]
    refused(doc, "payer.review.conditions[1].outcome", "missing required field")
    doc["payer"]["review"]["conditions"] = []
    refused(doc, "payer.review.conditions", "must be a non-empty array of { outcome, measure, floor } tables")


def test_an_outcome_used_only_by_a_later_review_condition_is_used():
    doc = base()
    del doc["payer"]["rate_card"]["job_sustained"]
    doc["payers"][0]["buys"] = ["diploma", "savings"]
    assert accepted(doc).warnings == ()


# --- the external stop ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("month, ok", [(1, True), (24, True), (0, False), (25, False)])
def test_external_stop_month_within_the_term(month, ok):
    doc = base()
    doc["external_stop"]["month"] = month
    if ok:
        assert accepted(doc).external_stop.month == month
    else:
        refused(doc, "external_stop.month", "must be >= 1, got 0" if month == 0 else "must be <= 24, got 25")


@pytest.mark.parametrize("p, ok", [(1, True), (1e-9, True), (0, False), (1.0000001, False)])
def test_external_stop_probability_in_zero_one(p, ok):
    doc = base()
    doc["external_stop"]["probability"] = p
    if ok:
        assert accepted(doc).external_stop.probability == p
    else:
        refused(doc, "external_stop.probability", "must be > 0, got 0" if p == 0 else "must be <= 1")


def test_external_stop_defaults_and_keys():
    doc = base()
    doc["external_stop"] = {"month": 6}
    assert accepted(doc).external_stop == ExternalStop(6, 1.0, "external event")
    doc["external_stop"]["reason"] = ""
    refused(doc, "external_stop.reason", "must be a non-empty string")
    doc["external_stop"] = {"month": 6, "when": 1}
    refused(doc, "external_stop.when", "unknown key (allowed: month, probability, reason)")


# --- warnings --------------------------------------------------------------------------------------------------
def test_termination_terms_without_any_termination_are_warned_about():
    doc = base()
    del doc["external_stop"]
    del doc["payer"]["review"]
    c = accepted(doc)
    assert c.warnings == (
        f"{FILE}: waterfall.on_termination: warning: the contract never terminates early (no [payer.review], no "
        f"[external_stop]): it is never used",
        f"{FILE}: guarantees[2].pays: warning: the contract never terminates early (no [payer.review], no "
        f"[external_stop]): this guarantee never pays",
    )


def test_the_engine_settles_the_full_stack():
    """Every term the loader builds is one the engine reads: settlement runs and keeps its identities."""
    from sibsim.cashflows import settle
    from sibsim.montecarlo import simulate_outcomes

    contract = load_scenario(STACK)
    cash = settle(contract, simulate_outcomes(contract, 16, np.random.default_rng(3)))
    np.testing.assert_allclose(cash.outcome_payments_due,
                               cash.outcome_payments + cash.defaulted_by_payer + cash.retained_by_payer, atol=1e-6)
    np.testing.assert_allclose(cash.capital_calls.sum(axis=1) + cash.recycled,
                               cash.provider_funding + cash.investor_fees, atol=1e-6)
    assert cash.terminated.any() and cash.waterfall_fees.sum() > 0
