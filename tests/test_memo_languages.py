"""The memo in English and in Dutch: the first page a council member reads alone, Dutch words and
numbers throughout, a print layout under 12 pages with the sensitivity analysis, and the key figures
read back by OCR from a headless-Chromium screenshot."""

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sibsim import load_scenario, simulate
from sibsim.budget import maximum_exposure
from sibsim.council import facts
from sibsim.language import Locale
from sibsim.report import _scenario_texts, render_report
from sibsim.sensitivity import break_even, tornado
from sibsim.stress import stress_test

from .conftest import SCENARIOS

CHROMIUM = Path("/usr/bin/chromium")
TESSERACT = shutil.which("tesseract")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium not installed (Debian: apt-get "
                                    "install chromium); the memo was not printed")
needs_ocr = pytest.mark.skipif(not CHROMIUM.exists() or TESSERACT is None,
                               reason="chromium or tesseract not installed (Debian: apt-get install chromium "
                                      "tesseract-ocr tesseract-ocr-nld); the screenshot was not read")


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    p = _Text()
    p.feed(html)
    return re.sub(r"\s+", " ", " ".join(p.parts))


@pytest.fixture(scope="module")
def run():
    contract = load_scenario(SCENARIOS / "utrecht_colour_kitchen.toml")
    res = simulate(contract, n_paths=2000, seed=2015, workers=1)
    n = 600
    extras = dict(sensitivity=tornado(contract, n_paths=n, seed=2015),
                  stress=stress_test(contract, n_paths=n, seed=2015),
                  break_even={t: break_even(contract, t, n_paths=n, seed=2015) for t in ("investor", "payer")})
    return res, extras


@pytest.fixture(scope="module")
def memos(run):
    res, extras = run
    return {lang: render_report(res, lang=lang, generated=__import__("datetime").date(2026, 12, 2), **extras)
            for lang in ("en", "nl")}


def test_the_first_page_answers_the_council_from_the_run(run, memos):
    res, extras = run
    f = facts(res, extras["break_even"])
    assert f.maximum == maximum_exposure(res.contract).loc["all years", "total paid"] == 1_040_000
    en = visible_text(memos["en"])
    first = en[en.index("At a glance"):en.index("1. What this is")]
    assert "At most EUR 1,040,000 over the whole contract (EUR 1,000,000 payment cap and EUR 40,000 of fees)" in first
    # the return cap holds money back, which the waterfall pays as the cap grows: in later months too
    assert ("Outcome payments can fall due in Jul 2016, Jul 2017, Jul 2018 and Jul 2019; money the waterfall "
            "holds back can be paid in later months too.") in first
    assert f"Chance of a loss: {Locale('en').percent(f.p_loss)}" in first
    assert "the investors get their capital back on average at 0." in first.lower()
    nl = visible_text(memos["nl"])
    eerste = nl[nl.index("In één oogopslag", nl.index("Inhoud") + 30):nl.index("1. Waar dit over gaat")]
    assert "Wat betaalt Gemeente Utrecht ten hoogste, en wanneer?" in eerste
    assert ("Ten hoogste EUR 1.040.000 over het hele contract (EUR 1.000.000 betalingsplafond en EUR 40.000 aan "
            "kosten)") in eerste
    assert "Uitkomstbetalingen kunnen vallen in juli 2016, juli 2017, juli 2018 en juli 2019; wat de " in eerste
    assert f"Kans op verlies: {Locale('nl').percent(f.p_loss)}" in eerste
    assert re.search(r"bij 0,\d\d keer het verwachte succes", eerste)


def test_dutch_numbers_and_dates():
    loc = Locale("nl")
    assert loc.money(1234567, "EUR") == "EUR 1.234.567" and loc.money(-1234.5, "EUR", 2) == "-EUR 1.234,50"
    assert loc.percent(0.125) == "12,5 %" and loc.number(0.0001, 2) == "0,00" and loc.number(-0.001) == "0"
    assert loc.month(2016, 6) == "juli 2016" and loc.date(2026, 12, 2) == "2 december 2026"
    en = Locale("en")
    assert en.money(1234567, "EUR") == "EUR 1,234,567" and en.percent(0.125) == "12.5 %" and en.month(2016, 6) == "Jul 2016"
    with pytest.raises(ValueError):
        Locale("de")


#: Words that give English away in text sibsim writes (the scenario's own text is left out first).
ENGLISH = re.compile(r"\b(the|and|with|which|what|payments?|savings|investors?|Figure|average|expected|"
                     r"futures?|months?|years?|payer|chance|loss|Monte Carlo error|for|from|to|are|not|yes|none|"
                     r"share|cap|guarantee|guarantor|provider|grant|loan|rate|when|each|every|than|more|less)\b")


