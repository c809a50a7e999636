"""Every error message of the scenario loader, against a corpus of broken files.

``tests/fixtures/broken/`` holds copies of ``tests/fixtures/valid_minimal.toml``
with ONE thing broken each; ``EXPECTED.toml`` there names, for each file, the
field path and a fragment of the rule it must report.  The loader must raise
:class:`ScenarioError` (never another exception) with one single-line problem
``file: field: rule`` per broken rule (``file: rule`` for whole-file problems:
unreadable, not UTF-8, not TOML, empty).
"""

from __future__ import annotations

import copy
import datetime
import re
import tomllib
from pathlib import Path

import pytest

from sibsim.contracts import Contract
from sibsim.errors import ScenarioError
from sibsim.scenario import contract_from_dict, load_scenario

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VALID = FIXTURES / "valid_minimal.toml"
BROKEN = FIXTURES / "broken"
EXPECTED = tomllib.loads((BROKEN / "EXPECTED.toml").read_text(encoding="utf-8"))
CORPUS = sorted(p.name for p in BROKEN.iterdir() if p.name != "EXPECTED.toml")

#: A field path: dotted keys (bare, or quoted as TOML would), with [i] indices.
FIELD = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")(?:\[\d+\])*(?:\.(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")(?:\[\d+\])*)*'


def problems_of(path) -> list[str]:
    """The problems ``load_scenario`` reports; fail on any other outcome."""
    try:
        load_scenario(path)
    except ScenarioError as exc:
        assert exc.problems, "ScenarioError without problems"
        assert str(exc) == "\n".join(exc.problems)
        return exc.problems
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{path}: raw {type(exc).__name__} instead of ScenarioError: {exc}")
    pytest.fail(f"{path}: loaded without any error")


def assert_line_form(line: str, file: str) -> None:
    assert "\n" not in line and "\r" not in line, f"not a single line: {line!r}"
    assert line.startswith(f"{file}: "), f"does not start with the file as given: {line!r}"
    rest = line[len(file) + 2:]
    assert re.fullmatch(rf"{FIELD}: \S.*", rest), f"not `file: field: rule`: {line!r}"


# --- the corpus -------------------------------------------------------------------
def test_corpus_is_complete_and_every_file_is_expected():
    assert len(CORPUS) >= 30
    assert set(CORPUS) == set(EXPECTED), (
        f"not in EXPECTED.toml: {sorted(set(CORPUS) - set(EXPECTED))}; "
        f"listed but missing: {sorted(set(EXPECTED) - set(CORPUS))}"
    )
    assert all(name.endswith(".toml") for name in CORPUS)
    for name, entry in EXPECTED.items():
        assert set(entry) == {"field", "rule"}, name
        assert isinstance(entry["field"], str) and isinstance(entry["rule"], str) and entry["rule"], name


def test_valid_base_loads():
    contract = load_scenario(VALID)
    assert isinstance(contract, Contract)
    assert contract.term_months == 24
    assert [i.name for i in contract.investors] == ["Alpha Fund", "Beta Foundation"]
    assert len(contract.cohorts) == 2
    assert contract.capital_calls().sum() == pytest.approx(62_000)
    assert contract.total_commitment == 70_000


@pytest.mark.parametrize("name", CORPUS)
def test_broken_file_reports_its_one_problem(name):
    path = str(BROKEN / name)
    expected = EXPECTED[name]
    problems = problems_of(path)
    for line in problems:
        assert "\n" not in line and "\r" not in line, f"not a single line: {line!r}"
        assert line.startswith(f"{path}: "), line
    prefix = f"{path}: {expected['field']}: " if expected["field"] else f"{path}: "
    hits = [line for line in problems if line.startswith(prefix) and expected["rule"] in line[len(prefix):]]
    assert hits, f"expected `{prefix}...{expected['rule']}...`, got:\n" + "\n".join(problems)
    # One thing is broken, so one problem: no cascade of follow-up messages.
    assert problems == hits[:1], "more than one problem reported:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", [n for n in CORPUS if EXPECTED[n]["field"]])
def test_field_problems_are_file_field_rule(name):
    path = str(BROKEN / name)
    for line in problems_of(path):
        assert_line_form(line, path)


