"""ELA: Efficient Local Attention for Deep Convolutional Neural Networks.

Seed paper 10; Wei Xu, Yi Wan; arXiv 2403.01123 (2024). No official repository; the paper prints a
short PyTorch listing of the module (:class:`~convzoo.layers.ela.ELA`, its variant table ELA-T/B/S/L).

Implemented here (the paper's ImageNet integrations, experiments section), with ONE rule for the
insertion point: ELA re-weights the output of the block's (last) 3x3 convolution, after its BN and
activation, before the next layer consumes it:
- ELA-ResNet-18 (basic block): after the second 3x3 conv-BN, before the residual add, on ``planes``
  channels (there it is also the SE / ECA position);
- ELA-ResNet-50 (bottleneck): after the 3x3 conv-BN-ReLU, before the 1x1 expansion conv, on ``planes``
  channels (key ``layerX.Y.ela`` in both);
- ELA-MobileNetV2 (Sandler et al. 2018): after the 3x3 depth-wise conv-BN-ReLU6, before the linear
  1x1 projection, on the expanded (hidden) channels -- Coordinate Attention's position (Hou et al.
  2021), whose setup ELA follows.

How the rule was settled (the paper's figure could not be read here): the paper's own counts, as its
ImageNet table is quoted by wang-jing-xu/PDDR's README ("data of ELA ... sourced from the original
paper"): ELA-ResNet-18 11.71 M, ELA-ResNet-50 25.57 M, and the paper's text "+0.03 % parameters" for
ResNet-50. ResNet-18 with ELA-B in every block on ``planes`` gives 11,706,792 = 11.71 M (exact at the
paper's rounding; ELA-T would give 11.70 M, any variant on the block input or once per stage 11.70 M).
For ResNet-50 NO per-block placement of any of the four variants reaches 25.57 M / +0.03 %: the
smallest, ELA-T on the 3x3 width, adds 26,432 (+0.10 %). The 3x3 position with ELA-B (the paper's
size for deeper networks) adds 33,984 (+0.13 %, 25.59 M), the nearest to the paper of the B/S
placements; the SE position (4 * planes) would add 135,936 (ELA-B) or 634,368 (ELA-S, +2.48 %, the
previous default here). ``position="output"`` keeps the SE position as an option.

ELA size per network (``variant``): the paper recommends T/B for light or shallow networks, B/S for
deeper ones; the registered defaults are B for ResNet-18 and ResNet-50 (see above) and S for
MobileNetV2 (the variant of the paper's +2.39 % MobileNetV2 result as the paper's summaries state; T
cannot be used there: 144 hidden channels are not divisible by its 32 GN groups, a
:class:`~convzoo.errors.ConvzooError`). Any variant is a constructor option.

State-dict keys are torchvision's (``conv1``, ``bn1``, ``layer1..4``, ``downsample``, ``fc``; MobileNetV2
``blocks.N.conv.*`` = torchvision ``features.N.conv.*``, ``classifier.1``) plus ``.ela.conv.weight`` /
``.ela.gn.{weight,bias}``, so torchvision ImageNet weights load with ``strict=False`` (only the ELA
weights missing; :func:`remap_state_dict` renames MobileNetV2's ``features.`` prefix). Initialisation as
torchvision (Kaiming fan-out convs, BN 1/0, MobileNetV2 linear N(0, 0.01)); ELA keeps PyTorch's default
Conv1d init and GN 1/0 (the paper's listing). ResNet's ``zero_init_last=True`` (default, as
``convzoo.models.ecanet``) zeroes the last BN of each residual branch for numerically stable random
networks; ``zero_init_last=False`` is torchvision's / the paper-era default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from convzoo.errors import ConvzooError
from convzoo.layers.ela import ELA
from convzoo.models.ecanet import MobileNetV2Backbone
from convzoo.models.resnet import Bottleneck, ResNet
from convzoo.registry import ModelCard, register_model

__all__ = ["ELA_RESNET_CFGS", "ELABottleneck", "ELAInvertedResidual", "ELAMobileNetV2", "ELAResNet",
           "remap_state_dict"]


# --- ELA-ResNet (the ResNet skeleton of convzoo.models.resnet, ELA after the 3x3 conv) ------------

class ELABottleneck(Bottleneck):
    """1x1 conv-BN-ReLU -> 3x3 conv-BN-ReLU -> ELA(planes) -> 1x1 conv-BN -> + shortcut -> ReLU.

    The layers and keys of :class:`~convzoo.models.resnet.Bottleneck` plus ``ela``; only the forward
    pass differs (ELA on the 3x3 output, the rule of the module docstring).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, inplanes, H, W) -> (B, 4 planes, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H, W)
        out = self.ela(self.relu(self.bn2(self.conv2(out))))  # (B, planes, H/s, W/s)
        return self._finish(self.bn3(self.conv3(out)), x)


