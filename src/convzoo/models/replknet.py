"""RepLKNet: Scaling Up Your Kernels to 31x31: Revisiting Large Kernel Design in CNNs
(Ding, Zhang, Han, Ding; CVPR 2022, arXiv 2203.06717).

The preliminary version named by seed paper 11 ("Scaling Up Your Kernels: Large Kernel Design in
ConvNets towards Universal Representations", TPAMI 2025, arXiv 2410.08049; its UniRepLKNet models are
in :mod:`convzoo.models.unireplknet`). Official code: DingXiaoH/RepLKNet-pytorch, ``replknet.py`` and
``README.md`` (read for facts: configurations, key names, reported numbers).

Implemented here:
- :class:`ReparamLargeKernelConv` (paper Sec. 3, guideline 3 "small kernels help"): a K x K depth-wise
  conv + BN in parallel with a small (5 x 5) depth-wise conv + BN, summed. ``reparameterize()`` folds
  each BN into its conv and adds the small kernel, zero-padded to K x K, to the centre of the large one:
  one K x K conv with bias (``lkb_reparam``), equal outputs in eval mode.
- :class:`RepLKBlock` (Fig. 4): pre-BN -> 1x1 conv-BN-ReLU -> ReparamLargeKernelConv -> ReLU -> 1x1
  conv-BN -> DropPath -> + input. :class:`ConvFFN`: pre-BN -> 1x1 conv-BN (C -> 4C) -> GELU -> 1x1
  conv-BN -> DropPath -> + input. A stage is ``layers[i]`` (RepLKBlock, ConvFFN) pairs.
- :class:`RepLKNet`: stem = 3x3/2 conv (in -> C0), 3x3 depth-wise conv, 1x1 conv, 3x3/2 depth-wise conv
  (each conv-BN-ReLU, stride 4 in all); four stages at strides 4/8/16/32; three transitions = 1x1
  conv-BN-ReLU (C_i -> C_i+1) + 3x3/2 depth-wise conv-BN-ReLU; head = BN -> global average pool ->
  Linear. ``features(x)`` returns the four stage outputs (through ``stages.i.norm``, a BN with
  ``norm_intermediate_features=True`` as the official RepLKNet-XL downstream models, else identity).
- Variants (:data:`REPLKNET_CFGS`, official ``create_RepLKNet31B/31L/XL``): 31B and 31L (kernels
  31-29-27-13, depths 2-2-18-2, widths 128.. / 192.., small kernel 5) and XL (kernels 27-27-27-13,
  widths 256..2048, depth-wise width 1.5 x C, no small kernel).

State-dict keys are the official ones (``stem.i.conv/bn``, ``stages.i.blocks.j.prelkb_bn``, ``.pw1``,
``.large_kernel.lkb_origin``, ``.large_kernel.small_conv``, ``.pw2``, ``.preffn_bn``,
``transitions.i.0/1``, ``norm``, ``head``; ``large_kernel.lkb_reparam`` after re-parameterisation), so
the released train-time checkpoints load with ``load_state_dict`` and the re-parameterised ones into
``deploy=True`` (the official ``small_kernel_merged=True``).

``deploy=True`` builds what ``convzoo.deploy`` leaves (merged large kernels AND every conv-BN pair folded);
the official merged checkpoints, whose conv-BN pairs are unfolded, still load into it (folded on load).
``drop_rate`` adds dropout before the classifier (official: none).

Departures from the official code: BatchNorm2d instead of the SyncBatchNorm the official constructor
switches on (same parameters, buffers and eval outputs); no iGEMM CUDA large-kernel convolution (plain
``nn.Conv2d``, same function); the downstream ``out_indices`` mode is replaced by ``features(x)``; the
classifier always exists (``num_classes=0`` gives the pooled embedding, timm-style); odd kernel sizes are
required (the official code only asserts small <= large). Initialisation is PyTorch's default, as in
the official code (it defines none). Gradient checkpointing (``use_checkpoint``) is kept; it changes
neither parameters nor results.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.ops import StochasticDepth

from convzoo.errors import ConvzooError
from convzoo.layers.fuse import fuse_conv_bn
from convzoo.layers.head import Backbone, SelectAdaptivePool, apply_fc, create_classifier, make_fc
from convzoo.registry import ModelCard, register_model

__all__ = ["REPLKNET_CFGS", "ConvFFN", "RepLKBlock", "RepLKNet", "RepLKNetStage", "ReparamLargeKernelConv"]


# --- conv-BN(-ReLU) units (official keys: conv, bn, nonlinear) -----------------------------------------

class ConvBN(nn.Sequential):
    """k x k conv (no bias) -> BN; ``convzoo.deploy`` folds the pair. ``deploy=True`` builds the folded
    form (conv with bias, ``bn`` Identity), which also loads the official re-parameterised checkpoints
    (``small_kernel_merged``: these pairs unfolded): their ``conv.weight`` + ``bn.*`` are folded on load."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 deploy: bool = False):
        super().__init__(OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, groups=groups, bias=deploy),
            bn=nn.Identity() if deploy else nn.BatchNorm2d(cout),
        ))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        bn = {k: f"{prefix}bn.{k}" for k in ("weight", "bias", "running_mean", "running_var")}
        if isinstance(self.bn, nn.Identity) and all(v in state_dict for v in bn.values()) \
                and f"{prefix}conv.bias" not in state_dict:
            # an unfolded pair into the folded structure: W' = W s, b' = beta - mean s, s = gamma / sqrt(var + eps)
            g, beta, mean, var = (state_dict.pop(bn[k]) for k in ("weight", "bias", "running_mean", "running_var"))
            state_dict.pop(f"{prefix}bn.num_batches_tracked", None)
            s = g / torch.sqrt(var + 1e-5)  # nn.BatchNorm2d's eps, as the official BN
            w = state_dict[f"{prefix}conv.weight"]
            state_dict[f"{prefix}conv.weight"] = w * s.reshape(-1, 1, 1, 1).to(w.dtype)
            state_dict[f"{prefix}conv.bias"] = (beta - mean * s).to(w.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ConvBNReLU(ConvBN):
    """k x k conv (no bias) -> BN -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 deploy: bool = False):
        super().__init__(cin, cout, kernel_size, stride, groups, deploy)
        self.add_module("nonlinear", nn.ReLU())


def _drop_path(p: float) -> nn.Module:
    return StochasticDepth(p, "row") if p > 0 else nn.Identity()


# --- the re-parameterisable large-kernel conv (paper Sec. 3, guideline 3) ---------------------------------

class ReparamLargeKernelConv(nn.Module):
    """K x K conv + BN in parallel with a k x k conv + BN (k <= K, both odd; depth-wise by default).

    Args:
        in_channels, out_channels: widths (equal for the depth-wise use in RepLKNet).
        kernel_size: K, the large kernel.
        small_kernel: k, or None for no parallel branch (RepLKNet-XL).
        stride: of both branches (1 in RepLKNet).
        groups: conv groups; None = ``in_channels`` (depth-wise).
        deploy: build the merged structure directly (one K x K conv with bias, key ``lkb_reparam``).
    Input (B, in_channels, H, W) -> output (B, out_channels, H / stride, W / stride).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, small_kernel: int | None = 5,
                 stride: int = 1, groups: int | None = None, deploy: bool = False):
        super().__init__()
        groups = in_channels if groups is None else groups
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConvzooError(f"ReparamLargeKernelConv needs an odd kernel_size, got {kernel_size!r}")
        if small_kernel is not None and (small_kernel < 1 or small_kernel % 2 == 0 or small_kernel > kernel_size):
            raise ConvzooError(f"small_kernel must be odd and <= kernel_size {kernel_size}, got {small_kernel!r}")
        self.kernel_size, self.small_kernel = kernel_size, small_kernel
        if deploy:  # (official ``small_kernel_merged``)
            self.lkb_reparam = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                                         groups=groups, bias=True)
        else:
            self.lkb_origin = ConvBN(in_channels, out_channels, kernel_size, stride, groups)
            if small_kernel is not None:
                self.small_conv = ConvBN(in_channels, out_channels, small_kernel, stride, groups)

    @property
    def merged(self) -> bool:
        return hasattr(self, "lkb_reparam")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, H, W) -> (B, C_out, H', W'); both branches use "same" padding (K // 2, k // 2)
        if self.merged:
            return self.lkb_reparam(x)
        out = self.lkb_origin(x)
        if hasattr(self, "small_conv"):
            out = out + self.small_conv(x)
        return out

    @torch.no_grad()
    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(K x K kernel, bias) of the single conv equal to the two branches in eval mode.

        W = W_K * s_K + pad(W_k * s_k), b = b_K + b_k, with s = gamma / sqrt(var + eps) and
        b = beta - mean * s per branch; pad puts (K - k) / 2 zeros on every side of the small kernel.
        """
        if self.merged:
            return self.lkb_reparam.weight.clone(), self.lkb_reparam.bias.clone()
        large = fuse_conv_bn(self.lkb_origin.conv, self.lkb_origin.bn)
        weight, bias = large.weight.clone(), large.bias.clone()
        if hasattr(self, "small_conv"):
            small = fuse_conv_bn(self.small_conv.conv, self.small_conv.bn)
            weight += F.pad(small.weight, [(self.kernel_size - self.small_kernel) // 2] * 4)
            bias += small.bias
        return weight, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the two conv-BN branches by ``lkb_reparam`` (idempotent)."""
        if self.merged:
            return
        weight, bias = self.get_equivalent_kernel_bias()
        conv = self.lkb_origin.conv
        merged = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                           conv.dilation, conv.groups, bias=True)
        merged = merged.to(device=weight.device, dtype=weight.dtype)
        merged.weight.copy_(weight)
        merged.bias.copy_(bias)
        self.lkb_reparam = merged
        del self.lkb_origin
        if hasattr(self, "small_conv"):
            del self.small_conv

    merge_kernel = reparameterize  # the official name


