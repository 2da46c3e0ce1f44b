"""Rotation prediction: the self-supervised pretext task of RotNet ("Unsupervised Representation
Learning by Predicting Image Rotations", Gidaris, Singh, Komodakis; ICLR 2018, arXiv 1803.07728;
seed paper 20), Sec. 2.

Every image ``X`` yields its four rotations ``rot(X, y)`` by ``y * 90`` degrees, ``y`` in 0..3, and a
ConvNet learns the 4-way classification of ``y`` with cross-entropy (paper Eq. 1-3). As in the paper
(Sec. 2.2, "we found it to be more efficient to feed the four rotated copies of an image
simultaneously in the same mini-batch") and the official data loader (``dataloader.py``), a batch of B
images becomes one batch of 4B: per image its copies at 0, 90, 180, 270 degrees with labels
0, 1, 2, 3, image after image (``[x0 r0, x0 r90, x0 r180, x0 r270, x1 r0, ...]``). The images' own
labels are ignored.

Rotation sense: the official ``rotate_img(img, 90)`` is ``flipud(transpose(img))`` on an (H, W, C)
array, i.e. ``np.rot90(img, 1)``: counter-clockwise as displayed (row 0 at the top). Label ``k`` is
therefore ``torch.rot90(x, k, dims=(-2, -1))`` on (C, H, W) tensors (:func:`rotate`).

Batches: :meth:`Rotation.collate` returns ``{"images": (4B, C, H, W), "rotations": (4B,)}``; the
forward also accepts a plain ``(images, labels)`` pair (and rotates it itself), so code that stacks
data-set items without the task's collate still trains the pretext task. Metric: rotation accuracy
(``acc``, chance 25%). Predictions: the rotation of each image and the turn that makes it upright.
Pictures: held-out images with their four rotations and the predicted angles, and the 4 x 4
confusion matrix of the test split.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from convzoo.errors import ConvzooError
from convzoo.tasks.base import Task, register_task

ANGLES = (0, 90, 180, 270)  # label k <-> k * 90 degrees counter-clockwise


def rotate(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x`` (..., H, W) turned by ``k * 90`` degrees counter-clockwise (the official ``rotate_img``)."""
    return torch.rot90(x, k, dims=(-2, -1))


