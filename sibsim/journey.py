"""A programme's participant journey, as data: a monthly state machine, and what can be counted on it.

One definition serves every reader: the compiled engine (:mod:`sibsim.engine`), the exact
expectation (:mod:`sibsim.expectation`) and the plain-Python reference simulator
(:mod:`sibsim.reference`, the executable specification of the rules below).

The month, step by step
-----------------------
Time runs in whole months. A participant enters at its cohort's intake month in a start state
(:attr:`Journey.start`, a distribution over states) and occupies exactly one state in every month
from then on. For a participant in state ``s`` the rules apply in this order:

1. **Arrival.** Arriving in ``s`` at the start of month ``m`` (at intake, after an exit or a time
   limit at the end of month ``m - 1``, or by a branch in month ``m``) is an *entry* into ``s``,
   dated ``m``. If ``s.timing == "start"`` its exits are drawn at once (step 5): the participant
   may pass through ``s`` without spending a month in it (a job search in which a job can start in
   the first month). Only ``"end"`` states can be entered twice in one month, so a month always
   ends in a state the participant occupies.
2. **Occupying month m.** ``months_in_state`` counts months in ``s`` including ``m`` (1 in the
   arrival month); for every *set* of states used by a branch or a milestone the participant keeps
   the run of consecutive months in the set (reset to 0 on leaving it) and the cumulative months in
   it, both including ``m``. The run restarts at 1 in a month in which the set is entered from
   outside it, also when the participant left it only by passing through a ``"start"`` state
   outside the set; otherwise it continues.
3. **Branches** (:class:`Branch`, in the order declared). A branch whose set holds ``s`` (and
   whose target is not ``s``) fires when the run in its set reaches ``at_month`` in month ``m``:
   with the branch probability the participant moves to ``branch.to`` *for month m itself* (an
   entry into ``to`` dated ``m``; ``months_in_state`` restarts at 1, runs of sets holding both
   continue). At most one branch fires per month (the first that does); if the target has
   ``"start"`` timing its exits are drawn at once, as in step 1. Eligible branches draw in declared
   order: one whose draw fails does not stop the next; once one fires no other is tried that month
   (not even one the target qualifies for). The month then belongs to the target: a set holding the
   old state but not the target loses the month (run 0, not in the cumulative months), a set holding
   the target but not the old state is entered (run 1).
4. **Counting month m.** Occupancy, status and milestone outcomes see the state the participant
   ends step 3 in; recurrent events of that state (:class:`RecurrentEvent`) happen in month ``m``:
   a Poisson number with the event's monthly rate.
5. **Exits.** Competing exits (:class:`Exit`) are drawn once per month spent in the state: for
   ``"end"`` timing at the end of month ``m`` (the participant is in the new state from ``m + 1``);
   for ``"start"`` timing at the start of each month, the arrival month included (the month then
   belongs to the new state). With ``exits_in_order = False`` exit ``k`` has probability ``p_k`` and
   the stay is ``1 - sum(p)``: a path whose exits sum above 1 is an error, never clipped. With
   ``exits_in_order = True`` the exits are decrements applied in order: exit ``k`` has probability
   ``p_k * prod(1 - p_j, j < k)`` (e.g. a diploma first, then dropout among those without one).
6. **Time limit.** If no exit fired and ``months_in_state == time_limit`` at the end of month
   ``m``, the participant moves to ``after_limit`` from ``m + 1``.

Two readings the engine and the reference share: a run in a set restarts when the participant
arrives in a state outside the set, even one it passes through without spending a month in it
(coming back is then an entry into the set, step 1); and of the branches due in a month, in
declared order, each draws in turn until one fires (a branch that does not fire leaves the next
its chance that month).

A state with no exits and no time limit is absorbing. Months from the horizon on are not
simulated: what would happen then is not observed.

Dating
------
* An *entry* into a state or a set (entering the set from outside it) is dated in the first month
  spent in it (the intake month for the start state). A participant who passes through a
  ``"start"`` state without spending a month in it still *enters* it (dated in that month).
  Entries are counted on arrival, also when the month ends elsewhere (a pass-through, a branch in
  the arrival month). An entry into a set is an arrival in one of its states from a state outside
  it along the month's chain of arrivals: passing through one state of a set into another is one
  entry.
* A *transition event* (``Exit.event``, ``Branch.event``) is dated in the month of the draw: the
  last month in the old state for ``"end"`` timing; the month of arrival in the new state for
  ``"start"`` timing and branches.
* A recurrent event is dated in the month it happens in.
* A ``"first"`` count takes the participant's first occurrence, wherever it falls; it is counted
  only if it passes the window and the horizon below (later ones never replace it).
* An outcome occurrence counts only if it falls within ``window`` months after intake
  (months ``intake .. intake + window - 1``) and is then dated ``lag`` months later (data maturing,
  e.g. six months for court outcomes). Occurrences dated at or beyond the horizon are not counted.
  ``count = "first"`` keeps a participant's first occurrence, counted if it falls within the window
  (windows start at intake, so it is also the first within the window); a status census month
  ``intake + k`` counts only within the window, and is dated ``lag`` months later like the rest.

Parameters
----------
Every probability or rate is a named parameter (:attr:`Journey.parameters`) so that transitions,
groups and the comparison group can share or override it. Each Monte Carlo path draws one value per
parameter from its prior (parameter uncertainty), in the order the parameters are declared; every
participant of the path shares it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

def is_inline(name: str) -> bool:
    """Whether a parameter was written inline on an exit, event or branch (``"training->job_search"``,
    ``"community:reconviction"``, ``"job+long_term_job@6->long_term_job"``), not declared by name:
    only declared parameters can be overridden, updated by evidence or moved as an assumption."""
    return "->" in name or ":" in name or "@" in name


#: Exit timings: "end" (at least one month in the state) or "start" (a participant may pass through).
TIMINGS = ("end", "start")
#: Outcome kinds (see :class:`Outcome`).
OUTCOME_KINDS = ("entry", "event", "milestone", "occupancy", "status")


@dataclass(frozen=True)
class Prior:
    """Uncertain probability (Beta) or monthly rate (Gamma), or a fixed value.

    Each Monte Carlo path draws one value (parameter uncertainty); all
    participants of that path then share it (individual randomness comes on top).

    Parameters
    ----------
    mean : float
        Expected value: a probability in [0, 1], or a rate (events per participant-month)
        >= 0, at most the loader's cap (``MAX_EVENT_RATE`` in :mod:`sibsim.scenario_journey`).
    sd : float
        Standard deviation of the prior; 0 means the value is known (fixed).
    kind : {"probability", "rate"}
        A probability (Beta prior, in [0, 1]) or a rate per month (Gamma prior, >= 0).
    """

    mean: float
    sd: float = 0.0
    kind: str = "probability"

    @property
    def is_fixed(self) -> bool:
        return self.sd == 0.0

    @property
    def alpha_beta(self) -> tuple[float, float]:
        """Beta parameters matching ``mean`` and ``sd`` (method of moments)."""
        m, v = self.mean, self.sd**2
        k = m * (1.0 - m) / v - 1.0
        return m * k, (1.0 - m) * k

    @classmethod
    def from_alpha_beta(cls, alpha: float, beta: float) -> "Prior":
        n = alpha + beta
        return cls(mean=alpha / n, sd=float(np.sqrt(alpha * beta / (n * n * (n + 1.0)))))

    def cdf(self, values: np.ndarray) -> np.ndarray:
        """P(value <= x) under the prior (Beta, or Gamma for a rate); a fixed prior's is a step at its mean."""
        values = np.asarray(values, dtype=float)
        if self.is_fixed:
            return (values >= self.mean).astype(float)
        if self.kind == "rate":  # Gamma: shape (m/sd)^2, scale sd^2/m
            return special.gammainc((self.mean / self.sd) ** 2, values * self.mean / self.sd**2)
        return special.betainc(*self.alpha_beta, values)

    def quantile(self, q: np.ndarray) -> np.ndarray:
        """The value of rank ``q`` in [0, 1] under the prior (inverse of :meth:`cdf`; a fixed prior: its mean)."""
        q = np.asarray(q, dtype=float)
        if self.is_fixed:
            return np.full(q.shape, self.mean)
        if self.kind == "rate":
            return special.gammaincinv((self.mean / self.sd) ** 2, q) * self.sd**2 / self.mean
        return special.betaincinv(*self.alpha_beta, q)

    def draw(self, rng: np.random.Generator, n_paths: int) -> np.ndarray:
        """One value (probability or rate) per path, shape ``(n_paths,)``."""
        if self.is_fixed:
            return np.full(n_paths, self.mean)
        if self.kind == "rate":  # Gamma with this mean and sd: shape (m/sd)^2, scale sd^2/m
            return rng.gamma((self.mean / self.sd) ** 2, self.sd**2 / self.mean, n_paths)
        a, b = self.alpha_beta
        return rng.beta(a, b, n_paths)


