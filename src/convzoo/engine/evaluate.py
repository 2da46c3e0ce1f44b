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


def uses_channels_last(cfg: dict) -> bool:
    """Whether a recipe trains and evaluates channels_last (``fast: true``, or ``channels_last: true``)."""
    return bool(cfg.get("fast") or cfg.get("channels_last"))


def to_run_layout(model: torch.nn.Module, cfg: dict) -> bool:
    """The model in the memory layout its recipe trains and evaluates in; whether that is channels_last."""
    layout = uses_channels_last(cfg)
    if layout:
        model.to(memory_format=torch.channels_last)
    return layout


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
def _resolve(run_or_checkpoint, which: str | None) -> tuple[Path, Path]:
    """(run folder, weights file) for a run folder (``which``: "best", the default, or "last") or a
    ``.safetensors`` file next to its run folder's ``config.yaml``."""
    path = Path(run_or_checkpoint).expanduser()
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ConvzooError(f"checkpoint not found: {path}")
        return run_folder(path.parent), path
    run_dir = run_folder(path)
    if which not in (None, "last", "best"):
        raise ConvzooError(f"which weights: 'best' or 'last', got {which!r}")
    wfile = run_dir / (LAST if which == "last" else BEST)
    if not wfile.is_file():
        raise ConvzooError(f"{run_dir} has no {wfile.name} yet (no epoch has finished)")
    return run_dir, wfile


def _which(which: str | None, weights: str | None) -> str:
    return weights if weights is not None and which is None else (which or "best")


def load_run(run_dir, which: str | None = None, device: str | torch.device = "cpu", weights: str | None = None):
    """``(model, recipe, task, data_info)`` of a finished or running run, ready for prediction.

    ``which`` is "best" (default: the epoch with the best validation ``task.monitor``) or "last" (the final
    weights; the EMA when the recipe set ``ema``); ``run_dir`` may also name a ``.safetensors`` file next
    to its run folder's ``config.yaml``. ``weights`` is the older name of ``which``. The model (the method's
    ``export_model()``) is in eval mode on ``device``. The data set itself is not needed (its DataInfo is
    saved in the run folder).
    """
    from convzoo.weights import load_weights

    run_dir, wfile = _resolve(run_dir, _which(which, weights))
    cfg = load_recipe(run_dir / CONFIG)
    info = load_data_info(run_dir) or build_data(cfg, cfg["data"]["test_split"] or "test").info
    task = build_task_for(cfg, info)
    model = build_method(cfg, info, task).export_model()
    load_weights(model, wfile)
    return model.to(device).eval(), cfg, task, info


def check_fits(info, trained, data: str, run_dir: Path) -> None:
    """A one-line error when the data set ``info`` cannot go through the model trained on ``trained``."""
    if trained is None:
        return
    facts = [(what, getattr(info, attr), getattr(trained, attr))
             for what, attr in (("task", "task"), ("classes", "num_classes"), ("input channels", "in_chans"))]
    bad = [(w, a, b) for w, a, b in facts if a != b and not (w == "task" and (a is None or b is None))]
    if bad:
        here = ", ".join(f"{w} {a}" for w, a, _ in bad)
        there = ", ".join(f"{w} {b}" for w, _, b in bad)
        raise ConvzooError(f"data set '{data}' does not fit the run {run_dir.name}: it has {here}; the model was "
                           f"trained on '{trained.name}' with {there} (fine-tune it on this data with train --init "
                           f"{run_dir})")


def evaluate(run_or_checkpoint, data: str | None = None, split: str = "test", overrides=(),
             which: str | None = None, accelerator: str = "auto", values: dict | None = None,
             crops: int = 1, ensemble=(), weights: str | None = None) -> dict[str, float]:
    """The task's metrics (and mean loss) of a run's weights on one split.

    ``run_or_checkpoint``: a run folder (its ``best.safetensors``, or ``last.safetensors`` with
    ``which="last"``) or a ``.safetensors`` file next to its run folder's ``config.yaml``. ``data`` names
    another registered data set to evaluate on (its ``data.kwargs`` start empty; set them with
    ``overrides`` like ``["data.kwargs.size=32"]``); its classes and channels must fit the run's model.
    ``which="last"`` reproduces the test metrics the training reported for its final weights, the default
    those of its best checkpoint (``results.json``: ``test`` and ``test_best``).
    ``crops`` (1, 10, 12, 144) and ``ensemble`` (more run folders or checkpoints, evaluated on this
    run's data) average the softmax over crops and models (:mod:`convzoo.engine.multicrop`).
    """
    from lightning.fabric import Fabric

    from convzoo.engine.build import check_accelerator
    from convzoo.engine.recipe import SPLITS
    from convzoo.weights import load_weights

    which = _which(which, weights)
    run_dir, wfile = _resolve(run_or_checkpoint, which)
    if split not in SPLITS:
        raise ConvzooError(f"unknown split {split!r}: the splits are {', '.join(SPLITS)}")
    check_accelerator(accelerator)
    cfg = load_recipe(run_dir / CONFIG)
    if data is not None and data != cfg["data"]["name"]:
        cfg["data"] = {**cfg["data"], "name": data, "kwargs": {}, "root": None}
    cfg = load_recipe(cfg, overrides, values)
    dataset = build_data(cfg, split)
    trained = load_data_info(run_dir)
    check_fits(dataset.info, trained, cfg["data"]["name"], run_dir)
    info = trained or dataset.info
    task = build_task_for(cfg, info)
    method = build_method(cfg, info, task)
    fabric = Fabric(accelerator=accelerator, devices=1, precision=precision_of(cfg))
    fabric.setup_module(method)  # device and dtype as in training (before loading: no rounding); used unwrapped
    load_weights(method.export_model(), wfile)
    layout = to_run_layout(method.export_model(), cfg)  # as the run evaluated (the same numbers, its speed)
    loader = eval_loader(dataset, cfg["eval_batch_size"], pin_memory=fabric.device.type == "cuda",
                         collate=task.collate)
    if crops == 1 and not ensemble:
        return evaluate_loader(fabric, method, loader, task, dataset, layout)
    from convzoo.engine.multicrop import evaluate_views

    models = [method.export_model()]
    for other in ensemble:  # each member with its own recipe's model, on this run's data and task
        o_dir, o_file = _resolve(other, which)
        o_cfg = load_recipe(o_dir / CONFIG)
        member = build_method(o_cfg, info, task).export_model()
        load_weights(member, o_file)
        models.append(member.to(fabric.device))
    return evaluate_views(fabric, models, loader, task, dataset, crops)


def precision_of(cfg: dict) -> str:
    """The Fabric precision of a recipe (``fast: true`` turns fp32 into bf16 autocast)."""
    return "bf16-mixed" if cfg.get("fast") and cfg["precision"] == "32-true" else cfg["precision"]