# --- the two blocks of a stage (paper Fig. 4) ----------------------------------------------------------------

class RepLKBlock(nn.Module):
    """BN -> 1x1 conv-BN-ReLU -> ReparamLargeKernelConv (depth-wise) -> ReLU -> 1x1 conv-BN -> DropPath -> + x.

    Args:
        in_channels: C; dw_channels: width of the depth-wise part (C, or 1.5 C in RepLKNet-XL).
        kernel_size, small_kernel: of the :class:`ReparamLargeKernelConv`.
        drop_path: stochastic-depth probability.
    Input and output: (B, C, H, W).
    """

    def __init__(self, in_channels: int, dw_channels: int, kernel_size: int, small_kernel: int | None,
                 drop_path: float = 0.0, deploy: bool = False):
        super().__init__()
        self.prelkb_bn = nn.BatchNorm2d(in_channels)
        self.pw1 = ConvBNReLU(in_channels, dw_channels, 1, deploy=deploy)
        self.large_kernel = ReparamLargeKernelConv(dw_channels, dw_channels, kernel_size, small_kernel,
                                                   deploy=deploy)
        self.lk_nonlinear = nn.ReLU()
        self.pw2 = ConvBN(dw_channels, in_channels, 1, deploy=deploy)
        self.drop_path = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw1(self.prelkb_bn(x))  # (B, C, H, W) -> (B, C_dw, H, W)
        y = self.lk_nonlinear(self.large_kernel(y))  # (B, C_dw, H, W), K x K depth-wise
        y = self.pw2(y)  # (B, C, H, W)
        return x + self.drop_path(y)


