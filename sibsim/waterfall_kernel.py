"""The capital stack compiled: :func:`sibsim.waterfall.run` path by path, in one numba kernel.

:mod:`sibsim.waterfall` is the readable statement of the monthly rules (numpy, every step
vectorised over the paths of a block); this module runs the same rules, read from the same
terms (:mod:`sibsim.stack`, packed into arrays by :func:`pack`), one path at a time.  Settlement
uses it by default (``settle(..., stack="compiled")``); the numpy version is its oracle.

Why a second reader of the same data: the numpy loop costs about 25 array calls on (paths,
tranches) arrays per month, whatever happens in it (13 us of a Colour Kitchen path's 85); a
path's months and steps are a few hundred scalar operations.

The arithmetic is the numpy version's, operation by operation and in the same order: every
elementwise ``minimum``, ``maximum``, product and quotient of a path is the same IEEE operation,
and sums keep numpy's orders (a row of a C-contiguous array: its pairwise summation,
:func:`_psum`; across rows: left to right).  One difference is deliberate: the numpy loop skips
a step, or a month's whole waterfall, when no path of the block has more than ``DUST`` (a
millionth of a cent) on offer for it, so a path with dust on offer pays it out if another path
of its block has money, and drops it otherwise; here the decision is the path's own (skipped
for its own dust).  The two agree to about 1e-9 EUR per path and month, and a path's cash no
longer depends on which other paths share its block.
"""

from __future__ import annotations

import numba
import numpy as np

from .stack import PAYER, PROVIDER, STEP_KINDS, STEP_ORDERS
from .waterfall import DUST, REPAID, StackLedgers, guarantee_month

#: Step kinds and orders as the kernel's integer codes (positions in the :mod:`sibsim.stack` tuples).
_KIND = {k: i for i, k in enumerate(STEP_KINDS)}
_ORDER = {o: i for i, o in enumerate(STEP_ORDERS)}
FEES, INTEREST, PRINCIPAL, HURDLE, TO_CAP, SUCCESS_FEE, SPLIT, RECOUP = (_KIND[k] for k in STEP_KINDS)
SENIORITY, PRO_RATA, SEQUENTIAL = (_ORDER[o] for o in STEP_ORDERS)
#: Split targets that are not tranches.
TO_PROVIDER, TO_PAYER = -1, -2
GUARANTEE_CODES = {"share": 0, "first_loss": 1, "floor": 2}
WHEN_CODES = {"maturity": 0, "termination": 1, "termination_or_maturity": 2}


# --- the terms as arrays ---------------------------------------------------------------------
def _steps_table(contract, steps, hurdle_index: dict) -> dict:
    """One row per step: kind, order, limits, and the tranche columns it pays (``to``; all
    repayable tranches if empty, grants never), their share-out groups and its ``after`` columns."""
    names = contract.tranche_names
    investors = contract.investors
    S, N = len(steps), len(names)
    width = max([N, 1] + [len(s.shares) for s in steps])
    t = {
        "kind": np.zeros(S, np.int64), "order": np.zeros(S, np.int64), "hurdle": np.zeros(S, np.int64),
        "cap": np.zeros(S), "has_cap": np.zeros(S, np.bool_), "amount": np.zeros(S),
        "has_amount": np.zeros(S, np.bool_), "share": np.zeros(S),
        "cols": np.zeros((S, N), np.int64), "ncols": np.zeros(S, np.int64),
        "group": np.zeros((S, N), np.int64), "ngroups": np.zeros(S, np.int64),
        "after": np.zeros((S, N), np.int64), "nafter": np.zeros(S, np.int64),
        "target": np.zeros((S, width), np.int64), "target_share": np.zeros((S, width)),
        "ntargets": np.zeros(S, np.int64),
    }
    seniority = [i.seniority for i in investors]
    for s, step in enumerate(steps):
        t["kind"][s], t["order"][s] = _KIND[step.pay], _ORDER[step.order]
        if step.pay == "hurdle":
            t["hurdle"][s] = hurdle_index[step.rate]
        if step.cap is not None:
            t["cap"][s], t["has_cap"][s] = step.cap, True
        if step.amount is not None:
            t["amount"][s], t["has_amount"][s] = step.amount, True
        t["share"][s] = 0.0 if step.share is None else step.share
        to = step.to or tuple(i.name for i in investors if i.repayable)
        cols = [names.index(n) for n in to if investors[names.index(n)].repayable]
        t["cols"][s, :len(cols)], t["ncols"][s] = cols, len(cols)
        if step.order == "sequential":
            groups = list(range(len(cols)))
        elif step.order == "pro_rata":
            groups = [0] * len(cols)
        else:  # by seniority, the most senior (lowest number) first, pro rata within one
            levels = sorted({seniority[c] for c in cols})
            groups = [levels.index(seniority[c]) for c in cols]
        t["group"][s, :len(cols)], t["ngroups"][s] = groups, len(set(groups))
        after = [names.index(n) for n in step.after]
        t["after"][s, :len(after)], t["nafter"][s] = after, len(after)
        for x, (target, share) in enumerate(step.shares):
            t["target"][s, x] = (TO_PROVIDER if target == PROVIDER else TO_PAYER if target == PAYER
                                 else names.index(target))
            t["target_share"][s, x] = share
        t["ntargets"][s] = len(step.shares)
    return t


