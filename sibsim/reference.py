"""Reference simulator: the participant journey, stepped month by month in plain Python.

This module is the *executable specification* of the journey described in
:class:`sibsim.contracts.Journey`.  It is deliberately slow and simple: one
participant at a time, one month at a time, one :class:`random.Random` draw
per decision, no vectorisation.  The fast engine (:mod:`sibsim.montecarlo`)
samples event times instead; the test suite checks that both produce the same
distribution of outcomes.

The monthly chain
-----------------
A participant's *state at the start of a month* decides which single trial
takes place in that month; the result is the state at the *end* of the month.
A participant enters at its cohort's intake month.

``TRAINING`` (``k`` months done; entered only if ``max_training_months`` L > 0)
    * with probability ``diploma``: diploma this month, then ``SEARCHING`` with a diploma;
    * else with probability ``dropout``: ``SEARCHING`` without a diploma;
    * else, if this was the L-th month of training: ``SEARCHING`` without a diploma;
    * else: stay in ``TRAINING`` (``k + 1``).

``SEARCHING`` (on benefits)
    * with probability ``job_with_diploma`` (or ``job_without_diploma``): a job
      starts this month and the participant is in ``WORKING`` (off benefits)
      for this month already;
    * else: stay in ``SEARCHING``.

``WORKING`` (off benefits; ``months_in_job`` counts the job-start month as 1)
    * with probability ``relapse`` (``relapse_long_term`` on a long-term
      contract): the job ends; this month is spent on benefits and the next
      job trial is next month (``SEARCHING``);
    * else: stay in ``WORKING`` one more month.

Whenever a job reaches ``sustained_job_months`` S months (the job-start month
counting as the first; with S == 1 this is the job-start month itself), it is
*sustained* that month, and it becomes a long-term contract with probability
``long_term_contract`` (one draw per sustained job).

Outcomes (:data:`sibsim.contracts.OUTCOMES`) are recorded in the month a
participant reaches them for the *first* time; ``employed`` counts the
participants in ``WORKING`` at the end of each month.  Only months
``0 .. horizon_months - 1`` are simulated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from .contracts import JOURNEY_PROBABILITIES, OUTCOMES, Contract, Journey, Prior
from .montecarlo import GroupOutcomes, Outcomes

DIPLOMA, JOB_START, JOB_SUSTAINED, LONG_TERM_CONTRACT = range(len(OUTCOMES))

TRAINING, SEARCHING, WORKING = "training", "searching", "working"


@dataclass(frozen=True)
class Probabilities:
    """The journey probabilities of one path (one value per parameter)."""

    diploma: float
    dropout: float
    job_with_diploma: float
    job_without_diploma: float
    relapse: float
    relapse_long_term: float
    long_term_contract: float


def draw_probability(prior: Prior, rng: random.Random) -> float:
    """One value from a prior: the mean if it is fixed, else a Beta draw."""
    if prior.is_fixed:
        return prior.mean
    alpha, beta = prior.alpha_beta
    return rng.betavariate(alpha, beta)


def draw_probabilities(journey: Journey, rng: random.Random) -> Probabilities:
    """The journey probabilities of one path, drawn in :data:`JOURNEY_PROBABILITIES` order."""
    priors = journey.priors()
    return Probabilities(**{name: draw_probability(priors[name], rng) for name in JOURNEY_PROBABILITIES})


def happens(probability: float, rng: random.Random) -> bool:
    """One Bernoulli trial."""
    return rng.random() < probability


def live_journey(
    p: Probabilities,
    max_training_months: int,
    sustained_job_months: int,
    intake_month: int,
    n_months: int,
    rng: random.Random,
) -> tuple[dict[int, int], list[int]]:
    """Step one participant through months ``intake_month .. n_months - 1``.

    Returns
    -------
    first_reached : dict of outcome index -> month
        The month each outcome was reached for the first time.
    months_employed : list of int
        The months the participant ended in work (off benefits).
    """
    first_reached: dict[int, int] = {}
    months_employed: list[int] = []

    def reach(outcome: int, month: int) -> None:
        if outcome not in first_reached:
            first_reached[outcome] = month

    state = TRAINING if max_training_months > 0 else SEARCHING
    training_months_done = 0
    has_diploma = False
    months_in_job = 0
    long_term = False

    for month in range(intake_month, n_months):
        if state == TRAINING:
            if happens(p.diploma, rng):
                reach(DIPLOMA, month)
                has_diploma = True
                state = SEARCHING
            elif happens(p.dropout, rng):
                state = SEARCHING
            else:
                training_months_done += 1
                if training_months_done == max_training_months:
                    state = SEARCHING

        elif state == SEARCHING:
            p_job = p.job_with_diploma if has_diploma else p.job_without_diploma
            if happens(p_job, rng):
                reach(JOB_START, month)
                state = WORKING
                months_in_job = 1
                long_term = False
                # (the sustained check below also runs in the job-start month, for S == 1)

        elif state == WORKING:
            p_relapse = p.relapse_long_term if long_term else p.relapse
            if happens(p_relapse, rng):
                state = SEARCHING  # this month is spent on benefits
            else:
                months_in_job += 1

        if state == WORKING:
            # months_in_job passes S exactly once per job: the month it becomes sustained.
            if months_in_job == sustained_job_months:
                reach(JOB_SUSTAINED, month)
                if happens(p.long_term_contract, rng):
                    long_term = True
                    reach(LONG_TERM_CONTRACT, month)
            months_employed.append(month)

    return first_reached, months_employed


def simulate_group_reference(
    probabilities: list[Probabilities],
    max_training_months: int,
    intake_months: list[int],
    sizes: list[int],
    n_months: int,
    sustained_job_months: int,
    rng: random.Random,
) -> tuple[np.ndarray, np.ndarray]:
    """Every participant of one group, path by path, cohort by cohort.

    Returns
    -------
    events : ndarray (paths, cohorts, 4, months) int32
        Participants reaching each outcome for the first time in each month.
    employed : ndarray (paths, cohorts, months) int32
        Participants in work at the end of each month.
    """
    n_paths, n_cohorts = len(probabilities), len(sizes)
    events = np.zeros((n_paths, n_cohorts, len(OUTCOMES), n_months), dtype=np.int32)
    employed = np.zeros((n_paths, n_cohorts, n_months), dtype=np.int32)
    for path, p in enumerate(probabilities):
        for cohort, (intake, size) in enumerate(zip(intake_months, sizes)):
            for _participant in range(size):
                first_reached, months_employed = live_journey(
                    p, max_training_months, sustained_job_months, intake, n_months, rng
                )
                for outcome, month in first_reached.items():
                    events[path, cohort, outcome, month] += 1
                for month in months_employed:
                    employed[path, cohort, month] += 1
    return events, employed


def simulate_outcomes_reference(contract: Contract, n_paths: int, seed: int) -> Outcomes:
    """Slow, month-by-month counterpart of :func:`sibsim.montecarlo.simulate_outcomes`.

    Same distribution, different random numbers: the result has the structure
    of :class:`~sibsim.montecarlo.Outcomes` and can be settled with
    :func:`sibsim.cashflows.settle`.

    Draw order: for each path, the treated probabilities then the comparison
    probabilities; then all treated journeys (path by path), then all
    comparison journeys.
    """
    rng = random.Random(seed)
    intake = [c.intake_month for c in contract.cohorts]
    treated_sizes = [c.size for c in contract.cohorts]
    comparison_sizes = [int(n) for n in contract.comparison_sizes]
    treated_p, comparison_p = [], []
    for _path in range(n_paths):
        treated_p.append(draw_probabilities(contract.journey, rng))
        comparison_p.append(draw_probabilities(contract.comparison.journey, rng))

    groups = []
    for journey, probabilities, sizes in (
        (contract.journey, treated_p, treated_sizes),
        (contract.comparison.journey, comparison_p, comparison_sizes),
    ):
        events, employed = simulate_group_reference(
            probabilities, journey.max_training_months, intake, sizes,
            contract.horizon_months, contract.sustained_job_months, rng,
        )
        parameters = {name: np.array([getattr(p, name) for p in probabilities]) for name in JOURNEY_PROBABILITIES}
        groups.append(GroupOutcomes(events, employed, np.array(sizes, dtype=np.int64), parameters))
    return Outcomes(treated=groups[0], comparison=groups[1])
