"""Data set registry.

A data set builder is registered by name and called as ``builder(split, root=None, **options)``
with ``split`` in {"train", "val", "test"}; it returns a ``torch.utils.data.Dataset`` whose items
are ``(input_tensor, target)`` and which carries a :class:`DataInfo` as ``dataset.info``.
Missing or malformed files raise :class:`~convzoo.errors.ConvzooError` naming the path and what
was expected.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from torch.utils.data import Dataset

from convzoo.errors import UnknownNameError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataInfo:
    name: str
    task: str  # the registered task it feeds (convzoo.tasks.list_tasks())
    in_chans: int
    num_classes: int = 0  # classes (classification) or outputs (regression)
    class_names: tuple[str, ...] = ()
    input_size: tuple[int, ...] = ()  # (H, W) or (L,) of one item, when fixed
    extra: dict = field(default_factory=dict)  # task-specific facts (scale, sample period, ...)


_DATA: dict[str, Callable[..., Dataset]] = {}


def register_dataset(name: str):
    def deco(fn):
        _DATA[name] = fn
        return fn

    return deco


def build_dataset(name: str, split: str, root: str | None = None, **options) -> Dataset:
    import convzoo.data  # noqa: F401  (registers the built-in data sets)

    if name not in _DATA:
        raise UnknownNameError("data set", name, sorted(_DATA))
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    builder = _DATA[name]
    known = [p for p in inspect.signature(builder).parameters if p not in ("split", "root")]
    if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(builder).parameters.values()):
        for key in options:
            if key not in known:
                raise UnknownNameError(f"option for data set '{name}':", key, known)
    return builder(split, root=root, **options)


def list_datasets() -> list[str]:
    import convzoo.data  # noqa: F401

    return sorted(_DATA)
