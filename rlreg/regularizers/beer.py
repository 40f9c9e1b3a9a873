r"""BEER: Bellman-bound representation-rank regularization of the critic (He, Zhou, Fang & Maghsudi,
*Adaptive Regularization of Representation Rank as an Implicit Constraint of Bellman Equation*,
ICLR 2024, arXiv:2404.12754; official code github.com/sweetice/BEER-ICLR2024 @ 81834e5, ``BEER.py``).

With the critic's penultimate features φ and last-layer weight w (``Q = wᵀφ + b``), the Bellman
equation ``Q(s, a) = r + γ Q(s', a')`` gives ``⟨φ(s,a) − γφ(s',a'), w⟩ = r`` (bias ignored), and by
Cauchy–Schwarz ``|r| ≤ ‖φ − γφ'‖‖w‖``, i.e. a per-sample upper bound on the cosine of consecutive
representations:

.. math::

    \cos(\phi, \phi') \le B = \frac{\|\phi\|^2 + \gamma^2 \|\phi'\|^2 - r^2 / \|w\|^2}
                                   {2 \gamma \|\phi\| \|\phi'\|}

The critic loss gains the hinge penalty (``critic_terms``)

.. math::

    L_{BEER} = \beta \cdot \operatorname{mean}_B
        \operatorname{ReLU}\big(\cos(\phi(s,a), \bar\phi(s', \bar\pi(s'))) - B\big),
    \qquad \beta = 10^{-3}

It fires only where the cosine exceeds the bound (the "adaptive" part). The gradient flows only
through φ(s, a) (the online critic at the batch, so through its feature layers); B, the next
features and ‖w‖ are constants (the paper's stop-gradients). φ̄(s', π̄(s')) is the target critic
at the target actor's next action, the one the TD target used (the agent computes both in the same
forward pass; no second pass).

Which next features enter the bound's numerator (``next_features``):

* ``"online"`` (default, the issue's and the official code's formula): ``‖φ'‖²`` of the **online**
  critic at the online actor's next action, φ(s', π(s')), while the denominator and the cosine use
  the target's φ̄(s', π̄(s')). The two differ by the target's lag, and that difference matters:
  with a small reward term, ``B ≈ (‖φ‖² + γ²‖φ'‖²)/(2γ‖φ‖‖φ̄'‖)`` drops below 1 as soon as
  ``‖φ'‖ < ‖φ̄'‖`` by more than about ``1 − γ`` (relative), so the hinge can fire;
* ``"target"``: φ̄(s', π̄(s')) throughout, the bound as derived. By AM-GM ``‖φ‖² + γ²‖φ̄'‖² ≥
  2γ‖φ‖‖φ̄'‖``, so ``B ≥ 1 − r²/(2γ‖w‖²‖φ‖‖φ̄'‖)``: the penalty fires only where the reward term
  is large, ``|r| > |‖φ‖ − γ‖φ̄'‖|·‖w‖`` roughly (measured on DMC in ``docs/benchmarks.md``: never
  in 40k steps).

``γ`` in the bound is the agent's discount; ``parity=True`` keeps the official code's quirks for
reproduction: ``γ = 0.99`` inside the bound whatever the agent's discount, and the online numerator.

The cosine uses ``eps = 1e-6`` (as ``F.cosine_similarity`` in the official code); the bound's
denominator is clamped at 1e-6 and ``‖w‖²`` at 1e-12, so dead features (φ = 0) give a finite
penalty instead of NaN. With twin critics (BEER on TD3) each head gets its own penalty from its own
features and last-layer weight, and the term is their sum (as the heads' TD losses are summed).

Logged: ``cos`` (batch mean), ``bound`` (mean B), ``active`` (fraction of samples with
cos > B), and every ``srank_every`` updates ``srank``, the effective rank of the online critic's
features on a fixed probe batch (the first ``probe_size`` samples of the first batch):
``srank_δ(Φ) = min{k : Σ_{i≤k} σ_i / Σ_i σ_i ≥ 1 − δ}`` with δ = 0.01 (Kumar et al. 2021,
arXiv:2010.14498), the smallest over the heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from rlreg.data.transitions import TensorBatch
from rlreg.errors import check, check_number
from rlreg.regularizers.base import CriticContext, Regularizer, RegularizerConfig, Terms, register

__all__ = ["BEER", "BEERConfig", "beer_bound", "srank"]

PARITY_GAMMA = 0.99
"""The discount hard-coded inside the bound by the official code."""


@dataclass
class BEERConfig(RegularizerConfig):
    beta: float = 1e-3
    """Weight β of the penalty (official code: 1e-3)."""
    parity: bool = False
    """Reproduce the official code's bound exactly (γ = 0.99 inside it, ``next_features="online"``)."""
    next_features: str = "online"
    """Next features of the bound's numerator: ``online`` φ(s', π(s')) (official) or ``target``
    φ̄(s', π̄(s')) (consistent with the denominator; see the module docstring)."""
    srank_every: int = 1000
    """Updates between ``srank`` measurements on the probe batch (0: never)."""
    srank_delta: float = 0.01
    """δ of the effective rank (Kumar et al. 2021: 0.01)."""
    probe_size: int = 256
    """Samples of the first batch kept as the fixed probe batch of ``srank``."""


