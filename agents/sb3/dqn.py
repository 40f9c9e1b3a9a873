r"""Stable-Baselines3's DQN with rlreg regularizers (issue 15): Munchausen / MDVI targets, DVW weights.

``DQN(policy, env, ..., regularizers=[Munchausen()])`` is SB3's own :class:`stable_baselines3.DQN`
(same constructor, policies, ``policy_kwargs``, exploration schedule, callbacks, logger) whose
``train()`` is SB3's update (Mnih et al. 2015) with the hooks of :mod:`rlreg.regularizers.base`
called through the Q-learning view (:class:`~rlreg.regularizers.base.QLearningView`)::

    y = r + γ(1 − d) max_a' q̄(s', a')         → critic_target hooks (no grad), td_weights hooks
    L = mean_B w · Huber(q(s, a) − y) + Σ critic terms        (SB3: smooth_l1_loss for w = 1)
    [gradient-norm clip (SB3's max_grad_norm), optimizer step]
    update_extras
    at every target update (SB3's _on_step): on_target_update hooks, q̄⁻ ← q̄, then SB3's q̄ ← q

SB3's DQN keeps one target network; the regularizers' view also has the previous target q̄⁻
(DVW's variance target needs it), a copy rotated at every target update, created only when there
are regularizers. With ``regularizers=[]`` the update is exactly SB3's (tested). The view's
``new_q_network()`` is ``policy.make_q_net()`` (the user's architecture, e.g. a custom features
extractor), ``target_fn(batch, which)`` the full target from ``"target"`` or ``"prev_target"``.
n-step replay (``n_steps > 1``) is refused with regularizers that rewrite the target, whose
formulas are one-step.

MinAtar: SB3's ``CnnPolicy`` expects uint8 images of at least 36×36; :class:`MinAtarCNN` is
MinAtar's network (Young & Tian 2019: one 3×3 conv with 16 channels, one hidden layer of 128) as a
features extractor: ``policy_kwargs={"features_extractor_class": MinAtarCNN, "net_arch": []}``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3 as sb3
import torch
import torch.nn.functional as F
from rlreg.agents.sb3.common import RegularizedMixin, Scale, critic_targets
from rlreg.agents.sb3.offline import OfflineMixin
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import polyak_update
from torch import nn

from rlreg.data.transitions import TensorBatch
from rlreg.errors import check
from rlreg.regularizers.base import CriticContext, Regularizer, SetupSource

__all__ = ["DQN", "MinAtarCNN"]


class MinAtarCNN(BaseFeaturesExtractor):
    """MinAtar's convolutional torso for SB3 policies: ``Conv2d(C, 16, 3) → ReLU → Linear(16·(H−2)·(W−2),
    128) → ReLU`` on channels-first ``(C, H, W)`` observations (Young & Tian 2019, arXiv:1903.03176)."""

    def __init__(
        self, observation_space: gym.spaces.Box, features_dim: int = 128, channels: int = 16
    ) -> None:
        super().__init__(observation_space, features_dim)
        c, h, w = observation_space.shape
        self.conv = nn.Conv2d(c, channels, kernel_size=3, stride=1)
        self.fc = nn.Linear(channels * (h - 2) * (w - 2), features_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(F.relu(self.conv(obs)).flatten(1)))


class _View:
    """:class:`~rlreg.regularizers.base.QLearningView` of an SB3 DQN model; ``which`` names the
    network ``target_q_values`` reads (``"target"``, or ``"prev_target"`` inside ``target_fn``)."""

    family = "q_learning"

    def __init__(self, model: DQN, which: str = "target", logs: bool = True) -> None:
        self._m, self._which, self._logs = model, which, logs
        self.device = model.device
        self.gamma = float(model.gamma)
        self.num_actions = int(model.action_space.n)
        self.obs_shape = tuple(int(x) for x in model.observation_space.shape)
        self.td_target: torch.Tensor | None = None
        self.next_target_q: torch.Tensor | None = None

    @property
    def step(self) -> int:
        return self._m._n_updates

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self._m.q_net(obs)

    def target_q_values(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._m.network(self._which)(obs)

    def prev_target_q_values(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._m.q_net_prev_target(obs)

    def target_fn(self, batch: TensorBatch, which: str = "target") -> torch.Tensor:
        return self._m.bellman_target(batch, which)

    def new_q_network(self) -> nn.Module:
        return self._m.policy.make_q_net().to(self.device)

    def log(self, reg: Regularizer, key: str, value: torch.Tensor) -> None:
        if self._logs:
            self._m._sink[f"train/{reg.name}/{key}"].append(value.detach())


class DQN(RegularizedMixin, OfflineMixin, sb3.DQN):
    """SB3's DQN with ``regularizers`` (rlreg objects of the Q-learning family, in order)."""

    family = "q_learning"
    algo = "DQN"

    def __init__(
        self,
        *args: Any,
        regularizers: Sequence[Regularizer | str | dict] = (),
        regularizer_scale: Scale = 1.0,
        **kwargs: Any,
    ) -> None:
        self._init_regularizers(regularizers, regularizer_scale)
        self._dataset_rows = 0  # learn_offline's dataset fills the buffer's first rows
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.regularizer_specs:
            self.q_net_prev_target = copy.deepcopy(self.q_net_target).requires_grad_(False)
        self._setup_regularized()
        self._restore_offline()
        rewrites = [
            r.name for r in self.regularizers if type(r).critic_target is not Regularizer.critic_target
        ]
        check(
            not rewrites or getattr(self, "n_steps", 1) == 1,
            f"regularizer(s) {rewrites} rewrite the one-step TD target; this model uses "
            f"n_steps={self.n_steps}",
            "use n_steps=1 with them",
        )

    def _make_view(self) -> _View:
        return _View(self)

    def _setup_source(self, **source: Any) -> SetupSource:
        v = self._view
        return SetupSource(
            int(np.prod(v.obs_shape)), obs_shape=v.obs_shape, num_actions=v.num_actions, **source
        )

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, tensors = super()._get_torch_save_params()
        extra = ["q_net_prev_target"] if self.regularizer_specs else []
        return [*state_dicts, *extra], tensors

    def network(self, which: str) -> nn.Module:
        """``"online"`` (q), ``"target"`` (q̄) or ``"prev_target"`` (q̄⁻)."""
        nets = {"online": "q_net", "target": "q_net_target", "prev_target": "q_net_prev_target"}
        check(which in nets, f"unknown Q network '{which}'", f"use one of: {', '.join(nets)}")
        return getattr(self, nets[which])

    @torch.no_grad()
    def bellman_target(
        self, batch: TensorBatch, which: str = "target", view: _View | None = None
    ) -> torch.Tensor:
        """``r + γ(1 − d) max_a' q_which(s', a')``, then every ``critic_target`` hook, ``(B,)``."""
        view = view if view is not None else _View(self, which, logs=False)
        next_q = self.network(which)(batch.next_observations)
        view.next_target_q = next_q
        y = batch.rewards + (1.0 - batch.dones) * self.gamma * next_q.max(dim=1)[0]
        for r in self.regularizers:
            y = r.critic_target(batch, y, view)
        return y

    # ------------------------------------------------------------------ the update
    def _on_step(self) -> None:
        """Before SB3's target update (q̄ ← q): the ``on_target_update`` hooks and q̄⁻ ← q̄."""
        due = (self._n_calls + 1) % max(self.target_update_interval // self.n_envs, 1) == 0
        if due and self.regularizer_specs:
            for r in self.regularizers:
                r.on_target_update(self._view)
            polyak_update(self.q_net_target.parameters(), self.q_net_prev_target.parameters(), 1.0)
        super()._on_step()

    def _offline_updates(self, n: int) -> None:
        """Offline, the target network (and q̄⁻) is updated every ``target_update_interval`` gradient
        steps: SB3 counts environment steps, of which offline training has none (d3rlpy's DQN counts
        gradient steps too)."""
        interval = max(self.target_update_interval // self.n_envs, 1)
        while n > 0:
            k = min(n, interval - self._n_calls % interval)
            self.train(k, self.batch_size)
            self._n_calls += k - 1
            self._on_step()  # counts the k-th step; updates the targets when due
            n -= k

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """SB3's DQN update with the regularizer hooks (see the module docstring)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses = []
        self._sink.clear()
        for _ in range(gradient_steps):
            self._n_updates += 1
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            target, weights, batch = self._target(data)
            q = torch.gather(self.q_net(data.observations), dim=1, index=data.actions.long())
            if weights is None:
                loss = F.smooth_l1_loss(q, target)
            else:
                loss = (weights * F.smooth_l1_loss(q[:, 0], target[:, 0], reduction="none")).mean()
            if self.regularizers:
                ctx = CriticContext(q[:, 0][None], target[:, 0])
                for r in self.regularizers:
                    loss = loss + self._terms(r, r.critic_terms(batch, ctx, self._view))
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            if batch is not None:
                self._extras(batch)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", np.mean(losses))
        self._record_terms()

    def _target(self, data: Any) -> tuple[torch.Tensor, Any, TensorBatch | None]:
        """SB3's max target ``(B, 1)``; with regularizers the hooks' target and weights."""
        discounts = data.discounts if data.discounts is not None else self.gamma
        with torch.no_grad():
            next_q = self.q_net_target(data.next_observations)
            target = data.rewards + (1 - data.dones) * discounts * next_q.max(dim=1)[0].reshape(-1, 1)
            if not self.regularizers:
                return target, None, None
            batch = TensorBatch(
                data.observations,
                data.actions[:, 0].long(),
                data.rewards[:, 0],
                data.next_observations,
                data.dones[:, 0],
            )
            self._view.next_target_q = next_q
            y, weights = critic_targets(self, batch, target[:, 0])
            return y[:, None], weights, batch
