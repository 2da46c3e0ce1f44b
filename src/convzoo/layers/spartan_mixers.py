"""SpaRTAN's token mixers: the multi-order spatial mixer (SMixer) and the wave-based channel mixer (CMixer).

Seed paper 21 (Pay, Baskaran, Loo, Wong, See; IJCNN 2025; arXiv 2507.10999). Written from the paper and
from reading the official henry-pay/SpaRTAN ``src/model/spartan.py`` for facts (widths, groups, init,
attribute names); the module and parameter names below equal the official ones, so an official
state dict loads key for key.

* :class:`SMixer` (spatial mixing of "multi-order" features): 1x1 conv C -> C/2, the feature
  decomposition ``x + gamma * (x - GAP(x))`` (gamma per channel, init 1e-5), then two branches on the
  C/2 channels: ``h`` = 3x3 conv-BN-GELU (receptive field 3x3) and ``l`` = 3x3 conv dilation 2 (no norm,
  no activation) -> 3x3 conv dilation 2 -BN-GELU (receptive field 9x9); each followed by its own SE
  (C/2 -> C/8 -> C/2); concat (C) -> 1x1 conv C -> C. The 3x3 convs are dense in the first half of the
  stages and depth-wise (groups = C/2) in the second half.
* :class:`CMixer` (wave-based channel aggregation): theta = GELU(1x1 conv C -> rC), w = 1x1 conv C -> rC;
  at every pixel take the index of the arg-max channel of the mixer's INPUT and gather theta and w at
  that channel index (an index < C, so only the first C of the rC channels are ever gathered, as in the
  official code); feat = w * theta + w_max * theta_max; feat viewed as rC/2 complex numbers per pixel
  (interleaved pairs: channel 2k real, 2k+1 imaginary) is multiplied by a learned complex vector
  (parameter ``complex``, randn init; (1, 1, 1, rC/2, 2) in state dicts) in fp32 with autocast disabled ->
  3x3 grouped conv-BN-GELU on rC channels (groups = rC in the dense half, C in the grouped half) ->
  SE (rC -> C/4 -> rC) -> 1x1 conv rC -> C.

Departures from the official code (same function, different arithmetic):
- The complex product is written in real arithmetic, (a + ib)(c + id) = (ac - bd) + i(ad + bc), on the
  NCHW tensor instead of ``torch.view_as_complex`` on a permuted copy: the same numbers (tested against
  ``view_as_complex``), but exportable to ONNX and free of the two permute/contiguous copies.
- Autocast is disabled for the device the tensor lives on (the official code disables CUDA autocast
  only), so CPU bf16 autocast also keeps the product in fp32.
- The ``complex`` parameter is held as (rC/2, 2): ``Module.to(memory_format=torch.channels_last)`` rejects
  the official 5-D (1, 1, 1, rC/2, 2) parameter. ``state_dict()`` writes, and ``load_state_dict`` accepts,
  the official 5-D shape (same numbers, same order), so checkpoints are interchangeable with the official code
  (``state_dict(keep_vars=True)`` returns the Parameter itself, as tracers need).
- Activations are modules (``nn.GELU``) inside ``nn.Sequential`` conv-norm-act blocks; they hold no
  parameters, so keys are unchanged, and ``convzoo.deploy`` can fold every conv+BN pair.

All BatchNorms use eps 1e-6 (official ``conv_norm``).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["CMixer", "ConvNormAct", "SELayer", "SMixer", "argmax_gather", "complex_multiply"]

BN_EPS = 1e-6
_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps", "hpu")


class ConvNormAct(nn.Sequential):
    """Conv (no bias) -> [BN, eps 1e-6] -> [activation]; keys ``conv``, ``norm`` as the official block."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, norm: bool = True, act: type[nn.Module] | None = nn.GELU):
        layers = OrderedDict(conv=nn.Conv2d(cin, cout, kernel_size, stride, padding, dilation, groups, bias=False))
        if norm:
            layers["norm"] = nn.BatchNorm2d(cout, eps=BN_EPS)
        if act is not None:
            layers["act"] = act()
        super().__init__(layers)


class SELayer(nn.Module):
    """Squeeze-excitation: GAP -> 1x1 conv (bias) -> ReLU -> 1x1 conv (bias) -> sigmoid -> rescale."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.squeeze = nn.Conv2d(channels, squeeze, 1)
        self.expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> (B, C, H, W), scaled per channel by a gate in (0, 1)
        s = F.adaptive_avg_pool2d(x, 1)  # (B, C, 1, 1)
        s = torch.sigmoid(self.expand(F.relu(self.squeeze(s))))
        return x * s


# --- SMixer -------------------------------------------------------------------------------------------

class SMixer(nn.Module):
    """Spatial mixer: 1x1 reduce -> feature decomposition -> {3x3 | two 3x3 dilation-2} + SE each -> 1x1.

    Args:
        dim: input and output channels C (a multiple of 8).
        grouped: depth-wise 3x3 convs (groups = C/2), used in the second half of the stages.
    """

    def __init__(self, dim: int, grouped: bool = False):
        super().__init__()
        if dim % 8 != 0 or dim <= 0:
            raise ConvzooError(f"SMixer needs a positive width divisible by 8, got {dim}")
        half = dim // 2
        groups = half if grouped else 1
        self.gamma = nn.Parameter(1e-5 * torch.ones(1, half, 1, 1))
        self.proj_in = nn.Conv2d(dim, half, 1)
        self.h_conv = ConvNormAct(half, half, 3, padding=1, groups=groups)
        self.l_conv = nn.Sequential(
            ConvNormAct(half, half, 3, padding=2, dilation=2, groups=groups, norm=False, act=None),
            ConvNormAct(half, half, 3, padding=2, dilation=2, groups=groups),
        )
        self.h_attn = SELayer(half, half // 4)
        self.l_attn = SELayer(half, half // 4)
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def feature_decomposition(self, x: torch.Tensor) -> torch.Tensor:
        """x + gamma * (x - GAP(x)): reweights the spatially varying part of each channel."""
        return x + self.gamma * (x - F.adaptive_avg_pool2d(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> (B, C, H, W)
        x = self.feature_decomposition(self.proj_in(x))  # (B, C/2, H, W)
        h = self.h_attn(self.h_conv(x))  # (B, C/2, H, W), receptive field 3x3
        low = self.l_attn(self.l_conv(x))  # (B, C/2, H, W), receptive field 9x9
        return self.proj_out(torch.cat([h, low], dim=1))  # (B, C, H, W)


# --- CMixer -------------------------------------------------------------------------------------------

def argmax_gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t[b, index[b, 0, h, w], h, w]`` for every pixel: (B, N, H, W), (B, 1, H, W) -> (B, 1, H, W)."""
    return t.gather(1, index)


