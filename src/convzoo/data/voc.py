"""Pascal VOC detection data on disk (the data of SSD's VOC2007/2012 results, arXiv 1512.02325 Sec. 3.1).

Registered as ``voc``. The layout is the VOC devkit's::

    ROOT/VOC2007/Annotations/<id>.xml       one <annotation> per image: <size>, <object>s with
    ROOT/VOC2007/ImageSets/Main/<set>.txt   <name>, <difficult>, <bndbox> xmin ymin xmax ymax
    ROOT/VOC2007/JPEGImages/<id>.jpg

``image_sets`` maps each split to a list of ``"FOLDER/SET"`` entries relative to ``root`` (``"SET"``
alone when ``root`` is one VOC folder). The default is the paper's "07+12": train = VOC2007
trainval + VOC2012 trainval, val and test = VOC2007 test. A plain VOC folder (``root`` holding
``Annotations``) defaults to its own ``train`` / ``val`` / ``test`` sets.

Coordinates: VOC pixel indices are 1-based and inclusive, so ``xmin..xmax`` covers the continuous
interval ``[xmin - 1, xmax]`` (:func:`parse_voc_xml` with ``one_based=True``, the default); files
with 0-based continuous coordinates (DeepForest's) pass ``one_based=False``. ``keep_difficult``
(default true, as the official ``ssd_pascal.py``) keeps "difficult" objects in training targets;
evaluation always keeps them, flagged, and the metrics ignore them (VOC devkit rule).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
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

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
PAPER_SETS = {"train": ["VOC2007/trainval", "VOC2012/trainval"], "val": ["VOC2007/test"],
              "test": ["VOC2007/test"]}
FOLDER_SETS = {"train": ["train"], "val": ["val"], "test": ["test"]}


def _text(node: ET.Element, tag: str, path: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise ConvzooError(f"{path}: <{node.tag}> has no <{tag}>; expected a Pascal VOC annotation")
    return child.text.strip()


def parse_voc_xml(path: Path, one_based: bool = True) -> dict:
    """A VOC annotation file -> ``{"filename", "width", "height", "objects": [(name, [x0, y0, x1, y1],
    difficult)]}`` with continuous 0-based coordinates."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise ConvzooError(f"cannot read VOC annotation {path}: {e}") from None
    size = root.find("size")
    width = int(float(_text(size, "width", path))) if size is not None else 0
    height = int(float(_text(size, "height", path))) if size is not None else 0
    shift = 1.0 if one_based else 0.0
    objects = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        if box is None:
            raise ConvzooError(f"{path}: an <object> has no <bndbox>")
        x0, y0, x1, y1 = (float(_text(box, t, path)) for t in ("xmin", "ymin", "xmax", "ymax"))
        diff = obj.find("difficult")
        difficult = diff is not None and diff.text is not None and diff.text.strip() == "1"
        objects.append((_text(obj, "name", path), [x0 - shift, y0 - shift, x1, y1], difficult))
    return {"filename": root.findtext("filename", default="").strip(), "width": width, "height": height,
            "objects": objects}


def voc_record(xml_path: Path, image_path: Path, class_index: dict[str, int], one_based: bool = True,
               keep_difficult: bool = True, name: str | None = None) -> Record:
    """One annotated image; objects of other classes than ``class_index`` (name -> label) are skipped."""
    ann = parse_voc_xml(xml_path, one_based)
    objs = [o for o in ann["objects"] if o[0] in class_index and (keep_difficult or not o[2])]
    boxes = torch.tensor([o[1] for o in objs], dtype=torch.float32).reshape(-1, 4)
    labels = torch.tensor([class_index[o[0]] for o in objs], dtype=torch.int64)
    difficult = torch.tensor([o[2] for o in objs], dtype=torch.bool)
    return Record(name or xml_path.stem, lambda p=image_path: read_rgb(p), boxes, labels, difficult)


def _folder_records(folder: Path, image_set: str, class_index: dict[str, int],
                    keep_difficult: bool) -> list[Record]:
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        if not (folder / sub).is_dir():
            raise ConvzooError(f"voc: {folder / sub} not found; expected a VOC folder with Annotations/, "
                               "JPEGImages/ and ImageSets/Main/")
    listing = folder / "ImageSets" / "Main" / f"{image_set}.txt"
    if not listing.is_file():
        raise ConvzooError(f"voc: image set {listing} not found")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    records = []
    for i in ids:
        xml = folder / "Annotations" / f"{i}.xml"
        if not xml.is_file():
            raise ConvzooError(f"voc: annotation {xml} (listed in {listing.name}) not found")
        records.append(voc_record(xml, folder / "JPEGImages" / f"{i}.jpg", class_index,
                                  keep_difficult=keep_difficult, name=f"{folder.name}/{i}"))
    return records


@register_dataset("voc")
def voc(split: str, root: str | None = None, *, size: int = 300, augment=True, image_sets: dict | None = None,
        classes: list[str] | None = None, keep_difficult: bool = True) -> DetectionDataset:
    """Pascal VOC detection (see the module docstring); ``classes`` defaults to the 20 VOC classes."""
    if root is None:
        raise ConvzooError("voc: set data.root to your VOCdevkit folder (holding VOC2007/ and VOC2012/) "
                           "or to one VOC folder (holding Annotations/)")
    root_p = Path(root).expanduser()
    if not root_p.is_dir():
        raise ConvzooError(f"voc: root {root_p} is not a folder")
    size = check_size("voc", size)
    names = tuple(classes) if classes else VOC_CLASSES
    class_index = {n: i + 1 for i, n in enumerate(names)}
    sets = image_sets or (FOLDER_SETS if (root_p / "Annotations").is_dir() else PAPER_SETS)
    if split not in sets:
        raise ConvzooError(f"voc: image_sets has no entry for split '{split}' (keys: {sorted(sets)})")
    records = []
    for entry in sets[split]:
        folder, _, image_set = str(entry).rpartition("/")
        records += _folder_records(root_p / folder if folder else root_p, image_set, class_index,
                                   keep_difficult or split != "train")
    info = detection_info("voc", names, size, image_sets=list(sets[split]), root=str(root_p))
    return DetectionDataset(records, info, size, augment_options("voc", split, augment))
