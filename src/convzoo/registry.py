"""Model registry and model cards.

A family file registers each variant with :func:`register_model`, passing a :class:`ModelCard` that
states what the paper reports about it. ``create_model`` builds a registered model by name; unknown
names raise :class:`~convzoo.errors.UnknownNameError` with the closest registered names.

Counting conventions on the card (see DESIGN.md): ``params`` is the sum of ``p.numel()`` over
``model.parameters()`` of the model built with the card's ``num_classes`` and ``in_chans``;
``macs`` are multiply-accumulates at the card's ``input_size`` (FLOPs = 2 x MACs).
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from torch import nn

from convzoo.errors import ConvzooError, UnknownNameError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAPABILITIES = ("features", "reparam", "compile", "onnx", "torch_export", "channels_last", "bf16")


@dataclass(frozen=True)
class ModelCard:
    """What a registered model is and what its paper says about it."""

    name: str
    paper: int  # seed number (1..57) of ../shared/seeds
    family: str  # family file in convzoo.models, e.g. "ecanet"
    task: str  # a registered task (convzoo.tasks.list_tasks()), checked when the models are loaded
    dims: int = 2  # 1, 2 or 3 spatial dims
    in_chans: int = 3
    num_classes: int = 1000  # classes, or outputs for regression; 0: no classifier (image-to-image)
    scale: int = 1  # output / input size of image-to-image models (super-resolution factor)
    input_size: tuple[int, ...] = (224, 224)  # the paper's input size (H, W) or (L,)
    test_size: tuple[int, ...] = (64, 64)  # small size used by the contract tests
    params: int | None = None  # the paper's / reference's count for this configuration
    params_rtol: float = 0.0  # 0 = exact; else the paper's rounding (e.g. 0.005 for "5.48M")
    params_source: str = ""  # where the count comes from, and its convention
    macs: int | None = None  # multiply-accumulates at input_size
    macs_rtol: float = 0.0  # 0 = exact; else the source's rounding (e.g. 0.0005 for "4.089 G")
    macs_source: str = ""
    reference: str | None = None  # "timm:NAME", "torchvision:NAME" or "package:NAME"
    capabilities: frozenset[str] = field(default_factory=lambda: frozenset({"compile", "onnx"}))
    recipes: tuple[str, ...] = ()
    # preprocessing the weights expect (timm's pretrained_cfg): ImageNet statistics unless the family says otherwise
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"  # resize interpolation at evaluation: bilinear | bicubic | nearest
    crop_pct: float = 0.875  # centre-crop fraction at evaluation (resize to input_size / crop_pct, then crop)
    crop_mode: str = "center"  # timm's crop_mode: "center" (resize the short side, crop) | "squash" (warp to size)
    source: str = ""  # paper section/table the implementation follows
    notes: str = ""

    def with_(self, **kw) -> ModelCard:
        return replace(self, **kw)


@dataclass(frozen=True)
class _Entry:
    card: ModelCard
    factory: Callable[..., nn.Module]


_REGISTRY: dict[str, _Entry] = {}
_LOADED = False


def register_model(card: ModelCard):
    """Decorator: register ``factory(**kwargs) -> nn.Module`` under ``card.name``."""

    def deco(fn: Callable[..., nn.Module]):
        if card.name in _REGISTRY and _REGISTRY[card.name].factory.__qualname__ != fn.__qualname__:
            raise ValueError(f"model '{card.name}' registered twice")
        assert set(card.capabilities) <= set(CAPABILITIES), card.capabilities
        _REGISTRY[card.name] = _Entry(card, fn)
        fn.card = card
        return fn

    return deco


def _load_all() -> None:
    """Import every family module once so that its variants register themselves."""
    global _LOADED
    if _LOADED:
        return
    import convzoo.models as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"convzoo.models.{mod.name}")
    _LOADED = True
    from convzoo.tasks import list_tasks

    tasks = set(list_tasks())
    bad = sorted(f"{e.card.name} ({e.card.task})" for e in _REGISTRY.values() if e.card.task not in tasks)
    if bad:
        raise ValueError(f"model cards name unregistered tasks: {', '.join(bad)}; tasks are {sorted(tasks)}")


def _entry(name: str) -> _Entry:
    _load_all()
    if name not in _REGISTRY:
        raise UnknownNameError("model", name, sorted(_REGISTRY))
    return _REGISTRY[name]


def create_model(name: str, *, num_classes: int | None = None, in_chans: int | None = None,
                 pretrained: bool | str | os.PathLike = False, pretrained_cfg_overlay: dict | None = None,
                 features_only: bool = False, out_indices: Sequence[int] | None = None, **overrides) -> nn.Module:
    """Build the registered model ``name``, with timm's arguments.

    ``num_classes``/``in_chans`` default to the card's; other keyword arguments go to the family's
    constructor (e.g. ``k_size=(3, 5, 5, 7)``, ``drop_rate=0.1``, ``drop_path_rate=0.1``, ``global_pool``).
    ``pretrained`` is True (the weights shipped inside the package) or a checkpoint file (timm's or the
    authors' key layout, ``.safetensors`` / ``.pth`` / ``.bin``); timm's spelling
    ``pretrained_cfg_overlay=dict(file=PATH)`` names the file too. ``features_only=True`` returns the
    stage maps listed by ``out_indices`` (default: all) with their ``feature_info``.
    """
    entry = _entry(name)
    card = entry.card
    kw = dict(overrides)
    if card.num_classes or num_classes is not None:  # 0 on the card: the family takes no num_classes
        kw["num_classes"] = card.num_classes if num_classes is None else num_classes
    kw["in_chans"] = card.in_chans if in_chans is None else in_chans
    model = entry.factory(**kw)
    model.card = card
    file = (pretrained_cfg_overlay or {}).get("file")
    if pretrained or file:
        from convzoo.weights import load_pretrained

        load_pretrained(model, card, file or pretrained)
    if features_only:
        from convzoo.layers.features import FeatureListNet

        model = FeatureListNet(model, out_indices)
        model.card = card
    return model


def data_config(model_or_name: nn.Module | str) -> dict:
    """The preprocessing a model's weights expect, as timm's ``resolve_data_config`` returns it:
    ``input_size`` (C, H, W), ``interpolation``, ``mean``, ``std``, ``crop_pct``, ``crop_mode``."""
    card = get_card(model_or_name) if isinstance(model_or_name, str) else getattr(model_or_name, "card", None)
    if card is None:
        raise ConvzooError("data_config needs a registered model name or a model built by convzoo.create_model")
    return {"input_size": (card.in_chans, *card.input_size), "interpolation": card.interpolation,
            "mean": tuple(card.mean), "std": tuple(card.std), "crop_pct": card.crop_pct, "crop_mode": card.crop_mode}


def get_card(name: str) -> ModelCard:
    return _entry(name).card


def list_models(pattern: str | None = None, task: str | None = None, paper: int | None = None) -> list[str]:
    """Registered names, filtered by a glob ``pattern``, ``task`` and seed ``paper`` number."""
    _load_all()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern if any(c in pattern for c in "*?[") else f"*{pattern}*")]
    if task:
        names = [n for n in names if _REGISTRY[n].card.task == task]
    if paper is not None:
        names = [n for n in names if _REGISTRY[n].card.paper == int(paper)]
    return names


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
