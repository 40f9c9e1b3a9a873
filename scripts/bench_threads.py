"""Concurrent training runs on one machine: updates/s of each, with torch's defaults vs rlreg's.

Starts 1, 2 and 4 real ``rlreg train td3bc`` processes at once (no evaluation, no checkpoints),
lets them train for ``--seconds`` after their first logged row, and reads each run's rate from its
own ``metrics.csv`` (steps and wall time between the first and the last row). Two variants, run
one after the other in this one command:

* ``before``: torch's defaults as rlreg had them: one thread per core (``train.threads`` = cores),
  libgomp's default spinning and MKL's default dispatch (the CLI is started after ``import
  torch``, so rlreg cannot set ``GOMP_SPINCOUNT``/``MKL_CBWR``, exactly as before);
* ``after``: rlreg's defaults (``rlreg/threads.py``), nothing set: each run registers, and the runs
  settle at ``cores // running jobs`` threads within seconds.

    python scripts/bench_threads.py                          # 1, 2, 4 jobs, 40 s each
    python scripts/bench_threads.py --jobs 1 2 --seconds 20 --variants after

Printed per variant and job count: each job's updates/s, their mean, and that mean as a share of
one job alone (same variant) and of one job alone with the ``before`` settings.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

TORCH_FIRST = "import sys, torch, rlreg.agents.cli; sys.exit(rlreg.agents.cli.main(sys.argv[1:]))"
VARIANTS = {  # variant -> (launcher, extra --set values)
    "before": lambda cores: ([sys.executable, "-c", TORCH_FIRST], [f"train.threads={cores}"]),
    "after": lambda cores: ([sys.executable, "-m", "rlreg.agents.cli"], []),
}


def rate(metrics: Path) -> float | None:
    """Updates/s between the first and the last row of a run's metrics.csv (None: < 2 rows)."""
    if not metrics.exists():
        return None
    with metrics.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("time")]
    if len(rows) < 2:
        return None
    (s0, t0), (s1, t1) = ((int(r["step"]), float(r["time"])) for r in (rows[0], rows[-1]))
    return (s1 - s0) / (t1 - t0) if t1 > t0 else None


def run_jobs(n: int, variant: str, args: argparse.Namespace, root: Path) -> list[float | None]:
    launcher, sets = VARIANTS[variant](os.cpu_count() or 1)
    rt = ("OMP_NUM_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "MKL_CBWR", "RLREG_JOBS")
    env = {k: v for k, v in os.environ.items() if k not in rt}
    procs, outs = [], []
    for j in range(n):
        out = root / f"{variant}-{n}-{j}"
        cmd = [*launcher, "train", "td3bc", "--dataset", args.dataset]
        cmd += ["--steps", "1000000000", "--eval-episodes", "0", "--no-progress", "--seed", str(j)]
        cmd += ["--out", str(out), "--set", f"train.log_every={args.log_every}"]
        cmd += ["--set", "train.checkpoint_every=0", "--set", "train.checkpoint_minutes=0"]
        for s in sets:
            cmd += ["--set", s]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        outs.append(out)
    try:
        t0 = time.time()
        while not all((o / "metrics.csv").exists() for o in outs):  # every job is training
            if any(p.poll() is not None for p in procs):
                raise SystemExit(f"a job stopped early: {procs[0].stderr.read().decode()[-2000:]}")
            if time.time() - t0 > 600:
                raise SystemExit("jobs did not start within 10 minutes")
            time.sleep(0.2)
        time.sleep(args.seconds)
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
    return [rate(o / "metrics.csv") for o in outs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--seconds", type=float, default=40.0, help="training time measured per job count")
    p.add_argument("--variants", nargs="+", default=["before", "after"], choices=sorted(VARIANTS))
    p.add_argument("--dataset", default="pendulum-medium-v0")
    p.add_argument("--log-every", type=int, default=200)
    args = p.parse_args()
    subprocess.run(
        [sys.executable, "-m", "rlreg.agents.cli", "datasets", "make", args.dataset],
        check=True,
        capture_output=True,
    )
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# bench_threads {when}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, ")
    print(f"# TD3+BC on {args.dataset}, {args.seconds:g} s per job count, load before start {load:.2f}")
    alone: dict[str, float] = {}
    print("| variant | jobs | updates/s of each job | mean | share of alone | share of before-alone |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            for n in args.jobs:
                rates = run_jobs(n, variant, args, Path(tmp))
                ok = [r for r in rates if r is not None]
                mean = sum(ok) / len(ok) if ok else float("nan")
                if n == 1:
                    alone[variant] = mean
                share = mean / alone[variant] if variant in alone else float("nan")
                base = mean / alone["before"] if "before" in alone else float("nan")
                each = ", ".join("n/a" if r is None else f"{r:.0f}" for r in rates)
                print(f"| {variant} | {n} | {each} | {mean:.0f} | {share:.0%} | {base:.0%} |", flush=True)


if __name__ == "__main__":
    main()
