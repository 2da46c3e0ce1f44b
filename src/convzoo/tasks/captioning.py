"""Image captioning (paper 42, LRCN, Sec. 5): a sentence generated from one image.

Donahue et al., "Long-term Recurrent Convolutional Networks for Visual Recognition and Description",
arXiv 1411.4389 (seed paper 42).

Items of a captioning data set are ``(image, tokens)`` with ``tokens`` a LongTensor
``<bos> w_1 .. w_n <eos>``, or ``(image, {"tokens": ..., "references": [LongTensor, ...]})`` when an
image has several reference captions (COCO: five). The vocabulary is ``dataset.info.extra["vocab"]``
(index -> word, ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3). :meth:`Captioning.collate`
pads the token rows with ``<pad>`` into ``targets["tokens"]`` (B, L) and keeps every image's
references as lists of word ids.

* Loss (paper Sec. 5.1; official ``SoftmaxWithLoss``): teacher-forced next-word cross-entropy,
  averaged over the non-``<pad>`` words, times ``loss_weight`` (the official net uses 20).
* Metrics: corpus BLEU-1..4 (torchmetrics ``BLEUScore``, the captions' words, no smoothing), ROUGE-L
  F-measure (torchmetrics ``ROUGEScore``) and CIDEr-D (pycocoevalcap's ``Cider`` when that package is
  installed) of the captions decoded by beam search (``<unk>`` is never generated unless ``allow_unk``:
  a reference's ``<unk>``, a word outside the training vocabulary, matches nothing) (``decode="beam"``, ``beam_size`` 5, at most
  ``max_len`` 20 words; ``length_alpha`` > 0 ranks beam hypotheses by ``log p / n ** length_alpha``;
  ``"greedy"`` and ``"sample"`` with ``temperature`` also). METEOR needs Java and
  the METEOR jar (pycocoevalcap); it is not computed. Headline: ``bleu4``.
* Pictures: ``captions.csv`` (per held-out image: reference, model caption, nearest-neighbour
  caption) and ``captions.png``; the nearest-neighbour baseline returns the caption of the training
  image closest (cosine) in the model's own image-feature space, and the report sets its BLEU-4
  against the model's (the training split is rebuilt from the run folder's ``config.yaml``), for the
  final weights and for ``best.safetensors`` (the epoch with the best validation BLEU-4, the standard
  held-out figure), each baseline in that checkpoint's own features. The report
  also ranks the split's images and first captions by sentence likelihood (Sec. 5.2 retrieval):
  R@1/5/10 and median rank for annotation and search (``retrieval``, splits up to 2,000 items).
* People: ``convzoo predict RUN photo.jpg`` prints the best captions (beam search) with their
  log-likelihoods. A registered model without a run has no vocabulary and is refused in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.text import BLEUScore, ROUGEScore

from convzoo.errors import ConvzooError
from convzoo.methods.caption_decoding import (
    caption_ids,
    decode,
    likelihood_matrix,
    recall_at_k,
    retrieval_ranks,
)
from convzoo.tasks.base import CONTRACT_CHECKS, IMAGE_SUFFIXES, Task, register_task, write_csv

PAD, BOS, EOS, UNK = 0, 1, 2, 3


class CaptionOutputs(NamedTuple):
    """What :meth:`Captioning.forward` gives the loss and the metrics."""

    logits: torch.Tensor  # (B, L - 1, V) next-word logits under teacher forcing
    captions: torch.Tensor | None = None  # evaluation only: (B, L') best decoded caption's word ids


class CorpusCider(Metric):
    """CIDEr-D of pycocoevalcap over all captions seen (document frequencies from the references)."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        from pycocoevalcap.cider.cider import Cider

        self._scorer = Cider()
        self.add_state("n", default=torch.tensor(0), dist_reduce_fx="sum")
        self._hyps: list[str] = []
        self._refs: list[list[str]] = []

    def update(self, preds: list[str], target: list[list[str]]) -> None:
        self._hyps += list(preds)
        self._refs += [list(r) for r in target]
        self.n += len(preds)

    def compute(self) -> torch.Tensor:
        if not self._hyps:
            return torch.tensor(0.0)
        gts = {i: r for i, r in enumerate(self._refs)}
        res = {i: [h if h else "<empty>"] for i, h in enumerate(self._hyps)}
        score, _ = self._scorer.compute_score(gts, res)
        return torch.tensor(float(score))

    def reset(self) -> None:
        super().reset()
        self._hyps, self._refs = [], []


