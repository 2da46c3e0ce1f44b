"""About 785 real photographs and drawings with one-line English captions: ``convzoo data fetch captioned_photos``.

Source: the Debian package ``tuxpaint-stamps-default`` (bookworm 2022.06.04-1, a 161 MB .deb; GPL-2, so the
files are fetched into the cache and never committed). Tux Paint's stamps live under
``/usr/share/tuxpaint/stamps/<category>/<sub-category>/.../NAME.png`` (796 PNG cut-outs with alpha, mostly real
photographs plus some drawings and symbols); ``NAME.txt`` next to a PNG holds its caption: line 1 is English
("A Sumatran tiger.", "A huge dump truck."), later lines are ``xx.utf8=`` translations. 785 of the 796 PNGs
have a caption (the 11 without are ``*_mirror.png`` variants). ``convzoo data fetch captioned_photos``
downloads the .deb (``apt-get download``, nothing installed) and keeps every ``.png`` and ``.txt`` below the
stamps folder at its relative path (:class:`~convzoo.data.fetch.Fetchable` ``tree``), plus the copyright file.

What is read (:func:`load_captioned_photos`, any folder laid out as the stamps folder):

* **pairs**: every ``*.png`` with a ``.txt`` of the same stem whose first line is not empty; the name of a pair
  is its path below the root without suffix (``animals/birds/crow``); pairs are in sorted name order;
* **pixels**: RGBA (or LA / P / RGB) alpha-composited onto white, padded to a square with white (centred, aspect
  kept), resized to ``size`` x ``size`` (PIL bilinear, antialiased as ``predict`` reads a person's image), uint8 RGB. The first read of a folder at a size writes
  ``photos_<size>px.npz`` into the folder (when it is writable) and later reads load that;
* **class label**: the top-level folder (16 categories on the real data: animals, clothes, food, ..., vehicles),
  classes in sorted order;
* **split** (fixed, the same everywhere; :func:`captioned_photos_split`): the names sorted by the SHA-1 of the
  name; the first ``round(n * 100 / 785)`` are test, the next as many val, the rest train: 585 / 100 / 100 on the
  real set. A hash of the name, not of the position, so a folder with a photo more or fewer keeps the others'
  sides;
* **text**: :func:`tokenize` lower-cases and keeps runs of letters and digits (an apostrophe inside a word stays:
  "it's"); :class:`Vocabulary` holds ``<pad> <bos> <eos> <unk>`` (ids 0-3) then the train split's words with
  count >= ``min_count``, most frequent first (ties alphabetical). Several photos share a caption ("A flower." six
  times); retrieval tasks count an identical caption as a hit.

The registered set ``captioned_photos`` (root = the cache unless given; options ``size`` (64), ``min_count``
(1), ``target``, ``augment``, ``raw``, ``task``): items are ``(image, target)`` with ``image`` a float tensor
(3, size, size) normalised with ImageNet's mean/std (``raw=True``: pixel / 255) and ``target`` the caption's
token ids ``<bos> w1 ... wn <eos>`` (LongTensor; ``target="caption"``, the default) or the class index
(``target="class"``, then ``info.task`` is ``classification``). ``augment=True`` (train split only) is a mild
random resized crop (scale 0.7-1); no flips (captions say "Left eye."). ``info.extra`` holds the vocabulary
(``vocab``, the word list, a plain list that survives the run folder's data_info.yaml), ``mean``/``std``, the ``root`` and ``size``. :func:`collate_captions` pads a batch.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from convzoo.data.fetch import Fetchable, data_home, register_fetchable
from convzoo.data.registry import DataInfo, register_dataset
from convzoo.data.transforms import NORMS
from convzoo.errors import ConvzooError

__all__ = ["SPEC", "CaptionedPhotos", "CaptionedPhotosDataset", "Vocabulary", "captioned_photos",
           "captioned_photos_split", "collate_captions", "load_captioned_photos", "read_caption",
           "read_stamp", "tokenize"]

NAME = "captioned_photos"
TREE = "usr/share/tuxpaint/stamps"
SPLIT_SIZES = (585, 100, 100)  # train / val / test on the 785 real pairs
SPEC = register_fetchable(Fetchable(
    NAME, "tuxpaint-stamps-default", (),
    "Tux Paint's stamps (Debian tuxpaint-stamps-default, GPL-2): about 785 PNG photo cut-outs and drawings, "
    "each with a one-line English caption in NAME.txt; the top-level folder is the category.",
    source="debian", licence="License: GPL-2", tree=TREE, suffixes=(".png", ".txt")))
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
MEAN, STD = NORMS["imagenet"]
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


# --- text -------------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """Lower-cased words: runs of letters/digits ("A huge dump-truck." -> a, huge, dump, truck)."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """Words <-> ids. Ids 0-3 are ``<pad> <bos> <eos> <unk>``; the words follow in the given order."""

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, words):
        words = [w for w in words if w not in SPECIALS]
        self.itos: list[str] = [*SPECIALS, *words]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ConvzooError("a vocabulary's words must be distinct")

    @classmethod
    def build(cls, texts, min_count: int = 1) -> Vocabulary:
        """From ``texts``: the words seen at least ``min_count`` times, most frequent first, ties alphabetical."""
        counts = Counter(w for t in texts for w in tokenize(t))
        return cls(sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)))

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def encode(self, text: str, bos: bool = True, eos: bool = True) -> list[int]:
        ids = [self.stoi.get(w, self.unk_id) for w in tokenize(text)]
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def decode(self, ids) -> str:
        """Ids -> words joined by spaces; stops at ``<eos>``, skips ``<pad>``/``<bos>``."""
        words = []
        for i in (int(i) for i in ids):
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                words.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return " ".join(words)


def collate_captions(items, pad_id: int = Vocabulary.pad_id):
    """``[(image, token ids), ...]`` -> (images (B, C, H, W), tokens (B, L) padded with ``pad_id``, lengths (B,))."""
    images = torch.stack([x for x, _ in items])
    seqs = [torch.as_tensor(t, dtype=torch.long) for _, t in items]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    tokens = torch.full((len(seqs), int(lengths.max()) if seqs else 0), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, :len(s)] = s
    return images, tokens, lengths


# --- files ------------------------------------------------------------------------------------------
def read_caption(path: str | Path) -> str:
    """Line 1 of a stamp's ``NAME.txt`` (the English caption), stripped; "" when it has none."""
    try:
        text = Path(path).read_bytes().decode("utf-8", "replace")
    except OSError as e:
        raise ConvzooError(f"captioned_photos: cannot read caption {path} ({e})") from None
    lines = text.splitlines()
    return lines[0].strip().lstrip("\ufeff") if lines else ""


