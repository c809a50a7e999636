"""Scenario discovery: which combinations of the uncertain inputs lead to an investor loss or a payer
overpaying (``sibsim discover``), as PRIM boxes read as rules.

The inputs are what each path drew: every uncertain journey parameter of the treated group, every
parameter the comparison group draws on its own (``comparison.<name>``), each common factor's
multiplier and each shock's occurrence (:mod:`sibsim.uncertainty`).  The cases of interest are the
paths where investors lose money (``investor_moic < 1``) or where the payer pays more than it saves
(``net_savings < 0``).  PRIM (the Patient Rule Induction Method, Friedman and Fisher 1999, as in
RAND's sdtoolkit and the EMA Workbench; here the maintained standalone ``PRIM`` package, the
``[discovery]`` extra) peels the input space down to boxes where those cases are dense.

Honest densities.  A box found on some paths looks better on them than it is.  The paths are split
in two halves (even and odd path numbers, a fixed split): PRIM fits on the first, and each box's
P(loss) is reported on the second, with its standard error, next to the share of paths it holds and
the share of all cases it covers.  A box is read off PRIM's peeling trajectory as the densest box
still covering at least ``min_coverage`` of the cases (default one half), then pruned to a rule of
at most three inputs (a restriction that adds less than 2 points of density on the fitted paths is
dropped); up to ``max_boxes`` boxes are found in turn, each on the cases the earlier ones left.

The paths are exactly those of :func:`sibsim.simulate` with the same seed (same blocks, same draws).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .contracts import Contract
from .errors import OutputError
from .metrics import path_frame
from .sweep import block_outcomes, block_plan, path_arrays

TARGETS = {"loss": "investors lose money (multiple below 1)",
           "overpay": "the payer pays more than it saves (net savings below 0)"}


def input_columns(contract: Contract) -> dict[str, str]:
    """The uncertain inputs a path draws, name -> unit (``%/month``, ``%``, ``/month``, ``x``, ``happens``)."""
    branch = {b.probability for b in contract.journey.branches}
    out = {}

    def unit(name, prior):
        return "/month" if prior.kind == "rate" else ("%" if name in branch else "%/month")

    for name, prior in contract.journey.parameters:
        if not prior.is_fixed:
            out[name] = unit(name, prior)
    comparison = contract.comparison
    for name, prior in comparison.journey.parameters:
        if name in comparison.overrides and name not in comparison.shared and not prior.is_fixed:
            out[f"comparison.{name}"] = unit(name, prior)
    for f in contract.uncertainty.factors:
        out[f.name] = "x"
    for s in contract.uncertainty.shocks:
        if s.probability < 1:
            out[s.name] = "happens"
    return out


def sampled(contract: Contract, n_paths: int, seed) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(inputs, paths): what each path drew (:func:`input_columns`) and its ``Results.paths`` row."""
    columns = input_columns(contract)
    inputs, arrays = [], []
    for s, n in block_plan(contract, n_paths, seed):
        outcomes = block_outcomes(contract, s, n)
        arrays.append(path_arrays(contract, outcomes))
        block = {}
        for name in columns:
            if name.startswith("comparison."):
                block[name] = outcomes.comparison.parameters[name.split(".", 1)[1]]
            elif name in outcomes.treated.parameters:
                block[name] = outcomes.treated.parameters[name]
            else:
                block[name] = outcomes.common[name]
        inputs.append(pd.DataFrame(block))
    paths = path_frame({k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]})
    return pd.concat(inputs, ignore_index=True), paths


def cases(paths: pd.DataFrame, target: str) -> np.ndarray:
    """The cases of interest per path (bool)."""
    if target == "loss":
        return (paths["investor_moic"].to_numpy(dtype=float) < 1 - 1e-12)
    if target == "overpay":
        return paths["net_savings"].to_numpy(dtype=float) < 0
    raise ValueError(f"target: one of {', '.join(TARGETS)}, got {target!r}")


@dataclass(frozen=True)
class Box:
    """A PRIM box: limits on some inputs, and how it does on the paths it was not fitted on."""

    limits: tuple[tuple[str, float | None, float | None], ...]   #: (input, low or None, high or None)
    density: float          #: share of cases among the held-out paths in the box (e.g. P(loss) there)
    density_se: float
    mass: float             #: share of held-out paths in the box
    coverage: float         #: share of the held-out cases the box holds
    fitted_density: float   #: the same on the paths it was fitted on (optimistic)
    n_paths: int            #: held-out paths in the box

    def rule(self, units: dict[str, str]) -> str:
        parts = []
        for name, lo, hi in self.limits:
            u = units.get(name, "")
            if u == "happens":
                parts.append(f"{name} {'happens' if lo is not None else 'does not happen'}")  # a 0/1 input: raised floor or lowered ceiling
                continue
            show = (lambda v: f"{100 * v:.2f} {u}") if u in ("%/month", "%") else (
                (lambda v: f"{v:.3f}x") if u == "x" else (lambda v: f"{v:.4g} {u}"))
            if lo is not None and hi is not None:
                parts.append(f"{show(lo)} <= {name} <= {show(hi)}")
            elif lo is not None:
                parts.append(f"{name} > {show(lo)}")
            else:
                parts.append(f"{name} < {show(hi)}")
        return " and ".join(parts) or "every path"


