"""Regenerate the golden summaries after an intended model change: python tests/golden/update.py"""

from pathlib import Path

from sibsim import load_scenario, simulate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
#: scenario -> (paths, seed). Small enough to run in seconds, in one process.
GOLDEN = {"utrecht_colour_kitchen": (4000, 2015)}


def golden_summary(name: str):
    paths, seed = GOLDEN[name]
    contract = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    return simulate(contract, n_paths=paths, seed=seed, workers=1).summary()


if __name__ == "__main__":
    for name in GOLDEN:
        target = HERE / f"{name}_summary.csv"
        golden_summary(name).to_csv(target, float_format="%.12g")
        print(f"wrote {target.relative_to(ROOT)}")
