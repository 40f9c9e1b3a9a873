"""PRDC's dataset-constraint term: value against an independent computation, k and β semantics,
gradient flow, backends agreeing, and bad input."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from rlreg.data.transitions import TensorBatch, TransitionStore
from rlreg.errors import RlregError
from rlreg.regularizers import PRDC, SetupSource

OBS, ACT = 3, 2


def make_store(n: int = 500, seed: int = 0) -> TransitionStore:
    rng = np.random.default_rng(seed)
    obs = np.cumsum(rng.standard_normal((n, OBS)) * 0.2, 0).astype(np.float32)
    act = np.tanh(obs[:, :ACT] + 0.5 * rng.standard_normal((n, ACT))).astype(np.float32)
    store = TransitionStore(n, OBS, ACT)
    store.add(obs, act, rng.standard_normal(n), obs + 0.1, np.zeros(n))
    return store


def setup_prdc(store: TransitionStore, **cfg) -> PRDC:
    reg = PRDC(**cfg)
    box = torch.ones(ACT)
    reg.setup(SetupSource(OBS, ACT, -box, box, store=store), view=None)
    return reg


def batch_of(store: TransitionStore, rows: list[int] | np.ndarray, with_indices: bool = True) -> TensorBatch:
    idx = torch.as_tensor(np.asarray(rows), dtype=torch.long)
    return store.split(store.data.index_select(0, idx), idx if with_indices else None)


def independent_dc(store: TransitionStore, obs, pi, beta: float, k: int) -> tuple[float, np.ndarray]:
    """PRDC's loss by its definition: keys (β s_j, a_j) over all rows, query (β s, π), k-th nearest."""
    data = store.data[: len(store)].double().numpy()
    s_all, a_all = data[:, :OBS], data[:, OBS : OBS + ACT]
    total, chosen = 0.0, []
    for s, p in zip(obs.double().numpy(), pi.double().numpy()):
        d = [
            np.sum((beta * s - beta * s_all[j]) ** 2) + np.sum((p - a_all[j]) ** 2) for j in range(len(data))
        ]
        j = int(np.argsort(d, kind="stable")[k - 1])
        chosen.append(j)
        total += float(np.sum((p - a_all[j]) ** 2))
    return total / (len(pi) * ACT), np.array(chosen)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_dc_loss_equals_definition(k, beta):
    store = make_store()
    reg = setup_prdc(store, beta=beta, k=k)
    batch = batch_of(store, np.random.default_rng(1).integers(0, len(store), 24))
    pi = torch.tanh(torch.randn(24, ACT, generator=torch.Generator().manual_seed(2)))
    terms = reg.actor_terms(batch, pi, view=None)
    want, rows = independent_dc(store, batch.observations, pi, beta, k)
    assert terms.losses["dc_loss"].item() == pytest.approx(want, rel=1e-5)
    a_nn, d2, _ = reg.neighbour(batch, pi)
    np.testing.assert_array_equal(a_nn.numpy(), store.data[rows, OBS : OBS + ACT].numpy())
    assert terms.stats["nn_distance"].item() == pytest.approx(d2.sqrt().mean().item())


def test_kth_neighbour_alone_not_an_average():
    store = TransitionStore(3, 1, 1)
    store.add(np.zeros((3, 1)), np.array([[0.1], [0.5], [-0.9]]), np.zeros(3), np.zeros((3, 1)), np.zeros(3))
    box = torch.ones(1)
    for k, want in ((1, 0.1), (2, 0.5), (3, -0.9)):
        reg = PRDC(k=k)
        reg.setup(SetupSource(1, 1, -box, box, store=store), None)
        batch = batch_of(store, [0])
        a_nn, _, _ = reg.neighbour(batch, torch.tensor([[0.0]]))
        assert a_nn.item() == pytest.approx(want)


