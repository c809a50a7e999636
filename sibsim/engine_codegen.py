"""A kernel written for one machine: :mod:`sibsim.engine`'s loop with the journey's structure as literals.

:func:`kernel_source` turns a compiled machine (:class:`sibsim.engine.Machine`) into the Python
source of a numba kernel with the same arguments after the buffers, the same semantics and the
same draw order as the generic ``sibsim.engine._kernel`` (so the same counts, bit for bit, from the
same stream), in which states, exits, time limits, branches, state sets and measures are constants:
an ``if``/``elif`` chain over the states, straight-line code per state, scalar locals for the runs,
cumulative months and "first" flags. Only what varies between calls stays an argument: parameters,
cohorts and their start distributions.

:func:`load_kernel` writes that source to a file named by its SHA-256 in the user's cache directory
(``$XDG_CACHE_HOME/sibsim/kernels``, else ``~/.cache/sibsim/kernels``; a per-user temporary
directory when neither is writable), once, atomically, and imports it: numba's ``cache=True`` then
keeps the compiled code next to it (``__pycache__``, or ``NUMBA_CACHE_DIR``), so later processes
and workers load it instead of compiling. A file is never rewritten once there (numba's cache is
keyed on the source file's modification time).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
import sys
import tempfile
from pathlib import Path

from .journey import OUTCOME_KINDS

MILESTONE, OCCUPANCY, STATUS = (OUTCOME_KINDS.index(k) for k in ("milestone", "occupancy", "status"))
END = 0

#: Bit masks of state sets must fit a 64-bit integer.
MAX_STATES = 62


class _Writer:
    """Lines of source at an indentation level."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.level + line)

    def indent(self) -> "_Writer":
        self.level += 1
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        self.level -= 1


def _rows(ptr, flat, i) -> list[int]:
    return [int(x) for x in flat[ptr[i]:ptr[i + 1]]]


def _emit_digest() -> str:
    """SHA-256 of :func:`sibsim.engine._emit`'s source (the generated kernels call it)."""
    import inspect

    from . import engine

    return hashlib.sha256(inspect.getsource(engine._emit.py_func).encode()).hexdigest()


