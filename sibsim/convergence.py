"""How the headline estimates settle as simulated futures are added: a table and a plot.

The estimate of each headline measure and its 95 % interval (estimate +/- 1.96 standard errors,
:mod:`sibsim.estimators`) on the first ``k`` paths of a run, for ``k`` on a 1-2-5 sequence up to
all of them.  Paths are independent and identically distributed (blocks of paths are simulated
from independent seeds, in a fixed order), so the first ``k`` are a sample of ``k`` futures like
any other: the last row is the run's own summary, and a measure whose interval still moves by
more than the reader's tolerance between the last rows needs more paths.
"""

from __future__ import annotations

import textwrap

import pandas as pd

from .estimators import N_BATCHES
from .metrics import summary_statistics

#: Measures followed, in the order shown: (metric, label).
HEADLINE = (
    ("expected_outcome_payments", "expected outcome payments"),
    ("expected_net_savings", "expected net savings of the payer"),
    ("probability_pays_more_than_saves", "chance the payer pays more than it saves"),
    ("expected_moic", "investors' expected multiple"),
    ("probability_of_loss", "investors' chance of a loss"),
    ("median_irr", "investors' median annual return"),
)

#: Two-sided 95 % normal quantile.
Z95 = 1.959963984540054

#: Fewest paths a row is shown for.
FIRST_STEP = 100
#: Fewest paths for the error of a quantile (the median IRR): batch errors need batches of about 100
#: paths (sibsim.estimators); below that the row shows the estimate without an interval.
QUANTILE_FROM = 100 * N_BATCHES
#: Units of probabilities: their intervals are cut to [0, 1].
_BOUNDED = ("probability", "share")


def steps(n_paths: int) -> list[int]:
    """Path counts of the table: 100, 200, 500, 1,000, ... below ``n_paths``, then ``n_paths``."""
    out, base = [], FIRST_STEP
    while base < n_paths:
        out += [k for k in (base, 2 * base, 5 * base) if k < n_paths]
        base *= 10
    return out + [int(n_paths)]


def convergence(paths: pd.DataFrame, outcome_shares: dict, contract, metrics=HEADLINE) -> pd.DataFrame:
    """The estimate, standard error and 95 % interval of each metric on the first ``k`` paths.

    Parameters
    ----------
    paths, outcome_shares, contract
        As :func:`sibsim.metrics.summarise` reads them (``Results.paths``, ``Results.outcome_shares``).
    metrics : sequence of (metric, label)
        Summary metrics to follow (default :data:`HEADLINE`); those the deal lacks are left out.

    Returns
    -------
    DataFrame with columns ``paths``, ``metric``, ``label``, ``estimate``, ``std_error``, ``low``,
    ``high`` (``estimate -/+ 1.96 std_error``, within [0, 1] for probabilities; NaN where the error
    is not defined, and for quantiles below :data:`QUANTILE_FROM` paths) and ``unit``, one row per
    metric and path count (:func:`steps`), in that order.
    """
    rows = []
    for k in steps(len(paths)):
        stats = summary_statistics(paths.iloc[:k], {g: v[:k] for g, v in outcome_shares.items()}, contract)
        by_name = {name: (unit, stat) for _, name, unit, stat in stats}
        for metric, label in metrics:
            if metric not in by_name:
                continue
            unit, stat = by_name[metric]
            est, se = stat.estimate()
            if stat.kind == "quantile" and k < QUANTILE_FROM:
                se = float("nan")
            low, high = est - Z95 * se, est + Z95 * se
            if unit in _BOUNDED:
                low, high = max(low, 0.0), min(high, 1.0)
            rows.append((k, metric, label, est, se, low, high, unit))
    frame = pd.DataFrame(rows, columns=["paths", "metric", "label", "estimate", "std_error", "low", "high", "unit"])
    order = {m: i for i, (m, _) in enumerate(metrics)}
    return frame.sort_values(["metric", "paths"], key=lambda s: s.map(order) if s.name == "metric" else s,
                             kind="stable").reset_index(drop=True)


def plot_convergence(frame: pd.DataFrame, fig=None, currency: str = "EUR", lang: str = "en", labels=None):
    """One panel per metric of :func:`convergence`'s table: the estimate and its 95 % interval
    against the number of futures (log scale), the final estimate dashed; returns the figure."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from .language import Locale
    from .plots import _money

    loc = Locale(lang)
    metrics = list(dict.fromkeys(frame["metric"]))
    cols = 3 if len(metrics) > 4 else 2
    rows = -(-len(metrics) // cols)
    if fig is None:
        fig = Figure(figsize=(4.0 * cols, 3.0 * rows))
    for i, metric in enumerate(metrics):
        part = frame[frame["metric"] == metric]
        ax = fig.add_subplot(rows, cols, i + 1)
        x = part["paths"].to_numpy()
        ax.fill_between(x, part["low"], part["high"], color="#9ecae1", alpha=0.6, lw=0,
                        label="95 %-interval" if loc.dutch else "95 % interval")
        ax.plot(x, part["estimate"], color="#1f5f8b", marker="o", ms=3, lw=1.5,
                label="schatting" if loc.dutch else "estimate")
        ax.axhline(part["estimate"].iloc[-1], color="#52606d", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: loc.number(v)))
        unit = part["unit"].iloc[0]
        if unit in ("probability", "share", "per year"):
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: loc.percent(v, 1)))
        elif unit == "x":
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: loc.number(v, 3) + "x"))  # no offset
        else:
            ax.yaxis.set_major_formatter(FuncFormatter(_money(currency, lang)))
        label = (labels or {}).get(metric, part["label"].iloc[0])
        ax.set_title(textwrap.fill(label, 30), fontsize=9)  # long labels on two lines
        ax.set_xlabel("gesimuleerde toekomsten" if loc.dutch else "simulated futures", fontsize=8)
        ax.tick_params(labelsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if i == 0:
            ax.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return fig
