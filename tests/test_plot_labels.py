"""Figures read as words: no identifiers (snake_case), no offset such as 1e6 on an axis, the payer's
and the investors' names in the titles, in English and in Dutch; --svg writes vector copies."""

import matplotlib
import pytest

from sibsim import load_scenario, simulate
from sibsim.compare import plot_overlay
from sibsim.sensitivity import plot_tornado, tornado

from .conftest import SCENARIOS
from .test_cli import run

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def res():
    return simulate(load_scenario(SCENARIOS / "utrecht_colour_kitchen.toml"), n_paths=600, seed=3, workers=1)


def _texts(fig):
    fig.canvas.draw()  # tick labels and offsets exist once drawn
    out = []
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
        if ax.get_legend() is not None:
            out += [t.get_text() for t in ax.get_legend().get_texts()]
        for axis in (ax.xaxis, ax.yaxis):
            assert axis.get_offset_text().get_text() == "", (ax.get_title(), axis.get_offset_text().get_text())
    out += [t.get_text() for t in fig.legends[0].get_texts()] if fig.legends else []
    return [t for t in out if t]


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_every_figure_reads_as_words(res, lang):
    import matplotlib.pyplot as plt

    figures = {
        "irr": res.plot_irr(lang=lang), "fan_payer": res.plot_cash_fan(party="payer", lang=lang),
        "fan_investors": res.plot_cash_fan(party="investors", lang=lang), "outflow": res.plot_outflow(lang=lang),
        "net": res.plot_net_savings(lang=lang), "budget": res.plot_budget(lang=lang),
        "convergence": res.plot_convergence(lang=lang),
    }
    for name, fig in figures.items():
        texts = _texts(fig)
        assert not [t for t in texts if "_" in t], (name, [t for t in texts if "_" in t])
        plt.close(fig)
    titles = " ".join(_texts(figures["irr"])) + " ".join(_texts(figures["fan_payer"]))
    assert "Start Foundation" in titles and "Gemeente Utrecht" in titles
    years = [t.get_text() for t in figures["fan_payer"].axes[0].get_xticklabels()]
    assert "2016" in years and "2019" in years  # calendar years, not contract months
    net = _texts(figures["net"])
    if lang == "nl":  # Dutch words and a decimal comma: "gemiddeld EUR 741,68k"
        assert any(t.startswith("gemiddeld EUR ") and "," in t for t in net), net
    else:
        assert any(t.startswith("average EUR ") and "." in t for t in net), net


def test_tornado_and_compare_read_as_words(res, tmp_path):
    import matplotlib.pyplot as plt

    contract = res.contract
    frame = tornado(contract, n_paths=200, seed=1)
    for measure in ("investor_moic", "net_savings", "investor_irr_median"):
        fig = plot_tornado(frame, measure, payer=contract.payer.name, currency="EUR")
        texts = _texts(fig)
        assert not [t for t in texts if "_" in t], [t for t in texts if "_" in t]
        plt.close(fig)
    fig = plot_overlay([res, res], ["a", "b"], "net_savings")
    texts = _texts(fig)
    assert "Gemeente Utrecht: net savings (EUR)" in texts and not [t for t in texts if "_" in t]
    plt.close(fig)


def test_run_writes_svg_copies_on_request(tmp_path):
    out = tmp_path / "run"
    assert run("run", SCENARIOS / "utrecht_colour_kitchen.toml", "--paths", 200, "--out", out, "--quiet",
               "--svg") == 0
    svgs = sorted(p.name for p in out.glob("*.svg"))
    pngs = sorted(p.stem for p in out.glob("*.png"))
    assert [s[:-4] for s in svgs] == pngs and len(pngs) == 7
    assert "<svg" in (out / "budget.svg").read_text(encoding="utf-8")[:2000]
    assert run("run", SCENARIOS / "utrecht_colour_kitchen.toml", "--paths", 200, "--out", tmp_path / "plain",
               "--quiet") == 0
    assert not list((tmp_path / "plain").glob("*.svg"))
