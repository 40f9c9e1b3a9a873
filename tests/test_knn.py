"""Exact kNN backends against a numpy brute force; the row certificate never accepts a wrong row."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlreg.errors import RlregError
from rlreg.knn import KNNIndex, RowCertifiedKNN, brute_force_kth


def numpy_kth(keys: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k-th nearest key by the plain definition (float64 distances, stable order on ties)."""
    d = ((queries[:, None, :].astype(np.float64) - keys[None].astype(np.float64)) ** 2).sum(2)
    order = np.argsort(d, axis=1, kind="stable")
    rows = order[:, k - 1]
    return d[np.arange(len(queries)), rows], rows


def assert_same_kth(keys, queries, k, dist, rows):
    ref_d, ref_rows = numpy_kth(keys, queries, k)
    dist, rows = dist.cpu().numpy(), rows.cpu().numpy()
    np.testing.assert_allclose(dist, ref_d, rtol=1e-5, atol=1e-5)
    # a different row is only acceptable at a tie (same distance)
    got_d = ((queries.astype(np.float64) - keys[rows].astype(np.float64)) ** 2).sum(1)
    np.testing.assert_allclose(got_d, ref_d, rtol=1e-6, atol=1e-6)
    assert (rows == ref_rows).mean() > 0.95


@pytest.mark.parametrize("backend", ["kdtree", "brute"])
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backends_agree_with_numpy(backend, k, dtype):
    rng = np.random.default_rng(k)
    keys = rng.standard_normal((3000, 7)).astype(dtype)
    queries = rng.standard_normal((50, 7)).astype(dtype)
    index = KNNIndex(torch.as_tensor(keys), backend=backend)
    dist, rows = index.query(torch.as_tensor(queries), k)
    assert rows.dtype == torch.long and dist.dtype == torch.as_tensor(queries).dtype
    assert_same_kth(keys, queries, k, dist, rows)


def test_brute_force_chunks_and_expansion_rounding():
    # large offsets make ‖q‖² − 2q·k + ‖k‖² lose digits; the exact re-rank must still find the row
    rng = np.random.default_rng(0)
    keys = (1000.0 + rng.standard_normal((5000, 4))).astype(np.float32)
    queries = keys[rng.integers(0, 5000, 40)] + 1e-3 * rng.standard_normal((40, 4)).astype(np.float32)
    dist, rows = brute_force_kth(torch.as_tensor(keys), torch.as_tensor(queries), 1, chunk=777)
    assert_same_kth(keys, queries, 1, dist, rows)


def test_ties_return_an_equally_near_row():
    keys = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 5.0]])
    q = torch.zeros(1, 2)
    for backend in ("kdtree", "brute"):
        index = KNNIndex(keys, backend=backend)
        d1, r1 = index.query(q, 1)
        d2, r2 = index.query(q, 2)
        d3, r3 = index.query(q, 3)
        assert r1.item() == 0 and d1.item() == 0.0
        # rows 1 and 2 tie: either may be called 2nd or 3rd (scipy does not order ties)
        assert {r2.item(), r3.item()} <= {1, 2} and d2.item() == d3.item() == 1.0


def test_one_row_and_empty_queries():
    keys = torch.tensor([[1.0, 2.0]])
    for backend in ("kdtree", "brute"):
        index = KNNIndex(keys, backend=backend)
        d, r = index.query(torch.tensor([[0.0, 0.0], [3.0, 3.0]]), 1)
        assert r.tolist() == [0, 0] and d.tolist() == pytest.approx([5.0, 5.0])
        d, r = index.query(torch.zeros(0, 2), 1)
        assert d.shape == (0,) and r.shape == (0,)


def test_auto_backend_choice():
    assert KNNIndex(torch.zeros(10, 2)).backend == "brute"
    assert KNNIndex(torch.randn(30_000, 2)).backend == "kdtree"


def test_upper_bound_prunes_without_changing_the_answer():
    rng = np.random.default_rng(3)
    keys = rng.standard_normal((4000, 5)).astype(np.float32)
    queries = rng.standard_normal((30, 5)).astype(np.float32)
    index = KNNIndex(torch.as_tensor(keys), backend="kdtree")
    # a valid bound: the distance to some row (any row's distance is >= the nearest's)
    bound = torch.as_tensor(((queries - keys[:30]) ** 2).sum(1))
    dist, rows = index.query(torch.as_tensor(queries), 1, upper_bound=bound)
    assert_same_kth(keys, queries, 1, dist, rows)


