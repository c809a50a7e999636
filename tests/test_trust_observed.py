"""Trust: observed outcomes and evidence are never silently misread.

Every rule is tested at its exact boundary: the largest value allowed is accepted, one more refused,
and the refusal is one line ``file: field: rule``.  The contract for most tests is
``tests/fixtures/valid_minimal_jobs.toml`` (``valid_minimal.toml`` with job starts, long-term contracts,
the occupancy outcome ``months_in_work`` and the cost item ``bijstand``): two cohorts of 10 (intake months
0 and 6), a comparison group of the same size (or twice the size), measurement months 12 and 24, a
30-month horizon.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sibsim import cli, load_scenario, settle
from sibsim.errors import ScenarioError
from sibsim import observed as observed_module
from sibsim.observed import Observed, load_observed, outcomes_from_observed
from sibsim.scenario import _read_document, contract_from_dict

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SCENARIOS = ROOT / "scenarios"
VALID_SCENARIO = FIXTURES / "valid_minimal_jobs.toml"
BASE_DOC = _read_document(VALID_SCENARIO)  # merged over valid_minimal.toml
CK = SCENARIOS / "utrecht_colour_kitchen.toml"
CK_EXAMPLE = SCENARIOS / "observed" / "utrecht_colour_kitchen_example.toml"
CK_EVIDENCE = SCENARIOS / "evidence" / "utrecht_colour_kitchen_year2.toml"
PB = SCENARIOS / "peterborough.toml"
PB_PUBLISHED = SCENARIOS / "observed" / "peterborough_published.toml"


def contract_with(**changes):
    """valid_minimal with top-level tables changed: ``comparison={"size_ratio": 2.0}`` merges into a table."""
    doc = copy.deepcopy(BASE_DOC)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key].update(value)
        else:
            doc[key] = value
    return contract_from_dict(doc, "scenario.toml")


@pytest.fixture(scope="module")
def contract():
    return load_scenario(VALID_SCENARIO)


def write(tmp_path, text: str, name: str = "observed.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def measurement(month, cohort, pair="comparison", **groups) -> str:
    """One ``[[measurement]]`` entry.  As an evaluator reports both groups, every outcome counted for one
    group is counted (as 0 unless given) for the other: treated alone is paired with ``pair`` (None: as
    given)."""
    if pair and list(groups) == ["treated"]:
        groups[pair] = {}
    if pair and len(groups) > 1:
        names = [k for counts in groups.values() for k in counts]
        groups = {g: {**counts, **{k: 0 for k in names if k not in counts}} for g, counts in groups.items()}
    lines = [f"[[measurement]]\nmonth = {month}\ncohort = {cohort}"]
    for group, counts in groups.items():
        lines.append(f"{group} = {{ " + ", ".join(f"{k} = {v}" for k, v in counts.items()) + " }")
    return "\n".join(lines) + "\n\n"


def problems(contract, path) -> list[str]:
    """The problems of settling ``path``; [] when it settles."""
    try:
        outcomes_from_observed(contract, load_observed(path))
    except ScenarioError as exc:
        for line in exc.problems:
            assert "\n" not in line and line.startswith(f"{path}: "), line
        return exc.problems
    return []


COMPARISON = {"job_start": 1}  # every file needs a counterfactual of some kind


# --- item 8: counts checked against the scenario ---------------------------------------------------
@pytest.mark.parametrize("outcome", ["diploma", "job_start"])
def test_once_per_participant_outcome_at_most_the_cohort_size(contract, tmp_path, outcome):
    ok = write(tmp_path, measurement(12, 0, treated={outcome: 10}, comparison=COMPARISON), "ok.toml")
    assert problems(contract, ok) == []
    bad = write(tmp_path, measurement(12, 0, treated={outcome: 11}, comparison=COMPARISON), "bad.toml")
    assert problems(contract, bad) == [f"{bad}: measurement[0].treated.{outcome}: must be <= cohort 0's size (10), "
                                       "got 11"]


def test_job_sustained_and_long_term_contract_at_most_the_cohort_size(contract, tmp_path):
    ok = write(tmp_path, measurement(24, 1, treated={"job_start": 10, "job_sustained": 10, "long_term_contract": 10},
                                     comparison=COMPARISON), "ok.toml")
    assert problems(contract, ok) == []
    bad = write(tmp_path, measurement(24, 1, treated={"job_start": 11, "job_sustained": 11, "long_term_contract": 11},
                                      comparison=COMPARISON), "bad.toml")
    assert problems(contract, bad) == [
        f"{bad}: measurement[0].treated.{o}: must be <= cohort 1's size (10), got 11"
        for o in ("job_start", "job_sustained", "long_term_contract")]


def test_comparison_counts_at_most_the_comparison_group_size(tmp_path):
    contract = contract_with(comparison={"size_ratio": 2.0})  # 20 comparison members per cohort
    ok = write(tmp_path, measurement(12, 0, treated={"job_start": 1}, comparison={"job_start": 20}), "ok.toml")
    assert problems(contract, ok) == []
    bad = write(tmp_path, measurement(12, 0, treated={"job_start": 1}, comparison={"job_start": 21}), "bad.toml")
    assert problems(contract, bad) == [f"{bad}: measurement[0].comparison.job_start: must be <= cohort 0's "
                                       "comparison group size (20), got 21"]


def test_counterfactual_counts_at_most_the_treated_cohort_size_and_may_be_fractional(tmp_path):
    contract = contract_with(comparison={"size_ratio": 2.0})  # counterfactual is scaled to the 10 treated
    ok = write(tmp_path, measurement(12, 0, treated={"job_start": 1}, counterfactual={"job_start": 10}), "ok.toml")
    assert problems(contract, ok) == []
    scaled = write(tmp_path, measurement(12, 0, treated={"job_start": 1}, counterfactual={"job_start": 2.5}), "f.toml")
    assert problems(contract, scaled) == []  # 5 of 20 comparison members, scaled to 10: an estimate, not people
    bad = write(tmp_path, measurement(12, 0, treated={"job_start": 1}, counterfactual={"job_start": 10.5}), "bad.toml")
    assert problems(contract, bad) == [f"{bad}: measurement[0].counterfactual.job_start: must be <= cohort 0's size "
                                       "(10: counterfactual counts are scaled to it), got 10.5"]


#: Person-months: an occupancy outcome (months in work) and a cost item (months on bijstand) alike.
PERSON_MONTHS = ["months_in_work", "bijstand"]


@pytest.mark.parametrize("outcome", PERSON_MONTHS)
def test_person_months_at_most_size_times_months_since_intake(contract, tmp_path, outcome):
    # Cohort 1 starts in month 6: by month 12, 10 members x 6 months.
    ok = write(tmp_path, measurement(12, 1, treated={outcome: 60}, comparison=COMPARISON), "ok.toml")
    assert problems(contract, ok) == []
    bad = write(tmp_path, measurement(12, 1, treated={outcome: 61}, comparison=COMPARISON), "bad.toml")
    assert problems(contract, bad) == [f"{bad}: measurement[0].treated.{outcome}: must be <= cohort 1's size x "
                                       "months since its intake (10 x 6 = 60), got 61"]


@pytest.mark.parametrize("outcome", PERSON_MONTHS)
def test_person_months_rise_at_most_size_times_months_between_counts(contract, tmp_path, outcome):
    # 12 by month 12, then at most 10 x 12 more by month 24 (132 <= 10 x 24 = 240 alone would pass).
    ok = write(tmp_path, measurement(12, 0, treated={outcome: 12}, comparison=COMPARISON)
               + measurement(24, 0, treated={outcome: 132}), "ok.toml")
    assert problems(contract, ok) == []
    bad = write(tmp_path, measurement(12, 0, treated={outcome: 12}, comparison=COMPARISON)
                + measurement(24, 0, treated={outcome: 133}), "bad.toml")
    assert problems(contract, bad) == [
        f"{bad}: measurement[1].treated.{outcome}: must rise by at most cohort 0's size x months since the "
        "count at month 12 (10 x 12 = 120), got 121 more (12 at month 12, 133 at month 24)"]


def test_scaled_person_months_at_most_size_times_months_times_the_scale(tmp_path):
    """Days in work (30.4375 a month): cohort 1 by month 12 at most 10 x 6 x 30.4375 = 1,826.25 days."""
    contract = contract_with(outcomes={"days_in_work": {"kind": "occupancy", "states": ["job", "long_term_job"],
                                                         "scale": 30.4375, "unit": "days"}})
    ok = write(tmp_path, measurement(12, 1, treated={"days_in_work": 1826}, comparison=COMPARISON), "ok.toml")
    assert problems(contract, ok) == []
    bad = write(tmp_path, measurement(12, 1, treated={"days_in_work": 1827}, comparison=COMPARISON), "bad.toml")
    assert problems(contract, bad) == [
        f"{bad}: measurement[0].treated.days_in_work: must be <= cohort 1's size x months since its intake x "
        "30.4375 days a month (10 x 6 x 30.4375 days a month = 1826.25), got 1827"]
    rise = write(tmp_path, measurement(12, 0, treated={"days_in_work": 0}, comparison=COMPARISON)
                 + measurement(24, 0, treated={"days_in_work": 3653}), "rise.toml")  # 10 x 12 x 30.4375 = 3652.5
    assert problems(contract, rise) == [
        f"{rise}: measurement[1].treated.days_in_work: must rise by at most cohort 0's size x months since the "
        "count at month 12 (10 x 12 x 30.4375 = 3652.5), got 3653 more (0 at month 12, 3653 at month 24)"]


def test_person_months_after_a_lag_and_within_a_window(tmp_path):
    """Months dated 2 months later and counted within 4 months of intake: cohort 0 by month 12 at most
    10 x min(12 - 2, 4) = 40; cohort 1 (intake 6) at most 10 x (12 - 6 - 2) = 40 as well."""
    contract = contract_with(outcomes={"early_months": {"kind": "occupancy", "states": ["job", "long_term_job"],
                                                         "lag": 2, "window": 4}})
    ok = write(tmp_path, measurement(12, 0, treated={"early_months": 40}, comparison=COMPARISON)
               + measurement(12, 1, treated={"early_months": 40}, comparison=COMPARISON), "ok.toml")
    assert problems(contract, ok) == []
    bad = write(tmp_path, measurement(12, 0, treated={"early_months": 41}, comparison=COMPARISON)
                + measurement(12, 1, treated={"early_months": 41}, comparison=COMPARISON), "bad.toml")
    assert problems(contract, bad) == [
        f"{bad}: measurement[0].treated.early_months: must be <= cohort 0's size x months since its intake less "
        "the 2-month lag (at most the 4-month window) (10 x 4 = 40), got 41",
        f"{bad}: measurement[1].treated.early_months: must be <= cohort 1's size x months since its intake less "
        "the 2-month lag (at most the 4-month window) (10 x 4 = 40), got 41"]


def test_census_counts_at_most_size_times_census_months_passed(tmp_path):
    """In work at 6, 12 and 18 months after intake: by month 24 cohort 0 (intake 0) had 3 censuses
    (10 x 3 = 30), cohort 1 (intake 6) 2 (its census at month 24 counts from month 25 on)."""
    contract = contract_with(outcomes={"in_work": {"kind": "status", "states": ["job", "long_term_job"],
                                                    "at_months": [6, 12, 18]}})
    ok = write(tmp_path, measurement(24, 0, treated={"in_work": 30}, comparison=COMPARISON)
               + measurement(24, 1, treated={"in_work": 20}, comparison=COMPARISON), "ok.toml")
    assert problems(contract, ok) == []
    bad = write(tmp_path, measurement(24, 0, treated={"in_work": 31}, comparison=COMPARISON)
                + measurement(24, 1, treated={"in_work": 21}, comparison=COMPARISON), "bad.toml")
    assert problems(contract, bad) == [
        f"{bad}: measurement[0].treated.in_work: must be <= cohort 0's size x census months passed (10 x 3 = 30), "
        "got 31",
        f"{bad}: measurement[1].treated.in_work: must be <= cohort 1's size x census months passed (10 x 2 = 20), "
        "got 21"]


def test_event_counts_of_every_occurrence_have_no_upper_bound_but_the_largest_count(tmp_path):
    """Reconviction events (every event, Peterborough): 1,234,567 among 1,000 men is not refused for the
    cohort's size; only counts above MAX_COUNT are (prices x counts must stay finite)."""
    contract = load_scenario(PB)
    many = write(tmp_path, measurement(36, 0, treated={"reconviction_events": 1_234_567},
                                       comparison={"reconviction_events": 1250}), "ok.toml")
    assert problems(contract, many) == []
    top = write(tmp_path, measurement(36, 0, treated={"reconviction_events": 10**12},
                                      comparison={"reconviction_events": 1250}), "top.toml")
    assert problems(contract, top) == []
    bad = write(tmp_path, measurement(36, 0, treated={"reconviction_events": 10**12 + 1},
                                      comparison={"reconviction_events": 1250}), "bad.toml")
    assert problems(contract, bad) == [f"{bad}: measurement[0].treated.reconviction_events: count must be <= 1e+12, "
                                       "got 1000000000001"]


