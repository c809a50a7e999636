"""Read a scenario's capital stack into :mod:`sibsim.stack` terms.

``[[investors]]`` (one entry per tranche: kind, interest, availability, holder), ``[capital]``
``draw_order``, ``waterfall`` (the one-line default) or ``[waterfall]`` (steps and
``on_termination``), ``[[guarantees]]`` (kind, when it pays, recoup), ``[[payers]]`` (who pays which
part of the payment formula), the balance-linked ``savings_share.until``, ``[payer.review]`` with
several conditions and ``[external_stop]``.  Problems go through the scenario's
:class:`~sibsim.checking._Checker`, one line each ``file: field: rule, got value``.

A reference to a tranche (a step's ``to``, ``after`` and split ``shares``, the draw order, a
guarantee, the savings share's ``until``) must match a tranche's name exactly: a near miss is
refused with the name it probably means.  References are checked only once every tranche has been
read (a tranche with a problem of its own is reported there, not again at each reference).

A file without the new keys loads to exactly the Contract it loaded to before them: no draw order,
the default waterfall (``Contract.waterfall_terms`` None), one payer, no external stop.
"""

from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass

from .checking import MAX_MONTH, _Checker, _describe, _join, _show, name_key
from .contracts import MEASURES, Review, SavingsShare
from .stack import (
    COMPOUNDING,
    GUARANTEE_KINDS,
    GUARANTEE_WHEN,
    PAYER,
    PROVIDER,
    STEP_KINDS,
    STEP_ORDERS,
    TRANCHE_KINDS,
    DrawOrder,
    ExternalStop,
    Guarantee,
    Investor,
    Payer,
    Step,
    Waterfall,
    above_cap_problem,
)

#: The one-line waterfall: what no ``[waterfall]`` table means.
DEFAULT_WATERFALL = "by_seniority"
#: Tranche kinds that bear interest.
INTEREST_KINDS = ("loan", "deferred_fee")
#: The payers' shares of each part of the payments must add up to 1 within this.
PAYER_SHARE_TOLERANCE = 1e-9
#: A split's shares may add up to 1 plus this (as :attr:`Step.takes_all` reads "adds up to 1").
SPLIT_TOLERANCE = 1e-12
#: What a review combines its conditions by.
REVIEW_COMBINE = ("any", "all")
#: Where a payer's payments go.
PAID_TO = ("investors", "provider")
#: The savings share's part of the payments, for ``[[payers]] buys``.
SAVINGS = "savings"
GRANT_NEVER_REPAID = "a grant is never repaid"

_TRANCHE_KEYS = ("class", "return_cap", "seniority", "repayable", "capital_protection",
                 "kind", "interest", "compounding", "available_from_month", "holder")
#: Keys each step kind takes besides ``pay``, ``cap`` and ``after``; and those it requires.
_STEP_COMMON = ("pay", "cap", "after")
_STEP_KEYS = {"fees": (), "recoup": (), "interest": ("to", "order"), "principal": ("to", "order"),
              "to_cap": ("to", "order"), "hurdle": ("to", "order", "rate"), "success_fee": ("amount", "share"),
              "split": ("shares",)}
_STEP_REQUIRED = {"hurdle": ("rate",), "split": ("shares",)}
#: The field each guarantee kind requires (and only it takes).
_GUARANTEE_TERM = {"share": "share", "first_loss": "amount", "floor": "floor"}
_GUARANTEE_COMMON = ("guarantor", "investors", "classes", "cap", "kind", "pays", "recoup")
_PAYER_KEYS = ("buys", "share", "payment_cap", "default_probability", "paid_to", "above_cap_of")
#: [payer] keys each of [[payers]] gives instead.
PAYER_OWN_KEYS = ("payment_cap", "payment_lag_months", "default_probability")


# --- tranches ----------------------------------------------------------------------------------
@dataclass
class Tranches:
    """The ``[[investors]]`` entries read: each tranche with its field, and the payer's capital protection."""

    read: list[tuple[Investor, str]] = dataclasses.field(default_factory=list)
    #: (tranche, share, field) for each ``capital_protection`` > 0 (a guarantee by the payer).
    protected: list[tuple[str, float, str]] = dataclasses.field(default_factory=list)
    entries: int = 0

    @property
    def investors(self) -> list[Investor]:
        return [t for t, _ in self.read]

    @property
    def complete(self) -> bool:
        """Every entry read without a problem: references to tranches can be checked."""
        return 0 < self.entries == len(self.read)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t, _ in self.read)

    def is_grant(self, name: str) -> bool:
        return any(t.name == name and not t.repayable for t, _ in self.read)


def read_tranches(c: _Checker, data, last_month: int) -> Tranches:
    """Every ``[[investors]]`` entry (a tranche), names unique once normalised."""
    out = Tranches()
    items = c.array_of_tables(data, "investors")
    out.entries = len(items)
    names: dict[str, tuple[str, str]] = {}  # name_key -> (field, name) of the first tranche so named
    for i, item in enumerate(items):
        tranche = _tranche(c, item, f"investors[{i}]", names, last_month, out.protected)
        if tranche is not None:
            out.read.append((tranche, f"investors[{i}]"))
    return out


