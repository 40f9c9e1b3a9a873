"""Golden digests: short CPU runs of every recipe, recorded so a refactor can prove it changed nothing.

Each case is a real ``rlreg train`` command (a few hundred updates, recipe defaults otherwise); its
digest is the SHA-256 of ``metrics.csv`` and ``eval.csv`` without the wall-clock columns. The
numerics are pinned so the digests do not depend on thread count or on the CPU's widest vector
unit: ``MKL_CBWR=COMPATIBLE`` (MKL's CPU-independent path), ``ATEN_CPU_CAPABILITY=avx2`` and
``train.threads=1``. Digests can still differ between CPU models (other libraries' kernels), so
the file records the CPU they were made on and ``tests/test_golden.py`` compares only there.

    python scripts/golden_digests.py             # compare with tests/golden/digests.json
    python scripts/golden_digests.py --update    # record (only after a deliberate change: say why)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "digests.json"
WALL_CLOCK = ("time", "updates_per_s", "env_steps_per_s")
PINNED_ENV = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "1"}
OFFLINE = ["--dataset", "pendulum-medium-v0", "--steps", "300", "--eval-every", "300", "--eval-episodes", "2"]
MINATAR = [
    "--steps",
    "3000",
    "--eval-every",
    "3000",
    "--eval-episodes",
    "2",
    "--set",
    "train.learning_starts=1000",
]
CASES: dict[str, list[str]] = {
    "td3bc": ["td3bc", *OFFLINE],
    "prdc": ["prdc", *OFFLINE],
    "a2pr": ["a2pr", *OFFLINE],
    "td3-online": [
        "td3",
        "--env",
        "Pendulum-v1",
        "--steps",
        "600",
        "--eval-every",
        "600",
        "--eval-episodes",
        "2",
    ]
    + ["--set", "train.learning_starts=300"],
    "dqn": ["dqn", "--env", "minatar:breakout", *MINATAR],
    "mdqn": ["mdqn", "--env", "minatar:breakout", *MINATAR],
    "mdqn-dvw": ["mdqn", "--env", "minatar:asterix", *MINATAR, "--set", "dvw=true"],
    "dqn-minatar": ["dqn-minatar", "--env", "minatar:freeway", *MINATAR],
}


def cpu_model() -> str:
    """The CPU the digests hold for: model name, family/model and widest vector unit.

    The model name alone is not enough: two "AMD EPYC" machines here (Zen 3 with AVX2, Zen 4 with
    AVX-512) round some kernels differently even with the pins above.
    """
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    flags = fields.get("flags", "").split()
    isa = "avx512" if any(f.startswith("avx512") for f in flags) else "avx2" if "avx2" in flags else "other"
    model, family, number = (fields.get(k, "?") for k in ("model name", "cpu family", "model"))
    return f"{model} (family {family} model {number}, {isa})"


EVAL_STATS = {"q_bias", "q_error", "q_mc"}
"""eval.csv columns added after the recording (issue 16: the TD3 agent's evaluation_stats, the
Q-estimation error); the digest covers the recorded columns, which they leave unchanged."""


def csv_digest(path: Path, drop: set[str] | frozenset[str] = frozenset()) -> tuple[str, list[dict[str, str]]]:
    """SHA-256 of a CSV without its wall-clock columns (and ``drop``), and its rows (those dropped)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(rows[0]) if name not in WALL_CLOCK and name not in drop]
    kept = [[r[i] for i in keep] for r in rows]
    buf = io.StringIO()
    csv.writer(buf).writerows(kept)
    return hashlib.sha256(buf.getvalue().encode()).hexdigest(), [dict(zip(kept[0], r)) for r in kept[1:]]


def run_case(name: str, root: Path) -> dict:
    """Run one case's command in a subprocess; its digests and last metrics row."""
    out = root / name
    cmd = [sys.executable, "-m", "rlreg.agents.cli", "train", *CASES[name], "--seed", "0", "--no-progress"]
    cmd += ["--set", "train.threads=1", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "RLREG_JOBS")}
    proc = subprocess.run(cmd, cwd=ROOT, env={**env, **PINNED_ENV}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"case {name} failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    metrics, rows = csv_digest(out / "metrics.csv")
    evals, _ = csv_digest(out / "eval.csv", EVAL_STATS)
    return {"command": ["rlreg", "train", *CASES[name]], "metrics": metrics, "eval": evals, "last": rows[-1]}


def run_all(names: list[str], jobs: int = 2) -> dict[str, dict]:
    """Every case in ``names`` (``jobs`` at a time) in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=jobs) as pool:
        done = {n: pool.submit(run_case, n, Path(tmp)) for n in names}
        return {n: f.result() for n, f in done.items()}


def differences(recorded: dict, now: dict) -> list[str]:
    """What differs between a recorded case and a new run of it, column by column of the last row."""
    out = []
    for part in ("metrics", "eval"):
        if recorded[part] != now[part]:
            out.append(f"{part}.csv digest differs")
    for k in sorted(set(recorded["last"]) | set(now["last"])):
        a, b = recorded["last"].get(k), now["last"].get(k)
        if a != b:
            out.append(f"last metrics row {k}: recorded {a}, now {b}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--update", action="store_true", help="record the digests (a deliberate change)")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = p.parse_args()
    subprocess.run(
        [sys.executable, "-m", "rlreg.agents.cli", "datasets", "make", "pendulum-medium-v0"], check=True
    )
    now = run_all(args.cases)
    if args.update:
        record = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {"cases": {}}
        record.update(cpu=cpu_model(), env=PINNED_ENV)
        record["cases"].update(now)
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(now)} cases in {GOLDEN}")
        return
    record = json.loads(GOLDEN.read_text())
    bad = 0
    for name, result in now.items():
        diff = differences(record["cases"][name], result)
        bad += bool(diff)
        print(f"{name}: " + ("same" if not diff else "; ".join(diff)))
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
