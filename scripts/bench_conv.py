"""The two measurements behind PPO's CPU speed-up (docs/benchmarks.md, issue 17), in one script.

1. Large tensors: zeroing a fresh 52 MB tensor vs reusing one buffer, with and without PyTorch's
   ``THP_MEM_ALLOC_ENABLE`` (read once per process, so each setting runs in a child process).
2. The MinAtar PPO torso (ZeroPad → Conv 32 k2 → ReLU → AvgPool 2 → Flatten → Linear 64 → ReLU) on
   a 4096 × 4 × 10 × 10 minibatch, forward + backward: the plain ``nn.Sequential``, the same with a
   channels-last input (what a ``permute`` of NHWC observations gives, as in an SB3 features
   extractor), and :class:`rlreg.conv.ConvTorso`, under the ``rlreg`` command's runtime (large
   pages on); alternating repeats, medians.

    python scripts/bench_conv.py               # 1 torch thread
    python scripts/bench_conv.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def alloc_child() -> None:
    import torch

    torch.set_num_threads(1)
    n = 4096 * 32 * 10 * 10  # one conv activation of the minibatch: 52 MB in float32
    buf = torch.empty(n)

    def ms(f, k: int = 20) -> float:
        f()
        t = time.perf_counter()
        for _ in range(k):
            f()
        return (time.perf_counter() - t) / k * 1e3

    print(f"{ms(lambda: torch.zeros(n)):.1f} {ms(lambda: buf.zero_()):.1f}")


def torso_times(threads: int, repeats: int) -> dict[str, float]:
    import copy

    import torch
    from torch import nn

    from rlreg.conv import ConvTorso

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers = [
        nn.ZeroPad2d((0, 1, 0, 1)),
        nn.Conv2d(4, 32, 2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(800, 64),
        nn.ReLU(),
    ]
    plain = nn.Sequential(*layers)
    fast = ConvTorso(*copy.deepcopy(layers))
    x = (torch.rand(4096, 4, 10, 10) < 0.1).float()
    x_cl = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # NHWC storage, NCHW view
    cases = {"plain nn.Sequential": (plain, x), "channels-last input": (plain, x_cl), "ConvTorso": (fast, x)}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, (m, inp) in cases.items():
            m(inp).sum().backward()  # warm
            t = time.perf_counter()
            for _ in range(5):
                m(inp).sum().backward()
            times[name].append((time.perf_counter() - t) / 5 * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    if os.environ.get("_RLREG_ALLOC_CHILD"):
        alloc_child()
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    from rlreg.threads import configure_runtime

    configure_runtime()  # the rlreg command's runtime (large pages on) for the torso timings
    print("| large-page switch | fresh 52 MB zeros (ms) | reused buffer zeroed (ms) |\n|---|---|---|")
    for thp in ("0", "1"):
        env = {**os.environ, "_RLREG_ALLOC_CHILD": "1", "THP_MEM_ALLOC_ENABLE": thp}
        out = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, check=True)
        fresh, reused = out.stdout.split()
        print(f"| THP_MEM_ALLOC_ENABLE={thp} | {fresh} | {reused} |")
    print(f"\n| torso, 4096 minibatch, fwd + bwd, {args.threads} thread(s) | ms (median) |\n|---|---|")
    for name, ms in torso_times(args.threads, args.repeats).items():
        print(f"| {name} | {ms:.0f} |")


if __name__ == "__main__":
    main()
