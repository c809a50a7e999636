"""Writing outputs safely: one guard for every file and directory a command writes, then atomic writes.

The guard (:class:`Destination`) refuses, before anything is simulated, to write

* over an input of the same command (the scenario, every base of its ``extends`` chain,
  observed or evidence files), or over a directory holding one, the working directory or
  one of its ancestors;
* over anything sibsim did not write (a directory without sibsim's ``run.json``, or holding a
  file its manifest does not list, a memo without its meta tag, a workbook without sibsim's
  properties, a TOML without the header ``sibsim update`` writes, a FIFO or device), even with
  ``--force``; nor a file inside the output directory of the same command;
* over the output of another command or scenario, unless ``--force``;
* where nothing can be written (read-only, permission denied).

A directory is written in full into a staging directory and swapped in under a lock, so an
interrupted or failed run leaves the previous outputs (or nothing), never a mix, and
concurrent writers each end with a complete output.  Staging left by killed runs (their
owner PID and machine are in the name) is removed by the next writer on that machine; a
previous output a crash left only in its old folder is put back first.
"""

from __future__ import annotations

import errno
import hashlib
import html
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import tomllib
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator
from xml.etree import ElementTree

from .errors import OutputError, ScenarioError

MANIFEST = "run.json"
#: The meta tag of a memo naming its scenario (see :mod:`sibsim.report`).
MEMO_META = "sibsim-scenario"
#: First line of every scenario ``sibsim update`` writes (see :func:`sibsim.calibration.variant_toml`).
UPDATE_HEADER = "# Posterior of a mid-term update (sibsim update)"
#: Workbook property ``creator`` of sibsim's Excel files; ``description`` holds command and scenario as JSON.
EXCEL_CREATOR = "sibsim"
#: Suffixes each kind of single-file output must have (the format written is fixed by the kind).
SUFFIXES = {"memo": (".html", ".htm"), "excel": (".xlsx",), "toml": (".toml",)}
_WHAT = {"memo": "a sibsim memo", "excel": "a sibsim workbook", "toml": "a scenario written by sibsim update"}


# --- what a command reads -----------------------------------------------------------------------
def scenario_files(path: str | Path) -> list[Path]:
    """The scenario and every base file its ``extends`` chain reads, resolved, in reading order.

    Asks the loader (:attr:`sibsim.contracts.Contract.files`), so the chain is followed by one set of
    rules; a scenario that does not load counts as its own file only.
    """
    from .scenario import load_scenario

    try:
        return [_resolve(p) for p, _ in load_scenario(path).files] or [_resolve(path)]
    except ScenarioError:
        return [_resolve(path)]


def _resolve(path: str | Path) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the name as given
        return Path(path).absolute()


def _shown(path: str | Path) -> str:
    """A recorded (absolute) path as the user would type it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path) if Path(path).is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


# --- what sibsim wrote --------------------------------------------------------------------------
@dataclass(frozen=True)
class Owner:
    """What a sibsim command left at a path: the command and the scenario(s) it was run on."""

    command: str
    scenarios: tuple[str, ...]
    #: Names a directory's manifest says the command wrote (None: a manifest from before the list).
    files: tuple[str, ...] | None = field(default=None, compare=False)

    def describe(self) -> str:
        if self.command == "new":
            return "'sibsim new' (a scenario template)"
        names = " and ".join(_shown(s) for s in self.scenarios) or "an unknown scenario"
        return f"'sibsim {self.command}' for {names}"


def owner(path: Path, kind: str) -> Owner | None:
    """The sibsim command that wrote ``path`` (a ``kind`` output), or None if sibsim did not write it."""
    reader = {"dir": _dir_owner, "memo": _memo_owner, "excel": _excel_owner, "toml": _toml_owner}[kind]
    try:
        return reader(Path(path))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, ElementTree.ParseError):
        return None


#: The commands that write an output directory (and its manifest).
DIR_COMMANDS = ("run", "settle", "compare", "noise", "sensitivity", "portfolio", "sweep", "design", "discover")


def _dir_owner(path: Path) -> Owner | None:
    from .scenario import read_scenario_bytes  # a regular file of at most 1 MB, read with a bounded read

    manifest = json.loads(read_scenario_bytes(path / MANIFEST).decode("utf-8"))
    if not _is_manifest(manifest):
        return None
    command = manifest.get("command") or _legacy_command(manifest, path)
    scenarios = manifest.get("scenarios") or [manifest.get("scenario_path")]
    files = manifest.get("files")
    return Owner(str(command), tuple(str(s) for s in scenarios if s),
                 tuple(sorted(files)) if files is not None else None)


def _is_manifest(manifest) -> bool:
    """Whether a parsed run.json is one sibsim wrote: its version, and a command it knows or (0.1.0
    manifests named none) that version's keys; any other JSON with a familiar key is someone else's."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sibsim_version"), str):
        return False
    files = manifest.get("files")
    if files is not None and not (isinstance(files, list) and all(isinstance(f, str) for f in files)):
        return False
    if "command" in manifest:
        return manifest["command"] in DIR_COMMANDS
    scenarios = manifest.get("scenarios")
    return isinstance(manifest.get("scenario_path"), str) or (
        isinstance(scenarios, list) and bool(scenarios) and all(isinstance(s, str) for s in scenarios))


