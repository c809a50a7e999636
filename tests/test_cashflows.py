"""Money tests: settlement (sibsim.cashflows) and per-path measures (sibsim.metrics).

Three layers:

1. Small contracts whose journeys are deterministic (probabilities 0 or 1), so
   every number is known; each expected value is derived by hand in the
   comments and asserted to the cent (IRRs to 1e-9).  Some go through the whole
   engine (``simulate_outcomes`` / ``simulate``), some feed hand-made
   :class:`Outcomes` arrays to :func:`settle` in isolation.
2. The ledger identities of the cashflows docstring, on every path of real
   runs of the Colour Kitchen scenario and of variants that make each cap bind.
3. Hypothesis properties over random small contracts and random outcome
   arrays: monotone in outcomes, caps never violated, money conserved.
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from functools import partial

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from sibsim import simulate
from sibsim import waterfall, waterfall_kernel
from sibsim.cashflows import Cashflows, measure, payments_due, settle
from sibsim.contracts import (
    Cohort,
    Contract,
    CostBand,
    CostItem,
    Fee,
    Investor,
    OutcomePayer,
    SavingsShare,
    Schedule,
)
from sibsim.irr import IRR_DEFINED, IRR_TOTAL_LOSS, irr
from sibsim.metrics import path_metrics
from sibsim.montecarlo import GroupOutcomes, Outcomes, block_size, simulate_outcomes
from tests import legacy

CENT = 0.005  # "to the cent": absolute tolerance in EUR
EUR_TOL = 1e-6  # identities on every path
# Index of each Colour Kitchen outcome in the old (events, employed) arrays of legacy.groups.
DIPLOMA, JOB_START, JOB_SUSTAINED, LTC = range(len(legacy.CK_OUTCOMES))


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def cents(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=0, atol=CENT)


def monthly(T: int, entries: dict[int, float] | None = None, ranges=()) -> np.ndarray:
    """Hand-written monthly series: {month: EUR} plus (from, to_inclusive, EUR) ranges."""
    out = np.zeros(T)
    for m0, m1, v in ranges:
        out[m0:m1 + 1] = v
    for m, v in (entries or {}).items():
        out[m] = v
    return out


def reference_irr(flows) -> float:
    """Annual IRR by plain root finding (independent of sibsim.irr): sum c_t (1+R)^(-t/12) = 0."""
    flows = np.asarray(flows, float)
    t = np.arange(flows.size) / 12.0
    return brentq(lambda r: float(flows @ (1.0 + r) ** -t), -0.9, 10.0, xtol=1e-15, rtol=1e-15, maxiter=500)


def journey(L=0, diploma=0.0, dropout=0.0, job_with_diploma=0.0, job_without_diploma=0.0,
            relapse=0.0, relapse_long_term=0.0, long_term_contract=0.0) -> dict:
    return dict(max_training_months=L, diploma=diploma, dropout=dropout, job_with_diploma=job_with_diploma,
                job_without_diploma=job_without_diploma, relapse=relapse,
                relapse_long_term=relapse_long_term, long_term_contract=long_term_contract)


# Everyone starts a job in the intake month and keeps it; every sustained job is long-term.
JOB_AT_INTAKE = journey(job_without_diploma=1.0, long_term_contract=1.0)
# Nobody ever does anything: counterfactual 0.
NOTHING = journey()


def base_doc() -> dict:
    """The hand-computed contract "A" (a dict shaped like a scenario TOML).

    * 24 months, one cohort of 10 at month 0, sustained = 6 months in a job.
    * Treated: no training (L=0), job prob 1 -> 10 job starts in month 0; relapse 0 ->
      10 sustained at 0 + 6 - 1 = month 5, all long-term (prob 1) at month 5;
      10 off benefits in every month 0..23.
    * Comparison (10 members): all probabilities 0 -> counterfactual 0.
    * Measurements at months 3 and 12 (outcomes in months < m), payment 2 months later
      (months 5 and 14).  Rate card: job start 1,000, sustained 3,000, long-term 2,000.
    * Savings: benefit 1,000/month x 50 % saved = 500 per person-month in year 1
      (months 0-11), x 1.10 indexation = 550 in year 2 (months 12-23); savings share 10 %.
    * Investors A (30,000) and B (10,000): weights 3/4 and 1/4, no caps.
    * Provider budget 8,000 in months 0-3; investor fee 4,000 at month 0;
      payer fee 1,000 at month 12.
    """
    return {
        "meta": {"title": "hand-computed A"},
        "term": {"term_months": 24, "tail_months": 0, "sustained_job_months": 6},
        "investors": [
            {"name": "A", "commitment": 30_000},
            {"name": "B", "commitment": 10_000},
        ],
        "provider": {"name": "P", "budget": [{"from_month": 0, "to_month": 3, "per_month": 8_000}]},
        "fees": [
            {"name": "structuring", "paid_by": "investors", "schedule": [{"month": 0, "amount": 4_000}]},
            {"name": "evaluation", "paid_by": "payer", "schedule": [{"month": 12, "amount": 1_000}]},
        ],
        "payer": {
            "name": "Gemeente",
            "measurement_months": [3, 12],
            "payment_lag_months": 2,
            "savings_share": 0.1,
            "rate_card": {"job_start": 1_000, "job_sustained": 3_000, "long_term_contract": 2_000},
        },
        "savings": {
            "share_saved_when_employed": 0.5,
            "annual_indexation": 0.10,
            "benefit": [{"age_band": "all", "amount_per_month": 1_000, "share": 1.0}],
        },
        "cohorts": [{"intake_month": 0, "size": 10}],
        "journey": JOB_AT_INTAKE,
        "comparison": {"size_ratio": 1.0, "journey": NOTHING},
        "analysis": {"investor_discount_rate": 0.05, "public_discount_rate": 0.03},
    }


def contract_of(doc: dict) -> Contract:
    """The contract of an old-format scenario dict (``[journey]`` of the seven Colour Kitchen
    probabilities, ``[savings]``), through the state-machine format (:func:`tests.legacy.new_format`)."""
    from sibsim.scenario import contract_from_dict

    doc = legacy.new_format(doc)
    # The old loader's default primary outcome (the new one defaults to the first outcome defined).
    doc.setdefault("analysis", {}).setdefault("primary_outcome", "job_sustained")
    return contract_from_dict(doc, "<test>")


def ck_rows(contract: Contract, per_outcome: np.ndarray) -> np.ndarray:
    """Rows of an (..., outcomes, M) array in the old order (diploma, job start, sustained, long-term);
    zeros for an outcome the contract does not define (no training: no diploma).  The new
    occupancy outcome ``benefit_months`` (months in work) is read with :func:`outcome_row`."""
    per_outcome = np.asarray(per_outcome)
    names = contract.outcome_names
    out = np.zeros(per_outcome.shape[:-2] + (len(legacy.CK_OUTCOMES), per_outcome.shape[-1]))
    for k, name in enumerate(legacy.CK_OUTCOMES):
        if name in names:
            out[..., k, :] = per_outcome[..., names.index(name), :]
    return out


def outcome_row(contract: Contract, per_outcome: np.ndarray, name: str) -> np.ndarray:
    """One outcome's row of an (..., outcomes, M) array."""
    return np.asarray(per_outcome)[..., contract.outcome_index(name), :]