def _tranche(c: _Checker, item, f: str, names: dict, last_month: int, protected: list) -> Investor | None:
    t = c.table(item, f, required=("name", "commitment"), optional=_TRANCHE_KEYS)
    if t is None:
        return None
    name = c.name(t, "name", f)
    c.unique_name(name, _join(f, "name"), names)
    commitment = c.amount(t, "commitment", f, gt=0)
    klass = c.name(t, "class", f, default="senior")
    cap = c.annual_rate(t, "return_cap", f, default=None, ge=0)
    seniority = c.number(t, "seniority", f, default=1, integer=True, ge=1, le=100)
    kind, repayable = _kind(c, t, f, klass)
    protection = c.number(t, "capital_protection", f, default=0.0, ge=0, le=1)
    if protection and repayable is False:
        c.problem(_join(f, "capital_protection"), f"guarantees on grants are refused ({GRANT_NEVER_REPAID}: "
                  f"it has no loss to cover), got {_show(protection)} on grant {name!r}")
        protection = None
    elif protection and name is not None:
        protected.append((name, float(protection), _join(f, "capital_protection")))
    resolved = None if kind is None or repayable is None else kind or ("equity" if repayable else "grant")
    accrual = _interest(c, t, f, resolved)
    if not _cap_fits_kind(c, t, f, cap, resolved):
        cap = None
        resolved = None
    available = c.number(t, "available_from_month", f, integer=True, ge=0, le=last_month) \
        if "available_from_month" in t else 0
    holder = c.name(t, "holder", f) if "holder" in t else ""
    if None in (name, commitment, klass, seniority, repayable, resolved, accrual, available, holder):
        return None
    return Investor(name, float(commitment), klass, None if cap is None else float(cap), seniority, repayable,
                    kind, accrual[0], accrual[1], available, holder)


def _kind(c: _Checker, t: dict, f: str, klass) -> tuple[str | None, bool | None]:
    """The kind as written ("" if not: the Investor derives it) and whether it is repayable (they agree)."""
    if "kind" not in t:
        return "", c.boolean(t, "repayable", f, default=klass != "grant")
    kind = c.choice(t, "kind", f, TRANCHE_KINDS)
    repayable = c.boolean(t, "repayable", f, default=kind != "grant")
    if kind is not None and repayable is not None and repayable != (kind != "grant"):
        c.problem(_join(f, "repayable"), f"must agree with kind = {kind!r} (only a grant is not repaid), "
                  f"got {str(repayable).lower()}")
        return None, None
    return kind, repayable


def _interest(c: _Checker, t: dict, f: str, kind: str | None) -> tuple[float, str] | None:
    """Annual interest (loans and deferred fees only) and how it accrues."""
    interest = c.annual_rate(t, "interest", f, ge=0) if "interest" in t else 0.0
    compounding = c.choice(t, "compounding", f, COMPOUNDING) if "compounding" in t else "monthly"
    if interest is None or compounding is None:
        return None
    if interest > 0 and kind is not None and kind not in INTEREST_KINDS:
        why = " (the default kind: give kind = \"loan\")" if "kind" not in t else ""
        c.problem(_join(f, "interest"), f"only a loan or a deferred_fee bears interest, got {_show(interest)} "
                  f"on kind {kind!r}{why}")
        return None
    if "compounding" in t and interest == 0:
        c.problem(_join(f, "compounding"), f"must come with interest > 0 (it says how interest accrues), "
                  f"got compounding = {compounding!r} and {'interest = 0' if 'interest' in t else 'no interest'}")
        return None
    return float(interest), compounding


def _cap_fits_kind(c: _Checker, t: dict, f: str, cap, kind: str | None) -> bool:
    """A recoverable grant is repaid its principal, nothing more: no return cap above 0."""
    if kind == "recoverable_grant" and cap is not None and cap > 0:
        c.problem(_join(f, "return_cap"), f"must be 0 or left out for a recoverable_grant (repaid its principal, "
                  f"nothing more), got {_show(cap)}")
        return False
    return True


def _known(c: _Checker, field: str, name: str, known, what: str) -> bool:
    """``name`` is one of ``known`` exactly; a near miss (case, spacing, Unicode form) is refused with its match."""
    if name in known:
        return True
    near = [n for n in known if name_key(n) == name_key(name)]
    hint = (f"; did you mean {near[0]!r}? names must match exactly" if near else
            f" (known: {', '.join(n if n.isprintable() else repr(n) for n in sorted(known))})")
    c.problem(field, f"unknown {what} {name!r}{hint}")
    return False


