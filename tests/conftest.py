"""Shared test set-up: floating-point problems raise; the Agg backend; shipped scenarios as fixtures."""

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from hypothesis import settings

matplotlib.use("Agg")
np.seterr(all="raise")

# Property tests draw the same examples on every run (CI is reproducible); set
# HYPOTHESIS_PROFILE=explore to search new random examples while developing.
settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("explore", database=None, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session")
def colour_kitchen():
    from sibsim import load_scenario

    return load_scenario(SCENARIOS / "utrecht_colour_kitchen.toml")
