r"""Deep Variance Weighting (DVW): inverse-variance weights on the TD loss of DQN / M-DQN / MDVI.

Paper: Kitamura, Kozuno, Tang, Vieillard, Valko, Yang, Yoshida, Pietquin, Geist, Yoshida & Matsuo,
*Regularization and Variance-Weighted Regression Achieves Minimax Optimality in Linear MDPs: Theory
and Practice*, ICML 2023 (arXiv:2305.13185), built on MDVI (Kozuno et al. 2022). Reimplemented from
the paper and the described behaviour of the official code (matsuolab/Deep-Variance-Weighting-MinAtar
@ dd3d7c8, the MinAtar setup as ground truth), not copied from it (it has no license).

Least squares weighted by the inverse variance of the next-state value is what makes MDVI minimax
optimal in linear MDPs; DVW learns that variance with a network. Per update, on the agent's batch:

1. **Variance target** (no grad): :math:`z = \big(T_{\bar q^-}(s,a) - \bar q(s,a)\big)^2`, where
   :math:`T_{\bar q^-}` is the algorithm's own target built from the previous target net
   (``view.target_fn(batch, "prev_target")``: the DQN max target, or the Munchausen target when
   that hook is stacked) and :math:`\bar q` is the current target net, which was regressed on it.
2. **Variance net** :math:`\hat\sigma^2_\omega(s,\cdot) = \exp(\text{net}_\omega(s)) + \epsilon`
   (same architecture as the Q-net, one output per action, ε = 0.1), trained with
   :math:`\mathrm{Huber}_{\delta=1}(\hat\sigma^2_\omega(s,a), z)`, Adam lr 2.5e-4.
3. **Scaler** :math:`\log\eta` (initialised to 1.0, i.e. η = e, as the MinAtar code), trained with
   :math:`\big(\mathrm{mean}_B[\eta / \hat\sigma^2_{\bar\omega}(s,a)] - 1\big)^2`, Adam lr 1e-3, so the
   batch-mean weight stays near 1.
4. **Weights** (``td_weights``, no grad): :math:`w = \max(\eta / \hat\sigma^2_{\bar\omega}(s,a),\
   0.1)` with the frozen copy :math:`\bar\omega`; the agent's loss becomes
   :math:`\mathrm{mean}_B[w\cdot\ell(y - q_\theta(s,a))]` (DVW: ℓ = squared error).

At every target update (``on_target_update``, before the agent's copies) :math:`\bar\omega \leftarrow
\omega`; the agent then does :math:`\bar q^- \leftarrow \bar q`, :math:`\bar q \leftarrow q_\theta`.
The variance target, the weights and the variance in the scaler loss are all detached (the last via
the frozen net); the variance loss reaches only ω, the scaler loss only log η.

Deliberate deviation: the MinAtar code steps the variance net and η *before* the Q step of the same
update and weights that Q step with the new η. Here the contract's order holds (``td_weights`` →
Q step → ``update_extras``), so the weights use η from the previous update: one Adam step of lr 1e-3
on log η, i.e. weights differ by at most ≈0.1 %. The variance step is unaffected (it reads only
q̄, q̄⁻ and ω, which the Q step does not change). The Maze (JAX) variant's learned floor b is not
implemented (the MinAtar code uses the fixed ε).

Logged: ``weight_mean``, ``weight_min``, ``weight_max`` (after the clip), ``eta``,
``variance_loss``, ``variance_mean`` (σ̂²_ω(s,a)), ``variance_target_mean`` (z), ``scaler_loss``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlreg.data.transitions import TensorBatch
from rlreg.errors import check, check_number
from rlreg.regularizers.base import Regularizer, RegularizerConfig, SetupSource, register

__all__ = ["DVW", "DVWConfig", "VarianceNet"]


@dataclass
class DVWConfig(RegularizerConfig):
    variance_lr: float = 2.5e-4
    """Adam learning rate of the variance net (MinAtar code: 2.5e-4)."""
    scaler_lr: float = 1e-3
    """Adam learning rate of log η (MinAtar code: 1e-3)."""
    epsilon: float = 0.1
    """ε added to exp(net) so σ̂² >= ε (MinAtar code ``weight_epsilon``: 0.1)."""
    weight_min: float = 0.1
    """Lower clip of the weights (MinAtar code ``weight_min``: 0.1)."""
    log_eta_init: float = 1.0
    """Initial log η (MinAtar code: a parameter initialised to 1.0, i.e. η = e)."""
    huber_delta: float = 1.0
    """δ of the variance net's Huber loss (MinAtar code: ``F.huber_loss`` default 1)."""


class VarianceNet(nn.Module):
    """``σ̂²(s, ·) = exp(net(s)) + ε`` on top of a Q-shaped network ``net`` (one output per action)."""

    def __init__(self, net: nn.Module, epsilon: float) -> None:
        super().__init__()
        self.net = net
        self.epsilon = float(epsilon)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.net(obs)) + self.epsilon


class _Scalar(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))


