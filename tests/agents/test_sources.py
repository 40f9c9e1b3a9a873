"""The rollout and window data sources, each driven through the one training loop by a minimal test
agent registered here (PPO and the Decision Transformer arrive in their own issues), plus the
rollout's bootstrap values and GAE against a hand computation."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from rlreg.agents.base import UPDATE, Agent, register_agent
from rlreg.agents.sources import Rollout, RolloutCollector, compute_gae
from rlreg.agents.trainer import train
from torch import nn

from rlreg.errors import RlregError


# ---------------------------------------------------------------------- a tiny on-policy agent
@dataclass
class TinyA2CConfig:
    n_steps: int = 32
    batch_size: int = 64
    epochs: int = 1
    lr: float = 3e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    hidden: int = 64

    def validate(self) -> None:
        pass


@register_agent
class TinyA2C(Agent):
    """Advantage actor-critic with GAE on a discrete action space: enough to show the rollout source."""

    name = "test-a2c"
    family = "policy_gradient"
    Config = TinyA2CConfig
    data = "rollout"
    action_space = "discrete"

    def __init__(self, config: TinyA2CConfig, obs_dim: int, n: int, regs=(), device="cpu", seed=0) -> None:
        super().__init__(config, regs, device, seed)
        torch.manual_seed(seed)
        self.n = n
        self.net = nn.Sequential(
            nn.Linear(obs_dim, config.hidden), nn.Tanh(), nn.Linear(config.hidden, n + 1)
        )
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.gen = torch.Generator().manual_seed(seed + 1)
        self.modules, self.optimizers, self.generators = (
            {"net": self.net},
            {"opt": self.opt},
            {"gen": self.gen},
        )
        self.seen: list[dict[str, torch.Tensor]] = []

    @classmethod
    def from_spec(cls, config, spec, regularizers, device, seed):
        return cls(config, spec.obs_dim, spec.num_actions, regularizers, device, seed)

    def _heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(obs.reshape(obs.shape[0], -1))
        return out[:, : self.n], out[:, self.n]

    @torch.no_grad()
    def act_info(self, obs: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, v = self._heads(obs)
        a = torch.multinomial(logits.softmax(-1), 1, generator=self.gen)[:, 0]
        logp = logits.log_softmax(-1).gather(1, a[:, None])[:, 0]
        return a, {"values": v, "log_probs": logp}

    @torch.no_grad()
    def values(self, obs: torch.Tensor) -> torch.Tensor:
        return self._heads(obs)[1]

    def finish_rollout(self, rollout: Rollout) -> dict[str, torch.Tensor]:
        adv, ret = compute_gae(rollout, self.config.gamma, self.config.gae_lambda)
        return {"advantages": adv, "returns": ret}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, mode: str = "explore", step: int | None = None) -> torch.Tensor:
        logits, _ = self._heads(obs)
        if mode == "explore":
            return torch.multinomial(logits.softmax(-1), 1, generator=self.gen)[:, 0]
        return logits.argmax(-1)

    def schedule(self, prev_step: int, step: int) -> list[str]:
        return [UPDATE] * (self.config.epochs * (step - prev_step) // self.config.batch_size)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.num_updates += 1
        self.seen.append({k: v.shape for k, v in batch.items()})
        logits, v = self._heads(batch["observations"])
        logp_all = logits.log_softmax(-1)
        logp = logp_all.gather(1, batch["actions"][:, None])[:, 0]
        adv = batch["advantages"]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
        loss = -(logp * adv).mean() + 0.5 * F.mse_loss(v, batch["returns"]) - 0.01 * entropy
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"train/loss": loss.detach(), "train/entropy": entropy.detach()}


# ---------------------------------------------------------------------- a tiny sequence agent
@dataclass
class TinyRCBCConfig:
    context: int = 4
    batch_size: int = 64
    gamma: float = 1.0
    lr: float = 1e-3
    hidden: int = 64

    def validate(self) -> None:
        pass


@register_agent
class TinyRCBC(Agent):
    """Return-conditioned behaviour cloning on K-step windows (a Decision Transformer's data, an MLP)."""

    name = "test-rcbc"
    family = "sequence"
    Config = TinyRCBCConfig
    data = "windows"

    def __init__(self, config: TinyRCBCConfig, obs_dim: int, act_dim: int, regs=(), device="cpu", seed=0):
        super().__init__(config, regs, device, seed)
        torch.manual_seed(seed)
        k, self.obs_dim = config.context, obs_dim
        self.net = nn.Sequential(
            nn.Linear(k * (obs_dim + 2), config.hidden), nn.ReLU(), nn.Linear(config.hidden, act_dim)
        )
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.modules, self.optimizers = {"net": self.net}, {"opt": self.opt}

    @classmethod
    def from_spec(cls, config, spec, regularizers, device, seed):
        return cls(config, spec.obs_dim, spec.act_dim, regularizers, device, seed)

    def _predict(self, obs: torch.Tensor, rtg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.float()
        x = torch.cat([obs * m[..., None], (rtg / 1000.0 * m)[..., None], m[..., None]], dim=-1)
        return torch.tanh(self.net(x.flatten(1))) * 2.0

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        self.num_updates += 1
        assert batch.observations.shape[1] == self.config.context
        pred = self._predict(batch.observations, batch.returns_to_go, batch.attention_mask)
        loss = F.mse_loss(pred, batch.actions[:, -1])
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        padded = (~batch.attention_mask).float().mean()
        return {"train/bc_loss": loss.detach(), "train/padded": padded}

    @torch.no_grad()
    def act(self, obs: torch.Tensor, mode: str = "explore", step: int | None = None) -> torch.Tensor:
        k, n = self.config.context, obs.shape[0]
        window = torch.zeros(n, k, self.obs_dim)
        window[:, -1] = obs
        mask = torch.zeros(n, k, dtype=torch.bool)
        mask[:, -1] = True
        return self._predict(window, torch.full((n, k), -200.0), mask)


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def base_cfg(agent: str, **source: Any) -> dict[str, Any]:
    train_cfg = {"eval_episodes": 0, "log_every": 1000, "checkpoint_every": 0, "threads": 1}
    return {
        "recipe": agent,
        "agent": agent,
        "seed": 0,
        "device": "cpu",
        "dataset": None,
        "env": None,
        "agent_config": {},
        "regularizers": [],
        "train": train_cfg,
        **source,
    }


def test_a2c_learns_cartpole_through_the_rollout_source_and_the_loop(tmp_path):
    cfg = base_cfg("test-a2c", env="CartPole-v1")
    cfg["train"].update(steps=24_576, num_envs=4, log_every=2048, eval_episodes=4, eval_every=24_576)
    summary = train(cfg, tmp_path / "a2c", progress=False)
    rows = read_csv(tmp_path / "a2c" / "metrics.csv")
    returns = [float(r["rollout/episode_return"]) for r in rows if r.get("rollout/episode_return")]
    assert returns[0] < 40 and max(returns[-3:]) > 2 * returns[0], returns  # random CartPole: about 22
    assert summary["final_return"] > 60
    assert rows[-1]["env_steps_per_s"] != ""


def test_rollout_minibatches_and_resume(tmp_path):
    from rlreg.agents.trainer import build_run, resume

    cfg = base_cfg("test-a2c", env="CartPole-v1")
    cfg["train"].update(steps=1024, num_envs=2, log_every=256, checkpoint_every=512)
    run = build_run(cfg)
    src = run.source
    assert isinstance(src, RolloutCollector)
    assert src.collect(run.agent, 0) == 64
    batch = src.sample()
    assert set(batch) >= {
        "observations",
        "actions",
        "values",
        "log_probs",
        "advantages",
        "returns",
        "next_values",
    }
    assert batch["observations"].shape == (64, 4) and batch["actions"].dtype == torch.int64

    def crash(step, run):
        if step == 768:
            raise RuntimeError("crash")

    train(cfg, tmp_path / "full", progress=False)
    with pytest.raises(RuntimeError):
        train(cfg, tmp_path / "cut", progress=False, callback=crash)
    resume(tmp_path / "cut", progress=False)
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert a["agent"]["num_updates"] == b["agent"]["num_updates"] == 16
    # Gymnasium simulators are not checkpointed: the resumed run starts new episodes, so the weights
    # differ; the schedule and the logs' steps do not
    assert [r["step"] for r in read_csv(tmp_path / "full" / "metrics.csv")] == [
        r["step"] for r in read_csv(tmp_path / "cut" / "metrics.csv")
    ]


def test_window_agent_trains_through_the_window_source(tmp_path, pendulum_medium):
    cfg = base_cfg("test-rcbc", dataset=pendulum_medium)
    cfg["train"].update(steps=3000, log_every=1000, eval_episodes=2, eval_every=3000)
    cfg["agent_config"] = {"lr": 3e-3}
    train(cfg, tmp_path / "rcbc", progress=False)
    rows = read_csv(tmp_path / "rcbc" / "metrics.csv")
    losses = [float(r["train/bc_loss"]) for r in rows]
    assert losses[-1] < 0.95 * losses[0], losses  # the medium data is noisy: the floor is near 2.3
    assert 0 < float(rows[0]["train/padded"]) < 0.5  # some windows start at an episode's start


def test_a_source_the_data_cannot_give_is_refused(tmp_path):
    with pytest.raises(RlregError, match="trains from windows, which an environment does not give"):
        train(base_cfg("test-rcbc", env="Pendulum-v1"), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------- bootstrap values and GAE
class ScriptedEnvs:
    """Two environments with scripted rewards, terminations and truncations; observation = step."""

    checkpointed = False

    def __init__(self) -> None:
        self.num_envs, self.obs_shape, self.t = 2, (1,), 0
        self.term = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 0]], dtype=torch.bool)
        self.trunc = torch.tensor([[0, 0], [0, 1], [0, 0], [0, 0]], dtype=torch.bool)

    def start(self, rng: Any = None) -> torch.Tensor:
        return torch.zeros(2, 1)

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t = self.t
        self.t += 1
        final = torch.full((2, 1), 100.0 + t)  # what a truncated episode bootstraps from
        nxt = torch.full((2, 1), float(t + 1))
        return nxt, torch.tensor([1.0, 2.0]), self.term[t], self.trunc[t], final

    def close(self) -> None:
        pass


