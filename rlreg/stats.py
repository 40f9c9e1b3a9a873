r"""Honest statistics for benchmark reports, after rliable.

Agarwal, Schwarzer, Castro, Courville, Bellemare (2021), "Deep Reinforcement Learning at the Edge of
the Statistical Precipice", NeurIPS, arXiv:2108.13264; reference code github.com/google-research/rliable
(``rliable.metrics`` and ``rliable.library``). Implemented here in numpy/scipy, without rliable.

Scores are given per *task* (one dataset or environment) as a ragged list ``scores``: one 1-D array
of per-seed (per-run) scores per task; tasks may have different numbers of runs. A 2-D array is read
as ``(tasks, runs)``, rows being tasks: the transpose of rliable's ``(runs, tasks)`` score matrices.
Write :math:`x_{t,i}` for run :math:`i` of task :math:`t`, :math:`n_t` runs in task :math:`t`,
:math:`T` tasks and :math:`N = \sum_t n_t` runs in all.

Point statistics, over all runs of all tasks pooled (rliable's aggregate metrics):

* ``iqm``: interquartile mean, ``scipy.stats.trim_mean(x, 0.25)``: sort the :math:`N` values, cut
  :math:`\lfloor N/4 \rfloor` from each end, average the rest (scipy's rule, as rliable; no
  partial weighting when :math:`N/4` is not a whole number).
* ``mean``: :math:`\frac1N \sum_{t,i} x_{t,i}`; ``median``: the median of the pooled values.
* ``optimality_gap``: :math:`\frac1N \sum_{t,i} \max(\gamma - x_{t,i}, 0)` with threshold
  :math:`\gamma` (default 100, for D4RL-normalised scores; rliable's default 1 is for scores
  normalised to 1).

Uncertainty (rliable's ``StratifiedBootstrap`` with ``conf_int(method="percentile")``): each
bootstrap resample draws, independently per task, :math:`n_t` runs with replacement from that task's
runs, and the statistic is computed on the pooled resample. Over ``reps`` resamples the interval is
the :math:`(1-c)/2` and :math:`(1+c)/2` quantiles of the resampled statistic (confidence :math:`c`).
All resamples are drawn and evaluated as arrays at once (no Python loop over the resamples).

Probability of improvement (rliable's ``probability_of_improvement``):
:math:`P(X > Y) = \frac1T \sum_t \frac{1}{n^x_t n^y_t} \sum_{i,j}
\left([x_{t,i} > y_{t,j}] + \tfrac12 [x_{t,i} = y_{t,j}]\right)`, the per-task Mann-Whitney U
statistic normalised, averaged over tasks.

Performance profile (rliable's run-score distribution): for each threshold :math:`\tau`,
:math:`F(\tau) = \frac1T \sum_t \frac{1}{n_t} \sum_i [x_{t,i} > \tau]`, the fraction of runs scoring
above :math:`\tau`, each task weighted equally (this equals rliable's pooled fraction when every task
has the same number of runs).

Also :func:`mean_std_ci`: the mean, sample standard deviation and Student-t interval of one sample.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike

from rlreg.errors import RlregError, check

__all__ = [
    "STATISTICS",
    "aggregate",
    "iqm",
    "mean_std_ci",
    "performance_profile",
    "performance_profile_ci",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "stratified_bootstrap_ci",
]

STATISTICS = ("iqm", "mean", "median", "optimality_gap")

# Aggregate-statistic resamples are evaluated in blocks of at most this many values (resamples × runs), so
# memory stays bounded (~32 MiB of float64) however many resamples are asked for.
_BLOCK_VALUES = 1 << 22


# ---------------------------------------------------------------------------------------------- checks


def _as_float(values: ArrayLike, what: str) -> np.ndarray:
    """``values`` as a float array (shape kept); values that are not numbers are an error."""
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise RlregError(f"{what}: not all numbers ({e})", "pass arrays of real numbers") from None


def _check_finite(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` unchanged; a nan or infinite value is an error naming ``what`` and its index."""
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise RlregError(
            f"a run's score is {x.flat[bad[0]]} ({what}, index {bad[0]})",
            "report only finished runs: drop runs whose score is nan or inf",
        )
    return x