def _at(values: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return values.gather(1, actions.long()[:, None]).squeeze(1)


@register
class DVW(Regularizer):
    """Per-sample TD weights ``max(η / σ̂²_frozen(s, a), w_min)`` from a learned variance net."""

    name = "dvw"
    families = frozenset({"q_learning"})
    Config = DVWConfig
    config: DVWConfig

    def validate(self) -> None:
        c = self.config
        check_number(c.variance_lr, "dvw.variance_lr", strict=True, example="2.5e-4")
        check_number(c.scaler_lr, "dvw.scaler_lr", strict=True, example="1e-3")
        check_number(c.epsilon, "dvw.epsilon", strict=True, example="0.1 (keeps sigma^2 away from 0)")
        check_number(c.weight_min, "dvw.weight_min", example="0.1 (0 disables the clip)")
        check_number(c.huber_delta, "dvw.huber_delta", strict=True, example="1.0")
        check_number(c.log_eta_init, "dvw.log_eta_init", minimum=-1e9, example="1.0")

    def setup(self, source: SetupSource, view: Any) -> None:
        for attr in ("target_fn", "new_q_network", "target_q_values"):
            check(
                callable(getattr(view, attr, None)),
                f"dvw needs a Q-learning agent's view (it has no '{attr}')",
                "use dvw with the dqn agent (recipes dqn, mdqn, dqn-minatar: --set dvw=true)",
            )
        c = self.config
        variance = VarianceNet(view.new_q_network(), c.epsilon).to(view.device)
        frozen = copy.deepcopy(variance).requires_grad_(False)
        scaler = _Scalar(c.log_eta_init).to(view.device)
        self.modules = {"variance": variance, "variance_frozen": frozen, "log_eta": scaler}
        self.optimizers = {
            "variance": torch.optim.Adam(variance.parameters(), lr=c.variance_lr, fused=True),
            "log_eta": torch.optim.Adam(scaler.parameters(), lr=c.scaler_lr, fused=True),
        }
        self._frozen: tuple[TensorBatch, torch.Tensor] | None = None

    # -------------------------------------------------------------- pieces (also used by tests)
    @property
    def eta(self) -> torch.Tensor:
        """η = exp(log η), detached."""
        return self.modules["log_eta"].value.detach().exp()

    def frozen_variance(self, batch: TensorBatch) -> torch.Tensor:
        """σ̂²_ω̄(s, a) of the frozen copy, ``(B,)``, no grad (cached for the batch it was computed on)."""
        if self._frozen is not None and self._frozen[0] is batch:
            return self._frozen[1]
        with torch.no_grad():
            var = _at(self.modules["variance_frozen"](batch.observations), batch.actions)
        self._frozen = (batch, var)
        return var

    def weights(self, frozen_var: torch.Tensor) -> torch.Tensor:
        """``max(η / σ̂², weight_min)``, no grad."""
        return (self.eta / frozen_var).clamp(min=self.config.weight_min)

    def variance_target(self, batch: TensorBatch, view: Any) -> torch.Tensor:
        """``(T_{q̄⁻}(s, a) − q̄(s, a))²``, no grad."""
        with torch.no_grad():
            prev = view.target_fn(batch, "prev_target")
            current = _at(view.target_q_values(batch.observations), batch.actions)
            return (prev - current).square()

    def scaler_step(self, frozen_var: torch.Tensor) -> torch.Tensor:
        """One Adam step on ``(mean(η / σ̂²_frozen) − 1)²``; returns the loss (detached)."""
        log_eta = self.modules["log_eta"].value
        with torch.enable_grad():
            loss = ((log_eta.exp() / frozen_var.detach()).mean() - 1.0).square()
            opt = self.optimizers["log_eta"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        return loss.detach()

    # -------------------------------------------------------------- hooks
    def td_weights(self, batch: TensorBatch, view: Any) -> torch.Tensor:
        w = self.weights(self.frozen_variance(batch))
        view.log(self, "weight_mean", w.mean())
        view.log(self, "weight_min", w.amin())
        view.log(self, "weight_max", w.amax())
        view.log(self, "eta", self.eta)
        return w

    def update_extras(self, batch: TensorBatch, view: Any) -> dict[str, torch.Tensor]:
        z = self.variance_target(batch, view)
        variance = self.modules["variance"]
        with torch.enable_grad():
            pred = _at(variance(batch.observations), batch.actions)
            loss = F.huber_loss(pred, z, delta=self.config.huber_delta)
            opt = self.optimizers["variance"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        scaler_loss = self.scaler_step(self.frozen_variance(batch))
        self._frozen = None
        return {
            "variance_loss": loss.detach(),
            "variance_mean": pred.detach().mean(),
            "variance_target_mean": z.mean(),
            "scaler_loss": scaler_loss,
        }

    def on_target_update(self, view: Any) -> None:
        with torch.no_grad():
            frozen, live = self.modules["variance_frozen"], self.modules["variance"]
            for pf, pl in zip(frozen.parameters(), live.parameters()):
                pf.copy_(pl)
        self._frozen = None
