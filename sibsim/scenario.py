"""Read a scenario TOML file into a :class:`~sibsim.contracts.Contract`.

Every rule is checked and every problem reported at once, each as one line
``file: field: rule`` (OpenFisca style), so ``sibsim validate`` can list them
all.  The file is data only: parsed with :mod:`tomllib`, never evaluated.
The full schema is documented in ``docs/scenario.md``.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

from .contracts import (
    JOURNEY_PROBABILITIES,
    MEASURABLE,
    MEASURES,
    OUTCOMES,
    BenefitBand,
    Cohort,
    CohortTrigger,
    ComparisonGroup,
    Contract,
    Fee,
    Guarantee,
    Investor,
    Journey,
    OutcomePayer,
    Prior,
    Review,
    Savings,
    SavingsShare,
    Schedule,
    TierTable,
)
from .errors import ScenarioError

_MISSING = object()
#: Longest month index accepted anywhere (50 years): keeps ledgers bounded.
MAX_MONTH = 600
#: Largest amount accepted (EUR 1e12): beyond it float64 cents are no longer exact.
MAX_AMOUNT = 1e12
MAX_PARTICIPANTS = 1_000_000
#: Smallest non-zero prior standard deviation (Beta parameters stay below ~1e12).
MIN_PRIOR_SD = 1e-6
#: Smallest Beta parameter accepted: below it alpha + beta, or the smaller one against the larger,
#: is lost in float64 when the prior is held as mean and sd (the engine would get alpha or beta <= 0).
MIN_BETA_PARAMETER = 1e-3
#: Most parts in one dotted key (the schema needs 4): tomllib's time grows ~ cubically with them.
MAX_KEY_PARTS = 100


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _show(value: int | float) -> str:
    """A number as ``:g`` text where that is exact, else in full (``1.0000001``, not ``1``, next to a
    bound of 1); an integer too large for a float is described, not converted."""
    try:
        text = f"{value:g}"
    except OverflowError:
        return f"{'a negative' if value < 0 else 'an'} integer of more than 308 digits"
    if float(text) == value or (isinstance(value, int) and abs(value) >= 10**20):
        return text  # exact, or an integer far beyond every bound
    return str(value) if isinstance(value, int) else repr(float(value))


class _Checker:
    """Collects problems while reading a parsed TOML document."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[str] = []

    def problem(self, field: str, rule: str) -> None:
        self.problems.append(f"{self.file}: {field}: {rule}")

    # -- structure ------------------------------------------------------------
    def table(self, data, field: str, required=(), optional=()) -> dict | None:
        if data is _MISSING:
            return None  # already reported by the parent table()
        if not isinstance(data, dict):
            self.problem(field, f"must be a table, got {_describe(data)}")
            return None
        allowed = set(required) | set(optional)
        for key in data:
            if key not in allowed:
                self.problem(_join(field, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in data:
                self.problem(_join(field, key), "missing required field")
        return data

    def array_of_tables(self, data, field: str, min_len: int = 1) -> list:
        if data is _MISSING:
            return []  # already reported by the parent table()
        if not isinstance(data, list):
            self.problem(field, f"must be an array of tables, got {_describe(data)}")
            return []
        if len(data) < min_len:
            self.problem(field, f"must have at least {min_len} entr{'y' if min_len == 1 else 'ies'}")
        return data

    # -- scalars --------------------------------------------------------------
    def string(self, data: dict, key: str, field: str, default=_MISSING):
        value = data.get(key, default)
        if value is _MISSING:
            return None  # already reported by table()
        if not isinstance(value, str) or not value.strip():
            self.problem(_join(field, key), f"must be a non-empty string, got {_describe(value)}")
            return None
        return value

    def number(self, data: dict, key: str, field: str, *, default=_MISSING, integer=False,
               gt=None, ge=None, le=None, lt=None):
        value = data.get(key, default)
        if value is _MISSING:
            return None
        return self.check_number(value, _join(field, key), integer=integer, gt=gt, ge=ge, le=le, lt=lt)

    def check_number(self, value, field: str, *, integer=False, gt=None, ge=None, le=None, lt=None):
        if value is None:
            return None
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(field, f"must be {kind}, got {_describe(value)}")
            return None
        if integer and not isinstance(value, int):
            self.problem(field, f"must be {kind}, got {value!r}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(field, f"must be a finite number, got {value!r}")
            return None
        for bound, ok, text in (
            (gt, lambda v, b: v > b, ">"),
            (ge, lambda v, b: v >= b, ">="),
            (lt, lambda v, b: v < b, "<"),
            (le, lambda v, b: v <= b, "<="),
        ):
            if bound is not None and not ok(value, bound):
                self.problem(field, f"must be {text} {bound:g}, got {_show(value)}")
                return None
        return value

    def boolean(self, data: dict, key: str, field: str, default: bool):
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(_join(field, key), f"must be true or false, got {_describe(value)}")
            return None
        return value

    def choice(self, data: dict, key: str, field: str, options, default=_MISSING):
        value = data.get(key, default)
        if value is _MISSING:
            return None
        if value not in options:
            self.problem(_join(field, key), f"must be one of {', '.join(options)}, got {_describe(value)}")
            return None
        return value

    def probability(self, value, field: str):
        return self.check_number(value, field, ge=0, le=1)

    def prior(self, value, field: str) -> Prior | None:
        """A probability: a number (fixed), ``{mean, sd}`` or ``{alpha, beta}``."""
        if isinstance(value, dict):
            keys = set(value)
            if keys <= {"alpha", "beta"} and keys:
                self.table(value, field, required=("alpha", "beta"))
                a = self.number(value, "alpha", field, gt=0, lt=1e9)
                b = self.number(value, "beta", field, gt=0, lt=1e9)
                for key, v in (("alpha", a), ("beta", b)):
                    if v is not None and v < MIN_BETA_PARAMETER:
                        self.problem(_join(field, key), f"must be >= {MIN_BETA_PARAMETER:g} (a smaller Beta parameter "
                                     f"is lost in float64 arithmetic), got {_show(v)}")
                        a = b = None
                return Prior.from_alpha_beta(a, b) if a is not None and b is not None else None
            self.table(value, field, required=("mean",), optional=("sd",))
            mean = self.probability(value.get("mean"), _join(field, "mean")) if "mean" in value else None
            sd = self.number(value, "sd", field, default=0.0, ge=0, le=1)
            if mean is None or sd is None:
                return None
            if 0 < sd < MIN_PRIOR_SD:
                # Beta parameters ~ 1/sd^2 would overflow; such a prior is a known value.
                self.problem(_join(field, "sd"), f"must be 0 (known value) or >= {MIN_PRIOR_SD:g}, got {_show(sd)}")
                return None
            if sd > 0 and sd**2 >= mean * (1 - mean):
                self.problem(
                    _join(field, "sd"),
                    f"must be < sqrt(mean*(1-mean)) = {math.sqrt(mean * (1 - mean)):.4g} "
                    f"for a Beta prior with mean {_show(mean)}, got {_show(sd)}",
                )
                return None
            return Prior(mean=float(mean), sd=float(sd))
        p = self.probability(value, field)
        return None if p is None else Prior(mean=float(p))

    def month_list(self, data: dict, key: str, field: str, *, lo: int, hi: int):
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return None
        f = _join(field, key)
        if not isinstance(value, list) or not value:
            self.problem(f, f"must be a non-empty array of months, got {_describe(value)}")
            return None
        months = [self.check_number(v, f"{f}[{i}]", integer=True, ge=lo, le=hi) for i, v in enumerate(value)]
        if any(m is None for m in months):
            return None
        if any(b <= a for a, b in zip(months, months[1:])):
            self.problem(f, f"must be strictly increasing, got {months}")
            return None
        return tuple(months)

    def schedule(self, data: dict, key: str, field: str) -> Schedule | None:
        """``[{month, amount}, {from_month, to_month, per_month}, ...]``."""
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return None
        f = _join(field, key)
        entries: list[tuple[int, float]] = []
        items = self.array_of_tables(value, f)
        ok = isinstance(value, list) and len(value) >= 1
        for i, item in enumerate(items):
            fi = f"{f}[{i}]"
            if isinstance(item, dict) and ("month" in item or "amount" in item):
                if self.table(item, fi, required=("month", "amount")) is None:
                    ok = False
                    continue
                m = self.number(item, "month", fi, integer=True, ge=0, le=MAX_MONTH)
                a = self.number(item, "amount", fi, ge=0, le=MAX_AMOUNT)
                if m is None or a is None:
                    ok = False
                    continue
                entries.append((m, float(a)))
            else:
                if self.table(item, fi, required=("from_month", "to_month", "per_month")) is None:
                    ok = False
                    continue
                m0 = self.number(item, "from_month", fi, integer=True, ge=0, le=MAX_MONTH)
                m1 = self.number(item, "to_month", fi, integer=True, ge=0, le=MAX_MONTH)
                a = self.number(item, "per_month", fi, ge=0, le=MAX_AMOUNT)
                if m0 is None or m1 is None or a is None:
                    ok = False
                    continue
                if m1 < m0:
                    self.problem(_join(fi, "to_month"), f"must be >= from_month ({m0}), got {m1}")
                    ok = False
                    continue
                entries.extend((m, float(a)) for m in range(m0, m1 + 1))
        return Schedule(tuple(entries)) if ok else None


def _join(field: str, key: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
        key = json.dumps(key)  # quoted as TOML would: keeps the line single and the key visible
    return f"{field}.{key}" if field else key


# --- the document ---------------------------------------------------------------
_TOP = {
    "meta": True, "term": True, "investors": True, "provider": True, "fees": False, "payer": True,
    "savings": True, "cohorts": True, "journey": True, "comparison": True, "analysis": False,
    "guarantees": False,
}
RATE_CARD_KEYS = OUTCOMES + ("benefit_month_saved", "benefit_day_saved")
DAYS_PER_MONTH = 365.25 / 12
COUNTERFACTUAL_METHODS = ("comparison_group", "expected")


def _savings_share(c: _Checker, value, field: str) -> SavingsShare | None:
    """A number (one rate) or ``{rate, switch_multiple, rate_after}``."""
    if isinstance(value, dict):
        t = c.table(value, field, required=("rate",), optional=("switch_multiple", "rate_after"))
        if t is None:
            return None
        rate = c.number(t, "rate", field, ge=0, le=1)
        switch = c.number(t, "switch_multiple", field, default=None, gt=0, le=100)
        after = c.number(t, "rate_after", field, default=0.0, ge=0, le=1)
        if "rate_after" in t and "switch_multiple" not in t:
            c.problem(_join(field, "rate_after"), "must come with switch_multiple (the multiple of capital called "
                      "after which it applies), got no switch_multiple")
            return None
        if None in (rate, after) or ("switch_multiple" in t and switch is None):
            return None
        if switch is not None and after > rate:
            c.problem(_join(field, "rate_after"), f"must be <= rate ({_show(rate)}): the share falls once principal "
                      f"and return are paid, got {_show(after)}")
            return None
        return SavingsShare(float(rate), None if switch is None else float(switch), float(after))
    rate = c.check_number(value, field, ge=0, le=1)
    return None if rate is None else SavingsShare(float(rate))


def _tier(c: _Checker, item, field: str) -> TierTable | None:
    t = c.table(item, field, required=("outcome", "measure", "points"), optional=("interpolation", "minimum"))
    if t is None:
        return None
    outcome = c.choice(t, "outcome", field, MEASURABLE)
    measure = c.choice(t, "measure", field, MEASURES)
    interpolation = c.choice(t, "interpolation", field, ("step", "linear"), default="step")
    points = []
    raw = t.get("points")
    if "points" in t:
        if not isinstance(raw, list) or not raw:
            c.problem(_join(field, "points"), f"must be a non-empty array of [improvement, EUR] pairs, got {_describe(raw)}")
            return None
        for j, pair in enumerate(raw):
            f = f"{field}.points[{j}]"
            if not isinstance(pair, list) or len(pair) != 2:
                c.problem(f, f"must be an [improvement, EUR] pair, got {_describe(pair)}")
                return None
            x = c.check_number(pair[0], f"{f}[0]", ge=-1e6, le=1e6)
            y = c.check_number(pair[1], f"{f}[1]", ge=0, le=MAX_AMOUNT)
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


def _trigger(c: _Checker, item, field: str) -> CohortTrigger | None:
    t = c.table(item, field, required=("outcome", "measure", "follow_up_months", "cohort_threshold",
                                       "pooled_threshold", "price"))
    if t is None:
        return None
    outcome = c.choice(t, "outcome", field, MEASURABLE)
    measure = c.choice(t, "measure", field, MEASURES)
    follow_up = c.number(t, "follow_up_months", field, integer=True, ge=1, le=MAX_MONTH)
    cohort = c.number(t, "cohort_threshold", field, ge=-1e6, le=1e6)
    pooled = c.number(t, "pooled_threshold", field, ge=-1e6, le=1e6)
    price = c.number(t, "price", field, ge=0, le=MAX_AMOUNT)
    if cohort is not None and pooled is not None and cohort < pooled:
        c.problem(_join(field, "cohort_threshold"), f"thresholds out of order: the early per-cohort bar must be "
                  f">= the pooled bar ({_show(pooled)}), got {_show(cohort)}")
        return None
    if None in (outcome, measure, follow_up, cohort, pooled, price):
        return None
    return CohortTrigger(outcome, measure, follow_up, float(cohort), float(pooled), float(price))


def _review(c: _Checker, item, field: str, last_month: int) -> Review | None:
    t = c.table(item, field, required=("month", "outcome", "measure", "floor"))
    if t is None:
        return None
    month = c.number(t, "month", field, integer=True, ge=1, le=last_month)
    outcome = c.choice(t, "outcome", field, MEASURABLE)
    measure = c.choice(t, "measure", field, MEASURES)
    floor = c.number(t, "floor", field, ge=-1e6, le=1e6)
    if None in (month, outcome, measure, floor):
        return None
    return Review(month, outcome, measure, float(floor))


def _guarantee(c: _Checker, item, field: str, investors: list, complete: bool = True) -> Guarantee | None:
    """Covers named ``investors`` or every investor of the named ``classes`` (e.g. a first-loss class)."""
    t = c.table(item, field, required=("guarantor", "share"), optional=("investors", "classes", "cap"))
    if t is None:
        return None
    guarantor = c.string(t, "guarantor", field)
    if ("investors" in t) == ("classes" in t):
        c.problem(field, "name the covered investors or their classes: give exactly one of investors, classes")
        return None
    key = "investors" if "investors" in t else "classes"
    known = {i.name: [i.name] for i in investors} if key == "investors" else {}
    for i in investors if key == "classes" else ():
        known.setdefault(i.investor_class, []).append(i.name)
    listed = t[key]
    covered: list[str] = []
    ok = True
    if not isinstance(listed, list) or not listed or not all(isinstance(n, str) for n in listed):
        c.problem(_join(field, key), f"must be a non-empty array of {key[:-1] if key == 'classes' else 'investor'} "
                  f"names, got {_describe(listed)}")
        ok = False
    else:
        for j, name in enumerate(listed):
            if name not in known:
                if not complete:  # an investor's own problem is reported: no follow-up line here
                    ok = False
                    continue
                c.problem(f"{field}.{key}[{j}]", f"unknown {'class' if key == 'classes' else 'investor'} {name!r} "
                          f"(known: {', '.join(n if n.isprintable() else repr(n) for n in sorted(known))})")
                ok = False
            else:
                covered += [n for n in known[name] if n not in covered]
    share = c.number(t, "share", field, gt=0, le=1)
    cap = c.number(t, "cap", field, default=None, gt=0, le=MAX_AMOUNT)
    if not ok or None in (guarantor, share):
        return None
    return Guarantee(guarantor, tuple(covered), float(share), None if cap is None else float(cap))


def _journey(c: _Checker, data, field: str) -> Journey | None:
    t = c.table(data, field, required=("max_training_months",) + JOURNEY_PROBABILITIES)
    if t is None:
        return None
    training = c.number(t, "max_training_months", field, integer=True, ge=0, le=MAX_MONTH)
    priors = {k: c.prior(t[k], _join(field, k)) for k in JOURNEY_PROBABILITIES if k in t}
    if training is None or len(priors) < len(JOURNEY_PROBABILITIES) or None in priors.values():
        return None
    return Journey(max_training_months=training, **priors)


def contract_from_dict(doc: dict, file: str = "<scenario>") -> Contract:
    """Build a :class:`Contract` from a parsed TOML document; raise :class:`ScenarioError`."""
    c = _Checker(file)
    top = c.table(doc, "", required=[k for k, req in _TOP.items() if req], optional=list(_TOP))
    if top is None:
        raise ScenarioError(c.problems)
    g = lambda key: doc.get(key, _MISSING)  # noqa: E731  (a missing section is reported once, above)

    # [meta]
    meta = c.table(g("meta"), "meta", required=("title",),
                   optional=("description", "currency", "start", "sources", "assumptions", "notes",
                             "outcome_labels")) or {}
    title = c.string(meta, "title", "meta")
    for key in ("sources", "assumptions"):
        if key in meta and (not isinstance(meta[key], list) or not all(isinstance(s, str) for s in meta[key])):
            c.problem(f"meta.{key}", f"must be an array of strings, got {_describe(meta[key])}")
    for key in ("description", "currency", "start", "notes"):
        if key in meta:
            c.string(meta, key, "meta")
    if "outcome_labels" in meta:  # what the journey's outcomes stand for in this deal, for reports
        labels = c.table(meta["outcome_labels"], "meta.outcome_labels", optional=OUTCOMES)
        for key in OUTCOMES:
            if labels is not None and key in labels:
                c.string(labels, key, "meta.outcome_labels")

    # [term]
    term = c.table(g("term"), "term", required=("term_months",),
                   optional=("tail_months", "sustained_job_months")) or {}
    term_months = c.number(term, "term_months", "term", integer=True, gt=0, le=MAX_MONTH)
    tail_months = c.number(term, "tail_months", "term", default=0, integer=True, ge=0, le=MAX_MONTH)
    sustained = c.number(term, "sustained_job_months", "term", default=6, integer=True, ge=1, le=120)
    last_month = term_months if term_months is not None else MAX_MONTH

    # [[investors]]
    investors = []
    names = set()
    protected: list[tuple[str, float, str]] = []  # (investor, share, field) protected by the payer
    investor_items = c.array_of_tables(g("investors"), "investors")
    for i, item in enumerate(investor_items):
        f = f"investors[{i}]"
        t = c.table(item, f, required=("name", "commitment"),
                    optional=("class", "return_cap", "seniority", "repayable", "capital_protection"))
        if t is None:
            continue
        name = c.string(t, "name", f)
        if name is not None and name in names:
            c.problem(_join(f, "name"), f"must be unique, {name!r} appears twice")
        names.add(name)
        commitment = c.number(t, "commitment", f, gt=0, le=MAX_AMOUNT)
        klass = c.string(t, "class", f, default="senior")
        cap = c.number(t, "return_cap", f, default=None, ge=0, le=10)
        seniority = c.number(t, "seniority", f, default=1, integer=True, ge=1, le=100)
        repayable = c.boolean(t, "repayable", f, default=klass != "grant")
        protection = c.number(t, "capital_protection", f, default=0.0, ge=0, le=1)
        if protection and name is not None:
            protected.append((name, float(protection), _join(f, "capital_protection")))
        if None not in (name, commitment, klass, seniority, repayable):
            investors.append(Investor(name, float(commitment), klass, None if cap is None else float(cap),
                                      seniority, repayable))

    # [provider]
    provider = c.table(g("provider"), "provider", required=("name", "budget"), optional=("recycling",)) or {}
    recycling = c.boolean(provider, "recycling", "provider", default=False)
    provider_name = c.string(provider, "name", "provider")
    budget = c.schedule(provider, "budget", "provider")
    if budget is not None and term_months is not None and budget.last_month >= term_months:
        c.problem("provider.budget", f"delivery must be budgeted within the term (months < {term_months}), "
                  f"got month {budget.last_month}")

    # [[fees]]
    fees = []
    fee_items = c.array_of_tables(doc["fees"], "fees", min_len=0) if "fees" in doc else []
    fees_ok = "fees" not in doc or isinstance(doc["fees"], list)
    for i, item in enumerate(fee_items):
        f = f"fees[{i}]"
        t = c.table(item, f, required=("name", "paid_by", "schedule"))
        if t is None:
            continue
        name = c.string(t, "name", f)
        paid_by = t.get("paid_by")
        if "paid_by" in t and paid_by not in ("investors", "payer"):
            c.problem(_join(f, "paid_by"), f"must be 'investors' or 'payer', got {_describe(paid_by)}")
            paid_by = None
        schedule = c.schedule(t, "schedule", f)
        if None not in (name, paid_by, schedule):
            fees.append(Fee(name, paid_by, schedule))
    fees_ok = fees_ok and len(fees) == len(fee_items)

    # [payer]
    payer_given = isinstance(doc.get("payer"), dict)
    p = c.table(g("payer"), "payer", required=("name",), optional=(
        "measurement_months", "payment_lag_months", "payment_cap", "savings_share", "rate_card", "tiers",
        "trigger", "default_probability", "review")) or {}
    payer_name = c.string(p, "name", "payer")
    measurement = c.month_list(p, "measurement_months", "payer", lo=1, hi=last_month) if "measurement_months" in p else ()
    lag = c.number(p, "payment_lag_months", "payer", default=0, integer=True, ge=0, le=MAX_MONTH)
    cap = c.number(p, "payment_cap", "payer", default=None, gt=0, le=MAX_AMOUNT)
    default_p = c.number(p, "default_probability", "payer", default=0.0, ge=0, lt=1)
    share = _savings_share(c, p.get("savings_share", 0.0), "payer.savings_share")
    rate_card: list[tuple[str, float]] = []
    rate_card_ok = True  # False once a problem in it is reported
    if "rate_card" in p:
        rc = c.table(p["rate_card"], "payer.rate_card", optional=RATE_CARD_KEYS)
        rate_card_ok = rc is not None and set(rc) <= set(RATE_CARD_KEYS)
        for key in RATE_CARD_KEYS:
            if rc is not None and key in rc:
                price = c.number(rc, key, "payer.rate_card", ge=0, le=MAX_AMOUNT)
                if price is None:
                    rate_card_ok = False
                elif key == "benefit_day_saved":  # a month holds 365.25 / 12 days on average
                    rate_card.append(("benefit_month_saved", float(price) * DAYS_PER_MONTH))
                else:
                    rate_card.append((key, float(price)))
        if len([k for k, _ in rate_card if k == "benefit_month_saved"]) > 1:
            c.problem("payer.rate_card", "must price benefit_month_saved or benefit_day_saved, not both, got both")
    tiers = tuple(_tier(c, item, f"payer.tiers[{i}]")
                  for i, item in enumerate(c.array_of_tables(p["tiers"], "payer.tiers") if "tiers" in p else []))
    trigger = _trigger(c, p["trigger"], "payer.trigger") if "trigger" in p else None
    review = _review(c, p["review"], "payer.review", last_month) if "review" in p else None
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

    # [savings]
    s = c.table(g("savings"), "savings", required=("benefit",),
                optional=("share_saved_when_employed", "annual_indexation")) or {}
    bands = []
    for i, item in enumerate(c.array_of_tables(s.get("benefit", []), "savings.benefit") if "benefit" in s else []):
        f = f"savings.benefit[{i}]"
        t = c.table(item, f, required=("age_band", "amount_per_month", "share"))
        if t is None:
            continue
        band = c.string(t, "age_band", f)
        amount = c.number(t, "amount_per_month", f, ge=0, le=1e7)
        bshare = c.number(t, "share", f, ge=0, le=1)
        if None not in (band, amount, bshare):
            bands.append(BenefitBand(band, float(amount), float(bshare)))
    if bands and len(bands) == len(s.get("benefit", [])) and abs(sum(b.share for b in bands) - 1) > 1e-9:
        c.problem("savings.benefit", f"shares must add up to 1, got {sum(b.share for b in bands):.12g}")
    saved = c.number(s, "share_saved_when_employed", "savings", default=1.0, ge=0, le=1)
    indexation = c.number(s, "annual_indexation", "savings", default=0.0, gt=-1, le=1)

    # [[cohorts]]
    cohorts = []
    for i, item in enumerate(c.array_of_tables(g("cohorts"), "cohorts")):
        f = f"cohorts[{i}]"
        t = c.table(item, f, required=("intake_month", "size"))
        if t is None:
            continue
        intake = c.number(t, "intake_month", f, integer=True, ge=0, lt=last_month)
        size = c.number(t, "size", f, integer=True, ge=1, le=MAX_PARTICIPANTS)
        if intake is not None and size is not None:
            cohorts.append(Cohort(intake, size))
    if sum(co.size for co in cohorts) > MAX_PARTICIPANTS:
        c.problem("cohorts", f"at most {MAX_PARTICIPANTS} participants in all, got {sum(co.size for co in cohorts)}")

    # [journey], [comparison]
    journey = _journey(c, g("journey"), "journey")
    comp = c.table(g("comparison"), "comparison", required=("journey",), optional=("size_ratio", "method")) or {}
    method = c.choice(comp, "method", "comparison", COUNTERFACTUAL_METHODS, default="comparison_group")
    ratio = c.number(comp, "size_ratio", "comparison", default=1.0 if method == "expected" else _MISSING,
                     gt=0, le=100)
    if method == "comparison_group" and "size_ratio" not in comp and isinstance(doc.get("comparison"), dict):
        c.problem("comparison.size_ratio", "missing required field (with method = 'comparison_group')")
    comp_journey = _journey(c, comp["journey"], "comparison.journey") if "journey" in comp else None

    # [analysis]
    a = c.table(doc.get("analysis", {}), "analysis",
                optional=("investor_discount_rate", "public_discount_rate", "primary_outcome")) or {}
    # >= -0.9, not just > -1: discount factors (1 + r)^(-t/12) stay below 1e151 over the longest horizon
    # (1,801 months), so NPVs of any accepted amounts stay finite (closer to -1 they overflow: NaN NPVs).
    inv_rate = c.number(a, "investor_discount_rate", "analysis", default=0.0, ge=-0.9, le=10)
    pub_rate = c.number(a, "public_discount_rate", "analysis", default=0.0, ge=-0.9, le=10)
    primary = a.get("primary_outcome", "job_sustained")
    if primary not in OUTCOMES:
        c.problem("analysis.primary_outcome", f"must be one of {', '.join(OUTCOMES)}, got {_describe(primary)}")

    # [[guarantees]] and capital protection (a guarantee by the payer)
    guarantees = []
    for i, item in enumerate(c.array_of_tables(g("guarantees"), "guarantees", min_len=0) if "guarantees" in doc else []):
        guarantee = _guarantee(c, item, f"guarantees[{i}]", investors, 0 < len(investors) == len(investor_items))
        if guarantee is not None:
            guarantees.append((guarantee, f"guarantees[{i}]"))
    for name, share_protected, field in protected:
        if payer_name is not None:
            guarantees.append((Guarantee(payer_name, (name,), share_protected), field))
    cover: dict[str, float] = {}
    for guarantee, field in guarantees:
        for name in guarantee.investors:
            before = cover.get(name, 0.0)
            cover[name] = before + guarantee.share
            if cover[name] > 1 + 1e-12 >= before:  # once per investor, at the guarantee that tips it over
                c.problem(field, f"guarantees must cover at most 100 % of an investor's losses in all, "
                          f"got {cover[name] * 100:.4g} % of {name!r}")
    if investors and len(investors) == len(investor_items) and not any(i.repayable for i in investors):
        c.problem("investors", "must include at least one repayable investor, got only grants")

    # cross-field rules: only between valid parts (else the totals would mislead)
    if investors and len(investors) == len(investor_items) and budget is not None and fees_ok:
        needs = budget.total + sum(f.schedule.total for f in fees if f.paid_by == "investors")
        committed = sum(i.commitment for i in investors)
        if needs > committed * (1 + 1e-12):
            c.problem("investors", f"total commitments EUR {committed:,.2f} must cover the capital calls "
                      f"(provider.budget + investor fees) of EUR {needs:,.2f}")
        if needs <= 0:
            c.problem("provider.budget", "must call some capital: total is EUR 0")

    if c.problems:
        raise ScenarioError(c.problems)
    return Contract(
        title=title,
        term_months=term_months,
        tail_months=tail_months,
        sustained_job_months=sustained,
        investors=tuple(investors),
        provider_name=provider_name,
        provider_budget=budget,
        fees=tuple(fees),
        payer=OutcomePayer(payer_name, tuple(rate_card), share, None if cap is None else float(cap),
                           tuple(measurement or ()), lag, tiers=tiers, trigger=trigger,
                           default_probability=float(default_p), review=review),
        savings=Savings(tuple(bands), float(saved), float(indexation)),
        cohorts=tuple(cohorts),
        journey=journey,
        comparison=ComparisonGroup(float(ratio), comp_journey, method),
        guarantees=tuple(g for g, _ in guarantees),
        recycling=bool(recycling),
        investor_discount_rate=float(inv_rate),
        public_discount_rate=float(pub_rate),
        primary_outcome=primary,
        meta=tuple((k, tuple(v) if isinstance(v, list) else tuple(v.items()) if isinstance(v, dict) else v)
                   for k, v in meta.items()),
        source=file,
    )


def load_scenario(path: str | Path) -> Contract:
    """Read and validate a scenario file.

    Parameters
    ----------
    path : str or Path
        A ``.toml`` scenario (see ``docs/scenario.md``).

    Returns
    -------
    Contract

    Raises
    ------
    ScenarioError
        Listing every problem as ``file: field: rule``.
    """
    path = Path(path)
    doc = _read_document(path)
    return contract_from_dict(doc, str(path))


#: A variant may extend a base that extends another, up to this depth.
MAX_EXTENDS_DEPTH = 4


def _read_document(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """Parse a scenario file; ``extends = "base.toml"`` merges it over its base (deltas only).

    ``chain`` holds the variants that led here: a base that cannot be read is reported on the
    ``extends`` field of the variant naming it, not as a problem of a file the user never gave.
    """
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        why = "file not found" if isinstance(exc, FileNotFoundError) else f"cannot read file ({exc.strerror})"
        if chain:
            raise ScenarioError(f"{chain[-1]}: extends: must name a readable base scenario, got {name} ({why})") from None
        raise ScenarioError(f"{name}: {why}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    doc = parse_toml(text, name)
    if not doc:
        raise ScenarioError(f"{name}: file is empty: no TOML tables or keys")
    if "extends" not in doc:
        return doc
    base = doc.pop("extends")
    if not isinstance(base, str) or not base.endswith(".toml"):
        raise ScenarioError(f"{name}: extends: must be the file name of a base scenario (.toml), "
                            f"got {_describe(base)}")
    chain = chain + (path,)
    base_path = path.parent / base
    seen = [_same_file_key(p) for p in chain]
    if _same_file_key(base_path) in seen:
        loop = " -> ".join(p.name for p in chain[seen.index(_same_file_key(base_path)):]) + f" -> {base_path.name}"
        raise ScenarioError(f"{name}: extends: must not form a cycle of base scenarios, got {loop}")
    if len(chain) > MAX_EXTENDS_DEPTH:
        raise ScenarioError(f"{name}: extends: must be at most {MAX_EXTENDS_DEPTH} levels of base scenarios, "
                            f"got more")
    return _merge(_read_document(base_path, chain), doc)


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


_PRIOR_KEYS = {"mean", "sd", "alpha", "beta"}


def _merge(base: dict, delta: dict) -> dict:
    """Tables merge key by key; anything else in ``delta`` replaces the base.

    A prior (``{mean, sd}`` or ``{alpha, beta}``) is one value, not a table to merge: it replaces.
    """
    out = dict(base)
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not set(value) <= _PRIOR_KEYS:
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
