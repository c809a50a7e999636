"""The capital stack, as data: tranches, their draw order, the waterfall, guarantees, payers, termination.

Everything here is frozen terms; :mod:`sibsim.waterfall` reads them month by month.  The
vocabulary is that of cash-flow waterfall engines (an ordered list of actions, each with a
limit and a condition, and a separate list run once at termination) and of private-equity
distribution waterfalls (return of capital, preferred return or hurdle, split of the surplus).

Conventions
-----------
* Money in the scenario's currency (EUR by default), nominal.  Time in whole months.
* Annual rates are effective annual rates (``0.05`` for 5 % a year).  Monthly accrual:
  ``compounding = "monthly"`` accrues ``(1 + r) ** (1 / 12) - 1`` a month on principal
  outstanding plus unpaid interest (twelve months without payments give exactly ``r``);
  ``compounding = "none"`` accrues ``r / 12`` a month on principal outstanding only.
* A tranche's *balance* has two parts: accrued unpaid interest and outstanding principal
  (capital drawn less principal repaid).  Any payment to a tranche pays its interest first,
  then its principal, and what is left over is *return*.
* Its *return cap* limits everything it receives from the waterfall: capital drawn,
  compounded at the cap rate, less payments received, compounded likewise, never below 0.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Kinds of tranche.  ``grant``: never repaid; ``recoverable_grant``: principal repaid, nothing more;
#: ``loan``: principal and interest; ``equity``: paid what the waterfall gives, up to its cap;
#: ``deferred_fee``: the provider defers part of its fee, drawn like capital and repaid like a loan.
TRANCHE_KINDS = ("loan", "equity", "recoverable_grant", "grant", "deferred_fee")
COMPOUNDING = ("monthly", "none")


@dataclass(frozen=True)
class Investor:
    """A tranche of capital and its holder.

    Parameters
    ----------
    name : str
        The tranche's name, unique in the contract (referenced by draw order, steps, guarantees).
    commitment : float
        EUR committed: capital is drawn from it as the draw order says, never beyond it.
    investor_class : str
        A label for groups of tranches (guarantees may cover a class).
    return_cap : float or None
        Maximum annual return on what it receives from the waterfall; None: no cap.
        A ``recoverable_grant`` has a cap of 0 (its principal only).
    seniority : int
        1 is paid first by steps with ``order = "seniority"``; equal seniority shares pro rata.
    repayable : bool
        False for a grant (kept for terms written before ``kind``; must agree with it).
    kind : str
        One of :data:`TRANCHE_KINDS`; empty: ``equity`` if repayable, else ``grant``.
    interest : float
        Annual interest on principal drawn and outstanding (loans, deferred fees).
    compounding : str
        ``monthly`` (unpaid interest earns interest) or ``none`` (simple interest), see the module notes.
    available_from_month : int
        First month capital can be drawn from it (a tranche released per year).
    holder : str
        The party holding it (an investor, a foundation, the provider); empty: ``name``.
    """

    name: str
    commitment: float
    investor_class: str = "senior"
    return_cap: float | None = None
    seniority: int = 1
    repayable: bool = True
    kind: str = ""
    interest: float = 0.0
    compounding: str = "monthly"
    available_from_month: int = 0
    holder: str = ""

    def __post_init__(self):
        kind = self.kind or ("equity" if self.repayable else "grant")
        if kind not in TRANCHE_KINDS:
            raise ValueError(f"tranche kind must be one of {', '.join(TRANCHE_KINDS)}, got {kind!r}")
        if (kind == "grant") == self.repayable:
            raise ValueError(f"tranche {self.name!r}: repayable={self.repayable} contradicts kind {kind!r}")
        if self.compounding not in COMPOUNDING:
            raise ValueError(f"compounding must be one of {', '.join(COMPOUNDING)}, got {self.compounding!r}")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "holder", self.holder or self.name)

    @property
    def cap_rate(self) -> float | None:
        """The return cap the waterfall applies (0 for a recoverable grant), or None."""
        if self.kind == "recoverable_grant":
            return 0.0 if self.return_cap is None else min(self.return_cap, 0.0)
        return self.return_cap

    @property
    def monthly_interest(self) -> float:
        """Interest accrued per month per EUR of balance it accrues on (module notes)."""
        if self.interest == 0:
            return 0.0
        return (1.0 + self.interest) ** (1 / 12) - 1.0 if self.compounding == "monthly" else self.interest / 12


#: A tranche is called by its own name; ``Tranche`` reads better in the stack's own code.
Tranche = Investor


@dataclass(frozen=True)
class DrawOrder:
    """How capital calls are split over the tranches.

    ``groups``: tranche names, group by group (e.g. grants first, then the junior, then the
    senior tranche); each call is drawn from the first group with commitment left (and
    available that month), pro rata to the remaining commitments within a group, and spills
    over to the next group once that is exhausted.  Empty: one group of every tranche pro rata
    to commitments (every call shared in the same proportions).
    """

    groups: tuple[tuple[str, ...], ...] = ()


#: Waterfall step kinds (``Step.pay``): see :class:`Step`.
STEP_KINDS = ("fees", "interest", "principal", "hurdle", "to_cap", "success_fee", "split", "recoup")
STEP_ORDERS = ("seniority", "pro_rata", "sequential")
#: Split targets that are not tranches.
PROVIDER, PAYER = "provider", "payer"


@dataclass(frozen=True)
class Step:
    """One action of the waterfall, applied to the cash still on offer in a month.

    ``pay``:

    * ``fees``: fees with ``paid_by = "waterfall"`` due so far and not yet paid (arrears carried).
    * ``interest``: accrued unpaid interest of ``to``.
    * ``principal``: outstanding principal of ``to``.
    * ``hurdle``: until each of ``to`` has received its capital drawn compounded at ``rate`` a
      year (return of capital plus a preferred return; ``rate = 0``: return of capital).
    * ``to_cap``: everything ``to`` may still receive under its return cap (all the cash on offer
      for a tranche without a cap), shared pro rata to capital drawn (a tranche that has drawn
      nothing takes nothing) with water-filling: what a capped tranche cannot take goes round again.
    * ``success_fee``: to the provider, ``amount`` EUR in all (or ``share`` of the cash on offer
      at this step each month).
    * ``split``: the cash on offer at this step in ``shares`` (targets: tranche names,
      ``"provider"``, ``"payer"``, which keeps its share); a tranche takes at most its cap, and
      what a target cannot take stays on offer for the next steps.  A split (and a success fee
      given as a share) divides only the cash that arrived this month, never money withheld
      before (which would be split again and again).
    * ``recoup``: guarantors whose guarantee is ``recoup = True`` get back what they paid out.

    Limits and conditions: ``to`` is shared by ``order`` (``seniority``: by seniority, pro rata
    within a seniority; ``pro_rata``: in proportion to what each is owed by the step, or for
    ``to_cap`` to capital drawn;
    ``sequential``: in the listed order); ``cap``: EUR this step pays in all over the contract (a share of the cash is taken of all
    that is on offer, then cut to the cap);
    ``after``: the step pays only in months when each named tranche is repaid (it has drawn
    capital and owes neither principal nor interest).
    """

    pay: str
    to: tuple[str, ...] = ()
    order: str = "seniority"
    rate: float = 0.0
    amount: float | None = None
    share: float | None = None
    shares: tuple[tuple[str, float], ...] = ()
    cap: float | None = None
    after: tuple[str, ...] = ()

    def __post_init__(self):
        if self.pay not in STEP_KINDS:
            raise ValueError(f"step pay must be one of {', '.join(STEP_KINDS)}, got {self.pay!r}")
        if self.order not in STEP_ORDERS:
            raise ValueError(f"step order must be one of {', '.join(STEP_ORDERS)}, got {self.order!r}")

    @property
    def takes_all(self) -> bool:
        """An unconditional split of all that is left (shares adding up to 1, no cap, no condition):
        a step after it would be dead letter, so the loader refuses one."""
        return (self.pay == "split" and self.cap is None and not self.after
                and abs(sum(s for _, s in self.shares) - 1.0) <= 1e-12)


@dataclass(frozen=True)
class Waterfall:
    """The ordered steps applied each month to the cash that arrives, and the list run once at termination.

    Cash left after the last step is *withheld*: the payers keep it as still owed and offer it
    again the next month (a later capital call can make room under a return cap); what is
    withheld at the end stays with them.  ``on_termination``: the steps applied from the month
    of an early termination on (every later payment included); empty: the same steps.
    """

    steps: tuple[Step, ...]
    on_termination: tuple[Step, ...] = ()

    @property
    def termination_steps(self) -> tuple[Step, ...]:
        return self.on_termination or self.steps

    @classmethod
    def by_seniority(cls, tranches, recoup: bool = False) -> "Waterfall":
        """The one-line default: every repayable tranche up to its return cap, senior first, pro
        rata to capital drawn within a seniority; guarantors that recoup are repaid first."""
        names = tuple(t.name for t in tranches if t.repayable)
        return cls(((Step("recoup"),) if recoup else ()) + (Step("to_cap", names, "seniority"),))


#: Guarantee kinds.  ``share``: ``share`` of the loss; ``first_loss``: the loss up to ``amount``;
#: ``floor``: what brings each covered tranche back to ``floor`` x its principal drawn.
GUARANTEE_KINDS = ("share", "first_loss", "floor")
#: When a guarantee pays: ``maturity`` (after the last payment and the last capital call, on every
#: path), ``termination`` (in the month the contract terminates early; never otherwise), or
#: ``termination_or_maturity``.
GUARANTEE_WHEN = ("maturity", "termination", "termination_or_maturity")


@dataclass(frozen=True)
class Guarantee:
    """A guarantor covering losses of named tranches.

    The loss of a tranche is its principal drawn less everything the waterfall paid it, if
    positive, when the guarantee pays.  Guarantees on the same tranche apply in listed order,
    each to the loss left after the earlier ones, except that consecutive ``share`` guarantees
    (co-guarantors) each cover their share of the same loss (their shares add up to at most 1).  ``cap``: EUR the guarantor pays in all (pro
    rata over the tranches when it binds).  ``recoup``: the guarantor is repaid what it paid out
    from later cash by the waterfall's ``recoup`` step.  A guarantee by an outcome payer is
    *capital protection* and counts among that payer's costs.
    """

    guarantor: str
    investors: tuple[str, ...]
    share: float = 1.0
    cap: float | None = None
    kind: str = "share"
    amount: float | None = None
    floor: float | None = None
    pays: str = "maturity"
    recoup: bool = False

    def __post_init__(self):
        if self.kind not in GUARANTEE_KINDS:
            raise ValueError(f"guarantee kind must be one of {', '.join(GUARANTEE_KINDS)}, got {self.kind!r}")
        if self.pays not in GUARANTEE_WHEN:
            raise ValueError(f"guarantee pays must be one of {', '.join(GUARANTEE_WHEN)}, got {self.pays!r}")


@dataclass(frozen=True)
class Payer:
    """A public body paying (part of) the outcome payments, with its own cap, lag and default risk.

    Parameters
    ----------
    buys : tuple of str
        What it pays for: outcome names (their rate-card prices, tier tables and cohort trigger)
        and ``"savings"`` (the savings share); empty: everything.
    share : float
        Its share of each payment it buys (the shares of every part add up to 1 over the payers).
    payment_cap : float or None
        EUR it pays in all (paid or owed; see :mod:`sibsim.cashflows`).
    payment_lag_months : int
        Months between a measurement and its payment.
    default_probability : float
        Probability it does not pay a payment when due, independently per payment.
    paid_to : str
        ``"investors"`` (into the waterfall) or ``"provider"`` (directly, outside the waterfall).
    above_cap_of : str or None
        The payer whose cap it tops up: it buys nothing of its own and pays, in that payer's
        months, what that payer's ``payment_cap`` left unpaid (e.g. a fund paying up to its
        grant, the ministry beyond it).  It is listed after that payer, with the same lag and
        ``paid_to``.
    """

    name: str
    buys: tuple[str, ...] = ()
    share: float = 1.0
    payment_cap: float | None = None
    payment_lag_months: int = 0
    default_probability: float = 0.0
    paid_to: str = "investors"
    above_cap_of: str | None = None

    def buys_part(self, part: str) -> bool:
        """Whether it pays for ``part`` (an outcome name or ``"savings"``) of its own."""
        return self.above_cap_of is None and (not self.buys or part in self.buys)


def above_cap_problem(payers, k: int) -> tuple[str, str] | None:
    """Why ``payers[k]`` cannot pay above the cap it names: ``(field, rule)``, or None if it can (or
    names none).  The waterfall reads a payer above another's cap in the same month, after it, to
    the same party: anything else would lose what the cap cut off without a word.  Checked by the
    loader (per field) and by :class:`~sibsim.contracts.Contract` (for contracts built in Python)."""
    p = payers[k]
    if p.above_cap_of is None:
        return None
    name = p.above_cap_of
    below = next((q for q in payers[:k] if q.name == name), None)
    if below is None:
        if any(q.name == name for q in payers):
            return "above_cap_of", (f"must name a payer listed before this one (it pays what that payer's cap "
                                    f"left, in the same month), got {name!r}")
        return "above_cap_of", f"names no payer, got {name!r}"
    if below.payment_cap is None:
        return "above_cap_of", f"must name a payer with a payment_cap (there is nothing above no cap), got {name!r}"
    if below.payment_lag_months != p.payment_lag_months:
        return "payment_lag_months", (f"must equal {name}'s ({below.payment_lag_months}): it pays what that cap "
                                      f"left, in the same month, got {p.payment_lag_months}")
    if below.paid_to != p.paid_to:
        return "paid_to", (f"must equal {name}'s ({below.paid_to!r}): it pays what that cap left, to the same "
                           f"party, got {p.paid_to!r}")
    if any(q.above_cap_of == name for q in payers[:k]):
        return "above_cap_of", f"one payer at most pays above the cap of {name!r}, got a second"
    return None


@dataclass(frozen=True)
class ExternalStop:
    """An event outside the programme that stops it at ``month`` (e.g. a policy change), on a
    share ``probability`` of the paths (1: a certain what-if)."""

    month: int
    probability: float = 1.0
    reason: str = "external event"
