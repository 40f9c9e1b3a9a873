"""The regularizer contract: hook points, named terms, the agent view, and the registry.

An agent computes its base losses; each regularizer contributes named terms at named hook points;
the agent sums the ``losses`` of all its regularizers into the loss being optimized and logs every
term (losses and stats) as ``reg/<name>/<term>``. An agent never tests which regularizer it holds,
and a regularizer never reaches into an agent: it sees an :class:`ActorCriticView` (or, for other
agent families, the view that family documents).

Hook order within one update of an actor-critic agent (TD3 family)::

    if the actor is due (every ``policy_freq`` updates):
        prepare_actor(batch, policy_action, view)           (no grad; may start async work)
    critic_target(batch, target, view)   -> target          (no grad)
    td_weights(batch, view)              -> weights | None  (no grad)
    critic_terms(batch, ctx, view)       -> Terms           (added to the critic loss)
    [critic optimizer step]
    update_extras(batch, view)           -> stats           (own networks, own optimizers)
    if the actor is due (every ``policy_freq`` updates):
        actor_terms(batch, policy_action, view) -> Terms    (added to the actor loss)
    [actor optimizer step, target updates]

Hook order within one update of a Q-learning agent (DQN family, :class:`QLearningView`)::

    critic_target(batch, target, view)   -> target          (no grad; target = DQN max target)
    td_weights(batch, view)              -> weights | None  (no grad)
    critic_terms(batch, ctx, view)       -> Terms           (added to mean(w · loss(y - q(s, a))))
    [Q optimizer step]
    update_extras(batch, view)           -> stats           (own networks, own optimizers)

and, at every hard target update (``q̄⁻ ← q̄``, ``q̄ ← q``)::

    on_target_update(view)                                  (before the agent's copies)

so a regularizer's frozen copies rotate first (DVW: ``σ̄ ← σ``, then ``q̄⁻ ← q̄``, ``q̄ ← q``).
Hooks that return a tensor (``critic_target``, ``td_weights``) log through ``view.log(self, key,
value)`` where the view has it (Q-learning views do); other hooks return their stats.

Within one minibatch update of a policy-gradient agent (PPO family, :class:`PolicyGradientView`)::

    entropy_terms(dist, batch, view)     -> Terms           (added to the policy loss)

``dist`` is the policy's ``torch.distributions.Distribution`` at the minibatch's observations,
whose ``entropy()`` and ``log_prob(actions)`` are per sample ``(B,)`` (a diagonal Gaussian's event
dimensions summed, as ``Independent(Normal, 1)``; a categorical policy's ``logits`` are
``dist.logits``); ``batch`` is a dict of the minibatch's tensors (``observations``, ``actions``,
``old_log_probs``, ``advantages`` as the loss uses them, ``returns``). The plain entropy bonus is
itself such a regularizer (``entropy``); agents have no entropy special case.

``setup(source, view)`` runs once before training, for offline, online and sequence-model runs
alike; ``state_dict``/``load_state_dict`` carry everything needed to
resume (indexes built in ``setup`` are rebuilt, not pickled).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from rlreg.data.transitions import ObsNormalizer, TensorBatch, Transitions, TransitionStore
from rlreg.errors import RlregError, check

__all__ = [
    "Terms",
    "CriticContext",
    "ActorCriticView",
    "QLearningView",
    "PolicyGradientView",
    "View",
    "SetupSource",
    "Regularizer",
    "RegularizerConfig",
    "register",
    "REGISTRY",
    "make_regularizer",
    "regularizer_names",
]


@dataclass
class Terms:
    """What a hook contributes: ``losses`` are summed into the objective, ``stats`` only logged.

    All values are 0-d tensors on the training device (no host synchronisation); stats must be
    detached.
    """

    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    stats: dict[str, torch.Tensor] = field(default_factory=dict)

    def total(self) -> torch.Tensor | None:
        """Sum of the loss terms, or None when there are none."""
        out = None
        for v in self.losses.values():
            out = v if out is None else out + v
        return out


@dataclass
class CriticContext:
    """What the agent computed for the critic loss, shared with ``critic_terms`` (no second pass).

    ``q``: online Q of the batch's (s, a), shape ``(E, B)`` for an ensemble of E heads.
    ``target``: the TD target, ``(B,)``, detached. Feature fields are filled only when a
    regularizer sets ``needs_critic_features``: penultimate-layer features, each ``(E, B, H)``, of
    the online critic at (s, a) (``features``, from the same forward pass as ``q``, with gradient)
    and of the target critic at (s', a') with the TD target's next action (``next_target_features``,
    from the target's forward pass, detached). The online critic's features at (s', π(s'))
    (no gradient) cost one more actor and critic pass, so they are computed on first use:
    :meth:`next_online_features` (or given as ``next_features``).
    """

    q: torch.Tensor
    target: torch.Tensor
    features: torch.Tensor | None = None
    next_features: torch.Tensor | None = None
    next_target_features: torch.Tensor | None = None
    next_features_fn: Callable[[], torch.Tensor] | None = None

    def next_online_features(self) -> torch.Tensor:
        """The online critic's ``(E, B, H)`` features at (s', π(s')), no gradient (computed once)."""
        if self.next_features is None:
            check(
                self.next_features_fn is not None,
                "the online critic's next-state features are not available from this agent",
                "use an agent that passes CriticContext.next_features_fn (rlreg's TD3, SB3's TD3/SAC)",
            )
            with torch.no_grad():
                self.next_features = self.next_features_fn()
        return self.next_features


@runtime_checkable
class ActorCriticView(Protocol):
    """What a regularizer may see of an actor-critic agent (ours or an SB3 subclass).

    Differentiability (ordinary autograd semantics, whatever hook calls them):

    ========================  ==========================================================
    ``policy(obs)``           differentiable in the actor's weights and in ``obs``, for any
                              observations (not only the batch's)
    ``policy_target(obs)``    no gradient (target networks are frozen)
    ``q_values(obs, act)``    ``(E, B)``, differentiable in the critic's weights and the inputs;
                              ``target=True``: the frozen target critic
    ``q1(obs, act)``          ``(B,)``, head 1 of ``q_values``: same differentiability
    ``features(obs, act)``    ``(E, B, H)`` penultimate features of the critic heads: same
    ``critic_output_weights``  ``(E, H)`` last-layer weights of the online critic heads
    ``()``                    (``Q_e = w_eᵀ φ_e + b_e``), no gradient
    ========================  ==========================================================

    What a term moves is fixed by the hook, not by the view function: ``actor_terms`` move the
    actor only (a term reaching the critic's weights through ``q_values`` gives them no update),
    ``critic_terms`` move the critic only; a regularizer's own networks move only through its own
    optimizers (``update_extras``). ``step`` is the number of completed updates;
    ``policy_version`` counts the actor's optimizer steps (π is unchanged while it is unchanged);
    ``actor_due(n)`` says whether update number ``n`` (1-based) runs the actor step. During an
    update, after the ``critic_target`` hooks, ``next_action`` is the (smoothed) next action ``a'``
    the TD target used and ``td_target`` the final target ``y``. ``log(reg, key, value)`` records a
    0-d stat as ``reg/<reg.name>/<key>``.
    """

    device: torch.device
    gamma: float
    obs_dim: int
    act_dim: int
    action_low: torch.Tensor
    action_high: torch.Tensor
    next_action: torch.Tensor | None
    td_target: torch.Tensor | None

    @property
    def step(self) -> int: ...

    @property
    def policy_version(self) -> int: ...

    def actor_due(self, update: int) -> bool: ...

    def policy(self, obs: torch.Tensor) -> torch.Tensor: ...

    def policy_target(self, obs: torch.Tensor) -> torch.Tensor: ...

    def q_values(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor: ...

    def q1(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor: ...

    def features(self, obs: torch.Tensor, act: torch.Tensor, target: bool = False) -> torch.Tensor: ...

    def critic_output_weights(self) -> torch.Tensor: ...

    def log(self, reg: Regularizer, key: str, value: torch.Tensor) -> None: ...


@runtime_checkable
class QLearningView(Protocol):
    """What a regularizer may see of a Q-learning agent (DQN family, discrete actions).

    ``step`` is the number of completed updates; observations are float ``(B, *obs_shape)``; Q
    functions return ``(B, num_actions)``. ``q_values`` is the online network, differentiable in
    its weights (``critic_terms`` move it); ``target_q_values`` and ``prev_target_q_values`` are
    frozen (no gradient). ``target_q_values`` is the network the Bellman target is being built
    from: the target net ``q̄`` during an update, the previous target ``q̄⁻`` inside
    ``target_fn(batch, "prev_target")``. ``next_target_q`` is that network's ``(B, A)`` values at
    the batch's next observations (already computed for the base target). During an update, after
    the ``critic_target`` hooks, ``td_target`` is the final target ``y``.

    ``target_fn(batch, which)`` is the agent's full target (base max target, then every
    ``critic_target`` hook) built from network ``which`` (``"target"`` or ``"prev_target"``), no
    grad; DVW's variance target uses it. ``new_q_network()`` is a freshly initialised module of
    the agent's Q architecture (on the agent's device). ``log(reg, key, value)`` records a 0-d stat
    as ``reg/<reg.name>/<key>`` (ignored inside ``target_fn``).
    """

    device: torch.device
    gamma: float
    num_actions: int
    obs_shape: tuple[int, ...]
    td_target: torch.Tensor | None
    next_target_q: torch.Tensor | None

    @property
    def step(self) -> int: ...

    def q_values(self, obs: torch.Tensor) -> torch.Tensor: ...

    def target_q_values(self, obs: torch.Tensor) -> torch.Tensor: ...

    def prev_target_q_values(self, obs: torch.Tensor) -> torch.Tensor: ...

    def target_fn(self, batch: TensorBatch, which: str = "target") -> torch.Tensor: ...

    def new_q_network(self) -> nn.Module: ...

    def log(self, reg: Regularizer, key: str, value: torch.Tensor) -> None: ...


@runtime_checkable
class PolicyGradientView(Protocol):
    """What a regularizer may see of a policy-gradient agent (PPO family).

    ``step`` counts completed minibatch updates; ``discrete`` tells the action space apart
    (``num_actions`` for discrete actions, ``act_dim`` for a box); ``log(reg, key, value)`` records
    a 0-d stat. The distribution an ``entropy_terms`` hook receives is differentiable in the
    policy's weights; its terms move the policy (and whatever shares its weights) only.
    """

    device: torch.device
    gamma: float
    discrete: bool
    num_actions: int | None
    act_dim: int | None

    @property
    def step(self) -> int: ...

    def log(self, reg: Regularizer, key: str, value: torch.Tensor) -> None: ...


View = ActorCriticView | QLearningView | PolicyGradientView
"""Any agent family's view (a hook's ``view`` argument)."""


@dataclass
class SetupSource:
    """What ``setup`` gets: the problem's spaces, the training data (offline) and the run's schedule.

    Continuous actions: ``act_dim`` and the box ``action_low``/``action_high``; discrete actions:
    ``num_actions`` (and ``act_dim``/bounds None). ``obs_shape`` is the observation's shape
    (``(obs_dim,)`` for flat vectors). ``store`` holds the dataset on the training device, already
    normalized as the agent sees it; ``transitions`` is the same data as numpy (None online);
    ``obs_normalizer`` the statistics used. ``learning_starts`` and ``total_steps`` are the loop's
    (0 and the number of updates offline). ``lookahead`` is set by data sources that draw each
    batch one update ahead: ``lookahead(fn)`` makes the source call ``fn(next_batch)`` right after
    it hands out a batch, before that batch's update runs (PRDC starts its search there).
    """

    obs_dim: int
    act_dim: int | None = None
    action_low: torch.Tensor | None = None
    action_high: torch.Tensor | None = None
    store: TransitionStore | None = None
    transitions: Transitions | None = None
    obs_normalizer: ObsNormalizer | None = None
    dataset_name: str | None = None
    obs_shape: tuple[int, ...] | None = None
    num_actions: int | None = None
    learning_starts: int = 0
    total_steps: int = 0
    lookahead: Callable[[Callable[[TensorBatch], None]], None] | None = None

    def __post_init__(self) -> None:
        if self.obs_shape is None:
            self.obs_shape = (int(self.obs_dim),)

    @property
    def discrete(self) -> bool:
        """True for a discrete action space (``num_actions`` set)."""
        return self.num_actions is not None


@dataclass
class RegularizerConfig:
    """Base for regularizer configs. Subclasses are dataclasses with a docstring per field."""


class Regularizer:
    """Base class: every hook contributes nothing by default.

    Subclasses set ``name`` (registry key and log namespace), ``families`` (agent families they
    fit, e.g. ``{"actor_critic"}``), ``Config`` (their config dataclass), and override the hooks
    they use. Networks and optimizers of their own go in ``self.modules`` / ``self.optimizers``;
    the default ``state_dict`` covers them, ``extra_state``/``load_extra_state`` cover the rest.
    """

    name: ClassVar[str] = "regularizer"
    families: ClassVar[frozenset[str]] = frozenset({"actor_critic"})
    Config: ClassVar[type[RegularizerConfig]] = RegularizerConfig
    needs_critic_features: ClassVar[bool] = False
    needs_dataset: ClassVar[bool] = False
    """True when ``setup`` needs the training data (``source.store``): offline only (PRDC)."""
    capturable: ClassVar[bool] = False
    """True when every hook is pure device work (no host sync, no Python state changes per call), so
    the update can be captured in a CUDA graph (``train.cuda_graph``)."""

    def __init__(self, config: RegularizerConfig | None = None, **kwargs: Any) -> None:
        if config is None:
            config = build_config(self.Config, kwargs, where=f"regularizer '{self.name}'")
        elif kwargs:
            raise RlregError(
                f"regularizer '{self.name}' got both a config object and keyword arguments {sorted(kwargs)}",
                "pass either a config or keyword arguments",
            )
        self.config = config
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.validate()

    # ------------------------------------------------------------------ configuration
    def validate(self) -> None:
        """Check the config; raise :class:`RlregError` naming a bad value and the fix."""

    # ------------------------------------------------------------------ hooks
    def setup(self, source: SetupSource, view: View) -> None:
        """Build indexes, extra networks and their optimizers (once, before training)."""

    def prepare_actor(self, batch: TensorBatch, policy_action: torch.Tensor, view: View) -> None:
        """Called before the critic step of an update whose actor is due, with π(s) (no grad).

        The actor does not move before ``actor_terms`` runs, so ``policy_action`` equals the value
        ``actor_terms`` will receive: work that depends only on it (PRDC's neighbour search) can
        start here and overlap the critic step. Must not change anything ``critic_*`` hooks read.
        """

    def critic_target(self, batch: TensorBatch, target: torch.Tensor, view: View) -> torch.Tensor:
        """Return a new TD target (called under ``no_grad``)."""
        return target

    def td_weights(self, batch: TensorBatch, view: View) -> torch.Tensor | None:
        """Per-sample TD weights ``(B,)`` or None."""
        return None

    def critic_terms(self, batch: TensorBatch, ctx: CriticContext, view: View) -> Terms:
        """Terms added to the critic loss."""
        return Terms()

    def actor_terms(self, batch: TensorBatch, policy_action: torch.Tensor, view: View) -> Terms:
        """Terms added to the actor loss; ``policy_action`` = π(s), differentiable."""
        return Terms()

    def entropy_terms(self, dist: Any, batch: Any, view: View) -> Terms:
        """Terms added to a policy-gradient agent's loss, from the policy's distribution ``dist``
        at the minibatch (see the module docstring)."""
        return Terms()

    def update_extras(self, batch: TensorBatch, view: View) -> dict[str, torch.Tensor]:
        """Optimizer steps of the regularizer's own networks; returns stats to log."""
        return {}

    def on_target_update(self, view: View) -> None:
        """Called at each hard target-network update, before the agent copies its networks
        (Q-learning agents: ``q̄⁻ ← q̄``, ``q̄ ← q``); rotate frozen copies of one's own networks."""

    # ------------------------------------------------------------------ state
    def to(self, device: torch.device) -> Regularizer:
        for m in self.modules.values():
            m.to(device)
        return self

    def extra_state(self) -> dict[str, Any]:
        """State beyond modules and optimizers (override)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`extra_state` (override)."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config": dataclasses.asdict(self.config),
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check(
            state.get("name") == self.name,
            f"checkpoint holds regularizer '{state.get('name')}' where '{self.name}' was expected",
            "resume with the same regularizers, in the same order, as the run that saved it",
        )
        missing = set(self.modules) ^ set(state.get("modules", {}))
        check(
            not missing,
            f"regularizer '{self.name}': module keys differ from the checkpoint: {sorted(missing)}",
            "resume with the same regularizer configuration",
        )
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.load_extra_state(state.get("extra", {}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


# ---------------------------------------------------------------------- config helpers
def build_config(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate config dataclass ``cls`` from ``values``, rejecting unknown keys by name."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise RlregError(
            f"{where}: unknown setting(s) {unknown}",
            f"valid settings are: {', '.join(names) if names else '(none)'}",
        )
    return cls(**values)


# ---------------------------------------------------------------------- registry
REGISTRY: dict[str, type[Regularizer]] = {}


def register(cls: type[Regularizer]) -> type[Regularizer]:
    """Class decorator adding a regularizer to :data:`REGISTRY` under ``cls.name``."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise RuntimeError(f"two regularizers are registered as '{cls.name}'")
    REGISTRY[cls.name] = cls
    return cls


def regularizer_names() -> list[str]:
    return sorted(REGISTRY)


def make_regularizer(name: str, **settings: Any) -> Regularizer:
    """Build a registered regularizer by name with keyword settings."""
    if name not in REGISTRY:
        raise RlregError(
            f"unknown regularizer '{name}'",
            f"choose one of: {', '.join(regularizer_names())}",
        )
    return REGISTRY[name](**settings)
