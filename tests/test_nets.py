"""The MLP engine against nn.Linear / nn.Sequential references: outputs, every gradient, features,
members, other activations and LayerNorm, double backward, torch.func, stacking K copies, nn.Linear
export; FlatAdam against torch.optim.Adam (with LR schedulers, state dicts)."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from rlreg.errors import RlregError
from rlreg.nets import MLP, ActionBox, Actor, Critic, FlatAdam, mlp_backward, mlp_forward

ACT_MODULES = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "mish": nn.Mish,
}
TIGHT = {"rtol": 1e-5, "atol": 1e-6}


def reference(mlp: MLP, member: int = 0) -> nn.Sequential:
    """The plain ReLU layer stack of one member, from ``linear_weights``."""
    layers: list[nn.Module] = []
    for k, (w, b) in enumerate(mlp.linear_weights(member)):
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers.append(lin)
        if k < mlp.n_layers - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def seq_reference(mlp: MLP, member: int = 0) -> nn.Sequential:
    """An ``nn.Sequential`` built here (Linear, [LayerNorm,] activation, ...) holding one member's
    weights through ``linear_state_dict`` (strict load: keys and shapes must match)."""
    sizes = (mlp.in_dim, *mlp.hidden, mlp.out_dim)
    layers: list[nn.Module] = []
    for k in range(mlp.n_layers):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < mlp.n_layers - 1:
            if mlp.layer_norm:
                layers.append(nn.LayerNorm(sizes[k + 1]))
            layers.append(ACT_MODULES[mlp.activation]())
    seq = nn.Sequential(*layers)
    seq.load_state_dict(mlp.linear_state_dict(member))
    return seq


def ref_grads(ref: nn.Sequential, mlp: MLP, member: int) -> torch.Tensor:
    """The reference's parameter gradients laid out like ``mlp.flat`` for one member."""
    g = torch.zeros_like(mlp.flat)
    views = mlp.views(g)
    lins = [m for m in ref if isinstance(m, nn.Linear)]
    for k, lin in enumerate(lins):
        w, b = views[2 * k], views[2 * k + 1]
        if mlp.ensemble > 1:
            w, b = w[member], b[member]
        w.copy_(lin.weight.grad if k == len(lins) - 1 else lin.weight.grad.t())
        b.copy_(lin.bias.grad.reshape(b.shape))
    return g


def as_flat(mlp: MLP, per_member: dict[int, dict[str, torch.Tensor]]) -> torch.Tensor:
    """Tensors in ``nn.Sequential`` layout (per member) as one tensor laid out like ``mlp.flat``."""
    m = copy.deepcopy(mlp)
    with torch.no_grad():
        m.flat.zero_()
    for i, sd in per_member.items():
        m.load_linear_state_dict(sd, i)
    return m.flat.detach().clone()


def grads_of(ref: nn.Module) -> dict[str, torch.Tensor]:
    """The parameter gradients of a reference module by state-dict key (zeros where unused)."""
    return {k: torch.zeros_like(p) if p.grad is None else p.grad for k, p in ref.named_parameters()}


def split_flat(mlp: MLP, t: torch.Tensor, k: int) -> list[torch.Tensor]:
    """A tensor laid out like a stacked ``mlp.flat`` (a gradient) split into the k copies' layouts."""
    m = copy.deepcopy(mlp)
    with torch.no_grad():
        m.flat.copy_(t)
    return [p.flat.detach() for p in m.unstack(k)]


