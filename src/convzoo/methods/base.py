"""What is trained: a :class:`Method` owns every trainable part and says how one step learns.

A method is an ``nn.Module`` (so Fabric wraps it, DDP synchronises it and one ``state_dict``
checkpoints it) holding the model and whatever else is trained or kept beside it: heads, projectors,
EMA teachers, a supernet's sampler. The engine (:mod:`convzoo.engine.fit`) only calls this interface:

* ``training_step(batch) -> dict[str, Tensor]``: ``"loss"`` plus named parts, which the progress
  bar and ``metrics.csv`` log (``train_<name>``). The engine back-propagates ``"loss"`` when it
  still requires grad; a step that already called :meth:`manual_backward` on its parts (e.g. the
  sandwich rule of BigNAS, one backward per child) returns them detached.
* ``validation_step(batch) -> (outputs, targets)``: fed to the task's loss and metrics.
* ``param_groups(optimizer_cfg)``: the default puts no weight decay on parameters with ``ndim <= 1``
  and on the names a module lists in ``no_weight_decay()`` (as timm and ConvNeXt), and applies the
  recipe's ``optimizer.param_groups`` globs (lr multipliers) on top.
* ``configure_optimizers(opt, build)``: one optimizer over ``param_groups`` by default; a method that
  needs several (alternating GAN-style steps) returns a list, sets ``automatic_optimization = False``
  and steps them itself in ``training_step`` with :meth:`manual_backward` and ``self.optimizers()``.
* hooks with defaults: ``on_train_epoch_start(epoch)``, ``on_after_optimizer_step()`` (calls
  ``post_optimizer_step()`` on every submodule that has one: DCLS position clamping, EMA teachers).
* ``export_model()``: the network a person keeps (``last.safetensors``, ``predict``, ``export``).

``forward(batch)`` dispatches to ``training_step`` in training mode and to ``validation_step`` in
eval mode, so that Fabric's wrapper (autocast, DDP gradient hooks) sees every step as a forward.
Methods register by name with :func:`register_method`; a recipe's ``method:`` section picks one
(default ``supervised``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from convzoo.errors import ConvzooError, UnknownNameError


class Method(nn.Module):
    """Base class; subclasses implement :meth:`training_step` (and usually :meth:`validation_step`)."""

    name = "method"
    automatic_optimization = True

    def __init__(self, model: nn.Module, task):
        super().__init__()
        self.model = model
        self.task = task  # a plain object, not a module: holds no trained state
        self.epoch = 0
        self._backward: Callable[[torch.Tensor], None] = lambda loss: loss.backward()
        self._optimizers: list[torch.optim.Optimizer] = []

    # --- one step -----------------------------------------------------------------------------
    def forward(self, batch):
        return self.training_step(batch) if self.training else self.validation_step(batch)

    def training_step(self, batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def validation_step(self, batch):
        """(outputs, targets) of the network a person keeps, for the task's loss and metrics."""
        return self.task.evaluation_forward(self.model, batch)

    def manual_backward(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` the way the engine does (Fabric: precision scaling, DDP)."""
        self._backward(loss)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return self._optimizers

    # --- optimisation ------------------------------------------------------------------------------
    def param_groups(self, opt: dict) -> list[dict]:
        """Groups for the optimizer (see :func:`param_groups`)."""
        return param_groups(self, opt)

    def configure_optimizers(self, opt: dict, build: Callable[[list[dict]], torch.optim.Optimizer]):
        """One optimizer (``build(groups)``, the recipe's kind) over :meth:`param_groups`; override for several."""
        return [build(self.param_groups(opt))]

    # --- hooks ---------------------------------------------------------------------------------------
    def on_train_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    @torch.no_grad()
    def on_after_optimizer_step(self) -> None:
        for m in self.modules():
            hook = getattr(m, "post_optimizer_step", None)
            if m is not self and callable(hook):
                hook()

    def export_model(self) -> nn.Module:
        """The network a person keeps: saved as ``last.safetensors``, used by predict and export."""
        return self.model


def no_weight_decay_names(module: nn.Module) -> set[str]:
    """Full parameter names listed by any submodule's ``no_weight_decay()`` (timm's convention)."""
    names: set[str] = set()
    for prefix, sub in module.named_modules():
        fn = getattr(sub, "no_weight_decay", None)
        if not callable(fn):
            continue
        for n in fn():
            names.add(f"{prefix}.{n}" if prefix else n)
    return names


def param_groups(module: nn.Module, opt: dict) -> list[dict]:
    """Optimizer groups of ``module``'s trainable parameters: recipe globs, then the no-decay rule.

    ``opt`` is a recipe's ``optimizer`` section. Each ``optimizer.param_groups`` entry (first glob
    match wins) scales the lr by ``lr_mult`` and may set ``weight_decay``. A parameter whose group
    sets no weight decay gets none when it is 1-D (biases, norm scales, layer scales) or listed by a
    submodule's ``no_weight_decay()`` -- unless ``optimizer.decay_1d`` is true (the older recipes that
    decay every parameter, e.g. Caffe's and torchvision's references) -- and the recipe's
    ``weight_decay`` otherwise. Inside a method, names carry the method's ``model.`` prefix; globs
    match the name with or without it, so a recipe written for a bare model keeps working.
    """
    lr, wd = opt["lr"], opt["weight_decay"]
    specs = opt.get("param_groups", [])
    decay_1d = opt.get("decay_1d", False)
    skip = set() if decay_1d else no_weight_decay_names(module)
    groups: dict[tuple, dict] = {}
    used = [False] * len(specs)
    names = []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        names.append(name)
        inner = name.removeprefix("model.")
        i = next((i for i, s in enumerate(specs)
                  if fnmatch.fnmatchcase(name, s["match"]) or fnmatch.fnmatchcase(inner, s["match"])), None)
        spec = specs[i] if i is not None else {"match": "*", "lr_mult": 1.0, "weight_decay": None}
        if i is not None:
            used[i] = True
        if spec["weight_decay"] is not None:
            g_wd = spec["weight_decay"]
        elif name in skip or (p.ndim <= 1 and not decay_1d):
            g_wd = 0.0
        else:
            g_wd = wd
        key = (spec["match"], spec["lr_mult"], g_wd)
        g = groups.setdefault(key, {"params": [], "lr": lr * spec["lr_mult"], "lr_mult": spec["lr_mult"],
                                    "match": spec["match"], "weight_decay": g_wd})
        g["params"].append(p)
    for s, ok in zip(specs, used):
        if not ok:
            raise ConvzooError(f"optimizer.param_groups match '{s['match']}' selects no parameter; "
                               f"names look like {', '.join(names[:4])}")
    return list(groups.values())


_METHODS: dict[str, Callable[..., Method]] = {}


def register_method(name: str):
    def deco(cls):
        cls.name = name
        _METHODS[name] = cls
        return cls

    return deco


def build_method(name: str, model: nn.Module, task, info, **options: Any) -> Method:
    """The registered method ``name`` around ``model`` and ``task`` (``info``: the training data's facts)."""
    import convzoo.methods  # noqa: F401  (registers the built-in methods)

    if name not in _METHODS:
        raise UnknownNameError("method", name, sorted(_METHODS))
    try:
        return _METHODS[name](model=model, task=task, info=info, **options)
    except TypeError as e:
        raise ConvzooError(f"method '{name}' rejects method.kwargs {options}: {e}") from None


def list_methods() -> list[str]:
    import convzoo.methods  # noqa: F401

    return sorted(_METHODS)
