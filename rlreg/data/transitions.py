"""Transitions in memory, their validation and preprocessing, and device-resident sampling.

Two forms:

* :class:`Transitions`: numpy arrays, the exchange form between readers, writers and generators.
  Field names and meanings follow D4RL's ``qlearning_dataset``: ``terminals`` are true
  terminations (no bootstrapping), ``timeouts`` are truncations (kept apart, never used as done).
* :class:`TransitionStore`: the transitions on the training device with their episode structure
  (terminals, timeouts, episode starts, ids and steps) and named reward columns; the offline
  dataset and the online replay buffer are the same class. Sampling is one ``randint`` there, with
  an explicit generator so runs can be resumed exactly; flat float observations with continuous
  actions are packed into one ``(capacity, D)`` float tensor, so a batch is one ``index_select``.
  Episode queries: returns-to-go, n-step targets, episode bounds (and :mod:`rlreg.data.windows`
  for trajectory windows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

import numpy as np
import torch

from rlreg.errors import RlregError, check, check_number

__all__ = [
    "DatasetInfo",
    "Transitions",
    "TensorBatch",
    "ObsNormalizer",
    "RewardTransform",
    "TransitionStore",
    "NStepTargets",
    "EpisodeIndex",
    "STATE_FORMAT",
    "action_array",
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

    Shapes: observations and next_observations ``(N, *obs_shape)``; actions ``(N, A)`` float
    (continuous) or ``(N,)`` integer action indices (discrete, e.g. CartPole or MinAtar data);
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
    def discrete(self) -> bool:
        """True when the actions are ``(N,)`` integer indices (a Discrete action space)."""
        return self.actions.ndim == 1 and np.issubdtype(self.actions.dtype, np.integer)

    @property
    def act_dim(self) -> int:
        """The continuous action dimension ``A`` (a discrete dataset has none: an error says so)."""
        check(
            not self.discrete,
            f"dataset {self.info.name} has discrete actions, which have no action dimension",
            "use it with a discrete-action agent (DQN), or use a dataset with continuous actions",
        )
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
            actions=_episode_actions(eps, len(starts)),
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
        self._validate_actions(where)
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

    def _validate_actions(self, where: str) -> None:
        a = self.actions
        if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
            check(
                a.ndim == 1 and a.dtype != bool,
                f"{where}: integer actions have shape {a.shape} and dtype {a.dtype}, expected (N,) "
                "action indices",
                "store discrete actions as a 1-D integer array, continuous ones as a 2-D float array",
            )
            check(
                int(a.min()) >= 0,
                f"{where}: discrete action at row {int(np.argmax(a < 0))} is {int(a.min())}, below 0",
                "discrete actions are indices 0..n-1; remap the dataset's actions",
            )
            return
        check(
            a.ndim == 2,
            f"{where}: actions have shape {a.shape}, expected (N, action_dim)",
            "store continuous actions as a 2-D float array (discrete ones as a 1-D integer array)",
        )

    def check_action_count(self, num_actions: int, where: str = "dataset") -> None:
        """Raise unless the actions are discrete indices below ``num_actions``."""
        check(
            self.discrete,
            f"{where} has {self.actions.shape[1] if self.actions.ndim == 2 else '?'}-dim continuous "
            f"actions; the environment has {num_actions} discrete actions",
            "use a dataset with discrete actions, collected in that environment",
        )
        top = int(self.actions.max())
        check(
            top < num_actions,
            f"{where}: action {top} at row {int(np.argmax(self.actions == top))} is outside the "
            f"environment's {num_actions} discrete actions (0..{num_actions - 1})",
            "use the environment the data was collected in",
        )

    def check_action_bounds(self, low: np.ndarray, high: np.ndarray, where: str = "dataset") -> None:
        """Raise if any action lies outside ``[low, high]`` (tolerance 1e-5)."""
        check(
            not self.discrete,
            f"{where} has discrete actions; the environment has a {len(np.shape(low))}-D Box of "
            "continuous actions",
            "use a dataset with continuous actions, collected in that environment",
        )
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
        """Float fields in ``dtype`` (discrete actions stay int64), flags as bool."""
        return replace(
            self,
            observations=np.asarray(self.observations, dtype),
            actions=np.asarray(self.actions, np.int64 if self.discrete else dtype),
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


def _episode_actions(eps: list, n: int) -> np.ndarray:
    a = action_array(np.concatenate([np.asarray(e["actions"]).reshape(len(e["rewards"]), -1) for e in eps]))
    return a if a.ndim == 1 else a.reshape(n, -1)


def action_array(actions: np.ndarray) -> np.ndarray:
    """Actions in the exchange form: integer indices (``(N,)`` or ``(N, 1)``) as ``(N,)`` int64
    (discrete), anything else as float32 of the same shape (continuous)."""
    a = np.asarray(actions)
    if np.issubdtype(a.dtype, np.integer) and a.ndim in (1, 2) and a.size == len(a):
        return a.reshape(len(a)).astype(np.int64)
    return a.astype(np.float32)


class TensorBatch(NamedTuple):
    """A sampled batch on the training device. ``dones`` = terminals as float (1 = no bootstrap).

    ``indices`` are the sampled rows of the :class:`TransitionStore` (``(B,)`` int64), or None for a
    batch built by hand; dataset-aware regularizers (PRDC's certified neighbour search) use them.
    ``timeouts`` (``(B,)`` bool) and ``episode_ids`` (``(B,)`` int64) are filled only when asked for
    (``sample(..., extras=True)``); None otherwise.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    dones: torch.Tensor
    indices: torch.Tensor | None = None
    timeouts: torch.Tensor | None = None
    episode_ids: torch.Tensor | None = None


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


# ---------------------------------------------------------------------- the device-resident store

STATE_FORMAT = "rlreg.TransitionStore/2"
"""``state_dict()["format"]``; states without it are read as the two layouts before episodes were kept."""

_ROW_ARGS = ("actions", "next_observations")  # add() arguments with more than one value per row
_RESUME_FIX = "resume with the dataset, environment and replay settings of the run that saved it"
_EPISODE_FIELDS = {
    "timeouts": "timeouts",
    "episode_starts": "_starts",
    "episode_ids": "_ids",
    "episode_steps": "_steps",
}
"""State names of the episode columns and the attributes holding them."""


class NStepTargets(NamedTuple):
    """n-step TD targets of every stored row, each ``(size,)`` and indexed by storage row.

    ``target_i = returns[i] + discounts[i] * V(next_observations[bootstrap[i]])``:

    * ``returns`` float32: ``Σ_{k<m} γ^k r_{i+k}`` over the ``m = steps[i]`` rows ``i, i+1, …`` of
      row i's episode (in step order); ``m <= n``: the sum stops after a terminal, after a timeout,
      or at the episode's last stored row.
    * ``bootstrap`` int64: the storage row whose ``next_observations`` is bootstrapped from (the last
      summed row: after a timeout, that row's true next observation).
    * ``discounts`` float32: ``γ^m``, or 0 where the sum ended at a terminal (no bootstrap).
    * ``steps`` int64: ``m``.
    """

    returns: torch.Tensor
    bootstrap: torch.Tensor
    discounts: torch.Tensor
    steps: torch.Tensor


class EpisodeIndex(NamedTuple):
    """The stored rows grouped by episode (all ``(size,)`` int64 unless noted, on the store's device).

    * ``order``: storage rows, episode after episode (episodes by id, i.e. by when they started), each
      episode's rows in step order. With ``num_envs == 1`` this is the insertion order (oldest first).
    * ``position``: ``position[row]`` is the row's place in ``order``.
    * ``seg_start`` / ``seg_end``: for each place ``p`` in ``order``, the places where its episode
      starts and ends (exclusive).
    * ``bounds``: ``(episodes, 2)``, ``[start, end)`` places in ``order`` of each stored episode.
    """

    order: torch.Tensor
    position: torch.Tensor
    seg_start: torch.Tensor
    seg_end: torch.Tensor
    bounds: torch.Tensor


def _tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _integral(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex) and dtype != torch.bool


def _backward_scan(b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x_p = b_p + a_p x_{p+1}`` (``x_N = 0``) for all p at once, by doubling (log2 N passes; the
    products of ``a`` stay in [0, 1] for discounts, so no cancellation)."""
    b, a, s, n = b.clone(), a.clone(), 1, b.shape[0]
    while s < n:
        b[:-s] += a[:-s] * b[s:]
        a[:-s] = a[:-s] * a[s:]
        s *= 2
    return b


def _obs_shape(obs_dim: int | Sequence[int] | None, obs_shape: Sequence[int] | None) -> tuple[int, ...]:
    given = obs_shape if obs_shape is not None else obs_dim
    check(
        given is not None,
        "TransitionStore needs the observation size",
        "pass obs_dim=S or obs_shape=(C, H, W)",
    )
    shape = (int(given),) if isinstance(given, (int, np.integer)) else tuple(int(s) for s in given)
    check(
        obs_dim is None or obs_shape is None or int(np.prod(shape)) == int(np.prod(np.atleast_1d(obs_dim))),
        f"obs_dim {obs_dim} and obs_shape {tuple(shape)} disagree",
        "pass one of them",
    )
    check(
        len(shape) >= 1 and all(s > 0 for s in shape),
        f"observation shape {shape} is not a shape of positive sizes",
        "pass obs_dim=S (flat) or obs_shape=(C, H, W)",
    )
    return shape


def _action_kind(
    act_dim: int | None, num_actions: int | None, discrete: bool | None
) -> tuple[bool, int | None, int | None]:
    """``(discrete, act_dim, num_actions)``: continuous ``(A,)`` float actions or discrete indices."""
    discrete = num_actions is not None if discrete is None else bool(discrete)
    if discrete:
        check(
            act_dim is None,
            f"a discrete store has integer actions, not act_dim={act_dim}",
            "pass num_actions=n (discrete) or act_dim=A (continuous), not both",
        )
        check(
            num_actions is None or (isinstance(num_actions, (int, np.integer)) and num_actions >= 1),
            f"num_actions must be a positive integer, got {num_actions!r}",
            "pass the number of discrete actions, e.g. num_actions=6",
        )
        return True, None, None if num_actions is None else int(num_actions)
    check(
        isinstance(act_dim, (int, np.integer)) and act_dim >= 1 and num_actions is None,
        f"a continuous store needs act_dim >= 1, got act_dim={act_dim!r}, num_actions={num_actions!r}",
        "pass act_dim=A for continuous actions, or num_actions=n for discrete ones",
    )
    return False, int(act_dim), None


def _describe(kind: dict) -> str:
    acts = "discrete actions" if kind["discrete"] else f"{kind['act_dim']}-dim continuous actions"
    envs = f", {kind['num_envs']} envs" if kind["num_envs"] != 1 else ""
    return (
        f"{kind['layout']} store (observations {tuple(kind['obs_shape'])} {kind['obs_dtype']}, {acts}{envs})"
    )


class TransitionStore:
    """Transitions on one device with their episode structure: the offline dataset and the online
    replay buffer (a ring once full), sampled uniformly with one ``randint`` and an explicit generator.

    **Columns** (``capacity`` rows each; rows ``>= size`` are unused):

    * ``obs``, ``next_obs``: ``(capacity, *obs_shape)`` in ``obs_dtype`` (float32 default; e.g. uint8
      for MinAtar's 0/1 maps); batches always give float32.
    * ``actions``: continuous ``(capacity, A)`` float32 (``act_dim=A``) or discrete ``(capacity,)``
      int64 (``num_actions=n``, or ``discrete=True`` when the count is not known).
    * rewards: named float32 ``(capacity,)`` columns side by side: ``"reward"`` (the environment's)
      always, more from ``reward_columns=`` or :meth:`set_rewards` (e.g. ``"learned"``, ``"shaped"``);
      a column not written for a row holds NaN there. ``reward_key`` names the one batches carry as
      ``rewards`` (``sample(..., reward=name)`` picks another for one call).
    * ``terminated``: float32 terminals, the batches' ``dones`` (1 = no bootstrap). Timeouts are never
      dones: ``timeouts`` (bool) is kept apart, and a timeout row still bootstraps from its
      ``next_obs`` (the true last observation).
    * ``episode_starts`` (bool), ``episode_ids`` (int64, 0, 1, 2, … in order of the episodes' first
      rows) and ``episode_steps`` (int64, the row's step index within its episode).

    **Packed layout** (flat float32 observations and continuous actions, the D4RL case): obs, action,
    default reward, next obs and terminal share one contiguous float32 tensor ``data`` of
    ``(capacity, width)``, ``width = 2S + A + 2``, rows ``[obs (S) | action (A) | reward | next_obs (S)
    | done]`` (``obs``, ``actions``, ``next_obs``, ``terminated`` and the default reward column are
    views of it). A sample is one ``randint`` + one ``index_select`` + :meth:`split` into views, so
    ``observations`` and ``actions`` of a batch are adjacent columns of the same rows (TD3 joins them
    without a copy) and CUDA graphs can replay ``randint``/``index_select`` into fixed buffers
    (``data``, ``width``, ``split``). Otherwise (images, integer storage, discrete actions) the
    columns are separate tensors and a sample is one ``randint`` + five ``index_select``.

    **Episodes.** Rows of one ``add`` call belong to ``num_envs`` environments stepped together: row
    ``j`` to environment ``j % num_envs`` (so a call adds a multiple of ``num_envs`` rows). An
    environment's episode continues across calls until a terminal or a timeout ends it; the next row
    of that environment starts a new episode. ``episode_starts=`` given to :meth:`add` overrides
    that rule (datasets: :meth:`from_transitions` passes the dataset's own flags). Once the ring
    overwrites old rows, the oldest stored episode may have lost its first steps (its ``episode_steps``
    still count from its true start); episode queries see the stored rows in insertion order, so a
    window or an n-step sum never crosses the write position.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int | Sequence[int] | None = None,
        act_dim: int | None = None,
        device: torch.device | str = "cpu",
        *,
        obs_shape: Sequence[int] | None = None,
        num_actions: int | None = None,
        discrete: bool | None = None,
        obs_dtype: torch.dtype = torch.float32,
        reward_key: str = "reward",
        reward_columns: Sequence[str] = (),
        num_envs: int = 1,
    ) -> None:
        check(capacity > 0, f"capacity must be positive, got {capacity}", "pass capacity >= 1")
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.obs_shape = _obs_shape(obs_dim, obs_shape)
        self.obs_dim = int(np.prod(self.obs_shape))
        check(
            isinstance(obs_dtype, torch.dtype) and not obs_dtype.is_complex and obs_dtype != torch.bool,
            f"obs_dtype must be a real torch dtype, got {obs_dtype!r}",
            "pass e.g. obs_dtype=torch.float32 or torch.uint8",
        )
        self.obs_dtype = obs_dtype
        self.discrete, self.act_dim, self.num_actions = _action_kind(act_dim, num_actions, discrete)
        check(
            isinstance(num_envs, (int, np.integer)) and num_envs >= 1,
            f"num_envs must be a positive integer, got {num_envs!r}",
            "pass the number of environments whose rows each add() interleaves (1 for one environment)",
        )
        self.num_envs = int(num_envs)
        self.packed = len(self.obs_shape) == 1 and obs_dtype == torch.float32 and not self.discrete
        names = ("reward", *reward_columns)
        check(
            all(isinstance(k, str) and k for k in names) and len(set(names)) == len(names),
            f"reward columns must be distinct non-empty names, got {list(names)}",
            "pass reward_columns=('learned',) for example ('reward' always exists)",
        )
        check(
            reward_key in names,
            f"unknown reward column {reward_key!r}; this store has {list(names)}",
            "pass reward_key= one of those, or add the name to reward_columns=",
        )
        self._reward_key = reward_key
        self.size = 0
        self.pos = 0
        self._rows_version = 0  # bumped by every change of rows (episode structure)
        self._rewards_version = 0  # bumped by every change of a reward column
        self._cache: dict = {}
        self._allocate(names)

    def _allocate(self, names: tuple[str, ...]) -> None:
        cap, dev = self.capacity, self.device
        self._rewards: dict[str, torch.Tensor] = {}
        if self.packed:
            s, a = self.obs_dim, self.act_dim
            self.width = 2 * s + a + 2
            self._splits = (s, a, 1, s, 1)
            self.data = torch.zeros(cap, self.width, dtype=torch.float32, device=dev)
            self.obs = self.data[:, :s]
            self.actions = self.data[:, s : s + a]
            self._rewards[self._reward_key] = self.data[:, s + a]
            self.next_obs = self.data[:, s + a + 1 : 2 * s + a + 1]
            self.terminated = self.data[:, -1]
        else:
            self.data = None
            self.width = None
            self.obs = torch.zeros((cap, *self.obs_shape), dtype=self.obs_dtype, device=dev)
            self.next_obs = torch.zeros_like(self.obs)
            act_shape = (cap,) if self.discrete else (cap, self.act_dim)
            self.actions = torch.zeros(
                act_shape, dtype=torch.int64 if self.discrete else torch.float32, device=dev
            )
            self.terminated = torch.zeros(cap, dtype=torch.float32, device=dev)
        for name in names:
            if name not in self._rewards:
                self._rewards[name] = self._new_column(0.0 if name == "reward" else float("nan"))
        self.timeouts = torch.zeros(cap, dtype=torch.bool, device=dev)
        self._timeouts_written = False  # True once add() was given timeouts (or a state was loaded)
        self._starts = torch.zeros(cap, dtype=torch.bool, device=dev)
        self._ids = torch.full((cap,), -1, dtype=torch.int64, device=dev)
        self._steps = torch.zeros(cap, dtype=torch.int64, device=dev)
        self._reset_running()

    def _new_column(self, fill: float) -> torch.Tensor:
        return torch.full((self.capacity,), fill, dtype=torch.float32, device=self.device)

    def _reset_running(self) -> None:
        """Per environment: id and length of its running episode (-1/0: none yet), whether it is open.

        Episode columns are filled lazily: ``add`` only stores the flags, and the newest
        ``_total - _done`` rows (never more than ``capacity``) wait for :meth:`_sync_episodes`;
        ``_given`` holds ``[rows, start flags given]`` runs of them, in insertion order."""
        e, dev = self.num_envs, self.device
        self._total = self._done = 0
        self._given: list[list] = []
        self._run_id = torch.full((e,), -1, dtype=torch.int64, device=dev)
        self._run_len = torch.zeros(e, dtype=torch.int64, device=dev)
        self._open = torch.zeros(e, dtype=torch.bool, device=dev)
        self._next_id = torch.zeros((), dtype=torch.int64, device=dev)

    @classmethod
    def from_transitions(
        cls, t: Transitions, device: torch.device | str = "cpu", *, flatten: bool = True
    ) -> TransitionStore:
        """A full store holding ``t``, with its timeouts and episode starts (ids follow the starts).

        Observations are flattened (the packed layout) unless ``flatten=False``."""
        n = len(t)
        shape = (t.obs_dim,) if flatten else tuple(t.observations.shape[1:])
        kind = {"discrete": True} if t.discrete else {"act_dim": t.act_dim}
        store = cls(n, obs_shape=shape, device=device, **kind)
        store.add(
            t.observations.reshape(n, -1) if flatten else t.observations,
            t.actions,
            t.rewards,
            t.next_observations.reshape(n, -1) if flatten else t.next_observations,
            t.terminals,
            timeouts=t.timeouts,
            episode_starts=t.episode_starts,
        )
        return store

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return (
            f"TransitionStore({self.size}/{self.capacity} rows, {_describe(self._kind())}, on {self.device})"
        )

    # ------------------------------------------------------------------ reward columns
    @property
    def reward_key(self) -> str:
        """The reward column batches carry as ``rewards``; assigning another existing name switches
        (in the packed layout that column moves into ``data``, so CUDA graphs see it)."""
        return self._reward_key

    @reward_key.setter
    def reward_key(self, name: str) -> None:
        new, old = self._column(name), self._reward_key
        if name == old:
            return
        if self.packed:
            col = self._rewards[old]  # the view into data
            self._rewards[old] = col.clone()
            col.copy_(new)
            self._rewards[name] = col
        self._reward_key = name

    @property
    def rewards(self) -> torch.Tensor:
        """The default reward column, ``(capacity,)`` float32."""
        return self._rewards[self._reward_key]

    @property
    def reward_columns(self) -> tuple[str, ...]:
        return tuple(self._rewards)

    def reward_column(self, name: str | None = None) -> torch.Tensor:
        """Reward column ``name`` (default: ``reward_key``), ``(capacity,)`` float32."""
        return self._column(name)

    def _column(self, name: str | None) -> torch.Tensor:
        key = self._reward_key if name is None else name
        col = self._rewards.get(key) if isinstance(key, str) else None
        if col is None:
            raise RlregError(
                f"unknown reward column {key!r}; this store has {list(self._rewards)}",
                "pass one of those names, or write the column first with store.set_rewards(name, values)",
            )
        return col

    def set_rewards(self, name: str, values: np.ndarray | torch.Tensor) -> None:
        """Write reward column ``name`` (created if new) for every stored row: ``values`` ``(size,)``
        in storage order (row i of the store, as ``batch.indices`` name them)."""
        check(
            isinstance(name, str) and name,
            f"a reward column needs a name, got {name!r}",
            "pass e.g. 'learned'",
        )
        v = _tensor(values)
        check(
            v.dim() == 1 and v.shape[0] == self.size and not v.dtype.is_complex,
            f"set_rewards({name!r}): values have shape {tuple(v.shape)}, the store holds {self.size} rows",
            "pass one real value per stored row, in storage order (store row i, as batch.indices)",
        )
        if name not in self._rewards:
            self._rewards[name] = self._new_column(float("nan"))
        self._rewards[name][: self.size] = v.to(self.device, torch.float32)
        self._rewards_version += 1

    # ------------------------------------------------------------------ adding
    def add(
        self,
        observations: np.ndarray | torch.Tensor,
        actions: np.ndarray | torch.Tensor,
        rewards: np.ndarray | torch.Tensor | Mapping[str, np.ndarray | torch.Tensor],
        next_observations: np.ndarray | torch.Tensor,
        terminals: np.ndarray | torch.Tensor,
        *,
        timeouts: np.ndarray | torch.Tensor | None = None,
        episode_starts: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        """Append ``n`` transitions (ring buffer once full: the oldest rows are overwritten, as if
        the rows were added one at a time; of more than ``capacity`` rows the last ``capacity`` stay).

        ``rewards`` is the ``"reward"`` column, or a mapping of column names to values (``"reward"``
        among them); columns not given hold NaN for these rows. ``terminals`` (no bootstrap) and
        ``timeouts`` (truncation, default none) end episodes; ``episode_starts`` (default: after each
        end, per environment) marks first steps. Every argument has ``n`` rows, ``n`` a multiple of
        ``num_envs``. Tensors stay on their device (no host synchronisation).
        """
        obs, act, nobs, term = map(_tensor, (observations, actions, next_observations, terminals))
        check(obs.dim() >= 1, "add(): observations have no row dimension", "pass (n, *obs_shape) arrays")
        n = int(obs.shape[0])
        rew = self._reward_inputs(rewards)
        flags = {
            k: _tensor(v)
            for k, v in (("timeouts", timeouts), ("episode_starts", episode_starts))
            if v is not None
        }
        parts = {"actions": act, "next_observations": nobs, "terminals": term, **flags}
        parts.update({f"rewards[{k!r}]": v for k, v in rew.items()})
        for name, x in parts.items():  # (messages formatted only on failure: add() runs every step)
            if not x.dim() or x.shape[0] != n or (name not in _ROW_ARGS and x.numel() != n):
                raise RlregError(
                    f"add(): '{name}' has shape {tuple(x.shape)} but 'observations' has {n} rows",
                    "pass one row per transition in every argument (one value per row for flags and rewards)",
                )
        if n % self.num_envs:
            raise RlregError(
                f"add(): {n} rows do not split evenly over the store's {self.num_envs} environments",
                "add one row per environment per step (row j belongs to environment j % num_envs)",
            )
        if n == 0:
            return
        pairs = (
            self._packed_rows(obs, act, rew, nobs, term)
            if self.packed
            else self._column_rows(obs, act, rew, nobs, term)
        )
        pairs += self._flag_rows(n, term, flags.get("timeouts"), flags.get("episode_starts"))
        segments = self._segments(n)
        for dst, src in pairs:
            for d, s in segments:
                dst[d] = src if isinstance(src, bool) else src[s]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self._total += n
        if n > self.capacity:  # _flag_rows filled the episode columns of this batch
            self._done = self._total
        self._rows_version += 1
        self._rewards_version += 1

    def _flag_rows(
        self, n: int, term: torch.Tensor, tout: torch.Tensor | None, starts: torch.Tensor | None
    ) -> list[tuple[torch.Tensor, torch.Tensor | bool]]:
        """Writes of the timeouts and start flags (all episode columns when ``n > capacity``)."""
        dev = self.device
        tout = tout.to(dev, torch.bool).reshape(n) if tout is not None else None
        starts = starts.to(dev, torch.bool).reshape(n) if starts is not None else None
        if self._total - self._done + n > self.capacity:  # rows waiting for their ids would be lost
            self._sync_episodes()
        pairs = []
        if tout is not None or self._timeouts_written:  # (an all-False column needs no writes)
            pairs.append((self.timeouts, tout if tout is not None else False))
            self._timeouts_written = True
        if n <= self.capacity:
            if self._given and self._given[-1][1] == (starts is not None):
                self._given[-1][0] += n
            else:
                self._given.append([n, starts is not None])
            return pairs + ([(self._starts, starts)] if starts is not None else [])
        # more rows than the ring holds: most are never stored, so their episodes are counted now
        ended = term.to(dev).reshape(n) != 0
        ended = ended | tout if tout is not None else ended
        given = None if starts is None else torch.ones(n, dtype=torch.bool, device=dev)
        new, ids, steps = self._episode_columns(ended, starts, given)
        return pairs + [(self._starts, new), (self._ids, ids), (self._steps, steps)]

    def _reward_inputs(self, rewards: object) -> dict[str, torch.Tensor]:
        if not isinstance(rewards, Mapping):
            return {"reward": _tensor(rewards)}
        check(
            "reward" in rewards,
            f"add(): the reward columns given ({list(rewards)}) lack 'reward', the environment's reward",
            "pass {'reward': r, ...} (other columns may be left out: they hold NaN for these rows)",
        )
        for k in rewards:
            self._column(k)
        return {k: _tensor(v) for k, v in rewards.items()}

    def _packed_rows(
        self, obs: torch.Tensor, act: torch.Tensor, rew: dict, nobs: torch.Tensor, term: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(data, rows)]`` plus the other reward columns, rows built as ``cat`` of float32 parts."""

        def t(x: torch.Tensor) -> torch.Tensor:
            return x.to(self.device, torch.float32).reshape(x.shape[0], -1)

        n, key = obs.shape[0], self._reward_key
        r = rew[key] if key in rew else torch.full((n,), float("nan"))
        parts = [t(obs), t(act), t(r), t(nobs), t(term)]
        expected = (self.obs_dim, self.act_dim, 1, self.obs_dim, 1)
        names = ("observations", "actions", "rewards", "next_observations", "terminals")
        for name, part, width in zip(names, parts, expected):
            if part.shape[1] != width:
                raise RlregError(
                    f"add(): {name} have width {part.shape[1]}, the store expects {width} (rows of width "
                    f"{self.width}: obs {self.obs_dim}, action {self.act_dim})",
                    "add observations and actions of the shapes the store was created with",
                )
        pairs = [(self.data, torch.cat(parts, dim=1))]
        return pairs + self._other_rewards(rew, n, skip=key)

    def _other_rewards(self, rew: dict, n: int, skip: str | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if len(self._rewards) == 1 and skip is not None:
            return []
        nan = torch.full((n,), float("nan"), device=self.device)
        return [
            (col, rew[k].to(self.device, torch.float32).reshape(n) if k in rew else nan)
            for k, col in self._rewards.items()
            if k != skip
        ]

    def _column_rows(
        self, obs: torch.Tensor, act: torch.Tensor, rew: dict, nobs: torch.Tensor, term: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n, dev = obs.shape[0], self.device
        self._check_columns(obs, nobs, act)
        if self.discrete:
            a = act.to(dev, torch.int64).reshape(n)
        else:
            a = act.to(dev, torch.float32).reshape(n, -1)
        pairs = [
            (self.obs, obs.to(dev, self.obs_dtype)),
            (self.next_obs, nobs.to(dev, self.obs_dtype)),
            (self.actions, a),
            (self.terminated, term.to(dev, torch.float32).reshape(n)),
        ]
        return pairs + self._other_rewards(rew, n, skip=None)

    def _check_columns(self, obs: torch.Tensor, nobs: torch.Tensor, act: torch.Tensor) -> None:
        """Shapes and dtype kinds of ``add`` arguments for the column layout (messages formatted
        only on failure)."""
        n = obs.shape[0]
        shape = (n, *self.obs_shape)
        for name, x in (("observations", obs), ("next_observations", nobs)):
            if tuple(x.shape) != shape:
                raise RlregError(
                    f"add(): {name} have shape {tuple(x.shape)}, the store expects {shape}",
                    "add observations of the shape the store was created with",
                )
            if x.dtype.is_floating_point and not self.obs_dtype.is_floating_point:
                raise RlregError(
                    f"add(): {name} are {x.dtype} but the store keeps {self.obs_dtype}",
                    "convert them explicitly (e.g. obs.round().to(torch.uint8)), or create the store with "
                    "obs_dtype=torch.float32",
                )
        if self.discrete and not _integral(act.dtype):
            raise RlregError(
                f"add(): discrete actions must be integers, got {act.dtype}",
                "pass action indices as an integer array (int64), or create a continuous store (act_dim=A)",
            )
        if self.discrete and act.numel() != n:
            raise RlregError(
                f"add(): discrete actions have shape {tuple(act.shape)}, expected ({n},)",
                "pass one action index per transition",
            )
        width = act.numel() // max(n, 1)
        if not self.discrete and width != self.act_dim:
            raise RlregError(
                f"add(): actions have width {width}, the store expects {self.act_dim}",
                "add actions of the shape the store was created with",
            )

    def _episode_columns(
        self, ended: torch.Tensor, starts: torch.Tensor | None, given: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Episode starts, ids and steps of ``n`` rows that follow the processed ones (row j:
        environment j % E), given which rows end an episode and which start flags were given;
        advances the running state."""
        e = self.num_envs
        t = ended.shape[0] // e
        end2 = ended.view(t, e)
        # a row starts an episode when its environment's previous row ended one, or when told so
        new = torch.cat([~self._open[None], end2[:-1]])
        if given is not None:
            new = torch.where(given.view(t, e), starts.view(t, e), new)
            new[0] |= self._run_id < 0  # an environment's first row always starts an episode
        rank = new.reshape(-1).cumsum(0).view(t, e)
        fresh = self._next_id + rank - 1
        if t == 1:
            ids = torch.where(new, fresh, self._run_id[None])
            steps = torch.where(new, 0, self._run_len[None])
        else:  # forward-fill each environment's last start
            step = torch.arange(t, device=self.device)[:, None].expand(t, e)
            last = torch.where(new, step, -1).cummax(0).values
            has = last >= 0
            ids = torch.where(has, fresh.gather(0, last.clamp(min=0)), self._run_id[None])
            steps = torch.where(has, step - last, self._run_len[None] + step)
        self._run_id, self._run_len = ids[-1].clone(), steps[-1] + 1
        self._open, self._next_id = ~end2[-1], self._next_id + rank[-1, -1]
        return new.reshape(-1), ids.reshape(-1), steps.reshape(-1)

    def _sync_episodes(self) -> None:
        """Fill the episode columns of the rows added since the last call (in insertion order)."""
        p = self._total - self._done
        if p == 0:
            return
        dev = self.device
        rows = (torch.arange(p, device=dev) + (self.pos - p)) % self.capacity
        ended = (self.terminated[rows] != 0) | self.timeouts[rows]
        given = None
        if any(flag for _, flag in self._given):
            given = torch.cat(
                [torch.full((k,), flag, dtype=torch.bool, device=dev) for k, flag in self._given]
            )
        new, ids, steps = self._episode_columns(ended, self._starts[rows], given)
        self._starts[rows], self._ids[rows], self._steps[rows] = new, ids, steps
        self._done, self._given = self._total, []

    @property
    def episode_starts(self) -> torch.Tensor:
        """``(capacity,)`` bool: the row is its episode's first step."""
        self._sync_episodes()
        return self._starts

    @property
    def episode_ids(self) -> torch.Tensor:
        """``(capacity,)`` int64: the row's episode, numbered 0, 1, … in order of first rows."""
        self._sync_episodes()
        return self._ids

    @property
    def episode_steps(self) -> torch.Tensor:
        """``(capacity,)`` int64: the row's step index within its episode."""
        self._sync_episodes()
        return self._steps

    def _segments(self, n: int) -> list[tuple[slice, slice]]:
        """``(store rows, new rows)`` slices: the last ``min(n, capacity)`` new rows from ``pos`` on."""
        skip = max(0, n - self.capacity)
        m, start = n - skip, (self.pos + skip) % self.capacity
        if start + m <= self.capacity:
            return [(slice(start, start + m), slice(skip, n))]
        k = self.capacity - start
        return [(slice(start, self.capacity), slice(skip, skip + k)), (slice(0, m - k), slice(skip + k, n))]

    # ------------------------------------------------------------------ sampling
    def split(self, rows: torch.Tensor, indices: torch.Tensor | None = None) -> TensorBatch:
        """Views of packed rows (``(B, width)``) as a :class:`TensorBatch` (rewards and dones ``(B,)``).

        Packed layout only."""
        if not self.packed:
            raise RlregError(
                f"split() needs the packed layout; this is a {_describe(self._kind())}",
                "use sample() or gather() (packed: flat float32 observations and continuous actions)",
            )
        o, a, r, no, d = torch.split(rows, self._splits, dim=1)
        return TensorBatch(o, a, r.squeeze(1), no, d.squeeze(1), indices)

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        *,
        reward: str | None = None,
        extras: bool = False,
    ) -> TensorBatch:
        """Uniform sample with replacement (as TD3+BC, PRDC, A2PR and DQN do): one ``randint`` over
        the stored rows, then :meth:`gather`. ``reward`` picks a reward column for ``rewards``;
        ``extras`` adds ``timeouts`` and ``episode_ids``."""
        if reward is not None:
            self._column(reward)
        check(self.size > 0, "sampling from an empty replay buffer", "add transitions before sampling")
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return self.gather(idx, reward=reward, extras=extras)

    def gather(
        self, indices: torch.Tensor, *, reward: str | None = None, extras: bool = False
    ) -> TensorBatch:
        """Storage rows ``indices`` (``(B,)`` int64) as a :class:`TensorBatch`: float32 observations
        ``(B, *obs_shape)``, actions ``(B, A)`` float32 or ``(B,)`` int64, rewards and dones ``(B,)``
        float32; ``timeouts`` ``(B,)`` bool and ``episode_ids`` ``(B,)`` int64 with ``extras``."""
        if self.packed:
            batch = self.split(self.data.index_select(0, indices), indices)
        else:
            batch = TensorBatch(
                self.obs.index_select(0, indices).float(),
                self.actions.index_select(0, indices),
                self.rewards.index_select(0, indices),
                self.next_obs.index_select(0, indices).float(),
                self.terminated.index_select(0, indices),
                indices,
            )
        if reward is not None and reward != self._reward_key:
            batch = batch._replace(rewards=self._column(reward).index_select(0, indices))
        if extras:
            batch = batch._replace(
                timeouts=self.timeouts.index_select(0, indices),
                episode_ids=self.episode_ids.index_select(0, indices),
            )
        return batch

    # ------------------------------------------------------------------ episode structure
    def insertion_order(self) -> torch.Tensor:
        """Storage rows, oldest first (``(size,)`` int64; ``arange(size)`` until the ring wraps)."""
        rows = torch.arange(self.size, device=self.device)
        return rows if self.size < self.capacity else (rows + self.pos) % self.capacity

    def episode_index(self) -> EpisodeIndex:
        """The stored rows grouped by episode (:class:`EpisodeIndex`), computed once per change of rows."""
        cached = self._cache.get("index")
        if cached is not None and cached[0] == self._rows_version:
            return cached[1]
        check(self.size > 0, "the store is empty, so it has no episodes", "add transitions first")
        logical = self.insertion_order()
        if self.num_envs == 1:  # ids never decrease in insertion order
            order = logical
        else:
            order = logical[torch.sort(self.episode_ids[logical], stable=True).indices]
        ids = self.episode_ids[order]
        n = order.shape[0]
        first = torch.ones(n, dtype=torch.bool, device=self.device)
        first[1:] = ids[1:] != ids[:-1]
        starts = first.nonzero().squeeze(1)
        ends = torch.cat([starts[1:], starts.new_full((1,), n)])
        seg = first.cumsum(0) - 1
        position = torch.empty_like(order)
        position[order] = torch.arange(n, device=self.device)
        index = EpisodeIndex(order, position, starts[seg], ends[seg], torch.stack([starts, ends], 1))
        self._cache["index"] = (self._rows_version, index)
        return index

    def episode_order(self) -> torch.Tensor:
        """Storage rows grouped by episode, steps in order (``(size,)`` int64); the insertion order
        when ``num_envs == 1``."""
        return self.episode_index().order

    def episode_bounds(self) -> torch.Tensor:
        """``(episodes, 2)`` int64: ``[start, end)`` of each stored episode (complete, running, or
        with its first steps overwritten) as places in :meth:`episode_order`, which is the insertion
        order (oldest row first) when ``num_envs == 1``. Episodes never cross the write position."""
        return self.episode_index().bounds

    def returns_to_go(self, gamma: float = 1.0, reward: str | None = None) -> torch.Tensor:
        """``(size,)`` float32 by storage row: ``Σ_{k>=0} γ^k r_{i+k}`` over row i and the later
        stored rows of its episode (a running episode: up to its newest row). Cached until the rows
        or rewards change."""
        check_number(gamma, "gamma", example="1.0")
        col = self._column(reward)
        key = ("rtg", float(gamma), reward or self._reward_key)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == (self._rows_version, self._rewards_version):
            return cached[1]
        index = self.episode_index()
        r = col[index.order].double()
        place = torch.arange(r.shape[0], device=self.device)
        a = (place + 1 < index.seg_end).double() * float(gamma)
        out = self._by_row(index, _backward_scan(r, a).float())
        self._cache[key] = ((self._rows_version, self._rewards_version), out)
        return out

    def n_step_targets(self, n: int, gamma: float = 0.99, reward: str | None = None) -> NStepTargets:
        """n-step returns of every stored row (:class:`NStepTargets`): truncated at the episode's end
        (its last stored row bootstraps), a terminal ends the sum without bootstrap, a timeout ends
        it bootstrapping from that row's next observation."""
        check(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1,
            f"n-step targets need an integer n >= 1, got {n!r}",
            "pass n=1 for one-step targets, e.g. n=3",
        )
        check_number(gamma, "gamma", example="0.99")
        col = self._column(reward)
        index = self.episode_index()
        order = index.order
        r = col[order].double()
        term, tout = self.terminated[order] != 0, self.timeouts[order]
        place = torch.arange(order.shape[0], device=self.device)
        ret, disc = torch.zeros_like(r), torch.ones_like(r)
        last, steps = place.clone(), torch.zeros_like(place)
        alive = torch.ones_like(term)
        ended_terminal = torch.zeros_like(term)
        for k in range(int(n)):
            q = place + k
            ok = alive & (q < index.seg_end)
            qc = q.clamp(max=order.shape[0] - 1)
            ret += torch.where(ok, disc * r[qc], 0.0)
            disc = torch.where(ok, disc * gamma, disc)
            last = torch.where(ok, q, last)
            steps += ok.long()
            ended_terminal |= ok & term[qc]
            alive = ok & ~term[qc] & ~tout[qc]
        discounts = torch.where(ended_terminal, 0.0, disc)
        return NStepTargets(
            self._by_row(index, ret.float()),
            self._by_row(index, order[last]),
            self._by_row(index, discounts.float()),
            self._by_row(index, steps),
        )

    @staticmethod
    def _by_row(index: EpisodeIndex, x: torch.Tensor) -> torch.Tensor:
        """Values given per place in ``index.order``, rearranged by storage row."""
        out = torch.empty_like(x)
        out[index.order] = x
        return out

    # ------------------------------------------------------------------ state
    def _kind(self) -> dict:
        return {
            "layout": "packed" if self.packed else "columns",
            "obs_shape": list(self.obs_shape),
            "obs_dtype": str(self.obs_dtype).removeprefix("torch."),
            "discrete": self.discrete,
            "act_dim": self.act_dim,
            "num_actions": self.num_actions,
            "num_envs": self.num_envs,
        }

    def _row_tensors(self) -> dict[str, torch.Tensor]:
        if self.packed:
            return {"data": self.data}
        return {
            "obs": self.obs,
            "next_obs": self.next_obs,
            "actions": self.actions,
            "terminated": self.terminated,
        }

    def state_dict(self) -> dict:
        """The stored rows (``[:size]``, on the CPU) and the running episodes: tensors, numbers,
        strings, lists and dicts only, so ``torch.load(weights_only=True)`` reads it back."""
        self._sync_episodes()
        n = self.size

        def rows(x: torch.Tensor) -> torch.Tensor:
            return x[:n].to("cpu", copy=True)

        return {
            "format": STATE_FORMAT,
            "kind": self._kind(),
            "capacity": self.capacity,
            "size": n,
            "pos": self.pos,
            "reward_key": self._reward_key,
            "tensors": {k: rows(v) for k, v in self._row_tensors().items()},
            "rewards": {
                k: rows(v) for k, v in self._rewards.items() if not (self.packed and k == self._reward_key)
            },
            "episodes": {k: rows(getattr(self, a)) for k, a in _EPISODE_FIELDS.items()},
            "running": {
                "run_id": self._run_id.cpu(),
                "run_len": self._run_len.cpu(),
                "open": self._open.cpu(),
                "next_id": self._next_id.cpu(),
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`. A state of another kind or size raises :class:`RlregError`.

        The episode columns are rebuilt from the terminals and timeouts (in insertion order) for
        states of the stores before episodes were kept (no timeouts then) and for a state saved with
        another ``num_envs``; a discrete state whose action count was not known loads into a store
        that knows it, and back."""
        check(
            isinstance(state, Mapping),
            f"replay state is a {type(state).__name__}, not a mapping",
            "pass what TransitionStore.state_dict() returned",
        )
        if "format" not in state:
            state = self._from_legacy(state)
        check(
            state["format"] == STATE_FORMAT,
            f"replay state has format {state['format']!r}; this rlreg reads {STATE_FORMAT!r}",
            "resume with the rlreg version that saved it, or start a new run",
        )
        change = _kind_change(state["kind"], self._kind())
        if change == "other":
            raise RlregError(
                f"replay state is for a {_describe(state['kind'])}; this is a {_describe(self._kind())}",
                _RESUME_FIX,
            )
        rebuild = change == "num_envs" or state.get("episodes") is None
        n, pos = int(state["size"]), int(state["pos"])
        pos = self._fit(n, pos, state.get("capacity"))
        check(
            not rebuild or n % self.num_envs == 0,
            f"replay state holds {n} rows, not a multiple of the store's {self.num_envs} environments",
            _RESUME_FIX,
        )
        self._total = self._done = 0  # rows waiting for episode columns are replaced
        self._given = []
        self._timeouts_written = True
        try:
            self._load_rows(state, n, episodes=not rebuild)
        except (KeyError, TypeError, AttributeError, RuntimeError) as e:
            raise RlregError(
                f"replay state is damaged ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]})",
                "resume from an intact checkpoint, or start a new run",
            ) from None
        self.size, self.pos = n, pos
        if rebuild:
            self._rebuild_episodes()
        self._rows_version += 1
        self._rewards_version += 1

    def _fit(self, n: int, pos: int, saved_capacity: int | None) -> int:
        """The write position after loading ``n`` rows saved with ``pos`` (a ring that had wrapped
        loads only into the same capacity)."""
        check(
            0 <= n <= self.capacity,
            f"replay state holds {n} rows; this store has capacity {self.capacity}",
            _RESUME_FIX,
        )
        wrapped = n == saved_capacity if saved_capacity is not None else pos != n % self.capacity
        if not wrapped:
            return n % self.capacity
        check(
            n == self.capacity,
            f"replay state is a full ring of {n} rows; this store has capacity {self.capacity}",
            _RESUME_FIX,
        )
        return pos

    def _from_legacy(self, state: Mapping) -> dict:
        """A state of the stores before episodes were kept (packed ``data`` or DiscreteReplay's
        columns) in today's form, with ``episodes`` None (rebuilt from the terminals)."""
        legacy_packed, legacy_columns = "data" in state, "obs" in state
        if not (legacy_packed or legacy_columns) or "size" not in state:
            raise RlregError(
                f"replay state has keys {sorted(state)}, not those of a TransitionStore state",
                "pass what TransitionStore.state_dict() returned",
            )
        if legacy_packed != self.packed:
            was = (
                "packed (flat float observations, continuous actions)" if legacy_packed else "image/discrete"
            )
            raise RlregError(
                f"replay state is from a {was} store; this is a {_describe(self._kind())}", _RESUME_FIX
            )
        names = ("data",) if legacy_packed else ("obs", "next_obs", "actions", "terminated")
        return {
            "format": STATE_FORMAT,
            "kind": self._kind(),
            "size": state["size"],
            "pos": state["pos"],
            "reward_key": "reward",
            "tensors": {k: state[k] for k in names},
            "rewards": {} if legacy_packed else {"reward": state["rewards"]},
            "episodes": None,
            "running": None,
        }

    def _load_rows(self, state: Mapping, n: int, episodes: bool) -> None:
        saved_key, wanted = state["reward_key"], self._reward_key
        for k in (saved_key, *state["rewards"]):
            if k not in self._rewards:
                self._rewards[k] = self._new_column(float("nan"))
        self.reward_key = saved_key  # the packed reward column holds the saved default column
        dst = self._row_tensors()
        check(
            set(state["tensors"]) == set(dst),
            f"replay state has columns {sorted(state['tensors'])}, this store {sorted(dst)}",
            _RESUME_FIX,
        )
        for k, v in state["tensors"].items():
            _copy_rows(dst[k], v, n, k)
        for k, col in self._rewards.items():
            if k in state["rewards"]:
                _copy_rows(col, state["rewards"][k], n, f"rewards[{k!r}]")
            elif not (self.packed and k == saved_key):
                col[:n] = float("nan")
        if state["episodes"] is None:  # not kept then
            self.timeouts[:n] = False
        elif not episodes:
            _copy_rows(self.timeouts, state["episodes"]["timeouts"], n, "timeouts")
        else:
            for k, a in _EPISODE_FIELDS.items():
                _copy_rows(getattr(self, a), state["episodes"][k], n, k)
            run = state["running"]
            for name, k in (
                ("_run_id", "run_id"),
                ("_run_len", "run_len"),
                ("_open", "open"),
                ("_next_id", "next_id"),
            ):
                _copy_rows(getattr(self, name), run[k], None, k)
        self.reward_key = wanted

    def _rebuild_episodes(self) -> None:
        """Episode columns from the terminals and timeouts of the stored rows, oldest first (row l
        of ``size`` from environment ``l % num_envs``, as when every add had ``num_envs`` rows)."""
        self._reset_running()
        self._total, self._given = self.size, [[self.size, False]]  # every stored row waits
        self._sync_episodes()


def _kind_change(saved: dict, mine: dict) -> str:
    """``"same"``, ``"num_envs"`` (only the environment count differs) or ``"other"``; an unknown
    discrete action count (None) matches any."""
    if not isinstance(saved, dict):
        return "other"
    counts = saved.get("num_actions"), mine["num_actions"]
    if None not in counts and counts[0] != counts[1]:
        return "other"
    rest = ("num_actions", "num_envs")
    if {k: v for k, v in saved.items() if k not in rest} != {k: v for k, v in mine.items() if k not in rest}:
        return "other"
    return "same" if saved.get("num_envs") == mine["num_envs"] else "num_envs"


def _copy_rows(dst: torch.Tensor, src: object, n: int | None, name: str) -> None:
    """``dst[:n] = src`` (all of ``dst`` when ``n`` is None) after checking ``src``'s shape and kind."""
    want = tuple(dst.shape) if n is None else (n, *dst.shape[1:])
    ok = isinstance(src, torch.Tensor) and tuple(src.shape) == want
    if ok and src.dtype != dst.dtype:
        ok = src.dtype.is_floating_point == dst.dtype.is_floating_point and (dst.dtype != torch.bool) == (
            src.dtype != torch.bool
        )
    if not ok:
        got = f"{tuple(src.shape)} {src.dtype}" if isinstance(src, torch.Tensor) else type(src).__name__
        raise RlregError(
            f"replay state's '{name}' is {got}; this store expects {want} {dst.dtype}".replace("torch.", ""),
            _RESUME_FIX,
        )
    if n is None:
        dst.copy_(src)
    else:
        dst[:n] = src.to(dst.device)


def field_names() -> tuple[str, ...]:
    """Names of the array fields of :class:`Transitions`, in storage order."""
    return tuple(f.name for f in fields(Transitions) if f.name != "info")
