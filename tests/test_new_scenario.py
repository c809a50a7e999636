"""`sibsim new`: a commented scenario template that validates and runs, written safely."""

import tomllib

import pytest

from sibsim import cli, load_scenario, simulate
from sibsim.template import HEADER, scenario_template
from tests.test_trust_outputs import one_line_error


def test_the_template_validates_runs_and_marks_its_placeholders(tmp_path, capsys):
    path = tmp_path / "my_deal.toml"
    assert cli.main(["new", str(path), "--title", 'De "Werkplaats" \\ Utrecht']) == 0
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER) and text == scenario_template('De "Werkplaats" \\ Utrecht')
    assert tomllib.loads(text)["meta"]["title"] == 'De "Werkplaats" \\ Utrecht'
    capsys.readouterr()
    assert cli.main(["validate", str(path)]) == 0
    assert "warning" not in capsys.readouterr().out.lower()  # no unused outcome or parameter either
    contract = load_scenario(path)
    # Every section a deal needs is there, and each placeholder number says so.
    assert len(contract.investors) == 2 and contract.outcomes and contract.costs and len(contract.cohorts) == 2
    assert text.count("ASSUMPTION") >= 8
    summary = simulate(contract, n_paths=400, seed=1, workers=1).summary()
    # A deal with real risk on both sides, not a degenerate one: investors can lose and gain.
    assert 0.05 < summary.loc["probability_of_loss", "estimate"] < 0.6
    assert summary.loc["expected_outcome_payments", "estimate"] > 0


def test_new_never_replaces_a_file_and_with_force_only_its_own_template(tmp_path, capsys):
    path = tmp_path / "deal.toml"
    assert cli.main(["new", str(path)]) == 0
    capsys.readouterr()
    path.write_text(path.read_text(encoding="utf-8").replace("size = 50", "size = 60"), encoding="utf-8")
    # Its own template, filled in by the user: kept without --force ...
    assert cli.main(["new", str(path)]) == 2
    assert one_line_error(capsys) == (f"error: {path}: holds the outputs of 'sibsim new' (a scenario template); "
                                      "choose another file name or pass --force to replace it")
    assert "size = 60" in path.read_text(encoding="utf-8")
    # ... replaced with it.
    assert cli.main(["new", str(path), "--force"]) == 0
    assert "size = 60" not in path.read_text(encoding="utf-8")
    # Any other file: never, not even with --force.
    mine = tmp_path / "mine.toml"
    mine.write_text("x = 1\n", encoding="utf-8")
    assert cli.main(["new", str(mine), "--force"]) == 2
    assert "exists and is not a scenario written by sibsim update or sibsim new" in one_line_error(capsys)
    assert mine.read_text(encoding="utf-8") == "x = 1\n"
    assert cli.main(["new", str(tmp_path / "deal.txt")]) == 2
    assert "must end in .toml" in one_line_error(capsys)
    assert not (tmp_path / "deal.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deal.toml", "mine.toml"]  # no temporary left


@pytest.mark.parametrize("title, rule", [("", "must be a non-empty string, got string ''"),
                                         ("a\x00b", "must not contain control characters, got U+0000 at position 2"),
                                         ("a\x7fb", "must not contain control characters, got U+007F at position 2"),
                                         ("caf\udce9", "must be UTF-8 text")])
def test_a_title_the_loader_refuses_is_one_line_and_nothing_is_written(tmp_path, capsys, title, rule):
    path = tmp_path / "deal.toml"
    assert cli.main(["new", str(path), "--title", title]) == 2
    assert one_line_error(capsys) == f"error: {path} (--title): meta.title: {rule}"
    assert not path.exists() and not list(tmp_path.iterdir())
    assert cli.main(["new", str(path), "--title", "x"]) == 0  # one character: the boundary, written
    assert load_scenario(path).title == "x"


def test_the_loader_refuses_text_that_is_not_utf8_in_any_free_text_field():
    # What a file cannot hold (a lone surrogate: command-line bytes that are not UTF-8) is refused by
    # the loader's free-text rule itself, whichever way it arrives (here the Python API).
    from sibsim.errors import ScenarioError
    from sibsim.scenario import contract_from_dict, parse_toml

    doc = parse_toml(scenario_template(), "t.toml")
    doc["meta"]["description"] = "caf\udce9"
    with pytest.raises(ScenarioError) as exc:
        contract_from_dict(doc, "t.toml")
    assert exc.value.problems == ["t.toml: meta.description: must be UTF-8 text"]
    doc["meta"]["description"] = "café"  # UTF-8 text: the boundary, accepted
    assert contract_from_dict(doc, "t.toml").title == "My Social Impact Bond"
