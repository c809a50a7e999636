"""The capital stack month by month: draws, receipts, the ordered waterfall, guarantees.

Reads the terms of :mod:`sibsim.stack` (the waterfall is data: an ordered list of steps) and
loops over months, each step vectorised over paths.  :func:`sibsim.cashflows.settle` computes
what falls due (which does not depend on the stack, except a savings share whose switch follows
a balance) and hands it here.

Each month ``t``, in this order:

1. **Accrue.** Interest on each tranche's balance (:mod:`sibsim.stack` notes); return-cap and
   hurdle claims grow at their rates.
2. **Receive.** Each payer's payment due this month, within its cap (which counts what it paid
   or still owes), unless it defaults on it.  What a cap cuts off is owed, in the same month, by
   the payer ``above_cap_of`` it (if any; within its own cap and defaults).  Payments
   ``paid_to = "provider"`` go to the provider directly; the rest into the vehicle.
3. **Fund delivery.** With recycling, money held by the vehicle funds this month's delivery
   budget and investor fees first; capital is called for the rest, split over the tranches by
   the draw order (never beyond a commitment, never before a tranche is available).  Without
   recycling, everything received is on offer at once; with it, what is held is released once
   delivery has ended as planned, or at an early termination.
4. **Waterfall.** The cash on offer (released this month plus what was withheld before) goes
   through the steps in order (from the month of an early termination on: the termination
   list, which then also receives everything the vehicle holds); what is left is withheld
   (owed by the payers, offered again next month; what is withheld at the end, the payers keep).
5. **Guarantees** due this month pay the covered tranches' losses (principal drawn less all
   the waterfall and earlier guarantees paid them), in listed order, within their caps.  A
   payout repays the tranche's principal and counts against its return cap, so later cash
   never pays a loss twice (a guarantor that recoups is repaid by its own step).

Each payer's money is kept apart: in the vehicle, on offer and withheld.  Every pool is used
pro rata within a month, so what is withheld, or kept through a ``"payer"`` share of a split,
belongs to each payer in proportion to its part of the cash on offer that month.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stack import PAYER, PROVIDER

#: Below this, an amount is round-off, not money (a millionth of a cent).
DUST = 1e-9
#: A tranche owing at most this (half a cent) is repaid, for a step's ``after`` condition.
REPAID = 0.005


def draw(contract, needs: np.ndarray, month: int, remaining: np.ndarray) -> np.ndarray:
    """Split this month's capital calls ``needs`` (P,) over the tranches, (P, N) EUR.

    ``remaining`` (P, N) is each tranche's undrawn commitment.  No draw order: pro rata to
    commitments (:attr:`Contract.call_weights`) if every tranche is available from month 0,
    otherwise as one group of them all.  With one: group by group, pro rata to what is left undrawn
    within a group, among tranches available in ``month``.
    """
    groups = contract.draw_order.groups
    names = contract.tranche_names
    if not groups:
        if all(t.available_from_month <= 0 for t in contract.investors):
            return needs[:, None] * contract.call_weights[None, :]
        groups = (names,)  # a tranche is never drawn before it is available
    available = np.array([t.available_from_month <= month for t in contract.investors])
    calls = np.zeros_like(remaining)
    left = needs.copy()
    for group in groups:
        members = np.array([n in group for n in names]) & available
        room = np.where(members[None, :], np.maximum(remaining, 0.0), 0.0)
        total = room.sum(axis=1)
        take = np.minimum(left, total)
        calls += room * np.divide(take, total, out=np.zeros_like(take), where=total > 0)[:, None]
        left = left - take
    if (left > REPAID).any():
        # The loader checks the planned calls fit the commitments month by month, and settlement
        # only lowers calls; reaching here is a bug, never a silent shortfall.
        raise RuntimeError(f"capital calls of {left.max():,.2f} in month {month} exceed the commitments left")
    return calls


def planned_draws(contract) -> np.ndarray:
    """Planned EUR drawn from each tranche per month, (N, T): the budget plus investor fees, every month."""
    T = contract.horizon_months
    needs = contract.provider_budget.to_array(T) + contract.fee_schedule("investors")
    remaining = np.array([[t.commitment for t in contract.investors]])
    out = np.zeros((len(contract.investors), T))
    for t in range(T):
        calls = draw(contract, needs[t:t + 1], t, remaining)
        out[:, t] = calls[0]
        remaining = remaining - calls
    return out


@dataclass
class _Accounts:
    """What each tranche is owed, per path: the state the steps read and change, (P, N) each."""

    drawn: np.ndarray
    principal: np.ndarray
    interest: np.ndarray
    cap_claim: np.ndarray      # capital drawn compounded at the cap rate, less paid likewise; +inf: no cap
    hurdles: dict              # rate -> claim compounded at that rate, (P, N)
    received: np.ndarray       # everything the waterfall paid, EUR

    def owe(self, kind: str, rate: float = 0.0) -> np.ndarray:
        """What a step of ``kind`` owes the tranches, within their caps."""
        room = np.maximum(self.cap_claim, 0.0)
        if kind == "interest":
            owed = self.interest
        elif kind == "principal":
            owed = self.principal
        elif kind == "hurdle":
            owed = np.maximum(self.hurdles[rate], 0.0)
        else:  # to_cap, split: a tranche that has drawn nothing has nothing to be repaid, no return to earn
            return np.where(self.drawn > DUST, room, 0.0)
        return np.minimum(owed, room)

    def pay(self, paid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Book payments (P, N): interest first, then principal; returns (interest, principal) parts."""
        to_interest = np.minimum(paid, self.interest)
        to_principal = np.minimum(paid - to_interest, self.principal)
        self.interest = self.interest - to_interest
        self.principal = self.principal - to_principal
        self.cap_claim = self.cap_claim - paid
        for rate in self.hurdles:
            self.hurdles[rate] = self.hurdles[rate] - paid
        self.received = self.received + paid
        return to_interest, to_principal

    def cover(self, paid: np.ndarray) -> None:
        """Book guarantee payouts (P, N): they repay principal (then interest) and count against the
        return cap and hurdles, so later cash never pays a loss a guarantor already made good."""
        to_principal = np.minimum(paid, self.principal)
        self.principal = self.principal - to_principal
        self.interest = np.maximum(self.interest - (paid - to_principal), 0.0)
        self.cap_claim = self.cap_claim - paid
        for rate in self.hurdles:
            self.hurdles[rate] = self.hurdles[rate] - paid

    def repaid(self, columns) -> np.ndarray:
        """(P,) bool: each tranche of ``columns`` has drawn capital and owes nothing."""
        owes = (self.interest[:, columns] + self.principal[:, columns]) > REPAID
        return ((self.drawn[:, columns] > REPAID) & ~owes).all(axis=1)


