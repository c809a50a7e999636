"""Observed outcomes (what the evaluator actually counted) -> one deterministic Outcomes path.

The payment calculator a finance officer uses to check an invoice: no Monte
Carlo, just the contract's formula applied to the counts measured.

Format (TOML)::

    [meta]
    scenario = "../x.toml"     # optional: the scenario these counts settle (for sibsim validate)

    [[measurement]]
    month = 24                 # counts of outcomes achieved before this month
    cohort = 0                 # 0-based index into the scenario's [[cohorts]]
    treated = { job_start = 40, job_sustained = 20, diploma = 15, bijstand = 300 }
    comparison = { job_start = 20, job_sustained = 9, bijstand = 350 }   # raw counts in the comparison group
    # or: counterfactual = { ... }  counts already scaled to the treated cohort's size

Counts are given by the names of the scenario's outcomes (``[outcomes.<name>]``, in the outcome's
unit: participants, events, months or, with a ``scale``, e.g. days) and of its cost items
(``[[costs]]``, in participant-months in the item's states or events): the payer's measured
savings come from the cost items' counts.

or CSV with columns ``month,cohort,group,outcome,count`` (group: treated, comparison
or counterfactual), separated by ``,`` or ``;`` (as a Dutch Excel writes it; the
separator is read from the header line).  Every count is checked against the
scenario (:func:`check_observed`), all problems listed at once:

* treated and comparison counts are whole numbers (in the outcome's unit); counterfactual
  counts may have a fraction (they are scaled estimates);
* an outcome counted once per participant (``count = "first"``, a cumulative milestone) is at
  most the group's size (the cohort's size; the comparison group's size for comparison
  counts); a census (``status``) at most size x census months passed; person-months
  (``occupancy``, cost items in states) at most size x months since the cohort's intake (times
  the outcome's scale); recurrent events and every-entry counts have no upper bound;
* an outcome is never above an outcome it requires, as the journey implies (entering a set
  implies entering every set holding it; a milestone in a set implies entering it; a state
  entered only by a branch at ``d`` months implies the milestone of ``d`` months in the
  branch's set), same group, cohort and month;
* counts are cumulative and never fall;
* both groups are counted at each measurement: a treated count at a month needs the comparison
  (or counterfactual) count of that cohort and month, and the other way round, unless that
  group's journey cannot reach the outcome (write 0 for none);
* counts are dated at months the contract reads for that cohort (measurement months,
  its trigger month, the review month): a count at any other month would be applied
  to a later measurement or to none.

A count not given at a month the contract reads is unchanged since the previous count
(nothing new was counted): its increase is placed after the previous month read, for
events and person-months alike, so no payment falls due before it was measured.
With a modelled counterfactual (``comparison.method = "expected"``) missing counterfactual
counts are the model's expectation at the prior means.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path

import numpy as np

from .contracts import Contract
from .journey import Outcome
from .errors import ScenarioError
from .montecarlo import GroupOutcomes, Outcomes, split_counts
from .scenario import _join, _show, parse_toml, read_scenario_bytes

#: Largest count accepted (a comparison group of 1e8 members over 1,800 months is 1.8e11 months):
#: beyond it prices x counts could overflow to inf and the ledgers to NaN.
MAX_COUNT = 1e12

GROUPS = ("treated", "comparison", "counterfactual")

#: Outcome kinds counted at most once per participant (with ``count = "first"``).
_ONCE = ("entry", "event", "milestone")


def measurables(contract: Contract) -> dict[str, Outcome]:
    """What an observed file can count: the contract's outcomes, then its cost items, by name."""
    return {m.name: m for m in contract.measures}


def _once(m: Outcome) -> bool:
    return m.kind in _ONCE and (m.count == "first" or (m.kind == "milestone" and not m.consecutive))


