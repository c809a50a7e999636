"""Properties of generated VALID contracts, through the engine (not hand-made outcomes).

Hypothesis builds small scenario documents mixing every mechanism at random (rate card, savings
share with a switch, tiers, cohort trigger, review, payer default, recycling, grants, guarantees
and capital protection, seniority classes, return and payment caps, a comparison group or a
modelled counterfactual, fixed or uncertain journey probabilities), reads them with the loader
(so every generated contract is valid by the loader's own rules), then simulates a few dozen
paths both in pieces (``montecarlo.simulate_outcomes`` + ``cashflows.settle`` +
``metrics.path_metrics``) and with ``simulate()``, and checks on every path:

* cash is conserved across all parties: the four identities of the ``sibsim.cashflows``
  docstring, month by month (and the rest of ``tests.test_cashflows.check_ledgers``: return caps,
  payment cap, waterfall order by seniority, grants, guarantees);
* ``simulate()`` is exactly the pieces, block by block (block b uses child b of the seed);
* the per-path measures agree with the ledgers; ``npv(irr) ~ 0`` wherever the IRR is defined;
* payments due never fall when the treated group achieves more (rate card, savings share,
  tiers and triggers on increasing measures).

tests/test_mechanisms.py holds the hand-computed cases and properties over hand-made outcome
arrays; here the outcomes come from the engine and the contracts from the loader.
``SIBSIM_PROPERTY_EXAMPLES`` sets the number of contracts per test (default 100).
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sibsim import simulate
from sibsim.cashflows import settle
from sibsim.contracts import Contract
from sibsim.irr import IRR_DEFINED, IRR_NET_OUTFLOWS, IRR_TOTAL_LOSS, irr, npv
from sibsim.metrics import path_metrics
from sibsim.montecarlo import GroupOutcomes, Outcomes, block_size, simulate_outcomes
from sibsim.scenario import contract_from_dict
from tests import legacy
from tests.test_cashflows import EUR_TOL, check_ledgers, money, rate

EXAMPLES = int(os.environ.get("SIBSIM_PROPERTY_EXAMPLES", "100"))
PROPERTY_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
INCREASING = ("difference", "relative_increase")  # more treated outcomes -> a higher improvement
ALL_MEASURES = INCREASING + ("relative_reduction",)


# ---------------------------------------------------------------------------------------
# generated valid scenario documents
# ---------------------------------------------------------------------------------------
@st.composite
def probability(draw):
    """A journey probability: fixed (0 and 1 included), {mean, sd} or {alpha, beta}."""
    kind = draw(st.sampled_from(("fixed", "fixed", "extreme", "mean_sd", "alpha_beta")))
    if kind == "fixed":
        return draw(rate(0.0, 0.4))
    if kind == "extreme":
        return draw(st.sampled_from((0.0, 1.0, 0, 1)))
    if kind == "mean_sd":
        mean = draw(rate(0.01, 0.6))
        return {"mean": mean, "sd": max(draw(rate(0.05, 0.9)) * (mean * (1 - mean)) ** 0.5, 1e-4)}
    return {"alpha": draw(rate(0.5, 50.0)), "beta": draw(rate(0.5, 200.0))}


@st.composite
def journeys(draw, training: bool):
    j = {"max_training_months": draw(st.integers(0, 6)) if training else draw(st.integers(0, 2))}
    j.update({name: draw(probability()) for name in legacy.CK_PARAMETERS})
    return j


@st.composite
def contract_docs(draw, measures=ALL_MEASURES):
    """A generated scenario in the state-machine format: the Colour Kitchen chain drawn in the old
    form (seven probabilities, ``[savings]``), turned into the new one by :func:`tests.legacy.new_format`."""
    return legacy.new_format(draw(old_contract_docs(measures)))


@st.composite
def old_contract_docs(draw, measures=ALL_MEASURES):
    term = draw(st.integers(3, 30))
    doc = {"meta": {"title": draw(st.sampled_from(("generated", "Générée 🙂")))},
           "term": {"term_months": term, "tail_months": draw(st.integers(0, 8)),
                    "sustained_job_months": draw(st.integers(1, 8))}}
    month = st.integers(0, term - 1)
    # Delivery budget (some capital must be called) and fees.
    budget = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            budget.append({"month": draw(month), "amount": draw(money(0.0, 20_000.0))})
        else:
            a = draw(month)
            budget.append({"from_month": a, "to_month": draw(st.integers(a, term - 1)),
                           "per_month": draw(money(0.0, 5_000.0))})
    planned = sum(b["amount"] if "amount" in b else b["per_month"] * (b["to_month"] - b["from_month"] + 1)
                  for b in budget)
    if planned < 1:  # the loader asks for at least one currency unit of capital in all
        budget.append({"month": draw(month), "amount": draw(money(1.0, 20_000.0))})
    fees = [{"name": f"fee {k}", "paid_by": draw(st.sampled_from(("investors", "payer"))),
             "schedule": [{"month": draw(st.integers(0, term + 3)), "amount": draw(money(0.0, 3_000.0))}]}
            for k in range(draw(st.integers(0, 2)))]
    needs = sum(b["amount"] if "amount" in b else b["per_month"] * (b["to_month"] - b["from_month"] + 1)
                for b in budget) + sum(f["schedule"][0]["amount"] for f in fees if f["paid_by"] == "investors")
    doc["provider"] = {"name": "Provider", "budget": budget, "recycling": draw(st.booleans())}
    if fees:
        doc["fees"] = fees
    # Investors: commitments cover the calls; seniority classes, caps, grants, capital protection.
    n = draw(st.integers(1, 4))
    weights = [draw(st.integers(1, 10)) for _ in range(n)]
    slack = 1 + draw(rate(0.0, 1.0))
    investors = []
    for k in range(n):
        grant = k > 0 and draw(st.integers(0, 4)) == 0
        inv = {"name": f"Investor {k}", "commitment": float(np.ceil(needs * slack * weights[k] / sum(weights) * 100)) / 100,
               "seniority": draw(st.integers(1, 3))}
        if grant:
            inv["class"] = "grant"
        else:
            inv["class"] = draw(st.sampled_from(("senior", "junior")))
        if draw(st.booleans()):
            inv["return_cap"] = draw(rate(0.0, 0.3))
        if not grant and draw(st.integers(0, 3)) == 0:  # a grant is never repaid: nothing to protect
            inv["capital_protection"] = draw(rate(0.01, 0.3))
        investors.append(inv)
    doc["investors"] = investors
    guarantees = []
    repayable = [i for i in investors if i["class"] != "grant"]  # guarantees on grants are refused
    for _ in range(draw(st.integers(0, 2))):
        g = {"guarantor": draw(st.sampled_from(("Province", "Municipality"))), "share": draw(rate(0.01, 0.3))}
        if draw(st.booleans()):
            g["investors"] = sorted(draw(st.sets(st.sampled_from([i["name"] for i in repayable]), min_size=1)))
        else:
            g["classes"] = sorted(draw(st.sets(st.sampled_from(sorted({i["class"] for i in repayable})), min_size=1)))
        if draw(st.booleans()):
            g["cap"] = draw(money(1.0, 20_000.0))
        guarantees.append(g)
    if guarantees:
        doc["guarantees"] = guarantees
    measurable = legacy.CK_OUTCOMES + ("benefit_months",)
    # Payer.
    payer = {"name": "Municipality",
             "measurement_months": sorted(draw(st.sets(st.integers(1, term), min_size=1, max_size=4))),
             "payment_lag_months": draw(st.integers(0, 4))}
    if draw(st.booleans()):
        payer["payment_cap"] = draw(money(1_000.0, 200_000.0))
    if draw(st.booleans()):
        payer["default_probability"] = draw(rate(0.0, 0.5))
    share = draw(rate(0.0, 0.8))
    if draw(st.booleans()):
        payer["savings_share"] = {"rate": share, "switch_multiple": draw(rate(0.1, 3.0)),
                                  "rate_after": draw(rate(0.0, share))}
    else:
        payer["savings_share"] = share
    prices = {}
    for key in ("diploma", "job_start", "job_sustained", "long_term_contract"):
        if draw(st.booleans()):
            prices[key] = draw(money(0.0, 5_000.0))
    unit = draw(st.sampled_from((None, "benefit_month_saved", "benefit_day_saved")))
    if unit:
        prices[unit] = draw(money(0.0, 500.0 if unit == "benefit_month_saved" else 20.0))
    if prices:
        payer["rate_card"] = prices
    tiers = []
    for _ in range(draw(st.integers(0, 2))):
        xs = sorted(draw(st.sets(st.integers(-5, 20), min_size=1, max_size=3)))
        ys = np.cumsum([draw(st.integers(0, 2_000_000)) for _ in xs]) / 100
        tier = {"outcome": draw(st.sampled_from(measurable)), "measure": draw(st.sampled_from(measures)),
                "points": [[x / 10, float(y)] for x, y in zip(xs, ys)],
                "interpolation": draw(st.sampled_from(("step", "linear")))}
        if draw(st.booleans()):
            tier["minimum"] = draw(st.integers(-5, 20)) / 10
        tiers.append(tier)
    if tiers:
        payer["tiers"] = tiers
    if draw(st.integers(0, 2)) == 0:
        pooled = draw(rate(-0.5, 1.0))
        payer["trigger"] = {"outcome": draw(st.sampled_from(measurable)), "measure": draw(st.sampled_from(measures)),
                            "follow_up_months": draw(st.integers(1, 12)), "pooled_threshold": pooled,
                            "cohort_threshold": pooled + draw(rate(0.0, 1.0)), "price": draw(money(0.0, 5_000.0))}
    if draw(st.integers(0, 2)) == 0:
        payer["review"] = {"month": draw(st.integers(1, term)), "outcome": draw(st.sampled_from(measurable)),
                           "measure": draw(st.sampled_from(measures)), "floor": draw(rate(-0.5, 0.5))}
    if not (any(p > 0 for p in prices.values()) or share > 0 or tiers or "trigger" in payer):
        payer.setdefault("rate_card", {})["job_start"] = 1_000.0
    doc["payer"] = payer
    # Savings, participants, counterfactual.
    shares = draw(st.sampled_from(([1.0], [0.5, 0.5], [0.25, 0.75], [0.2, 0.3, 0.5])))
    doc["savings"] = {"benefit": [{"age_band": f"band {k}", "amount_per_month": draw(money(0.0, 2_000.0)),
                                   "share": s} for k, s in enumerate(shares)],
                      "share_saved_when_employed": draw(rate(0.0, 1.0)),
                      "annual_indexation": draw(rate(-0.2, 0.2))}
    doc["cohorts"] = [{"intake_month": draw(month), "size": draw(st.integers(1, 25))}
                      for _ in range(draw(st.integers(1, 3)))]
    doc["journey"] = treated = draw(journeys(training=True))
    if draw(st.integers(0, 3)) == 0:
        doc["comparison"] = {"method": "expected", "journey": draw(journeys(training=False))}
    else:
        doc["comparison"] = {"size_ratio": draw(rate(0.2, 3.0)), "journey": draw(journeys(training=False))}
    compared = doc["comparison"]["journey"]
    doc["analysis"] = {"investor_discount_rate": draw(rate(-0.05, 0.15)),
                       "public_discount_rate": draw(rate(-0.05, 0.15)),
                       "primary_outcome": draw(st.sampled_from(legacy.CK_OUTCOMES))}
    # One state machine serves both groups: if both train, for the same length.
    if treated["max_training_months"] and compared["max_training_months"]:
        compared["max_training_months"] = treated["max_training_months"]
    if not (treated["max_training_months"] or compared["max_training_months"]):
        # Nobody trains: the machine has no diploma outcome (legacy.new_format drops its price); a
        # term measured on it is measured on first jobs instead.
        for term in payer.get("tiers", []) + [payer[k] for k in ("trigger", "review") if k in payer]:
            if term["outcome"] == "diploma":
                term["outcome"] = "job_start"
        if doc["analysis"]["primary_outcome"] == "diploma":
            doc["analysis"]["primary_outcome"] = "job_start"
    # A milestone longer than the months from the first intake to the horizon could never be reached,
    # which the loader refuses: keep the sustained-job mark within them (the horizon is at least the
    # term and tail).
    first = min(c["intake_month"] for c in doc["cohorts"])
    reach = doc["term"]["term_months"] + doc["term"]["tail_months"] - first
    doc["term"]["sustained_job_months"] = min(doc["term"]["sustained_job_months"], max(reach, 1))
    return doc


#: The outcomes of :func:`native_docs`' machine.
NATIVE_OUTCOMES = ("visits", "housed_days", "housings", "incidents")
DAYS_PER_MONTH = 365.25 / 12


@st.composite
def event_rate(draw):
    """A monthly event rate: fixed (0 included) or a Gamma prior {mean, sd, kind = "rate"}."""
    if draw(st.booleans()):
        return draw(rate(0.0, 3.0))
    mean = draw(rate(0.05, 3.0))
    return {"mean": mean, "sd": draw(rate(0.05, 1.0)) * mean, "kind": "rate"}


@st.composite
def native_docs(draw, measures=ALL_MEASURES):
    """A generated scenario whose journey is not the Colour Kitchen chain, written in the
    state-machine format directly: two states (homeless, housed) with a recurrent event in each
    (incidents while homeless, tenancy support visits while housed), an occupancy outcome with a
    scale (housed days, 30.44 days per month) and a cost per event as well as per month.  The
    financial terms (investors, fees, guarantees, payer, cohorts) are drawn as in
    :func:`old_contract_docs`, their outcomes renamed to this machine's."""
    doc = draw(old_contract_docs(measures))
    for key in ("journey", "savings", "comparison"):
        doc.pop(key)
    doc["term"].pop("sustained_job_months")
    doc["journey"] = {
        "start": draw(st.sampled_from(("homeless", {"homeless": 0.75, "housed": 0.25}))),
        "parameters": {"housing": draw(probability()), "eviction": draw(probability()),
                       "incident_rate": draw(event_rate()), "visit_rate": draw(event_rate())},
        "states": [
            {"name": "homeless", "timing": draw(st.sampled_from(("end", "start"))),
             "exits": [{"to": "housed", "probability": "housing"}],
             "events": [{"event": "incident", "rate": "incident_rate"}]},
            {"name": "housed", "exits": [{"to": "homeless", "probability": "eviction", "event": "eviction"}],
             "events": [{"event": "visit", "rate": "visit_rate"}]},
        ],
    }
    doc["outcomes"] = {
        "visits": {"kind": "event", "event": "visit", "count": "every", "label": "tenancy support visit"},
        "housed_days": {"kind": "occupancy", "states": ["housed"], "scale": DAYS_PER_MONTH, "unit": "days"},
        "housings": {"kind": "entry", "states": ["housed"], "count": draw(st.sampled_from(("first", "every")))},
        "incidents": {"kind": "event", "event": "incident", "count": "every"},
    }
    bands = lambda: [{"group": "all", "amount": draw(money(0.0, 2_000.0)), "share": 1.0}]  # noqa: E731
    doc["costs"] = [{"name": "shelter", "states": ["homeless"], "bands": bands(),
                     "annual_indexation": draw(rate(-0.2, 0.2))},
                    {"name": "incident_cost", "event": "incident", "bands": bands()}]
    if draw(st.booleans()):
        doc["costs"].append({"name": "rent_support", "states": ["housed"], "bands": bands(),
                             "fraction": draw(rate(0.0, 1.0))})
    overrides = {name: draw(probability()) for name in ("housing", "eviction") if draw(st.booleans())}
    if draw(st.booleans()):
        overrides["incident_rate"] = draw(event_rate())
    comparison = {"start": "homeless", "parameters": overrides}
    if draw(st.integers(0, 3)) == 0:
        comparison["method"] = "expected"
    else:
        comparison["size_ratio"] = draw(rate(0.2, 3.0))
    doc["comparison"] = comparison
    payer = doc["payer"]
    # Priced per event and per day always; the other outcomes sometimes.
    # (at least one price above 0 per event or day: the payer must pay for something, as the loader requires)
    card = {"visits": draw(money(0.0, 300.0)), "housed_days": draw(money(0.01, 40.0))}
    card.update({k: draw(money(0.0, 3_000.0)) for k in ("housings", "incidents") if draw(st.booleans())})
    payer["rate_card"] = card
    for term in payer.get("tiers", []) + [payer[k] for k in ("trigger", "review") if k in payer]:
        term["outcome"] = draw(st.sampled_from(NATIVE_OUTCOMES))
    doc["analysis"]["primary_outcome"] = draw(st.sampled_from(NATIVE_OUTCOMES))
    return doc


