"""CPU threads for training runs that may share a machine with other jobs.

Measured here (2-core machine, TD3+BC, ``docs/benchmarks.md``): with torch's defaults (one thread
per core, GNU OpenMP spinning up to 300k iterations at each barrier) two concurrent runs each ran
at about a fifth of one alone and four at a few percent, because spinning threads of one process
hold the cores another process's threads wait for. rlreg's defaults:

* **threads** (``train.threads=0``): ``usable cores // jobs``, where usable cores are the ones this
  process may run on (``os.sched_getaffinity``) and ``jobs`` is ``$RLREG_JOBS`` (set by runners
  that start several jobs; default 1). Resolved once when a run starts and written into its
  ``config.json``, so a resumed run uses the same count (results depend on the thread count).
* **OpenMP waiting**: threads spin briefly, then sleep (``GOMP_SPINCOUNT``), so oversubscribed
  cores degrade gracefully instead of collapsing. Only in effect when set before torch starts
  OpenMP (the ``rlreg`` command does it first thing), and never over a value the user set.
"""

from __future__ import annotations

import os

__all__ = ["usable_cores", "jobs_from_env", "default_threads", "configure_openmp", "SPINCOUNT"]

SPINCOUNT = "10000"
"""``GOMP_SPINCOUNT`` rlreg sets (libgomp's default is 300000): chosen by measurement, see
``scripts/bench_threads.py``."""

_OPENMP_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity / cgroup cpuset where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def jobs_from_env() -> int:
    """``$RLREG_JOBS``: how many jobs the runner that started this process runs at once (default 1)."""
    raw = os.environ.get("RLREG_JOBS", "").strip()
    if not raw:
        return 1
    try:
        jobs = int(raw)
    except ValueError:
        jobs = 0
    if jobs < 1:
        from rlreg.errors import RlregError

        raise RlregError(f"RLREG_JOBS={raw!r} is not a positive integer", "unset it, or set it to e.g. 2")
    return jobs


def default_threads(jobs: int | None = None) -> int:
    """Torch intra-op threads for one of ``jobs`` concurrent runs: ``max(1, usable cores // jobs)``."""
    return max(1, usable_cores() // (jobs if jobs is not None else jobs_from_env()))


def configure_openmp() -> bool:
    """Set rlreg's OpenMP waiting policy unless the user set one; True when it was set here.

    Takes effect only if torch has not started its OpenMP runtime yet (call it before importing
    torch); later calls change nothing.
    """
    if any(v in os.environ for v in _OPENMP_VARS):
        return False
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    return True
