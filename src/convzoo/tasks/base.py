"""What a task is: one place that knows everything about a kind of problem.

A task declares how its batches are collated, the model's forward and loss on a batch, its metrics,
how ``predict`` reads a person's file and what it writes back, the example input that ``bench`` and
the contract tests feed a model of this task, which contract checks apply, and its pictures and
report lines. Nothing outside ``convzoo.tasks`` branches on a task's name: the engine, ``bench``,
``predict`` and the contract tests ask the task. What is *trained* (the model, heads, teachers) is a
:class:`convzoo.methods.Method`; the default method trains a task's loss (``supervised``).

A task is registered by name with :func:`register_task`; ``card.task`` of every registered model and
``DataInfo.task`` of every data set name one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate
from torchmetrics import MetricCollection

from convzoo.errors import ConvzooError, UnknownNameError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# contract checks (tests/contract) a task may declare for its models
CONTRACT_CHECKS = frozenset({"forward_backward", "determinism", "channels_last", "num_classes", "embedding",
                             "features", "safetensors", "deploy", "compile", "onnx", "bf16", "macs"})


class Task:
    """Base class. Subclasses set ``name``, ``monitor`` (headline metric) and ``monitor_mode``."""

    name: str = "task"
    monitor: str = "loss"  # key of the metric the report headlines and "best" checkpoints track
    monitor_mode: str = "min"  # "max" or "min"
    contract_checks: frozenset[str] = CONTRACT_CHECKS
    input_suffixes: tuple[str, ...] = IMAGE_SUFFIXES + (".npy",)

    @property
    def averages_views(self) -> bool:
        """Whether evaluation over several views of an input (crops, models of an ensemble:
        :mod:`convzoo.engine.multicrop`) may average this task's outputs as class probabilities."""
        return False

    def __init__(self, **options: Any):
        self.options = options

    # --- batches ------------------------------------------------------------------------------
    def collate(self, items: list) -> Any:
        """Items of the data set -> one batch (default: stacked tensors)."""
        return default_collate(items)

    # --- one step -----------------------------------------------------------------------------
    def forward(self, model: nn.Module, batch) -> tuple[Any, Any]:
        """Run the model on a training batch; return (outputs, targets)."""
        x, y = batch
        return model(x), y

    def evaluation_forward(self, model: nn.Module, batch) -> tuple[Any, Any]:
        """Run the model on an evaluation batch (may add what only metrics need, e.g. baselines)."""
        return self.forward(model, batch)

    def loss(self, outputs, targets) -> torch.Tensor | dict[str, torch.Tensor]:
        """The loss, or a dict with ``"loss"`` (the total) and named parts that get logged."""
        raise NotImplementedError

    # --- evaluation ----------------------------------------------------------------------------
    def metrics(self, dataset) -> MetricCollection:
        """A fresh torchmetrics collection for ``dataset`` (knows e.g. its number of classes)."""
        raise NotImplementedError

    def update_metrics(self, metrics: MetricCollection, outputs, targets) -> None:
        metrics.update(outputs, targets)

    def batch_size(self, targets) -> int:
        """Items in a batch's targets (weights the mean evaluation loss)."""
        if isinstance(targets, torch.Tensor):
            return int(targets.shape[0]) if targets.dim() else 1
        if isinstance(targets, dict):
            return self.batch_size(next(iter(targets.values())))
        return len(targets)

    # --- models of this task -----------------------------------------------------------------------
    def model_kwargs(self, card, info) -> dict:
        """Constructor arguments a recipe's model takes from its data set (``num_classes`` ...)."""
        return {}

    def example_input(self, card, batch: int = 2, size: tuple[int, ...] | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """A random input of ``card``'s model at ``size`` (default: the card's small test size)."""
        spatial = tuple(size) if size is not None else tuple(card.test_size)
        return torch.randn(batch, card.in_chans, *spatial, generator=generator)

    def example_batch(self, card, batch: int = 2, size: tuple[int, ...] | None = None,
                      generator: torch.Generator | None = None):
        """A random training batch for ``card``'s model (what ``bench --train`` times)."""
        raise ConvzooError(f"task '{self.name}' gives no example training batch")

    def output_shape(self, model: nn.Module, card, x: torch.Tensor) -> tuple[int, ...]:
        """The shape ``model(x)`` must have."""
        raise NotImplementedError

    def output_tensor(self, y) -> torch.Tensor:
        """One tensor of a model's output (for equality and gradient checks)."""
        return y

    def bench_spec(self, model: nn.Module, card, size: tuple[int, ...] | None) -> dict:
        """What ``bench`` feeds one item: ``input_shape`` (C, *spatial), ``unit`` and extra facts."""
        spatial = size if size is not None else tuple(card.input_size)
        return {"input_shape": [card.in_chans, *spatial], "unit": "items/s"}

    def fits_model(self, card, info) -> bool:
        """Whether a data set's facts describe ``card``'s model (channels, outputs)."""
        return info.in_chans == card.in_chans

    # --- people -------------------------------------------------------------------------------
    def read_input(self, path: Path, card, info) -> torch.Tensor:
        """A person's file -> a batch for the model (images are resized and normalised as in training)."""
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            return image_to_input(read_image(path), card, info)
        if suffix == ".npy":
            return npy_to_input(path, card)
        raise ConvzooError(f"{path}: unsupported input type '{suffix}' ({', '.join(self.input_suffixes)})")

    def predict(self, model: nn.Module, inputs: torch.Tensor, dataset=None) -> list[dict]:
        """Readable predictions for a batch of inputs (e.g. top-5 class names and scores)."""
        raise NotImplementedError

    def predict_file(self, model: nn.Module, card, path: Path, info, out_dir: Path) -> Iterator[dict]:
        """Predictions for one file, one dict per item (files written to ``out_dir`` named inside)."""
        x = self.read_input(path, card, info)
        dataset = _InfoOnly(info) if info is not None else None
        with torch.no_grad():
            preds = run_or_explain(lambda: self.predict(model, x, dataset), "input", x.shape)
        for i, pred in enumerate(preds):
            yield {"input": f"{path}" + (f"[{i}]" if len(preds) > 1 else ""), **pred}

    def format_prediction(self, pred: dict) -> str:
        """One printable line of a :meth:`predict_file` result."""
        label = pred["input"]
        if "top5" in pred:
            return f"{label}: " + ", ".join(f"{t['name']} {t['score']:.3f}" for t in pred["top5"])
        return f"{label}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in pred.items() if k != "input")

    def pictures(self, model: nn.Module, dataset, run_dir: Path, device: torch.device) -> list[Path]:
        """Task-specific figures written into ``run_dir`` (confusion matrix, SR crops, ...)."""
        return []

    def report(self, results: dict[str, float], dataset) -> list[str]:
        """Markdown lines for report.md beyond the metric table (e.g. paper comparison)."""
        return []


class _InfoOnly:
    def __init__(self, info):
        self.info = info


# --- reading a person's files (the default of image and signal tasks) ------------------------------
def read_image(path: Path) -> np.ndarray:
    """An image file -> RGB uint8 (H, W, 3); a one-line error when it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ConvzooError(f"cannot read image {path}: {e}") from None


def image_to_input(rgb: np.ndarray, card, info) -> torch.Tensor:
    """An RGB uint8 image -> (1, C, H, W) as the model's data set feeds it."""
    from PIL import Image

    size = tuple(info.input_size) if info is not None and info.input_size else tuple(card.input_size)
    chans = info.in_chans if info is not None else card.in_chans
    im = Image.fromarray(rgb).convert("L" if chans == 1 else "RGB").resize(size[::-1], Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)
    x = x[None] if chans == 1 else x.permute(2, 0, 1)
    extra = info.extra if info is not None else {}
    if "mean" in extra and "std" in extra:
        mean = torch.tensor(extra["mean"], dtype=torch.float32).reshape(-1, 1, 1)
        std = torch.tensor(extra["std"], dtype=torch.float32).reshape(-1, 1, 1)
        x = (x - mean) / std
    return x[None]


def npy_to_input(path: Path, card) -> torch.Tensor:
    """A ``.npy`` array -> (N, C, *spatial) for ``card``'s model (missing leading axes added)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ConvzooError(f"cannot read {path} as a .npy array: {e}") from None
    x = torch.as_tensor(arr, dtype=torch.float32)
    want = card.dims + 2
    while x.dim() < want:
        x = x[None]
    if x.dim() != want or x.shape[1] != card.in_chans:
        raise ConvzooError(f"{path}: array of shape {tuple(arr.shape)} does not fit '{card.name}', which "
                           f"expects (N, {card.in_chans}, {', '.join(map(str, card.input_size))}) or fewer leading axes")
    return x


def run_or_explain(fn: Callable, what: str, shape):
    """``fn()``; a shape error of the model becomes one line naming the input's shape."""
    try:
        return fn()
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ConvzooError(f"{what} of shape {tuple(shape)} does not fit the model: {first}") from None


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Rows of a task's per-item or per-class table (keys of the first row as the header) into ``path``."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return Path(path)


# --- registry ---------------------------------------------------------------------------------------
_TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str):
    def deco(cls):
        cls.name = name
        _TASKS[name] = cls
        return cls

    return deco


def build_task(name: str, **options) -> Task:
    import convzoo.tasks  # noqa: F401  (registers the built-in tasks)

    if name not in _TASKS:
        raise UnknownNameError("task", name, sorted(_TASKS))
    return _TASKS[name](**options)


def task_class(name: str) -> type[Task]:
    import convzoo.tasks  # noqa: F401

    if name not in _TASKS:
        raise UnknownNameError("task", name, sorted(_TASKS))
    return _TASKS[name]


def list_tasks() -> list[str]:
    import convzoo.tasks  # noqa: F401

    return sorted(_TASKS)
