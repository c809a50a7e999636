"""The reference simulator (sibsim.reference), the executable specification of the journey rules.

1. Deterministic machines (probabilities 0 and 1): exact, hand-computed counts, one test per rule
   of the sibsim.journey notes and per outcome kind, each named for what it checks.
2. Closed-form expectations for small chains (time in a state, visits, Poisson event counts,
   milestones, branches), each checked within 4 standard errors. A true mean falls outside with
   probability 6e-5 per check; the sample sizes are chosen so that a wrong rule (an off-by-one
   month, "start" read as "end", a missed pass-through) moves the mean by 10 or more SE.
3. Properties on random valid machines (tests/machines.py): bookkeeping identities every
   history must satisfy, and the same seed giving the same counts.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from sibsim.journey import Branch, Exit, Journey, Outcome, Prior, RecurrentEvent, State
from sibsim.reference import draw_parameters_reference, simulate_group_reference
from tests.machines import colour_kitchen_journey, random_machines

Z = 4.0  # standard errors allowed in the statistical checks


def machine(*states, start="a", branches=(), **parameters):
    """A journey whose parameters are fixed values (``name=value``), in keyword order."""
    return Journey(states=tuple(states), start=((start, 1.0),), branches=tuple(branches),
                   parameters=tuple((k, Prior(mean=v, kind="rate" if k.startswith("rate") else "probability"))
                                    for k, v in parameters.items()))


def run(journey, *measures, n_months=8, intake=0, size=1, seed=0, start=None):
    """Counts (measures, months) of one cohort on one path with the journey's fixed parameter values."""
    params = np.array([[prior.mean for _n, prior in journey.parameters]])
    shares = dict(journey.start if start is None else start)
    starts = np.array([[shares.get(s, 0.0) for s in journey.state_names]])
    counts = simulate_group_reference(journey, measures, params, [intake], [size], starts, n_months,
                                      np.random.default_rng(seed))
    assert counts.dtype == np.int32 and counts.shape == (1, 1, len(measures), n_months)
    return counts[0, 0]


def months_of(row) -> list[int]:
    """The months with an occurrence, repeated by count (a readable exact expectation)."""
    return [m for m, n in enumerate(row) for _ in range(int(n))]


def per_participant(journey, *measures, n, n_months, seed):
    """Totals (n, measures) per participant: n cohorts of one participant each, all at intake 0."""
    params = np.array([[prior.mean for _n, prior in journey.parameters]])
    shares = dict(journey.start)
    starts = np.array([[shares.get(s, 0.0) for s in journey.state_names]] * n)
    counts = simulate_group_reference(journey, measures, params, [0] * n, [1] * n, starts, n_months,
                                      np.random.default_rng(seed))
    return counts[0].sum(axis=2)  # (n, measures)


def assert_mean(values, expected, label=""):
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(values.mean() - expected) <= Z * max(se, 1e-12), \
        f"{label}: mean {values.mean():.5f}, expected {expected:.5f} (SE {se:.5f})"


def occupancy(*states, **kw):
    return Outcome("in_" + "_".join(states), "occupancy", states=states, **kw)


def entry(*states, count="first", **kw):
    return Outcome("entry_" + "_".join(states), "entry", states=states, count=count, **kw)


def event(name, count="every", **kw):
    return Outcome("event_" + name, "event", event=name, count=count, **kw)


# ---------------------------------------------------------------------------------------
# 1. deterministic machines: exact counts
# ---------------------------------------------------------------------------------------
def test_rule1_entry_at_intake_is_dated_in_the_intake_month():
    j = machine(State("a"))
    c = run(j, entry("a"), occupancy("a"), intake=3, n_months=6)
    assert months_of(c[0]) == [3]
    assert months_of(c[1]) == [3, 4, 5]


def test_rule1_start_state_passed_through_is_entered_but_not_occupied():
    j = machine(State("a", timing="start", exits=(Exit("b", "go", event="left"),)), State("b"), go=1.0)
    c = run(j, entry("a"), occupancy("a"), entry("b"), occupancy("b"), event("left"), n_months=4)
    assert months_of(c[0]) == [0]          # entered a in month 0 ...
    assert months_of(c[1]) == []           # ... without spending a month in it
    assert months_of(c[2]) == [0]          # b entered in the same month
    assert months_of(c[3]) == [0, 1, 2, 3]
    assert months_of(c[4]) == [0]          # a "start" exit's event: the month of arrival in b


