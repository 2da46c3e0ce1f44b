"""Dilated Reparam Block: a large depth-wise kernel trained with parallel dilated small kernels.

Seed papers 13 (UniRepLKNet, CVPR 2024, arXiv 2311.15599, Sec. 3.2 "Dilated Reparam Block", Fig. 2) and
11 (its TPAMI extension, arXiv 2410.08049). At training time a K x K depth-wise conv (+ BN) runs in
parallel with several depth-wise *dilated* small convs (each + BN) and the outputs are summed:

    y = BN_0(DW_KxK(x)) + sum_i BN_i(DW_{k_i x k_i, dilation r_i}(x))          all (B, C, H, W)

Every branch is "same"-padded (padding (r (k - 1) + 1) // 2) and centred, so the sum is again one
depth-wise conv: a k x k kernel with dilation r equals a dense ((k - 1) r + 1)^2 kernel with r - 1 zeros
between its taps (:func:`dilated_to_dense`); zero-padded to K x K it adds to the large kernel
(:func:`merge_into_large_kernel`), and the folded BN biases add up. ``merge_dilated_branches()`` (alias
``reparameterize()``) turns the block into one K x K depth-wise conv with bias; ``deploy=True`` builds
that structure directly.

Branch table (official ``unireplknet.py``, "default settings ... not tuned carefully"): :data:`BRANCHES`.
State-dict keys follow the official module: ``lk_origin``, ``origin_bn``, ``dil_conv_k{k}_{r}``,
``dil_bn_k{k}_{r}``. Departure: the official code may swap in an iGEMM CUDA kernel for the large conv;
this module always uses ``nn.Conv2d`` (same parameters and keys).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.fuse import fuse_bn_tensors

__all__ = ["BRANCHES", "DilatedReparamBlock", "dilated_to_dense", "merge_into_large_kernel"]

# K -> ((k_1, r_1), (k_2, r_2), ...): kernel size and dilation of the parallel small branches
BRANCHES: dict[int, tuple[tuple[int, int], ...]] = {
    5: ((3, 1), (3, 2)),
    7: ((5, 1), (3, 2), (3, 3)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    15: ((5, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    17: ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
}


def dilated_to_dense(kernel: torch.Tensor, dilation: int) -> torch.Tensor:
    """The non-dilated kernel equal to ``kernel`` applied with ``dilation``.

    kernel: (C_out, C_in / groups, k, k) -> (C_out, C_in / groups, (k - 1) r + 1, (k - 1) r + 1), the taps
    at every r-th position and zeros between them. conv2d(x, W, dilation=r, padding=p) ==
    conv2d(x, dilated_to_dense(W, r), padding=p) for any groups.
    """
    r = int(dilation)
    if r < 1:
        raise ConvzooError(f"dilation must be >= 1, got {dilation!r}")
    if r == 1:
        return kernel
    kh, kw = kernel.shape[-2:]
    dense = kernel.new_zeros(*kernel.shape[:-2], (kh - 1) * r + 1, (kw - 1) * r + 1)
    dense[..., ::r, ::r] = kernel
    return dense


def merge_into_large_kernel(large: torch.Tensor, small: torch.Tensor, dilation: int = 1) -> torch.Tensor:
    """``large`` (.., K, K) plus the centred, zero-padded dense form of ``small`` (.., k, k) at ``dilation``."""
    dense = dilated_to_dense(small, dilation)
    pad = (large.shape[-1] - dense.shape[-1]) // 2
    if pad < 0 or large.shape[-1] - dense.shape[-1] != 2 * pad:
        raise ConvzooError(f"a {small.shape[-1]}x{small.shape[-1]} kernel at dilation {dilation} spans "
                           f"{dense.shape[-1]} pixels and does not centre inside a {large.shape[-1]}x{large.shape[-1]} kernel")
    return large + F.pad(dense, [pad] * 4)


def _dw_conv(channels: int, k: int, dilation: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, k, stride=1, padding=(dilation * (k - 1) + 1) // 2,
                     dilation=dilation, groups=channels, bias=bias)


class DilatedReparamBlock(nn.Module):
    """K x K depth-wise conv + BN in parallel with the dilated small depth-wise convs of :data:`BRANCHES`.

    Args:
        channels: C (input = output channels; every conv is depth-wise).
        kernel_size: K, one of 5, 7, 9, 11, 13, 15, 17.
        deploy: build the merged structure (one K x K depth-wise conv with bias, key ``lk_origin``).
    Input and output: (B, C, H, W).
    """

    def __init__(self, channels: int, kernel_size: int, deploy: bool = False):
        super().__init__()
        if kernel_size not in BRANCHES:
            raise ConvzooError(f"DilatedReparamBlock supports kernel sizes {sorted(BRANCHES)}, got {kernel_size!r}")
        self.channels, self.kernel_size = int(channels), int(kernel_size)
        self.branches = BRANCHES[self.kernel_size]
        self.lk_origin = _dw_conv(self.channels, self.kernel_size, 1, bias=deploy)
        if not deploy:
            self.origin_bn = nn.BatchNorm2d(self.channels)
            for k, r in self.branches:
                self.add_module(f"dil_conv_k{k}_{r}", _dw_conv(self.channels, k, r, bias=False))
                self.add_module(f"dil_bn_k{k}_{r}", nn.BatchNorm2d(self.channels))

    @property
    def deploy(self) -> bool:
        return not hasattr(self, "origin_bn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> (B, C, H, W)
        if self.deploy:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for k, r in self.branches:
            out = out + getattr(self, f"dil_bn_k{k}_{r}")(getattr(self, f"dil_conv_k{k}_{r}")(x))
        return out

    @torch.no_grad()
    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (C, 1, K, K) kernel and (C,) bias of the single conv equal to this block in eval mode."""
        if self.deploy:
            return self.lk_origin.weight.detach().clone(), self.lk_origin.bias.detach().clone()
        w, b = fuse_bn_tensors(self.lk_origin.weight, None, self.origin_bn)
        for k, r in self.branches:
            wk, bk = fuse_bn_tensors(getattr(self, f"dil_conv_k{k}_{r}").weight, None,
                                     getattr(self, f"dil_bn_k{k}_{r}"))
            w, b = merge_into_large_kernel(w, wk, r), b + bk
        return w, b

    @torch.no_grad()
    def merge_dilated_branches(self) -> None:
        """Replace the branches by one K x K depth-wise conv with bias (no-op when already merged)."""
        if self.deploy:
            return
        w, b = self.merged_kernel()
        conv = _dw_conv(self.channels, self.kernel_size, 1, bias=True).to(device=w.device, dtype=w.dtype)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        self.lk_origin = conv
        del self.origin_bn
        for k, r in self.branches:
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")

    def reparameterize(self) -> None:
        """Same as :meth:`merge_dilated_branches` (the name ``convzoo.deploy`` and timm look for)."""
        self.merge_dilated_branches()

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, branches={self.branches}, deploy={self.deploy}"
