"""Read a scenario TOML file into a :class:`~sibsim.contracts.Contract`.

Every rule is checked and every problem reported at once, each as one line
``file: field: rule`` (OpenFisca style), so ``sibsim validate`` can list them
all.  The file is data only: parsed with :mod:`tomllib`, never evaluated.
The full schema is documented in ``docs/scenario.md``.
"""

from __future__ import annotations

import dataclasses

import datetime
import hashlib
import os
import re
import stat
import tomllib
import unicodedata
from pathlib import Path

from .checking import (  # noqa: F401  (re-exported: the loaders of observed and evidence files use them)
    _HIDDEN_CATEGORIES,
    _MISSING,
    MAX_AMOUNT,
    MAX_COMPARISON_MEMBERS,
    MAX_FILE_BYTES,
    MAX_KEY_PARTS,
    MAX_MONTH,
    MAX_PARTICIPANTS,
    MAX_SIZE_RATIO,
    MIN_AMOUNT,
    MIN_CAPITAL,
    _Checker,
    _describe,
    _join,
    _show,
    name_key,
)
from . import scenario_stack as stack
from .contracts import (
    MEASURES,
    Cohort,
    CohortTrigger,
    Contract,
    DrawOrder,
    Fee,
    Guarantee,
    OutcomePayer,
    SavingsShare,
    TierTable,
)
from .errors import ScenarioError
from .language import LANGUAGES
from .scenario_journey import JourneyReader, old_format_problem, outcome_problems
from .scenario_uncertainty import read_uncertainty


# --- the document ---------------------------------------------------------------
_TOP = {
    "meta": True, "term": True, "investors": True, "provider": True, "fees": False, "payer": True,
    "cohorts": True, "journey": True, "outcomes": True, "costs": False, "comparison": True, "analysis": False,
    "guarantees": False, "capital": False, "waterfall": False, "payers": False, "external_stop": False,
    "factors": False, "shocks": False, "correlation": False,
}
#: Keys of the scenario format before the journey was a state machine, and where they went.
_OLD_KEYS = {
    ("savings",): "[savings] is now [[costs]]: what the payer spends per participant-month in states or per "
                  "event (the savings are the comparison group's costs less the treated group's); see docs/scenario.md",
    ("term", "sustained_job_months"): "a sustained job is now a milestone outcome ([outcomes.<name>] with kind = "
                                      "\"milestone\" and months); see docs/scenario.md",
    ("meta", "outcome_labels"): "an outcome's label is now given in its own table ([outcomes.<name>] label); "
                                "see docs/scenario.md",
    ("comparison", "journey"): "the comparison group now shares the journey and overrides its parameters "
                               "([comparison.parameters], comparison.start); see docs/scenario.md",
    ("payer", "rate_card", "benefit_month_saved"): "months off benefits are now an occupancy outcome priced by "
                                                   "its name ([outcomes.<name>] kind = \"occupancy\"); see "
                                                   "docs/scenario.md",
    ("payer", "rate_card", "benefit_day_saved"): "benefit days are now an occupancy outcome with scale = 30.4375 "
                                                 "days a month, priced per day by its name; see docs/scenario.md",
}
COUNTERFACTUAL_METHODS = ("comparison_group", "expected")
#: Who pays a fee: out of called capital, the payer, or the waterfall's ``fees`` step (outcome money).
FEE_PAYERS = ("investors", "payer", "waterfall")


def _savings_share(c: _Checker, value, field: str, tranches: stack.Tranches) -> SavingsShare | None:
    """A number (one rate) or ``{rate, switch_multiple, rate_after}``, or ``{rate, rate_after, until}``
    (the switch follows the balance of the ``until`` tranches, :func:`sibsim.scenario_stack.read_until`)."""
    if isinstance(value, dict):
        t = c.table(value, field, required=("rate",), optional=("switch_multiple", "rate_after", "until"))
        if t is None:
            return None
        rate = c.number(t, "rate", field, ge=0, le=1)
        switch = c.number(t, "switch_multiple", field, default=None, gt=0, le=100)
        after = c.number(t, "rate_after", field, default=0.0, ge=0, le=1)
        until = stack.read_until(c, t["until"], _join(field, "until"), tranches) if "until" in t else ((), 0.0, False)
        if "until" in t and "switch_multiple" in t:
            c.problem(_join(field, "until"), "give switch_multiple (a multiple of the planned capital) or until (the "
                      "tranches' balance), not both: a share switches once, got both")
            return None
        if "rate_after" in t and "switch_multiple" not in t and "until" not in t:
            c.problem(_join(field, "rate_after"), "must come with switch_multiple (the multiple of capital called "
                      "after which it applies) or until (the tranches whose balance it follows), got neither")
            return None
        if None in (rate, after, until) or ("switch_multiple" in t and switch is None):
            return None
        if "until" in t and rate == 0:
            c.problem(_join(field, "until"), "must come with rate > 0 (a share of nothing never switches), got rate 0")
            return None
        if (switch is not None or "until" in t) and after > rate:
            c.problem(_join(field, "rate_after"), f"must be <= rate ({_show(rate)}): the share falls once principal "
                      f"and return are paid, got {_show(after)}")
            return None
        return SavingsShare(float(rate), None if switch is None else float(switch), float(after), *until)
    rate = c.check_number(value, field, ge=0, le=1)
    return None if rate is None else SavingsShare(float(rate))


