"""Golden summaries: a fixed seed must keep giving the same numbers (Tax-Calculator style)."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("golden_update", HERE / "golden" / "update.py")
golden = importlib.util.module_from_spec(spec)
spec.loader.exec_module(golden)


@pytest.mark.parametrize("name", sorted(golden.GOLDEN))
def test_golden_summary(name):
    expected = pd.read_csv(HERE / "golden" / f"{name}_summary.csv", index_col="metric")
    actual = golden.golden_summary(name)
    assert list(actual.index) == list(expected.index)
    for column in ("estimate", "std_error"):
        np.testing.assert_allclose(actual[column].to_numpy(float), expected[column].to_numpy(float),
                                   rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"{name}: {column}")
    assert (actual["unit"] == expected["unit"]).all()
