"""Correlated uncertainty: common factors, calendar-time shocks and a Gaussian copula over priors.

Without these each path draws every journey parameter on its own, and the treated and the
comparison group share no labour market (beyond ``[comparison] shared`` parameters).  Three
terms, all data in the scenario (``[[factors]]``, ``[[shocks]]``, ``[correlation]``), change that:

* A **common factor** (:class:`Factor`) is one draw per path, a multiplier ``F`` with mean 1
  (lognormal: ``F = exp(sigma Z - sigma^2 / 2)``, ``Z`` standard normal), that moves the named
  parameters of every group it reaches together: one labour market for the treated and the
  comparison group, good or bad on that path.
* A **shock** (:class:`Shock`) moves the named parameters in calendar months
  ``start_month .. start_month + months - 1`` by ``1 + change`` (a recession from month 12 for
  18 months cutting job finding by 30 %: ``change = -0.3``), on every path or, with
  ``probability`` below 1, on the paths where it happens (one draw per path).
* A **copula** (:class:`Copula`) correlates the priors of named parameters: their ranks are those
  of correlated standard normals (a Gaussian copula with the given correlation matrix), their
  margins stay the priors.

What a multiplier moves is the *hazard*: a monthly probability ``p`` becomes
``1 - (1 - p) ** F`` (``p F`` for small ``p``, never above 1: a 30 % cut of 5 %/month gives
3.53 %/month), a rate (events per participant-month) becomes ``rate F``.  Several multipliers on
one parameter multiply.  They reach the groups that meet the labour market: the treated group and
a measured comparison group, never a modelled counterfactual (``comparison.method =
"expected"``): that is the contract's formula, fixed when it was signed, and it does not see the
recession.  This is the difference the shipped recession example quantifies.

A path's parameters are then piecewise constant in calendar time: :class:`Regimes` holds them per
*regime* (months between consecutive shock edges), which the engine, the reference simulator and
the exact expectation read alike.

Draw order (within a block, :mod:`sibsim.montecarlo`): the copula's normals (paths x named
parameters, row by row), then the parameters as before (a parameter the copula names is not drawn
again), then each factor's normal (one per path, factors in declared order) and each uncertain
shock's uniform (one per path, shocks in declared order, only if ``probability < 1``), then the
journeys.  A scenario without these terms draws exactly what it drew before.  A portfolio gives
shared factors and shocks instead (drawn once for all its deals: ``given`` in :func:`draw`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

#: Groups a factor or shock can reach.
GROUPS = ("treated", "comparison")
#: Largest factor sd (of the log multiplier): beyond it the multiplier's tail is meaningless.
MAX_SIGMA = 2.0
#: Tolerances of a correlation matrix's checks: symmetry and positive semi-definiteness.
SYMMETRY_TOLERANCE = 1e-12
PSD_TOLERANCE = 1e-10


@dataclass(frozen=True)
class Factor:
    """A common factor of a path: one lognormal multiplier with mean 1 on the hazards of named parameters.

    Attributes
    ----------
    name : str
        How reports and portfolios refer to it (a portfolio shares factors by name).
    sigma : float
        Standard deviation of the log multiplier (0.2: the multiplier's middle 90 % is about 0.70 .. 1.35).
    parameters : tuple of str
        Journey parameters it multiplies.
    groups : tuple of str
        Groups it reaches (``treated``, ``comparison``).
    """

    name: str
    sigma: float
    parameters: tuple[str, ...]
    groups: tuple[str, ...] = GROUPS

    def multiplier(self, z: np.ndarray) -> np.ndarray:
        """The multiplier for standard normals ``z``: ``exp(sigma z - sigma^2 / 2)``, mean 1."""
        return np.exp(self.sigma * np.asarray(z, dtype=float) - 0.5 * self.sigma**2)


@dataclass(frozen=True)
class Shock:
    """A shock in calendar time: the hazards of named parameters times ``1 + change`` for ``months`` months.

    Attributes
    ----------
    name : str
    start_month : int
        First month hit (0 = the contract's first month).
    months : int
        Months it lasts (>= 1); months past the horizon are not simulated.
    parameters : tuple of str
    change : float
        Relative change of the hazard, >= -1 (-0.3: job finding 30 % lower; -1: none at all).
    probability : float
        Probability that it happens on a path, in (0, 1]; 1: on every path (a what-if).
    groups : tuple of str
    """

    name: str
    start_month: int
    months: int
    parameters: tuple[str, ...]
    change: float
    probability: float = 1.0
    groups: tuple[str, ...] = GROUPS

    @property
    def end_month(self) -> int:
        """First month no longer hit."""
        return self.start_month + self.months


@dataclass(frozen=True)
class Copula:
    """A Gaussian copula over named uncertain parameters.

    Attributes
    ----------
    parameters : tuple of str
        A treated journey parameter by its name, a parameter the comparison group draws on its own
        as ``comparison.<name>``.
    matrix : tuple of tuple of float
        Correlation matrix of the normals behind their ranks: symmetric, unit diagonal, positive
        semi-definite (:func:`matrix_problem`).
    """

    parameters: tuple[str, ...]
    matrix: tuple[tuple[float, ...], ...]

    def loadings(self) -> np.ndarray:
        """``L`` with ``L @ L.T`` = the matrix: Cholesky, or from the eigen-decomposition when singular."""
        r = np.array(self.matrix, dtype=float)
        try:
            return np.linalg.cholesky(r)
        except np.linalg.LinAlgError:  # semi-definite (e.g. a correlation of exactly 1)
            w, v = np.linalg.eigh(r)
            return v * np.sqrt(np.clip(w, 0.0, None))


@dataclass(frozen=True)
class Uncertainty:
    """A scenario's correlated uncertainty (all empty: every parameter on its own, as before)."""

    factors: tuple[Factor, ...] = ()
    shocks: tuple[Shock, ...] = ()
    copula: Copula | None = None

    @property
    def is_empty(self) -> bool:
        return not self.factors and not self.shocks and self.copula is None

    @property
    def names(self) -> tuple[str, ...]:
        """Factors then shocks, in declared order: what a path's :class:`Draws` hold."""
        return tuple(f.name for f in self.factors) + tuple(s.name for s in self.shocks)


def matrix_problem(matrix, n: int) -> str | None:
    """Why ``matrix`` is not an ``n x n`` correlation matrix (one phrase), or None when it is one.

    Rules, in order: n rows of n numbers, finite, unit diagonal (exactly 1), entries in [-1, 1],
    symmetric (within 1e-12), positive semi-definite (smallest eigenvalue >= -1e-10).
    """
    if (not isinstance(matrix, (list, tuple)) or not all(isinstance(row, (list, tuple)) for row in matrix)
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for row in matrix for x in row)):
        return f"must be an array of arrays of numbers, got {matrix!r}"[:200]
    if len(matrix) != n or any(len(row) != n for row in matrix):
        return f"must be {n} x {n} (one row and column per parameter), got rows of {[len(r) for r in matrix]}"
    r = np.array(matrix, dtype=float)
    if not np.all(np.isfinite(r)):
        return "must hold finite numbers"
    bad = np.flatnonzero(np.diag(r) != 1.0)
    if bad.size:
        i = int(bad[0])
        return f"must have 1 on the diagonal, got {r[i, i]:.15g} at [{i}][{i}]"
    out = np.argwhere(np.abs(r) > 1.0)
    if out.size:
        i, j = (int(x) for x in out[0])
        return f"must have entries in [-1, 1], got {r[i, j]:.15g} at [{i}][{j}]"
    asym = np.argwhere(np.abs(r - r.T) > SYMMETRY_TOLERANCE)
    if asym.size:
        i, j = (int(x) for x in asym[0])
        return f"must be symmetric, got {r[i, j]:.15g} at [{i}][{j}] and {r[j, i]:.15g} at [{j}][{i}]"
    low = float(np.linalg.eigvalsh(r).min())
    if low < -PSD_TOLERANCE:
        return (f"must be positive semi-definite (a valid correlation matrix), got smallest eigenvalue "
                f"{low:.6g}")
    return None


# --- drawing -------------------------------------------------------------------------------------

def copula_ranks(copula: Copula, rng: np.random.Generator, n_paths: int) -> np.ndarray:
    """Ranks in (0, 1) per path and named parameter, shape ``(n_paths, k)``: ``Phi(Z L^T)``.

    Draws ``n_paths x k`` standard normals, row by row (the module's draw order).
    """
    z = rng.standard_normal((n_paths, len(copula.parameters)))
    return special.ndtr(z @ copula.loadings().T)


def copula_columns(copula: Copula | None, journeys: dict, rng: np.random.Generator, n_paths: int) -> dict:
    """Per group, the columns the copula fixes: ``{"treated": {name: values}, "comparison": {...}}``.

    ``journeys`` maps ``"treated"`` and ``"comparison"`` to their journeys (priors); each named
    parameter is its prior's quantile of its rank.  Nothing is drawn without a copula.
    """
    out = {"treated": {}, "comparison": {}}
    if copula is None:
        return out
    ranks = copula_ranks(copula, rng, n_paths)
    for k, name in enumerate(copula.parameters):
        group, _, pname = name.rpartition(".")
        group = group or "treated"
        prior = dict(journeys[group].parameters)[pname]
        out[group][pname] = prior.quantile(ranks[:, k])
    return out


@dataclass(frozen=True)
class Draws:
    """A block's draws of the factors and shocks, one value per path.

    Attributes
    ----------
    normals : dict of str -> ndarray (paths,)
        Each factor's standard normal.
    happens : dict of str -> ndarray (paths,) bool
        Whether each shock happens on the path.
    """

    normals: dict
    happens: dict

    def columns(self, uncertainty: Uncertainty) -> dict[str, np.ndarray]:
        """What a path drew, by name: each factor's multiplier and each shock's 0/1 (scenario discovery)."""
        out = {f.name: f.multiplier(self.normals[f.name]) for f in uncertainty.factors}
        out.update({s.name: self.happens[s.name].astype(float) for s in uncertainty.shocks})
        return out

    def take(self, lo: int, hi: int) -> "Draws":
        """Paths ``lo .. hi - 1``."""
        return Draws({k: v[lo:hi] for k, v in self.normals.items()}, {k: v[lo:hi] for k, v in self.happens.items()})


def draw(uncertainty: Uncertainty, rng: np.random.Generator, n_paths: int, given: Draws | None = None) -> Draws:
    """Each factor's normal and each shock's occurrence per path (draw order: module notes).

    ``given`` (a portfolio's shared draws, for these paths) is used for the names it holds;
    nothing is drawn for them.
    """
    normals, happens = {}, {}
    for f in uncertainty.factors:
        if given is not None and f.name in given.normals:
            normals[f.name] = np.asarray(given.normals[f.name], dtype=float)
        else:
            normals[f.name] = rng.standard_normal(n_paths)
    for s in uncertainty.shocks:
        if given is not None and s.name in given.happens:
            happens[s.name] = np.asarray(given.happens[s.name], dtype=bool)
        elif s.probability < 1.0:
            happens[s.name] = rng.random(n_paths) < s.probability
        else:
            happens[s.name] = np.ones(n_paths, dtype=bool)
    for name, column in list(normals.items()) + list(happens.items()):
        if column.shape != (n_paths,):
            raise ValueError(f"given draws of {name}: shape {column.shape}, expected ({n_paths},)")
    return Draws(normals, happens)


# --- what the draws do to a group's parameters ---------------------------------------------------

@dataclass(frozen=True)
class Regimes:
    """A group's parameters per path, piecewise constant in calendar time.

    Attributes
    ----------
    starts : ndarray (R,) int64
        First calendar month of each regime; ``starts[0] == 0``, increasing.
    params : ndarray (paths, R, P) float64
        Each path's parameter values in each regime (columns in ``Journey.parameters`` order).
    """

    starts: np.ndarray
    params: np.ndarray

    @property
    def n_regimes(self) -> int:
        return int(self.starts.size)

    def of_month(self, month) -> np.ndarray:
        """The regime index of each calendar month given."""
        return np.searchsorted(self.starts, np.asarray(month), side="right") - 1

    def monthly(self, n_months: int) -> np.ndarray:
        """Parameters month by month, ``(paths, n_months, P)``: what the reference simulator reads."""
        return self.params[:, self.of_month(np.arange(n_months)), :]


def regime_starts(shocks, n_months: int) -> np.ndarray:
    """Calendar months where the parameters may change: 0 and every shock's edges within the horizon."""
    edges = {0}
    for s in shocks:
        edges.update(m for m in (s.start_month, s.end_month) if 0 < m < n_months)
    return np.array(sorted(edges), dtype=np.int64)


def scale_hazard(values: np.ndarray, multiplier: np.ndarray, is_rate: bool) -> np.ndarray:
    """``values`` with their hazard times ``multiplier``: ``1 - (1 - p) ** F`` for a probability, ``rate F``."""
    values = np.asarray(values, dtype=float)
    multiplier = np.asarray(multiplier, dtype=float)
    if is_rate:
        return values * multiplier
    with np.errstate(invalid="ignore", divide="ignore"):
        out = -np.expm1(multiplier * np.log1p(-values))
    # A multiplier of 0 (a change of -100 %) is no hazard, even for a certain exit (0 * -inf is not a number).
    return np.where(multiplier == 0.0, 0.0, np.where(values >= 1.0, 1.0, out))


def reaches(uncertainty: Uncertainty, group: str) -> bool:
    """Whether any factor or shock reaches ``group``."""
    return any(group in t.groups for t in uncertainty.factors + uncertainty.shocks)


def regimes(uncertainty: Uncertainty, journey, params: np.ndarray, draws: Draws, group: str,
            n_months: int) -> Regimes:
    """``group``'s parameters (paths, P) moved by the factors and shocks that reach it.

    One regime (the factors only) when no shock reaching the group falls within the horizon.
    """
    params = np.asarray(params, dtype=float)
    names = journey.parameter_names
    kinds = {n: prior.kind == "rate" for n, prior in journey.parameters}
    shocks = tuple(s for s in uncertainty.shocks if group in s.groups)
    starts = regime_starts(shocks, n_months)
    n, R = params.shape[0], starts.size
    mult = np.ones((n, R, len(names)))
    for f in uncertainty.factors:
        if group in f.groups:
            m = f.multiplier(draws.normals[f.name])
            for name in f.parameters:
                mult[:, :, names.index(name)] *= m[:, None]
    for s in shocks:
        on = (starts >= s.start_month) & (starts < s.end_month)  # regimes the shock covers (edges are regime starts)
        if not on.any():
            continue
        m = np.where(draws.happens[s.name], 1.0 + s.change, 1.0)
        for name in s.parameters:
            j = names.index(name)
            mult[:, on, j] *= m[:, None]
    out = np.repeat(params[:, None, :], R, axis=1)
    for j, name in enumerate(names):
        if np.any(mult[:, :, j] != 1.0):
            out[:, :, j] = scale_hazard(out[:, :, j], mult[:, :, j], kinds[name])
    return Regimes(starts, out)
