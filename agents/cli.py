"""The ``rlreg`` command line (importable: ``main(argv) -> exit code``).

Commands::

    rlreg train AGENT --dataset SPEC [--env ID] [--steps N] [--seed S] [--device cpu|cuda|auto]
    rlreg train dqn|mdqn|dqn-minatar --env minatar:GAME [--set dvw=true] ...
                [--eval-every N] [--eval-episodes N] [--set key=value ...] [--out DIR]
    rlreg train --resume RUN_DIR [--steps N]
    rlreg evaluate RUN_DIR [--episodes N]
    rlreg datasets [list]
    rlreg datasets make NAME [--size N] [--seed S] [--format minari|d4rl] [--out PATH]
    rlreg agents
    rlreg reproduce SPEC [--jobs N] [--ray ADDRESS] [--out DIR] [--dry-run]
    rlreg report DIR [--format md,csv,tex,png]
    rlreg plot RUN_DIR... [--metric eval/score --metric train/critic_loss ...] [--out PNG]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rlreg.errors import RlregError

__all__ = ["main", "build_parser"]

_SPEC_HELP = (
    "dataset SPEC: a registered name (see `rlreg datasets`, made on first use), "
    "d4rl:PATH.hdf5 (a D4RL-schema file), or minari:ID (a local Minari dataset)"
)


def build_parser() -> argparse.ArgumentParser:
    """The ``rlreg`` argument parser: train, evaluate, datasets, agents and the policy commands."""
    p = argparse.ArgumentParser(
        prog="rlreg",
        description="Policy and value regularizers for RL: train, evaluate, make datasets, reproduce tables.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_datasets_parser(sub)
    sub.add_parser("agents", help="list agent recipes")
    from rlreg.agents.plot_cli import add_plot_parser
    from rlreg.agents.policy_cli import add_policy_parser
    from rlreg.agents.tables_cli import add_table_parsers

    add_policy_parser(sub)
    add_table_parsers(sub)
    add_plot_parser(sub)
    return p


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    """The ``train`` subcommand: offline (--dataset), online (--env) or --resume."""
    from rlreg.agents.recipes import recipe_names

    t = sub.add_parser(
        "train",
        help="train an agent (offline on --dataset, or online on --env)",
        description="Train an agent recipe. Offline: --dataset SPEC. Online: --env ENV_ID. "
        "Resume an interrupted run with --resume RUN_DIR.",
    )
    t.add_argument("agent", nargs="?", metavar="AGENT", help=f"agent recipe: {', '.join(recipe_names())}")
    t.add_argument("--dataset", metavar="SPEC", help=_SPEC_HELP)
    t.add_argument(
        "--env",
        metavar="ENV_ID",
        help="Gymnasium env id: online training env, or the evaluation env when the dataset does not "
        "name one; minatar:GAME (asterix, breakout, freeway, seaquest, space_invaders) for the "
        "discrete-action recipes dqn, mdqn, dqn-minatar (batched MinAtar in torch)",
    )
    t.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="total gradient updates (offline) / env steps (online); default from the recipe",
    )
    t.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    t.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="training device (default auto: cuda when available)",
    )
    t.add_argument(
        "--eval-every", type=int, metavar="N", help="evaluate every N steps (default from the recipe)"
    )
    t.add_argument(
        "--eval-episodes",
        type=int,
        metavar="N",
        help="episodes per evaluation, run in parallel (default from the recipe; 0 disables)",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting: agent.FIELD, train.FIELD or REGULARIZER.FIELD (a bare FIELD when "
        "unambiguous), e.g. --set agent.alpha=3 --set bc.weight=0.5, or turn on a recipe switch, e.g. "
        "--set dvw=true; repeatable",
    )
    t.add_argument(
        "--add-reg",
        action="append",
        default=[],
        metavar="NAME",
        help="stack another registered regularizer on the recipe (its defaults; tune with --set "
        "NAME.FIELD=...), e.g. td3bc --add-reg prdc; repeatable",
    )
    t.add_argument(
        "--out", metavar="DIR", help="run folder to create (default runs/<agent>-<data>-s<seed>-<time>)"
    )
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    t.add_argument(
        "--tensorboard", action="store_true", help="also write TensorBoard scalars (rlreg[tensorboard])"
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` subcommand: score a run folder's latest checkpoint."""
    e = sub.add_parser(
        "evaluate",
        help="evaluate a run's latest checkpoint",
        description="Evaluate the latest checkpoint of a run folder and print the normalized score.",
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--episodes", type=int, metavar="N", help="episodes (default: the run's eval_episodes)")
    e.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="seed episode i with S + i (default: a fresh random seed, printed; the training "
        "evaluations used the run's seed + train.eval_seed_offset)",
    )


def _add_datasets_parser(sub: argparse._SubParsersAction) -> None:
    """The ``datasets`` subcommand and its ``list`` / ``make`` actions."""
    d = sub.add_parser(
        "datasets",
        help="list or make the datasets rlreg makes locally",
        description="`rlreg datasets` lists the suite with its status; `rlreg datasets make NAME` makes one.",
    )
    dsub = d.add_subparsers(dest="datasets_command", metavar="ACTION")
    dsub.add_parser("list", help="list datasets and whether they are made (default)")
    m = dsub.add_parser("make", help="make a dataset (deterministic in name, size and seed)")
    m.add_argument("name", metavar="NAME", help="registered dataset name, e.g. pendulum-medium-v0")
    m.add_argument("--size", type=int, metavar="N", help="transitions (default: the dataset's standard size)")
    m.add_argument("--seed", type=int, default=0, metavar="S", help="generation seed (default 0)")
    m.add_argument(
        "--format",
        choices=["minari", "d4rl"],
        default="minari",
        help="minari (default; stored under $RLREG_HOME/minari) or d4rl (also export a D4RL-schema HDF5)",
    )
    m.add_argument("--out", metavar="PATH", help="with --format d4rl: the HDF5 path to write")
    m.add_argument("--force", action="store_true", help="remake even if already made")


def _parse_sets(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise RlregError(
                f"--set {item!r} is not KEY=VALUE", "write it as --set key=value, e.g. --set agent.alpha=3"
            )
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _cmd_train(args: argparse.Namespace) -> int:
    from rlreg.agents.recipes import resolve_config
    from rlreg.agents.trainer import new_run_dir, resume, train

    if args.resume:
        if args.agent or args.dataset or args.set or args.env:
            raise RlregError(
                "--resume takes only the run folder (and optionally --steps)",
                "drop AGENT/--dataset/--env/--set: a resumed run keeps its own config",
            )
        summary = resume(args.resume, steps=args.steps, progress=not args.no_progress)
        _print_summary(summary, Path(args.resume))
        return 0
    if not args.agent:
        raise RlregError(
            "no AGENT given", "run `rlreg train AGENT --dataset SPEC`; `rlreg agents` lists agents"
        )
    if not args.dataset and not args.env:
        raise RlregError(
            "no --dataset (offline) or --env (online) given",
            "pass --dataset SPEC, e.g. --dataset pendulum-medium-v0",
        )
    sets = _parse_sets(args.set)
    for flag, key in (
        ("steps", "train.steps"),
        ("eval_every", "train.eval_every"),
        ("eval_episodes", "train.eval_episodes"),
    ):
        if getattr(args, flag) is not None:
            sets[key] = str(getattr(args, flag))
    if args.tensorboard:
        sets["train.tensorboard"] = "true"
    cfg = resolve_config(
        args.agent,
        args.dataset,
        env=args.env,
        seed=args.seed,
        device=args.device,
        sets=sets,
        add_regularizers=args.add_reg,
    )
    out = Path(args.out) if args.out else new_run_dir(cfg)
    summary = train(cfg, out, progress=not args.no_progress, announce=True)
    _print_summary(summary, out)
    return 0


def _print_summary(summary: dict, out: Path) -> None:
    norm = summary.get("normalizer")
    if summary.get("final_score") is not None:
        print(
            f"final normalized score: {summary['final_score']:.1f} (return {summary['final_return']:.1f}; "
            f"normalizer '{norm}': 0 = {summary['ref_min_score']:.1f}, 100 = {summary['ref_max_score']:.1f})"
        )
        print(f"best normalized score:  {summary['best_score']:.1f} at step {summary['best_step']}")
    elif summary.get("final_return") is not None:
        print(f"final return: {summary['final_return']:.1f} (no reference scores: not normalized)")
    print(f"steps {summary['steps']}, {summary['wall_time_s']:.0f}s; results in {out}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from rlreg.agents.trainer import evaluate_run

    r = evaluate_run(args.run_dir, args.episodes, seed=args.seed)
    score = "n/a" if r["score"] != r["score"] else f"{r['score']:.1f}"
    print(
        f"step {r['step']}: normalized score {score} ({r['normalizer']}), return {r['return_mean']:.1f} "
        f"± {r['return_std']:.1f}, length {r['length_mean']:.0f} (episode seeds {r['seed']}+i)"
    )
    print(json.dumps(r))
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from rlreg.envs.datasets import dataset_status, default_export_path, export_d4rl, make_dataset

    if args.datasets_command == "make":
        if args.out and args.format != "d4rl":
            raise RlregError("--out is for --format d4rl", "add --format d4rl, or drop --out")
        dataset_id = make_dataset(args.name, size=args.size, seed=args.seed, progress=True, force=args.force)
        print(f"made {args.name} as Minari dataset '{dataset_id}'")
        if args.format == "d4rl":
            path = export_d4rl(
                args.name, args.out or default_export_path(args.name), size=args.size, seed=args.seed
            )
            print(f"wrote D4RL-schema HDF5 {path}")
        return 0
    rows = dataset_status()
    print(f"{'name':28s} {'env':16s} {'status':9s} {'size':>9s}  where")
    for r in rows:
        status = r.get("status", "made" if r["made"] else "not made")
        if r["missing"] and not r["made"]:
            status = "needs"
        where = r["path"] or (r["missing"] if r["missing"] else "minari:" + r["minari_id"])
        if r.get("problem"):  # damaged or incomplete: what is wrong and the command that mends it
            where = f"{r['problem']}; fix: {r['fix']}" if r.get("fix") else r["problem"]
        size = "-" if r["size"] is None else str(r["size"])
        print(f"{r['name']:28s} {r['env_id']:16s} {status:9s} {size:>9}  {where}")
    print("\nAlso accepted by --dataset: d4rl:PATH.hdf5 (D4RL files) and minari:ID (local Minari datasets).")
    return 0


def _cmd_agents(args: argparse.Namespace) -> int:
    from rlreg.agents.recipes import load_recipe, recipe_names

    for name in recipe_names():
        r = load_recipe(name)
        regs = ", ".join(r.get("regularizers") or {}) or "none"
        switches = "".join(f" [--set {k}=true]" for k in r.get("switches") or {})
        print(f"{name:12s} agent={r['agent']:5s} regularizers={regs:12s} {r.get('summary', '')}{switches}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from rlreg.threads import configure_runtime

    configure_runtime()  # before torch starts MKL and OpenMP: thread-independent numerics, short spins
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from rlreg.agents.plot_cli import cmd_plot
    from rlreg.agents.policy_cli import cmd_policy
    from rlreg.agents.tables_cli import cmd_report, cmd_reproduce

    handlers = {
        "policy": cmd_policy,
        "reproduce": cmd_reproduce,
        "report": cmd_report,
        "plot": cmd_plot,
        "train": _cmd_train,
        "evaluate": _cmd_evaluate,
        "datasets": _cmd_datasets,
        "agents": _cmd_agents,
    }
    try:
        return handlers[args.command](args)
    except RlregError as e:
        print(f"rlreg: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `rlreg datasets | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("rlreg: interrupted; resume with `rlreg train --resume RUN_DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
