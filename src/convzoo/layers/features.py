"""timm's ``features_only``: a backbone's stage maps (interim; issue 9 completes it)."""

from __future__ import annotations

import torch.nn as nn

from convzoo.errors import ConvzooError


class FeatureListNet(nn.Module):
    def __init__(self, model: nn.Module, out_indices=None):
        super().__init__()
        if not hasattr(model, "features") or not hasattr(model, "feature_info"):
            raise ConvzooError(f"{type(model).__name__} has no stage maps (features_only is not supported)")
        n = len(model.feature_info)
        self.out_indices = tuple(range(n) if out_indices is None else out_indices)
        self.model = model
        self.feature_info = [model.feature_info[i] for i in self.out_indices]

    def forward(self, x):
        maps = self.model.features(x)
        return [maps[i] for i in self.out_indices]
