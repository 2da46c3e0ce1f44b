"""LSNet: See Large, Focus Small.

Seed paper 18; Wang, Chen, Lin, Han, Ding; CVPR 2025; arXiv 2503.23135. Official code:
jameslahm/lsnet (``model/lsnet.py``, ``model/ska.py``), on the EfficientViT / DeiT code base.

Implemented here (paper Sec. 3-4, official ``lsnet.py``):
- The LS convolution (:mod:`convzoo.layers.lsconv`): LKP large-kernel perception predicting per-pixel
  3x3 kernels, SKA small-kernel aggregation (pure PyTorch), ``LSConv = BN(SKA(x, LKP(x))) + x``.
- :class:`Block`: the mixer alternates with the block index d inside a stage: even d ->
  :class:`RepVGGDW` (3x3 DW Conv-BN + 1x1 DW Conv-BN + identity) followed by Squeeze-Excitation
  (rd_ratio 0.25); odd d -> LSConv in stages 1-3, or residual multi-head self-attention with learned
  relative position biases (:class:`Attention`, LeViT / EfficientViT style) in stage 4. Then a
  residual FFN (1x1 Conv-BN C -> 2C, ReLU, 1x1 Conv-BN 2C -> C whose BN weight starts at 0).
- :class:`LSNet`: stem of three 3x3 stride-2 Conv-BN (3 -> C0/4 -> C0/2 -> C0) with ReLUs between
  (stride 8); stages 2-4 open with a 3x3 DW stride-2 Conv-BN and a 1x1 Conv-BN (C_{i-1} -> C_i), so
  stages run at strides 8, 16, 32, 64; head = global average pool -> BN1d -> Linear, plus an
  optional DeiT-style distillation head of the same form.
- Variants (``LSNET_CFGS``): LSNet-T/S/B and ``*_distill`` (with the distillation head).
- Deployment: ``convzoo.deploy(model)`` folds every Conv-BN pair, the head's BN1d into its Linear
  (:meth:`BNLinear.reparameterize`) and each RepVGGDW into one 3x3 DW conv
  (:meth:`RepVGGDW.reparameterize`), as the official ``replace_batchnorm``. The BN after SKA stays
  (SKA's kernels are shared across channels, so a per-channel scale cannot be folded into them).

Departures from the official code, and why:
- SKA is a pure-PyTorch shifted-sum implementation instead of the Triton kernel, so the model runs
  on CPU, under ``torch.compile`` and exports to ONNX (official code needs a CUDA GPU with Triton).
- ``forward`` returns ONE logits tensor in train and eval mode: with the distillation head it is the
  mean of the two heads (the official eval output; official train mode returns the pair). The pair
  is available from ``forward(x, return_both=True)`` / :meth:`LSNet.forward_distill`, which the
  ``distillation`` task (:mod:`convzoo.tasks.distillation`) uses.
- Attention biases: the official module indexes a table built for the 224-px stage-4 resolution and
  fails at any other input size, and caches the gathered biases on ``eval()`` (stale if weights are
  loaded afterwards). Here the table and its index buffer are the official ones at the construction
  size ``img_size``; at another size the offsets (|dy|, |dx|) index the same table, clamped to its
  extent (exact for smaller maps, nearest offset for larger). Nothing is cached.
- The construction resolution follows the real stem arithmetic ((r - 1) // 2 + 1 three times) rather
  than ``img_size // 8``; both give 28 at 224.
- ``drop_path_rate`` (default 0, as the official model) drives the official ``Residual``'s per-sample
  drop on the FFN and attention branches, linear from 0 over all blocks; ``drop_rate`` adds dropout
  inside the head (official: none). ``deploy=True`` builds the folded structure directly.

State-dict keys equal the official ones (``patch_embed.0.c``, ``blocks2.0.c`` / ``blocks2.1.c`` for the
downsampling, ``blocks2.2.mixer.conv.c`` (RepVGGDW), ``blocks2.3.mixer.lkp.cv1.c`` (LSConv),
``blocks4.3.mixer.m.attention_biases``, ``ffn.m.pw1.c``, ``se.fc1``, ``head.bn``, ``head.l``,
``head_dist.l``), so the released checkpoints load with ``load_state_dict``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

from convzoo.errors import ConvzooError
from convzoo.layers.fuse import fuse_conv_bn
from convzoo.layers.head import Backbone, SelectAdaptivePool
from convzoo.layers.lsconv import Conv2dBN, LSConv
from convzoo.models.convnext_dcls import check_norm_pool
from convzoo.registry import ModelCard, register_model

__all__ = [
    "FFN",
    "LSNET_CFGS",
    "Attention",
    "BNLinear",
    "Block",
    "LSNet",
    "RepVGGDW",
    "SqueezeExcite",
    "relative_position_index",
]


# --- small blocks ----------------------------------------------------------------------------------

def _make_divisible(v: float, divisor: int = 8) -> int:
    """timm's ``make_divisible`` (round to nearest multiple of ``divisor``, at least ``divisor``)."""
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class SqueezeExcite(nn.Module):
    """SE as timm's ``SqueezeExcite(C, 0.25)`` used by the official code: GAP -> 1x1 (bias) -> ReLU ->
    1x1 (bias) -> sigmoid -> rescale; reduced width = make_divisible(C * rd_ratio, 8)."""

    def __init__(self, channels: int, rd_ratio: float = 0.25):
        super().__init__()
        rd = _make_divisible(channels * rd_ratio)
        self.fc1 = nn.Conv2d(channels, rd, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(rd, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, C, H, W)
        s = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))  # (B, C, 1, 1)
        return x * s.sigmoid()


