"""Inception-v4 and the building blocks shared with Inception-ResNet.

Seed paper 33; Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning", AAAI 2017, arXiv 1602.07261. No official code was released with the
paper; the de-facto reference is TF-slim ``nets/inception_v4.py`` (tensorflow/models), ported to
PyTorch by Cadene and timm (``inception_v4``, 42,679,816 parameters).

Implemented here (Sec. 3.1, Figs. 3-9), every convolution Conv-BN-ReLU (BN eps 1e-3 as TF-slim),
"V" = valid padding, all others "same":
- the Inception-v4 stem (Fig. 3): 299x299x3 -> 35x35x384, also the stem of the paper's
  Inception-ResNet-v2 (``convzoo.models.inception_resnet``);
- Inception-A (Fig. 4, 35x35x384), Reduction-A (Fig. 7, parametrised by k, l, m, n of Table 1),
  Inception-B (Fig. 5, 17x17x1024), Reduction-B (Fig. 8, -> 8x8x1536), Inception-C (Fig. 6, 8x8x1536);
- Inception-v4 (Fig. 9): stem, 4 x A, Reduction-A (k, l, m, n = 192, 224, 256, 384), 7 x B,
  Reduction-B, 3 x C, global average pool, dropout (keep 0.8 -> ``drop_rate=0.2``), FC.

Paper vs. TF-slim: the widths agree; the order of the factorised convolutions in two branches does
not. The paper's figures (read bottom-up, as transcribed in fact sheet G1a "Paper 33" Sec. 3, marked
there as recalled) put 1x7 before 7x1 in the 5-conv branch of Inception-B and 1x3 (448) before 3x1
(512) in the deep branch of Inception-C; TF-slim (hence the released weights, Cadene and timm) uses
7x1 first and 3x1 (448) first. Both have the same parameter count and cost but not the same weight
shapes. ``inception_v4`` is the TF-slim order (timm's name; weights load through
:func:`convzoo.weights.from_timm.from_timm`); ``inception_v4_paper`` is the figures' order.
Branch concatenation order follows TF-slim in both (the figures do not fix one).

Blocks are data: a branch is a list of ops (:class:`Conv`, ``"max"`` = 3x3/2 valid max-pool,
``"avg"`` = 3x3/1 same average pool without padded zeros), a block a list of branches, concatenated
along channels. ``width`` scales every convolution's output channels (for CPU-scale runs; 1.0 =
the paper). Module and parameter names follow TF-slim/timm (``branchN``, ``conv``/``bn``) so that
the timm converter only has to rename the stage prefixes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import no_drop_path
from convzoo.layers.head import Backbone, ClassifierHead
from convzoo.registry import ModelCard, register_model
from convzoo.weights.from_timm import register_timm_rules

__all__ = [
    "V4_CFGS",
    "Conv",
    "ConvBNReLU",
    "InceptionBackbone",
    "InceptionC",
    "InceptionV4",
    "Mixed",
    "inception_a",
    "inception_b",
    "make_branch",
    "reduction_a",
    "reduction_b_v4",
    "stem_v4",
]

BN_EPS = 1e-3  # TF-slim batch_norm epsilon


# --- ops ---------------------------------------------------------------------------------------------

class Conv(NamedTuple):
    """One Conv-BN-ReLU of a figure: ``out`` filters, kernel ``k`` (int or (kh, kw)), ``stride``, "V"."""

    out: int
    k: int | tuple[int, int] = 1
    stride: int = 1
    valid: bool = False


V = True  # readability: Conv(96, 3, 2, V)


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) -> BN -> ReLU; keys ``conv.*``, ``bn.*`` as timm's ConvNormAct."""

    def __init__(self, cin: int, cout: int, k: int | tuple[int, int], stride: int = 1, valid: bool = False,
                 eps: float = BN_EPS):
        kh, kw = (k, k) if isinstance(k, int) else k
        padding = (0, 0) if valid else (kh // 2, kw // 2)
        super().__init__(OrderedDict(conv=nn.Conv2d(cin, cout, (kh, kw), stride, padding, bias=False),
                                     bn=nn.BatchNorm2d(cout, eps=eps), act=nn.ReLU(inplace=True)))


def scaled(c: int, width: float) -> int:
    """Channels of a conv at width multiplier ``width`` (at least 8)."""
    return c if width == 1.0 else max(8, round(c * width))


def make_branch(cin: int, ops: Sequence, width: float = 1.0) -> tuple[nn.Module, int]:
    """A branch from its ops; returns (module, output channels). One op -> the op itself (timm keys)."""
    layers: list[nn.Module] = []
    c = cin
    for op in ops:
        if op == "max":
            layers.append(nn.MaxPool2d(3, 2))  # 3x3/2 V
        elif op == "avg":
            layers.append(nn.AvgPool2d(3, 1, 1, count_include_pad=False))  # 3x3/1, same
        elif isinstance(op, Conv):
            cout = scaled(op.out, width)
            layers.append(ConvBNReLU(c, cout, op.k, op.stride, op.valid))
            c = cout
        else:
            raise ConvzooError(f"unknown Inception op {op!r}; expected Conv(...), 'max' or 'avg'")
    return (layers[0] if len(layers) == 1 else nn.Sequential(*layers)), c


class Mixed(nn.Module):
    """Parallel branches concatenated along channels ("Filter concat" in the figures)."""

    def __init__(self, cin: int, branches: Sequence[Sequence], width: float = 1.0):
        super().__init__()
        chans = []
        for i, ops in enumerate(branches):
            module, c = make_branch(cin, ops, width)
            self.add_module(f"branch{i}", module)
            chans.append(c)
        self.num_branches, self.out_chs = len(branches), sum(chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, cin, H, W) -> (B, out_chs, H', W')
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.num_branches)], 1)