def rotation_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> the (4B, C, H, W) batch of every image's 4 rotations and their (4B,) labels,
    in the official collate order: image 0 at 0/90/180/270 degrees, then image 1, ..."""
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ConvzooError(f"rotation prediction needs square images (B, C, S, S), got {tuple(images.shape)}")
    b = images.shape[0]
    stacked = torch.stack([rotate(images, k) for k in range(len(ANGLES))], dim=1)  # (B, 4, C, S, S)
    labels = torch.arange(len(ANGLES), device=images.device).repeat(b)  # (4B,) 0,1,2,3,0,1,...
    return stacked.flatten(0, 1), labels


@register_task("rotation")
class Rotation(Task):
    monitor = "acc"
    monitor_mode = "max"

    # --- batches ------------------------------------------------------------------------------
    def collate(self, items: list) -> dict[str, torch.Tensor]:
        """Items ``(image, anything)`` -> ``{"images": (4B, C, S, S), "rotations": (4B,)}``."""
        images = default_collate([item[0] if isinstance(item, (tuple, list)) else item for item in items])
        x, y = rotation_batch(images)
        return {"images": x, "rotations": y}

    def _pair(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, dict):
            return batch["images"], batch["rotations"]
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return rotation_batch(images)  # a batch that bypassed collate: rotate it here

    # --- one step -----------------------------------------------------------------------------
    def forward(self, model, batch):
        x, y = self._pair(batch)
        return model(x), y  # (4B, 4) rotation scores, (4B,) rotation labels

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs, targets)  # paper Eq. 2: mean 4-way CE over all copies

    def metrics(self, dataset) -> MetricCollection:
        return MetricCollection({"acc": MulticlassAccuracy(len(ANGLES), average="micro")})

    def update_metrics(self, metrics, outputs, targets):
        metrics.update(outputs.float().softmax(-1), targets)

    # --- models of this task ----------------------------------------------------------------------
    def model_kwargs(self, card, info) -> dict:
        return {"num_classes": len(ANGLES)}

    def output_shape(self, model, card, x):
        return (x.shape[0], card.num_classes)

    def fits_model(self, card, info) -> bool:
        return info.in_chans == card.in_chans and card.num_classes == len(ANGLES)

    # --- people -------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model, inputs, dataset=None):
        """Per image: the predicted rotation (degrees counter-clockwise), its probability, all four
        probabilities, and the counter-clockwise turn that makes the image upright."""
        probs = model(inputs).float().softmax(-1)
        out = []
        for row in probs:
            k = int(row.argmax())
            out.append({"rotation": ANGLES[k], "label": k, "score": float(row[k]),
                        "scores": {str(a): float(p) for a, p in zip(ANGLES, row)},
                        "upright_turn": ANGLES[(len(ANGLES) - k) % len(ANGLES)]})
        return out

    def format_prediction(self, pred: dict) -> str:
        return (f"{pred['input']}: rotated {pred['rotation']} deg counter-clockwise (p {pred['score']:.3f}); "
                f"turn {pred['upright_turn']} deg counter-clockwise to make it upright")

    @torch.no_grad()
    def pictures(self, model, dataset, run_dir: Path, device) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        model.eval()
        run_dir = Path(run_dir)
        # a few held-out images, spread over the split, with their 4 rotations and the predictions
        n = min(6, len(dataset))
        picks = [int(i) for i in torch.linspace(0, len(dataset) - 1, n).round()]
        x, y = rotation_batch(torch.stack([dataset[i][0] for i in picks]))
        pred = model(x.to(device)).float().argmax(-1).cpu()
        fig, axes = plt.subplots(n, len(ANGLES), figsize=(2 * len(ANGLES), 2 * n), squeeze=False)
        for j, ax in enumerate(axes.flat):
            img = x[j].float()
            img = (img - img.min()) / (img.max() - img.min()).clamp(min=1e-8)
            ax.imshow((img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)[..., :3]).numpy(), cmap="gray")
            ok = bool(pred[j] == y[j])
            ax.set_title(f"{ANGLES[int(y[j])]}°: pred {ANGLES[int(pred[j])]}°", color="green" if ok else "red",
                         fontsize=9)
            ax.axis("off")
        fig.suptitle("held-out images, their 4 rotations and the predicted angle")
        fig.tight_layout()
        examples = run_dir / "rotation_examples.png"
        fig.savefig(examples, dpi=100)
        plt.close(fig)
        # the 4 x 4 confusion matrix over the split
        from convzoo.tasks.plots import confusion_counts, confusion_figure

        loader = torch.utils.data.DataLoader(dataset, batch_size=64, collate_fn=self.collate)
        preds, trues = [], []
        for batch in loader:
            xb, yb = self._pair(batch)
            preds.append(model(xb.to(device)).float().argmax(-1).cpu())
            trues.append(yb)
        cm = confusion_counts(torch.cat(trues).numpy(), torch.cat(preds).numpy(), len(ANGLES))
        confusion = confusion_figure(cm, [f"{a}°" for a in ANGLES], run_dir / "rotation_confusion.png",
                                     "rotation confusion matrix (test)")
        return [examples, confusion]

    def report(self, results: dict[str, float], dataset) -> list[str]:
        acc = results.get("acc")
        lines = ["### Rotation prediction (RotNet pretext task)", ""]
        if acc is not None:
            lines.append(f"Rotation accuracy {100 * acc:.2f}% over the 4 rotations of every held-out image "
                         "(chance 25%).")
        lines += ["", ("The paper evaluates the features, not this accuracy: train a classifier on frozen blocks "
                       "with the `frozen_probe` method (recipe `rotnet_probe_digits`; paper Table 1: CIFAR-10, "
                       "RotNet NIN-4, non-linear classifier on block 2: 89.06%).")]
        return lines
