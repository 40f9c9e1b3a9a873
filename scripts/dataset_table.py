"""Print the docs/datasets.md table for made datasets: per level, mean ± std episode return,
normalized score, transitions, episodes, and D4RL's reference returns side by side.

    python scripts/dataset_table.py hopper            # datasets must be made (`rlreg datasets make ...`)
    python scripts/dataset_table.py hopper --make     # make missing ones first (D4RL sizes: slow)
"""

from __future__ import annotations

import argparse
import json

from rlreg.envs.datasets import DATASETS, load_dataset, make_dataset
from rlreg.envs.policies import POLICY_DIR

from rlreg.data.scores import D4RL_REF_SCORES

LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("env", help="hopper, halfcheetah, walker2d, pendulum or cartpole")
    p.add_argument("--make", action="store_true", help="make missing datasets first")
    args = p.parse_args()
    d4rl = D4RL_REF_SCORES.get(args.env)
    print(
        f"| {args.env} level | episode return mean ± std | normalized (ours) | normalized (D4RL refs) "
        "| transitions | episodes | command |"
    )
    print("|---|---|---|---|---|---|---|")
    for level in LEVELS:
        name = f"{args.env}-{level}-v0"
        if name not in DATASETS:
            continue
        if args.make:
            make_dataset(name, progress=True)
        t = load_dataset(name)
        rets = t.episode_returns()
        score = t.info.normalized_score(float(rets.mean()))
        d4rl_score = "—" if d4rl is None else f"{100 * (rets.mean() - d4rl[0]) / (d4rl[1] - d4rl[0]):.1f}"
        print(
            f"| {level} | {rets.mean():.1f} ± {rets.std():.1f} | {score:.1f} | {d4rl_score} | {len(t)} | "
            f"{len(rets)} | `rlreg datasets make {name}` |"
        )
    info = load_dataset(f"{args.env}-expert-v0").info if f"{args.env}-expert-v0" in DATASETS else None
    if info is not None:
        print(
            f"\nReferences (ours): random {info.ref_min_score:.1f}, expert {info.ref_max_score:.1f}.", end=""
        )
    if d4rl is not None:
        print(f" D4RL v2 references: random {d4rl[0]:.1f}, expert {d4rl[1]:.1f}.")
    policies = []
    for path in sorted(POLICY_DIR.glob(f"{args.env}-*.json")):
        rec = json.loads(path.read_text())
        policies.append(
            f"{path.stem} {rec['return_mean']:.1f} ± {rec['return_std']:.1f} "
            f"(step {rec['step']}, {rec['eval_episodes']} episodes)"
        )
    if policies:
        print("\nBehaviour policies without noise: " + "; ".join(policies) + ".")
    print()


if __name__ == "__main__":
    main()
