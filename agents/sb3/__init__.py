"""Stable-Baselines3 algorithms with rlreg regularizers: SB3's own classes whose ``train()`` calls
the regularizer hooks through the same view protocol as rlreg's agents (issue 15)."""

from rlreg.agents.sb3.dqn import DQN, MinAtarCNN
from rlreg.agents.sb3.sac import SAC
from rlreg.agents.sb3.td3 import TD3

__all__ = ["DQN", "MinAtarCNN", "SAC", "TD3"]
