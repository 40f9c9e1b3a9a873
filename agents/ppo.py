r"""PPO with clipped surrogate and GAE(λ) (family ``"policy_gradient"``; Schulman et al. 2017,
arXiv:1707.06347; GAE: Schulman et al. 2016, arXiv:1506.02438), on batched environments.

Data come from the rollout source (:class:`rlreg.agents.sources.RolloutCollector`): ``n_steps``
steps of ``train.num_envs`` environments (Gymnasium environments, our DeepMind Control envs, or
batched torch MinAtar with the whole rollout on the device), advantages and returns from
:func:`~rlreg.agents.sources.compute_gae` (a time-limit truncation bootstraps from ``V(final_obs)``,
a termination from 0), then ``epochs`` passes of shuffled minibatches of ``batch_size`` samples.
One minibatch update:

.. math::

    \rho = \exp(\log\pi_\theta(a|s) - \log\pi_{old}(a|s)),\quad
    \hat A \leftarrow (\hat A - \mathrm{mean}\,\hat A) / (\mathrm{std}\,\hat A + 10^{-8})\\
    L_\pi = -\mathrm{mean}\,\min(\rho \hat A,\ \mathrm{clip}(\rho, 1 \pm \epsilon)\,\hat A)\\
    L_V = \tfrac12\,\mathrm{mean}\,\max\big((V - R)^2,\
          (V_{old} + \mathrm{clip}(V - V_{old}, \pm\epsilon) - R)^2\big)\\
    L = L_\pi + c_V L_V + \textstyle\sum \text{entropy\_terms}(\pi_\theta(\cdot|s), \text{batch})

then the global gradient norm is clipped to ``max_grad_norm`` and Adam (ε = 1e-5) steps, with the
learning rate annealed linearly to 0 over the run (per rollout, as CleanRL's ``ppo.py``). The
entropy bonus is not built in: it is the ``entropy`` regularizer at the ``entropy_terms`` hook
(SIREN plugs in at the same place), so PPO has no entropy special case. This is CleanRL's
``ppo.py`` / ``ppo_continuous_action.py`` update (vwxyzjn/cleanrl, norm_adv, clip_vloss,
anneal_lr on) reimplemented; the recipes name their sources.

Networks: separate actor and critic MLPs (``hidden``, tanh, orthogonal initialisation with gain
√2, 0.01 on the policy head and 1 on the value head, as CleanRL), on image observations behind a
shared convolutional torso (``conv_channels`` > 0: Conv2d k×k → ReLU → [2×2 average pool] →
flatten → [Linear(torso) → ReLU]; the PureJaxRL-style MinAtar network of pgx's
``examples/minatar-ppo``). Discrete actions: a categorical policy on logits; boxes: a diagonal
Gaussian with a state-independent log-std parameter, sampled unbounded (the rollout keeps the
unbounded action for its log-probability) and clipped to the box for the environment.
Evaluation acts greedily (argmax / the mean, clipped), as SB3's ``evaluate_policy``.

Regularizers see :class:`_View` (documented as :class:`rlreg.regularizers.base.PolicyGradientView`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rlreg.agents.base import UPDATE, Agent, add_terms, register_agent
from rlreg.agents.sources import Rollout, compute_gae
from torch import nn

from rlreg.conv import ConvTorso
from rlreg.errors import check, check_positive
from rlreg.regularizers.base import Regularizer, SetupSource

__all__ = ["PPOAgent", "PPOConfig", "ActorCritic"]

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


@dataclass
class PPOConfig:
    """Hyper-parameters of the PPO learner. Defaults: CleanRL ``ppo.py`` (CartPole)."""

    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the actor and of the critic MLP."""
    activation: str = "tanh"
    """``tanh`` (CleanRL, PureJaxRL) or ``relu``."""
    conv_channels: int = 0
    """Image observations: channels of the torso's convolution (0: flatten the observation)."""
    conv_kernel: int = 3
    """Kernel size of that convolution (stride 1, no padding)."""
    conv_same: bool = False
    """Zero-pad the convolution to keep the spatial size (``padding="same"``, haiku's default)."""
    conv_pool: bool = False
    """A 2×2 average pool after the convolution (pgx/PureJaxRL MinAtar)."""
    torso: int = 0
    """Width of a shared Linear+ReLU after the convolution (0: none)."""
    lr: float = 2.5e-4
    """Adam learning rate (at the start, when annealed)."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the run, once per rollout (CleanRL)."""
    adam_eps: float = 1e-5
    """Adam's epsilon (CleanRL, PureJaxRL: 1e-5)."""
    n_steps: int = 128
    """Steps per environment per rollout."""
    batch_size: int = 128
    """Minibatch size (``n_steps × num_envs`` must be a multiple of it)."""
    epochs: int = 4
    """Passes over each rollout."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE λ."""
    clip: float = 0.2
    """ε of the clipped surrogate (and of the value clipping)."""
    clip_vloss: bool = True
    """Clip the value loss around the rollout's values (CleanRL clip_vloss)."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    log_std_init: float = 0.0
    """Continuous actions: initial log standard deviation of the Gaussian policy."""

    def validate(self) -> None:
        check_positive(self, "ppo", ("lr", "adam_eps", "clip", "max_grad_norm"))
        check_positive(self, "ppo", ("n_steps", "batch_size", "epochs", "conv_kernel"), integer=True)
        check(
            self.activation in ACTIVATIONS,
            f"ppo.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}",
            "set agent.activation=tanh",
        )
        check(
            len(self.hidden) > 0 and all(isinstance(h, int) and h > 0 for h in self.hidden),
            f"ppo.hidden must be a non-empty list of positive widths, got {self.hidden!r}",
            "set agent.hidden=[64,64]",
        )
        for name in ("conv_channels", "torso"):
            v = getattr(self, name)
            check(
                isinstance(v, int) and v >= 0,
                f"ppo.{name} must be an integer >= 0, got {v!r}",
                f"set agent.{name}=0 (off) or a width",
            )
        for name in ("gamma", "gae_lambda"):
            v = getattr(self, name)
            check(0 <= v <= 1, f"ppo.{name} must lie in [0, 1], got {v!r}", f"use e.g. {name}=0.95")
        check(self.vf_coef >= 0, f"ppo.vf_coef must be >= 0, got {self.vf_coef}", "use e.g. vf_coef=0.5")


def _mlp(inp: int, hidden: Sequence[int], out: int, act: type[nn.Module], gain_out: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [_ortho(nn.Linear(inp, h), math.sqrt(2)), act()]
        inp = h
    layers.append(_ortho(nn.Linear(inp, out), gain_out))
    return nn.Sequential(*layers)


def _ortho(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Actor and critic MLPs, behind a shared convolutional torso for image observations.

    ``forward(obs) -> (head, value)``: ``head`` is ``(B, A)`` logits or ``(B, act_dim)`` Gaussian
    means, ``value`` is ``(B,)``. Observations may come flat; they are reshaped to ``obs_shape``.
    """

    def __init__(self, obs_shape: Sequence[int], out_dim: int, config: PPOConfig, continuous: bool) -> None:
        super().__init__()
        self.obs_shape = tuple(int(x) for x in obs_shape)
        c = config
        act = ACTIVATIONS[c.activation]
        torso: list[nn.Module] = []
        if c.conv_channels and len(self.obs_shape) == 3:
            ch, h, w = self.obs_shape
            k = c.conv_kernel
            if c.conv_same:  # haiku/TensorFlow SAME: k - 1 zeros, the extra one on the right and bottom
                lo = (k - 1) // 2
                torso.append(nn.ZeroPad2d((lo, k - 1 - lo, lo, k - 1 - lo)))
            torso += [_ortho(nn.Conv2d(ch, c.conv_channels, k), math.sqrt(2)), nn.ReLU()]
            if not c.conv_same:
                h, w = h - k + 1, w - k + 1
            if c.conv_pool:
                torso.append(nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            torso.append(nn.Flatten())
            width = c.conv_channels * h * w
            if c.torso:
                torso += [_ortho(nn.Linear(width, c.torso), math.sqrt(2)), nn.ReLU()]
                width = c.torso
        else:
            width = int(np.prod(self.obs_shape))
        self.torso = ConvTorso(*torso) if torso else nn.Sequential()
        self.actor = _mlp(width, c.hidden, out_dim, act, 0.01)
        self.critic = _mlp(width, c.hidden, 1, act, 1.0)
        self.log_std = nn.Parameter(torch.full((out_dim,), float(c.log_std_init))) if continuous else None

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = obs.float().reshape(obs.shape[0], *self.obs_shape)
        x = self.torso(x) if len(self.torso) else x.flatten(1)
        return self.actor(x), self.critic(x)[:, 0]


class _View:
    """The view a regularizer sees of a :class:`PPOAgent` (see ``PolicyGradientView``)."""

    family = "policy_gradient"

    def __init__(self, agent: PPOAgent) -> None:
        self._agent = agent
        self.device = agent.device
        self.gamma = float(agent.config.gamma)
        self.discrete = agent.num_actions is not None
        self.num_actions = agent.num_actions
        self.act_dim = agent.act_dim

    @property
    def step(self) -> int:
        return self._agent.num_updates

    def log(self, reg: Regularizer, key: str, value: torch.Tensor) -> None:
        self._agent._sink[f"reg/{reg.name}/{key}"] = value.detach()


@register_agent
class PPOAgent(Agent):
    """PPO with regularizer hooks (see the module docstring); discrete or box actions."""

    name = "ppo"
    family = "policy_gradient"
    Config = PPOConfig
    data = "rollout"
    action_space = "any"
    counters = ("num_updates", "rollout_start")

    def __init__(
        self,
        config: PPOConfig,
        obs_shape: Sequence[int],
        num_actions: int | None = None,
        act_dim: int | None = None,
        action_low: torch.Tensor | None = None,
        action_high: torch.Tensor | None = None,
        regularizers: Sequence[Regularizer] = (),
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(config, regularizers, device, seed)
        check(
            (num_actions is None) != (act_dim is None),
            "the PPO agent needs either num_actions (discrete) or act_dim (box actions)",
            "pass exactly one of them",
        )
        for r in self.regularizers:
            check(
                not r.needs_critic_features,
                f"regularizer '{r.name}' needs critic features, which the PPO agent does not provide",
                "use it with an actor-critic agent",
            )
        self.obs_shape = tuple(int(x) for x in obs_shape)
        self.num_actions = None if num_actions is None else int(num_actions)
        self.act_dim = None if act_dim is None else int(act_dim)
        continuous = self.act_dim is not None
        if continuous:
            dev = self.device
            box = torch.ones(self.act_dim, device=dev)
            self.action_low = -box if action_low is None else torch.as_tensor(action_low, device=dev).float()
            self.action_high = (
                box if action_high is None else torch.as_tensor(action_high, device=dev).float()
            )
        torch.manual_seed(seed)  # network initialisation
        out = self.act_dim if continuous else self.num_actions
        self.net = ActorCritic(self.obs_shape, out, config, continuous).to(self.device)  # type: ignore[arg-type]
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr, eps=config.adam_eps)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed + 1)
        self._sink: dict[str, torch.Tensor] = {}
        self.rollout_start = 0  # environment step at which the current rollout began (LR annealing)
        self.modules = {"net": self.net}
        self.optimizers = {"opt": self.opt}
        self.generators = {"gen": self.gen}
        self.view = _View(self)

    @classmethod
    def from_spec(
        cls, config: PPOConfig, spec: SetupSource, regularizers: Sequence[Regularizer], device: Any, seed: int
    ) -> PPOAgent:
        if spec.discrete:
            return cls(
                config, spec.obs_shape, spec.num_actions, regularizers=regularizers, device=device, seed=seed
            )
        return cls(
            config,
            spec.obs_shape,
            act_dim=spec.act_dim,
            action_low=spec.action_low,
            action_high=spec.action_high,
            regularizers=regularizers,
            device=device,
            seed=seed,
        )

    # ------------------------------------------------------------------ the policy
    def distribution(self, head: torch.Tensor) -> torch.distributions.Distribution:
        """π(·|s) from the network's head: ``Categorical(logits)`` or ``Independent(Normal, 1)``."""
        if self.net.log_std is None:
            return torch.distributions.Categorical(logits=head)
        std = self.net.log_std.exp().expand_as(head)
        return torch.distributions.Independent(torch.distributions.Normal(head, std), 1)

    def _sample(self, head: torch.Tensor) -> torch.Tensor:
        """A draw of π(·|s) from the agent's generator (reproducible, resumable)."""
        if self.net.log_std is None:
            return torch.multinomial(head.softmax(-1), 1, generator=self.gen)[:, 0]
        noise = torch.randn(head.shape, generator=self.gen, device=head.device)
        return head + self.net.log_std.exp() * noise

    def _env_action(self, action: torch.Tensor) -> torch.Tensor:
        if self.net.log_std is None:
            return action
        return torch.maximum(torch.minimum(action, self.action_high), self.action_low)

    @torch.no_grad()
    def act_info(self, obs: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Rollout actions and their ``values``/``log_probs``; box actions are sampled unbounded
        (kept for the log-probability) and sent to the environment clipped (``env_actions``)."""
        head, value = self.net(obs)
        action = self._sample(head)
        info = {"values": value, "log_probs": self.distribution(head).log_prob(action)}
        if self.net.log_std is not None:
            info["env_actions"] = self._env_action(action)
        return action, info

    @torch.no_grad()
    def values(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)[1]

    def finish_rollout(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        adv, ret = compute_gae(rollout, self.config.gamma, self.config.gae_lambda)
        return {"advantages": adv, "returns": ret}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, mode: str = "explore", step: int | None = None) -> torch.Tensor:
        """``explore``: a draw of π (clipped to the box); ``greedy``/``deterministic``: its mode."""
        self.check_mode(mode)
        head, _ = self.net(obs)
        if mode == "explore":
            return self._env_action(self._sample(head))
        return head.argmax(-1) if self.net.log_std is None else self._env_action(head)

    def policy_network(self) -> nn.Module | None:
        return None

    # ------------------------------------------------------------------ the update
    def schedule(self, prev_step: int, step: int) -> list[str]:
        """``epochs × (samples collected) / batch_size`` updates after each rollout."""
        self.rollout_start = int(prev_step)
        return [UPDATE] * (self.config.epochs * (step - prev_step) // self.config.batch_size)

    def learning_rate(self) -> float:
        """The learning rate of the current rollout's updates: ``lr · (1 − s / train.steps)`` for the
        rollout that started at environment step ``s`` (CleanRL's per-iteration annealing)."""
        c = self.config
        if not c.anneal_lr or self.total_steps <= 0:
            return c.lr
        return c.lr * max(0.0, 1.0 - self.rollout_start / self.total_steps)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        lr = self.learning_rate()
        for group in self.opt.param_groups:
            group["lr"] = lr
        head, value = self.net(batch["observations"])
        dist = self.distribution(head)
        log_prob = dist.log_prob(batch["actions"])
        log_ratio = log_prob - batch["log_probs"]
        ratio = log_ratio.exp()
        adv = batch["advantages"]
        if c.norm_adv and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg_loss = -torch.min(adv * ratio, adv * ratio.clamp(1 - c.clip, 1 + c.clip)).mean()
        ret, old_v = batch["returns"], batch["values"]
        v_loss = (value - ret).square()
        if c.clip_vloss:
            clipped = old_v + (value - old_v).clamp(-c.clip, c.clip)
            v_loss = torch.max(v_loss, (clipped - ret).square())
        v_loss = 0.5 * v_loss.mean()
        metrics: dict[str, torch.Tensor] = {}
        loss = pg_loss + c.vf_coef * v_loss
        hook_batch = {
            "observations": batch["observations"],
            "actions": batch["actions"],
            "old_log_probs": batch["log_probs"],
            "advantages": adv,
            "returns": ret,
        }
        self._sink = metrics
        for r in self.regularizers:
            loss = add_terms(loss, r.entropy_terms(dist, hook_batch, self.view), r.name, metrics)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
        self.opt.step()
        self.num_updates += 1
        with torch.no_grad():
            metrics.update(
                {
                    "train/pg_loss": pg_loss.detach(),
                    "train/value_loss": v_loss.detach(),
                    "train/entropy": dist.entropy().mean(),
                    "train/approx_kl": ((ratio - 1) - log_ratio).mean(),
                    "train/clip_fraction": ((ratio - 1).abs() > c.clip).float().mean(),
                }
            )
        return metrics

    def stats(self) -> dict[str, float]:
        return {"train/lr": self.learning_rate()}
