"""ConViT: Improving Vision Transformers with Soft Convolutional Inductive Biases.

Seed paper 36; d'Ascoli, Touvron, Leavitt, Morcos, Biroli, Sagun; ICML 2021; arXiv 2103.10697. Official code:
facebookresearch/convit (``convit.py``, ``models.py``, DeiT code base); timm ``convit.py`` is a faithful port.

Implemented (paper Sec. 3, Table 1, official builders):
- DeiT with 12 pre-norm blocks, patch 16, learned absolute position embedding over the patches; the first
  ``local_up_to_layer`` = 10 blocks use gated positional self-attention (:mod:`convzoo.layers.gpsa`, with the
  local initialisation, locality strength 1), the last two plain multi-head self-attention
  (:class:`convzoo.layers.vit.Attention`); the class token joins the patch tokens only after the GPSA blocks
  (just before block 11), as GPSA's positions are patch positions.
- Width = 48 x heads (Ti 4, S 9, B 16 heads) and the "+" models with 64 x heads (Ti+ 256, S+ 576, B+ 1024,
  "embed_dim 64" in the official code; not registered by timm or the official builders).
- Head: LayerNorm, then the class token ("token" pooling) -> Linear.

Departures from the official / timm code, and why:
- Any input size: the position embedding is resized (bicubic, timm's ``resample_abs_pos_embed``) to the token
  grid, and GPSA takes rectangular grids (timm assumes a square number of patches and the construction size).
- GPSA computes its input-independent positional attention once per call for the batch and runs the content
  attention with ``F.scaled_dot_product_attention`` (see :mod:`convzoo.layers.gpsa`).
- No ``onnx`` capability: at input sizes other than the construction size the position embedding is resized
  with antialiased bicubic interpolation (the shared ``resample_abs_pos_embed``, timm's default), which the
  TorchScript ONNX exporter (opset 17) cannot export; at the construction size nothing is resized.
- ``global_pool``: timm's "token" (default), "avg" and "" plus "max", "avgmax", "catavgmax" over the patch tokens;
  "" scores every patch token: (B, num_classes, N) (:mod:`convzoo.layers.token_pool`).
- ``set_grad_checkpointing`` works (timm refuses it).

State-dict keys equal timm's and the official ones (``patch_embed.proj``, ``pos_embed``, ``cls_token``,
``blocks.0.attn.qk``, ``blocks.0.attn.pos_proj``, ``blocks.0.attn.gating_param``, ``blocks.10.attn.qkv``,
``norm``, ``head``), so released checkpoints load with ``load_state_dict``.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import check_drop_rate
from convzoo.layers.gpsa import GPSA, local_init
from convzoo.layers.head import Backbone
from convzoo.layers.token_pool import apply_token_head, check_token_pool, pool_feat_mult, pool_tokens
from convzoo.layers.vit import Block, init_vit_weights_, resample_abs_pos_embed
from convzoo.registry import ModelCard, register_model

__all__ = ["CONVIT_CFGS", "ConViT", "GPSABlock"]


class GPSABlock(Block):
    """The pre-norm Transformer block with GPSA, which needs the token grid: ``forward(x, grid)``."""

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:  # (B, N, C)
        x = x + self.drop_path1(self.attn(self.norm1(x), grid))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class ConViT(Backbone):
    """DeiT whose first ``local_up_to_layer`` blocks use GPSA; the class token joins after them.

    Args:
        img_size: construction input size (sets the position-embedding grid); other sizes are taken.
        patch_size: patch (and stride) of the linear patch embedding.
        embed_dim: width per head (48 for ConViT, 64 for the "+" models); the model width is embed_dim x heads.
        depth, num_heads, mlp_ratio, qkv_bias: Transformer shape (12, -, 4, False in the paper).
        local_up_to_layer: number of leading GPSA blocks (10).
        locality_strength: alpha of the local initialisation (1).
        num_classes, in_chans, drop_rate, drop_path_rate, global_pool: timm's; attn/proj/pos_drop_rate too.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, embed_dim: int = 48, depth: int = 12,
                 num_heads: int = 4, mlp_ratio: float = 4.0, qkv_bias: bool = False, local_up_to_layer: int = 10,
                 locality_strength: float = 1.0, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 proj_drop_rate: float = 0.0, attn_drop_rate: float = 0.0, pos_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, global_pool: str = "token", eps: float = 1e-6):
        super().__init__()
        if not 0 <= local_up_to_layer <= depth or depth < 1 or num_heads < 1:
            raise ConvzooError(f"ConViT needs depth >= 1, heads >= 1 and 0 <= local_up_to_layer <= depth, got "
                               f"depth={depth}, num_heads={num_heads}, local_up_to_layer={local_up_to_layer}")
        check_drop_rate(drop_rate, "drop_rate")
        check_drop_rate(drop_path_rate)
        dim = embed_dim * num_heads
        self.embed_dim = self.num_features = dim
        self.num_classes, self.global_pool = num_classes, check_token_pool(global_pool)
        self.local_up_to_layer, self.drop_rate = local_up_to_layer, drop_rate
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_chans, dim, patch_size, patch_size)  # key patch_embed.proj
        self.grid = (img_size // patch_size, img_size // patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dim))  # patches only
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_drop = nn.Dropout(pos_drop_rate)
        rates = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.blocks = nn.ModuleList(
            GPSABlock(dim, num_heads, mlp_ratio, qkv_bias, proj_drop_rate, attn_drop_rate, rates[i], eps=eps,
                      attn=GPSA(dim, num_heads, qkv_bias, attn_drop_rate, proj_drop_rate, locality_strength,
                                use_local_init=False))
            if i < local_up_to_layer else
            Block(dim, num_heads, mlp_ratio, qkv_bias, proj_drop_rate, attn_drop_rate, rates[i], eps=eps)
            for i in range(depth))
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.feature_info = [{"num_chs": dim, "reduction": patch_size, "module": f"blocks.{i}"} for i in range(depth)]
        self.head_drop = nn.Dropout(drop_rate)
        self.head = self._make_head(num_classes)
        # timm / official init: trunc-normal(0.02) embeddings and Linears, zero biases; then the local init
        init_vit_weights_(self, self.pos_embed, self.cls_token)
        for blk in self.blocks[:local_up_to_layer]:
            local_init(blk.attn, locality_strength)

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.embed_dim * pool_feat_mult(self.global_pool), num_classes) if num_classes > 0 \
            else nn.Identity()

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    # --- forward --------------------------------------------------------------------------------------------
    def _tokens(self, x: torch.Tensor, stop: int | None = None, maps: list | None = None) -> torch.Tensor:
        x = self.patch_embed.proj(x)  # (B, C, h, w)
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)  # (B, N, C)
        x = self.pos_drop(x + resample_abs_pos_embed(self.pos_embed, grid, self.grid))
        for i, blk in enumerate(self.blocks[:stop]):
            if i == self.local_up_to_layer:  # the class token joins after the GPSA blocks: N -> 1 + N
                x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
            x = blk(x, grid) if i < self.local_up_to_layer else blk(x)
            if maps is not None:
                patches = x if i < self.local_up_to_layer else x[:, 1:]
                maps.append(patches.transpose(1, 2).reshape(x.shape[0], -1, *grid))  # (B, C, h, w)
        if stop is None and self.local_up_to_layer == len(self.blocks):  # all GPSA: the token joins at the end
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self._tokens(x))  # (B, 1 + N, C)

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """Patch-token maps (B, C, h, w) after each block (the first ``stop`` blocks only when given)."""
        maps: list[torch.Tensor] = []
        self._tokens(x, stop if stop is not None else len(self.blocks), maps)
        return maps

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(pool_tokens(x, self.global_pool))
        return x if pre_logits else apply_token_head(self.head, x)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            self.global_pool = check_token_pool(global_pool)
        self.num_classes = num_classes
        self.head = self._make_head(num_classes).to(self.pos_embed.device)


