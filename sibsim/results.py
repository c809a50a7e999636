"""The result of a simulation run: per-path measures, expected ledgers, monthly fans, plots."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .contracts import Contract
from .metrics import summarise

#: Monthly per-path series kept for fan charts and outflow curves (first paths only).
MONTHLY_SERIES = (
    "investor_cumulative_net",
    "payer_cumulative_net",
    "treated_off_benefits",
    "counterfactual_off_benefits",
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
        Mean over all paths of each monthly ledger, EUR, indexed by month.
    monthly : dict of str -> ndarray (kept paths, months), float32
        Per-path monthly series for the first paths (fan charts).
    seed_entropy : int
        Entropy of the run's SeedSequence: ``simulate(..., seed=seed_entropy)`` repeats it.
    """

    contract: Contract
    paths: pd.DataFrame
    outcome_shares: dict
    expected_ledgers: pd.DataFrame
    monthly: dict
    seed_entropy: int
    spawn_key: tuple = ()
    block_size: int = 0
    _summary: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def from_blocks(cls, contract: Contract, blocks: list[dict], n_paths: int, seed_entropy, spawn_key,
                    block_size: int) -> "Results":
        paths = pd.concat([b["paths"] for b in blocks], ignore_index=True)
        shares = {k: np.concatenate([b["shares"][k] for b in blocks]) for k in blocks[0]["shares"]}
        sums = {k: sum(b["ledger_sums"][k] for b in blocks) for k in blocks[0]["ledger_sums"]}
        ledgers = pd.DataFrame({k: v / n_paths for k, v in sums.items()})
        ledgers.index.name = "month"
        kept = [b["monthly"] for b in blocks if b["monthly"] is not None]
        monthly = {k: np.concatenate([m[k] for m in kept]) for k in MONTHLY_SERIES}
        return cls(contract, paths, shares, ledgers, monthly, seed_entropy, tuple(spawn_key), block_size)

    @property
    def n_paths(self) -> int:
        return len(self.paths)

    def summary(self) -> pd.DataFrame:
        """Headline estimates with Monte Carlo standard errors (see :func:`sibsim.metrics.summarise`)."""
        if self._summary is None:
            self._summary = summarise(self.paths, self.outcome_shares)
        return self._summary

    def to_frame(self) -> pd.DataFrame:
        """Per-path measures (same as ``paths``)."""
        return self.paths

    def cashflow_quantiles(self) -> pd.DataFrame:
        """Monthly quantiles of cumulative cash per party, in long format.

        Columns: month, party (``investors``: distributions less calls;
        ``payer``: savings less payments and fees), mean and the quantiles in
        :data:`QUANTILES` of the cumulative position, EUR.
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
    def plot_irr(self, ax=None):
        from .plots import plot_irr_distribution
        return plot_irr_distribution(self, ax=ax)

    def plot_cash_fan(self, ax=None, party: str = "investors"):
        from .plots import plot_cash_fan
        return plot_cash_fan(self, ax=ax, party=party)

    def plot_outflow(self, ax=None):
        from .plots import plot_outflow
        return plot_outflow(self, ax=ax)

    def plot_net_savings(self, ax=None):
        from .plots import plot_net_savings
        return plot_net_savings(self, ax=ax)
