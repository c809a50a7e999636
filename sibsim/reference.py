"""Reference simulator: any journey, stepped month by month in plain Python (the executable specification).

This module follows the numbered monthly rules of :mod:`sibsim.journey` literally: one participant
at a time, one month at a time, one draw from the injected :class:`numpy.random.Generator` per
decision (``rng.random()`` for a Bernoulli trial or a choice, ``rng.poisson`` for a month's
recurrent events), no vectorisation. It is deliberately slow and simple: the compiled engine
(:mod:`sibsim.engine`) and the exact expectation (:mod:`sibsim.expectation`) are checked against it.

Simulating a participant and counting outcomes are kept apart: :func:`live_participant` records a
:class:`MonthRecord` per month (the state the month belongs to, every arrival, every event and the
run and cumulative months in each tracked set of states), and :func:`occurrences` reads the
outcome measures off that history.

Draw order (:func:`simulate_group_reference`): path by path, cohort by cohort, participant by
participant; within a participant, month by month, in rule order. The reference does not share
its random stream with the engine; only the distributions agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .journey import Exit, Journey, Outcome, State

#: Tolerance on a sum of simultaneous exit probabilities above 1 (floating-point rounding of the sum only).
EXIT_SUM_TOLERANCE = 1e-12


@dataclass
class MonthRecord:
    """What happened to one participant in one month.

    Attributes
    ----------
    month : int
        Month index (0 = contract start).
    state : str
        The state the month belongs to (the state at the end of rule 3).
    arrivals : list of (str or None, str)
        Every arrival in the month, in order, as ``(from, to)``; ``from`` is None at intake. A
        pass-through of a ``"start"`` state shows as two arrivals (into it, then out of it).
    events : dict of str -> int
        Occurrences of each named event dated in this month (transition and recurrent).
    runs, cumulative : dict of frozenset -> int
        Consecutive and cumulative months in each tracked set of states, this month included.
    """

    month: int
    state: str = ""
    arrivals: list[tuple[str | None, str]] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)
    runs: dict[frozenset, int] = field(default_factory=dict)
    cumulative: dict[frozenset, int] = field(default_factory=dict)

    def record_event(self, name: str | None, n: int = 1) -> None:
        if name is not None and n > 0:
            self.events[name] = self.events.get(name, 0) + n


def draw_parameters_reference(journey: Journey, rng: np.random.Generator, n_paths: int) -> np.ndarray:
    """One value per path and parameter from the priors, parameter by parameter in declared order.

    Returns
    -------
    ndarray (n_paths, P) float64
        Column ``j`` holds ``journey.parameters[j]`` (probability per month, or rate per month).
    """
    columns = [prior.draw(rng, n_paths) for _name, prior in journey.parameters]
    return np.column_stack(columns) if columns else np.zeros((n_paths, 0))


def tracked_sets(journey: Journey, measures: tuple[Outcome, ...]) -> tuple[frozenset, ...]:
    """Every set of states whose run and cumulative months a participant keeps (rule 2)."""
    sets: list[frozenset] = []
    for states in [b.states for b in journey.branches] + [m.states for m in measures if m.kind == "milestone"]:
        key = frozenset(states)
        if key not in sets:
            sets.append(key)
    return tuple(sets)


def draw_exit(state: State, p: dict[str, float], rng: np.random.Generator) -> Exit | None:
    """Rule 5: the exit taken this month out of ``state``, or None for a stay."""
    if not state.exits:
        return None  # nothing to draw: no random number is used
    if state.exits_in_order:
        # Decrements in order: exit k is tried only by those who took none of the exits before it.
        for ex in state.exits:
            if rng.random() < p[ex.probability]:
                return ex
        return None
    # Simultaneous: one uniform against the cumulative exit probabilities; the stay is the rest.
    probabilities = [p[ex.probability] for ex in state.exits]
    if sum(probabilities) > 1.0 + EXIT_SUM_TOLERANCE:
        raise ValueError(f"state {state.name!r}: exit probabilities sum to {sum(probabilities)} > 1")
    u = rng.random()
    upper = 0.0
    for ex, q in zip(state.exits, probabilities):
        upper += q
        if u < upper:
            return ex
    return None


def arrive(journey: Journey, record: MonthRecord, origin: str | None, target: str,
           p: dict[str, float], rng: np.random.Generator) -> str:
    """Rule 1: arrive in ``target`` in ``record.month``; pass through ``"start"`` states at once.

    Returns the state the participant stays in (for now) this month.
    """
    passed: list[str] = []
    while True:
        record.arrivals.append((origin, target))  # an entry into `target`, dated this month
        state = journey.state(target)
        if state.timing != "start":
            return target
        if target in passed:  # only a cycle among "start" states can bring us back within one chain
            raise ValueError(f"cycle among 'start' states through {target!r}")
        passed.append(target)
        # Rule 5 ("start" timing): the exits are drawn at once, the arrival month included.
        ex = draw_exit(state, p, rng)
        if ex is None:
            return target
        record.record_event(ex.event)  # dated in the month of arrival in the new state
        origin, target = target, ex.to


def occupy(record: MonthRecord, state: str, sets: tuple[frozenset, ...],
           runs_before: dict[frozenset, int], cumulative_before: dict[frozenset, int]) -> None:
    """Rule 2 for the sets: runs and cumulative months in each set with ``state`` as this month's state.

    A set's run restarts at 1 in a month in which the set is entered from outside (the participant
    left it, if only by passing through a ``"start"`` state outside it), else it continues.
    """
    for s in sets:
        if state not in s:
            record.runs[s] = 0
            record.cumulative[s] = cumulative_before[s]
            continue
        entered = any(to in s and (origin is None or origin not in s) for origin, to in record.arrivals)
        record.runs[s] = 1 if entered else runs_before[s] + 1
        record.cumulative[s] = cumulative_before[s] + 1


def live_participant(journey: Journey, p: dict[str, float], start: str, intake: int, n_months: int,
                     sets: tuple[frozenset, ...], rng: np.random.Generator, carry_on=None) -> list[MonthRecord]:
    """Step one participant through months ``intake .. n_months - 1`` (the numbered rules of :mod:`sibsim.journey`).

    Parameters
    ----------
    p : dict of str -> float, or list of such dicts
        This path's value of every parameter (probability per month, or rate per month); a list
        holds them month by month (calendar months 0 .. n_months - 1: shocks,
        :mod:`sibsim.uncertainty`), each month's rules reading that month's.
    start : str
        The participant's start state.
    sets : tuple of frozenset
        Sets of states whose runs are kept (:func:`tracked_sets`).

    carry_on : (month, months_in_state, runs, cumulative, arrived_from) or None
        Carry the participant on from a census at the start of ``month`` (:mod:`sibsim.census`):
        ``start`` is then the state occupied in the month before, for ``months_in_state`` months
        (0: arriving in it at ``month`` from ``arrived_from``), with these runs and cumulative months
        per set up to the month before; months from ``month`` on are simulated.

    Returns
    -------
    list of MonthRecord
        One record per month simulated.
    """
    history: list[MonthRecord] = []
    state: str | None = None  # the state occupied last month (None before intake)
    arriving: str | None = start  # where the participant arrives at the start of this month
    months_in_state = 0
    runs = {s: 0 for s in sets}
    cumulative = {s: 0 for s in sets}
    first = intake
    if carry_on is not None:
        first, months_in_state, runs, cumulative, arrived_from = carry_on
        if months_in_state:  # occupied last month, and neither an exit nor the time limit moved it
            state, arriving = start, None
        else:  # arrives at the start of the census month (from an exit or a time limit at the end of the last)
            state, arriving = arrived_from, start

    by_month = p if isinstance(p, list) else None
    for month in range(first, n_months):
        record = MonthRecord(month)
        if by_month is not None:
            p = by_month[month]

        # Rule 1: arrival (at intake, after an exit or a time limit at the end of last month).
        if arriving is not None:
            state = arrive(journey, record, state, arriving, p, rng)
        # Rule 5, "start" timing: exits drawn at the start of every month spent in the state.
        elif journey.state(state).timing == "start":
            ex = draw_exit(journey.state(state), p, rng)
            if ex is not None:
                record.record_event(ex.event)
                state = arrive(journey, record, state, ex.to, p, rng)

        # Rule 2: occupying this month (months_in_state restarts at 1 in the month of arrival).
        months_in_state = 1 if record.arrivals else months_in_state + 1
        occupy(record, state, sets, runs, cumulative)

        # Rule 3: branches in declared order; the first that fires moves the participant for this month.
        for branch in journey.branches:
            key = frozenset(branch.states)
            if state not in key or branch.to == state or record.runs[key] != branch.at_month:
                continue
            if rng.random() < p[branch.probability]:
                record.record_event(branch.event)
                state = arrive(journey, record, state, branch.to, p, rng)
                months_in_state = 1
                occupy(record, state, sets, runs, cumulative)  # the month now belongs to the new state
                break

        # Rule 4: counting this month (occupancy, status and milestones read record.state and the
        # runs); recurrent events of the state happen, a Poisson number per event.
        record.state = state
        current = journey.state(state)
        for recurrent in current.events:
            record.record_event(recurrent.event, int(rng.poisson(p[recurrent.rate])))

        # Rule 5, "end" timing: exits drawn at the end of the month; the new state from next month.
        arriving = None
        if current.timing == "end":
            ex = draw_exit(current, p, rng)
            if ex is not None:
                record.record_event(ex.event)  # dated in the last month in the old state
                arriving = ex.to

        # Rule 6: time limit, if no exit fired.
        if arriving is None and current.time_limit is not None and months_in_state == current.time_limit:
            arriving = current.after_limit

        runs, cumulative = record.runs, record.cumulative
        history.append(record)
    return history


def occurrences(measure: Outcome, history: list[MonthRecord], intake: int) -> list[tuple[int, int]]:
    """The occurrences of one measure in a participant's history, as ``(month, count)``, undated.

    Window and lag are applied by the caller (:func:`date_occurrence`).
    """
    found: list[tuple[int, int]] = []
    states = frozenset(measure.states)
    first_only = measure.count == "first"

    if measure.kind == "entry":
        # An entry into the set: an arrival in it from outside it (or at intake).
        for record in history:
            for origin, to in record.arrivals:
                if to in states and (origin is None or origin not in states):
                    found.append((record.month, 1))
    elif measure.kind == "event":
        for record in history:
            n = record.events.get(measure.event, 0)
            if n:
                found.append((record.month, 1 if first_only else n))
    elif measure.kind == "milestone":
        if measure.consecutive:
            # A run reaches `months` once per run ("every") or the first run that does ("first").
            found = [(r.month, 1) for r in history if r.runs[states] == measure.months]
        else:
            # Cumulative months reach `months` once per participant, whatever `count` says.
            found = [(r.month, 1) for r in history if r.cumulative[states] == measure.months][:1]
    elif measure.kind == "occupancy":
        found = [(r.month, 1) for r in history if r.state in states]
    elif measure.kind == "status":
        state_in = {r.month: r.state for r in history}
        for k in measure.at_months:
            if state_in.get(intake + k) in states:
                found.append((intake + k, 1))
    else:
        raise ValueError(f"outcome {measure.name!r}: unknown kind {measure.kind!r}")

    # "first" keeps each participant's first occurrence only (occupancy and status ignore it).
    if first_only and measure.kind in ("entry", "event", "milestone"):
        found = found[:1]
    return found


def date_occurrence(measure: Outcome, month: int, intake: int, n_months: int) -> int | None:
    """The month an occurrence in ``month`` is dated in, or None if it is not counted.

    Counted only within ``window`` months after intake (months ``intake .. intake + window - 1``),
    then dated ``lag`` months later; nothing dated at or beyond the horizon counts.
    """
    if measure.window is not None and month >= intake + measure.window:
        return None
    dated = month + measure.lag
    return dated if dated < n_months else None


def draw_start(journey: Journey, shares: np.ndarray, rng: np.random.Generator) -> str:
    """The participant's start state: one uniform against the cumulative start shares."""
    u = rng.random()
    upper = 0.0
    for name, share in zip(journey.state_names, shares):
        upper += share
        if u < upper:
            return name
    # Shares summing to slightly below 1 (rounding): the last state with a positive share.
    return [n for n, s in zip(journey.state_names, shares) if s > 0][-1]


