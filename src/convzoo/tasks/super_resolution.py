"""Single-image super-resolution (paper 41, ESPCN, Sec. 3.2-3.3).

Batches are ``(lr, hr)``: ``(B, C, h, w)`` / ``(B, C, r h, r w)`` with values in [0, 1], ``C = 1``
(the Y channel) as in the paper, or 3 (RGB). The model maps ``lr`` to the HR size.

* Loss (Sec. 3.2): pixel-wise mean squared error in HR space.
* Metrics (Sec. 3.3, common SR practice): PSNR and SSIM on the Y channel (an RGB output is
  converted with BT.601 first), with a border of ``r`` pixels cropped on every side, computed per
  image and averaged over images (torchmetrics, ``data_range=1``); outputs are clamped to [0, 1].
  The same metrics for the bicubic baseline (the LR upscaled with bicubic interpolation, Keys
  ``a = -0.5``) are reported as ``psnr_bicubic`` / ``ssim_bicubic``, so the gain in dB is visible.
  Headline: ``psnr`` (max).
* Training: ``forward`` returns ``(sr, hr)``; evaluation (``evaluation_forward``) adds the bicubic
  baseline, ``(sr, {"hr": hr, "bicubic": bicubic})``, which only the metrics read.
* Pictures: ``sr_examples.png`` (crops of LR nearest-upscaled / bicubic / model / HR for held-out
  photos) and ``sr_per_image.csv``; the report lists PSNR per photo, model vs bicubic, and the mean
  gain next to the paper's Table 1.
* People: :func:`upscale_image` turns an RGB (or grey) uint8 photo into its upscaled version the
  way the paper does -- the network on Y, bicubic on Cb/Cr.

Evaluation sets hold whole photos of different sizes: evaluate with batch size 1
(``dataset.info.extra["eval_batch_size"]``).

Video (paper Sec. 3.4, 1080p video super-resolved frame by frame; data set ``video_sr``): items are frames named
``clip#t``; a multi-frame (early fusion) model takes ``2k + 1`` LR frames on the channel axis and predicts HR
frame ``t``, and the bicubic baseline upscales the centre frame ``t`` (:func:`centre_frame`). The report gives
PSNR per clip (mean over frames, model vs bicubic) and ``psnr_per_frame.png``; :func:`upscale_video` writes an
upscaled video file (``convzoo predict MODEL clip.mp4``: Y by the network, Cb/Cr bicubic, as for photos).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from convzoo.data.photos import bicubic_upscale, quantize, rgb_to_y, rgb_to_ycbcr, to_rgb_tensor, ycbcr_to_rgb
from convzoo.errors import ConvzooError
from convzoo.tasks.base import (
    CONTRACT_CHECKS,
    IMAGE_SUFFIXES,
    Task,
    read_image,
    register_task,
    run_or_explain,
    write_csv,
)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

# paper Table 1 (ImageNet-trained ESPCN vs bicubic, mean PSNR dB on Set5 / Set14; recalled, see the sheet)
PAPER_TABLE1 = {3: {"Set5": (33.13, 30.39), "Set14": (29.49, 27.54)},
                4: {"Set5": (30.90, 28.42), "Set14": (27.73, 26.00)}}


def eval_view(img: torch.Tensor, border: int) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> (B, 1, H - 2b, W - 2b): clamp, Y channel (BT.601) if RGB, crop ``border``."""
    img = img.float().clamp(0, 1)
    if img.shape[1] == 3:
        img = rgb_to_y(img)
    return img[..., border:img.shape[-2] - border, border:img.shape[-1] - border] if border > 0 else img


def centre_frame(lr: torch.Tensor, chans: int) -> torch.Tensor:
    """(B, frames * C, h, w) stacked LR frames -> (B, C, h, w) of the centre frame (itself when frames = 1)."""
    frames = lr.shape[1] // chans
    if frames * chans != lr.shape[1]:
        raise ConvzooError(f"LR input with {lr.shape[1]} channels is not a stack of {chans}-channel frames")
    k = frames // 2
    return lr[:, k * chans:(k + 1) * chans]


