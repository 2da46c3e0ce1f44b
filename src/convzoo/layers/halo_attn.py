"""Blocked local self-attention with halos (HaloNet).

"Scaling Local Self-Attention for Parameter Efficient Visual Backbones", Vaswani, Ramachandran, Srinivas,
Parmar, Hechtman, Shlens; CVPR 2021; arXiv 2103.12731 (seed paper 23), Sec. 2-3.

The feature map is cut into non-overlapping ``b x b`` query blocks; every query of a block attends to the
same ``(b + 2h) x (b + 2h)`` window: the block and a halo of ``h`` pixels around it, zero-padded at the
image border (the paper does not mask the padded keys, and neither does this layer). Logits are
``q . k / sqrt(d_qk)`` plus 2-D relative position logits factorised over height and width
(``q . r^H[dy] + q . r^W[dx]``, attention-augmented convolution / SASA style). Stride 2 subsamples the
queries inside each block (the paper's strided self-attention: attention is the downsampling op), so a
block has ``(b / 2)^2`` queries and the same window of keys.

:class:`HaloAttn` keeps the arguments and parameter names of ``timm.layers.HaloAttn`` (``q``, ``kv``,
``pos_embed.height_rel``, ``pos_embed.width_rel``), so timm's weights load key for key, and computes the
same function (proven in tests/models/test_halonet.py), including timm's reading of the strided case: the
relative index of a strided query is its index inside the subsampled block (timm flags this as possibly
not the paper's intent; there is no official code).

How it is computed (no loops, one attention call):
- keys/values of every window are gathered with two ``unfold`` views of the halo-padded map (one copy;
  ONNX export, which has no Unfold over a dynamic batch, gathers rows and columns with ``index_select``);
- the relative logits are folded into the attention product instead of a dense bias: the query is
  extended with its gathered height and width logits (``2 (b + 2h)`` numbers) and every key with the
  one-hot codes of its window row and column, so ``q' . k' = q . k / sqrt(d) + q . r^H + q . r^W`` exactly.
  The attention then needs no mask and no ``(blocks, b^2, (b + 2h)^2)`` bias tensor is ever built:
  ``F.scaled_dot_product_attention`` with the values zero-padded to the extended width (its fused kernels
  need equal widths; the width is a multiple of 8) on a GPU and in fp32 on a CPU, or matmul-softmax-matmul
  where that is faster (bf16 on a CPU, few queries per block; see ``HaloAttn._attend``).

Departure from timm: a map whose size the block size does not divide is zero-padded at the bottom/right
to the next multiple (the padded positions act like the halo's zero padding) and the output cropped back
to ``ceil(H / stride) x ceil(W / stride)``; timm asserts divisibility (the paper's H7 needs the padding:
its 600-px input gives a 75 x 75 map for b = 10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["HaloAttn", "PosEmbedRel", "make_divisible"]


def make_divisible(v: float, divisor: int = 8) -> int:
    """timm's ``make_divisible``: nearest multiple of ``divisor`` (at least ``divisor``), never below 90 % of v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _rel_index(queries: int, window: int, device=None) -> torch.Tensor:
    """(queries, window) index into a table of ``2 window - 1`` offsets: ``k - i + window - 1``."""
    i = torch.arange(queries, device=device)[:, None]
    k = torch.arange(window, device=device)[None, :]
    return k - i + window - 1