def _finite_1d(values: ArrayLike, what: str) -> np.ndarray:
    """``values`` flattened to a finite 1-D float array."""
    return _check_finite(_as_float(values, what).ravel(), what)


def _tasks(scores: Sequence[ArrayLike], what: str = "scores") -> list[np.ndarray]:
    """Validate ragged per-task scores: a non-empty list of non-empty, finite 1-D arrays."""
    if isinstance(scores, np.ndarray):
        ok = scores.ndim >= 1
    else:
        ok = isinstance(scores, Sequence) and not isinstance(scores, (str, bytes))
    check(
        ok,
        f"{what} must be a sequence of per-task score arrays, got {type(scores).__name__}",
        "pass one 1-D array of per-seed scores per task, e.g. [np.array([71.2, 68.0]), ...]",
    )
    tasks = list(scores)
    check(len(tasks) > 0, f"{what} has no tasks", "pass at least one task's array of per-seed scores")
    out = []
    for t, task in enumerate(tasks):
        arr = _as_float(task, f"{what}, task {t}")
        check(
            arr.ndim == 1,
            f"{what}: task {t} is a {arr.ndim}-D array of shape {arr.shape}, not 1-D",
            "give each task a 1-D array of per-seed scores (one task: [scores]; 2-D arrays are tasks x runs)",
        )
        check(arr.size > 0, f"{what}: task {t} has no scores", "drop that task or add its finished runs")
        out.append(_check_finite(arr, f"{what}, task {t}"))
    return out


def _check_conf(conf: float) -> None:
    ok = isinstance(conf, numbers.Real) and not isinstance(conf, bool) and 0.0 < conf < 1.0
    check(ok, f"conf must be a number in (0, 1), got {conf!r}", "use e.g. conf=0.95")


def _check_reps(reps: int) -> None:
    ok = isinstance(reps, numbers.Integral) and not isinstance(reps, bool) and reps >= 1
    check(ok, f"reps must be an integer >= 1, got {reps!r}", "use e.g. reps=2000")


def _check_gamma(gamma: float) -> None:
    ok = isinstance(gamma, numbers.Real) and not isinstance(gamma, bool) and math.isfinite(gamma)
    check(
        ok, f"gamma must be a finite number, got {gamma!r}", "use e.g. gamma=100 for D4RL-normalised scores"
    )


