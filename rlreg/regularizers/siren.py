r"""SIREN, selective entropy regularization: a top-p nucleus, a peak-entropy mask and a self-anchor.

Jiang et al., *Rethinking Entropy Regularization in Large Reasoning Models* (SIREN), 2025,
arXiv:2509.25133; official code Linn3a/siren @ fa59a8dfbecf5c3936ed905d5902a06c0ca425ee (verl's
``dp_actor.py``: ``efficient_top_p_sampling`` and ``mask_by_quantile``; ``ray_trainer.py``: the
anchor). Reimplemented, vectorised; the official code loops over the batch in Python.

**Which actions count: the top-p entropy.** Sort π = softmax(z) descending (by logit), cumulative
sums c₁ ≤ c₂ ≤ …; the *exclusive* nucleus (the official code's) is 𝒩 = {j : c_j < p}: the token
that crosses p is left out, so a top-1 probability ≥ p leaves 𝒩 empty and p₁ < p ≤ p₁ + p₂ leaves
the singleton {1}. ``inclusive=True`` takes the textbook nucleus {j : c_{j−1} < p}. With
π̃ = π / Σ_𝒩 π on 𝒩,

.. math::

    H_{top\text{-}p} = -\sum_{j\in\mathcal N} \tilde\pi_j \log \tilde\pi_j
    \qquad (0 \text{ if } |\mathcal N| \le 1)

which is the entropy of a softmax over the nucleus logits alone (the others set to −∞): it depends
only on logit differences inside 𝒩, so it can move mass among plausible actions but never into the
tail. ``top_p ≥ 1`` is the full entropy (special-cased: the exclusive rule at p = 1 would drop the
last action). ``top_k`` keeps only the k largest logits as candidates (the official code: 10000).
The mask carries no gradient; H's gradient flows into the nucleus logits only.

**Which positions count: the peak-entropy mask.** Per row (a response; one minibatch in classic
RL), the positions with H_top-p strictly above the row's ``quantile`` (0.8, ``nanquantile`` with
linear interpolation over the row's valid positions): about the 20 % most uncertain ones.

**Aggregation.** ``seq-mean-token-mean`` (the official default): H_sel = the mean over rows of the
mean over that row's selected positions, a row with none selected counting 0 in the outer mean (the
latest official code); ``token-mean``: the mean over all selected positions (0 if none).

**Loss, self-anchored.** ``L = c · (H_sel − H_anchor)²`` (``c = 0.005``, the official ``siren.sh``),
gradient ``2c (H_sel − H_anchor) ∇H_sel``: it raises entropy below the anchor and lowers it above,
a constraint with a deviation-proportional coefficient rather than a bonus. ``one_sided=True``:
``c · max(0, H_anchor − H_sel)²`` (prevents collapse, allows sharpening). ``anchor="none"``:
``−c · H_sel`` (the "w/o anchor" ablation, a selective bonus). The anchor is

- ``"initial"`` (default): the detached H_sel of the first call. In a PPO update the first
  minibatch is evaluated with the initial policy before any optimizer step, so this is the initial
  policy's value *on that minibatch*; the latest official code instead takes the **whole first
  rollout batch** under the initial policy, which :meth:`Siren.anchor_from_logits` reproduces in a
  token loop (or :meth:`Siren.set_anchor` with a value computed elsewhere);
- ``"warmup:N"``: the value at the first call with ``view.step ≥ N`` (no loss before, stats
  still logged);
- ``"target:K"``: ``K · log|A|`` (discrete actions; a SAC-style target entropy);
- a number: that value.

It is part of the state dict (``extra_state``), so save/load and exact resume keep it.

**Classic RL** (the ``entropy_terms`` hook; SB3's PPO and rlreg's PPO): a ``Categorical``'s logits
``(N, A)`` form one row of N positions, so the quantile is per minibatch and recomputed with the
current policy each minibatch (SB3 shuffles the rollout across episodes: no per-trajectory rows),
and the aggregation is the token mean. Other distributions contribute their per-sample
``entropy()`` with the same mask and anchor (``top_p`` must be 1). A policy trained from scratch
starts near uniform, H ≈ log|A|, so the faithful initial anchor would hold the uncertain states near
maximum entropy: hence ``warmup:N``, ``target:K`` and ``one_sided``; the initial anchor fits
fine-tuning a pretrained policy (the paper's setting). With ``top_p=1``, ``quantile=None`` and
``anchor="none"`` the term is exactly the plain entropy bonus ``−c · mean H`` (tested against SB3's
``ent_coef``).

**Token level** (LM policies): :func:`selective_entropy` on logits ``(B, T, V)`` with a response
mask, chunked over T, each chunk under activation checkpointing when the logits need gradients, so
that V = 32k–150k never keeps sorted or softmax copies of the whole sequence for backward;
:meth:`Siren.token_terms` adds the anchor and the loss.

Stats (detached 0-d): ``entropy_sel``, ``entropy_topp``, ``entropy_full`` (no gradient),
``anchor`` (NaN until set), ``deviation`` (H_sel − H_anchor), ``selected_frac``, ``nucleus_size``.

>>> import torch
>>> from rlreg.regularizers.siren import Siren, topp_entropy
>>> h, size = topp_entropy(torch.tensor([[0.5, 0.3, 0.2]]).log(), top_p=0.9)
>>> int(size), round(float(h), 4)  # c = 0.5, 0.8, 1.0: the nucleus is {0.5, 0.3}
(2, 0.6616)

A token loop (TRL, veRL, a plain loop); here a linear head stands in for the LM:

>>> _ = torch.manual_seed(0)
>>> lm_head = torch.nn.Linear(16, 50)                      # hidden (B, T, 16) -> logits (B, T, V=50)
>>> logits = lm_head(torch.randn(4, 12, 16))
>>> mask = torch.ones(4, 12, dtype=torch.bool)             # the response tokens
>>> siren = Siren(coef=0.005)
>>> anchor = siren.anchor_from_logits(logits, mask)        # once: the first rollout, initial policy
>>> terms = siren.token_terms(logits, mask)                # every (micro)batch, with gradient
>>> pg_loss = torch.zeros(())                              # the loop's own policy-gradient loss
>>> loss = pg_loss + sum(terms.losses.values())
>>> loss.backward()
>>> sorted(terms.stats)
['anchor', 'deviation', 'entropy_full', 'entropy_sel', 'entropy_topp', 'nucleus_size', 'selected_frac']
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


def _entropy(logp: torch.Tensor) -> torch.Tensor:
    """``−Σ exp(logp)·logp`` over the last dimension; ``−inf`` entries (probability 0) add 0, as in
    ``Categorical.entropy`` (the clamp keeps ``0 · −inf`` from becoming NaN, value and gradient)."""
    return -(logp.exp() * logp.clamp_min(torch.finfo(logp.dtype).min)).sum(-1)


def _nucleus(logits: torch.Tensor, top_p: float, inclusive: bool, top_k: int | None) -> torch.Tensor:
    """Boolean mask ``(..., V)`` of the top-p nucleus among the ``top_k`` largest logits (no gradient).

    The sort is stable, so ties are broken by index, the same way when activation checkpointing
    recomputes the mask in backward. Logits of −∞ (masked tokens) are never members.
    """
    with torch.no_grad():
        z = _f32(logits)
        sorted_p, order = z.softmax(-1).sort(dim=-1, descending=True, stable=True)
        if top_p >= 1:
            keep = torch.ones_like(sorted_p, dtype=torch.bool)
        else:
            cum = sorted_p.cumsum(-1)
            keep = (cum - sorted_p) < top_p if inclusive else cum < top_p
        if top_k is not None and top_k < logits.shape[-1]:
            keep[..., top_k:] = False
        return torch.zeros_like(keep).scatter(-1, order, keep) & torch.isfinite(z)


def topp_entropy(
    logits: torch.Tensor, top_p: float = 0.8, inclusive: bool = False, top_k: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(H_top-p (...,), |𝒩| (...,) long)`` of logits ``(..., V)``.

    𝒩: the exclusive nucleus (default, the official code's: sorted by logit, inclusive cumulative
    probability strictly below ``top_p``) or, with ``inclusive=True``, the textbook one (with the
    crossing token), among the ``top_k`` largest logits (None: all). ``top_p ≥ 1``: every candidate
    (the full entropy when ``top_k`` is None). H is the entropy of the softmax over the nucleus
    logits (the others set to −∞), 0 when ``|𝒩| ≤ 1``; the mask carries no gradient, H's gradient
    flows into the nucleus logits only. Vectorised: sort, cumsum, mask, scatter.
    """
    v = logits.shape[-1]
    if top_p >= 1 and (top_k is None or top_k >= v):
        z = _f32(logits)
        size = torch.isfinite(z).sum(-1)
        return _entropy(z.log_softmax(-1)), size
    keep = _nucleus(logits, top_p, inclusive, top_k)
    size = keep.sum(-1)
    # an empty row keeps all its logits (its H is replaced by 0 below), so that no all −∞ row
    # reaches log_softmax; masked_fill (not a product with 0) keeps the backward free of NaN
    keep = keep | (size == 0)[..., None]
    h = _entropy(_f32(logits).masked_fill(~keep, float("-inf")).log_softmax(-1))
    return torch.where(size > 1, h, torch.zeros_like(h)), size


