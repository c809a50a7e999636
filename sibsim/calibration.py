"""Mid-term calibration: update the journey priors with observed counts, then re-forecast.

Each journey probability has a Beta prior.  Part-way through a contract the provider's
records show, for a probability, how many participant-months were exposed to it and
how many events happened (e.g. 820 months looking for work with a diploma, 38 job
starts).  Monthly trials are Bernoulli, so the Beta prior is conjugate:

    posterior = Beta(alpha + events, beta + at_risk - events)

(``long_term_contract`` is a per-job probability: its "months at risk" are the number
of jobs that reached the sustained mark.)  A known value (sd = 0) is not updated.

Evidence file (TOML)::

    [meta]
    scenario = "../x.toml"           # optional: the scenario it updates (for sibsim validate)

    [[evidence]]
    parameter = "job_with_diploma"   # a journey probability
    group = "treated"                # or "comparison"
    events = 38
    at_risk = 820                    # participant-months exposed (trials)

``events`` and ``at_risk`` are whole numbers, ``events <= at_risk``; checked against the scenario
(:func:`check_evidence`), ``at_risk`` is at most the group's participants x the scenario's months
(for ``long_term_contract``: x the jobs of ``sustained_job_months`` that fit in them).

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

from .contracts import JOURNEY_PROBABILITIES, Contract, Prior
from .errors import OutputError, ScenarioError
from .observed import meta_problems
from .scenario import (MAX_MONTH, MAX_PARTICIPANTS, _join, _merge, _read_document, _show, contract_from_dict, parse_toml,
                       read_scenario_bytes)

GROUPS = {"treated": "journey", "comparison": "comparison.journey"}


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
        if parameter not in JOURNEY_PROBABILITIES:
            problems.append(f"{f}.parameter: must be one of {', '.join(JOURNEY_PROBABILITIES)}, got {parameter!r}")
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
        if ok and events > at_risk:
            problems.append(f"{f}.events: must be <= at_risk ({at_risk}), got {events}")
            ok = False
        if ok:
            out.append(Evidence(parameter, group, events, at_risk, entry))
    if problems:
        raise ScenarioError(problems)
    return out


def max_at_risk(contract: Contract, group: str, parameter: str) -> tuple[int, str]:
    """Most trials ``parameter`` of ``group`` can have in the scenario, and how that bound is made up.

    A monthly probability: each participant is exposed at most once a month of the horizon.
    ``long_term_contract`` (per sustained job): at most one job of ``sustained_job_months`` after
    another, so horizon // sustained_job_months jobs each.
    """
    members = contract.n_participants if group == "treated" else int(contract.comparison_sizes.sum())
    T = contract.horizon_months
    if parameter == "long_term_contract":
        jobs = max(T // contract.sustained_job_months, 1)
        return members * jobs, (f"{members} {group} participants x {jobs} jobs of "
                                f"{contract.sustained_job_months} months in {T} months")
    return members * T, f"{members} {group} participants x {T} months"


def check_evidence(contract: Contract, evidence: list[Evidence], source: str) -> list[str]:
    """Every way the evidence contradicts the scenario, as ``file: field: rule`` lines."""
    problems = []
    for i, e in enumerate(evidence):
        entry = e.where or f"evidence[{i}]"
        # Evidence built in code has not been through load_evidence's rules.
        if e.parameter not in JOURNEY_PROBABILITIES or e.group not in GROUPS:
            problems.append(f"{source}: {entry}: must name a journey probability and treated or comparison, "
                            f"got {e.parameter!r} of {e.group!r}")
            continue
        counts = [(key, v) for key, v in (("events", e.events), ("at_risk", e.at_risk))
                  if isinstance(v, bool) or not isinstance(v, int) or v < 0]
        for key, v in counts:
            problems.append(f"{source}: {entry}.{key}: must be an integer >= 0, got {v!r}")
        if counts:
            continue
        if e.events > e.at_risk:
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
        if parameter not in JOURNEY_PROBABILITIES or group not in GROUPS:
            continue
        bound, why = max_at_risk(contract, group, parameter)
        entries = [e for e in evidence if (e.group, e.parameter) == (group, parameter)]
        if total > bound and len(entries) > 1 and all(e.at_risk <= bound for e in entries):
            problems.append(f"{source}: evidence: at_risk of every {group} {parameter} entry together must be "
                            f"<= {bound} ({why}), got {total}")
    return problems


def posterior(prior: Prior, events: int, at_risk: int) -> Prior:
    """Beta-binomial update of one prior (a known value stays as it is)."""
    if prior.is_fixed:
        return prior
    return Prior.from_alpha_beta(*a_b(prior, events, at_risk))


def a_b(prior: Prior, events: int, at_risk: int) -> tuple[float, float]:
    """Posterior Beta parameters."""
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
        prior = journeys[group].priors()[parameter]
        post = posterior(prior, events, at_risk)
        changes[group][parameter] = post
        rows.append({"group": group, "parameter": parameter, "events": events, "at_risk": at_risk,
                     "observed_rate": events / at_risk if at_risk else math.nan,
                     "prior_mean": prior.mean, "prior_sd": prior.sd,
                     "posterior_mean": post.mean, "posterior_sd": post.sd,
                     "posterior_alpha": math.nan if post.is_fixed else a_b(prior, events, at_risk)[0],
                     "posterior_beta": math.nan if post.is_fixed else a_b(prior, events, at_risk)[1],
                     "note": "known value: not updated" if prior.is_fixed else ""})
    updated = dataclasses.replace(
        contract,
        journey=dataclasses.replace(contract.journey, **changes["treated"]),
        comparison=dataclasses.replace(contract.comparison,
                                       journey=dataclasses.replace(contract.comparison.journey,
                                                                   **changes["comparison"])),
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
        "# updated by observed counts (Beta-binomial). Only the changed priors are here.",
        f"extends = {_toml_string(base.name)}", "", "[meta]", f"title = {_toml_string(title)}", "",
    ]
    for group, section in GROUPS.items():
        part = table[(table["group"] == group) & (table["note"] == "")]
        if part.empty:
            continue
        lines.append(f"[{section}]")
        for _, row in part.iterrows():
            a, b = float(row["posterior_alpha"]), float(row["posterior_beta"])
            lines.append(f"{row['parameter']} = {{ alpha = {a!r}, beta = {b!r} }}  "
                         f"# {row['events']} events in {row['at_risk']} at risk")
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


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string: quotes, backslashes and every control character escaped
    (a title with a line break made the written variant unreadable)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
