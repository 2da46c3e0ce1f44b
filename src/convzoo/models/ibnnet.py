"""Two at Once: Enhancing Learning and Generalization Capacities via IBN-Net.

Seed paper 37; Pan, Luo, Shi, Tang; ECCV 2018; arXiv 1807.09441. Official code XingangPan/IBN-Net
(``ibnnet/resnet_ibn.py``, ``resnext_ibn.py``, ``se_resnet_ibn.py``, ``modules.py``; torch.hub entries).

Implemented here, on the ResNet skeleton of :mod:`convzoo.models.resnet` (torchvision layout):

- IBN-a (Sec. 3.2, Fig. 3(b)): the first norm of every residual block (after ``conv1``) in stages
  conv2_x - conv4_x (``layer1..3``) is an :class:`~convzoo.layers.ibn.IBN` layer (half InstanceNorm,
  half BatchNorm); ``layer4`` keeps BatchNorm, since "the last stage should stay discriminative".
  ResNet-18/34/50/101/152, ResNeXt-50/101/152 (32x4d, IBN on the D*C channels of the grouped
  bottleneck) and SE-ResNet-50/101/152 (bias-free SE, reduction 16, after the last BN as in SENet):
  every builder of the official ``resnet_ibn.py``, ``resnext_ibn.py`` and ``se_resnet_ibn.py``. Zero extra
  parameters and MACs (the abstract's "without increasing computational cost").
- IBN-b (Sec. 3.2, Fig. 3(c)): InstanceNorm (affine) replaces the stem's BN and is added after the
  residual addition, before the ReLU, of the LAST block of ``layer1`` and ``layer2`` (the official code;
  the paper's figure shows one block). ResNet-18/34/50/101/152; +2 * (64 + 128) = 384 (basic) or
  2 * (256 + 512) = 1,536 (bottleneck) parameters.

Placement is data (:data:`IBN_CFGS`): ``ibn="a" | "b"``, ``ibn_ratio`` (0.5), and any variant can be
built with other stages via ``ibn_stages``. Parameter and MAC counts equal those of the official code
(counted on it; the cards name the files) and, for IBN-a, those of the torchvision / timm baselines.

Departures from the official code, none in the forward function at 224 px: the head pools with a
global mean instead of the official fixed ``AvgPool2d(7)`` (same result at 224 px, any size works);
``zero_init_last=True`` (default here, as convzoo's other ResNets) starts the last BN of each residual
branch at 0 for numerically tame random networks; the official init (all norms at 1) is
``zero_init_last=False``, which the paper recipe sets. State-dict keys equal the official ones
(``layerX.Y.bn1.IN.weight``, ``layerX.Y.bn1.BN.running_mean``, ``layerX.Y.IN.weight``, stem ``bn1``,
SE ``layerX.Y.se.fc.0.weight``), so the released hub checkpoints load by name.
- DenseNet-IBN-a (official ``densenet_ibn.py``; DenseNet-BC, Huang et al. 2017, torchvision layout):
  the first norm of every third dense layer (index % 3 == 0) of dense blocks 1-3 is an IBN with ratio
  0.4 in the official code's order (BatchNorm on the first 60 % of the channels, InstanceNorm on the
  last 40 %). DenseNet-121/169/201 (k = 32, stem 64) and DenseNet-161 (k = 48, stem 96), the four
  builders of the official file; zero extra parameters. Its body is ``body.*`` here (the official and
  torchvision ``features.*``: ``features`` is the backbone contract's method); :func:`remap_state_dict`
  renames checkpoints.

The appearance-invariance and feature-divergence analyses of Sec. 3.1 are in
:mod:`convzoo.analysis.appearance`; the segmentation / domain-generalisation experiments are later work.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import no_drop_path
from convzoo.layers.head import Backbone, ClassifierHead
from convzoo.layers.ibn import IBN
from convzoo.layers.init import kaiming_bn_init_
from convzoo.layers.se import SqueezeExcite
from convzoo.models.resnet import ResNet
from convzoo.registry import ModelCard, register_model

__all__ = ["IBN_CFGS", "DenseNetIBN", "IBNResNet", "remap_state_dict"]


class IBNResNet(ResNet):
    """ResNet / ResNeXt / SE-ResNet with IBN-a or IBN-b.

    Args:
        block, layers, groups, base_width: the ResNet skeleton (see :class:`~convzoo.models.resnet.ResNet`).
        ibn: "a" (IBN in the first norm of every block of ``ibn_stages``) or "b" (stem InstanceNorm and an
            InstanceNorm after the add of the last block of each stage in ``ibn_stages``).
        ibn_stages: stage indices (0-based) that get IBN; default (0, 1, 2) for "a", (0, 1) for "b".
        ibn_ratio: fraction of instance-normalised channels in an IBN layer (IBN-a; 0.5 in the paper).
        se_reduction: add a bias-free SE block with this reduction to every block (SE-ResNet), or None.
        num_classes, in_chans, drop_rate, zero_init_last, drop_path_rate, global_pool: as
            :class:`~convzoo.models.resnet.ResNet`.
    """

    def __init__(self, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3), ibn: str = "a",
                 ibn_stages: Sequence[int] | None = None, ibn_ratio: float = 0.5, se_reduction: int | None = None,
                 groups: int = 1, base_width: int = 64, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, zero_init_last: bool = True, drop_path_rate: float = 0.0,
                 global_pool: str = "avg"):
        if ibn not in ("a", "b"):
            raise ConvzooError(f"ibn must be 'a' or 'b', got {ibn!r}")
        stages = tuple(ibn_stages) if ibn_stages is not None else ((0, 1, 2) if ibn == "a" else (0, 1))
        if not set(stages) <= {0, 1, 2, 3}:
            raise ConvzooError(f"ibn_stages are stage indices 0..3, got {list(stages)}")

        def placement(stage: int, index: int, num_blocks: int) -> dict:
            opts: dict = {}
            if se_reduction is not None:
                opts.update(attn=lambda c: SqueezeExcite(c, se_reduction, bias=False), attn_name="se")
            if stage in stages and ibn == "a":
                opts["norm1"] = lambda c: IBN(c, ibn_ratio)
            # IBN-b: the official code leaves the first block of a stage without IN, so a one-block
            # stage gets none; otherwise the last block gets it
            if stage in stages and ibn == "b" and index == num_blocks - 1 and index > 0:
                opts["post_norm"] = lambda c: nn.InstanceNorm2d(c, affine=True)
            return opts

        stem = (lambda c: nn.InstanceNorm2d(c, affine=True)) if ibn == "b" else None
        super().__init__(block, layers, num_classes, in_chans, drop_rate, zero_init_last, groups=groups,
                         base_width=base_width, stem_norm=stem, block_args=placement, drop_path_rate=drop_path_rate,
                         global_pool=global_pool)
        self.ibn, self.ibn_stages, self.ibn_ratio = ibn, stages, ibn_ratio


# --- DenseNet-IBN-a (official densenet_ibn.py; DenseNet-BC in torchvision's layout) ----------------------

class _DenseLayer(nn.Sequential):
    """norm1-ReLU-1x1 conv (bn_size * k) - BN-ReLU-3x3 conv (k); output = concat(input, k new maps)."""

    def __init__(self, cin: int, growth: int, bn_size: int, ibn_ratio: float | None):
        norm1 = IBN(cin, ibn_ratio, in_first=False) if ibn_ratio else nn.BatchNorm2d(cin)
        super().__init__(OrderedDict([
            ("norm1", norm1), ("relu1", nn.ReLU(inplace=True)),
            ("conv1", nn.Conv2d(cin, bn_size * growth, 1, bias=False)),
            ("norm2", nn.BatchNorm2d(bn_size * growth)), ("relu2", nn.ReLU(inplace=True)),
            ("conv2", nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, cin, H, W) -> (B, cin + growth, H, W)
        return torch.cat((x, super().forward(x)), 1)


class DenseNetIBN(Backbone):
    """DenseNet-BC with IBN-a: stem 7x7/2 conv-BN-ReLU + max-pool, 4 dense blocks with transitions
    (BN-ReLU-1x1 conv halving the channels, 2x2 avg-pool), final BN, ReLU, GAP, linear.

    Args:
        growth_rate, block_config, num_init_features, bn_size: DenseNet-BC's k, layers per block, stem
            width and bottleneck factor (DenseNet-121: 32, (6, 12, 24, 16), 64, 4).
        ibn_ratio: IBN ratio in the IBN layers (0.4 official); ``ibn_blocks`` dense blocks (0-based) get
            an IBN in every third layer (0, 1, 2 official).
        num_classes, in_chans, drop_rate (before the classifier), global_pool: timm's arguments.
        drop_path_rate: 0 only: dense blocks concatenate, they have no residual sum to drop.
    """

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, ibn_ratio: float = 0.4,
                 ibn_blocks: Sequence[int] = (0, 1, 2), num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, global_pool: str = "avg", drop_path_rate: float = 0.0):
        super().__init__()
        no_drop_path(drop_path_rate, "DenseNet")
        self.num_classes = num_classes
        body = OrderedDict([
            ("conv0", nn.Conv2d(in_chans, num_init_features, 7, 2, 3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(3, 2, 1))])  # (B, 64, H/4, W/4)
        c, self.feature_info = num_init_features, []
        for b, n in enumerate(block_config):
            body[f"denseblock{b + 1}"] = nn.Sequential(OrderedDict(
                (f"denselayer{i + 1}", _DenseLayer(c + i * growth_rate, growth_rate, bn_size,
                                                   ibn_ratio if b in ibn_blocks and i % 3 == 0 else None))
                for i in range(n)))
            c += n * growth_rate
            if b < len(block_config) - 1:  # (B, c, H', W') -> (B, c/2, H'/2, W'/2)
                self.feature_info.append({"num_chs": c, "reduction": 4 * 2 ** b, "module": f"body.denseblock{b + 1}"})
                body[f"transition{b + 1}"] = nn.Sequential(OrderedDict([
                    ("norm", nn.BatchNorm2d(c)), ("relu", nn.ReLU(inplace=True)),
                    ("conv", nn.Conv2d(c, c // 2, 1, bias=False)), ("pool", nn.AvgPool2d(2, 2))]))
                c //= 2
        body["norm5"] = nn.BatchNorm2d(c)
        self.feature_info.append({"num_chs": c, "reduction": 4 * 2 ** (len(block_config) - 1), "module": "body.norm5"})
        self.body = nn.Sequential(body)
        self.num_features = c
        self.head = ClassifierHead(c, num_classes, global_pool, drop_rate)
        kaiming_bn_init_(self)  # torchvision's DenseNet init

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x))  # (B, num_features, H/32, W/32)

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """Dense blocks 1-3 (strides 4, 8, 16, before their transition) and the final ReLU(BN) (stride 32);
        the first ``stop`` only when given."""
        names, out = [f["module"].removeprefix("body.") for f in self.feature_info[:stop]], []
        for name, module in self.body.named_children():
            x = module(x)
            if name in names:
                out.append(torch.relu(x) if name == "norm5" else x)
                if len(out) == len(names):
                    break
        return out


def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official (or torchvision) DenseNet(-IBN) state dict in this file's layout: ``features.`` ->
    ``body.``, ``classifier.`` -> ``head.fc.``; a ``module.`` prefix is dropped. ResNet keys need nothing."""
    out = {}
    for k, v in state.items():
        k = k.removeprefix("module.")
        if k.startswith("features."):
            k = "body." + k.removeprefix("features.")
        elif k.startswith("classifier."):
            k = "head.fc." + k.removeprefix("classifier.")
        out[k] = v
    return out


