"""The compiled engine (sibsim.engine): exact counts on deterministic machines, the documented draw
order, and agreement in distribution with the old numpy engine on Colour Kitchen (with power)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from sibsim.engine import check_exit_sums, compile_machine, draw_parameters, simulate_group
from sibsim.journey import Branch, CostItem, Exit, Journey, Outcome, Prior, RecurrentEvent, State
from tests.machines import colour_kitchen_journey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import numpy_engine  # noqa: E402


def fixed(**values: float) -> tuple[tuple[str, Prior], ...]:
    return tuple((n, Prior(v)) for n, v in values.items())


def run(journey: Journey, measures, n_months: int, *, intake=(0,), sizes=(1,), n_paths: int = 1, seed: int = 0,
        starts=None) -> np.ndarray:
    """Counts (paths, cohorts, measures, months) with every parameter at its prior's mean."""
    params = draw_parameters(journey, np.random.default_rng(seed), n_paths)
    if starts is None:
        starts = np.zeros((len(intake), len(journey.states)))
        for name, share in journey.start:
            starts[:, journey.state_names.index(name)] = share
    return simulate_group(journey, tuple(measures), params, np.array(intake), np.array(sizes), starts, n_months,
                          np.random.default_rng(seed))


def months(*ms: int, n: int = 10) -> list[int]:
    out = [0] * n
    for m in ms:
        out[m] += 1
    return out


# --- (a) deterministic machines -------------------------------------------------------------------

def test_time_limit_status_and_occupancy():
    j = Journey((State("a", time_limit=3, after_limit="b"), State("b")), (("a", 1.0),))
    c = run(j, [Outcome("occ_a", "occupancy", states=("a",)), Outcome("in_b", "entry", states=("b",)),
                Outcome("census_b", "status", states=("b",), at_months=(2, 3, 5)),
                Outcome("census_a", "status", states=("a",), at_months=(2, 3))], 10, intake=(1,))[0, 0]
    assert c[0].tolist() == months(1, 2, 3)          # intake 1: months 1, 2, 3 in a
    assert c[1].tolist() == months(4)                # the limit moves to b from month 4
    assert c[2].tolist() == months(4, 6)             # census at intake + 3 and + 5 (in a at + 2)
    assert c[3].tolist() == months(3)


def test_start_timing_passes_through_and_dates_events():
    j = Journey((State("search", exits=(Exit("job", "p", "hired"),), timing="start"),
                 State("job", exits=(Exit("out", "p", "fired"),)), State("out")),
                (("search", 1.0),), parameters=fixed(p=1.0))
    c = run(j, [Outcome("entered_search", "entry", states=("search",)),
                Outcome("search_months", "occupancy", states=("search",)),
                Outcome("hired", "event", event="hired"), Outcome("job_months", "occupancy", states=("job",)),
                Outcome("fired", "event", event="fired"), Outcome("out", "entry", states=("out",))], 10)[0, 0]
    assert c[0].tolist() == months(0)   # passing through still enters it
    assert c[1].tolist() == months()    # ... without spending a month in it
    assert c[2].tolist() == months(0)   # "start" timing: dated in the month of arrival in the job
    assert c[3].tolist() == months(0)   # "end" timing: at least one month in the job
    assert c[4].tolist() == months(0)   # dated in the last month in the job
    assert c[5].tolist() == months(1)


