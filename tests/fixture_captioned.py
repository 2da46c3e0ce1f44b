"""A small folder laid out as Tux Paint's stamps (``<category>/<sub>/NAME.png`` + ``NAME.txt``), for tests of
:mod:`convzoo.data.captioned_photos` and the tasks that read it (image-text retrieval, captioning, features).

Each photo is a coloured shape on a transparent background whose caption names the colour and the shape
("A red square."), so a model can learn the pairing; line 2 onwards of each ``.txt`` are translations as in
the real files. One PNG has no caption (like the real ``*_mirror.png``) and one caption file has an empty
first line: neither is a pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 60, 220), "yellow": (230, 210, 20)}
SHAPES = ("square", "disc", "bar")
CATEGORIES = ("animals", "food", "vehicles")  # sorted, as the loader orders them


def _shape_mask(shape: str, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    if shape == "square":
        return (abs(yy - cy) < h * 0.3) & (abs(xx - cx) < w * 0.3)
    if shape == "disc":
        return (yy - cy) ** 2 / (h * 0.35) ** 2 + (xx - cx) ** 2 / (w * 0.35) ** 2 < 1
    return (abs(yy - cy) < h * 0.12) & (abs(xx - cx) < w * 0.45)  # bar


def write_stamps(root: Path, per_pair: int = 2, seed: int = 0) -> list[tuple[str, str]]:
    """Write ``per_pair`` photos of every colour x shape (12 pairs each) below ``root``; returns the sorted
    (name, caption) pairs the loader should find. Image sizes vary (not square), modes RGBA, LA and P."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pairs = []
    k = 0
    for colour, rgb in COLOURS.items():
        for s, shape in enumerate(SHAPES):
            for j in range(per_pair):
                cat = CATEGORIES[k % len(CATEGORIES)]
                name = f"{cat}/{shape}s/{colour}_{shape}_{j}"
                h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
                rgba = np.zeros((h, w, 4), np.uint8)
                mask = _shape_mask(shape, h, w)
                rgba[mask, :3] = rgb
                rgba[mask, 3] = 255
                path = root / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rgba, "RGBA").save(path)
                caption = f"A {colour} {shape}."
                path.with_suffix(".txt").write_text(f"{caption}\nde.utf8=Ein {shape}.\nfr.utf8=Un {shape}.\n",
                                                    encoding="utf-8")
                pairs.append((name, caption))
                k += 1
    # a grey+alpha image and a palette image among them
    Image.fromarray(np.full((16, 24, 2), (90, 255), np.uint8), "LA").save(root / "food" / "grey_blob.png")
    (root / "food" / "grey_blob.txt").write_text("A grey blob.\nde.utf8=Ein Klecks.\n", encoding="utf-8")
    pairs.append(("food/grey_blob", "A grey blob."))
    Image.fromarray(np.full((12, 12, 3), (30, 60, 220), np.uint8), "RGB").convert("P").save(
        root / "vehicles" / "blue_tile.png")
    (root / "vehicles" / "blue_tile.txt").write_text("A blue tile.\n", encoding="utf-8")
    pairs.append(("vehicles/blue_tile", "A blue tile."))
    # not pairs: no caption file; an empty first line
    Image.fromarray(rgba, "RGBA").save(root / "animals" / "uncaptioned_mirror.png")
    Image.fromarray(rgba, "RGBA").save(root / "animals" / "empty.png")
    (root / "animals" / "empty.txt").write_text("\nde.utf8=Leer.\n", encoding="utf-8")
    return sorted(pairs)


def write_flickr(root: Path, name: str = "flickr8k", n_train: int = 4, n_val: int = 2, n_test: int = 2,
                 folder: str = "Flicker8k_Dataset") -> dict:
    """Karpathy's split JSON (``dataset_<name>.json``) and JPEG images in ``root/folder``: every image five
    sentences naming its colour and shape; returns the JSON written."""
    import json

    from PIL import Image

    root = Path(root)
    (root / folder).mkdir(parents=True, exist_ok=True)
    images, k = [], 0
    combos = [(c, s) for c in COLOURS for s in SHAPES]
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        for _ in range(n):
            colour, shape = combos[k % len(combos)]
            arr = np.full((30, 40, 3), 255, np.uint8)
            arr[_shape_mask(shape, 30, 40)] = COLOURS[colour]
            filename = f"{1000 + k}_{colour}{shape}.jpg"
            Image.fromarray(arr).save(root / folder / filename, quality=95)
            sents = [f"A {colour} {shape}.", f"The {shape} is {colour}.", f"One {colour} {shape} on white.",
                     f"a {shape} coloured {colour}", f"There is a {colour} {shape} here."]
            images.append({"filename": filename, "imgid": k, "split": split,
                           "sentences": [{"raw": s, "tokens": s.lower().strip(".").split()} for s in sents]})
            k += 1
    data = {"dataset": name, "images": images}
    (root / f"dataset_{name}.json").write_text(json.dumps(data))
    return data
