"""Batched MinAtar in torch (CPU and CUDA): all five games stepping N environments at once.

Written from MinAtar's behavioural description (Young & Tian 2019; ``../shared/research``), not
from its GPL code; the ``minatar`` package is only a test-time reference. See :mod:`envs.minatar.base`
for the semantics shared by every game (actions, sticky actions, automatic reset, random numbers).
"""

from envs.minatar.base import ACTIONS, GAMES, BatchedGame, CounterRNG, MinAtarBatch

# game modules register themselves in GAMES on import
# (added by each game's module below)
# isort: split
import envs.minatar.asterix  # noqa: F401
import envs.minatar.breakout  # noqa: F401
import envs.minatar.freeway  # noqa: F401
import envs.minatar.seaquest  # noqa: F401
import envs.minatar.space_invaders  # noqa: F401

__all__ = ["ACTIONS", "GAMES", "BatchedGame", "CounterRNG", "MinAtarBatch"]
