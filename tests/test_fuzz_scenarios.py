"""Fuzzing the scenario loader: malformed or extreme TOML never gives anything but a clean answer.

Thousands of generated documents, built two ways:

* **structurally**: the parsed dict of a valid base (``tests/fixtures/valid_minimal.toml``,
  ``valid_all_terms.toml`` and the shipped ``scenarios/*.toml``) is mutated (wrong types,
  deleted keys, NaN/inf, huge or boundary numbers, empty or duplicated arrays, unicode keys
  and names, deep nesting, probabilities outside [0, 1], tiny Beta parameters, ``extends``...)
  and written back to TOML by the tiny writer below;
* **textually**: the text of a valid base is mutated (byte flips, inserted or deleted bytes,
  duplicated lines, hence duplicate keys and tables, replaced literals, truncation, deep
  nesting, CR/LF changes...).

Every document must end, within a time bound, in either

* a :class:`ScenarioError` whose every problem is ONE line ``file: field: rule`` (or
  ``file: rule`` for a whole-file problem: unreadable, not UTF-8, not TOML, empty), naming the
  file as given and a field that exists in the document or the schema; or
* a valid :class:`Contract` that respects every rule of ``docs/scenario.md`` (probabilities in
  [0, 1], amounts finite and >= 0, months within bounds, a bounded horizon, drawable priors...)
  and that simulates a few paths without a floating-point error or a NaN where a value is defined.

Problem lines are also checked for sense: a line ``must be <= 1, got 1`` (a value shown rounded
so that it no longer breaks its bound) fails.

The number of examples per test is ``SIBSIM_FUZZ_EXAMPLES`` (default 500); the time bound per
example ``SIBSIM_FUZZ_SECONDS`` (default 20).  ``pytest -s`` prints what was tried.  The "ci"
Hypothesis profile (tests/conftest.py) draws the same examples on every run; for a long search
of new ones::

    HYPOTHESIS_PROFILE=explore SIBSIM_FUZZ_EXAMPLES=10000 pytest -s tests/test_fuzz_scenarios.py

``tests/fixtures/fuzz/`` holds the regressions the fuzzing found (see EXPECTED.toml there).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import datetime
import math
import os
import re
import shutil
import signal
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sibsim import settle, simulate, toml_text
from sibsim.contracts import MEASURES, Contract
from sibsim.journey import OUTCOME_KINDS, TIMINGS
from sibsim.errors import ScenarioError
from sibsim.observed import Observed, load_observed
from sibsim.scenario import (
    _TOP,
    COUNTERFACTUAL_METHODS,
    MAX_AMOUNT,
    MAX_MONTH,
    MAX_PARTICIPANTS,
    MAX_SIZE_RATIO,
    MIN_AMOUNT,
    _join,
    _read_document,
    load_scenario,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FUZZ_FIXTURES = FIXTURES / "fuzz"
SCENARIOS = ROOT / "scenarios"
BASE_FILES = [FIXTURES / "valid_minimal.toml", FIXTURES / "valid_all_terms.toml",
              *sorted(SCENARIOS.glob("*.toml"))]

EXAMPLES = int(os.environ.get("SIBSIM_FUZZ_EXAMPLES", "500"))
SECONDS = float(os.environ.get("SIBSIM_FUZZ_SECONDS", "20"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example],
)
#: Valid contracts up to this many participant-months (treated + comparison) are simulated.
SIMULATE_UP_TO = 3_000_000

#: A field path as the loader writes it: dotted keys (bare, or quoted as TOML would), with [i] indices.
FIELD = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")(?:\[\d+\])*(?:\.(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")(?:\[\d+\])*)*'
#: Whole-file problems: ``file: rule``.
WHOLE_FILE = ("file not found", "cannot read file (", "not UTF-8 text (byte ", "not valid TOML: ", "file is empty: ")

#: What was tried, by test and outcome (printed at the end of the module with ``pytest -s``).
TRIED: collections.Counter = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    if TRIED:
        lines = [f"  {test}: {outcome}: {n}" for (test, outcome), n in sorted(TRIED.items())]
        total = sum(TRIED.values())
        sys.stderr.write(f"\nfuzzed scenario documents: {total}\n" + "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------
# a tiny TOML writer (tomllib only reads)
# ---------------------------------------------------------------------------------------
# Values, keys and strings as sibsim writes them (sibsim.toml_text, the writer of `sibsim design`).
toml_key, toml_string, toml_value = toml_text.key, toml_text.string, toml_text.value


def dump_toml(doc: dict, style: str = "headers") -> str:
    """``headers``: top-level tables as ``[t]`` and arrays of tables as ``[[a]]`` (deeper levels
    inline); ``inline``: every top-level key as ``key = value``."""
    if style == "inline":
        return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in doc.items())
    lines, sections = [], []
    for k, v in doc.items():
        if isinstance(v, dict):
            sections.append([f"[{toml_key(k)}]"] + [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in v.items()])
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                sections.append([f"[[{toml_key(k)}]]"]
                                + [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in item.items()])
        else:
            lines.append(f"{toml_key(k)} = {toml_value(v)}")
    return "\n".join(lines + [line for s in sections for line in [""] + s]) + "\n"


def same(a, b) -> bool:
    """Equality of parsed TOML values, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


