"""BigNAS: Scaling Up Neural Architecture Search with Big Single-Stage Models.

Seed paper 56; Yu, Jin, Liu, Bender, Kindermans, Tan, Huang, Song, Pang, Le; ECCV 2020; arXiv
2003.11142. No official code (Google released none); the closest public descendants are
facebookresearch/AttentiveNAS and AlphaNet (a MobileNetV3-style space with a different head, shortcut
and ranges) and the unofficial xfey/pytorch-BigNAS, whose supernet configuration reproduces the
paper's Table 1 and which was read for facts only.

Implemented here: the single-stage supernet over the paper's MobileNetV2-based space (Table 1),
every child a slice of one set of weights (Sec. 3, after slimmable networks):

- stem 3x3/2 conv-BN-swish (32-40 ch); seven MBConv stages (MobileNetV2 inverted residuals with
  squeeze-excitation and swish, as EfficientNet: 1x1 expand-BN-swish -> k x k depth-wise-BN-swish ->
  SE (reduce to ``int(0.25 * block input)`` with swish, sigmoid gate) -> 1x1 project-BN; MBConv1 has no
  expansion conv); the first block of a stage carries the stride and changes the width, the others keep
  it and add the identity; a 1x1 conv-BN-swish head (1280-1408 ch), global average pool, dropout and
  the classifier.
- elastic dimensions: input resolution, stem / per-stage / head width (the first ``c`` filters), depth
  per stage (the first ``d`` blocks), kernel size per stage (the centre ``k x k`` of the largest
  kernel, :func:`convzoo.layers.elastic.centre_crop_kernel`) and expansion ratio per stage (the first
  ``e * c_in`` hidden channels). A :class:`ChildConfig` names one child; :meth:`BigNASSupernet.set_active`
  selects it, :meth:`~BigNASSupernet.extract` copies it into a static network of plain ``torch.nn``
  layers (:class:`BigNASChild`, foldable by ``convzoo.deploy``).
- initialisation (Sec. 3.1 "initialization"): the last BN of every residual block starts with
  gamma = 0, so each residual block starts as the identity; convs Kaiming-normal (fan-out) as EfficientNet.
- regularisation only on the largest child (Sec. 3.1 "regularization"): the dropout before the
  classifier acts only while ``regularize`` is true (the ``bignas`` method sets it for the largest child).
- BN running statistics: ``track_bn(False)`` makes every BN normalise with batch statistics without
  updating its running ones (the ``bignas`` method tracks only the largest child's, and calibrates the
  other children after training, Sec. 3.1 "batch norm calibration", :mod:`convzoo.nas.bignas`).

Input resolution is a property of the child, not of the network: the network is fully convolutional,
and whoever feeds a child (the ``bignas`` method, the NAS tools) resizes the batch to ``cfg.resolution``
(:func:`resize_to`).

Search spaces (``SPACES``): ``paper`` is Table 1 as both public re-implementations list it
(xfey/pytorch-BigNAS ``configs/train.yaml`` and open-mmlab/mmrazor's ``BigNASMobileNet`` arch setting with
its v0 BigNAS config): kernel 3 in the first two MBConv stages and {3, 5} after, expansion 1 then 6
(fixed), widths in steps of 8, depths as below, resolutions {192, 224, 288, 320}. The fact sheet
remembered kernels {3, 5, 7}, expansions {4, 5, 6} and resolutions 192-320 in steps of 32 (with 256);
{3, 5, 7} x {4, 5, 6} are Once-for-All's / AttentiveNAS's ranges, and with the space here the smallest
child has 207 MMACs (the abstract: children "from 200 to 1000 MFLOPs") and all four BigNASModels' counts
are reachable (see ``NAMED_CHILDREN``). :data:`SPACES` is data, so either reading can be built.
``digits`` is a narrowed space for 8x8 digits upsampled to 16-32 px (4 stages, stride 8 in all, elastic
expansion {3, 6}); a recipe may give its own space as a mapping (``model.kwargs.space``).

Named children (``bignas_s/m/l/xl``): the paper reports the four BigNASModels' MACs and parameters
(Table 2: 242M / 4.5M, 418M / 5.5M, 586M / 6.4M, 1040M / 9.5M) but not their configurations. The
configurations in ``NAMED_CHILDREN`` are ours, chosen inside the paper's space to match both counts
within the paper's rounding; they are not the paper's architectures and carry random weights.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops import StochasticDepth, stochastic_depth

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import check_drop_rate
from convzoo.layers.elastic import ElasticBatchNorm2d, ElasticConv2d, ElasticLinear
from convzoo.layers.head import Backbone, SelectAdaptivePool, check_pool
from convzoo.registry import ModelCard, register_model

__all__ = [
    "NAMED_CHILDREN",
    "SPACES",
    "BigNASChild",
    "BigNASSupernet",
    "ChildConfig",
    "SearchSpace",
    "StageSpace",
    "count_child",
    "resize_to",
]


# --- the search space (Table 1) -----------------------------------------------------------------------
@dataclass(frozen=True)
class StageSpace:
    """One MBConv stage: choices of width, depth, kernel and expansion; the first block's stride."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    stride: int


