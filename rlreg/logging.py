"""Metric accumulation without host syncs, CSV logs (always) and TensorBoard (optional)."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["MetricAccumulator", "CSVLogger", "TensorBoardLogger", "truncate_csv"]


class MetricAccumulator:
    """Sums 0-d device tensors per key between flushes; ``flush()`` returns per-key means.

    Each key is averaged over the updates that produced it (an actor loss logged every 2nd update
    is averaged over those updates only), so no value is stale. Reading happens only in ``flush``.
    """

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def add(self, metrics: Mapping[str, torch.Tensor]) -> None:
        for k, v in metrics.items():
            if k in self._sums:
                self._sums[k] += v
                self._counts[k] += 1
            else:
                self._sums[k] = v.detach().clone().float()
                self._counts[k] = 1

    def __len__(self) -> int:
        return len(self._sums)

    def state_dict(self) -> dict[str, Any]:
        """The sums and counts of the window so far (a checkpoint inside a logging window)."""
        return {
            "sums": {k: v.detach().cpu().clone() for k, v in self._sums.items()},
            "counts": dict(self._counts),
        }

    def load_state_dict(self, state: Mapping[str, Any], device: torch.device | str = "cpu") -> None:
        """Continue the window :meth:`state_dict` saved, with the sums on the training ``device``."""
        self._sums = {k: v.to(device).clone() for k, v in state["sums"].items()}
        self._counts = {k: int(c) for k, c in state["counts"].items()}

    def flush(self) -> dict[str, float]:
        if not self._sums:
            return {}
        keys = list(self._sums)
        values = torch.stack([self._sums[k] for k in keys]).cpu().tolist()  # one sync for all
        out = {k: v / self._counts[k] for k, v in zip(keys, values)}
        self._sums.clear()
        self._counts.clear()
        return out


class CSVLogger:
    """Appends rows to a CSV file; new keys extend the header (the file is rewritten once)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.fields: list[str] = []
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as f:
                self.fields = next(csv.reader(f), [])

    def write(self, row: Mapping[str, Any]) -> None:
        new = [k for k in row if k not in self.fields]
        if new:
            old_rows = []
            if self.path.exists() and self.fields:
                with self.path.open(newline="") as f:
                    old_rows = list(csv.DictReader(f))
            self.fields += new
            with self.path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fields)
                w.writeheader()
                w.writerows(old_rows)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(v: Any) -> Any:
    if isinstance(v, float) and not math.isnan(v) and not math.isinf(v):
        return repr(v)
    return v


def truncate_csv(path: str | os.PathLike, max_step: int, key: str = "step") -> None:
    """Keep only rows with ``row[key] <= max_step`` (used when resuming from a checkpoint)."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = [r for r in reader if r.get(key) not in (None, "") and int(float(r[key])) <= max_step]
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


class TensorBoardLogger:
    """Scalars to TensorBoard (needs ``pip install 'rlreg[tensorboard]'``)."""

    @staticmethod
    def check_available() -> None:
        """Raise a clear error when the tensorboard package is missing."""
        try:
            import tensorboard  # noqa: F401
        except ImportError as e:
            from rlreg.errors import RlregError

            raise RlregError(
                "TensorBoard logging needs the tensorboard package",
                "pip install 'rlreg[tensorboard]', or drop --tensorboard",
            ) from e

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.check_available()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    def write(self, row: Mapping[str, Any], step: int) -> None:
        for k, v in row.items():
            if isinstance(v, (int, float)) and k != "step":
                self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
