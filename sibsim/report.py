"""A self-contained HTML memo of a simulation run, for a council or a board.

:func:`render_report` turns :class:`~sibsim.results.Results` into one HTML
file: inline CSS, plots embedded as base64 PNG, no JavaScript, no external
files, no network.  It reads like a memo: what the SIB is, the key figures
(each with its Monte Carlo error), the expected and the downside case, plots
with a sentence on how to read them, every assumption and contract term, the
sensitivity analysis if one was run, and the method and its limits.

Every piece of text that comes from the scenario file (titles, names,
descriptions, sources, assumptions) is escaped with :func:`html.escape`.

Command line (wired into ``sibsim`` by :mod:`sibsim.cli`)::

    sibsim report RUN_DIR --out memo.html [--sensitivity [--sensitivity-paths N]] [--force]
    sibsim report SCENARIO --out memo.html [--paths N] [--seed S] [--sensitivity ...] [--force]

Given the directory of a ``sibsim run``, the memo is that run: :func:`load_run` re-simulates it
with the seed and paths recorded in its ``run.json`` (the engine is deterministic given both),
after checking that the scenario file's SHA-256 is unchanged, and checks the result against the
run's ``summary.csv``, so the memo's key figures are exactly the run's numbers.

The memo is written atomically: to a temporary file in the same directory,
then moved into place with :func:`os.replace`.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import re
import shlex
import sys
from datetime import date, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .contracts import Contract
from .estimators import N_BATCHES
from .journey import is_inline
from .language import LANGUAGES
from .metrics import NON_MONEY_UNITS, PER_PARTICIPANT, PERCENT_UNITS, primary_direction
from .stack_text import KIND_WORDS, guarantee_text, payer_text, savings_share_text, waterfall_text

#: Columns a sensitivity frame must have (see ``sibsim.sensitivity.tornado``).
SENSITIVITY_COLUMNS = ("assumption", "measure", "low", "base", "high")
#: Marks a memo written by sibsim, naming its scenario (used to refuse overwriting another scenario's memo).
SCENARIO_META = "sibsim-scenario"
#: Quantile used for the downside case.
DOWNSIDE = 0.05

#: Dutch terms glossed when they appear in the scenario text.
GLOSSARY = {  # term: (short gloss, shown in the text; longer explanation, shown in the list)
    "bijstand": ("welfare benefit", "the municipal social assistance for people without other income"),
    "Participatiewet": ("Participation Act", "the law that sets the bijstand amounts (norms)"),
    "gemeente": ("municipality", "the local authority"),
    "startkwalificatie": ("basic qualification", "at least a vocational diploma at MBO level 2, or HAVO/VWO"),
    "MBO": ("vocational education", "secondary vocational education; MBO-2 is the basic vocational level"),
    "CBS": ("Statistics Netherlands", "the national statistics office (Centraal Bureau voor de Statistiek)"),
    "UWV": ("employee insurance agency", "the national agency for unemployment and disability insurance"),
}

MEASURE_LABELS = {
    "difference": "difference (treated minus counterfactual, per participant)",
    "relative_increase": "relative increase over the counterfactual",
    "relative_reduction": "relative reduction against the counterfactual",
}

#: Plain-English names of the summary metrics (appendix and sensitivity table).
METRIC_LABELS = {
    "expected_moic": "Investors: expected multiple (money back per unit paid in)",
    "median_irr": "Investors: median annual return (IRR)",
    "irr_p05": "Investors: annual return (IRR), 5th percentile",
    "irr_p95": "Investors: annual return (IRR), 95th percentile",
    "share_irr_defined": "Investors: share of futures with a well-defined IRR",
    "probability_of_loss": "Investors: probability of losing money",
    "expected_loss": "Investors: expected capital not returned",
    "cvar05_net_result": "Investors: average net result in the worst 5 % of futures",
    "expected_npv": "Investors: expected net present value",
    "expected_distributions": "Investors: expected money received",
    "expected_capital_called": "Investors: expected capital paid in",
    "expected_guarantee_payouts": "Investors: expected guarantee payouts received",
    "expected_outcome_payments": "Payer: expected outcome payments",
    "expected_retained_above_caps": "Payer: expected payments not made because of the return caps",
    "expected_defaulted": "Payer: expected payments not made (payer default)",
    "probability_terminated_early": "Payer: probability the contract ends early (review or external stop)",
    "probability_terminated_by_review": "Payer: probability the contract ends early at its review",
    "probability_terminated_by_external_event": "Payer: probability the contract is stopped by the external event",
    "expected_provider_payments": "Provider: expected payments beyond its budget (success fees, shares, direct)",
    "expected_gross_savings": "Payer: expected gross savings",
    "expected_gross_savings_within_term": "Payer: expected gross savings within the term only",
    "expected_net_savings": "Payer: expected net savings",
    "expected_net_savings_within_term": "Payer: expected net savings within the term only",
    "net_savings_p05": "Payer: net savings, 5th percentile (downside case)",
    "probability_pays_more_than_saves": "Payer: probability of paying more than it saves",
    "probability_pays_more_than_saves_within_term": "Payer: probability of paying more than it saves within "
                                                    "the term only",
    "expected_npv_net_savings": "Payer: expected present value of net savings",
    "cost_per_primary_outcome": "Payer: cost per primary outcome",
    "cost_per_net_primary_outcome": "Payer: cost per net (additional) primary outcome",
}


# --- small formatting helpers (plain text; escape on output) -------------------------------------
def e(text) -> str:
    """Escape any text for HTML (quotes too, so it is safe in attributes)."""
    return html.escape(str(text), quote=True)


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _money(value: float, currency: str, decimals: int = 0) -> str:
    if not _finite(value):
        return "n/a"
    value = round(float(value), decimals)
    if value == 0:
        value = 0.0  # no "-0"
    sign = "-" if value < 0 else ""
    return f"{sign}{currency} {abs(value):,.{decimals}f}"


def _amount(value: float, currency: str) -> str:
    """A contract amount: whole units, or cents when it has them (EUR 972.70)."""
    value = float(value)
    return _money(value, currency, 0 if value == round(value) else 2)


def _pct(value: float, decimals: int | None = None) -> str:
    """A rate or probability as a percentage; ``decimals=None`` keeps up to 3 significant digits."""
    if not _finite(value):
        return "n/a"
    if decimals is None:
        return f"{float(value) * 100:.3g} %"
    return f"{float(value) * 100:.{decimals}f} %"


def _num(value: float) -> str:
    if not _finite(value):
        return "n/a"
    return f"{float(value):,.0f}" if abs(value) >= 1000 else f"{float(value):.4g}"


def _place(se: float) -> float:
    """Rounding step for an estimate with standard error ``se``: two significant digits of ``se``."""
    return 10.0 ** (math.floor(math.log10(se)) - 1)


def _decimals(step: float) -> int:
    return max(0, -int(math.floor(math.log10(step) + 1e-9)))


def _is_money(unit, currency: str) -> bool:
    """Money in the contract's currency: summary units are the currency (``EUR`` from older frames)."""
    return str(unit) in ("EUR", str(currency))


def format_estimate(value: float, se: float, unit: str, currency: str = "EUR") -> tuple[str, str]:
    """An estimate and its Monte Carlo error in plain words: ``("EUR 752,700", "± 400")``.

    The estimate is rounded to the precision its standard error supports (two
    significant digits of the error; money never finer than whole units,
    percentages never finer than 0.01 %).  ``unit`` is a unit of
    ``Results.summary()``: the currency (money in ``currency``; ``EUR`` is
    accepted as "money" too), ``probability``, ``share``, ``per year`` (shown as
    percentages) or ``x`` (a multiple).
    """
    if not _finite(value):
        return "n/a", "not defined in these simulations"
    exact = _finite(se) and se == 0
    known = _finite(se) and se > 0
    if _is_money(unit, currency):
        unit = "EUR"  # below: "EUR" stands for money in ``currency``
    if unit in PERCENT_UNITS:
        scale, lo, hi, what = 100.0, 0.01, 0.1, " percentage points"
    elif unit == "EUR":
        scale, lo, hi, what = 1.0, 1.0, math.inf, ""
    else:
        scale, lo, hi, what = 1.0, 0.0001, 0.001, ""
    v, err = float(value) * scale, (float(se) * scale if known else 0.0)
    step = min(max(_place(err), lo), hi) if known else (lo if unit == "EUR" else hi)
    d = _decimals(step) if step < 1 else 0
    rounded = round(v / step) * step
    if unit == "EUR":
        shown = _money(rounded, currency, d)
    elif scale == 100.0:
        shown = f"{rounded:.{d}f} %" + (" a year" if unit == "per year" else "")
    else:
        shown = f"{rounded:.{d}f}" + ("x" if unit == "x" else " per participant" if unit == PER_PARTICIPANT else "")
    if exact:
        return shown, "± 0"
    if not known:
        return shown, "Monte Carlo error not available"
    err_rounded = round(err / step) * step
    if err_rounded == 0:
        return shown, f"± less than {step:,.{d}f}{what}"
    return shown, f"± {err_rounded:,.{d}f}{what}"


def difference_text(value: float, se: float, unit: str, currency: str, translate=None) -> str:
    """A difference and its Monte Carlo error: ``+EUR 49,290 (± 700)``, ``-1.21 pp (± 0.21 pp)`` for rates
    (percentage points).  ``translate``: turns the English numbers and words into another language's
    (:func:`sibsim.report_nl.dutch`)."""
    translate = translate or (lambda text: text)
    if not _finite(value):
        return translate("n/a")
    text, err = format_estimate(value, se, unit, currency)
    if unit in PERCENT_UNITS:  # a difference of rates: percentage points
        text = text.replace(" a year", "").replace(" %", " pp")
        err = err.replace(" percentage points", " pp")
    text, err = translate(text), translate(err)
    sign = "+" if value > 0 and not text.lstrip("-").startswith(("0 ", f"{currency} 0")) else ""
    return f"{sign}{text}" + (f" ({err})" if err.startswith("±") else "")


def _quantile_with_se(values: np.ndarray, q: float) -> tuple[float, float]:
    """Quantile of ``values`` and its standard error from independent batches (as in sibsim.metrics)."""
    values = np.asarray(values, dtype=float)
    est = float(np.quantile(values, q))
    if len(values) < 2 * N_BATCHES:
        return est, float("nan")
    stats = np.array([np.quantile(b, q) for b in np.array_split(values, N_BATCHES)])
    return est, float(stats.std(ddof=1) / np.sqrt(len(stats)))


# --- calendar -------------------------------------------------------------------------------------
class _Calendar:
    """Contract months as calendar months when the scenario gives ``meta.start = "YYYY-MM"``."""

    MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

    def __init__(self, start):
        self.start = None
        m = re.fullmatch(r"(\d{4})-(\d{1,2})(?:-\d{1,2})?", str(start or "").strip())  # YYYY-MM or YYYY-MM-DD
        if m and 1 <= int(m.group(2)) <= 12:
            self.start = (int(m.group(1)), int(m.group(2)) - 1)

    def label(self, month: int) -> str | None:
        if self.start is None:
            return None
        y, m0 = self.start
        total = m0 + int(month)
        return f"{self.MONTHS[total % 12]} {y + total // 12}"

    def month(self, month: int) -> str:
        """``month 12 (Apr 2016)``, or ``month 12`` without a start date."""
        cal = self.label(month)
        return f"month {month} ({cal})" if cal else f"month {month}"

    def span(self, first: int, last: int) -> str:
        a, b = self.label(first), self.label(last)
        return f"{a}–{b}" if a else f"months {first}–{last}"


# --- text helpers -------------------------------------------------------------------------------
def _meta(contract: Contract) -> dict:
    return dict(contract.meta)


def _scenario_texts(contract: Contract) -> list[str]:
    meta = _meta(contract)
    texts = [contract.title, contract.provider_name, contract.payer.name,
             str(meta.get("description", "")), str(meta.get("notes", ""))]
    texts += [i.name for i in contract.investors] + [f.name for f in contract.fees]
    texts += [str(s) for s in meta.get("sources", ())] + [str(s) for s in meta.get("assumptions", ())]
    texts += [item.title for item in contract.costs] + [o.title for o in contract.outcomes]
    return texts


def _glossary_terms(contract: Contract) -> list[str]:
    text = " ".join(_scenario_texts(contract))
    return [t for t in GLOSSARY if re.search(rf"\b{re.escape(t)}", text, flags=re.IGNORECASE)]


def _gloss(escaped: str, terms: list[str], done: set) -> str:
    """Add ``(plain meaning)`` after the first occurrence of each Dutch term in already-escaped text."""
    for term in terms:
        if term in done:
            continue
        pattern = re.compile(rf"\b({re.escape(term)}[\w-]*)", flags=re.IGNORECASE)
        short = GLOSSARY[term][0]
        first = pattern.search(escaped)
        if first and re.match(rf"\s*\({re.escape(e(short))}", escaped[first.end():], flags=re.IGNORECASE):
            done.add(term)  # the scenario glosses it itself: "bijstand (welfare benefit)"
            continue
        new, n = pattern.subn(lambda m: f"{m.group(1)} <span class=\"gloss\">({e(short)})</span>", escaped, count=1)
        if n:
            escaped = new
            done.add(term)
    return escaped


def _outcome_label(name: str, contract: Contract) -> str:
    """The deal's own words for an outcome (its ``label``), else its name in words."""
    return contract.outcome_label(name)


