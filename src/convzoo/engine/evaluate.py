"""Evaluation: building data / model / task from a recipe, the metric loop, and run folders.

The same :func:`evaluate_loader` computes the per-epoch validation metrics, the final test metrics
of :func:`convzoo.engine.train` and the numbers of :func:`evaluate`, so ``evaluate(run)`` on a run
folder reproduces the test metrics its training reported.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from lightning_utilities.core.apply_func import apply_to_collection
from torch import nn
from torch.utils.data import DataLoader, Dataset

from convzoo.engine.checkpoint import BEST, CONFIG, LAST, load_data_info, run_folder
from convzoo.engine.recipe import load_recipe
from convzoo.errors import ConvzooError


# --- building from a recipe --------------------------------------------------------------------
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


def build_model(cfg: dict, info) -> nn.Module:
    """The recipe's model, with ``num_classes`` (classification/regression) and ``in_chans`` from
    the data set's info unless ``model.kwargs`` sets them."""
    from convzoo.registry import create_model, get_card

    m = cfg["model"]
    kw = dict(m["kwargs"])
    card = get_card(m["name"])
    if card.task in ("classification", "regression") and info.num_classes:
        kw.setdefault("num_classes", info.num_classes)
    kw.setdefault("in_chans", info.in_chans)
    try:
        return create_model(m["name"], **kw)
    except TypeError as e:
        raise ConvzooError(f"model '{m['name']}' rejects model.kwargs {m['kwargs']}: {e}") from None


def build_task_for(cfg: dict, info):
    """The recipe's task (``task.name`` null: the data set's own task)."""
    from convzoo.tasks import build_task

    t = cfg["task"]
    name = t["name"] or info.task
    try:
        return build_task(name, **t["kwargs"])
    except (TypeError, ValueError) as e:
        raise ConvzooError(f"task '{name}' rejects task.kwargs {t['kwargs']}: {e}") from None


def eval_loader(dataset: Dataset, batch_size: int, rank: int = 0, world: int = 1, num_workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """In order; rank ``r`` of ``world`` takes items r, r + world, ... (no padding, no duplicates)."""
    shard = list(range(rank, len(dataset), world))
    per_device = max(1, math.ceil(batch_size / world))
    return DataLoader(dataset, batch_size=per_device, sampler=shard, num_workers=num_workers,
                      pin_memory=pin_memory)


def _to_float(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _count(targets) -> int:
    if isinstance(targets, torch.Tensor):
        return int(targets.shape[0]) if targets.dim() else 1
    if isinstance(targets, dict):
        return _count(next(iter(targets.values())))
    return len(targets)


@torch.no_grad()
def evaluate_loader(fabric, model: nn.Module, loader, task, dataset) -> dict[str, float]:
    """Mean loss and the task's metrics over ``loader`` (all processes together)."""
    metrics = task.metrics(dataset).to(fabric.device)
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=fabric.device)
    n = torch.zeros((), dtype=torch.float64, device=fabric.device)
    precision = fabric.strategy.precision  # what Fabric's module wrapper does around forward
    for batch in loader:
        batch = precision.convert_input(fabric.to_device(batch))
        with precision.forward_context():  # autocast, or the half dtype of "*-true" precisions
            outputs, targets = task.forward(model, batch)
        # loss and metrics in float32
        outputs, targets = apply_to_collection((outputs, targets), torch.Tensor, _to_float)
        k = _count(targets)
        loss_sum += task.loss(outputs, targets).detach().double() * k
        n += k
        task.update_metrics(metrics, outputs, targets)
    values = metrics.compute()  # torchmetrics gathers the states of every process
    metrics.reset()
    if fabric.world_size > 1:
        loss_sum = fabric.all_reduce(loss_sum, reduce_op="sum")
        n = fabric.all_reduce(n, reduce_op="sum")
    out = {"loss": float(loss_sum / n.clamp(min=1))}
    for k, v in values.items():
        if (isinstance(v, torch.Tensor) and v.numel() == 1) or isinstance(v, (int, float)):
            out[k] = float(v)
    return out


# --- run folders -------------------------------------------------------------------------------
def _resolve(run_or_checkpoint, weights: str | None) -> tuple[Path, Path]:
    """(run folder, weights file) for a run folder or a ``.safetensors`` file inside one."""
    path = Path(run_or_checkpoint).expanduser()
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ConvzooError(f"checkpoint not found: {path}")
        return run_folder(path.parent), path
    run_dir = run_folder(path)
    if weights not in (None, "last", "best"):
        raise ConvzooError(f"weights must be 'last' or 'best', got {weights!r}")
    return run_dir, run_dir / (BEST if weights == "best" else LAST)


def load_run(run_dir, weights: str = "last", device: str | torch.device = "cpu"):
    """``(model, recipe, task, data_info)`` of a finished or running run, ready for prediction.

    ``weights`` is "last" (the final weights; the EMA when the recipe set ``ema``), "best" (best
    validation epoch), or ``run_dir`` may name a ``.safetensors`` file inside a run folder. The
    model is in eval mode on ``device``. The data set itself is not needed (its DataInfo is saved
    in the run folder).
    """
    from convzoo.weights import load_weights

    run_dir, wfile = _resolve(run_dir, weights)
    cfg = load_recipe(run_dir / CONFIG)
    info = load_data_info(run_dir) or build_data(cfg, cfg["data"]["test_split"] or "test").info
    task = build_task_for(cfg, info)
    model = build_model(cfg, info)
    load_weights(model, wfile)
    return model.to(device).eval(), cfg, task, info


def evaluate(run_or_checkpoint, data: str | None = None, split: str = "test", overrides=(),
             weights: str | None = None, accelerator: str = "auto") -> dict[str, float]:
    """The task's metrics (and mean loss) of a run's weights on one split.

    ``run_or_checkpoint``: a run folder (uses ``last.safetensors`` unless ``weights="best"``) or a
    ``.safetensors`` file inside one. ``data`` names another registered data set to evaluate on (its
    ``data.kwargs`` start empty; set them with ``overrides`` like ``["data.kwargs.size=32"]``).
    With the defaults this reproduces the test metrics the training reported.
    """
    from lightning.fabric import Fabric

    from convzoo.weights import load_weights

    run_dir, wfile = _resolve(run_or_checkpoint, weights)
    cfg = load_recipe(run_dir / CONFIG)
    if data is not None and data != cfg["data"]["name"]:
        cfg["data"] = {**cfg["data"], "name": data, "kwargs": {}, "root": None}
    cfg = load_recipe(cfg, overrides)
    dataset = build_data(cfg, split)
    info = load_data_info(run_dir) or dataset.info
    task = build_task_for(cfg, info)
    model = build_model(cfg, info)
    fabric = Fabric(accelerator=accelerator, devices=1, precision=cfg["precision"])
    fabric.setup_module(model)  # device and dtype as in training (before loading: no rounding); used unwrapped
    load_weights(model, wfile)
    loader = eval_loader(dataset, cfg["eval_batch_size"], pin_memory=fabric.device.type == "cuda")
    return evaluate_loader(fabric, model, loader, task, dataset)
