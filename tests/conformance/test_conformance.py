"""Conformance suite (issue 14): every registered regularizer on every registered agent it fits, and
probe regularizers that check where each view function's gradient goes.

For each (regularizer, agent) pair: a few updates on tiny data log every term as a finite float; the
state dict survives ``torch.save``/``torch.load(weights_only=True)`` and the loaded agent continues
exactly as the original; the same seed gives the same numbers. The probes add one term built on one
view function and compare the update with the term (weight 1) to the same update with weight 0:
the gradient of the network the hook must move changes by exactly the term's autograd gradient
(where that is computable independently) and every other network's gradient is unchanged.

A new agent adds its tiny case to ``cases.CASES``, a new SB3 subclass its host to ``cases.HOSTS``;
a new regularizer needs nothing (it is found in the registry).
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from rlreg.agents.base import agent_class, agent_names

from rlreg.regularizers import REGISTRY
from rlreg.regularizers.base import Regularizer, Terms

from .cases import CASES, HOSTS

UPDATES = 4


def library_agents() -> list[str]:
    """The registered agents of the library (test modules register minimal agents of their own)."""
    return [k for k in agent_names() if agent_class(k).__module__.startswith("rlreg.")]


def family(kind: str) -> str:
    return HOSTS[kind][0] if kind in HOSTS else agent_class(kind).family


def build(kind: str):
    """The tiny-case builder of an agent kind or an SB3 host."""
    return HOSTS[kind][1] if kind in HOSTS else CASES[kind]


def pairs() -> list[tuple[str, str]]:
    out = []
    for kind in [*library_agents(), *HOSTS]:
        for name, cls in sorted(REGISTRY.items()):
            if family(kind) in cls.families:
                out.append((name, kind))
    return out


def test_every_agent_has_a_case_and_every_regularizer_an_agent():
    assert set(library_agents()) == set(CASES), "add the new agent's tiny case to tests/conformance/cases.py"
    fitted = {name for name, _ in pairs()}
    assert fitted == set(REGISTRY), f"regularizers with no registered agent: {set(REGISTRY) - fitted}"


def run_updates(case: Any, n: int, batches: list | None = None) -> list[dict[str, float]]:
    out = []
    for i in range(n):
        batch = batches[i] if batches is not None else case.sample()
        out.append({k: float(v) for k, v in case.agent.update(batch).items()})
    return out


@pytest.mark.parametrize(("reg", "kind"), pairs(), ids=[f"{r}-{k}" for r, k in pairs()])
def test_terms_state_and_determinism(reg, kind):
    case = build(kind)([REGISTRY[reg]()])
    rows = run_updates(case, UPDATES)
    logged = {k: v for row in rows for k, v in row.items() if k.startswith(f"reg/{reg}/")}
    assert logged, f"{reg} logged no term on {kind}"
    assert all(math.isfinite(v) for v in logged.values()), logged

    # same seed, same numbers
    assert run_updates(build(kind)([REGISTRY[reg]()]), UPDATES) == rows

    # state-dict round trip through a weights-only file; both continue identically
    buf = io.BytesIO()
    torch.save(case.agent.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    other = build(kind)([REGISTRY[reg]()])
    other.agent.load_state_dict(state)
    batches = [case.sample() for _ in range(UPDATES)]
    assert run_updates(other, UPDATES, batches) == run_updates(case, UPDATES, batches)


# ---------------------------------------------------------------------- gradient probes
class Probe(Regularizer):
    """One term, ``weight · f(view, batch, policy_action)``, at one hook (not registered)."""

    name = "probe"
    families = frozenset({"actor_critic", "q_learning", "policy_gradient"})

    def __init__(self, hook: str, fn: Callable, weight: float) -> None:
        super().__init__()
        self.hook, self.fn, self.weight = hook, fn, weight
        self.batch: Any = None

    def _term(self, hook: str, batch: Any, view: Any, pi: torch.Tensor | None) -> Terms:
        if hook != self.hook:
            return Terms()
        self.batch = batch
        return Terms(losses={"probe": self.weight * self.fn(view, batch, pi)})

    def actor_terms(self, batch: Any, policy_action: torch.Tensor, view: Any) -> Terms:
        return self._term("actor_terms", batch, view, policy_action)

    def critic_terms(self, batch: Any, ctx: Any, view: Any) -> Terms:
        return self._term("critic_terms", batch, view, None)

    def entropy_terms(self, dist: Any, batch: Any, view: Any) -> Terms:
        return self._term("entropy_terms", batch, view, dist)


def policy_next(view, b, pi):
    return view.policy(b.next_observations).square().mean()


def policy_now(view, b, pi):
    return view.policy(b.observations).square().mean()


def q_through_pi(view, b, pi):
    return -view.q_values(b.observations, pi).mean()


def q1_data(view, b, pi):
    return view.q1(b.observations, b.actions).square().mean()


def q_values_data(view, b, pi):
    return view.q_values(b.observations, b.actions).square().mean()


def features_data(view, b, pi):
    return view.features(b.observations, b.actions).square().mean()


def features_in_actor(view, b, pi):
    return view.features(b.observations, pi).square().mean()


def dqn_q(view, b, pi):
    return view.q_values(b.observations).square().mean()


def dqn_target(view, b, pi):
    return view.target_q_values(b.observations).square().mean()


def dist_entropy(view, b, dist):
    return -dist.entropy().mean()


def dist_log_prob(view, b, dist):
    return -dist.log_prob(b["actions"]).mean()


# family → (hook, term, moves: the hook's network or None, exact: the change equals the term's gradient)
PROBES = {
    "actor_critic": [
        ("actor_terms", policy_next, True, True),  # π on other observations: moves the actor
        ("actor_terms", q_through_pi, True, False),  # through the critic into π: never the critic
        ("critic_terms", q1_data, True, True),  # head 1 is differentiable: moves the critic
        ("critic_terms", q_values_data, True, True),
        ("critic_terms", policy_now, False, False),  # no critic weight in it: moves nothing
        ("critic_terms", features_data, True, True),  # penultimate features: move the critic
        ("actor_terms", features_in_actor, True, False),  # features at π(s): the actor, never the critic
    ],
    "q_learning": [
        ("critic_terms", dqn_q, True, True),
        ("critic_terms", dqn_target, False, False),  # the target net is frozen
    ],
    "policy_gradient": [  # the distribution is differentiable in the policy (exact: needs dist)
        ("entropy_terms", dist_entropy, True, False),
        ("entropy_terms", dist_log_prob, True, False),
    ],
}


def probe_cases() -> list[tuple[str, str, Callable, bool, bool]]:
    out = []
    for kind in [*library_agents(), *HOSTS]:
        for hook, fn, moves, exact in PROBES.get(family(kind), []):
            out.append((kind, hook, fn, moves, exact))
    return out


def grad_of(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in module.parameters()]
    )


def params_of(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def until_hook(kind: str, hook: str, fn: Callable, weight: float) -> tuple[Any, Any, Probe]:
    """Update until the probe's hook has run; returns the case, the agent before that update, the probe."""
    probe = Probe(hook, fn, weight)
    case = build(kind)([probe])
    for _ in range(UPDATES):
        before = copy.deepcopy(case.agent)
        for m in case.agent.modules.values():
            for p in m.parameters():
                p.grad = None
        case.agent.update(case.sample())
        if probe.batch is not None:
            return case, before, probe
    raise AssertionError(f"{hook} never ran on {kind}")


