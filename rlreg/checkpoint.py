"""Atomic checkpoints and the RNG state a run needs to resume exactly."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlreg.errors import RlregError

__all__ = ["save_atomic", "load_checkpoint", "rng_state", "set_rng_state", "seed_everything"]


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path.tmp`` then rename: a reader sees the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_atomic`, with a clear error when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise RlregError(
            f"checkpoint {path} does not exist",
            "pass a run folder that has checkpoint.pt (the run may not have reached its first "
            "checkpoint), or start the run again",
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises several types for truncated/corrupt archives
        raise RlregError(
            f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
            "delete it and start the run again, or restore an intact copy",
        ) from e
    if not isinstance(state, dict) or state.get("format") != "rlreg-checkpoint":
        raise RlregError(f"{path} is not an rlreg checkpoint", "pass the checkpoint.pt of an rlreg run")
    return state


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Global RNG states (Python, NumPy, torch CPU, CUDA when available)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
