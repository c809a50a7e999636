"""Properties of GENERATED capital stacks (sibsim.stack, sibsim.waterfall) settled on generated outcomes.

Hypothesis builds random stacks on one small base contract (:func:`tests.test_stack_deals.base_contract`):
1-4 tranches of every kind (loans and deferred fees with simple or compounded interest, equity,
recoverable grants, grants) with random commitments, return caps, seniorities and availability; a draw
order or none; a random list of waterfall steps (every step kind, order, cap and ``after`` condition) and
sometimes a termination list, or the default waterfall; guarantees of every kind and timing, recouped
or not; one or two payers (own shares, caps, lags, defaults, paid to the investors or the provider);
a savings share (plain or balance-linked); fees paid by the waterfall or the investors; recycling; a
review and an external stop.  Outcomes are random counts per path and month (treated and comparison
job starts and sustained jobs, benefit months), and random defaults and stops.

Properties, on every path and month:

* cash is conserved: the identities of the :mod:`sibsim.cashflows` docstring, per payer and in total,
  and across payers, tranches, guarantors, the provider, fees and what the payers retain
  (:func:`tests.test_stack_deals.check_identities`);
* no tranche is paid beyond its return cap: its claim (capital drawn less distributions and guarantee
  payouts, compounded at the cap) never falls below minus a cent;
* a step sharing by seniority (or in sequence) never pays a junior tranche while a senior one in the
  same step is still owed, both inside the engine (every call of its sharing rule) and from the
  ledgers of a one-step waterfall;
* guarantees never pay beyond their cap, their amount (first loss), their share or floor of the
  capital drawn, nor beyond the covered tranches' losses;
* monotonicity: more outcomes never lower a tranche's total received, under the conditions stated at
  :func:`test_more_outcomes_never_lower_what_a_tranche_receives` (and the counterexamples beside it).

The properties run on the compiled stack (:mod:`sibsim.waterfall_kernel`, what settlement uses), and
the compiled stack must agree with its numpy statement (:mod:`sibsim.waterfall`) on every generated
case, to dust.  Two deliberately broken engines (a waterfall that loses what it cannot place, and one
that pays juniors first) must each be caught: they are the numpy statement broken on purpose (its
Python functions can be replaced), and the properties run on it for that.
"""

from __future__ import annotations

import dataclasses
import functools
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from sibsim import cashflows
from sibsim import waterfall as engine
from sibsim.cashflows import settle
from sibsim.contracts import (
    DrawOrder,
    ExternalStop,
    Fee,
    Guarantee,
    Investor,
    Payer,
    Review,
    SavingsShare,
    Schedule,
    Step,
    Waterfall,
)
from sibsim.montecarlo import GroupOutcomes, Outcomes
from sibsim.stack import COMPOUNDING, GUARANTEE_WHEN, STEP_ORDERS
from tests.test_stack_deals import SIZE, base_contract, check_identities, outcomes_for

EXAMPLES = 120
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
TOL = 1e-6
CENT = 0.01
PATHS = 3
TERM = 12


@functools.lru_cache(maxsize=1)
def _base():
    c = base_contract(term=TERM, months=(6, 12), benefit=1.0)
    return dataclasses.replace(c, payer=dataclasses.replace(
        c.payer, rate_card=(("job_start", 1.0), ("job_sustained", 2.0))))


# ---------------------------------------------------------------------------------------
# generated stacks
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Knobs:
    """What a generated stack may use (a property restricts it to where it must hold)."""

    interest: bool = True          # interest on loans and deferred fees
    positive_rates: bool = True    # return caps and hurdle rates above 0
    after: bool = True             # steps with an ``after`` condition
    review: bool = True
    defaults: bool = True
    recycling: bool = True
    balance_savings: bool = True
    step_kinds: tuple = ("interest", "principal", "hurdle", "to_cap", "success_fee", "split")
    guarantees: bool = True
    termination_list: bool = True
    waterfall_fees: bool = True    # a fee paid by the waterfall's fees step
    payer_caps: bool = True
    step_caps: bool = True
    guarantee_when: tuple = GUARANTEE_WHEN
    max_tranches: int = 4
    upfront: bool = False          # every capital call before the first payment can fall due


def _tranche(draw, i: int, knobs: Knobs) -> Investor:
    kind = draw(st.sampled_from(("loan", "equity", "equity", "recoverable_grant", "grant", "deferred_fee")))
    rates = (0.0, 0.05, 0.2) if knobs.positive_rates else (0.0,)
    interest = 0.0
    if kind in ("loan", "deferred_fee") and knobs.interest:
        interest = draw(st.sampled_from((0.0, 0.03, 0.1)))
    if kind == "grant":
        cap = None
    elif kind == "recoverable_grant":
        cap = draw(st.sampled_from((None, 0.0)))
    else:
        cap = draw(st.sampled_from((None,) + rates))
    return Investor(f"T{i}", draw(st.sampled_from((100.0, 250.0, 400.0, 1_000.0))),
                    investor_class="grant" if kind == "grant" else "senior", return_cap=cap,
                    seniority=draw(st.integers(1, 3)), repayable=kind != "grant", kind=kind, interest=interest,
                    compounding=draw(st.sampled_from(COMPOUNDING)),
                    available_from_month=draw(st.sampled_from((0, 0, 0, 3, 6))))


