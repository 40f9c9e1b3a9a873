"""Gymnasium interfaces to the batched MinAtar games.

* :class:`MinAtarVectorEnv`, a ``gymnasium.vector.VectorEnv`` over one :class:`MinAtarBatch`
  (N environments stepped together in torch, on CPU or CUDA), with Gymnasium's ``SAME_STEP``
  autoreset;
* :class:`MinAtarEnv`, a single ``gymnasium.Env`` (no autoreset: call ``reset`` after an episode
  ends, as Gymnasium expects);
* registered ids ``rlreg/MinAtar-<Game>-v0`` (``Asterix``, ``Breakout``, ``Freeway``, ``Seaquest``,
  ``SpaceInvaders``), registered when :mod:`rlreg.envs.minatar` is imported::

      import gymnasium as gym
      import rlreg.envs.minatar  # registers the ids

      env = gym.make("rlreg/MinAtar-Breakout-v0")
      envs = gym.make_vec("rlreg/MinAtar-Breakout-v0", num_envs=1024)  # one batched env
      envs = gym.make_vec("rlreg/MinAtar-Breakout-v0", num_envs=1024, device="cuda")

Observations are ``(C, 10, 10)`` channels-first 0/1 values (``Box(0, 1)`` of ``obs_dtype``:
float32 by default, or uint8 / bool), actions ``Discrete(6)`` (``minimal_actions=True``: the
game's minimal set). Sticky actions (0.1, the last executed action persisting across episodes),
difficulty ramping and MinAtar's other semantics are those of :class:`MinAtarBatch`.

By default both return numpy arrays, as Gymnasium's API does; ``numpy=False`` returns the torch
tensors on the env's device instead (no host copy: the way to train on a GPU) and accepts action
tensors. One deviation from Gymnasium's ``SyncVectorEnv``, for speed: ``info["final_obs"]`` is a
dense ``(N, C, 10, 10)`` array (rows of environments that did not end equal ``obs``), not an
object array with ``None``; ``info["_final_obs"]`` marks the rows that ended, as usual.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from rlreg.envs.minatar.base import MinAtarBatch, resolve_device

from rlreg.errors import check

__all__ = ["GYM_IDS", "MinAtarEnv", "MinAtarVectorEnv", "register_envs"]

_DTYPES = {"float32": torch.float32, "uint8": torch.uint8, "bool": torch.bool}
_NUMPY = {torch.float32: np.float32, torch.uint8: np.uint8, torch.bool: np.bool_}
_NAMES = {
    "asterix": "Asterix",
    "breakout": "Breakout",
    "freeway": "Freeway",
    "seaquest": "Seaquest",
    "space_invaders": "SpaceInvaders",
}
GYM_IDS = {game: f"rlreg/MinAtar-{name}-v0" for game, name in _NAMES.items()}


def _dtype(obs_dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(obs_dtype, str):
        check(
            obs_dtype in _DTYPES,
            f"obs_dtype {obs_dtype!r} is not supported",
            f"use one of: {', '.join(_DTYPES)} (or the torch dtype)",
        )
        return _DTYPES[obs_dtype]
    check(
        obs_dtype in _NUMPY,
        f"obs_dtype {obs_dtype} is not supported",
        "use torch.float32, torch.uint8 or torch.bool",
    )
    return obs_dtype


def _spaces(batch: MinAtarBatch, dtype: torch.dtype) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
    """The single-environment observation and action spaces of a :class:`MinAtarBatch`."""
    obs = gym.spaces.Box(0, 1, (len(batch.game.channels), 10, 10), dtype=_NUMPY[dtype])
    return obs, gym.spaces.Discrete(batch.num_actions)


class MinAtarVectorEnv(VectorEnv):
    """``num_envs`` MinAtar environments of one game as one Gymnasium vector env (SAME_STEP autoreset).

    Keyword arguments after ``num_envs`` are :class:`MinAtarBatch`'s (``device``, ``seed``,
    ``sticky_action_prob``, ``difficulty_ramping``, ``minimal_actions``, ``max_episode_steps``,
    ``obs_dtype``), plus ``numpy`` (see the module docstring).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        game: str,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        seed: int = 0,
        obs_dtype: torch.dtype | str = torch.float32,
        numpy: bool = True,
        **batch_kwargs: Any,
    ) -> None:
        device = resolve_device(device)  # a clear error for 'cuda' on a machine without CUDA
        self._kwargs = dict(batch_kwargs, device=device, obs_dtype=_dtype(obs_dtype))
        self.game_name, self.num_envs, self.numpy = game, num_envs, numpy
        self.batch = MinAtarBatch(game, num_envs, seed=seed, **self._kwargs)
        spaces = _spaces(self.batch, self._kwargs["obs_dtype"])
        self.single_observation_space, self.single_action_space = spaces
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.render_mode = None
        self._started = False

    @property
    def device(self) -> torch.device:
        return self.batch.device

    def _out(self, x: torch.Tensor) -> Any:
        return x.cpu().numpy() if self.numpy else x

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """New episodes in every environment. ``seed`` (an int) restarts the random streams from
        that seed, as a new ``MinAtarBatch(game, N, seed=seed)`` would (the sticky last action
        back at no-op); without it the streams continue."""
        check(
            seed is None or isinstance(seed, int | np.integer),
            f"seed must be an int or None, got {type(seed).__name__}",
            "pass one int: environment i's stream is derived from it and i",
        )
        check(not options, f"options {options!r} are not supported", "call reset() without options")
        if seed is not None:
            self.batch = MinAtarBatch(self.game_name, self.num_envs, seed=int(seed), **self._kwargs)
        self._started = True
        return self._out(self.batch.reset()), {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        check(self._started, "step() before reset()", "call reset() first, as Gymnasium requires")
        obs, reward, terminated, truncated, final = self.batch.step(
            torch.as_tensor(np.asarray(actions) if self.numpy else actions, device=self.device)
        )
        done = terminated | truncated
        info = {"final_obs": self._out(final), "_final_obs": self._out(done)}
        return self._out(obs), self._out(reward), self._out(terminated), self._out(truncated), info


class MinAtarEnv(gym.Env):
    """One MinAtar environment (a :class:`MinAtarBatch` of 1), without autoreset."""

    metadata = {"render_modes": []}

    def __init__(
        self, game: str, seed: int = 0, obs_dtype: torch.dtype | str = torch.float32, **batch_kwargs: Any
    ) -> None:
        check(
            "num_envs" not in batch_kwargs,
            "MinAtarEnv is one environment",
            "use gym.make_vec(..., num_envs=N) or MinAtarVectorEnv for several",
        )
        self._vec = MinAtarVectorEnv(game, 1, seed=seed, obs_dtype=obs_dtype, **batch_kwargs)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self._ended = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        obs, info = self._vec.reset(seed=seed, options=options)
        self._ended = False
        return obs[0], info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        check(
            not self._ended,
            "step() after the episode ended (or before reset())",
            "call reset() to start an episode",
        )
        _, reward, terminated, truncated, info = self._vec.step(np.asarray([action]))
        self._ended = bool(terminated[0] or truncated[0])
        # the batch already started the next episode; the episode's own last frame is final_obs
        return info["final_obs"][0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}


def register_envs() -> None:
    """Register ``rlreg/MinAtar-<Game>-v0`` for every game (idempotent)."""
    for game, env_id in GYM_IDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            env_id,
            entry_point=MinAtarEnv,
            vector_entry_point=MinAtarVectorEnv,  # called with num_envs=N and the kwargs
            kwargs={"game": game},
        )
