"""Re-forecast from a state census: loader rules at their boundaries, the engine against the reference
simulator carried on from the same census (with its power), and the past kept to the cent."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sibsim import engine, load_scenario, reference
from sibsim.census import load_census
from sibsim.errors import ScenarioError
from sibsim.montecarlo import start_distributions
from sibsim.reforecast import reforecast
from sibsim.settlement import settle

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "utrecht_colour_kitchen.toml"
STANDING = ROOT / "scenarios" / "standing"
CENSUS = STANDING / "utrecht_colour_kitchen_month24.toml"
OBSERVED = STANDING / "utrecht_colour_kitchen_month24_observed.toml"


@pytest.fixture(scope="module")
def contract():
    return load_scenario(SCENARIO)


@pytest.fixture(scope="module")
def census(contract):
    return load_census(CENSUS, contract)


def _edited(tmp_path, old, new, count=1):
    """A copy of the shipped census (and its observed counts) with one edit; the file's path."""
    shutil.copy(OBSERVED, tmp_path / OBSERVED.name)
    shutil.copy(SCENARIO, tmp_path / "scenario.toml")
    text = CENSUS.read_text().replace('scenario = "../utrecht_colour_kitchen.toml"', 'scenario = "scenario.toml"')
    assert old in text
    path = tmp_path / "census.toml"
    path.write_text(text.replace(old, new, count))
    return path


def _problems(path, contract):
    with pytest.raises(ScenarioError) as err:
        load_census(path, contract)
    return str(err.value)


def test_shipped_census_counts_everyone(contract, census):
    for group, sizes in (("treated", [c.size for c in contract.cohorts]), ("comparison", contract.comparison_sizes)):
        for c, cohort in enumerate(contract.cohorts):
            held = sum(r.count for r in census.rows(group) if r.cohort == c)
            assert held == (sizes[c] if cohort.intake_month < 24 else 0)


def test_months_at_the_time_limit_boundary(tmp_path, contract):
    """relapsed has a time limit of 1 month: arriving in it (0 months, the example) is accepted, 1 month is not
    (at the limit the participant has moved on)."""
    text = CENSUS.read_text()
    block = next(b for b in text.split("[[census]]") if 'state = "relapsed"' in b and "months = 0\n" in b)
    at_limit = re.sub(r'arrived_from = "[a-z_]+"\n', "", block.replace("months = 0\n", "months = 1\n"))
    msg = _problems(_edited(tmp_path, block, at_limit), contract)
    assert "months: must be below relapsed's time limit of 1 months" in msg and "got 1" in msg


def test_rows_must_hold_the_cohort(tmp_path, contract):
    text = CENSUS.read_text()
    block = next(b for b in text.split("[[census]]") if "count = 1\n" in b and 'group = "treated"' in b)
    msg = _problems(_edited(tmp_path, block, block.replace("count = 1\n", "count = 2\n")), contract)
    assert re.search(r"treated cohort \d+: rows hold \d+ participants, the cohort has 21", msg)
    msg = _problems(_edited(tmp_path, block, block.replace("count = 1\n", "count = 0\n")), contract)
    assert "count: must be a whole number >= 1, got 0" in msg


def test_month_must_be_read(tmp_path, contract):
    msg = _problems(_edited(tmp_path, "month = 24\n", "month = 23\n"), contract)
    assert "meta.month: must be a month the contract reads counts at (12, 24, 36, 48), got 23" in msg


def test_arrival_needs_its_origin(tmp_path, contract):
    text = CENSUS.read_text()
    block = next(b for b in text.split("[[census]]") if "arrived_from" in b)
    bare = re.sub(r'arrived_from = "[a-z_]+"\n', "", block)
    assert "arrived_from: required with months = 0" in _problems(_edited(tmp_path, block, bare), contract)
    later = block.replace("months = 0\n", "months = 1\n")
    assert "arrived_from: only with months = 0" in _problems(_edited(tmp_path, block, later), contract)


def test_already_agrees_with_the_observed_counts(tmp_path, contract):
    text = CENSUS.read_text()
    block = next(b for b in text.split("[[census]]") if 'state = "training"' in b and "already" not in b
                 and 'group = "treated"' in b)
    more = block.rstrip("\n") + '\nalready = ["diploma"]\n\n'
    msg = _problems(_edited(tmp_path, block, more), contract)
    assert "participants have diploma in already, the observed count at month 24 is" in msg


def test_a_run_is_required_where_the_state_hides_it(tmp_path, contract):
    text = CENSUS.read_text()
    block = next(b for b in text.split("[[census]]") if 'state = "long_term_job' in b and "months = 0" not in b)
    bare = re.sub(r"runs = \[.*\]\n", "", block)
    msg = _problems(_edited(tmp_path, block, bare), contract)
    assert "runs: required for [" in msg and "can be entered from another state of that set" in msg


