"""TD3 / TD3+BC update: losses against independent computations, gradient flow, hooks, state."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from rlreg.agents.td3 import TD3Agent, TD3Config

from rlreg.data.transitions import TensorBatch
from rlreg.errors import RlregError
from rlreg.regularizers import BC, Regularizer, Terms

S, A = 5, 2


def make_agent(regs=(), seed=0, **cfg) -> TD3Agent:
    cfg.setdefault("actor_hidden", (32, 32))
    cfg.setdefault("critic_hidden", (32, 32))
    low, high = -np.ones(A, np.float32), np.ones(A, np.float32)
    return TD3Agent(TD3Config(**cfg), S, A, low, high, list(regs), seed=seed)


def q_heads(critic, obs, act):
    """Each head evaluated separately with plain matmuls on its exported nn.Linear-style weights."""
    outs = []
    for i in range(critic.n_heads):
        h = torch.cat([obs, act], 1)
        layers = critic.net.linear_weights(i)
        for k, (w, b) in enumerate(layers):
            h = h @ w.t() + b
            if k < len(layers) - 1:
                h = torch.relu(h)
        outs.append(h.reshape(-1))
    return torch.stack(outs)


def test_critic_loss_matches_td3_formula(make_batch):
    agent = make_agent(alpha=2.5, regs=[BC()])
    batch = make_batch(n=64, obs_dim=S, act_dim=A)
    before = copy.deepcopy(agent)
    gen = torch.Generator().manual_seed(0)
    gen.set_state(agent.gen.get_state())
    m = agent.update(batch)

    obs, act, rew, nobs, done = batch[:5]
    with torch.no_grad():
        eps = torch.randn(nobs.shape[0], A, generator=gen)
        eps = (eps * 0.2).clamp(-0.5, 0.5)
        next_a = (before.actor_target(nobs) + eps).clamp(-1, 1)
        tq = q_heads(before.critic_target, nobs, next_a).min(0).values
        y = rew + 0.99 * (1 - done) * tq
        q = q_heads(before.critic, obs, act)
        expected = sum(((q[i] - y) ** 2).mean() for i in range(2))
    assert m["train/critic_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert "train/actor_loss" not in m  # delayed: the actor updates on even steps only


def test_critic_gets_only_its_own_gradient(make_batch):
    # Same critic step with and without an actor step on the same batch: the actor loss must add
    # nothing to the critic's gradient (TD3 discards it; we never compute it).
    with_actor = make_agent(alpha=2.5, regs=[BC()], policy_freq=1, seed=4)
    without_actor = make_agent(alpha=2.5, regs=[BC()], policy_freq=1000, seed=4)
    batch = make_batch(n=32, obs_dim=S, act_dim=A)
    m = with_actor.update(batch)
    without_actor.update(batch)
    assert "train/actor_loss" in m
    for p, q in zip(with_actor.critic.parameters(), without_actor.critic.parameters()):
        assert torch.equal(p.grad, q.grad)
        assert torch.equal(p, q)


def test_td3bc_actor_loss_matches_formula_and_lambda_is_detached(make_batch):
    agent = make_agent(alpha=2.5, regs=[BC()], policy_freq=1)
    batch = make_batch(n=64, obs_dim=S, act_dim=A, seed=3)
    actor_before = copy.deepcopy(agent.actor)
    m = agent.update(batch)
    obs, act = batch.observations, batch.actions
    with torch.no_grad():
        pi = actor_before(obs)
        q1 = q_heads(agent.critic, obs, pi)[0]  # the just-updated critic, head 1
        lam = 2.5 / q1.abs().mean()
        expected = -lam * q1.mean() + ((pi - act) ** 2).mean()
    assert m["train/lambda"].item() == pytest.approx(lam.item(), rel=1e-5)
    assert m["train/actor_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert m["reg/bc/bc_loss"].item() == pytest.approx(((pi - act) ** 2).mean().item(), rel=1e-5)
    assert not m["train/lambda"].requires_grad


def test_lambda_is_invariant_to_reward_scale_direction(make_batch):
    # λ·Q is scale-free: scaling Q by c scales λ by 1/c (TD3+BC's motivation)
    q = torch.randn(100)
    lam = 2.5 / q.abs().mean()
    lam_c = 2.5 / (10 * q).abs().mean()
    assert (lam * q.mean()).item() == pytest.approx((lam_c * 10 * q.mean()).item(), rel=1e-5)


def test_actor_gradient_matches_autograd_reference(make_batch):
    agent = make_agent(alpha=2.5, regs=[BC()], policy_freq=1, actor_lr=1e-3)
    batch = make_batch(n=16, obs_dim=S, act_dim=A, seed=5)
    ref_actor = copy.deepcopy(agent.actor)
    agent.update(batch)
    pi = ref_actor(batch.observations)
    q1 = agent.critic.q1(batch.observations, pi)
    loss = -(2.5 / q1.abs().mean().detach()) * q1.mean() + ((pi - batch.actions) ** 2).mean()
    grads = torch.autograd.grad(loss, list(ref_actor.parameters()))
    for g_ref, p in zip(grads, agent.actor.parameters()):
        torch.testing.assert_close(p.grad, g_ref, rtol=1e-5, atol=1e-7)


def test_targets_follow_polyak_only_on_actor_steps(make_batch):
    agent = make_agent(policy_freq=2, tau=0.1)
    batch = make_batch(n=16, obs_dim=S, act_dim=A)
    t0 = [p.clone() for p in agent.critic_target.parameters()]
    agent.update(batch)
    for p, q in zip(agent.critic_target.parameters(), t0):
        assert torch.equal(p, q)
    agent.update(batch)
    for p, q, o in zip(agent.critic_target.parameters(), t0, agent.critic.parameters()):
        torch.testing.assert_close(p, 0.9 * q + 0.1 * o.detach())


def test_same_seed_gives_identical_updates(make_batch):
    batches = [make_batch(n=32, obs_dim=S, act_dim=A, seed=i) for i in range(6)]
    runs = []
    for _ in range(2):
        agent = make_agent(alpha=2.5, regs=[BC()], seed=7)
        runs.append([agent.update(b) for b in batches])
    for m1, m2 in zip(*runs):
        assert m1.keys() == m2.keys()
        for k in m1:
            assert torch.equal(m1[k], m2[k]), k


def test_save_load_then_training_continues_identically(make_batch):
    batches = [make_batch(n=32, obs_dim=S, act_dim=A, seed=i) for i in range(8)]
    a = make_agent(alpha=2.5, regs=[BC()], seed=1)
    for b in batches[:3]:
        a.update(b)
    state = copy.deepcopy(a.state_dict())
    b_agent = make_agent(alpha=2.5, regs=[BC()], seed=99)  # different init, overwritten by load
    b_agent.load_state_dict(state)
    obs = batches[0].observations
    assert torch.equal(a.policy(obs), b_agent.policy(obs))
    assert b_agent.actor_opt.step_t.item() == 1  # optimizer state restored (3 updates, actor every 2nd)
    assert torch.equal(b_agent.critic_opt.exp_avg_sq, a.critic_opt.exp_avg_sq)
    for b in batches[3:]:
        ma, mb = a.update(b), b_agent.update(b)
        for k in ma:
            assert torch.equal(ma[k], mb[k]), k
    for p, q in zip(a.actor.parameters(), b_agent.actor.parameters()):
        assert torch.equal(p, q)


def test_load_mismatched_state_is_a_clear_error():
    a = make_agent(actor_hidden=(16,))
    b = make_agent(actor_hidden=(32,))
    with pytest.raises(RlregError, match="does not match"):
        b.load_state_dict(a.state_dict())
    c = make_agent(regs=[BC()])
    with pytest.raises(RlregError, match="regularizer"):
        c.load_state_dict(a.state_dict())


class Recorder(Regularizer):
    """Records hook calls; contributes a constant critic term and an actor term."""

    name = "recorder"

    def __init__(self, log, **kw):
        super().__init__(**kw)
        self.log = log

    def critic_target(self, batch, target, view):
        self.log.append("critic_target")
        assert not torch.is_grad_enabled()
        return target

    def td_weights(self, batch, view):
        self.log.append("td_weights")
        return None

    def critic_terms(self, batch, ctx, view):
        self.log.append("critic_terms")
        assert ctx.q.shape == (2, batch.observations.shape[0])
        return Terms(losses={"c": ctx.q.sum() * 0.0 + 1.0})

    def update_extras(self, batch, view):
        self.log.append("update_extras")
        return {"extra": torch.tensor(3.0)}

    def actor_terms(self, batch, policy_action, view):
        self.log.append(f"actor_terms@{view.step}")
        return Terms(losses={"a": policy_action.sum() * 0.0 + 2.0}, stats={"s": torch.tensor(4.0)})


def test_hooks_run_in_documented_order_and_terms_are_summed_and_logged(make_batch):
    log: list[str] = []
    agent = make_agent(alpha=2.5, regs=[BC(), Recorder(log)], policy_freq=2)
    batch = make_batch(n=16, obs_dim=S, act_dim=A)
    m1 = agent.update(batch)
    m2 = agent.update(batch)
    assert log == ["critic_target", "td_weights", "critic_terms", "update_extras"] * 1 + [
        "critic_target",
        "td_weights",
        "critic_terms",
        "update_extras",
        "actor_terms@2",
    ]
    assert m1["reg/recorder/c"].item() == 1.0 and m1["reg/recorder/extra"].item() == 3.0
    # stacked: the actor loss is the Q part + bc + recorder's constant 2
    expected = m2["train/actor_q_loss"] + m2["reg/bc/bc_loss"] + 2.0
    assert m2["train/actor_loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert m2["reg/recorder/s"].item() == 4.0


def test_td_weights_weight_the_squared_errors(make_batch):
    class Half(Regularizer):
        name = "half"

        def td_weights(self, batch, view):
            return torch.full((batch.observations.shape[0],), 0.5)

    batch = make_batch(n=16, obs_dim=S, act_dim=A)
    a, b = make_agent(seed=3), make_agent(regs=[Half()], seed=3)
    assert b.update(batch)["train/critic_loss"].item() == pytest.approx(
        0.5 * a.update(batch)["train/critic_loss"].item(), rel=1e-6
    )


def test_regularizer_family_and_duplicates_fail_at_construction():
    class Discrete(Regularizer):
        name = "discrete_only"
        families = frozenset({"dqn"})

    with pytest.raises(RlregError, match="does not fit"):
        make_agent(regs=[Discrete()])
    with pytest.raises(RlregError, match="given twice"):
        make_agent(regs=[BC(), BC()])


def test_asymmetric_action_box_is_respected(make_batch):
    low, high = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
    agent = TD3Agent(TD3Config(actor_hidden=(16,), critic_hidden=(16,)), S, A, low, high)
    obs = torch.randn(500, S) * 10
    a = agent.policy(obs)
    assert torch.all(a >= torch.tensor(low)) and torch.all(a <= torch.tensor(high))
    acts = agent.act(obs, "explore").numpy()
    assert np.all(acts >= low) and np.all(acts <= high)


@pytest.mark.parametrize(
    "field,value",
    [
        ("gamma", 1.5),
        ("tau", 0.0),
        ("batch_size", 0),
        ("policy_freq", 0),
        ("alpha", -1.0),
        ("policy_noise", -0.1),
        ("actor_hidden", ()),
    ],
)
def test_bad_hyper_parameters_are_rejected(field, value):
    with pytest.raises(RlregError, match=field):
        make_agent(**{field: value})


def test_joined_is_a_view_only_for_adjacent_columns():
    from rlreg.agents.td3 import _joined

    rows = torch.randn(4, 7)
    obs, act, rest = torch.split(rows, (3, 2, 2), dim=1)
    j = _joined(obs, act)
    assert torch.equal(j, torch.cat([obs, act], 1)) and j.data_ptr() == rows.data_ptr()
    j2 = _joined(obs, rest)  # not adjacent: a real concatenation
    assert torch.equal(j2, torch.cat([obs, rest], 1)) and j2.data_ptr() != rows.data_ptr()
    a, b = torch.randn(4, 3), torch.randn(4, 2)
    assert torch.equal(_joined(a, b), torch.cat([a, b], 1))


def test_general_autograd_path_equals_the_fused_fast_path():
    """The hand-written gradients (fused engine) and plain autograd give the same updates: the fast
    path is taken only where it is the same computation."""
    from rlreg.regularizers import BC

    box = torch.ones(2)
    cfg = TD3Config(actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32, alpha=2.5)
    fast = TD3Agent(cfg, 5, 2, -box, box, [BC()], seed=0)
    general = TD3Agent(cfg, 5, 2, -box, box, [BC()], seed=0)
    general._fused, general._autograd_critic = False, True
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        obs, act = torch.randn(32, 5, generator=gen), torch.rand(32, 2, generator=gen) * 2 - 1
        batch = TensorBatch(obs, act, torch.randn(32, generator=gen), obs + 0.1, torch.zeros(32))
        m_fast, m_general = fast.update(batch), general.update(batch)
        for k in m_fast:
            torch.testing.assert_close(m_fast[k], m_general[k], rtol=1e-4, atol=1e-5)
    for a, b in ((fast.actor, general.actor), (fast.critic, general.critic)):
        torch.testing.assert_close(a.net.flat, b.net.flat, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("activation", "layer_norm"), [("tanh", False), ("relu", True), ("elu", True)])
def test_other_activations_and_layer_norm_train_on_the_general_path(activation, layer_norm):
    from rlreg.regularizers import BC

    box = torch.ones(2)
    cfg = TD3Config(
        actor_hidden=(16,),
        critic_hidden=(16,),
        batch_size=32,
        alpha=2.5,
        activation=activation,
        layer_norm=layer_norm,
    )
    agent = TD3Agent(cfg, 5, 2, -box, box, [BC()], seed=0)
    assert not agent._fused
    before = agent.actor.net.flat.detach().clone()
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        obs = torch.randn(32, 5, generator=gen)
        batch = TensorBatch(
            obs, torch.rand(32, 2, generator=gen) * 2 - 1, torch.randn(32), obs, torch.zeros(32)
        )
        metrics = agent.update(batch)
    assert all(torch.isfinite(v) for v in metrics.values()) and "reg/bc/bc_loss" in metrics
    assert not torch.equal(before, agent.actor.net.flat)
    with pytest.raises(RlregError, match="td3.activation must be one of"):
        TD3Config(activation="sigmoidish").validate()