# ---------------------------------------------------------------------------------------
# the time bound
# ---------------------------------------------------------------------------------------
class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    def alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    if not hasattr(signal, "setitimer"):  # no interval timer (Windows): no time bound
        yield
        return
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------------------
# what every answer must look like
# ---------------------------------------------------------------------------------------
def check_problems(exc: ScenarioError, file: str, doc: dict | None) -> str:
    """Each problem one line ``file: field: rule`` (or ``file: rule``); returns a category."""
    assert exc.problems, "ScenarioError without problems"
    assert all(isinstance(line, str) for line in exc.problems)
    assert str(exc) == "\n".join(exc.problems)
    assert len(set(exc.problems)) == len(exc.problems), f"a problem reported twice: {exc.problems}"
    # Fields of the document (as the loader quotes them) and of the schema.
    roots = set(_TOP) | {"extends"} | ({_join("", k) for k in doc} if isinstance(doc, dict) else set())
    for line in exc.problems:
        # One line: no \n, \r, nor any other line boundary (\v, \f, \x1c-\x1e, \x85, \u2028, \u2029).
        assert line.splitlines() == [line], f"not a single line: {line!r}"
        assert line.startswith(f"{file}: "), f"does not start with the file as given: {line!r}"
        rest = line[len(file) + 2:]
        if rest.startswith(WHOLE_FILE):
            assert exc.problems == [line], f"a whole-file problem among others: {exc.problems}"
            return "whole-file"
        m = re.fullmatch(rf"({FIELD}): (\S.*)", rest)
        assert m, f"not `file: field: rule`: {line!r}"
        root = re.match(r'[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"', m.group(1)).group(0)
        assert root in roots, f"field {m.group(1)!r} is neither in the document nor in the schema: {line!r}"
        assert "Traceback" not in line and "object at 0x" not in line, line
        check_bound_is_broken(m.group(2), line)
    return "field"


_BOUND = re.compile(r"must be (<=|<|>=|>) (\S+), got (\S+)$")
_BROKEN = {"<=": lambda v, b: v > b, "<": lambda v, b: v >= b, ">=": lambda v, b: v < b, ">": lambda v, b: v <= b}


def check_bound_is_broken(rule: str, line: str) -> None:
    """``must be <= 1, got 1`` would contradict itself: the value shown must break the bound shown."""
    m = _BOUND.match(rule)
    if m:
        op, bound, got = m.groups()
        with contextlib.suppress(ValueError):  # "got an integer of more than 308 digits", "got string ..."
            assert _BROKEN[op](float(got), float(bound)), f"the value shown does not break the rule: {line!r}"


def finite(x, lo=-math.inf, hi=math.inf) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and lo <= x <= hi