def load(doc: dict) -> Contract:
    contract = contract_from_dict(doc, "<generated>")  # a ScenarioError here is a bug of the generator
    assert isinstance(contract, Contract)
    return contract


# ---------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------
def check_identities(contract: Contract, cash) -> None:
    """The four identities of the sibsim.cashflows docstring, every path and month (written out
    here as well as in check_ledgers, so this file states them itself)."""
    close = partial(np.testing.assert_allclose, rtol=0, atol=EUR_TOL)
    payer_guarantees = cash.guarantor_payments[cash.payer_guarantee_mask].sum(axis=0)
    close(cash.outcome_payments_due, cash.outcome_payments + cash.defaulted_by_payer + cash.retained_by_payer)
    close(cash.outcome_payments, cash.distributions.sum(axis=1) + cash.recycled
          + np.diff(cash.vehicle_cash, axis=1, prepend=0.0))
    close(cash.capital_calls.sum(axis=1) + cash.recycled, cash.provider_funding + cash.investor_fees)
    close(cash.net_savings, cash.gross_savings - cash.outcome_payments - cash.payer_fees[None, :] - payer_guarantees)


def check_npv_at_irr(flows: np.ndarray, received: np.ndarray | None = None) -> np.ndarray:
    """npv(flows, irr(flows)) ~ 0 where the IRR is defined; -100 % only for a total loss (nothing
    ``received``); money received but every month's net flow an outflow: no IRR, not a total loss."""
    res = irr(flows, received=received)
    ok = res.status == IRR_DEFINED
    scale = np.abs(flows).sum(axis=1)
    if ok.any():
        residual = npv(flows[ok], res.rate[ok])
        assert (np.abs(residual) <= 1e-7 * scale[ok]).all(), (residual, scale[ok])
    loss = res.status == IRR_TOTAL_LOSS
    assert (res.rate[loss] == -1.0).all()
    assert ((flows[loss] <= 0).all(axis=1)).all()
    if received is not None:
        assert (received[loss] == 0).all()
        netted = res.status == IRR_NET_OUTFLOWS
        assert ((flows[netted] <= 0).all(axis=1) & (received[netted] > 0).any(axis=1)).all()
    assert np.isnan(res.rate[~(ok | loss)]).all()
    return res.status


