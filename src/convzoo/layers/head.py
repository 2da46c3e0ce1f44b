"""Classifier heads and the backbone contract shared by the classification families (timm's conventions).

- :class:`SelectAdaptivePool`: timm's ``global_pool`` values over any number of spatial dims:
  ``"avg"`` (most papers), ``"max"`` (SimpleNet), ``"avgmax"`` (0.5 (avg + max)), ``"catavgmax"``
  ((avg, max) concatenated: twice the features reach the classifier) and ``""`` (no pooling).
- :func:`create_classifier`: ``(pool, fc)`` for a family that keeps its classifier at its own key
  (ResNet's ``fc``); :class:`ClassifierHead` bundles pool -> dropout -> fc under ``head``.
- :class:`Backbone`: ``forward_features`` / ``forward_head`` / ``features``, ``reset_classifier(num_classes,
  global_pool=None)`` and ``set_grad_checkpointing()``.

With ``global_pool=""`` the classifier is applied at every position of the unpooled map, as timm's
``use_conv`` heads do: the output is ``(B, num_classes, *spatial)``; with ``num_classes=0`` it is the map of
``forward_features`` itself (timm's ``reset_classifier(0, "")``). (timm's Linear heads fail on an unpooled
map unless its width equals the channel count.) With ``num_classes=0`` and a pool the head returns the
pooled embedding, as timm does.
"""

from __future__ import annotations

import types

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from convzoo.errors import ConvzooError

POOL_TYPES = ("avg", "max", "avgmax", "catavgmax", "")


def check_pool(pool_type: str | None) -> str:
    """``pool_type`` if timm knows it (None counts as ""), else one-line ConvzooError."""
    pool_type = pool_type or ""
    if pool_type not in POOL_TYPES:
        raise ConvzooError(f"unknown global_pool {pool_type!r}; expected one of {', '.join(map(repr, POOL_TYPES))}")
    return pool_type


class SelectAdaptivePool(nn.Module):
    """Global pooling by name (timm's SelectAdaptivePool2d, for 1-D, 2-D and 3-D maps).

    ``flatten=True``: ``(B, C, *spatial) -> (B, C * feat_mult())``; else the spatial dims are kept as size 1.
    ``pool_type=""`` passes the map through.
    """

    def __init__(self, pool_type: str = "avg", flatten: bool = True):
        super().__init__()
        self.pool_type, self.flatten = check_pool(pool_type), flatten

    def feat_mult(self) -> int:
        return 2 if self.pool_type == "catavgmax" else 1

    def is_identity(self) -> bool:
        return not self.pool_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.pool_type or x.dim() <= 2:
            return x
        dims, keep = tuple(range(2, x.dim())), not self.flatten
        if self.pool_type == "avg":
            return x.mean(dims, keepdim=keep)
        if self.pool_type == "max":
            return x.amax(dims, keepdim=keep)
        avg, mx = x.mean(dims, keepdim=keep), x.amax(dims, keepdim=keep)
        return 0.5 * (avg + mx) if self.pool_type == "avgmax" else torch.cat((avg, mx), 1)

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}, flatten={self.flatten}"


def make_fc(in_features: int, num_classes: int) -> nn.Module:
    """``nn.Linear`` or, for ``num_classes=0``, ``nn.Identity`` (timm's pass-through)."""
    return nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()


def create_classifier(num_features: int, num_classes: int, pool_type: str = "avg") -> tuple[SelectAdaptivePool, nn.Module]:
    """timm's ``create_classifier``: the pool and an fc sized for what the pool gives (catavgmax: 2x)."""
    pool = SelectAdaptivePool(pool_type)
    return pool, make_fc(num_features * pool.feat_mult(), num_classes)


def apply_fc(fc: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``fc`` on ``(B, C)``, or at every position of an unpooled ``(B, C, *spatial)`` map (global_pool "")."""
    if x.dim() > 2 and isinstance(fc, nn.Linear):
        return fc(x.movedim(1, -1)).movedim(-1, 1)  # (B, num_classes, *spatial)
    return fc(x)


class ClassifierHead(nn.Module):
    """Global pool -> dropout -> linear (key ``fc``). ``pool``: one of :data:`POOL_TYPES`."""

    def __init__(self, in_features: int, num_classes: int, pool: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        self.in_features, self.drop_rate = in_features, drop_rate
        self.global_pool, self.fc = create_classifier(in_features, num_classes, pool)
        self.drop = nn.Dropout(drop_rate)

    @property
    def pool_type(self) -> str:
        return self.global_pool.pool_type

    def reset(self, num_classes: int, pool: str | None = None) -> None:
        """A new fc for ``num_classes`` (and a new pool when ``pool`` is given, as timm's ``reset``)."""
        if pool is not None:
            self.global_pool = SelectAdaptivePool(pool)
        self.fc = make_fc(self.in_features * self.global_pool.feat_mult(), num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        # x: (B, C, *spatial) -> (B, C * feat_mult) -> (B, num_classes)
        x = self.drop(self.global_pool(x))
        return x if pre_logits else apply_fc(self.fc, x)


def _checkpointed_forward(self: nn.Module, *args, **kwargs):
    """A stage's forward under activation checkpointing (in training, with gradients on)."""
    forward = type(self).forward
    if self.training and torch.is_grad_enabled():
        return checkpoint(forward, self, *args, use_reentrant=False, **kwargs)
    return forward(self, *args, **kwargs)


_checkpointed_forward.__name__ = "forward"  # a pickled model restores the plain forward instead of failing


class Backbone(nn.Module):
    """The classification-backbone contract (timm-compatible).

    Subclasses build ``self.head`` (a :class:`ClassifierHead`) or their own classifier (then they override
    ``forward_head``, ``get_classifier`` and ``reset_classifier``), set ``self.num_features``,
    ``self.num_classes`` and ``self.feature_info`` (list of dicts with ``num_chs``, ``reduction``,
    ``module``), and implement ``forward_features`` and ``features`` (one map per feature_info).
    ``features(x, stop=n)`` (optional argument) computes the first ``n`` maps only; features_only uses it.
    """

    num_classes: int
    num_features: int
    feature_info: list[dict]
    grad_checkpointing: bool = False

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

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for ``num_classes`` (0: the pooled embedding); ``global_pool`` also swaps the pool."""
        self.num_classes = num_classes
        if global_pool is None:
            self.head.reset(num_classes)  # heads with a fixed pool take only num_classes
        else:
            self.head.reset(num_classes, check_pool(global_pool))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing of every ``feature_info`` stage module in training (timm's method):
        the stage's activations are recomputed in the backward pass instead of kept."""
        names = [f["module"] for f in self.feature_info]
        for name in names:
            if any(name.startswith(other + ".") for other in names):
                continue  # inside a stage that is checkpointed already
            stage = self.get_submodule(name)
            if enable:
                stage.forward = types.MethodType(_checkpointed_forward, stage)
            else:
                stage.__dict__.pop("forward", None)
        self.grad_checkpointing = enable


class StagedBackbone(Backbone):
    """A backbone built as ``self.stem`` followed by the ``nn.Sequential`` ``self.stages``, one feature map
    per stage (``feature_info`` in stage order)."""

    stem: nn.Module
    stages: nn.Sequential

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))  # (B, num_features, h, w)

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """The output of each stage (the first ``stop`` stages only when given)."""
        x, out = self.stem(x), []
        for stage in self.stages[:stop]:
            x = stage(x)
            out.append(x)
        return out
