"""P3D ResNet: Learning Spatio-Temporal Representation with Pseudo-3D Residual Networks.

Seed paper 49; Qiu, Yao, Mei; ICCV 2017; arXiv 1711.10305. Official code: ZhaofanQiu/pseudo-3d-residual-networks
(Caffe deploy prototxts ``deploy_p3d_resnet_sports1m.prototxt`` / ``..._kinetics.prototxt``); PyTorch port with
converted weights: qijiezhao/pseudo-3d-pytorch ``p3d_model.py`` (``P3D63`` / ``P3D131`` / ``P3D199``).

Implemented here (paper Sec. 3, Fig. 3-4; the prototxt and the port):
- the A/B/C blocks (:class:`convzoo.layers.p3d.P3DBlock`) in a ResNet: the 1x7x7 stem (stride 1, 2, 2; 64 ch),
  max-pooling 2x3x3 stride 2 (halves T, H and W), res2-res4 of P3D blocks, each followed by a temporal max-pool
  (kernel 2, stride 2: T 16 -> 8 -> 4 -> 2 -> 1 at the paper's 16 frames), then res5 of plain 2-D bottlenecks on
  the temporally collapsed map, global average pool, dropout, FC;
- :class:`P3DResNet` with block types as data: one type everywhere (``p3d_a_resnet50``, ``p3d_b_resnet50``,
  ``p3d_c_resnet50``: the paper's Table 1 ablation, ResNet-50 layout [3, 4, 6, 3]) or cycling ``"ABC"[i % 3]``
  over the blocks i = 0, 1, ... of res2-res4 (``p3d_resnet199``: ResNet-152 layout [3, 8, 36, 3], 152 layers
  + 47 temporal convs = 199; block 2a is A, 2b B, 2c C, 3a A, ..., 4a C);
- :func:`inflate_2d_init`: ImageNet 2-D ResNet weights -> P3D (Sec. 4: "initialized with ... ResNet-152
  pre-trained on ImageNet"): every 2-D kxk conv becomes the 1xkxk conv at the same place (S, the stem, 1x1s,
  res5 unchanged), the T convs start as the temporal identity (centre tap 1 per channel, BN the identity);
  ``temporal="neutral"`` zeroes the T branch of B and C blocks instead (whose identity would add S's output
  twice), so the inflated network equals the 2-D ResNet on every frame of a still clip;
- ``p3d_a_digits``: a small P3D-A (widths 16-128, one block per stage) for the CPU-scale moving-digits recipe, and
  ``p3d_a_digits_frame2d``, the same network with ``per_frame=True``: every frame runs alone (T convs reduce to
  their centre tap, the temporal pools see one frame), res5's map keeps all T frames and the head's average
  over T, H, W gives the frame-averaged 2-D model the paper compares against (the frame-based ResNet baseline).

Departures, and why:
- The stem's 2x3x3 max-pool runs as a 1x3x3 spatial pool then a 2x1x1 temporal pool (a max over a product window
  is the max of the maxima: equal to the port's pool). Temporal pools use ``ceil_mode``, so clips of any length
  work (1 or an odd number of frames); with even lengths the result is the port's.
- res5 runs on every frame with 1 x k x k kernels (the 2-D arithmetic, without reshaping the map to 2-D), then the
  global pool averages over T, H and W. At the paper's 16 frames T is 1 there, as in the port; the port's ``view``
  to 2-D mixes channels and frames when T > 1, and its fixed 5x5 average pool needs 160-pixel inputs. Keeping
  every conv 3-D lets the whole network run in ``channels_last_3d``; the port's 4-D res5 kernels load through
  :func:`remap_state_dict` (an added unit temporal axis).
- The last BN of every block starts with scale 0 (``zero_init_last``, timm's ResNet default; the port starts at 1):
  a fresh P3D-199 otherwise grows its activations to ~1e5 through 50 residual blocks and overflows in evaluation
  before its BN statistics settle. Inflated or loaded weights replace it.
- ``drop_rate`` defaults to 0 (timm's convention); the Caffe deploy net uses 0.1, the port 0.5 (recipes set it).
- ``stride_in="3x3"`` (not the paper's) strides the S conv / 3x3 conv instead of the first 1x1, to inflate
  torchvision/timm ResNets (v1.5) exactly.

State-dict keys are the port's (``conv1_custom``, ``bn1``, ``layer1.0.conv2`` (S), ``layer1.0.conv3`` (T),
``layer4.0.conv_normal``, ``fc``); :func:`remap_state_dict` turns its converted P3D-199 checkpoints into ours (drops a
DataParallel ``module.`` prefix, gives res5's 2-D kernels a unit temporal axis).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import check_drop_rate, drop_path_rates
from convzoo.layers.head import Backbone, SelectAdaptivePool, apply_fc, create_classifier, make_fc
from convzoo.layers.p3d import EXPANSION, Bottleneck2d, P3DBlock
from convzoo.registry import ModelCard, register_model

__all__ = ["P3D_CFGS", "P3DConfig", "P3DResNet", "block_types", "inflate_2d_init", "remap_state_dict",
           "set_temporal_identity_",
           "set_temporal_zero_", "temporal_pool"]


@dataclass(frozen=True)
class P3DConfig:
    layers: tuple[int, int, int, int]
    types: str  # block i of res2-res4 gets types[i % len(types)]
    width: int = 64  # stem channels = res2 planes; planes double per stage
    zero_init_last: bool = True  # the small digits net (4 blocks) needs no zero-initialised branches


P3D_CFGS = {
    "p3d_a_resnet50": P3DConfig((3, 4, 6, 3), "A"),
    "p3d_b_resnet50": P3DConfig((3, 4, 6, 3), "B"),
    "p3d_c_resnet50": P3DConfig((3, 4, 6, 3), "C"),
    "p3d_resnet199": P3DConfig((3, 8, 36, 3), "ABC"),
    "p3d_a_digits": P3DConfig((1, 1, 1, 1), "A", width=16, zero_init_last=False),
}


def block_types(layers: Sequence[int], types: str) -> list[str]:
    """The type of each P3D block of res2-res4, in order: ``types[i % len(types)]``."""
    return [types[i % len(types)] for i in range(sum(layers[:3]))]


def temporal_pool(x: torch.Tensor) -> torch.Tensor:
    """Max over pairs of frames (kernel 2, stride 2, ceil: an odd last frame is kept): ``T -> ceil(T / 2)``."""
    return F.max_pool3d(x, (2, 1, 1), (2, 1, 1), ceil_mode=True)


class P3DResNet(Backbone):
    """P3D ResNet: ``(N, C, T, H, W)`` clips -> ``(N, num_classes)`` (module docstring)."""

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), types: str = "A", num_classes: int = 400,
                 in_chans: int = 3, width: int = 64, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 global_pool: str = "avg", stride_in: str = "1x1", per_frame: bool = False,
                 zero_init_last: bool = True):
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ConvzooError(f"P3D ResNet needs 4 stages of >= 1 block, got layers={tuple(layers)}")
        if not types or set(types) - set("ABC"):
            raise ConvzooError(f"P3D block types must be a string of A, B and C, got {types!r}")
        self.num_classes, self.drop_rate = num_classes, check_drop_rate(drop_rate, "drop_rate")
        self.per_frame = per_frame
        self.types = block_types(layers, types)
        # stem: 1x7x7 stride (1, 2, 2), BN, ReLU, then the 2x3x3 stride-2 max-pool (spatial, then temporal)
        self.conv1_custom = nn.Conv3d(in_chans, width, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        dpr = drop_path_rates(drop_path_rate, layers)
        chs, idx, stages = width, 0, []
        for s, n in enumerate(layers):
            planes, blocks = width * 2 ** s, []
            for j in range(n):
                stride = 2 if s > 0 and j == 0 else 1
                if s < 3:
                    blocks.append(P3DBlock(chs, planes, self.types[idx], stride, stride_in, dpr[s][j]))
                    idx += 1
                else:
                    blocks.append(Bottleneck2d(chs, planes, stride, stride_in, dpr[s][j]))
                chs = planes * EXPANSION
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = chs
        self.feature_info = [{"num_chs": width * 2 ** s * EXPANSION, "reduction": 4 * 2 ** s, "module": f"layer{s + 1}"}
                             for s in range(4)]
        self.global_pool, self.fc = create_classifier(chs, num_classes, global_pool)
        self.dropout = nn.Dropout(drop_rate)
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:  # every residual branch starts at zero: the 50 blocks of P3D-199 keep activations bounded
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
                for block in layer:
                    nn.init.zeros_(block.bn4.weight)

    # -- forward -----------------------------------------------------------------------------------------
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ConvzooError(f"P3D takes clips (N, C, T, H, W), got a tensor of shape {tuple(x.shape)}")
        if self.per_frame:  # every frame on its own: (N, C, T, H, W) -> (N T, C, 1, H, W)
            n, c, t, h, w = x.shape
            x = x.transpose(1, 2).reshape(n * t, c, 1, h, w)
        x = self.relu(self.bn1(self.conv1_custom(x)))  # (N, w, T, H/2, W/2)
        return temporal_pool(self.maxpool(x))  # (N, w, T/2, H/4, W/4)

    def _unfold(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """A per-frame map (N T, C, 1, H, W) -> (N, C, T, H, W) (the identity for clip models)."""
        if not self.per_frame:
            return x
        nt, c, _, h, w = x.shape
        return x.reshape(nt // frames, frames, c, h, w).transpose(1, 2)

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """res2..res5 maps (before each temporal pool): (N, 4w, T/2, H/4, W/4) ... (N, 32w, T', H/32, W/32)."""
        frames = x.shape[2]
        x, out = self.stem(x), []
        stop = 4 if stop is None else stop
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3)):
            if i >= stop:
                return out
            x = layer(x)
            out.append(self._unfold(x, frames))
            x = temporal_pool(x)
        if stop >= 4:
            out.append(self._unfold(self.layer4(x), frames))
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        x = self.stem(x)
        x = temporal_pool(self.layer1(x))  # res2
        x = temporal_pool(self.layer2(x))  # res3
        x = temporal_pool(self.layer3(x))  # res4
        return self._unfold(self.layer4(x), frames)  # res5 per frame: (N, 32w, T', H/32, W/32); per_frame: T' = T

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.global_pool(x))  # (N, 32w) over T, H, W
        return x if pre_logits else apply_fc(self.fc, x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool(global_pool)
        self.fc = make_fc(self.num_features * self.global_pool.feat_mult(), num_classes)


def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A checkpoint of the PyTorch port (qijiezhao/pseudo-3d-pytorch, ``state_dict`` of ``P3D199``) in our layout:
    the same keys without ``module.``; res5's 4-D conv kernels get their unit temporal axis."""
    out = {}
    for k, v in state.items():
        k = k.removeprefix("module.")
        out[k] = v.unsqueeze(2) if k.startswith("layer4.") and v.dim() == 4 else v
    return out


# --- 2-D ImageNet ResNet -> P3D -------------------------------------------------------------------------
@torch.no_grad()
def set_temporal_identity_(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> None:
    """T conv = centre tap 1 on its own channel; BN = the identity (running var 1 - eps, so exactly)."""
    c = conv.weight.shape[0]
    conv.weight.zero_()
    conv.weight[torch.arange(c), torch.arange(c), 1, 0, 0] = 1.0
    bn.weight.fill_(1.0)
    bn.bias.zero_()
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)


@torch.no_grad()
def set_temporal_zero_(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> None:
    """The T branch adds nothing: BN scale and shift 0 (the conv keeps its initialisation)."""
    bn.weight.zero_()
    bn.bias.zero_()


@torch.no_grad()
def inflate_2d_init(model: P3DResNet, state_dict: dict[str, torch.Tensor], temporal: str = "identity") -> P3DResNet:
    """Initialise ``model`` from a 2-D torchvision/timm ResNet ``state_dict`` (keys ``conv1``, ``layerI.J.convK``,
    ``fc``; the same depth layout), in place; returns ``model``.

    Each 2-D ``k x k`` weight becomes the ``1 x k x k`` 3-D weight at the same place (stem, 1x1 convs, 3x3 -> S,
    projections; res5 keeps them 2-D); BN and, when the class count matches, ``fc`` are copied. The T convs:
    ``temporal="identity"`` (the paper's reading: every T conv passes its input through) or ``"neutral"``
    (A blocks identity, B and C blocks' T branch zero), which makes the P3D net on a clip of identical frames
    equal the 2-D net per frame when ``model`` strides where the 2-D net does (``stride_in="3x3"`` for
    torchvision/timm ResNets).
    """
    if temporal not in ("identity", "neutral"):
        raise ConvzooError(f"inflate_2d_init: temporal must be 'identity' or 'neutral', got {temporal!r}")
    src = {k.removeprefix("module."): v for k, v in state_dict.items()}
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}

    def put(dst: str, value: torch.Tensor) -> None:
        if dst not in own:
            raise ConvzooError(f"inflate_2d_init: the P3D model has no parameter {dst}")
        if value.dim() == own[dst].dim() - 1:  # a 2-D kernel (O, I, k, k) -> (O, I, 1, k, k)
            value = value.unsqueeze(2)
        if value.shape != own[dst].shape:
            raise ConvzooError(f"inflate_2d_init: {dst} has shape {tuple(own[dst].shape)}, the 2-D weight "
                               f"{tuple(value.shape)}; build the P3D model with the 2-D net's depth and width")
        mapped[dst] = value

    rename3d = {"conv1": "conv1", "bn1": "bn1", "conv2": "conv2", "bn2": "bn2", "conv3": "conv4", "bn3": "bn4",
                "downsample": "downsample"}
    rename2d = {**rename3d, "conv2": "conv_normal", "bn2": "bn_normal"}
    for key, value in src.items():
        if key.endswith("num_batches_tracked"):
            continue
        parts = key.split(".")
        if parts[0] == "conv1":
            put("conv1_custom.weight", value)
        elif parts[0] == "bn1":
            put(key, value)
        elif parts[0] == "fc":
            if own["fc.weight"].shape[0] == src["fc.weight"].shape[0]:
                put(key, value)
        elif parts[0].startswith("layer"):
            table = rename2d if parts[0] == "layer4" else rename3d
            if parts[2] not in table:
                raise ConvzooError(f"inflate_2d_init: unexpected 2-D ResNet key {key}")
            put(".".join([parts[0], parts[1], table[parts[2]], *parts[3:]]), value)
        else:
            raise ConvzooError(f"inflate_2d_init: unexpected 2-D ResNet key {key} (torchvision/timm ResNet keys)")
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")
               and ".conv3." not in k and ".bn3." not in k and not k.startswith("fc.")]
    if missing:
        raise ConvzooError(f"inflate_2d_init: the 2-D state dict lacks {len(missing)} weights, e.g. {missing[0]}")
    model.load_state_dict(mapped, strict=False)
    for layer in (model.layer1, model.layer2, model.layer3):
        for block in layer:
            if temporal == "neutral" and block.block_type in "BC":
                set_temporal_zero_(block.conv3, block.bn3)
            else:
                set_temporal_identity_(block.conv3, block.bn3)
    return model