def tranche_list(c: _Checker, value, field: str, tranches: Tranches, why_grant: str | None = None
                 ) -> tuple[str, ...] | None:
    """A non-empty array of tranche names, each once; ``why_grant``: grants are refused, saying this."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        c.problem(field, f"must be a non-empty array of tranche names, got {_describe(value)}")
        return None
    if not tranches.complete:
        return None
    ok = True
    for j, name in enumerate(value):
        fj = f"{field}[{j}]"
        if not _known(c, fj, name, tranches.names, "tranche"):
            ok = False
        elif value.index(name) < j:
            c.problem(fj, f"must name each tranche once, got {name!r} twice")
            ok = False
        elif why_grant and tranches.is_grant(name):
            c.problem(fj, f"{why_grant}, got grant {name!r}")
            ok = False
    return tuple(value) if ok else None


# --- draw order and feasibility --------------------------------------------------------------------
def read_draw_order(c: _Checker, data, tranches: Tranches) -> DrawOrder | None:
    """``[capital] draw_order``: groups of tranche names naming every tranche exactly once."""
    t = c.table(data, "capital", required=("draw_order",))
    if t is None or "draw_order" not in t:
        return None
    field, groups = "capital.draw_order", t["draw_order"]
    if not (isinstance(groups, list) and groups and all(
            isinstance(g, list) and g and all(isinstance(n, str) for n in g) for g in groups)):
        c.problem(field, f"must be an array of groups, each a non-empty array of tranche names (first group "
                  f"drawn first), e.g. [[\"Grant\"], [\"Loan\"]], got {_describe(groups)}")
        return None
    if not tranches.complete:
        return None
    seen: dict[str, str] = {}
    ok = True
    for gi, group in enumerate(groups):
        for j, name in enumerate(group):
            fj = f"{field}[{gi}][{j}]"
            if not _known(c, fj, name, tranches.names, "tranche"):
                ok = False
            elif name in seen:
                c.problem(fj, f"must name each tranche once, got {name!r} again (also {seen[name]})")
                ok = False
            else:
                seen[name] = fj
    missing = [n for n in tranches.names if n not in seen]
    if ok and missing:
        c.problem(field, f"must name every tranche exactly once, missing {', '.join(map(repr, missing))}")
        ok = False
    return DrawOrder(tuple(tuple(g) for g in groups)) if ok else None


def availability_problems(c: _Checker, tranches: Tranches, draw_order: DrawOrder) -> None:
    """A tranche available later needs a draw order: without one every call is shared pro rata to
    commitments from month 0 (:func:`sibsim.waterfall.draw`), which would ignore it."""
    if draw_order.groups:
        return
    for tranche, f in tranches.read:
        if tranche.available_from_month > 0:
            c.problem(_join(f, "available_from_month"), f"needs [capital] draw_order (without one every call is "
                      f"shared pro rata to commitments from month 0), got {tranche.available_from_month}")


def capital_shortfall(tranches, needs: dict[int, float]) -> tuple[int, float, float, float] | None:
    """The first month whose planned calls exceed the commitments available, or None.

    ``needs``: EUR of capital called per month (budget + investor fees).  Calls draw only from
    tranches available that month and never beyond a commitment; availability only grows, so
    month ``m`` is short exactly when the calls up to ``m`` exceed the commitments of the tranches
    available at ``m`` (whatever the draw order: it only says which tranche pays).
    Returns ``(month, short, calls to date, available)``.
    """
    to_date = 0.0
    for month in sorted(needs):
        to_date += needs[month]
        available = math.fsum(t.commitment for t in tranches if t.available_from_month <= month)
        if to_date > available * (1 + 1e-12):
            return month, to_date - available, to_date, available
    return None


def shortfall_problem(c: _Checker, tranches: Tranches, budget, fees) -> None:
    """Planned capital calls must fit the commitments available month by month."""
    needs: dict[int, float] = {}
    for schedule in [budget] + [f.schedule for f in fees if f.paid_by == "investors"]:
        for month, amount in schedule.entries:
            needs[month] = needs.get(month, 0.0) + amount
    short = capital_shortfall(tranches.investors, needs)
    if short is not None:
        month, by, to_date, available = short
        cur = c.currency
        c.problem("investors", f"planned capital calls (provider.budget + investor fees) must fit the commitments "
                  f"available month by month (available_from_month): month {month} is short by {cur} {by:,.2f} "
                  f"(calls to date {cur} {to_date:,.2f}, commitments available {cur} {available:,.2f})")


# --- the waterfall ----------------------------------------------------------------------------------
def read_waterfall(c: _Checker, data, tranches: Tranches, draw_order: DrawOrder | None = None) -> Waterfall | None:
    """``waterfall = "by_seniority"`` or absent: None (the default); else a ``[waterfall]`` table."""
    if isinstance(data, str):
        if data != DEFAULT_WATERFALL:
            c.problem("waterfall", f"must be {DEFAULT_WATERFALL!r} (the default: every tranche up to its return "
                      f"cap, senior first) or a [waterfall] table of steps, got {_describe(data)}")
        return None
    t = c.table(data, "waterfall", required=("steps",), optional=("on_termination",))
    if t is None or "steps" not in t:
        return None
    steps = _steps(c, t["steps"], "waterfall.steps", tranches, draw_order)
    on_termination = _steps(c, t["on_termination"], "waterfall.on_termination", tranches, draw_order) \
        if "on_termination" in t else ()
    if steps is None or on_termination is None:
        return None
    return Waterfall(steps, on_termination)


def _steps(c: _Checker, value, field: str, tranches: Tranches,
           draw_order: DrawOrder | None = None) -> tuple[Step, ...] | None:
    """A non-empty array of steps, none after one that takes all that is left."""
    if not isinstance(value, list) or not value:
        c.problem(field, f"must be a non-empty array of steps {{ pay = ... }}, got {_describe(value)}")
        return None
    steps = [_step(c, item, f"{field}[{i}]", tranches) for i, item in enumerate(value)]
    if None in steps:
        return None
    for i, step in enumerate(steps[:-1]):
        if _takes_all(step, tranches, draw_order):
            c.problem(f"{field}[{i + 1}]", f"never reached: {field}[{i}] takes all the cash left "
                      f"({_why_all(step)}, no cap, no after), got a {steps[i + 1].pay!r} step after it")
            return None
    return tuple(steps)


def _takes_all(step: Step, tranches: Tranches, draw_order: DrawOrder | None = None) -> bool:
    """Whether no cash is ever left after the step: an unconditional split of everything to
    targets that take any amount (the provider, the payer, tranches without a return cap that
    draw at the first capital call: available from the start and, with a draw order, in its
    first group: :attr:`Step.takes_all`), or a success fee of the whole share.  A capped tranche,
    or one that draws later, can leave cash for later steps: a tranche takes nothing before it
    has drawn.  (So can a ``to_cap`` step.)"""
    if step.cap is not None or step.after:
        return False
    if step.pay == "split":
        first = set(draw_order.groups[0]) if draw_order is not None and draw_order.groups else None
        limited = {t.name for t in tranches.investors if t.cap_rate is not None or t.available_from_month > 0
                   or (first is not None and t.name not in first)}
        return step.takes_all and not any(target in limited for target, _ in step.shares)
    return step.pay == "success_fee" and step.share == 1


def _why_all(step: Step) -> str:
    return {"split": "shares adding up to 1", "success_fee": "share = 1",
            "to_cap": "a tranche without a return cap takes everything"}[step.pay]


def _step(c: _Checker, item, field: str, tranches: Tranches) -> Step | None:
    if not isinstance(item, dict):
        c.problem(field, f"must be a table {{ pay = ... }}, got {_describe(item)}")
        return None
    if "pay" not in item:
        c.problem(_join(field, "pay"), f"missing required field (one of {', '.join(STEP_KINDS)})")
        return None
    pay = c.choice(item, "pay", field, STEP_KINDS)
    if pay is None:
        return None
    allowed = _STEP_COMMON + _STEP_KEYS[pay]
    ok = True
    for key in item:
        if key not in allowed:
            c.problem(_join(field, key), f"unknown key for pay = {pay!r} (allowed: {', '.join(sorted(allowed))})")
            ok = False
    for key in _STEP_REQUIRED.get(pay, ()):
        if key not in item:
            c.problem(_join(field, key), f"missing required field (for pay = {pay!r})")
            ok = False
    if not ok:
        return None
    terms = _step_terms(c, item, field, pay, tranches)
    return None if terms is None else Step(pay, **terms)


def _step_terms(c: _Checker, t: dict, field: str, pay: str, tranches: Tranches) -> dict | None:
    """The keyword arguments of :class:`Step` besides ``pay``, or None after a problem."""
    out: dict = {}
    if "to" in t:
        out["to"] = tranche_list(c, t["to"], _join(field, "to"), tranches, GRANT_NEVER_REPAID)
    if "order" in t:
        out["order"] = c.choice(t, "order", field, STEP_ORDERS)
    if "after" in t:
        out["after"] = tranche_list(c, t["after"], _join(field, "after"), tranches,
                                    f"{GRANT_NEVER_REPAID} (the step would never pay)")
    if "cap" in t:
        out["cap"] = c.amount(t, "cap", field, gt=0)
    if pay == "hurdle":
        out["rate"] = c.annual_rate(t, "rate", field, ge=0)
    if pay == "success_fee":
        out["fee"] = _success_fee(c, t, field)
    if pay == "split":
        out["shares"] = _split_shares(c, t["shares"], _join(field, "shares"), tranches)
    if any(v is None for v in out.values()):
        return None
    out.update(out.pop("fee", {}))
    return {k: float(v) if k in ("rate", "cap", "amount", "share") else v for k, v in out.items()}


def _success_fee(c: _Checker, t: dict, field: str) -> dict | None:
    """Exactly one of ``amount`` (EUR in all) and ``share`` (of the cash on offer)."""
    if ("amount" in t) == ("share" in t):
        c.problem(field, f"a success_fee needs exactly one of amount (> 0, in all) and share (0 < share <= 1, of "
                  f"the cash on offer), got {'both' if 'amount' in t else 'neither'}")
        return None
    if "amount" in t:
        amount = c.amount(t, "amount", field, gt=0)
        return None if amount is None else {"amount": amount}
    share = c.number(t, "share", field, gt=0, le=1)
    return None if share is None else {"share": share}


def _split_shares(c: _Checker, value, field: str, tranches: Tranches) -> tuple[tuple[str, float], ...] | None:
    """``{target = share}``: tranche names, provider or payer; each share > 0, adding up to at most 1."""
    if not isinstance(value, dict) or not value:
        c.problem(field, f"must be a table {{ target = share }} of tranche names, provider or payer, "
                  f"got {_describe(value)}")
        return None
    shares, ok = [], True
    for target, share in value.items():
        f = _join(field, target)
        s = c.check_number(share, f, gt=0, le=1)
        if target in (PROVIDER, PAYER):
            if target in tranches.names:
                c.problem(f, f"ambiguous: a tranche is named {target!r} too (rename it), got {target!r}")
                ok = False
        elif not tranches.complete or not _known(c, f, target, tranches.names + (PROVIDER, PAYER),
                                                 "split target (a tranche, provider or payer)"):
            ok = False
        elif tranches.is_grant(target):
            c.problem(f, f"{GRANT_NEVER_REPAID}, got grant {target!r}")
            ok = False
        if s is None:
            ok = False
        else:
            shares.append((target, float(s)))
    if not ok:
        return None
    total = math.fsum(s for _, s in shares)
    if total > 1 + SPLIT_TOLERANCE:
        c.problem(field, f"shares must add up to at most 1 (what is left goes on to the next steps), "
                  f"got {total:.12g}")
        return None
    return tuple(shares)


def _all_steps(terms: Waterfall | None):
    """``(field, step)`` of every step stated (none for the default waterfall)."""
    if terms is None:
        return []
    return ([(f"waterfall.steps[{i}]", s) for i, s in enumerate(terms.steps)]
            + [(f"waterfall.on_termination[{i}]", s) for i, s in enumerate(terms.on_termination)])


def fee_step_problems(c: _Checker, terms: Waterfall | None, fees: list[tuple[object, str]]) -> None:
    """Fees paid by the waterfall need a ``fees`` step in its steps, and a ``fees`` step needs such a fee."""
    has_step = terms is not None and any(s.pay == "fees" for s in terms.steps)
    by_waterfall = [(fee, f) for fee, f in fees if fee.paid_by == "waterfall"]
    for fee, f in by_waterfall:
        if not has_step:
            where = "[waterfall] steps" if terms is not None else "a [waterfall] (the default pays no fees)"
            c.problem(_join(f, "paid_by"), f"'waterfall' needs a {{ pay = \"fees\" }} step in {where}, got none")
    if not by_waterfall:
        for f, step in _all_steps(terms):
            if step.pay == "fees":
                c.problem(_join(f, "pay"), "a 'fees' step needs a fee with paid_by = 'waterfall', got none")


def recoup_problems(c: _Checker, terms: Waterfall | None, guarantees: list[tuple[Guarantee, str]]) -> None:
    """A ``recoup`` step needs a guarantee that recoups; one that recoups needs the step (the default adds it)."""
    recouping = [(g, f) for g, f in guarantees if g.recoup]
    steps = _all_steps(terms)
    if not recouping:
        for f, step in steps:
            if step.pay == "recoup":
                c.problem(_join(f, "pay"), "a 'recoup' step needs a guarantee with recoup = true, got none")
    elif terms is not None and not any(step.pay == "recoup" for _, step in steps):
        for _, f in recouping:
            c.problem(_join(f, "recoup"), "true needs a { pay = \"recoup\" } step in [waterfall] (only the "
                      "default waterfall adds one), got none")


# --- guarantees -----------------------------------------------------------------------------------
def read_guarantee(c: _Checker, item, field: str, tranches: Tranches) -> Guarantee | None:
    """Covers named tranches (``investors``) or every tranche of the named ``classes``."""
    kind = item.get("kind", "share") if isinstance(item, dict) else "share"
    if kind not in GUARANTEE_KINDS:
        c.choice(item, "kind", field, GUARANTEE_KINDS)
        kind = None
    term = _GUARANTEE_TERM.get(kind)
    t = c.table(item, field, required=("guarantor",) + ((term,) if term else ()),
                optional=_GUARANTEE_COMMON + ((term,) if term else tuple(_GUARANTEE_TERM.values())))
    if t is None:
        return None
    guarantor = c.name(t, "guarantor", field)
    covered = _covered(c, t, field, tranches)
    share = c.number(t, "share", field, gt=0, le=1) if kind == "share" else 1.0
    amount = c.amount(t, "amount", field, gt=0) if kind == "first_loss" else None
    floor = c.number(t, "floor", field, gt=0, le=1) if kind == "floor" else None
    cap = c.amount(t, "cap", field, default=None, gt=0)
    pays = c.choice(t, "pays", field, GUARANTEE_WHEN) if "pays" in t else "maturity"
    recoup = c.boolean(t, "recoup", field, default=False) if "recoup" in t else False
    if None in (kind, covered, guarantor, share, pays, recoup) or (amount is None) == (kind == "first_loss") \
            or (floor is None) == (kind == "floor"):
        return None
    return Guarantee(guarantor, covered, float(share), None if cap is None else float(cap), kind,
                     None if amount is None else float(amount), None if floor is None else float(floor),
                     pays, recoup)


def _covered(c: _Checker, t: dict, field: str, tranches: Tranches) -> tuple[str, ...] | None:
    """The tranches a guarantee covers: named, or every tranche of the named classes; never a grant."""
    if ("investors" in t) == ("classes" in t):
        c.problem(field, "name the covered investors or their classes: give exactly one of investors, classes")
        return None
    key = "investors" if "investors" in t else "classes"
    investors = tranches.investors
    known = {i.name: [i.name] for i in investors} if key == "investors" else {}
    for i in investors if key == "classes" else ():
        known.setdefault(i.investor_class, []).append(i.name)
    listed = t[key]
    if not isinstance(listed, list) or not listed or not all(isinstance(n, str) for n in listed):
        c.problem(_join(field, key), f"must be a non-empty array of {key[:-1] if key == 'classes' else 'investor'} "
                  f"names, got {_describe(listed)}")
        return None
    covered: list[str] = []
    ok = True
    for j, name in enumerate(listed):
        fj = f"{field}.{key}[{j}]"
        if name not in known:
            if tranches.complete:  # else an investor's own problem is reported: no follow-up line here
                _known(c, fj, name, known, "class" if key == "classes" else "investor")
            ok = False
            continue
        grants = [n for n in known[name] if tranches.is_grant(n)]
        if grants:
            what = f"grant {name!r}" if key == "investors" else f"class {name!r} with grant {grants[0]!r}"
            c.problem(fj, f"guarantees on grants are refused ({GRANT_NEVER_REPAID}: it has no loss to cover), "
                      f"got {what}")
            ok = False
        covered += [n for n in known[name] if n not in covered]
    return tuple(covered) if ok else None


def cover_problems(c: _Checker, guarantees: list[tuple[Guarantee, str]]) -> None:
    """Guarantees of a share of the loss cover at most 100 % of a tranche's losses in all."""
    cover: dict[str, float] = {}
    for guarantee, field in guarantees:
        if guarantee.kind != "share":
            continue
        for name in guarantee.investors:
            before = cover.get(name, 0.0)
            cover[name] = before + guarantee.share
            if cover[name] > 1 + 1e-12 >= before:  # once per investor, at the guarantee that tips it over
                c.problem(field, f"guarantees must cover at most 100 % of an investor's losses in all, "
                          f"got {cover[name] * 100:.4g} % of {name!r}")