def run_deterministic(contract: Contract, n_paths: int = 3):
    """Engine run of a deterministic contract: every path must be identical; return path 0's view."""
    outcomes = simulate_outcomes(contract, n_paths, np.random.default_rng(12345))
    cash = settle(contract, outcomes)
    check_ledgers(contract, cash, outcomes=outcomes)
    for arr in (cash.capital_calls, cash.distributions, cash.guarantee_payouts, cash.outcome_payments_due,
                cash.defaulted_by_payer, cash.retained_by_payer, cash.recycled, cash.gross_savings,
                cash.measured_outcomes, cash.terminated):
        assert (arr == arr[:1]).all(), "deterministic contract gave different paths"
    frame = path_metrics(contract, cash, outcomes)
    res = simulate(contract, n_paths=4, seed=7)
    # simulate() keeps summaries only: per-path table and mean monthly ledgers (all paths equal here).
    ledgers = res.expected_ledgers
    cents(ledgers["outcome_payments_due"], cash.outcome_payments_due[0])
    cents(ledgers["distributions"], cash.distributions[0].sum(axis=0))
    cents(ledgers["retained_by_payer"], cash.retained_by_payer[0])
    cents(ledgers["gross_savings"], cash.gross_savings[0])
    cents(ledgers["net_savings"], cash.net_savings[0])
    cents(ledgers["capital_calls"], cash.capital_calls[0].sum(axis=0))
    cents(ledgers["defaulted_by_payer"], cash.defaulted_by_payer[0])
    cents(ledgers["recycled"], cash.recycled[0])
    cents(ledgers["guarantee_payouts"], cash.guarantee_payouts[0].sum(axis=0))
    for col in ("distributions", "outcome_payments", "retained_by_payer", "defaulted_by_payer", "guarantee_payouts",
                "gross_savings", "net_savings", "investor_moic", "investor_npv", "payer_npv", "capital_called",
                "investor_loss"):
        cents(res.paths[col], np.full(4, frame[col].iloc[0]))
    assert (res.paths["terminated"] == frame["terminated"].iloc[0]).all()
    np.testing.assert_allclose(res.paths["investor_irr"], frame["investor_irr"].iloc[0], rtol=0, atol=1e-12)
    # The summary's renamed rows are the per-path means (all paths equal here, so standard error 0).
    summary = res.summary()["estimate"]
    for metric, col in (("expected_capital_called", "capital_called"), ("expected_distributions", "distributions"),
                        ("expected_guarantee_payouts", "guarantee_payouts"),
                        ("expected_defaulted", "defaulted_by_payer"),
                        ("expected_retained_above_caps", "retained_by_payer")):
        cents(summary[metric], frame[col].iloc[0])
    assert summary["probability_terminated_early"] == float(frame["terminated"].iloc[0])
    return cash, frame.iloc[0]


def investor_flows(cash: Cashflows, path: int, i: int) -> np.ndarray:
    """One investor's net flows on one path (distributions and guarantee payouts less calls)."""
    return cash.distributions[path, i] + cash.guarantee_payouts[path, i] - cash.capital_calls[path, i]


# ---------------------------------------------------------------------------------------
# ledger identities, used by every test
# ---------------------------------------------------------------------------------------
def check_ledgers(contract: Contract, cash: Cashflows, check_irr: bool = True, outcomes: Outcomes | None = None
                  ) -> None:
    """Every identity and cap of the cashflows docstring, on every path and month.

    ``outcomes`` (optional) are the Outcomes settled: then defaults are checked against
    ``outcomes.payer_default`` too.
    """
    T = contract.horizon_months
    calls, dist, gpay = cash.capital_calls, cash.distributions, cash.guarantee_payouts
    P, I, _ = dist.shape
    G = len(contract.guarantees)
    close = partial(np.testing.assert_allclose, rtol=0, atol=EUR_TOL)
    assert calls.shape == dist.shape == gpay.shape == (P, I, T)
    assert cash.guarantor_payments.shape == (G, P, T)
    for name in ("outcome_payments_due", "defaulted_by_payer", "retained_by_payer", "outcome_payments", "recycled",
                 "vehicle_cash", "gross_savings", "provider_funding", "investor_fees"):
        assert getattr(cash, name).shape == (P, T), name
    assert cash.payer_fees.shape == (T,) and cash.terminated.shape == (P,)
    payer_mask = np.array([g.guarantor == contract.payer.name for g in contract.guarantees], dtype=bool)
    np.testing.assert_array_equal(cash.payer_guarantee_mask, payer_mask)
    payer_guarantees = cash.guarantor_payments[payer_mask].sum(axis=0)  # (P, T)
    other_guarantors = cash.guarantor_payments[~payer_mask].sum(axis=0)

    # The four identities of the cashflows docstring, monthly, on every path.
    close(cash.outcome_payments_due, cash.outcome_payments + cash.defaulted_by_payer + cash.retained_by_payer)
    close(cash.outcome_payments, dist.sum(axis=1) + cash.recycled + np.diff(cash.vehicle_cash, axis=1, prepend=0.0))
    close(calls.sum(axis=1) + cash.recycled, cash.provider_funding + cash.investor_fees)
    close(cash.net_savings,
          cash.gross_savings - cash.outcome_payments - cash.payer_fees[None, :] - payer_guarantees)
    close(cash.payer_guarantee_payouts, payer_guarantees)
    # Guarantors pay exactly what the investors receive from guarantees.
    close(gpay.sum(axis=1), cash.guarantor_payments.sum(axis=0))
    # Cash conservation across every party, monthly: what the payer, the investors and the outside
    # guarantors pay in is what the provider, the fee recipients and the vehicle's cash box receive.
    paid_in = (cash.outcome_payments + cash.payer_fees[None, :] + payer_guarantees  # payer
               + (calls - dist - gpay).sum(axis=1)  # investors
               + other_guarantors)
    received = cash.provider_funding + cash.investor_fees + cash.payer_fees[None, :] \
        + np.diff(cash.vehicle_cash, axis=1, prepend=0.0)
    close(paid_in, received)
    # investor_net is the investors' side of it.
    close(cash.investor_net, (dist + gpay - calls).sum(axis=1))

    # Signs: nobody pays back what they received.
    assert (dist >= 0).all(), f"negative distribution {dist.min()}"
    assert (gpay >= 0).all() and (cash.guarantor_payments >= 0).all()
    assert (calls >= 0).all()
    assert (cash.outcome_payments_due >= 0).all()
    assert (cash.defaulted_by_payer >= 0).all()
    assert (cash.defaulted_by_payer <= cash.outcome_payments_due + EUR_TOL).all()
    # Withheld money (every investor at its cap) is a stock: retained is its monthly change, and it
    # can be paid out later (negative retained), never more than was withheld.
    close(np.cumsum(cash.retained_by_payer, axis=1), cash.withheld_by_payer)
    assert (cash.withheld_by_payer >= -EUR_TOL).all()
    assert (cash.recycled >= 0).all() and (cash.vehicle_cash >= -EUR_TOL).all()
    # Net payments can dip below 0 only where held (recycling) money is handed back; never cumulatively.
    assert (np.cumsum(cash.outcome_payments, axis=1) >= -EUR_TOL).all()
    if not contract.recycling:
        assert (cash.outcome_payments >= -EUR_TOL).all()
        assert (cash.recycled == 0).all() and (cash.vehicle_cash == 0).all()
    else:
        # Outcome money is held only until delivery ends, then all released; nothing is distributed
        # before (the vehicle first funds what delivery still needs).
        close(cash.vehicle_cash[:, -1], 0.0)
        needs = (cash.provider_funding + cash.investor_fees) > 0
        # A path with no delivery need at all (nothing to fund) releases outcome money at once.
        delivery_ends = np.where(needs.any(axis=1), T - 1 - np.argmax(needs[:, ::-1], axis=1), 0)
        before_end = np.arange(T)[None, :] < delivery_ends[:, None]  # (P, T)
        assert (dist.sum(axis=1)[before_end] == 0).all()
        # Recycled money was received first.
        assert (np.cumsum(cash.recycled, axis=1)
                <= np.cumsum(cash.outcome_payments_due - cash.defaulted_by_payer, axis=1) + EUR_TOL).all()
    # Payer defaults only on payments it was drawn to miss, and then on all of it.
    pay_months = np.array(contract.payment_months, dtype=int)
    if outcomes is not None:
        defaults = np.zeros((P, T), dtype=bool)
        if outcomes.payer_default is not None:
            defaults[:, pay_months] = outcomes.payer_default
        assert (cash.defaulted_by_payer[~defaults] == 0).all()
        close(cash.defaulted_by_payer[defaults], cash.outcome_payments_due[defaults])
    # Payment cap on what the payer pays or still owes (due and not defaulted), hence on what it pays.
    if contract.payer.payment_cap is not None:
        owed = np.cumsum(cash.outcome_payments_due - cash.defaulted_by_payer, axis=1)
        assert (owed <= contract.payer.payment_cap + EUR_TOL).all()
        assert (np.cumsum(cash.outcome_payments, axis=1) <= contract.payer.payment_cap + EUR_TOL).all()
    # Payments fall due only at measurement (or trigger) months + lag.
    off = np.ones(T, bool)
    off[pay_months] = False
    assert (cash.outcome_payments_due[:, off] == 0).all()

    # Delivery: the planned budget and investor fees, stopped from the review month on a termination.
    review = contract.payer.review
    active = np.ones((P, T))
    if review is None:
        assert not cash.terminated.any()
    else:
        active[cash.terminated, review.month:] = 0.0
    close(cash.provider_funding, contract.provider_budget.to_array(T)[None, :] * active)
    close(cash.investor_fees, contract.fee_schedule("investors")[None, :] * active)
    np.testing.assert_array_equal(cash.payer_fees, contract.fee_schedule("payer"))
    # Calls pro rata to commitments, never above the plan (recycling and termination only lower them).
    commitments = np.array([i.commitment for i in contract.investors])
    per_euro = calls / commitments[None, :, None]
    np.testing.assert_allclose(per_euro, np.broadcast_to(per_euro[:, :1], per_euro.shape), rtol=1e-12, atol=1e-12)
    assert (calls <= contract.capital_calls()[None] + EUR_TOL).all()

    # Waterfall.  claims[p, i]: capital called compounded at the cap, less distributions (capped investors).
    growth = np.array([1.0 if inv.return_cap is None else (1.0 + inv.return_cap) ** (1 / 12)
                       for inv in contract.investors])
    capped = np.array([inv.return_cap is not None for inv in contract.investors])
    repayable = np.array([inv.repayable for inv in contract.investors])
    seniority = np.array([inv.seniority for inv in contract.investors])
    # Grants are called like capital but never repaid.
    assert (dist[:, ~repayable] == 0).all()
    claims = np.zeros((P, I))
    for t in range(T):
        claims = claims * growth + calls[:, :, t]
        left = claims - dist[:, :, t]  # capped claim still open after this month's distributions
        # Return caps: the capped claim never goes negative.
        assert (left[:, capped] >= -EUR_TOL).all(), (t, left[:, capped].min())
        # (P, I) at its cap after this month, or nothing drawn yet (no claim: nothing to repay).
        exhausted = (capped[None, :] & (left <= EUR_TOL)) | (calls[:, :, : t + 1].sum(axis=2) <= 0)
        # Seniority: a junior is paid in a month only if every more senior repayable investor is
        # capped and exhausted its claim in that month.
        for j in range(I):
            junior_paid = dist[:, j, t] > 1e-6
            senior = repayable & (seniority < seniority[j])
            assert (exhausted[:, senior].all(axis=1) | ~junior_paid).all(), (contract.investors[j].name, t)
        # The payer keeps money only when every repayable investor is at its cap.
        kept = cash.retained_by_payer[:, t] > 1e-6
        assert (exhausted[:, repayable].all(axis=1) | ~kept).all(), t
        claims = left
    for i, inv in enumerate(contract.investors):
        if inv.return_cap is None:
            continue
        g = growth[i]
        fv_calls = calls[:, i] @ g ** (T - 1 - np.arange(T))
        assert (dist[:, i].sum(axis=1) <= fv_calls + EUR_TOL).all()
        if check_irr:
            rate = irr(dist[:, i] - calls[:, i])
            ok = rate.status == IRR_DEFINED
            assert (rate.rate[ok] <= inv.return_cap + 1e-9).all(), (inv.name, np.nanmax(rate.rate[ok]))

    # Guarantees: paid once, when the loss is final, and never more than share x loss nor the cap.
    loss = np.maximum(calls.sum(axis=2) - dist.sum(axis=2), 0.0)  # (P, I) principal loss before guarantees
    names = [inv.name for inv in contract.investors]
    cover = np.zeros((P, I))
    for g, guarantee in enumerate(contract.guarantees):
        paid = cash.guarantor_payments[g]
        months = np.flatnonzero(np.abs(paid).sum(axis=0) > 0)
        assert len(months) <= 1, months
        if len(months):
            # No capital is called, nor distributed where capital was called, after the payout: the
            # loss it covers is final.  (With recycling, a path on which delivery never took place --
            # terminated before its first call -- releases what it received at the horizon: no loss there.)
            m = months[0]
            delivered = (cash.provider_funding + cash.investor_fees).sum(axis=1) > 0
            assert (calls[:, :, m + 1:] == 0).all() and (dist[delivered][:, :, m + 1:] == 0).all()
        covered = np.array([n in guarantee.investors for n in names])
        owed = guarantee.share * (loss * covered).sum(axis=1)
        assert (paid.sum(axis=1) <= owed + EUR_TOL).all()
        if guarantee.cap is None:
            close(paid.sum(axis=1), owed)
        else:
            assert (paid.sum(axis=1) <= guarantee.cap + EUR_TOL).all()
            close(paid.sum(axis=1), np.minimum(owed, guarantee.cap))
        cover += guarantee.share * loss * covered
    assert (gpay.sum(axis=2) <= cover + EUR_TOL).all()
    assert (gpay.sum(axis=2) <= loss + EUR_TOL).all()  # nobody is made more than whole


