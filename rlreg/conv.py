r"""A small convolutional torso for image observations, fast on CPUs: :class:`ConvTorso`.

``[ZeroPad2d] → Conv2d → ReLU → [AvgPool2d(2)] → Flatten → [Linear → ReLU]`` (the PureJaxRL /
pgx MinAtar network, and the shape of most MinAtar torsos). It *is* that ``nn.Sequential`` (same
children, same state-dict keys, same function and gradients up to float reassociation); only the
forward pass is arranged for speed:

* **channels-last** convolution (oneDNN's fast layout on CPU);
* **ReLU and the 2×2 average pool as one autograd node** (:func:`relu_avg_pool2d`): the backward
  is one broadcast of the pooled gradient and one ReLU mask, instead of autograd's zero-filled
  pool gradient followed by a separate ReLU backward over the largest activation of the network;
* the flatten after the pool is a free view in channels-last order, and the first ``Linear``'s
  weight is read through the matching permutation (``(out, C, H, W) → (out, H, W, C)``), so no
  activation is copied back to channels-first.

Measured on one core (a 4096 × 4 × 10 × 10 MinAtar minibatch, forward + backward of the conv 32 k2
SAME → pool → Linear 64 torso, PyTorch's large-page allocation on): 183 ms as the plain
``nn.Sequential``, 182-198 ms with only a channels-last input (what a ``permute`` of NHWC
observations gives, as in an SB3 features extractor), 106-124 ms as :class:`ConvTorso`
(``scripts/bench_ppo.py`` times the whole PPO).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvTorso", "relu_avg_pool2d"]


class _ReluAvgPool2(torch.autograd.Function):
    """``avg_pool2d(relu(h), 2)`` for even H, W; the backward masks the broadcast pooled gradient."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(h)
        return F.avg_pool2d(h.clamp_min(0), 2)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (h,) = ctx.saved_tensors
        b, c, hh, ww = h.shape
        gl = (g * 0.25).permute(0, 2, 3, 1)  # (B, H/2, W/2, C), a view when g is channels-last
        up = gl.reshape(b, hh // 2, 1, ww // 2, 1, c).expand(b, hh // 2, 2, ww // 2, 2, c)
        up = up.reshape(b, hh, ww, c).permute(0, 3, 1, 2)  # channels-last (B, C, H, W)
        return torch.ops.aten.threshold_backward(up, h, 0.0)


def relu_avg_pool2d(h: torch.Tensor) -> torch.Tensor:
    r"""``avg_pool2d(relu(h), 2)`` on ``(B, C, H, W)``: :math:`p_{ij} = \frac14 \sum_{2\times2}
    \max(h, 0)`, with :math:`\partial p / \partial h = \frac14 \mathbb 1[h > 0]` on each window.

    One autograd node (even H and W, gradient needed); otherwise the plain ops, in place where no
    gradient is kept. Same values and gradients as ``F.avg_pool2d(F.relu(h), 2)``.
    """
    if h.requires_grad and torch.is_grad_enabled():
        if h.shape[-1] % 2 == 0 and h.shape[-2] % 2 == 0:
            return _ReluAvgPool2.apply(h)
        return F.avg_pool2d(F.relu(h), 2)
    return F.avg_pool2d(h.clamp_min(0), 2)


def _is_2x2(m: nn.Module) -> bool:
    """Whether ``m`` is ``AvgPool2d(2)`` with its defaults (what :func:`relu_avg_pool2d` computes)."""
    if type(m) is not nn.AvgPool2d:
        return False
    two = m.kernel_size in (2, (2, 2)) and m.stride in (2, (2, 2)) and m.padding in (0, (0, 0))
    return two and not m.ceil_mode and m.count_include_pad and m.divisor_override is None


class ConvTorso(nn.Sequential):
    """``[ZeroPad2d] → Conv2d → ReLU → [AvgPool2d(2)] → Flatten → [Linear → ReLU]``, run fast.

    Built like the ``nn.Sequential`` it is (module docstring); ``forward`` takes ``(B, C, H, W)``
    in any memory format and returns ``(B, features)`` as the plain sequential would. Any other
    stack of layers runs as the plain sequential.
    """

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(*layers)
        kinds = [type(m) for m in layers]
        i = 1 if kinds[:1] == [nn.ZeroPad2d] else 0
        self._i = i  # index of the conv; modules are read by index (attributes would rename the keys)
        self._pool = i + 2 < len(layers) and _is_2x2(layers[i + 2])
        j = i + 2 + int(self._pool)  # index of the Flatten
        self._linear = kinds[j:] == [nn.Flatten, nn.Linear, nn.ReLU]
        fast = kinds[i : i + 2] == [nn.Conv2d, nn.ReLU] and (self._linear or kinds[j:] == [nn.Flatten])
        self._fast = fast and (layers[j].start_dim, layers[j].end_dim) == (1, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not self._fast:
            return super().forward(x)
        x = x.contiguous(memory_format=torch.channels_last)
        if self._i:
            x = self[0](x)
        h = self[self._i](x)
        h = relu_avg_pool2d(h) if self._pool else F.relu(h)
        if not self._linear:
            return h.flatten(1)  # channels-first order, as nn.Flatten
        b, c, hh, ww = h.shape
        lin = self[-2]
        w = lin.weight.view(lin.out_features, c, hh, ww).permute(0, 2, 3, 1).reshape(lin.out_features, -1)
        return F.relu(F.linear(h.permute(0, 2, 3, 1).reshape(b, -1), w, lin.bias))
