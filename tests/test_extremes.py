"""Extreme but valid inputs: sensible results, bounded time and memory.

* 1 participant (and a comparison group of 1);
* 10,000 participants;
* 0 % success (every probability 0) and 100 % success (probabilities 0 or 1 favouring every
  outcome), and literally every probability 1 in both groups (they cancel exactly);
* 20-year terms (240 months plus a 60-month tail, 15 yearly cohorts of 100);
* a comparison group 20 x larger than the treated group.

Each goes through the loader (``contract_from_dict``) and the engine.  Every case checks the
ledger identities on the paths it settles, that no value that is defined is NaN, and that the
IRR statuses make sense; the deterministic ones check exact amounts.  The 10,000-participant and
20-year cases run a few hundred paths in a subprocess that reports its peak RSS growth
(``resource.getrusage``): it must stay under 1.5 GiB.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from sibsim import simulate
from sibsim.cashflows import settle
from sibsim.contracts import Contract
from sibsim.expectation import expected_group
from sibsim.metrics import path_metrics
from sibsim.montecarlo import block_size, simulate_outcomes, start_distributions
from sibsim.scenario import contract_from_dict
from tests.test_cashflows import check_ledgers

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MINIMAL = tomllib.loads((FIXTURES / "valid_minimal.toml").read_text(encoding="utf-8"))
ALL_TERMS = tomllib.loads((FIXTURES / "valid_all_terms.toml").read_text(encoding="utf-8"))
GIB = 1024**3
MEMORY_LIMIT = 1.5 * GIB
STATUSES = {"defined", "total_loss", "no_sign_change", "no_root_in_range", "multiple_roots"}


def contract_of(doc: dict) -> Contract:
    return contract_from_dict(doc, "<extreme>")


def inline_rates(doc: dict) -> list[tuple[dict, str]]:
    """The recurrent events whose rate is written in the state (not a named parameter), with the
    name the loader gives that rate (``state:event``, what ``[comparison.parameters]`` overrides)."""
    return [(e, f"{state['name']}:{e['event']}") for state in doc["journey"]["states"]
            for e in state.get("events", ()) if not isinstance(e["rate"], str)]


def set_journey(doc: dict, value: float, rate: float | None = None, start: str | None = None, **overrides) -> dict:
    """Every named journey parameter of the treated group fixed at ``value`` (or its ``overrides``);
    inline event rates fixed at ``rate`` if given; the start state if given."""
    j = doc["journey"]
    j["parameters"] = {name: overrides.get(name, value) for name in j["parameters"]}
    if rate is not None:
        for event, _ in inline_rates(doc):
            event["rate"] = rate
    if start is not None:
        j["start"] = start
    return doc


def set_comparison(doc: dict, value: float, rate: float | None = None, start: str | None = None,
                   **overrides) -> dict:
    """The comparison group's parameters: every parameter it does not share with the treated group
    at ``value`` (or its ``overrides``), inline event rates at ``rate`` if given; its start state."""
    comp = doc["comparison"]
    shared = set(comp.get("shared", ()))
    params = {name: overrides.get(name, value) for name in doc["journey"]["parameters"] if name not in shared}
    params |= {name: v for name, v in comp.get("parameters", {}).items() if name not in params and name not in shared}
    if rate is not None:
        params |= {name: rate for _, name in inline_rates(doc)}
    comp["parameters"] = params
    if start is not None:
        comp["start"] = start
    return doc


def without_training(doc: dict) -> dict:
    """valid_minimal.toml's machine without training: everyone starts in the job search, and the
    training and diploma states, parameters and outcome (unreachable, which the loader refuses) go."""
    gone = {"training", "job_search_with_diploma"}
    j = doc["journey"]
    j["start"] = doc["comparison"]["start"] = "job_search"
    j["states"] = [state for state in j["states"] if state["name"] not in gone]
    for name in ("diploma", "dropout", "job_with_diploma"):
        j["parameters"].pop(name)
        doc["comparison"]["parameters"].pop(name, None)
    del doc["outcomes"]["diploma"]
    doc["payer"]["rate_card"].pop("diploma")
    for cost in doc["costs"]:
        cost["states"] = [name for name in cost["states"] if name not in gone]
    return doc


def once_per_participant(contract: Contract) -> list[int]:
    """Indices of the outcomes a participant reaches at most once (first entries, events, milestones,
    a census at one month), unlike every-event counts and occupancy (person-months)."""
    return [k for k, o in enumerate(contract.outcomes)
            if (o.kind in ("entry", "event", "milestone") and o.count == "first")
            or (o.kind == "status" and len(o.at_months) == 1)]


def settled(contract: Contract, n_paths: int, seed: int):
    """Pieces of one block: outcomes, cashflows (every identity checked), per-path measures."""
    outcomes = simulate_outcomes(contract, n_paths, np.random.default_rng(seed))
    cash = settle(contract, outcomes)
    check_ledgers(contract, cash, check_irr=True, outcomes=outcomes)
    return outcomes, cash, path_metrics(contract, cash, outcomes)


def check_results(res) -> None:
    """Nothing that is defined is NaN; statuses are known; the summary has what it can have."""
    paths = res.paths
    assert set(paths["irr_status"].astype(str)) <= STATUSES
    for col in ("investor_npv", "investor_loss", "capital_called", "distributions", "outcome_payments",
                "retained_by_payer", "defaulted_by_payer", "guarantee_payouts", "gross_savings", "net_savings",
                "payer_npv", "primary_outcomes", "net_primary_outcomes"):
        assert np.isfinite(paths[col].to_numpy(dtype=float)).all(), col
    defined = paths["irr_status"].isin(["defined", "total_loss"]).to_numpy()
    assert (np.isfinite(paths["investor_irr"].to_numpy()) == defined).all()
    assert (paths.loc[paths["irr_status"] == "total_loss", "investor_irr"] == -1.0).all()
    called = paths["capital_called"].to_numpy() > 0
    assert (np.isfinite(paths["investor_moic"].to_numpy()) == called).all()
    assert np.isfinite(res.expected_ledgers.to_numpy()).all()
    for series in res.monthly.values():
        assert np.isfinite(series).all()
    summary = res.summary()
    always = ["expected_moic", "share_irr_defined", "probability_of_loss", "expected_loss", "cvar05_net_result",
              "expected_npv", "expected_distributions", "expected_capital_called", "expected_guarantee_payouts",
              "expected_outcome_payments", "expected_retained_above_caps", "expected_defaulted",
              "probability_terminated_early", "expected_gross_savings", "expected_net_savings", "net_savings_p05",
              "probability_pays_more_than_saves", "expected_npv_net_savings"]
    assert np.isfinite(summary.loc[always, "estimate"].to_numpy()).all(), summary.loc[always, "estimate"]
    if defined.any():
        assert np.isfinite(summary.loc["median_irr", "estimate"])
    for prob in ("share_irr_defined", "probability_of_loss", "probability_terminated_early",
                 "probability_pays_more_than_saves"):
        assert 0 <= summary.loc[prob, "estimate"] <= 1


def run_measured(doc: dict, n_paths: int, seed: int = 1) -> dict:
    """simulate() in a fresh interpreter: peak RSS (getrusage) less the RSS before the run, time, a few results."""
    script = textwrap.dedent(f"""
        import json, resource, sys, time
        import numpy as np
        np.seterr(all="raise")
        from sibsim import simulate
        from sibsim.montecarlo import block_size
        from sibsim.scenario import contract_from_dict
        contract = contract_from_dict(json.loads(sys.stdin.read()), "<extreme>")
        try:  # the current RSS (KiB) before the run: the peak so far may be an import's
            with open("/proc/self/status") as status:
                before = int(next(line for line in status if line.startswith("VmRSS:")).split()[1])
        except (OSError, StopIteration):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        res = simulate(contract, n_paths={n_paths}, seed={seed}, workers=1)
        summary = res.summary()
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{
            "growth_bytes": (after - before) * 1024, "peak_bytes": after * 1024, "seconds": seconds,
            "block_size": block_size(contract), "horizon": contract.horizon_months,
            "statuses": sorted(set(res.paths["irr_status"].astype(str))),
            "paths": len(res.paths),
            "finite": bool(np.isfinite(res.expected_ledgers.to_numpy()).all()),
            "moic": float(summary.loc["expected_moic", "estimate"]),
        }}))
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(doc), capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{n_paths} paths: peak RSS growth {out['growth_bytes'] / 2**20:.1f} MiB, {out['seconds']:.2f} s, "
          f"block size {out['block_size']}, horizon {out['horizon']} months")
    return out


