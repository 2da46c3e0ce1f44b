"""SGConv sequence models: "What Makes Convolutional Models Great on Long Sequence Modeling?" (Li, Cai, Zhang,
Chen, Dey, ICLR 2023, arXiv 2210.09298; seed paper 52), Sec. 4.1 (Long Range Arena).

The backbone is the S4 code base's isotropic ``SequenceModel`` with the SGConv layer
(:class:`convzoo.layers.sgconv.SGConv`) as its black box, read from the official ``preview`` branch of
ctlllll/SGConv (``src/models/sequence/{model,block}.py``, ``src/tasks/{encoders,decoders}.py``; facts only):

    encoder      tokens -> Embedding(V, H)  |  values (B, 1, L) -> Linear(1, H)       (B, H, L)
    n_layers x   y = norm(x) if prenorm; y = SGConv(y); y = x + drop_path(dropout1d(y)); norm(y) if postnorm
    norm         the final norm (prenorm models only)
    head         pool over length ("pool": mean, "last": the last position) -> dropout -> Linear(H, classes)

norm is BatchNorm1d over channels ("batch") or LayerNorm over channels ("layer"); the residual dropout is tied
over the length (the configs' ``tie_dropout``), the layer's own dropout (after its GELU) is element-wise.
Retrieval (AAN) encodes both documents with the same backbone and classifies the pooled pair as in the S4
code base's ``RetrievalDecoder`` (nli: [a, b, a - b, a * b] -> Linear(4H, H) -> GELU -> Linear(H, 2)); here
its input is one tensor holding the two documents one after the other, (B, V, 2 L).

Token inputs: a model with ``tokens=True`` takes integer ids (B, L) or (B, 1, L), or a float (B, V, L) of
one-hot (or soft) token vectors, which the same embedding matrix maps (so the contract's float inputs run
through it); ``in_chans`` is the vocabulary size V. Images of the Image / Pathfinder tasks may be given as
(B, 1, H, W): they are flattened row by row into a sequence of H W values, as the LRA pipelines do.

Variants as data (:data:`LRA`): the six LRA experiment configs of the ``preview`` branch
(``configs/experiment/lra/gconv-lra-*.yaml``: layers, d_model, norm and its position, kernel_dim, mode and
decay, dropout, init_scale, pooling; the sequence lengths and vocabularies of ``configs/dataset/*.yaml``),
registered as ``sgconv_lra_{listops,text,retrieval,image,pathfinder,pathx}``, with each config's training
values (batch, lr, weight decay, epochs, steps, warm-up, the sub-kernels' lr). The paper reports no
parameter counts; the cards carry the counts of these configurations (pins). :class:`TSResNet` (``ts_resnet``)
is the residual 1-D CNN time-series baseline of Wang, Yan, Oates 2017 (arXiv 1611.06455: blocks of Conv-BN-ReLU
with kernels 8/5/3 and a shortcut, global average pool) that the CPU-scale UCR comparison trains with the same
parameter budget.

The 2-D model (paper Sec. 4.3, SGConv plugged into vision backbones "as a replacement of the depth-wise
convolution"): :class:`SGConvNeXt` is ConvNeXt (Liu et al. 2022, arXiv 2201.03545; the ConvNeXt of
:mod:`convzoo.models.convnext_dcls`, timm keys) whose 7x7 depth-wise convolutions are depth-wise global 2-D
SGConvs (:class:`convzoo.layers.sgconv.SGConv2d`: d x d sub-kernels, upsampled x2 per scale, weighted
``decay^-i``, norm frozen at the first call, FFT convolution, skip ``D``), one per block, in the stages
``sgconv_stages`` (default all four). Each stage's kernel is built for twice its feature-map side at
``img_size`` (224: sides 56, 28, 14, 7 -> 112, 56, 28, 14; at least d), so that the centred kernel spans offsets
-side..side-1 and every output sees the whole map (the 2-D analogue of the bidirectional 1-D kernel of length L
per direction): a stage has ``S = 1 + ceil(log2(2 side / d))`` scales and ``(S d^2 + 1) C`` parameters per block
instead of ConvNeXt's ``(49 + 1) C``. Registered as ``sgconv_convnext_tiny`` (ConvNeXt-T: depths 3-3-9-3,
dims 96-768). The plug-in experiments have no released code (the official README: "full code release
upcoming") and the paper's text gives no 2-D kernel layout: d = 4 (the layer's default), decay 2 (the 1-D
default, ratio 1/2 per scale) and all stages are this reconstruction's choices, not the paper's; no counts
have been published either (the card's count is a closed form over timm's ConvNeXt-T, in the test).

Departures: the decoders' ``use_lengths`` (pooling only over each sequence's unpadded length) needs per-item
lengths that a tensor input does not carry: pooling runs over all positions; the S4 code base's parameter
bookkeeping (``track_norms``, the state/step API) is left out. Key names: ``encoder.weight`` (official
``encoder.0.weight``), ``layers.{i}.layer.*`` (official ``model.layers.{i}.layer.*``, the SGConv keys
unchanged), ``layers.{i}.norm.*`` (official ``model.layers.{i}.norm.norm.*``), ``norm.*``, ``head.fc.*``
(official ``decoder.0.output_transform.*``). No LRA checkpoint has been released.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import check_drop_rate, drop_path
from convzoo.layers.head import POOL_TYPES, Backbone, SelectAdaptivePool, apply_fc, make_fc
from convzoo.layers.sgconv import SGConv, SGConv2d
from convzoo.models.convnext_dcls import ConvNeXt
from convzoo.registry import ModelCard, register_model

__all__ = ["LRA", "LRAConfig", "SGConvBlock", "SGConvModel", "SGConvNeXt", "SequenceHead", "TSResNet"]

SEQ_POOLS = POOL_TYPES + ("last",)


# --- blocks ---------------------------------------------------------------------------------------------------

class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over dim 1 of (B, C, L) (the official LayerNorm over the features of (B, L, C))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.transpose(1, -1), self.normalized_shape, self.weight, self.bias,
                            self.eps).transpose(1, -1)


def make_norm(kind: str, d: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(d)
    if kind == "layer":
        return ChannelLayerNorm(d)
    raise ConvzooError(f"unknown norm {kind!r}; expected 'batch' or 'layer'")


class SGConvBlock(nn.Module):
    """Residual block (official ``SequenceResidualBlock``): (B, H, L) -> (B, H, L)."""

    def __init__(self, d_model: int, layer: SGConv, norm: str = "batch", prenorm: bool = True,
                 dropout: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.prenorm = prenorm
        self.layer = layer
        self.norm = make_norm(norm, d_model)
        self.drop = nn.Dropout1d(dropout) if dropout > 0 else nn.Identity()  # one mask per channel (tied)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x) if self.prenorm else x
        y = x + self.drop_path(self.drop(self.layer(y)))
        return y if self.prenorm else self.norm(y)


class SequenceHead(nn.Module):
    """Pool over length -> dropout -> Linear (official ``SequenceDecoder``, mode "pool" = avg, or "last")."""

    def __init__(self, in_features: int, num_classes: int, pool: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        self.in_features = in_features
        self.drop = nn.Dropout(drop_rate)
        self.set_pool(pool)
        self.fc = make_fc(in_features * self.global_pool.feat_mult(), num_classes)

    def set_pool(self, pool: str | None) -> None:
        pool = pool or ""
        if pool not in SEQ_POOLS:
            raise ConvzooError(f"unknown global_pool {pool!r}; expected one of {', '.join(map(repr, SEQ_POOLS))}")
        self.pool_type = pool
        self.global_pool = SelectAdaptivePool("" if pool == "last" else pool)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., -1] if self.pool_type == "last" else self.global_pool(x)

    def reset(self, num_classes: int, pool: str | None = None) -> None:
        if pool is not None:
            self.set_pool(pool)
        self.fc = make_fc(self.in_features * self.global_pool.feat_mult(), num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pool(x))  # (B, H) or (B, H, L) for global_pool ""
        return x if pre_logits else apply_fc(self.fc, x)


class RetrievalHead(SequenceHead):
    """AAN pair head: pool both documents, nli features [a, b, a - b, a * b] -> Linear(4H, H) -> GELU -> fc."""

    def __init__(self, in_features: int, num_classes: int, pool: str = "avg", drop_rate: float = 0.0):
        super().__init__(in_features, num_classes, pool, drop_rate)
        self.pre = nn.Linear(4 * in_features, in_features)
        self.act = nn.GELU()
        self.fc = make_fc(in_features, num_classes)

    def set_pool(self, pool: str | None) -> None:
        if pool == "catavgmax":
            raise ConvzooError("the retrieval head takes one pooled vector per document; global_pool 'catavgmax' "
                               "is not available (use avg, max, avgmax, last or '')")
        super().set_pool(pool)

    def reset(self, num_classes: int, pool: str | None = None) -> None:
        if pool is not None:
            self.set_pool(pool)
        self.fc = make_fc(self.in_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        a, b = self.pool(x).chunk(2, dim=0)  # (B, H[, L]) per document
        pair = torch.cat([a, b, a - b, a * b], dim=1)  # (B, 4H[, L])
        x = self.drop(self.act(apply_fc(self.pre, pair)))  # (B, H[, L])
        return x if pre_logits else apply_fc(self.fc, x)


# --- the network -------------------------------------------------------------------------------------------

class SGConvModel(Backbone):
    """Encoder -> ``n_layers`` SGConv residual blocks -> final norm (prenorm) -> pooling head (see module doc).

    Args mirror the official configs: ``l_max`` (the kernels' length), ``kernel_dim``, ``mode``,
    ``decay_min`` / ``decay_max``, ``init_scale``, ``bidirectional``, ``channels``, ``postact``; ``norm``
    ("batch" | "layer") and ``prenorm``; ``dropout`` (residual, tied over length, and inside the layer);
    ``tokens`` (embedding encoder over ``in_chans`` = vocabulary size, else a Linear from ``in_chans``
    values per step); ``retrieval`` (document-pair head); timm's ``global_pool`` (plus "last"),
    ``drop_rate`` (before the classifier) and ``drop_path_rate`` (linear over the blocks).
    """

    def __init__(self, n_layers: int = 4, d_model: int = 256, l_max: int = 1024, kernel_dim: int = 64,
                 mode: str = "cat_randn", decay_min: float = 2.0, decay_max: float = 2.0, init_scale: int = 0,
                 bidirectional: bool = True, channels: int = 1, postact: str | None = "glu", norm: str = "batch",
                 prenorm: bool = True, dropout: float = 0.0, tokens: bool = False, retrieval: bool = False,
                 in_chans: int = 1, num_classes: int = 10, global_pool: str = "avg", drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        check_drop_rate(drop_rate, "drop_rate")
        check_drop_rate(drop_path_rate)
        self.tokens, self.retrieval, self.num_classes = tokens, retrieval, num_classes
        self.num_features = d_model
        if tokens:
            self.encoder = nn.Embedding(in_chans, d_model)  # (V, H)
        else:
            self.encoder = nn.Linear(in_chans, d_model)
        rates = [drop_path_rate * i / max(n_layers - 1, 1) for i in range(n_layers)]
        self.layers = nn.Sequential(*[
            SGConvBlock(d_model, SGConv(d_model, l_max, kernel_dim, channels, bidirectional, init_scale, None, mode,
                                        decay_min, decay_max, "gelu", postact, dropout),
                        norm, prenorm, dropout, rates[i])
            for i in range(n_layers)])
        self.norm = make_norm(norm, d_model) if prenorm else nn.Identity()
        head = RetrievalHead if retrieval else SequenceHead
        self.head = head(d_model, num_classes, global_pool, drop_rate)
        self.feature_info = [{"num_chs": d_model, "reduction": 1, "module": f"layers.{i}"} for i in range(n_layers)]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> (B', H, L): ids (B, L) / (B, 1, L), one-hot (B, V, L), values (B, C, L) or (B, C, H, W)."""
        if self.tokens and not x.is_floating_point():
            ids = x.squeeze(1) if x.dim() == 3 else x  # (B, L)
            x = F.embedding(ids, self.encoder.weight).transpose(1, 2)  # (B, H, L)
        else:
            x = x.flatten(2)  # images: row-major sequence of pixels
            if self.tokens:  # (B, V, L) token vectors through the embedding matrix
                x = F.conv1d(x, self.encoder.weight.t().unsqueeze(-1))
            else:
                x = F.conv1d(x, self.encoder.weight.unsqueeze(-1), self.encoder.bias)
        if self.retrieval:  # (B, H, 2L) -> (2B, H, L): the two documents as one batch
            if x.shape[-1] % 2:
                raise ConvzooError(f"a retrieval input holds two documents of equal length one after the other; "
                                   f"got an odd length {x.shape[-1]}")
            x = torch.cat(x.chunk(2, dim=-1), dim=0)
        return x

    def _pair(self, x: torch.Tensor) -> torch.Tensor:
        """(2B, H, L) -> (B, H, 2L) for retrieval feature maps (the input's layout)."""
        return torch.cat(x.chunk(2, dim=0), dim=-1) if self.retrieval else x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.layers(self.encode(x)))  # (B[x2], H, L)

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """The output of each block (the first ``stop`` only), (B, H, L) (retrieval: (B, H, 2L))."""
        x, out = self.encode(x), []
        for block in list(self.layers)[:stop]:
            x = block(x)
            out.append(self._pair(x))
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes, global_pool)


