"""Shape bias: how often a classifier follows an image's shape rather than its texture when the two disagree.

The analysis behind the claim of seed paper 11 ("Scaling Up Your Kernels: Large Kernel Design in ConvNets
towards Universal Representations", arXiv 2410.08049; its preliminary RepLKNet, CVPR 2022, arXiv 2203.06717,
Sec. 5 "shape bias") that large-kernel ConvNets are more shape-biased than small-kernel ones, measured with the
cue-conflict protocol of Geirhos et al. ("ImageNet-trained CNNs are biased towards texture", ICLR 2019,
arXiv 1811.12231): every stimulus carries the shape of one class and the texture of another;

    shape bias = shape decisions / (shape decisions + texture decisions)

counting only stimuli whose shape and texture classes differ and whose prediction is one of the two
(:func:`shape_bias`). Geirhos' stimuli come from style transfer onto ImageNet (Stylized-ImageNet), which is not
available offline; :func:`cue_conflict` builds stimuli of the same kind from any real images: the silhouette
of a shape image (thresholded) filled with a texture field made by tiling small texture images of another
class (:func:`tile_texture`), on a zero background. :func:`measure_shape_bias` runs a model over such stimuli.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["ShapeBias", "cue_conflict", "measure_shape_bias", "shape_bias", "silhouette", "tile_texture"]


@dataclass(frozen=True)
class ShapeBias:
    """Decision counts over the conflicting stimuli and the shape bias they give."""

    shape: int  # prediction = the shape class
    texture: int  # prediction = the texture class
    other: int  # prediction = neither (not counted in the bias)
    excluded: int  # stimuli whose shape and texture classes agree (no conflict)

    @property
    def value(self) -> float:
        """shape / (shape + texture); NaN when no decision followed either cue."""
        n = self.shape + self.texture
        return self.shape / n if n else float("nan")

    @property
    def cue_fraction(self) -> float:
        """Fraction of the conflicting stimuli whose prediction matched one of the two cues."""
        n = self.shape + self.texture + self.other
        return (self.shape + self.texture) / n if n else float("nan")


def shape_bias(predictions, shape_labels, texture_labels) -> ShapeBias:
    """Count shape and texture decisions: predictions, shape labels, texture labels are equal-length int arrays."""
    p, s, t = (torch.as_tensor(a).long().flatten() for a in (predictions, shape_labels, texture_labels))
    if not p.numel() == s.numel() == t.numel():
        raise ConvzooError(f"predictions, shape and texture labels must have one entry per stimulus, got "
                           f"{p.numel()}, {s.numel()}, {t.numel()}")
    conflict = s != t
    p, s, t = p[conflict], s[conflict], t[conflict]
    shape, texture = int((p == s).sum()), int((p == t).sum())
    return ShapeBias(shape, texture, int(p.numel()) - shape - texture, int((~conflict).sum()))


def silhouette(images: torch.Tensor, size: int, threshold: float = 0.5) -> torch.Tensor:
    """(N, H, W) grey images in [0, 1] -> (N, size, size) binary masks: bilinear upsampling, then > threshold."""
    if images.dim() != 3:
        raise ConvzooError(f"expected grey images (N, H, W), got shape {tuple(images.shape)}")
    up = F.interpolate(images[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return (up > threshold).float()


def tile_texture(tiles: torch.Tensor, size: int) -> torch.Tensor:
    """(N, k, h, w) tile images -> (N, size, size) texture fields: the k tiles of each row repeated in reading
    order over a grid of ceil(size / h) x ceil(size / w) cells, cropped to size x size."""
    if tiles.dim() != 4:
        raise ConvzooError(f"expected tiles (N, k, h, w), got shape {tuple(tiles.shape)}")
    n, k, h, w = tiles.shape
    rows, cols = -(-size // h), -(-size // w)
    order = torch.arange(rows * cols) % k
    grid = tiles[:, order].view(n, rows, cols, h, w).permute(0, 1, 3, 2, 4).reshape(n, rows * h, cols * w)
    return grid[:, :size, :size]


def cue_conflict(shape_images: torch.Tensor, texture_tiles: torch.Tensor, size: int,
                 threshold: float = 0.5) -> torch.Tensor:
    """Stimuli (N, 1, size, size): the silhouette of each shape image filled with the texture field of its
    tiles, zero outside: ``silhouette(shape) * tile_texture(tiles)``."""
    if shape_images.shape[0] != texture_tiles.shape[0]:
        raise ConvzooError(f"one tile set per shape image, got {shape_images.shape[0]} and {texture_tiles.shape[0]}")
    return (silhouette(shape_images, size, threshold) * tile_texture(texture_tiles, size))[:, None]


@torch.no_grad()
def measure_shape_bias(model: nn.Module, stimuli: torch.Tensor, shape_labels, texture_labels,
                       batch_size: int = 256, transform=None) -> ShapeBias:
    """The model's argmax decisions on ``stimuli`` (optionally ``transform``-ed per batch), counted by
    :func:`shape_bias`. The model is put in eval mode."""
    model.eval()
    preds = []
    for i in range(0, len(stimuli), batch_size):
        x = stimuli[i:i + batch_size]
        preds.append(model(transform(x) if transform is not None else x).argmax(-1).cpu())
    return shape_bias(torch.cat(preds), shape_labels, texture_labels)