def pack(contract, savings=None) -> tuple[list, tuple]:
    """The contract's stack as arrays: the hurdle rates tracked (a balance-linked savings share's
    ``until_rate`` among them) and the kernel's arguments after the per-block data (see :func:`run`)."""
    tranches, payers, guarantees = contract.investors, contract.payers, contract.guarantees
    T, N, J, G = contract.horizon_months, len(tranches), len(payers), len(guarantees)
    waterfall = contract.waterfall
    steps = waterfall.steps + waterfall.on_termination
    rates = sorted({s.rate for s in steps if s.pay == "hurdle"}
                   | ({contract.payer.savings_share.until_rate} if savings is not None else set()))
    hurdle_index = {r: h for h, r in enumerate(rates)}
    table = _steps_table(contract, steps, hurdle_index)
    n_steps = len(waterfall.steps)
    # Without a termination list of its own, the same steps (and their caps' state) run at termination.
    ranges = np.array([0, n_steps, n_steps, len(steps)] if waterfall.on_termination else [0, n_steps, 0, n_steps],
                      dtype=np.int64)

    groups = contract.draw_order.groups
    simple_draw = not groups and all(t.available_from_month <= 0 for t in tranches)
    if not groups:
        groups = (contract.tranche_names,)
    members = np.array([[n in g for n in contract.tranche_names] for g in groups], dtype=np.bool_)
    planned = contract.provider_budget.to_array(T) + contract.fee_schedule("investors")
    planned_end = int(np.flatnonzero(planned > 0).max()) if (planned > 0).any() else 0

    pay_index = np.full((J, T), -1, dtype=np.int64)
    for j in range(J):
        for k, m in enumerate(contract.payer_payment_months(j)):
            if m < T:
                pay_index[j, m] = k
    tops_up = np.array([next((k for k, q in enumerate(payers) if q.above_cap_of == p.name), -1) for p in payers],
                       dtype=np.int64)
    names = contract.tranche_names
    return rates, (
        # tranches
        np.array([t.monthly_interest for t in tranches]),
        np.array([t.compounding == "monthly" for t in tranches], dtype=np.bool_),
        np.array([1.0 if t.cap_rate is None else (1.0 + t.cap_rate) ** (1 / 12) for t in tranches]),
        np.array([t.cap_rate is not None for t in tranches], dtype=np.bool_),
        np.array([t.commitment for t in tranches], dtype=float),
        np.array([t.available_from_month for t in tranches], dtype=np.int64),
        np.asarray(contract.call_weights, dtype=float), simple_draw, members,
        # payers
        np.array([0.0 if p.payment_cap is None else p.payment_cap for p in payers]),
        np.array([p.payment_cap is not None for p in payers], dtype=np.bool_), tops_up,
        np.array([p.paid_to != "provider" for p in payers], dtype=np.bool_), pay_index,
        # months
        bool(contract.recycling), planned_end, int(guarantee_month(contract)),
        np.cumsum(contract.fee_schedule("waterfall")),
        # hurdles and steps
        np.array(rates, dtype=float), np.array([(1.0 + r) ** (1 / 12) for r in rates]), ranges,
        table["kind"], table["hurdle"], table["cap"], table["has_cap"], table["amount"],
        table["has_amount"], table["share"], table["cols"], table["ncols"], table["group"], table["ngroups"],
        table["after"], table["nafter"], table["target"], table["target_share"], table["ntargets"],
        # guarantees
        np.array([GUARANTEE_CODES[g.kind] for g in guarantees], dtype=np.int64),
        np.array([WHEN_CODES[g.pays] for g in guarantees], dtype=np.int64),
        np.array([g.share for g in guarantees], dtype=float),
        np.array([0.0 if g.amount is None else g.amount for g in guarantees]),
        np.array([0.0 if g.floor is None else g.floor for g in guarantees]),
        np.array([0.0 if g.cap is None else g.cap for g in guarantees]),
        np.array([g.cap is not None for g in guarantees], dtype=np.bool_),
        np.array([[n in g.investors for n in names] for g in guarantees], dtype=np.bool_).reshape(G, N),
        np.array([1.0 if g.recoup else 0.0 for g in guarantees]),
    )