@dataclass(frozen=True)
class SearchSpace:
    resolutions: tuple[int, ...]
    stem: tuple[int, ...]  # stem widths
    stages: tuple[StageSpace, ...]
    head: tuple[int, ...]  # widths of the 1x1 head conv
    stem_stride: int = 2
    se_ratio: float = 0.25  # SE width = int(se_ratio * block input width), as EfficientNet


def as_space(space: SearchSpace | str | dict) -> SearchSpace:
    """A space from a name in :data:`SPACES`, a mapping (as in a recipe's ``model.kwargs.space``) or itself."""
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, str):
        if space not in SPACES:
            raise ConvzooError(f"unknown BigNAS search space '{space}'; spaces are {sorted(SPACES)}")
        return SPACES[space]
    try:
        d = dict(space)
        stages = tuple(StageSpace(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in st.items()})
                       for st in d.pop("stages"))
        return SearchSpace(stages=stages, **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise ConvzooError(f"a BigNAS search space mapping needs resolutions, stem, stages (widths, depths, "
                           f"kernels, expands, stride) and head: {e}") from None


def _steps(lo: int, hi: int, step: int = 8) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1, step))


SPACES: dict[str, SearchSpace] = {
    "paper": SearchSpace(  # Table 1 (MobileNetV2-based, SE + swish)
        resolutions=(192, 224, 288, 320),
        stem=_steps(32, 40),
        stages=(
            StageSpace(_steps(16, 24), (1, 2), (3,), (1,), 1),  # MBConv1
            StageSpace(_steps(24, 32), (2, 3), (3,), (6,), 2),  # MBConv6 ...
            StageSpace(_steps(40, 48), (2, 3), (3, 5), (6,), 2),
            StageSpace(_steps(80, 88), (2, 3, 4), (3, 5), (6,), 2),
            StageSpace(_steps(112, 128), (2, 3, 4, 5, 6), (3, 5), (6,), 1),
            StageSpace(_steps(192, 216), (2, 3, 4, 5, 6), (3, 5), (6,), 2),
            StageSpace(_steps(320, 352), (1, 2), (3, 5), (6,), 1),
        ),
        head=_steps(1280, 1408),
    ),
    "digits": SearchSpace(  # CPU scale: 8x8 digits upsampled to 16-32 px
        resolutions=(16, 24, 32),
        stem=(8, 12),
        stages=(
            StageSpace((8,), (1,), (3,), (1,), 1),
            StageSpace((12, 16), (1, 2), (3, 5), (3, 6), 2),
            StageSpace((16, 24), (1, 2), (3, 5), (3, 6), 2),
            StageSpace((24, 32), (1, 2), (3, 5), (3, 6), 1),
        ),
        head=(48, 64),
    ),
}


