"""Portfolios of deals on aligned paths: an investor's holdings, or an outcomes fund's deals.

A portfolio file (``docs/scenario.md``, *Portfolios*) lists holdings, each a scenario and the
amount held in it, and the factors and shocks the deals share (same labour market, same years).
Path ``i`` of every deal is the same world: a shared factor or shock is drawn once per path, for
all deals, and every deal reads that draw; everything else (its parameters, journeys, own
factors) each deal draws from its own stream.

Scaling.  A holding of ``amount`` in a deal holds ``amount / commitment`` of its investors' cash
(all investors together, or the one named by ``investor``): of every call, distribution and
guarantee payout.  The payers' side is the whole deal (a municipality pays for every outcome,
whoever holds the bonds).

Calendar.  Each deal is placed at its ``meta.start`` (or the holding's ``start``); the portfolio's
month 0 is the earliest.  A portfolio shock's ``start_month`` counts from the portfolio's month 0
and hits each deal in the same calendar months.

Seeds.  ``SeedSequence(seed)`` spawns one child per holding (the deal's run, block by block as
:func:`sibsim.simulate` would run it with that child as its seed) and a last one for the shared
draws (factors' normals then shocks' uniforms, in declared order, for all paths at once).  The
comparison with independent deals (:func:`diversification`) draws the shared terms for each deal
from its own child of that last stream, and keeps every deal's own draws: only the dependence
between the deals changes (common random numbers).
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .cashflows import settle
from .contracts import Contract
from .estimators import Statistic
from .irr import irr
from .montecarlo import block_size, simulate_outcomes
from .uncertainty import Draws, Factor, Shock, Uncertainty

#: Lower tail of the portfolio's result for its CVaR (expected shortfall): the worst 5 % of paths.
CVAR_LEVEL = 0.05


@dataclass(frozen=True)
class Holding:
    """One deal of the portfolio.

    Attributes
    ----------
    label : str
        How tables name it (unique in the portfolio).
    contract : Contract
        The deal, with the portfolio's shared factors and shocks added to its own.
    amount : float
        Money held in the deal (its currency).
    investor : str or None
        The investor whose position is held; None: all investors together.
    offset : int
        Months from the portfolio's month 0 to the deal's month 0.
    """

    label: str
    contract: Contract
    amount: float
    investor: str | None = None
    offset: int = 0

    @property
    def commitment(self) -> float:
        """What the holding's investors committed to the deal."""
        if self.investor is None:
            return float(sum(i.commitment for i in self.contract.investors))
        return float(next(i.commitment for i in self.contract.investors if i.name == self.investor))

    @property
    def share(self) -> float:
        """Share of the investors' cash held: ``amount / commitment``."""
        return self.amount / self.commitment

    def investor_mask(self) -> np.ndarray:
        return np.array([self.investor is None or i.name == self.investor for i in self.contract.investors])


@dataclass(frozen=True)
class Portfolio:
    """Holdings and the names of the factors and shocks they share (drawn once per path)."""

    title: str
    holdings: tuple[Holding, ...]
    shared: Uncertainty = Uncertainty()
    start: str | None = None
    source: str = ""

    @property
    def shared_names(self) -> tuple[str, ...]:
        return self.shared.names

    @property
    def horizon_months(self) -> int:
        return max(h.offset + h.contract.horizon_months for h in self.holdings)

    @property
    def currency(self) -> str:
        return self.holdings[0].contract.currency


def months_between(start: str, later: str) -> int:
    """Whole months from ``start`` to ``later`` (ISO dates ``YYYY-MM[-DD]``; the day is ignored)."""
    a, b = (datetime.date.fromisoformat(s if len(s) > 7 else s + "-01") for s in (start, later))
    return (b.year - a.year) * 12 + (b.month - a.month)


def deal_shock(shock: Shock, offset: int, horizon: int) -> Shock | None:
    """A portfolio shock in a deal's months (``offset`` months after the portfolio's month 0), or None
    when it misses the deal's horizon altogether."""
    start, end = shock.start_month - offset, shock.end_month - offset
    start = max(start, 0)
    if end <= start or start >= horizon:
        return None
    return dataclasses.replace(shock, start_month=start, months=end - start)


# --- shared draws -------------------------------------------------------------------------------

