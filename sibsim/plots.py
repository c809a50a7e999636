"""Figures that summarise risk and return.  Each takes ``ax=`` and returns the figure."""

from __future__ import annotations

import numpy as np


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.2))
        return fig, ax
    return ax.figure, ax


def _money(currency: str):
    """Tick labels such as ``EUR 500k``, ``EUR -1.5M``, ``EUR 0``: short enough not to collide."""
    def fmt(x, _pos=None):
        if abs(x) < 0.5:
            return f"{currency} 0"
        for div, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k"), (1.0, "")):
            if abs(x) >= div:
                text = f"{x / div:,.2f}".rstrip("0").rstrip(".")
                return f"{currency} {text}{suffix}"
        return f"{currency} {x:,.2f}"
    return fmt


def _money_axis(axis, currency: str) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_formatter(FuncFormatter(_money(currency)))
    axis.set_major_locator(MaxNLocator(nbins=7))


def plot_irr_distribution(results, ax=None):
    """Histogram of investor IRR (paths with a defined IRR; total losses and losses in every month at
    -100 %), with P(loss) marked."""
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    from .metrics import ranked_irr

    fig, ax = _axes(ax)
    paths = results.paths
    irr = ranked_irr(paths)
    ok = np.isfinite(irr)
    irr = irr[ok]
    p_loss = float((paths["investor_moic"] < 1 - 1e-12).mean())
    lo = max(np.nanmin(irr), -1.0) if irr.size else -1.0
    bins = np.linspace(lo, max(np.nanmax(irr), 0.0) + 1e-9, 60) if irr.size else 10
    ax.hist(irr[irr < 0], bins=bins, color="#c0392b", alpha=0.85, label=f"loss of capital: P = {p_loss:.1%}")
    ax.hist(irr[irr >= 0], bins=bins, color="#2e86c1", alpha=0.85, label="capital repaid")
    ax.axvline(0.0, color="black", lw=1)
    caps = {i.return_cap for i in results.contract.investors if i.return_cap is not None}
    for cap in caps:
        ax.axvline(cap, color="grey", ls="--", lw=1)
        ax.text(cap, ax.get_ylim()[1] * 0.95, f" cap {cap:.0%}", va="top", fontsize=8, color="grey")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y / len(paths):.0%}"))
    n_undefined = int((~ok).sum())
    note = f"; {n_undefined} without an IRR" if n_undefined else ""
    ax.set(xlabel="investor IRR (per year)", ylabel="share of paths",
           title=f"Investor return, {len(paths):,} paths{note}")
    ax.legend(frameon=False)
    return fig


def plot_cash_fan(results, ax=None, party: str = "investors"):
    """Fan chart of cumulative cash over time: 5-95 % and 25-75 % bands and the median."""
    fig, ax = _axes(ax)
    key = {"investors": "investor_cumulative_net", "payer": "payer_cumulative_net"}[party]
    series = results.monthly[key]
    months = np.arange(series.shape[1])
    q05, q25, q50, q75, q95 = np.quantile(series, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    color = "#2e86c1" if party == "investors" else "#27ae60"
    ax.fill_between(months, q05, q95, color=color, alpha=0.2, label="5-95 %")
    ax.fill_between(months, q25, q75, color=color, alpha=0.4, label="25-75 %")
    ax.plot(months, q50, color=color, lw=2, label="median")
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(results.contract.term_months, color="grey", ls=":", lw=1)
    _money_axis(ax.yaxis, results.contract.currency)
    what = ("distributions less capital calls" if party == "investors"
            else "savings less outcome payments and fees")
    ax.set(xlabel="month", ylabel=f"cumulative {results.contract.currency}",
           title=f"{party.capitalize()}: cumulative {what}")
    ax.legend(frameon=False, loc="upper left")
    return fig


def plot_outflow(results, ax=None):
    """What the payer spends on the participants each month (the cost items of the scenario):
    treated vs counterfactual, median and 5-95 % band. The gap is the payer's gross saving."""
    fig, ax = _axes(ax)
    contract = results.contract
    months = np.arange(contract.horizon_months)
    for key, label, color in (("treated_costs", "treated", "#2e86c1"),
                              ("counterfactual_costs", "counterfactual", "#7f8c8d")):
        series = results.monthly[key]
        lo, mid, hi = np.quantile(series, [0.05, 0.5, 0.95], axis=0) if len(series) else (np.zeros(len(months)),) * 3
        ax.fill_between(months, lo, hi, color=color, alpha=0.2)
        ax.plot(months, mid, color=color, lw=2, label=label)
    ax.axvline(contract.term_months, color="grey", ls=":", lw=1)
    _money_axis(ax.yaxis, contract.currency)
    items = ", ".join(c.title for c in contract.costs) or "no cost items in the scenario"
    ax.set(xlabel="month", ylabel=f"{contract.currency} per month",
           title=f"{contract.payer.name}: spending on participants\n({items}; median, 5-95 %)")
    ax.legend(frameon=False, loc="upper left")
    return fig


def plot_net_savings(results, ax=None):
    """Distribution of the payer's net savings over the horizon, with P(net savings < 0) marked."""
    from matplotlib.ticker import FuncFormatter

    fig, ax = _axes(ax)
    net = results.paths["net_savings"].to_numpy()
    p_neg = float((net < 0).mean())
    ax.hist(net, bins=60, color="#27ae60", alpha=0.85)
    ax.axvline(0, color="#c0392b", lw=1.5, label=f"pays more than it saves: P = {p_neg:.1%}")
    money = _money(results.contract.currency)
    ax.axvline(net.mean(), color="black", ls="--", lw=1, label=f"mean {money(net.mean())}")
    _money_axis(ax.xaxis, results.contract.currency)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y / len(net):.0%}"))
    ax.set(xlabel=f"payer net savings over the horizon ({results.contract.currency})", ylabel="share of paths",
           title=f"{results.contract.payer.name}: net savings")
    ax.legend(frameon=False)
    return fig
