"""Read ``[[factors]]``, ``[[shocks]]`` and ``[correlation]`` (:mod:`sibsim.uncertainty`) from a scenario.

Every rule is reported as one line ``file: field: rule``; the schema is in ``docs/scenario.md``.
"""

from __future__ import annotations

from .checking import MAX_MONTH, _Checker, _describe, _join, _show
from .uncertainty import GROUPS, MAX_SIGMA, Copula, Factor, Shock, Uncertainty, matrix_problem


def _parameters(c: _Checker, t: dict, field: str, names) -> tuple[str, ...] | None:
    """A non-empty list of journey parameter names, each once."""
    raw = t.get("parameters")
    where = _join(field, "parameters")
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
        c.problem(where, f"must be a non-empty list of parameter names, got {_describe(raw)}")
        return None
    if len(set(raw)) != len(raw):
        c.problem(where, f"must name each parameter once, got {next(x for x in raw if raw.count(x) > 1)!r} twice")
        return None
    if names is not None and (unknown := [x for x in raw if x not in names]):
        c.problem(where, f"must name parameters of [journey.parameters] ({', '.join(names)}), got {unknown[0]!r}")
        return None
    return tuple(raw)


def _groups(c: _Checker, t: dict, field: str, method: str | None) -> tuple[str, ...] | None:
    """The groups a factor or shock reaches: by default those that meet the labour market."""
    measured = method != "expected"
    default = GROUPS if measured else ("treated",)
    if "groups" not in t:
        return default
    raw, where = t["groups"], _join(field, "groups")
    if not isinstance(raw, list) or not raw or any(g not in GROUPS for g in raw) or len(set(raw)) != len(raw):
        c.problem(where, f"must be a non-empty list of distinct groups among {', '.join(GROUPS)}, got {_describe(raw)}")
        return None
    if "comparison" in raw and not measured:
        c.problem(where, "must not name comparison with a modelled counterfactual (comparison.method = "
                  "\"expected\"): the contract's formula does not meet the labour market, got comparison")
        return None
    return tuple(g for g in GROUPS if g in raw)


def shock_numbers(c: _Checker, t: dict, f: str, horizon: int | None = None) -> tuple:
    """A shock's ``start_month``, ``months``, ``change`` and ``probability`` (None where a rule is broken):
    the same rules in a scenario and in a portfolio (whose months count from its own month 0)."""
    start = c.number(t, "start_month", f, integer=True, ge=0, le=MAX_MONTH)
    if start is not None and horizon is not None and start >= horizon:
        c.problem(_join(f, "start_month"), f"must be < {horizon} (the horizon: term plus tail months), got {start}")
        start = None
    months = c.number(t, "months", f, integer=True, ge=1, le=MAX_MONTH)
    change = c.number(t, "change", f, ge=-1, le=10)
    probability = c.number(t, "probability", f, default=1.0, gt=0, le=1)
    if change == 0:
        c.problem(_join(f, "change"), "must not be 0 (a shock that changes nothing), got 0")
        change = None
    return start, months, change, probability


def read_uncertainty(c: _Checker, doc: dict, journey, comparison, method: str | None,
                     horizon: int | None) -> Uncertainty | None:
    """The scenario's correlated uncertainty; None when a problem was reported."""
    names = None if journey is None else journey.parameter_names
    before = len(c.problems)
    seen: dict = {}
    factors = []
    items = c.array_of_tables(doc["factors"], "factors") if "factors" in doc else []
    for i, item in enumerate(items):
        f = f"factors[{i}]"
        t = c.table(item, f, required=("name", "sigma", "parameters"), optional=("distribution", "groups"))
        if t is None:
            continue
        name = c.name(t, "name", f)
        if not c.unique_name(name, _join(f, "name"), seen):
            name = None
        if t.get("distribution", "lognormal") != "lognormal":
            c.problem(_join(f, "distribution"), f"must be lognormal (a multiplier with mean 1), "
                      f"got {_describe(t['distribution'])}")
        sigma = c.number(t, "sigma", f, gt=0, le=MAX_SIGMA)
        params = _parameters(c, t, f, names)
        groups = _groups(c, t, f, method)
        if None not in (name, sigma, params, groups):
            factors.append(Factor(name, float(sigma), params, groups))
    shocks = []
    items = c.array_of_tables(doc["shocks"], "shocks") if "shocks" in doc else []
    for i, item in enumerate(items):
        f = f"shocks[{i}]"
        t = c.table(item, f, required=("name", "start_month", "months", "parameters", "change"),
                    optional=("probability", "groups"))
        if t is None:
            continue
        name = c.name(t, "name", f)
        if not c.unique_name(name, _join(f, "name"), seen):
            name = None
        start, months, change, probability = shock_numbers(c, t, f, horizon)
        params = _parameters(c, t, f, names)
        groups = _groups(c, t, f, method)
        if None not in (name, start, months, change, probability, params, groups):
            shocks.append(Shock(name, int(start), int(months), params, float(change), float(probability), groups))
    copula = _copula(c, doc["correlation"], journey, comparison) if "correlation" in doc else None
    if len(c.problems) > before:
        return None
    return Uncertainty(tuple(factors), tuple(shocks), copula)


def _copula(c: _Checker, value, journey, comparison) -> Copula | None:
    t = c.table(value, "correlation", required=("parameters", "matrix"))
    if t is None:
        return None
    raw = t.get("parameters")
    where = "correlation.parameters"
    if not isinstance(raw, list) or len(raw) < 2 or not all(isinstance(x, str) for x in raw):
        c.problem(where, f"must list at least 2 parameter names, got {_describe(raw)}")
        return None
    if len(set(raw)) != len(raw):
        c.problem(where, f"must name each parameter once, got {next(x for x in raw if raw.count(x) > 1)!r} twice")
        return None
    if journey is None or comparison is None:
        return None
    for k, name in enumerate(raw):
        group, _, pname = name.rpartition(".")
        field = f"{where}[{k}]"
        if group not in ("", "comparison"):
            c.problem(field, f"must be a journey parameter or comparison.<parameter>, got {name!r}")
            return None
        owner = comparison.journey if group else journey
        priors = dict(owner.parameters)
        if pname not in priors:
            c.problem(field, f"must name a parameter of [journey.parameters] ({', '.join(journey.parameter_names)}), "
                      f"got {pname!r}")
            return None
        if group and (pname in comparison.shared or pname not in comparison.overrides):
            c.problem(field, f"must name a parameter the comparison group draws on its own ([comparison.parameters], "
                      f"not shared), got {name!r}")
            return None
        if priors[pname].is_fixed:
            c.problem(field, f"must name an uncertain parameter (a prior with sd > 0): {name!r} is fixed at "
                      f"{_show(priors[pname].mean)}")
            return None
    problem = matrix_problem(t.get("matrix"), len(raw))
    if problem is not None:
        c.problem("correlation.matrix", f"{problem} ({len(raw)} parameters)")
        return None
    return Copula(tuple(raw), tuple(tuple(float(x) for x in row) for row in t["matrix"]))