def test_rule1_chain_of_start_states_is_passed_in_one_month():
    j = machine(State("a", timing="start", exits=(Exit("b", "go"),)),
                State("b", timing="start", exits=(Exit("c", "go"),)), State("c"), go=1.0)
    c = run(j, entry("a"), entry("b"), entry("c"), occupancy("c"), n_months=3)
    assert [months_of(r) for r in c] == [[0], [0], [0], [0, 1, 2]]


def test_rule1_start_state_entered_by_a_time_limit_is_passed_through_in_the_arrival_month():
    j = machine(State("a", time_limit=2, after_limit="b"),
                State("b", timing="start", exits=(Exit("c", "go"),)), State("c"), go=1.0)
    c = run(j, occupancy("a"), entry("b"), occupancy("b"), entry("c"), n_months=5)
    assert [months_of(r) for r in c] == [[0, 1], [2], [], [2]]


def test_rule1_a_set_passed_through_is_entered_once():
    # a -> s (start, in the set) -> t (in the set): one entry into {s, t}, two state entries
    j = machine(State("a", exits=(Exit("s", "go"),)), State("s", timing="start", exits=(Exit("t", "go"),)),
                State("t"), go=1.0)
    c = run(j, entry("s", "t", count="every"), entry("s"), entry("t"), n_months=4)
    assert [months_of(r) for r in c] == [[1], [1], [1]]


def test_rule5_end_exit_moves_the_participant_next_month_and_dates_its_event_in_the_last_month():
    j = machine(State("a", exits=(Exit("b", "go", event="left"),)), State("b"), go=1.0)
    c = run(j, occupancy("a"), entry("b"), occupancy("b"), event("left"), n_months=4)
    assert [months_of(r) for r in c] == [[0], [1], [1, 2, 3], [0]]


def test_rule5_start_state_with_a_sure_stay_is_occupied():
    j = machine(State("a", timing="start", exits=(Exit("b", "never"),)), State("b"), never=0.0)
    c = run(j, occupancy("a"), entry("b"), n_months=3)
    assert [months_of(r) for r in c] == [[0, 1, 2], []]


def test_rule5_exits_in_order_take_the_first_that_fires():
    j = machine(State("a", exits=(Exit("b", "p1"), Exit("c", "p2")), exits_in_order=True), State("b"), State("c"),
                p1=1.0, p2=1.0)
    c = run(j, entry("b"), entry("c"), n_months=3)
    assert [months_of(r) for r in c] == [[1], []]
    j = machine(State("a", exits=(Exit("b", "p1"), Exit("c", "p2")), exits_in_order=True), State("b"), State("c"),
                p1=0.0, p2=1.0)
    c = run(j, entry("b"), entry("c"), n_months=3)
    assert [months_of(r) for r in c] == [[], [1]]


def test_rule5_simultaneous_exits_with_the_stay_as_complement():
    j = machine(State("a", exits=(Exit("b", "p1"), Exit("c", "p2"))), State("b"), State("c"), p1=0.0, p2=1.0)
    c = run(j, entry("b"), entry("c"), size=5, n_months=3)
    assert [months_of(r) for r in c] == [[], [1] * 5]


def test_rule5_simultaneous_exits_summing_above_one_are_an_error_not_clipped():
    j = machine(State("a", exits=(Exit("b", "p1"), Exit("c", "p2"))), State("b"), State("c"), p1=0.6, p2=0.5)
    with pytest.raises(ValueError, match="sum to"):
        run(j, entry("b"))


def test_rule5_cycle_among_start_states_is_an_error():
    j = machine(State("a", timing="start", exits=(Exit("b", "go"),)),
                State("b", timing="start", exits=(Exit("a", "go"),)), go=1.0)
    with pytest.raises(ValueError, match="cycle"):
        run(j, entry("a"))


def test_rule6_time_limit_moves_after_the_limit_th_month():
    j = machine(State("a", time_limit=3, after_limit="b"), State("b"))
    c = run(j, occupancy("a"), entry("b"), n_months=6)
    assert [months_of(r) for r in c] == [[0, 1, 2], [3]]


