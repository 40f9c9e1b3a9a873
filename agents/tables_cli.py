"""``rlreg reproduce`` and ``rlreg report``: benchmark tables from specs (:mod:`rlreg.agents.tables`,
:mod:`rlreg.agents.report`)."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from rlreg.errors import RlregError

__all__ = ["add_table_parsers", "cmd_reproduce", "cmd_report"]


def add_table_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``reproduce`` and ``report`` subcommands."""
    r = sub.add_parser(
        "reproduce",
        help="train every missing run of a benchmark table spec",
        description="Train every missing cell of a table spec (agents × tasks × seeds): finished runs "
        "are skipped, interrupted ones resume from their checkpoints. SPEC: a shipped name (--list) or "
        "PATH.yaml.",
    )
    r.add_argument("spec", metavar="SPEC", nargs="?")
    r.add_argument("--jobs", type=int, default=1, help="runs at once (each gets cores // jobs torch threads)")
    r.add_argument(
        "--ray", metavar="ADDRESS", help="run each cell as a Ray task (ray.init(address); 'local')"
    )
    r.add_argument("--out", metavar="DIR", help="table folder (default runs/tables/<spec name>)")
    r.add_argument(
        "--dry-run", action="store_true", help="print the grid and its estimated cost; train nothing"
    )
    r.add_argument(
        "--probe-steps", type=int, metavar="N", help="steps of the --dry-run probe per agent (0: none)"
    )
    r.add_argument("--list", action="store_true", help="list the shipped specs")
    p = sub.add_parser(
        "report",
        help="tables and plots of a benchmark table's runs",
        description="Per-cell and aggregate statistics (IQM, bootstrap CIs, probability of improvement, "
        "profiles) of the runs in DIR, in report/.",
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--format", default="md,csv,tex,png", help="comma-separated: md,csv,tex,png (default all)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--out", metavar="FOLDER", help="where the report goes (default DIR/report)")


def _sigterm_as_interrupt() -> Any:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from rlreg.agents.tables import reproduce, spec_names

    if args.list:
        print("\n".join(spec_names()))
        return 0
    if not args.spec:
        raise RlregError("no SPEC given", "name a shipped spec (rlreg reproduce --list) or a PATH.yaml")
    previous = _sigterm_as_interrupt()
    try:
        result = reproduce(
            args.spec,
            out=args.out,
            jobs=args.jobs,
            ray_address=args.ray,
            dry_run=args.dry_run,
            probe_steps=args.probe_steps,
        )
    except KeyboardInterrupt:
        print("rlreg: interrupted; the same command resumes the table", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.dry_run:
        return 0
    for line in result["failed"]:
        print(f"rlreg: failed: {line}", file=sys.stderr)
    print(f"table in {result['out']}; `rlreg report {result['out']}` makes its tables and plots")
    return 1 if result["failed"] else 0


def cmd_report(args: argparse.Namespace) -> int:
    from rlreg.agents.report import report

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    report(args.dir, formats=formats, reps=args.reps, to=args.out)
    return 0
