"""What-ifs from the command line: --set and --scale, validated like the file, recorded everywhere."""

import json

import pytest

from sibsim import cli, load_scenario, simulate
from sibsim.errors import ScenarioError
from sibsim.whatif import load_whatif

from .conftest import SCENARIOS

CK = SCENARIOS / "utrecht_colour_kitchen.toml"
CKG = SCENARIOS / "utrecht_colour_kitchen_guarantee.toml"


def refused(sets=(), scales=(), path=CK) -> str:
    with pytest.raises(ScenarioError) as exc:
        load_whatif(path, sets, scales)
    assert len(exc.value.problems) == 1, exc.value.problems
    return exc.value.problems[0]


def test_set_changes_any_field_and_is_recorded():
    base = load_scenario(CK)
    changed = load_whatif(CK, ["payer.rate_card.diploma=2500", "investors[1].name=\"Fund B\"", "cohorts[11].size=30"])
    assert dict(changed.payer.rate_card)["diploma"] == 2500 and dict(base.payer.rate_card)["diploma"] != 2500
    assert changed.investors[1].name == "Fund B" and changed.cohorts[11].size == 30
    assert changed.command_line_changes == ("--set payer.rate_card.diploma=2500", '--set investors[1].name="Fund B"',
                                 "--set cohorts[11].size=30")
    assert changed.source == base.source and changed.files == base.files  # the file as read, changes apart
    assert load_whatif(CK) == base and load_whatif(CK).command_line_changes == ()
    # a variant: the change applies to the merged document (its base's payer)
    assert dict(load_whatif(CKG, ["payer.rate_card.diploma=2500"]).payer.rate_card)["diploma"] == 2500


def test_a_new_key_in_an_existing_table_is_the_loaders_to_judge():
    line = refused(["payer.rate_kard=1"])
    assert line.startswith(f"{CK} (with --set payer.rate_kard=1): payer.rate_kard: unknown key (allowed: ")


@pytest.mark.parametrize("change, message", [
    ("payer.rate_card.diploma=-5",
     "(with --set payer.rate_card.diploma=-5): payer.rate_card.diploma: must be >= 0, got -5"),
    ("investors[2].commitment=5", ": --set investors[2].commitment=5: investors has 2 items (0 .. 1), not [2]"),
    ("payer.rate_kard.diploma=5", ": --set payer.rate_kard.diploma=5: payer.rate_kard is not in the scenario"),
    ("payer.rate_card.diploma=abc", ": --set payer.rate_card.diploma=abc: abc is not a TOML value (text goes in "
                                    "quotes: payer.rate_card.diploma=\"...\")"),
    ("nonsense", ": --set nonsense: must be FIELD=VALUE"),
    ("payer.rate_card.diploma=", ": --set payer.rate_card.diploma=: must be FIELD=VALUE"),
    ("payer..x=1", ": --set payer..x=1: FIELD must be keys joined by dots"),
    ("payer.name[0]=1", ": --set payer.name[0]=1: payer.name is not an array, so it has no item [0]"),
    ("investors.name=1", ": --set investors.name=1: investors is not a table, so it has no key name"),
    # values no TOML reader should take silently, or that would raise instead of one line
    ("payer.payment_cap=" + "9" * 5000, "is not a TOML value"),
    ("payer.payment_cap=" + "[" * 5000, "is not a TOML value"),
    ("payer.payment_cap=1\nname = 2", ": --set payer.payment_cap=1\\nname = 2: 1\\nname = 2 is not a TOML value"),
    ("payer.name=\"caf\udce9\"", "must be UTF-8 text"),
])
def test_set_refusals_name_the_file_the_change_and_the_rule(change, message):
    line = refused([change])
    assert line.startswith(str(CK)) and message in line, line


def test_a_long_change_is_shortened_in_the_one_line_message():
    line = refused(["payer.payment_cap=" + "9" * 300])
    assert "(with --set payer.payment_cap=" + "9" * 56 + "... (324 characters)): payer.payment_cap: must be <= " in line
    assert len(line) < 400


def test_the_last_item_of_an_array_and_the_largest_valid_factor_are_the_boundaries():
    assert load_whatif(CK, ["investors[1].return_cap=0.08"]).investors[1].return_cap == 0.08
    assert load_whatif(CK, scales=["job_without_diploma=39"]).journey.prior("job_without_diploma").mean == \
        pytest.approx(0.975, rel=1e-15)


