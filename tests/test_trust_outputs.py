"""Trust: no data lost.  One guard for every file and directory a command writes; workers die with
their parent; staging of killed runs is cleaned; I/O failures are one line; memory is estimated first."""

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from sibsim import cli, load_scenario, output, simulate, simulation
from sibsim.errors import InsufficientMemoryError, OutputError

from .conftest import ROOT, SCENARIOS

CK = SCENARIOS / "utrecht_colour_kitchen.toml"
GUARANTEE = SCENARIOS / "utrecht_colour_kitchen_guarantee.toml"  # extends CK


def run(*args):
    return cli.main([str(a) for a in args])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def ck(tmp_path):
    """A copy of the Colour Kitchen scenario and its guarantee variant (which extends it) in tmp_path."""
    shutil.copy(CK, tmp_path / CK.name)
    shutil.copy(GUARANTEE, tmp_path / GUARANTEE.name)
    return tmp_path / CK.name


def quick_run(scenario, out, *extra):
    return run("run", scenario, "--paths", 30, "--seed", 1, "--out", out, "--no-plots", "--quiet",
               "--workers", 1, *extra)


# --- 1. --force replaces only what sibsim wrote -----------------------------------------------------
def test_force_never_replaces_a_folder_sibsim_did_not_write(ck, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    shutil.copy(ck, mine / "scenario.toml")
    assert quick_run(ck, mine, "--force") == 2
    line = one_line_error(capsys)
    assert line == (f"error: {mine}: not a sibsim output directory (no sibsim run.json); choose another --out "
                    "(--force replaces only what sibsim wrote)")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "scenario.toml"]
    # A run.json that sibsim did not write does not make the folder sibsim's either.
    (mine / "run.json").write_text('{"name": "my notes"}')
    assert quick_run(ck, mine, "--force") == 2
    assert "not a sibsim output directory" in one_line_error(capsys)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_force_replaces_a_sibsim_output_of_another_scenario(ck, tmp_path, capsys):
    out = tmp_path / "out"
    assert quick_run(ck, out) == 0
    other = tmp_path / "other.toml"
    shutil.copy(ck, other)
    assert quick_run(other, out) == 2
    assert one_line_error(capsys) == (f"error: {out}: holds the outputs of 'sibsim run' for another scenario "
                                      f"({_shown(ck)}); choose another --out or pass --force to replace it")
    assert quick_run(other, out, "--force") == 0
    assert json.loads((out / "run.json").read_text())["scenarios"] == [str(other.resolve())]


def test_a_file_or_a_link_is_not_an_output_folder(ck, tmp_path, capsys):
    memo = tmp_path / "memo.html"
    assert run("report", ck, "--out", memo, "--paths", 20, "--workers", 1) == 0
    capsys.readouterr()
    assert quick_run(ck, memo, "--force") == 2
    assert one_line_error(capsys) == f"error: {memo}: exists and is not a directory; choose another --out"
    real = tmp_path / "real"
    assert quick_run(ck, real) == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    assert quick_run(ck, link, "--force") == 2
    assert one_line_error(capsys) == f"error: {link}: is a symbolic link; choose another --out (a real folder)"
    assert link.is_symlink() and memo.read_text().startswith("<!DOCTYPE html>")


