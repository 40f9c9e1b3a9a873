"""A D4RL-style suite with discrete actions on Gymnasium's ``CartPole-v1`` (no MuJoCo needed).

The behaviour policy is a hand-written linear controller: push right (action 1) when
``θ̇ + K_θ·θ + K_x·x + K_v·ẋ > 0`` (observation ``(x, ẋ, θ, θ̇)``; the gains are :data:`GAINS`),
which balances the pole for the whole 500-step episode. A level takes a uniformly random action
with probability ε instead (ε-greedy, as the DQN-replay and MinAtar offline datasets are made):

======================  =============================  ===========================
name                    behaviour                      dataset mean return
======================  =============================  ===========================
cartpole-random-v0      uniform actions                22 (normalized 0.2)
cartpole-medium-v0      controller, ε = 0.4            215 (normalized 40.5)
cartpole-expert-v0      controller, ε = 0.1            500 (normalized 100, no terminals)
======================  =============================  ===========================

Reference scores (normalized 0 and 100): the uniform random policy and the noiseless controller,
100 episodes each, as D4RL's random/expert references.
"""

from __future__ import annotations

import numpy as np

__all__ = ["controller", "epsilon_greedy", "uniform", "LEVEL_EPS", "GAINS"]

GAINS = (1.0, 0.1, 0.5)
"""``(K_θ, K_x, K_v)`` of the controller."""
LEVEL_EPS = {"expert": 0.1, "medium": 0.4}


def controller(obs: np.ndarray) -> np.ndarray:
    """Noiseless controller; ``obs`` is ``(N, 4)`` = (x, ẋ, θ, θ̇); returns ``(N,)`` int64 actions."""
    k_theta, k_x, k_v = GAINS
    x, v, theta, omega = obs[:, 0], obs[:, 1], obs[:, 2], obs[:, 3]
    return (omega + k_theta * theta + k_x * x + k_v * v > 0).astype(np.int64)


def epsilon_greedy(eps: float):
    """The controller, with a uniformly random action instead with probability ``eps``."""

    def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = controller(obs)
        if eps > 0:
            explore = rng.random(a.shape[0]) < eps
            a = np.where(explore, rng.integers(0, 2, a.shape[0]), a)
        return a.astype(np.int64)

    return policy


def uniform(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform random actions."""
    return rng.integers(0, 2, obs.shape[0]).astype(np.int64)