# --- blocks of Figs. 3-8 (as data) -------------------------------------------------------------------

def stem_v4(in_chans: int, width: float = 1.0) -> tuple[nn.Sequential, int]:
    """Fig. 3: (B, in_chans, 299, 299) -> (B, 384, 35, 35); also the stem of Inception-ResNet-v2."""
    w = width
    layers: list[nn.Module] = [
        ConvBNReLU(in_chans, scaled(32, w), 3, 2, V),  # 149x149x32
        ConvBNReLU(scaled(32, w), scaled(32, w), 3, 1, V),  # 147x147x32
        ConvBNReLU(scaled(32, w), scaled(64, w), 3),  # 147x147x64
    ]
    c = scaled(64, w)
    for branches in (
        [["max"], [Conv(96, 3, 2, V)]],  # 73x73x160
        [[Conv(64), Conv(96, 3, 1, V)],
         [Conv(64), Conv(64, (1, 7)), Conv(64, (7, 1)), Conv(96, 3, 1, V)]],  # 71x71x192
        [[Conv(192, 3, 2, V)], ["max"]],  # 35x35x384
    ):
        layers.append(Mixed(c, branches, w))
        c = layers[-1].out_chs
    return nn.Sequential(*layers), c


def inception_a(cin: int, width: float = 1.0) -> Mixed:
    """Fig. 4: 35x35x384 -> 35x35x384."""
    return Mixed(cin, [[Conv(96)], [Conv(64), Conv(96, 3)], [Conv(64), Conv(96, 3), Conv(96, 3)],
                       ["avg", Conv(96)]], width)


def inception_b(cin: int, order: str = "tf_slim", width: float = 1.0) -> Mixed:
    """Fig. 5: 17x17x1024 -> 17x17x1024 (``order`` of the 5-conv branch: see the module docstring)."""
    a, b = ((1, 7), (7, 1)) if order == "paper" else ((7, 1), (1, 7))
    return Mixed(cin, [[Conv(384)], [Conv(192), Conv(224, (1, 7)), Conv(256, (7, 1))],
                       [Conv(192), Conv(192, a), Conv(224, b), Conv(224, a), Conv(256, b)],
                       ["avg", Conv(128)]], width)


def reduction_a(cin: int, k: int, l: int, m: int, n: int, width: float = 1.0) -> Mixed:
    """Fig. 7 with Table 1's (k, l, m, n): 35x35xC -> 17x17x(n + m + C)."""
    return Mixed(cin, [[Conv(n, 3, 2, V)], [Conv(k), Conv(l, 3), Conv(m, 3, 2, V)], ["max"]], width)


def reduction_b_v4(cin: int, width: float = 1.0) -> Mixed:
    """Fig. 8: 17x17x1024 -> 8x8x1536."""
    return Mixed(cin, [[Conv(192), Conv(192, 3, 2, V)],
                       [Conv(256), Conv(256, (1, 7)), Conv(320, (7, 1)), Conv(320, 3, 2, V)], ["max"]], width)