def requirements(contract: Contract) -> dict[str, list[str]]:
    """For each once-per-participant outcome, the once-per-participant outcomes it implies were reached
    no later (so its count is never above theirs), from the structure of the journey alone.

    * an entry into a set ``A`` implies the entry into every set ``B`` holding ``A``;
    * a milestone in a set ``S`` implies the entry into every set holding ``S``, and a milestone of
      fewer consecutive months in a set holding ``S``;
    * an entry into states reached only by branches at ``d`` months in sets within ``S`` (not a start
      state, no exit or time limit into them from outside) implies the consecutive milestone of at
      most ``d`` months in ``S`` (``d - 1`` when the branch's target is outside ``S``: the month the
      branch fires then belongs to the target, not to ``S``).

    Only the nearest requirements are listed: ``long_term_contract`` requires ``job_sustained``,
    which requires ``job_start``, so a long-term contract above the job starts is reported on the
    first of those counts that it breaks, not twice.
    """
    journey = contract.journey
    once = [o for o in contract.outcomes if _once(o) and o.kind in ("entry", "milestone")]
    starts = {s for s, _ in journey.start} | {s for c in contract.cohorts for s, _ in c.start} \
        | {s for s, _ in contract.comparison.journey.start}
    out: dict[str, list[str]] = {}
    for a in once:
        A = set(a.states)
        for b in once:
            if a is b or not a.window == b.window or a.lag != b.lag:
                continue
            B = set(b.states)
            implied = False
            if b.kind == "entry" and A <= B:
                implied = a.kind == "entry" or a.kind == "milestone"
            elif a.kind == "milestone" and b.kind == "milestone" and A <= B and b.consecutive and a.consecutive:
                implied = b.months <= a.months
            elif a.kind == "entry" and b.kind == "milestone" and b.consecutive:
                outside = [(st.name, t) for st in journey.states if st.name not in A
                           for t in [e.to for e in st.exits] + ([st.after_limit] if st.after_limit else [])]
                branches = [br for br in journey.branches if br.to in A]
                implied = (A.isdisjoint(starts) and not any(t in A for _, t in outside) and branches
                           and all(set(br.states) <= B and br.at_month - (br.to not in B) >= b.months
                                   for br in branches))
            if implied and b.name not in out.get(a.name, []):
                out.setdefault(a.name, []).append(b.name)
    # Keep the nearest: drop a -> b when a -> c -> b (one at a time, so that outcomes requiring each
    # other, e.g. entries into the same states, keep one of their links).
    for a, needed in out.items():
        for b in list(needed):
            if any(c != b and b in out.get(c, ()) for c in needed):
                needed.remove(b)
    return out

CSV_COLUMNS = ("month", "cohort", "group", "outcome", "count")

#: A number written with a decimal comma or a thousands separator (``2,5``, ``1,308``, ``1.308,5``).
_COMMA_NUMBER = re.compile(r"[+-]?\d[\d.]*,\d+")


@dataclass(frozen=True)
class Observed:
    """Cumulative counts: ``{(group, cohort, measurable): {month: count}}``."""

    counts: dict
    source: str = "<observed>"
    #: Where each count was read, for error messages: ``{(group, cohort, measurable, month): (entry, field)}``
    #: (``entry`` is ``measurement[i]`` or ``line n``).  Counts built in code may leave it empty.
    where: dict = dataclass_field(default_factory=dict, compare=False, repr=False)


def _problem(source, field, rule):
    return f"{source}: {field}: {rule}"


def _csv_delimiter(header: str) -> str:
    """``;`` when the header is separated by semicolons (a Dutch Excel export), else ``,``."""
    for delimiter in (",", ";"):
        if set(CSV_COLUMNS) <= {c.strip() for c in header.split(delimiter)}:
            return delimiter
    return ";" if header.count(";") > header.count(",") else ","


def _csv_count(text: str):
    """A CSV count cell as int or float; None when it is not a number (the caller words the problem)."""
    text = text.strip()
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return None


