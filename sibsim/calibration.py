"""Mid-term calibration: update the journey priors with observed counts, then re-forecast.

Each journey probability has a Beta prior.  Part-way through a contract the provider's
records show, for a probability, how many participant-months were exposed to it and
how many events happened (e.g. 820 months looking for work with a diploma, 38 job
starts).  Monthly trials are Bernoulli, so the Beta prior is conjugate:

    posterior = Beta(alpha + events, beta + at_risk - events)

(``long_term_contract`` is a per-job probability: its "months at risk" are the number
of jobs that reached the sustained mark.)  A known value (sd = 0) is not updated.

Evidence file (TOML)::

    [[evidence]]
    parameter = "job_with_diploma"   # a journey probability
    group = "treated"                # or "comparison"
    events = 38
    at_risk = 820                    # participant-months exposed (trials)

``sibsim update`` writes the posterior as a variant scenario holding only the changed
priors (``extends`` the original), so ``sibsim run`` on it is the re-forecast.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import pandas as pd

from .contracts import JOURNEY_PROBABILITIES, Contract, Prior
from .errors import OutputError, ScenarioError
from .scenario import read_scenario_bytes

GROUPS = {"treated": "journey", "comparison": "comparison.journey"}


@dataclasses.dataclass(frozen=True)
class Evidence:
    """Observed events out of ``at_risk`` trials of one journey probability of one group."""

    parameter: str
    group: str
    events: int
    at_risk: int


def load_evidence(path: str | Path) -> list[Evidence]:
    """Read an evidence file; every problem reported as ``file: field: rule``."""
    name = str(path)
    try:
        doc = tomllib.loads(read_scenario_bytes(Path(path)).decode("utf-8"))  # regular, bounded: never hangs
    except FileNotFoundError:
        raise ScenarioError(f"{name}: file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ScenarioError(f"{name}: cannot read evidence: {exc}") from None
    problems, out = [], []
    items = doc.get("evidence")
    if set(doc) - {"evidence", "meta"}:
        problems.append(f"{name}: {sorted(set(doc) - {'evidence', 'meta'})[0]}: unknown key (allowed: evidence, meta)")
    if not isinstance(items, list) or not items:
        raise ScenarioError(problems + [f"{name}: evidence: must be a non-empty array of tables"])
    for i, item in enumerate(items):
        f = f"{name}: evidence[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{f}: must be a table")
            continue
        for key in set(item) - {"parameter", "group", "events", "at_risk"}:
            problems.append(f"{f}.{key}: unknown key (allowed: at_risk, events, group, parameter)")
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
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{f}.{key}: must be an integer >= 0, got {value!r}")
                ok = False
        if ok and events > at_risk:
            problems.append(f"{f}.events: must be <= at_risk ({at_risk}), got {events}")
            ok = False
        if ok:
            out.append(Evidence(parameter, group, events, at_risk))
    if problems:
        raise ScenarioError(problems)
    return out


def posterior(prior: Prior, events: int, at_risk: int) -> Prior:
    """Beta-binomial update of one prior (a known value stays as it is)."""
    if prior.is_fixed:
        return prior
    return Prior.from_alpha_beta(*a_b(prior, events, at_risk))


def a_b(prior: Prior, events: int, at_risk: int) -> tuple[float, float]:
    """Posterior Beta parameters."""
    a, b = prior.alpha_beta
    return a + events, b + at_risk - events


def update(contract: Contract, evidence: list[Evidence]) -> tuple[Contract, pd.DataFrame]:
    """The contract with posterior priors, and a prior -> posterior table.

    Evidence on the same parameter and group is pooled (added up) first.
    """
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


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