def kernel_source(mc) -> str:
    """Python source of the kernel specialised to machine ``mc`` (a :class:`sibsim.engine.Machine`).

    The module defines ``kernel(uni, log_q, first_path, params, intake_months, sizes, start_single,
    start_cdf, counts, monthly_row, totals, totals_row, before, occupancy)``, returning ``(p, used)``
    and writing each path out with :func:`sibsim.engine._emit`, as the generic kernel does.

    Raises
    ------
    ValueError
        More than :data:`MAX_STATES` states.
    """
    T = int(mc.n_months)
    S = int(mc.timing.size)
    M = int(mc.kind.size)
    if S > MAX_STATES:
        raise ValueError(f"a specialised kernel takes at most {MAX_STATES} states, not {S}")
    kind = [int(k) for k in mc.kind]
    every = [int(x) for x in mc.every]
    window = [int(x) for x in mc.window]
    lag = [int(x) for x in mc.lag]
    mslot = [int(x) for x in mc.slot]
    consecutive = [int(x) for x in mc.consecutive]
    # "first" flags are read by measures counted once (not censuses), and by every cumulative milestone.
    needs_done = [(every[e] == 0 and kind[e] != STATUS) or (kind[e] == MILESTONE and consecutive[e] == 0)
                  for e in range(M)]
    run_used = {int(k) for k in mc.br_slot} | {mslot[e] for e in range(M)
                                               if kind[e] == MILESTONE and consecutive[e] == 1}
    cum_used = {mslot[e] for e in range(M) if kind[e] == MILESTONE and consecutive[e] == 0}
    ev_measures = [_rows(mc.ev_ptr, mc.ev_idx, v) for v in range(mc.ev_ptr.size - 1)]

    w = _Writer()

    def count(e: int, month: str) -> None:
        """Count one occurrence of measure ``e`` in ``month`` (< T at every call site), dated."""
        if every[e] == 0:
            w(f"if not done_{e}:")
            with w.indent():
                w(f"done_{e} = True")
                date(e, month)
        else:
            date(e, month)

    def count_cumulative_milestone(e: int, month: str) -> None:
        # Cumulative milestones count once whatever ``every`` says (the generic kernel's rule).
        w(f"if not done_{e}:")
        with w.indent():
            w(f"done_{e} = True")
            date(e, month)

    def date(e: int, month: str) -> None:
        conds = []
        if window[e] < T:
            conds.append(f"{month} - intake < {window[e]}")
        target = month
        if lag[e] != 0:
            w(f"d = {month} + {lag[e]}")
            target = "d"
            conds.append(f"d < {T}")
        if conds:
            w(f"if {' and '.join(conds)}:")
            with w.indent():
                w(f"tally[c, {e}, {target}] += 1")
        else:
            w(f"tally[c, {e}, {target}] += 1")

    def dispatch_event(v: int, month: str) -> None:
        for e in ev_measures[v]:
            count(e, month)

    def short() -> None:
        w("if pos >= n_uni:")
        with w.indent():
            w("short = True")
            w("break")

    w("import math")
    w("import numba")
    w("import numpy as np")
    w("")
    w("from sibsim.engine import _emit")
    # Numba's cache of this module does not see a change of _emit (another file): its source's
    # digest is part of this source, so a new _emit is a new kernel file with a cache of its own.
    w(f"# _emit: {_emit_digest()}")
    w("")
    w("")
    w('@numba.njit(cache=True, error_model="numpy")')
    w("def kernel(uni, log_q, first_path, params, intake_months, sizes, start_single, start_cdf, counts,")
    w("           monthly_row, totals, totals_row, before, occupancy):")
    w.indent()
    w("n_paths, C = params.shape[0], sizes.size")
    w("n_uni = uni.size")
    w("pos = 0")
    # One path's counts, kept in cache while its participants scatter into it; _emit writes them
    # out and resets them to zero.
    w(f"tally = np.zeros((C, {M}, {T}), dtype=np.int32)")
    w("for p in range(first_path, n_paths):")
    with w.indent():
        w("path_pos = pos")
        w("short = False")
        # Per-path exit laws, with the generic kernel's arithmetic in the same order.
        for s in range(S):
            a, b = int(mc.exit_ptr[s]), int(mc.exit_ptr[s + 1])
            if b == a:
                continue
            w("acc, ls, surv = 0.0, 0.0, 1.0")
            for k in range(a, b):
                w(f"q = params[p, {int(mc.exit_param[k])}]")
                if mc.in_order[s] == 1:
                    w("acc += q * surv")
                    w("surv *= 1.0 - q")
                    w("ls += math.log1p(-q)")
                else:
                    w("acc += q")
                w(f"cum_{k} = acc")
            if mc.in_order[s] == 0:
                w("ls = math.log1p(-acc) if acc < 1.0 else -math.inf")
            w(f"ls_{s} = ls")
            w(f"tot_{s} = acc")
        w("for c in range(C):")
        with w.indent():
            w("intake = intake_months[c]")
            w(f"if intake >= {T}:")
            with w.indent():
                w("continue")
            w("for _ in range(sizes[c]):")
            with w.indent():
                w("if start_single[c] >= 0:")
                with w.indent():
                    w("s = start_single[c]")
                w("else:")
                with w.indent():
                    short()
                    w("u = uni[pos]")
                    w("pos += 1")
                    w(f"s = {S - 1}")
                    w(f"for t in range({S}):")
                    with w.indent():
                        w("if u < start_cdf[c, t]:")
                        with w.indent():
                            w("s = t")
                            w("break")
                for e in range(M):
                    if needs_done[e]:
                        w(f"done_{e} = False")
                for k in sorted(run_used):
                    w(f"run_{k} = 0")
                for k in sorted(cum_used):
                    w(f"cum_months_{k} = 0")
                w("prev = -1")
                w("m = intake")
                w("branched_at = -1")
                # No count of arrivals per month (the generic kernel's guard against passing through
                # states forever): compile_machine refuses cycles among "start"-timing states, so a
                # month holds at most a start chain, a branch and a start chain, and the guard never fires.
                w("while True:")
                with w.indent():
                    w("fired = -1")
                    for s in range(S):
                        w(f"{'if' if s == 0 else 'elif'} s == {s}:")
                        with w.indent():
                            _state(w, mc, s, T, count, date, count_cumulative_milestone, dispatch_event, short,
                                   run_used, cum_used, ev_measures)
                    w("arrive = m + D")
                    w(f"if nxt < 0 or arrive >= {T}:")
                    with w.indent():
                        w("break")
                    w("if fired >= 0:")
                    with w.indent():
                        w("branched_at = arrive")
                    w("prev, s, m = s, nxt, arrive")
                w("if short:")
                with w.indent():
                    w("break")
            w("if short:")
            with w.indent():
                w("break")
        w("if short:")
        with w.indent():
            w("tally[:] = 0  # nothing written: the next call simulates the path again")
            w("return p, path_pos")
        w("_emit(tally, occupancy, p, counts, monthly_row, totals, totals_row, before)")
    w("return n_paths, pos")
    return "\n".join(w.lines) + "\n"


