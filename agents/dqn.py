r"""DQN (Mnih et al. 2015) on MinAtar, the base of M-DQN, MDVI and DVW (family ``"q_learning"``).

One update on a batch :math:`(s, a, r, s', d)` (``d`` = terminated, not truncated):

.. math::

    y = r + \gamma (1 - d) \max_{a'} \bar q(s', a')
        \quad\to\quad y \leftarrow \text{critic\_target hooks}(y)\quad (\text{no grad})\\
    w = \prod \text{td\_weights hooks} \ (\text{or } 1)\\
    L = \mathrm{mean}_B\, w \cdot \ell\big(y - q_\theta(s, a)\big) + \sum \text{critic terms},\qquad
    \ell = (\cdot)^2 \ (\text{mse}) \text{ or Huber}_\delta \ (\text{huber})

then one optimizer step (Adam, or centred RMSProp as in the MinAtar paper) and the
``update_extras`` hooks. Three copies of the Q-net are kept: online :math:`q_\theta`, target
:math:`\bar q` and previous target :math:`\bar q^-`. At every target update (every
``target_update`` environment steps once learning has started) the regularizers'
``on_target_update`` hooks run first, then :math:`\bar q^- \leftarrow \bar q` and
:math:`\bar q \leftarrow q_\theta` (DVW's order; :math:`\bar q^-` is one copy every 1000 steps, so
it is always kept).

The Q-net is MinAtar's: Conv2d(C→16, 3×3, stride 1) → ReLU → flatten (16·8·8 = 1024) →
Linear(1024→128) → ReLU → Linear(128→A), PyTorch's default initialisation (MinAtar
``examples/dqn.py`` and the DVW MinAtar code use the same network).

Exploration is ε-greedy with a linear schedule in environment steps (:meth:`DQNConfig.epsilon`):
CleanRL/DVW decay from step 0 over a fraction of the run; MinAtar's ``examples/dqn.py`` acts
uniformly at random until ``learning_starts`` and decays over a fixed number of frames after it.
The schedule of updates and target copies is in environment steps summed over all training
environments (:meth:`DQNAgent.schedule`), so "one gradient step every 4 env steps" holds for any
number of parallel environments.

Regularizers see :class:`_View` (documented as :class:`rlreg.regularizers.base.QLearningView`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from rlreg.agents.base import UPDATE, Agent, add_terms, register_agent
from torch import nn

from rlreg.data.transitions import TensorBatch
from rlreg.errors import RlregError, check, check_positive
from rlreg.regularizers.base import CriticContext, Regularizer, SetupSource

__all__ = ["DQNAgent", "DQNConfig", "MinAtarQNet"]


class MinAtarQNet(nn.Module):
    """MinAtar's Q-network: one 3×3 conv (16 channels), one hidden layer (128), one output per action."""

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        conv_channels: int = 16,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        c, h, w = (int(x) for x in obs_shape)
        self.conv = nn.Conv2d(c, conv_channels, kernel_size=3, stride=1)
        self.fc = nn.Linear(conv_channels * (h - 2) * (w - 2), hidden)
        self.out = nn.Linear(hidden, num_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` observations (any dtype) → ``(B, A)`` values."""
        x = F.relu(self.conv(obs if obs.is_floating_point() else obs.float()))
        return self.out(F.relu(self.fc(x.flatten(1))))


@dataclass
class DQNConfig:
    """Hyper-parameters of the DQN learner.

    Defaults: the DVW MinAtar setup (arXiv:2305.13185 §7.2.2; matsuolab/Deep-Variance-Weighting-MinAtar
    @ dd3d7c8).
    """

    conv_channels: int = 16
    """Channels of the Q-net's 3×3 convolution (MinAtar: 16)."""
    hidden: int = 128
    """Width of the Q-net's hidden layer (MinAtar: 128)."""
    optimizer: str = "adam"
    """``adam`` (DVW/CleanRL) or ``rmsprop`` (centred RMSProp of MinAtar's examples/dqn.py)."""
    lr: float = 2.5e-4
    """Learning rate of the Q-net."""
    adam_eps: float = 1e-8
    """Adam's epsilon (PyTorch default)."""
    rmsprop_alpha: float = 0.95
    """RMSProp's squared-gradient decay (MinAtar: 0.95)."""
    rmsprop_eps: float = 0.01
    """RMSProp's epsilon (MinAtar: 0.01, "min squared gradient")."""
    rmsprop_centered: bool = True
    """Centred RMSProp (MinAtar: true)."""
    loss: str = "mse"
    """TD loss: ``mse`` (DVW for all four algorithms) or ``huber`` (MinAtar DQN, Dopamine M-DQN)."""
    huber_delta: float = 1.0
    """δ of the Huber loss (``smooth_l1``: 1)."""
    batch_size: int = 32
    """Transitions per gradient update."""
    gamma: float = 0.99
    """Discount factor."""
    train_every: int = 4
    """Environment steps (summed over the training environments) per gradient update."""
    target_update: int = 1000
    """Environment steps between hard target updates (after learning has started)."""
    eps_start: float = 1.0
    """ε at the start of the schedule."""
    eps_end: float = 0.1
    """ε after the decay."""
    eps_decay_fraction: float | None = 0.1
    """Decay length as a fraction of ``train.steps`` (CleanRL's exploration_fraction); None when
    ``eps_decay_steps`` is used."""
    eps_decay_steps: int | None = None
    """Decay length in environment steps (MinAtar: 100 000); overrides ``eps_decay_fraction``."""
    eps_from_learning_starts: bool = False
    """Act uniformly at random until ``train.learning_starts`` and start the decay there (MinAtar's
    examples/dqn.py); false: the decay starts at step 0 (CleanRL, DVW)."""

    def validate(self) -> None:
        check_positive(self, "dqn", ("lr", "adam_eps", "rmsprop_eps", "huber_delta"))
        check_positive(
            self,
            "dqn",
            ("conv_channels", "hidden", "batch_size", "train_every", "target_update"),
            integer=True,
        )
        check(
            self.optimizer in ("adam", "rmsprop"),
            f"dqn.optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}",
            "set agent.optimizer=adam (DVW) or agent.optimizer=rmsprop (MinAtar paper)",
        )
        check(
            self.loss in ("mse", "huber"),
            f"dqn.loss must be 'mse' or 'huber', got {self.loss!r}",
            "set agent.loss=mse (DVW) or agent.loss=huber (MinAtar paper, Dopamine)",
        )
        check(0 <= self.gamma <= 1, f"gamma must lie in [0, 1], got {self.gamma}", "use e.g. gamma=0.99")
        check(
            0 <= self.rmsprop_alpha < 1,
            f"dqn.rmsprop_alpha must lie in [0, 1), got {self.rmsprop_alpha}",
            "use 0.95 (MinAtar)",
        )
        check(
            0 <= self.eps_end <= self.eps_start <= 1,
            f"ε schedule must satisfy 0 <= eps_end <= eps_start <= 1, got start {self.eps_start}, "
            f"end {self.eps_end}",
            "use e.g. eps_start=1.0, eps_end=0.1",
        )
        check(
            (self.eps_decay_fraction is None) != (self.eps_decay_steps is None),
            "exactly one of dqn.eps_decay_fraction and dqn.eps_decay_steps must be set, got "
            f"{self.eps_decay_fraction!r} and {self.eps_decay_steps!r}",
            "set agent.eps_decay_fraction=0.1 (DVW) or agent.eps_decay_steps=100000 with "
            "agent.eps_decay_fraction=null (MinAtar)",
        )
        if self.eps_decay_fraction is not None:
            check(
                0 <= self.eps_decay_fraction <= 1,
                f"dqn.eps_decay_fraction must lie in [0, 1], got {self.eps_decay_fraction}",
                "use e.g. 0.1",
            )
        if self.eps_decay_steps is not None:
            check(
                isinstance(self.eps_decay_steps, int) and self.eps_decay_steps >= 0,
                f"dqn.eps_decay_steps must be an integer >= 0, got {self.eps_decay_steps!r}",
                "use e.g. 100000",
            )

    def epsilon(self, step: int, total_steps: int, learning_starts: int) -> float:
        """ε for acting at environment step ``step`` (linear decay, then constant ``eps_end``)."""
        start = learning_starts if self.eps_from_learning_starts else 0
        if step < start:
            return self.eps_start
        decay = (
            self.eps_decay_steps
            if self.eps_decay_steps is not None
            else self.eps_decay_fraction * total_steps  # type: ignore[operator]
        )
        if decay <= 0:
            return self.eps_end
        return max(self.eps_start + (self.eps_end - self.eps_start) * (step - start) / decay, self.eps_end)


class _View:
    """The typed view a regularizer sees of a :class:`DQNAgent` (see ``QLearningView``)."""

    family = "q_learning"

    def __init__(self, agent: DQNAgent, which: str = "target", sink: dict[str, torch.Tensor] | None = None):
        self._agent = agent
        self._which = which
        self._sink = sink
        self.device = agent.device
        self.gamma = agent.config.gamma
        self.num_actions = agent.num_actions
        self.obs_shape = agent.obs_shape
        self.td_target: torch.Tensor | None = None
        self.next_target_q: torch.Tensor | None = None
        self._memo: tuple[torch.Tensor, torch.Tensor] | None = None  # (obs, target net's values)

    def reset(self) -> None:
        """Forget the per-update values (called by the agent at the start of every update)."""
        self.td_target = self.next_target_q = self._memo = None

    @property
    def step(self) -> int:
        return self._agent.num_updates

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self._agent.q(obs)

    def target_q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Values of the network the target is built from (no grad: it is frozen). The last result is
        kept for the same ``obs`` tensor, so hooks asking for q̄(s) of the batch share one forward."""
        if self._memo is not None and self._memo[0] is obs:
            return self._memo[1]
        with torch.no_grad():
            out = self._agent.network(self._which)(obs)
        self._memo = (obs, out)
        return out

    def prev_target_q_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self._agent.q_prev_target(obs)

    def target_fn(self, batch: TensorBatch, which: str = "target") -> torch.Tensor:
        return self._agent.bellman_target(batch, which)

    def new_q_network(self) -> nn.Module:
        return self._agent.make_q_network()

    def log(self, reg: Regularizer, key: str, value: torch.Tensor) -> None:
        if self._sink is not None:
            self._sink[f"reg/{reg.name}/{key}"] = value.detach()


@register_agent
class DQNAgent(Agent):
    """DQN with regularizer hooks. ``update(batch)`` is one gradient step; ``act`` acts ε-greedily."""

    name = "dqn"
    family = "q_learning"
    Config = DQNConfig
    action_space = "discrete"
    counters = ("num_updates", "num_target_updates")

    def __init__(
        self,
        config: DQNConfig,
        obs_shape: Sequence[int],
        num_actions: int,
        regularizers: Sequence[Regularizer] = (),
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(config, regularizers, device, seed)
        self.obs_shape = tuple(int(x) for x in obs_shape)
        check(
            len(self.obs_shape) == 3 and min(self.obs_shape[1:]) >= 3,
            f"the DQN agent needs image observations (C, H, W) with H, W >= 3, got {self.obs_shape}",
            "train it on a MinAtar environment: --env minatar:<game>",
        )
        self.num_actions = int(num_actions)
        for r in self.regularizers:
            check(
                not r.needs_critic_features,
                f"regularizer '{r.name}' needs critic features, which the DQN agent does not provide",
                "use it with an actor-critic agent",
            )
        torch.manual_seed(seed)  # network initialisation
        self.q = self.make_q_network()
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.q_prev_target = copy.deepcopy(self.q).requires_grad_(False)
        self.opt = self._make_optimizer()
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed + 1)
        self.num_target_updates = 0
        self.epsilon = float("nan")  # the last exploration ε used (logged as train/epsilon)
        self._metrics: dict[str, torch.Tensor] = {}
        self.modules = {"q": self.q, "q_target": self.q_target, "q_prev_target": self.q_prev_target}
        self.optimizers = {"opt": self.opt}
        self.generators = {"gen": self.gen}
        self.view = _View(self, "target", sink=self._metrics)
        for r in self.regularizers:
            r.to(self.device)

    @classmethod
    def from_spec(
        cls, config: DQNConfig, spec: SetupSource, regularizers: Sequence[Regularizer], device: Any, seed: int
    ) -> DQNAgent:
        check(
            spec.discrete,
            f"the {cls.name} agent needs discrete actions; this problem's are continuous "
            f"({spec.act_dim}-D Box)",
            "train it on a MinAtar environment: --env minatar:<game>",
        )
        return cls(config, spec.obs_shape, spec.num_actions, regularizers, device, seed)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "adam":
            # fused: one kernel for all parameters (same update rule as the default Adam)
            return torch.optim.Adam(self.q.parameters(), lr=c.lr, eps=c.adam_eps, fused=True)
        return torch.optim.RMSprop(
            self.q.parameters(),
            lr=c.lr,
            alpha=c.rmsprop_alpha,
            eps=c.rmsprop_eps,
            centered=c.rmsprop_centered,
        )

    # ------------------------------------------------------------------ networks
    def make_q_network(self) -> MinAtarQNet:
        """A freshly initialised Q-net of this agent's architecture, on its device."""
        c = self.config
        return MinAtarQNet(self.obs_shape, self.num_actions, c.conv_channels, c.hidden).to(self.device)

    def network(self, which: str) -> nn.Module:
        nets = {"online": self.q, "target": self.q_target, "prev_target": self.q_prev_target}
        if which not in nets:
            raise RlregError(f"unknown Q network '{which}'", f"use one of: {', '.join(nets)}")
        return nets[which]

    # ------------------------------------------------------------------ targets
    @torch.no_grad()
    def bellman_target(
        self, batch: TensorBatch, which: str = "target", view: _View | None = None
    ) -> torch.Tensor:
        """The full TD target built from network ``which``: ``r + γ(1−d) max q̄(s')``, then every
        ``critic_target`` hook (with a view whose ``target_q_values`` is that network)."""
        if view is None:
            view = _View(self, which, sink=None)
        next_q = self.network(which)(batch.next_observations)
        view.next_target_q = next_q
        target = batch.rewards + self.config.gamma * (1.0 - batch.dones) * next_q.amax(1)
        for r in self.regularizers:
            target = r.critic_target(batch, target, view)
        return target

    # ------------------------------------------------------------------ update
    def update(self, batch: TensorBatch) -> dict[str, torch.Tensor]:
        """One gradient update on ``batch``; returns detached 0-d metric tensors."""
        c = self.config
        regs = self.regularizers
        self.num_updates += 1
        metrics = self._metrics
        metrics.clear()
        view = self.view
        view.reset()
        with torch.no_grad():
            target = self.bellman_target(batch, "target", view)
            view.td_target = target
            weights = None
            for r in regs:
                w = r.td_weights(batch, view)
                if w is not None:
                    weights = w if weights is None else weights * w

        q = self.q(batch.observations).gather(1, batch.actions.long()[:, None]).squeeze(1)
        if c.loss == "mse":
            per_sample = (target - q).square()
        else:
            per_sample = F.huber_loss(q, target, reduction="none", delta=c.huber_delta)
        td_loss = (per_sample if weights is None else weights * per_sample).mean()
        loss = td_loss
        if regs:
            ctx = CriticContext(q=q[None], target=target)
            for r in regs:
                loss = add_terms(loss, r.critic_terms(batch, ctx, view), r.name, metrics)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        metrics["train/td_loss"] = td_loss.detach()
        metrics["train/q_mean"] = q.detach().mean()
        metrics["train/target_mean"] = target.mean()

        for r in regs:
            for k, v in r.update_extras(batch, view).items():
                metrics[f"reg/{r.name}/{k}"] = v
        out = dict(metrics)
        metrics.clear()
        return out

    @torch.no_grad()
    def update_target(self) -> None:
        """Hard target update: regularizers' ``on_target_update`` hooks, then q̄⁻ ← q̄, q̄ ← q."""
        for r in self.regularizers:
            r.on_target_update(self.view)
        for dst, src in ((self.q_prev_target, self.q_target), (self.q_target, self.q)):
            for pd, ps in zip(dst.parameters(), src.parameters()):
                pd.copy_(ps)
        self.num_target_updates += 1
        self.view.reset()  # values cached from the old target are stale now

    def handle(self, event: str) -> dict[str, torch.Tensor]:
        """The schedule's ``"target"`` event: a hard target update."""
        if event != "target":
            return super().handle(event)
        self.update_target()
        return {}

    def schedule(self, prev_step: int, step: int, learning_starts: int | None = None) -> list[str]:
        """Events due while the environment-step count went from ``prev_step`` to ``step``: an
        ``"update"`` at every multiple of ``train_every`` and a ``"target"`` update at every multiple of
        ``target_update``, both only after ``learning_starts`` steps (CleanRL/DVW: ``step >
        learning_starts``; default: the run's, from ``setup``), in step order (an update before a
        target copy due at the same step)."""
        ls = self.learning_starts if learning_starts is None else learning_starts
        lo = max(prev_step, ls)
        if step <= lo:
            return []
        c = self.config
        events = [(n, 0) for n in range((lo // c.train_every + 1) * c.train_every, step + 1, c.train_every)]
        events += [
            (n, 1) for n in range((lo // c.target_update + 1) * c.target_update, step + 1, c.target_update)
        ]
        events.sort()
        return [UPDATE if kind == 0 else "target" for _, kind in events]

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        mode: str = "explore",
        step: int | None = None,
        epsilon: float | None = None,
    ) -> torch.Tensor:
        """Actions ``(N,)`` int64 for observations ``(N, C, H, W)`` on the agent's device.

        ``explore``: ε-greedy with ε from the schedule at environment step ``step``
        (:meth:`DQNConfig.epsilon`) or the given ``epsilon``. Two random draws per environment every
        call (a uniform and a random action), whatever ε is, so the generator's stream does not
        depend on ε. ``greedy``/``deterministic``: ``argmax_a q(s, a)``.
        """
        self.check_mode(mode)
        if mode != "explore":
            return self.q(obs).argmax(1)
        if epsilon is None:
            epsilon = self.config.epsilon(step or 0, self.total_steps, self.learning_starts)
        self.epsilon = float(epsilon)
        n = obs.shape[0]
        u = torch.rand(n, generator=self.gen, device=self.device)
        random_actions = torch.randint(0, self.num_actions, (n,), generator=self.gen, device=self.device)
        if epsilon >= 1.0:
            return random_actions
        greedy = self.q(obs).argmax(1)
        return torch.where(u < epsilon, random_actions, greedy)

    @torch.no_grad()
    def greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """Greedy actions ``argmax_a q(s, a)`` (evaluation)."""
        return self.q(obs).argmax(1)

    def stats(self) -> dict[str, float]:
        return {"train/epsilon": self.epsilon}
