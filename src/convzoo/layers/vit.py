"""Transformer pieces shared by the attention/convolution hybrids (CrossViT, ConViT, VOLO, ...).

The pre-norm Transformer block of ViT (Dosovitskiy et al., "An Image is Worth 16x16 Words", arXiv 2010.11929,
Eq. 2-3) and DeiT (Touvron et al., arXiv 2012.12877): ``x + DropPath(Attn(LN(x)))`` then
``x + DropPath(MLP(LN(x)))``, with multi-head scaled dot-product attention (Vaswani et al. 2017, Eq. 1) and a
two-layer GELU MLP. Module and parameter names are timm's (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``), which are also the official CrossViT / ConViT / VOLO names, so their checkpoints load
without a key map. :class:`Block` takes any attention module, so a family swaps in its own (GPSA, outlook,
cross-attention) and keeps the rest.

Attention runs through ``F.scaled_dot_product_attention`` (fused kernels on CPU and GPU, same result as
softmax(QK^T / sqrt(d)) V up to float rounding).

:func:`resample_abs_pos_embed` resizes a learned absolute position embedding to another token grid (bicubic, as
timm's ``resample_abs_pos_embed``), so a ViT-style model takes inputs other than its training size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers.drop_path import drop_path

__all__ = ["Attention", "Block", "Mlp", "init_vit_weights_", "resample_abs_pos_embed"]


class Mlp(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout (ViT Eq. 3)."""

    def __init__(self, dim: int, hidden: int | None = None, out_dim: int | None = None, drop: float = 0.0,
                 act: type[nn.Module] = nn.GELU):
        super().__init__()
        hidden = hidden or dim
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act()
        self.fc2 = nn.Linear(hidden, out_dim or dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., dim) -> (..., out_dim)
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention over tokens (B, N, C), one fused ``qkv`` projection (timm's layout)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, head_dim: int | None = None, scale: float | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim or dim // num_heads
        inner = self.num_heads * self.head_dim
        self.scale = scale if scale is not None else self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(inner, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        # (B, N, 3*h*d) -> 3 x (B, h, N, d)
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0,
                                           scale=self.scale)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, -1)))  # (B, N, C)


class Block(nn.Module):
    """Pre-norm Transformer block; ``attn`` defaults to :class:`Attention` and may be any token mixer."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path_rate: float = 0.0,
                 norm: type[nn.Module] = nn.LayerNorm, attn: nn.Module | None = None, eps: float = 1e-6):
        super().__init__()
        self.norm1 = norm(dim, eps=eps)
        self.attn = attn if attn is not None else Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path1 = drop_path(drop_path_rate)
        self.norm2 = norm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path2 = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, C) -> (B, N, C)
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


def init_vit_weights_(model: nn.Module, *embeddings: torch.Tensor) -> None:
    """The official ViT / DeiT initialisation (timm's too): trunc-normal(0.02) for the given position embeddings
    and class tokens (in that order), then for every Linear weight, with zero biases."""
    for t in embeddings:
        nn.init.trunc_normal_(t, std=0.02)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def resample_abs_pos_embed(pos: torch.Tensor, new_size: tuple[int, int], old_size: tuple[int, int] | None = None,
                           num_prefix_tokens: int = 0, mode: str = "bicubic") -> torch.Tensor:
    """(1, P + H*W, C) learned position embedding -> (1, P + H'*W', C) for a (H', W') token grid.

    The ``num_prefix_tokens`` leading entries (class / distillation tokens) are kept; the grid part is resized
    with ``mode`` interpolation (``align_corners=False``, ``antialias=True``: timm's defaults). Returns ``pos`` itself
    when the grid already has the new size.
    """
    prefix, grid = pos[:, :num_prefix_tokens], pos[:, num_prefix_tokens:]
    n = grid.shape[1]
    if old_size is None:
        side = math.isqrt(n)
        old_size = (side, side)
    if tuple(old_size) == tuple(new_size):
        return pos
    c = grid.shape[-1]
    grid = grid.reshape(1, old_size[0], old_size[1], c).permute(0, 3, 1, 2)  # (1, C, H, W)
    grid = F.interpolate(grid.float(), size=tuple(new_size), mode=mode, align_corners=False, antialias=True).to(pos.dtype)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_size[0] * new_size[1], c)
    return torch.cat([prefix, grid], dim=1)
