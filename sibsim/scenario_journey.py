"""Read a scenario's journey, outcomes, costs and comparison group into :mod:`sibsim.journey` data.

``[journey]`` (start, ``[journey.parameters]``, ``[[journey.states]]``, ``[[journey.branches]]``),
``[outcomes.<name>]``, ``[[costs]]``, a cohort's ``start`` and ``[comparison]`` (start, shared,
``[comparison.parameters]``).  Problems go through the scenario's :class:`~sibsim.checking._Checker`,
one line each; the rules on the machine as a whole (every state reachable, simultaneous exits that
cannot sum above 1, no loop of ``"start"`` states, branch durations that can be reached) are checked
by :meth:`JourneyReader.check_machine` once every start state is known.

Parameter names
---------------
A probability or rate written inline (a number or ``{mean, sd}`` instead of a parameter's name)
becomes a parameter of its own, named after where it is: ``"training->job_search"`` for an exit,
``"community:reconviction"`` for a recurrent event, ``"job+long_term_job@6->long_term_job"`` for a
branch, so that ``[comparison.parameters]`` can override it by that name.  Declared parameters come
first (in declared order), inline ones after them (in the order written): the order in which a path
draws them.
"""

from __future__ import annotations

import dataclasses
import math

from .checking import MAX_MONTH, MIN_PRIOR_SD, _Checker, _describe, _join, _show
from .contracts import ComparisonGroup
from .journey import OUTCOME_KINDS, TIMINGS, Branch, CostBand, CostItem, Exit, Journey, Outcome, Prior, RecurrentEvent, State

#: Keys of the journey before it was a state machine: a file using them gets one line pointing to the format.
OLD_JOURNEY_KEYS = ("max_training_months", "diploma", "dropout", "job_with_diploma", "job_without_diploma",
                    "relapse", "relapse_long_term", "long_term_contract")
NEW_FORMAT_HINT = "the journey is now a state machine ([journey.states], [outcomes]); see docs/scenario.md"
#: Largest monthly event rate (events per participant-month): counts stay far inside int32.
MAX_EVENT_RATE = 100.0
#: Share sums (start distributions, cost bands) must be 1 within this.
SHARE_TOLERANCE = 1e-9
#: A simultaneous exit's upper bound under a Beta prior: its quantile at 1 - this.
EXIT_BOUND_TAIL = 1e-9
#: Keys each outcome kind takes besides the common ones; and those it requires.
_COMMON_OUTCOME_KEYS = ("kind", "window", "lag", "scale", "label", "unit")
_OUTCOME_KEYS = {
    "entry": ("states", "count"), "event": ("event", "count"),
    "milestone": ("states", "months", "consecutive", "count"), "occupancy": ("states",),
    "status": ("states", "at_months"),
}
_OUTCOME_REQUIRED = {"entry": ("states",), "event": ("event",), "milestone": ("states", "months"),
                     "occupancy": ("states",), "status": ("states", "at_months")}
#: What an outcome counts, by kind, when the scenario does not say (``unit``).
_DEFAULT_UNITS = {"entry": "participants", "event": "events", "milestone": "participants",
                  "occupancy": "months", "status": "participants"}


def old_format_problem(doc: dict) -> str | None:
    """``field: hint`` for a scenario written for the journey before the state machine, else ``None``."""
    journey = doc.get("journey")
    if isinstance(journey, dict) and "states" not in journey:
        for key in OLD_JOURNEY_KEYS:
            if key in journey:
                return f"journey.{key}: {NEW_FORMAT_HINT}"
    return None


def _names(values) -> str:
    return ", ".join(sorted(values)) or "none"


@dataclasses.dataclass
class _Param:
    """A parameter as written: its value, where, its declared kind (None: a number, kind from its use)."""

    value: object
    field: str
    kind: str | None
    uses: dict = dataclasses.field(default_factory=dict)  # kind -> first field using it
    prior: Prior | None = None


