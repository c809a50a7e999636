"""Writing a run's outputs safely: all files staged in a temporary directory, then swapped in.

An interrupted run leaves the previous outputs (or nothing), never a mix;
a directory holding another scenario's run is not overwritten unless asked.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import OutputError

MANIFEST = "run.json"


def check_output_dir(out_dir: Path, scenario: Path, force: bool) -> None:
    """Refuse to replace a directory that is not this scenario's output, unless ``force``."""
    if force or not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a directory")
    manifest = out_dir / MANIFEST
    if not manifest.exists():
        if any(out_dir.iterdir()):
            raise OutputError(f"{out_dir}: not empty and not a sibsim output directory (no {MANIFEST}); "
                              "choose another --out or pass --force")
        return
    try:
        previous = json.loads(manifest.read_text(encoding="utf-8")).get("scenario_path")
    except (OSError, ValueError):
        previous = None
    if previous != str(scenario.resolve()):
        raise OutputError(f"{out_dir}: holds the outputs of another scenario ({previous}); "
                          "choose another --out or pass --force to replace them")


def write_outputs(out_dir: Path, writers: dict[str, Callable[[Path], None]], manifest: dict) -> list[Path]:
    """Write every file with its writer into a staging directory, then swap it in place of ``out_dir``.

    Parameters
    ----------
    writers : dict of file name -> callable(path)
        Each callable writes one file at the path given.
    manifest : dict
        Written as ``run.json`` last, so its presence marks a complete run.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    old = None
    try:
        for name, write in writers.items():
            write(staging / name)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not out_dir.exists():
            os.replace(old, out_dir)  # put the previous run back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return [out_dir / name for name in [*writers, MANIFEST]]


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success it replaces ``path`` in one rename.

    On any error (or interruption) the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any new file
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)
