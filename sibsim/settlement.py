"""The payment calculator: contract + observed outcomes -> who is paid what, and when.

Deterministic (no Monte Carlo): the same :func:`sibsim.cashflows.settle` the
simulator uses, applied to one path built from the evaluator's counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .cashflows import BY_EXTERNAL_EVENT, Cashflows
from .cashflows import settle as settle_outcomes
from .contracts import Contract
from .irr import STATUS_LABELS, irr
from .observed import Observed, load_observed, outcomes_from_observed


@dataclass(frozen=True)
class Settlement:
    """Result of :func:`settle`.

    Attributes
    ----------
    schedule : DataFrame
        One row per month in which money moves: capital calls, payments due, paid,
        defaulted, retained, recycled, distributions and guarantee payouts per investor (EUR).
        With several payers, guarantees or payments to the provider, a column per party
        (``paid by NAME``, ``to the provider``, ``recouped by NAME``).
    investors : DataFrame
        Per tranche (and ``all investors``): called, received, multiple, IRR and its status; with
        interest-bearing tranches also the interest and principal parts of what was received.
    cashflows : Cashflows
        The full one-path ledgers.
    termination : str
        How the contract ended early (month and reason), or empty if it ran its course.
    """

    schedule: pd.DataFrame
    investors: pd.DataFrame
    cashflows: Cashflows
    termination: str = ""


def settle(contract: Contract, observed: Observed | str | Path) -> Settlement:
    """Apply the contract's payment formula to observed outcomes.

    Parameters
    ----------
    contract : Contract
    observed : Observed, or path to a ``.toml`` / ``.csv`` file (see :mod:`sibsim.observed`)

    Returns
    -------
    Settlement
    """
    if not isinstance(observed, Observed):
        observed = load_observed(observed)
    cash = settle_outcomes(contract, outcomes_from_observed(contract, observed))
    names = [i.name for i in contract.investors]
    columns = {
        "capital_calls": cash.capital_calls[0].sum(axis=0),
        "recycled": cash.recycled[0],
        "outcome_payments_due": cash.outcome_payments_due[0],
        "defaulted_by_payer": cash.defaulted_by_payer[0],
        "retained_by_payer": cash.retained_by_payer[0],
        "outcome_payments": cash.outcome_payments[0],
    }
    if len(contract.payers) > 1:
        for j, payer in enumerate(contract.payers):
            columns[f"paid by {payer.name}"] = (cash.payer_due[j, 0] - cash.payer_defaulted[j, 0]
                                                - cash.payer_retained[j, 0])
    for i, name in enumerate(names):
        columns[f"to {name}"] = cash.distributions[0, i] + cash.guarantee_payouts[0, i]
    to_provider = cash.provider_payments[0] + cash.provider_outcome_payments[0]
    if np.abs(to_provider).max(initial=0.0) > 0.005:
        columns["to the provider"] = to_provider
    if cash.waterfall_fees[0].any():
        columns["fees from the waterfall"] = cash.waterfall_fees[0]
    for guarantor in dict.fromkeys(g.guarantor for g in contract.guarantees):
        mask = np.array([g.guarantor == guarantor for g in contract.guarantees])
        columns[f"paid by {guarantor} (guarantee)"] = cash.guarantor_payments[mask, 0].sum(axis=0)
        if cash.recoveries[mask, 0].any():
            columns[f"recouped by {guarantor}"] = cash.recoveries[mask, 0].sum(axis=0)
    schedule = pd.DataFrame(columns)
    schedule.index.name = "month"
    schedule = schedule.loc[(schedule.abs() > 0.005).any(axis=1)]

    flows = np.concatenate([cash.distributions[0] + cash.guarantee_payouts[0] - cash.capital_calls[0],
                            cash.investor_net], axis=0)  # (I + 1, T)
    inflows = np.concatenate([cash.distributions[0] + cash.guarantee_payouts[0],
                              (cash.distributions[0] + cash.guarantee_payouts[0]).sum(axis=0, keepdims=True)])
    rates = irr(flows, received=inflows)  # receipts kept apart from calls: a netted month is not a total loss
    called = np.append(cash.capital_calls[0].sum(axis=1), cash.capital_calls[0].sum())
    received = np.append((cash.distributions[0] + cash.guarantee_payouts[0]).sum(axis=1),
                         (cash.distributions[0] + cash.guarantee_payouts[0]).sum())
    investors = pd.DataFrame({
        "investor": names + ["all investors"],
        "capital_called": called,
        "received": received,
        "multiple": np.divide(received, called, out=np.full_like(called, np.nan), where=called > 0),
        "irr": rates.rate,
        "irr_status": [STATUS_LABELS[int(s)] for s in rates.status],
    }).set_index("investor")
    if any(t.interest > 0 for t in contract.investors):
        interest = cash.interest_paid[0].sum(axis=1)
        principal = cash.principal_repaid[0].sum(axis=1)
        investors.insert(2, "interest_paid", np.append(interest, interest.sum()))
        investors.insert(3, "principal_repaid", np.append(principal, principal.sum()))
    return Settlement(schedule=schedule, investors=investors, cashflows=cash, termination=termination_text(contract, cash))


def termination_text(contract: Contract, cash: Cashflows, path: int = 0) -> str:
    """How path ``path`` ended early, in a sentence (empty if it ran its course)."""
    if not cash.terminated[path]:
        return ""
    month = int(cash.termination_month[path])
    if int(cash.termination_reason[path]) == BY_EXTERNAL_EVENT:
        why = f"an external event ({contract.external_stop.reason})"
    else:
        review = contract.payer.review
        parts = [f"{measure.replace('_', ' ')} of {contract.outcome_label(outcome)} below {floor:g}"
                 for outcome, measure, floor in review.conditions]
        joined = (" or " if review.combine == "any" else " and ").join(parts)
        why = f"its review at month {review.month} ({joined})"
    return (f"terminated early in month {month} by {why}: no intake, capital calls or measurements "
            "after it")