def _subset(draw, names, min_size=0):
    if not names:
        return ()
    return tuple(draw(st.lists(st.sampled_from(names), unique=True, min_size=min_size, max_size=len(names))))


def _step(draw, repayable, kinds, knobs: Knobs) -> Step:
    pay = draw(st.sampled_from(kinds))
    to = _subset(draw, repayable)
    order = draw(st.sampled_from(STEP_ORDERS))
    cap = draw(st.sampled_from((None, None, None, 50.0, 300.0))) if knobs.step_caps else None
    after = _subset(draw, repayable) if knobs.after and draw(st.integers(0, 3)) == 0 else ()
    kw = {}
    if pay == "hurdle":
        kw["rate"] = draw(st.sampled_from((0.0, 0.05) if knobs.positive_rates else (0.0,)))
    elif pay == "success_fee":
        if draw(st.booleans()):
            kw["amount"] = draw(st.sampled_from((20.0, 150.0)))
        else:
            kw["share"] = draw(st.sampled_from((0.1, 0.5, 1.0)))
    elif pay == "split":
        targets = list(draw(st.lists(st.sampled_from(tuple(repayable) + ("provider", "payer")), unique=True,
                                     min_size=1, max_size=3)))
        raw = [draw(st.sampled_from((0.1, 0.25, 0.5, 1.0))) for _ in targets]
        total = sum(raw)
        shares = [r / total if total > 1 else r for r in raw]
        kw["shares"] = tuple(zip(targets, shares))
    return Step(pay, to, order, cap=cap, after=after, **kw)


def _steps(draw, repayable, kinds, knobs, min_size=1, max_size=5):
    out = []
    for _ in range(draw(st.integers(min_size, max_size))):
        s = _step(draw, repayable, kinds, knobs)
        out.append(s)
        if s.takes_all:  # the loader refuses a step after it (never reached)
            break
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Case:
    contract: object
    outcomes: Outcomes


