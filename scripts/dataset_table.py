"""Print the docs/datasets.md table for made datasets: per level, mean ± std episode return,
normalized score, transitions, episodes, and D4RL's reference returns side by side.

    python scripts/dataset_table.py hopper            # datasets must be made (`rlreg datasets make ...`)
    python scripts/dataset_table.py hopper --make     # make missing ones first (D4RL sizes: slow)
"""

from __future__ import annotations

import argparse

from envs.datasets import DATASETS, load_dataset, make_dataset
from rlreg.data.scores import D4RL_REF_SCORES

LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("env", help="hopper, halfcheetah, walker2d or pendulum")
    p.add_argument("--make", action="store_true", help="make missing datasets first")
    args = p.parse_args()
    d4rl = D4RL_REF_SCORES.get(args.env)
    print(f"| {args.env} level | return mean ± std | normalized | transitions | episodes | command |")
    print("|---|---|---|---|---|---|")
    for level in LEVELS:
        name = f"{args.env}-{level}-v0"
        if name not in DATASETS:
            continue
        if args.make:
            make_dataset(name, progress=True)
        t = load_dataset(name)
        rets = t.episode_returns()
        score = t.info.normalized_score(float(rets.mean()))
        print(
            f"| {level} | {rets.mean():.1f} ± {rets.std():.1f} | {score:.1f} | {len(t)} | {len(rets)} | "
            f"`rlreg datasets make {name}` |"
        )
    info = load_dataset(f"{args.env}-expert-v0").info if f"{args.env}-expert-v0" in DATASETS else None
    if info is not None:
        print(
            f"\nReferences (ours): random {info.ref_min_score:.1f}, expert {info.ref_max_score:.1f}.", end=""
        )
    if d4rl is not None:
        print(f" D4RL v2 references: random {d4rl[0]:.1f}, expert {d4rl[1]:.1f}.")
    print()


if __name__ == "__main__":
    main()
