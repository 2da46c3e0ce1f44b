"""Numbers of 1 to 5 real handwritten digits on real photos: a CPU-scale stand-in for SVHN numbers.

Registered as ``numbers`` (task ``digit_sequence``), for the multi-digit model of Goodfellow et al.,
"Multi-digit Number Recognition from Street View Imagery using Deep Convolutional Neural Networks",
arXiv 1312.6082 (seed paper 47), where SVHN cannot be downloaded. This is **synthetic compositing of
real images**: the digits are OpenCV's 5,000 real handwritten 20 x 20 MNIST digits
(:mod:`convzoo.data.opencv_digits`, ``convzoo data fetch opencv_digits``), the backgrounds the bundled real
photos of :mod:`convzoo.data.photos`; only their arrangement is drawn at random.

A number (:func:`render_number`):

1. its length ``n`` uniform in 1..5, its digits drawn uniformly from the split's digit images;
2. digit height ``h`` uniform in 16..28 px for the whole number; the digits sit side by side, left to
   right, each cell ``h x h`` advanced by ``h`` x U(0.55, 0.75) (MNIST cells have margins, so inks are
   close but rarely touch), each with a vertical jitter of up to 8 % of ``h``;
3. the background is a random window of one photo of the split (at full, half or quarter size), 1.4 - 1.8
   times the number's width and 1.4 - 2 times its height; the number is placed at a random position
   inside it, light ink on dark photos and dark ink on light ones, blended with the digit's ink as
   opacity (:func:`convzoo.data.scenes.paste_digit`, which also gives each digit's tight ink box);
4. then SVHN's preprocessing (:mod:`convzoo.data.svhn`, paper Sec. 5.1): the rectangle around the digit
   boxes expanded by 30 %, cropped and resized to ``resize`` (default 40; the paper's 64), then a random
   (train) or centred (eval) ``crop`` (default 36; the paper's 54) and per-image mean subtraction.

Splits are fixed and held out in both sources: digits from the train/val/test parts of
:func:`convzoo.data.opencv_digits.opencv_digits_split` (3,000 / 1,000 / 1,000), backgrounds from the
train/val/test photos of :data:`convzoo.data.photos.SPLIT_PHOTOS`. Val and test numbers are drawn once
from ``numpy.random.default_rng((seed, split, i))`` (1,000 / 2,000 by default), the same on every machine.
Train numbers are drawn afresh every epoch from ``(seed, 0, epoch, i)``, with ``epoch`` given by
``dataset.set_epoch`` or else ``torch.initial_seed()``, which the engine reseeds every epoch (so a run
sees new arrangements of the same 3,000 train digits each epoch, reproducibly). With ``pool=N`` the train
set is instead a fixed pool of the first ``N`` numbers of epoch 0, each rendered once, when first asked for,
and the whole pool cached as ``.npz`` in the data cache (``~/.cache/convzoo/numbers``; a larger pool starts
from the largest cached smaller one, whose numbers are its first): rendering a number
(about 0.7 ms at resize 40, one thread) costs about half of a CPU training step of ``multidigit_small`` on it
(about 1.6 ms per number at batch 64), so a pool saves a third of a run's time (a pool of 100,000 at resize 40 renders
in about 75 s during the first epoch, 0.5 GB of uint8; the recipe's 300,000 warped at 48 px, 2.1 GB);
random crops still differ every epoch.
``square=True`` makes the digit box square (around its centre, before the 30 % expansion) as potterhsu's SVHN
port does, keeping the digits' aspect; the paper (and the default) keeps the rectangle, which squeezes
5-digit numbers horizontally and stretches 1-digit ones.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from convzoo.data.fetch import data_home
from convzoo.data.opencv_digits import _folder, _load, opencv_digits_split
from convzoo.data.photos import SPLIT_PHOTOS
from convzoo.data.registry import register_dataset
from convzoo.data.scenes import _photo, paste_digit
from convzoo.data.svhn import NumberCrops, crop_number, encode_target, number_box, sequence_info, standardize
from convzoo.errors import ConvzooError

__all__ = ["SPLIT_SIZES", "numbers", "render_number"]

SPLIT_SIZES = {"train": 10_000, "val": 1_000, "test": 2_000}
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
MIN_HEIGHT, MAX_HEIGHT = 16, 28
MAX_LEN = 5


@lru_cache(maxsize=32)
def _levels(name: str) -> tuple[torch.Tensor, ...]:
    """A photo (3, H, W) in [0, 1] at full, half and quarter size (antialiased), computed once."""
    img = _photo(name)[None]
    out = [img[0]]
    for f in (2, 4):
        size = (max(1, img.shape[-2] // f), max(1, img.shape[-1] // f))
        out.append(F.interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)[0])
    return tuple(out)


def _background(rng: np.random.Generator, photos: tuple[str, ...], height: int, width: int) -> torch.Tensor:
    """A random (3, height, width) window of one photo at a random one of three scales (a copy)."""
    levels = _levels(photos[int(rng.integers(len(photos)))])
    fits = [lv for lv in levels if lv.shape[-2] >= height and lv.shape[-1] >= width] or [levels[0]]
    img = fits[int(rng.integers(len(fits)))]
    if img.shape[-2] < height or img.shape[-1] < width:  # a photo smaller than the canvas: stretch it
        img = F.interpolate(img[None], size=(max(height, img.shape[-2]), max(width, img.shape[-1])),
                            mode="bilinear", align_corners=False)[0]
    top, left = int(rng.integers(img.shape[-2] - height + 1)), int(rng.integers(img.shape[-1] - width + 1))
    return img[:, top:top + height, left:left + width].clone()


def warp_digit(ink: torch.Tensor, u: np.ndarray, warp: float) -> torch.Tensor:
    """A handwritten digit (H, W) in [0, 1] under a random affine map: ``u`` three draws in [-1, 1] scaled
    by ``warp`` to a rotation of up to 15 degrees, a horizontal shear of up to 15 degrees and a scale change
    of up to 10 % (about the digit's centre; torchvision's affine, bilinear)."""
    angle, shear, scale = (float(v) * warp for v in u)
    out = TF.affine(ink[None], angle=15.0 * angle, translate=[0, 0], scale=1.0 + 0.1 * scale,
                    shear=[15.0 * shear, 0.0], interpolation=TF.InterpolationMode.BILINEAR)[0]
    return out if out.max() > 0 else ink  # (a map that lost every stroke: keep the digit)


def render_number(rng: np.random.Generator, digit_images: np.ndarray, digit_labels: np.ndarray, ids: np.ndarray,
                  photos: tuple[str, ...], resize: int, max_len: int = MAX_LEN, square: bool = False,
                  warp: float = 0.0):
    """One number: (uint8 (3, resize, resize) crop, its digits (list of int), the scene uint8 (H, W, 3),
    the digit ink boxes (left, top, width, height) in the scene). ``warp`` > 0: each digit under its own
    random affine map (:func:`warp_digit`; drawn after everything else, so ``warp=0`` draws the same numbers)."""
    n = int(rng.integers(1, max_len + 1))
    picks = ids[rng.integers(0, len(ids), n)]
    h = int(rng.integers(MIN_HEIGHT, MAX_HEIGHT + 1))
    xs = np.cumsum([0] + [round(h * rng.uniform(0.55, 0.75)) for _ in range(n - 1)])
    jit = round(0.08 * h)
    dys = rng.integers(-jit, jit + 1, n)
    width, height = int(xs[-1] + h), h + 2 * jit
    cw, ch = int(width * rng.uniform(1.4, 1.8)) + 2, int(height * rng.uniform(1.4, 2.0)) + 2
    canvas = _background(rng, photos, ch, cw)  # (3, ch, cw) in [0, 1]
    x0, y0 = int(rng.integers(0, cw - width + 1)), int(rng.integers(0, ch - height + 1)) + jit
    under = canvas[:, y0 - jit:y0 - jit + height, x0:x0 + width].mean()
    colour = torch.from_numpy(rng.uniform(0.0, 0.25, 3) if under > 0.5 else rng.uniform(0.75, 1.0, 3)).float()
    warps = rng.uniform(-1.0, 1.0, (n, 3)) if warp > 0 else [None] * n
    boxes = []
    for k, x, dy, u in zip(picks, xs, dys, warps):
        ink = torch.from_numpy(digit_images[k]).float() / 255.0
        if u is not None:
            ink = warp_digit(ink, u, warp)
        bx0, by0, bx1, by1 = paste_digit(canvas, ink, x0 + int(x), y0 + int(dy), h, colour)
        boxes.append((bx0, by0, bx1 - bx0, by1 - by0))
    scene = canvas.mul_(255).round_().to(torch.uint8).permute(1, 2, 0).numpy()
    crop = crop_number(scene, number_box(boxes, square=square), resize)
    return crop, [int(digit_labels[k]) for k in picks], scene, boxes


class _FreshTrain:
    """Train numbers drawn afresh every epoch: item i from ``(seed, 0, epoch, i)``."""

    def __init__(self, digits, labels, ids, resize: int, seed: int, max_len: int, square: bool = False,
                 warp: float = 0.0):
        self.digits, self.labels, self.ids, self.resize, self.seed = digits, labels, ids, resize, seed
        self.max_len, self.square, self.warp, self.epoch = max_len, square, float(warp), None

    def __call__(self, i: int) -> torch.Tensor:
        return self.draw(i)[0]

    def draw(self, i: int, epoch: int | None = None):
        if epoch is None:
            epoch = torch.initial_seed() if self.epoch is None else self.epoch
        rng = np.random.default_rng((self.seed, 0, epoch % (2**63), int(i)))
        crop, digits, _, _ = render_number(rng, self.digits, self.labels, self.ids, SPLIT_PHOTOS["train"],
                                           self.resize, self.max_len, self.square, self.warp)
        return crop, encode_target(digits)


class _TrainNumbers(NumberCrops):
    def set_epoch(self, epoch: int) -> None:
        self.images.epoch = int(epoch)

    def __getitem__(self, i: int):
        crop, target = self.images.draw(i)  # (the set's .targets are placeholders: drawn per item)
        top, left = (int(v) for v in torch.randint(0, crop.shape[-1] - self.crop + 1, (2,)))
        return standardize(crop[:, top:top + self.crop, left:left + self.crop]), target


class _TrainPool:
    """A fixed pool of ``n`` train numbers, item i drawn from ``(seed, 0, 0, i)`` (epoch 0 of the fresh
    draws): read from the data cache's ``.npz`` when there, else rendered the first time an item is asked
    for and kept; the file is written once every item has been rendered (the end of a run's first epoch).
    (With ``num_workers > 0`` each worker keeps its own copy; the CPU recipe loads in the main process.)"""

    def __init__(self, draw: _FreshTrain, n: int):
        self.draw, self.n = draw, n
        self.tail = (f"_r{draw.resize}_s{draw.seed}_l{draw.max_len}{'_sq' if draw.square else ''}"
                     f"{f'_w{draw.warp:g}' if draw.warp else ''}.npz")
        self.path = data_home("numbers") / f"train_pool_n{n}{self.tail}"
        if self.path.is_file():
            with np.load(self.path) as f:
                self.images, self.targets = torch.from_numpy(f["images"]), torch.from_numpy(f["targets"])
            self.have = torch.ones(n, dtype=torch.bool)
        else:
            self.images = torch.zeros(n, 3, draw.resize, draw.resize, dtype=torch.uint8)
            self.targets = torch.zeros(n, 1 + MAX_LEN, dtype=torch.int64)
            self.have = torch.zeros(n, dtype=torch.bool)
            self._reuse_smaller()
        self.missing = int((~self.have).sum())

    def _reuse_smaller(self) -> None:
        """Item i does not depend on the pool's size: the largest cached smaller pool of the same draws
        gives the first items of this one (a pool of 200,000 renders only what a cached 100,000 lacks)."""
        sizes = []
        for p in self.path.parent.glob(f"train_pool_n*{self.tail}"):
            size = p.name[len("train_pool_n"):-len(self.tail)]
            if size.isdigit() and int(size) < self.n:
                sizes.append((int(size), p))
        if sizes:
            k, path = max(sizes)
            with np.load(path) as f:
                self.images[:k], self.targets[:k] = torch.from_numpy(f["images"]), torch.from_numpy(f["targets"])
            self.have[:k] = True

    def __call__(self, i: int) -> torch.Tensor:
        return self.get(i)[0]

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.have[i]:
            self.images[i], self.targets[i] = self.draw.draw(i, epoch=0)
            self.have[i] = True
            self.missing -= 1
            if self.missing == 0:
                self._save()
        return self.images[i], self.targets[i]

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.stem + ".tmp.npz")
            np.savez(tmp, images=self.images.numpy(), targets=self.targets.numpy())
            tmp.replace(self.path)
        except OSError:  # a read-only cache: the pool stays in memory only
            pass


class _PoolNumbers(NumberCrops):
    def __getitem__(self, i: int):
        crop, target = self.images.get(i)
        top, left = (int(v) for v in torch.randint(0, crop.shape[-1] - self.crop + 1, (2,)))
        return standardize(crop[:, top:top + self.crop, left:left + self.crop]), target


@lru_cache(maxsize=4)
def _held_out(split: str, n: int, resize: int, seed: int, max_len: int, folder, square: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
    digits, labels = _load(folder)
    ids = opencv_digits_split()[split]
    crops, targets = [], []
    for i in range(n):
        rng = np.random.default_rng((seed, SPLIT_CODE[split], i))
        crop, ds, _, _ = render_number(rng, digits, labels, ids, SPLIT_PHOTOS[split], resize, max_len, square)
        crops.append(crop)
        targets.append(encode_target(ds))
    return torch.stack(crops), torch.stack(targets)


@register_dataset("numbers")
def numbers(split: str, root=None, *, resize: int = 40, crop: int = 36, num_images: int | None = None,
            max_len: int = MAX_LEN, seed: int = 0, pool: int | None = None, square: bool = False,
            warp: float = 0.0) -> NumberCrops:
    """Numbers of real digits on real photos (module docstring). ``root``: a folder holding OpenCV's
    ``digits.png`` (default: the ``convzoo data fetch opencv_digits`` cache). ``pool``: train on a fixed
    pool of that many numbers (drawn once, cached) instead of fresh numbers every epoch; ``square``: the
    digit box made square before the 30 % expansion (potterhsu's port; keeps the digits' aspect); ``warp``
    (train only, 0 .. 1): each train digit under a random affine map (:func:`warp_digit`), more handwriting
    from the 3,000 train digits; val and test numbers are never warped."""
    if not 1 <= crop <= resize:
        raise ConvzooError(f"numbers: need 1 <= crop <= resize, got crop {crop!r}, resize {resize!r}")
    if not 1 <= max_len <= MAX_LEN:
        raise ConvzooError(f"numbers: max_len must lie in 1..{MAX_LEN}, got {max_len!r}")
    if not 0.0 <= float(warp) <= 1.0:
        raise ConvzooError(f"numbers: warp must lie in 0..1 (a fraction of 15 degrees / 10 %), got {warp!r}")
    n = SPLIT_SIZES[split] if num_images is None else int(num_images)
    folder = _folder(root)
    info = sequence_info("numbers", crop, resize=resize, square=square, photos=list(SPLIT_PHOTOS[split]),
                         source="OpenCV digits.png (real handwritten digits) on skimage/sklearn photos: "
                                "synthetic compositing of real images")
    if split == "train":
        digits, labels = _load(folder)
        draw = _FreshTrain(digits, labels, opencv_digits_split()["train"], resize, seed, max_len, square, warp)
        if pool is not None:
            if int(pool) < 1:
                raise ConvzooError(f"numbers: pool must be a positive number of train numbers, got {pool!r}")
            pooled = _TrainPool(draw, int(pool) if num_images is None else min(int(pool), n))
            return _PoolNumbers(pooled, pooled.targets, crop, True, info)
        return _TrainNumbers(draw, torch.zeros(n, 1 + MAX_LEN, dtype=torch.int64), crop, True, info)
    images, targets = _held_out(split, n, resize, seed, max_len, folder, square)
    return NumberCrops(images, targets, crop, False, info)
