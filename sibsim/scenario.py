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
    OUTCOMES,
    BenefitBand,
    Cohort,
    ComparisonGroup,
    Contract,
    Fee,
    Investor,
    Journey,
    OutcomePayer,
    Prior,
    Savings,
    Schedule,
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
    """A number as ``:g`` text; an integer too large for a float is described, not converted."""
    try:
        return f"{value:g}"
    except OverflowError:
        return f"{'a negative' if value < 0 else 'an'} integer of more than 308 digits"


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
                return Prior.from_alpha_beta(a, b) if a is not None and b is not None else None
            self.table(value, field, required=("mean",), optional=("sd",))
            mean = self.probability(value.get("mean"), _join(field, "mean")) if "mean" in value else None
            sd = self.number(value, "sd", field, default=0.0, ge=0, le=1)
            if mean is None or sd is None:
                return None
            if 0 < sd < MIN_PRIOR_SD:
                # Beta parameters ~ 1/sd^2 would overflow; such a prior is a known value.
                self.problem(_join(field, "sd"), f"must be 0 (known value) or >= {MIN_PRIOR_SD:g}, got {sd:g}")
                return None
            if sd > 0 and sd**2 >= mean * (1 - mean):
                self.problem(
                    _join(field, "sd"),
                    f"must be < sqrt(mean*(1-mean)) = {math.sqrt(mean * (1 - mean)):.4g} "
                    f"for a Beta prior with mean {mean:g}, got {sd:g}",
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
}


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
                   optional=("description", "currency", "start", "sources", "assumptions", "notes")) or {}
    title = c.string(meta, "title", "meta")
    for key in ("sources", "assumptions"):
        if key in meta and (not isinstance(meta[key], list) or not all(isinstance(s, str) for s in meta[key])):
            c.problem(f"meta.{key}", f"must be an array of strings, got {_describe(meta[key])}")
    for key in ("description", "currency", "start", "notes"):
        if key in meta:
            c.string(meta, key, "meta")

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
    investor_items = c.array_of_tables(g("investors"), "investors")
    for i, item in enumerate(investor_items):
        f = f"investors[{i}]"
        t = c.table(item, f, required=("name", "commitment"), optional=("class", "return_cap", "seniority"))
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
        if None not in (name, commitment, klass, seniority):
            investors.append(Investor(name, float(commitment), klass, None if cap is None else float(cap), seniority))

    # [provider]
    provider = c.table(g("provider"), "provider", required=("name", "budget")) or {}
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
    p = c.table(g("payer"), "payer", required=("name", "measurement_months"),
                optional=("payment_lag_months", "payment_cap", "savings_share", "rate_card")) or {}
    payer_name = c.string(p, "name", "payer")
    measurement = c.month_list(p, "measurement_months", "payer", lo=1, hi=last_month)
    lag = c.number(p, "payment_lag_months", "payer", default=0, integer=True, ge=0, le=MAX_MONTH)
    cap = c.number(p, "payment_cap", "payer", default=None, gt=0, le=MAX_AMOUNT)
    share = c.number(p, "savings_share", "payer", default=0.0, ge=0, le=1)
    rate_card: list[tuple[str, float]] = []
    rate_card_ok = True  # False once a problem in it is reported
    if "rate_card" in p:
        rc = c.table(p["rate_card"], "payer.rate_card", optional=OUTCOMES)
        rate_card_ok = rc is not None and set(rc) <= set(OUTCOMES)
        for key in OUTCOMES:
            if rc is not None and key in rc:
                price = c.number(rc, key, "payer.rate_card", ge=0, le=MAX_AMOUNT)
                if price is not None:
                    rate_card.append((key, float(price)))
                else:
                    rate_card_ok = False
    if payer_given and rate_card_ok and share == 0 and not any(price > 0 for _, price in rate_card):
        c.problem("payer", "must pay for something: give a rate_card with a price > 0 or a savings_share > 0")

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
        c.problem("savings.benefit", f"shares must add up to 1, got {sum(b.share for b in bands):g}")
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
    comp = c.table(g("comparison"), "comparison", required=("size_ratio", "journey")) or {}
    ratio = c.number(comp, "size_ratio", "comparison", gt=0, le=100)
    comp_journey = _journey(c, comp["journey"], "comparison.journey") if "journey" in comp else None

    # [analysis]
    a = c.table(doc.get("analysis", {}), "analysis",
                optional=("investor_discount_rate", "public_discount_rate", "primary_outcome")) or {}
    inv_rate = c.number(a, "investor_discount_rate", "analysis", default=0.0, gt=-1, le=10)
    pub_rate = c.number(a, "public_discount_rate", "analysis", default=0.0, gt=-1, le=10)
    primary = a.get("primary_outcome", "job_sustained")
    if primary not in OUTCOMES:
        c.problem("analysis.primary_outcome", f"must be one of {', '.join(OUTCOMES)}, got {_describe(primary)}")

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
        payer=OutcomePayer(payer_name, tuple(rate_card), float(share), None if cap is None else float(cap),
                           measurement, lag),
        savings=Savings(tuple(bands), float(saved), float(indexation)),
        cohorts=tuple(cohorts),
        journey=journey,
        comparison=ComparisonGroup(float(ratio), comp_journey),
        investor_discount_rate=float(inv_rate),
        public_discount_rate=float(pub_rate),
        primary_outcome=primary,
        meta=tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in meta.items()),
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
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(f"{name}: file not found") from None
    except OSError as exc:
        raise ScenarioError(f"{name}: cannot read file ({exc.strerror})") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{name}: not valid TOML: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits (int max str digits)
        raise ScenarioError(f"{name}: not valid TOML: {str(exc).split(':')[0]}") from None
    if not doc:
        raise ScenarioError(f"{name}: file is empty: no TOML tables or keys")
    return contract_from_dict(doc, name)
