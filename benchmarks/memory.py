"""Calibrate the memory estimate of :func:`sibsim.simulation.estimate_memory` on this machine.

``python benchmarks/memory.py blocks``: a block's peak (tracemalloc) for variants of the shipped
scenarios, the non-negative least-squares fit behind ``BLOCK_FIT`` and the estimate's margin.
``python benchmarks/memory.py runs``: peak ``ru_maxrss`` of ``sibsim run --workers 1 --no-plots``
at several path counts (each in a fresh process) against the estimate.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sibsim import load_scenario  # noqa: E402
from sibsim.montecarlo import block_size  # noqa: E402
from sibsim.scenario import _read_document, contract_from_dict  # noqa: E402
from sibsim.simulation import _run_block, block_working_set, estimate_memory  # noqa: E402

VARIANTS = [("utrecht_colour_kitchen.toml", (5, 21, 80, 300), (0, 12, 48), (None, 0.5, 2.0)),
            ("peterborough.toml", (50, 300, 1000, 3000), (0, 24), (0.5, 1.0, 3.0)),
            ("rotterdam_buzinezzclub.toml", (10, 40, 200), (0, 24), (None,))]


def _variant(name: str, size: int, tail: int, ratio):
    base = _read_document(ROOT / "scenarios" / name)
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    doc["cohorts"] = [dict(c, size=size) for c in base["cohorts"]]
    doc["term"] = dict(base["term"], tail_months=tail)
    if ratio is not None and "size_ratio" in doc.get("comparison", {}):
        doc["comparison"] = dict(doc["comparison"], size_ratio=ratio)
    return contract_from_dict(doc, name)


def _peak(contract) -> int:
    n, seed = block_size(contract), np.random.SeedSequence(1)
    _run_block(contract, seed, n, True)  # warm caches first: the steady state is what repeats
    tracemalloc.start()
    try:
        _run_block(contract, seed, n, True)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def blocks() -> None:
    from scipy.optimize import nnls

    features, peaks = [], []
    for name, sizes, tails, ratios in VARIANTS:
        for size, tail, ratio in itertools.product(sizes, tails, ratios):
            c = _variant(name, size, tail, ratio)
            n, months = block_size(c), c.horizon_months
            comparison = 0 if c.comparison.method == "expected" else int(c.comparison_sizes.sum())
            features.append([1, n * months, n * c.n_participants * months, n * comparison * months,
                             n * len(c.cohorts) * 4 * months])
            peaks.append(_peak(c))
            print(f"{name} size {size} tail {tail} ratio {ratio}: peak {peaks[-1] / 1e6:.1f} MB, "
                  f"estimate {block_working_set(c) / 1e6:.1f} MB", flush=True)
    x, y = np.array(features, float), np.array(peaks, float)
    coef, _ = nnls(x / y[:, None], np.ones(len(y)))  # relative error, every term >= 0
    ratio = x @ coef / y
    print(f"fit {coef}; fit / peak within {ratio.min():.2f}-{ratio.max():.2f}")


def runs(name: str = "utrecht_colour_kitchen.toml", counts=(50_000, 400_000, 800_000)) -> None:
    code = ("import resource, sys\nfrom sibsim import cli\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "cli.main(['run', sys.argv[1], '--paths', sys.argv[2], '--seed', '1', '--out', sys.argv[3], "
            "'--no-plots', '--quiet', '--workers', '1'])\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)\n")
    scenario = ROOT / "scenarios" / name
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", code, str(scenario), str(n), f"{tmp}/out"],
                                 capture_output=True, text=True, check=True, cwd=ROOT).stdout
        estimate = estimate_memory(load_scenario(scenario), n, workers=1)["needed"]
        print(f"{name} {n:,} paths: peak {int(out) / 1e6:,.0f} MB, estimate {estimate / 1e6:,.0f} MB", flush=True)


if __name__ == "__main__":
    {"blocks": blocks, "runs": runs}[sys.argv[1] if len(sys.argv) > 1 else "blocks"]()
