"""Video data: clip sampling, frame folders and video files decoded with PyAV (papers 49 and 42).

**Clip sampling.** A video of ``F`` frames gives clips of ``T`` consecutive frames
(:func:`clip_starts`): ``"random"`` draws one start uniformly in ``0..F-T`` (a random temporal crop,
the training clip of P3D, Qiu et al. 2017, Sec. 4, and of C3D), ``"uniform"`` takes ``K`` starts spread
evenly from the first to the last possible one (``K = 1``: the centre clip), the clips whose scores
evaluation averages into one video-level prediction (P3D Sec. 5.1: "video-level prediction by
averaging the clip predictions"). A video shorter than ``T`` repeats its last frame (:func:`take_clip`).

**Frame folders** (the layout UCF101/Kinetics frame dumps use): ``<root>/<split>/<class>/<video>/frame_*.jpg``
(also .png/.jpeg, sorted by the number in the name); class names are the sorted sub-folder names of the
train split. **Video files** ``<root>/<split>/<class>/<video>.mp4|.avi|.mkv|.webm|.mov`` are decoded with
PyAV (:func:`read_video_frames`). Both register as the data set ``video_folder``: items are ``(C, T, H, W)``
float clips in [0, 1] (train: one random temporal crop and a random spatial crop after resizing the
shorter side to ``resize``; val/test: ``eval_clips`` uniform clips, stacked as ``(K, C, T, H, W)`` when
``K > 1``, centre spatial crop), normalised with ``mean``/``std`` when given.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from convzoo.data.registry import DataInfo, register_dataset
from convzoo.errors import ConvzooError

__all__ = ["FRAME_SUFFIXES", "VIDEO_SUFFIXES", "VideoFolder", "clip_starts", "decode_frames", "list_frames",
           "read_frame_folder", "read_video_frames", "resize_crop", "sample_clips", "take_clip", "video_folder"]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".gif")
SAMPLING = ("random", "uniform")


# --- clip sampling ---------------------------------------------------------------------------------
def clip_starts(num_frames: int, clip_len: int, mode: str = "uniform", num_clips: int = 1,
                generator: torch.Generator | None = None) -> list[int]:
    """First frames of the clips of ``clip_len`` frames taken from a video of ``num_frames`` frames."""
    if mode not in SAMPLING:
        raise ConvzooError(f"clip sampling must be one of {', '.join(SAMPLING)}, got {mode!r}")
    if clip_len < 1 or num_clips < 1:
        raise ConvzooError(f"clip_len and num_clips must be >= 1, got {clip_len} and {num_clips}")
    last = max(num_frames - clip_len, 0)
    if mode == "random":
        return [int(torch.randint(0, last + 1, (1,), generator=generator)) for _ in range(num_clips)]
    if num_clips == 1:
        return [last // 2]
    return [round(i * last / (num_clips - 1)) for i in range(num_clips)]


def take_clip(video: torch.Tensor, start: int, clip_len: int) -> torch.Tensor:
    """Frames ``start .. start+clip_len-1`` of a ``(C, F, H, W)`` video (the last frame repeated past the end)."""
    idx = torch.arange(start, start + clip_len).clamp(max=video.shape[1] - 1)
    return video.index_select(1, idx)


def sample_clips(video: torch.Tensor, clip_len: int, mode: str, num_clips: int = 1,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``(C, F, H, W)`` -> ``(C, T, H, W)`` (one clip) or ``(K, C, T, H, W)`` (``num_clips`` K > 1)."""
    starts = clip_starts(video.shape[1], clip_len, mode, num_clips, generator)
    clips = [take_clip(video, s, clip_len) for s in starts]
    return clips[0] if len(clips) == 1 else torch.stack(clips)


