"""Detection data (paper 27, SSD): the Pascal VOC and COCO readers on fixture files written here in those
formats, the paper's augmentation (Sec. 2.2) against a crop recovered from the pixels, the bundled
``scenes``, the ``deepforest`` tiles and ``convzoo data fetch`` with pip mocked.
"""

from __future__ import annotations

import subprocess
import zipfile

import numpy as np
import pytest
import torch
from fixture_files import (
    write_coco_folder,
    write_deepforest_files,
    write_voc_folder,
)

from convzoo.data import build_dataset
from convzoo.data.detection import MEAN, STD, DetectionDataset, Record, detection_info
from convzoo.errors import ConvzooError, UnknownNameError

pytestmark = pytest.mark.paper(27)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.claim(paper=27, artefact="voc",
                   claim="Pascal VOC reader: 1-based inclusive XML boxes -> continuous xyxy (xmin - 1), scaled to the "
                         "input; VOC class order -> labels 1..20; difficult kept and flagged, or dropped from training")
def test_voc_reader(tmp_path):
    write_voc_folder(tmp_path)
    ds = build_dataset("voc", "train", root=str(tmp_path), size=100, augment=False)
    assert len(ds) == 2 and ds.info.num_classes == 21 and ds.info.class_names[0] == "__background__"
    x, t = ds[0]
    assert x.shape == (3, 100, 100)
    # dog (VOC class 12) at 1-based (10, 5, 30, 25) -> (9, 4, 30, 25), scaled by 100/50 and 100/40
    torch.testing.assert_close(t["boxes"], torch.tensor([[18.0, 10.0, 60.0, 62.5], [0.0, 0.0, 100.0, 100.0]]))
    assert t["labels"].tolist() == [12, 15] and t["difficult"].tolist() == [False, True]
    # the image itself: grey 128 normalised
    torch.testing.assert_close(x[:, 50, 50], (torch.full((3,), 128 / 255) - torch.tensor(MEAN)) / torch.tensor(STD),
                               atol=0.02, rtol=0)
    no_diff = build_dataset("voc", "train", root=str(tmp_path), size=100, augment=False, keep_difficult=False)
    assert no_diff[0][1]["labels"].tolist() == [12]
    test = build_dataset("voc", "test", root=str(tmp_path), size=60, keep_difficult=False)
    assert len(test) == 1 and test.names == [f"{tmp_path.name}/000002"]
    torch.testing.assert_close(test[0][1]["boxes"], torch.tensor([[30.0, 10.0, 60.0, 60.0]]))
    # the paper's 07+12 layout: ROOT/VOC2007 + ROOT/VOC2012 -> "VOC2007/trainval" entries
    devkit = tmp_path / "devkit"
    write_voc_folder(devkit / "VOC2007")
    both = build_dataset("voc", "train", root=str(devkit), image_sets={"train": ["VOC2007/train", "VOC2007/test"]})
    assert len(both) == 3