# --- variants (official hubconf / resnet_ibn.py etc.; counts: fact sheet G1a "Paper 37" Sec. 3) ----------

_R18, _R34 = {"block": "basic", "layers": (2, 2, 2, 2)}, {"block": "basic", "layers": (3, 4, 6, 3)}
_R50, _R101 = {"block": "bottleneck", "layers": (3, 4, 6, 3)}, {"block": "bottleneck", "layers": (3, 4, 23, 3)}
_R152 = {"block": "bottleneck", "layers": (3, 8, 36, 3)}
_X32x4d, _SE = {"groups": 32, "base_width": 4}, {"se_reduction": 16}

# name: (architecture, params, MACs @224 -- both counted on the official code, XingangPan/IBN-Net d167338
# ``ibnnet/*.py`` built with its defaults, 1000 classes: sum of numel and torch FlopCounterMode (convs + linears;
# the fact sheet G1a "Paper 37" Sec. 3 gives the same figures to 3 decimals of G) --, ImageNet top-1/top-5
# error of the official README (IBN-a re-implementation), the torchvision/timm baseline it equals or extends)
_D161 = {"net": "densenet", "ibn": "a", "growth_rate": 48, "num_init_features": 96, "block_config": (6, 12, 36, 24)}
IBN_CFGS = {
    "resnet18_ibn_a": ({**_R18, "ibn": "a"}, 11_689_512, 1_814_073_344, "29.17/10.24", "torchvision resnet18"),
    "resnet34_ibn_a": ({**_R34, "ibn": "a"}, 21_797_672, 3_663_761_408, "25.78/8.19", "torchvision resnet34"),
    "resnet50_ibn_a": ({**_R50, "ibn": "a"}, 25_557_032, 4_089_184_256, "22.54/6.32", "torchvision resnet50"),
    "resnet101_ibn_a": ({**_R101, "ibn": "a"}, 44_549_160, 7_801_405_440, "21.39/5.59", "torchvision resnet101"),
    "resnet152_ibn_a": ({**_R152, "ibn": "a"}, 60_192_808, 11_513_626_624, None, "torchvision resnet152"),
    "resnet18_ibn_b": ({**_R18, "ibn": "b"}, 11_689_896, 1_814_073_344, None, "torchvision resnet18 + 384"),
    "resnet34_ibn_b": ({**_R34, "ibn": "b"}, 21_798_056, 3_663_761_408, None, "torchvision resnet34 + 384"),
    "resnet50_ibn_b": ({**_R50, "ibn": "b"}, 25_558_568, 4_089_184_256, None, "torchvision resnet50 + 1,536"),
    "resnet101_ibn_b": ({**_R101, "ibn": "b"}, 44_550_696, 7_801_405_440, None, "torchvision resnet101 + 1,536"),
    "resnet152_ibn_b": ({**_R152, "ibn": "b"}, 60_194_344, 11_513_626_624, None, "torchvision resnet152 + 1,536"),
    "resnext50_ibn_a": ({**_R50, **_X32x4d, "ibn": "a"}, 25_028_904, 4_230_479_872, None,
                        "torchvision resnext50_32x4d"),
    "resnext101_ibn_a": ({**_R101, **_X32x4d, "ibn": "a"}, 44_177_704, 7_969_996_800, "20.88/5.42",
                         "timm resnext101_32x4d"),
    "resnext152_ibn_a": ({**_R152, **_X32x4d, "ibn": "a"}, 59_951_400, 11_709_513_728, None,
                         "timm ResNet(Bottleneck, [3, 8, 36, 3], cardinality=32, base_width=4)"),
    "se_resnet50_ibn_a": ({**_R50, **_SE, "ibn": "a"}, 28_071_976, 4_091_699_200, None,
                          "timm legacy_seresnet50 less its 16,048 SE biases"),
    "se_resnet101_ibn_a": ({**_R101, **_SE, "ibn": "a"}, 49_292_328, 7_806_148_608, "21.25/5.51",
                           "timm legacy_seresnet101 less its 34,544 SE biases"),
    "se_resnet152_ibn_a": ({**_R152, **_SE, "ibn": "a"}, 66_770_984, 11_520_204_800, None,
                           "timm legacy_seresnet152 less its 50,864 SE biases"),
    "densenet121_ibn_a": ({"net": "densenet", "ibn": "a", "block_config": (6, 12, 24, 16)}, 7_978_856,
                          2_834_161_664, "24.47/7.25", "torchvision densenet121"),
    "densenet169_ibn_a": ({"net": "densenet", "ibn": "a", "block_config": (6, 12, 32, 32)}, 14_149_480,
                          3_359_843_328, "23.25/6.51", "torchvision densenet169"),
    "densenet201_ibn_a": ({"net": "densenet", "ibn": "a", "block_config": (6, 12, 48, 32)}, 20_013_928,
                          4_291_365_888, None, "torchvision densenet201"),
    "densenet161_ibn_a": (_D161, 28_681_000, 7_727_907_072, None, "torchvision densenet161"),
}

