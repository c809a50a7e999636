"""Contract terms of a Social Impact Bond, as frozen dataclasses.

Everything here is *data*: who invests how much, what the outcome payer pays
for, what a month off benefits saves, who takes part and how their journey is
believed to go.  Nothing here draws random numbers or settles cash; that is
:mod:`sibsim.montecarlo` and :mod:`sibsim.cashflows`.

Conventions
-----------
* Money in EUR (or the scenario's ``meta.currency``), nominal.
* Time in whole months; month 0 is the first month of the contract.
* Journey probabilities are *per-month* probabilities, except
  ``long_term_contract`` which is the probability that a job reaching the
  sustained mark (``sustained_job_months``) comes with a long-term contract.
* Annual rates (return caps, discount rates, indexation) are effective annual
  rates, e.g. ``0.10`` for 10 % a year.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Outcome types a rate card can price, in the order the engine stores them.
OUTCOMES = ("diploma", "job_start", "job_sustained", "long_term_contract")

#: Journey parameters (keys of ``[journey]`` and ``[comparison.journey]``).
JOURNEY_PROBABILITIES = (
    "diploma",
    "dropout",
    "job_with_diploma",
    "job_without_diploma",
    "relapse",
    "relapse_long_term",
    "long_term_contract",
)


@dataclass(frozen=True)
class Prior:
    """Uncertain probability: Beta(alpha, beta), or a fixed value.

    Each Monte Carlo path draws one value (parameter uncertainty); all
    participants of that path then share it (individual randomness comes on top).

    Parameters
    ----------
    mean : float
        Expected probability, in [0, 1].
    sd : float
        Standard deviation of the prior; 0 means the value is known (fixed).
    """

    mean: float
    sd: float = 0.0

    @property
    def is_fixed(self) -> bool:
        return self.sd == 0.0

    @property
    def alpha_beta(self) -> tuple[float, float]:
        """Beta parameters matching ``mean`` and ``sd`` (method of moments)."""
        m, v = self.mean, self.sd**2
        k = m * (1.0 - m) / v - 1.0
        return m * k, (1.0 - m) * k

    @classmethod
    def from_alpha_beta(cls, alpha: float, beta: float) -> "Prior":
        n = alpha + beta
        return cls(mean=alpha / n, sd=float(np.sqrt(alpha * beta / (n * n * (n + 1.0)))))

    def draw(self, rng: np.random.Generator, n_paths: int) -> np.ndarray:
        """One probability per path, shape ``(n_paths,)``."""
        if self.is_fixed:
            return np.full(n_paths, self.mean)
        a, b = self.alpha_beta
        return rng.beta(a, b, n_paths)


@dataclass(frozen=True)
class Journey:
    """Monthly multi-state journey of one participant (see docs/model.md).

    In training (up to ``max_training_months``) each month brings the diploma
    with probability ``diploma``, otherwise dropout with probability
    ``dropout``.  After training the participant looks for work, with monthly
    job-start probability ``job_with_diploma`` or ``job_without_diploma``.  A
    job ends (relapse to benefits) with monthly probability ``relapse``; a job
    that lasts ``sustained_job_months`` is *sustained* and then turns into a
    long-term contract with probability ``long_term_contract``, after which the
    monthly relapse probability is ``relapse_long_term``.  After a relapse the
    participant looks for work again.
    """

    max_training_months: int
    diploma: Prior
    dropout: Prior
    job_with_diploma: Prior
    job_without_diploma: Prior
    relapse: Prior
    relapse_long_term: Prior
    long_term_contract: Prior

    def priors(self) -> dict[str, Prior]:
        return {name: getattr(self, name) for name in JOURNEY_PROBABILITIES}


@dataclass(frozen=True)
class Cohort:
    """Participants entering the programme in the same month."""

    intake_month: int
    size: int


@dataclass(frozen=True)
class Investor:
    """A provider of capital.

    Parameters
    ----------
    commitment : float
        EUR committed; capital calls draw on it pro rata with the other investors.
    return_cap : float or None
        Maximum annual return (effective, e.g. 0.10): distributions never take
        the investor's IRR above it; the rest stays with the payer.  None: no cap.
    seniority : int
        1 is paid first; investors of equal seniority share pro rata.
    """

    name: str
    commitment: float
    investor_class: str = "senior"
    return_cap: float | None = None
    seniority: int = 1


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
    """A fee (intermediary, evaluator...) paid by the investors (out of called capital) or by the payer."""

    name: str
    paid_by: str  # "investors" or "payer"
    schedule: Schedule


@dataclass(frozen=True)
class OutcomePayer:
    """The public body paying for measured outcomes.

    Parameters
    ----------
    rate_card : tuple of (outcome, EUR)
        Price per net outcome (treated minus comparison group, scaled to the
        treated group's size), for outcomes in :data:`OUTCOMES`.
    savings_share : float
        Share of *measured* savings (benefit months avoided x benefit) paid on top.
    payment_cap : float or None
        Maximum total outcome payments over the contract, EUR.
    measurement_months : tuple of int
        Months at which the evaluator counts outcomes achieved *before* that month.
    payment_lag_months : int
        Months between a measurement and the payment.
    """

    name: str
    rate_card: tuple[tuple[str, float], ...]
    savings_share: float
    payment_cap: float | None
    measurement_months: tuple[int, ...]
    payment_lag_months: int

    def price(self, outcome: str) -> float:
        return dict(self.rate_card).get(outcome, 0.0)

    @property
    def prices(self) -> np.ndarray:
        """EUR per net outcome, in :data:`OUTCOMES` order, shape ``(4,)``."""
        return np.array([self.price(o) for o in OUTCOMES])


@dataclass(frozen=True)
class BenefitBand:
    """Monthly bijstand amount for an age band, and the share of participants in it."""

    age_band: str
    amount_per_month: float
    share: float


@dataclass(frozen=True)
class Savings:
    """What a month off benefits saves the payer.

    ``share_saved_when_employed`` covers partial outflow: a part-time job may
    leave a top-up benefit, so only part of the benefit is saved.
    """

    bands: tuple[BenefitBand, ...]
    share_saved_when_employed: float = 1.0
    annual_indexation: float = 0.0

    def per_month(self, n_months: int) -> np.ndarray:
        """EUR saved per participant-month off benefits, shape ``(n_months,)``.

        Indexation steps up every 12 months from the contract start.
        """
        base = sum(b.amount_per_month * b.share for b in self.bands) * self.share_saved_when_employed
        years = np.arange(n_months) // 12
        return base * (1.0 + self.annual_indexation) ** years


@dataclass(frozen=True)
class ComparisonGroup:
    """The evaluator's comparison group: ``size_ratio`` members per treated participant, per cohort."""

    size_ratio: float
    journey: Journey


@dataclass(frozen=True)
class Contract:
    """All terms and assumptions of one SIB scenario."""

    title: str
    term_months: int
    tail_months: int
    sustained_job_months: int
    investors: tuple[Investor, ...]
    provider_name: str
    provider_budget: Schedule
    fees: tuple[Fee, ...]
    payer: OutcomePayer
    savings: Savings
    cohorts: tuple[Cohort, ...]
    journey: Journey
    comparison: ComparisonGroup
    investor_discount_rate: float = 0.0
    public_discount_rate: float = 0.0
    primary_outcome: str = "job_sustained"
    meta: tuple[tuple[str, object], ...] = field(default=(), compare=False)
    source: str = field(default="", compare=False)

    # --- derived quantities -------------------------------------------------
    @property
    def horizon_months(self) -> int:
        """Months in every ledger: term, tail, last payment and last fee all fit."""
        last_payment = max(self.payer.measurement_months) + self.payer.payment_lag_months
        last_fee = max((f.schedule.last_month for f in self.fees), default=-1)
        return max(
            self.term_months + self.tail_months,
            last_payment + 1,
            self.provider_budget.last_month + 1,
            last_fee + 1,
        )

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

    def capital_calls(self) -> np.ndarray:
        """EUR called from each investor per month, shape ``(investors, months)``.

        Calls follow the provider's budget plus the fees borne by investors,
        split pro rata to commitments.
        """
        needs = self.provider_budget.to_array(self.horizon_months) + self.fee_schedule("investors")
        weights = np.array([i.commitment for i in self.investors]) / self.total_commitment
        return weights[:, None] * needs[None, :]
