"""Multi-crop and ensemble evaluation: the test-time protocols of Inception-v4 (seed paper 33).

Paper: Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", arXiv 1602.07261, Sec. 6 and Tables 2-5: single crop, 10/12 crops, 144 crops,
and an ensemble of several networks (softmax outputs averaged). The paper does not spell the crop sets
out; they are those of its predecessors, stated here once:

* 144 crops (GoogLeNet, arXiv 1409.4842 Sec. 10): the image is resized to 4 scales whose shorter side is
  256, 288, 320 and 352 for a 224 crop; at each scale 3 squares are taken (left, centre, right of a
  landscape image; top, centre, bottom of a portrait one); in each square the 4 corner crops, the centre
  crop and the whole square resized to the crop size; each of these and its mirror image:
  4 x 3 x 6 x 2 = 144.
* 12 crops: the same set at the first scale (shorter side 256/224 of the crop, i.e. TF-slim's and the
  paper's single-crop ratio 0.875) and the centre square only: 1 x 1 x 6 x 2 (our reading: the paper
  gives the count, not the set).
* 10 crops (the ResNet row of the paper's Table 3; AlexNet/ResNet protocol): at the first scale, the 4
  corners and the centre of the whole resized image, and their mirrors (torchvision ``TenCrop``).

For a crop size ``s`` other than 224 the scales are ``round(s * g / 224)`` for g in (256, 288, 320, 352).
A resize keeps the aspect ratio: shorter side ``S``, longer side ``floor(L * S / short)`` (as
torchvision's ``Resize(S)``); centred offsets are ``floor((L - S) / 2)``. The crops are cut from the
image the evaluation loader gives (the data set's own test transform), resized bilinearly with
antialiasing.

Ensembles: the softmax of every model on every crop is averaged; metrics see ``log`` of the mean, so
top-k accuracy ranks by the mean probability and the cross-entropy loss is the negative log of the
averaged probability of the true class. Classification only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from convzoo.errors import ConvzooError

GOOGLENET_SCALES = (256, 288, 320, 352)  # shorter side for a 224 crop (GoogLeNet Sec. 10)
REF_CROP = 224
CROP_COUNTS = (1, 10, 12, 144)


@dataclass(frozen=True)
class Crop:
    """One crop: resize the image to ``resized`` (H, W), cut ``box`` = (top, left, height, width) out of
    it, resize that to the crop size (when it is a whole square), mirror it if ``flip``."""

    resized: tuple[int, int]
    box: tuple[int, int, int, int]
    flip: bool


def resized_size(height: int, width: int, short: int) -> tuple[int, int]:
    """(H, W) after resizing the shorter side to ``short`` and the longer one in proportion (floor)."""
    if height <= width:
        return short, int(short * width / height)
    return int(short * height / width), short


def _five(top: int, left: int, side: int, crop: int) -> list[tuple[int, int, int, int]]:
    """4 corners then the centre of a ``side`` x ``side`` square at (top, left), each ``crop`` x ``crop``."""
    far, mid = side - crop, (side - crop) // 2
    return [(top + dy, left + dx, crop, crop) for dy, dx in ((0, 0), (0, far), (far, 0), (far, far), (mid, mid))]


def _squares(h: int, w: int) -> list[tuple[int, int]]:
    """(top, left) of the 3 squares of side min(h, w): left/centre/right (or top/centre/bottom)."""
    side = min(h, w)
    offs = (0, (max(h, w) - side) // 2, max(h, w) - side)
    return [(0, o) for o in offs] if w >= h else [(o, 0) for o in offs]


def crop_set(height: int, width: int, crop: int, n: int) -> list[Crop]:
    """The ``n``-crop set (``n`` in 1, 10, 12, 144; module docstring) of a ``height`` x ``width`` image.

    Order: scale, square, (4 corners, centre, whole square), mirror last within each crop.
    ``n = 1`` is the image itself resized to the crop size (the loader's own single crop).
    """
    if n not in CROP_COUNTS:
        raise ConvzooError(f"crops must be one of {', '.join(map(str, CROP_COUNTS))}, got {n}")
    if n == 1:
        return [Crop((crop, crop), (0, 0, crop, crop), False)]
    scales = [round(crop * g / REF_CROP) for g in GOOGLENET_SCALES]
    out: list[Crop] = []
    if n == 10:
        h, w = resized_size(height, width, scales[0])
        far_y, far_x = h - crop, w - crop
        boxes = [(0, 0), (0, far_x), (far_y, 0), (far_y, far_x), (far_y // 2, far_x // 2)]
        return [Crop((h, w), (t, l, crop, crop), f) for t, l in boxes for f in (False, True)]
    for s in scales[:1] if n == 12 else scales:
        h, w = resized_size(height, width, s)
        squares = _squares(h, w)
        for top, left in squares[1:2] if n == 12 else squares:
            side = min(h, w)
            for box in _five(top, left, side, crop) + [(top, left, side, side)]:
                out += [Crop((h, w), box, False), Crop((h, w), box, True)]
    return out


def apply_crop(images: torch.Tensor, c: Crop, crop: int, resized: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, crop, crop): one crop of a batch (``resized``: the batch already resized)."""
    x = resized if resized is not None else TF.resize(images, list(c.resized), antialias=True)
    t, left, h, w = c.box
    x = x[..., t:t + h, left:left + w]
    if (h, w) != (crop, crop):
        x = TF.resize(x, [crop, crop], antialias=True)
    return x.flip(-1) if c.flip else x


def crops_of(images: torch.Tensor, n: int, crop: int | None = None):
    """Yield the ``n`` crops of a batch ``(B, C, H, W)``, each ``(B, C, crop, crop)`` (default crop:
    the batch's own shorter side); each scale is resized once."""
    if images.dim() != 4:
        raise ConvzooError(f"multi-crop evaluation needs image batches (B, C, H, W), got shape {tuple(images.shape)}")
    crop = crop or min(images.shape[-2:])
    cache: dict[tuple[int, int], torch.Tensor] = {}
    for c in crop_set(images.shape[-2], images.shape[-1], crop, n):
        if c.resized not in cache:
            cache = {c.resized: images if tuple(images.shape[-2:]) == c.resized
                     else TF.resize(images, list(c.resized), antialias=True)}
        yield apply_crop(images, c, crop, cache[c.resized])


def mean_softmax(models, images: torch.Tensor, n_crops: int = 1, crop: int | None = None) -> torch.Tensor:
    """(B, K) mean over models and crops of the softmax of each model's logits (float32)."""
    total, count = None, 0
    for x in ([images] if n_crops == 1 else crops_of(images, n_crops, crop)):
        for m in models:
            p = F.softmax(m(x).float(), dim=-1)
            total = p if total is None else total + p
            count += 1
    return total / count


@torch.no_grad()
def evaluate_views(fabric, models, loader, task, dataset, n_crops: int = 1) -> dict[str, float]:
    """Mean loss and the task's metrics with the softmax averaged over ``models`` and ``n_crops`` crops:
    :func:`convzoo.engine.evaluate.evaluate_loader` with a step whose outputs are the log of the averaged
    probabilities (which equals the plain evaluation for one model and one crop, up to the loss being
    computed from log-probabilities). Classification tasks only.
    """
    from convzoo.engine.evaluate import evaluate_loader

    if not task.averages_views:
        raise ConvzooError(f"multi-crop and ensemble evaluation average softmax outputs: they need a "
                           f"classification task with the 'ce' loss, got task '{task.name}'")
    for m in models:
        m.eval()

    def step(batch):
        images, targets = batch
        probs = mean_softmax(models, images, n_crops)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log(), targets  # log of the averaged probabilities

    return evaluate_loader(fabric, None, loader, task, dataset, step=step)
