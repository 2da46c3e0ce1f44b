"""Evaluation: the metric loop, run folders, and a run's model for prediction.

The same :func:`evaluate_loader` computes the per-epoch validation metrics, the final test metrics
of :func:`convzoo.engine.train` and the numbers of :func:`evaluate`, so ``evaluate(run)`` on a run
folder reproduces the test metrics its training reported.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning_utilities.core.apply_func import apply_to_collection

from convzoo.engine.build import build_data, build_method, build_model, build_task_for, eval_loader  # noqa: F401
from convzoo.engine.checkpoint import BEST, CONFIG, LAST, load_data_info, run_folder
from convzoo.engine.recipe import load_recipe
from convzoo.errors import ConvzooError


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 and t.is_floating_point() else t


def channels_last_batch(batch):
    """Every 4-D float tensor of a batch in channels_last (fast mode's training and evaluation batches)."""
    return apply_to_collection(batch, torch.Tensor, _channels_last)


def _to_float(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


@torch.no_grad()
def evaluate_loader(fabric, method, loader, task, dataset, channels_last: bool = False,
                    limit: int | None = None, step=None) -> dict[str, float]:
    """Mean loss and the task's metrics over ``loader`` (all processes together; the first ``limit``
    batches when given).

    ``method`` is a :class:`~convzoo.methods.Method` (its ``validation_step`` gives outputs and
    targets) or a bare model (``task.evaluation_forward`` is used); or ``step``, a function
    ``batch -> (outputs, targets)`` of models already in eval mode (``method`` None: multi-crop and
    ensemble evaluation, :mod:`convzoo.engine.multicrop`).
    """
    from convzoo.methods import Method

    metrics = task.metrics(dataset).to(fabric.device)
    if step is None:
        method.eval()
        step = (method.validation_step if isinstance(method, Method)
                else (lambda b: task.evaluation_forward(method, b)))
    loss_sum = torch.zeros((), dtype=torch.float64, device=fabric.device)
    n = torch.zeros((), dtype=torch.float64, device=fabric.device)
    precision = fabric.strategy.precision  # what Fabric's module wrapper does around forward
    for i, batch in enumerate(loader):
        if limit is not None and i >= limit:
            break
        batch = precision.convert_input(fabric.to_device(batch))
        if channels_last:
            batch = channels_last_batch(batch)
        with precision.forward_context():  # autocast, or the half dtype of "*-true" precisions
            outputs, targets = step(batch)
        # loss and metrics in float32
        outputs, targets = apply_to_collection((outputs, targets), torch.Tensor, _to_float)
        k = task.batch_size(targets)
        loss = task.loss(outputs, targets)
        loss = loss["loss"] if isinstance(loss, dict) else loss
        loss_sum += loss.detach().double() * k
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
    model (the method's ``export_model()``) is in eval mode on ``device``. The data set itself is not
    needed (its DataInfo is saved in the run folder).
    """
    from convzoo.weights import load_weights

    run_dir, wfile = _resolve(run_dir, weights)
    cfg = load_recipe(run_dir / CONFIG)
    info = load_data_info(run_dir) or build_data(cfg, cfg["data"]["test_split"] or "test").info
    task = build_task_for(cfg, info)
    model = build_method(cfg, info, task).export_model()
    load_weights(model, wfile)
    return model.to(device).eval(), cfg, task, info


def evaluate(run_or_checkpoint, data: str | None = None, split: str = "test", overrides=(),
             weights: str | None = None, accelerator: str = "auto", values: dict | None = None,
             crops: int = 1, ensemble=()) -> dict[str, float]:
    """The task's metrics (and mean loss) of a run's weights on one split.

    ``run_or_checkpoint``: a run folder (uses ``last.safetensors`` unless ``weights="best"``) or a
    ``.safetensors`` file inside one. ``data`` names another registered data set to evaluate on (its
    ``data.kwargs`` start empty; set them with ``overrides`` like ``["data.kwargs.size=32"]``).
    With the defaults this reproduces the test metrics the training reported.
    ``crops`` (1, 10, 12, 144) and ``ensemble`` (more run folders or checkpoints, evaluated on this
    run's data) average the softmax over crops and models (:mod:`convzoo.engine.multicrop`).
    """
    from lightning.fabric import Fabric

    from convzoo.weights import load_weights

    run_dir, wfile = _resolve(run_or_checkpoint, weights)
    cfg = load_recipe(run_dir / CONFIG)
    if data is not None and data != cfg["data"]["name"]:
        cfg["data"] = {**cfg["data"], "name": data, "kwargs": {}, "root": None}
    cfg = load_recipe(cfg, overrides, values)
    dataset = build_data(cfg, split)
    info = load_data_info(run_dir) or dataset.info
    task = build_task_for(cfg, info)
    method = build_method(cfg, info, task)
    fabric = Fabric(accelerator=accelerator, devices=1, precision=precision_of(cfg))
    fabric.setup_module(method)  # device and dtype as in training (before loading: no rounding); used unwrapped
    load_weights(method.export_model(), wfile)
    loader = eval_loader(dataset, cfg["eval_batch_size"], pin_memory=fabric.device.type == "cuda",
                         collate=task.collate)
    if crops == 1 and not ensemble:
        return evaluate_loader(fabric, method, loader, task, dataset)
    from convzoo.engine.multicrop import evaluate_views

    models = [method.export_model()]
    for other in ensemble:  # each member with its own recipe's model, on this run's data and task
        o_dir, o_file = _resolve(other, weights)
        o_cfg = load_recipe(o_dir / CONFIG)
        member = build_method(o_cfg, info, task).export_model()
        load_weights(member, o_file)
        models.append(member.to(fabric.device))
    return evaluate_views(fabric, models, loader, task, dataset, crops)


def precision_of(cfg: dict) -> str:
    """The Fabric precision of a recipe (``fast: true`` turns fp32 into bf16 autocast)."""
    return "bf16-mixed" if cfg.get("fast") and cfg["precision"] == "32-true" else cfg["precision"]
