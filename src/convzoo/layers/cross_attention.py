"""CrossViT's cross-attention fusion: one branch's CLS token attends over the other branch's tokens.

Chen, Fan, Panda, "CrossViT: Cross-Attention Multi-Scale Vision Transformer for Image Classification",
ICCV 2021, arXiv 2103.14899 (seed paper 28), Sec. 3.3, Eq. 5-8.

Given the tokens ``x' = [f(x_cls^i) || x_patch^j]`` (branch i's CLS projected to branch j's width, then
branch j's patch tokens), cross-attention uses the CLS alone as the query:

    q = x'_cls W_q,  k = x' W_k,  v = x' W_v,  A = softmax(q k^T / sqrt(C / h)),  CA(x') = A v    (Eq. 5-6)

multi-head (``h`` heads), followed by the output projection, and the block adds it to the CLS only:
``y_cls = f(x_cls^i) + DropPath(CA(LN(x')))`` (Eq. 7; no MLP after it, as in the released models). One query
makes the cost linear in the number of tokens. Attention runs through ``F.scaled_dot_product_attention`` with a
single query row.

Keys are the official / timm ones (``wq``, ``wk``, ``wv``, ``proj``; block ``norm1``, ``attn``), so CrossViT
checkpoints load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers.drop_path import drop_path

__all__ = ["CrossAttention", "CrossAttentionBlock"]


class CrossAttention(nn.Module):
    """Multi-head attention with the first token as the only query over all tokens: (B, N, C) -> (B, 1, C)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.wq = nn.Linear(dim, dim, bias=qkv_bias)
        self.wk = nn.Linear(dim, dim, bias=qkv_bias)
        self.wv = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h, d = self.num_heads, self.head_dim
        q = self.wq(x[:, :1]).reshape(b, 1, h, d).transpose(1, 2)  # (B, h, 1, d): the CLS query
        k = self.wk(x).reshape(b, n, h, d).transpose(1, 2)  # (B, h, N, d)
        v = self.wv(x).reshape(b, n, h, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0,
                                             scale=self.scale)  # (B, h, 1, d)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, 1, c)))  # (B, 1, C)


class CrossAttentionBlock(nn.Module):
    """``x_cls + DropPath(CrossAttention(LN(x)))``: the updated CLS token (B, 1, C) of tokens x (B, N, C)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path_rate: float = 0.0, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = CrossAttention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, C) -> (B, 1, C)
        return x[:, :1] + self.drop_path(self.attn(self.norm1(x)))