@pytest.mark.parametrize("group", ["treated", "comparison"])
@pytest.mark.parametrize("outcome, what", [("job_start", "participants"), ("diploma", "events"),
                                           ("months_in_work", "months"), ("bijstand", "months")])
def test_people_and_months_are_whole_numbers(contract, tmp_path, group, outcome, what):
    other = "comparison" if group == "treated" else "treated"
    whole = write(tmp_path, measurement(12, 0, **{group: {outcome: 2.0}, other: {"job_start": 1}}), "ok.toml")
    assert problems(contract, whole) == []  # 2.0 is a whole number (a spreadsheet may write it so)
    bad = write(tmp_path, measurement(12, 0, **{group: {outcome: 2.5}, other: {"job_start": 1}}), "bad.toml")
    # A file is read before the scenario that says what its names count: no unit in the rule then.
    assert problems(contract, bad) == [f"{bad}: measurement[0].{group}.{outcome}: count must be a whole number, "
                                       "got 2.5"]
    # Counts built in code are checked against the scenario: the unit is the outcome's (diploma is an event).
    observed = Observed({(group, 0, outcome): {12: 2.5}, (other, 0, "job_start"): {12: 1.0}}, "code")
    assert observed_module.check_observed(contract, observed)[0] == (
        f"code: cohort 0.{group}.{outcome}: count must be a whole number of {what}, got 2.5")


