"""Sweeps: many variants of one scenario on common random numbers (``sibsim sweep``, ``sibsim design``).

An *axis* is a scenario field and the values it takes (``payer.rate_card.diploma=1500,2000,2500``,
or ``LO:HI:N`` for N evenly spaced numbers); a sweep is every combination of the axes' values, each
a variant read as ``--set FIELD=VALUE`` would make it (:mod:`sibsim.whatif`: checked exactly as if
written in the file; a combination the rules refuse is kept in the table with its one-line reason).

Common random numbers.  Every variant is simulated with the same seed, block by block as
:func:`sibsim.simulate` runs it, so path ``i`` of every variant drew the same numbers as far as the
variants agree.  Variants that differ only in settlement terms (prices, caps, return caps,
guarantees, fees, savings share: whatever the journeys and the settlement risks do not read) share
one simulation of the outcomes per block, settled once per variant: the same numbers as simulating
each on its own (tests check it bit for bit), at the cost of one simulation.

Seeds.  Block ``b`` of every variant uses child ``b`` of ``SeedSequence(seed)``: results depend on
neither the order of the variants nor the number of workers (:mod:`sibsim.distributed`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .cashflows import block_totals, settle, settlement_months
from .contracts import Contract
from .errors import ScenarioError
from .estimators import Statistic
from .metrics import path_frame, path_metric_arrays, ranked_irr, scaled_within
from .montecarlo import block_size, simulate_outcomes

#: Metrics of every row of a sweep (summary rows, plus the mean IRR with total losses at -100 %).
METRICS = ("expected_moic", "expected_irr", "median_irr", "probability_of_loss", "expected_outcome_payments",
           "expected_net_savings", "probability_pays_more_than_saves")
#: Most variants a sweep may hold (the product of the axes' lengths).
MAX_VARIANTS = 10_000


@dataclass(frozen=True)
class Axis:
    """A scenario field and the values (TOML texts) it takes."""

    field: str
    values: tuple[str, ...]


def _split_top(text: str) -> list[str]:
    """``text`` split on commas outside brackets, braces and quotes (values may be arrays)."""
    parts, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def parse_axis(text: str, flag: str = "--grid") -> Axis:
    """``FIELD=V1,V2,...`` or ``FIELD=LO:HI:N`` (N numbers from LO to HI, both included).

    Raises :class:`ScenarioError` (one line) for a text that is neither.
    """
    if "=" not in text:
        raise ScenarioError(f"{flag} {text}: must be FIELD=V1,V2,... or FIELD=LO:HI:N")
    field, _, rest = text.partition("=")
    field, rest = field.strip(), rest.strip()
    if not field or not rest:
        raise ScenarioError(f"{flag} {text}: must be FIELD=V1,V2,... or FIELD=LO:HI:N")
    pieces = rest.split(":")
    if len(pieces) == 3 and not rest.startswith(("[", "{", '"', "'")):
        try:
            lo, hi, n = float(pieces[0]), float(pieces[1]), int(pieces[2])
        except ValueError:
            raise ScenarioError(f"{flag} {text}: LO:HI:N must be two numbers and a whole number of points") from None
        if n < 2 or not lo < hi:
            raise ScenarioError(f"{flag} {text}: LO:HI:N needs LO < HI and N >= 2, got {rest}")
        grid = np.linspace(lo, hi, n)
        integral = all(p.strip().lstrip("-").isdigit() for p in pieces[:2]) and np.allclose(grid, np.round(grid))
        values = tuple(str(int(round(v))) if integral else repr(float(v)) for v in grid)
        return Axis(field, values)
    values = tuple(v for v in _split_top(rest))
    if any(not v for v in values):
        raise ScenarioError(f"{flag} {text}: an empty value")
    if len(set(values)) != len(values):
        raise ScenarioError(f"{flag} {text}: a value given twice")
    return Axis(field, values)


@dataclass(frozen=True)
class Variant:
    """One combination of the axes' values: the contract, or why the rules refuse it."""

    values: tuple[str, ...]
    contract: Contract | None
    problem: str = ""