#: What each command wrote into its directory before manifests listed their files (besides run.json):
#: only these names are replaced in such a directory, anything else is the user's.
LEGACY_FILES = {
    "run": ("summary.csv", "paths.csv", "cashflows.csv", "expected_ledgers.csv", "paths_columns.txt",
            "irr_distribution.png", "cash_fan_investors.png", "cash_fan_payer.png", "outflow.png", "net_savings.png",
            # written since (a re-run into an old folder replaces them too)
            "convergence.csv", "convergence.png", "budget.csv", "budget.png"),
    "settle": ("schedule.csv", "investors.csv"),
    "compare": ("compare.csv", "compare_investor_irr.png", "compare_investor_moic.png", "compare_net_savings.png",
                "compare_outcome_payments.png"),
    "noise": ("evaluation_noise.csv",),
    "sensitivity": ("tornado.csv", "tornado_investor_moic.png", "tornado_investor_irr_median.png",
                    "tornado_net_savings.png", "sobol.csv", "breakeven.csv"),
}


def _legacy_name(command: str, name: str) -> bool:
    return name == MANIFEST or name in LEGACY_FILES.get(command, ())


def _foreign_entries(path: Path, found: Owner) -> list[str]:
    """Entries of the output directory ``path`` that its command did not write (sorted)."""
    wrote = {*found.files, MANIFEST} if found.files is not None else None
    names = sorted(entry.name for entry in path.iterdir())
    return [n for n in names if not (n in wrote if wrote is not None else _legacy_name(found.command, n))]


def _legacy_command(manifest: dict, path: Path) -> str:
    """The command of a manifest written before manifests named it (sibsim 0.1.0 without ``command``)."""
    if "scenarios" in manifest:
        return "compare"
    if "observed_path" in manifest:
        return "settle"
    if (path / "evaluation_noise.csv").exists() and not (path / "paths.csv").exists():
        return "noise"
    return "run"


#: Bytes read of an existing file to tell whether sibsim wrote it: the memo's meta tag is in its
#: head, a workbook's properties are a few hundred bytes.
OWNER_READ_BYTES = 64 * 1024


def _memo_owner(path: Path) -> Owner | None:
    from .scenario import read_regular  # a regular file only, a bounded prefix

    head = read_regular(path, OWNER_READ_BYTES).decode("utf-8", errors="replace")
    m = re.search(rf'<meta name="{MEMO_META}" content="([^"]*)">', head)
    return Owner("report", (html.unescape(m.group(1)),)) if m else None


