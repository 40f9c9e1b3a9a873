"""Choose and export the behaviour policies of one env from a TD3 training run with snapshots.

D4RL's recipe: *expert* is the best policy the training budget reached, *medium* a policy at about
one third of the expert's return, and *medium-replay* comes from the training snapshots up to
medium. From ``RUN_DIR/snapshots/step_*.pt`` (saved with ``train.snapshot_every``) this script:

1. ranks snapshots by their evaluation at training time (``eval.csv``), re-evaluates the best
   ``--finalists`` over ``--episodes`` episodes and ships the best as ``<env>-expert``;
2. ships as ``<env>-medium`` the snapshot before the expert whose training-time return is closest
   to one third of the expert's (re-evaluated over ``--episodes``);
3. ships ``--max-replay`` snapshots up to medium, evenly spaced and ending at medium, as
   ``<env>-replay-<step>`` (evaluated over ``--replay-episodes``); the dataset maker gives each the
   share of the data that its interval of training time stands for.

Each file gets a JSON record: run, training command, step, seed, mean ± std return.

    python scripts/ship_behaviour_policies.py runs/hopper-behaviour hopper
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
from pathlib import Path

import numpy as np
from rlreg.envs.evaluation import Evaluator
from rlreg.envs.policies import POLICY_DIR, load_policy, save_policy


def evaluate(policy, episodes: int, seed: int = 0) -> tuple[float, float]:
    ev = Evaluator(policy.env_id, episodes, seed)
    try:
        r = ev.run(policy)
    finally:
        ev.close()
    return r.mean_return, r.std_return


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("env", help="dataset env prefix: hopper, halfcheetah or walker2d")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--replay-episodes", type=int, default=20)
    p.add_argument("--finalists", type=int, default=3)
    p.add_argument("--max-replay", type=int, default=5, help="medium-replay snapshots to ship (size budget)")
    p.add_argument("--out", default=str(POLICY_DIR))
    args = p.parse_args()
    run, out = Path(args.run_dir), Path(args.out)
    cfg = json.loads((run / "config.json").read_text())
    with (run / "eval.csv").open() as f:
        train_eval = {int(r["step"]): float(r["return_mean"]) for r in csv.DictReader(f)}
    snaps = {int(s.stem.split("_")[1]): s for s in (run / "snapshots").glob("step_*.pt")}
    steps = sorted(s for s in snaps if s in train_eval)
    assert steps, "no snapshot has a training-time evaluation"
    command = f"rlreg train {cfg['recipe']} --env {cfg['env']} --seed {cfg['seed']} " + " ".join(
        f"--set {shlex.quote(a.split('  #')[0])}" for a in cfg.get("applied", [])
    )
    applied_steps = [a for a in cfg.get("applied", []) if a.startswith("train.steps=")]
    if applied_steps and applied_steps[-1].split("  #")[0] != f"train.steps={cfg['train']['steps']}":
        command += f" && rlreg train --resume {run} --steps {cfg['train']['steps']}"  # extended run
    base = {
        "run": str(run),
        "train_command": command,
        "train_steps": cfg["train"]["steps"],
        "seed": cfg["seed"],
        "ship_command": "python scripts/ship_behaviour_policies.py "
        + " ".join(shlex.quote(a) for a in (args.run_dir, args.env)),
    }

    def ship(step: int, name: str, episodes: int) -> float:
        policy = load_policy(snaps[step])
        mean, std = evaluate(policy, episodes)
        record = {
            **base,
            "step": step,
            "eval_episodes": episodes,
            "return_mean": mean,
            "return_std": std,
            "train_time_return": train_eval[step],
        }
        save_policy(
            out / f"{name}.pt",
            env_id=policy.env_id,
            actor=policy.actor,
            normalizer=policy.normalizer,
            record=record,
        )
        print(f"{name}: step {step}, return {mean:.1f} ± {std:.1f} over {episodes} episodes")
        return mean

    finalists = sorted(steps, key=lambda s: -train_eval[s])[: args.finalists]
    scored = {s: evaluate(load_policy(snaps[s]), args.episodes)[0] for s in finalists}
    expert_step = max(scored, key=scored.get)
    expert = ship(expert_step, f"{args.env}-expert", args.episodes)
    before = [s for s in steps if s < expert_step]
    medium_step = min(before, key=lambda s: abs(train_eval[s] - expert / 3))
    ship(medium_step, f"{args.env}-medium", args.episodes)
    # snapshots taken before learning started are untrained actors, not what the replay buffer held
    starts = cfg["train"].get("learning_starts", 0)
    upto = [s for s in steps if starts < s <= medium_step] or [medium_step]
    picks = np.unique(np.round(np.linspace(0, len(upto) - 1, min(args.max_replay, len(upto))))).astype(int)
    for old in out.glob(f"{args.env}-replay-*"):
        old.unlink()  # a reshipped env must not keep snapshots of an earlier run
    for i in picks:
        ship(upto[i], f"{args.env}-replay-{upto[i]:08d}", args.replay_episodes)


if __name__ == "__main__":
    main()
