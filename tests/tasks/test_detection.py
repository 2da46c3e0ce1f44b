"""The detection task (paper 27, SSD): collate, loss routing, the VOC07 and COCO metrics, predict files,
pictures and report, and one short engine run on the bundled scenes.

Expected metric values are closed forms written from the metrics' definitions: the VOC2007 devkit's
11-point AP (VOCevaldet.m: strict IoU > 0.5, difficult boxes ignored, duplicates are false positives)
and COCO's 101-point interpolated AP. A tiny stand-in detector that follows the SSD contract
(``model(x)`` raw, ``model.loss``, ``model.detect``) drives the task where no SSD model is needed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou

from convzoo.tasks import build_task, list_tasks
from convzoo.tasks.detection import DetectorOutputs
from convzoo.tasks.detection_metrics import DetectionMAP, voc07_ap

pytestmark = pytest.mark.paper(27)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyDetector(nn.Module):
    """A contract stand-in: stride-8 grid with 2 square priors per cell, IoU matching, CE + smooth L1."""

    def __init__(self, num_classes: int = 3, in_chans: int = 3, size: int = 32, width: int = 8):
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(nn.Conv2d(in_chans, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 2, 1),
                                  nn.ReLU(), nn.Conv2d(width, width, 3, 2, 1), nn.ReLU())
        self.head = nn.Conv2d(width, 2 * (4 + num_classes), 3, padding=1)
        g = size // 8
        c = (torch.arange(g) + 0.5) * 8
        cy, cx = torch.meshgrid(c, c, indexing="ij")
        pri = [torch.stack([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], -1) for s in (0.3 * size, 0.6 * size)]
        self.register_buffer("priors", torch.stack(pri, 2).reshape(-1, 4))  # (g*g*2, 4), order (y, x, a)

    def forward(self, x):
        h = self.head(self.body(x))
        return h.permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4 + self.num_classes)

    def _encode(self, boxes):
        p = self.priors
        pw, ph, bw, bh = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        return torch.stack([((boxes[:, 0] + boxes[:, 2]) - (p[:, 0] + p[:, 2])) / 2 / pw / 0.1,
                            ((boxes[:, 1] + boxes[:, 3]) - (p[:, 1] + p[:, 3])) / 2 / ph / 0.1,
                            torch.log(bw / pw) / 0.2, torch.log(bh / ph) / 0.2], -1)

    def _decode(self, loc):
        p = self.priors
        pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
        cx, cy = (p[:, 0] + p[:, 2]) / 2 + loc[:, 0] * 0.1 * pw, (p[:, 1] + p[:, 3]) / 2 + loc[:, 1] * 0.1 * ph
        w, h = pw * torch.exp(loc[:, 2] * 0.2), ph * torch.exp(loc[:, 3] * 0.2)
        return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)

    def loss(self, raw, targets):
        locs, confs = [], []
        for out, t in zip(raw, targets):
            labels = torch.zeros(len(self.priors), dtype=torch.long)
            loc = out.new_zeros(())
            if len(t["boxes"]):
                iou = box_iou(t["boxes"], self.priors)  # (G, P)
                best, idx = iou.max(0)
                idx[iou.argmax(1)] = torch.arange(len(t["boxes"]))
                best[iou.argmax(1)] = 1.0
                pos = best > 0.5
                labels[pos] = t["labels"][idx[pos]]
                if pos.any():
                    loc = F.smooth_l1_loss(out[pos, :4], self._encode(t["boxes"][idx])[pos])
            locs.append(loc)
            confs.append(F.cross_entropy(out[:, 4:], labels))
        loc, conf = torch.stack(locs).mean(), torch.stack(confs).mean()
        return {"loss": loc + conf, "loc": loc.detach(), "conf": conf.detach()}

    def detect(self, raw, score_thresh=0.01, nms_thresh=0.45, top_k=200):
        out = []
        for r in raw:
            boxes, probs = self._decode(r[:, :4]), r[:, 4:].softmax(-1)
            cls = torch.arange(1, self.num_classes).repeat(len(boxes), 1)  # (P, C-1)
            b, s, c = boxes[:, None].expand(-1, self.num_classes - 1, 4).reshape(-1, 4), probs[:, 1:].reshape(-1), cls.reshape(-1)
            keep = s > score_thresh
            b, s, c = b[keep], s[keep], c[keep]
            k = batched_nms(b, s, c, nms_thresh)[:top_k]
            out.append({"boxes": b[k], "scores": s[k], "labels": c[k]})
        return out


def _voc(dets, gts, num_classes=2):
    """VOC07 map50 of hand-made detections: dets/gts are lists (per image) of (box, label[, score|difficult])."""
    m = DetectionMAP(num_classes, coco=False)
    for d, g in zip(dets, gts):
        m.update([{"boxes": torch.tensor([x[0] for x in d], dtype=torch.float32).reshape(-1, 4),
                   "labels": torch.tensor([x[1] for x in d], dtype=torch.long),
                   "scores": torch.tensor([x[2] for x in d], dtype=torch.float32)}],
                 [{"boxes": torch.tensor([x[0] for x in g], dtype=torch.float32).reshape(-1, 4),
                   "labels": torch.tensor([x[1] for x in g], dtype=torch.long),
                   "difficult": torch.tensor([bool(x[2]) if len(x) > 2 else False for x in g])}])
    return m


A, B, C = [0, 0, 10, 10], [20, 20, 40, 40], [50, 0, 60, 30]
FAR = [70, 70, 80, 80]


def test_registered():
    assert "detection" in list_tasks()
    t = build_task("detection")
    assert t.monitor == "map50" and t.monitor_mode == "max"
    assert {"num_classes", "embedding", "features"}.isdisjoint(t.contract_checks)


@pytest.mark.claim(paper=27, artefact="detection",
                   claim="VOC2007 11-point AP of a P/R curve = mean over t in {0,.1,...,1} of max precision at recall >= t "
                         "(VOC devkit; closed form 4/11 for recall (.2,.4), precision (1,.5))")
def test_voc07_11_point_interpolation():
    assert voc07_ap(np.array([0.2, 0.4]), np.array([1.0, 0.5])) == pytest.approx(4 / 11)
    assert voc07_ap(np.array([1.0]), np.array([1.0])) == pytest.approx(1.0)
    assert voc07_ap(np.array([]), np.array([])) == 0.0


@pytest.mark.claim(paper=27, artefact="detection",
                   claim="VOC07 mAP@0.5 closed forms from the devkit rules: perfect = 1; TP, FP, TP over 2 boxes = 28/33; "
                         "a duplicate is a false positive; difficult boxes neither count nor penalise; IoU exactly 0.5 "
                         "is a miss; a class without ground truth is left out of the mean")
def test_voc07_map_closed_forms():
    # perfect detections of two classes in two images
    m = _voc([[(A, 1, 0.9), (B, 2, 0.8)], [(C, 1, 0.7)]], [[(A, 1), (B, 2)], [(C, 1)]])
    assert float(m.compute()["map50"]) == pytest.approx(1.0)
    # class 1: TP (0.9), FP (0.8), TP (0.7) over 2 boxes: P/R (1, .5), (.5, .5), (2/3, 1) -> (6 * 1 + 5 * 2/3) / 11
    m = _voc([[(A, 1, 0.9), (FAR, 1, 0.8)], [(C, 1, 0.7)]], [[(A, 1)], [(C, 1)]])
    assert float(m.compute()["map50"]) == pytest.approx(28 / 33)
    # the same order with a duplicate on A instead of a far box: the duplicate is the false positive
    m = _voc([[(A, 1, 0.9), ([0, 0, 10, 9], 1, 0.8)], [(C, 1, 0.7)]], [[(A, 1)], [(C, 1)]])
    assert float(m.compute()["map50"]) == pytest.approx(28 / 33)
    # a detection on a difficult box (highest score) is ignored, and the difficult box is not a positive
    m = _voc([[(B, 1, 0.9), (A, 1, 0.8)]], [[(A, 1), (B, 1, True)]])
    assert float(m.compute()["map50"]) == pytest.approx(1.0)
    # ... while the same box not difficult and missed halves the recall: P/R (1, .5), (1, 1) with B detected; missed:
    m = _voc([[(A, 1, 0.8)]], [[(A, 1), (B, 1)]])
    assert float(m.compute()["map50"]) == pytest.approx(6 / 11)
    # IoU exactly 0.5 (half of A) is not a match: the devkit needs ovmax > 0.5
    m = _voc([[([0, 0, 10, 5], 1, 0.9)]], [[(A, 1)]])
    assert float(m.compute()["map50"]) == pytest.approx(0.0)
    # class 2 has boxes and no detection (AP 0); class 3 has detections and no box (not averaged)
    m = _voc([[(A, 1, 0.9), (C, 3, 0.9)]], [[(A, 1), (B, 2)]], num_classes=4)
    assert float(m.compute()["map50"]) == pytest.approx(0.5)
    per = m.voc_per_class()
    assert per[1] == pytest.approx(1.0) and per[2] == 0.0 and np.isnan(per[3])
    # a detection of the wrong class does not match another class's box
    m = _voc([[(A, 2, 0.9)]], [[(A, 1)]], num_classes=3)
    assert float(m.compute()["map50"]) == pytest.approx(0.0)


@pytest.mark.claim(paper=27, artefact="detection",
                   claim="COCO AP@[.5:.95] via torchmetrics: 1 for perfect detections; 51/101 when one of two boxes is "
                         "missed (101-point interpolation, precision 1 up to recall 0.5 at every IoU threshold)")
def test_coco_metric_closed_forms():
    m = _voc([[(A, 1, 0.9), (B, 1, 0.8)]], [[(A, 1), (B, 1)]])
    m.coco = True
    out = m.compute()
    assert float(out["coco_map"]) == pytest.approx(1.0) and float(out["coco_map50"]) == pytest.approx(1.0)
    m = _voc([[(A, 1, 0.9)]], [[(A, 1), (B, 1)]])
    m.coco = True
    out = m.compute()
    assert float(out["coco_map"]) == pytest.approx(51 / 101, abs=1e-6)
    assert float(out["coco_map50"]) == pytest.approx(51 / 101, abs=1e-6)
    assert float(out["map50"]) == pytest.approx(6 / 11)


def test_metric_collection_keys_and_reset():
    class _DS:
        class info:
            num_classes = 2

    task = build_task("detection")
    metrics = task.metrics(_DS)
    det = [{"boxes": torch.tensor([A], dtype=torch.float32), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}]
    tgt = [{"boxes": torch.tensor([A], dtype=torch.float32), "labels": torch.tensor([1]),
            "difficult": torch.tensor([False])}]
    task.update_metrics(metrics, DetectorOutputs(torch.zeros(1), None, det), tgt)
    out = metrics.compute()
    assert set(out) == {"map50", "coco_map", "coco_map50"} and float(out["map50"]) == 1.0
    metrics.reset()
    task.update_metrics(metrics, DetectorOutputs(torch.zeros(1), None, [{k: v[:0] for k, v in det[0].items()}]), tgt)
    assert float(metrics.compute()["map50"]) == 0.0


def _batch(n=2, size=32, classes=3):
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        boxes = torch.tensor([[2.0 + i, 3.0, 20.0, 25.0], [10.0, 8.0, 30.0, 30.0]])[: i + 1]
        items.append((torch.randn(3, size, size, generator=g),
                      {"boxes": boxes, "labels": torch.arange(1, i + 2) % (classes - 1) + 1,
                       "difficult": torch.zeros(i + 1, dtype=torch.bool)}))
    return items


def test_collate_forward_loss_and_evaluation():
    task, model = build_task("detection"), TinyDetector()
    items = _batch()
    x, targets = task.collate(items)
    assert x.shape == (2, 3, 32, 32) and isinstance(targets, list) and len(targets) == 2
    assert torch.equal(targets[1]["boxes"], items[1][1]["boxes"]) and task.batch_size(targets) == 2
    outputs, t = task.forward(model, (x, targets))
    assert outputs.raw.shape == task.output_shape(model, None, x) == (2, len(model.priors), 7)
    parts = task.loss(outputs, t)
    assert set(parts) == {"loss", "loc", "conf"} and parts["loss"].requires_grad
    parts["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        outputs, _ = task.evaluation_forward(model.eval(), (x, targets))
    assert len(outputs.detections) == 2 and set(outputs.detections[0]) == {"boxes", "scores", "labels"}
    assert torch.isfinite(task.loss(outputs, targets)["loss"])
    # the engine casts evaluation outputs to float32 with lightning's apply_to_collection: the tuple survives
    from lightning_utilities.core.apply_func import apply_to_collection

    cast = apply_to_collection(outputs, torch.Tensor, lambda v: v.float())
    assert isinstance(cast, DetectorOutputs) and cast.criterion == model.loss


def test_predict_file_writes_png_and_json_in_original_pixels(tmp_path):
    from PIL import Image

    from convzoo.data.detection import detection_info
    from convzoo.registry import ModelCard

    model = TinyDetector(num_classes=3, size=32).eval()
    # a fixed detection at input pixels (8, 8, 16, 16) of the 32 x 32 input
    model.detect = lambda raw, **kw: [{"boxes": torch.tensor([[8.0, 8.0, 16.0, 16.0], [0, 0, 4, 4]]),
                                       "scores": torch.tensor([0.9, 0.1]), "labels": torch.tensor([2, 1])}]
    info = detection_info("x", ("cat", "dog"), 32)
    card = ModelCard(name="_tiny_det", paper=27, family="_tiny", task="detection", input_size=(32, 32))
    path = tmp_path / "photo.png"
    Image.fromarray(np.zeros((64, 128, 3), dtype=np.uint8)).save(path)  # H 64, W 128
    task = build_task("detection")
    (pred,) = list(task.predict_file(model, card, path, info, tmp_path / "out"))
    assert pred["image_size"] == [128, 64]
    assert pred["detections"] == [{"box": [32.0, 16.0, 64.0, 32.0], "score": 0.9, "label": 2, "name": "dog"}]
    png, js = tmp_path / "out" / "photo_detections.png", tmp_path / "out" / "photo_detections.json"
    assert Image.open(png).size == (128, 64)
    assert json.loads(js.read_text())["detections"] == pred["detections"]
    drawn = np.asarray(Image.open(png))
    assert drawn[16:33, 32].max() > 0 and drawn[0, 0].max() == 0  # the box is drawn, the rest untouched
    line = task.format_prediction(pred)
    assert "1 object" in line and "dog 0.90" in line
    with pytest.raises(Exception, match="image file"):
        list(task.predict_file(model, card, tmp_path / "x.npy", info, tmp_path))


def test_pictures_and_report(tmp_path):
    from convzoo.data import build_dataset

    ds = build_dataset("scenes", "test", size=64, num_images=6)
    task = build_task("detection", num_pictures=4)
    torch.manual_seed(0)
    model = TinyDetector(num_classes=ds.info.num_classes, size=64).eval()
    paths = task.pictures(model, ds, tmp_path, torch.device("cpu"))
    assert [p.name for p in paths] == ["detections.png", "ap_per_class.csv"] and all(p.is_file() for p in paths)
    lines = task.report({"map50": 0.5, "coco_map": 0.25, "coco_map50": 0.5}, ds)
    text = "\n".join(lines)
    assert "VOC07 mAP@0.5 50.0 %" in text and "| class | boxes |" in text and "74.3" in text


@pytest.mark.claim(paper=27, artefact="detection",
                   claim="the engine trains and evaluates an SSD (ssd_tiny) on scenes through the detection task: "
                         "loc/conf logged, map50/coco_map reported, detections.png and report.md written")
def test_engine_run_ssd_on_scenes(tmp_path):
    import csv

    from convzoo.engine import train

    recipe = {
        "name": "ssd_scenes_smoke", "paper": 27,
        "model": {"name": "ssd_tiny"},
        "data": {"name": "scenes", "kwargs": {"size": 64, "num_images": 16}},
        "optimizer": {"name": "sgd", "lr": 1e-3, "weight_decay": 5e-4, "kwargs": {"momentum": 0.9}},
        "epochs": 1, "batch_size": 8, "eval_batch_size": 16, "seed": 0,
    }
    result = train(recipe, out_dir=tmp_path, run_name="run", progress=False, accelerator="cpu")
    assert {"loss", "map50", "coco_map", "coco_map50"} <= set(result.metrics)
    assert 0.0 <= result.metrics["map50"] <= 1.0 and np.isfinite(result.metrics["loss"])
    with open(tmp_path / "run" / "metrics.csv") as f:
        row = next(csv.DictReader(f))
    assert {"train_loss", "train_loc", "train_conf", "val_map50"} <= set(row)
    for name in ("detections.png", "ap_per_class.csv", "report.md"):
        assert (tmp_path / "run" / name).is_file(), name
    assert "VOC07 mAP@0.5" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.claim(paper=27, artefact="ssd300_voc_paper",
                   claim="the VOC recipe is the paper's solver: SGD lr 1e-3 momentum 0.9 wd 5e-4 batch 32; lr / 10 "
                         "after 40k and 50k iterations, 60k in all, on VOC07+12 trainval (5,011 + 11,540 images), "
                         "within one epoch; SSD300 at 300 px with VOC scales")
def test_voc_paper_recipe_matches_the_solver():
    from convzoo.engine.recipe import load_recipe

    r = load_recipe("ssd300_voc_paper")
    steps = (5011 + 11540) // r["batch_size"]  # iterations per epoch (drop_last)
    assert r["batch_size"] == 32 and r["optimizer"]["name"] == "sgd" and r["optimizer"]["lr"] == 1e-3
    assert r["optimizer"]["kwargs"]["momentum"] == 0.9 and r["optimizer"]["weight_decay"] == 5e-4
    assert r["schedule"]["interval"] == "step" and r["schedule"]["kwargs"]["gamma"] == 0.1
    for epoch, iters in zip(r["schedule"]["kwargs"]["milestones"], (40_000, 50_000)):
        assert abs(epoch * steps - iters) <= steps
    assert abs(r["epochs"] * steps - 60_000) <= steps
    assert r["model"] == {"name": "ssd300", "kwargs": {"scales": "voc"}} and r["data"]["kwargs"]["size"] == 300
    c = load_recipe("ssd300_coco_paper")
    steps = 118_287 // 32
    for epoch, iters in zip(c["schedule"]["kwargs"]["milestones"], (160_000, 200_000)):
        assert abs(epoch * steps - iters) <= steps
    assert abs(c["epochs"] * steps - 240_000) <= steps and c["model"]["kwargs"]["scales"] == "coco"


def test_paper_recipes_build_on_fixture_data(tmp_path):
    """The paper recipes' data, model and optimizer groups build (VOC fixture folder; biases at 2x lr)."""
    from PIL import Image

    from convzoo.engine.build import build_data, build_method
    from convzoo.engine.recipe import load_recipe

    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (tmp_path / "VOC2007" / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((40, 50, 3), dtype=np.uint8)).save(tmp_path / "VOC2007" / "JPEGImages" / "1.jpg")
    (tmp_path / "VOC2007" / "Annotations" / "1.xml").write_text(
        "<annotation><size><width>50</width><height>40</height></size><object><name>dog</name><difficult>0"
        "</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"
        "</annotation>")
    (tmp_path / "VOC2007" / "ImageSets" / "Main" / "trainval.txt").write_text("1\n")
    cfg = load_recipe("ssd300_voc_paper", [f"data.root={tmp_path}",
                                          "data.kwargs.image_sets={train: [VOC2007/trainval]}"])
    ds = build_data(cfg, "train")
    assert ds.info.num_classes == 21 and ds[0][0].shape == (3, 300, 300)
    with torch.device("meta"):
        method = build_method(cfg, ds.info)
    groups = method.param_groups(cfg["optimizer"])
    bias = [g for g in groups if g["lr_mult"] == 2.0]
    assert bias and all(p.ndim == 1 for g in bias for p in g["params"]) and bias[0]["weight_decay"] == 0.0
    assert sum(p.numel() for g in groups for p in g["params"]) == 26_285_486  # the card's count (21 classes)
