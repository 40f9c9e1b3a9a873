"""CPU threads for training runs that may share a machine with other runs.

Measured here (2-core machine, TD3+BC; ``scripts/bench_threads.py``, ``docs/benchmarks.md``): with
torch's defaults (one thread per core, GNU OpenMP spinning up to 300k iterations at each barrier)
two concurrent runs each ran at about a fifth of one alone, and four at a few percent: the spinning
threads of one process hold the cores that another process's threads wait for. rlreg's answer:

* **Results that do not depend on the thread count.** The ``rlreg`` command runs MKL in strict
  conditional-numerical-reproducibility mode (``MKL_CBWR=AUTO,STRICT``: matrix products give the
  same bits for any thread count, at a cost of a few percent), checked for every recipe by
  comparing runs at 1 and 2 threads. So the thread count can follow the load without changing a
  single number, and a resumed or repeated run is exact whatever else runs beside it.
* **Threads follow the jobs** (``train.threads=0``): ``usable cores // jobs``, where usable cores
  are the ones this process may run on (``os.sched_getaffinity``) and jobs is the larger of
  ``$RLREG_JOBS`` (set by runners that start several jobs) and the rlreg runs training on this
  machine now (each holds a lock file in :func:`jobs_dir`). Re-read every few seconds by
  :class:`ThreadGovernor`; where the numerics are not thread-independent (torch was imported
  before rlreg could set ``MKL_CBWR``) the count is fixed when the run starts.
* **Short spinning** (``GOMP_SPINCOUNT=1000``; libgomp's default is 300000): an idle OpenMP thread
  soon sleeps, so cores shared for a moment (another run starting, other programs) slow a run
  down instead of stalling it. At 1000 a run alone loses nothing measurable.

* **Large pages for large tensors** (``THP_MEM_ALLOC_ENABLE=1``, PyTorch's own switch: CPU
  allocations of 2 MB or more are 2 MB-aligned and marked with ``madvise`` as transparent huge pages).
  Without it, every large activation (glibc maps blocks above 32 MB afresh each time) is
  paid for in 4 kB page faults: a fresh 52 MB tensor cost 31 ms to zero here against 3 ms reused
  and 6 ms with the switch, and PPO on MinAtar (minibatches of 4096 images) trains 1.9× faster on one thread
  (``scripts/bench_ppo.py``). Small-batch agents (TD3, DQN) allocate below 2 MB and are unaffected.

These variables are set by :func:`configure_runtime` only before torch is imported and never over
a value the user set. The ``rlreg`` command calls it first thing; in a notebook, call it before
``import torch`` to get the same behaviour.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

__all__ = [
    "cpu_model",
    "usable_cores",
    "jobs_from_env",
    "jobs_dir",
    "running_jobs",
    "default_threads",
    "configure_runtime",
    "thread_independent",
    "ThreadGovernor",
    "SPINCOUNT",
    "CBWR",
    "THP",
]

SPINCOUNT = "1000"
"""``GOMP_SPINCOUNT`` rlreg sets (measured: 1000 keeps a lone run's speed; see module docstring)."""
CBWR = "AUTO,STRICT"
"""``MKL_CBWR`` rlreg sets: bitwise results independent of the thread count."""
THP = "1"
"""``THP_MEM_ALLOC_ENABLE`` rlreg sets: large CPU tensors on transparent huge pages (module docstring)."""

_state = {"runtime_set": False}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere), for the machine
    line of benchmark scripts."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


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


def jobs_dir() -> Path:
    """Where training runs on this machine register (``$RLREG_JOBS_DIR``, default a per-user temp folder)."""
    default = Path(tempfile.gettempdir()) / f"rlreg-jobs-{os.getuid() if hasattr(os, 'getuid') else 0}"
    return Path(os.environ.get("RLREG_JOBS_DIR") or default)


def running_jobs(folder: Path | None = None) -> int:
    """Training runs registered in ``folder`` whose process is alive (stale entries are removed)."""
    from rlreg.locking import try_lock_file

    folder = folder or jobs_dir()
    live = 0
    try:
        entries = list(folder.glob("*.job"))
    except OSError:
        return 0
    for entry in entries:
        held = try_lock_file(entry)
        if held is None:  # locked: its process is alive
            live += 1
        else:  # nobody holds it: the run ended without cleaning up (killed)
            held.release()
            entry.unlink(missing_ok=True)
    return live


def default_threads(jobs: int | None = None) -> int:
    """Torch intra-op threads for one of ``jobs`` concurrent runs: ``max(1, usable cores // jobs)``."""
    return max(1, usable_cores() // (jobs if jobs is not None else jobs_from_env()))


def configure_runtime() -> bool:
    """Set ``MKL_CBWR``, ``GOMP_SPINCOUNT`` and ``THP_MEM_ALLOC_ENABLE`` (module docstring) unless
    the user set them.

    Only before torch is imported (they are read when its libraries start); returns whether the
    thread-independent numerics are in effect for this process.
    """
    if "torch" in sys.modules:
        return _state["runtime_set"]
    if not any(v in os.environ for v in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
        os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    if "MKL_CBWR" not in os.environ:
        os.environ["MKL_CBWR"] = CBWR
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", THP)
    _state["runtime_set"] = os.environ["MKL_CBWR"].upper().replace(" ", "") == CBWR
    return _state["runtime_set"]


def thread_independent() -> bool:
    """Whether this process's numerics were set up (before torch) to ignore the thread count."""
    return _state["runtime_set"]


class ThreadGovernor:
    """Keeps torch's CPU threads at ``usable cores // jobs`` while a run trains.

    ``fixed`` (``train.threads`` > 0) pins the count. Otherwise the run registers in
    :func:`jobs_dir` and, when numerics are thread-independent, :meth:`poll` re-counts the running
    jobs every ``interval`` seconds and adapts; else the count chosen at the start stays.
    """

    def __init__(self, fixed: int = 0, interval: float = 5.0) -> None:
        import torch

        self._torch = torch
        self.fixed = int(fixed)
        self.interval = float(interval)
        self.adaptive = not self.fixed and thread_independent()
        self._entry = None
        if not self.fixed:
            self._register()
        self._last = time.perf_counter()
        self.threads = self.fixed or self._wanted()
        torch.set_num_threads(self.threads)

    def _register(self) -> None:
        from rlreg.locking import try_lock_file

        folder = jobs_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._entry = try_lock_file(folder / f"{os.getpid()}-{id(self)}.job")
        except OSError:  # no shared temp folder: count only $RLREG_JOBS
            self._entry = None

    def _wanted(self) -> int:
        return default_threads(max(jobs_from_env(), running_jobs() if self._entry is not None else 1))

    def poll(self, now: float | None = None) -> int:
        """Adapt the thread count if ``interval`` has passed; returns the count in effect."""
        if not self.adaptive:
            return self.threads
        now = time.perf_counter() if now is None else now
        if now - self._last >= self.interval:
            self._last = now
            wanted = self._wanted()
            if wanted != self.threads:
                self.threads = wanted
                self._torch.set_num_threads(wanted)
        return self.threads

    def close(self) -> None:
        """Leave the registry (the OS also drops the entry's lock if the process dies)."""
        if self._entry is not None:
            entry, self._entry = self._entry, None
            entry.release()
            entry.path.unlink(missing_ok=True)
