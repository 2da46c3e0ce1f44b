"""Frozen CNN features reused off the shelf: linear SVMs for recognition, L2 distances for retrieval.

The pipeline of "CNN Features off-the-shelf: an Astounding Baseline for Recognition" (Razavian, Azizpour,
Sullivan, Carlsson; CVPR 2014 DeepVision workshop; arXiv 1403.6382; seed paper 7), for ANY registered model
(the paper's own backbone, OverFeat, is :mod:`convzoo.models.overfeat`):

- :class:`OffTheShelfFeatures` (Sec. 2): the frozen network (eval mode, no gradients) run up to one named layer
  (a forward hook; the rest of the network is not computed), its output flattened (or pooled), an optional
  component-wise signed power transform ``sign(x) |x|^p`` and L2 normalisation to unit length. The default
  layer is the model's ``offtheshelf_layer`` (OverFeat: the first fc after ReLU) or else the pooled pre-logits
  embedding ``forward_head(forward_features(x), pre_logits=True)``.
- :func:`jitter` (Sec. 3, "CNNaug"): extra training copies of each image: crops (four corners and the centre
  at ``crop_scale`` of the side, resized back), small rotations and, for each of those and the original, the
  horizontal flip. Test images are used as they are.
- :class:`LinearSVM` (Sec. 3): one-vs-all linear SVMs (scikit-learn ``LinearSVC``, liblinear: the squared hinge
  loss, L2 regularisation) with C chosen by stratified K-fold cross-validation on the training features; a
  label matrix (N, K) of 0/1 trains one SVM per attribute (Sec. 3.4).
- :class:`CNNSVMPipeline`: features -> (jitter) -> normalisation -> LinearSVM: ``fit(images, labels)``,
  ``predict``, ``decision_function``.
- :class:`OffTheShelfRetrieval` (Sec. 3.5): descriptors L2-normalised, optionally PCA-whitened on a reference
  set and re-normalised, ranked by Euclidean distance; with ``levels`` > 1 the *spatial search*: each image is
  described by sub-patches at several scales (level l: an l x l grid of square patches of side 2 / (l + 1) of
  the image side, overlapping by half; level 1 is the whole image) and the distance of a query to a reference
  image is the mean over the query's patches of the distance to the reference's nearest patch.
- Evaluation (the "offtheshelf_eval" protocol): :func:`average_precision` (the standard non-interpolated AP,
  equal to scikit-learn's ``average_precision_score``), :func:`voc07_ap` (Pascal VOC 2007's 11-point
  interpolated AP), :func:`mean_average_precision` over classes or attributes, :func:`mean_class_accuracy`
  (MIT-67, CUB, Flowers), :func:`mean_auc` (attributes), :func:`oxford_ap` / :func:`retrieval_map` (instance
  retrieval with "junk" images ignored, as the Oxford/Paris ``compute_ap``: trapezoids between recall points)
  and :func:`ukbench_score` (mean number of the 4 relevant images in the top 4).
- :func:`write_features`: the features of a list of files as ``.npy`` (+ a names file) or ``.npz``; the
  ``convzoo features`` command.

Departures: the paper's exponent of the power transform is not restated here (``power`` is a parameter, off by
default); jitter sizes (crop scale, angles) are parameters because the paper gives no numbers; a
``spatial="avg"|"max"`` option pools a convolutional layer's map instead of flattening it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = [
    "CNNSVMPipeline", "LinearSVM", "OffTheShelfFeatures", "OffTheShelfRetrieval", "average_precision",
    "caption_head_noun", "jitter", "l2_normalise", "layer_names", "mean_auc", "mean_average_precision",
    "mean_class_accuracy", "oxford_ap", "pca_whitening", "power_normalise", "retrieval_map", "spatial_patches",
    "ukbench_score", "voc07_ap", "write_features",
]

SPATIAL = ("flatten", "avg", "max")


# --- normalisation ---------------------------------------------------------------------------------
def power_normalise(x: np.ndarray | torch.Tensor, power: float):
    """Component-wise ``sign(x) |x|^power`` (numpy or torch)."""
    if isinstance(x, torch.Tensor):
        return x.sign() * x.abs().pow(power)
    return np.sign(x) * np.abs(x) ** power


def l2_normalise(x: np.ndarray | torch.Tensor, eps: float = 1e-12):
    """Rows scaled to unit Euclidean length (rows of zeros stay zero)."""
    if isinstance(x, torch.Tensor):
        return F.normalize(x, dim=-1, eps=eps)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


# --- features ---------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised by the hook once the chosen layer ran: the rest of the network is not computed."""