def _excel_owner(path: Path) -> Owner | None:
    from .scenario import open_regular  # a FIFO would block open()

    with open_regular(path) as fh, zipfile.ZipFile(fh) as book:
        if book.getinfo("docProps/core.xml").file_size > OWNER_READ_BYTES:  # a few hundred bytes in sibsim's
            return None
        core = ElementTree.fromstring(book.read("docProps/core.xml"))
    props = {el.tag.rsplit("}", 1)[-1]: (el.text or "") for el in core}
    if props.get("creator") != EXCEL_CREATOR:
        return None
    info = json.loads(props.get("description") or "{}")
    return Owner(str(info.get("command", "run")), tuple(map(str, info.get("scenarios", ()))))


def excel_properties(command: str, scenarios: Iterable[str | Path]) -> dict:
    """Workbook properties that mark a workbook as sibsim's own (``creator``, ``description``)."""
    return {"creator": EXCEL_CREATOR,
            "description": json.dumps({"command": command, "scenarios": [str(_resolve(s)) for s in scenarios]})}


def _toml_owner(path: Path) -> Owner | None:
    from .scenario import read_scenario_bytes  # a regular file of at most 1 MB, read with a bounded read

    from .template import HEADER as TEMPLATE_HEADER

    text = read_scenario_bytes(path).decode("utf-8")
    if text.startswith(TEMPLATE_HEADER):  # a template: replaced only with --force (the user fills it in)
        return Owner("new", ())
    if not text.startswith(UPDATE_HEADER):
        return None
    base = tomllib.loads(text).get("extends")
    return Owner("update", (str(_resolve(path.parent / base)),) if isinstance(base, str) else ())