# ---------------------------------------------------------------------------------------
# 1. hand-computed contracts through the engine
# ---------------------------------------------------------------------------------------
# Shared hand computations for contract A (see base_doc):
#   measured net outcomes (diploma, job_start, sustained, long-term) at month 3: (0, 10, 0, 0)
#                                                             at month 12: (0, 10, 10, 10)
#   measured savings: month 3: 3 months x 10 x 500 = 15,000; month 12: 12 x 10 x 500 = 60,000
#   entitlement: m3: 10 x 1,000 + 10 % x 15,000 = 11,500
#                m12: 10 x (1,000 + 3,000 + 2,000) + 10 % x 60,000 = 66,000
#   due: month 5: 11,500; month 14: 66,000 - 11,500 = 54,500
#   capital calls: month 0: 8,000 + 4,000 = 12,000 -> A 9,000, B 3,000
#                  months 1-3: 8,000 -> A 6,000, B 2,000;  total A 27,000, B 9,000 = 36,000
#   gross savings: 10 x 500 = 5,000 in months 0-11, 10 x 550 = 5,500 in months 12-23 (total 126,000)
T_A = 24
CALLS_A = monthly(T_A, {0: 9_000}, [(1, 3, 6_000)])
CALLS_B = monthly(T_A, {0: 3_000}, [(1, 3, 2_000)])
GROSS_A = monthly(T_A, ranges=[(0, 11, 5_000), (12, 23, 5_500)])
PAYER_FEES_A = monthly(T_A, {12: 1_000})
G5 = 1.05 ** (1 / 12)   # monthly growth at a 5 % annual cap
G10 = 1.10 ** (1 / 12)  # at 10 %


def fv14(calls, g):
    """Calls of months 0-3 compounded to month 14 at monthly growth g."""
    return sum(c * g ** (14 - t) for t, c in enumerate(calls[:4]))