#: ``[analysis]`` lists of journey parameters the named what-ifs move (:mod:`sibsim.stress`).
STRESS_ROLES = ("outflow_parameters", "relapse_parameters", "labour_market_parameters")


def _start_date(c: _Checker, value, field: str) -> str | None:
    """A start date as ISO text (``YYYY-MM`` or ``YYYY-MM-DD``), from a TOML date or such a string.

    Anything else (``"yesterday"``, ``"04/2015"``) is refused: it was accepted, and reports then
    silently dropped every calendar date.
    """
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    m = re.fullmatch(r"(\d{4})-(\d{2})(?:-(\d{2}))?", value) if isinstance(value, str) else None
    if m:
        try:
            datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3) or 1))
            return value
        except ValueError:
            pass
    c.problem(field, f"must be a date: a TOML date (2015-04-01) or an ISO date string 'YYYY-MM-DD' or 'YYYY-MM', "
              f"got {_describe(value)}")
    return None


def _tier(c: _Checker, item, field: str, outcomes: tuple[str, ...]) -> TierTable | None:
    t = c.table(item, field, required=("outcome", "measure", "points"), optional=("interpolation", "minimum"))
    if t is None:
        return None
    outcome = _outcome_name(c, t, field, outcomes)
    measure = c.choice(t, "measure", field, MEASURES)
    interpolation = c.choice(t, "interpolation", field, ("step", "linear"), default="step")
    points = []
    raw = t.get("points")
    if "points" in t:
        if not isinstance(raw, list) or not raw:
            c.problem(_join(field, "points"), f"must be a non-empty array of [improvement, {c.currency}] pairs, "
                      f"got {_describe(raw)}")
            return None
        for j, pair in enumerate(raw):
            f = f"{field}.points[{j}]"
            if not isinstance(pair, list) or len(pair) != 2:
                c.problem(f, f"must be an [improvement, {c.currency}] pair, got {_describe(pair)}")
                return None
            x = c.check_number(pair[0], f"{f}[0]", ge=-1e6, le=1e6)
            y = c.check_cents(c.check_number(pair[1], f"{f}[1]", ge=0, le=MAX_AMOUNT), f"{f}[1]")
            if x is None or y is None:
                return None
            points.append((float(x), float(y)))
        for j in range(1, len(points)):
            if points[j][0] <= points[j - 1][0]:
                c.problem(f"{field}.points[{j}][0]", f"tiers overlap: improvements must increase strictly, "
                          f"got {_show(points[j][0])} after {_show(points[j - 1][0])}")
                return None
            if points[j][1] < points[j - 1][1]:
                c.problem(f"{field}.points[{j}][1]", f"payments must not fall as the improvement rises, "
                          f"got {_show(points[j][1])} after {_show(points[j - 1][1])}")
                return None
    minimum = c.number(t, "minimum", field, default=points[0][0] if points else 0.0, ge=-1e6, le=1e6)
    if None in (outcome, measure, interpolation, minimum) or not points:
        return None
    return TierTable(outcome, measure, tuple(points), interpolation, float(minimum))


def _trigger(c: _Checker, item, field: str, outcomes: tuple[str, ...]) -> CohortTrigger | None:
    t = c.table(item, field, required=("outcome", "measure", "follow_up_months", "cohort_threshold",
                                       "pooled_threshold", "price"))
    if t is None:
        return None
    outcome = _outcome_name(c, t, field, outcomes)
    measure = c.choice(t, "measure", field, MEASURES)
    follow_up = c.number(t, "follow_up_months", field, integer=True, ge=1, le=MAX_MONTH)
    cohort = c.number(t, "cohort_threshold", field, ge=-1e6, le=1e6)
    pooled = c.number(t, "pooled_threshold", field, ge=-1e6, le=1e6)
    price = c.amount(t, "price", field, ge=0)
    if cohort is not None and pooled is not None and cohort < pooled:
        c.problem(_join(field, "cohort_threshold"), f"thresholds out of order: the early per-cohort bar must be "
                  f">= the pooled bar ({_show(pooled)}), got {_show(cohort)}")
        return None
    if None in (outcome, measure, follow_up, cohort, pooled, price):
        return None
    return CohortTrigger(outcome, measure, follow_up, float(cohort), float(pooled), float(price))


def _outcome_name(c: _Checker, t: dict, field: str, outcomes: tuple[str, ...] | None) -> str | None:
    """The name of an outcome of ``[outcomes]`` (``None`` while they are unread: reported there)."""
    if outcomes is None or "outcome" not in t:
        return None
    return c.choice(t, "outcome", field, outcomes)


def _old_keys(doc: dict) -> list[tuple[str, str]]:
    """``(field, hint)`` for each key of the format before the state machine found in ``doc``."""
    out = []
    for path, hint in _OLD_KEYS.items():
        node = doc
        for key in path:
            node = node.get(key, _MISSING) if isinstance(node, dict) else _MISSING
        if node is not _MISSING:
            out.append((".".join(path), hint))
    return out


