"""The capital stack in words: one sentence per tranche, waterfall step, guarantee and payer.

Read by the memo and the workbook, so both say the terms the same way (and as the scenario
file states them: these sentences describe the terms, never a result).
"""

from __future__ import annotations

from .stack import PAYER, PROVIDER, Guarantee, Payer, Step, Tranche

KIND_WORDS = {"loan": "loan", "equity": "equity", "recoverable_grant": "recoverable grant",
              "grant": "grant", "deferred_fee": "deferred provider fee"}
ORDER_WORDS = {"seniority": "senior first, pro rata within a seniority", "pro_rata": "pro rata",
               "sequential": "in the order listed"}
WHEN_WORDS = {"maturity": "at maturity (after the last payment and capital call)",
              "termination": "if the contract terminates early, in that month",
              "termination_or_maturity": "at an early termination, else at maturity"}


def _money(value: float, currency: str) -> str:
    return f"{currency} {value:,.0f}"


def _pct(value: float) -> str:
    return f"{value * 100:.4g} %"


def _names(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def tranche_text(t: Tranche, currency: str) -> str:
    """E.g. "loan of EUR 500,000 held by Bank, 5 % a year interest (compounded monthly), return cap 10 %"."""
    parts = [f"{KIND_WORDS[t.kind]} of {_money(t.commitment, currency)}"]
    if t.holder != t.name:
        parts[0] += f" held by {t.holder}"
    if t.interest:
        parts.append(f"{_pct(t.interest)} a year interest on principal drawn and outstanding ("
                     + ("compounded monthly" if t.compounding == "monthly" else "simple interest") + ")")
    if t.kind == "recoverable_grant":
        parts.append("its principal repaid at most")
    elif t.return_cap is not None:
        parts.append(f"return capped at {_pct(t.return_cap)} a year")
    if t.repayable:
        parts.append(f"seniority {t.seniority}")
    if t.available_from_month:
        parts.append(f"drawn from month {t.available_from_month}")
    return ", ".join(parts)


def savings_share_text(share) -> str:
    """A :class:`~sibsim.contracts.SavingsShare` in words, e.g. "95 % of the measured savings until Loan
    has received its capital drawn plus 5 % a year, then 40 %"."""
    text = f"{_pct(share.rate)} of the measured savings"
    if share.switch_multiple is not None:
        text += f" until {share.switch_multiple:g} times the capital has been paid, then {_pct(share.rate_after)}"
    elif share.until_tranches:
        who = _names(share.until_tranches)
        has = "has" if len(share.until_tranches) == 1 else "have"
        text += (f" until {who} {has} received the capital drawn plus {_pct(share.until_rate)} a year, then "
                 f"{_pct(share.rate_after)}")
        text += (" (each cohort's savings against its share of that balance)" if share.per_cohort
                 else " (all cohorts' savings pooled)")
    return text


def step_text(step: Step, currency: str, tranches: tuple[str, ...]) -> str:
    """One waterfall step in words, e.g. "interest to Senior loan"."""
    to = _names(step.to or tranches)
    pay = step.pay
    if pay == "fees":
        text = "fees due from the waterfall (arrears carried)"
    elif pay == "interest":
        text = f"accrued interest to {to}"
    elif pay == "principal":
        text = f"outstanding principal to {to}"
    elif pay == "hurdle":
        text = f"{to} until capital drawn plus {_pct(step.rate)} a year is received"
    elif pay == "to_cap":
        text = f"{to} up to {'its return cap' if len(step.to or tranches) == 1 else 'their return caps'}"
    elif pay == "success_fee":
        text = ("a success fee to the provider of " + (_money(step.amount, currency) + " in all"
                                                       if step.amount is not None else f"{_pct(step.share)} of what is left"))
    elif pay == "split":
        words = {PROVIDER: "to the provider", PAYER: "kept by the payer"}
        text = "the rest split: " + ", ".join(f"{_pct(s)} {words.get(t, 'to ' + t)}" for t, s in step.shares)
    else:
        text = "guarantors repaid what they paid out"
    if pay in ("interest", "principal", "hurdle", "to_cap") and len(step.to or tranches) > 1:
        text += f" ({ORDER_WORDS[step.order]})"
    if step.after:
        text += f", only once {_names(step.after)} {'is' if len(step.after) == 1 else 'are'} repaid"
    if step.cap is not None:
        text += f", at most {_money(step.cap, currency)} in all"
    return text


def waterfall_text(contract) -> list[str]:
    """The waterfall's steps in order, and its termination list if it has one of its own."""
    currency = contract.currency
    repayable = tuple(t.name for t in contract.investors if t.repayable)
    w = contract.waterfall
    lines = [f"{i + 1}. {step_text(s, currency, repayable)}" for i, s in enumerate(w.steps)]
    if w.on_termination:
        lines.append("at an early termination: " + "; ".join(step_text(s, currency, repayable)
                                                                for s in w.on_termination))
    return lines


def guarantee_text(g: Guarantee, currency: str) -> str:
    """E.g. "the first EUR 1,320,000 of the loss of Investors, at an early termination, else at maturity"."""
    covered = _names(g.investors)
    if g.kind == "share":
        text = f"{_pct(g.share)} of the principal loss of {covered}"
    elif g.kind == "first_loss":
        text = f"the first {_money(g.amount, currency)} of the principal loss of {covered}"
    else:
        text = f"{covered} back to at least {_pct(g.floor)} of principal drawn"
    if g.cap is not None:
        text += f", at most {_money(g.cap, currency)}"
    text += f"; pays {WHEN_WORDS[g.pays]}"
    if g.recoup:
        text += "; recouped from later outcome payments"
    return text


def payer_text(p: Payer, currency: str) -> str:
    """E.g. "50 % of the payments for employment; cap USD 12,000,000; 3 months after each measurement"."""
    what = "every payment" if not p.buys else "the payments for " + _names([b.replace("_", " ") for b in p.buys])
    parts = [f"{_pct(p.share)} of {what}" if p.share != 1 else what[0].upper() + what[1:]]
    if p.above_cap_of is not None:
        parts = [f"What {p.above_cap_of}'s cap leaves unpaid"]
    parts.append(f"cap {_money(p.payment_cap, currency)}" if p.payment_cap is not None else "no cap")
    parts.append(f"{p.payment_lag_months} months after each measurement")
    if p.default_probability:
        parts.append(f"each payment missed with probability {_pct(p.default_probability)}")
    if p.paid_to == "provider":
        parts.append("paid to the provider directly")
    return "; ".join(parts)
