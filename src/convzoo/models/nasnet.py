"""NASNet-A: Learning Transferable Architectures for Scalable Image Recognition.

Seed paper 14; Zoph, Vasudevan, Shlens, Le; CVPR 2018; arXiv 1707.07012. Official code: tensorflow/models
``research/slim/nets/nasnet/nasnet.py`` (configs ``cifar_config``, ``mobile_imagenet_config``,
``large_imagenet_config``; ``_build_nasnet_base``, ``_imagenet_stem``, ``_cifar_stem``, ``_build_aux_head``).

Implemented here (paper Sec. 3-4, Fig. 2; the official builders):
- Cells from any genotype of the NASNet search space (:mod:`convzoo.nas.nasnet_space`); the NASNet-A
  normal and reduction cells by default (``genotype``: a :class:`~convzoo.nas.nasnet_space.Genotype` or its
  ``to_dict()``).
- :class:`NASNet`: ImageNet stem (3x3 stride-2 VALID conv of 32 x stem_multiplier filters + BN, then two
  reduction cells at filter scaling 1/4 and 1/2) or CIFAR stem (3x3 conv of F x stem_multiplier filters + BN);
  ``num_cells`` normal cells with reduction cells inserted before cells num_cells/3 and 2 num_cells/3, the
  filters doubling at each; each cell reads the two previous outputs (with ``skip_reduction_layer_input``,
  NASNet-A Large's flag, the cell after a reduction reads the output before the reduction's input);
  final ReLU -> global pool -> dropout -> ``last_linear``.
- Auxiliary head (``aux_head=True``; off by default, as timm's model): ReLU of the cell before the second
  reduction -> 5x5/3 VALID avg pool -> 1x1 conv 128 -> BN-ReLU -> conv 768 with a kernel covering the map at
  ``img_size`` -> BN-ReLU -> linear. In training the model then returns ``(logits, aux_logits)``; the
  ``auxiliary`` method (:mod:`convzoo.methods.auxiliary`) adds 0.4 x the auxiliary loss (paper Sec. 4.1).
- ScheduledDropPath on every non-identity operation (``drop_path_rate`` = 1 - the official
  ``drop_path_keep_prob``), depth-scaled over stem, reduction and normal cells; :meth:`set_drop_path_progress`
  moves it with training progress (the ``auxiliary`` method calls it after each optimizer step).
- Variants (``NASNET_CFGS``): NASNet-A Large (6 @ 4032, 331 px) = timm ``nasnetalarge``; Mobile (4 @ 1056,
  224 px); CIFAR (6 @ 768) and (7 @ 2304), 32 px.

Departures from the official code, and why:
- Padding is TensorFlow "SAME" everywhere (asymmetric at stride 2), as the official weights need; a stride-2
  average pooling counts its padded zeros, as timm's port does (TensorFlow excludes them), so that timm's
  weights give timm's outputs.
- ``features(x)`` returns, as timm's ``feature_info``: the stem conv, ReLU of stem cell 0 (ImageNet stem),
  ReLU of the cell before each reduction and the final ReLU map.
- The auxiliary head's kernel is fixed by ``img_size``; at another input size its map is resized to the
  kernel (nearest) or averaged to 1x1 after it, so any input size trains.

State-dict keys equal timm's ``nasnetalarge`` (``conv0.conv``, ``cell_stem_0.comb_iter_0_left.separable_1``,
``cell_0.path_1.conv``, ``reduction_cell_0.conv_prev_1x1``, ``last_linear``), so timm's weights load directly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import check_drop_rate
from convzoo.layers.head import Backbone, apply_fc, check_pool, create_classifier
from convzoo.nas.nasnet_space import BN_EPS, NASNET_A, Genotype, NASNetCell, ScheduledDropPath, fold_bn_
from convzoo.registry import ModelCard, register_model

__all__ = ["NASNET_CFGS", "AuxHead", "NASNet", "reduction_indices"]


def reduction_indices(num_cells: int, num_reductions: int = 2) -> list[int]:
    """Normal-cell indices before which a reduction cell sits (official ``calc_reduction_layers``)."""
    return [int(p / (num_reductions + 1) * num_cells) for p in range(1, num_reductions + 1)]


class ConvBn(nn.Module):
    """conv (no bias) -> BN: the stems' first layer (timm ``conv0.conv`` / ``conv0.bn``)."""

    def __init__(self, cin: int, cout: int, stride: int, padding: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def reparameterize(self) -> None:
        """Inference: BN folded into the conv (``convzoo.deploy``)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.bn = fold_bn_(self.bn, self.conv)


class AuxHead(nn.Module):
    """Official ``_build_aux_head``: 5x5/3 avg pool -> 1x1 conv 128 -> BN-ReLU -> conv 768 (kernel = the map)
    -> BN-ReLU -> linear. Input: the ReLU of a cell output."""

    def __init__(self, cin: int, num_classes: int, map_size: int):
        super().__init__()
        k = (map_size - 5) // 3 + 1
        if k < 1:
            raise ConvzooError(f"the auxiliary head needs a map of at least 5 pixels, got {map_size}; "
                               "build with a larger img_size or aux_head=False")
        self.proj = nn.Conv2d(cin, 128, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(128, eps=BN_EPS, momentum=0.1)
        self.conv = nn.Conv2d(128, 768, k, bias=False)
        self.bn1 = nn.BatchNorm2d(768, eps=BN_EPS, momentum=0.1)
        self.fc = nn.Linear(768, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # VALID 5x5/3 pooling; a map smaller than the window (inputs far below img_size) is averaged instead
        x = F.avg_pool2d(x, 5, 3) if min(x.shape[-2:]) >= 5 else x.mean((2, 3), keepdim=True)
        x = F.relu(self.bn0(self.proj(x)))
        k = self.conv.kernel_size
        if x.shape[-2] < k[0] or x.shape[-1] < k[1]:
            x = F.interpolate(x, size=k, mode="nearest")
        x = F.relu(self.bn1(self.conv(x))).mean((2, 3))  # (B, 768); 1x1 at img_size
        return self.fc(x)

    def reparameterize(self) -> None:
        if isinstance(self.bn0, nn.BatchNorm2d):
            self.bn0, self.bn1 = fold_bn_(self.bn0, self.proj), fold_bn_(self.bn1, self.conv)


class NASNet(Backbone):
    """NASNet from a genotype (NASNet-A by default).

    Args:
        num_cells: normal cells in all (3 N for "N @ P").
        num_conv_filters: F, the cell width of the first stage (P = 24 F for NASNet-A).
        stem_multiplier: stem width = 32 x (ImageNet) or F x (CIFAR) this.
        stem: "imagenet" (stride 32) or "cifar" (stride 4).
        skip_reduction_layer_input: NASNet-A Large's wiring of the cell after a reduction.
        genotype: a Genotype or its dict (default NASNet-A).
        num_reductions, filter_scaling_rate: reduction cells between the stages, width factor at each.
        aux_head, img_size: the auxiliary head and the input size its kernel is sized for.
        drop_rate: dropout before the classifier (official: 1 - dense_dropout_keep_prob).
        drop_path_rate: 1 - the official drop_path_keep_prob (ScheduledDropPath).
    """

    def __init__(self, num_cells: int = 18, num_conv_filters: int = 168, stem_multiplier: float = 3.0,
                 stem: str = "imagenet", skip_reduction_layer_input: bool = True,
                 genotype: Genotype | dict | None = None, num_reductions: int = 2, filter_scaling_rate: float = 2.0,
                 aux_head: bool = False, img_size: int = 331, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        genotype = NASNET_A if genotype is None else genotype
        genotype = (Genotype.from_dict(genotype) if isinstance(genotype, dict) else genotype).validate()
        if stem not in ("imagenet", "cifar"):
            raise ConvzooError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if num_cells < num_reductions + 1 or num_conv_filters < 4:
            raise ConvzooError(f"NASNet needs num_cells > num_reductions and num_conv_filters >= 4, got "
                               f"{num_cells}, {num_conv_filters}")
        check_drop_rate(drop_rate, "drop_rate")
        check_drop_rate(drop_path_rate)
        self.genotype, self.num_classes, self.drop_rate = genotype, num_classes, drop_rate
        imagenet = stem == "imagenet"
        reductions = reduction_indices(num_cells, num_reductions)
        total = num_cells + num_reductions + (2 if imagenet else 0)  # cells counted by the drop-path schedule
        # stem: (B, in_chans, H, W) -> (B, C, (H-1)//2, ...) VALID stride 2, or (B, C, H, W)
        stem_chs = int(32 * stem_multiplier) if imagenet else int(num_conv_filters * stem_multiplier)
        self.conv0 = ConvBn(in_chans, stem_chs, 2 if imagenet else 1, 0 if imagenet else 1)
        chans, level = [stem_chs], [1 if imagenet else 0]  # per output: channels, log2(stride)
        plan: list[tuple[str, int, int | None]] = [("conv0", -1, None)]  # (module, input output, prev output)
        taps = [0] if imagenet else []
        outputs: list[int | None] = [None, 0]  # official cell_outputs (indices into the outputs)
        cell_num = 0

        def add(name, cur, prev, filters, reduction, skip_prev=None):
            nonlocal cell_num
            prev_chs = None if prev is None else chans[prev]
            cell = NASNetCell(genotype.reduction if reduction else genotype.normal, chans[cur], prev_chs, filters,
                              reduction, prev is not None and level[prev] != level[cur], drop_path_rate,
                              cell_num, total)
            self.add_module(name, cell)
            cell_num += 1
            plan.append((name, cur, prev))
            chans.append(cell.out_chs)
            level.append(level[cur] + (1 if reduction else 0))
            outputs.append(len(chans) - 1)

        scaling = 1.0
        if imagenet:  # two stem reduction cells at filter scaling 1/4, 1/2
            scaling = 1.0 / filter_scaling_rate ** 2
            for i in range(2):
                add(f"cell_stem_{i}", outputs[-1], outputs[-2], int(num_conv_filters * scaling), True)
                scaling *= filter_scaling_rate
            taps.append(len(chans) - 2)  # stem cell 0 (timm's reduction-4 map)
        self.aux_tap = None
        for n in range(num_cells):
            prev = outputs[-2] if skip_reduction_layer_input else None
            if n in reductions:
                scaling *= filter_scaling_rate
                taps.append(len(chans) - 1)  # the cell before each reduction
                add(f"reduction_cell_{reductions.index(n)}", outputs[-1], outputs[-2],
                    int(num_conv_filters * scaling), True)
            if not skip_reduction_layer_input:
                prev = outputs[-2]
            add(f"cell_{n}", outputs[-1], prev, int(num_conv_filters * scaling), False)
            if len(reductions) >= 2 and n == reductions[1] - 1:
                self.aux_tap = len(chans) - 1
        taps.append(len(chans) - 1)
        self._plan, self._taps = tuple(plan), tuple(taps)
        self.num_features = chans[-1]
        self.act = nn.ReLU()
        names = [p[0] for p in plan]
        self.feature_info = [{"num_chs": chans[t], "reduction": 2 ** level[t], "module": names[t]} for t in taps]
        self.aux_head = None
        if aux_head:
            if self.aux_tap is None:
                raise ConvzooError("the auxiliary head sits before the second reduction: build with num_reductions >= 2")
            size = (img_size - 3) // 2 + 1 if imagenet else img_size
            for _ in range(level[self.aux_tap] - level[0]):
                size = math.ceil(size / 2)
            self.aux_head = AuxHead(chans[self.aux_tap], num_classes, size)
        self.global_pool, self.last_linear = create_classifier(self.num_features, num_classes, check_pool(global_pool))
        self.head_drop = nn.Dropout(drop_rate)

    # --- forward ---------------------------------------------------------------------------------------
    def _run(self, x: torch.Tensor, stop: int | None = None):
        """Every output of the plan up to index ``stop`` (all by default)."""
        outs: list[torch.Tensor] = []
        acts: dict[int, torch.Tensor] = {}  # ReLU of an output, computed once for the two cells that read it

        def act(i: int) -> torch.Tensor:
            if i not in acts:
                acts[i] = F.relu(outs[i])
            return acts[i]

        for name, cur, prev in self._plan[:None if stop is None else stop + 1]:
            layer = getattr(self, name)
            if cur < 0:
                outs.append(layer(x))
                continue
            args = (outs[cur], None if prev is None else outs[prev], act(cur),
                    act(prev) if prev is not None and layer.prev_needs_relu else None)
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                outs.append(checkpoint(layer, *args, use_reentrant=False))
            else:
                outs.append(layer(*args))
            for i in [i for i in acts if i < min(cur, cur if prev is None else prev)]:
                del acts[i]  # read by no later cell
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_chans, H, W) -> (B, 24 F, H/32, W/32) (ImageNet stem) or (B, 24 F, H/4, W/4) (CIFAR stem)
        return self.act(self._run(x)[-1])

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """The ``feature_info`` maps (ReLU applied to cell outputs, as timm's taps); the first ``stop`` only."""
        taps = self._taps[:stop]
        outs = self._run(x, taps[-1])
        return [outs[t] if t == 0 else F.relu(outs[t]) for t in taps]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))  # (B, C, h, w) -> (B, C)
        return x if pre_logits else apply_fc(self.last_linear, x)

    def forward(self, x: torch.Tensor):
        """Logits; in training with the auxiliary head, ``(logits, aux_logits)``."""
        if self.aux_head is None or not self.training:
            return self.forward_head(self.forward_features(x))
        outs = self._run(x)
        return self.forward_head(self.act(outs[-1])), self.aux_head(F.relu(outs[self.aux_tap]))

    # --- the backbone contract -----------------------------------------------------------------------
    def get_classifier(self) -> nn.Module:
        return self.last_linear

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        pool = self.global_pool.pool_type if global_pool is None else check_pool(global_pool)
        self.global_pool, self.last_linear = create_classifier(self.num_features, num_classes, pool)
        if self.aux_head is not None:
            self.aux_head.fc = nn.Linear(768, num_classes) if num_classes > 0 else nn.Identity()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing of every cell in training."""
        self.grad_checkpointing = enable

    def set_drop_path_progress(self, progress: float) -> None:
        """Training progress in [0, 1] (step / total steps) for every :class:`ScheduledDropPath`."""
        for m in self.modules():
            if isinstance(m, ScheduledDropPath):
                m.set_progress(progress)


# --- variants (official nasnet.py configs; paper Table 1-2; fact sheet G1b "14") ----------------------------

NASNET_CFGS = {
    "nasnetalarge": {"num_cells": 18, "num_conv_filters": 168, "stem_multiplier": 3.0, "stem": "imagenet",
                     "skip_reduction_layer_input": True, "img_size": 331},
    "nasnetamobile": {"num_cells": 12, "num_conv_filters": 44, "stem_multiplier": 1.0, "stem": "imagenet",
                      "skip_reduction_layer_input": False, "img_size": 224},
    "nasnet_a_cifar": {"num_cells": 18, "num_conv_filters": 32, "stem_multiplier": 3.0, "stem": "cifar",
                       "skip_reduction_layer_input": False, "img_size": 32},
    "nasnet_a_cifar_7_2304": {"num_cells": 21, "num_conv_filters": 96, "stem_multiplier": 3.0, "stem": "cifar",
                              "skip_reduction_layer_input": False, "img_size": 32},
}


def _make(name: str, **kw) -> NASNet:
    return NASNet(**{**NASNET_CFGS[name], **kw})


_SRC = ("paper Sec. 3-4, Fig. 2 and 4, Table 1-2; official tensorflow/models research/slim/nets/nasnet "
        "nasnet.py (configs, _build_nasnet_base, _build_aux_head) and nasnet_utils.py (cells)")
# torch.compile is claimed (and so compiled by the contract) on nasnetalarge only, the bench model: the other
# variants run the same cells, and compiling each costs minutes on CI's two cores
_CAPS = frozenset({"features", "onnx", "channels_last"})
_TF = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}  # TF inception preprocessing: [-1, 1]
_BN_STATS = "the paper's and Keras's counts include the BN moving mean/variance (proven in tests/models/test_nasnet.py)"


def _card(name: str, capabilities=_CAPS, **kw) -> ModelCard:
    return ModelCard(name=name, paper=14, family="nasnet", task="classification", source=_SRC,
                     capabilities=capabilities, **_TF, **kw)


@register_model(_card(
    "nasnetalarge", input_size=(331, 331), test_size=(35, 35), params=88_753_150,
    params_source=("timm nasnetalarge (sum of numel of parameters, 1000 classes, no aux head); the paper's 88.9M = "
                   "Keras NASNetLarge 88,949,818 adds the 196,668 BN statistics: " + _BN_STATS),
    macs=23_800_000_000, macs_rtol=0.0021, macs_source="paper Table 2: 23.8B mult-adds at 331 px (rounded)",
    reference="timm:nasnetalarge", interpolation="bicubic", crop_pct=0.911, capabilities=_CAPS | {"compile"},
    recipes=("nasnet_a_large_imagenet_paper",),
    notes="NASNet-A (6 @ 4032); ImageNet top-1 82.7 / top-5 96.2 (paper abstract). Keys and outputs equal timm's."))
def nasnetalarge(**kw) -> NASNet:
    return _make("nasnetalarge", **kw)


@register_model(_card(
    "nasnetamobile", input_size=(224, 224), test_size=(35, 35), params=5_289_978,
    params_source=("Keras NASNetMobile 5,326,716 (Keras applications table) less its 36,738 BN moving "
                   "mean/variance values (sum of numel of parameters, 1000 classes, no aux head); paper 5.3M: "
                   + _BN_STATS),
    macs=564_000_000, macs_rtol=0.0009, macs_source="paper Table 2: 564M mult-adds at 224 px (rounded)",
    interpolation="bilinear", crop_pct=0.875, recipes=("nasnet_a_mobile_imagenet_paper",),
    notes="NASNet-A (4 @ 1056); ImageNet top-1 74.0 / top-5 91.6 (paper). No installable PyTorch reference "
          "(Keras / Cadene pretrainedmodels only)."))
def nasnetamobile(**kw) -> NASNet:
    return _make("nasnetamobile", **kw)


@register_model(_card(
    "nasnet_a_cifar", num_classes=10, input_size=(32, 32), test_size=(16, 16), params=3_300_000,
    params_rtol=0.015,
    params_source=("paper Table 1: 3.3M (rounded) for NASNet-A (6 @ 768), 10 classes, without the auxiliary "
                   "head (3,346,538 parameters here; the aux head adds 1.63M)"),
    crop_pct=1.0, recipes=("nasnet_a_cifar10_paper", "nasnet_digits"),
    notes="NASNet-A (6 @ 768) CIFAR-10: 2.65% error with cutout (paper Table 1); aux_head=True for training."))
def nasnet_a_cifar(**kw) -> NASNet:
    return _make("nasnet_a_cifar", **kw)


@register_model(_card(
    "nasnet_a_cifar_7_2304", num_classes=10, input_size=(32, 32), test_size=(16, 16), params=32_590_954,
    capabilities=_CAPS - {"onnx"},  # ONNX is proven on nasnet_a_cifar, the same network narrower
    params_source=("a PIN, not a paper figure: this implementation's count of the official cells at N = 7, F = 96 "
                   "(10 classes, no aux head). The paper's Table 1 lists 27.6M, which no width/depth of the "
                   "official cells reproduces (N = 6 gives 28.2M); the 6 @ 768 model matches the paper's 3.3M"),
    crop_pct=1.0,
    notes="NASNet-A (7 @ 2304) CIFAR-10 (F = 96, 21 normal cells): 2.40% error with cutout (paper Table 1)."))
def nasnet_a_cifar_7_2304(**kw) -> NASNet:
    return _make("nasnet_a_cifar_7_2304", **kw)
