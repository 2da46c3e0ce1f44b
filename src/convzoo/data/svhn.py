"""SVHN full numbers (format 1, ``digitStruct.mat``) and the paper's preprocessing of a number crop.

Goodfellow et al., "Multi-digit Number Recognition from Street View Imagery using Deep Convolutional Neural
Networks", arXiv 1312.6082 (seed paper 47), Sec. 5.1: find the tight rectangle around all the digit boxes
of an image, expand it by 30 % in x and in y, crop, resize the crop to 64 x 64, then take a 54 x 54 crop
at a random position for training (the centre for evaluation); subtract each image's mean. No digit
is localised or segmented separately.

* Format 1 (Netzer et al. 2011, ufldl.stanford.edu/housenumbers): ``train/``, ``test/``, ``extra/``
  folders of PNGs (``1.png`` ...) with a ``digitStruct.mat`` each, a MATLAB v7.3 file, i.e. HDF5:
  ``digitStruct/name`` and ``digitStruct/bbox`` hold one object reference per image; a name is a uint16
  character array, a bbox a group with ``height``, ``label``, ``left``, ``top``, ``width``, each either
  the value itself (one digit) or references to one value per digit. Label 10 is the digit 0.
  :func:`read_digit_struct` reads it (needs ``h5py``: ``pip install h5py``).
* Format 2 (32 x 32 cropped single digits, ``train_32x32.mat``, read with ``scipy.io.loadmat``) is the
  registered set ``svhn`` of :mod:`convzoo.data.formats`; :func:`read_cropped_digits` is its reader.

No SVHN ships in any package a machine here can reach: ``svhn_multidigit`` reads a folder the user
downloaded (``data.root``), and the tests read fixture files they write in both formats. The CPU-scale
stand-in is :mod:`convzoo.data.numbers`.

Targets (both sets): an int64 vector of 6, ``[L, d1, .., d5]`` with ``L`` in 0..5 or 6 = "more than 5"
(then d1..d5 are the first five digits) and ``-1`` (:data:`NO_DIGIT`) for positions past ``L``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from convzoo.data.registry import DataInfo, register_dataset
from convzoo.errors import ConvzooError

__all__ = ["NumberCrops", "center_crop", "crop_number", "encode_target", "number_box", "read_cropped_digits",
           "read_digit_struct", "standardize", "svhn_multidigit"]

EXPAND, RESIZE, CROP = 0.3, 64, 54  # paper Sec. 5.1
MAX_DIGITS, MORE = 5, 6  # five digit heads; length class 6 = "more than 5"
NO_DIGIT = -1  # target of a position past the number's length
SVHN_SPLITS = ("train", "test", "extra")


# --- targets and the number box ---------------------------------------------------------------------
def encode_target(digits: Sequence[int]) -> torch.Tensor:
    """Digits of a number (0..9, left to right) -> ``[L, d1, .., d5]`` (int64, -1 past L; L = 6 above 5)."""
    digits = [int(d) for d in digits]
    if any(not 0 <= d <= 9 for d in digits):
        raise ConvzooError(f"digits must lie in 0..9, got {digits}")
    first = digits[:MAX_DIGITS]
    return torch.tensor([len(digits) if len(digits) <= MAX_DIGITS else MORE, *first,
                         *[NO_DIGIT] * (MAX_DIGITS - len(first))], dtype=torch.int64)


def number_box(boxes: Sequence[Sequence[float]], expand: float = EXPAND, square: bool = False
               ) -> tuple[float, float, float, float]:
    """Digit boxes ``(left, top, width, height)`` -> the crop ``(x0, y0, x1, y1)``: their tight rectangle
    expanded by ``expand`` of its width and height (half on each side). ``square=True`` first makes it a
    square of its longer side around the same centre (potterhsu's port; the paper keeps the rectangle)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(b) == 0:
        raise ConvzooError("a number needs at least one digit box")
    x0, y0 = b[:, 0].min(), b[:, 1].min()
    x1, y1 = (b[:, 0] + b[:, 2]).max(), (b[:, 1] + b[:, 3]).max()
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    if square:
        w = h = max(w, h)
    w, h = w * (1 + expand), h * (1 + expand)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def crop_number(rgb: np.ndarray, box: Sequence[float], size: int = RESIZE) -> torch.Tensor:
    """(H, W, 3) uint8 image, crop box -> (3, size, size) uint8: the box (rounded to pixels; parts
    outside the image read black) resized with bilinear interpolation (PIL)."""
    from PIL import Image

    x0, y0, x1, y1 = (round(v) for v in box)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    crop = Image.fromarray(np.ascontiguousarray(rgb)).crop((x0, y0, x1, y1)).resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(crop, dtype=np.uint8).copy()).permute(2, 0, 1)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W) -> (..., size, size) around the centre (offset (H - size) // 2)."""
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top:top + size, left:left + size]