def guarantor_problem(c: _Checker, guarantee: Guarantee, field: str, payer_names: tuple[str, ...],
                      formula_name: str | None) -> bool:
    """A payer's guarantee (capital protection) is one by a payer's exact name; a near miss would be a
    third party.  With ``[[payers]]``, ``formula_name`` (``[payer] name``) is no payer: refused too."""
    g = guarantee.guarantor
    for name in payer_names:
        if g != name and name_key(g) == name_key(name):
            c.problem(_join(field, "guarantor"), f"must be the payer's name exactly to be the payer ({name!r}), "
                      f"got {g!r}")
            return True
    if formula_name is not None and g not in payer_names and name_key(g) == name_key(formula_name):
        c.problem(_join(field, "guarantor"), f"with [[payers]], [payer] name is no payer: name one of the payers "
                  f"({', '.join(map(repr, payer_names))}) for capital protection, got {g!r}")
        return True
    return False


# --- payers ---------------------------------------------------------------------------------------
def formula_parts(rate_card, tiers, trigger, share: SavingsShare) -> tuple[str, ...]:
    """The parts of the payment formula payers can buy: each priced outcome, each tier's outcome, the
    trigger's outcome, and ``"savings"`` when the savings share is > 0."""
    parts = [o for o, price in rate_card if price > 0] + [t.outcome for t in tiers]
    parts += [trigger.outcome] if trigger is not None else []
    parts += [SAVINGS] if share.rate > 0 else []
    return tuple(dict.fromkeys(parts))


