"""Contract terms of a Social Impact Bond, as frozen dataclasses.

Everything here is *data*: who invests how much, what the outcome payer pays
for, what the payer spends per month in each state of the journey, who takes part
and how their journey is believed to go (:mod:`sibsim.journey`).  Nothing here draws random numbers or settles cash; that is
:mod:`sibsim.montecarlo` and :mod:`sibsim.cashflows`.

Conventions
-----------
* Money in EUR (or the scenario's ``meta.currency``), nominal.
* Time in whole months; month 0 is the first month of the contract.
* Journey probabilities are *per-month* probabilities (a branch's: per participant
  reaching its duration); event rates are expected events per participant-month.
* Annual rates (return caps, discount rates, indexation) are effective annual
  rates, e.g. ``0.10`` for 10 % a year.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .journey import CostBand, CostItem, Journey, Outcome, Prior  # noqa: F401  (CostBand, Prior: re-exported)
from .stack import DrawOrder, ExternalStop, Guarantee, Investor, Payer, Step, Tranche, Waterfall  # noqa: F401  (re-exported)
from .stack import above_cap_problem
from .uncertainty import Uncertainty


@dataclass(frozen=True)
class Cohort:
    """Participants entering the programme in the same month.

    ``start``: the cohort's own start distribution ``((state, share), ...)``; empty: the journey's.
    """

    intake_month: int
    size: int
    start: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Schedule:
    """Deterministic monthly amounts, as ``(month, EUR)`` entries (months may repeat)."""

    entries: tuple[tuple[int, float], ...] = ()

    @property
    def total(self) -> float:
        return float(sum(amount for _, amount in self.entries))

    @property
    def last_month(self) -> int:
        return max((m for m, _ in self.entries), default=-1)

    def to_array(self, n_months: int) -> np.ndarray:
        """EUR per month, shape ``(n_months,)``."""
        out = np.zeros(n_months)
        for month, amount in self.entries:
            out[month] += amount
        return out


@dataclass(frozen=True)
class Fee:
    """A fee (intermediary, evaluator...) paid by the investors (out of called capital), by the payer,
    or by the waterfall (out of outcome payments, at its ``fees`` step; unpaid fees are carried)."""

    name: str
    paid_by: str  # "investors", "payer" or "waterfall"
    schedule: Schedule


#: Improvement measures: how treated counts ``t`` compare with counterfactual counts ``c`` in a group of ``n``.
MEASURES = ("difference", "relative_increase", "relative_reduction")


@dataclass(frozen=True)
class SavingsShare:
    """Share of measured savings paid: ``rate``, then ``rate_after`` once a switch is reached.

    Two switches: ``switch_multiple = 1.2`` switches once 1.2 x the planned capital has been paid
    (a fixed amount); ``until_tranches`` switches once those tranches have received their capital
    actually drawn plus ``until_rate`` a year on it (a balance that follows the draws and
    receipts, see :mod:`sibsim.waterfall`).  Neither: one rate throughout.

    ``per_cohort`` (with ``until_tranches`` only): each cohort's savings switch on their own,
    against the cohort's share of that balance (its participants' share of those whose cohort
    started before the measurement), credited with the savings-share payments its own savings made; pooled (the
    default), all cohorts' savings count together, so one cohort's success carries another's.
    """

    rate: float = 0.0
    switch_multiple: float | None = None
    rate_after: float = 0.0
    until_tranches: tuple[str, ...] = ()
    until_rate: float = 0.0
    per_cohort: bool = False

    def __post_init__(self):
        if self.per_cohort and not self.until_tranches:
            raise ValueError("per_cohort needs until_tranches: only a switch that follows a balance is per cohort")

    @property
    def follows_balance(self) -> bool:
        """The switch follows the named tranches' balance (computed month by month in settlement)."""
        return bool(self.until_tranches) and self.rate > 0

    def entitlement(self, savings: np.ndarray, capital: np.ndarray | float) -> np.ndarray:
        """EUR owed on cumulative measured ``savings`` (EUR) given the ``capital`` called (EUR)."""
        savings = np.maximum(savings, 0.0)
        first = self.rate * savings
        if self.switch_multiple is None or self.rate == 0:
            return first
        switch = self.switch_multiple * np.asarray(capital, dtype=float)
        # Savings at which the first tier is used up: switch / rate.
        return np.where(first <= switch, first, switch + self.rate_after * (savings - switch / self.rate))