def _num(value: float) -> str:
    """A count as written: ``1234567``, not ``1.23457e+06`` (``:g``) nor ``1234567.0``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return _show(value)


def _count_problem(group: str, outcome: str, count, unit: str | None = None) -> str | None:
    """Why ``count`` is not an acceptable count, or None; ``unit`` (participants, events, months...)
    names what is counted when the scenario is known."""
    if isinstance(count, bool) or not isinstance(count, (int, float)) or count < 0 \
            or isinstance(count, float) and not math.isfinite(count):  # (an int of 400 digits: no float)
        return f"count must be a finite number >= 0, got {count!r}"
    if count > MAX_COUNT:
        return f"count must be <= {MAX_COUNT:g}, got {_show(count)}"
    # Participants, events and the months (or days) of monthly records are counted whole; only a
    # counterfactual (comparison counts already scaled to the treated size) is an estimate. The file
    # alone does not say what a name counts: the unit is named once the scenario is known.
    if group != "counterfactual" and isinstance(count, float) and not count.is_integer():
        return f"count must be a whole number{f' of {unit}' if unit else ''}, got {_show(count)}"
    return None


def read_input_text(path: Path) -> str:
    """The text of an input file (observed counts, a census), or one ScenarioError line ``file: rule``.

    A regular file of at most 1 MB, read with a bounded read (a FIFO hung, /dev/zero was read
    without end); ``utf-8-sig``: a spreadsheet's byte-order mark is not a column name.
    """
    try:
        return read_scenario_bytes(path).decode("utf-8-sig")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read file ({exc})") from None


def load_observed(path: str | Path) -> Observed:
    """Read observed counts from a ``.toml`` or ``.csv`` file; raise :class:`ScenarioError` on bad input.

    Only the file's own rules are checked here; :func:`check_observed` checks the counts against
    the scenario.
    """
    path = Path(path)
    name = str(path)
    text = read_input_text(path)
    rows: list[tuple] = []  # (entry, field, month, cohort, group, outcome, count)
    problems: list[str] = []
    if path.suffix.lower() == ".csv":
        lines = text.splitlines()
        delimiter = _csv_delimiter(lines[0] if lines else "")
        reader = csv.reader(lines, delimiter=delimiter)
        done = 0  # physical lines read without error: the one after them is the bad one
        try:
            header = [c.strip() for c in next(reader, [])]
            done = reader.line_num
            missing = set(CSV_COLUMNS) - set(header)
            if missing:
                raise ScenarioError(_problem(name, "header", f"missing columns: {', '.join(sorted(missing))}"))
            twice = sorted(c for c in CSV_COLUMNS if header.count(c) > 1)
            if twice:  # which of the two would be read is a guess
                raise ScenarioError(_problem(name, "header", f"columns given more than once: {', '.join(twice)}"))
            index = {column: header.index(column) for column in CSV_COLUMNS}
            for cells in reader:
                done = reader.line_num
                if not any(c.strip() for c in cells):  # a blank line, or a spreadsheet's empty row ";;;;"
                    continue
                field = f"line {reader.line_num}"  # the physical line, blank lines included
                if len(cells) != len(header):
                    # A decimal comma in a comma-separated file splits a count in two: never read half of it.
                    problems.append(_problem(name, field, f"must have {len(header)} fields like the header "
                                                          f"(separated by {delimiter!r}), got {len(cells)}"))
                    continue
                rec = {column: cells[i].strip() for column, i in index.items()}
                values = {}
                for column in ("month", "cohort"):
                    try:
                        values[column] = int(rec[column])
                    except ValueError:
                        problems.append(_problem(name, field, f"{column} must be an integer, got {rec[column]!r}"))
                count = _csv_count(rec["count"])
                if count is None:
                    rule = ("a number without a decimal comma or thousands separator"
                            if _COMMA_NUMBER.fullmatch(rec["count"]) else "a number")
                    problems.append(_problem(name, field, f"count must be {rule}, got {rec['count']!r}"))
                elif len(values) == 2:
                    rows.append((field, field, values["month"], values["cohort"], rec["group"], rec["outcome"],
                                 count))
        except csv.Error as exc:  # e.g. a field larger than the csv module's limit
            raise ScenarioError(f"{name}: line {done + 1}: not valid CSV: {exc}") from None
    else:
        doc = parse_toml(text, name)  # every TOML failure (deep nesting included) as one line
        for key in sorted(set(doc) - {"measurement", "meta"}):
            problems.append(_problem(name, _join("", key), "unknown key (allowed: measurement, meta)"))
        problems += meta_problems(doc, name)
        items = doc.get("measurement")
        if not isinstance(items, list) or not items:
            raise ScenarioError(problems + [_problem(name, "measurement", "must be a non-empty array of tables")])
        for i, item in enumerate(items):
            entry = f"measurement[{i}]"
            if not isinstance(item, dict):
                problems.append(_problem(name, entry, "must be a table"))
                continue
            for key in sorted(set(item) - {"month", "cohort", *GROUPS}):
                problems.append(_problem(name, _join(entry, key), "unknown key (allowed: month, cohort, "
                                                                 + ", ".join(GROUPS) + ")"))
            month, cohort = item.get("month"), item.get("cohort")
            for key, value in (("month", month), ("cohort", cohort)):
                if key not in item:
                    problems.append(_problem(name, f"{entry}.{key}", "missing required field"))
                elif isinstance(value, bool) or not isinstance(value, int):
                    problems.append(_problem(name, f"{entry}.{key}", f"must be an integer, got {value!r}"))
            for group in GROUPS:
                counts = item.get(group, {})
                if not isinstance(counts, dict):
                    problems.append(_problem(name, f"{entry}.{group}", "must be a table of outcome = count"))
                    continue
                for outcome, count in counts.items():
                    rows.append((entry, _join(f"{entry}.{group}", outcome), month, cohort, group, outcome, count))
    counts: dict = {}
    where: dict = {}
    for entry, field, month, cohort, group, outcome, count in rows:
        if group not in GROUPS:
            problems.append(_problem(name, field, f"group must be one of {', '.join(GROUPS)}, got {group!r}"))
        elif not isinstance(outcome, str) or not outcome:
            problems.append(_problem(name, field, f"outcome must be the name of an outcome or cost item, got {outcome!r}"))
        elif (why := _count_problem(group, outcome, count)) is not None:
            problems.append(_problem(name, field, why))
        elif isinstance(month, int) and not isinstance(month, bool) and isinstance(cohort, int) \
                and not isinstance(cohort, bool):
            key = (group, cohort, outcome, month)
            if key in where:
                problems.append(_problem(name, field, f"count must be given once per cohort and month, got a second "
                                                      f"{group} {outcome} count for cohort {cohort} at month {month} "
                                                      f"(first: {where[key][1]})"))
                continue
            counts.setdefault((group, cohort, outcome), {})[month] = float(count)
            where[key] = (entry, field)
    if problems:
        raise ScenarioError(problems)
    return Observed(counts, name, where)


def meta_problems(doc: dict, name: str) -> list[str]:
    """Problems of the ``[meta]`` table of an observed-outcomes or evidence file: a table, whose
    ``scenario`` (optional) names a ``.toml`` file (read by :func:`declared_scenario`)."""
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        return [_problem(name, "meta", f"must be a table, got {meta!r}")]
    if "scenario" in meta and not (isinstance(meta["scenario"], str) and meta["scenario"].endswith(".toml")):
        return [_problem(name, "meta.scenario", f"must be the file name of a scenario (.toml), got {meta['scenario']!r}")]
    return []


def declared_scenario(path: str | Path) -> Path | None:
    """The scenario an observed-outcomes or evidence TOML file names in ``[meta] scenario``, relative
    to the file (None for a CSV, or when it names none); the file itself is not validated here."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return None
    try:
        doc = parse_toml(read_scenario_bytes(path).decode("utf-8-sig"), str(path))  # regular, bounded
    except (OSError, UnicodeDecodeError, ScenarioError):
        return None
    meta = doc.get("meta")
    name = meta.get("scenario") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name.endswith(".toml"):
        return None
    return Path(os.path.normpath(path.parent / name))


