"""rlreg: policy and value regularizers for reinforcement learning.

``rlreg.train(...)`` and ``rlreg.load_run(dir)`` (``rlreg.agents.api``) are imported on first use,
so ``import rlreg`` stays cheap (no torch).
"""

from typing import Any

from rlreg.errors import RlregError

__version__ = "0.1.0"
__all__ = ["RlregError", "__version__", "train", "load_run"]


def __getattr__(name: str) -> Any:
    if name in ("train", "load_run"):
        from rlreg.agents import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlreg' has no attribute {name!r}")
