"""UniRepLKNet: A Universal Perception Large-Kernel ConvNet for Audio, Video, Point Cloud, Time-Series and
Image Recognition (Ding, Zhang, Ge, Zhao, Song, Yue, Shan; CVPR 2024, arXiv 2311.15599; seed paper 13), and
its journal extension "Scaling Up Your Kernels: Large Kernel Design in ConvNets towards Universal
Representations" (TPAMI 2025, arXiv 2410.08049; seed paper 11), which describes the same model family.
Official code: AILab-CVC/UniRepLKNet, ``unireplknet.py`` (read for facts: configurations and key names).

Implemented here:
- ``UniRepLKNetBlock`` (paper Sec. 3.3, Fig. 3): depth-wise conv -> BN -> SE (reduction 4, ReLU,
  sigmoid) -> channels-last Linear(C -> 4C) -> GELU -> GRN (with bias) -> Linear(4C -> C, no bias) ->
  BN -> layer scale gamma (init 1e-6) -> DropPath -> + input. "LarK" blocks (K >= 7) use the
  :class:`~convzoo.layers.dilated_reparam.DilatedReparamBlock`, "SmaK" blocks (K = 3 or 5) a plain
  depth-wise conv.
- ``UniRepLKNet``: stem = 3x3/2 conv (in -> C0/2) -> LN -> GELU -> 3x3/2 conv (C0/2 -> C0) -> LN; three
  downsamplers 3x3/2 conv -> LN; four stages at strides 4/8/16/32; head = global average pool ->
  LayerNorm -> Linear. ``features_only=True`` builds the official downstream (detection/segmentation)
  structure: a channels-first LayerNorm ``norm0..norm3`` on each stage output, no head; ``forward``
  then returns the four maps.
- Structural re-parameterisation: ``block.reparameterize()`` folds the dilated branches, the BN after the
  depth-wise conv, the GRN bias (projected through the 2nd Linear), the BN after the 2nd Linear and the
  layer scale into the Linear; ``model.reparameterize()`` (alias ``reparameterize_unireplknet``, the
  official name) does every block; ``convzoo.deploy`` and timm's ``reparameterize_model`` work too (the
  methods are idempotent, in any order). ``deploy=True`` builds the re-parameterised structure directly.
- Variants A, F, P, N, T, S, B, L, XL (:data:`UNIREPLKNET_CFGS`) with the official kernel plans.

State-dict keys are the official ones (``downsample_layers.i``, ``stages.i.j.dwconv.lk_origin``,
``dwconv.dil_conv_k5_1``, ``dwconv.dil_bn_k5_1``, ``norm``, ``se.down/up``, ``pwconv1.1``,
``act.1.gamma/beta``, ``pwconv2.0/2``, ``gamma``, ``norm``, ``head``; ``norm0..3`` with features_only), so
the released checkpoints load with ``load_state_dict`` (train-time ones into the default structure,
re-parameterised ones into ``deploy=True``).

Departures from the official code: no iGEMM CUDA large-kernel implementation and no gradient
checkpointing (``with_cp``) or SyncBN switches (same parameters and outputs); the channels-first
LayerNorm uses ``F.layer_norm`` on a permuted tensor instead of a hand-written mean/variance (equal up
to float rounding); an unknown kernel size raises instead of asserting. The audio, time-series, point-cloud
and video uses of the paper (the same backbone behind modality adapters) are in
:mod:`convzoo.models.unireplknet_modalities`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

from convzoo.errors import ConvzooError
from convzoo.layers.dilated_reparam import BRANCHES, DilatedReparamBlock
from convzoo.layers.fuse import fuse_conv_bn
from convzoo.layers.grn import GlobalResponseNorm
from convzoo.layers.head import Backbone, SelectAdaptivePool, apply_fc
from convzoo.models.convnext_dcls import check_norm_pool, norm_channels
from convzoo.registry import ModelCard, register_model

__all__ = ["KERNEL_PLANS", "PRETRAINED", "RECIPES_IN1K", "UNIREPLKNET_CFGS", "LayerNorm2d", "SEBlock",
           "UniRepLKNet", "UniRepLKNetBlock"]


# --- small layers --------------------------------------------------------------------------------------

class ToChannelsLast(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)


class ToChannelsFirst(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) tensor (ConvNeXt's "channels_first" LN), eps 1e-6."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class SEBlock(nn.Module):
    """Squeeze-and-Excitation (Hu et al. 2018): GAP -> 1x1 conv C -> C/4 -> ReLU -> 1x1 conv -> sigmoid -> scale."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.down = nn.Conv2d(channels, hidden, 1, bias=True)
        self.up = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W)
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        s = torch.sigmoid(self.up(F.relu(self.down(s))))  # (B, C/4, 1, 1) -> (B, C, 1, 1)
        return x * s