def read_stamp(path: str | Path, size: int) -> np.ndarray:
    """A stamp PNG -> uint8 RGB (size, size, 3): alpha-composited onto white, padded square (white), resized."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgba = im.convert("RGBA")
    except (UnidentifiedImageError, OSError) as e:
        raise ConvzooError(f"captioned_photos: cannot read image {path} ({e})") from None
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    side = max(rgb.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    return np.asarray(square.resize((size, size), Image.BILINEAR), dtype=np.uint8)


@dataclass(frozen=True)
class CaptionedPhotos:
    """The whole folder, in sorted name order."""

    root: Path
    names: tuple[str, ...]  # "animals/birds/crow"
    captions: tuple[str, ...]  # "A crow."
    labels: np.ndarray  # (N,) int64 index into categories
    categories: tuple[str, ...]  # top-level folders, sorted
    images: np.ndarray  # (N, size, size, 3) uint8

    def path(self, i: int) -> Path:
        return self.root / f"{self.names[i]}.png"


def _folder(root) -> Path:
    return Path(str(root)).expanduser() if root is not None else data_home(NAME)


def _pairs(folder: Path) -> list[tuple[str, str]]:
    """(name, caption) of every captioned PNG below ``folder``, sorted by name."""
    if not folder.is_dir():
        raise ConvzooError(f"captioned_photos: {folder} not found; run `convzoo data fetch captioned_photos` first "
                           f"(or set data.root to a folder of <category>/.../NAME.png + NAME.txt)")
    pairs = []
    for png in folder.rglob("*.png"):
        txt = png.with_suffix(".txt")
        if txt.is_file() and (caption := read_caption(txt)):
            pairs.append((png.relative_to(folder).with_suffix("").as_posix(), caption))
    if not pairs:
        raise ConvzooError(f"captioned_photos: no NAME.png with a NAME.txt caption below {folder}; run "
                           f"`convzoo data fetch captioned_photos` first")
    return sorted(pairs)


@lru_cache(maxsize=8)
def _load(folder: Path, size: int) -> CaptionedPhotos:
    pairs = _pairs(folder)
    names = tuple(n for n, _ in pairs)
    captions = tuple(c for _, c in pairs)
    cache = folder / f"photos_{size}px.npz"
    images = None
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if tuple(z["names"].tolist()) == names and z["images"].shape == (len(names), size, size, 3):
                    images = z["images"]
        except (OSError, ValueError, KeyError):
            images = None
    if images is None:
        images = np.stack([read_stamp(folder / f"{n}.png", size) for n in names])
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npz")
        try:  # several processes may read at once: write aside, then rename
            np.savez(tmp, images=images, names=np.array(names))
            os.replace(tmp, cache)
        except OSError:
            tmp.unlink(missing_ok=True)
    tops = [n.split("/", 1)[0] if "/" in n else "" for n in names]
    categories = tuple(sorted(set(tops)))
    labels = np.array([categories.index(t) for t in tops], dtype=np.int64)
    return CaptionedPhotos(folder, names, captions, labels, categories, images)


def load_captioned_photos(root=None, size: int = 64) -> CaptionedPhotos:
    """Every captioned photo below ``root`` (default: the fetched cache) at ``size`` x ``size``."""
    if not isinstance(size, int) or size < 1:
        raise ConvzooError(f"captioned_photos: size must be a positive integer, got {size!r}")
    return _load(_folder(root).resolve(), size)


def split_counts(n: int) -> tuple[int, int, int]:
    """(train, val, test) sizes for ``n`` pairs: 585 / 100 / 100 at n = 785, the same fractions otherwise."""
    held = round(n * SPLIT_SIZES[2] / sum(SPLIT_SIZES))
    held = max(1, held) if n >= 3 else 0
    return n - 2 * held, held, held


def captioned_photos_split(names) -> dict[str, np.ndarray]:
    """Sorted positions (into ``names``) of the fixed split: names ordered by SHA-1, test first, then val."""
    order = sorted(range(len(names)), key=lambda i: (hashlib.sha1(names[i].encode("utf-8")).hexdigest(), names[i]))
    _, n_val, n_test = split_counts(len(names))
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return {"train": np.sort(np.array(train, dtype=np.int64)), "val": np.sort(np.array(val, dtype=np.int64)),
            "test": np.sort(np.array(test, dtype=np.int64))}


# --- the data set -----------------------------------------------------------------------------------
class CaptionedPhotosDataset(Dataset):
    """One split: ``images`` uint8 (N, 3, S, S), ``captions``, ``names``, ``labels``, ``tokens`` (lists of ids
    with <bos>/<eos>), ``vocab``, ``indices`` (positions in the whole folder), ``photos`` (the whole folder)."""

    def __init__(self, photos: CaptionedPhotos, split: str, keep: np.ndarray, vocab: Vocabulary, info: DataInfo,
                 target: str, transform=None, raw: bool = False):
        self.photos, self.split, self.indices, self.vocab, self.info = photos, split, keep, vocab, info
        self.images = torch.from_numpy(photos.images[keep]).permute(0, 3, 1, 2).contiguous()
        self.captions = [photos.captions[i] for i in keep]
        self.names = [photos.names[i] for i in keep]
        self.labels = torch.from_numpy(photos.labels[keep])
        self.tokens = [vocab.encode(c) for c in self.captions]
        self.target, self.transform, self.raw = target, transform, raw
        self._mean = torch.tensor(MEAN).reshape(3, 1, 1)
        self._std = torch.tensor(STD).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.names)

    def image(self, i: int) -> torch.Tensor:
        x = self.images[i]
        if self.transform is not None:
            x = self.transform(x)
        x = x.float() / 255.0
        return x if self.raw else (x - self._mean) / self._std

    def __getitem__(self, i: int):
        if self.target == "class":
            return self.image(i), int(self.labels[i])
        return self.image(i), torch.tensor(self.tokens[i], dtype=torch.long)

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def path(self, i: int) -> Path:
        return self.photos.root / f"{self.names[i]}.png"


TARGETS = ("caption", "class")


@register_dataset(NAME)
def captioned_photos(split: str, root=None, *, size: int = 64, min_count: int = 1, target: str = "caption",
                     augment: bool = False, raw: bool = False, task: str | None = None) -> CaptionedPhotosDataset:
    """The ``split`` of the captioned photos as described in the module docstring."""
    if target not in TARGETS:
        raise ConvzooError(f"captioned_photos: target must be one of {', '.join(TARGETS)}, got {target!r}")
    if not isinstance(min_count, int) or min_count < 1:
        raise ConvzooError(f"captioned_photos: min_count must be a positive integer, got {min_count!r}")
    photos = load_captioned_photos(root, size)
    parts = captioned_photos_split(photos.names)
    vocab = Vocabulary.build([photos.captions[i] for i in parts["train"]], min_count)
    transform = None
    if augment and split == "train":
        from torchvision.transforms import v2

        transform = v2.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(0.9, 1.1), antialias=True)
    task = task or ("classification" if target == "class" else "image_text_retrieval")
    info = DataInfo(NAME, task, 3, len(photos.categories) if target == "class" else 0, photos.categories,
                    (size, size), {"vocab": list(vocab.itos), "root": str(photos.root), "size": size,
                                   "min_count": min_count, "target": target, **({} if raw else {"mean": MEAN, "std": STD})})
    return CaptionedPhotosDataset(photos, split, parts[split], vocab, info, target, transform, raw)