def test_voc_errors_are_one_line(tmp_path):
    cases = [{"root": None}, {"root": str(tmp_path / "missing")}, {"root": str(tmp_path)}]
    for kw in cases:
        with pytest.raises(ConvzooError) as e:
            build_dataset("voc", "train", **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(ConvzooError, match="VOC2007/Annotations"):
        build_dataset("voc", "train", root=str(tmp_path))
    write_voc_folder(tmp_path / "v")
    with pytest.raises(ConvzooError, match="val.txt"):
        build_dataset("voc", "val", root=str(tmp_path / "v"))
    (tmp_path / "v" / "Annotations" / "000002.xml").write_text("<annotation><object>")
    with pytest.raises(ConvzooError, match="cannot read VOC annotation"):
        build_dataset("voc", "test", root=str(tmp_path / "v"))


@pytest.mark.claim(paper=27, artefact="coco",
                   claim="COCO reader: category ids (7, 1) -> contiguous labels in id order (person 1, car 2); bbox "
                         "[x, y, w, h] -> xyxy; crowd dropped from training and flagged in evaluation; <1 px dropped")
def test_coco_reader(tmp_path):
    write_coco_folder(tmp_path)
    val = build_dataset("coco", "val", root=str(tmp_path), size=80)
    assert val.info.class_names == ("__background__", "person", "car") and val.info.extra["category_ids"] == [1, 7]
    assert len(val) == 2
    x, t = val[0]
    assert x.shape == (3, 80, 80)
    torch.testing.assert_close(t["boxes"], torch.tensor([[20.0, 20.0, 60.0, 60.0], [0.0, 0.0, 80.0, 80.0]]))
    assert t["labels"].tolist() == [2, 1] and t["difficult"].tolist() == [False, True]
    assert len(val[1][1]["boxes"]) == 0  # an image without annotations holds only negatives
    train = build_dataset("coco", "train", root=str(tmp_path), size=80, augment=False, sets={"train": "val2017"})
    assert train[0][1]["labels"].tolist() == [2]
    with pytest.raises(ConvzooError, match="instances_train2017.json"):
        build_dataset("coco", "train", root=str(tmp_path))
    with pytest.raises(ConvzooError, match="coco: set data.root"):
        build_dataset("coco", "val")
    (tmp_path / "annotations" / "instances_val2017.json").write_text("{}")
    with pytest.raises(ConvzooError, match="no 'images'"):
        build_dataset("coco", "val", root=str(tmp_path))


def _fit_axis(profile: np.ndarray, out: int) -> tuple[int, int, bool]:
    """From an output row/column of source coordinates (value at pixel u = X(u + 0.5) - 0.5 with X linear),
    recover the crop: (start, length, flipped)."""
    u = np.arange(out)
    inner = slice(out // 4, 3 * out // 4)  # away from the borders, where antialiasing clamps
    slope, icpt = np.polyfit(u[inner], profile[inner], 1)
    x0 = icpt + 0.5 - 0.5 * slope  # X(0)
    length = round(abs(slope) * out)
    start = round(x0 - length) if slope < 0 else round(x0)
    return start, length, bool(slope < 0)


@pytest.mark.claim(paper=27, artefact="ssd_augment",
                   claim="SSD augmentation (min-IoU crop, flip, resize) moves boxes exactly as the image: the crop "
                         "window and flip recovered from coordinate-coded pixels, applied to the boxes by hand "
                         "(shift, keep centres inside, clip, scale, mirror, drop < 1 px), give the returned boxes")
def test_augmentation_matches_hand_crop():
    size, h, w = 64, 180, 200
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    img[0] = torch.arange(w, dtype=torch.uint8)[None, :]  # red = column, green = row
    img[1] = torch.arange(h, dtype=torch.uint8)[:, None]
    boxes = torch.tensor([[20.0, 30, 60, 90], [100, 100, 180, 150], [150, 10, 190, 40], [5, 130, 45, 175]])
    labels, diff = torch.tensor([1, 2, 1, 2]), torch.tensor([False, True, False, False])
    info = detection_info("t", ("a", "b"), size)
    ds = DetectionDataset([Record("c", lambda: img, boxes, labels, diff)], info, size,
                          augment={"photometric": False, "zoom_out": 1.0})
    mean, std = torch.tensor(MEAN).reshape(3, 1, 1), torch.tensor(STD).reshape(3, 1, 1)
    crops = 0
    for seed in range(25):
        torch.manual_seed(seed)
        x, t = ds[0]
        src = ((x * std + mean) * 255).numpy()  # source coordinates, not rounded
        left, cw, flip = _fit_axis(src[0].mean(0), size)
        top, ch, vflip = _fit_axis(src[1].mean(1), size)
        assert not vflip
        crops += (cw, ch) != (w, h)
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        keep = (left < cx) & (cx < left + cw) & (top < cy) & (cy < top + ch)
        b = boxes[keep] - torch.tensor([left, top, left, top])
        b[:, 0::2] = b[:, 0::2].clamp(0, cw) * size / cw
        b[:, 1::2] = b[:, 1::2].clamp(0, ch) * size / ch
        if flip:
            b = torch.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], 1)
        ok = ((b[:, 2] - b[:, 0]) >= 1) & ((b[:, 3] - b[:, 1]) >= 1)
        torch.testing.assert_close(t["boxes"], b[ok], atol=0.05, rtol=0)
        assert torch.equal(t["labels"], labels[keep][ok]) and torch.equal(t["difficult"], diff[keep][ok])
    assert crops >= 10  # most draws crop


