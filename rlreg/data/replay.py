"""Device-resident replay buffer for discrete-action agents with image-like observations (MinAtar).

Each row holds ``(obs, action, reward, next_obs, terminated)``. Observations are stored in a compact
dtype (``uint8`` by default: MinAtar observations are 0/1 maps) and converted to float32 only for
the sampled batch. ``terminated`` is stored, not ``terminated or truncated``: a transition cut by a
time limit still bootstraps from its next observation (the true final observation of the episode,
which the batched environment returns separately).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlreg.data.transitions import TensorBatch
from rlreg.errors import RlregError, check

__all__ = ["DiscreteReplay"]


class DiscreteReplay:
    """Ring buffer of discrete-action transitions on one device; uniform sampling with replacement.

    ``sample`` returns a :class:`~rlreg.data.transitions.TensorBatch` with float32 observations
    ``(B, *obs_shape)``, int64 actions ``(B,)``, float32 rewards ``(B,)``, float32 next observations
    and ``dones`` = terminated as float ``(B,)``, plus the sampled row indices. One ``randint`` and
    five ``index_select`` calls, no host synchronisation.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        device: torch.device | str = "cpu",
        obs_dtype: torch.dtype = torch.uint8,
    ) -> None:
        check(
            isinstance(capacity, int) and capacity > 0,
            f"replay capacity must be a positive integer, got {capacity!r}",
            "set train.replay_size to e.g. 100000",
        )
        self.capacity = capacity
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.device = torch.device(device)
        self.obs = torch.zeros((capacity, *self.obs_shape), dtype=obs_dtype, device=self.device)
        self.next_obs = torch.zeros_like(self.obs)
        self.actions = torch.zeros(capacity, dtype=torch.int64, device=self.device)
        self.rewards = torch.zeros(capacity, dtype=torch.float32, device=self.device)
        self.terminated = torch.zeros(capacity, dtype=torch.float32, device=self.device)
        self.size = 0
        self.pos = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
    ) -> None:
        """Append ``n`` transitions (tensors with a leading batch dimension; ring buffer once full)."""
        n = int(actions.shape[0])
        if tuple(obs.shape) != (n, *self.obs_shape) or tuple(next_obs.shape) != (n, *self.obs_shape):
            raise RlregError(
                f"replay rows have observation shape {tuple(obs.shape)} / {tuple(next_obs.shape)}, "
                f"expected ({n}, {', '.join(map(str, self.obs_shape))})",
                "add observations of the shape the buffer was created with",
            )
        check(
            n <= self.capacity, f"adding {n} rows to a replay of capacity {self.capacity}", "add fewer rows"
        )
        idx = (torch.arange(n, device=self.device) + self.pos) % self.capacity
        self.obs[idx] = obs.to(self.device, self.obs.dtype)
        self.next_obs[idx] = next_obs.to(self.device, self.obs.dtype)
        self.actions[idx] = actions.to(self.device, torch.int64)
        self.rewards[idx] = rewards.to(self.device, torch.float32)
        self.terminated[idx] = terminated.to(self.device, torch.float32)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> TensorBatch:
        """Uniform sample with replacement of ``batch_size`` transitions."""
        check(self.size > 0, "sampling from an empty replay buffer", "add transitions before sampling")
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return TensorBatch(
            self.obs.index_select(0, idx).float(),
            self.actions.index_select(0, idx),
            self.rewards.index_select(0, idx),
            self.next_obs.index_select(0, idx).float(),
            self.terminated.index_select(0, idx),
            idx,
        )

    def state_dict(self) -> dict:
        n = self.size
        return {
            "obs": self.obs[:n].cpu(),
            "next_obs": self.next_obs[:n].cpu(),
            "actions": self.actions[:n].cpu(),
            "rewards": self.rewards[:n].cpu(),
            "terminated": self.terminated[:n].cpu(),
            "size": n,
            "pos": self.pos,
        }

    def load_state_dict(self, state: dict) -> None:
        n = int(state["size"])
        check(
            n <= self.capacity and tuple(state["obs"].shape[1:]) == self.obs_shape,
            f"replay state holds {n} rows of shape {tuple(state['obs'].shape[1:])}; this buffer has capacity "
            f"{self.capacity} and shape {self.obs_shape}",
            "resume with the replay size and environment of the run that saved it",
        )
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, name)[:n] = state[name].to(self.device)
        self.size, self.pos = n, int(state["pos"])