class ValueIsObs:
    def act_info(self, obs, step):
        return torch.zeros(2, dtype=torch.int64), {"values": obs[:, 0].clone()}

    def values(self, obs):
        return obs[:, 0].clone()


def test_rollout_bootstrap_values_and_gae_against_a_hand_computation():
    src = RolloutCollector(ScriptedEnvs(), n_steps=4, batch_size=4, device=torch.device("cpu"), seed=0)
    assert src.collect(ValueIsObs(), 0) == 8
    r = src.rollout
    assert r["values"].tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]]
    # inside an episode: the next step's value; env 0 terminated at t=1 (value unused, masked);
    # env 1 truncated at t=1: V(final_obs) = 101; after the last step: V(obs_T) = 4
    assert r["next_values"][:, 1].tolist() == [1, 101, 3, 4]
    assert r["next_values"][[0, 2, 3], 0].tolist() == [1, 3, 4]
    gamma, lam = 0.9, 0.8
    adv, ret = compute_gae(r, gamma, lam)
    for e, rew in ((0, 1.0), (1, 2.0)):
        want = [0.0] * 4
        running = 0.0
        for t in range(3, -1, -1):
            term = bool(r["terminated"][t, e])
            done = term or bool(r["truncated"][t, e])
            nv = 0.0 if term else float(r["next_values"][t, e])
            delta = rew + gamma * nv - float(r["values"][t, e])
            running = delta + gamma * lam * (0.0 if done else running)
            want[t] = running
        assert adv[:, e].tolist() == pytest.approx(want)
    torch.testing.assert_close(ret, adv + r["values"])
    with pytest.raises(RlregError, match="minibatches of 3"):
        RolloutCollector(ScriptedEnvs(), n_steps=4, batch_size=3, device=torch.device("cpu"), seed=0)