class PosEmbedRel(nn.Module):
    """Factorised relative position tables (timm's keys ``height_rel``, ``width_rel``), each
    ``(2 window - 1, dim_head)``; query ``i`` of a block and window key ``k`` use row ``k - i + window - 1``."""

    def __init__(self, block_size: int, win_size: int, dim_head: int, scale: float):
        super().__init__()
        self.block_size, self.win_size, self.dim_head = block_size, win_size, dim_head
        self.height_rel = nn.Parameter(torch.empty(2 * win_size - 1, dim_head))
        self.width_rel = nn.Parameter(torch.empty(2 * win_size - 1, dim_head))
        nn.init.trunc_normal_(self.height_rel, std=scale)
        nn.init.trunc_normal_(self.width_rel, std=scale)

    def tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Gathered tables, each (block_size, win_size, dim_head): row i, key k -> r[k - i + win - 1]."""
        idx = _rel_index(self.block_size, self.win_size, self.height_rel.device)
        return self.height_rel[idx], self.width_rel[idx]

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """Relative logits of blocked queries ``q`` (N, b*b, d) -> (N, b*b, win*win) (dense form, for reference)."""
        n, bb = q.shape[:2]
        b, w = self.block_size, self.win_size
        th, tw = self.tables()
        q = q.reshape(n, b, b, -1)  # (N, iy, ix, d)
        lh = torch.einsum("nyxd,ykd->nyxk", q, th)  # (N, iy, ix, ky)
        lw = torch.einsum("nyxd,xkd->nyxk", q, tw)  # (N, iy, ix, kx)
        return (lh[..., :, None] + lw[..., None, :]).reshape(n, bb, w * w)


class HaloAttn(nn.Module):
    """Halo attention over a (B, dim, H, W) map -> (B, dim_out, ceil(H / stride), ceil(W / stride)).

    Args (timm's): dim, dim_out (default dim; the value width), stride (1 or 2), num_heads, dim_head (query/
    key width per head; default ``make_divisible(dim_out * qk_ratio) // num_heads``), block_size ``b``,
    halo_size ``h``, qk_ratio, qkv_bias, avg_down (stride by 2x2 average pooling of the output instead of
    strided queries; forced when ``b`` is odd).
    """

    def __init__(self, dim: int, dim_out: int | None = None, stride: int = 1, num_heads: int = 8,
                 dim_head: int | None = None, block_size: int = 8, halo_size: int = 3, qk_ratio: float = 1.0,
                 qkv_bias: bool = False, avg_down: bool = False):
        super().__init__()
        dim_out = dim_out or dim
        if dim_out % num_heads or stride not in (1, 2) or block_size < 1 or halo_size < 0:
            raise ConvzooError(f"HaloAttn needs dim_out ({dim_out}) divisible by num_heads ({num_heads}), stride 1 or "
                               f"2 (got {stride}), block_size >= 1 and halo_size >= 0")
        self.num_heads = num_heads
        self.dim_head_qk = dim_head or make_divisible(dim_out * qk_ratio, divisor=8) // num_heads
        self.dim_head_v = dim_out // num_heads
        self.dim_out_qk, self.dim_out_v = num_heads * self.dim_head_qk, num_heads * self.dim_head_v
        self.scale = self.dim_head_qk ** -0.5
        self.stride = stride
        self.block_size = self.block_size_ds = block_size
        self.halo_size = halo_size
        self.win_size = block_size + 2 * halo_size
        use_pool = stride > 1 and (avg_down or block_size % stride != 0)
        self.block_stride = stride if stride > 1 and not use_pool else 1
        self.block_size_ds = block_size // self.block_stride
        self.q = nn.Conv2d(dim, self.dim_out_qk, 1, stride=self.block_stride, bias=qkv_bias)
        self.kv = nn.Conv2d(dim, self.dim_out_qk + self.dim_out_v, 1, bias=qkv_bias)
        self.pos_embed = PosEmbedRel(self.block_size_ds, self.win_size, self.dim_head_qk, self.scale)
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True) if use_pool else nn.Identity()
        std = dim ** -0.5  # fan-in, as timm
        nn.init.trunc_normal_(self.q.weight, std=std)
        nn.init.trunc_normal_(self.kv.weight, std=std)

    def _blocks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, ...]]:
        """Blocked q (N, nb, bq^2, d_qk), window k (N, nb, win^2, d_qk), v (N, nb, win^2, d_v); N = B * heads."""
        b, _, h, w = x.shape
        bs, hs, win, bq, nh = self.block_size, self.halo_size, self.win_size, self.block_size_ds, self.num_heads
        pad_h, pad_w = -h % bs, -w % bs
        if pad_h or pad_w:  # bottom/right zero padding to a multiple of the block size
            x = F.pad(x, [0, pad_w, 0, pad_h])
        nby, nbx = (h + pad_h) // bs, (w + pad_w) // bs
        q = self.q(x)  # (B, nh d_qk, nby bq, nbx bq): strided 1x1 conv = queries subsampled inside each block
        q = q.reshape(b, nh, self.dim_head_qk, nby, bq, nbx, bq).permute(0, 1, 3, 5, 4, 6, 2)
        q = q.reshape(b * nh, nby * nbx, bq * bq, self.dim_head_qk)
        kv = F.pad(self.kv(x), [hs, hs, hs, hs])  # halo zero padding
        if torch.onnx.is_in_onnx_export():  # ONNX has no Unfold of a map with a dynamic batch: gather rows, columns
            rows = (torch.arange(nby, device=x.device)[:, None] * bs + torch.arange(win, device=x.device)).flatten()
            cols = (torch.arange(nbx, device=x.device)[:, None] * bs + torch.arange(win, device=x.device)).flatten()
            kv = kv.index_select(2, rows).index_select(3, cols)  # (B, C, nby win, nbx win)
            kv = kv.reshape(b, -1, nby, win, nbx, win).transpose(3, 4)  # (B, C, nby, nbx, win, win)
        else:
            kv = kv.unfold(2, win, bs).unfold(3, win, bs)  # (B, C, nby, nbx, win, win) view
        kv = kv.reshape(b, nh, self.dim_head_qk + self.dim_head_v, nby, nbx, win, win).permute(0, 1, 3, 4, 5, 6, 2)
        kv = kv.reshape(b * nh, nby * nbx, win * win, self.dim_head_qk + self.dim_head_v)
        k, v = kv.split([self.dim_head_qk, self.dim_head_v], dim=-1)
        return q, k, v, (b, nby, nbx, h, w)

    @staticmethod
    def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T) v over each window; q, k (N, nb, L, D), v (N, nb, S, d_v).

        SDPA's fused kernels need equal widths: fed these as they are, it falls back to its unfused math path,
        which on a CPU checks every row for -inf and (bf16) upcasts to fp32. So: the narrower side zero-padded
        (values sliced back after) and the fused kernel where it pays (any GPU; a CPU in fp32 when a block has
        at least 64 queries: the fused CPU kernel repacks each window's keys, too much for the 16 queries of a
        strided block), else the plain three ops (a CPU in bf16, where the fused kernel is 1.2-1.5x slower per
        layer of halonet_h1).
        """
        if q.device.type != "cpu" or (q.dtype == torch.float32 and q.shape[-2] >= 64):
            dv, width = v.shape[-1], q.shape[-1]
            if dv > width:  # zero columns of q and k leave the logits unchanged
                q, k = F.pad(q, [0, dv - width]), F.pad(k, [0, dv - width])
            elif dv < width:
                return F.scaled_dot_product_attention(q, k, F.pad(v, [0, width - dv]), scale=1.0)[..., :dv]
            return F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v, (b, nby, nbx, h, w) = self._blocks(x)
        bq, win = self.block_size_ds, self.win_size
        n, nb = q.shape[:2]
        # relative logits: per query, its height logits over the window rows and width logits over the columns
        th, tw = self.pos_embed.tables()  # (bq, win, d_qk) each
        qg = q.reshape(n, nb, bq, bq, -1)  # (N, nb, iy, ix, d)
        lh = torch.einsum("nbyxd,ykd->nbyxk", qg, th).reshape(n, nb, bq * bq, win)
        lw = torch.einsum("nbyxd,xkd->nbyxk", qg, tw).reshape(n, nb, bq * bq, win)
        # fold them into the product: q' = [q / sqrt(d), l^H, l^W], k' = [k, onehot(row), onehot(col)]
        # (zero columns round the width up to a multiple of 8, which the fused GPU attention kernels ask for)
        extra = -(q.shape[-1] + 2 * win) % 8
        eye = torch.eye(win, dtype=k.dtype, device=k.device)
        codes = torch.cat([eye.repeat_interleave(win, 0), eye.repeat(win, 1)], dim=1)  # (win^2, 2 win)
        q = F.pad(torch.cat([q * self.scale, lh, lw], dim=-1), [0, extra])
        k = torch.cat([k, F.pad(codes, [0, extra]).expand(n, nb, -1, -1)], dim=-1)
        out = self._attend(q, k, v)  # (N, nb, bq^2, d_v)
        # un-block: (B, heads, nby, nbx, bq, bq, d_v) -> (B, heads d_v, nby bq, nbx bq)
        out = out.reshape(b, self.num_heads, nby, nbx, bq, bq, self.dim_head_v).permute(0, 1, 6, 2, 4, 3, 5)
        out = out.reshape(b, self.dim_out_v, nby * bq, nbx * bq)
        out = self.pool(out)
        s = self.stride
        ho, wo = -(-h // s), -(-w // s)
        if out.shape[-2:] != (ho, wo):
            out = out[..., :ho, :wo]  # drop the block padding
        return out
