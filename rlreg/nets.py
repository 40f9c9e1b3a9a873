"""Networks: ReLU MLPs with an optional ensemble dimension, a squashed deterministic actor, a
Q-ensemble critic that returns its penultimate features with Q from the same forward pass, and a
fused Adam over one flat parameter buffer.

Why not ``nn.Linear`` stacks: on small CPUs an RL update is dominated by per-op overhead, not by
FLOPs. Each :class:`MLP` keeps all its weights in **one flat parameter** (so Adam is one fused op
and the Polyak update one ``lerp_``) and runs as **one autograd node** whose backward is written
by hand (saved activations, ReLU masks from the outputs, no input gradient for the first layer
unless asked, no weight gradients when the weights are detached). Gradients are exactly those of
the plain layer stack (tests compare against an ``nn.Linear`` reference); only float
reassociation can differ. Regularizer terms still compose through ordinary autograd on the MLP's
inputs and outputs.

Layouts (chosen for fast GEMMs on small CPUs, where skinny matmuls in the wrong layout cost 3-8×):
hidden layers store ``W`` as ``(E, in, out)`` and ``b`` as ``(E, 1, out)``; the output layer
stores ``W`` as ``(E, out, in)`` (``nn.Linear``'s) and ``b`` as ``(E, 1, out)``. With ``E = 1``
the leading axis is dropped. Initialisation is PyTorch's ``nn.Linear`` default (U(±1/√fan_in)
for weights and biases), as in the official TD3, TD3+BC, PRDC and A2PR code.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["MLP", "Actor", "Critic", "FlatAdam", "mlp_forward", "mlp_backward"]

_relu_bw_ = torch.ops.aten.threshold_backward.grad_input  # out= variant: masks ``g`` in place

# (mlp) -> {(data_ptr, device, member): weight views}; outside the module so deepcopy/pickle skip it
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan(mlp: MLP, flat: torch.Tensor, member: int | None) -> list[torch.Tensor]:
    """Weight views of ``flat`` (cached per storage: building them costs more than small GEMMs)."""
    plans = _PLANS.get(mlp)
    if plans is None:
        plans = _PLANS[mlp] = {}
    key = (flat.data_ptr(), flat.device, member)
    ws = plans.get(key)
    if ws is None:
        if len(plans) > 16:  # storages come and go (device moves, copies): keep the cache small
            plans.clear()
        ws = mlp.views(flat.detach())
        if member is not None:
            ws = [w[member] for w in ws]
        plans[key] = ws
    return ws


class MLP(nn.Module):
    """ReLU MLP ``in → hidden… → out`` with ``ensemble = E`` independent members.

    ``forward(x)``: ``x`` is ``(B, in)`` (shared by all members) or ``(E, B, in)``; the output is
    ``(B, out)`` for ``E == 1`` and ``(E, B, out)`` otherwise. ``forward_features`` also returns
    the last hidden activations (post-ReLU), ``(B, H)`` or ``(E, B, H)``, with gradient.
    ``forward_member(x, i)`` runs member ``i`` alone with its weights treated as constants
    (gradient flows to ``x`` only), as TD3's actor loss needs of critic head 1.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, ensemble: int = 1) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.ensemble = int(in_dim), int(out_dim), int(ensemble)
        self.hidden = tuple(int(h) for h in hidden)
        sizes = (self.in_dim, *self.hidden, self.out_dim)
        self.n_layers = len(sizes) - 1
        e = (self.ensemble,) if self.ensemble > 1 else ()
        shapes: list[tuple[int, ...]] = []
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = k == self.n_layers - 1
            shapes.append((*e, fan_out, fan_in) if last else (*e, fan_in, fan_out))
            shapes.append((*e, 1, fan_out) if e else (fan_out,))
        self._shapes = shapes
        self._offsets = [0]
        for s in shapes:
            self._offsets.append(self._offsets[-1] + math.prod(s))
        self.flat = nn.Parameter(torch.empty(self._offsets[-1]))
        with torch.no_grad():
            for k, (fan_in, _) in enumerate(zip(sizes[:-1], sizes[1:])):
                bound = 1.0 / math.sqrt(fan_in)
                w, b = self.views(self.flat)[2 * k : 2 * k + 2]
                w.uniform_(-bound, bound)
                b.uniform_(-bound, bound)

    # ------------------------------------------------------------------ parameter views
    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """``[W0, b0, W1, b1, ...]`` as views of ``flat`` (parameters, targets or gradients)."""
        o = self._offsets
        return [flat[o[i] : o[i + 1]].view(s) for i, s in enumerate(self._shapes)]

    def linear_weights(self, member: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Member ``member``'s layers as ``nn.Linear``-style ``(weight (out, in), bias (out,))`` copies."""
        v = self.views(self.flat.detach())
        out = []
        for k in range(self.n_layers):
            w, b = v[2 * k], v[2 * k + 1]
            if self.ensemble > 1:
                w, b = w[member], b[member]
            w = w if k == self.n_layers - 1 else w.t()
            out.append((w.clone(), b.reshape(-1).clone()))
        return out

    def load_linear_weights(
        self, layers: Sequence[tuple[torch.Tensor, torch.Tensor]], member: int = 0
    ) -> None:
        """Inverse of :meth:`linear_weights` (e.g. to import ``nn.Linear`` weights)."""
        v = self.views(self.flat.detach())
        with torch.no_grad():
            for k, (w, b) in enumerate(layers):
                dw, db = v[2 * k], v[2 * k + 1]
                if self.ensemble > 1:
                    dw, db = dw[member], db[member]
                dw.copy_(w if k == self.n_layers - 1 else w.t())
                db.copy_(b.reshape(db.shape))

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MLPFunction.apply(x, self.flat, self, None, False)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output and the last hidden layer's activations (the penultimate features)."""
        return _MLPFunction.apply(x, self.flat, self, None, True)

    def forward_frozen(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with the weights as constants: gradient reaches ``x`` only, and the
        backward skips the weight-gradient products (a third of the work)."""
        return _MLPFunction.apply(x, self.flat.detach(), self, None, False)[0]

    def forward_member(self, x: torch.Tensor, member: int) -> torch.Tensor:
        """Member ``member`` alone, weights as constants: ``(B, out)``; gradient reaches ``x`` only."""
        return _MLPFunction.apply(x, self.flat.detach(), self, member, False)[0]


def _run(x: torch.Tensor, ws: list[torch.Tensor], n: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Plain forward over weight views; returns the output and the post-ReLU activations."""
    hs: list[torch.Tensor] = []
    h = x
    ens = ws[0].dim() == 3
    for k in range(n - 1):
        w, b = ws[2 * k], ws[2 * k + 1]
        if ens:
            h = torch.baddbmm(b, h.expand(w.shape[0], *h.shape) if h.dim() == 2 else h, w)
        else:
            h = torch.addmm(b, h, w)
        h = h.relu_()
        hs.append(h)
    w, b = ws[-2], ws[-1]
    if not ens:
        y = torch.addmm(b, h, w.t())
    elif w.shape[1] == 1:  # one output per member: a row-vector product is far faster than a 1-column GEMM
        h3 = h if h.dim() == 3 else h.expand(w.shape[0], *h.shape)
        y = torch.baddbmm(b, w, h3.transpose(1, 2)).transpose(1, 2)
    else:
        h3 = h if h.dim() == 3 else h.expand(w.shape[0], *h.shape)
        y = torch.baddbmm(b, h3, w.transpose(1, 2))
    return y, hs


def mlp_forward(
    mlp: MLP, x: torch.Tensor, flat: torch.Tensor | None = None, member: int | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Forward without autograd: the output and the saved post-ReLU activations for
    :func:`mlp_backward`. ``flat`` defaults to ``mlp.flat`` (pass a target network's buffer);
    ``member`` runs one ensemble member alone."""
    return _run(x, _plan(mlp, mlp.flat if flat is None else flat, member), mlp.n_layers)


def mlp_backward(
    mlp: MLP,
    x: torch.Tensor,
    hs: list[torch.Tensor],
    gy: torch.Tensor,
    gfeat: torch.Tensor | None = None,
    need_x: bool = False,
    need_w: bool = True,
    member: int | None = None,
    flat: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Hand-fused backward of :func:`mlp_forward`: returns ``(grad_x, grad_flat)``.

    ``gy`` has the output's shape; ``gfeat`` (optional) is a gradient on the last hidden
    activations. Exactly the gradients autograd would compute for the layer stack.
    """
    ws = _plan(mlp, mlp.flat if flat is None else flat, member)
    n = mlp.n_layers
    ens = ws[0].dim() == 3
    gflat = torch.empty_like(mlp.flat) if need_w else None
    gs = mlp.views(gflat) if need_w else None

    # ---- output layer: W (.., out, in)
    w = ws[-2]
    h = hs[-1] if hs else x
    g = None
    if not ens:
        if need_w:
            torch.mm(gy.t(), h, out=gs[-2])
            torch.sum(gy, 0, out=gs[-1])
        if hs or need_x:
            g = gy @ w
    else:
        h3 = h if h.dim() == 3 else h.expand(w.shape[0], *h.shape)
        if need_w:
            torch.bmm(gy.transpose(1, 2), h3, out=gs[-2])
            torch.sum(gy, 1, keepdim=True, out=gs[-1])
        # one output per member: an outer product is far cheaper than a 1-row GEMM
        g = gy * w if w.shape[1] == 1 else torch.bmm(gy, w)
    if gfeat is not None:
        g = g + gfeat
    # ---- hidden layers, last to first: W (.., in, out)
    for k in range(n - 2, -1, -1):
        # ReLU mask from the saved output, in place: ``g`` is always a fresh temporary here
        g = _relu_bw_(g, hs[k], 0.0, grad_input=g)
        w = ws[2 * k]
        h = hs[k - 1] if k > 0 else x
        if not ens:
            if need_w:
                torch.mm(h.t(), g, out=gs[2 * k])
                torch.sum(g, 0, out=gs[2 * k + 1])
            if k > 0 or need_x:
                g = g @ w.t()
        else:
            h3 = h if h.dim() == 3 else h.expand(w.shape[0], *h.shape)
            if need_w:
                torch.bmm(h3.transpose(1, 2), g, out=gs[2 * k])
                torch.sum(g, 1, keepdim=True, out=gs[2 * k + 1])
            if k > 0 or need_x:
                g = torch.bmm(g, w.transpose(1, 2))
    gx = None
    if need_x:
        gx = g if g.shape == x.shape else g.sum(0)  # a shared input sums its members' gradients
    return gx, gflat


class _MLPFunction(torch.autograd.Function):
    """One autograd node for a whole MLP, with the hand-fused backward of :func:`mlp_backward`."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, flat: torch.Tensor, mlp: MLP, member: int | None, want_features: bool
    ) -> tuple[torch.Tensor, ...]:
        y, hs = _run(x, _plan(mlp, flat, member), mlp.n_layers)
        ctx.mlp, ctx.member = mlp, member
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, flat, *hs)
        if want_features:
            return y, hs[-1]
        return (y,)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor | None, gfeat: torch.Tensor | None = None) -> tuple:
        x, flat, *hs = ctx.saved_tensors
        need_w = ctx.needs_input_grad[1] and ctx.member is None
        if gy is None:  # only the features were used
            shape = (*(hs[-1].shape[:-1] if hs else x.shape[:-1]), ctx.mlp.out_dim)
            gy = torch.zeros(shape, dtype=x.dtype, device=x.device)
        gx, gflat = mlp_backward(
            ctx.mlp,
            x,
            hs,
            gy,
            gfeat,
            need_x=ctx.needs_input_grad[0],
            need_w=need_w,
            member=ctx.member,
            flat=flat,
        )
        return gx, gflat, None, None, None


class FlatAdam:
    """Adam (Kingma & Ba 2015; PyTorch's defaults and update rule) on one flat parameter, as one
    fused kernel call per step (``torch._fused_adam_``, the kernel behind
    ``torch.optim.Adam(fused=True)``), without the per-step Python overhead of ``torch.optim``.

    The step counter lives on the parameter's device, so a step never synchronises with the host.
    """

    def __init__(
        self,
        param: torch.Tensor,
        lr: float = 3e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param, self.lr, self.betas, self.eps = param, float(lr), betas, float(eps)
        self.exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.step_t = torch.zeros((), dtype=torch.float32, device=param.device)

    def step(self, grad: torch.Tensor) -> None:
        self.step_t.add_(1.0)
        torch._fused_adam_(
            [self.param.data],
            [grad],
            [self.exp_avg],
            [self.exp_avg_sq],
            [],
            [self.step_t],
            lr=self.lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            weight_decay=0.0,
            eps=self.eps,
            amsgrad=False,
            maximize=False,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "exp_avg": self.exp_avg.clone(),
            "exp_avg_sq": self.exp_avg_sq.clone(),
            "step": self.step_t.clone(),
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["exp_avg"].shape != self.exp_avg.shape:
            raise RuntimeError(
                f"FlatAdam state has {state['exp_avg'].numel()} entries, expected {self.exp_avg.numel()}"
            )
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])
        self.step_t.copy_(state["step"])
        self.lr, self.betas, self.eps = float(state["lr"]), tuple(state["betas"]), float(state["eps"])


class Actor(nn.Module):
    """Deterministic policy ``a = mid + half · tanh(MLP(s))`` on the box ``[low, high]``.

    For the symmetric unit box (D4RL locomotion) this is exactly ``max_action · tanh``.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        action_low: torch.Tensor,
        action_high: torch.Tensor,
    ) -> None:
        super().__init__()
        self.net = MLP(obs_dim, hidden, act_dim)
        low = torch.as_tensor(action_low, dtype=torch.float32).reshape(act_dim)
        high = torch.as_tensor(action_high, dtype=torch.float32).reshape(act_dim)
        self.register_buffer("act_mid", (high + low) / 2)
        self.register_buffer("act_scale", (high - low) / 2)
        self.unit_box = bool(torch.all(self.act_mid == 0) and torch.all(self.act_scale == 1))
        """True for the box [-1, 1]^A, where the map to the box is the identity."""

    def to_box(self, t: torch.Tensor) -> torch.Tensor:
        """Map ``t = tanh(·)`` in ``[-1, 1]`` to the action box: ``mid + half · t``."""
        return t if self.unit_box else torch.addcmul(self.act_mid, self.act_scale, t)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.to_box(torch.tanh(self.net(obs)))


class Critic(nn.Module):
    """An ensemble of ``n_heads`` independent Q networks on ``cat(s, a)``; output ``(E, B)``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], n_heads: int = 2) -> None:
        super().__init__()
        self.n_heads = int(n_heads)
        self.net = MLP(obs_dim + act_dim, hidden, 1, ensemble=self.n_heads)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, act], dim=-1)).reshape(self.n_heads, -1)

    def forward_features(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(E, B)`` Q values and ``(E, B, H)`` penultimate features from one forward pass."""
        q, h = self.net.forward_features(torch.cat([obs, act], dim=-1))
        if self.n_heads == 1:
            h = h.unsqueeze(0)
        return q.reshape(self.n_heads, -1), h

    def q1(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Head 1 only, ``(B,)``, critic weights as constants (TD3's actor objective)."""
        x = torch.cat([obs, act], dim=-1)
        if self.n_heads == 1:
            return _MLPFunction.apply(x, self.net.flat.detach(), self.net, None, False)[0].reshape(-1)
        return self.net.forward_member(x, 0).reshape(-1)
