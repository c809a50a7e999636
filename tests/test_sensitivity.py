"""Sensitivity analysis: tornado with common random numbers, Sobol indices, break-even success, CLI hook."""

import argparse
import json
from dataclasses import replace

import matplotlib.pyplot as plt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sibsim import simulate
from sibsim.contracts import Prior
from sibsim.errors import OutputError
from sibsim.sensitivity import (add_parser, assumptions, break_even, plot_tornado, sobol, success_variant,
                                tornado)

from .conftest import SCENARIOS

N = 600  # paths: one engine block for Colour Kitchen, enough for the known directions


@pytest.fixture(scope="module")
def torn(colour_kitchen):
    return tornado(colour_kitchen, n_paths=N, seed=11)


def row(frame, measure, assumption):
    return frame[(frame["measure"] == measure) & (frame["assumption"] == assumption)].iloc[0]


def test_tornado_base_row_is_simulate_bit_for_bit(torn, colour_kitchen):
    summary = simulate(colour_kitchen, n_paths=N, seed=11).summary()["estimate"]
    for measure, metric in (("investor_moic", "expected_moic"), ("investor_irr_median", "median_irr"),
                            ("net_savings", "expected_net_savings")):
        assert (torn.loc[torn["measure"] == measure, "base"] == summary[metric]).all()


@pytest.mark.parametrize("assumption, measure, sign", [
    ("treated.job_with_diploma", "investor_moic", +1),   # more jobs: more outcomes paid
    ("treated.job_with_diploma", "net_savings", +1),     # ... and more benefit months saved
    ("treated.diploma", "investor_moic", +1),
    ("treated.relapse", "net_savings", -1),              # jobs end sooner: more months on bijstand
    ("comparison.job_without_diploma", "investor_moic", -1),  # a better counterfactual: fewer net outcomes
    ("comparison.job_without_diploma", "net_savings", -1),
    ("prices", "investor_moic", +1),                     # the payer pays more per outcome
    ("prices", "net_savings", -1),
    ("provider_budget", "investor_moic", -1),            # more capital called for the same payments
    ("cost_amounts", "net_savings", +1),                 # every month saved is worth more
    ("tail_months", "net_savings", +1),                  # savings followed longer after the term
])
def test_tornado_known_directions(torn, assumption, measure, sign):
    r = row(torn, measure, assumption)
    # Common random numbers make each difference many standard errors wide.
    assert sign * (r["high"] - r["base"]) > 3 * r["high_se"]
    assert sign * (r["base"] - r["low"]) > 3 * r["low_se"]


def test_tornado_standard_errors_and_order(torn):
    means = torn[torn["measure"] != "investor_irr_median"]
    probabilities = means[means["setting_unit"] == "probability"]
    assert np.isfinite(probabilities[["low_se", "high_se", "base_se"]]).all().all()
    assert (probabilities[["low_se", "high_se", "base_se"]] > 0).all().all()
    assert np.isfinite(torn[["low_se", "high_se", "base_se"]]).all().all()
    # A paired difference is far more precise than either estimate alone.
    r = row(torn, "investor_moic", "treated.job_with_diploma")
    assert r["high_se"] < r["base_se"]
    # The payer's costs cannot reach investors paid by a rate card (savings_share 0): identical
    # paths, exactly zero difference.
    r = row(torn, "investor_moic", "cost_amounts")
    assert r["low"] == r["base"] == r["high"] and r["low_se"] == r["high_se"] == 0
    # Nor can the months after the term; settled on a longer horizon the investors' cash flows are
    # the same up to the rounding of longer sums (per-path MOICs 1e-16 apart).
    r = row(torn, "investor_moic", "tail_months")
    assert r["low"] == pytest.approx(r["base"], abs=1e-12) and r["high"] == pytest.approx(r["base"], abs=1e-12)
    assert r["low_se"] < 1e-12 and r["high_se"] < 1e-12
    for _, rows in torn.groupby("measure"):
        assert rows["swing"].is_monotonic_decreasing