def read_payers(c: _Checker, data, parts: tuple[str, ...] | None) -> tuple[Payer, ...] | None:
    """``[[payers]]``: names unique once normalised; the shares of each part add up to 1.

    ``parts`` (:func:`formula_parts`), None while the formula has a problem (reported there).
    """
    items = c.array_of_tables(data, "payers")
    names: dict[str, tuple[str, str]] = {}
    payers = [_payer(c, item, f"payers[{i}]", names, parts) for i, item in enumerate(items)]
    if not items or None in payers or parts is None:
        return None
    if not _above_caps_fit(c, payers):
        return None
    for part in parts:
        buying = [p for p in payers if p.buys_part(part)]
        total = math.fsum(p.share for p in buying)
        if abs(total - 1.0) > PAYER_SHARE_TOLERANCE:
            who = ", ".join(f"{p.name} {_show(p.share)}" for p in buying) or "no payer buys it"
            c.problem("payers", f"the shares of the payers buying {part!r} must add up to 1, got {total:.12g} "
                      f"({who})")
    return tuple(payers)


def _above_caps_fit(c: _Checker, payers: list[Payer]) -> bool:
    """``above_cap_of`` names a payer listed before, with a cap, the same lag and ``paid_to``, topped up
    by no other (:func:`sibsim.stack.above_cap_problem`); a name of no payer gets its near miss."""
    ok = True
    names = {q.name for q in payers}
    for k, p in enumerate(payers):
        if p.above_cap_of is not None and p.above_cap_of not in names:
            _known(c, f"payers[{k}].above_cap_of", p.above_cap_of, names, "payer")
            ok = False
        elif (problem := above_cap_problem(payers, k)) is not None:
            c.problem(f"payers[{k}].{problem[0]}", problem[1])
            ok = False
    return ok


