"""Dask scale-out (sibsim.distributed): a 2-worker local cluster gives exactly the serial numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from sibsim.distributed import DaskRunner, block_runner, deal_runner, runner_for  # noqa: E402
from sibsim.portfolio import diversification  # noqa: E402
from sibsim.scenario_portfolio import load_portfolio  # noqa: E402
from sibsim.sweep import evaluate, parse_axis, sweep, variants  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CK = ROOT / "scenarios" / "utrecht_colour_kitchen.toml"


@pytest.fixture(scope="module")
def dask():
    with DaskRunner("local", n_workers=2) as runner:
        assert len(runner.client.scheduler_info()["workers"]) == 2
        yield runner


def test_a_sweep_on_two_workers_is_the_serial_sweep_bit_for_bit(dask):
    axes = [parse_axis("payer.rate_card.diploma=1500,2500"), parse_axis("journey.parameters.relapse.mean=0.035,0.05")]
    serial, _ = sweep(CK, axes, 2500, seed=8)
    parallel, _ = sweep(CK, axes, 2500, seed=8, runner=block_runner(dask))
    cols = [c for c in serial.columns if c != "problem"]
    assert serial[cols].equals(parallel[cols])
    contracts = [v.contract for v in variants(CK, axes)]
    for a, b in zip(evaluate(contracts, 2500, 8), evaluate(contracts, 2500, 8, runner=block_runner(dask))):
        assert a.equals(b)


def test_a_portfolio_on_two_workers_is_the_serial_portfolio_bit_for_bit(dask):
    p = load_portfolio(ROOT / "scenarios" / "portfolios" / "start_foundation_employment.toml")
    t1, (a1, b1) = diversification(p, 1500, seed=2)
    t2, (a2, b2) = diversification(p, 1500, seed=2, runner=deal_runner(dask))
    assert t1.equals(t2)
    for x, y in ((a1, a2), (b1, b2)):
        np.testing.assert_array_equal(x.called, y.called)
        np.testing.assert_array_equal(x.received, y.received)


def test_no_scheduler_runs_here_and_a_bad_address_is_one_line():
    from sibsim.errors import OutputError

    with runner_for("none") as nothing:
        assert nothing is None
    with runner_for(None) as default:  # Dask installed: a local cluster by default
        assert isinstance(default, DaskRunner)
    with pytest.raises(OutputError) as info:
        DaskRunner("tcp://127.0.0.1:9")
    assert "cannot reach the scheduler" in str(info.value) and "\n" not in str(info.value)


def test_sobol_on_two_workers_is_the_serial_sobol(dask):
    from sibsim.scenario import load_scenario
    from sibsim.sensitivity import sobol

    c = load_scenario(CK)
    serial = sobol(c, n_base=32, seed=4, measures=("investor_moic",), confidence=False)
    parallel = sobol(c, n_base=32, seed=4, measures=("investor_moic",), confidence=False, runner=dask.map)
    assert serial.equals(parallel)
