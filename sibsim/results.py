"""The result of a simulation run: per-path measures, expected ledgers, monthly fans, plots."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .contracts import Contract
from .metrics import path_frame, summarise

#: Monthly per-path series kept for fan charts and outflow curves (first paths only).
MONTHLY_SERIES = (
    "investor_cumulative_net",
    "payer_cumulative_net",
    "treated_costs",
    "counterfactual_costs",
)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass
class Results:
    """What :func:`sibsim.simulate` returns.

    Attributes
    ----------
    contract : Contract
    paths : DataFrame
        One row per path (see :data:`sibsim.metrics.PATH_COLUMNS`).
    outcome_shares : dict of str -> ndarray (paths,)
        Share of each group reaching each outcome within the term.
    expected_ledgers : DataFrame
        Mean over all paths of each monthly ledger (the scenario's currency), indexed by month.
    monthly : dict of str -> ndarray (kept paths, months), float32
        Per-path monthly series for the first paths (fan charts).
    seed_entropy : int
        Entropy of the run's SeedSequence: ``simulate(..., seed=seed_entropy)`` repeats it.
    budget_paths : dict of str -> ndarray (paths, budget years), float32
        Per-path sums per budget year (:func:`sibsim.budget.path_years`).
    expected_measurements : DataFrame
        Mean counts per outcome at each measurement month of the payer: ``outcome``, ``month``,
        ``treated``, ``counterfactual`` (scaled to the treated group) and ``net`` (their difference;
        payments read its positive part, so the payment on these means is not the mean payment).
    draws : str
        Digest of the random numbers each block drew for parameters and journeys
        (:func:`sibsim.montecarlo.state_digest`, block by block): two runs with the same
        digest drew the same numbers for the same paths (common random numbers); "" when
        not known.
    """

    contract: Contract
    paths: pd.DataFrame
    outcome_shares: dict
    expected_ledgers: pd.DataFrame
    monthly: dict
    seed_entropy: int
    spawn_key: tuple = ()
    block_size: int = 0
    draws: str = ""
    budget_paths: dict = field(default_factory=dict)
    expected_measurements: pd.DataFrame | None = None
    #: First month the budget years cover (a re-forecast from a census at that month), else 0.
    budget_from: int = 0
    _summary: pd.DataFrame | None = field(default=None, repr=False)
    _convergence: pd.DataFrame | None = field(default=None, repr=False)
    _budget: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def n_paths(self) -> int:
        return len(self.paths)

    def summary(self) -> pd.DataFrame:
        """Headline estimates with Monte Carlo standard errors (see :func:`sibsim.metrics.summarise`)."""
        if self._summary is None:
            self._summary = summarise(self.paths, self.outcome_shares, self.contract)
        return self._summary

    def convergence(self) -> pd.DataFrame:
        """The headline estimates and their 95 % intervals on the first 100, 200, 500, ... paths
        (:func:`sibsim.convergence.convergence`; computed once)."""
        from .convergence import convergence

        if self._convergence is None:
            self._convergence = convergence(self.paths, self.outcome_shares, self.contract)
        return self._convergence

    def budget(self) -> pd.DataFrame:
        """Per budget year and party: expected cash, its quantiles and the maximum exposure
        (:func:`sibsim.budget.budget_table`; computed once)."""
        from .budget import budget_table

        if self._budget is None:
            self._budget = budget_table(self.contract, self.budget_paths, self.expected_ledgers,
                                        self.budget_from)
        return self._budget

    def plot_budget(self, fig=None, lang: str = "en"):
        """:func:`sibsim.plots.plot_budget`: the payer's payments by date and per budget year; returns the figure."""
        from .plots import plot_budget

        return plot_budget(self, fig=fig, lang=lang)

    def plot_convergence(self, fig=None, lang: str = "en"):
        """:func:`sibsim.convergence.plot_convergence` of :meth:`convergence`; returns the figure."""
        from .convergence import plot_convergence

        return plot_convergence(self.convergence(), fig=fig, currency=self.contract.currency, lang=lang)

    def to_frame(self) -> pd.DataFrame:
        """Per-path measures (same as ``paths``)."""
        return self.paths

    def cashflow_quantiles(self) -> pd.DataFrame:
        """Monthly quantiles of cumulative cash per party, in long format.

        Columns: month, party (``investors``: distributions less calls;
        ``payer``: savings less payments and fees), mean and the quantiles in
        :data:`QUANTILES` of the cumulative position, in the scenario's currency.
        """
        frames = []
        for party, key in (("investors", "investor_cumulative_net"), ("payer", "payer_cumulative_net")):
            series = self.monthly[key].astype(np.float64)
            q = np.quantile(series, QUANTILES, axis=0)
            frame = pd.DataFrame({"month": np.arange(series.shape[1]), "party": party, "mean": series.mean(axis=0)})
            for level, values in zip(QUANTILES, q):
                frame[f"p{int(round(level * 100)):02d}"] = values
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    # --- plots (each takes ax= and returns the figure) ---------------------------------
    def plot_irr(self, ax=None, lang: str = "en"):
        from .plots import plot_irr_distribution
        return plot_irr_distribution(self, ax=ax, lang=lang)

    def plot_cash_fan(self, ax=None, party: str = "investors", lang: str = "en"):
        from .plots import plot_cash_fan
        return plot_cash_fan(self, ax=ax, party=party, lang=lang)

    def plot_outflow(self, ax=None, lang: str = "en"):
        from .plots import plot_outflow
        return plot_outflow(self, ax=ax, lang=lang)

    def plot_net_savings(self, ax=None, lang: str = "en"):
        from .plots import plot_net_savings
        return plot_net_savings(self, ax=ax, lang=lang)


def _first(columns: dict) -> np.ndarray:
    return next(iter(columns.values()))


class BlockAssembler:
    """Collects block results (in block order) into preallocated arrays, so a run never holds
    every block's results and their concatenation at the same time.

    Each block is a dict of numpy arrays: ``paths`` (columns of
    :func:`sibsim.metrics.path_metric_arrays`), ``shares``, ``ledger_sums`` (monthly sums over the
    block's paths) and ``monthly`` (or None).  Ledger sums are added in block order, so the result
    does not depend on how blocks were computed.
    """

    def __init__(self, n_paths: int, kept_paths: int):
        self.n_paths, self.kept_paths = n_paths, kept_paths
        self.position = self.kept_position = 0
        self.paths = self.shares = self.sums = self.monthly = self.budget = self.measured = None
        self.draws = hashlib.sha256()  # each block's draws digest, in block order

    @staticmethod
    def _allocate(columns: dict, n: int) -> dict:
        return {k: np.empty((n,) + v.shape[1:], dtype=v.dtype) for k, v in columns.items()}

    def add(self, block: dict) -> None:
        n = len(_first(block["shares"]))
        if self.paths is None:
            self.paths = self._allocate(block["paths"], self.n_paths)
            self.shares = self._allocate(block["shares"], self.n_paths)
            self.budget = self._allocate(block["budget"], self.n_paths)
            self.sums = {k: 0 for k in block["ledger_sums"]}
            self.measured = {k: 0 for k in block["measured_sums"]}
        self.draws.update(block["draws"].encode())
        a, b = self.position, self.position + n
        for k, v in block["paths"].items():
            self.paths[k][a:b] = v
        for k, v in block["shares"].items():
            self.shares[k][a:b] = v
        for k, v in block["budget"].items():
            self.budget[k][a:b] = v
        for k, v in block["ledger_sums"].items():
            self.sums[k] = self.sums[k] + v
        for k, v in block["measured_sums"].items():
            self.measured[k] = self.measured[k] + v
        self.position = b
        if block["monthly"] is not None:
            if self.monthly is None:
                self.monthly = self._allocate(block["monthly"], self.kept_paths)
            a, b = self.kept_position, self.kept_position + n
            for k, v in block["monthly"].items():
                self.monthly[k][a:b] = v
            self.kept_position = b

    def results(self, contract: Contract, seed_entropy, spawn_key, block_size: int) -> Results:
        if self.position != self.n_paths or self.kept_position != self.kept_paths:
            raise RuntimeError("BlockAssembler: not every block was added")
        paths = path_frame(self.paths)
        self.paths = None
        ledgers = pd.DataFrame({k: v / self.n_paths for k, v in self.sums.items()})
        ledgers.index.name = "month"
        monthly = self.monthly or {k: np.zeros((0, contract.horizon_months), dtype=np.float32) for k in MONTHLY_SERIES}
        return Results(contract, paths, self.shares, ledgers, {k: monthly[k] for k in MONTHLY_SERIES},
                       seed_entropy, tuple(spawn_key), block_size, draws=self.draws.hexdigest(),
                       budget_paths=self.budget, expected_measurements=self._measurements(contract))

    def _measurements(self, contract: Contract) -> pd.DataFrame:
        """Mean counts per outcome at each measurement month (long format)."""
        rows = []
        treated, counterfactual = (np.asarray(self.measured[k], dtype=float) / self.n_paths
                                   for k in ("treated", "counterfactual"))
        for k, outcome in enumerate(contract.outcome_names):
            for m, month in enumerate(contract.payer.measurement_months):
                rows.append((outcome, int(month), treated[k, m], counterfactual[k, m]))
        frame = pd.DataFrame(rows, columns=["outcome", "month", "treated", "counterfactual"])
        frame["net"] = frame["treated"] - frame["counterfactual"]
        return frame
