"""Global pooling of a Vision Transformer's tokens, by timm's ``global_pool`` names plus the CNN ones.

Tokens are (B, P + N, C): ``P`` prefix tokens (the class token) then ``N`` patch tokens. ``"token"`` takes the
class token (ViT / DeiT, timm's default for CrossViT and ConViT); ``"avg"``, ``"max"``, ``"avgmax"`` and
``"catavgmax"`` pool the patch tokens as :class:`convzoo.layers.head.SelectAdaptivePool` pools a map
(``catavgmax`` doubles the width); ``""`` keeps every patch token, so a classifier applied after it scores
each token: :func:`apply_token_head` returns that as (B, num_classes, N), classes first as the CNN heads'
``""`` maps are.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["TOKEN_POOLS", "apply_token_head", "check_token_pool", "pool_feat_mult", "pool_tokens"]

TOKEN_POOLS = ("token", "avg", "max", "avgmax", "catavgmax", "")


def check_token_pool(pool: str | None) -> str:
    pool = pool or ""
    if pool not in TOKEN_POOLS:
        raise ConvzooError(f"unknown global_pool {pool!r} for a token model; expected one of "
                           f"{', '.join(map(repr, TOKEN_POOLS))}")
    return pool


def pool_feat_mult(pool: str) -> int:
    return 2 if pool == "catavgmax" else 1


def pool_tokens(x: torch.Tensor, pool: str, num_prefix_tokens: int = 1) -> torch.Tensor:
    """(B, P + N, C) -> (B, C) (``catavgmax``: (B, 2C); ``""``: the patch tokens (B, N, C))."""
    if pool == "token":
        return x[:, 0]
    patches = x[:, num_prefix_tokens:]
    if pool == "":
        return patches
    if pool == "avg":
        return patches.mean(1)
    if pool == "max":
        return patches.amax(1)
    avg, mx = patches.mean(1), patches.amax(1)
    return 0.5 * (avg + mx) if pool == "avgmax" else torch.cat((avg, mx), 1)


def apply_token_head(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``head`` on pooled (B, C) features, or on every token of (B, N, C), then given as (B, num_classes, N)."""
    y = head(x)
    return y.transpose(1, 2) if x.dim() == 3 and isinstance(head, nn.Linear) else y
