"""ELA: Efficient Local Attention for Deep Convolutional Neural Networks.

Seed paper 10; Wei Xu, Yi Wan; arXiv 2403.01123 (2024). No official repository; the paper prints a
short PyTorch listing of the module (:class:`~convzoo.layers.ela.ELA`, its variant table ELA-T/B/S/L).

Implemented here (the paper's ImageNet integrations, experiments section):
- ELA-ResNet-18/50: the torchvision-layout ResNet (He et al. 2016: 7x7 stem, stride on the 3x3 conv of
  the bottleneck, 1x1 conv + BN projection shortcut) with one ELA after the last BN of every residual
  branch, before the add (basic block: on ``planes`` channels; bottleneck: on ``4 * planes``).
- ELA-MobileNetV2: the torchvision MobileNetV2 (Sandler et al. 2018) with one ELA per inverted-residual
  block on the expanded (hidden) channels, after the 3x3 depth-wise conv-BN-ReLU6 and before the linear
  1x1 projection.

Insertion points -- a choice, stated: the fact sheet (G1a "Paper 10" Sec. 1) could not verify the
paper's figure. ResNet uses the position of SE / CA / ECA (the attention modules the paper compares
against, all inserted there). MobileNetV2 uses Coordinate Attention's position (Hou et al. 2021, whose
setup ELA follows): the block OUTPUT position of ECA-MobileNetV2 cannot hold the paper's ELA at all,
since 24-channel blocks are not divisible by 16 GroupNorm groups, while every hidden width of
MobileNetV2 (32, 96, 144, 192, 384, 576, 960) is divisible by 16 and by 8.

ELA size per network (``variant``): the paper recommends T/B for light or shallow networks and B/S for
deeper ones; the registered defaults are B for ResNet-18, S for ResNet-50, and S for MobileNetV2 (the
variant of the paper's +2.39 % MobileNetV2 result as summarised by the fact sheet; ELA-T cannot be used
on MobileNetV2 at this position: 144 hidden channels are not divisible by its 32 GN groups, a
:class:`~convzoo.errors.ConvzooError`). Any variant is a constructor option: ``create_model("ela_resnet50",
variant="B")``.

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

from convzoo.layers.ela import ELA
from convzoo.models.ecanet import MobileNetV2Backbone
from convzoo.models.resnet import ResNet
from convzoo.registry import ModelCard, register_model

__all__ = ["ELA_RESNET_CFGS", "ELAInvertedResidual", "ELAMobileNetV2",
           "ELAResNet", "remap_state_dict"]


# --- ELA-ResNet (the ResNet skeleton of convzoo.models.resnet, ELA before the residual add) --------

class ELAResNet(ResNet):
    """ResNet with ELA in every residual block (the paper's ImageNet experiments): stem, four stages, GAP, FC.

    ELA sits after the last BN of each residual branch (key ``layerX.Y.ela``): basic block on ``planes``,
    bottleneck on ``4 * planes`` channels.

    Args:
        block: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101/152).
        layers: blocks per stage.
        variant: ELA size, "T", "B", "S" or "L" (the paper's table).
        num_classes: 0 gives the pooled 512 * expansion embedding.
        in_chans: input channels.
        drop_rate: dropout before the classifier (0 as torchvision).
        zero_init_last: zero the last BN weight of every residual branch (see the module docstring).
    """

    def __init__(self, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3), variant: str = "S",
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, zero_init_last: bool = True):
        def ela_in_every_block(stage: int, index: int, num_blocks: int) -> dict:
            return dict(attn=lambda c: ELA.from_variant(c, variant), attn_name="ela")

        super().__init__(block, layers, num_classes, in_chans, drop_rate, zero_init_last,
                         block_args=ela_in_every_block)
        self.variant = variant


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, cin, H, W) -> (B, cout, H/s, W/s)
        h = x
        for layer in self.conv[:-2]:  # expand + depth-wise: (B, hidden, H/s, W/s)
            h = layer(h)
        h = self.conv[-1](self.conv[-2](self.ela(h)))  # ELA, then the linear projection
        return x + h if self.use_res_connect else h


class ELAMobileNetV2(MobileNetV2Backbone):
    """MobileNetV2 (Sandler et al. 2018, Table 2) with ELA in every inverted-residual block.

    Features at strides 4/8/16/32 are the outputs of the last 24-, 32-, 96- and 320-channel blocks.
    Classifier dropout 0.2 (torchvision).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, variant: str = "S", drop_rate: float = 0.2,
                 last_channel: int = 1280):
        super().__init__(lambda cin, c, stride, t: ELAInvertedResidual(cin, c, stride, t, variant),
                         num_classes, in_chans, drop_rate, last_channel)
        self.variant = variant


def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ResNet / MobileNetV2 state dict to this file's layout (load with strict=False:
    only the ``.ela.`` weights are then missing). ResNet keys are identical; MobileNetV2's body
    ``features.N`` is ``blocks.N`` here (``features`` is the backbone contract's multi-scale method)."""
    return {("blocks." + k.removeprefix("features.") if k.startswith("features.") else k): v
            for k, v in state.items()}


# --- variants ----------------------------------------------------------------------------------

ELA_RESNET_CFGS = {
    "ela_resnet18": dict(block="basic", layers=(2, 2, 2, 2), variant="B"),
    "ela_resnet50": dict(block="bottleneck", layers=(3, 4, 6, 3), variant="S"),
}

# sum of numel at 1000 classes with the default variant (= torchvision 11,689,512 / 25,557,032 /
# 3,504,872 + the ELA modules at 9C / 42C / 42C), MACs @224 by FlopCounterMode (convs + linear)
_COUNTS = {
    "ela_resnet18": (11_706_792, 1_814_474_752, "B", 11_689_512, "+0.93 % top-1 over ResNet-18"),
    "ela_resnet50": (26_191_400, 4_107_534_336, "S", 25_557_032, "+0.8 % top-1 over ResNet-50"),
    "ela_mobilenetv2": (3_804_584, 308_479_872, "S", 3_504_872, "+2.39 % top-1 over MobileNetV2"),
}
_CAPS = frozenset({"features", "compile", "onnx", "channels_last", "bf16"})


def _card(name: str, source: str) -> ModelCard:
    params, macs, variant, base, gain = _COUNTS[name]
    return ModelCard(
        name=name, paper=10, family="ela", task="classification", params=params,
        params_source=(f"sum of numel, 1000 classes, ELA-{variant}: torchvision's {base:,} plus the ELA modules "
                       f"as the paper's module definition (per module k*C*C/groups conv + 2C GroupNorm); the paper "
                       f"reports only relative gains for this model (fact sheet G1a Paper 10 Sec. 3: {gain}, "
                       f"not re-verified), no absolute count"),
        macs=macs, macs_source="torch FlopCounterMode @224, convs + linear (measured here; GN and pooling not counted)",
        reference=None, capabilities=_CAPS, test_size=(64, 64), source=source,
        recipes=("ela_resnet18_digits",) if name == "ela_resnet18" else (),
        notes=(f"Default ELA-{variant}; variant='T'|'B'|'S'|'L' selects another size. No official code and no "
               f"timm model (timm's EfficientLocalAttn is a different module: per-direction convs, 1-group GN, "
               f"SiLU). Insertion point is a stated choice, see the module docstring."),
    )


_RESNET_SRC = "paper, ImageNet experiments (ResNet); ELA after the last BN of each residual branch (SE/CA/ECA position)"


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
