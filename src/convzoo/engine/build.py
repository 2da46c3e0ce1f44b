"""Builders: a recipe's data, task, model, method, batch transform and loaders.

Every object a run needs is made here from the validated recipe (:mod:`convzoo.engine.recipe`), so
``fit`` and ``evaluate`` read as what they do. Each builder turns a constructor's complaint about
its ``kwargs`` into one line naming the recipe key.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from convzoo.errors import ConvzooError


def available_accelerators() -> list[str]:
    """The Fabric accelerator names that can run on this machine."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda", "gpu"]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names += ["mps"] + ([] if "gpu" in names else ["gpu"])
    return names


def check_accelerator(accelerator) -> str:
    """``accelerator`` when this machine has it, else a one-line error naming what it has."""
    known = available_accelerators()
    if not isinstance(accelerator, str) or accelerator not in known:
        raise ConvzooError(f"accelerator {accelerator!r} is not available on this machine; available: "
                           f"{', '.join(known)}")
    return accelerator


def build_data(cfg: dict, split: str) -> Dataset:
    """One split of the recipe's data set (``data.kwargs`` go to the builder)."""
    from convzoo.data import build_dataset

    d = cfg["data"]
    try:
        ds = build_dataset(d["name"], split, root=d["root"], **d["kwargs"])
    except TypeError as e:
        raise ConvzooError(f"data set '{d['name']}' rejects data.kwargs {d['kwargs']}: {e}") from None
    if not hasattr(ds, "info"):
        raise ConvzooError(f"data set '{d['name']}' returned no .info (DataInfo); see convzoo/data/registry.py")
    return ds


def build_task_for(cfg: dict, info):
    """The recipe's task (``task.name`` null: the data set's own task)."""
    from convzoo.tasks import build_task

    t = cfg["task"]
    name = t["name"] or info.task
    try:
        return build_task(name, **t["kwargs"])
    except (TypeError, ValueError) as e:
        raise ConvzooError(f"task '{name}' rejects task.kwargs {t['kwargs']}: {e}") from None


def build_model(cfg: dict, info, task=None) -> nn.Module:
    """The recipe's model; what the task takes from the data set (``num_classes``) and ``in_chans``
    come from the data set's info unless ``model.kwargs`` sets them."""
    from convzoo.registry import create_model, get_card

    m = cfg["model"]
    kw = dict(m["kwargs"])
    card = get_card(m["name"])
    task = task if task is not None else build_task_for(cfg, info)
    for k, v in task.model_kwargs(card, info).items():
        kw.setdefault(k, v)
    kw.setdefault("in_chans", info.in_chans)
    try:
        return create_model(m["name"], **kw)
    except TypeError as e:
        raise ConvzooError(f"model '{m['name']}' rejects model.kwargs {m['kwargs']}: {e}") from None


def build_method(cfg: dict, info, task=None):
    """The recipe's method (default ``supervised``) around its model and task."""
    from convzoo.methods import build_method as _build

    task = task if task is not None else build_task_for(cfg, info)
    model = build_model(cfg, info, task)
    return _build(cfg["method"]["name"], model, task, info, **cfg["method"]["kwargs"])


def build_batch_transform(cfg: dict, info) -> Callable | None:
    """MixUp / CutMix (torchvision.transforms.v2) or ``jitter`` (affine + elastic + channel order,
    :class:`convzoo.data.transforms.GroupedJitter`, any task) on training batches, or None.

    ``batch_transform.kwargs``: ``mixup_alpha`` (default 0.8), ``cutmix_alpha`` (1.0) and, for
    ``mixup_cutmix``, ``switch_prob`` (0.5: each batch gets one of the two, as timm's Mixup).
    """
    bt = cfg["batch_transform"]
    if bt["name"] is None:
        return None
    from torchvision.transforms import v2

    kw = dict(bt["kwargs"])
    if bt["name"] == "jitter":
        return _jitter(kw)
    _check_kwargs(kw, {"mixup_alpha", "cutmix_alpha", "switch_prob"})
    if not info.num_classes:
        raise ConvzooError(f"batch_transform '{bt['name']}' needs a classification data set (num_classes)")
    k = info.num_classes
    mixup = v2.MixUp(alpha=float(kw.get("mixup_alpha", 0.8)), num_classes=k)
    cutmix = v2.CutMix(alpha=float(kw.get("cutmix_alpha", 1.0)), num_classes=k)
    if bt["name"] == "mixup":
        fn = mixup
    elif bt["name"] == "cutmix":
        fn = cutmix
    else:
        p = float(kw.get("switch_prob", 0.5))
        fn = v2.RandomChoice([mixup, cutmix], p=[1 - p, p])

    def transform(batch):
        x, y = batch
        return fn(x, y)  # y: (B,) class indices -> (B, K) probabilities

    return transform


def _check_kwargs(kw: dict, allowed: set[str]) -> None:
    if set(kw) - allowed:
        raise ConvzooError(f"batch_transform takes kwargs {sorted(allowed)}, got {sorted(set(kw) - allowed)}")


def _jitter(kw: dict) -> Callable:
    """``jitter``: :class:`convzoo.data.transforms.GroupedJitter` on the images of any training batch."""
    import inspect

    from convzoo.data.transforms import GroupedJitter

    _check_kwargs(kw, set(inspect.signature(GroupedJitter).parameters))
    fn = GroupedJitter(**kw)

    def transform(batch):
        x, *rest = batch
        return (fn(x), *rest)

    return transform


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: seed numpy and ``random`` from the worker's torch seed."""
    import random

    import numpy as np

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def train_loader(dataset: Dataset, task, cfg: dict, rank: int, world: int, pin_memory: bool):
    """(loader, sampler, generator): ``batch_size / world`` items per process, shuffled with
    ``seed + epoch`` by a ``DistributedSampler`` (call ``sampler.set_epoch``)."""
    d, per_device = cfg["data"], cfg["batch_size"] // world
    if 2 <= len(dataset) // world < per_device:  # a small folder of one's own: one batch of all of it, said once
        print(f"convzoo: the '{d['train_split']}' split of {d['name']} has {len(dataset)} items, fewer than one batch "
              f"of {per_device}: training with batches of {len(dataset) // world} per process", file=sys.stderr)
        per_device = len(dataset) // world
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg["seed"])
    generator = torch.Generator()
    loader = DataLoader(dataset, batch_size=per_device, sampler=sampler, drop_last=True,
                        num_workers=d["num_workers"], worker_init_fn=_seed_worker, generator=generator,
                        pin_memory=pin_memory, collate_fn=task.collate)
    if len(loader) == 0:
        raise ConvzooError(f"the '{d['train_split']}' split of {d['name']} has {len(dataset)} items, fewer "
                           f"than one batch of {per_device} per process (batch_size {cfg['batch_size']})")
    return loader, sampler, generator


def eval_loader(dataset: Dataset, batch_size: int, rank: int = 0, world: int = 1, num_workers: int = 0,
                pin_memory: bool = False, collate: Callable | None = None) -> DataLoader:
    """In order; rank ``r`` of ``world`` takes items r, r + world, ... (no padding, no duplicates)."""
    shard = list(range(rank, len(dataset), world))
    per_device = max(1, math.ceil(batch_size / world))
    return DataLoader(dataset, batch_size=per_device, sampler=shard, num_workers=num_workers,
                      pin_memory=pin_memory, collate_fn=collate)
