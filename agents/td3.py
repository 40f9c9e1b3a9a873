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
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlreg.data.transitions import TensorBatch
from rlreg.errors import RlregError, check, check_widths
from rlreg.nets import Actor, Critic, FlatAdam, mlp_backward, mlp_forward
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

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self._agent.actor(obs)

    def policy_target(self, obs: torch.Tensor) -> torch.Tensor:
        return self._agent.actor_target(obs)

    def q_values(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor:
        return (self._agent.critic_target if target else self._agent.critic)(obs, act)

    def q1(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor:
        return (self._agent.critic_target if target else self._agent.critic).q1(obs, act)


class TD3Agent:
    """TD3 with regularizer hooks. ``update(batch)`` is one gradient step; ``act`` acts."""

    family = "actor_critic"

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
        config.validate()
        self.config = config
        self.device = torch.device(device)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.action_low = torch.as_tensor(np.asarray(action_low, np.float32), device=self.device).reshape(
            act_dim
        )
        self.action_high = torch.as_tensor(np.asarray(action_high, np.float32), device=self.device).reshape(
            act_dim
        )
        check(
            bool(torch.all(self.action_high > self.action_low)),
            f"action space bounds are empty or reversed: low={self.action_low.tolist()} "
            f"high={self.action_high.tolist()}",
            "use a Box action space with low < high",
        )
        self._half = (self.action_high - self.action_low) / 2

        self.regularizers = list(regularizers)
        names = [r.name for r in self.regularizers]
        dup = sorted({n for n in names if names.count(n) > 1})
        check(not dup, f"regularizer(s) {dup} given twice", "list each regularizer once")
        for r in self.regularizers:
            check(
                self.family in r.families,
                f"regularizer '{r.name}' does not fit a {self.family} agent (it fits {sorted(r.families)})",
                "choose an agent of a family the regularizer supports",
            )
        self._need_features = any(r.needs_critic_features for r in self.regularizers)
        # Without critic terms the critic loss is plain TD error: its gradient w.r.t. Q is written
        # out and the critic runs without autograd (same gradients, far less overhead).
        self._autograd_critic = self._need_features or any(
            type(r).critic_terms is not Regularizer.critic_terms for r in self.regularizers
        )

        torch.manual_seed(seed)  # network initialisation
        c = config
        self.actor = Actor(obs_dim, act_dim, c.actor_hidden, self.action_low, self.action_high).to(
            self.device
        )
        self.critic = Critic(obs_dim, act_dim, c.critic_hidden, c.n_critics).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # each network is one flat parameter: one fused Adam op per step, one lerp_ for all targets
        self._online = [self.actor.net.flat, self.critic.net.flat]
        self._targets = [self.actor_target.net.flat, self.critic_target.net.flat]
        self.actor_opt = FlatAdam(self.actor.net.flat, c.actor_lr)
        self.critic_opt = FlatAdam(self.critic.net.flat, c.critic_lr)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed + 1)
        self.num_updates = 0
        self._ahead: tuple[TensorBatch, Any] | None = None  # (next batch, its prepared π(s))
        self.view = _View(self)
        for r in self.regularizers:
            r.to(self.device)

    # ------------------------------------------------------------------ setup
    def setup(self, source: SetupSource) -> None:
        """Run every regularizer's ``setup`` (indexes, extra networks)."""
        for r in self.regularizers:
            r.setup(source, self.view)
            r.to(self.device)

    # ------------------------------------------------------------------ update
    @property
    def uses_next_batch(self) -> bool:
        """True when ``update(batch, next_batch=...)`` can use the next batch early: some regularizer
        prepares actor work (``prepare_actor``) and the actor is not updated every step."""
        return self.config.policy_freq > 1 and any(
            type(r).prepare_actor is not Regularizer.prepare_actor for r in self.regularizers
        )

    def _prepare_actor(self, batch: TensorBatch) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """π(s) of ``batch`` (no grad, with the activations the actor step reuses); regularizers'
        ``prepare_actor`` hooks start their work on it."""
        with torch.no_grad():
            z, hs = mlp_forward(self.actor.net, batch.observations)
            t = torch.tanh(z)
            pre = (hs, t, self.actor.to_box(t))
        for r in self.regularizers:
            r.prepare_actor(batch, pre[2], self.view)
        return pre

    def update(self, batch: TensorBatch, next_batch: TensorBatch | None = None) -> dict[str, torch.Tensor]:
        """One gradient update on ``batch``; returns detached 0-d metric tensors.

        ``next_batch`` (optional) is the batch of the following update: when that update's actor step
        is due and this one's is not, the actor does not move in between, so π(s) of the next batch
        is computed now and regularizers start their actor work on it (``prepare_actor``) a whole
        update early. Results are identical with or without it.
        """
        c = self.config
        regs = self.regularizers
        self.num_updates += 1
        obs, act, rew, next_obs, done = batch[:5]
        metrics: dict[str, torch.Tensor] = {}
        actor_due = self.num_updates % c.policy_freq == 0
        pre = None
        if actor_due and regs:
            # π(s) now: the critic step does not move the actor, so this forward serves the actor step
            # too, and regularizers can start work on π(s) that overlaps the critic step
            ahead, self._ahead = self._ahead, None
            pre = ahead[1] if ahead is not None and ahead[0] is batch else self._prepare_actor(batch)
        elif next_batch is not None and regs and (self.num_updates + 1) % c.policy_freq == 0:
            self._ahead = (next_batch, self._prepare_actor(next_batch))

        # -------- critic target (no grad)
        with torch.no_grad():
            next_act = self.actor.to_box(torch.tanh(mlp_forward(self.actor_target.net, next_obs)[0]))
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
            else:
                y, _ = mlp_forward(self.critic_target.net, torch.cat([next_obs, next_act], dim=-1))
                next_q, next_target_features = y.reshape(c.n_critics, -1), None
            target = rew + c.gamma * (1.0 - done) * next_q.amin(0)
            weights = None
            for r in regs:
                target = r.critic_target(batch, target, self.view)
            self.view.next_action, self.view.td_target = next_act, target
            for r in regs:
                w = r.td_weights(batch, self.view)
                if w is not None:
                    weights = w if weights is None else weights * w

        # -------- critic loss and step
        if self._autograd_critic:
            self._critic_step_autograd(batch, target, weights, next_target_features, metrics)
        else:
            self._critic_step(obs, act, target, weights, metrics)

        for r in regs:
            for k, v in r.update_extras(batch, self.view).items():
                metrics[f"reg/{r.name}/{k}"] = v

        # -------- delayed actor and targets
        if actor_due:
            self._actor_step(batch, metrics, pre)
            with torch.no_grad():
                torch._foreach_lerp_(self._targets, self._online, c.tau)
        return metrics

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
        """Critic step when regularizers add critic terms (they may need Q's features)."""
        obs, act, next_obs = batch.observations, batch.actions, batch.next_observations
        if self._need_features:
            q, features = self.critic.forward_features(obs, act)
            with torch.no_grad():
                _, next_features = self.critic.forward_features(next_obs, self.actor(next_obs))
        else:
            q, features, next_features = self.critic(obs, act), None, None
        sq = (q - target).square()
        critic_loss = (sq if weights is None else sq * weights).mean(1).sum()
        metrics["train/critic_loss"] = critic_loss.detach()
        metrics["train/q_mean"] = q.detach().mean()
        ctx = CriticContext(q, target, features, next_features, next_target_features)
        for r in self.regularizers:
            critic_loss = _add_terms(critic_loss, r.critic_terms(batch, ctx, self.view), r.name, metrics)
        self._step(self.critic_opt, critic_loss)

    def _actor_step(
        self,
        batch: TensorBatch,
        metrics: dict[str, torch.Tensor],
        pre: tuple[list[torch.Tensor], torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """π(s) is computed without autograd and enters the loss as a leaf: every actor term reaches
        the actor through π(s) (the hook contract), so dL/dπ backpropagated by hand through the
        actor is the exact gradient."""
        c, actor = self.config, self.actor
        obs = batch.observations
        with torch.no_grad():
            if pre is None:
                z, hs = mlp_forward(actor.net, obs)
                t = torch.tanh(z)
                pi = actor.to_box(t)
            else:
                hs, t, pi = pre  # computed before the critic step (same actor weights)
            # Q1(s, π) by hand: dL_Q/dQ1 = -λ/B per sample is analytic, so its gradient w.r.t. π
            # needs no autograd graph (critic weights are constants in the actor loss).
            cnet = self.critic.net
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
            g_pi = g_x[:, obs.shape[1] :]
        metrics["train/actor_q_loss"] = q_loss
        actor_loss = q_loss
        if self.regularizers:
            pi.requires_grad_(True)
            reg_loss = None
            for r in self.regularizers:
                reg_loss = _add_terms(reg_loss, r.actor_terms(batch, pi, self.view), r.name, metrics)
            if reg_loss is not None:
                actor_loss = q_loss + reg_loss.detach()
                if reg_loss.requires_grad:
                    g_pi = g_pi + torch.autograd.grad(reg_loss, [pi])[0]
        metrics["train/actor_loss"] = actor_loss
        with torch.no_grad():
            g_t = g_pi if actor.unit_box else g_pi * actor.act_scale
            _, grad = mlp_backward(actor.net, obs, hs, _tanh_bw(g_t, t))
        actor.net.flat.grad = grad
        self.actor_opt.step(grad)

    @staticmethod
    def _step(opt: FlatAdam, loss: torch.Tensor) -> None:
        # Gradient of this loss w.r.t. this network only: the critic's weights get no gradient from
        # the actor loss (TD3 discards it anyway; Q1 treats them as constants) and none is computed.
        (grad,) = torch.autograd.grad(loss, [opt.param])
        opt.param.grad = grad  # kept for inspection (tests); the step uses ``grad`` directly
        opt.step(grad)

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
    def act(self, obs: np.ndarray, explore: bool = False) -> np.ndarray:
        """Actions for a batch of (normalized) observations; Gaussian noise when ``explore``."""
        x = torch.as_tensor(np.asarray(obs, np.float32), device=self.device).reshape(-1, self.obs_dim)
        a = self.actor(x)
        if explore and self.config.exploration_noise > 0:
            eps = torch.randn(a.shape, device=self.device, generator=self.gen)
            a = torch.clamp(
                a + eps * self.config.exploration_noise * self._half, self.action_low, self.action_high
            )
        return a.cpu().numpy()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "num_updates": self.num_updates,
            "gen": self.gen.get_state(),
            "regularizers": [r.state_dict() for r in self.regularizers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._ahead = None
        try:
            for name in ("actor", "critic", "actor_target", "critic_target"):
                getattr(self, name).load_state_dict(state[name])
            self.actor_opt.load_state_dict(state["actor_opt"])
            self.critic_opt.load_state_dict(state["critic_opt"])
        except (KeyError, RuntimeError) as e:
            raise RlregError(
                f"agent state does not match this agent ({type(e).__name__}: {str(e).splitlines()[0]})",
                "load a checkpoint saved by the same agent with the same network sizes and regularizers",
            ) from e
        regs = state.get("regularizers", [])
        check(
            len(regs) == len(self.regularizers),
            f"checkpoint has {len(regs)} regularizer(s), this agent has {len(self.regularizers)}",
            "resume with the same regularizers as the run that saved it",
        )
        for r, s in zip(self.regularizers, regs):
            r.load_state_dict(s)
        self.num_updates = int(state["num_updates"])
        self.gen.set_state(state["gen"].to("cpu") if hasattr(state["gen"], "to") else state["gen"])


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


def _add_terms(
    loss: torch.Tensor | None, terms: Any, name: str, metrics: dict[str, torch.Tensor]
) -> torch.Tensor | None:
    """``loss + Σ terms.losses`` (``loss`` may be None); logs every term as ``reg/<name>/<term>``."""
    for k, v in terms.losses.items():
        metrics[f"reg/{name}/{k}"] = v.detach()
        loss = v if loss is None else loss + v
    for k, v in terms.stats.items():
        metrics[f"reg/{name}/{k}"] = v
    return loss
