r"""SIREN, selective entropy regularization: a top-p nucleus, a peak-entropy mask and a self-anchor.

Jiang et al., *Rethinking Entropy Regularization in Large Reasoning Models* (SIREN), 2025,
arXiv:2509.25133; official code Linn3a/siren @ fa59a8dfbecf5c3936ed905d5902a06c0ca425ee (verl's
``dp_actor.py``: ``efficient_top_p_sampling`` and ``mask_by_quantile``; ``ray_trainer.py``: the
anchor). Reimplemented, vectorised; the official code loops over the batch in Python.

**Which actions count: the top-p entropy.** Sort π = softmax(z) descending, cumulative sums
c₁ ≤ c₂ ≤ …; the *exclusive* nucleus (the official code's) is 𝒩 = {j : c_j < p} (the token that
crosses p is left out, so a top-1 probability ≥ p leaves 𝒩 empty); ``inclusive=True`` takes the
textbook nucleus {j : c_{j−1} < p}. With π̃ = π / Σ_𝒩 π on 𝒩,

.. math::

    H_{top\text{-}p} = -\sum_{j\in\mathcal N} \tilde\pi_j \log \tilde\pi_j
    \qquad (0 \text{ if } |\mathcal N| \le 1)

which is the entropy of a softmax over the nucleus logits alone: it can move mass among plausible
actions but never into the tail. ``top_p ≥ 1`` is the full entropy. ``top_k`` keeps only the k
largest logits as candidates (the official code: 10000). The mask carries no gradient.

**Which positions count: the peak-entropy mask.** Per row (a response; one minibatch in classic
RL), positions with H_top-p strictly above the row's ``quantile`` (0.8, linear interpolation over
its valid positions): about the 20 % most uncertain ones.

**Aggregation.** ``seq-mean-token-mean``: H_sel = mean over rows of the mean over that row's
selected positions (a row with none selected counts 0); ``token-mean``: the mean over all selected.

**Loss, self-anchored.** ``L = c · (H_sel − H_anchor)²`` (``c = 0.005``, ``siren.sh``), gradient
``2c (H_sel − H_anchor) ∇H_sel``: it raises entropy below the anchor and lowers it above, a
constraint rather than a bonus. ``one_sided=True``: ``c · max(0, H_anchor − H_sel)²`` (prevents
collapse, allows sharpening). ``anchor="none"``: ``−c · H_sel`` (the paper's "w/o anchor" ablation,
a selective bonus). The anchor is

- ``"initial"`` (default): the detached H_sel of the first call. In a PPO update the first
  minibatch is evaluated with the initial policy before any step, so this is the initial policy's
  value on that minibatch; the latest official code takes the whole first rollout batch, which
  :meth:`Siren.anchor_from_logits` reproduces for token loops;
- ``"warmup:N"``: the value at the first call with ``view.step ≥ N`` (no loss before): a policy
  trained from scratch starts near log|A|, so the initial anchor would hold it near uniform;
- ``"target:K"``: ``K · log|A|`` (discrete actions; SAC-style target entropy);
- a number: that value.

It is kept in the state dict (save/load and exact resume keep it).

**Classic RL** (the ``entropy_terms`` hook, PPO): a ``Categorical``'s logits ``(N, A)`` form one
row of N positions (per-minibatch quantile, recomputed with the current policy each minibatch);
other distributions use their per-sample ``entropy()`` (``top_p`` must be 1). **Token-level**
(LM policies): :func:`selective_entropy` on logits ``(B, T, V)`` with a response mask, chunked
over T under activation checkpointing so that V = 32k–150k never keeps sorted or softmax copies
of the whole sequence for backward; :meth:`Siren.token_terms` adds the anchor and the loss.

Stats: ``entropy_sel``, ``entropy_topp``, ``entropy_full`` (no gradient), ``anchor`` (NaN until
set), ``deviation``, ``selected_frac``, ``nucleus_size``.

>>> import torch
>>> from rlreg.regularizers.siren import topp_entropy
>>> h, size = topp_entropy(torch.tensor([[0.5, 0.3, 0.2]]).log(), top_p=0.9)
>>> int(size), round(float(h), 4)  # c = 0.5, 0.8, 1.0: the nucleus is {0.5, 0.3}
(2, 0.6616)

A token loop (TRL, veRL, a plain loop)::

    siren = Siren(coef=0.005)
    siren.anchor_from_logits(logits.detach(), mask)        # once, the first rollout, initial policy
    terms = siren.token_terms(logits, mask)                # logits (B, T, V) with grad, mask (B, T)
    loss = pg_loss + sum(terms.losses.values())
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from rlreg.errors import RlregError, check, check_number
from rlreg.regularizers.base import Regularizer, RegularizerConfig, Terms, register

__all__ = ["Siren", "SirenConfig", "aggregate", "peak_mask", "selective_entropy", "topp_entropy"]

MODES = ("seq-mean-token-mean", "token-mean")


def _f32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits upcast to float32 (float32/float64 kept)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _nucleus(logits: torch.Tensor, top_p: float, inclusive: bool, top_k: int | None) -> torch.Tensor:
    """Boolean mask ``(..., V)`` of the top-p nucleus (no gradient)."""
    with torch.no_grad():
        probs = _f32(logits).softmax(-1)
        sorted_p, order = probs.sort(-1, descending=True)
        cum = sorted_p.cumsum(-1)
        keep = (cum - sorted_p) < top_p if inclusive else cum < top_p
        if top_k is not None and top_k < logits.shape[-1]:
            keep[..., top_k:] = False
        return torch.zeros_like(keep).scatter(-1, order, keep)


def topp_entropy(
    logits: torch.Tensor, top_p: float = 0.8, inclusive: bool = False, top_k: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(H_top-p, |𝒩|)`` of logits ``(..., V)``: the entropy of the softmax over the nucleus logits
    (0 when the nucleus has at most one member); ``top_p ≥ 1``: the full entropy, ``|𝒩| = V``."""
    v = logits.shape[-1]
    if top_p >= 1 and (top_k is None or top_k >= v):
        logp = _f32(logits).log_softmax(-1)
        size = torch.full(logits.shape[:-1], v, dtype=torch.long, device=logits.device)
        return -(logp.exp() * logp).sum(-1), size
    keep = _nucleus(logits, top_p, inclusive, top_k)
    size = keep.sum(-1)
    # an empty row keeps all its logits (finite; its H is replaced by 0 below), so that no -inf row
    # reaches log_softmax; masked_fill (not a product with 0) keeps the backward free of NaN
    keep = keep | (size == 0)[..., None]
    logp = _f32(logits).masked_fill(~keep, float("-inf")).log_softmax(-1).masked_fill(~keep, 0.0)
    h = -(logp.exp().masked_fill(~keep, 0.0) * logp).sum(-1)
    return torch.where(size > 1, h, torch.zeros_like(h)), size