def variants(scenario: str | Path, axes: list[Axis], sets=()) -> list[Variant]:
    """Every combination of the axes' values (first axis slowest), each read as ``--set`` changes."""
    from .whatif import load_whatif

    n = int(np.prod([len(a.values) for a in axes])) if axes else 1
    if n > MAX_VARIANTS:
        raise ScenarioError(f"{scenario}: a sweep of {n:,} variants: at most {MAX_VARIANTS:,} (fewer values per axis)")
    out = []
    for combo in itertools.product(*(a.values for a in axes)):
        changes = list(sets) + [f"{a.field}={v}" for a, v in zip(axes, combo)]
        try:
            out.append(Variant(tuple(combo), load_whatif(scenario, changes, ())))
        except ScenarioError as exc:
            out.append(Variant(tuple(combo), None, exc.problems[0]))
    return out


# --- simulation on common random numbers ---------------------------------------------------------

def simulation_key(contract: Contract) -> tuple:
    """What the outcome simulation of a block reads: variants with equal keys share it."""
    months = tuple(sorted(settlement_months(contract) | {contract.term_months}))
    risks = tuple((p.default_probability, contract.payer_payment_months(j)) for j, p in enumerate(contract.payers))
    return (contract.journey, contract.measures, contract.cohorts, contract.comparison, contract.horizon_months,
            contract.term_months, contract.uncertainty, months, risks, contract.external_stop)


def block_outcomes(contract: Contract, seed: np.random.SeedSequence, n_paths: int):
    """One block's outcomes as :func:`sibsim.simulate` draws them from ``seed`` (totals only, at the
    months settlement reads)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    months = sorted(settlement_months(contract) | {contract.term_months})
    return simulate_outcomes(contract, n_paths, rng, totals_before=months)


def path_arrays(contract: Contract, outcomes) -> dict:
    """``contract`` settled on a block's outcomes: its path metrics, as :func:`sibsim.simulate` gives them."""
    totals = block_totals(contract, outcomes, [contract.term_months])
    cash = settle(contract, outcomes, totals)
    within = tuple(scaled_within(t, contract.outcome_scales) for t in totals.at(contract.term_months))
    return path_metric_arrays(contract, cash, outcomes, within)


#: Per-path columns a sweep's metrics read (what a block sends back when ``reduced``).
SWEEP_COLUMNS = ("investor_moic", "outcome_payments", "net_savings", "ranked_irr")


def sweep_block(contracts: list[Contract], seed: np.random.SeedSequence, n_paths: int,
                reduced: bool = False) -> list[dict]:
    """Block ``seed`` of every contract: per contract, the path metrics :func:`sibsim.simulate` gives
    (``reduced``: only :data:`SWEEP_COLUMNS`, the little a sweep's metrics read, for sending between
    processes)."""
    out: list = [None] * len(contracts)
    groups: dict = {}
    for i, c in enumerate(contracts):
        groups.setdefault(simulation_key(c), []).append(i)
    for idx in groups.values():
        outcomes = block_outcomes(contracts[idx[0]], seed, n_paths)
        for i in idx:
            arrays = path_arrays(contracts[i], outcomes)
            if reduced:
                ranked = ranked_irr(path_frame(arrays))
                arrays = {k: arrays[k] for k in SWEEP_COLUMNS if k != "ranked_irr"} | {"ranked_irr": ranked}
            out[i] = arrays
    return out


