r"""PRDC: Policy Regularization with Dataset Constraint (Ran et al., ICML 2023, arXiv:2306.06569).

The actor maximises :math:`\mathbb{E}_s[\lambda Q_1(s,\pi(s)) - d^\beta_D(s,\pi(s))]` with

.. math::

    d^\beta_D(s, a) = \min_{(\hat s,\hat a)\in D}
        \big\| (\beta s) \oplus a - (\beta \hat s) \oplus \hat a \big\|,

implemented as in the official code: the dataset pair nearest to the query
:math:`(\beta s) \oplus \pi(s)` (states z-normalised *before* β, the policy action detached) is
found by exact search, and the penalty is the squared error to its action,

.. math::

    L_{DC} = \mathrm{mean}_{B,\,A}\big(\pi(s) - \hat a_{nn}\big)^2,

with no coefficient of its own (the balance is set by the agent's ``alpha``, λ = α / mean|Q1|, as
TD3+BC; λ is logged as ``train/lambda``). ``k`` picks the *k-th* neighbour alone (the official
``KDTree.query(k=[k])``), not an average. The keys cover every dataset transition the agent trains
on; the neighbour's action is a constant, so the gradient reaches the actor through π(s) only.

Deliberate deviations, neither of which changes the result:

* The search is :class:`rlreg.knn.RowCertifiedKNN` when batches carry their dataset rows (every
  offline batch does) on CPU: each row's 64 nearest dataset states (``candidates``) are found once, a query is
  answered from its row's candidates when the certificate proves them exact, and the rest go to a
  scipy ``cKDTree`` bounded by the candidates' distance. The candidate rows are cached in
  ``$RLREG_HOME/cache/knn`` (keyed by the normalized states' digest). Same neighbour as the official
  ``KDTree`` (ties aside), at a fraction of the cost. On CUDA the search is an exact brute force on
  the device. ``backend`` forces one method.
* Keys live on the training device as float32 (the official code keeps float32 keys in scipy).
* On CPU the search runs on a worker thread (``overlap``), started as soon as π(s) is known: the
  actor does not move until its own step, so the query is the one the official code makes. Where
  the data source draws batches one update ahead (``SetupSource.lookahead``, the offline sampler),
  the search for the next actor update's batch starts before the update in between (which does
  not move the actor: ``view.actor_due``), so it overlaps a whole update; otherwise
  ``prepare_actor`` starts it before the critic step. A prepared result is used only for the batch
  it was made for (same dataset rows, compared by value) and the policy it was made with (same
  ``view.policy_version``); anything else is searched again inline, so a host that computes π(s)
  its own way (an SB3 ``train()``) gets the same neighbours. With ``train.threads=1`` the worker
  has a core of its own.

Logged: ``dc_loss``; ``nn_distance`` (mean ‖query − neighbour key‖); ``certified`` (share of this
batch answered by the certificate, CPU only).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from rlreg.data.transitions import TensorBatch
from rlreg.errors import check, check_number
from rlreg.knn import BACKENDS, KNNIndex, RowCertifiedKNN
from rlreg.paths import rlreg_home
from rlreg.regularizers.base import Regularizer, RegularizerConfig, SetupSource, Terms, register

__all__ = ["PRDC", "PRDCConfig"]


@dataclass
class PRDCConfig(RegularizerConfig):
    beta: float = 2.0
    """State scale β of the keys (README runs: 2.0 for MuJoCo, 7.5 for antmaze; argparse default 1.0)."""
    k: int = 1
    """Use the k-th nearest neighbour alone (scipy ``k=[k]``); 1 in every published run."""
    backend: str = "auto"
    """kNN method: auto (certified candidates on CPU, brute force on CUDA), kdtree, brute, faiss."""
    candidates: int = 64
    """Dataset states per row searched before the exact fallback (auto backend on CPU); memory
    4 bytes × rows × candidates (256 MB for 1M rows). More certify more queries (docs/benchmarks.md)."""
    overlap: bool = True
    """On CPU, run the search on a worker thread during the critic step (same neighbours; False
    searches inline in the actor step)."""


@register
class PRDC(Regularizer):
    """Dataset-constraint term: MSE between π(s) and the action of the k-th nearest (βs, a) pair."""

    name = "prdc"
    families = frozenset({"actor_critic"})
    needs_dataset = True
    Config = PRDCConfig
    config: PRDCConfig

    def validate(self) -> None:
        c = self.config
        check_number(c.beta, "prdc.beta", strict=True, example="2.0 (MuJoCo) or 7.5 (antmaze)")
        check(
            isinstance(c.k, int) and not isinstance(c.k, bool) and c.k >= 1,
            f"prdc.k must be an integer >= 1, got {c.k!r}",
            "set prdc.k=1 (the nearest neighbour)",
        )
        check(
            c.backend in BACKENDS,
            f"prdc.backend must be one of {', '.join(BACKENDS)}, got {c.backend!r}",
            "use prdc.backend=auto",
        )
        check(
            isinstance(c.candidates, int) and c.candidates >= c.k,
            f"prdc.candidates must be an integer >= k ({c.k}), got {c.candidates!r}",
            f"raise prdc.candidates to at least {c.k}, or lower prdc.k (1 in every published run)",
        )

    def setup(self, source: SetupSource, view: Any) -> None:
        check(
            source.store is not None,
            "prdc needs a dataset: it constrains the policy to the dataset's state-action pairs",
            "train prdc offline with --dataset NAME (it has no online form)",
        )
        store, c = source.store, self.config
        n = len(store)
        check(c.k <= n, f"prdc.k={c.k} is larger than the dataset ({n} transitions)", f"use prdc.k <= {n}")
        o = self.obs_dim = source.obs_dim
        obs, act = store.data[:n, :o], store.data[:n, o : o + source.act_dim]
        self.keys = torch.cat([c.beta * obs, act], dim=1).contiguous()
        use_rows = c.backend == "auto" and self.keys.device.type == "cpu" and n > c.candidates
        self.index = KNNIndex(self.keys, backend="auto" if use_rows else c.backend)  # type: ignore[arg-type]
        self.rows = None
        self._pending: tuple[torch.Tensor, int, Future] | None = None  # (rows, policy version, search)
        self._pool: ThreadPoolExecutor | None = None
        self._view = view
        if source.lookahead is not None and self._overlaps():
            source.lookahead(self._prefetch)
        if use_rows:
            cache = rlreg_home() / "cache" / "knn"
            self.rows = RowCertifiedKNN(self.keys, o, c.candidates, self.index, cache_dir=cache)

    def neighbour(self, batch: TensorBatch, policy_action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(neighbour action, squared key distance, certified mask or None)`` for the batch."""
        q = torch.cat([self.config.beta * batch.observations, policy_action.detach()], dim=1)
        return self._search(batch, q)

    def _search(self, batch: TensorBatch, q: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.rows is not None and batch.indices is not None:
            d2, idx, ok = self.rows.query_rows(batch.indices, q, self.config.k)
        else:
            (d2, idx), ok = self.index.query(q, self.config.k), None
        return self.keys[idx, self.obs_dim :], d2, ok

    def _overlaps(self) -> bool:
        return self.config.overlap and self.keys.device.type == "cpu"

    def _start(self, batch: TensorBatch, policy_action: torch.Tensor, version: int) -> None:
        """Start the search for ``batch`` on the worker thread (scipy and torch release the GIL)."""
        self._drain()
        if batch.indices is None:
            return  # nothing to recognise the batch by later: search inline
        q = torch.cat([self.config.beta * batch.observations, policy_action.detach()], dim=1)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlreg-prdc")
        self._pending = (batch.indices, version, self._pool.submit(self._search, batch, q))

    def _drain(self) -> None:
        """Never leave a search running behind the caller's back."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending[2].result()

    def _ready(self, batch: TensorBatch, version: int | None) -> bool:
        """A search is pending for this batch's rows and this policy."""
        p = self._pending
        return (
            p is not None
            and version is not None
            and batch.indices is not None
            and p[1] == version
            and p[0].shape == batch.indices.shape
            and torch.equal(p[0], batch.indices)
        )

    def _prefetch(self, batch: TensorBatch) -> None:
        """Look-ahead: ``batch`` is the next update's. When that update runs the actor step and the
        one about to run does not (so π stays as it is now), start its search now."""
        view = self._view
        now = view.step + 1  # the update about to run
        if view.actor_due(now + 1) and not view.actor_due(now):
            with torch.no_grad():
                pi = view.policy(batch.observations)
            self._start(batch, pi, view.policy_version)

    def prepare_actor(self, batch: TensorBatch, policy_action: torch.Tensor, view: Any) -> None:
        """On CPU, start the search so it overlaps the critic step, unless the look-ahead already
        started it for this batch and policy. Same query, same neighbour."""
        version = getattr(view, "policy_version", None)  # None: a host that cannot say; search inline
        if version is not None and self._overlaps() and not self._ready(batch, version):
            self._start(batch, policy_action, version)

    def actor_terms(self, batch: TensorBatch, policy_action: torch.Tensor, view: Any) -> Terms:
        if self._ready(batch, getattr(view, "policy_version", None)):
            a_nn, d2, ok = self._pending[2].result()
            self._pending = None
        else:
            self._drain()
            a_nn, d2, ok = self.neighbour(batch, policy_action)
        stats = {"nn_distance": d2.sqrt().mean()}
        if ok is not None:
            stats["certified"] = ok.float().mean()
        return Terms(losses={"dc_loss": F.mse_loss(policy_action, a_nn)}, stats=stats)
