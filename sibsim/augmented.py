"""The augmented chain of a journey: its states, counters and "first" flags, built from the structure only.

Used by :mod:`sibsim.expectation`, which propagates it month by month with per-path probabilities.

The augmented state
-------------------
Between two months a participant is described by the state it occupies at the start of the next
month (before that month's ``"start"``-timing draws), together with

* months already spent in that state, kept only for states with a time limit (0 .. limit - 1);
* for every set used by a branch or a consecutive milestone: the current run of months in the set,
  capped at the largest duration asked of it (beyond it the exact value no longer matters);
* for every set of a cumulative milestone: the months spent in it so far, capped likewise;
* one flag per ``"first"`` count (entries into a set, an event, a consecutive milestone): already
  counted or not.

Months since intake are not part of the state: windows, lags and census months are functions of
them, applied to the per-participant curves before the shift by the intake month.  Recurrent events
counted ``"every"`` need no counter: their expectation is the rate times the probability of being in
the state that month; a ``"first"`` count of an event splits the month on the Poisson probability of
at least one event, ``1 - exp(-rate)``.

Readings of the rules (module notes of :mod:`sibsim.journey`) made precise here
-------------------------------------------------------------------------------
* A *set's run* is the number of months since the participant last entered the set: any state
  outside the set on the way, even one passed through without a month in it, ends the run; entering
  the set again starts a new run (and is an entry into the set).  After a branch the month belongs to
  the state it ends in: runs of sets holding both states continue, runs of sets holding only the new
  state start at 1 and runs of sets without it end.  Cumulative months count months only.
* Branches are tried in declared order among those whose condition holds in the month; each one
  fires with its probability, and the first that fires ends the search (so a later branch fires with
  its probability times the complements of the earlier eligible ones).
* A chain of arrivals (at the start of a month, or after a branch) passes through each ``"start"``
  state at most once: a journey whose ``"start"`` states' exits form a cycle is refused
  (``ValueError``), where the reference simulator fails only on the paths that go round it.
* Competing exits summing above 1 on a path raise ``ValueError`` (beyond 1e-12 of rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .journey import Journey, Outcome

#: Largest augmented chain built (reachable states); a larger one is refused with the counters to blame.
MAX_STATES = 20_000


@dataclass(frozen=True)
class Chain:
    """The augmented chain of one journey and measure list, independent of the parameter values.

    Attributes
    ----------
    n_nodes : int
        Reachable augmented states.
    src, dst : ndarray (edges,) int64
        Source and destination node of each edge (one month), sorted by destination.
    factors : ndarray (edges, K) int64
        Indices into ``factor_keys``: an edge's probability is the product of its K factors.
    factor_keys : tuple
        What each factor is, per path: ``("one",)``, ``("p", i)``, ``("q", i)`` (``1 - p_i``),
        ``("stay", (i, ...), state)`` (``1 - sum p``), ``("none", (i, ...))`` (``exp(-sum rate)``),
        ``("some", (i, ...))`` (``1 - exp(-sum rate)``), ``i`` a parameter column.
    now, later : ndarray (edges, measures)
        Occurrences of each measure on the edge dated in the month of the edge, and in the next
        month (entries into the state the month's end leads to).
    occupied : ndarray (edges,) int64
        State occupied in the month of the edge (what occupancy, status and events see).
    rates : tuple of (measure, state, (parameter, ...))
        Recurrent events counted ``"every"``: expected ``sum(rates)`` per month in ``state``.
    start_node : dict of int -> int
        Node of a participant arriving in each start state at intake.
    start_counts : dict of int -> ndarray (measures,)
        Entries dated in the intake month by that arrival.
    """

    n_nodes: int
    src: np.ndarray
    dst: np.ndarray
    factors: np.ndarray
    factor_keys: tuple
    now: np.ndarray
    later: np.ndarray
    occupied: np.ndarray
    rates: tuple
    start_node: dict
    start_counts: dict


class _Plan:
    """What must be tracked for a journey and its measures (sets as frozensets of state indices)."""

    def __init__(self, journey: Journey, measures: tuple[Outcome, ...]):
        self.journey = journey
        self.names = journey.state_names
        self.index = {n: i for i, n in enumerate(self.names)}
        self.param = {n: i for i, n in enumerate(journey.parameter_names)}
        self.states = journey.states
        self.measures = measures
        runs: dict[frozenset, int] = {}  # set -> cap (largest duration asked)
        cums: dict[frozenset, int] = {}
        flags: list = []
        for b in journey.branches:
            x = self.set_of(b.states)
            runs[x] = max(runs.get(x, 0), b.at_month)
        for o in measures:
            if o.kind not in ("entry", "event", "milestone", "occupancy", "status"):
                raise ValueError(f"measure {o.name!r}: unknown kind {o.kind!r}")
            if o.kind in ("entry", "event") and o.count not in ("first", "every"):
                raise ValueError(f"measure {o.name!r}: count must be 'first' or 'every', got {o.count!r}")
            if o.kind == "milestone":
                if o.months < 1:
                    raise ValueError(f"measure {o.name!r}: a milestone needs months >= 1")
                x = self.set_of(o.states)
                table = runs if o.consecutive else cums
                table[x] = max(table.get(x, 0), o.months)
            key = self.flag_key(o)
            if key is not None and key not in flags:
                flags.append(key)
        self.run_sets = tuple(runs)
        self.run_caps = tuple(runs.values())
        self.cum_sets = tuple(cums)
        self.cum_caps = tuple(cums.values())
        self.flags = tuple(flags)
        self.flag_index = {k: i for i, k in enumerate(flags)}
        #: the set of states of each measure (empty for events)
        self.sets = tuple(self.set_of(o.states) for o in measures)

    def set_of(self, states) -> frozenset:
        try:
            return frozenset(self.index[s] for s in states)
        except KeyError as err:
            raise ValueError(f"unknown state {err.args[0]!r}") from None

    def param_of(self, name: str) -> int:
        try:
            return self.param[name]
        except KeyError:
            raise ValueError(f"unknown parameter {name!r}") from None

    def flag_key(self, o: Outcome):
        """The flag a measure's ``"first"`` count needs, or None."""
        if o.kind == "entry" and o.count == "first":
            return ("entry", self.set_of(o.states))
        if o.kind == "event" and o.count == "first":
            return ("event", o.event)
        if o.kind == "milestone" and o.consecutive and o.count == "first":
            return ("milestone", self.set_of(o.states), o.months)
        return None


@dataclass
class _Walk:
    """One way a month can go so far: the current state, counters, and what the way has counted."""

    state: int
    months: int  # months in `state` before this month (0 after a move)
    runs: list
    cums: list
    flags: list
    factors: list
    now: np.ndarray
    later: np.ndarray
    drawn: frozenset  # "start" states whose exits this chain of arrivals has drawn

    def copy(self) -> "_Walk":
        return _Walk(self.state, self.months, list(self.runs), list(self.cums), list(self.flags),
                     list(self.factors), self.now.copy(), self.later.copy(), self.drawn)


class _Builder:
    def __init__(self, plan: _Plan):
        self.plan = plan
        self.n_measures = len(plan.measures)
        self.keys: dict = {("one",): 0}

    # --- counting -----------------------------------------------------------------------------

    def _flag_count(self, w: _Walk, key, counts: np.ndarray, measure: int) -> None:
        """Count a "first" occurrence: only if its flag is down (the flag goes up after every measure's look)."""
        if not w.flags[self.plan.flag_index[key]]:
            counts[measure] += 1.0

    def _raise(self, w: _Walk, key) -> None:
        w.flags[self.plan.flag_index[key]] = True

    def event(self, w: _Walk, name: str | None) -> None:
        """A transition event in this month."""
        if name is None:
            return
        first = False
        for j, o in enumerate(self.plan.measures):
            if o.kind == "event" and o.event == name:
                if o.count == "every":
                    w.now[j] += 1.0
                else:
                    self._flag_count(w, ("event", name), w.now, j)
                    first = True
        if first:
            self._raise(w, ("event", name))

    def move(self, w: _Walk, to: int, later: bool) -> None:
        """Arrive in state ``to``: entries into sets (dated now or next month), runs of sets left end."""
        plan, came = self.plan, w.state
        counts = w.later if later else w.now
        raised = []
        for j, o in enumerate(plan.measures):
            if o.kind != "entry":
                continue
            x = plan.sets[j]
            if to in x and (came is None or came not in x):
                if o.count == "every":
                    counts[j] += 1.0
                else:
                    self._flag_count(w, ("entry", x), counts, j)
                    raised.append(("entry", x))
        for key in raised:
            self._raise(w, key)
        for i, x in enumerate(plan.run_sets):
            if to not in x:
                w.runs[i] = 0
        w.state, w.months = to, 0

    # --- the month, step by step -----------------------------------------------------------------

    def exits(self, s: int) -> list:
        """(factor keys, exit) of each exit of state ``s``, then (factor keys, None) for the stay."""
        state = self.plan.states[s]
        cols = [self.plan.param_of(e.probability) for e in state.exits]
        if state.exits_in_order:
            out = [([("q", c) for c in cols[:k]] + [("p", cols[k])], e) for k, e in enumerate(state.exits)]
            return out + [([("q", c) for c in cols], None)]
        return [([("p", c)], e) for c, e in zip(cols, state.exits)] + [([("stay", tuple(cols), state.name)], None)]

    def draw_start(self, w: _Walk) -> list:
        """Step 1: a "start" state's exits, drawn at once (passing through, possibly into another)."""
        state = self.plan.states[w.state]
        if state.timing != "start" or not state.exits:
            return [w]
        if w.state in w.drawn:
            raise ValueError(f"state {state.name!r} ('start' timing) can be passed through twice in one month "
                             "(a cycle among 'start' states)")
        out = []
        for keys, e in self.exits(w.state):
            v = w.copy()
            v.drawn = w.drawn | {w.state}
            v.factors += keys
            if e is None:
                out.append(v)
                continue
            self.event(v, e.event)
            self.move(v, self.plan.index[e.to], later=False)
            out += self.draw_start(v)
        return out

    def branches(self, w: _Walk) -> list:
        """Step 3: the branches whose run is reached this month, tried in order; at most one fires."""
        plan, out, passed = self.plan, [], []
        for b in plan.journey.branches:
            x, to = plan.set_of(b.states), plan.index[b.to]
            i = plan.run_sets.index(x)
            if w.state not in x or w.state == to or w.runs[i] + 1 != b.at_month:
                continue
            col = plan.param_of(b.probability)
            v = w.copy()
            v.factors += passed + [("p", col)]
            # the month so far counts for the sets the participant stays in: run + 1 before moving on
            self.event(v, b.event)
            self.move(v, to, later=False)  # runs of sets left end; step 4 counts the month where it ends
            v.drawn = frozenset()  # a new arrival: its pass-through chain is drawn afresh
            out += self.draw_start(v)
            passed.append(("q", col))
        w = w.copy()
        w.factors += passed
        return out + [w]

    def count(self, w: _Walk) -> list:
        """Step 4: the month's runs, cumulative months, milestones and "first" recurrent events."""
        plan, s = self.plan, w.state
        raised = []
        for i, (x, cap) in enumerate(zip(plan.run_sets, plan.run_caps)):
            run = w.runs[i] + 1 if s in x else 0
            for j, o in enumerate(plan.measures):
                if o.kind == "milestone" and o.consecutive and plan.sets[j] == x and run == o.months:
                    if o.count == "every":
                        w.now[j] += 1.0
                    else:
                        key = ("milestone", x, o.months)
                        self._flag_count(w, key, w.now, j)
                        raised.append(key)
            w.runs[i] = min(run, cap)
        for i, (x, cap) in enumerate(zip(plan.cum_sets, plan.cum_caps)):
            if s in x:
                total = w.cums[i] + 1
                for j, o in enumerate(plan.measures):
                    if o.kind == "milestone" and not o.consecutive and plan.sets[j] == x and total == o.months:
                        w.now[j] += 1.0
                w.cums[i] = min(total, cap)
        for key in raised:
            self._raise(w, key)
        for j, o in enumerate(plan.measures):
            if o.kind in ("occupancy", "status") and s in plan.sets[j]:
                w.now[j] += 1.0
        out = [w]
        for key in plan.flags:
            if key[0] != "event":
                continue
            cols = tuple(plan.param_of(r.rate) for r in plan.states[s].events if r.event == key[1])
            if not cols:
                continue
            split = []
            for v in out:
                if v.flags[plan.flag_index[key]]:
                    split.append(v)
                    continue
                none, some = v.copy(), v.copy()
                none.factors.append(("none", cols))
                some.factors.append(("some", cols))
                for j, o in enumerate(plan.measures):
                    if o.kind == "event" and o.event == key[1] and o.count == "first":
                        some.now[j] += 1.0
                self._raise(some, key)
                split += [none, some]
            out = split
        return out

    def end(self, w: _Walk) -> list:
        """Steps 5 and 6: "end" exits at the end of the month, then the time limit."""
        state = self.plan.states[w.state]
        months = w.months + 1
        out = []
        ways = self.exits(w.state) if state.timing == "end" and state.exits else [([], None)]
        for keys, e in ways:
            v = w.copy()
            v.factors += keys
            v.months = months
            if e is not None:
                self.event(v, e.event)
                self.move(v, self.plan.index[e.to], later=True)
            elif state.time_limit is not None and months >= state.time_limit:
                self.move(v, self.plan.index[state.after_limit], later=True)
            out.append(v)
        return out

    def month(self, w: _Walk) -> list:
        """Every way one month can go from augmented state ``w`` (its counts zeroed)."""
        ways = []
        for a in self.draw_start(w):
            for b in self.branches(a):
                occupied = b.state  # where the month is spent: what step 4 counts
                for c in self.count(b):
                    ways += [(occupied, d) for d in self.end(c)]
        return ways

    def node_key(self, w: _Walk) -> tuple:
        state = self.plan.states[w.state]
        months = w.months if state.time_limit is not None else 0
        return (w.state, months, tuple(w.runs), tuple(w.cums), tuple(w.flags))

    def factor_index(self, key) -> int:
        return self.keys.setdefault(key, len(self.keys))


def _too_large(plan: _Plan, keys: list, limit: int) -> ValueError:
    """One line naming the counters that make the augmented chain too large."""
    parts = []
    for i, x in enumerate(plan.run_sets):
        n = len({k[2][i] for k in keys})
        parts.append((n, f"run in {{{', '.join(plan.names[s] for s in sorted(x))}}}: {n} values"))
    for i, x in enumerate(plan.cum_sets):
        n = len({k[3][i] for k in keys})
        parts.append((n, f"cumulative months in {{{', '.join(plan.names[s] for s in sorted(x))}}}: {n} values"))
    for s, st in enumerate(plan.states):
        if st.time_limit is not None:
            parts.append((st.time_limit, f"time limit of {st.name!r}: {st.time_limit} months"))
    if plan.flags:
        parts.append((2 ** len(plan.flags), f"{len(plan.flags)} 'first' flags"))
    parts.sort(key=lambda p: -p[0])
    return ValueError(f"the exact expectation of this journey needs more than {limit} augmented states "
                      f"({'; '.join(p[1] for p in parts)}): shorten the largest counters "
                      "(cumulative milestones, long runs) or simulate the group instead")


def build_chain(journey: Journey, measures: tuple[Outcome, ...], start_states, limit: int = MAX_STATES) -> Chain:
    """The augmented chain of ``journey`` for ``measures``, reachable from ``start_states`` (indices).

    Raises
    ------
    ValueError
        If more than ``limit`` augmented states are reachable (the message names the counters),
        or the journey is malformed (unknown names, a "start" state passed through twice a month).
    """
    plan = _Plan(journey, tuple(measures))
    builder = _Builder(plan)
    m = len(plan.measures)
    blank = dict(runs=[0] * len(plan.run_sets), cums=[0] * len(plan.cum_sets), flags=[False] * len(plan.flags))
    nodes: list = []
    index: dict = {}

    def node(w: _Walk) -> int:
        key = builder.node_key(w)
        if key not in index:
            if len(nodes) >= limit:
                raise _too_large(plan, nodes, limit)
            index[key] = len(nodes)
            nodes.append(key)
        return index[key]

    start_node, start_counts = {}, {}
    for s in start_states:
        w = _Walk(None, 0, list(blank["runs"]), list(blank["cums"]), list(blank["flags"]), [],
                  np.zeros(m), np.zeros(m), frozenset())
        builder.move(w, int(s), later=True)  # the intake month is "the next month" of nothing
        start_node[int(s)] = node(w)
        start_counts[int(s)] = w.later
    edges = []
    done = 0
    while done < len(nodes):  # breadth first: `nodes` grows while we go
        s, months, runs, cums, flags = nodes[done]
        w = _Walk(s, months, list(runs), list(cums), list(flags), [], np.zeros(m), np.zeros(m), frozenset())
        for occupied, v in builder.month(w):
            fac = tuple(sorted(builder.factor_index(k) for k in v.factors))
            edges.append((done, node(v), fac, v.now, v.later, occupied))
        done += 1
    edges.sort(key=lambda e: e[1])  # by destination, for the scatter-add
    width = max([len(e[2]) for e in edges] + [1])
    factors = np.zeros((len(edges), width), dtype=np.int64)  # padded with factor 0, "one"
    for i, e in enumerate(edges):
        factors[i, : len(e[2])] = e[2]
    rates = []
    for j, o in enumerate(plan.measures):
        if o.kind == "event" and o.count == "every":
            for s, st in enumerate(plan.states):
                cols = tuple(plan.param_of(r.rate) for r in st.events if r.event == o.event)
                if cols:
                    rates.append((j, s, cols))
    return Chain(
        n_nodes=len(nodes),
        src=np.array([e[0] for e in edges], dtype=np.int64),
        dst=np.array([e[1] for e in edges], dtype=np.int64),
        factors=factors,
        factor_keys=tuple(builder.keys),
        now=np.array([e[3] for e in edges]).reshape(len(edges), m),
        later=np.array([e[4] for e in edges]).reshape(len(edges), m),
        occupied=np.array([e[5] for e in edges], dtype=np.int64),
        rates=tuple(rates),
        start_node=start_node,
        start_counts=start_counts,
    )
