"""The Colour Kitchen chain of the first sibsim versions, written as a state machine, for tests.

Many hand-computed cases of the test suite were written for the chain that was once hard-coded
(training -> diploma -> job search -> job -> sustained -> long-term contract, months off benefits
saving a share of the benefit). :func:`new_format` turns such a scenario dictionary into the
state-machine format, term for term: the same journey, outcomes and savings, so every hand-computed
number still holds. It is a test helper, not a way in for old scenario files (the loader refuses
those with a hint to the new format).
"""

from __future__ import annotations

import copy

import numpy as np

CK_PARAMETERS = ("diploma", "dropout", "job_with_diploma", "job_without_diploma", "relapse",
                 "relapse_long_term", "long_term_contract")
CK_OUTCOMES = ("diploma", "job_start", "job_sustained", "long_term_contract")
WORK = ["job", "job_with_diploma", "long_term_job", "long_term_job_with_diploma"]
NOT_WORKING = ["training", "job_search", "job_search_with_diploma", "relapsed", "relapsed_with_diploma"]
DAYS_PER_MONTH = 365.25 / 12


def machine(max_training_months: int, sustained_job_months: int) -> tuple[list, list]:
    """States and branches of the chain. Without training nobody has a diploma: the diploma states
    are left out (they would be unreachable)."""
    S = sustained_job_months
    states = [
        {"name": "job_search", "timing": "start", "exits": [{"to": "job", "probability": "job_without_diploma"}]},
        {"name": "job", "exits": [{"to": "relapsed", "probability": "relapse"}]},
        {"name": "long_term_job", "exits": [{"to": "relapsed", "probability": "relapse_long_term"}]},
        {"name": "relapsed", "time_limit": 1, "after_limit": "job_search"},
    ]
    branches = [{"states": ["job", "long_term_job"], "at_month": S, "to": "long_term_job",
                 "probability": "long_term_contract"}]
    if max_training_months > 0:
        states.insert(0, {"name": "training", "time_limit": max_training_months, "after_limit": "job_search",
                          "exits_in_order": True,
                          "exits": [{"to": "job_search_with_diploma", "probability": "diploma", "event": "diploma"},
                                    {"to": "job_search", "probability": "dropout"}]})
        states += [
            {"name": "job_search_with_diploma", "timing": "start",
             "exits": [{"to": "job_with_diploma", "probability": "job_with_diploma"}]},
            {"name": "job_with_diploma", "exits": [{"to": "relapsed_with_diploma", "probability": "relapse"}]},
            {"name": "long_term_job_with_diploma",
             "exits": [{"to": "relapsed_with_diploma", "probability": "relapse_long_term"}]},
            {"name": "relapsed_with_diploma", "time_limit": 1, "after_limit": "job_search_with_diploma"},
        ]
        branches.append({"states": ["job_with_diploma", "long_term_job_with_diploma"], "at_month": S,
                         "to": "long_term_job_with_diploma", "probability": "long_term_contract"})
    return states, branches


def _present(names, states) -> list:
    present = {s["name"] for s in states}
    return [n for n in names if n in present]


def outcomes(sustained_job_months: int, states: list, labels: dict | None = None) -> dict:
    labels = labels or {}
    work = _present(WORK, states)
    out = {
        "diploma": {"kind": "event", "event": "diploma"},
        "job_start": {"kind": "entry", "states": work},
        "job_sustained": {"kind": "milestone", "states": work, "months": sustained_job_months},
        "long_term_contract": {"kind": "entry", "states": _present(["long_term_job", "long_term_job_with_diploma"],
                                                                     states)},
        "benefit_months": {"kind": "occupancy", "states": work, "label": "month off benefits"},
    }
    if not any(s["name"] == "training" for s in states):
        del out["diploma"]  # no training, no diploma event
    for name, label in labels.items():
        if name in out:
            out[name]["label"] = label
    return out


def _start(params: dict) -> str:
    return "training" if int(params.get("max_training_months", 0)) > 0 else "job_search"