def _without_scenario_text(text: str, c) -> str:
    """The memo's text less every text the scenario writes itself (names, titles, sources, labels)."""
    own = sorted(set(_scenario_texts(c)) | {o.title for o in c.outcomes} | {c.outcome_label(o) for o in c.outcome_names}
                 | {c.title, "Social Impact Bond", "SIB"} | {g.guarantor for g in c.guarantees}
                 | {p.name for p in c.payers} | {i.holder for i in c.investors} | {x.title for x in c.costs},
                 key=len, reverse=True)
    for scenario_text in own:
        if scenario_text:
            text = text.replace(scenario_text, " ")
    for name in sorted((n for n, _ in c.journey.parameters), key=len, reverse=True):  # its parameters' names
        text = text.replace(name.replace("_", " "), " ")
    return text


def _english(text: str) -> list[str]:
    return [text[max(0, m.start() - 60):m.end() + 60] for m in ENGLISH.finditer(text)]


def test_the_dutch_memo_has_no_english_of_its_own(run, memos):
    res, _ = run
    text = _without_scenario_text(visible_text(memos["nl"]), res.contract)
    found = _english(text)
    assert not found, found[:5]
    assert "Figuur 1." in text and "Begrotingsjaar" in text and "Wat als ...?" in text
    assert re.search(r"EUR \d{1,3}(\.\d{3})+", text) and not re.search(r"EUR \d{1,3}(,\d{3})+\b", text)


@pytest.mark.parametrize("name", sorted(p.name for p in SCENARIOS.glob("*.toml")))
def test_no_shipped_deal_brings_english_into_the_dutch_memo(name):
    # Guarantees, several payers, triggers, reviews, counts of events, no start date: every kind of deal.
    c = load_scenario(SCENARIOS / name)
    res = simulate(c, n_paths=200, seed=1, workers=1)
    html = render_report(res, lang="nl", stress=stress_test(c, n_paths=100, seed=1),
                         break_even={t: break_even(c, t, n_paths=100, seed=1) for t in ("investor", "payer")})
    found = _english(_without_scenario_text(visible_text(html), c))
    assert not found, found[:5]


def test_language_comes_from_the_scenario_or_the_command_line(tmp_path):
    from sibsim import cli

    text = (SCENARIOS / "utrecht_colour_kitchen.toml").read_text(encoding="utf-8")
    scenario = tmp_path / "ck_nl.toml"
    scenario.write_text(text.replace('currency = "EUR"', 'currency = "EUR"\nlanguage = "nl"', 1), encoding="utf-8")
    assert load_scenario(scenario).language == "nl"
    out = tmp_path / "memo.html"
    assert cli.main(["report", str(scenario), "--paths", "300", "--out", str(out)]) == 0
    assert '<html lang="nl">' in out.read_text(encoding="utf-8")
    assert cli.main(["report", str(scenario), "--paths", "300", "--lang", "en", "--out", str(out), "--force"]) == 0
    assert '<html lang="en">' in out.read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('currency = "EUR"', 'currency = "EUR"\nlanguage = "de"', 1), encoding="utf-8")
    from sibsim.errors import ScenarioError

    with pytest.raises(ScenarioError, match=r"bad\.toml: meta\.language: must be one of en, nl \(English, Dutch\), got string 'de'$"):
        load_scenario(bad)


def _chromium(args, tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}"] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)


@needs_chromium
@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_memo_prints_in_under_12_pages_with_the_sensitivity_analysis(memos, lang, tmp_path):
    page = tmp_path / f"memo_{lang}.html"
    page.write_text(memos[lang], encoding="utf-8")
    pdf = tmp_path / f"memo_{lang}.pdf"
    proc = _chromium(["--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri()], tmp_path)
    assert pdf.exists(), proc.stderr[-2000:]
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
    assert 4 <= pages < 12, pages
    assert 'id="sensitivity"' in memos[lang] and "<table" in memos[lang].split('id="sensitivity"')[1][:5000]


@needs_ocr
@pytest.mark.parametrize("lang", ["en", "nl"])
def test_a_screenshot_of_the_first_page_shows_the_key_figures(run, memos, lang, tmp_path):
    res, extras = run
    page = tmp_path / f"memo_{lang}.html"
    page.write_text(memos[lang], encoding="utf-8")
    shot = tmp_path / f"memo_{lang}.png"
    proc = _chromium([f"--screenshot={shot}", "--window-size=1280,1500", page.as_uri()], tmp_path)
    assert shot.exists(), proc.stderr[-2000:]
    ocr = subprocess.run([TESSERACT, str(shot), "-", "-l", "eng" if lang == "en" else "nld"],
                         capture_output=True, text=True, timeout=180).stdout
    flat = re.sub(r"\s+", " ", ocr)
    loc = Locale(lang)
    f = facts(res, extras["break_even"])
    for figure in (loc.money(f.maximum, "EUR"), loc.money(f.commitment, "EUR"), loc.percent(f.p_loss)):
        digits = re.sub(r"\D", "", figure)
        assert figure in flat or digits in re.sub(r"\D", "", flat), (figure, flat[:1500])
    squeezed = flat.replace(" ", "")  # OCR may drop or add a space ("Ata glance")
    assert ("Ataglance" if lang == "en" else "oogopslag") in squeezed
    assert ("WhatdoesGemeenteUtrechtpay" if lang == "en" else "WatbetaaltGemeenteUtrecht") in squeezed
