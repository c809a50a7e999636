"""Side-by-side comparison of scenarios (e.g. with and without a guarantee).

Scenarios are simulated with the same seed: where their structure is the same (same
cohorts and priors) the paths share their random numbers, so differences between
scenarios are not Monte Carlo noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .contracts import Contract
from .simulation import DEFAULT_SEED, simulate

#: Per-path measures that can be overlaid, with axis labels (``{currency}``: the scenarios' currency).
OVERLAYS = {
    "investor_irr": "investor IRR (per year)",
    "investor_moic": "investor multiple (MOIC)",
    "net_savings": "payer net savings ({currency})",
    "outcome_payments": "outcome payments ({currency})",
}


def _currency(results) -> str:
    """The currency of the compared runs (``EUR/GBP`` when they differ)."""
    currencies = list(dict.fromkeys(r.contract.currency for r in results))
    return "/".join(currencies)


def compare(contracts: list[Contract], n_paths: int = 10_000, seed: int | None = DEFAULT_SEED, workers=None,
            labels: list[str] | None = None):
    """Simulate each contract with the same seed and line up their summaries.

    Parameters
    ----------
    contracts : list of Contract
    n_paths, seed, workers
        As for :func:`sibsim.simulate`; the seed is shared (common random numbers).
    labels : list of str, optional
        Column names; default: the contracts' titles.

    Returns
    -------
    table : DataFrame
        Index: summary metrics; columns: ``(label, "estimate")`` and ``(label, "std_error")``.
    results : list of Results
    """
    labels = labels or [c.title for c in contracts]
    if len(set(labels)) != len(labels):
        labels = [f"{i + 1}. {label}" for i, label in enumerate(labels)]
    results = [simulate(c, n_paths=n_paths, seed=seed, workers=workers) for c in contracts]
    parts = {label: r.summary()[["estimate", "std_error"]] for label, r in zip(labels, results)}
    # Deals define their own outcomes: every metric of any scenario has a row (empty where a deal
    # has no such outcome), in the order they first appear.
    order = list(dict.fromkeys(m for part in parts.values() for m in part.index))
    table = pd.concat(parts, axis=1).reindex(order)
    units = [r.summary()["unit"] for r in results]
    # One unit per metric; money of scenarios in different currencies shows both (EUR/GBP).
    unit = pd.Series(["/".join(dict.fromkeys(u[m] for u in units if m in u.index)) for m in order], index=order)
    table.insert(0, ("unit", ""), unit)
    return table, results


def plot_overlay(results, labels: list[str], measure: str = "investor_irr", ax=None):
    """Overlaid histograms of one per-path measure across scenarios; returns the figure."""
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.2))
    fig = ax.figure
    columns = [r.paths[measure].to_numpy(dtype=float) for r in results]
    finite = np.concatenate([c[np.isfinite(c)] for c in columns])
    if finite.size == 0:
        ax.text(0.5, 0.5, f"no finite {measure}", ha="center", transform=ax.transAxes)
        return fig
    lo, hi = np.quantile(finite, [0.001, 0.999])
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 60)
    for label, values in zip(labels, columns):
        values = values[np.isfinite(values)]
        ax.hist(np.clip(values, lo, hi), bins=bins, histtype="step", lw=2, density=True,
                label=f"{label} (mean {values.mean():,.3g})" if values.size else label)
    label = OVERLAYS.get(measure, measure).format(currency=_currency(results))
    ax.set(xlabel=label, ylabel="density", title=f"Compared: {label}")
    ax.legend(frameon=False, fontsize=8)
    return fig