# --- the guard ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Destination:
    """A file or directory a command is about to write, and the rules it must pass.

    Parameters
    ----------
    path : Path
        Where the output goes.
    kind : {"dir", "memo", "excel", "toml"}
        A directory of outputs (with ``run.json``) or one file of that format.
    command : str
        The command writing it, e.g. ``"run"`` (recorded in manifests and shown in refusals).
    scenarios : tuple of str
        The scenario file(s) the command runs on.
    inputs : tuple of Path
        Files the command reads besides the scenarios (observed or evidence files, or every
        file the loader reports it read); the scenarios and their ``extends`` chains are always added.
    force : bool
        Replace sibsim's own output of another command or scenario.
    flag : str
        The option naming the path, for messages (``--out``, ``--excel``).
    rerun_replaces : bool
        Whether a re-run of the same command on the same scenarios replaces its own output
        without ``force`` (True for output directories, memos and workbooks; an updated scenario
        may have been edited by hand, so ``sibsim update`` asks for ``--force``).
    """

    path: Path
    kind: str
    command: str
    scenarios: tuple[str, ...]
    inputs: tuple[Path, ...] = ()
    force: bool = False
    flag: str = "--out"
    rerun_replaces: bool = True
    _resolved_scenarios: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))
        scenarios = tuple(str(_resolve(s)) for s in self.scenarios)
        object.__setattr__(self, "_resolved_scenarios", scenarios)
        # The scenarios' extends chains always count, whatever list of inputs the caller gathered.
        inputs = [*self.inputs, *(f for s in self.scenarios for f in scenario_files(s))]
        object.__setattr__(self, "inputs", tuple(dict.fromkeys(_resolve(p) for p in inputs)))

    def check(self) -> None:
        """Every rule, before anything is computed; raise :class:`OutputError` (one line) on the first broken."""
        self.check_place()
        self.check_owner()
        check_writable(self.path, self.flag)

    def check_place(self) -> None:
        """Not an input, not a directory holding an input or the working directory; the right format."""
        target, way_out = _resolve(self.path), f"choose another {self.flag}"
        if target in self.inputs:
            raise OutputError(f"{self.path}: is an input of 'sibsim {self.command}' (a scenario, a base it "
                              f"extends, or a file it reads); {way_out}")
        if self.kind == "dir":
            cwd = _resolve(Path.cwd())
            if cwd == target or target in cwd.parents:
                raise OutputError(f"{self.path}: is the working directory or holds it; {way_out}, "
                                  "e.g. a new folder such as out/run")
            held = next((p for p in self.inputs if target in p.parents), None)
            if held is not None:
                raise OutputError(f"{self.path}: holds an input of 'sibsim {self.command}' ({_shown(held)}); "
                                  f"{way_out}, e.g. a new folder")
            return
        suffixes = SUFFIXES[self.kind]
        if self.path.is_dir():
            raise OutputError(f"{self.path}: is a directory; {self.flag} needs a file name ending in {suffixes[0]}")
        if self.path.suffix.lower() not in suffixes:
            raise OutputError(f"{self.path}: {self.flag} must end in {' or '.join(suffixes)} "
                              f"(sibsim writes that format only), got {self.path.suffix or 'no suffix'}")

    def check_owner(self) -> None:
        """Replace only what sibsim wrote; another command's or scenario's output only with ``force``."""
        path = self.path
        if self.kind == "dir":
            put_back_interrupted(path)  # a previous output lost by a crash mid-swap is checked like any other
            if not path.exists() and not path.is_symlink():
                return
            if path.is_symlink():  # the swap would replace the link, not what it points to
                raise OutputError(f"{path}: is a symbolic link; choose another {self.flag} (a real folder)")
            if not path.is_dir():
                raise OutputError(f"{path}: exists and is not a directory; choose another {self.flag}")
            if not any(path.iterdir()):
                return
        elif not path.exists() and not path.is_symlink():
            return
        else:
            self._check_regular()
        found = owner(path, self.kind)
        if found is None:
            raise OutputError(f"{path}: {self._not_ours()}; choose another {self.flag} "
                              "(--force replaces only what sibsim wrote)")
        if self.kind == "dir":
            self._check_no_foreign(found)  # even with --force: the swap would delete the user's files
        if self.force:
            return
        if not self.rerun_replaces:
            raise OutputError(f"{path}: holds the outputs of {found.describe()}; "
                              f"choose another {self.flag} or pass --force to replace it")
        if found.command != self.command:
            raise OutputError(f"{path}: holds the outputs of another command ({found.describe()}); "
                              f"choose another {self.flag} or pass --force to replace it")
        if set(found.scenarios) != set(self._resolved_scenarios):
            names = " and ".join(_shown(s) for s in found.scenarios) or "unknown"
            raise OutputError(f"{path}: holds the outputs of 'sibsim {found.command}' for another scenario "
                              f"({names}); choose another {self.flag} or pass --force to replace it")

    def _check_no_foreign(self, found: Owner) -> None:
        foreign = _foreign_entries(self.path, found)
        if foreign:
            first = foreign[0] if foreign[0].isprintable() else repr(foreign[0])  # one line, whatever the name
            names, them = (first, "it") if len(foreign) == 1 else (f"{first} (and {len(foreign) - 1} more)", "them")
            raise OutputError(f"{self.path}: holds {names}, which sibsim did not write; "
                              f"move {them} or choose another {self.flag}")

    def _check_regular(self) -> None:
        """A FIFO, device or socket is refused before anything opens it (opening a FIFO blocks)."""
        from .scenario import _not_regular

        try:
            why = _not_regular(os.stat(self.path).st_mode)
        except OSError:
            return  # a broken link: the owner reader finds nothing of sibsim's
        if why:
            raise OutputError(f"{self.path}: {why}; choose another {self.flag}")

    def _not_ours(self) -> str:
        if self.kind == "dir":
            return f"not a sibsim output directory (no sibsim {MANIFEST})"
        if self.kind == "toml" and self.command == "new":
            return "exists and is not a scenario written by sibsim update or sibsim new"
        return f"exists and is not {_WHAT[self.kind]}"

    def manifest(self, **fields) -> dict:
        """A manifest recording this command and its scenarios, then ``fields``."""
        return {"command": self.command, "scenarios": list(self._resolved_scenarios), **fields}


def destination(path, kind: str, command: str, scenarios, inputs=(), force: bool = False,
                flag: str = "--out", rerun_replaces: bool = True) -> Destination:
    """Build a :class:`Destination` and check it; see there for the parameters."""
    dest = Destination(Path(path), kind, command, tuple(map(str, scenarios)), tuple(map(Path, inputs)),
                       force, flag, rerun_replaces)
    dest.check()
    return dest


