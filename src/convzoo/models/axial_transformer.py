"""Axial Transformer: an autoregressive density model of images built from axial attention.

"Axial Attention in Multidimensional Transformers" (Ho, Kalchbrenner, Weissenborn, Salimans; arXiv
1912.12180); seed paper 46. Official code: google-research/google-research ``axial/`` (TF1:
``transformers.py`` ``Transformer3d`` / ``Transformer2d``, ``models.py`` ``SlicedChannelModel``, ``nn.py``,
``config_imagenet32.py`` / ``config_imagenet64.py``).

Implemented here (paper Sec. 3-4, official ``Transformer3d``):
- Channel slicing: an image ``(B, C, H, W)`` of integer levels ``0 .. K-1`` is generated one channel
  after the other; channel ``c`` is modelled by a 2-D autoregressive decoder conditioned on channels
  ``< c``. :meth:`AxialTransformer.slice_logits` gives the logits of one channel per example (the
  training loss uses a random channel per example); :meth:`AxialTransformer.forward` gives all ``C``
  slices, ``(B, C, H, W, K)``, whose NLL is the model's likelihood (bits/dim in
  :mod:`convzoo.tasks.density`).
- Conditioning ("exterior") encoder: ``[previous channels / (K-1) (current and later ones zeroed),
  one-hot mask of the current channel]`` -> 3x3 conv to ``d`` -> + row and column position
  embeddings -> alternating unmasked row / unmasked column blocks. Its output ``cond`` is added to the
  decoder's inputs.
- Outer decoder (:class:`Decoder2d`): token embedding + position embeddings + cond -> alternating
  unmasked-row / masked-column blocks -> shift down one row (``u``: each pixel sees the rows above).
- Inner decoder: shift right (the embedding of the pixel to the left) + ``u`` + position embeddings +
  cond -> masked-row blocks -> final LayerNorm -> dense to ``K`` logits.
- Blocks (:class:`TransformerBlock`): pre-LayerNorm, axial attention (:mod:`convzoo.layers.axial_attention`)
  and an MLP ``d -> d * hdim_factor -> d`` with the activation ``x * sigmoid(1.702 x)``, each a residual
  branch with dropout; the output projections start at ``res_init_scale`` (1e-10) and the logits layer
  at ``logits_init_scale`` (1e-10), so an initial model is uniform over the ``K`` levels.
- Sampling: :meth:`AxialTransformer.sample` with ``fast=True`` is the semi-parallel sampler (outer
  context once per row, inner decoder per pixel on that row: official ``sample_fast``), ``fast=False``
  the naive sampler that runs the whole model once per pixel (``sample_slow``). Both take the same
  Gumbel noise ``(B, C, H, W, K)`` and give identical samples.
- Configurations: ImageNet 32x32 and 64x64 (official configs: d 1536 / 2048, 16 heads, 8/8/8 layers,
  MLP factor 1, dropout 0.04 / 0.0; K = 256) and a small one for sklearn's 8x8 digits (17 levels).

Departures: none in the computation. Sizes: the position tables fix the image size, so another size
is refused in one line. Level scaling of the conditioning input is ``/(K-1)`` (``/255`` officially, the
same for K = 256). Module names follow the official variable scopes (``exterior_input_conv``,
``exterior_layers.{i}``, ``transformer2d.outer_layers.{i}.attn.q``, ``final_dense``), with torch's
``weight`` / ``bias`` for ``w`` / ``b`` (a TF checkpoint maps by name, transposing dense ``w``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.axial_attention import AxialAttention, variance_scaling_
from convzoo.registry import ModelCard, register_model

__all__ = ["AXIAL_CFGS", "AxialTransformer", "Decoder2d", "Mlp", "TransformerBlock", "closed_form_params",
           "gumbel_noise", "sample", "shift_down", "shift_right"]

ROW, COL = 2, 1  # attention axes of (B, H, W, D)


# --- small pieces ----------------------------------------------------------------------------------
def shift_down(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, D): row r takes row r-1; row 0 becomes zeros (official ``nn.shift_down``)."""
    return F.pad(x[:, :-1], (0, 0, 0, 0, 1, 0))


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, D): column c takes column c-1; column 0 becomes zeros (official ``nn.shift_right``)."""
    return F.pad(x[:, :, :-1], (0, 0, 1, 0))


def _embed(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Levels (...) -> table rows (..., D); one-hot codes (..., K) -> their mix of rows (same values)."""
    return x @ table if x.is_floating_point() else table[x]


