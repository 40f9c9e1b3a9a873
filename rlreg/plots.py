"""Figures from training runs: metric curves of run folders, and report plots (learning curves with
confidence bands, aggregate interval estimates, performance profiles).

``read_metric`` reads one metric of a run folder; ``plot_runs`` draws metrics of several runs (what
``rlreg plot`` does). ``plot_curves``, ``plot_intervals`` and ``plot_profiles`` draw numbers a report
has already computed. Every plot is written atomically (a temporary file in the same folder, then
``os.replace``): a reader never sees a half-written image. matplotlib is imported on first use, so
``import rlreg.plots`` stays cheap.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlreg.errors import RlregError, check

__all__ = ["read_metric", "plot_runs", "plot_curves", "plot_intervals", "plot_profiles"]

EVAL_CSV = "eval.csv"
METRICS_CSV = "metrics.csv"
_RUN_FIX = "pass a folder `rlreg train` created (it holds eval.csv and metrics.csv)"
_DPI = 120


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (a notebook that already uses pyplot keeps its own)."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str | None]]]:
    """Header and rows of a CSV log (both empty when the file is missing or empty)."""
    if not path.is_file():
        return [], []
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RlregError(f"cannot read {path} ({e})", "check the file, or plot another run") from e


def _cell(value: str | None, path: Path, line: int, column: str) -> float | None:
    """A CSV cell as a float; ``None`` for an empty (or missing) cell."""
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise RlregError(
            f"{path} line {line}: column {column!r} holds {value!r}, not a number",
            "fix or remove that row of the file",
        ) from None


def _column(
    path: Path, rows: list[dict[str, str | None]], column: str, fallback: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of ``column``; where a value is empty or nan, ``fallback``'s value is used.

    Rows whose step or value is empty are skipped.
    """
    steps, values = [], []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        step = _cell(row.get("step"), path, i, "step")
        value = _cell(row.get(column), path, i, column)
        if fallback is not None and (value is None or math.isnan(value)):
            value = _cell(row.get(fallback), path, i, fallback)
        if step is None or value is None:
            continue
        steps.append(step)
        values.append(value)
    return np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)


def _metric_names(eval_cols: list[str], metric_cols: list[str]) -> list[str]:
    """The metric names a run offers: ``eval/score`` first, the other eval columns, then metrics.csv."""
    names = []
    if "score" in eval_cols or "return_mean" in eval_cols:
        names.append("eval/score")
    names += [f"eval/{c}" for c in eval_cols if c not in ("step", "score")]
    names += [c for c in metric_cols if c != "step"]
    return names