class RepVGGDW(nn.Module):
    """3x3 DW Conv-BN + 1x1 DW Conv-BN + identity; ``reparameterize`` makes it one 3x3 DW conv
    (``deploy=True`` builds that conv directly: key ``conv``, ``conv1`` None)."""

    def __init__(self, dim: int, deploy: bool = False):
        super().__init__()
        if deploy:
            self.conv, self.conv1 = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim), None
        else:
            self.conv = Conv2dBN(dim, dim, 3, 1, 1, groups=dim)
            self.conv1 = Conv2dBN(dim, dim, 1, 1, 0, groups=dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv1 is None:  # deployed: one conv
            return self.conv(x)
        return self.conv(x) + self.conv1(x) + x

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.conv1 is None:
            return
        k3 = fuse_conv_bn(self.conv.c, self.conv.bn)  # (C, 1, 3, 3) + bias
        k1 = fuse_conv_bn(self.conv1.c, self.conv1.bn)  # (C, 1, 1, 1) + bias
        identity = torch.ones_like(k1.weight)  # the skip is a 1x1 DW kernel of ones
        k3.weight.add_(F.pad(k1.weight + identity, [1, 1, 1, 1]))  # centre tap of the 3x3 kernel
        k3.bias.add_(k1.bias)
        self.conv, self.conv1 = k3, None


class BNLinear(nn.Sequential):
    """BN1d -> dropout -> Linear (official ``BN_Linear``: keys ``bn``, ``l``; trunc-normal(0.02) weight, zero
    bias). The dropout (timm's ``drop_rate``, official: none) sits where timm's LeViT ``NormLinear`` has it;
    ``deploy=True`` builds the BN folded away (``bn`` Identity)."""

    def __init__(self, cin: int, cout: int, std: float = 0.02, drop: float = 0.0, deploy: bool = False):
        super().__init__(OrderedDict(bn=nn.Identity() if deploy else nn.BatchNorm1d(cin), drop=nn.Dropout(drop),
                                     l=nn.Linear(cin, cout)))
        nn.init.trunc_normal_(self.l.weight, std=std)
        nn.init.zeros_(self.l.bias)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the BN into the Linear: W' = W diag(s), b' = b + W (beta - mean s), s = gamma / sqrt(var + eps)."""
        bn, lin = self.bn, self.l
        if not isinstance(bn, nn.BatchNorm1d):
            return
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * s
        fused = nn.Linear(lin.in_features, lin.out_features, device=lin.weight.device)
        fused.weight.copy_(lin.weight * s[None, :])
        fused.bias.copy_(lin.bias + lin.weight @ shift)
        self.bn, self.l = nn.Identity(), fused


class Residual(nn.Module):
    """x + DropPath(m(x)) (official ``Residual``; key ``m``). The official ``drop`` is the same per-sample
    stochastic depth (kept samples scaled by 1 / (1 - p)); the official model leaves it at 0."""

    def __init__(self, m: nn.Module, drop_path: float = 0.0):
        super().__init__()
        self.m = m
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.m(x))


class FFN(nn.Module):
    """1x1 Conv-BN (C -> h) -> ReLU -> 1x1 Conv-BN (h -> C, BN weight 0 at init)."""

    def __init__(self, dim: int, hidden: int, deploy: bool = False):
        super().__init__()
        self.pw1 = Conv2dBN(dim, hidden, deploy=deploy)
        self.act = nn.ReLU()
        self.pw2 = Conv2dBN(hidden, dim, bn_weight_init=0.0, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))


# --- stage-4 attention ------------------------------------------------------------------------------

def relative_position_index(height: int, width: int, table: int, device=None) -> torch.Tensor:
    """(N, N) index into a ``table`` x ``table`` grid of offsets: clamp(|dy|) * table + clamp(|dx|).

    For ``height == width == table`` it equals the official enumeration (offsets numbered in order of
    first appearance while iterating all point pairs), which the tests check.
    """
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()  # row-major positions, N = H * W
    dy = (ys[:, None] - ys[None, :]).abs().clamp(max=table - 1)
    dx = (xs[:, None] - xs[None, :]).abs().clamp(max=table - 1)
    return dy * table + dx


class Attention(nn.Module):
    """Multi-head self-attention on a feature map with learned relative-position biases.

    qkv: 1x1 Conv-BN (C -> 2 nh kd + nh d), 3x3 DW Conv-BN on q, logits q^T k / sqrt(kd) + bias(|dy|, |dx|),
    softmax, then ReLU -> 1x1 Conv-BN (nh d -> C, BN weight 0 at init). ``d = int(attn_ratio * kd)``.
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int,
                 deploy: bool = False):
        super().__init__()
        self.num_heads, self.key_dim, self.scale = num_heads, key_dim, key_dim ** -0.5
        self.nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.resolution = resolution
        self.qkv = Conv2dBN(dim, self.dh + 2 * self.nh_kd, deploy=deploy)
        self.proj = nn.Sequential(nn.ReLU(), Conv2dBN(self.dh, dim, bn_weight_init=0.0, deploy=deploy))
        self.dw = Conv2dBN(self.nh_kd, self.nh_kd, 3, 1, 1, groups=self.nh_kd, deploy=deploy)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, resolution * resolution))
        self.register_buffer("attention_bias_idxs", relative_position_index(resolution, resolution, resolution))

    def position_bias(self, height: int, width: int) -> torch.Tensor:
        """(nh, N, N) biases for an H x W map, gathered from the table (no cache)."""
        if height == width == self.resolution:
            idx = self.attention_bias_idxs
        else:
            idx = relative_position_index(height, width, self.resolution, self.attention_biases.device)
        return self.attention_biases[:, idx]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        q, k, v = self.qkv(x).split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        q = self.dw(q)  # local context on the queries
        q = q.reshape(b, self.num_heads, self.key_dim, n)  # (B, nh, kd, N)
        k = k.reshape(b, self.num_heads, self.key_dim, n)
        v = v.reshape(b, self.num_heads, self.d, n)  # (B, nh, d, N)
        attn = (q.transpose(-2, -1) @ k) * self.scale + self.position_bias(h, w)  # (B, nh, N, N)
        attn = attn.softmax(dim=-1)
        out = (v @ attn.transpose(-2, -1)).reshape(b, self.dh, h, w)  # (B, nh d, H, W)
        return self.proj(out)


