"""Where the contract stands: a state census of the participants at month ``m``.

Halfway through a contract the provider and the evaluator know, per cohort, how many participants
are in each state of the journey (in training, in work for d months, back on benefits) and what
has been measured.  A census file says so; the re-forecast (:mod:`sibsim.reforecast`) carries each
participant on from there.

Format (TOML)::

    [meta]
    scenario = "../utrecht_colour_kitchen.toml"   # optional: the deal counted (checked like observed files)
    month = 24                # taken at the start of month 24: months 0 .. 23 have happened
    observed = "utrecht_colour_kitchen_month24_observed.toml"   # what was measured up to month 24

    [[census]]
    group = "treated"         # or "comparison" (a comparison group that is followed, not modelled)
    cohort = 0                # 0-based index into the scenario's [[cohorts]]
    state = "job_with_diploma"
    count = 3                 # participants in this state, with this history
    months = 4                # consecutive months in the state before month 24 (0: arriving in it at month 24)
    # arrived_from = "job_search_with_diploma"   # with months = 0: the state occupied in month 23
    runs = [ { states = ["job", "job_with_diploma"], months = 9 } ]   # consecutive months in a set
    totals = [ { states = ["job"], months = 11 } ]                   # cumulative months in a set
    already = ["diploma", "job_start"]   # once-per-participant outcomes they have already had

The rules, each checked at its boundary (one line per problem, naming file, field and rule):

* ``month`` is a month the contract reads counts at (a measurement month), below the horizon, and
  after the first intake: the observed counts at that month are then exactly what happened before it;
* every cohort that started before ``month`` is counted in full: its rows hold the cohort's size
  (the comparison group's size for ``comparison``); a cohort starting at or after it has none;
* the state is where the participant is at the start of ``month``: after every transition dated
  before it (an exit or a time limit at the end of month ``m - 1``), before any of month ``m``;
* ``months`` is at most the months since the cohort's intake and below the state's time limit (at
  the limit it has moved on); 0 means the participant arrives in the state at ``month``, and then
  ``arrived_from`` names the state occupied in month ``m - 1`` (its entries into the state's sets
  are counted at ``month``, by the re-forecast); with 1 or more it is not given;
* a *run* (``runs``) is the consecutive months up to month ``m - 1`` in a set of states the journey
  keeps runs of (a branch's or a milestone's states) that holds the state occupied in ``m - 1``
  (the state, or ``arrived_from``); it is at least ``months`` (at least 1) and at most the months
  since intake.  It is **required** where the state can be entered from another state of the set
  (a long-term contract after six months in a job), and for an arrival in a set holding both
  states: there the months in the state do not tell it.  Otherwise it is the months in the state
  (the set was entered with the state);
* a *total* (``totals``) is given for the set of a cumulative milestone (``consecutive = false``),
  at most the months since intake; required for each such milestone not in ``already``;
* ``already`` names outcomes counted once per participant (a first entry, a first event, a first
  or cumulative milestone) that occurred for these participants before ``month``, whether or not
  they were counted (outside the window a first occurrence still uses the count up).  Implied
  ones are required: the first entry into a set holding the state, a milestone of at most the
  row's run in its set (or total);
* per cohort and outcome, the participants with it in ``already`` agree with the observed count at
  ``month``: equal when the outcome's window covers every month before ``month``, at least it
  otherwise;
* no measure has a ``lag``: occurrences before ``month`` counted after it are not in a census.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .contracts import Contract
from .errors import ScenarioError
from .observed import Observed, load_observed, meta_problems, months_read, read_input_text
from .scenario import _show, parse_toml

GROUPS = ("treated", "comparison")
_ROW_KEYS = {"group", "cohort", "state", "count", "months", "runs", "totals", "already", "arrived_from"}


@dataclass(frozen=True)
class CensusRow:
    """Participants of one cohort in one state with the same history (see the module notes).

    Attributes
    ----------
    cohort : int
        Index into the scenario's cohorts.
    state : str
    count : int
        Participants.
    months : int
        Consecutive months in ``state``, up to and including the month before the census.
    runs, totals : tuple of (tuple of str, int)
        Consecutive (runs) and cumulative (totals) months in sets of states, where given.
    already : tuple of str
        Once-per-participant outcomes already had.
    """

    cohort: int
    state: str
    count: int
    months: int
    runs: tuple[tuple[tuple[str, ...], int], ...] = ()
    totals: tuple[tuple[tuple[str, ...], int], ...] = ()
    already: tuple[str, ...] = ()
    arrived_from: str | None = None

    @property
    def held(self) -> str:
        """The state occupied in the month before the census (where the runs and totals were counted)."""
        return self.state if self.months else self.arrived_from

    def run_in(self, states) -> int:
        """Consecutive months in the set ``states`` up to the month before the census: the run given
        for it, else the months in the state for a set holding it (entered with it), else 0."""
        key = frozenset(states)
        given = {frozenset(s): n for s, n in self.runs}
        return given.get(key, self.months if self.held in key else 0)

    def total_in(self, states) -> int:
        """Cumulative months in the set ``states`` up to the month before the census: the total given
        for it, else its run."""
        key = frozenset(states)
        given = {frozenset(s): n for s, n in self.totals}
        return given.get(key, self.run_in(key))


@dataclass(frozen=True)
class Census:
    """A census at the start of ``month``: rows per group, and the counts measured up to it."""

    month: int
    treated: tuple[CensusRow, ...]
    comparison: tuple[CensusRow, ...]
    observed: Observed
    source: str = "<census>"

    def rows(self, group: str) -> tuple[CensusRow, ...]:
        return self.treated if group == "treated" else self.comparison


def _text(value) -> str:
    """A value as a problem line shows it: numbers as the scenario loader does, anything else as written."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _show(value)
    return repr(value)


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kept_sets(journey, measures) -> set[frozenset]:
    return {frozenset(b.states) for b in journey.branches} | {
        frozenset(m.states) for m in measures if m.kind == "milestone"}