def check_path_metrics(contract: Contract, cash, frame: pd.DataFrame) -> None:
    """The per-path measures restate the ledgers."""
    close = partial(np.testing.assert_allclose, rtol=1e-12, atol=1e-6)
    called = cash.capital_calls.sum(axis=(1, 2))
    received = (cash.distributions + cash.guarantee_payouts).sum(axis=(1, 2))
    close(frame["capital_called"], called)
    close(frame["distributions"], received)
    close(frame["outcome_payments"], cash.outcome_payments.sum(axis=1))
    close(frame["retained_by_payer"], cash.retained_by_payer.sum(axis=1))
    close(frame["defaulted_by_payer"], cash.defaulted_by_payer.sum(axis=1))
    close(frame["guarantee_payouts"], cash.guarantee_payouts.sum(axis=(1, 2)))
    close(frame["gross_savings"], cash.gross_savings.sum(axis=1))
    close(frame["net_savings"], cash.net_savings.sum(axis=1))
    close(frame["investor_loss"], np.maximum(called - received, 0.0))
    has_calls = called > 0
    close(frame["investor_moic"][has_calls], received[has_calls] / called[has_calls])
    assert frame["investor_moic"][~has_calls].isna().all()
    flows = (cash.distributions + cash.guarantee_payouts - cash.capital_calls).sum(axis=1)
    close(frame["investor_npv"], npv(flows, contract.investor_discount_rate))
    close(frame["payer_npv"], npv(cash.net_savings, contract.public_discount_rate))
    defined = frame["irr_status"].isin(["defined", "total_loss"]).to_numpy()
    assert (np.isfinite(frame["investor_irr"].to_numpy()) == defined).all()
    for col in ("investor_npv", "payer_npv", "gross_savings", "net_savings", "primary_outcomes"):
        assert np.isfinite(frame[col].to_numpy(dtype=float)).all(), col