# ---------------------------------------------------------------------- Gymnasium vector envs
def test_gymnasium_vector_envs_plug_into_the_replay_collector():
    """A Gymnasium vector env (SAME_STEP autoreset) and MinAtar's VectorEnv drive the same collector:
    true final observations where episodes end, terminations and truncations apart."""
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode
    from rlreg.agents.sources import ReplayCollector, VectorEnvs
    from rlreg.envs.minatar import MinAtarVectorEnv

    from rlreg.data.transitions import TransitionStore

    cpu = torch.device("cpu")

    class Uniform:
        random_warmup = True

    same_step = {"autoreset_mode": AutoresetMode.SAME_STEP}
    vec = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync", vector_kwargs=same_step)
    store = TransitionStore(500, obs_shape=(4,), num_actions=2, num_envs=2)
    col = ReplayCollector(VectorEnvs(vec, cpu), store, 16, cpu, seed=0, learning_starts=10**9)
    for step in range(0, 400, 2):
        col.collect(Uniform(), step)
    assert len(store) == 400 and store.terminated[:400].sum() > 0
    ended = store.terminated[:400].bool()
    # an ended row's next observation is its episode's last one, not the next episode's first
    rows = torch.nonzero(ended[:-2]).flatten()
    assert not torch.equal(store.next_obs[rows], store.obs[rows + 2])
    assert col.pop_stats()["rollout/episodes"] >= 2

    minatar = MinAtarVectorEnv("breakout", num_envs=3, numpy=False, max_episode_steps=5)
    store = TransitionStore(100, obs_shape=(4, 10, 10), num_actions=6, num_envs=3)
    col = ReplayCollector(VectorEnvs(minatar, cpu), store, 16, cpu, seed=0, learning_starts=10**9)
    for step in range(0, 60, 3):
        col.collect(Uniform(), step)
    assert bool(store.timeouts[:60].any())  # 5-step limit: truncations kept apart from terminals
    with pytest.raises(RlregError, match="SAME_STEP"):
        VectorEnvs(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), cpu)