def test_whole_file_problems_are_file_then_rule():
    whole = [n for n in CORPUS if not EXPECTED[n]["field"]]
    assert {"empty.toml", "not_utf8.toml", "invalid_toml_syntax.toml"} <= set(whole)
    for name in whole:
        path = str(BROKEN / name)
        (line,) = problems_of(path)
        assert line == f"{path}: {line[len(path) + 2:]}" and "\n" not in line


def test_file_path_is_reported_as_given(monkeypatch):
    monkeypatch.chdir(FIXTURES)
    (line,) = problems_of("broken/negative_commitment.toml")
    assert line == "broken/negative_commitment.toml: investors[0].commitment: must be > 0, got -5"
    (line,) = problems_of(Path("broken") / "zero_commitment.toml")
    assert line == f"{Path('broken') / 'zero_commitment.toml'}: investors[1].commitment: must be > 0, got 0"


# --- several problems, missing files ---------------------------------------------------
def _break(tmp_path, edits: list[tuple[str, str]]) -> str:
    text = VALID.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "several.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_several_problems_are_all_reported(tmp_path):
    path = _break(tmp_path, [
        ("commitment = 40_000", "commitment = -5"),
        ("payment_lag_months = 3", "payment_lag_months = 3\npayment_delay = 2"),
        ("measurement_months = [12, 24]", "measurement_months = [24, 12]"),
        ("size = 10\n\n[[cohorts]]", "size = 0\n\n[[cohorts]]"),
        ("dropout = 0.01", "dropout = 1.5"),
        ("share = 0.8", "share = 0.7"),
    ])
    problems = problems_of(path)
    assert problems == [
        f"{path}: investors[0].commitment: must be > 0, got -5",
        f"{path}: payer.payment_delay: unknown key (allowed: measurement_months, name, payment_cap, "
        "payment_lag_months, rate_card, savings_share)",
        f"{path}: payer.measurement_months: must be strictly increasing, got [24, 12]",
        f"{path}: savings.benefit: shares must add up to 1, got 0.9",
        f"{path}: cohorts[0].size: must be >= 1, got 0",
        f"{path}: journey.dropout: must be <= 1, got 1.5",
    ]
    for line in problems:
        assert_line_form(line, path)


def test_several_problems_in_one_table_are_all_reported(tmp_path):
    path = _break(tmp_path, [('name = "Beta Foundation"\ncommitment = 30_000',
                              'name = ""\ncommitment = "30000"\nseniority = 1.5\nemail = "x"')])
    problems = problems_of(path)
    assert sorted(problems) == sorted([
        f"{path}: investors[1].email: unknown key (allowed: class, commitment, name, return_cap, seniority)",
        f"{path}: investors[1].name: must be a non-empty string, got string ''",
        f"{path}: investors[1].commitment: must be a number, got string '30000'",
        f"{path}: investors[1].seniority: must be an integer, got 1.5",
    ])


def test_missing_file_gives_a_clear_message(tmp_path):
    path = str(tmp_path / "no_such_scenario.toml")
    assert problems_of(path) == [f"{path}: file not found"]


def test_a_directory_is_not_a_scenario(tmp_path):
    (line,) = problems_of(str(tmp_path))
    assert line.startswith(f"{tmp_path}: cannot read file (") and "\n" not in line


# --- never anything but ScenarioError ------------------------------------------------
_ODD_VALUES = [None, 0, -1, 10**400, -(10**400), 1.5, float("nan"), float("inf"), True, "x", "", [], [1], [{}],
               {}, {"a": 1}, datetime.date(2020, 1, 1)]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def test_any_value_anywhere_gives_scenario_error_lines_only():
    """Replace (or delete) every value of the valid base by values of every TOML type."""
    base = tomllib.loads(VALID.read_text(encoding="utf-8"))
    failures = []
    for path in list(_paths(base))[1:]:
        for value in _ODD_VALUES:
            doc = copy.deepcopy(base)
            node = doc
            for key in path[:-1]:
                node = node[key]
            if value is None:  # delete the key (or array element)
                del node[path[-1]]
            else:
                node[path[-1]] = value
            try:
                contract_from_dict(doc, "f.toml")
            except ScenarioError as exc:
                for line in exc.problems:
                    try:
                        assert_line_form(line, "f.toml")
                    except AssertionError as err:
                        failures.append(f"{path} = {value!r:.30}: {err}")
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{path} = {value!r:.30}: raw {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures[:20])
