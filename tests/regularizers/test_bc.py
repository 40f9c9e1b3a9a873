"""BC term of TD3+BC: value against an independent computation, gradient flow, edge cases."""

from __future__ import annotations

import pytest
import torch

from rlreg.errors import RlregError
from rlreg.regularizers import BC, make_regularizer


def independent_bc(pi: torch.Tensor, a: torch.Tensor) -> float:
    # TD3+BC paper eq. (3): (pi(s) - a)^2 averaged over the batch and the action dimensions
    total = 0.0
    for i in range(pi.shape[0]):
        for j in range(pi.shape[1]):
            total += (float(pi[i, j]) - float(a[i, j])) ** 2
    return total / (pi.shape[0] * pi.shape[1])


def test_bc_loss_equals_formula_on_fixed_batch(make_batch):
    batch = make_batch(n=16, act_dim=3, seed=1)
    pi = torch.tanh(torch.randn(16, 3, generator=torch.Generator().manual_seed(2)))
    terms = BC().actor_terms(batch, pi, view=None)
    assert set(terms.losses) == {"bc_loss"}
    assert terms.losses["bc_loss"].item() == pytest.approx(independent_bc(pi, batch.actions), rel=1e-6)


def test_bc_weight_scales_the_term(make_batch):
    batch = make_batch(n=8, act_dim=2)
    pi = torch.zeros(8, 2)
    base = BC().actor_terms(batch, pi, None).losses["bc_loss"]
    half = BC(weight=0.5).actor_terms(batch, pi, None).losses["bc_loss"]
    zero = BC(weight=0.0).actor_terms(batch, pi, None).losses["bc_loss"]
    assert half.item() == pytest.approx(0.5 * base.item())
    assert zero.item() == 0.0


def test_bc_gradient_reaches_policy_action_only(make_batch):
    batch = make_batch(n=8, act_dim=2)
    actions = batch.actions.clone().requires_grad_(True)
    batch = batch._replace(actions=actions)
    pi = torch.randn(8, 2, requires_grad=True)
    loss = BC().actor_terms(batch, pi, None).losses["bc_loss"]
    g_pi, g_a = torch.autograd.grad(loss, [pi, actions])
    # d/dpi mean((pi - a)^2) = 2 (pi - a) / (B * A)
    torch.testing.assert_close(g_pi, 2 * (pi - actions).detach() / 16)
    # the dataset action is data: the term is symmetric, but the agent never optimizes it
    assert batch.actions.grad is None
    assert g_a is not None


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bc_rejects_bad_weight(bad):
    with pytest.raises(RlregError, match="bc.weight"):
        BC(weight=bad)


def test_unknown_setting_and_name_are_clear():
    with pytest.raises(RlregError, match="(?s)unknown setting.*valid settings are: weight"):
        BC(wieght=1.0)
    with pytest.raises(RlregError, match="(?s)unknown regularizer .bcc.*bc"):
        make_regularizer("bcc")


def test_bc_state_round_trip():
    r = BC(weight=0.3)
    state = r.state_dict()
    r2 = BC(weight=0.3)
    r2.load_state_dict(state)
    assert state["config"] == {"weight": 0.3}