def _payer(c: _Checker, item, f: str, names: dict, parts) -> Payer | None:
    t = c.table(item, f, required=("name", "payment_lag_months"), optional=_PAYER_KEYS)
    if t is None:
        return None
    name = c.name(t, "name", f)
    if not c.unique_name(name, _join(f, "name"), names):
        name = None
    above = c.name(t, "above_cap_of", f) if "above_cap_of" in t else None
    if above is not None:
        for key in ("buys", "share"):
            if key in t:
                c.problem(_join(f, key), f"must be left out with above_cap_of (the payer buys nothing of its own: "
                          f"it pays what {above!r}'s cap left), got {_describe(t[key])}")
                return None
    if "above_cap_of" in t and above is None:
        return None
    buys = _buys(c, t["buys"], _join(f, "buys"), parts) if "buys" in t else ()
    share = c.number(t, "share", f, gt=0, le=1) if "share" in t else 1.0
    cap = c.amount(t, "payment_cap", f, gt=0) if "payment_cap" in t else None
    lag = c.number(t, "payment_lag_months", f, integer=True, ge=0, le=MAX_MONTH)
    default_p = c.number(t, "default_probability", f, ge=0, lt=1) if "default_probability" in t else 0.0
    paid_to = c.choice(t, "paid_to", f, PAID_TO) if "paid_to" in t else "investors"
    if None in (name, buys, share, lag, default_p, paid_to) or ("payment_cap" in t and cap is None):
        return None
    return Payer(name, buys, float(share), None if cap is None else float(cap), lag, float(default_p), paid_to, above)