def _share_out(offer: np.ndarray, owed: np.ndarray, order: str, seniority: np.ndarray,
               weights: np.ndarray | None = None) -> np.ndarray:
    """Pay ``offer`` (P,) against ``owed`` (P, n): pro rata to what is owed, in sequence, or by seniority.

    ``weights`` (P, n) (a ``to_cap`` step, whose claims may be unlimited: a tranche without a
    return cap has no size to be pro rata to): shares pro rata to them (the capital drawn) by
    water-filling instead, so what a capped tranche cannot take goes round again to the others.
    """
    paid = np.zeros_like(owed)
    left = offer.copy()
    if order == "sequential":
        groups = [np.arange(owed.shape[1]) == j for j in range(owed.shape[1])]
    elif order == "pro_rata":
        groups = [np.ones(owed.shape[1], dtype=bool)]
    else:
        groups = [seniority == s for s in sorted(set(seniority.tolist()))]
    for members in groups:
        if weights is not None:
            for _ in range(int(members.sum())):
                open_ = members & (owed - paid > DUST)
                w = np.where(open_, weights, 0.0)
                total = w.sum(axis=1, keepdims=True)
                share = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
                give = np.minimum(left[:, None] * share, np.maximum(owed - paid, 0.0))
                paid += give
                left = np.maximum(left - give.sum(axis=1), 0.0)
            continue
        o = np.where(members[None, :], np.maximum(owed, 0.0), 0.0)
        total = o.sum(axis=1)
        fraction = np.minimum(np.divide(left, total, out=np.ones_like(left), where=total > 0), 1.0)
        give = o * fraction[:, None]
        paid += give
        left = np.maximum(left - give.sum(axis=1), 0.0)
    return paid


