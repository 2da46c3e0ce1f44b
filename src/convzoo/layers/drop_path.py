"""Stochastic depth (Huang et al. 2016, "Deep Networks with Stochastic Depth", arXiv 1603.09382).

In training each sample's residual branch is dropped with probability ``p`` and kept branches are scaled by
``1 / (1 - p)`` (torchvision's ``StochasticDepth(p, "row")``, timm's ``DropPath``), so evaluation uses the
branch unscaled. :func:`drop_path_rates` spreads a network's ``drop_path_rate`` over its blocks linearly
from 0 (first block) to the rate (last block), the rule of timm's ResNet and of ConvNeXt
(``torch.linspace(0, drop_path_rate, sum(depths))``; Huang et al. Sec. 3 "linear decay" of the survival
probability). Neither adds parameters, so state-dict keys do not change.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torchvision.ops import StochasticDepth

from convzoo.errors import ConvzooError

__all__ = ["check_drop_rate", "drop_path", "drop_path_rates", "no_drop_path"]


def check_drop_rate(rate: float, name: str = "drop_path_rate") -> float:
    """``rate`` if it is a probability in [0, 1), else one-line ConvzooError."""
    if not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ConvzooError(f"{name} must be a number in [0, 1), got {rate!r}")
    return float(rate)


def drop_path(p: float) -> nn.Module:
    """Per-sample drop of a residual branch with probability ``p`` (identity when ``p == 0``)."""
    return StochasticDepth(p, "row") if p > 0 else nn.Identity()


def drop_path_rates(drop_path_rate: float, depths: Sequence[int]) -> list[list[float]]:
    """Per-stage lists of per-block rates, linear from 0 to ``drop_path_rate`` over all ``sum(depths)`` blocks."""
    check_drop_rate(drop_path_rate)
    n = sum(depths)
    flat = [drop_path_rate * i / (n - 1) if n > 1 else 0.0 for i in range(n)]
    out, start = [], 0
    for d in depths:
        out.append(flat[start:start + d])
        start += d
    return out


def no_drop_path(drop_path_rate: float, what: str) -> None:
    """For networks without residual paths: accept ``drop_path_rate=0`` only (one-line ConvzooError)."""
    if drop_path_rate:
        raise ConvzooError(f"{what} has no residual paths to drop: drop_path_rate must be 0, got {drop_path_rate!r}")