def shared_draws(shared: Uncertainty, seed: np.random.SeedSequence, n_paths: int) -> Draws:
    """The shared factors' normals and shocks' occurrences for all paths (module notes: seeds)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    normals = {f.name: rng.standard_normal(n_paths) for f in shared.factors}
    happens = {s.name: (rng.random(n_paths) < s.probability if s.probability < 1.0 else np.ones(n_paths, dtype=bool))
               for s in shared.shocks}
    return Draws(normals, happens)


def fresh(seed: np.random.SeedSequence) -> np.random.SeedSequence:
    """A copy of ``seed`` that has spawned nothing: spawning from it always gives the same children."""
    return np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size)


def _seeds(seed, n_holdings: int):
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    seq = np.random.SeedSequence(seq.entropy, spawn_key=seq.spawn_key, pool_size=seq.pool_size)
    children = seq.spawn(n_holdings + 1)
    return children[:-1], children[-1]


# --- one deal's cash, path by path --------------------------------------------------------------

def _deal_block(holding: Holding, seed: np.random.SeedSequence, n_paths: int, common: Draws) -> dict:
    """One block of one deal: the holding's investor cash per month and the payers' totals per path."""
    contract = holding.contract
    rng = np.random.Generator(np.random.PCG64(seed))
    outcomes = simulate_outcomes(contract, n_paths, rng, common=common)
    cash = settle(contract, outcomes)
    mask = holding.investor_mask()
    called = cash.capital_calls[:, mask].sum(axis=1)
    received = (cash.distributions + cash.guarantee_payouts)[:, mask].sum(axis=1)
    payer_fees = np.broadcast_to(cash.payer_fees, cash.gross_savings.shape)
    return {"called": called, "received": received,
            "outcome_payments": cash.outcome_payments.sum(axis=1),
            "gross_savings": cash.gross_savings.sum(axis=1),
            "payer_fees": payer_fees.sum(axis=1),
            "net_savings": cash.net_savings.sum(axis=1)}


def deal_paths(holding: Holding, seed: np.random.SeedSequence, n_paths: int, common: Draws) -> dict:
    """A deal on ``n_paths`` paths, in blocks as :func:`sibsim.simulate` runs it with ``seed``."""
    size = block_size(holding.contract)
    n_blocks = -(-n_paths // size)
    parts = []
    for b, child in enumerate(fresh(seed).spawn(n_blocks)):
        lo, hi = b * size, min((b + 1) * size, n_paths)
        parts.append(_deal_block(holding, child, hi - lo, common.take(lo, hi)))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# --- the portfolio ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PortfolioResults:
    """A portfolio's simulated paths.

    Attributes
    ----------
    portfolio : Portfolio
    called, received : ndarray (paths, months)
        The holdings' capital calls and cash received (distributions, guarantee payouts), scaled
        by each holding's share, in the portfolio's calendar months.
    deals : dict of str -> dict of str -> ndarray (paths,)
        Per holding: its investors' moic (unscaled), and the payers' outcome payments, gross
        savings, payer fees and net savings (whole deal).
    shared : dict of str -> ndarray (paths,)
        What each path drew of the shared terms (factor multiplier per deal aside: its normal; a
        shock: 1 where it happens).
    """

    portfolio: Portfolio
    called: np.ndarray
    received: np.ndarray
    deals: dict
    shared: dict
    independent: bool = False

    @property
    def n_paths(self) -> int:
        return self.called.shape[0]

    def path_table(self) -> pd.DataFrame:
        """Per path: the portfolio's capital called, cash received, result, MOIC and IRR."""
        called, received = self.called.sum(axis=1), self.received.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            moic = np.where(called > 0, received / np.where(called > 0, called, 1.0), np.nan)
        rate = irr(self.received - self.called, received=self.received)
        out = {"capital_called": called, "received": received, "result": received - called,
               "moic": moic, "irr": rate.rate}
        for label, d in self.deals.items():
            out[f"{label}: moic"] = d["moic"]
        return pd.DataFrame(out)

    def statistics(self) -> dict:
        """The summary's rows as :class:`sibsim.estimators.Statistic` (name -> (statistic, unit))."""
        paths = self.path_table()
        cur = self.portfolio.currency
        moic = paths["moic"].to_numpy()
        out = {
            "expected_moic": (Statistic.mean(moic), "x"),
            "median_irr": (Statistic.quantile(paths["irr"].to_numpy(), 0.5), "per year"),
            "probability_of_loss": (Statistic.probability(moic < 1 - 1e-12), "probability"),
            "expected_result": (Statistic.mean(paths["result"].to_numpy()), cur),
            "cvar_5pct_result": (Statistic.lower_tail_mean(paths["result"].to_numpy(), CVAR_LEVEL), cur),
            "expected_capital_called": (Statistic.mean(paths["capital_called"].to_numpy()), cur),
        }
        for payer, totals in self.payers().items():
            out[f"payer {payer}: expected_outcome_payments"] = (Statistic.mean(totals["outcome_payments"]), cur)
            out[f"payer {payer}: expected_net_savings"] = (Statistic.mean(totals["net_savings"]), cur)
            # As a single run's summary: net savings (gross savings less payments, fees and the payer's
            # own guarantee costs) below 0, summed over the payer's deals on the path.
            out[f"payer {payer}: probability_pays_more_than_saves"] = (Statistic.probability(
                totals["net_savings"] < 0), "probability")
        return out

    def summary(self) -> pd.DataFrame:
        """Portfolio MOIC, IRR, P(loss), CVaR (mean result of the worst 5 % of paths) and the payers'
        totals, with Monte Carlo standard errors."""
        rows = [(name, *stat.estimate(), unit) for name, (stat, unit) in self.statistics().items()]
        return pd.DataFrame(rows, columns=["metric", "estimate", "std_error", "unit"]).set_index("metric")

    def payers(self) -> dict:
        """Per payer (by name across deals): its outcome payments, fees, gross and net savings per path."""
        out: dict = {}
        for h in self.portfolio.holdings:
            d = self.deals[h.label]
            name = h.contract.payer.name
            acc = out.setdefault(name, {k: np.zeros(self.n_paths) for k in
                                        ("outcome_payments", "payer_fees", "gross_savings", "net_savings")})
            for k in acc:
                acc[k] = acc[k] + d[k]
        return out


