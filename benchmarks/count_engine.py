"""A straightforward count-based numpy engine: the timing baseline of ``benchmarks/run.py``.

Same journey as :mod:`sibsim.montecarlo` (see docs/model.md section 1), stepped month by month with
participant *counts* per state, one binomial draw per (path, cohort, state) and month, instead of
event times.  It exists to measure how a plain count-based implementation compares; it is not used
by sibsim.  Its own test is a rough agreement of means with the engine (``python
benchmarks/count_engine.py`` prints both).

States of a cohort (counts per path), with ``h`` the participant's history (0 none, 1 job started,
2 sustained, 3 long-term contract; each outcome counts once per participant) and ``d`` the diploma:

* training, ``k`` months done (``k < L``);
* looking for work, by ``(d, h)``; participants who relapsed this month join it next month;
* in a job of ``j`` months (``1 <= j < S``), by ``(d, h)``;
* in a sustained job, by ``(d, long-term contract or not, h in {2, 3})``.
"""

from __future__ import annotations

import numpy as np

from sibsim.contracts import Contract
from sibsim.montecarlo import (DIPLOMA, JOB_START, JOB_SUSTAINED, LONG_TERM_CONTRACT, GroupOutcomes, Outcomes,
                               draw_parameters)


def simulate_group_counts(q: dict, L: int, intake: np.ndarray, sizes: np.ndarray, T: int, S: int,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Events (P, C, 4, T) and employed (P, C, T) counts, as :func:`sibsim.montecarlo.simulate_group`."""
    P, C = len(q["diploma"]), len(sizes)
    col = lambda name: np.asarray(q[name], dtype=float)[:, None]  # noqa: E731  (P, 1) per path
    p_dip, p_drop = col("diploma"), col("dropout")
    p_job = (col("job_without_diploma"), col("job_with_diploma"))
    p_rel, p_rel_long, p_ltc = col("relapse"), col("relapse_long_term"), col("long_term_contract")
    binom = rng.binomial
    events = np.zeros((P, C, 4, T), dtype=np.int32)
    employed = np.zeros((P, C, T), dtype=np.int32)
    train = np.zeros((P, C, max(L, 1)), dtype=np.int64)
    search = np.zeros((P, C, 2, 4), dtype=np.int64)
    work = np.zeros((P, C, 2, 4, max(S - 1, 1)), dtype=np.int64)  # job month j = 1 .. S-1 done
    sus = np.zeros((P, C, 2, 2, 2), dtype=np.int64)                # (d, contract, h - 2)
    for t in range(T):
        starting = intake == t
        if starting.any():
            if L > 0:
                train[:, starting, 0] += sizes[starting]
            else:
                search[:, starting, 0, 0] += sizes[starting]
        relapsed = np.zeros_like(search)
        # Training: diploma, else dropout; the last month ends without a diploma.
        if L > 0:
            new_train = np.zeros_like(train)
            for k in range(L):
                n = train[:, :, k]
                dip = binom(n, p_dip)
                drop = binom(n - dip, p_drop)
                stay = n - dip - drop
                events[:, :, DIPLOMA, t] += dip.astype(np.int32)
                relapsed[:, :, 1, 0] += dip  # searching from next month
                relapsed[:, :, 0, 0] += drop
                if k + 1 < L:
                    new_train[:, :, k + 1] = stay
                else:
                    relapsed[:, :, 0, 0] += stay
            train = new_train
        # Sustained jobs: relapse at their rate.
        for c, rate in ((0, p_rel), (1, p_rel_long)):
            for d in range(2):
                for h in range(2):
                    n = sus[:, :, d, c, h]
                    gone = binom(n, rate)
                    sus[:, :, d, c, h] = n - gone
                    relapsed[:, :, d, h + 2] += gone
        # Jobs not yet sustained: relapse, else one month more; the S-th month makes them sustained.
        new_work = np.zeros_like(work)
        for d in range(2):
            for h in range(1, 4):
                for j in range(S - 1):
                    n = work[:, :, d, h, j]
                    gone = binom(n, p_rel)
                    relapsed[:, :, d, h] += gone
                    stay = n - gone
                    if j + 1 < S - 1:
                        new_work[:, :, d, h, j + 1] = stay
                    else:
                        _sustain(stay, d, h, t, p_ltc, events, sus, binom)
        work = new_work
        # Looking for work: job start (in work this month).
        for d in range(2):
            for h in range(4):
                n = search[:, :, d, h]
                found = binom(n, p_job[d])
                search[:, :, d, h] = n - found
                if h == 0:
                    events[:, :, JOB_START, t] += found.astype(np.int32)
                if S == 1:
                    _sustain(found, d, max(h, 1), t, p_ltc, events, sus, binom)
                else:
                    work[:, :, d, max(h, 1), 0] += found
        search += relapsed
        employed[:, :, t] = (work.sum(axis=(2, 3, 4)) + sus.sum(axis=(2, 3, 4))).astype(np.int32)
    return events, employed


def _sustain(n, d, h, t, p_ltc, events, sus, binom):
    """``n`` jobs reach S months at ``t``: sustained (first time), long-term contract with ``p_ltc``."""
    if h < 2:
        events[:, :, JOB_SUSTAINED, t] += n.astype(np.int32)
    ltc = binom(n, p_ltc)
    if h < 3:
        events[:, :, LONG_TERM_CONTRACT, t] += ltc.astype(np.int32)
    sus[:, :, d, 1, 1] += ltc                 # history 3
    sus[:, :, d, 0, max(h, 2) - 2] += n - ltc  # history 2 (or 3 if it already was)


def simulate_outcomes_counts(contract: Contract, n_paths: int, rng: np.random.Generator) -> Outcomes:
    """Outcomes of both groups with the count-based engine (sampled comparison group only)."""
    intake = np.array([c.intake_month for c in contract.cohorts])
    treated_sizes = np.array([c.size for c in contract.cohorts], dtype=np.int64)
    treated = draw_parameters(contract.journey, rng, n_paths)
    comparison = draw_parameters(contract.comparison.journey, rng, n_paths)
    T, S = contract.horizon_months, contract.sustained_job_months
    t_ev, t_emp = simulate_group_counts(treated, contract.journey.max_training_months, intake, treated_sizes,
                                        T, S, rng)
    c_sizes = contract.comparison_sizes
    c_ev, c_emp = simulate_group_counts(comparison, contract.comparison.journey.max_training_months, intake,
                                        c_sizes, T, S, rng)
    default = None
    if contract.payer.default_probability > 0:
        default = rng.random((n_paths, len(contract.payment_months))) < contract.payer.default_probability
    return Outcomes(GroupOutcomes(t_ev, t_emp, treated_sizes, treated),
                    GroupOutcomes(c_ev, c_emp, c_sizes, comparison), default)


if __name__ == "__main__":  # rough agreement with the engine: mean counts per outcome and employed months
    from pathlib import Path

    from sibsim import load_scenario
    from sibsim.montecarlo import simulate_outcomes

    contract = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "utrecht_colour_kitchen.toml")
    a = simulate_outcomes_counts(contract, 2000, np.random.default_rng(1))
    b = simulate_outcomes(contract, 2000, np.random.default_rng(2))
    for name, x, y in (("treated", a.treated, b.treated), ("comparison", a.comparison, b.comparison)):
        print(name, "events per path", x.events.sum(axis=(1, 3)).mean(axis=0).round(2),
              "engine", y.events.sum(axis=(1, 3)).mean(axis=0).round(2),
              "| employed months", x.employed.sum(axis=(1, 2)).mean().round(1), "engine",
              y.employed.sum(axis=(1, 2)).mean().round(1))
