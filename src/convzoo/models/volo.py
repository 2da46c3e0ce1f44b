"""VOLO: Vision Outlooker for Visual Recognition.

Seed paper 51; Yuan, Hou, Jiang, Feng, Yan; TPAMI 2022; arXiv 2106.13112. Official code: sail-sg/volo
(``models/volo.py``, ``loss/cross_entropy.py``), on timm 0.4.5 and the Token Labeling toolbox; timm's
``volo_d1_224`` ... ``volo_d5_512`` port the official configurations.

Implemented here (paper Sec. 3, official ``volo.py``):
- :class:`PatchEmbed`: conv stem (7x7/2, 3x3, 3x3 Conv-BN-ReLU, width 64; 128 for D5) and a (p/2)x(p/2) stride
  p/2 projection: tokens at 1/p of the input (p = 8: 28 x 28 at 224 px).
- Stage 1: Outlookers (:mod:`convzoo.layers.outlook`, outlook attention K = 3 with weights at stride 2).
- :class:`Downsample`: 2x2 stride-2 conv to 1/2p (14 x 14), then the learned absolute position embedding.
- Stage 2: pre-norm Transformer blocks (:class:`convzoo.layers.vit.Block`, SDPA attention) in three groups.
- Class attention (CaiT-style, :class:`ClassBlock` x 2): a class token attends to all tokens; only it is updated.
- Heads: ``head`` on the class token and the token-labelling ``aux_head`` on every grid token. The output is
  ``head(cls) + 0.5 * max over tokens of aux_head(tokens)`` (official ``return_dense`` inference, timm's forward).
  ``model(x, dense=True, mix=...)`` returns the two heads apart for token labelling
  (:mod:`convzoo.methods.token_labeling`): ``(head(cls), aux_head(tokens))``, with MixToken applied to the
  patch tokens and undone on the aux predictions when a ``mix`` object is given.
- Variants (``VOLO_CFGS``): D1-D5 at every resolution timm registers (the resolution only sizes the
  position embedding).

Departures from the official code / timm, and why:
- Inputs of other sizes than the construction size are accepted: the position embedding is resized bicubically
  to the token grid (timm's ``resample_abs_pos_embed``; official and timm VOLO take the built size only), so the
  contract runs at a small size. Outlook attention takes grids of any size (ceil-mode pooling, as official).
- Attention and class attention run through ``F.scaled_dot_product_attention`` (same function).
- Stage-2 tokens are kept as (B, N, C) sequences (timm keeps (B, H, W, C) maps); keys do not change.
- ``global_pool``: "token" (the class token, default), "avg" / "max" / "avgmax" over all tokens (the class token
  too, as timm's "avg"), or "" (the classifier at every grid token, (B, num_classes, N), no aux term);
  "catavgmax" is refused (the aux head reads single-width tokens). The aux term is added for every pooled mode.
- As in the official code and timm, ``drop_path_rate`` acts on the Transformer blocks only (rate
  ``drop_path_rate * i / (L - 1)`` at global block index i of L); Outlookers and class blocks have none.

State-dict keys equal the official / timm ones (``patch_embed.conv.0``, ``network.0.0.attn.attn``,
``network.1.proj``, ``network.2.0.attn.qkv``, ``pos_embed`` of shape (1, h, w, C), ``post_network.0.attn.kv``,
``cls_token``, ``norm``, ``head``, ``aux_head``), so released checkpoints load with ``load_state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import check_drop_rate
from convzoo.layers.head import POOL_TYPES, Backbone
from convzoo.layers.outlook import Outlooker
from convzoo.layers.vit import Block, Mlp, init_vit_weights_, resample_abs_pos_embed
from convzoo.registry import ModelCard, register_model

__all__ = ["VOLO", "VOLO_CFGS", "ClassAttention", "ClassBlock", "Downsample", "PatchEmbed"]

VOLO_POOLS = ("token", *(p for p in POOL_TYPES if p != "catavgmax"))


def check_volo_pool(pool: str | None) -> str:
    """``pool`` if VOLO's head takes it, else one-line ConvzooError."""
    pool = pool or ""
    if pool == "catavgmax":
        raise ConvzooError("VOLO refuses global_pool 'catavgmax': its aux head reads tokens of the model width; "
                           f"use one of {', '.join(map(repr, VOLO_POOLS))}")
    if pool not in VOLO_POOLS:
        raise ConvzooError(f"unknown global_pool {pool!r} for VOLO; expected one of {', '.join(map(repr, VOLO_POOLS))}")
    return pool


