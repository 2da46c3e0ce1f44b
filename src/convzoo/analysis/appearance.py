"""Appearance invariance and feature divergence: the analysis of IBN-Net Sec. 3.1 and Table 1.

Seed paper 37, "Two at Once: Enhancing Learning and Generalization Capacities via IBN-Net" (Pan, Luo,
Shi, Tang; ECCV 2018; arXiv 1807.09441). Its argument (Sec. 3.1): instance normalisation (IN) removes
per-image, per-channel statistics of a feature map, so features after an IN are invariant to appearance
changes (colour, brightness, contrast, style) that move those statistics; batch normalisation (BN), with
statistics fixed by the training domain, keeps them. Two measurements follow the paper:

1. **Feature divergence** (Sec. 3.1, Fig. 2): for one layer, take each channel's spatial mean per image
   (``F``), model its distribution over the images of domain A and of domain B as Gaussians
   N(mu_A, sigma_A^2), N(mu_B, sigma_B^2), and take the symmetric KL divergence
   ``D(F_A || F_B) = KL(F_A || F_B) + KL(F_B || F_A)`` with
   ``KL(F_A || F_B) = log(sigma_B / sigma_A) + (sigma_A^2 + (mu_A - mu_B)^2) / (2 sigma_B^2) - 1/2``,
   averaged over the layer's channels (:func:`feature_divergence`). Domain B is either the same images
   after an appearance change (the paper's appearance divergence) or other images (content divergence).
2. **Appearance transforms** (Table 1, ImageNet validation under "RGB+50", "R+50", "std x 1.5"; the
   Monet style needs a CycleGAN and is left out) plus torchvision.transforms.v2 brightness, contrast,
   gamma, hue and saturation changes (:data:`APPEARANCE_TRANSFORMS`), applied to RGB images in [0, 1]
   before the usual ImageNet normalisation. :func:`appearance_invariance` reports, for each transform
   and each stage of ``model.features``, the feature divergence between the images and their
   transformed versions and the mean cosine similarity of each image's feature map with its
   transformed version's. :func:`ibn_layer_divergence` compares, inside each IBN layer, the divergence of
   the instance-normalised channels with that of the batch-normalised ones (the paper's IN-vs-BN argument).

The paper measures trained networks. With random weights the statistics of every BatchNorm must come
from some "training domain": :func:`calibrate_batch_norm` sets them to the exact averages over given
images (the clean photos), after which BN acts as in a network trained on them, and what differs between
a ResNet and its IBN variant is where per-image normalisation happens. The exact property behind it all
(an IN'd channel is unchanged by a positive gain and any offset of its input channel) is what
:func:`instance_norm_invariance_gap` measures on a single norm layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["APPEARANCE_TRANSFORMS", "IMAGENET_MEAN", "IMAGENET_STD", "AppearanceReport", "appearance_invariance",
           "calibrate_batch_norm", "feature_divergence", "gaussian_kl", "ibn_layer_divergence",
           "instance_norm_invariance_gap",
           "stage_features"]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _std_scale(x: torch.Tensor, factor: float = 1.5) -> torch.Tensor:
    """Table 1 "std x 1.5": each image's and channel's deviation from its mean scaled by ``factor``."""
    mean = x.mean((-2, -1), keepdim=True)
    return (mean + factor * (x - mean)).clamp(0, 1)


def _red_shift(x: torch.Tensor, shift: float = 50 / 255) -> torch.Tensor:
    """Table 1 "R+50": 50 grey levels (of 255) added to the red channel."""
    return torch.cat((x[:, :1] + shift, x[:, 1:]), 1).clamp(0, 1)


# name -> transform of (N, 3, H, W) RGB in [0, 1]; the first three are the paper's Table 1 changes
APPEARANCE_TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "rgb+50": lambda x: (x + 50 / 255).clamp(0, 1),
    "r+50": _red_shift,
    "std*1.5": _std_scale,
    "brightness*0.6": lambda x: TF.adjust_brightness(x, 0.6),
    "contrast*0.5": lambda x: TF.adjust_contrast(x, 0.5),
    "gamma 1.8": lambda x: TF.adjust_gamma(x, 1.8),
    "hue+0.1": lambda x: TF.adjust_hue(x, 0.1),
    "saturation*0.3": lambda x: TF.adjust_saturation(x, 0.3),
}


# --- the paper's feature divergence (Sec. 3.1) ------------------------------------------------------------

def gaussian_kl(mu_a: torch.Tensor, var_a: torch.Tensor, mu_b: torch.Tensor, var_b: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_a, var_a) || N(mu_b, var_b)), element-wise."""
    return 0.5 * torch.log(var_b / var_a) + (var_a + (mu_a - mu_b) ** 2) / (2 * var_b) - 0.5