# ---------------------------------------------------------------------------------------
# 1 participant
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [1.0, 0.2])
def test_one_participant(ratio):
    doc = copy.deepcopy(ALL_TERMS)
    doc["cohorts"] = [{"intake_month": 0, "size": 1}]
    doc["comparison"]["size_ratio"] = ratio  # 0.2 members round to 0: the evaluator follows at least 1
    contract = contract_of(doc)
    assert contract.n_participants == 1 and contract.comparison_sizes.tolist() == [1]
    outcomes, cash, frame = settled(contract, 300, seed=1)
    # One person reaches each outcome at most once (those counted once per participant); it spends
    # at most one month a month in a set of states (occupancy outcomes and cost items, before a scale).
    once = once_per_participant(contract)
    assert {"diploma", "job_sustained", "job_start", "long_term_contract"} <= {contract.outcome_names[k] for k in once}
    reached = outcomes.treated.events.sum(axis=3)
    assert set(np.unique(reached[:, :, once])) <= {0, 1}
    occupancy = [k for k, o in enumerate(contract.outcomes) if o.kind == "occupancy"]
    assert occupancy and outcomes.treated.events[:, :, occupancy].max() <= 1
    per_month = [q for q, c in enumerate(contract.costs) if c.event is None]
    assert outcomes.treated.costs[:, :, per_month].max() <= 1
    assert set(np.unique(frame["net_primary_outcomes"])) <= {-1, 0, 1}
    res = simulate(contract, n_paths=400, seed=3)
    check_results(res)
    shares = res.outcome_shares
    for group in ("treated", "comparison"):
        assert all(set(np.unique(shares[f"{group}_{contract.outcome_names[k]}"])) <= {0.0, 1.0} for k in once)