def test_beta_trades_state_match_for_action_match():
    # two states far apart; the query's own state has action +1, the other state has action 0
    store = TransitionStore(2, 1, 1)
    store.add(np.array([[0.0], [1.0]]), np.array([[1.0], [0.0]]), np.zeros(2), np.zeros((2, 1)), np.zeros(2))
    box = torch.ones(1)
    batch = batch_of(store, [0])
    pi = torch.tensor([[0.0]])  # equals the other state's action
    picks = {}
    for beta in (0.1, 10.0):
        reg = PRDC(beta=beta)
        reg.setup(SetupSource(1, 1, -box, box, store=store), None)
        picks[beta] = reg.neighbour(batch, pi)[0].item()
    assert picks[10.0] == 1.0  # large β: the same state's action (→ TD3+BC's BC term)
    assert picks[0.1] == 0.0  # small β: the nearest action anywhere


def test_gradient_reaches_policy_only_through_the_squared_error():
    store = make_store()
    reg = setup_prdc(store)
    batch = batch_of(store, range(16))
    pi = torch.tanh(torch.randn(16, ACT)).requires_grad_(True)
    loss = reg.actor_terms(batch, pi, None).losses["dc_loss"]
    (g,) = torch.autograd.grad(loss, [pi])
    a_nn = reg.neighbour(batch, pi)[0]
    assert not a_nn.requires_grad  # the neighbour is a constant
    torch.testing.assert_close(g, 2 * (pi.detach() - a_nn) / (16 * ACT))


def test_certified_search_matches_the_tree_and_the_unindexed_path():
    store = make_store(n=3000)
    rows = np.random.default_rng(4).integers(0, 3000, 256)
    pi = torch.tanh(torch.randn(256, ACT, generator=torch.Generator().manual_seed(5)))
    fast = setup_prdc(store, candidates=8)  # auto on CPU: row-certified candidates + tree fallback
    assert fast.rows is not None
    tree = setup_prdc(store, backend="kdtree")
    brute = setup_prdc(store, backend="brute")
    a_fast, d_fast, ok = fast.neighbour(batch_of(store, rows), pi)
    a_plain, d_plain, none = fast.neighbour(batch_of(store, rows, with_indices=False), pi)
    a_tree, d_tree, _ = tree.neighbour(batch_of(store, rows), pi)
    a_brute, d_brute, _ = brute.neighbour(batch_of(store, rows), pi)
    assert none is None and ok is not None and 0 < ok.float().mean() < 1  # both paths exercised
    for d in (d_plain, d_tree, d_brute):
        torch.testing.assert_close(d_fast, d, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a_fast, a_tree)
    torch.testing.assert_close(a_fast, a_brute)
    torch.testing.assert_close(a_fast, a_plain)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"beta": 0.0}, "prdc.beta must be a finite number > 0"),
        ({"beta": -1.0}, "prdc.beta must be a finite number > 0"),
        ({"beta": float("inf")}, "prdc.beta must be a finite number > 0"),
        ({"k": 0}, "prdc.k must be an integer >= 1"),
        ({"k": 1.5}, "prdc.k must be an integer >= 1"),
        ({"backend": "annoy"}, "prdc.backend must be one of"),
        ({"candidates": 0}, "prdc.candidates must be an integer >= k"),
    ],
)
def test_bad_settings(cfg, match):
    with pytest.raises(RlregError, match=match):
        PRDC(**cfg)


def test_k_larger_than_dataset_and_online_use():
    box = torch.ones(ACT)
    with pytest.raises(RlregError, match="prdc.k=600 is larger than the dataset \\(500 transitions\\)"):
        setup_prdc(make_store(500), k=600, candidates=600)
    with pytest.raises(RlregError, match="prdc needs a dataset"):
        PRDC().setup(SetupSource(OBS, ACT, -box, box, store=None), None)