@dataclass(frozen=True)
class Exit:
    """A competing exit out of a state.

    Parameters
    ----------
    to : str
        State entered.
    probability : str
        Name of the parameter holding the monthly probability.
    event : str or None
        Name of a transition event recorded when this exit is taken (e.g. ``"diploma"``).
    """

    to: str
    probability: str
    event: str | None = None


@dataclass(frozen=True)
class RecurrentEvent:
    """Events that happen while in a state, a Poisson number per month (e.g. reconvictions).

    ``rate`` names a parameter: expected events per participant-month in the state.
    """

    event: str
    rate: str


@dataclass(frozen=True)
class State:
    """A state of the journey.

    Parameters
    ----------
    name : str
    exits : tuple of Exit
        Competing exits (see step 5 of the module notes).
    timing : {"end", "start"}
        When exits are drawn: at the end of each month (default) or at its start.
    exits_in_order : bool
        Exits as decrements applied in order (True) or simultaneous with the stay as complement.
    time_limit : int or None
        Months at most in the state; then ``after_limit``.
    after_limit : str or None
        State entered after ``time_limit`` months.
    events : tuple of RecurrentEvent
        Recurrent events while in the state.
    """

    name: str
    exits: tuple[Exit, ...] = ()
    timing: str = "end"
    exits_in_order: bool = False
    time_limit: int | None = None
    after_limit: str | None = None
    events: tuple[RecurrentEvent, ...] = ()

    @property
    def absorbing(self) -> bool:
        return not self.exits and self.time_limit is None


