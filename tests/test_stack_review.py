"""The reviewer's findings on the capital-stack engine, one hand-computed case each.

Each test is a small deal built like those of :mod:`tests.test_stack_deals` (a one-cohort contract
read by the loader, EUR 1 per treated ``job_start``, the stack set with ``dataclasses.replace``) and
settled on hand-made outcomes.  The expected numbers are derived in the comments from the rules of
the :mod:`sibsim.waterfall` docstring, :mod:`sibsim.stack`, ``docs/model.md`` section 2 and the
capital-stack section of ``docs/scenario.md``; every settlement also checks the ledger identities of
the :mod:`sibsim.cashflows` docstring (:func:`tests.test_stack_deals.check_identities`).

Findings: (1) ``to_cap`` paid an uncapped tranche that had drawn nothing; (2) a termination
guarantee paid a loss that later cash repaid again; (3) recycling released the vehicle a month
before a termination; (4) withheld money was attributed to the payers by cumulative contributions;
(5) a step cap limited the base, not the payment; (6) a non-paying guarantee between two ``share``
guarantees did not break their run; (7) the termination list never saw lagged payments; (8)
observed settlement applied a possible external stop as certain; (9) ``to_cap`` with ``pro_rata``
shares pro rata to capital drawn (documented); (10) memo wording; (11) the loader refused steps after
a split to a capped tranche.
"""

from __future__ import annotations

import html
import tomllib
from datetime import date

import numpy as np
import pytest

from sibsim import load_scenario, report, simulate
from sibsim.contracts import DrawOrder, ExternalStop, Guarantee, Investor, Payer, Step, Waterfall
from sibsim.errors import ScenarioError
from sibsim.observed import Observed
from sibsim.scenario import contract_from_dict
from sibsim.settlement import settle as settle_observed

from .conftest import ROOT
from .test_stack_deals import base_contract, cents, check_identities, monthly, outcomes_for, settled, with_payer, with_stack

STACK = ROOT / "tests" / "fixtures" / "valid_stack.toml"


# ---------------------------------------------------------------------------------------
# 1. to_cap: a tranche without a cap that has drawn nothing takes nothing (nor does a split)
# ---------------------------------------------------------------------------------------
def test_1_an_uncapped_tranche_that_drew_nothing_takes_nothing():
    # A and B, 100,000 each, no return cap, equal seniority; draw order [[A], [B]]; delivery 100,000
    # at month 0: A draws it all, B nothing.  150,000 paid at month 6.
    # Default waterfall (one to_cap step, pro rata to capital drawn within a seniority): B has no
    # capital to be repaid and no return to earn, so A takes all 150,000, B 0.
    c = base_contract(months=(6, 12), budget={0: 100_000.0})
    c = with_stack(c, investors=(Investor("A", 100_000.0), Investor("B", 100_000.0)),
                   draw_order=DrawOrder((("A",), ("B",))))
    T = c.horizon_months
    cash = settled(c, outcomes_for(c, [{5: 150_000}]))
    cents(cash.capital_calls[0], [monthly(T, {0: 100_000}), np.zeros(T)])
    cents(cash.distributions[0], [monthly(T, {6: 150_000}), np.zeros(T)])
    cents(cash.principal_repaid[0], [monthly(T, {6: 100_000}), np.zeros(T)])
    cents(cash.withheld_by_payer, 0.0)
    # A split gives a tranche that has drawn nothing nothing either.  Split A 50 %, B 50 %, then
    # to_cap to A: the split pays A 75,000 and B nothing (no claim), so B's 75,000 stays on offer
    # and the next step pays it to A: A 150,000 again, B 0, nothing withheld.
    c = with_stack(c, waterfall_terms=Waterfall((Step("split", shares=(("A", 0.5), ("B", 0.5))),
                                                 Step("to_cap", ("A",)))))
    cash = settled(c, outcomes_for(c, [{5: 150_000}]))
    cents(cash.distributions[0], [monthly(T, {6: 150_000}), np.zeros(T)])
    cents(cash.withheld_by_payer, 0.0)
    cents(cash.outcome_payments[0], monthly(T, {6: 150_000}))
