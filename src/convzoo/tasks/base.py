"""What a task is: how a batch is read, the loss, the metrics, readable predictions, pictures.

The engine only talks to this interface; it knows nothing of any task's internals. A task is
registered by name with :func:`register_task` and built from a recipe's ``task:`` section with
:func:`build_task`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from torchmetrics import MetricCollection

from convzoo.errors import UnknownNameError


class Task:
    """Base class. Subclasses set ``name``, ``monitor`` (headline metric) and ``monitor_mode``."""

    name: str = "task"
    monitor: str = "loss"  # key of the metric the report headlines and "best" checkpoints track
    monitor_mode: str = "min"  # "max" or "min"

    def __init__(self, **options: Any):
        self.options = options

    # --- one step -------------------------------------------------------------------------
    def forward(self, model: nn.Module, batch) -> tuple[Any, Any]:
        """Run the model on a batch; return (outputs, targets)."""
        x, y = batch
        return model(x), y

    def loss(self, outputs, targets) -> torch.Tensor:
        raise NotImplementedError

    # --- evaluation -------------------------------------------------------------------------
    def metrics(self, dataset) -> MetricCollection:
        """A fresh torchmetrics collection for ``dataset`` (knows e.g. its number of classes)."""
        raise NotImplementedError

    def update_metrics(self, metrics: MetricCollection, outputs, targets) -> None:
        metrics.update(outputs, targets)

    # --- people -----------------------------------------------------------------------------
    def predict(self, model: nn.Module, inputs: torch.Tensor, dataset=None) -> list[dict]:
        """Readable predictions for a batch of inputs (e.g. top-5 class names and scores)."""
        raise NotImplementedError

    def pictures(self, model: nn.Module, dataset, run_dir: Path, device: torch.device) -> list[Path]:
        """Task-specific figures written into ``run_dir`` (confusion matrix, SR crops, ...)."""
        return []

    def report(self, results: dict[str, float], dataset) -> list[str]:
        """Markdown lines for report.md beyond the metric table (e.g. paper comparison)."""
        return []


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


def list_tasks() -> list[str]:
    import convzoo.tasks  # noqa: F401

    return sorted(_TASKS)
