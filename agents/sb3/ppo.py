r"""Stable-Baselines3's PPO with rlreg regularizers at the ``entropy_terms`` hook (issue 15).

``PPO(policy, env, ..., regularizers=[Entropy(coef=0.01)])`` is SB3's own
:class:`stable_baselines3.PPO` (same constructor, policies, ``policy_kwargs``, VecEnvs, callbacks,
logger) whose ``train()`` is SB3's clipped-surrogate update (Schulman et al. 2017,
arXiv:1707.06347) with the policy-gradient hooks of :mod:`rlreg.regularizers.base`, per minibatch::

    L = −mean min(r Â, clip(r, 1 ± ε) Â) + ent_coef · (−mean H) + vf_coef · L_V
        + Σ entropy_terms(π(·|s), batch)                      (SB3's loss for regularizers=[])

The distribution the hooks receive is the one SB3's ``policy.evaluate_actions`` just built for the
loss (no second forward): ``torch.distributions.Categorical`` for discrete actions,
``Independent(Normal, 1)`` for a diagonal Gaussian (entropy and log-prob summed over action
dimensions, as SB3's); other distributions (multi-discrete, gSDE) are refused with regularizers.
``batch`` holds the minibatch's ``observations``, ``actions``, ``old_log_probs``, ``advantages``
(normalised as the loss uses them) and ``returns``. SB3's own ``ent_coef`` stays: to have the bonus
as a regularizer (logged as ``train/entropy/...``, annealable with ``regularizer_scale``), set
``ent_coef=0.0`` and pass ``Entropy(coef=c)``; the update then equals SB3's with ``ent_coef=c``
(tested). SIREN (issue 17) plugs in at the same hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import stable_baselines3 as sb3
import torch
import torch.nn.functional as F
from gymnasium import spaces
from rlreg.agents.sb3.common import RegularizedMixin, Scale
from stable_baselines3.common.utils import explained_variance

from rlreg.errors import RlregError
from rlreg.regularizers.base import Regularizer, SetupSource

__all__ = ["PPO", "torch_distribution"]


def torch_distribution(dist: Any) -> torch.distributions.Distribution:
    """The ``torch.distributions`` object of an SB3 ``Distribution`` with per-sample entropy/log-prob."""
    from stable_baselines3.common.distributions import (
        BernoulliDistribution,
        CategoricalDistribution,
        DiagGaussianDistribution,
    )

    if type(dist) is CategoricalDistribution:
        return dist.distribution
    if type(dist) in (DiagGaussianDistribution, BernoulliDistribution):
        return torch.distributions.Independent(dist.distribution, 1)
    raise RlregError(
        f"regularizers see the policy's distribution, and SB3's {type(dist).__name__} is not supported",
        "use a Discrete or Box action space without gSDE (use_sde=False)",
    )


class _View:
    """:class:`~rlreg.regularizers.base.PolicyGradientView` of an SB3 PPO model."""

    family = "policy_gradient"

    def __init__(self, model: PPO) -> None:
        self._m = model
        self.device = model.device
        self.gamma = float(model.gamma)
        self.discrete = isinstance(model.action_space, spaces.Discrete)
        self.num_actions = int(model.action_space.n) if self.discrete else None
        self.act_dim = None if self.discrete else int(np.prod(model.action_space.shape))

    @property
    def step(self) -> int:
        return self._m._minibatch_updates

    def log(self, reg: Regularizer, key: str, value: torch.Tensor) -> None:
        self._m._sink[f"train/{reg.name}/{key}"].append(value.detach())


class PPO(RegularizedMixin, sb3.PPO):
    """SB3's PPO with ``regularizers`` (rlreg objects of the policy-gradient family, in order)."""

    family = "policy_gradient"
    algo = "PPO"

    def __init__(
        self,
        *args: Any,
        regularizers: Sequence[Regularizer | str | dict] = (),
        regularizer_scale: Scale = 1.0,
        **kwargs: Any,
    ) -> None:
        self._init_regularizers(regularizers, regularizer_scale)
        self._minibatch_updates = 0
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self._setup_regularized()

    def _make_view(self) -> _View:
        return _View(self)

    def _setup_source(self, **source: Any) -> SetupSource:
        v, shape = self._view, tuple(int(x) for x in self.observation_space.shape or (1,))
        if v.discrete:
            return SetupSource(int(np.prod(shape)), obs_shape=shape, num_actions=v.num_actions, **source)
        return SetupSource(int(np.prod(shape)), v.act_dim, obs_shape=shape, **source)

    # ------------------------------------------------------------------ the update
    def train(self) -> None:
        """SB3's PPO update with the ``entropy_terms`` hooks (see the module docstring)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_vf = None
        if self.clip_range_vf is not None:
            clip_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
        logs: dict[str, list[float]] = {"entropy": [], "pg": [], "value": [], "clip": []}
        self._sink.clear()
        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                loss, approx_kl = self._minibatch_loss(rollout_data, clip_range, clip_vf, logs)
                approx_kl_divs.append(approx_kl)
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl:.2f}")
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                self._minibatch_updates += 1
            self._n_updates += 1
            if not continue_training:
                break
        self._record(logs, approx_kl_divs, loss, clip_range, clip_vf)

    def _minibatch_loss(
        self, data: Any, clip_range: float, clip_vf: float | None, logs: dict[str, list[float]]
    ) -> tuple[torch.Tensor, Any]:
        """SB3's PPO loss on one minibatch, plus every regularizer's ``entropy_terms``."""
        actions = data.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = data.actions.long().flatten()
        values, log_prob, entropy = self.policy.evaluate_actions(data.observations, actions)
        values = values.flatten()
        advantages = data.advantages
        if self.normalize_advantage and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        ratio = torch.exp(log_prob - data.old_log_prob)
        policy_loss = -torch.min(
            advantages * ratio, advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
        ).mean()
        logs["pg"].append(policy_loss.item())
        logs["clip"].append(torch.mean((torch.abs(ratio - 1) > clip_range).float()).item())
        values_pred = values
        if clip_vf is not None:
            values_pred = data.old_values + torch.clamp(values - data.old_values, -clip_vf, clip_vf)
        value_loss = F.mse_loss(data.returns, values_pred)
        logs["value"].append(value_loss.item())
        entropy_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)
        logs["entropy"].append(entropy_loss.item())
        loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
        if self.regularizers:
            dist = torch_distribution(self.policy.action_dist)
            batch = {
                "observations": data.observations,
                "actions": actions,
                "old_log_probs": data.old_log_prob,
                "advantages": advantages,
                "returns": data.returns,
            }
            for r in self.regularizers:
                loss = loss + self._terms(r, r.entropy_terms(dist, batch, self._view))
        with torch.no_grad():
            log_ratio = log_prob - data.old_log_prob
            approx_kl = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
        return loss, approx_kl

    def _record(
        self, logs: dict[str, list[float]], kls: list[Any], loss: torch.Tensor, clip: float, clip_vf: Any
    ) -> None:
        buf = self.rollout_buffer
        explained_var = explained_variance(buf.values.flatten(), buf.returns.flatten())
        self.logger.record("train/entropy_loss", np.mean(logs["entropy"]))
        self.logger.record("train/policy_gradient_loss", np.mean(logs["pg"]))
        self.logger.record("train/value_loss", np.mean(logs["value"]))
        self.logger.record("train/approx_kl", np.mean(kls))
        self.logger.record("train/clip_fraction", np.mean(logs["clip"]))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip)
        if clip_vf is not None:
            self.logger.record("train/clip_range_vf", clip_vf)
        self._record_terms()
