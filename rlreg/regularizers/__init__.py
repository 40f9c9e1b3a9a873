"""Regularizers: one file per method, all following the contract in :mod:`rlreg.regularizers.base`."""

from rlreg.regularizers.base import (
    REGISTRY,
    ActorCriticView,
    CriticContext,
    Regularizer,
    RegularizerConfig,
    SetupSource,
    Terms,
    make_regularizer,
    register,
    regularizer_names,
)
from rlreg.regularizers.bc import BC, BCConfig

__all__ = [
    "REGISTRY",
    "ActorCriticView",
    "BC",
    "BCConfig",
    "CriticContext",
    "Regularizer",
    "RegularizerConfig",
    "SetupSource",
    "Terms",
    "make_regularizer",
    "regularizer_names",
    "register",
]