def _conv_bn(c_in: int, c_out: int, k: int) -> nn.Sequential:
    """'same'-padded Conv1d (Keras / TF: the extra zero of an even kernel on the right) -> BN."""
    return nn.Sequential(nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0), nn.Conv1d(c_in, c_out, k), nn.BatchNorm1d(c_out))


class TSResBlock(nn.Module):
    """Wang et al. ResNet block: Conv(8)-BN-ReLU, Conv(5)-BN-ReLU, Conv(3)-BN; shortcut 1x1 Conv-BN (BN alone when
    the width is kept); add; ReLU. (B, C_in, L) -> (B, C_out, L)."""

    def __init__(self, c_in: int, c_out: int, kernels=(8, 5, 3), drop_path_rate: float = 0.0):
        super().__init__()
        convs, c = [], c_in
        for k in kernels:
            convs.append(_conv_bn(c, c_out, k))
            c = c_out
        self.convs = nn.ModuleList(convs)
        self.shortcut = _conv_bn(c_in, c_out, 1) if c_in != c_out else nn.BatchNorm1d(c_out)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i, conv in enumerate(self.convs):
            y = conv(y)
            y = F.relu(y) if i < len(self.convs) - 1 else y
        return F.relu(self.shortcut(x) + self.drop_path(y))