def test_an_empty_folder_may_be_written(ck, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert quick_run(ck, empty) == 0
    assert (empty / "run.json").exists()


def test_force_never_replaces_a_sibsim_output_holding_an_input(ck, tmp_path, capsys):
    out = tmp_path / "out"
    assert quick_run(ck, out) == 0
    inside = out / "scenario.toml"
    shutil.copy(ck, inside)
    assert quick_run(inside, out, "--force") == 2
    assert one_line_error(capsys) == (f"error: {out}: holds an input of 'sibsim run' ({_shown(inside)}); "
                                      "choose another --out, e.g. a new folder")
    assert inside.exists()


def _shown(path):
    return output._shown(Path(path).resolve())


# --- 2. compare and noise replace only their own outputs ------------------------------------------
def test_compare_does_not_replace_a_run_output_without_force(ck, tmp_path, capsys):
    out = tmp_path / "out"
    assert quick_run(ck, out) == 0
    before = (out / "paths.csv").read_bytes()
    variant = tmp_path / GUARANTEE.name
    assert run("compare", ck, variant, "--paths", 30, "--workers", 1, "--out", out) == 2
    assert one_line_error(capsys).endswith(
        f"{out}: holds the outputs of another command ('sibsim run' for {_shown(ck)}); "
        "choose another --out or pass --force to replace it")
    assert (out / "paths.csv").read_bytes() == before
    # Its own output (same scenarios, any order) is replaced by a re-run; another's with --force.
    assert run("compare", ck, variant, "--paths", 30, "--workers", 1, "--out", out, "--force") == 0
    assert run("compare", variant, ck, "--paths", 40, "--workers", 1, "--out", out) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["command"] == "compare" and manifest["n_paths"] == 40
    assert set(manifest["scenarios"]) == {str(ck.resolve()), str(variant.resolve())}
    assert run("compare", ck, ck, "--paths", 30, "--workers", 1, "--out", out) == 2  # other scenarios
    assert "for another scenario" in one_line_error(capsys)


def test_noise_does_not_replace_a_run_output_without_force(ck, tmp_path, capsys):
    out = tmp_path / "out"
    assert quick_run(ck, out) == 0
    assert run("noise", ck, "--paths", 20, "--workers", 1, "--out", out) == 2
    assert "holds the outputs of another command ('sibsim run'" in one_line_error(capsys)
    assert (out / "paths.csv").exists()
    assert run("noise", ck, "--paths", 20, "--workers", 1, "--out", out, "--force") == 0
    assert run("noise", ck, "--paths", 20, "--workers", 1, "--out", out) == 0  # a re-run of its own
    assert json.loads((out / "run.json").read_text())["command"] == "noise"


def outputs_of_every_command(ck, tmp_path, *run_options) -> dict:
    """Run every command that writes an output folder on Colour Kitchen; command -> its folder."""
    observed = SCENARIOS / "observed" / "utrecht_colour_kitchen_example.toml"
    commands = {
        "run": ["run", ck, "--paths", 20, *run_options, "--quiet", "--workers", 1],
        "settle": ["settle", ck, observed],
        "compare": ["compare", ck, tmp_path / GUARANTEE.name, "--paths", 20, "--workers", 1],
        "noise": ["noise", ck, "--paths", 20, "--workers", 1],
        "sensitivity": ["sensitivity", ck, "--paths", 20, "--sobol-base", 8],
    }
    folders = {}
    for command, argv in commands.items():
        folders[command] = out = tmp_path / f"out_{command}"
        assert run(*argv, "--out", out) == 0, command
    return folders


def test_every_manifest_records_command_and_scenarios(ck, tmp_path, capsys):
    for command, out in outputs_of_every_command(ck, tmp_path, "--no-plots").items():
        manifest = json.loads((out / "run.json").read_text())
        assert manifest["command"] == command
        assert str(ck.resolve()) in manifest["scenarios"]
    assert output.owner(tmp_path / "out_settle", "dir").command == "settle"


def test_outputs_of_an_older_sibsim_are_recognised(ck, tmp_path, capsys):
    """run.json of 0.1.0 named no command: a run (or compare, by its list of scenarios) is still known."""
    out = tmp_path / "old"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"sibsim_version": "0.1.0", "scenario_path": str(ck.resolve())}))
    (out / "paths.csv").write_text("path\n")
    assert run("noise", ck, "--paths", 20, "--workers", 1, "--out", out) == 2
    assert "another command ('sibsim run'" in one_line_error(capsys)
    assert quick_run(ck, out) == 0  # the same command and scenario: replaced
    (out / "run.json").write_text(json.dumps({"sibsim_version": "0.1.0", "command": "run"}))
    assert quick_run(ck, out) == 2
    line = one_line_error(capsys)
    assert "None" not in line and "for another scenario (unknown)" in line


# --- 3. never an input; only sibsim's own files; the right format ---------------------------------
def _evidence():
    return next((SCENARIOS / "evidence").glob("*.toml"))


def test_update_never_overwrites_its_scenario_or_a_base_it_extends(ck, tmp_path, capsys, monkeypatch):
    variant = tmp_path / GUARANTEE.name
    evidence = _evidence()
    for target in (variant, ck, evidence):  # the scenario, the base it extends, the evidence
        before = target.read_bytes()
        assert run("update", variant, evidence, "--out", target, "--force", "--paths", 20) == 2
        line = one_line_error(capsys)
        assert line == (f"error: {target}: is an input of 'sibsim update' (a scenario, a base it extends, "
                        "or a file it reads); choose another --out")
        assert target.read_bytes() == before
    # The same file named another way (relative, through ..) is still the input.
    monkeypatch.chdir(tmp_path)
    assert run("update", variant, evidence, "--out", f"../{tmp_path.name}/{ck.name}", "--force") == 2
    assert "is an input of 'sibsim update'" in one_line_error(capsys)