def months_read(contract: Contract, cohort: int) -> dict[int, str]:
    """Months at which the contract reads cohort ``cohort``'s counts, each with what reads it.

    Measurement months (rate card, tiers, savings share), the cohort's own trigger month (its
    follow-up; the pooled final payment adds the cohorts' own counts) and the review month.
    """
    out: dict[int, list[str]] = {}
    for m in contract.payer.measurement_months:
        out.setdefault(int(m), []).append("measurement month")
    if contract.trigger_months is not None:
        out.setdefault(int(contract.trigger_months[0][cohort]), []).append("trigger month")
    if contract.payer.review is not None:
        out.setdefault(int(contract.payer.review.month), []).append("review month")
    return {m: " and ".join(out[m]) for m in sorted(out)}


def _describe_months(months: dict[int, str]) -> str:
    by_kind: dict[str, list[int]] = {}
    for m, kind in months.items():
        by_kind.setdefault(kind, []).append(m)
    return "; ".join(f"{kind}{'s' if len(ms) > 1 else ''} {', '.join(map(str, ms))}" for kind, ms in by_kind.items())


def _sizes(contract: Contract, group: str) -> np.ndarray:
    """Members per cohort of ``group``: counterfactual counts are scaled to the treated cohort's size."""
    if group == "comparison":
        return contract.comparison_sizes
    return np.array([c.size for c in contract.cohorts], dtype=np.int64)


