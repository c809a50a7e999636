"""Regenerate the golden outputs after an intended model change: python tests/golden/update.py

Every shipped scenario has a golden summary (fixed seed, small path count, one process) and every
shipped observed-outcomes file a golden settlement schedule (deterministic).
"""

from pathlib import Path

from sibsim import load_scenario, settle, simulate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCENARIOS = ROOT / "scenarios"
#: scenario -> (paths, seed). Small enough to run in seconds, in one process.
GOLDEN = {
    "utrecht_colour_kitchen": (4000, 2015),
    "utrecht_colour_kitchen_guarantee": (2000, 2015),
    "rotterdam_buzinezzclub": (2000, 2013),
    "peterborough": (2000, 2010),
    "werk_na_detentie": (2000, 2016),
    "dwp_innovation_fund": (2000, 2012),
    "custody_days": (2000, 2020),
    "special_education_census": (2000, 2021),
    "new_york_state_employment": (2000, 2013),
    "utrecht_colour_kitchen_recession": (2000, 2015),
    "utrecht_colour_kitchen_modelled": (2000, 2015),
    "utrecht_colour_kitchen_modelled_recession": (2000, 2015),
}
#: observed-outcomes file -> scenario it settles.
SETTLEMENTS = {
    "peterborough_published": "peterborough",
    "utrecht_colour_kitchen_example": "utrecht_colour_kitchen",
}


def golden_summary(name: str):
    paths, seed = GOLDEN[name]
    contract = load_scenario(SCENARIOS / f"{name}.toml")
    return simulate(contract, n_paths=paths, seed=seed, workers=1).summary()


def golden_settlement(name: str):
    contract = load_scenario(SCENARIOS / f"{SETTLEMENTS[name]}.toml")
    return settle(contract, SCENARIOS / "observed" / f"{name}.toml")


if __name__ == "__main__":
    for name in GOLDEN:
        target = HERE / f"{name}_summary.csv"
        golden_summary(name).to_csv(target, float_format="%.12g")
        print(f"wrote {target.relative_to(ROOT)}")
    for name in SETTLEMENTS:
        result = golden_settlement(name)
        for part in ("schedule", "investors"):
            target = HERE / f"{name}_{part}.csv"
            getattr(result, part).to_csv(target, float_format="%.12g")
            print(f"wrote {target.relative_to(ROOT)}")
