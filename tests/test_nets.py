"""The fused MLP engine against an nn.Linear reference: outputs, every gradient, features, members;
FlatAdam against torch.optim.Adam."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlreg.nets import MLP, Critic, FlatAdam


def reference(mlp: MLP, member: int = 0) -> nn.Sequential:
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
        torch.testing.assert_close(y[i] if ensemble > 1 else y, yi, rtol=1e-5, atol=1e-6)
        yi.backward(gy[i] if ensemble > 1 else gy)
        want_gflat += ref_grads(ref, mlp, i)
        if input_3d:
            want_gx[i] = xi.grad
        else:
            want_gx += xi.grad
    torch.testing.assert_close(gflat, want_gflat, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx, want_gx, rtol=1e-5, atol=1e-6)


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
    torch.testing.assert_close(g, want, rtol=1e-5, atol=1e-6)
    # only features used: still correct
    _, feat = mlp.forward_features(x)
    (g2,) = torch.autograd.grad(feat.sum(), [mlp.flat])
    assert torch.count_nonzero(g2) > 0


def test_member_forward_treats_weights_as_constants():
    torch.manual_seed(2)
    critic = Critic(3, 2, (8, 8), n_heads=2)
    obs, act = torch.randn(6, 3), torch.randn(6, 2, requires_grad=True)
    q1 = critic.q1(obs, act)
    torch.testing.assert_close(q1, critic(obs, act)[0])
    (ga,) = torch.autograd.grad(q1.sum(), [act])
    ref = reference(critic.net, 0)
    a2 = act.detach().clone().requires_grad_(True)
    ref(torch.cat([obs, a2], 1)).sum().backward()
    torch.testing.assert_close(ga, a2.grad, rtol=1e-5, atol=1e-6)
    assert critic.net.flat.grad is None


def test_frozen_forward_gives_input_gradient_only():
    torch.manual_seed(3)
    mlp = MLP(4, (16, 16), 3)
    x = torch.randn(5, 4, requires_grad=True)
    y = mlp.forward_frozen(x)
    torch.testing.assert_close(y, mlp(x))
    y.square().sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    reference(mlp)(x2).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)
    assert mlp.flat.grad is None  # the weights are constants: no gradient reaches them


def test_linear_weights_round_trip():
    mlp = MLP(3, (4,), 2, ensemble=2)
    other = MLP(3, (4,), 2, ensemble=2)
    for i in range(2):
        other.load_linear_weights(mlp.linear_weights(i), i)
    assert torch.equal(mlp.flat, other.flat)


def test_default_init_bounds():
    mlp = MLP(100, (50,), 1)
    w0, b0, w1, _ = mlp.views(mlp.flat.detach())
    assert w0.abs().max() <= 0.1 and b0.abs().max() <= 0.1 and w1.abs().max() <= 1 / 50**0.5


def test_flat_adam_matches_torch_adam():
    torch.manual_seed(3)
    p1 = torch.randn(50, requires_grad=True)
    p2 = p1.detach().clone()
    opt = torch.optim.Adam([p1], lr=1e-2)
    flat = FlatAdam(p2, lr=1e-2)
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