POSITIONS = ("spatial", "output")


class ELAResNet(ResNet):
    """ResNet with ELA in every residual block (the paper's ImageNet experiments): stem, four stages, GAP, FC.

    Args:
        block: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101/152).
        layers: blocks per stage.
        variant: ELA size, "T", "B", "S" or "L" (the paper's table).
        num_classes: 0 gives the pooled 512 * expansion embedding.
        in_chans: input channels.
        drop_rate: dropout before the classifier (0 as torchvision).
        zero_init_last: zero the last BN weight of every residual branch (see the module docstring).
        position: "spatial" (default; after the block's last 3x3 conv, on ``planes``) or "output" (after
            the last BN of the residual branch, before the add, on ``planes * expansion``: the SE / ECA
            position). The two agree for the basic block.
        drop_path_rate, global_pool: timm's arguments (:class:`~convzoo.models.resnet.ResNet`).
    """

    def __init__(self, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3), variant: str = "B",
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, zero_init_last: bool = True,
                 position: str = "spatial", drop_path_rate: float = 0.0, global_pool: str = "avg"):
        if position not in POSITIONS:
            raise ConvzooError(f"unknown ELA position {position!r}; expected one of {POSITIONS}")
        after_3x3 = block == "bottleneck" and position == "spatial"

        def ela_in_every_block(stage: int, index: int, num_blocks: int) -> dict:
            # the attention slot of the skeleton: after the last BN, before the add
            return {} if after_3x3 else {"attn": lambda c: ELA.from_variant(c, variant), "attn_name": "ela"}

        super().__init__(block, layers, num_classes, in_chans, drop_rate, zero_init_last,
                         block_args=ela_in_every_block, drop_path_rate=drop_path_rate, global_pool=global_pool)
        if after_3x3:  # same layers and keys; ELA on the 3x3 width and the forward pass of ELABottleneck
            for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
                for blk in stage:
                    blk.ela = ELA.from_variant(blk.conv2.out_channels, variant)
                    blk.__class__ = ELABottleneck
        self.variant, self.position = variant, position


# --- ELA-MobileNetV2 (torchvision MobileNetV2, ELA on the hidden channels) ------------------------

class ELAInvertedResidual(nn.Module):
    """[1x1 expand conv-BN-ReLU6] -> 3x3 depth-wise conv-BN-ReLU6 -> ELA(hidden) -> 1x1 project conv-BN (+ x)."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int, variant: str = "S"):
        super().__init__()
        hidden = round(cin * expand_ratio)
        self.use_res_connect = stride == 1 and cin == cout
        layers = [Conv2dNormActivation(cin, hidden, 1, activation_layer=nn.ReLU6)] if expand_ratio != 1 else []
        layers += [Conv2dNormActivation(hidden, hidden, 3, stride, groups=hidden, activation_layer=nn.ReLU6),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)  # torchvision's keys conv.0 .. conv.3
        self.ela = ELA.from_variant(hidden, variant)
        self.drop_path = nn.Identity()  # stochastic depth of the residual branch: set by the network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, cin, H, W) -> (B, cout, H/s, W/s)
        h = x
        for layer in self.conv[:-2]:  # expand + depth-wise: (B, hidden, H/s, W/s)
            h = layer(h)
        h = self.conv[-1](self.conv[-2](self.ela(h)))  # ELA, then the linear projection
        return x + self.drop_path(h) if self.use_res_connect else h


class ELAMobileNetV2(MobileNetV2Backbone):
    """MobileNetV2 (Sandler et al. 2018, Table 2) with ELA in every inverted-residual block.

    Features at strides 4/8/16/32 are the outputs of the last 24-, 32-, 96- and 320-channel blocks.
    Classifier dropout 0.2 (torchvision); ``drop_path_rate``, ``global_pool`` as
    :class:`~convzoo.models.ecanet.MobileNetV2Backbone`.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, variant: str = "S", drop_rate: float = 0.2,
                 last_channel: int = 1280, drop_path_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__(lambda cin, c, stride, t: ELAInvertedResidual(cin, c, stride, t, variant),
                         num_classes, in_chans, drop_rate, last_channel, drop_path_rate, global_pool)
        self.variant = variant


