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
    if p >= 1:  # every candidate (the exclusive rule at p = 1 would drop the last one)
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
    # top_k: only the k largest are candidates (p >= 1: all k of them)
    z = torch.randn(32, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for p, k in ((0.9, 3), (0.5, 8), (1.0, 5)):
        h, size = topp_entropy(z, p, top_k=k)
        for i in range(32):
            want_h, want_n = naive_topp(z[i].softmax(-1).numpy(), p, top_k=k)
            assert int(size[i]) == want_n and float(h[i]) == pytest.approx(want_h, abs=1e-9)


def test_masked_logits_are_never_members_and_give_no_nan():
    z = torch.tensor([[0.0, float("-inf"), 1.0, 0.5]], requires_grad=True)
    want = torch.distributions.Categorical(logits=z.detach()).entropy()
    for p, inclusive in ((1.0, False), (0.999999, True)):
        h, size = topp_entropy(z, p, inclusive)
        (grad,) = torch.autograd.grad(h.sum(), z)
        assert int(size) == 3 and torch.allclose(h.detach(), want)
        assert torch.isfinite(grad).all() and grad[0, 1] == 0


def test_gradient_reaches_only_nucleus_logits():
    z = torch.tensor(
        [[2.0, 1.6, 1.5, -3.0, -4.0], [5.0, 0.0, -1.0, -2.0, -3.0], [1.0, 0.0, -0.5, -9.0, -9.0]],
        requires_grad=True,
    )
    h, size = topp_entropy(z, 0.8)
    h.sum().backward()
    # row 0: p = .44, .29, .27: c = .44, .73, .996 -> {0, 1}; row 1: p1 = .97 -> empty;
    # row 2: p = .63, .23, .14: c = .63, .86 -> singleton {0}
    assert size.tolist() == [2, 0, 1]
    assert (z.grad[0, :2] != 0).all() and (z.grad[0, 2:] == 0).all()
    assert (z.grad[1] == 0).all() and (z.grad[2] == 0).all()  # H = 0 rows: no gradient
    assert h[1] == 0 and h[2] == 0


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
    for k in out[3][2]:
        torch.testing.assert_close(out[None][2][k], out[3][2][k])
    assert set(out[3][2]) == {"entropy_topp", "entropy_full", "selected_frac", "nucleus_size"}
    assert all(v.dim() == 0 and not v.requires_grad for v in out[3][2].values())
    assert 0 < float(out[3][2]["selected_frac"]) < 0.6
    # the stats by hand: means over the 28 valid positions
    h, size = topp_entropy(base, 0.9)
    full = torch.distributions.Categorical(logits=base).entropy()
    torch.testing.assert_close(out[3][2]["entropy_topp"], h[mask].mean())
    torch.testing.assert_close(out[3][2]["entropy_full"], full[mask].mean())
    torch.testing.assert_close(out[3][2]["nucleus_size"], size[mask].float().mean())
    # and H_sel: the per-row quantile over valid positions, then the mean of row means
    sel = peak_mask(h, mask, 0.5)
    want = torch.stack([h[i][sel[i]].mean() for i in range(3)]).mean()
    torch.testing.assert_close(out[3][0], want)
    with pytest.raises(RlregError, match="response_mask has shape"):
        selective_entropy(base, mask[:, :5])


def test_chunks_run_under_checkpointing_when_the_logits_need_gradients(monkeypatch):
    calls = []
    real = siren_module.checkpoint

    def counting(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return real(*args, **kwargs)

    monkeypatch.setattr(siren_module, "checkpoint", counting)
    z = torch.randn(2, 10, 30, requires_grad=True)
    h, _ = selective_entropy(z, None, chunk_size=4)
    h.backward()
    assert calls == [False] * 3 and torch.isfinite(z.grad).all()  # ceil(10 / 4) chunks
    calls.clear()
    selective_entropy(z.detach(), None, chunk_size=4)  # no gradient: no checkpointing
    assert calls == []


class FakeView:
    """A PolicyGradientView's fields: step, discrete, num_actions, device, log."""

    def __init__(self, step: int = 0, num_actions: int | None = 4) -> None:
        self.step, self.num_actions = step, num_actions
        self.discrete = num_actions is not None
        self.device = torch.device("cpu")
        self.logged: dict[str, torch.Tensor] = {}

    def log(self, reg, key: str, value: torch.Tensor) -> None:
        self.logged[f"{reg.name}/{key}"] = value


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
    # an unset anchor stays unset through save/load
    state = Siren().state_dict()
    assert state["extra"]["anchor_set"] is False
    fresh = Siren()
    fresh.load_state_dict(state)
    assert fresh.anchor is None


def test_stats_are_detached_scalars_with_the_documented_keys():
    keys = {"entropy_sel", "entropy_topp", "entropy_full", "anchor", "selected_frac", "nucleus_size"}
    z = torch.randn(64, 4, requires_grad=True)
    s = Siren(anchor=0.5)
    terms = s.entropy_terms(torch.distributions.Categorical(logits=z), {}, FakeView())
    assert set(terms.stats) == keys | {"deviation"} and set(terms.losses) == {"siren_loss"}
    assert all(v.dim() == 0 and not v.requires_grad for v in terms.stats.values())
    assert float(terms.stats["anchor"]) == 0.5
    dev = float(terms.stats["entropy_sel"]) - 0.5
    assert float(terms.stats["deviation"]) == pytest.approx(dev)
    assert float(terms.losses["siren_loss"].detach()) == pytest.approx(0.005 * dev**2, rel=1e-5)
    unset = Siren(anchor="warmup:5").entropy_terms(torch.distributions.Categorical(logits=z), {}, FakeView())
    assert math.isnan(float(unset.stats["anchor"])) and math.isnan(float(unset.stats["deviation"]))


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
        x = z.clone().requires_grad_(True)
        s = Siren(coef=1.0, top_p=0.95, anchor=0.05, one_sided=True)
        loss = s.entropy_terms(torch.distributions.Categorical(logits=x), {}, FakeView()).losses["siren_loss"]
        (grad,) = torch.autograd.grad(loss, x)
        assert float(loss.detach()) == 0 and (grad == 0).all()
    else:
        assert after < before


def test_gradient_is_two_c_times_the_deviation_times_grad_h_sel():
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(5), requires_grad=True)
    s = Siren(coef=0.3, top_p=0.95, anchor=1.0)
    terms = s.entropy_terms(torch.distributions.Categorical(logits=z), {}, FakeView())
    (g_loss,) = torch.autograd.grad(terms.losses["siren_loss"], z)
    h_sel, _ = selective_entropy(z[None], None, top_p=0.95, mode="token-mean", chunk_size=None)
    (g_h,) = torch.autograd.grad(h_sel, z)
    torch.testing.assert_close(g_loss, 2 * 0.3 * (float(h_sel.detach()) - 1.0) * g_h)


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
    with pytest.raises(RlregError, match="discrete action space"):
        Siren(anchor="target:0.5").token_terms(torch.randn(2, 3, 5))
    with pytest.raises(RlregError, match="discrete action space"):
        normal = torch.distributions.Normal(torch.zeros(8), torch.ones(8))
        Siren(top_p=1.0, anchor="target:0.5").entropy_terms(normal, {}, FakeView(num_actions=None))
    assert Siren(anchor=0.7).anchor == 0.7
    s = Siren(anchor=0.7)
    s.set_anchor(0.2)
    assert s.anchor == 0.2


def test_token_warmup_counts_the_callers_updates():
    z = torch.randn(2, 6, 20, generator=torch.Generator().manual_seed(6))
    s = Siren(anchor="warmup:2")
    assert float(s.token_terms(z, step=1).losses["siren_loss"]) == 0 and s.anchor is None
    s.token_terms(z, step=2)
    assert s.anchor == pytest.approx(float(selective_entropy(z)[0]))
    with pytest.raises(RlregError, match="step="):
        Siren(anchor="warmup:2").token_terms(z)


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
    std = torch.rand(16, 2, generator=torch.Generator().manual_seed(7)) + 0.1
    normal = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(16, 2), std), 1)
    view = FakeView(num_actions=None)
    terms = Siren(top_p=1.0, quantile=0.5, anchor=0.0).entropy_terms(normal, {}, view)
    h = normal.entropy()
    want = h[h > h.quantile(0.5)].mean()  # the 8 highest of 16 distinct entropies
    assert float(terms.stats["entropy_sel"]) == pytest.approx(float(want))
    assert float(terms.losses["siren_loss"]) == pytest.approx(0.005 * float(want) ** 2)
    assert float(terms.stats["selected_frac"]) == 0.5
    # a plain Normal's per-dimension entropies are summed, as Independent(Normal, 1)'s
    plain = Siren(top_p=1.0, quantile=0.5, anchor=0.0).entropy_terms(
        torch.distributions.Normal(torch.zeros(16, 2), std), {}, view
    )
    assert float(plain.stats["entropy_sel"]) == pytest.approx(float(want))
    with pytest.raises(RlregError, match="siren.top_p=1"):
        Siren(top_p=0.8).entropy_terms(normal, {}, view)
    squashed = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(torch.zeros(16), torch.ones(16)), [torch.distributions.TanhTransform()]
    )
    with pytest.raises(RlregError, match="no closed-form entropy"):
        Siren(top_p=1.0).entropy_terms(squashed, {}, view)


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
        ("quantile", 0.0),
        ("top_p", -1),
        ("top_k", 0),
        ("chunk_size", -1),
        ("mode", "sum"),
        ("anchor", "warmup:x"),
        ("anchor", "later"),
        ("anchor", "target:-1"),
        ("inclusive", 1),
        ("one_sided", "yes"),
    ],
)
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(RlregError, match=f"siren.{field}") as e:
        Siren(**{field: value})
    assert e.value.fix  # every message says what to do
    if field == "anchor":
        assert all(form in e.value.fix for form in ("initial", "warmup:N", "target:K", "none"))


