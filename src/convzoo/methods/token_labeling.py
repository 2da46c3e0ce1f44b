"""Token labelling with MixToken (Jiang et al., "All Tokens Matter: Token Labeling for Training Better Vision
Transformers", arXiv 2104.10858), as VOLO trains (arXiv 2106.13112, seed paper 51; official sail-sg/volo
``main.py`` + ``loss/cross_entropy.py``).

A method (``method: {name: token_labeling, kwargs: {...}}``) over the classification task, for a model that gives
its class-head logits and per-token aux logits apart: ``model(x, dense=True, mix=MixToken)`` -> ``(cls (B, K),
aux (B, N, K))`` (VOLO's aux head). One training step:

1. MixToken (:class:`MixToken`): after the patch embedding, a CutMix box (Yun et al. 2019) on the token grid --
   area ``(1 - lam) N`` with ``lam ~ Beta(1, 1)``, drawn on the aux grid and scaled to the patch grid -- takes
   its tokens from the batch reversed (sample i gets sample B-1-i's tokens). The model un-mixes its aux
   predictions with the same swap, so every aux prediction lines up with its own image again.
2. Loss (official ``TokenLabelCrossEntropy``): ``cls_weight * CE(cls, t_cls) + dense_weight * CE(aux, t_aux)``,
   soft-target cross-entropy averaged over samples and tokens. ``t_cls`` is the class target mixed by the
   box's true area: ``lam' t + (1 - lam') t.flip(0)``, ``lam' = 1 - box area / N``.
   - With dense score maps (the batch is ``(x, y, maps)``, maps ``(B, K, h, w)`` class scores per location, e.g.
     the NFNet-F6 annotator's maps of the Token Labeling data resized to the aux grid): ``t_aux`` is the map
     (resized bilinearly to the aux grid when its size differs, and renormalised to sum 1 per location).
   - Without maps (every data set here): the fallback the official code and the TokenLabeling README
     document for data without label maps -- the image's ground-truth label as the target of every token
     (``target.repeat(1, N)`` in ``TokenLabelCrossEntropy``).
   Targets are class indices (one-hot, label-smoothed by the task's ``label_smoothing``) or per-class
   probabilities (MixUp / CutMix batch transforms).

Defaults are the official ones: ``dense_weight`` 0.5, ``cls_weight`` 1.0 (``--dense-weight``, ``--cls-weight``),
MixToken on with ``beta`` 1.0 (official ``mix_token=True``, ``self.beta = 1.0``). ``ground_truth=True`` is
the official ``--ground-truth`` fine-tuning option when the batch carries the annotator's whole-image scores
as ``(x, y, maps, cls_scores)``: the class target becomes ``r cls_scores + (1 - r) onehot(y)`` with r = 0.5
when the annotator's top class is the label, else 0.9 (``TokenLabelGTCrossEntropy``).

Evaluation is the classification task's on the model's ordinary output (VOLO: class head + 0.5 x max aux).
Departure: the official ``rand_bbox`` draws with numpy; here with torch's generator (``generator`` or the
global one), so a seeded run repeats exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convzoo.errors import ConvzooError
from convzoo.methods.base import Method, register_method

__all__ = ["MixToken", "TokenLabeling", "rand_token_box", "swap_box", "token_label_loss"]


def rand_token_box(h: int, w: int, lam: float, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """CutMix box ``(y1, y2, x1, x2)`` on an h x w grid: sides ``int(h sqrt(1 - lam))`` x ``int(w sqrt(1 - lam))``
    around a uniform centre, clipped to the grid (the official ``rand_bbox``)."""
    r = (1.0 - lam) ** 0.5
    ch, cw = int(h * r), int(w * r)
    cy = int(torch.randint(0, h, (1,), generator=generator))
    cx = int(torch.randint(0, w, (1,), generator=generator))
    y1, y2 = max(cy - ch // 2, 0), min(cy + (ch + 1) // 2, h)
    x1, x2 = max(cx - cw // 2, 0), min(cx + (cw + 1) // 2, w)
    return y1, y2, x1, x2


def swap_box(x: torch.Tensor, box: tuple[int, int, int, int], scale: int = 1) -> torch.Tensor:
    """(B, H, W, C) -> a copy whose box (scaled by ``scale``) holds the batch-reversed tensor's values.

    An involution: ``swap_box(swap_box(x, b), b) == x``."""
    y1, y2, x1, x2 = (v * scale for v in box)
    out = x.clone()
    out[:, y1:y2, x1:x2] = x.flip(0)[:, y1:y2, x1:x2]
    return out


class MixToken:
    """One MixToken draw for one batch: ``mix`` the patch tokens, ``unmix`` the aux predictions.

    ``mix(tokens)`` draws lam ~ Beta(beta, beta) and a box on the aux grid (the patch grid divided by ``scale``,
    VOLO's downsampling 2) and swaps it (scaled) in the (B, H, W, C) patch tokens; ``unmix(aux)`` applies the
    same swap to (B, H / scale, W / scale, K) aux predictions. ``lam`` is then ``1 - box area / N``.
    """

    def __init__(self, beta: float = 1.0, scale: int = 2, generator: torch.Generator | None = None):
        self.beta, self.scale, self.generator = float(beta), int(scale), generator
        self.box: tuple[int, int, int, int] | None = None
        self.grid: tuple[int, int] | None = None

    def mix(self, tokens: torch.Tensor) -> torch.Tensor:
        h, w = tokens.shape[1] // self.scale, tokens.shape[2] // self.scale
        lam = self._beta()
        self.grid, self.box = (h, w), rand_token_box(h, w, lam, self.generator)
        return swap_box(tokens, self.box, self.scale)

    def _beta(self) -> float:
        """lam ~ Beta(beta, beta) from ``generator``: X / (X + Y) with X, Y ~ Gamma(beta)."""
        g = torch._standard_gamma(torch.full((2,), self.beta), generator=self.generator)
        return float(g[0] / g.sum())

    def unmix(self, aux: torch.Tensor) -> torch.Tensor:
        if self.box is None:
            raise ConvzooError("MixToken.unmix before mix: the box is drawn when the tokens are mixed")
        return swap_box(aux, self.box)

    @property
    def lam(self) -> float:
        """Share of each sample's own tokens after mixing: 1 - box area / N (1.0 before any mix)."""
        if self.box is None:
            return 1.0
        y1, y2, x1, x2 = self.box
        return 1.0 - (y2 - y1) * (x2 - x1) / (self.grid[0] * self.grid[1])


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_k target_k log softmax(logits)_k (official ``SoftTargetCrossEntropy``)."""
    return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def _as_probs(y: torch.Tensor, k: int, smoothing: float) -> torch.Tensor:
    """Class indices -> label-smoothed one-hot (B, K); per-class probabilities pass through."""
    if y.dim() == 2:
        return y.float()
    return F.one_hot(y.long(), k).float() * (1.0 - smoothing) + smoothing / k


def token_label_loss(cls: torch.Tensor, aux: torch.Tensor, target: torch.Tensor, lam: float = 1.0,
                     maps: torch.Tensor | None = None, grid: tuple[int, int] | None = None,
                     dense_weight: float = 0.5, cls_weight: float = 1.0, smoothing: float = 0.0,
                     cls_scores: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Token-labelling loss of (cls (B, K), aux (B, N, K)) logits; see the module docstring.

    ``target``: (B,) indices or (B, K) probabilities; ``lam``: MixToken's kept share; ``maps``: (B, K, h, w) dense
    scores or None (ground truth for every token); ``grid``: the aux grid (h, w), needed with maps."""
    b, n, k = aux.shape
    t = _as_probs(target, k, smoothing)
    if cls_scores is not None:  # official --ground-truth: trust the label more when the annotator disagrees
        ratio = (0.9 - 0.4 * (t.argmax(-1) == cls_scores.argmax(-1)).float()).unsqueeze(-1)
        t_cls = cls_scores.float() * ratio + t * (1 - ratio)
    else:
        t_cls = t
    if maps is None:
        t_aux = t[:, None, :].expand(b, n, k)
    else:
        if grid is None or grid[0] * grid[1] != n:
            raise ConvzooError(f"token-label maps need the aux grid (h, w) with h * w = {n} tokens, got {grid}")
        m = maps.float()
        if tuple(m.shape[-2:]) != tuple(grid):
            m = F.interpolate(m, size=tuple(grid), mode="bilinear", align_corners=False)
        m = m.clamp_min(0)
        t_aux = (m / m.sum(1, keepdim=True).clamp_min(1e-12)).flatten(2).transpose(1, 2)  # (B, N, K)
    if lam < 1.0:
        t_cls = lam * t_cls + (1.0 - lam) * t_cls.flip(0)
    loss_cls = _soft_ce(cls, t_cls)
    loss_aux = _soft_ce(aux.reshape(b * n, k), t_aux.reshape(b * n, k))
    return {"loss": cls_weight * loss_cls + dense_weight * loss_aux, "cls": loss_cls.detach(),
            "aux": loss_aux.detach()}


@register_method("token_labeling")
class TokenLabeling(Method):
    """Token labelling (+ MixToken) for models with a per-token aux head (VOLO)."""

    def __init__(self, model, task, info=None, *, dense_weight: float = 0.5, cls_weight: float = 1.0,
                 mix_token: bool = True, beta: float = 1.0, ground_truth: bool = False):
        super().__init__(model, task)
        if getattr(model, "aux_head", None) is None:
            raise ConvzooError(f"token_labeling needs a model with a per-token aux head (VOLO, use_aux_head=True); "
                               f"{type(model).__name__} has none")
        if dense_weight < 0 or cls_weight < 0 or dense_weight + cls_weight <= 0 or beta <= 0:
            raise ConvzooError(f"token_labeling needs dense_weight, cls_weight >= 0 with a positive sum and beta > 0, "
                               f"got {dense_weight}, {cls_weight}, {beta}")
        self.dense_weight, self.cls_weight = float(dense_weight), float(cls_weight)
        self.mix_token, self.beta, self.ground_truth = bool(mix_token), float(beta), bool(ground_truth)

    def training_step(self, batch) -> dict[str, torch.Tensor]:
        x, y, *extra = batch
        maps = extra[0] if extra else None
        cls_scores = extra[1] if self.ground_truth and len(extra) > 1 else None
        mix = MixToken(self.beta, scale=2) if self.mix_token else None
        cls, aux = self.model(x, dense=True, mix=mix)
        n = aux.shape[1]
        grid = mix.grid if mix is not None else None
        if maps is not None and grid is None:  # no mix: the maps' own grid when it has N locations, else square
            grid = tuple(maps.shape[-2:]) if maps.shape[-2] * maps.shape[-1] == n else (int(n ** 0.5), int(n ** 0.5))
        return token_label_loss(cls, aux, y, lam=mix.lam if mix is not None else 1.0, maps=maps, grid=grid,
                                dense_weight=self.dense_weight, cls_weight=self.cls_weight,
                                smoothing=getattr(self.task, "label_smoothing", 0.0), cls_scores=cls_scores)
