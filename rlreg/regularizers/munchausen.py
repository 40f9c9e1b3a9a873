r"""KL/entropy-regularised value iteration as a target: Munchausen DQN and MDVI.

Papers: Vieillard, Pietquin & Geist, *Munchausen Reinforcement Learning*, NeurIPS 2020
(arXiv:2007.14430); Vieillard et al., *Leverage the Average*, NeurIPS 2020; Kozuno, Yang, Vieillard
et al., *KL-Entropy-Regularized RL with a Generative Model is Minimax Optimal* (MDVI), 2022;
Kitamura et al., *Regularization and Variance-Weighted Regression Achieves Minimax Optimality in
Linear MDPs*, ICML 2023 (arXiv:2305.13185). Reimplemented from the papers
(and the described behaviour of google-research munchausen_rl/), not from official code.

The ``critic_target`` hook replaces the DQN max target with

.. math::

    y = r + \alpha\,\mathrm{clip}\big(\tau_M \ln\bar\pi(a|s),\ l_0,\ 0\big)
          + \gamma (1 - d) \sum_{a'} \bar\pi(a'|s')\big[\bar q(s',a') - \tau_M \ln\bar\pi(a'|s')\big],
    \qquad \bar\pi = \mathrm{softmax}(\bar q / \tau_M)

with :math:`\bar q` the **target** network at both :math:`s` and :math:`s'` (inside DVW's
``target_fn(batch, "prev_target")`` the previous target :math:`\bar q^-`). The log-policy is
computed stably as :math:`\tau_M \ln\bar\pi = \bar q - \max\bar q - \tau_M \log\sum_b
\exp((\bar q_b - \max\bar q)/\tau_M)`. Without the clip this is MDVI with KL weight κ and entropy
weight τ (M-DQN Thm 1).

Parametrisation: this file takes MDVI's ``kl_coef`` κ and ``ent_coef`` τ. The same quantities
under other names (M-DQN §3, Leverage the Average §4, MDVI §3):

============================  ==============  ==================  ===============  ===============
paper                         KL coef         entropy coef        temperature      mixing coef
============================  ==============  ==================  ===============  ===============
Leverage the Average          λ               τ                   λ + τ            β = λ/(λ+τ)
Munchausen RL (M-DQN)         α·τ_M           (1−α)·τ_M           τ_M              α
MDVI (Kozuno; Kitamura)       κ               τ                   1/β = κ + τ      α = κ/(κ+τ)
DVW MinAtar code / this file  ``kl_coef``     ``ent_coef``        κ + τ            κ/(κ+τ)
============================  ==============  ==================  ===============  ===============

So M-DQN's defaults τ_M = 0.03, α = 0.9 are ``kl_coef = 0.027``, ``ent_coef = 0.003`` (the
defaults here); from (τ_M, α): κ = α·τ_M, τ = (1−α)·τ_M. ``clip_min`` is l₀ = −1.

Limits handled explicitly: κ = τ = 0 (τ_M = 0) is plain DQN: the softmax at temperature 0 is the
argmax, the soft value is :math:`\max_{a'}\bar q(s',a')` and the bonus is 0 (α·τ_M = κ = 0); the
target is then computed by the same expression as the agent's, so it equals the DQN target bit for
bit. This reads α = κ/(κ+τ) as 0 at κ = 0: letting κ, τ → 0 at a *fixed* α instead leaves the
advantage-learning bonus α·clip(q̄(s,a) − max q̄(s), l₀, 0), so the point κ = τ = 0 is a choice, not a
limit along every path. κ = 0 < τ gives soft (entropy-only) DQN with no bonus, which tends to DQN
as τ → 0; τ = 0 < κ gives pure KL (α = 1).

Deliberate deviations: the official M-DQN clips ``τ ln π`` to ``[l0, 1]``; the upper bound is
irrelevant (τ ln π ≤ 0), so it is ``[l0, 0]`` here. Acting stays greedy w.r.t. ``q`` (M-DQN's
default ``interact='greedy'``); the loss (Huber in Dopamine's M-DQN, MSE in DVW's) is the agent's.

Logged: ``bonus`` (mean Munchausen term α·clip(τ ln π̄(a|s))), ``entropy`` (mean entropy of
π̄(·|s'), nats) and ``soft_gap`` (mean of soft value − max q̄(s'), the entropy bonus: ≥ 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlreg.data.transitions import TensorBatch
from rlreg.errors import check, check_number
from rlreg.regularizers.base import Regularizer, RegularizerConfig, register

__all__ = ["Munchausen", "MunchausenConfig", "scaled_log_policy"]


@dataclass
class MunchausenConfig(RegularizerConfig):
    kl_coef: float = 0.027
    """κ, the KL weight (M-DQN: α·τ_M = 0.9 · 0.03)."""
    ent_coef: float = 0.003
    """τ, the entropy weight (M-DQN: (1−α)·τ_M = 0.1 · 0.03)."""
    clip_min: float = -1.0
    """l₀, lower clip of τ_M ln π̄(a|s) in the bonus (M-DQN: −1); must be <= 0."""


def scaled_log_policy(q: torch.Tensor, temperature: float) -> torch.Tensor:
    """``temperature · log softmax(q / temperature)`` along the last axis, computed stably as
    ``q − max q − temperature · log Σ exp((q − max q) / temperature)`` (``temperature > 0``)."""
    shifted = q - q.amax(-1, keepdim=True)
    return shifted - temperature * torch.logsumexp(shifted / temperature, dim=-1, keepdim=True)


@register
class Munchausen(Regularizer):
    """Munchausen / MDVI target: ``r + α·clip(τ_M ln π̄(a|s), l0, 0) + γ(1−d)·⟨π̄, q̄ − τ_M ln π̄⟩(s')``."""

    name = "munchausen"
    families = frozenset({"q_learning"})
    Config = MunchausenConfig
    capturable = True
    config: MunchausenConfig

    def validate(self) -> None:
        c = self.config
        check_number(c.kl_coef, "munchausen.kl_coef", example="0.027 (M-DQN: alpha 0.9 x tau 0.03)")
        check_number(c.ent_coef, "munchausen.ent_coef", example="0.003 (M-DQN: (1 - alpha) x tau 0.03)")
        check(
            isinstance(c.clip_min, (int, float)) and not isinstance(c.clip_min, bool) and c.clip_min <= 0,
            f"munchausen.clip_min must be a number <= 0 (tau ln pi <= 0 is clipped to [clip_min, 0]), "
            f"got {c.clip_min!r}",
            "set munchausen.clip_min to e.g. -1 (M-DQN's l0)",
        )

    @property
    def temperature(self) -> float:
        """τ_M = κ + τ."""
        return self.config.kl_coef + self.config.ent_coef

    @property
    def alpha(self) -> float:
        """α = κ / (κ + τ) (0 when κ = 0)."""
        return self.config.kl_coef / self.temperature if self.config.kl_coef > 0 else 0.0

    def critic_target(self, batch: TensorBatch, target: torch.Tensor, view: Any) -> torch.Tensor:
        gamma = view.gamma
        next_q = view.next_target_q
        if next_q is None:
            next_q = view.target_q_values(batch.next_observations)
        tau = self.temperature
        if tau == 0.0:  # temperature 0: argmax policy, no entropy, no bonus: the DQN max target
            next_v = next_q.amax(1)
            view.log(self, "bonus", torch.zeros((), device=next_q.device))
            view.log(self, "entropy", torch.zeros((), device=next_q.device))
            view.log(self, "soft_gap", torch.zeros((), device=next_q.device))
            return batch.rewards + gamma * (1.0 - batch.dones) * next_v
        next_log_pi = scaled_log_policy(next_q, tau)  # τ ln π̄(·|s')
        next_pi = torch.softmax(next_q / tau, dim=1)
        next_v = (next_pi * (next_q - next_log_pi)).sum(1)
        y = batch.rewards + gamma * (1.0 - batch.dones) * next_v
        if self.alpha > 0:
            q_s = view.target_q_values(batch.observations)
            log_pi_a = scaled_log_policy(q_s, tau).gather(1, batch.actions.long()[:, None]).squeeze(1)
            bonus = self.alpha * log_pi_a.clamp(min=self.config.clip_min, max=0.0)
            y = y + bonus
            view.log(self, "bonus", bonus.mean())
        else:
            view.log(self, "bonus", torch.zeros((), device=y.device))
        view.log(self, "entropy", -(next_pi * next_log_pi).sum(1).mean() / tau)
        view.log(self, "soft_gap", (next_v - next_q.amax(1)).mean())
        return y
