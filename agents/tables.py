r"""Benchmark tables as data: a **table spec** (YAML) names agents × tasks × seeds × budget × the
evaluation protocol, and the published values that match a paper's setup; :func:`reproduce` trains
every missing cell of its grid and :mod:`rlreg.agents.report` turns the run folders into tables
and plots.

A spec (shipped ones live in ``agents/specs/``; ``rlreg reproduce NAME`` or ``rlreg reproduce
PATH.yaml``)::

    name: offline-locomotion
    description: TD3+BC, PRDC and A2PR on rlreg's made D4RL-style datasets
    agents:                  # label: recipe, or label: {recipe: R, set: {key: value}}
      td3bc: td3bc
      ddpg: {recipe: beer, set: {beer.beta: 0}}
    datasets: [hopper-medium-replay-v0, walker2d-medium-replay-v0]   # offline; or
    # envs: [minatar:breakout]                                        # online
    seeds: [0, 1, 2]
    steps: 1000000           # train.steps of every run (gradient updates offline, env steps online)
    eval: {every: 5000, episodes: 10, score: last}   # score: last | last_k (with k) | best
    set: {train.checkpoint_every: 5000}              # settings for every run
    published:               # values from papers for matching rows, shown beside ours, never mixed in
      - {agent: td3bc, task: hopper-medium-replay-v0, mean: 64.4, std: 21.5,
         source: "CORL README (corl-team/CORL), 4 seeds, 1M steps, last evaluation",
         provenance: "D4RL v2 hopper-medium-replay-v2 (mujoco-py Hopper-v2)",
         note: "our dataset is made locally from our own behaviour policies: another dataset"}
    variants:                # NAME-<variant>: these keys replace the spec's
      smoke: {datasets: [hopper-medium-replay-v0], seeds: [0, 1], steps: 2000,
              eval: {every: 1000, episodes: 2, score: last}}

**Provenance.** Every task has one: its kind (``rlreg-made`` datasets, ``d4rl`` HDF5 files,
``minari`` datasets, or an environment family such as ``minatar``), where it comes from, and its
normalizer; each run records the same in its ``config.json``. A spec whose tasks have different
provenance is refused before anything runs (one table, one provenance), and a report never averages
or ranks scores of different provenance together; published values carry their own provenance and
stand in their own column.

**Running.** The grid is laid out as ``OUT/<task>/<agent>-s<seed>`` (``OUT/<agent>-s<seed>``
when the table has one task; a resolved copy of the spec in ``OUT/spec.yaml``); a finished cell
(its last evaluation at ``steps``) is skipped, an interrupted one resumes from its checkpoint
(``rlreg train --resume DIR --steps N``), a missing one starts. Cells run
seed-major (every agent and task of seed 0 first, so a partial table is already a comparison;
within a seed the longest first, by the agents' measured rates, so the table does not end on one
long run while the other jobs idle) as
``rlreg train`` processes, ``jobs`` at a time, each with ``cores // jobs`` torch threads
(``RLREG_JOBS``; :mod:`rlreg.threads`), their output in ``OUT/logs/``; one progress line shows cells
done / running / left and an ETA from the throughput measured so far. With ``ray_address`` each run
is one Ray task (``ray.init(address=...)``, ``num_cpus`` = its threads) running the same command;
``OUT`` must then be a folder every node sees. ``dry_run`` prints the grid, each cell's state and the
estimated cost from a short measured probe run per agent, and trains nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from rlreg.errors import RlregError, check

__all__ = [
    "TableSpec",
    "Cell",
    "load_spec",
    "spec_from_dict",
    "spec_names",
    "task_provenance",
    "cell_state",
    "reproduce",
    "SCORES",
]

SPECS_DIR = Path(__file__).resolve().parent / "specs"
SCORES = ("last", "last_k", "best")
"""Which evaluation a cell's score is: the final one (D4RL / CORL "last"), the mean of the last
``k``, or the best one over training (CORL "best", an optimistic protocol)."""

_KEYS = {
    "name",
    "description",
    "agents",
    "datasets",
    "envs",
    "seeds",
    "steps",
    "eval",
    "set",
    "published",
    "variants",
    "provenance",  # written into OUT/spec.yaml for the reader; recomputed on load
}


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of the grid: ``agent`` (a label of the spec) on ``task`` with ``seed``."""

    agent: str
    task: str
    seed: int
    flat: bool = False
    """The table has this one task: the run lives in ``OUT/<agent>-s<seed>``."""

    def folder(self, out: Path) -> Path:
        """``OUT/<task>/<agent>-s<seed>`` (``:`` and ``/`` of a task spelled ``_``), or
        ``OUT/<agent>-s<seed>`` in a table of one task."""
        if self.flat:
            return Path(out) / f"{self.agent}-s{self.seed}"
        return Path(out) / _safe(self.task) / f"{self.agent}-s{self.seed}"


