"""rlreg.conv: ConvTorso and relu_avg_pool2d are the plain nn.Sequential, values and gradients."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlreg.conv import ConvTorso, relu_avg_pool2d


def layers(pad: bool, pool: bool, linear: bool, hw: int = 10) -> list[nn.Module]:
    out: list[nn.Module] = [nn.ZeroPad2d((0, 1, 0, 1))] if pad else []
    out += [nn.Conv2d(4, 8, 2), nn.ReLU()]
    side = hw if pad else hw - 1
    if pool:
        out.append(nn.AvgPool2d(2))
        side //= 2
    out.append(nn.Flatten())
    if linear:
        out += [nn.Linear(8 * side * side, 16), nn.ReLU()]
    return out


def grads(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    module.zero_grad()
    y = module(x)
    (y.square().sum() + y.sum()).backward()
    return y.detach(), [p.grad.clone() for p in module.parameters()]


@pytest.mark.parametrize("pad", [True, False])
@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("linear", [True, False])
@pytest.mark.parametrize("hw", [10, 9])
def test_conv_torso_equals_sequential(pad: bool, pool: bool, linear: bool, hw: int) -> None:
    torch.manual_seed(0)
    plain = nn.Sequential(*layers(pad, pool, linear, hw))
    fast = ConvTorso(*copy.deepcopy(list(plain)))
    assert fast.state_dict().keys() == plain.state_dict().keys()
    x = (torch.rand(5, 4, hw, hw) < 0.3).float()
    y0, g0 = grads(plain, x)
    y1, g1 = grads(fast, x)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), y0, rtol=1e-5, atol=1e-6)


def test_fast_path_taken_for_the_minatar_torso() -> None:
    t = ConvTorso(*layers(True, True, True))
    assert t._fast and t._pool and t._linear
    odd = ConvTorso(nn.Conv2d(4, 8, 2), nn.Tanh(), nn.Flatten())  # not the pattern: plain forward
    assert not odd._fast
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(odd(x), nn.Sequential(*odd)(x))


def test_relu_avg_pool2d_gradient_is_the_masked_broadcast() -> None:
    torch.manual_seed(1)
    h = torch.randn(3, 2, 4, 6, requires_grad=True)
    g = torch.randn(3, 2, 2, 3)
    (relu_avg_pool2d(h) * g).sum().backward()
    expect = 0.25 * g.repeat_interleave(2, 2).repeat_interleave(2, 3) * (h > 0)
    torch.testing.assert_close(h.grad, expect)
    ref = h.detach().clone().requires_grad_(True)
    (F.avg_pool2d(F.relu(ref), 2) * g).sum().backward()
    torch.testing.assert_close(h.grad, ref.grad)
    assert torch.autograd.gradcheck(
        relu_avg_pool2d, (torch.randn(1, 2, 2, 4, dtype=torch.double, requires_grad=True),)
    )


def test_no_grad_path_leaves_the_input_alone() -> None:
    h = torch.randn(2, 3, 4, 4, requires_grad=True)
    before = h.detach().clone()
    with torch.no_grad():
        out = relu_avg_pool2d(h)
    torch.testing.assert_close(h.detach(), before)
    torch.testing.assert_close(out, F.avg_pool2d(F.relu(before), 2))
