"""Benchmark tables: specs (validation before any run), rlreg reproduce (jobs, kill and resume, Ray),
rlreg report (statistics, provenance, tables and PNGs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rlreg.agents import report as report_mod
from rlreg.agents.tables import Cell, cell_state, load_spec, reproduce, spec_names

from rlreg import stats
from rlreg.errors import RlregError

TINY = """\
name: tiny
description: PPO with and without its entropy bonus on CartPole
agents:
  ppo: ppo
  ppo0: {recipe: ppo, set: {entropy.coef: 0}}
envs: [CartPole-v1]
seeds: [0, 1]
steps: 2048
eval: {every: 1024, episodes: 2, score: last}
set: {train.checkpoint_every: 512}
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rlreg_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rlreg.agents.cli", *args]


# ---------------------------------------------------------------------- specs
def test_every_shipped_spec_and_variant_loads_with_one_provenance() -> None:
    names = spec_names()
    for base in ("offline-locomotion", "minatar-dqn", "dmc-beer", "ppo-siren"):
        assert base in names and f"{base}-smoke" in names
    for name in names:
        table = load_spec(name)
        assert table.cells() and table.provenance["kind"]
        assert len({c.folder(Path("x")) for c in table.cells()}) == len(table.cells())
    smoke = load_spec("offline-locomotion-smoke")
    assert smoke.tasks == ["hopper-medium-replay-v0"] and smoke.steps == 1000
    assert {p["task"] for p in smoke.published} == {"hopper-medium-replay-v0"}  # rows of the variant's grid
    assert load_spec("offline-locomotion").provenance["kind"] == "rlreg-made"


def test_cells_are_seed_major() -> None:
    table = load_spec("dmc-beer")
    seeds = [c.seed for c in table.cells()]
    assert seeds == sorted(seeds)
    assert table.cells()[0] == Cell("ddpg", "dmc:cheetah-run", 0)


def spec_text(agent: str = "ppo", tasks: str = "envs: [CartPole-v1]", seeds: str = "[0]", **kw: str) -> str:
    """A small spec with one thing changed (``steps``, ``eval``, ``extra`` lines)."""
    steps, ev = kw.get("steps", "10"), kw.get("eval", "{every: 10, episodes: 1}")
    text = f"name: x\nagents: {{a: {agent}}}\n{tasks}\nseeds: {seeds}\nsteps: {steps}\neval: {ev}\n"
    return text + kw.get("extra", "")


