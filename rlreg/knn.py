r"""Exact k-th nearest-neighbour search over a fixed set of keys (PRDC's dataset constraint).

One interface, :class:`KNNIndex`, with exact Euclidean backends chosen by device and size:

==============  ==============================================================================
``"kdtree"``    scipy ``cKDTree`` (CPU), as PRDC's official code. Exact (``eps=0``).
``"brute"``     chunked brute force in torch (GPU, or CPU for small key sets). Distances are
                ranked with ``‖q‖² − 2 q·k + ‖k‖²`` and the best few per query are re-ranked with
                the direct ``‖q − k‖²``, so rounding of the expansion cannot pick a wrong row.
``"faiss"``     ``faiss.IndexFlatL2`` (optional extra ``rlreg[faiss]``), also re-ranked.
==============  ==============================================================================

:class:`RowCertifiedKNN` makes PRDC's per-step search nearly free. PRDC's keys are
``x_j = (β s_j) ⊕ a_j`` and every query is ``q = (β s_i) ⊕ π(s_i)`` for a dataset row ``i``. For
each row, the ``M`` rows nearest in the *state* part are found once. For a row ``j`` outside that
candidate set, ``‖q − x_j‖² ≥ ‖β s_i − β s_j‖² ≥ r_i²`` where ``r_i`` is the state distance of the
``M``-th candidate. So if the ``k``-th smallest candidate distance is ``≤ r_i²`` it is the exact
``k``-th neighbour over all rows (a certificate; ties aside). Queries without a certificate fall
back to an exact index, searched within the candidate's distance (an upper bound that prunes the
tree). The certified fraction is reported.

``k`` is 1-based and means the *k-th* neighbour alone (scipy's ``k=[k]``), as PRDC uses it.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from rlreg.errors import RlregError, check

__all__ = ["KNNIndex", "RowCertifiedKNN", "BACKENDS", "brute_force_kth"]

BACKENDS = ("auto", "kdtree", "brute", "faiss")
Backend = Literal["auto", "kdtree", "brute", "faiss"]
# below this many keys a CPU brute force beats building and querying a tree
_SMALL = 20_000
# how many of the best expanded-formula rows are re-ranked exactly (covers rounding of ‖q‖²−2q·k+‖k‖²)
_RERANK = 8


def _check_k(k: int, n: int) -> None:
    check(
        isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1,
        f"k must be an integer >= 1 (the k-th nearest neighbour), got {k!r}",
        "use k=1 for the nearest neighbour",
    )
    check(
        k <= n,
        f"k={k} is larger than the number of keys ({n})",
        f"use k <= {n}, or index more data",
    )


def _rerank(
    keys: torch.Tensor, queries: torch.Tensor, cand: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-th of the candidate rows ``cand`` ``(B, C)`` by the direct ``‖q − x‖²`` (stable on ties)."""
    exact = (keys[cand] - queries[:, None, :]).square().sum(2)
    dk, pos = torch.sort(exact, dim=1, stable=True)
    return dk[:, k - 1], cand.gather(1, pos[:, k - 1 : k])[:, 0]