def test_update_replaces_only_a_scenario_sibsim_update_wrote(ck, tmp_path, capsys):
    evidence = _evidence()
    out = tmp_path / "posterior.toml"
    assert run("update", ck, evidence, "--out", out, "--paths", 20) == 0
    assert out.read_text().startswith(output.UPDATE_HEADER)
    assert output.owner(out, "toml") == output.Owner("update", (str(ck.resolve()),))
    capsys.readouterr()
    # An updated scenario may have been edited by hand: even a re-run replaces it only with --force.
    variant = tmp_path / GUARANTEE.name
    for scenario in (ck, variant):
        assert run("update", scenario, evidence, "--out", out, "--paths", 20) == 2
        assert one_line_error(capsys) == (f"error: {out}: holds the outputs of 'sibsim update' for {_shown(ck)}; "
                                          "choose another --out or pass --force to replace it")
    assert run("update", variant, evidence, "--out", out, "--paths", 20, "--force") == 0
    assert output.owner(out, "toml").scenarios == (str(variant.resolve()),)
    mine = tmp_path / "mine.toml"
    mine.write_text("# my notes\n")
    assert run("update", ck, evidence, "--out", mine, "--paths", 20, "--force") == 2
    assert one_line_error(capsys) == (f"error: {mine}: exists and is not a scenario written by sibsim update; "
                                      "choose another --out (--force replaces only what sibsim wrote)")
    assert mine.read_text() == "# my notes\n"
    assert run("update", ck, evidence, "--out", tmp_path / "posterior.txt", "--paths", 20) == 2
    assert "--out must end in .toml" in one_line_error(capsys)


openpyxl_required = pytest.mark.skipif(__import__("importlib").util.find_spec("openpyxl") is None,
                                       reason="Excel export needs: pip install 'sibsim[excel]'")


@openpyxl_required
def test_excel_is_never_an_input_a_directory_or_another_format(ck, tmp_path, capsys, monkeypatch):
    simulated = []
    monkeypatch.setattr(simulation, "simulate", lambda *a, **k: simulated.append(1))  # refusals come first
    before = ck.read_bytes()
    cases = {
        ck: f"{ck}: is an input of 'sibsim run' (a scenario, a base it extends, or a file it reads); "
            "choose another --excel",
        tmp_path: f"{tmp_path}: is a directory; --excel needs a file name ending in .xlsx",
        tmp_path / "x.csv": f"{tmp_path / 'x.csv'}: --excel must end in .xlsx (sibsim writes that format only), "
                            "got .csv",
        tmp_path / "o.xlsx": f"{tmp_path / 'o.xlsx'}: is also the --out of this command; choose another --excel",
    }
    for target, message in cases.items():
        assert quick_run(ck, tmp_path / "o.xlsx", "--excel", target, "--force") == 2
        assert one_line_error(capsys) == f"error: {message}"
    assert ck.read_bytes() == before and not simulated and not (tmp_path / "x.csv").exists()


@openpyxl_required
def test_excel_replaces_only_a_workbook_sibsim_wrote(ck, tmp_path, capsys):
    import openpyxl

    book = tmp_path / "run.xlsx"
    assert quick_run(ck, tmp_path / "out", "--excel", book) == 0
    with zipfile.ZipFile(book) as z:
        assert b"<dc:creator>sibsim</dc:creator>" in z.read("docProps/core.xml")
    assert output.owner(book, "excel") == output.Owner("run", (str(ck.resolve()),))
    assert quick_run(ck, tmp_path / "out", "--excel", book) == 0  # its own: replaced
    theirs = tmp_path / "budget.xlsx"
    wb = openpyxl.Workbook()
    wb.active["A1"] = "my budget"
    wb.save(theirs)
    before = theirs.read_bytes()
    assert quick_run(ck, tmp_path / "out", "--excel", theirs, "--force") == 2
    assert one_line_error(capsys) == (f"error: {theirs}: exists and is not a sibsim workbook; choose another "
                                      "--excel (--force replaces only what sibsim wrote)")
    assert theirs.read_bytes() == before
    with pytest.raises(OutputError, match=r"must end in \.xlsx"):
        from sibsim.excel import write_excel

        write_excel(simulate(load_scenario(ck), n_paths=20, seed=1, workers=1), tmp_path / "x.csv")


def test_report_refuses_another_format_and_files_it_did_not_write(ck, tmp_path, capsys):
    pdf = tmp_path / "memo.pdf"
    assert run("report", ck, "--out", pdf, "--paths", 20, "--workers", 1) == 2
    assert one_line_error(capsys) == (f"error: {pdf}: --out must end in .html or .htm (sibsim writes that format "
                                      "only), got .pdf")
    assert not pdf.exists()
    notes = tmp_path / "notes.htm"
    notes.write_text("<p>mine</p>")
    assert run("report", ck, "--out", notes, "--paths", 20, "--workers", 1, "--force") == 2
    assert "exists and is not a sibsim memo" in one_line_error(capsys)
    assert notes.read_text() == "<p>mine</p>"
    memo = tmp_path / "memo.HTM"  # upper case is the same format
    assert run("report", ck, "--out", memo, "--paths", 20, "--workers", 1) == 0
    assert output.owner(memo, "memo") == output.Owner("report", (str(ck.resolve()),))


