"""Pseudo-3D residual blocks (P3D; Qiu, Yao, Mei, ICCV 2017, arXiv 1711.10305, Sec. 3.2 and Fig. 3).

A 3x3x3 convolution is split into a spatial ``S`` = 1x3x3 and a temporal ``T`` = 3x1x1 convolution (9 c^2 +
3 c^2 weights instead of 27 c^2), each followed by BN and ReLU, placed inside a ResNet bottleneck
(1x1x1 reduce -> S/T -> 1x1x1 expand, BN after each, identity or projection shortcut, ReLU after the sum):

* **P3D-A** (cascaded): ``T(S(x))`` - the temporal filter sees only the spatial filter's output;
* **P3D-B** (parallel): ``S(x) + T(x)`` - both read the reduced input;
* **P3D-C** (cascaded with a shortcut): ``S(x) + T(S(x))``.

:class:`P3DBlock` keeps the key names of the official PyTorch port (qijiezhao/pseudo-3d-pytorch
``p3d_model.py``: ``conv1/bn1`` reduce, ``conv2/bn2`` = S, ``conv3/bn3`` = T, ``conv4/bn4`` expand,
``downsample.0/.1`` projection), so its converted checkpoints load directly. As in the official Caffe
deploy prototxt and the port, a block that halves the resolution strides its first 1x1x1 conv spatially
(``stride_in="1x1"``, the original Caffe ResNet); ``stride_in="3x3"`` strides S instead (torchvision/timm
"ResNet v1.5"), so the 2-D weights of such a ResNet inflate to the same function (:func:`inflate_2d_init`).
:class:`Bottleneck2d` is the plain 2-D bottleneck of res5 (port keys ``conv1``, ``conv_normal``, ``conv4``), run on
every frame with 1 x k x k kernels.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import drop_path

__all__ = ["BLOCK_TYPES", "Bottleneck2d", "P3DBlock", "spatial_conv", "temporal_conv"]

BLOCK_TYPES = ("A", "B", "C")
EXPANSION = 4


def spatial_conv(chs: int, stride: int = 1) -> nn.Conv3d:
    """S: 1x3x3, padding (0, 1, 1) (port ``conv_S``)."""
    return nn.Conv3d(chs, chs, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)


def temporal_conv(chs: int, stride: int = 1) -> nn.Conv3d:
    """T: 3x1x1, padding (1, 0, 0) (port ``conv_T``); ``stride`` subsamples H and W (B blocks striding in S)."""
    return nn.Conv3d(chs, chs, (3, 1, 1), stride=(1, stride, stride), padding=(1, 0, 0), bias=False)


def split_stride(stride: int, stride_in: str) -> tuple[int, int]:
    """(stride of the reduce 1x1x1, stride of the spatial conv): the Caffe ResNet strides the 1x1x1
    (``stride_in="1x1"``, the paper's), ResNet v1.5 the 3x3 (``"3x3"``)."""
    if stride_in not in ("1x1", "3x3"):
        raise ConvzooError(f"stride_in must be '1x1' (Caffe ResNet, the paper's) or '3x3' (ResNet v1.5), got {stride_in!r}")
    return (stride, 1) if stride_in == "1x1" else (1, stride)


def projection(in_chs: int, out_chs: int, stride: int) -> nn.Sequential | None:
    """The shortcut: a strided 1x1x1 conv + BN where the shape changes (port ``downsample.0/.1``), else None."""
    if stride == 1 and in_chs == out_chs:
        return None
    return nn.Sequential(nn.Conv3d(in_chs, out_chs, 1, stride=(1, stride, stride), bias=False), nn.BatchNorm3d(out_chs))


class P3DBlock(nn.Module):
    """One P3D bottleneck of type ``block_type`` (A, B or C): ``(N, in_chs, T, H, W) -> (N, 4 planes, T, H/s, W/s)``."""

    def __init__(self, in_chs: int, planes: int, block_type: str = "A", stride: int = 1, stride_in: str = "1x1",
                 drop_path_rate: float = 0.0):
        super().__init__()
        if block_type not in BLOCK_TYPES:
            raise ConvzooError(f"P3D block type must be one of A, B, C, got {block_type!r}")
        self.block_type, out = block_type, planes * EXPANSION
        s1, s2 = split_stride(stride, stride_in)
        self.conv1 = nn.Conv3d(in_chs, planes, 1, stride=(1, s1, s1), bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = spatial_conv(planes, s2)  # S
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = temporal_conv(planes, s2 if block_type == "B" else 1)  # T (B: reads S's input, same stride)
        self.bn3 = nn.BatchNorm3d(planes)
        self.conv4 = nn.Conv3d(planes, out, 1, bias=False)
        self.bn4 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = projection(in_chs, out, stride)
        self.drop_path = drop_path(drop_path_rate)

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(x)))

    def temporal(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn3(self.conv3(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (N, planes, T, H', W')
        if self.block_type == "A":  # T sees only S's output
            out = self.temporal(self.spatial(out))
        elif self.block_type == "B":  # S and T read the same input, summed
            out = self.spatial(out) + self.temporal(out)
        else:  # C: s + T(s)
            s = self.spatial(out)
            out = s + self.temporal(s)
        out = self.bn4(self.conv4(out))  # (N, 4 planes, T, H', W')
        return self.relu(self.drop_path(out) + shortcut)


class Bottleneck2d(nn.Module):
    """The 2-D bottleneck of res5, applied to every frame of a ``(N, C, T, H, W)`` map: its kernels are 1 x k x k
    (``Conv3d``/``BatchNorm3d``: the same arithmetic as ``Conv2d``/``BatchNorm2d`` on ``(N T, C, H, W)``, and the
    whole network keeps one 5-D memory format, e.g. ``channels_last_3d``). Port keys ``conv1``, ``conv_normal``,
    ``conv4``, ``downsample``; the port's 2-D kernels load after :func:`convzoo.models.p3d.remap_state_dict`."""

    def __init__(self, in_chs: int, planes: int, stride: int = 1, stride_in: str = "1x1", drop_path_rate: float = 0.0):
        super().__init__()
        out = planes * EXPANSION
        s1, s2 = split_stride(stride, stride_in)
        self.conv1 = nn.Conv3d(in_chs, planes, 1, stride=(1, s1, s1), bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv_normal = spatial_conv(planes, s2)
        self.bn_normal = nn.BatchNorm3d(planes)
        self.conv4 = nn.Conv3d(planes, out, 1, bias=False)
        self.bn4 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = projection(in_chs, out, stride)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # (N, planes, T, H', W'), every frame alone
        out = self.relu(self.bn_normal(self.conv_normal(out)))
        out = self.bn4(self.conv4(out))
        return self.relu(self.drop_path(out) + shortcut)