# --- registered variants ------------------------------------------------------------------------------------
_SRC = ("paper Sec. 3.2-3.3 (Fig. 3 blocks, Fig. 4 P3D ResNet), official deploy_p3d_resnet_*.prototxt; "
        "qijiezhao/pseudo-3d-pytorch p3d_model.py")
_SHEET = ("fact sheet G3 Paper 49 Sec. 3: the official deploy prototxt's conv weights (no conv bias), BN gamma/beta "
          "and FC, counted by hand")
# P3D-A/B/C ResNet-50 share one count (each block has the same S, T and 1x1 convs); closed form in the test
_CARD = {"paper": 49, "family": "p3d", "task": "video_classification", "dims": 3, "in_chans": 3,
         "input_size": (16, 160, 160), "test_size": (4, 32, 32), "reference": None,
         "capabilities": frozenset({"features"}), "source": _SRC}


def _p3d(name: str, card: ModelCard, **kwargs) -> P3DResNet:
    """The variant ``name`` with the card's classes and channels unless given (also when called directly)."""
    cfg = P3D_CFGS[name]
    kwargs = {"num_classes": card.num_classes, "in_chans": card.in_chans, "zero_init_last": cfg.zero_init_last,
              **kwargs}
    return P3DResNet(cfg.layers, cfg.types, width=cfg.width, **kwargs)


