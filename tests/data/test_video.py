"""Video data: clip sampling, frame folders and PyAV-decoded files (fixtures written here), and moving_digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixture_video import moving_bar, write_frames, write_mp4, write_video_tree

from convzoo.data import build_dataset
from convzoo.data.moving_digits import DIRECTIONS, STEPS, draw_video
from convzoo.data.video import clip_starts, read_frame_folder, read_video_frames, sample_clips, take_clip
from convzoo.errors import ConvzooError

SMALL = {"num_videos": 8, "digits": "sklearn"}


# --- clip sampling ---------------------------------------------------------------------------------
def test_clip_starts_uniform_and_random():
    assert clip_starts(16, 8, "uniform", 1) == [4]  # the centre clip
    assert clip_starts(16, 8, "uniform", 3) == [0, 4, 8]  # first to last possible start
    assert clip_starts(5, 8, "uniform", 2) == [0, 0]  # shorter than a clip: from frame 0
    g = torch.Generator().manual_seed(0)
    starts = [clip_starts(20, 8, "random", 1, g)[0] for _ in range(300)]
    assert min(starts) == 0 and max(starts) == 12  # a random temporal crop covers 0..F-T
    with pytest.raises(ConvzooError, match="sampling"):
        clip_starts(16, 8, "dense")


def test_take_clip_and_sample_clips_shapes():
    video = torch.arange(6.0).reshape(1, 6, 1, 1).expand(2, 6, 3, 3)
    assert take_clip(video, 4, 4)[0, :, 0, 0].tolist() == [4, 5, 5, 5]  # the last frame repeated
    assert sample_clips(video, 4, "uniform", 1).shape == (2, 4, 3, 3)
    clips = sample_clips(video, 4, "uniform", 3)
    assert clips.shape == (3, 2, 4, 3, 3) and clips[:, 0, 0, 0, 0].tolist() == [0, 1, 2]


# --- real formats -----------------------------------------------------------------------------------
def test_frame_folder_sorted_by_number(tmp_path):
    frames = moving_bar("right", frames=12)
    write_frames(tmp_path / "v", frames, ".png")  # frame_1 .. frame_12: frame_10 must follow frame_9
    video = read_frame_folder(tmp_path / "v")
    assert video.shape == (3, 12, 32, 32)
    assert torch.equal(video, torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255)  # PNG is lossless
    assert read_frame_folder(tmp_path / "v", channels=1).shape == (1, 12, 32, 32)
    with pytest.raises(ConvzooError, match="no frame images"):
        read_frame_folder(tmp_path)


def test_mp4_decoded_with_pyav(tmp_path):
    frames = moving_bar("right", frames=8)
    path = write_mp4(tmp_path / "bar.mp4", frames)
    video = read_video_frames(path)
    assert video.shape == (3, 8, 32, 32)
    # lossy codec: the bar is where it was written (brightest columns), frame by frame
    cols = video.mean(dim=(0, 2)).argmax(-1)
    assert all(4 * t <= int(c) < 4 * t + 4 for t, c in enumerate(cols))
    assert float((video - torch.from_numpy(frames).permute(3, 0, 1, 2) / 255).abs().mean()) < 0.05
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ConvzooError, match="cannot decode"):
        read_video_frames(tmp_path / "broken.mp4")


@pytest.mark.claim(paper=49, artefact="video_folder", claim="frame folders and PyAV-decoded video files of <split>/<class>/<video> read as (C, T, H, W) clips with uniform / random temporal sampling")
def test_video_folder_dataset(tmp_path):
    root = write_video_tree(tmp_path / "videos")
    train = build_dataset("video_folder", "train", root=str(root), clip_len=4, resize=32, crop=24)
    assert train.info.class_names == ("left", "right") and train.info.task == "video_classification"
    assert len(train) == 6  # 2 frame folders + 1 .mp4 per class
    x, y = train[0]
    assert x.shape == (3, 4, 24, 24) and y == 0
    test = build_dataset("video_folder", "test", root=str(root), clip_len=4, eval_clips=2, resize=32, crop=32)
    assert [p.name for p, _ in test.items] == ["clip.mp4", "v0", "clip.mp4", "v0"]
    x, _ = test[1]
    assert x.shape == (2, 3, 4, 32, 32)  # two uniform clips: frames 0-3 and 4-7
    assert torch.equal(x[1, :, 0], read_frame_folder(root / "test" / "left" / "v0")[:, 4])
    with pytest.raises(ConvzooError, match="train"):
        build_dataset("video_folder", "train", root=str(tmp_path / "missing"))


# --- moving digits -----------------------------------------------------------------------------------
_KW = {"seed": 0, "size": 32, "digit_size": 16, "frames": 16, "speeds": (1, 2), "source": "sklearn"}


@pytest.mark.claim(paper=49, artefact="moving_digits",
                   claim="class = direction only: a video drawn in each of the 4 directions has the identical first "
                         "frame and frame t is it rolled by t x speed along the direction on the torus")
@pytest.mark.parametrize("background", ["black", "photos"])
def test_moving_digits_first_frame_independent_of_class(background):
    for i in range(5):
        videos = [draw_video("test", i, background=background, direction=d, **_KW)[0] for d in DIRECTIONS]
        for v in videos[1:]:
            assert torch.equal(v[:, 0], videos[0][:, 0])
        if background == "black":
            for d, v in zip(DIRECTIONS, videos):
                dy, dx = STEPS[d]
                for t in (1, 5):
                    assert any(torch.equal(torch.roll(v[:, 0], (t * s * dy, t * s * dx), (1, 2)), v[:, t])
                               for s in _KW["speeds"]), (i, d, t)


@pytest.mark.claim(paper=49, artefact="moving_digits",
                   claim="every frame has the same distribution in all classes: start uniform on the torus, so the "
                         "digit's position in any frame is uniform whatever the direction")
def test_moving_digits_positions_uniform_per_class():
    ds = build_dataset("moving_digits", "train", num_videos=800, digits="sklearn", frames=6)
    videos = ds.videos.float()  # (N, 1, T, H, W)
    # the ink's centre of mass (circular mean) in the last frame, per class: uniform over 32 x 32 in every class
    last = videos[:, 0, -1]
    angles = torch.arange(32) * 2 * torch.pi / 32
    col = torch.atan2((last.sum(1) * angles.sin()).sum(-1), (last.sum(1) * angles.cos()).sum(-1))
    for c in range(4):
        sel = col[ds.labels == c]
        r = float(torch.hypot(sel.sin().mean(), sel.cos().mean()))  # Rayleigh statistic: ~1/sqrt(n) if uniform
        assert r < 4 / len(sel) ** 0.5, (c, r)
    assert torch.bincount(ds.labels).tolist() == [200] * 4


def test_moving_digits_splits_fixed_and_held_out():
    a = build_dataset("moving_digits", "val", **SMALL)
    b = build_dataset("moving_digits", "val", **SMALL)
    assert torch.equal(a.videos, b.videos) and a.info.task == "video_classification"
    assert a.info.in_chans == 1 and a.info.num_classes == 4 and a.info.class_names == DIRECTIONS
    x, y = a[0]
    assert x.shape == (1, 16, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1 and y == 0
    # test videos draw their digits from the held-out part of the digit split
    from convzoo.data.digits import _load, digits_split
    from convzoo.data.moving_digits import _digit_pool

    pool, _ = _digit_pool("sklearn", "test", None)
    images, _ = _load()
    assert torch.equal(pool, torch.from_numpy(images[digits_split()["test"]]).float())
    assert set(digits_split()["test"]).isdisjoint(digits_split()["train"])


def test_moving_digits_clips_and_options():
    train = build_dataset("moving_digits", "train", clip_len=8, **SMALL)
    assert train[0][0].shape == (1, 8, 32, 32)
    test = build_dataset("moving_digits", "test", clip_len=8, eval_clips=3, background="photos", **SMALL)
    x, _ = test[0]
    assert x.shape == (3, 3, 8, 32, 32) and test.info.in_chans == 3
    assert torch.equal(x[0, :, 0], test.videos[0, :, 0].float() / 255)  # clip 1 starts at frame 0, clip 3 at 8
    assert torch.equal(x[2, :, 0], test.videos[0, :, 8].float() / 255)
    with pytest.raises(ConvzooError, match="direction|digits"):
        build_dataset("moving_digits", "train", digits="mnist")
    with pytest.raises(ConvzooError, match="clip_len"):
        build_dataset("moving_digits", "train", clip_len=20, **SMALL)


def test_moving_digits_opencv_digits():
    ds = build_dataset("moving_digits", "test", num_videos=4)  # OpenCV's digits (fetched by `make test`)
    assert ds.info.extra["digits"] == "opencv_digits" and ds[0][0].shape == (1, 16, 32, 32)
    assert np.isin(ds.digit_labels.numpy(), np.arange(10)).all()