class TSResNet(Backbone):
    """The residual time-series baseline of Wang, Yan, Oates 2017 (arXiv 1611.06455, Sec. 2.3): residual blocks
    of widths ``widths`` (paper 64, 128, 128), global average pool, Linear."""

    def __init__(self, widths=(64, 128, 128), kernels=(8, 5, 3), in_chans: int = 1, num_classes: int = 2,
                 global_pool: str = "avg", drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        check_drop_rate(drop_rate, "drop_rate")
        check_drop_rate(drop_path_rate)
        rates = [drop_path_rate * i / max(len(widths) - 1, 1) for i in range(len(widths))]
        blocks, c = [], in_chans
        for w, r in zip(widths, rates):
            blocks.append(TSResBlock(c, w, kernels, r))
            c = w
        self.stages = nn.Sequential(*blocks)
        self.num_features, self.num_classes = c, num_classes
        self.head = SequenceHead(c, num_classes, global_pool, drop_rate)
        self.feature_info = [{"num_chs": w, "reduction": 1, "module": f"stages.{i}"} for i, w in enumerate(widths)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)  # (B, C, L)

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        out = []
        for stage in list(self.stages)[:stop]:
            x = stage(x)
            out.append(x)
        return out

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes, global_pool)


# --- variants as data --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LRAConfig:
    """One ``gconv-lra-*.yaml`` experiment: the model and the training values it states."""

    task: str
    n_layers: int
    d_model: int
    l_max: int  # sequence length (dataset config); retrieval: per document
    kernel_dim: int
    mode: str
    decay: tuple[float, float]  # (decay_min, decay_max)
    norm: str
    prenorm: bool
    dropout: float
    pool: str  # decoder mode: "avg" (official "pool") or "last"
    in_chans: int  # vocabulary (tokens) or values per step
    num_classes: int
    tokens: bool = False
    retrieval: bool = False
    init_scale: int = 0
    # training (AdamW; cosine with linear warm-up per step; the sub-kernels in their own group)
    batch: int = 0
    lr: float = 0.0
    weight_decay: float = 0.0
    epochs: int = 0
    steps: int = 0
    warmup_steps: int = 1000  # cosine_warmup default unless the config sets it
    kernel_lr: float = 0.001
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def kwargs(self) -> dict:
        return {"n_layers": self.n_layers, "d_model": self.d_model, "l_max": self.l_max,
                "kernel_dim": self.kernel_dim, "mode": self.mode, "decay_min": self.decay[0],
                "decay_max": self.decay[1], "init_scale": self.init_scale, "norm": self.norm,
                "prenorm": self.prenorm, "dropout": self.dropout, "tokens": self.tokens,
                "retrieval": self.retrieval, "global_pool": self.pool}