def test_start_timing_with_probability_zero_never_leaves():
    j = Journey((State("search", exits=(Exit("job", "p"),), timing="start", time_limit=4, after_limit="gone"),
                 State("job"), State("gone")), (("search", 1.0),), parameters=fixed(p=0.0))
    c = run(j, [Outcome("s", "occupancy", states=("search",)), Outcome("g", "entry", states=("gone",))], 10)[0, 0]
    assert c[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert c[1].tolist() == months(4)


@pytest.mark.parametrize("p, expected_a, expected_b", [(1.0, [1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1]),
                                                       (0.0, [1] * 6, [0] * 6)])
def test_branch_at_probability_zero_and_one(p, expected_a, expected_b):
    j = Journey((State("a"), State("b")), (("a", 1.0),),
                branches=(Branch(("a", "b"), 3, "b", "q", "promoted"),), parameters=fixed(q=p))
    c = run(j, [Outcome("a", "occupancy", states=("a",)), Outcome("b", "occupancy", states=("b",)),
                Outcome("promoted", "event", event="promoted"), Outcome("ab", "milestone", states=("a", "b"),
                                                                        months=4)], 6)[0, 0]
    assert c[0].tolist() == expected_a  # the branch month (the 3rd in the set) belongs to b
    assert c[1].tolist() == expected_b
    assert c[2].tolist() == ([0, 0, 1, 0, 0, 0] if p else [0] * 6)
    assert c[3].tolist() == [0, 0, 0, 1, 0, 0]  # the run in a set holding both continues


def test_branch_watches_the_run_in_its_set_across_states():
    # a (2 months) -> b by its time limit; the run in {a, b} reaches 4 in the 2nd month of b.
    j = Journey((State("a", time_limit=2, after_limit="b"), State("b"), State("c")), (("a", 1.0),),
                branches=(Branch(("a", "b"), 4, "c", "q"),), parameters=fixed(q=1.0))
    c = run(j, [Outcome("c", "entry", states=("c",))], 8)[0, 0]
    assert c[0].tolist() == months(3, n=8)


def test_window_and_lag():
    j = Journey((State("a"),), (("a", 1.0),))
    c = run(j, [Outcome("occ", "occupancy", states=("a",), window=4, lag=2),
                Outcome("entry", "entry", states=("a",), lag=9), Outcome("entry_late", "entry", states=("a",), lag=10),
                Outcome("census", "status", states=("a",), at_months=(1, 3, 4), window=4, lag=1)],
            10, intake=(1,))[0, 0]
    assert c[0].tolist() == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]  # months 1..4, dated 3..6
    assert c[1].tolist() == months()                         # dated 10: beyond the horizon
    assert c[2].tolist() == months()
    assert c[3].tolist() == months(3, 5)                     # at + 4 falls outside the window


def alternating() -> Journey:
    """a for 2 months, b for 1, a for 2, ... (time limits only)."""
    return Journey((State("a", time_limit=2, after_limit="b"), State("b", time_limit=1, after_limit="a")),
                   (("a", 1.0),))


def test_milestones_consecutive_and_cumulative_and_first_and_every_entries():
    c = run(alternating(), [
        Outcome("run2_every", "milestone", states=("a",), months=2, count="every"),
        Outcome("run2_first", "milestone", states=("a",), months=2),
        Outcome("run3", "milestone", states=("a",), months=3, count="every"),
        Outcome("cum3", "milestone", states=("a",), months=3, consecutive=False),
        Outcome("cum5", "milestone", states=("a",), months=5, consecutive=False, count="every"),
        Outcome("entry_every", "entry", states=("a",), count="every"),
        Outcome("entry_first", "entry", states=("a",)),
        Outcome("entry_set", "entry", states=("a", "b"), count="every"),
    ], 10)[0, 0]
    assert c[0].tolist() == months(1, 4, 7)  # a in months 0,1 / 3,4 / 6,7 / 9
    assert c[1].tolist() == months(1)
    assert c[2].tolist() == months()
    assert c[3].tolist() == months(3)        # the 3rd month in a
    assert c[4].tolist() == months(6)        # cumulative: once per participant
    assert c[5].tolist() == months(0, 3, 6, 9)
    assert c[6].tolist() == months(0)
    assert c[7].tolist() == months(0)        # moving within the set is no entry into it


def test_exits_in_order_and_simultaneous_at_zero_and_one():
    j = Journey((State("a", exits=(Exit("b", "one"), Exit("c", "one")), exits_in_order=True),
                 State("d", exits=(Exit("b", "zero"), Exit("c", "one"))), State("b"), State("c")),
                (("a", 0.5), ("d", 0.5)), parameters=fixed(one=1.0, zero=0.0))
    ms = [Outcome("b", "entry", states=("b",)), Outcome("c", "entry", states=("c",))]
    starts = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    c = run(j, ms, 5, intake=(0, 0), sizes=(3, 2), starts=starts)[0]
    assert c[0, 0].tolist() == [0, 3, 0, 0, 0] and c[0, 1].sum() == 0  # in order: the first decrement takes all
    assert c[1, 1].tolist() == [0, 2, 0, 0, 0] and c[1, 0].sum() == 0


