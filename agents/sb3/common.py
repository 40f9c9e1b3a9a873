"""What every rlreg SB3 subclass shares: the regularizer list, its checks, its saved state, the
scaling schedule, term logging as ``train/<reg>/<term>``, and the actor-critic view of TD3 and SAC.

An SB3 subclass mixes :class:`RegularizedMixin` in before the SB3 class, sets ``family`` (the
regularizer family it hosts) and ``_make_view`` / ``_setup_source``, and calls
``self._init_regularizers(...)`` before ``super().__init__`` and ``self._setup_regularized()`` at
the end of ``_setup_model`` (sb3-contrib's override list: ``_setup_model``, ``train``,
``_excluded_save_params``, ``_get_torch_save_params``).

``regularizer_scale`` multiplies every *loss* term of ``critic_terms``, ``actor_terms`` and
``entropy_terms`` (not the targets or weights the other hooks return): a float, or a function of
SB3's progress remaining (1 → 0 over a ``learn()`` call, as SB3's learning-rate schedules), e.g.
``lambda p: p`` to anneal the regularizers away while fine-tuning online. Terms are logged
unscaled; the scale as ``train/regularizer_scale`` where it is not 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlreg.errors import RlregError, check
from rlreg.regularizers.base import REGISTRY, CriticContext, Regularizer, SetupSource, Terms, make_regularizer

__all__ = [
    "as_regularizer",
    "RegularizedMixin",
    "RegularizerState",
    "ActorCriticViewBase",
    "Scale",
    "actor_critic_source",
    "critic_targets",
    "critic_step",
    "frozen",
]

Scale = float | Callable[[float], float]


class RegularizerState:
    """The regularizers' state as one SB3 "state dict" entry, so ``save()``/``load()`` and
    ``get_parameters``/``set_parameters`` carry it (networks, optimizers, generators, learned scalars;
    indexes are rebuilt by ``setup``, not saved)."""

    def __init__(self, model: Any) -> None:
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


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def as_regularizer(entry: Regularizer | str | dict[str, Any]) -> Regularizer:
    """A regularizer object, a registered name (``"bc"``) or ``{"name": "prdc", "beta": 2.0}`` (the
    forms an rl-zoo3 hyper-parameter file can hold) as a regularizer."""
    if isinstance(entry, Regularizer):
        return entry
    if isinstance(entry, str):
        return make_regularizer(entry)
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        settings = {k: v for k, v in entry.items() if k != "name"}
        return make_regularizer(entry["name"], **settings)
    raise RlregError(
        f"a regularizers entry must be a Regularizer, a registered name or a {{'name': ..., setting: value}} "
        f"dict, got {entry!r}",
        "pass e.g. regularizers=[BC()], regularizers=['bc'] or regularizers=[{'name': 'prdc', 'beta': 2.0}]",
    )


def _rebuild(spec: dict[str, Any]) -> Regularizer:
    """A regularizer from its saved spec. SB3 saves its data as JSON, where tuples become lists:
    fields whose default is a tuple get their tuple back (the config is the one saved)."""
    cls = REGISTRY[spec["name"]]
    defaults = cls.Config()
    config = {
        k: tuple(v) if isinstance(v, list) and isinstance(getattr(defaults, k, None), tuple) else v
        for k, v in spec["config"].items()
    }
    return cls(**config)


class RegularizedMixin:
    """Regularizer plumbing for an SB3 algorithm subclass (see the module docstring)."""

    family: str = "actor_critic"
    algo: str = "SB3 algorithm"
    regularizers: list[Regularizer]
    _view: Any

    def _init_regularizers(self, regularizers: Sequence[Regularizer | str | dict], scale: Scale) -> None:
        self.regularizers = [as_regularizer(r) for r in regularizers]
        self.regularizer_specs = [
            {"name": r.name, "config": dataclasses.asdict(r.config)} for r in self.regularizers
        ]
        check(
            callable(scale) or (isinstance(scale, (int, float)) and scale >= 0),
            f"regularizer_scale must be a number >= 0 or a function of progress remaining, got {scale!r}",
            "pass e.g. regularizer_scale=1.0 or regularizer_scale=lambda p: p",
        )
        self.regularizer_scale = scale

    def _setup_regularized(self) -> None:
        """After SB3's ``_setup_model``: rebuild the regularizers on load, check them, set them up."""
        if not getattr(self, "regularizers", None) and getattr(self, "regularizer_specs", None):
            self.regularizers = [_rebuild(s) for s in self.regularizer_specs]
        self._check_regularizers()
        self._view = self._make_view()
        self.regularizer_state = RegularizerState(self)
        self._sink: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._need_features = any(r.needs_critic_features for r in self.regularizers)
        self._next_target_features: torch.Tensor | None = None
        self.setup_regularizers()

    def _make_view(self) -> Any:
        raise NotImplementedError

    def _setup_source(self, **source: Any) -> SetupSource:
        raise NotImplementedError

    def _check_regularizers(self) -> None:
        names = [r.name for r in self.regularizers]
        check(len(set(names)) == len(names), f"regularizers {names} list one twice", "list each once")
        bad = [r.name for r in self.regularizers if self.family not in r.families]
        fits = sorted(n for n, c in REGISTRY.items() if self.family in c.families)
        check(
            not bad,
            f"regularizer(s) {bad} do not fit SB3's {self.algo} ({_article(self.family)} "
            f"{self.family.replace('_', '-')} algorithm)",
            f"use one of: {', '.join(fits) if fits else '(none yet)'}",
        )

    def setup_regularizers(self, **source: Any) -> None:
        """Run every regularizer's ``setup`` with the spaces and ``source`` fields (e.g. ``store=``,
        a dataset :class:`~rlreg.data.transitions.TransitionStore` for PRDC)."""
        spec = self._setup_source(**source)
        for r in self.regularizers:
            if r.needs_dataset and spec.store is None:
                continue  # set up by learn_offline, which has the data
            r.setup(spec, self._view)
            r.to(self.device)  # type: ignore[attr-defined]
        self._offline_only = [r.name for r in self.regularizers if r.needs_dataset and spec.store is None]

    def learn(self, *args: Any, **kwargs: Any) -> Any:
        """SB3's ``learn`` (online); refused while a regularizer still needs a dataset."""
        check(
            not getattr(self, "_offline_only", []),
            f"regularizer(s) {self._offline_only} need a dataset, which online learn() does not have",
            "train with model.learn_offline(dataset, gradient_steps=...) first",
        )
        return super().learn(*args, **kwargs)  # type: ignore[misc]

    def _excluded_save_params(self) -> list[str]:
        # regularizers hold indexes, thread pools and tensors: rebuilt from their specs on load
        names = [
            "regularizers",
            "_view",
            "_offline_only",
            "regularizer_state",
            "_sink",
            "_next_target_features",
        ]
        return [*super()._excluded_save_params(), *names]  # type: ignore[misc]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, tensors = super()._get_torch_save_params()  # type: ignore[misc]
        return [*state_dicts, "regularizer_state"], tensors

    # ------------------------------------------------------------------ terms and logging
    def current_regularizer_scale(self) -> float:
        """The scale of the loss terms now (``regularizer_scale`` at SB3's progress remaining)."""
        s = self.regularizer_scale
        return float(s(self._current_progress_remaining)) if callable(s) else float(s)  # type: ignore[attr-defined]

    def _terms(self, reg: Regularizer, terms: Terms) -> torch.Tensor | float:
        """Σ of a hook's losses × the current scale; every term logged (unscaled)."""
        total: torch.Tensor | float = 0.0
        for k, v in terms.losses.items():
            self._sink[f"train/{reg.name}/{k}"].append(v.detach())
            total = total + v
        for k, v in terms.stats.items():
            self._sink[f"train/{reg.name}/{k}"].append(v.detach())
        scale = self.current_regularizer_scale()
        return total if scale == 1.0 else total * scale

    def _extras(self, batch: Any) -> None:
        """Every regularizer's ``update_extras`` (its own networks), stats logged."""
        for r in self.regularizers:
            for k, v in r.update_extras(batch, self._view).items():
                self._sink[f"train/{r.name}/{k}"].append(v.detach())

    def _record_terms(self) -> None:
        """One host read per ``train()`` call: the mean of every term over its gradient steps."""
        for key, values in self._sink.items():
            self.logger.record(key, float(torch.stack([v.float() for v in values]).mean()))  # type: ignore[attr-defined]
        if self.regularizers and self.current_regularizer_scale() != 1.0:
            self.logger.record("train/regularizer_scale", self.current_regularizer_scale())  # type: ignore[attr-defined]


