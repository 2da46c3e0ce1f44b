"""scikit-learn's bundled handwritten digits: real data that needs no download.

``sklearn.datasets.load_digits``: 1,797 grey 8x8 images of the digits 0-9 (UCI "Optical Recognition
of Handwritten Digits", 43 writers, each pixel a count 0..16 of on-pixels in a 4x4 block of the
32x32 bitmap). This module registers it as the data set ``digits``:

* **Split** (fixed, the same on every machine): class-stratified ``train_test_split`` with
  ``random_state=0``, first 20 % test, then 25 % of the rest val, giving train/val/test =
  1,077 / 360 / 360 images (each class 104-109 / 35-37 / 35-37). :func:`digits_split` returns the
  index arrays; a test pins their checksum.
* **Pixels**: value / 16, so [0, 1]; ``size`` (default 32) upsamples the 8x8 image to size x size
  with bilinear interpolation (torchvision ``Resize``, ``align_corners=False``; antialiasing only
  acts when shrinking, so ``size=8`` returns the original grid exactly).
* **Normalisation**: ``(x - 0.3053) / 0.3760``, the mean/std of the train split's 8x8 pixels in
  [0, 1] (:data:`convzoo.data.transforms.NORMS`; a test recomputes them). ``raw=True`` skips it.
* **Options**: ``channels`` 1 (default) or 3 (the grey value repeated), ``augment`` (train split only;
  ``True`` = random affine of +-10 degrees and +-10 % shifts, applied after resizing and before
  normalisation, so the fill is the background 0).

Items: ``(float tensor (channels, size, size), int label)``; ``root`` is not used.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from convzoo.data.formats import ImageTensorDataset, make_image_dataset
from convzoo.data.registry import register_dataset

NUM_IMAGES = 1797
SPLIT_SEED = 0
CLASS_NAMES = tuple(str(i) for i in range(10))


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)  # (1797, 8, 8) in [0, 1], (1797,)


@lru_cache(maxsize=1)
def digits_split() -> dict[str, np.ndarray]:
    """Sorted indices of the fixed train/val/test split (60/20/20, stratified, ``random_state=0``)."""
    from sklearn.model_selection import train_test_split

    _, y = _load()
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=0.2, stratify=y, random_state=SPLIT_SEED)
    train, val = train_test_split(rest, test_size=0.25, stratify=y[rest], random_state=SPLIT_SEED)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


@register_dataset("digits")
def digits(split: str, root=None, *, size: int = 32, channels: int = 1, augment=False,
           raw: bool = False) -> ImageTensorDataset:
    """The ``split`` part of scikit-learn's digits as described in the module docstring."""
    x, y = _load()
    keep = digits_split()[split]
    images = torch.from_numpy(x[keep])[:, None]  # (N, 1, 8, 8) float in [0, 1]
    ds = make_image_dataset("digits", split, images, torch.from_numpy(y[keep]), CLASS_NAMES, norm="digits",
                            size=size, channels=channels, augment=augment, raw=raw, default_augment="affine")
    ds.indices = keep  # positions in load_digits()
    return ds
