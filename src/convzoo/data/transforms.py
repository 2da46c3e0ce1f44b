"""Shared image transforms for the image data sets (torchvision.transforms.v2).

Every image set stores its pixels as a ``(C, H, W)`` tensor (uint8 0..255, or float in [0, 1] for
the bundled digits) and builds one pipeline with :func:`build_transform`, in this order::

    channels (grey <-> RGB) -> resize -> augmentation (train only) -> float [0, 1] -> normalise

Normalisation constants are per-channel mean/std of the training pixels in [0, 1] (see ``NORMS``):
the digits' are computed here (and tested), the others are the sets' widely used statistics (the
CIFAR std is the population std over all pixels, not the often-copied 0.2023/0.1994/0.2010).
Converting a 3-channel set to grey uses ITU-R 601 luma weights (as ``v2.Grayscale``) and the same
weights on the constants (an approximation for the std); a grey set shown as RGB repeats its value.

Augmentation policies (``augment=True`` picks the set's default, a string picks one by name):

* ``"crop_flip"``: ``RandomCrop(size, padding=size // 8)`` + horizontal flip (CIFAR standard,
  padding 4 at 32 px);
* ``"resized_crop_flip"``: ``RandomResizedCrop(size)`` + horizontal flip (ImageFolder / ImageNet);
* ``"affine"``: small random affine, +-10 degrees and +-10 % shifts, no flip (digit-like sets,
  where a flip changes the class);
* ``"none"``;
* a list of torchvision.transforms.v2 steps, as a recipe writes the paper's augmentation, e.g.
  ``[{RandomResizedCrop: {size: 224, interpolation: bicubic}}, RandomHorizontalFlip,
  {RandAugment: {num_ops: 2, magnitude: 9}}, {RandomErasing: {p: 0.25}}]``: each entry is a class
  name of ``torchvision.transforms.v2`` (alone, or mapping to its keyword arguments; an
  ``interpolation`` may be given by name; a crop or resize without ``size`` takes the set's). They run in place of a policy, in the order given, on the
  uint8 image; the steps that need a float image (``RandomErasing``, as timm places it) run after
  normalisation. A list replaces the resize step's random part only: the resize to ``size`` (when the
  set has one) still comes first unless the list starts with a ``RandomResizedCrop``.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from convzoo.errors import ConvzooError

# name -> (mean, std), per channel, of the training pixels scaled to [0, 1]
NORMS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # scikit-learn digits: train split (1,077 images) at 8x8, pixel value / 16 (tested)
    "digits": ((0.3053,), (0.3760,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),  # the 60,000 training images (tests/data/test_fashion_mnist.py)
    "opencv_digits": ((0.1321,), (0.2903,)),  # OpenCV digits.png, train split (3,000 images; tested)
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
_LUMA = (0.299, 0.587, 0.114)
AUGMENTS = ("none", "affine", "crop_flip", "resized_crop_flip")


def norm_for(name: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of set ``name`` as seen with ``channels`` channels (1 or 3)."""
    if name not in NORMS:
        raise ConvzooError(f"unknown normalisation {name!r}; expected one of {', '.join(NORMS)}")
    mean, std = NORMS[name]
    if channels == len(mean):
        return mean, std
    if channels == 1:  # RGB set shown as grey
        return (sum(w * m for w, m in zip(_LUMA, mean)),), (sum(w * s for w, s in zip(_LUMA, std)),)
    return mean * channels, std * channels  # grey set shown as RGB


AFTER_NORMALISATION = ("RandomErasing",)


SIZED = ("RandomResizedCrop", "RandomCrop", "CenterCrop", "Resize")  # their size defaults to the set's


def _v2_step(dataset: str, spec, size: int | None = None) -> tuple[str, object]:
    """One list entry (``"Name"`` or ``{Name: {kwargs}}``) -> (name, a v2 transform)."""
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, dict) and len(spec) == 1:
        name, kwargs = next(iter(spec.items()))
        kwargs = dict(kwargs or {})
    else:
        raise ConvzooError(f"{dataset}: an augment step is a v2 class name or {{Name: {{kwargs}}}}, got {spec!r}")
    cls = getattr(v2, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, v2.Transform)):
        from convzoo.errors import suggest

        known = [n for n in dir(v2) if isinstance(getattr(v2, n), type) and issubclass(getattr(v2, n), v2.Transform)]
        close = suggest(str(name), known)
        raise ConvzooError(f"{dataset}: unknown augment step {name!r}" +
                           (f"; did you mean {', '.join(close)}?" if close else " (a torchvision.transforms.v2 class)"))
    if name in SIZED and "size" not in kwargs and size is not None:
        kwargs["size"] = size
    if isinstance(kwargs.get("interpolation"), str):
        kwargs["interpolation"] = v2.InterpolationMode(kwargs["interpolation"].lower())
    try:
        return name, cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConvzooError(f"{dataset}: augment step {name} rejects {kwargs}: {e}") from None


def resolve_augment(dataset: str, augment, default: str, size: int | None = None):
    """``True`` -> the set's default policy, ``False`` -> "none", a string -> that policy, a list ->
    the list of (name, v2 transform) steps (crops and resizes without a ``size`` take ``size``)."""
    if isinstance(augment, (list, tuple)):
        return [_v2_step(dataset, spec, size) for spec in augment]
    if augment is True:
        return default
    if augment is False or augment is None:
        return "none"
    if augment not in AUGMENTS:
        raise ConvzooError(f"{dataset}: unknown augment {augment!r}; expected true, false or one of {AUGMENTS}")
    return augment