def test_rule6_an_exit_that_fires_wins_over_the_time_limit():
    j = machine(State("a", exits=(Exit("c", "go"),), time_limit=1, after_limit="b"), State("b"), State("c"), go=1.0)
    c = run(j, entry("b"), entry("c"), n_months=3)
    assert [months_of(r) for r in c] == [[], [1]]


def test_rule6_time_limit_of_a_start_state():
    j = machine(State("a", timing="start", exits=(Exit("c", "never"),), time_limit=2, after_limit="b"),
                State("b"), State("c"), never=0.0)
    c = run(j, occupancy("a"), entry("b"), n_months=5)
    assert [months_of(r) for r in c] == [[0, 1], [2]]


def test_rule3_branch_moves_the_participant_for_the_month_it_fires_in():
    j = machine(State("a"), State("b"), branches=[Branch(("a",), 3, "b", "q", event="promoted")], q=1.0)
    c = run(j, occupancy("a"), entry("b"), occupancy("b"), event("promoted"), n_months=5)
    assert [months_of(r) for r in c] == [[0, 1], [2], [2, 3, 4], [2]]


def test_rule3_branch_at_month_one_fires_in_the_arrival_month():
    j = machine(State("a", exits=(Exit("b", "go"),)), State("b"), State("c"),
                branches=[Branch(("b",), 1, "c", "q")], go=1.0, q=1.0)
    c = run(j, entry("b"), occupancy("b"), entry("c"), n_months=3)
    assert [months_of(r) for r in c] == [[1], [], [1]]


def test_rule3_run_of_a_set_continues_across_its_states():
    # a (1 month) then b, both in the set: the run reaches 3 in month 2
    j = machine(State("a", time_limit=1, after_limit="b"), State("b"), State("c"),
                branches=[Branch(("a", "b"), 3, "c", "q")], q=1.0)
    c = run(j, occupancy("b"), entry("c"), n_months=5)
    assert [months_of(r) for r in c] == [[1], [2]]


def test_rule3_branch_does_not_fire_for_participants_already_in_its_target():
    # CK's long-term contract: the set holds the target; who is in the target is not moved again
    j = machine(State("a", time_limit=1, after_limit="b"), State("b"),
                branches=[Branch(("a", "b"), 2, "b", "q", event="fired")], q=1.0)
    c = run(j, event("fired"), entry("b"), occupancy("b"), n_months=4)
    assert [months_of(r) for r in c] == [[], [1], [1, 2, 3]]


def test_rule3_first_branch_that_fires_wins_and_at_most_one_fires():
    br = [Branch(("a",), 2, "b", "q1", event="to_b"), Branch(("a",), 2, "c", "q2", event="to_c")]
    j = machine(State("a"), State("b"), State("c"), branches=br, q1=1.0, q2=1.0)
    c = run(j, event("to_b"), event("to_c"), n_months=4)
    assert [months_of(r) for r in c] == [[1], []]
    j = machine(State("a"), State("b"), State("c"), branches=br, q1=0.0, q2=1.0)  # the first fails: the next
    c = run(j, event("to_b"), event("to_c"), n_months=4)
    assert [months_of(r) for r in c] == [[], [1]]


def test_rule3_at_most_one_branch_even_if_the_target_qualifies_for_another():
    br = [Branch(("a",), 1, "b", "q", event="ab"), Branch(("b",), 1, "c", "q", event="bc")]
    j = machine(State("a"), State("b"), State("c"), branches=br, q=1.0)
    c = run(j, event("ab"), event("bc"), occupancy("b"), n_months=3)
    # month 0: a -> b (the run in {b} is 1 but no second branch this month); {b}'s run is 2 in month 1
    assert [months_of(r) for r in c] == [[0], [], [0, 1, 2]]


def test_rule3_branch_to_a_start_state_passes_through_it():
    j = machine(State("a"), State("s", timing="start", exits=(Exit("e", "go", event="out"),)), State("e"),
                branches=[Branch(("a",), 2, "s", "q")], go=1.0, q=1.0)
    c = run(j, entry("s"), occupancy("s"), entry("e"), event("out"), occupancy("a"), n_months=4)
    assert [months_of(r) for r in c] == [[1], [], [1], [1], [0]]


def test_rule3_a_branch_out_of_a_set_takes_the_month_out_of_it():
    # the branch month belongs to c: the cumulative months in {a} do not count it
    j = machine(State("a"), State("c"), branches=[Branch(("a",), 2, "c", "q")], q=1.0)
    cumulative = Outcome("cum2", "milestone", states=("a",), months=2, consecutive=False)
    c = run(j, cumulative, occupancy("a"), n_months=4)
    assert [months_of(r) for r in c] == [[], [0]]