class ConvFFN(nn.Module):
    """BN -> 1x1 conv-BN (C -> hidden) -> GELU -> 1x1 conv-BN (hidden -> C) -> DropPath -> + x."""

    def __init__(self, in_channels: int, internal_channels: int, drop_path: float = 0.0, deploy: bool = False):
        super().__init__()
        self.preffn_bn = nn.BatchNorm2d(in_channels)
        self.pw1 = ConvBN(in_channels, internal_channels, 1, deploy=deploy)
        self.nonlinear = nn.GELU()
        self.pw2 = ConvBN(internal_channels, in_channels, 1, deploy=deploy)
        self.drop_path = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.nonlinear(self.pw1(self.preffn_bn(x)))  # (B, hidden, H, W)
        return x + self.drop_path(self.pw2(y))  # (B, C, H, W)


class RepLKNetStage(nn.Module):
    """``num_blocks`` (RepLKBlock, ConvFFN) pairs sharing one kernel size; ``norm`` on the stage output
    for downstream heads (BN with ``norm_intermediate_features``, else identity; not used by the classifier)."""

    def __init__(self, channels: int, num_blocks: int, kernel_size: int, small_kernel: int | None,
                 drop_path: Sequence[float], dw_ratio: float = 1.0, ffn_ratio: float = 4.0,
                 use_checkpoint: bool = False, deploy: bool = False, norm_intermediate_features: bool = False):
        super().__init__()
        self.use_checkpoint = use_checkpoint
        blocks = []
        for i in range(num_blocks):  # both blocks of a pair get the same drop-path rate (official)
            blocks.append(RepLKBlock(channels, int(channels * dw_ratio), kernel_size, small_kernel,
                                     drop_path[i], deploy))
            blocks.append(ConvFFN(channels, int(channels * ffn_ratio), drop_path[i], deploy))
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.BatchNorm2d(channels) if norm_intermediate_features else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, C, H, W); ``norm`` is applied by RepLKNet.features only
        for block in self.blocks:
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