@dataclasses.dataclass
class TableSpec:
    """A resolved table spec (see the module docstring for the YAML)."""

    name: str
    description: str
    agents: dict[str, dict[str, Any]]
    tasks: list[str]
    online: bool
    seeds: list[int]
    steps: int
    eval_every: int
    eval_episodes: int
    score: str = "last"
    k: int = 3
    sets: dict[str, Any] = dataclasses.field(default_factory=dict)
    published: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)

    def cells(self) -> list[Cell]:
        """The grid, seed-major: every agent and task of the first seed, then the next seed, ..."""
        flat = len(self.tasks) == 1
        return [Cell(a, t, s, flat) for s in self.seeds for t in self.tasks for a in self.agents]

    def to_yaml(self) -> str:
        """The resolved spec as YAML (what ``OUT/spec.yaml`` holds)."""
        d = dataclasses.asdict(self)
        d["datasets" if self.online is False else "envs"] = d.pop("tasks")
        d.pop("online")
        d["eval"] = {"every": d.pop("eval_every"), "episodes": d.pop("eval_episodes")}
        d["eval"].update(score=d.pop("score"), k=d.pop("k"))
        d["set"] = d.pop("sets")
        return yaml.safe_dump(d, sort_keys=False)


def _safe(task: str) -> str:
    return task.replace(":", "_").replace("/", "_")


def spec_names() -> list[str]:
    """Shipped specs and their variants (``NAME`` and ``NAME-<variant>``), sorted."""
    names = []
    for path in sorted(SPECS_DIR.glob("*.yaml")):
        names.append(path.stem)
        raw = yaml.safe_load(path.read_text()) or {}
        names += [f"{path.stem}-{v}" for v in (raw.get("variants") or {})]
    return sorted(names)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise RlregError(f"table spec {path} is not valid YAML{at}", "fix the YAML syntax") from None
    check(
        isinstance(raw, dict),
        f"table spec {path} must be a YAML mapping, got {type(raw).__name__}",
        "start from a shipped spec: `rlreg reproduce --list`, files in agents/specs/",
    )
    return raw


def _locate(spec: str) -> tuple[Path, str | None]:
    """The YAML file of ``spec`` (a path or a shipped name) and the variant it names, if any."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        check(path.is_file(), f"no table spec file {spec}", "give an existing .yaml file or a shipped name")
        return path, None
    if (SPECS_DIR / f"{spec}.yaml").is_file():
        return SPECS_DIR / f"{spec}.yaml", None
    for path in sorted(SPECS_DIR.glob("*.yaml"), key=lambda q: -len(q.stem)):
        if spec.startswith(path.stem + "-"):
            return path, spec[len(path.stem) + 1 :]
    raise RlregError(
        f"unknown table spec '{spec}'", "use one of: " + ", ".join(spec_names()) + ", or PATH.yaml"
    )


def load_spec(spec: str | os.PathLike, check_tasks: bool = True) -> TableSpec:
    """Read, resolve (variant) and validate a spec: every agent's recipe and settings, every task's
    existence and provenance, the protocol; any problem is one :class:`RlregError` before a run."""
    path, variant = _locate(str(spec))
    raw = _read_yaml(path)
    unknown = sorted(set(raw) - _KEYS)
    check(not unknown, f"table spec {path}: unknown keys {unknown}", f"use only: {', '.join(sorted(_KEYS))}")
    raw.pop("provenance", None)
    variants = raw.pop("variants", None) or {}
    if variant is not None:
        check(
            variant in variants,
            f"table spec {path} has no variant '{variant}'",
            "use one of: " + (", ".join(f"{path.stem}-{v}" for v in variants) or path.stem),
        )
        extra = set(variants[variant]) - _KEYS
        check(not extra, f"variant '{variant}' of {path}: unknown keys {sorted(extra)}", "fix the variant")
        over = variants[variant]
        if "datasets" in over or "envs" in over:  # a variant's task list replaces the spec's
            raw.pop("datasets", None), raw.pop("envs", None)
            tasks = set(over.get("datasets") or over.get("envs") or [])
            raw["published"] = [r for r in raw.get("published") or [] if r.get("task") in tasks]
        raw.update(copy.deepcopy(over))
    name = f"{raw.get('name', path.stem)}" + (f"-{variant}" if variant else "")
    return spec_from_dict(raw, name, check_tasks, where=path)


def spec_from_dict(
    raw: dict[str, Any], name: str, check_tasks: bool = True, where: str | os.PathLike = "<dict>"
) -> TableSpec:
    """A validated :class:`TableSpec` from the YAML's mapping (``variants`` already applied)."""
    table = _resolve(dict(raw), name, Path(where))
    _check_cells(table)
    if check_tasks:
        table.provenance = _provenance_of(table)
    return table


