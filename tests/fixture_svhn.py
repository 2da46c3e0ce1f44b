"""SVHN format 1 fixture files (paper 47): PNGs and a digitStruct.mat written as MATLAB v7.3 writes it (HDF5)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from PIL import Image


def write_digit_struct(path, records):
    """A digitStruct.mat as MATLAB v7.3 writes it (HDF5): digitStruct/name and /bbox hold one object
    reference per image; a name is a uint16 column of characters; a bbox group holds height/label/left/top/
    width, each the (1, 1) value itself for one digit, else (n, 1) references to (1, 1) values.
    ``records``: [(file name, [(left, top, width, height, label), ...]), ...] (label 10 = digit 0)."""
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        ds = f.create_group("digitStruct")
        ref_dt = h5py.special_dtype(ref=h5py.Reference)
        names = ds.create_dataset("name", (len(records), 1), dtype=ref_dt)
        bboxes = ds.create_dataset("bbox", (len(records), 1), dtype=ref_dt)
        for i, (name, boxes) in enumerate(records):
            n = refs.create_dataset(f"n{i}", data=np.array([[ord(c)] for c in name], dtype=np.uint16))
            names[i, 0] = n.ref
            grp = refs.create_group(f"b{i}")
            for j, key in enumerate(("left", "top", "width", "height", "label")):
                vals = [float(b[j]) for b in boxes]
                if len(vals) == 1:
                    grp.create_dataset(key, data=np.array([[vals[0]]]))
                else:
                    col = grp.create_dataset(key, (len(vals), 1), dtype=ref_dt)
                    for k, v in enumerate(vals):
                        col[k, 0] = refs.create_dataset(f"v{i}_{key}_{k}", data=np.array([[v]])).ref
            bboxes[i, 0] = grp.ref


def write_svhn_folder(root: Path, n_train: int = 16, n_test: int = 4, seed: int = 0) -> dict:
    """``root/train`` and ``root/test`` of random 40 x 60 PNGs, each with 1-5 digit boxes, and their digitStruct.mat."""
    rng = np.random.default_rng(seed)
    recs = {}
    for split, n in (("train", n_train), ("test", n_test)):
        (Path(root) / split).mkdir(parents=True, exist_ok=True)
        items = []
        for i in range(n):
            k = int(rng.integers(1, 6))
            boxes = [(4 + 10 * j, 8, 9, 20, int(rng.integers(1, 11))) for j in range(k)]
            name = f"{i + 1}.png"
            Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(Path(root) / split / name)
            items.append((name, boxes))
        write_digit_struct(Path(root) / split / "digitStruct.mat", items)
        recs[split] = items
    return recs
