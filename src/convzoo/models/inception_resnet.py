"""Inception-ResNet-v1 and -v2: Inception blocks with scaled residual connections.

Seed paper 33 (Szegedy, Ioffe, Vanhoucke, Alemi, AAAI 2017, arXiv 1602.07261), Sec. 3.2-3.3. Shared
blocks (Conv-BN-ReLU, Reduction-A, the Inception-v4 stem) come from :mod:`convzoo.models.inception_v4`.

Residual Inception block (Figs. 10, 11, 13 for v1; 16, 17, 19 for v2): parallel Conv-BN-ReLU branches
-> concat -> 1x1 conv *without activation* ("Linear", with bias, no BN) back to the input depth ->
``x + scale * r`` -> ReLU. BN is used on the traditional layers only, not on top of the summation
(Sec. 3.2). Sec. 3.3: residuals are scaled by a constant between 0.1 and 0.3 before the addition,
needed to keep very wide residual networks (> ~1000 filters) from "dying"; the paper gives no
per-block values, so the defaults are TF-slim's 0.17 / 0.10 / 0.20 for the A / B / C blocks
(``scales``).

Three layouts, as data (:data:`IR_CFGS`):

- ``inception_resnet_v1`` (paper, Fig. 15): stem of Fig. 14 (-> 35x35x256), 5 x IR-A (Fig. 10),
  Reduction-A (k, l, m, n = 192, 192, 256, 384; Fig. 7, Table 1) -> 896, 10 x IR-B (Fig. 11),
  Reduction-B (Fig. 12) -> 1792, 5 x IR-C (Fig. 13), average pool, dropout (keep 0.8), FC.
  No public implementation exists to compare with (fact sheet G1a "Paper 33").
- ``inception_resnet_v2_paper`` (paper, Fig. 15): Inception-v4 stem (Fig. 3, -> 35x35x384),
  5 x IR-A (Fig. 16), Reduction-A (256, 256, 384, 384) -> 1152, 10 x IR-B (Fig. 17), Reduction-B
  (Fig. 18) -> 2144, 5 x IR-C (Fig. 19), pool, dropout, FC. The figures are not self-consistent:
  Fig. 17 labels its linear 1x1 conv 1154 filters while the block input has 1152 channels, and the
  width printed in Fig. 19 does not equal the 2144 channels Reduction-B produces. A residual sum needs
  equal depths, so the linear conv here always restores the block's input depth.
- ``inception_resnet_v2`` (TF-slim ``nets/inception_resnet_v2.py``, the released weights, Keras and
  timm; 55,843,464 parameters): maintainers say it was built "under the advice of the authors"
  (tensorflow/models #1553, #11227). IR-v1-like stem ending in a max-pool, then Mixed_5b (an
  Inception-v3 style module -> 35x35x320), 10 x Block35 (= IR-A of Fig. 16 on 320 channels),
  Mixed_6a (= Reduction-A 256, 256, 384, 384) -> 1088, 20 x Block17 (Fig. 17), Mixed_7a (= Fig. 18)
  -> 2080, 9 x Block8 (Fig. 19) + one Block8 with scale 1.0 and no ReLU, Conv2d_7b 1x1 -> 1536, pool,
  FC. It carries timm's name; :func:`convzoo.weights.from_timm.from_timm` converts timm weights.

Stages are named ``stem``, ``blocks_a``, ``reduction_a``, ``blocks_b``, ``reduction_b``, ``blocks_c``
(+ ``conv2d_7b`` in the TF-slim layout); inside blocks the names are TF-slim/timm's (``branchN``,
``conv``/``bn``), except the linear 1x1 conv, ``proj`` (timm: ``conv2d``).

timm's arguments: ``global_pool``, ``drop_rate`` and ``drop_path_rate``: stochastic depth of every scaled
residual branch (``x + drop_path(scale * r)``), linear from 0 at the first residual block to the rate at the
last (Huang et al. 2016's rule, timm's ``calculate_drop_path_rates``). Neither the paper nor timm's
``inception_resnet_v2`` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import drop_path, drop_path_rates
from convzoo.models.inception_v4 import (
    CAPS,
    INCEPTION_PREPROCESSING,
    Conv,
    ConvBNReLU,
    InceptionBackbone,
    Mixed,
    V,
    reduction_a,
    scaled,
    stem_v4,
)
from convzoo.registry import ModelCard, register_model
from convzoo.weights.from_timm import register_timm_rules

__all__ = ["IR_BLOCKS", "IR_CFGS", "REDUCTION_B", "InceptionResNet", "InceptionResNetBlock"]


# --- residual block (Sec. 3.2, Figs. 10/11/13 and 16/17/19) ------------------------------------------

class InceptionResNetBlock(Mixed):
    """Branches -> concat -> linear 1x1 conv to the input depth -> ``x + scale * r`` -> ReLU.

    The branches and their concatenation are :class:`Mixed`'s (same ``branchN`` keys).
    ``activate=False`` drops the final ReLU (TF-slim's last Block8, which also uses scale 1.0).
    """

    def __init__(self, cin: int, branches: Sequence[Sequence], scale: float, activate: bool = True,
                 width: float = 1.0):
        super().__init__(cin, branches, width)
        self.scale = float(scale)
        self.proj = nn.Conv2d(self.out_chs, cin, 1)  # "1x1 Conv (Linear)": bias, no BN, no activation
        self.act = nn.ReLU(inplace=True) if activate else nn.Identity()
        self.drop_path = nn.Identity()  # stochastic depth of the residual branch: set by the network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, C, H, W)
        return self.act(x + self.drop_path(self.scale * self.proj(super().forward(x))))


IR_BLOCKS = {  # residual branches of each figure (the linear 1x1 conv is added by the block)
    "ir_v1_a": [[Conv(32)], [Conv(32), Conv(32, 3)], [Conv(32), Conv(32, 3), Conv(32, 3)]],  # Fig. 10, 35x35
    "ir_v1_b": [[Conv(128)], [Conv(128), Conv(128, (1, 7)), Conv(128, (7, 1))]],  # Fig. 11, 17x17
    "ir_v1_c": [[Conv(192)], [Conv(192), Conv(192, (1, 3)), Conv(192, (3, 1))]],  # Fig. 13, 8x8
    "ir_v2_a": [[Conv(32)], [Conv(32), Conv(32, 3)], [Conv(32), Conv(48, 3), Conv(64, 3)]],  # Fig. 16
    "ir_v2_b": [[Conv(192)], [Conv(128), Conv(160, (1, 7)), Conv(192, (7, 1))]],  # Fig. 17
    "ir_v2_c": [[Conv(192)], [Conv(192), Conv(224, (1, 3)), Conv(256, (3, 1))]],  # Fig. 19
}

REDUCTION_B = {  # 17x17xC -> 8x8x(C + ...); the max-pool branch last, as TF-slim
    "ir_v1": [[Conv(256), Conv(384, 3, 2, V)], [Conv(256), Conv(256, 3, 2, V)],
              [Conv(256), Conv(256, 3), Conv(256, 3, 2, V)], ["max"]],  # Fig. 12: +896
    "ir_v2": [[Conv(256), Conv(384, 3, 2, V)], [Conv(256), Conv(288, 3, 2, V)],
              [Conv(256), Conv(288, 3), Conv(320, 3, 2, V)], ["max"]],  # Fig. 18 = TF-slim Mixed_7a: +992
}


# --- stems -------------------------------------------------------------------------------------------

def stem_ir_v1(in_chans: int, width: float = 1.0, tf_slim: bool = False) -> tuple[nn.Sequential, int]:
    """Fig. 14: (B, in_chans, 299, 299) -> (B, 256, 35, 35).

    ``tf_slim=True``: TF-slim's Inception-ResNet-v2 stem, identical up to the 71x71x192 conv, then
    3x3/2 max-pool and Mixed_5b -> (B, 320, 35, 35).
    """
    w = lambda c: scaled(c, width)
    layers: list[nn.Module] = [
        ConvBNReLU(in_chans, w(32), 3, 2, V),  # 149x149x32
        ConvBNReLU(w(32), w(32), 3, 1, V),  # 147x147x32
        ConvBNReLU(w(32), w(64), 3),  # 147x147x64
        nn.MaxPool2d(3, 2),  # 73x73x64
        ConvBNReLU(w(64), w(80), 1),  # 73x73x80
        ConvBNReLU(w(80), w(192), 3, 1, V),  # 71x71x192
    ]
    if not tf_slim:
        layers.append(ConvBNReLU(w(192), w(256), 3, 2, V))  # 35x35x256
        return nn.Sequential(*layers), w(256)
    layers.append(nn.MaxPool2d(3, 2))  # 35x35x192
    layers.append(Mixed(w(192), [[Conv(96)], [Conv(48), Conv(64, 5)], [Conv(64), Conv(96, 3), Conv(96, 3)],
                                 ["avg", Conv(64)]], width))  # Mixed_5b: 35x35x320
    return nn.Sequential(*layers), layers[-1].out_chs


_STEMS = {  # builder, index of the stride-4 feature tap inside the stem
    "ir_v1": (lambda cin, w: stem_ir_v1(cin, w), 5),
    "v4": (stem_v4, 3),
    "tf_slim": (lambda cin, w: stem_ir_v1(cin, w, tf_slim=True), 5),
}


# --- the network -------------------------------------------------------------------------------------

class InceptionResNet(InceptionBackbone):
    """Inception-ResNet (Fig. 15): stem, A blocks, Reduction-A, B blocks, Reduction-B, C blocks, pool, FC.

    Args:
        stem: "ir_v1" (Fig. 14), "v4" (Fig. 3) or "tf_slim" (IR-v1 stem + max-pool + Mixed_5b).
        blocks: names in :data:`IR_BLOCKS` of the A, B, C residual blocks.
        depths: number of A, B, C blocks.
        kmln: Reduction-A filters (k, l, m, n) of Table 1.
        reduction_b: key of :data:`REDUCTION_B`.
        scales: residual scaling of the A, B, C blocks (Sec. 3.3: 0.1-0.3).
        linear_last_block: append one more C block with scale 1.0 and no ReLU (TF-slim).
        final_conv: width of a 1x1 Conv-BN-ReLU after the C blocks (TF-slim Conv2d_7b: 1536), 0 = none.
        num_classes, in_chans, drop_rate (paper: keep 0.8 -> 0.2), width (conv-width multiplier).
        global_pool: "avg" (the paper), "max", "avgmax", "catavgmax" or "" (timm's values).
        drop_path_rate: stochastic depth of the residual branches (module docstring; 0 in the paper).
    """

    def __init__(self, stem: str = "v4", blocks: Sequence[str] = ("ir_v2_a", "ir_v2_b", "ir_v2_c"),
                 depths: Sequence[int] = (5, 10, 5), kmln: Sequence[int] = (256, 256, 384, 384),
                 reduction_b: str = "ir_v2", scales: Sequence[float] = (0.17, 0.10, 0.20),
                 linear_last_block: bool = False, final_conv: int = 0, num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.2, width: float = 1.0, global_pool: str = "avg",
                 drop_path_rate: float = 0.0):
        super().__init__()
        if stem not in _STEMS or reduction_b not in REDUCTION_B or any(b not in IR_BLOCKS for b in blocks):
            raise ConvzooError(f"unknown Inception-ResNet part: stem {stem!r} (one of {sorted(_STEMS)}), "
                               f"reduction_b {reduction_b!r} (one of {sorted(REDUCTION_B)}), blocks {list(blocks)} "
                               f"(from {sorted(IR_BLOCKS)})")
        if len(blocks) != 3 or len(depths) != 3 or len(scales) != 3 or len(kmln) != 4:
            raise ConvzooError("blocks, depths and scales need 3 entries (A, B, C) and kmln 4 (k, l, m, n)")
        build_stem, tap4 = _STEMS[stem]
        self.stem, c = build_stem(in_chans, width)  # 35x35xC
        c_stem = c

        def stage(name: str, n: int, scale: float) -> nn.Sequential:
            return nn.Sequential(*[InceptionResNetBlock(c, IR_BLOCKS[name], scale, width=width) for _ in range(n)])

        self.blocks_a = stage(blocks[0], depths[0], scales[0])  # 35x35xC
        self.reduction_a = reduction_a(c, *kmln, width=width)  # 17x17x(C + n + m)
        c = c_b = self.reduction_a.out_chs
        self.blocks_b = stage(blocks[1], depths[1], scales[1])
        self.reduction_b = Mixed(c, REDUCTION_B[reduction_b], width)  # 8x8
        c = self.reduction_b.out_chs
        self.blocks_c = stage(blocks[2], depths[2], scales[2])
        if linear_last_block:
            self.blocks_c.append(InceptionResNetBlock(c, IR_BLOCKS[blocks[2]], 1.0, activate=False, width=width))
        residual = [*self.blocks_a, *self.blocks_b, *self.blocks_c]
        for blk, rate in zip(residual, drop_path_rates(drop_path_rate, [len(residual)])[0]):
            blk.drop_path = drop_path(rate)
        self.order = (*(f"stem.{i}" for i in range(len(self.stem))), "blocks_a", "reduction_a", "blocks_b",
                      "reduction_b", "blocks_c")
        last = "blocks_c"
        if final_conv:
            self.conv2d_7b = ConvBNReLU(c, scaled(final_conv, width), 1)  # 8x8x1536
            c, last = scaled(final_conv, width), "conv2d_7b"
            self.order += (last,)
        self.num_features = c
        stem4 = self.stem[tap4]
        self.feature_info = [
            {"num_chs": self.stem[2].conv.out_channels, "reduction": 2, "module": "stem.2"},
            {"num_chs": getattr(stem4, "out_chs", None) or stem4.conv.out_channels, "reduction": 4,
             "module": f"stem.{tap4}"},
            {"num_chs": c_stem, "reduction": 8, "module": "blocks_a"},
            {"num_chs": c_b, "reduction": 16, "module": "blocks_b"},
            {"num_chs": c, "reduction": 32, "module": last},
        ]
        self._init_head(num_classes, drop_rate, global_pool)


# --- variants (Fig. 15 + the TF-slim layout) ---------------------------------------------------------

IR_CFGS = {
    "inception_resnet_v1": {
        "stem": "ir_v1", "blocks": ("ir_v1_a", "ir_v1_b", "ir_v1_c"), "depths": (5, 10, 5),
        "kmln": (192, 192, 256, 384), "reduction_b": "ir_v1"},
    "inception_resnet_v2_paper": {
        "stem": "v4", "blocks": ("ir_v2_a", "ir_v2_b", "ir_v2_c"), "depths": (5, 10, 5),
        "kmln": (256, 256, 384, 384), "reduction_b": "ir_v2"},
    "inception_resnet_v2": {
        "stem": "tf_slim", "blocks": ("ir_v2_a", "ir_v2_b", "ir_v2_c"), "depths": (10, 20, 9),
        "kmln": (256, 256, 384, 384), "reduction_b": "ir_v2", "linear_last_block": True, "final_conv": 1536},
}

# timm inception_resnet_v2 keys -> ours
register_timm_rules("inception_resnet_v2", [
    (r"\.conv2d\.", ".proj."),
    (r"^conv2d_1a\.", "stem.0."), (r"^conv2d_2a\.", "stem.1."), (r"^conv2d_2b\.", "stem.2."),
    (r"^conv2d_3b\.", "stem.4."), (r"^conv2d_4a\.", "stem.5."), (r"^mixed_5b\.", "stem.7."),
    (r"^repeat\.", "blocks_a."), (r"^mixed_6a\.", "reduction_a."), (r"^repeat_1\.", "blocks_b."),
    (r"^mixed_7a\.", "reduction_b."), (r"^repeat_2\.", "blocks_c."),
    (r"^block8\.", "blocks_c.9."),  # the linear Block8 follows the 9 scaled ones
    (r"^classif\.", "head.fc."),
])

# (params, params_source, macs @299 (conv + FC multiply-accumulates, batch 1), macs_source, macs_rtol, reference)
_PAPER_COUNT = ("sum of numel at 1000 classes of this figure-defined layout (Figs. 10-19 widths, linear 1x1 "
                "convs with bias); the paper reports no parameter count and no public implementation exists, so "
                "this is re-derived independently from the figure widths in tests/models/test_inception.py")
_PAPER_MACS = ("closed form, tests/models/test_inception.py::test_macs_closed_form_from_figures (conv and FC "
               "multiply-accumulates summed layer by layer from the figures at 299 px); the paper gives no count")
_SHEET = {
    "inception_resnet_v1": (22_756_328, _PAPER_COUNT, 6_206_361_696, _PAPER_MACS, 0.0, None),
    "inception_resnet_v2_paper": (32_433_928, _PAPER_COUNT, 9_257_953_632, _PAPER_MACS, 0.0, None),
    "inception_resnet_v2": (55_843_464, ("sum of numel at 1000 classes of timm 1.0.31 inception_resnet_v2 "
                            "(TF-slim layout), fact sheet G1a Paper 33 Sec. 2"), 13_156_000_000,
                            ("timm 1.0.31 inception_resnet_v2 at 299 px: 13.156 GMACs (fact sheet G1a Paper 33 "
                             "Sec. 2; 3 decimals, hence macs_rtol = 0.0005 / 13.156)"), 0.0005 / 13.156,
                            "timm:inception_resnet_v2"),
}
_RESULTS = {  # ImageNet val top-1/top-5 error, single crop / 12 crops / 144 crops (paper Tables 2-4, recalled)
    "inception_resnet_v1": "21.3/5.5, 19.8/4.6, 18.8/4.3",
    "inception_resnet_v2_paper": "19.9/4.9, 18.7/4.1, 17.8/3.7",
    "inception_resnet_v2": "19.9/4.9, 18.7/4.1, 17.8/3.7 (reported for the paper's IR-v2)",
}


def _card(name: str, source: str, notes: str) -> ModelCard:
    params, params_source, macs, macs_source, macs_rtol, reference = _SHEET[name]
    return ModelCard(
        name=name, paper=33, family="inception_resnet", task="classification", input_size=(299, 299),
        test_size=(75, 75), params=params, params_source=params_source, macs=macs, macs_source=macs_source,
        macs_rtol=macs_rtol, reference=reference, capabilities=CAPS, source=source,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=0.8975 if reference else 0.875,
        interpolation="bicubic" if reference else "bilinear",
        notes=(f"ImageNet val top-1/top-5 error {_RESULTS[name]} (single / 12 / 144 crops: `convzoo eval RUN "
               f"--crops 12|144`). Residual scales "
               f"0.17/0.10/0.20 (A/B/C; ``scales=``). Valid-padded: smallest input 75x75. {notes} "
               + INCEPTION_PREPROCESSING + ("bicubic, crop 0.8975: timm's inception_resnet_v2.tf_in1k pretrained_cfg."
                                            if reference else "central crop 0.875 and a bilinear resize (TF-slim's "
                                            "eval transform; no released weights).")),
    )


def _build(name: str, **kwargs) -> InceptionResNet:
    return InceptionResNet(**{**IR_CFGS[name], **kwargs})


@register_model(_card("inception_resnet_v1", "paper Sec. 3.2, Figs. 7, 10-15, Table 1",
                      "The paper's figure layout; no external implementation to compare with."))
def inception_resnet_v1(**kwargs) -> InceptionResNet:
    return _build("inception_resnet_v1", **kwargs)


@register_model(_card("inception_resnet_v2_paper", "paper Sec. 3.2, Figs. 3, 7, 15-19, Table 1",
                      "The paper's figure layout (Inception-v4 stem, 5/10/5 blocks, no final 1x1 conv); linear 1x1 "
                      "convs restore the input depth (1152, 2144) where Figs. 17/19 print other widths. Not the "
                      "layout of the released weights: see inception_resnet_v2."))
def inception_resnet_v2_paper(**kwargs) -> InceptionResNet:
    return _build("inception_resnet_v2_paper", **kwargs)


@register_model(_card("inception_resnet_v2", "TF-slim nets/inception_resnet_v2.py (the released weights; built "
                      "'under the advice of the authors'); blocks of paper Figs. 16-19",
                      "TF-slim/Keras/timm layout, not the paper's figures (see inception_resnet_v2_paper): IR-v1-like "
                      "stem + Mixed_5b, 10/20/10 blocks, Conv2d_7b. Weights of timm's inception_resnet_v2 load through "
                      "convzoo.weights.from_timm."))
def inception_resnet_v2(**kwargs) -> InceptionResNet:
    return _build("inception_resnet_v2", **kwargs)