def _emb(n: int, dim: int, scale: float) -> nn.Parameter:
    """Official ``emb_init``: normal with std ``scale / sqrt(dim)``."""
    return nn.Parameter(torch.randn(n, dim) * (scale / dim**0.5))


class Mlp(nn.Module):
    def __init__(self, dim: int, hdim_factor: int = 1, init_scale: float = 1.0):
        super().__init__()
        self.proj_in = nn.Linear(dim, dim * hdim_factor)
        self.proj_out = nn.Linear(dim * hdim_factor, dim)
        for lin, s in ((self.proj_in, 1.0), (self.proj_out, init_scale)):
            variance_scaling_(lin.weight, s)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj_in(x)
        return self.proj_out(h * torch.sigmoid(1.702 * h))  # official nn.nonlinearity


class TransformerBlock(nn.Module):
    """Pre-LN block: ``x + drop(attn(LN x))``, then ``x + drop(mlp(LN x))``; attention along ``axis``."""

    def __init__(self, dim: int, axis: int, num_heads: int, causal: bool, hdim_factor: int = 1,
                 res_init_scale: float = 1e-10, drop: float = 0.0):
        super().__init__()
        self.layernorm_attn = nn.LayerNorm(dim, eps=1e-5)
        self.attn = AxialAttention(dim, num_heads, axis=axis, causal=causal, out_init_scale=res_init_scale)
        self.layernorm_mlp = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, hdim_factor, res_init_scale)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, D)
        x = x + self.drop(self.attn(self.layernorm_attn(x)))
        return x + self.drop(self.mlp(self.layernorm_mlp(x)))


def _stack(n: int, dim: int, heads: int, kinds: Sequence[tuple[int, bool]], **kw) -> nn.ModuleList:
    """``n`` blocks cycling through ``kinds`` = [(axis, causal), ...]."""
    blocks = []
    for i in range(n):
        axis, causal = kinds[i % len(kinds)]
        blocks.append(TransformerBlock(dim, axis, heads, causal, **kw))
    return nn.ModuleList(blocks)