@dataclass
class _StepState:
    paid: np.ndarray  # (P,) EUR the step has paid so far (its cap, a success fee's amount)


def _run_steps(steps, columns, accounts: _Accounts, offer: np.ndarray, ctx, fresh: np.ndarray) -> np.ndarray:
    """Apply ``steps`` to ``offer`` (P,) in order; books every payment in ``ctx``; returns what is left.

    ``fresh`` (P,) is the part of ``offer`` that arrived this month; the rest was withheld before.
    A share of the cash (a split, a success fee as a share) is taken of the fresh part only, so
    money withheld after a split is never split again (the provider's share would compound month
    after month); claims (interest, principal, hurdles, caps, fees, recoup) take withheld money first.
    """
    left = offer
    old = np.maximum(offer - fresh, 0.0)  # withheld money still on offer
    for s, step in steps:
        state = ctx.step_state[s]
        shared = step.pay == "split" or (step.pay == "success_fee" and step.amount is None)
        on_offer = np.maximum(left - old, 0.0) if shared else left
        base = on_offer if not step.after else np.where(accounts.repaid(columns[s + ("after",)]), on_offer, 0.0)
        cap_left = None if step.cap is None else np.maximum(step.cap - state.paid, 0.0)
        # A cap limits what the step pays: for a share of the cash (a split, a success fee as a
        # share) the share is taken of all that is on offer and then cut to the cap.
        budget = base if cap_left is None else np.minimum(base, cap_left)
        if not (budget > DUST).any():
            continue
        if step.pay in ("interest", "principal", "hurdle", "to_cap"):
            cols = columns[s]
            owed = accounts.owe(step.pay, step.rate)[:, cols]
            paid = np.zeros_like(accounts.received)
            paid[:, cols] = _share_out(budget, owed, step.order, ctx.seniority[cols],
                                       accounts.drawn[:, cols] if step.pay == "to_cap" else None)
            ctx.book_tranches(accounts, paid)
            spent = paid.sum(axis=1)
        elif step.pay == "success_fee":
            if step.amount is not None:
                give = np.minimum(budget, np.maximum(step.amount - state.paid, 0.0))
            else:
                give = base * step.share if cap_left is None else np.minimum(base * step.share, cap_left)
            ctx.provider[:, ctx.t] += give
            spent = give
        elif step.pay == "fees":
            give = np.minimum(budget, np.maximum(ctx.fees_due_to_date - ctx.fees_paid, 0.0))
            ctx.fees_paid = ctx.fees_paid + give
            ctx.waterfall_fees[:, ctx.t] += give
            spent = give
        elif step.pay == "recoup":
            owed = np.maximum(ctx.guarantee_paid - ctx.recovered, 0.0) * ctx.recoups[:, None]  # (G, P)
            give = _share_out(budget, owed.T, "pro_rata", np.zeros(owed.shape[0])).T  # pro rata to what is owed
            ctx.recovered = ctx.recovered + give
            ctx.recoveries[:, :, ctx.t] += give
            spent = give.sum(axis=0)
        else:  # split
            paid = np.zeros_like(accounts.received)
            room = np.where(accounts.drawn > DUST, np.maximum(accounts.cap_claim, 0.0), 0.0)
            parts = []
            for target, share in step.shares:
                part = base * share
                if target not in (PROVIDER, PAYER):
                    part = np.minimum(part, room[:, ctx.index[target]])
                parts.append(part)
            spent = np.sum(parts, axis=0)
            if cap_left is not None:  # every share cut in proportion to fit the cap
                scale = np.minimum(np.divide(cap_left, spent, out=np.ones_like(spent), where=spent > cap_left), 1.0)
                parts = [part * scale for part in parts]
                spent = spent * scale
            for (target, _), part in zip(step.shares, parts):
                if target == PROVIDER:
                    ctx.provider[:, ctx.t] += part
                elif target == PAYER:
                    ctx.to_payers[:, ctx.t] += part
                else:
                    paid[:, ctx.index[target]] += part
            ctx.book_tranches(accounts, paid)
        state.paid = state.paid + spent
        if not shared:
            old = np.maximum(old - spent, 0.0)
        left = np.maximum(left - spent, 0.0)
    return np.where(left < DUST, 0.0, left)