# --- 4. workers die with the parent; staging of dead runs is removed ------------------------------
def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid``, from /proc/*/stat."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited: it waits only to be reaped


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find the worker processes")
def test_workers_die_when_the_main_process_is_killed(tmp_path):
    script = (
        "import sys\n"
        "from sibsim import load_scenario, simulate\n"
        "def progress(done, total):\n"
        "    print('block', flush=True)\n"
        f"simulate(load_scenario({str(CK)!r}), n_paths=5_000_000, seed=1, workers=2, progress=progress)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    workers = []
    try:
        assert proc.stdout.readline().strip() == "block"  # the workers are running blocks
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = [w for w in workers if _running(w)]
        assert not alive, f"worker processes {alive} outlived their parent"
    finally:
        proc.kill()
        for w in workers:  # never leave them running, even when the test fails
            if _running(w):
                os.kill(w, signal.SIGKILL)


def test_staging_of_a_killed_run_is_removed_by_the_next_run(ck, tmp_path):
    out = tmp_path / "out"
    script = (
        "import time, sys\n"
        "from pathlib import Path\n"
        "from sibsim.output import write_outputs\n"
        "def stall(path):\n"
        "    print('staging', flush=True)\n"
        "    time.sleep(60)\n"
        f"write_outputs(Path({str(out)!r}), {{'a.csv': lambda p: p.write_text('a'), 'b.csv': stall}}, {{}})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "staging"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]
    assert len(stale) == 1 and (stale[0] / "a.csv").exists()
    assert f".out.partial-{proc.pid}-{output.HOST_TAG}-" in stale[0].name  # the owner PID and machine
    # Staging of a live process, of another machine (its PIDs mean nothing here), and names sibsim
    # does not use, are left alone.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".out.partial-{sleeper.pid}-{output.HOST_TAG}-abc123"
        live.mkdir()
        elsewhere = "0" * 8 if output.HOST_TAG != "0" * 8 else "1" * 8
        foreign = [tmp_path / ".out.partial-mine", tmp_path / f".out.partial-1x-{output.HOST_TAG}-abc",
                   tmp_path / f".other.partial-{proc.pid}-{output.HOST_TAG}-a",
                   tmp_path / f".out.partial-{proc.pid}-{elsewhere}-abc",
                   tmp_path / f".out.old-{proc.pid}-{elsewhere}-0a"]
        for path in foreign:
            path.mkdir()
        assert quick_run(ck, out) == 0
        assert not stale[0].exists(), "staging of the killed run left behind"
        assert live.exists() and all(p.exists() for p in foreign)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_partial_file_of_a_killed_writer_is_removed(tmp_path):
    memo = tmp_path / "memo.html"
    dead = _dead_pid()
    partial = tmp_path / f".memo.html.{dead}-{output.HOST_TAG}-0123abcd.partial.html"
    old = tmp_path / f".memo.html.old-{dead}-{output.HOST_TAG}-0123abcd"  # an .old-* of a killed swap
    old.mkdir()
    partial.write_text("half a memo")
    memo.write_text("<html>before</html>")  # old folders are removed only when the output exists
    output.write_text_atomic(memo, "<html></html>")
    assert not partial.exists() and not old.exists() and memo.read_text() == "<html></html>"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- 5. the destination is checked before simulating; I/O failures are one line -------------------
@pytest.mark.parametrize("out", [".", "..", "sub/.."])
def test_out_is_never_the_working_directory_or_an_ancestor(ck, tmp_path, capsys, monkeypatch, out):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine")
    monkeypatch.chdir(work)
    assert quick_run(ck, out, "--force") == 2
    assert one_line_error(capsys) == (f"error: {out}: is the working directory or holds it; choose another --out, "
                                      "e.g. a new folder such as out/run")
    assert (work / "keep.txt").read_text() == "mine"
    assert quick_run(ck, "sub") == 0  # a new folder inside it is fine


def test_out_holding_the_scenario_is_refused(ck, tmp_path, capsys):
    assert quick_run(ck, tmp_path, "--force") == 2
    assert f"{tmp_path}: holds an input of 'sibsim run'" in one_line_error(capsys)
    assert ck.exists()


def _read_only_dir(tmp_path) -> Path:
    """A directory this process cannot write into: chmod 0555, or (as root, whom chmod does not stop) /sys."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    sysfs = Path("/sys")
    try:
        fd = os.open(sysfs / ".sibsim-probe", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except OSError:
        return sysfs
    os.close(fd)
    os.unlink(sysfs / ".sibsim-probe")
    pytest.skip("running as root, where chmod does not stop writes, and /sys is writable here: "
                "no directory to test that cannot be written")


def test_unwritable_destination_is_refused_before_simulating(ck, tmp_path, capsys, monkeypatch):
    ro = _read_only_dir(tmp_path)
    simulated = []
    monkeypatch.setattr(simulation, "simulate", lambda *a, **k: simulated.append(1))
    try:
        for argv in (["run", ck, "--paths", 20, "--out", ro / "out"],
                     ["report", ck, "--paths", 20, "--out", ro / "memo.html"],
                     ["update", ck, _evidence(), "--paths", 20, "--out", ro / "post.toml"]):
            assert run(*argv) == 2
            line = one_line_error(capsys)
            assert line.startswith(f"error: {argv[-1]}: cannot write (") and line.endswith("); choose another --out")
        assert not simulated
    finally:
        if ro != Path("/sys"):
            ro.chmod(0o755)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_probe_failure_is_one_line_and_nothing_runs(ck, tmp_path, capsys, monkeypatch, code):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    simulated = []
    monkeypatch.setattr(simulation, "simulate", lambda *a, **k: simulated.append(1))
    monkeypatch.setattr(output.tempfile, "mkstemp", refuse)
    assert quick_run(ck, tmp_path / "out") == 2
    assert one_line_error(capsys) == (f"error: {tmp_path / 'out'}: cannot write ({os.strerror(code)}); "
                                      "choose another --out")
    assert not simulated


def test_disk_full_while_writing_is_one_line_and_keeps_the_previous_output(ck, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert quick_run(ck, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(self, path=None, *args, **kwargs):
        if path is not None and Path(path).name == "cashflows.csv":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return original(self, path, *args, **kwargs)

    original = pd.DataFrame.to_csv
    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    assert run("run", ck, "--paths", 40, "--seed", 2, "--out", out, "--no-plots", "--workers", 1) == 2
    assert one_line_error(capsys) == (f"error: {out}: cannot write (No space left on device); "
                                      "the previous output is kept")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    fresh = tmp_path / "fresh"
    assert run("run", ck, "--paths", 40, "--out", fresh, "--no-plots", "--workers", 1) == 2
    assert one_line_error(capsys) == f"error: {fresh}: cannot write (No space left on device); nothing was written"
    assert not fresh.exists()


def test_any_other_os_error_is_one_line(ck, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(ck))

    monkeypatch.setattr(cli, "load_with_changes", broken)
    assert quick_run(ck, tmp_path / "out") == 2
    assert one_line_error(capsys) == f"error: {ck}: Permission denied"


def test_out_below_a_file_is_one_line(ck, tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    assert quick_run(ck, blocker / "out") == 2
    assert one_line_error(capsys) == (f"error: {blocker / 'out'}: cannot write ({blocker} is not a directory); "
                                      "choose another --out")
    assert blocker.read_text() == "mine"


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc/self/fd to name the files flushed")
def test_every_file_is_on_disk_before_the_swap(tmp_path, monkeypatch):
    """A crash right after the rename must not leave empty files: each one is fsynced first."""
    flushed, swapped = [], []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src, dst):
        swapped.append(len(flushed))
        real_replace(src, dst)

    monkeypatch.setattr(output.os, "fsync", fsync)
    monkeypatch.setattr(output.os, "replace", replace)
    out = tmp_path / "out"
    output.write_outputs(out, {"a.csv": lambda p: p.write_text("a"), "b.csv": lambda p: p.write_text("b")},
                         {"sibsim_version": "test"})
    before_swap = {Path(p).name for p in flushed[:swapped[-1]]}
    assert {"a.csv", "b.csv", "run.json"} <= before_swap
    memo = tmp_path / "memo.html"
    flushed.clear()
    swapped.clear()
    # The single-file writer flushes its temporary file before renaming it too.
    with output.atomic_path(memo) as tmp:
        tmp.write_text("<html></html>")
    assert any(Path(p).name == tmp.name for p in flushed[:swapped[-1]])


# --- 6. concurrent writers -----------------------------------------------------------------------
def test_concurrent_writers_each_end_with_a_complete_output(tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_replace = os.replace

    def slow_replace(src, dst):  # widen the window in which two swaps could interleave
        time.sleep(0.05)
        real_replace(src, dst)

    monkeypatch.setattr(output.os, "replace", slow_replace)
    dest = output.destination(out, "dir", "run", [CK])
    start = threading.Barrier(4)
    errors = []

    def writer(tag):
        try:
            start.wait()
            files = {f"{n}.csv": (lambda p, n=n: p.write_text(f"{tag}\n")) for n in "abc"}
            output.write_outputs(out, files, {"sibsim_version": "test", "tag": tag}, dest)
        except BaseException as exc:  # noqa: BLE001 - every failure is reported
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    tag = json.loads((out / "run.json").read_text())["tag"]
    assert {(out / f"{n}.csv").read_text() for n in "abc"} == {f"{tag}\n"}  # one writer's complete output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "staging or .old-* left behind"


def test_concurrent_command_line_runs_each_end_complete(ck, tmp_path):
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-m", "sibsim.cli", "run", str(ck), "--paths", "300",
                               "--seed", str(seed), "--out", str(out), "--no-plots", "--quiet", "--workers", "1"],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
             for seed in (1, 2)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    assert results == [(0, ""), (0, "")]
    seed = json.loads((out / "run.json").read_text())["seed"]
    again = simulate(load_scenario(ck), n_paths=300, seed=seed, workers=1).paths["investor_moic"]
    assert pd.read_csv(out / "paths.csv")["investor_moic"].to_numpy() == pytest.approx(again.to_numpy(), rel=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_writer_that_lost_the_race_to_another_scenario_refuses(tmp_path):
    out = tmp_path / "out"
    late = output.destination(out, "dir", "run", [GUARANTEE])  # checked while out did not exist
    first = output.destination(out, "dir", "run", [CK])
    output.write_outputs(out, {"a.csv": lambda p: p.write_text("ck")}, {"sibsim_version": "test"}, first)
    with pytest.raises(OutputError, match=r"holds the outputs of 'sibsim run' for another scenario"):
        output.write_outputs(out, {"a.csv": lambda p: p.write_text("g")}, {"sibsim_version": "test"}, late)
    assert (out / "a.csv").read_text() == "ck"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- 20. memory estimated before a run; progress with rate and time left --------------------------
def test_memory_is_refused_above_what_is_available_at_the_exact_boundary(colour_kitchen, monkeypatch):
    needed = simulation.estimate_memory(colour_kitchen, 50, workers=1)["needed"]
    monkeypatch.setattr(simulation, "available_memory", lambda: int(needed) + 1)
    assert simulate(colour_kitchen, n_paths=50, seed=1, workers=1).n_paths == 50
    monkeypatch.setattr(simulation, "available_memory", lambda: int(needed))
    assert simulate(colour_kitchen, n_paths=50, seed=1, workers=1).n_paths == 50  # exactly enough
    monkeypatch.setattr(simulation, "available_memory", lambda: int(needed) - 1)
    with pytest.raises(InsufficientMemoryError, match="50 paths need about"):
        simulate(colour_kitchen, n_paths=50, seed=1, workers=1)


def test_the_largest_run_that_fits_is_named_exactly(colour_kitchen, monkeypatch):
    available = 22e9
    monkeypatch.setattr(simulation, "available_memory", lambda: int(available))
    with pytest.raises(InsufficientMemoryError) as exc:
        simulation.check_memory(colour_kitchen, 10**9, workers=1)
    fits = exc.value.max_paths
    assert simulation.estimate_memory(colour_kitchen, fits, workers=1)["needed"] <= available
    assert simulation.estimate_memory(colour_kitchen, fits + 1, workers=1)["needed"] > available
    simulation.check_memory(colour_kitchen, fits, workers=1)  # no exception
    with pytest.raises(InsufficientMemoryError):
        simulation.check_memory(colour_kitchen, fits + 1, workers=1)


def test_the_command_line_refuses_a_billion_paths_in_one_line(ck, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(simulation, "available_memory", lambda: 22 * 10**9)
    for paths in (10**9, 10**12):
        started = time.perf_counter()
        assert run("run", ck, "--paths", paths, "--out", tmp_path / "big") == 2
        assert time.perf_counter() - started < 5  # refused up front, nothing simulated
        line = one_line_error(capsys)
        assert line.startswith(f"error: {paths:,} paths need about ") and "(this machine has 22 GB available); " \
            "use at most " in line and line.endswith(" paths or a machine with more memory")
    assert not (tmp_path / "big").exists()
    assert run("compare", ck, ck, "--paths", 10**9) == 2
    assert "1,000,000,000 paths need about" in one_line_error(capsys)


def test_estimate_matches_about_210_bytes_kept_per_path(colour_kitchen):
    one, two = (simulation.estimate_memory(colour_kitchen, n, workers=1)["needed"] for n in (10**8, 2 * 10**8))
    per_path = simulation.estimate_memory(colour_kitchen, 10**8, workers=1)["per_path"]
    assert two - one == per_path * 10**8 and 300 <= per_path <= 500  # with the budget years' 120 bytes
    res = simulate(colour_kitchen, n_paths=2000, seed=1, workers=1)
    kept = (res.paths.memory_usage(index=False).sum() + sum(v.nbytes for v in res.outcome_shares.values())) / 2000
    assert kept <= simulation.BYTES_PER_PATH
    budget = sum(v.nbytes for v in res.budget_paths.values()) / 2000  # the budget years' sums, counted apart
    assert budget == simulation.estimate_memory(colour_kitchen, 2000, workers=1)["per_path"] - simulation.BYTES_PER_PATH


def test_block_working_set_estimate_covers_its_measured_peak():
    import tracemalloc

    import numpy as np

    for path in sorted(SCENARIOS.glob("*.toml")):
        contract = load_scenario(path)
        size = simulation.block_size(contract)
        # The compiled kernel is compiled (or loaded from its cache) once per process: that one-off cost
        # is in WORKER_BYTES and COMMAND_BYTES, not in every block's working set.
        simulation._run_block(contract, np.random.SeedSequence(1), 2, False)
        tracemalloc.start()
        try:
            simulation._run_block(contract, np.random.SeedSequence(1), size, True)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        estimate = simulation.block_working_set(contract)
        assert peak <= estimate <= 3 * peak, (path.name, peak, estimate)


def test_available_memory_reads_meminfo():
    available = simulation.available_memory()
    assert available is None or available > 0


def test_progress_shows_rate_and_time_left():
    clock = iter([100.0, 102.0, 110.0])
    stream = io.StringIO()
    bar = cli._Progress(stream, clock=lambda: next(clock))
    bar(2_000, 10_000)  # 2 s for 2,000 paths: 1,000 paths/s, 8 s left
    assert "2,000/10,000 paths 1,000 paths/s 2 s elapsed, 8 s left" in stream.getvalue()
    bar(10_000, 10_000)
    assert stream.getvalue().endswith("done\x1b[K\n")
    assert cli._duration(59.4) == "59 s" and cli._duration(60) == "1 min 00 s" and cli._duration(3600) == "1 h 00 min"


# --- 21. a re-run keeps the user's files; only sibsim's manifests count; bounded owner reads -------
def test_a_rerun_refuses_a_file_sibsim_did_not_write_in_its_folder(ck, tmp_path, capsys):
    out = tmp_path / "r1"
    assert quick_run(ck, out) == 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["files"] == sorted(p.name for p in out.iterdir())  # every name it wrote, run.json too
    (out / "my_notes.txt").write_text("notes")
    for extra in ((), ("--force",)):  # --force replaces what sibsim wrote, never the user's files
        assert quick_run(ck, out, *extra) == 2
        assert one_line_error(capsys) == (f"error: {out}: holds my_notes.txt, which sibsim did not write; "
                                          "move it or choose another --out")
    assert (out / "my_notes.txt").read_text() == "notes"
    (out / "my_notes.txt").unlink()
    assert quick_run(ck, out) == 0


def test_a_memo_written_into_a_run_folder_is_never_deleted_by_a_rerun(ck, tmp_path, capsys):
    out = tmp_path / "r3"
    assert quick_run(ck, out) == 0
    memo = out / "memo.html"
    assert run("report", out, "--out", memo, "--workers", 1) == 0
    capsys.readouterr()
    assert quick_run(ck, out) == 2
    assert one_line_error(capsys) == (f"error: {out}: holds memo.html, which sibsim did not write; "
                                      "move it or choose another --out")
    assert memo.exists()


def test_a_manifest_without_a_file_list_accepts_only_what_that_command_writes(ck, tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"sibsim_version": "0.1.0", "scenario_path": str(ck.resolve())}))
    for name in ("summary.csv", "paths.csv", "outflow.png"):
        (out / name).write_text("x\n")
    (out / "notes.txt").write_text("mine")
    (out / "budget.xlsx").write_text("mine")
    assert quick_run(ck, out, "--force") == 2
    assert one_line_error(capsys) == (f"error: {out}: holds budget.xlsx (and 1 more), which sibsim did not write; "
                                      "move them or choose another --out")
    (out / "notes.txt").unlink()
    (out / "budget.xlsx").unlink()
    assert quick_run(ck, out) == 0


def test_every_command_writes_only_names_its_legacy_file_set_knows(ck, tmp_path):
    """What a manifest without a file list accepts covers everything each command writes today."""
    for command, out in outputs_of_every_command(ck, tmp_path).items():  # run with its plots
        found = output.owner(out, "dir")
        assert all(output._legacy_name(command, p.name) for p in out.iterdir()), command
        assert found.files == tuple(sorted(p.name for p in out.iterdir()))


@pytest.mark.parametrize("manifest", [{"scenarios": ["x"]}, {"scenario_path": "x.toml"},
                                      {"sibsim_version": "0.1.0"}, {"sibsim_version": 1, "scenario_path": "x"},
                                      {"sibsim_version": "0.1.0", "command": "mine", "scenarios": ["x"]},
                                      {"sibsim_version": "0.1.0", "command": "run", "files": "all"}])
def test_a_run_json_sibsim_did_not_write_does_not_make_a_folder_sibsims(ck, tmp_path, capsys, manifest):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(manifest))
    (folder / "precious.txt").write_text("keep me")
    assert output.owner(folder, "dir") is None
    assert quick_run(ck, folder, "--force") == 2
    assert one_line_error(capsys) == (f"error: {folder}: not a sibsim output directory (no sibsim run.json); "
                                      "choose another --out (--force replaces only what sibsim wrote)")
    assert (folder / "precious.txt").read_text() == "keep me"


from tests.test_fuzz_scenarios import time_limit  # noqa: E402 - fail, never hang: a FIFO blocks open()

fifo_required = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


@fifo_required
def test_a_fifo_as_updated_scenario_or_memo_is_refused_without_hanging(ck, tmp_path, capsys):
    cases = {"posterior.toml": ["update", ck, _evidence(), "--paths", 20],
             "memo.html": ["report", ck, "--paths", 20, "--workers", 1]}
    for name, argv in cases.items():
        fifo = tmp_path / name
        os.mkfifo(fifo)
        with time_limit(5):
            assert run(*argv, "--out", fifo, "--force") == 2
            assert one_line_error(capsys) == f"error: {fifo}: not a regular file: a FIFO; choose another --out"
            assert output.owner(fifo, "memo" if name.endswith(".html") else "toml") is None


@fifo_required
@openpyxl_required
def test_a_fifo_as_workbook_or_manifest_is_refused_without_hanging(ck, tmp_path, capsys):
    book = tmp_path / "book.xlsx"
    os.mkfifo(book)
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "run.json")
    with time_limit(5):
        assert quick_run(ck, tmp_path / "new", "--excel", book, "--force") == 2
        assert one_line_error(capsys) == f"error: {book}: not a regular file: a FIFO; choose another --excel"
        assert quick_run(ck, out, "--force") == 2
        assert "not a sibsim output directory" in one_line_error(capsys)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_a_memo_linked_to_a_device_is_refused_not_read(ck, tmp_path, capsys):
    memo = tmp_path / "memo.html"
    memo.symlink_to("/dev/zero")
    with time_limit(5):
        assert output.owner(memo, "memo") is None
        assert run("report", ck, "--out", memo, "--paths", 20, "--workers", 1, "--force") == 2
    assert one_line_error(capsys) == f"error: {memo}: not a regular file: a character device; choose another --out"


def test_owner_readers_read_a_bounded_prefix(tmp_path, monkeypatch):
    memo = tmp_path / "memo.html"
    memo.write_text(f'<meta name="{output.MEMO_META}" content="s.toml">' + "x" * 1_000_000)
    asked = []
    real_read = os.read
    monkeypatch.setattr(output.os, "read", lambda fd, n: asked.append(n) or real_read(fd, n))
    assert output.owner(memo, "memo") == output.Owner("report", ("s.toml",))
    assert asked and sum(asked) <= 64 * 1024


@openpyxl_required
def test_a_workbook_inside_the_output_folder_is_refused(ck, tmp_path, capsys):
    out = tmp_path / "r1"
    book = out / "book.xlsx"
    assert quick_run(ck, out, "--excel", book) == 2
    assert one_line_error(capsys) == (f"error: {book}: is inside {out}, the --out folder of this command, which a "
                                      "re-run replaces; choose another --excel")
    assert not out.exists()


def test_an_output_lost_between_the_two_renames_of_a_swap_is_put_back(ck, tmp_path, capsys):
    out = tmp_path / "out"
    assert quick_run(ck, out) == 0
    before = (out / "paths.csv").read_bytes()
    old = tmp_path / f".out.old-{_dead_pid()}-{output.HOST_TAG}-0a1b2c3d"
    os.rename(out, old)  # a crash after the first rename of _swap: the old folder is the only copy
    other = tmp_path / "other.toml"
    shutil.copy(ck, other)
    assert quick_run(other, out) == 2  # put back first, so the guard sees it: another scenario's output
    assert "for another scenario" in one_line_error(capsys)
    assert (out / "paths.csv").read_bytes() == before and not old.exists()


def test_old_folders_are_kept_while_the_output_is_missing(tmp_path):
    out = tmp_path / "out"
    dead, host = _dead_pid(), output.HOST_TAG
    olds = [tmp_path / f".out.old-{dead}-{host}-0a", tmp_path / f".out.old-{dead}-{host}-0b"]
    for old in olds:
        old.mkdir()
        (old / "run.json").write_text("{}")
    partial = tmp_path / f".out.partial-{dead}-{host}-abc"
    partial.mkdir()
    assert output.remove_stale(out) == [partial]  # which old folder is the newest cannot be told: keep both
    assert all(old.exists() for old in olds) and not out.exists()
    olds[1].rename(out)
    assert output.remove_stale(out) == [olds[0]]  # with the output there, an old folder is stale
