"""Two-branch image-text embedding with cosine scores (paper 5).

Baqapuri, "Deep Learning Applied to Image and Text Matching", arXiv 1601.03478 (2015; seed paper 5).

What is implemented (the report's Sec. on the model; no official code exists): an image branch and a text
branch map into one ``embed_dim``-dimensional space, both outputs L2-normalised, and the score of an
image-sentence pair is their cosine (:func:`cosine_scores`).

* Image branch (:class:`ImageBranch`): a CNN feature, then an MLP. The report uses the 4,096-d fc7 feature
  of a pre-trained CNN; here the CNN is either :class:`SmallCNN` (conv3x3-BN-ReLU + 2x2 max-pool blocks,
  global average pool; CPU-scale, trained from scratch) or any registered backbone by name
  (``image_backbone="eca_resnet18"``: ``create_model(name, num_classes=0)``, its pooled features),
  optionally frozen (``freeze_image=True``, the report's frozen-feature setting). ``image_feat_dim`` adds
  an fc7-like Linear + ReLU of that width on top of the CNN (4,096 in ``image_text_embedding``).
* Text branch, three modules (the report's three; exact widths not given there):
  :class:`BowTextEncoder` (bag of words: counts of the words of a sentence -> MLP),
  :class:`NgramTextEncoder` (word uni-, bi- and tri-grams and skip-bigrams hashed into ``num_buckets``
  buckets, counts -> MLP; the report's "n-gram features", DSSM-style hashing) and :class:`SSETextEncoder`
  (a sentence-semantic-embedding net: word embeddings -> 1-D convolutions over the sentence -> max pool
  over its words -> MLP; CLSM-like, the report's "deeper network specialised for sequences").
  Tokens are word ids of :class:`convzoo.data.captioned_photos.Vocabulary` (``<pad>`` 0, ``<bos>`` 1,
  ``<eos>`` 2, ``<unk>`` 3); pad, bos and eos carry no content and are masked out of every module.
* The first Linear of the bag and n-gram MLPs is an embedding sum (``bag @ W`` computed as
  ``sum_words W[word]``), exactly the MLP on the count vector without building the (B, V) counts.

Calling: ``model(images)`` -> image embeddings (B, D); ``model(images, tokens)`` or ``model((images,
tokens))`` -> cosine scores (B_images, B_sentences); ``model(None, tokens)`` -> sentence embeddings (B, D); :meth:`ImageTextEmbedding.encode_image` and
:meth:`~ImageTextEmbedding.encode_text` give each side alone (unit vectors).

Departures: the report's CNN is pre-trained on ImageNet; no weights can be fetched here, so the CPU-scale
variants train the small CNN on the photos themselves (a registered backbone with its weights is an
option). The report's widths, margin and optimiser are not recoverable (sheet G3, paper 5, point 3): the
defaults are documented choices (joint 1,024 / MLP 1,024 in the paper-shaped ``image_text_embedding``,
256 in the CPU-scale variants).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.registry import ModelCard, register_model

__all__ = ["BowTextEncoder", "ImageBranch", "ImageTextEmbedding", "NgramTextEncoder", "SSETextEncoder",
           "SmallCNN", "content_mask", "cosine_scores"]

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


def content_mask(tokens: torch.Tensor) -> torch.Tensor:
    """(B, L) word ids -> (B, L) bool, True on words (not <pad>, <bos>, <eos>)."""
    return tokens > EOS_ID


def cosine_scores(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """(B_i, D), (B_t, D) unit vectors -> (B_i, B_t) cosine scores."""
    return image_emb @ text_emb.t()


def _mlp(in_dim: int, hidden: int, out_dim: int, drop: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(drop), nn.Linear(hidden, out_dim))


# --- text modules ----------------------------------------------------------------------------------
class BowTextEncoder(nn.Module):
    """Bag of words -> MLP: (B, L) word ids -> (B, out_dim). ``binary=True`` counts a word once."""

    def __init__(self, vocab_size: int, out_dim: int = 256, hidden_dim: int = 256, drop_rate: float = 0.0,
                 binary: bool = False):
        super().__init__()
        self.binary = binary
        self.fc1 = nn.Embedding(vocab_size, hidden_dim)  # rows of the first Linear on the (V,) count vector
        self.bias1 = nn.Parameter(torch.zeros(hidden_dim))
        self.rest = nn.Sequential(nn.ReLU(inplace=True), nn.Dropout(drop_rate), nn.Linear(hidden_dim, out_dim))

    def bag(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, V) word counts (the module's input vector; for tests and inspection)."""
        counts = torch.zeros(tokens.shape[0], self.fc1.num_embeddings, device=tokens.device)
        counts.scatter_add_(1, tokens, content_mask(tokens).float())
        return counts.clamp(max=1.0) if self.binary else counts

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        w = content_mask(tokens).to(self.fc1.weight.dtype)  # (B, L)
        if self.binary:  # a repeated word counts once: keep its first position
            same = tokens[:, :, None] == tokens[:, None, :]  # (B, L, L)
            earlier = torch.ones_like(same[0]).tril(-1).bool()
            w = w * ~(same & earlier).any(-1)
        h = (self.fc1(tokens) * w[..., None]).sum(1) + self.bias1  # (B, hidden) = counts @ W + b
        return self.rest(h)


