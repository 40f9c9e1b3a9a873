"""Regularizers: one file per method, all following the contract in :mod:`rlreg.regularizers.base`."""

from rlreg.regularizers.a2pr import A2PR, A2PRConfig
from rlreg.regularizers.base import (
    REGISTRY,
    ActorCriticView,
    CriticContext,
    PolicyGradientView,
    QLearningView,
    Regularizer,
    RegularizerConfig,
    SetupSource,
    Terms,
    make_regularizer,
    register,
    regularizer_names,
)
from rlreg.regularizers.bc import BC, BCConfig
from rlreg.regularizers.beer import BEER, BEERConfig
from rlreg.regularizers.dvw import DVW, DVWConfig
from rlreg.regularizers.entropy import Entropy, EntropyConfig
from rlreg.regularizers.munchausen import Munchausen, MunchausenConfig
from rlreg.regularizers.prdc import PRDC, PRDCConfig
from rlreg.regularizers.siren import Siren, SirenConfig

__all__ = [
    "A2PR",
    "A2PRConfig",
    "PRDC",
    "PRDCConfig",
    "REGISTRY",
    "ActorCriticView",
    "BC",
    "BCConfig",
    "BEER",
    "BEERConfig",
    "CriticContext",
    "DVW",
    "DVWConfig",
    "Entropy",
    "EntropyConfig",
    "Munchausen",
    "MunchausenConfig",
    "PolicyGradientView",
    "QLearningView",
    "Regularizer",
    "RegularizerConfig",
    "SetupSource",
    "Siren",
    "SirenConfig",
    "Terms",
    "make_regularizer",
    "regularizer_names",
    "register",
]