@pytest.mark.parametrize(
    ("kind", "hook", "fn", "moves", "exact"),
    probe_cases(),
    ids=[f"{k}-{h}-{f.__name__}" for k, h, f, _, _ in probe_cases()],
)
def test_probe_gradient_reaches_the_intended_network_and_no_other(kind, hook, fn, moves, exact):
    with_term, before, probe = until_hook(kind, hook, fn, 1.0)
    without, _, _ = until_hook(kind, hook, fn, 0.0)
    target = with_term.networks[hook]
    skip = with_term.downstream.get(hook, set())
    online = [n for n in with_term.agent.modules if "target" not in n and n not in skip]
    for name in online:
        g1 = grad_of(with_term.agent.modules[name])
        g0 = grad_of(without.agent.modules[name])
        if name == target and moves:
            assert not torch.allclose(g1, g0), f"{fn.__name__} at {hook} did not move {name}"
            continue
        p1, p0 = params_of(with_term.agent.modules[name]), params_of(without.agent.modules[name])
        assert torch.equal(p1, p0), f"{fn.__name__} at {hook} moved {name}"
        if kind not in HOSTS or name == target:
            # (SB3 leaves the actor loss's gradient on the critic until its next zero_grad: the
            # critic's weights, checked above, are what must not move)
            assert torch.equal(g1, g0), f"{fn.__name__} at {hook} gave {name} a gradient"
    if exact:
        module = before.modules[target]
        loss = fn(before.view, probe.batch, None)
        want = torch.autograd.grad(loss, list(module.parameters()), allow_unused=True)
        want = torch.cat(
            [
                (w if w is not None else torch.zeros_like(p)).reshape(-1)
                for w, p in zip(want, module.parameters())
            ]
        )
        got = grad_of(with_term.agent.modules[target]) - grad_of(without.agent.modules[target])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
