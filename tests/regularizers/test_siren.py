"""SIREN: the top-p entropy against a naive per-row reference, the peak mask, the aggregation, the
chunked token API, the self-anchor (fixed, saved, restored), gradient signs, the equality with the
plain entropy bonus when both masks are off, bad settings, and SIREN inside SB3's PPO."""

from __future__ import annotations

import doctest
import io
import math

import numpy as np
import pytest
import torch

from rlreg.errors import RlregError
from rlreg.regularizers import Entropy, Siren
from rlreg.regularizers import siren as siren_module
from rlreg.regularizers.siren import aggregate, peak_mask, selective_entropy, topp_entropy


def naive_topp(probs: np.ndarray, p: float, inclusive: bool = False, top_k: int | None = None):
    """The research notes' definition, one row at a time: sort descending, cumulative sums, the
    exclusive nucleus {c_j < p} (inclusive: {c_(j-1) < p}), renormalise, entropy; 0 if |N| <= 1."""
    order = np.argsort(-probs, kind="stable")
    sp = probs[order]
    if top_k is not None:
        sp = sp[:top_k]
    cum = np.cumsum(sp)
    if p >= 1 and top_k is None:
        members = sp
    else:
        prev = np.concatenate([[0.0], cum[:-1]])
        members = sp[(prev < p) if inclusive else (cum < p)]
    if len(members) <= 1:
        return 0.0, len(members)
    q = members / members.sum()
    return float(-(q * np.log(q)).sum()), len(members)


@pytest.mark.parametrize("v", [2, 6, 50])
@pytest.mark.parametrize("p", [0.3, 0.8, 0.95, 1.0])
@pytest.mark.parametrize("inclusive", [False, True])
def test_topp_entropy_equals_a_naive_per_row_reference(v, p, inclusive):
    g = torch.Generator().manual_seed(v)
    logits = torch.randn(64, v, generator=g, dtype=torch.float64) * 2
    h, size = topp_entropy(logits, p, inclusive)
    probs = logits.softmax(-1).numpy()
    for i in range(64):
        want_h, want_n = naive_topp(probs[i], p, inclusive)
        assert size[i] == want_n
        assert float(h[i]) == pytest.approx(want_h, abs=1e-9)


def test_nucleus_edge_cases_by_hand():
    logits = torch.tensor([[0.5, 0.3, 0.2], [0.85, 0.1, 0.05], [0.7, 0.2, 0.1]]).log()
    h, size = topp_entropy(logits, 0.8)
    # row 0: c = 0.5, 0.8, 1.0 -> exclusive {0.5} (0.8 is not < 0.8): singleton, H = 0
    # row 1: top-1 0.85 >= 0.8 -> empty; row 2: c = 0.7, 0.9 -> {0.7}: singleton
    assert size.tolist() == [1, 0, 1] and h.tolist() == [0.0, 0.0, 0.0]
    h, size = topp_entropy(logits, 0.8, inclusive=True)  # the crossing token joins
    q = torch.tensor([0.5, 0.3]) / 0.8
    assert size.tolist() == [2, 1, 2]
    assert float(h[0]) == pytest.approx(float(-(q * q.log()).sum()), abs=1e-6) and float(h[1]) == 0
    # ties: equal logits, the nucleus is any size-consistent subset; the entropy is log |N|
    h, size = topp_entropy(torch.zeros(1, 10), 0.55)  # c = 0.1 ... 0.5 < 0.55: 5 members
    assert int(size) == 5 and float(h) == pytest.approx(math.log(5), abs=1e-6)
    # p >= 1: the full entropy (exclusive 1.0 would otherwise drop the last action)
    z = torch.randn(7, 4)
    h, size = topp_entropy(z, 1.0)
    torch.testing.assert_close(h, torch.distributions.Categorical(logits=z).entropy())
    assert size.tolist() == [4] * 7
    # top_k: only the k largest are candidates
    z = torch.randn(32, 20, dtype=torch.float64)
    h, size = topp_entropy(z, 0.9, top_k=3)
    for i in range(32):
        want_h, want_n = naive_topp(z[i].softmax(-1).numpy(), 0.9, top_k=3)
        assert int(size[i]) == want_n and float(h[i]) == pytest.approx(want_h, abs=1e-9)


def test_gradient_reaches_only_nucleus_logits():
    z = torch.tensor([[2.0, 1.6, 1.5, -3.0, -4.0], [5.0, 0.0, -1.0, -2.0, -3.0]], requires_grad=True)
    h, size = topp_entropy(z, 0.8)
    h.sum().backward()
    keep = siren_module._nucleus(z.detach(), 0.8, False, None)
    assert size.tolist() == [2, 0]  # p = .44, .29, .27: c = .44, .73, .996
    assert (z.grad[0][keep[0]] != 0).any() and (z.grad[0][~keep[0]] == 0).all()
    assert (z.grad[1] == 0).all()  # empty nucleus: H = 0, no gradient