def block_plan(contract: Contract, n_paths: int, seed) -> list[tuple[np.random.SeedSequence, int]]:
    """``(seed, paths)`` of each block, as :func:`sibsim.simulate` splits a run."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seq = np.random.SeedSequence(seq.entropy, spawn_key=seq.spawn_key, pool_size=seq.pool_size)
    size = block_size(contract)
    n_blocks = -(-n_paths // size)
    return [(s, min(size, n_paths - b * size)) for b, s in enumerate(seq.spawn(n_blocks))]


def evaluate(contracts: list[Contract], n_paths: int, seed, runner=None, reduced: bool = False) -> list:
    """Per-path metrics of every contract on common random numbers (module notes).

    Contracts are grouped by block size (the blocks must align to share draws); ``runner`` (e.g.
    :func:`sibsim.distributed.block_runner`) maps :func:`sweep_block` over ``(contracts, seed,
    paths, reduced)`` jobs elsewhere; results do not depend on it.  Returns a ``Results.paths``
    frame per contract, or with ``reduced`` a dict of :data:`SWEEP_COLUMNS` arrays.
    """
    if not isinstance(n_paths, (int, np.integer)) or isinstance(n_paths, bool) or n_paths < 1:
        raise ValueError(f"n_paths: must be a positive integer, got {n_paths!r}")
    by_size: dict = {}
    for i, c in enumerate(contracts):
        by_size.setdefault(block_size(c), []).append(i)
    frames: list = [None] * len(contracts)
    for idx in by_size.values():
        group = [contracts[i] for i in idx]
        jobs = [(group, s, n, reduced) for s, n in block_plan(group[0], n_paths, seed)]
        blocks = runner(jobs) if runner is not None else [sweep_block(*job) for job in jobs]
        for k, i in enumerate(idx):
            columns = {key: np.concatenate([b[k][key] for b in blocks]) for key in blocks[0][k]}
            frames[i] = columns if reduced else path_frame(columns)
    return frames


def metrics_of(contract: Contract, columns) -> dict[str, tuple[Statistic, str]]:
    """The sweep's metrics of one variant as statistics (name -> (Statistic, unit)), from its
    :data:`SWEEP_COLUMNS` (or a whole ``Results.paths`` frame), as the run's summary defines them."""
    if isinstance(columns, pd.DataFrame):
        columns = {k: columns[k].to_numpy() for k in SWEEP_COLUMNS if k != "ranked_irr"} | {
            "ranked_irr": ranked_irr(columns)}
    cur = contract.currency
    moic, irr = np.asarray(columns["investor_moic"], dtype=float), np.asarray(columns["ranked_irr"], dtype=float)
    net = np.asarray(columns["net_savings"], dtype=float)
    return {
        "expected_moic": (Statistic.mean(moic), "x"),
        "expected_irr": (Statistic.mean(irr[np.isfinite(irr)]), "per year"),
        "median_irr": (Statistic.quantile(irr, 0.5), "per year"),
        "probability_of_loss": (Statistic.probability(moic < 1 - 1e-12), "probability"),
        "expected_outcome_payments": (Statistic.mean(np.asarray(columns["outcome_payments"], dtype=float)), cur),
        "expected_net_savings": (Statistic.mean(net), cur),
        "probability_pays_more_than_saves": (Statistic.probability(net < 0), "probability"),
    }


def sweep(scenario: str | Path, axes: list[Axis], n_paths: int = 2000, seed=None, runner=None,
          sets=()) -> tuple[pd.DataFrame, list[Variant]]:
    """Every combination of the axes' values, simulated on common random numbers.

    Returns a table, one row per combination: the axes' values, ``feasible`` (the rules accept
    it) and ``problem``, and for each metric of :data:`METRICS` its estimate and ``<metric>_se``.
    """
    vs = variants(scenario, axes, sets)
    ok = [v for v in vs if v.contract is not None]
    frames = evaluate([v.contract for v in ok], n_paths, seed, runner, reduced=True) if ok else []
    by_variant = dict(zip((id(v) for v in ok), frames))
    rows = []
    for v in vs:
        row = {a.field: value for a, value in zip(axes, v.values)}
        row["valid"] = v.contract is not None
        row["problem"] = v.problem
        if v.contract is not None:
            for name, (stat, _unit) in metrics_of(v.contract, by_variant[id(v)]).items():
                row[name], row[f"{name}_se"] = stat.estimate()
        rows.append(row)
    table = pd.DataFrame(rows)
    for name in METRICS:
        if name not in table:
            table[name] = np.nan
            table[f"{name}_se"] = np.nan
    return table, vs
