"""Steps per second of rlreg's DeepMind Control wrapper (envs/dmc.py) against shimmy's
``DmControlCompatibilityV0`` (the Farama adapter), in one process, random actions:

    python scripts/bench_envs.py [--steps 5000] [--tasks cheetah-run walker-walk reacher-hard]

shimmy's env returns dict observations; an MLP agent needs them flat, so it is also timed with
Gymnasium's ``FlattenObservation`` (the comparable setup). Both are seeded the same way and step
the same physics, so the difference is the wrapping. The three alternate in ``--rounds`` rounds
(medians reported), so drift of a shared machine hits them alike. Needs ``pip install 'rlreg[dmc,bench]'``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np


def steps_per_s(env: gym.Env, steps: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, (steps, *env.action_space.shape)).astype(env.action_space.dtype)
    t0 = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--tasks", nargs="+", default=["cheetah-run", "walker-walk", "reacher-hard"])
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds; the median is reported")
    args = p.parse_args()
    from dm_control import suite
    from rlreg.envs.dmc import DMCEnv, dmc_task
    from shimmy.dm_control_compatibility import DmControlCompatibilityV0

    print(
        "| task | rlreg DMCEnv steps/s | shimmy steps/s | shimmy + FlattenObservation steps/s "
        "| rlreg / shimmy+flatten |"
    )
    print("|---|---|---|---|---|")
    for name in args.tasks:
        domain, task = dmc_task(name)
        envs = {
            "ours": DMCEnv(domain, task),
            "shimmy": DmControlCompatibilityV0(suite.load(domain, task)),
            "flat": gym.wrappers.FlattenObservation(DmControlCompatibilityV0(suite.load(domain, task))),
        }
        rates: dict[str, list[float]] = {k: [] for k in envs}
        for r in range(args.rounds):  # alternating rounds: machine drift hits all three alike
            for k, env in envs.items():
                rates[k].append(steps_per_s(env, args.steps // args.rounds, seed=r))
        ours, shimmy, flat = (statistics.median(rates[k]) for k in envs)
        print(f"| {name} | {ours:.0f} | {shimmy:.0f} | {flat:.0f} | {ours / flat:.2f}× |")


if __name__ == "__main__":
    main()