def test_full_augmentation_keeps_boxes_inside():
    from convzoo.data.detection import ssd_augment

    ds = build_dataset("scenes", "train", size=64, num_images=8)
    assert ds.augmented and [type(s).__name__ for s in ssd_augment(64).transforms] == [
        "ToDtype", "RandomPhotometricDistort", "RandomZoomOut", "RandomIoUCrop", "RandomHorizontalFlip", "Resize",
        "ClampBoundingBoxes", "SanitizeBoundingBoxes", "Normalize"]
    for seed in range(40):
        torch.manual_seed(seed)
        x, t = ds[seed % 8]
        b = t["boxes"]
        assert x.shape == (3, 64, 64) and b.dtype == torch.float32 and t["labels"].dtype == torch.int64
        assert (b >= 0).all() and (b <= 64).all() and ((b[:, 2:] - b[:, :2]) >= 1).all()
        assert len(b) == len(t["labels"]) == len(t["difficult"]) and set(t["labels"].tolist()) <= set(range(1, 11))


@pytest.mark.claim(paper=27, artefact="scenes",
                   claim="a pasted digit's box is the tight box of the pixels it changed (encloses all, touches each "
                         "side)")
def test_paste_digit_box_is_tight():
    from convzoo.data.digits import _load
    from convzoo.data.scenes import paste_digit

    images, _ = _load()
    for k, (x, y, side) in enumerate([(3, 5, 20), (10, 0, 37), (0, 12, 8)]):
        canvas = torch.zeros(3, 50, 50)
        box = paste_digit(canvas, torch.from_numpy(images[k]), x, y, side, torch.ones(3))
        rows, cols = np.nonzero(canvas.sum(0).numpy())
        assert box == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


@pytest.mark.claim(paper=27, artefact="scenes",
                   claim="scenes: deterministic, boxes inside the image and disjoint, labels digit + 1 in 1..10, "
                         "backgrounds and digits held out between splits")
def test_scenes_deterministic_and_held_out():
    from convzoo.data import scenes as sc
    from convzoo.data.digits import digits_split

    a = build_dataset("scenes", "test", size=64, num_images=12)
    sc._scenes.cache_clear()
    b = build_dataset("scenes", "test", size=64, num_images=12)
    assert a.info.num_classes == 11 and a.info.class_names[:3] == ("__background__", "0", "1")
    for i in range(12):
        (ia, ta), (ib, tb) = a.raw(i), b.raw(i)
        assert torch.equal(ia, ib) and torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["labels"], tb["labels"])
        boxes = ta["boxes"]
        assert 1 <= len(boxes) <= 3 and (boxes >= 0).all() and (boxes <= 64).all()
        assert ((ta["labels"] >= 1) & (ta["labels"] <= 10)).all()
        for j in range(len(boxes)):
            for k in range(j + 1, len(boxes)):
                inter = (torch.min(boxes[j, 2:], boxes[k, 2:]) - torch.max(boxes[j, :2], boxes[k, :2])).clamp(min=0)
                assert inter.prod() == 0
    _, t = a[0]  # evaluation items: only resized (already at size) and normalised
    torch.testing.assert_close(t["boxes"], a.raw(0)[1]["boxes"])
    photos = {s: set(build_dataset("scenes", s, size=64, num_images=1).info.extra["photos"]) for s in ("train", "val", "test")}
    assert not (photos["train"] & photos["test"]) and not (photos["train"] & photos["val"])
    split = digits_split()
    assert not set(split["train"]) & set(split["test"])
    few = build_dataset("scenes", "val", size=64, num_images=10, num_digits=3)
    assert few.info.num_classes == 4 and all(set(r.labels.tolist()) <= {1, 2, 3} for r in few.records)


# --- deepforest and fetch -----------------------------------------------------------------------------
def test_deepforest_tiles():
    from convzoo.data.deepforest import tile_boxes, tile_starts

    assert tile_starts(400, 400) == [0] and tile_starts(1035, 400) == [0, 400, 635]
    assert tile_starts(1249, 400) == [0, 400, 800, 849] and tile_starts(800, 400) == [0, 400]
    boxes = torch.tensor([[380.0, 0, 420, 10], [390.0, 0, 420, 10], [0, 0, 10, 10]])
    kept, mask = tile_boxes(boxes, 0, 0, 400, 400, 0.5)
    assert mask.tolist() == [True, False, True]  # half inside is kept; a third inside is not
    torch.testing.assert_close(kept, torch.tensor([[380.0, 0, 400, 10], [0, 0, 10, 10]]))


@pytest.mark.claim(paper=27, artefact="deepforest",
                   claim="deepforest: without the fetched files a one-line error says to run `convzoo data fetch "
                         "deepforest`; with them, 400 px tiles (last tile flush with the edge), 0-based VOC boxes, one "
                         "class 'tree', split by image (test = OSBS_029 + SOAP_061)")
