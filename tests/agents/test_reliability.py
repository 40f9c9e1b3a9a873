"""Behaviour-level checks of the fault battery (issue 13): one writer per run folder, exact logs
after resume, one-line errors for bad run folders and values, time-based checkpoints, progress."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rlreg.agents.cli import main
from rlreg.agents.recipes import resolve_config
from rlreg.agents.trainer import CHECKPOINT, evaluate_run, resume, train

from rlreg.checkpoint import load_checkpoint
from rlreg.errors import RlregError
from rlreg.locking import FolderLock

WALL_CLOCK = ("time", "updates_per_s", "env_steps_per_s")
TINY = {"agent.actor_hidden": "[16]", "agent.critic_hidden": "[16]", "train.eval_episodes": "0"}


def tiny_cfg(dataset: str, steps: int, recipe: str = "td3bc", **sets: str) -> dict:
    extra = {"a2pr.value_hidden": "[16]", "a2pr.vae_hidden": "[16]"} if recipe == "a2pr" else {}
    return resolve_config(
        recipe, dataset, seed=5, device="cpu", sets={**TINY, **extra, "train.steps": str(steps), **sets}
    )


def csv_without_wall_clock(path: Path) -> str:
    """The CSV's text with the wall-clock columns dropped (what must match byte for byte)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(rows[0]) if name not in WALL_CLOCK]
    buf = io.StringIO()
    csv.writer(buf).writerows([[r[i] for i in keep] for r in rows])
    return buf.getvalue()


class Crash(Exception):
    pass


def crash_at(step_to_crash: int):
    def callback(step, run):
        if step == step_to_crash:
            raise Crash

    return callback


def cli(*argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlreg.agents.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )


# ------------------------------------------------------------------ item 3: exact logs after resume
@pytest.mark.parametrize("recipe", ["td3bc", "prdc"])
def test_logs_after_resume_inside_a_logging_window_are_exact(pendulum_medium, tmp_path, recipe):
    """checkpoint_every=300, log_every=500: kills at 400, 700 and 1100 fall inside logging windows;
    after each resume metrics.csv and eval.csv match an uninterrupted run's byte for byte."""
    sets = {"train.checkpoint_every": "300", "train.log_every": "500", "train.checkpoint_minutes": "0"}
    full = tmp_path / "full"
    train(tiny_cfg(pendulum_medium, 1500, recipe, **sets), full, progress=False)
    run = tmp_path / "killed"
    with pytest.raises(Crash):
        train(tiny_cfg(pendulum_medium, 1500, recipe, **sets), run, progress=False, callback=crash_at(400))
    for kill in (700, 1100):
        with pytest.raises(Crash):
            resume(run, progress=False, callback=crash_at(kill))
    resume(run, progress=False)
    for name in ("metrics.csv",):
        assert csv_without_wall_clock(full / name) == csv_without_wall_clock(run / name)
    assert [r[0] for r in csv.reader((full / "metrics.csv").open())][1:] == ["500", "1000", "1500"]