def test_recurrent_event_with_rate_zero_draws_nothing():
    j = Journey((State("a", events=(RecurrentEvent("call", "rate"),), time_limit=3, after_limit="b"), State("b")),
                (("a", 1.0),), parameters=(("rate", Prior(0.0, kind="rate")),))
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    c = simulate_group(j, (Outcome("calls", "event", event="call", count="every"),), np.zeros((2, 1)),
                       np.array([0]), np.array([4]), np.array([[1.0, 0.0]]), 6, rng)
    assert c.sum() == 0
    assert rng.bit_generator.state == before  # no exits, one start state, rate 0: no uniform at all


def test_recurrent_events_are_poisson_per_month():
    # 4000 participant-months at rate 0.3: mean 0.3 per month, sd sqrt(0.3 / 4000) = 0.0087 (4 SE: 0.035).
    j = Journey((State("a", events=(RecurrentEvent("call", "rate"),)),), (("a", 1.0),),
                parameters=(("rate", Prior(0.3, kind="rate")),))
    c = run(j, [Outcome("calls", "event", event="call", count="every"),
                Outcome("first_call", "event", event="call")], 10, sizes=(400,))[0, 0]
    per_month = c[0] / 400
    assert np.all(np.abs(per_month - 0.3) < 4 * np.sqrt(0.3 / 400))
    assert abs(per_month.mean() - 0.3) < 4 * np.sqrt(0.3 / 4000)
    # first calls: 400 * (1 - e^-0.3) e^(-0.3 m) in month m
    expected = 400 * (1 - np.exp(-0.3)) * np.exp(-0.3 * np.arange(10))
    assert np.all(np.abs(c[1] - expected) < 4 * np.sqrt(expected) + 1)


def test_transition_at_the_horizon_is_counted_but_not_the_arrival():
    j = Journey((State("a", exits=(Exit("b", "p", "left"),)), State("b")), (("a", 1.0),), parameters=fixed(p=1.0))
    c = run(j, [Outcome("left", "event", event="left"), Outcome("b", "entry", states=("b",))], 1)[0, 0]
    assert c[0].tolist() == [1] and c[1].tolist() == [0]


def test_start_cycle_is_refused():
    j = Journey((State("a", exits=(Exit("b", "p"),), timing="start"),
                 State("b", exits=(Exit("a", "p"),), timing="start")), (("a", 1.0),), parameters=fixed(p=1.0))
    with pytest.raises(ValueError, match="cycle"):
        compile_machine(j, (), 5)


# --- (c) draw order and reproducibility -----------------------------------------------------------

def test_start_draws_come_first_in_participant_order():
    j = Journey((State("x"), State("y")), (("x", 0.5), ("y", 0.5)))
    rng = np.random.default_rng(11)
    c = simulate_group(j, (Outcome("x", "entry", states=("x",)),), np.zeros((1, 0)), np.array([0, 0]),
                       np.array([3, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]), 2, rng)
    ref = np.random.default_rng(11)
    u = ref.random(5)
    assert c[0, :, 0, 0].tolist() == [int((u[:3] < 0.5).sum()), int((u[3:] < 0.5).sum())]
    assert rng.bit_generator.state == ref.bit_generator.state


def test_one_uniform_per_sojourn_in_a_state_with_exits():
    # p = 1: every sojourn of a or b ends after one month: 6 sojourns in 6 months, one uniform each.
    j = Journey((State("a", exits=(Exit("b", "p"),)), State("b", exits=(Exit("a", "p"),))), (("a", 1.0),),
                parameters=fixed(p=1.0))
    rng = np.random.default_rng(3)
    simulate_group(j, (), np.ones((1, 1)), np.array([0]), np.array([1]), np.array([[1.0, 0.0]]), 6, rng)
    ref = np.random.default_rng(3)
    ref.random(6)
    assert rng.bit_generator.state == ref.bit_generator.state