def test_common_random_numbers_keep_the_unchanged_group_bit_for_bit(colour_kitchen):
    """Each stage restarts from the base run's generator state: moving a treated parameter leaves
    every path's comparison group as it was, moving a comparison override every treated journey."""
    from sibsim.sensitivity import _Paired

    paired = _Paired(colour_kitchen, 300, seed=8)
    variants = {a[0]: a[3][1] for a in assumptions(colour_kitchen)}
    base = paired.base
    counterfactual = (base["primary_outcomes"] - base["net_primary_outcomes"]).to_numpy()
    treated = paired.run(variants["treated.relapse"])
    assert not np.array_equal(treated["primary_outcomes"], base["primary_outcomes"])
    np.testing.assert_array_equal(treated["primary_outcomes"] - treated["net_primary_outcomes"], counterfactual)
    comparison = paired.run(variants["comparison.job_without_diploma"])
    np.testing.assert_array_equal(comparison["primary_outcomes"], base["primary_outcomes"])
    assert not np.array_equal(comparison["net_primary_outcomes"], base["net_primary_outcomes"])
    # prices move money only: every outcome count stays (the payments, capped, need not all rise)
    dearer = paired.run(variants["prices"])
    np.testing.assert_array_equal(dearer["primary_outcomes"], base["primary_outcomes"])
    np.testing.assert_array_equal(dearer["net_primary_outcomes"], base["net_primary_outcomes"])
    assert not np.array_equal(dearer["outcome_payments"], base["outcome_payments"])


def test_tornado_variants_are_valid_and_leave_the_contract_alone(colour_kitchen):
    before = repr(colour_kitchen)
    # A prior near 1: +90 % clips the mean at 1 (a known value) and keeps every sd a valid Beta sd.
    contract = replace(colour_kitchen, journey=colour_kitchen.journey.with_parameters(
        {"long_term_contract": Prior(0.9, 0.25)}))
    names = []
    for name, _, _, variants in assumptions(contract, shift=0.9):
        names.append(name)
        for variant in variants:
            assert variant != contract
            for _, prior in [*variant.journey.parameters, *variant.comparison.journey.parameters]:
                assert 0 <= prior.mean <= 1
                assert prior.sd == 0 or prior.sd**2 < prior.mean * (1 - prior.mean)
    # Every named treated parameter that can matter (all 7 are uncertain), each comparison override
    # that can (diploma, dropout and job_with_diploma are a known 0 without the programme), the
    # payer's costs, prices and the provider's budget; tail_months is a tornado row of its own.
    assert names == [f"treated.{n}" for n in contract.journey.parameter_names] + [
        "comparison.job_without_diploma", "comparison.long_term_contract", "cost_amounts", "prices",
        "provider_budget"]
    variants = {a[0]: a[3] for a in assumptions(contract, shift=0.9)}
    high = variants["treated.long_term_contract"][1]
    assert high.journey.prior("long_term_contract") == Prior(1.0, 0.0)
    assert high.comparison == contract.comparison  # the comparison group draws its own: unchanged
    low = variants["comparison.long_term_contract"][0]
    # mean 0.4 x 0.1; the sd 0.1 is kept: a Beta of mean 0.04 carries up to sqrt(0.04 x 0.96) = 0.196
    moved = low.comparison.journey.prior("long_term_contract")
    assert (moved.mean, moved.sd, moved.kind) == (pytest.approx(0.04), 0.1, "probability")
    assert low.journey == contract.journey
    # a factor on every cost item's amounts, nothing else of the item
    cheap = variants["cost_amounts"][0]
    for item, base in zip(cheap.costs, contract.costs):
        assert [b.amount for b in item.bands] == pytest.approx([0.1 * b.amount for b in base.bands], rel=1e-15)
        assert replace(item, bands=base.bands) == base
    assert repr(colour_kitchen) == before
    with pytest.raises(ValueError, match="shift"):
        assumptions(contract, shift=1.5)


def test_a_rate_parameter_is_scaled_as_a_gamma():
    """A rate parameter (Gamma prior) moves by the shift with its sd kept, never clipped at 1."""
    from sibsim.sensitivity import _scaled_prior

    def moved(factor, scale_sd):
        p = _scaled_prior(Prior(1.5, 0.5, kind="rate"), factor, scale_sd)
        return p.kind, round(p.mean, 12), round(p.sd, 12)

    assert moved(1.2, False) == ("rate", 1.8, 0.5)
    assert moved(0.0, False) == ("rate", 0.0, 0.0)  # a rate of 0 is known
    assert moved(2.0, True) == ("rate", 3.0, 1.0)   # above 1: a rate is not a probability