def _cider_available() -> bool:
    try:
        import pycocoevalcap.cider.cider  # noqa: F401
    except ImportError:
        return False
    return True


def words(ids, vocab) -> str:
    """Word ids -> one lower-case sentence (unknown ids shown as <id>)."""
    return " ".join(vocab[i] if 0 <= i < len(vocab) else f"<{i}>" for i in ids)


def _refs_of(target) -> tuple[torch.Tensor, list[torch.Tensor]]:
    if isinstance(target, dict):
        tok = target["tokens"]
        return tok, list(target.get("references", [tok]))
    return target, [target]


def _vocab(info) -> list[str]:
    vocab = (info.extra or {}).get("vocab") if info is not None else None
    if not vocab:
        raise ConvzooError("a captioning model needs its vocabulary: predict with a run folder (convzoo predict "
                           "RUN image.jpg), whose data_info.yaml holds it")
    return list(vocab)


@register_task("captioning")
class Captioning(Task):
    monitor = "bleu4"
    monitor_mode = "max"
    contract_checks = CONTRACT_CHECKS - {"num_classes", "embedding", "features"}
    input_suffixes = IMAGE_SUFFIXES

    def __init__(self, decode: str = "beam", beam_size: int = 5, max_len: int = 20, temperature: float = 1.0,
                 loss_weight: float = 1.0, allow_unk: bool = False, cider: bool = True, nn_baseline: bool = True,
                 retrieval: bool = True, num_pictures: int = 8, length_alpha: float = 0.0):
        super().__init__(decode=decode, beam_size=beam_size, max_len=max_len, temperature=temperature,
                         loss_weight=loss_weight, allow_unk=allow_unk, cider=cider, nn_baseline=nn_baseline,
                         retrieval=retrieval, num_pictures=num_pictures, length_alpha=length_alpha)
        if decode not in ("beam", "greedy", "sample"):
            raise ValueError(f"decode must be 'beam', 'greedy' or 'sample', got {decode!r}")
        self.decoding, self.beam_size, self.max_len = decode, int(beam_size), int(max_len)
        self.temperature, self.loss_weight = float(temperature), float(loss_weight)
        if length_alpha < 0:
            raise ValueError(f"length_alpha must be >= 0, got {length_alpha}")
        self.length_alpha = float(length_alpha)
        self.banned = () if allow_unk else (UNK,)  # a generated <unk> would match the references' <unk>
        self.cider = bool(cider) and _cider_available()
        self.nn_baseline, self.retrieval, self.num_pictures = bool(nn_baseline), bool(retrieval), int(num_pictures)
        self._vocab_list: list[str] | None = None
        self._baseline: tuple[tuple, dict] | None = None

    # --- batches and steps ------------------------------------------------------------------------
    def collate(self, items: list):
        images = torch.stack([x for x, _ in items])
        toks, refs = [], []
        for _, t in items:
            tok, rs = _refs_of(t)
            toks.append(torch.as_tensor(tok, dtype=torch.long))
            refs.append([caption_ids(torch.as_tensor(r)[1:], EOS, PAD) for r in rs])
        tokens = torch.nn.utils.rnn.pad_sequence(toks, batch_first=True, padding_value=PAD)  # (B, L)
        return images, {"tokens": tokens, "references": refs}

    def forward(self, model, batch):
        images, targets = batch
        return CaptionOutputs(model(images, targets["tokens"][:, :-1])), targets

    def evaluation_forward(self, model, batch):
        images, targets = batch
        logits = model(images, targets["tokens"][:, :-1])
        caps = decode(model, images, self.decoding, self.beam_size, self.temperature, self.max_len, banned=self.banned,
                      length_alpha=self.length_alpha)
        return CaptionOutputs(logits, caps.tokens[:, 0]), targets

    def loss(self, outputs: CaptionOutputs, targets):
        logits, target = outputs.logits, targets["tokens"][:, 1:]
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=PAD)
        return ce * self.loss_weight

    def batch_size(self, targets) -> int:
        return int(targets["tokens"].shape[0])

    # --- metrics -----------------------------------------------------------------------------------
    def metrics(self, dataset) -> MetricCollection:
        self._vocab_list = _vocab(dataset.info)
        parts = {f"bleu{n}": BLEUScore(n_gram=n) for n in (1, 2, 3, 4)}
        parts["rouge"] = ROUGEScore(rouge_keys="rougeL", accumulate="best")
        if self.cider:
            parts["cider"] = CorpusCider()
        return MetricCollection(parts, compute_groups=False)

    def _sentences(self, outputs: CaptionOutputs, targets) -> tuple[list[str], list[list[str]]]:
        vocab = self._vocab_list
        if vocab is None:
            raise RuntimeError("call task.metrics(dataset) before update_metrics")
        preds = [words(caption_ids(c, EOS, PAD), vocab) for c in outputs.captions.cpu()]
        refs = [[words(r, vocab) for r in rs] for rs in targets["references"]]
        return preds, refs

    def update_metrics(self, metrics, outputs: CaptionOutputs, targets):
        preds, refs = self._sentences(outputs, targets)
        for m in metrics.values():
            m.update(preds, refs)

    # --- models of this task -------------------------------------------------------------------------
    def model_kwargs(self, card, info) -> dict:
        vocab = (info.extra or {}).get("vocab")
        return {"vocab_size": len(vocab)} if vocab else {}

    def output_shape(self, model, card, x):
        return (x.shape[0], 1, int(model.vocab_size))

    def example_batch(self, card, batch: int = 2, size=None, generator=None):
        x = self.example_input(card, batch, size, generator)
        vocab = int(getattr(card, "vocab_size", 0) or 1000)
        tokens = torch.randint(4, vocab, (batch, 12), generator=generator)
        tokens[:, 0], tokens[:, -1] = BOS, EOS
        return x, {"tokens": tokens, "references": [[t[1:-1].tolist()] for t in tokens]}

    def bench_spec(self, model, card, size):
        spatial = tuple(size) if size is not None else tuple(card.input_size)
        return {"input_shape": [card.in_chans, *spatial], "unit": "images/s"}

    # --- people ------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model, inputs, dataset=None):
        """(B, C, H, W) -> per image ``{"captions": [{"text", "logp"}, ...]}``, best first (beam search)."""
        vocab = _vocab(dataset.info if dataset is not None else None)
        caps = decode(model, inputs, "beam", max(self.beam_size, 1), self.temperature, self.max_len,
                      banned=self.banned, length_alpha=self.length_alpha)
        out = []
        for toks, scores in zip(caps.tokens.cpu(), caps.scores.cpu()):
            found = [{"text": words(caption_ids(t, EOS, PAD), vocab), "logp": round(float(s), 3)}
                     for t, s in zip(toks, scores) if torch.isfinite(s)]
            out.append({"captions": found})
        return out

    def format_prediction(self, pred: dict) -> str:
        caps = "; ".join(f"\"{c['text']}\" ({c['logp']:.2f})" for c in pred["captions"][:3])
        return f"{pred['input']}: {caps}"

    # --- run folder ---------------------------------------------------------------------------------
    @torch.no_grad()
    def caption_dataset(self, model, dataset, device, batch_size: int = 32) -> tuple[list[str], list[list[str]]]:
        """The decoded caption and the references of every item of ``dataset`` (as sentences)."""
        vocab = _vocab(dataset.info)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=self.collate)
        preds, refs = [], []
        for images, targets in loader:
            caps = decode(model, images.to(device), self.decoding, self.beam_size, self.temperature, self.max_len,
                          banned=self.banned, length_alpha=self.length_alpha)
            preds += [words(caption_ids(c, EOS, PAD), vocab) for c in caps.tokens[:, 0].cpu()]
            refs += [[words(r, vocab) for r in rs] for rs in targets["references"]]
        return preds, refs

    @torch.no_grad()
    def pictures(self, model, dataset, run_dir: Path, device) -> list[Path]:
        run_dir = Path(run_dir)
        preds, refs = self.caption_dataset(model, dataset, device)
        names = list(getattr(dataset, "names", None) or [str(i) for i in range(len(dataset))])
        rows = [{"item": names[i], "reference": " | ".join(refs[i]), "model": preds[i]} for i in range(len(preds))]
        scores = {"bleu4": corpus_bleu(preds, refs)}
        train = _train_split(run_dir) if self.nn_baseline else None
        if train is not None:
            nn_caps = nearest_neighbour_captions(model, train, dataset, device)
            scores["bleu4_nn"] = corpus_bleu(nn_caps, refs)
            for r, c in zip(rows, nn_caps):
                r["nearest_neighbour"] = c
        best = _best_weights(model, run_dir)
        if best is not None:  # the checkpoint chosen on the validation split's BLEU-4, baseline in its features
            scores["best_bleu4"] = corpus_bleu(self.caption_dataset(best, dataset, device)[0], refs)
            if train is not None:
                scores["best_bleu4_nn"] = corpus_bleu(nearest_neighbour_captions(best, train, dataset, device), refs)
        if self.retrieval and len(dataset) <= 2000:
            scores.update(likelihood_retrieval(model, dataset, device))
        self._baseline = (tuple(getattr(dataset, "names", ())), scores)
        return [write_csv(run_dir / "captions.csv", rows),
                captions_figure(dataset, preds, run_dir / "captions.png", self.num_pictures)]

    def report(self, results: dict[str, float], dataset) -> list[str]:
        lines = [f"### Captioning: corpus BLEU-4 of {self.decoding} decoding"
                 + (f" (beam {self.beam_size})" if self.decoding == "beam" else ""), ""]
        if self._baseline is not None and self._baseline[0] == tuple(getattr(dataset, "names", ())):
            s = self._baseline[1]
            nn = (" vs the nearest-neighbour caption baseline {:.2f} (the caption of the closest training image in "
                  "the same weights' image-feature space)")
            if "best_bleu4" in s:
                lines.append(f"BLEU-4 {100 * s['best_bleu4']:.2f} (best-validation-BLEU-4 checkpoint, held-out "
                             "split)" + (nn.format(100 * s["best_bleu4_nn"]) if "best_bleu4_nn" in s else "") + ".")
                lines.append("")
            lines.append(f"BLEU-4 {100 * s['bleu4']:.2f} (final weights, held-out split)"
                         + (nn.format(100 * s["bleu4_nn"]) if "bleu4_nn" in s else "") + ".")
            lines.append("")
        if self._baseline is not None and "annotation" in self._baseline[1]:
            s = self._baseline[1]
            lines += [("Retrieval by sentence likelihood log p(sentence | image) on the same split (Sec. 5.2; ties "
                       "count against the query):"), "", "| direction | R@1 | R@5 | R@10 | median rank |",
                      "|---|---|---|---|---|"]
            for k, label in (("annotation", "image -> sentence"), ("search", "sentence -> image")):
                r = s[k]
                lines.append(f"| {label} | {r['r@1']:.1f} | {r['r@5']:.1f} | {r['r@10']:.1f} | {r['median_rank']:g} |")
            lines.append("")
        lines.append("Paper (Sec. 5, COCO 2014 val): BLEU-4 about 0.27-0.30 for the LRCN variants (CaffeNet/VGG).")
        return lines


