"""Deterministic episode collection in a Gymnasium vector env with batched policy inference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["collect_episodes"]

Episode = dict[str, np.ndarray]


def collect_episodes(
    env_id: str,
    policy: Callable[[np.ndarray, np.random.Generator], np.ndarray],
    num_transitions: int,
    seed: int,
    num_envs: int = 16,
    env_kwargs: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Episode]:
    """Collect whole episodes until ``num_transitions`` transitions, Minari episode layout.

    ``policy(obs_batch, rng) -> action_batch`` sees raw observations of all envs at once. Env ``i``
    is first reset with seed ``seed * 1000 + i``; later resets draw from each env's own seeded RNG,
    so the result depends only on the arguments. Episodes are returned in the order they finish
    (ties by env index). The last episode is cut to make the total exact and its final step marked
    truncated. Each episode: ``observations`` (T+1), ``actions``, ``rewards``, ``terminations``,
    ``truncations`` (T each).
    """
    import gymnasium as gym  # here, not at import: listing datasets must not pay for gymnasium

    rng = np.random.default_rng(seed)
    env = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP},
        **(env_kwargs or {}),
    )
    try:
        obs, _ = env.reset(seed=[seed * 1000 + i for i in range(num_envs)])
        bufs: list[dict[str, list]] = [_new_buffer(obs[i]) for i in range(num_envs)]
        resetting = np.zeros(num_envs, bool)
        done_eps: list[Episode] = []
        total = 0
        while total < num_transitions:
            actions = np.asarray(policy(obs, rng), dtype=env.single_action_space.dtype)
            next_obs, rew, term, trunc, _ = env.step(actions)
            for i in range(num_envs):
                if resetting[i]:  # this step only reset env i (its action was ignored)
                    bufs[i] = _new_buffer(next_obs[i])
                    continue
                b = bufs[i]
                b["observations"].append(next_obs[i])
                b["actions"].append(actions[i])
                b["rewards"].append(rew[i])
                b["terminations"].append(bool(term[i]))
                b["truncations"].append(bool(trunc[i]))
                if term[i] or trunc[i]:
                    ep = _finish(b)
                    done_eps.append(ep)
                    n = len(ep["rewards"])
                    if progress is not None:  # count only what will be kept (the last episode is cut)
                        progress(max(0, min(n, num_transitions - total)))
                    total += n
            resetting = term | trunc
            obs = next_obs
        # keep episodes in finishing order up to the exact size; cut the last one (marked truncated)
        kept: list[Episode] = []
        remaining = num_transitions
        for ep in done_eps:
            n = len(ep["rewards"])
            if n <= remaining:
                kept.append(ep)
                remaining -= n
            else:
                cut = {
                    k: v[: remaining + 1] if k == "observations" else v[:remaining].copy()
                    for k, v in ep.items()
                }
                cut["terminations"][-1] = False
                cut["truncations"][-1] = True
                kept.append(cut)
                remaining = 0
            if remaining == 0:
                break
        done_eps = kept
        return done_eps
    finally:
        env.close()


def _new_buffer(first_obs: np.ndarray) -> dict[str, list]:
    return {"observations": [first_obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}


def _finish(b: dict[str, list]) -> Episode:
    from rlreg.data.transitions import action_array  # here: listing datasets must not import torch

    return {
        "observations": np.asarray(b["observations"], np.float32),
        "actions": action_array(np.asarray(b["actions"])),  # float32, or int64 indices (Discrete)
        "rewards": np.asarray(b["rewards"], np.float32),
        "terminations": np.asarray(b["terminations"], bool),
        "truncations": np.asarray(b["truncations"], bool),
    }