def peak_mask(
    h: torch.Tensor, valid: torch.Tensor | None = None, quantile: float | None = 0.8
) -> torch.Tensor:
    """``(B, T)`` → bool ``(B, T)``: per row, the positions with ``h`` strictly above the row's
    ``quantile`` of its valid entries (``nanquantile``, linear interpolation); ``quantile=None``:
    every valid position; ``valid=None``: every position is valid. No gradient."""
    with torch.no_grad():
        valid = torch.ones_like(h, dtype=torch.bool) if valid is None else valid.bool()
        if quantile is None:
            return valid
        x = h.detach().float().masked_fill(~valid, float("nan"))
        q = torch.nanquantile(x, quantile, dim=-1, keepdim=True)
        return valid & (x > q)


def aggregate(h: torch.Tensor, selected: torch.Tensor, mode: str = "seq-mean-token-mean") -> torch.Tensor:
    """H_sel of ``h (B, T)`` over ``selected``: ``seq-mean-token-mean`` (the mean over rows of each
    row's mean over its selected entries, a row with none counting 0 in the outer mean, as the latest
    official code) or ``token-mean`` (the mean over all selected entries; 0 if none)."""
    check(
        mode in MODES, f"siren.mode must be one of {list(MODES)}, got {mode!r}", "set siren.mode=token-mean"
    )
    w = selected.to(h.dtype)
    if mode == "token-mean":
        return (h * w).sum() / w.sum().clamp_min(1)
    return ((h * w).sum(-1) / w.sum(-1).clamp_min(1)).mean()