def test_same_seed_same_counts_and_same_generator_state(colour_kitchen_machine):
    journey, measures = colour_kitchen_machine
    params = draw_parameters(journey, np.random.default_rng(1), 30)
    out = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        counts = simulate_group(journey, measures, params, INTAKE, SIZES, STARTS, N_MONTHS, rng)
        out.append((counts, rng.bit_generator.state))
    assert np.array_equal(out[0][0], out[1][0]) and out[0][0].dtype == np.int32
    assert out[0][1] == out[1][1]
    other = simulate_group(journey, measures, params, INTAKE, SIZES, STARTS, N_MONTHS, np.random.default_rng(8))
    assert not np.array_equal(out[0][0], other)


def test_buffered_uniforms_are_the_sequential_stream(colour_kitchen_machine):
    """Chunks of any size, rewinding by advance or by drawing again: the same counts, and the
    generator left exactly where drawing the consumed uniforms one by one leaves it."""
    from sibsim.engine import _kernel, _prepare, _run_buffered

    journey, measures = colour_kitchen_machine
    params = draw_parameters(journey, np.random.default_rng(1), 30)
    results = []
    for chunk, rewind in ((1 << 16, None), (64, None), (1000, False), (1 << 20, True)):
        counts, args = _prepare(journey, measures, params, INTAKE, SIZES, STARTS, N_MONTHS)
        rng = np.random.default_rng(7)
        used = _run_buffered(rng, args, 30, chunk=chunk, rewind=rewind)
        results.append((counts, used, rng.bit_generator.state))
    counts, used, state = results[0]
    assert used > 30 * 252  # at least one uniform per participant (training has exits)
    for other in results[1:]:
        assert np.array_equal(other[0], counts) and other[1] == used and other[2] == state
    ref = np.random.default_rng(7)
    uni = ref.random(used)  # the stream, drawn in one go: the kernel reads it in order
    assert ref.bit_generator.state == state
    direct, args = _prepare(journey, measures, params, INTAKE, SIZES, STARTS, N_MONTHS)
    assert tuple(_kernel(uni, np.log(1.0 - uni), 0, *args)) == (30, used)
    assert np.array_equal(direct, counts)


def test_draw_parameters_declared_order_fixed_and_given():
    j = Journey((State("a"),), (("a", 1.0),),
                parameters=(("p", Prior(0.3, 0.1)), ("k", Prior(0.5)), ("r", Prior(2.0, 0.5, kind="rate"))))
    got = draw_parameters(j, np.random.default_rng(4), 6)
    ref = np.random.default_rng(4)
    assert np.array_equal(got[:, 0], Prior(0.3, 0.1).draw(ref, 6))
    assert np.array_equal(got[:, 1], np.full(6, 0.5))  # fixed: nothing drawn
    assert np.array_equal(got[:, 2], Prior(2.0, 0.5, kind="rate").draw(ref, 6))
    shared = np.linspace(0.1, 0.6, 6)
    got = draw_parameters(j, np.random.default_rng(4), 6, given={"p": shared})
    ref = np.random.default_rng(4)
    assert np.array_equal(got[:, 0], shared)
    assert np.array_equal(got[:, 2], Prior(2.0, 0.5, kind="rate").draw(ref, 6))  # nothing drawn for p


# --- (d) exit sums ---------------------------------------------------------------------------------

def test_exit_sum_boundary():
    j = Journey((State("ok"), State("a", exits=(Exit("ok", "x"), Exit("ok", "y")))), (("a", 1.0),),
                parameters=fixed(x=0.25, y=0.75))
    check_exit_sums(j, np.array([[0.25, 0.75], [0.25, 0.75]]))  # exactly 1: accepted
    with pytest.raises(ValueError) as err:
        check_exit_sums(j, np.array([[0.25, 0.75], [0.25, 0.75 + 1e-12]]))
    assert str(err.value) == "journey.states[1] (a): exits sum above 1 on path 1: 1.000000000001"
    in_order = Journey((State("ok"), State("a", exits=(Exit("ok", "x"), Exit("ok", "y")), exits_in_order=True)),
                       (("a", 1.0),), parameters=fixed(x=0.9, y=0.9))
    check_exit_sums(in_order, np.array([[0.9, 0.9]]))  # decrements never sum above 1
    with pytest.raises(ValueError, match="exits sum above 1 on path 0"):
        simulate_group(j, (), np.array([[0.5, 0.6]]), np.array([0]), np.array([1]), np.array([[0.0, 1.0]]), 3,
                       np.random.default_rng(0))