def test_peak_mask_selects_the_top_fraction_per_row_and_respects_padding():
    h = torch.stack([torch.arange(10.0), torch.arange(10.0).flip(0)])
    m = peak_mask(h, None, 0.8)
    # quantile 0.8 of 0..9 is 7.2: the values 8 and 9 (strictly above)
    assert m.sum(-1).tolist() == [2, 2] and m[0, 8:].all() and m[1, :2].all()
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[0, 5:] = False  # row 0: 0..4, quantile 3.2 -> only 4
    m = peak_mask(h, valid, 0.8)
    assert m[0].nonzero().flatten().tolist() == [4] and not m[0, 5:].any()
    assert torch.equal(peak_mask(h, valid, None), valid)


def test_aggregate_modes_by_hand():
    h = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    sel = torch.tensor([[1, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.bool)
    # rows: mean(1, 2) = 1.5, 6, none -> 0; the mean over the three rows
    assert float(aggregate(h, sel, "seq-mean-token-mean")) == pytest.approx((1.5 + 6 + 0) / 3)
    assert float(aggregate(h, sel, "token-mean")) == pytest.approx((1 + 2 + 6) / 3)
    assert float(aggregate(h, torch.zeros_like(sel), "token-mean")) == 0.0


def test_chunked_token_api_equals_one_chunk_in_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(3, 11, 40, generator=g) * 1.5
    mask = torch.ones(3, 11, dtype=torch.bool)
    mask[1, 8:] = False
    mask[2, :2] = False
    out = {}
    for chunk in (None, 3):
        z = base.clone().requires_grad_(True)
        h, stats = selective_entropy(z, mask, top_p=0.9, quantile=0.5, chunk_size=chunk)
        h.backward()
        out[chunk] = (h.detach(), z.grad, stats)
    torch.testing.assert_close(out[None][0], out[3][0])
    torch.testing.assert_close(out[None][1], out[3][1])
    assert set(out[3][2]) == {"entropy_topp", "entropy_full", "selected_frac", "nucleus_size"}
    assert 0 < float(out[3][2]["selected_frac"]) < 0.6
    with pytest.raises(RlregError, match="response_mask has shape"):
        selective_entropy(base, mask[:, :5])


class FakeView:
    def __init__(self, step: int = 0, num_actions: int | None = 4) -> None:
        self.step, self.num_actions = step, num_actions
        self.discrete = num_actions is not None
        self.device = torch.device("cpu")


def categorical(seed: int = 0, scale: float = 1.0, n: int = 64) -> torch.distributions.Categorical:
    g = torch.Generator().manual_seed(seed)
    return torch.distributions.Categorical(logits=torch.randn(n, 4, generator=g) * scale)


def test_initial_anchor_is_fixed_after_the_first_call_and_survives_save_load():
    s = Siren(coef=0.1, top_p=1.0)
    t1 = s.entropy_terms(categorical(0), {}, FakeView())
    anchor = s.anchor
    assert anchor == pytest.approx(float(t1.stats["entropy_sel"])) and float(t1.losses["siren_loss"]) == 0
    t2 = s.entropy_terms(categorical(1, scale=3.0), {}, FakeView(5))
    assert s.anchor == anchor and float(t2.losses["siren_loss"]) > 0
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    buf.seek(0)
    other = Siren(coef=0.1, top_p=1.0)
    assert other.anchor is None
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert other.anchor == anchor
    t3 = other.entropy_terms(categorical(1, scale=3.0), {}, FakeView(5))
    assert float(t3.losses["siren_loss"]) == pytest.approx(float(t2.losses["siren_loss"]))


def h_sel_after_a_step(s: Siren, logits: torch.Tensor, lr: float = 0.5) -> tuple[float, float]:
    z = logits.clone().requires_grad_(True)
    terms = s.entropy_terms(torch.distributions.Categorical(logits=z), {}, FakeView())
    terms.losses["siren_loss"].backward()
    with torch.no_grad():
        after = s.entropy_terms(torch.distributions.Categorical(logits=z - lr * z.grad), {}, FakeView())
    return float(terms.stats["entropy_sel"]), float(after.stats["entropy_sel"])


@pytest.mark.parametrize("one_sided", [False, True])
def test_gradient_raises_entropy_below_the_anchor_and_lowers_it_above(one_sided):
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(3)) * 2
    before, after = h_sel_after_a_step(Siren(coef=1.0, top_p=0.95, anchor=1.3, one_sided=one_sided), z)
    assert before < 1.3 and after > before
    before, after = h_sel_after_a_step(Siren(coef=1.0, top_p=0.95, anchor=0.05, one_sided=one_sided), z)
    assert before > 0.05
    if one_sided:  # no loss, no gradient above the anchor
        assert after == pytest.approx(before)
    else:
        assert after < before


def test_anchor_variants():
    d = categorical(0)
    none = Siren(coef=0.3, top_p=1.0, quantile=0.8, anchor="none").entropy_terms(d, {}, FakeView())
    assert float(none.losses["siren_loss"]) == pytest.approx(-0.3 * float(none.stats["entropy_sel"]))
    w = Siren(coef=0.3, top_p=1.0, anchor="warmup:10")
    assert float(w.entropy_terms(d, {}, FakeView(step=3)).losses["siren_loss"]) == 0 and w.anchor is None
    w.entropy_terms(d, {}, FakeView(step=10))
    assert w.anchor is not None
    t = Siren(coef=0.3, top_p=1.0, anchor="target:0.5")
    t.entropy_terms(d, {}, FakeView(num_actions=4))
    assert t.anchor == pytest.approx(0.5 * math.log(4))
    with pytest.raises(RlregError, match="discrete actions"):
        Siren(anchor="target:0.5").token_terms(torch.randn(2, 3, 5))
    assert Siren(anchor=0.7).anchor == 0.7


def test_masks_off_and_no_anchor_equals_the_plain_entropy_bonus():
    z = torch.randn(32, 6, generator=torch.Generator().manual_seed(1))
    grads = []
    for reg in (Siren(coef=0.01, top_p=1.0, quantile=None, anchor="none"), Entropy(coef=0.01)):
        x = z.clone().requires_grad_(True)
        terms = reg.entropy_terms(torch.distributions.Categorical(logits=x), {}, FakeView())
        loss = sum(terms.losses.values())
        loss.backward()
        grads.append((float(loss.detach()), x.grad))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_continuous_policies_use_their_entropy_and_refuse_a_nucleus():
    normal = torch.distributions.Independent(
        torch.distributions.Normal(torch.zeros(16, 2), torch.rand(16, 2)), 1
    )
    terms = Siren(top_p=1.0, quantile=0.5, anchor=0.0).entropy_terms(normal, {}, FakeView(num_actions=None))
    assert math.isfinite(float(terms.losses["siren_loss"]))
    with pytest.raises(RlregError, match="siren.top_p=1"):
        Siren(top_p=0.8).entropy_terms(normal, {}, FakeView(num_actions=None))


def test_token_terms_anchor_from_a_whole_batch():
    z = torch.randn(4, 9, 30, generator=torch.Generator().manual_seed(2)) * 2
    mask = torch.ones(4, 9, dtype=torch.bool)
    s = Siren(coef=0.005, top_p=0.9)
    a = s.anchor_from_logits(z, mask)
    h, _ = selective_entropy(z, mask, top_p=0.9)
    assert a == pytest.approx(float(h))
    zz = (z * 0.5).requires_grad_(True)
    terms = s.token_terms(zz, mask)
    want = 0.005 * (float(terms.stats["entropy_sel"]) - a) ** 2
    assert float(terms.losses["siren_loss"].detach()) == pytest.approx(want, rel=1e-5)
    terms.losses["siren_loss"].backward()
    assert zz.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("coef", "x"),
        ("top_p", 0.0),
        ("quantile", 1.0),
        ("top_k", 0),
        ("chunk_size", -1),
        ("mode", "sum"),
        ("anchor", "warmup:x"),
        ("anchor", "later"),
        ("one_sided", "yes"),
    ],
)
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(RlregError, match=f"siren.{field}"):
        Siren(**{field: value})


def test_docstring_examples_run():
    assert doctest.testmod(siren_module).failed == 0


def test_in_sb3_ppo_siren_without_masks_or_anchor_equals_ent_coef():
    import gymnasium as gym
    from rlreg.agents.sb3 import PPO

    def run(regs, ent_coef):
        env = gym.make("CartPole-v1")
        kw = {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "seed": 0, "device": "cpu"}
        model = PPO(
            "MlpPolicy", env, regularizers=regs, ent_coef=ent_coef, policy_kwargs={"net_arch": [8]}, **kw
        )
        model.learn(128)
        return torch.cat([p.detach().reshape(-1) for p in model.policy.parameters()]), model

    ours, _ = run([Siren(coef=0.05, top_p=1.0, quantile=None, anchor="none")], 0.0)
    sb3, _ = run([], 0.05)
    torch.testing.assert_close(ours, sb3)
    _, model = run([Siren(coef=0.05)], 0.0)  # the default SIREN runs inside SB3's PPO
    assert model.regularizers[0].anchor is not None
