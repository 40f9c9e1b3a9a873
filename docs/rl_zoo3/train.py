"""rl-zoo3 with rlreg's regularized SB3 classes: the zoo's own ``rl_zoo3.train`` entry point, with
its ``td3``/``sac``/``dqn``/``ppo`` algorithms replaced by rlreg's subclasses (the same classes plus
``regularizers=``), so a zoo hyper-parameter file can name regularizers::

    python docs/rl_zoo3/train.py --algo td3 --env Pendulum-v1 --conf-file docs/rl_zoo3/td3bc.yml \\
        -n 5000 -f logs/

Without a ``regularizers`` key a file trains exactly as SB3's class would (the subclasses equal
their parents then), so the zoo's tuned files keep working. The zoo has no plugin mechanism for
algorithms (``rl_zoo3.utils.ALGOS`` is a plain dict, and ``--custom-objects`` only affects
loading), hence this three-line launcher; ``--gym-packages rlreg.envs.minatar`` registers our
MinAtar environments for ``--env rlreg/MinAtar-Breakout-v0``.
"""

from rl_zoo3.train import train
from rl_zoo3.utils import ALGOS
from rlreg.agents.sb3 import DQN, PPO, SAC, TD3

ALGOS.update({"td3": TD3, "sac": SAC, "dqn": DQN, "ppo": PPO})

if __name__ == "__main__":
    train()