# --- helpers used by the task, the tests and the recorded run ---------------------------------------
def corpus_bleu(preds: list[str], refs: list[list[str]], n: int = 4) -> float:
    """Corpus BLEU-n of sentences (torchmetrics BLEUScore)."""
    return float(BLEUScore(n_gram=n)(preds, refs))


@torch.no_grad()
def likelihood_retrieval(model, dataset, device="cpu") -> dict:
    """R@1/5/10 and median rank of image annotation and image search on ``dataset``, scoring every
    (image, first reference) pair by the sentence's log-likelihood (:func:`likelihood_matrix`)."""
    images, tokens = [], []
    for i in range(len(dataset)):
        x, t = dataset[i]
        images.append(x)
        tokens.append(torch.as_tensor(_refs_of(t)[0], dtype=torch.long))
    tok = torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True, padding_value=PAD).to(device)
    scores = likelihood_matrix(model, torch.stack(images).to(device), tok)
    ann, search = retrieval_ranks(scores, torch.arange(len(dataset), device=scores.device))
    return {"annotation": recall_at_k(ann.cpu()), "search": recall_at_k(search.cpu())}


def _train_split(run_dir: Path):
    """The training split of a run's data set (from its ``config.yaml``), or None."""
    import yaml

    from convzoo.data import build_dataset

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    d = yaml.safe_load(path.read_text())["data"]
    kw = dict(d.get("kwargs") or {})
    if "augment" in kw:  # the baseline indexes the training images as they are, not random crops of them
        kw["augment"] = False
    return build_dataset(d["name"], d.get("train_split") or "train", root=d.get("root"), **kw)