def check_distinct(*destinations: Destination) -> None:
    """Two outputs of one command must not be the same path, or one inside a directory the other replaces."""
    for i, a in enumerate(destinations):
        for b in destinations[i + 1:]:
            pa, pb = _resolve(a.path), _resolve(b.path)
            if pa == pb:
                raise OutputError(f"{b.path}: is also the {a.flag} of this command; choose another {b.flag}")
            for folder, inner, fa, fb in ((a, b, pa, pb), (b, a, pb, pa)):
                # A file inside the folder would be refused by the next re-run, as a file sibsim did not write there.
                if folder.kind == "dir" and fa in fb.parents:
                    raise OutputError(f"{inner.path}: is inside {folder.path}, the {folder.flag} folder of this "
                                      f"command, which a re-run replaces; choose another {inner.flag}")


def check_writable(path: Path, flag: str = "--out") -> None:
    """Create and remove a probe file where ``path`` will be written; OutputError (one line) if that fails.

    A real write is the only check that holds for read-only file systems, ACLs and root alike.
    """
    parent = _existing_ancestor(Path(path).absolute().parent)
    if not parent.is_dir():
        raise OutputError(f"{path}: cannot write ({parent} is not a directory); choose another {flag}")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{Path(path).name}.probe-{os.getpid()}-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({_reason(exc)}); choose another {flag}") from None


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def check_output_dir(out_dir: Path, scenario: Path, force: bool, command: str = "run") -> Destination:
    """The guard for an output directory of ``command`` run on one scenario (kept for callers of 0.1.0)."""
    return destination(out_dir, "dir", command, [scenario], force=force)


# --- staging left by killed runs ----------------------------------------------------------------
#: This machine in temporary names: a PID means nothing on another machine sharing the folder (a network drive).
HOST_TAG = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _owner_tag() -> str:
    """``PID-HOST``: who owns a temporary name, so that only this machine's dead processes' are removed."""
    return f"{os.getpid()}-{HOST_TAG}"