def randomize(mlp: MLP, seed: int) -> MLP:
    """Every entry random (LayerNorm's γ, β too: their defaults 1, 0 would hide layout mistakes)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mlp.flat.copy_(torch.randn(mlp.flat.shape, generator=g) * 0.3)
    return mlp


# ---------------------------------------------------------------------- fused ReLU engine
@pytest.mark.parametrize(
    "ensemble,out_dim,hidden",
    [(1, 3, (16, 16)), (2, 1, (16, 16)), (3, 4, (8, 12, 8)), (1, 1, (10,)), (2, 2, ())],
)
@pytest.mark.parametrize("input_3d", [False, True])
def test_forward_and_all_gradients_match_reference(ensemble, out_dim, hidden, input_3d):
    if input_3d and ensemble == 1:
        pytest.skip("3-D input is for ensembles")
    torch.manual_seed(0)
    mlp = MLP(5, hidden, out_dim, ensemble)
    assert mlp.fused
    x = torch.randn(ensemble, 7, 5) if input_3d else torch.randn(7, 5)
    x.requires_grad_(True)
    y = mlp(x)
    assert y.shape == ((ensemble, 7, out_dim) if ensemble > 1 else (7, out_dim))
    gy = torch.randn_like(y)
    gx, gflat = torch.autograd.grad(y, [x, mlp.flat], gy)
    want_gx = torch.zeros_like(x)
    want_gflat = torch.zeros_like(mlp.flat)
    for i in range(ensemble):
        ref = reference(mlp, i)
        xi = (x[i] if input_3d else x).detach().clone().requires_grad_(True)
        yi = ref(xi)
        torch.testing.assert_close(y[i] if ensemble > 1 else y, yi, **TIGHT)
        yi.backward(gy[i] if ensemble > 1 else gy)
        want_gflat += ref_grads(ref, mlp, i)
        if input_3d:
            want_gx[i] = xi.grad
        else:
            want_gx += xi.grad
    torch.testing.assert_close(gflat, want_gflat, **TIGHT)
    torch.testing.assert_close(gx, want_gx, **TIGHT)


def test_features_carry_gradient_without_second_pass():
    torch.manual_seed(1)
    mlp = MLP(4, (8, 6), 1, ensemble=2)
    x = torch.randn(5, 4)
    y, feat = mlp.forward_features(x)
    assert feat.shape == (2, 5, 6)
    loss = y.square().sum() + 0.3 * feat.pow(3).sum()
    (g,) = torch.autograd.grad(loss, [mlp.flat])
    want = torch.zeros_like(mlp.flat)
    for i in range(2):
        ref = reference(mlp, i)
        f = ref[:-1](x)
        (ref[-1](f).square().sum() + 0.3 * f.pow(3).sum()).backward()
        want += ref_grads(ref, mlp, i)
    torch.testing.assert_close(g, want, **TIGHT)
    # only features used: still correct
    _, feat = mlp.forward_features(x)
    (g2,) = torch.autograd.grad(feat.sum(), [mlp.flat])
    assert torch.count_nonzero(g2) > 0


def test_frozen_forward_gives_input_gradient_only():
    torch.manual_seed(3)
    mlp = MLP(4, (16, 16), 3)
    x = torch.randn(5, 4, requires_grad=True)
    y = mlp.forward_frozen(x)
    torch.testing.assert_close(y, mlp(x))
    y.square().sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    reference(mlp)(x2).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, **TIGHT)
    assert mlp.flat.grad is None  # the weights are constants: no gradient reaches them


def test_default_init_bounds():
    mlp = MLP(100, (50,), 1)
    w0, b0, w1, _ = mlp.views(mlp.flat.detach())
    assert w0.abs().max() <= 0.1 and b0.abs().max() <= 0.1 and w1.abs().max() <= 1 / 50**0.5


def test_linear_weights_round_trip():
    mlp = MLP(3, (4,), 2, ensemble=2)
    other = MLP(3, (4,), 2, ensemble=2)
    for i in range(2):
        other.load_linear_weights(mlp.linear_weights(i), i)
    assert torch.equal(mlp.flat, other.flat)


# ---------------------------------------------------------------------- Critic.q1 / q1_frozen
def test_q1_is_the_differentiable_head_one():
    torch.manual_seed(2)
    critic = Critic(3, 2, (8, 8), n_heads=2)
    obs = torch.randn(6, 3, requires_grad=True)
    act = torch.randn(6, 2, requires_grad=True)
    q1 = critic.q1(obs, act)
    assert q1.shape == (6,)
    torch.testing.assert_close(q1, critic(obs, act)[0])
    g_obs, g_act, g_w = torch.autograd.grad(q1.square().sum(), [obs, act, critic.net.flat])
    ref = reference(critic.net, 0)
    o2, a2 = obs.detach().clone().requires_grad_(True), act.detach().clone().requires_grad_(True)
    ref(torch.cat([o2, a2], 1)).square().sum().backward()
    torch.testing.assert_close(g_obs, o2.grad, **TIGHT)
    torch.testing.assert_close(g_act, a2.grad, **TIGHT)
    torch.testing.assert_close(g_w, ref_grads(ref, critic.net, 0), **TIGHT)  # head 2's slice: zeros
    assert all(torch.count_nonzero(v[1]) == 0 for v in critic.net.views(g_w))
    # a single-head critic: q1 is the whole critic
    single = Critic(3, 2, (8,), n_heads=1)
    (g1,) = torch.autograd.grad(single.q1(obs, act).sum(), [single.net.flat])
    (g2,) = torch.autograd.grad(single(obs, act).sum(), [single.net.flat])
    torch.testing.assert_close(g1, g2)


def test_q1_frozen_treats_weights_as_constants():
    torch.manual_seed(2)
    critic = Critic(3, 2, (8, 8), n_heads=2)
    obs, act = torch.randn(6, 3), torch.randn(6, 2, requires_grad=True)
    q1 = critic.q1_frozen(obs, act)
    torch.testing.assert_close(q1, critic(obs, act)[0])
    q1.sum().backward()
    ref = reference(critic.net, 0)
    a2 = act.detach().clone().requires_grad_(True)
    ref(torch.cat([obs, a2], 1)).sum().backward()
    torch.testing.assert_close(act.grad, a2.grad, **TIGHT)
    assert critic.net.flat.grad is None
    single = Critic(3, 2, (8,), n_heads=1)
    assert torch.autograd.grad(single.q1_frozen(obs, act).sum(), [single.net.flat], allow_unused=True) == (
        None,
    )


def test_member_backward_with_weight_gradient():
    """mlp_backward(member=i, need_w=True): member i's slice of the gradient, zeros elsewhere."""
    torch.manual_seed(4)
    mlp = MLP(5, (16, 16), 2, ensemble=3)
    x = torch.randn(9, 5)
    y, hs = mlp_forward(mlp, x, member=1)
    gy = torch.randn_like(y)
    gx, gw = mlp_backward(mlp, x, hs, gy, need_x=True, need_w=True, member=1)
    yf, hsf = mlp_forward(mlp, x)
    gyf = torch.zeros_like(yf)
    gyf[1] = gy
    gxf, gwf = mlp_backward(mlp, x, hsf, gyf, need_x=True)
    torch.testing.assert_close(y, yf[1])
    torch.testing.assert_close(gw, gwf, **TIGHT)
    torch.testing.assert_close(gx, gxf, **TIGHT)