# --- the network (paper Sec. 4.1, Fig. 4; official replknet.py) ------------------------------------------

class RepLKNet(Backbone):
    """RepLKNet: stem (stride 4), 4 stages of RepLK/ConvFFN pairs with transitions, BN -> GAP -> Linear.

    Args:
        large_kernel_sizes: kernel size K of each stage (31, 29, 27, 13 for 31B/31L).
        layers: (RepLKBlock, ConvFFN) pairs per stage.
        channels: widths C0..C3.
        small_kernel: parallel small kernel of every ReparamLargeKernelConv (5), or None.
        dw_ratio: depth-wise width = int(C * dw_ratio) (1.5 in XL).
        ffn_ratio: ConvFFN hidden width = int(C * ffn_ratio) (4).
        drop_path_rate: stochastic depth, linear from 0 over the ``sum(layers)`` pairs.
        in_chans, num_classes: input channels; classes (0: pooled embedding after the final BN).
        use_checkpoint: gradient checkpointing of every block while training (saves memory).
        deploy: build the structure ``convzoo.deploy`` leaves: merged large-kernel convs (official
            ``small_kernel_merged``) and every conv-BN pair folded; the official merged checkpoints
            (pairs unfolded) load too, folded on load.
        norm_intermediate_features: a BN on each stage output in ``features`` (official XL downstream).
        drop_rate: dropout before the classifier (official: none).
        global_pool: timm's pool after the final BN ("avg"; "max", "avgmax", "catavgmax", "").
    """

    def __init__(self, large_kernel_sizes: Sequence[int] = (31, 29, 27, 13), layers: Sequence[int] = (2, 2, 18, 2),
                 channels: Sequence[int] = (128, 256, 512, 1024), small_kernel: int | None = 5,
                 dw_ratio: float = 1.0, ffn_ratio: float = 4.0, drop_path_rate: float = 0.0, in_chans: int = 3,
                 num_classes: int = 1000, use_checkpoint: bool = False, deploy: bool = False,
                 norm_intermediate_features: bool = False, drop_rate: float = 0.0, global_pool: str = "avg"):
        super().__init__()
        kernels, layers, channels = (tuple(int(v) for v in s) for s in (large_kernel_sizes, layers, channels))
        n = len(layers)
        if n < 1 or len(kernels) != n or len(channels) != n or min(layers) < 1 or min(channels) < 1:
            raise ConvzooError(f"RepLKNet needs equally many positive large_kernel_sizes, layers and channels, "
                               f"got {kernels}, {layers}, {channels}")
        if dw_ratio <= 0 or ffn_ratio <= 0:
            raise ConvzooError(f"dw_ratio and ffn_ratio must be positive, got {dw_ratio!r}, {ffn_ratio!r}")
        if not 0.0 <= drop_path_rate < 1.0 or not 0.0 <= drop_rate < 1.0:
            raise ConvzooError(f"drop_rate and drop_path_rate must be in [0, 1), got {drop_rate!r}, {drop_path_rate!r}")
        self.large_kernel_sizes, self.layers, self.channels = kernels, layers, channels
        self.num_classes, c0 = num_classes, channels[0]

        # stem: (B, in, H, W) -> (B, C0, H/2, W/2) -> DW 3x3 -> 1x1 -> DW 3x3/2 -> (B, C0, H/4, W/4)
        self.stem = nn.ModuleList([ConvBNReLU(in_chans, c0, 3, 2, deploy=deploy),
                                   ConvBNReLU(c0, c0, 3, 1, groups=c0, deploy=deploy),
                                   ConvBNReLU(c0, c0, 1, deploy=deploy),
                                   ConvBNReLU(c0, c0, 3, 2, groups=c0, deploy=deploy)])
        rates = torch.linspace(0, drop_path_rate, sum(layers), device="cpu").tolist()
        self.stages, self.transitions, self.feature_info = nn.ModuleList(), nn.ModuleList(), []
        for i in range(n):
            lo = sum(layers[:i])
            self.stages.append(RepLKNetStage(channels[i], layers[i], kernels[i], small_kernel,
                                             rates[lo:lo + layers[i]], dw_ratio, ffn_ratio, use_checkpoint,
                                             deploy, norm_intermediate_features))
            self.feature_info.append({"num_chs": channels[i], "reduction": 4 * 2 ** i, "module": f"stages.{i}"})
            if i < n - 1:  # (B, C_i, h, w) -> (B, C_i+1, h/2, w/2)
                self.transitions.append(nn.Sequential(ConvBNReLU(channels[i], channels[i + 1], 1, deploy=deploy),
                                                      ConvBNReLU(channels[i + 1], channels[i + 1], 3, 2,
                                                                 groups=channels[i + 1], deploy=deploy)))
        self.num_features = channels[-1]
        self.norm = nn.BatchNorm2d(channels[-1])
        self.head_drop = nn.Dropout(drop_rate)
        self.global_pool, self.head = create_classifier(channels[-1], num_classes, global_pool)

    # -- forward ------------------------------------------------------------------------------------------
    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.stem:
            x = layer(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in, H, W) -> (B, C_last, H/32, W/32) for four stages
        x = self._stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.transitions):
                x = self.transitions[i](x)
        return x

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs (through ``stages.i.norm``) at strides 4, 8, 16, 32."""
        x, out = self._stem(x), []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            out.append(stage.norm(x))
            if i < len(self.transitions):
                x = self.transitions[i](x)
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(self.norm(x)))  # (B, C, h, w) -> BN -> (B, C)
        return x if pre_logits else apply_fc(self.head, x)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool(global_pool)
        self.head = make_fc(self.num_features * self.global_pool.feat_mult(), num_classes)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's switch for the official ``use_checkpoint``: every block recomputed in the backward pass."""
        for stage in self.stages:
            stage.use_checkpoint = enable
        self.grad_checkpointing = enable

    # -- re-parameterisation --------------------------------------------------------------------------------
    def reparameterize(self) -> None:
        """Merge every ReparamLargeKernelConv (idempotent); ``convzoo.deploy`` also folds the conv-BN pairs."""
        for m in self.modules():
            if isinstance(m, ReparamLargeKernelConv):
                m.reparameterize()

    structural_reparam = reparameterize  # the official name


