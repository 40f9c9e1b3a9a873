"""The entropy bonus as a regularizer: its loss on fixed distributions against closed forms written
here, gradient flow, edge cases and bad settings."""

from __future__ import annotations

import math

import pytest
import torch

from rlreg.errors import RlregError
from rlreg.regularizers import Entropy


def test_categorical_loss_equals_minus_c_times_the_mean_entropy():
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]])
    p = torch.softmax(logits, dim=1)
    h = -(p * p.log()).sum(1)  # H = −Σ p log p per row
    terms = Entropy(coef=0.3).entropy_terms(torch.distributions.Categorical(logits=logits), {}, None)
    torch.testing.assert_close(terms.losses["entropy_loss"], -0.3 * h.mean())
    torch.testing.assert_close(terms.stats["entropy"], h.mean())


def test_diagonal_gaussian_entropy_sums_the_action_dimensions():
    mu, std = torch.zeros(4, 2), torch.tensor([[0.5, 2.0]]).expand(4, 2)
    dist = torch.distributions.Independent(torch.distributions.Normal(mu, std), 1)
    want = (0.5 * torch.log(2 * math.pi * math.e * std**2)).sum(1).mean()  # ½ log(2πe σ²) per dim
    got = Entropy(coef=1.0).entropy_terms(dist, {}, None)
    torch.testing.assert_close(got.stats["entropy"], want)


def test_gradient_reaches_the_logits_and_raises_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    loss = Entropy(coef=1.0).entropy_terms(torch.distributions.Categorical(logits=logits), {}, None)
    loss.losses["entropy_loss"].backward()
    with torch.no_grad():
        stepped = logits - 0.1 * logits.grad  # a gradient step on the loss flattens the policy
    h = torch.distributions.Categorical(logits=stepped).entropy()
    assert h.item() > torch.distributions.Categorical(logits=logits.detach()).entropy().item()
    assert loss.stats["entropy"].requires_grad is False


def test_log_prob_estimate_and_coef_zero():
    dist = torch.distributions.Categorical(logits=torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    actions = torch.tensor([0, 0])
    est = Entropy(coef=1.0, use_log_prob=True).entropy_terms(dist, {"actions": actions}, None)
    torch.testing.assert_close(est.stats["entropy"], -dist.log_prob(actions).mean())
    zero = Entropy(coef=0.0).entropy_terms(dist, {}, None)
    assert zero.losses["entropy_loss"].item() == 0.0 and zero.stats["entropy"].item() > 0


def test_no_closed_form_entropy_says_what_to_do():
    base = torch.distributions.Normal(torch.zeros(3, 1), torch.ones(3, 1))
    squashed = torch.distributions.TransformedDistribution(base, [torch.distributions.TanhTransform()])
    with pytest.raises(RlregError, match="use_log_prob=true"):
        Entropy().entropy_terms(squashed, {}, None)


@pytest.mark.parametrize(
    ("kw", "match"), [({"coef": -0.1}, "entropy.coef"), ({"use_log_prob": 1}, "true or false")]
)
def test_bad_settings(kw, match):
    with pytest.raises(RlregError, match=match):
        Entropy(**kw)