# ---------------------------------------------------------------------- activations, LayerNorm
@pytest.mark.parametrize("activation", list(ACT_MODULES))
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("ensemble", [1, 2])
def test_activations_and_layer_norm_match_sequential(activation, layer_norm, ensemble):
    torch.manual_seed(5)
    mlp = randomize(MLP(5, (12, 10), 3, ensemble, activation=activation, layer_norm=layer_norm), 5)
    assert mlp.fused == (activation == "relu" and not layer_norm)
    x = torch.randn(7, 5, requires_grad=True)
    y, feat = mlp.forward_features(x)
    gy, gf = torch.randn_like(y), torch.randn_like(feat)
    gx, gflat = torch.autograd.grad([y, feat], [x, mlp.flat], [gy, gf])
    want_gx, per_member = torch.zeros_like(x), {}
    for i in range(ensemble):
        ref = seq_reference(mlp, i)
        xi = x.detach().clone().requires_grad_(True)
        fi = ref[:-1](xi)
        yi = ref[-1](fi)
        torch.testing.assert_close(y[i] if ensemble > 1 else y, yi, **TIGHT)
        torch.testing.assert_close(feat[i] if ensemble > 1 else feat, fi, **TIGHT)
        torch.autograd.backward([yi, fi], [gy[i] if ensemble > 1 else gy, gf[i] if ensemble > 1 else gf])
        want_gx += xi.grad
        per_member[i] = grads_of(ref)
    torch.testing.assert_close(gx, want_gx, **TIGHT)
    torch.testing.assert_close(gflat, as_flat(mlp, per_member), **TIGHT)
    # the constant-weights variant: the same input gradient, none for the weights
    (gx2,) = torch.autograd.grad((mlp.forward_frozen(x) * gy).sum(), [x])
    (gx3,) = torch.autograd.grad((mlp(x) * gy).sum(), [x])
    torch.testing.assert_close(gx2, gx3)


