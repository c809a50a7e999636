"""sibsim: Monte Carlo simulation of Social Impact Bonds.

Data flows one way::

    scenario.toml -> load_scenario -> Contract -> simulate -> Outcomes
        -> settle -> Cashflows -> metrics, plots, report

>>> from sibsim import load_scenario, simulate
>>> contract = load_scenario("scenarios/utrecht_colour_kitchen.toml")  # doctest: +SKIP
>>> res = simulate(contract, n_paths=10_000, seed=2015)                 # doctest: +SKIP
>>> res.summary()                                                       # doctest: +SKIP
"""

from .contracts import Contract
from .errors import InsufficientMemoryError, OutputError, ScenarioError
from .observed import load_observed
from .scenario import load_scenario
from .settlement import Settlement, settle
from .simulation import simulate

__all__ = ["Contract", "InsufficientMemoryError", "OutputError", "ScenarioError", "Settlement",
           "load_observed", "load_scenario", "settle", "simulate"]
__version__ = "0.1.0"
