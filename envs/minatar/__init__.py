"""Batched MinAtar in torch (CPU and CUDA): all five games stepping N environments at once.

Our own batched design (state as tensors: positions, slot tensors, row bitmasks), written from
MinAtar's behavioural description (Young & Tian 2019, arXiv:1903.03176). The GPL ``minatar``
package was read and run to pin down exact mechanics (update order, constants, quirks), never
copied, and is only a test-time reference: the tests replay it in lockstep with our games and
compare every frame, and compare random-policy return/length distributions. See
:mod:`rlreg.envs.minatar.base` for the semantics shared by every game (actions, sticky actions, automatic
reset, random numbers).
"""

from rlreg.envs.minatar.base import ACTIONS, GAMES, BatchedGame, CounterRNG, MinAtarBatch

# game modules register themselves in GAMES on import
# isort: split
import rlreg.envs.minatar.asterix  # noqa: F401
import rlreg.envs.minatar.breakout  # noqa: F401
import rlreg.envs.minatar.freeway  # noqa: F401
import rlreg.envs.minatar.seaquest  # noqa: F401
import rlreg.envs.minatar.space_invaders  # noqa: F401
from rlreg.envs.minatar.gym_env import GYM_IDS, MinAtarEnv, MinAtarVectorEnv, register_envs

register_envs()  # rlreg/MinAtar-<Game>-v0

__all__ = [
    "ACTIONS",
    "GAMES",
    "GYM_IDS",
    "BatchedGame",
    "CounterRNG",
    "MinAtarBatch",
    "MinAtarEnv",
    "MinAtarVectorEnv",
    "register_envs",
]
