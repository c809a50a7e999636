"""What-ifs from the command line: ``--set FIELD=VALUE`` and ``--scale PARAMETER=FACTOR``.

Both change the scenario *document* (the file as read, its ``extends`` merged) before the loader
checks it, so a changed value is validated exactly as if it had been written in the file, and a
problem is reported as ``file (with --set ...): field: rule``.

* ``--set payer.rate_card.job_sustained=2500``: ``FIELD`` is a dotted path of keys with ``[i]``
  for an item of an array (``investors[1].commitment``, ``cohorts[0].size``); every key but the
  last must exist (the last may be new in an existing table: the loader says whether it is
  allowed); ``VALUE`` is a TOML value (``2500``, ``0.1``, ``"text"``, ``true``, ``[12, 24]``,
  ``{ mean = 0.1, sd = 0.02 }``).
* ``--scale job_start=0.8``: the named journey parameter's value (a number, or a prior's mean; its
  sd is kept) times ``FACTOR`` (> 0), as declared in ``[journey.parameters]``: a comparison
  group that uses the same declaration follows it, one with its own value in
  ``[comparison.parameters]`` does not; ``--scale comparison.job_start=1.2`` scales that one.
  A prior given as ``{alpha, beta}`` is not scaled (its mean is not a number in the file):
  write it as ``{mean, sd}`` or ``--set`` it.

Every ``--set`` applies first, in the order given, then every ``--scale``; the contract records
them in that order (:attr:`Contract.command_line_changes`), and so do the run's ``run.json`` and
the memo.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import replace
from pathlib import Path

from .contracts import Contract
from .errors import ScenarioError

_STEP = re.compile(r"^([A-Za-z0-9_\-]+)((?:\[\d+\])*)$")


def _split(field: str) -> list:
    """``a.b[1].c`` -> ``["a", "b", 1, "c"]``; None when it is not such a path."""
    out = []
    for part in field.split("."):
        m = _STEP.match(part)
        if not m:
            return None
        out.append(m.group(1))
        out += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return out


#: What :func:`_value` returns for a text that is no TOML value.
_MISSING_VALUE = object()


def _value(text: str):
    """The TOML value ``text`` stands for, or :data:`_MISSING_VALUE` (also for more than one value,
    e.g. a text holding a line break and another key, and for values too long or deep to read)."""
    try:
        doc = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):  # ValueError: an integer of 5,000 digits
        return _MISSING_VALUE
    return doc["v"] if set(doc) == {"v"} else _MISSING_VALUE


def _shown(text: str, limit: int = 80) -> str:
    """``text`` for a one-line message: at most ``limit`` characters, line breaks escaped."""
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def parse_assignment(text: str, flag: str, file: str) -> tuple[str, str]:
    """``FIELD=VALUE`` -> ``(FIELD, VALUE)`` (both stripped), or a one-line :class:`ScenarioError`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes of the command line that are not UTF-8 (kept as surrogates)
        raise ScenarioError(f"{file}: {flag} {text.encode('utf-8', 'backslashreplace').decode()}: "
                            "must be UTF-8 text") from None
    field, sep, value = text.partition("=")
    field, value = field.strip(), value.strip()
    if not sep or not field or not value:
        what = "FIELD=VALUE" if flag == "--set" else "PARAMETER=FACTOR"
        raise ScenarioError(f"{file}: {flag} {_shown(text)}: must be {what}, e.g. {flag} "
                            + ("payer.rate_card.job_sustained=2500" if flag == "--set" else "job_start=0.8"))
    return field, value


