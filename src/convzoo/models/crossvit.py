"""CrossViT: Cross-Attention Multi-Scale Vision Transformer for Image Classification.

Seed paper 28; Chen, Fan, Panda; ICCV 2021; arXiv 2103.14899. Official code: IBM/CrossViT
(``models/crossvit.py``, DeiT code base); timm ``crossvit.py`` is a faithful port that renames the models after
their real S-branch input (``*_224`` -> ``*_240``, ``*_384`` -> ``*_408``); these are the registered names here
(:data:`OFFICIAL_NAMES` maps the authors' names to them).

Implemented (paper Sec. 3, Fig. 2-3, Table 1 and the official builders):
- Two branches over the same image: S (small patch 12, width C_s, the image as given: 240 px) and L (patch 16,
  width C_l = 2 C_s, the image resized bicubically inside the model by 224/240, resp. 384/408), each with its
  own CLS token and learned absolute position embedding. Patch embedding: one linear projection, or for the
  dagger models three convolutions (7x7/4, 3x3/3 (S) or 3x3/2 (L), 3x3/1 (S) or 3x3/2 (L); widths C/4, C/2, C).
- :class:`MultiScaleBlock` (repeated K = 3 times): N ViT blocks on S, M on L (:class:`convzoo.layers.vit.Block`),
  then cross-attention fusion (:mod:`convzoo.layers.cross_attention`): each branch's CLS is projected to the
  other width (f: LN -> GELU -> Linear), attends as the only query over the other branch's patch tokens, and is
  projected back (g: LN -> GELU -> Linear). L = 1 fusion layer without MLP, as every released model.
- Head: LayerNorm per branch, one Linear per branch on its CLS, logits averaged (Sec. 3.3).
- Variants (:data:`CROSSVIT_CFGS`): Ti, S, B, 9, 15, 18 at 240, the dagger variants 9/15/18 at 240 and 15/18
  at 408 (fine-tuned at 384 in the paper); one record each.

Departures from the official / timm code, and why:
- Any input size: the L branch takes ``int(H * scale)`` x ``int(W * scale)`` (timm's rounding, so 240 -> 224 as in
  timm) and the position embeddings are resized (bicubic, timm's ``resample_abs_pos_embed``) when the token grid
  differs from the construction grid; timm asserts the construction size.
- No ``onnx`` capability: at input sizes other than the construction size the position embedding is resized
  with antialiased bicubic interpolation (the shared ``resample_abs_pos_embed``, timm's default), which the
  TorchScript ONNX exporter (opset 17) cannot export; at the construction size nothing is resized.
- ``global_pool``: timm's "token" (default) and "avg", plus "max", "avgmax", "catavgmax" over the patch tokens and
  "" (each branch head at every patch token: (B, num_classes, N_s + N_l)), see :mod:`convzoo.layers.token_pool`.
- Cross-attention and self-attention use ``F.scaled_dot_product_attention``.

State-dict keys are timm's (``patch_embed.0.proj``, ``pos_embed_0``, ``cls_token_1``, ``blocks.0.blocks.1.3.attn.qkv``,
``blocks.0.projs.0.2``, ``blocks.0.fusion.1.attn.wq``, ``blocks.0.revert_projs.1.2``, ``norm.0``, ``head.1``);
the official checkpoints name the embeddings ``pos_embed.0`` / ``cls_token.0`` (ParameterLists):
:func:`remap_state_dict` renames them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.cross_attention import CrossAttentionBlock
from convzoo.layers.drop_path import check_drop_rate
from convzoo.layers.head import Backbone
from convzoo.layers.token_pool import apply_token_head, check_token_pool, pool_feat_mult, pool_tokens
from convzoo.layers.vit import Block, init_vit_weights_, resample_abs_pos_embed
from convzoo.registry import ModelCard, register_model

__all__ = ["CROSSVIT_CFGS", "OFFICIAL_NAMES", "CrossViT", "MultiScaleBlock", "PatchEmbed", "remap_state_dict"]


# --- patch embedding ------------------------------------------------------------------------------------------

class PatchEmbed(nn.Module):
    """Image (B, C_in, H, W) -> tokens (B, h*w, C) and the grid (h, w).

    ``multi_conv`` (dagger models): Conv 7x7/4 (C/4) -> ReLU -> Conv 3x3 (C/2; stride 3 for patch 12, stride 2
    pad 1 for patch 16) -> ReLU -> Conv 3x3 (C; stride 1 pad 1 for patch 12, stride 2 pad 1 for patch 16).
    """

    def __init__(self, patch_size: int, in_chans: int, dim: int, multi_conv: bool = False):
        super().__init__()
        if not multi_conv:
            self.proj = nn.Conv2d(in_chans, dim, patch_size, patch_size)
        elif patch_size in (12, 16):
            s2, p2, s3 = (3, 0, 1) if patch_size == 12 else (2, 1, 2)
            self.proj = nn.Sequential(
                nn.Conv2d(in_chans, dim // 4, 7, 4, 3), nn.ReLU(inplace=True),
                nn.Conv2d(dim // 4, dim // 2, 3, s2, p2), nn.ReLU(inplace=True),
                nn.Conv2d(dim // 2, dim, 3, s3, 1))
        else:
            raise ConvzooError(f"the three-conv patch embedding exists for patch sizes 12 and 16, got {patch_size}")

    def grid(self, size: int) -> tuple[int, int]:
        """The token grid of a ``size`` x ``size`` input (conv arithmetic, floor)."""
        for conv in (m for m in self.proj.modules() if isinstance(m, nn.Conv2d)):
            size = (size + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
        return size, size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)  # (B, C, h, w)
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])  # (B, h*w, C)


# --- multi-scale block --------------------------------------------------------------------------------------------

def _proj(din: int, dout: int, eps: float) -> nn.Sequential:
    """f / g of Eq. 7: LN -> GELU -> Linear (keys 0, 2)."""
    return nn.Sequential(nn.LayerNorm(din, eps=eps), nn.GELU(), nn.Linear(din, dout))


class MultiScaleBlock(nn.Module):
    """``depth[b]`` Transformer blocks per branch b, then cross-attention fusion of the CLS tokens (Fig. 3).

    ``drop_path`` lists this block's rates: block i of every branch uses ``drop_path[i]``, the fusion the last
    one (timm's / the official assignment).
    """

    def __init__(self, dims: Sequence[int], depth: Sequence[int], num_heads: Sequence[int],
                 mlp_ratio: Sequence[float], qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: Sequence[float] = (0.0,), eps: float = 1e-6):
        super().__init__()
        nb = len(dims)
        self.num_branches = nb
        self.blocks = nn.ModuleList(
            nn.Sequential(*[Block(dims[b], num_heads[b], mlp_ratio[b], qkv_bias, drop, attn_drop, drop_path[i],
                                  eps=eps) for i in range(depth[b])]) for b in range(nb))
        # branch b's CLS -> width of branch b+1, attends there, comes back
        self.projs = nn.ModuleList(_proj(dims[b], dims[(b + 1) % nb], eps) for b in range(nb))
        self.fusion = nn.ModuleList(
            CrossAttentionBlock(dims[(b + 1) % nb], num_heads[(b + 1) % nb], qkv_bias, drop, attn_drop,
                                drop_path[-1], eps) for b in range(nb))
        self.revert_projs = nn.ModuleList(_proj(dims[(b + 1) % nb], dims[b], eps) for b in range(nb))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        # xs[b]: (B, 1 + N_b, C_b) -> same shapes
        xs = [blocks(x) for blocks, x in zip(self.blocks, xs)]
        out = []
        for b in range(self.num_branches):
            other = xs[(b + 1) % self.num_branches]
            cls = self.projs[b](xs[b][:, :1])  # (B, 1, C_other)
            cls = self.fusion[b](torch.cat((cls, other[:, 1:]), dim=1))  # (B, 1, C_other): CLS over other's patches
            out.append(torch.cat((self.revert_projs[b](cls), xs[b][:, 1:]), dim=1))  # (B, 1 + N_b, C_b)
        return out


# --- network -------------------------------------------------------------------------------------------------------

class CrossViT(Backbone):
    """Dual-branch ViT with cross-attention fusion of the CLS tokens.

    Args:
        img_size: construction input size of the S branch (240, or 408 for the fine-tuned models); sets the
            position-embedding grids. Other input sizes are taken (embeddings resized).
        img_scale: per-branch input scale (1.0, 224/240): the L branch sees the image resized by 224/240.
        patch_size, embed_dim, num_heads: per branch.
        depth: per multi-scale block, (S blocks, L blocks, fusion depth); fusion depth 0 = one cross-attention
            layer without MLP (every released model; other depths are not implemented).
        mlp_ratio: per branch (a third entry, the unused fusion ratio of the official configs, is ignored).
        multi_conv: three-conv patch embedding (dagger models).
        num_classes, in_chans, drop_rate, drop_path_rate, global_pool: timm's; attn_drop_rate, proj_drop_rate too.
    """

    def __init__(self, img_size: int = 240, img_scale: Sequence[float] = (1.0, 224 / 240),
                 patch_size: Sequence[int] = (12, 16), embed_dim: Sequence[int] = (96, 192),
                 depth: Sequence[Sequence[int]] = ((1, 4, 0),) * 3, num_heads: Sequence[int] = (3, 3),
                 mlp_ratio: Sequence[float] = (4.0, 4.0), multi_conv: bool = False, qkv_bias: bool = True,
                 num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, proj_drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, pos_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 global_pool: str = "token", eps: float = 1e-6):
        super().__init__()
        nb = len(patch_size)
        if nb != 2 or len(embed_dim) != 2 or len(num_heads) != 2 or len(img_scale) != 2:
            raise ConvzooError("CrossViT has two branches: give two patch sizes, widths, head counts and scales")
        if any(len(d) != 3 or d[0] < 1 or d[1] < 1 or d[2] != 0 for d in depth):
            raise ConvzooError(f"depth entries are (S blocks >= 1, L blocks >= 1, 0), got {list(map(tuple, depth))}")
        if any(c % h for c, h in zip(embed_dim, num_heads)):
            raise ConvzooError(f"embed_dim {list(embed_dim)} must be divisible by num_heads {list(num_heads)}")
        check_drop_rate(drop_rate, "drop_rate")
        check_drop_rate(drop_path_rate)
        self.num_branches, self.embed_dim = nb, tuple(embed_dim)
        self.img_scale, self.drop_rate = tuple(img_scale), drop_rate
        self.num_classes, self.global_pool = num_classes, check_token_pool(global_pool)
        self.num_features = sum(embed_dim)  # the pooled branches side by side (timm's pre_logits)

        self.patch_embed = nn.ModuleList(PatchEmbed(p, in_chans, c, multi_conv) for p, c in zip(patch_size, embed_dim))
        self.grids = [pe.grid(int(img_size * sc)) for pe, sc in zip(self.patch_embed, img_scale)]  # construction
        for b in range(nb):  # timm's names (hard-coded per branch, jit-friendly there)
            n = self.grids[b][0] * self.grids[b][1]
            self.register_parameter(f"pos_embed_{b}", nn.Parameter(torch.zeros(1, 1 + n, embed_dim[b])))
            self.register_parameter(f"cls_token_{b}", nn.Parameter(torch.zeros(1, 1, embed_dim[b])))
        self.pos_drop = nn.Dropout(pos_drop_rate)

        per_block = [d[1] + d[2] for d in depth]  # timm: the L-branch depth sets the rate schedule
        total = sum(per_block)
        rates = [drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        self.blocks, start = nn.ModuleList(), 0
        for d, n in zip(depth, per_block):
            self.blocks.append(MultiScaleBlock(embed_dim, d[:2], num_heads, mlp_ratio[:2], qkv_bias, proj_drop_rate,
                                               attn_drop_rate, rates[start:start + max(d[:2]) + d[2]], eps))
            start += n
        k = len(depth)
        # branch-major (timm): S maps of blocks 0..K-1, then L maps; reduction relative to the input image
        self.feature_info = [{"num_chs": embed_dim[b], "reduction": round(patch_size[b] / img_scale[b]),
                                  "module": f"blocks.{i}"} for b in range(nb) for i in range(k)]
        self.norm = nn.ModuleList(nn.LayerNorm(c, eps=eps) for c in embed_dim)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = self._make_heads(num_classes)
        self._init_weights()

    def _make_heads(self, num_classes: int) -> nn.ModuleList:
        mult = pool_feat_mult(self.global_pool)
        return nn.ModuleList(nn.Linear(c * mult, num_classes) if num_classes > 0 else nn.Identity()
                             for c in self.embed_dim)

    def _init_weights(self) -> None:
        # timm: trunc-normal(0.02) embeddings (branch by branch) and Linears, zero biases
        init_vit_weights_(self, *(getattr(self, f"{p}_{b}") for b in range(self.num_branches)
                                  for p in ("pos_embed", "cls_token")))

    def no_weight_decay(self) -> set[str]:
        return {f"{p}_{b}" for b in range(self.num_branches) for p in ("pos_embed", "cls_token")}

    # --- forward --------------------------------------------------------------------------------------------
    def _embed(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
        """The image -> per-branch tokens (B, 1 + h_b w_b, C_b) with CLS and position embeddings, and the grids."""
        h, w = x.shape[-2:]
        xs, grids = [], []
        for b, pe in enumerate(self.patch_embed):
            size = (int(h * self.img_scale[b]), int(w * self.img_scale[b]))  # timm's rounding: 240 -> 224
            xb = x if size == (h, w) else F.interpolate(x, size=size, mode="bicubic", align_corners=False)
            tokens, grid = pe(xb)
            cls = getattr(self, f"cls_token_{b}").expand(x.shape[0], -1, -1)
            pos = resample_abs_pos_embed(getattr(self, f"pos_embed_{b}"), grid, self.grids[b], num_prefix_tokens=1)
            xs.append(self.pos_drop(torch.cat((cls, tokens), dim=1) + pos))
            grids.append(grid)
        return xs, grids

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        xs, _ = self._embed(x)
        for blk in self.blocks:
            xs = blk(xs)
        return [norm(t) for norm, t in zip(self.norm, xs)]  # per branch (B, 1 + N_b, C_b)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Patch-token maps (B, C_b, h_b, w_b) after each multi-scale block, branch-major as ``feature_info``."""
        xs, grids = self._embed(x)
        maps: list[list[torch.Tensor]] = [[] for _ in xs]
        for blk in self.blocks:
            xs = blk(xs)
            for b, t in enumerate(xs):
                maps[b].append(t[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, *grids[b]))
        return [m for branch in maps for m in branch]

    def forward_head(self, xs: list[torch.Tensor], pre_logits: bool = False) -> torch.Tensor:
        pooled = [self.head_drop(pool_tokens(t, self.global_pool)) for t in xs]
        if pre_logits or self.num_classes == 0:
            return torch.cat(pooled, dim=-1) if self.global_pool else pooled
        logits = [apply_token_head(head, p) for head, p in zip(self.head, pooled)]
        if not self.global_pool:  # each branch's head at each of its patch tokens
            return torch.cat(logits, dim=-1)  # (B, num_classes, N_s + N_l)
        return torch.stack(logits).mean(0)  # (B, num_classes): the branches' logits averaged

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool = check_token_pool(global_pool)
        self.num_classes = num_classes
        device = self.pos_embed_0.device
        self.head = self._make_heads(num_classes).to(device)


def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official IBM/CrossViT keys -> ours (timm's): ``pos_embed.0`` -> ``pos_embed_0``, ``cls_token.1`` ->
    ``cls_token_1``; every other key is the same."""
    out = {}
    for k, v in state.items():
        if k.startswith(("pos_embed.", "cls_token.")):
            k = k.replace(".", "_", 1)
        out[k] = v
    return out


# --- variants ------------------------------------------------------------------------------------------------------
# name: (embed_dim S/L, heads, L blocks per multi-scale block, mlp_ratio, dagger, S input, timm params, timm MACs)
# timm 1.0.31 parameter counts (sum of numel, 1000 classes; fact sheet G1b) and MACs (FlopCounterMode on the meta
# device, attention products included: = the paper's FLOPs column, e.g. Ti 1.6G, 9-dagger 2.0G; the sheet's CPU
# figures (Ti 1.29G) miss timm's fused self-attention, which FlopCounterMode does not count on CPU)
CROSSVIT_CFGS: dict[str, tuple] = {
    "crossvit_tiny_240": ((96, 192), 3, 4, 4.0, False, 240, 7_014_800, 1_562_734_080),
    "crossvit_small_240": ((192, 384), 6, 4, 4.0, False, 240, 26_856_272, 5_615_557_632),
    "crossvit_base_240": ((384, 768), 12, 4, 4.0, False, 240, 105_025_232, 21_191_473_152),
    "crossvit_9_240": ((128, 256), 4, 3, 3.0, False, 240, 8_553_296, 1_840_796_160),
    "crossvit_15_240": ((192, 384), 6, 5, 3.0, False, 240, 27_528_464, 5_790_571_776),
    "crossvit_18_240": ((224, 448), 7, 6, 3.0, False, 240, 43_271_408, 9_031_158_528),
    "crossvit_9_dagger_240": ((128, 256), 4, 3, 3.0, True, 240, 8_776_592, 1_979_049_984),
    "crossvit_15_dagger_240": ((192, 384), 6, 5, 3.0, True, 240, 28_209_008, 6_112_304_640),
    "crossvit_18_dagger_240": ((224, 448), 7, 6, 3.0, True, 240, 44_266_976, 9_473_218_944),
    "crossvit_15_dagger_408": ((192, 384), 6, 5, 3.0, True, 408, 28_500_080, 21_398_550_336),
    "crossvit_18_dagger_408": ((224, 448), 7, 6, 3.0, True, 408, 44_606_560, 32_409_093_024),
}
# the authors' builder names (IBM/CrossViT models/crossvit.py) -> the registered (timm) names
OFFICIAL_NAMES = {n.replace("_240", "_224").replace("_408", "_384"): n for n in CROSSVIT_CFGS}
# paper Table 1 / Table 2 rows and ImageNet top-1 (paper; the 408 models: fine-tuned at 384 px, Table 3)
_PAPER = {"tiny": ("CrossViT-Ti", 73.4), "small": ("CrossViT-S", 81.0), "base": ("CrossViT-B", 82.2),
          "9": ("CrossViT-9", 73.9), "15": ("CrossViT-15", 81.5), "18": ("CrossViT-18", 82.5),
          "9_dagger": ("CrossViT-9 dagger", 77.1), "15_dagger": ("CrossViT-15 dagger", 82.3),
          "18_dagger": ("CrossViT-18 dagger", 82.8)}
_CAPS = frozenset({"features", "compile", "channels_last"})  # onnx: see the module docstring


def _kwargs(name: str) -> dict:
    dims, heads, m, r, dagger, size, *_ = CROSSVIT_CFGS[name]
    return {"img_size": size, "img_scale": (1.0, 224 / 240 if size == 240 else 384 / 408), "patch_size": (12, 16), "embed_dim": dims,
            "depth": ((1, m, 0),) * 3, "num_heads": (heads, heads), "mlp_ratio": (r, r), "multi_conv": dagger}


def _card(name: str) -> ModelCard:
    dims, heads, m, r, dagger, size, params, macs = CROSSVIT_CFGS[name]
    key = name.removeprefix("crossvit_").rsplit("_", 1)[0]
    row, top1 = _PAPER[key]
    return ModelCard(
        name=name, paper=28, family="crossvit", task="classification", input_size=(size, size), test_size=(48, 48),
        params=params,
        params_source="timm 1.0.31 " + name + ", sum of numel over parameters, 1000 classes (paper Table 2 "
                      "rounds to 0.1M and differs by up to 0.3M)",
        macs=macs,
        macs_source=f"timm 1.0.31 {name} under torch FlopCounterMode on the meta device at {size} px (every matmul "
                    "of the attention counted; the bicubic resize of the L-branch input is not)",
        reference=f"timm:{name}", capabilities=_CAPS,
        # timm pretrained_cfg: ImageNet mean/std, bicubic, crop_pct 0.875 (240) / 1.0 (408)
        interpolation="bicubic", crop_pct=0.875 if size == 240 else 1.0,
        recipes={"crossvit_tiny_240": ("crossvit_tiny_imagenet_paper",), "crossvit_9_240": ("crossvit_fashion",)}.get(
            name, ()),
        source="paper Sec. 3 (Fig. 2-3, Eq. 5-8) and Table 1 configs; official models/crossvit.py builders; "
               "timm crossvit.py key layout",
        notes=(f"{row}: dims {dims[0]}/{dims[1]}, {heads} heads, K=3 x (1 S + {m} L blocks + cross-attention), "
               f"mlp {r}, {'three-conv' if dagger else 'linear'} patch embedding; S {size} px, L "
               f"{224 if size == 240 else 384} px (resized inside); ImageNet top-1 {top1}"
               f"{' after 384-px fine-tuning: 83.5 (15), 84.1 (18)' if size == 408 else ''} (paper). "
               f"Official name {name.replace('_240', '_224').replace('_408', '_384')}."),
    )


def _crossvit(name: str, **kwargs) -> CrossViT:
    return CrossViT(**{**_kwargs(name), **kwargs})


@register_model(_card("crossvit_tiny_240"))
def crossvit_tiny_240(**kwargs) -> CrossViT:
    return _crossvit("crossvit_tiny_240", **kwargs)


@register_model(_card("crossvit_small_240"))
def crossvit_small_240(**kwargs) -> CrossViT:
    return _crossvit("crossvit_small_240", **kwargs)


@register_model(_card("crossvit_base_240"))
def crossvit_base_240(**kwargs) -> CrossViT:
    return _crossvit("crossvit_base_240", **kwargs)


@register_model(_card("crossvit_9_240"))
def crossvit_9_240(**kwargs) -> CrossViT:
    return _crossvit("crossvit_9_240", **kwargs)


@register_model(_card("crossvit_15_240"))
def crossvit_15_240(**kwargs) -> CrossViT:
    return _crossvit("crossvit_15_240", **kwargs)


@register_model(_card("crossvit_18_240"))
def crossvit_18_240(**kwargs) -> CrossViT:
    return _crossvit("crossvit_18_240", **kwargs)


@register_model(_card("crossvit_9_dagger_240"))
def crossvit_9_dagger_240(**kwargs) -> CrossViT:
    return _crossvit("crossvit_9_dagger_240", **kwargs)


@register_model(_card("crossvit_15_dagger_240"))
def crossvit_15_dagger_240(**kwargs) -> CrossViT:
    return _crossvit("crossvit_15_dagger_240", **kwargs)


@register_model(_card("crossvit_18_dagger_240"))
def crossvit_18_dagger_240(**kwargs) -> CrossViT:
    return _crossvit("crossvit_18_dagger_240", **kwargs)


@register_model(_card("crossvit_15_dagger_408"))
def crossvit_15_dagger_408(**kwargs) -> CrossViT:
    return _crossvit("crossvit_15_dagger_408", **kwargs)


@register_model(_card("crossvit_18_dagger_408"))
def crossvit_18_dagger_408(**kwargs) -> CrossViT:
    return _crossvit("crossvit_18_dagger_408", **kwargs)
