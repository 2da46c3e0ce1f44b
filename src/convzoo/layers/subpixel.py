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
import torch.nn as nn


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
    def icnr_(self, init=nn.init.kaiming_normal_) -> "SubPixelConv2d":
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
    """The stride-``r`` transposed convolution equal to ``layer`` (paper Sec. 2.2, fractional stride 1/r).

    Output pixel ``(r y + i, r x + j)`` of ``layer`` is the ``k x k`` conv with sub-kernel ``(i, j)``
    centred on LR pixel ``(y, x)``. A transposed conv with stride ``r`` writes
    ``out[r y + a] += in[y] * W[a]``; so LR pixel ``y + d`` (``d`` in ``[-p, p]``, ``p = k // 2``) must
    reach output ``r y + i`` through tap ``a = r (p - d) + i`` -- kernel length ``r k``, padding
    ``r p``, and ``W_T[cin, c, r(p-u) + i, r(p-v) + j] = W[c r^2 + i r + j, cin, u, v]`` where
    ``u = p + d`` is the conv tap.
    """
    r, k, p = layer.scale, layer.kernel_size, layer.kernel_size // 2
    w = layer.conv.weight  # (C r^2, Cin, k, k)
    c_out, c_in = layer.out_ch, layer.in_ch
    w = w.view(c_out, r, r, c_in, k, k).flip(-1, -2)  # taps k-1-u = p - d + p ... (p - d) after flip
    # (c, i, j, cin, u', v') -> (cin, c, u', i, v', j) -> (cin, c, k r, k r)
    wt = w.permute(3, 0, 4, 1, 5, 2).reshape(c_in, c_out, k * r, k * r)
    deconv = nn.ConvTranspose2d(c_in, c_out, k * r, stride=r, padding=r * p, bias=layer.conv.bias is not None)
    deconv.weight.copy_(wt)
    if layer.conv.bias is not None:  # PixelShuffle gives every sub-pixel its own bias; a transposed
        deconv.bias.zero_()  # conv has one bias per channel, so only equal sub-pixel biases map over
        if not torch.equal(layer.conv.bias.view(c_out, r * r), layer.conv.bias.view(c_out, r * r)[:, :1].expand(-1, r * r)):
            raise ValueError("sub-pixel biases differ; a transposed conv has one bias per channel "
                             "(add the per-sub-pixel bias as a periodic map instead)")
        deconv.bias.copy_(layer.conv.bias.view(c_out, r * r)[:, 0])
    return deconv
