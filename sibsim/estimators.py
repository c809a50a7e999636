"""Monte Carlo estimators of the summary rows, with their standard errors, alone or paired.

Each row of a run's summary (:func:`sibsim.metrics.summarise`) is a :class:`Statistic`: what
it estimates (a mean, a probability, a quantile, a tail mean or a ratio of means) and the
per-path values it reads.  :meth:`Statistic.estimate` gives the estimate and its standard
error: means use ``sd / sqrt(n)``, probabilities ``sqrt(p (1 - p) / n)``, ratios the delta
method, and quantiles or tail means (CVaR) the spread of the estimate over
:data:`N_BATCHES` independent batches of paths (batch means).

:meth:`Statistic.difference` gives the difference between two runs' estimates.  When path
``i`` of both runs drew the same random numbers (common random numbers: the same seed and the
same draws, :attr:`sibsim.results.Results.draws`), the pairs of paths are independent of one
another, so the difference's standard error is computed from the per-path differences (or from
the batch estimates' differences): what is common to both runs cancels, which is the point of
comparing deals on shared random numbers.  Otherwise the standard errors add in quadrature, as
for independent runs (approximately: the runs share their seed, and their draws agree up to the
first one that differs, which usually makes this conservative).

Batch errors need batches of some size: for the difference of two medians on shared random
numbers they ran 30 % below the estimates' spread with 20 paths a batch (400 paths), 6 % with
100 and none with 400 (8,000 paths), in tests/test_compare.py's setting; a paired difference of
quantiles or tail means has no error below :data:`PAIRED_BATCH_FROM` paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Batches of paths behind the standard errors of quantiles and tail means.
N_BATCHES = 20
#: Fewest paths for the paired error of a difference of quantiles or tail means (100 a batch):
#: with fewer, batch errors of such differences run low (module notes).
PAIRED_BATCH_FROM = 100 * N_BATCHES

KINDS = ("mean", "probability", "quantile", "lower_tail_mean", "upper_tail_mean", "ratio")


def _quantile_of(v: np.ndarray, q: float) -> float:
    """``q``-quantile of the finite values (NaN when there are none)."""
    return np.nanquantile(v, q) if np.isfinite(v).any() else np.nan


def _lower_tail_mean(v: np.ndarray, alpha: float) -> float:
    """Mean of the lowest ``alpha`` share of values (at least one)."""
    v = np.sort(v)
    k = max(int(np.ceil(alpha * len(v))), 1)
    return v[:k].mean()


def _upper_tail_mean(v: np.ndarray, alpha: float) -> float:
    """Mean of the highest ``alpha`` share of values (a payer's or guarantor's bad tail)."""
    return -_lower_tail_mean(-v, alpha)


_OF_BATCH = {"quantile": _quantile_of, "lower_tail_mean": _lower_tail_mean, "upper_tail_mean": _upper_tail_mean}


def _spread(stats) -> float:
    """Standard error of a full-sample estimate from its batch estimates (finite ones)."""
    stats = np.asarray(stats, dtype=float)
    stats = stats[np.isfinite(stats)]
    if len(stats) < 2:
        return float("nan")
    # A batch of size n/B has B times the variance of the full-sample estimate.
    return float(stats.std(ddof=1) / np.sqrt(len(stats)))


def _mean_se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


@dataclass(frozen=True, eq=False)
class Statistic:
    """One summary row's estimator and the per-path values it reads.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    values : tuple of ndarray (paths,)
        ``(x,)`` (a mean, quantile or tail mean: float; a probability: bool), or
        ``(numerator, denominator)`` for a ratio of means.
    level : float
        The quantile (``quantile``) or the tail's share of paths (``*_tail_mean``).
    """

    kind: str
    values: tuple
    level: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Statistic.kind: one of {', '.join(KINDS)}, not {self.kind!r}")

    @classmethod
    def mean(cls, x) -> "Statistic":
        return cls("mean", (np.asarray(x, dtype=float),))

    @classmethod
    def probability(cls, mask) -> "Statistic":
        return cls("probability", (np.asarray(mask, dtype=bool),))

    @classmethod
    def quantile(cls, x, q: float) -> "Statistic":
        return cls("quantile", (np.asarray(x, dtype=float),), q)

    @classmethod
    def lower_tail_mean(cls, x, alpha: float = 0.05) -> "Statistic":
        """Mean of the worst ``alpha`` share of outcomes (an investor's CVaR)."""
        return cls("lower_tail_mean", (np.asarray(x, dtype=float),), alpha)

    @classmethod
    def upper_tail_mean(cls, x, alpha: float = 0.05) -> "Statistic":
        """Mean of the largest ``alpha`` share of outcomes (a payer's or guarantor's bad tail)."""
        return cls("upper_tail_mean", (np.asarray(x, dtype=float),), alpha)

    @classmethod
    def ratio(cls, numerator, denominator) -> "Statistic":
        """Ratio of the means (e.g. payments per primary outcome)."""
        return cls("ratio", (np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)))

    @property
    def n_paths(self) -> int:
        return len(self.values[0])

    def _batches(self) -> list[float]:
        f = _OF_BATCH[self.kind]
        return [f(b, self.level) for b in np.array_split(self.values[0], N_BATCHES)]

    def _ratio_parts(self):
        """The ratio of means and its delta-method residuals per path (None when the denominator's mean is 0)."""
        num, den = self.values
        mn, md = num.mean(), den.mean()
        if md == 0:
            return None
        r = mn / md
        return r, (num - r * den) / md

    def estimate(self) -> tuple[float, float]:
        """The estimate and its Monte Carlo standard error (NaN where too few paths)."""
        if self.kind == "mean":
            x = self.values[0]
            return float(x.mean()), _mean_se(x)
        if self.kind == "probability":
            mask = self.values[0]
            p = float(np.mean(mask))
            return p, float(np.sqrt(p * (1 - p) / len(mask)))
        if self.kind == "ratio":
            parts = self._ratio_parts()
            if parts is None:
                return float("nan"), float("nan")
            r, resid = parts
            return float(r), float(resid.std(ddof=1) / np.sqrt(len(resid)))
        x = self.values[0]
        est = float(_OF_BATCH[self.kind](x, self.level))
        return est, (float("nan") if len(x) < 2 * N_BATCHES else _spread(self._batches()))

    def difference(self, base: "Statistic", paired: bool) -> tuple[float, float]:
        """This run's estimate minus ``base``'s, and the difference's standard error.

        ``paired``: path ``i`` of both runs drew the same random numbers, so the pairs of paths
        are independent of one another and the standard error comes from the per-path (or per
        batch) differences.  Otherwise, or when the runs differ in kind or number of paths, the
        runs are taken as independent: ``sqrt(se**2 + se_base**2)``.
        """
        est, se = self.estimate()
        est_b, se_b = base.estimate()
        difference = est - est_b
        if not paired or base.kind != self.kind or base.level != self.level or base.n_paths != self.n_paths:
            return difference, float(np.hypot(se, se_b))
        if self.kind in ("mean", "probability"):
            d = self.values[0].astype(float) - base.values[0].astype(float)
            return difference, _mean_se(d)
        if self.kind == "ratio":
            mine, theirs = self._ratio_parts(), base._ratio_parts()
            if mine is None or theirs is None:
                return difference, float("nan")
            return difference, _mean_se(mine[1] - theirs[1])
        if self.n_paths < PAIRED_BATCH_FROM:
            return difference, float("nan")
        return difference, _spread(np.subtract(self._batches(), base._batches()))