def read_metric(run_dir: Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of one metric of the run folder ``run_dir``.

    ``eval/<column>`` reads that column of ``eval.csv``; ``eval/score`` is the normalized score,
    falling back to ``return_mean`` in rows whose score is nan (a task without reference scores,
    e.g. MinAtar, so there the whole curve is the raw return). Any other name is a ``metrics.csv``
    column (``train/critic_loss``, ``reg/beer/srank``, ...); rows with an empty cell are skipped.
    Both arrays are float64 and of equal length, in file order. An unknown metric raises
    :class:`RlregError` listing the names the run has.
    """
    run_dir = Path(run_dir)
    check(run_dir.is_dir(), f"run folder {run_dir} does not exist", _RUN_FIX)
    eval_path, metrics_path = run_dir / EVAL_CSV, run_dir / METRICS_CSV
    check(
        eval_path.is_file() or metrics_path.is_file(),
        f"{run_dir} is not an rlreg run folder (it has neither {EVAL_CSV} nor {METRICS_CSV})",
        _RUN_FIX,
    )
    eval_cols, eval_rows = _read_csv(eval_path)
    metric_cols, metric_rows = _read_csv(metrics_path)
    if metric == "eval/score" and ("score" in eval_cols or "return_mean" in eval_cols):
        return _column(eval_path, eval_rows, "score", fallback="return_mean")
    if metric.startswith("eval/") and metric[5:] in eval_cols and metric[5:] != "step":
        return _column(eval_path, eval_rows, metric[5:])
    if metric in metric_cols and metric != "step":
        return _column(metrics_path, metric_rows, metric)
    names = _metric_names(eval_cols, metric_cols)
    raise RlregError(
        f"run {run_dir} has no metric {metric!r}",
        f"use one of: {', '.join(names)}" if names else "the run has logged nothing yet; wait for it",
    )


def _run_info(run_dir: Path) -> dict[str, Any]:
    """``config.json`` updated by ``summary.json`` (each skipped when missing or unreadable)."""
    info: dict[str, Any] = {}
    for name in ("config.json", "summary.json"):
        try:
            data = json.loads((run_dir / name).read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(data, dict):
            info.update(data)
    return info


def _run_label(info: dict[str, Any], run_dir: Path) -> str:
    """``<recipe> s<seed>`` from the run's records, else the folder name."""
    recipe, seed = info.get("recipe"), info.get("seed")
    if not recipe:
        return run_dir.name
    return f"{recipe} s{seed}" if seed is not None else str(recipe)


def _run_labels(run_dirs: Sequence[Path], infos: list[dict[str, Any]]) -> list[str]:
    """Default legend labels; a label two runs share gets the folder name added."""
    labels = [_run_label(info, d) for info, d in zip(infos, run_dirs)]
    return [
        f"{label} ({d.name})" if labels.count(label) > 1 and label != d.name else label
        for label, d in zip(labels, run_dirs)
    ]


def _step_label(infos: list[dict[str, Any]]) -> str:
    """x-axis label: gradient steps for offline runs, environment steps for online runs."""
    kinds = {"gradient steps" if info.get("dataset") else "environment steps" for info in infos if info}
    return kinds.pop() if len(kinds) == 1 else "steps"


def _save(fig: Any, out: Path) -> Path:
    """Write ``fig`` to ``out`` atomically (PNG; PDF or SVG for those suffixes) and close it."""
    plt = _pyplot()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        check(not out.is_dir(), f"plot path {out} is a folder", "pass a file path such as plot.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        fmt = out.suffix.lower().lstrip(".")
        with tmp.open("xb") as f:
            fig.savefig(f, format=fmt if fmt in ("pdf", "svg") else "png", dpi=_DPI, bbox_inches="tight")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return out


def plot_runs(
    run_dirs: Sequence[Path], metrics: Sequence[str], out: Path, labels: Sequence[str] | None = None
) -> Path:
    """Plot ``metrics`` of the runs in ``run_dirs`` to the PNG ``out``; returns ``out``.

    One subplot per metric, stacked with a shared x axis (gradient steps offline, environment steps
    online), one line per run. ``labels`` name the runs in the legend (default ``<recipe> s<seed>``
    from summary.json / config.json, else the folder name). Every metric is read before drawing, so
    a bad name raises :class:`RlregError` and writes nothing.
    """
    run_dirs = [Path(d) for d in run_dirs]
    check(len(run_dirs) > 0, "no run folders to plot", "pass one or more run folders")
    check(len(metrics) > 0, "no metrics to plot", "pass one or more metrics, e.g. eval/score")
    if labels is not None:
        check(
            len(labels) == len(run_dirs),
            f"{len(labels)} labels for {len(run_dirs)} runs",
            "pass one label per run, in the order of the runs",
        )
    data = [[read_metric(d, m) for d in run_dirs] for m in metrics]
    infos = [_run_info(d) for d in run_dirs]
    names = list(labels) if labels is not None else _run_labels(run_dirs, infos)
    plt = _pyplot()
    n = len(metrics)
    fig, axes = plt.subplots(n, 1, sharex=True, squeeze=False, figsize=(8.0, 1.0 + 2.6 * n))
    for ax, metric, curves in zip(axes[:, 0], metrics, data):
        for i, ((steps, values), name) in enumerate(zip(curves, names)):
            marker = "o" if metric.startswith("eval/") and len(steps) <= 60 else None
            ax.plot(steps, values, color=f"C{i % 10}", marker=marker, markersize=3, lw=1.4, label=name)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(_step_label(infos))
    axes[0, 0].legend(fontsize="small", ncol=1 + len(names) // 8)
    fig.align_ylabels(axes[:, 0])
    return _save(fig, out)


_CURVE_FIX = "pass each seed as (steps, values), two 1-D arrays of equal length"


def _as_curve(curve: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A ``(steps, values)`` pair as two equal-length 1-D float arrays, else a clear error."""
    try:
        steps, values = curve
        steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    except (TypeError, ValueError) as e:
        raise RlregError(f"{where}: a curve is not a (steps, values) pair ({e})", _CURVE_FIX) from None
    check(
        steps.ndim == 1 and steps.shape == values.shape,
        f"{where}: steps {steps.shape} and values {values.shape} are not two 1-D arrays of one length",
        _CURVE_FIX,
    )
    return steps, values


def _values_at(steps: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``values`` at the steps ``at`` (all present in ``steps``); a repeated step keeps its last value."""
    uniq, first_rev = np.unique(steps[::-1], return_index=True)
    last = values[::-1][first_rev]
    return last[np.searchsorted(uniq, at)]


def _mean_ci(curves: Sequence[Any], where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, mean, lo, hi)`` over seeds: the steps every seed has, and a Student-t 95 % interval.

    At a step with fewer than two finite values the interval is nan (no band is drawn there).
    """
    from scipy import stats

    check(len(curves) > 0, f"{where}: no seeds", "give each agent at least one (steps, values) curve")
    pairs = [_as_curve(c, where) for c in curves]
    common = functools.reduce(np.intersect1d, [s for s, _ in pairs])
    check(
        common.size > 0,
        f"{where}: its {len(pairs)} seeds share no step",
        "evaluate every seed at the same steps (train.eval_every)",
    )
    mat = np.stack([_values_at(s, v, common) for s, v in pairs])
    finite = np.isfinite(mat)
    n = finite.sum(axis=0)
    x = np.where(finite, mat, 0.0)
    mean = np.where(n > 0, x.sum(axis=0) / np.maximum(n, 1), np.nan)
    dev = np.where(finite, mat - mean, 0.0)
    sd = np.sqrt((dev**2).sum(axis=0) / np.maximum(n - 1, 1))
    half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1))
    half = np.where(n >= 2, half, np.nan)
    return common, mean, mean - half, mean + half


def _agent_colors(names: Sequence[str]) -> dict[str, str]:
    """One colour per agent, the same in every panel (first-appearance order)."""
    return {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(names))}


def plot_curves(
    panels: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]],
    out: Path,
    ylabel: str = "score",
    ncols: int = 3,
) -> Path:
    """Learning curves for a report: ``panels[task][agent]`` is a list of ``(steps, values)`` seeds.

    One subplot per task (``ncols`` per row), one line per agent: the mean over its seeds at the
    steps every seed has, with a 95 % Student-t confidence band where at least two seeds have a value.
    An agent keeps its colour across panels; one legend serves the figure. Writes the PNG ``out``
    atomically and returns it.
    """
    check(len(panels) > 0, "no panels to plot", "pass {task: {agent: [(steps, values), ...]}}")
    check(ncols >= 1, f"ncols must be >= 1, got {ncols}", "pass ncols=3")
    summaries = {
        task: {
            agent: _mean_ci(curves, f"panel {task!r}, agent {agent!r}") for agent, curves in agents.items()
        }
        for task, agents in panels.items()
    }
    colors = _agent_colors([a for agents in panels.values() for a in agents])
    plt = _pyplot()
    from matplotlib.lines import Line2D

    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=(4.2 * ncols, 3.2 * nrows))
    flat = axes.ravel()
    for k, (ax, (task, agents)) in enumerate(zip(flat, summaries.items())):
        for agent, (steps, mean, lo, hi) in agents.items():
            ax.plot(steps, mean, color=colors[agent], lw=1.6, label=agent)
            ax.fill_between(steps, lo, hi, color=colors[agent], alpha=0.2, lw=0)
        ax.set_title(task, fontsize="medium")
        ax.grid(alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel(ylabel)
        if k >= len(panels) - ncols:
            ax.set_xlabel("step")
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=c, lw=2) for c in colors.values()]
    fig.legend(handles, list(colors), loc="lower center", ncol=min(len(colors), 6), bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return _save(fig, out)


def _interval(value: Any, where: str) -> tuple[float, float, float]:
    """``(point, lo, hi)`` as floats with ``lo <= hi``, else a clear error."""
    try:
        point, lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise RlregError(f"{where}: {value!r} is not (point, lo, hi)", "pass three numbers") from None
    check(not lo > hi, f"{where}: interval low {lo:g} is above high {hi:g}", "pass (point, lo, hi)")
    return point, lo, hi


def plot_intervals(estimates: dict[str, dict[str, tuple[float, float, float]]], out: Path) -> Path:
    """Aggregate estimates with confidence intervals, as rliable's ``plot_interval_estimates``.

    ``estimates[metric][agent] = (point, lo, hi)``, e.g. ``{"IQM": {...}, "Mean": {...}}``: one
    subplot per metric, side by side; per agent a horizontal bar from ``lo`` to ``hi`` and a black
    tick at ``point``. Agents keep one row and one colour across subplots. Writes the PNG ``out``
    atomically and returns it.
    """
    check(len(estimates) > 0, "no estimates to plot", "pass {metric: {agent: (point, lo, hi)}}")
    checked = {
        metric: {agent: _interval(v, f"{metric} of {agent!r}") for agent, v in agents.items()}
        for metric, agents in estimates.items()
    }
    agents = list(dict.fromkeys(a for per in checked.values() for a in per))
    check(len(agents) > 0, "no agents in the estimates", "pass {metric: {agent: (point, lo, hi)}}")
    colors = _agent_colors(agents)
    plt = _pyplot()
    n = len(checked)
    fig, axes = plt.subplots(1, n, squeeze=False, figsize=(3.4 * n + 1.2, 0.45 * len(agents) + 1.2))
    for k, (ax, (metric, per)) in enumerate(zip(axes[0], checked.items())):
        for row, agent in enumerate(agents):
            if agent not in per:
                continue
            point, lo, hi = per[agent]
            ax.barh(row, hi - lo, left=lo, height=0.6, color=colors[agent], alpha=0.75)
            ax.vlines(point, row - 0.3, row + 0.3, color="k", lw=1.4)
        ax.set_yticks(range(len(agents)), agents if k == 0 else [""] * len(agents))
        ax.set_ylim(len(agents) - 0.5, -0.5)  # first agent on top
        ax.set_xlabel(metric)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="y", length=0)
    fig.tight_layout()
    return _save(fig, out)


def _profile(value: Any, agent: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(taus, fraction, lo, hi)`` as four equal-length 1-D float arrays, else a clear error."""
    fix = "pass (taus, fraction, lo, hi): four 1-D arrays of equal length"
    try:
        arrays = tuple(np.asarray(a, np.float64) for a in value)
    except (TypeError, ValueError):
        raise RlregError(f"profile of {agent!r} is not four arrays", fix) from None
    check(len(arrays) == 4, f"profile of {agent!r} has {len(arrays)} arrays, not 4", fix)
    shapes = {a.shape for a in arrays}
    check(len(shapes) == 1 and arrays[0].ndim == 1, f"profile of {agent!r} has shapes {sorted(shapes)}", fix)
    return arrays  # type: ignore[return-value]


def plot_profiles(
    profiles: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    out: Path,
    xlabel: str = "normalized score τ",
) -> Path:
    """Performance profiles: ``profiles[agent] = (taus, fraction, lo, hi)``.

    Per agent a line of the fraction of runs scoring above each threshold τ, with its confidence
    band ``lo``..``hi``. Writes the PNG ``out`` atomically and returns it.
    """
    check(len(profiles) > 0, "no profiles to plot", "pass {agent: (taus, fraction, lo, hi)}")
    checked = {agent: _profile(v, agent) for agent, v in profiles.items()}
    colors = _agent_colors(list(checked))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for agent, (taus, frac, lo, hi) in checked.items():
        ax.plot(taus, frac, color=colors[agent], lw=1.8, label=agent)
        ax.fill_between(taus, lo, hi, color=colors[agent], alpha=0.2, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, out)