def _buys(c: _Checker, value, field: str, parts) -> tuple[str, ...] | None:
    """Parts of the payment formula, each once (empty: not allowed; leave ``buys`` out to buy everything)."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        c.problem(field, f"must be a non-empty array of parts of the payment formula (outcome names, "
                  f"\"savings\"); leave it out to buy everything, got {_describe(value)}")
        return None
    if parts is None:
        return None
    ok = True
    for j, part in enumerate(value):
        if part not in parts:
            c.problem(f"{field}[{j}]", f"must be a part the payment formula pays for ({', '.join(parts)}), "
                      f"got {part!r}")
            ok = False
        elif value.index(part) < j:
            c.problem(f"{field}[{j}]", f"must name each part once, got {part!r} twice")
            ok = False
    return tuple(value) if ok else None


def formula_payer_problems(c: _Checker, p: dict) -> None:
    """With ``[[payers]]``, ``[payer]`` keeps only the formula: each payer gives its own cap, lag, default."""
    for key in PAYER_OWN_KEYS:
        if key in p:
            c.problem(f"payer.{key}", f"with [[payers]], each payer gives its own (payers[].{key}), "
                      f"got {_describe(p[key])}")


def capital_protection_problems(c: _Checker, tranches: Tranches, payers: tuple[Payer, ...] | None) -> None:
    """``capital_protection`` is a guarantee by the payer: with several payers, which one is not said."""
    if payers is None or len(payers) < 2:
        return
    for _, share, field in tranches.protected:
        c.problem(field, f"with several [[payers]], give a [[guarantees]] entry naming the payer who protects "
                  f"(guarantor = one of {', '.join(repr(p.name) for p in payers)}), got {_show(share)}")


# --- the savings share's switch, the review, an external stop -----------------------------------------
def read_until(c: _Checker, value, field: str, tranches: Tranches) -> tuple[tuple[str, ...], float, bool] | None:
    """``until = { tranches, rate, per_cohort }``: the switch once those tranches have their capital plus
    ``rate`` a year; ``per_cohort = true``: each cohort's savings against its share (default: pooled)."""
    t = c.table(value, field, required=("tranches", "rate"), optional=("per_cohort",))
    if t is None:
        return None
    names = tranche_list(c, t["tranches"], _join(field, "tranches"), tranches,
                         f"{GRANT_NEVER_REPAID} (the switch would never come)") if "tranches" in t else None
    rate = c.annual_rate(t, "rate", field, gt=0)
    per_cohort = c.boolean(t, "per_cohort", field, default=False)
    if names is None or rate is None or per_cohort is None:
        return None
    return names, float(rate), per_cohort