def test_rule4_recurrent_events_happen_only_in_months_in_the_state():
    j = machine(State("a", time_limit=3, after_limit="b", events=(RecurrentEvent("ev", "rate"),)), State("b"),
                rate=4.0)
    c = run(j, event("ev"), event("ev", count="first"), size=200, n_months=6)
    # P(no event among 200 participants in a month) = e^-800: every month in a has events, none after
    assert c[0, :3].min() > 0 and c[0, 3:].sum() == 0
    assert c[1, 3:].sum() == 0 and c[1].sum() <= 200  # a first event at most once per participant


def test_rule4_recurrent_events_at_rate_zero_never_happen():
    j = machine(State("a", events=(RecurrentEvent("ev", "rate"),)), rate=0.0)
    assert run(j, event("ev"), size=10).sum() == 0


def test_rule2_runs_and_milestones_in_a_cycle():
    # a a b a a b ...: a is held 2 months, then b 1 month
    j = machine(State("a", time_limit=2, after_limit="b"), State("b", time_limit=1, after_limit="a"))
    run2_every = Outcome("r2e", "milestone", states=("a",), months=2, count="every")
    run2_first = Outcome("r2f", "milestone", states=("a",), months=2, count="first")
    run3 = Outcome("r3", "milestone", states=("a",), months=3, count="every")
    cum3 = Outcome("c3", "milestone", states=("a",), months=3, consecutive=False, count="every")
    c = run(j, run2_every, run2_first, run3, cum3, entry("a", count="every"), entry("a"), occupancy("a"),
            n_months=9)
    assert [months_of(r) for r in c] == [[1, 4, 7], [1], [], [3], [0, 3, 6], [0], [0, 1, 3, 4, 6, 7]]


def test_rule2_a_start_state_outside_the_set_passed_through_breaks_the_run():
    # x ends every month in y ("start", outside {x}), which sends the participant straight back to x
    j = machine(State("x", exits=(Exit("y", "go"),)), State("y", timing="start", exits=(Exit("x", "go"),)),
                start="x", go=1.0)
    run2 = Outcome("r2", "milestone", states=("x",), months=2, count="every")
    cum2 = Outcome("c2", "milestone", states=("x",), months=2, consecutive=False)
    c = run(j, occupancy("x"), entry("x", count="every"), entry("y", count="every"), run2, cum2, n_months=4)
    assert [months_of(r) for r in c] == [[0, 1, 2, 3], [0, 1, 2, 3], [1, 2, 3], [], [1]]
    both = Outcome("r2xy", "milestone", states=("x", "y"), months=2, count="every")
    assert months_of(run(j, both, n_months=4)[0]) == [1]  # a set holding both states keeps its run


def test_milestone_of_one_month_is_reached_in_the_entry_month():
    j = machine(State("a", exits=(Exit("b", "go"),)), State("b"), go=1.0)
    c = run(j, Outcome("m1", "milestone", states=("b",), months=1), n_months=3)
    assert months_of(c[0]) == [1]


def test_status_counts_the_census_at_intake_plus_k():
    j = machine(State("a", time_limit=2, after_limit="b"), State("b"))
    status = Outcome("census", "status", states=("b",), at_months=(0, 2, 4))
    c = run(j, status, intake=1, size=3, n_months=7)
    assert months_of(c[0]) == [3] * 3 + [5] * 3  # intake + 2 and intake + 4; not intake + 0 (still in a)


def test_window_keeps_months_intake_to_intake_plus_window_minus_one_and_lag_dates_later():
    j = machine(State("a"))
    c = run(j, occupancy("a", window=3), occupancy("a", window=3, lag=2), occupancy("a", lag=5), intake=1,
            n_months=8)
    assert [months_of(r) for r in c] == [[1, 2, 3], [3, 4, 5], [6, 7]]  # the lag pushes the rest past the horizon


def test_window_on_first_counts_the_first_occurrence_only_if_inside_it():
    j = machine(State("a", time_limit=3, after_limit="b"), State("b"))
    c = run(j, entry("b", window=3), entry("b", window=4), n_months=6)
    assert [months_of(r) for r in c] == [[], [3]]


