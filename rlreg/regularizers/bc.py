r"""Behaviour cloning term of TD3+BC (Fujimoto & Gu, NeurIPS 2021, arXiv:2106.06860).

TD3+BC's actor maximises

.. math::

    \pi = \arg\max_\pi \; \mathbb{E}_{(s,a)\sim D}\big[\lambda Q(s, \pi(s)) - (\pi(s) - a)^2\big],
    \qquad \lambda = \frac{\alpha}{\frac{1}{N}\sum_i |Q(s_i, a_i)|}\ \text{(detached)}

This file contributes the second part, ``bc_loss = w · mean_{batch, action dims} (π(s) − a)²``
(``F.mse_loss``, as the official code), at the ``actor_terms`` hook. The λ normalisation with
α = 2.5 belongs to the agent (``TD3Config.alpha``), because PRDC and A2PR share it. ``weight`` is
1 in the paper (the balance is set through α) and exists for ablations.

Gradient flows into π(s) only; the dataset action is a constant.

>>> import torch
>>> from rlreg.regularizers.bc import BC
>>> from rlreg.data.transitions import TensorBatch
>>> z = torch.zeros(2, 1)
>>> batch = TensorBatch(z, torch.tensor([[0.5], [-0.5]]), z[:, 0], z, z[:, 0])
>>> BC().actor_terms(batch, torch.zeros(2, 1), view=None).losses["bc_loss"].item()
0.25
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from rlreg.data.transitions import TensorBatch
from rlreg.errors import check_number
from rlreg.regularizers.base import Regularizer, RegularizerConfig, Terms, register

__all__ = ["BC", "BCConfig"]


@dataclass
class BCConfig(RegularizerConfig):
    weight: float = 1.0
    """Multiplier of the squared action error (TD3+BC: 1; balance through the agent's α)."""


@register
class BC(Regularizer):
    """TD3+BC's behaviour-cloning term: ``weight · mean((π(s) − a)²)``."""

    name = "bc"
    families = frozenset({"actor_critic"})
    Config = BCConfig
    capturable = True
    config: BCConfig

    def validate(self) -> None:
        check_number(self.config.weight, "bc.weight", example="1.0 (0 disables the term)")

    def actor_terms(self, batch: TensorBatch, policy_action: torch.Tensor, view: Any) -> Terms:
        mse = F.mse_loss(policy_action, batch.actions)
        loss = mse if self.config.weight == 1.0 else self.config.weight * mse
        return Terms(losses={"bc_loss": loss})
