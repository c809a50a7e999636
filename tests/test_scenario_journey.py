"""The journey format's rules in the scenario loader, each at its exact boundary.

Every case perturbs ``tests/fixtures/valid_minimal.toml`` (a small Colour Kitchen: training with a
time limit, two job searches with ``"start"`` timing, a job, a long-term job reached by a branch) and
checks the ONE line reported, ``file: field: rule, got value``, or that the value on the boundary loads.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
from scipy.stats import beta as beta_dist

from sibsim.errors import ScenarioError
from sibsim.journey import Prior
from sibsim.scenario import contract_from_dict

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BASE = tomllib.loads((FIXTURES / "valid_minimal.toml").read_text(encoding="utf-8"))


def doc():
    return copy.deepcopy(BASE)


def problems(d) -> list[str]:
    try:
        contract_from_dict(d, "f.toml")
    except ScenarioError as exc:
        return [p.removeprefix("f.toml: ") for p in exc.problems]
    return []


def state(d, name):
    return next(s for s in d["journey"]["states"] if s["name"] == name)


def test_the_base_loads_into_the_journey_dataclasses():
    c = contract_from_dict(doc(), "f.toml")
    j = c.journey
    assert j.state_names == ("training", "job_search", "job_search_with_diploma", "job", "long_term_job")
    assert j.start == (("training", 1.0),)
    assert j.parameter_names == ("diploma", "dropout", "job_with_diploma", "job_without_diploma", "relapse",
                                 "long_term_contract")
    assert j.state("training").time_limit == 6 and j.state("training").exits_in_order
    assert j.state("job_search").timing == "start"
    assert j.prior("job_with_diploma") == Prior.from_alpha_beta(4.0, 96.0)
    assert c.outcome_names == ("diploma", "job_sustained") and c.warnings == ()
    assert c.comparison.journey.start == (("job_search", 1.0),)
    assert c.comparison.overrides == ("diploma", "dropout", "job_with_diploma", "job_without_diploma",
                                      "long_term_contract")
    assert c.comparison.journey.prior("job_without_diploma") == Prior(0.01)
    assert c.comparison.journey.prior("relapse") == j.prior("relapse")  # not overridden: the same prior


# --- start distributions ------------------------------------------------------------------------
@pytest.mark.parametrize("shares,ok", [((0.5, 0.5), True), ((0.5, 0.5 + 0.9e-9), True),
                                       ((0.5, 0.5 + 1.1e-9), False), ((0.5, 0.4), False)])
def test_start_shares_sum_to_one_within_1e_9(shares, ok):
    d = doc()
    d["journey"]["start"] = {"training": shares[0], "job_search": shares[1]}
    got = problems(d)
    assert got == [] if ok else got == [f"journey.start: shares must add up to 1, got {sum(shares):.12g}"]


def test_start_table_loads_as_a_distribution():
    d = doc()
    d["journey"]["start"] = {"training": 0.25, "job_search": 0.75}
    assert contract_from_dict(d).journey.start == (("training", 0.25), ("job_search", 0.75))


# --- parameters ---------------------------------------------------------------------------------
def test_probability_bounds():
    d = doc()
    d["journey"]["parameters"]["dropout"] = 1
    assert problems(d) == []
    d["journey"]["parameters"]["dropout"] = 1.0000001
    assert problems(d) == ["journey.parameters.dropout: must be <= 1, got 1.0000001"]


def test_beta_prior_needs_sd_squared_below_mean_times_one_minus_mean():
    d = doc()
    d["journey"]["parameters"]["long_term_contract"] = {"mean": 0.5, "sd": 0.4999}
    assert problems(d) == []
    d["journey"]["parameters"]["long_term_contract"] = {"mean": 0.5, "sd": 0.5}  # sd^2 = mean(1 - mean) = 0.25
    assert problems(d) == ["journey.parameters.long_term_contract.sd: must be < sqrt(mean*(1-mean)) = 0.5 for a "
                           "Beta prior with mean 0.5, got 0.5"]


def _with_rate(rate):
    d = doc()
    d["journey"]["parameters"]["interviews"] = rate
    state(d, "job_search")["events"] = [{"event": "interview", "rate": "interviews"}]
    return d


def test_rate_parameters_are_gamma_priors_or_numbers_at_least_zero():
    c = contract_from_dict(_with_rate({"mean": 0.5, "sd": 0.2, "kind": "rate"}))
    assert c.journey.prior("interviews") == Prior(0.5, 0.2, "rate")
    assert contract_from_dict(_with_rate(0)).journey.prior("interviews") == Prior(0.0, 0.0, "rate")
    assert contract_from_dict(_with_rate(2.5)).journey.prior("interviews") == Prior(2.5, 0.0, "rate")  # > 1: a rate
    assert problems(_with_rate(-0.1)) == ["journey.parameters.interviews: must be >= 0, got -0.1"]


def test_gamma_prior_needs_a_positive_mean_when_uncertain():
    assert problems(_with_rate({"mean": 0, "sd": 0, "kind": "rate"})) == []
    assert problems(_with_rate({"mean": 0, "sd": 0.1, "kind": "rate"})) == [
        "journey.parameters.interviews.mean: must be > 0 for a Gamma prior (sd > 0), got 0"]


def test_inline_exit_probability_becomes_a_parameter_named_after_the_exit():
    d = doc()
    state(d, "job")["exits"][0]["probability"] = {"mean": 0.03, "sd": 0.01}
    c = contract_from_dict(d)
    assert c.journey.parameter_names[-1] == "job->job_search"
    assert c.journey.state("job").exits[0].probability == "job->job_search"
    assert c.journey.prior("job->job_search") == Prior(0.03, 0.01)
    d["comparison"]["parameters"]["job->job_search"] = 0.05  # overridable by that name
    assert contract_from_dict(d).comparison.journey.prior("job->job_search") == Prior(0.05)


def test_inline_name_taken_by_a_declared_parameter():
    d = doc()
    d["journey"]["parameters"]["job->job_search"] = 0.02
    state(d, "job")["exits"][0]["probability"] = 0.03
    assert problems(d) == ["journey.states[3].exits[0].probability: an inline probability is named "
                           "'job->job_search', already the name of a parameter: name a parameter of "
                           "[journey.parameters] instead"]


def test_parameter_used_both_as_a_probability_and_as_a_rate():
    d = doc()
    state(d, "job_search")["events"] = [{"event": "interview", "rate": "relapse"}]
    assert problems(d) == ["journey.parameters.relapse: must be used as a probability or as a rate, not both, "
                           "got a probability in journey.states[3].exits[0].probability and a rate in "
                           "journey.states[1].events[0].rate"]


def test_rate_parameter_named_as_a_probability():
    d = _with_rate({"mean": 0.5, "sd": 0.2, "kind": "rate"})
    d["journey"]["states"][3]["exits"][0]["probability"] = "interviews"
    d["journey"]["states"][1]["events"] = []
    assert problems(d) == ["journey.states[3].exits[0].probability: must name a probability parameter, got rate "
                           "parameter 'interviews'"]


def test_probability_prior_named_as_a_rate():
    d = _with_rate({"mean": 0.5, "sd": 0.2})
    assert problems(d) == ["journey.states[1].events[0].rate: must name a rate parameter ({mean, sd, kind = "
                           "\"rate\"} or a number), got probability parameter 'interviews'"]


# --- unknown and duplicate names ----------------------------------------------------------------
STATES = "states: job, job_search, job_search_with_diploma, long_term_job, training"


@pytest.mark.parametrize("where,field", [
    (lambda d: state(d, "job")["exits"][0].__setitem__("to", "jobb"), "journey.states[3].exits[0].to"),
    (lambda d: state(d, "training").__setitem__("after_limit", "jobb"), "journey.states[0].after_limit"),
    (lambda d: d["journey"]["branches"][0].__setitem__("to", "jobb"), "journey.branches[0].to"),
    (lambda d: d["journey"]["branches"][0].__setitem__("states", ["jobb"]), "journey.branches[0].states[0]"),
    (lambda d: d["journey"].__setitem__("start", "jobb"), "journey.start"),
    (lambda d: d["outcomes"]["job_sustained"].__setitem__("states", ["job", "jobb"]), "outcomes.job_sustained.states[1]"),
    (lambda d: d["costs"][0].__setitem__("states", ["jobb"]), "costs[0].states[0]"),
    (lambda d: d["comparison"].__setitem__("start", "jobb"), "comparison.start"),
    (lambda d: d["cohorts"][1].__setitem__("start", {"jobb": 1.0}), "cohorts[1].start.jobb"),
])
def test_unknown_state_names(where, field):
    d = doc()
    where(d)
    assert problems(d) == [f"{field}: unknown state 'jobb' ({STATES})"]


def test_unknown_parameter_names():
    names = "parameters: diploma, dropout, job_with_diploma, job_without_diploma, long_term_contract, relapse"
    d = doc()
    state(d, "job")["exits"][0]["probability"] = "relapse_rate"
    assert problems(d) == [f"journey.states[3].exits[0].probability: unknown parameter 'relapse_rate' ({names})"]
    d = doc()
    d["comparison"]["parameters"]["relapse_long"] = 0.1
    d["comparison"]["shared"] = ["relaps"]
    assert problems(d) == [f"comparison.parameters.relapse_long: unknown parameter 'relapse_long' ({names})",
                           f"comparison.shared[0]: unknown parameter 'relaps' ({names})"]


def test_unknown_event_names():
    d = doc()
    d["outcomes"]["diploma"]["event"] = "diplomas"
    d["costs"].append({"name": "exam fee", "event": "exam", "bands": [{"group": "all", "amount": 50.0, "share": 1.0}]})
    assert problems(d) == ["outcomes.diploma.event: unknown event 'diplomas' (events: diploma)",
                           "costs[1].event: unknown event 'exam' (events: diploma)"]


@pytest.mark.parametrize("where,field,rule", [
    (("payer", "rate_card", "housing"), "payer.rate_card.housing", "unknown outcome 'housing' (outcomes: diploma, job_sustained)"),
    (("analysis", "primary_outcome"), "analysis.primary_outcome", "must be one of diploma, job_sustained, got string 'housing'"),
])
def test_unknown_outcome_names(where, field, rule):
    d = doc()
    d.setdefault(where[0], {})
    node = d[where[0]]
    for key in where[1:-1]:
        node = node[key]
    node[where[-1]] = "housing" if where[-1] == "primary_outcome" else 100
    assert problems(d) == [f"{field}: {rule}"]


@pytest.mark.parametrize("term,extra", [
    ("tiers", {"tiers": [{"outcome": "housing", "measure": "difference", "points": [[0.1, 100]]}]}),
    ("trigger", {"trigger": {"outcome": "housing", "measure": "difference", "follow_up_months": 6,
                             "cohort_threshold": 0.1, "pooled_threshold": 0.1, "price": 100}}),
    ("review", {"review": {"month": 6, "outcome": "housing", "measure": "difference", "floor": 0}}),
])
def test_unknown_outcome_in_tiers_trigger_review(term, extra):
    d = doc()
    d["payer"].update(extra)
    field = "payer.tiers[0].outcome" if term == "tiers" else f"payer.{term}.outcome"
    assert problems(d) == [f"{field}: must be one of diploma, job_sustained, got string 'housing'"]


def test_duplicate_state_parameter_outcome_and_cost_names():
    d = doc()
    d["journey"]["states"].append({"name": "Job"})
    assert problems(d) == ["journey.states[5].name: must be unique, 'Job' is a duplicate of journey.states[3].name "
                           "'job' (the same name but for case, spacing or Unicode form)"]
    d = doc()
    d["journey"]["parameters"]["Relapse"] = 0.1
    assert problems(d)[0].startswith("journey.parameters.Relapse: must be unique, 'Relapse' is a duplicate of "
                                     "journey.parameters.relapse")
    d = doc()
    d["outcomes"]["Diploma"] = {"kind": "event", "event": "diploma"}
    assert problems(d)[0].startswith("outcomes.Diploma: must be unique")
    d = doc()
    d["costs"].append(copy.deepcopy(d["costs"][0]))
    assert problems(d) == ["costs[1].name: must be unique, 'benefit' appears twice (duplicate of costs[0].name)"]


# --- the machine as a whole ---------------------------------------------------------------------
def test_unreachable_state_is_an_error_counting_every_start():
    d = doc()
    d["journey"]["states"].append({"name": "custody"})
    assert problems(d) == ["journey.states[5].name: unreachable from every start state (the journey's, the "
                           "cohorts' and the comparison group's), got state 'custody'"]
    d["cohorts"][1]["start"] = "custody"  # a cohort's start reaches it
    assert problems(d) == []
    d = doc()
    d["journey"]["states"].append({"name": "custody"})
    d["comparison"]["start"] = {"job_search": 0.5, "custody": 0.5}  # so does the comparison group's
    assert problems(d) == []


def test_a_state_no_exit_leads_to_is_unreachable():
    d = doc()
    state(d, "training")["exits"][0]["to"] = "job_search"  # job_search_with_diploma: never entered
    assert problems(d) == ["journey.states[2].name: unreachable from every start state (the journey's, the "
                           "cohorts' and the comparison group's), got state 'job_search_with_diploma'"]


def _two_exits(p1, p2, in_order=False):
    d = doc()
    d["journey"]["parameters"]["other"] = p2
    d["journey"]["parameters"]["relapse"] = p1
    d["journey"]["states"].append({"name": "custody"})
    state(d, "job")["exits"].append({"to": "custody", "probability": "other"})
    state(d, "job")["exits_in_order"] = in_order
    return d


def test_simultaneous_fixed_exits_may_sum_to_one_exactly():
    assert problems(_two_exits(0.25, 0.75)) == []
    assert problems(_two_exits(0.25, 0.7500001)) == [
        "journey.states[3].exits: simultaneous exits must not sum above 1 under the prior; use exits_in_order = "
        "true or smaller priors, got upper bounds relapse 0.25 + other 0.75 = 1"]
    assert problems(_two_exits(0.25, 0.7500001, in_order=True)) == []  # decrements never sum above 1


def test_simultaneous_exits_bound_a_beta_prior_by_its_quantile_at_1_minus_1e_9():
    prior = Prior(0.2, 0.05)
    q = float(beta_dist.ppf(1 - 1e-9, *prior.alpha_beta))
    assert 0.45 < q < 0.7  # far above the mean: the rule is about the tail, not the mean
    assert problems(_two_exits({"mean": 0.2, "sd": 0.05}, 1 - q - 1e-9)) == []
    (line,) = problems(_two_exits({"mean": 0.2, "sd": 0.05}, 1 - q + 1e-6))
    assert line.startswith("journey.states[3].exits: simultaneous exits must not sum above 1 under the prior; "
                           "use exits_in_order = true or smaller priors, got upper bounds relapse ")


def test_simultaneous_exits_of_the_comparison_group_are_checked_with_its_overrides():
    d = _two_exits(0.25, 0.5)
    d["comparison"]["parameters"]["other"] = 0.75
    assert problems(d) == []
    d["comparison"]["parameters"]["other"] = 0.8
    assert problems(d) == ["comparison.parameters: the simultaneous exits of state 'job' must not sum above 1 under "
                           "the prior; use exits_in_order = true or smaller priors, got upper bounds relapse 0.25 + "
                           "other 0.8 = 1.05"]


def _limited_branch(at_month, inside=False):
    d = doc()
    state(d, "job")["time_limit"] = 6
    state(d, "job")["after_limit"] = "job_search"
    d["journey"]["branches"][0]["at_month"] = at_month
    if inside:  # a move within the set continues the run: then it can be longer than any one limit
        d["journey"]["states"].append({"name": "job_2", "exits": [{"to": "job_search", "probability": 0.1}]})
        state(d, "job")["after_limit"] = "job_2"
        d["journey"]["branches"][0]["states"] = ["job", "job_2"]
        state(d, "job_2")["time_limit"] = 3
        state(d, "job_2")["after_limit"] = "job_search"
    return d


def test_branch_at_month_up_to_the_longest_time_limit_of_its_set():
    assert problems(_limited_branch(6)) == []
    assert problems(_limited_branch(7)) == ["journey.branches[0].at_month: must be <= 6, the longest run in its "
                                            "states (each has a time limit and none leads to another of them), got 7"]
    assert problems(_limited_branch(7, inside=True)) == []  # job then job_2: up to 9 months


def test_windows_and_census_months_within_the_horizon():
    d = doc()
    horizon = contract_from_dict(d).horizon_months
    assert horizon == 30  # term 24 + tail 6
    d["outcomes"]["job_sustained"]["window"] = horizon
    assert problems(d) == []
    d["outcomes"]["job_sustained"]["window"] = horizon + 1
    assert problems(d) == [f"outcomes.job_sustained.window: must be <= {horizon}, the horizon in months (term, "
                           f"tail and payments), got {horizon + 1}"]
    d = doc()
    d["outcomes"]["in_work"] = {"kind": "status", "states": ["job"], "at_months": [6, horizon - 1]}
    d["payer"]["rate_card"]["in_work"] = 0
    assert problems(d) == []
    d["outcomes"]["in_work"]["at_months"] = [6, horizon]
    assert problems(d) == [f"outcomes.in_work.at_months[1]: must be < {horizon}, the horizon in months (term, "
                           f"tail and payments), got {horizon}"]


def test_a_loop_of_start_timing_states_is_refused_a_chain_is_not():
    d = doc()
    state(d, "job_search")["exits"].append({"to": "job_search_with_diploma", "probability": 0.01})
    assert problems(d) == []  # a chain: job_search -> job_search_with_diploma, each entered once
    state(d, "job_search_with_diploma")["exits"].append({"to": "job_search", "probability": 0.01})
    assert problems(d) == ["journey.states[1].exits: start-timing states must not form a loop of exits (a "
                           "participant would pass through them without end in one month), got job_search -> "
                           "job_search_with_diploma -> job_search"]
    state(d, "job_search_with_diploma")["timing"] = "end"  # an end state breaks the loop
    assert problems(d) == []


# --- states, branches, outcomes, costs, comparison: field rules -----------------------------------
def test_time_limit_and_after_limit_come_together():
    d = doc()
    del state(d, "training")["after_limit"]
    assert problems(d) == ["journey.states[0].time_limit: must come with after_limit (a time limit names the state "
                           "entered after it), got no after_limit"]
    d = doc()
    del state(d, "training")["time_limit"]
    assert problems(d) == ["journey.states[0].after_limit: must come with time_limit (a time limit names the state "
                           "entered after it), got no time_limit"]


def test_time_limit_and_at_month_at_least_one():
    d = doc()
    state(d, "training")["time_limit"] = 1
    d["journey"]["branches"][0]["at_month"] = 1
    assert problems(d) == []
    state(d, "training")["time_limit"] = 0
    d["journey"]["branches"][0]["at_month"] = 0
    assert problems(d) == ["journey.states[0].time_limit: must be >= 1, got 0",
                           "journey.branches[0].at_month: must be >= 1, got 0"]


def test_exit_to_its_own_state_is_refused():
    d = doc()
    state(d, "job")["exits"][0]["to"] = "job"
    assert problems(d) == ["journey.states[3].exits[0].to: must be another state than 'job' (the stay is what no "
                           "exit takes), got 'job'"]


def test_outcome_keys_depend_on_the_kind():
    d = doc()
    d["outcomes"]["diploma"]["months"] = 6
    assert problems(d) == ["outcomes.diploma.months: unknown key for kind = 'event' (allowed: count, event, kind, "
                           "label, lag, scale, unit, window)"]
    d = doc()
    del d["outcomes"]["job_sustained"]["months"]
    assert problems(d) == ["outcomes.job_sustained.months: missing required field (for kind = 'milestone')"]


def test_cumulative_milestone_counts_first_only():
    d = doc()
    d["outcomes"]["job_sustained"].update(consecutive=False, count="first")
    assert problems(d) == []
    d["outcomes"]["job_sustained"]["count"] = "every"
    assert problems(d) == ["outcomes.job_sustained.count: must be 'first' for a cumulative milestone (consecutive = "
                           "false: reached once per participant), got string 'every'"]


def test_cost_names_states_or_an_event():
    d = doc()
    d["costs"][0]["event"] = "diploma"
    assert problems(d) == ["costs[0]: give exactly one of states (a cost per participant-month in them), event (a "
                           "cost per event), got both"]


def test_cost_band_shares_sum_to_one_within_1e_9():
    d = doc()
    d["costs"][0]["bands"][1]["share"] = 0.2 + 0.9e-9
    assert problems(d) == []
    d["costs"][0]["bands"][1]["share"] = 0.2 + 1.1e-9
    assert problems(d) == ["costs[0].bands: shares must add up to 1, got 1.0000000011"]


def test_savings_share_needs_costs():
    d = doc()
    d["payer"]["savings_share"] = 0.5
    del d["costs"]
    assert problems(d) == ["payer.savings_share: must come with [[costs]] (the savings it shares are the comparison "
                           "group's costs less the treated group's), got savings_share 0.5 and no costs"]


def test_shared_parameter_cannot_be_overridden():
    d = doc()
    d["comparison"]["shared"] = ["relapse", "dropout"]
    assert problems(d) == ["comparison.shared[1]: must not be overridden in [comparison.parameters] (a shared "
                           "parameter is drawn once for both groups), got 'dropout'"]
    del d["comparison"]["shared"][1]
    assert contract_from_dict(d).comparison.shared == ("relapse",)


def test_comparison_override_keeps_the_kind_of_the_parameter():
    d = _with_rate({"mean": 0.5, "sd": 0.2, "kind": "rate"})
    d["comparison"]["parameters"]["interviews"] = {"mean": 1.5, "sd": 0.2}  # a rate: kind taken from the journey
    assert contract_from_dict(d).comparison.journey.prior("interviews") == Prior(1.5, 0.2, "rate")
    d["comparison"]["parameters"]["interviews"] = {"mean": 0.5, "sd": 0.2, "kind": "probability"}
    assert problems(d) == ["comparison.parameters.interviews.kind: must be 'rate', the kind of the treated group's "
                           "parameter, got string 'probability'"]


# --- warnings and the old format ----------------------------------------------------------------
def test_an_outcome_no_contract_term_uses_is_a_warning_not_an_error():
    d = doc()
    d["outcomes"]["job_start"] = {"kind": "entry", "states": ["job"]}
    c = contract_from_dict(d, "f.toml")
    assert c.warnings == ("f.toml: outcomes.job_start: warning: no contract term uses it (rate card, tiers, "
                          "trigger, review): it is counted and reported, never paid for",)
    d["payer"]["rate_card"]["job_start"] = 0  # named by a term, even at price 0: used
    assert contract_from_dict(d).warnings == ()


def test_old_format_is_one_line_pointing_to_the_docs():
    old = tomllib.loads((FIXTURES / "broken" / "old_format_journey.toml").read_text(encoding="utf-8"))
    assert problems(old) == ["journey.max_training_months: the journey is now a state machine ([journey.states], "
                             "[outcomes]); see docs/scenario.md"]


@pytest.mark.parametrize("path,hint", [
    (("savings",), "[savings] is now [[costs]]"),
    (("term", "sustained_job_months"), "a sustained job is now a milestone outcome"),
    (("meta", "outcome_labels"), "an outcome's label is now given in its own table"),
    (("comparison", "journey"), "the comparison group now shares the journey and overrides its parameters"),
    (("payer", "rate_card", "benefit_month_saved"), "months off benefits are now an occupancy outcome"),
])
def test_old_keys_in_a_new_file_each_point_to_where_they_went(path, hint):
    d = doc()
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = {"x": 1} if len(path) == 1 or path[-1] in ("outcome_labels", "journey") else 6
    (line,) = problems(d)
    assert line.startswith(f"{'.'.join(path)}: {hint}") and line.endswith("see docs/scenario.md")


# --- analysis.success_parameters ---------------------------------------------------------------------
def test_success_parameters_name_journey_parameters_once():
    d = doc()
    d.setdefault("analysis", {})["success_parameters"] = ["job_with_diploma", "job_without_diploma"]
    c = contract_from_dict(d, "f.toml")
    assert c.success_parameter_names == ("job_with_diploma", "job_without_diploma")
    d["analysis"]["success_parameters"] = ["job_with_diploma", "jobs"]
    assert problems(d) == ["analysis.success_parameters: must name parameters of [journey.parameters] (diploma, "
                           "dropout, job_with_diploma, job_without_diploma, relapse, long_term_contract), got 'jobs'"]
    d["analysis"]["success_parameters"] = ["relapse", "relapse"]
    assert problems(d) == ["analysis.success_parameters: must name each parameter once, got 'relapse' twice"]
    d["analysis"]["success_parameters"] = []
    assert problems(d) == ["analysis.success_parameters: must be a non-empty list of parameter names, got an array"]


def test_success_parameters_default_to_the_ways_into_the_primary_outcome():
    c = contract_from_dict(doc(), "f.toml")  # primary outcome: the first defined (diploma, an event)
    assert c.primary_outcome == "diploma" and c.success_parameter_names == ("diploma",)
    d = doc()
    d.setdefault("analysis", {})["primary_outcome"] = "job_sustained"  # a milestone in the job states
    c = contract_from_dict(d, "f.toml")
    # The branch to the long-term job fires inside the job states: it moves nobody into them.
    assert set(c.success_parameter_names) == {"job_with_diploma", "job_without_diploma"}


def test_failure_parameters_are_what_success_lowers_and_never_a_success_parameter_too():
    d = doc()
    d.setdefault("analysis", {})["failure_parameters"] = ["relapse"]
    c = contract_from_dict(d, "f.toml")
    assert c.failure_parameter_names == ("relapse",) and c.success_parameter_names == ()
    d["analysis"]["success_parameters"] = ["job_with_diploma", "relapse"]
    assert problems(d) == ["analysis.failure_parameters: must not name a success parameter too, got 'relapse'"]
    d["analysis"]["success_parameters"] = ["job_with_diploma"]
    c = contract_from_dict(d, "f.toml")
    assert (c.success_parameter_names, c.failure_parameter_names) == (("job_with_diploma",), ("relapse",))


def test_a_primary_outcome_paid_to_fall_lowers_its_drivers_by_default():
    from sibsim import load_scenario

    pb = load_scenario(FIXTURES.parent.parent / "scenarios" / "peterborough.toml")
    assert pb.primary_direction == -1
    assert pb.success_parameter_names == () and pb.failure_parameter_names == ("reconviction",)


# --- outcomes that could never be counted, branches that could never fire -------------------------
def test_a_lag_that_dates_every_occurrence_beyond_the_horizon_is_refused():
    from sibsim import load_scenario

    c = load_scenario(FIXTURES.parent.parent / "scenarios" / "peterborough.toml")
    d = tomllib.loads((FIXTURES.parent.parent / "scenarios" / "peterborough.toml").read_text(encoding="utf-8"))
    horizon = c.horizon_months  # first intake at month 0
    d["outcomes"]["reconviction_events"]["lag"] = horizon - 1  # the last month still counts
    assert problems(d) == []
    d["outcomes"]["reconviction_events"]["lag"] = horizon
    assert problems(d) == [f"outcomes.reconviction_events.lag: must be < {horizon} (the horizon, {horizon} months, "
                           f"less the first intake, month 0): every occurrence would be dated beyond the horizon, "
                           f"got {horizon}"]


def test_a_milestone_longer_than_its_window_or_the_horizon_is_refused():
    d = doc()
    d["outcomes"]["job_sustained"]["window"] = 12
    d["outcomes"]["job_sustained"]["months"] = 12  # reached in the window's last month
    assert problems(d) == []
    d["outcomes"]["job_sustained"]["months"] = 13
    assert problems(d) == ["outcomes.job_sustained.months: must be <= 12 (its window): the milestone could never "
                           "be reached, got 13"]


def test_a_branch_whose_set_is_only_its_target_is_refused():
    d = doc()
    branch = d["journey"]["branches"][0]
    branch["states"] = [branch["to"]]
    assert problems(d) == [f"journey.branches[0].states: must hold a state besides {branch['to']!r} (the branch "
                           f"moves participants from them to it), got [{branch['to']!r}]"]


def test_a_parameter_nothing_uses_is_a_warning():
    d = doc()
    d["journey"]["parameters"]["spare"] = 0.1
    c = contract_from_dict(d, "f.toml")
    assert "f.toml: journey.parameters.spare: warning: no exit, event or branch uses it: it changes nothing" \
        in c.warnings
    assert not any("journey.parameters" in w for w in contract_from_dict(doc(), "f.toml").warnings)


def _shipped(name):
    return tomllib.loads((FIXTURES.parent.parent / "scenarios" / f"{name}.toml").read_text(encoding="utf-8"))


def test_a_trigger_measuring_before_the_window_and_lag_have_passed_is_a_warning():
    d = _shipped("peterborough")  # reconviction events: window 12, lag 6
    d["payer"]["trigger"]["follow_up_months"] = 18
    assert not [w for w in contract_from_dict(d, "f.toml").warnings if "follow_up" in w]
    d["payer"]["trigger"]["follow_up_months"] = 17
    assert [w for w in contract_from_dict(d, "f.toml").warnings if "follow_up" in w] == [
        "f.toml: payer.trigger.follow_up_months: warning: each cohort is measured before its reconviction_events "
        "window and lag have passed (12 + 6 = 18 months): occurrences dated later are not counted, got 17"]


def test_a_census_beyond_the_horizon_for_the_last_cohort_is_a_warning():
    d = _shipped("special_education_census")
    c = contract_from_dict(d, "f.toml")
    last = max(co.intake_month for co in c.cohorts)
    name = next(o.name for o in c.outcomes if o.kind == "status")
    d["outcomes"][name]["at_months"] = [c.horizon_months - last - 1]  # the last month still counts
    assert not [w for w in contract_from_dict(d, "f.toml").warnings if "census" in w]
    d["outcomes"][name]["at_months"] = [c.horizon_months - last]
    assert [w for w in contract_from_dict(d, "f.toml").warnings if "census" in w] == [
        f"f.toml: outcomes.{name}.at_months[0]: warning: the last cohort's census (intake month {last} + "
        f"{c.horizon_months - last}) falls at or beyond the horizon (month {c.horizon_months}): it is not counted"]


def test_the_comparison_groups_own_start_wins_over_a_cohorts():
    from sibsim.montecarlo import start_distributions

    d = doc()
    d["cohorts"][0]["start"] = "job_search_with_diploma"
    c = contract_from_dict(d, "f.toml")
    names = c.journey.state_names
    treated, comparison = start_distributions(c), start_distributions(c, comparison=True)
    assert treated[0, names.index("job_search_with_diploma")] == 1.0  # the cohort's own start
    assert comparison[0, names.index("job_search")] == 1.0  # [comparison] start = "job_search"
    d["comparison"].pop("start")
    c = contract_from_dict(d, "f.toml")
    comparison = start_distributions(c, comparison=True)
    assert comparison[0, names.index("job_search_with_diploma")] == 1.0  # no start of its own: as the cohort


# --- the named what-ifs' parameters (analysis.outflow_parameters, ...) ---------------------------------
@pytest.mark.parametrize("key", ["outflow_parameters", "relapse_parameters", "labour_market_parameters"])
def test_what_if_parameters_name_journey_parameters_once(key):
    d = doc()
    d.setdefault("analysis", {})[key] = ["relapse"]  # one name: the smallest list accepted
    assert getattr(contract_from_dict(d, "f.toml"), key) == ("relapse",)
    d["analysis"][key] = ["relapse", "jobs"]
    assert problems(d) == [f"analysis.{key}: must name parameters of [journey.parameters] (diploma, dropout, "
                           "job_with_diploma, job_without_diploma, relapse, long_term_contract), got 'jobs'"]
    d["analysis"][key] = ["relapse", "relapse"]
    assert problems(d) == [f"analysis.{key}: must name each parameter once, got 'relapse' twice"]
    d["analysis"][key] = []
    assert problems(d) == [f"analysis.{key}: must be a non-empty list of parameter names, got an array"]
    d["analysis"][key] = "relapse"
    assert problems(d)[0].startswith(f"analysis.{key}: must be a non-empty list of parameter names, got ")


def test_outflow_and_labour_market_default_to_the_success_parameters():
    d = doc()
    d.setdefault("analysis", {})["success_parameters"] = ["job_with_diploma", "job_without_diploma"]
    c = contract_from_dict(d, "f.toml")
    assert c.outflow_parameter_names == c.labour_market_parameter_names == ("job_with_diploma", "job_without_diploma")
    assert c.relapse_parameters == ()
    d["analysis"]["outflow_parameters"] = ["job_without_diploma"]
    c = contract_from_dict(d, "f.toml")
    assert c.outflow_parameter_names == c.labour_market_parameter_names == ("job_without_diploma",)
