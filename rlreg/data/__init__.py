"""Data layer: transitions, the device-resident store with episode structure, trajectory windows,
D4RL and Minari readers/writers."""

from rlreg.data.d4rl import read_d4rl_hdf5, write_d4rl_hdf5
from rlreg.data.minari_io import load_minari, write_minari
from rlreg.data.scores import D4RL_REF_SCORES, d4rl_ref_scores, normalized_score
from rlreg.data.transitions import (
    DatasetInfo,
    EpisodeIndex,
    NStepTargets,
    ObsNormalizer,
    RewardTransform,
    TensorBatch,
    Transitions,
    TransitionStore,
)
from rlreg.data.windows import WindowBatch, WindowSampler

__all__ = [
    "DatasetInfo",
    "ObsNormalizer",
    "RewardTransform",
    "TensorBatch",
    "Transitions",
    "TransitionStore",
    "NStepTargets",
    "EpisodeIndex",
    "WindowSampler",
    "WindowBatch",
    "read_d4rl_hdf5",
    "write_d4rl_hdf5",
    "load_minari",
    "write_minari",
    "D4RL_REF_SCORES",
    "d4rl_ref_scores",
    "normalized_score",
]
