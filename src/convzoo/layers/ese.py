"""Effective Squeeze-Excitation (eSE), VoVNetV2 (paper 53: Lee & Park, CenterMask, CVPR 2020,
arXiv 1911.06667, Sec. 2 "VoVNetV2").

SE (Hu et al. 2018) squeezes C channels to C/r and back with two FC layers; the CenterMask paper argues
that the reduction loses channel information and replaces both FCs by ONE FC that keeps the width:

    s = GAP(x)                              (B, C, 1, 1)
    a = hard_sigmoid(W s + b)               (B, C, 1, 1)   W: C x C, hard_sigmoid(z) = relu6(z + 3) / 6
    out = a * x                             (B, C, H, W)

so the layer has exactly C*C + C parameters. The FC is a 1x1 ``nn.Conv2d`` with bias stored as
``fc.weight`` (C, C, 1, 1) and ``fc.bias`` (C,), the key layout of both the official
``eSEModule`` (youngwanLEE/vovnet-detectron2) and timm's ``EffectiveSEModule``, so their weights load
unchanged. ``hard_sigmoid`` is ``F.hardsigmoid``, which is relu6(z + 3) / 6 exactly.

Property (tested): with W = 0 and b = 3 the gate is 1 everywhere and eSE is the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["EffectiveSE"]


class EffectiveSE(nn.Module):
    """eSE: GAP -> 1x1 conv C->C (bias) -> hard-sigmoid -> channel rescale; no dimensionality reduction.

    Args:
        channels: C, the channels of the input (and of the gate).
    """

    def __init__(self, channels: int):
        super().__init__()
        if int(channels) != channels or channels < 1:
            raise ConvzooError(f"EffectiveSE needs a positive channel count, got {channels!r}")
        self.channels = int(channels)
        self.fc = nn.Conv2d(self.channels, self.channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W)
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)  squeeze
        a = F.hardsigmoid(self.fc(s))  # (B, C, 1, 1)  excitation, in [0, 1]
        return x * a

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
