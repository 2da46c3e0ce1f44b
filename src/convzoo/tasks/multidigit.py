"""Reading a whole number from one image: the probabilistic sequence model of paper 47.

Goodfellow, Bulatov, Ibarz, Arnoud, Shet, "Multi-digit Number Recognition from Street View Imagery using
Deep Convolutional Neural Networks", ICLR 2014, arXiv 1312.6082 (seed paper 47), Sec. 3 and 5.

A number is ``S = (L, S_1, .., S_L)``; the network's features ``H`` give ``P(S | X) = P(L | H) prod_{i<=L}
P(S_i | H)`` with a 7-way length softmax (0..5 and "more than 5") and five 10-way digit softmaxes.

* Model contract: ``model(x)`` returns one tensor ``(B, 7 + 5 D)``, the length logits then digits 1..5,
  ``D = model.num_classes`` (10, or 11 for the port's extra "no digit" class). Targets (the data sets of
  :mod:`convzoo.data.svhn` / :mod:`convzoo.data.numbers`): ``(B, 6)`` int64 ``[L, d1, .., d5]``, -1 past L,
  L = 6 for "more than 5" (then the five heads score the first five digits).
* Loss (:func:`sequence_nll`, Sec. 3): ``-log P(S | X) = CE(length) + sum_{i <= L} CE(digit i)``; digits
  past the length are not scored (their logits get no gradient). ``score_absent=True`` is the port's
  loss instead: with 11-way heads every position is scored, class 10 past the length.
* Decoding (:func:`decode`, Sec. 3): ``argmax_L log P(L) + sum_{i <= L} max_s log P(S_i = s)``, exact
  because the digit heads are independent given ``H`` (the tests compare it with brute force over every
  sequence); its value is ``log P(S* | X)``, the confidence.
* Metrics (:class:`SequenceMetrics`, torchmetrics): ``seq_acc`` (whole number right: length and every
  digit; the headline), ``digit_acc`` (true digit positions read right by the decoded number),
  ``length_acc``, and ``coverage`` = coverage at ``coverage_accuracy`` (default 98 %) accuracy: the
  largest fraction of the images, taken in order of confidence, whose sequence accuracy is still at
  least 98 % (:func:`coverage_at_accuracy`; the operating point of Sec. 5 matched to human operators).
* People: ``convzoo predict RUN number.png`` prints the number read from a crop around a number (the
  image is resized to the set's ``resize`` and centre-cropped as in evaluation); pictures: held-out
  crops with the number read, and the accuracy-coverage curve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection

from convzoo.data.svhn import center_crop, standardize
from convzoo.errors import ConvzooError
from convzoo.tasks.base import CONTRACT_CHECKS, IMAGE_SUFFIXES, Task, read_image, register_task

__all__ = ["DigitSequence", "SequenceMetrics", "coverage_at_accuracy", "decode", "sequence_correct",
           "sequence_log_likelihood", "sequence_nll", "split_logits"]

NUM_LENGTHS, MAX_DIGITS, NO_DIGIT = 7, 5, -1
# paper Sec. 5.1 (public SVHN): sequence accuracy, per-digit accuracy, coverage at 98 % accuracy (in %)
PAPER_SVHN = {"seq_acc": 96.03, "digit_acc": 97.84, "coverage": 95.64}


def split_logits(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 7 + 5 D) -> length logits (B, 7), digit logits (B, 5, D)."""
    d = (out.shape[-1] - NUM_LENGTHS) // MAX_DIGITS
    if d < 1 or NUM_LENGTHS + MAX_DIGITS * d != out.shape[-1]:
        raise ConvzooError(f"a digit-sequence output has 7 + 5 D columns, got {tuple(out.shape)}")
    return out[:, :NUM_LENGTHS], out[:, NUM_LENGTHS:].reshape(out.shape[0], MAX_DIGITS, d)


def _scored(targets: torch.Tensor) -> torch.Tensor:
    """(B, 6) targets -> (B, 5) bool: the digit positions inside the length (all five for L = 6)."""
    n = targets[:, 0].clamp(max=MAX_DIGITS)
    return torch.arange(MAX_DIGITS, device=targets.device) < n[:, None]