class ActorCriticViewBase:
    """:class:`~rlreg.regularizers.base.ActorCriticView` of an SB3 model with ``actor``, ``critic``,
    ``critic_target`` (SB3's ``ContinuousCritic``s). SB3 stores actions scaled to ``[-1, 1]`` and
    its actors output that range, so the view's action box is ``[-1, 1]``."""

    family = "actor_critic"

    def __init__(self, model: Any) -> None:
        self._m = model
        self.device = model.device
        self.gamma = float(model.gamma)
        self.obs_dim = int(np.prod(model.observation_space.shape))
        self.act_dim = int(model.action_space.shape[0])
        self.action_low = -torch.ones(self.act_dim, device=self.device)
        self.action_high = torch.ones(self.act_dim, device=self.device)
        self.next_action: torch.Tensor | None = None
        self.td_target: torch.Tensor | None = None

    @property
    def sink(self) -> dict[str, list[torch.Tensor]]:
        return self._m._sink

    @property
    def step(self) -> int:
        return self._m._n_updates

    @property
    def policy_version(self) -> int:
        return self._m._policy_version

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
            return q_and_features(critic, obs, act)[1]

    def critic_output_weights(self) -> torch.Tensor:
        """``(E, H)``: each online Q network's last-layer weight, no gradient."""
        return torch.stack([q[-1].weight.detach()[0] for q in self._m.critic.q_networks])

    def log(self, reg: Regularizer, key: str, value: torch.Tensor) -> None:
        self._m._sink[f"train/{reg.name}/{key}"].append(value.detach())


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """``module``'s parameters without ``requires_grad`` inside the block (then as they were): the
    actor loss flows through the critic into π without computing gradients for the critic's weights,
    which its optimizer would discard anyway (the same actor update; SB3 computes and leaves them)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def actor_critic_source(view: ActorCriticViewBase, **source: Any) -> SetupSource:
    """The :class:`SetupSource` of an actor-critic SB3 model: its spaces plus ``source``."""
    return SetupSource(view.obs_dim, view.act_dim, view.action_low, view.action_high, **source)


def critic_targets(model: Any, batch: Any, y: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """Run the ``critic_target`` and ``td_weights`` hooks (no grad) on base target ``y`` ``(B,)``;
    returns the final target ``(B,)`` and the product of the weights (or None)."""
    view = model._view
    for r in model.regularizers:
        y = r.critic_target(batch, y, view)
    view.td_target = y
    weights = None
    for r in model.regularizers:
        w = r.td_weights(batch, view)
        if w is not None:
            weights = w if weights is None else weights * w
    return y, weights


def q_and_features(
    critic: Any, obs: torch.Tensor, act: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """An SB3 ``ContinuousCritic``'s forward, also returning each Q network's penultimate features:
    ``([Q_e (B, 1)], (E, B, H))``, the same values as ``critic(obs, act)`` from the same pass."""
    x = torch.cat([critic.extract_features(obs, critic.features_extractor), act], dim=1)
    feats = [q[:-1](x) for q in critic.q_networks]
    return [q[-1](f) for q, f in zip(critic.q_networks, feats, strict=True)], torch.stack(feats)


def target_q(model: Any, next_obs: torch.Tensor, next_act: torch.Tensor) -> torch.Tensor:
    """The target critics' ``(B, E)`` values at (s', a') (no grad); where a regularizer needs critic
    features, their ``(E, B, H)`` features from the same pass are kept for :func:`critic_step`."""
    if not getattr(model, "_need_features", False):
        return torch.cat(model.critic_target(next_obs, next_act), dim=1)
    qs, model._next_target_features = q_and_features(model.critic_target, next_obs, next_act)
    return torch.cat(qs, dim=1)


def critic_step(
    model: Any, batch: Any, target: torch.Tensor, weights: Any, factor: float | None = None
) -> float:
    """SB3's twin-critic step with the hooks: ``[factor ·] Σ_i mean_B w (Q_i(s, a) − y)²`` (SB3's
    ``Σ_i mse(Q_i, y)`` for w = 1; SAC's factor ½) plus every ``critic_terms`` hook; one optimizer
    step. Returns the loss."""
    features = next_fn = None
    if getattr(model, "_need_features", False):
        current, features = q_and_features(model.critic, batch.observations, batch.actions)

        def next_fn() -> torch.Tensor:  # φ(s', π(s')) of the online critic, only if asked for
            nxt = batch.next_observations
            return q_and_features(model.critic, nxt, model._view.policy(nxt))[1]
    else:
        current = model.critic(batch.observations, batch.actions)
    if weights is None:
        loss = sum(F.mse_loss(q, target) for q in current)
    else:
        loss = sum((weights[:, None] * (q - target).square()).mean() for q in current)
    if factor is not None:
        loss = factor * loss
    if model.regularizers:
        q = torch.cat(current, dim=1).T
        ctx = CriticContext(q, target[:, 0], features, None, model._next_target_features, next_fn)
        for r in model.regularizers:
            loss = loss + model._terms(r, r.critic_terms(batch, ctx, model._view))
    model.critic.optimizer.zero_grad()
    loss.backward()
    model.critic.optimizer.step()
    return float(loss.item())