@pytest.mark.parametrize("outcome, needed", [("job_sustained", "job_start"), ("long_term_contract", "job_sustained")])
def test_an_outcome_is_never_above_the_outcome_it_requires(contract, tmp_path, outcome, needed):
    chain = {"job_start": 5, "job_sustained": 5, "long_term_contract": 5}
    ok = write(tmp_path, measurement(24, 0, treated=chain, comparison=COMPARISON), "ok.toml")
    assert problems(contract, ok) == []
    bad = write(tmp_path, measurement(24, 0, treated={**chain, outcome: 6}, comparison=COMPARISON), "bad.toml")
    assert problems(contract, bad) == [f"{bad}: measurement[0].treated.{outcome}: must be <= the {needed} count of "
                                       "the same group, cohort and month (5), got 6"]


def test_sustained_jobs_without_job_starts_are_refused(contract, tmp_path):
    bad = write(tmp_path, measurement(24, 0, treated={"job_sustained": 3}, comparison={"job_start": 2,
                                                                                       "job_sustained": 1}))
    assert problems(contract, bad) == [
        f"{bad}: measurement[0].treated.job_sustained: must be <= the job_start count of the same group, cohort and "
        "month (0), got 3"]  # the comparison's 1 sustained of 2 job starts is fine


def test_a_required_count_given_earlier_is_carried_forward(contract, tmp_path):
    text = (measurement(12, 0, treated={"job_start": 3}, comparison=COMPARISON)
            + measurement(24, 0, treated={"job_sustained": 3}))
    assert problems(contract, write(tmp_path, text, "ok.toml")) == []
    text = (measurement(12, 0, treated={"job_start": 3}, comparison=COMPARISON)
            + measurement(24, 0, treated={"job_sustained": 4}))
    bad = write(tmp_path, text, "bad.toml")
    assert problems(contract, bad) == [
        f"{bad}: measurement[1].treated.job_sustained: must be <= the job_start count of the same group, cohort and "
        "month (3, as counted at month 12), got 4"]


def test_requirements_are_derived_from_the_journey_nearest_first():
    """long_term_job is entered only by the branch at 6 months in ``job``; the month the branch fires
    belongs to long_term_job, so a run in ``job`` alone reaches 5 months, not 6 (journey.py, step 3)."""
    contract = contract_with(outcomes={"job_5": {"kind": "milestone", "states": ["job"], "months": 5},
                                       "job_6": {"kind": "milestone", "states": ["job"], "months": 6}})
    assert observed_module.requirements(contract) == {
        "job_sustained": ["job_start"],
        "long_term_contract": ["job_sustained", "job_5"],  # job_start through job_sustained; not job_6
        "job_5": ["job_start"],
        "job_6": ["job_sustained", "job_5"],  # 6 months in job are 6 in job or long_term_job; job_start through both
    }


def test_a_diploma_is_not_required_for_a_job(contract, tmp_path):
    path = write(tmp_path, measurement(12, 0, treated={"diploma": 0, "job_start": 5}, comparison=COMPARISON))
    assert problems(contract, path) == []


def test_equal_cumulative_counts_are_accepted_a_fall_refused(contract, tmp_path):
    flat = write(tmp_path, measurement(12, 0, treated={"job_start": 4}, comparison=COMPARISON)
                 + measurement(24, 0, treated={"job_start": 4}, comparison=COMPARISON), "ok.toml")
    assert problems(contract, flat) == []
    fall = write(tmp_path, measurement(12, 0, treated={"job_start": 4}, comparison=COMPARISON)
                 + measurement(24, 0, treated={"job_start": 3}, comparison=COMPARISON), "bad.toml")
    assert problems(contract, fall) == [f"{fall}: measurement[1].treated.job_start: cumulative counts must not fall, "
                                        "got 4 at month 12, then 3 at month 24"]


@pytest.mark.parametrize("month", [18, 25, 30])  # between measurements; after the last (the horizon is 30)
def test_a_count_at_a_month_the_contract_does_not_read_is_refused(contract, tmp_path, month):
    path = write(tmp_path, measurement(12, 0, treated={"job_start": 1}, comparison=COMPARISON)
                 + measurement(month, 0, treated={"job_start": 2}, comparison=COMPARISON))
    assert problems(contract, path) == [f"{path}: measurement[1].month: must be a month the contract counts cohort 0 "
                                        f"at (measurement months 12, 24), got {month}"]


