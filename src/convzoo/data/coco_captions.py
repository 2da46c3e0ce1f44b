"""COCO captions on disk (LRCN's captioning data, arXiv 1411.4389 Sec. 5; seed paper 42).

Registered as ``coco_captions``. The layout is the one the COCO site distributes (nothing is downloaded
here; COCO is not in any package)::

    ROOT/annotations/captions_train2014.json   "images" (id, file_name), "annotations" (image_id, caption)
    ROOT/annotations/captions_val2014.json
    ROOT/train2014/*.jpg   ROOT/val2014/*.jpg

``sets`` maps each split to a set name (default: train -> ``train2014``, val and test -> ``val2014``,
as the paper trains on train2014 and reports on val2014 images). Words are lower-cased runs of
letters/digits (:func:`convzoo.data.captioned_photos.tokenize`); the vocabulary is the training
captions' words seen at least ``min_count`` times (5 in the official example, which gives its 8,801
entries with ``<eos>``), after ``<pad> <bos> <eos> <unk>``. Captions are cut to ``max_words`` words
(20 in the official example).

Items: training -- one item per (image, caption) pair, ``(image, tokens)``; evaluation -- one item
per image, ``(image, {"tokens": first caption, "references": all its captions})``, so BLEU is
computed against every reference (COCO has about five). Images are read as RGB, resized to
``size`` x ``size`` (the official net: 256 then a 227 crop; here a resize to ``size``), scaled to
[0, 1] and normalised with ImageNet's mean/std. ``info.extra["vocab"]`` holds the word list.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from convzoo.data.captioned_photos import Vocabulary
from convzoo.data.registry import DataInfo, register_dataset
from convzoo.data.transforms import NORMS
from convzoo.errors import ConvzooError

SETS = {"train": "train2014", "val": "val2014", "test": "val2014"}
MEAN, STD = NORMS["imagenet"]


@lru_cache(maxsize=4)
def _read(path: str) -> tuple[tuple[tuple[int, str], ...], dict]:
    """(images as (id, file_name), captions by image id) of one COCO captions file."""
    p = Path(path)
    if not p.is_file():
        raise ConvzooError(f"coco_captions: {p} not found (expected ROOT/annotations/captions_<set>.json as "
                           "the COCO site distributes it; set data.root)")
    try:
        raw = json.loads(p.read_text())
        images = tuple(sorted((int(im["id"]), str(im["file_name"])) for im in raw["images"]))
        caps = defaultdict(list)
        for a in sorted(raw["annotations"], key=lambda a: (int(a["image_id"]), int(a.get("id", 0)))):
            caps[int(a["image_id"])].append(str(a["caption"]).strip())
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ConvzooError(f"coco_captions: {p} is not a COCO captions file: {e}") from None
    return images, dict(caps)


class CocoCaptions(Dataset):
    def __init__(self, root: Path, split: str, set_name: str, vocab: Vocabulary, size: int, max_words: int,
                 info: DataInfo):
        images, caps = _read(str(root / "annotations" / f"captions_{set_name}.json"))
        self.root, self.folder, self.split, self.vocab, self.size, self.info = root, root / set_name, split, vocab, size, info
        self.max_words = max_words
        self.files = {i: f for i, f in images}
        self.captions = {i: caps.get(i, []) for i, _ in images}
        ids = [i for i, _ in images if self.captions[i]]
        if split == "train":
            self.index = [(i, k) for i in ids for k in range(len(self.captions[i]))]
        else:
            self.index = [(i, -1) for i in ids]
        self.names = [f"{self.files[i]}" + (f"#{k}" if k >= 0 else "") for i, k in self.index]
        self._mean = torch.tensor(MEAN).reshape(3, 1, 1)
        self._std = torch.tensor(STD).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.index)

    def encode(self, caption: str) -> torch.Tensor:
        ids = self.vocab.encode(caption, bos=False, eos=False)[: self.max_words]
        return torch.tensor([Vocabulary.bos_id, *ids, Vocabulary.eos_id], dtype=torch.long)

    def image(self, image_id: int) -> torch.Tensor:
        from PIL import Image

        path = self.folder / self.files[image_id]
        try:
            with Image.open(path) as im:
                rgb = im.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        except OSError as e:
            raise ConvzooError(f"coco_captions: cannot read {path}: {e}") from None
        x = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (x - self._mean) / self._std

    def __getitem__(self, i: int):
        image_id, k = self.index[i]
        caps = self.captions[image_id]
        if k >= 0:
            return self.image(image_id), self.encode(caps[k])
        refs = [self.encode(c) for c in caps]
        return self.image(image_id), {"tokens": refs[0], "references": refs}


@register_dataset("coco_captions")
def coco_captions(split: str, root=None, *, size: int = 227, min_count: int = 5, max_words: int = 20,
                  sets: dict | None = None) -> CocoCaptions:
    """The ``split`` of COCO captions below ``root`` (see the module docstring)."""
    if root is None:
        raise ConvzooError("coco_captions needs data.root: the folder holding annotations/captions_train2014.json "
                           "and train2014/, val2014/ (COCO is not fetchable here)")
    root = Path(str(root)).expanduser()
    names = {**SETS, **(sets or {})}
    _, train_caps = _read(str(root / "annotations" / f"captions_{names['train']}.json"))
    vocab = Vocabulary.build([c for cs in train_caps.values() for c in cs], min_count)
    info = DataInfo("coco_captions", "captioning", 3, 0, (), (size, size),
                    {"vocab": list(vocab.itos), "mean": MEAN, "std": STD, "size": size, "min_count": min_count})
    return CocoCaptions(root, split, names[split], vocab, size, max_words, info)
