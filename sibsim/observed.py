"""Observed outcomes (what the evaluator actually counted) -> one deterministic Outcomes path.

The payment calculator a finance officer uses to check an invoice: no Monte
Carlo, just the contract's formula applied to the counts measured.

Format (TOML)::

    [[measurement]]
    month = 24                 # counts of outcomes achieved before this month
    cohort = 0                 # 0-based index into the scenario's [[cohorts]]
    treated = { job_sustained = 40, diploma = 100, benefit_months = 300 }
    comparison = { job_sustained = 20, benefit_months = 150 }   # raw counts in the comparison group
    # or: counterfactual = { ... }  counts already scaled to the treated cohort's size

or CSV with columns ``month,cohort,group,outcome,count`` (group: treated, comparison
or counterfactual).  Counts are cumulative and may not fall from one measurement to
the next.  With a modelled counterfactual (``comparison.method = "expected"``)
missing counterfactual counts are the model's expectation at the prior means.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path

import numpy as np

from .contracts import MEASURABLE, Contract
from .errors import ScenarioError
from .montecarlo import GroupOutcomes, Outcomes
from .scenario import _join, _show, parse_toml, read_scenario_bytes

#: Largest count accepted (a comparison group of 1e8 members over 1,800 months is 1.8e11 months):
#: beyond it prices x counts could overflow to inf and the ledgers to NaN.
MAX_COUNT = 1e12

GROUPS = ("treated", "comparison", "counterfactual")


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


def load_observed(path: str | Path) -> Observed:
    """Read observed counts from a ``.toml`` or ``.csv`` file; raise :class:`ScenarioError` on bad input."""
    path = Path(path)
    name = str(path)
    try:
        # A regular file of at most 1 MB, read with a bounded read (a FIFO hung, /dev/zero was read without end);
        # -sig: a spreadsheet's byte-order mark is not a column name.
        text = read_scenario_bytes(path).decode("utf-8-sig")
    except FileNotFoundError:
        raise ScenarioError(f"{name}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{name}: cannot read file ({exc})") from None
    rows: list[tuple] = []  # (entry, field, month, cohort, group, outcome, count)
    problems: list[str] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        try:
            missing = {"month", "cohort", "group", "outcome", "count"} - set(reader.fieldnames or ())
            if missing:
                raise ScenarioError(_problem(name, "header", f"missing columns: {', '.join(sorted(missing))}"))
            for rec in reader:
                field = f"line {reader.line_num}"  # the physical line, blank lines included
                values = {}
                for column, kind, parse in (("month", "an integer", int), ("cohort", "an integer", int),
                                            ("count", "a number", float)):
                    try:
                        values[column] = parse(rec[column])
                    except (TypeError, ValueError):
                        problems.append(_problem(name, field, f"{column} must be {kind}, got {rec[column]!r}"))
                if len(values) == 3:
                    rows.append((field, field, values["month"], values["cohort"], rec["group"], rec["outcome"],
                                 values["count"]))
        except csv.Error as exc:  # e.g. a field larger than the csv module's limit
            raise ScenarioError(f"{name}: line {reader.line_num + 1}: not valid CSV: {exc}") from None
    else:
        doc = parse_toml(text, name)  # every TOML failure (deep nesting included) as one line
        for key in sorted(set(doc) - {"measurement", "meta"}):
            problems.append(_problem(name, _join("", key), "unknown key (allowed: measurement, meta)"))
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
        elif outcome not in MEASURABLE:
            problems.append(_problem(name, field, f"outcome must be one of {', '.join(MEASURABLE)}, got {outcome!r}"))
        elif isinstance(count, bool) or not isinstance(count, (int, float)) or count < 0 \
                or isinstance(count, float) and not math.isfinite(count):  # (an int of 400 digits: no float)
            problems.append(_problem(name, field, f"count must be a finite number >= 0, got {count!r}"))
        elif count > MAX_COUNT:
            problems.append(_problem(name, field, f"count must be <= {MAX_COUNT:g}, got {_show(count)}"))
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


def outcomes_from_observed(contract: Contract, observed: Observed) -> Outcomes:
    """One path of Outcomes reproducing the observed cumulative counts at their months.

    Events counted before month ``m`` are placed in month ``m - 1``; months off benefits are
    spread evenly over the months since the previous count (or the cohort's intake).
    """
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

    for key, series in observed.counts.items():
        group, cohort, outcome = key
        first = min(series)
        if not 0 <= cohort < C:
            problems.append(f"{src}: {at(key, first, 'cohort')}must be 0..{C - 1}, got {cohort}")
            continue
        intake = contract.cohorts[cohort].intake_month
        for month in sorted(series):
            if not 1 <= month <= T:
                problems.append(f"{src}: {at(key, month, 'month')}must be 1..{T}, got {month}")
            elif month <= intake and series[month] > 0:
                problems.append(f"{src}: {at(key, month)}count must be 0 up to cohort {cohort}'s intake "
                                f"(month {intake}), got {series[month]:g} at month {month}")
        months = sorted(series)
        for m0, m1 in zip(months, months[1:]):
            if series[m1] < series[m0]:
                problems.append(f"{src}: {at(key, m1)}cumulative counts must not fall, got {series[m0]:g} at "
                                f"month {m0}, then {series[m1]:g} at month {m1}")
                break
    groups_given = {g for g, _, _ in observed.counts}
    if "comparison" in groups_given and "counterfactual" in groups_given:
        problems.append(_problem(src, "measurement", "give comparison or counterfactual counts, not both"))
    if problems:  # one line per problem, not per count of a misplaced measurement
        raise ScenarioError(list(dict.fromkeys(problems)))

    def build(group: str):
        events = np.zeros((1, C, len(MEASURABLE) - 1, T))
        employed = np.zeros((1, C, T))
        for (g, cohort, outcome), series in observed.counts.items():
            if g != group:
                continue
            k = MEASURABLE.index(outcome)
            intake = contract.cohorts[cohort].intake_month
            previous_month, previous = intake, 0.0
            for month in sorted(series):
                increment = series[month] - previous
                if increment == 0:  # e.g. a zero count at or before the intake
                    continue
                if outcome == "benefit_months":  # spread over the months since the previous count
                    employed[0, cohort, previous_month:month] += increment / (month - previous_month)
                else:
                    events[0, cohort, k, month - 1] += increment
                previous_month, previous = max(month, intake), series[month]
        return events, employed

    sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    t_events, t_employed = build("treated")
    if "comparison" in groups_given:
        c_sizes = contract.comparison_sizes
        c_events, c_employed = build("comparison")
    elif "counterfactual" in groups_given:
        c_sizes = sizes
        c_events, c_employed = build("counterfactual")
    elif contract.comparison.method != "expected":
        raise ScenarioError(_problem(src, "measurement", "no comparison or counterfactual counts: the payments "
                                     "depend on treated minus counterfactual"))
    else:  # modelled counterfactual at the prior means
        from .expectation import expected_group

        means = {k: np.array([p.mean]) for k, p in contract.comparison.journey.priors().items()}
        c_sizes = sizes
        c_events, c_employed = expected_group(means, contract.comparison.journey.max_training_months,
                                              np.array([c.intake_month for c in contract.cohorts]), sizes, T,
                                              contract.sustained_job_months)
    return Outcomes(
        treated=GroupOutcomes(t_events, t_employed, sizes, {}),
        comparison=GroupOutcomes(c_events, c_employed, np.asarray(c_sizes), {}),
    )