def test_registered_by_name():
    from rlreg.regularizers import make_regularizer

    s = make_regularizer("siren", coef=0.01, anchor="target:0.9")
    assert isinstance(s, Siren) and s.families == frozenset({"policy_gradient"}) and not s.capturable


def test_docstring_examples_run():
    assert doctest.testmod(siren_module).failed == 0


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])  # Categorical, diagonal Gaussian
def test_in_sb3_ppo_siren_without_masks_or_anchor_equals_ent_coef(env):
    import stable_baselines3 as sb3
    from rlreg.agents.sb3 import PPO

    kw = {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "seed": 0, "device": "cpu"}
    kw["policy_kwargs"] = {"net_arch": [8]}
    siren = Siren(coef=0.05, top_p=1.0, quantile=None, anchor="none")
    ours = PPO("MlpPolicy", env, regularizers=[siren], ent_coef=0.0, **kw).learn(128)
    theirs = sb3.PPO("MlpPolicy", env, ent_coef=0.05, **kw).learn(128)
    for a, b in zip(ours.policy.parameters(), theirs.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    logged = ours.logger.name_to_value
    assert logged["train/siren/entropy_sel"] == pytest.approx(-logged["train/entropy_loss"], rel=1e-5)


def test_default_siren_runs_in_sb3_ppo_and_logs_its_stats():
    from rlreg.agents.sb3 import PPO

    kw = {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "seed": 0, "device": "cpu"}
    kw["policy_kwargs"] = {"net_arch": [8]}
    model = PPO("MlpPolicy", "Acrobot-v1", regularizers=[Siren(coef=0.05)], **kw).learn(128)  # 3 actions
    siren = model.regularizers[0]
    # near uniform over 3 actions: c = 1/3, 2/3 < 0.8, a nucleus of 2, H_top-p close to log 2
    assert siren.anchor is not None and 0.5 < siren.anchor <= math.log(2) + 1e-6
    logged = model.logger.name_to_value
    for key in ("siren_loss", "entropy_sel", "entropy_topp", "entropy_full", "anchor", "deviation"):
        assert math.isfinite(logged[f"train/siren/{key}"]), key
    assert logged["train/siren/anchor"] == pytest.approx(siren.anchor)
    assert logged["train/siren/nucleus_size"] == pytest.approx(2.0, abs=0.2)
    assert 0 < logged["train/siren/selected_frac"] <= 0.25


def test_two_actions_with_an_exclusive_nucleus_are_refused():
    d = torch.distributions.Categorical(logits=torch.zeros(8, 2))
    with pytest.raises(RlregError, match="never holds two actions"):
        Siren().entropy_terms(d, {}, FakeView(num_actions=2))
    Siren(inclusive=True).entropy_terms(d, {}, FakeView(num_actions=2))
    Siren(top_p=1.0).entropy_terms(d, {}, FakeView(num_actions=2))
