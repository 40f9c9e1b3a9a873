r"""A2PR: Adaptive Advantage-guided Policy Regularization (Liu et al., ICML 2024, arXiv:2405.19909).

Three parts, reimplemented from the behaviour of the official code (ltlhuuu/A2PR):

1. **Value net** :math:`V(s)` (4×256, Adam 3e-4, no target copy), after each critic step:

   .. math:: L_V = \mathrm{mean}_B\big(V(s) - \min(y_{online}, y)\big)^2,\quad
             y_{online} = r + \gamma (1-d) \min_i Q_i(s', a')

   where ``y`` is the critic's TD target and :math:`a'` the same smoothed next action, evaluated
   with the just-updated online critic.

2. **Advantage-gated conditional VAE** (BCQ's: encoder and decoder 750-750, latent 2·A, log σ
   clamped to [−4, 15], Adam 1e-3), trained on dataset actions with positive advantage,
   :math:`m = 1[Q_1(s,a) > V(s)]` (V before this update's value step):

   .. math:: L_{VAE} = \mathrm{mean}_{B,A}\, w_{vae}\, m\, (\hat a - a)^2
             - 0.25\, \mathrm{mean}_{B,Z}\big(1 + \log\sigma^2 - \mu^2 - \sigma^2\big)

   (the ``0.5 · KL`` of the code with ``KL = −0.5 · mean(…)``).

3. **Actor term** (every actor update). :math:`\tilde a = \mathrm{VAE}(s, \pi(s))` (encode the
   policy action, reparameterised sample, decode). The target is the higher-:math:`Q_1` of
   :math:`\{\tilde a, a\}` (:math:`\tilde a` when :math:`Q_1(s,\tilde a) \ge Q_1(s,a)`) and

   .. math:: L_{BC} = \mathrm{mean}_{B,A}\; w\,(\pi(s) - \text{target})^2,\quad
             w = \text{mask} \cdot 1\big[Q_1(s,\tilde a) \ge V(s) \;\lor\; Q_1(s,a) > V(s)\big]

   added to TD3+BC's λ-normalised Q loss (λ = α / mean|Q1|, the agent's ``alpha``). Advantages
   use :math:`Q_1` only; the weight is a logical OR (never 2·mask). The target is **not detached**
   (faithful): where it is :math:`\tilde a`, the gradient also flows through the VAE into π(s).
   ``detach_target=True`` stops that (an ablation; it changes the gradient).

The deeper actor (3×256) and critic (4×256), and the per-dataset α, discount, mask and
``vae_weight``, are agent and recipe settings (``agents/recipes/a2pr.yaml``), not part of this file.

Logged: ``bc_loss``, ``v_loss``, ``vae_loss``, ``regularized`` (share of samples with w > 0),
``vae_target`` (share whose target is the VAE action).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rlreg.data.transitions import TensorBatch
from rlreg.errors import check, check_number, check_widths
from rlreg.nets import MLP, FlatAdam
from rlreg.regularizers.base import Regularizer, RegularizerConfig, SetupSource, Terms, register

__all__ = ["A2PR", "A2PRConfig", "ConditionalVAE"]


@dataclass
class A2PRConfig(RegularizerConfig):
    mask: float = 0.5
    """Weight of the advantage-gated BC term (code default 0.5; per dataset in the recipe)."""
    vae_weight: float = 1.0
    """Weight of the VAE's gated reconstruction against the fixed 0.5·KL (per dataset)."""
    value_hidden: tuple[int, ...] = (256, 256, 256, 256)
    """Hidden widths of V(s)."""
    value_lr: float = 3e-4
    """Adam learning rate of V (hard-coded in the official code)."""
    vae_hidden: tuple[int, ...] = (750, 750)
    """Hidden widths of the VAE encoder and decoder."""
    vae_lr: float = 1e-3
    """Adam learning rate of the VAE (official: Adam's default)."""
    detach_target: bool = False
    """Stop the gradient through the VAE target (ablation; the official code does not)."""


class ConditionalVAE(nn.Module):
    """BCQ-style conditional VAE: ``(s, a) → (μ, log σ) → z → â = box(tanh(dec(s, z)))``."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...],
        action_low: torch.Tensor,
        action_high: torch.Tensor,
    ) -> None:
        super().__init__()
        self.latent = 2 * act_dim
        self.encoder = MLP(obs_dim + act_dim, hidden, 2 * self.latent)
        self.decoder = MLP(obs_dim + self.latent, hidden, act_dim)
        self.register_buffer("act_mid", (action_high + action_low) / 2)
        self.register_buffer("act_scale", (action_high - action_low) / 2)

    def forward(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        generator: torch.Generator | None = None,
        frozen: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction, μ, σ)`` with a reparameterised sample ``z = μ + σ·ε``.

        ``frozen=True`` treats the VAE's weights as constants (gradient reaches ``obs``/``act``
        only), as the actor loss needs: its gradient never updates the VAE.
        """
        enc = self.encoder.forward_frozen if frozen else self.encoder
        dec = self.decoder.forward_frozen if frozen else self.decoder
        mean, log_std = enc(torch.cat([obs, act], dim=1)).split(self.latent, dim=1)
        std = log_std.clamp(-4.0, 15.0).exp()
        eps = torch.randn(mean.shape, device=mean.device, generator=generator)
        z = mean + std * eps
        recon = self.act_mid + self.act_scale * torch.tanh(dec(torch.cat([obs, z], dim=1)))
        return recon, mean, std


