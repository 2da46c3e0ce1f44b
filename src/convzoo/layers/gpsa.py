"""Gated positional self-attention (GPSA) and its convolutional ("local") initialisation.

d'Ascoli, Touvron, Leavitt, Morcos, Biroli, Sagun, "ConViT: Improving Vision Transformers with Soft
Convolutional Inductive Biases", ICML 2021, arXiv 2103.10697 (seed paper 36), Sec. 3, Eq. 4-6.

Per head h, over the N patches of an (H, W) grid, with relative offsets r_ij = (dx, dy, dx^2 + dy^2) of key j
from query i (dx along the width):

    A_h = (1 - sigma(lambda_h)) softmax(Q_h K_h^T / sqrt(d_h)) + sigma(lambda_h) softmax(v_pos,h^T r_ij)   (Eq. 5)
    A_h <- A_h / rowsum(A_h)                          (the official re-normalisation)
    GPSA(X) = concat_h(A_h X W_val,h) W_out

``v_pos`` is one ``Linear(3 -> heads)`` (``pos_proj``), ``lambda`` the per-head ``gating_param`` (init 1).

Local initialisation (Sec. 3, Eq. 7; :func:`local_init`): the heads sit on a sqrt(N_h) x sqrt(N_h) grid of
offsets Delta_h around the centre and v_pos,h = alpha (2 Delta_h,x, 2 Delta_h,y, -1), so the positional score is
-alpha ||delta - Delta_h||^2 + const: head h attends to a Gaussian around offset Delta_h, as the tap Delta_h of a
sqrt(N_h) x sqrt(N_h) convolution. The value projection starts as the identity. alpha (locality strength) = 1.

Computation: the positional attention does not depend on the input, so it is computed once per call for the
whole batch as (heads, N, N) (timm runs ``pos_proj`` on a (B, N, N, 3) tensor). The two terms are row-stochastic
and so is their convex mix, so the re-normalisation divides by 1 up to rounding; the forward therefore runs as
``(1 - g) * SDPA(q, k, v) + g * (P @ v)`` (fused attention, no (B, h, N, N) content matrix kept), which equals the
explicit formula (:meth:`GPSA.attention`, used by the analysis tools and the tests) to float rounding. With
``attn_drop > 0`` in training the explicit path runs (the dropout acts on the mixed map, as in the official code).

Keys are the official / timm ones (``qk``, ``v``, ``proj``, ``pos_proj``, ``gating_param``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["GPSA", "local_init", "relative_offsets"]


def relative_offsets(height: int, width: int, device=None, dtype=None) -> torch.Tensor:
    """(N, N, 3) offsets (dx, dy, dx^2 + dy^2) of key m from query n, tokens row-major over an H x W grid."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dx, dy = xs[None, :] - xs[:, None], ys[None, :] - ys[:, None]  # (N, N)
    return torch.stack((dx, dy, dx * dx + dy * dy), dim=-1)


def _grid(n: int, grid: tuple[int, int] | None) -> tuple[int, int]:
    if grid is not None:
        return grid
    side = math.isqrt(n)
    if side * side != n:
        raise ConvzooError(f"GPSA got {n} tokens without a grid; pass grid=(H, W) or a square number of patches")
    return side, side


class GPSA(nn.Module):
    """Gated positional self-attention over patch tokens (B, N, C) of an (H, W) grid -> (B, N, C)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, locality_strength: float = 1.0, use_local_init: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ConvzooError(f"GPSA width {dim} must be divisible by num_heads={num_heads}")
        self.num_heads, self.head_dim, self.dim = num_heads, dim // num_heads, dim
        self.scale = self.head_dim ** -0.5
        self.locality_strength = locality_strength
        self.qk = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.pos_proj = nn.Linear(3, num_heads)
        self.proj_drop = nn.Dropout(proj_drop)
        self.gating_param = nn.Parameter(torch.ones(num_heads))
        if use_local_init:
            local_init(self, locality_strength)

    def positional_attention(self, grid: tuple[int, int], device=None, dtype=None) -> torch.Tensor:
        """softmax(v_pos^T r_ij) per head: (heads, N, N), the same for every image."""
        rel = relative_offsets(*grid, device=device or self.pos_proj.weight.device, dtype=dtype or self.pos_proj.weight.dtype)
        return self.pos_proj(rel).permute(2, 0, 1).softmax(dim=-1)

    def _qkv(self, x: torch.Tensor):
        b, n, _ = x.shape
        q, k = self.qk(x).reshape(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        v = self.v(x).reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, N, d)
        return q, k, v

    def attention(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """The explicit mixed and re-normalised attention map (B, heads, N, N) of Eq. 5."""
        q, k, _ = self._qkv(x)
        return self._mix(q, k, self.positional_attention(_grid(x.shape[1], grid), x.device, x.dtype))

    def _mix(self, q, k, pos):
        content = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)  # (B, h, N, N)
        g = torch.sigmoid(self.gating_param).view(-1, 1, 1)
        attn = (1.0 - g) * content + g * pos
        return attn / attn.sum(dim=-1, keepdim=True)

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self._qkv(x)
        pos = self.positional_attention(_grid(n, grid), x.device, x.dtype)  # (h, N, N), once for the batch
        if self.training and self.attn_drop > 0:
            out = F.dropout(self._mix(q, k, pos), self.attn_drop) @ v
        else:
            g = torch.sigmoid(self.gating_param).view(-1, 1, 1).to(x.dtype)  # (h, 1, 1)
            out = (1.0 - g) * F.scaled_dot_product_attention(q, k, v, scale=self.scale) + g * (pos @ v)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))  # (B, N, C)


@torch.no_grad()
def local_init(gpsa: GPSA, locality_strength: float = 1.0) -> GPSA:
    """ConViT's convolutional initialisation of a :class:`GPSA` layer (official ``local_init``).

    Head ``i + k j`` (k = floor(sqrt(heads)), i, j in 0..k-1) gets the offset Delta = (j - c, i - c) (x, y), with
    c = k // 2 for odd k and (k - 1) / 2 for even k, and v_pos = alpha (2 Delta_x, 2 Delta_y, -1); heads beyond
    k^2 keep their weights. The value projection becomes the identity.
    """
    gpsa.v.weight.copy_(torch.eye(gpsa.dim))
    k = math.isqrt(gpsa.num_heads)
    center = (k - 1) / 2 if k % 2 == 0 else k // 2
    w = gpsa.pos_proj.weight  # (heads, 3): columns (dx, dy, d^2)
    for i in range(k):
        for j in range(k):
            h = i + k * j
            w[h, 0], w[h, 1], w[h, 2] = 2.0 * (j - center), 2.0 * (i - center), -1.0
    w.mul_(locality_strength)
    return gpsa