def run_pieces(contract: Contract, n_paths: int, seed: int):
    """What simulate() does, block by block: block b uses child b of SeedSequence(seed)."""
    size = block_size(contract)
    counts = [min(size, n_paths - a) for a in range(0, n_paths, size)]
    blocks = []
    for child, count in zip(np.random.SeedSequence(seed).spawn(len(counts)), counts):
        outcomes = simulate_outcomes(contract, count, np.random.Generator(np.random.PCG64(child)))
        cash = settle(contract, outcomes)
        blocks.append((outcomes, cash, path_metrics(contract, cash, outcomes)))
    return blocks


# ---------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------
@PROPERTY_SETTINGS
@given(doc=contract_docs(), n_paths=st.integers(12, 40), seed=st.integers(0, 2**32 - 1))
def test_generated_contracts_conserve_cash_and_respect_every_cap(doc, n_paths, seed):
    contract = load(doc)
    for outcomes, cash, frame in run_pieces(contract, n_paths, seed):
        check_identities(contract, cash)
        # Cash conservation across all parties, caps, waterfall order, grants, guarantees; each
        # investor's IRR at most its return cap.
        check_ledgers(contract, cash, check_irr=True, outcomes=outcomes)
        check_path_metrics(contract, cash, frame)
        # npv(irr) ~ 0: all investors together, and each investor alone.
        flows = (cash.distributions + cash.guarantee_payouts - cash.capital_calls)
        received = cash.distributions + cash.guarantee_payouts
        status = check_npv_at_irr(flows.sum(axis=1), received.sum(axis=1))
        np.testing.assert_array_equal(status, frame["irr_status"].cat.codes.to_numpy())
        for i in range(len(contract.investors)):
            check_npv_at_irr(flows[:, i], received[:, i])
        # What the generated contracts exercised (pytest --hypothesis-show-statistics).
        cap = contract.payer.payment_cap
        for label, hit in (("payment cap binds", cap is not None and (cash.outcome_payments_due.sum(axis=1)
                                                                       >= cap - 1e-6).any()),
                           ("return caps retain money", (cash.retained_by_payer > 1e-6).any()),
                           ("a guarantee pays", (cash.guarantee_payouts > 0).any()),
                           ("terminated at the review", cash.terminated.any()),
                           ("payer defaults", (cash.defaulted_by_payer > 0).any()),
                           ("outcome money recycled", (cash.recycled > 0).any()),
                           ("IRR defined", (status == IRR_DEFINED).any())):
            if hit:
                event(label)