# --- the block (paper Sec. 3.3, Fig. 3) -------------------------------------------------------------------

class UniRepLKNetBlock(nn.Module):
    """DW conv -> BN -> SE -> Linear 4x -> GELU -> GRN -> Linear -> BN -> gamma -> DropPath -> + x.

    Args:
        dim: C.
        kernel_size: 3 or 5 (SmaK, plain depth-wise conv) or one of 7..17 (LarK, Dilated Reparam Block).
        drop_path: stochastic-depth probability of this block.
        layer_scale_init_value: initial gamma (None or 0: no layer scale).
        deploy: build the re-parameterised structure (conv with bias, no BNs, GRN without beta, Linear
            with bias, no gamma).
        ffn_factor: hidden width of the FFN = ffn_factor * C.
    Input and output: (B, C, H, W).
    """

    def __init__(self, dim: int, kernel_size: int, drop_path: float = 0.0,
                 layer_scale_init_value: float | None = 1e-6, deploy: bool = False, ffn_factor: int = 4):
        super().__init__()
        if kernel_size >= 7:
            self.dwconv = DilatedReparamBlock(dim, kernel_size, deploy=deploy)  # raises for K not in the table
        elif kernel_size in (3, 5):
            self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=deploy)
        else:
            raise ConvzooError(f"UniRepLKNet kernel sizes are 3, 5 (SmaK) or {sorted(k for k in BRANCHES if k >= 7)} "
                               f"(LarK), got {kernel_size!r}")
        self.dim, self.kernel_size = dim, kernel_size
        self.norm = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        self.se = SEBlock(dim, dim // 4)
        hidden = int(ffn_factor * dim)
        self.pwconv1 = nn.Sequential(ToChannelsLast(), nn.Linear(dim, hidden))
        self.act = nn.Sequential(nn.GELU(), GlobalResponseNorm(hidden, use_bias=not deploy))
        if deploy:
            self.pwconv2 = nn.Sequential(nn.Linear(hidden, dim), ToChannelsFirst())
        else:
            self.pwconv2 = nn.Sequential(nn.Linear(hidden, dim, bias=False), ToChannelsFirst(), nn.BatchNorm2d(dim))
        if not deploy and layer_scale_init_value:
            self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
        else:
            self.register_parameter("gamma", None)
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W)
        y = self.se(self.norm(self.dwconv(x)))  # (B, C, H, W)
        y = self.act(self.pwconv1(y))  # (B, H, W, 4C)
        y = self.pwconv2(y)  # (B, C, H, W)
        if self.gamma is not None:
            y = self.gamma.view(1, -1, 1, 1) * y
        return x + self.drop_path(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold every train-time-only part into the deploy structure; equal outputs in eval mode."""
        # 1. dilated branches -> one K x K conv with bias; BN after the DW conv -> into that conv
        if isinstance(self.dwconv, DilatedReparamBlock):
            self.dwconv.merge_dilated_branches()
        if isinstance(self.norm, nn.BatchNorm2d):
            conv = self.dwconv.lk_origin if isinstance(self.dwconv, DilatedReparamBlock) else self.dwconv
            fused = fuse_conv_bn(conv, self.norm)
            if isinstance(self.dwconv, DilatedReparamBlock):
                self.dwconv.lk_origin = fused
            else:
                self.dwconv = fused
            self.norm = nn.Identity()
        # 2. y = gamma * BN(W (h + beta)) = (gamma s W) h + gamma (bn_b + s (W beta - mean)), s = bn_w / std
        if len(self.pwconv2) == 3:
            linear, bn = self.pwconv2[0], self.pwconv2[2]
            beta = self.act[1].drop_bias()
            w = linear.weight  # (C, 4C)
            b = linear.bias if linear.bias is not None else torch.zeros_like(bn.running_mean)
            if beta is not None:
                b = b + w @ beta.reshape(-1)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C,)
            g = self.gamma if self.gamma is not None else torch.ones_like(scale)
            new = nn.Linear(linear.in_features, linear.out_features, bias=True).to(device=w.device, dtype=w.dtype)
            new.weight.copy_(w * (g * scale).view(-1, 1))
            new.bias.copy_(g * (bn.bias + (b - bn.running_mean) * scale))
            self.pwconv2 = nn.Sequential(new, self.pwconv2[1])
            self.gamma = None
        elif self.act[1].use_bias or self.gamma is not None:  # cannot happen for blocks built here
            raise ConvzooError("UniRepLKNetBlock.reparameterize: GRN bias or gamma without the BN to fold into")

    @property
    def deploy(self) -> bool:
        return len(self.pwconv2) == 2 and isinstance(self.norm, nn.Identity)


# --- the network (paper Sec. 3.4, official unireplknet.py) -------------------------------------------------

# kernel size of every block, per stage; 3 = SmaK, 13 = LarK (official default_*_kernel_sizes)
KERNEL_PLANS: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {
    (2, 2, 6, 2): ((3, 3), (13, 13), (13,) * 6, (13, 13)),
    (2, 2, 8, 2): ((3, 3), (13, 13), (13,) * 8, (13, 13)),
    (3, 3, 18, 3): ((3, 3, 3), (13, 13, 13), (13, 3) * 9, (13, 13, 13)),
    (3, 3, 27, 3): ((3, 3, 3), (13, 13, 13), (13, 3, 3) * 9, (13, 13, 13)),
}


class UniRepLKNet(Backbone):
    """UniRepLKNet: stem (stride 4), 3 downsamplers, 4 stages of UniRepLKNet blocks, GAP -> LN -> Linear.

    Args:
        in_chans: input channels (1 for the paper's audio spectrograms and time series).
        num_classes: classifier outputs; 0 gives the pooled, normalised embedding.
        depths, dims: blocks and widths per stage.
        kernel_sizes: per-block kernel sizes per stage; None takes :data:`KERNEL_PLANS` [depths].
        drop_path_rate: stochastic depth, linear from 0 to this over all blocks.
        layer_scale_init_value: initial gamma of every block (1e-6).
        head_init_scale: factor on the initial classifier weights and bias (1e-3 for the 22K->1K finetune).
        deploy: build the re-parameterised (inference) structure.
        features_only: the official downstream structure: LN ``norm0..norm3`` on the stage outputs, no
            head; ``forward`` returns the four maps.
        drop_rate: dropout before the classifier (official: none).
        global_pool: timm's pool before the head's LayerNorm ("avg"; "max", "avgmax", "" as well).
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 1000, depths: Sequence[int] = (3, 3, 27, 3),
                 dims: Sequence[int] = (96, 192, 384, 768), kernel_sizes: Sequence[Sequence[int]] | None = None,
                 drop_path_rate: float = 0.0, layer_scale_init_value: float | None = 1e-6,
                 head_init_scale: float = 1.0, deploy: bool = False, features_only: bool = False,
                 drop_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        depths, dims = tuple(int(d) for d in depths), tuple(int(c) for c in dims)
        if len(depths) != 4 or len(dims) != 4 or min(depths) < 1 or min(dims) < 4:
            raise ConvzooError(f"UniRepLKNet needs 4 positive depths and 4 widths >= 4, got {depths} and {dims}")
        if kernel_sizes is None:
            if depths not in KERNEL_PLANS:
                raise ConvzooError(f"no default kernel plan for depths {depths}; pass kernel_sizes "
                                   f"(one tuple per stage), e.g. {KERNEL_PLANS[(2, 2, 6, 2)]}")
            kernel_sizes = KERNEL_PLANS[depths]
        kernel_sizes = tuple(tuple(int(k) for k in ks) for ks in kernel_sizes)
        if len(kernel_sizes) != 4 or any(len(ks) != d for ks, d in zip(kernel_sizes, depths)):
            raise ConvzooError(f"kernel_sizes {kernel_sizes} do not match depths {depths}")
        if not 0.0 <= drop_path_rate < 1.0 or not 0.0 <= drop_rate < 1.0:
            raise ConvzooError(f"drop_rate and drop_path_rate must be in [0, 1), got {drop_rate!r}, {drop_path_rate!r}")
        self.depths, self.dims, self.kernel_sizes = depths, dims, kernel_sizes
        self.features_only = bool(features_only)

        # stem (B, in, H, W) -> (B, C0, H/4, W/4); downsamplers i: (B, C_{i-1}, h, w) -> (B, C_i, h/2, w/2)
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_chans, dims[0] // 2, 3, stride=2, padding=1), LayerNorm2d(dims[0] // 2), nn.GELU(),
            nn.Conv2d(dims[0] // 2, dims[0], 3, stride=2, padding=1), LayerNorm2d(dims[0]))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                nn.Conv2d(dims[i], dims[i + 1], 3, stride=2, padding=1), LayerNorm2d(dims[i + 1])))

        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.stages, cur, self.feature_info = nn.ModuleList(), 0, []
        for i in range(4):
            self.stages.append(nn.Sequential(*[
                UniRepLKNetBlock(dims[i], kernel_sizes[i][j], drop_path=rates[cur + j],
                                 layer_scale_init_value=layer_scale_init_value, deploy=deploy)
                for j in range(depths[i])]))
            cur += depths[i]
            self.feature_info.append({"num_chs": dims[i], "reduction": 4 * 2 ** i, "module": f"stages.{i}"})

        self.num_features = dims[-1]
        if self.features_only:
            self.num_classes = 0
            for i in range(4):
                self.add_module(f"norm{i}", LayerNorm2d(dims[i]))
            self.norm = self.head = None
        else:
            self.num_classes = num_classes
            self.global_pool = SelectAdaptivePool(check_norm_pool(global_pool))
            self.norm = nn.LayerNorm(dims[-1], eps=1e-6)  # on the pooled vector (B, C3)
            self.head_drop = nn.Dropout(drop_rate)
            self.head = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(_init_weights)
        if isinstance(self.head, nn.Linear):
            with torch.no_grad():
                self.head.weight.mul_(head_init_scale)
                self.head.bias.mul_(head_init_scale)

    # -- forward ------------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in, H, W) -> (B, C3, H/32, W/32)
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return x

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs at strides 4, 8, 16, 32 (through ``norm0..3`` when ``features_only``)."""
        out = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            x = stage(down(x))
            out.append(getattr(self, f"norm{i}")(x) if self.features_only else x)
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.features_only:
            raise ConvzooError("a features_only UniRepLKNet has no head; call features(x) or forward(x)")
        x = self.head_drop(norm_channels(self.norm, self.global_pool(x)))  # (B, C3, h, w) -> (B, C3)
        return x if pre_logits else apply_fc(self.head, x)

    def forward(self, x: torch.Tensor):
        return self.features(x) if self.features_only else self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if self.features_only:
            raise ConvzooError("a features_only UniRepLKNet has no classifier")
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool(check_norm_pool(global_pool))
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(_init_weights)

    # -- re-parameterisation --------------------------------------------------------------------------------
    def reparameterize(self) -> None:
        """Re-parameterise every block into the deploy structure (idempotent)."""
        for m in self.modules():
            if isinstance(m, UniRepLKNetBlock):
                m.reparameterize()

    reparameterize_unireplknet = reparameterize  # the official name

    @property
    def deploy(self) -> bool:
        return all(b.deploy for s in self.stages for b in s)


def _init_weights(m: nn.Module) -> None:
    # official: truncated normal (std 0.02, cut at +-2, absolute) for convs and linears, zero biases
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# --- variants (official unireplknet.py; fact sheet G1a "Papers 11 + 13" Sec. 3) ---------------------------

_AFP, _N, _T, _SBLXL = (2, 2, 6, 2), (2, 2, 8, 2), (3, 3, 18, 3), (3, 3, 27, 3)
# depths, dims, default drop_path_rate (Image/README.md: the IN-1K runs for A..S, IN-22K pretraining for B/L/XL)
UNIREPLKNET_CFGS: dict[str, dict] = {
    "a": {"depths": _AFP, "dims": (40, 80, 160, 320), "drop_path_rate": 0.0},
    "f": {"depths": _AFP, "dims": (48, 96, 192, 384), "drop_path_rate": 0.0},
    "p": {"depths": _AFP, "dims": (64, 128, 256, 512), "drop_path_rate": 0.1},
    "n": {"depths": _N, "dims": (80, 160, 320, 640), "drop_path_rate": 0.1},
    "t": {"depths": _T, "dims": (80, 160, 320, 640), "drop_path_rate": 0.2},
    "s": {"depths": _SBLXL, "dims": (96, 192, 384, 768), "drop_path_rate": 0.4},
    "b": {"depths": _SBLXL, "dims": (128, 256, 512, 1024), "drop_path_rate": 0.1},
    "l": {"depths": _SBLXL, "dims": (192, 384, 768, 1536), "drop_path_rate": 0.1},
    "xl": {"depths": _SBLXL, "dims": (256, 512, 1024, 2048), "drop_path_rate": 0.2},
}

# IN-1K recipe per variant (Image/README.md): drop_path, mixup, cutmix; AdamW lr 4e-3 @ 4096, 300 epochs
RECIPES_IN1K: dict[str, tuple[float, float, float]] = {
    "a": (0.0, 0.3, 0.3), "f": (0.0, 0.3, 0.3), "p": (0.1, 0.3, 0.3), "n": (0.1, 0.5, 0.5),
    "t": (0.2, 0.8, 1.0), "s": (0.4, 0.8, 1.0),
}

# released checkpoints (official huggingface_file_names, repo DingXiaoH/UniRepLKNet): tag -> (file, top-1)
PRETRAINED: dict[str, dict[str, tuple[str, float | None]]] = {
    "a": {"in_1k": ("unireplknet_a_in1k_224_acc77.03.pth", 77.03)},
    "f": {"in_1k": ("unireplknet_f_in1k_224_acc78.58.pth", 78.58)},
    "p": {"in_1k": ("unireplknet_p_in1k_224_acc80.23.pth", 80.23)},
    "n": {"in_1k": ("unireplknet_n_in1k_224_acc81.64.pth", 81.64)},
    "t": {"in_1k": ("unireplknet_t_in1k_224_acc83.21.pth", 83.21)},
    "s": {"in_1k": ("unireplknet_s_in1k_224_acc83.91.pth", 83.91),
          "in_22k": ("unireplknet_s_in22k_pretrain.pth", None),
          "in_22k_to_1k": ("unireplknet_s_in22k_to_in1k_384_acc86.44.pth", 86.44)},
    "b": {"in_22k": ("unireplknet_b_in22k_pretrain.pth", None),
          "in_22k_to_1k": ("unireplknet_b_in22k_to_in1k_384_acc87.40.pth", 87.40)},
    "l": {"in_22k": ("unireplknet_l_in22k_pretrain.pth", None),
          "in_22k_to_1k": ("unireplknet_l_in22k_to_in1k_384_acc87.88.pth", 87.88)},
    "xl": {"in_22k": ("unireplknet_xl_in22k_pretrain.pth", None),
           "in_22k_to_1k": ("unireplknet_xl_in22k_to_in1k_384_acc87.96.pth", 87.96)},
}

# train-time params, deploy params, README params / FLOPs (= deploy MACs) (fact sheet Sec. 3, official code)
_SHEET = {
    "a": (4_649_060, 4_437_300, "4.4M / 0.6G @224"),
    "f": (6_489_328, 6_235_216, "6.2M / 0.9G @224"),
    "p": (11_080_520, 10_741_704, "10.7M / 1.6G @224"),
    "n": (18_818_880, 18_318_560, "18.3M / 2.8G @224"),
    "t": (31_693_420, 31_037_980, "31M / 4.9G @224"),
    "s": (56_456_704, 55_645_984, "56M / 9.1G @224 (26.7G @384)"),
    "b": (99_089_416, 98_008_456, "98M / 47.2G @384"),
    "l": (220_076_056, 218_454_616, "218M / 105.4G @384"),
    "xl": (388_690_984, 386_529_064, "386M / 187G @384"),
}
_SMALL = ("a", "f", "p", "n", "t")  # ONNX export verified in the contract (cheap at 32 px)


def _card(v: str) -> ModelCard:
    train, dep, readme = _SHEET[v]
    # torch.compile: the contract compiles the smallest variant of the architecture (A); the others share its blocks
    caps = {"features", "reparam", "channels_last", "compile", "bf16"}
    caps |= {"onnx"} if v in _SMALL else set()
    tags = ", ".join(f"{t} ({f}{'' if a is None else f', {a:.2f} top-1'})" for t, (f, a) in PRETRAINED[v].items())
    return ModelCard(
        name=f"unireplknet_{v}", paper=11 if v in ("b", "l", "xl") else 13, family="unireplknet",
        task="classification", input_size=(384, 384) if v in ("b", "l", "xl") else (224, 224), test_size=(32, 32),
        params=train,
        params_source=(f"sum of numel of the TRAIN-TIME structure, 1000 classes, BN statistics excluded; official "
                       f"unireplknet.py measured (fact sheet G1a Papers 11+13 Sec. 3). The README's params are the "
                       f"deploy (re-parameterised) structure: {dep:,} (tested)"),
        macs=None,
        notes=(f"README params / 'FLOPs' = {readme}: deploy-structure params and MACs (multiply-adds), proven on "
               f"deploy=True in tests/models/test_unireplknet.py; the train-time MACs are not reported. "
               f"Default drop_path_rate {UNIREPLKNET_CFGS[v]['drop_path_rate']} (official Image/README.md). "
               f"Released weights (not bundled): {tags}."),
        source="paper Sec. 3 (Fig. 2-3) and Table 1; official AILab-CVC/UniRepLKNet unireplknet.py configs",
        capabilities=frozenset(caps),
        recipes=("unireplknet_digits", "unireplknet_a_imagenet_paper") if v == "a" else (),
        # official datasets.py build_transform (eval): bicubic, ImageNet mean/std (main.py default); below 384 px
        # Resize(size / (224 / 256)) + CenterCrop, the 384-px models warped to the size (crop 1.0)
        interpolation="bicubic", crop_pct=1.0 if v in ("b", "l", "xl") else 224 / 256,
        crop_mode="squash" if v in ("b", "l", "xl") else "center",
    )


def _unireplknet(v: str, **kwargs) -> UniRepLKNet:
    return UniRepLKNet(**{**UNIREPLKNET_CFGS[v], **kwargs})


@register_model(_card("a"))
def unireplknet_a(**kwargs) -> UniRepLKNet:
    return _unireplknet("a", **kwargs)


@register_model(_card("f"))
def unireplknet_f(**kwargs) -> UniRepLKNet:
    return _unireplknet("f", **kwargs)


@register_model(_card("p"))
def unireplknet_p(**kwargs) -> UniRepLKNet:
    return _unireplknet("p", **kwargs)


@register_model(_card("n"))
def unireplknet_n(**kwargs) -> UniRepLKNet:
    return _unireplknet("n", **kwargs)


@register_model(_card("t"))
def unireplknet_t(**kwargs) -> UniRepLKNet:
    return _unireplknet("t", **kwargs)


@register_model(_card("s"))
def unireplknet_s(**kwargs) -> UniRepLKNet:
    return _unireplknet("s", **kwargs)


@register_model(_card("b"))
def unireplknet_b(**kwargs) -> UniRepLKNet:
    return _unireplknet("b", **kwargs)


@register_model(_card("l"))
def unireplknet_l(**kwargs) -> UniRepLKNet:
    return _unireplknet("l", **kwargs)


@register_model(_card("xl"))
def unireplknet_xl(**kwargs) -> UniRepLKNet:
    return _unireplknet("xl", **kwargs)
