"""Trust: nothing in a scenario is silently misread.

Each test here failed on the loader before the rule it checks, except five that pin down what
stays as it was: a prior in the other form replaces the base's, ``sd = 0`` written out is a known
value, a prior without a mean is refused, a base named ``base.v2.toml`` loads, and names with inner
spaces and letters of any script are fine.  The rules:

* a variant writing ``{ mean = ... }`` over a base prior keeps the base's sd (item 10);
* ``extends`` is a bare file name next to the variant; every scenario file is a regular file of at
  most 1 MB, read with a bounded read, with one byte-order mark allowed (items 12, 13);
* annual rates are at most 1 (a percentage is refused with the fraction it probably means),
  amounts at least a cent, the capital called at least one unit, the comparison group bounded,
  ``meta.start`` a date; defaults are recorded (item 13);
* amounts in messages and in ``sibsim validate`` carry the scenario's currency (item 14);
* names are visible and unique once normalised; names referring to others match exactly (item 16);
* every file read is recorded with its SHA-256, and ``run.json`` hashes them all (item 17).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import hashlib
import json
import math
import os
import tomllib
import unicodedata
from pathlib import Path

import pytest

from sibsim import cli
from sibsim.contracts import Prior
from sibsim.errors import ScenarioError
from sibsim.scenario import _show, contract_from_dict, load_scenario
from tests.test_fuzz_scenarios import Hang, time_limit  # fail, never hang: a FIFO used to block open()

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VALID = FIXTURES / "valid_minimal.toml"
VALID_ALL_TERMS = FIXTURES / "valid_all_terms.toml"
ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
BASE_TEXT = VALID.read_text(encoding="utf-8")
# Bounds of the rules, written out: a test must fail if a constant drifts from what docs/scenario.md says.
MAX_FILE_BYTES = 1_000_000


def problems(path) -> list[str]:
    """The problems ``load_scenario`` reports (each one line); fail on any other outcome."""
    try:
        load_scenario(path)
    except ScenarioError as exc:
        assert exc.problems and all(line.splitlines() == [line] for line in exc.problems), exc.problems
        return exc.problems
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"raw {type(exc).__name__} instead of ScenarioError: {exc}")
    pytest.fail(f"{path}: loaded without any error")


def doc_problems(doc: dict) -> list[str]:
    """The problems of a parsed document, as ``field: rule`` (the file name dropped)."""
    try:
        contract_from_dict(doc, "f.toml")
    except ScenarioError as exc:
        assert all(line.startswith("f.toml: ") and line.splitlines() == [line] for line in exc.problems)
        return [line[len("f.toml: "):] for line in exc.problems]
    return []


def base_doc(path: Path = VALID) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def edited(edits: list[tuple[str, str]], text: str = BASE_TEXT) -> str:
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path




# =====================================================================================
# 10. a variant's prior merges with its base's prior, key by key
# =====================================================================================
@pytest.fixture
def base_dir(tmp_path) -> Path:
    write(tmp_path, "base.toml", BASE_TEXT)
    return tmp_path


def variant(directory: Path, body: str, name: str = "variant.toml") -> Path:
    return write(directory, name, 'extends = "base.toml"\n' + body)


def test_variant_with_only_a_mean_keeps_the_base_sd(base_dir):
    """``{ mean = 0.12 }`` over ``{ mean = 0.10, sd = 0.03 }``: the mean moves, the uncertainty stays."""
    contract = load_scenario(variant(base_dir, "[journey.parameters]\ndiploma = { mean = 0.12 }\n"))
    assert contract.journey.prior("diploma") == Prior(0.12, 0.03)
    assert not contract.journey.prior("diploma").is_fixed


def test_variant_with_only_an_sd_keeps_the_base_mean(base_dir):
    contract = load_scenario(variant(base_dir, "[journey.parameters]\ndiploma = { sd = 0.02 }\n"))
    assert contract.journey.prior("diploma") == Prior(0.10, 0.02)


def test_variant_with_only_alpha_keeps_the_base_beta(base_dir):
    contract = load_scenario(variant(base_dir, "[journey.parameters]\njob_with_diploma = { alpha = 6.0 }\n"))
    assert contract.journey.prior("job_with_diploma") == Prior.from_alpha_beta(6.0, 96.0)


def test_variant_alpha_beta_over_a_mean_sd_base_replaces_the_prior(base_dir):
    """Two ways of writing one prior: the other form replaces the base's prior as a whole (a decision;
    the old code replaced every prior table, so this one passed before too)."""
    contract = load_scenario(variant(base_dir, "[journey.parameters]\ndiploma = { alpha = 2.0, beta = 18.0 }\n"))
    assert contract.journey.prior("diploma") == Prior.from_alpha_beta(2.0, 18.0)
    contract = load_scenario(variant(base_dir, "[journey.parameters]\njob_with_diploma = { mean = 0.05, sd = 0.01 }\n"))
    assert contract.journey.prior("job_with_diploma") == Prior(0.05, 0.01)


def test_variant_mean_only_over_an_alpha_beta_base_is_refused(base_dir):
    """A mean cannot borrow an sd from Beta parameters: the prior is replaced, and lacks its sd."""
    path = variant(base_dir, "[journey.parameters]\njob_with_diploma = { mean = 0.05 }\n")
    assert problems(path) == [f"{path}: journey.parameters.job_with_diploma.sd: missing required field (a prior needs its "
                              "sd; a known rate is written as a number, e.g. job_with_diploma = 0.05)"]


def test_variant_mean_over_a_fixed_base_rate_is_refused(base_dir):
    """The base's dropout is a number (known): a table without sd over it is no prior."""
    path = variant(base_dir, "[journey.parameters]\ndropout = { mean = 0.02 }\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}: journey.parameters.dropout.sd: missing required field")


