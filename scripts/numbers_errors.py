"""Where a multi-digit run fails on the held-out numbers (seed paper 47, recipe ``multidigit_numbers``).

Recorded analysis, not asserted. Usage (about a minute on one CPU thread):

    OMP_NUM_THREADS=1 python scripts/numbers_errors.py RUN [best|last] [--photos N]

Prints, for the run's test split (the fixed 2,000 numbers of ``numbers``): sequence accuracy by number length,
the number of wrong digits per wrongly read number, the most frequent digit confusions and the error rate
of each digit position (numbers whose length was read right). With ``--photos N`` it also renders N fresh
numbers (a seed of their own, not the fixed split) for each pair of digit split x background-photo split and
for each test photo alone, to tell unseen handwriting from unseen backgrounds.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch
from torch.utils.data import TensorDataset

from convzoo.data.numbers import render_number
from convzoo.data.opencv_digits import _folder, _load, opencv_digits_split
from convzoo.data.photos import SPLIT_PHOTOS
from convzoo.data.registry import build_dataset
from convzoo.data.svhn import center_crop, encode_target, standardize
from convzoo.engine.evaluate import load_run
from convzoo.tasks.multidigit import _scored, decode, sequence_correct


def read(task, model, dataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decoded lengths (N,), digits (N, 5) and the targets (N, 6) of a data set of numbers."""
    out, targets = task._read_all(model, dataset, "cpu")
    lengths, digits, _ = decode(out)
    return lengths, digits, targets


def fresh(task, model, kw: dict, digit_split: str, photos: tuple[str, ...], n: int) -> float:
    """Sequence accuracy on ``n`` new numbers of ``digit_split`` digits on ``photos`` (never warped)."""
    images, labels = _load(_folder(None))
    ids, xs, ts = opencv_digits_split()[digit_split], [], []
    for i in range(n):
        crop, ds, _, _ = render_number(np.random.default_rng((7, 9, i)), images, labels, ids, photos, kw["resize"])
        xs.append(standardize(center_crop(crop, kw["crop"])))
        ts.append(encode_target(ds))
    right, _ = sequence_correct(*read(task, model, TensorDataset(torch.stack(xs), torch.stack(ts))))
    return float(right.double().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("which", nargs="?", default="best", choices=("best", "last"))
    p.add_argument("--photos", type=int, default=0, help="fresh numbers per digit x photo split (0: skip)")
    a = p.parse_args()
    model, cfg, task, _ = load_run(a.run, a.which)
    kw = {"resize": 40, "crop": 36, **cfg["data"]["kwargs"]}
    test = build_dataset("numbers", "test", resize=kw["resize"], crop=kw["crop"])
    lengths, digits, t = read(task, model, test)
    right, digit_right = sequence_correct(lengths, digits, t)
    ok, n = right.numpy(), t[:, 0].numpy()
    print(f"test sequence accuracy {ok.mean():.4f} ({ok.sum()} of {len(ok)}); by length: "
          + ", ".join(f"{k}: {ok[n == k].mean():.3f} ({(n == k).sum()})" for k in range(1, 6)))
    same_len = lengths == t[:, 0]
    wrong = ~digit_right & _scored(t)
    print("wrong numbers by cause: length", int((~same_len).sum()), "; digits wrong (count: numbers)",
          dict(sorted(Counter(int(v) for v in wrong.sum(1)[same_len & ~right]).items())))
    read_wrong = wrong & same_len[:, None]
    pairs = Counter((int(a_), int(b_)) for a_, b_ in zip(t[:, 1:][read_wrong], digits[read_wrong]))
    print("top confusions (true, read): count", pairs.most_common(12))
    for k in range(1, 6):
        rates = wrong[same_len & (t[:, 0] == k)][:, :k].float().mean(0)
        print(f"  length {k}: error rate by position", " ".join(f"{float(r):.3f}" for r in rates))
    if a.photos:
        for ds in ("val", "test"):
            print(f"{ds} digits:", ", ".join(f"{ps} photos {fresh(task, model, kw, ds, SPLIT_PHOTOS[ps], a.photos):.3f}"
                                           for ps in ("train", "val", "test")))
        print("test digits on each test photo:", ", ".join(
            f"{name} {fresh(task, model, kw, 'test', (name,), a.photos):.3f}" for name in SPLIT_PHOTOS["test"]))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
