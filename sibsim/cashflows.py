"""Settlement: Outcomes -> monthly ledgers of every party, as ``(paths, months)`` arrays.

The evaluator measures, at each measurement month, the outcomes achieved so
far by the treated group minus the comparison group (scaled to the treated
group's size).  The payer owes the rate-card price of those *net* outcomes plus
its share of the measured savings; what was already paid is deducted (a
high-water mark: a later dip is never clawed back), the total is capped at
``payment_cap``, and the payment falls due ``payment_lag_months`` later.

The vehicle passes each payment on to the investors, seniority class by
class, pro rata to commitments within a class, never beyond an investor's
*return cap*: the capital called compounded at the capped annual rate, less
what was already distributed.  Whatever exceeds the caps is never paid: it
stays with the payer (``retained_by_payer``).

Ledger identities (checked by the test suite on every path):

* ``outcome_payments_due == outcome_payments + retained_by_payer``
* ``distributions.sum(investors) == outcome_payments``
* ``capital_calls.sum(investors) == provider_funding + investor_fees``
* ``net_savings == gross_savings - outcome_payments - payer_fees``
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contracts import Contract
from .montecarlo import Outcomes


@dataclass(frozen=True)
class Cashflows:
    """Monthly ledgers in EUR; ``P`` paths, ``I`` investors, ``T`` months.

    Attributes
    ----------
    capital_calls : (I, T)
        Capital paid in by each investor (deterministic: follows the budget).
    distributions : (P, I, T)
        Cash paid out to each investor.
    outcome_payments_due : (P, T)
        What the payer owes under the payment formula and payment cap.
    outcome_payments : (P, T)
        What the payer actually pays (due, less what exceeds the return caps).
    retained_by_payer : (P, T)
        Due but not paid because every investor reached its return cap.
    gross_savings : (P, T)
        Benefit payments avoided: treated minus counterfactual months off benefits, times the benefit.
    payer_fees, investor_fees, provider_funding : (T,)
        Fees borne by each side; the provider's delivery budget (paid out of capital calls).
    measured_outcomes : (P, 4, M)
        Net outcomes (treated minus counterfactual) per outcome type at each measurement.
    """

    capital_calls: np.ndarray
    distributions: np.ndarray
    outcome_payments_due: np.ndarray
    outcome_payments: np.ndarray
    retained_by_payer: np.ndarray
    gross_savings: np.ndarray
    payer_fees: np.ndarray
    investor_fees: np.ndarray
    provider_funding: np.ndarray
    measured_outcomes: np.ndarray

    @property
    def net_savings(self) -> np.ndarray:
        """Payer's monthly net position: savings less outcome payments and payer fees, (P, T)."""
        return self.gross_savings - self.outcome_payments - self.payer_fees[None, :]

    @property
    def investor_net(self) -> np.ndarray:
        """All investors together: distributions less capital calls, (P, T)."""
        return self.distributions.sum(axis=1) - self.capital_calls.sum(axis=0)[None, :]


def measure(contract: Contract, outcomes: Outcomes) -> tuple[np.ndarray, np.ndarray]:
    """Evaluator's measurement at each measurement month.

    Returns
    -------
    net_outcomes : ndarray (paths, 4, M)
        Outcomes achieved before each measurement month, treated minus counterfactual.
    net_savings_measured : ndarray (paths, M)
        EUR of benefits avoided before each measurement month, treated minus counterfactual.
    """
    months = np.array(contract.payer.measurement_months)
    T = contract.horizon_months
    net_events = outcomes.treated.events - outcomes.counterfactual_events()  # (P, C, K, T)
    cum_events = np.cumsum(net_events.sum(axis=1), axis=-1)  # (P, K, T)
    net_outcomes = cum_events[:, :, months - 1]
    off_benefits = (outcomes.treated.employed - outcomes.counterfactual_employed()).sum(axis=1)  # (P, T)
    cum_saved = np.cumsum(off_benefits * contract.savings.per_month(T)[None, :], axis=-1)
    return net_outcomes, cum_saved[:, months - 1]