def new_format(doc: dict) -> dict:
    """An old-format scenario dict (``[journey]`` of the seven probabilities, ``[savings]``,
    ``term.sustained_job_months``) as the same scenario in the state-machine format."""
    doc = copy.deepcopy(doc)
    S = int(doc.get("term", {}).pop("sustained_job_months", 6))
    treated = doc.pop("journey")
    comparison = doc.get("comparison", {})
    comp_journey = comparison.pop("journey", None) or treated
    L_t, L_c = int(treated.get("max_training_months", 0)), int(comp_journey.get("max_training_months", 0))
    if L_t and L_c and L_t != L_c:
        raise ValueError("both groups train, for different lengths: not one state machine")
    states, branches = machine(max(L_t, L_c), S)
    labels = dict(doc.get("meta", {}).pop("outcome_labels", {}) or {})
    used = [k for k in CK_PARAMETERS if any(
        e.get("probability") == k for s in states for e in s.get("exits", ())) or any(b["probability"] == k for b in branches)]
    doc["journey"] = {"start": _start(treated), "states": states, "branches": branches,
                      "parameters": {k: copy.deepcopy(treated.get(k, 0.0)) for k in used}}
    doc["outcomes"] = outcomes(S, states, labels)
    comparison["start"] = _start(comp_journey)
    comparison["parameters"] = {k: copy.deepcopy(comp_journey.get(k, 0.0)) for k in used}
    doc["comparison"] = comparison
    savings = doc.pop("savings", None) or {"benefit": [{"age_band": "all", "amount_per_month": 0.0, "share": 1.0}]}
    bands = [{"group": b["age_band"], "amount": b["amount_per_month"], "share": b["share"]} for b in savings["benefit"]]
    saved = float(savings.get("share_saved_when_employed", 1.0))
    index = float(savings.get("annual_indexation", 0.0))
    doc["costs"] = [{"name": "bijstand", "states": _present(NOT_WORKING, states), "bands": bands,
                     "annual_indexation": index}]
    if saved < 1:
        doc["costs"].append({"name": "top_up_in_work", "states": _present(WORK, states), "bands": copy.deepcopy(bands),
                             "fraction": 1.0 - saved, "annual_indexation": index})
    payer = doc.get("payer", {})
    card = payer.get("rate_card", {})
    if "benefit_day_saved" in card:
        card["benefit_months"] = card.pop("benefit_day_saved") * DAYS_PER_MONTH
    if "benefit_month_saved" in card:
        card["benefit_months"] = card.pop("benefit_month_saved")
    if "diploma" not in doc["outcomes"]:
        card.pop("diploma", None)  # nobody trains: a diploma price could never pay
    return doc


def groups(contract, events, employed, sizes) -> tuple[np.ndarray, np.ndarray]:
    """Old-style hand-made counts, ``events`` (P, C, 4, T) of :data:`CK_OUTCOMES` and ``employed``
    (P, C, T) months off benefits, as the contract's outcome events and cost units.

    Cost units: months on bijstand = members in the programme (from the intake) minus those in
    work; months of top-up = those in work.
    """
    events = np.asarray(events)
    employed = np.asarray(employed)
    P, C, _, T = events.shape
    out = np.zeros((P, C, len(contract.outcomes), T), dtype=events.dtype)
    names = contract.outcome_names
    for k, name in enumerate(CK_OUTCOMES):
        if name in names:
            out[:, :, names.index(name)] = events[:, :, k]
    if "benefit_months" in names:
        out[:, :, names.index("benefit_months")] = employed
    enrolled = np.array([[s if m >= c.intake_month else 0 for m in range(T)]
                         for s, c in zip(np.asarray(sizes), contract.cohorts)])
    costs = np.zeros((P, C, len(contract.costs), T), dtype=employed.dtype)
    for q, item in enumerate(contract.costs):
        costs[:, :, q] = employed if item.name == "top_up_in_work" else enrolled[None] - employed
    return out, costs