def test_horizon_months_from_n_months_on_are_not_simulated_or_counted():
    j = machine(State("a", exits=(Exit("b", "go", event="left"),), time_limit=1, after_limit="b"), State("b"),
                go=1.0)
    c = run(j, event("left"), entry("b"), n_months=1)
    assert [months_of(r) for r in c] == [[0], []]  # the exit at the end of the last month counts, b's entry not
    c = run(j, entry("a"), intake=3, n_months=3)   # a cohort at the horizon: nothing
    assert c.sum() == 0


def test_event_first_and_every_of_transition_events():
    j = machine(State("a", time_limit=1, after_limit="b"), State("b", exits=(Exit("a", "go", event="back"),)),
                go=1.0)
    c = run(j, event("back", count="first"), event("back", count="every"), n_months=7)
    assert [months_of(r) for r in c] == [[1], [1, 3, 5]]


def test_start_distribution_per_cohort():
    j = machine(State("a"), State("b"))
    c = run(j, occupancy("a"), occupancy("b"), size=4, n_months=2, start=(("b", 1.0),))
    assert [months_of(r) for r in c] == [[], [0, 0, 0, 0, 1, 1, 1, 1]]


def test_paths_use_their_own_parameters_and_cohorts_their_own_intake():
    j = machine(State("a", exits=(Exit("b", "go"),)), State("b"), go=0.5)
    params = np.array([[0.0], [1.0]])
    counts = simulate_group_reference(j, (entry("b"),), params, [0, 2], [3, 2], np.array([[1.0, 0.0]] * 2), 5,
                                      np.random.default_rng(0))
    assert counts.shape == (2, 2, 1, 5)
    assert counts[0].sum() == 0
    assert months_of(counts[1, 0, 0]) == [1, 1, 1] and months_of(counts[1, 1, 0]) == [3, 3]


def colour_kitchen(**p) -> Journey:
    """The Colour Kitchen journey as in scenarios/utrecht_colour_kitchen.toml, with fixed parameters."""
    return colour_kitchen_journey(tuple((k, Prior(v)) for k, v in p.items()))


JOBS = ("job", "job_with_diploma", "long_term_job", "long_term_job_with_diploma")
CK_MEASURES = (event("diploma", count="first"), entry(*JOBS), Outcome("sustained", "milestone", states=JOBS, months=6),
               entry(*JOBS[2:]), occupancy(*JOBS))


def test_colour_kitchen_deterministic_journeys():
    sure = dict(diploma=1.0, dropout=0.0, job_with_diploma=1.0, job_without_diploma=0.0, relapse=0.0,
                relapse_long_term=0.0, long_term_contract=1.0)
    c = run(colour_kitchen(**sure), *CK_MEASURES, n_months=10)
    # diploma in month 0; search from month 1, a job starting at once; 6 months in work in month 6
    assert [months_of(r) for r in c] == [[0], [1], [6], [6], list(range(1, 10))]
    # no diploma, no dropout: the 12-month training limit, then a job at once; the job ends
    # at the end of month 12 (relapse 1): month 13 on benefits, month 14 a new job
    sure.update(diploma=0.0, job_without_diploma=1.0, relapse=1.0)
    c = run(colour_kitchen(**sure), *CK_MEASURES, entry(*JOBS, count="every"), n_months=16)
    assert [months_of(r) for r in c] == [[], [12], [], [], [12, 14], [12, 14]]


# ---------------------------------------------------------------------------------------
# 2. closed-form expectations
# ---------------------------------------------------------------------------------------
def test_colour_kitchen_diploma_share_closed_form():
    # diploma first, then dropout among the rest, for at most 12 months:
    # P(diploma) = d * sum_{k<12} ((1-d)(1-dropout))^k, about 0.70 (the published target)
    p = dict(diploma=0.105, dropout=0.012, job_with_diploma=0.04, job_without_diploma=0.025, relapse=0.035,
             relapse_long_term=0.01, long_term_contract=0.49)
    totals = per_participant(colour_kitchen(**p), *CK_MEASURES[:2], n=3000, n_months=13, seed=10)
    q = (1 - p["diploma"]) * (1 - p["dropout"])
    assert_mean(totals[:, 0], p["diploma"] * (1 - q**12) / (1 - q), "diploma")