def layer_names(model: nn.Module) -> list[str]:
    """Every named module of ``model`` a feature layer can be read from."""
    return [n for n, _ in model.named_modules() if n]


class OffTheShelfFeatures(nn.Module):
    """Frozen features of one named layer of ``model`` (module docstring).

    Args:
        model: any network; it is put in eval mode and its parameters stop requiring gradients.
        layer: a name from :func:`layer_names`; None: ``model.offtheshelf_layer`` if set, else the pooled
            pre-logits embedding of a Backbone (``forward_head(..., pre_logits=True)``).
        spatial: what to do with a map (B, C, *spatial): "flatten" (the paper: OverFeat's fc output is 1x1),
            "avg" or "max" over the spatial dims.
        power: exponent of the signed power transform (None: none).
        l2: L2-normalise each feature vector (the paper's descriptors are unit length).
    """

    def __init__(self, model: nn.Module, layer: str | None = None, *, spatial: str = "flatten",
                 power: float | None = None, l2: bool = True):
        super().__init__()
        if spatial not in SPATIAL:
            raise ConvzooError(f"spatial must be one of {', '.join(SPATIAL)}, got {spatial!r}")
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if layer is None:
            layer = getattr(model, "offtheshelf_layer", None)
        self.layer, self.spatial, self.power, self.l2 = layer, spatial, power, l2
        if layer is None:
            if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
                raise ConvzooError(f"{type(model).__name__} has no pre-logits embedding (forward_features / "
                                   "forward_head): name a layer (layer_names(model) lists them)")
            self._module = None
        else:
            names = dict(model.named_modules())
            if layer not in names or not layer:
                from convzoo.errors import suggest

                close = suggest(str(layer), [n for n in names if n])
                hint = f"; did you mean {', '.join(close)}?" if close else " (layer_names(model) lists them)"
                raise ConvzooError(f"no layer {layer!r} in {type(model).__name__}{hint}")
            self._module = names[layer]

    def train(self, mode: bool = True) -> OffTheShelfFeatures:
        super().train(mode)
        self.model.eval()  # frozen: BatchNorm statistics and dropout stay in evaluation mode
        return self

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The chosen layer's output, as the network computes it (no flattening or normalisation)."""
        if self._module is None:
            return self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        out: list[torch.Tensor] = []

        def hook(_m, _i, o):
            out.append(o[0] if isinstance(o, (tuple, list)) else o)
            raise _Stop

        handle = self._module.register_forward_hook(hook)
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not out:
            raise ConvzooError(f"layer {self.layer!r} did not run in the forward pass of {type(self.model).__name__}")
        return out[0]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, D)
        f = self.raw(x)
        if f.dim() > 2:
            if self.spatial == "avg":
                f = f.mean(tuple(range(2, f.dim())))
            elif self.spatial == "max":
                f = f.amax(tuple(range(2, f.dim())))
        f = f.flatten(1).float()
        if self.power is not None:
            f = power_normalise(f, self.power)
        return l2_normalise(f) if self.l2 else f

    def extract(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """Features of ``images`` (N, C, H, W) in batches, as float32 numpy (N, D)."""
        device = next(self.model.parameters(), torch.empty(0)).device
        chunks = [self(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0), np.float32)


# --- jittered training copies (CNNaug) --------------------------------------------------------------
def _crop_resize(x: torch.Tensor, top: int, left: int, h: int, w: int) -> torch.Tensor:
    crop = x[..., top:top + h, left:left + w]
    return F.interpolate(crop, size=x.shape[-2:], mode="bilinear", align_corners=False, antialias=True)


def _rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotation about the centre (bilinear, borders filled by replication of the edge)."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype,
                         device=x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def jitter(images: torch.Tensor, crop_scale: float | None = 0.9, rotations: Sequence[float] = (-5.0, 5.0),
           flip: bool = True) -> torch.Tensor:
    """Jittered copies of ``images`` (N, C, H, W) for the SVM's training set (paper Sec. 3, CNNaug).

    Views, in order: the original, the five crops (four corners and the centre, side ``crop_scale`` x the image
    side, resized back) when ``crop_scale`` is given, one rotation per angle of ``rotations`` (degrees); with
    ``flip`` each view is followed by its horizontal mirror. Returns (V * N, C, H, W), view-major: copy ``v`` of
    image ``i`` is row ``v * N + i``; V = (1 + 5 [crops] + len(rotations)) x (2 if flip else 1). Labels of the
    copies: ``np.tile(labels, V)``.
    """
    if images.dim() != 4:
        raise ConvzooError(f"jitter takes a batch of images (N, C, H, W), got shape {tuple(images.shape)}")
    x = images.float()
    h, w = x.shape[-2:]
    views = [x]
    if crop_scale is not None:
        if not 0 < crop_scale < 1:
            raise ConvzooError(f"crop_scale must be in (0, 1), got {crop_scale!r}")
        ch, cw = max(1, round(h * crop_scale)), max(1, round(w * crop_scale))
        for top, left in ((0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)):
            views.append(_crop_resize(x, top, left, ch, cw))
    views += [_rotate(x, float(d)) for d in rotations]
    if flip:
        views = [v for view in views for v in (view, view.flip(-1))]
    return torch.cat(views)


def num_jitter_views(crop_scale: float | None = 0.9, rotations: Sequence[float] = (-5.0, 5.0),
                     flip: bool = True) -> int:
    """V of :func:`jitter` for these settings."""
    return (1 + (5 if crop_scale is not None else 0) + len(rotations)) * (2 if flip else 1)


# --- linear SVMs --------------------------------------------------------------------------------------
class LinearSVM:
    """One-vs-all linear SVMs (scikit-learn ``LinearSVC``) with C chosen by cross-validation.

    ``y`` of shape (N,) (class indices: one SVM per class, prediction = argmax of the scores) or (N, K) of 0/1
    (attributes: one binary SVM per column, prediction = score > 0). ``Cs``: the grid; the C with the best
    mean accuracy over ``cv`` stratified folds (per attribute for a label matrix) is refit on all the data.
    A single C (``Cs=(C,)``) skips the cross-validation.
    """

    def __init__(self, Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0), cv: int = 3, seed: int = 0,
                 max_iter: int = 5000):
        self.Cs, self.cv, self.seed, self.max_iter = tuple(Cs), cv, seed, max_iter
        self.C_: float | list[float] | None = None

    def _svc(self, C: float):
        from sklearn.svm import LinearSVC

        return LinearSVC(C=C, max_iter=self.max_iter, random_state=self.seed)

    def _pick_C(self, X: np.ndarray, y: np.ndarray) -> float:
        if len(self.Cs) == 1:
            return self.Cs[0]
        from sklearn.model_selection import StratifiedKFold, cross_val_score

        folds = min(self.cv, int(np.bincount(y.astype(np.int64)).min()))
        if folds < 2:  # a class with one example: nothing to validate on
            return self.Cs[len(self.Cs) // 2]
        cv = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        scores = [cross_val_score(self._svc(C), X, y, cv=cv).mean() for C in self.Cs]
        return self.Cs[int(np.argmax(scores))]

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearSVM:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        X, y = np.asarray(X), np.asarray(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if y.ndim == 1:
                self.multilabel = False
                self.C_ = self._pick_C(X, y)
                self.svms_ = [self._svc(self.C_).fit(X, y)]
            else:
                self.multilabel = True
                self.C_ = [self._pick_C(X, y[:, k]) for k in range(y.shape[1])]
                self.svms_ = [self._svc(C).fit(X, y[:, k]) for k, C in enumerate(self.C_)]
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """(N, K) scores: one column per class (or attribute)."""
        if self.multilabel:
            return np.stack([s.decision_function(X) for s in self.svms_], 1)
        s = self.svms_[0].decision_function(X)
        return np.stack([-s, s], 1) if s.ndim == 1 else s  # two classes: liblinear keeps one column

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.multilabel:
            return (self.decision_function(X) > 0).astype(np.int64)
        return self.svms_[0].predict(X)


class CNNSVMPipeline:
    """Off-the-shelf recognition (paper Sec. 3): frozen features -> (jittered training copies) -> linear SVMs.

    ``features``: an :class:`OffTheShelfFeatures`. ``augment``: train on the :func:`jitter` copies too
    (CNNaug-SVM; ``jitter_kwargs`` go to :func:`jitter`). ``svm``: a :class:`LinearSVM` (default grid).
    """

    def __init__(self, features: OffTheShelfFeatures, svm: LinearSVM | None = None, augment: bool = False,
                 batch_size: int = 64, **jitter_kwargs):
        self.features, self.svm = features, svm or LinearSVM()
        self.augment, self.batch_size, self.jitter_kwargs = augment, batch_size, jitter_kwargs

    def transform(self, images: torch.Tensor) -> np.ndarray:
        return self.features.extract(images, self.batch_size)

    def fit(self, images: torch.Tensor, labels) -> CNNSVMPipeline:
        labels = np.asarray(labels)
        if self.augment:
            copies = jitter(images, **self.jitter_kwargs)
            reps = len(copies) // len(images)
            X = self.transform(copies)
            labels = np.tile(labels, (reps,) + (1,) * (labels.ndim - 1))
        else:
            X = self.transform(images)
        self.svm.fit(X, labels)
        return self

    def decision_function(self, images: torch.Tensor) -> np.ndarray:
        return self.svm.decision_function(self.transform(images))

    def predict(self, images: torch.Tensor) -> np.ndarray:
        return self.svm.predict(self.transform(images))


# --- evaluation ---------------------------------------------------------------------------------------
def average_precision(scores, labels) -> float:
    """Non-interpolated AP: sum over thresholds of (R_n - R_{n-1}) P_n, tied scores forming one threshold
    (equals ``sklearn.metrics.average_precision_score``). NaN without positives."""
    s, y = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels).ravel() > 0
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    precision, recall = tp / (last + 1), tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def voc07_ap(scores, labels) -> float:
    """Pascal VOC 2007's 11-point interpolated AP: the mean over r in {0, 0.1, ..., 1} of the highest precision
    at a recall >= r (VOCdevkit ``VOCevalcls``: ranked by score; labels > 0 positive, < 0 negative, 0 "difficult",
    ignored)."""
    s, y = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels).ravel()
    keep = y != 0
    s, y = s[keep], y[keep] > 0
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    tp = np.cumsum(y[order])
    precision, recall = tp / np.arange(1, len(tp) + 1), tp / y.sum()
    return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                          for t in np.linspace(0, 1, 11)]))


