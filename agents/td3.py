r"""TD3 actor-critic (Fujimoto et al., ICML 2018, arXiv:1802.09477), offline and online.

Twin critics with clipped double-Q targets, target policy smoothing and delayed actor/target
updates:

.. math::

    a' = \mathrm{clip}\big(\bar\pi(s') + \mathrm{clip}(\epsilon, -c, c),\ a_{low}, a_{high}\big),\quad
    \epsilon \sim \mathcal N(0, \sigma^2)\\
    y = r + \gamma (1 - d) \min_i \bar Q_i(s', a'),\qquad
    L_Q = \sum_i \mathrm{mean}_B (Q_i(s,a) - y)^2\\
    L_\pi = -\lambda\, \mathrm{mean}_B Q_1(s, \pi(s)) + \sum_{\text{reg}} \text{actor terms},\quad
    \lambda = \alpha / \mathrm{mean}_B |Q_1(s,\pi(s))| \ (\text{detached; } \lambda = 1 \text{ if } \alpha
    \text{ is None})

σ and c are multiplied by the action box's half-range (``max_action`` in the official code). The
actor and the Polyak target updates run every ``policy_freq`` updates. Regularizers plug in through
the hooks of :mod:`rlreg.regularizers.base`; TD3+BC is this agent with ``alpha = 2.5`` and the
:class:`~rlreg.regularizers.bc.BC` regularizer. DDPG with TD3-style settings (BEER's base) is
``n_critics=1, policy_noise=0, policy_freq=1``.

The update has no host synchronisation: metrics come back as 0-d device tensors.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rlreg.agents.base import Agent, add_terms, register_agent

from rlreg.data.transitions import TensorBatch
from rlreg.errors import check, check_widths
from rlreg.nets import ACTIVATIONS, Actor, Critic, FlatAdam, mlp_backward, mlp_forward
from rlreg.regularizers.base import CriticContext, Regularizer, SetupSource

_tanh_bw = torch.ops.aten.tanh_backward

__all__ = ["TD3Agent", "TD3Config"]


@dataclass
class TD3Config:
    """Hyper-parameters of the TD3 learner (defaults: TD3 / TD3+BC official code)."""

    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of each critic head."""
    n_critics: int = 2
    """Number of Q heads (2: clipped double Q; 1: DDPG)."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic."""
    batch_size: int = 256
    """Transitions per gradient update."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak coefficient of the target networks."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise, in units of the action half-range."""
    noise_clip: float = 0.5
    """Clip of the smoothing noise, in units of the action half-range."""
    policy_freq: int = 2
    """Actor and target updates every this many critic updates."""
    alpha: float | None = None
    """λ numerator of TD3+BC's Q normalisation (2.5); None for plain TD3 (λ = 1)."""
    exploration_noise: float = 0.1
    """Online only: Gaussian exploration std, in units of the action half-range."""
    activation: str = "relu"
    """Hidden activation of actor and critics (relu: the hand-fused engine; tanh, elu, gelu, silu,
    leaky_relu: plain autograd, rlreg.nets)."""
    layer_norm: bool = False
    """LayerNorm after each hidden layer (e.g. for critics of high-UTD recipes; plain autograd)."""

    def validate(self) -> None:
        def pos(name: str, integer: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, int) if integer else isinstance(v, (int, float))
            check(
                ok and v > 0,
                f"td3.{name} must be a positive {'integer' if integer else 'number'}, got {v!r}",
                f"set {name} to a value > 0",
            )

        for name in ("actor_lr", "critic_lr", "tau"):
            pos(name)
        for name in ("batch_size", "policy_freq", "n_critics"):
            pos(name, integer=True)
        check(0 <= self.gamma <= 1, f"gamma must lie in [0, 1], got {self.gamma}", "use e.g. gamma=0.99")
        check(self.tau <= 1, f"tau must lie in (0, 1], got {self.tau}", "use e.g. tau=0.005")
        for name in ("policy_noise", "noise_clip", "exploration_noise"):
            v = getattr(self, name)
            check(v >= 0, f"{name} must be >= 0, got {v}", f"set {name} >= 0 (0 disables it)")
        check(
            self.alpha is None or self.alpha > 0,
            f"alpha must be > 0 or None, got {self.alpha}",
            "use alpha=2.5 (TD3+BC) or leave it unset for plain TD3",
        )
        for name in ("actor_hidden", "critic_hidden"):
            check_widths(getattr(self, name), name)
        check(
            self.activation in ACTIVATIONS,
            f"td3.activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}",
            "set agent.activation=relu (TD3's)",
        )