BAD_SPECS = [
    (spec_text("nosuchrecipe"), "unknown recipe 'nosuchrecipe'"),
    (spec_text("td3bc", "datasets: [nosuch-medium-v0]"), "unknown dataset 'nosuch-medium-v0'"),
    (spec_text("td3bc", "datasets: ['d4rl:/nonexistent/file.hdf5']"), "does not exist"),
    ("name: x\nagents: [a, b\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    (spec_text(steps="100", eval="{every: 30, episodes: 1}"), "not a multiple of eval.every"),
    (spec_text(seeds="[0, 0]"), "repeated seeds"),
    (spec_text(extra="colour: blue\n"), "unknown keys"),
    (
        spec_text(extra="published: [{agent: a, task: Pendulum-v1, mean: 1, source: s, provenance: p}]\n"),
        "not in the grid",
    ),
    (spec_text(eval="{every: 10, episodes: 1, score: median}"), "eval.score"),
    (spec_text("{recipe: ppo, set: {agent.nosuch: 1}}"), "nosuch"),
    (spec_text("td3"), "continuous"),
    (spec_text(tasks="datasets: [pendulum-medium-v0]\nenvs: [CartPole-v1]"), "exactly one of"),
]


@pytest.mark.parametrize(("text", "match"), BAD_SPECS)
def test_bad_spec_fails_before_any_run(tmp_path: Path, text: str, match: str) -> None:
    spec = write(tmp_path, text)
    out = tmp_path / "out"
    with pytest.raises(RlregError, match=match):
        reproduce(spec, out=out)
    assert not out.exists()


def test_mixed_provenance_is_refused(tmp_path: Path) -> None:
    from tests.agents.test_reliability import hopper_shaped_file

    d4rl = hopper_shaped_file(tmp_path / "hopper.hdf5")
    text = (
        f"name: mixed\nagents: {{a: td3bc}}\ndatasets: [hopper-medium-replay-v0, '{d4rl}']\nseeds: [0]\n"
        "steps: 10\neval: {every: 10, episodes: 1}\n"
    )
    out = tmp_path / "out"
    with pytest.raises(RlregError, match="mixes tasks of different provenance") as e:
        reproduce(write(tmp_path, text), out=out)
    assert "one spec per provenance" in str(e.value)
    assert not out.exists()


def test_unknown_shipped_name_lists_the_specs() -> None:
    with pytest.raises(RlregError, match="ppo-siren-smoke"):
        load_spec("no-such-table")
    with pytest.raises(RlregError, match="no variant 'huge'"):
        load_spec("ppo-siren-huge")


def test_cli_bad_spec_is_one_clear_line(tmp_path: Path) -> None:
    spec = write(tmp_path, "name: x\nagents: [a, b\n")
    done = subprocess.run(rlreg_cmd("reproduce", str(spec)), capture_output=True, text=True)
    assert done.returncode == 2 and "not valid YAML" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------- run, kill, resume, report
def _done_cells(table, out: Path) -> list[Cell]:
    return [c for c in table.cells() if cell_state(table, c, out) == "done"]


def test_smoke_spec_runs_is_killed_and_resumes_then_reports(tmp_path: Path) -> None:
    spec = write(tmp_path, TINY)
    out = tmp_path / "table"
    table = load_spec(spec)
    job = subprocess.Popen(
        rlreg_cmd("reproduce", str(spec), "--jobs", "2", "--out", str(out)),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 240
    while not _done_cells(table, out) and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
    job.send_signal(signal.SIGTERM)
    text, _ = job.communicate(timeout=120)
    first = _done_cells(table, out)
    assert first, text
    stamps = {c: (c.folder(out) / "eval.csv").stat().st_mtime_ns for c in first}
    if job.returncode == 130:  # killed mid-table (the usual case): something was left to do
        assert "interrupted" in text and len(first) < len(table.cells())
    dry = subprocess.run(
        rlreg_cmd("reproduce", str(spec), "--out", str(out), "--dry-run", "--probe-steps", "0"),
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0 and dry.stdout.count("done ") == len(first), dry.stdout
    again = subprocess.run(
        rlreg_cmd("reproduce", str(spec), "--jobs", "2", "--out", str(out)), capture_output=True, text=True
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(_done_cells(table, out)) == len(table.cells())
    for c, stamp in stamps.items():  # finished cells were not redone
        assert (c.folder(out) / "eval.csv").stat().st_mtime_ns == stamp
    rep = subprocess.run(rlreg_cmd("report", str(out)), capture_output=True, text=True)
    assert rep.returncode == 0, rep.stderr
    files = {p.name for p in (out / "report").iterdir()}
    assert {"report.md", "cells.csv", "aggregates.csv", "table.tex", "curves.png"} <= files
    assert (out / "report" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "| CartPole-v1 | ppo0 | 2/2 |" in (out / "report" / "report.md").read_text()
    assert "Aggregates over 1 tasks" in rep.stdout and "ppo > ppo0" in rep.stdout  # one task: one scale


def test_other_spec_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "t"
    out.mkdir()
    (out / "spec.yaml").write_text(load_spec(write(tmp_path, TINY)).to_yaml())
    other = TINY.replace("episodes: 2", "episodes: 3")
    with pytest.raises(RlregError, match="different table spec"):
        reproduce(write(tmp_path, other, "other.yaml"), out=out)


def test_a_second_writer_of_a_table_is_refused(tmp_path: Path) -> None:
    from rlreg.locking import FolderLock

    out = tmp_path / "t"
    out.mkdir()
    with FolderLock(out, "table folder"), pytest.raises(RlregError, match="in use by another rlreg process"):
        reproduce(write(tmp_path, TINY), out=out)


def test_ray_runs_a_smoke_spec_on_a_local_instance(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    text = TINY.replace("seeds: [0, 1]", "seeds: [0]").replace("steps: 2048", "steps: 1024")
    out = tmp_path / "ray"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = reproduce(write(tmp_path, text), out=out, jobs=2, ray_address="local")
    finally:
        ray.shutdown()
    table = load_spec(out / "spec.yaml", check_tasks=False)
    assert result["failed"] == [] and len(_done_cells(table, out)) == 2


# ---------------------------------------------------------------------- report statistics
def fake_table(tmp_path: Path, scores: dict[tuple[str, str], list[float]], normalizer: str = "d4rl") -> Path:
    """A table folder written by hand: spec.yaml and, per run, config.json and eval.csv."""
    tasks = sorted({t for _, t in scores})
    agents = sorted({a for a, _ in scores})
    spec = {
        "name": "fake",
        "description": "hand-made",
        "agents": {a: {"recipe": "td3bc", "set": {}} for a in agents},
        "datasets": tasks,
        "seeds": list(range(len(next(iter(scores.values()))))),
        "steps": 20,
        "eval": {"every": 10, "episodes": 1, "score": "last", "k": 3},
        "set": {},
        "published": [
            {
                "agent": agents[0],
                "task": tasks[0],
                "mean": 50.0,
                "std": 2.0,
                "source": "a paper (2023)",
                "provenance": "D4RL v2",
            }
        ],
    }
    out = tmp_path / "fake"
    out.mkdir()
    import yaml

    (out / "spec.yaml").write_text(yaml.safe_dump(spec))
    for (agent, task), values in scores.items():
        for seed, v in enumerate(values):
            run = Cell(agent, task, seed, len(tasks) == 1).folder(out)
            run.mkdir(parents=True)
            info = {
                "source": f"made {task}",
                "normalizer": normalizer,
                "env_id": "Hopper-v5",
                "ref_min_score": 0.0 if normalizer != "none" else None,
            }
            (run / "config.json").write_text(json.dumps({"dataset_info": info, "dataset_digest": task}))
            rows = ["step,return_mean,return_std,length_mean,score", f"10,1,0,1,{v + 5}", f"20,1,0,1,{v}"]
            (run / "eval.csv").write_text("\n".join(rows) + "\n")
    return out


def test_report_statistics_match_the_stats_module(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    scores = {(a, t): list(rng.normal(50 + 10 * (a == "b"), 5, 4)) for a in "ab" for t in ("t1", "t2", "t3")}
    out = fake_table(tmp_path, scores)
    result = report_mod.report(out, reps=500, echo=False)
    agg = result["aggregates"]
    per_task_b = [np.array(scores[("b", t)]) for t in ("t1", "t2", "t3")]
    assert agg["agents"]["b"]["iqm"] == stats.stratified_bootstrap_ci(per_task_b, "iqm", reps=500)
    assert agg["agents"]["b"]["iqm"][0] == pytest.approx(stats.iqm(np.concatenate(per_task_b)))
    p, lo, hi = agg["poi"][("a", "b")]
    assert p < 0.2 and lo <= p <= hi  # b is 10 points better: P(a > b) is small
    row = next(r for r in result["cells"] if r["agent"] == "a" and r["task"] == "t1")
    m, sd, lo, hi = stats.mean_std_ci(scores[("a", "t1")])
    assert (row["last"], row["last_std"], row["last_lo"]) == pytest.approx((m, sd, lo))
    assert row["best"] == pytest.approx(np.mean([v + 5 for v in scores[("a", "t1")]]))
    md = (out / "report" / "report.md").read_text()
    assert "50.0 ± 2.0 [1]" in md and "[1] a paper (2023); data: D4RL v2" in md
    for name in ("aggregates.png", "profiles.png", "curves.png"):
        assert (out / "report" / name).read_bytes()[:4] == b"\x89PNG"
    tex = (out / "report" / "table.tex").read_text()
    assert "\\begin{tabular}" in tex and "$\\pm$" in tex
    assert "probability_of_improvement" in (out / "report" / "aggregates.csv").read_text()


def test_report_refuses_runs_of_one_task_on_different_data(tmp_path: Path) -> None:
    out = fake_table(tmp_path, {("a", "t1"): [1.0, 2.0], ("b", "t1"): [3.0, 4.0]})
    cfg = Cell("b", "t1", 1, True).folder(out) / "config.json"
    d = json.loads(cfg.read_text())
    d["dataset_digest"] = "another"
    cfg.write_text(json.dumps(d))
    with pytest.raises(RlregError, match="used different data"):
        report_mod.report(out, echo=False)


def test_raw_returns_of_several_tasks_get_no_aggregate(tmp_path: Path) -> None:
    out = fake_table(tmp_path, {(a, t): [1.0, 2.0] for a in "ab" for t in ("t1", "t2")}, normalizer="none")
    result = report_mod.report(out, formats=["md"], echo=False)
    assert "not on one scale" in result["aggregates"]["why"]
    assert "not on one scale" in (out / "report" / "report.md").read_text()


def test_report_bad_input(tmp_path: Path) -> None:
    with pytest.raises(RlregError, match="no spec.yaml"):
        report_mod.report(tmp_path, echo=False)
    out = fake_table(tmp_path, {("a", "t1"): [1.0, 2.0]})
    with pytest.raises(RlregError, match="unknown report formats"):
        report_mod.report(out, formats=["html"], echo=False)


def test_unfinished_runs_are_left_out_and_counted(tmp_path: Path) -> None:
    out = fake_table(tmp_path, {("a", "t1"): [1.0, 2.0, 3.0]})
    ev = Cell("a", "t1", 2, True).folder(out) / "eval.csv"
    ev.write_text("\n".join(ev.read_text().splitlines()[:2]) + "\n")  # stopped at step 10 of 20
    result = report_mod.report(out, formats=["md"], echo=False)
    row = result["cells"][0]
    assert row["seeds"] == 2 and row["last"] == pytest.approx(1.5)
    assert os.path.exists(out / "report" / "report.md")


def test_progress_line_and_eta_from_measured_throughput(tmp_path: Path) -> None:
    import io

    from rlreg.agents import tables

    table = load_spec(write(tmp_path, TINY))
    cells = table.cells()
    earlier, todo = cells[:2], cells[2:]

    def log(cell, *rows: str) -> None:
        cell.folder(tmp_path).mkdir(parents=True, exist_ok=True)
        (cell.folder(tmp_path) / "metrics.csv").write_text("step,time,updates_per_s\n" + "".join(rows))

    for c in earlier:  # finished by an earlier invocation: 2048 steps in 20 s (102.4 steps/s)
        log(c, "1024,10.0,100\n", "2048,20.0,100\n")
    stream = io.StringIO()
    p = tables.Progress(table, tmp_path, todo, done=2, stream=stream, jobs=2)
    # nothing has run in this invocation yet: the earlier cells' rates give an ETA at once
    assert p.eta() == pytest.approx(2 * 2048 / 102.4 / 2)
    for c in todo:
        p.started(c)
        log(c, "512,10.0,50\n", "1024,20.0,50\n")  # this invocation, sharing the machine: 51.2/s
    p.running = 2
    # 1024 steps left each at 51.2 steps/s = 20 s each; two jobs share the 40 cell-seconds: 20 s
    assert p.line() == "[tiny] cells 2 done, 2 running, 0 left; ETA 20 s"
    p.show()
    assert stream.getvalue().count("\n") == 1
    # a slower agent is costed at its own rate: todo[1]'s agent trained 768 steps in 30 s (25.6/s)
    log(todo[1], "512,20.0,25\n", "768,30.0,25\n")
    assert p.eta() == pytest.approx((1024 / 51.2 + 1280 / 25.6) / 2)
    # a resumed run whose stale rows ran past its checkpoint is costed by its rate, not its start
    log(todo[1], "1280,50.0,25\n")
    assert p.eta() == pytest.approx((1024 / 51.2 + 768 / 25.6) / 2)
    p.finished(todo[0])
    assert p.eta() == pytest.approx(768 / 25.6 / 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["ppo-siren-smoke", "minatar-dqn-smoke", "dmc-beer-smoke", "offline-locomotion-smoke"]
)
def test_shipped_smoke_specs_run_and_report(tmp_path: Path, name: str) -> None:
    """Each shipped -smoke table trains end to end with two jobs and reports (minutes each)."""
    out = tmp_path / name
    result = reproduce(name, out=out, jobs=2)
    table = load_spec(name)
    assert result["failed"] == [] and len(_done_cells(table, out)) == len(table.cells())
    rep = report_mod.report(out, reps=200, echo=False)
    assert all(r["seeds"] == len(table.seeds) for r in rep["cells"])
    assert (out / "report" / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_cells_run_seed_by_seed_and_longest_first_within_a_seed(tmp_path: Path) -> None:
    from rlreg.agents import tables

    table = load_spec(write(tmp_path, TINY))
    cells = table.cells()  # ppo s0, ppo0 s0, ppo s1, ppo0 s1
    p = tables.Progress(table, tmp_path, cells, done=0)
    assert p.order() == cells  # nothing measured: the spec's order
    slow = cells[1]  # ppo0 trains 10x slower than ppo
    for c, rows in ((cells[0], "1024,1.0\n"), (slow, "256,2.5\n")):
        c.folder(tmp_path).mkdir(parents=True)
        (c.folder(tmp_path) / "metrics.csv").write_text("step,time\n" + rows)
    order = p.order()
    assert [c.seed for c in order] == [0, 0, 1, 1]  # whole seeds first
    assert order[:2] == [slow, cells[0]]  # seed 0: ppo0 has 1792 steps at 102.4/s left, ppo 1024 at 1024/s
    assert order[2:] == [cells[3], cells[2]]  # seed 1: the slow agent first
