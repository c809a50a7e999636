"""Random valid journeys (state machines) with a random set of measures, for property and agreement tests.

:func:`random_machines` is a hypothesis strategy; every generated :class:`Machine` is valid under
the rules of :mod:`sibsim.journey`:

* 2-6 states; competing exits either simultaneous (probabilities summing to at most 0.9) or in
  order (any probabilities); no exit to the state itself;
* some ``"start"``-timing states, but the exits between ``"start"`` states only go to a later
  state in declared order, so there is no cycle among them (a pass-through chain always ends);
* time limits with ``after_limit`` (another state); branches at a duration no longer than the
  time limit of any state of their set; recurrent events at rates of up to 1.5 a month;
* probabilities include the extremes 0 and 1; every parameter is its own, with a fixed prior;
* measures of every kind (entry, event, milestone consecutive and cumulative, occupancy, status),
  first or every, with random windows and lags; 1-3 cohorts within the horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sibsim.journey import Branch, Exit, Journey, Outcome, Prior, RecurrentEvent, State

MAX_STATES = 6
TRANSITION_EVENTS = ("t0", "t1")
RECURRENT_EVENTS = ("e0", "e1")


@dataclass(frozen=True)
class Machine:
    """A generated journey, what to count on it and the cohorts to run it on."""

    journey: Journey
    measures: tuple[Outcome, ...]
    n_months: int
    intake_months: tuple[int, ...]
    sizes: tuple[int, ...]

    @property
    def params(self) -> np.ndarray:
        """One path of parameter values, (1, P): the fixed priors' values in declared order."""
        return np.array([[prior.mean for _n, prior in self.journey.parameters]], dtype=float)

    @property
    def starts(self) -> np.ndarray:
        """(C, n_states) start distribution: the journey's start for every cohort."""
        shares = dict(self.journey.start)
        row = [shares.get(name, 0.0) for name in self.journey.state_names]
        return np.array([row] * len(self.intake_months), dtype=float)


def _probability(draw) -> float:
    """A monthly probability: 0 or 1 one time in four (the extremes are where off-by-ones show)."""
    between = st.floats(0.02, 0.98, allow_nan=False).map(lambda x: round(x, 3))
    return draw(st.one_of(st.sampled_from((0.0, 1.0)), between, between, between))


@st.composite
def random_machines(draw, min_states: int = 2, max_states: int = MAX_STATES) -> Machine:
    """A valid random journey with measures of every kind (see the module notes)."""
    n = draw(st.integers(min_states, max_states))
    names = [f"s{i}" for i in range(n)]
    timings = [draw(st.sampled_from(("end", "end", "start"))) for _ in names]
    parameters: list[tuple[str, Prior]] = []

    def parameter(value: float, kind: str = "probability") -> str:
        name = f"p{len(parameters)}"
        parameters.append((name, Prior(mean=value, kind=kind)))
        return name

    states = []
    limits: dict[str, int | None] = {}
    for i, name in enumerate(names):
        # exits go to other states; a "start" state's exits to "start" states go forward only (no cycle)
        targets = [t for j, t in enumerate(names)
                   if j != i and not (timings[i] == "start" and timings[j] == "start" and j < i)]
        chosen = draw(st.lists(st.sampled_from(targets), max_size=3, unique=True)) if targets else []
        in_order = draw(st.booleans())
        values = [_probability(draw) for _ in chosen]
        if not in_order and sum(values) > 0.9:
            total = sum(values)  # scaled down, rounded down: the sum stays at most 0.9
            values = [math.floor(v * 0.9 / total * 1000) / 1000 for v in values]
        exits = tuple(Exit(to=t, probability=parameter(v),
                           event=draw(st.sampled_from((None, None) + TRANSITION_EVENTS)))
                      for t, v in zip(chosen, values))
        time_limit = draw(st.one_of(st.none(), st.integers(1, 6)))
        after_limit = draw(st.sampled_from([t for t in names if t != name])) if time_limit else None
        events = tuple(RecurrentEvent(event=e, rate=parameter(draw(st.floats(0.0, 1.5).map(lambda x: round(x, 3))),
                                                              "rate"))
                       for e in draw(st.lists(st.sampled_from(RECURRENT_EVENTS), max_size=2, unique=True)))
        states.append(State(name=name, exits=exits, timing=timings[i], exits_in_order=in_order,
                            time_limit=time_limit, after_limit=after_limit, events=events))
        limits[name] = time_limit

    branches = []
    for _ in range(draw(st.integers(0, 2))):
        members = tuple(draw(st.lists(st.sampled_from(names), min_size=1, max_size=n, unique=True)))
        cap = min([limits[s] for s in members if limits[s] is not None] + [6])
        branches.append(Branch(states=members, at_month=draw(st.integers(1, cap)),
                               to=draw(st.sampled_from(names)), probability=parameter(_probability(draw)),
                               event=draw(st.sampled_from((None,) + TRANSITION_EVENTS))))

    starters = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    if len(starters) == 1:
        start = ((starters[0], 1.0),)
    else:
        share = draw(st.sampled_from((0.25, 0.5, 0.75)))
        start = ((starters[0], share), (starters[1], 1.0 - share))
    journey = Journey(states=tuple(states), start=start, branches=tuple(branches), parameters=tuple(parameters))

    n_months = draw(st.integers(6, 24))
    measures = _measures(draw, journey, names, n_months)
    intakes = tuple(sorted(draw(st.lists(st.integers(0, n_months - 1), min_size=1, max_size=3, unique=True))))
    sizes = tuple(draw(st.integers(1, 5)) for _ in intakes)
    return Machine(journey, measures, n_months, intakes, sizes)


