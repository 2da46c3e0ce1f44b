"""IBN: Instance-Batch Normalization (IBN-Net, seed paper 37, Pan et al., ECCV 2018, arXiv 1807.09441, Sec. 3).

The layer splits the channels: the first ``int(planes * ratio)`` are instance-normalised (per image and
channel, learnable affine; appearance-invariant features, Sec. 3.1), the rest batch-normalised
(content-discriminative features), then concatenated. It has exactly the parameters of one
BatchNorm2d over all channels (2 * planes affine values), so IBN-a "adds no parameters".

``in_first=False`` is the order of the official DenseNet-IBN-a (``densenet_ibn.py``): BatchNorm on the
first ``int(planes * (1 - ratio))`` channels, InstanceNorm on the rest.

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
    """InstanceNorm2d(affine) on the first ``int(planes * ratio)`` channels, BatchNorm2d on the rest
    (``in_first=False``: BatchNorm on the first ``int(planes * (1 - ratio))``, InstanceNorm on the rest)."""

    def __init__(self, planes: int, ratio: float = 0.5, in_first: bool = True):
        super().__init__()
        n_in = int(planes * ratio) if in_first else planes - int(planes * (1 - ratio))
        if not 0 < n_in < planes:
            raise ConvzooError(f"IBN needs 0 < instance-normalised channels < planes; planes={planes}, "
                               f"ratio={ratio} gives {n_in} instance-normalised channels")
        self.planes, self.in_first = planes, in_first
        self.half = n_in if in_first else planes - n_in  # channels of the first part (official name)
        self.IN = nn.InstanceNorm2d(n_in, affine=True)
        self.BN = nn.BatchNorm2d(planes - n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, planes, H, W) -> first (B, half, H, W) | rest (B, planes - half, H, W) -> (B, planes, H, W)
        a, b = x.split((self.half, self.planes - self.half), dim=1)
        if self.in_first:
            return torch.cat((self.IN(a.contiguous()), self.BN(b.contiguous())), dim=1)
        return torch.cat((self.BN(a.contiguous()), self.IN(b.contiguous())), dim=1)

    def extra_repr(self) -> str:
        return f"planes={self.planes}, instance_norm_channels={self.IN.num_features}, in_first={self.in_first}"
