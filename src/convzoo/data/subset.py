"""K labelled examples per class: the semi-supervised setting of RotNet ("Unsupervised Representation
Learning by Predicting Image Rotations", arXiv 1803.07728, seed paper 20, Sec. 3.1 "Exploring the
quality of the learned features w.r.t. the number of labelled examples", Figure 5 / official
``num_imgs_per_cat``).

Registered as the data set ``few_labels``: it wraps any registered data set and keeps, of its
**train** split only, ``labels_per_class`` examples of every class; val and test pass through
unchanged (the classifier is evaluated on the full test set, as the paper). Which examples:

* ``seed: null`` (default): the first K of each class in the data set's order (the official
  ``_keep_first_k_examples_per_category``);
* ``seed: S``: K drawn at random per class with ``numpy.random.default_rng(S)``.

Both are deterministic; the kept positions are sorted (``dataset.indices``). Every other option goes
to the wrapped data set, e.g. ``data: {name: few_labels, kwargs: {of: digits, labels_per_class: 20,
size: 32}}``. A class with fewer than K training examples is an error.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from torch.utils.data import Subset

from convzoo.data.registry import build_dataset, register_dataset
from convzoo.errors import ConvzooError


def labels_of(dataset) -> np.ndarray:
    """The integer labels of a classification data set (``targets`` when it has them)."""
    targets = getattr(dataset, "targets", None)
    if targets is None:
        targets = [int(dataset[i][1]) for i in range(len(dataset))]
    return np.asarray(targets, dtype=np.int64)


def k_per_class(labels: np.ndarray, k: int, seed: int | None = None) -> np.ndarray:
    """Sorted positions of K examples of every class: the first K, or K at random with ``seed``."""
    if k < 1:
        raise ConvzooError(f"labels_per_class must be >= 1, got {k}")
    rng = np.random.default_rng(seed) if seed is not None else None
    keep = []
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        if len(where) < k:
            raise ConvzooError(f"class {int(c)} has {len(where)} training examples, fewer than labels_per_class={k}")
        keep.append(where[:k] if rng is None else np.sort(rng.choice(where, size=k, replace=False)))
    return np.sort(np.concatenate(keep))


class LabelledSubset(Subset):
    """A :class:`~torch.utils.data.Subset` that keeps the wrapped set's ``info`` and ``targets``."""

    def __init__(self, dataset, indices: np.ndarray, labels_per_class: int):
        super().__init__(dataset, indices.tolist())
        info = dataset.info
        self.info = replace(info, extra={**info.extra, "labels_per_class": labels_per_class})
        self._targets = labels_of(dataset)[indices]

    @property
    def targets(self) -> list[int]:
        return self._targets.tolist()


@register_dataset("few_labels")
def few_labels(split: str, root=None, *, of: str, labels_per_class: int, seed: int | None = None, **options):
    """The ``split`` of the data set ``of`` (built with ``options``); train keeps K labels per class."""
    if of == "few_labels":
        raise ConvzooError("few_labels wraps another data set; set data.kwargs.of to e.g. 'digits'")
    base = build_dataset(of, split, root=root, **options)
    if split != "train":
        return base
    if not base.info.num_classes:
        raise ConvzooError(f"few_labels needs a classification data set with classes; '{of}' has none")
    return LabelledSubset(base, k_per_class(labels_of(base), int(labels_per_class), seed), int(labels_per_class))


class Head(Subset):
    """The first ``n`` items of a data set, passing its attributes through (``info``; ``names`` cut to
    the same items, and ``targets``): what a run limited by ``limit_eval_batches`` draws its pictures and report from."""

    def __init__(self, dataset, n: int):
        super().__init__(dataset, list(range(min(n, len(dataset)))))

    def __getattr__(self, name: str):
        if name in ("dataset", "indices"):  # not yet set (unpickling)
            raise AttributeError(name)
        value = getattr(self.dataset, name)
        return value[: len(self.indices)] if name in ("names", "targets") else value

