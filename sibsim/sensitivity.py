"""Sensitivity of the results to the assumptions: tornado, Sobol indices, break-even success.

Sits at the end of the data flow (scenario -> Contract -> Outcomes -> Cashflows ->
paths) and only calls the engine pieces; nothing upstream imports it.

* :func:`tornado` moves one assumption at a time down and up and re-simulates with
  **common random numbers**: every variant reuses the base run's random draws, so a
  difference is the effect of the assumption, not fresh noise.  Each difference has a
  paired Monte Carlo standard error.  It also counts the payer's savings after the term
  for 0 months and twice ``tail_months`` (an assumption that can decide the payer's result).
* :func:`sobol` apportions the variance of a measure over the uncertain journey
  probabilities (Saltelli 2010 estimators, :func:`scipy.stats.sobol_indices`).
* :func:`break_even` finds how successful the programme must be for the investors,
  or the payer, to break even.

Common random numbers
---------------------
A variant is simulated block by block exactly as :func:`sibsim.simulate` simulates
the base contract (same seed, same blocks), with two couplings:

* journey probabilities are the base draws mapped through the quantile function
  of the variant's prior (``F_new^-1(F_base(p))``), so each path keeps its rank;
* the treated journeys, the comparison journeys and the payer defaults each start
  from the generator state at which the base run started them: changing a treated
  probability leaves the comparison group (measurement noise) untouched, and
  changing a price or the benefit leaves every outcome untouched.

Within a group, the engine's stream drifts apart once a participant's path changes,
so individual randomness is only partly shared; the paired standard errors measure
what is left.  For the unchanged contract the result equals :func:`sibsim.simulate`
bit for bit.
"""

from __future__ import annotations

import argparse
import inspect
import time
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .cashflows import settle
from . import engine
from .contracts import Contract, Prior
from .estimators import N_BATCHES
from .journey import Journey, is_inline
from .metrics import path_metrics, ranked_irr
from . import uncertainty
from .montecarlo import (GroupOutcomes, Outcomes, block_size, draw_group_parameters, draw_settlement_risks, group_regimes,
                         parameter_dict, split_counts, start_distributions)
from .simulation import DEFAULT_SEED

#: Smallest non-zero prior sd the scenario loader accepts (smaller: a known value).
MIN_PRIOR_SD = 1e-6
#: Relative move of each assumption in :func:`tornado` (and the CLI).
DEFAULT_SHIFT = 0.2
#: Measures that are not a plain per-path mean: name -> unit.
SPECIAL_MEASURES = {"investor_irr_median": "per year", "probability_of_loss": "probability"}
_UNITS = {"investor_moic": "x", "investor_irr": "per year", "primary_outcomes": "participants",
          "net_primary_outcomes": "participants"}


# --- engine pieces with common random numbers --------------------------------------------------
def _outcomes(contract: Contract, treated: np.ndarray, comparison: np.ndarray, rng: np.random.Generator,
              marks: list, common=None) -> Outcomes:
    """:func:`sibsim.montecarlo.simulate_outcomes` with the per-path parameters given, (paths, P) each.

    ``marks`` holds the generator state before the treated journeys, the comparison
    journeys and the payer defaults.  An empty list is filled in (the base run); a
    filled one restarts each stage from its state (common random numbers).  ``common``: the
    factors' and shocks' draws (:func:`sibsim.uncertainty.draw`; None: drawn here, from ``rng``).
    """
    if common is None:
        common = uncertainty.draw(contract.uncertainty, rng, len(treated))
    else:  # the base run's draws, for a variant's terms (same names)
        common = uncertainty.draw(contract.uncertainty, rng, len(treated), given=common)
    treated, t_regimes = group_regimes(contract, treated, common, "treated")
    def stage(k: int) -> None:
        if len(marks) > k:
            rng.bit_generator.state = marks[k]
        else:
            marks.append(rng.bit_generator.state)

    intake = np.array([c.intake_month for c in contract.cohorts], dtype=np.int64)
    treated_sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    T, measures = contract.horizon_months, contract.measures
    journey = contract.comparison.journey
    engine.check_exit_sums(contract.journey, treated)
    engine.check_exit_sums(journey, comparison)
    stage(0)
    t_counts = engine.simulate_group(contract.journey, measures, treated, intake, treated_sizes,
                                     start_distributions(contract), T, rng, regimes=t_regimes)
    stage(1)
    c_starts = start_distributions(contract, comparison=True)
    if contract.comparison.method == "expected":
        from .expectation import expected_group

        comparison_sizes = treated_sizes
        c_counts = expected_group(journey, measures, comparison, intake, comparison_sizes, c_starts, T)
    else:
        comparison_sizes = contract.comparison_sizes
        comparison, c_regimes = group_regimes(contract, comparison, common, "comparison")
        c_counts = engine.simulate_group(journey, measures, comparison, intake, comparison_sizes, c_starts, T, rng,
                                         regimes=c_regimes)
    stage(2)
    default, stopped = draw_settlement_risks(contract, len(treated), rng)
    return Outcomes(GroupOutcomes(*split_counts(contract, t_counts), treated_sizes,
                                  parameter_dict(contract.journey, treated)),
                    GroupOutcomes(*split_counts(contract, c_counts), comparison_sizes,
                                  parameter_dict(journey, comparison)), default, stopped,
                    common=common.columns(contract.uncertainty))


def _paths(contract: Contract, outcomes: Outcomes) -> pd.DataFrame:
    return path_metrics(contract, settle(contract, outcomes), outcomes)


def _remap(values: np.ndarray, old: Prior, new: Prior) -> np.ndarray:
    """Per-path draws from prior ``old`` turned into draws from ``new`` of the same rank (quantile coupling)."""
    if new == old:
        return values
    if new.is_fixed:
        return np.full_like(values, new.mean)
    if old.is_fixed:
        raise ValueError("cannot couple a fixed probability to an uncertain one")
    return _quantile(new, _cdf(old, values))


def _cdf(prior: Prior, values: np.ndarray) -> np.ndarray:
    return prior.cdf(values)


def _quantile(prior: Prior, q: np.ndarray) -> np.ndarray:
    return prior.quantile(q)