def apply_set(doc: dict, field: str, text: str, file: str) -> None:
    """Set ``field`` of the scenario document to the TOML value ``text``, in place."""
    where = f"{file}: --set {_shown(field)}={_shown(text)}"
    path = _split(field)
    if path is None:
        raise ScenarioError(f"{where}: FIELD must be keys joined by dots, with [i] for an item of an array "
                            "(e.g. investors[1].commitment)")
    value = _value(text)
    if value is _MISSING_VALUE:
        raise ScenarioError(f"{where}: {_shown(text)} is not a TOML value (text goes in quotes: "
                            f"{_shown(field)}=\"...\")")
    node, shown = doc, ""
    for i, step in enumerate(path):
        last = i == len(path) - 1
        if isinstance(step, int):
            if not isinstance(node, list):
                raise ScenarioError(f"{where}: {shown} is not an array, so it has no item [{step}]")
            if step >= len(node):
                raise ScenarioError(f"{where}: {shown} has {len(node)} item{'s' if len(node) != 1 else ''} "
                                    f"(0 .. {len(node) - 1}), not [{step}]")
            if last:
                node[step] = value
                return
            node, shown = node[step], f"{shown}[{step}]"
            continue
        if not isinstance(node, dict):
            raise ScenarioError(f"{where}: {shown} is not a table, so it has no key {step}")
        if last:
            node[step] = value
            return
        if step not in node:
            known = ", ".join(sorted(node)) or "none"
            raise ScenarioError(f"{where}: {_join(shown, step)} is not in the scenario (keys here: {known}); "
                                f"a whole table is set as {_join(shown, step)}={{ ... }}")
        node, shown = node[step], _join(shown, step)


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b


def apply_scale(doc: dict, name: str, text: str, file: str) -> None:
    """Multiply a journey parameter's number (or prior mean) in the document by ``text``, in place."""
    where = f"{file}: --scale {_shown(name)}={_shown(text)}"
    factor = _value(text)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
        raise ScenarioError(f"{where}: FACTOR must be a number > 0, got {_shown(text)}")
    group, _, key = name.rpartition(".")
    if group not in ("", "comparison"):
        raise ScenarioError(f"{where}: PARAMETER is a name of [journey.parameters], or comparison.NAME for one "
                            "of [comparison.parameters]")
    section = ("journey", "parameters") if not group else ("comparison", "parameters")
    table = doc.get(section[0], {})
    table = table.get(section[1]) if isinstance(table, dict) else None
    if not isinstance(table, dict) or key not in table:
        known = ", ".join(sorted(table)) if isinstance(table, dict) and table else "none"
        raise ScenarioError(f"{where}: {'.'.join(section)} has no parameter {key} (parameters: {known})")
    value = table[key]
    mean = value.get("mean") if isinstance(value, dict) else None
    if isinstance(value, bool):
        raise ScenarioError(f"{where}: {'.'.join(section)}.{key} is not a number or a prior")
    if isinstance(value, (int, float)):
        table[key] = value * factor
    elif isinstance(mean, (int, float)) and not isinstance(mean, bool):
        table[key] = {**value, "mean": value["mean"] * factor}
    else:
        raise ScenarioError(f"{where}: {'.'.join(section)}.{key} has no mean to scale (a prior given by alpha "
                            "and beta: write it as { mean, sd }, or --set it)")


def load_whatif(path: str | Path, sets=(), scales=()) -> Contract:
    """:func:`sibsim.load_scenario` with ``--set`` and ``--scale`` changes applied to the document first.

    Parameters
    ----------
    path : str or Path
        The scenario file.
    sets, scales : sequence of str
        ``FIELD=VALUE`` and ``PARAMETER=FACTOR`` texts, applied in that order (sets first).

    Returns
    -------
    Contract
        With :attr:`Contract.command_line_changes` listing the changes as given
        (``--set FIELD=VALUE`` ...).

    Raises
    ------
    ScenarioError
        One line naming the file, the change and the rule, for a change that cannot be made or a
        scenario that the change makes invalid.
    """
    from .scenario import _read_document, contract_from_dict, load_scenario

    if not sets and not scales:
        return load_scenario(path)
    path = Path(path)
    files: list[tuple[str, str]] = []
    doc = _read_document(path, files=files)  # read for this call alone: changed in place
    overrides = []
    for text in sets:
        field, value = parse_assignment(text, "--set", str(path))
        apply_set(doc, field, value, str(path))
        overrides.append(f"--set {field}={value}")
    for text in scales:
        name, factor = parse_assignment(text, "--scale", str(path))
        apply_scale(doc, name, factor, str(path))
        overrides.append(f"--scale {name}={factor}")
    label = f"{path} (with {' '.join(_shown(o) for o in overrides)})"
    contract = contract_from_dict(doc, str(path), tuple(files), label=label)
    return replace(contract, command_line_changes=tuple(overrides))