def _measures(draw, journey: Journey, names: list[str], n_months: int) -> tuple[Outcome, ...]:
    """One measure of every kind (two milestones: consecutive and cumulative), plus a few more."""
    def some_states():
        return tuple(draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True)))

    def timing():
        return dict(window=draw(st.one_of(st.none(), st.integers(1, n_months))), lag=draw(st.integers(0, 3)))

    def count():
        return draw(st.sampled_from(("first", "every")))

    events = journey.event_names or (None,)
    kinds = ["entry", "event", "milestone", "milestone", "occupancy", "status"]
    kinds += draw(st.lists(st.sampled_from(kinds), max_size=3))
    measures = []
    for k, kind in enumerate(kinds):
        name = f"m{k}_{kind}"
        if kind == "entry":
            measures.append(Outcome(name, "entry", states=some_states(), count=count(), **timing()))
        elif kind == "event" and events[0] is not None:
            measures.append(Outcome(name, "event", event=draw(st.sampled_from(events)), count=count(), **timing()))
        elif kind == "milestone":
            consecutive = {2: True, 3: False}.get(k, None)  # the first two: one of each
            if consecutive is None:
                consecutive = draw(st.booleans())
            measures.append(Outcome(name, "milestone", states=some_states(), months=draw(st.integers(1, 6)),
                                    consecutive=consecutive, count=count(), **timing()))
        elif kind == "occupancy":
            measures.append(Outcome(name, "occupancy", states=some_states(), **timing()))
        elif kind == "status":
            at = tuple(sorted(draw(st.lists(st.integers(0, n_months - 1), min_size=1, max_size=3, unique=True))))
            measures.append(Outcome(name, "status", states=some_states(), at_months=at, **timing()))
    return tuple(measures)


def _structure(m: Machine) -> tuple:
    """What makes two machines different tests: states, their exits, limits, and the branches."""
    return tuple((s.timing, tuple(e.to for e in s.exits), s.time_limit, s.after_limit)
                 for s in m.journey.states) + (m.journey.branches, m.journey.start)


def sample_machines(n: int) -> list[Machine]:
    """``n`` distinct, non-trivial generated machines, the same on every run (derandomized).

    For tests that need one fixed family of machines (a Bonferroni family, a power check on the
    same family) rather than one test per example. Hypothesis's first examples are the simplest
    and many later ones are small mutations of earlier ones: a machine is kept only if its
    structure is new and at least one probability lies strictly between 0 and 1.
    """
    found: list[Machine] = []
    seen: set = set()

    @settings(max_examples=6 * n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(random_machines())
    def collect(m: Machine) -> None:
        structure = _structure(m)
        random_inside = any(0.0 < prior.mean < 1.0 for _n, prior in m.journey.parameters
                            if prior.kind == "probability")
        if len(found) < n and structure not in seen and random_inside:
            seen.add(structure)
            found.append(m)

    collect()
    return found


def colour_kitchen_journey(parameters, start: str = "training", dropout_in_order: bool = True) -> Journey:
    """The state machine of scenarios/utrecht_colour_kitchen.toml as dataclasses, for engine tests that
    do not go through the loader, with the given ``parameters`` ((name, Prior) pairs) and start state.

    ``dropout_in_order=False`` makes the training exits simultaneous: a deliberately different journey
    (for tests that must tell the two apart).
    """
    states = (
        State("training", exits=(Exit("job_search_with_diploma", "diploma", "diploma"), Exit("job_search", "dropout")),
              exits_in_order=dropout_in_order, time_limit=12, after_limit="job_search"),
        State("job_search", exits=(Exit("job", "job_without_diploma"),), timing="start"),
        State("job_search_with_diploma", exits=(Exit("job_with_diploma", "job_with_diploma"),), timing="start"),
        State("job", exits=(Exit("relapsed", "relapse"),)),
        State("job_with_diploma", exits=(Exit("relapsed_with_diploma", "relapse"),)),
        State("long_term_job", exits=(Exit("relapsed", "relapse_long_term"),)),
        State("long_term_job_with_diploma", exits=(Exit("relapsed_with_diploma", "relapse_long_term"),)),
        State("relapsed", time_limit=1, after_limit="job_search"),
        State("relapsed_with_diploma", time_limit=1, after_limit="job_search_with_diploma"),
    )
    branches = (Branch(("job", "long_term_job"), 6, "long_term_job", "long_term_contract"),
                Branch(("job_with_diploma", "long_term_job_with_diploma"), 6, "long_term_job_with_diploma",
                       "long_term_contract"))
    return Journey(states, ((start, 1.0),), branches, tuple(parameters))