def _remap_journey(params: np.ndarray, old: Journey, new: Journey) -> np.ndarray:
    """Per-path parameters (paths, P) of ``old`` mapped to ``new``'s priors, column by column (same ranks)."""
    out = params.copy()
    for j, ((_, p_old), (_, p_new)) in enumerate(zip(old.parameters, new.parameters)):
        out[:, j] = _remap(params[:, j], p_old, p_new)
    return out


def _seed_sequence(seed) -> np.random.SeedSequence:
    """A fresh SeedSequence from an int, None or a SeedSequence (copied: the caller's is never advanced)."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(seq.entropy, spawn_key=seq.spawn_key, pool_size=seq.pool_size)


class _Paired:
    """The base run of ``contract``, block by block as :func:`sibsim.simulate` runs it, kept for variants."""

    def __init__(self, contract: Contract, n_paths: int, seed):
        if not isinstance(n_paths, (int, np.integer)) or isinstance(n_paths, bool) or n_paths < 1:
            raise ValueError(f"n_paths: must be a positive integer, got {n_paths!r}")
        seq = _seed_sequence(seed)
        self.seed_entropy = seq.entropy
        self.contract, self.size = contract, block_size(contract)
        n_blocks = -(-n_paths // self.size)
        self.blocks, frames = [], []
        for b, child in enumerate(seq.spawn(n_blocks)):
            rng = np.random.Generator(np.random.PCG64(child))
            n = min(self.size, n_paths - b * self.size)
            treated, comparison = draw_group_parameters(contract, rng, n)
            common = uncertainty.draw(contract.uncertainty, rng, n)  # as simulate_outcomes draws them
            marks: list = []
            frames.append(_paths(contract, _outcomes(contract, treated, comparison, rng, marks, common)))
            self.blocks.append((treated, comparison, marks, common))
        self.base = pd.concat(frames, ignore_index=True)

    def run(self, variant: Contract) -> pd.DataFrame:
        """Per-path measures of ``variant`` on the base run's random numbers."""
        if variant == self.contract:
            return self.base
        if block_size(variant) != self.size:
            raise ValueError("a variant must keep cohorts, comparison sizes and horizon (same blocks)")
        base = self.contract
        frames = []
        for treated, comparison, marks, common in self.blocks:
            rng = np.random.Generator(np.random.PCG64(0))  # state replaced at every stage
            t = _remap_journey(treated, base.journey, variant.journey)
            c = _remap_journey(comparison, base.comparison.journey, variant.comparison.journey)
            # Shared parameters are the treated group's draws in the comparison group too (one labour
            # market, as draw_group_parameters makes them): a change to them moves both groups.
            names, cnames = variant.journey.parameter_names, variant.comparison.journey.parameter_names
            for name in variant.comparison.shared:
                c[:, cnames.index(name)] = t[:, names.index(name)]
            frames.append(_paths(variant, _outcomes(variant, t, c, rng, marks, common)))
        return pd.concat(frames, ignore_index=True)


def _base_run(contract: Contract, n_paths: int, seed, paired: "_Paired | None") -> "_Paired":
    """``paired`` if it is the base run of ``contract`` on ``n_paths`` and ``seed``, else that run."""
    if paired is None:
        return _Paired(contract, n_paths, seed)
    if paired.contract != contract or len(paired.base) != n_paths or paired.seed_entropy != _seed_sequence(seed).entropy:
        raise ValueError("paired: must be the base run of this contract on the same n_paths and seed")
    return paired


# --- measures -------------------------------------------------------------------------------------
def _unit(measure: str, currency: str = "EUR") -> str:
    """Unit of a measure: money measures are in the scenario's currency."""
    return SPECIAL_MEASURES.get(measure) or _UNITS.get(measure, currency)


def _per_path(paths: pd.DataFrame, measure: str) -> np.ndarray:
    """The per-path values behind ``measure`` (IRR: NaN where it is not defined)."""
    if measure == "investor_irr_median":
        return ranked_irr(paths)
    if measure == "probability_of_loss":
        return (paths["investor_moic"].to_numpy(dtype=float) < 1 - 1e-12).astype(float)
    if measure not in paths.columns or measure == "irr_status":
        raise ValueError(f"unknown measure {measure!r}: use a numeric column of Results.paths "
                         f"or one of {sorted(SPECIAL_MEASURES)}")
    return paths[measure].to_numpy(dtype=float)


def _estimate(values: np.ndarray, measure: str) -> float:
    if measure == "investor_irr_median":  # as metrics.summarise computes the median IRR
        return float(np.nanquantile(values, 0.5)) if np.isfinite(values).any() else float("nan")
    return float(values.mean())