def _resolve(raw: dict[str, Any], name: str, path: Path) -> TableSpec:
    where = f"table spec {path}"
    check(
        ("datasets" in raw) != ("envs" in raw),
        f"{where} needs exactly one of 'datasets' (offline) or 'envs' (online)",
        "list the tasks under datasets: [...] or envs: [...]",
    )
    online = "envs" in raw
    tasks = raw["envs" if online else "datasets"]
    check(
        isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks),
        f"{where}: '{'envs' if online else 'datasets'}' must be a non-empty list of names",
        "e.g. datasets: [hopper-medium-replay-v0]",
    )
    agents = _agents(raw.get("agents"), where)
    seeds = raw.get("seeds")
    check(
        isinstance(seeds, list) and seeds and all(isinstance(s, int) and s >= 0 for s in seeds),
        f"{where}: 'seeds' must be a non-empty list of integers >= 0, got {seeds!r}",
        "e.g. seeds: [0, 1, 2]",
    )
    check(len(set(seeds)) == len(seeds), f"{where}: repeated seeds {seeds}", "list each seed once")
    ev = raw.get("eval") or {}
    check(
        isinstance(ev, dict), f"{where}: 'eval' must be a mapping", "e.g. eval: {every: 5000, episodes: 10}"
    )
    table = TableSpec(
        name=name,
        description=str(raw.get("description", "")).strip(),
        agents=agents,
        tasks=list(tasks),
        online=online,
        seeds=list(seeds),
        steps=_positive(raw.get("steps"), "steps", where),
        eval_every=_positive(ev.get("every"), "eval.every", where),
        eval_episodes=_positive(ev.get("episodes"), "eval.episodes", where),
        score=str(ev.get("score", "last")),
        k=_positive(ev.get("k", 3), "eval.k", where),
        sets=dict(raw.get("set") or {}),
        published=_published(raw.get("published"), agents, tasks, where),
    )
    check(table.score in SCORES, f"{where}: eval.score '{table.score}' is not one of {SCORES}", "use last")
    check(
        table.steps % table.eval_every == 0,
        f"{where}: steps {table.steps} is not a multiple of eval.every {table.eval_every}",
        "make the budget a whole number of evaluation intervals (the last evaluation is at steps)",
    )
    return table


def _positive(value: Any, key: str, where: str) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    check(ok, f"{where}: '{key}' must be a positive integer, got {value!r}", f"set {key}, e.g. 1000")
    return int(value)


