"""The memo's first page: what a council member reads alone, in English or Dutch.

Six questions, each answered in a sentence from the run: what the municipality pays at most
and when, what it is expected to pay and in its worst budget year, what it saves (expected, and
in the bad 1-in-10 case), the chance that it pays more than it saves, what the investors risk,
and how successful the programme must be for each side to break even.  The numbers come from
:class:`Facts`, computed once from the run; only the words differ by language.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np

from .budget import budget_years, maximum_exposure, reserve_rows
from .language import Locale


def _e(text) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Facts:
    """The numbers on the first page (money in the scenario's currency).

    Attributes
    ----------
    maximum, cap, fees, guarantees : float
        The most the contract makes the payer pay in all (NaN without a payment cap), and its parts.
    payment_months : tuple of int
        Contract months in which an outcome payment can fall due.
    expected_paid : float
        Expected outcome payments, fees and guarantees, in all.
    worst_year, worst_year_p95 : str, float
        The budget year with the highest P95 of what the payer pays, and that P95.
    gross, net, net_p10 : float
        Expected gross and net savings; the P10 of the net position over all years.
    p_pays_more, p_pays_more_se : float
        Probability that the payer pays more than it saves, and its Monte Carlo error.
    commitment, p_loss, expected_loss, cvar : float
        The investors' capital, their chance of a loss, expected capital not returned, and their
        average net result in the worst 5 % of futures.
    break_even : dict
        ``{"investor": factor, "payer": factor}`` where found (see :func:`sibsim.sensitivity.break_even`).
    """

    maximum: float
    cap: float
    fees: float
    guarantees: float
    payment_months: tuple
    expected_paid: float
    worst_year: str
    worst_year_p95: float
    gross: float
    net: float
    net_p10: float
    p_pays_more: float
    p_pays_more_se: float
    commitment: float
    p_loss: float
    expected_loss: float
    cvar: float
    break_even: dict


def facts(results, break_even=None) -> Facts:
    """The first page's numbers from a run (and the break-even search, if run)."""
    c = results.contract
    s = results.summary()
    exposure = maximum_exposure(c).loc["all years"]
    rows = reserve_rows(results.budget(), c)
    years = rows[rows["label"] != "All years"]
    worst = years.loc[years["paid_p95"].idxmax()] if len(years) else None
    total = rows[rows["label"] == "All years"].iloc[0]
    even = {}
    for target, res in (break_even or {}).items():
        if res and res.get("status") == "ok":
            even[target] = (float(res["factor"]), float(res["factor_se"]), float(res["primary_share"]),
                            float(res["base_primary_share"]))

    def est(metric):
        return float(s.loc[metric, "estimate"]) if metric in s.index else math.nan

    return Facts(
        maximum=float(exposure["total paid"]), cap=float(exposure["outcome payments"]),
        fees=float(exposure["fees"]), guarantees=float(exposure["guarantees"]),
        payment_months=tuple(m for m in c.payment_months if m < c.horizon_months),
        expected_paid=float(total["paid_mean"]),
        worst_year=str(worst["label"]) if worst is not None else "", worst_year_p95=float(
            worst["paid_p95"]) if worst is not None else math.nan,
        gross=est("expected_gross_savings"), net=est("expected_net_savings"), net_p10=float(total["net_p10"]),
        p_pays_more=est("probability_pays_more_than_saves"),
        p_pays_more_se=float(s.loc["probability_pays_more_than_saves", "std_error"]),
        commitment=float(c.total_commitment), p_loss=est("probability_of_loss"), expected_loss=est("expected_loss"),
        cvar=est("cvar05_net_result"), break_even=even)


def _dates(contract, months, loc: Locale) -> str:
    years = budget_years(contract)
    if years.start is None:
        return _join([("maand " if loc.dutch else "month ") + str(m) for m in months], loc)
    y, m0 = years.start
    return _join([loc.month(y + (m0 + m) // 12, (m0 + m) % 12) for m in months], loc)


def _rounded(value: float) -> float:
    """An estimate to three significant digits: a first page should not claim the cents of a simulation."""
    if not math.isfinite(value) or value == 0:
        return value
    step = 10.0 ** (math.floor(math.log10(abs(value))) - 2)
    return round(value / step) * step


def _join(items, loc: Locale) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + (" en " if loc.dutch else " and ") + items[-1]


def council_page(results, break_even=None, lang: str = "en") -> str:
    """The first page as HTML: six questions and their answers (``lang`` ``"en"`` or ``"nl"``)."""
    loc = Locale(lang)
    f = facts(results, break_even)
    c = results.contract
    cur, payer = c.currency, c.payer.name
    money = lambda v: loc.money(v, cur)  # noqa: E731  (the contract's exact amounts)
    about = lambda v: loc.money(_rounded(v), cur)  # noqa: E731  (estimates)
    nl = loc.dutch
    months = _dates(c, f.payment_months, loc) if f.payment_months else ""
    parts = [money(f.cap) + (" betalingsplafond" if nl else " payment cap")]
    if f.fees > 0.5:
        parts.append(money(f.fees) + (" aan kosten" if nl else " of fees"))
    if f.guarantees > 0.5:
        parts.append(money(f.guarantees) + (" aan garanties" if nl else " of guarantees it gives"))
    if math.isnan(f.maximum):
        most = ("Geen bovengrens: het contract kent geen betalingsplafond, dus alleen de uitkomsten begrenzen "
                f"wat {_e(payer)} betaalt." if nl else
                "No upper limit: the contract has no payment cap, so only the outcomes limit what it pays.")
    else:
        most = (f"Ten hoogste <b>{_e(money(f.maximum))}</b> over het hele contract ({_e(_join(parts, loc))})."
                if nl else
                f"At most <b>{_e(money(f.maximum))}</b> over the whole contract ({_e(_join(parts, loc))}).")
    if months:
        most += (f" Uitkomstbetalingen kunnen vallen in {_e(months)}" if nl else
                 f" Outcome payments can fall due in {_e(months)}")
        paid = results.expected_ledgers["outcome_payments"].to_numpy(dtype=float)
        elsewhere = np.ones(len(paid), dtype=bool)
        elsewhere[[m for m in f.payment_months if m < len(paid)]] = False
        if (np.abs(paid[elsewhere]) >= 0.5).any():  # the waterfall paid held-back money later, in some futures
            most += ("; wat de waterval inhoudt, kan ook in latere maanden worden betaald" if nl else
                     "; money the waterfall holds back can be paid in later months too")
        most += "."
    worst = f.worst_year.replace("Contract year", "contractjaar") if nl else f.worst_year
    expected = (f"Naar verwachting {_e(about(f.expected_paid))} in totaal. In het zwaarste begrotingsjaar, "
                f"{_e(worst)}, is het in 1 op de 20 toekomsten meer dan {_e(about(f.worst_year_p95))}."
                if nl else
                f"{_e(about(f.expected_paid))} in all, on average. In its heaviest budget year, {_e(worst)}, "
                f"1 future in 20 asks more than {_e(about(f.worst_year_p95))}.")
    saves = (f"Naar verwachting {_e(about(f.gross))} minder uitgaven aan de deelnemers; na aftrek van wat "
             f"{_e(payer)} betaalt netto <b>{_e(about(f.net))}</b>. In het slechte geval (1 op de 10 toekomsten) "
             f"is het nettoresultaat {_e(about(f.net_p10))} of minder." if nl else
             f"{_e(about(f.gross))} less spent on the participants, on average; net of what it pays, "
             f"<b>{_e(about(f.net))}</b>. In the bad case (1 future in 10) its net result is "
             f"{_e(about(f.net_p10))} or less.")
    points = loc.number(f.p_pays_more_se * 100, 1)  # the error of a probability: percentage points
    chance = (f"<b>{_e(loc.percent(f.p_pays_more))}</b> (Monte-Carlofout ± {_e(points)} procentpunt)." if nl else
              f"<b>{_e(loc.percent(f.p_pays_more))}</b> (Monte Carlo error ± {_e(points)} percentage points).")
    risk = (f"Zij leggen {_e(money(f.commitment))} in. Kans op verlies: <b>{_e(loc.percent(f.p_loss))}</b>; "
            f"gemiddeld niet terugbetaald: {_e(about(f.expected_loss))}; in de slechtste 5 % van de toekomsten "
            + (f"gemiddeld {_e(about(-f.cvar))} verlies." if f.cvar < 0 else
               f"nog gemiddeld {_e(about(f.cvar))} winst.") if nl else
            f"They put in {_e(money(f.commitment))}. Chance of a loss: <b>{_e(loc.percent(f.p_loss))}</b>; capital "
            f"not returned, on average: {_e(about(f.expected_loss))}; in the worst 5 % of futures they "
            + (f"lose {_e(about(-f.cvar))} on average." if f.cvar < 0 else f"still gain {_e(about(f.cvar))} on average."))
    # The primary outcome per participant: a share of them for a milestone, a count (events) otherwise.
    per_person = results.summary()["unit"].get(f"treated_{c.primary_outcome}") == "per participant"

    def shown(level):
        return (loc.number(level, 2) + (" per deelnemer" if nl else " per participant")) if per_person \
            else loc.percent(level)

    even = []
    for target in ("investor", "payer"):
        if target not in f.break_even:
            continue
        factor, _, share, base = f.break_even[target]
        who = (("de investeerders krijgen hun inleg gemiddeld terug" if target == "investor" else
                f"{payer} bespaart gemiddeld evenveel als zij betaalt") if nl else
               ("the investors get their capital back on average" if target == "investor" else
                f"{payer} saves as much as it pays, on average"))
        level, expected_level = shown(share), shown(base)
        even.append(f"{_e(who)} bij {_e(loc.number(factor, 2))} keer het verwachte succes ({_e(level)} "
                    f"in plaats van {_e(expected_level)})" if nl else
                    f"{_e(who)} at {_e(loc.number(factor, 2))} times the expected success ({_e(level)} "
                    f"instead of {_e(expected_level)})")
    outcome = c.outcome_label(c.primary_outcome)
    if even:
        said = "; ".join(even) + "."
        success = ((f"Gemeten als het aandeel deelnemers met: {_e(outcome)}. " if nl else
                    f"Measured as the share of participants reaching: {_e(outcome)}. ") + said[:1].upper() + said[1:])
        if per_person:
            success = success.replace("het aandeel deelnemers met", "het aantal per deelnemer van").replace(
                "the share of participants reaching", "the number per participant of")
    else:
        success = "Niet berekend voor dit memo." if nl else "Not computed for this memo."
    rows = [
        (f"Wat betaalt {_e(payer)} ten hoogste, en wanneer?" if nl else
         f"What does {_e(payer)} pay at most, and when?", most),
        ("Wat betaalt zij naar verwachting, en in een zwaar jaar?" if nl else
         "What does it expect to pay, and in a heavy year?", expected),
        ("Wat bespaart zij?" if nl else "What does it save?", saves),
        ("Hoe groot is de kans dat zij meer betaalt dan zij bespaart?" if nl else
         "What is the chance that it pays more than it saves?", chance),
        ("Wat riskeren de investeerders?" if nl else "What do the investors risk?", risk),
        ("Hoe succesvol moet het programma zijn?" if nl else "How successful must the programme be?", success),
    ]
    body = "".join(f'<tr><th scope="row">{q}</th><td>{a}</td></tr>' for q, a in rows)
    title = "In één oogopslag" if nl else "At a glance"
    intro = (f"Voor de raad: {_e(c.title)}, voor {_e(payer)}. Gemiddelden en slechte gevallen over "
             f"{_e(loc.number(results.n_paths))} gesimuleerde toekomsten; de rest van dit memo legt uit waar ze "
             "vandaan komen." if nl else
             f"For the council: {_e(c.title)}, for {_e(payer)}. Averages and bad cases over "
             f"{_e(loc.number(results.n_paths))} simulated futures; the rest of this memo explains where they "
             "come from.")
    return (f'<section id="council" class="council"><h2>{title}</h2><p>{intro}</p>'
            f'<table class="terms council-table"><tbody>{body}</tbody></table></section>')
