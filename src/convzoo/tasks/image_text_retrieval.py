"""Image-text retrieval (paper 5): a joint embedding ranked both ways, image annotation and image search.

Baqapuri, "Deep Learning Applied to Image and Text Matching", arXiv 1601.03478 (seed paper 5).

Items of a retrieval data set are ``(image, tokens)``, ``tokens`` a LongTensor ``<bos> w_1 .. w_n <eos>`` of
:class:`convzoo.data.captioned_photos.Vocabulary` (vocabulary in ``info.extra["vocab"]``), or ``(image, {"tokens":
..., "image_id": int})`` when an image has several sentences (Flickr, :mod:`convzoo.data.flickr`: one item per
sentence). A batch is ``(images (B, C, H, W), {"tokens": (B, L) padded with <pad>, "keys": (B,), "image_ids":
(B,)})``; ``keys`` identify the caption's words, so two items with the same caption ("A flower.") count as each
other's matches; ``image_ids`` (-1 when the items give none) make the sentences of one image its matches, and at
evaluation each image is ranked once (the first item of each id), as the 1k-image / 5-sentence protocol.

* Model: ``model(images, tokens)`` -> (B, B) cosine scores; ``model(images)`` and ``model(None, tokens)`` ->
  unit embeddings of each side (:class:`convzoo.models.image_text.ImageTextEmbedding`).
* Loss: :func:`convzoo.methods.ranking.bidirectional_ranking_loss` with ``margin`` (0.2) and the negative-sampling
  side ``negatives`` ("sentence", "image" or "both"), over the batch's other items (same-caption items are not
  negatives).
* Metrics, over the whole split (embeddings gathered, then every image against every caption): Recall@K (K in
  1, 5, 10) and median rank of image annotation (``i2t_*``: an image queries the captions; a hit is any caption
  with its words) and of image search (``t2i_*``: a caption queries the images), as the evaluation code of
  Karpathy & Fei-Fei and Kiros et al. compute them (rank of the best-ranked match, median rank =
  ``floor(median(0-based ranks)) + 1``); ``rsum`` (headline) is the sum of the six recalls, in percent.
  Recall@K equals torchmetrics' ``RetrievalHitRate(top_k=K)`` (and ``RetrievalRecall`` when each query has one
  match), proven in tests/tasks/test_image_text_retrieval.py.
* People: ``convzoo predict RUN photo.jpg`` prints the photo's best captions from the train and val pool of the
  run's data; ``convzoo predict RUN caption.txt`` (its first line) prints the pool's best photos.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torchmetrics import Metric, MetricCollection

from convzoo.errors import ConvzooError
from convzoo.methods.ranking import NEGATIVES, bidirectional_ranking_loss
from convzoo.tasks.base import (
    CONTRACT_CHECKS,
    IMAGE_SUFFIXES,
    Task,
    image_to_input,
    read_image,
    register_task,
)

PAD, BOS, EOS = 0, 1, 2
KS = (1, 5, 10)


class RetrievalOutputs(NamedTuple):
    """What :meth:`ImageTextRetrieval.evaluation_forward` gives the loss and the metrics."""

    scores: torch.Tensor  # (B, B) cosine scores of the batch
    image_emb: torch.Tensor  # (B, D)
    text_emb: torch.Tensor  # (B, D)


def caption_key(tokens) -> int:
    """An integer naming a caption's word ids (pads ignored): equal captions, equal keys."""
    ids = tuple(int(t) for t in tokens if int(t) != PAD)
    return hash(ids) & ((1 << 62) - 1)  # a tuple of ints hashes the same in every process


