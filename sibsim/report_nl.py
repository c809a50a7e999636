"""The council memo in Dutch (``sibsim report --lang nl``, or ``[meta] language = "nl"``).

Every heading, caption, table and sentence is Dutch, with Dutch numbers (``EUR 1.234.567``,
``12,5 %``) and month names (``juli 2016``); figures are drawn with Dutch labels.  The numbers
are the English memo's: both read the same run, the same budget years, what-ifs and break-even
search (:class:`sibsim.report._Memo` computes nothing of its own that this memo lacks).  Text the
scenario writes (its title, names, sources and assumptions, cost items and outcome labels) is
shown as the scenario writes it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from .budget import budget_years, reserve_rows
from .language import Locale
from .report import (CSS, SCENARIO_META, _data_uri, _finite, _Memo, _png, difference_text, e, format_estimate)
from .sensitivity import assumption_words, measure_words

#: Sections of the Dutch memo: id, heading.
SECTIONS_NL = (
    ("council", "In één oogopslag"),
    ("what", "Waar dit over gaat"),
    ("key-figures", "Kerncijfers"),
    ("cash", "Begroting, verwacht en slecht geval"),
    ("plots", "Figuren"),
    ("assumptions", "Aannames en contractvoorwaarden"),
    ("sensitivity", "Gevoeligheid"),
    ("method", "Methode en kanttekeningen"),
    ("all-estimates", "Bijlage: alle schattingen"),
)

#: Dutch labels of the summary's estimates (``Results.summary()`` rows).
METRIC_LABELS_NL = {
    "expected_moic": "Investeerders: verwachte terugbetaling per ingelegde euro",
    "median_irr": "Investeerders: mediaan jaarrendement (IRR)",
    "irr_p05": "Investeerders: jaarrendement (IRR), 5e percentiel",
    "irr_p95": "Investeerders: jaarrendement (IRR), 95e percentiel",
    "share_irr_defined": "Investeerders: aandeel toekomsten met een eenduidig rendement",
    "probability_of_loss": "Investeerders: kans op verlies",
    "expected_loss": "Investeerders: verwacht niet terugbetaalde inleg",
    "cvar05_net_result": "Investeerders: gemiddeld nettoresultaat in de slechtste 5 % van de toekomsten",
    "expected_npv": "Investeerders: verwachte netto contante waarde",
    "expected_distributions": "Investeerders: verwacht ontvangen",
    "expected_capital_called": "Investeerders: verwacht ingelegd",
    "expected_guarantee_payouts": "Investeerders: verwacht ontvangen uit garanties",
    "expected_outcome_payments": "Betaler: verwachte uitkomstbetalingen",
    "expected_retained_above_caps": "Betaler: verwacht niet betaald door de rendementsplafonds",
    "expected_defaulted": "Betaler: verwacht niet betaald (wanbetaling)",
    "probability_terminated_early": "Betaler: kans dat het contract vroeg eindigt",
    "probability_terminated_by_review": "Betaler: kans dat het contract bij de tussentijdse toets eindigt",
    "probability_terminated_by_external_event": "Betaler: kans dat een externe gebeurtenis het contract stopt",
    "expected_provider_payments": "Uitvoerder: verwachte betalingen boven het budget",
    "expected_gross_savings": "Betaler: verwachte brutobesparing",
    "expected_gross_savings_within_term": "Betaler: verwachte brutobesparing binnen de looptijd",
    "expected_net_savings": "Betaler: verwachte nettobesparing",
    "expected_net_savings_within_term": "Betaler: verwachte nettobesparing binnen de looptijd",
    "net_savings_p05": "Betaler: nettobesparing, 5e percentiel (slecht geval)",
    "probability_pays_more_than_saves": "Betaler: kans dat zij meer betaalt dan zij bespaart",
    "probability_pays_more_than_saves_within_term": "Betaler: kans dat zij meer betaalt dan zij bespaart, "
                                                    "binnen de looptijd",
    "expected_npv_net_savings": "Betaler: verwachte contante waarde van de nettobesparing",
    "cost_per_primary_outcome": "Betaler: kosten per primaire uitkomst",
    "cost_per_net_primary_outcome": "Betaler: kosten per extra (netto) primaire uitkomst",
}
PARTY_LABELS_NL = {
    "expected_payout": "{name} (garantsteller): verwachte uitbetaling, na terugontvangst",
    "probability_pays": "{name} (garantsteller): kans op uitbetaling",
    "cvar95_payout": "{name} (garantsteller): gemiddelde uitbetaling in de slechtste 5 % van de toekomsten",
    "expected_outcome_payments": "{name}: verwachte uitkomstbetalingen",
}
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+")
_WORDS = (("not defined in these simulations", "niet gedefinieerd in deze simulaties"),
          ("Monte Carlo error not available", "Monte-Carlofout niet beschikbaar"),
          ("± less than", "± minder dan"), (" percentage points", " procentpunt"), (" a year", " per jaar"),
          (" per participant", " per deelnemer"), ("n/a", "n.v.t."))


def dutch(text: str) -> str:
    """English-formatted numbers and words of :func:`sibsim.report.format_estimate` in Dutch."""
    text = _NUMBER.sub(lambda m: m.group(0).replace(",", "\0").replace(".", ",").replace("\0", "."), text)
    for en, nl in _WORDS:
        text = text.replace(en, nl)
    return text


def estimate_nl(value, se, unit, currency) -> tuple[str, str]:
    """:func:`sibsim.report.format_estimate` in Dutch."""
    shown, err = format_estimate(value, se, unit, currency)
    return dutch(shown), dutch(err)


class DutchMemo(_Memo):
    """The memo, in Dutch, from the same run, budget years, what-ifs and break-even search."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lang = "nl"
        self.loc = Locale("nl")
        self.terms = []  # Dutch terms need no gloss in a Dutch memo

    # helpers -----------------------------------------------------------------------------------
    def text(self, scenario_text) -> str:
        return e(scenario_text)

    def money(self, value, decimals: int = 0) -> str:
        return self.loc.money(value, self.cur, decimals)

    def month(self, m: int) -> str:
        years = budget_years(self.c)
        if years.start is None:
            return f"maand {m}"
        y, m0 = years.start
        return self.loc.month(y + (m0 + m) // 12, (m0 + m) % 12)

    ERROR_WORDS = "Monte-Carlofout"

    def estimate_text(self, value, se, unit) -> tuple[str, str]:
        return estimate_nl(value, se, unit, self.cur)

    def cells(self, values) -> list[str]:
        return [e(self.loc.number(v)) if abs(v) >= 0.5 else "0" for v in values]

    # sections ----------------------------------------------------------------------------------
    def header(self) -> str:
        c, r = self.c, self.r
        source = Path(c.source).name if c.source else "(gemaakt in Python)"
        g = self.generated
        when = self.loc.date(g.year, g.month, g.day)
        toc = "".join(f'<li><a href="#{sid}">{e(title)}</a></li>' for sid, title in SECTIONS_NL)
        return (f'<header><p class="kicker">Memo · simulatie van een Social Impact Bond</p>'
                f"<h1>{e(c.title)}</h1>"
                f'<p class="meta-line"><b>Datum:</b> {e(when)} &nbsp;·&nbsp; <b>Scenario:</b> '
                f"<code>{e(source)}</code> &nbsp;·&nbsp; <b>Gesimuleerde toekomsten:</b> "
                f"{e(self.loc.number(r.n_paths))} &nbsp;·&nbsp; <b>Seed:</b> {e(self.seed_text())}</p></header>"
                f'<nav class="toc" aria-label="Inhoud"><b>Inhoud</b><ol>{toc}</ol></nav>')

    def what(self) -> str:
        c = self.c
        investors = " en ".join(i.name for i in c.investors) if len(c.investors) <= 3 else \
            f"{len(c.investors)} investeerders"
        caps = sorted({i.return_cap for i in c.investors if i.return_cap is not None and i.repayable})
        cap_text = (f" (ten hoogste {' / '.join(self.loc.percent(x, 0) for x in caps)} per "
                    "jaar; wat de betaler daarboven verschuldigd zou zijn, houdt zij zelf)" if caps else "")
        paid = ", ".join(f"{c.outcome_label(o)} ({self.money(p)})" for o, p in c.payer.rate_card)
        out = ['<section id="what"><h2>1. Waar dit over gaat</h2>',
               f"<p>Dit memo vat een computersimulatie samen van <b>{e(c.title)}</b>, een <b>Social Impact Bond</b> "
               f"(SIB). In een SIB financieren private investeerders ({e(investors)}) een maatschappelijk programma "
               f"voor dat {e(c.provider_name)} uitvoert: zij zeggen vooraf {e(self.money(c.total_commitment))} toe. "
               f"De uitkomstbetaler, {e(self.payer)}, betaalt alleen voor resultaten die een evaluator meet ten "
               "opzichte van wat er zonder het programma zou zijn gebeurd"
               + (f": {e(paid)} per extra uitkomst" if paid else "") + ". "
               "Zij betaalt dat uit wat zij minder uitgeeft aan de deelnemers. Werkt het programma, dan krijgen de "
               f"investeerders hun geld terug met rendement{e(cap_text)}; werkt het niet, dan verliezen zij een deel "
               f"of alles en betaalt {e(self.payer)} weinig.</p>",
               f"<p>Niemand weet vooraf hoe goed het programma werkt. Daarom speelt de simulatie "
               f"<b>{e(self.loc.number(self.r.n_paths))} mogelijke toekomsten</b> door, elk met eigen "
               "slagingskansen, getrokken uit de aannames in paragraaf 5. De cijfers zijn gemiddelden en slechte "
               "gevallen over die toekomsten, en zijn zo goed als de aannames.</p>"]
        desc = self.meta.get("description")
        if desc:
            out.append(f'<div class="callout"><b>Het programma, zoals het scenario het beschrijft:</b> '
                       f"{self.text(desc)}</div>")
        out.append("</section>")
        return "".join(out)

    def key_figures(self) -> str:
        c = self.c
        payer = self.payer
        tail = c.tail_months
        over = f", looptijd en {tail} maanden daarna" if tail else ""
        payer_items = [
            self.figure_html("expected_outcome_payments", "Verwachte uitkomstbetalingen",
                             f"Wat {e(payer)} naar verwachting aan de investeerders betaalt voor gemeten resultaten."),
            self.figure_html("expected_gross_savings", "Verwachte brutobesparing" + over,
                             f"Wat {e(payer)} minder uitgeeft aan de deelnemers dan zonder het programma."),
            self.figure_html("expected_net_savings", "Verwachte nettobesparing" + over,
                             "Brutobesparing min uitkomstbetalingen en de kosten die de betaler draagt."),
            self.figure_html("probability_pays_more_than_saves", f"Kans dat {payer} meer betaalt dan zij bespaart",
                             "Aandeel van de toekomsten met een negatieve nettobesparing."),
        ]
        investor_items = [
            self.figure_html("expected_moic", "Verwachte terugbetaling per ingelegde euro",
                             "Wat investeerders gemiddeld terugkrijgen per euro inleg."),
            self.figure_html("probability_of_loss", "Kans op verlies",
                             "Aandeel van de toekomsten waarin investeerders minder terugkrijgen dan zij inlegden."),
            self.figure_html("median_irr", "Mediaan jaarrendement (IRR)",
                             "De helft van de toekomsten geeft een hoger rendement, de helft een lager."),
            self.figure_html("expected_loss", "Verwacht niet terugbetaalde inleg",
                             "Niet terugbetaalde inleg, gemiddeld over alle toekomsten (zonder verlies telt als nul)."),
        ]
        period = (f"over de looptijd en de {tail} maanden daarna waarin besparingen nog worden gevolgd"
                  if tail else "over het hele contract")
        return ('<section id="key-figures"><h2>2. Kerncijfers</h2>'
                f"<p>Gemiddelden over <b>{e(self.loc.number(self.r.n_paths))} gesimuleerde toekomsten</b>, in "
                f"nominale {e(self.cur)} (niet verdisconteerd), {e(period)}. Achter elk cijfer staat de "
                "<em>Monte-Carlofout</em>: hoeveel het zou kunnen verschillen als de simulatie opnieuw werd gedaan "
                "met andere toevalsgetallen. Over de juistheid van de aannames zegt die niets.</p>"
                f'<div class="kf"><div class="kf-group payer"><h3>{e(payer)} (uitkomstbetaler)</h3>'
                f'{"".join(payer_items)}</div>'
                f'<div class="kf-group"><h3>Investeerders</h3>{"".join(investor_items)}</div></div>'
                f'<p class="kf-foot">Aantal gesimuleerde toekomsten: <b data-n-paths="{self.r.n_paths}">'
                f"{e(self.loc.number(self.r.n_paths))}</b>; seed <span data-seed=\"{e(self.r.seed_entropy)}\">"
                f"{e(self.seed_text())}</span>. Alle schattingen staan in de "
                '<a href="#all-estimates">bijlage</a>.</p></section>')

    def budget_html(self) -> str:
        from matplotlib.figure import Figure

        from .plots import plot_budget

        c, payer = self.c, self.payer
        years = budget_years(c)
        frame = reserve_rows(self.r.budget(), c)

        def cell(v):
            return "geen plafond" if v != v else (e(self.loc.number(v)) if abs(v) >= 0.5 else "0")

        rows = []
        for _, row in frame.iterrows():
            label = "Alle jaren" if row["label"] == "All years" else row["label"].replace("Contract year",
                                                                                          "Contractjaar")
            rows.append([e(label)] + [cell(row[k]) for k in (
                "paid_mean", "paid_p90", "paid_p95", "maximum", "savings_mean", "savings_p10", "net_mean", "net_p10")])
        group = ('<tr><th></th><th class="group" colspan="4">Betaald (uitkomstbetalingen, kosten, garanties)</th>'
                 '<th class="group" colspan="2">Besparing</th><th class="group" colspan="2">Netto</th></tr>')
        head = ["Begrotingsjaar", "Verwacht", "P90", "P95", "Maximum", "Verwacht", "P10", "Verwacht", "P10"]
        table = self.table(head, rows, num_cols=range(1, 9), group_head=group,
                           caption=f"{e(payer)} per begrotingsjaar ({e(self.cur)}): verwacht, een slecht jaar en "
                                   "het meeste dat het contract kan vragen", row_classes={len(rows) - 1: "total"})
        basis = "kalenderjaar" if years.basis == "calendar" else "contractjaar (het scenario geeft geen startdatum)"
        uri = _data_uri(plot_budget(self.r, fig=Figure(figsize=(9.0, 4.4)), lang="nl"))
        self.n_figures = 1
        return ("<h3>Begrotingsjaren: wat te reserveren</h3>"
                f"<p>Per {e(basis)}: wat {e(payer)} gemiddeld betaalt, en in een slecht jaar: P90 wordt in 1 op "
                "de 10 toekomsten overschreden, P95 in 1 op de 20. Bij besparing en nettopositie staat P10: 1 op de "
                "10 toekomsten is slechter. Het maximum volgt uit het contract, wat de uitkomsten ook zijn: het "
                "betalingsplafond in elk jaar vanaf het eerste betaalmoment (wat de waterval inhoudt, wordt later "
                "betaald), plus de kosten van dat jaar en het meeste dat de "
                "garanties kunnen vragen. Het plafond geldt voor het hele contract, dus de maxima per jaar tellen "
                "niet op (de laatste regel is het maximum van het hele contract). Alle cijfers met hun "
                "Monte-Carlofout staan in <code>budget.csv</code> en in de werkmap.</p>"
                f"{table}"
                f'<figure id="fig-budget"><img src="{uri}" alt="Betalingen per datum en per begrotingsjaar">'
                f"<figcaption><b>Figuur 1. {e(payer)}: betalingen per datum en per begrotingsjaar.</b> Links: de "
                "gemiddelde uitkomstbetaling per maand. Rechts: alles wat zij per begrotingsjaar betaalt, "
                "gemiddeld (staven), met P90 en P95 (markeringen).</figcaption></figure>")

    def what_if_html(self) -> str:
        out = []
        frame = self.stress
        if frame is not None and len(frame):
            cols = [("outcome_payments", "Uitkomstbetalingen"), ("gross_savings", "Besparing"),
                    ("net_savings", "Nettobesparing"), ("investor_irr_median", "Mediaan rendement")]
            labels = {"outflow": "Uitstroom 20 % lager", "relapse": "Terugval 50 % hoger",
                      "comparison": "Vergelijkingsgroep 20 % beter", "labour_market": "Dip op de arbeidsmarkt",
                      "payment_later": "Betaling een jaar later"}

            rows = []
            for key in dict.fromkeys(frame["stress"]):
                part = frame[frame["stress"] == key].set_index("measure")
                first = part.iloc[0]
                label = labels.get(key, first["label"])
                if first["reason"]:
                    why = ("de vergelijkingsgroep heeft geen eigen uitstroomparameters (geen, of gedeeld met de "
                           "programmagroep: één arbeidsmarkt)" if key == "comparison" else
                           "het scenario noemt er geen parameters voor (analysis."
                           + {"outflow": "outflow_parameters", "relapse": "relapse_parameters"}.get(
                               key, "labour_market_parameters") + ")")
                    rows.append([f"<b>{e(label)}</b>", e(f"niet berekend: {why}")] + ["" for _ in cols])
                    continue
                what = (first["change"].replace("(programme group)", "(programmagroep)")
                        .replace("(programme group; ", "(programmagroep; ")
                        .replace(" shared with the comparison group, which moves too",
                                 " gedeeld met de vergelijkingsgroep, die dus meebeweegt")
                        .replace("(comparison group)", "(vergelijkingsgroep)").replace("(both groups)", "(beide groepen)")
                        .replace("every payment lag + 12 months", "elke betalingstermijn + 12 maanden"))
                rows.append([f"<b>{e(label)}</b>", e(dutch(what))]
                            + [e(difference_text(part.loc[m, "difference"], part.loc[m, "difference_se"],
                                                 part.loc[m, "unit"], self.cur, translate=dutch)) for m, _ in cols])
            head = ["Wat als", "Wat verandert"] + [label for _, label in cols]
            table = self.table(head, rows, num_cols=range(2, 6),
                               caption=f"Verschil met het verwachte geval ({e(self.cur)}; rendement in procentpunt, pp), "
                                       "met de Monte-Carlofout")
            n = frame.attrs.get("n_paths")
            out.append("<h3>Wat als ...?</h3>"
                       "<p>Standaardvragen, elk beantwoord door het scenario opnieuw te simuleren met één wijziging"
                       + (f" over {e(self.loc.number(n))} toekomsten" if n else "")
                       + ", met dezelfde toevalsgetallen als het verwachte geval: elk verschil is het effect van de "
                       "wijziging, en de Monte-Carlofout is die van het verschil. Van een parameter verandert het "
                       "gemiddelde; de onzekerheid blijft.</p>" + table)
        lines = []
        for target, who in (("investor", "De investeerders krijgen hun inleg gemiddeld terug"),
                            ("payer", f"{self.payer} bespaart gemiddeld evenveel als zij betaalt")):
            res = (self.break_even or {}).get(target)
            if not res:
                continue
            if res.get("status") != "ok":
                side = "al bij het laagste succes" if res.get("balance_at_low", 0) > 0 else "zelfs niet bij het dubbele succes"
                lines.append(f"<li>{e(who)}: {e(side)}.</li>")
                continue
            factor = estimate_nl(res["factor"], res["factor_se"], "x", self.cur)
            share = estimate_nl(res["primary_share"], res["primary_share_se"], "share", self.cur)
            base = estimate_nl(res["base_primary_share"], float("nan"), "share", self.cur)[0]
            outcome = self.c.outcome_label(res.get("primary_outcome") or self.c.primary_outcome)
            lines.append(f"<li>{e(who)} als het programma ten minste <b>{e(factor[0].rstrip('x'))} keer</b> zo "
                         f"succesvol is als aangenomen ({e(factor[1])}): {e(share[0])} van de deelnemers met "
                         f"{e(outcome)} ({e(share[1])}), tegen {e(base)} verwacht.</li>")
        if lines:
            out.append("<h3>Succes om quitte te spelen</h3><p>Hoe succesvol het programma moet zijn (de "
                       "slagingskansen samen geschaald) om voor elke partij gemiddeld quitte te spelen:</p>"
                       f"<ul>{''.join(lines)}</ul>")
        return "".join(out)

    def cash(self) -> str:
        payer = self.payer
        yearly, labels = self.yearly_schedule()
        cols = ["capital_calls", "received", "investor_net", "gross_savings", "outcome_payments", "other_costs",
                "net_savings"]
        rows = []
        for label, (_, row) in zip(labels, yearly.iterrows()):
            name, _span = label.split("|")
            name = name.replace("Contract year", "Contractjaar")
            rows.append([e(name)] + self.cells([row[k] for k in cols]))
        rows.append(["Totaal"] + self.cells([yearly[k].sum() for k in cols]))
        group = ('<tr><th></th><th class="group" colspan="3">Investeerders</th>'
                 f'<th class="group" colspan="4">{e(payer)}</th></tr>')
        head = ["Begrotingsjaar", "Ingelegd", "Ontvangen", "Netto", "Besparing", "Uitkomstbetalingen",
                "Kosten en garanties", "Netto"]
        table = self.table(head, rows, num_cols=range(1, 8), group_head=group,
                           caption=f"Verwachte kasstromen per begrotingsjaar ({e(self.cur)}, gemiddeld over alle "
                                   "gesimuleerde toekomsten)", row_classes={len(rows) - 1: "total"})
        ns_p05, ns_se, _ = self.est("net_savings_p05")
        irr_p05, irr_se, _ = self.est("irr_p05")
        cvar, cvar_se, _ = self.est("cvar05_net_result")
        down = [
            [f"{e(payer)}: nettobesparing, 5e percentiel", *map(e, estimate_nl(ns_p05, ns_se, self.cur, self.cur))],
            ["Investeerders: jaarrendement (IRR), 5e percentiel", *map(e, estimate_nl(irr_p05, irr_se, "per year",
                                                                                     self.cur))],
            ["Investeerders: gemiddeld nettoresultaat in de slechtste 5 % van de toekomsten",
             *map(e, estimate_nl(cvar, cvar_se, self.cur, self.cur))],
        ]
        downside = self.table(["Maat voor het slechte geval", "Waarde", "Monte-Carlofout"], down, num_cols=(1,))
        sentence = (f"In de slechtste 1 op de 20 toekomsten betaalt {e(payer)} minstens "
                    f"{e(estimate_nl(-ns_p05, ns_se, self.cur, self.cur)[0])} meer dan zij bespaart"
                    if ns_p05 < 0 else
                    f"Ook in de slechtste 1 op de 20 toekomsten bespaart {e(payer)} netto nog minstens "
                    f"{e(estimate_nl(ns_p05, ns_se, self.cur, self.cur)[0])}")
        return ('<section id="cash"><h2>3. Begroting, verwacht en slecht geval</h2>'
                "<h3>Verwacht geval: wanneer het geld beweegt</h3>"
                "<p>De tabel toont per begrotingsjaar de gemiddelde kasstroom van elke partij. Investeerders leggen "
                f"geld in zolang het programma loopt en worden terugbetaald uit de uitkomstbetalingen; {e(payer)} "
                "betaalt na elke meting voor de gemeten uitkomsten.</p>"
                f"{table}{self.budget_html()}"
                "<h3>Slecht geval: wat als het tegenvalt?</h3>"
                f'<div class="callout bad"><p>{sentence}.</p></div>{downside}'
                f"{self.what_if_html()}</section>")

    def plots(self) -> str:
        r, payer = self.r, self.payer
        specs = [
            ("net-savings", lambda ax: r.plot_net_savings(ax=ax, lang="nl"), f"{payer}: nettobesparing",
             f"Elke staaf is het aandeel toekomsten waarin de nettobesparing van {payer} over de hele periode in "
             "dat bereik valt; links van de rode lijn betaalt zij meer dan zij bespaart, de stippellijn is het "
             "gemiddelde."),
            ("cash-fan-payer", lambda ax: r.plot_cash_fan(ax=ax, party="payer", lang="nl"),
             f"{payer}: kasstroom in de tijd",
             f"De opgetelde besparing min betalingen van {payer}, maand na maand: de lijn is de middelste toekomst, "
             "de donkere band de middelste helft en de lichte band 90 % van de toekomsten; de stippellijn markeert "
             "het einde van de looptijd."),
            ("cash-fan-investors", lambda ax: r.plot_cash_fan(ax=ax, party="investors", lang="nl"),
             "Investeerders: kasstroom in de tijd",
             "Wat de investeerders tot dan toe ontvingen min wat zij inlegden: boven nul hebben zij hun inleg terug."),
            ("outflow", lambda ax: r.plot_outflow(ax=ax, lang="nl"), f"{payer}: uitgaven aan deelnemers",
             f"Wat {payer} per maand aan de deelnemers uitgeeft, met het programma (blauw) en in de schatting "
             "zonder (grijs): het verschil is de brutobesparing."),
            ("irr", lambda ax: r.plot_irr(ax=ax, lang="nl"), "Investeerders: jaarrendement",
             "Hoe vaak elk jaarrendement (IRR) voorkomt: rode staven zijn toekomsten met verlies, blauwe "
             "toekomsten waarin de inleg terugkomt; de stippellijn is het rendementsplafond."),
        ]
        figs = []
        first = self.n_figures + 1
        self.n_figures += len(specs)
        for n, (fid, plot, title, caption) in enumerate(specs, start=first):
            uri = _png(plot, self.cur)
            figs.append(f'<figure id="fig-{fid}"><img src="{uri}" alt="{e(title)}">'
                        f"<figcaption><b>Figuur {n}. {e(title)}.</b> {e(caption)}</figcaption></figure>")
        kept = r.monthly["investor_cumulative_net"].shape[0]
        note = (f'<p class="note">De figuren in de tijd gebruiken de eerste {e(self.loc.number(kept))} van de '
                f"{e(self.loc.number(r.n_paths))} toekomsten.</p>" if kept < r.n_paths else "")
        return f'<section id="plots"><h2>4. Figuren</h2>{note}{"".join(figs)}</section>'

    def assumptions(self) -> str:
        c, p = self.c, self.c.payer
        meta = self.meta
        out = ['<section id="assumptions"><h2>5. Aannames en contractvoorwaarden</h2>',
               "<p>Gepubliceerde feiten staan met hun bron vermeld. Elk getal dat <em>niet</em> gepubliceerd is, is "
               "een aanname van dit scenario (hieronder zoals het scenario ze schrijft).</p>"]
        if c.command_line_changes:
            changes = "".join(f"<li><code>{e(o)}</code></li>" for o in c.command_line_changes)
            out.append('<div class="note" id="overrides"><p><b>Voor dit memo gewijzigd, niet in het '
                       f"scenariobestand:</b></p><ul>{changes}</ul></div>")
        for key, title, caption in (("assumptions", "Aanname (niet gepubliceerd)", "Aannames"),
                                    ("sources", "Gepubliceerd feit en bron", "Bronnen")):
            items = list(meta.get(key, ()))
            if items:
                rows = [[str(i), self.text(a)] for i, a in enumerate(items, start=1)]
                out.append(self.table(["#", title], rows, cls="list", caption=caption))
        rows = [("Looptijd", f"{c.term_months} maanden" + (f", besparing {c.tail_months} maanden langer gevolgd"
                                                           if c.tail_months else "")),
                ("Deelnemers", f"{self.loc.number(c.n_participants)} in {len(c.cohorts)} groepen (cohorten)"),
                ("Toegezegd kapitaal", self.money(c.total_commitment)),
                ("Uitkomstbetaler", p.name)]
        for outcome, price in p.rate_card:
            rows.append((f"Prijs per extra uitkomst: {c.outcome_label(outcome)}", self.money(price)))
        for q in c.payers:
            rows.append((f"Betalingsplafond ({q.name})", "geen" if q.payment_cap is None else self.money(q.payment_cap)))
            rows.append((f"Betalingstermijn ({q.name})", f"{q.payment_lag_months} maanden na de meting"))
        if p.measurement_months:
            rows.append(("Meetmomenten", ", ".join(self.month(m) for m in p.measurement_months)))
        for inv in c.investors:
            cap = "geen" if inv.return_cap is None else f"{self.loc.percent(inv.return_cap, 0)} per jaar"
            rows.append((f"Investeerder: {inv.name}", f"{self.money(inv.commitment)}; rendementsplafond {cap}"))
        for fee in c.fees:
            who = {"payer": "de betaler", "investors": "de investeerders", "waterfall": "de waterval"}[fee.paid_by]
            rows.append((f"Kosten: {fee.name}", f"{self.money(fee.schedule.total)}, betaald door {who}"))
        for g in c.guarantees:
            rows.append((f"Garantie van {g.guarantor}", ", ".join(g.investors)))
        body = "".join(f'<tr><th scope="row">{e(k)}</th><td>{e(v)}</td></tr>' for k, v in rows)
        out.append(f'<div class="table-wrap"><table class="terms"><caption>Contractvoorwaarden</caption>'
                   f"<tbody>{body}</tbody></table></div>")
        out.append(self.journey_table_nl())
        out.append("</section>")
        return "".join(out)

    def journey_table_nl(self) -> str:
        c, loc = self.c, self.loc

        def prior(pr) -> str:
            if pr.kind == "rate":
                return f"{loc.number(pr.mean, 3)} per maand" + ("" if pr.is_fixed else f" (± {loc.number(pr.sd, 3)})")
            return loc.percent(pr.mean) + ("" if pr.is_fixed else f" (± {loc.percent(pr.sd)})")

        rows = []
        for name, pr in c.journey.parameters:
            if "->" in name:  # inline exits are described by their states in the scenario
                continue
            other = "dezelfde trekking" if name in c.comparison.shared else prior(c.comparison.journey.prior(name))
            rows.append([e(name.replace("_", " ")), e(prior(pr)), e(other)])
        return (self.table(["Kans per maand (naam in het scenario)", "Deelnemers aan het programma",
                            "Zonder het programma"], rows, num_cols=(1, 2),
                           caption="Aangenomen slagingskansen (gemiddeld, ± onzekerheid)")
                + '<p class="note">De ± is de onzekerheid over elke kans: elke gesimuleerde toekomst trekt haar '
                  "eigen kansen rond het gemiddelde.</p>")

    def sensitivity_section(self) -> str:
        out = ['<section id="sensitivity"><h2>6. Gevoeligheid: welke aannames het zwaarst wegen</h2>']
        sens = self.sensitivity
        if sens is None or not len(sens):
            out.append("<p>Voor dit memo is geen gevoeligheidsanalyse gedaan (<code>sibsim report "
                       "--sensitivity</code>).</p></section>")
            return "".join(out)
        out.append("<p>Elke regel zet één aanname lager en hoger en houdt de andere gelijk. Bovenaan staan de "
                   "aannames met het grootste effect: die zijn het meest waard om te controleren. Elke variant "
                   "gebruikt de toevalsgetallen van de basis, zodat een verschil het effect van de aanname is.</p>")
        for measure, group in sens.groupby("measure", sort=False):
            unit = str(group["unit"].iloc[0])
            group = group.sort_values("swing", ascending=False, kind="stable")
            rows = []
            for _, row in group.iterrows():
                cells = [e(assumption_words(row["assumption"], "nl"))]
                for k in ("low", "base", "high"):
                    se = row.get(f"{k}_se")
                    text, err = estimate_nl(row[k], se if _finite(se) else float("nan"), unit, self.cur)
                    cells.append(e(text) + (f'<br><span class="note">{e(err)}</span>' if err.startswith("±") else ""))
                rows.append(cells)
            out.append(self.table(["Aanname", "Resultaat bij lage waarde", "Basis", "Resultaat bij hoge waarde"],
                                  rows, num_cols=(1, 2, 3), cls="sens",
                                  caption=e(measure_words(measure, self.payer, "nl"))))
        out.append("</section>")
        return "".join(out)

    def convergence_html(self) -> str:
        from matplotlib.figure import Figure

        from .convergence import plot_convergence

        frame = self.r.convergence()
        if frame.empty or frame["paths"].nunique() < 2:
            return ""
        labels = {m: METRIC_LABELS_NL.get(m, m.replace("_", " ")) for m in frame["metric"].unique()}
        counts = sorted(frame["paths"].unique())
        shown = counts[-4:]
        rows = self.convergence_rows(frame, shown, lambda metric, _text: labels[metric])
        table = self.table(["Kerncijfer"] + [f"{self.loc.number(k)} toekomsten" for k in shown], rows,
                           num_cols=tuple(range(1, len(shown) + 1)),
                           caption="Kerncijfers op de eerste gesimuleerde toekomsten, met hun Monte-Carlofout")
        uri = _data_uri(plot_convergence(frame, fig=Figure(figsize=(9.0, 5.2)), currency=self.cur, lang="nl",
                                         labels=labels))
        return ("<h3>Hoe de cijfers zich zetten</h3>"
                "<p>De kerncijfers berekend op de eerste toekomsten: elk beweegt minder naarmate er toekomsten "
                "bijkomen, en de band (schatting plus of min twee keer de Monte-Carlofout) wordt smaller.</p>"
                f"{table}"
                f'<figure id="fig-convergence"><img src="{uri}" alt="Hoe de kerncijfers zich zetten">'
                f"<figcaption><b>Figuur {self.n_figures + 1}. Hoe de kerncijfers zich zetten.</b> Elk cijfer op "
                "de eerste gesimuleerde toekomsten (logaritmische schaal), met het 95 %-interval; de stippellijn "
                "is de waarde op alle toekomsten.</figcaption></figure>")

    def method(self) -> str:
        from . import __version__

        c, r = self.c, self.r
        counterfactual = ("een model van het verwachte verloop zonder programma" if c.comparison.method == "expected"
                          else "een vergelijkingsgroep die naast de deelnemers wordt gevolgd")
        cmd = None
        if c.source and not tuple(r.spawn_key):
            changes = "".join(f" {flag} {shlex.quote(change)}"
                              for flag, change in (o.split(" ", 1) for o in c.command_line_changes))
            cmd = (f"sibsim report {self.run_dir} --lang nl --out memo.html" if self.run_dir else
                   f"sibsim report {c.source} --paths {r.n_paths} --seed {r.seed_entropy}{changes} --lang nl "
                   "--out memo.html")
        caveats = [
            "Alleen de besparing op de uitgaven aan deelnemers telt mee. Andere baten (belastingen, gezondheid, "
            "minder criminaliteit, welzijn) en kosten (eigen personeel, contractbeheer) blijven buiten beschouwing.",
            "De slagingskansen van één toekomst worden onafhankelijk van elkaar getrokken; in werkelijkheid kan "
            "een goed programma op meer punten tegelijk beter scoren, wat de spreiding vergroot.",
            "Bedragen zijn nominaal: geld in latere jaren telt even zwaar als geld nu (contante waarden staan in "
            "de bijlage).",
            "Risico's buiten het contract zijn niet gemodelleerd: een uitvoerder die stopt, heronderhandeling, "
            "wetswijzigingen of een betwiste evaluatiemethode.",
            "De uitkomsten zijn zo goed als de aannames in paragraaf 5. De Monte-Carlofout meet alleen de ruis van "
            "de simulatie, niet de onzekerheid over die aannames (zie paragraaf 6).",
        ]
        repro = f"sibsim-versie {__version__}; {self.loc.number(r.n_paths)} gesimuleerde toekomsten, seed {self.seed_text()}"
        if c.source:
            repro += f"; scenariobestand {Path(c.source).name}" + (f" (SHA-256 {c.files_sha256})" if c.files_sha256 else "")
        return ('<section id="method"><h2>7. Methode en kanttekeningen</h2>'
                "<h3>Hoe de simulatie werkt</h3>"
                f"<p>Deelnemers starten in {len(c.cohorts)} groepen (cohorten) en worden maand na maand gevolgd door "
                "de toestanden van het traject uit het scenario. In elke gesimuleerde toekomst worden eerst de "
                "slagingskansen getrokken uit de bandbreedtes in paragraaf 5, daarna het pad van elke deelnemer. Wat "
                f"er zonder het programma was gebeurd, schat {e(counterfactual)}. Meting, betalingen, plafonds, "
                "kapitaalstortingen en wat elke investeerder ontvangt volgen het contract.</p>"
                "<h3>Monte-Carlofout</h3>"
                f"<p>Met {e(self.loc.number(r.n_paths))} toekomsten wijkt een gemiddelde ongeveer de getoonde ± af van "
                "wat oneindig veel toekomsten zouden geven (één standaardfout; twee keer dat dekt ongeveer 95 % "
                "van de herhalingen). Vier keer zoveel toekomsten halveert de fout.</p>"
                f"{self.convergence_html()}"
                "<h3>Wat het model weglaat</h3>"
                f'<ul class="caveats">{"".join(f"<li>{e(x)}</li>" for x in caveats)}</ul>'
                "<h3>Deze cijfers opnieuw maken</h3>"
                f"<p>{e(repro)}. Hetzelfde scenario, aantal toekomsten en seed geven op elke computer precies "
                "dezelfde cijfers" + (f": <code>{e(cmd)}</code>" if cmd else "") + ".</p></section>")

    def appendix(self) -> str:
        rows = []
        for metric, row in self.s.iterrows():
            metric = str(metric)
            if row["party"] == "outcomes":
                group, outcome = metric.split("_", 1)
                label = (f"Aandeel {'deelnemers' if group == 'treated' else 'van de vergelijkingsgroep'} met: "
                         f"{self.c.outcome_label(outcome)} (binnen de looptijd)")
            elif "[" in metric:
                key, name = metric.split("[", 1)
                label = PARTY_LABELS_NL.get(key, key.replace("_", " ") + ": {name}").format(name=name.rstrip("]"))
            else:
                label = METRIC_LABELS_NL.get(metric, metric.replace("_", " "))
            shown, err = estimate_nl(float(row["estimate"]), float(row["std_error"]), str(row["unit"]), self.cur)
            rows.append([e(label), e(shown), e(err)])
        return ('<section id="all-estimates"><h2>Bijlage: alle schattingen</h2>'
                + self.table(["Maat", "Schatting", "Monte-Carlofout"], rows, num_cols=(1,)) + "</section>")

    def render(self) -> str:
        from . import __version__

        c = self.c
        source = str(Path(c.source).resolve()) if c.source else ""
        body = "".join([self.header(), self.council(), self.what(), self.key_figures(), self.cash(), self.plots(),
                        self.assumptions(), self.sensitivity_section(), self.method(), self.appendix()])
        g = self.generated
        footer = (f"<footer>Gemaakt met sibsim {e(__version__)} op {e(self.loc.date(g.year, g.month, g.day))} "
                  f"{g.strftime('%H:%M')}. Dit memo is één bestand: de figuren zitten erin, het heeft geen "
                  "internetverbinding nodig en bevat geen scripts.</footer>")
        return ("<!DOCTYPE html>\n"
                '<html lang="nl">\n<head>\n<meta charset="utf-8">\n'
                '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f'<meta name="generator" content="sibsim {e(__version__)}">\n'
                f'<meta name="{SCENARIO_META}" content="{e(source)}">\n'
                f"<title>{e(c.title)}: memo over de Social Impact Bond</title>\n"
                f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n{footer}\n</main>\n</body>\n</html>\n")

