r"""The entropy bonus of policy-gradient methods, as a regularizer.

Williams & Peng, *Function optimization using connectionist reinforcement learning algorithms*,
Connection Science 1991; Mnih et al., *Asynchronous Methods for Deep Reinforcement Learning*
(A3C), ICML 2016, arXiv:1602.01783; PPO's objective (Schulman et al. 2017, arXiv:1707.06347,
eq. 9) ``L^{CLIP} − c₁ L^{VF} + c₂ S[π_θ](s)``. At the ``entropy_terms`` hook:

.. math::

    \mathcal{L}_{ent} = -c\, \frac{1}{B} \sum_{i} \mathcal{H}\big[\pi_\theta(\cdot \mid s_i)\big]

(loss ``entropy_loss``; stat ``entropy``, the mean entropy in nats), the term SB3's PPO adds as
``ent_coef · entropy_loss`` and CleanRL's ``ppo.py`` as ``ent_coef · entropy.mean()`` (default
0.01 there and here; SB3's default ``ent_coef`` is 0). ``c = 0`` contributes nothing but still
logs the entropy. Where the distribution has no closed-form entropy (a tanh-squashed Gaussian),
``use_log_prob=True`` takes SB3's estimate ``H ≈ −mean log π(a|s)`` at the minibatch's actions.

Gradient: through the distribution's parameters into the policy (the actions are constants).

>>> import torch
>>> from rlreg.regularizers.entropy import Entropy
>>> dist = torch.distributions.Categorical(logits=torch.zeros(3, 4))
>>> round(Entropy(coef=0.5).entropy_terms(dist, {}, None).losses["entropy_loss"].item(), 4)
-0.6931
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlreg.errors import RlregError, check, check_number
from rlreg.regularizers.base import Regularizer, RegularizerConfig, Terms, register

__all__ = ["Entropy", "EntropyConfig"]


@dataclass
class EntropyConfig(RegularizerConfig):
    coef: float = 0.01
    """c, the bonus weight (CleanRL ppo.py: 0.01; SB3 PPO ent_coef default 0)."""
    use_log_prob: bool = False
    """Estimate H by −mean log π(a|s) at the batch's actions (for distributions without entropy())."""


@register
class Entropy(Regularizer):
    """The entropy bonus ``−c · mean H[π(·|s)]`` at the ``entropy_terms`` hook."""

    name = "entropy"
    families = frozenset({"policy_gradient"})
    Config = EntropyConfig
    capturable = True
    config: EntropyConfig

    def validate(self) -> None:
        check_number(self.config.coef, "entropy.coef", example="0.01 (0 disables the bonus)")
        check(
            isinstance(self.config.use_log_prob, bool),
            f"entropy.use_log_prob must be true or false, got {self.config.use_log_prob!r}",
            "set entropy.use_log_prob=false (closed-form entropy) or true (-log pi estimate)",
        )

    def entropy_terms(self, dist: Any, batch: Any, view: Any) -> Terms:
        if self.config.use_log_prob:
            h = -dist.log_prob(batch["actions"])
        else:
            try:
                h = dist.entropy()
            except NotImplementedError as e:
                raise RlregError(
                    f"entropy: the policy's distribution {type(dist).__name__} has no closed-form entropy",
                    "set entropy.use_log_prob=true (estimate it by -log pi at the batch's actions)",
                ) from e
        mean = h.mean()
        return Terms(losses={"entropy_loss": -self.config.coef * mean}, stats={"entropy": mean.detach()})
