"""BEER (He et al., ICLR 2024): the penalty on a fixed batch against an independent per-sample
computation written from the paper's bound, both modes, gradient flow, edge cases, srank, and the
agents it plugs into (rlreg's DDPG/TD3/TD3+BC, SB3's TD3)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rlreg.data.transitions import TensorBatch
from rlreg.errors import RlregError
from rlreg.regularizers import BEER
from rlreg.regularizers.base import CriticContext
from rlreg.regularizers.beer import srank

E, B, H = 2, 6, 5


def fixed(seed: int = 0, reward_scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    phi = torch.rand(E, B, H, generator=g).requires_grad_(True)
    nxt_online = torch.rand(E, B, H, generator=g)
    nxt_target = torch.rand(E, B, H, generator=g)
    w = torch.randn(E, H, generator=g)
    r = torch.rand(B, generator=g) * reward_scale
    batch = TensorBatch(torch.zeros(B, 3), torch.zeros(B, 1), r, torch.zeros(B, 3), torch.zeros(B))
    view = SimpleNamespace(gamma=0.9, critic_output_weights=lambda: w, step=1)
    ctx = CriticContext(torch.zeros(E, B), torch.zeros(B), phi, None, nxt_target, lambda: nxt_online)
    return batch, ctx, view, (phi, nxt_online, nxt_target, w, r)


def reference_penalty(phi, nxt_online, nxt_target, w, r, gamma, parity, online=True) -> float:
    """Σ_heads mean_samples max(0, cos(φ, φ̄') − B), B = (|φ|² + γ²|φ'|² − r²/|w|²) / (2γ|φ||φ̄'|),
    with φ' the online next features (default, official) or φ̄' (``online=False``), and γ = 0.99
    under ``parity`` (the official code)."""
    phi, nxt_online, nxt_target = (np.asarray(x.detach(), np.float64) for x in (phi, nxt_online, nxt_target))
    w, r = np.asarray(w, np.float64), np.asarray(r, np.float64)
    g = 0.99 if parity else gamma
    total = 0.0
    for e in range(phi.shape[0]):
        acc = 0.0
        for i in range(phi.shape[1]):
            f, ft = phi[e, i], nxt_target[e, i]
            fn = nxt_online[e, i] if (parity or online) else ft
            nf, nt = math.sqrt(f @ f), math.sqrt(ft @ ft)
            bound = (f @ f + g * g * (fn @ fn) - r[i] ** 2 / (w[e] @ w[e])) / (2 * g * nf * nt)
            cos = (f @ ft) / max(nf * nt, 1e-6)
            acc += max(0.0, cos - bound)
        total += acc / phi.shape[1]
    return total


@pytest.mark.parametrize(
    ("parity", "next_features"), [(False, "online"), (False, "target"), (True, "online")]
)
@pytest.mark.parametrize("reward_scale", [1.0, 8.0])  # 8: large r²/|w|², most samples active
def test_penalty_equals_an_independent_computation(parity, next_features, reward_scale):
    batch, ctx, view, (phi, nxt_online, nxt_target, w, r) = fixed(reward_scale=reward_scale)
    terms = BEER(beta=0.5, parity=parity, next_features=next_features).critic_terms(batch, ctx, view)
    online = next_features == "online"
    want = 0.5 * reference_penalty(phi, nxt_online, nxt_target, w, r, view.gamma, parity, online)
    assert terms.losses["beer_loss"].item() == pytest.approx(want, rel=1e-5, abs=1e-7)
    assert 0.0 <= terms.stats["active"].item() <= 1.0
    if reward_scale == 8.0:
        assert terms.stats["active"].item() > 0.5 and want > 0


def test_the_target_bound_never_computes_the_online_next_features():
    batch, ctx, view, _ = fixed()
    ctx.next_features_fn = lambda: pytest.fail("next_features='target' must not need φ(s', π(s'))")
    BEER(next_features="target").critic_terms(batch, ctx, view)


def test_the_target_bound_is_at_least_one_without_the_reward_term():
    """AM-GM: with r = 0 the consistent bound is ≥ 1 ≥ cos, so it never fires; the online one
    (official) can, when the online next features are shorter than the target's."""
    batch, ctx, view, _ = fixed()
    batch = batch._replace(rewards=torch.zeros(B))
    assert BEER(next_features="target").critic_terms(batch, ctx, view).stats["bound"].item() >= 1.0
    phi = ctx.next_target_features.clone().requires_grad_(True)  # cos = 1
    short = CriticContext(ctx.q, ctx.target, phi, 0.5 * ctx.next_target_features, ctx.next_target_features)
    terms = BEER(next_features="online").critic_terms(batch, short, view)
    assert terms.stats["active"].item() == 1.0 and terms.losses["beer_loss"].item() > 0


def test_zero_when_every_cosine_is_below_the_bound():
    # φ ⟂ φ̄' and r = 0: cos = 0 ≤ 1 ≤ B (AM-GM, with the online next features equal here), so no
    # sample is active
    batch, ctx, view, _ = fixed()
    phi = torch.zeros(E, B, H)
    phi[..., 0] = 1.0
    nxt = torch.zeros(E, B, H)
    nxt[..., 1] = 2.0
    ctx = CriticContext(ctx.q, ctx.target, phi.requires_grad_(True), nxt, nxt, None)
    batch = batch._replace(rewards=torch.zeros(B))
    terms = BEER().critic_terms(batch, ctx, view)
    assert terms.losses["beer_loss"].item() == 0.0 and terms.stats["active"].item() == 0.0
    assert terms.stats["bound"].item() >= 1.0


def test_gradient_only_through_the_current_features():
    batch, ctx, view, (phi, *_rest) = fixed(reward_scale=8.0)
    loss = BEER(beta=1.0).critic_terms(batch, ctx, view).losses["beer_loss"]
    assert loss.requires_grad
    (g,) = torch.autograd.grad(loss, [phi])
    assert g.abs().sum() > 0
    # the bound is a constant: the gradient is that of β·mean ReLU(cos − B) with B fixed
    with torch.no_grad():
        from rlreg.regularizers.beer import beer_bound

        bound = beer_bound(
            phi,
            ctx.next_online_features().square().sum(-1),
            ctx.next_target_features,
            batch.rewards,
            view.critic_output_weights().square().sum(-1, keepdim=True),
            0.9,
        )
    p = phi.detach().clone().requires_grad_(True)
    cos = torch.nn.functional.cosine_similarity(p, ctx.next_target_features, dim=-1, eps=1e-6)
    (want,) = torch.autograd.grad(torch.relu(cos - bound).mean(-1).sum(), [p])
    torch.testing.assert_close(g, want)


def test_edge_cases_beta_zero_dead_features_and_bad_settings():
    batch, ctx, view, _ = fixed()
    assert BEER(beta=0.0).critic_terms(batch, ctx, view).losses["beer_loss"].item() == 0.0
    dead = CriticContext(
        ctx.q,
        ctx.target,
        torch.zeros(E, B, H, requires_grad=True),
        torch.zeros(E, B, H),
        torch.zeros(E, B, H),
    )
    terms = BEER().critic_terms(batch, dead, view)
    assert all(math.isfinite(v.item()) for v in (terms.losses["beer_loss"], *terms.stats.values()))
    with pytest.raises(RlregError, match="beer.beta"):
        BEER(beta=-1.0)
    with pytest.raises(RlregError, match="beer.srank_every must be a non-negative integer"):
        BEER(srank_every=-5)
    with pytest.raises(RlregError, match="beer.probe_size must be a positive integer"):
        BEER(probe_size=0)
    with pytest.raises(RlregError, match=r"beer.srank_delta must be in \(0, 1\)"):
        BEER(srank_delta=1.5)
    with pytest.raises(RlregError, match="beer.parity must be true or false"):
        BEER(parity="yes")
    with pytest.raises(RlregError, match="beer.next_features must be 'online' or 'target'"):
        BEER(next_features="both")
    with pytest.raises(RlregError, match="unknown setting"):
        BEER(gamma=0.9)
    no_features = CriticContext(ctx.q, ctx.target)
    with pytest.raises(RlregError, match="needs the critic's penultimate features"):
        BEER().critic_terms(batch, no_features, view)


def test_srank_of_a_known_spectrum():
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(50, 8, generator=g))
    v, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    sigma = torch.tensor([4.0, 3.0, 2.0, 1.0, 0, 0, 0, 0])  # cumulative shares .4 .7 .9 1.0
    m = u @ torch.diag(sigma) @ v.T
    assert srank(m, 0.01).item() == 4
    assert srank(m, 0.15).item() == 3  # .9 ≥ .85
    assert srank(m, 0.35).item() == 2  # .7 ≥ .65
    assert srank(torch.stack([m, m[:, :4] @ torch.eye(4, 8)]), 0.01).item() <= 4  # min over heads
    assert srank(torch.zeros(5, 3)).item() == 0


def test_srank_is_logged_on_the_fixed_probe_batch_every_n_updates():
    batch, ctx, view, _ = fixed()
    reg = BEER(srank_every=2, probe_size=4)
    reg.critic_terms(batch, ctx, view)
    assert reg.probe[0].shape == (4, 3)
    seen = []
    view.features = lambda obs, act: seen.append(obs.shape) or torch.eye(4, 6)[None]
    view.step = 1
    assert reg.update_extras(batch, view) == {}
    view.step = 2
    assert reg.update_extras(batch, view)["srank"].item() == 4 and seen == [(4, 3)]
    state = reg.state_dict()
    other = BEER(srank_every=2, probe_size=4)
    other.load_state_dict(state)
    assert torch.equal(other.probe[0], reg.probe[0])


# ---------------------------------------------------------------------- agents
def test_ddpg_beer_gradients_reach_the_critics_feature_layers_only():
    from rlreg.agents.td3 import TD3Agent, TD3Config

    cfg = TD3Config(
        actor_hidden=(16, 16),
        critic_hidden=(16, 16),
        n_critics=1,
        policy_noise=0.0,
        policy_freq=1,
        batch_size=8,
    )
    low, high = -torch.ones(2), torch.ones(2)
    agent = TD3Agent(cfg, 3, 2, low, high, [BEER(beta=1.0, parity=True)], "cpu", seed=0)
    g = torch.Generator().manual_seed(1)
    batch = TensorBatch(
        torch.randn(8, 3, generator=g),
        torch.rand(8, 2, generator=g) * 2 - 1,
        torch.full((8,), 30.0),
        torch.randn(8, 3, generator=g),
        torch.zeros(8),
    )
    critic, actor, target = agent.critic, agent.actor, agent.critic_target
    phi = critic.forward_features(batch.observations, batch.actions)[1]
    with torch.no_grad():
        nxt = target.forward_features(batch.next_observations, agent.actor_target(batch.next_observations))[1]
    ctx = CriticContext(
        torch.zeros(1, 8),
        torch.zeros(8),
        phi,
        None,
        nxt,
        lambda: critic.forward_features(batch.next_observations, actor(batch.next_observations))[1],
    )
    loss = agent.regularizers[0].critic_terms(batch, ctx, agent.view).losses["beer_loss"]
    assert not target.net.flat.requires_grad and not agent.actor_target.net.flat.requires_grad  # frozen
    grads = torch.autograd.grad(loss, [critic.net.flat, actor.net.flat], allow_unused=True)
    gc = critic.net.views(grads[0])
    assert gc[0].abs().sum() > 0 and gc[2].abs().sum() > 0  # layers 1 and 2 (the features)
    assert gc[4].abs().sum() == 0 and gc[5].abs().sum() == 0  # the output layer: φ does not depend on it
    assert grads[1] is None or grads[1].abs().sum() == 0  # the actor: nothing


def test_ddpg_recipe_is_one_critic_no_smoothing_no_delay():
    from rlreg.agents.recipes import resolve_config

    for recipe in ("ddpg", "beer"):
        cfg = resolve_config(recipe, None, env="dmc:cheetah-run", device="cpu")
        a = cfg["agent_config"]
        assert (a["n_critics"], a["policy_noise"], a["policy_freq"], a["exploration_noise"]) == (
            1,
            0.0,
            1,
            0.1,
        )
        assert cfg["train"]["learning_starts"] == 25_000 and cfg["train"]["eval_every"] == 10_000
    assert (
        resolve_config("beer", None, env="dmc:cheetah-run", device="cpu")["regularizers"][0]["config"]["beta"]
        == 1e-3
    )


def test_beer_on_td3bc_offline_lowers_the_cosine_of_consecutive_features(pendulum_medium):
    """BEER plugs into TD3+BC offline (twin critics: a term per head). With a large β its effect is
    visible: consecutive representations are less similar than without it."""
    from rlreg.agents.sources import OfflineSampler
    from rlreg.agents.td3 import TD3Agent, TD3Config
    from rlreg.envs.datasets import load_dataset

    from rlreg.data.transitions import TransitionStore
    from rlreg.regularizers import BC
    from rlreg.regularizers.base import SetupSource

    store = TransitionStore.from_transitions(load_dataset(pendulum_medium, progress=False))
    box = 2 * torch.ones(1)

    def cos_after(regs: list) -> float:
        cfg = TD3Config(actor_hidden=(64, 64), critic_hidden=(64, 64), batch_size=64, alpha=2.5)
        agent = TD3Agent(cfg, 3, 1, -box, box, [BC(), *regs], "cpu", seed=0)
        sampler = OfflineSampler(store, cfg.batch_size, torch.device("cpu"), 0)
        agent.setup(SetupSource(3, 1, -box, box, store=store, total_steps=300))
        for _ in range(300):
            agent.update(sampler.sample())
        b = store.sample(512, torch.Generator().manual_seed(1))
        with torch.no_grad():
            phi = agent.critic.forward_features(b.observations, b.actions)[1]
            nxt_act = agent.actor_target(b.next_observations)
            nxt = agent.critic_target.forward_features(b.next_observations, nxt_act)[1]
        assert phi.shape[0] == 2  # twin critics
        return torch.nn.functional.cosine_similarity(phi, nxt, dim=-1).mean().item()

    plain = cos_after([])
    beer = cos_after([BEER(beta=10.0)])
    assert beer < plain - 0.01


def test_sb3_td3_with_beer_logs_the_terms_and_matches_the_regularizer_on_its_features():
    from rlreg.agents.sb3 import TD3
    from rlreg.agents.sb3.common import q_and_features

    model = TD3(
        "MlpPolicy",
        "Pendulum-v1",
        regularizers=[BEER(srank_every=100)],
        learning_starts=100,
        batch_size=32,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
    ).learn(300)
    logged = model.logger.name_to_value
    for key in ("beer_loss", "cos", "bound", "active", "srank"):
        assert math.isfinite(logged[f"train/beer/{key}"]), key
    data = model.replay_buffer.sample(16)
    qs, feats = q_and_features(model.critic, data.observations, data.actions)
    for q, ref in zip(qs, model.critic(data.observations, data.actions), strict=True):
        torch.testing.assert_close(q, ref)  # same values as SB3's own forward
    assert feats.shape == (2, 16, 32) and model._view.critic_output_weights().shape == (2, 32)
