"""The notebook-level Python API: ``rlreg.train(...)`` and ``rlreg.load_run(dir)``.

The ``rlreg`` command line does the same work; this is for users who live in notebooks (the
d3rlpy ``fit`` / SB3 ``learn``/``predict`` level)::

    import rlreg

    run = rlreg.train("td3bc", dataset="pendulum-medium-v0", steps=5000)
    run.summary["final_score"]          # normalized score of the last evaluation
    run.metrics["train/critic_loss"]    # a column of metrics.csv as a NumPy array
    run.evaluate(episodes=20)           # fresh episodes of the final checkpoint
    run.predict(obs)                    # deterministic actions for a batch of raw observations
    same = rlreg.load_run(run.dir)      # any run folder, e.g. one the CLI made
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlreg.errors import RlregError

__all__ = ["train", "load_run", "TrainedRun", "Table"]


class Table:
    """A CSV log as columns: ``table["step"]`` is a float array; ``to_pandas()`` when pandas is there."""

    def __init__(self, rows: Sequence[Mapping[str, str]], columns: Sequence[str]) -> None:
        self.rows = [dict(r) for r in rows]
        self.columns = list(columns)

    @classmethod
    def read(cls, path: Path) -> Table:
        """The rows of a CSV file written by the training loop (empty when the file is missing)."""
        if not path.exists():
            return cls([], [])
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            return cls(list(reader), reader.fieldnames or [])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self.columns:
            raise KeyError(f"no column {column!r}; columns: {', '.join(self.columns)}")
        return np.array([float(r[column]) if r.get(column) not in (None, "") else np.nan for r in self.rows])

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` of the numeric columns (needs pandas)."""
        import pandas as pd

        return pd.DataFrame({c: self[c] for c in self.columns})

    def __repr__(self) -> str:
        return f"Table({len(self)} rows: {', '.join(self.columns)})"


class TrainedRun:
    """A run folder: its config, summary, logs, and the final checkpoint's policy."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        from rlreg.agents.trainer import read_run_config

        self.dir = Path(run_dir)
        self.config = read_run_config(self.dir)
        self._run: Any = None

    @property
    def summary(self) -> dict[str, Any]:
        """``summary.json`` (final and best scores, normalizer, speed); empty while unfinished."""
        path = self.dir / "summary.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def metrics(self) -> Table:
        """``metrics.csv``: every logged term per ``log_every`` steps."""
        return Table.read(self.dir / "metrics.csv")

    @property
    def evals(self) -> Table:
        """``eval.csv``: return, length and normalized score per evaluation."""
        return Table.read(self.dir / "eval.csv")

    def evaluate(self, episodes: int | None = None, seed: int | None = None) -> dict[str, float]:
        """Score the latest checkpoint on fresh episodes (``seed``: see ``rlreg evaluate --seed``)."""
        from rlreg.agents.trainer import evaluate_run

        return evaluate_run(self.dir, episodes, seed=seed)

    def predict(self, observations: Any) -> np.ndarray:
        """The final checkpoint's deterministic (greedy) actions for a batch of raw observations."""
        if self._run is None:
            from rlreg.agents.trainer import CHECKPOINT, build_run

            from rlreg.checkpoint import load_checkpoint

            state = load_checkpoint(self.dir / CHECKPOINT)
            self._run = build_run(self.config)
            self._run.agent.load_state_dict(state["agent"])
        if self._run.minatar:  # MinAtar: tensors of (N, C, H, W) frames
            import torch

            obs = torch.as_tensor(np.asarray(observations), dtype=torch.float32, device=self._run.device)
            return self._run.agent.act(obs, "greedy").cpu().numpy()
        return np.asarray(self._run.policy_fn()(np.asarray(observations, np.float32)))

    def __repr__(self) -> str:
        return f"TrainedRun({str(self.dir)!r}, recipe={self.config['recipe']!r})"


def train(
    recipe: str,
    dataset: str | None = None,
    *,
    env: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
    out: str | os.PathLike | None = None,
    settings: Mapping[str, Any] | None = None,
    add_regularizers: Iterable[str] = (),
    progress: bool = True,
) -> TrainedRun:
    """Train recipe ``recipe`` (``rlreg agents`` lists them) exactly as ``rlreg train`` does.

    ``settings`` are ``--set`` values (``{"agent.alpha": 3, "train.eval_every": 1000}``); ``out`` is
    the run folder (default ``runs/<recipe>-<data>-s<seed>-<UTC time>``). Returns the finished run.
    """
    from rlreg.agents.recipes import resolve_config
    from rlreg.agents.trainer import new_run_dir
    from rlreg.agents.trainer import train as train_loop

    if dataset is None and env is None:
        raise RlregError("no dataset (offline) or env (online) given", "pass dataset=SPEC or env=ENV_ID")
    sets = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (settings or {}).items()}
    if steps is not None:
        sets["train.steps"] = str(steps)
    cfg = resolve_config(
        recipe, dataset, env=env, seed=seed, device=device, sets=sets, add_regularizers=list(add_regularizers)
    )
    folder = Path(out) if out is not None else new_run_dir(cfg)
    train_loop(cfg, folder, progress=progress, announce=progress)
    return TrainedRun(folder)


def load_run(run_dir: str | os.PathLike) -> TrainedRun:
    """A run folder made by :func:`train` or ``rlreg train`` (one clear error if it is not one)."""
    return TrainedRun(run_dir)