@dataclass(frozen=True)
class ChildConfig:
    """One child: input resolution, stem width, per-stage width/depth/kernel/expansion, head width."""

    resolution: int
    stem: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    head: int

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> ChildConfig:
        return cls(**{k: tuple(v) if isinstance(v, (list, tuple)) else int(v) for k, v in d.items()})


def _pick(space: SearchSpace, choose) -> ChildConfig:
    """A child whose every dimension is ``choose(choices)``."""
    st = space.stages
    return ChildConfig(choose(space.resolutions), choose(space.stem), tuple(choose(s.widths) for s in st),
                       tuple(choose(s.depths) for s in st), tuple(choose(s.kernels) for s in st),
                       tuple(choose(s.expands) for s in st), choose(space.head))


def check_config(space: SearchSpace, cfg: ChildConfig) -> None:
    """A one-line error unless every choice of ``cfg`` is in ``space``."""
    n = len(space.stages)
    if not all(len(t) == n for t in (cfg.widths, cfg.depths, cfg.kernels, cfg.expands)):
        raise ConvzooError(f"a child of this space needs {n} per-stage widths/depths/kernels/expands, got {cfg}")
    pairs = [("resolution", cfg.resolution, space.resolutions), ("stem", cfg.stem, space.stem),
             ("head", cfg.head, space.head)]
    for i, s in enumerate(space.stages):
        pairs += [(f"widths[{i}]", cfg.widths[i], s.widths), (f"depths[{i}]", cfg.depths[i], s.depths),
                  (f"kernels[{i}]", cfg.kernels[i], s.kernels), (f"expands[{i}]", cfg.expands[i], s.expands)]
    for name, value, choices in pairs:
        if value not in choices:
            raise ConvzooError(f"child {name}={value} is not in the search space's choices {choices}")


def resize_to(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """A batch (B, C, H, W) resized to resolution x resolution (bilinear, antialiased when shrinking)."""
    if x.shape[-2:] == (resolution, resolution):
        return x
    shrink = resolution < min(x.shape[-2:])
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=shrink)


def count_child(cfg: ChildConfig, space: SearchSpace, num_classes: int = 1000, in_chans: int = 3) -> tuple[int, int]:
    """(parameters, MACs at cfg.resolution) of a child, in closed form (convs + classifier; BN affine
    parameters counted, BN statistics not; MACs of convs and the classifier only, as FlopCounterMode)."""
    r = (cfg.resolution - 1) // space.stem_stride + 1
    params = in_chans * cfg.stem * 9 + 2 * cfg.stem
    macs = r * r * in_chans * cfg.stem * 9
    cin = cfg.stem
    for s, w, d, k, e in zip(space.stages, cfg.widths, cfg.depths, cfg.kernels, cfg.expands):
        for i in range(d):
            stride = s.stride if i == 0 else 1
            hid, se = cin * e, max(1, int(cin * space.se_ratio))
            r_out = (r - 1) // stride + 1
            if e != 1:
                params += cin * hid + 2 * hid
                macs += r * r * cin * hid
            params += hid * k * k + 2 * hid + (hid * se + se) + (se * hid + hid) + hid * w + 2 * w
            macs += r_out * r_out * (hid * k * k + hid * w) + 2 * hid * se
            cin, r = w, r_out
    params += cin * cfg.head + 2 * cfg.head + (cfg.head * num_classes + num_classes if num_classes else 0)
    macs += r * r * cin * cfg.head + cfg.head * num_classes
    return params, macs


