"""Train several recipes × seeds on one dataset or env, resumably, and print the score table.

A thin wrapper: training is ``rlreg reproduce``'s (:mod:`rlreg.agents.tables`; the flags become a
table spec of one task, written to OUT/spec.yaml), and ``rlreg report OUT`` gives that table's full
report (bootstrap CIs, plots). What stays here is the text report, which reads any folder of runs
(also SB3's, from ``scripts/sb3_table.py``):

    python scripts/seed_table.py --dataset hopper-medium-replay-v0 --agents td3bc prdc a2pr \\
        --seeds 0 1 2 --steps 50000 --out runs/table-hmr
    python scripts/seed_table.py --env minatar:breakout --agents dqn mdqn --seeds 0 1 \\
        --steps 500000 --eval-every 50000 --eval-episodes 50 --out runs/table-breakout

Each run lives in OUT/<agent>-s<seed>; a finished run (its last evaluation at --steps) is kept, an
interrupted one is resumed from its checkpoint, so rerunning the same command continues the table.
Runs are done seed-major (every agent for seed 0, then seed 1, ...) so a partial table is already a
side-by-side comparison. ``--report`` prints the table without training. ``--jobs N`` trains N
runs at once, each new run with ``cores // N`` torch threads (``RLREG_JOBS``, rlreg/threads.py):
on a 2-core machine, ``--jobs 2`` gives each run one thread.

Reported per agent (the normalized score where the task has one, else the raw return, e.g.
MinAtar): the final evaluation's score (D4RL / CORL protocol: the last
evaluation, mean over its episodes) as mean ± std over seeds, the mean of the last three
evaluations, and the best evaluation, with updates/s from the run's own metrics. With two or
more agents, Welch's t of each agent against the first (over seeds; |t| > 2 is the usual bar).
``--curves`` also prints the learning curves: every run's score per evaluation, and per agent the
mean ± std over seeds per evaluation. ``--extra COL ...`` adds such curves for other columns: of
eval.csv (``q_error``, ``q_bias``) or of the metrics logged at the evaluation steps
(``reg/beer/srank``, ``reg/beer/cos``). An ``--agents`` entry ``LABEL=RECIPE,KEY=VALUE,...`` trains
a recipe with settings of its own under its own label (``ddpg=beer,beer.beta=0``).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path
from typing import Any


def read_evals(run: Path) -> list[tuple[int, float]]:
    path = run / "eval.csv"
    if not path.exists():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        score = float(r["score"])
        out.append((int(r["step"]), score if score == score else float(r["return_mean"])))  # nan: raw return
    return out


def updates_per_s(run: Path) -> float | None:
    path = run / "metrics.csv"
    if not path.exists():
        return None
    with path.open() as f:
        rates = [float(r["updates_per_s"]) for r in csv.DictReader(f) if r.get("updates_per_s")]
    return statistics.median(rates) if rates else None


def parse_agent(spec: str) -> tuple[str, str, list[str]]:
    """``(label, recipe, sets)`` of an ``--agents`` entry: ``RECIPE`` or ``LABEL=RECIPE,KEY=VALUE,...``
    (e.g. ``ddpg=beer,beer.beta=0``: the BEER recipe with its penalty off, reported as ``ddpg``)."""
    head, *sets = spec.split(",")
    label, _, recipe = head.partition("=")
    return label, recipe or label, sets


def column_at_evals(run: Path, column: str) -> dict[int, float]:
    """``column`` per evaluation step: from eval.csv (e.g. ``q_error``) or, for a training metric
    (e.g. ``reg/beer/srank``), the metrics row logged at that step (non-empty values only)."""
    for name in ("eval.csv", "metrics.csv"):
        path = run / name
        if not path.exists():
            continue
        with path.open() as f:
            rows = list(csv.DictReader(f))
        if rows and column in rows[0]:
            return {int(r["step"]): float(r[column]) for r in rows if r.get(column) not in (None, "")}
    return {}


def print_extras(args: argparse.Namespace, labels: list[str], finished: dict) -> None:
    """``--extra`` columns: at the final evaluation (mean ± std over seeds), and per evaluation."""
    for column in args.extra or []:
        values = {
            a: {seed: column_at_evals(args.out / f"{a}-s{seed}", column) for seed in finished[a]}
            for a in labels
        }
        steps = sorted({s for runs in finished.values() for evals in runs.values() for s, _ in evals})
        head = " | ".join(f"{s // 1000}k" if s % 1000 == 0 else str(s) for s in steps)
        print(f"\n{column} (mean ± std over seeds, NaN left out)\n")
        print(f"| agent | {head} |\n" + "|---" * (len(steps) + 1) + "|")
        for a in labels:
            cells = []
            for step in steps:
                got = [v[step] for v in values[a].values() if step in v and v[step] == v[step]]
                cells.append(fmt(got, 1 if abs(statistics.mean(got or [0])) >= 10 else 3))
            print(f"| {a} | {' | '.join(cells)} |")


def table_spec(args: argparse.Namespace) -> Any:
    """The ``rlreg reproduce`` table of these flags: one task, so runs live in OUT/<agent>-s<seed>."""
    from rlreg.agents.tables import spec_from_dict

    agents = {}
    for entry in args.agents:
        label, recipe, sets = parse_agent(entry)
        agents[label] = {"recipe": recipe, "set": dict(kv.split("=", 1) for kv in sets)}
    raw = {
        "agents": agents,
        "envs" if args.env else "datasets": [args.env or args.dataset],
        "seeds": list(args.seeds),
        "steps": args.steps,
        "eval": {"every": args.eval_every, "episodes": args.eval_episodes},
        "set": {
            "train.checkpoint_every": args.checkpoint_every,
            **dict(kv.split("=", 1) for kv in args.set or []),
        },
    }
    return spec_from_dict(raw, f"seed-table-{args.out.name}")


def fmt(values: list[float], digits: int = 1) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def welch_t(a: list[float], b: list[float]) -> float | None:
    """Welch's t of mean(b) - mean(a) (None with fewer than 2 values on a side or no spread)."""
    if len(a) < 2 or len(b) < 2:
        return None
    se2 = statistics.variance(a) / len(a) + statistics.variance(b) / len(b)
    return (statistics.mean(b) - statistics.mean(a)) / se2**0.5 if se2 > 0 else None


