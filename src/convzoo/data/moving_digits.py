"""Moving digits: clips of real handwritten digits moving in one of 4 directions (class = direction).

Registered as ``moving_digits`` (task ``video_classification``): the CPU-scale video set of P3D (paper 49,
"a small P3D-A reaches >= 90 % where a per-frame 2-D model stays near chance") and LRCN (paper 42). This
is **synthetic motion of real images**: the digits are real handwritten digits, OpenCV's 5,000 MNIST digits
(``digits="opencv_digits"``, default; ``convzoo data fetch opencv_digits``) or scikit-learn's bundled 8x8
digits (``digits="sklearn"``, no fetch), each from its set's fixed train/val/test split
(:func:`~convzoo.data.opencv_digits.opencv_digits_split`, :func:`~convzoo.data.digits.digits_split`), so
held-out clips show held-out writers' digits; ``background="photos"`` puts them on real photos
(:data:`~convzoo.data.photos.SPLIT_PHOTOS`, also split).

A video (``frames`` x ``size`` x ``size``, default 16 x 32 x 32):

1. the digit, resized to ``digit_size`` (default ``size // 2``, antialiased bilinear), its ink ``a`` in
   [0, 1], sits at a start position ``(y0, x0)`` drawn uniformly over the whole ``size x size`` grid;
2. it moves ``speed`` pixels per frame (uniform in ``speeds``, default 1 or 2) in its class's direction
   (``right``, ``left``, ``down``, ``up``) on a **torus**: frame ``t`` shows the digit layer rolled by
   ``(y0, x0) + t * speed * direction`` modulo ``size`` (it leaves one edge and re-enters at the other);
3. black background: frame = ``a`` (1 channel); ``background="photos"``: a static random square crop of a
   photo of the split, resized to ``size``, with the digit blended in as ``bg (1 - a) + colour a``
   (light digits on dark crops, dark on light; 3 channels).

**No single frame carries class information**, exactly: every random draw of video ``i`` (digit, start,
speed, background, colour) comes from ``numpy.random.default_rng((seed, split, i))`` before and
independently of its class ``i % 4``, so the first frame has the same distribution for all four classes
(the same video rendered in another direction has an identical first frame), and because the start is
uniform on the torus, the position in frame ``t`` - start plus a fixed shift, modulo ``size`` - is uniform
too: every frame's distribution is the same for all classes. Only the order of the frames tells the
direction; a per-frame 2-D model averaged over time stays at chance (25 %).

Split sizes 2,000 / 400 / 400 (``num_videos`` overrides), classes balanced. Items:

* train: ``(C, T, H, W)``, one random temporal crop of ``clip_len`` frames (default = ``frames``, the whole
  video) from the global torch RNG (seeded per epoch by the engine);
* val/test: ``eval_clips`` clips of ``clip_len`` frames spread uniformly over the video
  (:func:`convzoo.data.video.sample_clips`): ``(C, T, H, W)`` for one clip, ``(K, C, T, H, W)`` for K > 1,
  whose scores the task averages into the video's prediction.

Pixel values lie in [0, 1] (no normalisation). ``dataset.digit_labels`` holds each video's digit.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from convzoo.data.registry import DataInfo, register_dataset
from convzoo.data.video import sample_clips
from convzoo.errors import ConvzooError

__all__ = ["DIRECTIONS", "SPLIT_SIZES", "MovingDigits", "moving_digits", "render_video"]

NAME = "moving_digits"
DIRECTIONS = ("right", "left", "down", "up")
STEPS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}  # (dy, dx) per frame and pixel
SPLIT_SIZES = {"train": 2000, "val": 400, "test": 400}
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
DIGIT_SOURCES = ("opencv_digits", "sklearn")
BACKGROUNDS = ("black", "photos")


@lru_cache(maxsize=4)
def _digit_pool(source: str, split: str, root) -> tuple[torch.Tensor, np.ndarray]:
    """(ink images (N, h, w) float in [0, 1], digit labels (N,)) of ``split`` of the digit set."""
    if source == "opencv_digits":
        from convzoo.data.opencv_digits import _folder, _load, opencv_digits_split

        images, labels = _load(_folder(root))
        keep = opencv_digits_split()[split]
        return torch.from_numpy(images[keep]).float() / 255.0, labels[keep]
    from convzoo.data.digits import _load, digits_split

    images, labels = _load()
    keep = digits_split()[split]
    return torch.from_numpy(images[keep]).float(), labels[keep]


def _resize(img: torch.Tensor, side: int) -> torch.Tensor:
    out = F.interpolate(img[None, None], size=(side, side), mode="bilinear", align_corners=False,
                        antialias=side < img.shape[-1])
    return out[0, 0].clamp(0, 1)


def render_video(ink: torch.Tensor, direction: str, start: tuple[int, int], speed: int, frames: int, size: int,
                 background: torch.Tensor | None = None, colour: torch.Tensor | None = None) -> torch.Tensor:
    """One video ``(C, frames, size, size)`` in [0, 1]: the ``(s, s)`` ink layer at ``start`` moving ``speed``
    pixels per frame towards ``direction`` on a torus; on black (C = 1) or blended into ``background`` (3, H, W)."""
    s = ink.shape[-1]
    layer = torch.zeros(size, size)
    layer[:s, :s] = ink
    dy, dx = STEPS[direction]
    alpha = torch.stack([torch.roll(layer, (start[0] + t * speed * dy, start[1] + t * speed * dx), (0, 1))
                         for t in range(frames)])  # (T, H, W)
    if background is None:
        return alpha[None]
    a = alpha[None]  # (1, T, H, W)
    return background[:, None] * (1 - a) + colour.reshape(3, 1, 1, 1) * a


def _background(rng: np.random.Generator, split: str, size: int) -> torch.Tensor:
    from convzoo.data.photos import SPLIT_PHOTOS
    from convzoo.data.scenes import _photo

    names = SPLIT_PHOTOS[split]
    img = _photo(names[int(rng.integers(len(names)))])
    h, w = img.shape[-2:]
    side = int(rng.uniform(0.3, 1.0) * min(h, w))
    top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    crop = img[None, :, top:top + side, left:left + side]
    return F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def draw_video(split: str, i: int, *, seed: int, size: int, digit_size: int, frames: int, speeds: tuple[int, ...],
               background: str, source: str, root=None, direction: str | None = None) -> tuple[torch.Tensor, int, int]:
    """Video ``i`` of ``split``: (video, direction index, digit). ``direction`` overrides the class
    (``i % 4``) without changing any other draw (the same start frame in every direction)."""
    pool, digit_labels = _digit_pool(source, split, root)
    rng = np.random.default_rng((seed, SPLIT_CODE[split], i))
    k = int(rng.integers(len(pool)))
    start = (int(rng.integers(size)), int(rng.integers(size)))
    speed = int(speeds[int(rng.integers(len(speeds)))])
    bg = colour = None
    if background == "photos":
        bg = _background(rng, split, size)
        dark = float(bg.mean()) > 0.5
        colour = torch.from_numpy(rng.uniform(0.0, 0.25, 3) if dark else rng.uniform(0.75, 1.0, 3)).float()
    cls = i % len(DIRECTIONS) if direction is None else DIRECTIONS.index(direction)
    video = render_video(_resize(pool[k], digit_size), DIRECTIONS[cls], start, speed, frames, size, bg, colour)
    return video, cls, int(digit_labels[k])


@lru_cache(maxsize=8)
def _videos(split, n, seed, size, digit_size, frames, speeds, background, source, root):
    out = [draw_video(split, i, seed=seed, size=size, digit_size=digit_size, frames=frames, speeds=speeds,
                      background=background, source=source, root=root) for i in range(n)]
    videos = torch.stack([v for v, _, _ in out]).mul(255).round().to(torch.uint8)  # 8-bit frames, as a file
    return videos, torch.tensor([c for _, c, _ in out]), torch.tensor([d for _, _, d in out])


class MovingDigits(Dataset):
    """Rendered videos (uint8, ``(N, C, F, H, W)``) served as float clips (module docstring)."""

    def __init__(self, videos, labels, digit_labels, info: DataInfo, train: bool, clip_len: int, eval_clips: int):
        self.videos, self.labels, self.digit_labels, self.info = videos, labels, digit_labels, info
        self.train, self.clip_len, self.eval_clips = train, clip_len, eval_clips

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        video = self.videos[i].float() / 255.0
        if self.clip_len == video.shape[1] and (self.train or self.eval_clips == 1):
            return video, int(self.labels[i])
        if self.train:
            return sample_clips(video, self.clip_len, "random"), int(self.labels[i])
        return sample_clips(video, self.clip_len, "uniform", self.eval_clips), int(self.labels[i])


@register_dataset(NAME)
def moving_digits(split: str, root=None, *, size: int = 32, digit_size: int | None = None, frames: int = 16,
                  clip_len: int | None = None, eval_clips: int = 1, speeds=(1, 2), background: str = "black",
                  digits: str = "opencv_digits", num_videos: int | None = None, seed: int = 0) -> MovingDigits:
    """Videos of a digit moving right/left/down/up (module docstring); ``root`` = the digit set's folder."""
    if digits not in DIGIT_SOURCES:
        raise ConvzooError(f"moving_digits: digits must be one of {', '.join(DIGIT_SOURCES)}, got {digits!r}")
    if background not in BACKGROUNDS:
        raise ConvzooError(f"moving_digits: background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    digit_size = size // 2 if digit_size is None else int(digit_size)
    if not 4 <= digit_size <= size:
        raise ConvzooError(f"moving_digits: need 4 <= digit_size <= size, got digit_size {digit_size}, size {size}")
    clip_len = frames if clip_len is None else int(clip_len)
    if not 1 <= clip_len <= frames or frames < 2:
        raise ConvzooError(f"moving_digits: need frames >= 2 and 1 <= clip_len <= frames, got {frames}, {clip_len}")
    speeds = tuple(int(s) for s in (speeds if isinstance(speeds, (list, tuple)) else (speeds,)))
    if not speeds or min(speeds) < 1:
        raise ConvzooError(f"moving_digits: speeds must be positive integers (pixels per frame), got {speeds}")
    n = SPLIT_SIZES[split] if num_videos is None else int(num_videos)
    videos, labels, digit_labels = _videos(split, n, int(seed), int(size), digit_size, int(frames), speeds,
                                           background, digits, None if root is None else str(root))
    chans = 3 if background == "photos" else 1
    info = DataInfo(NAME, "video_classification", chans, len(DIRECTIONS), DIRECTIONS, (clip_len, size, size),
                    extra={"frames": frames, "clip_len": clip_len, "eval_clips": eval_clips, "digits": digits,
                           "background": background, "speeds": list(speeds), "chance": 1 / len(DIRECTIONS),
                           "source": f"{digits} digits moving on a torus"
                                     + (" over skimage/sklearn photos" if chans == 3 else "")})
    return MovingDigits(videos, labels, digit_labels, info, split == "train", clip_len, int(eval_clips))
