"""ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks.

Seed paper 43; Wang, Wu, Zhu, Li, Zuo, Hu; CVPR 2020; arXiv 1910.03151. Official code
BangguWu/ECANet (``models/eca_resnet.py``, ``models/eca_mobilenetv2.py``).

Implemented here:
- ECA-ResNet-18/34/50/101/152 (Sec. 4.1, Table 2): the torchvision-layout ResNet (He et al. 2016,
  7x7 stem, stride on the 3x3 conv of the bottleneck, 1x1 conv + BN projection shortcut) with an
  :class:`~convzoo.layers.eca.ECA` after the last BN of every residual branch, before the add
  (basic block: on ``planes`` channels; bottleneck: on ``4 * planes``).
- ECA-MobileNetV2 (Sec. 4.1, Table 3): MobileNetV2 (Sandler et al. 2018) with ECA appended to every
  inverted-residual block after the projection BN; k = 1 when the block's output channels are
  < 96, else 3; classifier dropout 0.25 (official ``eca_mobilenetv2.py``).

The kernel size k per stage (``k_size``) is explicit, because the paper and its code disagree
(issues #5, #17, #24, #46, #57): Eq. 12 (psi(C), Sec. 3.3) gives k = 5,5,5,7 on the ECA channels of
ResNet-50, but the released checkpoints were trained with the hand-set tables below, which are
the defaults here ("paper-checkpoint" tables; they reproduce the +80 parameters of the abstract).
``k_size="adaptive"`` applies psi(C) to each ECA layer's channels (timm's construction); an int
sets one k everywhere; a 4-sequence sets k per stage. (The official ``eca_resnet18`` ignores its
``k_size`` argument and hard-codes 3,3,3,3; the released R18 checkpoint uses 3,5,7,7.)

Names follow torchvision/the official code (``conv1``, ``bn1``, ``layer1..4``, ``downsample``,
``fc``; ECA weights at ``layerX.Y.eca.conv.weight``), so official checkpoints and torchvision /
timm ResNet weights load by name; :func:`remap_state_dict` renames timm's ``.se.`` (its
attention slot) to ``.eca.``. ECA-MobileNetV2 keeps torchvision's block keys, but under ``blocks.N``
instead of ``features.N`` (``features`` is the backbone contract's multi-scale method);
:func:`remap_state_dict` renames official / torchvision checkpoints. Departures: none in the forward
pass; the global pool is ``mean`` over H, W (the official ResNet factories replace ``AvgPool2d(7)``
by the same adaptive pool).
``reparameterize()`` folds every conv+BN pair for inference (``convzoo.deploy``).

Initialisation: the paper states none; the official code draws convs from Kaiming fan-out normals and
sets every BN weight to 1. ``ECAResNet`` does the same except that, by default, the last BN weight of
each residual branch starts at 0 (``zero_init_last=True``, Goyal et al. 2017, timm's default):
with every BN weight at 1 the eval-mode function of a deep random ECA-ResNet with random BN
statistics is numerically chaotic (ResNet-152: fp32 and fp64 outputs differ by 13 %, because the
sigmoid gates amplify rounding in ever larger activations), which defeats equivalence checks.
``zero_init_last=False`` gives the official initialisation; the paper recipe uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import drop_path, drop_path_rates
from convzoo.layers.eca import ECA, eca_kernel_size
from convzoo.layers.head import Backbone, SelectAdaptivePool, apply_fc, make_fc
from convzoo.models.resnet import ResNet
from convzoo.registry import ModelCard, register_model

__all__ = [
    "ECA_RESNET_CFGS",
    "ECAMobileNetV2",
    "ECAResNet",
    "remap_state_dict",
    "resolve_k_sizes",
]


def resolve_k_sizes(k_size) -> list[int | None]:
    """Per-stage kernel sizes: a 4-sequence, one int, or "adaptive" (None = psi(C) per layer)."""
    if isinstance(k_size, str):
        if k_size != "adaptive":
            raise ConvzooError(f"k_size must be 'adaptive', an odd int or 4 odd ints, got {k_size!r}")
        return [None] * 4
    if isinstance(k_size, int):
        return [k_size] * 4
    ks = [int(k) for k in k_size]
    if len(ks) != 4:
        raise ConvzooError(f"k_size needs one kernel size per stage (4 values), got {list(k_size)}")
    return ks


# --- the network (Table 2: ResNet with ECA) -----------------------------------------------------------

class ECAResNet(ResNet):
    """ECA-ResNet (Sec. 4.1): the ResNet skeleton (``convzoo.models.resnet``) with an ECA after the last
    BN of every residual branch (key ``layerX.Y.eca``): basic block on ``planes``, bottleneck on
    ``4 * planes`` channels.

    Args:
        block: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101/152).
        layers: blocks per stage.
        k_size: "adaptive" (Eq. 12 on each ECA's channels), one odd int, or 4 odd ints per stage.
        num_classes: 0 gives the pooled 512 * expansion embedding.
        in_chans: input channels.
        drop_rate: dropout before the classifier (0 in the paper).
        zero_init_last: initialise the last BN weight of every residual branch to 0 (Goyal et al. 2017;
            timm's default). The paper gives no initialisation; the official code uses 1
            (``zero_init_last=False``, which the ``_paper`` recipe sets). See the module docstring.
        shared: False builds ECA-NS in every block (Table 2's non-shared variant, k * C parameters per
            layer; :class:`~convzoo.layers.eca.ECA`), True the paper's ECA.
        drop_path_rate, global_pool: timm's arguments (:class:`~convzoo.models.resnet.ResNet`; 0 / "avg" in the
            paper).
    """

    def __init__(self, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3),
                 k_size="adaptive", num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 zero_init_last: bool = True, shared: bool = True, drop_path_rate: float = 0.0,
                 global_pool: str = "avg"):
        ks = resolve_k_sizes(k_size)

        def eca_in_every_block(stage: int, index: int, num_blocks: int) -> dict:
            return {"attn": lambda c, k=ks[stage]: ECA(c, k, shared=shared), "attn_name": "eca"}

        super().__init__(block, layers, num_classes, in_chans, drop_rate, zero_init_last,
                         block_args=eca_in_every_block, drop_path_rate=drop_path_rate, global_pool=global_pool)
        self.k_sizes = ks


def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official ECA-Net or a timm ECA-ResNet state dict to the layout of this file.

    - a ``module.`` prefix (the official DataParallel checkpoints) is dropped;
    - timm keeps the attention of ``ResNet(..., block_args=dict(attn_layer='eca'))`` at
      ``layerX.Y.se``, the official code (and this file) at ``layerX.Y.eca``;
    - the official ECA-MobileNetV2 body ``features.N`` is ``blocks.N`` here (``features`` is the
      multi-scale method of the backbone contract).
    ECA-ResNet keys of the official code are otherwise identical (conv1, bn1, layer1..4, fc).
    """
    out = {}
    for k, v in state.items():
        k = k.removeprefix("module.").replace(".se.conv.", ".eca.conv.")
        out["blocks." + k.removeprefix("features.") if k.startswith("features.") else k] = v
    return out


# --- ECA-MobileNetV2 (Sec. 4.1, official eca_mobilenetv2.py) -------------------------------------------

def _conv_bn_relu6(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class ECAInvertedResidual(nn.Module):
    """[1x1 expand conv-BN-ReLU6] -> 3x3 depth-wise conv-BN-ReLU6 -> 1x1 project conv-BN -> ECA (+ x)."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int, k_size: int):
        super().__init__()
        hidden = round(cin * expand_ratio)
        self.use_res_connect = stride == 1 and cin == cout
        layers = [_conv_bn_relu6(cin, hidden, 1)] if expand_ratio != 1 else []
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout), ECA(cout, k_size)]
        self.conv = nn.Sequential(*layers)  # keys features.N.conv.* as torchvision / the official code
        self.drop_path = nn.Identity()  # stochastic depth of the residual branch: set by the network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, cin, H, W) -> (B, cout, H/s, W/s)
        return x + self.drop_path(self.conv(x)) if self.use_res_connect else self.conv(x)


# t (expansion), c (output channels), n (blocks), s (first stride) -- MobileNetV2 Table 2
MOBILENETV2_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class MobileNetV2Backbone(Backbone):
    """MobileNetV2 (Sandler et al. 2018, Table 2) with a pluggable inverted-residual block.

    ``make_block(cin, cout, stride, expand_ratio)`` builds each block, so attention papers (ECA, ELA)
    only supply their block. Keys follow torchvision / the official codes: ``blocks.N`` (their
    ``features.N``, see ``remap_state_dict``) and ``classifier.1``. Features at strides 4/8/16/32 are
    the outputs of the last 24-, 32-, 96- and 320-channel blocks. timm's arguments: ``global_pool`` and
    ``drop_path_rate`` (stochastic depth of the blocks with an identity shortcut, linear from 0 at the first
    block to the rate at the last; timm's EfficientNet builder spreads it likewise; the paper has none).
    """

    def __init__(self, make_block, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                 last_channel: int = 1280, drop_path_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        self.num_classes, self.num_features = num_classes, last_channel
        body: list[nn.Module] = [_conv_bn_relu6(in_chans, 32, 3, 2)]  # (B, 32, H/2, W/2)
        cin, stride_total, self.feature_info = 32, 2, []
        for t, c, n, s in MOBILENETV2_SETTING:
            for i in range(n):
                stride = s if i == 0 else 1
                body.append(make_block(cin, c, stride, t))
                cin, stride_total = c, stride_total * stride
            if c in (24, 32, 96, 320):
                self.feature_info.append({"num_chs": c, "reduction": stride_total, "module": f"blocks.{len(body) - 1}"})
        body.append(_conv_bn_relu6(cin, last_channel, 1))  # (B, 1280, H/32, W/32)
        self.blocks = nn.Sequential(*body)
        residual = [b for b in body if getattr(b, "use_res_connect", False)]
        for blk, rate in zip(residual, drop_path_rates(drop_path_rate, [len(residual)])[0]):
            blk.drop_path = drop_path(rate)
        self.global_pool = SelectAdaptivePool(global_pool)
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), make_fc(last_channel * self.global_pool.feat_mult(),
                                                                       num_classes))
        self._feature_idx = [int(f["module"].split(".")[1]) for f in self.feature_info]
        for m in self.modules():  # official / torchvision init (attention 1D convs and norms keep defaults)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)  # (B, 1280, H/32, W/32)

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """The maps at strides 4, 8, 16, 32 (the first ``stop`` only when given)."""
        out, last = [], self._feature_idx[(stop or len(self._feature_idx)) - 1]
        for i, block in enumerate(self.blocks[: last + 1]):
            x = block(x)
            if i in self._feature_idx:
                out.append(x)
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[0](self.global_pool(x))  # (B, 1280)
        return x if pre_logits else apply_fc(self.classifier[1], x)

    def get_classifier(self) -> nn.Module:
        return self.classifier[1]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool(global_pool)
        self.classifier[1] = make_fc(self.num_features * self.global_pool.feat_mult(), num_classes)


class ECAMobileNetV2(MobileNetV2Backbone):
    """ECA-MobileNetV2: k = 1 for blocks with < ``k_threshold`` (96) output channels, else 3.

    ``k_size`` overrides the rule: "adaptive" (Eq. 12 per block) or one odd int for every block.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, k_size=None, k_threshold: int = 96,
                 drop_rate: float = 0.25, last_channel: int = 1280, drop_path_rate: float = 0.0,
                 global_pool: str = "avg"):
        def kernel(c: int) -> int:
            if k_size is None:
                return 1 if c < k_threshold else 3
            return eca_kernel_size(c) if k_size == "adaptive" else int(k_size)

        super().__init__(lambda cin, c, stride, t: ECAInvertedResidual(cin, c, stride, t, kernel(c)),
                         num_classes, in_chans, drop_rate, last_channel, drop_path_rate, global_pool)


# --- variants (paper Table 2 / 3; k tables of the released checkpoints, README of the official code) --

# block, blocks per stage, k per stage of the released checkpoint, torchvision params (for the delta)
ECA_RESNET_CFGS = {
    "eca_resnet18": {"block": "basic", "layers": (2, 2, 2, 2), "k_size": (3, 5, 7, 7)},
    "eca_resnet34": {"block": "basic", "layers": (3, 4, 6, 3), "k_size": (3, 3, 5, 7)},
    "eca_resnet50": {"block": "bottleneck", "layers": (3, 4, 6, 3), "k_size": (3, 5, 5, 7)},
    "eca_resnet101": {"block": "bottleneck", "layers": (3, 4, 23, 3), "k_size": (3, 3, 5, 7)},
    "eca_resnet152": {"block": "bottleneck", "layers": (3, 8, 36, 3), "k_size": (3, 3, 5, 7)},
}

# sum of numel at 1000 classes with the checkpoint k tables (measured on the official model code,
# fact sheet G1a "Paper 43" Sec. 3); MACs @224 of the convs and the FC (torchvision's published
# GFLOPS 1.814 / 3.664 / 4.089 / 7.801 / 11.514 / 0.301 plus sum(C * k) over the ECA layers, exact by
# the closed form in the test); the paper's params in 2^20 units; ImageNet top-1
_SHEET = {
    "eca_resnet18": (11_689_556, 1_814_085_760, "11.15M", "70.92"),
    "eca_resnet34": (21_797_744, 3_663_781_952, "20.79M", "74.21"),
    "eca_resnet50": (25_557_112, 4_089_270_528, "24.37M", "77.48"),
    "eca_resnet101": (44_549_317, 7_801_574_656, "42.49M", "78.65"),
    "eca_resnet152": (60_193_042, 11_513_868_544, "57.41M", "78.92"),
    "eca_mobilenetv2": (3_504_903, 300_777_952, "3.34M", "72.56"),
}

_CAPS = frozenset({"features", "compile", "onnx", "channels_last", "bf16"})
_NO_TIMM = ("No registered reference: timm has no model of this architecture under a name (its ecaresnet* "
            "are ResNet-D/T variants with their own weights)")


def _card(name: str, source: str, notes: str) -> ModelCard:
    params, macs, paper_params, top1 = _SHEET[name]
    return ModelCard(
        name=name, paper=43, family="ecanet", task="classification", params=params,
        params_source=(f"sum of numel, 1000 classes, released-checkpoint k table (official code, fact sheet "
                       f"G1a Paper 43); the paper reports {paper_params} in units of 2^20 "
                       f"(e.g. ResNet-50 25,557,032 / 2^20 = 24.37)"),
        macs=macs, macs_rtol=0.0,
        macs_source=("closed form, tests/models/test_ecanet.py::test_macs_closed_form: conv + FC MACs @224 "
                     "summed over the layer table (He et al. 2016 Table 1 / Sandler et al. 2018 Table 2), "
                     "equal to torchvision's published GFLOPS to its 3 decimals, plus C * k per ECA layer; "
                     "the paper's FLOPs use other units"),
        reference=None, capabilities=_CAPS, source=source,
        recipes={"eca_resnet18": ("eca_resnet18_digits",), "eca_resnet50": ("eca_resnet50_imagenet_paper",),
                 "eca_mobilenetv2": ("eca_mobilenetv2_imagenet_paper",)}.get(name, ()),
        notes=f"ImageNet top-1 {top1}% (paper / official README). {notes} Preprocessing: the PyTorch ImageNet example's eval transform (bilinear, Resize 256 + CenterCrop 224, ImageNet statistics), as the "
              "official main.py (the card defaults).",
    )


def _eca_resnet(name: str, **kwargs) -> ECAResNet:
    cfg = dict(ECA_RESNET_CFGS[name])
    cfg.update(kwargs)
    return ECAResNet(**cfg)


_RESNET_SRC = "paper Sec. 4.1 / Table 2; official models/eca_resnet.py"
_RESNET_NOTES = ("k_size='adaptive' gives psi(C) of Eq. 12 on each ECA's channels. " + _NO_TIMM +
                 "; parity reference: timm ResNet(block=..., layers=..., block_args=dict(attn_layer='eca')) "
                 "(`convzoo bench --compare timm:eca_resnet50_paper` builds it for R50).")


@register_model(_card("eca_resnet18", _RESNET_SRC, "k = 3,5,7,7. " + _RESNET_NOTES))
def eca_resnet18(**kwargs) -> ECAResNet:
    return _eca_resnet("eca_resnet18", **kwargs)


@register_model(_card("eca_resnet34", _RESNET_SRC, "k = 3,3,5,7. " + _RESNET_NOTES))
def eca_resnet34(**kwargs) -> ECAResNet:
    return _eca_resnet("eca_resnet34", **kwargs)


@register_model(_card("eca_resnet50", _RESNET_SRC,
                      "k = 3,5,5,7 (adaptive: 5,5,5,7, timm's 25,557,118 params). " + _RESNET_NOTES))
def eca_resnet50(**kwargs) -> ECAResNet:
    return _eca_resnet("eca_resnet50", **kwargs)


@register_model(_card("eca_resnet101", _RESNET_SRC, "k = 3,3,5,7. " + _RESNET_NOTES))
def eca_resnet101(**kwargs) -> ECAResNet:
    return _eca_resnet("eca_resnet101", **kwargs)


@register_model(_card("eca_resnet152", _RESNET_SRC, "k = 3,3,5,7. " + _RESNET_NOTES))
def eca_resnet152(**kwargs) -> ECAResNet:
    return _eca_resnet("eca_resnet152", **kwargs)


@register_model(_card("eca_mobilenetv2", "paper Sec. 4.1 / Table 3; official "
                      "models/eca_mobilenetv2.py", "k = 1 below 96 output channels, else 3; dropout 0.25. "
                      "timm has no ECA-MobileNetV2; the nearest is the plain torchvision MobileNetV2 "
                      "(+31 params)."))
def eca_mobilenetv2(**kwargs) -> ECAMobileNetV2:
    return ECAMobileNetV2(**kwargs)