def simulate_group_reference(
    journey: Journey,
    measures: tuple[Outcome, ...],
    params: np.ndarray,
    intake_months,
    sizes,
    starts: np.ndarray,
    n_months: int,
    rng: np.random.Generator,
    census=None,
) -> np.ndarray:
    """Every participant of one group, path by path, cohort by cohort: the outcome counts.

    Parameters
    ----------
    journey : Journey
    measures : tuple of Outcome
        What to count (``Contract.measures``).
    params : ndarray (n_paths, P), or (n_paths, n_months, P)
        Each path's parameter values, columns in ``journey.parameters`` order; with a month axis,
        month by month (:meth:`sibsim.uncertainty.Regimes.monthly`).
    intake_months : sequence of int (C,)
    sizes : sequence of int (C,)
        Participants per cohort.
    starts : ndarray (C, n_states)
        Start distribution of each cohort over ``journey.state_names`` (rows sum to 1).
    n_months : int
        Horizon: months ``0 .. n_months - 1`` are simulated.
    rng : numpy.random.Generator
        The only source of randomness.
    census : (month, rows) or None
        Carry the cohorts with rows on from a census at the start of ``month``
        (:class:`sibsim.census.CensusRow`, in the order given): each row's participants start
        there with its months, runs and totals, and an outcome in ``already`` is not counted again
        where it counts once per participant.

    Returns
    -------
    ndarray (n_paths, C, n_measures, n_months) int32
        Occurrences of each measure dated in each month, before ``Outcome.scale``.
    """
    params = np.asarray(params, dtype=float)
    starts = np.asarray(starts, dtype=float)
    n_paths = params.shape[0]
    counts = np.zeros((n_paths, len(sizes), len(measures), n_months), dtype=np.int32)
    sets = tracked_sets(journey, measures)
    carried = {}  # cohort -> [(row, carry_on)]
    if census is not None:
        month0, rows = census
        for r in rows:
            runs = {s: r.run_in(s) for s in sets}
            cumulative = {s: r.total_in(s) for s in sets}
            carried.setdefault(r.cohort, []).append((r, (int(month0), r.months, runs, cumulative, r.arrived_from)))
    for path in range(n_paths):
        if params.ndim == 3:
            p = [dict(zip(journey.parameter_names, (float(v) for v in row))) for row in params[path]]
        else:
            p = dict(zip(journey.parameter_names, (float(v) for v in params[path])))
        for cohort, (intake, size) in enumerate(zip(intake_months, sizes)):
            intake = int(intake)
            people = ([(r, c) for r, c in carried[cohort] for _ in range(r.count)] if cohort in carried
                      else [(None, None)] * int(size))
            for row, carry_on in people:
                start = row.state if row is not None else draw_start(journey, starts[cohort], rng)
                history = live_participant(journey, p, start, intake, n_months, sets, rng, carry_on)
                for j, measure in enumerate(measures):
                    if row is not None and measure.name in row.already and measure.once_per_participant:
                        continue  # had before the census: counted once per participant
                    for month, n in occurrences(measure, history, intake):
                        dated = date_occurrence(measure, month, intake, n_months)
                        if dated is not None:
                            counts[path, cohort, j, dated] += n
    return counts