def simulate_portfolio(portfolio: Portfolio, n_paths: int = 10_000, seed=None, independent: bool = False,
                       runner=None) -> PortfolioResults:
    """Every holding on the same ``n_paths`` paths, the shared terms drawn once per path.

    ``independent=True`` draws the shared terms for each deal on its own (the deals then share
    nothing), with every deal's own draws unchanged: the comparison :func:`diversification` makes.
    ``runner`` (``runner(jobs)`` -> results, jobs being ``(holding, seed, n_paths, common)``):
    runs the deals elsewhere (:mod:`sibsim.distributed`); the results do not depend on it.
    """
    if not isinstance(n_paths, (int, np.integer)) or isinstance(n_paths, bool) or n_paths < 1:
        raise ValueError(f"n_paths: must be a positive integer, got {n_paths!r}")
    deal_seeds, shared_seed = _seeds(seed, len(portfolio.holdings))
    if independent:
        per_deal = shared_seed.spawn(len(portfolio.holdings))
        commons = [shared_draws(portfolio.shared, s, n_paths) for s in per_deal]
    else:
        commons = [shared_draws(portfolio.shared, shared_seed, n_paths)] * len(portfolio.holdings)
    jobs = [(h, s, n_paths, c) for h, s, c in zip(portfolio.holdings, deal_seeds, commons)]
    results = runner(jobs) if runner is not None else [deal_paths(*job) for job in jobs]
    T = portfolio.horizon_months
    called, received = np.zeros((n_paths, T)), np.zeros((n_paths, T))
    deals = {}
    for h, d in zip(portfolio.holdings, results):
        t = d["called"].shape[1]
        called[:, h.offset:h.offset + t] += h.share * d["called"]
        received[:, h.offset:h.offset + t] += h.share * d["received"]
        c, r = d["called"].sum(axis=1), d["received"].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            moic = np.where(c > 0, r / np.where(c > 0, c, 1.0), np.nan)
        deals[h.label] = {"moic": moic, **{k: d[k] for k in ("outcome_payments", "gross_savings", "payer_fees",
                                                             "net_savings")}}
    shared = commons[0].columns(portfolio.shared) if not independent else {}
    return PortfolioResults(portfolio, called, received, deals, shared, independent)


def diversification(portfolio: Portfolio, n_paths: int = 10_000, seed=None, runner=None) -> tuple[pd.DataFrame, tuple]:
    """The portfolio with its shared terms against the same deals independent of each other.

    Returns a table (rows: sd of the portfolio MOIC, P(loss), CVaR of the result, expected MOIC;
    columns: shared, independent, difference) and the two :class:`PortfolioResults`.  The
    independent run keeps every deal's own draws (module notes), so the difference is the effect
    of the dependence alone; its standard error is a paired one for means and P(loss).
    """
    together = simulate_portfolio(portfolio, n_paths, seed, runner=runner)
    apart = simulate_portfolio(portfolio, n_paths, seed, independent=True, runner=runner)
    a, b = together.path_table(), apart.path_table()
    ma, mb = a["moic"].to_numpy(), b["moic"].to_numpy()
    stats = {
        "expected_moic": (Statistic.mean(ma), Statistic.mean(mb)),
        "sd_moic": None,
        "probability_of_loss": (Statistic.probability(ma < 1 - 1e-12), Statistic.probability(mb < 1 - 1e-12)),
        "cvar_5pct_result": (Statistic.lower_tail_mean(a["result"].to_numpy(), CVAR_LEVEL),
                             Statistic.lower_tail_mean(b["result"].to_numpy(), CVAR_LEVEL)),
    }
    rows = []
    for name, pair in stats.items():
        if pair is None:  # the spread itself: no estimator of its error here
            sa, sb = float(np.std(ma, ddof=1)), float(np.std(mb, ddof=1))
            rows.append({"metric": name, "shared": sa, "independent": sb, "difference": sa - sb,
                         "difference_std_error": float("nan")})
            continue
        (ea, _), (eb, _) = pair[0].estimate(), pair[1].estimate()
        diff, se = pair[0].difference(pair[1], paired=True)
        rows.append({"metric": name, "shared": ea, "independent": eb, "difference": diff, "difference_std_error": se})
    return pd.DataFrame(rows).set_index("metric"), (together, apart)