@dataclass
class _Context:
    """Ledgers the steps write, and what they read besides the accounts."""

    t: int
    index: dict
    seniority: np.ndarray
    step_state: dict
    distributions: np.ndarray   # (P, N, T)
    interest_paid: np.ndarray
    principal_repaid: np.ndarray
    provider: np.ndarray        # (P, T)
    to_payers: np.ndarray       # (P, T)
    waterfall_fees: np.ndarray  # (P, T)
    fees_due_to_date: np.ndarray | float
    fees_paid: np.ndarray
    guarantee_paid: np.ndarray  # (G, P)
    recovered: np.ndarray       # (G, P)
    recoveries: np.ndarray      # (G, P, T)
    recoups: np.ndarray         # (G,) bool

    def book_tranches(self, accounts: _Accounts, paid: np.ndarray) -> None:
        interest, principal = accounts.pay(paid)
        self.distributions[:, :, self.t] += paid
        self.interest_paid[:, :, self.t] += interest
        self.principal_repaid[:, :, self.t] += principal


def _columns(contract, steps) -> dict:
    """Tranche columns of each step (``to``; all repayable tranches if empty) and of its ``after``."""
    names = contract.tranche_names
    out = {}
    for key, step in steps:
        to = step.to or tuple(t.name for t in contract.investors if t.repayable)
        out[key] = np.array([names.index(n) for n in to if contract.investors[names.index(n)].repayable],
                            dtype=np.int64)
        out[key + ("after",)] = np.array([names.index(n) for n in step.after], dtype=np.int64)
    return out


@dataclass(frozen=True)
class StackLedgers:
    """What :func:`run` returns: every party's monthly ledger; ``P`` paths, ``N`` tranches, ``J`` payers, ``G`` guarantees."""

    capital_calls: np.ndarray       # (P, N, T)
    distributions: np.ndarray       # (P, N, T) everything the waterfall paid each tranche
    interest_paid: np.ndarray       # (P, N, T) the part of it that paid interest
    principal_repaid: np.ndarray    # (P, N, T) the part that repaid principal
    guarantee_payouts: np.ndarray   # (P, N, T)
    guarantor_payments: np.ndarray  # (G, P, T)
    guarantor_recoveries: np.ndarray  # (G, P, T)
    payer_due: np.ndarray           # (J, P, T) due within the cap
    payer_defaulted: np.ndarray     # (J, P, T)
    payer_retained: np.ndarray      # (J, P, T) change of what it withholds, plus its share of splits
    payer_withheld: np.ndarray      # (J, P, T)
    provider_outcome_payments: np.ndarray  # (P, T) paid by payers to the provider directly
    provider_payments: np.ndarray   # (P, T) success fees and split shares from the waterfall
    waterfall_fees: np.ndarray      # (P, T)
    recycled: np.ndarray            # (P, T)
    vehicle_cash: np.ndarray        # (P, T)