# --- variants (official create_RepLKNet31B / 31L / XL; README for the reported numbers) ---------------------

REPLKNET_CFGS: dict[str, dict] = {
    "31b": {"large_kernel_sizes": (31, 29, 27, 13), "layers": (2, 2, 18, 2), "channels": (128, 256, 512, 1024),
            "small_kernel": 5, "dw_ratio": 1.0, "ffn_ratio": 4.0, "drop_path_rate": 0.3},
    "31l": {"large_kernel_sizes": (31, 29, 27, 13), "layers": (2, 2, 18, 2), "channels": (192, 384, 768, 1536),
            "small_kernel": 5, "dw_ratio": 1.0, "ffn_ratio": 4.0, "drop_path_rate": 0.3},
    "xl": {"large_kernel_sizes": (27, 27, 27, 13), "layers": (2, 2, 18, 2), "channels": (256, 512, 1024, 2048),
           "small_kernel": None, "dw_ratio": 1.5, "ffn_ratio": 4.0, "drop_path_rate": 0.3},
}

# README "ImageNet-1K Models" / "ImageNet-22K Models" / "MegData-73M Models" tables: #params, FLOPs (size), top-1
README: dict[str, dict] = {
    "31b": {"params": "79M", "flops": {224: 15.3e9, 384: 45.1e9}, "top1": "83.5 (1K, 224), 84.8 (1K, 384), "
            "85.2 (22K->1K, 224), 86.0 (22K->1K, 384)"},
    "31l": {"params": "172M", "flops": {384: 96.0e9}, "top1": "86.6 (22K->1K, 384)"},
    "xl": {"params": "335M", "flops": {320: 128.7e9}, "top1": "87.8 (MegData-73M->1K, 320; inception mean/std 0.5)"},
}
# exact parameter counts (train-time structure, what create_model builds; re-parameterised structure): the
# closed-form sums of the official layer list written in tests/models/test_replknet.py, restated for the cards
COUNTS: dict[str, tuple[int, int]] = {
    "31b": (79_864_168, 79_527_272),
    "31l": (172_671_016, 172_165_672),
    "xl": (335_435_752, 335_399_656),
}
_INPUT = {"31b": 224, "31l": 384, "xl": 320}