# --- the elastic MBConv block -----------------------------------------------------------------------
class SqueezeExcite(nn.Module):
    """EfficientNet's SE: mean -> 1x1 conv (bias) -> swish -> 1x1 conv (bias) -> sigmoid -> scale."""

    def __init__(self, conv_reduce: nn.Conv2d, conv_expand: nn.Conv2d):
        super().__init__()
        self.conv_reduce, self.conv_expand = conv_reduce, conv_expand

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> gate (B, C, 1, 1) -> (B, C, H, W)
        return x * torch.sigmoid(self.conv_expand(F.silu(self.conv_reduce(x.mean((2, 3), keepdim=True)))))


class ElasticMBConv(nn.Module):
    """Inverted residual with SE at its largest size; ``out_channels``, ``kernel_size`` and
    ``expand_ratio`` (set by :meth:`BigNASSupernet.set_active`) pick the child's slice."""

    def __init__(self, in_max: int, out_max: int, kernel_max: int, expand_max: int, stride: int,
                 residual: bool, se_ratio: float):
        super().__init__()
        hid, se = in_max * expand_max, max(1, int(in_max * se_ratio))
        self.stride, self.residual, self.se_ratio = stride, residual, se_ratio
        self.out_channels, self.kernel_size, self.expand_ratio = out_max, kernel_max, expand_max
        if expand_max > 1:
            self.expand_conv, self.expand_bn = ElasticConv2d(in_max, hid, 1), ElasticBatchNorm2d(hid)
        self.dw_conv, self.dw_bn = ElasticConv2d(hid, hid, kernel_max, stride, depthwise=True), ElasticBatchNorm2d(hid)
        self.se_reduce, self.se_expand = ElasticConv2d(hid, se, 1, bias=True), ElasticConv2d(se, hid, 1, bias=True)
        self.project_conv, self.project_bn = ElasticConv2d(hid, out_max, 1), ElasticBatchNorm2d(out_max)
        if residual:  # Sec. 3.1 "initialization": the residual branch starts at zero
            nn.init.zeros_(self.project_bn.weight)

    def forward(self, x: torch.Tensor, drop_path: float = 0.0) -> torch.Tensor:
        # x: (B, cin, H, W) -> (B, out, H / stride, W / stride); drop_path: this block's stochastic-depth rate
        cin = x.shape[1]
        hid = cin * self.expand_ratio
        h = F.silu(self.expand_bn(self.expand_conv(x, hid))) if self.expand_ratio > 1 else x
        h = F.silu(self.dw_bn(self.dw_conv(h, hid, self.kernel_size)))
        s = F.silu(self.se_reduce(h.mean((2, 3), keepdim=True), max(1, int(cin * self.se_ratio))))
        h = h * torch.sigmoid(self.se_expand(s, hid))
        h = self.project_bn(self.project_conv(h, self.out_channels))
        if self.residual and drop_path > 0:
            h = stochastic_depth(h, drop_path, "row", self.training)
        return x + h if self.residual else h

    def to_static(self, cin: int, drop_path: float = 0.0) -> StaticMBConv:
        """This block at its active size, for input width ``cin``, as plain layers with the sliced weights."""
        hid, se, k, out = cin * self.expand_ratio, max(1, int(cin * self.se_ratio)), self.kernel_size, self.out_channels
        expand = (nn.Sequential(self.expand_conv.to_static(cin, hid, 1), self.expand_bn.to_static(hid), nn.SiLU())
                  if self.expand_ratio > 1 else None)
        dw = nn.Sequential(self.dw_conv.to_static(hid, hid, k), self.dw_bn.to_static(hid), nn.SiLU())
        se_mod = SqueezeExcite(self.se_reduce.to_static(hid, se, 1), self.se_expand.to_static(se, hid, 1))
        project = nn.Sequential(self.project_conv.to_static(hid, out, 1), self.project_bn.to_static(out))
        return StaticMBConv(expand, dw, se_mod, project, self.residual, drop_path)