_CFG = "ctlllll/SGConv preview configs/experiment/lra/gconv-lra-{}.yaml + configs/dataset/{}.yaml"
LRA: dict[str, LRAConfig] = {
    # vocabularies: the dataset configs' comments (ListOps "Actual size 18", IMDB char level min_freq 15 -> 135,
    # AAN "Full size 98"); classes: src/dataloaders/lra.py d_output
    "listops": LRAConfig("listops", 8, 128, 2048, 1, "cat_randn", (2, 2), "batch", False, 0.0, "avg", 18, 10,
                         tokens=True, batch=50, lr=0.01, weight_decay=0.05, epochs=40, steps=80_000,
                         source=_CFG.format("listops", "listops")),
    "text": LRAConfig("imdb", 6, 256, 4096, 2, "cat_randn", (2, 2), "batch", True, 0.0, "avg", 135, 2,
                      tokens=True, batch=16, lr=0.01, weight_decay=0.05, epochs=32, steps=50_000,
                      source=_CFG.format("imdb", "imdb")),
    "retrieval": LRAConfig("aan", 6, 256, 4000, 1, "cat_randn", (2, 2), "batch", True, 0.0, "avg", 98, 2,
                           tokens=True, retrieval=True, batch=32, lr=0.01, weight_decay=0.05, epochs=20,
                           steps=50_000, warmup_steps=2500, source=_CFG.format("aan", "aan"),
                           notes=("2 GPUs",)),
    "image": LRAConfig("cifar", 6, 512, 1024, 32, "cat_randn_learnable_fixed", (1, 1), "layer", False, 0.2, "avg",
                       1, 10, batch=50, lr=0.01, weight_decay=0.05, epochs=200, steps=200_000,
                       source=_CFG.format("cifar", "cifar") + " (grayscale, l_max 1024)"),
    "pathfinder": LRAConfig("pathfinder", 6, 256, 1024, 32, "cat_randn", (2, 2), "batch", True, 0.2, "last", 1, 2,
                            batch=64, lr=0.004, weight_decay=0.03, epochs=200, steps=500_000, warmup_steps=2500,
                            source=_CFG.format("pathfinder", "pathfinder") + " (resolution 32)"),
    "pathx": LRAConfig("pathx", 6, 256, 16384, 64, "cat_cos", (1, 3), "batch", True, 0.0, "avg", 1, 2,
                       init_scale=1, batch=16, lr=0.004, weight_decay=0.03, epochs=50, steps=125_000,
                       warmup_steps=10_000, source=_CFG.format("pathx", "pathfinder") + " (resolution 128)",
                       notes=("4 GPUs",)),
}