def _savings_args(savings, n_paths: int, T: int, rates) -> tuple:
    """A balance-linked savings share (:class:`sibsim.cashflows._BalanceLinkedSavings`) as arrays;
    placeholders (never read) when there is none."""
    if savings is None:
        return (False, False, np.zeros((n_paths, 1, 1)), np.zeros((1, 1)), np.zeros(1), np.zeros(1, np.int64),
                np.zeros(1), 0.0, 0.0, 0, np.zeros(1, np.int64), np.full(T, -1, np.int64), 1.0, 0.0, 1)
    months = np.full(T, -1, dtype=np.int64)
    for m, i in savings.months.items():
        if m < T:
            months[m] = i
    weights = savings.cohort_weights if savings.cohort_weights is not None else np.ones((1, 1))
    return (True, bool(savings.per_cohort), np.ascontiguousarray(savings.savings, dtype=float),
            np.ascontiguousarray(weights, dtype=float), np.asarray(savings.weights, dtype=float),
            np.asarray(savings.lags, dtype=np.int64), np.asarray(savings.to_vehicle, dtype=float),
            float(savings.rate), float(savings.rate_after), list(rates).index(savings.until_rate),
            np.asarray(savings.columns, dtype=np.int64), months, float(savings.growth),
            float(savings.to_vehicle @ savings.weights), int(savings.schedule.shape[2]))


def run(contract, due: np.ndarray, defaults: list, needs: np.ndarray, termination_month: np.ndarray,
        savings=None) -> StackLedgers:
    """:func:`sibsim.waterfall.run`, compiled; the same parameters (``savings``: the
    :class:`sibsim.cashflows._BalanceLinkedSavings` itself, whose terms the kernel reads) and ledgers."""
    J, P, T = due.shape
    N, G = len(contract.investors), len(contract.guarantees)
    rates, terms = pack(contract, savings)
    pays = [len(contract.payer_payment_months(j)) for j in range(J)]
    missed = np.zeros((J, P, max(pays + [1])))
    has_default = np.zeros(J, dtype=np.bool_)
    for j, d in enumerate(defaults):
        if d is not None:
            missed[j, :, :d.shape[1]] = d
            has_default[j] = True
    out = {name: np.zeros(shape) for name, shape in (
        ("calls", (P, N, T)), ("distributions", (P, N, T)), ("interest_paid", (P, N, T)),
        ("principal_repaid", (P, N, T)), ("guarantee_payouts", (P, N, T)), ("guarantor_payments", (G, P, T)),
        ("recoveries", (G, P, T)), ("payer_due", (J, P, T)), ("payer_defaulted", (J, P, T)),
        ("payer_retained", (J, P, T)), ("payer_withheld", (J, P, T)), ("direct", (P, T)), ("provider", (P, T)),
        ("waterfall_fees", (P, T)), ("recycled", (P, T)), ("held", (P, T)), ("to_payers", (P, T)))}
    problem = np.zeros(3)  # a capital call beyond the commitments: [found, amount, month]
    _kernel(np.ascontiguousarray(due, dtype=float), missed, has_default, np.ascontiguousarray(needs, dtype=float),
            np.asarray(termination_month, dtype=np.int64), *terms, *_savings_args(savings, P, T, rates),
            *out.values(), problem)
    if problem[0]:
        # The loader checks the planned calls fit the commitments month by month, and settlement
        # only lowers calls; reaching here is a bug, never a silent shortfall.
        raise RuntimeError(f"capital calls of {problem[1]:,.2f} in month {int(problem[2])} exceed the commitments left")
    return StackLedgers(out["calls"], out["distributions"], out["interest_paid"], out["principal_repaid"],
                        out["guarantee_payouts"], out["guarantor_payments"], out["recoveries"],
                        out["payer_due"], out["payer_defaulted"], out["payer_retained"], out["payer_withheld"],
                        out["direct"], out["provider"], out["waterfall_fees"], out["recycled"], out["held"])