def test_plot_tornado_draws_on_given_axes(torn):
    fig, ax = plt.subplots()
    assert plot_tornado(torn, "investor_moic", ax=ax) is fig
    assert len(ax.get_yticklabels()) == (torn["measure"] == "investor_moic").sum()
    plt.close(fig)
    with pytest.raises(ValueError, match="not in the tornado"):
        plot_tornado(torn, "no_such_measure")


def test_break_even_reproduces_moic_one(colour_kitchen):
    even = break_even(colour_kitchen, "investor", n_paths=N, seed=5)
    assert even["status"] == "ok" and 0 < even["factor"] < 2
    assert np.isfinite([even["factor_se"], even["primary_share_se"]]).all()
    assert even["factor_se"] > 0 and 0 < even["primary_share"] < 1
    # A less successful programme reaches the primary outcome less often.
    assert (even["factor"] < 1) == (even["primary_share"] < even["base_primary_share"])
    # Re-simulated independently at that factor, investors get their capital back on average.
    check = simulate(success_variant(colour_kitchen, even["factor"]), n_paths=1500, seed=123)
    moic = check.summary().loc["expected_moic"]
    called = check.paths["capital_called"].mean()
    tolerance = 4 * np.hypot(moic["std_error"], even["balance_se"] / called)
    assert abs(moic["estimate"] - 1) < tolerance
    # The payer (who keeps the savings above the capped payments) breaks even at a lower success.
    payer = break_even(colour_kitchen, "payer", n_paths=N, seed=5)
    assert payer["status"] == "ok" and payer["factor"] < even["factor"]


def test_success_variant_scales_the_success_parameters_only(colour_kitchen):
    # The scenario names them (analysis.success_parameters): the diploma and job-finding probabilities.
    assert colour_kitchen.success_parameter_names == ("diploma", "job_with_diploma", "job_without_diploma")
    # Default: the parameters of the exits into the primary outcome's states (the jobs); the branch to a
    # long-term job fires inside them, so it moves nobody into them and is left out.
    default = replace(colour_kitchen, success_parameters=())
    assert default.success_parameter_names == ("job_without_diploma", "job_with_diploma")
    more = success_variant(colour_kitchen, 1.5)
    for name, prior in colour_kitchen.journey.parameters:
        moved = more.journey.prior(name)
        if name in colour_kitchen.success_parameter_names:
            assert (moved.mean, moved.sd) == (pytest.approx(1.5 * prior.mean), pytest.approx(1.5 * prior.sd))
        else:
            assert moved == prior, name
    assert more.comparison == colour_kitchen.comparison
    assert success_variant(colour_kitchen, 1.0) is colour_kitchen
    # analysis.success_parameters names them instead
    chosen = replace(colour_kitchen, success_parameters=("diploma",))
    assert chosen.success_parameter_names == ("diploma",)
    assert success_variant(chosen, 0.5).journey.prior("diploma").mean == pytest.approx(0.0525)
    assert success_variant(chosen, 0.5).journey.prior("job_with_diploma") == chosen.journey.prior("job_with_diploma")


def test_break_even_outside_the_bracket_says_so(colour_kitchen):
    payer = colour_kitchen.payer
    cheap = replace(colour_kitchen, payer=replace(payer, rate_card=tuple((k, v / 10) for k, v in payer.rate_card)))
    never = break_even(cheap, "investor", n_paths=300, seed=1)
    assert never["status"] == "no_root_in_bracket" and "falls short" in never["message"]
    assert np.isnan(never["factor"]) and never["balance_at_high"] < 0
    always = break_even(colour_kitchen, "investor", n_paths=300, seed=1, bracket=(1.5, 2.0))
    assert always["status"] == "no_root_in_bracket" and "already breaks even" in always["message"]
    with pytest.raises(ValueError, match="target"):
        break_even(colour_kitchen, "provider")


