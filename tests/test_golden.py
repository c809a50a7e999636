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