@st.composite
def stacks(draw, knobs: Knobs = Knobs()):
    """A generated contract (stack, payers, termination) on the base contract."""
    base = _base()
    tranches = tuple(_tranche(draw, i, knobs) for i in range(draw(st.integers(1, knobs.max_tranches))))
    names = [t.name for t in tranches]
    repayable = [t.name for t in tranches if t.repayable]
    draw_order = DrawOrder()
    if draw(st.booleans()):
        perm = draw(st.permutations(names))
        cuts = sorted(set(draw(st.lists(st.integers(1, len(perm) - 1), max_size=2)))) if len(perm) > 1 else []
        bounds = [0, *cuts, len(perm)]
        draw_order = DrawOrder(tuple(tuple(perm[a:b]) for a, b in zip(bounds, bounds[1:])))
    budget = tuple((m, float(draw(st.sampled_from((0, 25, 50, 100))))) for m in range(9))
    fees = []
    if draw(st.integers(0, 3)) == 0:
        fees.append(Fee("arranger", "investors", Schedule(((0, 20.0),))))
    waterfall_fee = knobs.waterfall_fees and draw(st.integers(0, 2)) == 0
    if waterfall_fee:
        fees.append(Fee("servicer", "waterfall", Schedule(((draw(st.integers(1, 11)), 30.0),))))

    # Payers: one (the contract's own payer) or two.
    measurement = tuple(sorted(set(draw(st.lists(st.integers(1, TERM), min_size=1, max_size=3)))))
    payer = dataclasses.replace(base.payer, measurement_months=measurement,
                                payment_lag_months=draw(st.integers(0, 2)),
                                payment_cap=draw(st.sampled_from((None, None, 300.0, 1_500.0))) if knobs.payer_caps else None,
                                default_probability=0.2 if knobs.defaults and draw(st.booleans()) else 0.0)
    payers = ()
    if draw(st.booleans()):
        def one(name, buys, share):
            cap = draw(st.sampled_from((None, None, 200.0, 800.0))) if knobs.payer_caps else None
            return Payer(name, buys, share, cap, draw(st.integers(0, 2)),
                         0.2 if knobs.defaults and draw(st.booleans()) else 0.0,
                         draw(st.sampled_from(("investors", "investors", "provider"))))
        how = draw(st.sampled_from(("shares", "parts", "above_cap") if knobs.payer_caps else ("shares", "parts")))
        if how == "shares":
            share = draw(st.sampled_from((0.5, 0.3)))
            payers = (one("Gov", (), share), one("City", (), 1.0 - share))
        elif how == "parts":
            payers = (one("Gov", ("job_start",), 1.0), one("City", ("job_sustained", "savings"), 1.0))
        else:  # City pays what Gov's cap left
            gov = dataclasses.replace(one("Gov", (), 1.0), payment_cap=draw(st.sampled_from((200.0, 800.0))))
            city = dataclasses.replace(one("City", (), 1.0), above_cap_of="Gov",
                                       payment_lag_months=gov.payment_lag_months, paid_to=gov.paid_to)
            payers = (gov, city)
        # Each payer has its own cap and default risk; the formula's would be ignored (and are refused).
        payer = dataclasses.replace(payer, payment_cap=None, default_probability=0.0)
    savings = SavingsShare()
    kind = draw(st.sampled_from(("none", "none", "plain", "balance" if (knobs.balance_savings and repayable) else "plain")))
    if kind == "plain":
        savings = SavingsShare(draw(st.sampled_from((0.2, 0.5))))
    elif kind == "balance":
        savings = SavingsShare(0.9, rate_after=0.3, until_tranches=_subset(draw, repayable, 1),
                               until_rate=draw(st.sampled_from((0.0, 0.05) if knobs.positive_rates else (0.0,))),
                               per_cohort=draw(st.booleans()))
        if savings.per_cohort:  # two cohorts, a quarter and three quarters of the participants
            base = dataclasses.replace(base, cohorts=(base.cohorts[0], dataclasses.replace(
                base.cohorts[0], intake_month=1, size=3 * SIZE)))
    payer = dataclasses.replace(payer, savings_share=savings)
    if knobs.review and draw(st.integers(0, 2)) == 0:
        more = (("job_sustained", "difference", 1.0),) if draw(st.booleans()) else ()
        payer = dataclasses.replace(payer, review=Review(draw(st.integers(2, 9)), "job_start", "difference",
                                                         draw(st.sampled_from((0.5, 3.0, 10.0))), more,
                                                         draw(st.sampled_from(("any", "all")))))
    stop = ExternalStop(draw(st.integers(2, 10)), 0.5) if knobs.review and draw(st.integers(0, 3)) == 0 else None

    guarantees = []
    if knobs.guarantees and repayable:
        for g in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(("share", "first_loss", "floor")))
            guarantees.append(Guarantee(
                draw(st.sampled_from(("Foundation", "Bank", "Gov"))), _subset(draw, repayable, 1),
                share=draw(st.sampled_from((0.5, 1.0))), cap=draw(st.sampled_from((None, 100.0, 400.0))), kind=kind,
                amount=draw(st.sampled_from((50.0, 300.0))) if kind == "first_loss" else None,
                floor=draw(st.sampled_from((0.5, 0.8, 1.0))) if kind == "floor" else None,
                pays=draw(st.sampled_from(knobs.guarantee_when)), recoup=draw(st.booleans())))
    recoups = any(g.recoup for g in guarantees)

    terms = None
    if draw(st.integers(0, 3)) > 0:
        kinds = tuple(knobs.step_kinds) + (("recoup",) if recoups else ()) + (("fees",) if waterfall_fee else ())
        steps = _steps(draw, repayable, kinds, knobs)
        if waterfall_fee and not any(s.pay == "fees" for s in steps):
            steps = (Step("fees"),) + steps
        if recoups and not any(s.pay == "recoup" for s in steps) and draw(st.booleans()):
            steps = (Step("recoup"),) + steps
        on_termination = ()
        if knobs.termination_list and draw(st.integers(0, 2)) == 0:
            on_termination = _steps(draw, repayable, tuple(k for k in kinds if k != "fees"), knobs, max_size=3)
        terms = Waterfall(steps, on_termination)
    elif waterfall_fee:
        fees.pop()
    contract = dataclasses.replace(
        base, investors=tranches, draw_order=draw_order, provider_budget=Schedule(budget), fees=tuple(fees),
        payer=payer, payer_split=payers, guarantees=tuple(guarantees), waterfall_terms=terms,
        external_stop=stop, recycling=knobs.recycling and draw(st.integers(0, 3)) == 0)
    return _checked(contract, knobs)


def _checked(contract, knobs: Knobs):
    """``contract`` with every call before the first payment if ``knobs.upfront``; rejected (as the loader
    would refuse it) if its planned calls exceed the commitments available month by month."""
    if knobs.upfront:
        first = min(contract.payment_months)
        budget = tuple((m, a) for m, a in contract.provider_budget.entries if m < first)
        fees = tuple(f for f in contract.fees if f.paid_by != "investors" or f.schedule.last_month < first)
        contract = dataclasses.replace(contract, provider_budget=Schedule(budget), fees=fees)
    try:
        engine.planned_draws(contract)
    except RuntimeError:
        from hypothesis import reject
        reject()
    return contract