def _agents(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    check(
        isinstance(raw, dict) and raw,
        f"{where}: 'agents' must map labels to recipes",
        "e.g. agents: {td3bc: td3bc, ddpg: {recipe: beer, set: {beer.beta: 0}}}",
    )
    out = {}
    for label, entry in raw.items():
        entry = {"recipe": entry} if isinstance(entry, str) else entry
        check(
            isinstance(entry, dict)
            and isinstance(entry.get("recipe"), str)
            and set(entry) <= {"recipe", "set"},
            f"{where}: agent '{label}' must be a recipe name or {{recipe: NAME, set: {{...}}}}",
            "e.g. ddpg: {recipe: beer, set: {beer.beta: 0}}",
        )
        check("/" not in str(label) and str(label), f"{where}: bad agent label {label!r}", "use a plain name")
        out[str(label)] = {"recipe": entry["recipe"], "set": dict(entry.get("set") or {})}
    return out


def _published(raw: Any, agents: dict, tasks: list[str], where: str) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(raw or []):
        need = {"agent", "task", "mean", "source", "provenance"}
        check(
            isinstance(row, dict) and need <= set(row),
            f"{where}: published entry {i + 1} needs {sorted(need)} (and optionally std, note)",
            "name the paper or repository (with its commit or version) and the data it used",
        )
        check(
            row["agent"] in agents and row["task"] in tasks,
            f"{where}: published entry {i + 1} is for {row['agent']} on {row['task']}, not in the grid",
            "match an agent label and a task of this spec",
        )
        check(
            isinstance(row["mean"], (int, float)),
            f"{where}: published entry {i + 1}: mean must be a number",
            "e.g. mean: 64.4",
        )
        out.append(dict(row))
    return out


def _check_cells(table: TableSpec) -> None:
    """Every agent's config resolves (recipe exists, settings valid, agent fits the task kind)."""
    from rlreg.agents.recipes import recipe_names, resolve_config

    for label, a in table.agents.items():
        check(
            a["recipe"] in recipe_names(),
            f"table spec {table.name}: agent '{label}' names an unknown recipe '{a['recipe']}'",
            "use one of: " + ", ".join(recipe_names()),
        )
        for task in table.tasks:
            cfg = resolve_config(
                a["recipe"],
                None if table.online else task,
                env=task if table.online else None,
                sets=_settings(table, label, 0),
            )
            if table.online:
                _check_action_space(cfg["agent"], task, label)


def _check_action_space(agent: str, env: str, label: str) -> None:
    """An online agent fits its env's actions (MinAtar discrete, DMC continuous, else the Gymnasium
    env's action space), checked before any run."""
    from rlreg.agents.base import agent_class

    wants = agent_class(agent).action_space
    if wants == "any":
        return
    if env.startswith("minatar:") or env.startswith("dmc:"):
        has = "discrete" if env.startswith("minatar:") else "continuous"
    else:
        import gymnasium as gym

        try:
            space = gym.make(env).action_space
        except Exception as e:  # gymnasium's own error names the problem
            raise RlregError(f"environment '{env}' cannot be made: {e}", "fix the env id") from None
        has = "discrete" if isinstance(space, gym.spaces.Discrete) else "continuous"
    check(
        wants == has,
        f"agent '{label}' ({agent}) needs {wants} actions, and {env}'s are {has}",
        "pair each agent with environments of its action space (one spec per kind)",
    )


def _text(value: Any) -> str:
    """A YAML value as ``--set`` text (booleans lower-case, lists and mappings as JSON)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _settings(table: TableSpec, label: str, seed: int) -> dict[str, Any]:
    sets = {
        **{k: _text(v) for k, v in table.sets.items()},
        **{k: _text(v) for k, v in table.agents[label]["set"].items()},
    }
    sets.update(
        {
            "train.steps": str(table.steps),
            "train.eval_every": str(table.eval_every),
            "train.eval_episodes": str(table.eval_episodes),
        }
    )
    return sets


# ---------------------------------------------------------------------- provenance
def task_provenance(task: str, online: bool) -> dict[str, Any]:
    """``{kind, source, normalizer}`` of a task, checked to exist (no data is loaded or made)."""
    if online:
        kind = task.split(":", 1)[0] if ":" in task else "gymnasium"
        return {"kind": kind, "source": f"environment {task}", "normalizer": "none (raw return)"}
    if task.startswith("d4rl:"):
        path = Path(task[5:]).expanduser()
        check(
            path.is_file(), f"dataset file {path} does not exist", "give the path of a D4RL-schema HDF5 file"
        )
        return {"kind": "d4rl", "source": f"D4RL-schema HDF5 {path.name}", "normalizer": "d4rl"}
    if task.startswith("minari:"):
        from rlreg.data.minari_io import minari_root

        ds = task[7:]
        check(
            (minari_root() / ds / "data").is_dir(),
            f"no local Minari dataset '{ds}' under {minari_root()}",
            "make or download it first (this machine cannot download), or fix the id",
        )
        return {"kind": "minari", "source": f"Minari dataset {ds}", "normalizer": "minari"}
    from rlreg.envs.datasets import DATASETS, dataset_names

    check(
        task in DATASETS,
        f"unknown dataset '{task}'",
        "use a registered name (" + ", ".join(dataset_names()) + "), d4rl:PATH.hdf5 or minari:ID",
    )
    return {
        "kind": "rlreg-made",
        "source": f"rlreg-made {task} (Minari id {DATASETS[task].minari_id})",
        "normalizer": "rlreg references (random and expert policies of the dataset's env)",
    }


def _provenance_of(table: TableSpec) -> dict[str, Any]:
    provs = {t: task_provenance(t, table.online) for t in table.tasks}
    kinds = sorted({p["kind"] for p in provs.values()})
    check(
        len(kinds) == 1,
        f"table spec {table.name} mixes tasks of different provenance ({', '.join(kinds)}): "
        + "; ".join(f"{t}: {p['kind']}" for t, p in provs.items()),
        "split it into one spec per provenance (scores of different data are not comparable)",
    )
    return {"kind": kinds[0], "tasks": provs}


# ---------------------------------------------------------------------- the grid's state
def _last_eval(folder: Path) -> int:
    path = folder / "eval.csv"
    if not path.exists():
        return 0
    lines = path.read_text().strip().splitlines()
    return int(lines[-1].split(",")[0]) if len(lines) > 1 else 0


def cell_state(table: TableSpec, cell: Cell, out: Path) -> str:
    """``done`` (evaluated at ``steps``), ``partial`` (a checkpoint to resume) or ``missing``."""
    folder = cell.folder(out)
    if _last_eval(folder) >= table.steps:
        return "done"
    return "partial" if (folder / "checkpoint.pt").exists() else "missing"


def _command(table: TableSpec, cell: Cell, out: Path) -> list[str]:
    rlreg = [sys.executable, "-m", "rlreg.agents.cli", "train"]
    folder = cell.folder(out)
    if (folder / "checkpoint.pt").exists():
        return [*rlreg, "--resume", str(folder), "--steps", str(table.steps), "--no-progress"]
    if folder.exists():  # a run that died before its first checkpoint: start it again
        from rlreg.locking import FolderLock

        with FolderLock(folder, "run folder"):  # unless someone is writing it
            pass
        shutil.rmtree(folder)
    a = table.agents[cell.agent]
    cmd = [*rlreg, a["recipe"], "--env" if table.online else "--dataset", cell.task, "--seed", str(cell.seed)]
    for k, v in _settings(table, cell.agent, cell.seed).items():
        cmd += ["--set", f"{k}={v}"]
    return [*cmd, "--out", str(folder), "--no-progress"]


def _logged(folder: Path) -> tuple[int, float]:
    """A run's last metrics row: (step, seconds it has trained, evaluations and resumes included:
    the loop's cumulative ``time``); (0, 0.0) when it has none."""
    path = folder / "metrics.csv"
    if not path.exists():
        return 0, 0.0
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 4096))
        tail = f.read().decode(errors="replace").strip().splitlines()
    try:
        step, seconds = tail[-1].split(",")[:2]
        return int(step), float(seconds)
    except (ValueError, IndexError):
        return 0, 0.0