def check_contract(c: Contract) -> None:
    """Every rule of docs/scenario.md holds in a Contract the loader accepted: no silent nonsense."""
    assert isinstance(c.title, str) and c.title.strip()
    assert isinstance(c.term_months, int) and 1 <= c.term_months <= MAX_MONTH
    assert isinstance(c.tail_months, int) and 0 <= c.tail_months <= MAX_MONTH
    term, payer = c.term_months, c.payer
    # Investors.
    assert c.investors and len({i.name for i in c.investors}) == len(c.investors)
    assert any(i.repayable for i in c.investors)
    for i in c.investors:
        assert isinstance(i.name, str) and i.name.strip() == i.name and i.name.isprintable()
        assert finite(i.commitment, MIN_AMOUNT, MAX_AMOUNT)
        assert i.return_cap is None or finite(i.return_cap, 0, 1)
        assert isinstance(i.seniority, int) and 1 <= i.seniority <= 100
        assert isinstance(i.repayable, bool)
    # Schedules: months in bounds, amounts finite and >= 0; delivery within the term.
    for schedule in [c.provider_budget] + [f.schedule for f in c.fees]:
        assert schedule.entries
        for month, amount in schedule.entries:
            assert isinstance(month, int) and 0 <= month <= MAX_MONTH
            assert finite(amount, 0, MAX_AMOUNT) and (amount == 0 or amount >= MIN_AMOUNT)
    assert c.provider_budget.last_month < term
    assert all(f.paid_by in ("investors", "payer") for f in c.fees)
    calls = c.capital_calls()
    assert np.isfinite(calls).all() and (calls >= 0).all() and calls.sum() >= 1
    assert calls.sum() <= c.total_commitment * (1 + 1e-9)
    # Payer.
    months = payer.measurement_months
    assert all(isinstance(m, int) and 1 <= m <= term for m in months)
    assert list(months) == sorted(set(months))
    assert months or payer.trigger is not None
    assert isinstance(payer.payment_lag_months, int) and 0 <= payer.payment_lag_months <= MAX_MONTH
    assert payer.payment_cap is None or (finite(payer.payment_cap, 0, MAX_AMOUNT) and payer.payment_cap > 0)
    assert finite(payer.default_probability, 0, 1) and payer.default_probability < 1
    outcomes = c.outcome_names
    for outcome, price in payer.rate_card:
        assert outcome in outcomes and finite(price, 0)
    assert len({o for o, _ in payer.rate_card}) == len(payer.rate_card)
    share = payer.savings_share
    assert finite(share.rate, 0, 1) and finite(share.rate_after, 0, share.rate)
    assert share.switch_multiple is None or (finite(share.switch_multiple, 0, 100) and share.switch_multiple > 0)
    assert (any(p > 0 for _, p in payer.rate_card) or share.rate > 0 or payer.tiers or payer.trigger is not None)
    for tier in payer.tiers:
        assert tier.outcome in outcomes and tier.measure in MEASURES and tier.interpolation in ("step", "linear")
        assert tier.points and all(finite(x) and finite(y, 0, MAX_AMOUNT) for x, y in tier.points)
        assert all(b[0] > a[0] and b[1] >= a[1] for a, b in zip(tier.points, tier.points[1:]))
        assert finite(tier.minimum)
    if payer.trigger is not None:
        t = payer.trigger
        assert t.outcome in outcomes and t.measure in MEASURES
        assert isinstance(t.follow_up_months, int) and 1 <= t.follow_up_months <= MAX_MONTH
        assert finite(t.cohort_threshold) and finite(t.pooled_threshold) and t.cohort_threshold >= t.pooled_threshold
        assert finite(t.price, 0, MAX_AMOUNT)
    if payer.review is not None:
        r = payer.review
        assert isinstance(r.month, int) and 1 <= r.month <= term
        assert r.outcome in outcomes and r.measure in MEASURES and finite(r.floor)
    # Costs: shares adding up to 1, amounts finite, in known states or on known events.
    for cost in c.costs:
        assert cost.bands and abs(sum(b.share for b in cost.bands) - 1) <= 1e-9
        assert all(finite(b.amount, 0) and finite(b.share, 0, 1) for b in cost.bands)
        assert finite(cost.fraction, 0, 1) and finite(cost.annual_indexation, -1, 1) and cost.annual_indexation > -1
        assert (set(cost.states) <= set(c.journey.state_names) if cost.event is None
                else not cost.states and cost.event in c.journey.event_names)
    # Outcomes: a known kind over known states or events, windows within the horizon.
    assert outcomes and len(set(outcomes)) == len(outcomes)
    for o in c.outcomes:
        assert o.kind in OUTCOME_KINDS and set(o.states) <= set(c.journey.state_names)
        assert o.event is None or o.event in c.journey.event_names
        assert o.window is None or 1 <= o.window <= c.horizon_months
        assert all(0 <= k < c.horizon_months for k in o.at_months) and finite(o.scale) and o.scale > 0
    # Cohorts.
    assert c.cohorts and 1 <= c.n_participants <= MAX_PARTICIPANTS
    assert all(isinstance(co.intake_month, int) and 0 <= co.intake_month < term for co in c.cohorts)
    assert all(isinstance(co.size, int) and co.size >= 1 for co in c.cohorts)
    # Journeys: known states everywhere, probabilities in [0, 1], priors the engine can draw from.
    for journey in (c.journey, c.comparison.journey):
        names = set(journey.state_names)
        assert len(names) == len(journey.states) and abs(sum(x for _, x in journey.start) - 1) <= 1e-9
        assert {s for s, _ in journey.start} <= names
        for st_ in journey.states:
            assert st_.timing in TIMINGS and {e.to for e in st_.exits} <= names - {st_.name}
            assert (st_.time_limit is None) == (st_.after_limit is None) and st_.after_limit in names | {None}
            assert all(e.probability in journey.parameter_names for e in st_.exits)
            assert all(r.rate in journey.parameter_names for r in st_.events)
        for b in journey.branches:
            assert set(b.states) <= names and b.to in names and b.at_month >= 1
        for name, prior in journey.parameters:
            hi = 1 if prior.kind == "probability" else 100
            assert finite(prior.mean, 0, hi) and finite(prior.sd, 0, hi), (name, prior)
            if not prior.is_fixed:
                if prior.kind == "probability":
                    a, b = prior.alpha_beta
                    assert finite(a) and finite(b) and a > 0 and b > 0, (name, prior, a, b)
                draws = prior.draw(np.random.default_rng(0), 64)
                assert np.isfinite(draws).all() and (draws >= 0).all() and (draws <= hi).all(), (name, prior)
    assert c.comparison.method in COUNTERFACTUAL_METHODS
    assert finite(c.comparison.size_ratio, 0, MAX_SIZE_RATIO) and c.comparison.size_ratio > 0
    assert (c.comparison_sizes >= 1).all()
    # Guarantees: known investors, shares in (0, 1], at most 100 % of any investor's loss in all.
    names = {i.name for i in c.investors}
    cover = collections.Counter()
    for g in c.guarantees:
        assert isinstance(g.guarantor, str) and g.guarantor.strip()
        assert g.investors and set(g.investors) <= names
        assert finite(g.share, 0, 1) and g.share > 0
        assert g.cap is None or (finite(g.cap, 0, MAX_AMOUNT) and g.cap > 0)
        for n in g.investors:
            cover[n] += g.share
    assert all(v <= 1 + 1e-9 for v in cover.values())
    # Analysis.
    assert finite(c.investor_discount_rate, -0.9, 1) and finite(c.public_discount_rate, -0.9, 1)
    assert c.primary_outcome in outcomes
    # A bounded horizon: term + tail, or the last payment (measurement or trigger date + lag).
    lag = payer.payment_lag_months
    last_trigger = (max(co.intake_month for co in c.cohorts) + payer.trigger.follow_up_months
                    if payer.trigger is not None else -1)
    assert c.horizon_months == max(term + c.tail_months, max(months, default=-1) + lag + 1,
                                   last_trigger + lag + 1 if last_trigger >= 0 else 0,
                                   c.provider_budget.last_month + 1,
                                   max((f.schedule.last_month for f in c.fees), default=-1) + 1)
    assert c.horizon_months <= 3 * MAX_MONTH + 1


def check_simulates(c: Contract) -> bool:
    """A few paths of a valid contract: no floating-point error (seterr raises), no NaN where defined."""
    cost = c.n_participants * (1 + c.comparison.size_ratio) * c.horizon_months
    if cost > SIMULATE_UP_TO:
        return False
    # Gradual underflow to 0 is the right value (e.g. a benefit indexed at -99.99 % a year, decades on);
    # every other floating-point problem raises (tests/conftest.py).
    with np.errstate(under="ignore"):
        res = simulate(c, n_paths=2, seed=0, workers=1)
        summary = res.summary()
    paths = res.paths
    for col in ("investor_npv", "investor_loss", "capital_called", "distributions", "outcome_payments",
                "retained_by_payer", "defaulted_by_payer", "guarantee_payouts", "gross_savings", "net_savings",
                "payer_npv", "primary_outcomes", "net_primary_outcomes"):
        assert np.isfinite(paths[col].to_numpy(dtype=float)).all(), (col, paths[col].tolist())
    for col in ("investor_loss", "capital_called", "distributions", "retained_by_payer", "defaulted_by_payer",
                "guarantee_payouts"):
        assert (paths[col] >= -1e-6).all(), col
    defined = paths["irr_status"].isin(["defined", "total_loss"]).to_numpy()
    assert (np.isfinite(paths["investor_irr"].to_numpy()) == defined).all()
    called = paths["capital_called"].to_numpy() > 0
    assert (np.isfinite(paths["investor_moic"].to_numpy()) == called).all()
    assert np.isfinite(res.expected_ledgers.to_numpy()).all()
    if called.all():
        assert np.isfinite(summary.loc["expected_moic", "estimate"])
    assert np.isfinite(summary.loc[["expected_capital_called", "expected_distributions",
                                    "expected_outcome_payments", "expected_gross_savings", "expected_net_savings",
                                    "expected_npv", "expected_npv_net_savings"], "estimate"].to_numpy()).all()
    return True