@pytest.mark.parametrize("timing", ["end", "start"])
def test_expected_months_in_a_state_before_absorption_is_geometric(timing):
    p, horizon, n = 0.2, 80, 4000
    j = machine(State("a", timing=timing, exits=(Exit("b", "p"),)), State("b"), p=p)
    months = per_participant(j, occupancy("a"), n=n, n_months=horizon, seed=11)[:, 0]
    # "end": T ~ Geometric(p) on 1, 2, ...: E = 1/p; "start": the arrival month's draw too: E = (1-p)/p;
    # both truncated at the horizon ((1-p)^80 ~ 2e-8)
    expected = 1 / p if timing == "end" else (1 - p) / p
    assert_mean(months, expected, timing)  # the two readings differ by 1 month, about 14 SE here


def test_expected_months_with_a_time_limit():
    p, limit, n = 0.15, 5, 4000
    j = machine(State("a", exits=(Exit("c", "p"),), time_limit=limit, after_limit="b"), State("b"), State("c"), p=p)
    totals = per_participant(j, occupancy("a"), entry("b"), n=n, n_months=10, seed=12)
    assert_mean(totals[:, 0], sum((1 - p) ** k for k in range(limit)), "months in a")
    assert_mean(totals[:, 1], (1 - p) ** limit, "reaching the limit")


def two_state_forward(a, b, horizon):
    """Expected entries per month into A and B, and P(in A), for A ("end", exit a) <-> B ("start", exit b).

    Written from the monthly chain, independently of the simulator: at the end of a month in A the
    participant leaves with probability a; arriving in B it passes straight back to A with
    probability b (an entry into both, the month spent in A); in B at the start of a later month it
    leaves for A with probability b. Starts in A in month 0.
    """
    in_a, in_b = 1.0, 0.0
    entries_a, entries_b, occupancy_a = [1.0], [0.0], [1.0]
    for _month in range(1, horizon):
        to_b = in_a * a                      # arrivals in B this month
        back = to_b * b + in_b * b           # arrivals in A this month
        entries_a.append(back)
        entries_b.append(to_b)
        in_a, in_b = in_a * (1 - a) + back, to_b * (1 - b) + in_b * (1 - b)
        occupancy_a.append(in_a)
    return np.array(entries_a), np.array(entries_b), np.array(occupancy_a)


def test_expected_visits_in_a_recurrent_two_state_chain():
    a, b, horizon, n = 0.3, 0.4, 24, 3000
    j = machine(State("a", exits=(Exit("b", "a"),)), State("b", timing="start", exits=(Exit("a", "b"),)), a=a, b=b)
    totals = per_participant(j, entry("a", count="every"), entry("b", count="every"), occupancy("a"),
                             n=n, n_months=horizon, seed=13)
    e_a, e_b, occ = two_state_forward(a, b, horizon)
    assert_mean(totals[:, 0], e_a.sum(), "visits to a")
    assert_mean(totals[:, 1], e_b.sum(), "visits to b")
    assert_mean(totals[:, 2], occ.sum(), "months in a")


def test_poisson_event_counts_mean_and_variance():
    rate, horizon, n = 0.3, 10, 4000
    j = machine(State("a", events=(RecurrentEvent("ev", "rate"),)), rate=rate)
    totals = per_participant(j, event("ev"), event("ev", count="first"), n=n, n_months=horizon, seed=14)
    lam = rate * horizon  # a Poisson(rate) per month over 10 months: Poisson(3)
    assert_mean(totals[:, 0], lam, "events")
    # the sample variance of a Poisson(lam): its variance is (lam + 2 lam^2) / n
    assert abs(totals[:, 0].var(ddof=1) - lam) <= Z * np.sqrt((lam + 2 * lam**2) / n)
    assert_mean(totals[:, 1], 1 - np.exp(-lam), "first event")


def test_consecutive_milestone_probability():
    p, d, n = 0.1, 6, 4000
    j = machine(State("a", exits=(Exit("b", "p"),)), State("b"), p=p)
    reached = per_participant(j, Outcome("d", "milestone", states=("a",), months=d), n=n, n_months=12, seed=15)
    assert_mean(reached[:, 0], (1 - p) ** (d - 1), "milestone")  # d months in a: d - 1 stays