# --- one channel: outer + inner decoder --------------------------------------------------------------
class Decoder2d(nn.Module):
    """The autoregressive model of one channel (official ``Transformer2d``)."""

    def __init__(self, img_size: tuple[int, int], num_levels: int, dim: int, num_heads: int, num_outer: int,
                 num_inner: int, hdim_factor: int = 1, emb_init_scale: float = 5.0, res_init_scale: float = 1e-10,
                 logits_init_scale: float = 1e-10, drop: float = 0.0):
        super().__init__()
        if num_outer % 2:
            raise ValueError(f"num_outer_layers must be even (row / column pairs), got {num_outer}")
        h, w = img_size
        self.embs = _emb(num_levels, dim, emb_init_scale)
        self.pos_embs_h = _emb(h, dim, emb_init_scale)
        self.pos_embs_w = _emb(w, dim, emb_init_scale)
        kw = {"hdim_factor": hdim_factor, "res_init_scale": res_init_scale, "drop": drop}
        self.outer_layers = _stack(num_outer, dim, num_heads, [(ROW, False), (COL, True)], **kw)
        self.inner_layers = _stack(num_inner, dim, num_heads, [(ROW, True)], **kw)
        self.final_ln = nn.LayerNorm(dim, eps=1e-5)
        self.final_dense = nn.Linear(dim, num_levels)
        variance_scaling_(self.final_dense.weight, logits_init_scale)
        nn.init.zeros_(self.final_dense.bias)

    def pos_embs(self) -> torch.Tensor:
        return self.pos_embs_h[:, None] + self.pos_embs_w[None]  # (H, W, D)

    def upper_context(self, h: torch.Tensor, pos: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Embedded image (B, H, W, D) -> what each pixel may see of the rows above it (B, H, W, D)."""
        u = h + pos + cond
        for block in self.outer_layers:
            u = block(u)
        return shift_down(u)

    def row_autoregressive(self, h: torch.Tensor, u: torch.Tensor, pos: torch.Tensor,
                           cond: torch.Tensor) -> torch.Tensor:
        """Inner decoder over (B, rows, W, D): pixel to the left + upper context; masked rows only."""
        r = shift_right(h) + u + pos + cond
        for block in self.inner_layers:
            r = block(r)
        return r

    def to_logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.final_dense(self.final_ln(h))  # (..., K)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Levels (B, H, W) and conditioning (B, H, W, D) -> logits (B, H, W, K)."""
        h = _embed(x, self.embs)  # (B, H, W, D)
        pos = self.pos_embs()
        return self.to_logits(self.row_autoregressive(h, self.upper_context(h, pos, cond), pos, cond))

    @torch.no_grad()
    def sample_slow(self, noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Naive sampler: the whole decoder once per pixel. noise (B, H, W, K) -> levels (B, H, W)."""
        b, hh, ww, _ = noise.shape
        img = torch.zeros(b, hh, ww, dtype=torch.long, device=noise.device)
        for i in range(hh * ww):
            r, c = divmod(i, ww)
            img[:, r, c] = (self(img, cond)[:, r, c] + noise[:, r, c]).argmax(-1)
        return img

    @torch.no_grad()
    def sample_fast(self, noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Semi-parallel sampler: outer decoder once per row, inner decoder per pixel of that row."""
        b, hh, ww, _ = noise.shape
        pos = self.pos_embs()
        img = torch.zeros(b, hh, ww, dtype=torch.long, device=noise.device)
        for r in range(hh):
            u = self.upper_context(self.embs[img], pos, cond)[:, r:r + 1]  # (B, 1, W, D)
            row = img[:, r:r + 1].clone()  # (B, 1, W), zeros
            for c in range(ww):
                logits = self.to_logits(self.row_autoregressive(self.embs[row], u, pos[r:r + 1], cond[:, r:r + 1]))
                row[:, 0, c] = (logits[:, 0, c] + noise[:, r, c]).argmax(-1)
            img[:, r] = row[:, 0]
        return img


# --- the channel-sliced model --------------------------------------------------------------------------
class AxialTransformer(nn.Module):
    """Channel-sliced Axial Transformer (official ``Transformer3d``) over integer images ``(B, C, H, W)``.

    ``num_classes`` is the number of levels ``K`` of a sub-pixel (256 for 8-bit images).
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 256, img_size: Sequence[int] = (32, 32),
                 embed_dim: int = 1536, num_heads: int = 16, num_exterior_layers: int = 8, num_outer_layers: int = 8,
                 num_inner_layers: int = 8, hdim_factor: int = 1, drop_rate: float = 0.0, emb_init_scale: float = 5.0,
                 res_init_scale: float = 1e-10, logits_init_scale: float = 1e-10):
        super().__init__()
        if num_exterior_layers % 2:
            raise ValueError(f"num_exterior_layers must be even (row / column pairs), got {num_exterior_layers}")
        self.in_chans, self.num_classes, self.img_size = in_chans, num_classes, tuple(img_size)
        self.embed_dim = embed_dim
        h, w = self.img_size
        self.pos_embs_h = _emb(h, embed_dim, emb_init_scale)
        self.pos_embs_w = _emb(w, embed_dim, emb_init_scale)
        self.exterior_input_conv = nn.Conv2d(2 * in_chans, embed_dim, 3, padding=1)
        variance_scaling_(self.exterior_input_conv.weight, 1.0)
        nn.init.zeros_(self.exterior_input_conv.bias)
        kw = {"hdim_factor": hdim_factor, "res_init_scale": res_init_scale, "drop": drop_rate}
        self.exterior_layers = _stack(num_exterior_layers, embed_dim, num_heads, [(ROW, False), (COL, False)], **kw)
        self.transformer2d = Decoder2d(self.img_size, num_classes, embed_dim, num_heads, num_outer_layers,
                                       num_inner_layers, emb_init_scale=emb_init_scale, logits_init_scale=logits_init_scale,
                                       **kw)

    def _check(self, x: torch.Tensor) -> None:
        one_hot = x.is_floating_point() and x.dim() == 5 and x.shape[-1] == self.num_classes
        if not one_hot and (x.is_floating_point() or x.dim() != 4):
            raise ConvzooError(f"AxialTransformer takes integer images (B, C, H, W) of levels 0..{self.num_classes - 1} "
                               f"(or their one-hot codes (B, C, H, W, K)), got a {x.dtype} tensor of shape {tuple(x.shape)}")
        if tuple(x.shape[1:4]) != (self.in_chans, *self.img_size):
            raise ConvzooError(f"this AxialTransformer models {self.in_chans}x{self.img_size[0]}x{self.img_size[1]} "
                               f"images (its position tables fix the size), got {tuple(x.shape[1:])}")

    def conditioning(self, x: torch.Tensor, slices: torch.Tensor) -> torch.Tensor:
        """Encoder over the channels before ``slices`` (B,) of ``x`` (B, C, H, W) -> cond (B, H, W, D)."""
        chans = torch.arange(self.in_chans, device=x.device)
        prev = (chans[None] < slices[:, None])[:, :, None, None]  # (B, C, 1, 1)
        levels = x if not x.is_floating_point() else x @ torch.arange(self.num_classes, dtype=x.dtype, device=x.device)
        h = torch.where(prev, levels, 0).to(self.pos_embs_h.dtype) / (self.num_classes - 1)
        mask = (chans[None] == slices[:, None])[:, :, None, None].to(h.dtype).expand_as(h)
        h = self.exterior_input_conv(torch.cat([h, mask], 1)).permute(0, 2, 3, 1)  # (B, H, W, D)
        h = h + self.pos_embs_h[:, None] + self.pos_embs_w[None]
        for block in self.exterior_layers:
            h = block(h)
        return h

    def slice_logits(self, x: torch.Tensor, slices: torch.Tensor) -> torch.Tensor:
        """Logits (B, H, W, K) of channel ``slices[b]`` of each image ``x[b]``, given its earlier channels.

        ``x``: levels (B, C, H, W), or one-hot codes (B, C, H, W, K) (float: the same logits, differentiable
        with respect to every sub-pixel, as the causality test uses).
        """
        self._check(x)
        cond = self.conditioning(x, slices)
        cur = x[torch.arange(x.shape[0], device=x.device), slices]  # (B, H, W) [or (B, H, W, K)]
        return self.transformer2d(cur, cond)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Integer images (B, C, H, W) -> logits of every sub-pixel (B, C, H, W, K), all slices in one batch."""
        self._check(x)
        b, c = x.shape[:2]
        slices = torch.arange(c, device=x.device).repeat_interleave(b)  # (C*B,)
        logits = self.slice_logits(x.repeat(c, *[1] * (x.dim() - 1)), slices)  # (C*B, H, W, K)
        return logits.view(c, b, *logits.shape[1:]).transpose(0, 1)

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, fast: bool = True) -> torch.Tensor:
        """Gumbel noise (B, C, H, W, K) -> samples (B, C, H, W): channel by channel, each with the
        semi-parallel (``fast``) or the naive per-pixel decoder sampler."""
        b, c, h, w, k = noise.shape
        if (c, h, w, k) != (self.in_chans, *self.img_size, self.num_classes):
            raise ConvzooError(f"noise must have shape (B, {self.in_chans}, {self.img_size[0]}, {self.img_size[1]}, "
                               f"{self.num_classes}), got {tuple(noise.shape)}")
        x = torch.zeros(b, c, h, w, dtype=torch.long, device=noise.device)
        dec = self.transformer2d.sample_fast if fast else self.transformer2d.sample_slow
        for ch in range(c):
            cond = self.conditioning(x, torch.full((b,), ch, device=x.device))
            x[:, ch] = dec(noise[:, ch].to(cond.dtype), cond)
        return x


def gumbel_noise(shape: Sequence[int], generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard Gumbel noise: ``argmax(logits + noise)`` draws from ``softmax(logits)``."""
    u = torch.rand(*shape, generator=generator, dtype=torch.float64).clamp_(1e-20, 1 - 1e-12)
    return (-torch.log(-torch.log(u))).to(dtype)


@torch.no_grad()
def sample(model: AxialTransformer, num: int, generator: torch.Generator | None = None, fast: bool = True,
           temperature: float = 1.0) -> torch.Tensor:
    """``num`` images (num, C, H, W) of levels drawn from ``model`` (eval mode); ``temperature`` scales the
    noise, as the official ``utils.gumbel(temperature)`` (``samples_0.99``)."""
    p = next(model.parameters())
    noise = gumbel_noise((num, model.in_chans, *model.img_size, model.num_classes), generator) * temperature
    return model.sample(noise.to(p.device, p.dtype), fast=fast)


# --- variants ------------------------------------------------------------------------------------------
# official config_imagenet{32,64}.py "ardec" (emb_init_scale 5.0, res_init_scale 1e-10, hdim_factor 1)
AXIAL_CFGS = {
    "axial_transformer_imagenet32": {
        "img_size": (32, 32), "in_chans": 3, "num_classes": 256, "embed_dim": 1536, "num_heads": 16,
        "num_exterior_layers": 8, "num_outer_layers": 8, "num_inner_layers": 8, "drop_rate": 0.04},
    "axial_transformer_imagenet64": {
        "img_size": (64, 64), "in_chans": 3, "num_classes": 256, "embed_dim": 2048, "num_heads": 16,
        "num_exterior_layers": 8, "num_outer_layers": 8, "num_inner_layers": 8, "drop_rate": 0.0},
    # sklearn digits: 8x8 grey, 17 levels (0..16); not in the paper
    "axial_transformer_digits": {
        "img_size": (8, 8), "in_chans": 1, "num_classes": 17, "embed_dim": 128, "num_heads": 4,
        "num_exterior_layers": 2, "num_outer_layers": 4, "num_inner_layers": 4, "drop_rate": 0.0},
}


def closed_form_params(img_size, in_chans, num_classes, embed_dim, num_exterior_layers, num_outer_layers,
                       num_inner_layers, hdim_factor: int = 1, **_) -> int:
    """Trainable parameters of a configuration, term by term (blocks, tables, conv, logits layer)."""
    d, (h, w), k, c, f = embed_dim, img_size, num_classes, in_chans, hdim_factor
    block = 4 * (d * d + d) + (d * f * d + d * f) + (d * f * d + d) + 2 * 2 * d  # q k v out, MLP, two LayerNorms
    blocks = (num_exterior_layers + num_outer_layers + num_inner_layers) * block
    exterior = (h + w) * d + 9 * 2 * c * d + d  # position tables, 3x3 conv (2C -> d)
    decoder = k * d + (h + w) * d + 2 * d + d * k + k  # embeddings, position tables, final LN, logits
    return blocks + exterior + decoder


_SRC = "paper Sec. 3-4; official axial/transformers.py (Transformer3d, Transformer2d), models.py, nn.py"
_NOTES = {
    "axial_transformer_imagenet32": "ImageNet 32x32: 3.76 bits/dim (paper, recalled in the sheet)",
    "axial_transformer_imagenet64": "ImageNet 64x64: 3.44 bits/dim (paper, recalled in the sheet)",
    "axial_transformer_digits": "a small configuration for sklearn's 8x8 digits with 17 grey levels (not in the paper)",
}


def _card(name: str) -> ModelCard:
    cfg = AXIAL_CFGS[name]
    paper_size = name != "axial_transformer_digits"
    return ModelCard(
        name=name, paper=46, family="axial_transformer", task="density_estimation", in_chans=cfg["in_chans"],
        num_classes=cfg["num_classes"], input_size=cfg["img_size"], test_size=cfg["img_size"],
        params=closed_form_params(**cfg),
        params_source=("sum of numel of the trainable variables of the official config "
                       f"(config_{name.split('_')[-1]}.py 'ardec'), by the closed form 24 x (6d^2 + 10d) + tables, "
                       "input conv and logits layer (tests/models/test_axial_transformer.py; the sheet's "
                       f"~{'341' if '32' in name else '606'}M is an estimate of the same)") if paper_size else
                      "sum of numel of the model (the closed form of tests/models/test_axial_transformer.py)",
        reference=None, capabilities=frozenset({"compile"}), mean=(0.0,) * cfg["in_chans"],
        std=(1.0,) * cfg["in_chans"], crop_pct=1.0, source=_SRC,
        recipes=(("axial_transformer_imagenet32_paper",) if name == "axial_transformer_imagenet32" else
                 ("axial_digits",) if name == "axial_transformer_digits" else ()),
        notes=_NOTES[name] + "; input: integer levels (B, C, H, W), output: logits (B, C, H, W, K)")


def _create(name: str, **kwargs) -> AxialTransformer:
    return AxialTransformer(**{**AXIAL_CFGS[name], **kwargs})


@register_model(_card("axial_transformer_imagenet32"))
def axial_transformer_imagenet32(**kwargs) -> AxialTransformer:
    return _create("axial_transformer_imagenet32", **kwargs)


@register_model(_card("axial_transformer_imagenet64"))
def axial_transformer_imagenet64(**kwargs) -> AxialTransformer:
    return _create("axial_transformer_imagenet64", **kwargs)


@register_model(_card("axial_transformer_digits"))
def axial_transformer_digits(**kwargs) -> AxialTransformer:
    return _create("axial_transformer_digits", **kwargs)
