"""The checker the scenario and observed-file loaders report problems through.

Every problem is one line ``file: field: rule, got value`` (OpenFisca style); the checker
collects them so that a loader can report every problem at once.  Here too: the bounds every
number of a scenario must keep (months, amounts, participants, priors).
"""

from __future__ import annotations

import datetime
import json
import math
import re
import unicodedata

from .contracts import Schedule
from .journey import Prior

_MISSING = object()
#: Longest month index accepted anywhere (50 years): keeps ledgers bounded.
MAX_MONTH = 600
#: Largest amount accepted (1e12 in the scenario's currency): beyond it float64 cents are no longer exact.
MAX_AMOUNT = 1e12
#: Smallest positive amount accepted (one cent): a smaller one is a unit mistake or noise, and a
#: capital call of 1e-300 gives a multiple of 1e304 (an overflow), not a result.
MIN_AMOUNT = 0.01
#: Smallest total capital call (budget + investor fees), one unit of the currency: multiples and IRRs
#: are ratios to it, so it must not be vanishingly small.
MIN_CAPITAL = 1.0
MAX_PARTICIPANTS = 1_000_000
#: Largest comparison group per treated participant, and comparison-group members in all: the
#: comparison group is simulated member by member like the treated group, so memory per worker
#: grows with it (a group 100 x the treated one needed 3.7 GB a worker), while the precision gained
#: beyond a few times the treated group is negligible.
MAX_SIZE_RATIO = 10
MAX_COMPARISON_MEMBERS = 1_000_000
#: Largest annual rate (return cap, discount rate, indexation): 1 is 100 % a year.  A rate written as
#: a percentage (10 for 10 %) would otherwise be read as 1,000 % a year.
MAX_ANNUAL_RATE = 1
#: Largest scenario file read (1 MB; a scenario is a few kB): read with a bounded read, so a huge
#: file or a device such as /dev/zero cannot exhaust memory.
MAX_FILE_BYTES = 1_000_000
#: Smallest non-zero prior standard deviation (Beta parameters stay below ~1e12).
MIN_PRIOR_SD = 1e-6
#: Smallest Beta parameter accepted: below it alpha + beta, or the smaller one against the larger,
#: is lost in float64 when the prior is held as mean and sd (the engine would get alpha or beta <= 0).
MIN_BETA_PARAMETER = 1e-3
#: Most parts in one dotted key (the schema needs 4): tomllib's time grows ~ cubically with them.
MAX_KEY_PARTS = 100


