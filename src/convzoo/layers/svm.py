"""L2-SVM output layer (paper 40, CNN-SVM, Agarap 2017, Sec. 2.3, after Tang 2013).

The readout is an ordinary linear layer whose scores o are trained as one-vs-rest L2-SVMs:

    loss = mean(W_out ** 2) + C * mean_{i,k} max(0, 1 - y_ik * o_ik) ** 2,   y_ik in {-1, +1}

(official code: ``tf.reduce_mean(tf.square(W))`` as the regulariser, C = 1). Targets are class
indices; one-hot 0 becomes -1. The decision rule is argmax of the raw scores; the official code
predicts ``argmax(sign(scores))`` (ties, e.g. all scores negative, go to the first class), which
:func:`svm_decision` offers as ``rule="official"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pm_one_targets(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices (B,) -> one-vs-rest targets in {-1, +1} of shape (B, K)."""
    return F.one_hot(targets.long(), num_classes).to(torch.float32) * 2 - 1


def squared_hinge(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean_{i,k} max(0, 1 - y_ik * o_ik)^2 for scores (B, K) and class indices (B,)."""
    y = pm_one_targets(targets, scores.shape[-1]).to(scores.dtype)
    return F.relu(1 - y * scores).pow(2).mean()


class L2SVMLoss(nn.Module):
    """The paper's loss; ``readout`` is the linear layer whose weight is regularised."""

    def __init__(self, C: float = 1.0, readout: nn.Linear | None = None):
        super().__init__()
        self.C = C
        self.readout = [readout]  # a list, so the layer is not registered as a submodule twice

    def forward(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = self.C * squared_hinge(scores, targets)
        readout = self.readout[0]
        if readout is not None:
            loss = loss + readout.weight.pow(2).mean()
        return loss


def svm_decision(scores: torch.Tensor, rule: str = "argmax") -> torch.Tensor:
    """Predicted class per row: argmax of scores, or the official ``argmax(sign(scores))``."""
    if rule == "argmax":
        return scores.argmax(-1)
    if rule == "official":
        return torch.sign(scores).argmax(-1)  # torch.argmax returns the first maximal index
    raise ValueError(f"rule must be 'argmax' or 'official', got {rule!r}")
