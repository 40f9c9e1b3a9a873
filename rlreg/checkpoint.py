"""Atomic checkpoints, safe loading, and the RNG state a run needs to resume exactly.

Checkpoints and policy files are ``torch.save`` archives read back with ``torch.load(...,
weights_only=True)``: only tensors and plain containers (dict, list, tuple, str, numbers, None)
are unpickled, so a crafted file cannot run code on load. NumPy arrays (NumPy's global RNG state)
are stored as ``{"__ndarray__": tensor}`` and turned back into arrays on load, bit for bit.
"""

from __future__ import annotations

import os
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlreg.errors import RlregError

__all__ = [
    "save_atomic",
    "load_checkpoint",
    "safe_load",
    "UnsafeFileError",
    "rng_state",
    "set_rng_state",
    "seed_everything",
]

_NDARRAY = "__ndarray__"


class UnsafeFileError(RlregError):
    """A file holds pickled Python objects beyond tensors and plain containers (refused unread)."""


def _map_tree(obj: Any, leaf: Callable[[Any], Any]) -> Any:
    """``leaf`` applied top-down through dicts, lists and tuples (it may end the descent)."""
    obj = leaf(obj)
    if isinstance(obj, dict):
        return {k: _map_tree(v, leaf) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tree(v, leaf) for v in obj)
    return obj


def _pack_leaf(obj: Any) -> Any:
    """NumPy arrays and scalars as what ``weights_only`` loading accepts."""
    if isinstance(obj, np.ndarray):
        return {_NDARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    return obj.item() if isinstance(obj, np.generic) else obj


def _unpack_leaf(obj: Any) -> Any:
    is_array = isinstance(obj, dict) and len(obj) == 1 and isinstance(obj.get(_NDARRAY), torch.Tensor)
    return obj[_NDARRAY].numpy() if is_array else obj


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path.tmp`` then rename: a reader sees the old file or the new one.

    ``obj`` may hold tensors, plain containers, numbers, strings and NumPy arrays; anything else
    could not be read back by :func:`safe_load` and is refused here, before writing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(_map_tree(obj, _pack_leaf), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def safe_load(path: str | os.PathLike, what: str, fix: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with NumPy arrays restored; one clear error otherwise.

    ``what`` names the file in messages (e.g. ``"checkpoint"``), ``fix`` says how to get a good one.
    A file that would unpickle anything but tensors and plain containers raises
    :class:`UnsafeFileError` and nothing in it runs.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # torch names the refused global (e.g. posix.system)
            raise UnsafeFileError(
                f"{what} {path} holds pickled Python objects, not only tensors and plain data; rlreg "
                "refuses to load it because unpickling it could run arbitrary code",
                f"use a {what} written by rlreg from a source you trust; {fix}",
            ) from e
        raise _corrupt(path, what, fix, e) from e
    except Exception as e:  # torch raises several types for truncated/corrupt archives
        raise _corrupt(path, what, fix, e) from e
    return _map_tree(state, _unpack_leaf)


def _corrupt(path: Path, what: str, fix: str, e: Exception) -> RlregError:
    first = (str(e).splitlines() or [""])[0][:120]
    return RlregError(f"{what} {path} is truncated or corrupt ({type(e).__name__}: {first})", fix)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_atomic`, with a clear error when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise RlregError(
            f"checkpoint {path} does not exist",
            "pass a run folder that has checkpoint.pt (the run may not have reached its first "
            "checkpoint), or start the run again",
        )
    state = safe_load(
        path, "checkpoint", "delete it and start the run again, or restore an intact copy", map_location
    )
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
    """Restore the states :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