def check_observed(contract: Contract, observed: Observed) -> list[str]:
    """Every way the counts contradict the scenario, as ``file: field: rule`` lines (see the module docstring)."""
    T = contract.horizon_months
    C = len(contract.cohorts)
    src = observed.source
    problems: list[str] = []

    def at(key, month, part=None):
        """``field: `` prefix where a count was read (``measurement[i].month: ``, ``line n: month ``...)."""
        group, cohort, outcome = key
        entry, field = observed.where.get((group, cohort, outcome, month), (None, None))
        if entry is None:  # counts built in code
            return f"cohort {cohort}.{group}.{outcome}: " + (f"{part} " if part else "")
        if part is None:
            return f"{field}: "
        return f"{entry}: {part} " if entry.startswith("line ") else f"{entry}.{part}: "

    known = measurables(contract)
    requires = requirements(contract)
    for key, series in observed.counts.items():
        group, cohort, outcome = key
        first = min(series)
        if outcome not in known:
            problems.append(f"{src}: {at(key, first, None)}outcome must be one of the scenario's outcomes or cost "
                            f"items ({', '.join(known)}), got {outcome!r}")
            continue
        definition = known[outcome]
        if not 0 <= cohort < C:
            problems.append(f"{src}: {at(key, first, 'cohort')}must be 0..{C - 1}, got {cohort}")
            continue
        intake = contract.cohorts[cohort].intake_month
        size = int(_sizes(contract, group)[cohort])
        whose = {"treated": f"cohort {cohort}'s size", "comparison": f"cohort {cohort}'s comparison group size",
                 "counterfactual": f"cohort {cohort}'s size"}[group]
        note = ": counterfactual counts are scaled to it" if group == "counterfactual" else ""
        read = months_read(contract, cohort)
        bad_counts = [m for m in series if _count_problem(group, outcome, series[m]) is not None]
        for month in sorted(bad_counts):  # counts built in code skip load_observed's checks
            problems.append(f"{src}: {at(key, month)}{_count_problem(group, outcome, series[month], definition.unit)}")
        if bad_counts:
            continue
        for month in sorted(series):
            count = series[month]
            if not 1 <= month <= T:
                problems.append(f"{src}: {at(key, month, 'month')}must be 1..{T}, got {month}")
                continue
            if month not in read:
                problems.append(f"{src}: {at(key, month, 'month')}must be a month the contract counts cohort "
                                f"{cohort} at ({_describe_months(read)}), got {month}")
            if month <= intake and count > 0:
                problems.append(f"{src}: {at(key, month)}count must be 0 up to cohort {cohort}'s intake "
                                f"(month {intake}), got {_num(count)} at month {month}")
            elif definition.kind == "occupancy":
                # A month in the states is dated ``lag`` months later and counts only within the window:
                # counted before ``month`` are the months intake .. month - lag - 1, at most ``window``.
                elapsed = max(month - intake - definition.lag, 0)
                if definition.window is not None:
                    elapsed = min(elapsed, definition.window)
                bound = size * elapsed * definition.scale
                if count > bound + 1e-9 * bound:
                    unit = "" if definition.scale == 1 else f" x {_show(definition.scale)} {definition.unit} a month"
                    since = "months since its intake" + (f" less the {definition.lag}-month lag" if definition.lag
                                                         else "")
                    if definition.window is not None:
                        since += f" (at most the {definition.window}-month window)"
                    problems.append(f"{src}: {at(key, month)}must be <= {whose} x {since}{unit} "
                                    f"({size} x {elapsed}{unit} = {_num(bound)}{note}), got {_num(count)}")
            elif definition.kind == "status":
                window = definition.window if definition.window is not None else math.inf
                censuses = sum(1 for k in definition.at_months if k < window and intake + k + definition.lag < month)
                if count > size * censuses:
                    problems.append(f"{src}: {at(key, month)}must be <= {whose} x census months passed "
                                    f"({size} x {censuses} = {size * censuses}{note}), got {_num(count)}")
            elif _once(definition) and count > size:  # counted once per participant
                problems.append(f"{src}: {at(key, month)}must be <= {whose} ({size}{note}), got {_num(count)}")
            for needed in requires.get(outcome, ()):
                base = observed.counts.get((group, cohort, needed), {})
                before = [m for m in base if m <= month]  # a count not given at a month is unchanged since
                if before:
                    last = max(before)
                    value = base[last]
                    shown = f"{_num(value)}" if last == month else f"{_num(value)}, as counted at month {last}"
                else:
                    value, shown = 0.0, "0: none counted"
                if count > value:
                    problems.append(f"{src}: {at(key, month)}must be <= the {needed} count of the same group, "
                                    f"cohort and month ({shown}), got {_num(count)}")
        months = sorted(series)
        for m0, m1 in zip(months, months[1:]):
            if series[m1] < series[m0]:
                problems.append(f"{src}: {at(key, m1)}cumulative counts must not fall, got {_num(series[m0])} at "
                                f"month {m0}, then {_num(series[m1])} at month {m1}")
                break
            elapsed = m1 - m0
            if definition.kind == "occupancy" and intake < m0 and m1 <= T \
                    and series[m1] - series[m0] > size * elapsed * definition.scale * (1 + 1e-9):
                # Each member occupies the states at most once a month between two counts as well.
                per = "" if definition.scale == 1 else f" x {_show(definition.scale)}"
                problems.append(f"{src}: {at(key, m1)}must rise by at most {whose} x months since the count at "
                                f"month {m0} ({size} x {elapsed}{per} = {_num(size * elapsed * definition.scale)}"
                                f"{note}), got "
                                f"{_num(series[m1] - series[m0])} more ({_num(series[m0])} at month {m0}, "
                                f"{_num(series[m1])} at month {m1})")
    groups_given = {g for g, _, _ in observed.counts}
    if "comparison" in groups_given and "counterfactual" in groups_given:
        problems.append(_problem(src, "measurement", "give comparison or counterfactual counts, not both"))
    elif groups_given & {"comparison", "counterfactual"}:
        problems += _unpaired(contract, observed, "comparison" if "comparison" in groups_given else "counterfactual",
                              at)
    # One line per problem, not per count of a misplaced measurement.
    return list(dict.fromkeys(problems))