def test_non_fused_actor_and_critic_pass_options():
    actor = Actor(4, 2, (8,), -torch.ones(2), torch.ones(2), activation="tanh", layer_norm=True)
    critic = Critic(4, 2, (8,), activation="gelu", layer_norm=True)
    assert (actor.net.activation, actor.net.layer_norm, actor.net.fused) == ("tanh", True, False)
    assert (critic.net.activation, critic.net.layer_norm, critic.net.fused) == ("gelu", True, False)
    obs, act = torch.randn(5, 4), torch.randn(5, 2)
    a = actor(obs)
    assert a.shape == (5, 2) and a.abs().max() <= 1
    q = critic(obs, act)
    assert q.shape == (2, 5)
    torch.testing.assert_close(critic.q1(obs, act), q[0])
    torch.testing.assert_close(critic.q1_frozen(obs, act), q[0])
    (g,) = torch.autograd.grad(critic.q1(obs, act).sum(), [critic.net.flat])
    assert all(torch.count_nonzero(v[1]) == 0 for v in critic.net.views(g))
    assert not critic.q1_frozen(obs, act).requires_grad


def test_unknown_activation_and_engine_misuse_are_clear_errors():
    with pytest.raises(RlregError, match="unknown activation 'swish'") as e:
        MLP(3, (4,), 1, activation="swish")
    assert "relu" in str(e.value) and "leaky_relu" in str(e.value)
    mlp = MLP(3, (4,), 1, activation="tanh")
    with pytest.raises(RlregError, match="autograd path"):
        mlp_forward(mlp, torch.randn(2, 3))
    with pytest.raises(RlregError, match="fused engine"):
        mlp_backward(mlp, torch.randn(2, 3), [], torch.randn(2, 1))
    with pytest.raises(RlregError, match="member 2 is out of range"):
        MLP(3, (4,), 1, ensemble=2).linear_state_dict(2)


# ---------------------------------------------------------------------- double backward
@pytest.mark.parametrize("activation,layer_norm", [("relu", False), ("tanh", True)])
def test_gradient_penalty_double_backward_matches_sequential(activation, layer_norm):
    """||dQ/da||² (summed over heads) differentiated w.r.t. the weights, as WGAN-GP-style penalties."""
    torch.manual_seed(6)
    critic = Critic(4, 3, (16, 16), n_heads=2, activation=activation, layer_norm=layer_norm)
    obs, act = torch.randn(8, 4), torch.randn(8, 3, requires_grad=True)
    (ga,) = torch.autograd.grad(critic(obs, act).sum(), [act], create_graph=True)
    (gw,) = torch.autograd.grad(ga.square().sum(), [critic.net.flat])
    refs = [seq_reference(critic.net, i) for i in range(2)]
    a2 = act.detach().clone().requires_grad_(True)
    x2 = torch.cat([obs, a2], 1)
    (ga2,) = torch.autograd.grad(sum(r(x2).sum() for r in refs), [a2], create_graph=True)
    ga2.square().sum().backward()
    torch.testing.assert_close(ga, ga2, **TIGHT)
    want = as_flat(critic.net, {i: grads_of(r) for i, r in enumerate(refs)})
    torch.testing.assert_close(gw, want, rtol=1e-5, atol=1e-5)
    # head 1 alone (differentiable q1: the member path), input gradient penalty w.r.t. weights
    (ga,) = torch.autograd.grad(critic.q1(obs, act).sum(), [act], create_graph=True)
    (gw,) = torch.autograd.grad(ga.square().sum(), [critic.net.flat])
    for p in refs[0].parameters():
        p.grad = None
    (ga2,) = torch.autograd.grad(refs[0](x2).sum(), [a2], create_graph=True)
    ga2.square().sum().backward()
    torch.testing.assert_close(gw, as_flat(critic.net, {0: grads_of(refs[0])}))


