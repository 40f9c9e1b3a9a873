"""Batched MinAtar throughput: rlreg's torch games vs the ``minatar`` package, one run.

Reference (the original numpy MinAtar, GPL, installed with the dev extra): one environment per
process, one process per core, each stepping with uniformly random actions and reading
``state()`` every step (the observation); its throughput is the sum over processes.
Ours: ``MinAtarBatch(game, N)`` with uniformly random actions drawn on the device, float32
``(N, C, 10, 10)`` observations every step, sticky actions and automatic reset, at several N.
Printed per game: env-steps/s of each and ours ÷ reference.

    python scripts/bench_minatar.py                         # CPU, N = 1, 64, 1024, 4096
    python scripts/bench_minatar.py --device cuda --envs 1024 16384 65536
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
from datetime import datetime, timezone

import numpy as np
import torch

GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


def _reference_worker(args: tuple[str, float, int]) -> tuple[int, float]:
    game, seconds, seed = args
    import minatar

    env = minatar.Environment(game)
    env.seed(seed)
    rng = np.random.default_rng(seed)
    env.reset()
    steps, t0 = 0, time.perf_counter()
    while True:
        for a in rng.integers(0, 6, 1000):
            _, terminal = env.act(int(a))
            env.state()
            if terminal:
                env.reset()
        steps += 1000
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return steps, dt


def reference(game: str, seconds: float, procs: int) -> float:
    with mp.get_context("spawn").Pool(procs) as pool:
        out = pool.map(_reference_worker, [(game, seconds, i) for i in range(procs)])
    return sum(s / dt for s, dt in out)


def ours(game: str, n: int, device: str, seconds: float, obs_dtype: torch.dtype, seed: int = 0) -> float:
    from rlreg.envs.minatar import MinAtarBatch

    env = MinAtarBatch(game, n, device=device, seed=seed, obs_dtype=obs_dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run(k: int) -> None:
        for _ in range(k):
            env.step(torch.randint(0, env.num_actions, (n,), device=device, generator=gen))

    run(20)  # warm-up
    sync()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run(50)
        steps += 50
    sync()
    return steps * n / (time.perf_counter() - t0)


def _ours_worker(args: tuple[str, int, str, float, str, int]) -> float:
    game, n, device, seconds, dtype, seed = args
    torch.set_num_threads(1)
    return ours(game, n, device, seconds, getattr(torch, dtype), seed)


def ours_procs(game: str, n: int, seconds: float, dtype: str, procs: int) -> float:
    """Ours in ``procs`` CPU processes (one per core, 1 thread each, N envs each): summed env-steps/s."""
    with mp.get_context("spawn").Pool(procs) as pool:
        return sum(pool.map(_ours_worker, [(game, n, "cpu", seconds, dtype, i) for i in range(procs)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", default=list(GAMES), choices=GAMES)
    p.add_argument("--envs", nargs="+", type=int, default=[1, 64, 1024, 4096])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    p.add_argument("--procs", type=int, default=os.cpu_count(), help="reference processes (all cores)")
    p.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (ours; 1: fastest for these op sizes)"
    )
    p.add_argument(
        "--ours-procs",
        type=int,
        default=1,
        help="CPU: run ours in this many processes too (one per core, like the reference), summed",
    )
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--obs-dtype", default="float32", choices=["float32", "uint8", "bool"])
    args = p.parse_args()
    if args.ours_procs > 1 and args.device != "cpu":
        p.error(f"--ours-procs {args.ours_procs} is for CPU runs; drop it with --device {args.device}")
    torch.set_num_threads(args.threads)
    when = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    dev = (
        torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    )
    print(
        f"# bench_minatar {when}, {dev}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({args.threads} threads, {args.ours_procs} process(es)), {args.obs_dtype} observations, "
        f"reference: {args.procs} processes"
    )
    each = f" ×{args.ours_procs} proc" if args.ours_procs > 1 else ""
    head = " | ".join(f"ours N={n}{each}" for n in args.envs)
    print(f"| game | minatar ({args.procs} proc) | {head} | best ÷ minatar |")
    print("|---|---|" + "---|" * len(args.envs) + "---|")
    for game in args.games:
        ref = float("nan") if args.skip_reference else reference(game, args.seconds, args.procs)
        dtype = getattr(torch, args.obs_dtype)
        if args.ours_procs > 1:
            rates = [ours_procs(game, n, args.seconds, args.obs_dtype, args.ours_procs) for n in args.envs]
        else:
            rates = [ours(game, n, args.device, args.seconds, dtype) for n in args.envs]
        cells = " | ".join(f"{r / 1e3:,.0f}k" for r in rates)
        print(f"| {game} | {ref / 1e3:,.0f}k | {cells} | {max(rates) / ref:.1f}× |", flush=True)


if __name__ == "__main__":
    main()