# --- block and network --------------------------------------------------------------------------------

class Block(nn.Module):
    """mixer -> SE -> residual FFN; the mixer is chosen by the block index ``depth`` and ``stage``.
    ``drop_path`` acts on the official ``Residual`` wrappers (FFN, attention); RepVGGDW and LSConv hold
    their identity inside and are not dropped."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int,
                 stage: int, depth: int, lks: int = 7, sks: int = 3, groups: int = 8, drop_path: float = 0.0,
                 deploy: bool = False):
        super().__init__()
        if depth % 2 == 0:
            self.mixer = RepVGGDW(dim, deploy=deploy)
            self.se = SqueezeExcite(dim, 0.25)
        else:
            self.se = nn.Identity()
            self.mixer = (Residual(Attention(dim, key_dim, num_heads, attn_ratio, resolution, deploy), drop_path)
                          if stage == 3 else LSConv(dim, lks, sks, groups, deploy=deploy))
        self.ffn = Residual(FFN(dim, 2 * dim, deploy=deploy), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, C, H, W); RepVGGDW and LSConv hold their own identity
        return self.ffn(self.se(self.mixer(x)))


class LSNet(Backbone):
    """LSNet: stride-8 stem, four stages at strides 8/16/32/64, GAP -> BN1d -> Linear.

    Args:
        embed_dim: widths of the four stages.
        depth: blocks per stage (stage 1 of LSNet-T has none).
        num_heads: attention heads per stage (only stage 4 has attention).
        key_dim: query/key width per head, per stage.
        img_size: input size the attention-bias tables are built for (224 in the paper).
        lks, sks, groups: LKP large kernel, SKA small kernel, channels sharing one dynamic kernel.
        distillation: add the DeiT-style distillation head ``head_dist``.
        num_classes: 0 gives the pooled ``embed_dim[-1]`` embedding.
        in_chans: input channels.
        drop_rate: dropout between the head's BN and Linear (official: none).
        drop_path_rate: stochastic depth on the residual FFN / attention branches, linear from 0 over all
            blocks (as timm and DeiT; the official ``Residual`` supports it, the official model sets 0).
        deploy: build the structure ``convzoo.deploy`` leaves (Conv-BN and BN-Linear folded, RepVGGDW one
            conv), so the deployed state dict loads key for key.
        global_pool: timm's pool before the BN1d head ("avg"; "max", "avgmax"; "" applies the head at every
            position). "catavgmax" is refused: the head's BN has the stage width.
    """

    def __init__(self, embed_dim: Sequence[int] = (64, 128, 256, 384), depth: Sequence[int] = (0, 2, 8, 10),
                 num_heads: Sequence[int] = (3, 3, 3, 4), key_dim: Sequence[int] = (16, 16, 16, 16),
                 img_size: int = 224, lks: int = 7, sks: int = 3, groups: int = 8, distillation: bool = False,
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 deploy: bool = False, global_pool: str = "avg"):
        super().__init__()
        embed_dim, depth, num_heads, key_dim = map(tuple, (embed_dim, depth, num_heads, key_dim))
        if not all(len(s) == 4 for s in (embed_dim, depth, num_heads, key_dim)):
            raise ConvzooError("LSNet needs 4 values each for embed_dim, depth, num_heads and key_dim")
        if embed_dim[0] % 4 or any(c % groups or c % 2 for c in embed_dim[:3]) or min(num_heads) < 1 \
                or min(depth) < 0 or min(key_dim) < 1:
            raise ConvzooError(f"LSNet widths {embed_dim} must be divisible by groups={groups} and 2 "
                               f"(embed_dim[0] by 4), heads/key_dim >= 1 and depths >= 0")
        if not 0.0 <= drop_path_rate < 1.0 or not 0.0 <= drop_rate < 1.0:
            raise ConvzooError(f"drop_rate and drop_path_rate must be in [0, 1), got {drop_rate!r}, {drop_path_rate!r}")
        self.num_classes, self.distillation, self.num_features = num_classes, distillation, embed_dim[-1]
        self.drop_rate, self.deploy = drop_rate, deploy
        self.global_pool = SelectAdaptivePool(check_norm_pool(global_pool))
        # stem: (B, in_chans, H, W) -> (B, C0, H/8, W/8)
        c0 = embed_dim[0]
        self.patch_embed = nn.Sequential(Conv2dBN(in_chans, c0 // 4, 3, 2, 1, deploy=deploy), nn.ReLU(),
                                         Conv2dBN(c0 // 4, c0 // 2, 3, 2, 1, deploy=deploy), nn.ReLU(),
                                         Conv2dBN(c0 // 2, c0, 3, 2, 1, deploy=deploy))
        rates = iter(torch.linspace(0, drop_path_rate, max(sum(depth), 1), device="cpu").tolist())
        resolution = img_size
        for _ in range(3):
            resolution = (resolution - 1) // 2 + 1
        self.blocks1, self.blocks2, self.blocks3, self.blocks4 = (nn.Sequential() for _ in range(4))
        stages = [self.blocks1, self.blocks2, self.blocks3, self.blocks4]
        self.feature_info = []
        for i, (dim, n, nh, kd) in enumerate(zip(embed_dim, depth, num_heads, key_dim)):
            if i > 0:  # downsampling opens the stage: (B, C_{i-1}, H, W) -> (B, C_i, H/2, W/2)
                prev = embed_dim[i - 1]
                stages[i].append(Conv2dBN(prev, prev, 3, 2, 1, groups=prev, deploy=deploy))
                stages[i].append(Conv2dBN(prev, dim, 1, deploy=deploy))
                resolution = (resolution - 1) // 2 + 1
            for d in range(n):
                stages[i].append(Block(dim, kd, nh, dim / (kd * nh), resolution, stage=i, depth=d,
                                       lks=lks, sks=sks, groups=groups, drop_path=next(rates), deploy=deploy))
            self.feature_info.append({"num_chs": dim, "reduction": 8 * 2 ** i, "module": f"blocks{i + 1}"})
        self.reset_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_chans, H, W) -> (B, C3, H/64, W/64) (each stride-2 conv rounds up)
        x = self.patch_embed(x)
        return self.blocks4(self.blocks3(self.blocks2(self.blocks1(x))))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of each stage: strides 8, 16, 32, 64 (``feature_info``)."""
        x, out = self.patch_embed(x), []
        for stage in (self.blocks1, self.blocks2, self.blocks3, self.blocks4):
            x = stage(x)
            out.append(x)
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False, return_both: bool = False):
        """Pool and classify; with the distillation head, the mean of both heads, or with
        ``return_both`` the pair (class-head logits, distillation-head logits)."""
        x = self.global_pool(x)  # (B, C, H, W) -> (B, C); unpooled with global_pool ""
        if pre_logits:
            return x
        if return_both:
            if not self.distillation or self.num_classes == 0:
                raise ConvzooError("return_both needs a model built with distillation=True and num_classes > 0")
            return _at_positions(self.head, x), _at_positions(self.head_dist, x)
        if self.distillation and self.num_classes > 0:
            return (_at_positions(self.head, x) + _at_positions(self.head_dist, x)) / 2
        return _at_positions(self.head, x)

    def forward(self, x: torch.Tensor, return_both: bool = False):
        """Logits (B, num_classes); ``return_both=True`` (distillation head only) gives the pair.

        The keyword passes through wrappers (Fabric, DDP) that only route ``forward``, which is how
        the ``distillation`` task asks for both heads.
        """
        return self.forward_head(self.forward_features(x), return_both=return_both)

    def forward_distill(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class-head logits, distillation-head logits), for a DeiT-style distillation loss."""
        return self.forward(x, return_both=True)

    def get_classifier(self) -> nn.Module:
        return self.head.l if isinstance(self.head, BNLinear) else self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool(check_norm_pool(global_pool))
        self.num_classes = num_classes
        make = lambda: (BNLinear(self.num_features, num_classes, drop=self.drop_rate, deploy=self.deploy)
                        if num_classes > 0 else nn.Identity())
        self.head = make()
        if self.distillation:
            self.head_dist = make()

    def no_weight_decay(self) -> set[str]:
        """Parameter names the official optimiser keeps out of weight decay (attention bias tables)."""
        return {n for n, _ in self.named_parameters() if "attention_biases" in n}


def _at_positions(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``head`` on pooled (B, C), or at every position of an unpooled (B, C, *spatial) map -> (B, K, *spatial)."""
    if x.dim() == 2:
        return head(x)
    b, c, *spatial = x.shape
    return head(x.movedim(1, -1).reshape(-1, c)).reshape(b, *spatial, -1).movedim(-1, 1)