def payments_due(contract: Contract, net_outcomes: np.ndarray, measured_savings: np.ndarray) -> np.ndarray:
    """Outcome payments falling due each month, (paths, months), under the formula and the payment cap."""
    payer = contract.payer
    entitlement = np.einsum("pkm,k->pm", np.maximum(net_outcomes, 0.0), payer.prices)
    entitlement += payer.savings_share * np.maximum(measured_savings, 0.0)
    cumulative = np.maximum.accumulate(entitlement, axis=-1)  # high-water mark: no clawback
    if payer.payment_cap is not None:
        cumulative = np.minimum(cumulative, payer.payment_cap)
    per_measurement = np.diff(cumulative, axis=-1, prepend=0.0)
    due = np.zeros((net_outcomes.shape[0], contract.horizon_months))
    pay_months = np.array(payer.measurement_months) + payer.payment_lag_months
    np.add.at(due, (slice(None), pay_months), per_measurement)  # pay months are distinct: plain add
    return due


def distribute(contract: Contract, calls: np.ndarray, due: np.ndarray) -> np.ndarray:
    """Pass payments to investors by seniority, pro rata within a class, within return caps.

    Parameters
    ----------
    calls : ndarray (I, T)
        Capital calls per investor, EUR.
    due : ndarray (P, T)
        Outcome payments available to distribute, EUR.

    Returns
    -------
    distributions : ndarray (P, I, T)
    """
    P, T = due.shape
    investors = contract.investors
    weights = np.array([i.commitment for i in investors])
    monthly = np.array([np.inf if i.return_cap is None else (1.0 + i.return_cap) ** (1 / 12) - 1.0
                        for i in investors])
    capped = np.isfinite(monthly)
    growth = np.where(capped, 1.0 + np.where(capped, monthly, 0.0), 1.0)
    classes = sorted({i.seniority for i in investors})
    balance = np.zeros((P, len(investors)))  # capped claim still outstanding
    out = np.zeros((P, len(investors), T))
    for t in range(T):  # loop over months (balances compound), vectorised over paths
        balance = balance * growth + calls[:, t]
        left = due[:, t].copy()
        if not left.any():
            continue
        room = np.where(capped, balance, np.inf)
        paid = np.zeros_like(balance)
        for seniority in classes:
            members = np.array([i.seniority == seniority for i in investors])
            # Water-filling: share pro rata; what a capped investor cannot take goes round again.
            for _ in range(int(members.sum())):
                open_ = members & (room - paid > 1e-9)  # (P, I)
                w = np.where(open_, weights, 0.0)
                total = w.sum(axis=1, keepdims=True)
                share = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
                # Clamped at 0: float round-off (a claim overshot by an ulp, or a residual
                # ``left`` a hair below 0) must never turn into a negative distribution.
                give = np.minimum(left[:, None] * share, np.maximum(room - paid, 0.0))
                paid += give
                left = np.maximum(left - give.sum(axis=1), 0.0)
        out[:, :, t] = paid
        balance = balance - paid
    return out


def settle(contract: Contract, outcomes: Outcomes) -> Cashflows:
    """Turn simulated outcomes into every party's monthly ledger."""
    T = contract.horizon_months
    net_outcomes, measured_savings = measure(contract, outcomes)
    due = payments_due(contract, net_outcomes, measured_savings)
    calls = contract.capital_calls()
    distributions = distribute(contract, calls, due)
    paid = distributions.sum(axis=1)
    off_benefits = (outcomes.treated.employed - outcomes.counterfactual_employed()).sum(axis=1)
    return Cashflows(
        capital_calls=calls,
        distributions=distributions,
        outcome_payments_due=due,
        outcome_payments=paid,
        retained_by_payer=due - paid,
        gross_savings=off_benefits * contract.savings.per_month(T)[None, :],
        payer_fees=contract.fee_schedule("payer"),
        investor_fees=contract.fee_schedule("investors"),
        provider_funding=contract.provider_budget.to_array(T),
        measured_outcomes=net_outcomes,
    )
