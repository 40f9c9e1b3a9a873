r"""Stable-Baselines3's SAC with rlreg regularizers (issue 15).

``SAC(policy, env, ..., regularizers=[BC()])`` is SB3's own :class:`stable_baselines3.SAC` (same
constructor, policies, ``policy_kwargs``, learned or fixed entropy coefficient α, callbacks, logger)
whose ``train()`` is SB3's update (Haarnoja et al. 2018, arXiv:1812.05905) with the hooks of
:mod:`rlreg.regularizers.base`, called through the actor-critic view::

    a_π, log π(a_π|s) ~ π(·|s)  (reparameterised; the same sample the actor loss uses)
    prepare_actor(batch, a_π)                                                (no grad)
    y = r + γ(1 − d)(min_i Q̄_i(s', a') − α log π(a'|s')),  a' ~ π(·|s')
      → critic_target hooks (no grad), td_weights hooks
    L_Q = ½ Σ_i mean_B w (Q_i(s, a) − y)² + Σ critic terms          (SB3: ½ Σ_i mse for w = 1)
    update_extras
    L_π = mean_B(α log π(a_π|s) − min_i Q_i(s, a_π)) + Σ actor terms(batch, a_π)

SAC's entropy is SB3's own (its α, learned toward ``target_entropy`` or fixed): the squashed
Gaussian has no closed-form entropy for an ``entropy_terms`` hook, so none is called here (PPO
calls it). With ``regularizers=[]`` the update is exactly SB3's (tested). ``actor_terms`` receive the
reparameterised sample ``a_π`` the SAC loss uses (so BC on SAC pulls the sampled action to the
data); the view's ``policy(obs)`` is SAC's deterministic action ``tanh(μ(s))`` (differentiable; the
action ``predict(deterministic=True)`` takes), ``policy_target(obs)`` the same without gradient
(SAC has no target actor); ``actor_due`` is always true.

Offline: ``model.learn_offline(dataset, gradient_steps, eval_env=...)``
(:mod:`rlreg.agents.sb3.offline`), e.g. SAC + BC or SAC + PRDC; then ``learn()`` fine-tunes online.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import stable_baselines3 as sb3
import torch
from rlreg.agents.sb3.common import (
    ActorCriticViewBase,
    RegularizedMixin,
    Scale,
    actor_critic_source,
    critic_step,
    critic_targets,
    frozen,
    target_q,
)
from rlreg.agents.sb3.offline import OfflineMixin, sample_with_rows
from stable_baselines3.common.utils import polyak_update

from rlreg.data.transitions import TensorBatch
from rlreg.regularizers.base import Regularizer, SetupSource

__all__ = ["SAC"]


class _View(ActorCriticViewBase):
    """:class:`~rlreg.regularizers.base.ActorCriticView` of an SB3 SAC model."""

    def actor_due(self, update: int) -> bool:
        return True

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self._m.actor(obs, deterministic=True)

    def policy_target(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._m.actor(obs, deterministic=True)


class SAC(RegularizedMixin, OfflineMixin, sb3.SAC):
    """SB3's SAC with ``regularizers`` (rlreg objects, in order)."""

    family = "actor_critic"
    algo = "SAC"

    def __init__(
        self,
        *args: Any,
        regularizers: Sequence[Regularizer | str | dict] = (),
        regularizer_scale: Scale = 1.0,
        **kwargs: Any,
    ) -> None:
        self._init_regularizers(regularizers, regularizer_scale)
        self._policy_version = 0
        self._dataset_rows = 0
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self._setup_regularized()
        self._restore_offline()

    def _make_view(self) -> _View:
        return _View(self)

    def _setup_source(self, **source: Any) -> SetupSource:
        return actor_critic_source(self._view, **source)

    # ------------------------------------------------------------------ the update
    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """SB3's SAC update with the regularizer hooks (see the module docstring)."""
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)
        logs: dict[str, list[float]] = {"ent_coef": [], "ent_coef_loss": [], "actor": [], "critic": []}
        self._sink.clear()
        for gradient_step in range(gradient_steps):
            self._n_updates += 1
            data, rows = sample_with_rows(self, batch_size)
            batch = TensorBatch(
                data.observations,
                data.actions,
                data.rewards[:, 0],
                data.next_observations,
                data.dones[:, 0],
                rows,
            )
            if self.use_sde:
                self.actor.reset_noise()
            actions_pi, log_prob = self.actor.action_log_prob(data.observations)
            log_prob = log_prob.reshape(-1, 1)
            ent_coef = self._ent_coef_step(log_prob, logs)
            for r in self.regularizers:
                r.prepare_actor(batch, actions_pi.detach(), self._view)
            target, weights = self._target(data, batch, ent_coef)
            logs["critic"].append(critic_step(self, batch, target, weights, 0.5))
            self._extras(batch)
            logs["actor"].append(self._actor_step(batch, actions_pi, log_prob, ent_coef))
            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)
        self._record(logs)

    def _ent_coef_step(self, log_prob: torch.Tensor, logs: dict[str, list[float]]) -> torch.Tensor:
        """SB3's entropy-coefficient step (learned α) or its fixed α."""
        if self.ent_coef_optimizer is None or self.log_ent_coef is None:
            logs["ent_coef"].append(self.ent_coef_tensor.item())
            return self.ent_coef_tensor
        ent_coef = torch.exp(self.log_ent_coef.detach())
        loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
        logs["ent_coef_loss"].append(loss.item())
        logs["ent_coef"].append(ent_coef.item())
        self.ent_coef_optimizer.zero_grad()
        loss.backward()
        self.ent_coef_optimizer.step()
        return ent_coef

    def _target(self, data: Any, batch: TensorBatch, ent_coef: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """SB3's soft clipped double-Q target, then the ``critic_target`` and ``td_weights`` hooks."""
        discounts = data.discounts if data.discounts is not None else self.gamma
        with torch.no_grad():
            next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
            next_q = target_q(self, data.next_observations, next_actions)
            next_q, _ = torch.min(next_q, dim=1, keepdim=True)
            next_q = next_q - ent_coef * next_log_prob.reshape(-1, 1)
            target = data.rewards + (1 - data.dones) * discounts * next_q
            if not self.regularizers:
                return target, None
            self._view.next_action = next_actions
            y, weights = critic_targets(self, batch, target[:, 0])
            return y[:, None], weights

    def _actor_step(
        self, batch: TensorBatch, actions_pi: torch.Tensor, log_prob: torch.Tensor, ent_coef: torch.Tensor
    ) -> float:
        with frozen(self.critic):
            q_pi = torch.cat(self.critic(batch.observations, actions_pi), dim=1)
            min_q, _ = torch.min(q_pi, dim=1, keepdim=True)
            loss = (ent_coef * log_prob - min_q).mean()
            for r in self.regularizers:
                loss = loss + self._terms(r, r.actor_terms(batch, actions_pi, self._view))
            self.actor.optimizer.zero_grad()
            loss.backward()
        self.actor.optimizer.step()
        self._policy_version += 1
        return float(loss.item())

    def _record(self, logs: dict[str, list[float]]) -> None:
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(logs["ent_coef"]))
        self.logger.record("train/actor_loss", np.mean(logs["actor"]))
        self.logger.record("train/critic_loss", np.mean(logs["critic"]))
        if logs["ent_coef_loss"]:
            self.logger.record("train/ent_coef_loss", np.mean(logs["ent_coef_loss"]))
        self._record_terms()
