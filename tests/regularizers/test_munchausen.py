"""Munchausen / MDVI target: the formula, its limits, stability, gradients and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from rlreg.agents.dqn import DQNAgent, DQNConfig

from rlreg.data.transitions import TensorBatch
from rlreg.errors import RlregError
from rlreg.regularizers import Munchausen, make_regularizer

OBS = (2, 4, 4)
A = 3


class LinearTargetView:
    """A stand-in Q-learning view whose target net is a fixed linear map of the flattened obs."""

    def __init__(self, weight: torch.Tensor, gamma: float = 0.9) -> None:
        self.weight, self.gamma = weight, gamma
        self.next_target_q = None
        self.stats: dict[str, torch.Tensor] = {}

    def target_q_values(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.flatten(1) @ self.weight

    def log(self, reg, key, value) -> None:
        self.stats[f"reg/{reg.name}/{key}"] = value


def fixed_batch(n: int = 16, seed: int = 0, scale: float = 1.0) -> tuple[TensorBatch, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = TensorBatch(
        torch.randn(n, *OBS, generator=g),
        torch.randint(0, A, (n,), generator=g),
        torch.randn(n, generator=g),
        torch.randn(n, *OBS, generator=g),
        (torch.rand(n, generator=g) < 0.25).float(),
    )
    weight = torch.randn(math.prod(OBS), A, generator=g) * scale / 4
    return batch, weight


def reference_target(
    batch: TensorBatch, weight: torch.Tensor, gamma: float, kl: float, ent: float, l0: float
):
    """The M-DQN target written out sample by sample in float64 (independent of the module)."""
    tau = kl + ent
    alpha = kl / tau
    w = weight.double()
    out = []
    for i in range(len(batch.rewards)):
        q = (batch.observations[i].flatten().double() @ w).tolist()
        qn = (batch.next_observations[i].flatten().double() @ w).tolist()

        def log_softmax(values: list[float]) -> list[float]:
            z = [v / tau for v in values]
            m = max(z)
            lse = m + math.log(sum(math.exp(v - m) for v in z))
            return [v - lse for v in z]

        a = int(batch.actions[i])
        bonus = alpha * min(max(tau * log_softmax(q)[a], l0), 0.0)
        lp = log_softmax(qn)
        v_next = sum(math.exp(lp[b]) * (qn[b] - tau * lp[b]) for b in range(A))
        out.append(float(batch.rewards[i]) + bonus + gamma * (1 - float(batch.dones[i])) * v_next)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize(("kl", "ent", "l0"), [(0.027, 0.003, -1.0), (0.5, 0.25, -0.3), (0.1, 0.0, -1.0)])
def test_target_matches_an_independent_computation(kl, ent, l0):
    batch, weight = fixed_batch(scale=3.0)
    view = LinearTargetView(weight)
    reg = Munchausen(kl_coef=kl, ent_coef=ent, clip_min=l0)
    y = reg.critic_target(batch, torch.full((16,), float("nan")), view)  # the incoming target is replaced
    ref = reference_target(batch, weight, view.gamma, kl, ent, l0)
    torch.testing.assert_close(y.double(), ref, atol=2e-5, rtol=1e-5)
    # the clip is active for some samples at this scale and not for others
    q = batch.observations.flatten(1) @ weight
    tau = kl + ent
    log_pi = (tau * torch.log_softmax(q / tau, 1)).gather(1, batch.actions[:, None])
    assert (log_pi < l0).any() and (log_pi > l0).any()
    assert {"reg/munchausen/bonus", "reg/munchausen/entropy", "reg/munchausen/soft_gap"} <= set(view.stats)
    assert float(view.stats["reg/munchausen/soft_gap"]) >= 0
    assert 0 <= float(view.stats["reg/munchausen/entropy"]) <= math.log(A) + 1e-6


def test_entropy_only_has_no_bonus_and_soft_value():
    batch, weight = fixed_batch()
    view = LinearTargetView(weight)
    y = Munchausen(kl_coef=0.0, ent_coef=0.2).critic_target(batch, batch.rewards, view)
    qn = batch.next_observations.flatten(1) @ weight
    soft_v = 0.2 * torch.logsumexp(qn / 0.2, 1)  # Σπ(q − τ ln π) = τ log Σ exp(q/τ)
    torch.testing.assert_close(y, batch.rewards + 0.9 * (1 - batch.dones) * soft_v, atol=1e-5, rtol=1e-5)
    assert float(view.stats["reg/munchausen/bonus"]) == 0.0


def make_agent(regs=(), seed=0) -> DQNAgent:
    return DQNAgent(DQNConfig(conv_channels=4, hidden=16), OBS, A, regularizers=list(regs), seed=seed)


def test_zero_kl_and_entropy_is_exactly_the_dqn_target():
    batch, _ = fixed_batch()
    plain = make_agent()
    mdvi = make_agent([Munchausen(kl_coef=0.0, ent_coef=0.0)])
    y_plain = plain.bellman_target(batch)
    y_zero = mdvi.bellman_target(batch)
    assert torch.equal(y_plain, y_zero)
    with torch.no_grad():
        by_hand = (
            batch.rewards + 0.99 * (1 - batch.dones) * plain.q_target(batch.next_observations).max(1).values
        )
    assert torch.equal(y_zero, by_hand)
    # a tiny entropy weight (no KL) approaches it, with no NaN
    tiny = make_agent([Munchausen(kl_coef=0.0, ent_coef=1e-7)]).bellman_target(batch)
    assert torch.isfinite(tiny).all()
    torch.testing.assert_close(tiny, y_plain, atol=1e-5, rtol=0)
    # while κ, τ → 0 at a fixed α keeps the bonus α·clip(q̄(s,a) − max q̄(s), l0, 0) (advantage learning)
    agent = make_agent([Munchausen(kl_coef=0.5e-7, ent_coef=0.5e-7)])
    with torch.no_grad():
        q = agent.q_target(batch.observations)
    gap = (q.gather(1, batch.actions[:, None])[:, 0] - q.amax(1)).clamp(-1.0, 0.0)
    torch.testing.assert_close(agent.bellman_target(batch), y_plain + 0.5 * gap, atol=1e-5, rtol=0)


def test_stable_for_large_values_and_small_temperature():
    batch, weight = fixed_batch(scale=4000.0)  # q differences in the thousands, τ = 0.03
    view = LinearTargetView(weight)
    y = Munchausen().critic_target(batch, batch.rewards, view)
    assert torch.isfinite(y).all()
    qn = batch.next_observations.flatten(1) @ weight
    # soft value ≈ max at this scale; bonus within [α·l0, 0]
    bound = batch.rewards + 0.9 * (1 - batch.dones) * qn.amax(1)
    assert (y <= bound + 0.03 * math.log(A) + 1e-2).all() and (y >= bound - 0.9 - 1e-2).all()


def test_conversion_from_m_dqn_parameters():
    reg = Munchausen(kl_coef=0.9 * 0.03, ent_coef=0.1 * 0.03)
    assert reg.temperature == pytest.approx(0.03) and reg.alpha == pytest.approx(0.9)
    assert Munchausen().config.kl_coef == 0.027 and Munchausen().config.ent_coef == 0.003


def test_target_is_detached_and_only_the_online_net_learns():
    batch, _ = fixed_batch()
    agent = make_agent([Munchausen()])
    y = agent.bellman_target(batch)
    assert not y.requires_grad
    before = {k: v.clone() for k, v in agent.q_target.state_dict().items()}
    online_before = [p.clone() for p in agent.q.parameters()]
    metrics = agent.update(batch)
    assert all(p.grad is None for p in agent.q_target.parameters())
    assert all(torch.equal(v, agent.q_target.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(a, b) for a, b in zip(online_before, agent.q.parameters()))
    assert {"reg/munchausen/bonus", "reg/munchausen/entropy", "train/td_loss"} <= set(metrics)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kl_coef": -0.1}, "munchausen.kl_coef must be a finite number >= 0"),
        ({"ent_coef": -1e-3}, "munchausen.ent_coef must be a finite number >= 0"),
        ({"kl_coef": float("nan")}, "munchausen.kl_coef"),
        ({"clip_min": 0.5}, "munchausen.clip_min must be a number <= 0"),
        ({"tau": 0.03}, "unknown setting(s) ['tau']"),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(RlregError) as e:
        make_regularizer("munchausen", **settings)
    assert message in str(e.value) and "fix:" in str(e.value)


def test_refused_by_an_actor_critic_agent():
    from rlreg.agents.td3 import TD3Agent, TD3Config

    with pytest.raises(RlregError, match="does not fit a actor_critic agent"):
        TD3Agent(TD3Config(), 3, 1, [-1.0], [1.0], regularizers=[Munchausen()])
