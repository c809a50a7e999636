"""Figures that summarise risk and return.  Each takes ``ax=`` (or ``fig=``) and ``lang=`` and
returns the figure.

Titles name the payer and the investors; axes read in money (``EUR 500k``, never an offset such as
``1e6``), percentages and, when the scenario gives ``meta.start``, calendar years; no label is an
identifier (``job_with_diploma`` reads ``job with diploma``).  ``lang="nl"`` writes every label in
Dutch, with Dutch numbers (``EUR 1,5 mln``, ``12,5 %``).
"""

from __future__ import annotations

import numpy as np

from .language import Locale

#: Every label of every figure, per language.
LABELS = {
    "en": {
        "loss": "loss of capital: P = {p}", "repaid": "capital repaid", "cap": " cap {cap}",
        "irr_x": "investors' annual return (IRR)", "share": "share of futures",
        "irr_title": "{investors}: annual return over {n} futures{note}", "no_irr": "; {k} without a return",
        "band90": "90 % of futures", "band50": "middle half", "median": "middle future",
        "investors_fan": "{investors}: money received less paid in, to date",
        "payer_fan": "{payer}: savings less payments and costs, to date", "cumulative": "to date ({cur})",
        "term_end": "end of term", "treated": "with the programme", "counterfactual": "without (estimate)",
        "outflow_title": "{payer}: spending on participants\n({items}; middle future, 90 % band)",
        "no_items": "no cost items in the scenario", "per_month": "{cur} a month",
        "pays_more": "pays more than it saves: P = {p}", "mean": "average {v}",
        "net_x": "{payer}: net savings over the whole period ({cur})", "net_title": "{payer}: net savings",
        "budget_left": "Outcome payments by {payer}\n(average, month by month)",
        "budget_right": "All that {payer} {verb} per budget year\n(outcome payments, fees, guarantees)",
        "pays": "pays", "pay": "pay", "the_payers": "the payers", "average": "average",
        "p90": "P90: exceeded 1 year in 10", "p95": "P95: 1 year in 20", "month": "contract month",
        "year_short": "yr {k}", "investors": "Investors",
    },
    "nl": {
        "loss": "verlies op de inleg: kans {p}", "repaid": "inleg terugbetaald", "cap": " plafond {cap}",
        "irr_x": "jaarlijks rendement van de investeerders (IRR)", "share": "aandeel van de toekomsten",
        "irr_title": "{investors}: jaarrendement over {n} toekomsten{note}", "no_irr": "; {k} zonder rendement",
        "band90": "90 % van de toekomsten", "band50": "middelste helft", "median": "middelste toekomst",
        "investors_fan": "{investors}: ontvangen min ingelegd, tot dan toe",
        "payer_fan": "{payer}: besparing min betalingen en kosten, tot dan toe", "cumulative": "tot dan toe ({cur})",
        "term_end": "einde looptijd", "treated": "met het programma", "counterfactual": "zonder (schatting)",
        "outflow_title": "{payer}: uitgaven aan deelnemers\n({items}; middelste toekomst, 90 %-band)",
        "no_items": "geen kostenposten in het scenario", "per_month": "{cur} per maand",
        "pays_more": "betaalt meer dan het bespaart: kans {p}", "mean": "gemiddeld {v}",
        "net_x": "{payer}: nettobesparing over de hele periode ({cur})", "net_title": "{payer}: nettobesparing",
        "budget_left": "Uitkomstbetalingen door {payer}\n(gemiddeld, per maand)",
        "budget_right": "Alles wat {payer} {verb} per begrotingsjaar\n(uitkomstbetalingen, kosten, garanties)",
        "pays": "betaalt", "pay": "betalen", "the_payers": "de betalers", "average": "gemiddeld",
        "p90": "P90: 1 op 10 jaren hoger", "p95": "P95: 1 op 20", "month": "contractmaand",
        "year_short": "jr {k}", "investors": "Investeerders",
    },
}


