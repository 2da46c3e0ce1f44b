"""OpenCV's 5,000 handwritten digits (``digits.png``): ``convzoo data fetch opencv_digits``.

OpenCV's samples ship ``samples/data/digits.png``, one grey 2000 x 1000 image holding 5,000 handwritten
digits (MNIST digits, LeCun et al. 1998) in 20 x 20 cells, 50 rows of 100 cells; every 5 rows (500
cells) hold one digit, 0 to 9 in order (the layout OpenCV's own ``samples/python/digits.py`` reads:
``SZ = 20``, ``CLASS_N = 10``, labels ``repeat(arange(10), 500)``). The Debian package ``opencv-doc``
(bookworm 4.6.0+dfsg-12, a 91 MB .deb; licence Apache-2.0 AND BSD-3-Clause for OpenCV's files) installs it
as ``/usr/share/doc/opencv-doc/examples/data/digits.png``; ``convzoo data fetch opencv_digits`` downloads
the .deb (``apt-get download``, nothing installed) and caches only that file and the copyright file.

The registered set ``opencv_digits`` (root = the cache unless given: any folder holding ``digits.png``):

* **Split** (fixed, the same everywhere, as ``digits``): class-stratified ``train_test_split`` with
  ``random_state=0``, 20 % test, then 25 % of the rest val: 3,000 / 1,000 / 1,000 images, 300 / 100 /
  100 per class. :func:`opencv_digits_split` returns the index arrays (positions in reading order).
* **Pixels**: value / 255, normalised with the train split's mean/std (:data:`~convzoo.data.transforms.NORMS`
  ``opencv_digits``, recomputed by a test on the fetched file); ``size`` resizes (native 20), ``channels``
  1 or 3, ``augment=True`` is the small affine of the digit sets, ``raw=True`` skips normalisation.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from convzoo.data.fetch import Fetchable, data_home, register_fetchable
from convzoo.data.formats import ImageTensorDataset, make_image_dataset
from convzoo.data.registry import register_dataset
from convzoo.errors import ConvzooError

__all__ = ["SPEC", "opencv_digits", "opencv_digits_split", "read_digits_png"]

NAME = "opencv_digits"
FILE = "digits.png"
CELL, ROWS, COLS, PER_CLASS = 20, 50, 100, 500  # OpenCV samples/python/digits.py
CLASS_NAMES = tuple(str(i) for i in range(10))
SPLIT_SEED = 0
SPEC = register_fetchable(Fetchable(
    NAME, "opencv-doc", (f"usr/share/doc/opencv-doc/examples/data/{FILE}",),
    "OpenCV's samples/data/digits.png: 5,000 handwritten 20x20 MNIST digits, 500 per class; Debian package "
    "opencv-doc (OpenCV: Apache-2.0 AND BSD-3-Clause).",
    source="debian", licence="License: Apache-2.0 AND BSD-3-Clause"))


def read_digits_png(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``digits.png`` -> (uint8 images (5000, 20, 20) in reading order, int64 labels (5000,))."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise ConvzooError(f"opencv_digits: {path} not found; run `convzoo data fetch opencv_digits` first "
                           f"(or set data.root to a folder holding {FILE})")
    try:
        with Image.open(path) as im:
            grey = np.asarray(im.convert("L"))
    except OSError as e:
        raise ConvzooError(f"opencv_digits: cannot read {path} as an image ({e})") from None
    if grey.shape != (ROWS * CELL, COLS * CELL):
        raise ConvzooError(f"opencv_digits: {path} is {grey.shape[1]} x {grey.shape[0]} pixels, expected "
                           f"{COLS * CELL} x {ROWS * CELL} (50 rows of 100 digits of 20 x 20)")
    cells = grey.reshape(ROWS, CELL, COLS, CELL).transpose(0, 2, 1, 3).reshape(ROWS * COLS, CELL, CELL)
    return np.ascontiguousarray(cells), np.repeat(np.arange(10, dtype=np.int64), PER_CLASS)


def _folder(root) -> Path:
    return Path(str(root)).expanduser() if root is not None else data_home(NAME)


@lru_cache(maxsize=4)
def _load(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    return read_digits_png(folder / FILE)


@lru_cache(maxsize=1)
def opencv_digits_split() -> dict[str, np.ndarray]:
    """Sorted positions of the fixed train/val/test split (60/20/20, stratified, ``random_state=0``)."""
    from sklearn.model_selection import train_test_split

    y = np.repeat(np.arange(10), PER_CLASS)
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=0.2, stratify=y, random_state=SPLIT_SEED)
    train, val = train_test_split(rest, test_size=0.25, stratify=y[rest], random_state=SPLIT_SEED)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


@register_dataset(NAME)
def opencv_digits(split: str, root=None, *, size=None, channels=None, augment=False,
                  raw: bool = False) -> ImageTensorDataset:
    """The ``split`` of OpenCV's ``digits.png`` as described in the module docstring."""
    images, labels = _load(_folder(root))
    keep = opencv_digits_split()[split]
    ds = make_image_dataset(NAME, split, torch.from_numpy(images[keep])[:, None], torch.from_numpy(labels[keep]),
                            CLASS_NAMES, norm=NAME, size=size, channels=channels, augment=augment, raw=raw,
                            default_augment="affine")
    ds.indices = keep
    return ds