# --- (b) Colour Kitchen against the old numpy engine ------------------------------------------------

JOBS = ("job", "job_with_diploma", "long_term_job", "long_term_job_with_diploma")
BENEFITS = ("training", "job_search", "job_search_with_diploma", "relapsed", "relapsed_with_diploma")
#: Colour Kitchen's prior means (scenarios/utrecht_colour_kitchen.toml), fixed: the chain alone is compared.
MEANS = {"diploma": 0.105, "dropout": 0.012, "job_with_diploma": 0.04, "job_without_diploma": 0.025,
         "relapse": 0.035, "relapse_long_term": 0.01, "long_term_contract": 0.49}
INTAKE = np.arange(0, 24, 2)
SIZES = np.full(12, 21, dtype=np.int64)
N_MONTHS = 60
STARTS = np.tile(np.eye(9)[0], (12, 1))


def colour_kitchen(dropout_in_order: bool = True) -> tuple[Journey, tuple[Outcome, ...]]:
    """The scenario's [journey], 4 outcomes and 2 cost occupancies, as dataclasses."""
    journey = colour_kitchen_journey(fixed(**MEANS), dropout_in_order=dropout_in_order)
    measures = (Outcome("diploma", "event", event="diploma"),
                Outcome("job_start", "entry", states=JOBS),
                Outcome("job_sustained", "milestone", states=JOBS, months=6),
                Outcome("long_term_contract", "entry", states=("long_term_job", "long_term_job_with_diploma")),
                CostItem("bijstand", (), states=BENEFITS).as_outcome(),
                CostItem("top-up benefit in work", (), states=JOBS).as_outcome())
    return journey, measures


@pytest.fixture(scope="module")
def colour_kitchen_machine():
    return colour_kitchen()


#: Paths per engine. Power: with a 10 % higher relapse probability the sustained-job total at month 48
#: moves by about 2.5 per path (sd about 7.5 per path), z about 2.5 / (7.5 * sqrt(2 / 4000)) = 15; dropout
#: taken simultaneously instead of after the diploma lowers diplomas by about 1.0 per path (sd 7.3),
#: z about 6: both far beyond the 4-SE bound, so the comparison can fail.
N_PATHS = 4000


@pytest.fixture(scope="module")
def old_engine_counts():
    """(paths, measures, months) summed over cohorts: the old engine's outcomes, bijstand and work months."""
    q = {k: np.full(N_PATHS, v) for k, v in MEANS.items()}
    events, employed = numpy_engine.simulate_group(q, 12, INTAKE, SIZES, N_MONTHS, 6, np.random.default_rng(2015))
    enrolled = (INTAKE[:, None] <= np.arange(N_MONTHS)) * SIZES[:, None]  # participants after intake
    benefits = enrolled[None] - employed
    return np.concatenate([events, benefits[:, :, None], employed[:, :, None]], axis=2).sum(axis=1)


def new_engine_counts(journey, measures, seed=4):
    params = draw_parameters(journey, np.random.default_rng(0), N_PATHS)
    return simulate_group(journey, measures, params, INTAKE, SIZES, STARTS, N_MONTHS,
                          np.random.default_rng(seed)).sum(axis=1)


