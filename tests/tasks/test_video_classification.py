"""The video_classification task: clip batches, video-level averaging of clip scores, metrics, predict on files."""

from __future__ import annotations

import json

import pytest
import torch
from fixture_video import moving_bar, write_frames, write_mp4

from convzoo.tasks import build_task
from convzoo.tasks.video_classification import video_scores


class _Linear(torch.nn.Module):
    """Scores = a linear map of the clip's mean per channel (enough to check what the task does with them)."""

    def __init__(self, chans=1, classes=4):
        super().__init__()
        self.fc = torch.nn.Linear(chans, classes)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3, 4)))


@pytest.mark.claim(paper=49, artefact="video_classification",
                   claim="video-level prediction = the average of the clip predictions (softmax scores of K clips), "
                         "cross-entropy on the averaged probability")
def test_video_level_averaging():
    torch.manual_seed(0)
    model = _Linear()
    clips = torch.randn(3, 5, 1, 4, 6, 6)  # 3 videos x 5 clips
    y = torch.tensor([0, 1, 3])
    task = build_task("video_classification")
    out, targets = task.forward(model, (clips, y))
    per_clip = model(clips.flatten(0, 1)).softmax(-1).reshape(3, 5, 4)
    torch.testing.assert_close(out.exp(), per_clip.mean(1))
    torch.testing.assert_close(task.loss(out, targets), -per_clip.mean(1)[torch.arange(3), y].log().mean())
    # one clip per video: the model's own logits
    single = clips[:, 0]
    assert torch.equal(video_scores(model, single), model(single))
    with pytest.raises(Exception, match="N, C, T, H, W"):
        video_scores(model, torch.randn(2, 3, 4))


def test_metrics_top1_top5():
    from convzoo.data import DataInfo

    task = build_task("video_classification")

    class D:
        info = DataInfo("x", "video_classification", 1, 6, tuple("abcdef"))

    m = task.metrics(D())
    scores = torch.log(torch.tensor([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1], [0.01, 0.09, 0.1, 0.2, 0.3, 0.3]]))
    task.update_metrics(m, scores, torch.tensor([0, 0]))
    res = m.compute()
    assert float(res["acc"]) == 0.5 and float(res["acc5"]) == 0.5  # the second video's class is 6th of 6
    assert task.averages_views and "features" in task.contract_checks


def test_predict_video_file_and_frame_folder(tmp_path):
    """`convzoo predict` on a user's .mp4 (PyAV) and on a folder of frames prints top classes (moving_digits' names)."""
    from convzoo.predict import predict_files

    clip = moving_bar("right", frames=24)
    mp4 = write_mp4(tmp_path / "user.mp4", clip)
    folder = write_frames(tmp_path / "frames", clip)
    lines = list(predict_files("p3d_a_digits", [str(mp4), str(folder)]))
    assert len(lines) == 2  # the folder is one video, not 24 images
    assert lines[0].startswith(f"{mp4} (2 clips):") and lines[1].startswith(f"{folder} (2 clips):")
    assert all(name in lines[0] for name in ("right", "left", "down", "up"))
    rec = json.loads(next(iter(predict_files("p3d_a_digits", [str(mp4)], json_out=True))))
    assert [t["name"] for t in rec["top5"]] and rec["clips"] == 2 and len(rec["top5"]) == 4
    assert abs(sum(t["score"] for t in rec["top5"]) - 1) < 1e-5


def test_predict_rejects_unreadable_file(tmp_path):
    from convzoo.errors import ConvzooError
    from convzoo.predict import predict_files

    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ConvzooError, match="cannot decode"):
        list(predict_files("p3d_a_digits", [str(bad)]))


def test_bench_spec_clips_per_second():
    import convzoo

    card = convzoo.get_card("p3d_a_resnet50")
    spec = build_task("video_classification").bench_spec(None, card, None)
    assert spec == {"input_shape": [3, 16, 160, 160], "unit": "clips/s", "frames_per_clip": 16}