def test_trigger_months_are_read_per_cohort(tmp_path):
    """Peterborough reads cohort 1 at month 36 and cohort 2 at 58 only (no measurement months)."""
    contract = load_scenario(PB)
    assert problems(contract, str(PB_PUBLISHED)) == []
    path = write(tmp_path, measurement(58, 0, treated={"reconviction_events": 1145},
                                       comparison={"reconviction_events": 1250}))
    assert problems(contract, path) == [f"{path}: measurement[0].month: must be a month the contract counts cohort 0 "
                                        "at (trigger month 36), got 58"]


def test_the_review_month_is_read(tmp_path):
    payer = dict(BASE_DOC["payer"], review={"month": 18, "outcome": "job_start", "measure": "difference",
                                            "floor": -1.0})
    contract = contract_with(payer=payer)
    path = write(tmp_path, measurement(18, 0, treated={"job_start": 2}, comparison=COMPARISON))
    assert problems(contract, path) == []
    path = write(tmp_path, measurement(17, 0, treated={"job_start": 2}, comparison=COMPARISON), "bad.toml")
    assert problems(contract, path) == [f"{path}: measurement[0].month: must be a month the contract counts cohort 0 "
                                        "at (measurement months 12, 24; review month 18), got 17"]


def test_every_problem_is_listed_at_once(contract, tmp_path):
    text = (measurement(12, 0, treated={"diploma": 1000, "job_start": 2.5}, comparison=COMPARISON)
            + measurement(18, 1, treated={"job_sustained": 2}))
    path = write(tmp_path, text)
    assert problems(contract, path) == [f"{path}: measurement[0].treated.job_start: count must be a whole number, "
                                        "got 2.5"]  # the file's own rules first
    text = (measurement(12, 0, treated={"diploma": 1000}, comparison=COMPARISON)
            + measurement(18, 1, treated={"job_sustained": 2}))
    path = write(tmp_path, text)
    assert problems(contract, path) == [
        f"{path}: measurement[0].treated.diploma: must be <= cohort 0's size (10), got 1000",
        f"{path}: measurement[1].month: must be a month the contract counts cohort 1 at (measurement months 12, 24), "
        "got 18",
        f"{path}: measurement[1].treated.job_sustained: must be <= the job_start count of the same group, cohort and "
        "month (0: none counted), got 2",
    ]


def test_the_old_colour_kitchen_example_is_refused_with_the_cohort_size(tmp_path, colour_kitchen):
    """The shipped example booked 110 diplomas on a 21-person cohort; settle paid them."""
    old = FIXTURES / "observed" / "broken_colour_kitchen" / "pooled_into_cohort_0.toml"
    found = problems(colour_kitchen, str(old))
    assert f"{old}: measurement[1].treated.diploma: must be <= cohort 0's size (21), got 110" in found
    assert f"{old}: measurement[0].treated.diploma: must be <= cohort 0's size (21), got 40" in found


def test_the_shipped_examples_pass_every_check(colour_kitchen):
    assert observed_module.check_observed(colour_kitchen, load_observed(CK_EXAMPLE)) == []
    assert observed_module.check_observed(load_scenario(PB), load_observed(PB_PUBLISHED)) == []


def test_counts_built_in_code_are_checked_against_the_scenario(contract):
    observed = Observed({("treated", 0, "diploma"): {12: 11.0}, ("treated", 0, "job_start"): {12: 1.0},
                         ("comparison", 0, "job_start"): {12: 1.0}}, "code")
    assert observed_module.check_observed(contract, observed) == [
        "code: cohort 0.treated.diploma: must be <= cohort 0's size (10), got 11"]


# --- item 9: a flat stretch then a rise is not spread back over the flat stretch -----------------------
def _months_contract():
    """One cohort of 120 from month 0; measured at 12, 24 and 36, paid 3 months later; EUR 10 per net month
    in work (the occupancy outcome months_in_work, once months off benefits) and EUR 1,000 per net job start."""
    doc = copy.deepcopy(BASE_DOC)
    doc["term"] = {"term_months": 36, "tail_months": 6}
    doc["payer"] = dict(doc["payer"], measurement_months=[12, 24, 36],
                        rate_card={"months_in_work": 10.0, "job_start": 1_000.0})
    doc["cohorts"] = [{"intake_month": 0, "size": 120}]
    return contract_from_dict(doc, "scenario.toml")


@pytest.mark.parametrize("case, counts, expected", [
    # The issue's cases: 0 then 1,308 paid 654 x EUR 10 a year early; 100, 100, 200 paid half the rise at 24.
    ("flat_then_rise", {12: 0, 24: 1308}, {15: 0.0, 27: 13_080.00, 39: 0.0}),
    ("flat_then_rise_later", {12: 100, 24: 100, 36: 200}, {15: 1_000.00, 27: 0.0, 39: 1_000.00}),
    ("rise_then_flat", {12: 600, 24: 600, 36: 600}, {15: 6_000.00, 27: 0.0, 39: 0.0}),
    # One count at 24: nothing was counted at 12, so nothing is paid for month 12.
    ("single_date", {24: 1308}, {15: 0.0, 27: 13_080.00, 39: 0.0}),
    ("single_first_date", {12: 360}, {15: 3_600.00, 27: 0.0, 39: 0.0}),
    ("rise_flat_rise", {12: 120, 24: 120, 36: 1000}, {15: 1_200.00, 27: 0.0, 39: 8_800.00}),
])
def test_person_month_payments_fall_due_when_counted(tmp_path, case, counts, expected):
    contract = _months_contract()
    text = "".join(measurement(m, 0, pair="counterfactual", treated={"months_in_work": v}) for m, v in counts.items())
    result = settle(contract, write(tmp_path, text))
    due = result.cashflows.outcome_payments_due[0]
    for month, amount in expected.items():
        assert round(due[month], 2) == amount, (case, month, due[month])
    assert round(due.sum(), 2) == sum(expected.values())


def test_flat_then_rise_places_the_months_after_the_flat_stretch(tmp_path):
    contract = _months_contract()
    text = measurement(12, 0, treated={"months_in_work": 0}, counterfactual={"months_in_work": 0})
    text += measurement(24, 0, pair="counterfactual", treated={"months_in_work": 1308})
    outcomes = outcomes_from_observed(contract, load_observed(write(tmp_path, text)))
    k = contract.outcome_index("months_in_work")
    np.testing.assert_array_equal(outcomes.treated.events[0, 0, k], [0.0] * 12 + [109.0] * 12 + [0.0] * 18)


