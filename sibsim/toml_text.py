"""A parsed TOML document written back as TOML text (what ``tomllib`` reads back to the same document).

Used to write a scenario sibsim chose (``sibsim design``): tables as ``[a.b]`` sections, arrays of
tables as ``[[a]]`` blocks, anything inside those as inline tables and arrays.  Comments of the
source are not kept (the document holds none).
"""

from __future__ import annotations

import datetime
import math
import re


def key(name: str) -> str:
    """A key: bare when it can be, else a quoted string."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else string(name)


def string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def value(v) -> str:
    """One value, inline."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (datetime.date, datetime.time)):  # datetime is a date
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(f"not a TOML value: {type(v).__name__}")


def _is_tables(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _section(lines: list[str], path: list[str], table: dict) -> None:
    plain = [(k, v) for k, v in table.items() if not isinstance(v, dict) and not _is_tables(v)]
    for k, v in plain:
        lines.append(f"{key(k)} = {value(v)}")
    for k, v in table.items():
        if isinstance(v, dict):
            lines.append("")
            lines.append("[" + ".".join(key(p) for p in path + [k]) + "]")
            _section(lines, path + [k], v)
    for k, v in table.items():
        if _is_tables(v):
            for item in v:
                lines.append("")
                lines.append("[[" + ".".join(key(p) for p in path + [k]) + "]]")
                for ik, iv in item.items():
                    lines.append(f"{key(ik)} = {value(iv)}")


def dumps(doc: dict) -> str:
    """``doc`` as TOML text: ``tomllib.loads(dumps(doc)) == doc``."""
    lines: list[str] = []
    _section(lines, [], doc)
    return "\n".join(lines).strip("\n") + "\n"