PARTY_METRIC_LABELS = {
    "expected_payout": "{name} (guarantor): expected payout, net of what it recoups",
    "probability_pays": "{name} (guarantor): probability of paying out",
    "cvar95_payout": "{name} (guarantor): mean payout in its worst 5 % of futures",
    "expected_outcome_payments": "{name}: expected outcome payments",
}


def _party_metric_label(metric: str) -> str:
    """A summary row of one party (``measure[name]``) in words."""
    measure, name = metric.split("[", 1)
    name = name[:-1] if name.endswith("]") else name
    return PARTY_METRIC_LABELS.get(measure, measure.replace("_", " ") + " of {name}").format(name=name)


def _join_words(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _months_list(months, cal: _Calendar) -> str:
    months = [int(m) for m in months]
    if not months:
        return "none"
    if cal.start is None:
        return ("month " if len(months) == 1 else "months ") + ", ".join(str(m) for m in months)
    return ", ".join(cal.month(m) for m in months)


def _saves_benefits(contract: Contract) -> bool:
    """Whether the scenario models what the payer spends on participants (so that it can save)."""
    return any(c.base_amount > 0 for c in contract.costs)


# --- the deal in words, from its own data (journey, outcomes, cost items) --------------------------
def _words(name) -> str:
    return str(name).replace("_", " ")


def _states_text(states) -> str:
    """A set of states in words: ``job, job with diploma or long term job``."""
    return _or_words([_words(s) for s in states])


def _or_words(items) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _months_word(n: int) -> str:
    return f"{n} month" + ("" if n == 1 else "s")


def _cost_items_text(contract: Contract) -> str:
    """``bijstand (welfare benefit) for each month in training, job search ...; court case for each custodial
    sentence``: the scenario's cost items, by their names and what they are paid on (plain text)."""
    parts = []
    for item in contract.costs:
        if item.base_amount <= 0:
            continue
        on = (f"for each {_words(item.event)} event" if item.event is not None
              else f"for each month in {_states_text(item.states)}")
        parts.append(f"{item.title} {on}")
    return "; ".join(parts)


def _cost_titles(contract: Contract) -> str:
    """``bijstand (welfare benefit) and top-up benefit in part-time work`` (plain text)."""
    return _join_words([item.title for item in contract.costs if item.base_amount > 0])


def _state_sentence(state) -> str:
    """What can happen to a participant in one state, in words (plain text, one sentence)."""
    parts = []
    if state.exits:
        targets = [_words(x.to) + (f" (event: {_words(x.event)})" if x.event else "") for x in state.exits]
        if state.exits_in_order and len(targets) > 1:
            moves = targets[0] + "".join(f" or, failing that, to {t}" for t in targets[1:])
        else:
            moves = _or_words(targets)
        when = ("each month, the month of arrival included (so they can pass straight through), "
                if state.timing == "start" else "each month ")
        parts.append(f"{when}they may move to {moves}")
    if state.time_limit is not None:
        limit = _months_word(state.time_limit)
        parts.append(f"after at most {limit} there they move to {_words(state.after_limit)}" if state.exits
                     else f"they stay {limit}, then move to {_words(state.after_limit)}")
    for r in state.events:
        parts.append(f"{_words(r.event)} events happen at a monthly rate (a random number each month)")
    if state.absorbing:
        parts.append("they stay there")
    return f"In {_words(state.name)}, " + "; ".join(parts) + "."


def _start_text(journey, who: str) -> str:
    if len(journey.start) == 1:
        return f"{who} start in {_words(journey.start[0][0])}."
    return (f"{who} start in " + _or_words([f"{_words(s)} ({_pct(share)})" for s, share in journey.start])
            + ".")


def _journey_text(contract: Contract) -> str:
    """The journey's states, exits, time limits, branches and recurrent events in words (plain text)."""
    journey = contract.journey
    out = [_start_text(journey, "Participants")]
    comparison = contract.comparison.journey
    if tuple(comparison.start) != tuple(journey.start):
        out.append(_start_text(comparison, "Without the programme, they").replace("they start", "they would start"))
    out += [_state_sentence(s) for s in journey.states]
    for b in journey.branches:
        out.append(f"On reaching {_months_word(b.at_month)} in a row in {_states_text(b.states)}, they may move to "
                   f"{_words(b.to)}" + (f" (event: {_words(b.event)})" if b.event else "") + ".")
    return " ".join(out)


def _outcome_text(o, contract: Contract) -> str:
    """What one outcome counts, by its label and kind (plain text)."""
    states = _states_text(o.states)
    if o.kind == "entry":
        what = ("each participant's first entry into " if o.count == "first" else "every entry into ") + states
    elif o.kind == "event":
        what = ("each participant's first " if o.count == "first" else "every ") + f"{_words(o.event)} event"
    elif o.kind == "milestone":
        what = (f"reaching {_months_word(o.months)} in a row in {states}" if o.consecutive
                else f"reaching {_months_word(o.months)} in all in {states}")
    elif o.kind == "occupancy":
        what = f"months spent in {states}"
        if o.scale != 1:
            what = f"{o.unit} spent in {states} ({o.scale:g} a month)"
    elif o.kind == "status":
        what = (f"participants in {states} " + _join_words([str(k) for k in o.at_months])
                + " months after intake (a census)")
    else:
        what = o.kind
    if o.window is not None:
        what += f", within {_months_word(o.window)} of intake"
    if o.lag:
        what += f", counted {_months_word(o.lag)} later"
    return f"{o.title}: {what}"


def _exit_caveat(contract: Contract) -> str:
    """Where an ordered exit carries an event (a diploma first, then dropout among those without one), the
    people who leave without it follow only the rates of the state they go to (plain text, may be empty)."""
    journey, out = contract.journey, []
    for s in journey.states:
        if not (s.exits_in_order and len(s.exits) > 1 and s.exits[0].event):
            continue
        first = s.exits[0]
        for x in s.exits[1:]:
            if x.event or x.to == first.to:
                continue
            target = journey.state(x.to)
            onward = [f"to {_words(y.to)} at the rate {_words(y.probability)}" for y in target.exits]
            if target.time_limit is not None:
                onward.append(f"to {_words(target.after_limit)} after {_months_word(target.time_limit)}")
            tail = (f"move on from there only as everyone in it does ({_join_words(onward)})" if onward
                    else "stay there")
            out.append(f"Those who leave {_words(s.name)} for {_words(x.to)} (without the {_words(first.event)}) "
                       f"{tail.strip()}.")
    return " ".join(dict.fromkeys(out))


def _price_text(key: str, price: float, contract: Contract) -> str:
    """``EUR 5,500 per additional job held 6 months``; person-months are priced per unit (a day, a month)."""
    cur = contract.currency
    outcome = next((o for o in contract.outcomes if o.name == key), None)
    if outcome is not None and outcome.kind == "occupancy":
        unit = "participant-month" if outcome.scale == 1 else outcome.unit.rstrip("s") or "unit"
        return f"{_amount(price, cur)} per additional {unit} of {_outcome_label(key, contract)}"
    return f"{_amount(price, cur)} per additional {_outcome_label(key, contract)}"


def _paid_for(contract: Contract) -> list[str]:
    """What the payer pays for, in words (plain text)."""
    cur, payer, out = contract.currency, contract.payer, []
    for key, price in payer.rate_card:
        if price > 0:
            out.append(_price_text(key, price, contract))
    if payer.savings_share.rate > 0:
        out.append(savings_share_text(payer.savings_share))
    for tier in payer.tiers:
        # The label is the outcome's own words (e.g. "days incarcerated within 12 months of release"):
        # never pluralised by appending a letter.
        how = "a fixed amount for each level reached" if tier.interpolation == "step" else \
            "an amount rising linearly"
        out.append(f"{how} of the measured improvement ({MEASURE_LABELS.get(tier.measure, tier.measure)}) in "
                   f"{_outcome_label(tier.outcome, contract)} (up to {_amount(max(p[1] for p in tier.points), cur)})")
    if payer.trigger is not None:
        t = payer.trigger
        out.append(f"{_amount(t.price, cur)} per {_outcome_label(t.outcome, contract)} avoided, if a cohort "
                   f"improves by at least {_pct(t.cohort_threshold)} or all cohorts together by at least "
                   f"{_pct(t.pooled_threshold)}")
    return out


#: Columns of ``sibsim.sensitivity.tornado`` shown in their own way (not as extra columns).
SENSITIVITY_KNOWN = ("unit", "setting_unit", "low_setting", "base_setting", "high_setting", "low_se", "high_se",
                     "base_se", "swing")

#: Plain names of sensitivity measures that are per-path columns rather than summary rows.
MEASURE_NAMES = {
    "investor_moic": "Investors: expected multiple (money back per unit paid in)",
    "investor_irr_median": "Investors: median annual return (IRR)",
    "net_savings": "Payer: expected net savings",
    "gross_savings": "Payer: expected gross savings",
    "outcome_payments": "Payer: expected outcome payments",
    "payer_npv": "Payer: expected present value of net savings",
    "investor_npv": "Investors: expected net present value",
    "investor_loss": "Investors: expected capital not returned",
    "distributions": "Investors: expected money received",
}

ASSUMPTION_NAMES = {
    "cost_amounts": "The payer's costs per participant (every cost item)",
    "prices": "All outcome prices",
    "provider_budget": "Provider's delivery budget",
    "tail_months": "Months after the term in which savings are counted (tail)",
}


def _measure_label(measure) -> str:
    name = str(measure)
    return MEASURE_NAMES.get(name) or METRIC_LABELS.get(name) or name.replace("_", " ").capitalize()


def _assumption_label(name, contract: Contract) -> str:
    """HTML: a plain label for a tornado assumption, with its technical name below."""
    name = str(name)
    label = ASSUMPTION_NAMES.get(name)
    group, _, key = name.partition(".")
    if label is None and group in ("treated", "comparison"):
        journey = contract.journey if group == "treated" else contract.comparison.journey
        if key in journey.parameter_names:
            label = ("Programme: " if group == "treated" else "Without the programme: ") + \
                journey.describe_parameter(key)
    code = "<wbr>".join(e(part) for part in re.split(r"(?<=[._])", name))  # may break after . and _
    if label is None:
        return f"<code>{code}</code>"
    return f'{e(label)}<br><span class="note"><code>{code}</code></span>'


def _setting(value, unit, currency: str) -> str:
    if not _finite(value):
        return str(value)
    unit = str(unit)
    if unit == "probability":
        return _pct(value)
    if unit in ("EUR/month", f"{currency}/month"):
        return f"{_money(value, currency, 2 if value != round(value) else 0)} a month"
    if _is_money(unit, currency):
        return _money(value, currency)
    if unit.startswith("x"):
        return f"{float(value):g}x"
    return f"{float(value):.4g} {unit}".strip()


# --- plots ----------------------------------------------------------------------------------------
def _png(plot, currency: str) -> str:
    """Draw one plot on a fresh figure (no pyplot, so no GUI backend) and return a data: URI."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.4))
    ax = fig.add_subplot()
    plot(ax)
    if ax.get_legend() is not None:  # keep the legend clear of the data
        ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="none")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, axis="y", color="#e3e8ee", lw=0.8)
    ax.set_axisbelow(True)
    fig.tight_layout()
    return _data_uri(fig)


def _data_uri(fig) -> str:
    """A figure as a PNG (150 dpi) ``data:`` URI, embedded in the memo."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- the memo ------------------------------------------------------------------------------------
CSS = """
:root { --ink:#1f2933; --muted:#52606d; --line:#d9e2ec; --accent:#1f5f8b; --soft:#f3f6f9;
        --bad:#a93226; --good:#1e7b4a; }
* { box-sizing: border-box; }
html { background: #e6ebf0; }
body { margin: 0; color: var(--ink);
       font: 16px/1.55 "Liberation Sans", "DejaVu Sans", Arial, Helvetica, sans-serif; }
main { max-width: 980px; margin: 24px auto; padding: 40px 56px 48px; background: #fff;
       box-shadow: 0 1px 4px rgba(0,0,0,.12); }
header { border-bottom: 3px solid var(--accent); padding-bottom: 14px; margin-bottom: 8px; }
.kicker { text-transform: uppercase; letter-spacing: .08em; font-size: 13px; color: var(--accent);
          font-weight: bold; margin: 0 0 4px; }
h1 { font-size: 30px; line-height: 1.2; margin: 0 0 10px; }
h2 { font-size: 22px; margin: 44px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line);
     color: var(--accent); }
h3 { font-size: 17px; margin: 26px 0 8px; }
p { margin: 0 0 12px; }
.meta-line { color: var(--muted); font-size: 14px; margin: 0; }
.meta-line b { color: var(--ink); }
nav.toc { background: var(--soft); padding: 10px 16px; margin: 18px 0 0; font-size: 14px; }
nav.toc ol { margin: 4px 0 0; padding-left: 22px; columns: 2; }
nav.toc a { color: var(--accent); text-decoration: none; }
.gloss { color: var(--muted); }
.nowrap { white-space: nowrap; }
.note { color: var(--muted); font-size: 14px; }
.callout { background: var(--soft); border-left: 4px solid var(--accent); padding: 10px 14px; margin: 14px 0; }
.callout.bad { border-left-color: var(--bad); }
.glossary { font-size: 14px; margin: 12px 0; }
.glossary dt { font-weight: bold; float: left; clear: left; width: 150px; font-style: italic; }
.glossary dd { margin: 0 0 4px 160px; }
.kf { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; margin: 14px 0 8px; }
.kf-group { border: 1px solid var(--line); border-top: 4px solid var(--accent); padding: 12px 16px 6px; }
.kf-group.payer { border-top-color: var(--good); }
.kf-group h3 { margin: 0 0 8px; font-size: 16px; }
.kf-item { padding: 8px 0 10px; border-top: 1px solid var(--line); }
.kf-item:first-of-type { border-top: 0; }
.kf-label { font-size: 14px; color: var(--muted); }
.kf-value { font-size: 24px; font-weight: bold; line-height: 1.25; font-variant-numeric: tabular-nums; }
.kf-error { font-size: 13px; color: var(--muted); white-space: nowrap; }
.kf-explain { font-size: 13.5px; margin-top: 2px; }
.kf-foot { font-size: 14px; color: var(--muted); }
.table-wrap { overflow-x: auto; margin: 10px 0 16px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
caption { caption-side: top; text-align: left; font-weight: bold; padding: 0 0 6px; font-size: 15px; }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
thead th { background: var(--soft); border-bottom: 2px solid #bcccdc; font-size: 13px; }
th.group { text-align: center; border-bottom: 1px solid #bcccdc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap;
                 overflow-wrap: normal; }
thead th.num { white-space: normal; }
td.neg { color: var(--bad); }
tr.total td { font-weight: bold; border-top: 2px solid #bcccdc; }
table.terms th[scope=row] { width: 30%; font-weight: bold; background: #fafbfc; }
table.list td:first-child { width: 2.5em; color: var(--muted); }
figure { margin: 22px 0 30px; break-inside: avoid; }
figure img { display: block; width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { font-size: 14px; color: var(--muted); margin-top: 6px; }
figcaption b { color: var(--ink); }
table.sens { table-layout: fixed; }
table.sens td.num .note { white-space: normal; }
table.sens code { font-size: 12px; }
.bar { position: relative; height: 14px; min-width: 160px; background: var(--soft); }
.bar span { position: absolute; top: 2px; height: 10px; background: #5b8db8; }
.bar i { position: absolute; top: 0; width: 2px; height: 14px; background: var(--ink); }
details { margin: 8px 0 16px; }
summary { cursor: pointer; color: var(--accent); font-size: 14px; }
code { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 13px;
       background: var(--soft); padding: 0 3px; }
ul.caveats li { margin-bottom: 6px; }
footer { margin-top: 40px; padding-top: 10px; border-top: 1px solid var(--line); font-size: 13px;
         color: var(--muted); }
@media (max-width: 760px) {
  main { padding: 20px; margin: 0; }
  .kf { grid-template-columns: 1fr; }
  nav.toc ol { columns: 1; }
  .glossary dt { float: none; width: auto; }
  .glossary dd { margin-left: 16px; }
}
.print-only { display: none; }
.council { border: 2px solid var(--accent); padding: 4px 18px 8px; margin: 18px 0 26px; }
.council h2 { border: 0; margin-top: 12px; }
table.council-table th[scope=row] { width: 34%; }
@page { size: A4; margin: 16mm 14mm 16mm 14mm; }
@media print {
  html { background: #fff; }
  body { font-size: 9pt; line-height: 1.3; }
  h1 { font-size: 18pt; } h2 { font-size: 13.5pt; margin: 5mm 0 2mm; } h3 { font-size: 11pt; margin: 4mm 0 1.5mm; }
  p, ul { margin: 1.5mm 0; }
  th, td { padding: 2px 4px; }
  .kf { gap: 3mm; } .kf-value { font-size: 13pt; } .kf-item { padding: 3px 0 4px; }
  .kf-explain { font-size: 8pt; line-height: 1.2; }
  .kf-group { display: grid; grid-template-columns: 1fr 1fr; column-gap: 3mm; }
  .kf-group h3 { grid-column: 1 / -1; }
  .kf-item:nth-of-type(2) { border-top: 0; }
  /* the plots two by two: a printed memo stays short */
  #plots { display: grid; grid-template-columns: 1fr 1fr; column-gap: 5mm; }
  #plots > h2, #plots > p { grid-column: 1 / -1; }
  figure { margin: 2mm 0 3mm; }
  figcaption { font-size: 8pt; }
  main { box-shadow: none; margin: 0; padding: 0; max-width: none; }
  nav.toc, details { display: none; }
  .council { break-after: page; }
  h2, h3 { break-after: avoid; }
  h2 { break-before: auto; }
  .kf, table, figure, tr, .callout { break-inside: avoid; }
  table.long { break-inside: auto; }
  thead { display: table-header-group; }
  figure img { max-height: 60mm; width: auto; max-width: 100%; margin: 0 auto; }
  .table-wrap { overflow: visible; }
  table { font-size: 8pt; }
  table.sens { font-size: 7.5pt; line-height: 1.15; }
  table.sens tr.no-effect, table.sens code { display: none; }  /* the scenario's own names: on screen only */
  .print-only { display: block; }
  table.sens .note { font-size: 7pt; }
  table.sens .bar { display: none; }  /* on paper the numbers say it; the last column keeps its notes */
  table.sens col:first-child { width: 40% !important; }
  table.sens col:last-child { width: 15% !important; }
  table.sens td br { display: none; }  /* value, error and setting on as few lines as the column allows */
  table.sens td .note::before { content: " "; }
  #all-estimates td, #all-estimates th { padding: 1px 4px; font-size: 7.5pt; }
  .bar { min-width: 0; }
  a { color: inherit; text-decoration: none; }
}
"""


#: Rows above which a table may continue on the next printed page (between rows, header repeated).
LONG_TABLE_ROWS = 18


class _Memo:
    """Builds the memo's HTML from one Results (all methods return HTML-safe strings)."""

    def __init__(self, results, sensitivity, generated, run_dir=None, stress=None, break_even=None):
        self.run_dir = run_dir
        self.stress, self.break_even = stress, break_even
        self.lang = "en"
        self.r = results
        self.n_figures = 0  # numbered figures so far (plots() sets it; the method section's number on)
        self.c: Contract = results.contract
        self.cur = self.c.currency
        self.s = results.summary()
        self.meta = _meta(self.c)
        self.cal = _Calendar(self.meta.get("start"))
        self.payer = self.c.payer.name
        self.terms = _glossary_terms(self.c)
        self.glossed: set = set()
        self.sensitivity = sensitivity
        self.generated = generated

    # helpers -------------------------------------------------------------------------------
    def est(self, metric: str) -> tuple[float, float, str]:
        row = self.s.loc[metric]
        return float(row["estimate"]), float(row["std_error"]), str(row["unit"])

    def text(self, scenario_text) -> str:
        """Escaped scenario text, with Dutch terms glossed at their first occurrence."""
        return _gloss(e(scenario_text), self.terms, self.glossed)

    #: What the memo calls a Monte Carlo standard error (the Dutch memo: "Monte-Carlofout").
    ERROR_WORDS = "Monte Carlo error"

    def estimate_text(self, value, se, unit) -> tuple[str, str]:
        """An estimate and its error in the memo's language (:func:`format_estimate`)."""
        return format_estimate(value, se, unit, self.cur)

    def figure_html(self, metric: str, label: str, explain: str, value=None, se=None, unit=None) -> str:
        if value is None:
            value, se, unit = self.est(metric)
        shown, err = self.estimate_text(value, se, unit)
        return (f'<div class="kf-item"><div class="kf-label">{e(label)}</div>'
                f'<div class="kf-value" data-metric="{e(metric)}" data-estimate="{value!r}" '
                f'data-std-error="{se!r}" data-unit="{e(unit)}">{e(shown)}</div>'
                f'<div class="kf-error">({e(err)}{", " + self.ERROR_WORDS if err.startswith("±") else ""})</div>'
                f'<div class="kf-explain">{explain}</div></div>')

    def convergence_rows(self, frame: pd.DataFrame, shown, label) -> list[list[str]]:
        """One row per key figure of :func:`sibsim.convergence.convergence`'s table: its label
        (``label(metric, frame label)``) and its estimate with its error at each path count in ``shown``."""
        rows = []
        for metric in dict.fromkeys(frame["metric"]):
            part = frame[frame["metric"] == metric].set_index("paths")
            cells = []
            for k in shown:
                value, se, unit = part.loc[k, ["estimate", "std_error", "unit"]]
                text, err = self.estimate_text(value, se, unit)
                cells.append(e(f"{text} ({err})" if err.startswith("±") else text))
            rows.append([e(label(metric, part["label"].iloc[0]))] + cells)
        return rows

    @staticmethod
    def table(head: list[str], rows: list[list[str]], num_cols=(), caption: str = "", cls: str = "",
              group_head: str = "", row_classes=None, widths=None) -> str:
        """A table from HTML-safe cells; ``num_cols`` are right-aligned; ``widths`` (%) fix the columns."""
        cap = f"<caption>{caption}</caption>" if caption else ""
        if widths:
            cap += "<colgroup>" + "".join(f'<col style="width:{w}%">' for w in widths) + "</colgroup>"
        ths = "".join(f'<th scope="col"{" class=num" if i in num_cols else ""}>{h}</th>'
                      for i, h in enumerate(head))
        body = []
        for k, row in enumerate(rows):
            tds = []
            for i, cell in enumerate(row):
                classes = []
                if i in num_cols:
                    classes.append("num")
                    if cell.startswith("-") and any(ch.isdigit() for ch in cell):
                        classes.append("neg")
                tds.append(f'<td class="{" ".join(classes)}">{cell}</td>' if classes else f"<td>{cell}</td>")
            rc = (row_classes or {}).get(k)
            body.append(f'<tr class="{rc}">' + "".join(tds) + "</tr>" if rc else "<tr>" + "".join(tds) + "</tr>")
        # A long table may continue on the next printed page (between rows, its header repeated);
        # a short one is kept on one page.
        cls = " ".join(x for x in (cls, "long" if len(rows) > LONG_TABLE_ROWS else "") if x)
        cls_attr = f' class="{cls}"' if cls else ""
        return (f'<div class="table-wrap"><table{cls_attr}>{cap}<thead>{group_head}<tr>{ths}</tr></thead>'
                f'<tbody>{"".join(body)}</tbody></table></div>')

    # sections ------------------------------------------------------------------------------
    def header(self) -> str:
        c, r = self.c, self.r
        source = Path(c.source).name if c.source else "(built in Python)"
        when = self.generated.strftime("%d %B %Y").lstrip("0")
        toc = "".join(f'<li><a href="#{sid}">{e(title)}</a></li>' for sid, title in SECTIONS)
        return (f'<header><p class="kicker">Memo · Social Impact Bond simulation</p>'
                f"<h1>{e(c.title)}</h1>"
                f'<p class="meta-line"><b>Date:</b> {e(when)} &nbsp;·&nbsp; <b>Scenario:</b> '
                f"<code>{e(source)}</code> &nbsp;·&nbsp; <b>Simulated futures:</b> {r.n_paths:,} "
                f"&nbsp;·&nbsp; <b>Seed:</b> {e(self.seed_text())}</p></header>"
                f'<nav class="toc" aria-label="Contents"><b>Contents</b><ol>{toc}</ol></nav>')

    def council(self) -> str:
        """The first page, for a council member who reads nothing else (:mod:`sibsim.council`)."""
        from .council import council_page

        return council_page(self.r, self.break_even, lang=self.lang)

    def seed_text(self) -> str:
        key = tuple(self.r.spawn_key)
        return f"{self.r.seed_entropy}" + (f" (spawn key {key})" if key else "")

    def what(self) -> str:
        c = self.c
        investors = _join_words([i.name for i in c.investors])
        caps = sorted({i.return_cap for i in c.investors if i.return_cap is not None and i.repayable})
        cap_text = ""
        if caps:
            cap_text = (f", capped at {_join_words([_pct(x) for x in caps])} a year, so that what the payer "
                        "pays above the cap stays with the payer")
        paid = _paid_for(c)
        if _saves_benefits(c):
            savings = self.text("It expects to pay for this out of its savings: what it no longer spends on the "
                                "participants, compared with what it would have spent on them without the "
                                f"programme. What the payer spends on participants: {_cost_items_text(c)}.")
        else:
            savings = e("This scenario does not model savings for the payer: it pays for the outcomes from "
                        "its budget, so its “net savings” below are simply minus what it pays.")
        out = [
            '<section id="what"><h2>1. What this is</h2>',
            f"<p>This memo summarises a computer simulation of <b>{e(c.title)}</b>, a "
            f"<b>Social Impact Bond</b> (SIB). In a SIB, private investors ({e(investors)}) pre-finance a "
            f"social programme run by {e(c.provider_name)}: they commit {e(_money(c.total_commitment, self.cur))} "
            f"up front. The outcome payer, {e(self.payer)}, pays only for results that an evaluator measures "
            f"against what would have happened without the programme: "
            f"{e(_join_words(paid) or 'see the contract terms in section 5')}. {savings} "
            f"If the programme works, the investors get their money back with a return{e(cap_text)}; if it "
            f"does not, they lose part or all of it, and the payer pays little.</p>",
            f"<p>Nobody knows in advance how well the programme will work, so the simulation plays out "
            f"<b>{self.r.n_paths:,} possible futures</b>, each with its own success rates, drawn from the "
            f"assumptions in section 5. The figures below are averages and bad cases over those futures. "
            f"They are only as good as the assumptions.</p>",
        ]
        desc = self.meta.get("description")
        if desc:
            out.append(f'<div class="callout"><b>The programme, in the scenario\'s words:</b> '
                       f"{self.text(desc)}</div>")
        if self.terms:
            items = "".join(f"<dt>{e(t)}</dt><dd>{e(GLOSSARY[t][0])}: {e(GLOSSARY[t][1])}</dd>"
                            for t in self.terms)
            out.append(f'<h3>Dutch terms used</h3><dl class="glossary">{items}</dl>')
        out.append("</section>")
        return "".join(out)

    def tail_text(self) -> str:
        """Plain text: what the savings after the term assume, as the model computes them."""
        c = self.c
        if c.tail_months == 0 or not _saves_benefits(c):
            return ""
        last = c.term_months + c.tail_months - 1
        span = self.cal.span(c.term_months, last)
        return (f"The savings include the {c.tail_months} months after the {c.term_months}-month term ({span}), "
                f"in which nothing is paid for. This is an assumption of the scenario (tail_months = "
                f"{c.tail_months}): the model keeps following every participant and the comparison "
                "(without-programme) situation month by month after the term, with the same rates as in the "
                "term, and counts as saved what the payer spends less on the participants than on the comparison, "
                f"over its cost items ({_cost_titles(c)}). Whether those savings materialise (and whether the payer should count "
                "them) is not known; the figures within the term leave them out.")

    def key_figures(self) -> str:
        cur, c = self.cur, self.c
        payer = self.payer
        pays, _, _ = self.est("expected_outcome_payments")
        gross, _, _ = self.est("expected_gross_savings")
        moic, _, _ = self.est("expected_moic")
        saves = _saves_benefits(c)
        tail = c.tail_months if saves else 0
        over = f", term and {tail}-month tail" if tail else ""
        payer_items = [
            self.figure_html("expected_outcome_payments", "Expected outcome payments",
                             f"What {e(payer)} is expected to pay the investors for measured results, over "
                             "the whole contract."),
            self.figure_html("expected_gross_savings", "Expected gross savings" + over,
                             f"What {e(payer)} spends less on the participants than it would have spent on them "
                             f"without the programme, over its cost items: {self.text(_cost_titles(c))}."
                             if saves else
                             "Not modelled in this scenario: the payer pays from its budget."),
            self.figure_html("expected_net_savings", "Expected net savings" + over,
                             "Gross savings less outcome payments and the costs the payer bears (fees, "
                             "guarantees)."),
            self.figure_html("probability_pays_more_than_saves",
                             "Chance that the payer pays more than it saves" + over,
                             f"Share of simulated futures in which {e(payer)}'s net savings are negative."
                             + ("" if saves else " With no savings modelled, this is the chance that it pays "
                                                 "anything at all.")),
        ]
        if tail:
            payer_items += [
                self.figure_html("expected_net_savings_within_term",
                                 f"Expected net savings within the {c.term_months}-month term only",
                                 "The same, counting only the savings within the term (every payment and fee "
                                 "is still counted)."),
                self.figure_html("probability_pays_more_than_saves_within_term",
                                 "Chance that the payer pays more than it saves, within the term only",
                                 f"Share of futures in which {e(payer)} pays more than it saves if savings after "
                                 "the term are not counted."),
            ]
        back = _money(moic, cur, 2) if _finite(moic) else "n/a"
        investor_items = [
            self.figure_html("expected_moic", "Investors' expected multiple",
                             f"For every {e(cur)} 1 paid in, investors get back {e(back)} on average."),
            self.figure_html("probability_of_loss", "Investors' chance of a loss",
                             "Share of simulated futures in which investors get back less than they paid in."),
            self.figure_html("median_irr", "Investors' median annual return (IRR)",
                             "Half of the futures give a higher return, half a lower one."),
            self.figure_html("expected_loss", "Investors' expected loss of capital",
                             "Capital not paid back, averaged over all futures (a future without a loss counts "
                             "as zero)."),
        ]
        ratio = ""
        if gross > 0 and _finite(pays):
            ratio = (f" On average {e(payer)} pays {e(_pct(pays / gross, 0))} of what it saves as outcome "
                     "payments.")
        if tail:
            period = (f"over the whole contract and the {tail} months after it in which savings are followed "
                      "(the tail), and, where marked, within the term only")
            tail_note = f'<p class="note"><b>The tail.</b> {e(self.tail_text())}</p>'
        else:
            period = ("over the whole contract" + ("; the scenario follows no savings after the term "
                                                   "(tail_months = 0)" if saves else ""))
            tail_note = ""
        return ('<section id="key-figures"><h2>2. Key figures</h2>'
                f"<p>Averages over <b>{self.r.n_paths:,} simulated futures</b>, in nominal {e(cur)} (not "
                f"discounted), {e(period)}. "
                "Each figure is followed by its <em>Monte Carlo error</em>: how much it could change if the "
                "simulation were run again with other random numbers. It says nothing about whether the "
                f"assumptions are right.{ratio}</p>"
                f'<div class="kf"><div class="kf-group payer"><h3>{e(payer)} (outcome payer)</h3>'
                f'{"".join(payer_items)}</div>'
                f'<div class="kf-group"><h3>Investors</h3>{"".join(investor_items)}</div></div>'
                f"{tail_note}"
                f'<p class="kf-foot">Number of simulated futures: <b data-n-paths="{self.r.n_paths}">'
                f"{self.r.n_paths:,}</b>; seed <span data-seed=\"{e(self.r.seed_entropy)}\">{e(self.seed_text())}"
                f"</span>{e(self.source_text())}. All estimates are listed in the "
                f'<a href="#all-estimates">appendix</a>.</p></section>')

    def source_text(self) -> str:
        """`` (rendered from run directory out/x)`` when the memo re-creates a saved run."""
        return f"; rendered from the run directory {self.run_dir}" if self.run_dir else ""

    def yearly_schedule(self) -> tuple[pd.DataFrame, list[str]]:
        """The expected cash per budget year (calendar years when the scenario gives a start date)."""
        from .budget import budget_years

        led = self.r.expected_ledgers
        received = led["distributions"] + led["guarantee_payouts"]
        other = led["gross_savings"] - led["outcome_payments"] - led["net_savings"]
        frame = pd.DataFrame({
            "capital_calls": led["capital_calls"],
            "received": received,
            "investor_net": received - led["capital_calls"],
            "gross_savings": led["gross_savings"],
            "outcome_payments": led["outcome_payments"],
            "other_costs": other,
            "net_savings": led["net_savings"],
        })
        years = budget_years(self.c)
        sums = years.sums(frame.to_numpy().T).T
        yearly = pd.DataFrame(sums, columns=frame.columns)
        labels = [f"{years.label(k)[:1].upper() + years.label(k)[1:]}|{years.span(k)}" for k in range(len(years))]
        return yearly, labels

    def budget_html(self) -> str:
        """What the payer pays and saves per budget year: average, bad year and the contract's maximum."""
        from matplotlib.figure import Figure

        from .budget import budget_years, reserve_rows
        from .plots import plot_budget

        cur, payer, c = self.cur, self.payer, self.c
        years = budget_years(c)
        rows_frame = reserve_rows(self.r.budget(), c)

        def cell(v):
            return "no cap" if v != v else (e(f"{v:,.0f}") if abs(v) >= 0.5 else "0")

        rows = []
        for _, row in rows_frame.iterrows():
            rows.append([e(row["label"])] + [cell(row[k]) for k in (
                "paid_mean", "paid_p90", "paid_p95", "maximum", "savings_mean", "savings_p10", "net_mean", "net_p10")])
        group = ('<tr><th></th><th class="group" colspan="4">Paid (outcome payments, fees, guarantees)</th>'
                 '<th class="group" colspan="2">Savings</th><th class="group" colspan="2">Net</th></tr>')
        head = ["Budget year", "Expected", "P90", "P95", "Maximum", "Expected", "P10", "Expected", "P10"]
        table = self.table(head, rows, num_cols=range(1, 9), group_head=group,
                           caption=f"{e(payer)} per budget year ({e(cur)}): expected, a bad year and the most "
                                   "the contract can make it pay",
                           row_classes={len(rows) - 1: "total"})
        basis = ("calendar year" if years.basis == "calendar" else
                 "contract year (the scenario gives no start date, meta.start, so no calendar years)")
        uri = _data_uri(plot_budget(self.r, fig=Figure(figsize=(9.0, 4.4))))
        self.n_figures = 1
        caps = [p.payment_cap for p in c.payers]
        cap_note = ("No payment cap limits what it pays, so the maximum is unbounded."
                    if any(cap is None for cap in caps) else
                    "The maximum is set by the contract, whatever the outcomes: the payment cap in each year from "
                    "the first payment date on (money held back is paid later), plus the fees it owes that year and the most its guarantees can pay; the cap "
                    "holds for the whole contract, so the years' maxima do not add up (the last row is the "
                    "whole contract's maximum).")
        return ("<h3>Budget years: what to reserve</h3>"
                f"<p>Per {e(basis)}: what {e(payer)} pays on average, and in a bad year: P90 is exceeded in 1 "
                "future in 10, P95 in 1 in 20. Savings and the net position (savings less what it pays) show "
                "their P10: 1 future in 10 is worse. The bad years of different columns, and of different "
                f"years, need not be the same future. {e(cap_note)} Every figure, with its Monte Carlo error, is "
                "in <code>budget.csv</code> and the workbook.</p>"
                f"{table}"
                f'<figure id="fig-budget"><img src="{uri}" alt="Payments by date and per budget year">'
                f"<figcaption><b>Figure 1. {e(payer)}: payments by date and per budget year.</b> Left: the "
                "average outcome payment in each month. Right: all it pays in each budget year, on average "
                "(bars), with P90 and P95 (markers).</figcaption></figure>")

    def what_if_html(self) -> str:
        """The named what-ifs (one line each, with paired errors) and the break-even success."""
        out = []
        if self.stress is not None and len(self.stress):
            frame = self.stress
            cur = self.cur
            cols = [("outcome_payments", "Outcome payments"), ("gross_savings", "Savings"),
                    ("net_savings", "Net savings"), ("investor_irr_median", "Investors' median IRR")]

            rows = []
            for key in dict.fromkeys(frame["stress"]):
                part = frame[frame["stress"] == key].set_index("measure")
                first = part.iloc[0]
                if first["reason"]:
                    rows.append([f"<b>{e(first['label'])}</b>", e(f"not computed: {first['reason']}")]
                                + ["" for _ in cols])
                    continue
                cells = []
                for measure, _ in cols:
                    row = part.loc[measure]
                    cells.append(e(difference_text(row["difference"], row["difference_se"], row["unit"], cur)))
                rows.append([f"<b>{e(first['label'])}</b>", self.text(first["change"])] + cells)
            head = ["What if", "What changes"] + [label for _, label in cols]
            n = frame.attrs.get("n_paths")
            table = self.table(head, rows, num_cols=range(2, 6),
                               caption=f"Change against the expected case ({e(cur)}; IRR in percentage points, pp), "
                                       "with its Monte Carlo error")
            paired = (f" on {n:,} simulated futures" if n else "")
            out.append("<h3>What if ...?</h3>"
                       f"<p>Standard questions, each answered by simulating the scenario again with one change{paired}, "
                       "on the same random numbers as the expected case, so that each difference is the effect of "
                       "the change (its Monte Carlo error is that of the difference). A parameter's average is "
                       "changed, its uncertainty kept.</p>" + table)
        be = self.break_even or {}
        lines = []
        for target, who in (("investor", "The investors get their capital back on average"),
                            ("payer", f"{self.payer} saves on average as much as it pays")):
            res = be.get(target)
            if not res:
                continue
            if res.get("status") != "ok":
                lines.append(f"<li>{e(who)}: {e(res.get('message', 'no break-even found'))}.</li>")
                continue
            outcome = _outcome_label(res.get("primary_outcome") or self.c.primary_outcome, self.c)
            factor = format_estimate(res["factor"], res["factor_se"], "x", self.cur)
            share = format_estimate(res["primary_share"], res["primary_share_se"], "share", self.cur)
            base = format_estimate(res["base_primary_share"], float("nan"), "share", self.cur)[0]
            lines.append(f"<li>{e(who)} if the programme is at least <b>{e(factor[0].rstrip('x'))} times</b> as "
                         f"successful as assumed ({e(factor[1])}): {e(share[0])} of participants reaching "
                         f"{e(outcome)} ({e(share[1])}), against {e(base)} expected.</li>")
        if lines:
            out.append("<h3>Break-even success</h3><p>How successful the programme must be (its success "
                       "probabilities scaled together) for each side to break even, on average:</p>"
                       f"<ul>{''.join(lines)}</ul>")
        return "".join(out)

    def cash(self) -> str:
        cur, payer, c = self.cur, self.payer, self.c
        yearly, labels = self.yearly_schedule()
        cols = ["capital_calls", "received", "investor_net", "gross_savings", "outcome_payments", "other_costs",
                "net_savings"]

        def cells(values):
            return [e(f"{v:,.0f}") if abs(v) >= 0.5 else "0" for v in values]

        rows = []
        for label, (_, row) in zip(labels, yearly.iterrows()):
            name, span = label.split("|")
            rows.append([f'{e(name)}<br><span class="note nowrap">{e(span)}</span>'] + cells([row[k] for k in cols]))
        rows.append(["Total"] + cells([yearly[k].sum() for k in cols]))
        group = ('<tr><th></th><th class="group" colspan="3">Investors</th>'
                 f'<th class="group" colspan="4">{e(payer)}</th></tr>')
        head = ["Budget year", "Capital paid in", "Money received", "Net", "Savings", "Outcome payments",
                "Fees and other costs", "Net"]
        table = self.table(head, rows, num_cols=range(1, 8), group_head=group,
                           caption=f"Expected cash per budget year ({e(cur)}, average over all simulated futures)",
                           row_classes={len(rows) - 1: "total"})

        retained, _, _ = self.est("expected_retained_above_caps")
        defaulted, _, _ = self.est("expected_defaulted")
        notes = []
        if retained > 0.5:
            notes.append(f"On average {e(_money(retained, cur))} of the payments earned is never paid because it "
                         "would take the investors above their return cap.")
        if defaulted > 0.5:
            notes.append(f"On average {e(_money(defaulted, cur))} falls due but is not paid (payer default).")
        if (yearly["gross_savings"] < -0.5).any():
            starts = ""
            if tuple(c.comparison.journey.start) != tuple(c.journey.start):
                starts = (f" (participants start in {_states_text(s for s, _ in c.journey.start)}, while "
                          "without the programme they would start in "
                          f"{_states_text(s for s, _ in c.comparison.journey.start)})")
            notes.append(f"Savings are negative in a year in which {e(payer)} spends more on the participants "
                         f"than it would have spent on them without the programme{e(starts)}.")
        notes.append("“Money received” includes any guarantee payouts; “fees and other costs” are the fees the "
                     "payer bears and any guarantee it pays.")

        # monthly detail, folded away
        led = self.r.expected_ledgers
        mrows = []
        for m, row in led.iterrows():
            rec = row["distributions"] + row["guarantee_payouts"]
            mrows.append([e(self.cal.month(int(m)))] + cells([
                row["capital_calls"], rec, rec - row["capital_calls"], row["gross_savings"],
                row["outcome_payments"], row["gross_savings"] - row["outcome_payments"] - row["net_savings"],
                row["net_savings"]]))
        monthly = self.table(["Month"] + head[1:], mrows, num_cols=range(1, 8), group_head=group)

        # downside
        ns_p05, ns_se, _ = self.est("net_savings_p05")
        inv_result = (self.r.paths["distributions"] - self.r.paths["capital_called"]).to_numpy(dtype=float)
        ir_p05, ir_se = _quantile_with_se(inv_result, DOWNSIDE)
        irr_p05, irr_se, _ = self.est("irr_p05")
        cvar, cvar_se, _ = self.est("cvar05_net_result")
        ns_text, ns_err = format_estimate(ns_p05, ns_se, "EUR", cur)
        ir_text, ir_err = format_estimate(ir_p05, ir_se, "EUR", cur)
        irr_text, irr_err = format_estimate(irr_p05, irr_se, "per year", cur)
        cv_text, cv_err = format_estimate(cvar, cvar_se, "EUR", cur)
        if ns_p05 < 0:
            ns_sentence = (f"In the worst 1 in 20 futures, {e(payer)} <b>pays at least "
                           f"{e(format_estimate(-ns_p05, ns_se, 'EUR', cur)[0])} more than it saves</b>")
        else:
            ns_sentence = (f"Even in the worst 1 in 20 futures, {e(payer)} still saves at least "
                           f"<b>{e(ns_text)}</b> net")
        if ir_p05 < 0:
            ir_sentence = (f"In the worst 1 in 20 futures, investors <b>lose at least "
                           f"{e(format_estimate(-ir_p05, ir_se, 'EUR', cur)[0])}</b> of their capital")
        else:
            ir_sentence = f"Even in the worst 1 in 20 futures, investors gain at least <b>{e(ir_text)}</b>"
        down_rows = [
            [f"{e(payer)}: net savings, 5th percentile", e(ns_text), e(ns_err)],
            ["Investors: net result (money received less capital paid in), 5th percentile", e(ir_text), e(ir_err)],
            ["Investors: annual return (IRR), 5th percentile", e(irr_text), e(irr_err)],
            ["Investors: average net result in the worst 5 % of futures", e(cv_text), e(cv_err)],
        ]
        downside_table = self.table(["Downside measure", "Value", "Monte Carlo error"], down_rows, num_cols=(1,))

        # cumulative position at the end of each year: expected vs 5th percentile
        q = self.r.cashflow_quantiles()
        last = int(q["month"].max())
        from .budget import budget_years

        ends = sorted({min(m, last) for m in budget_years(self.c).last})  # the end of each budget year
        crow = []
        for m in ends:
            inv = q[(q.party == "investors") & (q.month == m)].iloc[0]
            pay = q[(q.party == "payer") & (q.month == m)].iloc[0]
            crow.append([e(f"end of {self.cal.month(m)}")] +
                        cells([inv["mean"], inv["p05"], pay["mean"], pay["p05"]]))
        cgroup = ('<tr><th></th><th class="group" colspan="2">Investors</th>'
                  f'<th class="group" colspan="2">{e(payer)}</th></tr>')
        cum_table = self.table(["", "Expected", "Bad case (5th pct.)", "Expected", "Bad case (5th pct.)"],
                               crow, num_cols=range(1, 5), group_head=cgroup,
                               caption=f"Cumulative position so far ({e(cur)}): investors' money received less "
                                       f"paid in; {e(payer)}'s savings less payments and costs")
        kept = self.r.monthly["investor_cumulative_net"].shape[0]
        kept_note = (f" (computed from the first {kept:,} futures)" if kept < self.r.n_paths else "")
        saves_text = (f", and saves what it no longer spends on the participants, over its cost items: "
                      f"{_cost_titles(c)}" if _saves_benefits(c) else "")
        return ('<section id="cash"><h2>3. Expected case and downside case</h2>'
                "<h3>Expected case: when the money moves</h3>"
                f"<p>The table shows, budget year by budget year, the average cash movement for each party. Investors pay "
                f"capital in while the programme runs and are paid back from outcome payments; {e(payer)} "
                f"pays for outcomes after each measurement{self.text(saves_text)}.</p>"
                f"{table}<p class=\"note\">{' '.join(notes)}</p>"
                f"<details><summary>Month by month</summary>{monthly}</details>"
                f"{self.budget_html()}"
                "<h3>Downside case: what if it goes badly?</h3>"
                f"<div class=\"callout bad\"><p>{ns_sentence}. {ir_sentence}"
                f"{'' if not _finite(irr_p05) else f' (an annual return of {e(irr_text)} or less)'}.</p></div>"
                f"{downside_table}"
                f"<p>The next table follows the positions over time. The bad case in each row is the 5th "
                f"percentile at that date{e(kept_note)}; it need not be the same future from row to row.</p>"
                f"{cum_table}{self.what_if_html()}</section>")

    def plots(self) -> str:
        r, cur, payer = self.r, self.cur, self.payer
        cap = {i.return_cap for i in self.c.investors if i.return_cap is not None}
        specs = [
            ("net-savings", lambda ax: r.plot_net_savings(ax=ax), f"{payer}: net savings",
             f"Each bar is the share of simulated futures in which {payer}'s net savings over the whole period "
             "(savings less outcome payments and costs) fall in that range; futures left of the red line are "
             "those in which it pays more than it saves, and the dashed line is the average."),
            ("cash-fan-payer", lambda ax: r.plot_cash_fan(ax=ax, party="payer"), f"{payer}: cash over time",
             f"{payer}'s cumulative savings less payments, month by month: the line is the middle future, the "
             "dark band holds the middle half of the futures and the light band 90 % of them; above zero it "
             "has saved more than it paid so far, and the dotted line marks the end of the contract term."),
            ("cash-fan-investors", lambda ax: r.plot_cash_fan(ax=ax, party="investors"), "Investors: cash over time",
             "Investors' cumulative money received less money paid in, month by month: the line is the middle "
             "future and the bands hold half and 90 % of the futures; where a band crosses zero, investors "
             "in those futures have their capital back."),
            ("outflow", lambda ax: r.plot_outflow(ax=ax), f"{payer}: spending on participants",
             (f"What {payer} spends on the participants each month, in {cur} ({_cost_items_text(self.c)}), for "
              "the programme (blue) and for the estimate of what would have happened without it (grey, scaled "
              "to the number of participants): the line is the middle future and the band holds 90 % of the "
              "futures. The gap between the lines is the payer's gross saving; the dotted line marks the end "
              "of the contract term." if _saves_benefits(self.c) else
              f"The scenario models no spending by {payer} on the participants (no cost items), so both "
              "lines are zero: there are no savings to show.")),
            ("irr", lambda ax: r.plot_irr(ax=ax), "Investors: annual return",
             "How often each annual return (IRR) occurs across the simulated futures: red bars are futures in "
             "which investors lose money, blue bars futures in which they get it back"
             + (", and the dashed line marks the return cap that limits the upside." if cap else ".")),
        ]
        figs = []
        first = self.n_figures + 1  # after the budget figure (section 3)
        self.n_figures += len(specs)  # later figures (the method section's) number on from here
        for n, (fid, plot, title, caption) in enumerate(specs, start=first):
            uri = _png(plot, cur)
            figs.append(f'<figure id="fig-{fid}"><img src="{uri}" alt="{e(title)}">'
                        f"<figcaption><b>Figure {n}. {e(title)}.</b> {e(caption)}</figcaption></figure>")
        kept = r.monthly["investor_cumulative_net"].shape[0]
        note = (f"<p class=\"note\">The charts over time use the first {kept:,} of the {r.n_paths:,} simulated "
                "futures.</p>" if kept < r.n_paths else "")
        return f'<section id="plots"><h2>4. Plots</h2>{note}{"".join(figs)}</section>'

    def assumptions(self) -> str:
        meta = self.meta
        out = ['<section id="assumptions"><h2>5. Assumptions and contract terms</h2>',
               "<p>Published facts are listed with their sources. Every number that is <em>not</em> published "
               "is an assumption of this scenario and is listed below; change them in the scenario file and "
               "run the simulation again to see their effect.</p>"]
        if self.c.command_line_changes:  # what-ifs from the command line: the file alone gives other numbers
            changes = "".join(f"<li><code>{e(o)}</code></li>" for o in self.c.command_line_changes)
            out.append('<div class="note" id="overrides"><p><b>Changed for this memo, not in the scenario '
                       "file:</b> these command-line changes were made to the file before it was checked and "
                       f"simulated (every --set first, then every --scale):</p><ul>{changes}</ul></div>")
        sources = list(meta.get("sources", ()))
        assumptions = list(meta.get("assumptions", ()))
        if assumptions:
            rows = [[str(i), self.text(a)] for i, a in enumerate(assumptions, start=1)]
            out.append(self.table(["#", "Assumption (not published)"], rows, cls="list",
                                  caption="Assumptions"))
        else:
            out.append("<p>The scenario file lists no unpublished assumptions.</p>")
        if sources:
            rows = [[str(i), self.text(s)] for i, s in enumerate(sources, start=1)]
            out.append(self.table(["#", "Published fact and source"], rows, cls="list", caption="Sources"))
        if meta.get("notes"):
            out.append(f'<p class="note"><b>Notes:</b> {self.text(meta["notes"])}</p>')
        out.append(self.contract_terms())
        out.append(self.investors_table())
        out.append(self.journey_table())
        out.append("</section>")
        return "".join(out)

    def contract_terms(self) -> str:
        c, cur, cal, p = self.c, self.cur, self.cal, self.c.payer
        rows = []

        def add(name, value_html):
            rows.append((name, value_html))

        end = cal.label(c.term_months - 1)
        add("Term", e(f"{c.term_months} months ({c.term_months / 12:g} years)"
                      + (f", {cal.label(0)} to {end}" if end else "")
                      + (f"; savings followed {c.tail_months} months longer" if c.tail_months else "")))
        add("Capital committed", e(f"{_money(c.total_commitment, cur)} by {len(c.investors)} investor"
                                   f"{'s' if len(c.investors) != 1 else ''} (table below)"))
        budget = c.provider_budget
        months = [m for m, a in budget.entries if a]
        add("Service provider and budget", e(f"{c.provider_name}: {_money(budget.total, cur)}"
                                             + (f", spent in {cal.span(min(months), max(months))}"
                                                if months else "")))
        for fee in c.fees:
            fm = [m for m, a in fee.schedule.entries if a]
            who = {"investors": "the investors (out of the capital)",
                   "waterfall": "the waterfall (out of outcome payments, at its fees step)"}.get(fee.paid_by, "the payer")
            add(f"Fee: {fee.name}", e(f"{_money(fee.schedule.total, cur)} paid by {who}"
                                      + (f", in {_months_list(sorted(set(fm)), cal)}" if fm else "")))
        if len(c.payers) > 1:
            for payer in c.payers:
                add(f"Outcome payer: {payer.name}", e(payer_text(payer, cur)))
        else:
            add("Outcome payer", e(p.name))
        if p.rate_card:
            items = [_price_text(k, price, c) for k, price in p.rate_card]
            add("Prices (rate card)", "<br>".join(e(i) for i in items))
        if p.savings_share.rate > 0:
            add("Share of measured savings paid",
                e(next(t for t in _paid_for(c) if "measured savings" in t)))
        for tier in p.tiers:
            pts = "; ".join(f"{_pct(x)} → {_amount(y, cur)}" for x, y in tier.points)
            add(f"Tier table: {_outcome_label(tier.outcome, c)}",
                e(f"{MEASURE_LABELS.get(tier.measure, tier.measure)}, {tier.interpolation}: {pts}; nothing "
                  f"below {_pct(tier.minimum)}"))
        if p.trigger is not None:
            t = p.trigger
            add("Cohort trigger", e(
                f"{_outcome_label(t.outcome, c)} ({MEASURE_LABELS.get(t.measure, t.measure)}), measured "
                f"{t.follow_up_months} months after each intake: {_amount(t.price, cur)} per event if the cohort "
                f"reaches {_pct(t.cohort_threshold)}; otherwise paid on the pooled result at the end if it reaches "
                f"{_pct(t.pooled_threshold)}"))
        if len(c.payers) == 1:
            add("Payment cap", e(_money(p.payment_cap, cur) + " in all" if p.payment_cap is not None else "none"))
        if p.measurement_months:
            add("Measurement dates", e(_months_list(p.measurement_months, cal)))
        if len(c.payers) == 1:
            add("Payment lag", e(f"{p.payment_lag_months} months after each measurement"))
        add("Payment dates", e(_months_list(c.payment_months, cal)))
        if len(c.payers) == 1 and p.default_probability > 0:
            add("Payer default", e(f"each payment is missed with probability {_pct(p.default_probability)}"))
        if p.review is not None:
            rv = p.review
            tests = [f"the {MEASURE_LABELS.get(m, m)} in {_outcome_label(o, c)} is below {_pct(f)}"
                     for o, m, f in rv.conditions]
            add("Review (early termination)", e(
                f"at {cal.month(rv.month)}: the contract ends if "
                + (" or " if rv.combine == "any" else " and ").join(tests)))
        if c.external_stop is not None:
            stop = c.external_stop
            add("External stop (early termination)", e(
                f"{stop.reason} at {cal.month(stop.month)}"
                + (f", on {_pct(stop.probability)} of the futures simulated" if stop.probability < 1 else "")))
        sizes = sorted({co.size for co in c.cohorts})
        intakes = [co.intake_month for co in c.cohorts]
        size_text = f"{sizes[0]} each" if len(sizes) == 1 else ", ".join(str(co.size) for co in c.cohorts)
        add("Cohorts", e(f"{len(c.cohorts)} cohort{'s' if len(c.cohorts) != 1 else ''} "
                         f"({size_text}), {c.n_participants:,} participants; intake "
                         + (f"in {cal.span(min(intakes), max(intakes))}" if len(intakes) > 1
                            else f"in {cal.month(intakes[0])}")))
        comp = c.comparison
        if comp.method == "expected":
            add("Counterfactual", e("a model of what would have happened (expected values, no comparison group)"))
        else:
            members = "member" if comp.size_ratio == 1 else "members"
            add("Counterfactual", e(f"a comparison group of {comp.size_ratio:g} {members} per participant, "
                                    "followed alongside"))
        if _saves_benefits(c):
            for item in c.costs:
                bands = "; ".join(f"{b.group}: {_amount(b.amount, cur)} ({_pct(b.share)} of participants)"
                                  for b in item.bands)
                per = f"per event ({item.event.replace('_', ' ')})" if item.event else \
                    "a month in " + _join_words([s.replace("_", " ") for s in item.states])
                share = f", {_pct(item.fraction)} of it" if item.fraction != 1 else ""
                add(f"Payer's cost: {item.title}", self.text(
                    f"{bands}{share}, {per}; indexed {_pct(item.annual_indexation)} a year"))
        else:
            add("Payer's costs", e("not modelled (no savings)"))
        if c.recycling:
            add("Recycling", e("outcome payments received during delivery fund it before new capital is called"))
        if c.draw_order.groups:
            add("Draw order", e("; then ".join(_join_words(list(g)) for g in c.draw_order.groups)))
        if c.waterfall_terms is not None:
            add("Waterfall (each month, in order)", "<br>".join(e(line) for line in waterfall_text(c)))
        for g in c.guarantees:
            add(f"Guarantee by {g.guarantor}", e(guarantee_text(g, cur)))
        nominal = [who for who, rate in (("investors'", c.investor_discount_rate),
                                         ("the payer's", c.public_discount_rate)) if rate == 0]
        add("Discount rates (for present values)", e(
            f"investors {_pct(c.investor_discount_rate)}, public {_pct(c.public_discount_rate)} a year"
            + (f"; at 0 % the {' and '.join(nominal)} present value is the nominal sum" if nominal else "")))
        add("Primary outcome (cost per outcome)", e(_outcome_label(c.primary_outcome, c)))
        body = "".join(f'<tr><th scope="row">{e(k)}</th><td>{v}</td></tr>' for k, v in rows)
        long = " long" if len(rows) > LONG_TABLE_ROWS else ""
        return (f'<div class="table-wrap"><table class="terms{long}"><caption>Key contract terms (from the scenario '
                f"file)</caption><tbody>{body}</tbody></table></div>")

    def investors_table(self) -> str:
        c, cur = self.c, self.cur
        cover = {}
        for g in c.guarantees:
            what = {"share": _pct(g.share), "first_loss": f"first {_money(g.amount, cur)}",
                    "floor": f"floor {_pct(g.floor)}"}[g.kind]
            for name in g.investors:
                cover.setdefault(name, []).append(f"{what} by {g.guarantor}")
        rows = []
        for inv in c.investors:
            rows.append([e(inv.name if inv.holder == inv.name else f"{inv.name} ({inv.holder})"),
                         e(inv.investor_class if inv.kind in ("equity", "grant") else KIND_WORDS[inv.kind]),
                         e(_money(inv.commitment, cur)),
                         e(_pct(inv.return_cap) + " a year" if inv.return_cap is not None else "none"),
                         e(str(inv.seniority)), e("yes" if inv.repayable else "no (grant)"),
                         e("; ".join(cover.get(inv.name, [])) or "none")])
        return self.table(["Investor", "Class", "Commitment", "Return cap", "Seniority (1 paid first)",
                           "Repaid", "Loss guarantee"], rows, num_cols=(2,), caption="Investors")

    def journey_table(self) -> str:
        c = self.c

        def prior(pr) -> str:
            if pr.kind == "rate":  # events per participant-month, not a probability
                return f"{pr.mean:.3g} a month" + ("" if pr.is_fixed else f" (± {pr.sd:.2g})")
            if pr.is_fixed:
                return _pct(pr.mean)
            return f"{_pct(pr.mean)} (± {_pct(pr.sd)})"

        rows = []
        comparison = c.comparison
        for name, pr in c.journey.parameters:
            if is_inline(name) and pr.is_fixed and pr.mean == 0:
                continue
            label = c.journey.describe_parameter(name)
            if name in comparison.shared:
                other = "the same draw"
            else:
                other = prior(comparison.journey.prior(name))
            rows.append([e(label[:1].upper() + label[1:]), e(prior(pr)), e(other)])
        kinds = {pr.kind for _, pr in c.journey.parameters}
        what = "Assumed probability or rate" if "rate" in kinds and len(kinds) > 1 else \
            "Assumed rate" if "rate" in kinds else "Assumed probability"
        return (self.table([what, "Programme participants", "Without the programme"], rows,
                           num_cols=(1, 2), caption="Assumed success rates (average, ± uncertainty)")
                + "<p class=\"note\">The ± value is the uncertainty about each rate: every simulated future "
                  "draws its own rates around the average.</p>")

    def sensitivity_section(self) -> str:
        out = ['<section id="sensitivity"><h2>6. Sensitivity: which assumptions matter most</h2>']
        sens = self.sensitivity
        if sens is None:
            out.append("<p>A sensitivity analysis was not run for this memo. It would show how the results change "
                       "when each assumption is set lower or higher (<code>sibsim report --sensitivity</code>).</p>"
                       "</section>")
            return "".join(out)
        missing = [col for col in SENSITIVITY_COLUMNS if col not in sens.columns]
        if missing:
            raise ValueError(f"sensitivity: missing columns {missing}; expected {list(SENSITIVITY_COLUMNS)}")
        if len(sens) == 0:
            out.append("<p>The sensitivity analysis returned no rows.</p></section>")
            return "".join(out)
        frame = sens.reset_index(drop=True).copy()
        for col in ("low", "base", "high"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
        if "swing" not in frame.columns:
            frame["swing"] = (frame["high"] - frame["low"]).abs()
        has_settings = all(c in frame.columns for c in ("low_setting", "base_setting", "high_setting"))
        has_se = all(c in frame.columns for c in ("low_se", "base_se", "high_se"))
        extra = [col for col in frame.columns if col not in SENSITIVITY_COLUMNS and col not in SENSITIVITY_KNOWN
                 and not str(col).startswith("_")]
        units = self.s["unit"].to_dict()
        head = (["Assumption"] + [e(str(col).replace("_", " ").capitalize()) for col in extra]
                + ["Result with low value", "Base", "Result with high value", "Range (low to high)"])
        first_num = 1 + len(extra)
        widths = None if extra else [31, 15, 15, 15, 24]
        blocks = []
        for measure, group in frame.groupby("measure", sort=False):
            unit = str(group["unit"].iloc[0]) if "unit" in group.columns else units.get(measure, "")
            group = group.sort_values("swing", ascending=False, na_position="last", kind="stable")
            vals = pd.concat([group["low"], group["base"], group["high"]])
            lo, hi = (float(vals.min()), float(vals.max())) if vals.notna().any() else (0.0, 1.0)
            span = (hi - lo) or 1.0

            def fmt(v, se=None, setting=None):
                at = f'<br><span class="note">at {e(setting)}</span>' if setting is not None else ""
                if not _finite(v):
                    return "n/a" + at
                if (_is_money(unit, self.cur) or unit in NON_MONEY_UNITS) \
                        and se is not None and _finite(se):
                    shown, err = format_estimate(v, se, unit, self.cur)
                    err = err.replace(" percentage points", " pp")
                    return f'{e(shown)}<br><span class="note">{e(err)}</span>{at}'
                return fmt_plain(v) + at

            def fmt_plain(v):
                if _is_money(unit, self.cur):
                    return e(_money(v, self.cur))
                if unit in PERCENT_UNITS:
                    return e(_pct(v, 1))
                if unit == "x":
                    return e(f"{float(v):.3f}x")
                return e(_num(v) + (f" {unit}" if unit else ""))

            rows, quiet, quiet_names = [], {}, []
            for _, row in group.iterrows():
                ses = [row.get(k) if has_se else None for k in ("low_se", "base_se", "high_se")]
                cells = [_assumption_label(row["assumption"], self.c)]
                cells += [e(row[col]) for col in extra]
                settings = ([_setting(row[k], row.get("setting_unit", ""), self.cur)
                             for k in ("low_setting", "base_setting", "high_setting")] if has_settings
                            else [None] * 3)
                cells += [fmt(row[k], se, st) for k, se, st in zip(("low", "base", "high"), ses, settings)]
                bar = ""
                if all(_finite(row[k]) for k in ("low", "base", "high")):
                    a, b = sorted((float(row["low"]), float(row["high"])))
                    left, width = 100 * (a - lo) / span, max(100 * (b - a) / span, 0.5)
                    base = 100 * (float(row["base"]) - lo) / span
                    bar = (f'<div class="bar"><span style="left:{left:.1f}%;width:{width:.1f}%"></span>'
                           f'<i style="left:{base:.1f}%"></i></div>')
                    if has_se and _finite(row["low_se"]) and _finite(row["high_se"]):
                        noise = 2 * math.hypot(float(row["low_se"]), float(row["high_se"]))
                        if row["swing"] == 0 and noise == 0:
                            bar += '<span class="note">no effect</span>'
                            quiet[len(rows)] = "no-effect"  # left out of the printed memo (named below it)
                            quiet_names.append(_assumption_label(row["assumption"], self.c))
                        elif row["swing"] <= noise:
                            bar += '<span class="note">within Monte Carlo noise</span>'
                cells.append(bar)
                rows.append(cells)
            blocks.append(self.table(head, rows, num_cols=range(first_num, first_num + 3), cls="sens",
                                     caption=e(_measure_label(measure)), widths=widths, row_classes=quiet))
            if quiet_names:
                blocks.append(f'<p class="note print-only">Not printed: the assumptions that cannot change this '
                              f"measure (no effect): {', '.join(quiet_names)}.</p>")
        shift = ""
        if has_settings:
            moved = frame[frame["assumption"] != "tail_months"]  # the tail is set to 0 and twice its value
            ratio = (moved["high_setting"] / moved["base_setting"]).replace([np.inf, -np.inf], np.nan).dropna()
            if len(ratio) and np.allclose(ratio, ratio.iloc[0]):
                shift = f" (here by {_pct(abs(float(ratio.iloc[0]) - 1), 0)} of its value)"
        crn = (" Every variant re-used the random numbers of the base run, so a difference is the effect of the "
               "assumption, not chance; the ± under the low and high results is the Monte Carlo error of their difference from the "
               "base (pp: percentage points)."
               if has_se else " Differences smaller than the Monte Carlo errors in section 2 may be noise.")
        out.append(f"<p>Each row sets one assumption lower and higher{e(shift)}, keeps all others at their base "
                   "value, and shows the result each time. Rows are sorted by the size of the effect: the "
                   "assumptions at the top matter most and are the ones most worth checking. In the bar, the blue "
                   "span runs from the result with the low value to the result with the high value; the black mark "
                   f"is the base case.{crn}"
                   + (" The tail row counts the savings after the term for 0 months and for twice the "
                      "scenario's months instead." if (frame["assumption"] == "tail_months").any() else "")
                   + "</p>")
        out.append(self.sensitivity_run_text(sens))
        out.extend(blocks)
        out.append("</section>")
        return "".join(out)

    def sensitivity_run_text(self, sens: pd.DataFrame) -> str:
        """HTML: which run the sensitivity base comes from (``sens.attrs`` set by ``sibsim.sensitivity.tornado``).

        The base equals the key figures only when it is their run (same paths and seed); otherwise
        it is labelled as a separate run with its own paths, seed and Monte Carlo error.
        """
        r = self.r
        n, seed = sens.attrs.get("n_paths"), sens.attrs.get("seed")
        key = tuple(sens.attrs.get("spawn_key", ()))
        if n is None or seed is None:
            return ('<p class="callout">This sensitivity table does not say which simulation run it comes from: its '
                    "base values may differ from the key figures in section 2 by Monte Carlo error.</p>")
        if int(n) == r.n_paths and int(seed) == int(r.seed_entropy) and key == tuple(r.spawn_key):
            return (f'<p class="callout" data-sensitivity-run="same">The base column is the run of section 2 '
                    f"(the same {r.n_paths:,} simulated futures, seed {e(self.seed_text())}), so it equals the key "
                    "figures.</p>")
        return (f'<p class="callout" data-sensitivity-run="separate" data-sensitivity-paths="{int(n)}" '
                f'data-sensitivity-seed="{e(seed)}">This sensitivity analysis is a <b>separate run</b> with its '
                f"own {int(n):,} simulated futures (seed {e(seed)}), not the {r.n_paths:,} futures (seed "
                f"{e(self.seed_text())}) of section 2. Its base values therefore differ from the key figures by "
                "Monte Carlo error; the ± under each base value is that run's own Monte Carlo error.</p>")

    def method(self) -> str:
        c, r = self.c, self.r
        source = Path(c.source).name if c.source else None
        # The files as the loader read them (a variant and its bases), not as they are now on disk.
        sha = c.files_sha256 or None
        from . import __version__

        cmd = None
        if source and not tuple(r.spawn_key):
            changes = "".join(f" {flag} {shlex.quote(change)}"
                              for flag, change in (o.split(" ", 1) for o in c.command_line_changes))
            cmd = (f"sibsim report {self.run_dir} --out memo.html" if self.run_dir else
                   f"sibsim report {c.source} --paths {r.n_paths} --seed {r.seed_entropy}{changes} --out memo.html")
        counterfactual = ("a model of the expected course without the programme"
                          if c.comparison.method == "expected" else "a comparison group followed alongside")
        saves = _saves_benefits(c)
        caveats = [
            (f"Only the payer's savings on its spending on participants are counted, over the scenario's cost "
             f"items: {_cost_titles(c)}. "
             if saves else "No savings are counted: the scenario models nothing the payer spends on "
                           "participants. ")
            + "Other gains (taxes paid, health, less crime, people's well-being) and other costs (the payer's "
              "own staff time, contract management) are left out.",
            "The success rates of one future are drawn independently of each other; in reality a good "
            "programme may do better on several of them at once, which would widen the spread of results.",
            (_exit_caveat(c) + " " if _exit_caveat(c) else "")
            + "Participants move only as the journey above allows (its exits, time limits and branches): "
              "nobody leaves it in other ways (moving away or dying, for instance).",
            "Amounts are nominal: money in later years counts the same as money now (present values at the "
            "discount rates in section 5 are in the appendix)."
            + (" The payer's costs per participant rise only by their assumed indexation." if saves else ""),
            "Risks outside the contract are not modelled: the provider failing, the contract being renegotiated, "
            "changes in the law, or the evaluator's method being disputed"
            + (". The payer's risk of not paying is modelled as a fixed probability per payment."
               if any(p.default_probability > 0 for p in c.payers) else "."),
            "The results are only as good as the assumptions in section 5. The Monte Carlo error measures "
            "simulation noise only, not the uncertainty about those assumptions (see section 6).",
        ]
        repro = [f"sibsim version {__version__}",
                 f"{r.n_paths:,} simulated futures, seed {self.seed_text()}"]
        if self.run_dir:
            repro.append(f"rendered from the run directory {self.run_dir}: re-simulated with its recorded seed and "
                         "paths, and checked against its summary.csv")
        if source:
            bases = ", ".join(Path(p).name for p, _ in c.files[1:])
            repro.append(f"scenario file {source}" + (f" extending {bases}" if bases else "")
                         + (f" (SHA-256 {sha}{' over all of them' if bases else ''})" if sha else "")
                         + (f", changed on the command line: {' '.join(c.command_line_changes)}"
                            if c.command_line_changes else ""))
        return ('<section id="method"><h2>7. Method and caveats</h2>'
                "<h3>How the simulation works</h3>"
                f"<p>Participants enter the programme in {len(c.cohorts)} group{'s' if len(c.cohorts) != 1 else ''} "
                "(cohorts) and are followed month by month through the states of the scenario's journey "
                "(described below). In every simulated future, the success rates are first drawn from the ranges "
                "in section 5 (we do not know them exactly), and then each participant's path is drawn at random "
                "with those rates. What would have happened without the programme is estimated by "
                f"{e(counterfactual)}. The evaluator's measurement, the payments, the caps, the capital calls and "
                "what goes to each investor follow the contract terms.</p>"
                f"{self.journey_html()}"
                "<h3>Monte Carlo error</h3>"
                f"<p>With {r.n_paths:,} futures, an average differs from the one an endless number of futures "
                "would give by about the ± figure shown (one standard error; twice that covers about 95 % of "
                "runs). Running four times as many futures halves the error. For averages it is the spread "
                "divided by the square root of the number of futures; for percentiles it comes from 20 "
                "independent batches of futures.</p>"
                f"{self.convergence_html()}"
                "<h3>What the model leaves out</h3>"
                f'<ul class="caveats">{"".join(f"<li>{e(x)}</li>" for x in caveats)}</ul>'
                "<h3>Reproducing these numbers</h3>"
                f"<p>{e('; '.join(repro))}. The same scenario file, number of futures and seed give exactly "
                "the same numbers on any computer"
                + (f": <code>{e(cmd)}</code>" if cmd else "")
                + ".</p></section>")

    def convergence_html(self) -> str:
        """How the key figures settle as futures are added: a table (4 path counts) and a plot (all)."""
        frame = self.r.convergence()
        if frame.empty or frame["paths"].nunique() < 2:
            return ""
        counts = sorted(frame["paths"].unique())
        shown = counts[-4:]  # the last four path counts fit a printed page
        rows = self.convergence_rows(frame, shown, lambda metric, text: text[:1].upper() + text[1:])
        head = ["Key figure"] + [f"{k:,} futures" for k in shown]
        table = self.table(head, rows, num_cols=tuple(range(1, len(shown) + 1)),
                           caption="Key figures on the first futures simulated, with their Monte Carlo error")
        from matplotlib.figure import Figure

        from .convergence import plot_convergence

        uri = _data_uri(plot_convergence(frame, fig=Figure(figsize=(9.0, 5.2)), currency=self.cur))
        return ("<h3>How the figures settle</h3>"
                f"<p>The key figures computed on the first {counts[0]:,}, {counts[1]:,}, ... of the "
                f"{self.r.n_paths:,} futures: each moves less as futures are added, and the shaded band (the "
                "estimate plus or minus twice its Monte Carlo error) narrows. Where the last columns still "
                "differ by more than a decision could bear, more futures are needed.</p>"
                f"{table}"
                f'<figure id="fig-convergence"><img src="{uri}" alt="How the key figures settle">'
                f"<figcaption><b>Figure {self.n_figures + 1}. How the key figures settle.</b> "
                "Each figure on the first futures simulated "
                "(log scale), with its 95 % interval; the dashed line is the value on all of them."
                "</figcaption></figure>")

    def journey_html(self) -> str:
        """The journey, what the contract counts and what the payer spends, from the scenario's own data."""
        c = self.c
        outcomes = "".join(f"<li>{self.text(_outcome_text(o, c))}</li>" for o in c.outcomes)
        costs = _cost_items_text(c)
        spend = (f"<p>What the payer spends on participants: {self.text(costs)}. The payer's savings are what "
                 "it would have spent on them without the programme (scaled to the number of participants) less "
                 "what it spends on them with it.</p>" if _saves_benefits(c) else
                 "<p>What the payer spends on participants is not modelled (no cost items), so no savings are "
                 "counted.</p>")
        return ('<h3 id="journey">The participants\' journey</h3>'
                f"<p>{self.text(_journey_text(c))}</p>"
                f"<p>What the contract counts (its outcomes):</p><ul>{outcomes}</ul>{spend}")

    def appendix(self) -> str:
        rows = []
        for metric, row in self.s.iterrows():
            if row["party"] == "outcomes":
                group, outcome = str(metric).split("_", 1)
                label = (f"Share of {'participants' if group == 'treated' else 'the comparison group'} "
                         f"reaching: {_outcome_label(outcome, self.c)} (within the term)")
            elif metric == "cost_per_net_primary_outcome" and primary_direction(self.c) < 0:
                label = f"Payer: cost per {_outcome_label(self.c.primary_outcome, self.c)} avoided (net of the " \
                        "counterfactual)"
            elif "[" in str(metric):  # a row of one party, e.g. expected_payout[Foundation X]
                label = _party_metric_label(str(metric))
            else:
                label = METRIC_LABELS.get(metric, str(metric).replace("_", " "))
            shown, err = format_estimate(float(row["estimate"]), float(row["std_error"]), str(row["unit"]),
                                         self.cur)
            note = str(row.get("note", "") or "")  # the NPV's discount rate, the savings' period
            rows.append([e(label), e(shown), e(err), e(note)])
        return ('<section id="all-estimates"><h2>Appendix: all estimates</h2>'
                + self.table(["Measure", "Estimate", "Monte Carlo error", "Counted"], rows, num_cols=(1,))
                + "</section>")

    def render(self) -> str:
        c = self.c
        from . import __version__

        source = str(Path(c.source).resolve()) if c.source else ""
        body = "".join([self.header(), self.council(), self.what(), self.key_figures(), self.cash(), self.plots(),
                        self.assumptions(), self.sensitivity_section(), self.method(), self.appendix()])
        footer = (f"<footer>Generated by sibsim {e(__version__)} on {e(self.generated.isoformat(timespec='minutes'))}. "
                  "This memo is a single file: its charts are embedded, it needs no internet connection and "
                  "contains no scripts.</footer>")
        return ("<!DOCTYPE html>\n"
                '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f'<meta name="generator" content="sibsim {e(__version__)}">\n'
                f'<meta name="{SCENARIO_META}" content="{e(source)}">\n'
                f"<title>{e(c.title)}: Social Impact Bond memo</title>\n"
                f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n{footer}\n</main>\n</body>\n</html>\n")


SECTIONS = (
    ("council", "At a glance"),
    ("what", "What this is"),
    ("key-figures", "Key figures"),
    ("cash", "Expected case and downside case"),
    ("plots", "Plots"),
    ("assumptions", "Assumptions and contract terms"),
    ("sensitivity", "Sensitivity"),
    ("method", "Method and caveats"),
    ("all-estimates", "Appendix: all estimates"),
)


def render_report(results, sensitivity: pd.DataFrame | None = None, *, generated: datetime | date | None = None,
                  run_dir: str | Path | None = None, stress: pd.DataFrame | None = None,
                  break_even: dict | None = None, lang: str | None = None) -> str:
    """A self-contained HTML memo of a simulation run.

    Parameters
    ----------
    results : Results
        From :func:`sibsim.simulate`.
    sensitivity : DataFrame or None
        Columns ``assumption, measure, low, base, high`` (as returned by
        ``sibsim.sensitivity.tornado``): one row per assumption and measure,
        the measure's value with the assumption at its low, base and high
        value.  ``measure`` names a row of ``results.summary()`` where
        possible (its unit formats the values).  Further columns are shown
        as they are.  None: the memo says no sensitivity analysis was run.
        ``sensitivity.attrs`` (``n_paths``, ``seed``, ``spawn_key``, set by
        ``tornado``) say which run it is: the memo states whether its base is the
        run of the key figures or a separate run with its own paths and seed.
    generated : datetime or date, optional
        Date printed on the memo (default: now).
    run_dir : str or Path, optional
        The ``sibsim run`` directory whose run ``results`` re-creates (named in the memo).
    stress : DataFrame, optional
        :func:`sibsim.stress.stress_test`: the named what-ifs (section 3), each against the base with
        its paired Monte Carlo error.
    break_even : dict, optional
        ``{"investor": ..., "payer": ...}``, each :func:`sibsim.sensitivity.break_even`: the success
        at which the investors, and the payer, break even (section 3).
    lang : {"en", "nl"}, optional
        The memo's language (default: the scenario's ``[meta] language``, else English); ``"nl"``
        writes :class:`sibsim.report_nl.DutchMemo`.

    Returns
    -------
    str
        The HTML document: inline CSS, plots as base64 PNG ``data:`` URIs,
        no scripts and no external resources.
    """
    if generated is None:
        generated = datetime.now().astimezone()
    elif not isinstance(generated, datetime):
        generated = datetime(generated.year, generated.month, generated.day)
    for target, res in (break_even or {}).items():
        needs = {"status"} | ({"factor", "factor_se", "primary_share", "primary_share_se", "base_primary_share"}
                              if isinstance(res, dict) and res.get("status") == "ok" else set())
        if target not in ("investor", "payer") or not isinstance(res, dict) or not needs <= set(res):
            raise ValueError(f"break_even: a dict of 'investor' and/or 'payer' to sibsim.sensitivity.break_even "
                             f"results, got {target!r}: {res!r:.80}")
    lang = lang or results.contract.language
    if lang not in LANGUAGES:
        raise ValueError(f"lang: must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    memo = _Memo
    if lang == "nl":
        from .report_nl import DutchMemo as memo
    return memo(results, sensitivity, generated, run_dir=run_dir, stress=stress, break_even=break_even).render()


# --- writing and the command line ---------------------------------------------------------------
def check_report_path(out: Path, scenario: Path, force: bool):
    """The guard of :mod:`sibsim.output` for a memo: ``.html``/``.htm``, not an input, a memo sibsim
    wrote (of another scenario only with ``force``), writable; returns the checked Destination."""
    from .output import destination

    return destination(out, "memo", "report", [scenario], force=force)


def write_report(out: Path, text: str) -> Path:
    """Write the memo atomically (a temporary file beside it, then one rename)."""
    from .output import write_text_atomic

    return write_text_atomic(out, text)


#: Most paths of the memo's named what-ifs and break-even search (each a paired run; their errors are shown).
WHAT_IF_PATHS = 4000


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sibsim report (SCENARIO | RUN_DIR) --out memo.html [--paths N] [--seed S] [--workers W]
    [--force] [--sensitivity [--sensitivity-paths N]]``."""
    from .cli import DEFAULT_SEED, _positive_int, _seed  # the command line's own argument checks

    p = subparsers.add_parser(
        "report", help="write a self-contained HTML memo of a run directory or of a scenario",
        description="Write a self-contained HTML memo for a council: key figures, cash schedule, plots, "
                    "assumptions, method. Given RUN_DIR (the --out of `sibsim run`), the memo shows that run: "
                    "it is re-simulated with the seed and paths in its run.json (the scenario file must be "
                    "unchanged) and its key figures equal the run's summary.csv. Given a SCENARIO file, it is "
                    "simulated with --paths and --seed.")
    p.add_argument("scenario", metavar="SCENARIO_OR_RUN_DIR",
                   help="a run directory written by `sibsim run`, or a scenario TOML file")
    p.add_argument("--out", required=True, help="HTML file to write, e.g. memo.html")
    p.add_argument("--paths", type=_positive_int, default=None,
                   help="Monte Carlo paths of a SCENARIO (default 10000; a RUN_DIR uses its own)")
    p.add_argument("--seed", type=_seed, default=None,
                   help=f"seed of a SCENARIO (default {DEFAULT_SEED}; a RUN_DIR uses its own); same seed and "
                        "paths, same numbers")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="processes (default: all cores for large runs)")
    p.add_argument("--force", action="store_true", help="replace a file that is not a memo of this scenario")
    p.add_argument("--sensitivity", action="store_true",
                   help="also run the one-at-a-time sensitivity analysis (sibsim.sensitivity.tornado) for section 6")
    p.add_argument("--sensitivity-paths", type=_positive_int, default=None,
                   help="paths of the sensitivity run (default: the memo's own paths and seed, so its base equals "
                        "the key figures; fewer is faster and is labelled in the memo as a separate run)")
    p.add_argument("--lang", choices=LANGUAGES, default=None,
                   help="the memo's language: en (English) or nl (Dutch: headings, sentences, numbers and dates); "
                        "default: the scenario's [meta] language, else en")
    p.add_argument("--what-if-paths", type=_positive_int, default=None,
                   help=f"paths of the named what-ifs and the break-even success in section 3 (default: the "
                        f"memo's paths, at most {WHAT_IF_PATHS:,}; on the memo's seed)")
    from .cli import add_whatif_arguments

    add_whatif_arguments(p)  # a RUN_DIR takes the changes its run was made with, recorded in its run.json
    p.set_defaults(func=cmd_report)
    return p


class _RunRecord(NamedTuple):
    """What :func:`read_run` found in a run directory's ``run.json``, checked."""

    run_dir: Path
    manifest: dict
    scenario: Path
    sha256: str
    n_paths: int
    seed: int
    recorded: dict  # resolved path -> SHA-256 of every scenario file the run read


def load_run(run_dir: Path, workers=None):
    """Re-create the Results of a ``sibsim run`` directory, bit for bit (:func:`read_run`, then
    :func:`rerun`).

    Reads ``run.json`` (scenario path and SHA-256, ``seed_entropy``, ``n_paths``), checks the
    scenario file is unchanged, re-simulates with that seed and number of paths (the engine
    is deterministic given both, whatever the number of workers) and checks the result
    against the run's ``summary.csv``.

    Returns
    -------
    (Results, Path)
        The run's results and its scenario file.

    Raises
    ------
    OutputError
        One line: not a run directory, scenario missing or changed since the run, or the
        re-simulation does not reproduce ``summary.csv`` (a file the scenario ``extends``
        changed, or another sibsim version).
    """
    return rerun(read_run(run_dir), workers)


def read_run(run_dir: Path) -> _RunRecord:
    """Read and check a run directory's ``run.json`` (one-line :class:`OutputError` otherwise)."""
    import json

    from .errors import OutputError
    from .output import MANIFEST
    from .scenario import read_scenario_bytes

    run_dir = Path(run_dir)
    try:
        manifest = json.loads(read_scenario_bytes(run_dir / MANIFEST).decode("utf-8"))  # regular, bounded
        scenario = Path(manifest["scenario_path"])
        sha, n_paths, seed = manifest["scenario_sha256"], manifest["n_paths"], manifest["seed_entropy"]
        seed = int(seed) if isinstance(seed, str) and seed.isdigit() else seed  # written as text: 128-bit
        recorded = {f["path"]: f["sha256"] for f in manifest.get("scenario_files", [])}
        for key, value, lowest in (("n_paths", n_paths, 1), ("seed_entropy", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise ValueError(f"{key} must be a whole number >= {lowest}, got {value!r}")
        if not isinstance(sha, str):
            raise ValueError(f"scenario_sha256 must be text, got {sha!r}")
    except FileNotFoundError:
        raise OutputError(f"{run_dir}: no {MANIFEST}: not a directory written by `sibsim run`") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = (f"missing {exc}" if isinstance(exc, KeyError)
                  else exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0])
        raise OutputError(f"{run_dir}/{MANIFEST}: not the manifest of a `sibsim run` ({reason})") from None
    if manifest.get("command", "run") != "run":
        raise OutputError(f"{run_dir}: holds the outputs of `sibsim {manifest['command']}`, not of `sibsim run`")
    if not scenario.is_file():
        raise OutputError(f"{run_dir}: its scenario {scenario} no longer exists; cannot re-create the run")
    return _RunRecord(run_dir, manifest, scenario, sha, n_paths, seed, recorded)


def rerun(run: _RunRecord, workers=None):
    """Re-simulate the run :func:`read_run` read, after checking that no scenario file changed, and
    check the result against its ``summary.csv``; returns ``(Results, scenario path)``."""
    from .errors import OutputError
    from .output import MANIFEST
    from .contracts import files_digest
    from .scenario import _read_document
    from .simulation import simulate
    from .whatif import load_whatif

    run_dir, manifest, scenario, sha, recorded = run.run_dir, run.manifest, run.scenario, run.sha256, run.recorded
    overrides = manifest.get("command_line_changes", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) and o.startswith(("--set ", "--scale "))
                                                  for o in overrides):
        raise OutputError(f"{run_dir}: {MANIFEST}: command_line_changes: must be a list of '--set FIELD=VALUE' "
                          f"and '--scale PARAMETER=FACTOR', got {overrides!r}"[:300])
    sets = [o[len("--set "):] for o in overrides if o.startswith("--set ")]
    scales = [o[len("--scale "):] for o in overrides if o.startswith("--scale ")]
    # The files first: a changed file is said to be changed, not reported through a change that no
    # longer applies to it.
    files: list[tuple[str, str]] = []
    _read_document(Path(scenario), files=files)
    if files_digest(files) != sha:  # over every file read: the scenario and each base it extends
        changed = [path for path, d in files if d != recorded.get(str(Path(path).resolve()))]
        what = ", ".join(changed) if changed and len(changed) < len(files) else str(scenario)
        raise OutputError(f"{run_dir}: scenario {what} changed since the run (SHA-256 differs from "
                          f"{MANIFEST}); run `sibsim run` again or restore the file")
    contract = load_whatif(scenario, sets, scales)  # the changes the run was made with
    summary_csv = run_dir / "summary.csv"
    if not summary_csv.is_file():  # the memo must show the run's own numbers, checked
        raise OutputError(f"{run_dir}: no summary.csv to check the re-created run against; run `sibsim run` again")
    try:
        # Read as text and parse with float(): exact for the shortest repr that to_csv writes.
        saved = pd.read_csv(summary_csv, index_col=0, dtype=str, keep_default_na=False)
        saved = {column: {m: float(v) if v else np.nan for m, v in saved[column].items()}
                 for column in ("estimate", "std_error")}
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
        raise OutputError(f"{run_dir}/summary.csv: not the summary of a `sibsim run` "
                          f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    results = simulate(contract, n_paths=run.n_paths, seed=run.seed, workers=workers)
    now = results.summary()
    common = [m for m in saved["estimate"] if m in now.index]
    for column in ("estimate", "std_error"):
        a = np.array([saved[column][m] for m in common])
        b = now.loc[common, column].to_numpy(float)
        if not common or not np.array_equal(a, b, equal_nan=True):
            raise OutputError(f"{run_dir}: re-simulating did not reproduce its summary.csv (edited, a file the "
                              f"scenario extends changed, or written by another sibsim version: "
                              f"{manifest.get('sibsim_version', '?')}); run `sibsim run` again")
    return results, scenario


def cmd_report(args) -> int:
    """Write the memo of a run directory or a scenario to ``args.out`` atomically; 0 on success.

    Scenario and output problems raise :class:`~sibsim.errors.ScenarioError` /
    :class:`~sibsim.errors.OutputError`, which ``sibsim.cli.main`` prints as one line each.
    """
    from .cli import DEFAULT_SEED
    from .errors import OutputError
    from .simulation import simulate

    target = Path(args.scenario)
    out = Path(args.out)
    workers = getattr(args, "workers", None)
    run_dir = None
    if target.is_dir():
        if args.paths is not None or args.seed is not None:
            raise OutputError(f"{target}: is a run directory; it is re-created with its own paths and seed, so "
                              "drop --paths and --seed (or give the scenario file instead)")
        if getattr(args, "set", None) or getattr(args, "scale", None):
            raise OutputError(f"{target}: is a run directory; it is re-created with the changes recorded in its "
                              "run.json, so drop --set and --scale (or give the scenario file instead)")
        run_dir = target
        run = read_run(target)
        check_report_path(out, run.scenario, getattr(args, "force", False))
        results, scenario = rerun(run, workers=workers)
        contract = results.contract
    else:
        scenario = target
        from .cli import load_with_changes

        contract = load_with_changes(scenario, args)
        check_report_path(out, scenario, getattr(args, "force", False))
        paths = args.paths if args.paths is not None else 10_000
        seed = args.seed if args.seed is not None else DEFAULT_SEED
        from .cli import _progress

        results = simulate(contract, n_paths=paths, seed=seed, workers=workers, progress=_progress(args))
    sens = None
    if getattr(args, "sensitivity", False):
        from .sensitivity import tornado

        # By default the memo's own paths and seed: the tornado's base is then the key figures' run.
        n = getattr(args, "sensitivity_paths", None) or results.n_paths
        sens = tornado(contract, n_paths=n, seed=results.seed_entropy)
    from .sensitivity import _Paired, break_even
    from .stress import stress_test

    # The named what-ifs and the break-even success, on the memo's seed (common random numbers):
    # one base run serves them all.
    n_what_if = getattr(args, "what_if_paths", None) or min(results.n_paths, WHAT_IF_PATHS)
    n_even = max(n_what_if, 2)  # a break-even error needs two paths
    base = _Paired(contract, n_what_if, results.seed_entropy)
    stress = stress_test(contract, n_paths=n_what_if, seed=results.seed_entropy, paired=base)
    even = {target: break_even(contract, target, n_paths=n_even, seed=results.seed_entropy,
                               paired=base if n_even == n_what_if else None)
            for target in ("investor", "payer")}
    text = render_report(results, sensitivity=sens, run_dir=run_dir, stress=stress, break_even=even,
                         lang=getattr(args, "lang", None))
    write_report(out, text)
    if not getattr(args, "quiet", False):
        origin = f"run {run_dir}, " if run_dir else ""
        print(f"{contract.title}: {origin}{results.n_paths:,} paths, seed {results.seed_entropy}"
              + (f"; sensitivity {sens.attrs['n_paths']:,} paths, seed {sens.attrs['seed']}" if sens is not None
                 else "")
              + f"; wrote {out} ({len(text.encode('utf-8')) / 1024:,.0f} kB)", file=sys.stdout)
    return 0
