"""Squeeze-and-Excitation (Hu et al., CVPR 2018, arXiv 1709.01507, Fig. 3): GAP -> FC (C -> C/r) -> ReLU
-> FC (C/r -> C) -> sigmoid -> rescale the channels.

``bias=False`` is the layout of IBN-Net's SE-ResNet (official ``ibnnet/modules.py`` ``SELayer``:
bias-free FCs, keys ``fc.0`` / ``fc.2``, hidden ``int(C / r)``); the SENet release uses biased 1x1
convs (timm ``legacy_seresnet*``), hence the sheet's 16,048 / 34,544 parameter difference.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, bias: bool = False):
        super().__init__()
        hidden = max(1, int(channels / reduction))
        self.fc = nn.Sequential(nn.Linear(channels, hidden, bias=bias), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels, bias=bias), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> gate (B, C, 1, 1) -> (B, C, H, W)
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]