def _members(x: pd.DataFrame, limits) -> np.ndarray:
    inside = np.ones(len(x), dtype=bool)
    for name, lo, hi in limits:
        v = x[name].to_numpy(dtype=float)
        if lo is not None:
            inside &= v >= lo
        if hi is not None:
            inside &= v <= hi
    return inside


def _pick(box, min_coverage: float) -> int:
    """The densest box on the peeling trajectory with coverage >= ``min_coverage``."""
    traj = box.peeling_trajectory
    ok = traj[traj["coverage"] >= min_coverage]
    return int((ok if len(ok) else traj)["density"].idxmax())


def _limits(box, x: pd.DataFrame) -> tuple:
    """Restricted inputs of the selected box: (name, low or None, high or None); a side at the data's
    own extreme is no restriction."""
    out = []
    table = box.limits
    for name in table.index:
        lo, hi = float(table.loc[name, "min"]), float(table.loc[name, "max"])
        low = lo if lo > float(x[name].min()) else None
        high = hi if hi < float(x[name].max()) else None
        if low is not None or high is not None:
            out.append((str(name), low, high))
    return tuple(out)


def _prune(limits: tuple, x: pd.DataFrame, y: np.ndarray, max_inputs: int, tolerance: float) -> tuple:
    """Fewer restrictions, for a rule one can read: drop, one at a time, the restriction whose removal
    costs the least density on the fitted paths, while it costs less than ``tolerance`` (or the rule
    still names more than ``max_inputs`` inputs)."""
    limits = tuple(limits)

    def density(lims):
        inside = _members(x, lims)
        return float(y[inside].mean()) if inside.any() else 0.0

    full = density(limits)
    while len(limits) > 1:
        options = [(density(limits[:k] + limits[k + 1:]), k) for k in range(len(limits))]
        best, k = max(options)
        if len(limits) > max_inputs or full - best < tolerance:
            limits = limits[:k] + limits[k + 1:]
        else:
            break
    return limits


def discover(contract: Contract, n_paths: int = 10_000, seed=None, target: str = "loss", min_coverage: float = 0.5,
             max_boxes: int = 3, data=None, max_inputs: int = 3, tolerance: float = 0.02) -> tuple[list[Box], dict]:
    """PRIM boxes for ``target`` (``loss`` or ``overpay``): (boxes, facts) with facts the base rate,
    paths and inputs (module notes).  ``data``: (inputs, paths) already sampled (:func:`sampled`).
    Each box's rule keeps at most ``max_inputs`` restrictions, dropping those that add less than
    ``tolerance`` of density on the fitted paths (:func:`_prune`)."""
    try:
        import prim
    except ImportError:
        raise OutputError("scenario discovery needs PRIM: pip install 'sibsim[discovery]'") from None
    x, paths = data if data is not None else sampled(contract, n_paths, seed)
    if x.shape[1] == 0:
        raise OutputError(f"{contract.source or 'scenario'}: nothing uncertain to discover: every prior is fixed and "
                          "there are no factors or uncertain shocks")
    y = cases(paths, target)
    fit = np.arange(len(x)) % 2 == 0
    x_fit, y_fit = x[fit].reset_index(drop=True), y[fit]
    x_out, y_out = x[~fit].reset_index(drop=True), y[~fit]
    facts = {"paths": len(x), "base_rate": float(y.mean()), "held_out_base_rate": float(y_out.mean()),
             "inputs": list(x.columns), "target": target}
    boxes: list[Box] = []
    if y_fit.sum() < 2 or y_out.sum() < 1:
        return boxes, facts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package's pandas future warnings, not the user's business
        p = prim.Prim(x_fit, y_fit.astype(float), threshold=0.5, threshold_type=">", mass_min=0.05)
        for _ in range(max_boxes):
            try:
                found = p.find_box()
            except Exception:  # the package raises its own errors when nothing is left to peel
                break
            if found is None:
                break
            i = _pick(found, min_coverage)
            found.select(i)
            limits = _prune(_limits(found, x_fit), x_fit, y_fit, max_inputs, tolerance)
            if not limits:
                break
            inside = _members(x_out, limits)
            n_in = int(inside.sum())
            dens = float(y_out[inside].mean()) if n_in else float("nan")
            se = float(np.sqrt(dens * (1 - dens) / n_in)) if n_in else float("nan")
            fitted = float(y_fit[_members(x_fit, limits)].mean())
            boxes.append(Box(limits, dens, se, n_in / len(x_out), float(y_out[inside].sum() / max(y_out.sum(), 1)),
                             fitted, n_in))
    return boxes, facts


def boxes_table(boxes: list[Box], units: dict[str, str]) -> pd.DataFrame:
    """One row per box: the rule, the held-out density (with s.e.), mass and coverage, the fitted density."""
    return pd.DataFrame([{"box": k + 1, "rule": b.rule(units), "density": b.density, "density_se": b.density_se,
                          "mass": b.mass, "coverage": b.coverage, "fitted_density": b.fitted_density,
                          "held_out_paths_in_box": b.n_paths} for k, b in enumerate(boxes)])