@dataclass(frozen=True)
class TierTable:
    """Payment (EUR, cumulative) as a step or piecewise-linear function of a measured improvement.

    ``improvement`` is ``measure`` of ``outcome`` pooled over all cohorts (see :data:`MEASURES`);
    nothing is paid below ``minimum``.  ``points`` are ``(improvement, EUR)`` with increasing
    improvements; ``step``: the amount of the highest point reached; ``linear``: interpolated
    between points, flat beyond the last.
    """

    outcome: str
    measure: str
    points: tuple[tuple[float, float], ...]
    interpolation: str = "step"
    minimum: float = 0.0

    def amount(self, improvement: np.ndarray) -> np.ndarray:
        x = np.array([p[0] for p in self.points])
        y = np.array([p[1] for p in self.points])
        imp = np.nan_to_num(improvement, nan=-np.inf, posinf=np.inf)
        if self.interpolation == "step":
            idx = np.searchsorted(x, imp, side="right") - 1
            out = np.where(idx >= 0, y[np.clip(idx, 0, None)], 0.0)
        else:
            out = np.where(imp >= x[0], np.interp(np.clip(imp, x[0], x[-1]), x, y), 0.0)
        return np.where(imp >= self.minimum, out, 0.0)


@dataclass(frozen=True)
class CohortTrigger:
    """Peterborough-style payment: per cohort early, else pooled at the end.

    Each cohort is measured ``follow_up_months`` after its intake, on events within that
    follow-up.  If its improvement reaches ``cohort_threshold``, it is paid early:
    ``price`` per net event (for ``relative_reduction``: per event avoided).  At the final
    measurement (the last cohort's), if the pooled improvement reaches ``pooled_threshold``,
    the pooled net events are paid, less what was paid early.
    """

    outcome: str
    measure: str
    follow_up_months: int
    cohort_threshold: float
    pooled_threshold: float
    price: float


@dataclass(frozen=True)
class Review:
    """Early termination: at ``month``, if ``measure`` of ``outcome`` (pooled, so far) is below ``floor``,
    the contract ends: no later intake, capital calls or measurements.

    ``more``: further conditions ``(outcome, measure, floor)``; ``combine = "any"`` terminates when
    any condition is below its floor, ``"all"`` only when every one is.
    """

    month: int
    outcome: str
    measure: str
    floor: float
    more: tuple[tuple[str, str, float], ...] = ()
    combine: str = "any"

    @property
    def conditions(self) -> tuple[tuple[str, str, float], ...]:
        return ((self.outcome, self.measure, self.floor),) + self.more


@dataclass(frozen=True)
class OutcomePayer:
    """The public body paying for measured outcomes.

    Parameters
    ----------
    rate_card : tuple of (outcome, EUR)
        Price per net unit of an outcome (treated minus counterfactual, scaled to the treated
        group's size; for an ``occupancy`` outcome per unit of its ``scale``, e.g. per day),
        by the outcome's name (:attr:`Contract.outcomes`).
    savings_share : SavingsShare
        Share of *measured* savings (benefit months avoided x benefit) paid.
    tiers : tuple of TierTable
        Amounts by measured improvement, added to the rate card.
    trigger : CohortTrigger or None
        Per-cohort / pooled threshold payments (paid on their own dates).
    payment_cap : float or None
        Maximum total outcome payments over the contract, EUR.
    measurement_months : tuple of int
        Months at which the evaluator counts outcomes achieved *before* that month.
    payment_lag_months : int
        Months between a measurement and the payment.
    default_probability : float
        Probability that the payer does not pay a payment when it falls due
        (appropriation risk), independently for each payment.
    review : Review or None
        Early termination test.
    """

    name: str
    rate_card: tuple[tuple[str, float], ...]
    savings_share: SavingsShare
    payment_cap: float | None
    measurement_months: tuple[int, ...]
    payment_lag_months: int
    tiers: tuple[TierTable, ...] = ()
    trigger: CohortTrigger | None = None
    default_probability: float = 0.0
    review: Review | None = None

    def price(self, outcome: str) -> float:
        return dict(self.rate_card).get(outcome, 0.0)


