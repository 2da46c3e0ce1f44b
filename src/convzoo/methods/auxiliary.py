"""Training with an auxiliary classifier: loss = task loss(logits) + ``aux_weight`` x task loss(aux_logits).

``method: {name: auxiliary, kwargs: {aux_weight: 0.4}}`` trains any model whose training forward returns
``(logits, aux_logits)`` (NASNet with ``aux_head=True``, paper 14 Sec. 4.1: weight 0.4; GoogLeNet/Inception
style heads); a model that returns one tensor trains as with ``supervised``. Both heads take the task's loss
(its label smoothing too); the parts are logged as ``train_loss`` (the total), ``train_main`` and ``train_aux``.
Validation and the kept weights use the model in eval mode (the main logits only).

``drop_path_steps`` (optional): drives a model's scheduled drop-path (NASNet's ScheduledDropPath, official
``total_training_steps``): after every optimizer step the method calls ``set_drop_path_progress(step /
drop_path_steps)`` on every submodule that has it, and at the start of each epoch (so a resumed run continues
the schedule: the step count is kept in the method's state). Without it the model's drop-path rate stays at
its full, depth-scaled value.
"""

from __future__ import annotations

import torch

from convzoo.errors import ConvzooError
from convzoo.methods.base import Method, register_method
from convzoo.methods.supervised import loss_parts


@register_method("auxiliary")
class Auxiliary(Method):
    def __init__(self, model, task, info=None, *, aux_weight: float = 0.4, drop_path_steps: int | None = None):
        super().__init__(model, task)
        if not isinstance(aux_weight, (int, float)) or aux_weight < 0:
            raise ConvzooError(f"auxiliary needs aux_weight >= 0, got {aux_weight!r}")
        if drop_path_steps is not None and (not isinstance(drop_path_steps, int) or drop_path_steps < 1):
            raise ConvzooError(f"auxiliary needs drop_path_steps >= 1 (or null), got {drop_path_steps!r}")
        self.aux_weight, self.drop_path_steps = float(aux_weight), drop_path_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def training_step(self, batch) -> dict[str, torch.Tensor]:
        outputs, targets = self.task.forward(self.model, batch)
        if not isinstance(outputs, (tuple, list)):
            return loss_parts(self.task.loss(outputs, targets))
        logits, aux = outputs
        main = loss_parts(self.task.loss(logits, targets))
        aux_loss = loss_parts(self.task.loss(aux, targets))["loss"]
        return {"loss": main["loss"] + self.aux_weight * aux_loss, "main": main["loss"].detach(),
                "aux": aux_loss.detach()}

    def _drive_drop_path(self) -> None:
        if self.drop_path_steps is None:
            return
        progress = min(1.0, float(self.steps) / self.drop_path_steps)
        for m in self.model.modules():
            fn = getattr(m, "set_drop_path_progress", None)
            if callable(fn):
                fn(progress)
                break  # the model sets all of its own drop-path modules

    def on_train_epoch_start(self, epoch: int) -> None:
        super().on_train_epoch_start(epoch)
        self._drive_drop_path()

    @torch.no_grad()
    def on_after_optimizer_step(self) -> None:
        super().on_after_optimizer_step()
        self.steps += 1
        self._drive_drop_path()
