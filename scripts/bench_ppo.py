"""Whole-training throughput of PPO on MinAtar Breakout: rlreg vs Stable-Baselines3, one run.

Both train the same PPO (the ``ppo-minatar`` recipe: 128 envs x 128 steps, 4 epochs of minibatches
of 4096, lr 3e-4, γ 0.99, λ 0.95, clip 0.2 on the ratio and the value, entropy 0.01, value 0.5,
gradient norm 0.5, advantages normalised per minibatch) with the same network (Conv2d 32 k2 SAME →
ReLU → 2x2 average pool → Linear 64 → ReLU, then 64-64 tanh actor and critic heads) for the same
number of environment steps, and each is timed over its training loop (collection + update, no
evaluation; building the model, imports and the run folder are left out of both):

- rlreg: ``rlreg.agents.api.train("ppo-minatar", env="minatar:breakout")``, batched torch MinAtar
  with the whole rollout on the training device;
- SB3: ``stable_baselines3.PPO`` on a ``DummyVecEnv`` of 128 ``MinAtar/Breakout-v0`` envs (the
  ``minatar`` package's Gymnasium registration: the full 6-action set, sticky actions 0.1, as ours),
  with ``clip_range_vf=0.2`` and the same network as a features extractor.

Both run in one process under the runtime the ``rlreg`` command sets up
(:func:`rlreg.threads.configure_runtime`: strict MKL numerics, short OpenMP spins, PyTorch's
large-page allocation); ``THP_MEM_ALLOC_ENABLE=0 python scripts/bench_ppo.py`` runs both without
large pages.

Printed: env steps/s of each (medians of alternating rounds) and ours ÷ SB3. Published anchors,
for orientation only (other hardware): PureJaxRL ≈ 35 s and rejax ≈ 10.5 s per 1M steps of
MinAtar-Breakout PPO on an A100; CleanRL ≈ 8 min.

    python scripts/bench_ppo.py                          # 3 rounds of 4 rollouts each, 1 torch thread
    python scripts/bench_ppo.py --rollouts 8 --threads 2
    python scripts/bench_ppo.py --device cuda            # ours on the GPU (SB3 stays on CPU)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime, timezone

from rlreg.threads import configure_runtime, cpu_model

configure_runtime()  # as the rlreg command, before torch: both libraries run in this process's runtime
import torch  # noqa: E402

ENVS, STEPS = 128, 128


def ours(total: int, device: str, seed: int, threads: int) -> float:
    import csv

    from rlreg.agents.api import train

    settings = {
        "train.eval_episodes": 0,
        "train.checkpoint_every": 0,
        "train.log_every": ENVS * STEPS,
        "train.threads": threads,  # else rlreg's default, usable cores // jobs
    }
    with tempfile.TemporaryDirectory() as tmp:
        train(
            "ppo-minatar",
            env="minatar:breakout",
            steps=total,
            seed=seed,
            device=device,
            out=os.path.join(tmp, "run"),
            settings=settings,
            progress=False,
        )
        with open(os.path.join(tmp, "run", "metrics.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        return total / float(rows[-1]["time"])  # the training loop's clock: collection + updates


def sb3(total: int, seed: int, threads: int) -> float:
    import gymnasium as gym
    import minatar.gym
    import stable_baselines3 as sb
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import DummyVecEnv
    from torch import nn

    minatar.gym.register_envs()

    class Torso(BaseFeaturesExtractor):
        """rlreg's ppo-minatar torso, channels-last input as the minatar package gives it."""

        def __init__(self, space: gym.spaces.Box) -> None:
            super().__init__(space, 64)
            h, w, c = space.shape
            self.net = nn.Sequential(
                nn.ZeroPad2d((0, 1, 0, 1)),
                nn.Conv2d(c, 32, 2),
                nn.ReLU(),
                nn.AvgPool2d(2),
                nn.Flatten(),
                nn.Linear(32 * (h // 2) * (w // 2), 64),
                nn.ReLU(),
            )

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.net(obs.permute(0, 3, 1, 2).float())

    venv = DummyVecEnv([lambda: gym.make("MinAtar/Breakout-v0") for _ in range(ENVS)])
    model = sb.PPO(
        "MlpPolicy",
        venv,
        learning_rate=3e-4,
        n_steps=STEPS,
        batch_size=4096,
        n_epochs=4,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        clip_range_vf=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs={
            "features_extractor_class": Torso,
            "net_arch": {"pi": [64, 64], "vf": [64, 64]},
            "activation_fn": nn.Tanh,
        },
        seed=seed,
        device="cpu",
        verbose=0,
    )
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model.learn(total)  # collection + update (SB3's learn setup included, a few ms)
    return total / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rollouts", type=int, default=4, help="rollouts of 128 x 128 steps per library")
    p.add_argument("--threads", type=int, default=1, help="torch threads (both libraries)")
    p.add_argument("--device", default="cpu", help="rlreg's device (cpu or cuda)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians reported)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    total = args.rollouts * ENVS * STEPS
    cpu = cpu_model()
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE")
    print(f"# {now} torch {torch.__version__}, {cpu}, {args.threads} thread(s), rlreg on {args.device}")
    print(f"# MKL_CBWR={os.environ.get('MKL_CBWR')} THP_MEM_ALLOC_ENABLE={thp} (both libraries)")
    print(f"# PPO on MinAtar Breakout, {ENVS} envs x {STEPS} steps, {args.rollouts} rollouts = {total} steps")
    runs: dict[str, list[float]] = {"rlreg": [], "sb3": []}
    for r in range(args.rounds):  # alternating, so a busy spell of the machine hits both
        runs["rlreg"].append(ours(total, args.device, args.seed, args.threads))
        runs["sb3"].append(sb3(total, args.seed, args.threads))
        a, b = runs["rlreg"][-1], runs["sb3"][-1]
        print(f"# round {r + 1}: rlreg {a:,.0f}, SB3 {b:,.0f} steps/s", flush=True)
    a, b = (statistics.median(v) for v in runs.values())
    print("| library | env steps/s (rollout + update) | s per 1M steps |")
    print("|---|---|---|")
    print(f"| rlreg ppo-minatar ({args.device}) | {a:,.0f} | {1e6 / a:,.0f} |")
    print(f"| SB3 PPO, DummyVecEnv x {ENVS} (cpu) | {b:,.0f} | {1e6 / b:,.0f} |")
    print(f"\nrlreg / SB3: {a / b:.2f}x")


if __name__ == "__main__":
    main()
