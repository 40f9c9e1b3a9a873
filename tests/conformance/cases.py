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


# ---------------------------------------------------------------------- SB3 subclasses (issue 15)
class SB3Host:
    """An SB3 subclass behind the interface the suite uses: ``update(batch)`` runs one ``train()``
    step on exactly that batch, ``modules``, ``view``, ``state_dict``. SB3 draws its target noise
    from torch's global generator: the host keeps a generator state of its own around each update,
    as rlreg's agents do."""

    def __init__(self, model: Any) -> None:
        from stable_baselines3.common.logger import configure

        self.model = model
        model.set_logger(configure(None, []))
        self.modules = {
            "actor": model.actor,
            "critic": model.critic,
            "actor_target": model.actor_target,
            "critic_target": model.critic_target,
        }
        self.view = model._view
        self.rng = torch.get_rng_state()

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        from stable_baselines3.common.type_aliases import ReplayBufferSamples

        m = self.model
        samples = ReplayBufferSamples(
            batch.observations,
            batch.actions,
            batch.next_observations,
            batch.dones[:, None],
            batch.rewards[:, None],
            None,
        )
        m.replay_buffer.sample = lambda *args, **kwargs: samples
        outer = torch.get_rng_state()
        torch.set_rng_state(self.rng)
        m.train(1, batch.observations.shape[0])
        self.rng = torch.get_rng_state()
        torch.set_rng_state(outer)
        out = {}
        for k, values in m._sink.items():
            reg = k.split("/")[1] if k.count("/") == 2 else None
            out[f"reg/{reg}/{k.split('/')[2]}" if reg else k] = torch.stack(
                [v.float() for v in values]
            ).mean()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": self.model.get_parameters(),
            "n_updates": self.model._n_updates,
            "rng": self.rng,
            "regularizers": [r.state_dict() for r in self.model.regularizers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.set_parameters(state["params"], exact_match=True)
        self.model._n_updates = state["n_updates"]
        self.rng = state["rng"]
        for r, s in zip(self.model.regularizers, state["regularizers"]):
            r.load_state_dict(s)


def sb3_td3_case(regs: Sequence[Regularizer], seed: int = 0, **config: Any) -> Case:
    """SB3's TD3 subclass on the continuous tiny problem (its spaces: a 5-D box, 2-D actions in [-1, 1])."""
    import gymnasium as gym
    import numpy as np
    from rlreg.agents.sb3 import TD3

    class Tiny(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (ACT,), np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(OBS, np.float32), {}

        def step(self, action):
            return np.zeros(OBS, np.float32), 0.0, False, False, {}

    kwargs = {"buffer_size": 100, "batch_size": 32, "policy_kwargs": {"net_arch": [16, 16]}}
    model = TD3("MlpPolicy", Tiny(), regularizers=list(regs), alpha=2.5, seed=seed, device="cpu", **kwargs)
    store = continuous_store()
    sampler = OfflineSampler(store, 32, torch.device("cpu"), seed)
    model.setup_regularizers(store=store, total_steps=100, lookahead=sampler.lookahead)
    return Case(SB3Host(model), sampler.sample, {"actor_terms": "actor", "critic_terms": "critic"})


HOSTS: dict[str, tuple[str, Callable[..., Case]]] = {"sb3-td3": ("actor_critic", sb3_td3_case)}
"""SB3 subclasses in the suite: name → (regularizer family, builder)."""
