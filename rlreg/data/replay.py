"""Deprecated: the discrete-action replay is now a :class:`~rlreg.data.transitions.TransitionStore`.

``DiscreteReplay(capacity, obs_shape, device, obs_dtype)`` returns a store with separate columns:
observations ``(capacity, *obs_shape)`` kept in ``obs_dtype`` (``uint8`` by default: MinAtar
observations are 0/1 maps), int64 actions, float32 rewards and terminals. Its ``sample`` gives what
this class gave: float32 observations ``(B, *obs_shape)``, int64 actions ``(B,)``, float32 rewards,
float32 next observations and ``dones`` = terminated as float ``(B,)``, plus the sampled row
indices, from one ``randint`` (same generator use, same values). ``terminated`` is stored, not
``terminated or truncated``: a transition cut by a time limit still bootstraps from its next
observation (the true final observation of the episode, which the batched environment returns
separately). Pass ``timeouts=truncated`` to ``add`` so that such an episode ends there.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from rlreg.data.transitions import TransitionStore
from rlreg.errors import check

__all__ = ["DiscreteReplay"]


def DiscreteReplay(  # the old class name, kept for its callers
    capacity: int,
    obs_shape: Sequence[int],
    device: torch.device | str = "cpu",
    obs_dtype: torch.dtype = torch.uint8,
    *,
    num_actions: int | None = None,
    num_envs: int = 1,
) -> TransitionStore:
    """Deprecated factory: ``TransitionStore(capacity, obs_shape=obs_shape, discrete=True,
    num_actions=num_actions, obs_dtype=obs_dtype, num_envs=num_envs, device=device)``.

    ``num_envs``: how many environments each ``add`` interleaves (row j from environment
    j % num_envs), so that episode ids follow each environment's episodes."""
    warnings.warn(
        "DiscreteReplay is deprecated: use TransitionStore(capacity, obs_shape=..., num_actions=..., "
        "obs_dtype=torch.uint8, num_envs=...)",
        DeprecationWarning,
        stacklevel=2,
    )
    check(
        isinstance(capacity, int) and capacity > 0,
        f"replay capacity must be a positive integer, got {capacity!r}",
        "set train.replay_size to e.g. 100000",
    )
    return TransitionStore(
        capacity,
        obs_shape=obs_shape,
        device=device,
        discrete=True,
        num_actions=num_actions,
        obs_dtype=obs_dtype,
        num_envs=num_envs,
    )