def _scale_of(model: nn.Module) -> int:
    scale = getattr(model, "scale", None)
    if scale is None:
        raise ConvzooError(f"{type(model).__name__} has no 'scale' attribute; expected a super-resolution "
                           "model")
    return int(scale)


@register_task("super_resolution")
class SuperResolution(Task):
    monitor = "psnr"
    monitor_mode = "max"

    def __init__(self, border: int | None = None):
        """``border``: pixels cropped on each side before PSNR/SSIM; ``None`` = the scale ``r``."""
        super().__init__(border=border)
        self.border = border
        self._border_used: int | None = None
        self._per_image: tuple[tuple[str, ...], list[dict]] | None = None

    # --- one step ---------------------------------------------------------------------------
    def forward(self, model, batch):
        lr, hr = batch  # (B, C, h, w), (B, C, rh, rw)
        return model(lr), hr  # (B, C, rh, rw)

    def evaluation_forward(self, model, batch):
        """(sr, {"hr", "bicubic"}): the bicubic baseline is computed for the metrics only."""
        lr, hr = batch
        sr = model(lr)
        bic = bicubic_upscale(centre_frame(lr, hr.shape[1]).float(), hr.shape[-1] // lr.shape[-1]).to(hr.dtype)
        return sr, {"hr": hr, "bicubic": bic}

    def loss(self, outputs, targets):
        hr = targets["hr"] if isinstance(targets, dict) else targets
        return F.mse_loss(outputs.float(), hr.float())  # Sec. 3.2, MSE in HR space

    # --- models of this task ------------------------------------------------------------------
    contract_checks = CONTRACT_CHECKS - {"num_classes", "embedding", "features"}
    input_suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES

    def output_shape(self, model, card, x):
        s = _scale_of(model)
        return (x.shape[0], getattr(model, "out_chans", x.shape[1]), *(d * s for d in x.shape[2:]))

    def fits_model(self, card, info) -> bool:
        return info.in_chans == card.in_chans and int(info.extra.get("scale", card.scale)) == card.scale

    def bench_spec(self, model, card, size):
        """``size`` is the OUTPUT size (e.g. a 1920x1080 frame); the model is fed size / scale."""
        scale = _scale_of(model)
        if size is None:
            lr = tuple(card.input_size)
            out = tuple(s * scale for s in lr)
        else:
            if any(s % scale for s in size):
                raise ConvzooError(f"bench: output size {tuple(size)} is not divisible by the model's scale {scale}")
            out, lr = tuple(size), tuple(s // scale for s in size)
        return {"input_shape": [card.in_chans, *lr], "unit": "frames/s", "scale": scale, "output_size": list(out)}

    # --- evaluation -------------------------------------------------------------------------
    def _border_for(self, dataset) -> int:
        scale = int(dataset.info.extra["scale"])
        return scale if self.border is None else int(self.border)

    def metrics(self, dataset) -> MetricCollection:
        self._border_used = self._border_for(dataset)
        return MetricCollection({
            "psnr": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)),  # per image, then mean
            "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
            "psnr_bicubic": PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)),
            "ssim_bicubic": StructuralSimilarityIndexMeasure(data_range=1.0),
        }, compute_groups=False)

    def update_metrics(self, metrics, outputs, targets):
        if self._border_used is None:
            raise RuntimeError("call task.metrics(dataset) before update_metrics")
        b = self._border_used
        hr, bic = eval_view(targets["hr"], b), eval_view(targets["bicubic"], b)
        sr = eval_view(outputs.detach(), b)
        metrics["psnr"].update(sr, hr)
        metrics["ssim"].update(sr, hr)
        metrics["psnr_bicubic"].update(bic, hr)
        metrics["ssim_bicubic"].update(bic, hr)

    # --- people -----------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model, inputs, dataset=None):
        """(B, 3, H, W) RGB (uint8, or float in [0, 1]) -> [{"image": uint8 (rH, rW, 3), "scale": r}]."""
        if inputs.dtype != torch.uint8:
            inputs = inputs.clamp(0, 1).mul(255).round().to(torch.uint8)
        return [{"image": upscale_image(model, img.permute(1, 2, 0).cpu().numpy()), "scale": _scale_of(model)}
                for img in inputs]

    def predict_file(self, model, card, path: Path, info, out_dir: Path):
        """Upscale one photo (``<stem>_x<r>.png``) or video (``<stem>_x<r>.mp4``) the paper's way into ``out_dir``."""
        from PIL import Image

        if path.suffix.lower() in VIDEO_SUFFIXES:
            out_dir.mkdir(parents=True, exist_ok=True)
            yield {"input": str(path), **upscale_video(model, path, out_dir / f"{path.stem}_x{_scale_of(model)}.mp4")}
            return
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConvzooError(f"{path}: a super-resolution model needs an image or video file "
                               f"({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})")
        rgb = read_image(path)
        up = run_or_explain(lambda: upscale_image(model, rgb), "image", rgb.shape)
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{path.stem}_x{_scale_of(model)}.png"
        Image.fromarray(up).save(target)
        yield {"input": str(path), "output": str(target), "input_size": list(rgb.shape[:2]),
               "output_size": list(up.shape[:2])}

    def format_prediction(self, pred: dict) -> str:
        h, w = pred["output_size"]
        frames = f", {pred['frames']} frames at {pred['fps']:.3g} fps" if "frames" in pred else ""
        return f"{pred['input']}: wrote {pred['output']} ({w}x{h}{frames})"

    @torch.no_grad()
    def pictures(self, model, dataset, run_dir: Path, device) -> list[Path]:
        rows = evaluate_pairs(model, dataset, device, border=self._border_for(dataset))
        self._per_image = (tuple(getattr(dataset, "names", ())), rows)
        run_dir = Path(run_dir)
        csv_path = write_csv(run_dir / "sr_per_image.csv", rows)
        paths = [sr_examples_figure(model, dataset, run_dir / "sr_examples.png", device, rows), csv_path]
        if "frames" in dataset.info.extra:  # a video set: PSNR along each clip
            paths.append(psnr_per_frame_figure(rows, run_dir / "psnr_per_frame.png"))
        return paths

    def report(self, results: dict[str, float], dataset) -> list[str]:
        scale = int(dataset.info.extra["scale"])
        b = self._border_for(dataset)
        psnr, bic = _lookup(results, "psnr"), _lookup(results, "psnr_bicubic")
        lines = [f"### Super-resolution x{scale}: PSNR on Y (BT.601), {b}-pixel border cropped", ""]
        if psnr is not None and bic is not None:
            lines += [f"Mean PSNR {psnr:.2f} dB vs bicubic {bic:.2f} dB: gain {psnr - bic:+.2f} dB.", ""]
        if self._per_image is not None and self._per_image[0] == tuple(getattr(dataset, "names", ())):
            rows = self._per_image[1]
            video = all("#" in str(r["photo"]) for r in rows)
            lines += (per_clip_table(rows) if video else per_image_table(rows)) + [""]
        paper = PAPER_TABLE1.get(scale)
        if paper:
            refs = "; ".join(f"{k} {e:.2f} vs bicubic {c:.2f} ({e - c:+.2f} dB)"
                             for k, (e, c) in paper.items())
            lines.append(f"Paper Table 1 (x{scale}, ESPCN trained on 50k ImageNet images, other photos): "
                         f"{refs}.")
        else:
            lines += [f"The paper's Table 1 reports no x{scale} results."]
        return lines


