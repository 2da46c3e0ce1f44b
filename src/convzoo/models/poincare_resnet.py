"""Poincare ResNet.

"Poincare ResNet" (van Spengler, Berkhout, Mettes; ICCV 2023; arXiv 2303.14027); seed paper 54. Official
code: maxvanspengler/poincare-resnet (``models/resnets/{hyperbolic,euclidean,euclidean_w_hyp_class}.py``).

Implemented here (paper Sec. 4, official code):
- The CIFAR ResNet of depth 6n + 2 (He et al. 2016, Sec. 4.2): 3x3 stem conv + BN + ReLU, three groups of n
  residual blocks at widths (w1, w2, w3) and strides 1 / 2 / 2, global average pool, classifier. A block is
  conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (a 1x1 stride-2 conv where the group downsamples), then ReLU.
- ``kind="hyperbolic"``: every conv / BN / the classifier is its Poincare counterpart
  (:mod:`convzoo.layers.poincare_nn`: beta-concatenation convolution, midpoint batch norm, HNN++ FC, identity
  initialisation, curvature c = 0.1 fixed per layer), and the shortcut is a Mobius addition
  exp_0(f(x)) (+) exp_0(shortcut), mapped back with log_0 (official ``skip_connection="fr"``; ``"rf"`` swaps the
  operands). Features between layers are tangent vectors at the origin, so ReLU and pooling act there.
- ``kind="euclidean"``: the official Euclidean baseline (conv biases on, ``nn.BatchNorm2d``).
- ``kind="euclideanwhypclass"``: the Euclidean baseline with a Poincare FC classifier (official: learnable
  curvature starting at softplus(1)).
- Variants (``VARIANTS``): the official names ``<kind>-8-16-32-resnet-20`` / ``-32`` (README), registered as
  ``poincare_resnet20/32``, ``euclidean_resnet20/32``, ``euclidean_hypclass_resnet20/32``;
  :func:`from_official_name` builds any ``<kind>-w1-w2-w3-resnet-depth``.

Departures from the official code, and why:
- Global average pooling instead of ``AvgPool2d(8)`` (the same at 32 px; other sizes work), and the
  classifier on the pooled (B, C) tensor instead of ``x.squeeze()`` (which breaks at batch 1).
- ``drop_rate`` (dropout before the classifier) and ``drop_path_rate`` (per-sample drop of the residual
  branch: a dropped branch is the origin, the identity of the Mobius addition) are timm's arguments, 0 by
  default as in the paper; ``global_pool`` as timm (pooling in the tangent space).
- Layer departures (HNN++ lambda, batch-norm running statistics, learnable-curvature start, no frozen
  curvature parameters) are listed in :mod:`convzoo.layers.poincare_nn` and :mod:`convzoo.layers.poincare`.

State-dict keys follow the official modules (``conv``, ``bn``, ``group1.0.conv1.weights``, ``...downsample``,
``fc.z``); the official batch-norm parameters ``bn.norm.mean`` / ``bn.norm.var`` are ``bn.mean`` / ``bn.var``
here, and the skip curvature is ``group1.0.ball.isp_c``. No trained weights were released.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import check_drop_rate, drop_path, drop_path_rates
from convzoo.layers.head import Backbone, SelectAdaptivePool, check_pool
from convzoo.layers.poincare import PoincareBall
from convzoo.layers.poincare_nn import PoincareBatchNorm2d, PoincareConv2d, PoincareLinear
from convzoo.registry import ModelCard, register_model

__all__ = ["VARIANTS", "EuclideanBlock", "PoincareBlock", "PoincareResNet", "Variant", "from_official_name"]

KINDS = ("hyperbolic", "euclidean", "euclideanwhypclass")


# --- blocks ---------------------------------------------------------------------------------------------

class PoincareBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN on the ball, Mobius-added to the shortcut, ReLU: (B, C_in, H, W) -> (B, C, H/s, W/s)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, c: float = 0.1, bn_midpoint: bool = True,
                 skip_connection: str = "fr", drop_path_rate: float = 0.0, manual: bool = True):
        super().__init__()
        if skip_connection not in ("fr", "rf"):
            raise ConvzooError(f"skip_connection must be 'fr' (f(x) (+) x) or 'rf' (x (+) f(x)), got {skip_connection!r}")
        self.skip_connection = skip_connection
        self.conv1 = PoincareConv2d(in_chs, out_chs, 3, stride, 1, c=c, manual=manual)
        self.bn1 = PoincareBatchNorm2d(out_chs, c=c, use_midpoint=bn_midpoint, manual=manual)
        self.act1 = nn.ReLU()
        self.conv2 = PoincareConv2d(out_chs, out_chs, 3, 1, 1, c=c, manual=manual)
        self.bn2 = PoincareBatchNorm2d(out_chs, c=c, use_midpoint=bn_midpoint, manual=manual)
        self.act2 = nn.ReLU()
        self.downsample = PoincareConv2d(in_chs, out_chs, 1, stride, 0, c=c, manual=manual) if stride != 1 else None
        self.ball = PoincareBall(c, manual=manual)  # the skip connection's ball
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)  # (B, C, H', W') tangent at 0
        x = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        x, shortcut = self.ball.expmap0(self.drop_path(x), dim=1), self.ball.expmap0(shortcut, dim=1)
        x = self.ball.mobius_add(x, shortcut, dim=1) if self.skip_connection == "fr" else \
            self.ball.mobius_add(shortcut, x, dim=1)
        return self.act2(self.ball.logmap0(x, dim=1))


class EuclideanBlock(nn.Module):
    """The official Euclidean block: conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU (conv biases on)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, drop_path_rate: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.relu = nn.ReLU()
        self.downsample = nn.Conv2d(in_chs, out_chs, 1, stride) if stride != 1 else None
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(self.drop_path(x) + shortcut)


