"""Read a portfolio file (``docs/scenario.md``, *Portfolios*) into a :class:`sibsim.portfolio.Portfolio`.

Every problem is one line ``file: field: rule`` (a holding's scenario reports its own problems
with its own file name), all reported at once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .checking import _Checker, _describe, _join, _show
from .errors import ScenarioError
from .portfolio import Holding, Portfolio, deal_shock, months_between
from .scenario import _start_date, load_scenario, parse_toml, read_scenario_bytes
from .scenario_uncertainty import shock_numbers
from .uncertainty import GROUPS, MAX_SIGMA, Factor, Shock, Uncertainty

_TOP = ("portfolio", "holdings", "factors", "shocks")


def _holding_names(c: _Checker, t: dict, field: str, labels: list[str]) -> tuple[str, ...] | None:
    if "holdings" not in t:
        return tuple(labels)
    raw = t["holdings"]
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw) or len(set(raw)) != len(raw):
        c.problem(_join(field, "holdings"), f"must be a non-empty list of distinct holding labels, got {_describe(raw)}")
        return None
    if unknown := [x for x in raw if x not in labels]:
        c.problem(_join(field, "holdings"), f"must name holdings ({', '.join(labels)}), got {unknown[0]!r}")
        return None
    return tuple(raw)


def _deal_parameters(c: _Checker, t: dict, field: str, holdings: dict, names: tuple[str, ...]) -> dict | None:
    """Per holding label, the parameters a shared term moves: a table by label, else the deal's
    ``analysis.labour_market_parameters`` (its outflow parameters when not given)."""
    out = {}
    given = t.get("parameters", {})
    if not isinstance(given, dict):
        c.problem(_join(field, "parameters"), f"must be a table of holding label -> parameter names, got {_describe(given)}")
        return None
    for label in given:
        if label not in names:
            c.problem(_join(_join(field, "parameters"), label), f"must be a holding the term reaches ({', '.join(names)})")
            return None
    for label in names:
        journey = holdings[label].contract.journey
        raw = given.get(label)
        if raw is None:
            chosen = holdings[label].contract.labour_market_parameter_names
            if not chosen:
                c.problem(_join(field, "parameters"), f"must list {label!r}'s parameters: its scenario names no "
                          "analysis.labour_market_parameters (nor outflow or success parameters)")
                return None
            out[label] = tuple(chosen)
            continue
        where = _join(_join(field, "parameters"), label)
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw) or len(set(raw)) != len(raw):
            c.problem(where, f"must be a non-empty list of distinct parameter names, got {_describe(raw)}")
            return None
        if unknown := [x for x in raw if x not in journey.parameter_names]:
            c.problem(where, f"must name parameters of the deal's journey ({', '.join(journey.parameter_names)}), "
                      f"got {unknown[0]!r}")
            return None
        out[label] = tuple(raw)
    return out


def load_portfolio(path: str | Path) -> Portfolio:
    """Read and check a portfolio file and every scenario it holds; raise :class:`ScenarioError`."""
    path = Path(path)
    name = str(path)
    try:
        raw = read_scenario_bytes(path)
    except OSError as exc:
        raise ScenarioError(f"{name}: {'file not found' if isinstance(exc, FileNotFoundError) else exc}") from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    doc = parse_toml(text, name)
    c = _Checker(name)
    top = c.table(doc, "", required=("portfolio", "holdings"), optional=_TOP)
    if top is None:
        raise ScenarioError(c.problems)
    meta = c.table(doc.get("portfolio", {}), "portfolio", required=("title",),
                   optional=("title", "description", "start", "shared")) or {}
    title = c.string(meta, "title", "portfolio") if "title" in meta else None
    start = _start_date(c, meta["start"], "portfolio.start") if "start" in meta else None
    shared_names = meta.get("shared", [])
    if not isinstance(shared_names, list) or not all(isinstance(x, str) for x in shared_names) \
            or len(set(shared_names)) != len(shared_names):
        c.problem("portfolio.shared", f"must be a list of distinct names of factors or shocks the scenarios define, "
                  f"got {_describe(shared_names)}")
        shared_names = []

    holdings: dict[str, dict] = {}
    items = c.array_of_tables(doc.get("holdings", []), "holdings")
    for i, item in enumerate(items):
        f = f"holdings[{i}]"
        t = c.table(item, f, required=("label", "scenario", "amount"), optional=("investor", "start"))
        if t is None:
            continue
        label = c.name(t, "label", f)
        if label is not None and label in holdings:
            c.problem(_join(f, "label"), f"must be unique, {label!r} appears twice")
            label = None
        scenario = t.get("scenario")
        if not isinstance(scenario, str) or not scenario.endswith(".toml"):
            c.problem(_join(f, "scenario"), f"must be the path of a scenario file (.toml), relative to this file, "
                      f"got {_describe(scenario)}")
            continue
        try:
            contract = load_scenario(path.parent / scenario)
        except ScenarioError as exc:
            c.problems.extend(exc.problems)
            continue
        amount = c.amount(t, "amount", f, gt=0)
        investor = t.get("investor")
        names = [inv.name for inv in contract.investors]
        if "investor" in t and investor not in names:
            c.problem(_join(f, "investor"), f"must be an investor of {scenario} ({', '.join(names)}), "
                      f"got {_describe(investor)}")
            continue
        holding = Holding(label or f, contract, float(amount or 1.0), investor)
        if amount is not None and amount > holding.commitment * (1 + 1e-12):
            c.problem(_join(f, "amount"), f"must be <= the commitment it holds ({contract.currency} "
                      f"{holding.commitment:,.2f}{' of ' + investor if investor else ''}), got {_show(amount)}")
        deal_start = _start_date(c, t["start"], _join(f, "start")) if "start" in t else contract.start
        if deal_start is None:
            c.problem(_join(f, "start"), f"missing: {scenario} has no meta.start; give the holding's start "
                      "(YYYY-MM) to place the deal in calendar time")
        if label is not None and amount is not None:
            holdings[label] = {"holding": holding, "start": deal_start, "field": f}
    currencies = {h["holding"].contract.currency for h in holdings.values()}
    if len(currencies) > 1:
        c.problem("holdings", f"must all be in one currency, got {', '.join(sorted(currencies))}")
    if c.problems:
        raise ScenarioError(c.problems)
    labels = list(holdings)
    starts = [h["start"] for h in holdings.values()]
    origin = start or min(starts)
    for label, h in holdings.items():
        offset = months_between(origin, h["start"])
        if offset < 0:
            c.problem(_join(h["field"], "start"), f"must not be before portfolio.start ({origin}), got {h['start']}")
        h["offset"] = offset

    # Portfolio terms: defined once, added to each deal they reach (in the deal's months).
    added: dict[str, list] = {label: [] for label in labels}  # label -> [("factor"|"shock", term)]
    shared_terms: list = []
    seen: set = set()
    for section in ("factors", "shocks"):
        for i, item in enumerate(c.array_of_tables(doc[section], section) if section in doc else []):
            f = f"{section}[{i}]"
            req = ("name", "sigma") if section == "factors" else ("name", "start_month", "months", "change")
            opt = req + ("holdings", "parameters") + (("probability",) if section == "shocks" else ())
            t = c.table(item, f, required=req, optional=opt)
            if t is None:
                continue
            term_name = c.name(t, "name", f)
            if term_name in seen:
                c.problem(_join(f, "name"), f"must be unique among the portfolio's factors and shocks, got {term_name!r}")
                continue
            seen.add(term_name)
            reached = _holding_names(c, t, f, labels)
            params = None if reached is None else _deal_parameters(c, t, f, {k: v["holding"] for k, v in holdings.items()},
                                                                  reached)
            if section == "factors":
                sigma = c.number(t, "sigma", f, gt=0, le=MAX_SIGMA)
                if None in (term_name, sigma, params):
                    continue
                shared_terms.append(Factor(term_name, float(sigma), ()))
                for label in reached:
                    added[label].append(Factor(term_name, float(sigma), params[label], _groups_of(holdings[label])))
            else:
                first, months, change, probability = shock_numbers(c, t, f)
                if None in (term_name, first, months, change, probability, params):
                    continue
                shock = Shock(term_name, int(first), int(months), (), float(change), float(probability))
                shared_terms.append(shock)
                for label in reached:
                    h = holdings[label]
                    moved = deal_shock(dataclasses.replace(shock, parameters=params[label], groups=_groups_of(h)),
                                       h["offset"], h["holding"].contract.horizon_months)
                    if moved is not None:
                        added[label].append(moved)
    # Names the scenarios define themselves, shared when the portfolio says so.
    for k, term_name in enumerate(shared_names):
        where = f"portfolio.shared[{k}]"
        if term_name in seen:
            c.problem(where, f"must not name a factor or shock of this file (those are shared already), got {term_name!r}")
            continue
        defining = [(label, t) for label, h in holdings.items()
                    for t in h["holding"].contract.uncertainty.factors + h["holding"].contract.uncertainty.shocks
                    if t.name == term_name]
        if len(defining) < 2:
            c.problem(where, f"must name a factor or shock defined in at least two holdings' scenarios, got "
                      f"{term_name!r} (in {len(defining)})")
            continue
        kinds = {type(t) for _, t in defining}
        if len(kinds) > 1:
            c.problem(where, f"must name factors or shocks, not both: {term_name!r} is a factor in one scenario and "
                      "a shock in another")
            continue
        if kinds == {Shock} and len({t.probability for _, t in defining}) > 1:
            c.problem(where, f"shock {term_name!r} must have one probability in every scenario sharing it, got "
                      f"{', '.join(sorted({_show(t.probability) for _, t in defining}))}")
            continue
        shared_terms.append(defining[0][1])
    for label, terms in added.items():
        own = holdings[label]["holding"].contract.uncertainty
        clash = [t.name for t in terms if t.name in own.names]
        if clash:
            c.problem(holdings[label]["field"], f"its scenario already defines {clash[0]!r}: name the portfolio's "
                      f"term differently, or share the scenarios' own with portfolio.shared")
    if c.problems:
        raise ScenarioError(c.problems)
    out = []
    for label, h in holdings.items():
        holding = h["holding"]
        own = holding.contract.uncertainty
        factors = own.factors + tuple(t for t in added[label] if isinstance(t, Factor))
        shocks = own.shocks + tuple(t for t in added[label] if isinstance(t, Shock))
        contract = dataclasses.replace(holding.contract, uncertainty=Uncertainty(factors, shocks, own.copula))
        out.append(dataclasses.replace(holding, label=label, contract=contract, offset=h["offset"]))
    shared = Uncertainty(tuple(t for t in shared_terms if isinstance(t, Factor)),
                         tuple(t for t in shared_terms if isinstance(t, Shock)))
    return Portfolio(title, tuple(out), shared, origin, name)


def _groups_of(h: dict) -> tuple[str, ...]:
    """The groups a portfolio term reaches in a deal: those that meet the labour market."""
    return GROUPS if h["holding"].contract.comparison.method != "expected" else ("treated",)