def _labels(lang: str) -> dict:
    if lang not in LABELS:
        raise ValueError(f"lang: must be one of {', '.join(LABELS)}, got {lang!r}")
    return LABELS[lang]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.2))
        return fig, ax
    return ax.figure, ax


def _plain(text: str) -> str:
    """A name from the scenario as matplotlib text: a ``$`` would otherwise start mathtext."""
    return str(text).replace("$", r"\$")


def _wrap(title: str, width: int = 60) -> str:
    """A title on as many lines as it needs (each line of it at most ``width`` characters)."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in title.split("\n"))


def words(name: str) -> str:
    """An identifier as words: ``job_with_diploma`` -> ``job with diploma``."""
    return str(name).replace("_", " ")


def investors_name(contract, lang: str = "en") -> str:
    """The investors by name: ``Start Foundation and Rabobank Foundation`` (``en`` in Dutch); empty
    for more than three (the figure then says "Investors")."""
    names = list(dict.fromkeys(i.holder for i in contract.investors))
    if not names or len(names) > 3:
        return ""
    also = " en " if lang == "nl" else " and "
    return also.join(names) if len(names) < 3 else f"{names[0]}, {names[1]}{also}{names[2]}"


def _money(currency: str, lang: str = "en"):
    """Tick labels such as ``EUR 500k``, ``EUR -1.5M`` (``EUR 1,5 mln`` in Dutch), ``EUR 0``."""
    loc = Locale(lang)
    suffixes = ((1e9, " mld"), (1e6, " mln"), (1e3, "k"), (1.0, "")) if loc.dutch else \
        ((1e9, "bn"), (1e6, "M"), (1e3, "k"), (1.0, ""))

    def fmt(x, _pos=None):
        if abs(x) < 0.5:
            return f"{currency} 0"
        for div, suffix in suffixes:
            if abs(x) >= div:
                text = loc.number(x / div, 2)
                dec = "," if loc.dutch else "."
                if dec in text:
                    text = text.rstrip("0").rstrip(dec)
                return f"{currency} {text}{suffix}"
        return f"{currency} {loc.number(x, 2)}"
    return fmt


def _money_axis(axis, currency: str, lang: str = "en") -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.set_major_formatter(FuncFormatter(_money(currency, lang)))
    axis.set_major_locator(MaxNLocator(nbins=7))


def _percent_axis(axis, lang: str = "en", decimals: int = 0) -> None:
    from matplotlib.ticker import FuncFormatter

    loc = Locale(lang)
    axis.set_major_formatter(FuncFormatter(lambda v, _: loc.percent(v, decimals)))


def _month_axis(ax, contract, lang: str = "en") -> None:
    """Contract months on the x axis as calendar years (a tick at each January) when the scenario
    gives ``meta.start``, else as contract months."""
    from .budget import budget_years

    years = budget_years(contract)
    t = _labels(lang)
    if years.basis != "calendar":
        ax.set_xlabel(t["month"])
        return
    ticks = [k for k in range(len(years)) if k > 0 or years.last[0] - years.first[0] >= 4]
    ax.set_xticks([years.first[k] for k in ticks], [str(years.years[k]) for k in ticks])
    ax.set_xlabel("")


def plot_irr_distribution(results, ax=None, lang: str = "en"):
    """Histogram of investor IRR (paths with a defined IRR; total losses and losses in every month at
    -100 %), with P(loss) marked; the axis spans the returns simulated."""
    from matplotlib.ticker import FuncFormatter

    from .metrics import ranked_irr

    t, loc = _labels(lang), Locale(lang)
    fig, ax = _axes(ax)
    paths = results.paths
    irr = ranked_irr(paths)
    ok = np.isfinite(irr)
    irr = irr[ok]
    p_loss = float((paths["investor_moic"] < 1 - 1e-12).mean())
    lo = max(np.nanmin(irr), -1.0) if irr.size else -1.0
    hi = max(np.nanmax(irr), 0.0) if irr.size else 0.1
    bins = np.linspace(lo, hi + 1e-9, 60) if irr.size else 10
    ax.hist(irr[irr < 0], bins=bins, color="#c0392b", alpha=0.85, label=t["loss"].format(p=loc.percent(p_loss)))
    ax.hist(irr[irr >= 0], bins=bins, color="#2e86c1", alpha=0.85, label=t["repaid"])
    ax.axvline(0.0, color="black", lw=1)
    caps = {i.return_cap for i in results.contract.investors if i.return_cap is not None}
    for cap in caps:
        ax.axvline(cap, color="grey", ls="--", lw=1)
        ax.text(cap, ax.get_ylim()[1] * 0.95, t["cap"].format(cap=loc.percent(cap, 0)), va="top", fontsize=8,
                color="grey")
    pad = 0.03 * (hi - lo or 0.1)
    ax.set_xlim(lo - pad, max([hi] + list(caps)) + pad)  # the data, not the histogram's empty ends
    _percent_axis(ax.xaxis, lang)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: loc.percent(y / len(paths), 0)))
    n_undefined = int((~ok).sum())
    note = t["no_irr"].format(k=loc.number(n_undefined)) if n_undefined else ""
    who = _plain(investors_name(results.contract, lang) or t["investors"])
    ax.set(xlabel=t["irr_x"], ylabel=t["share"],
           title=_wrap(t["irr_title"].format(investors=who, n=loc.number(len(paths)), note=note)))
    ax.legend(frameon=False)
    return fig


def plot_cash_fan(results, ax=None, party: str = "investors", lang: str = "en"):
    """Fan chart of cumulative cash over time: 5-95 % and 25-75 % bands and the median."""
    t = _labels(lang)
    fig, ax = _axes(ax)
    contract = results.contract
    key = {"investors": "investor_cumulative_net", "payer": "payer_cumulative_net"}[party]
    series = results.monthly[key]
    months = np.arange(series.shape[1])
    q05, q25, q50, q75, q95 = np.quantile(series, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    color = "#2e86c1" if party == "investors" else "#27ae60"
    ax.fill_between(months, q05, q95, color=color, alpha=0.2, label=t["band90"])
    ax.fill_between(months, q25, q75, color=color, alpha=0.4, label=t["band50"])
    ax.plot(months, q50, color=color, lw=2, label=t["median"])
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(contract.term_months, color="grey", ls=":", lw=1, label=t["term_end"])
    _money_axis(ax.yaxis, contract.currency, lang)
    _month_axis(ax, contract, lang)
    if party == "investors":
        title = t["investors_fan"].format(investors=_plain(investors_name(contract, lang) or t["investors"]))
    else:
        title = t["payer_fan"].format(payer=_plain(contract.payer.name))
    ax.set(ylabel=t["cumulative"].format(cur=contract.currency), title=_wrap(title))
    ax.legend(frameon=False, loc="upper left", fontsize=8)
    return fig


def plot_outflow(results, ax=None, lang: str = "en"):
    """What the payer spends on the participants each month (the cost items of the scenario):
    treated vs counterfactual, median and 5-95 % band. The gap is the payer's gross saving."""
    t = _labels(lang)
    fig, ax = _axes(ax)
    contract = results.contract
    months = np.arange(contract.horizon_months)
    for key, label, color in (("treated_costs", t["treated"], "#2e86c1"),
                              ("counterfactual_costs", t["counterfactual"], "#7f8c8d")):
        series = results.monthly[key]
        lo, mid, hi = np.quantile(series, [0.05, 0.5, 0.95], axis=0) if len(series) else (np.zeros(len(months)),) * 3
        ax.fill_between(months, lo, hi, color=color, alpha=0.2)
        ax.plot(months, mid, color=color, lw=2, label=label)
    ax.axvline(contract.term_months, color="grey", ls=":", lw=1, label=t["term_end"])
    _money_axis(ax.yaxis, contract.currency, lang)
    _month_axis(ax, contract, lang)
    items = ", ".join(_plain(c.title) for c in contract.costs) or t["no_items"]
    ax.set(ylabel=t["per_month"].format(cur=contract.currency),
           title=_wrap(t["outflow_title"].format(payer=_plain(contract.payer.name), items=items)))
    ax.legend(frameon=False, loc="upper left", fontsize=8)
    return fig