def _steps_done(folder: Path) -> int:
    """The last logged step of a run (metrics.csv), 0 when none."""
    return _logged(folder)[0]


class Progress:
    """One progress line: cells done / running / left, failures, and an ETA.

    The ETA is measured, per agent, from the runs' own logs: an agent's rate is the steps over the
    training time (the loop's cumulative ``time``, evaluations included) of its cells run by this
    invocation, so it includes the slowdown of sharing the machine; before any of them has logged a
    row, its cells from earlier invocations of the table stand in (so a resumed table has an ETA at
    once), and an agent never seen at all is costed at the mean rate. Every unfinished cell's
    remaining steps are costed at its agent's rate and the sum is shared among ``jobs``."""

    def __init__(
        self, table: TableSpec, out: Path, todo: Sequence[Cell], done: int, stream: Any = None, jobs: int = 1
    ) -> None:
        self.table, self.out, self.todo, self.jobs = table, out, list(todo), max(1, jobs)
        self.done, self.failed, self.running = done, 0, 0
        self.total = len(table.cells())
        self.touched: set[Cell] = set()  # cells this invocation started
        self.finished_cells: set[Cell] = set()
        self.stream = stream or sys.stdout
        self._last: tuple[int, int, int] | None = None

    def started(self, cell: Cell) -> None:
        self.touched.add(cell)

    def finished(self, cell: Cell) -> None:
        self.finished_cells.add(cell)

    def _rates(self, logged: dict[Cell, tuple[int, float]]) -> dict[str, float]:
        rate: dict[str, float] = {}
        for agent in self.table.agents:
            mine = [c for c in logged if c.agent == agent and logged[c][1] > 0]
            now = [c for c in mine if c in self.touched]
            use = now or mine
            seconds = sum(logged[c][1] for c in use)
            if seconds > 0 and sum(logged[c][0] for c in use) > 0:
                rate[agent] = sum(logged[c][0] for c in use) / seconds
        return rate

    def costs(self) -> dict[Cell, float] | None:
        """Each unfinished cell's estimated seconds left (None before any rate is known)."""
        logged = {c: _logged(c.folder(self.out)) for c in self.table.cells()}
        rate = self._rates(logged)
        if not rate:
            return None
        mean = sum(rate.values()) / len(rate)
        left = [c for c in self.todo if c not in self.finished_cells]
        return {c: max(0, self.table.steps - logged[c][0]) / rate.get(c.agent, mean) for c in left}

    def eta(self) -> float | None:
        costs = self.costs()
        return None if costs is None else sum(costs.values()) / self.jobs

    def order(self) -> list[Cell]:
        """The cells to run: seed by seed (a partial table holds whole seeds), and within a seed the
        longest first (by the measured rates), so that the table does not end on one long run while
        the other jobs idle; the spec's order where nothing has been measured yet."""
        costs = self.costs() or {}
        return sorted(self.todo, key=lambda c: (c.seed, -costs.get(c, 0.0)))

    def line(self) -> str:
        left = self.total - self.done - self.running - self.failed
        eta = self.eta()
        when = "ETA —" if eta is None else f"ETA {_duration(eta)}"
        bad = f", {self.failed} failed" if self.failed else ""
        return f"[{self.table.name}] cells {self.done} done, {self.running} running, {left} left{bad}; {when}"

    def show(self, force: bool = False) -> None:
        """Print the line when a count changed (or ``force``, every 30 s while running)."""
        counts = (self.done, self.running, self.failed)
        if counts != self._last or force:
            print(self.line(), file=self.stream, flush=True)
            self._last = counts


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------- running
def reproduce(
    spec: str | os.PathLike | TableSpec,
    out: str | os.PathLike | None = None,
    jobs: int = 1,
    ray_address: str | None = None,
    dry_run: bool = False,
    probe_steps: int | None = None,
    poll: float = 1.0,
) -> dict[str, Any]:
    """Train every missing cell of ``spec`` into ``out`` (module docstring); returns
    ``{"done": n, "failed": [cells], "out": path}``. Interrupted (Ctrl-C, SIGTERM): the running
    cells are stopped (SIGINT, so each run ends cleanly) and the same call resumes them."""
    table = spec if isinstance(spec, TableSpec) else load_spec(spec)
    check(isinstance(jobs, int) and jobs >= 1, f"--jobs must be >= 1, got {jobs}", "e.g. --jobs 2")
    root = Path(out) if out is not None else Path("runs") / "tables" / table.name
    _check_out(table, root)
    if dry_run:
        return _dry_run(table, root, jobs, probe_steps)
    from rlreg.locking import FolderLock

    root.mkdir(parents=True, exist_ok=True)
    fix = "wait for the other `rlreg reproduce` of this table to finish, or stop it (its runs resume)"
    with FolderLock(root, "table folder", fix):  # one writer per table
        (root / "spec.yaml").write_text(table.to_yaml())
        (root / "logs").mkdir(exist_ok=True)
        states = {c: cell_state(table, c, root) for c in table.cells()}
        todo = [c for c, s in states.items() if s != "done"]
        progress = Progress(table, root, todo, done=len(states) - len(todo), jobs=jobs)
        progress.show(force=True)
        threads = _threads(jobs)
        runner = _ray_runner(ray_address, threads) if ray_address else _local_runner(threads, jobs)
        # its last line: the final counts
        failed = _schedule(table, root, progress.order(), jobs, runner, progress, poll)
    return {"done": progress.done, "failed": failed, "out": str(root)}


