"""Observed outcomes (:mod:`sibsim.observed`): the TOML and CSV forms, where counts land, one-line errors.

The contract is ``tests/fixtures/valid_minimal_jobs.toml`` (``valid_minimal.toml`` with job starts,
long-term contracts, months in work and the cost item ``bijstand``): two cohorts of 10 (intake months 0
and 6), a comparison group of the same size, a 30-month horizon.  ``tests/fixtures/observed/`` holds valid
counts; ``tests/fixtures/observed/broken/`` one file per problem, each listed in ``BROKEN_EXPECTED``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sibsim.errors import ScenarioError
from sibsim.observed import Observed, load_observed, outcomes_from_observed
from sibsim.scenario import _read_document, contract_from_dict, load_scenario

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VALID_SCENARIO = FIXTURES / "valid_minimal_jobs.toml"
OBSERVED = FIXTURES / "observed"
BROKEN = OBSERVED / "broken"

CONTRACT = load_scenario(VALID_SCENARIO)
#: Every count an observed file can name: the outcomes, then the cost items (Contract.measures).
MEASURABLE = tuple(m.name for m in CONTRACT.measures)
JOB_START, DIPLOMA, SUSTAINED = (CONTRACT.outcome_index(o) for o in ("job_start", "diploma", "job_sustained"))
BIJSTAND = [c.name for c in CONTRACT.costs].index("bijstand")

#: The counts of observed/valid.toml (and valid.csv): {(group, cohort, measurable): {month: count}}.
VALID_COUNTS = {
    ("treated", 0, "diploma"): {12: 2.0, 24: 2.0},
    ("treated", 0, "job_start"): {12: 4.0, 24: 6.0},
    ("treated", 0, "job_sustained"): {24: 3.0},
    ("treated", 0, "bijstand"): {12: 12.0, 24: 36.0},
    ("comparison", 0, "job_start"): {12: 2.0, 24: 3.0},
    ("comparison", 0, "job_sustained"): {24: 1.0},
    ("comparison", 0, "bijstand"): {12: 6.0, 24: 10.0},
    ("treated", 1, "job_start"): {24: 2.0},
    ("treated", 1, "bijstand"): {24: 9.0},
    ("comparison", 1, "job_start"): {24: 1.0},
    ("comparison", 1, "bijstand"): {24: 4.0},
}


def _contract(**comparison):
    doc = _read_document(VALID_SCENARIO)  # merged over its base
    doc["comparison"].update(comparison)
    return contract_from_dict(doc, "scenario.toml")


@pytest.fixture(scope="module")
def contract():
    return CONTRACT


@pytest.fixture(scope="module")
def outcomes(contract):
    return outcomes_from_observed(contract, load_observed(OBSERVED / "valid.toml"))


def counted_before(outcomes, month):
    """Treated and counterfactual counts of every measurable (:data:`MEASURABLE` order) achieved before
    ``month``: (cohorts, measurables) each, as the evaluator counts them (counterfactual = comparison
    scaled to the treated size)."""
    def count(events, costs):
        return np.concatenate([events[0, :, :, :month].sum(axis=-1), costs[0, :, :, :month].sum(axis=-1)], axis=1)

    return (count(outcomes.treated.events, outcomes.treated.costs),
            count(outcomes.counterfactual_events(), outcomes.counterfactual_costs()))


def assert_same_outcomes(a, b):
    for group in ("treated", "comparison"):
        x, y = getattr(a, group), getattr(b, group)
        np.testing.assert_array_equal(x.events, y.events, err_msg=group)
        np.testing.assert_array_equal(x.costs, y.costs, err_msg=group)
        np.testing.assert_array_equal(x.sizes, y.sizes, err_msg=group)


# --- valid counts ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["valid.toml", "valid.csv", "valid_bom.csv"])
def test_counts_are_read(name):
    observed = load_observed(OBSERVED / name)
    assert observed.counts == VALID_COUNTS
    assert observed.source == str(OBSERVED / name)


@pytest.mark.parametrize("name", ["valid.csv", "valid_bom.csv"])  # valid_bom.csv: byte-order mark, CRLF
def test_toml_and_csv_forms_give_the_same_outcomes(contract, outcomes, name):
    assert_same_outcomes(outcomes_from_observed(contract, load_observed(OBSERVED / name)), outcomes)


def test_outcomes_have_one_path_and_the_contract_shape(contract, outcomes):
    T, C = contract.horizon_months, len(contract.cohorts)
    assert T == 30 and C == 2
    assert outcomes.n_paths == 1
    assert outcomes.treated.events.shape == outcomes.comparison.events.shape == (1, C, len(contract.outcomes), T)
    assert outcomes.treated.costs.shape == outcomes.comparison.costs.shape == (1, C, len(contract.costs), T)
    np.testing.assert_array_equal(outcomes.treated.sizes, [10, 10])
    np.testing.assert_array_equal(outcomes.comparison.sizes, contract.comparison_sizes)


def test_cumulative_counts_are_placed_at_month_minus_one(outcomes):
    """A count at month m covers events before m: its increase over the previous count lands in month m - 1."""
    expected = np.zeros_like(outcomes.treated.events)
    expected[0, 0, DIPLOMA, 11] = 2
    expected[0, 0, JOB_START, 11] = 4
    expected[0, 0, JOB_START, 23] = 6 - 4
    expected[0, 0, SUSTAINED, 23] = 3
    expected[0, 1, JOB_START, 23] = 2
    np.testing.assert_array_equal(outcomes.treated.events, expected)
    expected = np.zeros_like(outcomes.comparison.events)
    expected[0, 0, JOB_START, 11] = 2
    expected[0, 0, JOB_START, 23] = 3 - 2
    expected[0, 0, SUSTAINED, 23] = 1
    expected[0, 1, JOB_START, 23] = 1
    np.testing.assert_array_equal(outcomes.comparison.events, expected)


def test_cost_item_months_are_spread_evenly_since_the_previous_month_read_or_the_intake(outcomes):
    """Person-months (a cost item's, as an occupancy outcome's) are spread over the months they cover."""
    treated, comparison = outcomes.treated.costs[0, :, BIJSTAND], outcomes.comparison.costs[0, :, BIJSTAND]
    # Cohort 0 (intake 0): 12 months on bijstand before month 12, 36 - 12 = 24 more before month 24.
    np.testing.assert_allclose(treated[0], [1.0] * 12 + [2.0] * 12 + [0.0] * 6)
    np.testing.assert_allclose(comparison[0], [0.5] * 12 + [4 / 12] * 12 + [0.0] * 6)
    # Cohort 1 (intake 6): 9 months counted at month 24 and none at month 12, which the contract also
    # reads: unchanged at month 12 (nothing counted there), so spread over months 12..23, not 6..23.
    np.testing.assert_allclose(treated[1], [0.0] * 12 + [0.75] * 12 + [0.0] * 6)
    np.testing.assert_allclose(comparison[1], [0.0] * 12 + [4 / 12] * 12 + [0.0] * 6)


def test_counting_the_outcomes_again_gives_back_the_observed_counts(outcomes):
    for (group, cohort, measurable), series in VALID_COUNTS.items():
        for month, count in series.items():
            counts = counted_before(outcomes, month)[0 if group == "treated" else 1]
            assert counts[cohort, MEASURABLE.index(measurable)] == pytest.approx(count), (group, cohort, measurable, month)
    # Outcomes not counted are zero throughout, e.g. comparison long-term contracts of cohort 1.
    assert counted_before(outcomes, 30)[1][1, MEASURABLE.index("long_term_contract")] == 0


def test_comparison_counts_are_scaled_counterfactual_counts_are_not():
    """With a comparison group twice the cohorts' size, raw comparison counts are halved; counterfactual
    counts are already at the treated size."""
    contract = _contract(size_ratio=2.0)
    k = MEASURABLE.index("job_start")
    from_comparison = outcomes_from_observed(contract, load_observed(OBSERVED / "valid.toml"))
    from_counterfactual = outcomes_from_observed(contract, load_observed(OBSERVED / "counterfactual.toml"))
    np.testing.assert_array_equal(from_comparison.comparison.sizes, [20, 20])
    np.testing.assert_array_equal(from_counterfactual.comparison.sizes, [10, 10])
    assert counted_before(from_comparison, 24)[1][0, k] == pytest.approx(3 / 2)
    assert counted_before(from_counterfactual, 24)[1][0, k] == pytest.approx(3)


def test_expected_method_models_missing_counterfactual_counts(contract):
    observed = load_observed(OBSERVED / "treated_only.toml")
    modelled = _contract(method="expected")
    outcomes = outcomes_from_observed(modelled, observed)
    np.testing.assert_array_equal(outcomes.comparison.sizes, outcomes.treated.sizes)
    assert outcomes.comparison.events[0, :, JOB_START].sum() > 0  # job_without_diploma = 0.01 a month
    assert outcomes.treated.events[0, 0, JOB_START, 11] == 4
    # The same counts with a comparison group to measure against: an error, not zeros.
    with pytest.raises(ScenarioError) as info:
        outcomes_from_observed(contract, observed)
    assert info.value.problems == [
        f"{OBSERVED / 'treated_only.toml'}: measurement: no comparison or counterfactual counts: "
        "the payments depend on treated minus counterfactual"]


def test_counts_built_in_code_are_checked_too(contract):
    observed = Observed({("treated", 5, "job_start"): {12: 1.0}, ("treated", 0, "job_start"): {12: 3.0, 24: 2.0},
                         ("comparison", 0, "job_start"): {12: 1.0, 24: 1.0}}, "in-memory")
    with pytest.raises(ScenarioError) as info:
        outcomes_from_observed(contract, observed)
    assert info.value.problems == [
        "in-memory: cohort 5.treated.job_start: cohort must be 0..1, got 5",
        "in-memory: cohort 0.treated.job_start: cumulative counts must not fall, got 3 at month 12, then 2 at month 24",
    ]


# --- errors: one line each, naming the file and the field --------------------------------------
#: file in observed/broken/ -> (field, rule): the one problem line must be exactly `file: field: rule`
#: (or a list of them: every line, in order).
BROKEN_EXPECTED = {
    "unknown_key.toml": ("measurement[0].treatment",
                         "unknown key (allowed: month, cohort, treated, comparison, counterfactual)"),
    "unknown_top_level_key.toml": ("settings", "unknown key (allowed: measurement, meta)"),
    # Outcome names come from the scenario: checked against it (outcomes, then cost items).
    "unknown_outcome.toml": ("measurement[0].treated.housing", "outcome must be one of the scenario's outcomes or "
                             "cost items (diploma, job_sustained, job_start, long_term_contract, months_in_work, "
                             "bijstand), got 'housing'"),
    "unknown_group.csv": ("line 3", "group must be one of treated, comparison, counterfactual, got 'control'"),
    "negative_count.toml": ("measurement[0].treated.job_start", "count must be a finite number >= 0, got -3"),
    "nan_count.toml": ("measurement[0].treated.job_start", "count must be a finite number >= 0, got nan"),
    "nan_count.csv": ("line 2", "count must be a finite number >= 0, got nan"),
    "count_not_a_number.csv": ("line 2", "count must be a number, got 'four'"),
    "non_integer_month.toml": ("measurement[0].month", "must be an integer, got 12.5"),
    "non_integer_month.csv": ("line 3", "month must be an integer, got '12.5'"),
    "missing_month.toml": ("measurement[0].month", "missing required field"),
    "cohort_out_of_range.toml": ("measurement[1].cohort", "must be 0..1, got 2"),
    "cohort_out_of_range.csv": ("line 4", "cohort must be 0..1, got -1"),  # line 3 is blank
    "month_out_of_range.toml": ("measurement[1].month", "must be 1..30, got 31"),
    "month_out_of_range.csv": ("line 2", "month must be 1..30, got 0"),
    "counts_falling.toml": ("measurement[1].treated.job_start",
                            "cumulative counts must not fall, got 4 at month 12, then 3 at month 24"),
    "duplicate_count.toml": ("measurement[1].treated.job_start", "count must be given once per cohort and month, "
                             "got a second treated job_start count for cohort 0 at month 12 "
                             "(first: measurement[0].treated.job_start)"),
    # Month 6 is also a month the contract does not read: both problems, listed at once.
    "count_before_intake.toml": [("measurement[1].month", "must be a month the contract counts cohort 1 at "
                                                          "(measurement months 12, 24), got 6"),
                                 ("measurement[1].treated.job_start",
                                  "count must be 0 up to cohort 1's intake (month 6), got 1 at month 6")],
    "comparison_and_counterfactual.toml": ("measurement", "give comparison or counterfactual counts, not both"),
    "missing_columns.csv": ("header", "missing columns: outcome"),
    # Checked against the scenario (see also tests/test_trust_observed.py).
    "above_cohort_size.toml": ("measurement[0].treated.diploma", "must be <= cohort 0's size (10), got 11"),
    # Read before the scenario is known, the count's unit is not named (see tests/test_trust_observed.py).
    "fractional_person.toml": ("measurement[0].treated.job_start", "count must be a whole number, got 2.5"),
    "sustained_without_job_start.toml": ("measurement[0].treated.job_sustained", "must be <= the job_start count of "
                                         "the same group, cohort and month (0: none counted), got 3"),
    "month_not_measured.toml": ("measurement[1].month", "must be a month the contract counts cohort 0 at "
                                "(measurement months 12, 24), got 18"),
    "bijstand_beyond_elapsed.toml": ("measurement[0].treated.bijstand", "must be <= cohort 1's size x "
                                     "months since its intake (10 x 6 = 60), got 61"),
    "decimal_comma.csv": ("line 2", "count must be a number without a decimal comma or thousands separator, "
                          "got '2,5'"),
    "decimal_comma_split.csv": ("line 2", "must have 5 fields like the header (separated by ','), got 6"),
    "comparison_count_missing.toml": ("measurement[1].treated.job_start", "needs a comparison job_start count of "
                                      "cohort 0 at month 24 too (give 0 if there was none): without it the comparison "
                                      "count is read as 2, counted at month 12"),
}


def problems_of(contract, path) -> list[str]:
    """The problems of loading ``path`` and turning it into Outcomes; fail on any other outcome."""
    try:
        outcomes_from_observed(contract, load_observed(path))
    except ScenarioError as exc:
        assert exc.problems and str(exc) == "\n".join(exc.problems)
        for line in exc.problems:
            assert "\n" not in line and "\r" not in line, f"not a single line: {line!r}"
            assert line.startswith(f"{path}: "), line
        return exc.problems
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{path}: raw {type(exc).__name__} instead of ScenarioError: {exc}")
    pytest.fail(f"{path}: accepted")


def test_every_broken_file_is_expected():
    assert sorted(p.name for p in BROKEN.iterdir()) == sorted(BROKEN_EXPECTED)


@pytest.mark.parametrize("name", sorted(BROKEN_EXPECTED))
def test_broken_observed_file_reports_its_one_problem(contract, name):
    expected = BROKEN_EXPECTED[name]
    path = str(BROKEN / name)
    assert problems_of(contract, path) == [f"{path}: {field}: {rule}"
                                           for field, rule in (expected if isinstance(expected, list) else [expected])]


def test_neither_comparison_nor_counterfactual_with_a_comparison_group(contract):
    path = str(OBSERVED / "treated_only.toml")
    assert problems_of(contract, path) == [
        f"{path}: measurement: no comparison or counterfactual counts: the payments depend on treated minus "
        "counterfactual"]


def test_file_path_is_reported_as_given(contract, monkeypatch):
    monkeypatch.chdir(OBSERVED)
    assert problems_of(contract, "broken/negative_count.toml") == [
        "broken/negative_count.toml: measurement[0].treated.job_start: count must be a finite number >= 0, got -3"]


def test_missing_file(contract, tmp_path):
    path = str(tmp_path / "no_such_counts.csv")
    assert problems_of(contract, path) == [f"{path}: file not found"]


def test_a_directory_is_not_an_observed_file(contract, tmp_path):
    (line,) = problems_of(contract, str(tmp_path))
    assert line.startswith(f"{tmp_path}: cannot read file (")


def test_several_problems_are_all_reported_once_each(contract, tmp_path):
    path = tmp_path / "several.toml"
    path.write_text("[[measurement]]\nmonth = 40\ncohort = 0\ntreated = { job_start = 4, diploma = 2 }\n"
                    "comparison = { job_start = 2 }\n\n"
                    "[[measurement]]\nmonth = 12\ncohort = 3\ntreated = { job_start = 1 }\n", encoding="utf-8")
    # month 40 is wrong for three counts and cohort 3 for one: one line for each measurement.
    assert sorted(problems_of(contract, str(path))) == sorted([
        f"{path}: measurement[0].month: must be 1..30, got 40",
        f"{path}: measurement[1].cohort: must be 0..1, got 3",
    ])


def test_a_zero_count_before_the_intake_does_not_spread_person_months_before_it(tmp_path):
    doc = _read_document(VALID_SCENARIO)
    doc["cohorts"][1]["intake_month"] = 18  # starts after the month-12 measurement
    contract = contract_from_dict(doc, "scenario.toml")
    path = tmp_path / "early_zero.toml"
    path.write_text("[[measurement]]\nmonth = 12\ncohort = 1\ntreated = { bijstand = 0 }\n"
                    "counterfactual = { bijstand = 0 }\n\n"
                    "[[measurement]]\nmonth = 24\ncohort = 1\ntreated = { bijstand = 9 }\n"
                    "counterfactual = { bijstand = 0 }\n", encoding="utf-8")
    outcomes = outcomes_from_observed(contract, load_observed(path))
    # Cohort 1 starts in month 18: its 9 months on bijstand are spread over months 18..23, not 12..23.
    np.testing.assert_allclose(outcomes.treated.costs[0, 1, BIJSTAND], [0.0] * 18 + [1.5] * 6 + [0.0] * 6)