@register
class A2PR(Regularizer):
    """Advantage-guided BC toward the better of {VAE(s, π(s)), a}, with its V-net and VAE."""

    name = "a2pr"
    families = frozenset({"actor_critic"})
    Config = A2PRConfig
    config: A2PRConfig

    def validate(self) -> None:
        c = self.config
        check_number(c.mask, "a2pr.mask", example="1.0 (0 disables the term)")
        check_number(c.vae_weight, "a2pr.vae_weight", example="1.0")
        check_number(c.value_lr, "a2pr.value_lr", strict=True, example="3e-4")
        check_number(c.vae_lr, "a2pr.vae_lr", strict=True, example="1e-3")
        check_widths(c.value_hidden, "a2pr.value_hidden")
        check_widths(c.vae_hidden, "a2pr.vae_hidden")

    def setup(self, source: SetupSource, view: Any) -> None:
        c = self.config
        seed = int(torch.randint(0, 2**62, (1,)).item())  # from the run's seeded torch RNG
        self.gen = torch.Generator(device=view.device)
        self.gen.manual_seed(seed)
        value = MLP(source.obs_dim, c.value_hidden, 1)
        vae = ConditionalVAE(
            source.obs_dim,
            source.act_dim,
            tuple(c.vae_hidden),
            source.action_low.cpu(),
            source.action_high.cpu(),
        )
        self.modules = {"value": value.to(view.device), "vae": vae.to(view.device)}
        # one fused Adam per flat network (VAE: encoder and decoder, as one Adam over both)
        self.optimizers = {
            "value": FlatAdam(value.flat, c.value_lr),
            "vae_encoder": FlatAdam(vae.encoder.flat, c.vae_lr),
            "vae_decoder": FlatAdam(vae.decoder.flat, c.vae_lr),
        }
        self._v_pre: torch.Tensor | None = None
        self._q1_data: torch.Tensor | None = None

    # -------------------------------------------------------------- own networks
    def update_extras(self, batch: TensorBatch, view: Any) -> dict[str, torch.Tensor]:
        c = self.config
        obs, act = batch.observations, batch.actions
        value, vae = self.modules["value"], self.modules["vae"]
        v = value(obs)[:, 0]  # one forward: its detached value is the pre-update V
        v_pre = v.detach()
        with torch.no_grad():
            q1_data = view.q1(obs, act)
            q_next = view.q_values(batch.next_observations, view.next_action).amin(0)
            y_online = batch.rewards + view.gamma * (1.0 - batch.dones) * q_next
            v_target = torch.minimum(y_online, view.td_target)
        v_loss = (v - v_target).square().mean()
        (g,) = torch.autograd.grad(v_loss, [value.flat])
        self.optimizers["value"].step(g)

        gate = (q1_data > v_pre).float()[:, None]
        recon, mean, std = vae(obs, act, self.gen)
        recon_loss = (c.vae_weight * gate * (recon - act).square()).mean()
        kl = -0.5 * (1 + torch.log(std.square()) - mean.square() - std.square()).mean()
        vae_loss = recon_loss + 0.5 * kl
        grads = torch.autograd.grad(vae_loss, [vae.encoder.flat, vae.decoder.flat])
        for opt, g in zip((self.optimizers["vae_encoder"], self.optimizers["vae_decoder"]), grads):
            opt.step(g)
        self._v_pre, self._q1_data = v_pre, q1_data
        return {"v_loss": v_loss.detach(), "vae_loss": vae_loss.detach(), "positive_adv": gate.mean()}

    # -------------------------------------------------------------- actor term
    def actor_terms(self, batch: TensorBatch, policy_action: torch.Tensor, view: Any) -> Terms:
        check(
            self._v_pre is not None,
            "a2pr.actor_terms ran before update_extras in this update",
            "call the agent's update(), which runs the hooks in the documented order",
        )
        v, q1_data = self._v_pre, self._q1_data
        # VAE weights are constants here (the actor step updates π only): no weight gradients computed
        a_vae, _, _ = self.modules["vae"](batch.observations, policy_action, self.gen, frozen=True)
        with torch.no_grad():
            q1_vae = view.q1(batch.observations, a_vae.detach())
            use_vae = q1_vae >= q1_data  # A(s, ã) >= A(s, a): V cancels
            w = self.config.mask * ((q1_vae >= v) | (q1_data > v)).float()
        target = torch.where(
            use_vae[:, None], a_vae.detach() if self.config.detach_target else a_vae, batch.actions
        )
        bc = (w[:, None] * (policy_action - target).square()).mean()
        stats = {"regularized": (w > 0).float().mean(), "vae_target": use_vae.float().mean()}
        return Terms(losses={"bc_loss": bc}, stats=stats)

    # -------------------------------------------------------------- state
    def extra_state(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"].cpu())
