"""Density estimation of images with a discrete autoregressive model (paper 46, Axial Transformer).

A model of this task maps integer images ``(B, C, H, W)`` of levels ``0 .. K-1`` to logits
``(B, C, H, W, K)``: the conditional distribution of every sub-pixel given those before it (raster
order, channel by channel). Its card's ``num_classes`` is ``K``.

* Batches: a data set's ``(image, label)`` with the image in [0, 1] on ``K`` levels -- raw pixels,
  e.g. ``digits`` with ``raw: true, size: 8`` (17 levels, ``levels: 17``) or 8-bit photos (``levels:
  256``, the default); the label is ignored. :meth:`DensityEstimation.to_levels` turns them into
  integers ``round(x (K-1))`` and refuses data that are not on that grid (normalised or resized pixels).
* Loss: the negative log-likelihood in bits per dimension, ``mean(-log p(x_i)) / ln 2`` over every
  sub-pixel (official ``models.py``: ``eval_fn`` over all channel slices; the ``random_channel_slice``
  method, :mod:`convzoo.methods.autoregressive`, trains on one random slice per image as ``train_fn``).
* Metric: ``bits_per_dim`` (headline, min). A model that puts equal mass on every level scores
  ``log2 K`` exactly (8 for 8-bit images, log2 17 = 4.087 for the digits); the report says so.
* Pictures: ``samples.png``, a grid of images drawn from the model (semi-parallel sampler), beside
  ``data.png``, as many held-out images.
* People: ``predict`` gives the bits/dim of an image; ``convzoo predict`` also writes a grid of samples.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MetricCollection

from convzoo.errors import ConvzooError
from convzoo.tasks.base import (
    CONTRACT_CHECKS,
    IMAGE_SUFFIXES,
    Task,
    image_to_input,
    read_image,
    register_task,
)


def bits_per_dim(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Logits (B, ..., K) and levels (B, ...) -> per-image NLL in bits per sub-pixel (B,)."""
    nll = F.cross_entropy(logits.float().movedim(-1, 1), x, reduction="none")  # (B, ...) nats
    return nll.flatten(1).mean(1) / math.log(2.0)


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 1, scale: int = 4) -> np.ndarray:
    """(N, C, H, W) uint8 -> one RGB picture (rows x cols tiles, ``pad`` white pixels apart, upscaled)."""
    n, c, h, w = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, q = divmod(i, cols)
        tile = np.repeat(im, 3, 0) if c == 1 else im[:3]
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = \
            tile.transpose(1, 2, 0)
    return grid.repeat(scale, 0).repeat(scale, 1)


