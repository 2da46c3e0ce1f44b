"""Single-label image classification.

Loss: softmax cross-entropy (optionally label-smoothed), or the L2-SVM squared hinge of paper 40
(``loss: l2svm``, with ``svm_c`` and the readout weight regulariser). Metrics (torchmetrics): top-1
and top-5 accuracy, macro F1. Picture: the test confusion matrix. Predictions: top-5 classes.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from convzoo.layers.svm import L2SVMLoss, svm_decision
from convzoo.tasks.base import Task, register_task


def class_metrics(k: int) -> MetricCollection:
    """Top-1 and top-5 accuracy (micro) and macro F1 over ``k`` classes (every class-label task's metrics)."""
    return MetricCollection({
        "acc": MulticlassAccuracy(k, average="micro"),
        "acc5": MulticlassAccuracy(k, top_k=min(5, k), average="micro"),
        "f1": MulticlassF1Score(k, average="macro"),
    })


def top5_rows(scores: torch.Tensor, dataset=None) -> list[dict]:
    """Per row of ``(N, classes)`` scores: its five best classes (index, name, score) and the best one."""
    names = dataset.info.class_names if dataset is not None and dataset.info.class_names else None
    out = []
    for row in scores:
        val, idx = row.topk(min(5, row.numel()))
        out.append({"top5": [{"class": int(i), "name": names[i] if names else str(int(i)), "score": float(v)}
                             for v, i in zip(val, idx)], "prediction": int(idx[0])})
    return out


class LabelTask(Task):
    """What every one-label-per-input task shares (images here, clips in :mod:`.video_classification`):
    ``num_classes`` from the data, ``(N, classes)`` outputs, integer targets, :func:`class_metrics`."""

    monitor = "acc"
    monitor_mode = "max"

    def model_kwargs(self, card, info) -> dict:
        return {"num_classes": info.num_classes} if info.num_classes else {}

    def output_shape(self, model, card, x):
        return (x.shape[0], card.num_classes)

    def example_batch(self, card, batch=2, size=None, generator=None):
        x = self.example_input(card, batch, size, generator)
        return x, torch.randint(0, card.num_classes, (batch,), generator=generator)

    def fits_model(self, card, info) -> bool:
        return info.in_chans == card.in_chans and info.num_classes == card.num_classes

    def metrics(self, dataset) -> MetricCollection:
        return class_metrics(dataset.info.num_classes)


@register_task("classification")
class Classification(LabelTask):
    @property
    def averages_views(self) -> bool:  # softmax outputs average over crops and models (not the SVM's)
        return self.loss_name == "ce"

    def __init__(self, loss: str = "ce", label_smoothing: float = 0.0, svm_c: float = 1.0,
                 decision: str = "argmax"):
        super().__init__(loss=loss, label_smoothing=label_smoothing, svm_c=svm_c, decision=decision)
        if loss not in ("ce", "l2svm"):
            raise ValueError(f"classification loss must be 'ce' or 'l2svm', got {loss!r}")
        if decision not in ("argmax", "official"):
            raise ValueError(f"classification decision must be 'argmax' or 'official', got {decision!r}")
        self.loss_name, self.label_smoothing, self.svm_c, self.decision = loss, label_smoothing, svm_c, decision
        self._readout: nn.Linear | None = None

    def forward(self, model, batch):
        x, y = batch
        if self.loss_name == "l2svm":  # the readout of the model run now (not a cached one: EMA copies,
            # reset_classifier and evaluation of another model must regularise their own layer)
            fc = model.get_classifier() if hasattr(model, "get_classifier") else None
            self._readout = fc if isinstance(fc, nn.Linear) else None
        return model(x), y

    def loss(self, outputs, targets):
        if self.loss_name == "l2svm":
            return L2SVMLoss(self.svm_c, self._readout)(outputs, targets)
        # targets: class indices, or per-class probabilities (MixUp / CutMix batches)
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def scores_to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        """Scores as used by the metrics: softmax for CE, raw SVM margins for L2-SVM."""
        if self.loss_name == "l2svm":
            if self.decision == "official":  # argmax(sign(o)): rank by sign, ties to the lowest index
                k = outputs.shape[-1]
                return torch.sign(outputs) - 0.5 * torch.arange(k, device=outputs.device) / k
            return outputs
        return outputs.softmax(-1)

    def update_metrics(self, metrics, outputs, targets):
        metrics.update(self.scores_to_probs(outputs.float()), targets)

    @torch.no_grad()
    def predict(self, model, inputs, dataset=None):
        scores = self.scores_to_probs(model(inputs).float())
        out = top5_rows(scores, dataset)
        if self.loss_name == "l2svm":  # the SVM's decision rule, which may differ from the top score
            for row, pred in zip(out, svm_decision(scores, self.decision)):
                row["prediction"] = int(pred)
        return out

    @torch.no_grad()
    def pictures(self, model, dataset, run_dir: Path, device) -> list[Path]:
        """The test confusion matrix, laid out for its number of classes (:mod:`convzoo.tasks.plots`)."""
        from convzoo.tasks.plots import confusion_counts, confusion_figure

        loader = torch.utils.data.DataLoader(dataset, batch_size=256)
        preds, trues = [], []
        model.eval()
        for x, y in loader:
            preds.append(self.scores_to_probs(model(x.to(device)).float()).argmax(-1).cpu())
            trues.append(y)
        k = dataset.info.num_classes
        cm = confusion_counts(torch.cat(trues).numpy(), torch.cat(preds).numpy(), k)
        names = list(dataset.info.class_names or []) or None
        return [confusion_figure(cm, names, Path(run_dir) / "confusion_matrix.png", "confusion matrix (test)")]
