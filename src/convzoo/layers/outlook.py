"""Outlook attention and the Outlooker block of VOLO.

Yuan, Hou, Jiang, Feng, Yan, "VOLO: Vision Outlooker for Visual Recognition", arXiv 2106.13112 (seed paper 51),
Sec. 3.1, Eq. 2-5. For every location (i, j) of a token grid, the attention over its K x K neighbourhood is not a
query-key product: a linear layer reads it straight off the centre token, ``A_ij = W_A x_ij`` with K^2 x K^2
weights per head (so ``Linear(C -> K^4 * heads)``), scaled by ``head_dim^-1/2`` and softmaxed over the window's
K^2 source positions. Each of the K^2 output positions of the window gets its weighted sum of the K^2 values of
the window (Eq. 3, "dense aggregation"); overlapping windows add up at every location (Eq. 4, "fold"); a linear
projection follows.

The released code (sail-sg/volo ``models/volo.py``, and timm) computes the attention weights at stride 2:
the input is average-pooled 2 x 2 (ceil mode) before the weight layer, the values are unfolded with stride 2, and
``fold`` scatters the windows back to full resolution (``out_kernel=3, out_stride=2, out_padding=1``). That is
what :class:`OutlookAttention` does with ``stride=2`` (``stride=1`` is Eq. 2-5 as written).

Both are computed channels-last without ``F.unfold`` / ``F.fold`` (which need channels-first maps and their
permuted copies): the windows are gathered by K^2 strided slices of the zero-padded values (one copy), weighted
by one batched matrix product, and folded back by K^2 strided adds (no loop over positions; the same sums as
``fold``). Tokens are channels-last ``(B, H, W, C)``; parameter names are the official / timm ones (``v``, ``attn``,
``proj``; ``norm1``, ``attn``, ``norm2``, ``mlp.fc1``, ``mlp.fc2`` for the block), so released checkpoints load
without a key map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers.vit import Block

__all__ = ["OutlookAttention", "Outlooker"]


class OutlookAttention(nn.Module):
    """Outlook attention on a (B, H, W, C) token grid (VOLO Eq. 2-5; ``stride`` 2 as the released models).

    Args:
        dim: token width C (divisible by ``num_heads``).
        num_heads: heads; each has its own K^2 x K^2 weights per location and C / heads value channels.
        kernel_size: window side K; ``padding`` keeps windows centred ((K - 1) // 2 for odd K).
        stride: 1 computes weights at every location; 2 at every other location (the released setting).
        qkv_bias: bias of the value projection ``v`` (official: none).
    """

    def __init__(self, dim: int, num_heads: int, kernel_size: int = 3, padding: int = 1, stride: int = 1,
                 qkv_bias: bool = False, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.num_heads, self.kernel_size, self.padding, self.stride = num_heads, kernel_size, padding, stride
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn = nn.Linear(dim, kernel_size ** 4 * num_heads)  # K^2 x K^2 weights per head, from the centre
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C) -> (B, H, W, C)
        b, h, w, c = x.shape
        k, k2, nh, s, p = self.kernel_size, self.kernel_size ** 2, self.num_heads, self.stride, self.padding
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1  # window centres (= ceil(H / s) for K = 2p + 1)
        n = oh * ow
        # values, zero-padded so that every window lies inside: (B, Hp, Wp, C), channels last
        hp, wp = max(h + 2 * p, s * (oh - 1) + k), max(w + 2 * p, s * (ow - 1) + k)
        v = F.pad(self.v(x), (0, 0, p, wp - w - p, p, hp - h - p))
        # unfold: each window's K^2 values, (B, oh, ow, K^2, C) in one copy -> (B, n, nh, K^2, d)
        rows, cols = s * (oh - 1) + 1, s * (ow - 1) + 1  # extent of the centres' strided grid
        win = torch.stack([v[:, i:i + rows:s, j:j + cols:s] for i in range(k) for j in range(k)], dim=3)
        win = win.reshape(b, n, k2, nh, self.head_dim).transpose(2, 3)
        centre = x if s == 1 else F.avg_pool2d(x.permute(0, 3, 1, 2), s, s, ceil_mode=True).permute(0, 2, 3, 1)
        a = self.attn(centre).reshape(b, n, nh, k2, k2)  # (B, n, nh, K^2, K^2): weights from the centre token
        a = self.attn_drop((a * self.scale).softmax(dim=-1))  # over the K^2 source positions of each window
        out = (a @ win).transpose(2, 3).reshape(b, oh, ow, k2, c)  # each window's K^2 outputs, (B, oh, ow, K^2, C)
        # fold (Eq. 4): overlapping windows add up; K^2 strided adds into the padded map, cropped back
        acc = v.new_zeros(v.shape)
        for q in range(k2):
            i, j = divmod(q, k)
            acc[:, i:i + rows:s, j:j + cols:s] += out[:, :, :, q]
        return self.proj_drop(self.proj(acc[:, p:p + h, p:p + w]))  # (B, H, W, C)


class Outlooker(Block):
    """``x + DropPath(OutlookAttention(LN x))``, ``x + DropPath(MLP(LN x))`` on (B, H, W, C) tokens (VOLO Eq. 6).

    LayerNorm eps 1e-5 (``nn.LayerNorm``'s default, as the official model); MLP hidden = ``mlp_ratio * dim``.
    """

    def __init__(self, dim: int, num_heads: int, kernel_size: int = 3, padding: int = 1, stride: int = 2,
                 mlp_ratio: float = 3.0, qkv_bias: bool = False, attn_drop: float = 0.0, drop_path_rate: float = 0.0):
        attn = OutlookAttention(dim, num_heads, kernel_size, padding, stride, qkv_bias, attn_drop)
        super().__init__(dim, num_heads, mlp_ratio, qkv_bias, drop_path_rate=drop_path_rate, attn=attn, eps=1e-5)