@register_task("density_estimation")
class DensityEstimation(Task):
    monitor = "bits_per_dim"
    monitor_mode = "min"
    # a generative model: no classes, no embedding, no feature maps; ONNX/deploy/MACs as its card says
    contract_checks = CONTRACT_CHECKS - {"num_classes", "embedding", "features"}
    input_suffixes = IMAGE_SUFFIXES

    def __init__(self, levels: int = 256, num_samples: int = 64):
        """``levels``: grey levels K of the data (256 for 8-bit images, 17 for sklearn digits);
        ``num_samples``: images drawn for ``samples.png``."""
        super().__init__(levels=levels, num_samples=num_samples)
        if levels < 2:
            raise ConvzooError(f"density_estimation: levels must be at least 2, got {levels}")
        self.levels, self.num_samples = int(levels), int(num_samples)

    # --- batches ---------------------------------------------------------------------------------
    def to_levels(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] on the ``levels`` grid -> integer levels (long); integer input passes through."""
        if not x.is_floating_point():
            return x.long()
        k = self.levels - 1
        scaled = x.float() * k
        q = scaled.round()
        if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6 or (scaled - q).abs().max() > 1e-3):
            raise ConvzooError(f"density_estimation needs raw pixels on {self.levels} levels in [0, 1] (set the data "
                               "set's raw: true at its native size, and task levels to its number of grey levels); "
                               f"got values in [{float(x.min()):.3g}, {float(x.max()):.3g}] off that grid")
        return q.long()

    def forward(self, model, batch):
        x = self.to_levels(batch[0])
        return model(x), x  # (B, C, H, W, K), (B, C, H, W)

    def loss(self, outputs, targets):
        return bits_per_dim(outputs, targets).mean()

    # --- evaluation ------------------------------------------------------------------------------
    def metrics(self, dataset) -> MetricCollection:
        return MetricCollection({"bits_per_dim": MeanMetric()})

    def update_metrics(self, metrics, outputs, targets):
        metrics["bits_per_dim"].update(bits_per_dim(outputs.detach(), targets))

    # --- models of this task ---------------------------------------------------------------------
    def model_kwargs(self, card, info) -> dict:
        return {"num_classes": self.levels}

    def example_input(self, card, batch=2, size=None, generator=None):
        spatial = tuple(size) if size is not None else tuple(card.test_size)
        return torch.randint(0, card.num_classes, (batch, card.in_chans, *spatial), generator=generator)

    def example_batch(self, card, batch=2, size=None, generator=None):
        x = self.example_input(card, batch, size, generator)
        return x, torch.zeros(batch, dtype=torch.long)

    def output_shape(self, model, card, x):
        return (*x.shape, model.num_classes)

    def bench_spec(self, model, card, size):
        spatial = size if size is not None else tuple(card.input_size)
        return {"input_shape": [card.in_chans, *spatial], "unit": "images/s", "input_dtype": "int64",
                "levels": card.num_classes}

    def fits_model(self, card, info) -> bool:
        return info.in_chans == card.in_chans and card.num_classes == self.levels

    # --- people ----------------------------------------------------------------------------------
    def read_input(self, path: Path, card, info) -> torch.Tensor:
        """An image -> (1, C, H, W) levels at the model's size (resized, grey if C = 1, quantised to K levels)."""
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConvzooError(f"{path}: a density model needs an image file ({', '.join(IMAGE_SUFFIXES)})")
        x = image_to_input(read_image(path), card, None)  # (1, C, H, W) in [0, 1]
        return (x.clamp(0, 1) * (card.num_classes - 1)).round().long()

    @torch.no_grad()
    def predict(self, model, inputs, dataset=None):
        x = self.to_levels(inputs)
        return [{"bits_per_dim": float(v)} for v in bits_per_dim(model(x), x)]

    def predict_file(self, model, card, path: Path, info, out_dir: Path):
        """The image's bits/dim under the model, and ``samples.png`` (a grid drawn from it) in ``out_dir``."""
        yield from super().predict_file(model, card, path, info, out_dir)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        yield {"input": "(samples)", "output": str(self._write_samples(model, out_dir / "samples.png", 16))}

    def format_prediction(self, pred: dict) -> str:
        if "output" in pred:
            return f"wrote {pred['output']}"
        return f"{pred['input']}: {pred['bits_per_dim']:.4f} bits/dim"

    def _write_samples(self, model, path: Path, num: int, generator: torch.Generator | None = None) -> Path:
        from PIL import Image

        was = model.training
        model.eval()
        g = generator or torch.Generator().manual_seed(0)
        p = next(model.parameters())
        u = torch.rand(num, model.in_chans, *model.img_size, model.num_classes, generator=g, dtype=torch.float64)
        noise = -torch.log(-torch.log(u.clamp(1e-20, 1 - 1e-12)))  # Gumbel: argmax(logits + noise) ~ softmax
        x = model.sample(noise.to(p.device, p.dtype)).cpu().numpy()
        model.train(was)
        k = model.num_classes - 1
        Image.fromarray(image_grid((x * 255.0 / k).round().astype(np.uint8))).save(path)
        return Path(path)

    @torch.no_grad()
    def pictures(self, model, dataset, run_dir: Path, device) -> list[Path]:
        from PIL import Image

        run_dir = Path(run_dir)
        n = min(self.num_samples, len(dataset))
        held = torch.stack([dataset[i][0] for i in range(n)])
        data = (self.to_levels(held).numpy() * 255.0 / (self.levels - 1)).round().astype(np.uint8)
        Image.fromarray(image_grid(data)).save(run_dir / "data.png")
        return [self._write_samples(model, run_dir / "samples.png", self.num_samples), run_dir / "data.png"]

    def report(self, results: dict[str, float], dataset) -> list[str]:
        bpd = next((v for k, v in results.items() if k.endswith("bits_per_dim")), None)
        uniform = math.log2(self.levels)
        lines = [f"### Density: negative log-likelihood in bits per sub-pixel ({self.levels} levels)", ""]
        if bpd is not None:
            lines.append(f"{bpd:.4f} bits/dim against {uniform:.4f} for the uniform model (log2 {self.levels}).")
        lines += ["", "Samples drawn from the model (semi-parallel sampler): samples.png; held-out images: data.png.",
                  ("Paper (Axial Transformer, Table 1, recalled in the fact sheet): ImageNet 32x32 3.76, "
                  "64x64 3.44 bits/dim.")]
        return lines