def _expected_at_means(contract: Contract, group: str, sizes: np.ndarray) -> np.ndarray:
    """Expected counts (1, C, measures, T) of ``group``'s journey at its prior means."""
    from .expectation import expected_group
    from .montecarlo import start_distributions

    journey = contract.journey if group == "treated" else contract.comparison.journey
    means = np.array([[p.mean for _, p in journey.parameters]])
    return expected_group(journey, contract.measures, means,
                          np.array([c.intake_month for c in contract.cohorts], dtype=np.int64),
                          np.asarray(sizes, dtype=np.int64),
                          start_distributions(contract, comparison=group != "treated"), contract.horizon_months)


def _possible(contract: Contract, group: str) -> set[str]:
    """Outcomes and cost items ``group``'s journey can produce at its prior means (a fixed 0, or an
    unreachable state, cannot): only those need a count to be read."""
    sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    totals = _expected_at_means(contract, group, sizes).sum(axis=(0, 1, 3))
    return {m.name for m, total in zip(contract.measures, totals) if total > 0}


def _unpaired(contract: Contract, observed: Observed, other: str, at) -> list[str]:
    """Counts given for one group but not for the other at the same measurement.

    Net outcomes are treated minus counterfactual: a count missing on one side would be read as
    unchanged since that side's previous count (or 0), e.g. a treated count of 9 against no comparison
    count paid as 9 net.  Zero is fine, but it must be written.
    """
    problems = []
    possible = {"treated": _possible(contract, "treated"), other: _possible(contract, "comparison")}
    T, C = contract.horizon_months, len(contract.cohorts)
    for (group, cohort, outcome), series in observed.counts.items():
        if group not in possible or not 0 <= cohort < C:
            continue
        partner = other if group == "treated" else "treated"
        if outcome not in possible[partner]:
            continue
        theirs = observed.counts.get((partner, cohort, outcome), {})
        intake = contract.cohorts[cohort].intake_month
        for month in sorted(series):
            if month in theirs or not intake < month <= T:
                continue
            before = [m for m in theirs if m < month]
            read = (f"{_num(theirs[max(before)])}, counted at month {max(before)}" if before else "0: none counted")
            problems.append(f"{observed.source}: {at((group, cohort, outcome), month)}needs a {partner} {outcome} "
                            f"count of cohort {cohort} at month {month} too (give 0 if there was none): without "
                            f"it the {partner} count is read as {read}")
    return problems


