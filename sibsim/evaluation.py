"""Evaluation noise: how much payment risk comes from measuring a small comparison group.

The payer pays for treated minus *measured* counterfactual.  With a comparison group
of finite size the measured counterfactual differs from the true one by chance, and
that chance moves payments even when the programme's true effect is known.  We
compare, with common random numbers (same treated journeys), the contract as written
against the same contract measured against the exact expected counterfactual
(``comparison.method = "expected"``: no sampling noise), and against larger groups.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .contracts import Contract
from .simulation import DEFAULT_SEED, simulate

MEASURES = ("outcome_payments", "investor_moic", "net_savings")


def with_comparison(contract: Contract, size_ratio: float | None) -> Contract:
    """The contract measured against a comparison group of ``size_ratio``, or exactly (None)."""
    if size_ratio is None:
        comparison = dataclasses.replace(contract.comparison, method="expected", size_ratio=1.0)
    else:
        comparison = dataclasses.replace(contract.comparison, method="comparison_group", size_ratio=size_ratio)
    return dataclasses.replace(contract, comparison=comparison)


def evaluation_noise(contract: Contract, n_paths: int = 4000, seed: int = DEFAULT_SEED,
                     size_ratios=(0.5, 1.0, 2.0, 5.0), workers=None) -> pd.DataFrame:
    """Spread of payments and returns by comparison-group size, against an exact counterfactual.

    Every design is simulated with the same seed, so each path has the same programme
    parameters and the same treated participants in every design; the paired difference
    ``measured - exact`` on a path is pure measurement noise.

    Returns
    -------
    DataFrame indexed by design (``size_ratio`` comparison members per participant, and the exact
    counterfactual), with for each measure in :data:`MEASURES`: its mean, its standard deviation
    across paths (``sd_``), the standard deviation of the measurement noise (``noise_sd_``) and
    ``noise_share_`` = var(noise) / var(measure): the share of the spread that comes from measuring
    a finite comparison group rather than from the true effect.  ``probability_of_loss`` for
    investors with its Monte Carlo standard error.
    """
    designs = {f"comparison group x{r:g}": r for r in size_ratios}
    exact = simulate(with_comparison(contract, None), n_paths=n_paths, seed=seed, workers=workers).paths
    rows = {}
    for label, ratio in list(designs.items()) + [("exact counterfactual", None)]:
        paths = exact if ratio is None else simulate(with_comparison(contract, ratio), n_paths=n_paths,
                                                     seed=seed, workers=workers).paths
        row = {}
        for m in MEASURES:
            values = paths[m].to_numpy(dtype=float)
            noise = values - exact[m].to_numpy(dtype=float)
            var = values.var(ddof=1)
            row[f"mean_{m}"] = values.mean()
            row[f"sd_{m}"] = np.sqrt(var)
            row[f"noise_sd_{m}"] = noise.std(ddof=1)
            row[f"noise_share_{m}"] = noise.var(ddof=1) / var if var > 0 else 0.0
        p = float((paths["investor_moic"] < 1 - 1e-12).mean())
        row["probability_of_loss"] = p
        row["probability_of_loss_se"] = float(np.sqrt(p * (1 - p) / n_paths))
        rows[label] = row
    frame = pd.DataFrame(rows).T
    frame.index.name = "design"
    return frame
