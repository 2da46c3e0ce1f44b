"""RotNet -- "Unsupervised Representation Learning by Predicting Image Rotations" (Gidaris, Singh,
Komodakis; ICLR 2018, arXiv 1803.07728). Seed paper 20.

What is implemented
- The two backbones the paper trains on the rotation pretext task (the task itself is
  :mod:`convzoo.tasks.rotation`; the frozen-feature evaluation is :mod:`convzoo.methods.probe`):
- **RotNet-NIN** (paper Sec. 3.1, CIFAR-10; official ``architectures/NetworkInNetwork.py``):
  Network-in-Network blocks, each one k x k conv and two 1x1 convs, every conv bias-free and followed
  by BatchNorm and ReLU. Block 1: 5x5 -> 192, 1x1 -> 160, 1x1 -> 96, then 3x3/2 max-pool (pad 1);
  block 2: 5x5 -> 192, 1x1 -> 192, 1x1 -> 192, then 3x3/2 average pool (pad 1); blocks 3..N:
  3x3 -> 192, 1x1 -> 192, 1x1 -> 192. Global average pooling and a linear 192 -> 4 rotation head.
  Variants ``rotnet_nin3`` / ``nin4`` / ``nin5`` (the paper's "RotNet with 3, 4, 5 conv. blocks",
  Table 1). As in the official RotNet configs (``use_avg_on_conv3 = False`` in
  ``config/CIFAR10_RotNet_NIN4blocks.py``) block 3 has no pooling; ``pool_block3=True`` adds the
  official code's optional 3x3/2 average pool there.
- **RotNet-AlexNet** (paper Sec. 3.2, ImageNet; official ``architectures/AlexNet.py``): AlexNet with
  BatchNorm after every conv and hidden fc layer: conv 64-11/4, max-pool 3/2, conv 192-5, max-pool,
  conv 384-3, 256-3, 256-3, max-pool, fc 9216 -> 4096 (no bias) + BN + ReLU, fc 4096 -> 4096 (no bias)
  + BN + ReLU, linear 4096 -> 4. The convs keep their biases (as the official code).

Probing contract: ``forward_blocks(x, blocks)`` returns the output of each asked block (1-based, the
official ``out_feat_keys`` 'conv1'.. and the paper's "ConvB1".. of Table 1; a NIN block's output is
taken after its pooling, as the official code does) and stops after the last one asked;
``features(x)`` returns all of them (``feature_info`` describes them).

Departures (none changes a count at the paper's sizes)
- AlexNet: an adaptive average pool to 6 x 6 follows pool5 (as torchvision's AlexNet), so inputs
  other than 224 px work; at 224 px pool5 is already 6 x 6 and the pool is the identity.
- Initialisation: PyTorch defaults (the official NIN's ``weight_initialization`` is never called, so
  the official networks also start from the framework defaults; PyTorch 0.2 drew BN scales from
  U(0, 1), current PyTorch sets them to 1).
- ``width`` multiplies every NIN width (CPU-scale recipes only; 1.0 is the paper's network).
- State-dict keys are ours (``blocks.N.M.conv``, ``head.fc``), not the official ``_feature_blocks``.
- timm's arguments: the NIN takes ``global_pool`` (avg, the paper's, | max | avgmax | catavgmax | "") and
  ``drop_rate``; neither network has residual paths (``drop_path_rate`` 0 only); ``features(x, stop)``.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import no_drop_path
from convzoo.layers.head import Backbone, ClassifierHead
from convzoo.registry import ModelCard, register_model

# --- variants as data -------------------------------------------------------------------------------
# One NIN block = (kernel, channels) of its three conv-BN-ReLU layers, then a pooling ("max", "avg", None).
NIN_BLOCK1 = ((5, 192), (1, 160), (1, 96))
NIN_BLOCK2 = ((5, 192), (1, 192), (1, 192))
NIN_BLOCK_N = ((3, 192), (1, 192), (1, 192))  # blocks 3, 4, 5
NIN_POOL = {1: "max", 2: "avg"}  # block index -> pooling (3x3, stride 2, pad 1); block 3 optional
CIFAR10_MEAN = tuple(x / 255 for x in (125.3, 123.0, 113.9))  # the official RotNet dataloader's statistics
CIFAR10_STD = tuple(x / 255 for x in (63.0, 62.1, 66.7))
NIN_VARIANTS = {"rotnet_nin3": 3, "rotnet_nin4": 4, "rotnet_nin5": 5}
NIN_COUNTS = {  # (params with the 4-way head, conv + fc MACs at 32 x 32): the closed form of the layer list
    "rotnet_nin3": (1_004_484, 224_723_712),
    "rotnet_nin4": (1_411_140, 250_675_968),
    "rotnet_nin5": (1_817_796, 276_628_224),
}
# AlexNet: (out channels, kernel, stride, padding) per conv; a max-pool 3/2 follows conv1, conv2, conv5.
ALEXNET_CONVS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
ALEXNET_POOLED = (1, 2, 5)
ALEXNET_FC = 4096
ALEXNET_COUNTS = (57_030_724, 710_108_864)  # params (4-way head), conv + fc MACs at 224 x 224


# --- layers -----------------------------------------------------------------------------------------
class ConvBNReLU(nn.Sequential):
    """conv (k x k, 'same' padding) -> BatchNorm -> ReLU (the official ``BasicBlock``)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int | None = None,
                 bias: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2 if padding is None else padding, bias=bias)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)


