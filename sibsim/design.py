"""Outcome pricing (``sibsim design``): the contract terms that meet what payer and investors negotiate.

A design search is a sweep (:mod:`sibsim.sweep`: every combination of candidate values of the
searched fields, on common random numbers) read against *constraints* on the sweep's metrics,
e.g. the defaults

* ``probability_of_loss <= 0.20`` (investors),
* ``expected_irr >= 0.04`` (investors; total losses count at -100 %),
* ``probability_pays_more_than_saves <= 0.10`` (the payer),

and an *objective*, by default ``maximise expected_net_savings`` (the payer's).  The chosen design is
the feasible candidate with the best objective estimate.  Feasibility is judged on the estimates;
the table gives each constraint's margin in Monte Carlo standard errors, so a candidate within a
couple of errors of a bound can be rerun with more paths before it is signed.  Because every
candidate is simulated on the same random numbers, differences between candidates are not noise
of their own: the ordering of two candidates is much surer than either estimate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ScenarioError
from .sweep import METRICS, Axis, sweep

#: The constraints of the issue that defined this command (investors' and payer's usual terms).
DEFAULT_CONSTRAINTS = ("probability_of_loss<=0.20", "expected_irr>=0.04", "probability_pays_more_than_saves<=0.10")
DEFAULT_OBJECTIVE = "max:expected_net_savings"


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str      # "<=" or ">="
    bound: float

    def met(self, estimate: float) -> bool:
        return bool(estimate <= self.bound) if self.op == "<=" else bool(estimate >= self.bound)

    def margin(self, estimate: float, se: float) -> float:
        """How many standard errors the estimate is inside the bound (negative: outside)."""
        gap = self.bound - estimate if self.op == "<=" else estimate - self.bound
        return gap / se if se > 0 else (np.inf if gap >= 0 else -np.inf)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_constraint(text: str) -> Constraint:
    """``METRIC<=BOUND`` or ``METRIC>=BOUND``; one-line :class:`ScenarioError` otherwise."""
    m = re.fullmatch(r"\s*([a-z_]+)\s*(<=|>=)\s*(\S+)\s*", text)
    if not m:
        raise ScenarioError(f"--constraint {text}: must be METRIC<=BOUND or METRIC>=BOUND "
                            f"(metrics: {', '.join(METRICS)})")
    metric, op, bound = m.groups()
    if metric not in METRICS:
        raise ScenarioError(f"--constraint {text}: unknown metric {metric!r} (metrics: {', '.join(METRICS)})")
    try:
        b = float(bound)
    except ValueError:
        raise ScenarioError(f"--constraint {text}: the bound must be a number, got {bound!r}") from None
    if not np.isfinite(b):
        raise ScenarioError(f"--constraint {text}: the bound must be finite, got {bound!r}")
    return Constraint(metric, op, b)


def parse_objective(text: str) -> tuple[str, int]:
    """``max:METRIC`` or ``min:METRIC`` -> (metric, +1 or -1)."""
    direction, _, metric = text.partition(":")
    if direction not in ("max", "min") or metric not in METRICS:
        raise ScenarioError(f"--objective {text}: must be max:METRIC or min:METRIC (metrics: {', '.join(METRICS)})")
    return metric, (1 if direction == "max" else -1)


@dataclass(frozen=True)
class Design:
    """A design search's result."""

    table: pd.DataFrame          #: one row per candidate (sweep table, plus feasibility and margins)
    chosen: int | None           #: row of the chosen candidate; None when none is feasible
    axes: tuple[Axis, ...]
    constraints: tuple[Constraint, ...]
    objective: tuple[str, int]
    variants: tuple
    sets: tuple[str, ...] = ()

    @property
    def chosen_contract(self):
        return None if self.chosen is None else self.variants[self.chosen].contract

    @property
    def chosen_values(self) -> dict[str, str]:
        return {} if self.chosen is None else dict(zip((a.field for a in self.axes), self.variants[self.chosen].values))


def design(scenario: str | Path, axes: list[Axis], constraints=DEFAULT_CONSTRAINTS, objective=DEFAULT_OBJECTIVE,
           n_paths: int = 2000, seed=None, runner=None, sets=()) -> Design:
    """Search the axes' combinations for the feasible one with the best objective (module notes).

    ``sets``: ``FIELD=VALUE`` changes made to every candidate first (as ``--set``)."""
    cons = tuple(c if isinstance(c, Constraint) else parse_constraint(c) for c in constraints)
    obj = objective if isinstance(objective, tuple) else parse_objective(objective)
    table, vs = sweep(scenario, axes, n_paths, seed, runner, sets)
    feasible = table["valid"].to_numpy(dtype=bool).copy()
    for c in cons:
        est, se = table[c.metric].to_numpy(float), table[f"{c.metric}_se"].to_numpy(float)
        met = np.array([c.met(e) if np.isfinite(e) else False for e in est])
        table[f"meets: {c}"] = met
        table[f"margin in s.e.: {c}"] = [c.margin(e, s) if np.isfinite(e) else np.nan for e, s in zip(est, se)]
        feasible &= met
    table["feasible"] = feasible
    metric, sign = obj
    score = np.where(feasible, sign * table[metric].to_numpy(float), -np.inf)
    chosen = int(np.argmax(score)) if feasible.any() else None
    table["chosen"] = False
    if chosen is not None:
        table.loc[chosen, "chosen"] = True
    return Design(table, chosen, tuple(axes), cons, obj, tuple(vs), tuple(sets))