def brute_force_kth(
    keys: torch.Tensor,
    queries: torch.Tensor,
    k: int = 1,
    chunk: int = 1 << 16,
    prepared: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k-th neighbour by chunked brute force: ``(squared distance (B,), row (B,))``.

    Ranking uses ``‖q‖² − 2 q·x + ‖x‖²`` on data centred at the keys' mean (distances do not change,
    rounding shrinks), then the best ``k + 7`` rows per query are re-ranked by ``‖q − x‖²``.
    ``prepared`` = ``(centre, centred keys, their squared norms)`` saves recomputing them.
    """
    n, b = keys.shape[0], queries.shape[0]
    _check_k(k, n)
    if b == 0:
        return queries.new_zeros(0), torch.zeros(0, dtype=torch.long, device=queries.device)
    centre, ck, ck2 = prepared if prepared is not None else _prepare(keys)
    cq = queries - centre
    keep = min(n, k + _RERANK - 1)
    q2 = cq.square().sum(1, keepdim=True)
    best_d = best_i = None
    for start in range(0, n, chunk):
        d = torch.addmm(q2 + ck2[start : start + chunk], cq, ck[start : start + chunk].T, alpha=-2.0)
        dv, di = torch.topk(d, min(keep, d.shape[1]), dim=1, largest=False)
        di = di + start
        if best_d is None:
            best_d, best_i = dv, di
        else:
            best_d, order = torch.topk(torch.cat([best_d, dv], 1), keep, dim=1, largest=False)
            best_i = torch.cat([best_i, di], 1).gather(1, order)
    return _rerank(keys, queries, best_i, k)


def _prepare(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    centre = keys.mean(0)
    ck = keys - centre
    return centre, ck, ck.square().sum(1)


class KNNIndex:
    """Exact k-th nearest neighbour of queries among fixed ``keys`` ``(N, D)``.

    Args:
        keys: the points to search, float32 or float64, on any device.
        backend: ``"auto"`` (brute force on CUDA or for fewer than 20k keys, else a KD-tree),
            ``"kdtree"``, ``"brute"`` or ``"faiss"``.
        workers: scipy query threads (-1 = all cores, as PRDC).
    """

    def __init__(self, keys: torch.Tensor, backend: Backend = "auto", workers: int = -1) -> None:
        keys = torch.as_tensor(keys)
        check(
            keys.dim() == 2 and keys.shape[0] > 0 and keys.shape[1] > 0,
            f"kNN keys must be a non-empty (N, D) array, got shape {tuple(keys.shape)}",
            "index at least one row of at least one feature",
        )
        check(
            bool(torch.isfinite(keys).all()),
            "kNN keys contain NaN or inf",
            "clean the dataset (or its normalisation) before building the index",
        )
        check(backend in BACKENDS, f"unknown kNN backend {backend!r}", f"choose one of {', '.join(BACKENDS)}")
        if backend == "auto":
            backend = "brute" if keys.device.type == "cuda" or keys.shape[0] < _SMALL else "kdtree"
        self.keys = keys
        self.backend = backend
        self.workers = workers
        self._tree = None
        self._faiss = None
        self._prepared = _prepare(keys) if backend == "brute" else None
        if backend == "kdtree":
            from scipy.spatial import cKDTree

            self._tree = cKDTree(keys.detach().cpu().numpy())
        elif backend == "faiss":
            try:
                import faiss
            except ImportError as e:
                raise RlregError(
                    "kNN backend 'faiss' needs the faiss package", "pip install 'rlreg[faiss]' or use 'auto'"
                ) from e
            self._faiss = faiss.IndexFlatL2(keys.shape[1])
            self._faiss.add(np.ascontiguousarray(keys.detach().cpu().numpy(), np.float32))

    def __len__(self) -> int:
        return self.keys.shape[0]

    def query(
        self, queries: torch.Tensor, k: int = 1, upper_bound: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The k-th nearest key of each query: ``(squared distance (B,), row index (B,))``.

        ``upper_bound`` (KD-tree only; squared distances ``(B,)``) is a known bound on each query's
        k-th distance: the search prunes with it. It must be valid (at least the true k-th
        distance), e.g. the distance to some k keys.
        """
        _check_k(k, len(self))
        queries = torch.as_tensor(queries)
        check(
            queries.dim() == 2 and queries.shape[1] == self.keys.shape[1],
            f"kNN queries have shape {tuple(queries.shape)}, expected (B, {self.keys.shape[1]})",
            "build queries with the same features as the keys",
        )
        if self.backend == "brute":
            q = queries.to(self.keys.device, self.keys.dtype)
            return brute_force_kth(self.keys, q, k, prepared=self._prepared)
        q = queries.detach().cpu().numpy()
        if q.shape[0] == 0:
            return queries.new_zeros(0), torch.zeros(0, dtype=torch.long, device=queries.device)
        if self.backend == "faiss":
            _, cand = self._faiss.search(np.ascontiguousarray(q, np.float32), min(len(self), k + _RERANK - 1))
            cand_t = torch.as_tensor(cand, device=self.keys.device)
            exact = (
                (self.keys[cand_t] - torch.as_tensor(q, dtype=self.keys.dtype)[:, None, :]).square().sum(2)
            )
            dk, pos = torch.sort(exact, dim=1, stable=True)
            d, i = dk[:, k - 1], cand_t.gather(1, pos)[:, k - 1]
        else:
            bound = math.inf
            if upper_bound is not None:
                # sqrt, plus a margin so the bounding keys themselves lie inside the search ball
                ub = upper_bound.detach().cpu().double().sqrt().numpy()
                bound = ub * (1 + 1e-6) + 1e-9
            d, i = self._query_tree(q, k, bound)
            d, i = torch.as_tensor(d).square(), torch.as_tensor(i)
        return d.to(queries.device, queries.dtype), i.to(queries.device)

    def _query_tree(self, q: np.ndarray, k: int, bound: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if np.ndim(bound):
            # scipy takes one bound per call: query at most 4 groups of similar bounds (at least 8
            # queries each), each with its largest bound (valid for every member), so one far query
            # does not loosen the pruning of the others; large groups use all workers
            order = np.argsort(bound)
            d = np.empty(q.shape[0])
            i = np.empty(q.shape[0], dtype=np.int64)
            for g in np.array_split(order, max(1, min(4, q.shape[0] // 8))):
                d[g], i[g] = self._query_tree(q[g], k, float(bound[g].max()))
            return d, i
        limit = float(bound)
        workers = self.workers if q.shape[0] >= 32 else 1
        d, i = self._tree.query(q, k=[k], workers=workers, distance_upper_bound=limit)
        d, i = d[:, 0], i[:, 0].astype(np.int64)
        missing = ~np.isfinite(d)  # only possible with an invalid bound: search again unbounded
        if missing.any() and math.isfinite(limit):
            d[missing], i[missing] = self._query_tree(q[missing], k, math.inf)
        return d, i


class RowCertifiedKNN:
    """Exact k-th neighbour for queries whose first ``split`` features equal those of a key row.

    Built once: for every key row its ``m`` nearest rows in the first ``split`` features (itself
    included) and the squared distance ``r²`` to the ``m``-th. :meth:`query_rows` then searches
    only those ``m`` candidates and certifies the answer when the candidates' k-th distance is
    ``≤ r²``; other queries go to ``fallback`` (an exact :class:`KNNIndex` over the same keys).

    Args:
        keys: ``(N, D)`` keys; columns ``[:split]`` are the part queries share with their row.
        split: number of shared leading features (PRDC: the observation size).
        m: candidates per row (memory ``N × m`` int32).
        fallback: exact index for uncertified queries (built over ``keys`` when None).
        neighbours: precomputed ``(N, m)`` candidate rows, optional.
        cache_dir: where to cache the candidate rows between runs (see :meth:`state_neighbours`).
    """

    def __init__(
        self,
        keys: torch.Tensor,
        split: int,
        m: int = 32,
        fallback: KNNIndex | None = None,
        neighbours: np.ndarray | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        keys = torch.as_tensor(keys)
        check(
            0 < split <= keys.shape[1], f"split must be in [1, {keys.shape[1]}], got {split}", "pass obs_dim"
        )
        check(isinstance(m, int) and m >= 1, f"m must be an integer >= 1, got {m!r}", "use e.g. m=32")
        self.keys, self.split = keys, split
        self.m = min(m, keys.shape[0])
        self.fallback = fallback if fallback is not None else KNNIndex(keys)
        if neighbours is None:
            neighbours = self.state_neighbours(
                keys[:, :split].detach().cpu().numpy(), self.m, cache_dir=cache_dir
            )
        check(
            neighbours.shape == (keys.shape[0], self.m),
            f"precomputed neighbours have shape {neighbours.shape}, expected {(keys.shape[0], self.m)}",
            "rebuild them for these keys and m",
        )
        # int32 rows (half the memory of int64; index_select takes either)
        self.neighbours = torch.as_tensor(neighbours.astype(np.int32), device=keys.device)
        s = keys[:, :split]
        self.radius2 = (s.index_select(0, self.neighbours[:, -1]) - s).square().sum(1)
        self.queries = 0
        self._certified = torch.zeros((), dtype=torch.long, device=keys.device)

    @staticmethod
    def state_neighbours(
        states: np.ndarray, m: int, workers: int = -1, cache_dir: str | os.PathLike | None = None
    ) -> np.ndarray:
        """``(N, m)`` rows nearest to each row in ``states`` (int32).

        With ``cache_dir`` the result is stored as ``rows-<digest of states>-m<m>.npy`` and reused
        (it depends on the states only, not on β, which scales all state distances alike).
        """
        states = np.ascontiguousarray(states, np.float32)
        path = None
        if cache_dir is not None:
            digest = hashlib.blake2b(states.tobytes(), digest_size=16)
            digest.update(repr(states.shape).encode())
            path = Path(cache_dir) / f"rows-{digest.hexdigest()}-m{m}.npy"
            if path.is_file():
                try:
                    cached = np.load(path)
                    if cached.shape == (states.shape[0], m):
                        return cached
                except (OSError, ValueError):
                    pass  # a damaged cache file is recomputed and replaced
        from scipy.spatial import cKDTree

        _, idx = cKDTree(states).query(states, k=m, workers=workers)
        idx = idx.reshape(states.shape[0], m).astype(np.int32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, idx)
            os.replace(tmp, path)
        return idx

    @property
    def certified_fraction(self) -> float:
        """Share of queries answered by the certificate since construction (nan before any)."""
        return int(self._certified) / self.queries if self.queries else float("nan")

    def query_rows(
        self, rows: torch.Tensor, queries: torch.Tensor, k: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(squared distance, row, certified mask)`` of each query's k-th neighbour.

        ``queries[b, :split]`` must equal ``keys[rows[b], :split]`` (the certificate relies on it).
        """
        _check_k(k, self.keys.shape[0])
        check(
            k <= self.m,
            f"k={k} exceeds the {self.m} candidates per row",
            f"build RowCertifiedKNN with m >= {k}",
        )
        b = rows.shape[0]
        cand = self.neighbours.index_select(0, rows)  # (B, m)
        x = self.keys.index_select(0, cand.view(-1)).view(b, self.m, -1)
        d = x.sub_(queries[:, None, :]).square_().sum(2)
        dk, pos = torch.topk(d, k, dim=1, largest=False, sorted=True)
        dist, idx = dk[:, k - 1], cand.gather(1, pos[:, k - 1 : k])[:, 0].long()
        ok = dist <= self.radius2.index_select(0, rows)
        self.queries += int(rows.shape[0])
        self._certified += ok.sum()
        if queries.device.type == "cuda":
            # no host sync on the GPU: an exact brute force for all rows costs less than a round trip
            fd, fi = self.fallback.query(queries, k)
            return torch.where(ok, dist, fd), torch.where(ok, idx, fi), ok
        if not bool(ok.all()):
            bad = (~ok).nonzero()[:, 0]
            fd, fi = self.fallback.query(
                queries[bad], k, upper_bound=dist[bad] if self.fallback.backend == "kdtree" else None
            )
            dist = dist.index_put((bad,), fd)
            idx = idx.index_put((bad,), fi)
        return dist, idx, ok
