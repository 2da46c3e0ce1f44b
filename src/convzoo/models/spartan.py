"""SpaRTAN: Spatial Reinforcement Token-based Aggregation Network for Visual Recognition.

Seed paper 21; Pay, Baskaran, Loo, Wong, See; IJCNN 2025; arXiv 2507.10999. Official code:
henry-pay/SpaRTAN (Apache-2.0), ``src/model/spartan.py`` and the hydra configs ``src/config/``; read for
facts only, this file is written anew.

Implemented here (paper Sec. 3; official ``SpaRTAN``):
- ``Block``: x += DropPath(s1 * SMixer(GN1(x))); x += DropPath(s2 * CMixer(GN2(x))). GN = GroupNorm with
  one group (a "LayerNorm" over C, H, W; eps 1e-6), layer scales s1, s2 of shape (1, C, 1, 1) initialised
  to 1e-5, per-sample stochastic depth (torchvision ``StochasticDepth`` "row": kept samples scaled by
  1/(1-p)). The mixers are in :mod:`convzoo.layers.spartan_mixers`.
- Network: stem 3x3/2 conv-BN-GELU (in -> C0/2) -> 3x3/2 conv-BN-GELU (C0/2 -> C0); four stages of
  blocks at strides 4, 8, 16, 32; between stages a 2x2/2 conv-BN-SiLU downsampler; GAP -> linear.
  The first half of the stages uses dense 3x3 convs in the mixers, the second half grouped ones.
  Block i of n (counted over the whole net from 0) has drop-path rate ``drop_path_rate * i / n``
  (the last block stays below the nominal rate, as in the official code).
- Initialisation as the official ``_init_weights``: conv weights normal(0, sqrt(2 / fan_out)) with
  fan_out = k*k*C_out/groups, every bias 0, BN weight 1, linear trunc_normal(std 0.02); gamma and the
  layer scales 1e-5; the complex vector randn.

Variants (``SPARTAN_CFGS``): only one configuration ships with the official code,
``src/config/model/spartan.yaml`` (depths 3-3-12-2, widths 32-64-128-256, expansion 4-4-2-2, drop path
0.1), the paper's 3.8M-parameter / ~1.0 GFLOPs(-as-MACs at 256 px) model, called SpaRTAN-T in the README;
it is registered as ``spartan_t``. The widths and depths of the paper's other models (the SpaRTAN-S
checkpoint on the HF hub, the RT-DETR detection backbone, 21.5M params with the detector) are not in the
official repository nor in the material available here, so they are NOT registered rather than guessed;
pass ``depths``/``dims``/``expand_ratios`` to build them.

Departures from the official code, and the fact-sheet traps:
- The second stem conv HAS a GELU: the official ``ConvNormAct`` defaults to GELU and the stem passes no
  ``act`` (the fact sheet's "no act" is wrong on this point).
- ``in_chans`` is honoured (official: fixed 3); ``drop_rate`` adds dropout before the classifier
  (official: none, default 0); ``num_classes=0`` gives the pooled embedding.
- State-dict keys equal the official ones (``conv.{0,1}.conv/norm``, a flat ``layers.N`` with blocks and
  downsamplers interleaved, ``layers.N.smixer.*``, ``layers.N.cmixer.complex``, ``layers.N.norm_1``,
  ``layers.N.scale_1``, ``linear``), so an official checkpoint's ``state_dict["model"]`` loads directly.
  ``features`` returns the output of each stage (the last block before each downsampler).
- Compute: the card's MACs are the conv and linear multiply-accumulates as
  ``torch.utils.flop_counter.FlopCounterMode`` counts them (FLOPs/2); the complex multiply, the
  arg-max gathers, norms, GELUs and poolings are not counted (the survey's fvcore-like convention, which
  gives 1.044 G at 256 px and 0.800 G at 224 px; the paper's "approximately 1.0 GFLOPs" is these MACs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops import StochasticDepth

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import check_drop_rate
from convzoo.layers.head import Backbone, SelectAdaptivePool, apply_fc, create_classifier, make_fc
from convzoo.layers.spartan_mixers import CMixer, ConvNormAct, SMixer
from convzoo.registry import ModelCard, register_model

__all__ = ["SPARTAN_CFGS", "Block", "SpaRTAN", "no_weight_decay_names"]


class Block(nn.Module):
    """x + DropPath(s1 * SMixer(GN(x))), then + DropPath(s2 * CMixer(GN(x))); keys as the official block."""

    def __init__(self, dim: int, expand_ratio: int, grouped: bool, drop_path: float = 0.0):
        super().__init__()
        self.smixer = SMixer(dim, grouped=grouped)
        self.cmixer = CMixer(dim, expand_ratio, grouped=grouped)
        self.dropout_1 = StochasticDepth(drop_path, "row")
        self.dropout_2 = StochasticDepth(drop_path, "row")
        self.norm_1 = nn.GroupNorm(1, dim, eps=1e-6)
        self.norm_2 = nn.GroupNorm(1, dim, eps=1e-6)
        self.scale_1 = nn.Parameter(1e-5 * torch.ones(1, dim, 1, 1))
        self.scale_2 = nn.Parameter(1e-5 * torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W) -> (B, C, H, W)
        x = x + self.dropout_1(self.scale_1 * self.smixer(self.norm_1(x)))
        return x + self.dropout_2(self.scale_2 * self.cmixer(self.norm_2(x)))


class SpaRTAN(Backbone):
    """SpaRTAN: conv stem (stride 4), stages of SMixer/CMixer blocks with 2x2/2 downsamplers, GAP, linear.

    Args:
        depths: blocks per stage.
        dims: width per stage; ``dims[0]`` is the stem width (official ``init_dim``), ``dims[1:]`` the
            official ``dims``. Each a multiple of 8.
        expand_ratios: CMixer expansion r per stage (integers >= 2).
        drop_path_rate: stochastic-depth rate reached (asymptotically) by the last block.
        num_classes: 0 gives the pooled ``dims[-1]`` embedding.
        in_chans: input channels.
        drop_rate: dropout before the classifier (0: the official model has none).
        global_pool: timm's pool before the classifier ("avg", the official GAP; "max", "avgmax",
            "catavgmax", "").
    """

    def __init__(self, depths: Sequence[int] = (3, 3, 12, 2), dims: Sequence[int] = (32, 64, 128, 256),
                 expand_ratios: Sequence[int] = (4, 4, 2, 2), drop_path_rate: float = 0.1,
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        depths, dims, expand_ratios = tuple(depths), tuple(dims), tuple(expand_ratios)
        if not depths or not len(depths) == len(dims) == len(expand_ratios):
            raise ConvzooError(f"SpaRTAN needs one depth, width and expand ratio per stage, got depths {depths}, "
                               f"dims {dims}, expand_ratios {expand_ratios}")
        if any(d < 1 for d in depths):
            raise ConvzooError(f"SpaRTAN depths must be >= 1, got {depths}")
        if any(c <= 0 or c % 8 for c in dims):
            raise ConvzooError(f"SpaRTAN widths must be positive multiples of 8 (SMixer halves, its SE quarters), "
                               f"got {dims}")
        check_drop_rate(drop_path_rate)
        check_drop_rate(drop_rate, "drop_rate")
        self.num_classes, self.drop_rate = num_classes, drop_rate
        # stem: (B, in_chans, H, W) -> (B, C0, H/4, W/4)
        self.conv = nn.Sequential(ConvNormAct(in_chans, dims[0] // 2, 3, stride=2, padding=1),
                                  ConvNormAct(dims[0] // 2, dims[0], 3, stride=2, padding=1))
        # one flat Sequential as the official code: blocks of stage s, then the 2x2/2 downsampler
        layers, self.feature_info, total, i = [], [], sum(depths), 0
        for s, (depth, dim, ratio) in enumerate(zip(depths, dims, expand_ratios)):
            grouped = s >= len(depths) // 2
            for _ in range(depth):
                layers.append(Block(dim, ratio, grouped, drop_path_rate * i / total))
                i += 1
            self.feature_info.append({"num_chs": dim, "reduction": 4 * 2 ** s, "module": f"layers.{len(layers) - 1}"})
            if s < len(depths) - 1:  # (B, C_s, H, W) -> (B, C_s+1, H/2, W/2)
                layers.append(ConvNormAct(dim, dims[s + 1], 2, stride=2, act=nn.SiLU))
        self.layers = nn.Sequential(*layers)
        self._stage_ends = [int(f["module"].split(".")[1]) for f in self.feature_info]
        # head: GAP -> [dropout] -> linear (official key ``linear``)
        self.num_features = dims[-1]
        self.head_drop = nn.Dropout(drop_rate)
        self.global_pool, self.linear = create_classifier(dims[-1], num_classes, global_pool)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def _layer(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(layer, x, use_reentrant=False)
        return layer(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_chans, H, W) -> (B, dims[-1], H/32, W/32)
        x = self.conv(x)
        for layer in self.layers:
            x = self._layer(layer, x)
        return x

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """Output of each stage (before its downsampler): strides 4, 8, 16, 32 (``feature_info``); the
        first ``stop`` only when given."""
        x, out = self.conv(x), []
        for j, layer in enumerate(self.layers[:self._stage_ends[(stop or len(self._stage_ends)) - 1] + 1]):
            x = self._layer(layer, x)
            if j in self._stage_ends:
                out.append(x)
        return out

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute every block and downsampler in the backward pass while training (timm's switch)."""
        self.grad_checkpointing = enable

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))  # (B, C)
        return x if pre_logits else apply_fc(self.linear, x)

    def get_classifier(self) -> nn.Module:
        return self.linear

    def no_weight_decay(self) -> set[str]:
        """The official skip list (``norm``, ``gamma`` in names; see :func:`no_weight_decay_names`): the
        engine's default groups add this to its 1-D rule."""
        return no_weight_decay_names(self)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool(global_pool)
        self.linear = make_fc(self.num_features * self.global_pool.feat_mult(), num_classes)
        if num_classes > 0:
            self._init_weights(self.linear)


