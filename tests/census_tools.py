"""Build a state census and the observed counts up to it from simulated histories (reference simulator).

Used by the tests (a census whose truth is known) and to write the shipped example
(``python -m tests.census_tools``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from sibsim.montecarlo import start_distributions
from sibsim.observed import measurables
from sibsim.reference import date_occurrence, draw_start, live_participant, occurrences, tracked_sets


def _months_in_state(history):
    s, n = history[-1].state, 0
    for record in reversed(history):
        if record.state != s:
            break
        n += 1
        if any(to == s for _o, to in record.arrivals):
            break
    return n


def histories_to_census(contract, month, rng, group="treated"):
    """Simulate every participant of ``group`` at the prior means up to ``month``; return the census rows
    (as dicts) and the observed counts {(cohort, name): {measurement month: count}}."""
    journey = contract.journey if group == "treated" else contract.comparison.journey
    p = {n: pr.mean for n, pr in journey.parameters}
    if group == "comparison":
        shared = dict(contract.journey.parameters)
        p.update({n: shared[n].mean for n in contract.comparison.shared})
    measures = contract.measures
    sets = tracked_sets(journey, measures)
    kept = {frozenset(b.states) for b in journey.branches} | {frozenset(m.states) for m in measures if m.kind == "milestone"}
    cumulative = {frozenset(m.states) for m in measures if m.kind == "milestone" and not m.consecutive}
    starts = start_distributions(contract, comparison=group == "comparison")
    sizes = [c.size for c in contract.cohorts] if group == "treated" else list(contract.comparison_sizes)
    known = measurables(contract)
    read = [m for m in contract.payer.measurement_months if m <= month]
    rows, counts = Counter(), {}
    for c, cohort in enumerate(contract.cohorts):
        if cohort.intake_month >= month:
            continue
        for _ in range(int(sizes[c])):
            start = draw_start(journey, starts[c], rng)
            # One month past the census: the arrivals at its start that the end of the month before decided
            # (an "end"-timing exit, a time limit) belong to the census; month m's own draws do not.
            full = live_participant(journey, p, start, cohort.intake_month, month + 1, sets, rng)
            history, nxt = full[:-1], full[-1]
            last = history[-1]
            held = last.state
            d = _months_in_state(history)
            st = journey.state(held)
            arrived = nxt.arrivals and (st.timing == "end" or (st.time_limit is not None and d == st.time_limit))
            s, arrived_from = (nxt.arrivals[0][1], held) if arrived else (held, None)
            if arrived:
                d = 0
            runs = tuple(sorted((tuple(sorted(k)), last.runs[k]) for k in kept if held in k))
            totals = tuple(sorted((tuple(sorted(k)), last.cumulative[k]) for k in cumulative))
            already = tuple(m.name for m in measures if m.once_per_participant
                            and occurrences(m, history, cohort.intake_month))
            rows[(c, s, d, arrived_from, runs, totals, already)] += 1
            for name, m in known.items():
                for mo, n in occurrences(m, history, cohort.intake_month):
                    dated = date_occurrence(m, mo, cohort.intake_month, contract.horizon_months)
                    for r in read:
                        if dated is not None and dated < r:
                            counts.setdefault((c, name), Counter())[r] += n * m.scale
            for name in known:
                for r in read:
                    counts.setdefault((c, name), Counter())[r] += 0
    out = [{"group": group, "cohort": c, "state": s, "count": n, "months": d, "arrived_from": f,
            "runs": [{"states": list(k), "months": v} for k, v in runs],
            "totals": [{"states": list(k), "months": v} for k, v in totals],
            "already": list(a)} for (c, s, d, f, runs, totals, a), n in sorted(rows.items(), key=str)]
    return out, counts


def _toml_value(v):
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_value(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def write_standing(contract, scenario_rel, month, seed, census_path, observed_path, header=""):
    """Write a census file and its observed counts for ``contract`` at ``month`` (both groups)."""
    rng = np.random.default_rng(seed)
    groups = ["treated"] + (["comparison"] if contract.comparison.method != "expected" else [])
    all_rows, all_counts = [], {}
    for g in groups:
        rows, counts = histories_to_census(contract, month, rng, g)
        all_rows += rows
        all_counts[g] = counts
    obs = [header, "[meta]", f'scenario = "{scenario_rel}"', ""]
    months = sorted({r for g in all_counts.values() for series in g.values() for r in series})
    for r in months:
        for c in range(len(contract.cohorts)):
            # Scaled units (days) are counted in whole units in an observed file.
            parts = {g: {name: round(series[r]) for (cc, name), series in all_counts[g].items() if cc == c and r in series}
                     for g in groups}
            if not any(parts.values()):
                continue
            obs += ["[[measurement]]", f"month = {r}", f"cohort = {c}"]
            obs += [f"{g} = {_toml_value(parts[g])}" for g in groups if parts[g]]
            obs.append("")
    observed_path.write_text("\n".join(obs))
    lines = [header, "[meta]", f'scenario = "{scenario_rel}"', f"month = {month}",
             f'observed = "{observed_path.name}"', ""]
    for row in all_rows:
        lines.append("[[census]]")
        for k, v in row.items():
            if (v == [] and k in ("runs", "totals", "already")) or v is None:
                continue
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    census_path.write_text("\n".join(lines))


if __name__ == "__main__":
    from pathlib import Path

    from sibsim import load_scenario

    here = Path("scenarios/standing")
    header = ("# An illustrative standing of the Colour Kitchen SIB at month 24 (not data): one simulated history of\n"
              "# every participant at the scenario's prior means, written by `python -m tests.census_tools`.\n"
              "# Re-forecast with: sibsim reforecast scenarios/utrecht_colour_kitchen.toml THIS_CENSUS --out DIR\n")
    write_standing(load_scenario("scenarios/utrecht_colour_kitchen.toml"), "../utrecht_colour_kitchen.toml", 24, 24,
                   here / "utrecht_colour_kitchen_month24.toml", here / "utrecht_colour_kitchen_month24_observed.toml",
                   header)
