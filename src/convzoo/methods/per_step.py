"""Per-step training of sequence models: every time step's scores against its clip's label.

LRCN ("Long-term Recurrent Convolutional Networks for Visual Recognition and Description", Donahue et
al.; CVPR 2015, arXiv 1411.4389; seed paper 42) trains the activity model with a softmax loss at each of
the 16 steps of a clip (official ``train_test_lstm_RGB.prototxt``: ``SoftmaxWithLoss`` on the (T, N, K)
``fc8-final`` blob with the label repeated over the steps), and pools over time only at test time. A
plain task loss sees the model's pooled (N, K) output instead; this method asks the model for its
per-step scores (``model.forward_steps(x) -> (N, T, K)``, :class:`convzoo.models.lrcn.LRCN`) and averages
the cross-entropy over all N*T steps. Evaluation is the task's (the pooled output, video-level averaging).

``method: {name: per_step, kwargs: {label_smoothing: 0.0}}``; batches are ``(clips, labels, ...)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convzoo.errors import ConvzooError
from convzoo.methods.base import Method, register_method


def per_step_cross_entropy(scores: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-step scores (N, T, K) and clip labels (N,) -> the cross-entropy averaged over the N*T steps."""
    n, t, k = scores.shape
    return F.cross_entropy(scores.reshape(n * t, k).float(), y.repeat_interleave(t), label_smoothing=label_smoothing)


@register_method("per_step")
class PerStep(Method):
    def __init__(self, model, task, info=None, label_smoothing: float = 0.0):
        super().__init__(model, task)
        if not callable(getattr(model, "forward_steps", None)):
            raise ConvzooError(f"method 'per_step' needs a model with forward_steps(x) -> (N, T, K) per-step scores "
                               f"(e.g. lrcn_small); {type(model).__name__} has none")
        self.label_smoothing = float(label_smoothing)

    def training_step(self, batch) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        scores = self.model.forward_steps(x)  # (N, T, K)
        return {"loss": per_step_cross_entropy(scores, y, self.label_smoothing)}