# ---------------------------------------------------------------------------------------
# 10,000 participants
# ---------------------------------------------------------------------------------------
def ten_thousand_doc() -> dict:
    doc = copy.deepcopy(ALL_TERMS)
    doc["cohorts"] = [{"intake_month": 0, "size": 5_000}, {"intake_month": 6, "size": 5_000}]
    doc["investors"][0]["commitment"] = 1_000_000
    doc["payer"]["payment_cap"] = 5_000_000
    doc["payer"]["rate_card"] = {"diploma": 100, "job_sustained": 400}
    doc["payer"]["trigger"]["price"] = 200
    doc["payer"]["tiers"][0]["points"] = [[0.05, 50_000], [0.10, 120_000]]
    doc["guarantees"][0]["cap"] = 100_000
    return doc


def test_ten_thousand_participants_identities_and_exact_means():
    doc = ten_thousand_doc()
    # Known probabilities and rates (no parameter uncertainty): the path means must match the exact
    # expectation.  (The fixture's long-term job is left at 0.01 a month, like the old relapse_long_term.)
    set_journey(doc, 0.05, rate=0.5, relapse=0.03, long_term_contract=0.5)
    contract = contract_of(doc)
    assert contract.n_participants == 10_000
    assert all(prior.is_fixed for _, prior in contract.journey.parameters)
    outcomes, cash, frame = settled(contract, block_size(contract), seed=10)
    n = outcomes.n_paths
    T = contract.horizon_months
    params = np.array([[prior.mean for _, prior in contract.journey.parameters]])
    exact = expected_group(contract.journey, contract.measures, params, np.array([0, 6]), np.array([5_000, 5_000]),
                           start_distributions(contract), T)[0].sum(axis=(0, 2))  # (measures,) over the horizon
    # Every outcome and every cost item's units (months on benefits, months in work, interviews).
    sim = np.concatenate([outcomes.treated.events, outcomes.treated.costs], axis=2).sum(axis=(1, 3))
    se = sim.std(axis=0, ddof=1) / np.sqrt(n)
    assert (np.abs(sim.mean(axis=0) - exact) <= 5 * se + 1e-9).all(), (sim.mean(axis=0), exact, se)
    # With 10,000 people the share reaching an outcome hardly varies between paths.
    once = once_per_participant(contract)
    assert len(once) >= 4 and (sim[:, once].std(axis=0) / 10_000 < 0.01).all()
    assert set(frame["irr_status"].astype(str)) <= STATUSES