class StaticMBConv(nn.Module):
    """One MBConv block of fixed size (conv-BN pairs in ``nn.Sequential``, so ``convzoo.deploy`` folds them);
    ``drop_path``: per-sample stochastic depth on the residual branch (EfficientNet's drop connect)."""

    def __init__(self, expand: nn.Module | None, dw: nn.Module, se: nn.Module, project: nn.Module, residual: bool,
                 drop_path: float = 0.0):
        super().__init__()
        self.expand, self.dw, self.se, self.project, self.residual = expand, dw, se, project, residual
        self.drop_path = StochasticDepth(drop_path, "row") if residual and drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.project(self.se(self.dw(h)))
        return x + self.drop_path(h) if self.residual else h


def _drop_path_rates(rate: float, n: int) -> list[float]:
    """EfficientNet's drop-connect rule (TF ``efficientnet_model.py``, timm ``_efficientnet_builder``):
    block i of n gets ``rate * i / n``, linear per block from 0."""
    return [rate * i / n for i in range(n)]


def _stage_levels(space: SearchSpace) -> list[int]:
    """Indices of the stages whose output is a feature level: the last stage at each resolution."""
    st = space.stages
    return [i for i in range(len(st)) if i == len(st) - 1 or st[i + 1].stride > 1]


def _global_pool(pool: str | None, elastic: bool = False) -> SelectAdaptivePool:
    pool = check_pool(pool)
    if elastic and pool == "catavgmax":
        raise ConvzooError("global_pool 'catavgmax' doubles the pooled width, which the supernet's elastic "
                           "classifier cannot slice; use 'avg', 'max', 'avgmax' or '' (children take it)")
    return SelectAdaptivePool(pool)


