"""Monte Carlo of participant journeys: Contract -> Outcomes.

Each path draws its own journey parameters from the priors (parameter uncertainty);
every participant of that path then follows the monthly state machine of
:class:`~sibsim.journey.Journey` (individual randomness), simulated by the compiled
engine (:mod:`sibsim.engine`). What the engine counts is the contract's outcomes
(:attr:`~sibsim.contracts.Contract.outcomes`) and one count per cost item (the units the
payer's costs are priced on), per (path, cohort, month).

Paths are simulated in fixed blocks, each with its own child of the run's
:class:`numpy.random.SeedSequence`, so a run is bit-identical whatever the number of
worker processes. ``sibsim.reference`` steps the same state machine month by month in
plain Python; the test suite checks that both agree.

Draw order within a block (part of reproducibility; golden outputs pin it): the copula's normals
(only with ``[correlation]``), treated parameters (in declared order; those the copula names are
not drawn again), comparison parameters (declared order; shared ones are not drawn again), the
factors' normals and the uncertain shocks' uniforms (only with ``[[factors]]``, ``[[shocks]]``;
:mod:`sibsim.uncertainty`), treated journeys (:mod:`sibsim.engine` documents the order within),
comparison journeys in slices of paths (only for a comparison group: a modelled
counterfactual is an exact expectation), payer defaults (payer by payer, only for a payer that
can default), the external stop (only when its probability is below 1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from . import engine, uncertainty
from .contracts import Contract
from .errors import ScenarioError

#: Participant-paths held in memory at once (treated + comparison), which sets the block size.
PARTICIPANT_PATHS_PER_BLOCK = 600_000
#: Cap on the per-block count arrays (paths x cohorts x measures x months counts).
CELLS_PER_BLOCK = 6_000_000


@dataclass(frozen=True)
class GroupOutcomes:
    """What happened to one group (treated or comparison) on a block of paths.

    Attributes
    ----------
    events : ndarray, shape (paths, cohorts, outcomes, months), or None
        Occurrences of each outcome (:attr:`Contract.outcome_names` order) dated in each month,
        before the outcome's ``scale`` (int32 counts from the engine, float64 expectations).
        None when only their totals were counted (``totals``).
    costs : ndarray, shape (paths, cohorts, cost items, months)
        Units (participant-months in the item's states, or events) of each cost item per month.
    sizes : ndarray, shape (cohorts,)
        Group members per cohort.
    parameters : dict of str -> ndarray (paths,)
        The journey parameters drawn for each path.
    totals : (months, ndarray (paths, cohorts, outcomes, len(months))) or None
        The outcomes counted before each of ``months`` (whole numbers, float64), when the engine
        was asked for those instead of monthly counts (:func:`simulate_outcomes`).
    """

    events: np.ndarray | None
    costs: np.ndarray
    sizes: np.ndarray
    parameters: dict
    totals: tuple | None = None


@dataclass(frozen=True)
class Outcomes:
    """Treated participants and the evaluator's comparison group, on a block of paths."""

    treated: GroupOutcomes
    comparison: GroupOutcomes
    #: (paths, payment months) True where the payer does not pay a payment due
    #: (in :meth:`Contract.payer_payment_months` order); None when the payer never defaults.
    #: With several payers, a tuple of such arrays (or None), one per payer.
    payer_default: np.ndarray | tuple | None = None
    #: (paths,) True where the contract's external event stops the programme; None: on every
    #: path if the contract has one (a certain what-if).
    external_stop: np.ndarray | None = None
    #: Digest of the generator's state (:func:`state_digest`) once parameters and journeys were
    #: drawn and at the end ("" if not recorded): two simulations of a block with equal digests drew
    #: the same numbers, in the same places of the fixed draw order (module notes).
    draws: str = ""
    #: What each path drew of the factors (multiplier) and shocks (1: it happens), by name
    #: (:meth:`sibsim.uncertainty.Draws.columns`); empty without them.
    common: dict = field(default_factory=dict)

    def payer_defaults(self, n_payers: int) -> list:
        """Each payer's missed payments, a list of ``n_payers`` arrays or None."""
        if isinstance(self.payer_default, tuple):
            return list(self.payer_default)
        return [self.payer_default] + [None] * (n_payers - 1)

    @property
    def n_paths(self) -> int:
        return self.treated.costs.shape[0]

    @property
    def comparison_scale(self) -> np.ndarray:
        """Treated / comparison size per cohort, shape ``(cohorts,)``: turns comparison counts into counterfactual counts."""
        return self.treated.sizes / self.comparison.sizes

    def counterfactual_events(self) -> np.ndarray:
        """Expected events of the treated group had it not taken part, as measured by the comparison group.

        Raises
        ------
        ValueError
            When the outcomes were counted as totals only (``simulate_outcomes(..., totals_before=...)``).
        """
        if self.comparison.events is None:
            raise ValueError("counterfactual_events: the outcomes were counted as totals only, not month by month")
        return self.comparison.events * self.comparison_scale[None, :, None, None]

    def counterfactual_costs(self) -> np.ndarray:
        """Cost units of the treated group had it not taken part, as measured by the comparison group."""
        return self.comparison.costs * self.comparison_scale[None, :, None, None]


def block_size(contract: Contract) -> int:
    """Paths per block: fixed by the contract (never by workers or chunking), so results are reproducible.

    It depends on the treated group only (budgeting an equal comparison group), so that designs
    differing only in their comparison group share every path's parameters and treated journeys
    (common random numbers); a larger comparison group is simulated in slices of paths instead.
    """
    participants = 2 * contract.n_participants
    cells = len(contract.cohorts) * max(len(contract.measures), 1) * contract.horizon_months
    size = min(PARTICIPANT_PATHS_PER_BLOCK // participants, CELLS_PER_BLOCK // cells, 2048)
    return int(max(size, 1))


def start_distributions(contract: Contract, comparison: bool = False) -> np.ndarray:
    """Start distribution of each cohort over the journey's states, shape ``(cohorts, states)``.

    Treated participants start where their cohort's own ``start`` says, else where the journey's
    does. The comparison group starts where ``[comparison] start`` says when it differs from the
    journey's (without the programme nobody starts in it: Colour Kitchen's comparison group starts
    looking for work, whatever cohort it matches), else as the treated cohort does.
    """
    journey = contract.comparison.journey if comparison else contract.journey
    own = comparison and journey.start != contract.journey.start
    names = journey.state_names
    out = np.zeros((len(contract.cohorts), len(names)))
    for i, cohort in enumerate(contract.cohorts):
        for state, share in (journey.start if own else cohort.start or journey.start):
            out[i, names.index(state)] += share
    return out


def parameter_dict(journey, params: np.ndarray) -> dict[str, np.ndarray]:
    """Name -> per-path column of a ``(paths, parameters)`` array."""
    return {name: params[:, j] for j, name in enumerate(journey.parameter_names)}


def draw_group_parameters(contract: Contract, rng: np.random.Generator, n_paths: int) -> tuple[np.ndarray, np.ndarray]:
    """Treated then comparison parameters per path (see the module's draw order: the copula's first)."""
    fixed = uncertainty.copula_columns(contract.uncertainty.copula, {"treated": contract.journey,
                                       "comparison": contract.comparison.journey}, rng, n_paths)
    treated = engine.draw_parameters(contract.journey, rng, n_paths, given=fixed["treated"])
    names = contract.journey.parameter_names
    given = {n: treated[:, names.index(n)] for n in contract.comparison.shared}
    comparison = engine.draw_parameters(contract.comparison.journey, rng, n_paths,
                                        given={**fixed["comparison"], **given})
    engine.check_exit_sums(contract.journey, treated)
    engine.check_exit_sums(contract.comparison.journey, comparison)
    return treated, comparison


def group_regimes(contract: Contract, params: np.ndarray, draws, group: str):
    """``group``'s parameters moved by the factors and shocks reaching it: (params, regimes or None).

    Raises :class:`ScenarioError` (one line naming the scenario's terms) where they would make a
    state's simultaneous exits sum above 1 on a path.
    """
    unc = contract.uncertainty
    if not uncertainty.reaches(unc, group):
        return params, None
    journey = contract.journey if group == "treated" else contract.comparison.journey
    reg = uncertainty.regimes(unc, journey, params, draws, group, contract.horizon_months)
    try:
        for r in range(reg.n_regimes):
            engine.check_exit_sums(journey, reg.params[:, r, :])
    except ValueError as exc:
        terms = [f"factors[{i}]" for i, f in enumerate(unc.factors) if group in f.groups]
        terms += [f"shocks[{i}]" for i, s in enumerate(unc.shocks) if group in s.groups]
        raise ScenarioError(f"{contract.source or '<scenario>'}: {', '.join(terms)}: in the {group} group, {exc} "
                            f"(a smaller multiplier, or fewer of the state's exits named)") from None
    return reg.params[:, 0, :].copy(), (reg if reg.n_regimes > 1 else None)


def split_counts(contract: Contract, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Engine counts (paths, cohorts, measures, months) -> outcome events and cost units."""
    k = len(contract.outcomes)
    return counts[:, :, :k], counts[:, :, k:]


def simulate_outcomes(contract: Contract, n_paths: int, rng: np.random.Generator, totals_before=None,
                      standing=None, common=None) -> Outcomes:
    """Draw parameters and journeys for the treated group and the counterfactual (draw order: module notes).

    ``totals_before`` (months): the engine counts the outcomes only as totals before each of
    those months (:attr:`GroupOutcomes.totals`, ``events`` None), what settlement and the path
    metrics read, instead of month by month (cost items are always counted per month).  The same
    numbers and the same draws; a modelled counterfactual keeps its monthly expectations too.

    ``standing`` (:class:`sibsim.reforecast.Standing`): where the contract stands at a census month
    ``m``.  The journeys carry on from the census (:func:`sibsim.engine.simulate_group`), the counts
    of months before ``m`` are the observed ones on every path, a modelled counterfactual keeps its
    expectation from ``m`` on, and the settlement risks that would have shown by ``m`` did not
    happen (payments due before ``m`` were paid; an external stop dated before ``m`` did not come).
    The draw order is the same, with no start states drawn for participants in the census.

    ``common`` (:class:`sibsim.uncertainty.Draws` for these paths): factors and shocks drawn
    outside the block (a portfolio's shared ones), used instead of drawing them.
    """
    intake = np.array([c.intake_month for c in contract.cohorts], dtype=np.int64)
    treated_sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    T = contract.horizon_months
    measures = contract.measures
    K = len(contract.outcomes)
    months = None if totals_before is None else tuple(sorted({int(m) for m in totals_before}))
    as_totals = None if months is None else (months, tuple(range(K)))

    def engine_group(journey, params, sizes, starts, group="treated", regimes=None):
        """One group's counts: (events, costs, totals) from the engine, the observed past added."""
        census = None if standing is None else standing.engine_census(group)
        out = engine.simulate_group(journey, measures, params, intake, sizes, starts, T, rng, totals=as_totals,
                                    census=census, regimes=regimes)
        if as_totals is None:
            events, costs, totals = (*split_counts(contract, out), None)
        else:
            events, costs, totals = None, out[0], out[1]
        if standing is not None:
            events, costs, totals = standing.add_past(group, events, costs, totals, months)
        return events, costs, totals

    treated_params, comparison_params = draw_group_parameters(contract, rng, n_paths)
    drawn_common = uncertainty.draw(contract.uncertainty, rng, n_paths, given=common)
    t_params, t_regimes = group_regimes(contract, treated_params, drawn_common, "treated")
    t_events, t_costs, t_totals = engine_group(contract.journey, t_params, treated_sizes,
                                               start_distributions(contract), regimes=t_regimes)
    c_starts = start_distributions(contract, comparison=True)
    journey = contract.comparison.journey
    if contract.comparison.method == "expected":
        from .cashflows import event_totals

        if uncertainty.reaches(contract.uncertainty, "comparison"):
            raise ValueError("a modelled counterfactual (comparison.method = \"expected\") is the contract's "
                             "formula: no factor or shock reaches it")
        from .expectation import expected_group

        comparison_sizes = treated_sizes
        expected = expected_group(journey, measures, comparison_params, intake, comparison_sizes, c_starts, T)
        c_events, c_costs = split_counts(contract, expected)
        if standing is not None:  # the model's expectation from the census month on, the observed past before
            c_events, c_costs, _ = standing.add_past("comparison", c_events, c_costs, None, None, replace=True)
        c_totals = None
        if months is not None:
            c_totals = event_totals(GroupOutcomes(c_events, c_costs, comparison_sizes, {}), months)
    else:
        comparison_sizes = contract.comparison_sizes
        c_params, c_regimes = group_regimes(contract, comparison_params, drawn_common, "comparison")
        # Slices of paths keep memory bounded for large comparison groups (a fixed split: reproducible).
        per_slice = max(1, (PARTICIPANT_PATHS_PER_BLOCK // 2) // int(comparison_sizes.sum()))

        def part(a):
            b = a + per_slice
            reg = None if c_regimes is None else uncertainty.Regimes(c_regimes.starts, c_regimes.params[a:b])
            return engine_group(journey, c_params[a:b], comparison_sizes, c_starts, "comparison", reg)
        parts = [part(a) for a in range(0, n_paths, per_slice)]
        c_events, c_costs, c_totals = (None if parts[0][i] is None else
                                       parts[0][i] if len(parts) == 1 else np.concatenate([q[i] for q in parts])
                                       for i in range(3))
    journeys_drawn = state_digest(rng)
    default, stopped = draw_settlement_risks(contract, n_paths, rng)
    if standing is not None:
        default, stopped = standing.condition_risks(default, stopped)
    # Both points: the same journeys' draws and then the same settlement draws (a payer's defaults,
    # the external stop), so that equal digests mean every draw of a path is the other's too.
    drawn = hashlib.sha256(f"{journeys_drawn} {state_digest(rng)}".encode()).hexdigest()
    return Outcomes(
        treated=GroupOutcomes(t_events, t_costs, treated_sizes, parameter_dict(contract.journey, treated_params),
                              None if t_totals is None else (months, t_totals)),
        comparison=GroupOutcomes(c_events, c_costs, comparison_sizes, parameter_dict(journey, comparison_params),
                                 None if c_totals is None else (months, c_totals)),
        payer_default=default,
        external_stop=stopped,
        draws=drawn,
        common=drawn_common.columns(contract.uncertainty),
    )


def state_digest(rng: np.random.Generator) -> str:
    """SHA-256 of the generator's state (hex).

    Two simulations from the same seed whose states are equal at the same points of the draw
    order (after the journeys, at the end of the block) drew the same number of random numbers
    up to each point.  With the fixed draw order (module notes) that is the same numbers for the
    same parameters, participants and paths, unless two different scenarios happen to consume
    exactly as many uniforms in a different way, which the parameter draws by rejection (Beta,
    Gamma: a number of uniforms that depends on the prior) and the journeys make a coincidence.
    A changed prior, journey, group or settlement risk changes the state.
    """
    return hashlib.sha256(repr(rng.bit_generator.state).encode()).hexdigest()


def draw_settlement_risks(contract: Contract, n_paths: int, rng: np.random.Generator):
    """The payers' defaults (payer by payer, each only if it can default: one uniform per path and
    payment month) and then the external stop (one uniform per path, only if its probability is
    below 1)."""
    defaults = []
    for j, payer in enumerate(contract.payers):
        if payer.default_probability > 0:
            months = len(contract.payer_payment_months(j))
            defaults.append(rng.random((n_paths, months)) < payer.default_probability)
        else:
            defaults.append(None)
    default = defaults[0] if len(defaults) == 1 else tuple(defaults)
    stop = contract.external_stop
    stopped = rng.random(n_paths) < stop.probability if stop is not None and stop.probability < 1 else None
    return default, stopped
