"""A tiny data set and model for the engine tests, registered only while a test needs them.

``_tiny_blobs``: 4 classes of 1x8x8 images, a fixed pattern per class plus noise (train 96, val 32,
test 32 items). Train items get a random brightness jitter drawn from torch's global RNG, so data
augmentation depends on the RNG streams that resuming must reproduce.
``classes`` (default 4) sets the number of classes.
``_tiny_net``: conv-relu-conv-relu-pool-dropout-linear; ``bn=True`` adds a BatchNorm; two stages in
``feature_info`` (``stem``, ``conv``) and ``get_classifier()`` (``fc``), as timm-style backbones have. ``clamp`` and
``penalty`` exercise the engine's model hooks: the classifier weights are clamped to +-clamp after every
optimizer step, and ``penalty * |fc.weight|^2`` joins the loss from epoch ``penalty_from`` on;
``zero_from`` zeroes the classifier weights after every step from that (0-based) epoch on, so the
validation accuracy falls to chance: a run whose best epoch is not its last.
``_tiny_aux``: a method with a trainable head OUTSIDE the model (an auxiliary classifier on the pooled
features, as a pretext head or projector would be): the engine must optimise, checkpoint and resume it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from convzoo import registry as model_registry
from convzoo.data import DataInfo, register_dataset
from convzoo.data import registry as data_registry
from convzoo.methods import base as method_registry
from convzoo.methods.base import Method, register_method
from convzoo.registry import ModelCard, register_model

DATA, MODEL = "_tiny_blobs", "_tiny_net"
SIZES = {"train": 96, "val": 32, "test": 32}


class TinyBlobs(Dataset):
    def __init__(self, split: str, n: int | None = None, jitter: float = 0.3, classes: int = 4):
        g = torch.Generator().manual_seed(1234)
        patterns = torch.randn(classes, 1, 8, 8, generator=g)
        g.manual_seed({"train": 1, "val": 2, "test": 3}[split])
        n = n or SIZES[split]
        self.y = torch.arange(n) % classes
        self.x = patterns[self.y] + 1.5 * torch.randn(n, 1, 8, 8, generator=g)
        self.jitter = jitter if split == "train" else 0.0
        self.info = DataInfo(name=DATA, task="classification", in_chans=1, num_classes=classes,
                             class_names=tuple("abcdefghij"[:classes]), input_size=(8, 8))

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if self.jitter:
            x = x + self.jitter * torch.randn(())  # uses the global RNG, like real augmentation
        return x, int(self.y[i])


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 4, in_chans: int = 1, width: int = 8, drop_rate: float = 0.0,
                 bn: bool = False, clamp: float | None = None, penalty: float = 0.0, penalty_from: int = 0,
                 zero_from: int | None = None):
        super().__init__()
        self.penalty, self.penalty_from, self.zero_from, self.epoch = penalty, penalty_from, zero_from, 0
        if clamp is not None:
            self.fc_clamp = _Clamp(self, clamp)
        if zero_from is not None:
            self.fc_clamp = _Clamp(self, 0.0, zero_from)
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1),
                                  nn.BatchNorm2d(width) if bn else nn.Identity(), nn.ReLU())
        self.conv = nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU())
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(width, num_classes)
        self.feature_info = [{"num_chs": width, "reduction": 1, "module": "stem"},
                             {"num_chs": width, "reduction": 2, "module": "conv"}]

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        x = self.conv(self.stem(x)).mean((2, 3))
        return self.fc(self.drop(x))

    def regularization_loss(self, epoch: int):
        self.epoch = epoch
        if not self.penalty or epoch < self.penalty_from:
            return None
        return self.penalty * self.fc.weight.pow(2).sum()


class _Clamp(nn.Module):
    """A submodule with ``post_optimizer_step`` (the engine finds it by walking the model)."""

    def __init__(self, owner: nn.Module, bound: float, start: int = 0):
        super().__init__()
        self.bound, self.start, self._owner = bound, start, [owner]  # a list: not a registered child (no recursion)

    def post_optimizer_step(self) -> None:
        if self._owner[0].epoch >= self.start:
            self._owner[0].fc.weight.clamp_(-self.bound, self.bound)


class AuxHead(Method):
    """Cross-entropy of the model plus ``weight`` x cross-entropy of an extra linear head on its features."""

    def __init__(self, model, task, info=None, weight: float = 0.5):
        super().__init__(model, task)
        self.aux = nn.Linear(model.fc.in_features, model.fc.out_features)
        self.weight = weight

    def training_step(self, batch):
        x, y = batch
        m = self.model
        h = m.conv(m.stem(x)).mean((2, 3))
        ce = nn.functional.cross_entropy(m.fc(m.drop(h)), y)
        aux = nn.functional.cross_entropy(self.aux(h), y)
        return {"loss": ce + self.weight * aux, "ce": ce.detach(), "aux": aux.detach()}


class Alternating(Method):
    """Two optimizers stepped by the method itself, one after the other (manual optimisation, as GANs
    and alternating schemes need): the model on its loss, then the auxiliary head on its own."""

    automatic_optimization = False

    def __init__(self, model, task, info=None):
        super().__init__(model, task)
        self.aux = nn.Linear(model.fc.in_features, model.fc.out_features)

    def configure_optimizers(self, opt, build):
        head = {id(p) for p in self.aux.parameters()}
        groups = self.param_groups(opt)
        model_groups = [{**g, "params": [p for p in g["params"] if id(p) not in head]} for g in groups]
        aux_groups = [{**g, "params": [p for p in g["params"] if id(p) in head]} for g in groups]
        return [build([g for g in model_groups if g["params"]]), build([g for g in aux_groups if g["params"]])]

    def training_step(self, batch):
        x, y = batch
        m = self.model
        opt_model, opt_aux = self.optimizers()
        ce = nn.functional.cross_entropy(m(x), y)
        self.manual_backward(ce)
        opt_model.step()
        opt_model.zero_grad(set_to_none=True)
        with torch.no_grad():
            h = m.conv(m.stem(x)).mean((2, 3))
        aux = nn.functional.cross_entropy(self.aux(h), y)
        self.manual_backward(aux)
        opt_aux.step()
        opt_aux.zero_grad(set_to_none=True)
        return {"loss": (ce + aux).detach(), "ce": ce.detach(), "aux": aux.detach()}


METHOD, METHOD2 = "_tiny_aux", "_tiny_alternating"
CARD = ModelCard(name=MODEL, paper=0, family="_tiny", task="classification", in_chans=1, num_classes=4,
                 input_size=(8, 8), test_size=(8, 8), capabilities=frozenset())


def _build_blobs(split, root=None, **kw):
    return TinyBlobs(split, **kw)


def _build_net(**kw):
    return TinyNet(**kw)


def register() -> None:
    register_dataset(DATA)(_build_blobs)
    register_model(CARD)(_build_net)
    register_method(METHOD)(AuxHead)
    register_method(METHOD2)(Alternating)


def unregister() -> None:
    data_registry._DATA.pop(DATA, None)
    model_registry._REGISTRY.pop(MODEL, None)
    method_registry._METHODS.pop(METHOD, None)
    method_registry._METHODS.pop(METHOD2, None)


def recipe(**over) -> dict:
    """A small recipe over the tiny data and model (a mapping; callers may dump it to YAML)."""
    r = {
        "name": "tiny",
        "model": {"name": MODEL, "kwargs": {"drop_rate": 0.2}},
        "data": {"name": DATA},
        "optimizer": {"name": "sgd", "lr": 0.1, "kwargs": {"momentum": 0.9}},
        "schedule": {"name": "cosine", "warmup_epochs": 1},
        "epochs": 3,
        "batch_size": 16,
        "eval_batch_size": 32,
        "seed": 0,
    }
    for k, v in over.items():
        r[k] = {**r[k], **v} if isinstance(v, dict) and isinstance(r.get(k), dict) else v
    return r
