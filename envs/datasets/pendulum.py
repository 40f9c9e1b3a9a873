"""A cheap D4RL-style suite on Gymnasium's ``Pendulum-v1`` (no MuJoCo needed).

The behaviour policy is a hand-written swing-up controller: energy pumping
``u = clip(-0.5·ω·E, ±2)`` with ``E = ω²/2 − 15(1 − cos θ)`` (zero at rest upright, since
``ω̇ = 15 sin θ + 3u`` in Pendulum-v1), switching to a PD balance ``u = clip(−(12θ + 2.5ω), ±2)``
when ``cos θ > 0.85``. Noise levels give the dataset levels:

======================  ==============================================  =====================
name                    behaviour                                       mean return (approx.)
======================  ==============================================  =====================
pendulum-random-v0      uniform actions                                 −1285
pendulum-medium-v0      controller + N(0, (1.5·2)²), clipped            −660
pendulum-expert-v0      controller + N(0, (0.2·2)²), clipped            −165
======================  ==============================================  =====================

Reference scores (normalized 0 and 100): the uniform random policy and the noiseless controller,
100 episodes each, as D4RL's random/expert references.
"""

from __future__ import annotations

import numpy as np

__all__ = ["swing_up", "noisy", "uniform", "LEVEL_NOISE"]

MAX_TORQUE = 2.0
LEVEL_NOISE = {"expert": 0.2, "medium": 1.5}


def swing_up(obs: np.ndarray) -> np.ndarray:
    """Noiseless swing-up controller; ``obs`` is ``(N, 3)`` = (cos θ, sin θ, ω)."""
    c, s, w = obs[:, 0], obs[:, 1], obs[:, 2]
    theta = np.arctan2(s, c)
    energy = 0.5 * w**2 - 15.0 * (1.0 - c)
    u_swing = np.clip(-0.5 * w * energy, -MAX_TORQUE, MAX_TORQUE)
    u_balance = np.clip(-(12.0 * theta + 2.5 * w), -MAX_TORQUE, MAX_TORQUE)
    return np.where(c > 0.85, u_balance, u_swing)[:, None].astype(np.float32)


def noisy(sigma: float):
    """Controller plus Gaussian noise of std ``sigma`` × max torque, clipped to the bounds."""

    def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = swing_up(obs)
        if sigma > 0:
            a = a + rng.normal(0.0, sigma * MAX_TORQUE, a.shape)
        return np.clip(a, -MAX_TORQUE, MAX_TORQUE).astype(np.float32)

    return policy


def uniform(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform random torques."""
    return rng.uniform(-MAX_TORQUE, MAX_TORQUE, (obs.shape[0], 1)).astype(np.float32)