# --- variants ------------------------------------------------------------------------------------------------------
# name: (heads, width per head, params, params_rtol, params source, ImageNet top-1 (paper Table 1), recipe)
_TIMM = "timm 1.0.31 {}, sum of numel over parameters, 1000 classes (paper Table 1 rounds it to {})"
_PLUS = ("paper Table 1: {}M, which is the count without the 1000-class head rounded to 1M (the convention that "
         "also gives Table 1's 6M / 27M / 86M from timm's Ti / S / B counts); rtol = (head + 0.5M) / paper count")


def _plus(heads: int, paper_m: int) -> tuple:
    head = 64 * heads * 1000 + 1000  # Linear(64 heads -> 1000) weight + bias
    rtol = (head + 0.5e6) / (paper_m * 1e6)
    return heads, 64, paper_m * 1_000_000, rtol, _PLUS.format(paper_m)


CONVIT_CFGS: dict[str, tuple] = {
    "convit_tiny": (4, 48, 5_710_512, 0.0, _TIMM.format("convit_tiny", "6M"), 73.1),
    "convit_small": (9, 48, 27_777_322, 0.0, _TIMM.format("convit_small", "27M"), 81.3),
    "convit_base": (16, 48, 86_540_040, 0.0, _TIMM.format("convit_base", "86M"), 82.4),
    # the "+" models (64 x heads): not registered by timm or the official builders (official --embed_dim 64)
    "convit_tiny_plus": (*_plus(4, 10), 76.7),
    "convit_small_plus": (*_plus(9, 48), 82.2),
    "convit_base_plus": (*_plus(16, 152), 82.5),
}
# timm 1.0.31 MACs under FlopCounterMode on the meta device at 224 px (fact sheet: 1.25 / 5.75 / 17.51 G)
_TIMM_MACS = {"convit_tiny": 1_252_360_320, "convit_small": 5_746_563_360, "convit_base": 17_505_452_544}
_CAPS = frozenset({"features", "compile", "channels_last"})  # onnx: see the module docstring
_SRC = ("paper Sec. 3 (GPSA Eq. 5, local init Eq. 7, class token after the GPSA blocks) and Table 1; official "
        "convit.py / models.py (local_up_to_layer 10, locality_strength 1); timm convit.py key layout")