def build_transform(*, in_chans: int, channels: int, size: int | None, native_size: tuple[int, int] | None,
                    augment: str, mean, std, raw: bool = False) -> v2.Compose:
    """The pipeline described in the module docstring.

    ``size=None`` keeps the native size; ``native_size=None`` (images of varying size) always resizes.
    ``raw=True`` stops before normalisation: items are floats in [0, 1] (pixel / 255, digits / 16).
    """
    steps: list = []
    if channels != in_chans:
        steps.append(v2.Grayscale(1) if channels == 1 else v2.RGB())
    if size is not None and (size, size) != native_size:
        steps.append(v2.Resize((size, size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True))
    out = size if size is not None else (native_size[0] if native_size else None)
    after: list = []
    if isinstance(augment, list):
        if augment and augment[0][0] == "RandomResizedCrop" and steps and isinstance(steps[-1], v2.Resize):
            steps.pop()  # the crop resizes
        steps += [t for name, t in augment if name not in AFTER_NORMALISATION]
        after = [t for name, t in augment if name in AFTER_NORMALISATION]
        augment = "list"
    if augment == "crop_flip":
        steps += [v2.RandomCrop(out, padding=max(1, out // 8)), v2.RandomHorizontalFlip()]
    elif augment == "resized_crop_flip":
        steps += [v2.RandomResizedCrop(out, antialias=True), v2.RandomHorizontalFlip()]
    elif augment == "affine":
        steps.append(v2.RandomAffine(degrees=10, translate=(0.1, 0.1)))
    steps.append(ToNormalizedFloat(None if raw else mean, None if raw else std))
    return v2.Compose(steps + after)


class ToNormalizedFloat:
    """Last step: uint8 -> float / 255 (float kept), then ``(x - mean) / std``, as a plain tensor.

    The same arithmetic as ``v2.ToDtype(float32, scale=True)``, ``v2.Normalize`` and
    ``v2.ToPureTensor`` in one step, which costs about a third of their per-image dispatch overhead.
    """

    def __init__(self, mean=None, std=None):
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.as_subclass(torch.Tensor)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.to(torch.float32, copy=True)  # never a view
        return x if self.mean is None else x.sub_(self.mean).div_(self.std)


def split_transform(dataset: str, split: str, *, in_chans: int, channels: int | None, size: int | None,
                    native_size: tuple[int, int] | None, norm: str, augment: bool | str, default_augment: str,
                    raw: bool) -> tuple[v2.Compose, int, dict]:
    """The transform of one split of a set, its channel count and the facts for ``DataInfo.extra``.

    ``channels=None`` keeps the set's own; augmentation applies to the train split only.
    """
    channels = channels or in_chans
    if channels not in (1, 3):
        raise ConvzooError(f"{dataset}: channels must be 1 or 3, got {channels!r}")
    policy = resolve_augment(dataset, augment, default_augment, size) if split == "train" else "none"
    mean, std = norm_for(norm, channels)
    tf = build_transform(in_chans=in_chans, channels=channels, size=size, native_size=native_size,
                         augment=policy, mean=mean, std=std, raw=raw)
    policy_name = [name for name, _ in policy] if isinstance(policy, list) else policy
    return tf, channels, {"mean": mean, "std": std, "raw": raw, "augment": policy_name}


class GroupedJitter:
    """Training-batch augmentation: a small random affine map and an elastic distortion (Simard, Steinkraus,
    Platt, ICDAR 2003: a random displacement field smoothed by a Gaussian of ``sigma`` px, scaled by
    ``alpha``), both torchvision.transforms.v2, then (optionally) a random permutation of each image's
    colour channels. Per-image elastic fields cost about 1.7 ms each on one CPU thread at 48 x 48, as much as
    a small network's step, so the batch is cut into groups of ``group`` images and each group gets one draw
    of the affine map and one displacement field: every image sees a new distortion every step.

    (B, C, H, W) float images -> the same shape; targets untouched (any task: labels, number sequences).
    """

    def __init__(self, degrees: float = 5.0, shear: float = 5.0, scale: float = 0.05, alpha: float = 20.0,
                 sigma: float = 3.0, group: int = 8, channel_permutation: bool = True):
        if group < 1 or alpha < 0 or sigma <= 0 or not 0 <= scale < 1:
            raise ConvzooError(f"jitter: need group >= 1, alpha >= 0, sigma > 0 and 0 <= scale < 1, got group "
                               f"{group!r}, alpha {alpha!r}, sigma {sigma!r}, scale {scale!r}")
        self.group, self.channel_permutation = int(group), bool(channel_permutation)
        self.affine = v2.RandomAffine(degrees=degrees, shear=(-shear, shear), scale=(1 - scale, 1 + scale))
        self.elastic = v2.ElasticTransform(alpha=alpha, sigma=sigma) if alpha > 0 else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for g in x.split(self.group):  # (<= group, C, H, W): one affine draw and one displacement field
            g = self.affine(g)
            parts.append(self.elastic(g) if self.elastic is not None else g)
        out = torch.cat(parts)
        if self.channel_permutation and out.shape[1] > 1:
            order = torch.argsort(torch.rand(out.shape[0], out.shape[1], device=out.device), dim=1)
            out = out.gather(1, order[:, :, None, None].expand_as(out))
        return out