def test_ten_thousand_participants_bounded_memory():
    out = run_measured(ten_thousand_doc(), n_paths=500)
    assert out["paths"] == 500 and out["finite"] and set(out["statuses"]) <= STATUSES
    assert out["growth_bytes"] < MEMORY_LIMIT, out
    assert np.isfinite(out["moic"])


# ---------------------------------------------------------------------------------------
# 0 % and 100 % success
# ---------------------------------------------------------------------------------------
def test_zero_success_pays_nothing_and_investors_lose_everything():
    doc = copy.deepcopy(MINIMAL)
    set_journey(doc, 0.0)  # 6 months of training (the fixture's), then a job search that never ends
    set_comparison(doc, 0.0)
    doc["payer"]["savings_share"] = 0.5
    doc["fees"].append({"name": "Evaluator", "paid_by": "payer", "schedule": [{"month": 20, "amount": 3_000}]})
    contract = contract_of(doc)
    outcomes, cash, frame = settled(contract, 50, seed=0)
    assert outcomes.treated.events.sum() == 0
    # Nobody ever works: both groups on benefits every month from their intake (cohorts at 0 and 6).
    on_benefit = np.array([[10 * (m >= c) for m in range(contract.horizon_months)] for c in (0, 6)])
    for group in (outcomes.treated, outcomes.comparison):
        assert [c.name for c in contract.costs] == ["benefit"]
        np.testing.assert_array_equal(group.costs[:, :, 0], np.broadcast_to(on_benefit, (50,) + on_benefit.shape))
    assert (cash.outcome_payments_due == 0).all() and (cash.distributions == 0).all()
    assert (cash.gross_savings == 0).all()
    assert (frame["capital_called"] == 62_000).all() and (frame["investor_loss"] == 62_000).all()
    assert (frame["investor_moic"] == 0).all()
    assert (frame["irr_status"] == "total_loss").all() and (frame["investor_irr"] == -1.0).all()
    assert (frame["net_savings"] == -3_000).all() and (frame["payer_payback_month"].isna()).all()
    res = simulate(contract, n_paths=200, seed=1)
    check_results(res)
    s = res.summary()["estimate"]
    assert s["probability_of_loss"] == 1 and s["expected_loss"] == 62_000 and s["share_irr_defined"] == 1
    assert s["median_irr"] == -1 and s["probability_pays_more_than_saves"] == 1
    assert np.isnan(s["cost_per_primary_outcome"])  # no outcome at all: no cost per outcome


def test_zero_success_with_every_mechanism_only_guarantees_pay():
    doc = copy.deepcopy(ALL_TERMS)
    # Every probability and the interview rate 0 (an interview is a cost, paid for by the savings share).
    set_journey(doc, 0.0, rate=0.0)
    set_comparison(doc, 0.0, rate=0.0)
    contract = contract_of(doc)
    outcomes, cash, frame = settled(contract, 50, seed=0)
    assert outcomes.treated.events.sum() == 0 and outcomes.comparison.events.sum() == 0
    assert (cash.gross_savings == 0).all()
    assert (cash.outcome_payments_due == 0).all() and not cash.terminated.any()
    # Alpha Fund (4/7 of the 62,000 called) loses it all: the Province covers 50 % up to 10,000,
    # the Municipality 30 % (capital protection).  The grant is lost.
    alpha = 62_000 * 4 / 7
    np.testing.assert_allclose(cash.guarantor_payments.sum(axis=2), [[10_000] * 50, [0.3 * alpha] * 50])
    np.testing.assert_allclose(frame["distributions"], 10_000 + 0.3 * alpha)
    # Calls, then the guarantees once: one sign change, a defined (negative) IRR above -100 %.
    assert (frame["irr_status"] == "defined").all()
    assert ((frame["investor_irr"] > -1) & (frame["investor_irr"] < 0)).all()
    check_results(simulate(contract, n_paths=100, seed=2))