def check_file(path: Path, test: str, doc: dict | None = None) -> str:
    """Load ``path`` within the time bound; check the answer; count it under ``test``."""
    file = str(path)
    with time_limit(SECONDS):
        try:
            contract = load_scenario(file)
        except ScenarioError as exc:
            whole_file = exc.problems and exc.problems[0].startswith(tuple(f"{file}: {w}" for w in WHOLE_FILE))
            if doc is None and not whole_file:  # textual mutants: the document (tomllib read it: it is TOML)
                with contextlib.suppress(Exception):
                    doc = tomllib.loads(path.read_bytes().decode("utf-8"))
            outcome = check_problems(exc, file, doc)
            TRIED[test, f"ScenarioError ({outcome})"] += 1
            return outcome
        check_contract(contract)
        simulated = check_simulates(contract)
    TRIED[test, "valid contract" + (", simulated" if simulated else "")] += 1
    return "valid"


# ---------------------------------------------------------------------------------------
# the bases, and a directory to write mutants into (next to copies of every base scenario,
# so that `extends` can name a real base)
# ---------------------------------------------------------------------------------------
BASE_TEXTS = {p.name: p.read_bytes() for p in BASE_FILES}
BASE_DOCS = {p.name: _read_document(p) for p in BASE_FILES}  # `extends` resolved


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fuzz")
    for p in BASE_FILES:
        shutil.copy(p, d / p.name)
    return d


def test_bases_load_and_the_writer_round_trips(workdir):
    for name, doc in BASE_DOCS.items():
        for style in ("headers", "inline"):
            text = dump_toml(doc, style)
            assert same(tomllib.loads(text), doc), (name, style)
            path = workdir / f"roundtrip_{style}.toml"
            path.write_text(text, encoding="utf-8")
            assert load_scenario(path) == load_scenario(workdir / name)
    odd = {"k": ["\x00\x7f\u2028\"\\ \t", 1e300, -0.0, 5e-324, float("inf"), float("nan"), 10**40,
                 datetime.date(1, 1, 1), datetime.time(23, 59, 59, 999999),
                 datetime.datetime(2020, 2, 29, 1, 2, 3, tzinfo=datetime.timezone.utc), {}, [[]], {"": {"a.b": 1}}]}
    for style in ("headers", "inline"):
        assert same(tomllib.loads(dump_toml(odd, style)), odd)


# ---------------------------------------------------------------------------------------
# structural mutations of the parsed document
# ---------------------------------------------------------------------------------------
BOUNDARY_NUMBERS = [0, 1, -1, 2, 0.5, -0.5, 0.0, -0.0, 1.0, 1.0000001, 0.9999999, 1e-6, 9.99e-7, 1e-7, 1e-300,
                    5e-324, -1e-300, 24, 599, 600, 601, 1200, 10**6, 10**6 + 1, 1e9, 1e9 - 1, 1e12, 1e12 + 1,
                    1.7976931348623157e308, -1.7976931348623157e308, 2**53 + 1, 2**63 - 1, 2**63, -(2**63),
                    10**30, -(10**30), 10**400, -(10**400), -0.99, -0.999999, -0.9999999999, 10, 10.000001,
                    100, 100.1, 365.25, 0.1 + 0.2]
NON_FINITE = [float("nan"), float("inf"), float("-inf")]

unicode_text = st.text(max_size=12) | st.sampled_from(
    ["", " ", "\n", "a\nb", "\r", "\u2028", "\x85", "\t", "é", "ключ", "名前", "🙂", "\u200b", "\ufeff",
     "Alpha Fund", "Beta Foundation", "senior", "junior", "grant", "investors", "payer",
     "job_sustained", "days_in_work", "training", "job_search", "event", "milestone", "occupancy", "difference", "relative_reduction", "step", "linear", "expected",
     "comparison_group", "x" * 2000])
scalars = st.one_of(
    st.sampled_from(BOUNDARY_NUMBERS + NON_FINITE),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2, 3),  # probabilities just outside [0, 1]
    st.booleans(),
    unicode_text,
    st.dates(),
    st.datetimes(timezones=st.none() | st.just(datetime.timezone.utc)),
    st.times(),
)
priors = st.one_of(
    st.fixed_dictionaries({"mean": scalars | st.floats(0, 1), "sd": scalars | st.floats(0, 0.5)}),
    st.fixed_dictionaries({"alpha": scalars | st.floats(1e-320, 1e9), "beta": scalars | st.floats(1e-320, 1e9)}),
    st.fixed_dictionaries({"alpha": st.sampled_from([1e-300, 1e-17, 1e-10, 1e-5, 0.001, 1.0, 1e8, 999_999_999]),
                           "beta": st.sampled_from([1e-300, 1e-17, 1e-10, 1e-5, 0.001, 1.0, 1e8, 999_999_999])}),
    st.dictionaries(st.sampled_from(["mean", "sd", "alpha", "beta", "x"]), scalars, max_size=4),
)
values = st.recursive(
    scalars | priors,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(unicode_text, inner, max_size=3),
    max_leaves=8,
)


def all_paths(node, prefix=()):
    """Every path to a value inside a parsed document (the root excluded)."""
    out = []
    stack = [(node, prefix)]
    while stack:
        n, p = stack.pop()
        if p:
            out.append(p)
        if isinstance(n, dict):
            stack.extend((v, p + (k,)) for k, v in n.items())
        elif isinstance(n, list):
            stack.extend((v, p + (i,)) for i, v in enumerate(n))
    return sorted(out, key=lambda p: [str(x) for x in p])


