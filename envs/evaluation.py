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

__all__ = ["EvalResult", "Evaluator", "MinAtarEvaluator"]


@dataclass
class EvalResult:
    """Undiscounted returns and lengths of each evaluation episode."""

    returns: np.ndarray
    lengths: np.ndarray

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
    ) -> EvalResult:
        """Run one episode per sub-env with ``policy(obs_batch) -> action_batch`` (raw observations).

        ``progress``, when given, is called after every vector step as ``progress(steps, finished)``:
        the vector steps taken so far and the number of episodes finished so far. It only observes:
        results are the same with or without it.
        """
        n = self.episodes
        obs, _ = self.env.reset(seed=[self.seed + i for i in range(n)])
        returns = np.zeros(n, np.float64)
        lengths = np.zeros(n, np.int64)
        active = np.ones(n, bool)
        steps = 0
        while active.any():
            actions = policy(obs)
            obs, rew, term, trunc, _ = self.env.step(actions)
            returns += np.where(active, rew, 0.0)
            lengths += active
            active &= ~(term | trunc)
            if progress is not None:
                steps += 1
                progress(steps, n - int(active.sum()))
        return EvalResult(returns, lengths)

    def close(self) -> None:
        self.env.close()


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