def standardize(x: torch.Tensor) -> torch.Tensor:
    """uint8 (3, H, W) -> float in [0, 1] minus the image's own mean (paper: per-image mean subtraction)."""
    x = x.float() / 255.0
    return x - x.mean()


class NumberCrops(Dataset):
    """Number crops resized to ``resize`` (uint8, made by ``load(i)`` or given as a (N, 3, R, R) tensor)
    -> items ``(standardized (3, crop, crop) float, target (6,) int64)``; train: a random crop position
    per item and call (``torch`` RNG, which the engine seeds per epoch), eval: the centre."""

    def __init__(self, images: torch.Tensor | Callable[[int], torch.Tensor], targets: torch.Tensor, crop: int,
                 train: bool, info: DataInfo, names: Sequence[str] | None = None):
        self.images, self.targets, self.crop, self.train, self.info = images, targets, int(crop), train, info
        self.names = list(names) if names is not None else None

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, i: int) -> torch.Tensor:
        """The resized number crop ``i`` (uint8 (3, R, R)), before the 54-style crop."""
        return self.images[i] if isinstance(self.images, torch.Tensor) else self.images(i)

    def __getitem__(self, i: int):
        img = self.image(i)
        r = img.shape[-1]
        if r < self.crop:
            raise ConvzooError(f"{self.info.name}: crop {self.crop} is larger than the resized number ({r})")
        if self.train:
            top, left = (int(v) for v in torch.randint(0, r - self.crop + 1, (2,)))
            img = img[:, top:top + self.crop, left:left + self.crop]
        else:
            img = center_crop(img, self.crop)
        return standardize(img), self.targets[i]


def sequence_info(name: str, crop: int, **extra) -> DataInfo:
    """DataInfo of a number set: task ``digit_sequence``, RGB, 10 digit classes, crop x crop inputs."""
    return DataInfo(name=name, task="digit_sequence", in_chans=3, num_classes=10,
                    class_names=tuple(str(d) for d in range(10)), input_size=(crop, crop), extra=extra)


# --- format 1: digitStruct.mat (MATLAB v7.3 = HDF5) ----------------------------------------------------
def read_digit_struct(path: str | Path) -> list[dict]:
    """``digitStruct.mat`` -> per image ``{"name": "1.png", "boxes": [(left, top, width, height), ...],
    "digits": [d, ...]}`` (label 10 read as the digit 0), in file order."""
    path = Path(path)
    if not path.is_file():
        raise ConvzooError(f"svhn_multidigit: {path} not found (SVHN format 1: train/, test/, extra/ folders of "
                           "PNGs with digitStruct.mat, from ufldl.stanford.edu/housenumbers; set data.root)")
    try:
        import h5py
    except ImportError:
        raise ConvzooError(f"svhn_multidigit: reading {path.name} (MATLAB v7.3 = HDF5) needs h5py: "
                           "pip install h5py") from None
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ConvzooError(f"svhn_multidigit: cannot read {path} as a MATLAB v7.3 (HDF5) file ({e})") from None
    with f:
        if "digitStruct" not in f or not {"name", "bbox"} <= set(f["digitStruct"].keys()):
            raise ConvzooError(f"svhn_multidigit: {path} has no digitStruct/name and digitStruct/bbox")
        names, bboxes = f["digitStruct"]["name"], f["digitStruct"]["bbox"]
        out = []
        for i in range(names.shape[0]):
            name = "".join(chr(int(c)) for c in np.asarray(f[names[i, 0]]).reshape(-1))
            group = f[bboxes[i, 0]]
            fields = {k: _values(f, group[k]) for k in ("left", "top", "width", "height", "label")}
            n = len(fields["label"])
            if any(len(v) != n for v in fields.values()):
                raise ConvzooError(f"svhn_multidigit: {path}: image {name} has fields of different lengths")
            boxes = [tuple(float(fields[k][j]) for k in ("left", "top", "width", "height")) for j in range(n)]
            digits = [int(v) % 10 for v in fields["label"]]  # SVHN: label 10 = digit 0
            out.append({"name": name, "boxes": boxes, "digits": digits})
    return out