@dataclass(frozen=True)
class Branch:
    """At a duration in a set of states, move to another state with a probability.

    "49 % of jobs that reach 6 months become long-term contracts": ``states`` = the job states
    (months counted consecutively in the set), ``at_month = 6``, ``to`` = the long-term-contract
    state, ``probability`` = the parameter holding 0.49. Fires in the ``at_month``-th consecutive
    month in the set, for participants not already in ``to`` (step 3 of the module notes).
    """

    states: tuple[str, ...]
    at_month: int
    to: str
    probability: str
    event: str | None = None


@dataclass(frozen=True)
class Journey:
    """The state machine of one programme (the treated group; the comparison group overrides parameters).

    Parameters
    ----------
    states : tuple of State
        In declared order (the engine numbers them so).
    start : tuple of (state, share)
        Start distribution, shares summing to 1 (one ``(state, 1.0)`` for a single start state).
        Each participant draws its start state.
    branches : tuple of Branch
    parameters : tuple of (name, Prior)
        Named monthly probabilities (Beta priors) and rates (Gamma priors, ``Prior.kind == "rate"``),
        in declared order: the order in which a path draws them.
    """

    states: tuple[State, ...]
    start: tuple[tuple[str, float], ...]
    branches: tuple[Branch, ...] = ()
    parameters: tuple[tuple[str, Prior], ...] = ()

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.parameters)

    def state(self, name: str) -> State:
        for s in self.states:
            if s.name == name:
                return s
        raise KeyError(name)

    def prior(self, name: str) -> Prior:
        return dict(self.parameters)[name]

    @property
    def event_names(self) -> tuple[str, ...]:
        """Every named event (transition and recurrent), in first-declared order."""
        names: list[str] = []
        for s in self.states:
            for e in s.exits:
                if e.event and e.event not in names:
                    names.append(e.event)
            for r in s.events:
                if r.event not in names:
                    names.append(r.event)
        for b in self.branches:
            if b.event and b.event not in names:
                names.append(b.event)
        return tuple(names)

    def describe_parameter(self, name: str) -> str:
        """Where a parameter is used, in words: "training to job search with diploma, per month"."""
        words = lambda n: n.replace("_", " ")  # noqa: E731
        uses = []
        for s in self.states:
            for e in s.exits:
                if e.probability == name:
                    uses.append(f"{words(s.name)} to {words(e.to)}, per month")
            for r in s.events:
                if r.rate == name:
                    uses.append(f"{words(r.event)} events per month in {words(s.name)}")
        for b in self.branches:
            if b.probability == name:
                uses.append(f"to {words(b.to)} on reaching {b.at_month} months in "
                            f"{', '.join(words(x) for x in b.states)}, per participant")
        return "; ".join(dict.fromkeys(uses)) or "not used"

    def start_cycle(self) -> list[str] | None:
        """A loop of exits among ``"start"``-timing states, as the states in order with the first repeated
        at the end (``["a", "b", "a"]``), or None: a participant there would pass through them forever in
        one month, which the loader refuses and the engines never run."""
        start = {s.name for s in self.states if s.timing == "start"}
        graph = {s.name: [e.to for e in s.exits if e.to in start] for s in self.states if s.name in start}
        colour: dict[str, int] = {}  # 1: on the current path, 2: done

        def visit(name: str, path: list[str]) -> list[str] | None:
            colour[name] = 1
            for nxt in graph[name]:
                if colour.get(nxt) == 1:
                    return path[path.index(nxt):] + [nxt]
                if nxt not in colour:
                    loop = visit(nxt, path + [nxt])
                    if loop:
                        return loop
            colour[name] = 2
            return None

        for name in graph:
            if name not in colour:
                loop = visit(name, [name])
                if loop:
                    return loop
        return None

    def with_parameters(self, overrides: dict[str, Prior]) -> "Journey":
        """The same machine with some parameters' priors replaced (a comparison group)."""
        unknown = set(overrides) - set(self.parameter_names)
        if unknown:
            raise KeyError(", ".join(sorted(unknown)))
        return Journey(self.states, self.start, self.branches,
                       tuple((n, overrides.get(n, p)) for n, p in self.parameters))


