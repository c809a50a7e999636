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

import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import numpy as np

from .cashflows import settle
from .contracts import OUTCOMES, Contract
from .metrics import path_metric_arrays, within_term
from .montecarlo import block_size, simulate_outcomes
from .results import MONTHLY_SERIES, BlockAssembler, Results

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


def _init_worker() -> None:
    """Worker processes: one BLAS thread, and freed block memory kept for the next block."""
    blas = _openblas()
    if blas is not None:
        blas[1](1)
    _keep_freed_memory()


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


def _run_block(contract: Contract, seed: np.random.SeedSequence, n_paths: int, keep_monthly: bool) -> dict:
    """Simulate, settle and measure one block; returns plain numpy arrays (cheap to send between processes)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    outcomes = simulate_outcomes(contract, n_paths, rng)
    cash = settle(contract, outcomes)
    term = contract.term_months
    within = within_term(outcomes.treated, term), within_term(outcomes.comparison, term)  # (P, C, 4) each
    paths = path_metric_arrays(contract, cash, outcomes, within)
    shares = {}
    for group_name, group, total in (("treated", outcomes.treated, within[0]),
                                     ("comparison", outcomes.comparison, within[1])):
        reached = total.sum(axis=1) / group.sizes.sum()
        for k, outcome in enumerate(OUTCOMES):
            shares[f"{group_name}_{outcome}"] = reached[:, k]
    T = contract.horizon_months
    ledger_sums = {
        "capital_calls": cash.capital_calls.sum(axis=1).sum(axis=0),
        "distributions": cash.distributions.sum(axis=1).sum(axis=0),
        "guarantee_payouts": cash.guarantee_payouts.sum(axis=1).sum(axis=0),
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
            "treated_off_benefits": outcomes.treated.employed.sum(axis=1),
            "counterfactual_off_benefits": outcomes.counterfactual_employed().sum(axis=1),
        }
        monthly = {k: v.astype(np.float32) for k, v in monthly.items()}
        assert set(monthly) == set(MONTHLY_SERIES)
    return {"paths": paths, "shares": shares, "ledger_sums": ledger_sums, "monthly": monthly}


def simulate(
    contract: Contract,
    n_paths: int = 10_000,
    seed: int | np.random.SeedSequence | None = None,
    workers: int | None = None,
    progress=None,
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

    Returns
    -------
    Results
    """
    if not isinstance(n_paths, (int, np.integer)) or isinstance(n_paths, bool) or n_paths < 1:
        raise ValueError(f"n_paths: must be a positive integer, got {n_paths!r}")
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    # Spawn from a copy: the caller's SeedSequence is left untouched, so reusing it repeats the run.
    seq = np.random.SeedSequence(seq.entropy, spawn_key=seq.spawn_key, pool_size=seq.pool_size)
    size = block_size(contract)
    n_blocks = -(-n_paths // size)
    seeds = seq.spawn(n_blocks)
    counts = [min(size, n_paths - b * size) for b in range(n_blocks)]
    keep = [b * size < MONTHLY_PATHS_KEPT for b in range(n_blocks)]
    if workers is None:
        workers = min(os.cpu_count() or 1, n_blocks) if n_paths >= PARALLEL_MIN_PATHS else 1
    workers = max(1, min(int(workers), n_blocks))

    kept = sum(c for c, k in zip(counts, keep) if k)
    assembler = BlockAssembler(n_paths, kept_paths=kept)
    if workers == 1:
        with _single_threaded_blas():
            for b in range(n_blocks):
                assembler.add(_run_block(contract, seeds[b], counts[b], keep[b]))
                if progress:
                    progress(sum(counts[: b + 1]), n_paths)
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
            futures = [pool.submit(_run_block, contract, seeds[b], counts[b], keep[b]) for b in range(n_blocks)]
            for b in range(n_blocks):  # in block order: results independent of timing
                assembler.add(futures[b].result())
                futures[b] = None  # drop the block's arrays once they are copied
                if progress:
                    progress(sum(counts[: b + 1]), n_paths)
    return assembler.results(contract, seed_entropy=seq.entropy, spawn_key=seq.spawn_key, block_size=size)