# parameter counts of the configurations (sum of p.numel(), the frozen decay of the Image config included);
# the paper gives none: pins, derived term by term in tests/models/test_sgconv.py
TS_RESNET_PARAMS = 504_258  # ts_resnet at its defaults (1 input channel, 2 classes)
LRA_PARAMS = {"listops": 295_434, "text": 903_426, "retrieval": 1_122_562, "image": 4_349_962,
              "pathfinder": 1_385_474, "pathx": 2_368_514}


# torch.compile traces all six configurations (same blocks); the contract compiles one of them (20-30 s each on
# 2 CPU cores). ONNX: the TorchScript exporter has no rfft / irfft, so no SGConv model claims "onnx".
COMPILED = "sgconv_lra_pathfinder"


def _card(name: str, cfg: LRAConfig, **kw) -> ModelCard:
    length = 2 * cfg.l_max if cfg.retrieval else cfg.l_max
    return ModelCard(
        name=name, paper=52, family="sgconv", task="classification", dims=1, in_chans=cfg.in_chans,
        num_classes=cfg.num_classes, input_size=(length,), test_size=(64,),
        params_source="pin: sum of p.numel() of the official preview-branch config (counted here, term by term "
                      "in the test; the paper reports no counts)",
        capabilities=frozenset({"features", "bf16"} | ({"compile"} if name == COMPILED else set())),
        mean=(0.0,), std=(1.0,), source=f"paper Sec. 4.1 / Table 1 (LRA); {cfg.source}", **kw)