@register_model(ModelCard(
    name="p3d_resnet199", num_classes=400, params=66_492_240,
    params_source=_SHEET + ", Kinetics head (400 classes): 66,492,240; Sports-1M head (487): 66,670,503 "
                           "(both proven in tests/models/test_p3d.py)",
    recipes=("p3d_resnet199_sports1m_paper",),
    notes="A, B, C cycling over the 47 blocks of res2-res4, res5 2-D; 16 x 160 x 160 clips (mean/std of the port: "
          "ImageNet's)", **_CARD))
def p3d_resnet199(**kwargs) -> P3DResNet:
    return _p3d("p3d_resnet199", p3d_resnet199.card, **kwargs)


def _r50_card(name: str, t: str) -> ModelCard:
    return ModelCard(
        name=name, num_classes=101, params=25_132_581,
        params_source="closed form (tests/models/test_p3d.py): torchvision resnet50 with 101 classes (23,714,981) plus "
                      "one 3x1x1 T conv (3 c^2) and its BN (2 c) per res2-res4 block (c = 64, 128, 256)", recipes=(),
        notes=f"ResNet-50 layout with every res2-res4 block of type {t} (the paper's Table 1 ablation on UCF101, "
              "101 classes); res5 2-D as the port's P3D63. The paper gives model sizes (MB), not counts; the count "
              "is proven in closed form in tests/models/test_p3d.py; the same for A, B and C", **_CARD)


