"""L2 normalisation across channels with a learnable per-channel scale (paper 27, SSD).

Liu et al., "SSD: Single Shot MultiBox Detector", ECCV 2016, arXiv 1512.02325, Sec. 3.1 ("conv4_3 has a
different feature scale compared to the other layers, we use the L2 normalization technique introduced
in ParseNet to scale the feature norm at each location in the feature map to 20 and learn the scale
during back propagation"); ParseNet: Liu, Rabinovich, Berg, arXiv 1506.04579, Sec. 3.3.

At every position, over the C channels of (B, C, *spatial):

    y_c = gamma_c * x_c / sqrt(sum_c' x_c'^2 + eps),        gamma initialised to ``scale`` (20)

i.e. the official Caffe ``Normalize`` layer with ``across_spatial: false, channel_shared: false`` and its
``eps = 1e-10`` inside the square root (torchvision's SSD divides by ``max(||x||, 1e-12)`` instead; the two
agree to float precision unless the norm at a position is ~1e-5 or smaller). The state dict holds one
tensor ``weight`` of shape (C,), the per-channel scale.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["L2Norm"]


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation, then a learnable per-channel scale (initial value ``scale``)."""

    def __init__(self, channels: int, scale: float = 20.0, eps: float = 1e-10):
        super().__init__()
        self.channels, self.init_scale, self.eps = channels, float(scale), eps
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(self.init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, *spatial) -> (B, C, *spatial); every position's channel vector has norm gamma
        inv_norm = torch.rsqrt(x.pow(2).sum(1, keepdim=True) + self.eps)
        return x * inv_norm * self.weight.view(1, -1, *([1] * (x.dim() - 2)))

    def extra_repr(self) -> str:
        return f"{self.channels}, scale={self.init_scale:g}"