def beer_bound(
    features: torch.Tensor,
    next_norm_sq: torch.Tensor,
    next_target_features: torch.Tensor,
    rewards: torch.Tensor,
    w_sq: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """``B = (‖φ‖² + γ²·next_norm_sq − r²/‖w‖²) / (2γ‖φ‖‖φ̄'‖)`` per sample (no gradient): features
    ``(..., B, H)``, ``next_norm_sq`` ``(..., B)``, rewards ``(B,)``, ``w_sq`` ``(..., 1)``."""
    with torch.no_grad():
        phi = features.detach()
        n_phi_sq = phi.square().sum(-1)
        num = n_phi_sq + gamma**2 * next_norm_sq - rewards.square() / w_sq.clamp_min(1e-12)
        den = 2.0 * gamma * n_phi_sq.sqrt() * next_target_features.norm(dim=-1)
        return num / den.clamp_min(1e-6)


def srank(features: torch.Tensor, delta: float = 0.01) -> torch.Tensor:
    """Effective rank ``min{k : Σ_{i≤k} σ_i / Σ σ_i ≥ 1 − δ}`` of a ``(N, H)`` feature matrix (or the
    minimum over a leading head axis, ``(E, N, H)``), as a 0-d float tensor."""
    with torch.no_grad():
        sv = torch.linalg.svdvals(features.detach().float())
        total = sv.sum(-1, keepdim=True)
        cum = sv.cumsum(-1) / total.clamp_min(1e-12)
        k = (cum < 1.0 - delta).sum(-1) + 1
        k = torch.where(total[..., 0] > 0, k, torch.zeros_like(k))  # all-zero features: rank 0
        return k.min().float()


@register
class BEER(Regularizer):
    """BEER's representation penalty on the critic (see the module docstring)."""

    name = "beer"
    families = frozenset({"actor_critic"})
    Config = BEERConfig
    needs_critic_features = True
    config: BEERConfig

    def __init__(self, config: BEERConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.probe: tuple[torch.Tensor, torch.Tensor] | None = None

    def validate(self) -> None:
        c = self.config
        check_number(c.beta, "beer.beta", minimum=0.0, example="1e-3 (0 disables the penalty)")
        check(
            isinstance(c.parity, bool),
            f"beer.parity must be true or false, got {c.parity!r}",
            "use true/false",
        )
        for name in ("srank_every", "probe_size"):
            v = getattr(c, name)
            check(
                isinstance(v, int) and not isinstance(v, bool) and v >= (0 if name == "srank_every" else 1),
                f"beer.{name} must be a {'non-negative' if name == 'srank_every' else 'positive'} integer, "
                f"got {v!r}",
                f"set beer.{name}=" + ("1000 (0: never)" if name == "srank_every" else "256"),
            )
        check(
            c.next_features in ("online", "target"),
            f"beer.next_features must be 'online' or 'target', got {c.next_features!r}",
            "use online (the official bound) or target",
        )
        check(
            isinstance(c.srank_delta, (int, float)) and 0.0 < c.srank_delta < 1.0,
            f"beer.srank_delta must be in (0, 1), got {c.srank_delta!r}",
            "use 0.01 (Kumar et al. 2021)",
        )

    def critic_terms(self, batch: TensorBatch, ctx: CriticContext, view: Any) -> Terms:
        phi, next_target = ctx.features, ctx.next_target_features
        check(
            phi is not None and next_target is not None,
            "BEER needs the critic's penultimate features, and this agent did not pass them",
            "use an agent that fills CriticContext.features (rlreg's TD3/DDPG, SB3's TD3 and SAC)",
        )
        if self.probe is None:
            n = min(self.config.probe_size, batch.observations.shape[0])
            self.probe = (batch.observations[:n].detach().clone(), batch.actions[:n].detach().clone())
        next_target = next_target.detach()
        w_sq = view.critic_output_weights().detach().square().sum(-1, keepdim=True)  # (E, 1)
        c = self.config
        gamma = PARITY_GAMMA if c.parity else float(view.gamma)
        if c.parity or c.next_features == "online":
            next_norm_sq = ctx.next_online_features().detach().square().sum(-1)
        else:
            next_norm_sq = next_target.square().sum(-1)
        bound = beer_bound(phi, next_norm_sq, next_target, batch.rewards, w_sq, gamma)
        cos = F.cosine_similarity(phi, next_target, dim=-1, eps=1e-6)
        penalty = F.relu(cos - bound).mean(-1).sum()  # per head, then summed over the heads
        stats = {
            "cos": cos.detach().mean(),
            "bound": bound.mean(),
            "active": (cos.detach() > bound).float().mean(),
        }
        return Terms(losses={"beer_loss": self.config.beta * penalty}, stats=stats)

    def update_extras(self, batch: TensorBatch, view: Any) -> dict[str, torch.Tensor]:
        every = self.config.srank_every
        if not every or self.probe is None or view.step % every != 0:
            return {}
        dev = batch.observations.device
        if self.probe[0].device != dev:  # loaded from a checkpoint onto another device
            self.probe = (self.probe[0].to(dev), self.probe[1].to(dev))
        with torch.no_grad():
            feats = view.features(*self.probe)
        return {"srank": srank(feats, self.config.srank_delta)}

    def extra_state(self) -> dict[str, Any]:
        return {"probe": None if self.probe is None else [t.cpu() for t in self.probe]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        probe = state.get("probe")
        self.probe = None if probe is None else (probe[0], probe[1])

    def to(self, device: torch.device) -> BEER:
        if self.probe is not None:
            self.probe = (self.probe[0].to(device), self.probe[1].to(device))
        return super().to(device)