def test_full_success_pays_the_rate_card_exactly():
    doc = copy.deepcopy(MINIMAL)
    set_journey(doc, 1.0, dropout=0.0, relapse=0.0)
    set_comparison(doc, 0.0)
    # Unpriced outcomes to count what the old chain counted: job starts and long-term contracts.
    doc["outcomes"]["job_start"] = {"kind": "entry", "states": ["job", "long_term_job"]}
    doc["outcomes"]["long_term_contract"] = {"kind": "entry", "states": ["long_term_job"]}
    contract = contract_of(doc)
    outcomes, cash, frame = settled(contract, 20, seed=0)
    # Every path is the same: diploma in the intake month, a job the month after, sustained (and a
    # long-term contract) 5 months later, never lost.  Cohorts of 10 at months 0 and 6.
    for arr in (cash.outcome_payments_due, cash.distributions, cash.capital_calls, cash.gross_savings):
        assert (arr == arr[:1]).all()
    ev = outcomes.treated.events[0].sum(axis=0)  # (outcomes, months)
    index = contract.outcome_index
    assert contract.outcome_names == ("diploma", "job_sustained", "job_start", "long_term_contract")
    assert ev[index("diploma"), [0, 6]].tolist() == [10, 10]
    assert ev[index("job_start"), [1, 7]].tolist() == [10, 10]
    assert ev[index("job_sustained"), [6, 12]].tolist() == [10, 10]
    assert ev[index("long_term_contract"), [6, 12]].tolist() == [10, 10]
    assert ev.sum(axis=1).tolist() == [20, 20, 20, 20]
    # Before month 12: 20 diplomas, 10 sustained -> 20 x 1,000 + 10 x 4,000 = 60,000 due at 12 + 3.
    # Before month 24: 20 x 1,000 + 20 x 4,000 = 100,000 -> 40,000 more at 24 + 3.
    due = cash.outcome_payments_due[0]
    assert due[15] == 60_000 and due[27] == 40_000 and due.sum() == 100_000
    # Alpha Fund's 10 % cap binds; Beta takes the rest; nothing is left to the payer (Beta is uncapped).
    assert (cash.retained_by_payer == 0).all()
    np.testing.assert_allclose(frame["distributions"], 100_000)
    assert (frame["irr_status"] == "defined").all() and (frame["investor_moic"] > 1.5).all()
    res = simulate(contract, n_paths=100, seed=5)
    check_results(res)
    s = res.summary()["estimate"]
    assert s["probability_of_loss"] == 0 and s["share_irr_defined"] == 1
    assert res.summary().loc["median_irr", "std_error"] < 1e-12  # every path the same
    assert s["treated_job_sustained"] == 1 and s["comparison_job_start"] == 0


def test_every_probability_one_in_both_groups_cancels_exactly():
    doc = copy.deepcopy(ALL_TERMS)
    set_journey(doc, 1.0)
    set_comparison(doc, 1.0, start="training")  # the same machine, start and probabilities in both groups
    del doc["cohorts"][1]["start"]  # a random split of the cohort between two start states would differ
    doc["comparison"]["size_ratio"] = 10.0  # the largest accepted (MAX_SIZE_RATIO)
    contract = contract_of(doc)
    outcomes, cash, frame = settled(contract, 20, seed=0)
    # Diploma at once (it comes before dropout), a job the month after, lost every month (relapse 1),
    # found again at once (a job search that starts in a month a job starts in): never a month in the
    # job search, so no interview.  Identical in both groups, so the net is exactly 0 everywhere.
    assert outcomes.treated.events.sum() > 0
    np.testing.assert_allclose(outcomes.counterfactual_events(), outcomes.treated.events, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cash.measured_outcomes, 0.0, atol=1e-9)
    np.testing.assert_allclose(cash.gross_savings, 0.0, atol=1e-6)
    check_results(simulate(contract, n_paths=50, seed=4))


