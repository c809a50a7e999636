"""The payment calculator: contract + observed outcomes -> who is paid what, and when.

Deterministic (no Monte Carlo): the same :func:`sibsim.cashflows.settle` the
simulator uses, applied to one path built from the evaluator's counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .cashflows import Cashflows
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
    investors : DataFrame
        Per investor (and ``all investors``): called, received, multiple, IRR and its status.
    cashflows : Cashflows
        The full one-path ledgers.
    """

    schedule: pd.DataFrame
    investors: pd.DataFrame
    cashflows: Cashflows


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
    for i, name in enumerate(names):
        columns[f"to {name}"] = cash.distributions[0, i] + cash.guarantee_payouts[0, i]
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
    return Settlement(schedule=schedule, investors=investors, cashflows=cash)
