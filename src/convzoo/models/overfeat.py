"""OverFeat, the network behind "CNN Features off-the-shelf: an Astounding Baseline for Recognition".

Seed paper 7; Razavian, Azizpour, Sullivan, Carlsson; CVPR 2014 DeepVision workshop; arXiv 1403.6382. The
paper takes the public OverFeat release (Sermanet et al., "OverFeat: Integrated Recognition, Localization and
Detection using Convolutional Networks", arXiv 1312.6229, Sec. 3 Tables 1 and 3) and reads the first
fully-connected layer after its ReLU (4,096-d, "layer 22" of the big net in the release's numbering). The
frozen-feature pipeline of the paper, for any registered model, is :mod:`convzoo.analysis.offtheshelf`.

Implemented here (layer stacks of the OverFeat release as the third-party Torch7 port jhjin/overfeat-torch
``run.lua`` builds them):

- ``overfeat_fast`` (the "small" net, 231 px): conv 11x11/4 -> 96, max-pool 2/2; conv 5x5 -> 256, max-pool 2/2;
  three 3x3 convs (pad 1) -> 512, 1024, 1024, max-pool 2/2; fc6 = conv 6x6 -> 3,072; fc7 = 1x1 -> 4,096;
  fc8 = 1x1 -> classes. Maps 56 -> 28 -> 24 -> 12 -> 12 -> 6 -> 1. 145,920,872 parameters, 2.80 GMACs.
- ``overfeat_accurate`` (the "big" net, 221 px): conv 7x7/2 -> 96, max-pool 3/3; conv 7x7 -> 256, max-pool 2/2;
  four 3x3 convs (pad 1) -> 512, 512, 1024, 1024, max-pool 3/3; fc7 = conv 5x5 -> 4,096; fc8 = 1x1 -> 4,096;
  fc9 = 1x1 -> classes. Maps 108 -> 36 -> 30 -> 15 -> 15 -> 5 -> 1. 144,656,488 parameters, 5.36 GMACs.
- Every conv and fc is followed by ReLU; dropout (``drop_rate``, OverFeat paper Sec. 3: 0.5) after the ReLUs
  of the two hidden fc layers. The fc layers are convolutions, so a larger input gives a dense map of windows
  (OverFeat's sliding window): a stride of 32 px (fast) or 36 px (accurate) between windows, e.g. 2x2 at
  263 px for the fast net; ``global_pool=""`` keeps the per-window class scores, the default "avg" averages
  them (the classifier is linear, so this equals the scores of the averaged fc features).
- Layer names follow the OverFeat paper's numbering so the paper's feature layer is addressable by name:
  ``pre_logits.act6`` (fast) / ``pre_logits.act7`` (accurate) is the first fully-connected layer after ReLU;
  :data:`FEATURE_LAYER` and the model's ``offtheshelf_layer`` attribute name it, and
  :class:`~convzoo.analysis.offtheshelf.OffTheShelfFeatures` uses it by default.

Departures from the release and the port, and why:
- The port's activation is ``nn.Threshold(0, 1e-6)`` (non-positive values become 1e-6 instead of 0); here it
  is ``nn.ReLU`` (a difference of 1e-6 per unit that only matters for bit-exact comparison with the port).
- The last fc (the classifier) is ``head.fc``, an ``nn.Linear`` after the global pool (the Backbone contract
  of the other families); applied at every window with ``global_pool=""`` it equals the release's 1x1 conv.
- No weights: the release's ``net_weight_0`` / ``net_weight_1`` are served by an NYU server, not by a hub or
  a package, so the models start from random weights (Kaiming-normal convs, zero biases). The release's
  preprocessing is on the cards: pixels in [0, 255] minus 118.380948, divided by 61.896913 (as mean/std of
  [0, 1] pixels), shorter side resized to the input size and centre-cropped (``crop_pct`` 1).
- Inputs below 231 px (fast) / 221 px (accurate) leave the first fc without a full window: a one-line
  ConvzooError names the sizes the net takes. Stride-4 / stride-2 first layers drop the last pixels of sizes
  that are not 231 + 32k / 221 + 36k, as the release does.
- ``drop_path_rate`` must be 0 (no residual paths); ``in_chans`` is honoured by the first conv.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import no_drop_path
from convzoo.layers.head import Backbone, ClassifierHead
from convzoo.registry import ModelCard, register_model

__all__ = ["FEATURE_LAYER", "OVERFEAT_CFGS", "OverFeat", "OverFeatCfg"]


# --- variants as data ------------------------------------------------------------------------------
@dataclass(frozen=True)
class OverFeatCfg:
    """One OverFeat network: the conv stack (stage by stage), the fc widths and the input size.

    ``stages``: per stage, the convs ``(out_channels, kernel, stride, padding)`` followed by one max-pool of
    ``pools[i]`` (kernel = stride). ``fc``: the widths of the two hidden fc layers; the first one's kernel is
    the size of the last pooled map at ``input_size`` (``fc_kernel``). ``first_fc``: the paper's number of the
    first fc layer (6 for the fast net, 7 for the accurate one).
    """

    stages: tuple[tuple[tuple[int, int, int, int], ...], ...]
    pools: tuple[int, ...]
    fc: tuple[int, int]
    fc_kernel: int
    input_size: int
    first_fc: int


OVERFEAT_CFGS: dict[str, OverFeatCfg] = {
    "fast": OverFeatCfg(
        stages=(((96, 11, 4, 0),), ((256, 5, 1, 0),), ((512, 3, 1, 1), (1024, 3, 1, 1), (1024, 3, 1, 1))),
        pools=(2, 2, 2), fc=(3072, 4096), fc_kernel=6, input_size=231, first_fc=6),
    "accurate": OverFeatCfg(
        stages=(((96, 7, 2, 0),), ((256, 7, 1, 0),),
                ((512, 3, 1, 1), (512, 3, 1, 1), (1024, 3, 1, 1), (1024, 3, 1, 1))),
        pools=(3, 2, 3), fc=(4096, 4096), fc_kernel=5, input_size=221, first_fc=7),
}
# the paper's feature layer (first fully-connected layer, after its ReLU) per variant
FEATURE_LAYER = {name: f"pre_logits.act{cfg.first_fc}" for name, cfg in OVERFEAT_CFGS.items()}


# --- the network -----------------------------------------------------------------------------------
def _conv_stages(cfg: OverFeatCfg, in_chans: int) -> tuple[nn.Sequential, list[dict], int]:
    """The conv stack as one ``nn.Sequential`` of stages; layers named conv<i>/act<i>/pool<i> (paper numbering)."""
    stages, info, c_in, reduction, i = [], [], in_chans, 1, 0
    for s, (convs, pool) in enumerate(zip(cfg.stages, cfg.pools)):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for c_out, k, stride, pad in convs:
            i += 1
            layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, k, stride, pad)
            layers[f"act{i}"] = nn.ReLU(inplace=True)
            c_in, reduction = c_out, reduction * stride
        layers[f"pool{i}"] = nn.MaxPool2d(pool, pool)
        reduction *= pool
        stages.append(nn.Sequential(layers))
        info.append({"num_chs": c_in, "reduction": reduction, "module": f"stages.{s}"})
    return nn.Sequential(*stages), info, c_in


class OverFeat(Backbone):
    """OverFeat fast / accurate (module docstring). ``cfg``: a key of :data:`OVERFEAT_CFGS` or an OverFeatCfg."""

    def __init__(self, cfg: str | OverFeatCfg = "fast", num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.5, global_pool: str = "avg", drop_path_rate: float = 0.0,
                 name: str = "overfeat"):
        super().__init__()
        no_drop_path(drop_path_rate, "OverFeat")
        if isinstance(cfg, str):
            if cfg not in OVERFEAT_CFGS:
                raise ConvzooError(f"unknown OverFeat variant {cfg!r}; expected one of {', '.join(OVERFEAT_CFGS)}")
            cfg = OVERFEAT_CFGS[cfg]
        self.cfg, self.name, self.num_classes, self.drop_rate = cfg, name, num_classes, drop_rate

        # (B, in_chans, H, W) -> (B, C5, h, w): conv stages with their max-pools
        self.stages, self.feature_info, c = _conv_stages(cfg, in_chans)
        # (B, C5, h, w) -> (B, fc[1], h - k + 1, w - k + 1): the hidden fc layers as convolutions
        n, (w1, w2) = cfg.first_fc, cfg.fc
        self.pre_logits = nn.Sequential(OrderedDict([
            (f"fc{n}", nn.Conv2d(c, w1, cfg.fc_kernel)), (f"act{n}", nn.ReLU(inplace=True)),
            (f"drop{n}", nn.Dropout(drop_rate)),
            (f"fc{n + 1}", nn.Conv2d(w1, w2, 1)), (f"act{n + 1}", nn.ReLU(inplace=True)),
            (f"drop{n + 1}", nn.Dropout(drop_rate)),
        ]))
        self.num_features = w2
        # (B, fc[1], h', w') -> (B, num_classes): global pool over the windows, then the last fc
        self.head = ClassifierHead(w2, num_classes, pool=global_pool)
        self.offtheshelf_layer = f"pre_logits.act{n}"  # the paper's feature layer
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    @property
    def min_size(self) -> int:
        return self.cfg.input_size

    def _check_size(self, x: torch.Tensor) -> None:
        if x.shape[-2] < self.min_size or x.shape[-1] < self.min_size:
            step = 1
            for convs, pool in zip(self.cfg.stages, self.cfg.pools):
                for *_, stride, _ in convs:
                    step *= stride
                step *= pool
            raise ConvzooError(f"{self.name} takes inputs of at least {self.min_size}x{self.min_size} "
                               f"({self.min_size} + {step}k px give whole windows), got "
                               f"{x.shape[-2]}x{x.shape[-1]}")

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """The map after each max-pool (the first ``stop`` only when given)."""
        out = []
        for stage in self.stages[:stop]:
            x = stage(x)
            out.append(x)
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_size(x)
        return self.stages(x)  # (B, 1024, 6, 6) at 231 px (fast), (B, 1024, 5, 5) at 221 px (accurate)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)  # (B, 4096, windows_h, windows_w)
        return self.head(x, pre_logits=pre_logits)


# --- registered variants ---------------------------------------------------------------------------
# the release's preprocessing (jhjin/overfeat-torch run.lua): (255 x - 118.380948) / 61.896913
_MEAN, _STD = (118.380948 / 255,) * 3, (61.896913 / 255,) * 3
_SRC = ("Razavian et al. 2014 (arXiv 1403.6382) Sec. 2 (features = first fc of OverFeat after ReLU); OverFeat "
        "(arXiv 1312.6229) Sec. 3 Tables 1 and 3; layer stacks of jhjin/overfeat-torch run.lua")
_PARAMS_SRC = ("fact sheet G4 'Paper 7' Sec. 3 (jhjin/overfeat-torch layer stack, counted with torch; OverFeat "
               "Table 4: {paper} parameters); sum of p.numel(), 1000 classes, 3 input channels")
_MACS_SRC = ("fact sheet G4 'Paper 7' Sec. 3: {sheet} GMACs at {size} px (conv + fc multiply-adds; OverFeat "
             "Table 4: {paper} G connections)")


def _card(name: str, variant: str, params: int, macs_g: str, paper_params: str, paper_macs: str) -> ModelCard:
    cfg = OVERFEAT_CFGS[variant]
    size = cfg.input_size
    return ModelCard(
        name=name, paper=7, family="overfeat", task="classification", in_chans=3, num_classes=1000,
        input_size=(size, size), test_size=(size, size),  # the smallest input; above 90M: count-only contract
        params=params, params_source=_PARAMS_SRC.format(paper=paper_params),
        macs=int(float(macs_g) * 1e9), macs_rtol=0.005 / float(macs_g),  # the sheet's rounding (3 digits)
        macs_source=_MACS_SRC.format(sheet=macs_g, size=size, paper=paper_macs),
        reference=None,  # not in timm or torchvision; weights only from the authors' server
        capabilities=frozenset({"features"}),
        mean=_MEAN, std=_STD, interpolation="bilinear", crop_pct=1.0, source=_SRC,
        notes=f"random weights (release not on a hub); paper feature layer {FEATURE_LAYER[variant]} "
              f"({cfg.fc[0]}-d)")


@register_model(_card("overfeat_fast", "fast", 145_920_872, "2.80", "145M", "2.81"))
def overfeat_fast(num_classes: int = 1000, in_chans: int = 3, **kw) -> OverFeat:
    return OverFeat("fast", num_classes=num_classes, in_chans=in_chans, name="overfeat_fast", **kw)


@register_model(_card("overfeat_accurate", "accurate", 144_656_488, "5.36", "144M", "5.37"))
def overfeat_accurate(num_classes: int = 1000, in_chans: int = 3, **kw) -> OverFeat:
    return OverFeat("accurate", num_classes=num_classes, in_chans=in_chans, name="overfeat_accurate", **kw)
