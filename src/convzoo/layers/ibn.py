"""IBN: Instance-Batch Normalization (IBN-Net, seed paper 37, Pan et al., ECCV 2018, arXiv 1807.09441, Sec. 3).

The layer splits the channels: the first ``int(planes * ratio)`` are instance-normalised (per image and
channel, learnable affine; appearance-invariant features, Sec. 3.1), the rest batch-normalised
(content-discriminative features), then concatenated. It has exactly the parameters of one
BatchNorm2d over all channels (2 * planes affine values), so IBN-a "adds no parameters".

Keys ``IN.*`` and ``BN.*`` follow the official ``ibnnet/modules.py``, so its checkpoints load. The
InstanceNorm keeps no running statistics (PyTorch's default, as the official code): it normalises with
the statistics of each image in training and in evaluation, and works at batch size 1.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["IBN"]


class IBN(nn.Module):
    """InstanceNorm2d(affine) on the first ``int(planes * ratio)`` channels, BatchNorm2d on the rest."""

    def __init__(self, planes: int, ratio: float = 0.5):
        super().__init__()
        half = int(planes * ratio)
        if not 0 < half < planes:
            raise ConvzooError(f"IBN needs 0 < int(planes * ratio) < planes; planes={planes}, ratio={ratio} "
                               f"gives {half} instance-normalised channels")
        self.planes, self.half = planes, half
        self.IN = nn.InstanceNorm2d(half, affine=True)
        self.BN = nn.BatchNorm2d(planes - half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, planes, H, W) -> IN on (B, half, H, W) | BN on (B, planes - half, H, W) -> (B, planes, H, W)
        a, b = x.split((self.half, self.planes - self.half), dim=1)
        return torch.cat((self.IN(a.contiguous()), self.BN(b.contiguous())), dim=1)

    def extra_repr(self) -> str:
        return f"planes={self.planes}, instance_norm_channels={self.half}"