class InceptionC(nn.Module):
    """Fig. 6: 8x8x1536 -> 8x8x1536; two branches end in a split (1x3 || 3x1), so named flat as timm."""

    def __init__(self, cin: int, order: str = "tf_slim", width: float = 1.0):
        super().__init__()
        w = lambda c: scaled(c, width)
        a, b = ((1, 3), (3, 1)) if order == "paper" else ((3, 1), (1, 3))
        self.branch0 = ConvBNReLU(cin, w(256), 1)
        self.branch1_0 = ConvBNReLU(cin, w(384), 1)
        self.branch1_1a = ConvBNReLU(w(384), w(256), (1, 3))
        self.branch1_1b = ConvBNReLU(w(384), w(256), (3, 1))
        self.branch2_0 = ConvBNReLU(cin, w(384), 1)
        self.branch2_1 = ConvBNReLU(w(384), w(448), a)
        self.branch2_2 = ConvBNReLU(w(448), w(512), b)
        self.branch2_3a = ConvBNReLU(w(512), w(256), (1, 3))
        self.branch2_3b = ConvBNReLU(w(512), w(256), (3, 1))
        self.branch3 = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), ConvBNReLU(cin, w(256), 1))
        self.out_chs = 6 * w(256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, cin, H, W) -> (B, 1536, H, W)
        x1 = self.branch1_0(x)
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        return torch.cat([self.branch0(x), self.branch1_1a(x1), self.branch1_1b(x1),
                          self.branch2_3a(x2), self.branch2_3b(x2), self.branch3(x)], 1)


# --- the backbone ------------------------------------------------------------------------------------

