"""Stable-Baselines3 algorithms with rlreg regularizers: SB3's own classes whose ``train()`` calls
the regularizer hooks through the same view protocols as rlreg's agents (issue 15).

=========  ============================  ==================================================
class      regularizer family            hooks called
=========  ============================  ==================================================
``TD3``    actor-critic (BC, PRDC, A2PR) critic_target, td_weights, critic_terms, actor_terms
``SAC``    actor-critic (BC, PRDC, A2PR) the same
``DQN``    Q-learning (Munchausen, DVW)  critic_target, td_weights, critic_terms, targets
``PPO``    policy-gradient (entropy)     entropy_terms
=========  ============================  ==================================================
"""

from rlreg.agents.sb3.dqn import DQN, MinAtarCNN
from rlreg.agents.sb3.ppo import PPO
from rlreg.agents.sb3.sac import SAC
from rlreg.agents.sb3.td3 import TD3

__all__ = ["DQN", "MinAtarCNN", "PPO", "SAC", "TD3"]