# --- network --------------------------------------------------------------------------------------------

class PoincareResNet(Backbone):
    """CIFAR ResNet of ``depth`` = 6n + 2 at ``widths`` (w1, w2, w3), Poincare or Euclidean (``kind``)."""

    def __init__(self, kind: str = "hyperbolic", widths: tuple[int, int, int] = (8, 16, 32), depth: int = 20,
                 num_classes: int = 10, in_chans: int = 3, c: float = 0.1, bn_midpoint: bool = True,
                 skip_connection: str = "fr", manual: bool = True, classifier_c: float | None = None,
                 learnable_classifier_c: bool | None = None, global_pool: str = "avg", drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        if kind not in KINDS:
            raise ConvzooError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if depth < 8 or (depth - 2) % 6:
            raise ConvzooError(f"a CIFAR ResNet has depth 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got {depth}")
        if len(widths) != 3:
            raise ConvzooError(f"widths must be three channel counts (w1, w2, w3), got {widths!r}")
        self.kind, self.widths, self.depth, self.num_classes = kind, tuple(widths), depth, num_classes
        self.drop_rate = check_drop_rate(drop_rate, "drop_rate")
        n = (depth - 2) // 6
        hyp = kind == "hyperbolic"
        # the classifier's ball: the network's c, or (Euclidean with hyperbolic classifier) the official learnable
        # curvature that starts at softplus(1)
        self._cls_c = classifier_c if classifier_c is not None else (c if hyp else 1.3132616875182228)
        self._cls_learnable = learnable_classifier_c if learnable_classifier_c is not None else not hyp
        self._manual = manual

        if hyp:
            self.conv = PoincareConv2d(in_chans, widths[0], 3, 1, 1, c=c, manual=manual)
            self.bn = PoincareBatchNorm2d(widths[0], c=c, use_midpoint=bn_midpoint, manual=manual)
        else:
            self.conv = nn.Conv2d(in_chans, widths[0], 3, 1, 1)
            self.bn = nn.BatchNorm2d(widths[0])
        self.act = nn.ReLU()
        dpr = drop_path_rates(drop_path_rate, (n, n, n))
        in_chs = widths[0]
        for g, (w, stride) in enumerate(zip(widths, (1, 2, 2))):
            blocks = []
            for i in range(n):
                s = stride if i == 0 else 1
                if hyp:
                    blocks.append(PoincareBlock(in_chs, w, s, c, bn_midpoint, skip_connection, dpr[g][i], manual))
                else:
                    blocks.append(EuclideanBlock(in_chs, w, s, dpr[g][i]))
                in_chs = w
            self.add_module(f"group{g + 1}", nn.Sequential(*blocks))  # (B, w, H / 2^g, W / 2^g)
        self.num_features = widths[2]
        self.feature_info = [{"num_chs": w, "reduction": r, "module": f"group{g + 1}"}
                             for g, (w, r) in enumerate(zip(widths, (1, 2, 4)))]
        self.global_pool = SelectAdaptivePool(global_pool)
        self.drop = nn.Dropout(self.drop_rate)
        self.fc = self._make_fc(num_classes)

    def _make_fc(self, num_classes: int) -> nn.Module:
        width = self.num_features * self.global_pool.feat_mult()
        if num_classes <= 0:
            return nn.Identity()
        if self.kind == "euclidean":
            return nn.Linear(width, num_classes)
        return PoincareLinear(width, num_classes, c=self._cls_c, learnable_c=self._cls_learnable, manual=self._manual)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))  # (B, w1, H, W)
        return self.group3(self.group2(self.group1(x)))  # (B, w3, H/4, W/4)

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        x, out = self.act(self.bn(self.conv(x))), []
        for g in range(3 if stop is None else stop):
            x = getattr(self, f"group{g + 1}")(x)
            out.append(x)
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.global_pool(x))  # (B, C) tangent vectors, or the map for global_pool ""
        if pre_logits:
            return x
        return self.fc(x) if x.dim() == 2 else self.fc(x.movedim(1, -1)).movedim(-1, 1)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool(check_pool(global_pool))
        self.fc = self._make_fc(num_classes)


