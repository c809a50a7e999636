"""The compiled Monte Carlo engine: any :class:`~sibsim.journey.Journey`, one kernel.

:func:`simulate_group` follows each participant of each path through the monthly rules of
:mod:`sibsim.journey` (the specification; :mod:`sibsim.reference` steps them month by month) and
counts every measure (:class:`~sibsim.journey.Outcome`) per path, cohort and month.

Sojourns, not months
--------------------
Every monthly exit probability is constant while a participant stays in a state, so the number of
months spent in it is geometric: the kernel draws it from one uniform by inverting the geometric
CDF and *jumps* to the next state. Cost follows transitions, not months. What happens during the
sojourn is then placed in closed form: occupancy as one interval (a +1/-1 difference array summed
per month at the end of the path), status censuses and milestones at the month they fall in,
duration branches at the month the run in their set reaches ``at_month``. A branch that does not
fire leaves the sojourn draw valid (the geometric law is memoryless and the branch draw is
independent of it); one that fires cuts the sojourn at the branch month and the participant
arrives in the branch target in that month.

Recurrent events are a Poisson process in continuous time over the months spent in the state:
exponential gaps ``-log(1 - u) / rate`` (one uniform each), each event dated in the month its
arrival time falls in. The counts per month are then independent Poisson(rate) variables, as the
rules require, and the cost is one uniform per event plus one.

Calendar-time regimes
---------------------
Shocks (:mod:`sibsim.uncertainty`) make a path's parameters piecewise constant in calendar time
(regimes between the shocks' edges). A sojourn still takes one exponential variate ``-log(1 - u)``:
the months stayed are those whose summed ``-log(stay probability)`` (each month's regime's) stays
below it, which is the geometric inversion above when there is one regime. The exit taken, a
branch and a recurrent event's rate are those of the month they fall in; recurrent arrivals
invert the cumulative rate. Same uniforms, same order; the generic kernel runs them.

Draw order
----------
The uniforms are the generator's stream of doubles (the block's generator, as ``rng.random()``
would give them one by one), consumed in this fixed order, which reproducibility rests on:

for each path (in order), for each cohort (in order; a cohort whose intake is at or beyond the
horizon draws nothing), for each participant:

1. the start state: one uniform, only if the cohort's start distribution gives a positive share
   to more than one state (none for a participant carried on from a census: its row says where
   it is, and its first sojourn continues from the census month, step 2 unchanged);
2. then for each sojourn (an arrival in state ``s`` in a month before the horizon), in this order:

   a. its length: one uniform if ``s`` has exits (whatever their probabilities on the path);
   b. duration branches of ``s`` whose month falls within the sojourn: one uniform each, in
      chronological order (declared order on ties), until one fires;
   c. which exit: one uniform if ``s`` has more than one exit, an exit fires before the horizon
      and no branch fired;
   d. recurrent events of ``s`` (declared order) with a positive rate on the path, when at least
      one month is spent in ``s``: one uniform per event plus the one whose gap passes the end of
      the sojourn (with several regimes: whatever the rates, when a month is spent in ``s``).

Parameters (:func:`draw_parameters`) are drawn before, with :meth:`Prior.draw` in declared order.

Two kernels
-----------
The generic kernel reads the machine (:class:`Machine`) from arrays. :mod:`sibsim.engine_codegen`
writes, per machine, a kernel with the machine as constants (straight-line code per state, no
pointer tables), which follows the same rules in the same draw order and so gives the same counts
from the same stream, about twice as fast; it costs a compilation of a few seconds the first time
a machine is seen, after which numba loads it from the user's cache directory. :func:`simulate_group`
uses it for blocks large enough to repay that (:data:`SPECIALISE_FROM`), the generic one otherwise
or when ``SIBSIM_GENERIC_KERNEL=1``.

For speed the stream is drawn in numpy, in chunks (``rng.random(n)``, with ``log(1 - u)`` for the
sojourns and gaps), and read in the order above; a path that runs past the end of a chunk is
simulated again from its first uniform on the next chunk. Afterwards the generator is put back and
moved on by exactly the number of uniforms consumed (:meth:`PCG64.advance`, or drawing them again
for other bit generators), so it ends where drawing them one by one would leave it, and the counts
do not depend on the chunk size.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import NamedTuple

import numba
import numpy as np

from . import engine_codegen
from .journey import OUTCOME_KINDS, Journey, Outcome

ENTRY, EVENT, MILESTONE, OCCUPANCY, STATUS = (OUTCOME_KINDS.index(k) for k in
                                              ("entry", "event", "milestone", "occupancy", "status"))
END, START = 0, 1


def _jit(fn=None, **options):
    """``numba.njit(cache=True)``; without a cache when numba finds no writable cache directory.

    Numba looks next to the source first, then in the user's cache directory (or
    ``NUMBA_CACHE_DIR`` when set) and fails at decoration time only when none is writable:
    compiling on every run is then slower, never wrong.
    """
    if fn is None:
        return lambda f: _jit(f, **options)
    try:
        return numba.njit(cache=True, **options)(fn)
    except RuntimeError:
        return numba.njit(**options)(fn)


# --- parameters ----------------------------------------------------------------------------------

def draw_parameters(journey: Journey, rng: np.random.Generator, n_paths: int,
                    given: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """One value per path and parameter, shape ``(n_paths, P)`` in :attr:`Journey.parameters` order.

    Parameters
    ----------
    journey : Journey
    rng : numpy.random.Generator
        Each parameter is drawn with :meth:`Prior.draw` in declared order (a fixed prior draws
        nothing).
    n_paths : int
    given : dict of str -> ndarray (n_paths,), optional
        Columns used as they are instead of drawing (nothing is drawn for them): the comparison
        group sharing the treated group's draw of a parameter.
    """
    given = given or {}
    unknown = set(given) - set(journey.parameter_names)
    if unknown:
        raise KeyError(f"given parameters not in the journey: {', '.join(sorted(unknown))}")
    out = np.empty((n_paths, len(journey.parameters)))
    for j, (name, prior) in enumerate(journey.parameters):
        if name in given:
            column = np.asarray(given[name], dtype=float)
            if column.shape != (n_paths,):
                raise ValueError(f"given parameter {name}: shape {column.shape}, expected ({n_paths},)")
            out[:, j] = column
        else:
            out[:, j] = prior.draw(rng, n_paths)
    return out


def check_exit_sums(journey: Journey, params: np.ndarray) -> None:
    """Raise ``ValueError`` if a state's simultaneous exits sum above 1 on some path (never clipped).

    Exits in order (``exits_in_order = True``) are decrements and cannot exceed 1. The sum is taken
    in declared exit order; exactly 1 is accepted.
    """
    index = {n: j for j, n in enumerate(journey.parameter_names)}
    params = np.asarray(params, dtype=float)
    for i, s in enumerate(journey.states):
        if s.exits_in_order or len(s.exits) < 2:
            continue
        total = np.zeros(params.shape[0])
        for e in s.exits:
            total = total + params[:, index[e.probability]]
        bad = np.flatnonzero(total > 1.0)
        if bad.size:
            p = int(bad[0])
            raise ValueError(f"journey.states[{i}] ({s.name}): exits sum above 1 on path {p}: "
                             f"{format(float(total[p]), '.15g')}")


# --- the machine as arrays -----------------------------------------------------------------------

class Machine(NamedTuple):
    """A journey and its measures as plain arrays (int64 unless said): all the kernel sees.

    States are numbered in declared order, events in :attr:`Journey.event_names` order, parameters
    in declared order; ``*_ptr`` arrays delimit per-state (or per-measure, per-event) slices of the
    array that follows them (compressed rows).
    """

    n_months: int
    timing: np.ndarray          # (S,) END or START
    in_order: np.ndarray        # (S,) 1 if exits are decrements in order
    limit: np.ndarray           # (S,) time limit in months; n_months + 1 when none
    after: np.ndarray           # (S,) state after the time limit, -1 when none
    exit_ptr: np.ndarray        # (S+1,)
    exit_to: np.ndarray
    exit_param: np.ndarray
    exit_event: np.ndarray      # -1: no event
    rec_ptr: np.ndarray         # (S+1,) recurrent events per state
    rec_event: np.ndarray
    rec_param: np.ndarray
    sb_ptr: np.ndarray          # (S+1,) branches that can fire in each state, declared order
    sb_branch: np.ndarray
    br_slot: np.ndarray         # (B,) set slot whose run the branch watches
    br_at: np.ndarray
    br_to: np.ndarray
    br_param: np.ndarray
    br_event: np.ndarray
    slot_mask: np.ndarray       # (K, S) uint8: sets whose runs/cumulative months are kept
    in_ptr: np.ndarray          # (S+1,) slots holding each state
    in_slot: np.ndarray
    out_ptr: np.ndarray         # (S+1,) slots not holding each state
    out_slot: np.ndarray
    kind: np.ndarray            # (M,) ENTRY, EVENT, MILESTONE, OCCUPANCY, STATUS
    mask: np.ndarray            # (M, S) uint8: the measure's states
    slot: np.ndarray            # (M,) set slot of a milestone, -1 otherwise
    every: np.ndarray           # (M,) 1: every occurrence, 0: the participant's first
    months: np.ndarray          # (M,) milestone months
    consecutive: np.ndarray     # (M,) 1: a run, 0: cumulative months
    window: np.ndarray          # (M,) months after intake counted; n_months when none
    lag: np.ndarray             # (M,)
    at_ptr: np.ndarray          # (M+1,) status census months after intake
    at_months: np.ndarray
    entry_ptr: np.ndarray       # (S+1,) entry measures holding each state
    entry_idx: np.ndarray
    occ_ptr: np.ndarray         # (S+1,) occupancy measures holding each state
    occ_idx: np.ndarray
    status_ptr: np.ndarray      # (S+1,) status measures holding each state
    status_idx: np.ndarray
    mile_ptr: np.ndarray        # (S+1,) milestone measures holding each state
    mile_idx: np.ndarray
    ev_ptr: np.ndarray          # (E+1,) event measures per event
    ev_idx: np.ndarray


def _rows(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Compressed rows: (ptr (n+1,), flat values) for a list of int lists."""
    ptr = np.zeros(len(lists) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(v) for v in lists])
    flat = np.array([x for v in lists for x in v], dtype=np.int64)
    return ptr, flat


