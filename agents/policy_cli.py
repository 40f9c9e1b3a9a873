"""``rlreg policy export``: turn a training run (checkpoint or snapshot) into a policy file."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rlreg.errors import check

__all__ = ["add_policy_parser", "cmd_policy"]


def add_policy_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "policy",
        help="export behaviour policies from training runs",
        description="Export a run's actor as a behaviour-policy file with its evaluation record.",
    )
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION")
    e = psub.add_parser(
        "export", help="write RUN_DIR's actor (latest checkpoint or --step snapshot) to --out"
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument(
        "--out", required=True, metavar="PATH", help="policy file to write (.pt; a .json record beside)"
    )
    e.add_argument(
        "--step", type=int, metavar="N", help="a snapshot step (snapshots/step_N.pt) instead of the end"
    )
    e.add_argument(
        "--episodes",
        type=int,
        default=100,
        metavar="N",
        help="evaluation episodes for the record (default 100, as D4RL's references)",
    )
    e.add_argument("--seed", type=int, default=0, metavar="S", help="evaluation seed (default 0)")


def cmd_policy(args: argparse.Namespace) -> int:
    from rlreg.envs.evaluation import Evaluator
    from rlreg.envs.policies import policy_from_run, save_policy

    check(
        args.policy_command == "export",
        "no policy action given",
        "use `rlreg policy export RUN_DIR --out PATH`",
    )
    check(
        args.episodes >= 1, f"--episodes must be >= 1, got {args.episodes}", "pass --episodes N with N >= 1"
    )
    policy = policy_from_run(args.run_dir, args.step)
    ev = Evaluator(policy.env_id, args.episodes, args.seed)
    try:
        res = ev.run(policy)
    finally:
        ev.close()
    record = dict(policy.record)
    record.update(
        {
            "exported_from": str(Path(args.run_dir)),
            "export_command": "rlreg " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "eval_episodes": args.episodes,
            "eval_seed": args.seed,
            "return_mean": res.mean_return,
            "return_std": res.std_return,
            "length_mean": float(res.lengths.mean()),
        }
    )
    path = save_policy(
        args.out, env_id=policy.env_id, actor=policy.actor, normalizer=policy.normalizer, record=record
    )
    print(
        f"wrote {path}: {policy.env_id}, return {res.mean_return:.1f} ± {res.std_return:.1f} "
        f"over {args.episodes} episodes"
    )
    return 0