def _percentile_ci(samples: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``(1-conf)/2`` and ``(1+conf)/2`` quantiles of ``samples`` along axis 0 (percentile CI)."""
    lo, hi = np.percentile(samples, [50.0 * (1.0 - conf), 50.0 * (1.0 + conf)], axis=0)
    return lo, hi


# ------------------------------------------------------------------------------------ point statistics


def iqm(values: ArrayLike) -> float:
    """Interquartile mean of all values flattened: ``scipy.stats.trim_mean(x, 0.25)``.

    The mean of the middle 50 %: ``floor(n/4)`` values are cut from each end of the sorted values
    (rliable's ``aggregate_iqm``, Agarwal et al. 2021). ``nan`` for no values.
    """
    x = _finite_1d(values, "values")
    if x.size == 0:
        return math.nan
    return float(scipy.stats.trim_mean(x, 0.25))


def mean_std_ci(values: ArrayLike, conf: float = 0.95) -> tuple[float, float, float, float]:
    """``(mean, std, lo, hi)`` of all values flattened, with a Student-t interval of the mean.

    ``std`` is the sample standard deviation (ddof=1) and the interval is
    ``mean ± t_{(1+conf)/2, n-1} · std / sqrt(n)``. With one value std, lo and hi are ``nan``;
    with none, all four are.
    """
    _check_conf(conf)
    x = _finite_1d(values, "values")
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(np.mean(x))
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    std = float(np.std(x, ddof=1))
    half = float(scipy.stats.t.ppf(0.5 * (1.0 + conf), n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def _statistic_fn(statistic: str, gamma: float) -> Callable[[np.ndarray], np.ndarray]:
    """The named statistic as a function of a ``(..., runs)`` array, reducing the last axis."""
    if statistic not in STATISTICS:
        raise RlregError(
            f"unknown statistic {statistic!r}",
            f"use one of {', '.join(repr(s) for s in STATISTICS)}",
        )
    _check_gamma(gamma)
    if statistic == "iqm":
        return lambda x: scipy.stats.trim_mean(x, 0.25, axis=-1)
    if statistic == "mean":
        return lambda x: np.mean(x, axis=-1)
    if statistic == "median":
        return lambda x: np.median(x, axis=-1)
    return lambda x: np.mean(np.maximum(gamma - x, 0.0), axis=-1)


def aggregate(scores: Sequence[ArrayLike], statistic: str, *, gamma: float = 100.0) -> float:
    """One aggregate statistic over all runs of all tasks pooled (rliable's aggregate metrics).

    ``statistic``: ``"iqm"`` (``trim_mean(x, 0.25)``), ``"mean"``, ``"median"``, or
    ``"optimality_gap"`` (``mean(max(gamma - x, 0))``, threshold ``gamma``). Agarwal et al. 2021.
    """
    fn = _statistic_fn(statistic, gamma)
    return float(fn(np.concatenate(_tasks(scores))))


# ------------------------------------------------------------------------------------ bootstrap draws


def _block_sizes(reps: int, runs: int) -> list[int]:
    """Split ``reps`` resamples into blocks of at most ``_BLOCK_VALUES`` values (>= 1 resample)."""
    per = max(1, _BLOCK_VALUES // max(1, runs))
    return [min(per, reps - start) for start in range(0, reps, per)]


def _resample(rng: np.random.Generator, tasks: list[np.ndarray], reps: int) -> np.ndarray:
    """``(reps, N)``: per task, ``n_t`` runs drawn with replacement; tasks side by side."""
    return np.concatenate([x[rng.integers(0, x.size, size=(reps, x.size))] for x in tasks], axis=1)


def _resample_counts(rng: np.random.Generator, n: int, reps: int) -> np.ndarray:
    """``(reps, n)``: how often each of ``n`` runs is drawn in each resample of ``n`` draws."""
    idx = rng.integers(0, n, size=(reps, n)) + n * np.arange(reps)[:, None]
    return np.bincount(idx.ravel(), minlength=reps * n).reshape(reps, n).astype(float)


def stratified_bootstrap_ci(
    scores: Sequence[ArrayLike],
    statistic: str = "iqm",
    reps: int = 2000,
    conf: float = 0.95,
    seed: int = 0,
    *,
    gamma: float = 100.0,
) -> tuple[float, float, float]:
    """``(point, lo, hi)``: the aggregate statistic and its stratified-bootstrap percentile interval.

    Each of ``reps`` resamples draws, independently per task, ``n_t`` runs with replacement from that
    task's runs and computes ``statistic`` (see :func:`aggregate`) on the pooled resample; ``lo`` and
    ``hi`` are the ``(1-conf)/2`` and ``(1+conf)/2`` quantiles of those values (rliable's
    ``StratifiedBootstrap`` percentile CI, Agarwal et al. 2021). Reproducible:
    ``np.random.default_rng(seed)``.
    """
    fn = _statistic_fn(statistic, gamma)
    tasks = _tasks(scores)
    _check_reps(reps)
    _check_conf(conf)
    rng = np.random.default_rng(seed)
    runs = sum(x.size for x in tasks)
    boot = np.concatenate([fn(_resample(rng, tasks, block)) for block in _block_sizes(reps, runs)])
    lo, hi = _percentile_ci(boot, conf)
    return float(fn(np.concatenate(tasks))), float(lo), float(hi)


# -------------------------------------------------------------------------- probability of improvement


def _pair_tasks(x_scores: Sequence[ArrayLike], y_scores: Sequence[ArrayLike]) -> list[tuple[np.ndarray, ...]]:
    xs, ys = _tasks(x_scores, "x_scores"), _tasks(y_scores, "y_scores")
    check(
        len(xs) == len(ys),
        f"x_scores has {len(xs)} tasks but y_scores has {len(ys)}",
        "pass the same tasks, in the same order, for both algorithms",
    )
    return list(zip(xs, ys))


def _win_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``K[i, j] = [x_i > y_j] + 0.5 [x_i == y_j]``."""
    return (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])


def probability_of_improvement(x_scores: Sequence[ArrayLike], y_scores: Sequence[ArrayLike]) -> float:
    """``P(X > Y)``: per task the normalised Mann-Whitney U, averaged over tasks (rliable).

    Per task ``t``: ``mean over (i, j) of [x_i > y_j] + 0.5 [x_i == y_j]``, i.e.
    ``U / (n_x n_y)``; the result is the mean over tasks (Agarwal et al. 2021). Both
    arguments must list the same tasks in the same order; run counts may differ.
    """
    pairs = _pair_tasks(x_scores, y_scores)
    return float(np.mean([_win_matrix(x, y).mean() for x, y in pairs]))


def probability_of_improvement_ci(
    x_scores: Sequence[ArrayLike],
    y_scores: Sequence[ArrayLike],
    reps: int = 2000,
    conf: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(point, lo, hi)``: :func:`probability_of_improvement` and its stratified-bootstrap interval.

    Each resample redraws, per task and independently for ``x`` and for ``y``, that task's runs with
    replacement; with draw counts ``c^x``, ``c^y`` the resampled per-task value is
    ``c^x · K · c^y / (n_x n_y)`` with ``K`` the win matrix. ``lo``, ``hi`` are the ``(1-conf)/2``,
    ``(1+conf)/2`` quantiles over ``reps`` resamples. Reproducible: ``np.random.default_rng(seed)``.
    """
    pairs = _pair_tasks(x_scores, y_scores)
    _check_reps(reps)
    _check_conf(conf)
    rng = np.random.default_rng(seed)
    boot = np.zeros(reps)
    for x, y in pairs:
        k = _win_matrix(x, y)
        cx, cy = _resample_counts(rng, x.size, reps), _resample_counts(rng, y.size, reps)
        boot += np.einsum("rj,rj->r", cx @ k, cy) / (x.size * y.size)
    boot /= len(pairs)
    lo, hi = _percentile_ci(boot, conf)
    point = float(np.mean([_win_matrix(x, y).mean() for x, y in pairs]))
    return point, float(lo), float(hi)


# -------------------------------------------------------------------------------- performance profile


def _taus(taus: ArrayLike) -> np.ndarray:
    t = np.atleast_1d(_as_float(taus, "taus"))
    check(t.ndim == 1, f"taus must be 1-D, got shape {t.shape}", "pass a 1-D array of thresholds")
    check(not np.isnan(t).any(), "taus contains nan", "pass real thresholds, e.g. np.linspace(0, 100, 101)")
    return t


def performance_profile(scores: Sequence[ArrayLike], taus: ArrayLike) -> np.ndarray:
    """Run-score distribution ``F(tau) = mean over tasks t of (1/n_t) sum_i [x_{t,i} > tau]``.

    For each threshold the fraction of runs scoring strictly above it, each task weighted equally
    (rliable's ``create_performance_profile`` with the run-score distribution, Agarwal et al. 2021).
    Returns a 1-D array, one value per ``tau`` (a scalar ``taus`` gives one value).
    """
    tasks, t = _tasks(scores), _taus(taus)
    return np.mean([(x[:, None] > t[None, :]).mean(axis=0) for x in tasks], axis=0)


def performance_profile_ci(
    scores: Sequence[ArrayLike],
    taus: ArrayLike,
    reps: int = 2000,
    conf: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(profile, lo, hi)``: :func:`performance_profile` and its stratified-bootstrap band.

    Each resample redraws every task's runs with replacement (draw counts ``c``); the resampled
    per-task fraction above ``tau`` is ``c · [x > tau] / n_t``. ``lo``, ``hi`` are the pointwise
    ``(1-conf)/2``, ``(1+conf)/2`` quantiles over ``reps`` resamples (rliable's percentile CI).
    Reproducible: ``np.random.default_rng(seed)``.
    """
    tasks, t = _tasks(scores), _taus(taus)
    _check_reps(reps)
    _check_conf(conf)
    rng = np.random.default_rng(seed)
    boot = np.zeros((reps, t.size))
    for x in tasks:
        above = (x[:, None] > t[None, :]).astype(float)
        boot += _resample_counts(rng, x.size, reps) @ above / x.size
    boot /= len(tasks)
    lo, hi = _percentile_ci(boot, conf)
    return performance_profile(tasks, t), lo, hi