class _View:
    """The typed view a regularizer sees of a :class:`TD3Agent` (see ``ActorCriticView``)."""

    def __init__(self, agent: TD3Agent) -> None:
        self._agent = agent
        self.device = agent.device
        self.gamma = agent.config.gamma
        self.obs_dim = agent.obs_dim
        self.act_dim = agent.act_dim
        self.action_low = agent.action_low
        self.action_high = agent.action_high
        self.family = "actor_critic"
        self.next_action: torch.Tensor | None = None  # set by each update (see ActorCriticView)
        self.td_target: torch.Tensor | None = None

    @property
    def step(self) -> int:
        return self._agent.num_updates

    @property
    def policy_version(self) -> int:
        return self._agent.policy_version

    def actor_due(self, update: int) -> bool:
        return update % self._agent.config.policy_freq == 0

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self._agent.actor(obs)

    def policy_target(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._agent.actor_target(obs)

    def q_values(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor:
        if target:
            with torch.no_grad():
                return self._agent.critic_target(obs, act)
        return self._agent.critic(obs, act)

    def q1(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor:
        net = self._agent.critic_target if target else self._agent.critic
        if torch.is_grad_enabled() and not target:
            return net.q1(obs, act)  # differentiable in head 1's weights and the inputs
        with torch.no_grad():  # no gradient asked for: head 1 alone
            return _head1(net, obs, act)

    def features(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor:
        """``(E, B, H)`` penultimate-layer features of the critic heads at ``(s, a)``."""
        if target:
            with torch.no_grad():
                return self._agent.critic_target.forward_features(obs, act)[1]
        return self._agent.critic.forward_features(obs, act)[1]

    def critic_output_weights(self) -> torch.Tensor:
        return self._agent.critic.output_weights()

    def log(self, reg: Regularizer, key: str, value: torch.Tensor) -> None:
        self._agent._metrics[f"reg/{reg.name}/{key}"] = value.detach()


def _head1(critic: Critic, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Head 1's ``(B,)`` values without autograd (the fused member path where there is one)."""
    if not critic.net.fused:
        return critic(obs, act)[0]
    member = 0 if critic.net.ensemble > 1 else None
    return mlp_forward(critic.net, torch.cat([obs, act], dim=-1), member=member)[0].reshape(-1)


@register_agent
class TD3Agent(Agent):
    """TD3 with regularizer hooks. ``update(batch)`` is one gradient step; ``act`` acts."""

    name = "td3"
    family = "actor_critic"
    Config = TD3Config
    action_space = "continuous"
    random_warmup = True  # online: uniform random actions before learning_starts (TD3, SB3)

    def __init__(
        self,
        config: TD3Config,
        obs_dim: int,
        act_dim: int,
        action_low: np.ndarray | torch.Tensor,
        action_high: np.ndarray | torch.Tensor,
        regularizers: Sequence[Regularizer] = (),
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        super().__init__(config, regularizers, device, seed)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.action_low, self.action_high = _box(action_low, action_high, act_dim, self.device)
        self._half = (self.action_high - self.action_low) / 2
        self._need_features = any(r.needs_critic_features for r in self.regularizers)
        # Without critic terms the critic loss is plain TD error: its gradient w.r.t. Q is written
        # out and the critic runs without autograd (same gradients, far less overhead).
        self._autograd_critic = self._need_features or any(
            type(r).critic_terms is not Regularizer.critic_terms for r in self.regularizers
        )
        torch.manual_seed(seed)  # network initialisation
        c = config
        nets = {"activation": c.activation, "layer_norm": c.layer_norm}
        self.actor = Actor(obs_dim, act_dim, c.actor_hidden, self.action_low, self.action_high, **nets)
        self.critic = Critic(obs_dim, act_dim, c.critic_hidden, c.n_critics, **nets)
        self.actor, self.critic = self.actor.to(self.device), self.critic.to(self.device)
        # hand-written gradients only where the networks run the fused engine (ReLU, no LayerNorm);
        # otherwise every step is plain autograd (the same objective)
        self._fused = self.actor.net.fused and self.critic.net.fused
        self._autograd_critic = self._autograd_critic or not self._fused
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # each network is one flat parameter: one fused Adam op per step, one lerp_ for all targets
        self._online = [self.actor.net.flat, self.critic.net.flat]
        self._targets = [self.actor_target.net.flat, self.critic_target.net.flat]
        self.actor_opt = FlatAdam(self.actor.net.flat, c.actor_lr)
        self.critic_opt = FlatAdam(self.critic.net.flat, c.critic_lr)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed + 1)
        self.policy_version = 0
        self._metrics: dict[str, torch.Tensor] = {}
        self.modules = {
            "actor": self.actor,
            "critic": self.critic,
            "actor_target": self.actor_target,
            "critic_target": self.critic_target,
        }
        self.optimizers = {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt}
        self.generators = {"gen": self.gen}
        self.view = _View(self)
        for r in self.regularizers:
            r.to(self.device)

    @classmethod
    def from_spec(
        cls, config: TD3Config, spec: SetupSource, regularizers: Sequence[Regularizer], device: Any, seed: int
    ) -> TD3Agent:
        check(
            not spec.discrete and spec.act_dim is not None,
            f"the {cls.name} agent needs continuous actions (a 1-D Box); this problem has "
            f"{spec.num_actions} discrete actions",
            "train a discrete-action recipe here (rlreg train dqn|mdqn|dqn-minatar), or use an "
            "environment with continuous actions",
        )
        return cls(
            config, spec.obs_dim, spec.act_dim, spec.action_low, spec.action_high, regularizers, device, seed
        )

    @torch.no_grad()
    def evaluation_stats(self, episodes: list[Any]) -> dict[str, float]:
        """Q-estimation error of critic head 1 against the evaluation episodes' discounted returns
        (:func:`~rlreg.envs.evaluation.q_estimation_error`): ``q_bias``, ``q_error``, ``q_mc``."""
        from rlreg.envs.evaluation import q_estimation_error

        def q1(obs: np.ndarray, act: np.ndarray) -> np.ndarray:
            o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
            a = torch.as_tensor(act, dtype=torch.float32, device=self.device)
            return _head1(self.critic, o, a).cpu().numpy()

        return q_estimation_error(episodes, q1, self.config.gamma)

    # ------------------------------------------------------------------ update
    def _prepare_actor(self, batch: TensorBatch) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """π(s) of ``batch`` (no grad, with the activations the actor step reuses); regularizers'
        ``prepare_actor`` hooks start their work on it (the critic step does not move the actor)."""
        with torch.no_grad():
            if self._fused:
                z, hs = mlp_forward(self.actor.net, batch.observations)
                t = torch.tanh(z)
                pre = (hs, t, self.actor.to_box(t))
            else:
                pre = ([], None, self.actor(batch.observations))
        for r in self.regularizers:
            r.prepare_actor(batch, pre[2], self.view)
        return pre

    def update(self, batch: TensorBatch) -> dict[str, torch.Tensor]:
        """One gradient update on ``batch``; returns detached 0-d metric tensors."""
        c = self.config
        self.num_updates += 1
        metrics = self._metrics = {}
        actor_due = self.num_updates % c.policy_freq == 0
        pre = self._prepare_actor(batch) if actor_due and self.regularizers else None
        target, weights, next_target_features = self._critic_target(batch)
        if self._autograd_critic:
            self._critic_step_autograd(batch, target, weights, next_target_features, metrics)
        else:
            self._critic_step(batch.observations, batch.actions, target, weights, metrics)
        for r in self.regularizers:
            for k, v in r.update_extras(batch, self.view).items():
                metrics[f"reg/{r.name}/{k}"] = v
        if actor_due:  # delayed actor and targets
            if self._fused:
                self._actor_step(batch, metrics, pre)
            else:
                self._actor_step_autograd(batch, metrics)
            with torch.no_grad():
                torch._foreach_lerp_(self._targets, self._online, c.tau)
        return metrics

    @torch.no_grad()
    def _critic_target(self, batch: TensorBatch) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        """``y`` (after every ``critic_target`` hook), the TD weights and the target features."""
        c = self.config
        next_obs = batch.next_observations
        if self._fused:  # no autograd node at all: the fused forward
            next_act = self.actor.to_box(torch.tanh(mlp_forward(self.actor_target.net, next_obs)[0]))
        else:
            next_act = self.actor_target(next_obs)
        if c.policy_noise > 0:
            eps = torch.randn(next_act.shape, device=self.device, generator=self.gen)
            eps = (eps * c.policy_noise).clamp_(-c.noise_clip, c.noise_clip)
            next_act = torch.clamp(
                next_act + (eps if self.actor.unit_box else eps * self._half),
                self.action_low,
                self.action_high,
            )
        if self._need_features:
            next_q, next_target_features = self.critic_target.forward_features(next_obs, next_act)
        elif self._fused:
            y, _ = mlp_forward(self.critic_target.net, torch.cat([next_obs, next_act], dim=-1))
            next_q, next_target_features = y.reshape(c.n_critics, -1), None
        else:
            next_q, next_target_features = self.critic_target(next_obs, next_act), None
        target = batch.rewards + c.gamma * (1.0 - batch.dones) * next_q.amin(0)
        for r in self.regularizers:
            target = r.critic_target(batch, target, self.view)
        self.view.next_action, self.view.td_target = next_act, target
        weights = None
        for r in self.regularizers:
            w = r.td_weights(batch, self.view)
            if w is not None:
                weights = w if weights is None else weights * w
        return target, weights, next_target_features

    def _critic_step(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        target: torch.Tensor,
        weights: torch.Tensor | None,
        metrics: dict[str, torch.Tensor],
    ) -> None:
        """L = Σ_i mean_B w (Q_i − y)²; dL/dQ_i = 2 w (Q_i − y) / B, backpropagated by hand."""
        net = self.critic.net
        with torch.no_grad():
            x = _joined(obs, act)
            y, hs = mlp_forward(net, x)
            q = y.reshape(self.critic.n_heads, -1)
            diff = q - target
            wdiff = diff if weights is None else diff * weights
            loss = (wdiff * diff).mean(1).sum()
            _, grad = mlp_backward(net, x, hs, (wdiff * (2.0 / diff.shape[1])).reshape(y.shape))
        metrics["train/critic_loss"] = loss
        metrics["train/q_mean"] = q.mean()
        net.flat.grad = grad
        self.critic_opt.step(grad)

    def _critic_step_autograd(
        self,
        batch: TensorBatch,
        target: torch.Tensor,
        weights: torch.Tensor | None,
        next_target_features: torch.Tensor | None,
        metrics: dict[str, torch.Tensor],
    ) -> None:
        """Critic step when regularizers add critic terms: the gradient of the whole critic loss
        w.r.t. the critic's weights by autograd (whatever view functions the terms used)."""
        obs, act, next_obs = batch.observations, batch.actions, batch.next_observations
        next_fn = None
        if self._need_features:
            q, features = self.critic.forward_features(obs, act)

            def next_fn() -> torch.Tensor:  # φ(s', π(s')), computed only if a regularizer asks
                return self.critic.forward_features(next_obs, self.actor(next_obs))[1]
        else:
            q, features = self.critic(obs, act), None
        sq = (q - target).square()
        critic_loss = (sq if weights is None else sq * weights).mean(1).sum()
        metrics["train/critic_loss"] = critic_loss.detach()
        metrics["train/q_mean"] = q.detach().mean()
        ctx = CriticContext(q, target, features, None, next_target_features, next_fn)
        for r in self.regularizers:
            critic_loss = add_terms(critic_loss, r.critic_terms(batch, ctx, self.view), r.name, metrics)
        (grad,) = torch.autograd.grad(critic_loss, [self.critic.net.flat])
        self.critic.net.flat.grad = grad  # kept for inspection (tests); the step uses ``grad``
        self.critic_opt.step(grad)

    def _actor_step(
        self,
        batch: TensorBatch,
        metrics: dict[str, torch.Tensor],
        pre: tuple[list[torch.Tensor], torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """Actor step: ``L = −λ mean Q1(s, π(s)) + Σ actor terms``, gradient w.r.t. the actor only.

        π(s) is computed without autograd and enters the terms as a leaf; ``dL/dπ`` is
        backpropagated through the actor by hand. Terms that reach the actor's weights by another
        path (``view.policy`` on any observations) are differentiated by autograd w.r.t. the
        weights and added: the sum is exactly autograd's gradient of ``L``.
        """
        actor, obs = self.actor, batch.observations
        with torch.no_grad():
            if pre is None:
                z, hs = mlp_forward(actor.net, obs)
                t = torch.tanh(z)
                pi = actor.to_box(t)
            else:
                hs, t, pi = pre  # computed before the critic step (same actor weights)
            q_loss, g_pi = self._q1_loss_and_grad(obs, pi, metrics)
        actor_loss, g_weights = q_loss, None
        if self.regularizers:
            pi.requires_grad_(True)
            reg_loss = None
            for r in self.regularizers:
                reg_loss = add_terms(reg_loss, r.actor_terms(batch, pi, self.view), r.name, metrics)
            if reg_loss is not None:
                actor_loss = q_loss + reg_loss.detach()
                if reg_loss.requires_grad:
                    g_reg, g_weights = torch.autograd.grad(reg_loss, [pi, actor.net.flat], allow_unused=True)
                    if g_reg is not None:
                        g_pi = g_pi + g_reg
        metrics["train/actor_loss"] = actor_loss
        with torch.no_grad():
            g_t = g_pi if actor.unit_box else g_pi * actor.act_scale
            _, grad = mlp_backward(actor.net, obs, hs, _tanh_bw(g_t, t))
            if g_weights is not None:
                grad += g_weights
        actor.net.flat.grad = grad
        self.actor_opt.step(grad)
        self.policy_version += 1

    def _actor_step_autograd(self, batch: TensorBatch, metrics: dict[str, torch.Tensor]) -> None:
        """The general actor step (networks outside the fused engine): the whole actor loss,
        ``−λ mean Q1(s, π(s)) + Σ actor terms``, differentiated by autograd w.r.t. the actor."""
        obs, alpha = batch.observations, self.config.alpha
        pi = self.actor(obs)
        q_pi = self.critic.q1_frozen(obs, pi)  # critic weights as constants
        if alpha is None:
            lam = torch.ones((), device=q_pi.device)
        else:
            lam = alpha / q_pi.detach().abs().mean()
            metrics["train/lambda"] = lam
        loss = -lam * q_pi.mean()
        metrics["train/actor_q_loss"] = loss.detach()
        for r in self.regularizers:
            loss = add_terms(loss, r.actor_terms(batch, pi, self.view), r.name, metrics)
        metrics["train/actor_loss"] = loss.detach()
        (grad,) = torch.autograd.grad(loss, [self.actor.net.flat])
        self.actor.net.flat.grad = grad
        self.actor_opt.step(grad)
        self.policy_version += 1

    def _q1_loss_and_grad(
        self, obs: torch.Tensor, pi: torch.Tensor, metrics: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``−λ mean Q1(s, π)`` and its gradient w.r.t. π, by hand (no grad mode): dL/dQ1 = −λ/B per
        sample is analytic and the critic's weights are constants in the actor loss."""
        c, cnet = self.config, self.critic.net
        x = torch.cat([obs, pi], dim=-1)
        member = 0 if cnet.ensemble > 1 else None
        y, qhs = mlp_forward(cnet, x, member=member)
        q_pi = y.reshape(-1)
        if c.alpha is None:
            lam = torch.ones((), device=q_pi.device)
        else:
            lam = c.alpha / q_pi.abs().mean()  # a scale, not an objective (TD3+BC: detached)
            metrics["train/lambda"] = lam
        q_loss = -lam * q_pi.mean()
        gy = (-lam / q_pi.shape[0]).expand(y.shape)
        g_x, _ = mlp_backward(cnet, x, qhs, gy, need_x=True, need_w=False, member=member)
        metrics["train/actor_q_loss"] = q_loss
        return q_loss, g_x[:, obs.shape[1] :]

    # ------------------------------------------------------------------ CUDA graphs
    def captured_steps(
        self, store: Any, batch_size: int, sample_gen: torch.Generator, sample_in_graph: bool = True
    ):
        """``step() -> metrics``: sample + update replayed from CUDA graphs (one per update phase).

        Same computation as ``update(store.sample(batch_size, sample_gen))``: sampling and the update's
        noise draw from the same generators (registered with the graphs), and warm-up updates are
        undone before training starts. Needs CUDA and capturable regularizers. With
        ``sample_in_graph=False`` the sample is drawn eagerly before each replay, so a growing replay
        buffer (online training) is sampled over its current size.
        """
        check(
            self.device.type == "cuda", "train.cuda_graph needs a CUDA device", "use --device cuda or drop it"
        )
        bad = [r.name for r in self.regularizers if not r.capturable]
        check(
            not bad, f"regularizer(s) {bad} cannot be captured in a CUDA graph", "set train.cuda_graph=false"
        )
        check(
            hasattr(torch.cuda.CUDAGraph, "register_generator_state"),
            "this torch cannot capture custom random generators in CUDA graphs",
            "upgrade torch or drop cuda_graph",
        )
        idx = torch.empty(batch_size, dtype=torch.long, device=self.device)
        rows = torch.empty(batch_size, store.width, device=self.device)
        batch = store.split(rows, idx)

        def sample() -> None:
            torch.randint(0, store.size, (batch_size,), generator=sample_gen, device=self.device, out=idx)
            torch.index_select(store.data, 0, idx, out=rows)

        saved = copy.deepcopy(self.state_dict())
        saved_sample = sample_gen.get_state()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2 * self.config.policy_freq):  # warm-up: allocator, cuBLAS, lazy state
                sample()
                self.update(batch)
        torch.cuda.current_stream().wait_stream(side)
        self.load_state_dict(saved)  # undo the warm-up (in place: storages stay where graphs see them)
        sample_gen.set_state(saved_sample)
        pf = self.config.policy_freq
        graphs = {}
        for actor_step in {pf == 1, True}:
            graph = torch.cuda.CUDAGraph()
            graph.register_generator_state(self.gen)
            if sample_in_graph:
                graph.register_generator_state(sample_gen)
            n = self.num_updates
            self.num_updates = pf - 1 if actor_step else 0  # the update's += 1 selects the phase
            with torch.cuda.graph(graph):
                if sample_in_graph:
                    sample()
                out = self.update(batch)
            self.num_updates = n
            graphs[actor_step] = (graph, out)

        def step() -> dict[str, torch.Tensor]:
            if not sample_in_graph:
                sample()
            self.num_updates += 1
            graph, out = graphs[self.num_updates % pf == 0]
            graph.replay()
            return out

        return step

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action for (normalized) observations on the agent's device."""
        return self.actor(obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, mode: str = "explore", step: int | None = None) -> torch.Tensor:
        """Actions ``(N, A)`` for (normalized) observations ``(N, obs_dim)``; ``explore`` adds
        Gaussian noise of std ``exploration_noise`` × half-range, clipped to the box."""
        self.check_mode(mode)
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(-1, self.obs_dim)
        a = self.actor(x)
        if mode == "explore" and self.config.exploration_noise > 0:
            eps = torch.randn(a.shape, device=self.device, generator=self.gen)
            a = torch.clamp(
                a + eps * self.config.exploration_noise * self._half, self.action_low, self.action_high
            )
        return a

    def policy_network(self) -> Actor:
        return self.actor

    # ------------------------------------------------------------------ state
    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.policy_version += 1  # new weights: results prepared for the old policy are stale


def _box(
    low: np.ndarray | torch.Tensor, high: np.ndarray | torch.Tensor, act_dim: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The action box as float32 ``(A,)`` tensors on ``device`` (an empty or reversed box stops)."""
    lo, hi = (
        torch.as_tensor(
            np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x, np.float32), device=device
        ).reshape(act_dim)
        for x in (low, high)
    )
    check(
        bool(torch.all(hi > lo)),
        f"action space bounds are empty or reversed: low={lo.tolist()} high={hi.tolist()}",
        "use a Box action space with low < high",
    )
    return lo, hi


def _joined(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``cat([a, b], -1)``, as a zero-copy view when ``b``'s columns follow ``a``'s in the same rows
    (true for batches from :class:`~rlreg.data.transitions.TransitionStore`)."""
    if (
        a.dim() == 2
        and b.dim() == 2
        and a.stride() == b.stride()
        and a.stride(1) == 1
        and a.dtype == b.dtype
        and b.data_ptr() == a.data_ptr() + a.shape[1] * a.element_size()
        and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    ):
        return a.as_strided((a.shape[0], a.shape[1] + b.shape[1]), a.stride())
    return torch.cat([a, b], dim=-1)
