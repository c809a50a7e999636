"""Today's numpy engine (sibsim.montecarlo before the journey-as-data change): the benchmark baseline.

A verbatim copy of the hard-coded Colour Kitchen chain's ``simulate_group`` and its helpers, kept
standalone (the old contract constants inlined, no import of sibsim) so that
``benchmarks/engine_kernel.py`` can time the compiled engine against it and
``tests/test_engine_kernel.py`` can check that both agree in distribution. Not used by sibsim.

The engine samples *event times* rather than stepping month by month: every
sojourn in the journey is geometric (constant monthly probability), so its
length is drawn by inverting the geometric CDF from one uniform.  A Python
loop runs over job *spells* (a participant may find and lose several jobs),
never over paths or participants; events and months off benefits are
aggregated per (path, cohort, month) with :func:`numpy.bincount`.
"""

from __future__ import annotations

import numpy as np

#: Outcome types of the old contracts, in the order the engine stores them.
OUTCOMES = ("diploma", "job_start", "job_sustained", "long_term_contract")
#: The old journey's parameters (keys of ``journey_parameters``).
JOURNEY_PROBABILITIES = ("diploma", "dropout", "job_with_diploma", "job_without_diploma", "relapse",
                         "relapse_long_term", "long_term_contract")
DIPLOMA, JOB_START, JOB_SUSTAINED, LONG_TERM_CONTRACT = range(len(OUTCOMES))