def _paired_se(values: np.ndarray, base: np.ndarray, measure: str) -> float:
    """Monte Carlo standard error of ``estimate(values) - estimate(base)`` on the same paths."""
    n = len(values)
    if measure != "investor_irr_median":
        return float(np.std(values - base, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    if n < 2 * N_BATCHES:  # a median is not a mean: spread over independent batches of paths
        return float("nan")
    diffs = np.array([_estimate(v, measure) - _estimate(b, measure)
                      for v, b in zip(np.array_split(values, N_BATCHES), np.array_split(base, N_BATCHES))])
    diffs = diffs[np.isfinite(diffs)]
    return float(diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else float("nan")


# --- variants -------------------------------------------------------------------------------------
def _scaled_prior(prior: Prior, factor: float, scale_sd: bool) -> Prior:
    """``prior`` with its mean times ``factor``; sd kept or scaled, always a valid prior.

    A probability's mean is clipped to [0, 1]; at a mean of 0 or 1 it is known (sd 0), and an
    sd the new mean cannot carry (``sd >= sqrt(mean (1 - mean))``) is halved to
    ``0.5 sqrt(mean (1 - mean))``.  A rate (Gamma) keeps any sd while its mean is positive.
    """
    if prior.kind == "rate":
        mean = max(prior.mean * factor, 0.0)
        sd = prior.sd * factor if scale_sd else prior.sd
        return Prior(mean, float(sd) if sd >= MIN_PRIOR_SD and mean > 0 else 0.0, kind="rate")
    mean = float(np.clip(prior.mean * factor, 0.0, 1.0))
    sd = prior.sd * factor if scale_sd else prior.sd
    limit = np.sqrt(mean * (1.0 - mean))
    if sd >= limit:
        sd = 0.5 * limit
    return Prior(mean, float(sd) if sd >= MIN_PRIOR_SD else 0.0)


def _scaled_journey(journey: Journey, factors: dict[str, float], scale_sd: bool) -> Journey:
    return journey.with_parameters({k: _scaled_prior(journey.prior(k), f, scale_sd) for k, f in factors.items()})


def _treated(contract: Contract, factors: dict[str, float], scale_sd: bool = False) -> Contract:
    """The contract with treated parameters scaled (the comparison group draws its own: unchanged)."""
    return replace(contract, journey=_scaled_journey(contract.journey, factors, scale_sd))


def _comparison(contract: Contract, name: str, factor: float) -> Contract:
    cj = _scaled_journey(contract.comparison.journey, {name: factor}, False)
    return replace(contract, comparison=replace(contract.comparison, journey=cj))


def _costs(contract: Contract, factor: float) -> Contract:
    costs = tuple(replace(c, bands=tuple(replace(b, amount=b.amount * factor) for b in c.bands))
                  for c in contract.costs)
    return replace(contract, costs=costs)


def _matters(journey: Journey, name: str) -> bool:
    """Whether moving a parameter can change anything: it is uncertain or not zero."""
    prior = journey.prior(name)
    return prior.mean > 0 or not prior.is_fixed


def _prices(contract: Contract, factor: float) -> Contract:
    payer = contract.payer
    return replace(contract, payer=replace(
        payer,
        rate_card=tuple((k, v * factor) for k, v in payer.rate_card),
        tiers=tuple(replace(t, points=tuple((x, y * factor) for x, y in t.points)) for t in payer.tiers),
        trigger=replace(payer.trigger, price=payer.trigger.price * factor) if payer.trigger else None,
    ))


def _budget(contract: Contract, factor: float) -> Contract:
    entries = tuple((m, a * factor) for m, a in contract.provider_budget.entries)
    return replace(contract, provider_budget=replace(contract.provider_budget, entries=entries))


def assumptions(contract: Contract, shift: float = DEFAULT_SHIFT) -> list[tuple]:
    """The assumptions :func:`tornado` moves, each down and up by ``shift`` (relative).

    Returns
    -------
    list of (name, unit, (low, base, high) settings, (low, high) contracts)
        In this order: ``treated.<parameter>`` for each parameter of the treated journey,
        its prior mean (a probability per month, or per participant reaching a branch;
        or a rate, events per participant-month), unit its kind (``"probability"`` or
        ``"rate"``), the prior sd kept; ``comparison.<override>`` for each parameter the
        comparison group overrides (``[comparison.parameters]``), its prior mean the same
        way; ``cost_amounts``, a factor on the amount of every cost item's bands (only
        when some cost item has an amount above 0); ``prices``, a factor on every price
        (rate card, tier amounts, trigger price); and ``provider_budget``, the budget in
        the scenario's currency, in all.  Inline exit and branch parameters (names with
        ``->``) are not assumptions of their own; assumptions that change nothing (a
        known value of 0, no prices) are left out.
    """
    if not 0 < shift < 1:
        raise ValueError(f"shift: must be in (0, 1), got {shift!r}")
    lo, hi = 1.0 - shift, 1.0 + shift
    rows = []
    journey = contract.journey
    for name in journey.parameter_names:
        if not _matters(journey, name) or is_inline(name):  # inline (unnamed) parameters are not assumptions of their own
            continue
        low, high = (_treated(contract, {name: f}) for f in (lo, hi))
        rows.append((f"treated.{name}", journey.prior(name).kind,
                     tuple(c.journey.prior(name).mean for c in (low, contract, high)), (low, high)))
    cj = contract.comparison.journey
    for name in contract.comparison.overrides:
        if not _matters(cj, name):
            continue
        low, high = _comparison(contract, name, lo), _comparison(contract, name, hi)
        rows.append((f"comparison.{name}", cj.prior(name).kind,
                     tuple(c.comparison.journey.prior(name).mean for c in (low, contract, high)), (low, high)))
    cur = contract.currency
    if any(c.base_amount > 0 for c in contract.costs):
        rows.append(("cost_amounts", "x costs", (lo, 1.0, hi), (_costs(contract, lo), _costs(contract, hi))))
    rows.append(("prices", "x prices", (lo, 1.0, hi), (_prices(contract, lo), _prices(contract, hi))))
    budget = contract.provider_budget.total
    rows.append(("provider_budget", cur, (budget * lo, budget, budget * hi),
                 (_budget(contract, lo), _budget(contract, hi))))
    return [r for r in rows if r[3][0] != contract or r[3][1] != contract]


# --- 1. tornado ------------------------------------------------------------------------------------
def tornado(contract: Contract, n_paths: int = 2000, seed=DEFAULT_SEED, shift: float = DEFAULT_SHIFT,
            measures=("investor_moic", "investor_irr_median", "net_savings")) -> pd.DataFrame:
    """One-at-a-time sensitivity with common random numbers.

    Each assumption of :func:`assumptions` is moved down and up by ``shift``
    (relative; probabilities clipped to [0, 1], their prior sd kept, or halved where
    the new mean cannot carry it) and the contract is re-simulated on the base run's
    random numbers (see the module docstring).

    Parameters
    ----------
    contract : Contract
    n_paths : int
        Monte Carlo paths per variant.
    seed : int or SeedSequence
        The base run is ``simulate(contract, n_paths, seed)``, bit for bit.
    shift : float
        Relative move, e.g. 0.2 for -20 % and +20 %.
    measures : sequence of str
        Per-path columns of ``Results.paths`` (estimated by their mean), or
        ``investor_irr_median`` (median IRR where defined, per year) or
        ``probability_of_loss``.

    Returns
    -------
    DataFrame
        One row per measure and assumption: ``measure``, ``unit``, ``assumption``,
        ``setting_unit``, ``low_setting``, ``base_setting``, ``high_setting``; the
        measure's ``low``, ``base`` and ``high`` estimates; ``low_se`` and ``high_se``,
        the Monte Carlo standard errors of ``low - base`` and ``high - base`` (paired
        over paths: ``sd(diff) / sqrt(n)``; for the median, 20 batch means); ``base_se``;
        ``swing = |high - low|``.  Sorted by measure (in ``measures`` order), then by
        swing, largest first.  A difference of exactly 0 with standard error 0 means
        the assumption cannot affect that measure (e.g. the benefit for investors
        paid by a rate card).  Money is in the scenario's currency (``unit``).
        Besides :func:`assumptions`, a ``tail_months`` row counts the savings after
        the term for 0 months, the scenario's and twice it (:func:`tail_settings`;
        see :func:`_tail_rows` for how it keeps common random numbers).
        ``frame.attrs`` holds ``n_paths``, ``seed`` (entropy) and ``spawn_key``: the
        base is ``simulate(contract, n_paths, seed)``, so a memo can say whether it
        is the run of its key figures.
    """
    paired = _Paired(contract, n_paths, seed)
    base = {m: _per_path(paired.base, m) for m in measures}
    cur = contract.currency
    rows = []
    for name, setting_unit, settings, (low_c, high_c) in assumptions(contract, shift):
        low_p, high_p = paired.run(low_c), paired.run(high_c)
        for m in measures:
            lo, hi, b = _per_path(low_p, m), _per_path(high_p, m), base[m]
            rows.append({
                "measure": m, "unit": _unit(m, cur), "assumption": name, "setting_unit": setting_unit,
                "low_setting": settings[0], "base_setting": settings[1], "high_setting": settings[2],
                "low": _estimate(lo, m), "base": _estimate(b, m), "high": _estimate(hi, m),
                "low_se": _paired_se(lo, b, m), "high_se": _paired_se(hi, b, m),
                "base_se": _paired_se(b, np.zeros_like(b), m),
            })
    settings = tail_settings(contract)
    if settings is not None:
        rows += _tail_rows(contract, n_paths, seed, measures, settings, base)
    frame = pd.DataFrame(rows)
    frame["swing"] = (frame["high"] - frame["low"]).abs()
    frame["_order"] = frame["measure"].map({m: i for i, m in enumerate(measures)})
    frame = frame.sort_values(["_order", "swing"], ascending=[True, False], kind="stable")
    frame = frame.drop(columns="_order").reset_index(drop=True)
    # Which run this is: the memo says whether its base is the key figures' run (same paths and seed).
    seq = _seed_sequence(seed)
    frame.attrs.update(n_paths=int(n_paths), seed=int(seq.entropy), spawn_key=tuple(seq.spawn_key))
    return frame


def tail_settings(contract: Contract) -> tuple[int, int, int] | None:
    """Months of savings after the term tried by :func:`tornado`: 0, the scenario's, twice it (12 if it is 0).

    None when the contract models no savings (then the tail changes nothing).
    """
    if not any(c.base_amount > 0 for c in contract.costs):
        return None
    tail = contract.tail_months
    return 0, tail, 2 * tail if tail else 12


def _truncated(outcomes: Outcomes, months: int) -> Outcomes:
    """The outcomes of the first ``months`` months (what a shorter horizon would have observed)."""
    def cut(g: GroupOutcomes) -> GroupOutcomes:
        return GroupOutcomes(np.ascontiguousarray(g.events[..., :months]),
                             np.ascontiguousarray(g.costs[..., :months]), g.sizes, g.parameters)
    return Outcomes(cut(outcomes.treated), cut(outcomes.comparison), outcomes.payer_default, outcomes.external_stop)


def _tail_rows(contract: Contract, n_paths: int, seed, measures, settings, base: dict) -> list[dict]:
    """Tornado rows for ``tail_months`` at ``settings`` (low, base, high), with common random numbers.

    A longer tail means a longer horizon, hence other blocks and another random stream, so the
    variants cannot reuse the base run.  Instead one auxiliary run is simulated at the longest
    tail, and every tail is settled on its first months (the journeys of later months do not
    change earlier ones, so this is exactly a run with the shorter tail).  The effect of the tail
    (variant minus the auxiliary base, paired) is then added to the base run's estimate, so the
    row's base is the base run's, like every other row's.
    """
    variants = [replace(contract, tail_months=int(t)) for t in settings]
    longest = max(variants, key=lambda c: c.horizon_months)
    aux = _Paired(longest, n_paths, seed)
    frames: list[list[pd.DataFrame]] = [[] for _ in variants]
    for treated, comparison, marks, common in aux.blocks:
        rng = np.random.Generator(np.random.PCG64(0))  # state replaced at every stage
        outcomes = _outcomes(longest, treated, comparison, rng, marks, common)
        for k, variant in enumerate(variants):
            frames[k].append(_paths(variant, _truncated(outcomes, variant.horizon_months)))
    low_p, mid_p, high_p = (pd.concat(f, ignore_index=True) for f in frames)
    cur = contract.currency
    rows = []
    for m in measures:
        lo, mid, hi, b = _per_path(low_p, m), _per_path(mid_p, m), _per_path(high_p, m), base[m]
        b_est, mid_est = _estimate(b, m), _estimate(mid, m)
        rows.append({
            "measure": m, "unit": _unit(m, cur), "assumption": "tail_months", "setting_unit": "months",
            "low_setting": settings[0], "base_setting": settings[1], "high_setting": settings[2],
            # Exactly the base where the tail cannot matter (a difference of 0 adds nothing).
            "low": b_est + (_estimate(lo, m) - mid_est), "base": b_est, "high": b_est + (_estimate(hi, m) - mid_est),
            "low_se": _paired_se(lo, mid, m), "high_se": _paired_se(hi, mid, m),
            "base_se": _paired_se(b, np.zeros_like(b), m),
        })
    return rows


# --- 2. plot -----------------------------------------------------------------------------------------
#: Words for the tornado's assumptions and measures (figures and memo), per language.
TORNADO_WORDS = {
    "en": {"treated": "{name} (programme)", "comparison": "{name} (comparison group)",
           "cost_amounts": "costs per participant", "prices": "prices per outcome",
           "provider_budget": "provider's budget", "tail_months": "months of savings after the term",
           "investor_moic": "investors' expected multiple", "investor_irr_median": "investors' median return",
           "net_savings": "{payer}: net savings", "probability_of_loss": "investors' chance of a loss",
           "outcome_payments": "{payer}: outcome payments", "down": "assumption lower",
           "up": "assumption higher", "title": "{measure}: one assumption at a time (base {base})"},
    "nl": {"treated": "{name} (programma)", "comparison": "{name} (vergelijkingsgroep)",
           "cost_amounts": "kosten per deelnemer", "prices": "prijzen per uitkomst",
           "provider_budget": "budget van de uitvoerder", "tail_months": "maanden besparing na de looptijd",
           "investor_moic": "verwachte terugbetaling per euro", "investor_irr_median": "mediaan jaarrendement",
           "net_savings": "{payer}: nettobesparing", "probability_of_loss": "kans op verlies voor investeerders",
           "outcome_payments": "{payer}: uitkomstbetalingen", "down": "aanname lager",
           "up": "aanname hoger", "title": "{measure}: één aanname tegelijk (basis {base})"},
}


def assumption_words(name: str, lang: str = "en") -> str:
    """A tornado assumption in words: ``treated.job_with_diploma`` -> ``job with diploma (programme)``."""
    w = TORNADO_WORDS[lang]
    group, _, param = str(name).partition(".")
    if param and group in ("treated", "comparison"):
        return w[group].format(name=param.replace("_", " "))
    return w.get(name, str(name).replace("_", " "))


def measure_words(measure: str, payer: str, lang: str = "en") -> str:
    """A tornado measure in words, e.g. ``net_savings`` -> ``Gemeente Utrecht: net savings``."""
    text = TORNADO_WORDS[lang].get(measure, str(measure).replace("_", " ")).format(payer=payer)
    return text[:1].upper() + text[1:]


def plot_tornado(frame: pd.DataFrame, measure: str, ax=None, payer: str = "payer", currency: str = "EUR",
                 lang: str = "en"):
    """Tornado chart of one measure from :func:`tornado`: bars from the base to the low and high results.

    Error bars are +/- 2 Monte Carlo standard errors of each difference.  Assumptions and the
    measure read as words, the axis in money, percent or a multiple.  Returns the figure.
    """
    from matplotlib.ticker import FuncFormatter

    from .language import Locale
    from .plots import _money, _plain

    rows = frame[frame["measure"] == measure].sort_values("swing", kind="stable")
    if rows.empty:
        raise ValueError(f"measure {measure!r} is not in the tornado frame")
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.6))
    else:
        fig = ax.figure
    w, loc = TORNADO_WORDS[lang], Locale(lang)
    base = float(rows["base"].iloc[0])
    y = np.arange(len(rows))
    for col, color, label in (("low", "#c0392b", w["down"]), ("high", "#2e86c1", w["up"])):
        ax.barh(y, rows[col] - base, left=base, color=color, alpha=0.8, label=label,
                xerr=2 * rows[f"{col}_se"].fillna(0.0), error_kw=dict(ecolor="black", lw=0.8, capsize=2))
    ax.axvline(base, color="black", lw=1)
    ax.set_yticks(y, labels=[_plain(assumption_words(a, lang)) for a in rows["assumption"]])
    unit = rows["unit"].iloc[0]
    if unit in ("per year", "probability", "share"):
        fmt = lambda v, _=None: loc.percent(v, 1)  # noqa: E731
    elif unit == "x":
        fmt = lambda v, _=None: loc.number(v, 3) + "x"  # noqa: E731
    else:
        fmt = _money(currency, lang)
    ax.xaxis.set_major_formatter(FuncFormatter(fmt))  # never an offset such as 1e6
    name = _plain(measure_words(measure, payer, lang))
    ax.set(title=w["title"].format(measure=name, base=fmt(base)))
    ax.legend(frameon=False, loc="lower right", fontsize=8)
    return fig


# --- 3. Sobol indices -----------------------------------------------------------------------------
def uncertain_parameters(contract: Contract) -> list[tuple[str, str, Prior]]:
    """Journey probabilities with an uncertain prior (sd > 0): ``(group, name, prior)``.

    ``group`` is ``treated`` or ``comparison``.
    """
    return [(group, name, prior) for group, journey in (("treated", contract.journey),
                                                        ("comparison", contract.comparison.journey))
            for name, prior in journey.parameters if not prior.is_fixed
            and (group == "treated" or name not in contract.comparison.shared)]


def _evaluate_chunk(contract: Contract, params: list, x: np.ndarray, seed: np.random.SeedSequence,
                    measures) -> np.ndarray:
    """Measures (s, m) for the m parameter sets in ``x`` (d, m) of one chunk: one path each, from ``seed``."""
    rng = np.random.Generator(np.random.PCG64(seed))
    m = x.shape[1]
    groups = {g: np.tile([p.mean for _, p in j.parameters], (m, 1))
              for g, j in (("treated", contract.journey), ("comparison", contract.comparison.journey))}
    names = {"treated": contract.journey.parameter_names, "comparison": contract.comparison.journey.parameter_names}
    for row, (group, name, prior) in enumerate(params):
        values = x[row]
        values = np.maximum(values, 0.0) if prior.kind == "rate" else np.clip(values, 0.0, 1.0)
        groups[group][:, names[group].index(name)] = values
        if group == "treated" and name in contract.comparison.shared:  # one draw for both groups
            groups["comparison"][:, names["comparison"].index(name)] = values
    paths = _paths(contract, _outcomes(contract, groups["treated"], groups["comparison"], rng, []))
    return np.array([_per_path(paths, k) for k in measures])


def _evaluate(contract: Contract, params: list, x: np.ndarray, seed: np.random.SeedSequence,
              measures, runner=None) -> np.ndarray:
    """Measures (s, m) for the m parameter sets in ``x`` (d, m): one path each, in engine-sized chunks,
    chunk ``k`` from child ``k`` of ``seed`` (so the chunks can run anywhere: ``runner(fn, jobs)``,
    e.g. :meth:`sibsim.distributed.DaskRunner.map`, with the same numbers)."""
    size = block_size(contract)
    starts = list(range(0, x.shape[1], size))
    seeds = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key, pool_size=seed.pool_size).spawn(len(starts))
    jobs = [(contract, params, x[:, a:a + size], s, measures) for a, s in zip(starts, seeds)]
    parts = runner(_evaluate_chunk, jobs) if runner is not None else [_evaluate_chunk(*job) for job in jobs]
    out = np.concatenate(parts, axis=1) if parts else np.empty((len(measures), 0))
    if not np.isfinite(out).all():
        bad = [k for k, row in zip(measures, out) if not np.isfinite(row).all()]
        raise ValueError(f"sobol: measures {bad} are not finite on every path; use finite ones (NPV, MOIC)")
    return out