def compile_machine(journey: Journey, measures: tuple[Outcome, ...], n_months: int) -> Machine:
    """Journey and measures as the kernel's arrays (see :class:`Machine`).

    Parameters
    ----------
    journey : Journey
    measures : tuple of Outcome
        Counted in this order (the third axis of :func:`simulate_group`'s result).
    n_months : int
        Horizon: months ``0 .. n_months - 1`` are simulated.

    Raises
    ------
    ValueError
        Unknown state, event or parameter names, a time limit below 1, a milestone below 1 month,
        an unknown timing or outcome kind, or a cycle of exits among "start"-timing states.
    """
    return _compile(journey, tuple(measures), int(n_months))


@lru_cache(maxsize=64)
def _compile(journey: Journey, measures: tuple[Outcome, ...], T: int) -> Machine:
    names = journey.state_names
    S = len(names)
    sidx = {n: i for i, n in enumerate(names)}
    pidx = {n: i for i, n in enumerate(journey.parameter_names)}
    events = journey.event_names
    eidx = {n: i for i, n in enumerate(events)}

    def state(name: str, where: str) -> int:
        if name not in sidx:
            raise ValueError(f"{where}: unknown state {name!r}")
        return sidx[name]

    def param(name: str, where: str) -> int:
        if name not in pidx:
            raise ValueError(f"{where}: unknown parameter {name!r}")
        return pidx[name]

    cycle = journey.start_cycle()
    if cycle:
        raise ValueError(f"journey.states: \"start\"-timing states exit into each other in a cycle: "
                         f"{' -> '.join(cycle)}")

    timing, in_order, limit, after = [], [], [], []
    exits: list[list[int]] = []
    ex_to, ex_param, ex_event = [], [], []
    recs: list[list[int]] = []
    rec_event, rec_param = [], []
    for i, s in enumerate(journey.states):
        where = f"journey.states[{i}] ({s.name})"
        if s.timing not in ("end", "start"):
            raise ValueError(f"{where}: timing must be \"end\" or \"start\", not {s.timing!r}")
        timing.append(END if s.timing == "end" else START)
        in_order.append(int(bool(s.exits_in_order)))
        if s.time_limit is None:
            limit.append(T + 1)
            after.append(-1)
        else:
            if int(s.time_limit) < 1:
                raise ValueError(f"{where}: time_limit must be at least 1 month, not {s.time_limit}")
            limit.append(int(s.time_limit))
            after.append(state(s.after_limit, f"{where}.after_limit"))
        row = []
        for k, e in enumerate(s.exits):
            row.append(len(ex_to))
            ex_to.append(state(e.to, f"{where}.exits[{k}].to"))
            ex_param.append(param(e.probability, f"{where}.exits[{k}].probability"))
            ex_event.append(eidx[e.event] if e.event else -1)
        exits.append(row)
        row = []
        for k, r in enumerate(s.events):
            row.append(len(rec_event))
            rec_event.append(eidx[r.event])
            rec_param.append(param(r.rate, f"{where}.events[{k}].rate"))
        recs.append(row)

    slots: list[tuple[int, ...]] = []  # distinct state sets whose runs are kept (branches, milestones)

    def slot_of(mask: tuple[int, ...]) -> int:
        if mask not in slots:
            slots.append(mask)
        return slots.index(mask)

    def mask_of(states: tuple[str, ...], where: str) -> tuple[int, ...]:
        m = [0] * S
        for n in states:
            m[state(n, where)] = 1
        return tuple(m)

    br_slot, br_at, br_to, br_param, br_event = [], [], [], [], []
    by_state: list[list[int]] = [[] for _ in range(S)]
    for b_i, b in enumerate(journey.branches):
        where = f"journey.branches[{b_i}]"
        mask = mask_of(tuple(b.states), f"{where}.states")
        br_slot.append(slot_of(mask))
        br_at.append(int(b.at_month))
        br_to.append(state(b.to, f"{where}.to"))
        br_param.append(param(b.probability, f"{where}.probability"))
        br_event.append(eidx[b.event] if b.event else -1)
        for s in range(S):
            if mask[s] and s != br_to[-1]:
                by_state[s].append(b_i)

    M = len(measures)
    kind, mmask, mslot, every, months, consec, window, lag = ([] for _ in range(8))
    at: list[list[int]] = []
    per_state = {k: [[] for _ in range(S)] for k in (ENTRY, OCCUPANCY, STATUS, MILESTONE)}
    per_event: list[list[int]] = [[] for _ in events]
    for j, o in enumerate(measures):
        where = f"measures[{j}] ({o.name})"
        if o.kind not in OUTCOME_KINDS:
            raise ValueError(f"{where}: unknown kind {o.kind!r}")
        if o.count not in ("first", "every"):
            raise ValueError(f"{where}: count must be \"first\" or \"every\", not {o.count!r}")
        k = OUTCOME_KINDS.index(o.kind)
        kind.append(k)
        mask = mask_of(tuple(o.states), f"{where}.states") if k != EVENT else (0,) * S
        mmask.append(mask)
        every.append(int(o.count == "every"))
        months.append(int(o.months))
        consec.append(int(bool(o.consecutive)))
        window.append(T if o.window is None else min(int(o.window), T))
        lag.append(int(o.lag))
        at.append([int(a) for a in o.at_months] if k == STATUS else [])
        mslot.append(-1)
        if k == EVENT:
            if o.event not in eidx:
                raise ValueError(f"{where}: unknown event {o.event!r}")
            per_event[eidx[o.event]].append(j)
        else:
            if k == MILESTONE:
                if int(o.months) < 1:
                    raise ValueError(f"{where}: a milestone needs at least 1 month, not {o.months}")
                mslot[-1] = slot_of(mask)
            for s in range(S):
                if mask[s]:
                    per_state[k][s].append(j)

    i64 = lambda v: np.asarray(v, dtype=np.int64).reshape(-1)  # noqa: E731
    u8 = lambda v, shape: np.asarray(v, dtype=np.uint8).reshape(shape)  # noqa: E731
    exit_ptr, _ = _rows(exits)
    rec_ptr, _ = _rows(recs)
    sb_ptr, sb_branch = _rows(by_state)
    at_ptr, at_months = _rows(at)
    ent = _rows(per_state[ENTRY])
    occ = _rows(per_state[OCCUPANCY])
    sta = _rows(per_state[STATUS])
    mil = _rows(per_state[MILESTONE])
    evm = _rows(per_event) if events else (np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return Machine(
        T, i64(timing), i64(in_order), i64(limit), i64(after),
        exit_ptr, i64(ex_to), i64(ex_param), i64(ex_event),
        rec_ptr, i64(rec_event), i64(rec_param),
        sb_ptr, sb_branch, i64(br_slot), i64(br_at), i64(br_to), i64(br_param), i64(br_event),
        u8(slots, (len(slots), S)),
        *_rows([[k for k, m in enumerate(slots) if m[s]] for s in range(S)]),
        *_rows([[k for k, m in enumerate(slots) if not m[s]] for s in range(S)]),
        i64(kind), u8(mmask, (M, S)), i64(mslot), i64(every), i64(months), i64(consec), i64(window),
        i64(lag), at_ptr, at_months, *ent, *occ, *sta, *mil, *evm,
    )


@_jit(inline="always")
def _date(window, lag, month, intake, n_months):
    """Month an occurrence in ``month`` is counted in: ``lag`` later if within the window, else -1.

    Scalars only: a helper taking arrays would cost a reference count per call in the loop.
    """
    if month - intake < window:
        d = month + lag
        if d < n_months:
            return d
    return -1


@_jit(inline="always")
def _regime(reg_start, month):
    """Index of the regime (:class:`sibsim.uncertainty.Regimes`) holding calendar ``month``."""
    r = 0
    while r + 1 < reg_start.size and reg_start[r + 1] <= month:
        r += 1
    return r


@_jit(error_model="numpy")  # divisions are guarded: no zero checks in the loop
def _kernel(uni, log_q, first_path, params, intake_months, sizes, start_single, start_cdf, counts,
            monthly_row, totals, totals_row, before, occupancy,
            resume_month, cen_ptr, cen_state, cen_count, cen_months, cen_run, cen_cum, cen_done, cen_prev,
            reg_start, reg_params, n_months, timing, in_order, limit, after, exit_ptr, exit_to, exit_param, exit_event, rec_ptr,
            rec_event, rec_param, sb_ptr, sb_branch, br_slot, br_at, br_to, br_param, br_event, slot_mask,
            in_ptr, in_slot, out_ptr, out_slot, kind, mask, slot, every, months, consecutive, window, lag,
            at_ptr, at_months, entry_ptr, entry_idx, occ_ptr, occ_idx, status_ptr, status_idx, mile_ptr,
            mile_idx, ev_ptr, ev_idx):
    """The simulation loop (module notes) from path ``first_path`` on, filling ``counts`` and
    ``totals`` in place (:func:`_emit`: what each measure is written as).

    ``uni`` holds the uniforms in stream order and ``log_q = log(1 - uni)`` (exponential variates,
    negated), both computed in numpy; ``resume_month`` and the ``cen_*`` arrays are a census to
    start from (:func:`_census_arrays`; no rows for a cohort: it starts at its intake),
    ``reg_start`` (R,) and ``reg_params`` (paths, R, P) the parameters per calendar regime
    (:class:`sibsim.uncertainty.Regimes`; one regime: ``params`` itself), and the arguments after
    them are ``Machine``'s fields one by one.  With several regimes a sojourn's exit law, a
    branch's probability and an event's rate are those of the months they fall in (module notes).  Returns ``(p, used)``: the first path not simulated (``n_paths`` when all are) and the
    uniforms its predecessors consumed. A path whose uniforms run past the buffer is left untouched
    (nothing written) for the next call to redo on the following uniforms.
    """
    T = n_months
    S = timing.size
    M = kind.size
    K = slot_mask.shape[0]
    n_paths, C = params.shape[0], sizes.size
    n_uni = uni.size
    R = reg_start.size
    log_stay = np.zeros((R, S))
    exit_cum = np.zeros((R, exit_to.size))
    total = np.zeros((R, S))
    done = np.zeros(M, dtype=np.bool_)
    run = np.zeros(max(K, 1), dtype=np.int64)
    cum = np.zeros(max(K, 1), dtype=np.int64)
    # One path's counts, kept in cache while its participants scatter into it.
    tally = np.zeros((C, M, T), dtype=np.int32)
    counter = np.zeros(1, dtype=np.int64)  # the stream position a helper moves on
    guard = 2 * S + 2  # arrivals in one month: a start chain, a branch, a start chain
    pos = 0
    for p in range(first_path, n_paths):
        path_pos = pos
        short = False  # the buffer ran out within this path (the tally is zero: _emit resets it)
        # Per-path (and regime) exit law of each state: log of the monthly stay probability,
        # cumulative exit shares.
        for r in range(R):
            for s in range(S):
                a, b = exit_ptr[s], exit_ptr[s + 1]
                acc, ls, surv = 0.0, 0.0, 1.0
                for k in range(a, b):
                    q = reg_params[p, r, exit_param[k]]
                    if in_order[s] == 1:
                        acc += q * surv
                        surv *= 1.0 - q
                        ls += math.log1p(-q)
                    else:
                        acc += q
                    exit_cum[r, k] = acc
                if in_order[s] == 0 and b > a:
                    ls = math.log1p(-acc) if acc < 1.0 else -np.inf
                log_stay[r, s] = ls
                total[r, s] = acc
        for c in range(C):
            intake = intake_months[c]
            if intake >= T:
                continue
            row, left = cen_ptr[c] - 1, 0  # the census row of the participant, and how many it has left
            resume = cen_ptr[c + 1] > cen_ptr[c]  # the cohort is carried on from the census
            for _ in range(sizes[c]):
                if resume:  # carried on from the census: no start to draw
                    while left == 0:
                        row += 1
                        left = cen_count[row]
                    left -= 1
                    s = cen_state[row]
                elif start_single[c] >= 0:
                    s = start_single[c]
                else:
                    if pos >= n_uni:
                        short = True
                        break
                    u = uni[pos]
                    pos += 1
                    s = S - 1
                    for t in range(S):
                        if u < start_cdf[c, t]:
                            s = t
                            break
                elapsed = 0  # months already spent in s: the census's, for the first sojourn only
                if resume:
                    for e in range(M):
                        done[e] = cen_done[row, e] == 1
                    for k in range(K):
                        run[k] = cen_run[row, k]
                        cum[k] = cen_cum[row, k]
                    m = resume_month
                    elapsed = cen_months[row]  # 0: arrives in s at the start of the census month, from prev
                else:
                    for e in range(M):
                        done[e] = False
                    for k in range(K):
                        run[k] = 0
                        cum[k] = 0
                    m = intake
                prev = cen_prev[row] if resume else -1
                branched_at = -1
                arrivals, arrival_month = 0, -1
                while True:
                    # --- arrival in s at the start of month m (m < T); a census carries on a sojourn ---
                    if elapsed == 0:  # an arrival (not a sojourn the census carries on)
                        if m == arrival_month:
                            arrivals += 1
                            if arrivals > guard:
                                raise ValueError("journey: a participant passes through states forever "
                                                 "in one month (a cycle among \"start\"-timing states)")
                        else:
                            arrival_month, arrivals = m, 1
                        for q in range(entry_ptr[s], entry_ptr[s + 1]):
                            e = entry_idx[q]
                            if prev < 0 or mask[e, prev] == 0:
                                if every[e] == 1 or not done[e]:
                                    done[e] = True
                                    d = _date(window[e], lag[e], m, intake, T)
                                    if d >= 0:
                                        tally[c, e, d] += 1
                        for q in range(out_ptr[s], out_ptr[s + 1]):
                            run[out_slot[q]] = 0
                    # --- the sojourn: D months spent in s (months m .. m + D - 1) ---
                    rem = T - m
                    L = limit[s] - elapsed  # months the time limit still allows (memoryless exits)
                    elapsed = 0
                    lim = min(L, rem)
                    exited = False
                    D = 0
                    er = 0  # the regime of the exit's month
                    if exit_ptr[s + 1] > exit_ptr[s]:
                        if pos >= n_uni:
                            short = True
                            break
                        lq = log_q[pos]
                        pos += 1
                        if R == 1:
                            ls = log_stay[0, s]
                            if ls < 0.0:
                                x = lq / ls  # failures before the first exit, >= 0
                                if x < lim:
                                    exited = True
                                    D = int(x) + (1 if timing[s] == END else 0)
                        else:
                            # Piecewise-constant hazard: the stays before the exit are the months whose
                            # summed log stay probabilities stay above lq (one exponential variate).
                            xs, left, r = 0, lq, _regime(reg_start, m)
                            while xs < lim:
                                seg = lim - xs  # trials in regime r from month m + xs on
                                if r + 1 < R:
                                    seg = min(seg, reg_start[r + 1] - (m + xs))
                                ls = log_stay[r, s]
                                if ls < 0.0:
                                    y = left / ls
                                    if y < seg:
                                        xs += int(y)
                                        exited = True
                                        break
                                    left -= seg * ls
                                xs += seg
                                r += 1
                            if exited:
                                D = xs + (1 if timing[s] == END else 0)
                                er = _regime(reg_start, m + xs)
                    nxt = -1
                    if not exited:
                        if L <= rem:
                            D = L
                            nxt = after[s]
                        else:
                            D = rem  # still there at the horizon
                    # Duration branches within the sojourn: chronological, declared order on ties.
                    fired = -1
                    last_i, last_b = 0, -1
                    while True:
                        best, best_i = -1, 0
                        for q in range(sb_ptr[s], sb_ptr[s + 1]):
                            bb = sb_branch[q]
                            i = br_at[bb] - run[br_slot[bb]]  # month of the sojourn it fires in
                            if i < 1 or i > D or (i == 1 and branched_at == m):
                                continue
                            if i < last_i or (i == last_i and bb <= last_b):
                                continue  # already drawn
                            if best < 0 or i < best_i:
                                best, best_i = bb, i
                        if best < 0:
                            break
                        last_i, last_b = best_i, best
                        if pos >= n_uni:
                            short = True
                            break
                        u = uni[pos]
                        pos += 1
                        if u < reg_params[p, _regime(reg_start, m + best_i - 1), br_param[best]]:
                            fired = best
                            break
                    if short:
                        break
                    event, event_month = -1, -1
                    if fired >= 0:
                        D = last_i - 1  # the branch month belongs to the target
                        nxt = br_to[fired]
                        event, event_month = br_event[fired], m + D
                    elif exited:
                        a, b = exit_ptr[s], exit_ptr[s + 1]
                        k = b - 1
                        if b - a > 1:
                            if pos >= n_uni:
                                short = True
                                break
                            u = uni[pos] * total[er, s]
                            pos += 1
                            for kk in range(a, b):
                                if u < exit_cum[er, kk]:
                                    k = kk
                                    break
                        nxt = exit_to[k]
                        event = exit_event[k]
                        event_month = m + D - 1 if timing[s] == END else m + D
                    # --- what the D months in s count ---
                    if D > 0:
                        for q in range(occ_ptr[s], occ_ptr[s + 1]):
                            # +1 / -1 marks at the interval's ends, summed over months at the end of the path
                            e = occ_idx[q]
                            hi = min(m + D, intake + window[e])
                            if m < hi:
                                lo2, hi2 = m + lag[e], hi + lag[e]
                                if lo2 < T:
                                    tally[c, e, lo2] += 1
                                    if hi2 < T:
                                        tally[c, e, hi2] -= 1
                        for q in range(status_ptr[s], status_ptr[s + 1]):
                            e = status_idx[q]
                            for r in range(at_ptr[e], at_ptr[e + 1]):
                                t = intake + at_months[r]
                                if m <= t < m + D:
                                    d = _date(window[e], lag[e], t, intake, T)
                                    if d >= 0:
                                        tally[c, e, d] += 1
                        for q in range(mile_ptr[s], mile_ptr[s + 1]):
                            e = mile_idx[q]
                            k = slot[e]
                            if consecutive[e] == 1:
                                i = months[e] - run[k]
                                if 1 <= i <= D and (every[e] == 1 or not done[e]):
                                    done[e] = True
                                    d = _date(window[e], lag[e], m + i - 1, intake, T)
                                    if d >= 0:
                                        tally[c, e, d] += 1
                            else:
                                i = months[e] - cum[k]
                                if 1 <= i <= D and not done[e]:
                                    done[e] = True
                                    d = _date(window[e], lag[e], m + i - 1, intake, T)
                                    if d >= 0:
                                        tally[c, e, d] += 1
                        for q in range(rec_ptr[s], rec_ptr[s + 1]):
                            if R > 1:
                                short = _recurrent_regimes(uni, log_q, n_uni, pos, reg_start, reg_params, p,
                                                           rec_param[q], m, D, rec_event[q], ev_ptr, ev_idx, every,
                                                           done, window, lag, intake, T, tally, c, counter)
                                pos = counter[0]
                                if short:
                                    break
                                continue
                            rate = params[p, rec_param[q]]
                            if rate > 0.0:
                                t_arr = 0.0
                                while True:
                                    if pos >= n_uni:
                                        short = True
                                        break
                                    t_arr -= log_q[pos] / rate
                                    pos += 1
                                    if t_arr >= D:
                                        break
                                    ev, ev_month = rec_event[q], m + int(t_arr)
                                    for q2 in range(ev_ptr[ev], ev_ptr[ev + 1]):
                                        e = ev_idx[q2]
                                        if every[e] == 1 or not done[e]:
                                            done[e] = True
                                            d = _date(window[e], lag[e], ev_month, intake, T)
                                            if d >= 0:
                                                tally[c, e, d] += 1
                                if short:
                                    break
                        if short:
                            break
                        for q in range(in_ptr[s], in_ptr[s + 1]):
                            run[in_slot[q]] += D
                            cum[in_slot[q]] += D
                    if event >= 0 and event_month < T:
                        ev, ev_month = event, event_month
                        for q2 in range(ev_ptr[ev], ev_ptr[ev + 1]):
                            e = ev_idx[q2]
                            if every[e] == 1 or not done[e]:
                                done[e] = True
                                d = _date(window[e], lag[e], ev_month, intake, T)
                                if d >= 0:
                                    tally[c, e, d] += 1
                    arrive = m + D
                    if nxt < 0 or arrive >= T:
                        break
                    if fired >= 0:
                        branched_at = arrive
                    prev, s, m = s, nxt, arrive
                if short:
                    break
            if short:
                break
        if short:
            tally[:] = 0
            return p, path_pos  # nothing written: the next call simulates the path again
        _emit(tally, occupancy, p, counts, monthly_row, totals, totals_row, before)
    return n_paths, pos


@_jit
def _recurrent_regimes(uni, log_q, n_uni, pos, reg_start, reg_params, p, param, m, D, event, ev_ptr, ev_idx,
                       every, done, window, lag, intake, T, tally, c, counter):
    """A sojourn's recurrent events (months ``m .. m + D - 1``) at a rate piecewise constant in regimes.

    Each arrival takes one exponential variate of cumulative rate (the inverse of the cumulative
    rate in time), as the one-regime loop does with a constant rate.  Sets ``counter[0]`` to the
    stream position; returns True when the buffer ran out.
    """
    t_arr, r, need, fresh = 0.0, _regime(reg_start, m), 0.0, True
    R = reg_start.size
    while t_arr < D:
        if fresh:
            if pos >= n_uni:
                counter[0] = pos
                return True
            need = -log_q[pos]
            pos += 1
            fresh = False
        end = float(D) if r + 1 >= R else min(float(D), float(reg_start[r + 1] - m))
        rate = reg_params[p, r, param]
        room = (end - t_arr) * rate
        if rate > 0.0 and need < room:
            t_arr += need / rate
            fresh = True
            ev_month = m + int(t_arr)
            for q2 in range(ev_ptr[event], ev_ptr[event + 1]):
                e = ev_idx[q2]
                if every[e] == 1 or not done[e]:
                    done[e] = True
                    d = _date(window[e], lag[e], ev_month, intake, T)
                    if d >= 0:
                        tally[c, e, d] += 1
        else:
            need -= room
            t_arr = end
            r += 1
    counter[0] = pos
    return False


@_jit
def _emit(tally, occupancy, p, counts, monthly_row, totals, totals_row, before):
    """Write path ``p``'s tally (C, M, T) out, and reset it to zero for the next path.

    Occupancy marks (``occupancy[e]``: +1 / -1 at the intervals' ends) are summed over months
    first.  Measure ``e`` is written month by month to ``counts[p, :, monthly_row[e]]`` if that
    is not -1, and as its totals before each month of ``before`` (sorted; month ``m`` counts
    months ``0 .. m - 1``) to ``totals[p, :, totals_row[e]]`` if that is not -1.  Totals are
    whole numbers summed in 64-bit integers, then stored in float64 (exact below 2**53).
    Reading the tally while it is in cache (one path's, a few kB) spares writing the month by
    month counts of measures that are only read as totals, and reading them again.  Each pass
    is a plain loop over one row's months (copy, segment sums, zeroing), which the compiler
    vectorises: a quarter faster than one loop doing all three with a branch per month.
    """
    C, M, T = tally.shape
    B = before.shape[0]
    for c in range(C):
        for e in range(M):
            row = tally[c, e]
            if occupancy[e] == 1:
                level = np.int64(0)
                for t in range(T):
                    level += row[t]
                    row[t] = level
            j = monthly_row[e]
            if j >= 0:
                out = counts[p, c, j]
                for t in range(T):
                    out[t] = row[t]
            i = totals_row[e]
            if i >= 0:
                total = np.int64(0)
                lo = 0
                for b in range(B):
                    hi = min(max(before[b], lo), T)  # months lo .. hi - 1 come in now
                    part = np.int64(0)
                    for t in range(lo, hi):
                        part += row[t]
                    total += part
                    lo = hi
                    totals[p, c, i, b] = total
            for t in range(T):
                row[t] = 0


#: Uniforms drawn per call of the kernel at first (doubled while a single path needs more): large
#: enough that numpy's vectorised loops and the call overhead are amortised, small enough to stay
#: in cache. The results do not depend on it (only the draw order does; see "Draw order").
CHUNK = 1 << 16


def _run_buffered(rng: np.random.Generator, kernel_args: tuple, n_paths: int, chunk: int = CHUNK,
                  rewind: bool | None = None, kernel=None) -> int:
    """Run the kernel on uniforms drawn in vectorised chunks; return the uniforms consumed.

    ``kernel`` is the generic :func:`_kernel` (taking all of ``kernel_args``) by default, or a
    machine's specialised kernel (:mod:`sibsim.engine_codegen`), which takes the first
    ``N_DATA_ARGS`` only (the machine is in its code).

    The generator ends exactly where drawing the consumed uniforms one by one would leave it: the
    state before each chunk is saved, and afterwards restored and moved on by the number used, by
    :meth:`PCG64.advance` (one 64-bit output per double) or, for other bit generators, by drawing
    that many again (``rewind=False`` forces the latter, for tests).
    """
    bitgen = rng.bit_generator
    if rewind is None:
        rewind = isinstance(bitgen, (np.random.PCG64, np.random.PCG64DXSM))
    used_total = 0
    p = 0
    uni = log_q = None
    while p < n_paths:
        saved = bitgen.state
        if uni is None or uni.size != chunk:
            # Reused across chunks: fresh arrays of this size would be new pages to fault in each time.
            uni, log_q = np.empty(chunk), np.empty(chunk)
        rng.random(out=uni)
        np.subtract(1.0, uni, out=log_q)  # 1 - u is exact for numpy's uniforms (multiples of 2**-53)
        np.log(log_q, out=log_q)
        if kernel is None:
            p_next, used = _kernel(uni, log_q, p, *kernel_args)
        else:
            p_next, used = kernel(uni, log_q, p, *kernel_args[:N_DATA_ARGS])
        used = int(used)
        if p_next == p:
            chunk *= 2  # one path needs more than a chunk
        if used < chunk:
            bitgen.state = saved
            if rewind:
                bitgen.advance(used)
                state = bitgen.state  # advance clears the buffered 32-bit half; doubles never use it
                state["has_uint32"], state["uinteger"] = saved["has_uint32"], saved["uinteger"]
                bitgen.state = state
            elif used:
                rng.random(out=uni[:used])
        used_total += used
        p = int(p_next)
    return used_total


def simulate_group(journey: Journey, measures: tuple[Outcome, ...], params: np.ndarray,
                   intake_months: np.ndarray, sizes: np.ndarray, starts: np.ndarray, n_months: int,
                   rng: np.random.Generator, kernel: str | None = None, totals=None, census=None, regimes=None):
    """One group's journeys on a block of paths, counted per measure and month.

    Parameters
    ----------
    journey : Journey
    measures : tuple of Outcome
        What is counted (outcomes, then one count per cost item).
    params : ndarray (n_paths, P)
        Parameter values per path (:func:`draw_parameters`), probabilities per month and rates
        in events per participant-month.
    intake_months : ndarray (C,) int
        Intake month of each cohort.
    sizes : ndarray (C,) int
        Participants per cohort.
    starts : ndarray (C, n_states)
        Start distribution per cohort over the journey's states (rows sum to 1).
    n_months : int
        Horizon: months ``0 .. n_months - 1`` are simulated.
    rng : numpy.random.Generator
        The block's generator; consumed in the order of the module notes ("Draw order").
    kernel : {None, "generic", "specialised"}, optional
        The generic kernel, or one generated for this machine (:mod:`sibsim.engine_codegen`): the
        same counts from the same stream, faster, once compiled (seconds, then cached on disk).
        By default the specialised one when the block has at least :data:`SPECIALISE_FROM`
        participant-months (and the journey at most ``engine_codegen.MAX_STATES`` states), unless
        the environment sets ``SIBSIM_GENERIC_KERNEL=1`` or no cache directory is writable.
    totals : (months, measure indices) or None
        Measures to count only as totals before each of ``months`` (month ``m``: months
        ``0 .. m - 1``), not month by month: what settlement reads of outcomes.  The same
        numbers as summing the monthly counts, without writing and reading them.
    census : (month, rows) or None
        Start from a state census taken at the start of ``month`` instead of the intakes
        (:class:`sibsim.census.CensusRow`, rows of this group): each cohort with rows carries its
        participants on from there, row by row in the order given (no start state is drawn; the
        first sojourn continues one of ``row.months`` months, with the row's runs, cumulative
        months and outcomes already had), and simulates months ``month .. n_months - 1`` only;
        a cohort without rows starts at its intake as usual.  Counts are dated from ``month`` on.
        The generic kernel runs it (same rules, same draw order as without a census).
    regimes : sibsim.uncertainty.Regimes or None
        Parameters piecewise constant in calendar time (shocks, :mod:`sibsim.uncertainty`):
        ``regimes.params[:, 0]`` must be ``params``.  With more than one regime the generic kernel
        runs it: a sojourn's exit law is that of each month it spans (the same one exponential
        variate per sojourn), a branch's probability and a recurrent event's rate those of their
        month (same draw order otherwise).

    Returns
    -------
    ndarray (n_paths, C, n_measures, n_months) int32
        Occurrences of each measure dated in each month, before :attr:`Outcome.scale`; with
        ``totals``, of the other measures only (in their order), and a second array
        ``(n_paths, C, len(indices), len(months))`` float64 of the totals (whole numbers).

    Raises
    ------
    ValueError
        Simultaneous exits summing above 1 on a path (:func:`check_exit_sums`), bad shapes, or a
        machine :func:`compile_machine` refuses.
    """
    counts, args = _prepare(journey, measures, params, intake_months, sizes, starts, n_months, totals, census,
                            regimes)
    if kernel not in (None, "generic", "specialised"):
        raise ValueError(f"kernel: \"generic\" or \"specialised\", not {kernel!r}")
    fn = None
    several = regimes is not None and regimes.n_regimes > 1
    if census is not None or several:
        if kernel == "specialised":
            raise ValueError("kernel: a census or calendar-time regimes run on the generic kernel only")
    elif kernel == "specialised":
        fn = _specialised(journey, tuple(measures), int(n_months))
    elif kernel is None:
        intake = args[1]
        work = counts.shape[0] * int(np.sum(args[2] * np.maximum(int(n_months) - intake, 0)))
        generic = os.environ.get("SIBSIM_GENERIC_KERNEL", "") not in ("", "0")
        if not generic and work >= SPECIALISE_FROM and len(journey.states) <= engine_codegen.MAX_STATES:
            try:
                fn = _specialised(journey, tuple(measures), int(n_months))
            except OSError:  # nowhere to write its source: the generic kernel, same counts
                fn = None
    _run_buffered(rng, args, counts.shape[0], kernel=fn)
    return counts if totals is None else (counts, args[7])


#: Participant-months in a block from which :func:`simulate_group` uses a machine's specialised
#: kernel: below it, compiling one (seconds, the first time on a machine) costs more than the
#: generic kernel would spend on the block.
SPECIALISE_FROM = 2_000_000

#: Leading kernel arguments after the buffers that are data, not machine (see :func:`_prepare`).
N_DATA_ARGS = 11


@lru_cache(maxsize=16)
def _specialised(journey: Journey, measures: tuple[Outcome, ...], n_months: int):
    """The kernel generated for this machine, imported from the kernel cache (written if new)."""
    return engine_codegen.load_kernel(_compile(journey, measures, n_months))


def _census_arrays(mc: Machine, journey: Journey, measures, census, intake: np.ndarray, sizes: np.ndarray):
    """The kernel's census arguments: ``(resume_month, cen_ptr (C+1,), cen_state, cen_count,
    cen_months (R,), cen_run, cen_cum (R, K), cen_done (R, M) uint8)``; rows grouped by cohort.

    Each set's run and cumulative months are the row's (:meth:`CensusRow.run_in`,
    :meth:`CensusRow.total_in`, as the reference reads them).  A row of 0 months arrives in its
    state at the census month from ``arrived_from`` (``cen_prev``; -1 otherwise).  Raises
    ``ValueError`` for rows that do not fit the cohorts (the loader, :mod:`sibsim.census`, says
    so in the scenario's words first).
    """
    C, K, M = intake.size, max(mc.slot_mask.shape[0], 1), mc.kind.size
    if census is None:
        z = np.zeros(0, dtype=np.int64)
        return (np.int64(-1), np.zeros(C + 1, dtype=np.int64), z, z, z, np.zeros((0, K), dtype=np.int64),
                np.zeros((0, K), dtype=np.int64), np.zeros((0, M), dtype=np.uint8), z)
    month, rows = census
    month = int(month)
    names = journey.state_names
    slots = [frozenset(n for n, v in zip(names, r) if v) for r in mc.slot_mask]  # each set's states
    measure_names = [o.name for o in measures]
    rows = sorted(rows, key=lambda r: r.cohort)  # stable: the order given within a cohort
    R = len(rows)
    state, count, months, prev = (np.zeros(R, dtype=np.int64) for _ in range(4))
    run, cum = np.zeros((R, K), dtype=np.int64), np.zeros((R, K), dtype=np.int64)
    done = np.zeros((R, M), dtype=np.uint8)
    per_cohort = np.zeros(C, dtype=np.int64)
    for i, r in enumerate(rows):
        if not 0 <= r.cohort < C or intake[r.cohort] >= month:
            raise ValueError(f"census: cohort {r.cohort} has not started before month {month}")
        if r.state not in names or r.count < 0 or r.months < 0 or (r.months == 0) != (r.arrived_from in names):
            raise ValueError(f"census: row {i}: bad state, count, months or arrived_from")
        state[i], count[i], months[i] = names.index(r.state), r.count, r.months
        prev[i] = names.index(r.arrived_from) if r.months == 0 else -1
        per_cohort[r.cohort] += r.count
        for k, sl in enumerate(slots):
            run[i, k] = r.run_in(sl)
            cum[i, k] = r.total_in(sl)
        for name in r.already:
            if name in measure_names:
                done[i, measure_names.index(name)] = 1
    started = (intake < month) & (sizes > 0)
    for c in range(C):
        if started[c] and per_cohort[c] != sizes[c]:
            raise ValueError(f"census: cohort {c}: rows hold {per_cohort[c]} participants, the cohort {sizes[c]}")
    ptr = np.zeros(C + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(np.bincount([r.cohort for r in rows], minlength=C))
    return np.int64(month), ptr, state, count, months, run, cum, done, prev


def _prepare(journey, measures, params, intake_months, sizes, starts, n_months, totals=None, census=None,
             regimes=None):
    """Checked inputs: the zero counts array and the kernel's arguments after the buffers (the data:
    parameters, cohorts, starts, counts and what :func:`_emit` writes them as; the census; the
    regimes; then the machine)."""
    mc = compile_machine(journey, measures, n_months)
    params = np.ascontiguousarray(params, dtype=np.float64)
    S = len(journey.states)
    if params.ndim != 2 or params.shape[1] != len(journey.parameters):
        raise ValueError(f"params: shape {params.shape}, expected (n_paths, {len(journey.parameters)})")
    check_exit_sums(journey, params)
    if regimes is None:
        reg_start, reg_params = np.zeros(1, dtype=np.int64), params.reshape(params.shape[0], 1, params.shape[1])
    else:
        reg_start = np.ascontiguousarray(regimes.starts, dtype=np.int64)
        reg_params = np.ascontiguousarray(regimes.params, dtype=np.float64)
        if (reg_params.shape != (params.shape[0], reg_start.size, params.shape[1]) or reg_start[0] != 0
                or np.any(np.diff(reg_start) <= 0)):
            raise ValueError(f"regimes: starts {list(reg_start)} and params {reg_params.shape} do not fit params "
                             f"{params.shape}")
        if not np.array_equal(reg_params[:, 0, :], params):
            raise ValueError("regimes: the first regime's parameters must be params")
        for r in range(1, reg_start.size):
            check_exit_sums(journey, reg_params[:, r, :])
    intake = np.asarray(intake_months, dtype=np.int64).reshape(-1)
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
    starts = np.asarray(starts, dtype=np.float64)
    if starts.shape != (intake.size, S) or sizes.size != intake.size:
        raise ValueError(f"starts {starts.shape} / sizes {sizes.shape}: expected ({intake.size}, {S}) "
                         f"and ({intake.size},)")
    # A cohort with one start state draws nothing for it; others invert their cumulative shares.
    positive = starts > 0
    single = np.where(positive.sum(axis=1) == 1, positive.argmax(axis=1), -1).astype(np.int64)
    cdf = np.cumsum(starts, axis=1)
    cdf[~positive] = -np.inf  # a state with no share is never drawn
    last = S - 1 - positive[:, ::-1].argmax(axis=1)
    cdf[np.arange(intake.size), last] = np.inf  # rounding in the shares never leaves one without a state
    M, P = len(mc.kind), params.shape[0]
    months, as_totals = ((), ()) if totals is None else totals
    as_totals = sorted({int(e) for e in as_totals})
    if any(not 0 <= e < M for e in as_totals):
        raise ValueError(f"totals: measure indices must be in 0 .. {M - 1}, got {as_totals}")
    before = np.array(sorted(int(m) for m in months), dtype=np.int64)
    if totals is not None and list(before) != [int(m) for m in months]:
        raise ValueError(f"totals: months must be sorted, got {list(months)}")
    monthly = [e for e in range(M) if e not in as_totals]
    monthly_row = np.full(M, -1, dtype=np.int64)
    monthly_row[monthly] = np.arange(len(monthly))
    totals_row = np.full(M, -1, dtype=np.int64)
    totals_row[as_totals] = np.arange(len(as_totals))
    counts = np.zeros((P, intake.size, len(monthly), int(n_months)), dtype=np.int32)
    sums = np.zeros((P, intake.size, len(as_totals), len(before)))
    occupancy = (np.asarray(mc.kind) == OCCUPANCY).astype(np.uint8)
    if census is not None and not 0 < int(census[0]) < int(n_months):
        raise ValueError(f"census: month must be in 1 .. {int(n_months) - 1}, got {census[0]}")
    cen = _census_arrays(mc, journey, measures, census, intake, sizes)
    return counts, (params, intake, sizes, single, np.ascontiguousarray(cdf), counts,
                    monthly_row, sums, totals_row, before, occupancy, *cen, reg_start, reg_params, *mc)
