"""Supervised training: the task's loss on the model's outputs (the default method).

``training_step`` runs ``task.forward(model, batch)`` and ``task.loss(outputs, targets)`` (a tensor,
or a dict whose ``"loss"`` is the total and whose other entries are logged), and adds the model's
``regularization_loss(epoch)`` when it defines one (e.g. the DCLS repulsion term, paper 39).
"""

from __future__ import annotations

import torch

from convzoo.methods.base import Method, register_method


def loss_parts(loss) -> dict[str, torch.Tensor]:
    """A task's loss as a dict with ``"loss"`` (the total) first."""
    if isinstance(loss, dict):
        return {"loss": loss["loss"], **{k: v for k, v in loss.items() if k != "loss"}}
    return {"loss": loss}


@register_method("supervised")
class Supervised(Method):
    def __init__(self, model, task, info=None):
        super().__init__(model, task)

    def training_step(self, batch) -> dict[str, torch.Tensor]:
        outputs, targets = self.task.forward(self.model, batch)
        parts = loss_parts(self.task.loss(outputs, targets))
        regularizer = getattr(self.model, "regularization_loss", None)
        extra = regularizer(self.epoch) if callable(regularizer) else None
        if extra is not None:
            parts["reg"] = extra
            parts["loss"] = parts["loss"] + extra
        return parts