def test_double_backward_through_inputs():
    """Second derivative w.r.t. the input (Hessian-vector product) of a fused smooth-in-weights loss."""
    torch.manual_seed(7)
    mlp = MLP(3, (8,), 2)
    x = torch.randn(4, 3, requires_grad=True)
    (gx,) = torch.autograd.grad(mlp(x).square().sum(), [x], create_graph=True)
    (hx,) = torch.autograd.grad(gx.sum(), [x])
    ref = reference(mlp)
    x2 = x.detach().clone().requires_grad_(True)
    (gx2,) = torch.autograd.grad(ref(x2).square().sum(), [x2], create_graph=True)
    (hx2,) = torch.autograd.grad(gx2.sum(), [x2])
    torch.testing.assert_close(hx, hx2, **TIGHT)


# ---------------------------------------------------------------------- torch.func
def test_torch_func_vmap_and_grad_run_the_plain_path():
    torch.manual_seed(8)
    mlp = MLP(5, (16,), 2, ensemble=2)
    xs = torch.randn(3, 7, 5)
    out = torch.func.vmap(mlp)(xs)
    torch.testing.assert_close(out, torch.stack([mlp(x) for x in xs]), **TIGHT)

    def loss(flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(mlp, {"flat": flat}, (x,)).square().sum()

    g = torch.func.grad(loss)(mlp.flat.detach(), xs[0])
    torch.testing.assert_close(g, torch.autograd.grad(loss(mlp.flat, xs[0]), [mlp.flat])[0], **TIGHT)
    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(mlp.flat.detach(), xs)
    assert per_sample.shape == (3, mlp.flat.numel())
    with pytest.raises(RlregError, match="torch.func transform"):
        torch.func.vmap(lambda x: mlp_forward(mlp, x)[0])(xs)


# ---------------------------------------------------------------------- stacking K copies
def test_mlp_stack_unstack_round_trip():
    torch.manual_seed(9)
    parts = [MLP(4, (6,), 2, ensemble=2, activation="silu", layer_norm=True) for _ in range(3)]
    stacked = MLP.stack(parts)
    assert stacked.ensemble == 6 and not stacked.fused
    x = torch.randn(5, 4)
    y = stacked(x)
    for k, p in enumerate(parts):
        torch.testing.assert_close(y[2 * k : 2 * k + 2], p(x), **TIGHT)
    for a, b in zip(MLP.unstack(stacked, 3), parts):
        assert torch.equal(a.flat, b.flat) and a.ensemble == 2
    single = [MLP(4, (6,), 2) for _ in range(2)]
    assert torch.equal(
        MLP.stack(single).linear_state_dict(1)["2.weight"], single[1].linear_state_dict()["2.weight"]
    )
    with pytest.raises(RlregError, match="cannot stack MLPs of different shapes"):
        MLP.stack([MLP(4, (6,), 2), MLP(4, (7,), 2)])
    with pytest.raises(RlregError, match="cannot split"):
        stacked.unstack(4)


def test_stacked_td3_actors_and_critics_match_separate_copies():
    """K = 3 separately built TD3-size actors and twin critics, stacked on the member dimension:
    every copy's outputs and gradients (weights and inputs, loss summed over copies) are the
    separate copy's."""
    K, B, O, A = 3, 32, 11, 3
    torch.manual_seed(10)
    low, high = -torch.ones(A), torch.ones(A)
    actors = [Actor(O, A, (256, 256), low, high) for _ in range(K)]
    critics = [Critic(O, A, (256, 256), n_heads=2) for _ in range(K)]
    s_actor, s_critic = Actor.stack(actors), Critic.stack(critics)
    assert (s_actor.copies, s_critic.copies, s_critic.net.ensemble) == (K, K, 2 * K)
    obs = torch.randn(K, B, O, requires_grad=True)
    act = torch.randn(K, B, A, requires_grad=True)

    # actor: (K, B, O) -> (K, B, A); critic: (K, B, O), (K, B, A) -> (K, H, B)
    pi = s_actor(obs)
    q = s_critic(obs, act)
    assert pi.shape == (K, B, A) and q.shape == (K, 2, B)
    loss = pi.square().sum() + (q.square() * torch.arange(1.0, 3.0).reshape(1, 2, 1)).sum()
    g_obs, g_act, g_actor, g_critic = torch.autograd.grad(
        loss, [obs, act, s_actor.net.flat, s_critic.net.flat]
    )
    ga_parts = split_flat(s_actor.net, g_actor, K)
    gc_parts = split_flat(s_critic.net, g_critic, K)
    for k in range(K):
        o, a = obs[k].detach().requires_grad_(True), act[k].detach().requires_grad_(True)
        pi_k, q_k = actors[k](o), critics[k](o, a)
        torch.testing.assert_close(pi[k], pi_k, **TIGHT)
        torch.testing.assert_close(q[k], q_k, **TIGHT)
        loss_k = pi_k.square().sum() + (q_k.square() * torch.arange(1.0, 3.0).reshape(2, 1)).sum()
        want = torch.autograd.grad(loss_k, [o, a, actors[k].net.flat, critics[k].net.flat])
        torch.testing.assert_close(g_obs[k], want[0], **TIGHT)
        torch.testing.assert_close(g_act[k], want[1], **TIGHT)
        torch.testing.assert_close(ga_parts[k], want[2], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gc_parts[k], want[3], rtol=1e-5, atol=1e-5)

    # head 1 of every copy, features, the frozen variant, a shared observation batch
    o0, a0 = obs.detach(), act.detach()
    q1 = s_critic.q1(o0, a0)
    assert q1.shape == (K, B)
    qf, feat = s_critic.forward_features(o0, a0)
    assert feat.shape == (K, 2, B, 256)
    for k in range(K):
        torch.testing.assert_close(q1[k], critics[k].q1(o0[k], a0[k]), **TIGHT)
        torch.testing.assert_close(feat[k], critics[k].forward_features(o0[k], a0[k])[1], **TIGHT)
    torch.testing.assert_close(s_critic.q1_frozen(o0, a0), q1)
    shared = s_actor(o0[0])
    for k in range(K):
        torch.testing.assert_close(shared[k], actors[k](o0[0]), **TIGHT)
    # unstack gives the copies back
    for a, b in zip(s_actor.unstack(), actors):
        assert torch.equal(a.net.flat, b.net.flat)
    for a, b in zip(s_critic.unstack(), critics):
        assert torch.equal(a.net.flat, b.net.flat) and a.n_heads == 2


def test_stack_keeps_per_copy_boxes_and_single_copies():
    torch.manual_seed(11)
    a1 = Actor(4, 2, (8,), torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 4.0]))
    a2 = Actor(4, 2, (8,), torch.tensor([-2.0, -2.0]), torch.tensor([0.0, 2.0]))
    s = Actor.stack([a1, a2])
    obs = torch.randn(2, 5, 4)
    out = s(obs)
    torch.testing.assert_close(out[0], a1(obs[0]), **TIGHT)
    torch.testing.assert_close(out[1], a2(obs[1]), **TIGHT)
    back = s.unstack()
    torch.testing.assert_close(back[1].act_mid, a2.act_mid)
    one = Actor.stack([a1])
    assert one(obs[:1]).shape == (1, 5, 2)
    c = Critic(4, 2, (8,), n_heads=1)
    sc = Critic.stack([c])
    act = torch.randn(1, 5, 2)
    torch.testing.assert_close(sc(obs[:1], act), c(obs[0], act[0]).unsqueeze(0))


