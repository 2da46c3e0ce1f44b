"""COCO detection data on disk (SSD's COCO results, arXiv 1512.02325 Sec. 3.4).

Registered as ``coco``. The layout is the one the COCO site distributes::

    ROOT/annotations/instances_train2017.json    "images" (id, file_name, width, height),
    ROOT/annotations/instances_val2017.json      "annotations" (image_id, category_id, bbox [x, y, w, h],
    ROOT/train2017/*.jpg   ROOT/val2017/*.jpg    iscrowd), "categories" (id, name)

``sets`` maps each split to a set name (default: train -> ``train2017``, val and test -> ``val2017``;
test-dev has no public annotations); the annotation file is
``ROOT/annotations/instances_<set>.json`` and the images ``ROOT/<set>/``, or give ``annotations``
and ``images`` mappings split -> path explicitly. Category ids (1..90 with gaps in COCO) are
mapped to contiguous labels 1..K in increasing id order; ``info.extra["category_ids"]`` keeps the
original ids. ``bbox`` is ``[x, y, width, height]`` in continuous pixel coordinates; boxes narrower
or lower than 1 pixel are dropped. Crowd annotations are left out of training targets and kept,
flagged ``difficult``, in evaluation targets (COCO's evaluation ignores them).
Images without annotations are kept (they hold only negatives).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import torch

from convzoo.data.detection import (
    DetectionDataset,
    Record,
    augment_options,
    check_size,
    detection_info,
    read_rgb,
)
from convzoo.data.registry import register_dataset
from convzoo.errors import ConvzooError

DEFAULT_SETS = {"train": "train2017", "val": "val2017", "test": "val2017"}


def read_coco_json(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConvzooError(f"coco: annotation file {path} not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as e:
        raise ConvzooError(f"coco: cannot read {path} as JSON: {e}") from None
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ConvzooError(f"coco: {path} has no '{key}'; expected a COCO instances file")
    return data


def coco_records(data: dict, image_dir: Path, train: bool) -> tuple[list[Record], tuple[str, ...], list[int]]:
    """(records, class names, category ids) of a COCO instances mapping; labels follow sorted category ids."""
    cats = sorted(data["categories"], key=lambda c: c["id"])
    label_of = {c["id"]: i + 1 for i, c in enumerate(cats)}
    per_image = defaultdict(list)
    for a in data["annotations"]:
        per_image[a["image_id"]].append(a)
    records = []
    for img in data["images"]:
        boxes, labels, crowd = [], [], []
        for a in per_image.get(img["id"], []):
            x, y, w, h = (float(v) for v in a["bbox"])
            is_crowd = bool(a.get("iscrowd", 0))
            if w < 1 or h < 1 or (train and is_crowd) or a["category_id"] not in label_of:
                continue
            boxes.append([x, y, x + w, y + h])
            labels.append(label_of[a["category_id"]])
            crowd.append(is_crowd)
        path = image_dir / img["file_name"]
        records.append(Record(str(img["file_name"]), lambda p=path: read_rgb(p),
                              torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                              torch.tensor(labels, dtype=torch.int64), torch.tensor(crowd, dtype=torch.bool)))
    return records, tuple(str(c["name"]) for c in cats), [int(c["id"]) for c in cats]


@register_dataset("coco")
def coco(split: str, root: str | None = None, *, size: int = 300, augment=True, sets: dict | None = None,
         annotations: dict | None = None, images: dict | None = None) -> DetectionDataset:
    """COCO instances (see the module docstring)."""
    size = check_size("coco", size)
    sets = {**DEFAULT_SETS, **(sets or {})}
    if annotations and split in annotations:
        ann_path = Path(annotations[split]).expanduser()
    elif root is None:
        raise ConvzooError("coco: set data.root to the COCO folder (holding annotations/ and train2017/), "
                           "or data.kwargs.annotations and images per split")
    else:
        ann_path = Path(root).expanduser() / "annotations" / f"instances_{sets[split]}.json"
    data = read_coco_json(ann_path)
    if images and split in images:
        image_dir = Path(images[split]).expanduser()
    elif root is None:
        raise ConvzooError(f"coco: data.kwargs.images has no folder for split '{split}' and no root is set")
    else:
        image_dir = Path(root).expanduser() / sets[split]
    if not image_dir.is_dir():
        raise ConvzooError(f"coco: image folder {image_dir} not found")
    records, names, cat_ids = coco_records(data, image_dir, train=split == "train")
    info = detection_info("coco", names, size, category_ids=cat_ids, annotations=str(ann_path))
    return DetectionDataset(records, info, size, augment_options("coco", split, augment))