def sobol(contract: Contract, n_base: int = 1024, seed=DEFAULT_SEED,
          measures=("investor_npv", "investor_moic", "payer_npv"), confidence: bool = True,
          runner=None) -> pd.DataFrame:
    """Sobol' indices of finite per-path measures over the uncertain journey probabilities.

    Each parameter with sd > 0 is distributed as its Beta prior; the others stay
    fixed.  :func:`scipy.stats.sobol_indices` draws ``n_base x (d + 2)`` parameter
    sets; each set is one simulated path (all sets of a call in one vectorised run,
    in engine-sized chunks), with fresh individual randomness.

    Individual randomness (participants' journeys, the comparison group's
    measurement noise, payer defaults) is not a parameter, so parameters explain
    only part of the variance:

    * ``explained_by_parameters``, the sum of the first-order indices, is the share
      the parameters explain one at a time (additively).  It sums d noisy
      estimates: for Colour Kitchen it ranged from about 0.45 to 0.75 over seeds at
      ``n_base = 1024``; read it with the per-index intervals;
    * ``noise_share`` is the share of individual randomness and measurement noise,
      estimated by simulating ``n_base`` parameter sets twice
      (``0.5 E[(y1 - y2)^2] / Var(y)``), a far more precise estimate;
      ``1 - noise_share`` is what the parameters explain with their interactions.

    Because the noise is drawn afresh in every evaluation, the raw Saltelli total
    index contains the whole noise share; ``total_order`` reported here has it
    subtracted (the parameter's own effect, interactions with other parameters
    included).

    Parameters
    ----------
    contract : Contract
    n_base : int
        Base sample size, a power of 2 (paths simulated: ``n_base x (d + 4)``).
    seed : int or SeedSequence
    measures : sequence of str
        Finite per-path columns of ``Results.paths`` (e.g. NPV in EUR, MOIC in x).
    confidence : bool
        Add 95 % bootstrap (BCa, 999 resamples) intervals; about a second.
    runner : callable or None
        ``runner(fn, jobs)`` maps the engine-sized chunks elsewhere (:meth:`sibsim.distributed.DaskRunner.map`);
        each chunk carries its own seed, so the indices are the same whatever runs them.

    Returns
    -------
    DataFrame
        One row per measure and parameter (``treated.diploma``, ``comparison.relapse``
        ...): ``first_order``, ``total_order`` (shares of Var(measure)), their
        ``_low``/``_high`` bounds, and per measure ``explained_by_parameters`` and
        ``noise_share``.  Estimates can fall slightly outside [0, 1] by sampling error.

    Raises
    ------
    ValueError
        If no journey probability is uncertain, or a measure is not finite.
    """
    params = uncertain_parameters(contract)
    if not params:
        raise ValueError("sobol: no uncertain journey probabilities (every prior has sd = 0), "
                         "so parameters explain nothing; give priors an sd")
    if n_base < 2 or n_base & (n_base - 1):
        raise ValueError(f"n_base: must be a power of 2, got {n_base!r}")
    measures = tuple(measures)
    design_seed, noise_seed, check_seed = _seed_sequence(seed).spawn(3)

    def func(x):  # fresh individual randomness for every call
        return _evaluate(contract, params, x, noise_seed.spawn(1)[0], measures, runner)

    dists = [stats.beta(*prior.alpha_beta) for _, _, prior in params]
    design = np.random.default_rng(design_seed)
    key = "rng" if "rng" in inspect.signature(stats.sobol_indices).parameters else "random_state"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy: balance properties of Sobol' points
        res = stats.sobol_indices(func=func, n=n_base, dists=dists, **{key: design})

    # Noise share: the same parameter sets twice, with independent individual randomness.
    rng = np.random.default_rng(check_seed)
    x = np.array([d.rvs(size=n_base, random_state=rng) for d in dists])
    y1, y2 = func(x), func(x)
    variance = np.var(np.concatenate([y1, y2], axis=1), axis=1, ddof=1)
    noise = np.divide(0.5 * np.mean((y1 - y2) ** 2, axis=1), variance,
                      out=np.zeros_like(variance), where=variance > 0)

    s, d = len(measures), len(params)
    first, total = (np.reshape(v, (s, d)) for v in (res.first_order, res.total_order))
    total = total - noise[:, None]
    bounds = {}
    if confidence:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            boot = res.bootstrap(confidence_level=0.95, n_resamples=999)
        for name, ci, shift in (("first_order", boot.first_order.confidence_interval, 0.0),
                                ("total_order", boot.total_order.confidence_interval, noise[:, None])):
            bounds[f"{name}_low"] = np.reshape(ci.low, (s, d)) - shift
            bounds[f"{name}_high"] = np.reshape(ci.high, (s, d)) - shift
    rows = []
    for i, measure in enumerate(measures):
        for j, (group, name, _) in enumerate(params):
            row = {"measure": measure, "parameter": f"{group}.{name}",
                   "first_order": first[i, j], "total_order": total[i, j]}
            row.update({k: v[i, j] for k, v in bounds.items()})
            row.update(explained_by_parameters=first[i].sum(), noise_share=noise[i])
            rows.append(row)
    columns = ["measure", "parameter", "first_order", "first_order_low", "first_order_high",
               "total_order", "total_order_low", "total_order_high", "explained_by_parameters", "noise_share"]
    return pd.DataFrame(rows).reindex(columns=[c for c in columns if c in rows[0]])


