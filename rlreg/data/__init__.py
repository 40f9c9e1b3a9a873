"""Data layer: transitions, device-resident stores, D4RL and Minari readers/writers."""

from rlreg.data.transitions import (
    DatasetInfo,
    ObsNormalizer,
    RewardTransform,
    TensorBatch,
    Transitions,
    TransitionStore,
)

__all__ = [
    "DatasetInfo",
    "ObsNormalizer",
    "RewardTransform",
    "TensorBatch",
    "Transitions",
    "TransitionStore",
]