def test_bad_input_is_named():
    with pytest.raises(RlregError, match="k=5 is larger than the number of keys"):
        KNNIndex(torch.zeros(4, 2)).query(torch.zeros(1, 2), 5)
    with pytest.raises(RlregError, match="k must be an integer >= 1"):
        KNNIndex(torch.zeros(4, 2)).query(torch.zeros(1, 2), 0)
    with pytest.raises(RlregError, match="non-empty"):
        KNNIndex(torch.zeros(0, 2))
    with pytest.raises(RlregError, match="NaN"):
        KNNIndex(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(RlregError, match="expected \\(B, 2\\)"):
        KNNIndex(torch.zeros(4, 2)).query(torch.zeros(1, 3), 1)
    with pytest.raises(RlregError, match="unknown kNN backend"):
        KNNIndex(torch.zeros(4, 2), backend="annoy")  # type: ignore[arg-type]


def trajectory_keys(rng: np.random.Generator, n: int, obs_dim: int, act_dim: int, beta: float) -> np.ndarray:
    """Random-walk states (as trajectories are) with smooth actions, PRDC-style keys (βs ⊕ a)."""
    steps = rng.standard_normal((n, obs_dim)) * 0.1
    starts = rng.random(n) < 0.02
    states = np.cumsum(steps, 0)
    states[starts] = rng.standard_normal((starts.sum(), obs_dim))
    actions = np.tanh(states[:, :act_dim] + 0.3 * rng.standard_normal((n, act_dim)))
    return np.concatenate([beta * states, actions], 1).astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    m=st.integers(1, 12),
    k=st.integers(1, 3),
    noise=st.sampled_from([0.0, 0.05, 0.5, 2.0]),
    fallback=st.sampled_from(["brute", "kdtree"]),
)
def test_certificate_never_accepts_a_wrong_neighbour(seed, m, k, noise, fallback):
    rng = np.random.default_rng(seed)
    obs_dim, act_dim = 3, 2
    keys = trajectory_keys(rng, 400, obs_dim, act_dim, beta=2.0)
    if seed % 3 == 0:
        keys[1::7] = keys[::7][: len(keys[1::7])]  # duplicated rows: ties everywhere
    k = min(k, m)
    index = RowCertifiedKNN(
        torch.as_tensor(keys), obs_dim, m=m, fallback=KNNIndex(torch.as_tensor(keys), "brute")
    )
    rows = rng.integers(0, 400, 64)
    queries = keys[rows].copy()
    queries[:, obs_dim:] += noise * rng.standard_normal((64, act_dim)).astype(np.float32)
    dist, got, ok = index.query_rows(torch.as_tensor(rows), torch.as_tensor(queries), k)
    ref_d, _ = numpy_kth(keys, queries, k)
    # every answer, certified or not, is at the true k-th distance
    np.testing.assert_allclose(dist.numpy(), ref_d, rtol=1e-5, atol=1e-6)
    got_d = ((queries.astype(np.float64) - keys[got.numpy()].astype(np.float64)) ** 2).sum(1)
    np.testing.assert_allclose(got_d, ref_d, rtol=1e-5, atol=1e-6)
    # and the certificate alone (candidates only) is right wherever it claims to be
    cand = index.neighbours[torch.as_tensor(rows)].numpy()
    cand_d = ((queries[:, None, :].astype(np.float64) - keys[cand].astype(np.float64)) ** 2).sum(2)
    kth_cand = np.sort(cand_d, 1)[:, k - 1]
    np.testing.assert_allclose(kth_cand[ok.numpy()], ref_d[ok.numpy()], rtol=1e-5, atol=1e-6)


def test_certified_fraction_is_high_near_the_data():
    rng = np.random.default_rng(0)
    keys = trajectory_keys(rng, 20_000, 5, 2, beta=2.0)
    index = RowCertifiedKNN(torch.as_tensor(keys), 5, m=16)
    rows = rng.integers(0, 20_000, 256)
    near = keys[rows].copy()
    near[:, 5:] += 0.01 * rng.standard_normal((256, 2)).astype(np.float32)
    _, _, ok = index.query_rows(torch.as_tensor(rows), torch.as_tensor(near), 1)
    assert ok.float().mean() > 0.9
    assert index.certified_fraction == pytest.approx(ok.float().mean().item())
    with pytest.raises(RlregError, match="exceeds the 16 candidates"):
        index.query_rows(torch.as_tensor(rows), torch.as_tensor(near), 17)


def test_state_neighbours_cache_is_reused(tmp_path):
    rng = np.random.default_rng(0)
    states = rng.standard_normal((300, 3)).astype(np.float32)
    first = RowCertifiedKNN.state_neighbours(states, 5, cache_dir=tmp_path)
    (path,) = tmp_path.glob("rows-*-m5.npy")
    np.save(path, np.zeros_like(first))  # prove the second call reads the file
    assert (RowCertifiedKNN.state_neighbours(states, 5, cache_dir=tmp_path) == 0).all()
    path.write_bytes(b"damaged")  # a damaged file is recomputed
    np.testing.assert_array_equal(RowCertifiedKNN.state_neighbours(states, 5, cache_dir=tmp_path), first)
    assert first.dtype == np.int32 and (first[:, 0] == np.arange(300)).all()