def test_basic_contract_uncapped_two_investors_pro_rata():
    contract = contract_of(base_doc())
    assert contract.horizon_months == T_A
    cash, row = run_deterministic(contract)
    cents(ck_rows(contract, cash.measured_outcomes[0]), [[0, 0], [10, 10], [0, 10], [0, 10]])
    # Months in work (benefit_months, the occupancy outcome the state-machine format adds, unpriced
    # here): 10 x 3 before month 3, 10 x 12 before month 12.
    cents(outcome_row(contract, cash.measured_outcomes[0], "benefit_months"), [30, 120])
    net_outcomes, measured_savings = measure(contract, simulate_outcomes(contract, 1, np.random.default_rng(0)))
    cents(net_outcomes, cash.measured_outcomes[:1])
    cents(measured_savings[0], [15_000, 60_000])
    cents(cash.outcome_payments_due[0], monthly(T_A, {5: 11_500, 14: 54_500}))
    cents(cash.capital_calls, np.broadcast_to([CALLS_A, CALLS_B], cash.capital_calls.shape))
    # Pro rata 3/4 : 1/4: month 5: 8,625 / 2,875; month 14: 40,875 / 13,625.
    cents(cash.distributions[0], [monthly(T_A, {5: 8_625, 14: 40_875}), monthly(T_A, {5: 2_875, 14: 13_625})])
    cents(cash.retained_by_payer[0], np.zeros(T_A))
    cents(cash.gross_savings[0], GROSS_A)
    cents(cash.payer_fees, PAYER_FEES_A)
    # Net: 126,000 - 66,000 - 1,000 = 59,000.
    cents(cash.net_savings[0].sum(), 59_000)
    # Investors: 66,000 back on 36,000 called; MOIC 11/6; no loss.
    cents(row["capital_called"], 36_000)
    cents(row["distributions"], 66_000)
    assert row["investor_moic"] == pytest.approx(66_000 / 36_000, abs=1e-12)
    cents(row["investor_loss"], 0)
    # NPV at 5 % a year, discounting month t by 1.05^(-t/12).
    flows = cash.investor_net[0]
    cents(row["investor_npv"], sum(f * 1.05 ** (-t / 12) for t, f in enumerate(flows)))
    cents(row["payer_npv"], sum(f * 1.03 ** (-t / 12) for t, f in enumerate(cash.net_savings[0])))
    # IRR: flows -12,000 @0, -8,000 @1..3, +11,500 @5, +54,500 @14.
    expected_flows = monthly(T_A, {0: -12_000, 5: 11_500, 14: 54_500}, [(1, 3, -8_000)])
    cents(flows, expected_flows)
    ref = reference_irr(expected_flows)
    assert row["irr_status"] == "defined"
    assert row["investor_irr"] == pytest.approx(ref, abs=1e-9)
    # A and B have proportional flows: the same IRR, equal to the total's.
    for i in range(2):
        r = irr(investor_flows(cash, 0, i))
        assert r.status == IRR_DEFINED and float(r.rate) == pytest.approx(ref, abs=1e-9)
    # Paybacks: cumulative distributions 11,500 at month 5, 66,000 >= 36,000 at month 14.
    assert row["investor_payback_month"] == 14
    # Payer's cumulative net never < 0 (savings 5,000/month from month 0, 58,500 before month 14,
    # 58,500 + 5,500 - 54,500 = 9,500 after) -> payback month 0.
    assert row["payer_payback_month"] == 0
    assert row["primary_outcomes"] == 10 and row["net_primary_outcomes"] == 10


def test_payment_cap_binds():
    doc = base_doc()
    doc["payer"]["payment_cap"] = 50_000
    cash, row = run_deterministic(contract_of(doc))
    # Cumulative entitlement 11,500 then 66,000 -> capped 11,500 then 50,000: due 11,500 @5, 38,500 @14.
    cents(cash.outcome_payments_due[0], monthly(T_A, {5: 11_500, 14: 38_500}))
    cents(cash.distributions[0], [monthly(T_A, {5: 8_625, 14: 28_875}), monthly(T_A, {5: 2_875, 14: 9_625})])
    # The payment cap is not a return cap: nothing is "retained", it is simply not due.
    cents(cash.retained_by_payer[0], np.zeros(T_A))
    cents(row["outcome_payments"], 50_000)
    cents(row["net_savings"], 126_000 - 50_000 - 1_000)  # 75,000
    ref = reference_irr(monthly(T_A, {0: -12_000, 5: 11_500, 14: 38_500}, [(1, 3, -8_000)]))
    assert row["investor_irr"] == pytest.approx(ref, abs=1e-9)
    assert row["investor_moic"] == pytest.approx(50_000 / 36_000, abs=1e-12)


def test_return_cap_binds_excess_retained_by_payer():
    doc = base_doc()
    for inv in doc["investors"]:
        inv["return_cap"] = 0.05
    cash, row = run_deterministic(contract_of(doc))
    # Month 5: A's claim = 9,000 g^5 + 6,000 (g^4 + g^3 + g^2) = 27,405.84 >= 8,625: paid in full (B alike).
    # Month 14: A's claim = 9,000 g^14 + 6,000 (g^13 + g^12 + g^11) - 8,625 g^9
    #                      = 28,427.26 - 8,946.46 = 19,480.80 < 40,875: capped.
    #           B's claim is exactly 1/3 of A's (all of B's flows are 1/3 of A's): 6,493.60.
    #           Paid 25,974.41; retained 54,500 - 25,974.41 = 28,525.59.
    claim_a = fv14(CALLS_A, G5) - 8_625 * G5 ** 9
    cents(claim_a, 19_480.80)
    cents(cash.distributions[0], [monthly(T_A, {5: 8_625, 14: claim_a}), monthly(T_A, {5: 2_875, 14: claim_a / 3})])
    cents(cash.outcome_payments_due[0], monthly(T_A, {5: 11_500, 14: 54_500}))
    cents(cash.retained_by_payer[0], monthly(T_A, {14: 54_500 - 4 * claim_a / 3}))
    cents(row["retained_by_payer"], 28_525.59)
    # The payer keeps the excess: net savings 126,000 - (11,500 + 25,974.41) - 1,000.
    cents(row["net_savings"], 126_000 - 11_500 - 4 * claim_a / 3 - 1_000)
    # NPV at the cap is exactly 0, so each investor's IRR (and the total's) is the cap.
    for i in range(2):
        r = irr(investor_flows(cash, 0, i))
        assert r.status == IRR_DEFINED and float(r.rate) == pytest.approx(0.05, abs=1e-9)
    assert row["investor_irr"] == pytest.approx(0.05, abs=1e-9)


def test_capped_and_uncapped_investor_same_class_water_filling():
    doc = base_doc()
    doc["investors"][0]["return_cap"] = 0.05  # A capped, B uncapped
    cash, row = run_deterministic(contract_of(doc))
    # Month 5 as before (8,625 / 2,875).  Month 14: pro rata A would get 40,875 but its claim
    # is 19,480.80; the rest goes round again to the only open investor, uncapped B:
    # B = 54,500 - 19,480.80 = 35,019.20.  Nothing is retained while an investor is uncapped.
    claim_a = fv14(CALLS_A, G5) - 8_625 * G5 ** 9
    cents(cash.distributions[0], [monthly(T_A, {5: 8_625, 14: claim_a}),
                                  monthly(T_A, {5: 2_875, 14: 54_500 - claim_a})])
    cents(cash.distributions[0, 1, 14], 35_019.20)
    cents(cash.retained_by_payer[0], np.zeros(T_A))
    r_a, r_b = irr(investor_flows(cash, 0, 0)), irr(investor_flows(cash, 0, 1))
    assert float(r_a.rate) == pytest.approx(0.05, abs=1e-9)
    ref_b = reference_irr(monthly(T_A, {0: -3_000, 5: 2_875, 14: 54_500 - claim_a}, [(1, 3, -2_000)]))
    assert float(r_b.rate) == pytest.approx(ref_b, abs=1e-9)
    assert ref_b > 1.0  # B earns well over 100 % a year: its return is not capped


