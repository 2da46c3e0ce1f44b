"""LS convolution of LSNet ("See Large, Focus Small"; seed paper 18, arXiv 2503.23135, Sec. 3).

Three pieces, in the paper's reading order:

- :class:`LKP`, large-kernel perception: 1x1 Conv-BN (C -> C/2) -> ReLU -> depth-wise ``lks`` x ``lks``
  Conv-BN -> 1x1 Conv-BN -> ReLU -> 1x1 conv with bias (C/2 -> sks^2 C/G) -> GroupNorm (C/G groups).
  It predicts, per pixel, C/G dynamic ``sks`` x ``sks`` kernels: a tensor ``w`` of shape
  (B, C/G, sks^2, H, W).
- :func:`ska`, small-kernel aggregation: a per-pixel dynamic depth-wise convolution,
  ``out[b, c, h, w] = sum_{i, j} x[b, c, h + i - p, w + j - p] * w[b, c mod (C/G), i * sks + j, h, w]``
  with ``p = (sks - 1) // 2`` and zeros outside the map. The C/G kernels are shared by the
  *interleaved* channels c, c + C/G, c + 2 C/G, ... (the weight tensor is tiled over the channel
  axis, not repeat-interleaved), exactly the index ``ci % wc`` of the official Triton kernel.
- :class:`LSConv` = BN(SKA(x, LKP(x))) + x.

The official code runs SKA as a Triton kernel (GPU only). Here SKA is plain PyTorch: a sum over the
sks^2 shifted copies of the zero-padded input, each multiplied by its kernel tap; channels are viewed
as (C / wc, wc) so the tap (B, wc, H, W) broadcasts over the C / wc channel groups without copying.
It runs on any device, under autograd, ``torch.compile`` and ONNX export; the tests compare it with a
nested-loop definition and run ``gradcheck`` in float64. Its elementwise multiply-adds are not
convolutions, so ``FlopCounterMode`` does not count them (the fact sheet's convention: conv, linear
and matmul MACs; SKA adds sks^2 C H W per layer, under 0.004 G for LSNet-T/S/B at 224).

Module and key names follow the official ``model/lsnet.py`` (``lkp.cv1.c``, ``lkp.cv4``,
``lkp.norm``, ``bn``), so official checkpoints load.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["LKP", "SKA", "Conv2dBN", "LSConv", "ska"]


class Conv2dBN(nn.Sequential):
    """Conv (no bias) -> BN; keys ``c`` and ``bn`` as the official ``Conv2d_BN``.

    ``bn_weight_init`` = 0 makes a residual branch start as the identity (official FFN / attention
    projection). ``convzoo.deploy`` folds the pair into one conv with bias (``bn`` becomes Identity);
    ``deploy=True`` builds that folded form directly (keys ``c.weight``, ``c.bias``).
    """

    def __init__(self, cin: int, cout: int, kernel_size: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1, bn_weight_init: float = 1.0, deploy: bool = False):
        super().__init__(OrderedDict(
            c=nn.Conv2d(cin, cout, kernel_size, stride, padding, groups=groups, bias=deploy),
            bn=nn.Identity() if deploy else nn.BatchNorm2d(cout),
        ))
        if not deploy:
            nn.init.constant_(self.bn.weight, bn_weight_init)
            nn.init.zeros_(self.bn.bias)


def ska(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Small-kernel aggregation: per-pixel dynamic depth-wise conv with interleaved kernel sharing.

    Args:
        x: (B, C, H, W) features.
        w: (B, wc, k*k, H, W) per-pixel kernels, ``wc`` dividing C; channel c uses kernel c mod wc.
    Returns:
        (B, C, H, W).
    """
    if x.dim() != 4 or w.dim() != 5:
        raise ConvzooError(f"ska expects x (B, C, H, W) and w (B, wc, k*k, H, W), got {tuple(x.shape)} and {tuple(w.shape)}")
    b, c, h, width = x.shape
    wc, kk = w.shape[1], w.shape[2]
    k = math.isqrt(kk)
    if k * k != kk or c % wc or w.shape[0] != b or tuple(w.shape[3:]) != (h, width):
        raise ConvzooError(f"ska: w {tuple(w.shape)} does not fit x {tuple(x.shape)} "
                           "(need (B, wc, k*k, H, W) with C divisible by wc)")
    lo = (k - 1) // 2  # the Triton kernel's pad; an even k pads the extra row/column after
    xp = F.pad(x, (lo, k - 1 - lo, lo, k - 1 - lo))  # (B, C, H + k - 1, W + k - 1)
    xp = xp.reshape(b, c // wc, wc, h + k - 1, width + k - 1)  # channel c = g * wc + (c mod wc)
    out = None
    for i in range(k):
        for j in range(k):
            # tap (i, j): (B, C/wc, wc, H, W) * (B, 1, wc, H, W), the kernel tiled over the channel groups
            term = xp[:, :, :, i:i + h, j:j + width] * w[:, None, :, i * k + j]
            out = term if out is None else out + term
    return out.reshape(b, c, h, width)


class SKA(nn.Module):
    """Module wrapper of :func:`ska` (no parameters; the official ``SKA`` has none either)."""

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return ska(x, w)


class LKP(nn.Module):
    """Large-kernel perception: predicts C/G dynamic ``sks`` x ``sks`` kernels per pixel.

    Args:
        dim: channels C (divisible by ``groups`` and by 2).
        lks: large depth-wise kernel (7 in LSNet).
        sks: small dynamic kernel (3).
        groups: G, the number of channels that share one dynamic kernel (8).
        deploy: build the Conv-BN pairs folded (as ``convzoo.deploy`` leaves them).
    """

    def __init__(self, dim: int, lks: int = 7, sks: int = 3, groups: int = 8, deploy: bool = False):
        super().__init__()
        if dim % groups or dim % 2 or lks % 2 == 0:
            raise ConvzooError(f"LKP needs dim divisible by groups={groups} and by 2 and an odd lks, "
                               f"got dim={dim}, lks={lks}")
        half, self.dim, self.sks, self.groups = dim // 2, dim, sks, groups
        self.cv1 = Conv2dBN(dim, half, deploy=deploy)
        self.act = nn.ReLU()
        self.cv2 = Conv2dBN(half, half, lks, padding=(lks - 1) // 2, groups=half, deploy=deploy)
        self.cv3 = Conv2dBN(half, half, deploy=deploy)
        self.cv4 = nn.Conv2d(half, sks * sks * dim // groups, 1)
        self.norm = nn.GroupNorm(dim // groups, sks * sks * dim // groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, C/2, H, W): 1x1, DW lks x lks (the large receptive field), 1x1
        y = self.act(self.cv3(self.cv2(self.act(self.cv1(x)))))
        w = self.norm(self.cv4(y))  # (B, sks^2 C/G, H, W), one GroupNorm group per kernel
        b, _, h, width = w.shape
        return w.reshape(b, self.dim // self.groups, self.sks * self.sks, h, width)  # (B, C/G, sks^2, H, W)


class LSConv(nn.Module):
    """LS convolution: ``BN(SKA(x, LKP(x))) + x`` (paper Eq. 3-5; official ``LSConv``). The BN stays in
    the deployed form (SKA's kernels are shared across channels, so no conv can absorb it)."""

    def __init__(self, dim: int, lks: int = 7, sks: int = 3, groups: int = 8, deploy: bool = False):
        super().__init__()
        self.lkp = LKP(dim, lks, sks, groups, deploy=deploy)
        self.ska = SKA()
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, C, H, W)
        return self.bn(self.ska(x, self.lkp(x))) + x
