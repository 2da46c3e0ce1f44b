"""Efficient Channel Attention (paper 43, ECA-Net, Wang et al., CVPR 2020, arXiv 1910.03151, Sec. 3).

ECA re-weights the channels of a feature map without any dimensionality reduction (Sec. 3.2):

    y = GAP(x)                          (B, C)      global average over every spatial dim
    w = sigmoid(conv1d_k(y))            (B, C)      one 1-D kernel of size k shared by all channels
    out = x * w                         (B, C, *spatial)

so the layer has exactly k parameters ("local cross-channel interaction", Sec. 3.2). The kernel
size is either given or chosen from the channel count by the adaptive mapping of Eq. 12,

    k = psi(C) = | log2(C) / gamma + b / gamma |_odd,     gamma = 2, b = 1,

where |t|_odd is the nearest odd number; the official code and timm take t = int(|(log2 C + b) / gamma|)
and round an even t *up* (C = 128 gives t = 4, k = 5; issue BangguWu/ECANet#12), which
:func:`eca_kernel_size` follows. Unlike timm's ``EcaModule`` it does not clamp k to >= 3: the paper's
formula gives k = 1 for C <= 4.

ECA-NS (``shared=False``, Sec. 3.2 "Local Cross-Channel Interaction" and the ECA-NS row of Table 2):
the same k-neighbourhood of every channel, but each channel i has its own k weights w_i (the banded
matrix W_k with k * C parameters) instead of one kernel shared by all channels:

    w_i = sigmoid( sum_j  w_i^j * y_(i + j - (k-1)/2) ),   j = 0..k-1,  y zero outside 1..C

so the layer has k * C parameters and needs ``channels``. The weights sit in ``conv.weight`` of shape
(C, 1, k), a depth-wise Conv1d applied to the k-windows of the descriptor, as in the official
``models/eca_ns.py``, whose checkpoints would load by name. With every row w_i equal it is ECA.

The state dict of the shared layer holds a single tensor ``conv.weight`` of shape (1, 1, k), the
official ``eca_layer`` layout, so the released ECA-Net checkpoints load unchanged. The layer pools
over all trailing dims, so it works on 1-D (B, C, L), 2-D (B, C, H, W) and 3-D (B, C, D, H, W) maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["ECA", "eca_kernel_size"]


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """Eq. 12: psi(C) = |log2(C)/gamma + b/gamma|_odd (even values rounded up, as the official code)."""
    if channels < 1:
        raise ConvzooError(f"ECA kernel size needs a positive channel count, got {channels}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """ECA module (Sec. 3.3, Fig. 2): GAP -> Conv1d(1, 1, k, pad (k-1)//2, no bias) -> sigmoid -> rescale.

    Args:
        channels: channels of the input; picks k by Eq. 12 when ``k_size`` is None (and sizes ECA-NS).
        k_size: odd kernel size of the 1-D convolution across channels; None = adaptive psi(C).
        gamma, b: parameters of the mapping psi (paper: gamma=2, b=1).
        shared: True = ECA (one kernel for all channels, k parameters); False = ECA-NS (a kernel per
            channel, k * C parameters; see the module docstring).
    """

    def __init__(self, channels: int | None = None, k_size: int | None = None, gamma: float = 2,
                 b: float = 1, shared: bool = True):
        super().__init__()
        if k_size is None:
            if channels is None:
                raise ConvzooError("ECA needs either channels (adaptive kernel size) or k_size")
            k_size = eca_kernel_size(channels, gamma, b)
        if int(k_size) != k_size or k_size < 1 or k_size % 2 == 0:
            raise ConvzooError(f"ECA k_size must be a positive odd integer, got {k_size!r}")
        if not shared and (channels is None or channels < 1):
            raise ConvzooError(f"ECA-NS (shared=False) needs the channel count: one kernel per channel; "
                               f"got channels={channels!r}")
        self.channels, self.k_size, self.shared = channels, int(k_size), shared
        if shared:
            self.conv = nn.Conv1d(1, 1, kernel_size=self.k_size, padding=(self.k_size - 1) // 2, bias=False)
        else:  # ECA-NS: (C, 1, k), one depth-wise kernel per channel over its k-window
            self.conv = nn.Conv1d(channels, channels, kernel_size=self.k_size, groups=channels, bias=False)

    def _interact(self, y: torch.Tensor) -> torch.Tensor:
        # y: (B, C) -> (B, C), each channel mixed with its k neighbours (zero padding at both ends)
        if self.shared:
            return self.conv(y.unsqueeze(1)).squeeze(1)  # (B, 1, C) -> (B, C)
        if y.shape[1] != self.channels:
            raise ConvzooError(f"ECA-NS was built for {self.channels} channels, got {y.shape[1]}")
        pad = (self.k_size - 1) // 2
        windows = F.pad(y, (pad, pad)).unfold(1, self.k_size, 1)  # (B, C, k): window of channel i
        return self.conv(windows).squeeze(-1)  # (B, C, 1) -> (B, C), channel i's own kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, *spatial)
        spatial = tuple(range(2, x.dim()))
        y = x.mean(spatial)  # (B, C)              channel descriptor (GAP)
        y = torch.sigmoid(self._interact(y))  # (B, C)  gates in (0, 1)
        return x * y.view(x.shape[0], x.shape[1], *(1 for _ in spatial))  # (B, C, 1, ..) broadcast

    def extra_repr(self) -> str:
        ns = "" if self.shared else ", shared=False (ECA-NS)"
        return f"channels={self.channels}, k_size={self.k_size}{ns}"