def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ResNet / MobileNetV2 state dict to this file's layout (load with strict=False:
    only the ``.ela.`` weights are then missing). ResNet keys are identical; MobileNetV2's body
    ``features.N`` is ``blocks.N`` here (``features`` is the backbone contract's multi-scale method)."""
    return {("blocks." + k.removeprefix("features.") if k.startswith("features.") else k): v
            for k, v in state.items()}


# --- variants ----------------------------------------------------------------------------------

ELA_RESNET_CFGS = {
    "ela_resnet18": {"block": "basic", "layers": (2, 2, 2, 2), "variant": "B"},
    "ela_resnet50": {"block": "bottleneck", "layers": (3, 4, 6, 3), "variant": "B"},
}

# sum of numel at 1000 classes with the default variant (torchvision's 11,689,512 / 25,557,032 / 3,504,872
# plus the ELA modules, 9C / 9C / 42C each); MACs @224 of the convs, the ELA 1-D convs and the FC; the
# paper's count (its ImageNet table as quoted by wang-jing-xu/PDDR's README; None: not found here)
_COUNTS = {
    "ela_resnet18": (11_706_792, 1_814_474_752, "B", 11_689_512, "11.71M"),
    "ela_resnet50": (25_591_016, 4_089_987_072, "B", 25_557_032, "25.57M (text: +0.03 %)"),
    "ela_mobilenetv2": (3_804_584, 308_479_872, "S", 3_504_872, None),
}
_CAPS = frozenset({"features", "compile", "onnx", "channels_last", "bf16"})


def _card(name: str, source: str) -> ModelCard:
    params, macs, variant, base, paper = _COUNTS[name]
    vs = (f"the paper reports {paper}" if paper else "the paper's absolute count for this model was not found here")
    return ModelCard(
        name=name, paper=10, family="ela", task="classification", params=params,
        params_source=(f"closed form, tests/models/test_ela.py::test_model_params: torchvision's {base:,} plus "
                       f"one ELA-{variant} per block (k * C * C / groups conv + 2C GroupNorm, the paper's "
                       f"module) on the paper's channel widths; {vs}"),
        macs=macs, macs_rtol=0.0,
        macs_source=("closed form, tests/models/test_ela.py::test_macs_closed_form @224: conv + FC MACs of the "
                     "layer table (torchvision's published GFLOPS to 3 decimals) plus the ELA 1-D convs, "
                     "C * (H + W) * k * C / groups per module; GroupNorm, pooling and gating not counted"),
        reference=None, capabilities=_CAPS, test_size=(64, 64), source=source,
        recipes=("ela_resnet18_digits",) if name == "ela_resnet18" else (),
        notes=(f"Default ELA-{variant}; variant='T'|'B'|'S'|'L' selects another size. No official code and no "
               f"timm model (timm's EfficientLocalAttn is a different module: per-direction convs, 1-group GN, "
               f"SiLU). Insertion point and the paper-count comparison: see the module docstring. Preprocessing: "
               f"torchvision's ImageNet eval transform (bilinear, 224/256, ImageNet statistics; the card defaults)."),
    )


_RESNET_SRC = "paper, ImageNet experiments (ResNet); ELA after the block's last 3x3 conv (module docstring)"


def _ela_resnet(name: str, **kwargs) -> ELAResNet:
    return ELAResNet(**{**ELA_RESNET_CFGS[name], **kwargs})


@register_model(_card("ela_resnet18", _RESNET_SRC))
def ela_resnet18(**kwargs) -> ELAResNet:
    return _ela_resnet("ela_resnet18", **kwargs)


@register_model(_card("ela_resnet50", _RESNET_SRC))
def ela_resnet50(**kwargs) -> ELAResNet:
    return _ela_resnet("ela_resnet50", **kwargs)


@register_model(_card("ela_mobilenetv2", "paper, ImageNet experiments (MobileNetV2); ELA on the hidden channels "
                                         "after the depth-wise conv (Coordinate Attention's position)"))
def ela_mobilenetv2(**kwargs) -> ELAMobileNetV2:
    return ELAMobileNetV2(**kwargs)