def _geometric_months(log_q: np.ndarray, u: np.ndarray, cap: int) -> np.ndarray:
    """Geometric months (int32) from uniforms ``u`` (consumed: overwritten in place).

    ``log_q`` must come from :func:`_log_stay`.  Same values as
    ``min(1 + floor(log(1-u) / log_q), cap)``: the ratio is >= 0 (or NaN, or +inf
    when p == 0), so capping it at ``cap - 1`` first (``fmin`` maps NaN to the cap)
    and truncating to an integer is the floor.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.negative(u, out=u)
        np.log1p(u, out=u)
        np.divide(u, log_q, out=u)
        np.fmin(u, cap - 1, out=u)
    g = u.astype(np.int32)
    g += 1
    return g


def _log_stay(p: np.ndarray) -> np.ndarray:
    """``log(1 - p)`` per path: -inf where p == 1 (the event happens at once), and ``-0.0``
    (never +0.0, even for ``p = -0.0``) where p == 0, so that ``log(1-u) / log_q`` is +inf or NaN
    there, which :func:`_geometric_months` maps to its cap (never)."""
    with np.errstate(divide="ignore"):
        log_q = np.log1p(-np.asarray(p, dtype=float))
    return np.where(log_q < 0, log_q, -0.0)


def simulate_group(
    journey_parameters: dict[str, np.ndarray],
    max_training_months: int,
    intake_months: np.ndarray,
    sizes: np.ndarray,
    n_months: int,
    sustained_job_months: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one group's journeys on a block of paths.

    Parameters
    ----------
    journey_parameters : dict of str -> ndarray (paths,)
        Per-month probabilities (``long_term_contract``: per sustained job).
    max_training_months : int
        Months of training at most (0: straight to job search).
    intake_months, sizes : ndarray (cohorts,)
        Intake month and number of participants of each cohort.
    n_months : int
        Months simulated (the ledger horizon); later events are not observed.
    sustained_job_months : int
        Months in one job that make it *sustained*.
    rng : numpy.random.Generator

    Returns
    -------
    events : ndarray (paths, cohorts, 4, months) int32
    employed : ndarray (paths, cohorts, months) int32

    Notes
    -----
    Only the participants still active are carried from one job spell to the next, each
    with its (path, cohort) key, path and job-finding rate, compressed together with one
    mask; keys are int32 whenever the cells fit.  Draws are made in a fixed order (one
    uniform per active participant and sojourn, in participant order), which the
    reproducibility tests and golden outputs pin down.
    """
    T, S, K = n_months, sustained_job_months, len(OUTCOMES)
    sizes = np.asarray(sizes, dtype=np.int64)
    n_paths = len(journey_parameters["diploma"])
    n_cohorts = len(sizes)
    n_groups = n_paths * n_cohorts
    n_cells = n_groups * K * T
    itype = np.int32 if max(n_cells, n_groups * 2 * (T + 1)) < 2**31 - 1 else np.int64
    per_path = int(sizes.sum())
    cohort_of = np.repeat(np.arange(n_cohorts, dtype=itype), sizes)  # participant -> cohort, one path
    path = np.repeat(np.arange(n_paths, dtype=itype), per_path)
    group = (path * n_cohorts).reshape(n_paths, per_path)
    group += cohort_of
    group = group.reshape(-1)  # (path, cohort) index of every participant
    start = np.tile(np.asarray(intake_months)[cohort_of].astype(itype), n_paths)
    q = journey_parameters  # per path; gathered per participant only where needed
    log_job = (_log_stay(q["job_without_diploma"]), _log_stay(q["job_with_diploma"]))
    log_relapse = _log_stay(q["relapse"])
    log_relapse_long = _log_stay(q["relapse_long_term"])
    p_contract = np.asarray(q["long_term_contract"], dtype=float)
    event_keys: list[list[np.ndarray]] = [[] for _ in range(K)]  # per outcome: keys group * T + month
    job_keys: list[np.ndarray] = []  # +1 cells (first month of a job) and, offset by cells, -1 cells
    cells = n_groups * (T + 1)

    def record(mask, base, outcome, month):
        """Events of ``outcome`` at ``month`` for participants in ``mask`` (keys ``base = group * T``)."""
        idx = np.flatnonzero(mask)
        keys = base.take(idx)
        keys += month.take(idx)
        event_keys[outcome].append(keys)

    # Training: diploma with p_d each month, else dropout with p_x, for at most L months.
    L = max_training_months
    if L > 0:
        p_d, p_x = np.asarray(q["diploma"], dtype=float), np.asarray(q["dropout"], dtype=float)
        hazard = 1.0 - (1.0 - p_d) * (1.0 - p_x)  # per path
        g = _geometric_months(_log_stay(hazard).take(path), rng.random(path.size), L + 1)
        u_type = rng.random(path.size)
        u_type *= hazard.take(path)
        diploma = (g <= L) & (u_type < p_d.take(path))
        del u_type
        month = start + g - 1
        record(diploma & (month < T), group * T, DIPLOMA, month)
        del month
        np.minimum(g, L, out=g)
        search_from = start + g
        del g
    else:
        diploma = None
        search_from = start

    # Job spells: look for work, hold the job until relapse, look again.
    active = search_from < T
    if active.all():
        b, grp, pw = search_from, group, path
        dip = diploma
    else:
        idx = np.flatnonzero(active)
        b, grp, pw = search_from.take(idx), group.take(idx), path.take(idx)
        dip = None if diploma is None else diploma.take(idx)
    del search_from, start, active
    lqj = log_job[0].take(pw) if dip is None else np.where(dip, log_job[1].take(pw), log_job[0].take(pw))
    history = np.zeros(b.size, dtype=np.int8)  # 0 none, 1 job started, 2 sustained, 3 long-term contract
    while b.size:
        job = _geometric_months(lqj, rng.random(b.size), T + 1)
        job += b
        job -= 1  # cap: never before T
        found = job < T
        if not found.all():
            idx = np.flatnonzero(found)
            job, grp, pw, lqj, history = (a.take(idx) for a in (job, grp, pw, lqj, history))
            if not job.size:
                break
        base = grp * T
        record(history == 0, base, JOB_START, job)
        # Relapse clock; a job surviving S - 1 further months is sustained.
        end = _geometric_months(log_relapse.take(pw), rng.random(job.size), T + 1)
        end += job
        sustained_at = job + (S - 1)
        sustained = end > sustained_at
        observed = sustained & (sustained_at < T)
        record(sustained & (history < 2) & (sustained_at < T), base, JOB_SUSTAINED, sustained_at)
        idx = np.flatnonzero(observed)
        contract = np.zeros(job.size, dtype=bool)
        contract[idx] = rng.random(idx.size) < p_contract.take(pw.take(idx))
        record(contract & (history < 3), base, LONG_TERM_CONTRACT, sustained_at)
        # Long-term contracts restart the (memoryless) relapse clock at their own rate.
        idx = np.flatnonzero(contract)
        if idx.size:
            end[idx] = sustained_at.take(idx) + _geometric_months(log_relapse_long.take(pw.take(idx)),
                                                                rng.random(idx.size), T + 1)
        key = grp * (T + 1)
        job_keys.append(key + job)
        np.minimum(end, T, out=sustained_at)
        key += sustained_at
        key += cells
        job_keys.append(key)
        # 0 none, 1 job started, 2 sustained, 3 long-term contract (a contract implies sustained).
        np.maximum(history, 1 + sustained.view(np.int8) + contract.view(np.int8), out=history)
        # The relapse month is spent on benefits; the search resumes the month after.
        end += 1
        again = end < T
        if again.all():
            b = end
        else:
            idx = np.flatnonzero(again)
            b, grp, pw, lqj, history = (a.take(idx) for a in (end, grp, pw, lqj, history))

    # One outcome at a time: a smaller count array (n_groups * T) stays in cache while it is filled.
    events = np.empty((n_groups, K, T), dtype=np.int32)
    for k in range(K):
        keys = np.concatenate(event_keys[k]) if event_keys[k] else np.zeros(0, dtype=itype)
        events[:, k, :] = np.bincount(keys, minlength=n_groups * T).reshape(n_groups, T)
    events = events.reshape(n_paths, n_cohorts, K, T)
    if job_keys:  # +1 in the month a job starts, -1 in the month it ends: a running sum counts jobs held
        both = np.bincount(np.concatenate(job_keys), minlength=2 * cells)
        delta = both[:cells]
        delta -= both[cells:]
    else:
        delta = np.zeros(cells, dtype=np.int64)
    employed = np.cumsum(delta.reshape(n_groups, T + 1)[:, :T], axis=1, dtype=np.int32)
    return events, employed.reshape(n_paths, n_cohorts, T)