def get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def replace_or_delete(draw, parent, key, kind) -> bool:
    """Apply a ``replace`` (with a drawn value) or ``delete`` mutation at ``parent[key]``; False for other kinds."""
    if kind == "replace":
        parent[key] = draw(values)
    elif kind == "delete":
        del parent[key]
    else:
        return False
    return True


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def tweak_number(v, op: str, k: int):
    try:
        return _tweak_number(v, op, k)
    except OverflowError:  # an integer of hundreds of digits as a float: keep it as it is
        return v


def _tweak_number(v, op: str, k: int):
    if op == "zero":
        return 0 if isinstance(v, int) else 0.0
    if op == "negate":
        return -v
    if op == "plus":
        return v + k
    if op == "minus":
        return v - k
    if op == "times":
        return v * 10**k if isinstance(v, int) else v * float(f"1e{k}")  # 1e400: inf
    if op == "divide":
        return v / float(f"1e{k}")
    if op == "to_float":
        return float(v) if abs(v) < 1e300 else v
    if op == "to_int":
        return int(v) if isinstance(v, float) and math.isfinite(v) else v
    if op == "next":
        return math.nextafter(float(v), math.inf) if math.isfinite(v) else v
    if op == "previous":
        return math.nextafter(float(v), -math.inf) if math.isfinite(v) else v
    raise AssertionError(op)


MUTATIONS = ("replace", "replace", "delete", "delete", "add_key", "number", "number", "number", "boundary",
             "boundary", "non_finite", "wrap", "empty", "duplicate", "reverse", "probability", "prior",
             "zero_participants", "extends", "rename", "string", "string")
#: Parameters of valid_minimal.toml, in the journey and overridden for the comparison group.
PARAMETERS = ("diploma", "dropout", "job_with_diploma", "job_without_diploma", "relapse", "long_term_contract")
JOURNEY_PATHS = [(j, p) for j in (("journey", "parameters"), ("comparison", "parameters")) for p in PARAMETERS]


@st.composite
def structural_mutants(draw):
    name = draw(st.sampled_from(sorted(BASE_DOCS)))
    doc = copy.deepcopy(BASE_DOCS[name])
    done = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(MUTATIONS))
        paths = all_paths(doc)
        numeric = [p for p in paths if is_number(get(doc, p))]
        containers = [p for p in paths if isinstance(get(doc, p), (list, dict))]
        if kind in ("replace", "delete", "wrap", "rename") and paths:
            path = draw(st.sampled_from(paths))
            parent = get(doc, path[:-1])
            if replace_or_delete(draw, parent, path[-1], kind):
                pass
            elif kind == "wrap":  # deep nesting
                value = parent[path[-1]]
                for _ in range(draw(st.integers(1, 60))):
                    value = [value] if draw(st.booleans()) else {draw(unicode_text): value}
                parent[path[-1]] = value
            elif isinstance(parent, dict):  # rename a key (unknown key, typo, unicode)
                parent[draw(unicode_text)] = parent.pop(path[-1])
            done.append((kind, path))
        elif kind == "add_key":
            tables = [()] + [p for p in containers if isinstance(get(doc, p), dict)]
            path = draw(st.sampled_from(tables))
            get(doc, path)[draw(unicode_text)] = draw(values)
            done.append((kind, path))
        elif kind in ("number", "boundary", "non_finite") and numeric:
            path = draw(st.sampled_from(numeric))
            parent = get(doc, path[:-1])
            if kind == "number":
                op = draw(st.sampled_from(("zero", "negate", "plus", "minus", "times", "divide", "to_float",
                                           "to_int", "next", "previous")))
                parent[path[-1]] = tweak_number(parent[path[-1]], op, draw(st.integers(1, 400)))
            else:
                parent[path[-1]] = draw(st.sampled_from(BOUNDARY_NUMBERS if kind == "boundary" else NON_FINITE))
            done.append((kind, path))
        elif kind in ("empty", "duplicate", "reverse") and containers:
            path = draw(st.sampled_from(containers))
            node = get(doc, path)
            if kind == "empty":
                get(doc, path[:-1])[path[-1]] = [] if draw(st.booleans()) else {}
            elif isinstance(node, list) and node:
                if kind == "duplicate":
                    node.insert(draw(st.integers(0, len(node))), copy.deepcopy(draw(st.sampled_from(node))))
                else:
                    node.reverse()
            done.append((kind, path))
        elif kind == "string":  # names, labels, choices: unicode, line breaks, empty, very long
            strings = [p for p in paths if isinstance(get(doc, p), str)]
            if strings:
                path = draw(st.sampled_from(strings))
                get(doc, path[:-1])[path[-1]] = draw(unicode_text)
                done.append((kind, path))
        elif kind == "probability":
            journey, key = draw(st.sampled_from(JOURNEY_PATHS))
            with contextlib.suppress(KeyError, TypeError, IndexError):
                table = get(doc, journey)
                if isinstance(table, dict):
                    table[key] = draw(st.floats(-1, 2) | st.sampled_from([0, 1, 0.0, 1.0, -0.0, 1 + 1e-16, -1e-300]))
                    done.append((kind, journey + (key,)))
        elif kind == "prior":
            journey, key = draw(st.sampled_from(JOURNEY_PATHS))
            with contextlib.suppress(KeyError, TypeError, IndexError):
                table = get(doc, journey)
                if isinstance(table, dict):
                    table[key] = draw(priors)
                    done.append((kind, journey + (key,)))
        elif kind == "zero_participants":
            cohorts = doc.get("cohorts")
            if isinstance(cohorts, list):
                size = draw(st.sampled_from([0, -1, 1, MAX_PARTICIPANTS, MAX_PARTICIPANTS + 1, 10**30]))
                for co in cohorts:
                    if isinstance(co, dict):
                        co["size"] = size
                done.append((kind, size))
        elif kind == "extends":
            doc["extends"] = draw(st.sampled_from(["valid_minimal.toml", "utrecht_colour_kitchen.toml", "fuzz.toml",
                                                   "missing.toml", "../nope.toml", "not_toml.txt", "", 1]))
            done.append((kind, doc["extends"]))
    return name, doc, draw(st.sampled_from(("headers", "inline"))), done