def max_z(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |difference| / combined SE over measures: mean count per month, totals at months 12..48."""
    worst = 0.0
    for x, y in ((a.astype(float), b.astype(float)),
                 (np.cumsum(a, axis=2)[:, :, [11, 23, 35, 47]].astype(float),
                  np.cumsum(b, axis=2)[:, :, [11, 23, 35, 47]].astype(float))):
        diff = x.mean(axis=0) - y.mean(axis=0)
        se = np.sqrt(x.var(axis=0, ddof=1) / len(x) + y.var(axis=0, ddof=1) / len(y))
        assert np.all(diff[se == 0] == 0), "a month without variance must agree exactly"
        worst = max(worst, float(np.max(np.abs(diff[se > 0]) / se[se > 0])))
    return worst


def test_colour_kitchen_agrees_with_the_old_engine(colour_kitchen_machine, old_engine_counts):
    new = new_engine_counts(*colour_kitchen_machine)
    assert max_z(new, old_engine_counts) < 4


@pytest.mark.parametrize("change", ["relapse +10 %", "dropout not in order"])
def test_the_comparison_has_power(change, old_engine_counts):
    journey, measures = colour_kitchen(dropout_in_order=change != "dropout not in order")
    if change == "relapse +10 %":
        journey = journey.with_parameters({"relapse": Prior(MEANS["relapse"] * 1.1)})
    assert max_z(new_engine_counts(journey, measures), old_engine_counts) > 4


# --- (c) the kernel generated per machine: the generic kernel's counts, bit for bit ---------------

def specialised_equals_generic(journey, measures, params, intake, sizes, starts, n_months, seed) -> None:
    out = []
    for kernel in ("generic", "specialised"):
        rng = np.random.default_rng(seed)
        counts = simulate_group(journey, measures, params, np.asarray(intake), np.asarray(sizes), starts, n_months,
                                rng, kernel=kernel)
        out.append((counts, rng.bit_generator.state))
    assert out[0][0].dtype == out[1][0].dtype == np.int32
    assert np.array_equal(out[0][0], out[1][0])
    assert out[0][1] == out[1][1]  # the same uniforms consumed
    assert out[0][0].any()
    totals_equal_summed_months(journey, measures, params, intake, sizes, starts, n_months, seed, out[0])


def totals_equal_summed_months(journey, measures, params, intake, sizes, starts, n_months, seed, full) -> None:
    """Both kernels asked for some measures as totals before some months (as settlement asks for the
    outcomes): exactly the monthly counts summed, the other measures' monthly counts unchanged, and the
    same uniforms consumed."""
    counts, state = full
    M = len(measures)
    as_totals = tuple(range(0, M, 2)) or (0,)
    before = (0, 1, n_months // 2, n_months - 1, n_months, n_months + 7)
    kept = [e for e in range(M) if e not in as_totals]
    expected = np.stack([counts[:, :, list(as_totals), :min(m, n_months)].astype(np.int64).sum(axis=-1)
                         for m in before], axis=-1)
    for kernel in ("generic", "specialised"):
        rng = np.random.default_rng(seed)
        monthly, totals = simulate_group(journey, measures, params, np.asarray(intake), np.asarray(sizes), starts,
                                         n_months, rng, kernel=kernel, totals=(before, as_totals))
        assert np.array_equal(totals, expected) and totals.dtype == np.float64
        assert np.array_equal(monthly, counts[:, :, kept]) and monthly.dtype == np.int32
        assert rng.bit_generator.state == state


def test_totals_refuse_unsorted_months_and_unknown_measures(colour_kitchen_machine):
    journey, measures = colour_kitchen_machine
    params = draw_parameters(journey, np.random.default_rng(3), 2)
    for totals, rule in ((((12, 6), (0,)), "months must be sorted"), (((6,), (len(measures),)), "measure indices")):
        with pytest.raises(ValueError, match=rule):
            simulate_group(journey, measures, params, INTAKE, SIZES, STARTS, N_MONTHS, np.random.default_rng(0),
                           totals=totals)


def test_specialised_kernel_on_colour_kitchen(colour_kitchen_machine):
    journey, measures = colour_kitchen_machine
    params = draw_parameters(journey, np.random.default_rng(3), 40)
    starts = STARTS.copy()
    starts[::3] = np.eye(9)[[0, 1, 2]].mean(axis=0)  # some cohorts draw their start state
    specialised_equals_generic(journey, measures, params, INTAKE, SIZES, starts, N_MONTHS, seed=11)


def _features(m) -> set[str]:
    """What a generated machine exercises, for a small family covering every branch of the generator."""
    mc = compile_machine(m.journey, m.measures, m.n_months)
    f = set()
    f |= {"two branches in a state"} if np.any(np.diff(mc.sb_ptr) > 1) else set()
    f |= {"branch"} if mc.br_at.size else set()
    f |= {"recurrent"} if any(m.params[0, j] > 0 for j in mc.rec_param) else set()
    f |= {f"kind {k}" for k in mc.kind.tolist()}
    f |= {"cumulative milestone"} if np.any((mc.kind == 2) & (mc.consecutive == 0)) else set()
    f |= {"window"} if np.any(mc.window < m.n_months) else set()
    f |= {"lag"} if np.any(mc.lag > 0) else set()
    f |= {"first"} if np.any(mc.every == 0) else set()
    f |= {"start timing"} if np.any(mc.timing == 1) else set()
    f |= {"time limit"} if np.any(mc.after >= 0) else set()
    n_exits = np.diff(mc.exit_ptr)
    f |= {"exits in order"} if np.any((n_exits > 1) & (mc.in_order == 1)) else set()
    f |= {"simultaneous exits"} if np.any((n_exits > 1) & (mc.in_order == 0)) else set()
    f |= {"transition event"} if np.any(mc.exit_event >= 0) or np.any(mc.br_event >= 0) else set()
    f |= {"start drawn"} if np.count_nonzero(m.starts[0]) > 1 else set()
    return f


@pytest.fixture(scope="module")
def covering_machines():
    """Four generated machines that together exercise everything the first 20 do (each kernel
    compiles once per machine, seconds, and is then cached on disk: the family is kept small)."""
    from tests.machines import sample_machines

    pool = [(m, _features(m)) for m in sample_machines(20)]
    wanted = set().union(*(f for _m, f in pool))
    chosen, covered = [], set()
    def months(m) -> int:  # participant-months per path
        return sum(size * (m.n_months - intake) for intake, size in zip(m.intake_months, m.sizes))

    while covered != wanted or len(chosen) < 4:  # then those with the longest histories
        i = max(range(len(pool)), key=lambda k: (len(pool[k][1] - covered), months(pool[k][0])))
        m, f = pool.pop(i)
        chosen.append(m)
        covered |= f
    return chosen


def test_specialised_kernel_on_generated_machines(covering_machines):
    assert len(covering_machines) <= 6
    for i, m in enumerate(covering_machines):
        params = np.repeat(m.params, 60, axis=0)
        specialised_equals_generic(m.journey, m.measures, params, m.intake_months, m.sizes, m.starts, m.n_months,
                                   seed=100 + i)


def test_kernel_sources_live_in_the_user_cache_and_are_written_once(tmp_path, monkeypatch):
    from sibsim import engine_codegen

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    where = engine_codegen.kernel_dir()
    assert where == tmp_path / "sibsim" / "kernels"
    path = where / "k.py"
    engine_codegen._write_once(path, "x = 1\n")
    stamp = path.stat().st_mtime_ns
    engine_codegen._write_once(path, "x = 1\n")
    assert path.stat().st_mtime_ns == stamp  # untouched: numba's cache of it stays valid
    path.write_text("damaged")
    engine_codegen._write_once(path, "x = 1\n")
    assert path.read_text() == "x = 1\n"
    assert sorted(p.name for p in where.iterdir()) == ["k.py"]  # no temporary file left


def test_kernel_sources_are_only_imported_from_a_folder_only_this_user_can_write(tmp_path, monkeypatch):
    import os

    from sibsim import engine_codegen

    if not hasattr(os, "getuid"):
        pytest.skip("no user ids on this system")
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")  # the user's cache cannot be made under a file: the temporary fallback is used
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(engine_codegen.tempfile, "gettempdir", lambda: str(shared))
    d = engine_codegen.kernel_dir()
    assert d.parent == shared and (d.stat().st_mode & 0o777) == 0o700
    d.chmod(0o777)  # someone else could write into it: never import code from there
    with pytest.raises(OSError, match="no writable directory"):
        engine_codegen.kernel_dir()
