r"""Stable-Baselines3's TD3 with rlreg regularizers (issue 15, first slice).

``TD3(policy, env, ..., regularizers=[BC()], alpha=2.5)`` is SB3's own
:class:`stable_baselines3.TD3` (same constructor, same policies, ``policy_kwargs``, callbacks,
VecEnvs, logger) whose ``train()`` is SB3's update with the regularizer hooks of
:mod:`rlreg.regularizers.base` called through the same view protocol as rlreg's own agents
(:class:`~rlreg.regularizers.base.ActorCriticView`)::

    y = r + γ (1 − d) min_i Q̄_i(s', ā')   → critic_target hooks (no grad), td_weights hooks
    L_Q = Σ_i mean_B w (Q_i(s, a) − y)² + Σ critic terms        (SB3: Σ_i mse(Q_i, y) for w = 1)
    every policy_delay updates:
      L_π = −λ mean_B Q_1(s, π(s)) + Σ actor terms,  λ = α / mean_B |Q_1(s, π(s))| (detached; 1 if
      alpha is None: SB3's TD3)

With ``regularizers=[]`` and ``alpha=None`` the update is exactly SB3's (tested: same losses and
parameters). Terms are logged as ``train/<reg>/<term>`` (means over the gradient steps of a
``train()`` call). SB3 stores actions scaled to ``[-1, 1]`` and its actor outputs that range, so the
view's action box is ``[-1, 1]``; regularizers see observations as SB3's policy does (after a
``VecNormalize``, if any). Regularizers needing a dataset in ``setup`` (PRDC) are set up by
:meth:`TD3.setup_regularizers`; without one, ``setup`` gets the spaces only.

Offline: ``model.learn_offline(dataset, gradient_steps, eval_env=...)``
(:mod:`rlreg.agents.sb3.offline`), then ``learn()`` fine-tunes online (``regularizer_scale``
anneals the terms, :mod:`rlreg.agents.sb3.common`). ``save()``/``load()`` rebuild the regularizers
from their configs and restore their state (networks, optimizers, generators); kNN indexes are
rebuilt by ``learn_offline``.

Architectures are SB3's ``policy_kwargs``; A2PR's (Liu et al. 2024: a 3×256 actor, 4×256 twin
critics; its own V-net and VAE are the regularizer's ``value_hidden``/``vae_hidden``) is
``policy_kwargs={"net_arch": {"pi": [256, 256, 256], "qf": [256, 256, 256, 256]}}``.
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
from rlreg.errors import check
from rlreg.regularizers.base import Regularizer, SetupSource

__all__ = ["TD3"]


class _View(ActorCriticViewBase):
    """:class:`~rlreg.regularizers.base.ActorCriticView` of an SB3 TD3 model."""

    def actor_due(self, update: int) -> bool:
        return update % self._m.policy_delay == 0

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self._m.actor(obs)

    def policy_target(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._m.actor_target(obs)


class TD3(RegularizedMixin, OfflineMixin, sb3.TD3):
    """SB3's TD3 with ``regularizers`` (rlreg objects, in order) and TD3+BC's ``alpha``."""

    family = "actor_critic"
    algo = "TD3"

    def __init__(
        self,
        *args: Any,
        regularizers: Sequence[Regularizer | str | dict] = (),
        alpha: float | None = None,
        regularizer_scale: Scale = 1.0,
        **kwargs: Any,
    ) -> None:
        self._init_regularizers(regularizers, regularizer_scale)
        check(
            alpha is None or alpha > 0,
            f"alpha must be > 0 or None, got {alpha}",
            "use alpha=2.5 (TD3+BC) or leave it unset",
        )
        self.alpha = alpha
        self._policy_version = 0
        self._dataset_rows = 0  # learn_offline's dataset fills the buffer's first rows
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self._setup_regularized()
        self._restore_offline()
        self._prepares = any(
            type(r).prepare_actor is not Regularizer.prepare_actor for r in self.regularizers
        )

    def _make_view(self) -> _View:
        return _View(self)

    def _setup_source(self, **source: Any) -> SetupSource:
        return actor_critic_source(self._view, **source)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_prepares"]

    # ------------------------------------------------------------------ the update
    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's TD3 update with the regularizer hooks (see the module docstring)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        actor_losses, critic_losses = [], []
        self._sink.clear()
        for _ in range(gradient_steps):
            self._n_updates += 1
            data, rows = sample_with_rows(self, batch_size)
            discounts = data.discounts if data.discounts is not None else self.gamma
            batch = TensorBatch(
                data.observations,
                data.actions,
                data.rewards[:, 0],
                data.next_observations,
                data.dones[:, 0],
                rows,
            )
            actor_due = self._n_updates % self.policy_delay == 0
            if actor_due and self._prepares:  # π(s) early only for regularizers that start work on it
                with torch.no_grad():
                    pi = self.actor(batch.observations)
                for r in self.regularizers:
                    r.prepare_actor(batch, pi, self._view)
            target, weights = self._target(data, batch, discounts)
            critic_losses.append(critic_step(self, batch, target, weights))
            self._extras(batch)
            if actor_due:
                actor_losses.append(self._actor_step(batch))
        self._record(actor_losses, critic_losses)

    def _target(self, data: Any, batch: TensorBatch, discounts: Any) -> tuple[torch.Tensor, Any]:
        """SB3's clipped double-Q target, then the ``critic_target`` and ``td_weights`` hooks."""
        with torch.no_grad():
            noise = data.actions.clone().data.normal_(0, self.target_policy_noise)
            noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
            next_actions = (self.actor_target(data.next_observations) + noise).clamp(-1, 1)
            next_q = target_q(self, data.next_observations, next_actions)
            next_q, _ = torch.min(next_q, dim=1, keepdim=True)
            target = data.rewards + (1 - data.dones) * discounts * next_q
            if not self.regularizers:
                return target, None
            self._view.next_action = next_actions
            y, weights = critic_targets(self, batch, target[:, 0])
            return y[:, None], weights

    def _actor_step(self, batch: TensorBatch) -> float:
        """``−λ mean Q1(s, π(s)) + Σ actor terms``; the actor's optimizer steps, then the targets."""
        with frozen(self.critic):
            pi = self.actor(batch.observations)
            q = self.critic.q1_forward(batch.observations, pi)
            lam = 1.0 if self.alpha is None else self.alpha / q.abs().mean().detach()
            loss = -lam * q.mean()
            if self.alpha is not None:
                self._sink["train/lambda"].append(torch.as_tensor(lam).detach())
            for r in self.regularizers:
                loss = loss + self._terms(r, r.actor_terms(batch, pi, self._view))
            self.actor.optimizer.zero_grad()
            loss.backward()
        self.actor.optimizer.step()
        self._policy_version += 1
        polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
        polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
        polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)
        return float(loss.item())

    def _record(self, actor_losses: list[float], critic_losses: list[float]) -> None:
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if actor_losses:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        self._record_terms()