# --- the kernel --------------------------------------------------------------------------------
@numba.njit(cache=True, inline="always")
def _psum(a, n):
    """numpy's sum of a contiguous row ``a[:n]`` (pairwise summation, blocks of 8), bit for bit."""
    if n < 8:
        r = -0.0
        for i in range(n):
            r += a[i]
        return r
    if n <= 128:
        return _psum_block(a, n)
    return _psum_large(a, n)


@numba.njit(cache=True, inline="always")
def _psum_block(a, n):
    """numpy's pairwise sum of 8 <= n <= 128 values: eight running sums, then the rest."""
    r0, r1, r2, r3, r4, r5, r6, r7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    i = 8
    while i < n - (n % 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    r = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        r += a[i]
        i += 1
    return r


@numba.njit(cache=True)
def _psum_large(a, n):
    """numpy's sum of more than 128 values: the two halves (cut at a multiple of 8), each pairwise."""
    if n <= 128:
        if n < 8:
            r = -0.0
            for i in range(n):
                r += a[i]
            return r
        return _psum_block(a, n)
    half = n // 2
    half -= half % 8
    return _psum_large(a, half) + _psum_large(a[half:], n - half)


@numba.njit(cache=True)
def _share_out(offer, owed, n, group, ngroups, weights, use_weights, paid, w, give):
    """``sibsim.waterfall._share_out`` for one path: ``paid[:n]`` shares ``offer`` against ``owed[:n]``
    group by group (``group[i]``: the position's group, paid in increasing order)."""
    for i in range(n):
        paid[i] = 0.0
    left = offer
    for g in range(ngroups):
        if use_weights:
            members = 0
            for i in range(n):
                if group[i] == g:
                    members += 1
            for _ in range(members):
                for i in range(n):
                    w[i] = weights[i] if (group[i] == g and owed[i] - paid[i] > DUST) else 0.0
                total = _psum(w, n)
                for i in range(n):
                    share = w[i] / total if total > 0 else 0.0
                    give[i] = min(left * share, max(owed[i] - paid[i], 0.0))
                    paid[i] += give[i]
                left = max(left - _psum(give, n), 0.0)
            continue
        for i in range(n):
            w[i] = max(owed[i], 0.0) if group[i] == g else 0.0
        total = _psum(w, n)
        fraction = min(left / total if total > 0 else 1.0, 1.0)
        for i in range(n):
            give[i] = w[i] * fraction
            paid[i] += give[i]
        left = max(left - _psum(give, n), 0.0)


@numba.njit(cache=True)
def _book(paid, N, interest, principal, cap_claim, hurdles, received, dist, int_paid, prin_paid, p, t):
    """Book payments ``paid`` (N,) to the tranches: interest first, then principal."""
    for n in range(N):
        to_interest = min(paid[n], interest[n])
        to_principal = min(paid[n] - to_interest, principal[n])
        interest[n] -= to_interest
        principal[n] -= to_principal
        cap_claim[n] -= paid[n]
        for h in range(hurdles.shape[0]):
            hurdles[h, n] -= paid[n]
        received[n] += paid[n]
        dist[p, n, t] += paid[n]
        int_paid[p, n, t] += to_interest
        prin_paid[p, n, t] += to_principal


@numba.njit(cache=True)
def _kernel(due, missed, has_default, needs, termination_month,
            accrual, on_interest, cap_growth, capped, commitment, available_from, call_weights, simple_draw,
            draw_groups,
            payer_cap, payer_has_cap, tops_up, to_vehicle, pay_index,
            recycling, planned_end, payout_month, fee_cum,
            rates, rate_growth, ranges,
            kind, hidx, scap, shas_cap, samount, shas_amount, sshare, cols, ncols, group, ngroups,
            after, nafter, target, tshare, ntargets,
            gkind, gwhen, gshare, gamount, gfloor, gcap, ghas_cap, gcovered, grecoup,
            has_savings, per_cohort, sav, cohort_w, sav_w, sav_lag, sav_to_vehicle, sav_rate, sav_rate_after,
            sav_h, sav_cols, sav_month, sav_growth, sav_share_to_vehicle, sav_width,
            calls, dist, int_paid, prin_paid, g_payouts, g_pay, g_rec, pdue, pdef, pret, pwith,
            direct, provider, wfees, recycled, held, to_payers, problem):
    J, P, T = due.shape
    N = accrual.shape[0]
    G = gkind.shape[0]
    H = rates.shape[0]
    S = kind.shape[0]
    C = sav.shape[1]
    width = max(N, G, 1)
    for x in range(S):
        width = max(width, ntargets[x])
    owed, part, w, give, paid_n, full = (np.zeros(width), np.zeros(width), np.zeros(width), np.zeros(width),
                                         np.zeros(width), np.zeros(max(N, 1)))
    room = np.zeros(max(N, 1))
    c_draw = np.zeros(max(N, 1))
    loss, cover, got, run_got, left_n = (np.zeros(max(N, 1)), np.zeros(max(N, 1)), np.zeros(max(N, 1)),
                                         np.zeros(max(N, 1)), np.zeros(max(N, 1)))
    owed_now, received, released, pools = np.zeros(J), np.zeros(J), np.zeros(J), np.zeros(J)
    high, credited, needs_c, amount_c, pending = np.zeros(C), np.zeros(C), np.zeros(C), np.zeros(C), np.zeros(C)
    J_lag = sav_lag.shape[0]
    one_group = np.zeros(max(G, 1), np.int64)
    col_scratch = np.zeros(max(sav_cols.shape[0], 1))
    # A path's accounts (module notes of sibsim.waterfall), reset for each path.
    drawn, principal, interest, received_n = np.zeros(N), np.zeros(N), np.zeros(N), np.zeros(N)
    cap_claim, remaining = np.zeros(N), np.zeros(N)
    hurdles = np.zeros((H, N))
    step_paid = np.zeros(S)
    state = np.zeros(1)  # waterfall fees paid so far
    g_paid, recovered = np.zeros(G), np.zeros(G)
    counted, vehicle, withheld = np.zeros(J), np.zeros(J), np.zeros(J)
    schedule = np.zeros((J_lag, sav_width))
    into_v = np.zeros((C, sav_width))
    for p in range(P):
        drawn[:] = 0.0
        principal[:] = 0.0
        interest[:] = 0.0
        received_n[:] = 0.0
        for n in range(N):
            cap_claim[n] = 0.0 if capped[n] else np.inf
            remaining[n] = commitment[n]
        hurdles[:] = 0.0
        step_paid[:] = 0.0
        state[0] = 0.0
        g_paid[:] = 0.0
        recovered[:] = 0.0
        counted[:] = 0.0
        vehicle[:] = 0.0
        withheld[:] = 0.0
        if has_savings:
            schedule[:] = 0.0
            into_v[:] = 0.0
        for c in range(C):
            high[c] = 0.0
            credited[c] = 0.0
        tm = termination_month[p]
        terminated = tm >= 0
        for t in range(T):
            # 1. accrue
            for n in range(N):
                b = principal[n] + (interest[n] if on_interest[n] else 0.0)
                interest[n] = interest[n] + b * accrual[n]
                cap_claim[n] = cap_claim[n] * cap_growth[n]
            for h in range(H):
                for n in range(N):
                    hurdles[h, n] = hurdles[h, n] * rate_growth[h]
            # 2. receive
            for j in range(J):
                owed_now[j] = due[j, p, t]
            if has_savings:
                if per_cohort and t:
                    for c in range(C):
                        credited[c] = (credited[c] + into_v[c, t - 1]) * sav_growth
                i = sav_month[t]
                if i >= 0:
                    for a in range(sav_cols.shape[0]):
                        col_scratch[a] = max(hurdles[sav_h, sav_cols[a]], 0.0)
                    balance = _psum(col_scratch, sav_cols.shape[0])
                    for c in range(C):
                        pending[c] = _psum(into_v[c, t:], sav_width - t)
                    if not per_cohort:
                        needs_c[0] = max(balance - pending[0], 0.0)
                    else:
                        before = balance + _psum(credited, C)
                        for c in range(C):
                            needs_c[c] = max(cohort_w[i, c] * before - credited[c] - pending[c], 0.0)
                    for c in range(C):
                        need = needs_c[c] / sav_share_to_vehicle if sav_share_to_vehicle > 0 else np.inf
                        counted_c = max(sav[p, c, i], high[c])
                        new = counted_c - high[c]
                        high[c] = counted_c
                        first_amount = sav_rate * new
                        if first_amount > need:
                            amount_c[c] = need + sav_rate_after * (new - need / sav_rate)
                        else:
                            amount_c[c] = first_amount
                    total = _psum(amount_c, C)
                    for j in range(J_lag):
                        schedule[j, t + sav_lag[j]] += total * sav_w[j]
                        for c in range(C):
                            into_v[c, t + sav_lag[j]] += amount_c[c] * (sav_w[j] * sav_to_vehicle[j])
                for j in range(J):
                    owed_now[j] = owed_now[j] + schedule[j, t]
            for j in range(J):
                received[j] = 0.0
            for j in range(J):
                k = pay_index[j, t]
                if k < 0:
                    continue
                amount = owed_now[j]
                if payer_has_cap[j]:
                    amount = min(amount, max(payer_cap[j] - counted[j], 0.0))
                    if tops_up[j] >= 0:
                        owed_now[tops_up[j]] += owed_now[j] - amount
                miss = amount * missed[j, p, k] if has_default[j] else 0.0
                pdue[j, p, t] = amount
                pdef[j, p, t] = miss
                counted[j] += amount - miss
                if to_vehicle[j]:
                    received[j] = amount - miss
                else:
                    direct[p, t] += amount - miss
            # 3. fund delivery and draw
            if recycling:
                pool = 0.0
                for j in range(J):
                    vehicle[j] = vehicle[j] + received[j]
                    pool = vehicle[j] if j == 0 else pool + vehicle[j]
                use = min(pool, needs[p, t])
                recycled[p, t] = use
                call = needs[p, t] - use
                kept = (pool - use) / pool if pool > 0 else 0.0
                ending = t >= planned_end or (terminated and t >= tm)
                for j in range(J):
                    vehicle[j] = vehicle[j] * kept
                    released[j] = vehicle[j] if ending else 0.0
                    if ending:
                        vehicle[j] = 0.0
            else:
                call = needs[p, t]
                for j in range(J):
                    released[j] = received[j]
            h_ = 0.0
            for j in range(J):
                h_ = vehicle[j] if j == 0 else h_ + vehicle[j]
            held[p, t] = h_
            if call != 0.0:
                if simple_draw:
                    for n in range(N):
                        c_draw[n] = call * call_weights[n]
                else:
                    left = call
                    for n in range(N):
                        c_draw[n] = 0.0
                    for g in range(draw_groups.shape[0]):
                        for n in range(N):
                            room[n] = (max(remaining[n], 0.0)
                                       if (draw_groups[g, n] and available_from[n] <= t) else 0.0)
                        total = _psum(room, N)
                        take = min(left, total)
                        frac = take / total if total > 0 else 0.0
                        for n in range(N):
                            c_draw[n] += room[n] * frac
                        left = left - take
                    if left > REPAID and (problem[0] == 0.0 or left > problem[1]):
                        problem[0], problem[1], problem[2] = 1.0, left, t
                for n in range(N):
                    remaining[n] -= c_draw[n]
                    calls[p, n, t] = c_draw[n]
                    drawn[n] = drawn[n] + c_draw[n]
                    principal[n] = principal[n] + c_draw[n]
                    cap_claim[n] = cap_claim[n] + c_draw[n]
                    for h in range(H):
                        hurdles[h, n] = hurdles[h, n] + c_draw[n]
            # 4. waterfall: from an early termination on, the termination list
            offer, fresh = 0.0, 0.0
            for j in range(J):
                pools[j] = released[j] + withheld[j]
                offer = pools[j] if j == 0 else offer + pools[j]
                fresh = released[j] if j == 0 else fresh + released[j]
            wound_down = terminated and t >= tm
            if not offer > DUST:
                left = 0.0
            else:
                first, last = (ranges[2], ranges[3]) if wound_down else (ranges[0], ranges[1])
                # the steps in order (sibsim.waterfall._run_steps), for this path
                left = offer
                old = max(offer - fresh, 0.0)
                for s in range(first, last):
                    k = kind[s]
                    shared = k == SPLIT or (k == SUCCESS_FEE and not shas_amount[s])
                    on_offer = max(left - old, 0.0) if shared else left
                    base = on_offer
                    if nafter[s] > 0:
                        repaid = True
                        for a in range(nafter[s]):
                            c = after[s, a]
                            owes = (interest[c] + principal[c]) > REPAID
                            if not (drawn[c] > REPAID and not owes):
                                repaid = False
                        if not repaid:
                            base = 0.0
                    cap_left = max(scap[s] - step_paid[s], 0.0) if shas_cap[s] else np.inf
                    budget = min(base, cap_left) if shas_cap[s] else base
                    if not budget > DUST:
                        continue
                    if k == INTEREST or k == PRINCIPAL or k == HURDLE or k == TO_CAP:
                        n = ncols[s]
                        for i in range(n):
                            c = cols[s, i]
                            room_c = max(cap_claim[c], 0.0)
                            if k == INTEREST:
                                owed[i] = min(interest[c], room_c)
                            elif k == PRINCIPAL:
                                owed[i] = min(principal[c], room_c)
                            elif k == HURDLE:
                                owed[i] = min(max(hurdles[hidx[s], c], 0.0), room_c)
                            else:
                                owed[i] = room_c if drawn[c] > DUST else 0.0
                            part[i] = drawn[c]  # the weights of a to_cap step
                        _share_out(budget, owed, n, group[s], ngroups[s], part, k == TO_CAP, give, w, paid_n)
                        for i in range(N):
                            full[i] = 0.0
                        for i in range(n):
                            full[cols[s, i]] = give[i]
                        _book(full, N, interest, principal, cap_claim, hurdles, received_n, dist, int_paid, prin_paid, p, t)
                        spent = _psum(full, N)
                    elif k == SUCCESS_FEE:
                        if shas_amount[s]:
                            g_ = min(budget, max(samount[s] - step_paid[s], 0.0))
                        else:
                            g_ = base * sshare[s] if not shas_cap[s] else min(base * sshare[s], cap_left)
                        provider[p, t] += g_
                        spent = g_
                    elif k == FEES:
                        g_ = min(budget, max(fee_cum[t] - state[0], 0.0))
                        state[0] = state[0] + g_
                        wfees[p, t] += g_
                        spent = g_
                    elif k == RECOUP:
                        for g in range(G):
                            owed[g] = max(g_paid[g] - recovered[g], 0.0) * grecoup[g]
                        _share_out(budget, owed, G, one_group, 1, owed, False, give, w, paid_n)  # pro rata to what is owed
                        spent = 0.0
                        for g in range(G):
                            recovered[g] = recovered[g] + give[g]
                            g_rec[g, p, t] += give[g]
                            spent += give[g]
                    else:  # split
                        for i in range(N):
                            full[i] = 0.0
                        X = ntargets[s]
                        spent = 0.0
                        for x in range(X):
                            pt = base * tshare[s, x]
                            c = target[s, x]
                            if c >= 0:
                                room_c = max(cap_claim[c], 0.0) if drawn[c] > DUST else 0.0
                                pt = min(pt, room_c)
                            part[x] = pt
                            spent += pt
                        if shas_cap[s]:
                            scale = min(cap_left / spent if spent > cap_left else 1.0, 1.0)
                            for x in range(X):
                                part[x] = part[x] * scale
                            spent = spent * scale
                        for x in range(X):
                            c = target[s, x]
                            if c == TO_PROVIDER:
                                provider[p, t] += part[x]
                            elif c == TO_PAYER:
                                to_payers[p, t] += part[x]
                            else:
                                full[c] += part[x]
                        _book(full, N, interest, principal, cap_claim, hurdles, received_n, dist, int_paid, prin_paid, p, t)
                    step_paid[s] = step_paid[s] + spent
                    if not shared:
                        old = max(old - spent, 0.0)
                    left = max(left - spent, 0.0)
                left = 0.0 if left < DUST else left
            for j in range(J):
                share = pools[j] / offer if offer > 0 else 0.0
                withheld[j] = share * left
                pwith[j, p, t] = withheld[j]
                pret[j, p, t] = (withheld[j] - (pwith[j, p, t - 1] if t else 0.0)) + share * to_payers[p, t]
            # 5. guarantees
            if G:
                run_active = False
                for g in range(G):
                    for n in range(N):
                        got[n] = _psum(g_payouts[p, n], T)
                    if gkind[g] == 0:
                        if not run_active:
                            for n in range(N):
                                run_got[n] = got[n]
                            run_active = True
                        for n in range(N):
                            got[n] = run_got[n]
                    else:
                        run_active = False
                    if gwhen[g] == 0:
                        pays = t == payout_month
                    elif gwhen[g] == 1:
                        pays = tm == t
                    else:
                        pays = tm == t or (tm < 0 and t == payout_month)
                    if not pays:
                        continue
                    for n in range(N):
                        cov = 1.0 if gcovered[g, n] else 0.0
                        loss[n] = max(drawn[n] - received_n[n] - got[n], 0.0) * cov
                    if gkind[g] == 0:
                        for n in range(N):
                            cov = 1.0 if gcovered[g, n] else 0.0
                            left_n[n] = max(drawn[n] - received_n[n] - _psum(g_payouts[p, n], T), 0.0)
                            cover[n] = min(gshare[g] * loss[n], left_n[n] * cov)
                    elif gkind[g] == 1:
                        total = _psum(loss, N)
                        f = min(gamount[g] / total if total > 0 else 1.0, 1.0)
                        for n in range(N):
                            cover[n] = loss[n] * f
                    else:
                        for n in range(N):
                            cov = 1.0 if gcovered[g, n] else 0.0
                            cover[n] = max(gfloor[g] * drawn[n] - received_n[n] - got[n], 0.0) * cov
                    if ghas_cap[g]:
                        room_g = max(gcap[g] - g_paid[g], 0.0)
                        total = _psum(cover, N)
                        f = min(room_g / total if total > room_g else 1.0, 1.0)
                        for n in range(N):
                            cover[n] = cover[n] * f
                    for n in range(N):
                        to_principal = min(cover[n], principal[n])
                        principal[n] = principal[n] - to_principal
                        interest[n] = max(interest[n] - (cover[n] - to_principal), 0.0)
                        cap_claim[n] = cap_claim[n] - cover[n]
                        for h in range(H):
                            hurdles[h, n] = hurdles[h, n] - cover[n]
                        g_payouts[p, n, t] += cover[n]
                    paid_g = _psum(cover, N)
                    g_pay[g, p, t] = paid_g
                    g_paid[g] += paid_g
