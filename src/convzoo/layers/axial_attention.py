"""Axial attention: multi-head self-attention along one axis of an N-d grid.

"Axial Attention in Multidimensional Transformers" (Ho, Kalchbrenner, Weissenborn, Salimans; arXiv
1912.12180; seed paper 46), Sec. 3: for a tensor of shape ``(B, S_1, ..., S_n, D)`` attention runs
along one axis ``S_a`` only; every other axis is a batch axis, so a position attends to the positions
that share all its other coordinates (a row for ``a = W``, a column for ``a = H``). The cost is
``O(N * S_a)`` instead of ``O(N^2)`` for ``N = prod(S)`` positions. The *masked* version is causal
along the axis (position ``i`` attends to ``j <= i``), which is what the autoregressive decoders need.

The projections follow the official ``AttnBlock`` (``axial/transformers.py``): separate ``q``, ``k``,
``v`` dense layers ``D -> heads x D / heads`` and ``proj_out`` ``D -> D``, each with a bias; the
logits are scaled by ``1 / sqrt(D / heads)`` (official ``attn_nd``). The official mask adds ``-1e9``
to the masked logits; here ``F.scaled_dot_product_attention(is_causal=True)`` masks with ``-inf``,
which gives the same softmax up to ``exp(-1e9) = 0``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AxialAttention", "axial_attention"]


def axial_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, axis: int, causal: bool = False,
                    dropout_p: float = 0.0) -> torch.Tensor:
    """Attention of ``q, k, v`` ``(B, S_1, ..., S_n, heads, head_dim)`` along spatial ``axis``.

    ``axis`` indexes the dims of ``q`` (``1 .. n``, or negative counted before the two head dims: ``-1`` is
    ``S_n``). Returns ``(B, S_1, ..., S_n, heads, head_dim)``.
    """
    nd = q.dim()
    axis = axis if axis >= 0 else nd - 2 + axis
    if not 1 <= axis <= nd - 3:
        raise ValueError(f"axis {axis} is not a spatial axis of a tensor with {nd} dims (B, *spatial, heads, head_dim)")
    # (B, ..., S_a, ..., h, e) -> (B, others..., h, S_a, e): the axis next to the features, heads before it
    perm = [i for i in range(nd - 2) if i != axis] + [nd - 2, axis, nd - 1]
    qp, kp, vp = (t.permute(perm) for t in (q, k, v))
    lead = qp.shape[:-2]
    length, e = qp.shape[-2], qp.shape[-1]
    qp, kp, vp = (t.reshape(-1, lead[-1], length, e) for t in (qp, kp, vp))  # (B*others, h, S_a, e)
    out = F.scaled_dot_product_attention(qp, kp, vp, is_causal=causal, dropout_p=dropout_p)
    out = out.reshape(*lead, length, e)
    inv = [0] * nd
    for i, p in enumerate(perm):
        inv[p] = i
    return out.permute(inv)


class AxialAttention(nn.Module):
    """Multi-head self-attention along spatial ``axis`` of ``(B, S_1, ..., S_n, dim)``; ``causal`` masks
    later positions along that axis. Keys: ``q``, ``k``, ``v``, ``proj_out`` (the official names)."""

    def __init__(self, dim: int, num_heads: int, axis: int, causal: bool = False, attn_drop: float = 0.0,
                 out_init_scale: float = 1.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.axis, self.causal, self.attn_drop = dim, num_heads, axis, causal, attn_drop
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj_out = nn.Linear(dim, dim)
        self.out_init_scale = out_init_scale
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official ``nn.Dense``: variance scaling (fan-in, truncated normal), zero bias; ``proj_out``
        scaled by ``out_init_scale`` (the model's ``res_init_scale``, 1e-10 in the official configs)."""
        for lin, scale in ((self.q, 1.0), (self.k, 1.0), (self.v, 1.0), (self.proj_out, self.out_init_scale)):
            variance_scaling_(lin.weight, scale)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape  # (B, *S, D)
        heads = (*shape[:-1], self.num_heads, self.dim // self.num_heads)
        q, k, v = self.q(x).view(heads), self.k(x).view(heads), self.v(x).view(heads)
        axis = self.axis if self.axis >= 0 else x.dim() - 1 + self.axis
        a = axial_attention(q, k, v, axis, self.causal, self.attn_drop if self.training else 0.0)
        return self.proj_out(a.reshape(shape))  # (B, *S, D)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, axis={self.axis}, causal={self.causal}"


def variance_scaling_(w: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """TF's ``variance_scaling(scale)`` (fan-in, truncated normal at 2 std) on a torch weight whose dim 0 is
    fan-out: std ``sqrt(scale / fan_in) / 0.87962566`` (the std of a unit normal truncated at +-2)."""
    fan_in = w[0].numel()
    std = (scale / fan_in) ** 0.5 / 0.87962566103423978
    with torch.no_grad():
        return nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)