def _card(name: str) -> ModelCard:
    heads, per_head, params, rtol, psrc, top1 = CONVIT_CFGS[name]
    ref_macs = _TIMM_MACS.get(name)
    width, n = heads * per_head, 14 * 14
    return ModelCard(
        name=name, paper=36, family="convit", task="classification", input_size=(224, 224), test_size=(48, 48),
        params=params, params_rtol=rtol, params_source=psrc,
        # GPSA multiplies V by the content and the positional attention separately (SDPA + P @ V) instead of by
        # their materialised mix: N^2 C more MACs in each of the 10 GPSA layers than timm
        macs=ref_macs + 10 * n * n * width if ref_macs else None,
        macs_source=f"timm 1.0.31 {name} under torch FlopCounterMode on the meta device at 224 px "
                    f"({ref_macs} MACs) + 10 x 196^2 x {width} for GPSA's separate positional product" if ref_macs else "",
        reference=None if name.endswith("_plus") else f"timm:{name}", capabilities=_CAPS,
        # timm pretrained_cfg: ImageNet mean/std, bicubic (timm default for these), crop_pct 0.875
        interpolation="bicubic", crop_pct=0.875,
        recipes={"convit_tiny": ("convit_tiny_imagenet_paper", "convit_fashion")}.get(name, ()),
        source=_SRC,
        notes=f"{heads} heads x {per_head} = width {heads * per_head}, 10 GPSA + 2 MHSA blocks; ImageNet top-1 {top1} "
              f"(paper).",
    )


def _convit(name: str, **kwargs) -> ConViT:
    heads, per_head, *_ = CONVIT_CFGS[name]
    return ConViT(**{"embed_dim": per_head, "num_heads": heads, "local_up_to_layer": 10, "locality_strength": 1.0,
                     **kwargs})


@register_model(_card("convit_tiny"))
def convit_tiny(**kwargs) -> ConViT:
    return _convit("convit_tiny", **kwargs)


@register_model(_card("convit_small"))
def convit_small(**kwargs) -> ConViT:
    return _convit("convit_small", **kwargs)


@register_model(_card("convit_base"))
def convit_base(**kwargs) -> ConViT:
    return _convit("convit_base", **kwargs)


@register_model(_card("convit_tiny_plus"))
def convit_tiny_plus(**kwargs) -> ConViT:
    return _convit("convit_tiny_plus", **kwargs)


@register_model(_card("convit_small_plus"))
def convit_small_plus(**kwargs) -> ConViT:
    return _convit("convit_small_plus", **kwargs)


@register_model(_card("convit_base_plus"))
def convit_base_plus(**kwargs) -> ConViT:
    return _convit("convit_base_plus", **kwargs)
