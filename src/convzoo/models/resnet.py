"""The ResNet skeleton shared by the papers that change a few layers of ResNet / ResNeXt.

Not a seed paper itself: Deep Residual Learning (He et al. 2016, arXiv 1512.03385) in torchvision's
layout (7x7/2 stem + 3x3/2 max-pool, stride on the 3x3 conv of the bottleneck ("ResNet v1.5"), 1x1
conv + BN projection shortcut), and ResNeXt's grouped bottleneck (Xie et al. 2017, arXiv 1611.05431:
width = floor(planes * base_width / 64) * groups). It registers no model: ECA-Net (paper 43,
``ecanet.py``), ELA (paper 10, ``ela.py``) and IBN-Net (paper 37, ``ibnnet.py``) each build their
networks from it and supply only what their paper changes, through per-block options:

- ``attn`` (a factory ``channels -> module``) and ``attn_name`` (its state-dict key, e.g. ``eca``,
  ``ela``, ``se``): attention after the last BN of the residual branch, before the add (the
  position of SE and ECA, and of ELA in basic blocks; ELA's bottleneck re-weights the 3x3 conv's
  output instead: ``ela.py``);
- ``norm1`` (a factory): the norm after the first conv of the block (IBN-a's IBN layer);
- ``post_norm`` (a factory, key ``IN``): a norm after the residual add, before the final ReLU
  (IBN-b's InstanceNorm);
and model options ``stem_norm`` (IBN-b's stem InstanceNorm), ``groups`` / ``base_width`` (ResNeXt).
``block_args(stage, index, num_blocks) -> dict`` gives each block its options, so a paper can place
its layer in some blocks only (IBN-a: stages 1-3; IBN-b: the last block of stages 1-2).

State-dict keys are torchvision's (``conv1``, ``bn1``, ``layer1..4``, ``downsample``, ``fc``), so
torchvision / timm / official-code checkpoints of all three papers load by name.
``reparameterize()`` folds every conv+BN pair (BatchNorm only; IBN and InstanceNorm use per-image
statistics and stay) for ``convzoo.deploy``.

timm's arguments: ``global_pool`` (avg | max | avgmax | catavgmax | ""), ``drop_rate`` (dropout before
``fc``) and ``drop_path_rate`` (stochastic depth of each residual branch, after the attention and before the
add as in timm's ResNet, rising linearly from 0 at the first block to the rate at the last; He et al. use
none, Huang et al. 2016 introduced it on this network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import drop_path, drop_path_rates
from convzoo.layers.fuse import fuse_conv_bn
from convzoo.layers.head import Backbone, SelectAdaptivePool, apply_fc, create_classifier, make_fc

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "fold_bn_pairs"]

NormFactory = Callable[[int], nn.Module]


def fold_bn_pairs(module: nn.Module, pairs: Sequence[tuple[str, str]]) -> None:
    """Fold ``bn`` into ``conv`` for each (conv, bn) attribute pair whose norm is a BatchNorm2d."""
    for conv_name, bn_name in pairs:
        bn = getattr(module, bn_name)
        if type(bn) is nn.BatchNorm2d:
            setattr(module, conv_name, fuse_conv_bn(getattr(module, conv_name), bn))
            setattr(module, bn_name, nn.Identity())


class _ResidualBlock(nn.Module):
    """What the two blocks share: the attention slot, the post-add norm, the residual add."""

    expansion = 1
    convs: tuple[str, ...] = ()

    def _add_hooks(self, out: int, attn: NormFactory | None, attn_name: str, post_norm: NormFactory | None):
        self.attn_name = attn_name if attn is not None else None
        if attn is not None:
            self.add_module(attn_name, attn(out))
        self.IN = post_norm(out) if post_norm is not None else None  # key of the official IBN-b code
        self.drop_path = nn.Identity()  # stochastic depth of the branch: set by the network (no parameters)

    def _finish(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # out: the residual branch after its last norm, x: the block input
        if self.attn_name is not None:
            out = getattr(self, self.attn_name)(out)
        out = self.drop_path(out) + (x if self.downsample is None else self.downsample(x))
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)

    @property
    def last_bn(self) -> nn.Module:
        return getattr(self, f"bn{len(self.convs)}")

    def reparameterize(self) -> None:
        fold_bn_pairs(self, [(f"conv{i + 1}", f"bn{i + 1}") for i in range(len(self.convs))])


class BasicBlock(_ResidualBlock):
    """3x3 conv-norm1-ReLU -> 3x3 conv-BN -> [attn] -> + shortcut -> [IN] -> ReLU (ResNet-18/34)."""

    expansion = 1
    convs = ("conv1", "conv2")

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, *,
                 groups: int = 1, base_width: int = 64, norm1: NormFactory | None = None,
                 attn: NormFactory | None = None, attn_name: str = "attn", post_norm: NormFactory | None = None):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ConvzooError("the basic block has no groups / base width (ResNeXt needs block='bottleneck')")
        # x: (B, inplanes, H, W) -> (B, planes, H/s, W/s)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = (norm1 or nn.BatchNorm2d)(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self._add_hooks(planes, attn, attn_name, post_norm)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self._finish(self.bn2(self.conv2(out)), x)


class Bottleneck(_ResidualBlock):
    """1x1 conv-norm1-ReLU -> 3x3 (stride, groups) conv-BN-ReLU -> 1x1 conv-BN -> [attn] -> + shortcut
    -> [IN] -> ReLU (ResNet-50/101/152; ResNeXt with groups > 1)."""

    expansion = 4
    convs = ("conv1", "conv2", "conv3")

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, *,
                 groups: int = 1, base_width: int = 64, norm1: NormFactory | None = None,
                 attn: NormFactory | None = None, attn_name: str = "attn", post_norm: NormFactory | None = None):
        super().__init__()
        width = int(planes * base_width / 64) * groups  # ResNeXt: D * C; ResNet: planes
        out = planes * self.expansion
        # x: (B, inplanes, H, W) -> (B, width, H, W) -> (B, width, H/s, W/s) -> (B, 4 planes, H/s, W/s)
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = (norm1 or nn.BatchNorm2d)(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self._add_hooks(out, attn, attn_name, post_norm)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self._finish(self.bn3(self.conv3(out)), x)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(Backbone):
    """ResNet / ResNeXt: stem 7x7/2 conv-norm-ReLU + 3x3/2 max-pool, four stages, GAP, dropout, FC.

    Args:
        block: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101/152, ResNeXt).
        layers: blocks per stage.
        num_classes: 0 gives the pooled ``512 * expansion`` embedding.
        in_chans: input channels.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth, linear from 0 (first block) to this rate (last block).
        global_pool: "avg" (the paper), "max", "avgmax", "catavgmax" or "" (timm's values).
        zero_init_last: start the last BN weight of every residual branch at 0 (Goyal et al. 2017;
            timm's default). torchvision and the official codes of papers 10/37/43 use 1
            (``zero_init_last=False``); 0 keeps deep random networks numerically tame, which the
            equivalence tests rely on.
        groups, base_width: ResNeXt cardinality and base width (32, 4 for 32x4d).
        stem_norm: factory for the stem's norm (default BatchNorm2d).
        block_args: ``(stage, index, num_blocks) -> dict`` of per-block options (see module docstring).
    """

    def __init__(self, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3), num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.0, zero_init_last: bool = True, groups: int = 1,
                 base_width: int = 64, stem_norm: NormFactory | None = None,
                 block_args: Callable[[int, int, int], dict] | None = None, drop_path_rate: float = 0.0,
                 global_pool: str = "avg"):
        super().__init__()
        if block not in BLOCKS:
            raise ConvzooError(f"unknown ResNet block '{block}'; expected one of {sorted(BLOCKS)}")
        if len(layers) != 4 or min(layers) < 1:
            raise ConvzooError(f"layers needs 4 positive block counts, got {list(layers)}")
        block_cls = BLOCKS[block]
        self.num_classes, self.drop_rate = num_classes, drop_rate
        # stem: (B, in_chans, H, W) -> (B, 64, H/4, W/4)
        self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        self.bn1 = (stem_norm or nn.BatchNorm2d)(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        # stages: 64/128/256/512 planes at strides 4/8/16/32
        inplanes, self.feature_info = 64, []
        for s, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            stride, out = (1 if s == 0 else 2), planes * block_cls.expansion
            blocks = []
            for i in range(n):
                downsample = None
                if i == 0 and (stride != 1 or inplanes != out):
                    downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                extra = block_args(s, i, n) if block_args is not None else {}
                blocks.append(block_cls(inplanes, planes, stride if i == 0 else 1, downsample, groups=groups,
                                        base_width=base_width, **extra))
                inplanes = out
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
            self.feature_info.append({"num_chs": out, "reduction": 4 * 2 ** s, "module": f"layer{s + 1}"})
        # head: GAP -> dropout -> fc (torchvision key "fc")
        self.num_features = inplanes
        self.global_pool, self.fc = create_classifier(inplanes, num_classes, global_pool)
        self.drop = nn.Dropout(drop_rate)
        self.drop_path_rate = drop_path_rate
        self.set_drop_path(drop_path_rate)
        self._init_weights(zero_init_last)

    def residual_blocks(self) -> list[_ResidualBlock]:
        """The residual blocks in network order."""
        return [blk for info in self.feature_info for blk in getattr(self, info["module"])]

    def set_drop_path(self, drop_path_rate: float) -> None:
        """Stochastic depth on every residual branch, linear from 0 to ``drop_path_rate`` over the blocks."""
        depths = [len(getattr(self, info["module"])) for info in self.feature_info]
        rates = [r for stage in drop_path_rates(drop_path_rate, depths) for r in stage]
        for blk, rate in zip(self.residual_blocks(), rates):
            blk.drop_path = drop_path(rate)

    def _init_weights(self, zero_init_last: bool) -> None:
        # torchvision / official codes: conv ~ N(0, sqrt(2 / (k*k*out))) (Kaiming fan-out), norms 1 / 0;
        # attention layers keep their own initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, _ResidualBlock):
                    nn.init.zeros_(m.last_bn.weight)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_chans, H, W) -> (B, num_features, H/32, W/32)
        return self.layer4(self.layer3(self.layer2(self.layer1(self._stem(x)))))

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """Output of each stage: strides 4, 8, 16, 32 (``feature_info``; the first ``stop`` only when given)."""
        x, out = self._stem(x), []
        for info in self.feature_info[:stop]:
            x = getattr(self, info["module"])(x)
            out.append(x)
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.global_pool(x))  # (B, num_features); adaptive, so any input size works
        return x if pre_logits else apply_fc(self.fc, x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool(global_pool)
        self.fc = make_fc(self.num_features * self.global_pool.feat_mult(), num_classes)

    def reparameterize(self) -> None:
        """Fold the stem's BN (blocks and ``downsample`` are folded by ``convzoo.deploy``)."""
        fold_bn_pairs(self, [("conv1", "bn1")])
