"""Transitions in memory, their validation and preprocessing, and device-resident sampling.

Two forms:

* :class:`Transitions`: numpy arrays, the exchange form between readers, writers and generators.
  Field names and meanings follow D4RL's ``qlearning_dataset``: ``terminals`` are true
  terminations (no bootstrapping), ``timeouts`` are truncations (kept apart, never used as done).
* :class:`TransitionStore`: one packed ``(capacity, D)`` float tensor on the training device.
  Sampling is a single ``randint`` + ``index_select`` there, with an explicit generator so runs can
  be resumed exactly. The offline dataset and the online replay buffer are the same class.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

import numpy as np
import torch

from rlreg.errors import RlregError, check

__all__ = [
    "DatasetInfo",
    "Transitions",
    "TensorBatch",
    "ObsNormalizer",
    "RewardTransform",
    "TransitionStore",
]


@dataclass(frozen=True)
class DatasetInfo:
    """Where a dataset came from and how its returns are normalized.

    ``normalizer`` names the reference scores used: ``"d4rl-v2"`` (D4RL's ``infos.py`` table),
    ``"minari"`` (the dataset's own ``ref_min_score``/``ref_max_score``), ``"rlreg"`` (our made
    datasets, random/expert references) or ``"none"`` (raw returns only).
    """

    name: str
    env_id: str | None = None
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    normalizer: str = "none"
    source: str = ""
    env_kwargs: dict = field(default_factory=dict)

    def normalized_score(self, mean_return: float) -> float | None:
        """``100 * (R - min) / (max - min)``, or None when the dataset has no reference scores."""
        if self.ref_min_score is None or self.ref_max_score is None:
            return None
        return 100.0 * (mean_return - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)


_ARRAY_FIELDS = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "terminals",
    "timeouts",
    "episode_starts",
)


@dataclass
class Transitions:
    """A flat set of transitions as numpy arrays (``qlearning_dataset`` layout).

    Shapes: observations and next_observations ``(N, *obs_shape)``, actions ``(N, A)``,
    rewards/terminals/timeouts/episode_starts ``(N,)``. ``terminals`` and ``timeouts`` are kept
    apart; bootstrapping is masked by ``terminals`` only.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    episode_starts: np.ndarray
    info: DatasetInfo = field(default_factory=lambda: DatasetInfo(name="unnamed"))

    def __len__(self) -> int:
        return int(self.observations.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.observations.shape[1:]))

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @classmethod
    def from_episodes(cls, episodes: list, info: DatasetInfo) -> Transitions:
        """Flatten Minari-layout episodes (mappings with ``observations`` (T+1), ``actions``,
        ``rewards``, ``terminations``, ``truncations`` (T each)) into transitions: next observation
        ``observations[i+1]``, ``terminals`` = terminations, ``timeouts`` = truncations, an
        ``episode_starts`` flag on each episode's first step. Empty episodes are skipped."""
        eps = [e for e in episodes if len(e["rewards"]) > 0]
        if not eps:
            raise RlregError(
                f"{info.name}: no episode has any steps", "use data with at least one non-empty episode"
            )

        def cat(key: str, dtype: type, part: slice = slice(None)) -> np.ndarray:
            rows = [np.asarray(e[key])[part] for e in eps]
            return np.concatenate([r.reshape(len(r), -1) if r.ndim > 1 else r for r in rows]).astype(dtype)

        starts = np.concatenate([np.arange(len(e["rewards"])) == 0 for e in eps])
        return cls(
            observations=cat("observations", np.float32, slice(None, -1)),
            actions=cat("actions", np.float32).reshape(len(starts), -1),
            rewards=cat("rewards", np.float32).reshape(-1),
            next_observations=cat("observations", np.float32, slice(1, None)),
            terminals=cat("terminations", bool).reshape(-1),
            timeouts=cat("truncations", bool).reshape(-1),
            episode_starts=starts,
            info=info,
        )

    def validate(self, where: str = "dataset") -> Transitions:
        """Check shapes, lengths, emptiness and finiteness; return self.

        Raises :class:`RlregError` naming the first problem found.
        """
        n = len(self)
        check(n > 0, f"{where} is empty (0 transitions)", "use a dataset with at least one transition")
        for name in _ARRAY_FIELDS:
            arr = getattr(self, name)
            check(
                isinstance(arr, np.ndarray),
                f"{where}: field '{name}' is {type(arr).__name__}, not a numpy array",
                "pass numpy arrays",
            )
            check(
                arr.shape[0] == n,
                f"{where}: field '{name}' has {arr.shape[0]} rows but 'observations' has {n}",
                "every field must have one row per transition; the file is inconsistent or truncated",
            )
        check(
            self.actions.ndim == 2,
            f"{where}: actions have shape {self.actions.shape}, expected (N, action_dim)",
            "store continuous actions as a 2-D array",
        )
        check(
            self.next_observations.shape == self.observations.shape,
            f"{where}: next_observations shape {self.next_observations.shape} != observations shape "
            f"{self.observations.shape}",
            "next_observations must match observations",
        )
        for name in ("rewards", "terminals", "timeouts", "episode_starts"):
            arr = getattr(self, name)
            check(arr.ndim == 1, f"{where}: '{name}' has shape {arr.shape}, expected (N,)", "flatten it")
        for name in ("observations", "actions", "rewards", "next_observations"):
            arr = getattr(self, name)
            if not np.all(np.isfinite(arr)):
                bad = np.argwhere(~np.isfinite(arr.reshape(n, -1)))[0]
                raise RlregError(
                    f"{where}: '{name}' contains NaN or inf (first at row {int(bad[0])})",
                    "clean the data (drop or repair those transitions) before training",
                )
        return self

    def check_action_bounds(self, low: np.ndarray, high: np.ndarray, where: str = "dataset") -> None:
        """Raise if any action lies outside ``[low, high]`` (tolerance 1e-5)."""
        low = np.broadcast_to(np.asarray(low, np.float64), (self.act_dim,))
        high = np.broadcast_to(np.asarray(high, np.float64), (self.act_dim,))
        too_low = self.actions < low - 1e-5
        too_high = self.actions > high + 1e-5
        if too_low.any() or too_high.any():
            row = int(np.argwhere(too_low | too_high)[0][0])
            raise RlregError(
                f"{where}: action at row {row} ({self.actions[row].tolist()}) is outside the action space "
                f"bounds [{low.tolist()}, {high.tolist()}]",
                "clip or rescale the dataset's actions to the environment's action space, or use the "
                "environment the data was collected in",
            )

    def astype(self, dtype: np.dtype = np.float32) -> Transitions:
        """Float fields in ``dtype``, flags as bool."""
        return replace(
            self,
            observations=np.asarray(self.observations, dtype),
            actions=np.asarray(self.actions, dtype),
            rewards=np.asarray(self.rewards, dtype),
            next_observations=np.asarray(self.next_observations, dtype),
            terminals=np.asarray(self.terminals, bool),
            timeouts=np.asarray(self.timeouts, bool),
            episode_starts=np.asarray(self.episode_starts, bool),
        )

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode (episodes split at ``episode_starts``)."""
        starts = np.flatnonzero(self.episode_starts)
        if starts.size == 0 or starts[0] != 0:
            starts = np.concatenate([[0], starts])
        return np.add.reduceat(self.rewards.astype(np.float64), starts)

    def digest(self) -> str:
        """SHA-256 of every array's bytes (in field order): equal data ⇔ equal digest."""
        import hashlib

        h = hashlib.sha256()
        for name in _ARRAY_FIELDS:
            arr = np.ascontiguousarray(getattr(self, name))
            h.update(name.encode())
            h.update(str(arr.dtype).encode())
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
        return h.hexdigest()