def outcomes_from_observed(contract: Contract, observed: Observed) -> Outcomes:
    """One path of Outcomes reproducing the observed cumulative counts at the months the contract reads.

    The increase of a count at month ``m`` over the previous month read (or the cohort's intake)
    is placed after that month: events in month ``m - 1``, months off benefits spread evenly over
    the months between.  Raises :class:`ScenarioError` listing every problem of
    :func:`check_observed`.
    """
    problems = check_observed(contract, observed)
    if problems:
        raise ScenarioError(problems)
    T = contract.horizon_months
    C = len(contract.cohorts)
    src = observed.source
    groups_given = {g for g, _, _ in observed.counts}

    known = measurables(contract)
    names = list(known)
    scales = np.array([m.scale for m in contract.measures])

    def build(group: str):
        counts = np.zeros((1, C, len(names), T))
        for (g, cohort, outcome), series in observed.counts.items():
            if g != group:
                continue
            k = names.index(outcome)
            spread = known[outcome].kind == "occupancy"
            intake = contract.cohorts[cohort].intake_month
            read = list(months_read(contract, cohort))
            previous = 0.0
            for month in sorted(series):
                increment = (series[month] - previous) / scales[k]  # engine counts are before the scale
                previous = series[month]
                if increment == 0:  # flat (or zero up to the intake): nothing happened since the last month read
                    continue
                if spread:
                    # Spread since the previous month the contract read (or the intake), not since the
                    # previous count: a rise after a flat stretch, or after a month with no count, must
                    # not reach back into a measurement it was not counted at.
                    start = max([intake] + [m for m in read if m < month])
                    counts[0, cohort, k, start:month] += increment / (month - start)
                else:
                    counts[0, cohort, k, month - 1] += increment
        return split_counts(contract, counts)

    sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    t_events, t_costs = build("treated")
    if "comparison" in groups_given:
        c_sizes = contract.comparison_sizes
        c_events, c_costs = build("comparison")
    elif "counterfactual" in groups_given:
        c_sizes = sizes
        c_events, c_costs = build("counterfactual")
    elif contract.comparison.method != "expected":
        raise ScenarioError(_problem(src, "measurement", "no comparison or counterfactual counts: the payments "
                                     "depend on treated minus counterfactual"))
    else:  # modelled counterfactual at the prior means
        c_sizes = sizes
        c_events, c_costs = split_counts(contract, _expected_at_means(contract, "comparison", sizes))
    stop = contract.external_stop
    # A possible external stop (probability below 1) is a risk of the simulation, not an observation:
    # settling observed counts, it did not happen.  A certain one (probability 1, a what-if) applies.
    stopped = np.zeros(1, dtype=bool) if stop is not None and stop.probability < 1 else None
    return Outcomes(
        treated=GroupOutcomes(t_events, t_costs, sizes, {}),
        comparison=GroupOutcomes(c_events, c_costs, np.asarray(c_sizes), {}),
        external_stop=stopped,
    )
