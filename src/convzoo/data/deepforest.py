"""NEON aerial tree crowns from the DeepForest wheel: real single-class detection (SSD, paper 27).

Registered as ``deepforest``. The ``deepforest==2.1.0`` wheel (MIT; the imagery is NEON's airborne
RGB) ships four annotated images with Pascal VOC XML (0-based continuous coordinates, as its CSV
files): ``OSBS_029`` (400 x 400, 61 crowns), ``SOAP_061`` (400 x 400, 37 crowns labelled
Alive/Dead), ``2019_YELL_2_541000_4977000_image_crop`` (1249 x 1035, 279) and
``2019_YELL_2_528000_4978000_image_crop2`` (2299 x 2472, 574): 951 boxes. Every box is one class,
"tree" (Alive and Dead are merged).

Nothing is downloaded at import or when the set is built: run ``convzoo data fetch deepforest``
once (:func:`convzoo.data.fetch.fetch`), which extracts these files into ``~/.cache/convzoo/deepforest``
(or ``$CONVZOO_DATA/deepforest``); ``root`` points elsewhere.

Images are cut into ``tile x tile`` patches (default 400, the size of the small images): tiles start
every ``tile`` pixels and a last tile is aligned with the far edge, so edge tiles overlap their
neighbour. A box is kept in a tile, clipped, when at least ``min_visible`` (0.5) of its area lies
inside. Fixed split by image (each site held out whole): train = the YELL ``crop2`` tiles (42),
val = the YELL ``541000`` tiles (12), test = OSBS_029 and SOAP_061 (two other NEON sites, Florida and
California: a test of transfer across forests).
"""

from __future__ import annotations

from functools import lru_cache
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
from convzoo.data.fetch import Fetchable, data_home, register_fetchable
from convzoo.data.registry import register_dataset
from convzoo.data.voc import parse_voc_xml
from convzoo.errors import ConvzooError

NAME = "deepforest"
IMAGES = {"train": ("2019_YELL_2_528000_4978000_image_crop2",),
          "val": ("2019_YELL_2_541000_4977000_image_crop",),
          "test": ("OSBS_029", "SOAP_061")}
SPEC = register_fetchable(Fetchable(
    NAME, "deepforest==2.1.0",
    tuple(f"deepforest/data/{stem}.{ext}" for stems in IMAGES.values() for stem in stems
          for ext in ("png", "xml"))
    + ("deepforest-2.1.0.dist-info/licenses/LICENSE",),
    "NEON airborne RGB tree-crown images with Pascal VOC boxes, from the DeepForest package (MIT)."))


def tile_starts(length: int, tile: int) -> list[int]:
    """Tile offsets along one axis: 0, tile, 2 tile, ... and a last one flush with the far edge."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, tile))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def tile_boxes(boxes: torch.Tensor, x0: int, y0: int, w: int, h: int, min_visible: float):
    """(N, 4) boxes -> (boxes clipped to the tile in its coordinates, kept mask)."""
    clipped = boxes - torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype)
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, w)
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, h)

    def area(b):
        return (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)

    keep = area(clipped) >= min_visible * area(boxes).clamp(min=1e-6)
    keep &= (clipped[:, 2] - clipped[:, 0] >= 1) & (clipped[:, 3] - clipped[:, 1] >= 1)
    return clipped[keep], keep


@lru_cache(maxsize=8)
def _tiles(folder: str, stem: str, tile: int, min_visible: float) -> list[tuple]:
    """(name, uint8 (3, t, t) tile, boxes in the tile) of one image (cached per process)."""
    png, xml = Path(folder) / f"{stem}.png", Path(folder) / f"{stem}.xml"
    ann = parse_voc_xml(xml, one_based=False)
    boxes = torch.tensor([o[1] for o in ann["objects"]], dtype=torch.float32).reshape(-1, 4)
    image = read_rgb(png)
    h, w = image.shape[-2:]
    out = []
    for y0 in tile_starts(h, tile):
        for x0 in tile_starts(w, tile):
            th, tw = min(tile, h), min(tile, w)
            b, _ = tile_boxes(boxes, x0, y0, tw, th, min_visible)
            out.append((f"{stem}@{x0},{y0}", image[:, y0:y0 + th, x0:x0 + tw].clone(), b))
    return out


def _folder(root: str | None) -> Path:
    folder = Path(root).expanduser() if root is not None else data_home(NAME)
    missing = [Path(m).name for m in SPEC.members
               if m.endswith((".png", ".xml")) and not (folder / Path(m).name).is_file()]
    if missing:
        hint = " or set data.root to the folder holding it" if root is None else ""
        raise ConvzooError(f"deepforest data not found in {folder} (missing {missing[0]}); run "
                           f"`convzoo data fetch deepforest` first{hint}")
    return folder


@register_dataset(NAME)
def deepforest(split: str, root: str | None = None, *, size: int = 300, tile: int = 400,
               min_visible: float = 0.5, augment=True) -> DetectionDataset:
    """Tree crowns in NEON aerial photos (see the module docstring)."""
    size = check_size(NAME, size)
    if int(tile) != tile or tile < 32:
        raise ConvzooError(f"deepforest: tile must be an integer >= 32, got {tile!r}")
    folder = _folder(root)
    records = []
    for stem in IMAGES[split]:
        for name, image, boxes in _tiles(str(folder), stem, int(tile), float(min_visible)):
            n = len(boxes)
            records.append(Record(name, lambda img=image: img, boxes, torch.ones(n, dtype=torch.int64),
                                  torch.zeros(n, dtype=torch.bool)))
    info = detection_info(NAME, ("tree",), size, images=list(IMAGES[split]), tile=int(tile), root=str(folder))
    return DetectionDataset(records, info, size, augment_options(NAME, split, augment))
