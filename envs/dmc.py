"""DeepMind Control suite tasks as Gymnasium environments (Tassa et al. 2018, arXiv:1801.00690).

``gym.make("rlreg/dmc-cheetah-run-v0")`` (after ``import rlreg.envs.dmc``, or with the module
prefix ``gym.make("rlreg.envs.dmc:rlreg/dmc-cheetah-run-v0")``) and ``--env dmc:cheetah-run`` on
the CLI build :class:`DMCEnv`, the wrapping BEER's official code uses (dmc2gym, state observations;
He et al. 2024, github.com/sweetice/BEER-ICLR2024 @ 81834e5, ``main.py``):

* **observations**: the task's observation dict flattened by concatenating its values in the dict's
  order (scalars become one entry, arrays are raveled), as float32, in ``Box(-inf, inf)``;
* **actions**: ``Box(-1, 1)``, rescaled linearly to the task's bounds
  ``low + (a + 1)(high − low)/2`` (a no-op on the tasks whose bounds are ±1; quadruped's are not)
  and clipped to them;
* **action repeat** ``action_repeat`` (default 1): each action is applied that many control steps,
  the rewards summed;
* **episodes** of ``episode_length`` control steps (default 1000, every suite task's own limit), so
  ``episode_length / action_repeat`` agent steps, ended by **truncation** (``truncated=True``,
  never ``terminated``: a time limit is not a terminal state and must be bootstrapped through). A
  task that ends an episode itself with discount 0 reports ``terminated=True``;
* **seeding**: ``reset(seed=s)`` rebuilds the task with ``task_kwargs={"random": s}`` (dm_control's
  own seeding; the same seed gives the same episodes); later resets continue that task's generator;
* **rendering**: ``render_mode="rgb_array"`` (off by default) returns ``physics.render`` frames of
  ``render_size`` (height, width) from ``camera_id``; it needs an OpenGL backend (``MUJOCO_GL=egl``
  or ``osmesa``, or a display for ``glfw``), which is checked when the env is made.

Every suite task is registered (``rlreg/dmc-<domain>-<task>-v0``, e.g. ``rlreg/dmc-ball_in_cup-catch-v0``)
except the two LQR tasks, whose action bounds are ±1e10 (no [-1, 1] rescaling is meaningful). The
task list is the suite's ``ALL_TASKS`` of dm-control 1.0.50 (a test checks it against the installed
suite); importing this module does not import dm_control.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from rlreg.errors import RlregError, check

__all__ = ["DMCEnv", "DMC_TASKS", "dmc_env_id", "dmc_task", "register_envs"]

# dm_control.suite.ALL_TASKS (dm-control 1.0.50) without ("lqr", "lqr_2_1") and ("lqr", "lqr_6_2")
DMC_TASKS: tuple[tuple[str, str], ...] = (
    ("acrobot", "swingup"), ("acrobot", "swingup_sparse"), ("ball_in_cup", "catch"),
    ("cartpole", "balance"), ("cartpole", "balance_sparse"), ("cartpole", "swingup"),
    ("cartpole", "swingup_sparse"), ("cartpole", "two_poles"), ("cartpole", "three_poles"),
    ("cheetah", "run"), ("dog", "stand"), ("dog", "walk"), ("dog", "trot"), ("dog", "run"),
    ("dog", "fetch"), ("finger", "spin"), ("finger", "turn_easy"), ("finger", "turn_hard"),
    ("fish", "upright"), ("fish", "swim"), ("hopper", "stand"), ("hopper", "hop"),
    ("humanoid", "stand"), ("humanoid", "walk"), ("humanoid", "run"), ("humanoid", "run_pure_state"),
    ("humanoid_CMU", "stand"), ("humanoid_CMU", "walk"), ("humanoid_CMU", "run"),
    ("manipulator", "bring_ball"), ("manipulator", "bring_peg"), ("manipulator", "insert_ball"),
    ("manipulator", "insert_peg"), ("pendulum", "swingup"), ("point_mass", "easy"),
    ("point_mass", "hard"), ("quadruped", "walk"), ("quadruped", "run"), ("quadruped", "escape"),
    ("quadruped", "fetch"), ("reacher", "easy"), ("reacher", "hard"), ("stacker", "stack_2"),
    ("stacker", "stack_4"), ("swimmer", "swimmer6"), ("swimmer", "swimmer15"), ("walker", "stand"),
    ("walker", "walk"), ("walker", "run"),
)  # fmt: skip


def dmc_env_id(domain: str, task: str) -> str:
    """``rlreg/dmc-<domain>-<task>-v0``."""
    return f"rlreg/dmc-{domain}-{task}-v0"


def _names() -> list[str]:
    return [f"{d}-{t}" for d, t in DMC_TASKS]


def dmc_task(name: str) -> tuple[str, str]:
    """``(domain, task)`` of ``"cheetah-run"`` (the part after ``dmc:`` in ``--env dmc:cheetah-run``);
    an unknown name stops with the list of valid ones."""
    raw = name.strip()
    for d, t in DMC_TASKS:
        if raw == f"{d}-{t}":
            return d, t
    if raw.startswith("lqr-"):
        raise RlregError(
            f"DMC task '{raw}' is not available: its actions are unbounded (±1e10), so they cannot be "
            "rescaled from [-1, 1]",
            "use a bounded task, e.g. dmc:cheetah-run",
        )
    raise RlregError(
        f"unknown DMC task '{raw}'", "use dmc:<domain>-<task> with one of: " + ", ".join(_names())
    )


def _quiet_settotalmass(record: logging.LogRecord) -> bool:
    """dm-control 1.0.50's models use MuJoCo's deprecated ``settotalmass`` attribute, and every model
    load logs a warning about it (harmless: the mass is still set); only that message is dropped."""
    return "settotalmass" not in record.getMessage()


def _load_suite() -> Any:
    logger = logging.getLogger("absl")
    if _quiet_settotalmass not in logger.filters:
        logger.addFilter(_quiet_settotalmass)
    try:
        with warnings.catch_warnings():  # glfw warns at import when there is no display
            warnings.simplefilter("ignore")
            from dm_control import suite
    except ImportError as e:
        raise RlregError(
            "DeepMind Control environments need the dm-control package",
            "pip install 'rlreg[dmc]' (dm-control with mujoco>=3.1,<4)",
        ) from e
    return suite


def _flat_size(spec: Any) -> int:
    return int(np.prod(spec.shape)) if spec.shape else 1


class DMCEnv(gym.Env):
    """One dm_control suite task as a Gymnasium env (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        domain: str,
        task: str,
        action_repeat: int = 1,
        episode_length: int = 1000,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (84, 84),
        camera_id: int = 0,
        environment_kwargs: dict | None = None,
    ) -> None:
        check(
            (domain, task) in DMC_TASKS,
            f"unknown DMC task '{domain}-{task}'",
            "use one of: " + ", ".join(_names()),
        )
        for name, v in (("action_repeat", action_repeat), ("episode_length", episode_length)):
            check(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                f"{name} must be a positive integer, got {v!r}",
                f"pass {name}=N with N >= 1",
            )
        check(
            render_mode in (None, "rgb_array"),
            f"render_mode {render_mode!r} is not supported",
            "use render_mode='rgb_array' or leave it unset",
        )
        self.domain, self.task = domain, task
        self.action_repeat, self.episode_length = action_repeat, episode_length
        self.render_mode, self.render_size, self.camera_id = render_mode, tuple(render_size), camera_id
        self._env_kwargs = dict(environment_kwargs or {})
        self._suite = _load_suite()
        self._env = self._load(None)
        obs_spec, act_spec = self._env.observation_spec(), self._env.action_spec()
        size = sum(_flat_size(s) for s in obs_spec.values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self._low = np.asarray(act_spec.minimum, np.float64)
        self._high = np.asarray(act_spec.maximum, np.float64)
        self._half_range = 0.5 * (self._high - self._low)
        self._unit = bool(np.all(self._low == -1.0) and np.all(self._high == 1.0))
        self.action_space = gym.spaces.Box(-1.0, 1.0, act_spec.shape, np.float32)
        self._steps = 0
        self._started = False
        if render_mode is not None:
            self._check_renderer()

    def _load(self, seed: int | None) -> Any:
        # dm_control's own limit off: this wrapper truncates after episode_length control steps
        task_kwargs = {"random": seed, "time_limit": float("inf")}
        return self._suite.load(
            self.domain, self.task, task_kwargs=task_kwargs, environment_kwargs=self._env_kwargs or None
        )

    def _check_renderer(self) -> None:
        try:
            self._env.physics.render(height=8, width=8, camera_id=self.camera_id)
        except Exception as e:  # no OpenGL backend (dm_control raises RuntimeError or an import error)
            raise RlregError(
                f"render_mode='rgb_array' needs an OpenGL backend, and none works here ({e})",
                "set MUJOCO_GL=egl (GPU) or MUJOCO_GL=osmesa (CPU, with libOSMesa), or leave "
                "render_mode unset",
            ) from e

    def _obs(self, time_step: Any) -> np.ndarray:
        parts = [np.ravel(v) for v in time_step.observation.values()]
        return np.concatenate(parts, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._env = self._load(int(seed))
        self._steps = 0
        self._started = True
        return self._obs(self._env.reset()), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        check(self._started, "step() before reset()", "call env.reset() first")
        a = np.clip(np.asarray(action, np.float64).reshape(self.action_space.shape), -1.0, 1.0)
        if not self._unit:  # rescaled into [low, high] (a is in [-1, 1]); ±1 bounds: a itself
            a = self._low + (a + 1.0) * self._half_range
        control = a
        reward, terminated = 0.0, False
        for _ in range(self.action_repeat):
            time_step = self._env.step(control)
            reward += float(time_step.reward or 0.0)
            self._steps += 1
            if time_step.last():  # the task ended the episode itself
                terminated = time_step.discount == 0.0
                break
            if self._steps >= self.episode_length:
                break
        truncated = not terminated and (self._steps >= self.episode_length or time_step.last())
        if terminated or truncated:
            self._started = False
        return self._obs(time_step), reward, terminated, truncated, {"discount": float(time_step.discount)}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        h, w = self.render_size
        return self._env.physics.render(height=h, width=w, camera_id=self.camera_id)

    def close(self) -> None:
        env = getattr(self, "_env", None)
        if env is not None:
            env.close()


def register_envs() -> None:
    """Register ``rlreg/dmc-<domain>-<task>-v0`` for every task of :data:`DMC_TASKS` (idempotent)."""
    for domain, task in DMC_TASKS:
        env_id = dmc_env_id(domain, task)
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="rlreg.envs.dmc:DMCEnv", kwargs={"domain": domain, "task": task})


register_envs()