def complex_multiply(feat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Multiply interleaved channel pairs of ``feat`` by complex numbers, in real arithmetic.

    ``feat`` (B, 2K, H, W) holds K complex numbers per pixel: channel 2k the real part a, channel
    2k+1 the imaginary part b. ``weight`` (..., K, 2) holds c + id. Returns (B, 2K, H, W) with
    channel 2k = ac - bd and channel 2k+1 = ad + bc.
    """
    k = weight.shape[-2]
    f = feat.unflatten(1, (k, 2))  # (B, K, 2, H, W)
    a, b = f[:, :, 0], f[:, :, 1]  # (B, K, H, W) each
    w = weight.reshape(k, 2)
    c, d = w[:, 0].reshape(1, k, 1, 1), w[:, 1].reshape(1, k, 1, 1)
    return torch.stack((a * c - b * d, a * d + b * c), dim=2).flatten(1, 2)  # (B, 2K, H, W)


def _no_autocast(device_type: str):
    if device_type in _AUTOCAST_DEVICES:
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()  # meta / other devices: no autocast to disable


def _complex_to_official(module, state_dict, prefix, local_metadata) -> None:
    key = prefix + "complex"
    # state_dict(keep_vars=True) (used by tracers such as the ONNX exporter) must return the Parameter itself
    if key in state_dict and not isinstance(state_dict[key], nn.Parameter):
        state_dict[key] = state_dict[key].reshape(1, 1, 1, -1, 2)


def _complex_from_official(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:
    key = prefix + "complex"
    if key in state_dict and state_dict[key].dim() == 5:
        state_dict[key] = state_dict[key].reshape(-1, 2)


class CMixer(nn.Module):
    """Wave-based channel aggregation (arg-max gather, complex modulation, grouped 3x3, SE, 1x1).

    Args:
        dim: input and output channels C (a multiple of 4).
        expand_ratio: r >= 2; the mixer works on rC channels.
        grouped: groups = C on the 3x3 conv (second half of the stages); else depth-wise (groups = rC).
    """

    def __init__(self, dim: int, expand_ratio: int, grouped: bool = False):
        super().__init__()
        if int(expand_ratio) != expand_ratio or expand_ratio < 2:
            raise ConvzooError(f"CMixer expand_ratio must be an integer >= 2, got {expand_ratio}")
        if dim % 4 != 0 or dim <= 0:
            raise ConvzooError(f"CMixer needs a positive width divisible by 4, got {dim}")
        neck = dim * int(expand_ratio)
        self.theta = nn.Conv2d(dim, neck, 1)
        self.proj = nn.Conv2d(dim, neck, 1)
        # rC/2 complex numbers as (real, imag) rows; state dicts hold the official (1, 1, 1, rC/2, 2)
        self.complex = nn.Parameter(torch.randn(1, 1, 1, neck // 2, 2).reshape(neck // 2, 2))
        self.conv = ConvNormAct(neck, neck, 3, padding=1, groups=dim if grouped else neck)
        self.attn = SELayer(neck, dim // 4)
        self.proj_out = nn.Conv2d(neck, dim, 1)
        self.register_state_dict_post_hook(_complex_to_official)
        self.register_load_state_dict_pre_hook(_complex_from_official)

    def aggregate(self, x: torch.Tensor) -> torch.Tensor:
        """feat = w * theta + w_max * theta_max, gathered at the input's arg-max channel: (B, rC, H, W)."""
        index = x.argmax(dim=1, keepdim=True)  # (B, 1, H, W), values in [0, C)
        theta = F.gelu(self.theta(x))  # (B, rC, H, W)
        weight = self.proj(x)  # (B, rC, H, W)
        return weight * theta + argmax_gather(weight, index) * argmax_gather(theta, index)

    def modulate(self, feat: torch.Tensor) -> torch.Tensor:
        """The complex multiply, always in fp32 (autocast off): (B, rC, H, W) -> (B, rC, H, W) fp32."""
        with _no_autocast(feat.device.type):
            return complex_multiply(feat.float(), self.complex.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> (B, C, H, W)
        feat = self.modulate(self.aggregate(x))  # (B, rC, H, W)
        return self.proj_out(self.attn(self.conv(feat)))