@FUZZ_SETTINGS
@given(case=structural_mutants())
def test_fuzz_structural_mutants(workdir, case):
    name, doc, style, mutations = case
    text = dump_toml(doc, style)
    # The writer is part of the test: the file must hold exactly the mutated document.
    assert same(tomllib.loads(text), doc)
    path = workdir / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    merged = doc
    if isinstance(doc.get("extends"), str) and (workdir / doc["extends"]).is_file():
        with contextlib.suppress(Exception):
            merged = {**tomllib.loads((workdir / doc["extends"]).read_text(encoding="utf-8")), **doc}
    check_file(path, "structural", merged)


# ---------------------------------------------------------------------------------------
# textual mutations
# ---------------------------------------------------------------------------------------
LITERALS = [b"nan", b"+nan", b"-nan", b"inf", b"+inf", b"-inf", b"1e999", b"-1e999", b"1e-999", b"-0.0", b"0", b"-1",
            b"1.7976931348623157e308", b"9" * 400, b"9" * 5000, b"0x7fffffffffffffff", b"0o17", b"0b101",
            b"1_000_000", b"1__0", b"01", b"1.", b".5", b"1e", b"true", b"false", b"True", b'"x"', b"'x'", b"''",
            b'"""a\nb"""', b"[]", b"{}", b"[{}]", b"1979-05-27", b"1979-05-27T07:32:00Z", b"07:32:00", b"0.5",
            b"600", b"601", b"1000001", b"1e12", b"1.000000000001e12", b'"\\u0000"', b'"\\ud800"', b'"\xc3\xa9"',
            b'"\xff"', b"\x00"]
SNIPPETS = [b"[meta]", b"[[cohorts]]", b"[[investors]]", b"[payer]", b"[payer.rate_card]", b"[term]",
            b"[journey]", b"x = 1", b'"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87" = "\xe5\x90\x8d"', b"extends = \"valid_minimal.toml\"",
            b"extends = \"fuzz.toml\"", b"term_months = 24", b"term_months = 0", b"size = 0", b"name = \"Alpha Fund\"",
            b"commitment = 1e12", b"a.b.c = 1", b"[a.b.c.d.e.f]", b"= 1", b"[", b"]]", b"\"", b"\\", b"\xef\xbb\xbf",
            b"\r", b"\x00", b"\xff\xfe", b"# comment \xe2\x80\xa8", b"diploma = 1.5", b"relapse = nan",
            b"[[payer.tiers]]", b"[payer.trigger]", b"cohorts = []", b"investors = []"]


def deep(kind: str, depth: int) -> bytes:
    if kind == "array":
        return b"deep = " + b"[" * depth + b"1" + b"]" * depth
    if kind == "table":
        return b"deep = " + b"{a = " * depth + b"1" + b"}" * depth
    if kind == "dotted":
        return b"deep." + b"a." * depth + b"b = 1"
    return b"[" + b".".join([b"a"] * depth) + b"]"  # a table header


TEXT_MUTATIONS = ("flip", "flip", "insert", "delete", "duplicate_line", "duplicate_line", "delete_line",
                  "swap_lines", "literal", "literal", "snippet", "truncate", "deep", "newlines", "tabs")
_LITERAL = re.compile(rb"(?<=[=\[,{] )([-+]?[0-9][0-9_.eE+-]*|true|false|\"[^\"\n]*\")")


@st.composite
def textual_mutants(draw):
    name = draw(st.sampled_from(sorted(BASE_TEXTS)))
    data = bytearray(BASE_TEXTS[name])
    done = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(TEXT_MUTATIONS))
        n = len(data)
        lines = bytes(data).split(b"\n")
        if kind == "flip" and n:
            i = draw(st.integers(0, n - 1))
            data[i] = data[i] ^ (1 << draw(st.integers(0, 7))) if draw(st.booleans()) else draw(st.integers(0, 255))
        elif kind == "insert":
            data[draw(st.integers(0, n)):0] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del data[i:i + draw(st.integers(1, 40))]
        elif kind in ("duplicate_line", "delete_line", "swap_lines", "snippet", "deep"):
            i = draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate_line":  # duplicate keys and tables
                lines.insert(draw(st.integers(0, len(lines))), lines[i])
            elif kind == "delete_line":
                del lines[i]
            elif kind == "swap_lines":
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            elif kind == "snippet":
                lines.insert(i, draw(st.sampled_from(SNIPPETS)))
            else:
                lines.insert(i, deep(draw(st.sampled_from(("array", "table", "dotted", "header"))),
                                     draw(st.sampled_from([1, 10, 50, 100, 101, 200, 400, 800, 1000, 2000, 10_000,
                                                           100_000]))))
            data = bytearray(b"\n".join(lines))
        elif kind == "literal":
            spots = list(_LITERAL.finditer(bytes(data)))
            if spots:
                m = draw(st.sampled_from(spots))
                data[m.start():m.end()] = draw(st.sampled_from(LITERALS))
        elif kind == "truncate" and n:
            del data[draw(st.integers(0, n - 1)):]
        elif kind == "newlines":
            data = bytearray(bytes(data).replace(b"\n", draw(st.sampled_from([b"\r\n", b"\r", b"\n\n", b"\x85"]))))
        elif kind == "tabs":
            data = bytearray(bytes(data).replace(b" = ", draw(st.sampled_from([b"\t=\t", b"=", b"  =  ", b" : ",
                                                                                 b" == "]))))
        done.append(kind)
    return name, bytes(data), done


@FUZZ_SETTINGS
@given(case=textual_mutants())
def test_fuzz_textual_mutants(workdir, case):
    name, data, mutations = case
    path = workdir / "fuzz.toml"
    path.write_bytes(data)
    check_file(path, "textual")


