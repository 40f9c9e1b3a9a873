"""The one training loop: steps, logging, evaluation, checkpoints, resume and the progress bar.

Every run, offline or online, of every agent, is the same loop over a data source
(:mod:`rlreg.agents.sources`) and an agent following the protocol of :mod:`rlreg.agents.base`::

    while step < steps:
        n = source.collect(agent, step)            # environment steps (0 work offline), n loop steps
        for event in agent.schedule(step, step + n):
            if event == "update": metrics += agent.update(source.sample())
            else:                 metrics += agent.handle(event)   # e.g. a DQN target copy
        step += n
        log / evaluate / snapshot / checkpoint when due
        on SIGINT / SIGTERM: checkpoint at this step, raise KeyboardInterrupt   (StopRequest)

It never branches on the agent's family or the source's kind. A metrics row holds ``step``,
``time``, ``updates_per_s`` (and ``env_steps_per_s`` where a step is an environment step), the
agent's ``stats()``, the mean of every logged term over the row's steps, and the source's episode
statistics.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlreg.agents.base import UPDATE

from rlreg.checkpoint import rng_state, save_atomic, set_rng_state
from rlreg.errors import RlregError
from rlreg.logging import CSVLogger, MetricAccumulator, TensorBoardLogger, truncate_csv
from rlreg.threads import ThreadGovernor

__all__ = ["TrainingLoop", "CHECKPOINT", "BAR_SECONDS", "CHECKPOINT_VERSION"]

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_VERSION = 2
"""Version 2: the data source's state under ``source`` (version 1 kept the sampling generator and
the replay at the top level)."""
BAR_SECONDS = 1.0
"""The progress bar moves at most this often (and at the last step), whatever ``log_every`` is."""


class StopRequest:
    """SIGINT or SIGTERM while training (Ctrl-C, ``kill``, a scheduler's pre-emption, ``rlreg
    reproduce`` stopping its runs): the loop finishes the step it is in, writes a checkpoint at that
    step and raises :class:`KeyboardInterrupt`, so the run resumes exactly where it stopped rather
    than at its last periodic checkpoint. A second signal more than a second after the first stops
    at once (one Ctrl-C that reaches the run twice, from the terminal and from a parent, counts
    once). Installed only in the main thread (``signal`` allows no other)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.at: float | None = None  # when the first signal came
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self.previous[s] = signal.signal(s, self.handle)
        return self

    def handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self.at is None:
            self.at = now
            print(
                f"rlreg: {signal.Signals(signum).name}: stopping after this step with a checkpoint "
                "(interrupt again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
        elif now - self.at > 1.0:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self.previous.clear()

    @property
    def requested(self) -> bool:
        return self.at is not None


def due(every: int, prev: int, now: int) -> bool:
    """A multiple of ``every`` lies in (prev, now] (``now % every == 0`` for steps of 1)."""
    return bool(every) and now // every > prev // every


class TrainingLoop:
    """Drives one run (see the module docstring); ``run`` is what ``build_run`` returns."""

    def __init__(self, run: Any, out: Path, progress: bool, callback: Callable | None) -> None:
        self.run, self.out, self.progress, self.callback = run, out, progress, callback
        self.tc, self.agent, self.source = run.train_cfg, run.agent, run.source
        self.evals: list[dict[str, float]] = []
        self.wall = 0.0
        self.ckpt_step = 0  # the step of the last checkpoint written
        self.acc = MetricAccumulator()
        self.updates = 0
        self.steps_since_log = 0
        self.bar: Any = None
        self.tb: TensorBoardLogger | None = None
        self._update: Callable[[], dict] = lambda: self.agent.update(self.source.sample())
        if self.tc.cuda_graph:  # sample + update replayed from CUDA graphs (train.cuda_graph)
            self._update = self.source.captured_update(self.agent)

    # ------------------------------------------------------------------ state
    def restore(self, state: dict[str, Any], start: int) -> None:
        """Load a checkpoint's state and cut the logs back to its step."""
        if state.get("version") != CHECKPOINT_VERSION:
            raise RlregError(
                f"the checkpoint has format version {state.get('version')}; this rlreg reads version "
                f"{CHECKPOINT_VERSION}",
                "resume it with the rlreg version that wrote it, or start a new run",
            )
        self.agent.load_state_dict(state["agent"])
        self.source.load_state_dict(state["source"])
        set_rng_state(state["rng"])
        self.evals = list(state["evals"])
        self.wall = float(state.get("wall_time", 0.0))
        window = state.get("log_window")  # the logging window the checkpoint fell inside
        if window is not None:  # rows of a resumed run average the same steps as an uninterrupted run's
            self.acc.load_state_dict(window["metrics"], self.run.device)
            self.updates = int(window["updates"])
            self.steps_since_log = int(window["steps"])
        for name in ("metrics.csv", "eval.csv"):
            truncate_csv(self.out / name, start)
        (self.out / "summary.json").unlink(missing_ok=True)

    def checkpoint(self, step: int) -> None:
        ckpt = {
            "format": "rlreg-checkpoint",
            "version": CHECKPOINT_VERSION,
            "step": step,
            "agent": self.agent.state_dict(),
            "source": self.source.state_dict(),
            "rng": rng_state(),
            "evals": self.evals,
            "wall_time": self.wall + (time.perf_counter() - self.t_start),
            "log_window": {
                "metrics": self.acc.state_dict(),
                "updates": self.updates,
                "steps": self.steps_since_log,
            },
        }
        save_atomic(ckpt, self.out / CHECKPOINT)

    # ------------------------------------------------------------------ outputs
    def flush(self, step: int, dt: float) -> None:
        """One metrics row: the means over the steps since the last row."""
        rate = (lambda n: round(n / dt, 2)) if dt > 0 else (lambda n: float("nan"))
        row: dict[str, Any] = {
            "step": step,
            "time": round(self.wall + time.perf_counter() - self.t_start, 3),
            "updates_per_s": rate(self.updates),
        }
        if self.source.counts == "env_steps":
            row["env_steps_per_s"] = rate(self.steps_since_log)
        row.update(self.agent.stats())
        row.update(self.acc.flush())
        row.update(self.source.pop_stats())
        self.metrics_log.write(row)
        if self.tb:
            self.tb.write(row, step)
        self.updates = self.steps_since_log = 0

    def evaluate(self, step: int) -> None:
        row = {"step": step, **self.run.evaluate()}
        self.evals.append(row)
        self.eval_log.write(row)
        if self.tb:
            self.tb.write({f"eval/{k}": v for k, v in row.items() if k != "step"}, step)
        if self.bar is not None:
            shown = {"ret": f"{row['return_mean']:.1f}"}
            if row["score"] == row["score"]:  # MinAtar and unnormalized runs: return only
                shown = {"score": f"{row['score']:.1f}", **shown}
            self.bar.set_postfix(**shown, refresh=False)

    def snapshot(self, step: int) -> None:
        from rlreg.envs.policies import save_policy

        run, last = self.run, self.evals[-1] if self.evals and self.evals[-1]["step"] == step else None
        record = {
            "run": str(self.out),
            "step": step,
            "seed": run.cfg["seed"],
            "recipe": run.cfg["recipe"],
            "eval_return_mean": last["return_mean"] if last else None,
        }
        save_policy(
            self.out / "snapshots" / f"step_{step:08d}.pt",
            env_id=run.env_id,
            actor=self.agent.policy_network(),
            normalizer=run.normalizer,
            record=record,
        )

    def _open_bar(self, start: int) -> None:
        from rlreg.agents.trainer import intervals
        from tqdm import tqdm

        cfg = self.run.cfg
        print(f"rlreg: {intervals(self.tc, start, self.run.evaluator is not None)}", flush=True)
        self.bar = tqdm(
            total=self.tc.steps,
            initial=start,
            desc=f"{cfg['recipe']} {cfg.get('dataset') or cfg.get('env')}",
            unit="step",
            dynamic_ncols=True,
            mininterval=BAR_SECONDS,
            miniters=1,
        )

    # ------------------------------------------------------------------ the loop
    def iterate(self, step: int) -> int:
        """Collect, then the updates and events that fell due; returns the new step."""
        agent, acc = self.agent, self.acc
        n = self.source.collect(agent, step)
        for event in agent.schedule(step, step + n):
            if event == UPDATE:
                acc.add(self._update())
                self.updates += 1
            else:
                acc.add(agent.handle(event))
        return step + n

    def after_step(self, prev: int, step: int) -> None:
        """Logging, evaluation, snapshots, threads, the bar and checkpoints due at ``step``."""
        tc = self.tc
        self.steps_since_log += step - prev
        is_last = step == tc.steps
        now = time.perf_counter()
        if due(tc.log_every, prev, step) or is_last:
            self.flush(step, now - self.t_log)
            self.t_log = now
        if self.run.evaluator is not None and (due(tc.eval_every, prev, step) or is_last):
            self.evaluate(step)
        if due(tc.snapshot_every, prev, step):
            self.snapshot(step)
        now = time.perf_counter()
        if self.governor is not None:
            self.governor.poll(now)
        if self.bar is not None and (now - self.t_bar >= BAR_SECONDS or is_last):  # by time, not by logging
            self.bar.update(step - self.bar.n)
            self.t_bar = now
        minutes = 60.0 * tc.checkpoint_minutes
        if due(tc.checkpoint_every, prev, step) or is_last or (minutes and now - self.t_ckpt >= minutes):
            self.checkpoint(step)
            self.t_ckpt, self.ckpt_step = time.perf_counter(), step
        if self.callback is not None:
            self.callback(step, self.run)

    def train(self, start: int) -> dict[str, Any]:
        """Run from ``start`` to ``train.steps``; writes summary.json last and returns it."""
        from rlreg.agents.trainer import summarize

        tc = self.tc
        self.metrics_log = CSVLogger(self.out / "metrics.csv")
        self.eval_log = CSVLogger(self.out / "eval.csv")
        self.tb = TensorBoardLogger(self.out / "tb") if tc.tensorboard else None
        if self.progress:
            self._open_bar(start)
        # CPU threads follow the rlreg jobs running on this machine (rlreg/threads.py)
        self.governor = ThreadGovernor(tc.threads) if self.run.device.type == "cpu" else None
        self.t_start = self.t_log = self.t_bar = self.t_ckpt = time.perf_counter()
        step = self.ckpt_step = start
        try:
            with StopRequest() as stop:
                while step < tc.steps:
                    prev, step = step, self.iterate(step)
                    self.after_step(prev, step)
                    if stop.requested and step < tc.steps:  # a signal: resumable from this very step
                        if self.ckpt_step != step:
                            self.checkpoint(step)
                        raise KeyboardInterrupt
        finally:
            self._close()
        self.wall += time.perf_counter() - self.t_start
        summary = summarize(self.run, self.evals, step, self.wall)
        if self.governor is not None:
            g = self.governor
            summary["threads"] = g.threads
            summary["threads_policy"] = "fixed" if g.fixed else ("adaptive" if g.adaptive else "start")
        tmp = self.out / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2))
        os.replace(tmp, self.out / "summary.json")
        return summary

    def _close(self) -> None:
        if self.governor is not None:
            self.governor.close()
        if self.bar is not None:
            self.bar.close()
        if self.tb:
            self.tb.close()
        self.source.close()
