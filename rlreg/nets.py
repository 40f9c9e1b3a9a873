r"""Networks: MLPs with an optional ensemble (member) dimension, a squashed deterministic actor, a
Q-ensemble critic that returns its penultimate features with Q from the same forward pass, and a
fused Adam over one flat parameter buffer.

**What is fused.** On small CPUs an RL update is dominated by per-op overhead, not by FLOPs. Each
:class:`MLP` keeps all its weights in **one flat parameter** ``flat`` (so Adam is one fused op and
the Polyak update one ``lerp_``). A ReLU MLP without LayerNorm (the default, ``MLP.fused`` is
True) runs as **one autograd node** whose backward is written by hand (saved activations, ReLU
masks from the outputs, no input gradient for the first layer unless asked, no weight gradients
when the weights are detached); :func:`mlp_forward` / :func:`mlp_backward` are the same engine
without autograd, for agents that write the loss gradient out. Gradients are exactly those of the
plain layer stack (tests compare against an ``nn.Linear`` reference); only float reassociation can
differ. Regularizer terms still compose through ordinary autograd on the MLP's inputs and outputs.

**What is not fused.** Other activations (``activation="tanh"``, ``"elu"``, ``"gelu"``, ``"silu"``,
``"leaky_relu"``, ``"mish"``) and ``layer_norm=True`` (``Linear → LayerNorm → activation`` in
every hidden layer) run a plain differentiable forward over views of the same flat parameter
(ordinary autograd, no hand-written backward); ensembles, stacking and ``nn.Linear`` export work
the same. :func:`mlp_forward` / :func:`mlp_backward` refuse such an MLP with a clear error.

**Layout** (chosen for fast GEMMs on small CPUs, where skinny matmuls in the wrong layout cost
3-8×), in ``flat`` order per layer: hidden layers store ``W`` as ``(E, in, out)`` and ``b`` as
``(E, 1, out)``, followed with ``layer_norm`` by the LayerNorm ``γ`` and ``β`` as ``(E, 1, out)``;
the output layer stores ``W`` as ``(E, out, in)`` (``nn.Linear``'s) and ``b`` as ``(E, 1, out)``.
With ``E = 1`` the leading axis is dropped (``b``, ``γ``, ``β`` are ``(out,)``). Every tensor is
member-major, so member ``i``'s entries of each tensor are contiguous. Initialisation is PyTorch's
``nn.Linear`` default (U(±1/√fan_in) for weights and biases), as in the official TD3, TD3+BC, PRDC
and A2PR code; LayerNorm starts at ``γ = 1, β = 0``.

**Stacking** K independent copies (multi-seed training in one process) uses the native member
dimension: :meth:`MLP.stack` concatenates members (K MLPs of ensemble E → one of ensemble K·E),
:meth:`MLP.unstack` splits them back; :meth:`Actor.stack` maps ``(K, B, obs) → (K, B, act)`` and
:meth:`Critic.stack` maps ``(K, B, obs), (K, B, act) → (K, H, B)``. Stacked copies are exactly
the separate copies (same outputs and gradients), and one :class:`FlatAdam` steps all of them.

**Export.** :meth:`MLP.linear_state_dict` gives a member's weights under the keys of the plain
``nn.Sequential(Linear, [LayerNorm,] act, ..., Linear)`` (``"0.weight"``, ``"0.bias"``, ...),
:meth:`MLP.load_linear_state_dict` imports them, :meth:`MLP.to_sequential` builds that module;
:meth:`Actor.to_sequential` appends ``Tanh`` and the box map (:class:`ActionBox`).

**Double backward** (gradient penalties, ``create_graph=True``): supported. When the fused node's
backward runs with grad mode on, it recomputes the forward with plain differentiable ops and
differentiates that, so the gradient is itself differentiable.

**torch.func** (``vmap``, ``grad``, ``jacrev``, ...): calling an :class:`MLP` module under a
``torch.func`` transform falls back to the plain differentiable forward, which the transforms
support (same values up to float reassociation). The fused autograd node itself has no vmap rule,
and :func:`mlp_forward` / :func:`mlp_backward` raise a clear error under a transform. To run K
copies at once, prefer stacking on the member dimension: it is the fused, supported way.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from rlreg.errors import RlregError, check

__all__ = ["MLP", "Actor", "Critic", "ActionBox", "FlatAdam", "ACTIVATIONS", "mlp_forward", "mlp_backward"]

_relu_bw_ = torch.ops.aten.threshold_backward.grad_input  # out= variant: masks ``g`` in place
_transforms_active = torch._C._are_functorch_transforms_active

ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], type[nn.Module]]] = {
    "relu": (F.relu, nn.ReLU),
    "tanh": (torch.tanh, nn.Tanh),
    "elu": (F.elu, nn.ELU),
    "gelu": (F.gelu, nn.GELU),
    "silu": (F.silu, nn.SiLU),
    "leaky_relu": (F.leaky_relu, nn.LeakyReLU),
    "mish": (F.mish, nn.Mish),
}
"""Activation names: the function and the ``nn`` module (default arguments, as ``nn.ReLU()`` etc.)."""

_LN_EPS = 1e-5  # nn.LayerNorm's default

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
        if member is not None and mlp.ensemble > 1:
            ws = [w[member] for w in ws]
        plans[key] = ws
    return ws


def _not_fused(mlp: MLP, what: str) -> RlregError:
    if _transforms_active():
        return RlregError(
            f"{what} cannot run under a torch.func transform (vmap/grad/jacrev)",
            "call the module instead (mlp(x): the plain autograd path under transforms), or stack copies "
            "on the member dimension with MLP.stack",
        )
    return RlregError(
        f"{what} needs the fused engine (ReLU, no LayerNorm); this MLP has activation="
        f"{mlp.activation!r}, layer_norm={mlp.layer_norm}",
        "use the autograd path: call the module (mlp(x), mlp.forward_features(x)) and torch.autograd",
    )


class MLP(nn.Module):
    """MLP ``in → hidden… → out`` with ``ensemble = E`` independent members, all weights in ``flat``.

    ``forward(x)``: ``x`` is ``(B, in)`` (shared by all members) or ``(E, B, in)``; the output is
    ``(B, out)`` for ``E == 1`` and ``(E, B, out)`` otherwise. ``forward_features`` also returns
    the last hidden activations (post-activation), ``(B, H)`` or ``(E, B, H)``, with gradient.
    ``forward_member(x, i)`` runs member ``i`` alone on ``(B, in)`` (gradient reaches ``x`` and
    member ``i``'s weights; the other members' gradient is zero); the ``*_frozen`` variants treat
    the weights as constants (gradient reaches ``x`` only), as TD3's actor loss needs of Q1.

    ``activation`` is one of :data:`ACTIVATIONS`; ``layer_norm`` puts a LayerNorm (``γ``, ``β``,
    eps 1e-5) between each hidden layer's affine map and its activation. Only ``"relu"`` without
    LayerNorm runs the hand-fused engine (:attr:`fused`).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        ensemble: int = 1,
        activation: str = "relu",
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self._build(in_dim, hidden, out_dim, ensemble, activation, layer_norm)
        sizes = (self.in_dim, *self.hidden, self.out_dim)
        with torch.no_grad():
            for k, (fan_in, _) in enumerate(zip(sizes[:-1], sizes[1:])):
                bound = 1.0 / math.sqrt(fan_in)
                i = self._lin[k]
                w, b = self.views(self.flat)[i : i + 2]
                w.uniform_(-bound, bound)
                b.uniform_(-bound, bound)
            for i in self._norm:
                gamma, beta = self.views(self.flat)[i : i + 2]
                gamma.fill_(1.0)
                beta.zero_()

    def _build(
        self,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        ensemble: int,
        activation: str,
        layer_norm: bool,
        like: torch.Tensor | None = None,
    ) -> None:
        """Sizes, layout and an uninitialised ``flat`` (on ``like``'s device and dtype if given)."""
        check(
            activation in ACTIVATIONS,
            f"unknown activation {activation!r}",
            f"use one of: {', '.join(ACTIVATIONS)}",
        )
        check(int(ensemble) >= 1, f"ensemble must be >= 1, got {ensemble}", "use ensemble=1 for one network")
        self.in_dim, self.out_dim, self.ensemble = int(in_dim), int(out_dim), int(ensemble)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation, self.layer_norm = activation, bool(layer_norm)
        self._fused = activation == "relu" and not self.layer_norm
        sizes = (self.in_dim, *self.hidden, self.out_dim)
        self.n_layers = len(sizes) - 1
        e = (self.ensemble,) if self.ensemble > 1 else ()
        shapes: list[tuple[int, ...]] = []
        self._lin: list[int] = []  # index in ``views`` of each layer's W (its b follows)
        self._norm: list[int] = []  # index of each hidden layer's LayerNorm γ (β follows)
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = k == self.n_layers - 1
            self._lin.append(len(shapes))
            shapes.append((*e, fan_out, fan_in) if last else (*e, fan_in, fan_out))
            shapes.append((*e, 1, fan_out) if e else (fan_out,))
            if self.layer_norm and not last:
                self._norm.append(len(shapes))
                shapes += [(*e, 1, fan_out) if e else (fan_out,)] * 2
        self._shapes = shapes
        # the same tensors with the member axis always present: (E, in, out), (E, 1, out), ...
        self._member_shapes = [s if e else ((1, *s) if len(s) == 2 else (1, 1, *s)) for s in shapes]
        self._offsets = [0]
        for s in shapes:
            self._offsets.append(self._offsets[-1] + math.prod(s))
        kw = {} if like is None else {"device": like.device, "dtype": like.dtype}
        self.flat = nn.Parameter(torch.empty(self._offsets[-1], **kw))

    def extra_repr(self) -> str:
        ln = ", layer_norm=True" if self.layer_norm else ""
        return (
            f"{self.in_dim}, {list(self.hidden)}, {self.out_dim}, ensemble={self.ensemble}, "
            f"activation={self.activation!r}{ln}"
        )

    @property
    def fused(self) -> bool:
        """True when this MLP runs the hand-fused engine (ReLU, no LayerNorm)."""
        return self._fused

    def _spec(self) -> tuple[Any, ...]:
        return self.in_dim, self.hidden, self.out_dim, self.activation, self.layer_norm

    # ------------------------------------------------------------------ parameter views
    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """``[W0, b0, (γ0, β0,) W1, b1, ...]`` as views of ``flat`` (parameters, targets or gradients)."""
        o = self._offsets
        return [flat[o[i] : o[i + 1]].view(s) for i, s in enumerate(self._shapes)]

    def member_views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`views` with the member axis always first (also for ``E == 1``): ``W`` as
        ``(E, in, out)`` / ``(E, out, in)``, ``b``, ``γ``, ``β`` as ``(E, 1, out)``."""
        o = self._offsets
        return [flat[o[i] : o[i + 1]].view(s) for i, s in enumerate(self._member_shapes)]

    def _check_member(self, member: int) -> None:
        check(
            0 <= int(member) < self.ensemble,
            f"member {member} is out of range for an ensemble of {self.ensemble}",
            f"use a member index in 0..{self.ensemble - 1}",
        )

    def linear_weights(self, member: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Member ``member``'s affine layers as ``nn.Linear``-style ``(weight (out, in), bias (out,))``
        copies (LayerNorm parameters: :meth:`linear_state_dict`)."""
        self._check_member(member)
        v = self.member_views(self.flat.detach())
        out = []
        for k, i in enumerate(self._lin):
            w, b = v[i][member], v[i + 1][member]
            w = w if k == self.n_layers - 1 else w.t()
            out.append((w.clone(), b.reshape(-1).clone()))
        return out

    def load_linear_weights(
        self, layers: Sequence[tuple[torch.Tensor, torch.Tensor]], member: int = 0
    ) -> None:
        """Inverse of :meth:`linear_weights` (e.g. to import ``nn.Linear`` weights)."""
        self._check_member(member)
        v = self.member_views(self.flat.detach())
        with torch.no_grad():
            for k, (w, b) in enumerate(layers):
                i = self._lin[k]
                dw, db = v[i][member], v[i + 1][member]
                dw.copy_(w if k == self.n_layers - 1 else w.t())
                db.copy_(b.reshape(db.shape))

    # ------------------------------------------------------------------ nn.Linear layout
    def _sequential_keys(self) -> list[tuple[str, int, str]]:
        """``(key prefix, view index, kind)`` of every layer; kind is ``"hidden"`` (W stored
        ``(in, out)``: transposed on export), ``"out"`` (W ``(out, in)``) or ``"norm"``."""
        step = 3 if self.layer_norm else 2  # Linear, [LayerNorm,] activation
        out = []
        for k, i in enumerate(self._lin):
            hidden = k < self.n_layers - 1
            out.append((f"{k * step}", i, "hidden" if hidden else "out"))
            if hidden and self.layer_norm:
                out.append((f"{k * step + 1}", self._norm[k], "norm"))
        return out

    def linear_state_dict(self, member: int = 0) -> dict[str, torch.Tensor]:
        """Member ``member``'s weights as the state dict of :meth:`to_sequential`'s module,
        ``nn.Sequential(Linear, [LayerNorm,] act, ..., Linear)``: keys ``"0.weight"``, ``"0.bias"``,
        ``"2.weight"``, ... (``"1.weight"``/``"1.bias"`` are LayerNorm's ``γ``/``β`` when
        ``layer_norm``); ``nn.Linear`` weights are ``(out, in)``. Copies, contiguous."""
        self._check_member(member)
        v = self.member_views(self.flat.detach())
        sd: dict[str, torch.Tensor] = {}
        for prefix, i, kind in self._sequential_keys():
            w = v[i][member]
            w = w.t() if kind == "hidden" else w.reshape(-1) if kind == "norm" else w
            sd[f"{prefix}.weight"] = w.clone(memory_format=torch.contiguous_format)
            sd[f"{prefix}.bias"] = v[i + 1][member].reshape(-1).clone()
        return sd

    def load_linear_state_dict(self, state: dict[str, torch.Tensor], member: int = 0) -> None:
        """Import member ``member``'s weights from :meth:`linear_state_dict`'s layout (e.g. the
        ``state_dict()`` of a plain ``nn.Sequential`` of ``nn.Linear``/``nn.LayerNorm`` layers)."""
        self._check_member(member)
        want = self.linear_state_dict(member)
        missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
        check(
            not missing and not extra,
            f"state dict does not match this MLP's layers (missing {missing}, unexpected {extra})",
            f"pass the state_dict() of nn.Sequential with keys {sorted(want)}",
        )
        for key, w in want.items():
            check(
                tuple(state[key].shape) == tuple(w.shape),
                f"{key} has shape {tuple(state[key].shape)}, this MLP needs {tuple(w.shape)}",
                "build the MLP with the same layer sizes as the exported network",
            )
        v = self.member_views(self.flat.detach())
        with torch.no_grad():
            for prefix, i, kind in self._sequential_keys():
                w = state[f"{prefix}.weight"]
                dst = v[i][member]
                dst.copy_(w.t() if kind == "hidden" else w.reshape(dst.shape))
                v[i + 1][member].copy_(state[f"{prefix}.bias"].reshape(v[i + 1][member].shape))

    def to_sequential(self, member: int = 0) -> nn.Sequential:
        """Member ``member`` as a plain ``nn.Sequential`` of ``nn.Linear``, ``nn.LayerNorm`` and
        activation modules, holding copies of the weights (same device and dtype)."""
        sizes = (self.in_dim, *self.hidden, self.out_dim)
        layers: list[nn.Module] = []
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(fan_in, fan_out))
            if k < self.n_layers - 1:
                if self.layer_norm:
                    layers.append(nn.LayerNorm(fan_out, eps=_LN_EPS))
                layers.append(ACTIVATIONS[self.activation][1]())
        seq = nn.Sequential(*layers).to(device=self.flat.device, dtype=self.flat.dtype)
        seq.load_state_dict(self.linear_state_dict(member))
        return seq

    # ------------------------------------------------------------------ stacking
    @classmethod
    def stack(cls, mlps: Sequence[MLP]) -> MLP:
        """One MLP whose members are those of ``mlps``, in order: K MLPs of ensemble ``E_k`` (same
        sizes, activation and LayerNorm) give one of ensemble ``Σ E_k``; its forward on
        ``(Σ E_k, B, in)`` (or a shared ``(B, in)``) gives every member's output. The weights are
        copied (on the first MLP's device and dtype); :meth:`unstack` is the inverse."""
        mlps = list(mlps)
        check(len(mlps) > 0, "MLP.stack got no MLPs", "pass a non-empty list of MLPs")
        first = mlps[0]
        for m in mlps[1:]:
            check(
                m._spec() == first._spec(),
                f"cannot stack MLPs of different shapes: {m.extra_repr()} vs {first.extra_repr()}",
                "stack copies built with the same sizes, activation and layer_norm",
            )
        out = cls.__new__(cls)
        nn.Module.__init__(out)
        out._build(*first._spec()[:3], sum(m.ensemble for m in mlps), *first._spec()[3:], like=first.flat)
        with torch.no_grad():
            srcs = [m.member_views(m.flat.detach()) for m in mlps]
            for i, dst in enumerate(out.member_views(out.flat.detach())):
                dst.copy_(torch.cat([s[i] for s in srcs], 0))
        out.flat.requires_grad_(first.flat.requires_grad)
        return out

    def unstack(self, k: int) -> list[MLP]:
        """Inverse of :meth:`stack`: ``k`` MLPs of ensemble ``E / k`` (members in order), copies."""
        check(
            k >= 1 and self.ensemble % k == 0,
            f"cannot split an ensemble of {self.ensemble} into {k} equal parts",
            "pass the number of stacked copies",
        )
        e = self.ensemble // k
        src = self.member_views(self.flat.detach())
        parts = []
        for g in range(k):
            m = type(self).__new__(type(self))
            nn.Module.__init__(m)
            m._build(*self._spec()[:3], e, *self._spec()[3:], like=self.flat)
            with torch.no_grad():
                for i, dst in enumerate(m.member_views(m.flat.detach())):
                    dst.copy_(src[i][g * e : (g + 1) * e])
            m.flat.requires_grad_(self.flat.requires_grad)
            parts.append(m)
        return parts

    # ------------------------------------------------------------------ forward
    def _ws(self, flat: torch.Tensor, member: int | None) -> list[torch.Tensor]:
        ws = self.views(flat)
        if member is not None and self.ensemble > 1:
            self._check_member(member)
            ws = [w[member] for w in ws]
        return ws

    def _use_fused(self) -> bool:
        return self._fused and not _transforms_active()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._use_fused():
            return _MLPFunction.apply(x, self.flat, self, None, False)[0]
        return _plain_run(self, x, self.views(self.flat))[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output and the last hidden layer's activations (the penultimate features)."""
        if self._use_fused():
            return _MLPFunction.apply(x, self.flat, self, None, True)
        return _plain_run(self, x, self.views(self.flat))

    def forward_frozen(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with the weights as constants: gradient reaches ``x`` only, and the
        backward skips the weight-gradient products (a third of the work)."""
        if self._use_fused():
            return _MLPFunction.apply(x, self.flat.detach(), self, None, False)[0]
        return _plain_run(self, x, self.views(self.flat.detach()))[0]

    def forward_member(self, x: torch.Tensor, member: int) -> torch.Tensor:
        """Member ``member`` alone on ``(B, in)``: ``(B, out)``. Differentiable in ``x`` and in the
        weights (member ``member``'s slice of the gradient; zero elsewhere)."""
        if self._use_fused():
            m = member if self.ensemble > 1 else None
            return _MLPFunction.apply(x, self.flat, self, m, False)[0]
        return _plain_run(self, x, self._ws(self.flat, member))[0]

    def forward_member_frozen(self, x: torch.Tensor, member: int) -> torch.Tensor:
        """Member ``member`` alone, weights as constants: ``(B, out)``; gradient reaches ``x`` only."""
        if self._use_fused():
            m = member if self.ensemble > 1 else None
            return _MLPFunction.apply(x, self.flat.detach(), self, m, False)[0]
        return _plain_run(self, x, self._ws(self.flat.detach(), member))[0]


def _run(x: torch.Tensor, ws: list[torch.Tensor], n: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Fused-engine forward over weight views; returns the output and the post-ReLU activations."""
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


def _plain_run(mlp: MLP, x: torch.Tensor, ws: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Differentiable forward with ordinary autograd ops (any activation, LayerNorm):
    :math:`h_{k+1} = \mathrm{act}(\mathrm{LN}_{\gamma,\beta}(h_k W_k + b_k))`, :math:`y = h W^\top + b`.
    Returns the output and the last hidden activations (``x`` when there is no hidden layer)."""
    act = ACTIVATIONS[mlp.activation][0]
    ens = ws[0].dim() == 3
    h = x
    for k in range(mlp.n_layers - 1):
        i = mlp._lin[k]
        w, b = ws[i], ws[i + 1]
        if ens:
            h = torch.baddbmm(b, h if h.dim() == 3 else h.expand(w.shape[0], *h.shape), w)
        else:
            h = torch.addmm(b, h, w)
        if mlp.layer_norm:
            gamma, beta = ws[mlp._norm[k]], ws[mlp._norm[k] + 1]
            h = torch.addcmul(beta, F.layer_norm(h, h.shape[-1:], eps=_LN_EPS), gamma)
        h = act(h)
    w, b = ws[-2], ws[-1]
    if ens:
        y = torch.baddbmm(b, h if h.dim() == 3 else h.expand(w.shape[0], *h.shape), w.transpose(1, 2))
    else:
        y = torch.addmm(b, h, w.t())
    return y, h


def mlp_forward(
    mlp: MLP, x: torch.Tensor, flat: torch.Tensor | None = None, member: int | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Fused forward without autograd: the output and the saved post-ReLU activations for
    :func:`mlp_backward`. ``flat`` defaults to ``mlp.flat`` (pass a target network's buffer);
    ``member`` runs one ensemble member alone. Fused MLPs only (:attr:`MLP.fused`)."""
    if not mlp._fused or _transforms_active():
        raise _not_fused(mlp, "mlp_forward")
    return _run(x, _plan(mlp, mlp.flat if flat is None else flat, member), mlp.n_layers)


def _grad_views(mlp: MLP, gflat: torch.Tensor, member: int | None) -> list[torch.Tensor]:
    """Views of a gradient buffer the backward writes into; for one member, that member's slices
    laid out as a single network (biases ``(out,)``)."""
    if member is None or mlp.ensemble == 1:
        return mlp.views(gflat)
    gs = [g[member] for g in mlp.views(gflat)]
    return [g if i % 2 == 0 else g.reshape(-1) for i, g in enumerate(gs)]


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
    r"""Hand-fused backward of :func:`mlp_forward`: returns ``(grad_x, grad_flat)``.

    ``gy`` has the output's shape; ``gfeat`` (optional) is a gradient on the last hidden
    activations. Exactly the gradients autograd would compute for the layer stack:
    :math:`g_{W} = h^\top g`, :math:`g_b = \sum_B g`, :math:`g \leftarrow (g W^\top) \odot 1[h > 0]`.
    With ``member`` (one ensemble member alone) and ``need_w``, ``grad_flat`` holds that member's
    weight gradient and zeros elsewhere.
    """
    if not mlp._fused or _transforms_active():
        raise _not_fused(mlp, "mlp_backward")
    ws = _plan(mlp, mlp.flat if flat is None else flat, member)
    n = mlp.n_layers
    ens = ws[0].dim() == 3
    gflat = gs = None
    if need_w:
        one = member is not None and mlp.ensemble > 1
        gflat = torch.zeros_like(mlp.flat) if one else torch.empty_like(mlp.flat)
        gs = _grad_views(mlp, gflat, member)

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
    """One autograd node for a whole fused MLP, with the hand-fused backward of :func:`mlp_backward`
    (a differentiable recomputation instead when the backward itself is recorded: double backward)."""

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
        if torch.is_grad_enabled():  # create_graph=True: the gradient must itself be differentiable
            return _MLPFunction._differentiable_backward(ctx, gy, gfeat)
        x, flat, *hs = ctx.saved_tensors
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
            need_w=ctx.needs_input_grad[1],
            member=ctx.member,
            flat=flat,
        )
        return gx, gflat, None, None, None

    @staticmethod
    def _differentiable_backward(ctx: Any, gy: torch.Tensor | None, gfeat: torch.Tensor | None) -> tuple:
        """Recompute the forward with plain ops and differentiate it with ``create_graph=True``."""
        x, flat, *_ = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        mlp = ctx.mlp
        with torch.enable_grad():
            xi = x if need_x else x.detach()
            fi = flat if need_w else flat.detach()
            y, feat = _plain_run(mlp, xi, mlp._ws(fi, ctx.member))
            outs = [(t, g) for t, g in ((y, gy), (feat, gfeat)) if g is not None]
            wrt = [t for t, need in ((xi, need_x), (fi, need_w)) if need]
            grads = torch.autograd.grad(
                [t for t, _ in outs], wrt, [g for _, g in outs], create_graph=True, allow_unused=True
            )
        it = iter(grads)
        gx = next(it) if need_x else None
        gflat = next(it) if need_w else None
        return gx, gflat, None, None, None


class FlatAdam(torch.optim.Optimizer):
    r"""Adam (Kingma & Ba 2015; PyTorch's defaults and update rule) on one flat parameter, as one
    fused kernel call per step (``torch._fused_adam_``, the kernel behind
    ``torch.optim.Adam(fused=True)``):

    .. math::

        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        \theta \leftarrow \theta - \mathrm{lr}\,\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    A :class:`torch.optim.Optimizer`: one param group (``lr``, ``betas``, ``eps``, read at every
    step, so ``torch.optim.lr_scheduler`` schedulers work) and per-parameter state ``step`` (0-d
    float32 on the parameter's device: a step never synchronises with the host), ``exp_avg``,
    ``exp_avg_sq``. ``step(grad)`` uses ``grad``; ``step()`` uses ``param.grad`` (skips when None).
    Step hooks run; unlike ``torch.optim`` optimizers the step is not wrapped in a profiler range
    (which costs more than the kernel on a small CPU). Under CUDA-graph capture a float ``lr`` is
    captured as a constant: give a 0-d tensor ``lr`` to schedule a captured step.
    """

    def __init__(
        self,
        param: torch.Tensor,
        lr: float | torch.Tensor = 3e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if not isinstance(param, torch.Tensor):
            raise RlregError(
                f"FlatAdam optimises one tensor, got {type(param).__name__}",
                "pass one flat parameter (e.g. MLP.flat); use torch.optim.Adam for parameter lists",
            )
        lr = lr if isinstance(lr, torch.Tensor) else float(lr)
        check(float(lr) >= 0 and float(eps) >= 0, f"invalid lr {lr} or eps {eps}", "use lr, eps >= 0")
        check(all(0.0 <= float(b) < 1.0 for b in betas), f"invalid betas {betas}", "use betas in [0, 1)")
        defaults = {"lr": lr, "betas": (float(betas[0]), float(betas[1])), "eps": float(eps)}
        super().__init__([param], defaults)
        st = self.state[param]
        st["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
        st["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        st["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        self._bind()

    def _bind(self) -> None:
        self._param = self.param_groups[0]["params"][0]
        self._st = self.state[self._param]

    def __setstate__(self, state: dict[str, Any]) -> None:  # unpickling, deepcopy
        super().__setstate__(state)
        self._bind()

    def _patch_step_function(self) -> None:
        # torch.optim wraps ``step`` in a profiler range that costs ~15 µs a call on CPU (a fifth of
        # the fused kernel for a TD3 critic); step() runs the step hooks itself instead
        self._zero_grad_profile_name = f"Optimizer.zero_grad#{type(self).__name__}.zero_grad"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        params = param_group["params"]
        n = 1 if isinstance(params, torch.Tensor) else len(list(params))
        check(
            not self.param_groups and n == 1,
            "FlatAdam optimises exactly one flat parameter",
            "create one FlatAdam per flat parameter (MLP.flat), or use torch.optim.Adam",
        )
        super().add_param_group(param_group)

    @property
    def param(self) -> torch.Tensor:
        """The flat parameter."""
        return self._param

    @property
    def exp_avg(self) -> torch.Tensor:
        return self._st["exp_avg"]

    @property
    def exp_avg_sq(self) -> torch.Tensor:
        return self._st["exp_avg_sq"]

    @property
    def step_t(self) -> torch.Tensor:
        """The step counter (0-d float32 tensor on the parameter's device)."""
        return self._st["step"]

    @property
    def lr(self) -> float | torch.Tensor:
        """The learning rate the next step uses (``param_groups[0]["lr"]``)."""
        return self.param_groups[0]["lr"]

    def step(  # type: ignore[override]
        self, grad: torch.Tensor | Callable[[], Any] | None = None, closure: Callable[[], Any] | None = None
    ) -> Any:
        """One Adam step with gradient ``grad`` (default ``param.grad``); ``closure`` (optional, also
        accepted as the first argument) re-evaluates the loss first, as in ``torch.optim``."""
        if (
            not isinstance(grad, torch.Tensor)
            or closure is not None
            or _global_optimizer_pre_hooks
            or _global_optimizer_post_hooks
            or self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
        ):
            return self._step_general(grad, closure)
        self._kernel(grad)  # the agents' path: a gradient tensor, no hooks
        return None

    def _step_general(self, *args: Any) -> Any:
        """``step`` with hooks, a closure or ``param.grad``."""
        kwargs: dict[str, Any] = {}
        for hook in (*_global_optimizer_pre_hooks.values(), *self._optimizer_step_pre_hooks.values()):
            result = hook(self, args, kwargs)
            if result is not None:
                args, kwargs = result
        grad, closure = (*args, None, None)[:2]
        grad, closure = kwargs.get("grad", grad), kwargs.get("closure", closure)
        if callable(grad) and not isinstance(grad, torch.Tensor):
            closure, grad = grad, None
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if grad is None:
            grad = self._param.grad
        if grad is not None:
            self._kernel(grad)
        for hook in (*self._optimizer_step_post_hooks.values(), *_global_optimizer_post_hooks.values()):
            hook(self, args, kwargs)
        return loss

    def _kernel(self, grad: torch.Tensor) -> None:
        group, st = self.param_groups[0], self._st
        step_t = st["step"]
        step_t.add_(1.0)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(
            [self._param.data],
            [grad],
            [st["exp_avg"]],
            [st["exp_avg_sq"]],
            [],
            [step_t],
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=group["eps"],
            amsgrad=False,
            maximize=False,
        )

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim`` format, of plain types only (loads with ``torch.load(weights_only=True)``):
        ``{"state": {0: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [{"lr", "betas" (a
        list), "eps", ..., "params": [0]}]}``; tensors are copies."""
        sd = super().state_dict()
        state = {
            i: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
            for i, s in sd["state"].items()
        }
        groups = [
            {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in sd["param_groups"]
        ]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load :meth:`state_dict`'s format (also a one-parameter ``torch.optim.Adam`` state, or the
        earlier FlatAdam format with top-level ``exp_avg``/``exp_avg_sq``/``step``/``lr``/``betas``/
        ``eps``), **in place**: the state tensors keep their storage (CUDA graphs replay on them).
        A state of another size raises ``RuntimeError``."""
        for hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        state, group = _split_adam_state(state_dict)
        st = self._st
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state and tuple(state[key].shape) != tuple(st[key].shape):
                raise RuntimeError(
                    f"FlatAdam state has {state[key].numel()} entries, expected {st[key].numel()}: it was "
                    "saved for a network of another size"
                )
        with torch.no_grad():
            for key in ("exp_avg", "exp_avg_sq", "step"):
                if key in state:
                    st[key].copy_(torch.as_tensor(state[key]))
                else:  # a torch.optim state saved before its first step
                    st[key].zero_()
        mine = self.param_groups[0]
        for k, v in group.items():
            if k not in ("params", "param_names"):
                mine[k] = tuple(float(b) for b in v) if k == "betas" else v
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)


def _split_adam_state(sd: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(per-parameter state, param group)`` of a FlatAdam / one-parameter Adam state dict."""
    if "param_groups" not in sd:  # earlier FlatAdam format
        state = {k: sd[k] for k in ("exp_avg", "exp_avg_sq", "step")}
        return state, {k: sd[k] for k in ("lr", "betas", "eps")}
    groups = sd["param_groups"]
    if len(groups) != 1 or len(groups[0]["params"]) != 1:
        raise RuntimeError(
            f"FlatAdam state must have one param group of one parameter, got "
            f"{[len(g['params']) for g in groups]} parameter(s) per group"
        )
    pid = groups[0]["params"][0]
    return dict(sd["state"].get(pid, {})), groups[0]


class ActionBox(nn.Module):
    """``t ↦ mid + scale · t``: maps ``tanh`` outputs in ``[-1, 1]`` to the box ``[low, high]``
    (buffers ``mid = (high + low) / 2``, ``scale = (high - low) / 2``); the last module of
    :meth:`Actor.to_sequential` when the box is not ``[-1, 1]``."""

    def __init__(self, mid: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mid", mid.detach().clone())
        self.register_buffer("scale", scale.detach().clone())

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.mid, self.scale, t)


class Actor(nn.Module):
    """Deterministic policy ``a = mid + half · tanh(MLP(s))`` on the box ``[low, high]``.

    For the symmetric unit box (D4RL locomotion) this is exactly ``max_action · tanh``.
    ``activation`` / ``layer_norm``: see :class:`MLP`. A stacked actor (:meth:`stack`, K copies)
    maps ``(K, B, obs)`` (or a shared ``(B, obs)``) to ``(K, B, act)``; ``copies`` is K, or None
    for an ordinary actor.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        action_low: torch.Tensor,
        action_high: torch.Tensor,
        *,
        activation: str = "relu",
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.net = MLP(obs_dim, hidden, act_dim, activation=activation, layer_norm=layer_norm)
        low = torch.as_tensor(action_low, dtype=torch.float32).reshape(act_dim)
        high = torch.as_tensor(action_high, dtype=torch.float32).reshape(act_dim)
        self._set_box((high + low) / 2, (high - low) / 2)
        self.copies: int | None = None

    def _set_box(self, mid: torch.Tensor, scale: torch.Tensor) -> None:
        self.register_buffer("act_mid", mid)
        self.register_buffer("act_scale", scale)
        self.unit_box = bool(torch.all(self.act_mid == 0) and torch.all(self.act_scale == 1))
        """True for the box [-1, 1]^A, where the map to the box is the identity."""

    def _box(self, member: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mid, scale)``, each ``(act,)``, of copy ``member`` (boxes are per copy when stacked
        actors had different boxes)."""
        if self.act_mid.dim() == 3:
            return self.act_mid[member, 0], self.act_scale[member, 0]
        return self.act_mid, self.act_scale

    def to_box(self, t: torch.Tensor) -> torch.Tensor:
        """Map ``t = tanh(·)`` in ``[-1, 1]`` to the action box: ``mid + half · t``."""
        return t if self.unit_box else torch.addcmul(self.act_mid, self.act_scale, t)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.copies is None:
            return self.to_box(torch.tanh(self.net(obs)))
        if self.net.ensemble == 1:  # one stacked copy: the MLP has no member axis
            return self.to_box(torch.tanh(self.net(obs[0] if obs.dim() == 3 else obs))).unsqueeze(0)
        return self.to_box(torch.tanh(self.net(obs)))

    # ------------------------------------------------------------------ stacking
    @classmethod
    def stack(cls, actors: Sequence[Actor]) -> Actor:
        """K actors (same sizes; stacked ones count as their copies) as one actor with K copies:
        input ``(K, B, obs)`` or shared ``(B, obs)``, output ``(K, B, act)``. Weights are copied;
        the boxes are kept per copy (``act_mid``/``act_scale`` ``(K, 1, act)``) unless all equal."""
        actors = list(actors)
        check(len(actors) > 0, "Actor.stack got no actors", "pass a non-empty list of actors")
        mids = [a.act_mid.reshape(-1, a.act_mid.shape[-1]) for a in actors]
        scales = [a.act_scale.reshape(-1, a.act_scale.shape[-1]) for a in actors]
        counts = [a.copies or 1 for a in actors]
        mid = torch.cat([m.expand(c, -1) for m, c in zip(mids, counts)])
        scale = torch.cat([s.expand(c, -1) for s, c in zip(scales, counts)])
        out = cls.__new__(cls)
        nn.Module.__init__(out)
        out.net = MLP.stack([a.net for a in actors])
        if bool(torch.all(mid == mid[0]) and torch.all(scale == scale[0])):
            out._set_box(mid[0].clone(), scale[0].clone())
        else:
            out._set_box(mid.unsqueeze(1).clone(), scale.unsqueeze(1).clone())
        out.copies = sum(counts)
        return out

    def unstack(self) -> list[Actor]:
        """Inverse of :meth:`stack`: the copies as ordinary actors (weights copied)."""
        check(self.copies is not None, "this actor is not stacked", "call Actor.stack first")
        parts = []
        for k, net in enumerate(self.net.unstack(self.copies)):
            a = type(self).__new__(type(self))
            nn.Module.__init__(a)
            a.net = net
            a._set_box(*(t.clone() for t in self._box(k)))
            a.copies = None
            parts.append(a)
        return parts

    # ------------------------------------------------------------------ export
    def sequential_state_dict(self, member: int = 0) -> dict[str, torch.Tensor]:
        """The MLP's weights (copy ``member`` of a stacked actor) under the keys of
        ``nn.Sequential(Linear, act, ..., Linear)`` (:meth:`MLP.linear_state_dict`). That module
        gives the pre-squash output ``z``; the action is ``mid + half · tanh(z)``
        (:meth:`to_sequential` includes both)."""
        return self.net.linear_state_dict(member)

    def load_sequential_state_dict(self, state: dict[str, torch.Tensor], member: int = 0) -> None:
        """Import the MLP's weights from :meth:`sequential_state_dict`'s layout (keys of the plain
        ``nn.Sequential``; ``Tanh``/:class:`ActionBox` entries of :meth:`to_sequential` are ignored)."""
        keys = set(self.net.linear_state_dict(member))
        self.net.load_linear_state_dict({k: v for k, v in state.items() if k in keys}, member)

    def to_sequential(self, member: int = 0) -> nn.Sequential:
        """A plain ``nn.Sequential(Linear, act, ..., Linear, Tanh[, ActionBox])`` giving this actor's
        actions (copy ``member`` of a stacked actor); :class:`ActionBox` is left out for the unit box."""
        seq = self.net.to_sequential(member)
        seq.append(nn.Tanh())
        if not self.unit_box:
            seq.append(ActionBox(*self._box(member)))
        return seq


class Critic(nn.Module):
    """An ensemble of ``n_heads`` independent Q networks on ``cat(s, a)``; output ``(H, B)``.

    ``activation`` / ``layer_norm``: see :class:`MLP`. A stacked critic (:meth:`stack`, K copies of
    H heads; ``copies`` is K, None for an ordinary critic) takes ``(K, B, obs), (K, B, act)`` (either
    may be shared ``(B, ·)``) and returns ``(K, H, B)``; its MLP has ``K·H`` members, copy-major.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        n_heads: int = 2,
        *,
        activation: str = "relu",
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.n_heads = int(n_heads)
        self.net = MLP(
            obs_dim + act_dim, hidden, 1, ensemble=self.n_heads, activation=activation, layer_norm=layer_norm
        )
        self.copies: int | None = None

    def _input(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``cat(s, a)`` laid out for a stacked critic's ``K·H`` members (or shared ``(B, in)``)."""
        if obs.dim() != act.dim():
            k = (obs if obs.dim() == 3 else act).shape[0]
            obs = obs.expand(k, *obs.shape) if obs.dim() == 2 else obs
            act = act.expand(k, *act.shape) if act.dim() == 2 else act
        x = torch.cat([obs, act], dim=-1)
        if x.dim() == 3:
            if self.net.ensemble == 1:
                return x[0]
            if self.n_heads > 1:
                x = x.unsqueeze(1).expand(x.shape[0], self.n_heads, *x.shape[1:]).reshape(-1, *x.shape[1:])
        return x

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        if self.copies is None:
            return self.net(torch.cat([obs, act], dim=-1)).reshape(self.n_heads, -1)
        return self.net(self._input(obs, act)).reshape(self.copies, self.n_heads, -1)

    def forward_features(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(H, B)`` Q values and ``(H, B, F)`` penultimate features from one forward pass
        (stacked: ``(K, H, B)`` and ``(K, H, B, F)``)."""
        if self.copies is not None:
            q, h = self.net.forward_features(self._input(obs, act))
            return q.reshape(self.copies, self.n_heads, -1), h.reshape(
                self.copies, self.n_heads, *h.shape[-2:]
            )
        q, h = self.net.forward_features(torch.cat([obs, act], dim=-1))
        if self.n_heads == 1:
            h = h.unsqueeze(0)
        return q.reshape(self.n_heads, -1), h

    def output_weights(self) -> torch.Tensor:
        """``(E, H)`` weights of each head's output layer (``Q_e = w_eᵀ φ_e + b_e``), no gradient
        (stacked: ``(K, E, H)``)."""
        with torch.no_grad():
            w = self.net.member_views(self.net.flat)[self.net._lin[-1]]  # (members, 1, H)
            w = w.reshape(-1, w.shape[-1])
            return w if self.copies is None else w.reshape(self.copies, self.n_heads, -1)

    def q1(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Head 1, ``(B,)`` (stacked: ``(K, B)``), differentiable as :meth:`forward` is: the gradient
        reaches head 1's weights and the inputs; the other heads get zero gradient."""
        if self.copies is not None:
            return self(obs, act)[:, 0]
        x = torch.cat([obs, act], dim=-1)
        if self.n_heads == 1:
            return self.net(x).reshape(-1)
        return self.net.forward_member(x, 0).reshape(-1)

    def q1_frozen(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Head 1 with the critic weights as constants (TD3's actor objective): gradient reaches
        ``obs``/``act`` only, and the backward skips the weight-gradient products."""
        if self.copies is not None:
            return self.net.forward_frozen(self._input(obs, act)).reshape(self.copies, self.n_heads, -1)[:, 0]
        x = torch.cat([obs, act], dim=-1)
        if self.n_heads == 1:
            return self.net.forward_frozen(x).reshape(-1)
        return self.net.forward_member_frozen(x, 0).reshape(-1)

    # ------------------------------------------------------------------ stacking
    @classmethod
    def stack(cls, critics: Sequence[Critic]) -> Critic:
        """K critics of H heads each (same sizes; stacked ones count as their copies) as one critic
        with K copies: ``(K, B, obs), (K, B, act) → (K, H, B)``. Weights are copied."""
        critics = list(critics)
        check(len(critics) > 0, "Critic.stack got no critics", "pass a non-empty list of critics")
        heads = {c.n_heads for c in critics}
        check(len(heads) == 1, f"cannot stack critics with {sorted(heads)} heads", "stack equal critics")
        out = cls.__new__(cls)
        nn.Module.__init__(out)
        out.n_heads = critics[0].n_heads
        out.net = MLP.stack([c.net for c in critics])
        out.copies = sum(c.copies or 1 for c in critics)
        return out

    def unstack(self) -> list[Critic]:
        """Inverse of :meth:`stack`: the copies as ordinary critics (weights copied)."""
        check(self.copies is not None, "this critic is not stacked", "call Critic.stack first")
        parts = []
        for net in self.net.unstack(self.copies):
            c = type(self).__new__(type(self))
            nn.Module.__init__(c)
            c.n_heads, c.net, c.copies = self.n_heads, net, None
            parts.append(c)
        return parts