class TensorBatch(NamedTuple):
    """A sampled batch on the training device. ``dones`` = terminals as float (1 = no bootstrap).

    ``indices`` are the sampled rows of the :class:`TransitionStore` (``(B,)`` int64), or None for a
    batch built by hand; dataset-aware regularizers (PRDC's certified neighbour search) use them.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    dones: torch.Tensor
    indices: torch.Tensor | None = None


@dataclass(frozen=True)
class ObsNormalizer:
    """State z-normalization ``(s - mean) / std`` with ``std = std_D(s) + eps`` (TD3+BC, PRDC: eps 1e-3).

    Statistics come from the dataset's ``observations`` only and are applied to observations,
    next observations and evaluation observations alike.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_observations(cls, observations: np.ndarray, eps: float = 1e-3) -> ObsNormalizer:
        obs = observations.reshape(observations.shape[0], -1).astype(np.float64)
        return cls(mean=obs.mean(0).astype(np.float32), std=(obs.std(0) + eps).astype(np.float32))

    @classmethod
    def identity(cls, dim: int) -> ObsNormalizer:
        return cls(mean=np.zeros(dim, np.float32), std=np.ones(dim, np.float32))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return ((obs - self.mean) / self.std).astype(np.float32)

    def state_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> ObsNormalizer:
        return cls(mean=np.asarray(state["mean"], np.float32), std=np.asarray(state["std"], np.float32))