@PROPERTY_SETTINGS
@given(doc=contract_docs(), n_paths=st.integers(12, 40), seed=st.integers(0, 2**32 - 1))
def test_simulate_is_the_pieces(doc, n_paths, seed):
    contract = load(doc)
    res = simulate(contract, n_paths=n_paths, seed=seed, workers=1)
    blocks = run_pieces(contract, n_paths, seed)
    pd.testing.assert_frame_equal(res.paths, pd.concat([f for _, _, f in blocks], ignore_index=True))
    # Expected monthly ledgers: the mean over every path of the pieces' ledgers.
    mean = lambda get: sum(get(cash).sum(axis=0) for _, cash, _ in blocks) / n_paths  # noqa: E731
    ledgers = res.expected_ledgers
    for column, get in (("capital_calls", lambda c: c.capital_calls.sum(axis=1)),
                        ("distributions", lambda c: c.distributions.sum(axis=1)),
                        ("guarantee_payouts", lambda c: c.guarantee_payouts.sum(axis=1)),
                        ("outcome_payments_due", lambda c: c.outcome_payments_due),
                        ("outcome_payments", lambda c: c.outcome_payments),
                        ("retained_by_payer", lambda c: c.retained_by_payer),
                        ("defaulted_by_payer", lambda c: c.defaulted_by_payer),
                        ("recycled", lambda c: c.recycled),
                        ("gross_savings", lambda c: c.gross_savings),
                        ("net_savings", lambda c: c.net_savings)):
        np.testing.assert_allclose(ledgers[column].to_numpy(), mean(get), rtol=1e-12, atol=1e-9, err_msg=column)
    # The expected ledgers keep the identities (they are linear).
    np.testing.assert_allclose(ledgers["outcome_payments_due"],
                               ledgers["outcome_payments"] + ledgers["defaulted_by_payer"]
                               + ledgers["retained_by_payer"], rtol=0, atol=1e-6)
    summary = res.summary()
    for metric in ("expected_capital_called", "expected_distributions", "expected_outcome_payments",
                   "expected_gross_savings", "expected_net_savings", "expected_npv", "expected_npv_net_savings",
                   "probability_of_loss", "share_irr_defined"):
        assert np.isfinite(summary.loc[metric, "estimate"]), metric
    assert 0 <= summary.loc["probability_of_loss", "estimate"] <= 1