def feature_divergence(feats_a: torch.Tensor, feats_b: torch.Tensor, eps: float = 1e-8) -> float:
    """Symmetric KL divergence between domains A and B of one layer, averaged over its channels.

    ``feats_a`` (N_a, C, ...) and ``feats_b`` (N_b, C, ...): feature maps (or already per-image channel
    means (N, C)). Each channel's spatial mean per image is one sample of ``F``; mean and (unbiased)
    variance over the images of each domain; ``eps`` guards channels constant in a domain."""
    if feats_a.dim() < 2 or feats_b.dim() < 2 or feats_a.shape[1] != feats_b.shape[1]:
        raise ConvzooError(f"features must be (N, C, ...) with the same C, got {tuple(feats_a.shape)} and "
                           f"{tuple(feats_b.shape)}")
    if min(len(feats_a), len(feats_b)) < 2:
        raise ConvzooError("feature divergence needs at least 2 images per domain")
    fa, fb = (f.double().flatten(2).mean(2) if f.dim() > 2 else f.double() for f in (feats_a, feats_b))  # (N, C)
    mu_a, var_a, mu_b, var_b = fa.mean(0), fa.var(0) + eps, fb.mean(0), fb.var(0) + eps
    return float((gaussian_kl(mu_a, var_a, mu_b, var_b) + gaussian_kl(mu_b, var_b, mu_a, var_a)).mean())


# --- features of a backbone, BN statistics from a domain ----------------------------------------------------

def _normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ConvzooError(f"images must be RGB (N, 3, H, W) in [0, 1], got shape {tuple(images.shape)}")
    return TF.normalize(images, list(mean), list(std))


@torch.no_grad()
def stage_features(model: nn.Module, images: torch.Tensor, batch_size: int = 16, mean=IMAGENET_MEAN,
                   std=IMAGENET_STD) -> list[torch.Tensor]:
    """``model.features`` (one map per stage) of RGB ``images`` in [0, 1], normalised with mean/std, in eval
    mode, concatenated over batches of ``batch_size``: a list of (N, C_s, H_s, W_s)."""
    if not hasattr(model, "features"):
        raise ConvzooError(f"{type(model).__name__} has no multi-scale features(x) method")
    was_training = model.training
    model.eval()
    try:
        outs = [model.features(_normalise(chunk, mean, std)) for chunk in images.split(batch_size)]
    finally:
        model.train(was_training)
    return [torch.cat(stage) for stage in zip(*outs)]