def contract_from_dict(doc: dict, file: str = "<scenario>",
                       files: tuple[tuple[str, str], ...] = (), label: str | None = None) -> Contract:
    """Build a :class:`Contract` from a parsed TOML document; raise :class:`ScenarioError`.

    ``files`` is recorded as :attr:`Contract.files`: ``(path, sha256)`` of every file read.
    ``label`` names the document in problems and warnings instead of ``file`` (e.g. the file
    with the command line's changes, :mod:`sibsim.whatif`); ``file`` stays the contract's source.
    """
    shown = file if label is None else label
    c = _Checker(shown)
    old = old_format_problem(doc) if isinstance(doc, dict) else None
    if old:  # a whole scenario in the old format: one line pointing to the new one, not dozens of unknown keys
        raise ScenarioError([f"{shown}: {old}"])
    if isinstance(doc, dict):
        doc = _without_old_keys(c, doc)
    top = c.table(doc, "", required=[k for k, req in _TOP.items() if req], optional=list(_TOP))
    if top is None:
        raise ScenarioError(c.problems)
    g = lambda key: doc.get(key, _MISSING)  # noqa: E731  (a missing section is reported once, above)

    # [meta]
    meta = c.table(g("meta"), "meta", required=("title",),
                   optional=("description", "currency", "start", "sources", "assumptions", "notes",
                             "language")) or {}
    title = c.string(meta, "title", "meta")
    if title is not None and not c.plain_text(title, "meta.title"):
        title = None
    for key in ("sources", "assumptions"):
        if key in meta and (not isinstance(meta[key], list) or not all(isinstance(s, str) for s in meta[key])):
            c.problem(f"meta.{key}", f"must be an array of strings, got {_describe(meta[key])}")
        elif key in meta:
            for i, text in enumerate(meta[key]):
                c.plain_text(text, f"meta.{key}[{i}]")
    for key in ("description", "notes"):
        if key in meta and c.string(meta, key, "meta") is not None:
            c.plain_text(meta[key], f"meta.{key}")
    currency = meta.get("currency", "EUR")
    if not (isinstance(currency, str) and re.fullmatch(r"[A-Z]{3}", currency)):
        # Every amount in every output and message is labelled with it: it must be a code, on one line.
        c.problem("meta.currency", f"must be a three-letter ISO 4217 code such as EUR, GBP or USD, "
                  f"got {_describe(currency)}")
    else:
        c.currency = currency
    start = _start_date(c, meta["start"], "meta.start") if "start" in meta else None
    if "language" in meta and meta["language"] not in LANGUAGES:  # the memo's language (sibsim report)
        c.problem("meta.language", f"must be one of {', '.join(LANGUAGES)} (English, Dutch), "
                  f"got {_describe(meta['language'])}")

    # [term]
    term = c.table(g("term"), "term", required=("term_months",), optional=("tail_months",)) or {}
    term_months = c.number(term, "term_months", "term", integer=True, gt=0, le=MAX_MONTH)
    tail_months = c.number(term, "tail_months", "term", default=0, integer=True, ge=0, le=MAX_MONTH)
    last_month = term_months if term_months is not None else MAX_MONTH

    # [[investors]]: the tranches of the capital stack
    tranches = stack.read_tranches(c, g("investors"), last_month)
    investors = tranches.investors

    # [provider]
    provider = c.table(g("provider"), "provider", required=("name", "budget"), optional=("recycling",)) or {}
    recycling = c.boolean(provider, "recycling", "provider", default=False)
    provider_name = c.name(provider, "name", "provider")
    budget = c.schedule(provider, "budget", "provider")
    if budget is not None and term_months is not None and budget.last_month >= term_months:
        c.problem("provider.budget", f"delivery must be budgeted within the term (months < {term_months}), "
                  f"got month {budget.last_month}")

    # [[fees]]
    fees = []
    fee_items = c.array_of_tables(doc["fees"], "fees", min_len=0) if "fees" in doc else []
    fees_ok = "fees" not in doc or isinstance(doc["fees"], list)
    fee_names: dict[str, tuple[str, str]] = {}
    fee_fields: list[tuple[Fee, str]] = []
    for i, item in enumerate(fee_items):
        f = f"fees[{i}]"
        t = c.table(item, f, required=("name", "paid_by", "schedule"))
        if t is None:
            continue
        name = c.name(t, "name", f)
        if not c.unique_name(name, _join(f, "name"), fee_names):
            name = None
        paid_by = t.get("paid_by")
        if "paid_by" in t and paid_by not in FEE_PAYERS:
            c.problem(_join(f, "paid_by"), f"must be 'investors', 'payer' or 'waterfall', got {_describe(paid_by)}")
            paid_by = None
        schedule = c.schedule(t, "schedule", f)
        if None not in (name, paid_by, schedule):
            fees.append(Fee(name, paid_by, schedule))
            fee_fields.append((fees[-1], f))
    fees_ok = fees_ok and len(fees) == len(fee_items)

    # [journey], [outcomes], [[costs]]: read before the payer, whose terms name outcomes
    reader = JourneyReader(c)
    journey = reader.read(g("journey"))
    outcomes = reader.outcomes(g("outcomes"))
    outcome_names = None if outcomes is None else tuple(o.name for o in outcomes)
    costs = reader.costs(doc["costs"]) if "costs" in doc else ()

    # [payer]
    # With [[payers]], [payer] keeps only the payment formula (its name optional); each payer its cap, lag, default.
    payer_given = isinstance(doc.get("payer"), dict)
    several = "payers" in doc
    p = c.table(g("payer"), "payer", required=() if several else ("name",), optional=(
        "name", "measurement_months", "payment_lag_months", "payment_cap", "savings_share", "rate_card", "tiers",
        "trigger", "default_probability", "review")) or {}
    payer_name = c.name(p, "name", "payer") if "name" in p or not several else None
    measurement = c.month_list(p, "measurement_months", "payer", lo=1, hi=last_month) if "measurement_months" in p else ()
    if several:
        stack.formula_payer_problems(c, p)
        lag, cap, default_p = 0, None, 0.0
    else:
        lag = c.number(p, "payment_lag_months", "payer", default=0, integer=True, ge=0, le=MAX_MONTH)
        cap = c.amount(p, "payment_cap", "payer", default=None, gt=0)
        default_p = c.number(p, "default_probability", "payer", default=0.0, ge=0, lt=1)
    share = _savings_share(c, p.get("savings_share", 0.0), "payer.savings_share", tranches)
    rate_card: list[tuple[str, float]] = []
    rate_card_ok = True  # False once a problem in it is reported
    if "rate_card" in p:
        # Keyed by outcome name: a price per net unit of the outcome (per unit of its scale, e.g. per day).
        rc = c.table(p["rate_card"], "payer.rate_card", optional=tuple(p["rate_card"]) if isinstance(
            p["rate_card"], dict) else ())
        rate_card_ok = rc is not None and outcome_names is not None
        for key in rc or {}:
            if outcome_names is not None and key not in outcome_names:
                c.problem(_join("payer.rate_card", key), f"unknown outcome {key!r} (outcomes: "
                          f"{', '.join(outcome_names)})")
                rate_card_ok = False
                continue
            price = c.amount(rc, key, "payer.rate_card", ge=0)
            if price is None:
                rate_card_ok = False
            else:
                rate_card.append((key, float(price)))
    tiers = tuple(_tier(c, item, f"payer.tiers[{i}]", outcome_names)
                  for i, item in enumerate(c.array_of_tables(p["tiers"], "payer.tiers") if "tiers" in p else []))
    trigger = _trigger(c, p["trigger"], "payer.trigger", outcome_names) if "trigger" in p else None
    review = (stack.read_review(c, p["review"], "payer.review", last_month,
                                lambda t, f: _outcome_name(c, t, f, outcome_names)) if "review" in p else None)
    if share is not None and share.rate > 0 and costs == ():
        c.problem("payer.savings_share", f"must come with [[costs]] (the savings it shares are the comparison "
                  f"group's costs less the treated group's), got savings_share {_show(share.rate)} and no costs")
    if payer_given and not measurement and "measurement_months" not in p and "trigger" not in p:
        c.problem("payer.measurement_months", "missing required field (needed unless a trigger sets the dates)")
    pays = (any(price > 0 for _, price in rate_card) or (share is not None and share.rate > 0)
            or any(t is not None for t in tiers) or trigger is not None)
    if payer_given and rate_card_ok and share is not None and "tiers" not in p and "trigger" not in p and not pays:
        c.problem("payer", "must pay for something: give a rate_card with a price > 0, a savings_share > 0, "
                  "tiers or a trigger")
    if measurement == () and (rate_card or tiers or (share is not None and share.rate > 0)) and "trigger" in p \
            and "measurement_months" not in p:
        c.problem("payer.measurement_months", "missing required field (the rate card, tiers and savings share "
                  "are paid at measurement months)")

    # [[payers]]: who pays which part of the formula
    formula_ok = (rate_card_ok and share is not None and None not in tiers
                  and ("trigger" not in p or trigger is not None))
    parts = stack.formula_parts(rate_card, tiers, trigger, share) if formula_ok else None
    payers = stack.read_payers(c, doc["payers"], parts) if several else ()
    if payers:
        lag = payers[0].payment_lag_months
        payer_name = payer_name if "name" in p else " and ".join(q.name for q in payers)
    stack.capital_protection_problems(c, tranches, payers)

    # [[cohorts]]
    cohorts = []
    for i, item in enumerate(c.array_of_tables(g("cohorts"), "cohorts")):
        f = f"cohorts[{i}]"
        t = c.table(item, f, required=("intake_month", "size"), optional=("start",))
        if t is None:
            continue
        intake = c.number(t, "intake_month", f, integer=True, ge=0, lt=last_month)
        size = c.number(t, "size", f, integer=True, ge=1, le=MAX_PARTICIPANTS)
        cohort_start = reader.start(t["start"], _join(f, "start")) if "start" in t else ()
        if intake is not None and size is not None and cohort_start is not None:
            cohorts.append(Cohort(intake, size, cohort_start))
    reader.check_state_refs()
    if sum(co.size for co in cohorts) > MAX_PARTICIPANTS:
        c.problem("cohorts", f"at most {MAX_PARTICIPANTS} participants in all, got {sum(co.size for co in cohorts)}")

    # [comparison]: the treated journey with some parameters overridden, and its own start
    comp = c.table(g("comparison"), "comparison",
                   optional=("size_ratio", "method", "start", "shared", "parameters")) or {}
    method = c.choice(comp, "method", "comparison", COUNTERFACTUAL_METHODS, default="comparison_group")
    ratio = c.number(comp, "size_ratio", "comparison", default=1.0 if method == "expected" else _MISSING, gt=0)
    if ratio is not None and ratio > MAX_SIZE_RATIO:
        c.problem("comparison.size_ratio", f"must be <= {MAX_SIZE_RATIO} (comparison-group members per treated "
                  f"participant: memory grows with the group, precision hardly beyond a few times the treated "
                  f"group), got {_show(ratio)}")
        ratio = None
    if ratio is not None and method == "comparison_group" and cohorts:
        members = sum(max(round(co.size * ratio), 1) for co in cohorts)  # as Contract.comparison_sizes
        if members > MAX_COMPARISON_MEMBERS:
            c.problem("comparison.size_ratio", f"at most {MAX_COMPARISON_MEMBERS} comparison-group members in all "
                      f"(each is simulated: memory per worker grows with them), got {members} "
                      f"({_show(ratio)} x {sum(co.size for co in cohorts)} participants)")
            ratio = None
    if method == "comparison_group" and "size_ratio" not in comp and isinstance(doc.get("comparison"), dict):
        c.problem("comparison.size_ratio", "missing required field (with method = 'comparison_group')")
    comparison = reader.comparison(comp, ratio, method)
    reader.check_machine(None if comparison is None else comparison.journey)

    # [[factors]], [[shocks]], [correlation]: correlated uncertainty
    horizon = None if term_months is None or tail_months is None else term_months + tail_months
    unc = read_uncertainty(c, doc, journey, comparison, method, horizon)

    # [analysis]
    a = c.table(doc.get("analysis", {}), "analysis",
                optional=("investor_discount_rate", "public_discount_rate", "primary_outcome",
                          "success_parameters", "failure_parameters") + STRESS_ROLES) or {}
    # >= -0.9, not just > -1: discount factors (1 + r)^(-t/12) stay below 1e151 over the longest horizon
    # (1,801 months), so NPVs of any accepted amounts stay finite (closer to -1 they overflow: NaN NPVs).
    # The default of 0 is recorded in Contract.defaulted, so reports can say the rate was assumed.
    inv_rate = c.annual_rate(a, "investor_discount_rate", "analysis", default=0.0, ge=-0.9)
    pub_rate = c.annual_rate(a, "public_discount_rate", "analysis", default=0.0, ge=-0.9)
    # The primary outcome (what reports lead with) defaults to the first outcome defined.
    first = outcome_names[0] if outcome_names else ""
    primary = a.get("primary_outcome", first)
    c._note_default(a, "primary_outcome", "analysis", first or None)
    if outcome_names is not None and primary not in outcome_names:
        c.problem("analysis.primary_outcome", f"must be one of {', '.join(outcome_names)}, got {_describe(primary)}")
    # What a "more successful programme" raises and lowers in the break-even analysis (default: derived
    # from the primary outcome, see Contract.success_parameter_names).
    chosen = {}
    names = journey.parameter_names if journey is not None else None
    # The memo's named what-ifs read the parameters of outflow, relapse and the labour market (sibsim.stress).
    for key in ("success_parameters", "failure_parameters") + STRESS_ROLES:
        if key not in a:
            continue
        raw, where = a[key], f"analysis.{key}"
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
            c.problem(where, f"must be a non-empty list of parameter names, got {_describe(raw)}")
        elif len(set(raw)) != len(raw):
            twice = next(x for x in raw if raw.count(x) > 1)
            c.problem(where, f"must name each parameter once, got {twice!r} twice")
        elif names is not None and (unknown := [x for x in raw if x not in names]):
            c.problem(where, f"must name parameters of [journey.parameters] ({', '.join(names)}), got {unknown[0]!r}")
        else:
            chosen[key] = tuple(raw)
    if both := set(chosen.get("success_parameters", ())) & set(chosen.get("failure_parameters", ())):
        c.problem("analysis.failure_parameters", f"must not name a success parameter too, got {sorted(both)[0]!r}")

    # [[guarantees]] and capital protection (a guarantee by a payer)
    payer_names = tuple(q.name for q in payers) if payers else ((payer_name,) if payer_name is not None else ())
    formula_name = p.get("name") if payers and payer_name is not None else None
    guarantees = []
    guarantee_items = c.array_of_tables(g("guarantees"), "guarantees", min_len=0) if "guarantees" in doc else []
    for i, item in enumerate(guarantee_items):
        guarantee = stack.read_guarantee(c, item, f"guarantees[{i}]", tranches)
        # A payer's own guarantees count among its costs by exact name: a near miss would be a third party.
        if guarantee is not None and not stack.guarantor_problem(c, guarantee, f"guarantees[{i}]", payer_names,
                                                                 formula_name):
            guarantees.append((guarantee, f"guarantees[{i}]"))
    for name, share_protected, field in tranches.protected:
        if len(payer_names) == 1:
            guarantees.append((Guarantee(payer_names[0], (name,), share_protected), field))
    stack.cover_problems(c, guarantees)

    # The capital stack: draw order, waterfall, an external stop
    draw_order = stack.read_draw_order(c, doc["capital"], tranches) if "capital" in doc else DrawOrder()
    if draw_order is not None and tranches.complete:
        stack.availability_problems(c, tranches, draw_order)
    before = len(c.problems)
    waterfall = stack.read_waterfall(c, doc["waterfall"], tranches, draw_order) if "waterfall" in doc else None
    if tranches.complete and len(c.problems) == before:  # None: the default waterfall
        if fees_ok:
            stack.fee_step_problems(c, waterfall, fee_fields)
        if len(guarantees) == len(guarantee_items) + len(tranches.protected):
            stack.recoup_problems(c, waterfall, guarantees)
    external_stop = stack.read_external_stop(c, doc["external_stop"], last_month) if "external_stop" in doc else None

    if tranches.complete and not any(i.repayable for i in investors):
        c.problem("investors", "must include at least one repayable investor, got only grants")

    # cross-field rules: only between valid parts (else the totals would mislead)
    if tranches.complete and budget is not None and fees_ok:
        needs = budget.total + sum(f.schedule.total for f in fees if f.paid_by == "investors")
        committed = sum(i.commitment for i in investors)
        cur = c.currency
        if needs > committed * (1 + 1e-12):
            c.problem("investors", f"total commitments {cur} {committed:,.2f} must cover the capital calls "
                      f"(provider.budget + investor fees) of {cur} {needs:,.2f}")
        if needs <= 0:
            c.problem("provider.budget", f"must call some capital: total is {cur} 0")
        elif needs < MIN_CAPITAL:
            # Multiples and IRRs are ratios to the capital called: a vanishing one gives nonsense (1e304).
            c.problem("provider.budget", f"must call at least {cur} {MIN_CAPITAL:g} of capital in all "
                      f"(budget + investor fees), got {cur} {_show(needs)}")
        elif needs <= committed * (1 + 1e-12) and draw_order is not None and draw_order.groups:
            stack.shortfall_problem(c, tranches, budget, fees)  # tranches available later (available_from_month)

    if c.problems:
        raise ScenarioError(c.problems)
    contract = Contract(
        title=title,
        term_months=term_months,
        tail_months=tail_months,
        investors=tuple(investors),
        provider_name=provider_name,
        provider_budget=budget,
        fees=tuple(fees),
        payer=OutcomePayer(payer_name, tuple(rate_card), share, None if cap is None else float(cap),
                           tuple(measurement or ()), lag, tiers=tiers, trigger=trigger,
                           default_probability=float(default_p), review=review),
        costs=costs,
        cohorts=tuple(cohorts),
        journey=journey,
        outcomes=outcomes,
        comparison=comparison,
        guarantees=tuple(g for g, _ in guarantees),
        recycling=bool(recycling),
        draw_order=draw_order,
        waterfall_terms=waterfall,
        payer_split=tuple(payers),
        external_stop=external_stop,
        uncertainty=unc,
        investor_discount_rate=float(inv_rate),
        public_discount_rate=float(pub_rate),
        primary_outcome=primary,
        success_parameters=chosen.get("success_parameters", ()),
        failure_parameters=chosen.get("failure_parameters", ()),
        outflow_parameters=chosen.get("outflow_parameters", ()),
        relapse_parameters=chosen.get("relapse_parameters", ()),
        labour_market_parameters=chosen.get("labour_market_parameters", ()),
        meta=tuple((k, start if k == "start" else tuple(v) if isinstance(v, list)
                    else tuple(v.items()) if isinstance(v, dict) else v)
                   for k, v in meta.items()),
        source=file,
        files=tuple(files),
        defaulted=tuple(c.defaulted),
        warnings=(_unused_outcomes(shown, outcomes, rate_card, tiers, trigger, review)
                  + _unused_parameters(shown, journey)),
    )
    # Windows need the horizon, which every part of the contract sets: checked on the whole contract.
    first_intake = min((co.intake_month for co in contract.cohorts), default=0)
    outcome_problems(c, outcomes, contract.horizon_months, first_intake)
    if c.problems:
        raise ScenarioError(c.problems)
    late = _late_counts(shown, contract) + stack.stack_warnings(shown, contract)
    return dataclasses.replace(contract, warnings=contract.warnings + late) if late else contract