def _counts(draw, shape, hi):
    return np.array(draw(st.lists(st.sampled_from((0, 0, 0, 1, hi // 4, hi)), min_size=int(np.prod(shape)),
                                  max_size=int(np.prod(shape)))), dtype=np.int32).reshape(shape)


@st.composite
def outcomes_of(draw, contract, defaults: bool = True):
    """Random treated and comparison counts on ``PATHS`` paths; the contract's random defaults and stops."""
    T, K, Q = contract.horizon_months, len(contract.outcomes), len(contract.costs)
    C = len(contract.cohorts)
    treated = np.zeros((PATHS, C, K, T), np.int32)
    comparison = np.zeros((PATHS, C, K, T), np.int32)
    for name, hi in (("job_start", 200), ("job_sustained", 100)):
        k = contract.outcome_index(name)
        treated[:, :, k] = _counts(draw, (PATHS, C, T), hi)
        comparison[:, :, k] = _counts(draw, (PATHS, C, T), hi // 2)
    costs_t = _counts(draw, (PATHS, C, Q, T), 100)
    costs_c = _counts(draw, (PATHS, C, Q, T), 300)
    default = []
    for j, p in enumerate(contract.payers):
        n = len(contract.payer_payment_months(j))
        default.append(np.array(draw(st.lists(st.booleans(), min_size=PATHS * n, max_size=PATHS * n))).reshape(PATHS, n)
                       if defaults and p.default_probability > 0 else None)
    stopped = None
    if contract.external_stop is not None:
        stopped = np.array(draw(st.lists(st.booleans(), min_size=PATHS, max_size=PATHS)))
    sizes = np.array([co.size for co in contract.cohorts], np.int64)
    return Outcomes(GroupOutcomes(treated, costs_t, sizes, {}), GroupOutcomes(comparison, costs_c, sizes, {}),
                    payer_default=default[0] if len(default) == 1 else tuple(default), external_stop=stopped)


@st.composite
def recouping(draw, knobs: Knobs = Knobs()):
    """A generated stack made to recoup: an external stop at a measurement month whose payment falls
    after it (a lag), a guarantee paying at termination and recouped, a recoup step first."""
    contract = draw(stacks(knobs))
    repayable = [t.name for t in contract.investors if t.repayable]
    if not repayable:
        from hypothesis import reject
        reject()
    m = draw(st.integers(2, 9))
    payer = dataclasses.replace(contract.payer, measurement_months=tuple(sorted({*contract.payer.measurement_months, m})),
                                payment_lag_months=draw(st.integers(1, 2)), review=None)
    lags = {p.name: draw(st.integers(1, 2)) for p in contract.payer_split}
    # A payer above another's cap pays in that payer's months.
    payers = tuple(dataclasses.replace(p, payment_lag_months=lags[p.above_cap_of or p.name]) for p in contract.payer_split)
    guarantee = Guarantee("Foundation", _subset(draw, repayable, 1), share=draw(st.sampled_from((0.5, 1.0))),
                          pays="termination", recoup=True)
    terms = contract.waterfall_terms
    if terms is not None and not any(s.pay == "recoup" for s in terms.steps):
        terms = Waterfall((Step("recoup"),) + terms.steps, terms.on_termination)
    return _checked(dataclasses.replace(contract, payer=payer, payer_split=payers, external_stop=ExternalStop(m, 0.5),
                                        guarantees=(guarantee,) + contract.guarantees, waterfall_terms=terms), knobs)


@st.composite
def cases(draw, knobs: Knobs = Knobs()):
    recoup = knobs.guarantees and "termination" in knobs.guarantee_when and not draw(st.integers(0, 3))
    contract = draw(recouping(knobs) if recoup else stacks(knobs))
    return contract, draw(outcomes_of(contract, knobs.defaults))


# ---------------------------------------------------------------------------------------
# the properties, as functions returning what is wrong (so a broken engine can be searched for)
# ---------------------------------------------------------------------------------------
def conservation_violation(contract, outcomes) -> str | None:
    cash = settle(contract, outcomes)
    try:
        check_identities(contract, cash)
    except AssertionError as e:
        return str(e)
    return None


def cap_claims(contract, cash, guarantees: bool = True) -> np.ndarray:
    """Each capped tranche's claim at the end of every month, computed from the ledgers alone, (P, N, T):
    capital drawn less distributions (and guarantee payouts: a tranche made whole is not paid its loss
    again), compounded at its cap rate; +inf without a cap."""
    P, N, T = cash.distributions.shape
    out = np.full((P, N, T), np.inf)
    for i, t in enumerate(contract.investors):
        if t.cap_rate is None:
            continue
        g = (1.0 + t.cap_rate) ** (1 / 12)
        claim = np.zeros(P)
        for m in range(T):
            claim = claim * g + cash.capital_calls[:, i, m] - cash.distributions[:, i, m]
            if guarantees:
                claim = claim - cash.guarantee_payouts[:, i, m]
            out[:, i, m] = claim
    return out


def guarantee_violation(contract, cash) -> str | None:
    P, N, T = cash.distributions.shape
    index = {n: i for i, n in enumerate(contract.tranche_names)}
    drawn = cash.capital_calls.sum(axis=2)
    for g, guarantee in enumerate(contract.guarantees):
        paid = cash.guarantor_payments[g].sum(axis=1)
        covered = drawn[:, [index[n] for n in guarantee.investors]].sum(axis=1)
        bounds = [covered]
        if guarantee.cap is not None:
            bounds.append(np.full(P, guarantee.cap))
        if guarantee.kind == "first_loss":
            bounds.append(np.full(P, guarantee.amount))
        elif guarantee.kind == "share":
            bounds.append(guarantee.share * covered)
        else:
            bounds.append(guarantee.floor * covered)
        if (paid > np.min(bounds, axis=0) + TOL).any():
            return f"guarantee {g} ({guarantee.kind}) paid {paid.max()} beyond {np.min(bounds, axis=0)}"
        # It pays at most once per path (in its month), and only on its month.
        if ((cash.guarantor_payments[g] > TOL).sum(axis=1) > 1).any():
            return f"guarantee {g} paid in several months"
    # Guarantees cover losses: in a month they pay, a tranche's distributions and guarantee payouts so
    # far never exceed the capital it drew.
    got = np.cumsum(cash.distributions + cash.guarantee_payouts, axis=2)
    paying = cash.guarantee_payouts > TOL
    if (got[paying] > np.cumsum(cash.capital_calls, axis=2)[paying] + TOL).any():
        return "a guarantee paid beyond the loss"
    return None


# ---------------------------------------------------------------------------------------
# the compiled stack and its numpy statement
# ---------------------------------------------------------------------------------------
#: Where the two may differ: the numpy loop skips a step when no path of the block has more than
#: DUST on offer for it, the compiled one when this path has not (sibsim.waterfall_kernel notes).
DUST_PER_MONTH = 1e-8


def stack_disagreement(contract, outcomes) -> str | None:
    """The first ledger in which the compiled stack and the numpy statement differ beyond dust."""
    compiled, reference = settle(contract, outcomes), settle(contract, outcomes, stack="reference")
    for name in compiled.__dataclass_fields__:
        a, b = getattr(compiled, name), getattr(reference, name)
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            if a.shape != b.shape:
                return f"{name}: shapes {a.shape} and {b.shape}"
            bound = DUST_PER_MONTH * (1 + a.shape[-1])
            if not np.allclose(a, b, rtol=1e-12, atol=bound, equal_nan=True):
                return f"{name}: differs by {np.nanmax(np.abs(a - b)):.3g}"
        elif isinstance(a, np.ndarray) and not np.array_equal(a, b):
            return f"{name}: differs"
    return None


@SETTINGS
@given(cases())
def test_the_compiled_stack_agrees_with_its_numpy_statement_on_every_generated_case(case):
    assert stack_disagreement(*case) is None


def test_the_agreement_test_catches_a_compiled_stack_that_misreads_one_term(monkeypatch):
    """A compiled stack reading every sequential step as pro rata must disagree on some case."""
    from sibsim import waterfall_kernel

    real = waterfall_kernel._steps_table

    def misread(contract, steps, hurdle_index):
        table = real(contract, steps, hurdle_index)
        sequential = table["order"] == waterfall_kernel.SEQUENTIAL
        table["group"][sequential] = 0
        table["ngroups"][sequential] = np.minimum(table["ngroups"][sequential], 1)
        return table

    monkeypatch.setattr(waterfall_kernel, "_steps_table", misread)
    case = find(cases(), lambda c: stack_disagreement(*c) is not None, settings=POWER)
    assert stack_disagreement(*case) is not None


# ---------------------------------------------------------------------------------------
# cash conserved, caps, guarantees
# ---------------------------------------------------------------------------------------
@SETTINGS
@given(cases())
def test_cash_is_conserved_across_every_party_on_every_path_and_month(case):
    contract, outcomes = case
    assert conservation_violation(contract, outcomes) is None


@SETTINGS
@given(cases())
def test_no_tranche_is_paid_beyond_its_return_cap_and_guarantees_stay_within_theirs(case):
    contract, outcomes = case
    cash = settle(contract, outcomes)
    claims = cap_claims(contract, cash)
    assert (claims >= -CENT).all(), claims.min()
    # A grant is never repaid; a recoverable grant gets its principal at most.
    for i, t in enumerate(contract.investors):
        if t.kind == "grant":
            assert (cash.distributions[:, i] == 0).all()
    assert guarantee_violation(contract, cash) is None
    # Success fees of an amount never pay beyond it (the termination list's steps count on their own).
    w = contract.waterfall
    to_provider = [s for s in w.steps + w.on_termination
                   if s.pay == "success_fee" or (s.pay == "split" and "provider" in dict(s.shares))]
    if all(s.pay == "success_fee" and s.amount is not None for s in to_provider):
        limit = sum(min(s.amount, s.cap if s.cap is not None else np.inf) for s in to_provider)
        assert (cash.provider_payments.sum(axis=1) <= limit + TOL).all()


# ---------------------------------------------------------------------------------------
# seniority and sequence
# ---------------------------------------------------------------------------------------
def _order_violation(offer, owed, order, seniority, paid) -> str | None:
    """A junior (later) column paid while a senior (earlier) one is still owed after the step; also the
    step pays exactly what is on offer or all that is owed, within what each is owed."""
    short = np.maximum(owed, 0.0) - paid  # still owed after the step
    scale = 1.0 + np.abs(np.where(np.isfinite(owed), owed, 0.0)).max(initial=0.0)
    if (paid < -TOL).any() or (short < -TOL * scale).any():
        return "paid beyond what was owed"
    want = np.minimum(offer, np.maximum(owed, 0.0).sum(axis=1))
    if not np.allclose(paid.sum(axis=1), want, rtol=1e-9, atol=TOL):
        return f"paid {paid.sum(axis=1)} of {offer} with {owed.sum(axis=1)} owed"
    n = owed.shape[1]
    for a in range(n):
        for b in range(n):
            senior = (seniority[a] < seniority[b]) if order == "seniority" else (order == "sequential" and a < b)
            if senior and ((paid[:, b] > TOL) & (short[:, a] > TOL)).any():
                return f"column {b} paid while column {a} still owed ({order})"
    return None


@contextmanager
def watching_share_out():
    """Record every call of the engine's sharing rule (whatever it is) and check its order."""
    found = []
    inner = engine._share_out

    def spy(offer, owed, order, seniority, weights=None):
        paid = inner(offer, owed, order, seniority, weights)
        problem = _order_violation(offer, owed, order, np.asarray(seniority), paid)
        if problem:
            found.append(problem)
        return paid

    with mock.patch.object(engine, "_share_out", spy):
        yield found


def seniority_violation(contract, outcomes) -> str | None:
    """Inside the engine (the numpy statement: its sharing rule can be watched) and from the ledgers
    of the stack settlement runs (compiled unless a test says otherwise)."""
    with watching_share_out() as found:
        settle(contract, outcomes, stack="reference")
    if found:
        return found[0]
    return one_step_ledger_violation(contract, settle(contract, outcomes))


def one_step_ledger_violation(contract, cash) -> str | None:
    """From the ledgers alone, for a waterfall of one principal or to_cap step (sequential or by
    seniority) over tranches without interest: a junior is paid in a month only if every senior one is
    owed nothing after it (principal: drawn less repaid; to_cap: its cap claim)."""
    steps = contract.waterfall.steps
    if len(steps) != 1 or contract.waterfall.on_termination or steps[0].pay not in ("principal", "to_cap") \
            or steps[0].order == "pro_rata" or steps[0].after or steps[0].cap is not None:
        return None
    step = steps[0]
    names = contract.tranche_names
    cols = [names.index(n) for n in (step.to or names) if contract.investors[names.index(n)].repayable]
    if any(contract.investors[i].interest for i in cols):
        return None
    if step.pay == "principal":
        owed = np.cumsum(cash.capital_calls - cash.distributions, axis=2)
    else:
        owed = cap_claims(contract, cash, guarantees=False)
        drew = np.cumsum(cash.capital_calls, axis=2) > engine.DUST
        owed = np.where(drew, owed, 0.0)
    for ai, a in enumerate(cols):
        for b in cols[ai + 1:] if step.order == "sequential" else cols:
            if step.order == "seniority" and not contract.investors[a].seniority < contract.investors[b].seniority:
                continue
            bad = (cash.distributions[:, b] > TOL) & (owed[:, a] > CENT)
            if bad.any():
                return f"{names[b]} paid while {names[a]} still owed {owed[:, a][bad].max()}"
    return None


@SETTINGS
@given(cases())
def test_a_step_never_pays_a_junior_while_a_senior_in_the_same_step_is_owed(case):
    contract, outcomes = case
    assert seniority_violation(contract, outcomes) is None


@st.composite
def one_step_cases(draw):
    """Tranches without interest, one principal or to_cap step by seniority or in sequence."""
    knobs = Knobs(interest=False, after=False, guarantees=False, termination_list=False)
    contract = draw(stacks(knobs))
    repayable = [t.name for t in contract.investors if t.repayable]
    step = Step(draw(st.sampled_from(("principal", "to_cap"))), _subset(draw, repayable),
                draw(st.sampled_from(("seniority", "sequential"))))
    contract = dataclasses.replace(contract, waterfall_terms=Waterfall((step,)), recycling=False)
    return contract, draw(outcomes_of(contract))


@SETTINGS
@given(one_step_cases())
def test_seniority_read_from_the_ledgers_of_a_one_step_waterfall(case):
    contract, outcomes = case
    assert one_step_ledger_violation(contract, settle(contract, outcomes)) is None


# ---------------------------------------------------------------------------------------
# power: broken engines must be caught
# ---------------------------------------------------------------------------------------
POWER = settings(max_examples=400, database=None, derandomize=True, phases=(Phase.generate,),
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.filter_too_much])


def _losing_run_steps(steps, columns, accounts, offer, ctx, fresh):
    """Deliberately wrong: what no step takes in a month is lost (neither withheld nor kept by the payer)."""
    _real_run_steps(steps, columns, accounts, offer, ctx, fresh)
    return np.zeros_like(offer)


_real_run_steps = engine._run_steps


@pytest.fixture
def numpy_stack(monkeypatch):
    """Settle with the numpy statement of the stack, whose functions a test can break on purpose."""
    monkeypatch.setattr(cashflows, "DEFAULT_STACK", "reference")


def test_the_conservation_property_catches_a_waterfall_that_loses_what_it_cannot_place(numpy_stack):
    with mock.patch.object(engine, "_run_steps", _losing_run_steps):
        case = find(cases(), lambda c: conservation_violation(*c) is not None, settings=POWER)
        assert conservation_violation(*case) is not None


def _juniors_first(offer, owed, order, seniority, weights=None):
    """Deliberately wrong: seniority and sequence reversed (the most junior paid first)."""
    seniority = np.asarray(seniority)
    if order == "sequential":
        flipped = None if weights is None else weights[:, ::-1]  # (P, n) capital drawn, for to_cap
        return _real_share_out(offer, owed[:, ::-1], order, seniority[::-1], flipped)[:, ::-1]
    return _real_share_out(offer, owed, order, -seniority, weights)


_real_share_out = engine._share_out


def test_the_seniority_property_catches_a_waterfall_that_pays_juniors_first(numpy_stack):
    with mock.patch.object(engine, "_share_out", _juniors_first):
        case = find(cases(), lambda c: seniority_violation(*c) is not None, settings=POWER)
        assert seniority_violation(*case) is not None
        # The ledger-only check sees it too, without looking inside the engine.
        case = find(one_step_cases(), lambda c: one_step_ledger_violation(c[0], settle(*c)) is not None,
                    settings=POWER)
        assert one_step_ledger_violation(case[0], settle(*case)) is not None


# ---------------------------------------------------------------------------------------
# monotonicity: more outcomes
# ---------------------------------------------------------------------------------------
@st.composite
def more_of(draw, outcomes: Outcomes) -> Outcomes:
    """The same paths with more treated outcomes: extra job starts and sustained jobs (never fewer), and
    fewer treated benefit months (more savings); the same defaults and stops."""
    t = outcomes.treated
    extra = np.zeros_like(t.events)
    for k in range(extra.shape[2]):
        extra[:, :, k] = _counts(draw, extra[:, :, k].shape, 100)
    fewer = np.minimum(_counts(draw, t.costs.shape, 100), t.costs)
    return dataclasses.replace(outcomes, treated=dataclasses.replace(t, events=t.events + extra, costs=t.costs - fewer))


def received(cash) -> np.ndarray:
    """What each tranche received in all, per path: distributions and guarantee payouts, (P, N)."""
    return (cash.distributions + cash.guarantee_payouts).sum(axis=2)


def monotone_violation(contract, outcomes, more) -> str | None:
    base, richer = received(settle(contract, outcomes)), received(settle(contract, more))
    scale = 1e-9 * (1.0 + contract.total_commitment)
    worse = richer < base - TOL - scale
    if worse.any():
        p, i = map(int, np.argwhere(worse)[0])
        return f"{contract.tranche_names[i]} received {richer[p, i]:.6f} < {base[p, i]:.6f} on path {p}"
    return None


@st.composite
def monotone_cases(draw, knobs: Knobs):
    contract, outcomes = draw(cases(knobs))
    return contract, outcomes, draw(more_of(outcomes))


def _cap_violation(contract, outcomes) -> bool:
    return bool((cap_claims(contract, settle(contract, outcomes)) < -CENT).any())


def test_the_cap_property_catches_a_guarantee_payout_that_leaves_the_tranche_owed(numpy_stack):
    # The engine before its fix: a guarantee payout did not lower what the tranche was still owed, so
    # cash offered later paid it its loss a second time, beyond its return cap.
    with mock.patch.object(engine._Accounts, "cover", lambda self, paid: None):
        case = find(cases(), lambda c: _cap_violation(*c), settings=POWER)
        assert _cap_violation(*case)


#: Where more outcomes must never lower what a tranche receives in all: nothing earns a rate (no interest,
#: return caps and hurdles at 0 % or none), every capital call before the first payment, no ``after``
#: condition, no step or payer cap, no default, no review.  Everything else stays random: kinds,
#: seniorities, draw orders, splits (tranches, provider, payer), success fees, the fees step, guarantees
#: of every kind and timing (recouped or not), two payers (one paying the provider), external stops,
#: termination lists, balance-linked savings shares.  (Recycling is drawn too, but with every call made
#: before any payment it has nothing to fund.)  Each condition is needed: see the counterexamples below.
MONOTONE = Knobs(interest=False, positive_rates=False, after=False, review=False, defaults=False,
                 step_caps=False, payer_caps=False, upfront=True)


@SETTINGS
@given(monotone_cases(MONOTONE))
def test_more_outcomes_never_lower_what_a_tranche_receives(case):
    contract, outcomes, more = case
    assert monotone_violation(contract, outcomes, more) is None


# Counterexamples: one for each condition above, hand-computed.  Each is economics, not an engine bug.
def _received(contract, outcomes) -> np.ndarray:
    cash = settle(contract, outcomes)
    check_identities(contract, cash)
    return received(cash)


def test_counterexample_interest_a_loan_repaid_earlier_earns_less_interest():
    # Loan L 1,000 at 5 % compounded monthly, drawn at month 0; steps: interest, principal (the rest is
    # withheld).  Base: 600 @6, 500 @12.  More: 100 more job starts before month 6: 700 @6, 500 @12.
    #   Base: @6 balance 1,000 x 1.05^0.5 = 1,024.695, paid 600 -> 424.695; @12: x 1.05^0.5 = 435.18
    #   paid in full.  L: 1,035.18.   More: 324.695 left -> 332.71 @12.  L: 1,032.71 (less).
    # Both repay the loan exactly with its 5 %: valued at 5 % a year, both are worth 0.
    R = 1.05 ** 0.5
    c = base_contract(months=(6, 12), budget={0: 1_000.0})
    c = dataclasses.replace(c, investors=(Investor("L", 1_000.0, kind="loan", interest=0.05),),
                            waterfall_terms=Waterfall((Step("interest", ("L",)), Step("principal", ("L",)))))
    base = _received(c, outcomes_for(c, [{5: 600, 11: 500}]))
    more = _received(c, outcomes_for(c, [{5: 700, 11: 500}]))
    np.testing.assert_allclose([base[0, 0], more[0, 0]], [600 + (1_000 * R - 600) * R, 700 + (1_000 * R - 700) * R],
                               atol=0.005)
    assert more[0, 0] < base[0, 0] - 2
    for got in (600, 700):  # valued at its 5 %: both zero
        flows = np.array([-1_000.0, got, (1_000 * R - got) * R])
        assert abs(flows @ (1.05 ** -np.array([0.0, 0.5, 1.0]))) < 1e-9


def test_counterexample_after_an_earlier_repayment_switches_on_a_success_fee_ahead_of_a_junior():
    # S 600 (seniority 1) and C 400 (seniority 2), no caps, drawn at month 0.  Steps: a success fee of
    # half the cash on offer once S is repaid; principal to S; everything to C.  (The fee step comes
    # before S's own step, so in the month S is repaid the fee still waits.)
    #   Base 500 @3, 700 @6: @3 S 500.  @6 the fee waits (S owes 100), S 100, C 600.
    #   More 600 @3, 700 @6: @3 S 600 (repaid).  @6 fee 350, C 350.  C: 600 -> 350.
    c = base_contract(months=(3, 6), budget={0: 1_000.0})
    steps = (Step("success_fee", share=0.5, after=("S",)), Step("principal", ("S",)), Step("to_cap", ("C",)))
    c = dataclasses.replace(c, investors=(Investor("S", 600.0), Investor("C", 400.0, seniority=2)),
                            waterfall_terms=Waterfall(steps))
    base = _received(c, outcomes_for(c, [{2: 500, 5: 700}]))
    more = _received(c, outcomes_for(c, [{2: 600, 5: 700}]))
    np.testing.assert_allclose([base[0], more[0]], [[600, 600], [600, 350]], atol=0.005)


def test_counterexample_review_passing_it_loses_the_floor_paid_on_termination():
    # S 1,000 (no cap), 100 a month called in months 0-9; review at month 6 (fewer than 100 job starts:
    # stop); a floor of 0.8 paid on termination.  Measurements at 6 and 10.
    #   Base: 90 job starts before month 6: stopped at 6 with 600 drawn; 90 paid @6; floor 480 - 90 =
    #   390.  S: 480.   More: 100 job starts: the contract runs, 1,000 drawn, 100 paid.  S: 100.
    c = base_contract(months=(6, 10), budget={m: 100.0 for m in range(10)})
    c = dataclasses.replace(c, investors=(Investor("S", 1_000.0),),
                            guarantees=(Guarantee("Foundation", ("S",), kind="floor", floor=0.8, pays="termination"),),
                            payer=dataclasses.replace(c.payer, review=Review(6, "job_start", "difference", 10.0)))
    base = _received(c, outcomes_for(c, [{5: 90}]))
    more = _received(c, outcomes_for(c, [{5: 100}]))
    np.testing.assert_allclose([base[0, 0], more[0, 0]], [480, 100], atol=0.005)


def test_counterexample_default_more_outcomes_move_money_into_a_missed_payment():
    # A 1,000 (no cap) drawn at month 0; EUR 1 per net job start and per net sustained job, measured at 3
    # and 6 (lag 0); the payer misses its first payment.  Comparison: 100 job starts in month 4.
    #   Base: 100 sustained jobs in month 4.  Net at 3: 0; at 6: job starts -100 (counted as 0), sustained
    #   100: entitlement 0, 100 -> paid 0 (missed) @3, 100 @6.  A: 100.
    #   More: also 100 job starts in month 1.  Net at 3: 100; at 6: 0 and 100: entitlement 100, 100 ->
    #   100 @3 (missed), 0 @6.  A: 0.
    c = base_contract(months=(3, 6), budget={0: 1_000.0})
    c = dataclasses.replace(c, investors=(Investor("A", 1_000.0),),
                            payer=dataclasses.replace(c.payer, rate_card=(("job_start", 1.0), ("job_sustained", 1.0)),
                                                      default_probability=0.5))
    missed = np.array([[True, False]])
    common = dict(events={"job_sustained": [{4: 100}]}, comparison={"job_start": [{4: 100}]}, defaults=missed)
    base = _received(c, outcomes_for(c, [{}], **common))
    more = _received(c, outcomes_for(c, [{1: 100}], **common))
    np.testing.assert_allclose([base[0, 0], more[0, 0]], [100, 0], atol=0.005)


def test_counterexample_calls_after_a_payment_with_a_payer_cap_money_early_bypasses_a_capped_senior():
    # J 100 (no cap, seniority 2) drawn at month 0, then S 900 (0 % cap, seniority 1) 100 a month in
    # months 1-9 (draw order J, S).  Payer cap 900; measurements at 3 and 10 (lag 0).
    #   Base: 900 job starts in month 9: 900 @10, S has drawn 900: S 900.
    #   More: also 500 in month 2: 500 @3, when S has drawn 300: S 300, J 200; the cap leaves 400 @10:
    #   S 400.  S: 700 (and J, who drew 100, 200).
    c = base_contract(months=(3, 10), budget={m: 100.0 for m in range(10)})
    c = dataclasses.replace(c, investors=(Investor("S", 900.0, return_cap=0.0), Investor("J", 100.0, seniority=2)),
                            draw_order=DrawOrder((("J",), ("S",))),
                            payer=dataclasses.replace(c.payer, payment_cap=900.0))
    base = _received(c, outcomes_for(c, [{9: 900}]))
    more = _received(c, outcomes_for(c, [{2: 500, 9: 900}]))
    np.testing.assert_allclose([base[0], more[0]], [[900, 0], [700, 200]], atol=0.005)
