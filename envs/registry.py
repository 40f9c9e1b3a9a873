"""Environment names: D4RL dataset names → Gymnasium environment ids, and env construction.

D4RL's v2 locomotion datasets were collected in mujoco-py ``Hopper-v2`` etc.; rlreg evaluates in
Gymnasium's maintained MuJoCo ``*-v5`` envs (same bodies and rewards, new bindings), which is what
Minari's MuJoCo datasets use too. Scores are still normalized with D4RL's v2 reference returns for
D4RL files, so compare them with published numbers knowing that the simulator differs.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym

from rlreg.errors import RlregError

__all__ = [
    "D4RL_ENVS",
    "MINATAR_GAMES",
    "env_id_for_dataset",
    "make_env",
    "check_env_available",
    "minatar_game",
    "resolve_env_id",
]

# D4RL dataset prefix → Gymnasium env id.
D4RL_ENVS: dict[str, str] = {
    "halfcheetah": "HalfCheetah-v5",
    "hopper": "Hopper-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
    "pendulum": "Pendulum-v1",
}

_MUJOCO_IDS = {"HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5"}

MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
"""The five MinAtar games, as ``minatar:<game>`` environment specs name them (batched torch MinAtar)."""


def minatar_game(env_id: str | None) -> str | None:
    """The game of a ``minatar:<game>`` spec (``minatar:SpaceInvaders`` → ``space_invaders``), or None
    when ``env_id`` is not a MinAtar spec. An unknown game stops with the list of the five."""
    if env_id is None or not env_id.lower().startswith("minatar:"):
        return None
    raw = env_id.split(":", 1)[1].strip()
    key = raw.lower().replace("-", "").replace("_", "")
    names = {g.replace("_", ""): g for g in MINATAR_GAMES}
    if key.endswith("v0") or key.endswith("v1"):
        key = key[:-2]
    if key not in names:
        raise RlregError(
            f"unknown MinAtar game '{raw}' in --env {env_id}",
            "use minatar:<game> with one of: " + ", ".join(MINATAR_GAMES),
        )
    game = names[key]
    from rlreg.envs.minatar import GAMES

    if game not in GAMES:
        raise RlregError(
            f"MinAtar game '{game}' is not implemented in this version of rlreg",
            f"use one of: {', '.join(sorted(GAMES))}",
        )
    return game


def env_id_for_dataset(name: str) -> str | None:
    """Gymnasium env id for a D4RL-style dataset name or file stem (``hopper-medium-v2`` →
    ``Hopper-v5``), or None when the name is not recognised."""
    stem = re.split(r"[-_/]", name.strip().lower())
    for part in stem:
        if part in D4RL_ENVS:
            return D4RL_ENVS[part]
    return None


_RLREG_NAMESPACES = {"rlreg/dmc-": "rlreg.envs.dmc", "rlreg/MinAtar-": "rlreg.envs.minatar"}
"""Id prefixes of rlreg's own Gymnasium envs → the module whose import registers them."""


def resolve_env_id(env_id: str) -> str:
    """The Gymnasium id an ``--env`` names: ``dmc:<domain>-<task>`` → ``rlreg/dmc-<domain>-<task>-v0``
    (an unknown task stops with the valid ones); rlreg's own ids get their module imported, so
    they are registered; anything else is returned as it is."""
    import importlib

    if env_id.lower().startswith("dmc:"):
        from rlreg.envs.dmc import dmc_env_id, dmc_task

        return dmc_env_id(*dmc_task(env_id.split(":", 1)[1]))
    for prefix, module in _RLREG_NAMESPACES.items():
        if env_id.startswith(prefix):
            importlib.import_module(module)
    return env_id


def check_env_available(env_id: str) -> None:
    """Raise a clear error when ``env_id`` cannot be built here (unknown, or a missing extra)."""
    env_id = resolve_env_id(env_id)
    if env_id.startswith("antmaze") or "AntMaze" in env_id:
        raise RlregError(
            f"environment '{env_id}' (antmaze) is not available: it needs Gymnasium-Robotics",
            "pip install gymnasium-robotics, and pass --env with its AntMaze id",
        )
    try:
        gym.spec(env_id)
    except gym.error.Error as e:
        raise RlregError(
            f"unknown environment id '{env_id}' ({e})",
            "pass a registered Gymnasium id with --env, e.g. Hopper-v5",
        ) from e
    if env_id in _MUJOCO_IDS:
        try:
            import mujoco  # noqa: F401
        except ImportError as e:
            raise RlregError(
                f"environment '{env_id}' needs the mujoco package",
                "pip install 'rlreg[mujoco]' (mujoco>=3.1,<4)",
            ) from e


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` with rlreg's error messages."""
    check_env_available(env_id)
    return gym.make(resolve_env_id(env_id), **kwargs)