def mean_average_precision(scores, labels, mode: str = "standard") -> float:
    """Mean over columns of AP of ``scores`` (N, K) against ``labels`` (N, K) of 0/1 (or class indices (N,):
    one-hot). ``mode``: "standard" (:func:`average_precision`) or "voc07" (:func:`voc07_ap`, 0 counts negative
    here). Columns without positives are skipped."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = np.eye(scores.shape[1], dtype=np.int64)[labels]
    if mode == "voc07":
        labels = np.where(labels > 0, 1, -1)
        aps = [voc07_ap(scores[:, k], labels[:, k]) for k in range(scores.shape[1])]
    elif mode == "standard":
        aps = [average_precision(scores[:, k], labels[:, k]) for k in range(scores.shape[1])]
    else:
        raise ConvzooError(f"mode must be 'standard' or 'voc07', got {mode!r}")
    aps = [a for a in aps if not math.isnan(a)]
    return float(np.mean(aps)) if aps else float("nan")


def mean_class_accuracy(pred, labels) -> float:
    """Mean over classes of the fraction of that class's examples predicted right (MIT-67, CUB, Flowers)."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    return float(np.mean([(pred[labels == c] == c).mean() for c in np.unique(labels)]))


def mean_auc(scores, labels) -> float:
    """Mean ROC AUC over attributes (columns with both values only; scikit-learn ``roc_auc_score``)."""
    from sklearn.metrics import roc_auc_score

    scores, labels = np.asarray(scores), np.asarray(labels)
    aucs = [roc_auc_score(labels[:, k], scores[:, k]) for k in range(labels.shape[1])
            if 0 < labels[:, k].sum() < len(labels)]
    return float(np.mean(aucs)) if aucs else float("nan")


