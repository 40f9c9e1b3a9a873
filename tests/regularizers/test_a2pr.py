"""A2PR: the weight's truth table, the target switch, gradient through the VAE (faithful) or not
(detached), the V and VAE losses against independent computations, λ invariance to reward scale,
and bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rlreg.data.transitions import TensorBatch, TransitionStore
from rlreg.errors import RlregError
from rlreg.regularizers import A2PR, SetupSource

OBS, ACT = 3, 2
SMALL = {"value_hidden": (16, 16), "vae_hidden": (24, 24)}


class FakeView:
    """The slice of the agent view A2PR reads, with Q functions chosen by the test."""

    device = torch.device("cpu")
    gamma = 0.9

    def __init__(self, q1=None, q_values=None, next_action=None, td_target=None):
        self._q1, self._q = q1, q_values
        self.next_action, self.td_target = next_action, td_target

    def q1(self, obs, act, target=False):
        return self._q1(obs, act)

    def q_values(self, obs, act, target=False):
        return self._q(obs, act)


def box():
    return -torch.ones(ACT), torch.ones(ACT)


def make_a2pr(view, seed: int = 0, **cfg) -> A2PR:
    torch.manual_seed(seed)
    reg = A2PR(**{**SMALL, **cfg})
    reg.setup(SetupSource(OBS, ACT, *box()), view)
    return reg


class FixedVAE(nn.Module):
    """Stands in for the VAE: returns the given actions (the test controls Q1(s, ã))."""

    def __init__(self, actions):
        super().__init__()
        self.actions = actions

    def forward(self, obs, act, generator=None, frozen=False):
        return self.actions, None, None


def batch_with(actions: torch.Tensor) -> TensorBatch:
    n = actions.shape[0]
    return TensorBatch(torch.zeros(n, OBS), actions, torch.zeros(n), torch.zeros(n, OBS), torch.zeros(n))


def test_weight_truth_table_and_target_switch():
    # Q1(s, x) = x.sum(); V = 0. Columns: Q1(s, ã), Q1(s, a) → expected (w / mask, target is ã)
    cases = [
        (0.4, 0.2, 1, True),  # both ≥/> V, ã better
        (0.2, 0.4, 1, False),  # both positive, a better
        (0.2, -0.4, 1, True),  # only ã ≥ V
        (-0.2, 0.4, 1, False),  # only a > V
        (-0.2, -0.4, 0, True),  # neither: no regularization (target ã, weight 0)
        (-0.4, -0.2, 0, False),
        (0.0, -0.4, 1, True),  # Q1(s, ã) = V counts (≥)
        (-0.4, 0.0, 0, False),  # Q1(s, a) = V does not (>)
        (0.0, 0.0, 1, True),  # tie between candidates: ã (A_pi >= A_data)
    ]
    a_vae = torch.tensor([[c[0] / 2, c[0] / 2] for c in cases])
    a_data = torch.tensor([[c[1] / 2, c[1] / 2] for c in cases])
    mask = 0.7
    reg = make_a2pr(FakeView(q1=lambda o, a: a.sum(1)), mask=mask)
    reg.modules["vae"] = FixedVAE(a_vae)
    reg._v_pre = torch.zeros(len(cases))
    reg._q1_data = a_data.sum(1)
    pi = torch.tensor([[0.9, -0.9]]).repeat(len(cases), 1)
    terms = reg.actor_terms(batch_with(a_data), pi, FakeView(q1=lambda o, a: a.sum(1)))
    # independent: w = mask · OR(...), target by the larger Q1, mean over batch × action dims
    total = 0.0
    for i, (_, _, on, use_vae) in enumerate(cases):
        target = a_vae[i] if use_vae else a_data[i]
        total += mask * on * float(((pi[i] - target) ** 2).sum())
    assert terms.losses["bc_loss"].item() == pytest.approx(total / (len(cases) * ACT), rel=1e-6)
    assert terms.stats["regularized"].item() == pytest.approx(np.mean([c[2] for c in cases]))
    assert terms.stats["vae_target"].item() == pytest.approx(np.mean([c[3] for c in cases]))


@pytest.mark.parametrize("detach", [False, True])
def test_gradient_through_the_vae_only_when_not_detached(detach):
    g = torch.Generator().manual_seed(0)
    n = 64
    obs, a_data = torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 2 - 1
    batch = TensorBatch(obs, a_data, torch.zeros(n), obs, torch.zeros(n))
    view = FakeView(q1=lambda o, a: a[:, 0])
    reg = make_a2pr(view, mask=1.0, detach_target=detach)
    reg._v_pre = torch.full((n,), -10.0)  # every sample regularized
    reg._q1_data = a_data[:, 0]
    pi = torch.tanh(torch.randn(n, ACT, generator=g)).requires_grad_(True)
    state = reg.gen.get_state()
    loss = reg.actor_terms(batch, pi, view).losses["bc_loss"]
    (grad,) = torch.autograd.grad(loss, [pi])
    reg.gen.set_state(state)
    a_vae = reg.modules["vae"](obs, pi.detach(), reg.gen)[0]
    use_vae = a_vae[:, 0] >= a_data[:, 0]
    assert 0 < use_vae.float().mean() < 1
    target = torch.where(use_vae[:, None], a_vae, a_data)
    plain = 2 * (pi.detach() - target) / (n * ACT)  # the gradient with the target held constant
    torch.testing.assert_close(grad[~use_vae], plain[~use_vae])  # dataset targets: always plain
    if detach:
        torch.testing.assert_close(grad[use_vae], plain[use_vae])
    else:  # faithful: the VAE target also moves with π, so these rows get extra gradient
        assert (grad[use_vae] - plain[use_vae]).abs().max() > 1e-4


def test_value_and_vae_losses_equal_their_formulas():
    g = torch.Generator().manual_seed(1)
    n = 32
    obs, act = torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 2 - 1
    rew, done = torch.randn(n, generator=g), (torch.rand(n, generator=g) < 0.2).float()
    nobs, next_act = torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 2 - 1
    td_target = torch.randn(n, generator=g)
    q_heads = torch.randn(2, n, generator=g)
    q1_data = torch.randn(n, generator=g)
    view = FakeView(
        q1=lambda o, a: q1_data, q_values=lambda o, a: q_heads, next_action=next_act, td_target=td_target
    )
    reg = make_a2pr(view, vae_weight=1.5)
    value, vae = reg.modules["value"], reg.modules["vae"]
    v_before = value(obs)[:, 0].detach()
    enc = [p.detach().clone() for p in (vae.encoder.flat, vae.decoder.flat)]
    state = reg.gen.get_state()
    stats = reg.update_extras(TensorBatch(obs, act, rew, nobs, done), view)

    # V: target min(r + γ(1-d) min_i Q_i(s', a'), y), loss mean (V - target)²
    y_online = rew + 0.9 * (1 - done) * q_heads.min(0).values
    v_target = torch.minimum(y_online, td_target)
    assert stats["v_loss"].item() == pytest.approx(((v_before - v_target) ** 2).mean().item(), rel=1e-5)

    # VAE with the pre-step weights and the same noise: gated reconstruction + 0.5 KL
    vae.encoder.flat.data.copy_(enc[0])
    vae.decoder.flat.data.copy_(enc[1])
    gen = torch.Generator().manual_seed(0)
    gen.set_state(state)
    h = vae.encoder(torch.cat([obs, act], 1)).detach()
    mu, log_std = h[:, : 2 * ACT], h[:, 2 * ACT :]
    std = torch.exp(torch.clamp(log_std, -4, 15))
    z = mu + std * torch.randn(mu.shape, generator=gen)
    recon = torch.tanh(vae.decoder(torch.cat([obs, z], 1)).detach())
    gate = (q1_data > v_before).float()
    recon_loss = (1.5 * gate[:, None] * (recon - act) ** 2).mean()
    kl = -0.5 * (1 + torch.log(std**2) - mu**2 - std**2).mean()
    assert stats["vae_loss"].item() == pytest.approx((recon_loss + 0.5 * kl).item(), rel=1e-5)
    assert stats["positive_adv"].item() == pytest.approx(gate.mean().item())
    # the stash used by the actor term is the pre-update V
    torch.testing.assert_close(reg._v_pre, v_before)


def test_lambda_makes_the_actor_step_invariant_to_reward_scale():
    from rlreg.agents.td3 import TD3Agent, TD3Config

    rng = np.random.default_rng(0)
    n = 256
    store = TransitionStore(n, OBS, ACT)
    store.add(
        rng.standard_normal((n, OBS)),
        rng.uniform(-1, 1, (n, ACT)),
        rng.standard_normal(n),
        rng.standard_normal((n, OBS)),
        np.zeros(n),
    )
    batch = store.sample(64, torch.Generator().manual_seed(0))
    params = []
    lambdas = []
    for scale in (1.0, 10.0):
        torch.manual_seed(0)
        cfg = TD3Config(actor_hidden=(32, 32), critic_hidden=(32, 32), alpha=2.5)
        agent = TD3Agent(cfg, OBS, ACT, *box(), regularizers=[A2PR(**SMALL, mask=1.0)], seed=0)
        torch.manual_seed(1)
        agent.setup(SetupSource(OBS, ACT, *box(), store=store))
        reg = agent.regularizers[0]
        with torch.no_grad():  # rewards × c ⇒ Q and V × c: scale the output layers
            for net in (agent.critic.net, reg.modules["value"]):
                for p in net.views(net.flat)[-2:]:
                    p.mul_(scale)
            reg._v_pre = reg.modules["value"](batch.observations)[:, 0]
            reg._q1_data = agent.critic.q1(batch.observations, batch.actions)
        metrics = {}
        agent._actor_step(batch, metrics)
        params.append(agent.actor.net.flat.detach().clone())
        lambdas.append(metrics["train/lambda"].item())
    assert lambdas[0] == pytest.approx(10.0 * lambdas[1], rel=1e-5)
    torch.testing.assert_close(params[0], params[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"mask": -0.1}, "a2pr.mask must be a finite number >= 0"),
        ({"vae_weight": float("nan")}, "a2pr.vae_weight must be a finite number >= 0"),
        ({"vae_lr": 0.0}, "a2pr.vae_lr must be a finite number > 0"),
        ({"value_hidden": ()}, "a2pr.value_hidden must be non-empty"),
    ],
)
def test_bad_settings(cfg, match):
    with pytest.raises(RlregError, match=match):
        A2PR(**cfg)


def test_actor_term_needs_the_extras_first():
    reg = make_a2pr(FakeView())
    with pytest.raises(RlregError, match="before update_extras"):
        reg.actor_terms(batch_with(torch.zeros(2, ACT)), torch.zeros(2, ACT), FakeView())


def test_state_round_trip_restores_networks_optimizers_and_noise():
    view = FakeView(
        q1=lambda o, a: a.sum(1),
        q_values=lambda o, a: torch.zeros(2, o.shape[0]),
        next_action=torch.zeros(8, ACT),
        td_target=torch.zeros(8),
    )
    reg = make_a2pr(view)
    batch = TensorBatch(
        torch.randn(8, OBS), torch.rand(8, ACT), torch.zeros(8), torch.randn(8, OBS), torch.zeros(8)
    )
    reg.update_extras(batch, view)
    state = reg.state_dict()
    other = make_a2pr(view, seed=5)
    other.load_state_dict(state)
    a = reg.update_extras(batch, view)
    b = other.update_extras(batch, view)
    for k in a:
        assert a[k].item() == b[k].item()


def test_a2pr_improves_on_the_behaviour_where_plain_td3_fails(poor_half):
    """On the half-poor one-step task, A2PR's advantage gate drops the poor dataset actions as
    targets and its VAE proposes better in-support ones: it beats the data and plain TD3."""
    from rlreg.agents.td3 import TD3Agent, TD3Config

    make_task, score_of = poor_half
    store, data_score = make_task()
    low, high = -torch.ones(1), torch.ones(1)
    cfg = TD3Config(actor_hidden=(64, 64), critic_hidden=(64, 64), alpha=2.5)
    reg = A2PR(mask=1.0, value_hidden=(64, 64), vae_hidden=(64, 64))
    agent = TD3Agent(cfg, 2, 1, low, high, regularizers=[reg], seed=0)
    agent.setup(SetupSource(2, 1, low, high, store=store))
    g = torch.Generator().manual_seed(0)
    for _ in range(1500):
        metrics = agent.update(store.sample(256, g))
    score, _, _ = score_of(agent.actor)
    assert score > data_score + 0.2, (score, data_score)
    # the gate is doing something: not every sample is regularized, and some targets are VAE actions
    assert 0.2 < metrics["reg/a2pr/regularized"].item() < 1.0
    assert 0.0 < metrics["reg/a2pr/vae_target"].item() < 1.0
