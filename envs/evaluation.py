"""Vectorized evaluation: all episodes of an evaluation run in parallel in one vector env.

Episode ``i`` of every evaluation is reset with seed ``seed + i``, so every evaluation sees the
same start states (the official TD3+BC/PRDC/A2PR code uses a fixed evaluation seed too). The
policy is deterministic and reads observations normalized with the dataset's statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rlreg.envs.registry import check_env_available, resolve_env_id

__all__ = [
    "EvalEpisode",
    "EvalResult",
    "Evaluator",
    "MinAtarEvaluator",
    "discounted_returns",
    "q_estimation_error",
]


@dataclass
class EvalEpisode:
    """One recorded evaluation episode: ``observations`` ``(T, *obs_shape)`` as the environment
    gave them (before each action), ``actions`` ``(T, ...)``, ``rewards`` ``(T,)``, and whether it
    ended by a termination (else a truncation: its return after ``T`` is unknown)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool


@dataclass
class EvalResult:
    """Undiscounted returns and lengths of each evaluation episode (and the episodes themselves,
    when recorded)."""

    returns: np.ndarray
    lengths: np.ndarray
    episodes: list[EvalEpisode] | None = None

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def std_return(self) -> float:
        return float(self.returns.std())


class Evaluator:
    """Runs ``episodes`` episodes at once in a ``SyncVectorEnv`` of that many copies of ``env_id``."""

    def __init__(
        self, env_id: str, episodes: int, seed: int, env_kwargs: dict[str, Any] | None = None
    ) -> None:
        check_env_available(env_id)
        self.env_id, self.episodes, self.seed = env_id, int(episodes), int(seed)
        self.env = gym.make_vec(
            resolve_env_id(env_id), num_envs=self.episodes, vectorization_mode="sync", **(env_kwargs or {})
        )

    @property
    def single_action_space(self) -> gym.spaces.Space:
        return self.env.single_action_space

    @property
    def single_observation_space(self) -> gym.spaces.Space:
        return self.env.single_observation_space

    def run(
        self,
        policy: Callable[[np.ndarray], np.ndarray],
        progress: Callable[[int, int], None] | None = None,
        record: bool = False,
    ) -> EvalResult:
        """Run one episode per sub-env with ``policy(obs_batch) -> action_batch`` (raw observations).

        ``progress``, when given, is called after every vector step as ``progress(steps, finished)``:
        the vector steps taken so far and the number of episodes finished so far. It only observes:
        results are the same with or without it. ``record`` keeps every episode's observations,
        actions and rewards (:attr:`EvalResult.episodes`).
        """
        n = self.episodes
        obs, _ = self.env.reset(seed=[self.seed + i for i in range(n)])
        returns = np.zeros(n, np.float64)
        lengths = np.zeros(n, np.int64)
        active = np.ones(n, bool)
        terminated = np.zeros(n, bool)
        trace: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        steps = 0
        while active.any():
            actions = policy(obs)
            if record:
                trace.append((np.array(obs), np.array(actions)))
            obs, rew, term, trunc, _ = self.env.step(actions)
            if record:
                trace[-1] += (np.asarray(rew, np.float64),)
            returns += np.where(active, rew, 0.0)
            lengths += active
            terminated |= active & term
            active &= ~(term | trunc)
            if progress is not None:
                steps += 1
                progress(steps, n - int(active.sum()))
        episodes = _episodes(trace, lengths, terminated) if record else None
        return EvalResult(returns, lengths, episodes)

    def close(self) -> None:
        self.env.close()


def _episodes(trace: list[tuple], lengths: np.ndarray, terminated: np.ndarray) -> list[EvalEpisode]:
    """Episode ``i`` is the first ``lengths[i]`` steps of sub-env ``i`` (later steps belong to the
    next, unused episode of that sub-env)."""
    obs, act, rew = (np.stack([t[k] for t in trace]) for k in range(3))
    return [
        EvalEpisode(obs[: lengths[i], i], act[: lengths[i], i], rew[: lengths[i], i], bool(terminated[i]))
        for i in range(len(lengths))
    ]


