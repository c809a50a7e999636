"""Shared test set-up: floating-point problems raise; the Agg backend; shipped scenarios as fixtures."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
np.seterr(all="raise")

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session")
def colour_kitchen():
    from sibsim import load_scenario

    return load_scenario(SCENARIOS / "utrecht_colour_kitchen.toml")
