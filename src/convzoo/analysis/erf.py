"""Effective receptive field (ERF): how much each input pixel moves the centre of a feature map.

The analysis behind the claim of seed paper 11 ("Scaling Up Your Kernels", arXiv 2410.08049, and its
preliminary RepLKNet, CVPR 2022, Sec. 5 / Appendix) that large kernels give large effective receptive
fields, after the definition of Luo et al. (NeurIPS 2016, "Understanding the Effective Receptive Field
in Deep CNNs"): the contribution of input pixel (i, j) is the gradient of the feature map's centre
response with respect to that pixel.

Procedure (as described in the RepLKNet paper; written here from that description):
1. for each image, take the chosen feature map F (B, C, h, w) (``model.features(x)[feature]``), the
   ReLU of its centre column summed over channels, and its gradient w.r.t. the input (B, c, H, W);
2. keep the positive part of the gradient, sum over channels and images -> a contribution map (H, W);
3. summarise the map by the *high-contribution area ratio* r(t): the area of the smallest square
   centred on the image that holds a fraction t of the total contribution, divided by the image area
   (the paper reports t = 20 %, 30 %, 50 %, 99 %; larger r = larger ERF).

The contribution is that of the model as given: call it on a trained model for the paper's figures,
or on a random one to compare architectures at initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["ERF", "area_ratio", "effective_receptive_field"]

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)


@dataclass
class ERF:
    """A contribution map and its high-contribution area ratios."""

    map: torch.Tensor  # (H, W), non-negative, summed over images
    area_ratio: dict[float, float] = field(default_factory=dict)  # t -> r(t)

    def log_map(self) -> torch.Tensor:
        """log10(1 + map / mean), the usual display scaling."""
        return torch.log10(1 + self.map / self.map.mean().clamp_min(1e-30))


def area_ratio(contribution: torch.Tensor, t: float) -> float:
    """Area (fraction of the image) of the smallest centred square holding a fraction ``t`` of the total."""
    if not 0 < t <= 1:
        raise ConvzooError(f"threshold must be in (0, 1], got {t}")
    h, w = contribution.shape
    total = float(contribution.sum())
    if total <= 0:
        raise ConvzooError("the contribution map is all zero: the centre response does not depend on the input")
    cy, cx = h // 2, w // 2
    for r in range(max(h, w)):  # square of side 2r + 1 around the centre, cut at the borders
        y0, y1, x0, x1 = max(0, cy - r), min(h, cy + r + 1), max(0, cx - r), min(w, cx + r + 1)
        if float(contribution[y0:y1, x0:x1].sum()) >= t * total * (1 - 1e-6):
            return (y1 - y0) * (x1 - x0) / (h * w)
    return 1.0


def effective_receptive_field(model: nn.Module, images: torch.Tensor, feature: int = -1,
                              thresholds=THRESHOLDS, batch_size: int = 8) -> ERF:
    """The ERF of ``model.features(x)[feature]`` (a backbone with the multi-scale ``features`` method) or,
    for a model without it, of ``model(x)`` when that is a (B, C, h, w) map, over ``images`` (N, c, H, W)."""
    if images.dim() != 4:
        raise ConvzooError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    total = torch.zeros(images.shape[-2:], dtype=torch.float64)
    try:
        for chunk in images.split(batch_size):
            x = chunk.detach().clone().requires_grad_(True)
            fmap = model.features(x)[feature] if hasattr(model, "features") else model(x)
            if fmap.dim() != 4:
                raise ConvzooError(f"the chosen output is not a (B, C, h, w) map: shape {tuple(fmap.shape)}")
            h, w = fmap.shape[-2:]
            centre = torch.relu(fmap[:, :, h // 2, w // 2]).sum()  # (B, C) -> scalar
            (grad,) = torch.autograd.grad(centre, x)  # (B, c, H, W)
            total += grad.clamp_min(0).sum((0, 1)).double()
    finally:
        model.train(was_training)
    return ERF(total, {t: area_ratio(total, t) for t in thresholds})
