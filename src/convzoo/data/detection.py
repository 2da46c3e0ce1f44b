"""What every detection data set shares: its items, the SSD augmentation and the normalisation.

An item is ``(image, target)``: ``image`` a float tensor ``(3, S, S)`` (the network's input,
normalised with :data:`MEAN` / :data:`STD`), ``target`` a dict of

* ``"boxes"``: float ``(N, 4)``, absolute pixel ``xyxy`` in the ``S x S`` input (continuous
  coordinates: a box covering pixel columns 0..9 is ``x0 = 0, x1 = 10``);
* ``"labels"``: int64 ``(N,)`` in ``1..C-1`` (0 is the background class);
* ``"difficult"``: bool ``(N,)``, boxes the metrics ignore (Pascal VOC "difficult", COCO crowd).

The detection data sets (``voc``, ``coco``, ``scenes``, ``deepforest``) describe each image by a
:class:`Record` and hand them to :class:`DetectionDataset`, which applies the pipeline of the split.

Training augmentation (SSD, Liu et al., "SSD: Single Shot MultiBox Detector", arXiv 1512.02325,
Sec. 2.2 "Data augmentation"), torchvision.transforms.v2 on ``tv_tensors.BoundingBoxes``:

1. photometric distortions (``RandomPhotometricDistort``: brightness +-0.125, contrast and
   saturation 0.5-1.5, hue +-0.05, each with p = 0.5; the ranges of the official Caffe code);
2. "zoom out" expansion (the SSD300*/SSD512* augmentation of Sec. 3.6): with p = 0.5 the image is
   placed on a canvas up to ``zoom_out`` = 4 times its side (16x the area) filled with the mean;
3. the min-IoU random crop (``RandomIoUCrop``): the whole image, or a patch whose IoU with some
   object is at least 0.1, 0.3, 0.5, 0.7 or 0.9, or any patch; patch sides in
   ``[crop_min_scale, 1]`` of the image (paper: 0.1; the official ``ssd_pascal.py`` uses 0.3),
   aspect ratio in [1/2, 2]; ground truth whose centre falls outside the patch is dropped;
4. horizontal flip with p = 0.5;
5. resize to ``S x S``, boxes clamped to the image and boxes under 1 pixel dropped
   (``SanitizeBoundingBoxes``).

Evaluation splits are only resized. Pixels are scaled to [0, 1] and normalised with the ImageNet
mean/std afterwards (the zoom-out fill is therefore 0 after normalisation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from convzoo.data.registry import DataInfo
from convzoo.errors import ConvzooError

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, the usual normalisation of VGG-16 backbones
STD = (0.229, 0.224, 0.225)
BACKGROUND = "__background__"


@dataclass
class Record:
    """One image of a detection set: how to load it and its ground truth in its own pixels."""

    name: str
    load: Callable[[], torch.Tensor]  # -> uint8 (3, H, W)
    boxes: torch.Tensor  # float (N, 4) xyxy, continuous pixel coordinates of the loaded image
    labels: torch.Tensor  # int64 (N,) in 1..C-1
    difficult: torch.Tensor  # bool (N,)


def empty_target() -> dict[str, torch.Tensor]:
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
            "difficult": torch.zeros(0, dtype=torch.bool)}


# --- pipelines ------------------------------------------------------------------------------------
def _labels_and_flags(sample):
    """SanitizeBoundingBoxes drops the labels and difficult flags of the boxes it removes."""
    target = sample[1]
    return target["labels"], target["difficult"]


def ssd_augment(size: int, zoom_out: float = 4.0, crop_min_scale: float = 0.1, photometric: bool = True,
                flip: bool = True) -> v2.Compose:
    """The paper's training pipeline (module docstring) on ``(uint8 image, target)`` samples."""
    steps: list = [v2.ToDtype(torch.float32, scale=True)]
    if photometric:
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    if zoom_out > 1.0:
        steps.append(v2.RandomZoomOut(fill={tv_tensors.Image: list(MEAN), "others": 0},
                                      side_range=(1.0, float(zoom_out)), p=0.5))
    if crop_min_scale < 1.0:
        steps.append(v2.RandomIoUCrop(min_scale=crop_min_scale, max_scale=1.0,
                                      min_aspect_ratio=0.5, max_aspect_ratio=2.0))
    if flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps += [v2.Resize((size, size), antialias=True), v2.ClampBoundingBoxes(),
              v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_labels_and_flags),
              v2.Normalize(MEAN, STD)]
    return v2.Compose(steps)