# --- stem, downsampling, class attention --------------------------------------------------------------

class PatchEmbed(nn.Module):
    """(B, in_chans, H, W) -> (B, C, H/p, W/p): 3 Conv-BN-ReLU (first stride 2) then a (p/2)-strided projection."""

    def __init__(self, in_chans: int, hidden: int, dim: int, patch_size: int = 8):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_chans, hidden, 7, 2, 3, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, 1, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, 1, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.proj = nn.Conv2d(hidden, dim, patch_size // 2, patch_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.conv(x))


class Downsample(nn.Module):
    """(B, H, W, C) -> (B, H/2, W/2, C'): a 2x2 stride-2 conv between the two stages."""

    def __init__(self, cin: int, cout: int, patch_size: int = 2):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ClassAttention(nn.Module):
    """The class token (position 0) attends to every token (CaiT, Touvron et al. arXiv 2103.17239, Sec. 3.2):
    (B, 1 + N, C) -> (B, 1, C). Keys ``q``, ``kv``, ``proj`` (official)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        k, v = self.kv(x).reshape(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q = self.q(x[:, :1]).reshape(b, 1, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, 1, d)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, 1, c)))  # (B, 1, C)


class ClassBlock(nn.Module):
    """cls + ClassAttention(LN x); cls + MLP(LN cls); the patch tokens pass unchanged."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 3.0, qkv_bias: bool = False,
                 attn_drop: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ClassAttention(dim, num_heads, qkv_bias, attn_drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + N, C) -> (B, 1 + N, C)
        cls = x[:, :1] + self.attn(self.norm1(x))
        cls = cls + self.mlp(self.norm2(cls))
        return torch.cat([cls, x[:, 1:]], dim=1)


# --- network ------------------------------------------------------------------------------------------

class VOLO(Backbone):
    """VOLO: conv stem + patch embedding, Outlookers at 1/p, downsample, Transformers at 1/2p, class attention.

    Args:
        layers: blocks per stage; stage 0 is made of Outlookers, the others of Transformer blocks
            (official D1: (4, 4, 8, 2)).
        embed_dims, num_heads: width and heads per stage (stages after the first share the last width).
        mlp_ratio: MLP hidden width / token width (3; 4 for D5).
        stem_hidden: width of the conv stem (64; 128 for D5).
        img_size: the size the position embedding is built for (its grid is img_size / 2p).
        patch_size: stride of the patch embedding (4, 8 or 16; 8 in the paper).
        num_post: class-attention blocks (2).
        use_aux_head: the token-labelling head (official ``return_dense``); its max is added to the output.
        global_pool: "token" (default), "avg", "max", "avgmax" or "" (see the module docstring).
        drop_rate: dropout before the heads; drop_path_rate: on the Transformer blocks (official rule).
    """

    def __init__(self, layers: Sequence[int] = (4, 4, 8, 2), embed_dims: Sequence[int] = (192, 384, 384, 384),
                 num_heads: Sequence[int] = (6, 12, 12, 12), mlp_ratio: float = 3.0, stem_hidden: int = 64,
                 img_size: int | Sequence[int] = 224, patch_size: int = 8, num_post: int = 2,
                 use_aux_head: bool = True, num_classes: int = 1000, in_chans: int = 3, global_pool: str = "token",
                 qkv_bias: bool = False, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, outlook_kernel: int = 3, outlook_stride: int = 2):
        super().__init__()
        layers, embed_dims, num_heads = tuple(layers), tuple(embed_dims), tuple(num_heads)
        if not len(layers) == len(embed_dims) == len(num_heads) >= 2:
            raise ConvzooError(f"VOLO needs >= 2 stages and as many layers, embed_dims and num_heads; got "
                               f"{layers}, {embed_dims}, {num_heads}")
        if any(d % h for d, h in zip(embed_dims, num_heads)) or len(set(embed_dims[1:])) != 1:
            raise ConvzooError(f"VOLO embed_dims {embed_dims} must be divisible by num_heads {num_heads}, and the "
                               f"stages after the first must share one width")
        if patch_size not in (4, 8, 16):
            raise ConvzooError(f"VOLO patch_size must be 4, 8 or 16, got {patch_size}")
        check_drop_rate(drop_path_rate)
        check_drop_rate(drop_rate, "drop_rate")
        img = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        dim = embed_dims[-1]
        self.num_classes, self.num_features, self.patch_size = num_classes, dim, patch_size
        self.use_aux_head, self.global_pool = use_aux_head, check_volo_pool(global_pool)
        self.patch_embed = PatchEmbed(in_chans, stem_hidden, embed_dims[0], patch_size)
        self.pos_grid = (img[0] // patch_size // 2, img[1] // patch_size // 2)
        self.pos_embed = nn.Parameter(torch.zeros(1, *self.pos_grid, dim))  # (1, h, w, C), added after downsample
        self.pos_drop = nn.Dropout(0.0)
        total = sum(layers)
        network: list[nn.Module] = [nn.Sequential(*(
            Outlooker(embed_dims[0], num_heads[0], outlook_kernel, outlook_kernel // 2, outlook_stride,
                      mlp_ratio, qkv_bias, attn_drop_rate) for _ in range(layers[0])))]
        network.append(Downsample(embed_dims[0], embed_dims[1]))
        self.feature_info = [{"num_chs": embed_dims[0], "reduction": patch_size, "module": "network.0"}]
        start = layers[0]
        for i in range(1, len(layers)):
            rates = [drop_path_rate * (start + j) / (total - 1) for j in range(layers[i])]
            network.append(nn.Sequential(*(
                Block(dim, num_heads[i], mlp_ratio, qkv_bias, attn_drop=attn_drop_rate, drop_path_rate=r, eps=1e-5)
                for r in rates)))
            self.feature_info.append({"num_chs": dim, "reduction": 2 * patch_size, "module": f"network.{i + 1}"})
            start += layers[i]
        self.network = nn.ModuleList(network)
        self.post_network = nn.ModuleList(ClassBlock(dim, num_heads[-1], mlp_ratio, qkv_bias, attn_drop_rate)
                                          for _ in range(num_post))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm = nn.LayerNorm(dim)
        self.head_drop = nn.Dropout(drop_rate)
        self.reset_classifier(num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Official / timm: trunc-normal(0.02) linear weights, zero biases, pos_embed and cls_token."""
        init_vit_weights_(self, self.pos_embed, self.cls_token)

    # --- trunk -------------------------------------------------------------------------------------
    def _embed(self, x: torch.Tensor, mix=None) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, H/p, W/p, C0) patch tokens (MixToken applied when ``mix`` is given)."""
        h, w = x.shape[-2:]
        if min(h, w) < 2 * self.patch_size:
            raise ConvzooError(f"VOLO with patch_size {self.patch_size} needs inputs of at least "
                               f"{2 * self.patch_size} x {2 * self.patch_size} px, got {h} x {w}")
        x = self.patch_embed(x).permute(0, 2, 3, 1)
        return mix.mix(x) if mix is not None else x

    def _add_pos(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h, w, C) after downsampling -> (B, h * w, C) with the (resized) position embedding added."""
        b, h, w, c = x.shape
        pos = self.pos_embed
        if (h, w) != self.pos_grid:
            pos = resample_abs_pos_embed(pos.reshape(1, -1, c), (h, w), self.pos_grid)
        return self.pos_drop(x.reshape(b, h * w, c) + pos.reshape(1, h * w, c))

    def _tokens(self, x: torch.Tensor, mix=None, stop: int | None = None, maps: list | None = None):
        """Patch embedding through the last Transformer stage: (B, N, C) grid tokens, and (h, w).

        ``maps`` collects each ``feature_info`` stage output as a (B, C, H, W) map (the first ``stop`` only)."""
        x = self.network[0](self._embed(x, mix))  # (B, H/p, W/p, C0): Outlookers
        if maps is not None:
            maps.append(x.permute(0, 3, 1, 2))
            if stop is not None and len(maps) >= stop:
                return x, x.shape[1:3]
        x = self.network[1](x)  # (B, H/2p, W/2p, C)
        grid = x.shape[1:3]
        x = self._add_pos(x)  # (B, N, C)
        for stage in self.network[2:]:
            x = stage(x)
            if maps is not None:
                maps.append(x.transpose(1, 2).reshape(x.shape[0], -1, *grid))
                if stop is not None and len(maps) >= stop:
                    break
        return x, grid

    def _class_attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, 1 + N, C), normalised: the class token prepended and updated by class attention."""
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.post_network:
            x = block(x)
        return self.norm(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, 1 + N, C) normalised tokens, the class token first (timm's layout)."""
        return self._class_attention(self._tokens(x)[0])

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """Outlooker output (stride p) and each Transformer stage's output (stride 2p) as (B, C, H, W) maps."""
        maps: list[torch.Tensor] = []
        self._tokens(x, stop=stop, maps=maps)
        return maps

    # --- heads --------------------------------------------------------------------------------------
    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == "token":
            return x[:, 0]
        if self.global_pool == "avg":
            return x.mean(1)
        if self.global_pool == "max":
            return x.amax(1)
        return 0.5 * (x.mean(1) + x.amax(1))  # avgmax

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, 1 + N, C) tokens -> pooled head + 0.5 * max over grid tokens of the aux head; ``global_pool=""``:
        the head at every grid token, (B, num_classes, N)."""
        x = self.head_drop(x)
        if not self.global_pool:
            return x[:, 1:].transpose(1, 2) if pre_logits else self.head(x[:, 1:]).transpose(1, 2)
        out = self._pool(x)
        if pre_logits:
            return out
        out = self.head(out)
        if self.aux_head is not None:
            out = out + 0.5 * self.aux_head(x[:, 1:]).amax(1)
        return out

    def forward(self, x: torch.Tensor, dense: bool = False, mix=None):
        """Logits (B, num_classes). ``dense=True``: the pair (head logits (B, K), aux logits (B, N, K)) for token
        labelling; ``mix`` (a :class:`convzoo.methods.token_labeling.MixToken`) mixes the patch tokens and
        un-mixes the aux logits. The keywords pass through wrappers (Fabric, DDP) that only route ``forward``."""
        if not dense:
            if mix is not None:
                raise ConvzooError("VOLO mixes tokens only with dense=True (the aux logits are un-mixed)")
            return self.forward_head(self.forward_features(x))
        if self.aux_head is None or not self.global_pool:
            raise ConvzooError("dense VOLO outputs need the aux head (use_aux_head=True, num_classes > 0) and a "
                               "pooled global_pool")
        tokens, (h, w) = self._tokens(x, mix)
        t = self.head_drop(self._class_attention(tokens))
        cls, aux = self.head(self._pool(t)), self.aux_head(t[:, 1:])  # (B, K), (B, N, K)
        if mix is not None:
            aux = mix.unmix(aux.reshape(aux.shape[0], h, w, -1)).reshape(aux.shape)
        return cls, aux

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool = check_volo_pool(global_pool)
        self.num_classes = num_classes
        dev = self.cls_token.device if hasattr(self, "cls_token") else None
        self.head = nn.Linear(self.num_features, num_classes, device=dev) if num_classes > 0 else nn.Identity()
        self.aux_head = (nn.Linear(self.num_features, num_classes, device=dev)
                         if self.use_aux_head and num_classes > 0 else None)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}


# --- variants (official volo.py = timm volo.py; fact sheet G1b "51" Sec. 2-3) --------------------------

# family: layers, embed_dims, num_heads, mlp_ratio, stem_hidden
VOLO_CFGS = {
    "d1": ((4, 4, 8, 2), (192, 384, 384, 384), (6, 12, 12, 12), 3.0, 64),
    "d2": ((6, 4, 10, 4), (256, 512, 512, 512), (8, 16, 16, 16), 3.0, 64),
    "d3": ((8, 8, 16, 4), (256, 512, 512, 512), (8, 16, 16, 16), 3.0, 64),
    "d4": ((8, 8, 16, 4), (384, 768, 768, 768), (12, 16, 16, 16), 3.0, 64),
    "d5": ((12, 12, 20, 4), (384, 768, 768, 768), (12, 16, 16, 16), 4.0, 128),
}
# timm name: timm 1.0.31 parameter count (1000 classes, aux head included), MACs (torch FlopCounterMode on
# this implementation, equal to timm's count on timm's model, tests/models/test_volo.py), timm crop_pct,
# README top-1 (ImageNet-1k, no extra data) and README params
VOLO_VARIANTS = {
    "volo_d1_224": (26_632_040, 6_918_741_504, 0.96, 84.2, "27M"),
    "volo_d1_384": (26_777_960, 22_679_560_704, 1.0, 85.2, "27M"),
    "volo_d2_224": (58_678_336, 14_305_415_168, 0.96, 85.2, "59M"),
    "volo_d2_384": (58_872_896, 46_063_638_528, 1.0, 86.0, "59M"),
    "volo_d3_224": (86_325_072, 20_732_057_600, 0.96, 85.4, "86M"),
    "volo_d3_448": (86_626_128, 96_128_522_240, 1.0, 86.3, "86M"),
    "volo_d4_224": (192_961_520, 44_262_982_656, 0.96, 85.7, "193M"),
    "volo_d4_448": (193_413_104, 196_840_571_904, 1.15, 86.8, "193M"),
    "volo_d5_224": (295_455_584, 72_301_181_952, 0.96, 86.1, "296M"),
    "volo_d5_448": (295_907_168, 314_650_960_896, 1.15, 87.0, "296M"),
    "volo_d5_512": (296_091_488, 424_557_659_136, 1.15, 87.1, "296M"),
}
_CAPS = frozenset({"features", "compile", "channels_last", "bf16"})
_SRC = ("paper Sec. 3.1 (outlook attention, Eq. 2-5), Sec. 3.2 and Table 1 (D1-D5: layers, widths, heads, MLP "
        "ratio, stem); official sail-sg/volo models/volo.py (stride-2 outlook weights, class attention, aux head)")


def _card(name: str) -> ModelCard:
    params, macs, crop, top1, readme = VOLO_VARIANTS[name]
    res = int(name.rsplit("_", 1)[1])
    return ModelCard(
        name=name, paper=51, family="volo", task="classification", input_size=(res, res), test_size=(48, 48),
        params=params,
        params_source=(f"timm 1.0.31 {name}: sum of numel over parameters, 1000 classes, class head + aux head "
                       f"(README {readme}); resolutions differ only by the position embedding"),
        macs=macs,
        macs_source=(f"torch FlopCounterMode at {res} px (conv, linear, attention matmuls; unfold/fold and softmax "
                     f"free), equal to the same count on timm's {name} (tests/models/test_volo.py); fact sheet G1b "
                     f"lists timm's to 0.01 G"),
        reference=f"timm:{name}", capabilities=_CAPS, source=_SRC,
        # timm pretrained_cfg: ImageNet mean/std, bicubic, crop_pct per resolution
        interpolation="bicubic", crop_pct=crop,
        recipes=({"volo_d1_224": ("volo_d1_imagenet_paper", "volo_fashion"),
                  "volo_d1_384": ("volo_d1_384_finetune_paper",)}.get(name, ())),
        notes=(f"ImageNet-1k top-1 {top1} at {res} px (README, token labelling). Output = class head + 0.5 x "
               f"max aux-head logit; model(x, dense=True) gives both heads for token labelling."),
    )


def _volo(name: str, **kwargs) -> VOLO:
    layers, dims, heads, ratio, stem = VOLO_CFGS[name.split("_")[1]]
    base = {"layers": layers, "embed_dims": dims, "num_heads": heads, "mlp_ratio": ratio, "stem_hidden": stem,
            "img_size": int(name.rsplit("_", 1)[1])}
    return VOLO(**{**base, **kwargs})


@register_model(_card("volo_d1_224"))
def volo_d1_224(**kwargs) -> VOLO:
    return _volo("volo_d1_224", **kwargs)


@register_model(_card("volo_d1_384"))
def volo_d1_384(**kwargs) -> VOLO:
    return _volo("volo_d1_384", **kwargs)


@register_model(_card("volo_d2_224"))
def volo_d2_224(**kwargs) -> VOLO:
    return _volo("volo_d2_224", **kwargs)


@register_model(_card("volo_d2_384"))
def volo_d2_384(**kwargs) -> VOLO:
    return _volo("volo_d2_384", **kwargs)


@register_model(_card("volo_d3_224"))
def volo_d3_224(**kwargs) -> VOLO:
    return _volo("volo_d3_224", **kwargs)


@register_model(_card("volo_d3_448"))
def volo_d3_448(**kwargs) -> VOLO:
    return _volo("volo_d3_448", **kwargs)


@register_model(_card("volo_d4_224"))
def volo_d4_224(**kwargs) -> VOLO:
    return _volo("volo_d4_224", **kwargs)


@register_model(_card("volo_d4_448"))
def volo_d4_448(**kwargs) -> VOLO:
    return _volo("volo_d4_448", **kwargs)


@register_model(_card("volo_d5_224"))
def volo_d5_224(**kwargs) -> VOLO:
    return _volo("volo_d5_224", **kwargs)


@register_model(_card("volo_d5_448"))
def volo_d5_448(**kwargs) -> VOLO:
    return _volo("volo_d5_448", **kwargs)


@register_model(_card("volo_d5_512"))
def volo_d5_512(**kwargs) -> VOLO:
    return _volo("volo_d5_512", **kwargs)
