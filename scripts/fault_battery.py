"""A fault-and-bad-input battery for the ``rlreg`` command line, as a new user would try it.

    python scripts/fault_battery.py              # every case (a few minutes on 2 cores)
    python scripts/fault_battery.py --list       # the cases, their group and what is expected
    python scripts/fault_battery.py --only hdf5  # cases whose name matches a regular expression
    python scripts/fault_battery.py --keep       # keep the temporary folder (printed)

Everything happens in a temporary folder ``$T`` with its own ``RLREG_HOME`` (``$T/home``), so the
user's home and the repository are never touched. Each case runs the real CLI in a subprocess
(``python -m rlreg.agents.cli ...``, cwd = repository root, ``OMP_NUM_THREADS=1``) and checks the exit
status, that an error is one ``rlreg: error: ...`` line plus a ``fix:`` line on stderr (no
traceback), and what is (or is not) on disk afterwards. Groups: malformed D4RL HDF5 files, bad
flags, SIGKILL and exact resume, corrupt or missing run artifacts (including crafted pickles that
would run code), run folders (including two writers at once), made datasets (concurrent making,
damaged files), determinism, and recipes.

The result is a Markdown table ``case | command | expected | outcome`` on stdout (progress on
stderr); the exit status is 1 when any case fails. See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "agent.actor_hidden=[16]", "--set", "agent.critic_hidden=[16]", "--no-progress"]
"""Tiny networks and no progress bar: every training run of the battery takes seconds."""
WALL_COLUMNS = ("time", "updates_per_s")
"""metrics.csv columns that measure wall-clock time (they differ between identical runs)."""
TIMEOUT_S = 300.0

__all__ = ["CASES", "Case", "Outcome", "Battery", "run_battery", "format_table", "main"]


# ---------------------------------------------------------------------- results and helpers
@dataclass
class Outcome:
    """What a case observed: whether it passed, a short detail, and the command shown in the table."""

    ok: bool
    detail: str
    command: str = ""


@dataclass
class Result:
    """One finished ``rlreg`` subprocess."""

    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class Case:
    """A battery case: ``fn(battery) -> Outcome``."""

    name: str
    group: str
    expected: str
    fn: Callable[[Battery], Outcome]


CASES: list[Case] = []


def case(name: str, group: str, expected: str) -> Callable[[Callable[[Battery], Outcome]], Callable]:
    """Register ``fn`` as a battery case."""

    def wrap(fn: Callable[[Battery], Outcome]) -> Callable[[Battery], Outcome]:
        CASES.append(Case(name, group, expected, fn))
        return fn

    return wrap


class Battery:
    """The shared temporary folder, environment and lazily built fixtures (dataset, runs)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update(
            RLREG_HOME=str(self.home),
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            PYTHONWARNINGS="ignore",
            PYTHONPATH=str(ROOT) + os.pathsep + self.env.get("PYTHONPATH", ""),
        )
        self._memo: dict[str, Any] = {}
        self.last_command = ""

    # -- processes
    def argv(self, args: Sequence[str | os.PathLike]) -> list[str]:
        return [sys.executable, "-m", "rlreg.agents.cli", *map(str, args)]

    def show(self, args: Sequence[str | os.PathLike], prefix: str = "rlreg") -> str:
        """The command as the table shows it (``$T`` for the temporary folder)."""
        text = prefix + " " + shlex.join(str(a) for a in args)
        return text.replace(shlex.join(TINY), "$TINY").replace(str(self.root), "$T")

    def rlreg(self, *args: str | os.PathLike, home: Path | None = None, timeout: float = TIMEOUT_S) -> Result:
        """Run ``rlreg ARGS`` to completion; records the command for the table."""
        self.last_command = self.show(args)
        env = self.env if home is None else dict(self.env, RLREG_HOME=str(home))
        t0 = time.perf_counter()
        p = subprocess.run(
            self.argv(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        return Result(self.argv(args), p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)

    def popen(self, *args: str | os.PathLike, home: Path | None = None) -> subprocess.Popen:
        """Start ``rlreg ARGS`` in the background (stdout/stderr to files next to ``$T``)."""
        env = self.env if home is None else dict(self.env, RLREG_HOME=str(home))
        fd, name = tempfile.mkstemp(dir=self.root, prefix="popen-", suffix=".log")
        with os.fdopen(fd, "wb") as log:
            p = subprocess.Popen(self.argv(args), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        p.log_path = Path(name)  # type: ignore[attr-defined]
        return p

    def python(self, code: str) -> Result:
        """Run ``python -c CODE`` in the battery's environment."""
        self.last_command = f"python -c {shlex.quote(code)}"
        p = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        return Result([sys.executable, "-c", code], p.returncode, p.stdout, p.stderr, 0.0)

    def rel(self, text: str) -> str:
        return text.replace(str(self.root), "$T")

    # -- fixtures
    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def dataset(self) -> None:
        """``pendulum-medium-v0`` made once in ``$T/home`` (default size, about 4 s)."""

        def make() -> None:
            r = self.rlreg("datasets", "make", "pendulum-medium-v0")
            if r.rc != 0:
                raise RuntimeError(f"making pendulum-medium-v0 failed: {last_line(r.stderr)}")

        self.memo("dataset", make)

    def train_run(self, name: str, *extra: str, steps: int = 200, seed: int = 0) -> Path:
        """A finished td3bc run ``$T/NAME`` on pendulum-medium-v0 (made once; do not modify it)."""

        def make() -> Path:
            self.dataset()
            out = self.root / name
            r = self.rlreg(
                "train", "td3bc", "--dataset", "pendulum-medium-v0", "--steps", str(steps),
                "--seed", str(seed), *extra, *TINY, "--out", out,
            )  # fmt: skip
            if r.rc != 0:
                raise RuntimeError(f"training {name} failed: {last_line(r.stderr)}")
            return out

        return self.memo(f"run:{name}", make)

    def base_run(self) -> Path:
        """A finished 200-step run with a checkpoint and snapshots at steps 100 and 200."""
        return self.train_run(
            "base-run",
            "--eval-episodes", "0",
            "--set", "train.checkpoint_every=100",
            "--set", "train.snapshot_every=100",
        )  # fmt: skip

    def copy_run(self, name: str) -> Path:
        """A fresh copy of :meth:`base_run` to damage."""
        dst = self.root / name
        shutil.copytree(self.base_run(), dst)
        return dst


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def short(text: str, n: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def check_error(b: Battery, r: Result, *needles: str, rc: int = 2) -> Outcome:
    """Exit ``rc`` and stderr exactly one ``rlreg: error:`` line (naming every needle) and its ``fix:``."""
    problems = []
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(lines) if ln.startswith("rlreg: error: ")]
    if r.rc != rc:
        problems.append(f"exit {r.rc}, expected {rc}")
    if "Traceback" in r.stderr:
        problems.append("traceback on stderr")
    first = lines[errors[0]] if errors else (lines[0] if lines else "(no stderr)")
    if len(errors) != 1:
        problems.append(f"{len(errors)} 'rlreg: error:' lines")
    else:
        i = errors[0]
        if i + 1 >= len(lines) or not lines[i + 1].startswith("  fix: "):
            problems.append("no 'fix:' line after the error")
        extra = [ln for j, ln in enumerate(lines) if j not in (i, i + 1)]
        if extra:
            problems.append(f"other stderr: {short(extra[0], 80)!r}")
        missing = [n for n in needles if n.lower() not in lines[i].lower()]
        if missing:
            problems.append(f"error does not say {missing}")
    detail = b.rel(first)
    if problems:
        detail = "; ".join(problems) + " — " + detail
    return Outcome(not problems, short(detail), b.last_command)


def also(out: Outcome, ok: bool, problem: str) -> Outcome:
    """``out`` failed with ``problem`` added unless ``ok``."""
    if ok:
        return out
    return Outcome(False, short(problem + "; " + out.detail), out.command)


def csv_rows(path: Path, drop: Sequence[str] = ()) -> list[list[str]]:
    """Rows of a CSV file as strings (header first), without the columns named in ``drop``."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return rows
    keep = [i for i, name in enumerate(rows[0]) if name not in drop]
    return [[row[i] for i in keep if i < len(row)] for row in rows]


def last_step(path: Path) -> int:
    """The step of the last complete row of a metrics/eval CSV (0 when none)."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    lines = text.split("\n")[:-1]  # the piece after the last newline may be a partial row
    for line in reversed(lines[1:]):
        head = line.split(",", 1)[0].strip()
        if head.isdigit():
            return int(head)
    return 0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ---------------------------------------------------------------------- malformed D4RL HDF5
def _pendulum_arrays(n: int = 300) -> dict[str, np.ndarray]:
    """Valid Pendulum-shaped per-step arrays (episodes of 100 steps ended by a timeout)."""
    rng = np.random.default_rng(0)
    theta = rng.uniform(-np.pi, np.pi, n)
    obs = np.stack([np.cos(theta), np.sin(theta), rng.uniform(-8, 8, n)], 1).astype(np.float32)
    timeouts = np.zeros(n, bool)
    timeouts[99::100] = True
    return {
        "observations": obs,
        "actions": rng.uniform(-2, 2, (n, 1)).astype(np.float32),
        "rewards": rng.uniform(-16, 0, n).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": timeouts,
    }


def _write_h5(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write arrays as they are (no checks; the writer in rlreg refuses bad data) with env id attr."""
    import h5py

    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
        f.attrs["rlreg_env_id"] = "Pendulum-v1"
    return path


def _train_d4rl(b: Battery, path: Path, name: str) -> tuple[Result, Path]:
    out = b.root / f"out-{name}"
    r = b.rlreg(
        "train", "td3bc", "--dataset", f"d4rl:{path}", "--steps", "10", "--eval-episodes", "0",
        *TINY, "--out", out,
    )  # fmt: skip
    return r, out


def _bad_d4rl(b: Battery, name: str, arrays: dict[str, np.ndarray] | None, *needles: str) -> Outcome:
    path = b.root / f"{name}.hdf5"
    if arrays is not None:
        _write_h5(path, arrays)
    r, out = _train_d4rl(b, path, name)
    return also(check_error(b, r, *needles), not out.exists(), f"left run folder {b.rel(str(out))}")


@case(
    "hdf5-valid-control",
    "hdf5",
    "a well-formed D4RL file trains (exit 0): the bad files below fail for their fault",
)
def _(b: Battery) -> Outcome:
    path = _write_h5(b.root / "good.hdf5", _pendulum_arrays())
    r, out = _train_d4rl(b, path, "good")
    ok = r.rc == 0 and (out / "summary.json").is_file()
    return Outcome(ok, short(b.rel(last_line(r.stdout if ok else r.stderr))), b.last_command)


@case("hdf5-missing-key", "hdf5", "exit 2: no 'rewards' dataset (names the keys it has)")
def _(b: Battery) -> Outcome:
    a = _pendulum_arrays()
    del a["rewards"]
    return _bad_d4rl(b, "no-rewards", a, "'rewards'")


@case("hdf5-lengths-disagree", "hdf5", "exit 2: 'rewards' has 290 rows but 'observations' has 300")
def _(b: Battery) -> Outcome:
    a = _pendulum_arrays()
    a["rewards"] = a["rewards"][:290]
    return _bad_d4rl(b, "short-rewards", a, "290 rows", "300")


@case("hdf5-nan-observations", "hdf5", "exit 2: observations contain NaN (row named)")
def _(b: Battery) -> Outcome:
    import h5py

    path = _write_h5(b.root / "nan-obs.hdf5", _pendulum_arrays())
    with h5py.File(path, "r+") as f:
        f["observations"][17, 1] = np.nan
    return _bad_d4rl(b, "nan-obs", None, "observations", "nan")


@case("hdf5-inf-rewards", "hdf5", "exit 2: rewards contain inf (row named)")
def _(b: Battery) -> Outcome:
    import h5py

    path = _write_h5(b.root / "inf-rewards.hdf5", _pendulum_arrays())
    with h5py.File(path, "r+") as f:
        f["rewards"][42] = np.inf
    return _bad_d4rl(b, "inf-rewards", None, "rewards", "inf")


@case("hdf5-empty", "hdf5", "exit 2: 0 steps, no transitions")
def _(b: Battery) -> Outcome:
    a = {k: v[:0] for k, v in _pendulum_arrays().items()}
    return _bad_d4rl(b, "empty", a, "0 step")


@case("hdf5-not-hdf5", "hdf5", "exit 2: the file is not an HDF5 file")
def _(b: Battery) -> Outcome:
    (b.root / "text.hdf5").write_text("observations,actions\n1,2\n")
    return _bad_d4rl(b, "text", None, "not an HDF5 file")


@case("hdf5-truncated", "hdf5", "exit 2: truncated or corrupt HDF5")
def _(b: Battery) -> Outcome:
    path = _write_h5(b.root / "cut.hdf5", _pendulum_arrays(3000))
    truncate_half(path)
    return _bad_d4rl(b, "cut", None, "truncated")


@case("hdf5-missing-file", "hdf5", "exit 2: the file does not exist")
def _(b: Battery) -> Outcome:
    return _bad_d4rl(b, "absent", None, "does not exist")


# ---------------------------------------------------------------------- bad flags
def _bad_train(b: Battery, name: str, args: Sequence[str], *needles: str) -> Outcome:
    out = b.root / f"out-{name}"
    r = b.rlreg("train", *args, *TINY, "--out", out)
    return also(check_error(b, r, *needles), not out.exists(), f"left run folder {b.rel(str(out))}")


_OK_TRAIN = ["td3bc", "--dataset", "pendulum-medium-v0", "--steps", "10", "--eval-episodes", "0"]


@case("flag-unknown-agent", "flags", "exit 2: unknown agent, lists the agents")
def _(b: Battery) -> Outcome:
    return _bad_train(b, "agent", ["td3bcc", "--dataset", "pendulum-medium-v0"], "unknown agent 'td3bcc'")


@case("flag-unknown-dataset", "flags", "exit 2: unknown dataset, lists the names")
def _(b: Battery) -> Outcome:
    return _bad_train(b, "ds", ["td3bc", "--dataset", "pendulum-mediun-v0"], "unknown dataset")


@case("flag-set-typo", "flags", "exit 2: 'agent' has no setting 'alpah' (lists the valid ones)")
def _(b: Battery) -> Outcome:
    return _bad_train(b, "typo", [*_OK_TRAIN, "--set", "agent.alpah=2"], "alpah")


@case("flag-set-type", "flags", "exit 2: batch_size=big: expected int")
def _(b: Battery) -> Outcome:
    return _bad_train(b, "type", [*_OK_TRAIN, "--set", "batch_size=big"], "batch_size", "expected int")


@case("flag-set-nan", "flags", "exit 2: agent.alpha must be a finite number")
def _(b: Battery) -> Outcome:
    return _bad_train(b, "nan", [*_OK_TRAIN, "--set", "agent.alpha=nan"], "must be a finite number")


@case("flag-set-no-equals", "flags", "exit 2: --set 'nonsense' is not KEY=VALUE")
def _(b: Battery) -> Outcome:
    return _bad_train(b, "noeq", [*_OK_TRAIN, "--set", "nonsense"], "not KEY=VALUE")


@case("flag-steps-zero", "flags", "exit 2: train.steps must be a positive integer")
def _(b: Battery) -> Outcome:
    return _bad_train(
        b, "steps0", ["td3bc", "--dataset", "pendulum-medium-v0", "--steps", "0"], "train.steps"
    )


@case("flag-steps-negative", "flags", "exit 2: train.steps must be a positive integer")
def _(b: Battery) -> Outcome:
    args = ["td3bc", "--dataset", "pendulum-medium-v0", "--steps=-5"]
    return _bad_train(b, "stepsneg", args, "train.steps", "-5")


@case("flag-eval-episodes-negative", "flags", "exit 2: train.eval_episodes must be an integer >= 0")
def _(b: Battery) -> Outcome:
    args = ["td3bc", "--dataset", "pendulum-medium-v0", "--eval-episodes=-1"]
    return _bad_train(b, "evalneg", args, "eval_episodes")


@case("flag-device-cuda", "flags", "exit 2 on a CPU machine: CUDA is not available, use --device cpu")
def _(b: Battery) -> Outcome:
    has_cuda = b.python("import torch; print(torch.cuda.is_available())").stdout.strip() == "True"
    if has_cuda:
        b.dataset()
        out = b.root / "out-cuda"
        r = b.rlreg("train", *_OK_TRAIN, "--device", "cuda", *TINY, "--out", out)
        return Outcome(r.rc == 0, f"CUDA is available here: trained on cuda (exit {r.rc})", b.last_command)
    return _bad_train(b, "cuda", [*_OK_TRAIN, "--device", "cuda"], "CUDA is not available")


@case("flag-resume-with-agent", "flags", "exit 2: --resume takes only the run folder")
def _(b: Battery) -> Outcome:
    r = b.rlreg("train", "td3bc", "--resume", b.root / "some-run")
    return check_error(b, r, "--resume takes only")


@case("flag-resume-steps-below", "flags", "exit 2: --steps below the checkpoint's step")
def _(b: Battery) -> Outcome:
    run = b.copy_run("resume-below")
    before = sha256(run / "metrics.csv")
    r = b.rlreg("train", "--resume", run, "--steps", "50", "--no-progress")
    out = check_error(b, r, "below the checkpoint")
    return also(out, sha256(run / "metrics.csv") == before, "metrics.csv changed")


@case("flag-evaluate-episodes-zero", "flags", "exit 2: --episodes must be >= 1")
def _(b: Battery) -> Outcome:
    return check_error(b, b.rlreg("evaluate", b.base_run(), "--episodes", "0"), "--episodes")


# ---------------------------------------------------------------------- SIGKILL and exact resume
def _wait_step(run: Path, p: subprocess.Popen, step: int, timeout: float = TIMEOUT_S) -> int:
    """Poll ``run/metrics.csv`` until a row reaches ``step`` (returns it) or ``p`` exits (returns -1)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s = last_step(run / "metrics.csv")
        if s >= step:
            return s
        if p.poll() is not None:
            return -1
        time.sleep(0.01)
    return -1


def _tensors_equal(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths at which two loaded checkpoints differ (tensors by torch.equal, arrays by value)."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
        return [] if same and a.shape == b.shape and torch.equal(a, b) else [path or "/"]
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return [] if np.array_equal(a, b) else [path or "/"]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}/keys"]
        return [d for k in a for d in _tensors_equal(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}/len"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _tensors_equal(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return []  # both NaN (e.g. an unset epsilon in the logging window)
    return [] if a == b else [path or "/"]


def compare_runs(a: Path, b: Path, checkpoints: bool = True) -> list[str]:
    """Differences between two run folders: metrics.csv (without wall-clock columns) and eval.csv
    byte for byte, and (``checkpoints``) the final checkpoint's tensors and summary.json's scores."""
    diffs = []
    ma, mb = csv_rows(a / "metrics.csv", WALL_COLUMNS), csv_rows(b / "metrics.csv", WALL_COLUMNS)
    if ma != mb:
        bad = next((i for i, (x, y) in enumerate(zip(ma, mb)) if x != y), min(len(ma), len(mb)))
        diffs.append(f"metrics.csv differs from row {bad} ({len(ma)} vs {len(mb)} rows)")
    if (a / "eval.csv").read_bytes() != (b / "eval.csv").read_bytes():
        diffs.append("eval.csv differs")
    if checkpoints:
        from rlreg.checkpoint import load_checkpoint

        ca, cb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
        ca.pop("wall_time", None)
        cb.pop("wall_time", None)
        where = _tensors_equal(ca, cb)
        if where:
            diffs.append(f"checkpoint differs at {', '.join(where[:3])}")
        sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
        for s in (sa, sb):
            s.pop("wall_time_s", None)
        if sa != sb:
            keys = [k for k in sa if sa.get(k) != sb.get(k)]
            diffs.append(f"summary.json differs in {keys}")
    return diffs


@case(
    "sigkill-5x-resume",
    "resume",
    "5 SIGKILLs (one with a partial checkpoint.pt.tmp planted) + resumes = the uninterrupted run: "
    "metrics.csv (but time, updates_per_s) and eval.csv byte for byte, checkpoint tensors, summary scores",
)
def _(b: Battery) -> Outcome:
    b.dataset()
    args = [
        "train", "td3bc", "--dataset", "pendulum-medium-v0", "--steps", "400", "--seed", "3",
        "--set", "train.checkpoint_every=30", "--set", "train.log_every=50",
        "--eval-every", "100", "--eval-episodes", "1", *TINY,
    ]  # fmt: skip
    ref, run = b.root / "kill-ref", b.root / "kill-run"
    r = b.rlreg(*args, "--out", ref)
    if r.rc != 0:
        return Outcome(False, "uninterrupted run failed: " + short(last_line(r.stderr)), b.last_command)
    command = (
        b.show([*args, "--out", run])
        + f"; kill -9 at metrics steps ≥ 50,150,200,300,350; rlreg train --resume {b.rel(str(run))}"
    )
    seen, notes = [], []
    p = b.popen(*args, "--out", run)
    for k, target in enumerate((50, 150, 200, 300, 350)):
        if k:
            if target == 300:  # a checkpoint that was being written when the run was killed
                data = (run / "checkpoint.pt").read_bytes()
                (run / "checkpoint.pt.tmp").write_bytes(data[: len(data) // 3])
                notes.append("planted checkpoint.pt.tmp")
            target = max(target, (seen[-1] if seen else 0) + 50)
            p = b.popen("train", "--resume", run, "--no-progress")
        got = _wait_step(run, p, target)
        if got < 0:
            p.wait()
            log = p.log_path.read_text()  # type: ignore[attr-defined]
            why = f"kill {k + 1}: the run ended (exit {p.returncode}) before step {target}: "
            return Outcome(False, why + short(b.rel(last_line(log))), command)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if p.returncode != -signal.SIGKILL:
            return Outcome(False, f"kill {k + 1}: exit {p.returncode}, not killed", command)
        ck = last_step(run / "metrics.csv")
        seen.append(ck)
    r = b.rlreg("train", "--resume", run, "--no-progress")
    if r.rc != 0:
        return Outcome(False, "final resume failed: " + short(b.rel(last_line(r.stderr))), command)
    diffs = compare_runs(ref, run)
    if (run / "checkpoint.pt.tmp").exists():
        diffs.append("checkpoint.pt.tmp left")
    summary = json.loads((run / "summary.json").read_text())
    verdict = f"identical, final score {summary['final_score']:.2f}" if not diffs else "; ".join(diffs)
    detail = f"killed at metrics steps {seen}; " + "; ".join(notes) + "; " + verdict
    return Outcome(not diffs, short(detail, 200), command)


# ---------------------------------------------------------------------- corrupt or missing artifacts
class _Payload:
    """Unpickling this runs ``touch MARKER`` (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def plant_payload(path: Path, marker: Path) -> None:
    """Replace ``path`` by a torch.save archive whose unpickling creates ``marker``."""
    import torch

    torch.save({"format": "rlreg-checkpoint", "step": 1, "agent": _Payload(marker)}, path)


def _payload_is_live(b: Battery) -> bool:
    """Control: the crafted file does create its marker when loaded unsafely (weights_only=False)."""

    def probe() -> bool:
        import torch

        marker = b.root / "MARKER-control"
        path = b.root / "payload-control.pt"
        plant_payload(path, marker)
        torch.load(path, weights_only=False)
        return marker.exists()

    return b.memo("payload-live", probe)


def _crafted(
    b: Battery, run: Path, rel: str, cmd: Sequence[str | os.PathLike], *more_absent: Path
) -> Outcome:
    marker = b.root / f"MARKER-{run.name}"
    plant_payload(run / rel, marker)
    out = check_error(b, b.rlreg(*cmd), "refuses to load")
    out = also(out, not marker.exists(), "MARKER FILE CREATED: the pickle ran")
    for p in more_absent:
        out = also(out, not p.exists(), f"{b.rel(str(p))} was written")
    out = also(out, _payload_is_live(b), "control: the payload does not run even when loaded unsafely")
    return Outcome(out.ok, out.detail if not out.ok else short("no marker file; " + out.detail), out.command)


@case("ckpt-truncated-evaluate", "artifacts", "exit 2: checkpoint is truncated or corrupt")
def _(b: Battery) -> Outcome:
    run = b.copy_run("ckpt-cut-eval")
    truncate_half(run / "checkpoint.pt")
    return check_error(b, b.rlreg("evaluate", run, "--episodes", "1"), "truncated or corrupt")


@case("ckpt-truncated-resume", "artifacts", "exit 2: checkpoint is truncated or corrupt; logs untouched")
def _(b: Battery) -> Outcome:
    run = b.copy_run("ckpt-cut-resume")
    truncate_half(run / "checkpoint.pt")
    before = sha256(run / "metrics.csv")
    out = check_error(b, b.rlreg("train", "--resume", run, "--no-progress"), "truncated or corrupt")
    return also(out, sha256(run / "metrics.csv") == before, "metrics.csv changed")


@case("ckpt-missing-evaluate", "artifacts", "exit 2: checkpoint does not exist")
def _(b: Battery) -> Outcome:
    run = b.copy_run("ckpt-none-eval")
    (run / "checkpoint.pt").unlink()
    return check_error(b, b.rlreg("evaluate", run, "--episodes", "1"), "does not exist")


@case("ckpt-missing-resume", "artifacts", "exit 2: checkpoint does not exist")
def _(b: Battery) -> Outcome:
    run = b.copy_run("ckpt-none-resume")
    (run / "checkpoint.pt").unlink()
    return check_error(b, b.rlreg("train", "--resume", run, "--no-progress"), "does not exist")


@case("ckpt-pickle-evaluate", "artifacts", "exit 2: refuses the pickled objects; marker file NOT created")
def _(b: Battery) -> Outcome:
    run = b.copy_run("ckpt-pickle-eval")
    return _crafted(b, run, "checkpoint.pt", ["evaluate", run, "--episodes", "1"])


@case("ckpt-pickle-resume", "artifacts", "exit 2: refuses the pickled objects; marker file NOT created")
def _(b: Battery) -> Outcome:
    run = b.copy_run("ckpt-pickle-resume")
    return _crafted(b, run, "checkpoint.pt", ["train", "--resume", run, "--no-progress"])


@case("snapshot-pickle-export", "artifacts", "exit 2: refuses the pickled objects; no marker, no output file")
def _(b: Battery) -> Outcome:
    run = b.copy_run("snap-pickle")
    dest = b.root / "exported-pickle.pt"
    cmd = ["policy", "export", run, "--step", "100", "--out", dest, "--episodes", "1"]
    return _crafted(b, run, "snapshots/step_00000100.pt", cmd, dest)


@case("snapshot-truncated-export", "artifacts", "exit 2: policy file is truncated or corrupt; no output file")
def _(b: Battery) -> Outcome:
    run = b.copy_run("snap-cut")
    truncate_half(run / "snapshots" / "step_00000100.pt")
    dest = b.root / "exported-cut.pt"
    cmd = ["policy", "export", run, "--step", "100", "--out", dest, "--episodes", "1"]
    out = check_error(b, b.rlreg(*cmd), "policy file", "truncated or corrupt")
    return also(out, not dest.exists(), "output written")


@case(
    "snapshot-not-a-policy",
    "artifacts",
    "exit 2: a checkpoint where a policy file is read: not an rlreg policy file",
)
def _(b: Battery) -> Outcome:
    run = b.copy_run("snap-wrong")
    shutil.copy(run / "checkpoint.pt", run / "snapshots" / "step_00000100.pt")
    dest = b.root / "exported-wrong.pt"
    cmd = ["policy", "export", run, "--step", "100", "--out", dest, "--episodes", "1"]
    out = check_error(b, b.rlreg(*cmd), "not an rlreg policy file")
    return also(out, not dest.exists(), "output written")


@case(
    "snapshot-export-control",
    "artifacts",
    "exit 0: an intact snapshot exports (the cases above fail for their fault)",
)
def _(b: Battery) -> Outcome:
    run = b.base_run()
    dest = b.root / "exported-ok.pt"
    r = b.rlreg("policy", "export", run, "--step", "100", "--out", dest, "--episodes", "1")
    ok = r.rc == 0 and dest.is_file()
    return Outcome(ok, short(b.rel(last_line(r.stdout if ok else r.stderr))), b.last_command)


def _bad_config(b: Battery, name: str, text: str, resume: bool, *needles: str) -> Outcome:
    run = b.copy_run(name)
    (run / "config.json").write_text(text)
    cmd = ["train", "--resume", run, "--no-progress"] if resume else ["evaluate", run, "--episodes", "1"]
    return check_error(b, b.rlreg(*cmd), *needles)


@case("config-invalid-json-evaluate", "artifacts", "exit 2: config.json is not valid JSON")
def _(b: Battery) -> Outcome:
    return _bad_config(b, "cfg-json-eval", '{"recipe": "td3bc",', False, "not valid JSON")


@case("config-invalid-json-resume", "artifacts", "exit 2: config.json is not valid JSON")
def _(b: Battery) -> Outcome:
    return _bad_config(b, "cfg-json-resume", '{"recipe": "td3bc",', True, "not valid JSON")


@case(
    "config-empty-evaluate", "artifacts", "exit 2: config.json ({}) is not a run config: lacks 'recipe', ..."
)
def _(b: Battery) -> Outcome:
    return _bad_config(b, "cfg-empty-eval", "{}", False, "not a run config")


@case("config-empty-resume", "artifacts", "exit 2: config.json ({}) is not a run config: lacks 'recipe', ...")
def _(b: Battery) -> Outcome:
    return _bad_config(b, "cfg-empty-resume", "{}", True, "not a run config")


# ---------------------------------------------------------------------- run folders
@case("out-is-a-file", "folders", "exit 2: --out is an existing file; the file is unchanged")
def _(b: Battery) -> Outcome:
    b.dataset()
    f = b.root / "a-file"
    f.write_text("keep me\n")
    out = check_error(b, b.rlreg("train", *_OK_TRAIN, *TINY, "--out", f), "is an existing file")
    return also(out, f.read_text() == "keep me\n", "the file changed")


@case("out-under-a-file", "folders", "exit 2: --out lies under a file")
def _(b: Battery) -> Outcome:
    b.dataset()
    f = b.root / "b-file"
    f.write_text("keep me\n")
    return check_error(b, b.rlreg("train", *_OK_TRAIN, *TINY, "--out", f / "run"), "lies under")


@case("out-holds-a-run", "folders", "exit 2: already holds a run (resume it); its files unchanged")
def _(b: Battery) -> Outcome:
    run = b.copy_run("holds-run")
    before = {p.name: sha256(p) for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    out = check_error(
        b, b.rlreg("train", *_OK_TRAIN, "--seed", "9", *TINY, "--out", run), "already holds a run"
    )
    after = {p.name: sha256(p) for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    return also(out, before == after, "files in the run folder changed")


@case(
    "failed-run-leaves-nothing",
    "folders",
    "exit 2 (unknown dataset): no run folder left, no 'run folder' line",
)
def _(b: Battery) -> Outcome:
    out_dir = b.root / "failed-run"
    r = b.rlreg("train", "td3bc", "--dataset", "pendulum-mediun-v0", *TINY, "--out", out_dir)
    out = check_error(b, r, "unknown dataset")
    out = also(out, "run folder" not in r.stdout, "printed a 'run folder' line")
    return also(out, not out_dir.exists(), "left the run folder")


@case(
    "failed-run-nested-out",
    "folders",
    "exit 2 (bad dataset file, --out A/B/C): neither A/B/C nor A left behind",
)
def _(b: Battery) -> Outcome:
    top = b.root / "nested-failed"
    out_dir = top / "exp" / "seed0"
    r = b.rlreg("train", "td3bc", "--dataset", f"d4rl:{b.root / 'absent.hdf5'}", *TINY, "--out", out_dir)
    out = check_error(b, r, "does not exist")
    out = also(out, "run folder" not in r.stdout, "printed a 'run folder' line")
    left = sorted(b.rel(str(p)) for p in [top, *top.rglob("*")] if p.exists())
    return also(out, not top.exists(), f"left {', '.join(left)}")


@case(
    "two-writers-same-out",
    "folders",
    "second `rlreg train --out D` exits 2 at once naming the first's PID; "
    "D keeps the first's config (seed 1)",
)
def _(b: Battery) -> Outcome:
    b.dataset()
    run = b.root / "two-writers"
    first_args = [
        "train", "td3bc", "--dataset", "pendulum-medium-v0", "--steps", "3000", "--eval-episodes", "0",
        "--seed", "1", *TINY, "--out", run,
    ]  # fmt: skip
    p = b.popen(*first_args)
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT_S and p.poll() is None:
        try:
            if (run / ".lock").read_text().strip() == str(p.pid):
                break
        except OSError:
            pass
        time.sleep(0.02)
    if p.poll() is not None:
        return Outcome(False, f"first run ended early (exit {p.returncode})", b.show(first_args))
    r = b.rlreg("train", *_OK_TRAIN, "--seed", "2", *TINY, "--out", run)
    first_alive = p.poll() is None
    out = check_error(b, r, "in use by another rlreg process", f"PID {p.pid}")
    out = also(out, r.seconds < 30, f"second took {r.seconds:.0f} s")
    p.wait(timeout=TIMEOUT_S)
    out = also(out, first_alive, "the first run had already ended: the lock was not tested")
    out = also(out, p.returncode == 0, f"first run exit {p.returncode}")
    try:
        seed = json.loads((run / "config.json").read_text())["seed"]
    except (OSError, ValueError, KeyError):
        seed = None
    out = also(out, seed == 1, f"config.json seed {seed}, expected 1")
    out = also(out, (run / "summary.json").is_file(), "first run has no summary.json")
    if out.ok:
        out = Outcome(True, short(f"{out.detail}; the first finished, config seed 1"), out.command)
    return Outcome(out.ok, out.detail, b.show(first_args) + " & " + b.last_command)


# ---------------------------------------------------------------------- datasets
_DS = ["pendulum-random-v0", "--size", "3000", "--seed", "7"]
_DS_ID = "rlreg/pendulum/random-size3000-seed7-v0"


def _record(home: Path) -> dict[str, Any]:
    return json.loads((home / "minari" / _DS_ID / "rlreg.json").read_text())


def _files_sha(rec: dict[str, Any]) -> dict[str, str]:
    return {k: v["sha256"] for k, v in rec.get("files", {}).items()}


def _concurrent_dataset(b: Battery) -> Outcome:
    seq_home = b.root / "home-sequential"
    r = b.rlreg("datasets", "make", *_DS, home=seq_home)
    if r.rc != 0:
        return Outcome(False, "sequential make failed: " + short(last_line(r.stderr)), b.last_command)
    ps = [b.popen("datasets", "make", *_DS) for _ in range(2)]
    for p in ps:
        p.wait(timeout=TIMEOUT_S)
    command = b.show(["datasets", "make", *_DS]) + " (×2 at once)"
    codes = [p.returncode for p in ps]
    if codes != [0, 0]:
        log = ps[codes.index(next(c for c in codes if c != 0))].log_path.read_text()  # type: ignore[attr-defined]
        return Outcome(False, f"exit codes {codes}: " + short(b.rel(last_line(log))), command)
    seq, par = _record(seq_home), _record(b.home)
    problems = []
    if seq["digest"] != par["digest"]:
        problems.append("digest differs from the sequential make's")
    if _files_sha(seq) != _files_sha(par):
        problems.append("file SHA-256s differ from the sequential make's")
    leftovers = [p.name for p in (b.home / "minari").iterdir() if p.name.startswith(".")]
    if leftovers:
        problems.append(f"left {leftovers}")
    detail = (
        "; ".join(problems)
        or f"both exit 0; digest {par['digest'][:12]}… = sequential make's, files identical"
    )
    return Outcome(not problems, detail, command)


@case(
    "dataset-concurrent-make",
    "datasets",
    "two makes at once both exit 0; rlreg.json digest = a sequential make's",
)
def _(b: Battery) -> Outcome:
    return b.memo("concurrent", lambda: _concurrent_dataset(b))


def _damage_and_remake(b: Battery, damage: Callable[[Path], None], notice: str) -> Outcome:
    first = b.memo("concurrent", lambda: _concurrent_dataset(b))
    if not first.ok:
        return Outcome(False, "needs dataset-concurrent-make: " + first.detail, first.command)
    folder = b.home / "minari" / _DS_ID
    want = _record(b.home)
    damage(folder)
    r = b.rlreg("datasets", "make", *_DS)
    problems = []
    if r.rc != 0:
        problems.append(f"exit {r.rc}: {b.rel(last_line(r.stderr))}")
    if "Traceback" in r.stderr:
        problems.append("traceback")
    lines = [ln for ln in r.stderr.replace("\r", "\n").splitlines() if ln.startswith("rlreg: ")]
    said = next((ln for ln in lines if notice in ln), None)
    if said is None:
        problems.append(f"no notice containing {notice!r}")
    try:
        got = _record(b.home)
        if got["digest"] != want["digest"] or _files_sha(got) != _files_sha(want):
            problems.append("remade dataset differs")
    except (OSError, ValueError, KeyError) as e:
        problems.append(f"no readable rlreg.json after ({e})")
    if not (folder / "data" / "main_data.hdf5").is_file():
        problems.append("data file still missing")
    detail = "; ".join(problems) or f"remade: {b.rel(said or '')}"
    return Outcome(not problems, short(detail), b.last_command)


@case(
    "dataset-data-deleted",
    "datasets",
    "make again: notice 'damaged (data/main_data.hdf5 missing)', remade identical",
)
def _(b: Battery) -> Outcome:
    return _damage_and_remake(b, lambda f: (f / "data" / "main_data.hdf5").unlink(), "missing")


@case("dataset-data-truncated", "datasets", "make again: notice 'damaged (... truncated)', remade identical")
def _(b: Battery) -> Outcome:
    return _damage_and_remake(b, lambda f: truncate_half(f / "data" / "main_data.hdf5"), "truncated")


@case("dataset-record-deleted", "datasets", "make again: notice 'incomplete; remaking it', rlreg.json back")
def _(b: Battery) -> Outcome:
    return _damage_and_remake(b, lambda f: (f / "rlreg.json").unlink(), "incomplete")


def _own_home(b: Battery) -> Path:
    """A second RLREG_HOME with pendulum-random-v0 (default size) made, for the load-path cases."""

    def make() -> Path:
        home = b.root / "home-load"
        r = b.rlreg("datasets", "make", "pendulum-random-v0", home=home)
        if r.rc != 0:
            raise RuntimeError("making pendulum-random-v0 failed: " + last_line(r.stderr))
        return home

    return b.memo("home-load", make)


@case(
    "dataset-damaged-on-train",
    "datasets",
    "train on a dataset whose data file was truncated: notice, remade, exit 0",
)
def _(b: Battery) -> Outcome:
    home = _own_home(b)
    truncate_half(home / "minari" / "rlreg/pendulum/random-v0" / "data" / "main_data.hdf5")
    out_dir = b.root / "train-on-damaged"
    r = b.rlreg(
        "train", "td3bc", "--dataset", "pendulum-random-v0", "--steps", "10", "--eval-episodes", "0",
        *TINY, "--out", out_dir, home=home,
    )  # fmt: skip
    notice = next((ln for ln in r.stderr.replace("\r", "\n").splitlines() if "damaged" in ln), None)
    problems = []
    if r.rc != 0:
        problems.append(f"exit {r.rc}: {b.rel(last_line(r.stderr))}")
    if notice is None:
        problems.append("no 'damaged' notice")
    if not (out_dir / "summary.json").is_file():
        problems.append("no summary.json")
    return Outcome(not problems, short("; ".join(problems) or b.rel(notice or "")), b.last_command)


@case(
    "dataset-list-damaged",
    "datasets",
    "`rlreg datasets` lists a damaged dataset as damaged, with `rlreg datasets make NAME --force`",
)
def _(b: Battery) -> Outcome:
    home = _own_home(b)
    data = home / "minari" / "rlreg/pendulum/random-v0" / "data" / "main_data.hdf5"
    truncate_half(data)
    r = b.rlreg("datasets", home=home)
    row = next((ln for ln in r.stdout.splitlines() if ln.startswith("pendulum-random-v0 ")), "")
    ok = r.rc == 0 and "damaged" in row and "--force" in r.stdout
    return Outcome(ok, short(f"row: {b.rel(row)!r}" if row else f"exit {r.rc}, no row"), b.last_command)


# ---------------------------------------------------------------------- determinism
@case(
    "determinism-same-seed",
    "determinism",
    "same command and seed twice: metrics.csv (but wall-clock columns) and eval.csv identical",
)
def _(b: Battery) -> Outcome:
    b.dataset()
    args = [
        "train", "td3bc", "--dataset", "pendulum-medium-v0", "--steps", "200", "--seed", "5",
        "--set", "train.log_every=25", "--eval-every", "100", "--eval-episodes", "1", *TINY,
    ]  # fmt: skip
    runs = [b.root / "det-a", b.root / "det-b"]
    for run in runs:
        r = b.rlreg(*args, "--out", run)
        if r.rc != 0:
            return Outcome(False, "run failed: " + short(b.rel(last_line(r.stderr))), b.last_command)
    diffs = compare_runs(*runs)
    rows = len(csv_rows(runs[0] / "metrics.csv")) - 1
    detail = "; ".join(diffs) or f"identical: {rows} metrics rows, eval.csv, checkpoint, summary"
    return Outcome(not diffs, detail, b.show([*args, "--out", runs[0]]) + ", again with --out $T/det-b")


# ---------------------------------------------------------------------- recipes
@case(
    "recipe-minari-override",
    "recipes",
    "prdc on minari:mujoco/halfcheetah/medium-v0 resolves agent.alpha = 40 (halfcheetah override)",
)
def _(b: Battery) -> Outcome:
    code = (
        "from rlreg.agents.recipes import resolve_config; "
        'print(resolve_config("prdc", "minari:mujoco/halfcheetah/medium-v0", device="cpu")'
        '["agent_config"]["alpha"])'
    )
    r = b.python(code)
    got = r.stdout.strip()
    ok = r.rc == 0 and got not in ("", "None") and float(got) == 40
    return Outcome(ok, f"alpha = {got}" if r.rc == 0 else short(last_line(r.stderr)), b.last_command)


# ---------------------------------------------------------------------- running and the table
@dataclass
class CaseResult:
    """A finished case for the table."""

    case: Case
    outcome: Outcome
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def select(pattern: str | None) -> list[Case]:
    """Cases whose name (or group) matches the regular expression ``pattern`` (all when None)."""
    if not pattern:
        return list(CASES)
    rx = re.compile(pattern)
    return [c for c in CASES if rx.search(c.name) or rx.fullmatch(c.group)]


def run_cases(
    cases: Sequence[Case], battery: Battery, log: Callable[[str], None] | None = None
) -> Iterator[CaseResult]:
    """Run ``cases`` in order; a case that raises is a FAIL with the exception as its detail."""
    for i, c in enumerate(cases, 1):
        t0 = time.perf_counter()
        battery.last_command = ""
        try:
            out = c.fn(battery)
        except Exception as e:  # a broken fixture or an unexpected exception: that case fails
            out = Outcome(False, short(battery.rel(f"{type(e).__name__}: {e}")), battery.last_command)
        dt = time.perf_counter() - t0
        if log is not None:
            log(f"[{i}/{len(cases)}] {c.name}: {'PASS' if out.ok else 'FAIL'} ({dt:.1f} s) {out.detail}")
        yield CaseResult(c, out, dt)


def run_battery(
    pattern: str | None = None,
    keep: bool = False,
    root: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> list[CaseResult]:
    """Run the selected cases in a temporary folder (removed afterwards unless ``keep``)."""
    root = Path(tempfile.mkdtemp(prefix="rlreg-faults-")) if root is None else root
    try:
        return list(run_cases(select(pattern), Battery(root), log))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_table(results: Sequence[CaseResult]) -> str:
    """The Markdown table ``case | command | expected | outcome``."""
    lines = [
        f"`$T` is the battery's temporary folder (`RLREG_HOME=$T/home`); `$TINY` is `{shlex.join(TINY)}`.",
        "",
        "| case | command | expected | outcome |",
        "|---|---|---|---|",
    ]
    for r in results:
        verdict = "PASS" if r.outcome.ok else "FAIL"
        cmd = f"`{_cell(r.outcome.command)}`" if r.outcome.command else ""
        lines.append(
            f"| {r.case.name} | {cmd} | {_cell(r.case.expected)} | **{verdict}**: {_cell(r.outcome.detail)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the battery, print the table; exit 1 if any case fails."""
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--only",
        metavar="PATTERN",
        help="run only cases whose name matches this regular expression (or whose group is PATTERN)",
    )
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = ap.parse_args(argv)
    cases = select(args.only)
    if args.list:
        for c in cases:
            print(f"{c.name:32s} {c.group:12s} {c.expected}")
        return 0
    if not cases:
        print(f"no case matches {args.only!r} (see --list)", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="rlreg-faults-"))
    if args.keep:
        print(f"temporary folder: {root}", file=sys.stderr)
    t0 = time.perf_counter()
    results = run_battery(
        args.only, keep=args.keep, root=root, log=lambda s: print(s, file=sys.stderr, flush=True)
    )
    total = time.perf_counter() - t0
    failed = [r for r in results if not r.outcome.ok]
    print(format_table(results))
    print(f"\n{len(results) - len(failed)}/{len(results)} passed in {total:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
