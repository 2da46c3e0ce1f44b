"""Fixture files in the COCO captions format (annotations/captions_<set>.json + <set>/*.jpg) for the tests of
``coco_captions`` (paper 42) and the packaged recipe's smoke run (tests/engine/test_every_recipe.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CAPTIONS = [["A red square on grey.", "a red box"], ["A blue circle on grey.", "a round blue thing", "blue circle"],
            ["A green cross.", "a green plus sign"], ["A red circle.", "a red disc"]]


def write_coco_captions(root, sets=("train2014", "val2014"), size: int = 40) -> Path:
    """Four small JPEGs per set with two or three captions each; returns ``root``."""
    from PIL import Image

    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for s, set_name in enumerate(sets):
        (root / set_name).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for i, caps in enumerate(CAPTIONS):
            image_id = 100 * (s + 1) + i
            name = f"COCO_{set_name}_{image_id:012d}.jpg"
            pixels = rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / set_name / name, quality=90)
            images.append({"id": image_id, "file_name": name, "width": size + 8, "height": size})
            anns += [{"id": 1000 * image_id + k, "image_id": image_id, "caption": c} for k, c in enumerate(caps)]
        (root / "annotations" / f"captions_{set_name}.json").write_text(json.dumps({"images": images,
                                                                                    "annotations": anns}))
    return root
