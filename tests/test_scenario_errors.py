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
import dataclasses
import datetime
import re
import tomllib
from pathlib import Path

import pytest

from sibsim.contracts import Contract, Guarantee
from sibsim.errors import ScenarioError
from sibsim.scenario import contract_from_dict, load_scenario

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VALID = FIXTURES / "valid_minimal.toml"
#: valid_minimal.toml plus every optional term (tiers, trigger, review, guarantees...), for the fuzz test.
VALID_ALL_TERMS = FIXTURES / "valid_all_terms.toml"
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
        f"{path}: journey.parameters.dropout: must be <= 1, got 1.5",
        f"{path}: costs[0].bands: shares must add up to 1, got 0.9",
        f"{path}: payer.payment_delay: unknown key (allowed: default_probability, measurement_months, name, "
        "payment_cap, payment_lag_months, rate_card, review, savings_share, tiers, trigger)",
        f"{path}: payer.measurement_months: must be strictly increasing, got [24, 12]",
        f"{path}: cohorts[0].size: must be >= 1, got 0",
    ]
    for line in problems:
        assert_line_form(line, path)


def test_several_problems_in_one_table_are_all_reported(tmp_path):
    path = _break(tmp_path, [('name = "Beta Foundation"\ncommitment = 30_000',
                              'name = ""\ncommitment = "30000"\nseniority = 1.5\nemail = "x"')])
    problems = problems_of(path)
    assert sorted(problems) == sorted([
        f"{path}: investors[1].email: unknown key (allowed: available_from_month, capital_protection, class, "
        "commitment, compounding, holder, interest, kind, name, repayable, return_cap, seniority)",
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


@pytest.mark.parametrize("valid", [VALID, VALID_ALL_TERMS], ids=lambda p: p.name)
def test_any_value_anywhere_gives_scenario_error_lines_only(valid):
    """Replace (or delete) every value of a valid base by values of every TOML type."""
    base = tomllib.loads(valid.read_text(encoding="utf-8"))
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


def test_valid_all_terms_loads_every_term():
    contract = load_scenario(VALID_ALL_TERMS)
    payer = contract.payer
    assert [(t.outcome, t.measure, t.interpolation, t.minimum) for t in payer.tiers] == [
        ("job_sustained", "difference", "step", 0.05), ("days_in_work", "relative_increase", "linear", 0.1)]
    assert payer.tiers[0].points == ((0.05, 5_000.0), (0.10, 12_000.0))
    assert (payer.trigger.follow_up_months, payer.trigger.cohort_threshold, payer.trigger.price) == (12, 0.10, 2_000)
    assert (payer.review.month, payer.review.outcome, payer.review.floor) == (12, "job_start", 0.0)
    assert payer.default_probability == 0.05 and payer.payment_cap == 80_000
    assert (payer.savings_share.rate, payer.savings_share.switch_multiple, payer.savings_share.rate_after) == (0.3, 1.2, 0.1)
    # Days in work: an occupancy outcome counted in months, scaled to days, priced per day.
    assert payer.price("days_in_work") == 10 and contract.outcomes[contract.outcome_index("days_in_work")].scale == 30.4375
    assert [c.name for c in contract.costs] == ["benefit", "top-up in work", "interview travel"]
    assert contract.cohorts[1].start == (("training", 0.5), ("job_search", 0.5))
    assert contract.comparison.shared == ("relapse",) and contract.comparison.journey.start == (("job_search", 1.0),)
    assert [i.repayable for i in contract.investors] == [True, False]
    assert contract.recycling is True
    # The explicit guarantee, then Alpha Fund's capital protection as a guarantee by the payer.
    assert contract.guarantees == (Guarantee("Province", ("Alpha Fund",), 0.5, 10_000.0),
                                   Guarantee("Municipality", ("Alpha Fund",), 0.3))


# --- extends: a variant holds only its deltas over a base scenario ----------------------------
VARIANT = FIXTURES / "valid_variant.toml"
BROKEN_EXTENDS = FIXTURES / "broken_extends"


def test_extends_variant_equals_base_except_its_deltas():
    base, variant = load_scenario(VALID), load_scenario(VARIANT)
    alpha, beta = base.investors
    assert alpha.return_cap == 0.10 and base.guarantees == ()
    expected = dataclasses.replace(
        base,
        investors=(dataclasses.replace(alpha, return_cap=0.08), beta),
        guarantees=(Guarantee("Municipality", ("Alpha Fund",), 0.5, 20_000.0),),
    )
    assert variant == expected
    assert variant.source == str(VARIANT) and variant.meta == base.meta
    # Field by field, including those left out of ==: nothing else moved (source names the variant,
    # files lists the variant and then its base).
    changed = [f.name for f in dataclasses.fields(Contract) if getattr(variant, f.name) != getattr(base, f.name)]
    assert changed == ["investors", "guarantees", "source", "files"]
    assert [p for p, _ in variant.files] == [str(VARIANT), str(VARIANT.parent / "valid_minimal.toml")]


def test_extends_cycle_is_one_problem_on_the_file_closing_it(monkeypatch):
    monkeypatch.chdir(FIXTURES)
    a, b = Path("broken_extends") / "a.toml", Path("broken_extends") / "b.toml"
    assert problems_of(a) == [f"{b}: extends: must not form a cycle of base scenarios, got a.toml -> b.toml -> a.toml"]
    assert problems_of(b) == [f"{a}: extends: must not form a cycle of base scenarios, got b.toml -> a.toml -> b.toml"]
    assert sorted(p.name for p in BROKEN_EXTENDS.iterdir()) == ["a.toml", "b.toml"]


def test_extends_missing_base_is_reported_on_the_variant(monkeypatch):
    monkeypatch.chdir(FIXTURES)
    variant = Path("broken") / "extends_missing_file.toml"
    assert problems_of(variant) == [f"{variant}: extends: must name a readable base scenario, "
                                    f"got {Path('broken') / 'no_such_base.toml'} (file not found)"]


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_extends_chain_merges_tables_and_replaces_arrays(tmp_path):
    _write(tmp_path, "base.toml", VALID.read_text(encoding="utf-8"))
    _write(tmp_path, "middle.toml", 'extends = "base.toml"\n[payer.rate_card]\ndiploma = 1_500\n')
    top = _write(tmp_path, "top.toml", 'extends = "middle.toml"\n[term]\ntail_months = 2\n'
                                       '[[cohorts]]\nintake_month = 3\nsize = 7\n')
    base, contract = load_scenario(VALID), load_scenario(top)
    assert dict(contract.payer.rate_card) == {"diploma": 1_500.0, "job_sustained": 4_000.0}  # table: merged
    assert (contract.term_months, contract.tail_months) == (24, 2)
    assert [(c.intake_month, c.size) for c in contract.cohorts] == [(3, 7)]  # array: replaced
    assert contract.investors == base.investors and contract.journey == base.journey


def test_extends_problems_of_the_merged_scenario_name_the_variant(tmp_path):
    _write(tmp_path, "base.toml", VALID.read_text(encoding="utf-8"))
    variant = _write(tmp_path, "variant.toml", 'extends = "base.toml"\n[journey.parameters]\ndropout = 1.5\n')
    assert problems_of(str(variant)) == [f"{variant}: journey.parameters.dropout: must be <= 1, got 1.5"]


def test_extends_missing_base_deeper_in_a_chain_names_the_file_extending_it(tmp_path):
    _write(tmp_path, "middle.toml", 'extends = "gone.toml"\n[term]\ntail_months = 2\n')
    top = _write(tmp_path, "top.toml", 'extends = "middle.toml"\n')
    assert problems_of(str(top)) == [f"{tmp_path / 'middle.toml'}: extends: must name a readable base scenario, "
                                     f"got {tmp_path / 'gone.toml'} (file not found)"]


def test_extends_chain_depth_is_limited(tmp_path):
    from sibsim.scenario import MAX_EXTENDS_DEPTH

    _write(tmp_path, "v0.toml", VALID.read_text(encoding="utf-8"))
    for k in range(1, MAX_EXTENDS_DEPTH + 2):
        _write(tmp_path, f"v{k}.toml", f'extends = "v{k - 1}.toml"\n')
    assert load_scenario(tmp_path / f"v{MAX_EXTENDS_DEPTH}.toml") == load_scenario(VALID)
    (line,) = problems_of(str(tmp_path / f"v{MAX_EXTENDS_DEPTH + 1}.toml"))
    assert line.endswith(f": extends: must be at most {MAX_EXTENDS_DEPTH} levels of base scenarios, got more")
    assert_line_form(line, line.split(": ")[0])
