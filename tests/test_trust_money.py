"""Numbers that move the right way: the payment cap counts what is paid, withheld money is still owed,
and paying more (a higher price, a higher share, a higher cap, more outcomes) never leaves investors
worse off.

"Worse off" is measured per investor and per path as the value of its own cash flows (distributions
and guarantee payouts less capital calls) discounted at its return cap (undiscounted when uncapped):
a capped investor paid earlier receives less in nominal terms for the same capped return, so a
nominal total is not the right yardstick; the principal loss is checked as well for investors valued in
nominal terms (no cap, or a 0 % cap).  Common random
numbers: both contracts settle the very same simulated outcomes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sibsim import simulate
from sibsim.cashflows import settle
from sibsim.contracts import Investor, SavingsShare, Schedule, TierTable
from sibsim.montecarlo import simulate_outcomes
from tests.test_cashflows import EUR_TOL, JOB_AT_INTAKE, NOTHING, base_doc, cents, check_ledgers, contract_of, monthly
from tests.test_mechanisms import mechanism_cases
from tests.test_properties_contracts import PROPERTY_SETTINGS, contract_docs, load, native_docs

T = 14
# Paths settled per generated contract by the monotonicity property.
PATHS_FOR_POWER = 32


def carry_doc(payment_cap: float) -> dict:
    """One investor (0 % return cap) called 50 at month 0 and 50 at month 6; 10 job starts counted at
    month 3 (EUR 10 each: 100 due at month 3) and 10 sustained jobs at month 12 (EUR 2 each: 20)."""
    return {
        "meta": {"title": "carry"},
        "term": {"term_months": T, "tail_months": 0, "sustained_job_months": 6},
        "investors": [{"name": "A", "commitment": 100, "return_cap": 0.0}],
        "provider": {"name": "P", "budget": [{"month": 0, "amount": 50}, {"month": 6, "amount": 50}]},
        "payer": {"name": "Gemeente", "measurement_months": [3, 12], "payment_lag_months": 0,
                  "rate_card": {"job_start": 10, "job_sustained": 2}, "payment_cap": payment_cap},
        "savings": {"benefit": [{"age_band": "all", "amount_per_month": 100, "share": 1.0}]},
        "cohorts": [{"intake_month": 0, "size": 10}],
        "journey": JOB_AT_INTAKE,
        "comparison": {"size_ratio": 1.0, "journey": NOTHING},
    }


def settle_once(contract):
    outcomes = simulate_outcomes(contract, 1, np.random.default_rng(0))  # deterministic journeys
    cash = settle(contract, outcomes)
    check_ledgers(contract, cash, outcomes=outcomes)
    return cash


def test_money_above_the_return_cap_is_withheld_and_paid_after_the_next_call():
    # Month 3: 100 due, A's claim is 50 -> 50 paid, 50 withheld.  Month 6: a call of 50 makes room ->
    # the withheld 50 is paid.  Month 12: 20 due (cap room 120 - 100 = 20), A's claim is 0 -> withheld
    # to the end: the payer keeps 20.  Before: the 50 was lost at month 3 and A lost 30 of its 100.
    cash = settle_once(contract_of(carry_doc(payment_cap=120)))
    cents(cash.outcome_payments_due[0], monthly(T, {3: 100, 12: 20}))
    cents(cash.distributions[0, 0], monthly(T, {3: 50, 6: 50}))
    cents(cash.outcome_payments[0], monthly(T, {3: 50, 6: 50}))
    cents(cash.withheld_by_payer[0], monthly(T, {3: 50, 4: 50, 5: 50}, [(12, T - 1, 20)]))
    cents(cash.retained_by_payer[0], monthly(T, {3: 50, 6: -50, 12: 20}))
    cents(cash.retained_by_payer[0].sum(), 20)


def test_the_payment_cap_counts_what_is_paid_or_owed_not_what_is_lost_above_return_caps():
    # Cap 100: 100 is due at month 3 and nothing more can be.  Before, 50 of it was "retained" above
    # A's claim at month 3 and yet used up the cap: A got 50 back of 100.  Now the 50 is paid at month 6.
    cash = settle_once(contract_of(carry_doc(payment_cap=100)))
    cents(cash.outcome_payments_due[0], monthly(T, {3: 100}))
    cents(cash.distributions[0, 0].sum(), 100)
    cents(cash.outcome_payments[0].sum(), 100)
    cents(cash.retained_by_payer[0].sum(), 0)


def test_a_defaulted_payment_does_not_use_up_the_cap():
    contract = contract_of(carry_doc(payment_cap=100))
    outcomes = simulate_outcomes(contract, 1, np.random.default_rng(0))
    outcomes = dataclasses.replace(outcomes, payer_default=np.array([[True, False]]))  # misses month 3
    cash = settle(contract, outcomes)
    check_ledgers(contract, cash, outcomes=outcomes)
    cents(cash.outcome_payments_due[0], monthly(T, {3: 100, 12: 20}))
    cents(cash.defaulted_by_payer[0], monthly(T, {3: 100}))
    cents(cash.distributions[0, 0], monthly(T, {12: 20}))


def test_colour_kitchen_higher_diploma_price_never_hurts_investors(colour_kitchen):
    # The case: EUR 2,000 -> 8,000 -> 20,000 per diploma moved P(loss) from 27 % to 94 % to
    # 100 % and the payer's outcome payments from 753k down to 376k while the EUR 1M cap "bound".
    def at_price(price):
        card = tuple((k, price if k == "diploma" else v) for k, v in colour_kitchen.payer.rate_card)
        return dataclasses.replace(colour_kitchen, payer=dataclasses.replace(colour_kitchen.payer, rate_card=card))

    assert dict(colour_kitchen.payer.rate_card)["diploma"] == 2_000
    runs = [simulate(at_price(p), n_paths=3_000, seed=11, workers=1).paths for p in (2_000, 8_000, 20_000)]
    for lower, higher in zip(runs, runs[1:]):
        assert (higher["investor_loss"] <= lower["investor_loss"] + EUR_TOL).all()
        # (The payer's nominal payments may fall on a path: investors paid earlier reach their 10 %
        # a year with less money.  Their multiple never falls below 1 where it was 1 or more.)
        assert ((higher["investor_moic"] >= 1 - 1e-12) | (lower["investor_moic"] < 1)).all()
    p_loss = [(r["investor_loss"] > 0.005).mean() for r in runs]
    assert p_loss[0] > 0.2 and p_loss[2] <= p_loss[1] <= p_loss[0], p_loss
    assert (runs[2]["outcome_payments"] <= colour_kitchen.payer.payment_cap + EUR_TOL).all()


# ---------------------------------------------------------------------------------------
# properties over generated contracts
# ---------------------------------------------------------------------------------------
def investor_values(contract, cash) -> tuple[np.ndarray, np.ndarray]:
    """Per path and investor: value of its flows at its return cap (0 % if uncapped), and its loss."""
    flows = cash.distributions + cash.guarantee_payouts - cash.capital_calls  # (P, I, T)
    months = np.arange(flows.shape[-1])
    rates = np.array([0.0 if i.return_cap is None else i.return_cap for i in contract.investors])
    discount = (1.0 + rates[:, None]) ** (-months[None, :] / 12)  # (I, T)
    value = (flows * discount[None]).sum(axis=2)
    received = (cash.distributions + cash.guarantee_payouts).sum(axis=2)
    loss = np.maximum(cash.capital_calls.sum(axis=2) - received, 0.0)
    return value, loss


def shares_early_money_with_an_uncapped_peer(contract) -> bool:
    """The known exception to "paying more never leaves an investor worse off": capital still called
    once payments can arrive, with tranches that are not all of one seniority and one return cap.
    Money arriving earlier (a higher price) is then shared month by month against the capital drawn
    so far: a junior, or an uncapped peer, is paid while a senior (or capped) tranche has calls still
    to come, which later find less left to repay them (hand-worked:
    test_early_money_can_pass_a_capped_tranche_to_its_uncapped_peer; the old waterfall did the same)."""
    repayable = [t for t in contract.investors if t.repayable]
    uniform = len({(t.seniority, t.cap_rate) for t in repayable}) <= 1
    first_payment = min(contract.payment_months, default=contract.horizon_months)
    needs = contract.provider_budget.to_array(contract.horizon_months) + contract.fee_schedule("investors")
    return not uniform and bool(needs[first_payment:].any())


def assert_not_worse(contract, cash, cash_more, what: str) -> None:
    value, loss = investor_values(contract, cash)
    value_more, loss_more = investor_values(contract, cash_more)
    scale = 1e-9 * (1.0 + np.abs(cash.capital_calls).sum())
    assert (value_more >= value - EUR_TOL - scale).all(), (what, (value_more - value).min())
    # The nominal loss never rises for investors valued in nominal terms (no cap, or a 0 % cap); one
    # capped above 0 % and paid earlier can end with a larger nominal loss at the same capped return.
    nominal = np.array([not i.return_cap for i in contract.investors])
    assert (loss_more[:, nominal] <= loss[:, nominal] + EUR_TOL + scale).all(), (what, (loss_more - loss).max())


def pay_more(contract, draw):
    """The contract with one price, share, tier amount or trigger price raised (the rest unchanged)."""
    payer = contract.payer
    factor = 1.0 + draw(st.sampled_from((0.01, 0.5, 3.0, 20.0)))
    options = []
    if payer.rate_card:
        options.append("rate_card")
    if payer.savings_share.rate > 0:
        options.append("savings_share")
    if payer.tiers:
        options.append("tiers")
    if payer.trigger is not None:
        options.append("trigger")
    kind = draw(st.sampled_from(options))
    if kind == "rate_card":
        k = draw(st.integers(0, len(payer.rate_card) - 1))
        card = tuple((name, price * factor + (10.0 if i == k else 0.0) if i == k else price)
                     for i, (name, price) in enumerate(payer.rate_card))
        return dataclasses.replace(payer, rate_card=card)
    if kind == "savings_share":
        share = payer.savings_share
        rate = min(1.0, share.rate * factor)
        return dataclasses.replace(payer, savings_share=SavingsShare(rate, share.switch_multiple, share.rate_after))
    if kind == "tiers":
        k = draw(st.integers(0, len(payer.tiers) - 1))
        tiers = list(payer.tiers)
        t = tiers[k]
        tiers[k] = TierTable(t.outcome, t.measure, tuple((x, y * factor) for x, y in t.points), t.interpolation,
                             t.minimum)
        return dataclasses.replace(payer, tiers=tuple(tiers))
    return dataclasses.replace(payer, trigger=dataclasses.replace(payer.trigger, price=payer.trigger.price * factor))


@PROPERTY_SETTINGS
@given(doc=contract_docs(), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_paying_more_per_outcome_never_leaves_investors_worse_off(doc, data, seed):
    # Payer defaults are left out: a default forfeits one payment, and a higher price can move money
    # from an honoured payment into a missed one (the high-water mark is reached earlier).
    doc["payer"].pop("default_probability", None)
    contract = load(doc)
    assume(not shares_early_money_with_an_uncapped_peer(contract))
    richer = dataclasses.replace(contract, payer=pay_more(contract, data.draw))
    outcomes = simulate_outcomes(contract, 16, np.random.default_rng(seed))
    cash, cash_more = settle(contract, outcomes), settle(richer, outcomes)
    check_ledgers(richer, cash_more, check_irr=False, outcomes=outcomes)
    assert_not_worse(contract, cash, cash_more, "price")
    # (The payer's nominal payments can fall: investors at a return cap paid earlier reach it with less.)


@PROPERTY_SETTINGS
@given(doc=native_docs(), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_paying_more_per_event_or_day_never_leaves_investors_worse_off_on_a_native_journey(doc, data, seed):
    # The same beyond the Colour Kitchen chain: recurrent events priced per event, occupancy per day.
    doc["payer"].pop("default_probability", None)
    contract = load(doc)
    assume(not shares_early_money_with_an_uncapped_peer(contract))
    richer = dataclasses.replace(contract, payer=pay_more(contract, data.draw))
    outcomes = simulate_outcomes(contract, 16, np.random.default_rng(seed))
    cash, cash_more = settle(contract, outcomes), settle(richer, outcomes)
    check_ledgers(richer, cash_more, check_irr=False, outcomes=outcomes)
    assert_not_worse(contract, cash, cash_more, "price")


@PROPERTY_SETTINGS
@given(doc=contract_docs(), factor=st.sampled_from((1.01, 1.5, 4.0, None)), seed=st.integers(0, 2**32 - 1))
def test_a_higher_payment_cap_never_lowers_payments(doc, factor, seed):
    doc["payer"].pop("default_probability", None)
    doc["payer"].setdefault("payment_cap", 5_000.0)
    contract = load(doc)
    assume(not shares_early_money_with_an_uncapped_peer(contract))
    cap = None if factor is None else contract.payer.payment_cap * factor
    looser = dataclasses.replace(contract, payer=dataclasses.replace(contract.payer, payment_cap=cap))
    outcomes = simulate_outcomes(contract, 16, np.random.default_rng(seed))
    cash, cash_more = settle(contract, outcomes), settle(looser, outcomes)
    due, due_more = np.cumsum(cash.outcome_payments_due, axis=1), np.cumsum(cash_more.outcome_payments_due, axis=1)
    assert (due_more >= due - EUR_TOL).all()
    assert_not_worse(contract, cash, cash_more, "payment cap")


@PROPERTY_SETTINGS
@given(mechanism_cases(monotone=True))
def test_more_outcomes_never_leave_investors_worse_off(case):
    contract, base, more = case
    # Left out: defaults (see above); recycling (more outcome money funds delivery instead of capital
    # calls, so investors put in and get back less); and the review (more outcomes can keep a contract
    # running that would have stopped, and investors then fund the rest of delivery).
    contract = dataclasses.replace(contract, recycling=False,
                                   payer=dataclasses.replace(contract.payer, review=None))
    assume(not shares_early_money_with_an_uncapped_peer(contract))
    base, more = (dataclasses.replace(o, payer_default=None) for o in (base, more))
    assert_not_worse(contract, settle(contract, base), settle(contract, more), "outcomes")


@pytest.mark.parametrize("cap", [100.0, 120.0])
def test_carry_contract_cap_boundary_is_exact(cap):
    # At the boundary the cap equals what is paid or owed: 100 (first payment only) or 120 (both).
    cash = settle_once(contract_of(carry_doc(payment_cap=cap)))
    cents(cash.outcome_payments_due[0].sum(), cap)


# ---------------------------------------------------------------------------------------
# power: contracts where money above the return caps arrives before the last capital call,
# and a deliberately wrong waterfall (the old rule: such money is lost at once) must be caught
# ---------------------------------------------------------------------------------------
@st.composite
def capped_docs(draw):
    """Generated contracts with every repayable investor capped, delivery called evenly over the
    term and an early first measurement: outcome money often exceeds the capped claims early on."""
    doc = draw(contract_docs())
    term = doc["term"]["term_months"]
    total = sum(b["amount"] if "amount" in b else b["per_month"] * (b["to_month"] - b["from_month"] + 1)
                for b in doc["provider"]["budget"])
    per_month = np.floor(total / term * 100) / 100  # never more than the commitments cover
    budget = Schedule(tuple((t, float(per_month)) for t in range(term)))
    if budget.total >= 1:  # at least one currency unit called in all, summed as the loader sums it
        doc["provider"]["budget"] = [{"from_month": 0, "to_month": term - 1, "per_month": float(per_month)}]
    for inv in doc["investors"]:
        if inv.get("class") != "grant":
            inv["return_cap"] = draw(st.sampled_from((0.0, 0.02, 0.1)))
    doc["payer"]["measurement_months"] = sorted(set(doc["payer"]["measurement_months"]) | {1})
    doc["payer"].pop("default_probability", None)
    return doc


def _violation(doc, seed) -> bool:
    contract = load(doc)
    if shares_early_money_with_an_uncapped_peer(contract):
        return False  # the known exception (see above): not what the property is about
    card = tuple((k, v * 3 + 100) for k, v in contract.payer.rate_card) or (("job_start", 100.0),)
    richer = dataclasses.replace(contract, payer=dataclasses.replace(contract.payer, rate_card=card))
    outcomes = simulate_outcomes(contract, PATHS_FOR_POWER, np.random.default_rng(seed))
    try:
        assert_not_worse(contract, settle(contract, outcomes), settle(richer, outcomes), "price")
    except AssertionError:
        return True
    return False


@PROPERTY_SETTINGS
@given(doc=capped_docs(), seed=st.integers(0, 2**32 - 1))
def test_paying_more_never_hurts_investors_when_money_arrives_before_the_last_call(doc, seed):
    assert not _violation(doc, seed)


def _forfeiting_steps(real):
    """The old waterfall, deliberately: what no tranche can take in a month is lost to them at once
    (nothing is carried to the next month, when a new capital call would make room for it)."""
    def steps(*args, **kwargs):
        return np.zeros_like(real(*args, **kwargs))
    return steps


def test_the_property_catches_a_waterfall_that_loses_money_above_the_caps(monkeypatch):
    """Worked by hand.  One tranche of 84,000 capped at 0 % (its claim is what it drew), drawn 8,000 a
    month from month 0 to 9 (plus a 4,000 fee at month 0); ten job starts in month 0, all sustained and
    long-term by month 12; measured at months 1 and 12, paid at once; the payer pays at most 60,000.

    * Prices 1,000 / 3,000 / 2,000: 10,000 at month 1 (the claim is 20,000), 50,000 at month 12: 60,000.
    * Prices x 4 + 100: 41,000 at month 1, of which 20,000 fits the claim; the 21,000 above it is
      withheld and paid as capital is drawn; the cap leaves 19,000 at month 12: 60,000 again.
    * A waterfall that forfeits what a claim cannot take at once loses the 21,000: 39,000, worse
      off for a higher price, which the property must see.
    (A generated search found such cases too, but which ones hypothesis generates depends on the
    state of the process, so the case the test relies on is written out.)"""
    from sibsim import cashflows, waterfall

    doc = base_doc()
    doc["investors"] = [{"name": "A", "commitment": 84_000, "return_cap": 0.0}]
    doc["provider"]["budget"] = [{"from_month": 0, "to_month": 9, "per_month": 8_000}]
    doc["payer"].update(measurement_months=[1, 12], payment_lag_months=0, savings_share=0.0, payment_cap=60_000)
    contract = contract_of(doc)
    card = tuple((k, v * 4 + 100) for k, v in contract.payer.rate_card)
    richer = dataclasses.replace(contract, payer=dataclasses.replace(contract.payer, rate_card=card))
    outcomes = simulate_outcomes(contract, 2, np.random.default_rng(0))
    cash, cash_more = settle(contract, outcomes), settle(richer, outcomes)
    cents(cash.distributions.sum(axis=(1, 2)), [60_000, 60_000])
    cents(cash_more.distributions.sum(axis=(1, 2)), [60_000, 60_000])
    assert_not_worse(contract, cash, cash_more, "price")
    # The numpy statement of the stack, broken on purpose (the compiled stack agrees with it unbroken).
    monkeypatch.setattr(cashflows, "DEFAULT_STACK", "reference")
    monkeypatch.setattr(waterfall, "_run_steps", _forfeiting_steps(waterfall._run_steps))
    cash, cash_more = settle(contract, outcomes), settle(richer, outcomes)
    cents(cash_more.distributions.sum(axis=(1, 2)), [39_000, 39_000])
    with pytest.raises(AssertionError):
        assert_not_worse(contract, cash, cash_more, "price")


# ---------------------------------------------------------------------------------------
# labels that follow the money: a receipt netted against a larger call is not a total loss
# ---------------------------------------------------------------------------------------
def test_money_received_in_a_month_of_a_larger_call_is_not_a_total_loss():
    from sibsim.irr import IRR_NET_OUTFLOWS, IRR_TOTAL_LOSS, irr

    calls = np.array([[100.0, 0, 50, 0], [100.0, 0, 50, 0]])
    received = np.array([[0.0, 0, 20, 0], [0.0, 0, 0, 0]])  # path 0: 20 back in month 2, netted to -30
    res = irr(received - calls, received=received)
    assert res.status.tolist() == [IRR_NET_OUTFLOWS, IRR_TOTAL_LOSS]
    assert np.isnan(res.rate[0]) and res.rate[1] == -1.0
    # Without the receipts, the net flows alone cannot tell them apart (both look like total losses).
    assert irr(received - calls).status.tolist() == [IRR_TOTAL_LOSS, IRR_TOTAL_LOSS]


def test_settle_and_path_metrics_label_a_netted_receipt_honestly():
    # A call of 50 at month 6 and a payment of 20 at month 6 (rate card job_start 2 x 10 at month 6):
    # the investor got 20 back, never a net inflow in any month.  Status: net_outflows_only, not total_loss.
    doc = carry_doc(payment_cap=1_000)
    doc["payer"].update(measurement_months=[6], rate_card={"job_start": 2})
    from sibsim.metrics import path_metrics, summarise

    contract = contract_of(doc)
    outcomes = simulate_outcomes(contract, 40, np.random.default_rng(0))  # 40 identical paths
    cash = settle(contract, outcomes)
    cents(cash.distributions[:, 0], np.tile(monthly(T, {6: 20}), (40, 1)))
    frame = path_metrics(contract, cash, outcomes)
    assert (frame["irr_status"] == "net_outflows_only").all() and frame["investor_irr"].isna().all()
    cents(frame["investor_moic"], np.full(40, 0.2))
    # Quantiles still rank it at the bottom (its NPV is negative at every rate).
    summary = summarise(frame, {})
    assert summary.loc["median_irr", "estimate"] == -1.0
    assert summary.loc["share_irr_defined", "estimate"] == 0.0


def test_early_money_can_pass_a_capped_tranche_to_its_uncapped_peer():
    # The exception the monotonicity properties leave out (shares_early_money_with_an_uncapped_peer),
    # by hand.  A (uncapped) and B (capped at 0 %) 100 each, one seniority; calls 50 + 50 in month 0
    # and again in month 2.  Base: 60 in month 1, 100 in month 3.  Richer: 200 in month 1, nothing
    # later (more in all, and never less by any month).
    #   base, month 1: pro rata to capital drawn (50 : 50): A 30, B 30 (B's room 50)
    #         month 3: B's room 100 - 30 = 70: A 50, B 50           -> A 80, B 80
    #   richer, month 1: B takes its room 50, A the other 150; month 3: nothing -> A 150, B 50
    from tests.test_cashflows import base_doc, contract_of, distribute

    contract = dataclasses.replace(contract_of(base_doc()), investors=(
        Investor("A", 100.0), Investor("B", 100.0, return_cap=0.0)))
    calls = np.zeros((2, 5))
    calls[:, 0] = calls[:, 2] = 50.0
    base, richer = np.zeros((1, 5)), np.zeros((1, 5))
    base[0, 1], base[0, 3], richer[0, 1] = 60.0, 100.0, 200.0
    assert (np.cumsum(richer) >= np.cumsum(base)).all()
    got, _ = distribute(contract, calls, base)
    got_richer, _ = distribute(contract, calls, richer)
    cents(got[0].sum(axis=1), [80.0, 80.0])
    cents(got_richer[0].sum(axis=1), [150.0, 50.0])  # B, capped, is worse off: 50 < 80
    assert shares_early_money_with_an_uncapped_peer(dataclasses.replace(
        contract, provider_budget=Schedule(((0, 100.0), (2, 100.0))), fees=(),
        payer=dataclasses.replace(contract.payer, measurement_months=(1, 3), payment_lag_months=0, trigger=None)))