def run(contract, due: np.ndarray, defaults: list, needs: np.ndarray, termination_month: np.ndarray,
        savings_part=None) -> StackLedgers:
    """Run the capital stack over every month.

    Parameters
    ----------
    due : (J, P, T)
        Each payer's payments falling due, before its cap and defaults (EUR).
    defaults : list of (P, len(payer_payment_months(j))) bool or None
        Each payer's missed payments.
    needs : (P, T)
        Delivery budget plus investor fees actually spent (zero after a termination).
    termination_month : (P,) int
        Month of an early termination, or -1.
    savings_part : callable or None
        ``savings_part(t, accounts) -> (J, P)``: a savings share whose switch follows a balance,
        due this month (see :func:`sibsim.cashflows.settle`); None if there is none.
    """
    payers = contract.payers
    tranches = contract.investors
    J, P, T = due.shape
    N, G = len(tranches), len(contract.guarantees)
    waterfall = contract.waterfall
    steps = tuple(((0, i), s) for i, s in enumerate(waterfall.steps))
    # Without a termination list of its own, the same steps (and their caps) run at termination.
    term_steps = (tuple(((1, i), s) for i, s in enumerate(waterfall.on_termination))
                  if waterfall.on_termination else steps)
    columns = _columns(contract, steps + term_steps)
    hurdle_rates = {s.rate for _, s in steps + term_steps if s.pay == "hurdle"}
    if savings_part is not None:
        hurdle_rates.add(contract.payer.savings_share.until_rate)
    cap_growth = np.array([1.0 if t.cap_rate is None else (1.0 + t.cap_rate) ** (1 / 12) for t in tranches])
    capped = np.array([t.cap_rate is not None for t in tranches])
    accrual = np.array([t.monthly_interest for t in tranches])
    on_interest = np.array([t.compounding == "monthly" for t in tranches])
    zeros_pn = np.zeros((P, N))
    accounts = _Accounts(zeros_pn.copy(), zeros_pn.copy(), zeros_pn.copy(),
                         np.where(capped[None, :], 0.0, np.inf) + zeros_pn,
                         {r: zeros_pn.copy() for r in hurdle_rates}, zeros_pn.copy())
    ctx = _Context(
        t=0, index={n: i for i, n in enumerate(contract.tranche_names)},
        seniority=np.array([t.seniority for t in tranches]),
        step_state={key: _StepState(np.zeros(P)) for key, _ in steps + term_steps},
        distributions=np.zeros((P, N, T)), interest_paid=np.zeros((P, N, T)), principal_repaid=np.zeros((P, N, T)),
        provider=np.zeros((P, T)), to_payers=np.zeros((P, T)), waterfall_fees=np.zeros((P, T)),
        fees_due_to_date=0.0, fees_paid=np.zeros(P),
        guarantee_paid=np.zeros((G, P)), recovered=np.zeros((G, P)), recoveries=np.zeros((G, P, T)),
        recoups=np.array([g.recoup for g in contract.guarantees], dtype=bool))
    waterfall_fee_schedule = np.cumsum(contract.fee_schedule("waterfall"))

    calls = np.zeros((P, N, T))
    payer_due, payer_defaulted = np.zeros((J, P, T)), np.zeros((J, P, T))
    payer_retained, payer_withheld = np.zeros((J, P, T)), np.zeros((J, P, T))
    direct = np.zeros((P, T))
    recycled, held = np.zeros((P, T)), np.zeros((P, T))
    guarantee_payouts, guarantor_payments = np.zeros((P, N, T)), np.zeros((G, P, T))

    counted = np.zeros((J, P))      # what each payer paid or owes: what its cap has used up
    pay_index = [{m: k for k, m in enumerate(contract.payer_payment_months(j))} for j in range(J)]
    to_vehicle = np.array([p.paid_to != "provider" for p in payers])
    payer_caps = [p.payment_cap for p in payers]
    # The payer (if any) paying above each payer's cap.
    tops_up = [next((k for k, q in enumerate(payers) if q.above_cap_of == p.name), None) for p in payers]
    remaining = np.broadcast_to(np.array([t.commitment for t in tranches], dtype=float), (P, N)).copy()

    # Recycling: the vehicle releases what it holds once delivery has ended as planned, or at an
    # early termination: never earlier because the future cuts the budget short.
    planned = contract.provider_budget.to_array(T) + contract.fee_schedule("investors")
    planned_end = int(np.flatnonzero(planned > 0).max()) if (planned > 0).any() else 0
    terminated = termination_month >= 0
    # Each payer's money in the vehicle and withheld: every pool is used pro rata within a month,
    # so what is left (or kept by the payers through a split) is each payer's own.
    vehicle = np.zeros((J, P))
    withheld = np.zeros((J, P))
    payout_month = guarantee_month(contract)

    for t in range(T):
        ctx.t = t
        # 1. accrue
        base = accounts.principal + np.where(on_interest[None, :], accounts.interest, 0.0)
        accounts.interest = accounts.interest + base * accrual[None, :]
        accounts.cap_claim = accounts.cap_claim * cap_growth[None, :]
        for rate in accounts.hurdles:
            accounts.hurdles[rate] = accounts.hurdles[rate] * (1.0 + rate) ** (1 / 12)
        # 2. receive
        owed_now = due[:, :, t].copy()
        if savings_part is not None:
            owed_now += savings_part(t, accounts)
        received = np.zeros((J, P))
        for j in range(J):
            if t not in pay_index[j]:
                continue
            amount = owed_now[j]
            if payer_caps[j] is not None:
                amount = np.minimum(amount, np.maximum(payer_caps[j] - counted[j], 0.0))
                if tops_up[j] is not None:  # listed later, same months: it owes what the cap left
                    owed_now[tops_up[j]] += owed_now[j] - amount
            missed = amount * defaults[j][:, pay_index[j][t]] if defaults[j] is not None else np.zeros(P)
            payer_due[j, :, t] = amount
            payer_defaulted[j, :, t] = missed
            counted[j] += amount - missed
            if to_vehicle[j]:
                received[j] = amount - missed
            else:
                direct[:, t] += amount - missed
        # 3. fund delivery and draw
        if contract.recycling:
            vehicle = vehicle + received
            pool = vehicle.sum(axis=0)
            use = np.minimum(pool, needs[:, t])
            recycled[:, t] = use
            call = needs[:, t] - use
            vehicle = vehicle * _kept(pool, use)
            ending = (t >= planned_end) | (terminated & (t >= termination_month))
            released = np.where(ending[None, :], vehicle, 0.0)
            vehicle = np.where(ending[None, :], 0.0, vehicle)
        else:
            call, released = needs[:, t], received
        held[:, t] = vehicle.sum(axis=0)
        if call.any():
            c = draw(contract, call, t, remaining)
            remaining -= c
            calls[:, :, t] = c
            accounts.drawn = accounts.drawn + c
            accounts.principal = accounts.principal + c
            accounts.cap_claim = accounts.cap_claim + c
            for rate in accounts.hurdles:
                accounts.hurdles[rate] = accounts.hurdles[rate] + c
        # 4. waterfall: from an early termination on, the termination list
        ctx.fees_due_to_date = waterfall_fee_schedule[t]
        pools = released + withheld
        offer = pools.sum(axis=0)
        fresh = released.sum(axis=0)
        wound_down = terminated & (t >= termination_month)
        if not (offer > DUST).any():
            left = np.zeros(P)  # nothing on offer: no step can pay (round-off dust is not money)
        elif wound_down.any() and term_steps is not steps:
            left = (_run_steps(steps, columns, accounts, np.where(wound_down, 0.0, offer), ctx,
                               np.where(wound_down, 0.0, fresh))
                    + _run_steps(term_steps, columns, accounts, np.where(wound_down, offer, 0.0), ctx,
                                 np.where(wound_down, fresh, 0.0)))
        else:
            left = _run_steps(steps, columns, accounts, offer, ctx, fresh)
        share = np.divide(pools, offer, out=np.zeros_like(pools), where=offer > 0)  # each payer's part
        withheld = share * left
        payer_withheld[:, :, t] = withheld
        payer_retained[:, :, t] = (withheld - (payer_withheld[:, :, t - 1] if t else 0.0)
                                   + share * ctx.to_payers[:, t])
        # 5. guarantees
        if G:
            _guarantees(contract, accounts, t, payout_month, termination_month, ctx,
                        guarantee_payouts, guarantor_payments)

    return StackLedgers(calls, ctx.distributions, ctx.interest_paid, ctx.principal_repaid,
                        guarantee_payouts, guarantor_payments, ctx.recoveries,
                        payer_due, payer_defaulted, payer_retained, payer_withheld,
                        direct, ctx.provider, ctx.waterfall_fees, recycled, held)


