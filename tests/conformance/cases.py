"""Tiny problems for the conformance suite: one per registered agent (a new agent adds its case).

Each case builds, for an agent kind, a small agent with the given regularizers, set up on a small
synthetic problem, and a batch source of that problem; ``networks`` names the agent's module that
each hook's terms must move (``actor_terms`` → the policy, ``critic_terms`` → the value network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from rlreg.agents.dqn import DQNAgent, DQNConfig
from rlreg.agents.sources import OfflineSampler
from rlreg.agents.td3 import TD3Agent, TD3Config

from rlreg.data.transitions import TransitionStore
from rlreg.regularizers.base import Regularizer, SetupSource

OBS, ACT, N = 5, 2, 300
IMG = (4, 10, 10)


@dataclass
class Case:
    """An agent with its regularizers, set up, and the sampler of its batches."""

    agent: Any
    sample: Callable[[], Any]
    networks: dict[str, str]  # hook → the module name its terms must move


def continuous_store(seed: int = 0) -> TransitionStore:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(N, OBS, generator=g)
    act = torch.rand(N, ACT, generator=g) * 2 - 1
    store = TransitionStore(N, OBS, ACT)
    rew = torch.randn(N, generator=g)
    nxt = obs + 0.1 * torch.randn(N, OBS, generator=g)
    done = (torch.rand(N, generator=g) < 0.05).float()
    store.add(obs, act, rew, nxt, done)
    return store


def td3_case(regs: Sequence[Regularizer], seed: int = 0, **config: Any) -> Case:
    box = torch.ones(ACT)
    cfg = TD3Config(actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32, alpha=2.5, **config)
    agent = TD3Agent(cfg, OBS, ACT, -box, box, list(regs), seed=seed)
    store = continuous_store()
    sampler = OfflineSampler(store, cfg.batch_size, torch.device("cpu"), seed)
    spec = SetupSource(OBS, ACT, -box, box, store=store, total_steps=100, lookahead=sampler.lookahead)
    agent.setup(spec)
    return Case(agent, sampler.sample, {"actor_terms": "actor", "critic_terms": "critic"})


def dqn_case(regs: Sequence[Regularizer], seed: int = 0, **config: Any) -> Case:
    cfg = DQNConfig(conv_channels=4, hidden=16, batch_size=32, **config)
    agent = DQNAgent(cfg, IMG, 3, list(regs), seed=seed)
    g = torch.Generator().manual_seed(0)
    replay = TransitionStore(N, obs_shape=IMG, num_actions=3, obs_dtype=torch.uint8)
    obs = (torch.rand(N, *IMG, generator=g) < 0.2).to(torch.uint8)
    nxt = (torch.rand(N, *IMG, generator=g) < 0.2).to(torch.uint8)
    act = torch.randint(0, 3, (N,), generator=g)
    replay.add(obs, act, torch.randn(N, generator=g), nxt, (torch.rand(N, generator=g) < 0.05).float())
    agent.setup(SetupSource(obs_dim=400, obs_shape=IMG, num_actions=3, total_steps=100))
    gen = torch.Generator().manual_seed(seed + 2)
    return Case(agent, lambda: replay.sample(cfg.batch_size, gen), {"critic_terms": "q"})


CASES: dict[str, Callable[..., Case]] = {"td3": td3_case, "dqn": dqn_case}
"""Agent kind → builder of its tiny case (every registered agent must have one)."""