@register_model(_r50_card("p3d_a_resnet50", "A"))
def p3d_a_resnet50(**kwargs) -> P3DResNet:
    return _p3d("p3d_a_resnet50", p3d_a_resnet50.card, **kwargs)


@register_model(_r50_card("p3d_b_resnet50", "B"))
def p3d_b_resnet50(**kwargs) -> P3DResNet:
    return _p3d("p3d_b_resnet50", p3d_b_resnet50.card, **kwargs)


@register_model(_r50_card("p3d_c_resnet50", "C"))
def p3d_c_resnet50(**kwargs) -> P3DResNet:
    return _p3d("p3d_c_resnet50", p3d_c_resnet50.card, **kwargs)


@register_model(ModelCard(
    name="p3d_a_digits", num_classes=4, in_chans=1, input_size=(16, 32, 32), params=523_220,
    params_source="pin: measured on this code (no published count; a CPU-scale configuration)",
    recipes=("p3d_moving_digits",), capabilities=frozenset({"features", "onnx"}),
    notes="small P3D-A (widths 16/32/64/128 x 4, one block per stage) for moving_digits (4 directions, 1 channel)",
    **{k: v for k, v in _CARD.items() if k not in ("in_chans", "input_size", "capabilities")}))
def p3d_a_digits(**kwargs) -> P3DResNet:
    return _p3d("p3d_a_digits", p3d_a_digits.card, **kwargs)


@register_model(ModelCard(
    name="p3d_a_digits_frame2d", num_classes=4, in_chans=1, input_size=(16, 32, 32), params=523_220,
    params_source="pin: measured on this code; the same weights as p3d_a_digits (tests/models/test_p3d.py)",
    recipes=("p3d_frame2d_moving_digits",), capabilities=frozenset({"onnx"}),
    notes="p3d_a_digits run on every frame alone (per_frame=True), class scores averaged over the frames: the "
          "per-frame 2-D baseline of the moving-digits comparison (same weights and count as p3d_a_digits)",
    **{k: v for k, v in _CARD.items() if k not in ("in_chans", "input_size", "capabilities")}))
def p3d_a_digits_frame2d(**kwargs) -> P3DResNet:
    return _p3d("p3d_a_digits", p3d_a_digits_frame2d.card, **{"per_frame": True, **kwargs})