def _state(w, mc, s, T, count, date, count_cumulative_milestone, dispatch_event, short, run_used, cum_used,
           ev_measures) -> None:
    """The body of the ``if s == ...`` block of state ``s``: one sojourn, as the generic kernel runs it."""
    S = int(mc.timing.size)
    end = int(mc.timing[s]) == END
    L = int(mc.limit[s])
    after = int(mc.after[s])
    a, b = int(mc.exit_ptr[s]), int(mc.exit_ptr[s + 1])
    n_exits = b - a
    # Entries: the predecessor outside the measure's set (bit mask of the set, prev = -1 at the start).
    for e in _rows(mc.entry_ptr, mc.entry_idx, s):
        bits = sum(1 << t for t in range(S) if mc.mask[e, t])
        w(f"if prev < 0 or (({bits} >> prev) & 1) == 0:")
        with w.indent():
            count(e, "m")
    for k in _rows(mc.out_ptr, mc.out_slot, s):
        if k in run_used:
            w(f"run_{k} = 0")
    w(f"rem = {T} - m")
    w("exited = False")
    w("D = 0")
    if n_exits:
        short()
        w("lq = log_q[pos]")
        w("pos += 1")
        w(f"if ls_{s} < 0.0:")
        with w.indent():
            w(f"x = lq / ls_{s}")
            lim = "rem" if L > T else f"min({L}, rem)"
            w(f"if x < {lim}:")
            with w.indent():
                w("exited = True")
                w("D = int(x) + 1" if end else "D = int(x)")
    w("nxt = -1")
    w("if not exited:")
    with w.indent():
        if L > T:
            w("D = rem")
        else:
            w(f"if {L} <= rem:")
            with w.indent():
                w(f"D = {L}")
                w(f"nxt = {after}")
            w("else:")
            with w.indent():
                w("D = rem")
    # Duration branches: chronological, declared order on ties (as the generic selection loop).
    branches = _rows(mc.sb_ptr, mc.sb_branch, s)
    if branches:
        w("last_i = 0")
    if len(branches) == 1:
        bb = branches[0]
        w(f"i_{bb} = {int(mc.br_at[bb])} - run_{int(mc.br_slot[bb])}")
        w(f"if i_{bb} >= 1 and i_{bb} <= D and not (i_{bb} == 1 and branched_at == m):")
        with w.indent():
            w(f"last_i = i_{bb}")
            short()
            w("u = uni[pos]")
            w("pos += 1")
            w(f"if u < params[p, {int(mc.br_param[bb])}]:")
            with w.indent():
                w(f"fired = {bb}")
    elif branches:
        w("pb = 0.0")
        for bb in branches:
            w(f"i_{bb} = {int(mc.br_at[bb])} - run_{int(mc.br_slot[bb])}")
        w("last_i, last_b = 0, -1")
        w(f"for _r in range({len(branches)}):")
        with w.indent():
            w("best, best_i = -1, 0")
            for bb in branches:
                i = f"i_{bb}"
                w(f"if not ({i} < 1 or {i} > D or ({i} == 1 and branched_at == m)) and "
                  f"not ({i} < last_i or ({i} == last_i and {bb} <= last_b)) and (best < 0 or {i} < best_i):")
                with w.indent():
                    w(f"best, best_i = {bb}, {i}")
            w("if best < 0:")
            with w.indent():
                w("break")
            w("last_i, last_b = best_i, best")
            short()
            w("u = uni[pos]")
            w("pos += 1")
            for j, bb in enumerate(branches):
                w(f"{'if' if j == 0 else 'elif'} best == {bb}:")
                with w.indent():
                    w(f"pb = params[p, {int(mc.br_param[bb])}]")
            w("if u < pb:")
            with w.indent():
                w("fired = best")
                w("break")
        w("if short:")
        with w.indent():
            w("break")
    # Transition event (its code, -1 for none) and month, counted after the sojourn's own counts.
    possible_events = set()
    w("event, event_month = -1, -1")
    opened = False
    if branches:
        w("if fired >= 0:")
        opened = True
        with w.indent():
            w("D = last_i - 1")
            for j, bb in enumerate(branches):
                body = [f"nxt = {int(mc.br_to[bb])}"]
                ev = int(mc.br_event[bb])
                if ev >= 0 and ev_measures[ev]:
                    body.append(f"event = {ev}")
                    possible_events.add(ev)
                if len(branches) == 1:
                    for line in body:
                        w(line)
                else:
                    w(f"{'if' if j == 0 else 'elif'} fired == {bb}:")
                    with w.indent():
                        for line in body:
                            w(line)
            w("event_month = m + D")
    if n_exits:
        w("elif exited:" if opened else "if exited:")
        with w.indent():
            bodies = []
            for k in range(a, b):
                body = [f"nxt = {int(mc.exit_to[k])}"]
                ev = int(mc.exit_event[k])
                if ev >= 0 and ev_measures[ev]:
                    body.append(f"event = {ev}")
                    possible_events.add(ev)
                bodies.append(body)
            if n_exits > 1:
                short()
                w(f"u = uni[pos] * tot_{s}")
                w("pos += 1")
                for j, k in enumerate(range(a, b)):
                    if j < n_exits - 1:
                        w(f"{'if' if j == 0 else 'elif'} u < cum_{k}:")
                    else:
                        w("else:")
                    with w.indent():
                        for line in bodies[j]:
                            w(line)
            else:
                for line in bodies[0]:
                    w(line)
            w("event_month = m + D - 1" if end else "event_month = m + D")
    # What the D months in s count.
    occ = _rows(mc.occ_ptr, mc.occ_idx, s)
    sta = _rows(mc.status_ptr, mc.status_idx, s)
    mil = _rows(mc.mile_ptr, mc.mile_idx, s)
    rec = list(range(int(mc.rec_ptr[s]), int(mc.rec_ptr[s + 1])))
    ins = _rows(mc.in_ptr, mc.in_slot, s)
    body_lines_before = len(w.lines)
    w("if D > 0:")
    with w.indent():
        start = len(w.lines)
        for e in occ:
            win, lag = int(mc.window[e]), int(mc.lag[e])
            w(f"hi = min(m + D, intake + {win})" if win < T else "hi = m + D")
            w("if m < hi:")
            with w.indent():
                if lag == 0:
                    w(f"tally[c, {e}, m] += 1")
                    w(f"if hi < {T}:")
                    with w.indent():
                        w(f"tally[c, {e}, hi] -= 1")
                else:
                    w(f"lo2, hi2 = m + {lag}, hi + {lag}")
                    w(f"if lo2 < {T}:")
                    with w.indent():
                        w(f"tally[c, {e}, lo2] += 1")
                        w(f"if hi2 < {T}:")
                        with w.indent():
                            w(f"tally[c, {e}, hi2] -= 1")
        for e in sta:
            for r in range(int(mc.at_ptr[e]), int(mc.at_ptr[e + 1])):
                w(f"t = intake + {int(mc.at_months[r])}")
                w("if m <= t and t < m + D:")
                with w.indent():
                    date(e, "t")  # a census counts whoever is there, whatever ``count`` says
        for e in mil:
            k = int(mc.slot[e])
            if int(mc.consecutive[e]) == 1:
                w(f"i = {int(mc.months[e])} - run_{k}")
                w("if i >= 1 and i <= D:")
                with w.indent():
                    count(e, "m + i - 1")
            else:
                w(f"i = {int(mc.months[e])} - cum_months_{k}")
                w("if i >= 1 and i <= D:")
                with w.indent():
                    count_cumulative_milestone(e, "m + i - 1")
        for q in rec:
            ev = int(mc.rec_event[q])
            w(f"rate = params[p, {int(mc.rec_param[q])}]")
            w("if rate > 0.0:")
            with w.indent():
                w("t_arr = 0.0")
                w("while True:")
                with w.indent():
                    short()
                    w("t_arr -= log_q[pos] / rate")
                    w("pos += 1")
                    w("if t_arr >= D:")
                    with w.indent():
                        w("break")
                    if ev_measures[ev]:
                        w("ev_month = m + int(t_arr)")
                        dispatch_event(ev, "ev_month")
                w("if short:")
                with w.indent():
                    w("break")
        for k in ins:
            if k in run_used:
                w(f"run_{k} += D")
            if k in cum_used:
                w(f"cum_months_{k} += D")
        if len(w.lines) == start:
            del w.lines[body_lines_before:]
    if possible_events:
        w(f"if event >= 0 and event_month < {T}:")
        with w.indent():
            for j, ev in enumerate(sorted(possible_events)):
                w(f"{'if' if j == 0 else 'elif'} event == {ev}:")
                with w.indent():
                    dispatch_event(ev, "event_month")


