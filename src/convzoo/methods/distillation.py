"""Knowledge distillation from a teacher network, DeiT style (Touvron et al., ICML 2021, Sec. 5).

A method (``method: {name: distillation, kwargs: {teacher: ...}}``) over the classification task.
Used by LSNet (seed paper 18) for its "distilled" ImageNet results (``--distillation-type hard``,
teacher RegNetY-16GF, alpha 0.5, as the DeiT code base it trains with).

Loss in training, with student class-head logits ``z_c``, distillation-head logits ``z_d`` and teacher
logits ``z_t`` on the same (augmented) batch:

- ``hard``: ``(1 - alpha) * CE(z_c, y) + alpha * CE(z_d, argmax z_t)`` (alpha 0.5: the two halves);
- ``soft``: ``(1 - alpha) * CE(z_c, y) + alpha * tau^2 * KL(softmax(z_t / tau) || softmax(z_d / tau))``,
  the KL summed and divided by ``z_d.numel()`` as DeiT's ``DistillationLoss``.

A student with a distillation head exposes ``distillation = True`` and returns the pair from
``model(x, return_both=True)`` (the keyword passes through Fabric / DDP wrappers); any other
classifier uses its single logits for both terms (DeiT does the same). The ground-truth term may be
label-smoothed (``label_smoothing``); the teacher term is not. Evaluation, metrics, predictions and
pictures are those of single-label classification on the model's ordinary output (for LSNet the
mean of the two heads).

The teacher is a registered model name, or ``"torchvision:NAME"`` for a torchvision classifier
(``torchvision.models.get_model``; LSNet's RegNetY-16GF is ``"torchvision:regnet_y_16gf"``, and
``teacher_kwargs: {weights: IMAGENET1K_V2}`` downloads torchvision's weights into the torch hub cache
when the teacher is first built). It is built lazily on the first training batch with
``teacher_kwargs`` (``num_classes`` defaults to the student's output width, ``in_chans`` to the
batch's channels; torchvision teachers take 3-channel input), loaded from ``teacher_weights`` (a
safetensors file, e.g. a run's weights) when given, frozen and kept in eval mode on the batch's device. It is not part of the student's
checkpoint (it is held outside the module tree, so neither ``state.pt`` nor EMA copies carry it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.methods.base import Method, register_method

TORCHVISION = "torchvision:"


def _torchvision_teacher(name: str, num_classes: int, in_chans: int, kwargs: dict) -> nn.Module:
    """``torchvision.models.get_model(name, num_classes=..., **kwargs)``: a 3-channel RGB classifier."""
    import torchvision

    if in_chans != 3:
        raise ConvzooError(f"torchvision teacher '{name}' takes 3-channel images, the batches have {in_chans}")
    try:
        return torchvision.models.get_model(name, **{"num_classes": num_classes, **kwargs})
    except OSError as e:  # the weights are fetched into the torch hub cache on first use
        raise ConvzooError(f"cannot fetch the weights {kwargs.get('weights')!r} of torchvision teacher '{name}' "
                           f"({e}): put them in the torch hub cache, or set teacher_kwargs.weights to null and give "
                           f"teacher_weights (a safetensors file)") from None


@register_method("distillation")
class Distillation(Method):
    def __init__(self, model, task, info=None, *, teacher: str, teacher_weights: str | None = None,
                 teacher_kwargs: dict | None = None, distillation_type: str = "hard", alpha: float = 0.5,
                 tau: float = 1.0):
        super().__init__(model, task)
        if distillation_type not in ("hard", "soft"):
            raise ConvzooError(f"distillation_type must be 'hard' or 'soft', got {distillation_type!r}")
        if not 0.0 <= alpha <= 1.0 or tau <= 0:
            raise ConvzooError(f"distillation needs 0 <= alpha <= 1 and tau > 0, got alpha={alpha}, tau={tau}")
        if teacher.startswith(TORCHVISION):
            import torchvision

            if teacher.removeprefix(TORCHVISION) not in torchvision.models.list_models():
                raise ConvzooError(f"unknown torchvision teacher {teacher!r}; expected a name of "
                                   f"torchvision.models.list_models(), e.g. 'torchvision:regnet_y_16gf'")
        else:
            from convzoo.registry import get_card

            get_card(teacher)  # an unknown teacher fails now, with the closest names
        self.teacher_name, self.teacher_weights = teacher, teacher_weights
        self.teacher_kwargs = dict(teacher_kwargs or {})
        self.kind, self.alpha, self.tau = distillation_type, float(alpha), float(tau)
        self._teacher: list[nn.Module] = []  # a list: outside the module tree (not checkpointed)

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def build_teacher(self, num_classes: int, in_chans: int, device: torch.device) -> nn.Module:
        """The frozen teacher (built once; moved to ``device`` when needed)."""
        if not self._teacher:
            import convzoo

            if self.teacher_name.startswith(TORCHVISION):
                teacher = _torchvision_teacher(self.teacher_name.removeprefix(TORCHVISION), num_classes, in_chans,
                                               self.teacher_kwargs)
            else:
                kw = {"num_classes": num_classes, "in_chans": in_chans, **self.teacher_kwargs}
                teacher = convzoo.create_model(self.teacher_name, **kw)
            if self.teacher_weights:
                convzoo.load_weights(teacher, self.teacher_weights)
            for p in teacher.parameters():
                p.requires_grad_(False)
            self._teacher.append(teacher.eval())
        teacher = self._teacher[0]
        if next(teacher.parameters()).device != device:
            teacher.to(device)
        return teacher.eval()

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(class-head logits, distillation-head logits, teacher logits) for a training batch."""
        student = self.model
        if getattr(student, "distillation", False) and getattr(student, "num_classes", 1) > 0:
            cls, dist = student(x, return_both=True)
        else:
            cls = dist = student(x)
        with torch.no_grad():
            teacher_logits = self.build_teacher(cls.shape[-1], x.shape[1], x.device)(x).float()
        if teacher_logits.shape != dist.shape:
            raise ConvzooError(f"teacher '{self.teacher_name}' gives outputs {tuple(teacher_logits.shape)}, the "
                               f"student {tuple(dist.shape)}: both must score the same classes")
        return cls, dist, teacher_logits

    def distillation_loss(self, cls, dist, teacher_logits, targets) -> dict[str, torch.Tensor]:
        base = self.task.loss(cls.float(), targets)  # the task's (optionally label-smoothed) CE
        if self.kind == "hard":
            kd = F.cross_entropy(dist.float(), teacher_logits.argmax(dim=-1))
        else:
            t = self.tau
            kd = F.kl_div(F.log_softmax(dist.float() / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                          reduction="sum", log_target=True) * (t * t) / dist.numel()
        return {"loss": (1.0 - self.alpha) * base + self.alpha * kd, "ce": base.detach(), "kd": kd.detach()}

    def training_step(self, batch) -> dict[str, torch.Tensor]:
        x, y = batch
        return self.distillation_loss(*self.heads(x), y)