def _register(key: str) -> None:
    cfg = LRA[key]
    name = f"sgconv_lra_{key}"
    card = _card(name, cfg, params=LRA_PARAMS[key], notes=f"LRA {key}: {cfg.n_layers} layers, d_model {cfg.d_model}, kernel_dim "
                                  f"{cfg.kernel_dim}, {cfg.mode}, decay {cfg.decay}, {cfg.norm} "
                                  f"{'pre' if cfg.prenorm else 'post'}norm, pool {cfg.pool}")

    def factory(**kwargs) -> SGConvModel:
        return SGConvModel(**{**cfg.kwargs(), **kwargs})

    factory.__name__ = factory.__qualname__ = name
    register_model(card)(factory)


for _key in LRA:
    _register(_key)


@register_model(ModelCard(
    name="ts_resnet", paper=52, family="sgconv", task="classification", dims=1, in_chans=1, num_classes=2,
    input_size=(2000,), test_size=(64,), params=TS_RESNET_PARAMS,
    params_source="closed form of the Wang et al. 2017 ResNet (widths 64/128/128, kernels 8/5/3, biases, BN affine, "
                  "1x1 Conv-BN shortcuts where the width changes, Linear 128->2), derived term by term in the test",
    capabilities=frozenset({"features", "compile", "onnx", "bf16"}), mean=(0.0,), std=(1.0,),
    source="Wang, Yan, Oates 2017 (arXiv 1611.06455) Sec. 2.3 ResNet: the CNN baseline of the SGConv UCR comparison",
    notes="baseline for the SGConv CPU-scale UCR comparison (not a model of paper 52)"))
def ts_resnet(**kwargs) -> TSResNet:
    return TSResNet(**kwargs)



# --- the 2-D model: ConvNeXt with SGConv2d instead of the depth-wise convolutions ------------------------