def _entered_from_within(journey, states: frozenset, target: str) -> bool:
    """Whether ``target`` can be entered from another state of ``states`` (an exit, a time limit or
    a branch), so that the run in the set can be longer than the months in ``target``."""
    for s in journey.states:
        if s.name in states and s.name != target:
            if any(e.to == target for e in s.exits) or s.after_limit == target:
                return True
    return any(b.to == target and (set(b.states) & states) - {target} for b in journey.branches)


def load_census(path: str | Path, contract: Contract) -> Census:
    """Read and check a census file against the scenario; raise :class:`ScenarioError` listing every problem."""
    path = Path(path)
    name = str(path)
    doc = parse_toml(read_input_text(path), name)
    problems = meta_problems(doc, name)
    if problems:
        raise ScenarioError(problems)
    unknown = set(doc) - {"meta", "census"}
    if unknown:
        raise ScenarioError(f"{name}: {sorted(unknown)[0]}: unknown table (a census has [meta] and [[census]])")
    meta = doc.get("meta", {})
    T = contract.horizon_months
    intakes = [c.intake_month for c in contract.cohorts]
    month = meta.get("month")
    if month is None:
        raise ScenarioError(f"{name}: meta.month: required (the month the census was taken at the start of)")
    if not _int(month):
        raise ScenarioError(f"{name}: meta.month: must be a whole month, got {_text(month)}")
    if not min(intakes) < month < T:
        raise ScenarioError(f"{name}: meta.month: must be after the first intake (month {min(intakes)}) and "
                            f"below the horizon ({T}), got {month}")
    started = [c for c, m in enumerate(intakes) if m < month]
    read = set.intersection(*(set(months_read(contract, c)) for c in started))
    if month not in read:
        raise ScenarioError(f"{name}: meta.month: must be a month the contract reads counts at "
                            f"({', '.join(map(str, sorted(read))) or 'none for every started cohort'}), got {month}")
    obs_name = meta.get("observed")
    if not isinstance(obs_name, str) or not obs_name:
        raise ScenarioError(f"{name}: meta.observed: required, the file of counts measured up to month {month} "
                            f"(relative to the census), got {_text(obs_name)}")
    observed = load_observed(Path(os.path.normpath(path.parent / obs_name)))
    from .observed import check_observed
    problems = check_observed(contract, observed)
    late = sorted({(g, c, mo) for (g, c, _o), series in observed.counts.items() for mo in series if mo > month})
    for g, c, mo in late[:1]:
        problems.append(f"{observed.source}: {g} cohort {c}: counts at month {mo}, after the census month {month}: "
                        "a re-forecast from the census cannot keep them")
    for o in contract.measures:
        if o.lag:
            problems.append(f"{contract.source or 'scenario'}: outcomes.{o.name}.lag: a re-forecast from a census needs "
                            f"no lag (occurrences before month {month} counted after it are not in a census), got {o.lag}")
    entries = doc.get("census", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append(f"{name}: census: must be an array of tables ([[census]])")
        raise ScenarioError(problems)
    rows: dict[str, list[CensusRow]] = {g: [] for g in GROUPS}
    for i, e in enumerate(entries):
        row, more = _row(e, f"{name}: census[{i}]", contract, month)
        problems += more
        if row is not None:
            rows[e["group"]].append(row)
    if not problems:
        problems += _whole(name, contract, month, rows, observed)
    if problems:
        raise ScenarioError(problems)
    return Census(month, tuple(rows["treated"]), tuple(rows["comparison"]), observed, name)


def _row(e: dict, at: str, contract: Contract, month: int):
    """One ``[[census]]`` entry as a row, and its problems."""
    problems: list[str] = []
    extra = set(e) - _ROW_KEYS
    if extra:
        return None, [f"{at}.{sorted(extra)[0]}: unknown field (known: {', '.join(sorted(_ROW_KEYS))})"]
    for key in ("group", "cohort", "state", "count", "months"):
        if key not in e:
            problems.append(f"{at}.{key}: required")
    if problems:
        return None, problems
    group = e["group"]
    if group not in GROUPS:
        return None, [f"{at}.group: must be \"treated\" or \"comparison\", got {_text(group)}"]
    if group == "comparison" and contract.comparison.method == "expected":
        return None, [f"{at}.group: the counterfactual is modelled (comparison.method = \"expected\"): "
                      "there is no comparison group to count"]
    journey = contract.journey if group == "treated" else contract.comparison.journey
    C = len(contract.cohorts)
    cohort = e["cohort"]
    if not _int(cohort) or not 0 <= cohort < C:
        return None, [f"{at}.cohort: must be a cohort index 0..{C - 1}, got {_text(cohort)}"]
    intake = contract.cohorts[cohort].intake_month
    since = month - intake
    if since <= 0:
        return None, [f"{at}.cohort: cohort {cohort} starts in month {intake}, not before the census month {month}"]
    state = e["state"]
    if state not in journey.state_names:
        return None, [f"{at}.state: not a state of the {group} journey ({', '.join(journey.state_names)}), "
                      f"got {_text(state)}"]
    count, months = e["count"], e["months"]
    if not _int(count) or count < 1:
        problems.append(f"{at}.count: must be a whole number >= 1, got {_text(count)}")
    arrived_from = e.get("arrived_from")
    if not _int(months) or not 0 <= months <= since:
        problems.append(f"{at}.months: must be a whole number of months in 0..{since} (months since the "
                        f"cohort's intake), got {_text(months)}")
    elif months == 0 and arrived_from not in journey.state_names:
        problems.append(f"{at}.arrived_from: required with months = 0 (arriving at month {month}): the state "
                        f"occupied in month {month - 1} ({', '.join(journey.state_names)}), got {_text(arrived_from)}")
    elif months > 0 and arrived_from is not None:
        problems.append(f"{at}.arrived_from: only with months = 0 (an arrival at month {month}), got "
                        f"{_text(arrived_from)} with months = {months}")
    else:
        limit = journey.state(state).time_limit
        if months and limit is not None and months >= limit:
            problems.append(f"{at}.months: must be below {state}'s time limit of {limit} months (at the limit "
                            f"the participant has moved on to {journey.state(state).after_limit}), got {months}")
    kept = _kept_sets(journey, contract.measures)
    cumulative = {frozenset(m.states): m.name for m in contract.measures
                  if m.kind == "milestone" and not m.consecutive}

    def spells(key: str, allowed: set[frozenset], what: str):
        out, seen = [], set()
        value = e.get(key, [])
        if not isinstance(value, list):
            problems.append(f"{at}.{key}: must be an array of {{ states = [...], months = N }}, got {_text(value)}")
            return out
        for j, sp in enumerate(value):
            where = f"{at}.{key}[{j}]"
            if not isinstance(sp, dict) or set(sp) != {"states", "months"}:
                problems.append(f"{where}: must be {{ states = [...], months = N }}, got {_text(sp)}")
                continue
            st, n = sp["states"], sp["months"]
            if not isinstance(st, list) or frozenset(st) not in allowed or len(set(st)) != len(st):
                sets = "; ".join(sorted("[" + ", ".join(sorted(s)) + "]" for s in allowed)) or "none"
                problems.append(f"{where}.states: must be {what} ({sets}), got {_text(st)}")
                continue
            if frozenset(st) in seen:
                problems.append(f"{where}.states: given twice")
                continue
            seen.add(frozenset(st))
            if not _int(n) or not 0 <= n <= since:
                problems.append(f"{where}.months: must be a whole number of months in 0..{since}, got {_text(n)}")
                continue
            out.append((tuple(st), n))
        return out

    held = state if months else arrived_from  # the state occupied in the month before the census
    runs = spells("runs", {s for s in kept if held in s},
                  f"a set the journey keeps runs of that holds {held}, the state of month {month - 1}")
    totals = spells("totals", set(cumulative), "the states of a cumulative milestone")
    already = e.get("already", [])
    once = {m.name: m for m in contract.measures if m.once_per_participant}
    if not isinstance(already, list) or not all(isinstance(a, str) for a in already):
        problems.append(f"{at}.already: must be a list of outcome names, got {_text(already)}")
        already = []
    for a in already:
        if a not in once:
            problems.append(f"{at}.already: {_text(a)} is not an outcome counted once per participant "
                            f"({', '.join(once) or 'none'})")
    if problems:
        return None, problems
    run_of = dict((frozenset(s), n) for s, n in runs)
    for s, n in runs:
        if n < max(months, 1):
            problems.append(f"{at}.runs: [{', '.join(s)}]: must be at least {max(months, 1)} (months in "
                            f"{held}), got {n}")
    for s in sorted(kept, key=sorted):
        if s in run_of or held not in s:
            continue
        if months and _entered_from_within(journey, s, state):
            problems.append(f"{at}.runs: required for [{', '.join(sorted(s))}]: {state} can be entered from "
                            "another state of that set, so the months in the state do not tell the run in it")
        elif not months and state in s:
            problems.append(f"{at}.runs: required for [{', '.join(sorted(s))}]: the run in it continues from "
                            f"{held} into {state}")
    total_of = dict((frozenset(s), n) for s, n in totals)
    for s, mname in cumulative.items():
        if mname not in already and s not in total_of:
            problems.append(f"{at}.totals: required for [{', '.join(sorted(s))}] (the cumulative milestone "
                            f"{mname}, not in already)")
    row = CensusRow(cohort, state, count, months, tuple(runs), tuple(totals), tuple(already),
                    arrived_from if months == 0 else None)
    for m in contract.measures:
        if m.name in already or m.name not in once:
            continue
        states_of = frozenset(m.states)
        if m.kind == "entry" and held in states_of:
            problems.append(f"{at}.already: must include {m.name}: the participants were in {held} in month "
                            f"{month - 1}, so they have entered its states")
        if m.kind == "milestone":
            # A missing total is reported above: counted as 0 here, not as a second problem.
            reached = total_of.get(states_of, 0) if not m.consecutive else row.run_in(states_of)
            if reached >= m.months:
                problems.append(f"{at}.already: must include {m.name}: {reached} months in its states reach its "
                                f"{m.months}")
    if problems:
        return None, problems
    return row, []


def _whole(name: str, contract: Contract, month: int, rows: dict, observed: Observed) -> list[str]:
    """Rules across rows: every started cohort counted in full, ``already`` against the observed counts."""
    problems = []
    sizes = {"treated": [c.size for c in contract.cohorts], "comparison": list(contract.comparison_sizes)}
    groups = ["treated"] + (["comparison"] if contract.comparison.method != "expected" else [])
    once = [m for m in contract.measures if m.once_per_participant]
    for group in groups:
        for c, cohort in enumerate(contract.cohorts):
            if cohort.intake_month >= month:
                continue
            mine = [r for r in rows[group] if r.cohort == c]
            held = sum(r.count for r in mine)
            if held != sizes[group][c]:
                problems.append(f"{name}: census: {group} cohort {c}: rows hold {held} participants, the cohort "
                                f"has {int(sizes[group][c])} (every participant is counted once)")
                continue
            for m in once:
                series = observed.counts.get((group, c, m.name))
                if not series:
                    continue
                seen = [v for mo, v in series.items() if mo <= month]
                if not seen:
                    continue
                measured = series[max(mo for mo in series if mo <= month)]
                had = sum(r.count for r in mine if m.name in r.already) * m.scale
                full = m.window is None or cohort.intake_month + m.window >= month
                if (full and had != measured) or (not full and had < measured):
                    problems.append(f"{name}: census: {group} cohort {c}: {had:g} participants have {m.name} in "
                                    f"already, the observed count at month {month} is {measured:g}"
                                    f"{'' if full else ' (at least that many)'}")
    return problems
