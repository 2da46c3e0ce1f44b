"""Sub-pixel convolution: a convolution in low-resolution space followed by periodic shuffling.

Paper 41, Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network" (CVPR 2016, arXiv 1609.05158), Sec. 2.2, Eq. 4:

    I_SR = PS(W_L * f^{L-1}(I_LR) + b_L)

``W_L`` has ``r^2 * C`` output channels; the periodic shuffling operator ``PS`` rearranges a
``(r^2 C, H, W)`` tensor into ``(C, rH, rW)`` so that ``PS(T)[c, y, x] = T[c r^2 + (y mod r) r +
(x mod r), floor(y / r), floor(x / r)]`` -- exactly ``torch.nn.PixelShuffle(r)``. Sec. 2.2 also shows
this equals a convolution with fractional stride 1/r in LR space (a stride-r transposed convolution
whose kernel is ``r k`` wide); ``equivalent_conv_transpose`` builds that transposed convolution, and
the tests check the two agree.

ICNR initialisation ("initialised to convolution NN resize", Aitken et al. 2017, arXiv 1707.02937,
later work by the same group) makes the ``r^2`` sub-kernels of each output channel start equal, so the
layer starts as nearest-neighbour upsampling of one convolution and is free of checkerboard artefacts
at initialisation. It is not part of paper 41 and is off by default (``icnr=False``).
"""

from __future__ import annotations

import torch
from torch import nn


class SubPixelConv2d(nn.Module):
    """``conv(in_ch -> out_ch * scale^2, kernel_size, 'same' padding)`` then ``PixelShuffle(scale)``.

    (B, in_ch, H, W) -> (B, out_ch, scale*H, scale*W). Paper Sec. 2.2, Eq. 4.
    """

    def __init__(self, in_ch: int, out_ch: int, scale: int, kernel_size: int = 3, bias: bool = True,
                 icnr: bool = False):
        super().__init__()
        if int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.in_ch, self.out_ch, self.scale, self.kernel_size = in_ch, out_ch, int(scale), kernel_size
        self.conv = nn.Conv2d(in_ch, out_ch * self.scale**2, kernel_size, padding=kernel_size // 2, bias=bias)
        self.shuffle = nn.PixelShuffle(self.scale)
        if icnr:
            self.icnr_()

    @torch.no_grad()
    def icnr_(self, init=nn.init.kaiming_normal_) -> SubPixelConv2d:
        """ICNR (Aitken et al. 2017): give the r^2 sub-kernels of each output channel the same weights."""
        r2 = self.scale**2
        base = torch.empty(self.out_ch, self.in_ch, self.kernel_size, self.kernel_size)
        init(base)
        # PixelShuffle reads channel c*r^2 + k for sub-pixel k of output channel c
        self.conv.weight.copy_(base.repeat_interleave(r2, dim=0))
        if self.conv.bias is not None:
            self.conv.bias.copy_(self.conv.bias.view(self.out_ch, r2)[:, :1].expand(-1, r2).reshape(-1))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_ch, H, W) -> conv: (B, out_ch*r^2, H, W) -> shuffle: (B, out_ch, rH, rW)
        return self.shuffle(self.conv(x))

    def extra_repr(self) -> str:
        return f"{self.in_ch}, {self.out_ch}, scale={self.scale}, kernel_size={self.kernel_size}"


@torch.no_grad()
def equivalent_conv_transpose(layer: SubPixelConv2d) -> nn.ConvTranspose2d:
    """The stride-``r`` transposed convolution equal to ``layer``'s weights (Sec. 2.2, stride 1/r).

    Output pixel ``(r y + i, r x + j)`` of the layer is the ``k x k`` conv with sub-kernel
    ``(i, j)`` (channel ``c r^2 + i r + j``) centred on LR pixel ``(y, x)``; its tap ``u`` reads LR
    pixel ``y + u - p`` (``p = k // 2``). A transposed conv with stride ``r`` and padding ``r p``
    writes ``out[r y' - r p + a] += in[y'] W_T[a]``, so LR pixel ``y' = y + u - p`` reaches
    ``r y + i`` through ``a = r (k - 1 - u) + i``: a kernel ``r k`` wide with
    ``W_T[cin, c, r (k-1-u) + i, r (k-1-v) + j] = W[c r^2 + i r + j, cin, u, v]``.

    The returned layer has no bias: the conv's bias is one value per sub-pixel, i.e. a map with period
    ``r`` in HR space (``PixelShuffle`` of the bias), which a transposed conv (one bias per channel)
    cannot hold unless all sub-pixel biases are equal.
    """
    r, k, p = layer.scale, layer.kernel_size, layer.kernel_size // 2
    c_out, c_in = layer.out_ch, layer.in_ch
    w = layer.conv.weight.view(c_out, r, r, c_in, k, k).flip(-1, -2)  # (c, i, j, cin, k-1-u, k-1-v)
    # (c, i, j, cin, u', v') -> (cin, c, u', i, v', j) -> (cin, c, r k, r k)
    wt = w.permute(3, 0, 4, 1, 5, 2).reshape(c_in, c_out, k * r, k * r)
    deconv = nn.ConvTranspose2d(c_in, c_out, k * r, stride=r, padding=r * p, bias=False,
                                device=wt.device, dtype=wt.dtype)
    deconv.weight.copy_(wt)
    return deconv