class JourneyReader:
    """Reads the journey and everything naming its states, parameters and events, for one scenario."""

    def __init__(self, c: _Checker):
        self.c = c
        self.params: dict[str, _Param] = {}
        self.param_keys: dict[str, tuple[str, str]] = {}
        self.state_fields: dict[str, str] = {}  # state name -> field of its name
        self.state_refs: list[tuple[str, str]] = []  # (field, state name) to check once all states are read
        self.param_refs: list[tuple[str, str, str]] = []  # (field, parameter name, kind used as)
        self.starts: list[tuple[tuple[tuple[str, float], ...], str]] = []  # every start distribution, with its field
        self.journey: Journey | None = None
        self.state_index: dict[str, int] = {}
        self.ok = False  # the journey read without a problem: the machine rules can be checked
        self.states_read = False  # every state has a name: references to states can be checked
        self.comparison_journey: Journey | None = None

    # -- names -------------------------------------------------------------------------------
    def state_ref(self, value, field: str) -> str | None:
        if not isinstance(value, str) or not value:
            self.c.problem(field, f"must be the name of a state, got {_describe(value)}")
            return None
        self.state_refs.append((field, value))
        return value

    def state_set(self, data: dict, key: str, field: str) -> tuple[str, ...] | None:
        value = data.get(key)
        f = _join(field, key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            self.c.problem(f, f"must be a non-empty array of state names, got {_describe(value)}")
            return None
        if len(set(value)) < len(value):
            self.c.problem(f, f"must not name a state twice, got {value}")
            return None
        for j, name in enumerate(value):
            self.state_refs.append((f"{f}[{j}]", name))
        return tuple(value)

    def _optional_name(self, t: dict, key: str, field: str) -> str | None:
        return self.c.name(t, key, field) if key in t else None

    def start(self, value, field: str) -> tuple[tuple[str, float], ...] | None:
        """A start state's name, or a table ``{state = share}`` with shares summing to 1."""
        c = self.c
        if isinstance(value, str):
            out = ((value, 1.0),) if self.state_ref(value, field) else None
        elif isinstance(value, dict) and value:
            shares = []
            for name, share in value.items():
                s = c.check_number(share, _join(field, name), ge=0, le=1)
                self.state_refs.append((_join(field, name), name))
                if s is None:
                    return None
                shares.append((name, float(s)))
            total = math.fsum(s for _, s in shares)
            if abs(total - 1.0) > SHARE_TOLERANCE:
                c.problem(field, f"shares must add up to 1, got {total:.12g}")
                return None
            out = tuple(shares)
        else:
            c.problem(field, f"must be a state name or a table {{state = share}}, got {_describe(value)}")
            return None
        if out is not None:
            self.starts.append((out, field))
        return out

    # -- parameters --------------------------------------------------------------------------
    def _declare(self, name: str, value, field: str, kind: str | None) -> None:
        self.params[name] = _Param(value, field, kind)

    def probability_ref(self, value, field: str, inline_name: str, kind: str = "probability") -> str | None:
        """A parameter's name, or an inline number / ``{mean, sd}`` made a parameter named ``inline_name``."""
        if isinstance(value, str):
            self.param_refs.append((field, value, kind))
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
            self.c.problem(field, f"must be a parameter name, a number or {{mean, sd}}, got {_describe(value)}")
            return None
        if inline_name in self.params:
            self.c.problem(field, f"an inline {kind} is named {inline_name!r}, already the name of a parameter: "
                           f"name a parameter of [journey.parameters] instead")
            return None
        self._declare(inline_name, value, field, kind)
        self.param_refs.append((field, inline_name, kind))
        return inline_name

    def _prior(self, value, field: str, kind: str) -> Prior | None:
        """A probability (Beta prior) or a monthly rate (Gamma prior), or a fixed number."""
        c = self.c
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "kind"}
        if kind == "probability":
            return c.prior(value, field)
        if not isinstance(value, dict):
            v = c.check_number(value, field, ge=0, le=MAX_EVENT_RATE)
            return None if v is None else Prior(float(v), 0.0, "rate")
        c.table(value, field, required=("mean", "sd"))
        mean = c.number(value, "mean", field, ge=0, le=MAX_EVENT_RATE)
        sd = c.number(value, "sd", field, ge=0, le=MAX_EVENT_RATE)
        if mean is None or sd is None:
            return None
        if 0 < sd < MIN_PRIOR_SD:
            c.problem(_join(field, "sd"), f"must be 0 (known value) or >= {MIN_PRIOR_SD:g}, got {_show(sd)}")
            return None
        if sd > 0 and mean <= 0:
            c.problem(_join(field, "mean"), f"must be > 0 for a Gamma prior (sd > 0), got {_show(mean)}")
            return None
        return Prior(float(mean), float(sd), "rate")

    def parameters(self, data, field: str) -> None:
        t = self.c.table(data, field, optional=tuple(data) if isinstance(data, dict) else ())
        for name, value in (t or {}).items():
            f = _join(field, name)
            if self.c.check_name(name, f) is None or not self.c.unique_name(name, f, self.param_keys):
                continue
            kind = None
            if isinstance(value, dict):
                kind = "probability"
                if "kind" in value:
                    kind = self.c.choice(value, "kind", f, ("probability", "rate"))
                    if kind is None:
                        continue
            self._declare(name, value, f, kind)

    def _resolve_parameters(self) -> bool:
        """Check every reference, give each parameter its kind, build its prior; True if all is well."""
        c, ok = self.c, True
        for field, name, kind in self.param_refs:
            p = self.params.get(name)
            if p is None:
                c.problem(field, f"unknown parameter {name!r} (parameters: {_names(self.params)})")
                ok = False
                continue
            p.uses.setdefault(kind, field)
        for name, p in self.params.items():
            if len(p.uses) == 2:
                c.problem(p.field, f"must be used as a probability or as a rate, not both, got a probability in "
                          f"{p.uses['probability']} and a rate in {p.uses['rate']}")
                ok = False
                continue
            used = next(iter(p.uses), None)
            if p.kind is not None and used is not None and used != p.kind:
                want = ("a rate parameter ({mean, sd, kind = \"rate\"} or a number)" if used == "rate"
                        else "a probability parameter")
                c.problem(p.uses[used], f"must name {want}, got {p.kind} parameter {name!r}")
                ok = False
                continue
            p.prior = self._prior(p.value, p.field, p.kind or used or "probability")
            ok = ok and p.prior is not None
        return ok

    # -- the machine -------------------------------------------------------------------------
    def read(self, data, field: str = "journey") -> Journey | None:
        c = self.c
        t = c.table(data, field, required=("start", "states"), optional=("start", "parameters", "states", "branches"))
        if t is None:
            return None
        before = len(c.problems)
        if "parameters" in t:
            self.parameters(t["parameters"], _join(field, "parameters"))
        states, state_keys = [], {}
        items = c.array_of_tables(t.get("states", []), _join(field, "states")) if "states" in t else []
        for i, item in enumerate(items):
            state = self._state(item, f"{field}.states[{i}]", state_keys)
            states.append(state)
        self.states_read = bool(items) and len(self.state_fields) == len(items)
        branches = [self._branch(item, f"{field}.branches[{i}]")
                    for i, item in enumerate(c.array_of_tables(t["branches"], _join(field, "branches"), min_len=0)
                                             if "branches" in t else [])]
        start = self.start(t["start"], _join(field, "start")) if "start" in t else None
        params_ok = self._resolve_parameters()
        self.check_state_refs()
        if (None in states or None in branches or start is None or not params_ok or not states
                or len(states) != len(items) or len(c.problems) > before):
            return None
        self.journey = Journey(tuple(states), start, tuple(branches),
                               tuple((n, p.prior) for n, p in self.params.items()))
        self.state_index = {s.name: i for i, s in enumerate(states)}
        self.ok = True
        return self.journey

    def check_state_refs(self) -> None:
        """Report every name of an unknown state (read so far), once each reference."""
        for field, name in self.state_refs if self.states_read else ():
            if name not in self.state_fields:
                self.c.problem(field, f"unknown state {name!r} (states: {_names(self.state_fields)})")
        self.state_refs = []

    def _state(self, item, field: str, keys: dict) -> State | None:
        c = self.c
        t = c.table(item, field, required=("name",),
                    optional=("exits", "timing", "exits_in_order", "time_limit", "after_limit", "events"))
        if t is None:
            return None
        name = c.name(t, "name", field)
        if name is None or not c.unique_name(name, _join(field, "name"), keys):
            return None
        self.state_fields[name] = _join(field, "name")
        timing = c.choice(t, "timing", field, TIMINGS) if "timing" in t else "end"
        in_order = c.boolean(t, "exits_in_order", field, default=False) if "exits_in_order" in t else False
        limit = c.number(t, "time_limit", field, integer=True, ge=1, le=MAX_MONTH) if "time_limit" in t else None
        after = self.state_ref(t["after_limit"], _join(field, "after_limit")) if "after_limit" in t else None
        ok = None not in (timing, in_order)
        if ("time_limit" in t) != ("after_limit" in t):
            given, missing = ("time_limit", "after_limit") if "time_limit" in t else ("after_limit", "time_limit")
            c.problem(_join(field, given), f"must come with {missing} (a time limit names the state entered "
                      f"after it), got no {missing}")
            ok = False
        ok = ok and ("time_limit" not in t or limit is not None) and ("after_limit" not in t or after is not None)
        if after is not None and after == name:
            c.problem(_join(field, "after_limit"), f"must be another state than {name!r} (a time limit leaves the "
                      f"state), got {after!r}")
            ok = False
        exits = []
        raw = c.array_of_tables(t["exits"], _join(field, "exits"), min_len=0) if "exits" in t else []
        for j, e in enumerate(raw):
            fe = f"{field}.exits[{j}]"
            et = c.table(e, fe, required=("to", "probability"), optional=("event",))
            if et is None or "to" not in et or "probability" not in et:
                ok = False
                continue
            to = self.state_ref(et["to"], _join(fe, "to"))
            if to is not None and to == name:
                c.problem(_join(fe, "to"), f"must be another state than {name!r} (the stay is what no exit takes), "
                          f"got {to!r}")
                to = None
            prob = self.probability_ref(et["probability"], _join(fe, "probability"), f"{name}->{to}")
            event = self._optional_name(et, "event", fe)
            if to is None or prob is None or ("event" in et and event is None):
                ok = False
                continue
            exits.append(Exit(to, prob, event))
        events = []
        raw = c.array_of_tables(t["events"], _join(field, "events"), min_len=0) if "events" in t else []
        for j, e in enumerate(raw):
            fe = f"{field}.events[{j}]"
            et = c.table(e, fe, required=("event", "rate"))
            if et is None or "event" not in et or "rate" not in et:
                ok = False
                continue
            event = c.name(et, "event", fe)
            rate = self.probability_ref(et["rate"], _join(fe, "rate"), f"{name}:{event}", kind="rate")
            if event is None or rate is None:
                ok = False
                continue
            events.append(RecurrentEvent(event, rate))
        if not ok:
            return None
        return State(name, tuple(exits), timing, in_order, limit, after, tuple(events))

    def _branch(self, item, field: str) -> Branch | None:
        c = self.c
        t = c.table(item, field, required=("states", "at_month", "to", "probability"), optional=("event",))
        if t is None or not {"states", "at_month", "to", "probability"} <= set(t):
            return None
        states = self.state_set(t, "states", field)
        at = c.number(t, "at_month", field, integer=True, ge=1, le=MAX_MONTH)
        to = self.state_ref(t["to"], _join(field, "to"))
        inline = f"{'+'.join(t['states']) if states else ''}@{at}->{to}"
        prob = self.probability_ref(t["probability"], _join(field, "probability"), inline)
        event = self._optional_name(t, "event", field)
        if states is not None and to is not None and not [s for s in states if s != to]:
            # It fires for participants in the set but not yet in `to`: a set of `to` alone never fires.
            c.problem(_join(field, "states"), f"must hold a state besides {to!r} (the branch moves participants "
                      f"from them to it), got {list(states)!r}")
            return None
        if None in (states, at, to, prob) or ("event" in t and event is None):
            return None
        return Branch(states, at, to, prob, event)

    # -- outcomes and costs ------------------------------------------------------------------
    def event_ref(self, value, field: str) -> None:
        if self.journey is not None and value not in self.journey.event_names:
            self.c.problem(field, f"unknown event {value!r} (events: {_names(self.journey.event_names)})")

    def outcomes(self, data, field: str = "outcomes") -> tuple[Outcome, ...] | None:
        c = self.c
        t = c.table(data, field, optional=tuple(data) if isinstance(data, dict) else ())
        if t is None:
            return None
        if not t:
            c.problem(field, "must define at least one outcome, got none")
            return None
        out, keys, ok = [], {}, True
        self.outcome_keys = keys  # cost items may not take an outcome's name (observed files count both)
        for name, item in t.items():
            f = _join(field, name)
            if c.check_name(name, f) is None or not c.unique_name(name, f, keys):
                ok = False
                continue
            if name.startswith("cost:"):
                c.problem(f, f"must not begin with 'cost:' (the counts of [[costs]] are named so), got {name!r}")
                ok = False
                continue
            outcome = self._outcome(name, item, f)
            ok = ok and outcome is not None
            out.append(outcome)
        self.check_state_refs()
        return tuple(out) if ok and not any(o is None for o in out) else None

    def _outcome(self, name: str, item, field: str) -> Outcome | None:
        c = self.c
        if not isinstance(item, dict):
            c.problem(field, f"must be a table, got {_describe(item)}")
            return None
        if "kind" not in item:
            c.problem(_join(field, "kind"), f"missing required field (one of {', '.join(OUTCOME_KINDS)})")
            return None
        kind = c.choice(item, "kind", field, OUTCOME_KINDS)
        if kind is None:
            return None
        allowed = _COMMON_OUTCOME_KEYS + _OUTCOME_KEYS[kind]
        for key in item:
            if key not in allowed:
                c.problem(_join(field, key), f"unknown key for kind = {kind!r} (allowed: {', '.join(sorted(allowed))})")
                return None
        for key in _OUTCOME_REQUIRED[kind]:
            if key not in item:
                c.problem(_join(field, key), f"missing required field (for kind = {kind!r})")
                return None
        states = self.state_set(item, "states", field) if "states" in item else ()
        event = c.name(item, "event", field) if "event" in item else None
        if event is not None:
            self.event_ref(event, _join(field, "event"))
        count = c.choice(item, "count", field, ("first", "every")) if "count" in item else "first"
        months = c.number(item, "months", field, integer=True, ge=1, le=MAX_MONTH) if "months" in item else 0
        consecutive = c.boolean(item, "consecutive", field, default=True) if "consecutive" in item else True
        at_months = c.month_list(item, "at_months", field, lo=0, hi=MAX_MONTH) if "at_months" in item else ()
        window = c.number(item, "window", field, integer=True, ge=1, le=MAX_MONTH) if "window" in item else None
        lag = c.number(item, "lag", field, integer=True, ge=0, le=MAX_MONTH) if "lag" in item else 0
        scale = c.number(item, "scale", field, gt=0, le=1e6) if "scale" in item else 1.0
        label = c.string(item, "label", field) if "label" in item else ""
        unit = c.name(item, "unit", field) if "unit" in item else _DEFAULT_UNITS[kind]
        if label and not c.plain_text(label, _join(field, "label")):
            label = None
        if kind == "milestone" and consecutive is False and count == "every":
            c.problem(_join(field, "count"), "must be 'first' for a cumulative milestone (consecutive = false: "
                      "reached once per participant), got string 'every'")
            return None
        if (None in (states, count, months, consecutive, at_months, lag, scale, label, unit)
                or ("window" in item and window is None) or ("event" in item and event is None)):
            return None
        return Outcome(name, kind, states, event, count, months, consecutive, at_months, window, lag,
                       float(scale), label, unit)

    def costs(self, data, field: str = "costs") -> tuple[CostItem, ...] | None:
        c = self.c
        items = c.array_of_tables(data, field, min_len=0)
        out, keys = [], dict(getattr(self, "outcome_keys", {}))
        for i, item in enumerate(items):
            out.append(self._cost(item, f"{field}[{i}]", keys))
        self.check_state_refs()
        return tuple(out) if isinstance(data, list) and None not in out else None

    def _cost(self, item, field: str, keys: dict) -> CostItem | None:
        c = self.c
        t = c.table(item, field, required=("name", "bands"),
                    optional=("states", "event", "fraction", "annual_indexation", "label"))
        if t is None:
            return None
        name = c.name(t, "name", field)
        if name is not None and not c.unique_name(name, _join(field, "name"), keys):
            name = None
        if ("states" in t) == ("event" in t):
            c.problem(field, "give exactly one of states (a cost per participant-month in them), event (a cost "
                      f"per event), got {'both' if 'states' in t else 'neither'}")
            return None
        states = self.state_set(t, "states", field) if "states" in t else ()
        event = c.name(t, "event", field) if "event" in t else None
        if event is not None:
            self.event_ref(event, _join(field, "event"))
        bands, band_keys = [], {}
        raw = c.array_of_tables(t["bands"], _join(field, "bands")) if "bands" in t else []
        for j, b in enumerate(raw):
            fb = f"{field}.bands[{j}]"
            bt = c.table(b, fb, required=("group", "amount", "share"))
            if bt is None:
                continue
            group = c.name(bt, "group", fb)
            if not c.unique_name(group, _join(fb, "group"), band_keys):
                group = None
            amount = c.amount(bt, "amount", fb, ge=0, le=1e7)
            share = c.number(bt, "share", fb, ge=0, le=1)
            if None not in (group, amount, share):
                bands.append(CostBand(group, float(amount), float(share)))
        if bands and len(bands) == len(raw) and abs(math.fsum(b.share for b in bands) - 1) > SHARE_TOLERANCE:
            c.problem(_join(field, "bands"), f"shares must add up to 1, got {math.fsum(b.share for b in bands):.12g}")
            return None
        fraction = c.number(t, "fraction", field, ge=0, le=1) if "fraction" in t else 1.0
        indexation = c.annual_rate(t, "annual_indexation", field, default=0.0, gt=-1)
        label = c.string(t, "label", field) if "label" in t else ""
        if label and not c.plain_text(label, _join(field, "label")):
            label = None
        if None in (name, states, fraction, indexation, label) or len(bands) != len(raw) or not bands \
                or ("event" in t and event is None):
            return None
        return CostItem(name, tuple(bands), states, event, float(fraction), float(indexation), label)

    # -- the comparison group ----------------------------------------------------------------
    def comparison(self, comp: dict, ratio: float | None, method: str | None) -> ComparisonGroup | None:
        """``[comparison]``: start, shared, ``[comparison.parameters]`` over the treated journey."""
        c = self.c
        start = self.start(comp["start"], "comparison.start") if "start" in comp else None
        self.check_state_refs()
        overrides: dict[str, Prior] = {}
        ok = "start" not in comp or start is not None
        raw = c.table(comp["parameters"], "comparison.parameters",
                      optional=tuple(comp["parameters"]) if isinstance(comp["parameters"], dict) else ()) \
            if "parameters" in comp else {}
        for name, value in (raw or {}).items() if self.journey is not None else ():  # else reported there
            f = _join("comparison.parameters", name)
            p = self.params.get(name)
            if p is None:
                c.problem(f, f"unknown parameter {name!r} (parameters: {_names(self.params)})")
                ok = False
                continue
            if p.prior is None:
                ok = False
                continue
            kind = p.prior.kind
            if isinstance(value, dict) and "kind" in value and value["kind"] != kind:
                c.problem(_join(f, "kind"), f"must be {kind!r}, the kind of the treated group's parameter, "
                          f"got {_describe(value['kind'])}")
                ok = False
                continue
            prior = self._prior(value, f, kind)
            if prior is None:
                ok = False
                continue
            overrides[name] = prior
        shared = []
        if "shared" in comp:
            value = comp["shared"]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                c.problem("comparison.shared", f"must be an array of parameter names, got {_describe(value)}")
                ok = False
                value = []
            for j, name in enumerate(value if self.journey is not None else ()):
                f = f"comparison.shared[{j}]"
                if name not in self.params:
                    c.problem(f, f"unknown parameter {name!r} (parameters: {_names(self.params)})")
                    ok = False
                elif name in overrides:
                    c.problem(f, f"must not be overridden in [comparison.parameters] (a shared parameter is drawn "
                              f"once for both groups), got {name!r}")
                    ok = False
                elif name not in shared:
                    shared.append(name)
        if not ok or self.journey is None or ratio is None or method is None:
            return None
        journey = self.journey.with_parameters(overrides)
        if start is not None:
            journey = dataclasses.replace(journey, start=start)
        self.comparison_journey = journey
        return ComparisonGroup(float(ratio), journey, method, tuple(overrides), tuple(shared))

    # -- the machine as a whole --------------------------------------------------------------
    def check_machine(self, comparison: Journey | None = None) -> None:
        """Rules on the whole machine: reachability, start-timing loops, exit sums, branch durations."""
        if not self.ok:
            return
        j, c = self.journey, self.c
        fields = {s.name: f"journey.states[{i}]" for i, s in enumerate(j.states)}
        # Edges: exits, time limits, branches (from every state of the set).
        edges: dict[str, set[str]] = {s.name: {e.to for e in s.exits} | ({s.after_limit} if s.after_limit else set())
                                      for s in j.states}
        for b in j.branches:
            for s in b.states:
                if s != b.to:
                    edges[s].add(b.to)
        seen = [name for start, _ in self.starts for name, share in start if share > 0]
        known = all(name in edges for name in seen)  # an unknown start state is reported on its own
        reached = set(seen)
        while seen and known:
            for nxt in edges[seen.pop()]:
                if nxt not in reached:
                    reached.add(nxt)
                    seen.append(nxt)
        for s in j.states if known else ():
            if s.name not in reached:
                c.problem(_join(fields[s.name], "name"), f"unreachable from every start state (the journey's, "
                          f"the cohorts' and the comparison group's), got state {s.name!r}")
        self._check_start_loops(fields)
        self._check_exit_sums(j, fields, None)
        if comparison is not None:
            self._check_exit_sums(comparison, fields, j)
        for i, b in enumerate(j.branches):
            members = [j.state(s) for s in b.states]
            if any(s.time_limit is None for s in members):
                continue
            # Moves within the set (exits, time limits, branches) continue the run: it can then be longer.
            inside = any(nxt in b.states for s in members for nxt in edges[s.name])
            longest = max(s.time_limit for s in members)
            if not inside and b.at_month > longest:
                c.problem(f"journey.branches[{i}].at_month", f"must be <= {longest}, the longest run in its states "
                          f"(each has a time limit and none leads to another of them), got {b.at_month}")

    def _check_start_loops(self, fields: dict) -> None:
        """A loop of exits among ``"start"`` states would pass a participant through them forever in one month."""
        loop = self.journey.start_cycle()
        if loop:
            self.c.problem(_join(fields[loop[0]], "exits"), "start-timing states must not form a loop of "
                           "exits (a participant would pass through them without end in one month), "
                           f"got {' -> '.join(loop)}")

    def _check_exit_sums(self, journey: Journey, fields: dict, treated: Journey | None) -> None:
        """Simultaneous exits whose priors' upper bounds sum above 1 could give a stay below 0 on some path."""
        priors = dict(journey.parameters)
        for s in journey.states:
            if s.exits_in_order or len(s.exits) < 2:
                continue
            if treated is not None and all(priors[e.probability] == treated.prior(e.probability) for e in s.exits):
                continue  # the same priors as the treated group's: reported there if at all
            bounds = [(e.probability, _upper_bound(priors[e.probability])) for e in s.exits]
            total = math.fsum(b for _, b in bounds)
            if total > 1 + 1e-12:  # a sum of exactly 1 in decimal (0.25 + 0.75) may round a little above
                terms = " + ".join(f"{n} {b:.6g}" for n, b in bounds)
                if treated is None:
                    where, whose = f"{fields[s.name]}.exits", "simultaneous exits"
                else:  # the comparison group's overrides make the sum too large
                    where, whose = "comparison.parameters", f"the simultaneous exits of state {s.name!r}"
                self.c.problem(where, f"{whose} must not sum above 1 under the prior; use "
                               f"exits_in_order = true or smaller priors, got upper bounds {terms} = {total:.6g}")