class MinAtarEvaluator:
    """Runs ``episodes`` MinAtar episodes at once in their own :class:`~rlreg.envs.minatar.MinAtarBatch`.

    Every evaluation builds the batch afresh with the same ``seed`` (episode ``i`` is environment
    ``i`` of that batch, whose random stream depends only on the seed and ``i``), so all evaluations
    see the same randomness. The policy maps ``(N, C, 10, 10)`` float observations on ``device`` to
    ``(N,)`` actions. Episodes are cut at ``max_episode_steps`` (MinAtar itself has no limit, and a
    good greedy Breakout policy never loses the ball); a cut episode counts with its return so far.
    """

    def __init__(
        self,
        game: str,
        episodes: int,
        seed: int,
        device: torch.device | str = "cpu",
        sticky_action_prob: float = 0.1,
        max_episode_steps: int = 10_000,
    ) -> None:
        self.game, self.episodes, self.seed = game, int(episodes), int(seed)
        self.device = torch.device(device)
        self.sticky_action_prob = float(sticky_action_prob)
        self.max_episode_steps = int(max_episode_steps)

    def run(self, policy: Callable[[torch.Tensor], torch.Tensor]) -> EvalResult:
        from rlreg.envs.minatar import MinAtarBatch

        n = self.episodes
        env = MinAtarBatch(
            self.game,
            n,
            self.device,
            seed=self.seed,
            sticky_action_prob=self.sticky_action_prob,
            max_episode_steps=self.max_episode_steps,
        )
        obs = env.observation()
        returns = torch.zeros(n, dtype=torch.float64, device=self.device)
        lengths = torch.zeros(n, dtype=torch.int64, device=self.device)
        active = torch.ones(n, dtype=torch.bool, device=self.device)
        t = 0
        while True:
            obs, rew, term, trunc, _ = env.step(policy(obs))
            returns += torch.where(active, rew.double(), 0.0)
            lengths += active
            active &= ~(term | trunc)
            t += 1
            if t % 16 == 0 and not bool(active.any()):  # one host sync per 16 steps
                break
        return EvalResult(returns.cpu().numpy(), lengths.cpu().numpy())

    def close(self) -> None:
        pass


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = Σ_{k≥0} γ^k r_{t+k}`` within the episode, ``(T,)`` float64."""
    out = np.zeros(len(rewards), np.float64)
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = float(rewards[t]) + gamma * g
        out[t] = g
    return out


def q_estimation_error(
    episodes: list[EvalEpisode], q_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], gamma: float
) -> dict[str, float]:
    """The critic's estimation error against discounted Monte-Carlo returns of evaluation episodes
    (the Q-estimation bias of Fujimoto et al. 2018 and BEER's "approximation error").

    At every step ``t`` whose return is known to within ``γ^h ≤ 0.01`` of the tail (all steps of a
    terminated episode; in a truncated one, those at least ``h = ⌈ln 0.01 / ln γ⌉`` steps before
    the cut), compare ``Q(s_t, a_t)`` (``q_fn(obs, actions)``, ``(T,)``) with ``G_t``:
    ``q_bias = mean(Q − G)``, ``q_error = mean|Q − G| / mean|G|`` (relative), ``q_mc = mean G``.
    NaN when no step qualifies (episodes shorter than ``h``).
    """
    h = int(np.ceil(np.log(0.01) / np.log(gamma))) if 0 < gamma < 1 else 0
    qs, gs = [], []
    for e in episodes:
        n = len(e.rewards) if e.terminated else len(e.rewards) - h
        if n <= 0:
            continue
        gs.append(discounted_returns(e.rewards, gamma)[:n])
        qs.append(np.asarray(q_fn(e.observations[:n], e.actions[:n]), np.float64).reshape(-1))
    if not qs:
        return {"q_bias": float("nan"), "q_error": float("nan"), "q_mc": float("nan")}
    q, g = np.concatenate(qs), np.concatenate(gs)
    return {
        "q_bias": float((q - g).mean()),
        "q_error": float(np.abs(q - g).mean() / max(np.abs(g).mean(), 1e-8)),
        "q_mc": float(g.mean()),
    }