def oxford_ap(ranking, positives, junk=()) -> float:
    """AP of one ranked list in the Oxford/Paris protocol (``compute_ap.cpp``): junk items are skipped (neither
    hit nor miss) and precision is integrated with trapezoids between consecutive recall points."""
    pos, junk = set(positives), set(junk)
    if not pos:
        return float("nan")
    ap, old_recall, old_precision, hits, seen = 0.0, 0.0, 1.0, 0, 0
    for item in ranking:
        if item in junk:
            continue
        seen += 1
        if item in pos:
            hits += 1
        recall, precision = hits / len(pos), hits / seen
        ap += (recall - old_recall) * (old_precision + precision) / 2
        old_recall, old_precision = recall, precision
    return ap


def retrieval_map(distances, relevant, junk=None, protocol: str = "standard") -> float:
    """Mean AP over queries of a (Q, M) distance matrix (smaller = closer) with (Q, M) boolean ``relevant``
    (and ``junk``) masks. ``protocol``: "standard" (non-interpolated AP of the ranking, junk removed) or
    "oxford" (:func:`oxford_ap`). Queries without a relevant item are skipped."""
    d, rel = np.asarray(distances, dtype=np.float64), np.asarray(relevant, dtype=bool)
    junk = np.zeros_like(rel) if junk is None else np.asarray(junk, dtype=bool)
    aps = []
    for q in range(d.shape[0]):
        if not rel[q].any():
            continue
        if protocol == "oxford":
            order = np.argsort(d[q], kind="mergesort")
            aps.append(oxford_ap(order, np.nonzero(rel[q])[0], np.nonzero(junk[q])[0]))
        elif protocol == "standard":
            keep = ~junk[q]
            aps.append(average_precision(-d[q][keep], rel[q][keep]))
        else:
            raise ConvzooError(f"protocol must be 'standard' or 'oxford', got {protocol!r}")
    return float(np.mean(aps)) if aps else float("nan")


