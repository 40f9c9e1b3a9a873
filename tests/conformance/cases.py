"""Tiny problems for the conformance suite: one per registered agent (a new agent adds its case).

Each case builds, for an agent kind, a small agent with the given regularizers, set up on a small
synthetic problem, and a batch source of that problem; ``networks`` names the agent's module that
each hook's terms must move (``actor_terms`` → the policy, ``critic_terms`` → the value network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from rlreg.agents.dqn import DQNAgent, DQNConfig
from rlreg.agents.ppo import PPOAgent, PPOConfig
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
    downstream: dict[str, set[str]] = field(default_factory=dict)
    """hook → modules stepped later in the same update on what the hook's network computes (SAC's
    actor steps on the critic just updated): they may change through it, so the probes skip them."""


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


def ppo_case(regs: Sequence[Regularizer], seed: int = 0, **config: Any) -> Case:
    """PPO (discrete, 3 actions) on minibatches of a fixed random rollout: observations, actions,
    their old log-probabilities and values, advantages and returns."""
    cfg = PPOConfig(hidden=(16, 16), batch_size=32, **config)
    agent = PPOAgent(cfg, (OBS,), num_actions=3, regularizers=list(regs), seed=seed)
    agent.setup(SetupSource(obs_dim=OBS, num_actions=3, total_steps=100))
    g = torch.Generator().manual_seed(0)
    rollout = {
        "observations": torch.randn(N, OBS, generator=g),
        "actions": torch.randint(0, 3, (N,), generator=g),
        "log_probs": -torch.rand(N, generator=g) - 0.5,
        "values": torch.randn(N, generator=g),
        "advantages": torch.randn(N, generator=g),
        "returns": torch.randn(N, generator=g),
    }
    gen = torch.Generator().manual_seed(seed + 2)

    def sample() -> dict[str, torch.Tensor]:
        idx = torch.randint(0, N, (cfg.batch_size,), generator=gen)
        return {k: v[idx] for k, v in rollout.items()}

    return Case(agent, sample, {"entropy_terms": "net"})


CASES: dict[str, Callable[..., Case]] = {"td3": td3_case, "dqn": dqn_case, "ppo": ppo_case}
"""Agent kind → builder of its tiny case (every registered agent must have one)."""


# ---------------------------------------------------------------------- SB3 subclasses (issue 15)
class SB3Host:
    """An SB3 subclass behind the interface the suite uses: ``update(batch)`` runs one ``train()``
    step on exactly that batch (``patch(model, batch)`` makes the model's buffer hand it out),
    ``modules``, ``view``, ``state_dict``. SB3 draws noise from torch's global generator: the host
    keeps a generator state of its own around each update, as rlreg's agents do."""

    def __init__(self, model: Any, modules: dict[str, Any], patch: Callable[[Any, Any], int]) -> None:
        from stable_baselines3.common.logger import configure

        self.model, self.modules, self.patch = model, modules, patch
        model.set_logger(configure(None, []))
        self.view = model._view
        self.rng = torch.get_rng_state()

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        m = self.model
        size = self.patch(m, batch)
        outer = torch.get_rng_state()
        torch.set_rng_state(self.rng)
        if m.__class__.__name__ == "PPO":
            m.train()
        else:
            m.train(1, size)
        self.rng = torch.get_rng_state()
        torch.set_rng_state(outer)
        out = {}
        for k, values in m._sink.items():
            reg = k.split("/")[1] if k.count("/") == 2 else None
            out[f"reg/{reg}/{k.split('/')[2]}" if reg else k] = torch.stack(
                [v.float() for v in values]
            ).mean()
        return out

    def _tensor_names(self) -> list[str]:
        names = self.model._get_torch_save_params()[1]
        return [n for n in names if isinstance(getattr(self.model, n, None), torch.Tensor)]

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": self.model.get_parameters(),
            # SB3 keeps some tensors outside its state dicts (SAC's log_ent_coef): save() has them
            "tensors": {n: getattr(self.model, n).detach().clone() for n in self._tensor_names()},
            "n_updates": self.model._n_updates,
            "rng": self.rng,
            "regularizers": [r.state_dict() for r in self.model.regularizers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.set_parameters(state["params"], exact_match=True)
        with torch.no_grad():
            for n, t in state["tensors"].items():
                getattr(self.model, n).copy_(t)
        self.model._n_updates = state["n_updates"]
        self.rng = state["rng"]
        for r, s in zip(self.model.regularizers, state["regularizers"]):
            r.load_state_dict(s)


def _tiny_env(obs_shape: tuple[int, ...], action_space: Any) -> Any:
    import gymnasium as gym
    import numpy as np

    class Tiny(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, obs_shape, np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(obs_shape, np.float32), {}

        def step(self, action):
            return np.zeros(obs_shape, np.float32), 0.0, False, False, {}

    Tiny.action_space = action_space
    return Tiny()


def _replay_patch(model: Any, batch: Any) -> int:
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    actions = batch.actions if batch.actions.ndim == 2 else batch.actions[:, None]
    samples = ReplayBufferSamples(
        batch.observations.float(),
        actions,
        batch.next_observations.float(),
        batch.dones[:, None],
        batch.rewards[:, None],
        None,
    )
    model.replay_buffer.sample = lambda *args, **kwargs: samples
    return batch.observations.shape[0]


def _actor_critic_host(
    cls: Any,
    regs: Sequence[Regularizer],
    seed: int,
    downstream: dict[str, set[str]] | None = None,
    **kwargs: Any,
) -> Case:
    import gymnasium as gym

    env = _tiny_env((OBS,), gym.spaces.Box(-1.0, 1.0, (ACT,)))
    common = {"buffer_size": 100, "batch_size": 32, "policy_kwargs": {"net_arch": [16, 16]}}
    model = cls("MlpPolicy", env, regularizers=list(regs), seed=seed, device="cpu", **common, **kwargs)
    store = continuous_store()
    sampler = OfflineSampler(store, 32, torch.device("cpu"), seed)
    model.setup_regularizers(store=store, total_steps=100, lookahead=sampler.lookahead)
    names = ("actor", "critic", "actor_target", "critic_target")
    modules = {n: getattr(model, n) for n in names if getattr(model, n, None) is not None}
    host = SB3Host(model, modules, _replay_patch)
    return Case(host, sampler.sample, {"actor_terms": "actor", "critic_terms": "critic"}, downstream or {})


def sb3_td3_case(regs: Sequence[Regularizer], seed: int = 0, **config: Any) -> Case:
    """SB3's TD3 subclass on the continuous tiny problem (a 5-D box, 2-D actions in [-1, 1])."""
    from rlreg.agents.sb3 import TD3

    return _actor_critic_host(TD3, regs, seed, alpha=2.5)


def sb3_sac_case(regs: Sequence[Regularizer], seed: int = 0, **config: Any) -> Case:
    """SB3's SAC subclass on the continuous tiny problem."""
    from rlreg.agents.sb3 import SAC

    return _actor_critic_host(SAC, regs, seed, downstream={"critic_terms": {"actor"}})


def sb3_dqn_case(regs: Sequence[Regularizer], seed: int = 0, **config: Any) -> Case:
    """SB3's DQN subclass (MinAtar's network) on the image tiny problem of ``dqn_case``."""
    import gymnasium as gym
    from rlreg.agents.sb3 import DQN, MinAtarCNN

    base = dqn_case([], seed)  # its replay of uint8 images and its sampler
    policy_kwargs = {"features_extractor_class": MinAtarCNN, "net_arch": [], "features_extractor_kwargs": {}}
    policy_kwargs["features_extractor_kwargs"] = {"features_dim": 16, "channels": 4}
    env = _tiny_env(IMG, gym.spaces.Discrete(3))
    model = DQN(
        "MlpPolicy",
        env,
        regularizers=list(regs),
        buffer_size=100,
        batch_size=32,
        seed=seed,
        device="cpu",
        policy_kwargs=policy_kwargs,
    )
    modules = {"q": model.q_net, "q_target": model.q_net_target}
    if hasattr(model, "q_net_prev_target"):
        modules["q_prev_target"] = model.q_net_prev_target
    return Case(SB3Host(model, modules, _replay_patch), base.sample, {"critic_terms": "q"})


def sb3_ppo_case(regs: Sequence[Regularizer], seed: int = 0, **config: Any) -> Case:
    """SB3's PPO subclass on a tiny discrete problem: minibatches of random rollout samples."""
    import gymnasium as gym
    from rlreg.agents.sb3 import PPO
    from stable_baselines3.common.type_aliases import RolloutBufferSamples

    env = _tiny_env((OBS,), gym.spaces.Discrete(3))
    model = PPO(
        "MlpPolicy",
        env,
        regularizers=list(regs),
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        seed=seed,
        device="cpu",
        policy_kwargs={"net_arch": [16]},
    )
    g = torch.Generator().manual_seed(seed + 2)

    def sample() -> RolloutBufferSamples:
        b = 32
        return RolloutBufferSamples(
            torch.randn(b, OBS, generator=g),
            torch.randint(0, 3, (b, 1), generator=g).float(),
            torch.randn(b, generator=g),
            -torch.rand(b, generator=g) - 0.5,
            torch.randn(b, generator=g),
            torch.randn(b, generator=g),
        )

    def patch(m: Any, samples: Any) -> int:
        m.rollout_buffer.get = lambda *args, **kwargs: iter([samples])
        return 32

    host = SB3Host(model, {"policy": model.policy}, patch)
    return Case(host, sample, {"entropy_terms": "policy"})


HOSTS: dict[str, tuple[str, Callable[..., Case]]] = {
    "sb3-td3": ("actor_critic", sb3_td3_case),
    "sb3-sac": ("actor_critic", sb3_sac_case),
    "sb3-dqn": ("q_learning", sb3_dqn_case),
    "sb3-ppo": ("policy_gradient", sb3_ppo_case),
}
"""SB3 subclasses in the suite: name → (regularizer family, builder)."""