def _engine_and_reference(contract, rows, n=300, seed=7):
    journey, measures = contract.journey, contract.measures
    params = engine.draw_parameters(journey, np.random.default_rng(seed), n)
    intake = np.array([c.intake_month for c in contract.cohorts])
    sizes = np.array([c.size for c in contract.cohorts])
    starts, T = start_distributions(contract), contract.horizon_months
    e = engine.simulate_group(journey, measures, params, intake, sizes, starts, T, np.random.default_rng(seed + 1),
                              census=(24, rows))
    r = reference.simulate_group_reference(journey, measures, params, intake, sizes, starts, T,
                                           np.random.default_rng(seed + 2), census=(24, rows))
    return e, r


def _z(e, r, j):
    """z statistic of the difference of mean totals of measure j (paired on the same parameters)."""
    d = e[:, :, j].sum(axis=(1, 2)).astype(float) - r[:, :, j].sum(axis=(1, 2))
    return d.mean() / (d.std(ddof=1) / np.sqrt(d.size))


def test_engine_agrees_with_reference_from_the_census(contract, census):
    e, r = _engine_and_reference(contract, census.treated)
    assert not e[..., :24].any() and not r[..., :24].any()  # nothing before the census is simulated
    for j, m in enumerate(contract.measures):
        assert abs(_z(e, r, j)) < 4.0, m.name


def test_agreement_test_has_power(contract, census):
    """A biased engine that forgets what the participants already had (counting a first job again on
    re-entry) must be caught by the same test."""
    import dataclasses

    forgetful = tuple(dataclasses.replace(r, already=()) for r in census.treated)
    e, _ = _engine_and_reference(contract, forgetful, seed=7)
    _, r = _engine_and_reference(contract, census.treated, seed=7)
    names = [m.name for m in contract.measures]
    assert abs(_z(e, r, names.index("job_start"))) > 4.0


def test_past_is_kept_to_the_cent(contract, census):
    results = reforecast(contract, census, n_paths=200, seed=3)
    settled = settle(contract, OBSERVED).schedule["outcome_payments"]
    ledgers = results.expected_ledgers["outcome_payments"]
    for month in range(28):  # payments of the measurements at months 12 and 24 (paid at 15 and 27)
        assert ledgers.loc[month] == pytest.approx(float(settled.get(month, 0.0)), abs=0.005)
    budget = results.budget()
    first = budget[(budget.item == "outcome payments") & (budget.party == contract.payer.name)].iloc[0]
    assert first.first_month == 24
    assert first.p05 == first.p95 == pytest.approx(float(settled.loc[27]), abs=0.5)  # known on every path


def test_cli_reforecast_writes_budget(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "rf"
    done = subprocess.run([sys.executable, "-m", "sibsim.cli", "reforecast", str(SCENARIO), str(CENSUS), "--paths", "200",
                           "--seed", "1", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "from month 24 on" in done.stdout and (out / "budget.csv").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text(CENSUS.read_text().replace("month = 24\n", "month = 25\n").replace(
        'observed = "', f'observed = "{STANDING}/'))
    done = subprocess.run([sys.executable, "-m", "sibsim.cli", "reforecast", str(SCENARIO), str(bad)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "meta.month: must be a month the contract reads counts at" in done.stderr


def test_past_kept_with_a_modelled_counterfactual(tmp_path):
    """Buzinezzclub (a modelled counterfactual): a census generated from simulated histories, the payments
    settled before the census month the same on every path as `sibsim settle` gives them."""
    from tests.census_tools import write_standing

    shutil.copy(ROOT / "scenarios" / "rotterdam_buzinezzclub.toml", tmp_path / "s.toml")
    contract = load_scenario(tmp_path / "s.toml")
    write_standing(contract, "s.toml", 24, 5, tmp_path / "census.toml", tmp_path / "observed.toml")
    census = load_census(tmp_path / "census.toml", contract)
    assert census.comparison == ()  # nobody to count: the counterfactual is modelled
    results = reforecast(contract, census, n_paths=100, seed=2)
    settled = settle(contract, tmp_path / "observed.toml").schedule["outcome_payments"]
    ledgers = results.expected_ledgers["outcome_payments"]
    paid = [m for m in range(28) if settled.get(m, 0.0)]
    assert paid  # the measurements at months 12, 18 and 24 paid something
    for month in range(28):
        assert ledgers.loc[month] == pytest.approx(float(settled.get(month, 0.0)), abs=0.005)


def test_update_reforecasts_from_the_census(tmp_path):
    import subprocess
    import sys

    shutil.copy(SCENARIO, tmp_path / SCENARIO.name)
    evidence = ROOT / "scenarios" / "evidence" / "utrecht_colour_kitchen_year2.toml"
    done = subprocess.run([sys.executable, "-m", "sibsim.cli", "update", str(tmp_path / SCENARIO.name), str(evidence),
                           "--out", str(tmp_path / "updated.toml"), "--census", str(CENSUS), "--paths", "200"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "From the census at month 24" in done.stdout
    lines = [line for line in done.stdout.splitlines() if line.strip().startswith(("prior ", "posterior "))]
    assert len(lines) == 2 and all("Apr 2017–Dec 2017: 270,000 / 270,000 / 270,000" in line for line in lines)
