"""timm's ``features_only``: a backbone's stage maps with their ``feature_info``.

``create_model(name, features_only=True, out_indices=...)`` wraps the classifier in :class:`FeatureListNet`:
``forward(x)`` returns the list of maps ``out_indices`` selects among ``model.feature_info`` (all by default;
an int ``n`` selects the last ``n``; negative indices count from the end, as in timm), and
``feature_info`` answers ``.channels()``, ``.reduction()``, ``.module_name()`` for those maps as timm's
``FeatureInfo`` does. The classifier is dropped (``reset_classifier(0)``: no unused parameters under DDP), and
a backbone whose ``features`` takes ``stop`` computes no stage after the last one requested.
Unlike timm, maps come in the order of ``out_indices`` (timm returns network order but lists
``channels()`` in the order given).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["FeatureInfo", "FeatureListNet", "resolve_out_indices"]


def resolve_out_indices(num_maps: int, out_indices: int | Sequence[int] | None) -> tuple[int, ...]:
    """Absolute indices in ``0..num_maps-1``: None -> all, int n -> last n, negatives count from the end."""
    if out_indices is None:
        return tuple(range(num_maps))
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        if not 0 < out_indices <= num_maps:
            raise ConvzooError(f"out_indices={out_indices}: an int n selects the last n stage maps, 1 to {num_maps} "
                               f"for this model (a list such as [{num_maps - 1}] selects by index)")
        return tuple(range(num_maps - out_indices, num_maps))
    try:
        indices = tuple(out_indices)
    except TypeError:
        raise ConvzooError(f"out_indices must be an int or a sequence of ints, got {out_indices!r}") from None
    if not indices:
        raise ConvzooError("out_indices is empty; give at least one stage index")
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -num_maps <= i < num_maps:
            raise ConvzooError(f"out_indices {list(indices)}: {i!r} is out of range; this model has {num_maps} "
                               f"stage maps (indices {-num_maps}..{num_maps - 1})")
    return tuple(i % num_maps for i in indices)


class FeatureInfo:
    """timm's ``FeatureInfo``: the model's full ``info`` list and the ``out_indices`` the getters default to.

    ``len()`` and ``[i]`` address the full list, as in timm; ``channels()``, ``reduction()``,
    ``module_name()`` (and ``get(key)``, ``get_dicts()``) list the selected maps, or ``idx`` (int or list).
    """

    def __init__(self, info: Sequence[dict], out_indices: Sequence[int]):
        self.info = [dict(f, index=f.get("index", i)) for i, f in enumerate(info)]
        self.out_indices = tuple(out_indices)

    def from_other(self, out_indices: Sequence[int]) -> FeatureInfo:
        return FeatureInfo(self.info, out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None):
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: int | Sequence[int] | None = None):
        def pick(f):
            return dict(f) if keys is None else {k: f[k] for k in keys}

        if idx is None:
            return [pick(self.info[i]) for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [pick(self.info[i]) for i in idx]
        return pick(self.info[idx])

    def channels(self, idx=None):
        return self.get("num_chs", idx)

    def reduction(self, idx=None):
        return self.get("reduction", idx)

    def module_name(self, idx=None):
        return self.get("module", idx)

    def __getitem__(self, item):
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo(out_indices={self.out_indices}, info={self.info})"


def _takes_stop(model: nn.Module) -> bool:
    features = model.features
    if isinstance(features, nn.Module):  # a module named ``features`` (SimpleNet's official stack)
        features = features.forward
    try:
        return "stop" in inspect.signature(features).parameters
    except (TypeError, ValueError):
        return False


class FeatureListNet(nn.Module):
    """The stage maps ``out_indices`` of a backbone (``model.features``), as a list."""

    def __init__(self, model: nn.Module, out_indices: int | Sequence[int] | None = None):
        super().__init__()
        if not callable(getattr(model, "features", None)) or not getattr(model, "feature_info", None):
            raise ConvzooError(f"{type(model).__name__} has no stage maps (features_only is not supported)")
        self.out_indices = resolve_out_indices(len(model.feature_info), out_indices)
        if hasattr(model, "reset_classifier"):
            model.reset_classifier(0)  # the classifier would be parameters without gradients
        self.model = model
        self.feature_info = FeatureInfo(model.feature_info, self.out_indices)
        self._stop = max(self.out_indices) + 1 if _takes_stop(model) else None

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = self.model.features(x) if self._stop is None else self.model.features(x, stop=self._stop)
        return [maps[i] for i in self.out_indices]