class InceptionBackbone(Backbone):
    """Shared Backbone plumbing: the body runs the modules named in ``self.order`` in turn.

    Subclasses set ``order`` (dotted module names, reading order), ``feature_info`` (taps among
    them), ``num_features`` and call :meth:`_init_head`.
    """

    order: tuple[str, ...]

    def _init_head(self, num_classes: int, drop_rate: float, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.head = ClassifierHead(self.num_features, num_classes, global_pool, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_chans, H, W) -> (B, num_features, ~H/32 - 1, ~W/32 - 1): valid convs shave borders
        for name in self.order:
            x = self.get_submodule(name)(x)
        return x

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """Maps at the modules of ``feature_info`` (nominal strides 2, 4, 8, 16, 32; the first ``stop`` only
        when given).

        The spatial sizes are those of the valid-padded network: 147, 73, 35, 17, 8 at 299 px
        (not 299 / stride), as in the paper's figures and timm's ``feature_info``.
        """
        taps, out = [f["module"] for f in self.feature_info[:stop]], []
        for name in self.order:
            x = self.get_submodule(name)(x)
            if name in taps:
                out.append(x)
                if len(out) == len(taps):
                    break
        return out


def _check_order(order: str) -> str:
    if order not in ("paper", "tf_slim"):
        raise ConvzooError(f"order must be 'paper' or 'tf_slim', got {order!r}")
    return order


class InceptionV4(InceptionBackbone):
    """Inception-v4 (Fig. 9): stem, 4 x Inception-A, Reduction-A, 7 x Inception-B, Reduction-B,
    3 x Inception-C, average pool, dropout, FC.

    Args:
        order: "tf_slim" (released weights, timm) or "paper" (figure order of the factorised convs).
        num_classes: 0 gives the pooled 1536-d embedding.
        in_chans: input channels.
        drop_rate: dropout before the FC; the paper keeps 0.8 of the activations (0.2).
        width: multiplier of every conv width (1.0 = the paper).
        kmln: Reduction-A filters (k, l, m, n) of Table 1.
        global_pool: "avg" (the paper), "max", "avgmax", "catavgmax" or "" (timm's values).
        drop_path_rate: 0 only: Inception-v4 has no residual connections (Sec. 3.1).
    """

    def __init__(self, order: str = "tf_slim", num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.2, width: float = 1.0, kmln: Sequence[int] = (192, 224, 256, 384),
                 global_pool: str = "avg", drop_path_rate: float = 0.0):
        super().__init__()
        no_drop_path(drop_path_rate, "Inception-v4")
        self.layout = _check_order(order)
        self.stem, c = stem_v4(in_chans, width)  # 35x35x384
        self.inception_a = nn.Sequential(*[inception_a(c, width) for _ in range(4)])  # 35x35x384
        self.reduction_a = reduction_a(c, *kmln, width=width)  # 17x17x1024
        c = self.reduction_a.out_chs
        self.inception_b = nn.Sequential(*[inception_b(c, order, width) for _ in range(7)])  # 17x17x1024
        self.reduction_b = reduction_b_v4(c, width)  # 8x8x1536
        c = self.reduction_b.out_chs
        self.inception_c = nn.Sequential(*[InceptionC(c, order, width) for _ in range(3)])  # 8x8x1536
        self.num_features = self.inception_c[-1].out_chs
        self.order = (*(f"stem.{i}" for i in range(len(self.stem))), "inception_a", "reduction_a",
                      "inception_b", "reduction_b", "inception_c")
        self.feature_info = [  # as timm's inception_v4
            {"num_chs": self.stem[2].conv.out_channels, "reduction": 2, "module": "stem.2"},
            {"num_chs": self.stem[3].out_chs, "reduction": 4, "module": "stem.3"},
            {"num_chs": self.stem[5].out_chs, "reduction": 8, "module": "inception_a"},
            {"num_chs": self.reduction_a.out_chs, "reduction": 16, "module": "inception_b"},
            {"num_chs": self.num_features, "reduction": 32, "module": "inception_c"},
        ]
        self._init_head(num_classes, drop_rate, global_pool)


# --- timm key layout: features.N (flat) -> named stages ----------------------------------------------

_V4_TIMM_STAGES = ([f"stem.{i}" for i in range(6)] + [f"inception_a.{i}" for i in range(4)] + ["reduction_a"]
                   + [f"inception_b.{i}" for i in range(7)] + ["reduction_b"]
                   + [f"inception_c.{i}" for i in range(3)])
register_timm_rules("inception_v4", [
    (r"^features\.3\.maxpool\.", "features.3.branch0."),  # Mixed3a (pool, conv): parameter-free pool
    (r"^features\.3\.conv\.", "features.3.branch1."),
    (r"^features\.5\.conv\.", "features.5.branch0."),  # Mixed5a (conv, pool)
    (r"^features\.(\d+)\.", lambda m: _V4_TIMM_STAGES[int(m.group(1))] + "."),
    (r"^last_linear\.", "head.fc."),
])


# --- variants and cards ------------------------------------------------------------------------------

V4_CFGS = {
    "inception_v4": {"order": "tf_slim"},
    "inception_v4_paper": {"order": "paper"},
}

CAPS = frozenset({"features", "compile", "onnx", "channels_last", "bf16"})
_V4_PARAMS = 42_679_816  # timm 1.0.31 inception_v4 at 1000 classes (fact sheet G1a Paper 33 Sec. 2)
_V4_MACS = 12_253_974_624  # conv + FC multiply-accumulates @299, equal for both orders
INCEPTION_PREPROCESSING = "Preprocessing: mean = std = 0.5 (inputs in [-1, 1], TF-slim's inception_preprocessing); "
_V4_NOTES = ("ImageNet val top-1/top-5 error 20.0/5.0 single crop, 18.7/4.2 with 12 crops, 17.7/3.8 with "
             "144 crops (paper Tables 2-4, recalled in the fact sheet; `convzoo eval RUN --crops 12|144 "
             "[--ensemble RUN ...]` runs those protocols). Valid-padded: 299 -> 8x8 final map; "
             "smallest input 75x75.")


def _v4_card(name: str, source: str, notes: str, reference: str | None) -> ModelCard:
    return ModelCard(
        name=name, paper=33, family="inception_v4", task="classification", input_size=(299, 299),
        test_size=(75, 75), params=_V4_PARAMS,
        params_source=("sum of numel at 1000 classes of timm 1.0.31 inception_v4 (TF-slim layout), fact sheet G1a "
                       "Paper 33 Sec. 2; the paper reports no count. The paper's factorisation order has the same count"),
        macs=_V4_MACS, macs_rtol=0.0,
        macs_source=("closed form, tests/models/test_inception.py::test_macs_closed_form_from_figures (summed layer "
                     "by layer from Figs. 3-9 at 299 px); agrees with the fact sheet's 12.254 GMACs for timm inception_v4"),
        reference=reference, capabilities=CAPS, source=source,
        recipes=("inception_v4_digits", "inception_v4_imagenet_paper") if name == "inception_v4" else (),
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=0.875,
        interpolation="bicubic" if reference else "bilinear",
        notes=f"{notes} {_V4_NOTES} " + INCEPTION_PREPROCESSING + (
            "bicubic, crop 0.875: timm's inception_v4.tf_in1k pretrained_cfg." if reference else
            "central crop 0.875 and a bilinear resize (TF-slim's eval transform; no released weights)."),
    )


@register_model(_v4_card(
    "inception_v4", "paper Sec. 3.1, Figs. 3-9, Table 1; factorised-conv order of TF-slim nets/inception_v4.py",
    "TF-slim/timm layout: weights of timm's inception_v4 load through convzoo.weights.from_timm. The paper's "
    "figure order of the 1x7/7x1 and 1x3/3x1 convs is inception_v4_paper.", "timm:inception_v4"))
def inception_v4(**kwargs) -> InceptionV4:
    return InceptionV4(**{**V4_CFGS["inception_v4"], **kwargs})


@register_model(_v4_card(
    "inception_v4_paper", "paper Sec. 3.1, Figs. 3-9, Table 1 (factorised-conv order as drawn in Figs. 5, 6)",
    "Paper's figure order: Inception-B 5-conv branch 1x7,7x1,1x7,7x1; Inception-C deep branch 1x3 (448) then "
    "3x1 (512). Same count and cost as inception_v4 (TF-slim order), not weight-compatible with it.", None))
def inception_v4_paper(**kwargs) -> InceptionV4:
    return InceptionV4(**{**V4_CFGS["inception_v4_paper"], **kwargs})