def eval_pipeline(size: int) -> v2.Compose:
    """Evaluation: resize to ``size x size`` and normalise; the ground truth is kept whole."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Resize((size, size), antialias=True),
                       v2.ClampBoundingBoxes(), v2.Normalize(MEAN, STD)])


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) normalised -> uint8 pixels, for pictures."""
    mean = torch.tensor(MEAN, device=images.device).reshape(3, 1, 1)
    std = torch.tensor(STD, device=images.device).reshape(3, 1, 1)
    return (images.float() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)


# --- the data set ---------------------------------------------------------------------------------
class DetectionDataset(Dataset):
    """Records -> items ``(image (3, S, S), target)`` through the split's pipeline."""

    def __init__(self, records: list[Record], info: DataInfo, size: int, augment: dict | bool | None = None):
        self.records, self.info, self.size = list(records), info, int(size)
        if augment is True:
            augment = {}
        augmented = isinstance(augment, dict)
        self.transform = ssd_augment(self.size, **augment) if augmented else eval_pipeline(self.size)
        self.augmented = augmented

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def raw(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Item ``i`` at its own size, before any transform: uint8 (3, H, W) and its target."""
        r = self.records[i]
        target = {"boxes": r.boxes.clone(), "labels": r.labels.clone(), "difficult": r.difficult.clone()}
        return r.load(), target

    def __getitem__(self, i: int):
        image, target = self.raw(i)
        h, w = image.shape[-2:]
        target["boxes"] = tv_tensors.BoundingBoxes(target["boxes"].float(), format="XYXY", canvas_size=(h, w))
        image, target = self.transform(tv_tensors.Image(image), target)
        return image.as_subclass(torch.Tensor), {"boxes": target["boxes"].as_subclass(torch.Tensor).float(),
                                                 "labels": target["labels"], "difficult": target["difficult"]}


def detection_info(name: str, class_names: tuple[str, ...], size: int, **extra) -> DataInfo:
    """The DataInfo of a detection set: ``class_names`` without the background, which is added first."""
    names = (BACKGROUND, *class_names)
    return DataInfo(name=name, task="detection", in_chans=3, num_classes=len(names), class_names=names,
                    input_size=(int(size), int(size)), extra={"mean": list(MEAN), "std": list(STD), **extra})


def check_size(dataset: str, size) -> int:
    if int(size) != size or size < 32:
        raise ConvzooError(f"{dataset}: size must be an integer >= 32 (the square input side), got {size!r}")
    return int(size)


def augment_options(dataset: str, split: str, augment) -> dict | None:
    """``augment`` of a recipe (true/false or a mapping of :func:`ssd_augment` options) -> options or None."""
    if split != "train" or augment is False or augment is None:
        return None
    if augment is True:
        return {}
    if isinstance(augment, dict):
        allowed = {"zoom_out", "crop_min_scale", "photometric", "flip"}
        if set(augment) - allowed:
            bad = sorted(set(augment) - allowed)
            raise ConvzooError(f"{dataset}: augment takes {sorted(allowed)}, got {bad}")
        return dict(augment)
    raise ConvzooError(f"{dataset}: augment must be true, false or a mapping of {{zoom_out, crop_min_scale, "
                       f"photometric, flip}}, got {augment!r}")


def read_rgb(path) -> torch.Tensor:
    """An image file -> uint8 (3, H, W); a one-line error when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            import numpy as np

            return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()
    except (UnidentifiedImageError, OSError) as e:
        raise ConvzooError(f"cannot read image {path}: {e}") from None