def test_deepforest_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "home"))
    with pytest.raises(ConvzooError, match="run `convzoo data fetch deepforest`") as e:
        build_dataset("deepforest", "train")
    assert "\n" not in str(e.value) and str(tmp_path / "home" / "deepforest") in str(e.value)
    write_deepforest_files(tmp_path / "home" / "deepforest")
    train = build_dataset("deepforest", "train", size=100, augment=False)
    assert train.info.class_names == ("__background__", "tree") and len(train) == 4  # 500 x 450: x 0, 100; y 0, 50
    assert train.names[1] == "2019_YELL_2_528000_4978000_image_crop2@100,0"
    assert train.raw(1)[0].shape == (3, 400, 400)
    torch.testing.assert_close(train.raw(1)[1]["boxes"], torch.tensor([[280.0, 100, 340, 140]]))
    torch.testing.assert_close(train.raw(0)[1]["boxes"], torch.tensor([[10.0, 10, 50, 60]]))  # 20/60 inside: dropped
    test = build_dataset("deepforest", "test", size=100)
    assert test.names == ["OSBS_029@0,0", "SOAP_061@0,0"] and test[1][1]["labels"].tolist() == [1]
    assert len(build_dataset("deepforest", "val", root=str(tmp_path / "home" / "deepforest"))) == 2


def _fake_pip(tmp_path, members, returncode=0):
    """A stand-in for subprocess.run: `pip download ... -d FOLDER` writes a wheel holding ``members``."""
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        if returncode:
            return subprocess.CompletedProcess(cmd, returncode, "", "ERROR: No matching distribution found\n")
        folder = cmd[cmd.index("-d") + 1]
        with zipfile.ZipFile(f"{folder}/deepforest-2.1.0-py3-none-any.whl", "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return subprocess.CompletedProcess(cmd, 0, "Saved\n", "")

    return run, calls


@pytest.mark.claim(paper=27, artefact="fetch",
                   claim="fetch('deepforest') runs `pip download --no-deps deepforest==2.1.0 -d DIR` and extracts only "
                         "the listed data files into the cache folder, which the deepforest set then reads")
def test_fetch_deepforest(tmp_path, monkeypatch):
    from convzoo.data import fetch as fetch_mod
    from convzoo.data.deepforest import SPEC

    src = tmp_path / "src"
    write_deepforest_files(src)
    members = {m: (src / m.rsplit("/", 1)[1]).read_bytes() if m.startswith("deepforest/data/") else b"MIT License"
               for m in SPEC.members}
    members["deepforest/main.py"] = b"print('code')"
    run, calls = _fake_pip(tmp_path, members)
    monkeypatch.setattr(fetch_mod.subprocess, "run", run)
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "cache"))
    folder = fetch_mod.fetch("deepforest")
    assert folder == tmp_path / "cache" / "deepforest" == fetch_mod.data_home("deepforest")
    cmd = calls[0]
    assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"] and "deepforest==2.1.0" in cmd
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [m.rsplit("/", 1)[1] for m in SPEC.members] + ["SOURCE.txt"])
    assert not (folder / "main.py").exists() and fetch_mod.is_fetched("deepforest")
    assert len(build_dataset("deepforest", "test")) == 2
    other = fetch_mod.fetch("deepforest", dest=tmp_path / "elsewhere")
    assert other == tmp_path / "elsewhere" and (other / "OSBS_029.xml").is_file()


def test_fetch_errors(tmp_path, monkeypatch):
    from convzoo.data import fetch as fetch_mod

    run, _ = _fake_pip(tmp_path, {}, returncode=1)
    monkeypatch.setattr(fetch_mod.subprocess, "run", run)
    with pytest.raises(ConvzooError, match="No matching distribution"):
        fetch_mod.fetch("deepforest", dest=tmp_path / "d")
    run, _ = _fake_pip(tmp_path, {"deepforest/data/OSBS_029.png": b""})
    monkeypatch.setattr(fetch_mod.subprocess, "run", run)
    with pytest.raises(ConvzooError, match="lacks"):
        fetch_mod.fetch("deepforest", dest=tmp_path / "d")
    with pytest.raises(UnknownNameError, match="deepforest"):
        fetch_mod.fetch("deepforrest")
    assert {"deepforest", "ucr", "video_clips"} <= set(fetch_mod.list_fetchable())
