"""Golden outputs: every shipped scenario keeps giving the same numbers (Tax-Calculator style).

After an intended model change, regenerate with ``python tests/golden/update.py`` and explain the
change in the commit message.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("golden_update", HERE / "golden" / "update.py")
golden = importlib.util.module_from_spec(spec)
spec.loader.exec_module(golden)


def test_every_shipped_scenario_has_a_golden():
    shipped = {p.stem for p in golden.SCENARIOS.glob("*.toml")}
    assert shipped == set(golden.GOLDEN)
    observed = {p.stem for p in (golden.SCENARIOS / "observed").glob("*.toml")}
    assert observed == set(golden.SETTLEMENTS)


@pytest.mark.parametrize("name", sorted(golden.GOLDEN))
def test_golden_summary(name):
    expected = pd.read_csv(HERE / "golden" / f"{name}_summary.csv", index_col="metric")
    actual = golden.golden_summary(name)
    assert list(actual.index) == list(expected.index)
    for column in ("estimate", "std_error"):
        np.testing.assert_allclose(actual[column].to_numpy(float), expected[column].to_numpy(float),
                                   rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"{name}: {column}")
    assert (actual["unit"] == expected["unit"]).all()


@pytest.mark.parametrize("name", sorted(golden.SETTLEMENTS))
def test_golden_settlement(name):
    result = golden.golden_settlement(name)
    for part in ("schedule", "investors"):
        expected = pd.read_csv(HERE / "golden" / f"{name}_{part}.csv", index_col=0)
        actual = getattr(result, part)
        assert list(actual.columns) == list(expected.columns)
        assert [str(i) for i in actual.index] == [str(i) for i in expected.index]
        numeric = actual.select_dtypes("number").columns
        np.testing.assert_allclose(actual[numeric].to_numpy(float), expected[numeric].to_numpy(float),
                                   rtol=1e-9, atol=1e-6, equal_nan=True, err_msg=f"{name}: {part}")


#: Scenarios whose journey did not change when the hard-coded chain became a state machine: their
#: summaries before (tests/golden/before_journey/, old engine) and now must agree within Monte Carlo error.
SAME_JOURNEY = ("utrecht_colour_kitchen", "utrecht_colour_kitchen_guarantee", "rotterdam_buzinezzclub")
Z_COMBINED = 4.0


def agreement(before: pd.DataFrame, now: pd.DataFrame) -> pd.DataFrame:
    """Each headline estimate now against before: the difference in combined standard errors.

    Both runs have Monte Carlo error; an exact figure (SE 0, e.g. the capital called) must agree to
    rounding (1e-9 relative)."""
    both = before[["estimate", "std_error"]].join(now[["estimate", "std_error"]], how="inner",
                                                  lsuffix="_before", rsuffix="_now")
    diff = (both["estimate_now"] - both["estimate_before"]).abs()
    se = np.hypot(both["std_error_before"], both["std_error_now"])
    rounding = 1e-9 * np.maximum(1.0, both[["estimate_before", "estimate_now"]].abs().max(axis=1))
    both["ok"] = (diff <= Z_COMBINED * se + rounding) | (both["estimate_now"].isna() & both["estimate_before"].isna())
    return both


@pytest.mark.parametrize("name", SAME_JOURNEY)
def test_the_journey_as_data_reproduces_the_hard_coded_chain(name):
    before = pd.read_csv(HERE / "golden" / "before_journey" / f"{name}_summary.csv", index_col="metric")
    now = pd.read_csv(HERE / "golden" / f"{name}_summary.csv", index_col="metric")
    both = agreement(before, now)
    # Rotterdam now defines only the outcomes it pays for or reports (no diploma, first job or long-term
    # contract rows: the old chain counted them for every deal); every other metric is still there.
    dropped = {f"{g}_{o}" for g in ("treated", "comparison") for o in ("diploma", "job_start", "long_term_contract")}
    missing = set(before.index) - set(now.index)
    assert missing <= (dropped if name == "rotterdam_buzinezzclub" else set()), missing
    assert both["ok"].all(), both[~both["ok"]].to_string()


def test_the_agreement_check_has_power():
    """A model that is off by a little (payments, the sustained-job share and the multiple 3 % higher) fails it."""
    before = pd.read_csv(HERE / "golden" / "before_journey" / "utrecht_colour_kitchen_summary.csv",
                         index_col="metric")
    biased = before.copy()
    moved = ["expected_outcome_payments", "treated_job_sustained", "expected_moic"]
    for metric in moved:
        biased.loc[metric, "estimate"] *= 1.03
    both = agreement(before, biased)
    assert not both.loc[moved, "ok"].any()
    assert both.drop(index=moved)["ok"].all()
