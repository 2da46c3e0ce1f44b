"""Fixture files in the real on-disk formats, written by the tests (no data set is downloaded).

CIFAR python pickles (the real dict keys and Python 2 opcodes), MNIST IDX, ImageFolder trees, Pascal VOC
folders (XML + JPEGImages + ImageSets), COCO instances JSON, DeepForest's annotated tiles, OpenCV's
``digits.png`` sheet and Debian ``.deb`` packages (an ``ar`` archive of debian-binary, control.tar, data.tar). Used by
tests/data (the readers) and tests/engine/test_every_recipe.py (every recipe runs on its format).
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), as the real batches were
    written by Python 2's cPickle: keys, label names and the numpy arrays' raw data."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes):
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def dump_pickle(path: Path, obj, style: str = "py2") -> None:
    """``py2``: the real files' opcodes (numpy.core.multiarray globals); ``py3``: a Python 3 re-pickle."""
    if style == "py3":
        path.write_bytes(pickle.dumps(obj, protocol=2))
        return
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    path.write_bytes(buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


def write_cifar10(root: Path, n: int = 20, seed: int = 0, style: str = "py2") -> dict:
    """cifar-10-batches-py/ with 5 training batches and a test batch of ``n`` images each."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {"train_data": [], "train_labels": []}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.permutation(np.arange(n) % 10)]
        dump_pickle(d / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"img_{i}.png".encode() for i in range(n)]}, style)
        if name == "test_batch":
            out["test_data"], out["test_labels"] = data, labels
        else:
            out["train_data"].append(data)
            out["train_labels"] += labels
    dump_pickle(d / "batches.meta", {b"num_cases_per_batch": n, b"label_names": [c.encode() for c in CIFAR10_NAMES],
                               b"num_vis": 3072}, style)
    out["train_data"] = np.concatenate(out["train_data"])
    return out


def write_cifar100(root: Path, n_train: int = 60, n_test: int = 20) -> dict:
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        fine = rng.integers(0, 100, n)
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        dump_pickle(d / name, {b"filenames": [b"x.png"] * n, b"batch_label": name.encode(),
                         b"fine_labels": fine.tolist(), b"coarse_labels": (fine // 5).tolist(), b"data": data})
        out[name] = (data, fine)
    dump_pickle(d / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                       b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return out


def write_idx(path: Path, arr: np.ndarray, magic: int, gz: bool = False) -> Path:
    data = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def write_mnist(folder: Path, n_train: int = 40, n_test: int = 12, gz: bool = False, sep: str = "-") -> dict:
    rng = np.random.default_rng(2)
    ref = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        ref[stem] = (images, labels, write_idx(folder / f"{stem}-images{sep}idx3-ubyte", images, 2051, gz),
                     write_idx(folder / f"{stem}-labels{sep}idx1-ubyte", labels, 2049, gz))
    return ref


def write_tree(root: Path, split: str, per_class: dict[str, int], ext: str = "png", seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    written = {}
    for cls, n in per_class.items():
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            path = root / split / cls / f"{i:03d}.{ext}"
            Image.fromarray(arr).save(path)
            written[path] = arr
    return written


def write_jpeg(path, w, h, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, dtype=np.uint8)).save(path)


def write_voc_xml(path, w, h, objects, filename="x.jpg"):
    objs = "".join(f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated>"
                   f"<difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                   f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b, d in objects)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><folder>VOC2007</folder><filename>{filename}</filename><size><width>{w}</width>"
                    f"<height>{h}</height><depth>3</depth></size><segmented>0</segmented>{objs}</annotation>")


def write_voc_folder(root):
    """A VOC folder: 000001 (50 x 40: a dog, a difficult person), 000002 (60 x 60: a cat); train = both, test = 2."""
    write_voc_xml(root / "Annotations" / "000001.xml", 50, 40, [("dog", (10, 5, 30, 25), 0), ("person", (1, 1, 50, 40), 1)])
    write_voc_xml(root / "Annotations" / "000002.xml", 60, 60, [("cat", (31, 11, 60, 60), 0)])
    write_jpeg(root / "JPEGImages" / "000001.jpg", 50, 40)
    write_jpeg(root / "JPEGImages" / "000002.jpg", 60, 60)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001\n000002\n")
    (root / "ImageSets" / "Main" / "test.txt").write_text("000002\n")


def write_coco_folder(root):
    data = {
        "images": [{"id": 10, "file_name": "a.jpg", "width": 40, "height": 20},
                   {"id": 11, "file_name": "b.jpg", "width": 30, "height": 30}],
        "categories": [{"id": 7, "name": "car"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [10, 5, 20, 10], "iscrowd": 0, "area": 200},
            {"id": 2, "image_id": 10, "category_id": 1, "bbox": [0, 0, 40, 20], "iscrowd": 1, "area": 800},
            {"id": 3, "image_id": 10, "category_id": 1, "bbox": [1, 1, 0.5, 5], "iscrowd": 0, "area": 2.5},
        ],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    write_jpeg(root / "val2017" / "a.jpg", 40, 20)
    write_jpeg(root / "val2017" / "b.jpg", 30, 30)


DF_SIZES = {"2019_YELL_2_528000_4978000_image_crop2": (500, 450), "2019_YELL_2_541000_4977000_image_crop": (420, 400),
            "OSBS_029": (400, 400), "SOAP_061": (400, 400)}


def write_deepforest_files(folder):
    """Fixture files with DeepForest's names: small images, 0-based VOC boxes (SOAP labelled Alive/Dead)."""
    for stem, (w, h) in DF_SIZES.items():
        write_jpeg(folder / f"{stem}.png", w, h)
        objs = [("Tree", (10, 10, 50, 60), 0), ("Dead" if stem == "SOAP_061" else "Tree", (380, 100, 440, 140), 0)]
        write_voc_xml(folder / f"{stem}.xml", w, h, objs, filename=f"{stem}.tif")


def write_opencv_digits(folder: Path, name: str = "digits.png") -> np.ndarray:
    """OpenCV's digits.png layout: 2000 x 1000 grey, 50 rows x 100 cells of 20 x 20. Cell i is filled with
    ``i % 251`` and has a white top-left pixel, so tests can tell the reading order; returns the cells."""
    cells = np.zeros((5000, 20, 20), np.uint8)
    cells[:] = (np.arange(5000) % 251).astype(np.uint8)[:, None, None]
    cells[:, 0, 0] = 255
    sheet = cells.reshape(50, 100, 20, 20).transpose(0, 2, 1, 3).reshape(1000, 2000)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(folder / name)
    return cells


def _tar_bytes(files: dict[str, bytes], compression: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}" if compression else "w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo("./" + path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_deb(path: Path, files: dict[str, bytes], compression: str = "xz") -> Path:
    """A Debian package as dpkg-deb lays it out: ``ar`` members debian-binary, control.tar.*, data.tar.*
    (``compression`` "xz", "gz", "bz2" or "" for none); ``files`` maps paths (no leading "./") to bytes."""
    ext = f".{compression}" if compression else ""
    members = [("debian-binary", b"2.0\n"),
               (f"control.tar{ext}", _tar_bytes({"control": b"Package: fixture\nVersion: 1\n"}, compression)),
               (f"data.tar{ext}", _tar_bytes(files, compression))]
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path