def _describe(value: object) -> str:
    """A value as the user wrote it in TOML terms (never a Python repr such as ``datetime.date(...)``)."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, datetime.datetime):  # before date: a datetime is a date too
        return f"date-time {value.isoformat()}"
    if isinstance(value, datetime.date):
        return f"date {value.isoformat()}"
    if isinstance(value, datetime.time):
        return f"time {value.isoformat()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _show(value: int | float) -> str:
    """A number as ``:g`` text where that is exact, else in full (``1.0000001``, not ``1``, next to a
    bound of 1); an integer too large for a float is described, not converted."""
    try:
        text = f"{value:g}"
    except OverflowError:
        return f"{'a negative' if value < 0 else 'an'} integer of more than 308 digits"
    if float(text) == value or (isinstance(value, int) and abs(value) >= 10**20):
        return text  # exact, or an integer far beyond every bound
    return str(value) if isinstance(value, int) else repr(float(value))


class _Checker:
    """Collects problems while reading a parsed TOML document."""

    def __init__(self, file: str, currency: str = "EUR"):
        self.file = file
        self.currency = currency  # every amount in a message is written in it
        self.problems: list[str] = []
        #: Fields left out that took their documented default (e.g. a discount rate of 0), so a
        #: report can say that a value was assumed, not given.
        self.defaulted: list[str] = []

    def problem(self, field: str, rule: str) -> None:
        self.problems.append(f"{self.file}: {field}: {rule}")

    # -- structure ------------------------------------------------------------
    def table(self, data, field: str, required=(), optional=()) -> dict | None:
        if data is _MISSING:
            return None  # already reported by the parent table()
        if not isinstance(data, dict):
            self.problem(field, f"must be a table, got {_describe(data)}")
            return None
        allowed = set(required) | set(optional)
        for key in data:
            if key not in allowed:
                self.problem(_join(field, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in data:
                self.problem(_join(field, key), "missing required field")
        return data

    def array_of_tables(self, data, field: str, min_len: int = 1) -> list:
        if data is _MISSING:
            return []  # already reported by the parent table()
        if not isinstance(data, list):
            self.problem(field, f"must be an array of tables, got {_describe(data)}")
            return []
        if len(data) < min_len:
            self.problem(field, f"must have at least {min_len} entr{'y' if min_len == 1 else 'ies'}")
        return data

    # -- scalars --------------------------------------------------------------
    def _note_default(self, data, key: str, field: str, default) -> None:
        if isinstance(data, dict) and key not in data and default is not _MISSING and default is not None:
            self.defaulted.append(_join(field, key))

    def string(self, data: dict, key: str, field: str, default=_MISSING):
        value = data.get(key, default)
        if value is _MISSING:
            return None  # already reported by table()
        self._note_default(data, key, field, default)
        if not isinstance(value, str) or not value.strip():
            self.problem(_join(field, key), f"must be a non-empty string, got {_describe(value)}")
            return None
        return value

    def plain_text(self, value: str, field: str) -> bool:
        """Free text without control characters (tabs and line breaks aside): a bell or a NUL character
        cannot be written to a workbook (openpyxl refuses it, after the run) nor shown in a memo; and
        UTF-8 text (a file always is; bytes of a command line that are not arrive as lone surrogates,
        which no file, memo or terminal can hold)."""
        for i, ch in enumerate(value):
            if unicodedata.category(ch) == "Cs":
                self.problem(field, "must be UTF-8 text")
                return False
            if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r":
                self.problem(field, f"must not contain control characters, got U+{ord(ch):04X} at position {i + 1}")
                return False
        return True

    def number(self, data: dict, key: str, field: str, *, default=_MISSING, integer=False,
               gt=None, ge=None, le=None, lt=None):
        value = data.get(key, default)
        if value is _MISSING:
            return None
        self._note_default(data, key, field, default)
        return self.check_number(value, _join(field, key), integer=integer, gt=gt, ge=ge, le=le, lt=lt)

    def amount(self, data: dict, key: str, field: str, *, default=_MISSING, gt=None, ge=None, le=MAX_AMOUNT):
        """A number of money: within its bounds, and 0 or at least a cent (:data:`MIN_AMOUNT`)."""
        value = self.number(data, key, field, default=default, gt=gt, ge=ge, le=le)
        return self.check_cents(value, _join(field, key), zero_allowed=gt is None)

    def check_cents(self, value, field: str, zero_allowed: bool = True):
        if value is not None and 0 < value < MIN_AMOUNT:
            rule = f"must be 0 or >= {MIN_AMOUNT:g}" if zero_allowed else f"must be >= {MIN_AMOUNT:g}"
            self.problem(field, f"{rule} (one cent: a smaller amount is a unit mistake), "
                         f"got {_show(value)}")
            return None
        return value

    def annual_rate(self, data: dict, key: str, field: str, *, default=_MISSING, ge=None, gt=None):
        """An effective annual rate, at most :data:`MAX_ANNUAL_RATE` (1 = 100 % a year).

        A rate written as a percentage (``10`` meant as 10 %) is refused with the fraction it
        probably means, rather than read as 1,000 % a year.
        """
        value = data.get(key, default) if isinstance(data, dict) else _MISSING
        if value is _MISSING or value is None:
            return None
        self._note_default(data, key, field, default)
        f = _join(field, key)
        low = ge if ge is not None else gt
        # Beyond 100 % a year, or at or below -100 %: the number reads as a percentage.
        if _is_number(value) and abs(value) < 1e300 and (value > MAX_ANNUAL_RATE or (low is not None and value <= -1 and value < low)):
            hint = value / 100
            in_range = hint <= MAX_ANNUAL_RATE and (low is None or (hint >= low if ge is not None else hint > low))
            rule = (f"must be <= {MAX_ANNUAL_RATE:g} (an annual rate: 0.10 is 10 %)" if value > MAX_ANNUAL_RATE
                    else f"must be {'>=' if ge is not None else '>'} {low:g} (an annual rate: -0.05 is -5 %)")
            hint = float(f"{hint:.12g}")  # 12.5 / 100 is 0.125, not 0.12500000000000001
            self.problem(f, f"{rule}, got {_show(value)}" + (f"; did you mean {_show(hint)}?" if in_range else ""))
            return None
        return self.check_number(value, f, ge=ge, gt=gt, le=MAX_ANNUAL_RATE)

    def name(self, data: dict, key: str, field: str, default=_MISSING):
        """A name: a non-empty string that reads as it prints.

        Names identify parties (an investor named by a guarantee, the payer as a guarantor), so two
        names that look the same must be the same: no leading or trailing white space, and no
        control, format (zero-width, byte-order mark, direction marks) or line-separator characters.
        """
        value = self.string(data, key, field, default)
        return None if value is None else self.check_name(value, _join(field, key))

    def check_name(self, value: str, field: str):
        if value != value.strip():
            self.problem(field, f"must not begin or end with white space, got {_describe(value)}")
            return None
        hidden = sorted({ch for ch in value if unicodedata.category(ch) in _HIDDEN_CATEGORIES})
        if hidden:
            codes = ", ".join(f"U+{ord(ch):04X}" for ch in hidden)
            self.problem(field, f"must not contain control or invisible characters ({codes}), got {_describe(value)}")
            return None
        return value

    def unique_name(self, value, field: str, seen: dict) -> bool:
        """Report a name equal to an earlier one (``seen``: key -> (field, name)) once normalised."""
        if value is None:
            return True
        key = name_key(value)
        if key in seen:
            first_field, first = seen[key]
            if first == value:
                self.problem(field, f"must be unique, {value!r} appears twice (duplicate of {first_field})")
            else:
                self.problem(field, f"must be unique, {value!r} is a duplicate of {first_field} {first!r} "
                             f"(the same name but for case, spacing or Unicode form)")
            return False
        seen[key] = (field, value)
        return True

    def check_number(self, value, field: str, *, integer=False, gt=None, ge=None, le=None, lt=None):
        if value is None:
            return None
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(field, f"must be {kind}, got {_describe(value)}")
            return None
        if integer and not isinstance(value, int):
            self.problem(field, f"must be {kind}, got {value!r}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(field, f"must be a finite number, got {value!r}")
            return None
        for bound, ok, text in (
            (gt, lambda v, b: v > b, ">"),
            (ge, lambda v, b: v >= b, ">="),
            (lt, lambda v, b: v < b, "<"),
            (le, lambda v, b: v <= b, "<="),
        ):
            if bound is not None and not ok(value, bound):
                self.problem(field, f"must be {text} {bound:g}, got {_show(value)}")
                return None
        return value

    def boolean(self, data: dict, key: str, field: str, default: bool):
        value = data.get(key, default)
        self._note_default(data, key, field, default)
        if not isinstance(value, bool):
            self.problem(_join(field, key), f"must be true or false, got {_describe(value)}")
            return None
        return value

    def choice(self, data: dict, key: str, field: str, options, default=_MISSING):
        value = data.get(key, default)
        if value is _MISSING:
            return None
        self._note_default(data, key, field, default)
        if value not in options:
            self.problem(_join(field, key), f"must be one of {', '.join(options)}, got {_describe(value)}")
            return None
        return value

    def probability(self, value, field: str):
        return self.check_number(value, field, ge=0, le=1)

    def prior(self, value, field: str) -> Prior | None:
        """A probability: a number (fixed), ``{mean, sd}`` or ``{alpha, beta}``."""
        if isinstance(value, dict):
            keys = set(value)
            if keys <= {"alpha", "beta"} and keys:
                self.table(value, field, required=("alpha", "beta"))
                a = self.number(value, "alpha", field, gt=0, lt=1e9)
                b = self.number(value, "beta", field, gt=0, lt=1e9)
                for key, v in (("alpha", a), ("beta", b)):
                    if v is not None and v < MIN_BETA_PARAMETER:
                        self.problem(_join(field, key), f"must be >= {MIN_BETA_PARAMETER:g} (a smaller Beta parameter "
                                     f"is lost in float64 arithmetic), got {_show(v)}")
                        a = b = None
                return Prior.from_alpha_beta(a, b) if a is not None and b is not None else None
            # sd is required: a table without it used to mean sd = 0, so a variant writing only a new
            # mean silently turned an uncertain prior into a known value. A known value is a number.
            self.table(value, field, optional=("mean", "sd"))
            for key in ("mean", "sd"):
                if key not in value:
                    why = ("" if key == "mean" else
                           f" (a prior needs its sd; a known rate is written as a number, e.g. "
                           f"{field.rsplit('.', 1)[-1]} = {_show(value['mean']) if _is_number(value.get('mean')) else '0.03'})")
                    self.problem(_join(field, key), f"missing required field{why}")
            mean = self.probability(value.get("mean"), _join(field, "mean")) if "mean" in value else None
            sd = self.number(value, "sd", field, ge=0, le=1)
            if mean is None or sd is None:
                return None
            if 0 < sd < MIN_PRIOR_SD:
                # Beta parameters ~ 1/sd^2 would overflow; such a prior is a known value.
                self.problem(_join(field, "sd"), f"must be 0 (known value) or >= {MIN_PRIOR_SD:g}, got {_show(sd)}")
                return None
            if sd > 0 and sd**2 >= mean * (1 - mean):
                self.problem(
                    _join(field, "sd"),
                    f"must be < sqrt(mean*(1-mean)) = {math.sqrt(mean * (1 - mean)):.4g} "
                    f"for a Beta prior with mean {_show(mean)}, got {_show(sd)}",
                )
                return None
            return Prior(mean=float(mean), sd=float(sd))
        p = self.probability(value, field)
        return None if p is None else Prior(mean=float(p))

    def month_list(self, data: dict, key: str, field: str, *, lo: int, hi: int):
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return None
        f = _join(field, key)
        if not isinstance(value, list) or not value:
            self.problem(f, f"must be a non-empty array of months, got {_describe(value)}")
            return None
        months = [self.check_number(v, f"{f}[{i}]", integer=True, ge=lo, le=hi) for i, v in enumerate(value)]
        if any(m is None for m in months):
            return None
        if any(b <= a for a, b in zip(months, months[1:])):
            self.problem(f, f"must be strictly increasing, got {months}")
            return None
        return tuple(months)

    def schedule(self, data: dict, key: str, field: str) -> Schedule | None:
        """``[{month, amount}, {from_month, to_month, per_month}, ...]``."""
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return None
        f = _join(field, key)
        entries: list[tuple[int, float]] = []
        items = self.array_of_tables(value, f)
        ok = isinstance(value, list) and len(value) >= 1
        for i, item in enumerate(items):
            fi = f"{f}[{i}]"
            if isinstance(item, dict) and ("month" in item or "amount" in item):
                if self.table(item, fi, required=("month", "amount")) is None:
                    ok = False
                    continue
                m = self.number(item, "month", fi, integer=True, ge=0, le=MAX_MONTH)
                a = self.amount(item, "amount", fi, ge=0)
                if m is None or a is None:
                    ok = False
                    continue
                entries.append((m, float(a)))
            else:
                if self.table(item, fi, required=("from_month", "to_month", "per_month")) is None:
                    ok = False
                    continue
                m0 = self.number(item, "from_month", fi, integer=True, ge=0, le=MAX_MONTH)
                m1 = self.number(item, "to_month", fi, integer=True, ge=0, le=MAX_MONTH)
                a = self.amount(item, "per_month", fi, ge=0)
                if m0 is None or m1 is None or a is None:
                    ok = False
                    continue
                if m1 < m0:
                    self.problem(_join(fi, "to_month"), f"must be >= from_month ({m0}), got {m1}")
                    ok = False
                    continue
                entries.extend((m, float(a)) for m in range(m0, m1 + 1))
        return Schedule(tuple(entries)) if ok else None


def _is_number(value) -> bool:
    """A TOML integer or finite float (an integer of any size: ``math.isfinite`` would overflow on it)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (isinstance(value, int) or math.isfinite(value)))


#: Unicode categories refused in names: control (Cc), format (Cf: zero-width space and joiners,
#: byte-order mark, direction marks), line and paragraph separators (Zl, Zp), unassigned (Cn),
#: surrogates (Cs) and private use (Co): none prints as itself.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Cs", "Co"})


def name_key(name: str) -> str:
    """What makes two names the same name: NFKC form, case folded, runs of white space as one space.

    ``Alpha Fund``, ``alpha  fund`` and ``Alpha\u00a0Fund`` (a no-break space) share one key, as do
    an ``é`` written as one character (NFC) and as ``e`` plus a combining accent (NFD).
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def _join(field: str, key: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
        key = json.dumps(key)  # quoted as TOML would: keeps the line single and the key visible
    return f"{field}.{key}" if field else key