def test_prior_table_without_sd_is_refused_without_a_base():
    """Without a base the sd is required: a known rate is a number (it was sd = 0, silently)."""
    doc = base_doc()
    doc["journey"]["parameters"]["diploma"] = {"mean": 0.1}
    assert doc_problems(doc) == ["journey.parameters.diploma.sd: missing required field (a prior needs its sd; a known rate "
                                 "is written as a number, e.g. diploma = 0.1)"]


def test_prior_with_sd_zero_written_out_is_a_known_value():
    doc = base_doc()
    doc["journey"]["parameters"]["diploma"] = {"mean": 0.1, "sd": 0}
    assert contract_from_dict(doc).journey.prior("diploma") == Prior(0.1)


def test_prior_without_a_mean_is_refused():
    doc = base_doc()
    doc["journey"]["parameters"]["diploma"] = {"sd": 0.02}
    assert doc_problems(doc) == ["journey.parameters.diploma.mean: missing required field"]


# =====================================================================================
# 12. extends: a bare file name next to the variant; every file read is bounded
# =====================================================================================
@pytest.mark.parametrize("name", [
    "../base.toml", "sub/base.toml", "sub\\base.toml", "./base.toml", "/etc/sibsim/base.toml", "..\\base.toml",
    "base\x00.toml", "ba\nse.toml", "ba\u200bse.toml", "ba\u2028se.toml",
], ids=["parent", "subdir", "backslash", "dot_slash", "absolute", "parent_backslash", "nul", "newline",
        "zero_width", "line_separator"])
def test_extends_must_be_a_bare_file_name(base_dir, name):
    (base_dir / "sub").mkdir()
    write(base_dir / "sub", "base.toml", BASE_TEXT)
    top = base_dir / "sub" / "top.toml"
    top.write_text(f"extends = {json.dumps(name)}\n", encoding="utf-8")
    (line,) = problems(top)
    assert line == (f"{top}: extends: must be a bare file name of a base scenario in the same directory (no path "
                    f"separator, no '..', no absolute path, no control character), got string {name!r}")


