"""Networks: plain MLPs with an optional ensemble dimension, a squashed deterministic actor and a
Q-ensemble critic that can return its penultimate features with Q in the same forward pass.

Parameters are ordinary leaf tensors with static shapes, so they can be stacked across seeds
(``torch.func.stack_module_state``) and the update can be captured on GPU. Initialisation is
PyTorch's default for ``nn.Linear`` (U(±1/√fan_in) for weights and biases), as in the official
TD3, TD3+BC, PRDC and A2PR code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "Actor", "Critic"]


class MLP(nn.Module):
    """ReLU MLP ``in → hidden… → out``; with ``ensemble=E > 1`` it holds E independent members.

    ``forward(x)``: ``x`` is ``(B, in)`` (shared by all members) or ``(E, B, in)``; the output is
    ``(B, out)`` for ``E == 1`` and ``(E, B, out)`` otherwise. Members' weights have shape
    ``(E, in, out)`` and run as one batched matmul.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, ensemble: int = 1) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.ensemble = int(in_dim), int(out_dim), int(ensemble)
        self.hidden = tuple(int(h) for h in hidden)
        sizes = (self.in_dim, *self.hidden, self.out_dim)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            if self.ensemble == 1:
                w = torch.empty(fan_out, fan_in).uniform_(-bound, bound)
                b = torch.empty(fan_out).uniform_(-bound, bound)
            else:
                w = torch.empty(self.ensemble, fan_in, fan_out).uniform_(-bound, bound)
                b = torch.empty(self.ensemble, 1, fan_out).uniform_(-bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def _layer(self, x: torch.Tensor, k: int) -> torch.Tensor:
        w, b = self.weights[k], self.biases[k]
        if self.ensemble == 1:
            return F.linear(x, w, b)
        if x.dim() == 2:
            return torch.matmul(x, w) + b
        return torch.baddbmm(b, x, w)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output and the last hidden layer's activations (the penultimate features)."""
        n = len(self.weights)
        h = x
        for k in range(n - 1):
            h = torch.relu(self._layer(h, k))
        return self._layer(h, n - 1), h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.weights)
        for k in range(n - 1):
            x = torch.relu(self._layer(x, k))
        return self._layer(x, n - 1)

    def member(self, i: int) -> MLP:
        """A single-member copy of member ``i`` (for inspection; not shared)."""
        out = MLP(self.in_dim, self.hidden, self.out_dim, 1)
        with torch.no_grad():
            for k in range(len(self.weights)):
                w = self.weights[k] if self.ensemble == 1 else self.weights[k][i].t()
                b = self.biases[k] if self.ensemble == 1 else self.biases[k][i, 0]
                out.weights[k].copy_(w)
                out.biases[k].copy_(b)
        return out


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
        self._unit = bool(torch.all(self.act_mid == 0) and torch.all(self.act_scale == 1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = torch.tanh(self.net(obs))
        return a if self._unit else torch.addcmul(self.act_mid, self.act_scale, a)


class Critic(nn.Module):
    """An ensemble of ``n_heads`` independent Q networks on ``cat(s, a)``; output ``(E, B)``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], n_heads: int = 2) -> None:
        super().__init__()
        self.n_heads = int(n_heads)
        self.net = MLP(obs_dim + act_dim, hidden, 1, ensemble=self.n_heads)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        q = self.net(torch.cat([obs, act], dim=-1))
        return q.reshape(self.n_heads, -1)

    def forward_features(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(E, B)`` Q values and ``(E, B, H)`` penultimate features from one forward pass."""
        q, h = self.net.forward_features(torch.cat([obs, act], dim=-1))
        if self.n_heads == 1:
            h = h.unsqueeze(0)
        return q.reshape(self.n_heads, -1), h

    def q1(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """The first head only, ``(B,)`` (TD3's actor objective uses Q1)."""
        x = torch.cat([obs, act], dim=-1)
        net = self.net
        if self.n_heads == 1:
            return net(x).reshape(-1)
        n = len(net.weights)
        for k in range(n):
            x = torch.addmm(net.biases[k][0], x, net.weights[k][0])
            if k < n - 1:
                x = torch.relu(x)
        return x.reshape(-1)