# ---------------------------------------------------------------------------------------
# 20-year terms
# ---------------------------------------------------------------------------------------
def twenty_year_doc() -> dict:
    doc = copy.deepcopy(ALL_TERMS)
    doc["term"] = {"term_months": 240, "tail_months": 60}
    doc["cohorts"] = [{"intake_month": 12 * k, "size": 100} for k in range(15)]
    doc["provider"]["budget"] = [{"from_month": 0, "to_month": 199, "per_month": 5_000}]
    doc["fees"].append({"name": "Evaluator", "paid_by": "payer",
                        "schedule": [{"from_month": 0, "to_month": 299, "per_month": 100}]})
    doc["investors"][0]["commitment"] = 1_000_000
    doc["payer"]["measurement_months"] = list(range(12, 241, 12))
    doc["payer"]["payment_cap"] = 5_000_000
    doc["payer"]["review"]["month"] = 60
    doc["payer"]["trigger"]["follow_up_months"] = 24
    for cost in doc["costs"]:
        cost["annual_indexation"] = 0.02
    return doc


def test_twenty_year_term_identities_and_sensible_results():
    contract = contract_of(twenty_year_doc())
    assert contract.horizon_months == 300
    outcomes, cash, frame = settled(contract, 60, seed=20)
    assert (cash.gross_savings[:, 240:] != 0).any()  # savings are followed through the tail
    assert (np.flatnonzero(cash.outcome_payments_due.any(axis=0)) <= 240 + 24 + 3).all()
    res = simulate(contract, n_paths=300, seed=21)
    check_results(res)
    assert res.expected_ledgers.shape[0] == 300
    # Indexation steps every 12 months: 2 % a year for 25 years.
    # (The benefit: 1,000 x 0.8 + 250 x 0.2 = 850 a month.)
    assert contract.costs[0].name == "benefit"
    np.testing.assert_allclose(contract.cost_per_unit(300)[0, [0, 299]], [850.0 * 1.0, 850.0 * 1.02**24])


def test_twenty_year_term_bounded_memory():
    out = run_measured(twenty_year_doc(), n_paths=400)
    assert out["paths"] == 400 and out["finite"] and out["horizon"] == 300
    assert out["growth_bytes"] < MEMORY_LIMIT, out


# ---------------------------------------------------------------------------------------
# a comparison group 20 x larger
# ---------------------------------------------------------------------------------------
def test_comparison_group_ten_times_larger_measures_with_less_noise():
    """Treated and comparison follow the same known journey: the true effect is 0.  The evaluator's
    net measurement is centred on 0 either way, but a comparison group of 10 per participant (the
    largest accepted) measures it with less noise (sd ratio ~ sqrt((1 + 1/10) / 2) = 0.74).  The two
    designs share every path's treated journeys (common random numbers)."""
    doc = without_training(copy.deepcopy(MINIMAL))
    # No training (both start in the job search); the same known probabilities in both groups.
    same = dict(relapse=0.03, long_term_contract=0.5)
    set_journey(doc, 0.05, **same)
    set_comparison(doc, 0.05, **same)
    doc["analysis"] = {"primary_outcome": "job_sustained"}  # the old default (the new: the first outcome)
    doc["cohorts"] = [{"intake_month": 0, "size": 250}, {"intake_month": 6, "size": 250}]
    doc["investors"][0]["commitment"] = 1_000_000
    runs = {}
    for ratio in (1.0, 10.0):
        doc["comparison"]["size_ratio"] = ratio
        contract = contract_of(doc)
        assert contract.comparison_sizes.tolist() == [250 * ratio] * 2
        res = simulate(contract, n_paths=400, seed=7)
        check_results(res)
        runs[ratio] = res
    # Common random numbers: identical treated results on every path.
    np.testing.assert_array_equal(runs[1.0].paths["primary_outcomes"], runs[10.0].paths["primary_outcomes"])
    net = {r: res.paths["net_primary_outcomes"].to_numpy() for r, res in runs.items()}
    for r, x in net.items():
        assert abs(x.mean()) <= 5 * x.std(ddof=1) / np.sqrt(x.size), (r, x.mean())
    ratio = net[10.0].std() / net[1.0].std()
    assert 0.6 < ratio < 0.85, ratio
    # And through the pieces, with every identity on every path (the comparison group in slices).
    settled(contract_of(doc), 40, seed=8)