def test_job_starts_flat_then_rise_are_paid_when_counted(tmp_path):
    contract = _months_contract()
    text = (measurement(12, 0, treated={"job_start": 0}, counterfactual={"job_start": 0})
            + measurement(24, 0, pair="counterfactual", treated={"job_start": 0})
            + measurement(36, 0, pair="counterfactual", treated={"job_start": 5}))
    due = settle(contract, write(tmp_path, text)).cashflows.outcome_payments_due[0]
    assert (round(due[15], 2), round(due[27], 2), round(due[39], 2)) == (0.0, 0.0, 5_000.00)


# --- CSV as spreadsheets write it --------------------------------------------------------------------
VALID_CSV = (FIXTURES / "observed" / "valid.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_a_dutch_excel_csv_with_semicolons_is_read(contract, tmp_path, bom):
    path = tmp_path / "excel.csv"
    # Excel (nl-NL): ';' between fields, CRLF, a byte-order mark, and empty rows as ';;;;'.
    text = VALID_CSV.replace(",", ";").replace("\n\n", "\n;;;;\n")
    path.write_bytes((bom + text).replace("\n", "\r\n").encode("utf-8"))
    assert load_observed(path).counts == load_observed(FIXTURES / "observed" / "valid.csv").counts


def test_a_decimal_comma_is_refused_with_a_clear_message(contract, tmp_path):
    path = write(tmp_path, "month;cohort;group;outcome;count\n12;0;treated;job_start;2,5\n"
                           "12;0;comparison;job_start;1\n", "comma.csv")
    assert problems(contract, path) == [f"{path}: line 2: count must be a number without a decimal comma or thousands "
                                        "separator, got '2,5'"]


def test_a_fractional_person_in_a_csv_is_refused(contract, tmp_path):
    path = write(tmp_path, "month,cohort,group,outcome,count\n12,0,treated,job_start,2.5\n"
                           "12,0,comparison,job_start,1\n", "half.csv")
    assert problems(contract, path) == [f"{path}: line 2: count must be a whole number, got 2.5"]


def test_a_row_with_more_fields_than_the_header_is_refused_not_half_read(contract, tmp_path):
    # "2,5" unquoted in a comma-separated file: read as 2 (and a stray 5) before.
    path = write(tmp_path, "month,cohort,group,outcome,count\n12,0,treated,job_start,2,5\n"
                           "12,0,comparison,job_start,1\n", "split.csv")
    assert problems(contract, path) == [f"{path}: line 2: must have 5 fields like the header (separated by ','), got 6"]


def test_a_row_with_fewer_fields_is_refused(contract, tmp_path):
    path = write(tmp_path, "month,cohort,group,outcome,count\n12,0,treated,job_start\n", "short.csv")
    assert problems(contract, path) == [f"{path}: line 2: must have 5 fields like the header (separated by ','), got 4"]


def test_an_observed_toml_with_a_byte_order_mark_is_read(contract, tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + measurement(12, 0, treated={"job_start": 1}, comparison=COMPARISON).encode())
    assert problems(contract, str(path)) == []


# --- settle: currency, never -0.00 --------------------------------------------------------------------
def test_settle_prints_the_scenarios_currency_for_every_amount(capsys):
    assert cli.main(["settle", str(PB), str(PB_PUBLISHED)]) == 0
    text = capsys.readouterr().out
    assert "Capital calls: GBP 5,000,000.00" in text and "Outcome payments (GBP):" in text
    assert "Investors (amounts in GBP):" in text and "EUR" not in text


def test_settle_never_prints_or_writes_negative_zero(tmp_path, capsys, monkeypatch):
    """Float residues (-1e-10, -0.0) are shown as 0.00, in the terminal and in the CSVs."""
    import dataclasses

    from sibsim import settlement

    real = settlement.settle

    def with_residues(contract, observed):
        result = real(contract, observed)
        schedule = result.schedule.copy()
        schedule["recycled"] = -1e-10
        schedule.iloc[0, schedule.columns.get_loc("retained_by_payer")] = -0.0
        schedule.iloc[0, schedule.columns.get_loc("defaulted_by_payer")] = -0.004
        investors = result.investors.copy()
        investors["irr"] = -0.0
        investors["multiple"] = -0.0
        return dataclasses.replace(result, schedule=schedule, investors=investors)

    monkeypatch.setattr(settlement, "settle", with_residues)
    out = tmp_path / "pb"
    assert cli.main(["settle", str(PB), str(PB_PUBLISHED), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "-0.00" not in text and "-0.0000%" not in text and "0.0000%" in text
    for name in ("schedule.csv", "investors.csv"):
        frame = pd.read_csv(out / name, index_col=0)
        values = frame.select_dtypes("number").to_numpy().ravel()
        assert not np.signbit(values[values == 0]).any(), name
        assert "-0.0" not in (out / name).read_text(), name


# --- item 11: sibsim update never writes a variant that does not load ------------------------------
def evidence_file(tmp_path, body: str, name: str = "evidence.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def relapse(events: int, at_risk) -> str:
    return f'[[evidence]]\nparameter = "relapse"\ngroup = "treated"\nevents = {events}\nat_risk = {at_risk}\n'


def update_cli(capsys, *args):
    code = cli.main(["update", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


@pytest.mark.parametrize("month", [-12, -1, 61, 500])
def test_update_month_outside_the_horizon_is_refused_with_the_range(tmp_path, capsys, month):
    out = tmp_path / "updated.toml"
    code, _, err = update_cli(capsys, CK, CK_EVIDENCE, "--out", out, "--paths", 20, "--month", month)
    assert code == 2 and err == [f"error: {CK}: --month: must be 0..60 (the months of the scenario), got {month}"]
    assert not out.exists()


def copy_of_ck(folder):
    """Colour Kitchen copied into ``folder``: an updated scenario is written next to its base."""
    base = folder / CK.name
    base.write_text(CK.read_text(encoding="utf-8"), encoding="utf-8")
    return base


@pytest.mark.parametrize("month", [0, 60])
def test_update_month_at_the_ends_of_the_horizon_is_accepted(tmp_path, capsys, month):
    out = tmp_path / "updated.toml"  # an updated scenario is written next to its base
    code, text, _ = update_cli(capsys, copy_of_ck(tmp_path), CK_EVIDENCE, "--out", out, "--paths", 20,
                               "--month", month)
    assert code == 0 and f"from month {month} on (prior)" in text and out.exists()


def test_at_risk_at_most_participants_times_months(colour_kitchen, tmp_path):
    from sibsim.calibration import check_evidence, load_evidence

    # 252 treated participants x 60 months = 15,120 participant-months.
    ok = evidence_file(tmp_path, relapse(9, 15_120), "ok.toml")
    assert check_evidence(colour_kitchen, load_evidence(ok), str(ok)) == []
    bad = evidence_file(tmp_path, relapse(9, 15_121), "bad.toml")
    assert check_evidence(colour_kitchen, load_evidence(bad), str(bad)) == [
        f"{bad}: evidence[0].at_risk: must be <= 15120 (252 treated participants x 60 months), got 15121"]
    # long_term_contract is drawn by a branch at 6 months in a job: at most 60 // 6 = 10 spells of 6 months each
    # (the journey's words: the loader no longer knows the spells are jobs).
    ltc = evidence_file(tmp_path, '[[evidence]]\nparameter = "long_term_contract"\ngroup = "comparison"\n'
                                  'events = 1\nat_risk = 2521\n', "ltc.toml")
    assert check_evidence(colour_kitchen, load_evidence(ltc), str(ltc)) == [
        f"{ltc}: evidence[0].at_risk: must be <= 2520 (252 comparison participants x 10 spells of 6 months in 60 "
        "months), got 2521"]


def test_pooled_evidence_beyond_the_bound_is_refused(colour_kitchen, tmp_path):
    from sibsim.calibration import check_evidence, load_evidence

    path = evidence_file(tmp_path, relapse(1, 8_000) + relapse(1, 7_121))
    assert check_evidence(colour_kitchen, load_evidence(path), str(path)) == [
        f"{path}: evidence: at_risk of every treated relapse entry together must be <= 15120 (252 treated "
        "participants x 60 months), got 15121"]


def test_update_with_implausible_at_risk_writes_nothing(tmp_path, capsys):
    evidence = evidence_file(tmp_path, relapse(9, 10_000_000_000))
    out = tmp_path / "updated.toml"
    code, _, err = update_cli(capsys, CK, evidence, "--out", out, "--paths", 20)
    assert code == 2 and len(err) == 1 and f"{evidence}: evidence[0].at_risk: must be <= " in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evidence.toml"]


def test_update_of_a_scenario_whose_title_has_a_line_break(tmp_path, capsys):
    base = tmp_path / "base.toml"
    base.write_text(CK.read_text(encoding="utf-8").replace('title = "The Colour Kitchen SIB',
                                                           'title = """The Colour\nKitchen SIB', 1)
                    .replace('(2015-2019)"', '(2015-2019)"""', 1), encoding="utf-8")
    assert "\n" in load_scenario(base).title
    out = tmp_path / "updated.toml"
    # The shipped evidence names the shipped scenario; this edited copy is another file: say so.
    evidence = tmp_path / "evidence.toml"
    evidence.write_text(CK_EVIDENCE.read_text(encoding="utf-8").replace(
        'scenario = "../utrecht_colour_kitchen.toml"', 'scenario = "base.toml"'), encoding="utf-8")
    code, _, err = update_cli(capsys, base, evidence, "--out", out, "--paths", 20)
    assert code == 0, err
    assert load_scenario(out).title == load_scenario(base).title + ": updated with evidence.toml"


def test_update_of_a_base_in_a_directory_with_a_quote(tmp_path, capsys):
    folder = tmp_path / 'the "final" deal'
    folder.mkdir()
    base = folder / "base.toml"
    base.write_text(CK.read_text(encoding="utf-8"), encoding="utf-8")
    out = folder / "updated.toml"  # next to its base, which it names by its bare file name
    code, _, err = update_cli(capsys, base, CK_EVIDENCE, "--out", out, "--paths", 20)
    assert code == 0, err
    assert load_scenario(out).journey != load_scenario(base).journey


def test_a_variant_that_would_not_load_is_never_written(tmp_path, capsys, monkeypatch):
    from sibsim import calibration

    real = calibration.variant_toml
    monkeypatch.setattr(calibration, "variant_toml",
                        lambda *a: real(*a).replace("relapse = { alpha = ", "relapse = { alpha = -", 1))
    base = copy_of_ck(tmp_path)
    out = tmp_path / "updated.toml"
    code, _, err = update_cli(capsys, base, CK_EVIDENCE, "--out", out, "--paths", 20)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {CK_EVIDENCE}: evidence: the posterior does not make a valid scenario, "
                             f"nothing written ({out}: journey.parameters.relapse")  # [journey.parameters] now
    assert not out.exists() and list(tmp_path.iterdir()) == [base]
    # Nor does it replace an updated scenario written before, even with --force.
    assert update_cli(capsys, base, CK_EVIDENCE, "--out", out, "--paths", 20, "--force")[0] == 2
    monkeypatch.setattr(calibration, "variant_toml", real)
    assert update_cli(capsys, base, CK_EVIDENCE, "--out", out, "--paths", 20)[0] == 0
    good = out.read_bytes()
    monkeypatch.setattr(calibration, "variant_toml",
                        lambda *a: real(*a).replace("relapse = { alpha = ", "relapse = { alpha = -", 1))
    code, _, _ = update_cli(capsys, base, CK_EVIDENCE, "--out", out, "--paths", 20, "--force")
    assert code == 2 and out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([base.name, "updated.toml"])


@pytest.mark.parametrize("body, expected", [
    (relapse(1, "1" + "0" * 400), "evidence[0].at_risk: must be <= 600000000 (1,000,000 participants x 600 months), "
                                  "got an integer of more than 308 digits"),
    (relapse(1, "[" * 5_000 + "]" * 5_000), "not valid TOML: arrays or inline tables nested too deeply"),
    (relapse(1, 2.5), "evidence[0].at_risk: must be an integer >= 0, got 2.5"),
    ('[[evidence]]\nparameter = "relapse"\nevents = 1\n', "evidence[0].at_risk: missing required field"),
    (relapse(1, 2) + "[zz]\n[aa]\n", "zz: unknown key (allowed: evidence, meta)"),
], ids=["400_digits", "deep_nesting", "fraction", "missing_at_risk", "unknown_keys_all_listed"])
def test_bad_evidence_is_one_line_never_a_traceback(tmp_path, capsys, body, expected):
    evidence = evidence_file(tmp_path, body)
    out = tmp_path / "updated.toml"
    code, _, err = update_cli(capsys, CK, evidence, "--out", out, "--paths", 20)
    assert code == 2 and f"error: {evidence}: {expected}" in err, err
    assert not out.exists()


def test_evidence_with_a_byte_order_mark_is_read(tmp_path):
    from sibsim.calibration import load_evidence

    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + relapse(9, 260).encode())
    assert [(e.parameter, e.events, e.at_risk) for e in load_evidence(path)] == [("relapse", 9, 260)]


# --- sibsim validate recognises observed and evidence files ---------------------------------------------
def validate(capsys, *args):
    code = cli.main(["validate", *map(str, args)])
    return code, capsys.readouterr().out.strip().splitlines()


def test_validate_checks_the_shipped_observed_and_evidence_files_against_their_scenarios(capsys):
    files = [PB_PUBLISHED, CK_EXAMPLE, CK_EVIDENCE]
    code, lines = validate(capsys, *files)
    assert code == 0 and len(lines) == 3, lines  # one line each, not 11 unrelated scenario errors
    assert lines[0].startswith(f"{PB_PUBLISHED}: ok: observed outcomes for Peterborough")
    assert lines[1].startswith(f"{CK_EXAMPLE}: ok: observed outcomes for The Colour Kitchen")
    assert lines[2].startswith(f"{CK_EVIDENCE}: ok: evidence for The Colour Kitchen")


def test_validate_without_a_scenario_explains_in_one_line(capsys):
    path = FIXTURES / "observed" / "valid.toml"
    code, lines = validate(capsys, path)
    assert code == 1 and lines == [
        f"{path}: observed outcomes: need the scenario to check against: run sibsim validate --scenario SCENARIO "
        f"{path}, or put scenario = \"SCENARIO.toml\" (relative to the file) in its [meta]"]


def test_validate_with_the_scenario_option_lists_every_problem(capsys):
    old = FIXTURES / "observed" / "broken_colour_kitchen" / "pooled_into_cohort_0.toml"
    code, lines = validate(capsys, "--scenario", CK, old, FIXTURES / "observed" / "valid.csv")
    assert code == 1
    assert f"{old}: measurement[1].treated.diploma: must be <= cohort 0's size (21), got 110" in lines
    assert len([line for line in lines if line.startswith(f"{old}: ")]) == 6
    # The option applies to every file: valid.csv (read as CSV, not as TOML) fits Colour Kitchen too.
    assert lines[-1].startswith(f"{FIXTURES / 'observed' / 'valid.csv'}: ok: observed outcomes for The Colour Kitchen")


def test_validate_tells_files_apart_by_content_not_name(tmp_path, capsys):
    disguised = tmp_path / "scenario.toml"
    disguised.write_text(measurement(12, 0, treated={"job_start": 11}, comparison=COMPARISON), encoding="utf-8")
    code, lines = validate(capsys, "--scenario", VALID_SCENARIO, disguised)
    assert code == 1 and lines == [f"{disguised}: measurement[0].treated.job_start: must be <= cohort 0's size (10), "
                                   "got 11"]
    evidence = tmp_path / "counts.toml"
    evidence.write_text(relapse(9, 15_121), encoding="utf-8")
    code, lines = validate(capsys, "--scenario", CK, evidence)
    assert code == 1 and lines == [f"{evidence}: evidence[0].at_risk: must be <= 15120 (252 treated participants x "
                                   "60 months), got 15121"]


def test_validate_a_declared_scenario_that_is_missing(tmp_path, capsys):
    path = tmp_path / "counts.toml"
    path.write_text('[meta]\nscenario = "nowhere.toml"\n\n' + measurement(12, 0, treated={"job_start": 1},
                                                                            comparison=COMPARISON), encoding="utf-8")
    code, lines = validate(capsys, path)
    assert code == 1 and lines == [f"{path}: meta.scenario: must name a readable scenario file, got "
                                   f"{tmp_path / 'nowhere.toml'} (file not found)"]


def test_validate_prints_a_scenarios_own_currency(capsys):
    code, lines = validate(capsys, PB)
    assert code == 0 and "GBP 5,000,000 committed" in lines[0] and "EUR" not in lines[0]


# --- siblings -------------------------------------------------------------------------------------------
def test_counts_built_in_code_must_be_whole_finite_and_not_negative(contract):
    observed = Observed({("treated", 0, "job_start"): {12: 2.5}, ("treated", 1, "diploma"): {12: -1.0},
                         ("comparison", 0, "job_start"): {12: float("nan")}}, "code")
    assert observed_module.check_observed(contract, observed) == [
        "code: cohort 0.treated.job_start: count must be a whole number of participants, got 2.5",
        "code: cohort 1.treated.diploma: count must be a finite number >= 0, got -1.0",
        "code: cohort 0.comparison.job_start: count must be a finite number >= 0, got nan",
    ]
    with pytest.raises(ScenarioError):
        settle(contract, observed)


def test_a_csv_column_given_twice_is_refused(contract, tmp_path):
    path = write(tmp_path, "month,cohort,group,outcome,count,count\n12,0,treated,job_start,2,3\n", "twice.csv")
    assert problems(contract, path) == [f"{path}: header: columns given more than once: count"]


def test_meta_that_is_not_a_table_is_refused(contract, tmp_path):
    from sibsim.calibration import load_evidence

    path = write(tmp_path, "meta = 3\n" + measurement(12, 0, treated={"job_start": 1}, comparison=COMPARISON))
    assert problems(contract, path) == [f"{path}: meta: must be a table, got 3"]
    evidence = evidence_file(tmp_path, "meta = 3\n" + relapse(1, 2))
    with pytest.raises(ScenarioError) as info:
        load_evidence(evidence)
    assert info.value.problems == [f"{evidence}: meta: must be a table, got 3"]


def test_update_never_replaces_its_own_base_scenario(tmp_path, capsys):
    base = tmp_path / "base.toml"
    base.write_text(CK.read_text(encoding="utf-8"), encoding="utf-8")
    before = base.read_bytes()
    code, _, err = update_cli(capsys, base, CK_EVIDENCE, "--out", base, "--paths", 20, "--force")
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {base}: is an input of 'sibsim update'"), err
    assert base.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["base.toml"]


def test_update_of_a_variant_whose_output_would_become_its_base_writes_nothing(tmp_path, capsys):
    """guarantee.toml extends base.toml; writing its update over base.toml would form a cycle."""
    base = tmp_path / "base.toml"
    base.write_text(CK.read_text(encoding="utf-8"), encoding="utf-8")
    variant = tmp_path / "variant.toml"
    variant.write_text('extends = "base.toml"\n[meta]\ntitle = "variant"\n', encoding="utf-8")
    before = base.read_bytes()
    code, _, err = update_cli(capsys, variant, CK_EVIDENCE, "--out", base, "--paths", 20, "--force")
    # base.toml is read by the update (the variant extends it): never written over, --force or not.
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {base}: is an input of 'sibsim update'"), err
    assert base.read_bytes() == before


def test_large_counts_are_shown_as_written_not_rounded(contract, tmp_path):
    path = write(tmp_path, measurement(12, 0, treated={"job_start": 1_234_567}, comparison={"job_start": 1}))
    assert problems(contract, path) == [f"{path}: measurement[0].treated.job_start: must be <= cohort 0's size "
                                        "(10), got 1234567"]  # not 1.23457e+06


# --- sibling: a count given for one group only is not read as 0 (or stale) for the other ----------------
def test_a_treated_count_without_the_comparison_count_at_that_measurement_is_refused(contract, tmp_path):
    text = (measurement(12, 0, treated={"job_start": 2}, comparison={"job_start": 1})
            + measurement(24, 0, pair=None, treated={"job_start": 5}))
    path = write(tmp_path, text)
    # Read as 1 (month 12's), the comparison's job starts of the year to month 24 would be paid as net.
    assert problems(contract, path) == [
        f"{path}: measurement[1].treated.job_start: needs a comparison job_start count of cohort 0 at month 24 too "
        "(give 0 if there was none): without it the comparison count is read as 1, counted at month 12"]
    written = write(tmp_path, text + measurement(24, 0, pair=None, comparison={"job_start": 1}), "ok.toml")
    assert problems(contract, written) == []  # unchanged, but said so


@pytest.mark.parametrize("outcome", PERSON_MONTHS)
def test_person_months_without_the_comparisons_are_refused(contract, tmp_path, outcome):
    path = write(tmp_path, measurement(12, 0, pair=None, treated={"job_start": 1, outcome: 9},
                                       comparison={"job_start": 1}))
    assert problems(contract, path) == [
        f"{path}: measurement[0].treated.{outcome}: needs a comparison {outcome} count of cohort 0 at "
        "month 12 too (give 0 if there was none): without it the comparison count is read as 0: none counted"]
    zero = write(tmp_path, measurement(12, 0, pair=None, treated={"job_start": 1, outcome: 9},
                                       comparison={"job_start": 1, outcome: 0}), "zero.toml")
    assert problems(contract, zero) == []


def test_a_comparison_count_without_the_treated_count_is_refused(contract, tmp_path):
    path = write(tmp_path, measurement(12, 0, pair=None, treated={"diploma": 1}, comparison={"job_start": 1}))
    assert problems(contract, path) == [
        f"{path}: measurement[0].comparison.job_start: needs a treated job_start count of cohort 0 at month 12 too "
        "(give 0 if there was none): without it the treated count is read as 0: none counted"]


def test_an_outcome_the_comparison_journey_cannot_reach_needs_no_count(contract, tmp_path):
    """valid_minimal's comparison group has no training: a diploma count for it is 0 by the model."""
    path = write(tmp_path, measurement(12, 0, pair=None, treated={"diploma": 3, "job_start": 1},
                                       comparison={"job_start": 1}))
    assert problems(contract, path) == []


def test_a_modelled_counterfactual_needs_no_counts(tmp_path):
    contract = contract_with(comparison={"method": "expected"})
    path = write(tmp_path, measurement(12, 0, pair=None, treated={"job_start": 4, "months_in_work": 12,
                                                                  "bijstand": 100}))
    assert problems(contract, path) == []


def test_update_in_python_checks_evidence_built_in_code(colour_kitchen):
    from sibsim.calibration import Evidence, update

    with pytest.raises(ScenarioError) as info:
        update(colour_kitchen, [Evidence("relapse", "treated", 9, 10**400), Evidence("relapse", "treated", 5, 2),
                                Evidence("jobs", "treated", 1, 2)])
    assert info.value.problems == [
        "<evidence>: evidence[0].at_risk: must be <= 15120 (252 treated participants x 60 months), got an integer of "
        "more than 308 digits",
        "<evidence>: evidence[1].events: must be <= at_risk (2), got 5",
        # Parameters are named by the journey: the list is the scenario's (tests/test_analysis.py words it too).
        "<evidence>: evidence[2].parameter: must be one of the journey's parameters (diploma, dropout, job_with_diploma, "
        "job_without_diploma, relapse, relapse_long_term, long_term_contract), got 'jobs'",
    ]


def test_settle_prints_an_undefined_irr_as_n_a(capsys):
    assert cli.main(["settle", str(CK), str(CK_EXAMPLE)]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and "n/a  no_root_in_range" in text


def test_settle_refuses_counts_that_name_another_scenario(tmp_path, capsys):
    # Colour Kitchen's counts declaring Peterborough: never settled under Colour Kitchen's terms by mistake.
    example = ROOT / "scenarios" / "observed" / "utrecht_colour_kitchen_example.toml"
    text = example.read_text(encoding="utf-8")
    assert 'scenario = "../utrecht_colour_kitchen.toml"' in text
    (tmp_path / "observed").mkdir()
    for name in ("utrecht_colour_kitchen.toml", "utrecht_colour_kitchen_guarantee.toml", "peterborough.toml"):
        (tmp_path / name).write_text((ROOT / "scenarios" / name).read_text(encoding="utf-8"), encoding="utf-8")
    wrong = tmp_path / "observed" / "ck.toml"
    wrong.write_text(text.replace('scenario = "../utrecht_colour_kitchen.toml"', 'scenario = "../peterborough.toml"'),
                     encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["settle", str(tmp_path / "utrecht_colour_kitchen.toml"), str(wrong)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "meta.scenario: names" in err[0] and "peterborough.toml, another deal" in err[0], err
    # The scenario it names, and a variant that extends it, are fine.
    right = tmp_path / "observed" / "right.toml"
    right.write_text(text, encoding="utf-8")
    assert cli.main(["settle", str(tmp_path / "utrecht_colour_kitchen.toml"), str(right)]) == 0
    assert cli.main(["settle", str(tmp_path / "utrecht_colour_kitchen_guarantee.toml"), str(right)]) == 0