def plot_net_savings(results, ax=None, lang: str = "en"):
    """Distribution of the payer's net savings over the horizon, with P(net savings < 0) marked."""
    from matplotlib.ticker import FuncFormatter

    t, loc = _labels(lang), Locale(lang)
    fig, ax = _axes(ax)
    contract = results.contract
    net = results.paths["net_savings"].to_numpy()
    p_neg = float((net < 0).mean())
    ax.hist(net, bins=60, color="#27ae60", alpha=0.85)
    ax.axvline(0, color="#c0392b", lw=1.5, label=t["pays_more"].format(p=loc.percent(p_neg)))
    money = _money(contract.currency, lang)
    ax.axvline(net.mean(), color="black", ls="--", lw=1, label=t["mean"].format(v=money(net.mean())))
    _money_axis(ax.xaxis, contract.currency, lang)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: loc.percent(y / len(net), 0)))
    payer = _plain(contract.payer.name)
    ax.set(xlabel=t["net_x"].format(payer=payer, cur=contract.currency), ylabel=t["share"],
           title=_wrap(t["net_title"].format(payer=payer)))
    ax.legend(frameon=False)
    return fig


def plot_budget(results, fig=None, lang: str = "en"):
    """The payer's budget: expected outcome payments month by month (left) and, per budget year,
    what the payer pays in all (outcome payments, fees, guarantees) on average with its P90 and P95
    (right).  Years are calendar years when the scenario gives ``meta.start``."""
    import matplotlib.pyplot as plt

    from .budget import budget_years, reserve_rows

    t = _labels(lang)
    contract = results.contract
    cur = contract.currency
    if fig is None:
        fig = plt.figure(figsize=(9, 4.4))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    years = budget_years(contract)
    payer = _plain(contract.payer.name) if len(contract.payers) == 1 else t["the_payers"]
    paid = results.expected_ledgers["outcome_payments"].to_numpy(dtype=float)
    # On a time axis (one unit a month), so that the gaps between payment dates are true to scale.
    left.bar(np.arange(len(paid)), paid, width=1.0, color="#2e86c1")
    short = [str(y) if years.basis == "calendar" else t["year_short"].format(k=y) for y in years.years]
    # A first year of a few months would put two labels on top of each other: it keeps no tick.
    ticks = [k for k in range(len(years)) if k > 0 or years.last[0] - years.first[0] >= 4]
    left.set_xticks([years.first[k] for k in ticks], [short[k] for k in ticks], rotation=45 if len(years) > 6 else 0)
    left.set_xlim(-1, len(paid))
    _money_axis(left.yaxis, cur, lang)
    left.set_title(t["budget_left"].format(payer=payer), fontsize=10)
    left.set_ylabel(cur)
    rows = reserve_rows(results.budget(), contract)
    rows = rows[rows["label"] != "All years"]
    x = np.arange(len(rows))
    right.bar(x, rows["paid_mean"], color="#aed6f1", label=t["average"])
    right.plot(x, rows["paid_p90"], "v", color="#c0392b", label=t["p90"])
    right.plot(x, rows["paid_p95"], "_", color="#7b241c", markersize=14, mew=2, label=t["p95"])
    right.set_xticks(x, short, rotation=45 if len(rows) > 6 else 0)
    _money_axis(right.yaxis, cur, lang)
    verb = t["pays"] if len(contract.payers) == 1 else t["pay"]
    right.set_title(t["budget_right"].format(payer=payer, verb=verb), fontsize=10)
    right.set_ylim(bottom=0)
    handles, labels = right.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.2, wspace=0.3)
    return fig