# --- variants (official lsnet.py; fact sheet G1a "Paper 18" Sec. 3) ------------------------------------

LSNET_CFGS = {
    "lsnet_t": {"embed_dim": (64, 128, 256, 384), "depth": (0, 2, 8, 10), "num_heads": (3, 3, 3, 4)},
    "lsnet_s": {"embed_dim": (96, 192, 320, 448), "depth": (1, 2, 8, 10), "num_heads": (3, 3, 3, 4)},
    "lsnet_b": {"embed_dim": (128, 256, 384, 512), "depth": (4, 6, 8, 10), "num_heads": (3, 3, 3, 4)},
}

# train-time params, fused params (after deploy), distill-head params (train-time), MACs @224 after
# fusion (conv/linear/matmul), README Params / FLOPs / top-1 plain / distilled
_SHEET = {
    "lsnet_t": (11_409_832, 11_370_488, 11_795_600, "0.315", "11.4M / 0.3G", "74.9 / 76.1"),
    "lsnet_s": (16_146_304, 16_098_232, 16_596_200, "0.537", "16.1M / 0.5G", "77.8 / 79.0"),
    "lsnet_b": (23_313_608, 23_249_320, 23_827_632, "1.240", "23.2M / 1.3G", "80.3 / 81.6"),
}
# torch.compile: the contract compiles the smallest variant of each architecture (lsnet_t; the other
# variants are the same blocks at other widths/depths; the distilled ones add a second linear head)
_CAPS = frozenset({"features", "reparam", "onnx", "channels_last", "bf16"})
_SRC = ("paper Sec. 3 (LS convolution, Eq. 3-5; LSNet, Fig. 4) and Sec. 4.1; official jameslahm/lsnet "
        "model/lsnet.py (widths, depths, heads; module layout and key names)")


