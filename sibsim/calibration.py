"""Mid-term calibration: update the journey priors with observed counts, then re-forecast.

Each journey parameter has a prior.  Part-way through a contract the provider's
records show, for a parameter, how many participant-months were exposed to it and
how many events happened (e.g. 820 months looking for work with a diploma, 38 job
starts).  Monthly trials are Bernoulli, so a probability's Beta prior is conjugate:

    posterior = Beta(alpha + events, beta + at_risk - events)

(a branch probability is per participant reaching the branch: its "at risk" is the number
that reached it).  A rate's Gamma prior (shape k, rate r per month) is conjugate to Poisson
counts over ``at_risk`` participant-months: posterior Gamma(k + events, r + at_risk).
A known value (sd = 0) is not updated.

Evidence file (TOML)::

    [meta]
    scenario = "../x.toml"           # optional: the scenario it updates (for sibsim validate)

    [[evidence]]
    parameter = "job_with_diploma"   # a parameter of [journey.parameters] (a probability or a rate)
    group = "treated"                # or "comparison"
    events = 38
    at_risk = 820                    # participant-months exposed (trials)

Evidence names a parameter declared in ``[journey.parameters]``.  A probability or rate written
inline (a parameter named after where it is, e.g. ``"training->job_search"``) cannot be updated:
:func:`update` would change it in memory, but the variant ``sibsim update`` writes would declare it
in ``[journey.parameters]`` under a name the loader keeps for the inline one, so the variant does
not load and nothing is written.  Name the parameter in ``[journey.parameters]`` to update it.

``events`` and ``at_risk`` are whole numbers, ``events <= at_risk`` for a probability; checked against
the scenario (:func:`check_evidence`), ``at_risk`` is at most the group's participants x the
scenario's months (for a probability used only by branches at ``d`` months: x the spells of ``d``
months that fit in them).

Evidence on one group updates that group's prior only: a comparison parameter inherited from the
treated journey (not in ``[comparison.parameters]``) keeps its prior when the treated one is
updated, and becomes an override (a parameter in ``comparison.shared``, one draw for both, takes
the treated posterior).

``sibsim update`` writes the posterior as a variant scenario holding only the changed
priors (``extends`` the original), so ``sibsim run`` on it is the re-forecast.  The variant's
text is checked to load to the posterior before anything is written.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import pandas as pd

from . import toml_text
from .contracts import Contract, Prior
from .journey import is_inline
from .errors import OutputError, ScenarioError
from .observed import meta_problems
from .scenario import (MAX_MONTH, MAX_PARTICIPANTS, _join, _merge, _read_document, _show, contract_from_dict, parse_toml,
                       read_scenario_bytes)

GROUPS = {"treated": "journey.parameters", "comparison": "comparison.parameters"}
#: Note of a table row for a comparison parameter that keeps its prior while the treated one it
#: inherited is updated (written to the variant as an override).
KEPT = "kept: the treated prior it inherited is updated"


#: Most trials any evidence can hold before the scenario is known: the most participants a scenario
#: may have, each followed for the most months.  Keeps 400-digit numbers out of float arithmetic.
MAX_AT_RISK = MAX_PARTICIPANTS * MAX_MONTH


@dataclasses.dataclass(frozen=True)
class Evidence:
    """Observed events out of ``at_risk`` trials of one journey probability of one group."""

    parameter: str
    group: str
    events: int
    at_risk: int
    #: Where it was read (``evidence[i]``), for messages; empty for evidence built in code.
    where: str = dataclasses.field(default="", compare=False)


def load_evidence(path: str | Path) -> list[Evidence]:
    """Read an evidence file; every problem reported as ``file: field: rule``.

    Only the file's own rules are checked; :func:`check_evidence` checks it against the scenario.
    """
    name = str(path)
    try:
        text = read_scenario_bytes(Path(path)).decode("utf-8-sig")  # regular, bounded; -sig: an editor's byte-order mark
    except FileNotFoundError:
        raise ScenarioError(f"{name}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{name}: cannot read file ({exc})") from None
    doc = parse_toml(text, name)  # deep nesting, huge integers...: one line, no traceback
    problems, out = [], []
    for key in sorted(set(doc) - {"evidence", "meta"}):
        problems.append(f"{name}: {_join('', key)}: unknown key (allowed: evidence, meta)")
    problems += meta_problems(doc, name)  # the same [meta] as observed outcomes
    items = doc.get("evidence")
    if not isinstance(items, list) or not items:
        raise ScenarioError(problems + [f"{name}: evidence: must be a non-empty array of tables"])
    for i, item in enumerate(items):
        entry = f"evidence[{i}]"
        f = f"{name}: {entry}"
        if not isinstance(item, dict):
            problems.append(f"{f}: must be a table")
            continue
        for key in sorted(set(item) - {"parameter", "group", "events", "at_risk"}):
            problems.append(f"{name}: {_join(entry, key)}: unknown key (allowed: at_risk, events, group, parameter)")
        parameter, group = item.get("parameter"), item.get("group", "treated")
        events, at_risk = item.get("events"), item.get("at_risk")
        ok = True
        if not isinstance(parameter, str) or not parameter:
            problems.append(f"{f}.parameter: must be the name of a journey parameter, got {parameter!r}")
            ok = False
        if group not in GROUPS:
            problems.append(f"{f}.group: must be treated or comparison, got {group!r}")
            ok = False
        for key, value in (("events", events), ("at_risk", at_risk)):
            if key not in item:
                problems.append(f"{f}.{key}: missing required field")
                ok = False
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{f}.{key}: must be an integer >= 0, got {value!r}")
                ok = False
            elif value > MAX_AT_RISK:
                problems.append(f"{f}.{key}: must be <= {MAX_AT_RISK} ({MAX_PARTICIPANTS:,} participants x "
                                f"{MAX_MONTH} months), got {_show(value)}")
                ok = False
        if ok:
            out.append(Evidence(parameter, group, events, at_risk, entry))
    if problems:
        raise ScenarioError(problems)
    return out


def max_at_risk(contract: Contract, group: str, parameter: str) -> tuple[int, str]:
    """Most trials ``parameter`` of ``group`` can have in the scenario, and how that bound is made up.

    A monthly probability or rate: each participant is exposed at most once a month of the horizon.
    A probability used only by branches (per participant reaching ``d`` months in a set): at most
    one spell of ``d`` months after another, so horizon // d spells each.
    """
    members = contract.n_participants if group == "treated" else int(contract.comparison_sizes.sum())
    T = contract.horizon_months
    journey = contract.journey
    monthly = any(e.probability == parameter for st in journey.states for e in st.exits) or any(
        r.rate == parameter for st in journey.states for r in st.events)
    durations = [b.at_month for b in journey.branches if b.probability == parameter]
    if durations and not monthly:
        d = min(durations)
        spells = max(T // d, 1)
        return members * spells, f"{members} {group} participants x {spells} spells of {d} months in {T} months"
    return members * T, f"{members} {group} participants x {T} months"


def _journey_of(contract: Contract, group: str):
    return contract.journey if group == "treated" else contract.comparison.journey


def _entry_problem(contract: Contract, e: Evidence) -> str | None:
    """Why evidence ``e`` cannot update the scenario (unknown parameter or group, a shared draw), or None."""
    if e.group not in GROUPS:
        return f"group must be treated or comparison, got {e.group!r}"
    names = [n for n in _journey_of(contract, e.group).parameter_names if not is_inline(n)]
    if is_inline(e.parameter) and e.parameter in _journey_of(contract, e.group).parameter_names:
        return (f"must be a parameter declared in [journey.parameters] (an inline probability or rate cannot be "
                f"updated: give it a name there), got {e.parameter!r}")
    if e.parameter not in names:
        return f"must be one of the journey's parameters ({', '.join(names)}), got {e.parameter!r}"
    if e.group == "comparison" and e.parameter in contract.comparison.shared:
        return (f"parameter {e.parameter!r} is drawn once for both groups (comparison.shared): give its evidence "
                "for the treated group")
    return None


def check_evidence(contract: Contract, evidence: list[Evidence], source: str) -> list[str]:
    """Every way the evidence contradicts the scenario, as ``file: field: rule`` lines."""
    problems = []
    for i, e in enumerate(evidence):
        entry = e.where or f"evidence[{i}]"
        # Evidence built in code has not been through load_evidence's rules.
        if (why := _entry_problem(contract, e)) is not None:
            problems.append(f"{source}: {entry}.parameter: {why}")
            continue
        counts = [(key, v) for key, v in (("events", e.events), ("at_risk", e.at_risk))
                  if isinstance(v, bool) or not isinstance(v, int) or v < 0]
        for key, v in counts:
            problems.append(f"{source}: {entry}.{key}: must be an integer >= 0, got {v!r}")
        if counts:
            continue
        kind = _journey_of(contract, e.group).prior(e.parameter).kind
        if kind == "probability" and e.events > e.at_risk:  # a rate's events can outnumber its months
            problems.append(f"{source}: {entry}.events: must be <= at_risk ({e.at_risk}), got {e.events}")
        bound, why = max_at_risk(contract, e.group, e.parameter)
        if e.at_risk > bound:
            problems.append(f"{source}: {entry}.at_risk: must be <= {bound} ({why}), got {_show(e.at_risk)}")
    # Pooled evidence may not exceed the bound either (each entry within it, together beyond it).
    pooled: dict[tuple[str, str], int] = {}
    for e in evidence:
        if isinstance(e.at_risk, int) and not isinstance(e.at_risk, bool):
            pooled[e.group, e.parameter] = pooled.get((e.group, e.parameter), 0) + e.at_risk
    for (group, parameter), total in pooled.items():
        if group not in GROUPS or parameter not in _journey_of(contract, group).parameter_names:
            continue
        bound, why = max_at_risk(contract, group, parameter)
        entries = [e for e in evidence if (e.group, e.parameter) == (group, parameter)]
        if total > bound and len(entries) > 1 and all(e.at_risk <= bound for e in entries):
            problems.append(f"{source}: evidence: at_risk of every {group} {parameter} entry together must be "
                            f"<= {bound} ({why}), got {total}")
    return problems


def posterior(prior: Prior, events: int, at_risk: int) -> Prior:
    """Conjugate update of one prior: Beta-binomial, or Gamma-Poisson for a rate (a known value stays)."""
    if prior.is_fixed:
        return prior
    a, b = a_b(prior, events, at_risk)
    if prior.kind == "rate":  # Gamma(shape a, rate b): mean a / b, sd sqrt(a) / b
        return Prior(a / b, math.sqrt(a) / b, kind="rate")
    return Prior.from_alpha_beta(a, b)


def a_b(prior: Prior, events: int, at_risk: int) -> tuple[float, float]:
    """Posterior parameters: Beta (alpha, beta), or Gamma (shape, rate per month) for a rate."""
    if prior.kind == "rate":
        shape, rate = (prior.mean / prior.sd) ** 2, prior.mean / prior.sd**2
        return shape + events, rate + at_risk
    a, b = prior.alpha_beta
    return a + events, b + at_risk - events


def update(contract: Contract, evidence: list[Evidence], source: str = "<evidence>") -> tuple[Contract, pd.DataFrame]:
    """The contract with posterior priors, and a prior -> posterior table.

    Evidence on the same parameter and group is pooled (added up) first.  Raises
    :class:`ScenarioError` (``source: field: rule``) when :func:`check_evidence` finds a problem:
    a posterior from implausible evidence is not a forecast.
    """
    problems = check_evidence(contract, evidence, source)
    if problems:
        raise ScenarioError(problems)
    pooled: dict[tuple[str, str], list[int]] = {}
    for e in evidence:
        total = pooled.setdefault((e.group, e.parameter), [0, 0])
        total[0] += e.events
        total[1] += e.at_risk
    journeys = {"treated": contract.journey, "comparison": contract.comparison.journey}
    rows, changes = [], {"treated": {}, "comparison": {}}
    for (group, parameter), (events, at_risk) in sorted(pooled.items()):
        prior = journeys[group].prior(parameter)
        post = posterior(prior, events, at_risk)
        changes[group][parameter] = post
        rows.append({"group": group, "parameter": parameter, "events": events, "at_risk": at_risk,
                     "observed_rate": events / at_risk if at_risk else math.nan,
                     "prior_mean": prior.mean, "prior_sd": prior.sd,
                     "posterior_mean": post.mean, "posterior_sd": post.sd,
                     "posterior_alpha": math.nan if post.is_fixed else a_b(prior, events, at_risk)[0],
                     "posterior_beta": math.nan if post.is_fixed else a_b(prior, events, at_risk)[1],
                     "kind": prior.kind,
                     "note": "known value: not updated" if prior.is_fixed else ""})
    comparison = contract.comparison
    # The comparison journey inherits every parameter it does not override from the treated one.
    # Evidence on the treated group updates the treated prior only (each group draws its own value),
    # so an inherited parameter is pinned to its prior as an override of its own, as a written
    # variant must state it ("kept" rows); a shared one (one draw for both) takes the posterior.
    shared = {n: post for n, post in changes["treated"].items() if n in comparison.shared}
    pinned = [n for n, post in sorted(changes["treated"].items())
              if n not in comparison.shared and n not in comparison.overrides and n not in changes["comparison"]
              and post != contract.journey.prior(n)]
    for name in pinned:
        prior = comparison.journey.prior(name)
        rows.append({"group": "comparison", "parameter": name, "events": 0, "at_risk": 0, "observed_rate": math.nan,
                     "prior_mean": prior.mean, "prior_sd": prior.sd, "posterior_mean": prior.mean,
                     "posterior_sd": prior.sd, "posterior_alpha": math.nan, "posterior_beta": math.nan,
                     "kind": prior.kind, "note": KEPT})
    # A known value is not updated, nor does evidence on it make it an override.
    new = [n for n, post in changes["comparison"].items() if post != comparison.journey.prior(n)]
    updated = dataclasses.replace(
        contract,
        journey=contract.journey.with_parameters(changes["treated"]),
        comparison=dataclasses.replace(
            comparison, journey=comparison.journey.with_parameters({**changes["comparison"], **shared}),
            overrides=tuple(dict.fromkeys(comparison.overrides + tuple(new) + tuple(pinned)))),
    )
    return updated, pd.DataFrame(rows)


def variant_toml(base_file: Path, target: Path, table: pd.DataFrame, title: str) -> str:
    """A scenario that ``extends`` the base and holds the posterior priors as ``{alpha, beta}``.

    ``extends`` names a base file in the same directory (a bare file name), so ``target`` must be
    next to ``base_file``: the variant used to name its base by a relative path (``../..``), which
    the loader no longer follows.

    Raises
    ------
    OutputError
        If ``target`` is not in the directory of ``base_file``.
    """
    base, target = Path(base_file), Path(target)
    if base.resolve().parent != target.resolve().parent:
        raise OutputError(f"{target}: must be in the directory of {base} (the updated scenario extends it by "
                          f"its bare file name, {base.name}); write it there, e.g. --out "
                          f"{base.parent / target.name}")
    lines = [
        "# Posterior of a mid-term update (sibsim update): the base scenario with its journey priors",
        "# updated by observed counts (Beta-binomial; Gamma-Poisson for a rate). Only the changed priors are here.",
        f"extends = {_toml_string(base.name)}", "", "[meta]", f"title = {_toml_string(title)}", "",
    ]
    for group, section in GROUPS.items():
        part = table[(table["group"] == group) & (table["note"] == "")]
        kept = table[(table["group"] == group) & (table["note"] == KEPT)]
        if part.empty and kept.empty:
            continue
        lines.append(f"[{section}]")
        for _, row in part.iterrows():
            a, b = float(row["posterior_alpha"]), float(row["posterior_beta"])
            if row.get("kind", "probability") == "rate":
                mean, sd = a / b, math.sqrt(a) / b
                lines.append(f"{_toml_key(row['parameter'])} = {{ mean = {mean!r}, sd = {sd!r}, kind = \"rate\" }}  "
                             f"# {row['events']} events in {row['at_risk']} participant-months")
            else:
                lines.append(f"{_toml_key(row['parameter'])} = {{ alpha = {a!r}, beta = {b!r} }}  "
                             f"# {row['events']} events in {row['at_risk']} at risk")
        for _, row in kept.iterrows():  # after the updated ones: the order the posterior's overrides take
            mean, sd = float(row["prior_mean"]), float(row["prior_sd"])
            kind = ', kind = "rate"' if row["kind"] == "rate" else ""
            lines.append(f"{_toml_key(row['parameter'])} = {{ mean = {mean!r}, sd = {sd!r}{kind} }}  "
                         f"# kept: no longer the treated group's prior, which the evidence updates")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def load_variant_text(text: str, target: Path) -> Contract:
    """The contract a variant's ``text`` would load to once written at ``target``, without writing it.

    Raises :class:`ScenarioError` (naming ``target``) when it would not load.
    """
    target = Path(target)
    doc = parse_toml(text, str(target))
    base = doc.pop("extends")
    # Lexically: the target's directory may not exist yet (it is made when the file is written).
    base_doc = _read_document(Path(os.path.normpath(target.resolve().parent / base)), (target,))
    return contract_from_dict(_merge(base_doc, doc), str(target))


def _toml_key(name: str) -> str:
    """A parameter name as a TOML key: bare when it can be, else quoted (:func:`sibsim.toml_text.key`)."""
    return toml_text.key(name)


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string (:func:`sibsim.toml_text.string`: a title with a line break made
    the written variant unreadable)."""
    return toml_text.string(text)
