"""Video classification: one label per video from clips ``(N, C, T, H, W)`` (papers 49 P3D and 42 LRCN).

Batches: ``(clips, labels)`` with clips ``(N, C, T, H, W)`` (one clip per video: training, a random temporal
crop) or ``(N, K, C, T, H, W)`` (K clips per video: evaluation). With K clips the task runs the model on all
N K clips at once and averages their softmax scores into one video-level score (P3D, Sec. 5.1: "the
video-level prediction is obtained by averaging the clip predictions"); the output is the log of that mean,
so cross-entropy on it is the negative log of the video's averaged probability and the metrics rank the
averaged probabilities. Loss: softmax cross-entropy (optionally label-smoothed). Metrics (torchmetrics):
top-1 (``acc``, P3D's hit@1) and top-5 (``acc5``, hit@5) accuracy, macro F1.

``convzoo predict`` takes a video file (.mp4, .avi, ... decoded with PyAV) or a folder of frames (give the
folder, or one frame in it: the folder is read once as one video): the frames are resized to the model's
input size (shorter side, centre crop), ``clips`` clips of T frames are spread uniformly over the video
(default: one per T frames, 1 to 10) and their scores averaged; it prints the top classes.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from convzoo.data.video import FRAME_SUFFIXES, VIDEO_SUFFIXES, read_any_video, resize_crop, sample_clips
from convzoo.errors import ConvzooError
from convzoo.tasks.base import CONTRACT_CHECKS, register_task, run_or_explain
from convzoo.tasks.classification import LabelTask, top5_rows

__all__ = ["VideoClassification", "video_scores"]

MAX_PREDICT_CLIPS = 10


def video_scores(model, clips: torch.Tensor) -> torch.Tensor:
    """``(N, C, T, H, W)`` -> the model's logits ``(N, classes)``; ``(N, K, C, T, H, W)`` -> the log of the
    K clips' mean softmax ``(N, classes)`` (video-level averaging)."""
    if clips.dim() == 5:
        return model(clips)
    if clips.dim() != 6:
        raise ConvzooError(f"video clips must be (N, C, T, H, W) or (N, K, C, T, H, W), got {tuple(clips.shape)}")
    n, k = clips.shape[:2]
    logits = model(clips.flatten(0, 1))  # (N K, classes)
    probs = logits.float().softmax(-1).reshape(n, k, -1).mean(1)
    return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()


@register_task("video_classification")
class VideoClassification(LabelTask):
    contract_checks = CONTRACT_CHECKS
    input_suffixes = VIDEO_SUFFIXES + FRAME_SUFFIXES + (".npy",)

    @property
    def averages_views(self) -> bool:
        return True

    def __init__(self, label_smoothing: float = 0.0, clips: int | None = None):
        super().__init__(label_smoothing=label_smoothing, clips=clips)
        self.label_smoothing, self.clips = label_smoothing, clips
        self._seen_folders: set[Path] = set()

    # --- one step -------------------------------------------------------------------------------
    def forward(self, model, batch):
        x, y = batch
        return video_scores(model, x), y

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def update_metrics(self, metrics, outputs, targets):
        metrics.update(outputs.float().softmax(-1), targets)

    # --- models of this task (the rest: LabelTask) -----------------------------------------------
    def bench_spec(self, model, card, size):
        spatial = tuple(size) if size is not None else tuple(card.input_size)
        if len(spatial) == 2:  # an (H, W) size keeps the card's clip length
            spatial = (card.input_size[0], *spatial)
        return {"input_shape": [card.in_chans, *spatial], "unit": "clips/s", "frames_per_clip": spatial[0]}

    # --- people -----------------------------------------------------------------------------------
    def _clip_shape(self, card, info) -> tuple[int, int, int]:
        size = tuple(info.input_size) if info is not None and len(info.input_size or ()) == 3 else tuple(card.input_size)
        return size  # (T, H, W)

    def read_input(self, path: Path, card, info) -> torch.Tensor:
        """A video file or frame folder -> ``(1, K, C, T, H, W)`` clips (``(1, C, T, H, W)`` for K = 1)."""
        path = Path(path)
        if path.suffix.lower() == ".npy":
            from convzoo.tasks.base import npy_to_input

            return npy_to_input(path, card)
        chans = info.in_chans if info is not None else card.in_chans
        t, h, w = self._clip_shape(card, info)
        video = read_any_video(path, chans)  # (C, F, H0, W0) in [0, 1]
        if h == w:
            video = resize_crop(video, h, h)
        else:
            video = F.interpolate(video.transpose(0, 1), size=(h, w), mode="bilinear", align_corners=False,
                                  antialias=True).transpose(0, 1)
        extra = info.extra if info is not None else {}
        if "mean" in extra and "std" in extra:
            mean = torch.tensor(extra["mean"], dtype=torch.float32).reshape(-1, 1, 1, 1)
            std = torch.tensor(extra["std"], dtype=torch.float32).reshape(-1, 1, 1, 1)
            video = (video - mean) / std
        frames = video.shape[1]
        k = self.clips if self.clips is not None else min(MAX_PREDICT_CLIPS, max(1, frames // t))
        return sample_clips(video, t, "uniform", k)[None]

    @torch.no_grad()
    def predict(self, model, inputs, dataset=None):
        return top5_rows(video_scores(model, inputs).float().softmax(-1), dataset)

    def predict_file(self, model, card, path: Path, info, out_dir: Path):
        path = Path(path)
        if path.is_file() and path.suffix.lower() in FRAME_SUFFIXES:
            path = path.parent  # a frame: its folder is the video, read once
            if path in self._seen_folders:
                return
            self._seen_folders.add(path)
        x = self.read_input(path, card, info)
        from convzoo.tasks.base import _InfoOnly

        dataset = _InfoOnly(info) if info is not None else None
        model.eval()
        preds = run_or_explain(lambda: self.predict(model, x, dataset), "clips", x.shape)
        clips = 1 if x.dim() == 5 else int(x.shape[1])
        for pred in preds:
            yield {"input": str(path), "clips": clips, **pred}

    def format_prediction(self, pred: dict) -> str:
        tops = ", ".join(f"{t['name']} {t['score']:.3f}" for t in pred["top5"])
        k = pred.get("clips", 1)
        return f"{pred['input']} ({k} clip{'s' if k != 1 else ''}): {tops}"

    @torch.no_grad()
    def pictures(self, model, dataset, run_dir: Path, device) -> list[Path]:
        """The test confusion matrix of the video-level predictions."""
        from convzoo.tasks.plots import confusion_counts, confusion_figure

        loader = torch.utils.data.DataLoader(dataset, batch_size=32)
        preds, trues = [], []
        model.eval()
        for x, y in loader:
            preds.append(video_scores(model, x.to(device)).argmax(-1).cpu())
            trues.append(y)
        k = dataset.info.num_classes
        cm = confusion_counts(torch.cat(trues).numpy(), torch.cat(preds).numpy(), k)
        names = list(dataset.info.class_names or []) or None
        return [confusion_figure(cm, names, Path(run_dir) / "confusion_matrix.png", "confusion matrix (test)")]

    def report(self, results: dict[str, float], dataset) -> list[str]:
        extra = dataset.info.extra
        k = int(extra.get("eval_clips", 1))
        lines = [f"### Video classification: {k} clip{'s' if k > 1 else ''} of {extra.get('clip_len', '?')} frames "
                 "per video" + (", softmax scores averaged per video" if k > 1 else ""), ""]
        if "chance" in extra:
            lines.append(f"Chance level: {100 * float(extra['chance']):.1f} %.")
        return lines