# ---------------------------------------------------------------------- nn.Linear export
def test_actor_state_dict_loads_into_a_plain_sequential():
    torch.manual_seed(12)
    low, high = torch.tensor([-1.0, 0.0, -3.0]), torch.tensor([1.0, 2.0, 1.0])
    actor = Actor(11, 3, (64, 64), low, high)
    plain = nn.Sequential(nn.Linear(11, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    plain.load_state_dict(actor.sequential_state_dict())  # strict: same keys, same shapes
    obs = torch.randn(20, 11)
    mid, half = (high + low) / 2, (high - low) / 2
    torch.testing.assert_close(mid + half * torch.tanh(plain(obs)), actor(obs), **TIGHT)
    seq = actor.to_sequential()
    assert isinstance(seq[-2], nn.Tanh) and isinstance(seq[-1], ActionBox)
    torch.testing.assert_close(seq(obs), actor(obs), **TIGHT)
    unit = Actor(11, 3, (64, 64), -torch.ones(3), torch.ones(3))
    assert isinstance(unit.to_sequential()[-1], nn.Tanh)
    # import: nn.Sequential weights -> a fresh actor gives the Sequential's actions; round trip exact
    fresh = Actor(11, 3, (64, 64), low, high)
    fresh.load_sequential_state_dict(plain.state_dict())
    assert torch.equal(fresh.net.flat, actor.net.flat)
    fresh.load_sequential_state_dict(seq.state_dict())  # Tanh/ActionBox entries are ignored
    assert torch.equal(fresh.net.flat, actor.net.flat)


def test_linear_state_dict_with_layer_norm_and_errors():
    torch.manual_seed(13)
    mlp = randomize(MLP(5, (8, 6), 2, ensemble=2, activation="elu", layer_norm=True), 13)
    sd = mlp.linear_state_dict(1)
    assert list(sd) == [f"{i}.{p}" for i in (0, 1, 3, 4, 6) for p in ("weight", "bias")]
    seq = mlp.to_sequential(1)
    assert isinstance(seq[1], nn.LayerNorm) and isinstance(seq[2], nn.ELU)
    x = torch.randn(4, 5)
    torch.testing.assert_close(seq(x), mlp(x)[1], **TIGHT)
    other = MLP(5, (8, 6), 2, ensemble=2, activation="elu", layer_norm=True)
    for i in range(2):
        other.load_linear_state_dict(mlp.linear_state_dict(i), i)
    assert torch.equal(other.flat, mlp.flat)
    with pytest.raises(RlregError, match="missing"):
        other.load_linear_state_dict({k: v for k, v in sd.items() if k != "3.bias"})
    with pytest.raises(RlregError, match="has shape"):
        other.load_linear_state_dict({**sd, "0.weight": torch.zeros(8, 4)})


# ---------------------------------------------------------------------- FlatAdam
def test_flat_adam_matches_torch_adam():
    torch.manual_seed(3)
    p1 = torch.randn(50, requires_grad=True)
    p2 = p1.detach().clone()
    opt = torch.optim.Adam([p1], lr=1e-2)
    flat = FlatAdam(p2, lr=1e-2)
    assert isinstance(flat, torch.optim.Optimizer)
    for _ in range(10):
        g = torch.randn(50)
        p1.grad = g.clone()
        opt.step()
        flat.step(g)
    torch.testing.assert_close(p1.detach(), p2, rtol=1e-6, atol=1e-7)
    state = flat.state_dict()
    fresh = FlatAdam(p2.clone(), lr=1e-2)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.exp_avg_sq, flat.exp_avg_sq) and fresh.step_t.item() == 10


def test_flat_adam_step_uses_param_grad_and_closure():
    p = nn.Parameter(torch.ones(4))
    opt = FlatAdam(p, lr=0.1)
    opt.step()  # no gradient yet: nothing happens
    assert opt.step_t.item() == 0 and torch.equal(p.detach(), torch.ones(4))

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = p.square().sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 4.0
    assert opt.step_t.item() == 1 and torch.all(p < 1)
    calls = []
    handle = opt.register_step_post_hook(lambda o, args, kwargs: calls.append(o))
    opt.step(torch.ones(4))
    handle.remove()
    assert calls == [opt] and opt.step_t.item() == 2


@pytest.mark.parametrize(
    "make",
    [
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.1),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda i: 1.0 / (1 + i)),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8),
    ],
)
def test_lr_schedulers_change_the_step(make):
    torch.manual_seed(14)
    p1 = torch.randn(30, requires_grad=True)
    p2 = p1.detach().clone()
    p3 = p1.detach().clone()
    ref_opt, flat, unscheduled = torch.optim.Adam([p1], lr=0.05), FlatAdam(p2, lr=0.05), FlatAdam(p3, lr=0.05)
    s1, s2 = make(ref_opt), make(flat)
    for _ in range(10):
        g = torch.randn(30)
        p1.grad = g.clone()
        ref_opt.step()
        flat.step(g)
        unscheduled.step(g)
        s1.step()
        s2.step()
        assert flat.lr == ref_opt.param_groups[0]["lr"]
    torch.testing.assert_close(p2, p1.detach(), rtol=1e-6, atol=1e-7)
    assert not torch.allclose(p2, p3)  # the schedule did change the steps


