"""Run a whole simulation: Contract -> (blocks of paths) -> Results.

Paths are cut into fixed blocks (size set by the contract, see
:func:`sibsim.montecarlo.block_size`).  Block ``b`` always uses child ``b`` of
``SeedSequence(seed)``, so a run is bit-identical whether its blocks run in
one process or several.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .cashflows import settle
from .contracts import OUTCOMES, Contract
from .metrics import path_metrics
from .montecarlo import block_size, simulate_outcomes
from .results import MONTHLY_SERIES, Results

#: Paths whose monthly series (fan charts, outflow curves) are kept in memory.
MONTHLY_PATHS_KEPT = 100_000
#: Below this many paths a single process is faster than starting workers.
PARALLEL_MIN_PATHS = 20_000


def _run_block(contract: Contract, seed: np.random.SeedSequence, n_paths: int, keep_monthly: bool) -> dict:
    rng = np.random.Generator(np.random.PCG64(seed))
    outcomes = simulate_outcomes(contract, n_paths, rng)
    cash = settle(contract, outcomes)
    paths = path_metrics(contract, cash, outcomes)
    term = contract.term_months
    shares = {}
    for group_name, group in (("treated", outcomes.treated), ("comparison", outcomes.comparison)):
        reached = group.events[:, :, :, :term].sum(axis=(1, 3)) / group.sizes.sum()
        for k, outcome in enumerate(OUTCOMES):
            shares[f"{group_name}_{outcome}"] = reached[:, k]
    ledgers = {
        "capital_calls": cash.capital_calls.sum(axis=1),
        "distributions": cash.distributions.sum(axis=1),
        "guarantee_payouts": cash.guarantee_payouts.sum(axis=1),
        "outcome_payments_due": cash.outcome_payments_due,
        "defaulted_by_payer": cash.defaulted_by_payer,
        "retained_by_payer": cash.retained_by_payer,
        "outcome_payments": cash.outcome_payments,
        "recycled": cash.recycled,
        "gross_savings": cash.gross_savings,
        "payer_fees": np.broadcast_to(cash.payer_fees, (n_paths, contract.horizon_months)),
        "net_savings": cash.net_savings,
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
    return {
        "paths": paths,
        "shares": shares,
        "ledger_sums": {k: v.sum(axis=0) for k, v in ledgers.items()},
        "monthly": monthly,
    }


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

    blocks = []
    if workers == 1:
        for b in range(n_blocks):
            blocks.append(_run_block(contract, seeds[b], counts[b], keep[b]))
            if progress:
                progress(sum(counts[: b + 1]), n_paths)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_block, contract, seeds[b], counts[b], keep[b]) for b in range(n_blocks)]
            for b, future in enumerate(futures):  # in block order: results independent of timing
                blocks.append(future.result())
                if progress:
                    progress(sum(counts[: b + 1]), n_paths)
    return Results.from_blocks(contract, blocks, n_paths=n_paths, seed_entropy=seq.entropy,
                               spawn_key=seq.spawn_key, block_size=size)