# --- variants -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    official: str  # the official model name (README / parse_model_from_name.py)
    params: int  # CIFAR-10 (10 classes), derived from the layer shapes (sheet G1b; tests derive it again)


VARIANTS: dict[str, Variant] = {
    "poincare_resnet20": Variant("hyperbolic-8-16-32-resnet-20", 68_757),
    "poincare_resnet32": Variant("hyperbolic-8-16-32-resnet-32", 117_601),
    "euclidean_resnet20": Variant("euclidean-8-16-32-resnet-20", 69_082),
    "euclidean_resnet32": Variant("euclidean-8-16-32-resnet-32", 118_138),
    "euclidean_hypclass_resnet20": Variant("euclideanwhypclass-8-16-32-resnet-20", 69_083),
    "euclidean_hypclass_resnet32": Variant("euclideanwhypclass-8-16-32-resnet-32", 118_139),
}

_NAME = re.compile(r"^(hyperbolic|euclidean|euclideanwhypclass)-(\d+)-(\d+)-(\d+)-resnet-(\d+)$")


def parse_official_name(name: str) -> dict:
    """``<kind>-w1-w2-w3-resnet-depth`` -> dict(kind, widths, depth)."""
    m = _NAME.match(name)
    if m is None:
        raise ConvzooError(f"expected <hyperbolic|euclidean|euclideanwhypclass>-w1-w2-w3-resnet-depth "
                           f"(e.g. hyperbolic-8-16-32-resnet-20), got {name!r}")
    return {"kind": m[1], "widths": (int(m[2]), int(m[3]), int(m[4])), "depth": int(m[5])}


def from_official_name(name: str, num_classes: int = 10, **kw) -> PoincareResNet:
    """The official ``parse_model_from_name``: e.g. ``from_official_name("hyperbolic-8-16-32-resnet-32", 100)``;
    ``kw`` may override the parsed ``widths`` / ``depth`` (e.g. a narrow CPU-scale net of the same kind)."""
    return PoincareResNet(num_classes=num_classes, **{**parse_official_name(name), **kw})


_SRC = ("paper Sec. 4 (Poincare ResNet: Mobius skip connection, identity init, midpoint BN), official "
        "models/resnets/*.py and README names")
_PARAMS = ("derived from the official layer shapes for CIFAR-10 (sheet G1b; the closed form is re-derived in "
           "tests/models/test_poincare_resnet.py): conv k^2 C_in C_out + C_out, linear / Poincare FC in*out + out")
_PARAMS_KIND = {
    "hyperbolic": "; Poincare BN = C + 1 (learned mean vector, one variance), fixed curvatures are buffers "
                  "(the official code keeps them as 32 / 50 frozen parameters)",
    "euclidean": "; BN = 2C (running statistics are buffers)",
    "euclideanwhypclass": "; BN = 2C, plus the classifier's learnable curvature (1)",
}


def _card(name: str, v: Variant, recipes: tuple[str, ...] = ()) -> ModelCard:
    kind = parse_official_name(v.official)["kind"]
    return ModelCard(
        name=name, paper=54, family="poincare_resnet", task="classification", in_chans=3, num_classes=10,
        input_size=(32, 32), test_size=(16, 16), params=v.params, params_source=_PARAMS + _PARAMS_KIND[kind],
        reference=None,  # no timm / torchvision model; layers checked against the authors' hypll package
        # ONNX export is proven on the ResNet-20s (the same blocks; a Poincare ResNet-32 export costs minutes on CPU)
        capabilities=frozenset({"features", "compile", "channels_last"} | ({"onnx"} if v.params < 100_000 else set())),
        recipes=recipes,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=1.0, source=_SRC,
        notes=f"official name {v.official}; CIFAR preprocessing of cifar10/transforms.py (mean = std = 0.5, "
              "RandomCrop 32 pad 4 + flip in training)")


def _factory(name: str, recipes: tuple[str, ...] = ()):
    v = VARIANTS[name]

    @register_model(_card(name, v, recipes))
    def build(num_classes: int = 10, in_chans: int = 3, **kw) -> PoincareResNet:
        return from_official_name(v.official, num_classes, in_chans=in_chans, **kw)

    build.__name__ = build.__qualname__ = name
    return build


poincare_resnet20 = _factory("poincare_resnet20", ("poincare_resnet20_cifar10_paper", "poincare_resnet_digits"))
poincare_resnet32 = _factory("poincare_resnet32")
euclidean_resnet20 = _factory("euclidean_resnet20", ("poincare_resnet_digits",))
euclidean_resnet32 = _factory("euclidean_resnet32")
euclidean_hypclass_resnet20 = _factory("euclidean_hypclass_resnet20")
euclidean_hypclass_resnet32 = _factory("euclidean_hypclass_resnet32")