def read_review(c: _Checker, item, field: str, last_month: int, outcome_choice) -> Review | None:
    """One condition (``outcome``, ``measure``, ``floor``) or ``conditions`` with ``combine``, not both.

    ``outcome_choice(t, field)``: the outcome named by ``t`` (None after a problem).
    """
    single = ("outcome", "measure", "floor")
    t = c.table(item, field, required=("month",), optional=single + ("conditions", "combine"))
    if t is None:
        return None
    if "conditions" in t and any(k in t for k in single):
        c.problem(field, f"give either outcome, measure and floor (one condition) or conditions, not both, got "
                  f"conditions and {', '.join(k for k in single if k in t)}")
        return None
    if "conditions" not in t:
        for key in single:
            if key not in t:
                c.problem(_join(field, key), "missing required field")
        if "combine" in t:
            c.problem(_join(field, "combine"), f"must come with conditions (it says how they combine), "
                      f"got {_describe(t['combine'])}")
            return None
    month = c.number(t, "month", field, integer=True, ge=1, le=last_month)
    if "conditions" in t:
        conditions = _conditions(c, t["conditions"], _join(field, "conditions"), outcome_choice)
    else:
        conditions = [_condition(c, t, field, outcome_choice)] if all(k in t for k in single) else None
    combine = c.choice(t, "combine", field, REVIEW_COMBINE) if "combine" in t else "any"
    if month is None or combine is None or not conditions or None in conditions:
        return None
    (outcome, measure, floor), *more = conditions
    return Review(month, outcome, measure, floor, tuple(more), combine)


def _conditions(c: _Checker, value, field: str, outcome_choice) -> list | None:
    if not isinstance(value, list) or not value:
        c.problem(field, f"must be a non-empty array of {{ outcome, measure, floor }} tables, got {_describe(value)}")
        return None
    out = []
    for i, item in enumerate(value):
        f = f"{field}[{i}]"
        t = c.table(item, f, required=("outcome", "measure", "floor"))
        out.append(None if t is None or not all(k in t for k in ("outcome", "measure", "floor"))
                   else _condition(c, t, f, outcome_choice))
    return out


def _condition(c: _Checker, t: dict, field: str, outcome_choice) -> tuple[str, str, float] | None:
    outcome = outcome_choice(t, field)
    measure = c.choice(t, "measure", field, MEASURES)
    floor = c.number(t, "floor", field, ge=-1e6, le=1e6)
    if None in (outcome, measure, floor):
        return None
    return outcome, measure, float(floor)


def read_external_stop(c: _Checker, data, last_month: int) -> ExternalStop | None:
    """``[external_stop]``: 1 <= month <= term; 0 < probability <= 1 (default 1: a certain what-if)."""
    t = c.table(data, "external_stop", required=("month",), optional=("probability", "reason"))
    if t is None:
        return None
    month = c.number(t, "month", "external_stop", integer=True, ge=1, le=last_month)
    probability = c.number(t, "probability", "external_stop", gt=0, le=1) if "probability" in t else 1.0
    reason = c.string(t, "reason", "external_stop") if "reason" in t else "external event"
    if reason is not None and not c.plain_text(reason, "external_stop.reason"):
        reason = None
    if None in (month, probability, reason):
        return None
    return ExternalStop(month, float(probability), reason)


# --- warnings -------------------------------------------------------------------------------------
def stack_warnings(file: str, contract) -> tuple[str, ...]:
    """Terms that can never apply: a termination list or a guarantee paying only at termination in a
    contract that never terminates early (no review, no external stop)."""
    if contract.payer.review is not None or contract.external_stop is not None:
        return ()
    out = []
    terms = contract.waterfall_terms
    if terms is not None and terms.on_termination:
        out.append(f"{file}: waterfall.on_termination: warning: the contract never terminates early (no "
                   f"[payer.review], no [external_stop]): it is never used")
    for g, guarantee in enumerate(contract.guarantees):
        if guarantee.pays == "termination":
            out.append(f"{file}: guarantees[{g}].pays: warning: the contract never terminates early (no "
                       f"[payer.review], no [external_stop]): this guarantee never pays")
    return tuple(out)