def peak_mask(
    h: torch.Tensor, valid: torch.Tensor | None = None, quantile: float | None = 0.8
) -> torch.Tensor:
    """``(B, T)`` → bool: positions with ``h`` strictly above the row's ``quantile`` of its valid
    entries (``nanquantile``, linear); ``quantile=None``: every valid position."""
    with torch.no_grad():
        valid = torch.ones_like(h, dtype=torch.bool) if valid is None else valid.bool()
        if quantile is None:
            return valid
        x = h.detach().float().masked_fill(~valid, float("nan"))
        q = torch.nanquantile(x, quantile, dim=-1, keepdim=True)
        return valid & (x > q)


def aggregate(h: torch.Tensor, selected: torch.Tensor, mode: str = "seq-mean-token-mean") -> torch.Tensor:
    """H_sel of ``h (B, T)`` over ``selected``: ``seq-mean-token-mean`` (mean over rows of each row's
    mean, a row with none counting 0) or ``token-mean`` (the mean over all selected; 0 if none)."""
    check(
        mode in MODES, f"siren.mode must be one of {list(MODES)}, got {mode!r}", "set siren.mode=token-mean"
    )
    w = selected.to(h.dtype)
    if mode == "token-mean":
        return (h * w).sum() / w.sum().clamp_min(1)
    return ((h * w).sum(-1) / w.sum(-1).clamp_min(1)).mean()