def test_scale_multiplies_a_parameters_mean_and_keeps_its_sd():
    base, scaled = load_scenario(CK), load_whatif(CK, scales=["job_without_diploma=0.8"])
    before, after = base.journey.prior("job_without_diploma"), scaled.journey.prior("job_without_diploma")
    assert after.mean == pytest.approx(before.mean * 0.8, rel=1e-15) and after.sd == before.sd
    # The comparison group has its own value in [comparison.parameters]: unchanged ...
    own_value = base.comparison.journey.prior("job_without_diploma")
    assert scaled.comparison.journey.prior("job_without_diploma") == own_value
    # ... unless scaled by its own name.
    own = load_whatif(CK, scales=["comparison.job_without_diploma=1.5"])
    assert own.comparison.journey.prior("job_without_diploma").mean == pytest.approx(
        base.comparison.journey.prior("job_without_diploma").mean * 1.5, rel=1e-15)
    assert own.journey.prior("job_without_diploma") == before
    assert scaled.command_line_changes == ("--scale job_without_diploma=0.8",)
    # A fewer-jobs what-if pays less, on the same seed.
    pay = lambda c: simulate(c, n_paths=600, seed=4, workers=1).summary().loc["expected_outcome_payments", "estimate"]  # noqa: E731
    assert pay(scaled) < pay(base)


@pytest.mark.parametrize("change, message", [
    ("job_without_diploma=0", "FACTOR must be a number > 0, got 0"),
    ("job_without_diploma=-1", "FACTOR must be a number > 0, got -1"),
    ("job_without_diploma=true", "FACTOR must be a number > 0, got true"),
    ("job_start=0.8", "journey.parameters has no parameter job_start (parameters: diploma, dropout"),
    ("treated.job_start=0.8", "PARAMETER is a name of [journey.parameters], or comparison.NAME"),
    # 0.025 x 41 is no probability, and x 40 = 1 leaves no room for the sd: the loader says so, naming the change
    ("job_without_diploma=41", "(with --scale job_without_diploma=41): journey.parameters.job_without_diploma.mean: "
                               "must be <= 1, got 1.025"),
    ("job_without_diploma=40", "(with --scale job_without_diploma=40): journey.parameters.job_without_diploma.sd: "
                               "must be < sqrt(mean*(1-mean)) = 0 for a Beta prior with mean 1, got 0.008"),
])
def test_scale_refusals(change, message):
    line = refused(scales=[change])
    assert line.startswith(str(CK)) and message in line, line


def test_run_records_the_changes_and_the_memo_of_the_run_applies_them_again(tmp_path, capsys):
    out = tmp_path / "run"
    changes = ["--set", "payer.rate_card.diploma=2500", "--scale", "job_without_diploma=0.8"]
    assert cli.main(["run", str(CK), "--paths", "300", "--workers", "1", "--no-plots", "--out", str(out), *changes]) == 0
    assert "changed on the command line: --set payer.rate_card.diploma=2500 --scale job_without_diploma=0.8" in \
        capsys.readouterr().out.splitlines()[0]
    manifest = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert manifest["command_line_changes"] == ["--set payer.rate_card.diploma=2500", "--scale job_without_diploma=0.8"]
    memo = tmp_path / "memo.html"
    # re-simulated with the changes: its summary.csv is reproduced (rerun checks it), and the memo says so
    assert cli.main(["report", str(out), "--out", str(memo)]) == 0
    html = memo.read_text(encoding="utf-8")
    assert "Changed for this memo, not in the scenario file" in html
    assert "<code>--set payer.rate_card.diploma=2500</code>" in html
    # a run directory takes its own changes only
    assert cli.main(["report", str(out), "--out", str(memo), "--set", "payer.rate_card.diploma=1"]) == 2
    assert "drop --set and --scale" in capsys.readouterr().err
    # an edited record is refused, not misread
    manifest["command_line_changes"] = ["rm -rf /"]
    (out / "run.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert cli.main(["report", str(out), "--out", str(tmp_path / "other.html")]) == 2
    assert "command_line_changes: must be a list of '--set FIELD=VALUE'" in capsys.readouterr().err


def test_a_memo_of_a_scenario_shows_how_to_reproduce_it_with_its_changes(tmp_path):
    memo = tmp_path / "memo.html"
    assert cli.main(["report", str(CK), "--paths", "200", "--workers", "1", "--out", str(memo),
                     "--set", 'meta.title="Colour Kitchen, what if"', "--scale", "diploma=0.9"]) == 0
    html = memo.read_text(encoding="utf-8")
    assert "Colour Kitchen, what if" in html
    assert "--set &#x27;meta.title=&quot;Colour Kitchen, what if&quot;&#x27; --scale diploma=0.9 --out memo.html" in html


def test_compare_applies_the_changes_to_every_scenario(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "cmp"
    assert cli.main(["compare", str(CK), str(CKG), "--paths", "200", "--workers", "1", "--out", str(out),
                     "--scale", "job_without_diploma=0.8"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("every scenario changed on the command line: --scale job_without_diploma=0.8")
    # both scenarios were changed: each column is the changed scenario's own run (same seed and paths)
    table = pd.read_csv(out / "compare.csv", index_col=0)
    for path in (CK, CKG):
        alone = simulate(load_whatif(path, scales=["job_without_diploma=0.8"]), n_paths=200, seed=2015, workers=1)
        title = load_scenario(path).title
        assert table.loc["expected_outcome_payments", f"{title}: estimate"] == pytest.approx(
            alone.summary().loc["expected_outcome_payments", "estimate"], rel=1e-12)
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["command_line_changes"] == ["--scale job_without_diploma=0.8"]