def _lookup(results: dict, name: str):
    """results[name], also under a split prefix ("test/psnr", "test_psnr")."""
    for key in (name, f"test/{name}", f"test_{name}", f"test.{name}"):
        if key in results:
            return float(results[key])
    return None


# --- helpers used by the task, the CLI, the tests and scripts/train_espcn_weights.py ----------------
def per_image_table(rows: list[dict]) -> list[str]:
    """Markdown table of :func:`evaluate_pairs` rows: model vs bicubic per photo, and the means."""
    lines = ["| photo | bicubic PSNR | model PSNR | gain (dB) | bicubic SSIM | model SSIM |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['photo']} | {r['psnr_bicubic']:.2f} | {r['psnr']:.2f} | "
                     f"{r['psnr'] - r['psnr_bicubic']:+.2f} | {r['ssim_bicubic']:.4f} | {r['ssim']:.4f} |")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr", "psnr_bicubic", "ssim", "ssim_bicubic")}
    gain = mean["psnr"] - mean["psnr_bicubic"]
    lines.append(f"| **mean** | {mean['psnr_bicubic']:.2f} | {mean['psnr']:.2f} | **{gain:+.2f}** | "
                 f"{mean['ssim_bicubic']:.4f} | {mean['ssim']:.4f} |")
    return lines