def _late_counts(file: str, contract: Contract) -> tuple[str, ...]:
    """Warnings for counts a contract cannot see: a trigger measuring a cohort before its outcome's
    window and lag have passed, a census month beyond the horizon for a later cohort."""
    out = []
    outcomes = {o.name: o for o in contract.outcomes}
    trigger = contract.payer.trigger
    if trigger is not None and trigger.outcome in outcomes:
        o = outcomes[trigger.outcome]
        needed = (o.window or 0) + o.lag
        if o.window is not None and trigger.follow_up_months < needed:
            out.append(f"{file}: payer.trigger.follow_up_months: warning: each cohort is measured before its "
                       f"{trigger.outcome} window and lag have passed ({o.window} + {o.lag} = {needed} months): "
                       f"occurrences dated later are not counted, got {trigger.follow_up_months}")
    T = contract.horizon_months
    last = max((co.intake_month for co in contract.cohorts), default=0)
    for o in contract.outcomes:
        for i, k in enumerate(o.at_months):
            if last + k + o.lag >= T:
                out.append(f"{file}: outcomes.{o.name}.at_months[{i}]: warning: the last cohort's census (intake "
                           f"month {last} + {k}{f' + lag {o.lag}' if o.lag else ''}) falls at or beyond the horizon "
                           f"(month {T}): it is not counted")
                break
    return tuple(out)