def _pool(kind: str | None) -> nn.Module:
    if kind == "max":
        return nn.MaxPool2d(3, stride=2, padding=1)
    if kind == "avg":
        return nn.AvgPool2d(3, stride=2, padding=1)  # count_include_pad=True, as the official code
    return nn.Identity()


class NINBlock(nn.Sequential):
    """Three conv-BN-ReLU layers ((kernel, channels) each), then an optional 3x3/2 pooling."""

    def __init__(self, cin: int, layers: tuple[tuple[int, int], ...], pool: str | None):
        super().__init__()
        for i, (k, c) in enumerate(layers):
            self.add_module(f"conv{i + 1}", ConvBNReLU(cin, c, k))  # (B, cin, H, W) -> (B, c, H, W)
            cin = c
        self.pool = _pool(pool)  # (B, c, H, W) -> (B, c, H/2, W/2) or unchanged
        self.out_chs = cin


# --- the networks -----------------------------------------------------------------------------------
class RotNetNIN(Backbone):
    """The RotNet Network-in-Network of paper Sec. 3.1 (official ``NetworkInNetwork``).

    Args:
        num_classes: outputs of the linear head (4 rotations; 0 gives the pooled embedding).
        in_chans: input channels.
        num_blocks: NIN blocks (>= 3; the paper's RotNets have 3, 4 or 5).
        width: multiplier of every block width (1.0: the paper's 192/160/96).
        pool_block3: 3x3/2 average pooling after block 3 (official ``use_avg_on_conv3``; off in the
            RotNet configs, and only used when ``num_blocks > 3``, as the official code).
        drop_rate: dropout before the linear head (not in the paper; 0).
        global_pool: "avg" (the paper), "max", "avgmax", "catavgmax" or "" (timm's values).
        drop_path_rate: 0 only (no residual paths).
    """

    def __init__(self, num_classes: int = 4, in_chans: int = 3, num_blocks: int = 4, width: float = 1.0,
                 pool_block3: bool = False, drop_rate: float = 0.0, global_pool: str = "avg",
                 drop_path_rate: float = 0.0):
        super().__init__()
        no_drop_path(drop_path_rate, "RotNet NIN")
        if num_blocks < 3:
            raise ConvzooError(f"a RotNet NIN has at least 3 blocks (the official code asserts it), got {num_blocks}")
        if width <= 0:
            raise ConvzooError(f"NIN width multiplier must be > 0, got {width}")
        pools = dict(NIN_POOL)
        if pool_block3 and num_blocks > 3:
            pools[3] = "avg"
        blocks, feature_info, cin, reduction = [], [], in_chans, 1
        for b in range(1, num_blocks + 1):
            layers = NIN_BLOCK1 if b == 1 else NIN_BLOCK2 if b == 2 else NIN_BLOCK_N
            layers = tuple((k, max(1, round(c * width))) for k, c in layers)
            block = NINBlock(cin, layers, pools.get(b))
            reduction *= 2 if pools.get(b) else 1
            blocks.append(block)
            cin = block.out_chs
            feature_info.append({"num_chs": cin, "reduction": reduction, "module": f"blocks.{b - 1}"})
        self.blocks = nn.Sequential(*blocks)
        self.num_blocks, self.num_classes, self.num_features = num_blocks, num_classes, cin
        self.feature_info = feature_info
        self.head = ClassifierHead(cin, num_classes, pool=global_pool, drop_rate=drop_rate)  # GAP -> linear

    def forward_blocks(self, x: torch.Tensor, out_blocks) -> list[torch.Tensor]:
        """The outputs of the blocks ``out_blocks`` (1-based, in the order asked); stops after the last."""
        return _run_until(self.blocks, x, out_blocks, "block")

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        return self.forward_blocks(x, range(1, (stop or self.num_blocks) + 1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)  # (B, 3, H, W) -> (B, 192, H/4, W/4) (block-3 pooling: H/8)


class AlexNetHead(nn.Module):
    """AlexNet's fc layers: flatten -> [fc (no bias) -> BN -> ReLU] x 2 -> linear (``num_classes=0``:
    the 4096-d embedding). The same ``reset``/``forward(x, pre_logits)`` interface as ClassifierHead."""

    def __init__(self, in_features: int, hidden: int, num_classes: int):
        super().__init__()
        self.hidden = hidden
        self.fc_block = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(in_features, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.hidden, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.fc_block(x)  # (B, 256, 6, 6) -> (B, 4096)
        return x if pre_logits else self.fc(x)


class RotNetAlexNet(Backbone):
    """The RotNet AlexNet of paper Sec. 3.2 (official ``architectures/AlexNet.py``); ``forward_blocks``
    takes conv1..conv5 (1-based), each block's output before its max-pool (the official 'convN' keys)."""

    def __init__(self, num_classes: int = 4, in_chans: int = 3, drop_path_rate: float = 0.0):
        super().__init__()
        no_drop_path(drop_path_rate, "RotNet AlexNet")
        convs, feature_info, cin, reduction = [], [], in_chans, 1
        for i, (c, k, s, p) in enumerate(ALEXNET_CONVS, start=1):
            block = nn.Sequential()
            if i - 1 in ALEXNET_POOLED:  # the max-pool of the previous block opens this one
                block.add_module("pool", nn.MaxPool2d(3, stride=2))
                reduction *= 2
            block.add_module("conv", ConvBNReLU(cin, c, k, s, p, bias=True))
            reduction *= s
            convs.append(block)
            feature_info.append({"num_chs": c, "reduction": reduction, "module": f"blocks.{i - 1}"})
            cin = c
        self.blocks = nn.Sequential(*convs)  # conv1 .. conv5
        self.pool5 = nn.Sequential(nn.MaxPool2d(3, stride=2), nn.AdaptiveAvgPool2d(6))  # (B, 256, 6, 6)
        self.num_blocks, self.num_classes, self.num_features = len(convs), num_classes, ALEXNET_FC
        self.feature_info = feature_info
        self.head = AlexNetHead(cin * 6 * 6, ALEXNET_FC, num_classes)

    def forward_blocks(self, x: torch.Tensor, out_blocks) -> list[torch.Tensor]:
        return _run_until(self.blocks, x, out_blocks, "conv block")

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        return self.forward_blocks(x, range(1, (stop or self.num_blocks) + 1))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool5(self.blocks(x))  # (B, 3, 224, 224) -> (B, 256, 6, 6)


def _run_until(blocks: nn.Sequential, x: torch.Tensor, out_blocks, what: str) -> list[torch.Tensor]:
    wanted = [int(b) for b in out_blocks]
    if not wanted or any(not 1 <= b <= len(blocks) for b in wanted):
        raise ConvzooError(f"{what}s are numbered 1..{len(blocks)}, got {list(out_blocks)}")
    out: dict[int, torch.Tensor] = {}
    for i, block in enumerate(blocks, start=1):
        x = block(x)
        if i in wanted:
            out[i] = x
        if i == max(wanted):
            break
    return [out[b] for b in wanted]


# --- registered variants ----------------------------------------------------------------------------
RECIPES = ("rotnet_nin4_digits", "rotnet_probe_digits", "rotnet_nin4_cifar10_paper", "rotnet_probe_cifar10_paper")
_NIN_NOTE = ("block outputs for probing: forward_blocks(x, [k]); the paper's frozen-feature classifiers are the "
             "frozen_probe method")


def _nin_card(name: str, blocks: int) -> ModelCard:
    params, macs = NIN_COUNTS[name]
    return ModelCard(
        name=name, paper=20, family="rotnet", task="rotation", in_chans=3, num_classes=4,
        input_size=(32, 32), test_size=(32, 32), params=params,
        params_source=("official architectures/NetworkInNetwork.py with config/CIFAR10_RotNet_NIN4blocks.py options "
                       f"(num_stages={blocks}, use_avg_on_conv3=False, 4-way head), counted from its layer list: "
                       "closed form, tests/models/test_rotnet.py::test_nin_counts_match_official_layer_list"),
        macs=macs, macs_rtol=0.0,
        macs_source=("conv + linear multiply-adds at 32x32 (BN, pooling not counted): closed form of the official "
                     "layer list, tests/models/test_rotnet.py::test_nin_counts_match_official_layer_list"),
        capabilities=frozenset({"features", "compile", "onnx", "channels_last", "bf16"}),
        recipes=RECIPES if blocks == 4 else (),
        source=f"paper Sec. 3.1 and Table 1 (RotNet with {blocks} conv. blocks); official NetworkInNetwork.py",
        mean=CIFAR10_MEAN, std=CIFAR10_STD, crop_pct=1.0,
        notes=_NIN_NOTE + ". Preprocessing: the official dataloader's CIFAR-10 statistics "
                          "([125.3, 123.0, 113.9] / [63.0, 62.1, 66.7] / 255), no crop",
    )


def _nin_factory(name: str, blocks: int):
    @register_model(_nin_card(name, blocks))
    def factory(num_classes: int = 4, in_chans: int = 3, **kwargs) -> RotNetNIN:
        return RotNetNIN(num_classes=num_classes, in_chans=in_chans, num_blocks=blocks, **kwargs)

    factory.__name__ = factory.__qualname__ = name
    return factory


rotnet_nin3 = _nin_factory("rotnet_nin3", 3)
rotnet_nin4 = _nin_factory("rotnet_nin4", 4)
rotnet_nin5 = _nin_factory("rotnet_nin5", 5)


@register_model(ModelCard(
    name="rotnet_alexnet", paper=20, family="rotnet", task="rotation", in_chans=3, num_classes=4,
    input_size=(224, 224), test_size=(224, 224), params=ALEXNET_COUNTS[0],
    params_source="official architectures/AlexNet.py (BN after every conv and hidden fc, 4-way head), "
                  "counted from its layer list: closed form, tests/models/test_rotnet.py::"
                  "test_alexnet_counts_match_official_layer_list",
    macs=ALEXNET_COUNTS[1], macs_rtol=0.0,
    macs_source=("conv + linear multiply-adds at 224x224 (BN, pooling not counted): closed form of the official "
                 "layer list, tests/models/test_rotnet.py::test_alexnet_counts_match_official_layer_list"),
    capabilities=frozenset({"features", "compile", "onnx", "channels_last"}),
    source="paper Sec. 3.2 (RotNet AlexNet for ImageNet / Places / PASCAL); official AlexNet.py",
    notes="BatchNorm1d in the fc layers: train-mode batches need more than one image. Preprocessing: ImageNet "
          "statistics, Resize 256 + CenterCrop 224 (the official ImageNet dataloader)",
))
def rotnet_alexnet(num_classes: int = 4, in_chans: int = 3, **kwargs) -> RotNetAlexNet:
    return RotNetAlexNet(num_classes=num_classes, in_chans=in_chans, **kwargs)