@torch.no_grad()
def calibrate_batch_norm(model: nn.Module, images: torch.Tensor, batch_size: int = 16, mean=IMAGENET_MEAN,
                         std=IMAGENET_STD) -> nn.Module:
    """Set every BatchNorm's running statistics to the exact average over ``images`` (reset, then a
    cumulative average, PyTorch's ``momentum=None``, over train-mode forwards of batches of ``batch_size``):
    the BN of a network trained on those images. Weights are untouched; InstanceNorm keeps no statistics."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        for chunk in images.split(batch_size):
            model(_normalise(chunk, mean, std))
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.train(was_training)
    return model


# --- the analysis ---------------------------------------------------------------------------------------------

@dataclass
class AppearanceReport:
    """Per transform, per stage: feature divergence (paper Sec. 3.1) and mean cosine similarity."""

    divergence: dict[str, list[float]] = field(default_factory=dict)
    similarity: dict[str, list[float]] = field(default_factory=dict)

    def table(self) -> str:
        """A plain-text table: one row per transform, divergence / similarity per stage."""
        rows = []
        for name in self.divergence:
            cells = "  ".join(f"{d:8.3f} / {s:5.3f}" for d, s in zip(self.divergence[name], self.similarity[name]))
            rows.append(f"{name:>15}  {cells}")
        return "\n".join(rows)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(nn.functional.cosine_similarity(a.flatten(1).double(), b.flatten(1).double(), dim=1).mean())


@torch.no_grad()
def appearance_invariance(model: nn.Module, images: torch.Tensor,
                          transforms: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
                          batch_size: int = 16, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> AppearanceReport:
    """How much each appearance transform moves each stage's features of ``model`` (eval mode, its BN
    statistics as they are: trained, or set by :func:`calibrate_batch_norm`). ``images``: (N, 3, H, W) RGB
    in [0, 1], N >= 2; ``transforms``: name -> function of such a batch (default
    :data:`APPEARANCE_TRANSFORMS`). Lower divergence / higher similarity = more invariant."""
    transforms = APPEARANCE_TRANSFORMS if transforms is None else transforms
    clean = stage_features(model, images, batch_size, mean, std)
    report = AppearanceReport()
    for name, transform in transforms.items():
        moved = stage_features(model, transform(images), batch_size, mean, std)
        report.divergence[name] = [feature_divergence(a, b) for a, b in zip(clean, moved)]
        report.similarity[name] = [_cosine(a, b) for a, b in zip(clean, moved)]
    return report


@torch.no_grad()
def ibn_layer_divergence(model: nn.Module, images: torch.Tensor,
                         transforms: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
                         batch_size: int = 16, mean=IMAGENET_MEAN,
                         std=IMAGENET_STD) -> dict[str, list[tuple[str, float, float]]]:
    """The paper's IN-versus-BN comparison (Sec. 3.1) inside a network with IBN layers: for each transform and
    each :class:`~convzoo.layers.ibn.IBN` layer, the feature divergence between the images and their transformed
    versions over the layer's instance-normalised output channels and over its batch-normalised ones.
    Returns ``{transform: [(layer name, IN divergence, BN divergence), ...]}`` in module order."""
    from convzoo.layers.ibn import IBN

    layers = {name: m for name, m in model.named_modules() if isinstance(m, IBN)}
    if not layers:
        raise ConvzooError(f"{type(model).__name__} has no IBN layer")

    def outputs(imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        seen: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
        hooks = [m.register_forward_hook(lambda mod, args, out, n=n: seen[n].append(out)) for n, m in layers.items()]
        try:
            stage_features(model, imgs, batch_size, mean, std)
        finally:
            for h in hooks:
                h.remove()
        return {n: torch.cat(v) for n, v in seen.items()}

    transforms = APPEARANCE_TRANSFORMS if transforms is None else transforms
    clean, report = outputs(images), {}
    for tname, transform in transforms.items():
        moved = outputs(transform(images))
        rows = []
        for n, m in layers.items():
            a, b = clean[n], moved[n]  # the IN part is channels [:half] (official order) or [half:] (in_first=False)
            inst = slice(0, m.half) if m.in_first else slice(m.half, None)
            bat = slice(m.half, None) if m.in_first else slice(0, m.half)
            rows.append((n, feature_divergence(a[:, inst], b[:, inst]), feature_divergence(a[:, bat], b[:, bat])))
        report[tname] = rows
    return report


@torch.no_grad()
def instance_norm_invariance_gap(norm: nn.Module, x: torch.Tensor, gain: torch.Tensor,
                                 offset: torch.Tensor) -> torch.Tensor:
    """Per output channel, the largest change of ``norm(x)`` when its input is changed per image and channel
    by ``x -> gain * x + offset`` (gain > 0; (N, C, 1, 1) tensors): 0 (up to rounding and the eps of the
    variance) for instance-normalised channels, not for batch-normalised ones. ``norm`` is used as it is
    (call ``.eval()`` for fixed BN statistics). Returns (C,)."""
    if (gain <= 0).any():
        raise ConvzooError("the gain must be positive (a negative gain flips the normalised sign)")
    return (norm(gain * x + offset) - norm(x)).abs().amax((0, 2, 3)) if x.dim() == 4 else \
        (norm(gain * x + offset) - norm(x)).abs().flatten(2).amax((0, 2))


