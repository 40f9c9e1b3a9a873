"""Learning checks of rlreg's Stable-Baselines3 subclasses (issue 15), in seed_table.py's layout.

    python scripts/sb3_table.py td3bc --dataset hopper-medium-replay-v0 --seeds 0 1 2 \\
        --steps 30000 --out runs/sb3-hmr
    python scripts/seed_table.py --dataset hopper-medium-replay-v0 --agents td3bc --seeds 0 1 2 \\
        --steps 30000 --out runs/sb3-hmr          # ours, same folder
    python scripts/seed_table.py --dataset hopper-medium-replay-v0 --agents td3bc sb3-td3bc \\
        --seeds 0 1 2 --steps 30000 --out runs/sb3-hmr --report

Each SB3 run writes ``OUT/sb3-<algo>-s<seed>/eval.csv`` (step, return_mean, return_std, score) and
``metrics.csv`` (updates_per_s), the files ``seed_table.py --report`` reads, so one report puts
SB3's runs beside ours. A finished run (its last evaluation at ``--steps``) is skipped; an
interrupted ``dqn``/``mdqn`` run resumes from its last evaluation's checkpoint (an interrupted
``td3bc`` run, minutes long, starts again).

``td3bc``: ``rlreg.agents.sb3.TD3`` with ``regularizers=[BC()]``, ``alpha=2.5`` and the settings of
our ``td3bc`` recipe (2×256 ReLU nets, lr 3e-4, batch 256, γ 0.99, τ 0.005, policy noise 0.2, clip
0.5, delay 2; states z-normalised, std + 1e-3), trained by ``learn_offline``; evaluation with SB3's
``evaluate_policy`` (deterministic, ``--eval-episodes`` episodes) every ``--eval-every`` updates.

``dqn`` / ``mdqn``: ``rlreg.agents.sb3.DQN`` on ``rlreg/MinAtar-<game>-v0`` with our ``dqn`` /
``mdqn`` recipes' settings where SB3 has them (DVW's MinAtar setup: Adam 2.5e-4, buffer 100k,
10k warm-up, batch 32, one update per 4 steps, hard target copy every 1000 steps, ε 1 → 0.1 over
the first 10 % of the steps, no gradient clipping, 10k-step time limit, sticky actions 0.1;
Munchausen κ 0.027, τ 0.003, l₀ −1) and SB3's own Huber loss and uniform warm-up actions; the
network is MinAtar's (``MinAtarCNN``). Greedy evaluation on ``--eval-episodes`` episodes every
``--eval-every`` env steps in a separate env:

    python scripts/sb3_table.py dqn --seeds 0 1 2 --steps 500000 --eval-every 50000 \
        --eval-episodes 50 --out runs/sb3-asterix          # then mdqn
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

import torch


def _write(path: Path, rows: list[dict[str, float]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)  # never a partial file under the final name


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _finished(run: Path, steps: int) -> bool:
    path = run / "eval.csv"
    if not path.exists():
        return False
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return bool(rows) and int(rows[-1]["step"]) >= steps


def td3bc(seed: int, args: argparse.Namespace) -> None:
    import gymnasium as gym
    from rlreg.agents.sb3 import TD3
    from rlreg.envs.datasets import load_dataset
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlreg.regularizers import BC

    run = args.out / f"sb3-td3bc-s{seed}"
    if _finished(run, args.steps):
        return
    run.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.dataset)
    info = data.info
    env = gym.make(info.env_id, **info.env_kwargs)
    model = TD3(
        "MlpPolicy",
        env,
        regularizers=[BC()],
        alpha=2.5,
        learning_rate=3e-4,
        buffer_size=len(data),
        batch_size=256,
        gamma=0.99,
        tau=0.005,
        policy_delay=2,
        target_policy_noise=0.2,
        target_noise_clip=0.5,
        policy_kwargs={"net_arch": [256, 256]},
        seed=seed,
        device="cpu",
    )
    eval_env = DummyVecEnv([lambda: Monitor(gym.make(info.env_id, **info.env_kwargs))])
    eval_env.seed(10_000 + seed)
    start = time.perf_counter()
    out = model.learn_offline(
        data,
        gradient_steps=args.steps,
        eval_env=eval_env,
        eval_freq=args.eval_every,
        n_eval_episodes=args.eval_episodes,
    )
    rate = args.steps / (time.perf_counter() - start)  # evaluation time included, as ours logs
    _write(run / "metrics.csv", [{"step": args.steps, "updates_per_s": rate}])
    _write(run / "eval.csv", out["evals"])
    print(f"sb3-td3bc seed {seed}: final score {out['evals'][-1]['score']:.1f} ({rate:.0f} updates/s)")


def dqn(seed: int, args: argparse.Namespace, munchausen: bool) -> None:
    import gymnasium as gym
    import rlreg.envs.minatar  # noqa: F401  (registers rlreg/MinAtar-<Game>-v0)
    from rlreg.agents.sb3 import DQN, MinAtarCNN
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rlreg.regularizers import Munchausen

    name = f"sb3-{'mdqn' if munchausen else 'dqn'}"
    run = args.out / f"{name}-s{seed}"
    if _finished(run, args.steps):
        return
    run.mkdir(parents=True, exist_ok=True)
    env_id = f"rlreg/MinAtar-{args.game}-v0"
    env = gym.make(env_id, max_episode_steps=10_000)
    eval_env = DummyVecEnv([lambda: Monitor(gym.make(env_id, max_episode_steps=10_000))])
    eval_env.seed(10_000 + seed)
    ckpt, replay = run / "model.zip", run / "replay.pkl"
    rows: list[dict[str, Any]] = _read(run / "eval.csv") if ckpt.exists() else []
    if rows and replay.exists():  # resume from the last evaluation's checkpoint
        model = DQN.load(ckpt, env=env, device="cpu")
        model.load_replay_buffer(replay)
        print(f"{name} seed {seed}: resuming at step {model.num_timesteps}", flush=True)
        _learn_dqn(model, rows, run, f"{name} seed {seed}", eval_env, args)
        return
    model = DQN(
        "MlpPolicy",
        env,
        regularizers=[Munchausen(kl_coef=0.027, ent_coef=0.003, clip_min=-1.0)] if munchausen else [],
        learning_rate=2.5e-4,
        buffer_size=100_000,
        learning_starts=10_000,
        batch_size=32,
        gamma=0.99,
        train_freq=4,
        gradient_steps=1,
        target_update_interval=1000,
        exploration_fraction=0.1,
        exploration_initial_eps=1.0,
        exploration_final_eps=0.1,
        max_grad_norm=float("inf"),  # DVW's code does not clip gradients
        policy_kwargs={"features_extractor_class": MinAtarCNN, "net_arch": []},
        seed=seed,
        device="cpu",
    )
    _learn_dqn(model, [], run, f"{name} seed {seed}", eval_env, args)


def _learn_dqn(
    model: Any, rows: list[dict[str, Any]], run: Path, label: str, eval_env: Any, args: Any
) -> None:
    """Train to ``--steps``; at every evaluation write eval.csv and a checkpoint (model and replay
    buffer, each under a temporary name first), so an interrupted run resumes there (not
    bit-exactly: SB3's generators are not saved)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    start, first = time.perf_counter(), model.num_timesteps

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            step = self.num_timesteps
            if step % args.eval_every == 0:
                mean, std = evaluate_policy(model, eval_env, args.eval_episodes, deterministic=True)
                rows.append({"step": step, "return_mean": mean, "return_std": std, "score": "nan"})
                rate = (step - first) / (time.perf_counter() - start)
                _write(run / "metrics.csv", [{"step": step, "updates_per_s": rate / 4}])
                if step < args.steps:
                    model.save(run / "model.tmp.zip")
                    model.save_replay_buffer(run / "replay.tmp.pkl")
                    (run / "model.tmp.zip").replace(run / "model.zip")
                    (run / "replay.tmp.pkl").replace(run / "replay.pkl")
                _write(run / "eval.csv", rows)
                print(f"{label} step {step}: greedy return {mean:.1f}", flush=True)
            return True

    model.learn(args.steps - model.num_timesteps, callback=Evaluate(), reset_num_timesteps=not rows)
    for path in (run / "model.zip", run / "replay.pkl"):
        path.unlink(missing_ok=True)  # finished: eval.csv is the result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("algo", choices=["td3bc", "dqn", "mdqn"])
    p.add_argument("--game", default="Asterix", help="MinAtar game for dqn / mdqn")
    p.add_argument("--dataset", default="hopper-medium-replay-v0")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=30000)
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/sb3-table"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        if args.algo == "td3bc":
            td3bc(seed, args)
        else:
            dqn(seed, args, munchausen=args.algo == "mdqn")


if __name__ == "__main__":
    main()
