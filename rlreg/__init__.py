"""rlreg: policy and value regularizers for reinforcement learning."""

from rlreg.errors import RlregError

__version__ = "0.1.0"
__all__ = ["RlregError", "__version__"]