def no_weight_decay_names(model: nn.Module, skip_list: Sequence[str] = ("norm", "gamma")) -> set[str]:
    """Names the official optimiser puts in its weight-decay-0 group (``main.py`` ``set_weight_decay``).

    A parameter gets no decay when it is 1-D, its name ends with ``bias``, or its name contains an entry
    of the model config's ``skip_list`` (``norm``, ``gamma``). The layer scales ``scale_1``/``scale_2``
    (4-D) and the ``complex`` vector (5-D) are therefore DECAYED by the official recipe.
    """
    return {n for n, p in model.named_parameters()
            if p.requires_grad and (p.dim() == 1 or n.endswith("bias") or any(s in n for s in skip_list))}


# --- variants (official src/config/model/spartan.yaml) ------------------------------------------------

SPARTAN_CFGS: dict[str, dict] = {
    "spartan_t": {"depths": (3, 3, 12, 2), "dims": (32, 64, 128, 256), "expand_ratios": (4, 4, 2, 2),
                  "drop_path_rate": 0.1},
}

_CARDS = {
    "spartan_t": ModelCard(
        name="spartan_t", paper=21, family="spartan", task="classification", input_size=(256, 256),
        test_size=(64, 64), params=3_820_296,
        params_source="official henry-pay/SpaRTAN 1715a43 src/model/spartan.py built with "
                      "src/config/model/spartan.yaml, sum of numel at 1000 classes (fact sheet G1a Paper 21); "
                      "the paper's '3.8M'",
        macs=1_044_147_968, macs_rtol=0.0,
        macs_source="official henry-pay/SpaRTAN 1715a43 src/model/spartan.py built with src/config/model/spartan.yaml "
                    "at 256 px, counted with torch FlopCounterMode: conv + linear MACs only (complex multiply, "
                    "gathers, norms, activations, pools uncounted); = closed form, "
                    "tests/models/test_spartan.py::test_macs_match_sheet; fact sheet G1a Paper 21 1.044 G (0.800 G "
                    "at 224); the paper's 'approximately 1.0 GFLOPs' at its 256-px train/test size",
        capabilities=frozenset({"features", "compile", "onnx", "channels_last", "bf16"}),
        recipes=("spartan_digits", "spartan_imagenet_paper"),
        source="paper Sec. 3 (SMixer, CMixer, block, network) and official src/model/spartan.py + "
               "src/config/model/spartan.yaml (the only shipped configuration, README 'SpaRTAN-T')",
        notes="ImageNet-1K top-1 77.7 % (256 px, abstract). Only this configuration is published; other "
              "variants (SpaRTAN-S, the detection backbone) are not reproducible from the released material.",
        # official src/dataset/imagenet.py (eval) with src/config/data/imagenet.yaml: v2.Resize(img_size 256,
        # bilinear by default) -> CenterCrop(crop_size 256), ImageNet mean/std
        interpolation="bilinear", crop_pct=1.0,
    ),
}


def _spartan(name: str, **kwargs) -> SpaRTAN:
    return SpaRTAN(**{**SPARTAN_CFGS[name], **kwargs})


@register_model(_CARDS["spartan_t"])
def spartan_t(**kwargs) -> SpaRTAN:
    return _spartan("spartan_t", **kwargs)