def test_extends_absolute_path_to_an_existing_scenario_is_refused(base_dir, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    top = write(other, "top.toml", f"extends = {json.dumps(str(base_dir / 'base.toml'))}\n")
    (line,) = problems(top)
    assert line.startswith(f"{top}: extends: must be a bare file name")


def test_extends_does_not_echo_the_keys_of_a_toml_file_elsewhere(tmp_path):
    (tmp_path / "private").mkdir()
    write(tmp_path / "private", "secrets.toml", 'api_token = "s3cr3t"\n[database]\npassword = "hunter2"\n')
    (tmp_path / "scenarios").mkdir()
    top = write(tmp_path / "scenarios", "top.toml", 'extends = "../private/secrets.toml"\n')
    text = "\n".join(problems(top))
    assert "api_token" not in text and "password" not in text and "database" not in text


def test_bare_file_name_with_dots_inside_is_a_valid_base(base_dir):
    write(base_dir, "base.v2.toml", BASE_TEXT)
    top = write(base_dir, "top.toml", 'extends = "base.v2.toml"\n')
    assert load_scenario(top) == load_scenario(base_dir / "base.toml")


def test_a_name_with_a_nul_byte_is_one_line(tmp_path):
    name = str(tmp_path / "a\x00b.toml")
    assert problems(name) == [f"{name}: cannot read file (the name contains a NUL byte)"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    with time_limit(5):
        assert problems(fifo) == [f"{fifo}: cannot read file (not a regular file: a FIFO)"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_base_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "base.toml")
    top = write(tmp_path, "top.toml", 'extends = "base.toml"\n')
    with time_limit(5):
        assert problems(top) == [f"{top}: extends: must name a readable base scenario, got {tmp_path / 'base.toml'} "
                                 f"(cannot read file (not a regular file: a FIFO))"]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_dev_zero_is_refused_not_read(tmp_path):
    """It used to be read without limit (until memory ran out): never run this test on such code."""
    assert problems("/dev/zero") == ["/dev/zero: cannot read file (not a regular file: a character device)"]
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    top = write(tmp_path, "top.toml", 'extends = "zero.toml"\n')
    (line,) = problems(top)
    assert line.endswith("(cannot read file (not a regular file: a character device))")


def padded(size: int) -> bytes:
    """The valid base padded with a comment to exactly ``size`` bytes."""
    data = BASE_TEXT.encode("utf-8") + b"#"
    return data + b"x" * (size - len(data) - 1) + b"\n"


def test_file_size_limit_at_its_exact_bound(tmp_path):
    at = write(tmp_path, "at.toml", padded(MAX_FILE_BYTES))
    assert len(at.read_bytes()) == MAX_FILE_BYTES
    assert load_scenario(at) == load_scenario(VALID)
    beyond = write(tmp_path, "beyond.toml", padded(MAX_FILE_BYTES + 1))
    assert problems(beyond) == [f"{beyond}: cannot read file (larger than 1,000,000 bytes: a scenario is a few kB "
                                f"of text)"]


def test_base_file_size_is_limited_too(tmp_path):
    write(tmp_path, "base.toml", padded(MAX_FILE_BYTES + 1))
    top = write(tmp_path, "top.toml", 'extends = "base.toml"\n')
    (line,) = problems(top)
    assert line.startswith(f"{top}: extends: must name a readable base scenario") and "larger than 1,000,000" in line


def test_files_are_read_with_a_bounded_read(tmp_path, monkeypatch):
    """However large the file, at most the limit plus one byte is read (a file may grow, or lie about its size)."""
    import sibsim.scenario as scenario

    big = write(tmp_path, "big.toml", b"#" * (5 * MAX_FILE_BYTES))
    read = []
    real_read = os.read
    monkeypatch.setattr(scenario.os, "read", lambda fd, n: read.append(n) or real_read(fd, n))
    problems(big)
    assert read and sum(read) <= MAX_FILE_BYTES + 1


def test_byte_order_mark_is_accepted_once(tmp_path):
    """Windows Notepad writes one: run and update refused such a file ("not valid TOML")."""
    bom = write(tmp_path, "bom.toml", b"\xef\xbb\xbf" + BASE_TEXT.encode("utf-8"))
    assert load_scenario(bom) == load_scenario(VALID)
    two = write(tmp_path, "two.toml", b"\xef\xbb\xbf\xef\xbb\xbf" + BASE_TEXT.encode("utf-8"))
    (line,) = problems(two)
    assert line.startswith(f"{two}: not valid TOML: ")
    write(tmp_path, "base.toml", b"\xef\xbb\xbf" + BASE_TEXT.encode("utf-8"))
    top = write(tmp_path, "top.toml", b"\xef\xbb\xbfextends = \"base.toml\"\n")
    assert load_scenario(top) == load_scenario(VALID)


def test_byte_order_mark_alone_is_an_empty_file(tmp_path):
    path = write(tmp_path, "bom_only.toml", b"\xef\xbb\xbf")
    assert problems(path) == [f"{path}: file is empty: no TOML tables or keys"]


def test_byte_order_mark_in_run_and_update(tmp_path, capsys):
    scenario = write(tmp_path, "ck.toml", b"\xef\xbb\xbf" + (SCENARIOS / "utrecht_colour_kitchen.toml").read_bytes())
    assert cli.main(["run", str(scenario), "--paths", "20", "--seed", "1", "--out", str(tmp_path / "o"),
                     "--no-plots", "--quiet", "--workers", "1"]) == 0
    evidence = SCENARIOS / "evidence" / "utrecht_colour_kitchen_year2.toml"
    assert cli.main(["update", str(scenario), str(evidence), "--out", str(tmp_path / "u.toml"),
                     "--paths", "50"]) == 0
    capsys.readouterr()


def test_update_refuses_a_variant_in_another_directory(tmp_path, capsys):
    """The variant names its base by bare file name: written elsewhere it could not load (it used to
    name the base by a relative path, which extends no longer follows)."""
    out = tmp_path / "updated.toml"
    base = SCENARIOS / "utrecht_colour_kitchen.toml"
    evidence = SCENARIOS / "evidence" / "utrecht_colour_kitchen_year2.toml"
    assert cli.main(["update", str(base), str(evidence), "--out", str(out), "--paths", "50"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {out}: must be in the directory of {base} (the updated scenario extends it by its bare "
                   f"file name, utrecht_colour_kitchen.toml); write it there, e.g. --out {base.parent / out.name}")
    assert not out.exists()


# =====================================================================================
# 13. units and formats
# =====================================================================================
RATES = [  # (field path, lower bound and its operator, written as the loader writes it)
    (("investors", 0, "return_cap"), ">=", 0),
    (("analysis", "investor_discount_rate"), ">=", -0.9),
    (("analysis", "public_discount_rate"), ">=", -0.9),
    (("costs", 0, "annual_indexation"), ">", -1),
]


def set_in(doc: dict, path: tuple, value) -> dict:
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[path[-1]] = value
    return doc


def field_of(path: tuple) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


@pytest.mark.parametrize("path, op, low", RATES, ids=[field_of(p) for p, _, _ in RATES])
def test_annual_rates_are_at_most_one(path, op, low):
    doc = base_doc()
    assert contract_from_dict(set_in(copy.deepcopy(doc), path, 1))  # 100 % a year: the bound itself
    beyond = math.nextafter(1.0, 2.0)
    assert doc_problems(set_in(copy.deepcopy(doc), path, beyond)) == [
        f"{field_of(path)}: must be <= 1 (an annual rate: 0.10 is 10 %), got {beyond!r}; did you mean 0.01?"]
    assert doc_problems(set_in(copy.deepcopy(doc), path, 10)) == [
        f"{field_of(path)}: must be <= 1 (an annual rate: 0.10 is 10 %), got 10; did you mean 0.1?"]
    assert doc_problems(set_in(copy.deepcopy(doc), path, 12.5)) == [
        f"{field_of(path)}: must be <= 1 (an annual rate: 0.10 is 10 %), got 12.5; did you mean 0.125?"]
    # No hint where a hundredth would still be out of range.
    assert doc_problems(set_in(copy.deepcopy(doc), path, 1e6)) == [
        f"{field_of(path)}: must be <= 1 (an annual rate: 0.10 is 10 %), got 1e+06"]


@pytest.mark.parametrize("path, op, low", RATES[1:], ids=[field_of(p) for p, _, _ in RATES[1:]])
def test_negative_annual_rates_written_as_percentages(path, op, low):
    doc = base_doc()
    assert doc_problems(set_in(copy.deepcopy(doc), path, -5)) == [
        f"{field_of(path)}: must be {op} {low:g} (an annual rate: -0.05 is -5 %), got -5; did you mean -0.05?"]
    if op == ">=":
        assert contract_from_dict(set_in(copy.deepcopy(doc), path, low))  # the bound itself
    just = math.nextafter(float(low), -2.0) if op == ">=" else float(low)
    assert doc_problems(set_in(copy.deepcopy(doc), path, just)) == [f"{field_of(path)}: must be {op} {low:g}, "
                                                                    f"got {_show(just)}"]


def test_defaulted_discount_rates_are_visible():
    contract = load_scenario(VALID)  # no [analysis]
    assert contract.investor_discount_rate == 0.0 and contract.public_discount_rate == 0.0
    assert contract.is_default("analysis.investor_discount_rate")
    assert contract.is_default("analysis.public_discount_rate")
    assert contract.is_default("analysis.primary_outcome") and contract.primary_outcome == "diploma"  # the first
    given = load_scenario(SCENARIOS / "utrecht_colour_kitchen.toml")
    assert given.investor_discount_rate == 0.05
    assert not given.is_default("analysis.investor_discount_rate") and not given.is_default("analysis.public_discount_rate")


def test_defaults_record_only_what_was_left_out():
    doc = base_doc()
    doc["analysis"] = {"public_discount_rate": 0.0}  # given, although equal to the default
    contract = contract_from_dict(doc)
    assert contract.is_default("analysis.investor_discount_rate")
    assert not contract.is_default("analysis.public_discount_rate")
    assert not contract.is_default("term.tail_months")  # valid_minimal gives it
    assert contract.is_default("payer.default_probability")


@pytest.mark.parametrize("value, iso", [
    ("2015-04", "2015-04"), ("2015-04-01", "2015-04-01"), (datetime.date(2015, 4, 1), "2015-04-01"),
    ("2016-02-29", "2016-02-29"), ("0001-01", "0001-01"),
])
def test_start_dates_accepted(value, iso):
    doc = base_doc()
    doc["meta"]["start"] = value
    contract = contract_from_dict(doc)
    assert contract.start == iso and dict(contract.meta)["start"] == iso


@pytest.mark.parametrize("value, shown", [
    ("yesterday", "string 'yesterday'"), ("2015-4", "string '2015-4'"), ("2015-13", "string '2015-13'"),
    ("2015-00", "string '2015-00'"), ("2015-02-29", "string '2015-02-29'"), ("04/2015", "string '04/2015'"),
    (" 2015-04", "string ' 2015-04'"), ("2015-04-01T00:00:00", "string '2015-04-01T00:00:00'"),
    ("0000-01", "string '0000-01'"), (2015, "2015"), ("", "string ''"),
    (datetime.datetime(2015, 4, 1, 9, 30), "date-time 2015-04-01T09:30:00"),
    (datetime.time(9, 30), "time 09:30:00"),
])
def test_start_dates_refused(value, shown):
    doc = base_doc()
    doc["meta"]["start"] = value
    assert doc_problems(doc) == [f"meta.start: must be a date: a TOML date (2015-04-01) or an ISO date string "
                                 f"'YYYY-MM-DD' or 'YYYY-MM', got {shown}"]


def test_toml_dates_in_messages_are_iso_text_never_a_python_repr(tmp_path):
    path = write(tmp_path, "date.toml", edited([('title = "Minimal valid scenario (test fixture)"', "title = 2015-04-01"),
                                                ("commitment = 30_000", "commitment = 2015-04-01T09:30:00Z"),
                                                ("intake_month = 6", "intake_month = 07:32:00")]))
    lines = problems(path)
    assert lines == [f"{path}: meta.title: must be a non-empty string, got date 2015-04-01",
                     f"{path}: investors[1].commitment: must be a number, got date-time 2015-04-01T09:30:00+00:00",
                     f"{path}: cohorts[1].intake_month: must be an integer, got time 07:32:00"]
    assert "datetime" not in "\n".join(lines)


def test_memo_calendar_reads_a_start_with_a_day():
    """A TOML date (2015-04-01) is kept as ISO text: the report's calendar must read it, not drop it."""
    from sibsim.report import _Calendar

    assert _Calendar("2015-04-01").month(12) == _Calendar("2015-04").month(12) == "month 12 (Apr 2016)"


AMOUNTS = [  # (base file, path, zero allowed)
    (VALID, ("investors", 1, "commitment"), False),
    (VALID, ("provider", "budget", 0, "per_month"), True),
    (VALID, ("fees", 0, "schedule", 0, "amount"), True),
    (VALID, ("payer", "rate_card", "diploma"), True),
    (VALID, ("payer", "payment_cap"), False),
    (VALID, ("costs", 0, "bands", 0, "amount"), True),
    (VALID_ALL_TERMS, ("payer", "trigger", "price"), True),
    (VALID_ALL_TERMS, ("guarantees", 0, "cap"), False),
]


@pytest.mark.parametrize("base, path, zero", AMOUNTS, ids=[field_of(p) for _, p, _ in AMOUNTS])
def test_positive_amounts_are_at_least_a_cent(base, path, zero):
    doc = base_doc(base)
    doc["investors"][0]["commitment"] = 70_000  # covers the capital calls alone
    assert contract_from_dict(set_in(copy.deepcopy(doc), path, 0.01))  # one cent: the bound itself
    just = math.nextafter(0.01, 0)
    rule = "must be 0 or >= 0.01" if zero else "must be >= 0.01"
    assert doc_problems(set_in(copy.deepcopy(doc), path, just)) == [
        f"{field_of(path)}: {rule} (one cent: a smaller amount is a unit mistake), got {just!r}"]
    assert doc_problems(set_in(copy.deepcopy(doc), path, 1e-300)) == [
        f"{field_of(path)}: {rule} (one cent: a smaller amount is a unit mistake), got 1e-300"]


def test_tier_amounts_are_at_least_a_cent():
    doc = base_doc(VALID_ALL_TERMS)
    doc["payer"]["tiers"][0]["points"][0][1] = 0.01
    assert contract_from_dict(copy.deepcopy(doc))
    doc["payer"]["tiers"][0]["points"][0][1] = 0.005
    assert doc_problems(doc) == ["payer.tiers[0].points[0][1]: must be 0 or >= 0.01 (one cent: a smaller amount "
                                 "is a unit mistake), got 0.005"]


def test_capital_called_is_at_least_one_currency_unit():
    """A budget of 1e-300 gave a multiple of 2e304 and an overflow warning: now at least 1 is called."""
    doc = base_doc()
    del doc["fees"]
    doc["provider"]["budget"] = [{"month": 0, "amount": 1}]
    assert contract_from_dict(copy.deepcopy(doc)).capital_calls().sum() == 1  # the bound itself
    doc["provider"]["budget"] = [{"month": 0, "amount": 0.99}]
    assert doc_problems(copy.deepcopy(doc)) == [
        "provider.budget: must call at least EUR 1 of capital in all (budget + investor fees), got EUR 0.99"]
    doc["meta"]["currency"] = "GBP"
    assert doc_problems(doc) == [
        "provider.budget: must call at least GBP 1 of capital in all (budget + investor fees), got GBP 0.99"]


def test_comparison_size_ratio_at_its_bound():
    doc = base_doc()
    doc["comparison"]["size_ratio"] = 10
    assert contract_from_dict(copy.deepcopy(doc)).comparison.size_ratio == 10
    doc["comparison"]["size_ratio"] = math.nextafter(10.0, 11.0)
    assert doc_problems(doc) == [
        f"comparison.size_ratio: must be <= 10 (comparison-group members per treated participant: memory grows "
        f"with the group, precision hardly beyond a few times the treated group), got {math.nextafter(10.0, 11.0)!r}"]


def test_comparison_members_in_all_at_their_bound():
    doc = base_doc()
    doc["comparison"]["size_ratio"] = 10
    doc["cohorts"] = [{"intake_month": 0, "size": 60_000}, {"intake_month": 6, "size": 40_000}]
    assert contract_from_dict(copy.deepcopy(doc)).comparison_sizes.sum() == 1_000_000  # the bound itself
    doc["cohorts"][1]["size"] = 40_001
    assert doc_problems(copy.deepcopy(doc)) == [
        "comparison.size_ratio: at most 1000000 comparison-group members in all (each is simulated: memory per "
        "worker grows with them), got 1000010 (10 x 100001 participants)"]
    doc["comparison"]["method"] = "expected"  # a modelled counterfactual: no comparison group is simulated
    assert contract_from_dict(doc)


# =====================================================================================
# 14. the scenario's currency everywhere
# =====================================================================================
def test_validate_prints_the_currency_and_the_term(tmp_path, capsys):
    path = write(tmp_path, "usd.toml", edited([
        ('title = "Minimal valid scenario (test fixture)"', 'title = "USD deal"\ncurrency = "USD"'),
        ("term_months = 24", "term_months = 48"), ("tail_months = 6", "tail_months = 12")]))
    assert cli.main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == (f"{path}: ok: USD deal; 20 participants in 2 cohorts; USD 70,000 committed by 2 investors; "
                   f"term 48 months, tail 12 months, horizon 60 months (to the last payment or saving followed)")
    assert "EUR" not in out


def test_validate_shipped_gbp_scenario(capsys):
    assert cli.main(["validate", str(SCENARIOS / "peterborough.toml")]) == 0
    out = capsys.readouterr().out
    assert "GBP 5,000,000 committed" in out and "EUR" not in out and "term 96 months" in out


@pytest.mark.parametrize("currency", ["GBP", "USD"])
def test_loader_messages_use_the_scenario_currency(currency):
    doc = base_doc()
    doc["meta"]["currency"] = currency
    doc["investors"][0]["commitment"] = 30_000
    assert doc_problems(copy.deepcopy(doc)) == [
        f"investors: total commitments {currency} 60,000.00 must cover the capital calls (provider.budget + "
        f"investor fees) of {currency} 62,000.00"]
    tiers = base_doc(VALID_ALL_TERMS)
    tiers["meta"]["currency"] = currency
    tiers["payer"]["tiers"][0]["points"][0] = 0.05
    assert doc_problems(copy.deepcopy(tiers)) == [
        f"payer.tiers[0].points[0]: must be an [improvement, {currency}] pair, got 0.05"]
    tiers["payer"]["tiers"][0]["points"] = 3
    assert doc_problems(tiers) == [
        f"payer.tiers[0].points: must be a non-empty array of [improvement, {currency}] pairs, got 3"]


@pytest.mark.parametrize("value", ["euro", "eur", "EURO", "€", "E R", "EU\nR", "", 978, True])
def test_currency_must_be_an_iso_code(value):
    doc = base_doc()
    doc["meta"]["currency"] = value
    (line,) = doc_problems(doc)
    assert line.startswith("meta.currency: must be a three-letter ISO 4217 code such as EUR, GBP or USD, got ")


# =====================================================================================
# 16. names: visible, unique once normalised, matched exactly
# =====================================================================================
NAME_FIELDS = [
    (VALID, ("investors", 1, "name")), (VALID, ("investors", 1, "class")), (VALID, ("provider", "name")),
    (VALID, ("payer", "name")), (VALID, ("fees", 0, "name")), (VALID, ("costs", 0, "bands", 0, "group")),
    (VALID, ("costs", 0, "name")), (VALID, ("journey", "states", 3, "name")),
    (VALID_ALL_TERMS, ("guarantees", 0, "guarantor")),
]
HIDDEN = [("\u200b", "U+200B"), ("\ufeff", "U+FEFF"), ("\u200d", "U+200D"), ("\u202e", "U+202E"),
          ("\x07", "U+0007"), ("\u2028", "U+2028"), ("\t", "U+0009")]


@pytest.mark.parametrize("base, path", NAME_FIELDS, ids=[field_of(p) for _, p in NAME_FIELDS])
@pytest.mark.parametrize("char, code", HIDDEN, ids=[c for _, c in HIDDEN])
def test_names_with_invisible_characters_are_refused(base, path, char, code):
    doc = base_doc(base)
    name = f"Gamma{char}Trust"
    assert doc_problems(set_in(doc, path, name)) == [
        f"{field_of(path)}: must not contain control or invisible characters ({code}), got string {name!r}"]


@pytest.mark.parametrize("base, path", NAME_FIELDS, ids=[field_of(p) for _, p in NAME_FIELDS])
@pytest.mark.parametrize("name", [" Gamma Trust", "Gamma Trust ", "Gamma Trust\u00a0", "\u3000Gamma Trust"])
def test_names_with_leading_or_trailing_white_space_are_refused(base, path, name):
    doc = base_doc(base)
    assert doc_problems(set_in(doc, path, name)) == [
        f"{field_of(path)}: must not begin or end with white space, got string {name!r}"]


@pytest.mark.parametrize("name", ["alpha fund", "ALPHA FUND", "Alpha  Fund", "Alpha\u00a0Fund", "Ａｌｐｈａ Fund"])
def test_investor_names_equal_once_normalised_are_duplicates(name):
    doc = base_doc()
    doc["investors"][1]["name"] = name
    assert doc_problems(doc) == [f"investors[1].name: must be unique, {name!r} is a duplicate of investors[0].name "
                                 f"'Alpha Fund' (the same name but for case, spacing or Unicode form)"]


def test_nfc_and_nfd_names_are_duplicates():
    doc = base_doc()
    nfc, nfd = unicodedata.normalize("NFC", "Café Fund"), unicodedata.normalize("NFD", "Café Fund")
    assert nfc != nfd
    doc["investors"][0]["name"], doc["investors"][1]["name"] = nfc, nfd
    assert doc_problems(doc) == [f"investors[1].name: must be unique, {nfd!r} is a duplicate of investors[0].name "
                                 f"{nfc!r} (the same name but for case, spacing or Unicode form)"]


def test_exact_duplicate_investor_name_names_the_first():
    doc = base_doc()
    doc["investors"][1]["name"] = "Alpha Fund"
    assert doc_problems(doc) == ["investors[1].name: must be unique, 'Alpha Fund' appears twice "
                                 "(duplicate of investors[0].name)"]


def test_fee_names_and_age_bands_are_unique_once_normalised():
    doc = base_doc()
    doc["fees"].append({"name": "intermediary", "paid_by": "payer", "schedule": [{"month": 1, "amount": 100}]})
    assert doc_problems(copy.deepcopy(doc)) == [
        "fees[1].name: must be unique, 'intermediary' is a duplicate of fees[0].name 'Intermediary' (the same name "
        "but for case, spacing or Unicode form)"]
    doc = base_doc()
    doc["costs"][0]["bands"][1]["group"] = "21+"
    assert doc_problems(doc) == ["costs[0].bands[1].group: must be unique, '21+' appears twice "
                                 "(duplicate of costs[0].bands[0].group)"]


def test_names_with_inner_spaces_and_letters_of_any_script_are_fine():
    doc = base_doc()
    doc["investors"][0]["name"] = "Stichting Café — Ünïcode 名前"
    doc["investors"][1]["name"] = "Beta  Foundation"  # two inner spaces: visible, and no duplicate
    assert [i.name for i in contract_from_dict(doc).investors] == ["Stichting Café — Ünïcode 名前", "Beta  Foundation"]


@pytest.mark.parametrize("name", ["alpha fund", "Alpha  Fund", "Alpha Fund\u00a0", "Ａｌｐｈａ Fund"])
def test_guarantee_naming_an_investor_must_match_exactly(name):
    doc = base_doc(VALID_ALL_TERMS)
    doc["guarantees"][0]["investors"] = [name]
    assert doc_problems(doc) == [f"guarantees[0].investors[0]: unknown investor {name!r}; did you mean "
                                 f"'Alpha Fund'? names must match exactly"]


def test_guarantee_naming_a_class_must_match_exactly():
    doc = base_doc(VALID_ALL_TERMS)
    doc["guarantees"][0].pop("investors")
    doc["guarantees"][0]["classes"] = ["Senior"]
    assert doc_problems(doc) == ["guarantees[0].classes[0]: unknown class 'Senior'; did you mean 'senior'? "
                                 "names must match exactly"]


def test_a_guarantor_nearly_named_as_the_payer_is_refused():
    """The payer's guarantees count among the payer's costs by exact name: a near miss was a third party."""
    doc = base_doc(VALID_ALL_TERMS)
    payer = doc["payer"]["name"]
    doc["guarantees"][0]["guarantor"] = payer.upper()
    assert doc_problems(copy.deepcopy(doc)) == [
        f"guarantees[0].guarantor: must be the payer's name exactly to be the payer ({payer!r}), got {payer.upper()!r}"]
    doc["guarantees"][0]["guarantor"] = payer
    assert contract_from_dict(doc).guarantees[0].guarantor == payer


# =====================================================================================
# 17. every file read is recorded, and run.json hashes them all
# =====================================================================================
def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_contract_records_every_file_read_top_first(base_dir):
    write(base_dir, "middle.toml", 'extends = "base.toml"\n[term]\ntail_months = 2\n')
    top = write(base_dir, "top.toml", 'extends = "middle.toml"\n')
    contract = load_scenario(top)
    assert contract.files == ((str(top), sha(top)), (str(base_dir / "middle.toml"), sha(base_dir / "middle.toml")),
                              (str(base_dir / "base.toml"), sha(base_dir / "base.toml")))
    expected = hashlib.sha256("".join(f"{h}\n" for _, h in contract.files).encode()).hexdigest()
    assert contract.files_sha256 == expected
    single = load_scenario(base_dir / "base.toml")
    assert single.files == ((str(base_dir / "base.toml"), sha(base_dir / "base.toml")),)
    assert single.files_sha256 == sha(base_dir / "base.toml")  # one file: its own SHA-256, as sha256sum prints
    assert single == dataclasses.replace(single, files=())  # not part of the contract's terms


def test_files_hash_changes_when_a_base_changes(base_dir):
    top = variant(base_dir, "[term]\ntail_months = 2\n")
    before = load_scenario(top).files_sha256
    write(base_dir, "base.toml", BASE_TEXT.replace("diploma = 1_000", "diploma = 1_100"))
    assert load_scenario(top).files_sha256 != before


def test_run_json_records_every_scenario_file(base_dir, capsys):
    top = variant(base_dir, "[term]\ntail_months = 2\n")
    out = base_dir / "out"
    args = ["run", str(top), "--paths", "20", "--seed", "1", "--out", str(out), "--no-plots", "--quiet",
            "--workers", "1"]
    assert cli.main(args) == 0
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert manifest["scenario_files"] == [{"path": str(top.resolve()), "sha256": sha(top)},
                                          {"path": str((base_dir / "base.toml").resolve()),
                                           "sha256": sha(base_dir / "base.toml")}]
    assert manifest["scenario_sha256"] == load_scenario(top).files_sha256
    # The base changes, the variant does not: the record changes with it.
    write(base_dir, "base.toml", BASE_TEXT.replace("diploma = 1_000", "diploma = 1_100"))
    assert cli.main(args) == 0
    again = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert again["scenario_sha256"] != manifest["scenario_sha256"]
    assert again["scenario_files"][0] == manifest["scenario_files"][0]
    assert again["scenario_files"][1]["sha256"] == sha(base_dir / "base.toml") != manifest["scenario_files"][1]["sha256"]
    capsys.readouterr()


def test_run_json_of_a_single_file_keeps_its_sha256(tmp_path, capsys):
    scenario = SCENARIOS / "utrecht_colour_kitchen.toml"
    out = tmp_path / "out"
    assert cli.main(["run", str(scenario), "--paths", "20", "--seed", "1", "--out", str(out), "--no-plots",
                     "--quiet", "--workers", "1"]) == 0
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert manifest["scenario_sha256"] == sha(scenario)
    assert manifest["scenario_files"] == [{"path": str(scenario.resolve()), "sha256": sha(scenario)}]
    capsys.readouterr()


# =====================================================================================
# the shipped scenarios still load under every new rule
# =====================================================================================
@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_scenarios_load(path):
    contract = load_scenario(path)
    assert contract.files[0] == (str(path), sha(path))
    assert contract.currency in ("EUR", "GBP", "USD")


# =====================================================================================
# siblings: observed-outcome and evidence files are read the same bounded way
# =====================================================================================
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("reader", ["observed", "evidence"])
def test_observed_and_evidence_fifos_are_refused_without_hanging(tmp_path, reader):
    from sibsim.calibration import load_evidence
    from sibsim.observed import load_observed

    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    with time_limit(5), pytest.raises(ScenarioError) as info:
        (load_observed if reader == "observed" else load_evidence)(fifo)
    (line,) = info.value.problems
    assert line.startswith(f"{fifo}: cannot read ") and "not a regular file: a FIFO" in line


@pytest.mark.parametrize("reader", ["observed", "evidence"])
def test_observed_and_evidence_files_are_size_limited(tmp_path, reader):
    from sibsim.calibration import load_evidence
    from sibsim.observed import load_observed

    big = write(tmp_path, "big.toml", b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(ScenarioError) as info:
        (load_observed if reader == "observed" else load_evidence)(big)
    (line,) = info.value.problems
    assert line.startswith(f"{big}: cannot read ") and "larger than 1,000,000 bytes" in line
    nul = str(tmp_path / "a\x00.toml")
    with pytest.raises(ScenarioError) as info:
        (load_observed if reader == "observed" else load_evidence)(nul)
    assert "the name contains a NUL byte" in info.value.problems[0]


@pytest.mark.parametrize("field, old, new, position", [
    ("meta.title", 'title = "The Colour Kitchen SIB', 'title = "The Colour\\u0007Kitchen SIB', 11),
    ("meta.assumptions[0]", 'assumptions = [\n', 'assumptions = [\n  "bell \\u0007 here",\n', 6),
])
def test_free_text_with_a_control_character_is_refused(tmp_path, field, old, new, position):
    # A bell in the title used to pass the loader and then crash the workbook writer after the run.
    text = (SCENARIOS / "utrecht_colour_kitchen.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "bell.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [p for p in info.value.problems if field in p] == [
        f"{path}: {field}: must not contain control characters, got U+0007 at position {position}"]


def test_free_text_may_hold_tabs_and_line_breaks(tmp_path):
    text = (SCENARIOS / "utrecht_colour_kitchen.toml").read_text(encoding="utf-8").replace('title = "The Colour Kitchen SIB', 'title = "The Colour\\tKitchen SIB', 1)
    path = tmp_path / "tab.toml"
    path.write_text(text, encoding="utf-8")
    assert "\t" in load_scenario(path).title
