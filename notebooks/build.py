"""Generate the analyst notebooks in this folder from the cell lists below.

    python notebooks/build.py           # (re)write every notebook
    python notebooks/build.py --check   # exit 1 if a committed notebook differs from this file

This file is the source of truth: edit the cells here, not in Jupyter, then regenerate and
commit both. The notebooks are written without outputs or execution counts, and with cell ids
derived from each cell's text, so a change to one cell changes one place in the diff.
``tests/test_notebooks.py`` executes every notebook and checks that this file regenerates
them exactly. Needs ``nbformat`` (``pip install 'sibsim[notebooks]'``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from textwrap import dedent

try:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise SystemExit(f"notebooks/build.py needs nbformat: pip install 'sibsim[notebooks]' ({exc})") from None

HERE = Path(__file__).resolve().parent

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def md(*parts: str) -> tuple[str, str]:
    """A markdown cell; the parts (each dedented on its own) are separated by blank lines."""
    return ("markdown", "\n\n".join(dedent(part).strip("\n") for part in parts))


def code(text: str) -> tuple[str, str]:
    return ("code", dedent(text).strip("\n"))


# --- pieces shared by every notebook (each notebook stays self-contained) -------------------------
SETUP = code('''
    %matplotlib inline
    from pathlib import Path

    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd


    def repository_root(start=None):
        """The sibsim repository: the first folder at or above this one that holds pyproject.toml."""
        here = Path.cwd() if start is None else Path(start)
        for folder in (here, *here.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "scenarios").is_dir():
                return folder
        raise FileNotFoundError("open this notebook from inside the sibsim repository (no pyproject.toml above it)")


    SCENARIOS = repository_root() / "scenarios"
    pd.set_option("display.width", 140)
    pd.set_option("display.max_columns", 20)
''')

FORMAT = code('''
    def fmt(value, unit, currency="EUR", se=False):
        """A number as text in its unit; standard errors get one more decimal for percentages."""
        if value is None or pd.isna(value):
            return "n/a"
        if unit in ("EUR", "money", currency):  # summary units name the currency
            return f"{currency} {value:,.0f}"
        if unit in ("probability", "share", "per year"):
            return f"{value:.2%}" if se else f"{value:.1%}"
        if unit == "x":
            return f"{value:.4f}" if se else f"{value:.3f}"
        return f"{value:,.4g}"


    def with_se(summary, metrics, currency="EUR"):
        """Rows of Results.summary() as text: estimate and Monte Carlo standard error.

        ``metrics`` maps a summary row name to the label to show.
        """
        rows = []
        for metric, label in metrics.items():
            estimate, std_error, unit = summary.loc[metric, ["estimate", "std_error", "unit"]]
            rows.append({"": label, "estimate": fmt(estimate, unit, currency),
                         "MC standard error": fmt(std_error, unit, currency, se=True)})
        return pd.DataFrame(rows).set_index("")


    def proportion(mask):
        """Share of paths where ``mask`` holds, with its Monte Carlo standard error sqrt(p (1 - p) / n)."""
        mask = np.asarray(mask, dtype=bool)
        p = mask.mean()
        return p, np.sqrt(p * (1 - p) / mask.size)
''')

MC_ERRORS = md('''
    **Reading the standard errors.** A Monte Carlo estimate from a few thousand simulated futures is
    itself uncertain. The *MC standard error* says how much the number would move if we simulated
    again with other random numbers: the estimate plus or minus two standard errors covers the
    simulation noise about 95 % of the time. It does **not** measure whether the assumptions in the
    scenario are right. It shrinks with the square root of the number of paths: 100 times more paths,
    10 times smaller. For numbers that go into a memo, rerun with `N_PATHS = 100_000`
    (or `sibsim run ... --paths 100000`).
''')


def how_to_run(extra: str = "") -> str:
    text = (
        "**How to run.** From the repository: `pip install -e '.[notebooks]'`, then open this file with\n"
        "JupyterLab or any notebook front end. The parameters cell sets a small number of simulated\n"
        "futures (`N_PATHS`) so that the notebook runs in seconds; raise it for figures you publish.\n"
        "Every number below is computed, none is typed in by hand, so the text describes what to look\n"
        "for rather than quoting results."
    )
    return text + ("\n" + extra if extra else "")


# --- 01: the municipality's view ---------------------------------------------------------------------
NB01 = [
    md('''
        # The Colour Kitchen SIB: what the municipality pays, saves, and when

        **Purpose.** The municipality of Utrecht's view of the Colour Kitchen Social Impact Bond:
        what it pays the investors, what it saves on welfare benefits (bijstand), in which years, and
        how sure those numbers are. It ends with the invoice check a finance officer does when the
        evaluator's counts come in.

        **Audience.** Municipal finance officers and the analysts writing the council memo. No
        knowledge of the simulation is needed; each step says what it computes and how to read it.

        **The deal in one paragraph.** Two foundations pre-finance a learning-work programme for young
        adults on bijstand. The municipality pays a price for each *net* outcome (diplomas, jobs held
        for six months, long-term contracts, counted as participants minus a comparison group), at most
        a capped amount, and keeps the benefit payments it no longer has to make. The scenario file
        `scenarios/utrecht_colour_kitchen.toml` lists what is published and every assumption that is not.

        ''', how_to_run()),
    md('''
        ## Parameters

        `N_PATHS` is the number of simulated futures; `SEED` fixes the random numbers, so the same
        seed gives the same numbers on any machine.
    '''),
    code('''
        N_PATHS = 2000
        SEED = 2015
        SCENARIO = "utrecht_colour_kitchen.toml"
        OBSERVED = "observed/utrecht_colour_kitchen_example.toml"
    '''),
    SETUP,
    FORMAT,
    code('''
        from sibsim import load_observed, load_scenario, settle, simulate
    '''),
    md('''
        ## 1. The contract

        `load_scenario` reads and checks the scenario file. The main terms, as the model sees them:
    '''),
    code('''
        contract = load_scenario(SCENARIOS / SCENARIO)
        cur = contract.currency
        print(contract.title)
        print(f"participants:           {contract.n_participants} in {len(contract.cohorts)} cohorts")
        print(f"capital committed:      {cur} {contract.total_commitment:,.0f} by "
              + ", ".join(i.name for i in contract.investors))
        print(f"term:                   {contract.term_months} months; savings followed for {contract.horizon_months} months")
        print(f"measured in months:     {list(contract.payer.measurement_months)}, "
              f"paid {contract.payer.payment_lag_months} months later")
        print(f"prices per net outcome: " + ", ".join(f"{k} {cur} {v:,.0f}" for k, v in contract.payer.rate_card))
        print(f"payment cap:            {cur} {contract.payer.payment_cap:,.0f}")
    '''),
    md('''
        ## 2. Simulate

        Each simulated future (a *path*) first draws how good the programme really is (its monthly
        chances of a diploma, a job, a relapse) from the ranges in the scenario, then lets all 252
        participants and the comparison group live through the contract month by month. The payment
        formula is applied to what the evaluator would measure. `summary()` gives the headline numbers,
        each with its Monte Carlo standard error.
    '''),
    code('''
        results = simulate(contract, n_paths=N_PATHS, seed=SEED)
        summary = results.summary()
        print(f"{results.n_paths:,} paths simulated")
    '''),
    md('''
        ## 3. What we pay and what we save, in total

        * **Outcome payments**: what the municipality pays the investors for measured net outcomes.
        * **Gross savings**: benefit payments avoided because participants work, beyond what the
          comparison group suggests would have happened anyway.
        * **Net savings**: gross savings less outcome payments and the evaluation fees the
          municipality pays; the bottom line. The *present value* discounts it at the public
          discount rate in the scenario.
        * **Term and tail, or within the term only**: the scenario counts savings for `tail_months`
          after the term (participants still in work keep saving benefits, nothing is paid for them).
          That is an assumption, and it can decide the bottom line, so each savings figure is shown
          with the tail and without it.
        * **Retained above the return cap**: payments earned by the outcomes but never paid, because
          the investors' return is capped at 10 % a year.
        * **Cost per net sustained job**: outcome payments divided by the jobs held six months beyond
          the comparison group.
    '''),
    code('''
        with_se(summary, {
            "expected_outcome_payments": "outcome payments",
            "expected_gross_savings": "gross savings, term and tail",
            "expected_gross_savings_within_term": "gross savings, within the term only",
            "expected_net_savings": "net savings, term and tail",
            "expected_net_savings_within_term": "net savings, within the term only",
            "probability_pays_more_than_saves": "P(pays more than it saves), term and tail",
            "probability_pays_more_than_saves_within_term": "P(pays more than it saves), within the term only",
            "expected_npv_net_savings": "net savings, present value",
            "expected_retained_above_caps": "retained above the return cap",
            "cost_per_net_primary_outcome": "cost per net sustained job",
        }, cur)
    '''),
    MC_ERRORS,
    md('''
        ## 4. When: the expected ledger by contract year

        `expected_ledgers` holds, month by month, the average over all paths of each flow of money.
        Summed by contract year (year 1 is months 0-11 from the start of the contract), it is the table
        for a multi-year budget. Payments come in lumps a few months after each annual measurement;
        savings build up as participants find work, and continue after the term (they are followed for a
        year after it, but not paid for). In the first months savings can even be slightly negative:
        participants are in training while some members of the comparison group find work on their own.
    '''),
    code('''
        ledgers = results.expected_ledgers
        columns = {"outcome_payments": "outcome payments", "payer_fees": "evaluation fees",
                   "gross_savings": "gross savings", "net_savings": "net savings"}
        by_year = ledgers[list(columns)].groupby(ledgers.index // 12 + 1).sum().rename(columns=columns)
        by_year.index = [f"year {y} (months {12 * (y - 1)}-{min(12 * y, contract.horizon_months) - 1})"
                         for y in by_year.index]
        by_year["cumulative net savings"] = by_year["net savings"].cumsum()
        by_year.loc["total"] = by_year.sum()
        by_year.loc["total", "cumulative net savings"] = by_year["net savings"].iloc[:-1].sum()
        print(f"expected {cur} per contract year (mean over {results.n_paths:,} paths); "
              f"payments fall due in months {list(contract.payment_months)}")
        by_year.map(lambda v: f"{v:,.0f}")
    '''),
    md('''
        ### The budget-year reserve

        A municipality budgets per calendar year (begrotingsjaar) and reserves for a bad year. `budget()`
        groups the months in calendar years (from the scenario's start date, April 2015) and gives, per
        year, what the municipality pays in all (outcome payments, evaluation fees, any guarantee) on
        average, its P90 and P95 (exceeded in 1 year in 10 and 1 in 20), and the most the contract can
        make it pay (the payment cap in every year from the first payment date on, since money held back
        above the return cap can be paid later, plus that year's fees). The reserve
        above the budgeted average, for a 1-in-20 year, is P95 less the mean. The caps hold for the
        whole contract, so the years' maxima do not add up; the last row is the whole contract's.
    '''),
    code('''
        budget = results.budget()
        paid = budget[(budget["party"] == contract.payer.name) & (budget["item"] == "total paid")]
        reserve = paid.set_index("months")[["mean", "p90", "p95", "maximum"]]
        reserve["reserve for a 1-in-20 year (P95 - mean)"] = reserve["p95"] - reserve["mean"]
        print(f"{contract.payer.name}: all it pays per budget year ({cur}; {results.n_paths:,} paths)")
        reserve.map(lambda v: f"{v:,.0f}")
    '''),
    code('''
        fig = results.plot_budget()
        plt.show()
    '''),
    md('''
        The totals match the table of section 3 (there with their standard errors). An average can
        hide a wide spread: the fan chart shows the municipality's cumulative position (savings less
        payments and fees) over time. The dark band holds the middle half of the simulated futures,
        the light band 90 % of them; the line is the median. The dotted line marks the end of the term.
        The position dips when a payment is made and climbs as savings accrue.
    '''),
    code('''
        fig, ax = plt.subplots(figsize=(8, 4.5))
        results.plot_cash_fan(ax=ax, party="payer")
        fig.tight_layout()
        plt.show()
    '''),
    md('''
        **Payback.** The month from which the municipality's cumulative position stays above zero
        (empty on paths where it ends below zero).
    '''),
    code('''
        payback = results.paths["payer_payback_month"]
        p_back, se_back = proportion(payback.notna())
        print(f"share of paths where the municipality is ahead at the end: {p_back:.1%} (MC s.e. {se_back:.1%})")
        print(f"payback month on those paths: median {payback.dropna().median():.0f}, "
              f"middle half {payback.dropna().quantile(0.25):.0f}-{payback.dropna().quantile(0.75):.0f}")
    '''),
    md('''
        ## 5. How sure: the risk of paying more than we save

        * **Probability of paying more than we save**: the share of simulated futures in which the
          municipality's net savings over the whole horizon are negative.
        * **5th percentile of net savings**: in one future out of 20 the municipality does worse than
          this. Its standard error comes from the spread across 20 independent batches of paths.
    '''),
    code('''
        with_se(summary, {
            "probability_pays_more_than_saves": "probability of paying more than we save",
            "net_savings_p05": "net savings, 5th percentile",
            "expected_net_savings": "net savings, mean",
        }, cur)
    '''),
    code('''
        fig, ax = plt.subplots(figsize=(8, 4.2))
        results.plot_net_savings(ax=ax)
        fig.tight_layout()
        plt.show()
    '''),
    md('''
        ## 6. Checking an invoice with `settle`

        When the evaluator reports its counts, the finance officer checks the investors' invoice.
        `settle` applies the contract's payment formula to the counts: no simulation, no randomness.
        The example file holds illustrative counts per cohort at the first two measurements (months 12
        and 24), summed over the cohorts below (the rate card pays pooled net outcomes). `settle` first
        checks them against the scenario: whole people, at most a cohort's 21 participants, no sustained
        job without a job start. The comparison group follows no programme, so it reports no diplomas
        (shown as NaN).
    '''),
    code('''
        observed = load_observed(SCENARIOS / OBSERVED)
        counts = pd.DataFrame([{"group": group, "cohort": cohort, "outcome": outcome, "month": month, "count": n}
                               for (group, cohort, outcome), by_month in observed.counts.items()
                               for month, n in by_month.items()])
        counts.pivot_table(index=["month", "outcome"], columns="group", values="count", aggfunc="sum")
    '''),
    md('''
        **By hand.** At each measurement the net count of an outcome is the participants' count minus
        the comparison group's, scaled to the size of the participant group. The entitlement so far is
        the price times the net count, summed over outcomes (a negative net count earns nothing). Each
        payment is the increase of the entitlement since the last measurement, paid after the lag,
        within the payment cap. (This hand check covers a rate card only; `settle` applies every
        mechanism in the contract.)
    '''),
    code('''
        prices = dict(contract.payer.rate_card)
        scale = {k: c.size / m for k, (c, m) in enumerate(zip(contract.cohorts, contract.comparison_sizes))}
        counts["scaled"] = [n * (scale[k] if g == "comparison" else 1.0)
                            for g, k, n in zip(counts["group"], counts["cohort"], counts["count"])]
        counts["sign"] = counts["group"].map({"treated": 1.0, "comparison": -1.0, "counterfactual": -1.0})
        net = (counts["scaled"] * counts["sign"]).groupby([counts["month"], counts["outcome"]]).sum().unstack()
        priced = net[[k for k in prices if k in net.columns]].clip(lower=0)
        entitled = (priced * pd.Series(prices)).sum(axis=1)
        paid_so_far = entitled.cummax().clip(upper=contract.payer.payment_cap or np.inf)
        by_hand = priced.rename(columns=lambda k: f"net {k}").round(1)
        by_hand["entitlement so far"] = entitled
        by_hand["payment"] = paid_so_far.diff().fillna(paid_so_far)
        by_hand["paid in month"] = by_hand.index + contract.payer.payment_lag_months
        by_hand.columns.name = None
        by_hand.rename_axis("measured in month")
    '''),
    md('''
        **With `settle`.** The schedule lists every month in which money moves; below are the months with
        an outcome payment, which should match the hand check. The investors' table shows what each
        investor has put in and received on these counts. With only two of the four measurements in,
        the investors have not yet had their capital back, so an IRR is usually not defined yet
        (`irr_status` says why: for example `no_root_in_range` when no annual rate within the search range
        makes the flows balance); the multiple is always reported.
    '''),
    code('''
        settlement = settle(contract, SCENARIOS / OBSERVED)
        paid = settlement.schedule[settlement.schedule["outcome_payments_due"] > 0]
        paid.drop(columns=[c for c in paid.columns if (paid[c] == 0).all()])
    '''),
    code('''
        settlement.investors
    '''),
    md('''
        ## What to take to the memo

        * the totals of section 3 and the year table of section 4, each with its standard error, rerun
          with many more paths;
        * the probability of paying more than is saved and the 5th percentile of net savings: the
          downside the council accepts;
        * that every number rests on the assumptions listed in the scenario's `[meta]`; notebook
          `03_sensitivity_and_breakeven` shows which of them matter most.
    '''),
]


# --- 02: the investors' view ---------------------------------------------------------------------------
NB02 = [
    md('''
        # Investor returns: distribution, losses, and what a guarantee changes

        **Purpose.** The investors' view of the Colour Kitchen SIB: the spread of their annual return
        (IRR) and multiple (MOIC), how likely and how large a loss is, the average of the worst
        outcomes (CVaR), and what a 50 % capital guarantee by the municipality would change. It ends
        with the one SIB whose settlement is public, Peterborough, as a reality check.

        **Audience.** Impact investors and their boards, and the municipality's analysts negotiating
        the terms (a guarantee moves risk from the investors to the public purse).

        ''', how_to_run()),
    md('''
        ## Parameters
    '''),
    code('''
        N_PATHS = 2000
        SEED = 2015
        BASE = "utrecht_colour_kitchen.toml"
        GUARANTEE = "utrecht_colour_kitchen_guarantee.toml"
        PETERBOROUGH = "peterborough.toml"
        PETERBOROUGH_OBSERVED = "observed/peterborough_published.toml"
    '''),
    SETUP,
    FORMAT,
    code('''
        from sibsim import load_scenario, settle, simulate
        from sibsim.compare import compare, plot_overlay
    '''),
    md('''
        ## 1. Returns of the base deal

        * **MOIC** (multiple on invested capital): what the investors get back per euro they put in;
          below 1 is a loss.
        * **IRR**: the annual return that makes the money in and out balance. It is capped (at 10 % a
          year in this scenario): whatever the outcomes earn beyond the cap stays with the municipality.
        * **Probability of loss**: the share of futures in which the investors get back less than they
          put in. **Expected loss**: the average shortfall, counting futures without a loss as zero.
        * **CVaR 5 %**: the average net result (received less invested) in the worst 5 % of futures.
    '''),
    code('''
        base = load_scenario(SCENARIOS / BASE)
        cur = base.currency
        results = simulate(base, n_paths=N_PATHS, seed=SEED)
        summary = results.summary()
        investor_rows = {
            "expected_moic": "multiple (MOIC), mean",
            "median_irr": "IRR, median",
            "irr_p05": "IRR, 5th percentile",
            "irr_p95": "IRR, 95th percentile",
            "probability_of_loss": "probability of loss",
            "expected_loss": "expected loss",
            "cvar05_net_result": "CVaR 5 % of net result",
            "expected_npv": "NPV at the investors' discount rate",
        }
        with_se(summary, investor_rows, cur)
    '''),
    MC_ERRORS,
    md('''
        The IRR histogram marks losses in red and the return cap as a dashed line; the pile-up at the
        cap is the price of the cap: many good futures pay exactly 10 %. The multiple shows the same
        story in money terms.
    '''),
    code('''
        fig, (ax_irr, ax_moic) = plt.subplots(1, 2, figsize=(12, 4.2))
        results.plot_irr(ax=ax_irr)
        moic = results.paths["investor_moic"]
        ax_moic.hist(moic, bins=50, color="#2e86c1", alpha=0.85)
        ax_moic.axvline(1.0, color="black", lw=1, label="capital back (MOIC = 1)")
        ax_moic.set(xlabel="investor multiple (MOIC)", ylabel="paths", title="Investor multiple")
        ax_moic.legend(frameon=False)
        fig.tight_layout()
        plt.show()
    '''),
    md('''
        ## 2. How large is a loss when there is one?

        The expected loss above averages over all futures. Conditional on a loss, its size is what a
        board would put in a risk register. `irr_status` says for every path whether an IRR exists
        (a total loss counts as -100 %); paths without a well-defined IRR are never given one.
    '''),
    code('''
        paths = results.paths
        loss = paths.loc[paths["investor_loss"] > 0, "investor_loss"]
        p_cap, se_cap = proportion(paths["investor_irr"] >= min(i.return_cap for i in base.investors) - 5e-4)
        print(f"paths with a loss: {len(loss):,} of {len(paths):,}")
        print(f"loss when there is one: mean {cur} {loss.mean():,.0f} (MC s.e. {loss.std(ddof=1) / np.sqrt(len(loss)):,.0f}); "
              f"median {cur} {loss.median():,.0f}; 90th percentile {cur} {loss.quantile(0.9):,.0f}")
        print(f"  = {loss.mean() / paths['capital_called'].mean():.1%} of the capital called, on average")
        print(f"share of paths at the return cap: {p_cap:.1%} (MC s.e. {se_cap:.1%})")
        paths["irr_status"].value_counts().to_frame("paths")
    '''),
    md('''
        ## 3. What a 50 % capital guarantee changes

        The variant scenario `utrecht_colour_kitchen_guarantee.toml` holds only the difference from the
        base: the municipality covers half of each investor's principal loss at the final payment date.
        `compare` simulates both with the **same random numbers** (common random numbers): every path
        has the same programme results in both, so any difference between the columns is the
        guarantee's doing, not simulation noise.
    '''),
    code('''
        guarantee = load_scenario(SCENARIOS / GUARANTEE)
        labels = ["without guarantee", "with 50 % guarantee"]
        table, (res_base, res_guarantee) = compare([base, guarantee], n_paths=N_PATHS, seed=SEED, labels=labels)
        rows = {**investor_rows,
                "expected_guarantee_payouts": "guarantee payouts (paid by the municipality)",
                "expected_net_savings": "municipality: net savings",
                "probability_pays_more_than_saves": "municipality: P(pays more than it saves)",
                "net_savings_p05": "municipality: net savings, 5th percentile"}
        side_by_side = pd.concat({label: with_se(table[label].assign(unit=table[("unit", "")]), rows, cur)
                                  for label in labels}, axis=1)
        side_by_side
    '''),
    md('''
        **The difference, path by path.** Because the paths are paired, `compare` measures each
        scenario's difference from the first on the paired paths (its `difference` and
        `difference_std_error` columns); the standard error is far smaller than that of either
        column, so even a small effect is visible with few paths. `compare` reads from the runs
        whether they drew the same random numbers (`table.attrs`), and falls back to the errors of
        independent runs where they did not (a changed prior, for example).
    '''),
    code('''
        print("same random numbers:", table.attrs["common_random_numbers"])
        rows = []
        for metric, label in [("expected_moic", "investor multiple"),
                              ("expected_loss", "investor loss"),
                              ("expected_net_savings", "municipality net savings"),
                              ("net_savings_p05", "municipality net savings, 5th percentile"),
                              ("probability_pays_more_than_saves", "municipality: P(pays more than it saves)")]:
            unit = table.loc[metric, ("unit", "")]
            base_row, with_row = table.loc[metric, labels[0]], table.loc[metric, labels[1]]
            rows.append({"": label, "change with guarantee": fmt(with_row["difference"], unit, cur),
                         "MC s.e., paired": fmt(with_row["difference_std_error"], unit, cur, se=True),
                         "MC s.e. if not paired": fmt(np.hypot(base_row["std_error"], with_row["std_error"]),
                                                      unit, cur, se=True)})
        pd.DataFrame(rows).set_index("")
    '''),
    md('''
        How to read it: the guarantee does not make a loss less *likely* (it pays only when there is a
        loss, and covers half of it), but it halves its *size*; the expected payout is exactly what the
        municipality gives up in net savings, and its own bad futures get worse, because the guarantee
        pays precisely when the programme did badly.
    '''),
    code('''
        fig, (ax_left, ax_right) = plt.subplots(1, 2, figsize=(12, 4.2))
        plot_overlay([res_base, res_guarantee], labels, measure="investor_moic", ax=ax_left)
        plot_overlay([res_base, res_guarantee], labels, measure="net_savings", ax=ax_right)
        fig.tight_layout()
        plt.show()
    '''),
    md('''
        ## 4. Reality check: the Peterborough settlement

        Peterborough (UK, 2010) is the first SIB, and its results are public: the first cohort
        reduced reconvictions by 8.4 %, short of the 10 % needed for an early payment; the pilot as a
        whole reached 9 %, above the 7.5 % bar, and the investors received **their capital back plus
        just over 3 % a year**. The scenario's journey has a recurrent reconviction event while in the
        community, and the contract pays per reconviction event avoided within 12 months of release (plus
        6 months for court data), as published (see `scenarios/peterborough.toml`); `settle` applies the
        contract to the published results.
    '''),
    code('''
        peterborough = load_scenario(SCENARIOS / PETERBOROUGH)
        pb_cur = peterborough.currency
        published = settle(peterborough, SCENARIOS / PETERBOROUGH_OBSERVED)
        schedule = published.schedule
        print("outcome payments:")
        print(schedule.loc[schedule["outcome_payments"] > 0, ["outcome_payments_due", "outcome_payments"]])
        everyone = published.investors.loc["all investors"]
        print(f"\\ncapital called {pb_cur} {everyone['capital_called']:,.0f}, received {pb_cur} {everyone['received']:,.0f}: "
              f"multiple {everyone['multiple']:.3f}, IRR {everyone['irr']:.1%} a year ({everyone['irr_status']})")
    '''),
    md('''
        Where does the published outcome sit among the futures the Peterborough scenario considered
        possible at the outset? The share of simulated paths that did no better than the published
        multiple is its rank in the simulated distribution.
    '''),
    code('''
        pb_results = simulate(peterborough, n_paths=N_PATHS, seed=SEED)
        with_pb = with_se(pb_results.summary(), {"expected_moic": "multiple (MOIC), mean",
                                                  "median_irr": "IRR, median",
                                                  "probability_of_loss": "probability of loss"}, pb_cur)
        rank, rank_se = proportion(pb_results.paths["investor_moic"] <= everyone["multiple"] + 1e-9)
        print(f"simulated paths with a multiple at or below the published {everyone['multiple']:.3f}: "
              f"{rank:.1%} (MC s.e. {rank_se:.1%})")
        with_pb
    '''),
    md('''
        ## What to take to the memo

        * The investors' upside is capped and their downside is not: the median return sits at the
          cap while the probability of loss and the CVaR describe the tail.
        * A guarantee is a transfer, not a free lunch: what it adds to the investors' expected result
          the municipality loses, in its worst futures.
    '''),
]


# --- 03: sensitivity -----------------------------------------------------------------------------------
NB03 = [
    md('''
        # Which assumption matters most? Sensitivity, break-even and evaluation noise

        **Purpose.** Most numbers in the Colour Kitchen scenario are assumptions (prices, monthly
        chances of a diploma or a job, the comparison group). This notebook shows which of them move
        the results most, how much of the uncertainty is plain luck, how successful the programme
        must be for the investors and for the municipality to break even, and how much of the payment
        risk is noise in measuring the comparison group.

        **Audience.** Analysts preparing a memo or negotiating terms, who need to say which
        assumptions deserve scrutiny and which do not.

        ''', how_to_run("The sensitivity methods simulate the contract many times over, so the path counts\n"
                         "here are smaller still.")),
    md('''
        ## Parameters

        `N_PATHS` is used for each variant of the tornado, the break-even search and each design of the
        evaluation-noise study; `N_SOBOL_BASE` (a power of 2) sets the size of the Sobol design. `SHIFT`
        is how far the tornado moves each assumption (0.2: down and up by 20 %).
    '''),
    code('''
        N_PATHS = 500
        N_SOBOL_BASE = 256
        SEED = 2015
        SHIFT = 0.2
        SCENARIO = "utrecht_colour_kitchen.toml"
    '''),
    SETUP,
    FORMAT,
    code('''
        from sibsim import load_scenario
        from sibsim.evaluation import evaluation_noise
        from sibsim.sensitivity import break_even, plot_tornado, sobol, tornado

        contract = load_scenario(SCENARIOS / SCENARIO)
        cur = contract.currency
    '''),
    md('''
        ## 1. Tornado: one assumption at a time

        Each assumption is moved down and then up by `SHIFT` while everything else stays as it is, and
        the contract is simulated again **on the same random numbers** as the base run, so each bar is
        the effect of that assumption, not fresh noise. Bars are sorted by their width (the *swing*).
        The black whiskers are plus or minus two Monte Carlo standard errors of each change: a bar whose
        whiskers reach the base line cannot be told apart from noise at this path count.

        Look for the prices and the provider's budget on the investors' side: they set how much can be
        earned and how much must be repaid. The benefit amount cannot move the investors at all (they
        are paid by a rate card, not from savings: a bar of zero width), but it drives the municipality's
        net savings. So does `tail_months`, the months after the term in which savings are still
        counted (here 0, the scenario's 12 and 24): nothing is paid for them, so it moves the payer only.
    '''),
    code('''
        sensitivity = tornado(contract, n_paths=N_PATHS, seed=SEED, shift=SHIFT,
                              measures=("investor_moic", "net_savings"))
        fig, (ax_left, ax_right) = plt.subplots(1, 2, figsize=(14, 5))
        words = dict(payer=contract.payer.name, currency=contract.currency)
        plot_tornado(sensitivity, "investor_moic", ax=ax_left, **words)
        plot_tornado(sensitivity, "net_savings", ax=ax_right, **words)
        fig.tight_layout()
        plt.show()
    '''),
    code('''
        def num(value, digits=4):
            """Large amounts to the unit with thousands separators, small numbers to a few digits."""
            return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"


        def tornado_table(frame, measure, top=5):
            rows = frame[frame["measure"] == measure].head(top)
            unit = rows["unit"].iloc[0]
            unit = cur if unit == "EUR" else unit
            return pd.DataFrame({
                "assumption": rows["assumption"],
                "setting (low / base / high)": [f"{num(lo)} / {num(b)} / {num(hi)} {u}" for lo, b, hi, u in
                                                rows[["low_setting", "base_setting", "high_setting", "setting_unit"]].itertuples(index=False)],
                f"result low, {unit}": rows["low"].map(num),
                f"result high, {unit}": rows["high"].map(num),
                "MC s.e. of change (low / high)": [f"{num(a, 2)} / {num(b, 2)}" for a, b in zip(rows["low_se"], rows["high_se"])],
            }).set_index("assumption")

        print(f"investor multiple, base {sensitivity.loc[sensitivity.measure == 'investor_moic', 'base'].iloc[0]:.3f}")
        tornado_table(sensitivity, "investor_moic")
    '''),
    code('''
        print(f"municipality net savings, base {cur} {sensitivity.loc[sensitivity.measure == 'net_savings', 'base'].iloc[0]:,.0f}")
        tornado_table(sensitivity, "net_savings")
    '''),
    md('''
        ## 2. Sobol indices: whose uncertainty explains the spread?

        The tornado moves assumptions by a fixed amount. Sobol indices instead ask: of the *spread* of a
        result across futures, which share comes from our uncertainty about each monthly probability
        (as described by its range in the scenario)?

        * **first order**: the share a probability explains on its own;
        * **total order**: including its interplay with the other probabilities;
        * **noise share**: the part that no knowledge of the probabilities would remove, because it
          comes from *individual luck*: which of the 252 participants happen to find a job, and which
          members of the comparison group happen to, which is what the evaluator measures against.
          Even if we knew exactly how good the programme is, this part of the risk would remain.

        With a small design (`N_SOBOL_BASE` = 256) single indices are imprecise: read the intervals,
        not the third decimal, and note that estimates can fall slightly below zero by chance. For a
        memo, use 1024 or more (`sibsim sensitivity ... --sobol-base 1024`). The noise share is
        estimated far more precisely than the individual indices.
    '''),
    code('''
        indices = sobol(contract, n_base=N_SOBOL_BASE, seed=SEED, measures=("investor_moic", "payer_npv"))
        shares = indices.groupby("measure", sort=False)[["noise_share", "explained_by_parameters"]].first()
        shares.map(lambda v: f"{v:.0%}")
    '''),
    code('''
        def sobol_table(frame, measure, top=5):
            rows = frame[frame["measure"] == measure].sort_values("total_order", ascending=False).head(top)
            return pd.DataFrame({
                "parameter": rows["parameter"],
                "first order (95 % interval)": [f"{f:.2f} ({lo:.2f} to {hi:.2f})" for f, lo, hi in
                                                rows[["first_order", "first_order_low", "first_order_high"]].itertuples(index=False)],
                "total order (95 % interval)": [f"{f:.2f} ({lo:.2f} to {hi:.2f})" for f, lo, hi in
                                                rows[["total_order", "total_order_low", "total_order_high"]].itertuples(index=False)],
            }).set_index("parameter")

        sobol_table(indices, "investor_moic")
    '''),
    code('''
        sobol_table(indices, "payer_npv")
    '''),
    md('''
        A large index for `comparison.job_without_diploma` (how often young people on bijstand find
        work without the programme) is a warning that the deal's economics hinge on the
        counterfactual, which nobody observes directly.

        ## 3. Break-even: how successful must the programme be?

        Success is scaled by a factor on the programme's success parameters (`analysis.success_parameters`:
        here the chances of a diploma and of finding a job):
        factor 1 is the scenario as assumed, 0.9 a programme 10 % less effective. `break_even` finds the
        factor at which

        * **investors** get their money back on average (expected received = expected invested), and
        * the **municipality** saves as much as it spends on average (expected net savings = 0).

        It also translates the factor into the share of participants holding a job for six months
        (the primary outcome), which is easier to compare with the published target of 50 %.
    '''),
    code('''
        rows = []
        for target, label in (("investor", "investors get their money back"),
                              ("payer", "municipality saves what it spends")):
            result = break_even(contract, target=target, n_paths=N_PATHS, seed=SEED)
            if result["status"] != "ok":
                rows.append({"": label, "success factor": result["message"]})
                continue
            rows.append({"": label,
                         "success factor": f"{result['factor']:.3f} ± {result['factor_se']:.3f}",
                         "share with a sustained job": f"{result['primary_share']:.1%} ± {result['primary_share_se']:.1%}",
                         "as assumed": f"{result['base_primary_share']:.1%}"})
        print("± is one Monte Carlo standard error")
        pd.DataFrame(rows).set_index("")
    '''),
    md('''
        A factor close to 1 means little room for disappointment; between the two factors lie the
        programme results at which, on average, the municipality still gains while the investors lose.

        ## 4. Evaluation noise: how much payment risk is measurement?

        The municipality pays for participants' results *minus the comparison group's*. A comparison
        group of 252 people has its own luck: by chance more or fewer of them find work, and the
        payment moves although the programme's true effect has not changed. `evaluation_noise`
        simulates the same programme with the same participants on every path, measured against
        comparison groups of different sizes and against the exact expected counterfactual (no noise).
        The **noise share** is the part of the spread of payments that is measurement noise.
    '''),
    code('''
        noise = evaluation_noise(contract, n_paths=N_PATHS, seed=SEED)
        pd.DataFrame({
            "payments, sd": noise["sd_outcome_payments"].map(lambda v: fmt(v, "EUR", cur)),
            "of which noise, sd": noise["noise_sd_outcome_payments"].map(lambda v: fmt(v, "EUR", cur)),
            "noise share of payments": noise["noise_share_outcome_payments"].map(lambda v: f"{v:.1%}"),
            "noise share of investor multiple": noise["noise_share_investor_moic"].map(lambda v: f"{v:.1%}"),
            "probability of loss": [f"{p:.1%} ± {se:.1%}" for p, se in
                                    zip(noise["probability_of_loss"], noise["probability_of_loss_se"])],
        })
    '''),
    code('''
        from matplotlib.ticker import PercentFormatter

        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.barh(noise.index, noise["noise_share_outcome_payments"], color="#8e44ad", alpha=0.85)
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set(xlabel="share of the variance of outcome payments that is measurement noise",
               title="Evaluation noise by comparison-group design")
        fig.tight_layout()
        plt.show()
    '''),
    md('''
        "comparison group x1" is the design in the contract. Halving the comparison group raises the noise;
        doubling or quintupling it lowers it, at the cost of following more people. Whether that is worth
        paying for depends on how large the noise share is next to the rest of the risk.

        ## What to take to the memo

        * the two or three assumptions at the top of each tornado, and whether their ranges are well
          founded;
        * the noise share: the part of the risk that better knowledge cannot remove;
        * the break-even success rates for investors and municipality, next to the published targets.
    '''),
]


# --- 04: mid-term update -----------------------------------------------------------------------------
NB04 = [
    md('''
        # Mid-term update: what two years of data change in the forecast

        **Purpose.** After two years the provider's records show how often participants actually got a
        diploma, found a job, or lost it again. This notebook updates the scenario's assumptions with
        those counts, compares the forecast before and after, and estimates the outcome payments still
        to come after month 24.

        **Audience.** The municipality's contract manager and the investors' board at the mid-term
        review, and the analyst who writes it up.

        **What the update does.** Each monthly probability in the scenario has a range of plausible
        values (a Beta distribution). The evidence is a count of events out of participant-months at
        risk, for example 28 job starts in 1,020 months of looking for work. Combining the two is a
        standard, exact calculation (a Beta-binomial update): the new range sits between the old
        assumption and the observed rate, closer to whichever carries more information, and it is
        usually narrower than before.

        **What it does not do.** The re-forecast simulates the whole contract again, from month 0,
        under the updated ranges. It is *not* conditioned on each participant's actual history (who is
        in work today, which payments were already made): that would need individual records. Read it
        as "the contract as we now believe it works", not as a projection of the current caseload.

        The evidence file `scenarios/evidence/utrecht_colour_kitchen_year2.toml` is illustrative, not
        published data.

        ''', how_to_run()),
    md('''
        ## Parameters

        `MONTH` is the month of the review: payments from this month on are the ones still to come.
        `N_BATCHES` independent batches of paths give the standard error of the remaining payments.
    '''),
    code('''
        N_PATHS = 2000
        SEED = 2015
        MONTH = 24
        N_BATCHES = 10
        SCENARIO = "utrecht_colour_kitchen.toml"
        EVIDENCE = "evidence/utrecht_colour_kitchen_year2.toml"
    '''),
    SETUP,
    FORMAT,
    code('''
        from scipy import stats

        from sibsim import load_scenario, simulate
        from sibsim.calibration import load_evidence, update
        from sibsim.compare import compare, plot_overlay

        contract = load_scenario(SCENARIOS / SCENARIO)
        cur = contract.currency
    '''),
    md('''
        ## 1. The evidence

        Each line: a monthly probability of the participants' journey (`group` treated), the number of
        events seen, and the participant-months in which it could have happened.
    '''),
    code('''
        evidence = load_evidence(SCENARIOS / EVIDENCE)
        pd.DataFrame([{"parameter": e.parameter, "group": e.group, "events": e.events,
                       "months at risk": e.at_risk, "observed rate per month": f"{e.events / e.at_risk:.2%}"}
                      for e in evidence]).set_index("parameter")
    '''),
    md('''
        ## 2. Prior and posterior

        *Prior*: the assumption in the scenario (a mean and a standard deviation). *Posterior*: the
        assumption updated with the evidence. The prior's weight can be read as a number of
        participant-months it is "worth" (its Beta parameters added up): evidence with many more months
        than that moves the posterior close to the observed rate.
    '''),
    code('''
        posterior, changes = update(contract, evidence)


        def beta_parameters(mean, sd):
            """Beta(alpha, beta) with this mean and standard deviation (method of moments)."""
            k = mean * (1 - mean) / sd ** 2 - 1
            return mean * k, (1 - mean) * k


        pd.DataFrame({
            "prior": [f"{m:.2%} ± {s:.2%}" for m, s in zip(changes["prior_mean"], changes["prior_sd"])],
            "prior worth (months)": [f"{sum(beta_parameters(m, s)):,.0f}" for m, s in zip(changes["prior_mean"], changes["prior_sd"])],
            "observed": [f"{e} in {n:,} = {r:.2%}" for e, n, r in zip(changes["events"], changes["at_risk"], changes["observed_rate"])],
            "posterior": [f"{m:.2%} ± {s:.2%}" for m, s in zip(changes["posterior_mean"], changes["posterior_sd"])],
        }, index=changes["group"] + "." + changes["parameter"])
    '''),
    code('''
        from matplotlib.ticker import PercentFormatter

        fig, axes = plt.subplots(1, len(changes), figsize=(4.2 * len(changes), 3.4))
        for ax, row in zip(np.atleast_1d(axes), changes.itertuples()):
            prior = stats.beta(*beta_parameters(row.prior_mean, row.prior_sd))
            post = stats.beta(row.posterior_alpha, row.posterior_beta)
            x = np.linspace(0, max(prior.ppf(0.999), post.ppf(0.999)), 400)
            ax.plot(x, prior.pdf(x), color="grey", lw=2, label="prior")
            ax.plot(x, post.pdf(x), color="#c0392b", lw=2, label="posterior")
            ax.axvline(row.observed_rate, color="black", ls=":", lw=1, label="observed rate")
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            ax.set(title=f"{row.group}.{row.parameter}", xlabel="probability per month", yticks=[])
        np.atleast_1d(axes)[0].legend(frameon=False, fontsize=8)
        fig.tight_layout()
        plt.show()
    '''),
    md('''
        ## 3. Re-forecast

        `compare` simulates the contract under the prior and under the posterior with the same seed.
        Because the assumptions differ, the paths draw different programme results, so the two columns
        are treated as independent estimates: the standard error of a change is
        sqrt(s.e. before² + s.e. after²). A change in a percentage is in percentage points.
    '''),
    code('''
        labels = ["before (prior)", "after year 2 (posterior)"]
        table, (res_prior, res_post) = compare([contract, posterior], n_paths=N_PATHS, seed=SEED, labels=labels)
        rows = {"expected_moic": "investor multiple, mean",
                "median_irr": "investor IRR, median",
                "probability_of_loss": "probability of investor loss",
                "expected_outcome_payments": "outcome payments",
                "expected_net_savings": "municipality net savings",
                "probability_pays_more_than_saves": "probability municipality pays more than it saves",
                "treated_job_sustained": "share of participants with a sustained job"}
        out = []
        for metric, label in rows.items():
            unit = table.loc[metric, ("unit", "")]
            (before, se_b), (after, se_a) = (table.loc[metric, [(l, "estimate"), (l, "std_error")]] for l in labels)
            out.append({"": label, labels[0]: fmt(before, unit, cur), labels[1]: fmt(after, unit, cur),
                        "change": fmt(after - before, unit, cur),
                        "MC s.e. of change": fmt(np.hypot(se_b, se_a), unit, cur, se=True)})
        pd.DataFrame(out).set_index("")
    '''),
    code('''
        fig, (ax_left, ax_right) = plt.subplots(1, 2, figsize=(12, 4.2))
        plot_overlay([res_prior, res_post], labels, measure="investor_moic", ax=ax_left)
        plot_overlay([res_prior, res_post], labels, measure="outcome_payments", ax=ax_right)
        fig.tight_layout()
        plt.show()
    '''),
    md('''
        ## 4. Payments still to come after month 24

        The expected ledger gives the average outcome payment in each month. The sum from `MONTH` on is
        what the municipality should budget for the rest of the contract. To give it a standard error,
        the paths are simulated in `N_BATCHES` independent batches (the same seeds before and after the
        update); the spread of the batch results gives the standard error.

        Remember the caveat above: this is the forecast of the contract as we now believe it works,
        re-simulated from month 0, not a projection of the people now in the programme.
    '''),
    code('''
        seeds = np.random.SeedSequence(SEED).spawn(N_BATCHES)
        per_batch = max(N_PATHS // N_BATCHES, 1)


        def remaining(c):
            """Expected outcome payments from MONTH on, per batch of paths."""
            return np.array([simulate(c, n_paths=per_batch, seed=s).expected_ledgers["outcome_payments"].loc[MONTH:].sum()
                             for s in seeds])


        before, after = remaining(contract), remaining(posterior)
        for label, values in zip(labels, (before, after)):
            print(f"{label:<26} {cur} {values.mean():>10,.0f}  (MC s.e. {values.std(ddof=1) / np.sqrt(N_BATCHES):,.0f})")
        change = after - before
        print(f"{'change':<26} {cur} {change.mean():>10,.0f}  (MC s.e. {change.std(ddof=1) / np.sqrt(N_BATCHES):,.0f})")
    '''),
    md('''
        By year, from the re-forecast of section 3 (means over all its paths):
    '''),
    code('''
        def by_year(results):
            ledger = results.expected_ledgers.loc[MONTH:, "outcome_payments"]
            return ledger.groupby(ledger.index // 12 + 1).sum()

        remaining_by_year = pd.DataFrame({label: by_year(r) for label, r in zip(labels, (res_prior, res_post))})
        remaining_by_year.index = [f"year {y} (months {max(12 * (y - 1), MONTH)}-{min(12 * y, contract.horizon_months) - 1})"
                                   for y in remaining_by_year.index]
        remaining_by_year.loc["total"] = remaining_by_year.sum()
        remaining_by_year.map(lambda v: f"{cur} {v:,.0f}")
    '''),
    md('''
        ## What to take to the memo

        * The update is mechanical and exact given the evidence; the judgement lies in the evidence
          (are the months at risk counted correctly?) and in the prior ranges it is combined with.
        * It revises the *assumptions*, then re-simulates the whole contract. It does not follow the
          actual participants: payments already made and people already in work are not used.
        * Only the probabilities with evidence change; all other assumptions, and the comparison group,
          stay as they were. To keep the updated scenario as a file, the command line writes it:
          `sibsim update scenarios/utrecht_colour_kitchen.toml scenarios/evidence/utrecht_colour_kitchen_year2.toml --out updated.toml --month 24`.
    '''),
]


# --- 05: beyond one deal -------------------------------------------------------------------------------
NB05 = [
    md('''
        # Beyond one deal: shared shocks, portfolios, pricing and discovery

        **Purpose.** What a recession does to a Social Impact Bond, and why the way outcomes are
        measured decides who carries it. Everyone in the field argues that a comparison group protects
        investors from a downturn and a modelled counterfactual does not; this notebook puts numbers on it.

        **Audience.** Investors choosing between deals, and municipalities choosing a payment design.

        **The scenarios.** Colour Kitchen as shipped (paid per net outcome against a comparison group), and
        three variants: the same deal in a recession (job finding 30 % lower from month 12 for 18 months, in
        both groups, on top of a labour-market factor both groups share), and the deal paid against a
        modelled counterfactual (an expected benefit-duration model fixed in the contract), without and with
        that recession. The recession is an assumption for illustration, not a forecast.

        ''', how_to_run()),
    md('''
        ## Parameters
    '''),
    code('''
        N_PATHS = 4000
        SEED = 2015
        DESIGNS = {
            ("comparison group", "no recession"): "utrecht_colour_kitchen.toml",
            ("comparison group", "recession"): "utrecht_colour_kitchen_recession.toml",
            ("modelled counterfactual", "no recession"): "utrecht_colour_kitchen_modelled.toml",
            ("modelled counterfactual", "recession"): "utrecht_colour_kitchen_modelled_recession.toml",
        }
    '''),
    SETUP,
    FORMAT,
    code('''
        from sibsim import load_scenario, simulate

        contracts = {key: load_scenario(SCENARIOS / name) for key, name in DESIGNS.items()}
        shock = contracts["comparison group", "recession"].uncertainty.shocks[0]
        print(f"{shock.name}: months {shock.start_month}-{shock.end_month - 1}, hazard x {1 + shock.change:.2f} "
              f"on {', '.join(shock.parameters)}; reaches {', '.join(shock.groups)} "
              f"(modelled design: {', '.join(contracts['modelled counterfactual', 'recession'].uncertainty.shocks[0].groups)})")
        results = {key: simulate(c, n_paths=N_PATHS, seed=SEED) for key, c in contracts.items()}
    '''),
    md('''
        ## 1. Correlated uncertainty: who carries the recession

        The table shows the investors' mean multiple and probability of loss, and the municipality's
        outcome payments, for each design with and without the recession. The change column is the
        recession's effect, with its Monte Carlo standard error (the runs are independent).
    '''),
    code('''
        rows = []
        for design in ("comparison group", "modelled counterfactual"):
            calm, hit = results[design, "no recession"].paths, results[design, "recession"].paths
            for label, column in (("investor multiple, mean", "investor_moic"), ("outcome payments, mean", "outcome_payments")):
                a, b = calm[column], hit[column]
                se = np.hypot(a.std(ddof=1) / np.sqrt(len(a)), b.std(ddof=1) / np.sqrt(len(b)))
                unit = "x" if column == "investor_moic" else "EUR"
                rows.append({"design": design, "": label, "no recession": fmt(a.mean(), unit),
                             "recession": fmt(b.mean(), unit), "change": fmt(b.mean() - a.mean(), unit),
                             "MC s.e. of change": fmt(se, unit, se=True)})
            (p0, s0), (p1, s1) = proportion(calm["investor_moic"] < 1 - 1e-12), proportion(hit["investor_moic"] < 1 - 1e-12)
            rows.append({"design": design, "": "probability of investor loss", "no recession": fmt(p0, "probability"),
                         "recession": fmt(p1, "probability"), "change": fmt(p1 - p0, "probability"),
                         "MC s.e. of change": fmt(np.hypot(s0, s1), "probability", se=True)})
        pd.DataFrame(rows).set_index(["design", ""])
    '''),
    code('''
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
        bins = np.linspace(0, 1.6, 49)
        for ax, design in zip(axes, ("comparison group", "modelled counterfactual")):
            for when, color in (("no recession", "grey"), ("recession", "#c0392b")):
                ax.hist(results[design, when].paths["investor_moic"], bins=bins, histtype="step", lw=2,
                        color=color, label=when, density=True)
            ax.axvline(1.0, color="black", ls=":", lw=1)
            ax.set(title=f"paid against a {design}", xlabel="investor multiple (cash back / capital)")
        axes[0].set_ylabel("density")
        axes[0].legend(frameon=False)
        fig.tight_layout()
        plt.show()
    '''),
    md('''
        **Reading it.** With a comparison group the recession cuts job finding in both groups: the
        participants find fewer jobs, but so does the comparison group, and the municipality pays for the
        difference, which falls much less. Against a modelled counterfactual the baseline stays where the
        contract put it, so every job the recession costs is a paid outcome lost: the multiple falls and the
        probability of loss rises several times as much. The labour-market factor adds the same kind of
        risk every year, not just in a recession: with a comparison group it largely cancels.
    '''),
    md('''
        ## 2. Portfolios: two deals in one labour market

        Start Foundation invested in both Colour Kitchen (Utrecht, 2015) and Buzinezzclub (Rotterdam,
        2014). The portfolio file `scenarios/portfolios/start_foundation_employment.toml` holds both
        positions and gives them one Dutch labour market and one recession risk (probability 0.2, from
        January 2016 for 18 months), each drawn once per path for both deals. The diversification table
        compares the same positions simulated as if the deals shared nothing (same paths, only the
        dependence removed).
    '''),
    code('''
        from sibsim.portfolio import diversification
        from sibsim.scenario_portfolio import load_portfolio

        portfolio = load_portfolio(SCENARIOS / "portfolios" / "start_foundation_employment.toml")
        table, (together, apart) = diversification(portfolio, n_paths=N_PATHS, seed=SEED)
        summary = together.summary()
        units = {"expected_moic": "x", "sd_moic": "x", "probability_of_loss": "probability", "cvar_5pct_result": "EUR"}
        pd.DataFrame({
            "shared shocks": [fmt(v, units[m]) for m, v in table["shared"].items()],
            "independent deals": [fmt(v, units[m]) for m, v in table["independent"].items()],
            "difference": [fmt(v, units[m]) for m, v in table["difference"].items()],
            "MC s.e.": [fmt(v, units[m], se=True) for m, v in table["difference_std_error"].items()],
        }, index=["portfolio multiple, mean", "portfolio multiple, sd", "probability of loss",
                  "CVaR: mean result of the worst 5 % of paths"])
    '''),
    code('''
        with_se(summary, {m: m.replace("_", " ") for m in summary.index if m.startswith("payer")})
    '''),
    md('''
        **Reading it.** Shared shocks cannot move the expected multiple (compare the difference with its
        error); what they can move is the spread and the bad tail, because in a bad labour market both deals
        pay less at once. Read the size of those changes against their standard errors: with this modest
        factor (sd of its log 0.15) and a 20 % recession risk, most of each deal's risk is its own
        programme's, and the diversification lost is small. A stronger shared factor, or more deals in
        one city, shows more (`tests/test_portfolio.py` uses one of sd 1.0). The payers' rows are the whole
        deals: each municipality pays for every outcome of its deal, whoever holds the bonds.
    '''),
    md('''
        ## 3. Outcome pricing: which prices can both sides sign?

        A design search simulates every combination of candidate prices on the same random numbers and
        keeps those meeting what the two sides negotiate: investors want a probability of loss of at most
        20 % and an expected IRR of at least 4 %; the municipality wants to pay more than it saves on at
        most 10 % of paths (here relaxed to 15 %, see below). Among those, it picks the prices that leave
        the municipality the largest expected net savings.
    '''),
    code('''
        from sibsim.design import design, frontier_figure
        from sibsim.sweep import parse_axis

        search = [parse_axis("payer.rate_card.diploma=2000,2500,3000"),
                  parse_axis("payer.rate_card.job_sustained=5500,6500,7500")]
        strict = design(SCENARIOS / DESIGNS["comparison group", "no recession"], search, n_paths=N_PATHS // 2, seed=SEED)
        print("every default constraint:", "no candidate meets them all" if strict.chosen is None else strict.chosen_values)
        relaxed = design(SCENARIOS / DESIGNS["comparison group", "no recession"], search,
                         ["probability_of_loss<=0.20", "expected_irr>=0.04", "probability_pays_more_than_saves<=0.15"],
                         n_paths=N_PATHS // 2, seed=SEED)
        print("payer's risk relaxed to 15 %:", relaxed.chosen_values or "no candidate")
        columns = [a.field for a in search] + ["expected_irr", "probability_of_loss", "probability_pays_more_than_saves",
                                               "expected_net_savings", "feasible"]
        relaxed.table[columns]
    '''),
    code('''
        fig = frontier_figure(relaxed, "Colour Kitchen: prices per outcome")
        plt.show()
    '''),
    md('''
        **Reading it.** Higher prices raise the investors' return and lower their risk, and raise the
        share of futures in which the municipality pays more than it saves. For Colour Kitchen as modelled
        the three default constraints cannot all hold on this grid: the table says which one gives, and by
        how much. `sibsim design ... --out DIR` writes the chosen prices as a scenario file.
    '''),
    md('''
        ## 4. Scenario discovery: what a loss looks like

        PRIM boxes over what each simulated future drew: which combinations of assumptions concentrate the
        investors' losses. Fitted on half the paths and measured on the other half.
    '''),
    code('''
        from sibsim.discovery import boxes_table, discover, input_columns

        rows = []
        for design_name in ("comparison group", "modelled counterfactual"):
            c = contracts[design_name, "recession"]
            boxes, facts = discover(c, n_paths=N_PATHS, seed=SEED, target="loss", max_boxes=1)
            for _, b in boxes_table(boxes, input_columns(c)).iterrows():
                rows.append({"design": design_name, "rule": b["rule"],
                             "P(loss) in the box": f"{b['density']:.0%} ± {b['density_se']:.0%}",
                             "P(loss) overall": f"{facts['held_out_base_rate']:.0%}",
                             "share of futures": f"{b['mass']:.0%}", "share of losses": f"{b['coverage']:.0%}"})
        pd.set_option("display.max_colwidth", 200)
        pd.DataFrame(rows).set_index("design")
    '''),
    md('''
        **Reading it.** Against a comparison group the losses come from the programme's own results (job
        finding after the diploma) and from a comparison group that does well; against a modelled
        counterfactual the labour market itself appears among the conditions.

        ## 5. Running many of these

        Sweeps, design searches and portfolios run block by block; `--scheduler local` on the command line
        (or `sibsim.distributed.DaskRunner` here) spreads the blocks over a Dask cluster with exactly the
        same numbers as a serial run.
    '''),
]


NOTEBOOKS = {
    "01_colour_kitchen_payback.ipynb": NB01,
    "02_investor_returns.ipynb": NB02,
    "03_sensitivity_and_breakeven.ipynb": NB03,
    "04_midterm_update.ipynb": NB04,
    "05_beyond_one_deal.ipynb": NB05,
}


def notebook(cells) -> nbformat.NotebookNode:
    """A notebook without outputs, with cell ids derived from each cell's text."""
    out, seen = [], set()
    for kind, source in cells:
        cell_id = hashlib.sha1(f"{kind}\n{source}".encode("utf-8")).hexdigest()[:12]
        while cell_id in seen:  # the same text twice: keep ids unique
            cell_id = hashlib.sha1(cell_id.encode("ascii")).hexdigest()[:12]
        seen.add(cell_id)
        cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        cell["id"] = cell_id
        out.append(cell)
    nb = new_notebook(cells=out, metadata={"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    nb.nbformat, nb.nbformat_minor = 4, 5  # fixed, so a newer nbformat does not rewrite every file
    nbformat.validate(nb)
    return nb


def render() -> dict[str, str]:
    """File name -> exact text of every notebook."""
    texts = {}
    for name, cells in NOTEBOOKS.items():
        text = nbformat.writes(notebook(cells))
        texts[name] = text if text.endswith("\n") else text + "\n"
    return texts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the notebooks are up to date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = HERE / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text, encoding="utf-8", newline="\n")
            print(f"wrote {path.relative_to(HERE.parent)}")
    if args.check and stale:
        print("out of date (run python notebooks/build.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