def per_clip_table(rows: list[dict]) -> list[str]:
    """Markdown table of :func:`evaluate_pairs` rows of video frames (``clip#t``): mean PSNR per clip."""
    clips: dict[str, list[dict]] = {}
    for r in rows:
        clips.setdefault(str(r["photo"]).split("#")[0], []).append(r)
    lines = ["| clip | frames | bicubic PSNR | model PSNR | gain (dB) | frames better than bicubic |",
             "|---|---|---|---|---|---|"]
    for clip, rs in clips.items():
        m, b = float(np.mean([r["psnr"] for r in rs])), float(np.mean([r["psnr_bicubic"] for r in rs]))
        better = sum(r["psnr"] > r["psnr_bicubic"] for r in rs)
        lines.append(f"| {clip} | {len(rs)} | {b:.2f} | {m:.2f} | {m - b:+.2f} | {better}/{len(rs)} |")
    return lines


def psnr_per_frame_figure(rows: list[dict], path: Path) -> Path:
    """PSNR of every frame (model and bicubic), one line pair per clip, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    clips: dict[str, list[dict]] = {}
    for r in rows:
        clips.setdefault(str(r["photo"]).split("#")[0], []).append(r)
    for clip, rs in clips.items():
        t = [int(str(r["photo"]).split("#")[1]) for r in rs]
        ax.plot(t, [r["psnr"] for r in rs], label=f"{clip}: model")
        ax.plot(t, [r["psnr_bicubic"] for r in rs], "--", label=f"{clip}: bicubic")
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR on Y (dB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


@torch.no_grad()
def evaluate_pairs(model, dataset, device="cpu", border: int | None = None) -> list[dict]:
    """Per photo of an eval data set: PSNR/SSIM (Y, border cropped) of the model and of bicubic."""
    scale = int(dataset.info.extra["scale"])
    border = scale if border is None else border
    names = list(getattr(dataset, "names", [str(i) for i in range(len(dataset))]))
    dtype = next(model.parameters()).dtype
    was_training = model.training
    model.eval()
    rows = []
    for i in range(len(dataset)):
        lr, hr = dataset[i]
        lr, hr = lr[None].to(device, dtype), hr[None].to(device)
        hr_v = eval_view(hr, border)
        row = {"photo": names[i]}
        bic = bicubic_upscale(centre_frame(lr, hr.shape[1]).float(), scale)
        for suffix, pred in (("", model(lr)), ("_bicubic", bic)):
            pred_v = eval_view(pred, border)
            row["psnr" + suffix] = float(peak_signal_noise_ratio(pred_v, hr_v, data_range=1.0))
            row["ssim" + suffix] = float(structural_similarity_index_measure(pred_v, hr_v, data_range=1.0))
        rows.append(row)
    model.train(was_training)
    return rows


@torch.no_grad()
def upscale_image(model, image: np.ndarray) -> np.ndarray:
    """uint8 photo (H, W, 3) or (H, W) -> uint8 (rH, rW, 3) or (rH, rW), upscaled as the paper does.

    A Y-channel model (``in_chans=1``) super-resolves the 8-bit luma Y (BT.601) and the chroma Cb/Cr
    is upscaled bicubically (paper Sec. 3.1); an RGB model (``in_chans=3``) gets RGB directly. A
    network restores the degradation it was trained on: the default shipped ESPCN weights
    (``espcn_x{r}``) were trained on bicubic-downscaled and Gaussian-blurred LR alike, the paper-protocol
    ones (``espcn_x{r}_paper``) only on Gaussian blur (sigma r/2), and over-sharpen sharper inputs.
    """
    scale = _scale_of(model)
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    rgb = to_rgb_tensor(np.asarray(image))[None].to(param.device)  # (1, 3, H, W) in [0, 1]
    frames = getattr(model, "frames", 1)  # a multi-frame model sees a still image as identical frames
    in_chans = getattr(model, "out_chans", getattr(model, "in_chans", 1))
    if in_chans == 1:
        ycc = rgb_to_ycbcr(rgb)
        y = model(quantize(ycc[:, :1]).repeat(1, frames, 1, 1).to(param.dtype)).float()  # (1, 1, rH, rW)
        out = ycbcr_to_rgb(torch.cat([y, bicubic_upscale(ycc[:, 1:], scale)], dim=1))
    elif in_chans == 3:
        out = model(rgb.repeat(1, frames, 1, 1).to(param.dtype)).float()
    else:
        raise ConvzooError(f"upscale_image needs a model with 1 (Y) or 3 (RGB) input channels, got "
                           f"{in_chans}")
    model.train(was_training)
    out = quantize(out)[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return out[..., 0] if np.asarray(image).ndim == 2 else out


@torch.no_grad()
def upscale_video(model, src: str | Path, dst: str | Path, max_frames: int | None = None) -> dict:
    """Upscale a video file frame by frame as the paper does and write it to ``dst`` (H.264 MP4).

    Y (BT.601) by the network, Cb/Cr bicubic (:func:`upscale_image`); a multi-frame model gets LR frames
    t - k .. t + k (the first / last frame repeated at the ends). Decoding and encoding use PyAV; frames stream
    through a window of ``2k + 1``. Returns ``output``, ``frames``, ``fps``, ``input_size``, ``output_size``.
    """
    try:
        import av
    except ImportError:
        raise ConvzooError("reading and writing video needs PyAV: pip install av") from None
    scale, frames = _scale_of(model), getattr(model, "frames", 1)
    if getattr(model, "out_chans", getattr(model, "in_chans", 1)) != 1:
        raise ConvzooError("upscale_video needs a Y-channel model (1 output channel), e.g. espcn_x3")
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    k, buf, written, size = frames // 2, {}, 0, None  # buf: frame index -> (1, 3, h, w) YCbCr, Y 8-bit
    src, dst = Path(src), Path(dst)
    try:
        inp = av.open(str(src))
    except (OSError, av.error.FFmpegError) as e:
        raise ConvzooError(f"cannot decode video {src}: {e}") from None
    stream_in = inp.streams.video[0]
    fps = stream_in.average_rate or stream_in.guessed_rate or 25
    out = av.open(str(dst), mode="w")
    stream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)

    def emit(t: int, last: int) -> None:  # super-resolve frame t from frames t-k..t+k (clamped), encode it
        nonlocal written
        lr = torch.cat([buf[min(max(j, 0), last)][:, :1] for j in range(t - k, t + k + 1)], dim=1)  # (1, F, h, w)
        y = model(lr.to(param.dtype)).float()  # (1, 1, rh, rw)
        rgb = ycbcr_to_rgb(torch.cat([y, bicubic_upscale(buf[t][:, 1:], scale)], dim=1))
        img = quantize(rgb)[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        img = np.ascontiguousarray(img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2])  # yuv420p: even sizes
        if written == 0:
            stream.width, stream.height, stream.pix_fmt = img.shape[1], img.shape[0], "yuv420p"
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            out.mux(packet)
        written += 1

    try:
        n, t = 0, 0  # frames decoded, next frame to write
        for frame in inp.decode(video=0):
            if max_frames is not None and n >= max_frames:
                break
            rgb = to_rgb_tensor(frame.to_ndarray(format="rgb24"))[None].to(param.device)  # (1, 3, h, w)
            size = tuple(rgb.shape[-2:])
            ycc = rgb_to_ycbcr(rgb)
            buf[n] = torch.cat([quantize(ycc[:, :1]), ycc[:, 1:]], dim=1)
            n += 1
            while t + k < n:  # frame t has its later neighbours
                emit(t, n - 1)
                t += 1
                buf.pop(t - k - 1, None)  # no later frame needs it
        while t < n:  # the last k frames: their later neighbours are the last frame
            emit(t, n - 1)
            t += 1
        if written == 0:
            raise ConvzooError(f"{src}: no video frames")
        for packet in stream.encode():
            out.mux(packet)
    except av.error.FFmpegError as e:
        raise ConvzooError(f"cannot decode video {src}: {e}") from None
    finally:
        out.close()
        inp.close()
        model.train(was_training)
    return {"output": str(dst), "frames": written, "fps": float(fps), "input_size": list(size),
            "output_size": [stream.height, stream.width]}


def _detail_window(hr: torch.Tensor, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the ``size`` x ``size`` window of ``hr`` (1, H, W) with most gradient energy."""
    img = hr[0].float()
    energy = img.diff(dim=0)[:, :-1].abs() + img.diff(dim=1)[:-1].abs()
    pooled = F.avg_pool2d(energy[None, None], size, stride=max(1, size // 4))[0, 0]
    iy, ix = divmod(int(pooled.argmax()), pooled.shape[1])
    return iy * max(1, size // 4), ix * max(1, size // 4)


@torch.no_grad()
def sr_examples_figure(model, dataset, path: Path, device="cpu", rows: list[dict] | None = None,
                       max_photos: int = 3, crop_lr: int = 40) -> Path:
    """LR (nearest) | bicubic | model | HR crops, one row per held-out photo, Y channel, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = int(dataset.info.extra["scale"])
    dtype = next(model.parameters()).dtype
    n = min(max_photos, len(dataset))
    fig, axes = plt.subplots(n, 4, figsize=(12, 3.1 * n), squeeze=False)
    was_training = model.training
    model.eval()
    for k in range(n):
        lr, hr = dataset[k]
        sr = model(lr[None].to(device, dtype)).float().cpu()[0]
        lr = centre_frame(lr[None], hr.shape[0])[0]  # a multi-frame input: the frame being super-resolved
        bic = bicubic_upscale(lr[None].float(), scale)[0]
        near = lr.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
        views = [eval_view(v[None], 0)[0] for v in (near, bic, sr, hr)]
        s = min(crop_lr, lr.shape[-2], lr.shape[-1]) * scale
        y, x = _detail_window(views[3], s)
        name = getattr(dataset, "names", [str(k)] * n)[k]
        row = rows[k] if rows else None
        titles = [f"{name}: LR (nearest)", f"bicubic {row['psnr_bicubic']:.2f} dB" if row else "bicubic",
                  f"model {row['psnr']:.2f} dB" if row else "model", "HR"]
        for ax, v, t in zip(axes[k], views, titles):
            ax.imshow(v[0, y:y + s, x:x + s].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(t, fontsize=9)
            ax.axis("off")
    model.train(was_training)
    fig.suptitle(f"x{scale} super-resolution, Y channel (PSNR of the whole photo, {scale}-px border cropped)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