def _values(f, ds) -> list[float]:
    """One bbox field: the value itself (one digit) or one reference per digit."""
    arr = np.asarray(ds)
    if arr.dtype == object or ds.dtype.kind == "O" or "ref" in str(ds.dtype):
        return [float(np.asarray(f[r]).reshape(-1)[0]) for r in arr.reshape(-1)]
    return [float(v) for v in arr.reshape(-1)]


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ConvzooError(f"svhn_multidigit: cannot read image {path}: {e}") from None


def read_cropped_digits(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Format 2 ``*_32x32.mat`` -> (uint8 (N, 3, 32, 32), int64 (N,) with 10 read as 0) (``scipy.io``)."""
    from convzoo.data.formats import _svhn_mat

    return _svhn_mat(Path(path))


def _split_rows(n: int, split: str, val_size: int, seed: int) -> np.ndarray:
    """Rows of the train folder for ``train``/``val``: a seeded hold-out of ``val_size`` (sorted)."""
    perm = np.random.default_rng(seed).permutation(n)
    val_size = min(int(val_size), n // 2)
    return np.sort(perm[:val_size] if split == "val" else perm[val_size:])


@register_dataset("svhn_multidigit")
def svhn_multidigit(split: str, root=None, *, resize: int = RESIZE, crop: int = CROP, expand: float = EXPAND,
                    square: bool = False, extra: bool = False, val_size: int = 5000,
                    split_seed: int = 0) -> NumberCrops:
    """SVHN format 1 numbers with the paper's preprocessing (module docstring).

    ``test`` = ``root/test``; ``train``/``val`` = ``root/train`` (plus ``root/extra`` with ``extra=True``)
    less / only a seeded hold-out of ``val_size`` images (the paper's validation split is not stated;
    the port holds out 10 % of train + extra). Images are read and cropped when an item is asked for.
    """
    if root is None:
        raise ConvzooError("svhn_multidigit: needs data.root, a folder with train/ and test/ (and extra/) of SVHN "
                           "format 1 (PNGs + digitStruct.mat from ufldl.stanford.edu/housenumbers); no package "
                           "ships SVHN, the CPU-scale stand-in is the 'numbers' set")
    base = Path(str(root)).expanduser()
    folders = ["test"] if split == "test" else ["train"] + (["extra"] if extra else [])
    records = [(base / d / r["name"], r) for d in folders for r in read_digit_struct(base / d / "digitStruct.mat")]
    if split != "test":
        records = [records[i] for i in _split_rows(len(records), split, val_size, split_seed)]
    targets = torch.stack([encode_target(r["digits"]) for _, r in records]) if records else \
        torch.zeros(0, 1 + MAX_DIGITS, dtype=torch.int64)

    def load(i: int) -> torch.Tensor:
        path, rec = records[i]
        return crop_number(_read_rgb(path), number_box(rec["boxes"], expand, square), resize)

    info = sequence_info("svhn_multidigit", crop, resize=resize, expand=expand, square=square,
                         source="SVHN format 1 (Netzer et al. 2011)")
    return NumberCrops(load, targets, crop, split == "train", info, names=[str(p) for p, _ in records])
