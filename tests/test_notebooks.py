"""The analyst notebooks in notebooks/: they run without error on the shipped scenarios, they are
committed without outputs, notebooks/build.py regenerates them exactly, and they use only the
public API of sibsim.

Executing and regenerating them needs the ``[notebooks]`` extra (nbformat, nbclient, ipykernel);
without it those tests are skipped. The static checks need nothing beyond the standard library.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
INSTALL = "needs the notebooks extra: pip install 'sibsim[notebooks]'"
#: Seconds a single cell may take (the notebooks are meant to run in seconds in all).
CELL_TIMEOUT = 120


def _missing(*modules: str) -> list[str]:
    def absent(name):
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):  # e.g. blocked by sys.modules[name] = None
            return True
    return [m for m in modules if absent(m)]


def _ids(path: Path) -> str:
    return path.stem


def _code_cells(path: Path) -> list[tuple[int, str]]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(i, "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for i, c in enumerate(cells) if c["cell_type"] == "code"]


def _python(source: str) -> ast.Module:
    """A code cell as Python: IPython magics and shell lines (``%...``, ``!...``) blanked out."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    return ast.parse("\n".join(lines))


def test_notebooks_are_present():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}; generate them with python notebooks/build.py"


# --- static checks: no dependencies ----------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_committed_without_outputs(path):
    """Readable diffs: no outputs, no execution counts, no execution timings."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            if cell.get("outputs"):
                problems.append(f"cell {i}: has outputs")
            if cell.get("execution_count") is not None:
                problems.append(f"cell {i}: has an execution count")
        if "execution" in cell.get("metadata", {}):
            problems.append(f"cell {i}: has execution timings in its metadata")
    assert not problems, f"{path.name}: " + "; ".join(problems) + " (regenerate: python notebooks/build.py)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_uses_only_the_public_api(path):
    problems = []
    for i, source in _code_cells(path):
        if re.search(r"\bsibsim\._", source):
            problems.append(f"cell {i}: refers to sibsim._...")
        for node in ast.walk(_python(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sibsim":
                private = [p for p in node.module.split(".") if p.startswith("_")]
                private += [a.name for a in node.names if a.name.startswith("_")]
                if private:
                    problems.append(f"cell {i}, line {node.lineno}: from {node.module} import a private name {private}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == "sibsim" and any(p.startswith("_") for p in parts):
                        problems.append(f"cell {i}, line {node.lineno}: import {alias.name}")
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                  and not (node.attr.startswith("__") and node.attr.endswith("__"))):
                problems.append(f"cell {i}, line {node.lineno}: private attribute .{node.attr}")
    assert not problems, f"{path.name}: " + "; ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_no_absolute_paths(path):
    """Scenarios are found relative to the repository, never at a path of one machine."""
    absolute = re.compile(r"^(/[A-Za-z]|[A-Za-z]:[\\/]|~[/\\])")
    problems = [f"cell {i}: {node.value!r}" for i, source in _code_cells(path) for node in ast.walk(_python(source))
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and absolute.match(node.value)]
    assert not problems, f"{path.name}: absolute paths: " + "; ".join(problems)


# --- the generator -----------------------------------------------------------------------------------
def test_build_regenerates_the_committed_notebooks():
    missing = _missing("nbformat")
    if missing:
        pytest.skip(f"{INSTALL} (missing: {', '.join(missing)})")
    spec = importlib.util.spec_from_file_location("sibsim_notebooks_build", NOTEBOOK_DIR / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    rendered = build.render()
    assert sorted(rendered) == [p.name for p in NOTEBOOKS], (
        "notebooks/*.ipynb and the notebooks in build.py differ; add the notebook to build.py or delete it")
    stale = [name for name, text in rendered.items() if (NOTEBOOK_DIR / name).read_text(encoding="utf-8") != text]
    assert not stale, f"edited outside build.py or not regenerated: {stale}; run python notebooks/build.py"


# --- execution ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel_environment(tmp_path_factory):
    """A python3 kernel of this very interpreter, importing sibsim from this repository.

    The kernel spec is written to a temporary JUPYTER_PATH so that a ``python3`` kernel installed
    elsewhere (another interpreter, without sibsim) cannot be picked up; IPython's and Jupyter's
    state go to temporary folders too.
    """
    missing = _missing("nbformat", "nbclient", "ipykernel")
    if missing:
        pytest.skip(f"{INSTALL} (missing: {', '.join(missing)})")
    base = tmp_path_factory.mktemp("jupyter")
    spec = base / "data" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (sibsim tests)",
        "language": "python",
    }), encoding="utf-8")
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(base / "data"))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(base / "runtime"))
        mp.setenv("IPYTHONDIR", str(base / "ipython"))
        mp.setenv("PYTHONPATH", python_path)
        yield


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs(path, kernel_environment):
    """Executed as an analyst would, from notebooks/; any error in a cell fails the test."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
