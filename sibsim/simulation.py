"""Run a whole simulation: Contract -> (blocks of paths) -> Results.

Paths are cut into fixed blocks (size set by the contract, see
:func:`sibsim.montecarlo.block_size`).  Block ``b`` always uses child ``b`` of
``SeedSequence(seed)``, so a run is bit-identical whether its blocks run in
one process or several.  Blocks run with one BLAS thread (in workers and in
process), so results do not depend on how many threads OpenBLAS would pick on
a given machine either.  Workers return numpy arrays, which are copied into
preallocated arrays in block order (:class:`sibsim.results.BlockAssembler`).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import numpy as np

from .budget import bytes_per_path, path_years
from .cashflows import block_totals, settle, settlement_months
from .cashflows import monthly_costs
from .contracts import Contract
from .errors import InsufficientMemoryError
from .metrics import path_metric_arrays, scaled_within
from .montecarlo import block_size, simulate_outcomes
from .results import MONTHLY_SERIES, BlockAssembler, Results

#: The seed every command and analysis function uses unless told otherwise (``simulate`` itself, given
#: ``seed=None``, draws fresh entropy and records it in ``Results.seed_entropy``).
DEFAULT_SEED = 2015
#: Paths whose monthly series (fan charts, outflow curves) are kept in memory.
MONTHLY_PATHS_KEPT = 100_000
#: Below this many paths a single process is faster than starting workers.
PARALLEL_MIN_PATHS = 20_000


def _openblas():
    """``(get, set)`` of the OpenBLAS thread count numpy loaded, or None (other BLAS, not found)."""
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    return get, set_
    return None


@contextmanager
def _single_threaded_blas():
    """One BLAS thread while a block runs: its matrix products (the IRR grid) are small, and
    OpenBLAS's idle threads spin on a core that another block (worker) could use."""
    blas = _openblas()
    if blas is None:
        yield
        return
    get, set_ = blas
    before = get()
    set_(1)
    try:
        yield
    finally:
        set_(before)


def _init_worker(parent_pid: int | None = None) -> None:
    """Worker processes: die with the parent, one BLAS thread, freed block memory kept for the next block."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    blas = _openblas()
    if blas is not None:
        blas[1](1)
    _keep_freed_memory()


#: How often (seconds) a worker checks that the process that started it is still alive.
PARENT_CHECK_SECONDS = 1.0


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when ``parent_pid`` dies, even by SIGKILL (which leaves the pool no chance to stop it).

    On Linux the kernel sends SIGKILL at the parent's death (``prctl(PR_SET_PDEATHSIG)``); on every
    system a daemon thread also checks the parent each :data:`PARENT_CHECK_SECONDS`, and the check
    runs once now, for a parent that died before the ``prctl`` took effect.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # the watching thread still ends the worker
    ppid = os.getppid()
    if not _parent_alive(parent_pid, ppid):
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid, ppid), name="sibsim-parent-watch", daemon=True).start()


def _parent_alive(parent_pid: int, ppid: int) -> bool:
    """Whether the pool's process lives: this worker was not re-parented, and the PID still exists."""
    if os.getppid() != ppid:
        return False
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # exists, owned by someone else: cannot tell more
    return True


def _watch_parent(parent_pid: int, ppid: int) -> None:
    while _parent_alive(parent_pid, ppid):
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)  # nobody is left to collect this worker's results


