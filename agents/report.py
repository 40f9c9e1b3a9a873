r"""``rlreg report DIR``: tables and plots of a table's runs (made by ``rlreg reproduce``).

Per cell (agent × task), over its finished seeds: the **last** evaluation's score (D4RL / CORL
protocol) and the **best** one over training (CORL's optimistic "best"), each as mean ± std and the
Student-t 95 % confidence interval of the mean; the spec's headline score (``eval.score``: last,
mean of the last k, or best) and the published values that match the row, with their provenance.
Scores are normalized scores where the task has reference scores, raw returns otherwise.

Per agent across cells (normalized scores, or a table of one task: raw returns of different
tasks are not on one scale): IQM and mean of the headline scores with stratified-bootstrap 95 %
CIs, the probability of improvement of each agent over each other one, and performance profiles
(rliable's methods, Agarwal et al. 2021, arXiv:2108.13264; :mod:`rlreg.stats`).

Provenance: every run records its dataset or environment, source and normalizer; a report refuses
runs of different provenance in one table (and runs of one task on different data), and the
published values stand in their own column, never in an aggregate.

Outputs in ``DIR/report/``: ``report.md`` (printed too), ``cells.csv``, ``aggregates.csv``,
``table.tex``, ``curves.png`` (learning curves per task, mean ± 95 % CI over seeds),
``aggregates.png`` (IQM and mean with CIs), ``profiles.png``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rlreg.agents.tables import Cell, TableSpec, load_spec

from rlreg.errors import RlregError, check

__all__ = ["report", "FORMATS", "collect"]

FORMATS = ("md", "csv", "tex", "png")


def _evals(folder: Path, steps: int) -> list[tuple[int, float]]:
    """``(step, score)`` per evaluation up to ``steps``; the raw return where there is no score."""
    path = folder / "eval.csv"
    if not path.exists():
        return []
    out = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            step, score = int(r["step"]), float(r["score"])
            if step <= steps:
                out.append((step, score if score == score else float(r["return_mean"])))
    return out


def _run_provenance(folder: Path) -> dict[str, Any]:
    cfg = json.loads((folder / "config.json").read_text())
    info = cfg.get("dataset_info") or {}
    return {
        "name": info.get("name") or info.get("env_id"),
        "source": info.get("source"),
        "normalizer": info.get("normalizer"),
        "env_id": info.get("env_id"),
        "digest": cfg.get("dataset_digest"),
        "normalized": info.get("ref_min_score") is not None,
    }


def _headline(scores: list[float], protocol: str, k: int) -> float:
    if protocol == "best":
        return max(scores)
    return float(np.mean(scores[-k:])) if protocol == "last_k" else scores[-1]


def collect(table: TableSpec, out: Path) -> dict[str, Any]:
    """Every finished run's evaluations, scores and provenance: ``{"cells": {(agent, task):
    {seed: {...}}}, "normalized": bool, "provenance": {task: ...}}``; mixed provenance is an error."""
    cells: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    provs: dict[str, dict[str, Any]] = {}
    for c in table.cells():
        folder = c.folder(out)
        evals = _evals(folder, table.steps)
        if not evals or evals[-1][0] < table.steps:
            continue
        prov = _run_provenance(folder)
        _check_same(provs, c, prov, folder)
        scores = [s for _, s in evals]
        cells.setdefault((c.agent, c.task), {})[c.seed] = {
            "evals": evals,
            "last": scores[-1],
            "best": max(scores),
            "headline": _headline(scores, table.score, table.k),
        }
    normalized = {p["normalized"] for p in provs.values()}
    sources = {(p["normalizer"], p["normalized"]) for p in provs.values()}
    check(
        len(sources) <= 1,
        f"the runs in {out} mix normalizers ({sorted(map(str, sources))}): different provenance in one table",
        "report each provenance from its own table (one spec per dataset source)",
    )
    return {"cells": cells, "normalized": normalized == {True}, "provenance": provs}


def _check_same(provs: dict[str, dict[str, Any]], c: Cell, prov: dict[str, Any], folder: Path) -> None:
    """All runs of one task used the same data (its name, normalizer and content digest; not its
    path, which differs between machines)."""
    seen = provs.setdefault(c.task, prov)
    keys = ("name", "normalizer", "digest")
    if any(seen[k] != prov[k] for k in keys):
        diff = ", ".join(f"{k}: {seen[k]} vs {prov[k]}" for k in keys if seen[k] != prov[k])
        raise RlregError(
            f"runs of {c.task} in this table used different data ({diff}; {folder})",
            "retrain the odd run on the spec's data, or report it from another folder",
        )


# ---------------------------------------------------------------------- tables
def _fmt(mean: float, std: float, digits: int = 1) -> str:
    if mean != mean:
        return "—"
    return f"{mean:.{digits}f}" if std != std else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _cell_rows(table: TableSpec, data: dict[str, Any]) -> list[dict[str, Any]]:
    from rlreg.stats import mean_std_ci

    rows = []
    for task in table.tasks:
        for agent in table.agents:
            runs = data["cells"].get((agent, task), {})
            row: dict[str, Any] = {"agent": agent, "task": task, "seeds": len(runs), "of": len(table.seeds)}
            for key in ("last", "best", "headline"):
                m, sd, lo, hi = mean_std_ci([r[key] for r in runs.values()])
                row.update({key: m, f"{key}_std": sd, f"{key}_lo": lo, f"{key}_hi": hi})
            pubs = [p for p in table.published if p["agent"] == agent and p["task"] == task]
            row["published"] = pubs
            prov = data["provenance"].get(task)
            row["provenance"] = f"{_describe(prov)}, normalizer {prov['normalizer']}" if prov else ""
            rows.append(row)
    return rows


def _sources(table: TableSpec) -> dict[str, int]:
    """Footnote number of each published source, in order of appearance."""
    out: dict[str, int] = {}
    for p in table.published:
        out.setdefault(_source_key(p), len(out) + 1)
    return out


def _source_key(p: dict[str, Any]) -> str:
    note = f" ({p['note']})" if p.get("note") else ""
    return f"{p['source']}; data: {p['provenance']}{note}"


def _published_text(pubs: list[dict[str, Any]], notes: dict[str, int]) -> str:
    parts = []
    for p in pubs:
        n = notes[_source_key(p)]
        parts.append(f"{_fmt(float(p['mean']), float(p.get('std', math.nan)))} [{n}]")
    return ", ".join(parts) or "—"


def _markdown(table: TableSpec, data: dict[str, Any], rows: list[dict[str, Any]], agg: dict[str, Any]) -> str:
    notes = _sources(table)
    unit = "normalized score" if data["normalized"] else "return (raw: no reference scores)"
    f = io.StringIO()
    f.write(f"# {table.name}\n\n{table.description}\n\n")
    f.write(
        f"{len(table.agents)} agents × {len(table.tasks)} tasks × seeds {table.seeds}, {table.steps} steps, "
        f"{table.eval_episodes} evaluation episodes every {table.eval_every}; {unit}; headline: "
        f"{table.score}{f' {table.k}' if table.score == 'last_k' else ''}. "
        f"Provenance: {_provenance_line(data)}.\n\n"
    )
    f.write("| task | agent | seeds | last (mean ± std) | last 95 % CI | best (mean ± std) | published |\n")
    f.write("|---|---|---|---|---|---|---|\n")
    for r in rows:
        ci = "—" if r["last_lo"] != r["last_lo"] else f"[{r['last_lo']:.1f}, {r['last_hi']:.1f}]"
        f.write(
            f"| {r['task']} | {r['agent']} | {r['seeds']}/{r['of']} | "
            f"{_fmt(r['last'], r['last_std'])} | {ci} | "
            f"{_fmt(r['best'], r['best_std'])} | {_published_text(r['published'], notes)} |\n"
        )
    if notes:
        f.write("\nPublished values (other data: never averaged or ranked with ours):\n\n")
        for text, n in notes.items():
            f.write(f"[{n}] {text}\n")
    f.write("\n" + _aggregate_markdown(agg))
    return f.getvalue()


def _provenance_line(data: dict[str, Any]) -> str:
    provs = data["provenance"]
    if not provs:
        return "no finished runs"
    norms = sorted({str(p["normalizer"]) for p in provs.values()})
    sources = sorted({_describe(p) for p in provs.values()})
    return "; ".join(sources) + f" (normalizer: {', '.join(norms)})"


def _describe(p: dict[str, Any]) -> str:
    """``name (digest …)`` of a dataset, ``environment ID`` of an env."""
    if p.get("digest"):
        return f"{p['name']} ({p['env_id']}; data digest {str(p['digest'])[:12]})"
    return str(p["source"] or f"environment {p['env_id']}")


def _aggregate_markdown(agg: dict[str, Any]) -> str:
    if not agg.get("agents"):
        return f"Aggregates: {agg.get('why', 'none')}.\n"
    f = io.StringIO()
    f.write(
        f"Aggregates over {agg['tasks']} tasks (headline scores, stratified bootstrap, "
        f"{agg['reps']} reps):\n\n"
    )
    f.write("| agent | IQM [95 % CI] | mean [95 % CI] | runs |\n|---|---|---|---|\n")
    for a, v in agg["agents"].items():
        iqm, mean = v["iqm"], v["mean"]
        f.write(
            f"| {a} | {iqm[0]:.1f} [{iqm[1]:.1f}, {iqm[2]:.1f}] | "
            f"{mean[0]:.1f} [{mean[1]:.1f}, {mean[2]:.1f}]"
            f" | {v['runs']} |\n"
        )
    if agg["poi"]:
        f.write("\n| probability of improvement | P(X > Y) [95 % CI] |\n|---|---|\n")
        for (x, y), (p, lo, hi) in agg["poi"].items():
            f.write(f"| {x} > {y} | {p:.2f} [{lo:.2f}, {hi:.2f}] |\n")
    return f.getvalue()


def _aggregates(table: TableSpec, data: dict[str, Any], reps: int = 2000) -> dict[str, Any]:
    """IQM, mean, probability of improvement and profiles over the tasks every agent finished."""
    from rlreg import stats

    if not data["normalized"] and len(table.tasks) > 1:
        return {
            "why": "not computed: raw returns of different tasks are not on one scale (no reference scores)"
        }
    tasks = [t for t in table.tasks if all(data["cells"].get((a, t)) for a in table.agents)]
    if not tasks:
        return {"why": "not computed: no task has finished runs of every agent"}
    scores = {
        a: [np.array([r["headline"] for r in data["cells"][(a, t)].values()]) for t in tasks]
        for a in table.agents
    }
    out: dict[str, Any] = {"tasks": len(tasks), "reps": reps, "agents": {}, "poi": {}, "profiles": {}}
    allv = np.concatenate([np.concatenate(v) for v in scores.values()])
    lo, hi = (allv.min(), allv.max())
    if data["normalized"]:
        lo, hi = min(0.0, lo), max(100.0, hi)
    taus = np.linspace(lo, hi if hi > lo else lo + 1.0, 101)
    for a, s in scores.items():
        out["agents"][a] = {
            "iqm": stats.stratified_bootstrap_ci(s, "iqm", reps=reps),
            "mean": stats.stratified_bootstrap_ci(s, "mean", reps=reps),
            "runs": int(sum(len(x) for x in s)),
        }
        out["profiles"][a] = (taus, *stats.performance_profile_ci(s, taus, reps=reps))
    names = list(table.agents)
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            out["poi"][(x, y)] = stats.probability_of_improvement_ci(scores[x], scores[y], reps=reps)
    return out


def _csv_text(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    f = io.StringIO()
    w = csv.writer(f)
    w.writerow(columns)
    for r in rows:
        w.writerow([r.get(c, "") for c in columns])
    return f.getvalue()


def _cells_csv(rows: list[dict[str, Any]]) -> str:
    flat = []
    for r in rows:
        pub = "; ".join(f"{p['mean']} ({p['provenance']}; {p['source']})" for p in r["published"])
        flat.append({**r, "published": pub})
    cols = ["task", "agent", "seeds", "of"]
    cols += [f"{k}{s}" for k in ("last", "best", "headline") for s in ("", "_std", "_lo", "_hi")]
    return _csv_text(flat, [*cols, "provenance", "published"])


def _aggregates_csv(agg: dict[str, Any]) -> str:
    rows = []
    for a, v in (agg.get("agents") or {}).items():
        for stat in ("iqm", "mean"):
            p, lo, hi = v[stat]
            rows.append({"agent": a, "statistic": stat, "value": p, "lo": lo, "hi": hi, "runs": v["runs"]})
    for (x, y), (p, lo, hi) in (agg.get("poi") or {}).items():
        rows.append(
            {"agent": f"{x} > {y}", "statistic": "probability_of_improvement", "value": p, "lo": lo, "hi": hi}
        )
    return _csv_text(rows, ["agent", "statistic", "value", "lo", "hi", "runs"])


def _latex(table: TableSpec, rows: list[dict[str, Any]]) -> str:
    notes = _sources(table)
    agents = list(table.agents)
    head = " & ".join(_tex(a) for a in agents)
    lines = [
        "% " + f"{table.name}: last evaluation, mean $\\pm$ std over seeds; published values in parentheses",
        "\\begin{tabular}{l" + "c" * len(agents) + "}",
        "\\toprule",
        f"task & {head} \\\\",
        "\\midrule",
    ]
    by = {(r["agent"], r["task"]): r for r in rows}
    for task in table.tasks:
        cells = []
        for a in agents:
            r = by[(a, task)]
            text = _fmt(r["last"], r["last_std"]).replace("±", "$\\pm$")
            if r["published"]:
                text += " (" + _published_text(r["published"], notes).replace("±", "$\\pm$") + ")"
            cells.append(text)
        lines.append(f"{_tex(task)} & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    lines += [f"% [{n}] {_tex(text)}" for text, n in notes.items()]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    return text.replace("_", "\\_").replace("%", "\\%").replace("&", "\\&")


# ---------------------------------------------------------------------- plots
def _plots(table: TableSpec, data: dict[str, Any], agg: dict[str, Any], folder: Path) -> list[Path]:
    from rlreg import plots

    panels = {
        task: {
            a: [
                (np.array([s for s, _ in r["evals"]]), np.array([v for _, v in r["evals"]]))
                for r in runs.values()
            ]
            for a in table.agents
            if (runs := data["cells"].get((a, task)))
        }
        for task in table.tasks
    }
    panels = {t: p for t, p in panels.items() if p}
    written = []
    ylabel = "normalized score" if data["normalized"] else "return"
    if panels:
        written.append(plots.plot_curves(panels, folder / "curves.png", ylabel=ylabel))
    if agg.get("agents"):
        est = {
            "IQM": {a: v["iqm"] for a, v in agg["agents"].items()},
            "Mean": {a: v["mean"] for a, v in agg["agents"].items()},
        }
        written.append(plots.plot_intervals(est, folder / "aggregates.png"))
        written.append(plots.plot_profiles(agg["profiles"], folder / "profiles.png"))
    return written


# ---------------------------------------------------------------------- entry point
def report(
    out: str | os.PathLike,
    formats: Sequence[str] = FORMATS,
    reps: int = 2000,
    echo: bool = True,
    to: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Write the report of the table in ``out`` into ``to`` (default ``out/report``; module
    docstring); returns the files written, the cell rows and the aggregates."""
    root = Path(out)
    spec = root / "spec.yaml"
    check(
        spec.is_file(),
        f"{root} holds no table (no spec.yaml)",
        "give the --out folder of `rlreg reproduce`, or run `rlreg reproduce SPEC --out DIR` first",
    )
    bad = sorted(set(formats) - set(FORMATS))
    check(not bad, f"unknown report formats {bad}", f"use some of {','.join(FORMATS)}")
    table = load_spec(spec, check_tasks=False)
    data = collect(table, root)
    rows = _cell_rows(table, data)
    agg = _aggregates(table, data, reps=reps)
    folder = Path(to) if to is not None else root / "report"
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    md = _markdown(table, data, rows, agg)
    texts = {
        "md": {"report.md": md},
        "csv": {"cells.csv": _cells_csv(rows), "aggregates.csv": _aggregates_csv(agg)},
        "tex": {"table.tex": _latex(table, rows)},
    }
    for fmt in formats:
        for name, text in texts.get(fmt, {}).items():
            _write_atomic(folder / name, text)
            written.append(folder / name)
    if "png" in formats:
        written += _plots(table, data, agg, folder)
    if echo:
        print(md)
        print("wrote " + ", ".join(str(p) for p in written))
    return {"files": [str(p) for p in written], "cells": rows, "aggregates": agg}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
