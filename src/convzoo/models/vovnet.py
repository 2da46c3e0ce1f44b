"""VoVNet: An Energy and GPU-Computation Efficient Backbone Network for Real-Time Object Detection,
and VoVNetV2 (CenterMask: Real-Time Anchor-Free Instance Segmentation).

Seed paper 53; Lee, Hwang, Lee, Bae, Park; CVPR-W 2019; arXiv 1904.09730 (V1). V2: Lee & Park,
CVPR 2020, arXiv 1911.06667, Sec. 2 "VoVNetV2". Official code: stigma0617/VoVNet.pytorch (V1
classification), youngwanLEE/vovnet-detectron2 (V2 backbones). Reference: timm's ``vovnet.py``.

Implemented here:
- The OSA module (V1 Sec. 3.2, Fig. 2): n successive 3x3 conv-BN-ReLU layers of ``stage_ch``
  channels (the first takes the block input), then ONE concatenation of the block input and all n
  layer outputs (``in + n * stage_ch`` channels) reduced by a 1x1 conv-BN-ReLU to ``concat_ch``.
- VoVNet (V1 Sec. 3.3, Table 1): stem 3x3/2 conv (in -> 64), 3x3 conv (64 -> 64), 3x3/2 conv
  (64 -> 128); four OSA stages (stage 2 at stride 4 without pooling; stages 3-5 open with a 3x3/2
  max-pool, ``ceil_mode=True``), so features at strides 4/8/16/32; global average pool and a
  linear classifier. VoVNet-27-slim, -39 and -57.
- VoVNetV2 (CenterMask Sec. 2): an identity residual around every OSA module whose input and
  output widths agree (the non-first blocks of a stage; added after the attention, no ReLU after
  the sum), and effective Squeeze-Excitation (:class:`~convzoo.layers.ese.EffectiveSE`) on the
  1x1-aggregated output. The "DW" variants replace every 3x3 layer (and the last two stem convs) by a
  depth-wise-separable layer, 3x3 depth-wise conv -> 1x1 conv -> BN -> ReLU, with a 1x1 conv-BN-ReLU
  reduction to ``stage_ch`` in front of the chain when the block input is wider; the
  concatenation still takes the block input itself.

Variants (``VOVNET_CFGS``): the paper's V1 names ``vovnet27_slim``, ``vovnet39``, ``vovnet57`` and
timm's ``vovnet39a``, ``vovnet57a`` (V1, no residual, no attention), ``ese_vovnet19b_slim_dw``,
``ese_vovnet19b_dw``, ``ese_vovnet19b_slim``, ``ese_vovnet19b``, ``ese_vovnet39b``, ``ese_vovnet57b``,
``ese_vovnet99b`` (V2) and ``eca_vovnet39b`` (timm's V2-39 with ECA, paper 43, instead of eSE).

Where paper, official code and timm disagree (fact sheet G1a "Paper 53", traps):
- ``residual``: the V1 paper has no residual; the official V1 classification code
  (VoVNet.pytorch, which trained the released V1 ImageNet weights) adds the identity to the
  non-first OSA modules of each stage (VoVNet.pytorch issue #6). ``vovnet27_slim/39/57`` follow the
  paper (``residual=False``, = timm's ``vovnet39a/57a``); ``residual=True`` gives the official V1
  layout (no extra parameters, a different function).
- ``attn_placement``: CenterMask describes eSE as part of the (V2) OSA module, and the official
  detectron2 code puts one in EVERY OSA module (its ``SE`` flag is never read, vovnet-detectron2
  issue #10); timm keeps one per stage, in the last block. The registered ``*b`` variants use timm's
  ``"stage"`` layout (the counts of the fact sheet); ``attn_placement="block"`` gives the official
  detectron2 layout (V2-39: +2 eSE layers, +1,640,192 params). For 1-block stages (V2-19) both agree.

State-dict keys are timm's (``stem.N.conv``/``.bn``, ``stages.S.blocks.B.conv_reduction``,
``.conv_mid.L.conv``/``.conv_dw``/``.conv_pw``/``.bn``, ``.conv_concat``, ``.attn.fc``, ``head.fc``),
so timm VoVNet weights load with ``load_state_dict`` directly; :func:`remap_state_dict` renames
official V1 (VoVNet.pytorch) and detectron2 V2 checkpoints. ``convzoo.deploy`` folds every
conv-BN pair (the conv blocks are ``nn.Sequential``). Initialisation as the official code:
Kaiming-normal (fan-in) convs, BN weight 1 / bias 0, zero classifier bias.

timm's arguments: ``global_pool``, ``drop_rate`` and ``drop_path_rate`` (stochastic depth of the V2 identity
residual, after the attention and before the add; rates linear from 0 to the rate over all OSA modules, as
timm's ``calculate_drop_path_rates``; timm also drops the output of modules WITHOUT a residual, which removes
the whole map of a sample -- here only residual branches are dropped, so V1 without ``residual`` and the
V2-19 variants, one module per stage, take 0).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import drop_path, drop_path_rates, no_drop_path
from convzoo.layers.eca import ECA
from convzoo.layers.ese import EffectiveSE
from convzoo.layers.head import ClassifierHead, StagedBackbone
from convzoo.layers.init import kaiming_bn_init_
from convzoo.registry import ModelCard, register_model

__all__ = ["VOVNET_CFGS", "ConvNormAct", "OSABlock", "OSAStage", "SeparableConvNormAct", "VoVNet",
           "remap_state_dict"]


# --- layers (V1 Sec. 3.3: every conv is conv-BN-ReLU) -----------------------------------------------

class ConvNormAct(nn.Sequential):
    """k x k conv (no bias) -> BN -> ReLU; keys ``conv``, ``bn`` (timm's ConvNormAct)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, bias=False),
            bn=nn.BatchNorm2d(cout),
            act=nn.ReLU(inplace=True),
        ))