class SGConvNeXt(ConvNeXt):
    """ConvNeXt whose depth-wise 7x7 convs are :class:`SGConv2d` in ``sgconv_stages`` (see module doc).

    Args (beyond :class:`convzoo.models.convnext_dcls.ConvNeXt`): ``img_size`` (the input side the kernels are
    built for; other sizes run too: the kernel then covers a smaller or larger share of the map),
    ``kernel_dim`` d, ``decay`` (alpha: scale i weighs alpha^-i of the finest), ``sgconv_stages`` (a bool per
    stage; False keeps ConvNeXt's 7x7 depth-wise conv).
    """

    def __init__(self, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), img_size: int = 224, kernel_dim: int = 4,
                 decay: float = 2.0, sgconv_stages=(True, True, True, True), patch_size: int = 4, **kwargs):
        super().__init__(depths=depths, dims=dims, patch_size=patch_size, **kwargs)
        if len(sgconv_stages) != 4:
            raise ConvzooError(f"sgconv_stages needs one flag per stage (4), got {tuple(sgconv_stages)}")
        self.img_size, self.kernel_dim, self.decay = int(img_size), int(kernel_dim), float(decay)
        for i, (stage, use) in enumerate(zip(self.stages, sgconv_stages)):
            # twice the stage's feature-map side at img_size (at least d: one scale): the centred kernel then
            # spans offsets -side..side-1, so every output sees the whole map (as a bidirectional 1-D kernel)
            side = max(self.kernel_dim, 2 * (self.img_size // (patch_size * 2 ** i)))
            if use:
                for block in stage.blocks:  # (B, C, h, w) -> (B, C, h, w), a global depth-wise kernel
                    block.conv_dw = SGConv2d(dims[i], side, kernel_dim=self.kernel_dim, decay=self.decay)


def sgconv_convnext_params(depths, dims, img_size: int = 224, kernel_dim: int = 4, patch_size: int = 4,
                           sgconv_stages=(True, True, True, True)) -> dict[int, int]:
    """SGConv2d parameters per block of each stage: (S d^2 + 1) C (the layer's closed form)."""
    from convzoo.layers.sgconv import num_scales

    return {i: (num_scales(max(kernel_dim, 2 * (img_size // (patch_size * 2 ** i))), kernel_dim) * kernel_dim ** 2 + 1)
            * dims[i]
            for i in range(4) if sgconv_stages[i]}


# closed form of tests/models/test_sgconv.py::test_sgconv_convnext_counts: timm convnext_tiny (28,589,128)
# - 18 depth-wise 7x7 convs (50 C each) + 18 SGConv2d ((S d^2 + 1) C, S = 6, 5, 4, 3 over the stages)
SGCONV_CONVNEXT_TINY_PARAMS = 28_670_056


@register_model(ModelCard(
    name="sgconv_convnext_tiny", paper=52, family="sgconv", task="classification", input_size=(224, 224),
    test_size=(32, 32), params=SGCONV_CONVNEXT_TINY_PARAMS,
    params_source=("closed form in tests/models/test_sgconv.py::test_sgconv_convnext_counts: timm 1.0.31 "
                   "convnext_tiny's count minus its 18 depth-wise convs plus 18 SGConv2d (S d^2 + 1) C; the paper "
                   "and the official repository publish no count for the 2-D models"),
    reference=None,
    capabilities=frozenset({"features", "channels_last", "bf16"}),
    recipes=("sgconv_convnext_fashion",),
    source=("paper Sec. 4.3 (SGConv replacing depth-wise convolutions in vision models; no released code) on "
            "ConvNeXt-T (Liu et al. 2022 Sec. 2, timm convnext_tiny)"),
    notes=("a reconstruction: kernel_dim 4, decay 2, SGConv2d in all four stages with kernels built for twice the "
           "224 px maps' sides (112/56/28/14: global receptive field); no ONNX (the TorchScript exporter has no rfft2); MACs not stated (FFT "
           "convolutions are not counted by the MAC counter)"),
    interpolation="bicubic", crop_pct=224 / 256,
))
def sgconv_convnext_tiny(**kwargs) -> SGConvNeXt:
    return SGConvNeXt(**kwargs)