def _classify(fc: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """``fc`` on (B, C), or at every position of an unpooled (B, C, *spatial) map (global_pool "")."""
    if fc is None:
        return x
    return fc(x) if x.dim() == 2 else fc(x.movedim(1, -1)).movedim(-1, 1)


# --- the supernet -------------------------------------------------------------------------------------
class BigNASSupernet(nn.Module):
    """The single-stage model over ``space`` (a :class:`SearchSpace`, a name in :data:`SPACES` or a mapping)."""

    def __init__(self, space: SearchSpace | str | dict = "paper", num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        space = as_space(space)
        check_drop_rate(drop_rate, "drop_rate")
        self.drop_path_rate = check_drop_rate(drop_path_rate)
        self.global_pool = _global_pool(global_pool, elastic=True)
        self.grad_checkpointing = False
        for s in space.stages:
            if 1 in s.expands and max(s.expands) > 1:
                raise ConvzooError("a stage's expansion choices are either all 1 (MBConv1) or all > 1")
        self.space, self.in_chans, self.num_classes, self.drop_rate = space, in_chans, num_classes, drop_rate
        self.regularize = True  # dropout acts in training while true (the largest child's pass)
        self.stem_conv = ElasticConv2d(in_chans, max(space.stem), 3, space.stem_stride)
        self.stem_bn = ElasticBatchNorm2d(max(space.stem))
        self.stages = nn.ModuleList()
        cin = max(space.stem)
        for s in space.stages:
            blocks = nn.ModuleList()
            for i in range(max(s.depths)):
                blocks.append(ElasticMBConv(cin, max(s.widths), max(s.kernels), max(s.expands),
                                            s.stride if i == 0 else 1, residual=i > 0, se_ratio=space.se_ratio))
                cin = max(s.widths)
            self.stages.append(blocks)
        self.head_conv, self.head_bn = ElasticConv2d(cin, max(space.head), 1), ElasticBatchNorm2d(max(space.head))
        self.classifier = ElasticLinear(max(space.head), num_classes) if num_classes else None
        self.set_active(self.largest())

    # --- children --------------------------------------------------------------------------------
    def largest(self) -> ChildConfig:
        return _pick(self.space, max)

    def smallest(self) -> ChildConfig:
        return _pick(self.space, min)

    def sample_child(self, rng: random.Random) -> ChildConfig:
        """A child with every dimension drawn uniformly from its choices."""
        return _pick(self.space, rng.choice)

    def set_active(self, cfg: ChildConfig) -> BigNASSupernet:
        """Run as the child ``cfg`` from now on (the resolution is the caller's: see :func:`resize_to`)."""
        check_config(self.space, cfg)
        self.active = cfg
        for blocks, w, k, e in zip(self.stages, cfg.widths, cfg.kernels, cfg.expands):
            for b in blocks:
                b.out_channels, b.kernel_size, b.expand_ratio = w, k, e
        return self

    def track_bn(self, track: bool) -> None:
        """Whether training-mode passes update the BN running statistics (see the module docstring)."""
        for m in self.modules():
            if isinstance(m, ElasticBatchNorm2d):
                m.track = track

    @property
    def num_features(self) -> int:
        return self.active.head

    @property
    def feature_info(self) -> list[dict]:
        """The active child's feature levels: the output of the last stage at each resolution."""
        reduction, out = self.space.stem_stride, []
        for i, s in enumerate(self.space.stages):
            reduction *= s.stride
            if i in _stage_levels(self.space):
                out.append({"num_chs": self.active.widths[i], "reduction": reduction, "module": f"stages.{i}"})
        return out

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute every active block in the backward pass while training (timm's switch)."""
        self.grad_checkpointing = enable

    # --- forward ---------------------------------------------------------------------------------
    def _blocks(self, x: torch.Tensor, stop: int | None = None):
        """Run the stem and the active blocks; yield (stage index, output) after each stage."""
        cfg = self.active
        x = F.silu(self.stem_bn(self.stem_conv(x, cfg.stem)))
        rates = iter(_drop_path_rates(self.drop_path_rate if self.regularize else 0.0, sum(cfg.depths)))
        for i, (blocks, d) in enumerate(zip(self.stages[:stop], cfg.depths)):
            for b in blocks[:d]:
                p = next(rates)
                if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                    x = checkpoint(b, x, p, use_reentrant=False)
                else:
                    x = b(x, p)
            yield i, x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_chans, H, W) -> (B, head, H / 32, W / 32) for the paper's space
        y = x
        for _, y in self._blocks(x):
            pass
        return F.silu(self.head_bn(self.head_conv(y, self.active.head)))

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """The active child's maps at ``feature_info`` (the first ``stop`` levels when given)."""
        levels = _stage_levels(self.space)[:stop]
        return [y for i, y in self._blocks(x, levels[-1] + 1) if i in levels]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)  # (B, head); unpooled with global_pool ""
        if self.drop_rate > 0 and self.regularize:
            x = F.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else _classify(self.classifier, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module | None:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool = _global_pool(global_pool, elastic=True)
        self.num_classes = num_classes
        self.classifier = ElasticLinear(max(self.space.head), num_classes) if num_classes else None

    # --- a static child -------------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, cfg: ChildConfig | None = None) -> BigNASChild:
        """The child ``cfg`` (default: the active one) as a static network with the sliced weights copied
        (its drop rates, pool and feature levels included)."""
        cfg = cfg or self.active
        previous = self.active
        self.set_active(cfg)
        stem = nn.Sequential(self.stem_conv.to_static(self.in_chans, cfg.stem, 3), self.stem_bn.to_static(cfg.stem),
                             nn.SiLU())
        blocks, cin, feature_info = [], cfg.stem, []
        rates = iter(_drop_path_rates(self.drop_path_rate, sum(cfg.depths)))
        for i, (stage, d) in enumerate(zip(self.stages, cfg.depths)):
            for b in stage[:d]:
                blocks.append(b.to_static(cin, next(rates)))
                cin = b.out_channels
            if i in _stage_levels(self.space):
                info = next(f for f in self.feature_info if f["module"] == f"stages.{i}")
                feature_info.append({**info, "module": f"blocks.{len(blocks) - 1}"})
        head = nn.Sequential(self.head_conv.to_static(cin, cfg.head, 1), self.head_bn.to_static(cfg.head), nn.SiLU())
        fc = self.classifier.to_static(cfg.head) if self.classifier is not None else None
        self.set_active(previous)
        return BigNASChild(cfg, stem, nn.Sequential(*blocks), head, fc, self.drop_rate, feature_info,
                           self.global_pool.pool_type)


class BigNASChild(Backbone):
    """A static child: stem, MBConv blocks, head, pool, dropout, classifier (timm-style interface).
    ``config`` is its :class:`ChildConfig`; feed it images of ``config.resolution`` pixels. ``feature_info``
    lists the last block at each resolution (strides 2 to 32 in the paper's space), as timm's EfficientNet."""

    def __init__(self, config: ChildConfig, stem: nn.Module, blocks: nn.Sequential, head: nn.Module,
                 classifier: nn.Linear | None, drop_rate: float = 0.0, feature_info: list[dict] | None = None,
                 global_pool: str = "avg"):
        super().__init__()
        self.config, self.drop_rate = config, drop_rate
        self.stem, self.blocks, self.head, self.classifier = stem, blocks, head, classifier
        self.num_features = config.head
        self.num_classes = classifier.out_features if classifier is not None else 0
        self.feature_info = list(feature_info or [])
        self._ends = [int(f["module"].split(".")[1]) for f in self.feature_info]
        self.global_pool = _global_pool(global_pool)
        if classifier is not None and self.global_pool.feat_mult() != 1:  # catavgmax: a classifier of 2x width
            self.reset_classifier(self.num_classes)

    def _block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = self._block(block, x)
        return self.head(x)

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """The output of the last block at each resolution (``feature_info``; the first ``stop`` only)."""
        ends = self._ends[:stop]
        x, out = self.stem(x), []
        for j, block in enumerate(self.blocks[:ends[-1] + 1]):
            x = self._block(block, x)
            if j in ends:
                out.append(x)
        return out

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute every MBConv block in the backward pass while training (timm's switch)."""
        self.grad_checkpointing = enable

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.dropout(self.global_pool(x), self.drop_rate, self.training)
        return x if pre_logits else _classify(self.classifier, x)

    def get_classifier(self) -> nn.Module | None:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool = _global_pool(global_pool)
        self.num_classes = num_classes
        width = self.num_features * self.global_pool.feat_mult()
        self.classifier = nn.Linear(width, num_classes) if num_classes else None


# --- variants -----------------------------------------------------------------------------------------
# Configurations chosen by us inside the paper's space so that parameters and MACs match the paper's
# Table 2 within its rounding (the paper gives counts, not configurations); see the module docstring.
NAMED_CHILDREN: dict[str, ChildConfig] = {
    "bignas_s": ChildConfig(192, 32, (16, 24, 48, 80, 112, 200, 320), (1, 2, 2, 2, 2, 3, 1), (3, 3, 5, 5, 3, 3, 3),
                            (1, 6, 6, 6, 6, 6, 6), 1280),
    "bignas_m": ChildConfig(224, 32, (16, 24, 48, 80, 112, 192, 344), (1, 2, 2, 3, 4, 4, 1), (3, 3, 3, 3, 3, 3, 3),
                            (1, 6, 6, 6, 6, 6, 6), 1304),
    "bignas_l": ChildConfig(224, 40, (24, 32, 48, 88, 128, 192, 320), (1, 3, 2, 2, 4, 5, 1), (3, 3, 5, 3, 3, 3, 5),
                            (1, 6, 6, 6, 6, 6, 6), 1408),
    "bignas_xl": ChildConfig(288, 40, (16, 32, 48, 88, 120, 216, 336), (2, 2, 3, 2, 3, 6, 2), (3, 3, 5, 5, 5, 5, 5),
                             (1, 6, 6, 6, 6, 6, 6), 1400),
}
# Table 2 of the paper: (params, MACs, ImageNet top-1 %) of BigNASModel-S/M/L/XL
PAPER_COUNTS = {"bignas_s": (4.5e6, 242e6, 76.5), "bignas_m": (5.5e6, 418e6, 78.9),
                "bignas_l": (6.4e6, 586e6, 79.5), "bignas_xl": (9.5e6, 1040e6, 80.9)}

_SRC = "BigNAS (arXiv 2003.11142) Sec. 3.1 and Table 1 (MobileNetV2-based space, SE + swish)"
_CAPS = frozenset({"compile", "onnx", "features"})


def _supernet_card() -> ModelCard:
    space = SPACES["paper"]
    params, macs = count_child(_pick(space, max), space)
    return ModelCard(
        name="bignas_supernet", paper=56, family="bignas", task="classification", input_size=(320, 320),
        test_size=(64, 64), params=params,
        params_source="the largest child of Table 1's space: closed form written from Table 1, "
                      "tests/models/test_bignas.py::test_table1_smallest_and_largest_children (the paper reports "
                      "no supernet count)",
        macs=macs, macs_rtol=0.0,
        macs_source="the largest child at 320 px, convs + linear: closed form written from Table 1, "
                    "tests/models/test_bignas.py::test_table1_smallest_and_largest_children",
        capabilities=_CAPS, recipes=("bignas_digits", "bignas_imagenet_paper"), source=_SRC,
        notes="the full supernet = its largest child; feed children images of cfg.resolution (resize_to)",
    )


@register_model(_supernet_card())
def bignas_supernet(**kwargs) -> BigNASSupernet:
    return BigNASSupernet(**kwargs)


def _child_card(name: str) -> ModelCard:
    params, macs, top1 = PAPER_COUNTS[name]
    res = NAMED_CHILDREN[name].resolution
    return ModelCard(
        name=name, paper=56, family="bignas", task="classification", input_size=(res, res), test_size=(64, 64),
        params=int(params), params_rtol=0.05e6 / params,
        params_source=f"BigNASModel-{name.split('_')[1].upper()}, paper Table 2 ({params / 1e6:.1f}M, rounded to 0.1M)",
        macs=int(macs), macs_rtol=0.5e6 / macs,
        macs_source=f"paper Table 2 ({macs / 1e6:.0f} MFLOPs = multiply-adds, at {res} px, rounded to 1M)",
        capabilities=frozenset({"onnx", "features"}), source=_SRC,
        notes=(f"ImageNet top-1 {top1}% in the paper; configuration chosen by convzoo inside Table 1's space to "
               "match the paper's counts (the paper does not list it); random weights"),
    )


def _named(name: str, **kwargs) -> BigNASChild:
    known = ("num_classes", "in_chans", "drop_rate", "drop_path_rate", "global_pool")
    kw = {k: kwargs.pop(k) for k in known if k in kwargs}
    if kwargs:
        raise ConvzooError(f"{name} takes {', '.join(known)}; got {', '.join(sorted(kwargs))}")
    pool = kw.pop("global_pool", "avg")
    child = BigNASSupernet("paper", **kw).extract(NAMED_CHILDREN[name])
    if check_pool(pool) == "catavgmax":  # the supernet's elastic classifier cannot be sliced for it: a new one
        child.reset_classifier(child.num_classes, pool)
    else:
        child.global_pool = _global_pool(pool)
    return child


@register_model(_child_card("bignas_s"))
def bignas_s(**kwargs) -> BigNASChild:
    return _named("bignas_s", **kwargs)


@register_model(_child_card("bignas_m"))
def bignas_m(**kwargs) -> BigNASChild:
    return _named("bignas_m", **kwargs)


@register_model(_child_card("bignas_l"))
def bignas_l(**kwargs) -> BigNASChild:
    return _named("bignas_l", **kwargs)


@register_model(_child_card("bignas_xl"))
def bignas_xl(**kwargs) -> BigNASChild:
    return _named("bignas_xl", **kwargs)