@dataclass(frozen=True)
class RewardTransform:
    """``r' = scale * r + shift`` (PRDC antmaze: scale 10000, shift -1)."""

    scale: float = 1.0
    shift: float = 0.0

    def __call__(self, rewards: np.ndarray) -> np.ndarray:
        if self.scale == 1.0 and self.shift == 0.0:
            return rewards
        return (self.scale * rewards.astype(np.float64) + self.shift).astype(rewards.dtype)


class TransitionStore:
    """Packed transitions on one device; the offline dataset and the online replay buffer.

    Layout of each row: ``[obs (S) | action (A) | reward | next_obs (S) | done]``. Sampling gathers
    rows with one ``index_select`` and splits them into views, so a batch costs one kernel launch
    and no host synchronisation.
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, device: torch.device | str = "cpu") -> None:
        check(capacity > 0, f"capacity must be positive, got {capacity}", "pass capacity >= 1")
        self.capacity = int(capacity)
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.device = torch.device(device)
        self.width = 2 * self.obs_dim + self.act_dim + 2
        self.data = torch.zeros(self.capacity, self.width, dtype=torch.float32, device=self.device)
        self.size = 0
        self.pos = 0
        s, a = self.obs_dim, self.act_dim
        self._splits = (s, a, 1, s, 1)

    @classmethod
    def from_transitions(cls, t: Transitions, device: torch.device | str = "cpu") -> TransitionStore:
        """A full store holding ``t`` (observations flattened)."""
        store = cls(len(t), t.obs_dim, t.act_dim, device)
        store.add(
            t.observations.reshape(len(t), -1),
            t.actions,
            t.rewards,
            t.next_observations.reshape(len(t), -1),
            t.terminals,
        )
        return store

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        observations: np.ndarray | torch.Tensor,
        actions: np.ndarray | torch.Tensor,
        rewards: np.ndarray | torch.Tensor,
        next_observations: np.ndarray | torch.Tensor,
        terminals: np.ndarray | torch.Tensor,
    ) -> None:
        """Append a batch of transitions (ring buffer once full)."""

        def t(x: np.ndarray | torch.Tensor) -> torch.Tensor:
            x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
            return x.to(self.device, torch.float32).reshape(x.shape[0], -1)

        rows = torch.cat([t(observations), t(actions), t(rewards), t(next_observations), t(terminals)], dim=1)
        if rows.shape[1] != self.width:
            raise RlregError(
                f"transition rows have width {rows.shape[1]}, store expects {self.width} "
                f"(obs {self.obs_dim}, action {self.act_dim})",
                "add observations and actions of the shapes the store was created with",
            )
        n = rows.shape[0]
        if n >= self.capacity:
            self.data.copy_(rows[-self.capacity :])
            self.pos, self.size = 0, self.capacity
            return
        end = self.pos + n
        if end <= self.capacity:
            self.data[self.pos : end] = rows
        else:
            k = self.capacity - self.pos
            self.data[self.pos :] = rows[:k]
            self.data[: n - k] = rows[k:]
        self.pos = end % self.capacity
        self.size = min(self.size + n, self.capacity)

    def split(self, rows: torch.Tensor, indices: torch.Tensor | None = None) -> TensorBatch:
        """Views of packed rows as a :class:`TensorBatch` (rewards and dones shaped ``(B,)``)."""
        o, a, r, no, d = torch.split(rows, self._splits, dim=1)
        return TensorBatch(o, a, r.squeeze(1), no, d.squeeze(1), indices)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> TensorBatch:
        """Uniform sample with replacement (as TD3+BC, PRDC and A2PR do)."""
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return self.split(self.data.index_select(0, idx), idx)

    def state_dict(self) -> dict:
        return {
            "data": self.data[: self.size].cpu() if self.size < self.capacity else self.data.cpu(),
            "size": self.size,
            "pos": self.pos,
        }

    def load_state_dict(self, state: dict) -> None:
        data = state["data"]
        self.data[: data.shape[0]] = data.to(self.device)
        self.size, self.pos = int(state["size"]), int(state["pos"])


def field_names() -> tuple[str, ...]:
    """Names of the array fields of :class:`Transitions`, in storage order."""
    return tuple(f.name for f in fields(Transitions) if f.name != "info")