def sequence_log_likelihood(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log P(S | X) per item (B,): log P(L) + sum of log P(S_i = s_i) over the positions i <= L."""
    length, digits = split_logits(out.float())
    mask = _scored(targets)
    idx = torch.where(mask, targets[:, 1:], torch.zeros_like(targets[:, 1:]))
    lp_digits = digits.log_softmax(-1).gather(-1, idx[..., None])[..., 0]  # (B, 5)
    lp_len = length.log_softmax(-1).gather(-1, targets[:, :1])[:, 0]
    return lp_len + (lp_digits * mask).sum(1)


def sequence_nll(out: torch.Tensor, targets: torch.Tensor, score_absent: bool = False) -> dict[str, torch.Tensor]:
    """Mean ``-log P(S | X)`` over the batch, as ``{"loss", "length_nll", "digit_nll"}``.

    ``score_absent`` (potterhsu's port, 11-way heads): every position is scored, class ``D - 1`` past L."""
    length, digits = split_logits(out.float())
    len_nll = F.cross_entropy(length, targets[:, 0], reduction="none")
    mask = _scored(targets)
    if score_absent:
        if digits.shape[-1] != 11:
            raise ConvzooError("score_absent needs 11-way digit heads (class 10 = no digit), "
                               f"got {digits.shape[-1]}")
        idx = torch.where(mask, targets[:, 1:], torch.full_like(targets[:, 1:], 10))
        dig_nll = F.cross_entropy(digits.flatten(0, 1), idx.flatten(), reduction="none").view_as(idx).sum(1)
    else:
        idx = torch.where(mask, targets[:, 1:], torch.zeros_like(targets[:, 1:]))
        per = F.cross_entropy(digits.flatten(0, 1), idx.flatten(), reduction="none").view_as(idx)
        dig_nll = (per * mask).sum(1)
    return {"loss": (len_nll + dig_nll).mean(), "length_nll": len_nll.mean().detach(),
            "digit_nll": dig_nll.mean().detach()}


@torch.no_grad()
def decode(out: torch.Tensor, digit_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The most probable number: (lengths (B,), digits (B, 5) with -1 past the length, log P (B,)).

    ``argmax_L log P(L) + sum_{i <= min(L, 5)} max_s log P(S_i = s)``, ``s`` over the first ``digit_classes``
    classes (the port's "no digit" class is never read as a digit)."""
    length, digits = split_logits(out.float())
    lp_len = length.log_softmax(-1)  # (B, 7)
    best, arg = digits.log_softmax(-1)[..., :digit_classes].max(-1)  # (B, 5)
    cum = torch.cat([best.new_zeros(best.shape[0], 1), best.cumsum(1)], 1)  # (B, 6): sum of the first l
    n_scored = torch.arange(NUM_LENGTHS, device=out.device).clamp(max=MAX_DIGITS)  # L -> digits it reads
    score = lp_len + cum[:, n_scored]  # (B, 7)
    logp, lengths = score.max(1)
    keep = torch.arange(MAX_DIGITS, device=out.device) < lengths.clamp(max=MAX_DIGITS)[:, None]
    return lengths, torch.where(keep, arg, torch.full_like(arg, NO_DIGIT)), logp


def coverage_at_accuracy(confidence, correct, accuracy: float = 0.98) -> float:
    """The largest fraction of items that a confidence threshold keeps while the kept items are at least
    ``accuracy`` correct (items of equal confidence are kept or dropped together); 0 if none."""
    conf = torch.as_tensor(confidence, dtype=torch.float64).reshape(-1)
    ok = torch.as_tensor(correct, dtype=torch.float64).reshape(-1)
    n = conf.numel()
    if n == 0:
        return 0.0
    order = torch.argsort(conf, descending=True, stable=True)
    conf, ok = conf[order], ok[order]
    k = torch.arange(1, n + 1, dtype=torch.float64)
    acc = ok.cumsum(0) / k
    ends = torch.ones(n, dtype=torch.bool)
    ends[:-1] = conf[:-1] > conf[1:]  # a threshold can stop only after the last of equal confidences
    good = ends & (acc >= accuracy - 1e-12)
    return float(k[good].max() / n) if good.any() else 0.0


def sequence_correct(lengths: torch.Tensor, digits: torch.Tensor, targets: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded numbers against (B, 6) targets -> (B,) whole number read right (length and every scored
    digit), (B, 5) each digit position read right (positions past the length compare as ``NO_DIGIT``)."""
    true_digits = torch.where(_scored(targets), targets[:, 1:], torch.full_like(targets[:, 1:], NO_DIGIT))
    digit_right = digits == true_digits
    return (lengths == targets[:, 0]) & digit_right.all(1), digit_right


class SequenceMetrics(Metric):
    """Sequence, per-digit and length accuracy and coverage at ``accuracy`` over decoded numbers."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, accuracy: float = 0.98, digit_classes: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.accuracy, self.digit_classes = float(accuracy), int(digit_classes)
        for name in ("seq_correct", "len_correct", "digit_correct", "digit_total", "total"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("confidence", default=[], dist_reduce_fx="cat")
        self.add_state("correct", default=[], dist_reduce_fx="cat")

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        lengths, digits, logp = decode(outputs, self.digit_classes)
        mask = _scored(targets)
        right, digit_right = sequence_correct(lengths, digits, targets)
        self.seq_correct += right.sum()
        self.len_correct += (lengths == targets[:, 0]).sum()
        self.digit_correct += (digit_right & mask).sum()
        self.digit_total += mask.sum()
        self.total += targets.shape[0]
        self.confidence.append(logp.double())
        self.correct.append(right)

    def compute(self) -> dict[str, torch.Tensor]:
        conf = torch.cat(self.confidence) if isinstance(self.confidence, list) and self.confidence else \
            (self.confidence if isinstance(self.confidence, torch.Tensor) else torch.zeros(0))
        ok = torch.cat(self.correct) if isinstance(self.correct, list) and self.correct else \
            (self.correct if isinstance(self.correct, torch.Tensor) else torch.zeros(0))
        n = self.total.clamp(min=1)
        return {"seq_acc": self.seq_correct / n, "length_acc": self.len_correct / n,
                "digit_acc": self.digit_correct / self.digit_total.clamp(min=1),
                "coverage": torch.tensor(coverage_at_accuracy(conf.cpu(), ok.cpu(), self.accuracy))}


def _number(length: int, digits) -> str:
    s = "".join(str(int(d)) for d in digits[:min(length, MAX_DIGITS)])
    return s + "+" if length > MAX_DIGITS else s


@register_task("digit_sequence")
class DigitSequence(Task):
    monitor = "seq_acc"
    monitor_mode = "max"
    contract_checks = CONTRACT_CHECKS - {"num_classes", "embedding", "features"}
    input_suffixes = IMAGE_SUFFIXES + (".npy",)

    def __init__(self, score_absent: bool = False, coverage_accuracy: float = 0.98, num_pictures: int = 24):
        """``score_absent``: the port's loss (11-way heads, every position scored); ``coverage_accuracy``:
        the accuracy at which coverage is reported (paper: 98 %)."""
        super().__init__(score_absent=score_absent, coverage_accuracy=coverage_accuracy, num_pictures=num_pictures)
        self.score_absent, self.coverage_accuracy = bool(score_absent), float(coverage_accuracy)
        self.num_pictures = int(num_pictures)

    def loss(self, outputs, targets):
        return sequence_nll(outputs, targets, self.score_absent)

    def metrics(self, dataset) -> MetricCollection:
        return MetricCollection({"seq": SequenceMetrics(self.coverage_accuracy)})

    # --- models of this task ------------------------------------------------------------------------
    def output_shape(self, model, card, x):
        return (x.shape[0], NUM_LENGTHS + MAX_DIGITS * int(getattr(model, "num_classes", card.num_classes)))

    def example_batch(self, card, batch=2, size=None, generator=None):
        x = self.example_input(card, batch, size, generator)
        lengths = torch.randint(1, MAX_DIGITS + 1, (batch,), generator=generator)
        digits = torch.randint(0, 10, (batch, MAX_DIGITS), generator=generator)
        digits = torch.where(torch.arange(MAX_DIGITS) < lengths[:, None], digits, torch.full_like(digits, NO_DIGIT))
        return x, torch.cat([lengths[:, None], digits], 1)

    def bench_spec(self, model, card, size):
        spatial = tuple(size) if size is not None else tuple(card.input_size)
        return {"input_shape": [card.in_chans, *spatial], "unit": "images/s"}

    def fits_model(self, card, info) -> bool:
        return info.in_chans == card.in_chans and info.task == self.name

    # --- people ---------------------------------------------------------------------------------------
    def read_input(self, path: Path, card, info) -> torch.Tensor:
        """A crop around a number -> (1, 3, crop, crop): resized to the set's ``resize`` (or the card's size
        / crop_pct), centre-cropped and mean-subtracted as in evaluation."""
        if path.suffix.lower() == ".npy":
            return super().read_input(path, card, info)
        from PIL import Image

        crop = int(info.input_size[0]) if info is not None and info.input_size else int(card.input_size[0])
        resize = int(info.extra.get("resize", round(crop / card.crop_pct))) if info is not None else \
            round(crop / card.crop_pct)
        rgb = Image.fromarray(read_image(path)).resize((resize, resize), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)
        return standardize(center_crop(x, crop))[None]

    @torch.no_grad()
    def predict(self, model, inputs, dataset=None):
        """Per image ``{"number": "123", "length": 3, "probability": P(S* | X), "digits": [...]}``."""
        out = model(inputs)
        lengths, digits, logp = decode(out)
        return [{"number": _number(int(n), d.tolist()), "length": int(n), "probability": float(p.exp()),
                 "digits": [int(v) for v in d.tolist() if v >= 0]} for n, d, p in zip(lengths, digits, logp)]

    def format_prediction(self, pred: dict) -> str:
        if "number" not in pred:
            return super().format_prediction(pred)
        more = " (more than 5 digits)" if pred["length"] > MAX_DIGITS else ""
        return f"{pred['input']}: {pred['number'] or '(no digits)'}{more}  P = {pred['probability']:.3f}"

    # --- run folder -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _read_all(self, model, dataset, device, limit: int | None = None):
        loader = torch.utils.data.DataLoader(dataset, batch_size=256)
        outs, ys = [], []
        for x, y in loader:
            outs.append(model(x.to(device)).float().cpu())
            ys.append(y)
            if limit is not None and sum(len(t) for t in ys) >= limit:
                break
        return torch.cat(outs), torch.cat(ys)

    @torch.no_grad()
    def pictures(self, model, dataset, run_dir: Path, device) -> list[Path]:
        """``numbers_read.png`` (held-out crops, the number read; red when wrong) and ``coverage.png``
        (sequence accuracy against coverage as the confidence threshold falls)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        model.eval()
        out, y = self._read_all(model, dataset, device)
        lengths, digits, logp = decode(out)
        truth = [_number(int(t[0]), [v for v in t[1:].tolist() if v >= 0]) for t in y]
        read = [_number(int(n), d.tolist()) for n, d in zip(lengths, digits)]
        run_dir = Path(run_dir)
        k = min(self.num_pictures, len(dataset))
        cols = 8
        fig, axes = plt.subplots((k + cols - 1) // cols, cols, figsize=(2 * cols, 2.2 * ((k + cols - 1) // cols)),
                                 squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i >= k:
                continue
            img = dataset[i][0]
            img = (img - img.min()) / (img.max() - img.min()).clamp(min=1e-6)
            ax.imshow(img.permute(1, 2, 0).numpy())
            ax.set_title(f"{read[i]} ({truth[i]})" if read[i] != truth[i] else read[i],
                         color="red" if read[i] != truth[i] else "black", fontsize=9)
        fig.tight_layout()
        grid = run_dir / "numbers_read.png"
        fig.savefig(grid, dpi=80)
        plt.close(fig)
        ok = torch.tensor([a == b for a, b in zip(read, truth)], dtype=torch.float64)
        order = torch.argsort(logp.double(), descending=True)
        acc = ok[order].cumsum(0) / torch.arange(1, len(ok) + 1)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(np.arange(1, len(ok) + 1) / len(ok), acc.numpy())
        ax.axhline(self.coverage_accuracy, color="grey", ls="--")
        ax.set_xlabel("coverage (most confident fraction kept)")
        ax.set_ylabel("sequence accuracy")
        ax.set_title(f"coverage at {100 * self.coverage_accuracy:.0f}% accuracy: "
                     f"{100 * coverage_at_accuracy(logp, ok, self.coverage_accuracy):.1f}%")
        fig.tight_layout()
        curve = run_dir / "coverage.png"
        fig.savefig(curve, dpi=80)
        plt.close(fig)
        return [grid, curve]

    def report(self, results: dict[str, float], dataset) -> list[str]:
        def get(name):
            for key in (name, f"test/{name}", f"test_{name}"):
                if key in results:
                    return 100 * float(results[key])
            return None

        seq, dig, cov = get("seq_acc"), get("digit_acc"), get("coverage")
        lines = [("### Multi-digit numbers: sequence accuracy, per-digit accuracy, coverage at "
                  f"{100 * self.coverage_accuracy:.0f} % accuracy"), ""]
        if seq is not None:
            lines += [(f"Sequence accuracy {seq:.2f} %, per-digit accuracy {dig:.2f} %, coverage at "
                       f"{100 * self.coverage_accuracy:.0f} % accuracy {cov:.2f} % (test split)."), ""]
        where = "SVHN test" if dataset.info.name == "svhn_multidigit" else f"SVHN test; this run: '{dataset.info.name}'"
        lines.append(f"Paper (Sec. 5.1, {where}): sequence accuracy {PAPER_SVHN['seq_acc']} %, per-digit "
                     f"{PAPER_SVHN['digit_acc']} %, coverage at 98 % accuracy {PAPER_SVHN['coverage']} %.")
        return lines