def test_flat_adam_state_dict_round_trip_weights_only():
    torch.manual_seed(15)
    p = torch.randn(20)
    opt = FlatAdam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    grads = [torch.randn(20) for _ in range(6)]
    for g in grads[:3]:
        opt.step(g)
        sched.step()
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict(), "p": p.clone()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    assert saved["opt"]["param_groups"][0]["betas"] == [0.8, 0.99]
    assert set(saved["opt"]["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    p2 = saved["p"]
    opt2 = FlatAdam(p2, lr=1.0)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    ptr = opt2.exp_avg.data_ptr()
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert opt2.exp_avg.data_ptr() == ptr  # loaded in place (CUDA graphs replay on these storages)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.99) and opt2.lr == opt.lr
    for g in grads[3:]:
        opt.step(g)
        sched.step()
        opt2.step(g)
        sched2.step()
    assert torch.equal(p, p2) and torch.equal(opt.exp_avg_sq, opt2.exp_avg_sq)
    # deepcopy keeps a working optimizer
    assert copy.deepcopy(opt).step_t.item() == 6


def test_flat_adam_loads_earlier_format_and_refuses_other_sizes():
    p = torch.zeros(5)
    opt = FlatAdam(p)
    legacy = {
        "exp_avg": torch.ones(5),
        "exp_avg_sq": torch.full((5,), 2.0),
        "step": torch.tensor(7.0),
        "lr": 1e-3,
        "betas": [0.9, 0.99],
        "eps": 1e-7,
    }
    opt.load_state_dict(legacy)
    assert opt.step_t.item() == 7 and opt.lr == 1e-3 and opt.param_groups[0]["betas"] == (0.9, 0.99)
    assert torch.equal(opt.exp_avg_sq, torch.full((5,), 2.0))
    with pytest.raises(RuntimeError, match="FlatAdam state has 6 entries, expected 5"):
        FlatAdam(torch.zeros(5)).load_state_dict(FlatAdam(torch.zeros(6)).state_dict())
    with pytest.raises(RlregError, match="exactly one flat parameter"):
        opt.add_param_group({"params": [torch.zeros(2)]})