def _check_out(table: TableSpec, root: Path) -> None:
    saved = root / "spec.yaml"
    if not saved.exists():
        return
    old = yaml.safe_load(saved.read_text()) or {}
    mine = yaml.safe_load(table.to_yaml())
    keys = ("agents", "eval", "set")  # a new budget (steps) extends or cuts the same runs
    same = {k: old.get(k) for k in keys} == {k: mine.get(k) for k in keys}
    check(
        same,
        f"{root} holds the runs of a different table spec (agents, eval or set differ; {saved})",
        "use another --out, or the same spec as before",
    )


def _threads(jobs: int) -> int:
    from rlreg.threads import usable_cores

    return max(1, usable_cores() // jobs)


Runner = Callable[[list[str], Path], Any]


def _local_runner(threads: int, jobs: int) -> dict[str, Callable]:
    env = {**os.environ, "RLREG_JOBS": str(jobs)}

    def start(cmd: list[str], log: Path) -> subprocess.Popen:
        with log.open("ab") as f:
            f.write(("$ " + " ".join(cmd) + "\n").encode())
            f.flush()
            return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)

    def result(job: subprocess.Popen) -> int | None:
        return job.poll()

    def stop(job: subprocess.Popen) -> None:
        if job.poll() is None:
            job.send_signal(signal.SIGINT)  # the run stops at a clean point and can resume
        try:
            job.wait(timeout=60)
        except subprocess.TimeoutExpired:
            job.kill()

    return {"start": start, "result": result, "stop": stop}