class SeparableConvNormAct(nn.Sequential):
    """3x3 depth-wise conv (stride) -> 1x1 conv -> BN -> ReLU (official ``dw_conv3x3``, V2 "DW")."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(OrderedDict(
            conv_dw=nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
            conv_pw=nn.Conv2d(cin, cout, 1, bias=False),
            bn=nn.BatchNorm2d(cout),
            act=nn.ReLU(inplace=True),
        ))


def _conv3x3(cin: int, cout: int, stride: int, depthwise: bool) -> nn.Sequential:
    return SeparableConvNormAct(cin, cout, stride) if depthwise else ConvNormAct(cin, cout, 3, stride)


def _attention(kind: str | None, channels: int) -> nn.Module | None:
    if kind is None:
        return None
    if kind == "ese":
        return EffectiveSE(channels)
    if kind == "eca":
        return ECA(channels)  # adaptive k = psi(C), paper 43 Eq. 12 (timm's eca_vovnet39b)
    raise ConvzooError(f"unknown VoVNet attention {kind!r}; expected None, 'ese' or 'eca'")


# --- the OSA module (V1 Sec. 3.2, Fig. 2; V2: CenterMask Sec. 2) ---------------------------------------

class OSABlock(nn.Module):
    """One-shot aggregation: a chain of ``layers`` convs, ONE concat with the input, 1x1 conv [+ eSE] [+ x].

    Args:
        in_chs, mid_chs, out_chs: block input width, ``stage_ch`` of every chain layer, ``concat_ch``.
        layers: number of 3x3 layers in the chain (5 for V1/V2-39+, 3 for V2-19).
        residual: add the block input to the output (needs ``in_chs == out_chs``).
        depthwise: depth-wise-separable chain layers, with a 1x1 reduction when ``in_chs != mid_chs``.
        attn: None, "ese" (eSE) or "eca" on the aggregated output.
    """

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, layers: int, residual: bool = False,
                 depthwise: bool = False, attn: str | None = None):
        super().__init__()
        if residual and in_chs != out_chs:
            raise ConvzooError(f"an OSA residual needs equal input and output widths, got {in_chs} -> {out_chs}")
        self.residual = residual
        self.conv_reduction = ConvNormAct(in_chs, mid_chs, 1) if depthwise and in_chs != mid_chs else None
        chain, cin = [], mid_chs if depthwise else in_chs
        for _ in range(layers):
            chain.append(SeparableConvNormAct(mid_chs, mid_chs) if depthwise else ConvNormAct(cin, mid_chs, 3))
            cin = mid_chs
        self.conv_mid = nn.ModuleList(chain)
        self.concat_chs = in_chs + layers * mid_chs  # input + every layer output, aggregated once
        self.conv_concat = ConvNormAct(self.concat_chs, out_chs, 1)
        self.attn = _attention(attn, out_chs)
        self.drop_path = nn.Identity()  # stochastic depth of the residual branch: set by the network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_chs, H, W) -> (B, out_chs, H, W)
        feats = [x]
        y = x if self.conv_reduction is None else self.conv_reduction(x)  # (B, mid_chs, H, W) if reduced
        for layer in self.conv_mid:
            y = layer(y)  # (B, mid_chs, H, W)
            feats.append(y)
        y = self.conv_concat(torch.cat(feats, dim=1))  # (B, in + n mid, H, W) -> (B, out_chs, H, W)
        if self.attn is not None:
            y = self.attn(y)
        return self.drop_path(y) + x if self.residual else y


class OSAStage(nn.Module):
    """[3x3/2 max-pool, ceil mode] -> ``blocks`` OSA modules; residual on the non-first modules.

    ``attn_placement`` "stage" puts the attention in the last module only (timm), "block" in every
    module (official detectron2 V2 code).
    """

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, blocks: int, layers: int, downsample: bool,
                 residual: bool, depthwise: bool, attn: str | None, attn_placement: str):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True) if downsample else None
        mods = []
        for i in range(blocks):
            with_attn = attn_placement == "block" or i == blocks - 1
            mods.append(OSABlock(in_chs if i == 0 else out_chs, mid_chs, out_chs, layers,
                                 residual=residual and i > 0, depthwise=depthwise,
                                 attn=attn if with_attn else None))
        self.blocks = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, H, W) -> (B, out_chs, ceil(H/2), ceil(W/2)) with pooling, else same size
        if self.pool is not None:
            x = self.pool(x)
        return self.blocks(x)


# --- the network (V1 Table 1) ------------------------------------------------------------------------

class VoVNet(StagedBackbone):
    """VoVNet V1/V2: stem (strides 2, 1, 2), four OSA stages at strides 4/8/16/32, GAP, linear.

    Args:
        stem_chs: widths of the three stem convs.
        stage_chs: ``stage_ch`` (width of each chain layer) per stage.
        concat_chs: ``concat_ch`` (OSA output width) per stage.
        blocks: OSA modules per stage.
        layers: chain layers per OSA module.
        residual: identity residual on the non-first modules of each stage (V2; official V1 code).
        depthwise: depth-wise-separable chain layers and stem convs 2-3 (V2 "DW").
        attn: None (V1), "ese" (V2) or "eca".
        attn_placement: "stage" (last module of each stage, timm) or "block" (every module, official V2).
        num_classes: 0 gives the pooled ``concat_chs[-1]`` embedding.
        in_chans: input channels.
        drop_rate: dropout before the classifier (0 in the paper).
        drop_path_rate: stochastic depth of the residual OSA modules (needs ``residual``; module docstring).
        global_pool: "avg" (the paper), "max", "avgmax", "catavgmax" or "" (timm's values).
    """

    def __init__(self, stem_chs: Sequence[int] = (64, 64, 128), stage_chs: Sequence[int] = (128, 160, 192, 224),
                 concat_chs: Sequence[int] = (256, 512, 768, 1024), blocks: Sequence[int] = (1, 1, 2, 2),
                 layers: int = 5, residual: bool = False, depthwise: bool = False, attn: str | None = None,
                 attn_placement: str = "stage", num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        if len(stem_chs) != 3 or not all(len(s) == 4 for s in (stage_chs, concat_chs, blocks)):
            raise ConvzooError("VoVNet needs 3 stem widths and 4 values each for stage_chs, concat_chs and blocks")
        if attn_placement not in ("stage", "block"):
            raise ConvzooError(f"attn_placement must be 'stage' or 'block', got {attn_placement!r}")
        self.num_classes, self.drop_rate = num_classes, drop_rate
        # stem: (B, in_chans, H, W) -> (B, stem_chs[2], H/4, W/4)
        self.stem = nn.Sequential(ConvNormAct(in_chans, stem_chs[0], 3, 2),
                                  _conv3x3(stem_chs[0], stem_chs[1], 1, depthwise),
                                  _conv3x3(stem_chs[1], stem_chs[2], 2, depthwise))
        # stages 2-5: (B, concat_chs[i], H/2^(i+2), W/2^(i+2))
        stages, cin, self.feature_info = [], stem_chs[2], []
        for i in range(4):
            stages.append(OSAStage(cin, stage_chs[i], concat_chs[i], blocks[i], layers, downsample=i > 0,
                                   residual=residual, depthwise=depthwise, attn=attn,
                                   attn_placement=attn_placement))
            cin = concat_chs[i]
            self.feature_info.append({"num_chs": cin, "reduction": 4 * 2 ** i, "module": f"stages.{i}"})
        self.stages = nn.Sequential(*stages)
        osa = [blk for stage in self.stages for blk in stage.blocks]
        if not any(blk.residual for blk in osa):
            no_drop_path(drop_path_rate, "this VoVNet (V1, or V2 with one OSA module per stage)")
        for blk, rate in zip(osa, [r for s in drop_path_rates(drop_path_rate, blocks) for r in s]):
            if blk.residual:
                blk.drop_path = drop_path(rate)
        # head: GAP -> dropout -> fc (keys head.fc, as timm)
        self.num_features = cin
        self.head = ClassifierHead(cin, num_classes, global_pool, drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        kaiming_bn_init_(self)  # official VoVNet.pytorch: Kaiming (fan-in) convs, BN 1/0, classifier bias 0

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        super().reset_classifier(num_classes, global_pool)
        if num_classes > 0:
            nn.init.zeros_(self.head.fc.bias)


# --- official checkpoints ----------------------------------------------------------------------------

_LEAF = {"conv": "conv", "norm": "bn", "dw_conv3x3": "conv_dw", "pw_conv1x1": "conv_pw", "pw_norm": "bn"}


def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official VoVNet checkpoint to the (timm) layout of this file; timm keys pass unchanged.

    - prefixes ``module.`` (DataParallel) and ``backbone.bottom_up.`` (detectron2) are dropped;
    - ``stem.stem_K/{conv,norm,dw_conv3x3,pw_conv1x1,pw_norm}`` -> ``stem.{K-1}.{conv,bn,conv_dw,conv_pw,bn}``;
    - ``stageS.OSAS_B.`` -> ``stages.{S-2}.blocks.{B-1}.``, and inside it ``layers.L.OSAS_B_L/`` ->
      ``conv_mid.L.``, ``concat.OSAS_B_concat/`` -> ``conv_concat.``,
      ``conv_reduction.OSAS_B_reduction_0/`` -> ``conv_reduction.``, ``ese.fc`` -> ``attn.fc``;
    - ``classifier`` -> ``head.fc``.
    Official V1 weights need ``residual=True``; detectron2 V2 weights ``attn_placement="block"``
    (and ``num_classes=0``: they hold no classifier).
    """
    out = {}
    for key, v in state.items():
        k = key.removeprefix("module.").removeprefix("backbone.bottom_up.")
        k = re.sub(r"^stem\.stem_(\d)/(\w+)\.", lambda m: f"stem.{int(m[1]) - 1}.{_LEAF[m[2]]}.", k)
        k = re.sub(r"^stage(\d)\.OSA\d_(\d+)\.", lambda m: f"stages.{int(m[1]) - 2}.blocks.{int(m[2]) - 1}.", k)
        k = re.sub(r"\.layers\.(\d+)\.OSA\d_\d+_\d+/(\w+)\.", lambda m: f".conv_mid.{m[1]}.{_LEAF[m[2]]}.", k)
        k = re.sub(r"\.concat\.OSA\d_\d+_concat/(\w+)\.", lambda m: f".conv_concat.{_LEAF[m[1]]}.", k)
        k = re.sub(r"\.conv_reduction\.OSA\d_\d+_reduction_0/(\w+)\.",
                   lambda m: f".conv_reduction.{_LEAF[m[1]]}.", k)
        k = re.sub(r"\.ese\.fc\.", ".attn.fc.", k)
        out[re.sub(r"^classifier\.", "head.fc.", k)] = v
    return out


# --- variants (V1 Table 1 / official V1 code; CenterMask / official detectron2 stage specs; timm) ----

_WIDE = {"stage_chs": (128, 160, 192, 224), "concat_chs": (256, 512, 768, 1024)}
_SLIM_V1 = {"stage_chs": (64, 80, 96, 112), "concat_chs": (128, 256, 384, 512)}
_SLIM_V2 = {"stage_chs": (64, 80, 96, 112), "concat_chs": (112, 256, 384, 512)}
_V1 = {"stem_chs": (64, 64, 128), "layers": 5, "residual": False, "depthwise": False, "attn": None}
_V2 = {"stem_chs": (64, 64, 128), "residual": True, "depthwise": False, "attn": "ese"}
_V2_DW = dict(_V2, stem_chs=(64, 64, 64), depthwise=True)

VOVNET_CFGS = {
    "vovnet27_slim": dict(_V1, **_SLIM_V1, blocks=(1, 1, 1, 1)),
    "vovnet39": dict(_V1, **_WIDE, blocks=(1, 1, 2, 2)),
    "vovnet57": dict(_V1, **_WIDE, blocks=(1, 1, 4, 3)),
    "vovnet39a": dict(_V1, **_WIDE, blocks=(1, 1, 2, 2)),
    "vovnet57a": dict(_V1, **_WIDE, blocks=(1, 1, 4, 3)),
    "ese_vovnet19b_slim_dw": dict(_V2_DW, **_SLIM_V2, blocks=(1, 1, 1, 1), layers=3),
    "ese_vovnet19b_dw": dict(_V2_DW, **_WIDE, blocks=(1, 1, 1, 1), layers=3),
    "ese_vovnet19b_slim": dict(_V2, **_SLIM_V2, blocks=(1, 1, 1, 1), layers=3),
    "ese_vovnet19b": dict(_V2, **_WIDE, blocks=(1, 1, 1, 1), layers=3),
    "ese_vovnet39b": dict(_V2, **_WIDE, blocks=(1, 1, 2, 2), layers=5),
    "ese_vovnet57b": dict(_V2, **_WIDE, blocks=(1, 1, 4, 3), layers=5),
    "ese_vovnet99b": dict(_V2, **_WIDE, blocks=(1, 3, 9, 3), layers=5),
    "eca_vovnet39b": dict(_V2, **_WIDE, blocks=(1, 1, 2, 2), layers=5, attn="eca"),
}

# params: sum of numel at 1000 classes (fact sheet G1a "Paper 53" Sec. 3: timm 1.0.31 create_model /
# official V1 code; ese_vovnet19b: timm's unregistered ``model_cfgs['ese_vovnet19b']`` built with
# timm's VovNet); MACs: conv + linear multiply-adds @224 (FlopCounterMode convention; the sheet's G
# figures to 3 decimals), proven exactly by tests/models/test_vovnet.py on timm's model where timm has
# the network (timm name or construction = the last field), else by the closed form of Table 1
_SHEET = {
    "vovnet27_slim": (3_525_736, 2_176_695_296, "2.177", None),
    "vovnet39": (22_600_296, 7_072_227_328, "7.072", "timm:vovnet39a"),
    "vovnet57": (36_640_296, 8_930_144_256, "8.930", "timm:vovnet57a"),
    "vovnet39a": (22_600_296, 7_072_227_328, "7.072", "timm:vovnet39a"),
    "vovnet57a": (36_640_296, 8_930_144_256, "8.930", "timm:vovnet57a"),
    "ese_vovnet19b_slim_dw": (1_897_752, 398_071_376, "0.398", "timm:ese_vovnet19b_slim_dw"),
    "ese_vovnet19b_dw": (6_543_080, 1_333_489_824, "1.333", "timm:ese_vovnet19b_dw"),
    "ese_vovnet19b_slim": (3_166_136, 1_680_214_784, "1.680", "timm:ese_vovnet19b_slim"),
    "ese_vovnet19b": (11_205_416, 4_121_937_920, None, None),
    "ese_vovnet39b": (24_568_936, 7_074_193_408, "7.074", "timm:ese_vovnet39b"),
    "ese_vovnet57b": (38_608_936, 8_932_110_336, "8.932", "timm:ese_vovnet57b"),
    "ese_vovnet99b": (63_199_272, 16_488_214_528, "16.488", "timm:ese_vovnet99b"),
    "eca_vovnet39b": (22_600_316, 7_072_240_128, None, "timm:eca_vovnet39b"),
}

_CAPS = frozenset({"features", "compile", "onnx", "channels_last", "bf16"})
_V1_SRC = "V1 paper Sec. 3.2 (OSA, Fig. 2) and Sec. 3.3 (Table 1); official VoVNet.pytorch vovnet.py"
_V2_SRC = ("CenterMask (arXiv 1911.06667) Sec. 2 'VoVNetV2' (residual OSA + eSE); stage specs of the official "
           "vovnet-detectron2 vovnet.py; timm vovnet.py layout (eSE in the last module of each stage)")
_V1_NOTES = ("V1 paper layout (no residual). residual=True gives the official VoVNet.pytorch layout that trained "
             "the released V1 weights (same parameters, different function). ")
_V2_NOTES = ("timm layout: eSE in the last OSA module of each stage; attn_placement='block' gives the official "
             "detectron2 layout (eSE in every module; equal for 1-module stages). ")
_NOTES = {
    "vovnet27_slim": _V1_NOTES + "DSOD backbone of the paper (PASCAL VOC, from scratch). timm has no VoVNet-27-slim.",
    "vovnet39": _V1_NOTES + "= timm vovnet39a. ImageNet top-1 err 23.23 % (official README, residual=True).",
    "vovnet57": _V1_NOTES + "= timm vovnet57a. ImageNet top-1 err 22.27 % (official README, residual=True).",
    "vovnet39a": "timm's name for VoVNet-39 V1 without residual (= vovnet39). " + _V1_NOTES,
    "vovnet57a": "timm's name for VoVNet-57 V1 without residual (= vovnet57). " + _V1_NOTES,
    "ese_vovnet19b_slim_dw": _V2_NOTES + "V2-19-slim-DW: 32.4 COCO AP, Faster R-CNN FPNLite (official README).",
    "ese_vovnet19b_dw": _V2_NOTES + "V2-19-DW: 36.7 COCO AP, Faster R-CNN FPNLite (official README).",
    "ese_vovnet19b_slim": _V2_NOTES + "V2-19-slim: 35.2 COCO AP, Faster R-CNN FPNLite (official README).",
    "ese_vovnet19b": _V2_NOTES + ("V2-19: 38.9 COCO AP, Faster R-CNN FPN (official README). timm defines this config "
                                  "but registers no model, so there is no bench reference."),
    "ese_vovnet39b": _V2_NOTES + "V2-39: 42.7 COCO AP, Faster R-CNN FPN (official README).",
    "ese_vovnet57b": _V2_NOTES + "V2-57: 43.3 COCO AP, Faster R-CNN FPN (official README).",
    "ese_vovnet99b": _V2_NOTES + "V2-99: 44.1 COCO AP, Faster R-CNN FPN (official README).",
    "eca_vovnet39b": "timm's V2-39 with ECA (paper 43, adaptive k = 5 for 256..1024 channels) in place of eSE.",
}
_RECIPES = {"vovnet27_slim": ("vovnet_digits",), "vovnet39": ("vovnet39_imagenet_paper",)}
# the preprocessing the weights expect: timm's pretrained_cfg for timm's names (its default tag; 1.0.31), the
# PyTorch ImageNet example's eval transform (bilinear, 224/256, ImageNet statistics: the card defaults) for the
# paper's V1 names (weights: official VoVNet.pytorch, whose eval transform is not checked here)
_TIMM_CFG = {"interpolation": "bicubic", "crop_pct": 0.875}
_PREPROCESSING = {
    "ese_vovnet57b": {"interpolation": "bicubic", "crop_pct": 0.95, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
    **{n: _TIMM_CFG for n in ("vovnet39a", "vovnet57a", "ese_vovnet19b_slim_dw", "ese_vovnet19b_dw",
                              "ese_vovnet19b_slim", "ese_vovnet19b", "ese_vovnet39b", "ese_vovnet99b", "eca_vovnet39b")},
}
_PREPROCESSING_NOTE = {
    "ese_vovnet57b": " Preprocessing: timm's ese_vovnet57b.ra4_e3600_r256_in1k (bicubic, crop 0.95, mean = std = 0.5; "
                     "trained at 256 px, tested at 320).",
    **{n: " Preprocessing: timm's vovnet _cfg (bicubic, crop 0.875, ImageNet statistics)." for n in _PREPROCESSING
       if n != "ese_vovnet57b"},
}


def _card(name: str) -> ModelCard:
    params, macs, sheet_macs, reference = _SHEET[name]
    measured = ("timm 1.0.31 create_model" if reference else
                "official VoVNet.pytorch vovnet27_slim" if name == "vovnet27_slim" else
                "timm 1.0.31 VovNet(model_cfgs['ese_vovnet19b'])")
    if name in ("vovnet27_slim", "vovnet39", "vovnet57"):
        macs_src = "closed form of V1 Table 1, tests/models/test_vovnet.py::test_v1_macs_closed_form"
    else:
        timm_name = reference.removeprefix("timm:") if reference else "VovNet(model_cfgs['ese_vovnet19b'])"
        macs_src = f"timm 1.0.31 {timm_name} counted with FlopCounterMode, tests/models/test_vovnet.py::test_macs_match_timm"
    return ModelCard(
        name=name, paper=53, family="vovnet", task="classification", params=params,
        params_source=f"sum of numel, 1000 classes, BN statistics excluded; {measured} (fact sheet G1a Paper 53 Sec. 3)",
        macs=macs, macs_rtol=0.0,
        macs_source=f"conv + linear MACs @224; {macs_src}" + (f" (fact sheet: {sheet_macs} G)" if sheet_macs else ""),
        reference=reference, capabilities=_CAPS, test_size=(64, 64),
        source=_V2_SRC if VOVNET_CFGS[name]["residual"] else _V1_SRC,
        recipes=_RECIPES.get(name, ()), **_PREPROCESSING.get(name, {}),
        notes=_NOTES[name] + _PREPROCESSING_NOTE.get(name, " Preprocessing: the PyTorch ImageNet example's (bilinear, "
                                                     "224/256, ImageNet statistics)."),
    )


def _vovnet(name: str, **kwargs) -> VoVNet:
    return VoVNet(**{**VOVNET_CFGS[name], **kwargs})


@register_model(_card("vovnet27_slim"))
def vovnet27_slim(**kwargs) -> VoVNet:
    return _vovnet("vovnet27_slim", **kwargs)


@register_model(_card("vovnet39"))
def vovnet39(**kwargs) -> VoVNet:
    return _vovnet("vovnet39", **kwargs)


@register_model(_card("vovnet57"))
def vovnet57(**kwargs) -> VoVNet:
    return _vovnet("vovnet57", **kwargs)


@register_model(_card("vovnet39a"))
def vovnet39a(**kwargs) -> VoVNet:
    return _vovnet("vovnet39a", **kwargs)


@register_model(_card("vovnet57a"))
def vovnet57a(**kwargs) -> VoVNet:
    return _vovnet("vovnet57a", **kwargs)


@register_model(_card("ese_vovnet19b_slim_dw"))
def ese_vovnet19b_slim_dw(**kwargs) -> VoVNet:
    return _vovnet("ese_vovnet19b_slim_dw", **kwargs)


@register_model(_card("ese_vovnet19b_dw"))
def ese_vovnet19b_dw(**kwargs) -> VoVNet:
    return _vovnet("ese_vovnet19b_dw", **kwargs)


@register_model(_card("ese_vovnet19b_slim"))
def ese_vovnet19b_slim(**kwargs) -> VoVNet:
    return _vovnet("ese_vovnet19b_slim", **kwargs)


@register_model(_card("ese_vovnet19b"))
def ese_vovnet19b(**kwargs) -> VoVNet:
    return _vovnet("ese_vovnet19b", **kwargs)


@register_model(_card("ese_vovnet39b"))
def ese_vovnet39b(**kwargs) -> VoVNet:
    return _vovnet("ese_vovnet39b", **kwargs)


@register_model(_card("ese_vovnet57b"))
def ese_vovnet57b(**kwargs) -> VoVNet:
    return _vovnet("ese_vovnet57b", **kwargs)


@register_model(_card("ese_vovnet99b"))
def ese_vovnet99b(**kwargs) -> VoVNet:
    return _vovnet("ese_vovnet99b", **kwargs)


@register_model(_card("eca_vovnet39b"))
def eca_vovnet39b(**kwargs) -> VoVNet:
    return _vovnet("eca_vovnet39b", **kwargs)