def test_two_seniority_classes_senior_first_up_to_its_cap():
    doc = base_doc()
    doc["investors"][0].update(return_cap=0.05, seniority=1, **{"class": "senior"})
    doc["investors"][1].update(return_cap=0.10, seniority=2, **{"class": "junior"})
    cash, row = run_deterministic(contract_of(doc))
    # Calls are still pro rata to commitments (A 3/4, B 1/4) whatever the class.
    cents(cash.capital_calls, np.broadcast_to([CALLS_A, CALLS_B], cash.capital_calls.shape))
    # Month 5: 11,500 all to senior A (claim 27,405.84); junior B nothing.
    # Month 14: A's claim = 28,427.26 - 11,500 g5^9 = 16,498.65 -> A gets that;
    #           B's claim at 10 %: 3,000 h^14 + 2,000 (h^13 + h^12 + h^11) = 9,952.98 -> B gets that;
    #           retained 54,500 - 16,498.65 - 9,952.98 = 28,048.37.
    claim_a = fv14(CALLS_A, G5) - 11_500 * G5 ** 9
    claim_b = fv14(CALLS_B, G10)
    cents([claim_a, claim_b], [16_498.65, 9_952.98])
    cents(cash.distributions[0], [monthly(T_A, {5: 11_500, 14: claim_a}), monthly(T_A, {14: claim_b})])
    cents(cash.retained_by_payer[0], monthly(T_A, {14: 28_048.37}))
    # Each at exactly its own cap.
    assert float(irr(investor_flows(cash, 0, 0)).rate) == pytest.approx(0.05, abs=1e-9)
    assert float(irr(investor_flows(cash, 0, 1)).rate) == pytest.approx(0.10, abs=1e-9)


def test_uncapped_senior_takes_everything_junior_nothing():
    doc = base_doc()
    doc["investors"][1].update(return_cap=None, seniority=2)
    del doc["investors"][1]["return_cap"]
    cash, row = run_deterministic(contract_of(doc))
    # A (senior, uncapped) takes 11,500 @5 and 54,500 @14; B (junior) gets 0: loses its 9,000.
    cents(cash.distributions[0], [monthly(T_A, {5: 11_500, 14: 54_500}), np.zeros(T_A)])
    assert int(irr(investor_flows(cash, 0, 1)).status) == IRR_TOTAL_LOSS
    ref_a = reference_irr(monthly(T_A, {0: -9_000, 5: 11_500, 14: 54_500}, [(1, 3, -6_000)]))
    assert float(irr(investor_flows(cash, 0, 0)).rate) == pytest.approx(ref_a, abs=1e-9)


def test_comparison_group_does_better_no_payment_never_negative():
    doc = base_doc()
    doc["payer"]["measurement_months"] = [6, 20]
    # Treated: 12 months of training without diploma or dropout (probabilities 0) -> job search
    # from month 12, job at 12, sustained and long-term at 17, off benefits months 12-23.
    doc["journey"] = journey(L=12, job_without_diploma=1.0, long_term_contract=1.0)
    # Comparison (10): job at 0, sustained and long-term at 5, off benefits months 0-23.
    doc["comparison"]["journey"] = JOB_AT_INTAKE
    contract = contract_of(doc)
    assert contract.horizon_months == T_A
    cash, row = run_deterministic(contract)
    # Net outcomes at 6: (0, -10, -10, -10); at 20: all 0.  Net savings measured at 6:
    # -10 x 500 x 6 < 0, at 20: -10 x 500 x 12 < 0.  Every term clipped at 0: nothing due.
    cents(ck_rows(contract, cash.measured_outcomes[0]), [[0, 0], [-10, 0], [-10, 0], [-10, 0]])
    # Months in work: before 6, 0 - 10 x 6; before 20, 10 x 8 (months 12-19) - 10 x 20.
    cents(outcome_row(contract, cash.measured_outcomes[0], "benefit_months"), [-60, -120])
    cents(cash.outcome_payments_due[0], np.zeros(T_A))
    cents(cash.distributions[0], np.zeros((2, T_A)))
    # Gross savings negative in months 0-11 (-5,000 each), 0 after: -60,000; net -61,000.
    cents(cash.gross_savings[0], monthly(T_A, ranges=[(0, 11, -5_000)]))
    cents(row["net_savings"], -61_000)
    # Investors lose everything: IRR -100 %, MOIC 0, loss 36,000, never paid back.
    assert row["irr_status"] == "total_loss" and row["investor_irr"] == -1.0
    assert row["investor_moic"] == 0.0
    cents(row["investor_loss"], 36_000)
    assert row["investor_payback_month"] is pd.NA
    assert row["payer_payback_month"] is pd.NA
    assert row["net_primary_outcomes"] == 0 and row["primary_outcomes"] == 10


def test_high_water_mark_no_clawback():
    doc = base_doc()
    doc["term"]["term_months"] = 30
    doc["cohorts"] = [{"intake_month": 0, "size": 10}, {"intake_month": 16, "size": 10}]
    doc["payer"].update(measurement_months=[6, 15, 28], payment_lag_months=1, savings_share=0.0)
    # Treated: job at intake (months 0 and 16), sustained + long-term 5 months later (5 and 21).
    # Comparison: 12 months of (fruitless) training, then a job: months 12 and 28; sustained at
    # 17 (cohort 1; cohort 2's at 33 is beyond the horizon); long-term probability 0.
    doc["comparison"]["journey"] = journey(L=12, job_without_diploma=1.0)
    contract = contract_of(doc)
    assert contract.horizon_months == 30
    cash, row = run_deterministic(contract)
    # Net (job_start, sustained, long-term) before month  6: (10, 10, 10)   -> 10k + 30k + 20k = 60,000
    #                                       before month 15: (0, 10, 10)    -> 50,000 (lower: no clawback)
    #                                       before month 28: (10, 10, 20)   -> 80,000
    # (month 28: treated 20/20/20; comparison 10 job starts (month 12; month 28 not yet), 10 sustained.)
    cents(ck_rows(contract, cash.measured_outcomes[0]), [[0, 0, 0], [10, 0, 10], [10, 10, 10], [10, 10, 20]])
    # Months in work, treated: 60, 150, 280 + 120 (cohort 2 from 16); comparison: cohort 1 from
    # month 12 (0, 30, 160), cohort 2 from 28 (0).  Net 60, 120, 240 (unpriced here).
    cents(outcome_row(contract, cash.measured_outcomes[0], "benefit_months"), [60, 120, 240])
    # High-water mark 60,000, 60,000, 80,000: due 60,000 @7, 0 @16, 20,000 @29.
    cents(cash.outcome_payments_due[0], monthly(30, {7: 60_000, 29: 20_000}))
    cents(cash.distributions[0], [monthly(30, {7: 45_000, 29: 15_000}), monthly(30, {7: 15_000, 29: 5_000})])
    assert (cash.outcome_payments_due >= 0).all()
    # Savings: net off benefits 10 in months 0-11 and 16-27, 0 in 12-15 and 28-29; 500 / 550 / 605
    # per person-month in years 1, 2, 3 (10 % indexation): 5,000 x 12 + 5,500 x 8 + 6,050 x 4 = 128,200.
    cents(cash.gross_savings[0], monthly(30, ranges=[(0, 11, 5_000), (16, 23, 5_500), (24, 27, 6_050)]))
    cents(row["gross_savings"], 128_200)
    cents(row["net_savings"], 128_200 - 80_000 - 1_000)


# ---------------------------------------------------------------------------------------
# 1b. settle() in isolation on hand-made Outcomes
# ---------------------------------------------------------------------------------------
def group(contract: Contract, events, employed, sizes) -> GroupOutcomes:
    """Hand-made old-style counts (events of the four CK outcomes, months in work) as the
    contract's outcome events and cost units (:func:`tests.legacy.groups`)."""
    ev, costs = legacy.groups(contract, np.asarray(events), np.asarray(employed), sizes)
    return GroupOutcomes(ev.astype(np.int32), costs.astype(np.int32), np.asarray(sizes, np.int64), {})