# --- 4. break-even ----------------------------------------------------------------------------------
_TARGETS = {
    "investor": ("E[distributions - capital called] = 0: the IRR of the investors' expected cash flows is 0 "
                 "(expected MOIC = 1 when the same capital is called on every path)",
                 lambda p: (p["distributions"] - p["capital_called"]).to_numpy(dtype=float)),
    "payer": ("E[payer net savings] = 0 (undiscounted, over the horizon)",
              lambda p: p["net_savings"].to_numpy(dtype=float)),
}


def success_variant(contract: Contract, factor: float) -> Contract:
    """The contract with the programme ``factor`` times as successful.

    The treated journey's success parameters (:attr:`Contract.success_parameter_names`,
    ``analysis.success_parameters``: e.g. the diploma and job-finding probabilities) have their
    prior means and sds multiplied by ``factor`` (probabilities clipped to [0, 1], sd kept a
    valid Beta sd); the parameters it lowers (:attr:`Contract.failure_parameter_names`, e.g. a
    reconviction rate) by ``2 - factor`` instead (at least 0), so a factor above 1 is always a better
    programme.
    The comparison group is left as it is. Factor 1 is the contract itself.
    """
    if factor < 0:
        raise ValueError(f"factor: must be >= 0, got {factor!r}")
    if factor == 1:
        return contract
    # What a better programme lowers (reconvictions, placements in special education) is times
    # (2 - factor): factor 1.1 is 10 % less, 0.9 is 10 % more, 2 (and beyond) none at all.
    factors = {k: factor for k in contract.success_parameter_names}
    factors.update({k: max(2.0 - factor, 0.0) for k in contract.failure_parameter_names})
    journey = _scaled_journey(contract.journey, factors, True)
    return replace(contract, journey=journey)