def _ray_runner(address: str, threads: int) -> dict[str, Callable]:
    try:
        import ray
    except ImportError:
        raise RlregError("--ray needs the ray package", "pip install 'rlreg[ray]'") from None
    if not ray.is_initialized():  # "local": a Ray instance on this machine's usable cores
        from rlreg.threads import usable_cores

        local = {"num_cpus": usable_cores(), "include_dashboard": False}
        ray.init(**(local if address == "local" else {"address": address}), log_to_driver=False)

    @ray.remote(num_cpus=threads)
    def run_cell(cmd: list[str], log: str) -> int:  # on a Ray worker: its own Python runs rlreg
        import subprocess as sp
        import sys as worker_sys

        env = {**os.environ, "RLREG_JOBS": str(max(1, (os.cpu_count() or 1) // threads))}
        with open(log, "ab") as f:
            f.write(("$ " + " ".join(cmd) + "\n").encode())
            f.flush()
            return sp.run([worker_sys.executable, *cmd[1:]], stdout=f, stderr=sp.STDOUT, env=env).returncode

    def start(cmd: list[str], log: Path) -> Any:
        return run_cell.remote(cmd, str(log))

    def result(ref: Any) -> int | None:
        ready, _ = ray.wait([ref], timeout=0)
        return ray.get(ref) if ready else None

    def stop(ref: Any) -> None:
        ray.cancel(ref, force=True)

    return {"start": start, "result": result, "stop": stop}


def _schedule(
    table: TableSpec, root: Path, todo: list[Cell], jobs: int, runner: dict, progress: Progress, poll: float
) -> list[str]:
    pending, running, failed = list(todo), {}, []
    last = 0.0
    try:
        while pending or running:
            while pending and len(running) < jobs:
                cell = pending.pop(0)
                log = root / "logs" / f"{_safe(cell.task)}-{cell.agent}-s{cell.seed}.log"
                running[cell] = runner["start"](_command(table, cell, root), log)
                progress.started(cell)
            for cell, job in list(running.items()):
                rc = runner["result"](job)
                if rc is None:
                    continue
                del running[cell]
                progress.finished(cell)
                if rc == 0 and cell_state(table, cell, root) == "done":
                    progress.done += 1
                else:
                    failed.append(
                        f"{cell.agent} on {cell.task}, seed {cell.seed} (exit {rc}; log in {root}/logs)"
                    )
            progress.running, progress.failed = len(running), len(failed)
            if time.monotonic() - last > 30 or not (pending or running):
                progress.show(force=True)
                last = time.monotonic()
            else:
                progress.show()
            time.sleep(poll if running else 0)
    except BaseException:
        for job in running.values():
            runner["stop"](job)
        raise
    return failed


# ---------------------------------------------------------------------- dry run
def _dry_run(table: TableSpec, root: Path, jobs: int, probe_steps: int | None) -> dict[str, Any]:
    """Print the grid with each cell's state and the estimated cost from one probe per agent."""
    cells = table.cells()
    states = {c: cell_state(table, c, root) for c in cells}
    print(f"{table.name}: {len(table.agents)} agents × {len(table.tasks)} tasks × {len(table.seeds)} seeds")
    print(f"  = {len(cells)} runs of {table.steps} steps, evaluated every {table.eval_every} steps")
    kind = table.provenance.get("kind")
    print(f"  ({table.eval_episodes} episodes, score: {table.score}); provenance: {kind}")
    print(f"  out: {root}; {jobs} job(s) at a time, {_threads(jobs)} torch thread(s) each")
    for c in cells:
        print(f"  {states[c]:8s} {c.agent:10s} {c.task:28s} seed {c.seed}  {c.folder(root)}")
    todo = [c for c in cells if states[c] != "done"]
    estimate = None
    if todo and probe_steps != 0:
        per_agent = {a: _probe(table, a, table.tasks[0], probe_steps) for a in table.agents}
        left = sum(
            per_agent[c.agent][1] + (table.steps - _steps_done(c.folder(root))) * per_agent[c.agent][0]
            for c in todo
        )
        # jobs share the cores: measured here, 2 jobs of 1 thread each run at ~0.69 of one alone
        estimate = left / (jobs * (0.69 if jobs > 1 else 1.0))
        for a, (sec, start) in per_agent.items():
            print(
                f"  probe {a}: {sec * 1000:.2f} ms per step (training and evaluation), {start:.0f} s to start"
            )
        print(f"estimated cost: {_duration(estimate)} for {len(todo)} run(s) left (from the probes)")
    else:
        print(f"{len(todo)} run(s) left")
    return {"cells": len(cells), "left": len(todo), "estimate_s": estimate, "out": str(root)}


def _probe(table: TableSpec, agent: str, task: str, probe_steps: int | None) -> tuple[float, float]:
    """Seconds per step of ``agent`` on ``task`` (evaluation included at the spec's rate) and the
    seconds a run takes to start (process, imports, data): a short run of the same config in a
    temporary folder that is removed."""
    steps = probe_steps or min(table.steps, max(table.eval_every, 1000))
    steps = max(table.eval_every * max(1, steps // table.eval_every), table.eval_every)
    sets = {**_settings(table, agent, 0), "train.steps": str(steps), "train.checkpoint_every": "0"}
    a = table.agents[agent]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rlreg.agents.cli", "train", a["recipe"]]
        cmd += ["--env" if table.online else "--dataset", task, "--out", f"{tmp}/probe", "--no-progress"]
        for k, v in sets.items():
            cmd += ["--set", f"{k}={v}"]
        t0 = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - t0
        check(
            done.returncode == 0,
            f"the probe run of {agent} on {task} failed: {(done.stderr or done.stdout).strip()[-300:]}",
            "fix the spec (or run `rlreg train` with these settings to see the whole error)",
        )
        summary = _read_json(Path(tmp) / "probe" / "summary.json")
    loop = float(summary.get("wall_time_s") or wall)
    return loop / steps, max(0.0, wall - loop)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text()) if path.exists() else {}
