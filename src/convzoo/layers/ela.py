"""Efficient Local Attention (paper 10, ELA, Xu & Wan, arXiv 2403.01123, 2024; the method section).

ELA re-weights a 2-D feature map with two 1-D positional attention maps, one along H and one along W
(the paper's method section and its printed PyTorch listing; section / table numbers are not cited
because they could not be re-checked here):

    x_h = mean_W(x)                          (B, C, H)   strip pooling along the width
    x_w = mean_H(x)                          (B, C, W)   strip pooling along the height
    a_h = sigmoid(GN(conv1d(x_h)))           (B, C, H)   conv1d and GN are ONE module each,
    a_w = sigmoid(GN(conv1d(x_w)))           (B, C, W)   shared by both directions
    y   = x * a_h[..., :, None] * a_w[..., None, :]       (B, C, H, W)

The 1-D convolution maps C -> C channels with kernel k, padding k // 2, ``groups`` groups and no
bias; GroupNorm has ``gn_groups`` groups and a per-channel affine. There is no channel reduction and no
BatchNorm (the paper's critique of Coordinate Attention). The paper's four sizes (its variant table;
:data:`ELA_VARIANTS`) are

    variant  k   conv groups   GN groups   parameters
    ELA-T    5   C             32          5C + 2C = 7C
    ELA-B    7   C             16          7C + 2C = 9C
    ELA-S    5   C / 8         16          40C + 2C = 42C
    ELA-L    7   C / 8         16          56C + 2C = 58C

so C must be divisible by the GN group count (32 or 16) and, for S/L, by 8; anything else is a
:class:`~convzoo.errors.ConvzooError` naming the variant and the channel count (no silent "largest
valid group" fallback, as some third-party copies do). The recommendation of the paper: T/B for
light or shallow networks, B/S for deeper ones, L for large networks and dense tasks.

Pitfalls of third-party copies avoided here (fact sheet G1a "Paper 10" Sec. 2): a_w is broadcast
along H as (B, C, 1, W) (some copies reshape it to (B, C, W, 1), which is only right when H == W); the
conv and the GN are shared between directions (some copies keep one per direction; timm's
``EfficientLocalAttn`` also does, uses GroupNorm with one group and adds a SiLU, so it is not this
module). The strips go through the conv separately: concatenating them would let the kernel and the
GN statistics mix H and W positions.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["ELA", "ELA_VARIANTS"]

# the paper's variant table: kernel size k, input channels per conv group (1 = depth-wise, 8 = C/8
# groups), GroupNorm groups
ELA_VARIANTS: dict[str, dict[str, int]] = {
    "T": {"kernel_size": 5, "group_width": 1, "gn_groups": 32},
    "B": {"kernel_size": 7, "group_width": 1, "gn_groups": 16},
    "S": {"kernel_size": 5, "group_width": 8, "gn_groups": 16},
    "L": {"kernel_size": 7, "group_width": 8, "gn_groups": 16},
}


class ELA(nn.Module):
    """ELA module (the paper's method section and listing): strip pooling -> shared Conv1d + GroupNorm -> sigmoid -> x * a_h * a_w.

    Args:
        channels: C, channels of the input (and of the attention maps).
        kernel_size: k of the 1-D convolution along H and W (odd; padding k // 2 keeps the length).
        groups: groups of the 1-D convolution; None = C (depth-wise, ELA-T/B).
        gn_groups: groups of the GroupNorm.
        eps: GroupNorm epsilon (PyTorch's default, as in the paper's listing).

    Use :meth:`from_variant` for the paper's sizes ("T", "B", "S", "L").
    """

    def __init__(self, channels: int, kernel_size: int = 7, groups: int | None = None, gn_groups: int = 16,
                 eps: float = 1e-5, variant: str | None = None):
        super().__init__()
        groups = channels if groups is None else groups
        name = f"ELA-{variant}" if variant else "ELA"
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConvzooError(f"{name} kernel_size must be a positive odd integer, got {kernel_size}")
        if channels < 1 or groups < 1 or gn_groups < 1 or channels % groups or channels % gn_groups:
            raise ConvzooError(f"{name} needs channels divisible by the conv groups ({groups}) and the GroupNorm "
                               f"groups ({gn_groups}); got {channels} channels")
        self.channels, self.kernel_size, self.groups, self.gn_groups = channels, kernel_size, groups, gn_groups
        self.variant = variant
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False)
        self.gn = nn.GroupNorm(gn_groups, channels, eps=eps)

    @classmethod
    def from_variant(cls, channels: int, variant: str = "B") -> ELA:
        """The paper's ELA-T/B/S/L for ``channels`` (conv groups C or C/8; GN groups 32 or 16)."""
        if variant not in ELA_VARIANTS:
            raise ConvzooError(f"unknown ELA variant {variant!r}; expected one of {sorted(ELA_VARIANTS)}")
        cfg = ELA_VARIANTS[variant]
        width, gn = cfg["group_width"], cfg["gn_groups"]
        if channels < 1 or channels % width or channels % gn:
            need = f"{width} (conv groups C/{width}) and by {gn}" if width > 1 else f"{gn}"
            raise ConvzooError(f"ELA-{variant} needs channels divisible by {need} (GroupNorm groups); "
                               f"got {channels} channels")
        return cls(channels, cfg["kernel_size"], channels // width, gn, variant=variant)

    def _gate(self, strip: torch.Tensor) -> torch.Tensor:
        # (B, C, L) -> (B, C, L) in (0, 1); the same conv and GN for L = H and L = W
        return torch.sigmoid(self.gn(self.conv(strip)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W)
        if x.dim() != 4:
            raise ConvzooError(f"ELA expects a (B, C, H, W) feature map, got shape {tuple(x.shape)}")
        a_h = self._gate(x.mean(3))  # (B, C, H)  pooled along W
        a_w = self._gate(x.mean(2))  # (B, C, W)  pooled along H
        return x * a_h.unsqueeze(3) * a_w.unsqueeze(2)  # (B, C, H, 1) and (B, C, 1, W) broadcast

    def extra_repr(self) -> str:
        v = f"variant={self.variant}, " if self.variant else ""
        return f"{v}channels={self.channels}, kernel_size={self.kernel_size}, groups={self.groups}, " \
               f"gn_groups={self.gn_groups}"