def _upper_bound(prior: Prior) -> float:
    """A probability's largest plausible value: itself if fixed, else its Beta quantile at 1 - 1e-9."""
    if prior.is_fixed:
        return prior.mean
    from scipy.stats import beta  # only for uncertain simultaneous exits: scipy.stats is slow to import

    a, b = prior.alpha_beta
    return float(beta.ppf(1.0 - EXIT_BOUND_TAIL, a, b))


def outcome_problems(c: _Checker, outcomes: tuple[Outcome, ...], horizon: int, first_intake: int = 0) -> None:
    """Windows, lags, milestones and census months that put every occurrence beyond the horizon (or
    beyond the outcome's own window): nothing would ever be counted."""
    for o in outcomes:
        f = _join("outcomes", o.name)
        if o.window is not None and o.window > horizon:
            c.problem(_join(f, "window"), f"must be <= {horizon}, the horizon in months (term, tail and "
                      f"payments), got {o.window}")
        if first_intake + o.lag >= horizon:
            c.problem(_join(f, "lag"), f"must be < {horizon - first_intake} (the horizon, {horizon} months, less "
                      f"the first intake, month {first_intake}): every occurrence would be dated beyond the "
                      f"horizon, got {o.lag}")
        if o.kind == "milestone":
            reach = horizon - first_intake if o.window is None else min(o.window, horizon - first_intake)
            if o.months > reach:
                limit = "its window" if o.window is not None and o.window <= horizon - first_intake else \
                    "the months from the first intake to the horizon"
                c.problem(_join(f, "months"), f"must be <= {reach} ({limit}): the milestone could never be "
                          f"reached, got {o.months}")
        for i, k in enumerate(o.at_months):
            if k >= horizon:
                c.problem(f"{f}.at_months[{i}]", f"must be < {horizon}, the horizon in months (term, tail and "
                          f"payments), got {k}")
                break


__all__ = ["JourneyReader", "old_format_problem", "outcome_problems"]
