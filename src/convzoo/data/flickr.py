"""Flickr8k / Flickr30k captions in Karpathy's split format (paper 5's data; not on this machine).

The image-sentence sets of the report (Flickr8k, Hodosh et al. 2013; Flickr30k, Young et al. 2014) are usually
read through Karpathy & Fei-Fei's split files ``dataset_flickr8k.json`` / ``dataset_flickr30k.json``
(cs.stanford.edu/people/karpathy/deepimagesent): ``{"dataset": ..., "images": [{"filename": "1000268201_693b08cb0e.jpg",
"imgid": 0, "split": "train" | "val" | "test" | "restval", "sentences": [{"raw": "A child in a pink dress ...",
"tokens": [...]}, ...]}, ...]}`` with five sentences per image and 1,000 val / 1,000 test images. The images lie in
``root/Flicker8k_Dataset`` (Flickr8k's own spelling), ``root/flickr30k-images``, ``root/images`` or ``root``.
Neither set ships in a package (real-data.md); the reader is tested on fixture files in this format.

Registered sets ``flickr8k`` and ``flickr30k`` (root required; options ``size`` (224), ``min_count`` (5, the
report's BoW vocabulary rule), ``restval`` (True: Karpathy's "restval" images join train, as for Flickr30k /
COCO), ``augment``): one item per (image, sentence) pair, ``(image, {"tokens": <bos> .. <eos>, "image_id":
imgid})``; the five sentences of an image share its ``image_id``, which :mod:`convzoo.tasks.image_text_retrieval`
uses to rank each image once and to count any of its sentences as a hit (the 1k-image protocol). Sentences are
re-tokenised with :func:`convzoo.data.captioned_photos.tokenize` (the ``raw`` text) and the vocabulary is built on
the train split. Images are read lazily (PIL, RGB, resized to ``size`` x ``size``), normalised with ImageNet's
mean/std; ``augment=True`` (train) is a random resized crop and flip.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from convzoo.data.captioned_photos import MEAN, STD, Vocabulary
from convzoo.data.registry import DataInfo, register_dataset
from convzoo.errors import ConvzooError

__all__ = ["FlickrCaptions", "read_karpathy_split"]

IMAGE_DIRS = ("Flicker8k_Dataset", "flickr30k-images", "images", ".")


def read_karpathy_split(path: str | Path) -> list[dict]:
    """The ``images`` records of a Karpathy split JSON; a one-line error when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = data["images"]
        for im in images:
            im["filename"], im["split"], im["sentences"]  # the keys every record needs
    except OSError as e:
        raise ConvzooError(f"cannot read {path} ({e})") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ConvzooError(f"{path} is not a Karpathy split file (images[].filename/split/sentences): {e}") from None
    return images


def _find_json(root: Path, name: str) -> Path:
    for cand in (root / f"dataset_{name}.json", root / "annotations" / f"dataset_{name}.json"):
        if cand.is_file():
            return cand
    raise ConvzooError(f"{name}: no dataset_{name}.json in {root} (Karpathy's split file); the images and that file "
                       f"are downloads, not shipped in any package")


@lru_cache(maxsize=4)
def _records(root: Path, name: str) -> tuple[list[dict], Path]:
    images = read_karpathy_split(_find_json(root, name))
    folder = next((root / d for d in IMAGE_DIRS if images and (root / d / images[0]["filename"]).is_file()), None)
    if folder is None:
        raise ConvzooError(f"{name}: image {images[0]['filename'] if images else '?'} not found in {root} or its "
                           f"{', '.join(IMAGE_DIRS[:3])} folders")
    return images, folder


class FlickrCaptions(Dataset):
    """(image, sentence) pairs of one split; ``captions``, ``image_ids``, ``tokens``, ``vocab``, ``info``."""

    def __init__(self, folder: Path, pairs: list[tuple[str, int, str]], vocab: Vocabulary, size: int, info: DataInfo,
                 augment: bool):
        self.folder, self.vocab, self.size, self.info = folder, vocab, size, info
        self.filenames = [f for f, _, _ in pairs]
        self.image_ids = [i for _, i, _ in pairs]
        self.captions = [c for _, _, c in pairs]
        self.names = list(self.filenames)
        self.tokens = [vocab.encode(c) for c in self.captions]
        self._mean, self._std = torch.tensor(MEAN).reshape(3, 1, 1), torch.tensor(STD).reshape(3, 1, 1)
        self.transform = None
        if augment:
            from torchvision.transforms import v2

            self.transform = v2.Compose([v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True),
                                         v2.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.captions)

    def path(self, i: int) -> Path:
        return self.folder / self.filenames[i]

    def image(self, i: int) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(self.path(i)) as im:
                rgb = im.convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        except OSError as e:
            raise ConvzooError(f"cannot read image {self.path(i)} ({e})") from None
        x = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)
        if self.transform is not None:
            x = self.transform(x)
        return (x.float() / 255.0 - self._mean) / self._std

    def __getitem__(self, i: int):
        return self.image(i), {"tokens": torch.tensor(self.tokens[i], dtype=torch.long), "image_id": self.image_ids[i]}


def _build(name: str, split: str, root, size: int, min_count: int, restval: bool, augment: bool) -> FlickrCaptions:
    if root is None:
        raise ConvzooError(f"{name} needs data.root: a folder with dataset_{name}.json (Karpathy's split) and the images")
    folder = Path(str(root)).expanduser().resolve()
    images, image_dir = _records(folder, name)
    sides = {"train": ("train", "restval") if restval else ("train",), "val": ("val",), "test": ("test",)}

    def pairs(s):
        return [(im["filename"], int(im.get("imgid", k)), sent.get("raw") or " ".join(sent.get("tokens", [])))
                for k, im in enumerate(images) if im["split"] in sides[s] for sent in im["sentences"]]

    vocab = Vocabulary.build([c for _, _, c in pairs("train")], min_count)
    info = DataInfo(name, "image_text_retrieval", 3, 0, (), (size, size),
                    {"vocab": list(vocab.itos), "root": str(folder), "size": size, "min_count": min_count,
                     "mean": MEAN, "std": STD})
    return FlickrCaptions(image_dir, pairs(split), vocab, size, info, augment and split == "train")


@register_dataset("flickr8k")
def flickr8k(split: str, root=None, *, size: int = 224, min_count: int = 5, restval: bool = False,
             augment: bool = False) -> FlickrCaptions:
    """Flickr8k in Karpathy's split (6,000 / 1,000 / 1,000 images, five sentences each)."""
    return _build("flickr8k", split, root, size, min_count, restval, augment)


@register_dataset("flickr30k")
def flickr30k(split: str, root=None, *, size: int = 224, min_count: int = 5, restval: bool = True,
              augment: bool = False) -> FlickrCaptions:
    """Flickr30k in Karpathy's split (29,000 (with restval) / 1,014 / 1,000 images, five sentences each)."""
    return _build("flickr30k", split, root, size, min_count, restval, augment)
