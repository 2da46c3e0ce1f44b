"""Classifier head shared by the classification backbones: global pool -> dropout -> linear.

``pool`` is "avg" (most papers) or "max" (SimpleNet's global max pooling). With ``num_classes=0``
the head returns the pooled embedding, as timm does.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class ClassifierHead(nn.Module):
    def __init__(self, in_features: int, num_classes: int, pool: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.in_features, self.pool_type, self.drop_rate = in_features, pool, drop_rate
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        # x: (B, C, *spatial) -> (B, C)
        if x.dim() > 2:
            x = x.flatten(2)
            x = x.mean(-1) if self.pool_type == "avg" else x.amax(-1)
        x = self.drop(x)
        return x if pre_logits else self.fc(x)


class Backbone(nn.Module):
    """The classification-backbone contract (timm-compatible).

    Subclasses build ``self.head`` (a :class:`ClassifierHead`), set ``self.num_features``,
    ``self.num_classes`` and ``self.feature_info`` (list of dicts with ``num_chs``, ``reduction``,
    ``module``), and implement ``forward_features`` and ``features`` (one map per feature_info).
    """

    num_classes: int
    num_features: int
    feature_info: list[dict]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes)


class StagedBackbone(Backbone):
    """A backbone built as ``self.stem`` followed by the ``nn.Sequential`` ``self.stages``, one feature map
    per stage (``feature_info`` in stage order)."""

    stem: nn.Module
    stages: nn.Sequential

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))  # (B, num_features, h, w)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each stage."""
        x, out = self.stem(x), []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out