def _keep_freed_memory() -> None:
    """Keep freed memory in the (worker) process for the next block (glibc only).

    A block allocates and frees the same large temporaries again and again; by default glibc
    returns them to the system and the next block faults them back in page by page (about a
    tenth of a block's CPU time in the kernel).  Raising the mmap and trim thresholds keeps
    them; peak memory is the same (one block's working set).  Results are unaffected.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


# --- memory: estimated before a run, refused above what the machine has available ----------------
#: Bytes kept per path by a run and what the command line computes from it (measured: the ``paths``
#: columns and outcome shares are about 210 bytes; summaries and CSV writing add temporaries;
#: ``ru_maxrss`` of ``sibsim run`` grew by 254-265 bytes per path from 200,000 to 800,000 paths).
BYTES_PER_PATH = 300
#: Monthly series kept per path (float32, :data:`sibsim.results.MONTHLY_SERIES`), twice: their quantiles copy them.
MONTHLY_COPIES = 2
#: A block's working set (bytes): peak traced by tracemalloc over the shipped scenarios and variants
#: (cohorts 3x and 1/3 their size, 36 more tail months, comparison groups 3x), fitted as
#: ``constant + per path-month + per count cell-path + per expected cell-path + per expected edge-path-month``
#: (non-negative least squares on relative errors, within -24 %/+23 % of every measurement) and scaled up
#: by :data:`BLOCK_MARGIN` so that no measured block exceeds it. The compiled engine is path-local: its
#: memory follows the count arrays it keeps (paths x cohorts x cost items x months, and the outcomes'
#: totals), not the participants.  Since the engine keeps outcomes as totals only, the count cells are
#: those it keeps, and the margin is 1.7 (1.5 left Peterborough's measured block 3 % above it; the
#: shipped scenarios' estimates are now 1.1 to 2.1 times their measured peaks).
BLOCK_FIT = (0.45e6, 116.0, 15.9, 3.04, 0.435)
BLOCK_MARGIN = 1.7
#: Bytes per path-month of each payer beyond the first and of each guarantee: the waterfall's ledgers
#: per party (due, defaulted, retained, withheld per payer; payments and recoveries per guarantee).
#: Measured: Peterborough's second payer added 434 kB to a 150-path, 96-month block (30 bytes).
PAYER_BYTES, GUARANTEE_BYTES = 40.0, 24.0
#: Private memory of a worker process besides its block (interpreter heap touched after the fork, and
#: the compiled journey kernel loaded from numba's cache or compiled: about 20 MB traced on first use).
WORKER_BYTES = 60e6
#: What a command still allocates after the check whatever the paths: plotting, CSV writers, imports.
COMMAND_BYTES = 100e6


def block_working_set(contract: Contract, n_paths: int | None = None) -> float:
    """Estimated peak memory (bytes) of simulating one block of ``n_paths`` (default: the contract's block size)."""
    n = block_size(contract) if n_paths is None else n_paths
    months = contract.horizon_months
    expected = contract.comparison.method == "expected"
    # The engine keeps the cost items month by month and the outcomes as totals before the
    # settlement months (sibsim.montecarlo.simulate_outcomes); a modelled counterfactual keeps
    # every measure month by month (its expectations), counted below.
    kept = len(contract.costs) * months + len(contract.outcomes) * (len(settlement_months(contract)) + 1)
    cells = len(contract.cohorts) * kept
    every_cell = len(contract.cohorts) * len(contract.measures) * months
    const, per_path_month, per_cell, per_expected_cell, per_edge = BLOCK_FIT
    fit = (const + per_path_month * n * months + per_cell * n * (cells + (every_cell if expected else 0))
           + (per_expected_cell * n * every_cell + per_edge * n * _expected_edges(contract) * months
              if expected else 0.0))
    parties = PAYER_BYTES * (len(contract.payers) - 1) + GUARANTEE_BYTES * len(contract.guarantees)
    return BLOCK_MARGIN * (fit + parties * n * months)


def _expected_edges(contract: Contract) -> int:
    """Edges of the augmented chain a modelled counterfactual propagates (its memory grows with them)."""
    from .augmented import build_chain
    from .montecarlo import start_distributions

    starts = start_distributions(contract, comparison=True)
    return len(build_chain(contract.comparison.journey, contract.measures,
                           np.flatnonzero(starts.sum(axis=0) > 0)).src)


def estimate_memory(contract: Contract, n_paths: int, workers: int | None = None) -> dict:
    """Memory a run of ``n_paths`` needs, in bytes, before it starts.

    Returns
    -------
    dict
        ``needed`` (total), ``per_path`` (bytes kept per path), ``fixed`` (the monthly series kept
        for the first :data:`MONTHLY_PATHS_KEPT` paths, the working set of every block running at
        once and :data:`COMMAND_BYTES`) and ``workers`` (processes the run would use).

    Notes
    -----
    Measured with ``ru_maxrss`` of ``sibsim run --workers 1 --no-plots`` (peak minus the memory
    in use before the run): Colour Kitchen 189, 366 and 467 MB at 50,000, 400,000 and 800,000 paths
    (estimates 287, 488 and 608 MB); Peterborough 240 and 415 MB at 50,000 and 200,000 (298, 497 MB).
    """
    size = block_size(contract)
    n_blocks = -(-n_paths // size)
    workers = _worker_count(n_paths, n_blocks, workers)
    monthly = MONTHLY_COPIES * len(MONTHLY_SERIES) * 4 * contract.horizon_months * min(n_paths, MONTHLY_PATHS_KEPT)
    blocks = workers * (block_working_set(contract, min(size, n_paths)) + (WORKER_BYTES if workers > 1 else 0))
    fixed = math.ceil(COMMAND_BYTES + monthly + blocks)  # whole bytes: the boundary needed == available is exact
    per_path = BYTES_PER_PATH + bytes_per_path(contract)  # the budget years' sums (sibsim.budget)
    return {"needed": fixed + per_path * n_paths, "per_path": per_path, "fixed": fixed,
            "workers": workers}


def available_memory() -> int | None:
    """Bytes of memory available to a new run: ``MemAvailable`` of /proc/meminfo, else free pages; None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(contracts, n_paths: int, workers: int | None = None) -> None:
    """Refuse a run (or a comparison of several contracts) that would need more memory than is available.

    Raises
    ------
    InsufficientMemoryError
        One line: the estimate, what is available and the largest number of paths that fits.
    """
    contracts = [contracts] if isinstance(contracts, Contract) else list(contracts)
    available = available_memory()
    if available is None or not contracts:
        return
    estimates = [estimate_memory(c, n_paths, workers) for c in contracts]
    needed = sum(e["needed"] for e in estimates)
    if needed <= available:
        return
    per_path = sum(e["per_path"] for e in estimates)
    fixed = sum(e["fixed"] for e in estimates)  # a run of fewer paths never needs more of it
    fits = max(0, int((available - fixed) // per_path))
    way_out = (f"use at most {_round_down(fits):,} paths or a machine with more memory" if fits >= 1
               else "use fewer --workers or a machine with more memory")
    raise InsufficientMemoryError(f"{n_paths:,} paths need about {_gb(needed)} of memory (this machine has "
                                  f"{_gb(available)} available); {way_out}", int(needed), int(available), fits)


def _round_down(n: int) -> int:
    """``n`` rounded down to two significant digits (77,604,698 -> 77,000,000): a number to type, still within ``n``."""
    scale = 10 ** max(len(str(n)) - 2, 0)
    return n // scale * scale


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:,.0f} GB" if n_bytes >= 10e9 else f"{n_bytes / 1e9:,.1f} GB"


def _worker_count(n_paths: int, n_blocks: int, workers: int | None) -> int:
    """Processes a run uses: all cores for large runs unless given, never more than blocks."""
    if workers is None:
        workers = min(os.cpu_count() or 1, n_blocks) if n_paths >= PARALLEL_MIN_PATHS else 1
    return max(1, min(int(workers), n_blocks))


def _run_block(contract: Contract, seed: np.random.SeedSequence, n_paths: int, keep_monthly: bool,
               standing=None) -> dict:
    """Simulate, settle and measure one block; returns plain numpy arrays (cheap to send between processes)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    term = contract.term_months
    # The engine counts outcomes only as totals before settlement's months and the end of the term
    # (all this block reads of them), not month by month.
    months = sorted(settlement_months(contract) | {term})
    outcomes = simulate_outcomes(contract, n_paths, rng, totals_before=months, standing=standing)
    totals = block_totals(contract, outcomes, [term])
    cash = settle(contract, outcomes, totals)
    scales = contract.outcome_scales
    within = tuple(scaled_within(t, scales) for t in totals.at(term))  # (P, C, K) each
    paths = path_metric_arrays(contract, cash, outcomes, within)
    shares = {}
    for group_name, group, total in (("treated", outcomes.treated, within[0]),
                                     ("comparison", outcomes.comparison, within[1])):
        reached = total.sum(axis=1) / group.sizes.sum()
        for k, outcome in enumerate(contract.outcome_names):
            shares[f"{group_name}_{outcome}"] = reached[:, k]
    T = contract.horizon_months
    ledger_sums = {
        "capital_calls": cash.capital_calls.sum(axis=1).sum(axis=0),
        "distributions": cash.distributions.sum(axis=1).sum(axis=0),
        "guarantee_payouts": cash.guarantee_payouts.sum(axis=1).sum(axis=0),
        "guarantor_recoveries": cash.recoveries.sum(axis=(0, 1)),
        "provider_payments": (cash.provider_payments + cash.provider_outcome_payments).sum(axis=0),
        "outcome_payments_due": cash.outcome_payments_due.sum(axis=0),
        "defaulted_by_payer": cash.defaulted_by_payer.sum(axis=0),
        "retained_by_payer": cash.retained_by_payer.sum(axis=0),
        "outcome_payments": cash.outcome_payments.sum(axis=0),
        "recycled": cash.recycled.sum(axis=0),
        "gross_savings": cash.gross_savings.sum(axis=0),
        "payer_fees": np.broadcast_to(cash.payer_fees, (n_paths, T)).sum(axis=0),
        "net_savings": cash.net_savings.sum(axis=0),
    }
    monthly = None
    if keep_monthly:
        monthly = {
            "investor_cumulative_net": np.cumsum(cash.investor_net, axis=1),
            "payer_cumulative_net": np.cumsum(cash.net_savings, axis=1),
            "treated_costs": monthly_costs(contract, outcomes.treated.costs, np.ones(len(contract.cohorts))),
            "counterfactual_costs": monthly_costs(contract, outcomes.comparison.costs, outcomes.comparison_scale),
        }
        monthly = {k: v.astype(np.float32) for k, v in monthly.items()}
        assert set(monthly) == set(MONTHLY_SERIES)
    # Sums over the block's paths of the counts at each measurement (outcome x measurement).
    measured_sums = {"treated": cash.measured_treated.sum(axis=0),
                     "counterfactual": cash.measured_counterfactual.sum(axis=0)}
    return {"paths": paths, "shares": shares, "ledger_sums": ledger_sums, "monthly": monthly,
            "budget": path_years(contract, cash, 0 if standing is None else standing.month), "measured_sums": measured_sums, "draws": outcomes.draws}


def _load_kernels(contract: Contract, n_paths: int) -> None:
    """Run one throw-away block of ``n_paths`` in this process, before the workers are forked.

    It loads every compiled kernel a block of that size uses (the journeys' kernels, the capital
    stack's, IRR's) here, once: the forked workers share those pages with this process instead of
    each loading a private copy (about 90 MiB per worker for Colour Kitchen), and start at once.
    Its seed is its own, and its numbers are dropped: the run's results do not depend on it.
    """
    with _single_threaded_blas():
        _run_block(contract, np.random.SeedSequence(0), n_paths, False)


def simulate(
    contract: Contract,
    n_paths: int = 10_000,
    seed: int | np.random.SeedSequence | None = None,
    workers: int | None = None,
    progress=None,
    standing=None,
) -> Results:
    """Simulate ``n_paths`` futures of the contract.

    Parameters
    ----------
    contract : Contract
        From :func:`sibsim.load_scenario`.
    n_paths : int
        Monte Carlo paths; each draws its own journey probabilities.
    seed : int, SeedSequence or None
        Same seed, same numbers.  None draws fresh entropy, recorded in
        ``Results.seed_entropy`` so the run can be repeated.
    workers : int or None
        Processes to use; None picks all cores for large runs.  Results do not
        depend on it.
    progress : callable or None
        Called as ``progress(paths_done, n_paths)`` after each block.
    standing : sibsim.reforecast.Standing or None
        Re-forecast from where the contract stands (a census at month ``m`` and the counts
        measured up to it; :func:`sibsim.reforecast.reforecast`): every path keeps the past and
        simulates months ``m`` on only.

    Returns
    -------
    Results

    Raises
    ------
    InsufficientMemoryError
        Before anything runs, when :func:`estimate_memory` exceeds :func:`available_memory`.
    """
    if not isinstance(n_paths, (int, np.integer)) or isinstance(n_paths, bool) or n_paths < 1:
        raise ValueError(f"n_paths: must be a positive integer, got {n_paths!r}")
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    # Spawn from a copy: the caller's SeedSequence is left untouched, so reusing it repeats the run.
    seq = np.random.SeedSequence(seq.entropy, spawn_key=seq.spawn_key, pool_size=seq.pool_size)
    size = block_size(contract)
    n_blocks = -(-n_paths // size)
    workers = _worker_count(n_paths, n_blocks, workers)
    check_memory(contract, n_paths, workers)  # before anything is allocated
    seeds = seq.spawn(n_blocks)
    counts = [min(size, n_paths - b * size) for b in range(n_blocks)]
    keep = [b * size < MONTHLY_PATHS_KEPT for b in range(n_blocks)]

    kept = sum(c for c, k in zip(counts, keep) if k)
    assembler = BlockAssembler(n_paths, kept_paths=kept)
    if workers == 1:
        with _single_threaded_blas():
            for b in range(n_blocks):
                assembler.add(_run_block(contract, seeds[b], counts[b], keep[b], standing))
                if progress:
                    progress(sum(counts[: b + 1]), n_paths)
    else:
        _load_kernels(contract, counts[0])
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(_run_block, contract, seeds[b], counts[b], keep[b], standing) for b in range(n_blocks)]
            for b in range(n_blocks):  # in block order: results independent of timing
                assembler.add(futures[b].result())
                futures[b] = None  # drop the block's arrays once they are copied
                if progress:
                    progress(sum(counts[: b + 1]), n_paths)
    return assembler.results(contract, seed_entropy=seq.entropy, spawn_key=seq.spawn_key, block_size=size)