def retrieval_ranks(scores: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """0-based rank of the best-ranked relevant item per query (row): (Q, N) scores, (Q, N) bool -> (Q,).

    Rank = number of items scoring strictly above the query's best relevant item (ties counted in the query's
    favour). Every query needs at least one relevant item."""
    if not bool(relevant.any(1).all()):
        raise ValueError("every query needs at least one relevant item")
    best = scores.masked_fill(~relevant, float("-inf")).amax(1, keepdim=True)
    return (scores > best).sum(1)


def recall_at_k(ranks: torch.Tensor, k: int) -> float:
    """Fraction of queries whose best relevant item is among the top ``k``."""
    return float((ranks < k).double().mean())


def median_rank(ranks: torch.Tensor) -> float:
    """``floor(median(ranks)) + 1`` of 0-based ranks (the convention of the Karpathy / VSE evaluation code)."""
    return float(np.floor(np.median(ranks.cpu().numpy())) + 1)


def retrieval_metrics(image_emb: torch.Tensor, text_emb: torch.Tensor, image_keys: torch.Tensor,
                      text_keys: torch.Tensor, ks=KS, relevant: torch.Tensor | None = None) -> dict[str, float]:
    """R@K (percent) and median rank both ways, for N images and M captions: caption ``j`` matches image ``i``
    when their keys are equal, or where ``relevant`` (N, M) is True when given."""
    scores = image_emb.float() @ text_emb.float().t()  # (N, M)
    if relevant is None:
        relevant = image_keys[:, None] == text_keys[None, :]
    out = {}
    for side, s, rel in (("i2t", scores, relevant), ("t2i", scores.t(), relevant.t())):
        ranks = retrieval_ranks(s, rel)
        for k in ks:
            out[f"{side}_r{k}"] = 100.0 * recall_at_k(ranks, k)
        out[f"{side}_medr"] = median_rank(ranks)
    out["rsum"] = sum(out[f"{side}_r{k}"] for side in ("i2t", "t2i") for k in ks)
    return out


class RetrievalRecall(Metric):
    """Gathers the split's image and caption embeddings with their keys; :func:`retrieval_metrics` at the end."""

    full_state_update = False

    def __init__(self, ks=KS):
        super().__init__()
        self.ks = tuple(ks)
        self.add_state("images", default=[], dist_reduce_fx="cat")
        self.add_state("texts", default=[], dist_reduce_fx="cat")
        self.add_state("keys", default=[], dist_reduce_fx="cat")
        self.add_state("image_ids", default=[], dist_reduce_fx="cat")

    def update(self, outputs: RetrievalOutputs, targets: dict) -> None:
        self.images.append(outputs.image_emb.detach().float())
        self.texts.append(outputs.text_emb.detach().float())
        self.keys.append(targets["keys"].detach())
        ids = targets.get("image_ids")
        self.image_ids.append(ids.detach() if ids is not None else torch.full_like(targets["keys"], -1))

    def compute(self) -> dict[str, torch.Tensor]:
        cat = (lambda x: torch.cat(x) if isinstance(x, list) else x)
        images, texts, keys, ids = cat(self.images), cat(self.texts), cat(self.keys), cat(self.image_ids)
        relevant = None
        if bool((ids >= 0).all()):  # several sentences per image: rank each image once, its sentences match it
            first = {}
            for pos, i in enumerate(ids.tolist()):
                first.setdefault(i, pos)
            keep = torch.tensor(list(first.values()), device=ids.device)
            relevant = ids[keep][:, None] == ids[None, :]
            images = images[keep]
        out = retrieval_metrics(images, texts, keys, keys, self.ks, relevant)
        return {k: torch.tensor(v) for k, v in out.items()}


def _vocab(info) -> list[str]:
    vocab = (info.extra or {}).get("vocab") if info is not None else None
    if not vocab:
        raise ConvzooError("an image-text model needs its vocabulary: predict with a run folder (convzoo predict RUN "
                           "photo.jpg or caption.txt), whose data_info.yaml holds it")
    return list(vocab)


def encode_sentence(text: str, vocab: list[str]) -> torch.Tensor:
    """A sentence -> (1, L) word ids ``<bos> .. <eos>`` of ``vocab`` (index -> word; unknown words <unk>)."""
    from convzoo.data.captioned_photos import Vocabulary

    return torch.tensor([Vocabulary(vocab[4:]).encode(text)], dtype=torch.long)


@register_task("image_text_retrieval")
class ImageTextRetrieval(Task):
    monitor = "rsum"
    monitor_mode = "max"
    # one input is an (images, tokens) pair: the channels_last comparison of "determinism" cannot take it
    # (tests/models/test_image_text.py checks determinism and channels_last on the image branch)
    contract_checks = CONTRACT_CHECKS - {"num_classes", "embedding", "features", "determinism"}
    input_suffixes = IMAGE_SUFFIXES + (".txt",)

    def __init__(self, margin: float = 0.2, negatives: str = "both", reduction: str = "mean", hardest: bool = False,
                 top: int = 5):
        super().__init__(margin=margin, negatives=negatives, reduction=reduction, hardest=hardest, top=top)
        if negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {', '.join(NEGATIVES)}, got {negatives!r}")
        self.margin, self.negatives, self.reduction = float(margin), negatives, reduction
        self.hardest, self.top = bool(hardest), int(top)

    # --- batches and steps ------------------------------------------------------------------------
    def collate(self, items: list):
        images = torch.stack([x for x, _ in items])
        toks = [torch.as_tensor(t["tokens"] if isinstance(t, dict) else t, dtype=torch.long) for _, t in items]
        tokens = torch.nn.utils.rnn.pad_sequence(toks, batch_first=True, padding_value=PAD)
        keys = torch.tensor([caption_key(t) for t in toks], dtype=torch.long)
        ids = torch.tensor([int(t.get("image_id", -1)) if isinstance(t, dict) else -1 for _, t in items],
                           dtype=torch.long)
        return images, {"tokens": tokens, "keys": keys, "image_ids": ids}

    def forward(self, model, batch):
        images, targets = batch
        return model(images, targets["tokens"]), targets

    def evaluation_forward(self, model, batch):
        images, targets = batch
        img, txt = model(images), model(None, targets["tokens"])
        return RetrievalOutputs(img @ txt.t(), img, txt), targets

    def loss(self, outputs, targets):
        scores = outputs.scores if isinstance(outputs, RetrievalOutputs) else outputs
        keys, ids = targets["keys"], targets.get("image_ids")
        positives = keys[:, None] == keys[None, :]
        if ids is not None:  # two sentences of one image are no negatives of each other
            positives = positives | ((ids[:, None] == ids[None, :]) & (ids[:, None] >= 0))
        return bidirectional_ranking_loss(scores.float(), self.margin, self.negatives, positives, self.reduction,
                                          self.hardest)

    def batch_size(self, targets) -> int:
        return int(targets["tokens"].shape[0])

    # --- metrics -----------------------------------------------------------------------------------
    def metrics(self, dataset) -> MetricCollection:
        return MetricCollection({"retrieval": RetrievalRecall()}, compute_groups=False)

    def update_metrics(self, metrics, outputs: RetrievalOutputs, targets):
        for m in metrics.values():
            m.update(outputs, targets)

    # --- models of this task -------------------------------------------------------------------------
    def model_kwargs(self, card, info) -> dict:
        vocab = (info.extra or {}).get("vocab")
        return {"vocab_size": len(vocab)} if vocab else {}

    def example_input(self, card, batch: int = 2, size=None, generator=None):
        images = super().example_input(card, batch, size, generator)
        tokens = torch.randint(4, 50, (batch, 9), generator=generator)
        tokens[:, 0], tokens[:, -1] = BOS, EOS
        tokens[0, -3:] = torch.tensor([EOS, PAD, PAD])  # a shorter sentence
        return images, tokens

    def example_batch(self, card, batch: int = 2, size=None, generator=None):
        images, tokens = self.example_input(card, batch, size, generator)
        return images, {"tokens": tokens, "keys": torch.tensor([caption_key(t) for t in tokens]),
                        "image_ids": torch.full((batch,), -1, dtype=torch.long)}

    def output_shape(self, model, card, x):
        if isinstance(x, (tuple, list)):
            return (x[0].shape[0], x[1].shape[0])
        return (x.shape[0], int(model.embed_dim))

    def bench_spec(self, model, card, size):
        spatial = tuple(size) if size is not None else tuple(card.input_size)
        return {"input_shape": [card.in_chans, *spatial], "unit": "images/s"}

    # --- people -------------------------------------------------------------------------------
    def read_input(self, path: Path, card, info):
        suffix = path.suffix.lower()
        if suffix == ".txt":
            try:
                lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
            except OSError as e:
                raise ConvzooError(f"cannot read {path}: {e}") from None
            text = next((ln for ln in lines if ln), "")
            if not text:
                raise ConvzooError(f"{path} holds no caption (its first non-empty line is the sentence)")
            return text
        if suffix in IMAGE_SUFFIXES:
            return image_to_input(read_image(path), card, info)
        raise ConvzooError(f"{path}: unsupported input type '{suffix}' ({', '.join(self.input_suffixes)})")

    def _pool(self, info):
        """The train + val items of the run's data set: (captions, their token rows) and, once per image, (names,
        paths, a caption, the image batch)."""
        from convzoo.data import build_dataset

        extra = (info.extra or {}) if info is not None else {}
        if "root" not in extra:
            raise ConvzooError("predict needs the run's data set to rank against: its data_info.yaml names no root")
        kw = {k: extra[k] for k in ("size", "min_count") if k in extra}
        parts = [build_dataset(info.name, s, root=extra["root"], **kw) for s in ("train", "val")]
        captions = [c for p in parts for c in p.captions]
        tokens = torch.nn.utils.rnn.pad_sequence([torch.tensor(t) for p in parts for t in p.tokens],
                                                 batch_first=True, padding_value=PAD)
        first = {}  # one entry per image (Flickr items repeat an image once per sentence)
        for k, (part, i) in enumerate((q, j) for q in parts for j in range(len(q))):
            first.setdefault(str(part.path(i)), (part, i, k))
        names = [part.names[i] for part, i, _ in first.values()]
        paths = list(first)
        image_captions = [captions[k] for _, _, k in first.values()]
        images = torch.stack([part.image(i) for part, i, _ in first.values()])
        return captions, tokens, names, paths, image_captions, images

    def predict(self, model, inputs, dataset=None):
        info = getattr(dataset, "info", None)
        vocab = _vocab(info)
        captions, tokens, names, paths, image_captions, images = self._pool(info)
        model.eval()
        with torch.no_grad():
            if isinstance(inputs, str):  # a sentence: the pool's best images
                query = model(None, encode_sentence(inputs, vocab))
                scores = (model(images) @ query.t())[:, 0]
                order = scores.argsort(descending=True)[: self.top]
                return [{"images": [{"name": names[i], "path": paths[i], "caption": image_captions[i],
                                     "score": float(scores[i])} for i in order.tolist()]}]
            txt = model(None, tokens)
            out = []
            for q in model(inputs):
                scores = txt @ q
                seen, best = set(), []
                for i in scores.argsort(descending=True).tolist():  # distinct captions, best first
                    if captions[i] not in seen:
                        seen.add(captions[i])
                        best.append({"caption": captions[i], "score": float(scores[i])})
                    if len(best) == self.top:
                        break
                out.append({"captions": best})
            return out

    def predict_file(self, model, card, path: Path, info, out_dir: Path):
        _vocab(info)
        x = self.read_input(path, card, info)

        class _D:  # the data set's facts only
            pass

        d = _D()
        d.info = info
        for i, pred in enumerate(self.predict(model, x, d)):
            yield {"input": f"{path}" + (f"[{i}]" if i else ""), **pred}

    def format_prediction(self, pred: dict) -> str:
        if "captions" in pred:
            return f"{pred['input']}: " + "; ".join(f"\"{c['caption']}\" {c['score']:.3f}" for c in pred["captions"])
        if "images" in pred:
            return f"{pred['input']}: " + "; ".join(f"{m['name']} (\"{m['caption']}\") {m['score']:.3f}"
                                                    for m in pred["images"])
        return super().format_prediction(pred)

    def report(self, results: dict[str, float], dataset) -> list[str]:
        if not all(f"i2t_r{k}" in results for k in KS):
            return []
        row = lambda side: " | ".join(f"{results[f'{side}_r{k}']:.1f}" for k in KS) + f" | {results[f'{side}_medr']:.0f}"
        return ["", f"Retrieval (negatives: {self.negatives}, margin {self.margin}):", "",
                "| direction | R@1 | R@5 | R@10 | Med r |", "|---|---|---|---|---|",
                f"| annotation (image -> text) | {row('i2t')} |", f"| search (text -> image) | {row('t2i')} |"]
