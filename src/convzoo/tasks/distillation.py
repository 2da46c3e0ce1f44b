"""Knowledge distillation from a teacher network, DeiT style (Touvron et al., ICML 2021, Sec. 5).

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

The teacher is a registered model name, built lazily on the first training batch with
``teacher_kwargs`` (``num_classes`` defaults to the student's output width, ``in_chans`` to the
batch's channels), loaded from ``teacher_weights`` (a safetensors file, e.g. a run's weights) when
given, frozen and kept in eval mode on the batch's device. It is not part of the student's
checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.tasks.base import register_task
from convzoo.tasks.classification import Classification


def _unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside Fabric / DDP wrappers."""
    model = getattr(model, "_original_module", model)
    return getattr(model, "module", model)


@register_task("distillation")
class Distillation(Classification):
    monitor = "acc"
    monitor_mode = "max"

    def __init__(self, teacher: str, teacher_weights: str | None = None, teacher_kwargs: dict | None = None,
                 distillation_type: str = "hard", alpha: float = 0.5, tau: float = 1.0,
                 label_smoothing: float = 0.0):
        super().__init__(loss="ce", label_smoothing=label_smoothing)
        if distillation_type not in ("hard", "soft"):
            raise ConvzooError(f"distillation_type must be 'hard' or 'soft', got {distillation_type!r}")
        if not 0.0 <= alpha <= 1.0 or tau <= 0:
            raise ConvzooError(f"distillation needs 0 <= alpha <= 1 and tau > 0, got alpha={alpha}, tau={tau}")
        from convzoo.registry import get_card

        get_card(teacher)  # an unknown teacher fails now, with the closest names
        self.options.update(teacher=teacher, teacher_weights=teacher_weights, teacher_kwargs=teacher_kwargs,
                            distillation_type=distillation_type, alpha=alpha, tau=tau)
        self.teacher_name, self.teacher_weights = teacher, teacher_weights
        self.teacher_kwargs = dict(teacher_kwargs or {})
        self.kind, self.alpha, self.tau = distillation_type, float(alpha), float(tau)
        self.teacher: nn.Module | None = None

    def build_teacher(self, num_classes: int, in_chans: int, device: torch.device) -> nn.Module:
        """The frozen teacher (built once; moved to ``device`` when needed)."""
        if self.teacher is None:
            import convzoo

            kw = {"num_classes": num_classes, "in_chans": in_chans, **self.teacher_kwargs}
            teacher = convzoo.create_model(self.teacher_name, **kw)
            if self.teacher_weights:
                convzoo.load_weights(teacher, self.teacher_weights)
            for p in teacher.parameters():
                p.requires_grad_(False)
            self.teacher = teacher.eval()
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        return self.teacher.eval()

    def forward(self, model, batch):
        x, y = batch
        if not model.training:  # evaluation: the student's ordinary logits
            return model(x), y
        student = _unwrap(model)
        if getattr(student, "distillation", False) and getattr(student, "num_classes", 1) > 0:
            cls, dist = model(x, return_both=True)
        else:
            cls = dist = model(x)
        with torch.no_grad():
            teacher_logits = self.build_teacher(cls.shape[-1], x.shape[1], x.device)(x).float()
        if teacher_logits.shape != dist.shape:
            raise ConvzooError(f"teacher '{self.teacher_name}' gives outputs {tuple(teacher_logits.shape)}, the student "
                               f"{tuple(dist.shape)}: both must score the same classes")
        return (cls, dist, teacher_logits), y

    def loss(self, outputs, targets):
        if isinstance(outputs, torch.Tensor):  # evaluation loss: CE on the student's output
            return super().loss(outputs, targets)
        cls, dist, teacher_logits = outputs
        base = F.cross_entropy(cls.float(), targets, label_smoothing=self.label_smoothing)
        if self.kind == "hard":
            kd = F.cross_entropy(dist.float(), teacher_logits.argmax(dim=-1))
        else:
            t = self.tau
            kd = F.kl_div(F.log_softmax(dist.float() / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                          reduction="sum", log_target=True) * (t * t) / dist.numel()
        return (1.0 - self.alpha) * base + self.alpha * kd