def resize_crop(video: torch.Tensor, resize: int | None, crop: int | None, random: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """``(C, T, H, W)``: resize the shorter side to ``resize`` (antialiased bilinear), then a square crop of
    ``crop`` (random position when ``random``, else the centre)."""
    if resize is not None and resize != min(video.shape[-2:]):
        h, w = video.shape[-2:]
        s = resize / min(h, w)
        frames = video.transpose(0, 1)  # (T, C, H, W)
        frames = F.interpolate(frames, size=(max(resize, round(h * s)), max(resize, round(w * s))),
                               mode="bilinear", align_corners=False, antialias=True)
        video = frames.transpose(0, 1)
    if crop is not None:
        h, w = video.shape[-2:]
        if crop > min(h, w):
            raise ConvzooError(f"crop {crop} is larger than the frames ({h} x {w}); lower crop or raise resize")
        if random:
            top = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
        else:
            top, left = (h - crop) // 2, (w - crop) // 2
        video = video[..., top:top + crop, left:left + crop]
    return video.contiguous()


# --- readers -------------------------------------------------------------------------------------------
_NUM = re.compile(r"(\d+)")


def _frame_key(p: Path):
    nums = _NUM.findall(p.stem)
    return (int(nums[-1]) if nums else -1, p.name)


def list_frames(folder: Path) -> list[Path]:
    """The frame images of one video folder, in frame order (the last number in each name)."""
    frames = [p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(frames, key=_frame_key)


def read_frame_folder(folder: str | Path, channels: int = 3) -> torch.Tensor:
    """A folder of frame images -> ``(C, F, H, W)`` float in [0, 1] (every frame resized to the first's size)."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise ConvzooError(f"frame folder not found: {folder}")
    paths = list_frames(folder)
    if not paths:
        raise ConvzooError(f"{folder}: no frame images ({', '.join(FRAME_SUFFIXES)}) inside")
    mode = "L" if channels == 1 else "RGB"
    frames, size = [], None
    for p in paths:
        try:
            with Image.open(p) as im:
                im = im.convert(mode)
                size = size or im.size
                frames.append(np.asarray(im.resize(size, Image.BILINEAR) if im.size != size else im))
        except (UnidentifiedImageError, OSError) as e:
            raise ConvzooError(f"cannot read frame {p}: {e}") from None
    arr = torch.from_numpy(np.stack(frames)).float() / 255.0  # (F, H, W[, 3])
    return (arr[None] if channels == 1 else arr.permute(3, 0, 1, 2)).contiguous()


def decode_frames(path: str | Path, fmt: str = "rgb24", max_frames: int | None = None) -> list[np.ndarray]:
    """The frames of a video file decoded with PyAV as uint8 arrays (``fmt`` "rgb24": (H, W, 3), "gray": (H, W)),
    the first ``max_frames`` when given; one-line errors for a missing PyAV, an undecodable file or no frames."""
    try:
        import av
    except ImportError:
        raise ConvzooError("reading video files needs PyAV: pip install av") from None
    frames = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format=fmt))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (OSError, av.error.FFmpegError) as e:
        raise ConvzooError(f"cannot decode video {path}: {e}") from None
    if not frames:
        raise ConvzooError(f"{path}: no video frames")
    return frames


def read_video_frames(path: str | Path, channels: int = 3, max_frames: int | None = None) -> torch.Tensor:
    """A video file decoded with PyAV -> ``(C, F, H, W)`` float in [0, 1] (the first ``max_frames``)."""
    path = Path(path)
    if not path.is_file():
        raise ConvzooError(f"video file not found: {path}")
    frames = decode_frames(path, "gray" if channels == 1 else "rgb24", max_frames)
    arr = torch.from_numpy(np.stack(frames)).float() / 255.0
    return (arr[None] if channels == 1 else arr.permute(3, 0, 1, 2)).contiguous()


def read_any_video(path: str | Path, channels: int = 3) -> torch.Tensor:
    """A frame folder or a video file -> ``(C, F, H, W)`` in [0, 1]."""
    path = Path(path)
    if path.is_dir():
        return read_frame_folder(path, channels)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return read_video_frames(path, channels)
    raise ConvzooError(f"{path}: not a frame folder or a video file ({', '.join(VIDEO_SUFFIXES)})")


# --- the folder data set ---------------------------------------------------------------------------------
def _videos_of(class_dir: Path) -> list[Path]:
    out = []
    for p in sorted(class_dir.iterdir()):
        if p.is_dir() and list_frames(p) or p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            out.append(p)
    return out


@lru_cache(maxsize=4)
def _scan(root: str, split: str) -> tuple[tuple[str, ...], tuple[tuple[Path, int], ...]]:
    base = Path(root).expanduser()
    train = base / "train"
    if not train.is_dir():
        raise ConvzooError(f"video_folder: {train} not found; expected <root>/<split>/<class>/<video>/frame_*.jpg "
                           "or <root>/<split>/<class>/<video>.mp4")
    classes = tuple(sorted(p.name for p in train.iterdir() if p.is_dir()))
    if not classes:
        raise ConvzooError(f"video_folder: {train} holds no class folders")
    folder = base / split
    if not folder.is_dir():
        raise ConvzooError(f"video_folder: {folder} not found (split '{split}')")
    items = []
    for c, name in enumerate(classes):
        if (folder / name).is_dir():
            items += [(v, c) for v in _videos_of(folder / name)]
    unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise ConvzooError(f"video_folder: {folder} has classes not in the train split: {', '.join(unknown)}")
    if not items:
        raise ConvzooError(f"video_folder: {folder} holds no videos (frame folders or {', '.join(VIDEO_SUFFIXES)})")
    return classes, tuple(items)


class VideoFolder(Dataset):
    """Videos of a folder tree (module docstring); items ``(clip, class index)``."""

    def __init__(self, items, info: DataInfo, train: bool, clip_len: int, eval_clips: int, resize, crop,
                 mean=None, std=None):
        self.items, self.info, self.train = list(items), info, train
        self.clip_len, self.eval_clips, self.resize, self.crop = clip_len, eval_clips, resize, crop
        c = info.in_chans
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).reshape(c, 1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).reshape(c, 1, 1, 1)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        video = read_any_video(path, self.info.in_chans)
        video = resize_crop(video, self.resize, self.crop, random=self.train)
        if self.mean is not None:
            video = (video - self.mean) / self.std
        if self.train:
            return sample_clips(video, self.clip_len, "random"), label
        return sample_clips(video, self.clip_len, "uniform", self.eval_clips), label


@register_dataset("video_folder")
def video_folder(split: str, root=None, *, clip_len: int = 16, eval_clips: int = 1, resize: int | None = 128,
                 crop: int | None = 112, channels: int = 3, mean=None, std=None) -> VideoFolder:
    """Frame folders or video files under ``root`` (module docstring): ``(C, T, H, W)`` clips."""
    if root is None:
        raise ConvzooError("video_folder needs data.root: a folder with <split>/<class>/<video>/frame_*.jpg "
                           "(or <split>/<class>/<video>.mp4)")
    if channels not in (1, 3):
        raise ConvzooError(f"video_folder: channels must be 1 or 3, got {channels!r}")
    classes, items = _scan(str(root), split)
    size = crop if crop is not None else resize
    info = DataInfo("video_folder", "video_classification", channels, len(classes), classes,
                    (clip_len, size, size) if size else (),
                    extra={"clip_len": clip_len, "eval_clips": eval_clips, "root": str(root),
                           **({"mean": list(mean), "std": list(std)} if mean is not None else {})})
    return VideoFolder(items, info, split == "train", clip_len, eval_clips, resize, crop, mean, std)