def with_more(contract: Contract, outcomes: Outcomes, extra: Outcomes) -> Outcomes:
    """The same paths with the treated group's events increased by ``extra``'s, and its months in
    work (``benefit_months``) by ``extra``'s as far as there are months on bijstand to turn into
    work: those months move from the bijstand cost item to the top-up one (members in the
    programme are in one or the other), so the payer's costs never rise."""
    t, e = outcomes.treated, extra.treated
    events, costs = t.events + e.events, t.costs.copy()
    names = [c.name for c in contract.costs]
    k, b = contract.outcome_index("benefit_months"), names.index("bijstand")
    moved = np.minimum(e.events[:, :, k], t.costs[:, :, b])
    events[:, :, k] = t.events[:, :, k] + moved
    costs[:, :, b] -= moved
    if "top_up_in_work" in names:
        costs[:, :, names.index("top_up_in_work")] += moved
    return Outcomes(GroupOutcomes(events, costs, t.sizes, t.parameters), outcomes.comparison, outcomes.payer_default)


@PROPERTY_SETTINGS
@given(doc=contract_docs(measures=INCREASING), n_paths=st.integers(4, 24), seed=st.integers(0, 2**32 - 1))
def test_payments_due_never_fall_when_the_treated_achieve_more(doc, n_paths, seed):
    """Rate card, savings share (with its switch), tiers and triggers on increasing measures, a review:
    more treated outcomes (and months off benefits) never lower what is owed by any month, nor end
    a contract that ran.  Both runs share the comparison group and the payer's defaults."""
    contract = load(doc)
    rng = np.random.default_rng(seed)
    outcomes = simulate_outcomes(contract, n_paths, rng)
    extra = simulate_outcomes(contract, n_paths, rng)
    more = with_more(contract, outcomes, extra)
    cash, cash_more = settle(contract, outcomes), settle(contract, more)
    check_identities(contract, cash_more)
    check_ledgers(contract, cash_more, check_irr=False, outcomes=more)
    owed, owed_more = (np.cumsum(c.outcome_payments_due, axis=1) for c in (cash, cash_more))
    assert (owed_more >= owed - EUR_TOL).all(), np.min(owed_more - owed)
    assert (cash_more.terminated <= cash.terminated).all()
    # Where the review decides alike, the same cohorts take part: measured net outcomes and savings rise too.
    # (Where only the base run terminates, the later cohorts enrolled in the other may do worse than
    # their counterfactual: totals can then fall, though what is owed still does not.)
    same = cash.terminated == cash_more.terminated
    assert (cash_more.measured_outcomes[same] >= cash.measured_outcomes[same] - 1e-9).all()
    saved, saved_more = (np.cumsum(c.gross_savings[same], axis=1) for c in (cash, cash_more))
    assert (saved_more >= saved - 1e-9 * (1 + np.abs(saved))).all()