def _card(name: str, distill: bool) -> ModelCard:
    base = name.removesuffix("_distill")
    train, fused, dist, macs, readme, top1 = _SHEET[base]
    return ModelCard(
        name=name, paper=18, family="lsnet", task="classification",
        params=dist if distill else train,
        params_source=("sum of numel of the train-time model, 1000 classes" +
                       (" with the distillation head" if distill else "") +
                       f" (fact sheet G1a Paper 18 Sec. 3, official lsnet.py); README Params {readme.split(' / ')[0]} "
                       f"is the fused count {fused:,} (after convzoo.deploy, proven in tests/models/test_lsnet.py)"),
        macs=None,  # the sheet's MACs are those of the fused model; proven on it in test_lsnet.py
        macs_source=(f"sheet {macs} G @224 = fvcore MACs of the FUSED model (after replace_batchnorm), conv + "
                     f"linear + attention matmul, SKA's elementwise multiply-adds excluded; README FLOPs "
                     f"{readme.split(' / ')[1]}. The card's default (train-time) model adds the RepVGGDW 1x1 "
                     f"branches (LSNet-B: 1.2409 G, which rounds off the sheet), so the count is checked on "
                     f"convzoo.deploy(model) with torch FlopCounterMode in tests/models/test_lsnet.py"),
        reference=None, capabilities=_CAPS | ({"compile"} if "distill" not in name else set()), test_size=(64, 64), source=_SRC,
        # official data/datasets.py build_transform (eval): Resize(int(256 / 224 * 224), bicubic), CenterCrop(224),
        # ImageNet mean/std (the card's default)
        interpolation="bicubic", crop_pct=224 / 256,
        recipes=(("lsnet_t_distill_imagenet_paper",) if name == "lsnet_t_distill" else
                 ("lsnet_digits", "lsnet_t_imagenet_paper") if name == "lsnet_t" else ()),
        notes=(f"ImageNet-1K top-1 (README) plain / distilled: {top1}. " +
               ("DeiT-style distillation head; forward returns the mean of both heads (train and eval), "
                "forward_distill the pair. " if distill else "") +
               "SKA in pure PyTorch (official: Triton, GPU only)."),
    )


def _lsnet(name: str, **kwargs) -> LSNet:
    return LSNet(**{**LSNET_CFGS[name], **kwargs})


@register_model(_card("lsnet_t", False))
def lsnet_t(**kwargs) -> LSNet:
    return _lsnet("lsnet_t", **kwargs)


@register_model(_card("lsnet_s", False))
def lsnet_s(**kwargs) -> LSNet:
    return _lsnet("lsnet_s", **kwargs)


@register_model(_card("lsnet_b", False))
def lsnet_b(**kwargs) -> LSNet:
    return _lsnet("lsnet_b", **kwargs)


@register_model(_card("lsnet_t_distill", True))
def lsnet_t_distill(**kwargs) -> LSNet:
    return _lsnet("lsnet_t", **{"distillation": True, **kwargs})


@register_model(_card("lsnet_s_distill", True))
def lsnet_s_distill(**kwargs) -> LSNet:
    return _lsnet("lsnet_s", **{"distillation": True, **kwargs})


@register_model(_card("lsnet_b_distill", True))
def lsnet_b_distill(**kwargs) -> LSNet:
    return _lsnet("lsnet_b", **{"distillation": True, **kwargs})