def report(args: argparse.Namespace) -> None:
    print(f"\n{args.env or args.dataset}, {args.steps} steps, seeds {' '.join(map(str, args.seeds))}\n")
    finished: dict[str, dict[int, list[tuple[int, float]]]] = {}  # agent -> seed -> evaluations
    summary: dict[str, dict[str, list[float]]] = {}
    cols = ("agent", "final score", "mean of last 3 evals", "best eval", "mean of all evals", "seeds done")
    print(f"| {' | '.join(cols)} | updates/s |\n" + "|---" * (len(cols) + 1) + "|")
    labels = [parse_agent(a)[0] for a in args.agents]
    for agent in labels:
        runs = finished[agent] = {}
        stats: dict[str, list[float]] = {"final": [], "last 3": [], "best": [], "all evals": []}
        rates = []
        for seed in args.seeds:
            run = args.out / f"{agent}-s{seed}"
            # a run trained past --steps (a longer budget in the same folder) counts up to --steps
            evals = [e for e in read_evals(run) if e[0] <= args.steps]
            if not evals or evals[-1][0] < args.steps:
                continue
            runs[seed] = evals
            scores = [s for _, s in evals]
            stats["final"].append(scores[-1])
            stats["last 3"].append(statistics.mean(scores[-3:]))
            stats["best"].append(max(scores))
            stats["all evals"].append(statistics.mean(scores))
            rate = updates_per_s(run)
            if rate is not None:
                rates.append(rate)
        summary[agent] = stats
        rate = f"{statistics.median(rates):.0f}" if rates else "—"
        cells = " | ".join(fmt(stats[k]) for k in ("final", "last 3", "best", "all evals"))
        print(f"| {agent} | {cells} | {len(runs)}/{len(args.seeds)} | {rate} |")
    first = labels[0]
    for agent in labels[1:]:
        ts = {k: welch_t(summary[first][k], summary[agent][k]) for k in ("final", "last 3", "all evals")}
        shown = ", ".join(f"{k} {'—' if t is None else f'{t:+.1f}'}" for k, t in ts.items())
        print(f"\nWelch t, {agent} − {first} (over seeds): {shown}")
    if args.curves:
        print_curves(finished)
    print_extras(args, labels, finished)


def print_curves(finished: dict[str, dict[int, list[tuple[int, float]]]]) -> None:
    """Every finished run's score per evaluation, then per agent the mean ± std over seeds."""
    curves = {agent: {seed: dict(evals) for seed, evals in runs.items()} for agent, runs in finished.items()}
    steps = sorted({step for runs in curves.values() for curve in runs.values() for step in curve})
    if not steps:
        return
    head = " | ".join(f"{s // 1000}k" if s % 1000 == 0 else str(s) for s in steps)
    rule = "|---" * (len(steps) + 1) + "|"
    print(f"\n| run | {head} |\n{rule}")
    for agent, runs in curves.items():
        for seed, curve in runs.items():
            cells = " | ".join(f"{curve[s]:.1f}" if s in curve else "—" for s in steps)
            print(f"| {agent} seed {seed} | {cells} |")
    print(f"\n| agent (mean ± std over seeds) | {head} |\n{rule}")
    for agent, runs in curves.items():
        cells = " | ".join(fmt([curve[s] for curve in runs.values() if s in curve]) for s in steps)
        print(f"| {agent} | {cells} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="hopper-medium-replay-v0")
    p.add_argument("--env", help="train online on this env instead (e.g. minatar:breakout)")
    p.add_argument("--agents", nargs="+", default=["td3bc", "prdc", "a2pr"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--eval-every", type=int, default=5_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--set", action="append", help="KEY=VALUE passed to every new run")
    p.add_argument(
        "--checkpoint-every", type=int, default=5000, help="checkpoint interval of new runs (resume point)"
    )
    p.add_argument("--out", type=Path, default=Path("runs/table"))
    p.add_argument("--report", action="store_true", help="only print the table")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained at once (default 1); each new run gets cores // jobs torch threads",
    )
    p.add_argument("--curves", action="store_true", help="also print the per-evaluation learning curves")
    p.add_argument(
        "--extra",
        nargs="+",
        help="also report these eval.csv or metrics.csv columns per evaluation (e.g. q_error reg/beer/srank)",
    )
    args = p.parse_args()
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    if not args.report:  # training is rlreg reproduce's (one runner): resumable, seed-major, --jobs
        from rlreg.agents.tables import reproduce

        result = reproduce(table_spec(args), out=args.out, jobs=args.jobs)
        if result["failed"]:
            raise SystemExit("failed: " + "; ".join(result["failed"]))
    report(args)


if __name__ == "__main__":
    main()