def test_branch_probability_after_a_duration():
    p, q, d, n = 0.1, 0.49, 4, 4000
    j = machine(State("a", exits=(Exit("c", "p"),)), State("b"), State("c"),
                branches=[Branch(("a",), d, "b", "q")], p=p, q=q)
    totals = per_participant(j, entry("b"), occupancy("a"), n=n, n_months=10, seed=16)
    assert_mean(totals[:, 0], (1 - p) ** (d - 1) * q, "branch")
    # months in a: d - 1 months surely-or-geometric, then those not moved stay until their exit
    stay = sum((1 - p) ** k for k in range(d - 1))
    rest = (1 - p) ** (d - 1) * (1 - q) * sum((1 - p) ** k for k in range(10 - (d - 1)))
    assert_mean(totals[:, 1], stay + rest, "months in a")


def test_exits_in_order_are_decrements():
    p1, p2, n = 0.3, 0.5, 4000
    for in_order, expected in ((True, (p1, (1 - p1) * p2)), (False, (p1, p2))):
        j = machine(State("a", exits=(Exit("b", "p1"), Exit("c", "p2")), exits_in_order=in_order, time_limit=1,
                          after_limit="d"), State("b"), State("c"), State("d"), p1=p1, p2=p2)
        totals = per_participant(j, entry("b"), entry("c"), n=n, n_months=2, seed=17)
        assert_mean(totals[:, 0], expected[0], f"first exit, in order {in_order}")
        assert_mean(totals[:, 1], expected[1], f"second exit, in order {in_order}")


def test_start_shares_are_drawn_per_participant():
    j = Journey(states=(State("a"), State("b")), start=(("a", 0.3), ("b", 0.7)))
    counts = simulate_group_reference(j, (occupancy("a"),), np.zeros((1, 0)), [0], [5000], np.array([[0.3, 0.7]]),
                                      1, np.random.default_rng(18))
    share = counts.sum() / 5000
    assert abs(share - 0.3) <= Z * np.sqrt(0.3 * 0.7 / 5000)


def test_draw_parameters_reference_in_declared_order():
    j = machine(State("a"), diploma=0.0, rate_ev=0.0)
    j = j.with_parameters({"diploma": Prior(0.2, 0.05), "rate_ev": Prior(0.5, 0.1, kind="rate")})
    draws = draw_parameters_reference(j, np.random.default_rng(19), 4000)
    assert draws.shape == (4000, 2)
    for col, (mean, sd) in enumerate(((0.2, 0.05), (0.5, 0.1))):
        assert abs(draws[:, col].mean() - mean) <= Z * sd / np.sqrt(4000)
        assert abs(draws[:, col].std() - sd) <= 0.1 * sd
    assert np.all((draws[:, 0] > 0) & (draws[:, 0] < 1))
    # the same order as drawing each prior in turn from the same generator
    rng = np.random.default_rng(19)
    first = j.prior("diploma").draw(rng, 4000)
    np.testing.assert_array_equal(draws[:, 0], first)


# ---------------------------------------------------------------------------------------
# 3. properties on random machines
# ---------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_machines())
def test_random_machines_keep_the_books(m):
    every_state = m.journey.state_names
    extra = (occupancy(*every_state), entry(*every_state))
    counts = simulate_group_reference(m.journey, m.measures + extra, m.params, m.intake_months, m.sizes, m.starts,
                                      m.n_months, np.random.default_rng(20))
    again = simulate_group_reference(m.journey, m.measures + extra, m.params, m.intake_months, m.sizes, m.starts,
                                     m.n_months, np.random.default_rng(20))
    np.testing.assert_array_equal(counts, again)  # the injected generator is the only randomness
    assert counts.min() >= 0
    for c, (intake, size) in enumerate(zip(m.intake_months, m.sizes)):
        alive = np.array([size if month >= intake else 0 for month in range(m.n_months)])
        np.testing.assert_array_equal(counts[0, c, -2], alive)  # every participant is in one state a month
        assert months_of(counts[0, c, -1]) == [intake] * size  # entered at intake, never from outside again
        for k, measure in enumerate(m.measures):
            row = counts[0, c, k]
            assert row[:intake + measure.lag].sum() == 0  # nothing dated before intake + lag
            if measure.kind in ("entry", "milestone") and (measure.count == "first" or not measure.consecutive
                                                           and measure.kind == "milestone"):
                assert row.sum() <= size
            if measure.kind in ("occupancy", "status"):
                assert np.all(row <= size)