class NgramTextEncoder(nn.Module):
    """Hashed word n-grams -> MLP: (B, L) -> (B, out_dim).

    Features: unigrams, and for each ``n`` in ``ngrams`` (default 2, 3) the n-grams of consecutive words,
    plus skip-bigrams (w_i, w_{i+2}) with ``skip=True``; each hashed with a fixed polynomial hash of the word
    ids (a different salt per kind) into ``num_buckets`` buckets and counted."""

    PRIME = 1_000_003

    def __init__(self, vocab_size: int, out_dim: int = 256, hidden_dim: int = 256, num_buckets: int = 2 ** 15,
                 ngrams: tuple[int, ...] = (2, 3), skip: bool = True, drop_rate: float = 0.0):
        super().__init__()
        self.vocab_size, self.num_buckets, self.ngrams, self.skip = vocab_size, num_buckets, tuple(ngrams), skip
        self.fc1 = nn.Embedding(num_buckets, hidden_dim)
        self.bias1 = nn.Parameter(torch.zeros(hidden_dim))
        self.rest = nn.Sequential(nn.ReLU(inplace=True), nn.Dropout(drop_rate), nn.Linear(hidden_dim, out_dim))

    def features(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(bucket ids (B, F), weights (B, F)): every n-gram of content words, 1.0 where all its words are words."""
        valid = content_mask(tokens)
        ids, weights = [tokens % self.num_buckets], [valid]
        kinds = [(n, 1) for n in self.ngrams] + ([(2, 2)] if self.skip else [])
        for salt, (n, step) in enumerate(kinds, start=1):
            span = (n - 1) * step
            if tokens.shape[1] <= span:
                continue
            h = torch.full_like(tokens[:, span:], salt * 7919)
            ok = torch.ones_like(valid[:, span:])
            for k in range(n):
                part = tokens[:, k * step: tokens.shape[1] - span + k * step]
                h = (h * self.PRIME + part) % (2 ** 31 - 1)
                ok = ok & valid[:, k * step: tokens.shape[1] - span + k * step]
            ids.append(h % self.num_buckets)
            weights.append(ok)
        return torch.cat(ids, 1), torch.cat(weights, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        ids, w = self.features(tokens)
        h = (self.fc1(ids) * w[..., None].to(self.fc1.weight.dtype)).sum(1) + self.bias1
        return self.rest(h)


class SSETextEncoder(nn.Module):
    """Sentence-semantic embedding: word embeddings -> ``len(widths)`` Conv1d (kernel ``kernel``, ReLU) over the
    sentence -> max pool over its words -> MLP: (B, L) -> (B, out_dim)."""

    def __init__(self, vocab_size: int, out_dim: int = 256, word_dim: int = 128, widths: tuple[int, ...] = (256,),
                 kernel: int = 3, hidden_dim: int = 256, drop_rate: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=PAD_ID)
        convs, c = [], word_dim
        for w in widths:
            convs += [nn.Conv1d(c, w, kernel, padding=kernel // 2), nn.ReLU(inplace=True)]
            c = w
        self.convs = nn.Sequential(*convs)
        self.mlp = _mlp(c, hidden_dim, out_dim, drop_rate)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        valid = content_mask(tokens)  # (B, L)
        x = self.embed(tokens) * valid[..., None]  # (B, L, E): non-words are zero inputs
        h = self.convs(x.transpose(1, 2))  # (B, C, L)
        h = h.masked_fill(~valid[:, None, :], float("-inf")).amax(-1)  # (B, C) max over the words
        h = torch.where(torch.isfinite(h), h, torch.zeros_like(h))  # a sentence without words: zeros
        return self.mlp(h)


TEXT_ENCODERS = {"bow": BowTextEncoder, "ngram": NgramTextEncoder, "sse": SSETextEncoder}


# --- image branch ------------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """conv3x3-BN-ReLU + 2x2 max-pool per width, global average pool: (B, C, H, W) -> (B, widths[-1])."""

    def __init__(self, in_chans: int = 3, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        layers, c = [], in_chans
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.num_features = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((2, 3))


class ImageBranch(nn.Module):
    """CNN feature (optionally an fc7-like layer of ``image_feat_dim``) -> MLP: (B, C, H, W) -> (B, out_dim)."""

    def __init__(self, in_chans: int = 3, out_dim: int = 256, hidden_dim: int = 256, backbone: str = "small",
                 widths: tuple[int, ...] = (32, 64, 128, 256), image_feat_dim: int = 0, freeze: bool = False,
                 drop_rate: float = 0.0, backbone_kwargs: dict | None = None):
        super().__init__()
        if backbone == "small":
            self.cnn = SmallCNN(in_chans, tuple(widths))
        else:
            from convzoo.registry import create_model

            self.cnn = create_model(backbone, num_classes=0, in_chans=in_chans, **(backbone_kwargs or {}))
        dim = getattr(self.cnn, "num_features", None)
        if not dim:
            raise ConvzooError(f"image backbone '{backbone}' states no num_features (pooled feature width)")
        self.freeze = freeze
        if freeze:
            self.cnn.requires_grad_(False)
        self.fc7 = (nn.Sequential(nn.Linear(dim, image_feat_dim), nn.ReLU(inplace=True))
                    if image_feat_dim else nn.Identity())
        self.mlp = _mlp(image_feat_dim or dim, hidden_dim, out_dim, drop_rate)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:  # a frozen CNN keeps its BN statistics
            self.cnn.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.cnn(x)
        if feat.dim() > 2:  # a backbone that returns maps
            feat = feat.mean(tuple(range(2, feat.dim())))
        return self.mlp(self.fc7(feat))


# --- the joint embedding ------------------------------------------------------------------------------
class ImageTextEmbedding(nn.Module):
    """Image branch and one text module into a joint space of ``embed_dim``; cosine scores."""

    def __init__(self, vocab_size: int = 1000, in_chans: int = 3, text_encoder: str = "bow", embed_dim: int = 256,
                 hidden_dim: int = 256, image_backbone: str = "small", image_widths: tuple[int, ...] = (32, 64, 128, 256),
                 image_feat_dim: int = 0, freeze_image: bool = False, drop_rate: float = 0.0,
                 text_kwargs: dict | None = None, backbone_kwargs: dict | None = None):
        super().__init__()
        if text_encoder not in TEXT_ENCODERS:
            raise ConvzooError(f"text_encoder must be one of {', '.join(TEXT_ENCODERS)}, got {text_encoder!r}")
        self.vocab_size, self.embed_dim, self.text_encoder_name = int(vocab_size), int(embed_dim), text_encoder
        self.image = ImageBranch(in_chans, embed_dim, hidden_dim, image_backbone, tuple(image_widths), image_feat_dim,
                                 freeze_image, drop_rate, backbone_kwargs)
        kw = {"hidden_dim": hidden_dim, "drop_rate": drop_rate, **(text_kwargs or {})}
        self.text = TEXT_ENCODERS[text_encoder](vocab_size, embed_dim, **kw)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, D) unit vectors."""
        return F.normalize(self.image(images), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) word ids (<bos> ... <eos>, <pad> after) -> (B, D) unit vectors."""
        if tokens.dtype not in (torch.int64, torch.int32):
            raise ConvzooError(f"sentences must be integer word ids, got {tokens.dtype}")
        if tokens.numel() and int(tokens.max()) >= self.vocab_size:
            raise ConvzooError(f"a word id ({int(tokens.max())}) is beyond the model's vocabulary of {self.vocab_size}")
        return F.normalize(self.text(tokens), dim=-1)

    def forward(self, images, tokens: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(images, (tuple, list)):
            images, tokens = images
        if images is None:  # model(None, tokens): sentence embeddings
            return self.encode_text(tokens)
        img = self.encode_image(images)
        if tokens is None:
            return img
        return cosine_scores(img, self.encode_text(tokens))


# --- variants ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    text_encoder: str
    embed_dim: int
    hidden_dim: int
    image_widths: tuple[int, ...]
    image_feat_dim: int
    input_size: tuple[int, int]
    params: int  # at vocabulary 1,000: closed form in tests/models/test_image_text.py
    note: str


VARIANTS = {
    "image_text_embedding": Variant("bow", 1024, 1024, (64, 128, 256, 512), 4096, (224, 224), 10_972_736,
                                    "the report's shape: CNN -> fc7-like 4,096-d feature -> MLP into a 1,024-d joint "
                                    "space; bag-of-words text module"),
    "image_text_bow": Variant("bow", 256, 256, (32, 64, 128, 256), 0, (64, 64), 842_528, "CPU-scale, bag-of-words text module"),
    "image_text_ngram": Variant("ngram", 256, 256, (32, 64, 128, 256), 0, (64, 64), 8_975_136,
                                "CPU-scale, hashed word n-gram text module (uni/bi/tri-grams + skip-bigrams, 2^15 buckets)"),
    "image_text_sse": Variant("sse", 256, 256, (32, 64, 128, 256), 0, (64, 64), 878_624,
                              "CPU-scale, convolutional sentence encoder (SSE: word embeddings, Conv1d k3, max pool)"),
}


def _card(name: str, v: Variant) -> ModelCard:
    return ModelCard(
        name=name, paper=5, family="image_text", task="image_text_retrieval", dims=2, in_chans=3, num_classes=0,
        input_size=v.input_size, test_size=(32, 32), params=v.params,
        params_source=("closed form at vocabulary 1,000 (the factory's default): conv3x3 weights + BN affine of the "
                       "CNN widths, the fc7-like Linear, two Linears per MLP with biases, the text module's tables "
                       "(tests/models/test_image_text.py); the report states no count"),
        reference=None, capabilities=frozenset(),
        source="report Sec. on the model: two-branch embedding, image CNN feature -> MLP, text module -> MLP, cosine "
               "score (arXiv 1601.03478; widths not given there, documented defaults)",
        notes=v.note + "; vocabulary size from the data set (default 1,000)")


def _factory(name: str):
    v = VARIANTS[name]

    @register_model(_card(name, v))
    def build(in_chans: int = 3, vocab_size: int = 1000, **kw) -> ImageTextEmbedding:
        cfg = {"text_encoder": v.text_encoder, "embed_dim": v.embed_dim, "hidden_dim": v.hidden_dim,
               "image_widths": v.image_widths, "image_feat_dim": v.image_feat_dim, **kw}
        return ImageTextEmbedding(vocab_size=vocab_size, in_chans=in_chans, **cfg)

    build.__qualname__ = f"build_{name}"
    return build


for _name in VARIANTS:
    globals()[_name] = _factory(_name)