def _kept(pool: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Share of a pool (P,) left after ``used`` (P,) of it is spent: every payer's part alike."""
    return np.divide(pool - used, pool, out=np.zeros_like(pool), where=pool > 0)


def guarantee_month(contract) -> int:
    """Month a ``maturity`` guarantee pays: after the last payment and the last capital call, so no
    later call or distribution changes the loss it covers."""
    last_call = max([contract.provider_budget.last_month]
                    + [f.schedule.last_month for f in contract.fees if f.paid_by == "investors"])
    return min(max(max(contract.payment_months, default=0), last_call), contract.horizon_months - 1)


def _guarantees(contract, accounts: _Accounts, t: int, payout_month: int, termination_month: np.ndarray,
                ctx: _Context, to_tranches: np.ndarray, by_guarantee: np.ndarray) -> None:
    """Guarantees paying in month ``t``, in listed order, each on the loss the earlier ones left;
    consecutive ``share`` guarantees (co-guarantors) each pay their share of the same loss."""
    names = contract.tranche_names
    terminated_now = termination_month == t
    run_got = None  # payouts before a run of consecutive share guarantees: co-guarantors share one loss
    for g, guarantee in enumerate(contract.guarantees):
        got = to_tranches.sum(axis=2)  # guarantee payouts so far, this month's earlier ones included
        if guarantee.kind == "share":
            run_got = got if run_got is None else run_got  # the run starts at its first listed member
            got = run_got
        else:
            run_got = None
        if guarantee.pays == "maturity":
            pays = np.full(termination_month.shape, t == payout_month)
        elif guarantee.pays == "termination":
            pays = terminated_now
        else:
            pays = terminated_now | ((termination_month < 0) & (t == payout_month))
        if not pays.any():
            continue
        covered = np.array([n in guarantee.investors for n in names])
        loss = np.maximum(accounts.drawn - accounts.received - got, 0.0) * covered[None, :]
        if guarantee.kind == "share":
            # Its share of the run's loss, never more than the loss still uncovered (shares adding up
            # beyond 1 are refused by the loader; the engine never pays a loss twice either way).
            left = np.maximum(accounts.drawn - accounts.received - to_tranches.sum(axis=2), 0.0)
            cover = np.minimum(guarantee.share * loss, left * covered[None, :])
        elif guarantee.kind == "first_loss":
            total = loss.sum(axis=1, keepdims=True)
            cover = loss * np.minimum(np.divide(guarantee.amount, total, out=np.ones_like(total), where=total > 0), 1.0)
        else:  # floor
            cover = np.maximum(guarantee.floor * accounts.drawn - accounts.received - got, 0.0) * covered[None, :]
        if guarantee.cap is not None:
            room = np.maximum(guarantee.cap - ctx.guarantee_paid[g], 0.0)[:, None]
            total = cover.sum(axis=1, keepdims=True)
            cover = cover * np.minimum(np.divide(room, total, out=np.ones_like(total), where=total > room), 1.0)
        cover = np.where(pays[:, None], cover, 0.0)
        accounts.cover(cover)
        to_tranches[:, :, t] += cover
        by_guarantee[g, :, t] = cover.sum(axis=1)
        ctx.guarantee_paid[g] += cover.sum(axis=1)