def ukbench_score(distances, groups) -> float:
    """UKBench N-S score: for each query image, how many of the 4 images of its group (itself included) are
    among its 4 nearest, averaged (4 is perfect). ``distances`` (N, N) over the whole set, ``groups`` (N,)."""
    d, g = np.asarray(distances), np.asarray(groups)
    top = np.argsort(d, axis=1, kind="mergesort")[:, :4]
    return float(np.mean((g[top] == g[:, None]).sum(1)))


# --- retrieval ------------------------------------------------------------------------------------------
def pca_whitening(X: np.ndarray, dim: int | None = None, eps: float = 1e-6):
    """(mean, projection) of PCA-whitening fitted on the rows of ``X``: ``(x - mean) @ projection`` has identity
    covariance on ``X`` in its first ``dim`` components (all with variance above ``eps`` when None)."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    var = s ** 2 / max(len(X) - 1, 1)
    k = int((var > eps * max(var.max(), eps)).sum()) if dim is None else min(dim, len(var))
    return mean, (vt[:k].T / np.sqrt(var[:k]))


def spatial_patches(images: torch.Tensor, levels: int = 1, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Square sub-patches of ``images`` (N, C, H, W) for the spatial search, resized to ``size`` (default H x W).

    Level l in 1..levels: an l x l grid of patches of side 2 s / (l + 1) (s = min(H, W)) at stride s / (l + 1),
    so neighbours overlap by half; level 1 is the centred square of side s. Returns (N, P, C, h, w) with
    P = sum of l^2 (1, 5, 14, 30 for 1-4 levels)."""
    h, w = images.shape[-2:]
    out_size = (h, w) if size is None else ((size, size) if isinstance(size, int) else tuple(size))
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    patches = []
    for lev in range(1, levels + 1):
        side, step = 2 * s / (lev + 1), s / (lev + 1)
        for i in range(lev):
            for j in range(lev):
                top, left = y0 + round(i * step), x0 + round(j * step)
                p = images[..., top:top + round(side), left:left + round(side)].float()
                patches.append(F.interpolate(p, size=out_size, mode="bilinear", align_corners=False,
                                             antialias=True) if p.shape[-2:] != out_size else p)
    return torch.stack(patches, 1)


