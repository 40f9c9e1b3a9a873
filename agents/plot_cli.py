"""``rlreg plot``: draw metrics of training runs (eval scores, losses, regularizer terms) to a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlreg.errors import RlregError, check

__all__ = ["add_plot_parser", "cmd_plot"]

DEFAULT_METRIC = "eval/score"
_LOGS = ("eval.csv", "metrics.csv")


def add_plot_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``rlreg plot RUN_DIR... [--metric M]... [--out PNG] [--label L]...``."""
    p = sub.add_parser(
        "plot",
        help="plot metrics of training runs to a PNG",
        description="Plot metrics of one or more run folders: one panel per --metric, one line per run. "
        "A RUN_DIR that holds run folders (e.g. a sweep) stands for all of them, sorted.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders, or folders of run folders")
    p.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        metavar="M",
        help=f"a metric to plot (repeat for more panels; default {DEFAULT_METRIC}): eval/score "
        "(normalized score, raw return where the task has no reference scores), eval/return_mean, "
        "eval/length_mean, or a metrics.csv column such as train/critic_loss or reg/beer/srank",
    )
    p.add_argument(
        "--out",
        metavar="PNG",
        help="image to write (default RUN_DIR/plot.png for one run, else plot.png here)",
    )
    p.add_argument(
        "--label",
        dest="labels",
        action="append",
        metavar="L",
        help="legend label of a run (repeat once per run, in order; default '<recipe> s<seed>')",
    )


def _is_run(path: Path) -> bool:
    return any((path / name).is_file() for name in _LOGS)


def _expand_runs(args: list[str]) -> list[Path]:
    """Each RUN_DIR as itself, or (a folder of run folders) as its run subfolders, sorted."""
    runs: list[Path] = []
    for arg in args:
        path = Path(arg)
        check(path.is_dir(), f"run folder {path} does not exist", "pass a folder `rlreg train` created")
        if _is_run(path):
            runs.append(path)
            continue
        subs = sorted(d for d in path.iterdir() if d.is_dir() and _is_run(d))
        if not subs:
            raise RlregError(
                f"{path} is neither a run folder nor a folder of run folders (no eval.csv or metrics.csv)",
                "pass a folder `rlreg train` created, or the folder that holds such folders",
            )
        runs += subs
    return runs


def cmd_plot(args: argparse.Namespace) -> int:
    """Run ``rlreg plot``: write the plot and print ``wrote PATH``."""
    from rlreg.plots import plot_runs

    runs = _expand_runs(args.run_dirs)
    labels = args.labels
    if labels is not None:
        named = f" ({', '.join(str(r) for r in runs)})" if len(runs) <= 6 else ""
        check(
            len(labels) == len(runs),
            f"{len(labels)} --label values for {len(runs)} runs{named}",
            "pass --label once per run, in the order of the runs, or drop --label",
        )
    metrics = args.metrics or [DEFAULT_METRIC]
    out = Path(args.out) if args.out else (runs[0] / "plot.png" if len(runs) == 1 else Path("plot.png"))
    path = plot_runs(runs, metrics, out, labels=labels)
    print(f"wrote {path}")
    return 0