def _unused_outcomes(file: str, outcomes, rate_card, tiers, trigger, review) -> tuple[str, ...]:
    """One warning line per outcome no payment term uses (it is counted and reported, never paid)."""
    used = {k for k, _ in rate_card} | {t.outcome for t in tiers} | {x.outcome for x in (trigger, review) if x}
    used |= {outcome for outcome, _, _ in review.more} if review else set()
    return tuple(f"{file}: outcomes.{o.name}: warning: no contract term uses it (rate card, tiers, trigger, "
                 f"review): it is counted and reported, never paid for" for o in outcomes if o.name not in used)


def _unused_parameters(file: str, journey) -> tuple[str, ...]:
    """One warning line per declared parameter no exit, recurrent event or branch uses (a typo, or an
    assumption that changes nothing: a tornado or a break-even on it would move nothing)."""
    used = {e.probability for st in journey.states for e in st.exits} | {
        r.rate for st in journey.states for r in st.events} | {b.probability for b in journey.branches}
    return tuple(f"{file}: journey.parameters.{name}: warning: no exit, event or branch uses it: it changes nothing"
                 for name in journey.parameter_names if name not in used)


def _without_old_keys(c: _Checker, doc: dict) -> dict:
    """``doc`` without the keys of the old format, each reported once with where it went."""
    found = _old_keys(doc)
    if not found:
        return doc
    doc = dict(doc)
    for field, hint in found:
        c.problem(field, hint)
        *parents, last = field.split(".")
        node = doc
        for key in parents:  # copy the tables on the way: the caller's document is left as it was
            node[key] = dict(node[key])
            node = node[key]
        del node[last]
    return doc