# ---------------------------------------------------------------------------------------
# observed outcomes (`sibsim settle`): the same promise for the evaluator's counts
# ---------------------------------------------------------------------------------------
OBSERVED_BASES = {  # observed file -> the scenario it settles (valid_minimal with the outcomes counted)
    FIXTURES / "observed" / "valid.toml": FIXTURES / "valid_minimal_jobs.toml",
    FIXTURES / "observed" / "counterfactual.toml": FIXTURES / "valid_minimal_jobs.toml",
    FIXTURES / "observed" / "valid.csv": FIXTURES / "valid_minimal_jobs.toml",
    FIXTURES / "observed" / "valid_bom.csv": FIXTURES / "valid_minimal_jobs.toml",
    SCENARIOS / "observed" / "peterborough_published.toml": SCENARIOS / "peterborough.toml",
    SCENARIOS / "observed" / "utrecht_colour_kitchen_example.toml": SCENARIOS / "utrecht_colour_kitchen.toml",
}
OBSERVED_TEXTS = {p: p.read_bytes() for p in OBSERVED_BASES}
OBSERVED_DOCS = {p: tomllib.loads(t.decode("utf-8")) for p, t in OBSERVED_TEXTS.items() if p.suffix == ".toml"}
OBSERVED_CONTRACTS = {p: load_scenario(p) for p in set(OBSERVED_BASES.values())}
#: An observed problem names a field (as the scenario loader writes it) or a CSV line.
OBSERVED_FIELD = rf"(?:{FIELD}|line \d+|header)"


def check_observed_problems(exc: ScenarioError, file: str) -> str:
    assert exc.problems and str(exc) == "\n".join(exc.problems)
    for line in exc.problems:
        assert line.splitlines() == [line], f"not a single line: {line!r}"
        assert line.startswith(f"{file}: "), line
        rest = line[len(file) + 2:]
        if rest.startswith(WHOLE_FILE) or rest.startswith("line ") and ": not valid CSV: " in rest:
            assert exc.problems == [line], exc.problems
            return "whole-file"
        assert re.fullmatch(rf"{OBSERVED_FIELD}:? \S.*", rest), f"not `file: field: rule`: {line!r}"
        check_bound_is_broken(rest.split(": ", 1)[-1], line)
    return "field"


def check_observed_file(path: Path, base: Path, test: str) -> str:
    file = str(path)
    contract = OBSERVED_CONTRACTS[OBSERVED_BASES[base]]
    with time_limit(SECONDS):
        try:
            observed = load_observed(file)
            assert isinstance(observed, Observed)
            for (group, cohort, outcome), series in observed.counts.items():
                # Names are checked against the scenario (settle below), not by the reader.
                assert group in ("treated", "comparison", "counterfactual") and isinstance(outcome, str) and outcome
                assert all(isinstance(m, int) and finite(v, 0, 1e12) for m, v in series.items())
            with np.errstate(under="ignore"):  # gradual underflow to 0 is right (e.g. a count of 5e-324)
                result = settle(contract, observed)
        except ScenarioError as exc:
            outcome = check_observed_problems(exc, file)
            TRIED[test, f"ScenarioError ({outcome})"] += 1
            return outcome
    # Settled counts name an outcome or a cost item of the scenario (Contract.measures).
    assert {name for _, _, name in observed.counts} <= {m.name for m in contract.measures}
    # A settlement: finite amounts, IRR only where defined.
    assert np.isfinite(result.schedule.to_numpy(dtype=float)).all()
    inv = result.investors
    assert np.isfinite(inv[["capital_called", "received"]].to_numpy(dtype=float)).all()
    defined = inv["irr_status"].isin(["defined", "total_loss"]).to_numpy()
    assert (np.isfinite(inv["irr"].to_numpy(dtype=float)) == defined).all()
    cash = result.cashflows
    for name in ("outcome_payments_due", "outcome_payments", "gross_savings", "net_savings", "distributions"):
        assert np.isfinite(getattr(cash, name)).all(), name
    TRIED[test, "settled"] += 1
    return "settled"


