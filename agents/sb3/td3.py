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
(:mod:`rlreg.agents.sb3.offline`). Not yet here (issue 15, next sessions): SAC, DQN and PPO
subclasses, offline-to-online. ``save()``/``load()`` rebuild the regularizers from their configs
and restore their state (networks, optimizers, generators); kNN indexes are rebuilt by
``learn_offline``.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import stable_baselines3 as sb3
import torch
import torch.nn.functional as F
from rlreg.agents.sb3.offline import OfflineMixin
from stable_baselines3.common.utils import polyak_update

from rlreg.data.transitions import TensorBatch
from rlreg.errors import check
from rlreg.regularizers.base import REGISTRY, CriticContext, Regularizer, SetupSource, Terms

__all__ = ["TD3"]


class _View:
    """:class:`~rlreg.regularizers.base.ActorCriticView` of an SB3 TD3 model."""

    family = "actor_critic"

    def __init__(self, model: TD3) -> None:
        self._m = model
        self.device = model.device
        self.gamma = float(model.gamma)
        self.obs_dim = int(np.prod(model.observation_space.shape))
        self.act_dim = int(model.action_space.shape[0])
        self.action_low = -torch.ones(self.act_dim, device=self.device)  # SB3's scaled action box
        self.action_high = torch.ones(self.act_dim, device=self.device)
        self.next_action: torch.Tensor | None = None
        self.td_target: torch.Tensor | None = None
        self.sink: dict[str, list[torch.Tensor]] = defaultdict(list)

    @property
    def step(self) -> int:
        return self._m._n_updates

    @property
    def policy_version(self) -> int:
        return self._m._policy_version

    def actor_due(self, update: int) -> bool:
        return update % self._m.policy_delay == 0

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self._m.actor(obs)

    def policy_target(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._m.actor_target(obs)

    def q_values(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor:
        if target:
            with torch.no_grad():
                return torch.cat(self._m.critic_target(obs, act), dim=1).T
        return torch.cat(self._m.critic(obs, act), dim=1).T

    def q1(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor:
        if target:
            with torch.no_grad():
                return self._m.critic_target.q1_forward(obs, act)[:, 0]
        return self._m.critic.q1_forward(obs, act)[:, 0]

    def features(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor:
        """``(E, B, H)``: each Q network's input to its last layer."""
        critic = self._m.critic_target if target else self._m.critic
        with torch.set_grad_enabled(torch.is_grad_enabled() and not target):
            x = torch.cat([critic.extract_features(obs, critic.features_extractor), act], dim=1)
            return torch.stack([q[:-1](x) for q in critic.q_networks])

    def log(self, reg: Regularizer, key: str, value: torch.Tensor) -> None:
        self.sink[f"train/{reg.name}/{key}"].append(value.detach())


class _RegularizerState:
    """The regularizers' state as one SB3 "state dict" entry, so ``save()``/``load()`` and
    ``get_parameters``/``set_parameters`` carry it (networks, optimizers, generators, learned scalars;
    indexes are rebuilt by ``setup``, not saved)."""

    def __init__(self, model: TD3) -> None:
        self.model = model

    def state_dict(self) -> dict[str, Any]:
        return {"regularizers": [r.state_dict() for r in self.model.regularizers]}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        regs, saved = self.model.regularizers, state.get("regularizers", [])
        check(
            [r.name for r in regs] == [s.get("name") for s in saved],
            f"the saved regularizers {[s.get('name') for s in saved]} differ from this model's "
            f"{[r.name for r in regs]}",
            "load a model saved with the same regularizers",
        )
        for r, s in zip(regs, saved):
            r.load_state_dict(s)


class TD3(OfflineMixin, sb3.TD3):
    """SB3's TD3 with ``regularizers`` (rlreg objects, in order) and TD3+BC's ``alpha``."""

    def __init__(
        self, *args: Any, regularizers: Sequence[Regularizer] = (), alpha: float | None = None, **kwargs: Any
    ) -> None:
        self.regularizers = list(regularizers)
        self.regularizer_specs = [
            {"name": r.name, "config": dataclasses.asdict(r.config)} for r in self.regularizers
        ]
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
        if not getattr(self, "regularizers", None) and getattr(self, "regularizer_specs", None):
            self.regularizers = [REGISTRY[s["name"]](**s["config"]) for s in self.regularizer_specs]
        self._check_regularizers()
        self._view = _View(self)
        self.regularizer_state = _RegularizerState(self)
        self._prepares = any(
            type(r).prepare_actor is not Regularizer.prepare_actor for r in self.regularizers
        )
        self.setup_regularizers()

    def _check_regularizers(self) -> None:
        names = [r.name for r in self.regularizers]
        check(len(set(names)) == len(names), f"regularizers {names} list one twice", "list each once")
        bad = [r.name for r in self.regularizers if "actor_critic" not in r.families]
        fits = sorted(n for n, c in REGISTRY.items() if "actor_critic" in c.families)
        check(
            not bad,
            f"regularizer(s) {bad} do not fit SB3's TD3 (an actor-critic algorithm)",
            f"use one of: {', '.join(fits)}",
        )

    def setup_regularizers(self, **source: Any) -> None:
        """Run every regularizer's ``setup`` with the spaces and ``source`` fields (e.g. ``store=``,
        a dataset :class:`~rlreg.data.transitions.TransitionStore` for PRDC)."""
        view = self._view
        spec = SetupSource(view.obs_dim, view.act_dim, view.action_low, view.action_high, **source)
        for r in self.regularizers:
            if r.needs_dataset and spec.store is None:
                continue  # set up by learn_offline, which has the data
            r.setup(spec, view)
            r.to(self.device)
        self._offline_only = [r.name for r in self.regularizers if r.needs_dataset and spec.store is None]

    def learn(self, *args: Any, **kwargs: Any) -> TD3:
        """SB3's ``learn`` (online); refused while a regularizer still needs a dataset."""
        check(
            not getattr(self, "_offline_only", []),
            f"regularizer(s) {self._offline_only} need a dataset, which online learn() does not have",
            "train with model.learn_offline(dataset, gradient_steps=...) first",
        )
        return super().learn(*args, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        # regularizers hold indexes, thread pools and tensors: rebuilt from their specs on load
        names = ["regularizers", "_view", "_prepares", "_offline_only", "regularizer_state"]
        return [*super()._excluded_save_params(), *names]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, tensors = super()._get_torch_save_params()
        return [*state_dicts, "regularizer_state"], tensors

    # ------------------------------------------------------------------ the update
    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's TD3 update with the regularizer hooks (see the module docstring)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        actor_losses, critic_losses = [], []
        self._view.sink.clear()
        for _ in range(gradient_steps):
            self._n_updates += 1
            data, rows = self._sample(batch_size)
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
            critic_losses.append(self._critic_step(batch, target, weights))
            for r in self.regularizers:
                for k, v in r.update_extras(batch, self._view).items():
                    self._view.sink[f"train/{r.name}/{k}"].append(v.detach())
            if actor_due:
                actor_losses.append(self._actor_step(batch))
        self._record(actor_losses, critic_losses)

    def _sample(self, batch_size: int) -> tuple[Any, torch.Tensor | None]:
        """SB3's sample, drawn the way ``ReplayBuffer.sample`` draws it (same generator calls), with
        the sampled rows: where every row is a row of the dataset ``learn_offline`` wrote (the
        buffer's first ``n`` rows), they are the batch's ``indices``, which dataset-aware
        regularizers use (PRDC's certified search, its overlap recognising the batch)."""
        from stable_baselines3.common.buffers import ReplayBuffer

        buf, env = self.replay_buffer, self._vec_normalize_env
        if type(buf) is not ReplayBuffer or buf.optimize_memory_usage or not self._dataset_rows:
            return buf.sample(batch_size, env=env), None  # type: ignore[union-attr]
        upper = buf.buffer_size if buf.full else buf.pos
        inds = np.random.randint(0, upper, size=batch_size)
        data = buf._get_samples(inds, env=env)
        rows = torch.as_tensor(inds, device=self.device) if int(inds.max()) < self._dataset_rows else None
        return data, rows

    def _target(self, data: Any, batch: TensorBatch, discounts: Any) -> tuple[torch.Tensor, Any]:
        """SB3's clipped double-Q target, then the ``critic_target`` and ``td_weights`` hooks."""
        with torch.no_grad():
            noise = data.actions.clone().data.normal_(0, self.target_policy_noise)
            noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
            next_actions = (self.actor_target(data.next_observations) + noise).clamp(-1, 1)
            next_q = torch.cat(self.critic_target(data.next_observations, next_actions), dim=1)
            next_q, _ = torch.min(next_q, dim=1, keepdim=True)
            target = data.rewards + (1 - data.dones) * discounts * next_q
            if not self.regularizers:
                return target, None
            y = target[:, 0]
            for r in self.regularizers:
                y = r.critic_target(batch, y, self._view)
            self._view.next_action, self._view.td_target = next_actions, y
            weights = None
            for r in self.regularizers:
                w = r.td_weights(batch, self._view)
                if w is not None:
                    weights = w if weights is None else weights * w
            return y[:, None], weights

    def _critic_step(self, batch: TensorBatch, target: torch.Tensor, weights: Any) -> float:
        current = self.critic(batch.observations, batch.actions)
        if weights is None:
            loss = sum(F.mse_loss(q, target) for q in current)
        else:
            loss = sum((weights[:, None] * (q - target).square()).mean() for q in current)
        if self.regularizers:
            ctx = CriticContext(torch.cat(current, dim=1).T, target[:, 0])
            for r in self.regularizers:
                loss = loss + self._terms(r, r.critic_terms(batch, ctx, self._view))
        self.critic.optimizer.zero_grad()
        loss.backward()
        self.critic.optimizer.step()
        return float(loss.item())

    def _actor_step(self, batch: TensorBatch) -> float:
        """``−λ mean Q1(s, π(s)) + Σ actor terms``; the actor's optimizer steps, then the targets."""
        pi = self.actor(batch.observations)
        q = self.critic.q1_forward(batch.observations, pi)
        lam = 1.0 if self.alpha is None else self.alpha / q.abs().mean().detach()
        loss = -lam * q.mean()
        if self.alpha is not None:
            self._view.sink["train/lambda"].append(torch.as_tensor(lam).detach())
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

    def _terms(self, reg: Regularizer, terms: Terms) -> torch.Tensor | float:
        """Σ of a hook's losses; every term logged as ``train/<reg>/<term>``."""
        total: torch.Tensor | float = 0.0
        for k, v in terms.losses.items():
            self._view.sink[f"train/{reg.name}/{k}"].append(v.detach())
            total = total + v
        for k, v in terms.stats.items():
            self._view.sink[f"train/{reg.name}/{k}"].append(v.detach())
        return total

    def _record(self, actor_losses: list[float], critic_losses: list[float]) -> None:
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if actor_losses:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        for key, values in self._view.sink.items():  # one host read per train() call
            self.logger.record(key, float(torch.stack([v.float() for v in values]).mean()))