def test_prdc_beats_plain_td3_where_the_data_is_poor_and_stays_in_distribution(poor_half):
    """One-step task, r = 1 − 4(a − s₀/2)². The behaviour is near-optimal where s₁ > 0 and 0.5 off
    where s₁ ≤ 0, so Q's extrapolation beyond the data invites plain TD3 out of distribution; PRDC
    (α = 2.5, β = 2) stays near the dataset pairs and scores far better."""
    from rlreg.agents.td3 import TD3Agent, TD3Config

    from rlreg.knn import KNNIndex

    make_task, score_of = poor_half
    store, data_score = make_task()
    n = len(store)
    low, high = -torch.ones(1), torch.ones(1)
    near = KNNIndex(torch.cat([2 * store.data[:n, :2], store.data[:n, 2:3]], 1))
    result = {}
    for name, regs, alpha in (("td3", [], None), ("prdc", [PRDC()], 2.5)):
        cfg = TD3Config(actor_hidden=(64, 64), critic_hidden=(64, 64), alpha=alpha)
        agent = TD3Agent(cfg, 2, 1, low, high, regularizers=regs, seed=0)
        agent.setup(SetupSource(2, 1, low, high, store=store))
        g = torch.Generator().manual_seed(0)
        for _ in range(2000):
            agent.update(store.sample(256, g))
        score, test_s, act = score_of(agent.actor)
        d2, _ = near.query(torch.cat([2 * test_s, act], 1))
        result[name] = (score, d2.sqrt().mean().item())
    (td3_score, td3_ood), (prdc_score, prdc_ood) = result["td3"], result["prdc"]
    assert prdc_score > data_score > td3_score, result
    assert prdc_ood < 0.5 * td3_ood, result


def test_overlapped_and_lookahead_search_change_nothing():
    """The search started on a worker thread (during the critic step, or a whole update early through
    the sampler's look-ahead) answers the query the inline search answers: same weights, bit for bit;
    with the look-ahead every actor update's search was started early (none runs inline)."""
    from rlreg.agents.sources import OfflineSampler
    from rlreg.agents.td3 import TD3Agent, TD3Config

    store = make_store(n=800)
    box = torch.ones(ACT)
    weights = []
    for overlap, ahead in ((False, False), (True, False), (True, True)):
        reg = PRDC(overlap=overlap, candidates=8)
        agent = TD3Agent(
            TD3Config(actor_hidden=(32,), critic_hidden=(32,), alpha=2.5), OBS, ACT, -box, box, [reg]
        )
        sampler = OfflineSampler(store, 64, torch.device("cpu"), seed=0)
        lookahead = sampler.lookahead if ahead else None
        agent.setup(SetupSource(OBS, ACT, -box, box, store=store, lookahead=lookahead))
        inline = []
        search = reg.neighbour
        reg.neighbour = lambda *a, inline=inline, search=search: inline.append(1) or search(*a)
        for _ in range(15):
            agent.update(sampler.sample())
        weights.append(agent.actor.net.flat.detach().clone())
        assert len(inline) == (7 if not overlap else 0)
    assert torch.equal(weights[0], weights[1]) and torch.equal(weights[0], weights[2])


def test_prepared_search_is_recognised_by_value_not_identity():
    """A host that rebuilds the batch and recomputes π(s) (an SB3 train()) still gets the prepared
    search; a moved policy or other rows get a fresh, correct one."""
    store = make_store(n=500)
    box = torch.ones(ACT)
    reg = PRDC(candidates=8)
    view = types.SimpleNamespace(policy_version=0)
    reg.setup(SetupSource(OBS, ACT, -box, box, store=store), view)
    batch = store.sample(32, torch.Generator().manual_seed(1))
    pi = torch.tanh(torch.randn(32, ACT, generator=torch.Generator().manual_seed(2)))
    want = reg.actor_terms(batch, pi, view).losses["dc_loss"]
    reg.prepare_actor(batch, pi, view)
    rebuilt = type(batch)(*(t.clone() if t is not None else None for t in batch))
    assert reg._ready(rebuilt, 0) and not reg._ready(rebuilt, 1)
    assert torch.equal(reg.actor_terms(rebuilt, pi.clone(), view).losses["dc_loss"], want)
    reg.prepare_actor(batch, pi, view)
    view.policy_version = 1  # the actor moved: the prepared search is stale and not used
    moved = pi * 0.5
    got = reg.actor_terms(batch, moved, view).losses["dc_loss"]
    reg2 = PRDC(overlap=False, candidates=8)
    reg2.setup(SetupSource(OBS, ACT, -box, box, store=store), view)
    assert torch.equal(got, reg2.actor_terms(batch, moved, view).losses["dc_loss"])