@st.composite
def observed_mutants(draw):
    base = draw(st.sampled_from(sorted(OBSERVED_TEXTS)))
    if base in OBSERVED_DOCS and draw(st.booleans()):  # structural
        doc = copy.deepcopy(OBSERVED_DOCS[base])
        for _ in range(draw(st.integers(1, 3))):
            paths = all_paths(doc)
            kind = draw(st.sampled_from(("replace", "replace", "delete", "add_key", "number", "duplicate")))
            if kind == "add_key":
                tables = [()] + [p for p in paths if isinstance(get(doc, p), dict)]
                get(doc, draw(st.sampled_from(tables)))[draw(unicode_text)] = draw(values)
            elif not paths:
                continue
            elif kind == "number":
                numeric = [p for p in paths if is_number(get(doc, p))]
                if numeric:
                    path = draw(st.sampled_from(numeric))
                    get(doc, path[:-1])[path[-1]] = draw(st.sampled_from(BOUNDARY_NUMBERS + NON_FINITE))
            else:
                path = draw(st.sampled_from(paths))
                parent = get(doc, path[:-1])
                if replace_or_delete(draw, parent, path[-1], kind):
                    pass
                elif isinstance(parent, list):
                    parent.append(copy.deepcopy(parent[path[-1]]))
        return base, dump_toml(doc, draw(st.sampled_from(("headers", "inline")))).encode("utf-8")
    data = bytearray(OBSERVED_TEXTS[base])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("flip", "insert", "delete", "cell", "cell", "duplicate_line", "snippet")))
        lines = bytes(data).split(b"\n")
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[i:i + draw(st.integers(1, 20))]
        else:
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "cell":  # a CSV cell, or a TOML value, replaced by a literal
                cells = re.split(rb"([,=])", lines[j])
                if len(cells) > 2:
                    k = draw(st.integers(0, (len(cells) - 1) // 2)) * 2
                    cells[k] = draw(st.sampled_from(LITERALS + [b"", b" ", b"12", b"-1", b"0", b"99", b"treated",
                                                                b"comparison", b"job_start", b'"a,b"', b'"a\nb"',
                                                                b"1" * 200_000]))
                    lines[j] = b"".join(cells)
            elif kind == "duplicate_line":
                lines.insert(j, lines[j])
            else:
                lines.insert(j, draw(st.sampled_from(SNIPPETS + [b"[[measurement]]", b"month = 0", b"cohort = 99",
                                                                 deep("array", 5_000), b",,,,", b"\x00"])))
            data = bytearray(b"\n".join(lines))
    return base, bytes(data)


@FUZZ_SETTINGS
@given(case=observed_mutants())
def test_fuzz_observed_outcomes(workdir, case):
    base, data = case
    path = workdir / f"observed{base.suffix}"  # the suffix picks the format
    path.write_bytes(data)
    check_observed_file(path, base, "observed")


_MEASURED = b'[[measurement]]\nmonth = 12\ncohort = 0\ncomparison = { job_start = 1 }\n'


@pytest.mark.parametrize("suffix, data, expected", [
    # Keys quoted as TOML would: no problem split over two lines, no empty field.
    (".toml", _MEASURED + b'treated = { "a\\nb" = 1 }\n',
     'measurement[0].treated."a\\nb": outcome must be one of'),
    (".toml", b'"" = 1\n' + _MEASURED, '"": unknown key (allowed: measurement, meta)'),
    (".toml", _MEASURED + b'"x\\ry" = 2\n', 'measurement[0]."x\\ry": unknown key'),
    # Deep nesting was a raw RecursionError, a huge CSV field a raw csv.Error.
    (".toml", deep("array", 5_000) + b"\n" + _MEASURED, "not valid TOML: arrays or inline tables nested too deeply"),
    (".csv", b"month,cohort,group,outcome,count\n12,0,treated,job_start," + b"1" * 200_000 + b"\n",
     "line 2: not valid CSV: field larger than field limit"),
    # Counts so large that price x count overflowed: settle raised ValueError (cashflows must be finite).
    (".toml", _MEASURED + b"treated = { diploma = 1e308 }\n",
     "measurement[0].treated.diploma: count must be <= 1e+12, got 1e+308"),
    (".toml", _MEASURED + b"treated = { diploma = 1" + b"0" * 400 + b" }\n",
     "count must be <= 1e+12, got an integer of more than 308 digits"),
], ids=["outcome_key_with_line_break", "empty_top_level_key", "entry_key_with_carriage_return", "deep_nesting",
        "csv_field_too_large", "count_1e308", "count_integer_of_400_digits"])
def test_observed_regressions(workdir, suffix, data, expected):
    path = workdir / f"observed_regression{suffix}"
    path.write_bytes(data)
    base = FIXTURES / "observed" / f"valid{suffix}"
    assert check_observed_file(path, base, "observed regressions") != "settled"
    with pytest.raises(ScenarioError) as info:  # the reader's own rules, or (a name) the scenario's
        settle(OBSERVED_CONTRACTS[OBSERVED_BASES[base]], load_observed(path))
    assert [line for line in info.value.problems if expected in line], info.value.problems


def test_observed_bases_settle(workdir):
    for base in OBSERVED_BASES:
        assert check_observed_file(base, base, "observed bases") == "settled", base


# ---------------------------------------------------------------------------------------
# targeted extremes, each one example (these are fast and deterministic)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["array", "table", "dotted", "header"])
@pytest.mark.parametrize("depth", [10, 100, 500, 1_000, 5_000, 100_000])
def test_deep_nesting(workdir, kind, depth):
    path = workdir / "deep.toml"
    path.write_bytes(BASE_TEXTS["valid_minimal.toml"] + b"\n" + deep(kind, depth) + b"\n")
    assert check_file(path, "deep nesting") != "valid"  # `deep` is never a scenario key


@pytest.mark.parametrize("data", [b"", b" ", b"\n\n", b"# only a comment\n", b"\xef\xbb\xbf", b"\x00", b"\xff" * 10,
                                  b"a = 1", b"[meta]", b"[[investors]]", "[meta]\ntitle = \"\u2028\"\n".encode(),
                                  b"= = =", b"\"\"\"" * 1000, b"[" * 10_000, b"x" * 1_000_000])
def test_degenerate_files(workdir, data):
    path = workdir / "degenerate.toml"
    path.write_bytes(data)
    assert check_file(path, "degenerate") != "valid"


# ---------------------------------------------------------------------------------------
# regressions the fuzzing found (tests/fixtures/fuzz/)
# ---------------------------------------------------------------------------------------
FUZZ_EXPECTED = tomllib.loads((FUZZ_FIXTURES / "EXPECTED.toml").read_text(encoding="utf-8"))
FUZZ_CORPUS = sorted(p.name for p in FUZZ_FIXTURES.iterdir() if p.name != "EXPECTED.toml")


def test_fuzz_corpus_is_complete():
    assert set(FUZZ_CORPUS) == set(FUZZ_EXPECTED)


@pytest.mark.parametrize("name", FUZZ_CORPUS)
def test_fuzz_regressions(name):
    expected = FUZZ_EXPECTED[name]
    path = FUZZ_FIXTURES / name
    outcome = check_file(path, "regressions")
    if expected.get("valid"):
        assert outcome == "valid"
        return
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path))
    prefix = f"{path}: {expected['field']}: " if expected["field"] else f"{path}: "
    hits = [line for line in info.value.problems if line.startswith(prefix) and expected["rule"] in line[len(prefix):]]
    assert hits, f"expected `{prefix}...{expected['rule']}...`, got:\n" + "\n".join(info.value.problems)
    assert info.value.problems == hits[:1], "more than one problem reported:\n" + "\n".join(info.value.problems)