class OffTheShelfRetrieval:
    """Instance retrieval with off-the-shelf descriptors (paper Sec. 3.5; module docstring).

    ``features``: an :class:`OffTheShelfFeatures` (L2-normalised). ``whiten``: fit PCA-whitening on the
    reference set's descriptors in :meth:`index` (or on ``fit_on`` images) and re-normalise; ``dim`` keeps that
    many components. ``levels``: spatial-search levels (1: one descriptor per image).
    """

    def __init__(self, features: OffTheShelfFeatures, whiten: bool = False, dim: int | None = None,
                 levels: int = 1, patch_size: int | None = None, batch_size: int = 64):
        self.features, self.whiten, self.dim = features, whiten, dim
        self.levels, self.patch_size, self.batch_size = levels, patch_size, batch_size
        self.whitening = None

    def describe(self, images: torch.Tensor) -> np.ndarray:
        """(N, P, D) descriptors: P patches per image (P = 1 without spatial search)."""
        patches = spatial_patches(images, self.levels, self.patch_size) if self.levels > 1 else images[:, None]
        n, p = patches.shape[:2]
        f = self.features.extract(patches.flatten(0, 1), self.batch_size)
        f = f.reshape(n, p, -1)
        if self.whitening is not None:
            mean, proj = self.whitening
            f = l2_normalise((f - mean) @ proj).astype(np.float32)
        return f

    def fit_whitening(self, images: torch.Tensor) -> OffTheShelfRetrieval:
        self.whitening = None
        f = self.describe(images)
        self.whitening = pca_whitening(f.reshape(-1, f.shape[-1]), self.dim)
        return self

    def index(self, images: torch.Tensor) -> OffTheShelfRetrieval:
        """Describe the reference images (fitting the whitening on them first when asked and not yet fitted)."""
        if self.whiten and self.whitening is None:
            self.fit_whitening(images)
        self.reference_ = self.describe(images)
        return self

    @staticmethod
    def patch_distances(q: np.ndarray, r: np.ndarray) -> np.ndarray:
        """(Q, M) distances between (Q, P, D) and (M, P', D) descriptors: the mean over a query's patches of the
        Euclidean distance to the reference image's nearest patch (one patch each: the plain L2 distance)."""
        qf, rf = q.reshape(-1, q.shape[-1]).astype(np.float64), r.reshape(-1, r.shape[-1]).astype(np.float64)
        d2 = (qf ** 2).sum(1)[:, None] + (rf ** 2).sum(1)[None] - 2 * qf @ rf.T
        d = np.sqrt(np.maximum(d2, 0)).reshape(q.shape[0], q.shape[1], r.shape[0], r.shape[1])
        return d.min(3).mean(1)

    def distances(self, queries: torch.Tensor) -> np.ndarray:
        """(Q, M) distances of ``queries`` to the indexed references."""
        return self.patch_distances(self.describe(queries), self.reference_)

    def search(self, queries: torch.Tensor, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """(indices, distances) of the ``k`` nearest references of each query, nearest first."""
        d = self.distances(queries)
        order = np.argsort(d, axis=1, kind="mergesort")[:, :k]
        return order, np.take_along_axis(d, order, 1)


# --- labels for retrieval on captioned photos ----------------------------------------------------------
_CUT = frozenset([  # words that end a caption's first noun phrase
    "in", "on", "of", "with", "for", "from", "at", "by", "to", "into", "over", "under", "near", "and", "or", "but",
    "that", "which", "who", "whose", "is", "are", "was", "were", "has", "have", "had", "being", "been", "used",
    "called", "covered", "wearing", "holding", "made", "carrying", "sitting", "standing", "playing", "eating",
    "showing"])
_SKIP = frozenset(["a", "an", "the", "this", "that", "these", "those", "some", "one", "two", "three", "its", "his",
                   "her", "their"])


def caption_head_noun(caption: str) -> str:
    """The head noun of a caption's first noun phrase, by a rule (no tagger offline): the last word before the
    first preposition, conjunction, verb or participle of a short list (or the end), articles dropped, a plural
    "s" kept. "A Sumatran tiger." -> "tiger"; "A flower covered in dew drops." -> "flower"; "The letter J." -> "j"."""
    import re

    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", caption.lower())
    phrase = []
    for w in words:
        if w in _CUT and phrase:
            break
        if w not in _SKIP:
            phrase.append(w)
    return phrase[-1] if phrase else ""


# --- files --------------------------------------------------------------------------------------------
def write_features(features: OffTheShelfFeatures, paths: Sequence[Path], read, out, batch_size: int = 32) -> Path:
    """Features of the files ``paths`` (``read(path) -> (n, C, H, W)`` tensor, one row per item) into ``out``:
    ``.npz`` (arrays ``features`` (N, D) float32 and ``names``), or ``.npy`` (the matrix) with the names, one a
    line, in ``<out stem>.names.txt`` beside it. Items of a file holding several (a ``.npy`` stack) are named
    ``path[i]``. Returns the path written."""
    out = Path(out)
    if out.suffix.lower() not in (".npy", ".npz"):
        raise ConvzooError(f"features output {out}: name it .npy or .npz")
    names, rows, pending, pending_names = [], [], [], []

    def flush():
        if pending:
            rows.append(features.extract(torch.cat(pending), batch_size))
            pending.clear()
            names.extend(pending_names)
            pending_names.clear()

    shape = None
    for path in paths:
        x = read(path)
        if shape is not None and tuple(x.shape[1:]) != shape:
            flush()
        shape = tuple(x.shape[1:])
        pending.append(x)
        pending_names.extend([str(path)] if len(x) == 1 else [f"{path}[{i}]" for i in range(len(x))])
        if sum(len(p) for p in pending) >= batch_size:
            flush()
    flush()
    if not rows:
        raise ConvzooError("no inputs to extract features from")
    if len({r.shape[1] for r in rows}) > 1:
        raise ConvzooError("inputs of different sizes give features of different lengths; resize them first or "
                           "pool the layer (spatial avg / max)")
    matrix = np.concatenate(rows).astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npz":
        np.savez(out, features=matrix, names=np.array(names))
    else:
        np.save(out, matrix)
        out.with_suffix(".names.txt").write_text("".join(f"{n}\n" for n in names))
    return out