# ------------------------------------------------------------------ item 2: one writer per folder
def test_folder_lock_names_the_holder(tmp_path):
    holder = rf"in use by another rlreg process \(PID {os.getpid()}\)"
    with FolderLock(tmp_path, "run folder"), pytest.raises(RlregError, match=holder):
        FolderLock(tmp_path, "run folder").acquire()
    FolderLock(tmp_path).acquire().release()  # released: free again


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    t0 = time.time()
    while not path.exists():
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def test_second_writer_of_one_run_folder_stops_at_once_and_kill_releases(pendulum_medium, tmp_path):
    out = tmp_path / "run"
    args = ["train", "td3bc", "--dataset", pendulum_medium, "--eval-episodes", "0", "--no-progress"]
    args += [
        "--set",
        "actor_hidden=[16]",
        "--set",
        "critic_hidden=[16]",
        "--set",
        "train.checkpoint_every=200",
    ]
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlreg.agents.cli",
            *args,
            "--steps",
            "1000000",
            "--seed",
            "1",
            "--out",
            str(out),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(out / CHECKPOINT)
        second = cli(*args, "--steps", "100", "--seed", "2", "--out", str(out))
        assert second.returncode == 2
        assert f"in use by another rlreg process (PID {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        resumed = cli("train", "--resume", str(out), "--no-progress")
        assert resumed.returncode == 2 and f"PID {first.pid}" in resumed.stderr
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["seed"] == 1  # the second writer wrote nothing
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the OS released the lock with the process: the run resumes (to a short total here)
    step = load_checkpoint(out / CHECKPOINT)["step"]
    done = cli("train", "--resume", str(out), "--steps", str(step + 10), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == step + 10


# ------------------------------------------------------------------ item 5: one line, not a traceback
def test_out_is_checked_before_anything_is_loaded(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("RLREG_HOME", str(home))  # the dataset is not made here: nothing may make it
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for out, says in ((a_file, "is an existing file"), (a_file / "sub", "lies under")):
        assert main(["train", "td3bc", "--dataset", "pendulum-expert-v0", "--out", str(out)]) == 2
        captured = capsys.readouterr()
        assert says in captured.err and "run folder" not in captured.out
    assert not (home / "minari").exists()


def test_out_on_a_read_only_disk(tmp_path, capsys, monkeypatch):
    import errno

    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert (
        main(["train", "td3bc", "--dataset", "pendulum-expert-v0", "--out", str(tmp_path / "ro" / "r")]) == 2
    )
    e = capsys.readouterr().err
    assert "cannot write the run folder" in e and "Read-only file system" in e and "Traceback" not in e


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root may write anywhere")
def test_out_in_a_folder_without_write_permission(tmp_path, capsys):  # pragma: no cover (non-root)
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert main(["train", "td3bc", "--dataset", "pendulum-expert-v0", "--out", str(ro / "r")]) == 2
    assert "cannot write the run folder" in capsys.readouterr().err


@pytest.mark.parametrize("nested", [False, True])
def test_failed_run_leaves_no_folder_and_names_none(tmp_path, capsys, nested):
    out = tmp_path / "never" / "exp" / "seed0" if nested else tmp_path / "never"
    # a dataset that fails only when it is loaded (after the folder was claimed)
    code = main(["train", "td3bc", "--dataset", f"d4rl:{tmp_path / 'absent.hdf5'}", "--out", str(out)])
    assert code == 2
    assert "run folder" not in capsys.readouterr().out
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("content", ["{not json", "{}", "[]", '{"agent": "td3"}'])
@pytest.mark.parametrize("command", ["evaluate", "resume"])
def test_bad_config_json_is_one_line(pendulum_medium, tmp_path, capsys, content, command):
    out = tmp_path / "run"
    train(tiny_cfg(pendulum_medium, 10), out, progress=False)
    (out / "config.json").write_text(content)
    argv = ["evaluate", str(out)] if command == "evaluate" else ["train", "--resume", str(out)]
    assert main(argv) == 2
    e = capsys.readouterr().err
    assert "config.json" in e and "fix:" in e and len(e.strip().splitlines()) == 2


def test_partial_checkpoint_tmp_is_removed_on_resume(pendulum_medium, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Crash):
        train(
            tiny_cfg(pendulum_medium, 60, **{"train.checkpoint_every": "20"}),
            out,
            progress=False,
            callback=crash_at(30),
        )
    (out / (CHECKPOINT + ".tmp")).write_bytes(b"half a checkpoint")
    resume(out, progress=False)
    assert not (out / (CHECKPOINT + ".tmp")).exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", ".nan"])
def test_non_finite_float_says_finite(capsys, value):
    assert main(["train", "td3bc", "--dataset", "pendulum-medium-v0", "--set", f"agent.alpha={value}"]) == 2
    assert "agent.alpha" in (e := capsys.readouterr().err) and "must be a finite number" in e


# ------------------------------------------------------------------ item 8: checkpoints by time, progress
def test_checkpoint_by_wall_clock_time(pendulum_medium, tmp_path, monkeypatch):
    """With a tiny checkpoint_minutes, a run killed between step checkpoints has a recent one, and
    resuming from it is exact."""
    sets = {"train.checkpoint_every": "0", "train.log_every": "25", "train.checkpoint_minutes": "1e-9"}
    full = tmp_path / "full"
    train(tiny_cfg(pendulum_medium, 80, **sets), full, progress=False)
    out = tmp_path / "killed"
    with pytest.raises(Crash):
        train(tiny_cfg(pendulum_medium, 80, **sets), out, progress=False, callback=crash_at(37))
    assert load_checkpoint(out / CHECKPOINT)["step"] == 37  # checkpoint_every=0: by time only
    resume(out, progress=False)
    assert csv_without_wall_clock(full / "metrics.csv") == csv_without_wall_clock(out / "metrics.csv")


def signal_at(step_to_signal: int, signum: int):
    def callback(step, run):
        if step == step_to_signal:
            os.kill(os.getpid(), signum)  # the handler runs before the loop goes on

    return callback


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_resume_is_exact(
    pendulum_medium, tmp_path, capsys, signum
):
    """Ctrl-C or SIGTERM at step 37 (periodic checkpoints every 50): the run stops after step 37
    with a checkpoint there, raises KeyboardInterrupt, leaves the handlers as they were, and its
    resumed logs equal an uninterrupted run's."""
    sets = {"train.checkpoint_every": "50", "train.log_every": "25", "train.checkpoint_minutes": "0"}
    sets |= {"train.eval_every": "40", "train.eval_episodes": "1"}
    full = tmp_path / "full"
    train(tiny_cfg(pendulum_medium, 80, **sets), full, progress=False)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(pendulum_medium, 80, **sets), out, progress=False, callback=signal_at(37, signum))
    assert "stopping after this step with a checkpoint" in capsys.readouterr().err
    assert {s: signal.getsignal(s) for s in before} == before
    assert load_checkpoint(out / CHECKPOINT)["step"] == 37
    assert not (out / "summary.json").exists()
    resume(out, progress=False)
    assert csv_without_wall_clock(full / "metrics.csv") == csv_without_wall_clock(out / "metrics.csv")
    assert csv_without_wall_clock(full / "eval.csv") == csv_without_wall_clock(out / "eval.csv")


def test_a_second_signal_stops_at_once_but_one_delivered_twice_counts_once(monkeypatch):
    from rlreg.agents import loop

    clock = iter([10.0, 10.5, 12.0])
    monkeypatch.setattr(loop.time, "monotonic", lambda: next(clock))
    with loop.StopRequest() as stop:
        assert not stop.requested
        stop.handle(signal.SIGINT, None)  # t = 10: stop after the step
        assert stop.requested
        stop.handle(signal.SIGINT, None)  # t = 10.5: the same Ctrl-C through a parent
        with pytest.raises(KeyboardInterrupt):
            stop.handle(signal.SIGINT, None)  # t = 12: the user insists


def test_the_rlreg_command_stopped_by_sigterm_resumes_exactly(pendulum_medium, tmp_path):
    """``kill PID`` of a training process: exit 130, a checkpoint at the step it stopped (not the last
    periodic one), and ``--resume`` finishes the run."""
    out = tmp_path / "run"
    args = ["train", "td3bc", "--dataset", pendulum_medium, "--eval-episodes", "0", "--no-progress"]
    args += ["--set", "train.steps=200000", "--set", "train.checkpoint_every=100000", "--out", str(out)]
    args += ["--set", "train.log_every=100", "--set", "train.checkpoint_minutes=0"]
    cmd = [sys.executable, "-m", "rlreg.agents.cli", *args]
    job = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out / "metrics.csv").exists() or len((out / "metrics.csv").read_text().splitlines()) < 3:
        assert time.time() - t0 < 120 and job.poll() is None, "the run never logged"
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 130, err
    assert "SIGTERM: stopping after this step" in err and "--resume" in err
    step = load_checkpoint(out / CHECKPOINT)["step"]
    assert 200 <= step < 100000  # where it stopped: after the second log row, before any periodic one
    assert main(["train", "--resume", str(out), "--steps", str(step + 50), "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == step + 50


def test_progress_bar_moves_by_time_not_by_logging(pendulum_medium, tmp_path, capsys, monkeypatch):
    import rlreg.agents.loop as loop

    monkeypatch.setattr(loop, "BAR_SECONDS", 0.0)
    cfg = tiny_cfg(pendulum_medium, 40, **{"train.log_every": "1000"})
    train(cfg, tmp_path / "r", progress=True)
    captured = capsys.readouterr()
    assert "metrics at the end" in captured.out and "checkpoint" in captured.out  # intervals said at start
    shown = [int(s.split("/")[0].split()[-1]) for s in captured.err.split("\r") if "/40 " in s]
    assert any(0 < n < 40 for n in shown), captured.err  # moved before the only log row (step 40)
    moves = [n for n in shown if 0 < n < 40]
    assert len(moves) == len(set(moves))  # each move printed once


def test_evaluate_is_fresh_by_default_and_repeatable_with_seed(pendulum_medium, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_cfg(pendulum_medium, 20, **{"train.eval_episodes": "2", "train.eval_every": "20"})
    train(cfg, out, progress=False)
    trained = next(csv.DictReader((out / "eval.csv").open()))
    a, b = evaluate_run(out, 2), evaluate_run(out, 2)
    assert a["seed"] != b["seed"]
    same = evaluate_run(out, 2, seed=cfg["seed"] + cfg["train"]["eval_seed_offset"])
    assert same["return_mean"] == pytest.approx(float(trained["return_mean"]), rel=1e-6)
    assert evaluate_run(out, 2, seed=7)["return_mean"] == evaluate_run(out, 2, seed=7)["return_mean"]


# ------------------------------------------------------------------ item 6: threads on a shared machine
def test_threads_follow_cores_and_running_jobs(tmp_path, monkeypatch):
    import torch

    from rlreg import threads
    from rlreg.locking import try_lock_file

    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setenv("RLREG_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setitem(threads._state, "runtime_set", True)  # as under the rlreg command
    monkeypatch.delenv("RLREG_JOBS", raising=False)
    assert threads.default_threads() == 4 and threads.default_threads(jobs=8) == 1
    gov = threads.ThreadGovernor(interval=0.0)
    try:
        assert gov.adaptive and gov.threads == 4 and torch.get_num_threads() == 4
        others = [try_lock_file(tmp_path / "jobs" / f"other{i}.job") for i in range(3)]  # 3 more runs
        assert gov.poll() == 1 and torch.get_num_threads() == 1
        for o in others[1:]:
            o.release()  # two of them end (killed: entries stay, their locks go)
        assert gov.poll() == 2 and threads.running_jobs() == 2
        assert len(list((tmp_path / "jobs").glob("*.job"))) == 2  # stale entries removed
        monkeypatch.setenv("RLREG_JOBS", "4")  # a runner says 4 jobs: never more than cores // 4
        assert gov.poll() == 1
        others[0].release()
    finally:
        gov.close()
    assert threads.running_jobs() == 0
    assert threads.ThreadGovernor(fixed=3).poll() == 3  # train.threads=N pins N
    monkeypatch.setitem(threads._state, "runtime_set", False)
    pinned = threads.ThreadGovernor(interval=0.0)  # numerics depend on threads here: no adapting
    try_lock_file(tmp_path / "jobs" / "late.job")
    assert not pinned.adaptive and pinned.poll() == pinned.threads
    pinned.close()
    monkeypatch.setenv("RLREG_JOBS", "zero")
    with pytest.raises(RlregError, match="RLREG_JOBS"):
        threads.default_threads()


def test_rlreg_command_sets_thread_independent_numerics_unless_the_user_did():
    probe = (
        "import os, rlreg.agents.cli as c, rlreg.threads as t; c.main(['agents']); "
        "print('SET', os.environ.get('GOMP_SPINCOUNT'), os.environ.get('MKL_CBWR'), "
        "os.environ.get('THP_MEM_ALLOC_ENABLE'), t.thread_independent())"
    )
    ours = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "MKL_CBWR", "THP_MEM_ALLOC_ENABLE")
    clean = {k: v for k, v in os.environ.items() if k not in ours}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=clean).stdout
    assert "SET 1000 AUTO,STRICT 1 True" in out
    mine = {**clean, "GOMP_SPINCOUNT": "123", "MKL_CBWR": "COMPATIBLE", "THP_MEM_ALLOC_ENABLE": "0"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=mine).stdout
    assert "SET 123 COMPATIBLE 0 False" in out


def hopper_shaped_file(path: Path, n: int = 3000) -> str:
    """Synthetic D4RL-schema data with Hopper's shapes (11-d states, 3-d actions), no env named."""
    import numpy as np

    from rlreg.data.d4rl import write_d4rl_hdf5

    rng = np.random.default_rng(0)
    write_d4rl_hdf5(
        path,
        observations=rng.normal(size=(n, 11)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        terminals=rng.uniform(size=n) < 0.01,
        timeouts=np.arange(n) % 500 == 499,
    )
    return f"d4rl:{path}"


@pytest.mark.parametrize("recipe", ["td3bc", "prdc"])
def test_results_do_not_depend_on_the_thread_count(tmp_path, recipe):
    """Under the rlreg command's settings, 1 and 2 threads give the same metrics bit for bit (with
    MKL's default dispatch, torch imported first, these Hopper-shaped runs differ by step 100)."""
    spec = hopper_shaped_file(tmp_path / "hopper-shaped.hdf5")
    rows = []
    for t in (1, 2):
        out = tmp_path / f"t{t}"
        args = ["train", recipe, "--dataset", spec, "--steps", "300", "--eval-episodes", "0"]
        args += ["--set", "train.log_every=100", "--set", f"train.threads={t}", "--out", str(out)]
        env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
        proc = subprocess.run([sys.executable, "-m", "rlreg.agents.cli", *args, "--no-progress"], env=env)
        assert proc.returncode == 0
        rows.append(csv_without_wall_clock(out / "metrics.csv"))
    assert rows[0] == rows[1]


def test_datasets_listing_shows_a_damaged_dataset_and_its_fix(tmp_path, capsys, monkeypatch):
    from rlreg.envs.datasets import make_dataset

    monkeypatch.setenv("RLREG_HOME", str(tmp_path))
    dataset_id = make_dataset("pendulum-random-v0", progress=False)
    (tmp_path / "minari" / dataset_id / "data" / "main_data.hdf5").unlink()
    capsys.readouterr()
    assert main(["datasets"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("pendulum-random-v0"))
    assert "damaged" in line and "rlreg datasets make pendulum-random-v0 --force" in line
