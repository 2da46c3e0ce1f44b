"""LRCN image captioning: a CNN image feature and word embeddings into a stack of LSTMs (paper 42).

Donahue, Hendricks, Guadarrama, Rohrbach, Venugopalan, Saenko, Darrell, "Long-term Recurrent
Convolutional Networks for Visual Recognition and Description", CVPR 2015 / TPAMI 2017,
arXiv 1411.4389; seed paper 42. The activity-recognition half (per-frame CNN, clip markers,
temporal averaging) is :mod:`convzoo.models.lrcn`; this file is the captioning half (paper Sec. 5).

What is implemented (paper Sec. 5.1, official BVLC/caffe ``examples/coco_caption/lrcn.prototxt``):

* the image feature ``phi_V(x)``: CaffeNet up to ``fc8`` (1000-d; ``encoder="caffenet"``, the paper's
  network, 227 px) or a small CNN trained jointly (``encoder="small"``, the CPU-scale recipes);
* a word embedding (no bias, 1000-d) of the previous word, fed to the bottom LSTM;
* 1-4 LSTM layers (1000 hidden units). The image feature enters one layer as a *static* input at every
  time step, concatenated with that layer's input (``W [x_t; phi_V] = W_x x_t + W_s phi_V``, which
  is Caffe's LSTM with a static input): the *unfactored* variants feed it to the bottom LSTM, the
  *factored* ones to the second (the bottom LSTM sees language only). ``image_input="first_step"``
  feeds the image only at the first step (the paper's alternative, as in Vinyals et al.);
* a linear layer over the vocabulary (8,801 words in the official COCO vocabulary) on the top LSTM.

``model(images, tokens)`` returns next-word logits ``(B, T, V)`` for the ``T`` input words
(``tokens[:, 0]`` is ``<bos>``); ``model(images)`` alone gives the logits of the first word
``(B, 1, V)``. Step-wise decoding (greedy, beam search, sampling, retrieval by sentence likelihood)
is :mod:`convzoo.methods.caption_decoding`; it uses :meth:`LRCNCaptioner.encode`,
:meth:`~LRCNCaptioner.init_state` and :meth:`~LRCNCaptioner.step`.

Variants (paper Table 5 / Sec. 5.1 "LRCN_1u, 2u, 2f, 3f, 4f"): ``lrcn_caption_2f`` is the official
solver's net (factored, 2 layers); ``lrcn_caption_small`` is the CPU-scale model.

Departures: PyTorch's LSTM has two bias vectors (``b_ih + b_hh``) where Caffe's has one, so each
layer has ``4 H`` = 4,000 more parameters than the Caffe net (the official 2f net: 98,584,025 with
Caffe's biases, 98,592,025 here; both closed forms are in the test). The CaffeNet weights come from
ImageNet in the paper; none ship here. Which LSTM the image enters in the 3- and 4-layer factored
nets (the second, with the extra layers on top) is our reading of the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.registry import ModelCard, register_model

PAD, BOS, EOS, UNK = 0, 1, 2, 3  # special token ids of the vocabularies convzoo builds
COCO_VOCAB = 8801  # official COCO vocabulary of the coco_caption example (words seen >= 5 times + EOS)


# --- image encoders: (B, C, H, W) -> (B, image_dim) ---------------------------------------------------
class CaffeNet(nn.Module):
    """BVLC reference CaffeNet (AlexNet, grouped conv2/4/5) up to fc8: (B, 3, 227, 227) -> (B, out_dim)."""

    def __init__(self, in_chans: int = 3, out_dim: int = 1000, drop_rate: float = 0.5):
        super().__init__()

        def lrn():
            return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)

        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 96, 11, stride=4), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2), lrn(),  # 96 x 27 x 27
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2), lrn(),  # 256 x 13
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),  # 256 x 6 x 6
        )
        self.pool = nn.AdaptiveMaxPool2d(6)  # identity at 227 px; lets smaller test inputs through
        self.fc = nn.Sequential(
            nn.Flatten(1), nn.Linear(256 * 36, 4096), nn.ReLU(inplace=True), nn.Dropout(drop_rate),  # fc6
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(drop_rate),  # fc7
        )
        self.fc8 = nn.Linear(4096, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc8(self.fc(self.pool(self.features(x))))


class SmallCNN(nn.Module):
    """CPU-scale encoder: ``len(widths)`` blocks of conv3x3-BN-ReLU + 2x2 max-pool, global average pool,
    linear: (B, C, H, W) -> (B, out_dim)."""

    def __init__(self, in_chans: int = 3, out_dim: int = 128, widths: tuple[int, ...] = (32, 64, 128, 128)):
        super().__init__()
        layers, c = [], in_chans
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


ENCODERS = {"caffenet": CaffeNet, "small": SmallCNN}


# --- the captioner -------------------------------------------------------------------------------------
class LRCNCaptioner(nn.Module):
    """Image feature + previous word -> LSTM stack -> next-word logits (paper Sec. 5.1, Fig. 4)."""

    def __init__(self, vocab_size: int = COCO_VOCAB, in_chans: int = 3, encoder: str = "caffenet",
                 encoder_kwargs: dict | None = None, image_dim: int = 1000, embed_dim: int = 1000,
                 hidden: int = 1000, num_layers: int = 2, factored: bool = True, image_layer: int | None = None,
                 image_input: str = "every_step", drop_rate: float = 0.0, freeze_encoder: bool = False,
                 max_len: int = 20):
        super().__init__()
        if encoder not in ENCODERS:
            raise ConvzooError(f"encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
        if not 1 <= num_layers <= 4:
            raise ConvzooError(f"LRCN captioning nets have 1-4 LSTM layers, got num_layers={num_layers}")
        if factored and num_layers < 2:
            raise ConvzooError("a factored LRCN needs at least 2 LSTM layers (the image enters the second)")
        if image_input not in ("every_step", "first_step"):
            raise ConvzooError(f"image_input must be 'every_step' or 'first_step', got {image_input!r}")
        self.vocab_size, self.in_chans, self.max_len = int(vocab_size), in_chans, int(max_len)
        self.pad_id, self.bos_id, self.eos_id = PAD, BOS, EOS
        self.num_layers, self.hidden, self.factored, self.image_input = num_layers, hidden, factored, image_input
        self.image_layer = (1 if factored else 0) if image_layer is None else int(image_layer)
        if not 0 <= self.image_layer < num_layers:
            raise ConvzooError(f"image_layer {self.image_layer} is not one of the {num_layers} LSTM layers")
        self.encoder = ENCODERS[encoder](in_chans=in_chans, out_dim=image_dim, **(encoder_kwargs or {}))
        self.embed = nn.Embedding(vocab_size, embed_dim)  # Caffe "Embed", bias_term: false
        self.lstms = nn.ModuleList(
            nn.LSTM((embed_dim if i == 0 else hidden) + (image_dim if i == self.image_layer else 0), hidden,
                    batch_first=True)
            for i in range(num_layers))
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(hidden, vocab_size)  # "predict"
        self._init_weights()
        if freeze_encoder:  # official stage "freeze-convnet": conv1-fc7 fixed, fc8 learned
            for name, p in self.encoder.named_parameters():
                p.requires_grad_(name.startswith("fc8.") or not isinstance(self.encoder, CaffeNet))

    def _init_weights(self) -> None:
        """Official fillers: embedding, LSTM and predict weights U(-0.08, 0.08), biases 0."""
        for m in (self.embed, self.head, *self.lstms):
            for name, p in m.named_parameters():
                if "bias" in name:
                    nn.init.zeros_(p)
                else:
                    nn.init.uniform_(p, -0.08, 0.08)

    # --- pieces the decoders use ------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, image_dim): the image feature phi_V."""
        return self.encoder(images)

    def init_state(self, batch: int, like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Zero (h, c) of every layer, each (1, batch, hidden)."""
        z = like.new_zeros(1, batch, self.hidden)
        return [(z, z) for _ in range(self.num_layers)]

    def _run(self, feat: torch.Tensor, tokens: torch.Tensor, state=None, t0: int = 0):
        """feat (B, D), tokens (B, T) -> (logits (B, T, V), new state); the sequence starts at step ``t0``."""
        b, t = tokens.shape
        x = self.embed(tokens)  # (B, T, E)
        img = feat[:, None].expand(b, t, feat.shape[-1])  # (B, T, D): the static input
        if self.image_input == "first_step":
            first = (torch.arange(t0, t0 + t, device=tokens.device) == 0).to(feat.dtype)
            img = img * first[None, :, None]
        new_state = []
        for i, lstm in enumerate(self.lstms):
            if i == self.image_layer:
                x = torch.cat([x, img], dim=-1)
            x, hc = lstm(x, None if state is None else state[i])  # (B, T, H)
            new_state.append(hc)
            x = self.drop(x)
        return self.head(x), new_state  # (B, T, V)

    def step(self, feat: torch.Tensor, prev: torch.Tensor, state, t: int):
        """One decoding step: feat (B, D), previous words (B,), state -> (logits (B, V), new state)."""
        logits, state = self._run(feat, prev[:, None], state, t0=t)
        return logits[:, 0], state

    def forward_tokens(self, feat: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing from image features: (B, D), (B, T) -> (B, T, V)."""
        return self._run(feat, tokens)[0]

    def forward(self, images: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) and input words (B, T) starting with <bos> -> next-word logits (B, T, V)."""
        feat = self.encode(images)
        if tokens is None:
            tokens = torch.full((images.shape[0], 1), self.bos_id, dtype=torch.long, device=images.device)
        return self.forward_tokens(feat, tokens)


# --- variants as data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    num_layers: int
    factored: bool
    encoder: str = "caffenet"
    image_dim: int = 1000
    embed_dim: int = 1000
    hidden: int = 1000
    vocab_size: int = COCO_VOCAB
    params: int | None = None
    input_size: tuple[int, int] = (227, 227)
    test_size: tuple[int, int] = (67, 67)
    encoder_kwargs: tuple = ()


# counts: closed forms derived in tests/models/test_lrcn_caption.py (torch.nn.LSTM's two biases)
VARIANTS = {
    "lrcn_caption_1u": Variant(1, False, params=90_584_025),
    "lrcn_caption_2u": Variant(2, False, params=98_592_025),
    "lrcn_caption_2f": Variant(2, True, params=98_592_025),
    "lrcn_caption_3f": Variant(3, True, params=106_600_025),
    "lrcn_caption_4f": Variant(4, True, params=114_608_025),
    "lrcn_caption_small": Variant(2, True, encoder="small", image_dim=128, embed_dim=128, hidden=256,
                                  vocab_size=1000, params=1_695_368, input_size=(64, 64), test_size=(32, 32)),
}

_PAPER = ("paper Sec. 5.1 and Table 5 (LRCN_1u/2u/2f/3f/4f); official BVLC/caffe examples/coco_caption/"
          "lrcn.prototxt (CaffeNet fc8 1000-d, Embed 8801x1000 no bias, LSTM 1000, predict 8801)")


def _card(name: str, v: Variant) -> ModelCard:
    small = v.encoder == "small"
    caffe = v.params - 4 * v.hidden * v.num_layers
    return ModelCard(
        name=name, paper=42, family="lrcn_caption", task="captioning", dims=2, in_chans=3, num_classes=0,
        input_size=v.input_size, test_size=v.test_size, params=v.params,
        params_source=("pin: our CPU-scale configuration (small CNN 32-64-128-128, embed 128, LSTM 256 x 2 "
                       "factored, 1,000-word vocabulary); no published count" if small else
                       f"closed form of the official prototxt graph with torch.nn.LSTM's two biases; "
                       f"{caffe:,} with Caffe's single LSTM bias (CaffeNet to fc8 60,965,224)"),
        reference=None,
        capabilities=frozenset({"channels_last"}),
        recipes=("lrcn_caption_photos",) if small else (("lrcn_caption_coco_paper",) if name.endswith("2f") else ()),
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        source=_PAPER + ("; CPU-scale encoder and widths" if small else ""),
        notes=("image feature at every step (image_input='first_step' for the alternative); "
               + ("factored: image into LSTM 2" if v.factored else "unfactored: image into LSTM 1")),
    )


def _make(name: str):
    v = VARIANTS[name]

    @register_model(_card(name, v))
    def factory(**kw) -> LRCNCaptioner:
        cfg = {"vocab_size": v.vocab_size, "encoder": v.encoder, "image_dim": v.image_dim, "embed_dim": v.embed_dim,
               "hidden": v.hidden, "num_layers": v.num_layers, "factored": v.factored,
               "encoder_kwargs": dict(v.encoder_kwargs) or None}
        cfg.update(kw)
        return LRCNCaptioner(**cfg)

    factory.__name__ = factory.__qualname__ = name
    return factory


for _name in VARIANTS:
    globals()[_name] = _make(_name)
