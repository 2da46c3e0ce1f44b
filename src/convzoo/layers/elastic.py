"""Elastic layers: one set of weights at the largest size, used at any smaller size by slicing.

The weight-sharing rule of BigNAS ("BigNAS: Scaling Up Neural Architecture Search with Big
Single-Stage Models", Yu et al., ECCV 2020, arXiv 2003.11142, Sec. 3 and Table 1), after slimmable
networks: a child with ``c`` channels uses the *first* ``c`` filters (lowest indices) of the shared
tensor; a child with a ``k x k`` kernel uses the *centre* ``k x k`` window of the largest kernel
(plain centre crop, no kernel-transformation matrices as in Once-for-All). The input width of every
layer is the width of the tensor it receives, so only output widths and kernel sizes are chosen.

* :class:`ElasticConv2d` -- a conv (dense or depth-wise) run at ``(out_channels, kernel_size)``.
* :class:`ElasticBatchNorm2d` -- BN over the first ``C`` channels of its statistics and affine
  parameters. ``track`` says whether a training-mode call updates the running statistics; with
  ``momentum=None`` they are the cumulative average over the batches seen since the last
  :meth:`~ElasticBatchNorm2d.reset_running_stats` (what BN calibration uses). It is deliberately not a
  ``torch.nn`` BatchNorm subclass, so that ``SyncBatchNorm`` conversion and conv+BN folding, which
  assume fixed widths, leave it alone.
* :class:`ElasticLinear` -- a linear layer reading the first ``in_features`` inputs.

``to_static()`` on each gives the plain ``torch.nn`` layer at one size with the sliced weights copied.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ElasticBatchNorm2d", "ElasticConv2d", "ElasticLinear", "centre_crop_kernel"]


def centre_crop_kernel(weight: torch.Tensor, k: int) -> torch.Tensor:
    """The centre ``k x k`` window of a ``(..., K, K)`` kernel (K - k even)."""
    big = weight.shape[-1]
    if k > big or (big - k) % 2:
        raise ValueError(f"cannot centre-crop a {big}x{big} kernel to {k}x{k}")
    s = (big - k) // 2
    return weight[..., s:s + k, s:s + k]


class ElasticConv2d(nn.Module):
    """A ``kernel_size``-max conv with 'same' padding (k // 2) whose width and kernel are chosen per call."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 depthwise: bool = False, bias: bool = False):
        super().__init__()
        if depthwise and in_channels != out_channels:
            raise ValueError("a depth-wise conv keeps its width")
        self.stride, self.depthwise, self.kernel_size = stride, depthwise, kernel_size
        fan_in = 1 if depthwise else in_channels
        self.weight = nn.Parameter(torch.empty(out_channels, fan_in, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def sliced(self, cin: int, cout: int, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) of the child: the first ``cout`` filters over the first ``cin`` inputs, centre k x k."""
        w = self.weight[:cout] if self.depthwise else self.weight[:cout, :cin]
        w = centre_crop_kernel(w, k) if k != self.kernel_size else w
        return w, (self.bias[:cout] if self.bias is not None else None)

    def forward(self, x: torch.Tensor, out_channels: int | None = None, kernel_size: int | None = None):
        # x: (B, cin, H, W) -> (B, cout, ceil(H / stride), ceil(W / stride))
        cin = x.shape[1]
        cout = cin if self.depthwise else (out_channels or self.weight.shape[0])
        k = kernel_size or self.kernel_size
        w, b = self.sliced(cin, cout, k)
        return F.conv2d(x, w, b, self.stride, k // 2, 1, cin if self.depthwise else 1)

    @torch.no_grad()
    def to_static(self, cin: int, cout: int, k: int) -> nn.Conv2d:
        groups = cin if self.depthwise else 1
        conv = nn.Conv2d(cin, cout, k, self.stride, k // 2, groups=groups, bias=self.bias is not None,
                         device=self.weight.device, dtype=self.weight.dtype)
        w, b = self.sliced(cin, cout, k)
        conv.weight.copy_(w)
        if b is not None:
            conv.bias.copy_(b)
        return conv


class ElasticBatchNorm2d(nn.Module):
    """BatchNorm2d over the first C channels of the input it receives (see the module docstring)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.track = True
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) with C <= num_features -> (B, C, H, W)
        c = x.shape[1]
        w, b = self.weight[:c], self.bias[:c]
        if not self.training:
            return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], w, b, False, 0.0, self.eps)
        if not self.track:  # batch statistics, running statistics untouched
            return F.batch_norm(x, None, None, w, b, True, 0.0, self.eps)
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        # the slices are views: batch_norm updates the first c running statistics in place
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], w, b, True, factor, self.eps)

    @torch.no_grad()
    def to_static(self, c: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(c, eps=self.eps, momentum=self.momentum, device=self.weight.device,
                            dtype=self.weight.dtype)
        bn.weight.copy_(self.weight[:c])
        bn.bias.copy_(self.bias[:c])
        bn.running_mean.copy_(self.running_mean[:c])
        bn.running_var.copy_(self.running_var[:c])
        bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn


class ElasticLinear(nn.Module):
    """``y = x W[:, :in]^T + b`` for inputs of any width up to ``in_features``."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / out_features**0.5  # EfficientNet's dense initialiser: U(-1/sqrt(out), 1/sqrt(out))
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, cin) -> (B, out_features)
        return F.linear(x, self.weight[:, :x.shape[-1]], self.bias)

    @torch.no_grad()
    def to_static(self, cin: int) -> nn.Linear:
        fc = nn.Linear(cin, self.out_features, device=self.weight.device, dtype=self.weight.dtype)
        fc.weight.copy_(self.weight[:, :cin])
        fc.bias.copy_(self.bias)
        return fc