@dataclass(frozen=True)
class Outcome:
    """Something the contract can pay for, measure or report, counted per cohort and month.

    Kinds
    -----
    ``entry``
        Entries into ``states`` (a set, entered from outside it): ``count = "first"`` counts each
        participant's first entry only, ``"every"`` every entry.
    ``event``
        Occurrences of the named ``event`` (transition or recurrent): ``"first"`` or ``"every"``
        (a frequency measure: reconviction events per 100 participants).
    ``milestone``
        Reaching ``months`` months in ``states``: consecutive (a run; ``"every"`` counts each run
        reaching it) or cumulative (``consecutive = False``; once per participant). Dated in the
        month the milestone is reached.
    ``occupancy``
        Person-months in ``states`` (months off benefits, bed days with ``scale`` days per month).
    ``status``
        Participants in ``states`` in month ``intake + k`` for each ``k`` in ``at_months`` (a census),
        dated that month.

    ``window``/``lag`` restrict and date occurrences (module notes); ``scale`` converts the count
    into the unit priced (e.g. 30.42 days per person-month), 1 otherwise.
    """

    name: str
    kind: str
    states: tuple[str, ...] = ()
    event: str | None = None
    count: str = "first"
    months: int = 0
    consecutive: bool = True
    at_months: tuple[int, ...] = ()
    window: int | None = None
    lag: int = 0
    scale: float = 1.0
    label: str = ""
    unit: str = "participants"

    @property
    def title(self) -> str:
        """What reports call it: the label, else the name in words."""
        return self.label or self.name.replace("_", " ")

    @property
    def once_per_participant(self) -> bool:
        """Counted at most once per participant (a first entry or event, a first or cumulative milestone):
        its count over a group's size is a share; other kinds can exceed one per participant."""
        return self.kind in ("entry", "event", "milestone") and (
            self.count == "first" or (self.kind == "milestone" and not self.consecutive))


@dataclass(frozen=True)
class CostBand:
    """Monthly (or per-event) amount for a group of participants (an age band), and its share of them."""

    group: str
    amount: float
    share: float


@dataclass(frozen=True)
class CostItem:
    """What the payer spends per participant-month in ``states``, or per ``event``.

    Its ``name`` is unique among outcomes and cost items: an observed file counts its units
    (participant-months or events) under that name.

    The payer's savings are the counterfactual's cost less the treated group's, from these same
    definitions. The amount is the share-weighted average of ``bands`` (EUR per month or per event)
    times ``fraction`` (e.g. the part of the benefit still paid as a top-up in part-time work),
    indexed by ``annual_indexation`` every 12 months from the contract start.
    """

    name: str
    bands: tuple[CostBand, ...]
    states: tuple[str, ...] = ()
    event: str | None = None
    fraction: float = 1.0
    annual_indexation: float = 0.0
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    @property
    def base_amount(self) -> float:
        """EUR per participant-month (or per event) in month 0."""
        return sum(b.amount * b.share for b in self.bands) * self.fraction

    def as_outcome(self) -> Outcome:
        """The count this cost is priced on: person-months in its states, or every event."""
        if self.event is not None:
            return Outcome(name=self.name, kind="event", event=self.event, count="every", unit="events")
        return Outcome(name=self.name, kind="occupancy", states=self.states, unit="months")