def enrolled_cohorts(contract: Contract, cash) -> np.ndarray:
    """(P, C) 1 for the cohorts that take part: all but those starting at or after a review that ended the contract."""
    review = contract.payer.review
    later = np.array([review is not None and c.intake_month >= review.month for c in contract.cohorts])
    return np.where(cash.terminated[:, None] & later[None, :], 0.0, 1.0)


@PROPERTY_SETTINGS
@given(doc=native_docs(), n_paths=st.integers(8, 30), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_a_native_journey_conserves_cash_and_prices_events_and_days(doc, n_paths, seed, data):
    """Beyond the Colour Kitchen chain: a two-state machine with recurrent events, an occupancy
    outcome with a scale and a cost per event.  Every identity and cap holds on every path; the
    measured outcomes are the engine's counts (times the scale) of the enrolled cohorts, treated
    minus the comparison group scaled to the treated group's size; the savings are the cost
    items' units priced; and a higher price per visit or per housed day never lowers what is owed."""
    contract = load(doc)
    assert contract.journey.state_names == ("homeless", "housed")
    scales = contract.outcome_scales
    assert scales[contract.outcome_index("housed_days")] == DAYS_PER_MONTH
    months = contract.payer.measurement_months
    for outcomes, cash, frame in run_pieces(contract, n_paths, seed):
        check_identities(contract, cash)
        check_ledgers(contract, cash, check_irr=True, outcomes=outcomes)
        check_path_metrics(contract, cash, frame)
        enrolled = enrolled_cohorts(contract, cash)  # (P, C)
        ratio = outcomes.treated.sizes / outcomes.comparison.sizes  # (C,)
        t = outcomes.treated.events.astype(float) * enrolled[:, :, None, None]
        c = outcomes.comparison.events.astype(float) * (enrolled * ratio[None, :])[:, :, None, None]
        for j, m in enumerate(months):
            net = (t[..., :m] - c[..., :m]).sum(axis=(1, 3)) * scales[None, :]  # (P, K)
            np.testing.assert_allclose(cash.measured_outcomes[:, :, j], net, rtol=1e-12, atol=1e-9)
        # Savings: the comparison group's costs (scaled) less the treated group's, months of term and tail.
        price = contract.cost_per_unit()  # (Q, T)
        tc = outcomes.treated.costs.astype(float) * enrolled[:, :, None, None]
        cc = outcomes.comparison.costs.astype(float) * (enrolled * ratio[None, :])[:, :, None, None]
        saved = ((cc - tc).sum(axis=1) * price[None]).sum(axis=1)  # (P, T)
        saved[:, contract.term_months + contract.tail_months:] = 0.0
        np.testing.assert_allclose(cash.gross_savings, saved, rtol=1e-12, atol=1e-6)
        # A higher price per visit or per housed day (the same outcomes, no defaults): owed never falls.
        name = data.draw(st.sampled_from(("visits", "housed_days")))
        factor = data.draw(st.sampled_from((1.5, 3.0)))
        card = tuple((k, v * factor + 1.0 if k == name else v) for k, v in contract.payer.rate_card)
        richer = dataclasses.replace(contract, payer=dataclasses.replace(contract.payer, rate_card=card))
        no_default = dataclasses.replace(outcomes, payer_default=None)
        base, more = settle(contract, no_default), settle(richer, no_default)
        check_ledgers(richer, more, check_irr=False, outcomes=no_default)
        owed, owed_more = (np.cumsum(x.outcome_payments_due, axis=1) for x in (base, more))
        assert (owed_more >= owed - EUR_TOL).all(), np.min(owed_more - owed)
        for label, hit in (("visits priced and measured", (cash.measured_outcomes[:, 0] > 0).any()),
                           ("terminated at the review", cash.terminated.any()),
                           ("savings negative somewhere", (cash.gross_savings < 0).any())):
            if hit:
                event(label)
