"""The HTML memo: self-contained, well-formed, complete, figures equal to the summary, scenario text
escaped, written atomically, and it renders in a real headless browser (when chromium is installed)."""

import argparse
import base64
import math
import os
import re
import subprocess
import time
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sibsim import load_scenario, report, simulate
from sibsim.errors import OutputError

from .conftest import SCENARIOS

CK = SCENARIOS / "utrecht_colour_kitchen.toml"
CHROMIUM = Path("/usr/bin/chromium")
SECTION_IDS = ("what", "key-figures", "cash", "plots", "assumptions", "sensitivity", "method")
KEY_METRICS = {"expected_outcome_payments", "expected_gross_savings", "expected_net_savings",
               "probability_pays_more_than_saves", "expected_moic", "probability_of_loss"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class MemoParser(HTMLParser):
    """Collects tags, attributes, key figures and text, and checks that every tag is closed in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags = [], [], []
        self.figures = {}  # metric -> (attrs, shown text)
        self._figure = None
        self.text = []
        self.doctype = None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if "data-metric" in attrs:
            self._figure = attrs
            self.figures[attrs["data-metric"]] = (attrs, "")
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()
        if self._figure is not None and tag == "div":
            self._figure = None

    def handle_data(self, data):
        self.text.append(data)
        if self._figure is not None:
            attrs, shown = self.figures[self._figure["data-metric"]]
            self.figures[self._figure["data-metric"]] = (attrs, shown + data)


def parse(text: str) -> MemoParser:
    p = MemoParser()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors[:5]
    assert not p.stack, f"unclosed tags: {p.stack[:5]}"
    return p


@pytest.fixture(scope="module")
def results():
    return simulate(load_scenario(CK), n_paths=2000, seed=2015)


@pytest.fixture(scope="module")
def memo(results):
    return report.render_report(results, generated=date(2025, 1, 31))


def test_memo_is_self_contained_and_well_formed(memo):
    p = parse(memo)
    assert p.doctype and p.doctype.lower() == "doctype html"
    names = {tag for tag, _ in p.tags}
    assert not names & {"script", "link", "iframe", "object", "embed", "frame", "base", "form"}, names
    assert not re.search(r"<script", memo, flags=re.I)
    images = [attrs for tag, attrs in p.tags if tag == "img"]
    assert len(images) == 7  # the budget years (section 3), five plots, and how the figures settle (method)
    for attrs in images:
        assert attrs["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(attrs["src"].split(",", 1)[1])[:8] == PNG_MAGIC
        assert attrs.get("alt")
    for tag, attrs in p.tags:
        for key in ("src", "href", "srcset", "action", "poster", "data"):
            value = attrs.get(key)
            if value is None:
                continue
            assert not re.match(r"\s*(https?:)?//", value, flags=re.I), (tag, key, value[:80])
            if key == "href":
                assert value.startswith("#"), value  # only links within the memo
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)  # no event handlers
    # No resource fetched from CSS either.
    css = "".join(re.findall(r"<style>(.*?)</style>", memo, flags=re.S))
    assert "@import" not in css and "url(" not in css
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", memo, flags=re.I)
    # Internal links point at existing ids.
    ids = {attrs["id"] for _, attrs in p.tags if "id" in attrs}
    for _, attrs in p.tags:
        if attrs.get("href", "").startswith("#"):
            assert attrs["href"][1:] in ids


def test_memo_has_every_section(memo):
    p = parse(memo)
    ids = {attrs.get("id") for tag, attrs in p.tags if tag == "section"}
    assert set(SECTION_IDS) <= ids
    text = " ".join(p.text)
    for heading in ("1. What this is", "2. Key figures", "3. Expected case and downside case", "4. Plots",
                    "5. Assumptions and contract terms", "6. Sensitivity", "7. Method and caveats"):
        assert heading in text
    assert "Social Impact Bond" in text and "31 January 2025" in text
    # Dutch terms glossed, once: the savings are the welfare benefit (bijstand) no longer paid, named by the
    # scenario's own cost items and the states they are paid in.
    assert "basic qualification" in text and "(welfare benefit) (welfare benefit)" not in text
    what = " ".join(parse(_section(memo, "what")).text)
    assert ("It expects to pay for this out of its savings: what it no longer spends on the participants"
            in what)
    assert ("bijstand (welfare benefit) for each month in training, job search, job search with diploma, "
            "relapsed or relapsed with diploma; top-up benefit in part-time work for each month in job, job with "
            "diploma, long term job or long term job with diploma") in what
    assert text.count("Figure ") >= 7 and len([t for t, _ in p.tags if t == "figcaption"]) == 7
    assert "Figure 7. How the key figures settle." in text
    # Contract terms come from the Contract: prices, cap, dates, lag, cohorts.
    for phrase in ("EUR 5,500 per additional job held 6 months", "EUR 1,000,000 in all",
                   "month 12 (Apr 2016)", "3 months after each measurement", "12 cohorts (21 each), 252",
                   "Start Foundation", "10 % a year"):
        assert phrase in text, phrase
    # Every [meta] assumption and source is listed.
    contract = load_scenario(CK)
    meta = dict(contract.meta)
    plain = "".join(parse(re.sub(r' <span class="gloss">\(.*?\)</span>', "", memo)).text)
    for line in meta["assumptions"] + meta["sources"]:
        assert line in plain, line
    assert "A sensitivity analysis was not run" in text
    assert "seed 2015" in text.lower() or "Seed: 2015" in text


def _section(memo: str, sid: str) -> str:
    """The HTML of one section of the memo."""
    start = memo.index(f'<section id="{sid}">')
    return memo[start:memo.index("</section>", start) + len("</section>")]


def _shown_number(shown: str) -> tuple[float, float]:
    """The number in a displayed figure and half a unit of its last digit."""
    m = re.search(r"-?[\d,]+(\.\d+)?", shown.replace("EUR ", "").replace("-EUR", "-"))
    number = m.group(0).replace(",", "")
    decimals = len(number.split(".")[1]) if "." in number else 0
    return float(number), 0.5 * 10.0 ** -decimals


def test_key_figures_match_the_summary(memo, results):
    p = parse(memo)
    summary = results.summary()
    assert KEY_METRICS <= set(p.figures)
    for metric, (attrs, shown) in p.figures.items():
        est, se = summary.loc[metric, ["estimate", "std_error"]]
        assert float(attrs["data-estimate"]) == est, metric
        assert float(attrs["data-std-error"]) == se or (math.isnan(se) and attrs["data-std-error"] == "nan")
        value, half_digit = _shown_number(shown)
        scale = 100.0 if attrs["data-unit"] in ("probability", "share", "per year") else 1.0
        # Rounded to the precision the Monte Carlo error supports, never further than the error.
        assert abs(value - est * scale) <= max(se * scale, half_digit) + 1e-9, (metric, shown, est, se)
    assert p.figures["expected_outcome_payments"][1].startswith("EUR ")
    assert p.figures["probability_of_loss"][1].endswith("%")
    assert f'data-n-paths="{results.n_paths}"' in memo and "2,000 simulated futures" in memo
    assert "Monte Carlo error" in memo


def test_format_estimate_rounds_to_the_monte_carlo_error():
    assert report.format_estimate(752_693.2, 412.0, "EUR") == ("EUR 752,690", "± 410")
    assert report.format_estimate(-341_189.5, 32_009.0, "EUR", "GBP") == ("-GBP 341,000", "± 32,000")
    assert report.format_estimate(0.10683, 0.00437, "probability") == ("10.68 %", "± 0.44 percentage points")
    assert report.format_estimate(0.1, 3e-18, "per year")[0] == "10.00 % a year"
    assert report.format_estimate(0.1, 3e-18, "per year")[1].startswith("± less than 0.01")
    assert report.format_estimate(1.05290, 0.00244, "x") == ("1.0529x", "± 0.0024")
    assert report.format_estimate(734_000.0, 0.0, "EUR") == ("EUR 734,000", "± 0")
    assert report.format_estimate(float("nan"), float("nan"), "EUR")[0] == "n/a"


def test_money_in_the_contract_currency():
    res = simulate(load_scenario(SCENARIOS / "peterborough.toml"), n_paths=400, seed=1)
    p = parse(report.render_report(res))
    shown = {m: s for m, (_, s) in p.figures.items()}
    assert shown["expected_outcome_payments"].startswith("GBP ")
    assert not any("EUR" in s for s in shown.values())
    assert "No savings" in " ".join(p.text) or "does not model savings" in " ".join(p.text)


def test_scenario_text_is_escaped(tmp_path):
    text = CK.read_text(encoding="utf-8")
    for old, new in (
        ('title = "The Colour Kitchen SIB, Utrecht (2015-2019)"', "title = '<script>alert(\"x\")</script> & Co'"),
        ('"thecolourkitchen.com: learning-work trajectories in hospitality and catering",',
         "'<img src=x onerror=alert(1)> source',"),
        ('name = "Start Foundation"', 'name = "Start <b>Foundation</b>"'),
        ('name = "Gemeente Utrecht"', 'name = "Gemeente <i>Utrecht</i>"'),
        # (meta.currency cannot hold markup: it must be an ISO 4217 code, tests/test_trust_scenario.py)
    ):
        assert old in text
        text = text.replace(old, new)
    scenario = tmp_path / "evil.toml"
    scenario.write_text(text, encoding="utf-8")
    res = simulate(load_scenario(scenario), n_paths=300, seed=1)
    memo = report.render_report(res)
    p = parse(memo)
    assert not re.search(r"<script", memo, flags=re.I)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in memo
    assert "<img src=x" not in memo and "&lt;img src=x onerror=alert(1)&gt; source" in memo
    assert "<b>Foundation</b>" not in memo and "Start &lt;b&gt;Foundation&lt;/b&gt;" in memo
    assert "<i>Utrecht</i>" not in memo and "Gemeente &lt;i&gt;Utrecht&lt;/i&gt;" in memo
    assert len([t for t, _ in p.tags if t == "img"]) == 7
    assert not [a for t, a in p.tags if t == "i"]
    title = re.search(r"<title>(.*?)</title>", memo).group(1)
    assert title.startswith("&lt;script&gt;")


def test_sensitivity_table_and_note(results):
    sens = pd.DataFrame({
        "assumption": ["job-start probability <with diploma>", "relapse probability", "comparison job start"],
        "measure": ["expected_net_savings"] * 3,
        "low": [300_000.0, 900_000.0, 1_100_000.0],
        "base": [734_000.0] * 3,
        "high": [1_200_000.0, 600_000.0, 400_000.0],
    })
    memo = report.render_report(results, sensitivity=sens)
    p = parse(memo)
    start, end = memo.index('<section id="sensitivity">'), memo.index('<section id="method">')
    section = memo[start:end]
    assert "not run" not in section
    assert "job-start probability &lt;with diploma&gt;" in section and "<with diploma>" not in section
    assert "EUR 1,200,000" in section and "EUR 734,000" in section
    # Sorted by the size of the effect: 900k swing, 700k, 300k.
    order = [section.index(name) for name in ("job-start", "comparison job start", "relapse probability")]
    assert order == sorted(order)
    assert section.count('class="bar"') == 3
    assert not p.errors
    with pytest.raises(ValueError, match="missing columns"):
        report.render_report(results, sensitivity=sens.drop(columns=["base"]))


def test_memo_with_the_tornado_of_sibsim_sensitivity(tmp_path):
    pytest.importorskip("sibsim.sensitivity")
    out = tmp_path / "memo.html"
    args = _report_args(CK, "--out", out, "--paths", 200, "--seed", 3, "--sensitivity", "--sensitivity-paths", 200)
    assert report.cmd_report(args) == 0
    memo = out.read_text(encoding="utf-8")
    parse(memo)
    section = memo[memo.index('<section id="sensitivity">'):memo.index('<section id="method">')]
    assert "not run" not in section and "re-used the random numbers of the base run" in section
    for caption in ("Investors: expected multiple", "Investors: median annual return (IRR)",
                    "Payer: expected net savings"):
        assert f"<caption>{caption}" in section, caption
    # Plain labels, the technical name, the settings tried and paired errors.
    assert "Programme: job search with diploma to job with diploma, per month" in section
    assert "treated.<wbr>job_<wbr>with_<wbr>diploma" in section
    assert "at 3.2 %" in section and "at 4 %" in section and "at 4.8 %" in section
    assert "at 0.8x" in section and "± " in section
    assert section.count('class="bar"') >= 20


def _report_args(*argv):
    parser = argparse.ArgumentParser(prog="sibsim")
    sub = parser.add_subparsers(dest="command", required=True)
    report.add_parser(sub)
    return parser.parse_args(["report", *map(str, argv)])


def test_cli_writes_the_memo_atomically(tmp_path, capsys, monkeypatch):
    out = tmp_path / "memos" / "memo.html"
    args = _report_args(CK, "--out", out, "--paths", 200, "--seed", 4)
    assert args.func is report.cmd_report and args.paths == 200 and args.seed == 4 and not args.force
    assert args.func(args) == 0
    assert "wrote" in capsys.readouterr().out
    first = out.read_text(encoding="utf-8")
    assert first.startswith("<!DOCTYPE html>") and "200 simulated futures" in first
    assert sorted(p.name for p in out.parent.iterdir()) == ["memo.html"], "temporary file left behind"
    # The same scenario may be re-run into the same file.
    assert report.cmd_report(_report_args(CK, "--out", out, "--paths", 250, "--seed", 4)) == 0
    assert "250 simulated futures" in out.read_text(encoding="utf-8")
    # Another scenario's memo, or a file that is not a memo, is not replaced without --force.
    other = SCENARIOS / "rotterdam_buzinezzclub.toml"
    with pytest.raises(OutputError, match="another scenario"):
        report.cmd_report(_report_args(other, "--out", out, "--paths", 200))
    assert report.cmd_report(_report_args(other, "--out", out, "--paths", 200, "--force")) == 0
    notes = tmp_path / "notes.html"
    notes.write_text("<p>mine</p>", encoding="utf-8")
    with pytest.raises(OutputError, match="not a sibsim memo"):
        report.cmd_report(_report_args(CK, "--out", notes, "--paths", 200))
    assert notes.read_text(encoding="utf-8") == "<p>mine</p>"
    with pytest.raises(OutputError, match="directory"):
        report.cmd_report(_report_args(CK, "--out", tmp_path, "--paths", 200))
    # A failure while writing leaves the previous memo whole and no temporary file.
    before = out.read_text(encoding="utf-8")

    def broken_replace(src, dst):
        raise OSError("disk full")

    from sibsim import output

    monkeypatch.setattr(output.os, "replace", broken_replace)
    with pytest.raises(OutputError, match=r"memo\.html: cannot write \(disk full\); the previous output is kept"):
        report.write_report(out, "<html>new</html>")
    assert out.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["memo.html"]


def test_argument_errors_are_reported_by_argparse(capsys):
    with pytest.raises(SystemExit):
        _report_args(CK, "--out", "m.html", "--paths", 0)
    with pytest.raises(SystemExit):
        _report_args(CK, "--paths", 10)  # --out is required
    assert "--out" in capsys.readouterr().err


def test_sibsim_report_command_when_wired(tmp_path):
    from sibsim import cli

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "report" not in sub.choices:
        pytest.skip("sibsim.cli does not register `report` yet (report.add_parser)")
    out = tmp_path / "memo.html"
    assert cli.main(["report", str(CK), "--out", str(out), "--paths", "200", "--seed", "1"]) == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert cli.main(["report", str(SCENARIOS / "peterborough.toml"), "--out", str(out), "--paths", "50"]) == 2


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium not installed "
                    "(Debian: apt-get install chromium); the memo was not rendered in a browser")
def test_memo_renders_in_headless_chromium(memo, tmp_path):
    import matplotlib.image as mpimg

    page = tmp_path / "memo.html"
    page.write_text(memo, encoding="utf-8")
    shot = tmp_path / "memo.png"
    profile = tmp_path / "profile"
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert shot.exists(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    assert time.perf_counter() - started < 120
    image = mpimg.imread(shot)
    assert image.shape[:2] == (4000, 1280)
    rgb = (image[..., :3] * 255).round().astype(np.uint32).reshape(-1, 3)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    colours = np.unique(packed)
    assert len(colours) > 500, f"only {len(colours)} colours: blank or unstyled page?"
    background = (packed == packed[0]).mean()  # the page margin colour, top-left pixel
    assert background < 0.6, f"{background:.0%} of the page is background"
    # Dark text in the header band (the title) and colour in the plots further down.
    top = (image[:400, :, :3] < 0.25).all(axis=2).mean()
    assert top > 0.002, "no dark text at the top of the page"


def test_memo_describes_the_colour_kitchen_journey_from_its_data(memo):
    """The journey, outcomes, cost items and the dropout caveat come from the scenario's own data."""
    method = " ".join(parse(_section(memo, "method")).text)
    for phrase in (
            "Participants start in training. Without the programme, they would start in job search.",
            "In training, each month they may move to job search with diploma (event: diploma) or, failing that, "
            "to job search; after at most 12 months there they move to job search.",
            "In job search, each month, the month of arrival included (so they can pass straight through), they "
            "may move to job.",
            "In relapsed, they stay 1 month, then move to job search.",
            "On reaching 6 months in a row in job or long term job, they may move to long term job.",
            "job held 6 months: reaching 6 months in a row in job, job with diploma, long term job or long term "
            "job with diploma",
            "long-term contract: each participant's first entry into long term job or long term job with diploma",
            "diploma: each participant's first diploma event",
            # The old caveat (dropouts find work only at the rate without a diploma), derived from the data.
            "Those who leave training for job search (without the diploma) move on from there only as everyone "
            "in it does (to job at the rate job without diploma).",
            "over the scenario's cost items: bijstand (welfare benefit) and top-up benefit in part-time work.",
            "The payer's costs per participant rise only by their assumed indexation."):
        assert phrase in method, phrase
    caption = " ".join(parse(_section(memo, "plots")).text)
    assert "Figure 5. Gemeente Utrecht: spending on participants." in caption
    assert "What Gemeente Utrecht spends on the participants each month, in EUR (bijstand" in caption
    assert "gross saving" in caption and "in work (off benefits)" not in caption
    key = " ".join(parse(_section(memo, "key-figures")).text)
    assert ("What Gemeente Utrecht spends less on the participants than it would have spent on them without the "
            "programme, over its cost items: bijstand (welfare benefit) and top-up benefit in part-time work.") in key


#: Words of the Colour Kitchen's employment chain that a deal without them must never use.
EMPLOYMENT_WORDS = re.compile(r"\b(diplomas?|jobs?|welfare|bijstand|benefits?|training|in work|find work|"
                              r"dropouts?|drop out)\b", flags=re.IGNORECASE)


@pytest.mark.parametrize("name, phrases", [
    ("peterborough.toml", [
        "Participants start in community. In community, reconviction events happen at a monthly rate (a random "
        "number each month); they stay there.",
        "reconviction event: every reconviction event, within 12 months of intake, counted 6 months later",
        "What the payer spends on participants is not modelled (no cost items), so no savings are counted.",
        "No savings are counted: the scenario models nothing the payer spends on participants.",
        "Assumed rate",
    ]),
    ("special_education_census.toml", [
        "Participants start in mainstream. In mainstream, each month they may move to special education. In "
        "special education, each month they may move to mainstream.",
        "child in mainstream school at the census: participants in mainstream 12, 24 and 36 months after intake "
        "(a census)",
        "What the payer spends on participants: special education place for each month in special education.",
        "over its cost items: special education place.",
        "What Samenwerkingsverband (school board) spends on the participants each month, in EUR (special "
        "education place for each month in special education)",
        "over the scenario's cost items: special education place.",
    ]),
])
def test_memo_of_a_deal_without_jobs_speaks_of_its_own_journey(name, phrases):
    contract = load_scenario(SCENARIOS / name)
    memo = report.render_report(simulate(contract, n_paths=300, seed=1))
    p = parse(memo)
    text = " ".join(p.text)
    assert len([t for t, _ in p.tags if t == "img"]) == 7
    for phrase in phrases:
        assert phrase in text, phrase
    # Every state, outcome and cost item of the deal is named; nothing of the employment chain is.
    for state in contract.journey.state_names:
        assert f"In {state.replace('_', ' ')}, " in text, state
    for outcome in contract.outcomes:
        assert f"{outcome.title}: " in text, outcome.name
    for item in contract.costs:
        assert f"{item.title} for each month in " in text, item.name
    words = " ".join([text] + [a.get("alt", "") for _, a in p.tags])
    assert not EMPLOYMENT_WORDS.search(words), EMPLOYMENT_WORDS.search(words)
    assert "Those who leave" not in text  # no ordered exit with an event: no dropout caveat
