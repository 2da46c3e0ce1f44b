"""Detection scenes made of real data: handwritten digits pasted onto real photos, with their boxes.

Registered as ``scenes``: a bundled, deterministic detection set sized for CPU training of SSD
(Liu et al., "SSD: Single Shot MultiBox Detector", arXiv 1512.02325; paper 27), where VOC and COCO
cannot be downloaded. This is **synthetic compositing of real images**, as SVHN-like street digits
would be: the digits are scikit-learn's 8x8 handwritten digits (:mod:`convzoo.data.digits`), the
backgrounds the bundled photos of :mod:`convzoo.data.photos` (scikit-image, scikit-learn).

A scene (``size x size``, default 128):

1. background: a random square crop (side 30-100 % of the photo's shorter side) of one photo of the
   split, resized to ``size`` (antialiased bilinear);
2. 1..``max_objects`` digits, each upscaled from 8x8 to a square of side ``scale`` x ``size``
   (``scale`` uniform in ``[min_scale, max_scale]``, default 0.2-0.45) with bilinear interpolation;
   its opacity is ``clamp((v - 0.2) / 0.3, 0, 1)`` of the upscaled ink ``v`` in [0, 1] (faint ink at
   or below 0.2 is fully transparent), its colour light on dark backgrounds and dark on light ones;
3. the box is the tight box of the digit's non-transparent pixels (:func:`paste_digit`), in
   continuous pixel coordinates; digits are placed so that their boxes do not overlap (2-pixel
   margin), so no box is occluded.

Labels: digit ``d`` -> label ``d + 1`` (class names "0".."9", background first); ``num_digits``
keeps the digits ``0..num_digits-1`` only. Splits are fixed and held out in both sources: the digits
come from the train/val/test parts of :func:`convzoo.data.digits.digits_split` and the backgrounds
from the train/val/test photos of :data:`convzoo.data.photos.SPLIT_PHOTOS`. Scene ``i`` of a split
is drawn from ``numpy.random.default_rng((seed, split, i))``, so a set is the same on every machine.
Items are those of :class:`~convzoo.data.detection.DetectionDataset` (train: the SSD augmentation).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from convzoo.data.detection import DetectionDataset, Record, augment_options, check_size, detection_info
from convzoo.data.digits import _load as load_digits
from convzoo.data.digits import digits_split
from convzoo.data.photos import PHOTOS, SPLIT_PHOTOS, to_rgb_tensor
from convzoo.data.registry import register_dataset
from convzoo.errors import ConvzooError

SPLIT_SIZES = {"train": 600, "val": 100, "test": 200}
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
INK_LOW, INK_RAMP = 0.2, 0.3  # opacity = clamp((ink - 0.2) / 0.3, 0, 1)
MARGIN = 2.0


def digit_alpha(digit: torch.Tensor, side: int) -> torch.Tensor:
    """(8, 8) ink in [0, 1] -> (side, side) opacity (bilinear upscaling, faint ink transparent)."""
    up = F.interpolate(digit[None, None].float(), size=(side, side), mode="bilinear", align_corners=False)
    up = up[0, 0]
    return ((up - INK_LOW) / INK_RAMP).clamp(0, 1)


def paste_digit(canvas: torch.Tensor, digit: torch.Tensor, x: int, y: int, side: int,
                colour: torch.Tensor) -> list[float]:
    """Blend a digit of side ``side`` with its top-left at (x, y) into ``canvas`` (3, H, W) in [0, 1],
    in place; return the tight box ``[x0, y0, x1, y1]`` of the pixels it changed."""
    a = digit_alpha(digit, side)  # (side, side)
    region = canvas[:, y:y + side, x:x + side]
    region.mul_(1 - a).add_(colour.reshape(3, 1, 1) * a)
    rows, cols = torch.nonzero(a.sum(1)).flatten(), torch.nonzero(a.sum(0)).flatten()
    return [float(x + cols[0]), float(y + rows[0]), float(x + cols[-1] + 1), float(y + rows[-1] + 1)]


def _ink_box(digit: torch.Tensor, side: int) -> list[int]:
    a = digit_alpha(digit, side)
    rows, cols = torch.nonzero(a.sum(1)).flatten(), torch.nonzero(a.sum(0)).flatten()
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


@lru_cache(maxsize=32)
def _photo(name: str) -> torch.Tensor:
    return to_rgb_tensor(PHOTOS[name]())  # (3, H, W) in [0, 1]


def _background(rng: np.random.Generator, photos: tuple[str, ...], size: int) -> torch.Tensor:
    img = _photo(photos[int(rng.integers(len(photos)))])
    h, w = img.shape[-2:]
    side = int(rng.uniform(0.3, 1.0) * min(h, w))
    top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    crop = img[None, :, top:top + side, left:left + side]
    out = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0].clamp(0, 1)


def _overlaps(box: list[float], boxes: list[list[float]]) -> bool:
    return any(box[0] < b[2] + MARGIN and b[0] < box[2] + MARGIN and box[1] < b[3] + MARGIN
               and b[1] < box[3] + MARGIN for b in boxes)


def render_scene(rng: np.random.Generator, photos: tuple[str, ...], digit_ids: np.ndarray, size: int,
                 max_objects: int, min_scale: float, max_scale: float):
    """One scene: (uint8 (3, size, size), boxes (N, 4), labels (N,) = digit + 1)."""
    images, targets = load_digits()
    canvas = _background(rng, photos, size)
    boxes, labels = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(50):
            k = int(digit_ids[int(rng.integers(len(digit_ids)))])
            side = max(8, round(rng.uniform(min_scale, max_scale) * size))
            x, y = int(rng.integers(size - side + 1)), int(rng.integers(size - side + 1))
            digit = torch.from_numpy(images[k])
            ink = _ink_box(digit, side)
            box = [float(x + ink[0]), float(y + ink[1]), float(x + ink[2]), float(y + ink[3])]
            if not _overlaps(box, boxes):
                break
        else:
            continue
        under = canvas[:, y:y + side, x:x + side].mean()
        colour = rng.uniform(0.0, 0.25, 3) if under > 0.5 else rng.uniform(0.75, 1.0, 3)  # dark on light
        colour = torch.from_numpy(colour).float()
        boxes.append(paste_digit(canvas, digit, x, y, side, colour))
        labels.append(int(targets[k]) + 1)
    image = canvas.mul(255).round().to(torch.uint8)
    boxes_t = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return image, boxes_t, torch.tensor(labels, dtype=torch.int64)


@lru_cache(maxsize=8)
def _scenes(split: str, n: int, size: int, num_digits: int, max_objects: int, min_scale: float,
            max_scale: float, seed: int):
    _, targets = load_digits()
    ids = digits_split()[split]
    ids = ids[targets[ids] < num_digits]
    out = []
    for i in range(n):
        rng = np.random.default_rng((seed, SPLIT_CODE[split], i))
        out.append(render_scene(rng, SPLIT_PHOTOS[split], ids, size, max_objects, min_scale, max_scale))
    return out


@register_dataset("scenes")
def scenes(split: str, root=None, *, size: int = 128, num_images: int | None = None, num_digits: int = 10,
           max_objects: int = 3, min_scale: float = 0.2, max_scale: float = 0.45, augment=True,
           seed: int = 0) -> DetectionDataset:
    """Digits on photos (see the module docstring); ``num_images`` defaults to 600 / 100 / 200."""
    size = check_size("scenes", size)
    if not 1 <= num_digits <= 10:
        raise ConvzooError(f"scenes: num_digits must lie in 1..10, got {num_digits!r}")
    if not 0 < min_scale <= max_scale <= 1:
        raise ConvzooError(f"scenes: need 0 < min_scale <= max_scale <= 1, got {min_scale!r}, {max_scale!r}")
    if max_objects < 1:
        raise ConvzooError(f"scenes: max_objects must be >= 1, got {max_objects!r}")
    n = SPLIT_SIZES[split] if num_images is None else int(num_images)
    rendered = _scenes(split, n, size, int(num_digits), int(max_objects), float(min_scale), float(max_scale),
                       int(seed))
    records = [Record(f"scene_{split}_{i}", lambda img=img: img, boxes, labels,
                      torch.zeros(len(labels), dtype=torch.bool))
               for i, (img, boxes, labels) in enumerate(rendered)]
    info = detection_info("scenes", tuple(str(d) for d in range(num_digits)), size,
                          photos=list(SPLIT_PHOTOS[split]), source="sklearn digits on skimage/sklearn photos")
    return DetectionDataset(records, info, size, augment_options("scenes", split, augment))
