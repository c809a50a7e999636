"""`sibsim report RUN_DIR` on a damaged run directory: one line, never a traceback, no memo."""

import json

import pytest

from sibsim import cli

from .conftest import SCENARIOS

CK = SCENARIOS / "utrecht_colour_kitchen.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ck"
    assert cli.main(["run", str(CK), "--paths", "40", "--out", str(out), "--no-plots", "--quiet",
                     "--workers", "1"]) == 0
    return out


def damaged(run_dir, tmp_path, manifest=None, summary=None):
    copy = tmp_path / "ck"
    copy.mkdir()
    for f in run_dir.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    if manifest is not None:
        data = json.loads((copy / "run.json").read_text())
        data.update(manifest)
        (copy / "run.json").write_text(json.dumps(data))
    if summary is not None:
        if summary == "missing":
            (copy / "summary.csv").unlink()
        else:
            (copy / "summary.csv").write_text(summary)
    return copy


@pytest.mark.parametrize("manifest, summary, expected", [
    ({"scenario_files": 7}, None, "not the manifest of a `sibsim run`"),
    ({"scenario_files": [1]}, None, "not the manifest of a `sibsim run`"),
    ({"n_paths": -5}, None, "n_paths must be a whole number >= 1, got -5"),
    ({"n_paths": 0}, None, "n_paths must be a whole number >= 1, got 0"),
    ({"n_paths": True}, None, "n_paths must be a whole number >= 1, got True"),
    ({"seed_entropy": "-1"}, None, "seed_entropy must be a whole number >= 0, got '-1'"),
    ({"scenario_sha256": 5}, None, "scenario_sha256 must be text, got 5"),
    (None, "missing", "no summary.csv to check the re-created run against"),
    (None, "metric,unit\nexpected_moic,x\n", "summary.csv: not the summary of a `sibsim run`"),
    (None, "metric,estimate,std_error\nexpected_moic,abc,1\n", "summary.csv: not the summary of a `sibsim run`"),
])
def test_a_damaged_run_directory_is_one_line(run_dir, tmp_path, capsys, manifest, summary, expected):
    copy = damaged(run_dir, tmp_path, manifest, summary)
    memo = tmp_path / "memo.html"
    capsys.readouterr()
    assert cli.main(["report", str(copy), "--out", str(memo), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not memo.exists()


def test_an_intact_copy_of_the_run_directory_renders(run_dir, tmp_path, capsys):
    copy = damaged(run_dir, tmp_path)
    assert cli.main(["report", str(copy), "--out", str(tmp_path / "memo.html"), "--workers", "1"]) == 0


def test_a_fifo_as_run_json_is_one_line_not_a_hang(run_dir, tmp_path, capsys):
    import os

    from sibsim.report import load_run
    from sibsim.errors import OutputError

    copy = damaged(run_dir, tmp_path)
    (copy / "run.json").unlink()
    os.mkfifo(copy / "run.json")
    with pytest.raises(OutputError) as info:  # would block in open() without the regular-file check
        load_run(copy, workers=1)
    assert "not the manifest of a `sibsim run` (not a regular file" in str(info.value), info.value
    capsys.readouterr()
    assert cli.main(["report", str(copy), "--out", str(tmp_path / "memo.html")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
