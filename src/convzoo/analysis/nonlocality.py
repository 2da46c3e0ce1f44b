"""Non-locality of attention heads: the attention-weighted mean distance between query and key patches.

The analysis of seed paper 36 (d'Ascoli et al., "ConViT: Improving Vision Transformers with Soft Convolutional
Inductive Biases", arXiv 2103.10697, Sec. 4, Fig. 5-6; official ``get_attention_map``): for head h of a layer with
attention A over the N patches of an (H, W) grid,

    D_h = 1/N sum_i sum_j A_h[i, j] ||p_j - p_i||_2        (patch units, averaged over the images too)

small D_h = a local (convolution-like) head. Prefix tokens (the class token of the MHSA blocks) are dropped and
each query's attention re-normalised over the patches, so GPSA and MHSA layers are measured alike. The gates
sigma(lambda_h) of the GPSA layers (how positional each head is) come from :func:`gating`.

Works on any model built from :class:`convzoo.layers.gpsa.GPSA` and :class:`convzoo.layers.vit.Attention`
(ConViT, DeiT-style models): forward pre-hooks record each attention layer's input, and the map is recomputed from
the layer's own projections.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.gpsa import GPSA
from convzoo.layers.vit import Attention

__all__ = ["attention_maps", "gating", "mean_attention_distance", "nonlocality"]


def mean_attention_distance(attn: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, heads, P + N, P + N) attention over P prefix + N = H*W patch tokens -> (heads,) mean distance D_h."""
    n = grid[0] * grid[1]
    prefix = attn.shape[-1] - n
    if prefix < 0 or attn.shape[-2] != attn.shape[-1]:
        raise ConvzooError(f"attention of shape {tuple(attn.shape)} does not cover a {grid[0]}x{grid[1]} patch grid")
    a = attn[..., prefix:, prefix:].double()
    a = a / a.sum(-1, keepdim=True)  # re-normalised over the patches
    ys, xs = torch.meshgrid(torch.arange(grid[0], dtype=torch.float64, device=a.device),
                            torch.arange(grid[1], dtype=torch.float64, device=a.device), indexing="ij")
    pos = torch.stack((ys.flatten(), xs.flatten()), -1)  # (N, 2)
    dist = torch.cdist(pos, pos)  # (N, N)
    return torch.einsum("nm,bhnm->h", dist, a) / (a.shape[0] * n)


def _square(n: int) -> tuple[int, int]:
    side = math.isqrt(n)
    return side, side


def _mhsa_map(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    b, n, _ = x.shape
    q, k, _ = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    return ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1)  # (B, h, N, N)


@torch.no_grad()
def attention_maps(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, tuple[int, int]]]:
    """Run ``model(x)`` and return, per GPSA / MHSA layer name, its attention (B, h, N, N) and patch grid.

    A GPSA layer knows its grid; an MHSA layer takes the grid of the GPSA layers before it, else the largest
    square grid its tokens hold (the rest are prefix tokens).
    """
    inputs: dict[str, tuple] = {}
    hooks = [m.register_forward_pre_hook(lambda m, args, kwargs, name=name: inputs.__setitem__(name, (args, kwargs)),
                                         with_kwargs=True)
             for name, m in model.named_modules() if isinstance(m, (GPSA, Attention))]
    try:
        was_training = model.training
        model.eval()
        model(x)
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    if not inputs:
        raise ConvzooError(f"{type(model).__name__} has no GPSA or multi-head attention layer to measure")
    out, last_grid = {}, None
    for name, (args, kwargs) in inputs.items():
        m, t = model.get_submodule(name), args[0]
        if isinstance(m, GPSA):
            grid = kwargs.get("grid", args[1] if len(args) > 1 else None) or _square(t.shape[1])
            out[name], last_grid = (m.attention(t, grid), tuple(grid)), tuple(grid)
        else:
            out[name] = (_mhsa_map(m, t), last_grid or _square(t.shape[1]))
    return out


def nonlocality(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per attention layer (module name), the per-head mean attention distance D_h on the images ``x``."""
    return {name: mean_attention_distance(a, grid).float() for name, (a, grid) in attention_maps(model, x).items()}


def gating(model: nn.Module) -> dict[str, torch.Tensor]:
    """Per GPSA layer, sigma(lambda_h) per head: 1 = purely positional attention, 0 = purely content."""
    return {name: torch.sigmoid(m.gating_param.detach()) for name, m in model.named_modules() if isinstance(m, GPSA)}