def test_settle_on_hand_made_outcomes_fractional_counterfactual_and_savings_share():
    doc = base_doc()
    doc["payer"]["rate_card"]["diploma"] = 500
    # A diploma outcome exists only in a machine with training (legacy.new_format leaves it out
    # otherwise); settle() on hand-made counts reads only the outcomes and cost items, not the journey.
    doc["journey"] = dict(JOB_AT_INTAKE, max_training_months=1)
    contract = contract_of(doc)
    assert "diploma" in contract.outcome_names
    T, P = T_A, 2
    te = np.zeros((P, 1, 4, T))
    tm = np.zeros((P, 1, T))
    ce = np.zeros((P, 1, 4, T))
    cm = np.zeros((P, 1, T))
    # Path 0.  Treated (10): 5 diplomas @0; job starts 4 @1 and 3 @5 (all keep their job);
    # 4 sustained @6; 2 long-term @10.  Comparison (20 members, so each counts 10/20 = 0.5):
    # 4 job starts @2 (counterfactual 2), 2 sustained @7 (counterfactual 1).
    te[0, 0, DIPLOMA, 0] = 5
    te[0, 0, JOB_START, 1], te[0, 0, JOB_START, 5] = 4, 3
    te[0, 0, JOB_SUSTAINED, 6] = 4
    te[0, 0, LTC, 10] = 2
    tm[0, 0, 1:] += 4
    tm[0, 0, 5:] += 3
    ce[0, 0, JOB_START, 2] = 4
    ce[0, 0, JOB_SUSTAINED, 7] = 2
    cm[0, 0, 2:] = 4
    # Path 1: treated nothing; comparison 6 job starts @0 and in work throughout (counterfactual 3).
    ce[1, 0, JOB_START, 0] = 6
    cm[1, 0, :] = 6
    outcomes = Outcomes(group(contract, te, tm, [10]), group(contract, ce, cm, [20]))
    net, saved = measure(contract, outcomes)
    # Path 0, before month 3: diploma 5, job start 4 - 2 = 2, sustained 0, long-term 0.
    #         before month 12: diploma 5, job start 7 - 2 = 5, sustained 4 - 1 = 3, long-term 2.
    # Path 1: job start -3 at both.
    cents(ck_rows(contract, net), [[[5, 5], [2, 5], [0, 3], [0, 2]], [[0, 0], [-3, -3], [0, 0], [0, 0]]])
    # Net months in work (benefit_months), the months off benefits below: path 0 before 3: 0 + 4 + 2 = 6,
    # before 12: 6 + 2 x 2 + 7 x 5 = 45; path 1: -3 x 3, -3 x 12.
    cents(outcome_row(contract, net, "benefit_months"), [[6, 45], [-9, -36]])
    # Net off benefits, path 0: month 0: 0; 1: 4; 2-4: 4 - 2 = 2; 5-23: 7 - 2 = 5.
    # Measured savings @3: (4 + 2) x 500 = 3,000; @12: 3,000 + 2 x 2 x 500 + 7 x 5 x 500 = 22,500.
    # Path 1: -3 x 500 x 3 = -4,500; -3 x 500 x 12 = -18,000.
    cents(saved, [[3_000, 22_500], [-4_500, -18_000]])
    due = payments_due(contract, net, saved)
    # Path 0 entitlement @3: 5 x 500 + 2 x 1,000 + 10 % x 3,000 = 4,800
    #                   @12: 2,500 + 5,000 + 9,000 + 4,000 + 2,250 = 22,750 -> due 4,800 @5, 17,950 @14.
    # Path 1: every term negative -> 0.
    cents(due, [monthly(T, {5: 4_800, 14: 17_950}), np.zeros(T)])
    cash = settle(contract, outcomes)
    check_ledgers(contract, cash, outcomes=outcomes)
    cents(cash.outcome_payments_due, due)
    cents(cash.distributions[0], [monthly(T, {5: 3_600, 14: 13_462.5}), monthly(T, {5: 1_200, 14: 4_487.5})])
    cents(cash.distributions[1], np.zeros((2, T)))
    # Gross savings path 0: 2,000 @1; 1,000 @2-4; 2,500 @5-11; 5 x 550 = 2,750 @12-23 (total 55,500).
    # Path 1: -3 x 500 = -1,500 @0-11, -3 x 550 = -1,650 @12-23 (total -37,800).
    cents(cash.gross_savings, [monthly(T, {1: 2_000}, [(2, 4, 1_000), (5, 11, 2_500), (12, 23, 2_750)]),
                               monthly(T, ranges=[(0, 11, -1_500), (12, 23, -1_650)])])
    frame = path_metrics(contract, cash, outcomes)
    cents(frame["gross_savings"], [55_500, -37_800])
    cents(frame["net_savings"], [55_500 - 22_750 - 1_000, -37_800 - 1_000])
    cents(frame["outcome_payments"], [22_750, 0])
    cents(frame["net_primary_outcomes"], [3, 0])
    assert list(frame["irr_status"]) == ["defined", "total_loss"]
    ref = reference_irr(monthly(T, {0: -12_000, 5: 4_800, 14: 17_950}, [(1, 3, -8_000)]))
    assert frame["investor_irr"].iloc[0] == pytest.approx(ref, abs=1e-9)
    assert ref < 0  # 22,750 back on 36,000 called


def distribute(contract, calls, due):
    """The capital stack on its own (compiled, checked against its numpy statement): capital ``calls``
    (I, T) pro rata to commitments and outcome money ``due`` (P, T) received each month, through the contract's waterfall; returns the
    distributions (P, I, T) and what is withheld (P, T) in each of the T months."""
    P, T = due.shape
    T_h = max(T, contract.horizon_months)
    months = tuple(range(1, T_h))
    contract = dataclasses.replace(
        contract, fees=(), guarantees=(), recycling=False,
        provider_budget=Schedule(tuple((t, float(v)) for t, v in enumerate(calls.sum(axis=0)) if v > 0)),
        payer=dataclasses.replace(contract.payer, payment_cap=None, measurement_months=months,
                                  payment_lag_months=0, trigger=None, default_probability=0.0))
    T_h = contract.horizon_months
    pad = np.zeros((1, P, T_h))
    pad[0, :, :T] = due
    needs = np.zeros((P, T_h))
    needs[:, :T] = calls.sum(axis=0)
    stack = waterfall_kernel.run(contract, pad, [None], needs, np.full(P, -1))
    # Its numpy statement gives the same ledgers (the two may differ by dust only: module notes).
    numpy_stack = waterfall.run(contract, pad, [None], needs, np.full(P, -1))
    for a, b in ((stack.distributions, numpy_stack.distributions), (stack.payer_withheld, numpy_stack.payer_withheld)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-8)
    return stack.distributions[:, :, :T], stack.payer_withheld[0, :, :T]


def test_distribute_in_isolation_two_classes_pro_rata_and_caps():
    # Three investors: S1 (60) and S2 (20) senior, capped at 0 %; J (20) junior, uncapped.
    # Calls 100 at month 0 -> S1 60, S2 20, J 20.  At a 0 % cap a claim is just calls less
    # distributions.  Due: 40 @1 -> senior pro rata 3:1: S1 30, S2 10.
    #                      60 @2 -> S1 claim 30, S2 claim 10: both filled (40), J takes 20.
    #                      10 @3 -> seniors exhausted: J 10.
    base = contract_of(base_doc())
    contract = dataclasses.replace(base, investors=(
        Investor("S1", 60.0, return_cap=0.0, seniority=1),
        Investor("S2", 20.0, return_cap=0.0, seniority=1),
        Investor("J", 20.0, seniority=2),
    ))
    calls = np.zeros((3, 5))
    calls[:, 0] = [60, 20, 20]
    due = np.array([[0, 40, 60, 10, 0.0]])
    out, withheld = distribute(contract, calls, due)
    cents(out[0], [[0, 30, 30, 0, 0], [0, 10, 10, 0, 0], [0, 0, 20, 10, 0]])
    cents(withheld[0], [0, 0, 0, 0, 0])


def test_distribute_never_negative_after_round_off():
    # Regression (found by the property test below): an uncapped senior class shares a payment
    # pro rata; ``left - give.sum()`` then leaves a round-off residual of either sign, which the
    # next pass (and the junior class) received -- a negative distribution (-3.6e-43 EUR here)
    # before give and left were clamped at 0.
    base = contract_of(base_doc())
    contract = dataclasses.replace(base, investors=(
        Investor("J", 1.0, seniority=2), Investor("a", 85.0), Investor("b", 19_979.0), Investor("c", 85.0)))
    calls = np.zeros((4, 3))
    calls[:, 0] = [1, 85, 19_979, 85]
    due = np.array([[0.0, 141_333.29, 0.0]])
    out, _ = distribute(contract, calls, due)
    assert (out >= 0).all()
    assert out[0, 0].max() < 1e-9  # the junior gets (essentially) nothing behind uncapped seniors
    cents(out[0, 1:, 1], 141_333.29 * np.array([85, 19_979, 85]) / 20_149)