def break_even(contract: Contract, target: str = "investor", n_paths: int = 2000, seed=DEFAULT_SEED,
               bracket: tuple[float, float] = (0.0, 2.0), xtol: float = 1e-3, paired: "_Paired | None" = None) -> dict:
    """How successful must the programme be for ``target`` to break even?

    Success is a factor on the treated programme's success parameters (e.g. diploma and job probabilities)
    (:func:`success_variant`); the expected balance is evaluated on common random
    numbers (one base run reused for every factor) and its root found with
    :func:`scipy.optimize.brentq` in ``bracket``.

    Parameters
    ----------
    target : {"investor", "payer"}
        ``investor``: solves E[distributions - capital called] = 0 (EUR, undiscounted),
        i.e. the IRR of the expected investor cash flows is 0, which is an expected
        MOIC of 1 when capital called is the same on every path (not the median IRR).
        ``payer``: solves E[net savings] = 0 (EUR, undiscounted).
    n_paths : int
    seed : int or SeedSequence
    bracket : (float, float)
        Factors searched.
    xtol : float
        Tolerance on the factor.
    paired : _Paired, optional
        The base run of ``contract`` on ``n_paths`` and ``seed``, when the caller has it already
        (``sibsim report`` shares one between both targets and the named what-ifs).

    Returns
    -------
    dict
        ``status`` ``"ok"`` or ``"no_root_in_bracket"`` (then ``message`` says which side
        holds and the numbers are NaN); ``factor`` and ``factor_se``; ``balance_se`` (EUR,
        standard error of the expected balance at the root); ``primary_share``
        (expected share of treated participants reaching ``primary_outcome`` within the
        term at that factor) with ``primary_share_se``; ``base_primary_share``
        (factor 1); ``balance_at_low``/``balance_at_high`` (EUR, at the bracket ends);
        ``solves``; ``target``; ``n_paths``.  Standard errors are Monte Carlo errors:
        the balance's standard error at the root over the balance's slope (delta method),
        and for the share its own error plus the factor's.
    """
    if target not in _TARGETS:
        raise ValueError(f"target: must be one of {sorted(_TARGETS)}, got {target!r}")
    lo, hi = bracket
    if not 0 <= lo < hi:
        raise ValueError(f"bracket: must be 0 <= low < high, got {bracket!r}")
    if n_paths < 2:
        raise ValueError(f"n_paths: at least 2 for a standard error, got {n_paths!r}")
    solves, balance = _TARGETS[target]
    paired = _base_run(contract, n_paths, seed, paired)
    n_people = contract.n_participants
    cache: dict[float, pd.DataFrame] = {}

    def paths(f):
        if f not in cache:
            cache[f] = paired.run(success_variant(contract, f))
        return cache[f]

    def g(f):
        return float(balance(paths(f)).mean())

    def share(f):
        return paths(f)["primary_outcomes"].to_numpy(dtype=float) / n_people

    result = {"target": target, "solves": solves, "primary_outcome": contract.primary_outcome,
              "bracket_low": lo, "bracket_high": hi, "balance_at_low": g(lo), "balance_at_high": g(hi),
              "base_primary_share": float(share(1.0).mean()), "n_paths": n_paths,
              "status": "ok", "message": "", "factor": np.nan, "factor_se": np.nan, "balance_se": np.nan,
              "primary_share": np.nan, "primary_share_se": np.nan}
    if result["balance_at_low"] * result["balance_at_high"] > 0:
        why = (f"already breaks even at factor {lo:g}" if result["balance_at_low"] > 0
               else f"still falls short at factor {hi:g}")
        result.update(status="no_root_in_bracket", message=f"{target} {why}: no root in [{lo:g}, {hi:g}]")
        return result
    root = optimize.brentq(g, lo, hi, xtol=xtol)
    # Delta method: slopes by central differences on the same random numbers.
    down, up = max(root - 0.05, 0.0), root + 0.05
    slope = (g(up) - g(down)) / (up - down)
    share_slope = (share(up).mean() - share(down).mean()) / (up - down)
    balance_se = float(np.std(balance(paths(root)), ddof=1) / np.sqrt(n_paths))
    factor_se = balance_se / abs(slope) if slope else float("inf")
    s = share(root)
    result.update(factor=float(root), factor_se=factor_se, balance_se=balance_se, primary_share=float(s.mean()),
                  primary_share_se=float(np.hypot(np.std(s, ddof=1) / np.sqrt(n_paths), share_slope * factor_se)),
                  message=f"{target} breaks even at {root:.3f} x the programme's success")
    return result