# --- the file and its import ----------------------------------------------------------------------

def kernel_dir() -> Path:
    """Where kernel sources are written: the user's cache directory, else a per-user temporary one."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    candidates = [Path(base) / "sibsim" / "kernels"]
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    candidates.append(Path(tempfile.gettempdir()) / f"sibsim-kernels-{uid}")
    for i, d in enumerate(candidates):
        try:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not os.access(d, os.W_OK):
                continue
            if i > 0 and not _private(d):
                continue  # a shared temporary directory: code is only imported from a folder only we can write
            return d
        except OSError:
            continue
    raise OSError("no writable directory for sibsim's kernels")


def _private(d: Path) -> bool:
    """Whether ``d`` (not a symlink) belongs to this user and nobody else can write into it."""
    if not hasattr(os, "getuid"):
        return True
    st = os.lstat(d)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _write_once(path: Path, source: str) -> None:
    """Write ``source`` to ``path`` unless it holds it already: a temporary file linked into place.

    Linking fails if another process got there first (same name, same source): the file then stays
    as it is, so numba's cache of it (keyed on its modification time) stays valid. A file with other
    content (damaged) is replaced.
    """
    if path.exists() and path.read_text() == source:
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(source)
        try:
            os.link(tmp, path)
        except FileExistsError:
            if path.read_text() != source:
                os.replace(tmp, path)
        except OSError:  # no hard links on this file system
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_kernel(mc):
    """The specialised kernel of machine ``mc``, imported from its source file (written if new)."""
    source = kernel_source(mc)
    digest = hashlib.sha256(source.encode()).hexdigest()
    name = f"_sibsim_kernel_{digest[:20]}"
    if name in sys.modules:
        return sys.modules[name].kernel
    path = kernel_dir() / f"{digest}.py"
    _write_once(path, source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.kernel