_OFFICIAL = {"": "XingangPan/IBN-Net d167338 ibnnet/resnet_ibn.py, resnext_ibn.py, se_resnet_ibn.py",
             "densenet": "XingangPan/IBN-Net d167338 ibnnet/densenet_ibn.py"}
_CAPS = frozenset({"features", "compile", "onnx", "channels_last", "bf16"})


def _card(name: str) -> ModelCard:
    arch, params, macs, err, base = IBN_CFGS[name]
    kind = "IBN-a (IBN after conv1 of every block of layer1-3)" if arch["ibn"] == "a" else \
        "IBN-b (stem InstanceNorm; InstanceNorm after the add of the last block of layer1 and layer2)"
    if arch.get("net") == "densenet":
        kind = "IBN-a (IBN, ratio 0.4, BN part first, in norm1 of every third dense layer of blocks 1-3)"
    return ModelCard(
        name=name, paper=37, family="ibnnet", task="classification", params=params,
        params_source=f"sum of numel, 1000 classes, official IBN-Net code ({_OFFICIAL[arch.get('net', '')]}); = {base}",
        macs=macs, macs_rtol=0.0,
        macs_source=(f"official IBN-Net code ({_OFFICIAL[arch.get('net', '')]}) at 224 px counted with torch "
                     "FlopCounterMode (convs + linears, norms not counted; fact sheet G1a Paper 37 Sec. 3 to 3 "
                     "decimals); IBN-a / IBN-b change no conv or linear, so this is also the baseline's count"),
        reference=None, capabilities=_CAPS, test_size=(64, 64),
        source="paper Sec. 3.2 / Fig. 3; official ibnnet/*.py",
        recipes=("resnet50_ibn_a_imagenet_paper",) if name == "resnet50_ibn_a" else
        ("ibnnet_digits",) if name == "resnet18_ibn_a" else (),
        notes=(f"{kind}. " + (f"ImageNet top-1/top-5 error {err} % (official README; the plain ResNet "
                             f"re-implementation in the same README is worse). " if err else "") +
               "Weights: torch.hub XingangPan/IBN-Net (keys load by name; not downloadable here). Not in timm "
               "or torchvision. Preprocessing: the PyTorch ImageNet example's eval transform (bilinear, Resize 256 + CenterCrop 224, ImageNet statistics), as the official ImageNet script (the card defaults)."),
    )


def _register(name: str) -> None:
    arch = dict(IBN_CFGS[name][0])
    cls = DenseNetIBN if arch.pop("net", None) == "densenet" else IBNResNet
    if cls is DenseNetIBN:
        arch.pop("ibn")

    def factory(**kwargs) -> nn.Module:
        return cls(**{**arch, **kwargs})

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"{name}: IBN-Net (paper 37) {IBN_CFGS[name][0]}"
    globals()[name] = register_model(_card(name))(factory)


for _name in IBN_CFGS:
    _register(_name)