def _topp_float(
    logits: torch.Tensor, top_p: float, inclusive: bool, top_k: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    h, size = topp_entropy(logits, top_p, inclusive, top_k)
    return h, size.float()  # checkpoint: every output a float tensor


def _entropies(
    logits: torch.Tensor, top_p: float, inclusive: bool, top_k: int | None, chunk_size: int | None, ckpt: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(H_top-p, |𝒩|, H_full)``, each ``(B, T)``, chunk by chunk over T (``ckpt``: under
    activation checkpointing when the logits need gradients)."""
    t = logits.shape[1]
    step = t if chunk_size is None else int(chunk_size)
    hs, sizes, fulls = [], [], []
    for s in range(0, t, step):
        chunk = logits[:, s : s + step]
        if ckpt and chunk.requires_grad:
            h, size = checkpoint(_topp_float, chunk, top_p, inclusive, top_k, use_reentrant=False)
        else:
            h, size = _topp_float(chunk, top_p, inclusive, top_k)
        with torch.no_grad():
            fulls.append(_entropy(_f32(chunk.detach()).log_softmax(-1)))
        hs.append(h)
        sizes.append(size)
    return torch.cat(hs, 1), torch.cat(sizes, 1), torch.cat(fulls, 1)


def _selective(
    logits: torch.Tensor,
    mask: torch.Tensor,
    top_p: float,
    inclusive: bool,
    top_k: int | None,
    quantile: float | None,
    mode: str,
    chunk_size: int | None,
    ckpt: bool,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    h, size, full = _entropies(logits, top_p, inclusive, top_k, chunk_size, ckpt)
    selected = peak_mask(h, mask, quantile)
    h_sel = aggregate(h, selected, mode)
    with torch.no_grad():
        w = mask.to(h.dtype)
        n = w.sum().clamp_min(1)
        stats = {
            "entropy_topp": (h.detach() * w).sum() / n,
            "entropy_full": (full * w).sum() / n,
            "selected_frac": selected.sum() / n,
            "nucleus_size": (size * w).sum() / n,
        }
    return h_sel, stats


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
    """H_sel of token logits ``(B, T, V)`` under a response mask ``(B, T)`` (bool or 0/1; None: all
    positions): the module docstring's top-p entropy, per-row peak mask and aggregation. Returns the
    scalar H_sel (with gradient) and detached 0-d stats ``entropy_topp``, ``entropy_full`` (no
    gradient), ``selected_frac``, ``nucleus_size`` (means over the valid positions).

    Memory-bounded: the top-p entropy runs ``chunk_size`` positions at a time (None: one chunk), each
    chunk under activation checkpointing when the logits need gradients, so backward recomputes the
    chunk's sort and softmax instead of keeping ``(B, T, V)`` copies of them.
    """
    check(logits.dim() == 3, f"logits must be (B, T, V), got shape {tuple(logits.shape)}", "pass (B, T, V)")
    b, t, _ = logits.shape
    check(t >= 1 and b >= 1, f"logits of shape {tuple(logits.shape)} hold no positions", "pass B, T >= 1")
    mask = (
        torch.ones(b, t, dtype=torch.bool, device=logits.device) if response_mask is None else response_mask
    )
    check(
        tuple(mask.shape) == (b, t),
        f"response_mask has shape {tuple(mask.shape)}, the logits' positions are {(b, t)}",
        "pass a (B, T) mask of the response tokens",
    )
    return _selective(logits, mask.bool(), top_p, inclusive, top_k, quantile, mode, chunk_size, True)


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
    capturable = False  # Python-side state: the anchor is read to the host and set on first use
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
            q is None or (isinstance(q, (int, float)) and not isinstance(q, bool) and 0 < q < 1),
            f"siren.quantile must lie in (0, 1) or be null, got {q!r}",
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

    def _resolve_anchor(
        self, h_sel: torch.Tensor, step: int | None, discrete: bool, num_actions: int | None
    ) -> float | None:
        """H_anchor for this call, set on first use per the config; None: no loss this call."""
        if self._anchor is not None:
            return self._anchor
        kind, x = _anchor_kind(self.config.anchor)
        if kind == "warmup":
            check(
                step is not None,
                "siren.anchor=warmup:N counts updates, and this call does not say which update it is",
                "pass token_terms(..., step=<update number>), or use anchor_from_logits(...) or a number",
            )
            if step >= x:
                self._anchor = float(h_sel.detach())
        elif kind == "target":
            check(
                discrete and num_actions is not None,
                "siren.anchor=target:K is K*log|A| and needs a discrete action space (view.discrete)",
                "use a number, initial or warmup:N here",
            )
            self._anchor = x * math.log(num_actions)
        elif kind == "initial":
            self._anchor = float(h_sel.detach())  # one host read, on the first call only
        return self._anchor

    def _terms(
        self,
        h_sel: torch.Tensor,
        stats: dict[str, torch.Tensor],
        step: int | None,
        discrete: bool = False,
        num_actions: int | None = None,
    ) -> Terms:
        c = self.config
        stats = dict(stats, entropy_sel=h_sel.detach())
        nan = torch.full((), float("nan"), device=h_sel.device)
        if c.anchor == "none":  # the "w/o anchor" ablation: a selective bonus
            stats.update(anchor=nan, deviation=nan)
            return Terms(losses={"siren_loss": -c.coef * h_sel}, stats=stats)
        anchor = self._resolve_anchor(h_sel, step, discrete, num_actions)
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

    def token_terms(
        self, logits: torch.Tensor, response_mask: torch.Tensor | None = None, *, step: int | None = None
    ) -> Terms:
        """The loss on token logits ``(B, T, V)`` with a response mask ``(B, T)``, for any LM loop
        (TRL, veRL, a plain one). Anchor ``"initial"``: this call's H_sel on the first call unless
        set before (:meth:`anchor_from_logits`, :meth:`set_anchor`); ``"warmup:N"`` needs ``step``
        (the caller's update count); ``"target:K"`` is refused (a nucleus has no fixed |A|)."""
        h_sel, stats = self._token_h(logits, response_mask)
        return self._terms(h_sel, stats, step)

    def entropy_terms(self, dist: Any, batch: Any, view: Any) -> Terms:
        """The term at a policy-gradient agent's hook: a ``Categorical``'s logits ``(N, A)`` are one
        row of N positions (per-minibatch quantile; ``mode`` and ``chunk_size`` do not apply); any
        other distribution contributes its per-sample ``entropy()`` (trailing dimensions summed, as a
        diagonal Gaussian's), which needs ``top_p >= 1``."""
        c = self.config
        step = None if view is None else int(view.step)
        discrete = bool(getattr(view, "discrete", False))
        num_actions = getattr(view, "num_actions", None)
        if isinstance(dist, torch.distributions.Categorical):
            a = dist.logits.shape[-1]
            check(
                c.top_p >= 1 or c.inclusive or a > 2,
                f"siren.top_p={c.top_p} with {a} actions: the exclusive nucleus (cumulative mass < p) "
                "never holds two actions, so the term would always be 0",
                "set siren.top_p=1 (the full entropy) or siren.inclusive=true",
            )
            logits = dist.logits.reshape(1, -1, a)
            mask = torch.ones(logits.shape[:2], dtype=torch.bool, device=logits.device)
            args = (c.top_p, c.inclusive, c.top_k, c.quantile, "token-mean", None, False)
            h_sel, stats = _selective(logits, mask, *args)
            return self._terms(h_sel, stats, step, discrete, num_actions)
        h = self._continuous_entropy(dist)
        selected = peak_mask(h, None, c.quantile)
        h_sel = aggregate(h, selected, "token-mean")
        mean = h.detach().mean()
        stats = {
            "entropy_topp": mean,
            "entropy_full": mean,
            "selected_frac": selected.sum() / h.numel(),
            "nucleus_size": torch.full((), float("nan"), device=h.device),
        }
        return self._terms(h_sel, stats, step, discrete, num_actions)

    def _continuous_entropy(self, dist: Any) -> torch.Tensor:
        """``(1, N)`` per-sample entropies of a non-categorical policy distribution."""
        check(
            self.config.top_p >= 1,
            f"siren.top_p={self.config.top_p}: a top-p nucleus needs a categorical policy, and this one "
            f"is {type(dist).__name__}",
            "set siren.top_p=1 (the distribution's own entropy) for continuous actions",
        )
        try:
            h = dist.entropy()
        except NotImplementedError as e:
            raise RlregError(
                f"siren: the policy's distribution {type(dist).__name__} has no closed-form entropy",
                "use a policy with an analytic entropy (e.g. a diagonal Gaussian) with siren",
            ) from e
        return h.reshape(h.shape[0], -1).sum(-1)[None] if h.dim() > 1 else h.reshape(1, -1)

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict[str, Any]:
        """The anchor (NaN while unset) and whether it is set: save/load and resume keep it."""
        a = float("nan") if self._anchor is None else self._anchor
        return {"anchor": torch.tensor(a, dtype=torch.float64), "anchor_set": self._anchor is not None}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "anchor" not in state:
            return
        x = float(state["anchor"])
        is_set = bool(state.get("anchor_set", not math.isnan(x)))
        kind, value = _anchor_kind(self.config.anchor)
        self._anchor = x if is_set else (value if kind == "value" else None)