# --- 5. command line ---------------------------------------------------------------------------------
def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sibsim sensitivity SCENARIO --out DIR [--paths N] [--seed S] [--sobol-base N] [--force]``."""
    from .cli import _positive_int, add_seed_argument  # the command line's own argument checks
    from .distributed import add_scheduler_argument

    p = subparsers.add_parser("sensitivity", help="tornado, Sobol indices and break-even success of a scenario")
    p.add_argument("scenario", help="scenario TOML file")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--paths", type=_positive_int, default=2000, help="paths per tornado/break-even run (default 2000)")
    add_seed_argument(p)
    p.add_argument("--sobol-base", type=_positive_int, default=1024,
                   help="Sobol base sample, a power of 2 (default 1024)")
    p.add_argument("--force", action="store_true", help="replace an output directory of another scenario or command")
    add_scheduler_argument(p, "the Sobol evaluations")
    p.set_defaults(func=cmd_sensitivity)
    return p


def cmd_sensitivity(args) -> int:
    """Write tornado.csv, tornado_<measure>.png, sobol.csv, breakeven.csv and run.json to ``args.out``."""
    from datetime import datetime, timezone
    from pathlib import Path

    from . import __version__
    from .errors import OutputError
    from .output import destination, write_outputs
    from .scenario import load_scenario

    scenario, out = Path(args.scenario), Path(args.out)
    contract = load_scenario(scenario)
    if args.sobol_base & (args.sobol_base - 1):
        raise OutputError(f"--sobol-base: must be a power of 2, got {args.sobol_base}")
    dest = destination(out, "dir", "sensitivity", [scenario], force=args.force)

    started = time.perf_counter()
    torn = tornado(contract, n_paths=args.paths, seed=args.seed)
    from .distributed import runner_for

    with runner_for(getattr(args, "scheduler", None)) as dask:
        sob = (sobol(contract, n_base=args.sobol_base, seed=args.seed, runner=None if dask is None else dask.map)
               if uncertain_parameters(contract) else None)
    even = pd.DataFrame([break_even(contract, t, n_paths=args.paths, seed=args.seed) for t in _TARGETS])
    seconds = time.perf_counter() - started

    def png(measure):
        def write(path):
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig = plot_tornado(torn, measure, payer=contract.payer.name, currency=contract.currency)
            fig.tight_layout()
            fig.savefig(path, dpi=150, format="png")
            plt.close(fig)
        return write

    from .safetext import csv_safe  # the currency in unit columns comes from the scenario: text stays text

    writers = {"tornado.csv": lambda p: csv_safe(torn).to_csv(p, index=False)}
    writers.update({f"tornado_{m}.png": png(m) for m in torn["measure"].unique()})
    if sob is not None:
        writers["sobol.csv"] = lambda p: csv_safe(sob).to_csv(p, index=False)
    writers["breakeven.csv"] = lambda p: csv_safe(even).to_csv(p, index=False)
    manifest = {"command": "sensitivity", "sibsim_version": __version__,
                "scenario_path": str(scenario.resolve()),
                **contract.files_record(),  # every file read: a variant and its bases
                "title": contract.title, "n_paths": args.paths, "seed": args.seed, "sobol_base": args.sobol_base,
                "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(seconds, 2)}
    files = write_outputs(out, writers, manifest, dest)

    print(f"{contract.title}: sensitivity, {args.paths:,} paths, seed {args.seed}, {seconds:.1f} s")
    for measure, rows in torn.groupby("measure", sort=False):
        fmt = {"x": "{:.3f}", "per year": "{:.2%}"}.get(rows["unit"].iloc[0], "{:,.0f}")
        print(f"\n{measure} ({rows['unit'].iloc[0]}): top 5 of {len(rows)} assumptions moved "
              f"-/+ {DEFAULT_SHIFT:.0%} (tail_months: 0 and twice): low (s.e. of low - base), base, high (s.e.)")
        for _, r in rows.head(5).iterrows():
            low, base, high, lse, hse = (fmt.format(r[k]) for k in ("low", "base", "high", "low_se", "high_se"))
            print(f"  {r['assumption']:<28} {low:>11} ({lse:>7})  {base:>11}  {high:>11} ({hse:>7})")
    if sob is not None:
        print("\nSobol: share of variance explained by parameters (sum of first-order indices); "
              "the rest is individual randomness, measurement noise and interactions")
        for measure, rows in sob.groupby("measure", sort=False):
            top = rows.loc[rows["first_order"].idxmax()]
            print(f"  {measure:<14} explained {rows['explained_by_parameters'].iloc[0]:6.1%}, noise "
                  f"{rows['noise_share'].iloc[0]:6.1%}; largest: {top['parameter']} ({top['first_order']:.2f})")
    moved = [f"+{k}" for k in contract.success_parameter_names] + [f"-{k}" for k in contract.failure_parameter_names]
    print("\nBreak-even (factor on the programme's success: " + ", ".join(moved) + "; - lowered by it):")
    for _, r in even.iterrows():
        if r["status"] == "ok":
            print(f"  {r['target']:<9} factor {r['factor']:.3f} +/- {r['factor_se']:.3f}; "
                  f"{r['primary_outcome']} share {r['primary_share']:.1%} +/- {r['primary_share_se']:.1%} "
                  f"(base {r['base_primary_share']:.1%})")
        else:
            print(f"  {r['target']:<9} {r['message']}")
    print(f"\nwrote {len(files)} files to {out}/: " + ", ".join(f.name for f in files))
    return 0


__all__ = ["add_parser", "assumptions", "break_even", "cmd_sensitivity", "plot_tornado", "sobol",
           "success_variant", "tail_settings", "tornado", "uncertain_parameters"]