def pareto(table: pd.DataFrame, x: str, y: str) -> np.ndarray:
    """Rows on the frontier of maximising both ``x`` and ``y`` among valid rows (no row better in both)."""
    ok = table["valid"].to_numpy(dtype=bool) & np.isfinite(table[x].to_numpy(float)) & np.isfinite(table[y].to_numpy(float))
    xs, ys = table[x].to_numpy(float), table[y].to_numpy(float)
    front = []
    for i in np.flatnonzero(ok):
        dominated = np.any(ok & (xs >= xs[i]) & (ys >= ys[i]) & ((xs > xs[i]) | (ys > ys[i])))
        if not dominated:
            front.append(i)
    return np.array(sorted(front, key=lambda i: xs[i]), dtype=int)


def frontier_figure(result: Design, title: str = "", currency: str = "EUR"):
    """The trade-off: the payer's expected net savings against the investors' expected IRR, every
    candidate, the feasible ones, the frontier and the chosen design."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    t = result.table
    valid = t["valid"].to_numpy(dtype=bool)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    x, y = t["expected_net_savings"].to_numpy(float), t["expected_irr"].to_numpy(float)
    feas = t["feasible"].to_numpy(dtype=bool)
    ax.scatter(x[valid & ~feas], y[valid & ~feas], s=18, color="#bbbbbb", label="fails a constraint")
    ax.scatter(x[feas], y[feas], s=22, color="#2c7fb8", label="meets every constraint")
    front = pareto(t, "expected_net_savings", "expected_irr")
    if front.size > 1:
        ax.plot(x[front], y[front], color="#2c7fb8", lw=1, alpha=0.6, label="frontier (no candidate better in both)")
    if result.chosen is not None:
        ax.scatter([x[result.chosen]], [y[result.chosen]], s=140, marker="*", color="#c0392b", zorder=5,
                   label="chosen design")
    for c in result.constraints:
        if c.metric == "expected_irr":
            ax.axhline(c.bound, color="black", ls=":", lw=1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{currency} {v / 1000:,.0f}k"))
    ax.set(xlabel="payer's expected net savings", ylabel="investors' expected IRR (total loss = -100 %)",
           title=title or "Design search: payer savings against investor return")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def chosen_scenario_text(scenario: str | Path, result: Design) -> str:
    """The chosen design as a complete scenario file (its base's terms with the chosen values)."""
    from .scenario import _read_document
    from .toml_text import dumps
    from .whatif import apply_set

    if result.chosen is None:
        raise ValueError("no feasible design: nothing to write")
    path = Path(scenario)
    doc = _read_document(path)
    values = result.chosen_values
    for text in result.sets:
        field, _, value = text.partition("=")
        apply_set(doc, field.strip(), value.strip(), str(path))
    for field, value in values.items():
        apply_set(doc, field, value, str(path))
    meta = doc.setdefault("meta", {})
    chosen = ", ".join(f"{f} = {v}" for f, v in values.items())
    meta["title"] = f"{meta.get('title', path.stem)}: design ({chosen})"
    meta["assumptions"] = list(meta.get("assumptions", [])) + [
        f"Terms chosen by sibsim design: {chosen}; constraints {'; '.join(map(str, result.constraints))}; "
        f"objective {'maximise' if result.objective[1] > 0 else 'minimise'} {result.objective[0]}"]
    header = (f"# Written by sibsim design from {path.name}: the candidate meeting every constraint with the best\n"
              f"# objective. Chosen: {chosen}. Everything else is the base scenario's (comments not kept).\n")
    return header + dumps(doc)


def reads_back(text: str, result: Design) -> bool:
    """Whether the written scenario ``text`` loads to the chosen contract (its title aside, which names
    the design)."""
    import dataclasses

    from .scenario import contract_from_dict, parse_toml

    back = contract_from_dict(parse_toml(text, "design.toml"), "design.toml")
    return dataclasses.replace(back, title=result.chosen_contract.title) == result.chosen_contract
