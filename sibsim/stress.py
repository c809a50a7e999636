"""Named what-ifs: the standard stress cases a council asks about, each against the base with its
paired Monte Carlo error.

=================  ==========================================================================
outflow            the treated group's outflow parameters (``analysis.outflow_parameters``, else
                   the success parameters) x 0.8: outflow 20 % lower
relapse            the treated group's relapse parameters (``analysis.relapse_parameters``) x 1.5
comparison         the comparison group 20 % better: its outflow parameters x 1.2 (its failure
                   parameters x 0.8 when the deal pays for fewer events)
labour_market      a labour-market dip: the labour-market parameters
                   (``analysis.labour_market_parameters``, else the outflow parameters) x 0.8 in
                   both groups
payment_later      every payment one year later: each payer's payment lag + 12 months
=================  ==========================================================================

A parameter's prior mean is scaled and its sd kept (as the tornado does; probabilities stay
in [0, 1]).  Each case is simulated with common random numbers (:class:`sibsim.sensitivity._Paired`):
the base run's draws mapped through the case's priors, so the difference from the base is the
effect of the change, with a paired standard error.  A later payment lengthens the horizon,
hence other blocks: that case is paired on an auxiliary run at the longer horizon, settled
once as the base and once with the later payments, and its difference is added to the base's
estimate (as the tornado's tail rows are).  A case whose parameters the scenario does not name
is listed with the reason and no numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .contracts import Contract
from .sensitivity import (_base_run, _estimate, _matters, _outcomes, _Paired, _paired_se, _paths, _per_path, _scaled_journey,
                          _seed_sequence, _truncated, _unit)
from .simulation import DEFAULT_SEED

#: Measures of every case: the payer's outcome payments, gross and net savings (mean, money) and the
#: investors' median IRR.
MEASURES = ("outcome_payments", "gross_savings", "net_savings", "investor_irr_median")
#: Factors of the standard cases.
OUTFLOW, RELAPSE, COMPARISON, LABOUR_MARKET, LATER_MONTHS = 0.8, 1.5, 1.2, 0.8, 12


@dataclass(frozen=True)
class Stress:
    """One named what-if.

    Attributes
    ----------
    key : str
        ``outflow``, ``relapse``, ``comparison``, ``labour_market`` or ``payment_later``.
    label : str
        What a council member asks: "Outflow 20 % lower".
    change : str
        What is changed in the scenario, naming its parameters.
    variant : Contract or None
        The contract of the case; None when the scenario names no parameters for it.
    reason : str
        Why the case does not apply (when ``variant`` is None).
    """

    key: str
    label: str
    change: str
    variant: Contract | None
    reason: str = ""


def _scale_group(contract: Contract, factors: dict[str, float], treated: bool, comparison: bool) -> Contract:
    out = contract
    if treated:
        names = set(contract.journey.parameter_names)
        mine = {k: f for k, f in factors.items() if k in names}
        out = replace(out, journey=_scaled_journey(out.journey, mine, False))
    if comparison:
        # A shared parameter is the programme group's draw in both groups: only the comparison's own move here.
        names = set(contract.comparison.journey.parameter_names) - set(contract.comparison.shared)
        theirs = {k: f for k, f in factors.items() if k in names}
        out = replace(out, comparison=replace(out.comparison,
                                              journey=_scaled_journey(out.comparison.journey, theirs, False)))
    return out


def _names(names) -> str:
    """Parameter names in words (``job_with_diploma`` -> ``job with diploma``)."""
    return ", ".join(_word(n) for n in names)


def _word(name: str) -> str:
    return name.replace("_", " ")


def _shared_note(contract: Contract, names) -> str:
    """`` (shared with the comparison group, which moves too)`` when some of ``names`` are drawn once for both."""
    shared = [n for n in names if n in contract.comparison.shared]
    return f"; {_names(shared)} shared with the comparison group, which moves too" if shared else ""


def _later(contract: Contract, months: int) -> Contract:
    payer = replace(contract.payer, payment_lag_months=contract.payer.payment_lag_months + months)
    split = tuple(replace(p, payment_lag_months=p.payment_lag_months + months) for p in contract.payer_split)
    return replace(contract, payer=payer, payer_split=split)


def standard_stresses(contract: Contract) -> list[Stress]:
    """The five standard cases for ``contract`` (module notes), in order."""
    out = []
    outflow = contract.outflow_parameter_names
    if outflow:
        out.append(Stress("outflow", "Outflow 20 % lower",
                          f"{_names(outflow)} x {OUTFLOW:g} (programme group{_shared_note(contract, outflow)})",
                          _scale_group(contract, {k: OUTFLOW for k in outflow}, True, False)))
    else:
        out.append(Stress("outflow", "Outflow 20 % lower", "", None,
                          "the scenario names no outflow or success parameters (analysis.outflow_parameters)"))
    relapse = contract.relapse_parameters
    if relapse:
        out.append(Stress("relapse", "Relapse 50 % higher",
                          f"{_names(relapse)} x {RELAPSE:g} (programme group{_shared_note(contract, relapse)})",
                          _scale_group(contract, {k: RELAPSE for k in relapse}, True, False)))
    else:
        out.append(Stress("relapse", "Relapse 50 % higher", "", None,
                          "the scenario names no relapse parameters (analysis.relapse_parameters)"))
    cj = set(contract.comparison.journey.parameter_names) - set(contract.comparison.shared)
    cjourney = contract.comparison.journey
    # Only what the comparison group can do: a known probability of 0 (no diplomas without the programme) stays 0.
    better = {k: COMPARISON for k in (contract.outflow_parameters or contract.success_parameter_names)
              if k in cj and _matters(cjourney, k)}
    if not contract.outflow_parameters:
        better.update({k: 2.0 - COMPARISON for k in contract.failure_parameter_names if k in cj and _matters(cjourney, k)})
    if better:
        out.append(Stress("comparison", "Comparison group 20 % better",
                          ", ".join(f"{_word(k)} x {f:g}" for k, f in better.items()) + " (comparison group)",
                          _scale_group(contract, better, False, True)))
    else:
        out.append(Stress("comparison", "Comparison group 20 % better", "", None,
                          "the comparison group has no outflow parameters of its own (none, or shared with the "
                          "programme group: one labour market)"))
    market = contract.labour_market_parameter_names
    if market:
        out.append(Stress("labour_market", "Labour-market dip",
                          f"{_names(market)} x {LABOUR_MARKET:g} (both groups)",
                          _scale_group(contract, {k: LABOUR_MARKET for k in market}, True, True)))
    else:
        out.append(Stress("labour_market", "Labour-market dip", "", None,
                          "the scenario names no labour-market parameters (analysis.labour_market_parameters)"))
    out.append(Stress("payment_later", "Payment one year later",
                      f"every payment lag + {LATER_MONTHS} months", _later(contract, LATER_MONTHS)))
    return out


def _row(stress: Stress, measure: str, cur: str, base_est: float, values=None, base=None) -> dict:
    """The case's row: the base run's estimate plus the paired difference of ``values`` from ``base``."""
    row = {"stress": stress.key, "label": stress.label, "change": stress.change, "measure": measure,
           "unit": _unit(measure, cur), "base": base_est, "value": np.nan, "difference": np.nan,
           "difference_se": np.nan, "reason": stress.reason}
    if values is not None:
        difference = _estimate(values, measure) - _estimate(base, measure)
        row.update(value=base_est + difference, difference=difference,
                   difference_se=_paired_se(values, base, measure))
    return row


def stress_test(contract: Contract, n_paths: int = 4000, seed=DEFAULT_SEED, measures=MEASURES,
                paired: _Paired | None = None) -> pd.DataFrame:
    """Every standard case against the base, on common random numbers.

    Returns
    -------
    DataFrame
        One row per case and measure: ``stress``, ``label``, ``change``, ``measure``, ``unit``,
        ``base`` (the estimate on ``simulate(contract, n_paths, seed)``), ``value`` (the case's),
        ``difference`` and its paired Monte Carlo standard error ``difference_se``, ``reason``
        (why a case does not apply: then the numbers are NaN).  ``attrs``: ``n_paths``, ``seed``.
        ``paired``: the base run, when the caller has it (see :func:`sibsim.sensitivity.break_even`).
    """
    paired = _base_run(contract, n_paths, seed, paired)
    base = {m: _per_path(paired.base, m) for m in measures}
    base_est = {m: _estimate(base[m], m) for m in measures}
    cur = contract.currency
    rows = []
    for stress in standard_stresses(contract):
        if stress.variant is None:
            rows += [_row(stress, m, cur, base_est[m]) for m in measures]
            continue
        if stress.key == "payment_later":
            rows += _later_rows(contract, stress, n_paths, seed, measures, base_est)
            continue
        case = paired.run(stress.variant)
        rows += [_row(stress, m, cur, base_est[m], _per_path(case, m), base[m]) for m in measures]
    frame = pd.DataFrame(rows)
    frame.attrs.update(n_paths=int(n_paths), seed=int(_seed_sequence(seed).entropy))
    return frame


def _later_rows(contract: Contract, stress: Stress, n_paths: int, seed, measures, base_est: dict) -> list[dict]:
    """A later payment, paired on an auxiliary run at the longer horizon (module notes)."""
    later = stress.variant
    aux = _Paired(later, n_paths, seed)
    base_frames, later_frames = [], []
    for treated, comparison, marks, common in aux.blocks:
        rng = np.random.Generator(np.random.PCG64(0))  # state replaced at every stage
        outcomes = _outcomes(later, treated, comparison, rng, marks, common)
        base_frames.append(_paths(contract, _truncated(outcomes, contract.horizon_months)))
        later_frames.append(_paths(later, outcomes))
    b, v = pd.concat(base_frames, ignore_index=True), pd.concat(later_frames, ignore_index=True)
    cur = contract.currency
    return [_row(stress, m, cur, base_est[m], _per_path(v, m), _per_path(b, m)) for m in measures]