@pytest.fixture(scope="module")
def sob(colour_kitchen):
    return sobol(colour_kitchen, n_base=512, seed=1, confidence=False)


def test_sobol_indices(sob):
    assert set(sob["measure"]) == {"investor_npv", "investor_moic", "payer_npv"}
    assert len(sob) == 3 * 11  # 7 treated + 4 comparison priors have sd > 0
    assert sob[["first_order", "total_order"]].stack().between(-0.1, 1.1).all()
    assert sob["noise_share"].between(0.02, 0.5).all()
    moic = sob[sob["measure"] == "investor_moic"].set_index("parameter")["first_order"]
    # Checked over seeds and n_base 256-1024: for Colour Kitchen the MOIC is driven first by the
    # COUNTERFACTUAL job rate (prior 1 %/month, sd 0.4 %: 40 % relative uncertainty, and every net
    # outcome paid is measured against it), then by the treated job-with-diploma (30 %) and diploma
    # (29 %) rates.  The tornado, which moves every mean by the same 20 % whatever its prior spread,
    # ranks the treated job probability above the comparison one.
    assert moic.idxmax() == "comparison.job_without_diploma"
    treated = moic[moic.index.str.startswith("treated.")]
    assert treated.idxmax() in ("treated.job_with_diploma", "treated.diploma")


def test_sobol_confidence_intervals(colour_kitchen):
    frame = sobol(colour_kitchen, n_base=64, seed=3, measures=("investor_moic",))
    assert (frame["first_order_low"] <= frame["first_order_high"]).all()
    assert (frame["total_order_low"] <= frame["total_order_high"]).all()


def test_sobol_needs_uncertain_priors(colour_kitchen):
    def fixed(journey):
        return journey.with_parameters({k: Prior(p.mean, kind=p.kind) for k, p in journey.parameters})
    known = replace(colour_kitchen, journey=fixed(colour_kitchen.journey),
                    comparison=replace(colour_kitchen.comparison, journey=fixed(colour_kitchen.comparison.journey)))
    with pytest.raises(ValueError, match="no uncertain journey probabilities"):
        sobol(known, n_base=64)
    with pytest.raises(ValueError, match="power of 2"):
        sobol(colour_kitchen, n_base=100)


def _cli(argv):
    parser = argparse.ArgumentParser(prog="sibsim")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_cli_writes_every_output(tmp_path, capsys):
    ck, out = SCENARIOS / "utrecht_colour_kitchen.toml", tmp_path / "sens"
    assert _cli(["sensitivity", ck, "--out", out, "--paths", 200, "--seed", 4, "--sobol-base", 64]) == 0
    printed = capsys.readouterr().out
    assert "Break-even" in printed and "investor_moic" in printed
    names = {p.name for p in out.iterdir()}
    assert {"tornado.csv", "sobol.csv", "breakeven.csv", "run.json", "tornado_investor_moic.png",
            "tornado_investor_irr_median.png", "tornado_net_savings.png"} <= names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging directory left behind"
    assert pd.read_csv(out / "breakeven.csv")["target"].tolist() == ["investor", "payer"]
    assert json.loads((out / "run.json").read_text())["command"] == "sensitivity"
    # A `sibsim run` directory of the same scenario is not swapped away without --force.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"sibsim_version": "0.1.0", "scenario_path": str(ck.resolve())}))
    with pytest.raises(OutputError, match="another command"):
        _cli(["sensitivity", ck, "--out", run_dir, "--paths", 50])


def test_success_lowers_the_failure_parameters_by_two_minus_the_factor():
    from sibsim import load_scenario
    from sibsim.sensitivity import success_variant

    pb = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "peterborough.toml")
    rate = pb.journey.prior("reconviction")
    better = success_variant(pb, 1.25).journey.prior("reconviction")
    assert better.mean == pytest.approx(0.75 * rate.mean) and better.sd == pytest.approx(0.75 * rate.sd)
    assert success_variant(pb, 2.5).journey.prior("reconviction").mean == 0.0  # none at all, never negative
    assert success_variant(pb, 0.5).journey.prior("reconviction").mean == pytest.approx(1.5 * rate.mean)
    assert success_variant(pb, 1.25).comparison == pb.comparison