def _staging_pattern(name: str) -> re.Pattern:
    """sibsim's own temporary names beside ``name``: staging and old directories, partial files; owner PID and host."""
    n = re.escape(name)
    owner = r"(\d+)-([0-9a-f]{8})"
    return re.compile(rf"^\.{n}\.(?:(?:partial|old)-{owner}-[A-Za-z0-9_]+|{owner}-[0-9a-f]{{8}}\.partial(?:\.\w+)?)$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's), or cannot tell: keep it
    return True


def _dead_temporaries(path: Path) -> list[Path]:
    """sibsim's temporary names beside ``path`` whose owner process (on this machine) is dead, sorted."""
    pattern = _staging_pattern(path.name)
    try:
        entries = sorted(path.parent.iterdir())
    except OSError:
        return []
    dead = []
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None:
            continue
        pid, host = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if host == HOST_TAG and not _pid_alive(int(pid)):
            dead.append(entry)
    return dead


def _missing(path: Path) -> bool:
    return not path.exists() and not path.is_symlink()


def _old_folders(path: Path, entries: list[Path]) -> list[Path]:
    """The previous outputs a swap moved aside (``.NAME.old-*``) among ``entries``."""
    return [e for e in entries if e.name.startswith(f".{path.name}.old-") and e.is_dir() and not e.is_symlink()]


def put_back_interrupted(path: Path) -> bool:
    """Rename the previous output back to ``path`` when a crash between the two renames of
    :func:`_swap` left ``path`` missing and exactly one old folder of a dead process (its only copy);
    with several, which is newest cannot be told, so all are kept.  True if one was put back."""
    path = Path(path)
    if not _missing(path):
        return False
    olds = _old_folders(path, _dead_temporaries(path))
    if len(olds) != 1:
        return False
    try:
        os.rename(olds[0], path)
    except OSError:
        return False  # another writer put it back first, or the folder cannot be renamed: kept as it is
    return True


def remove_stale(path: Path) -> list[Path]:
    """Remove staging directories and partial files beside ``path`` whose owner process is dead; return them.

    An interrupted swap's old folder is put back first if ``path`` is missing; old folders are
    removed only when ``path`` exists (else one of them may be the only copy of the previous output).
    """
    path = Path(path)
    put_back_interrupted(path)
    stale = _dead_temporaries(path)
    if _missing(path):
        keep = _old_folders(path, stale)
        stale = [e for e in stale if e not in keep]
    removed = []
    for entry in stale:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            try:
                entry.unlink()
            except OSError:
                continue
        removed.append(entry)
    return removed


@contextmanager
def _swap_lock(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``directory`` (the parent of the output) while a swap runs.

    Locking the directory itself leaves no lock file behind; flock locks conflict between open
    file descriptions, so threads of one process exclude each other too.  Without fcntl
    (Windows) the swap runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# --- writing ------------------------------------------------------------------------------------
def write_outputs(out_dir: Path, writers: dict[str, Callable[[Path], None]], manifest: dict,
                  dest: Destination | None = None) -> list[Path]:
    """Write every file with its writer into a staging directory, then swap it in place of ``out_dir``.

    Parameters
    ----------
    out_dir : Path
    writers : dict of file name -> callable(path)
        Each callable writes one file at the path given.
    manifest : dict
        Written as ``run.json`` last, so its presence marks a complete run; the command and
        scenarios of ``dest`` are added to it, and ``files``: the names written (run.json too).
    dest : Destination, optional
        Checked again under the swap lock: another writer may have swapped in meanwhile.

    Raises
    ------
    OutputError
        One line, when a file cannot be written or the destination is no longer ours to replace;
        the previous output is kept.
    """
    out_dir = Path(out_dir)
    if dest is not None:
        manifest = {**dest.manifest(), **manifest}
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out_dir)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{_owner_tag()}-", dir=out_dir.parent))
    except OSError as exc:
        raise _write_error(out_dir, exc) from None
    try:
        for name, write in writers.items():
            write(staging / name)
        # Every name written, so that a re-run replaces these and refuses anything a user added.
        manifest = {**manifest, "files": sorted({*(p.name for p in staging.iterdir()), MANIFEST})}
        text = json.dumps(manifest, indent=2, default=str) + "\n"
        (staging / MANIFEST).write_text(text, encoding="utf-8")
        _fsync_tree(staging)  # on disk before the swap: a crash after it must not leave empty files
        with _swap_lock(out_dir.parent):
            if dest is not None:
                dest.check_owner()
            _swap(staging, out_dir)
        _fsync(out_dir.parent)
    except OSError as exc:
        raise _write_error(out_dir, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful swap
    return [out_dir / name for name in [*writers, MANIFEST]]


def _swap(staging: Path, out_dir: Path) -> None:
    """Put ``staging`` in place of ``out_dir``; on failure the previous ``out_dir`` is put back."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{_owner_tag()}-{secrets.token_hex(4)}")
        os.replace(out_dir, old)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        if old is not None and not out_dir.exists():
            os.replace(old, out_dir)  # put the previous run back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk (where the system lets a directory be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # e.g. a directory on Windows: nothing more can be done
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # the file system does not sync directories
            raise
    finally:
        os.close(fd)


def _fsync_tree(directory: Path) -> None:
    for entry in directory.iterdir():
        _fsync(entry)
    _fsync(directory)


def _write_error(path: Path, exc: OSError) -> OutputError:
    kept = "the previous output is kept" if Path(path).exists() else "nothing was written"
    return OutputError(f"{path}: cannot write ({_reason(exc)}); {kept}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success it replaces ``path`` in one rename.

    On any error (or interruption) the temporary file is removed and ``path`` is left as it was;
    an OSError becomes a one-line :class:`OutputError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path)
    except OSError as exc:
        raise _write_error(path, exc) from None
    tmp = path.with_name(f".{path.name}.{_owner_tag()}-{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # renamed into place, or never created


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any new file
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


__all__ = ["Destination", "MANIFEST", "Owner", "atomic_path", "check_distinct", "check_output_dir",
           "check_writable", "destination", "excel_properties", "owner", "put_back_interrupted", "remove_stale",
           "scenario_files", "write_outputs", "write_text_atomic"]