def _chunk_entropies(
    logits: torch.Tensor, top_p: float, inclusive: bool, top_k: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    h, size = topp_entropy(logits, top_p, inclusive, top_k)
    with torch.no_grad():
        logp = _f32(logits.detach()).log_softmax(-1)
        full = -(logp.exp() * logp).sum(-1)
    return h, size.float(), full


def selective_entropy(
    logits: torch.Tensor,
    response_mask: torch.Tensor | None = None,
    *,
    top_p: float = 0.8,
    inclusive: bool = False,
    top_k: int | None = None,
    quantile: float | None = 0.8,
    mode: str = "seq-mean-token-mean",
    chunk_size: int | None = 256,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """H_sel of token logits ``(B, T, V)`` under a response mask ``(B, T)`` (the module docstring's
    top-p entropy, per-row peak mask and aggregation), and detached stats ``entropy_topp``,
    ``entropy_full``, ``selected_frac``, ``nucleus_size`` (means over valid positions).

    Chunked over T (``chunk_size`` positions at a time, ``None``: one chunk); with gradients each
    chunk runs under activation checkpointing, so backward recomputes its sort and softmax instead
    of keeping ``(B, T, V)`` copies.
    """
    check(logits.dim() == 3, f"logits must be (B, T, V), got shape {tuple(logits.shape)}", "pass (B, T, V)")
    b, t, _ = logits.shape
    mask = (
        torch.ones(b, t, dtype=torch.bool, device=logits.device) if response_mask is None else response_mask
    )
    check(
        tuple(mask.shape) == (b, t),
        f"response_mask has shape {tuple(mask.shape)}, the logits' positions are {(b, t)}",
        "pass a (B, T) mask of the response tokens",
    )
    mask = mask.bool()
    step = t if chunk_size is None else max(1, int(chunk_size))
    parts = []
    for s in range(0, t, step):
        chunk = logits[:, s : s + step]
        if chunk.requires_grad and chunk_size is not None:
            parts.append(checkpoint(_chunk_entropies, chunk, top_p, inclusive, top_k, use_reentrant=False))
        else:
            parts.append(_chunk_entropies(chunk, top_p, inclusive, top_k))
    h, size, full = (torch.cat(x, 1) for x in zip(*parts))
    selected = peak_mask(h, mask, quantile)
    h_sel = aggregate(h, selected, mode)
    n = mask.sum().clamp_min(1)
    with torch.no_grad():
        stats = {
            "entropy_topp": (h.detach() * mask).sum() / n,
            "entropy_full": (full * mask).sum() / n,
            "selected_frac": selected.sum() / n,
            "nucleus_size": (size * mask).sum() / n,
        }
    return h_sel, stats


@dataclass
class SirenConfig(RegularizerConfig):
    coef: float = 0.005
    """c, the weight of the squared deviation (official ``siren.sh`` entropy_coeff 0.005)."""
    top_p: float = 0.8
    """Nucleus mass p (official 0.8); ≥ 1 is the full entropy."""
    inclusive: bool = False
    """Textbook nucleus (with the crossing token) instead of the official exclusive one."""
    top_k: int | None = None
    """Only the k largest logits are nucleus candidates (official 10000; None: all)."""
    quantile: float | None = 0.8
    """Peak-entropy mask: positions above this per-row quantile (official mask_ratio 0.8; None: all)."""
    anchor: Any = "initial"
    """"initial", "warmup:N", "target:K" (K·log|A|), a number, or "none" (a selective bonus)."""
    one_sided: bool = False
    """Penalise only entropy below the anchor: ``c · max(0, H_anchor − H_sel)²``."""
    mode: str = "seq-mean-token-mean"
    """Aggregation of the selected entropies (token API; one row in classic RL)."""
    chunk_size: int | None = 256
    """Token API: positions per chunk (memory bound); None: one chunk."""


def _anchor_kind(anchor: Any) -> tuple[str, float]:
    """``(kind, number)`` of an anchor setting; raises on a malformed one."""
    if isinstance(anchor, (int, float)) and not isinstance(anchor, bool) and math.isfinite(anchor):
        return "value", float(anchor)
    if anchor in ("initial", "none"):
        return str(anchor), 0.0
    if isinstance(anchor, str) and anchor.count(":") == 1:
        kind, num = anchor.split(":")
        try:
            x = float(num)
        except ValueError:
            x = float("nan")
        if kind == "warmup" and x.is_integer() and x >= 0:
            return kind, x
        if kind == "target" and math.isfinite(x) and x >= 0:
            return kind, x
    raise RlregError(
        f"siren.anchor={anchor!r} is not an anchor",
        'use "initial", "warmup:N" (updates), "target:K" (K*log|A|), a number, or "none"',
    )


@register
class Siren(Regularizer):
    """SIREN's self-anchored selective entropy term at the ``entropy_terms`` hook, plus a token API."""

    name = "siren"
    families = frozenset({"policy_gradient"})
    Config = SirenConfig
    config: SirenConfig

    def __init__(self, config: SirenConfig | None = None, **kwargs: Any) -> None:
        self._anchor: float | None = None  # before validate(), which sets a numeric anchor
        super().__init__(config, **kwargs)

    def validate(self) -> None:
        c = self.config
        check_number(c.coef, "siren.coef", example="0.005")
        check_number(c.top_p, "siren.top_p", strict=True, example="0.8 (1 for the full entropy)")
        q = c.quantile
        check(
            q is None or (isinstance(q, (int, float)) and 0 <= q < 1),
            f"siren.quantile must lie in [0, 1) or be null, got {q!r}",
            "use 0.8 (the top 20 % positions) or null (all positions)",
        )
        for name in ("top_k", "chunk_size"):
            v = getattr(c, name)
            check(
                v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                f"siren.{name} must be a positive integer or null, got {v!r}",
                f"set siren.{name}=null or e.g. 256",
            )
        check(
            c.mode in MODES,
            f"siren.mode must be one of {list(MODES)}, got {c.mode!r}",
            "set siren.mode=token-mean",
        )
        for name in ("inclusive", "one_sided"):
            v = getattr(c, name)
            check(
                isinstance(v, bool),
                f"siren.{name} must be true or false, got {v!r}",
                f"set siren.{name}=false",
            )
        kind, value = _anchor_kind(c.anchor)
        if kind == "value":
            self._anchor = value

    # ------------------------------------------------------------------ the anchor
    @property
    def anchor(self) -> float | None:
        """H_anchor, or None while it is not set."""
        return self._anchor

    def set_anchor(self, value: float) -> None:
        """Fix H_anchor (e.g. restored from elsewhere)."""
        self._anchor = float(value)

    @torch.no_grad()
    def anchor_from_logits(self, logits: torch.Tensor, response_mask: torch.Tensor | None = None) -> float:
        """Set H_anchor to the selective entropy of a whole batch (the latest official code: the first
        rollout batch under the initial policy); returns it."""
        self._anchor = float(self._token_h(logits.detach(), response_mask)[0])
        return self._anchor

    def _resolve_anchor(self, h_sel: torch.Tensor, view: Any) -> float | None:
        """H_anchor for this call, set on first use per the config; None: no loss this call."""
        if self._anchor is not None:
            return self._anchor
        kind, x = _anchor_kind(self.config.anchor)
        if kind == "initial" or (kind == "warmup" and view is not None and view.step >= x):
            self._anchor = float(h_sel.detach())
        elif kind == "warmup" and view is None:
            raise RlregError(
                "siren.anchor=warmup:N counts updates, which the token API does not see",
                "set the anchor with anchor_from_logits(...) or siren.anchor=<number>",
            )
        elif kind == "target":
            if view is None or not getattr(view, "discrete", False):
                raise RlregError(
                    "siren.anchor=target:K is K*log|A| and needs discrete actions",
                    "use a number, initial or warmup:N with continuous actions",
                )
            self._anchor = x * math.log(view.num_actions)
        return self._anchor

    def _terms(self, h_sel: torch.Tensor, stats: dict[str, torch.Tensor], view: Any) -> Terms:
        c = self.config
        stats = dict(stats, entropy_sel=h_sel.detach())
        nan = torch.full((), float("nan"), device=h_sel.device)
        if c.anchor == "none":
            stats.update(anchor=nan, deviation=nan)
            return Terms(losses={"siren_loss": -c.coef * h_sel}, stats=stats)
        anchor = self._resolve_anchor(h_sel, view)
        if anchor is None:  # warming up
            return Terms(losses={"siren_loss": 0.0 * h_sel}, stats=dict(stats, anchor=nan, deviation=nan))
        dev = h_sel - anchor
        gap = (-dev).clamp_min(0) if c.one_sided else dev
        stats.update(anchor=torch.full((), anchor, device=h_sel.device), deviation=dev.detach())
        return Terms(losses={"siren_loss": c.coef * gap.square()}, stats=stats)

    # ------------------------------------------------------------------ the hooks
    def _token_h(self, logits: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        c = self.config
        return selective_entropy(
            logits,
            mask,
            top_p=c.top_p,
            inclusive=c.inclusive,
            top_k=c.top_k,
            quantile=c.quantile,
            mode=c.mode,
            chunk_size=c.chunk_size,
        )

    def token_terms(self, logits: torch.Tensor, response_mask: torch.Tensor | None = None) -> Terms:
        """The loss on token logits ``(B, T, V)`` with a response mask (any LM training loop)."""
        h_sel, stats = self._token_h(logits, response_mask)
        return self._terms(h_sel, stats, None)

    def entropy_terms(self, dist: Any, batch: Any, view: Any) -> Terms:
        c = self.config
        if isinstance(dist, torch.distributions.Categorical):
            h_sel, stats = selective_entropy(
                dist.logits[None],
                None,
                top_p=c.top_p,
                inclusive=c.inclusive,
                top_k=c.top_k,
                quantile=c.quantile,
                mode="token-mean",
                chunk_size=None,
            )
            return self._terms(h_sel, stats, view)
        check(
            c.top_p >= 1,
            f"siren.top_p={c.top_p}: a top-p nucleus needs discrete actions, and this policy is "
            f"{type(dist).__name__}",
            "set siren.top_p=1 (the distribution's own entropy) for continuous actions",
        )
        h = dist.entropy()[None]
        selected = peak_mask(h, None, c.quantile)
        h_sel = aggregate(h, selected, "token-mean")
        n = h.numel()
        stats = {
            "entropy_topp": h.detach().mean(),
            "entropy_full": h.detach().mean(),
            "selected_frac": selected.sum() / n,
            "nucleus_size": torch.full((), float("nan"), device=h.device),
        }
        return self._terms(h_sel, stats, view)

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict[str, Any]:
        return {
            "anchor": torch.tensor(
                float("nan") if self._anchor is None else self._anchor, dtype=torch.float64
            )
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        a = state.get("anchor")
        if a is not None:
            x = float(a)
            self._anchor = None if math.isnan(x) else x
