"""Side-by-side comparison of scenarios (e.g. with and without a guarantee), and their differences.

Scenarios are simulated with the same seed.  Where they draw the same random numbers for the
same paths (common random numbers: the same cohorts, groups, priors and journeys, so that only
terms such as prices, caps or guarantees differ) each path of one scenario is the same future
as that path of the other, and the difference between two estimates is measured on paired
paths: what is common cancels, and its Monte Carlo error is that of the differences
(:meth:`sibsim.estimators.Statistic.difference`).  Whether they did is read from the runs
(:attr:`sibsim.results.Results.draws`), never assumed; where they did not, the differences'
standard errors treat the runs as independent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .contracts import Contract
from .metrics import summary_statistics
from .simulation import DEFAULT_SEED, simulate

#: Per-path measures that can be overlaid, with axis labels (``{currency}``: the scenarios' currency;
#: ``{payer}``: the payer's name, or "the payer" when the scenarios have different payers).
OVERLAYS = {
    "investor_irr": "investors' annual return (IRR)",
    "investor_moic": "investors' multiple (money received per unit paid in)",
    "net_savings": "{payer}: net savings ({currency})",
    "outcome_payments": "{payer}: outcome payments ({currency})",
}


def _currency(results) -> str:
    """The currency of the compared runs (``EUR/GBP`` when they differ)."""
    currencies = list(dict.fromkeys(r.contract.currency for r in results))
    return "/".join(currencies)


def shares_random_numbers(result, base) -> bool:
    """Whether ``result`` drew the same random numbers as ``base`` for the same paths (same seed,
    same number of paths and the same draws block by block, :attr:`sibsim.results.Results.draws`)."""
    return (bool(result.draws) and result.draws == base.draws and result.n_paths == base.n_paths
            and result.seed_entropy == base.seed_entropy and tuple(result.spawn_key) == tuple(base.spawn_key))


def differences(result, base) -> pd.DataFrame:
    """Each summary metric of ``result`` minus ``base``'s, with the difference's standard error.

    Paired path by path when the runs share their random numbers (:func:`shares_random_numbers`),
    else as independent runs.  Metrics only one of the two deals has are left out.

    Returns
    -------
    DataFrame indexed by metric, columns ``difference`` and ``std_error``.
    """
    paired = shares_random_numbers(result, base)
    mine = {name: stat for _, name, _, stat in summary_statistics(result.paths, result.outcome_shares, result.contract)}
    rows = []
    for _, name, _, stat in summary_statistics(base.paths, base.outcome_shares, base.contract):
        if name in mine:
            rows.append((name, *mine[name].difference(stat, paired)))
    return pd.DataFrame(rows, columns=["metric", "difference", "std_error"]).set_index("metric")


def compare(contracts: list[Contract], n_paths: int = 10_000, seed: int | None = DEFAULT_SEED, workers=None,
            labels: list[str] | None = None):
    """Simulate each contract with the same seed, line up their summaries and their differences
    from the first (the base).

    Parameters
    ----------
    contracts : list of Contract
        Two or more, in one currency; the first is the base of the differences.
    n_paths, seed, workers
        As for :func:`sibsim.simulate`; the seed is shared (common random numbers).
    labels : list of str, optional
        Column names; default: the contracts' titles.

    Returns
    -------
    table : DataFrame
        Index: summary metrics; columns: ``("unit", "")``, then per scenario ``(label, "estimate")``
        and ``(label, "std_error")``, and for each scenario after the first ``(label, "difference")``
        and ``(label, "difference_std_error")``: its estimate minus the base's (:func:`differences`).
        ``table.attrs["common_random_numbers"]``: label -> whether it drew the base's random numbers.
    results : list of Results

    Raises
    ------
    ValueError
        Fewer than two contracts, or contracts in different currencies (their amounts cannot be
        set side by side or subtracted).
    """
    if len(contracts) < 2:
        raise ValueError(f"compare: two or more scenarios are needed, got {len(contracts)}")
    currencies = list(dict.fromkeys(c.currency for c in contracts))
    if len(currencies) > 1:
        raise ValueError(f"compare: the scenarios are in different currencies ({', '.join(currencies)}): "
                         "their amounts cannot be compared")
    labels = labels or [c.title for c in contracts]
    if len(set(labels)) != len(labels):
        labels = [f"{i + 1}. {label}" for i, label in enumerate(labels)]
    results = [simulate(c, n_paths=n_paths, seed=seed, workers=workers) for c in contracts]
    parts = {}
    for i, (label, r) in enumerate(zip(labels, results)):
        part = r.summary()[["estimate", "std_error"]]
        if i:
            diff = differences(r, results[0]).rename(columns={"std_error": "difference_std_error"})
            part = part.join(diff, how="left")
        parts[label] = part
    # Deals define their own outcomes: every metric of any scenario has a row (empty where a deal
    # has no such outcome), in the order they first appear.
    order = list(dict.fromkeys(m for part in parts.values() for m in part.index))
    table = pd.concat(parts, axis=1).reindex(order)
    units = [r.summary()["unit"] for r in results]
    unit = pd.Series(["/".join(dict.fromkeys(u[m] for u in units if m in u.index)) for m in order], index=order)
    table.insert(0, ("unit", ""), unit)
    table.attrs["common_random_numbers"] = {label: shares_random_numbers(r, results[0])
                                            for label, r in zip(labels, results)}
    return table, results


def flat_columns(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`compare`'s table with one header row (``unit``, ``<label>: estimate`` ...), as compare.csv holds it."""
    flat = table.copy()
    flat.columns = [label if not stat else f"{label}: {stat}" for label, stat in table.columns]
    flat.index.name = "metric"
    return flat


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
    from matplotlib.ticker import FuncFormatter, NullFormatter

    from .plots import _money, _percent_axis, _plain

    lo, hi = np.quantile(finite, [0.001, 0.999])
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 60)
    currency = _currency(results)
    if measure == "investor_irr":
        shown = lambda v: f"{v * 100:.1f} %"  # noqa: E731
    elif measure == "investor_moic":
        shown = lambda v: f"{v:.3f}x"  # noqa: E731
    else:
        shown = _money(currency)
    for label, values in zip(labels, columns):
        values = values[np.isfinite(values)]
        ax.hist(np.clip(values, lo, hi), bins=bins, histtype="step", lw=2, density=True,
                label=_plain(f"{label} (average {shown(values.mean())})") if values.size else _plain(label))
    payers = {r.contract.payer.name for r in results}
    payer = payers.pop() if len(payers) == 1 else "the payer"
    label = OVERLAYS.get(measure, measure.replace("_", " ")).format(currency=currency, payer=payer)
    if measure == "investor_irr":
        _percent_axis(ax.xaxis)
    elif measure == "investor_moic":
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2f}x"))
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(_money(currency)))  # never an offset such as 1e6
    ax.yaxis.set_major_formatter(NullFormatter())  # a density's scale means nothing to a reader
    ax.set(xlabel=_plain(label), ylabel="how often (density)", title=_plain(f"Compared: {label}"))
    ax.legend(frameon=False, fontsize=8)
    return fig