def _best_weights(model, run_dir: Path):
    """A copy of ``model`` holding the run's ``best.safetensors`` (the epoch with the best validation
    BLEU-4), or None when the run folder has none."""
    import copy

    from convzoo.weights import load_weights

    path = Path(run_dir) / "best.safetensors"
    if not path.is_file():
        return None
    best = copy.deepcopy(model)
    load_weights(best, path)
    return best.eval()


@torch.no_grad()
def image_features(model, dataset, device, batch_size: int = 64) -> torch.Tensor:
    """(N, D) image features ``model.encode`` of every item of ``dataset``."""
    feats = []
    for i in range(0, len(dataset), batch_size):
        x = torch.stack([dataset[j][0] for j in range(i, min(len(dataset), i + batch_size))])
        feats.append(model.encode(x.to(device)).float().cpu())
    return torch.cat(feats)


@torch.no_grad()
def nearest_neighbour_captions(model, train, evaluation, device="cpu") -> list[str]:
    """For each image of ``evaluation``, the (first) caption of the closest training image by cosine
    similarity of the model's image features (the paper-style retrieval baseline)."""
    vocab = _vocab(train.info)
    ft = F.normalize(image_features(model, train, device), dim=1)
    fe = F.normalize(image_features(model, evaluation, device), dim=1)
    nearest = (fe @ ft.T).argmax(1).tolist()
    out = []
    for j in nearest:
        tok, _ = _refs_of(train[j][1])
        out.append(words(caption_ids(torch.as_tensor(tok)[1:], EOS, PAD), vocab))
    return out


def captions_figure(dataset, preds: list[str], path: Path, n: int = 8) -> Path:
    """Held-out images with their generated captions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(dataset), len(preds))
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    extra = dataset.info.extra or {}
    mean = np.asarray(extra.get("mean", (0.0, 0.0, 0.0)), dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(extra.get("std", (1.0, 1.0, 1.0)), dtype=np.float32).reshape(-1, 1, 1)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        img = dataset[k][0].float().numpy() * std + mean
        ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))
        ax.set_title(preds[k], fontsize=8, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
