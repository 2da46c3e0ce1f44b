"""Video fixtures in real formats: frame folders of JPEG/PNG images and .mp4 files encoded with PyAV (MPEG-4 Part 2).

:func:`write_video_tree` writes ``<root>/<split>/<class>/<video>/frame_*.jpg`` and ``<root>/<split>/<class>/<video>.mp4``
(UCF101/Kinetics frame-dump layout) for the ``video_folder`` data set: class ``right`` holds a bright bar moving right,
``left`` one moving left.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("left", "right")


def moving_bar(direction: str, frames: int = 8, size: int = 32, width: int = 4) -> np.ndarray:
    """uint8 (frames, size, size, 3): a white vertical bar moving ``width`` pixels per frame."""
    out = np.zeros((frames, size, size, 3), np.uint8)
    for t in range(frames):
        x = (t * width) % size if direction == "right" else (size - width - t * width) % size
        out[t, :, x:x + width] = 255
    return out


def write_frames(folder: Path, frames: np.ndarray, suffix: str = ".jpg", name: str = "frame_{:d}") -> Path:
    """Each frame as ``folder/frame_<i><suffix>`` (numbered from 1, unpadded: frame_10 sorts after frame_9)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames, 1):
        Image.fromarray(f).save(folder / (name.format(i) + suffix), quality=95)
    return folder


def write_mp4(path: Path, frames: np.ndarray, fps: int = 8) -> Path:
    """``frames`` (T, H, W, 3) uint8 encoded as MPEG-4 Part 2 in an .mp4 container with PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.bit_rate = 2_000_000
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_video_tree(root: Path, per_class: dict[str, int] | None = None, frames: int = 8, size: int = 32) -> Path:
    """A ``video_folder`` tree: per split and class, frame folders and one .mp4 (train 2 + 1, val/test 1 + 1)."""
    counts = per_class or {"train": 2, "val": 1, "test": 1}
    for split, n in counts.items():
        for c in CLASSES:
            clip = moving_bar(c, frames, size)
            for i in range(n):
                write_frames(root / split / c / f"v{i}", clip)
            write_mp4(root / split / c / "clip.mp4", clip)
    return root
