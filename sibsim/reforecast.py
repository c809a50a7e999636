"""Re-forecast from where the contract stands: carry every participant on from a state census.

Halfway through, the municipality knows per cohort how many participants are in each state (a
:class:`~sibsim.census.Census` at month ``m``) and what has been measured (the observed counts up
to ``m``, :mod:`sibsim.observed`).  :func:`reforecast` simulates only the rest:

* every path keeps the past: the counts of months before ``m`` are the observed ones (so the
  payments they settle, and those already paid, are the same on every path and equal what
  ``sibsim settle`` gives for them);
* every participant of a started cohort carries on from its census row (state, months in it,
  runs and totals in sets, outcomes already had) under the scenario's priors, which after
  ``sibsim update`` are the posterior; cohorts starting at or after ``m`` start at their intake;
* a modelled counterfactual keeps the model's expectation from ``m`` on;
* settlement risks that would have shown by ``m`` did not happen: the payer paid what fell due
  before ``m`` (no default drawn for those months counts) and an external stop dated before ``m``
  did not come; later ones keep their probability.

The budget years then run from ``m`` (:func:`sibsim.budget.budget_years`): the remaining payments
per year with P50, P90 and P95.  The reference simulator carries participants on from the same
census (:func:`sibsim.reference.simulate_group_reference`), which the tests check the engine
against.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .census import Census
from .contracts import Contract
from .errors import ScenarioError


@dataclass(frozen=True)
class Standing:
    """The past of a contract at a census month: what the simulation keeps and where it carries on.

    Attributes
    ----------
    month : int
        The census month ``m``: months ``0 .. m - 1`` have happened.
    census : Census
    past : Outcomes
        One path of the observed counts (:func:`sibsim.observed.outcomes_from_observed`), months
        before ``m`` only.
    contract : Contract
        The contract the past was settled under (its payment months and external stop).
    """

    month: int
    census: Census
    past: object
    contract: Contract

    def engine_census(self, group: str):
        """The ``census`` argument of :func:`sibsim.engine.simulate_group` for ``group``."""
        return self.month, self.census.rows(group)

    def add_past(self, group: str, events, costs, totals, months, replace: bool = False):
        """Add the observed past to simulated counts from month ``m`` on (``replace``: zero the
        simulated months before ``m`` first, for a modelled counterfactual's expectation)."""
        past = self.past.treated if group == "treated" else self.past.comparison
        m = self.month
        if replace:
            events, costs = np.array(events, dtype=float), np.array(costs, dtype=float)
            events[..., :m] = 0.0
            costs[..., :m] = 0.0
        costs = costs + past.costs  # (1, C, I, T) broadcast over paths; float: spread months
        if events is not None:
            events = events + past.events
        if totals is not None:
            cum = np.cumsum(past.events, axis=-1)  # (1, C, K, T)
            before = np.stack([cum[..., b - 1] if b > 0 else np.zeros(cum.shape[:-1]) for b in months], axis=-1)
            totals = totals + before
        return events, costs, totals

    def condition_risks(self, default, stopped):
        """Settlement risks given that nothing went wrong before ``m`` (module notes)."""
        def paid_before(j, d):
            if d is None:
                return None
            d = d.copy()
            due = np.asarray(self.contract.payer_payment_months(j)) < self.month
            d[:, due] = False
            return d

        if isinstance(default, tuple):
            default = tuple(paid_before(j, d) for j, d in enumerate(default))
        else:
            default = paid_before(0, default)
        stop = self.contract.external_stop
        if stopped is not None and stop.month < self.month:
            stopped = np.zeros_like(stopped)
        return default, stopped


def standing(contract: Contract, census: Census) -> Standing:
    """The :class:`Standing` of ``contract`` at the census (the observed counts settled as one path)."""
    from .observed import outcomes_from_observed

    past = outcomes_from_observed(contract, census.observed)
    groups = {g for g, _, _ in census.observed.counts}
    if contract.comparison.method != "expected" and "counterfactual" in groups:
        raise ScenarioError(f"{census.observed.source}: measurement: counterfactual counts, but the census "
                            "follows the comparison group: give the comparison group's own counts")
    if contract.comparison.method == "expected":
        # Counterfactual counts not given are the model's expectation at the prior means over the whole
        # horizon (outcomes_from_observed): the past keeps its months before m, the paths model the rest.
        events, costs = np.array(past.comparison.events, dtype=float), np.array(past.comparison.costs, dtype=float)
        events[..., census.month:] = 0.0
        costs[..., census.month:] = 0.0
        past = dataclasses.replace(past, comparison=dataclasses.replace(past.comparison, events=events, costs=costs))
    for group in ("treated", "comparison"):
        g = past.treated if group == "treated" else past.comparison
        if np.any(g.costs[..., census.month:]) or np.any(g.events[..., census.month:]):
            raise ScenarioError(f"{census.observed.source}: {group}: counts dated at or after the census month "
                                f"{census.month}")
    return Standing(census.month, census, past, contract)


def reforecast(contract: Contract, census: Census, n_paths: int = 4_000, seed=None, workers=None, progress=None):
    """Simulate the rest of the contract from the census (module notes).

    Returns
    -------
    Results
        Of the whole contract, the past the same on every path; ``budget()`` runs from the census
        month (``Results.budget_from``).
    """
    from .simulation import simulate

    state = standing(contract, census)
    results = simulate(contract, n_paths=n_paths, seed=seed, workers=workers, progress=progress, standing=state)
    return dataclasses.replace(results, budget_from=census.month)
