"""The bidirectional hinge ranking loss of image-text matching (paper 5), with its negative-sampling side.

Baqapuri, "Deep Learning Applied to Image and Text Matching", arXiv 1601.03478 (seed paper 5), after the
ranking objective of Karpathy & Fei-Fei / Kiros et al. that it builds on. For a batch of ``B`` matching pairs
with scores ``s[i, j] = cos(image_i, sentence_j)`` (positives on the diagonal) and margin ``alpha``:

    sentence side (contrastive sentences for each image):  sum_{j != i} max(0, alpha - s[i, i] + s[i, j])
    image side    (contrastive images for each sentence):  sum_{i != j} max(0, alpha - s[j, j] + s[i, j])

``negatives="sentence"`` keeps the first sum, ``"image"`` the second, ``"both"`` their sum (the report's
global bidirectional loss). The report's finding: the side the negatives are sampled on decides which
direction the model is good at: sentence-side negatives train the ranking of sentences for an image query
(image annotation, image -> text), image-side negatives the ranking of images for a sentence (image search).

``positives`` (B, B bool, optional) marks further pairs that are not negatives (two photos with the same
caption: "A flower." is the caption of six photos); the diagonal is always positive. ``reduction``:
``"mean"`` (default) divides the sum over all hinge terms by ``B`` (one term per positive pair and negative),
``"sum"`` is the plain sum. ``hardest=True`` keeps only the largest hinge per positive on each side (the
max-of-hinges of VSE++, Faghri et al. 2018: a later variant, off by default).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["NEGATIVES", "BidirectionalRankingLoss", "bidirectional_ranking_loss", "ranking_hinges"]

NEGATIVES = ("sentence", "image", "both")


def ranking_hinges(scores: torch.Tensor, margin: float = 0.2, positives: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(sentence-side hinges, image-side hinges), each (B, B) with zeros on positive pairs.

    ``[i, j]`` of the first is ``max(0, margin - s[i, i] + s[i, j])`` (image i, negative sentence j); of the
    second ``max(0, margin - s[j, j] + s[i, j])`` (sentence j, negative image i)."""
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square (B, B) matrix of matching pairs, got {tuple(scores.shape)}")
    diag = scores.diagonal()
    pos = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    if positives is not None:
        pos = pos | positives.to(torch.bool)
    sentence = (margin - diag[:, None] + scores).clamp(min=0).masked_fill(pos, 0.0)
    image = (margin - diag[None, :] + scores).clamp(min=0).masked_fill(pos, 0.0)
    return sentence, image


def bidirectional_ranking_loss(scores: torch.Tensor, margin: float = 0.2, negatives: str = "both",
                               positives: torch.Tensor | None = None, reduction: str = "mean",
                               hardest: bool = False) -> torch.Tensor:
    """The hinge ranking loss on (B, B) scores of B matching pairs (module docstring)."""
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {', '.join(NEGATIVES)}, got {negatives!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    sentence, image = ranking_hinges(scores, margin, positives)
    if hardest:  # the largest hinge per image (row) and per sentence (column)
        sentence, image = sentence.amax(1), image.amax(0)
    total = scores.new_zeros(())
    if negatives in ("sentence", "both"):
        total = total + sentence.sum()
    if negatives in ("image", "both"):
        total = total + image.sum()
    return total / scores.shape[0] if reduction == "mean" else total


class BidirectionalRankingLoss(nn.Module):
    """:func:`bidirectional_ranking_loss` as a module with its settings."""

    def __init__(self, margin: float = 0.2, negatives: str = "both", reduction: str = "mean", hardest: bool = False):
        super().__init__()
        if negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {', '.join(NEGATIVES)}, got {negatives!r}")
        self.margin, self.negatives, self.reduction, self.hardest = float(margin), negatives, reduction, bool(hardest)

    def forward(self, scores: torch.Tensor, positives: torch.Tensor | None = None) -> torch.Tensor:
        return bidirectional_ranking_loss(scores, self.margin, self.negatives, positives, self.reduction, self.hardest)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, negatives={self.negatives!r}, reduction={self.reduction!r}, hardest={self.hardest}"