def _card(v: str) -> ModelCard:
    train, dep = COUNTS[v]
    info, size = README[v], _INPUT[v]
    flops = ", ".join(f"{f / 1e9:.1f}G @{s}" for s, f in info["flops"].items())
    # compile: the contract compiles the smallest variant of the family (31B, ~35 s here); 31L/XL share its blocks.
    # onnx: exported and checked with onnxruntime for 31B only (31L/XL are above the contract's size limit)
    caps = {"features", "reparam", "channels_last", "compile", "bf16"} | ({"onnx"} if v == "31b" else set())
    return ModelCard(
        name=f"replknet_{v}", paper=11, family="replknet", task="classification", input_size=(size, size),
        test_size=(32, 32), params=train,
        params_source=(f"closed form, tests/models/test_replknet.py::test_params_match_official_layer_list: the "
                       f"TRAIN-TIME structure (5x5 branches and BNs) summed layer by layer from the official "
                       f"create_RepLKNet{v.upper()} configuration, 1000 classes, BN statistics excluded; "
                       f"re-parameterised: {dep:,}. The README's '{info['params']}' matches either structure only "
                       f"as a truncation to whole millions"),
        macs=None,
        notes=(f"README FLOPs {flops} are multiply-adds of the RE-PARAMETERISED structure (within 0.35 %; the "
               f"train-time structure is 0.86 % above for 31B @224), proven on deploy=True in the tests; card "
               f"macs None because the registered model is the train-time structure. IN-1K top-1 (README): "
               f"{info['top1']}. Default drop_path_rate 0.3 as the official builder (README 31B IN-1K run: 0.5). "
               f"Weights (Google Drive / Baidu) are not bundled; train-time checkpoints load with load_state_dict."),
        source="paper Sec. 4.1 (Fig. 4) and Table 5; official DingXiaoH/RepLKNet-pytorch replknet.py + README.md",
        capabilities=frozenset(caps),
        recipes=("replknet_31b_imagenet_paper",) if v == "31b" else (),
        # official datasets.py build_transform (eval): bicubic; below 384 px Resize(size / (224 / 256)) +
        # CenterCrop, at 384 px and above a warp to the size (crop 1.0); README "Evaluation": XL used the
        # inception mean/std (0.5, 0.5, 0.5), 31B/L ImageNet's
        interpolation="bicubic", crop_pct=1.0 if size >= 384 else 224 / 256,
        crop_mode="squash" if size >= 384 else "center",
        **({"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)} if v == "xl" else {}),
    )


def _replknet(v: str, **kwargs) -> RepLKNet:
    return RepLKNet(**{**REPLKNET_CFGS[v], **kwargs})


@register_model(_card("31b"))
def replknet_31b(**kwargs) -> RepLKNet:
    return _replknet("31b", **kwargs)


@register_model(_card("31l"))
def replknet_31l(**kwargs) -> RepLKNet:
    return _replknet("31l", **kwargs)


@register_model(_card("xl"))
def replknet_xl(**kwargs) -> RepLKNet:
    return _replknet("xl", **kwargs)