def load_scenario(path: str | Path) -> Contract:
    """Read and validate a scenario file.

    Parameters
    ----------
    path : str or Path
        A ``.toml`` scenario (see ``docs/scenario.md``).

    Returns
    -------
    Contract
        With :attr:`~sibsim.contracts.Contract.files` listing every file read (the scenario,
        then the bases it extends), each with its SHA-256.

    Raises
    ------
    ScenarioError
        Listing every problem as ``file: field: rule``.
    """
    path = Path(path)
    files: list[tuple[str, str]] = []
    doc = _read_document(path, files=files)
    return contract_from_dict(doc, str(path), tuple(files))


#: A variant may extend a base that extends another, up to this depth.
MAX_EXTENDS_DEPTH = 4

_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int) -> str | None:
    """Why a file of this mode cannot be a scenario (``None`` for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    kind = next((text for test, text in _FILE_KINDS if test(mode)), "a special file")
    return f"not a regular file: {kind}"


class UnreadableFile(OSError):
    """A file refused before (or instead of) reading it: printed as the reason alone, no ``[Errno 0]``."""

    def __init__(self, why: str):
        super().__init__(0, why)

    def __str__(self) -> str:
        return self.strerror


def open_regular(path: Path):
    """``path`` opened for binary reading, only if it is a regular file.

    The type is checked with :func:`os.stat` before opening (a FIFO would block ``open``; a device
    such as ``/dev/zero`` never ends), the file is opened non-blocking (should it be swapped for a
    FIFO in between) and checked again on the open descriptor.

    Raises
    ------
    OSError
        ``FileNotFoundError`` or another ``OSError`` whose ``strerror`` says why; an
        :class:`UnreadableFile` for a name holding a NUL byte or a file that is not regular.
    """
    try:
        why = _not_regular(os.stat(path).st_mode)
    except ValueError:  # "embedded null byte": no file can have that name
        raise UnreadableFile("the name contains a NUL byte") from None
    if why:
        raise UnreadableFile(why)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    why = _not_regular(os.fstat(fd).st_mode)
    if why:
        os.close(fd)
        raise UnreadableFile(why)
    return os.fdopen(fd, "rb")


def read_regular(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes from the start of the regular file ``path`` (see :func:`open_regular`)."""
    with open_regular(path) as fh:
        chunks, size = [], 0
        while size < limit:
            chunk = os.read(fh.fileno(), limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def read_scenario_bytes(path: Path) -> bytes:
    """The bytes of a scenario file: a regular file (:func:`open_regular`) of at most
    :data:`MAX_FILE_BYTES`, read with a bounded read.

    Raises
    ------
    OSError
        As :func:`open_regular`, and an :class:`UnreadableFile` for a file too large.
    """
    raw = read_regular(path, MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise UnreadableFile(f"larger than {MAX_FILE_BYTES:,} bytes: a scenario is a few kB of text")
    return raw


def _extends_name(base) -> str | None:
    """Why ``extends = base`` breaks the documented rule (``None`` if it keeps it).

    The rule is "a ``.toml`` file next to this one": a bare file name. Paths (absolute, ``../``,
    a sub-directory) were followed, so a scenario could read, and echo the keys of, any TOML file.
    """
    if not isinstance(base, str) or not base.endswith(".toml"):
        return f"must be the file name of a base scenario (.toml), got {_describe(base)}"
    if ("/" in base or "\\" in base or base in (".", "..") or os.path.isabs(base)
            or any(unicodedata.category(ch) in _HIDDEN_CATEGORIES for ch in base)):
        return (f"must be a bare file name of a base scenario in the same directory (no path separator, "
                f"no '..', no absolute path, no control character), got {_describe(base)}")
    return None


def _read_document(path: Path, chain: tuple[Path, ...] = (), files: list | None = None) -> dict:
    """Parse a scenario file; ``extends = "base.toml"`` merges it over its base (deltas only).

    ``chain`` holds the variants that led here: a base that cannot be read is reported on the
    ``extends`` field of the variant naming it, not as a problem of a file the user never gave.
    ``files`` (if given) receives ``(path, sha256)`` of every file read, this one first.
    """
    name = str(path)
    try:
        raw = read_scenario_bytes(path)
    except OSError as exc:
        why = "file not found" if isinstance(exc, FileNotFoundError) else f"cannot read file ({exc.strerror})"
        if chain:
            raise ScenarioError(f"{chain[-1]}: extends: must name a readable base scenario, got {name} ({why})") from None
        raise ScenarioError(f"{name}: {why}") from None
    if files is not None:
        files.append((name, hashlib.sha256(raw).hexdigest()))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    # One leading byte-order mark (Windows Notepad writes one) is not part of the TOML text.
    text = text.removeprefix("\ufeff")
    doc = parse_toml(text, name)
    if not doc:
        raise ScenarioError(f"{name}: file is empty: no TOML tables or keys")
    if "extends" not in doc:
        return doc
    base = doc.pop("extends")
    why = _extends_name(base)
    if why:
        raise ScenarioError(f"{name}: extends: {why}")
    chain = chain + (path,)
    base_path = path.parent / base
    seen = [_same_file_key(p) for p in chain]
    if _same_file_key(base_path) in seen:
        loop = " -> ".join(p.name for p in chain[seen.index(_same_file_key(base_path)):]) + f" -> {base_path.name}"
        raise ScenarioError(f"{name}: extends: must not form a cycle of base scenarios, got {loop}")
    if len(chain) > MAX_EXTENDS_DEPTH:
        raise ScenarioError(f"{name}: extends: must be at most {MAX_EXTENDS_DEPTH} levels of base scenarios, "
                            f"got more")
    return _merge(_read_document(base_path, chain, files), doc)


def parse_toml(text: str, name: str) -> dict:
    """``tomllib.loads``, with every way it can fail (or take too long) as a one-line ScenarioError ``file: rule``."""
    longest = max((len(_KEY_PART.findall(m.group())) for m in _DOTTED_KEY.finditer(text)), default=0)
    if longest > MAX_KEY_PARTS:
        raise ScenarioError(f"{name}: not valid TOML: a dotted key of {longest} parts (at most {MAX_KEY_PARTS})")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{name}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays and inline tables
        raise ScenarioError(f"{name}: not valid TOML: arrays or inline tables nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits (int max str digits)
        raise ScenarioError(f"{name}: not valid TOML: {str(exc).split(':')[0]}") from None


#: A part of a (possibly dotted) TOML key, and a dotted key: found by a linear scan before parsing.
#: Possessive quantifiers and the look-behind keep the scan linear in the length of the text.
_KEY_PART = re.compile(r"""(?<![A-Za-z0-9_-])[A-Za-z0-9_-]++|"(?:[^"\\\r\n]++|\\.)*+"|'[^'\r\n]*+'""")
_DOTTED_KEY = re.compile(rf"(?:{_KEY_PART.pattern})(?:[ \t]*+\.[ \t]*+(?:{_KEY_PART.pattern}))++")


def _same_file_key(path: Path) -> Path:
    """One key per file however it is named (relative, with ``..``, through a symlink)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # e.g. a symlink loop: compare the name as given
        return path.absolute()


#: The two ways of writing a prior: as moments or as Beta parameters.
_PRIOR_FORMS = ({"mean", "sd"}, {"alpha", "beta"})


def _merge(base: dict, delta: dict) -> dict:
    """Tables merge key by key; anything else in ``delta`` replaces the base.

    A prior table merges key by key too: ``{ mean = 0.032 }`` over ``{ mean = 0.04, sd = 0.012 }``
    changes the mean and keeps the sd (it used to replace the prior, silently dropping its sd to 0).
    But ``{alpha, beta}`` over ``{mean, sd}``, or the other way round, replaces the prior as a whole:
    they are two ways of writing one prior, and a mix of both is no prior.
    """
    out = dict(base)
    for key, value in delta.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and not _other_prior_form(old, value):
            out[key] = _merge(old, value)
        else:
            out[key] = value
    return out


def _other_prior_form(base: dict, delta: dict) -> bool:
    """Whether ``delta`` writes a prior in the other form than ``base`` (so it replaces it)."""
    return any(set(base) <= mine and set(base) & mine and set(delta) & other and set(delta) <= other | mine
               for mine, other in (_PRIOR_FORMS, _PRIOR_FORMS[::-1]))