@dataclass(frozen=True)
class ComparisonGroup:
    """The counterfactual: what would have happened to the participants without the programme.

    It shares the treated group's state machine; ``journey`` is that machine with the
    parameters the scenario overrides (``overrides``, by name) replaced.
    ``method = "comparison_group"``: the evaluator follows ``size_ratio`` comparison
    members per treated participant, per cohort, simulated alongside (a small group
    adds measurement noise).  ``method = "expected"``: a modelled counterfactual,
    e.g. an expected benefit duration model: the exact expectation of ``journey``
    for the treated group's size, computed by propagating the chain, without sampling noise.
    """

    size_ratio: float
    journey: Journey
    method: str = "comparison_group"
    overrides: tuple[str, ...] = ()
    #: Parameters whose per-path draw the comparison group shares with the treated group (one
    #: labour market); every other parameter is drawn for each group on its own.
    shared: tuple[str, ...] = ()


def files_digest(files) -> str:
    """:attr:`Contract.files_sha256` of ``(path, sha256)`` pairs: the one file's SHA-256, or the
    SHA-256 of their digests, one per line, top first ("" for none)."""
    files = tuple(files)
    if len(files) == 1:
        return files[0][1]
    if not files:
        return ""
    return hashlib.sha256("".join(f"{sha}\n" for _, sha in files).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Contract:
    """All terms and assumptions of one SIB scenario."""

    title: str
    term_months: int
    tail_months: int
    investors: tuple[Investor, ...]
    provider_name: str
    provider_budget: Schedule
    fees: tuple[Fee, ...]
    payer: OutcomePayer
    costs: tuple[CostItem, ...]
    cohorts: tuple[Cohort, ...]
    journey: Journey
    outcomes: tuple[Outcome, ...]
    comparison: ComparisonGroup
    investor_discount_rate: float = 0.0
    public_discount_rate: float = 0.0
    primary_outcome: str = ""
    #: Parameters a "more successful programme" raises, and those it lowers (break-even analysis;
    #: ``analysis.success_parameters`` and ``analysis.failure_parameters``). Both empty: those of the
    #: exits and branches into the primary outcome's states or producing its event, raised when more
    #: of the outcome is better, lowered when the contract pays for it to fall.
    success_parameters: tuple[str, ...] = ()
    failure_parameters: tuple[str, ...] = ()
    #: Parameters the memo's named what-ifs move (:mod:`sibsim.stress`; ``[analysis]``): outflow
    #: (uitstroom: leaving benefits for work; empty: the success parameters), relapse (back on
    #: benefits; empty: no relapse what-if) and the labour market (job finding in both groups;
    #: empty: the outflow parameters).
    outflow_parameters: tuple[str, ...] = ()
    relapse_parameters: tuple[str, ...] = ()
    labour_market_parameters: tuple[str, ...] = ()
    guarantees: tuple[Guarantee, ...] = ()
    recycling: bool = False
    #: How capital calls are split over the tranches (empty: pro rata to commitments).
    draw_order: DrawOrder = DrawOrder()
    #: The ordered waterfall; None: :meth:`Waterfall.by_seniority` (every tranche up to its cap, senior first).
    waterfall_terms: Waterfall | None = None
    #: Who pays which part of the outcome payments; empty: the one ``payer`` pays everything.
    payer_split: tuple[Payer, ...] = ()
    #: An external event stopping the programme (a policy change), or None.
    external_stop: ExternalStop | None = None
    #: Common factors, calendar-time shocks and a copula over priors (:mod:`sibsim.uncertainty`;
    #: ``[[factors]]``, ``[[shocks]]``, ``[correlation]``); empty: each parameter on its own.
    uncertainty: Uncertainty = Uncertainty()
    meta: tuple[tuple[str, object], ...] = field(default=(), compare=False)
    source: str = field(default="", compare=False)
    #: ``(path, sha256)`` of every file the loader read: the scenario first, then each base it
    #: ``extends``.  A variant's results depend on its bases, so a record of a run must hash them all.
    files: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    #: Fields the scenario left out that took their documented default (e.g.
    #: ``analysis.investor_discount_rate``, 0), so a report can say a value was assumed, not given.
    defaulted: tuple[str, ...] = field(default=(), compare=False)
    #: Lines ``file: field: warning: ...`` the loader found worth saying but not refusing (e.g. an
    #: outcome no contract term uses); ``sibsim validate`` prints them.
    warnings: tuple[str, ...] = field(default=(), compare=False)
    #: Changes made on the command line before the file was checked (``--set FIELD=VALUE``,
    #: ``--scale PARAMETER=FACTOR``, :mod:`sibsim.whatif`), in order; empty: the file as written.
    command_line_changes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        # With several payers each has its own cap and default risk: the formula's would be ignored.
        if self.payer_split and (self.payer.payment_cap is not None or self.payer.default_probability):
            raise ValueError("with payer_split, give each Payer its payment_cap and default_probability: "
                             "payer.payment_cap and payer.default_probability would be ignored")
        for k, p in enumerate(self.payer_split):
            if (problem := above_cap_problem(self.payer_split, k)) is not None:
                raise ValueError(f"payer {p.name!r}: {problem[0]}: {problem[1]}")

    # --- derived quantities -------------------------------------------------
    @property
    def horizon_months(self) -> int:
        """Months in every ledger: term, tail, last payment and last fee all fit."""
        last_payment = max(self.payment_months, default=-1)
        last_fee = max((f.schedule.last_month for f in self.fees), default=-1)
        return max(
            self.term_months + self.tail_months,
            last_payment + 1,
            self.provider_budget.last_month + 1,
            last_fee + 1,
        )

    def outcome_label(self, outcome: str) -> str:
        """What an outcome stands for in this deal (its ``label``), e.g. "reconviction event"."""
        for o in self.outcomes:
            if o.name == outcome:
                return o.title
        return outcome.replace("_", " ")

    @property
    def primary_direction(self) -> int:
        """+1 if more of the primary outcome is better, -1 if the contract pays for it to fall.

        An outcome is meant to fall (reconvictions at Peterborough) when the trigger, a tier
        table or the review measures it as a ``relative_reduction``; then a net outcome is an
        event avoided (counterfactual minus treated), so a better programme has more of them.
        """
        p = self.payer
        measured = [(m.outcome, m.measure) for m in [*p.tiers, *([p.trigger] if p.trigger is not None else [])]]
        measured += [(outcome, measure) for outcome, measure, _ in (p.review.conditions if p.review else ())]
        falls = any(o == self.primary_outcome and m == "relative_reduction" for o, m in measured)
        return -1 if falls else 1

    @property
    def success_parameter_names(self) -> tuple[str, ...]:
        """The treated parameters a more successful programme raises (see :attr:`success_parameters`)."""
        if self.success_parameters or self.failure_parameters:
            return self.success_parameters
        return self._drivers() if self.primary_direction > 0 else ()

    @property
    def failure_parameter_names(self) -> tuple[str, ...]:
        """The treated parameters a more successful programme lowers (see :attr:`failure_parameters`)."""
        if self.success_parameters or self.failure_parameters:
            return self.failure_parameters
        return self._drivers() if self.primary_direction < 0 else ()

    @property
    def outflow_parameter_names(self) -> tuple[str, ...]:
        """The treated parameters of outflow (``analysis.outflow_parameters``, else the success parameters)."""
        return self.outflow_parameters or self.success_parameter_names

    @property
    def labour_market_parameter_names(self) -> tuple[str, ...]:
        """Parameters a labour market moves in both groups (``analysis.labour_market_parameters``, else
        the outflow parameters)."""
        return self.labour_market_parameters or self.outflow_parameter_names

    def _drivers(self) -> tuple[str, ...]:
        """Parameters of the exits and branches into the primary outcome's states, or producing its event."""
        target = next((o for o in self.outcomes if o.name == self.primary_outcome), None)
        if target is None:
            return ()
        names: list[str] = []
        def add(name):
            if name not in names:
                names.append(name)
        for state in self.journey.states:
            for e in state.exits:
                if (e.to in target.states and state.name not in target.states) or (target.event and e.event == target.event):
                    add(e.probability)
            for r in state.events:
                if target.event and r.event == target.event:
                    add(r.rate)
        for b in self.journey.branches:
            # A branch moves participants into the outcome's states only from a state outside them.
            into = b.to in target.states and any(s not in target.states for s in b.states if s != b.to)
            if into or (target.event and b.event == target.event):
                add(b.probability)
        return tuple(names)

    # --- what the engine counts -------------------------------------------------
    @property
    def outcome_names(self) -> tuple[str, ...]:
        """The outcomes the contract defines, in the order every outcome array stores them."""
        return tuple(o.name for o in self.outcomes)

    def outcome_index(self, name: str) -> int:
        return self.outcome_names.index(name)

    @property
    def measures(self) -> tuple[Outcome, ...]:
        """Everything the engine counts: the outcomes, then one count per cost item (its units)."""
        return self.outcomes + tuple(c.as_outcome() for c in self.costs)

    @property
    def prices(self) -> np.ndarray:
        """EUR per net unit of each outcome (:attr:`outcome_names` order), shape ``(outcomes,)``."""
        return np.array([self.payer.price(o) for o in self.outcome_names])

    @property
    def outcome_scales(self) -> np.ndarray:
        """Units per count of each outcome (e.g. days per person-month), shape ``(outcomes,)``."""
        return np.array([o.scale for o in self.outcomes])

    def cost_per_unit(self, n_months: int | None = None) -> np.ndarray:
        """EUR per unit of each cost item (participant-month or event) in each month, shape ``(costs, months)``.

        Indexation steps up every 12 months from the contract start.
        """
        T = self.horizon_months if n_months is None else n_months
        years = np.arange(T) // 12
        return np.array([c.base_amount * (1.0 + c.annual_indexation) ** years for c in self.costs]).reshape(
            len(self.costs), T)

    def files_record(self) -> dict:
        """What a manifest records of the files read: ``scenario_sha256`` (:attr:`files_sha256`) and
        ``scenario_files`` (resolved path and SHA-256 of each, top first)."""
        return {"scenario_sha256": self.files_sha256,
                "scenario_files": [{"path": str(Path(p).resolve()), "sha256": sha} for p, sha in self.files]}

    @property
    def files_sha256(self) -> str:
        """One SHA-256 for every file read (:attr:`files`).

        For a single file, the SHA-256 of its bytes (as ``sha256sum`` prints it); for a variant and
        its bases, the SHA-256 of their digests, one per line, top first: it changes when any
        of them does.  Empty if the contract was not loaded from files.
        """
        return files_digest(self.files)

    @property
    def start(self) -> str | None:
        """``meta.start`` as ISO text (``YYYY-MM`` or ``YYYY-MM-DD``), or ``None`` if not given."""
        value = dict(self.meta).get("start")
        return None if value is None else str(value)

    def is_default(self, name: str) -> bool:
        """Whether a field (e.g. ``"analysis.public_discount_rate"``) took its default, not given in the file."""
        return name in self.defaulted

    @property
    def language(self) -> str:
        """The memo's language (``meta.language``: ``en`` or ``nl``; default ``en``)."""
        return str(dict(self.meta).get("language", "en"))

    @property
    def currency(self) -> str:
        """Currency of every amount (``meta.currency``, default EUR)."""
        return str(dict(self.meta).get("currency", "EUR"))

    @property
    def trigger_months(self) -> tuple[np.ndarray, int] | None:
        """Measurement month of each cohort under the cohort trigger, and the final (pooled) one."""
        trigger = self.payer.trigger
        if trigger is None:
            return None
        months = np.array([c.intake_month for c in self.cohorts]) + trigger.follow_up_months
        return months, int(months.max())

    @property
    def waterfall(self) -> Waterfall:
        """The waterfall the contract states, or the one-line default."""
        return self.waterfall_terms or Waterfall.by_seniority(self.investors, any(g.recoup for g in self.guarantees))

    @property
    def payers(self) -> tuple[Payer, ...]:
        """Every party paying outcome payments (one: the ``payer`` with its own cap, lag and default)."""
        if self.payer_split:
            return self.payer_split
        p = self.payer
        return (Payer(p.name, (), 1.0, p.payment_cap, p.payment_lag_months, p.default_probability),)

    @property
    def payer_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.payers)

    @property
    def measurement_dates(self) -> tuple[int, ...]:
        """Every month at which a measurement can make a payment due (before the payers' lags)."""
        months = set(self.payer.measurement_months)
        if self.trigger_months is not None:
            cohort_months, final = self.trigger_months
            months |= {int(m) for m in cohort_months} | {final}
        return tuple(sorted(months))

    def payer_payment_months(self, j: int) -> tuple[int, ...]:
        """The months in which payer ``j`` (:attr:`payers` order) can have a payment due."""
        lag = self.payers[j].payment_lag_months
        return tuple(m + lag for m in self.measurement_dates)

    @property
    def payment_months(self) -> tuple[int, ...]:
        """Every month in which an outcome payment can fall due (any payer)."""
        return tuple(sorted({m for j in range(len(self.payers)) for m in self.payer_payment_months(j)}))

    @property
    def tranche_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.investors)

    @property
    def n_participants(self) -> int:
        return sum(c.size for c in self.cohorts)

    @property
    def total_commitment(self) -> float:
        return sum(i.commitment for i in self.investors)

    @property
    def comparison_sizes(self) -> np.ndarray:
        """Comparison-group members per cohort (at least 1), shape ``(cohorts,)``."""
        sizes = np.array([c.size for c in self.cohorts], dtype=float) * self.comparison.size_ratio
        return np.maximum(np.rint(sizes), 1).astype(np.int64)

    def fee_schedule(self, paid_by: str) -> np.ndarray:
        """EUR per month of all fees paid by ``paid_by`` (``"investors"`` or ``"payer"``)."""
        T = self.horizon_months
        out = np.zeros(T)
        for fee in self.fees:
            if fee.paid_by == paid_by:
                out += fee.schedule.to_array(T)
        return out

    @property
    def call_weights(self) -> np.ndarray:
        """Each tranche's share of every capital call when drawn pro rata to commitments (no draw order)."""
        return np.array([i.commitment for i in self.investors]) / self.total_commitment

    def capital_calls(self) -> np.ndarray:
        """Planned EUR called from each tranche per month, shape ``(tranches, months)``.

        Calls follow the provider's budget plus the fees borne by investors, split over the
        tranches by the draw order.  Recycled outcome payments and early termination can only
        lower them (see :func:`sibsim.cashflows.settle`).
        """
        from .waterfall import planned_draws  # the draw order is read in one place

        return planned_draws(self)