# ---------------------------------------------------------------------------------------
# 2. identities on every path of real runs
# ---------------------------------------------------------------------------------------
# ``colour_kitchen`` (the shipped scenario, loaded once) comes from tests/conftest.py.


def test_colour_kitchen_every_path_matches_simulate(colour_kitchen):
    contract, n, seed = colour_kitchen, 2000, 2015
    res = simulate(contract, n_paths=n, seed=seed, workers=1)
    # Rebuild each block exactly as simulate() does (block b uses child b of SeedSequence(seed)).
    size = block_size(contract)
    seeds = np.random.SeedSequence(seed).spawn(-(-n // size))
    frames, due_sum, paid_sum = [], 0.0, 0.0
    for b, s in enumerate(seeds):
        count = min(size, n - b * size)
        outcomes = simulate_outcomes(contract, count, np.random.Generator(np.random.PCG64(s)))
        cash = settle(contract, outcomes)
        check_ledgers(contract, cash, outcomes=outcomes)
        frames.append(path_metrics(contract, cash, outcomes))
        due_sum = due_sum + cash.outcome_payments_due.sum(axis=0)
        paid_sum = paid_sum + cash.outcome_payments.sum(axis=0)
    pieces = pd.concat(frames, ignore_index=True)
    pd.testing.assert_frame_equal(pieces, res.paths)
    np.testing.assert_allclose(res.expected_ledgers["outcome_payments_due"], due_sum / n, atol=1e-6)
    np.testing.assert_allclose(res.expected_ledgers["outcome_payments"], paid_sum / n, atol=1e-6)
    # Per-path totals in the Results table.
    p = res.paths
    # No recycling: every payment made is distributed (``distributions`` include guarantee payouts).
    np.testing.assert_allclose(p["distributions"], p["outcome_payments"] + p["guarantee_payouts"], atol=EUR_TOL)
    assert (p["defaulted_by_payer"] == 0).all() and (p["guarantee_payouts"] == 0).all() and not p["terminated"].any()
    np.testing.assert_allclose(p["net_savings"], p["gross_savings"] - p["outcome_payments"] - 40_000, atol=1e-5)
    assert (p["outcome_payments"] + p["retained_by_payer"] <= 1_000_000 + EUR_TOL).all()
    assert (p["capital_called"] == 734_000).all()
    ok = p["irr_status"] == "defined"
    assert ok.mean() > 0.5 and (p.loc[ok, "investor_irr"] <= 0.10 + 1e-9).all()
    # Mean monthly ledgers obey the same identities.
    L = res.expected_ledgers
    np.testing.assert_allclose(L["outcome_payments_due"],
                               L["outcome_payments"] + L["defaulted_by_payer"] + L["retained_by_payer"], atol=1e-6)
    np.testing.assert_allclose(L["outcome_payments"], L["distributions"] + L["recycled"], atol=1e-6)
    np.testing.assert_allclose(L["net_savings"], L["gross_savings"] - L["outcome_payments"] - L["payer_fees"],
                               atol=1e-6)
    # The caps do bind on some paths of this scenario (the tests above are not vacuous).
    assert (p["retained_by_payer"] > 1).any()


def _variant(contract: Contract, **payer_changes) -> Contract:
    return dataclasses.replace(contract, payer=dataclasses.replace(contract.payer, **payer_changes))


VARIANTS = {
    "tight_payment_cap": lambda c: _variant(c, payment_cap=300_000.0),
    "low_return_cap": lambda c: dataclasses.replace(
        c, investors=tuple(dataclasses.replace(i, return_cap=0.02) for i in c.investors)),
    "savings_share": lambda c: _variant(c, savings_share=SavingsShare(0.3), payment_cap=None),
    "savings_share_only_lag0": lambda c: _variant(c, rate_card=(), savings_share=SavingsShare(0.5),
                                                  payment_lag_months=0),
    "senior_junior_uncapped": lambda c: dataclasses.replace(c, investors=(
        dataclasses.replace(c.investors[0], return_cap=0.03, seniority=1, commitment=500_000.0),
        dataclasses.replace(c.investors[1], return_cap=None, seniority=2, investor_class="junior",
                            commitment=234_000.0),
    )),
    "three_investors_two_classes": lambda c: dataclasses.replace(c, investors=(
        Investor("S1", 300_000.0, return_cap=0.04, seniority=1),
        Investor("S2", 100_000.0, return_cap=0.08, seniority=1),
        Investor("J", 334_000.0, investor_class="junior", return_cap=0.15, seniority=2),
    )),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_identities_on_variants(colour_kitchen, name):
    contract = VARIANTS[name](colour_kitchen)
    outcomes = simulate_outcomes(contract, 600, np.random.default_rng(zlib.crc32(name.encode())))
    cash = settle(contract, outcomes)
    check_ledgers(contract, cash, outcomes=outcomes)
    frame = path_metrics(contract, cash, outcomes)
    np.testing.assert_allclose(frame["distributions"], cash.distributions.sum(axis=(1, 2)), atol=EUR_TOL)
    np.testing.assert_allclose(frame["investor_moic"], frame["distributions"] / frame["capital_called"], atol=1e-12)
    np.testing.assert_allclose(frame["investor_loss"],
                               np.maximum(frame["capital_called"] - frame["distributions"], 0), atol=EUR_TOL)
    if name == "tight_payment_cap":
        assert np.isclose(cash.outcome_payments_due.sum(axis=1), 300_000).any()  # the cap binds
    if name == "low_return_cap":
        assert (cash.retained_by_payer.sum(axis=1) > 1).any()
    if all(i.return_cap is not None for i in contract.investors):
        caps = max(i.return_cap for i in contract.investors)
        ok = frame["irr_status"] == "defined"
        assert (frame.loc[ok, "investor_irr"] <= caps + 1e-9).all()


# ---------------------------------------------------------------------------------------
# 3. properties over random small contracts and random outcome arrays
# ---------------------------------------------------------------------------------------
def money(lo: float, hi: float):
    """EUR amounts in whole cents (realistic, and no subnormal floats)."""
    return st.integers(int(round(lo * 100)), int(round(hi * 100))).map(lambda c: c / 100)


def rate(lo: float, hi: float):
    """Rates and shares on a 1e-4 grid."""
    return st.integers(int(round(lo * 10_000)), int(round(hi * 10_000))).map(lambda x: x / 10_000)


@st.composite
def contracts_and_outcomes(draw):
    term = draw(st.integers(4, 24))
    n_meas = draw(st.integers(1, 4))
    meas = tuple(sorted(draw(st.sets(st.integers(1, term), min_size=n_meas, max_size=n_meas))))
    lag = draw(st.integers(0, 3))
    n_inv = draw(st.integers(1, 4))
    investors = tuple(
        Investor(f"i{k}", draw(money(100.0, 1e6)),
                 return_cap=draw(st.none() | rate(0.0, 0.5)),
                 seniority=draw(st.integers(1, 3)))
        for k in range(n_inv)
    )
    budget = Schedule(tuple((draw(st.integers(0, term - 1)), draw(money(0.0, 1e5)))
                            for _ in range(draw(st.integers(1, 4)))))
    fees = (
        Fee("inv", "investors", Schedule(((draw(st.integers(0, term - 1)), draw(money(0.0, 1e4))),))),
        Fee("pay", "payer", Schedule(((draw(st.integers(0, term + 3)), draw(money(0.0, 1e4))),))),
    )
    template = random_template()
    prices = tuple((o, draw(money(0.0, 1e4))) for o in template.outcome_names if draw(st.booleans()))
    payer = OutcomePayer("payer", prices, SavingsShare(draw(rate(0.0, 1.0))),
                         draw(st.none() | money(1.0, 5e5)), meas, lag)
    costs = ck_costs(draw(money(0.0, 2000.0)), draw(rate(0.0, 1.0)), draw(rate(-0.1, 0.2)))
    n_cohorts = draw(st.integers(1, 2))
    cohorts = tuple(Cohort(draw(st.integers(0, term - 1)), draw(st.integers(1, 30))) for _ in range(n_cohorts))
    contract = dataclasses.replace(
        template, title="random", term_months=term, tail_months=draw(st.integers(0, 6)),
        investors=investors, provider_name="p", provider_budget=budget, fees=fees, payer=payer,
        costs=costs, cohorts=cohorts,
        comparison=dataclasses.replace(template.comparison, size_ratio=draw(rate(0.2, 3.0))),
    )
    T = contract.horizon_months
    P = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    tsz = np.array([c.size for c in cohorts])
    csz = contract.comparison_sizes

    # Nothing is counted before a cohort's intake (so months on benefits, members less those in work,
    # are never negative).
    after_intake = np.arange(T)[None, :] >= np.array([c.intake_month for c in cohorts])[:, None]  # (C, T)

    def arrays(sizes):
        events = rng.binomial(np.broadcast_to(sizes[None, :, None, None], (P, n_cohorts, 4, T)), 0.05)
        employed = rng.integers(0, sizes[None, :, None] + 1, size=(P, n_cohorts, T))
        return events * after_intake[None, :, None], employed * after_intake[None]

    te, tm = arrays(tsz)
    ce, cm = arrays(csz)
    # Increments of the treated group's outcomes (and months off benefits): never negative.
    de = rng.integers(0, 3, size=te.shape) * (rng.random(te.shape) < 0.2) * after_intake[None, :, None]
    dm = np.minimum(rng.integers(0, 3, size=tm.shape) * (rng.random(tm.shape) < 0.2), tsz[None, :, None] - tm)
    dm = dm * after_intake[None]
    base = Outcomes(group(contract, te, tm, tsz), group(contract, ce, cm, csz))
    more = Outcomes(group(contract, te + de, tm + dm, tsz), group(contract, ce, cm, csz))
    return contract, base, more


@functools.lru_cache(maxsize=1)
def random_template() -> Contract:
    """Contract A with training in its machine (so every Colour Kitchen outcome is defined): the
    outcomes, cost items' states and comparison machine of random contracts on hand-made outcomes."""
    return contract_of(dict(base_doc(), journey=dict(JOB_AT_INTAKE, max_training_months=1)))


def ck_costs(benefit: float, saved: float, indexation: float) -> tuple[CostItem, ...]:
    """The old savings terms (a benefit per month, the share of it saved when in work, indexation)
    as the two cost items of :func:`tests.legacy.new_format`: the benefit while not in work, the
    unsaved share of it (a top-up) while in work."""
    bands = (CostBand("all", benefit, 1.0),)
    states = {c.name: c.states for c in random_template().costs}
    return (CostItem("bijstand", bands, states["bijstand"], annual_indexation=indexation),
            CostItem("top_up_in_work", bands, states["top_up_in_work"], fraction=1.0 - saved,
                     annual_indexation=indexation))


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(contracts_and_outcomes())
def test_property_monotone_capped_conserved(case):
    contract, base, more = case
    cash, cash_more = settle(contract, base), settle(contract, more)
    check_ledgers(contract, cash, check_irr=False, outcomes=base)
    check_ledgers(contract, cash_more, check_irr=False, outcomes=more)
    # More treated outcomes never lower what is owed, at any month.
    owed, owed_more = np.cumsum(cash.outcome_payments_due, axis=1), np.cumsum(cash_more.outcome_payments_due, axis=1)
    assert (owed_more >= owed - EUR_TOL).all()
    # Without return caps everything owed is paid, so payments are monotone too.  (With caps,
    # paying more *earlier* can lower the nominal total: the capped claim compounds.)
    if all(i.return_cap is None for i in contract.investors):
        paid, paid_more = np.cumsum(cash.outcome_payments, axis=1), np.cumsum(cash_more.outcome_payments, axis=1)
        assert (paid_more >= paid - EUR_TOL).all()
    # Everything but payments is independent of outcomes.
    np.testing.assert_array_equal(cash.capital_calls, cash_more.capital_calls)


@settings(max_examples=80, deadline=None, database=None)
@given(
    st.lists(st.tuples(money(1.0, 1e6), st.none() | rate(0.0, 1.0), st.integers(1, 3)),
             min_size=1, max_size=5),
    st.integers(0, 2**32 - 1),
)
def test_property_distribute_caps_and_order(investor_specs, seed):
    base = contract_of(base_doc())
    investors = tuple(Investor(f"i{k}", c, return_cap=r, seniority=s) for k, (c, r, s) in enumerate(investor_specs))
    contract = dataclasses.replace(base, investors=investors)
    T, P = 20, 4
    rng = np.random.default_rng(seed)
    needs = rng.exponential(1e4, T) * (rng.random(T) < 0.4)
    w = np.array([i.commitment for i in investors])
    calls = (w / w.sum())[:, None] * needs[None, :]
    due = rng.exponential(3e4, (P, T)) * (rng.random((P, T)) < 0.3)
    due[:, 0] = 0.0  # payments fall due from month 1 (first measurement) on
    out, withheld = distribute(contract, calls, due)
    assert (out >= 0).all() and (withheld >= 0).all()
    paid = out.sum(axis=1)
    # Paid out of this month's cash and what was withheld before, never more.
    np.testing.assert_allclose(np.cumsum(paid, axis=1) + withheld, np.cumsum(due, axis=1), rtol=0, atol=EUR_TOL)
    # Pro rata within a class: where no member of a class reaches its cap in a month, the
    # class's members are paid in proportion to their commitments.
    growth = np.array([1.0 if i.return_cap is None else (1.0 + i.return_cap) ** (1 / 12) for i in investors])
    claims = np.zeros((P, len(investors)))
    for t in range(T):
        claims = claims * growth + calls[:, t]
        capped = np.array([i.return_cap is not None for i in investors])
        room_after = np.where(capped, claims - out[:, :, t], np.inf)
        for sen in {i.seniority for i in investors}:
            members = np.array([i.seniority == sen for i in investors])
            free = (room_after[:, members] > 1e-6).all(axis=1)  # nobody in the class at its cap
            got = out[free][:, members, t]
            expected = got.sum(axis=1, keepdims=True) * w[members] / w[members].sum()
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-6)
        claims = claims - out[:, :, t]
    # Reuse the full checker through a Cashflows built from these pieces: a contract whose budget is
    # ``needs`` (no fees) and which pays at every month, settled without recycling, guarantees or defaults.
    T_h = contract.horizon_months
    pad = lambda a: np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, T_h - T)])  # noqa: E731
    needs_h = pad(needs[None, :])[0]
    zeros = np.zeros((P, T_h))
    cash = Cashflows(capital_calls=pad(np.broadcast_to(calls, (P,) + calls.shape)), distributions=pad(out),
                     guarantee_payouts=np.zeros((P, len(investors), T_h)), guarantor_payments=np.zeros((0, P, T_h)),
                     outcome_payments_due=pad(due), defaulted_by_payer=zeros, retained_by_payer=pad(due - paid),
                     withheld_by_payer=np.pad(withheld, [(0, 0), (0, T_h - T)], mode="edge"),
                     outcome_payments=pad(paid), recycled=zeros, vehicle_cash=zeros, gross_savings=zeros,
                     provider_funding=np.broadcast_to(needs_h, (P, T_h)), investor_fees=zeros,
                     payer_fees=np.zeros(T_h), measured_outcomes=np.zeros((P, 4, 2)),
                     terminated=np.zeros(P, dtype=bool), payer_guarantee_mask=np.zeros(0, dtype=bool))
    contract = dataclasses.replace(
        contract, fees=(), provider_budget=Schedule(tuple((t, float(v)) for t, v in enumerate(needs) if v > 0)),
        payer=dataclasses.replace(contract.payer, payment_cap=None, measurement_months=tuple(range(1, T_h)),
                                  payment_lag_months=0))
    assert contract.horizon_months == T_h
    check_ledgers(contract, cash, check_irr=True)
