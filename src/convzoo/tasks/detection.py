"""Object detection with a single-shot detector (SSD, arXiv 1512.02325; paper 27).

Batches are ``(images, targets)``: images ``(B, 3, S, S)`` (normalised, see
:mod:`convzoo.data.detection`), targets a list of ``B`` dicts ``{"boxes": (N, 4) absolute pixel xyxy
in the input image, "labels": (N,) int64 in 1..C-1 (0 = background), "difficult": (N,) bool}``
(:meth:`Detection.collate` stacks the images and keeps the targets as a list).

The model contract (``convzoo.models.ssd``): ``model(images)`` returns the raw outputs
``(B, num_priors, 4 + num_classes)``; ``model.loss(raw, targets)`` returns ``{"loss", "loc",
"conf"}`` (the paper's matching, hard negative mining and ``(L_conf + L_loc) / N``, Sec. 2.2);
``model.detect(raw, score_thresh, nms_thresh, top_k)`` returns per image ``{"boxes", "scores",
"labels"}`` in input pixels (per-class threshold 0.01, NMS 0.45, top 200: Sec. 3 "Inference").

How the loss reaches the model: the task's ``loss(outputs, targets)`` gets no model, so
:meth:`~Detection.forward` returns :class:`DetectorOutputs` -- the raw tensor together with the
model's own loss function (``criterion = model.loss``) and, in evaluation, the detections. The
engine treats it as any tuple of tensors (it casts ``raw`` to float32 for the evaluation loss).

* Loss: ``model.loss`` (logged as ``loss``, ``loc``, ``conf``).
* Metrics (:class:`~convzoo.tasks.detection_metrics.DetectionMAP`): ``map50`` = Pascal VOC2007
  11-point mAP at IoU 0.5 with difficult boxes ignored (the paper's VOC metric, the headline),
  ``coco_map`` = COCO AP@[.5:.95] and ``coco_map50`` (torchmetrics, pycocotools backend).
* Pictures: ``detections.png`` (held-out images, ground truth green, predictions red with class and
  score) and ``ap_per_class.csv``; the report lists the AP of every class and the paper's numbers.
* People: :meth:`Detection.predict_file` resizes a photo to the model's input, detects, writes
  ``<stem>_detections.png`` and ``<stem>_detections.json`` with boxes in the ORIGINAL image's pixels.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torchmetrics import MetricCollection

from convzoo.data.detection import MEAN, STD, denormalize
from convzoo.errors import ConvzooError
from convzoo.tasks.base import (
    CONTRACT_CHECKS,
    IMAGE_SUFFIXES,
    Task,
    read_image,
    register_task,
    run_or_explain,
    write_csv,
)
from convzoo.tasks.detection_metrics import DetectionMAP

# paper Tables 1, 4, 5 (final version; see the sheet): VOC2007 test mAP (07+12 training) and COCO test-dev AP
PAPER_VOC07 = {"SSD300": 74.3, "SSD512": 76.8, "SSD300*": 77.2, "SSD512*": 79.8}
PAPER_COCO = {"SSD300": (23.2, 41.2), "SSD512": (26.8, 46.5), "SSD300*": (25.1, None),
              "SSD512*": (28.8, None)}


class DetectorOutputs(NamedTuple):
    """What :meth:`Detection.forward` gives the loss and the metrics."""

    raw: torch.Tensor  # (B, num_priors, 4 + num_classes)
    criterion: Callable  # the model's loss(raw, targets) -> {"loss", "loc", "conf"}
    detections: list | None = None  # evaluation only: per image {"boxes", "scores", "labels"}


def num_priors(model: nn.Module, size: tuple[int, int]) -> int:
    """Default boxes of ``model`` at input ``size``: ``model.num_priors(size)``, ``model.num_priors``
    or the rows of ``model.priors`` / ``model.default_boxes``."""
    n = getattr(model, "num_priors", None)
    if callable(n):
        return int(n(tuple(size)))
    if n is not None:
        return int(n)
    for name in ("priors", "default_boxes"):
        p = getattr(model, name, None)
        if isinstance(p, torch.Tensor):
            return int(p.shape[0])
    raise ConvzooError(f"{type(model).__name__} exposes no num_priors / priors; "
                       "expected an SSD-style detector")


@register_task("detection")
class Detection(Task):
    monitor = "map50"
    monitor_mode = "max"
    contract_checks = CONTRACT_CHECKS - {"num_classes", "embedding", "features"}
    input_suffixes = IMAGE_SUFFIXES

    def __init__(self, score_thresh: float = 0.01, nms_thresh: float = 0.45, top_k: int = 200,
                 display_thresh: float = 0.3, coco_metric: bool = True, num_pictures: int = 8):
        """``score_thresh``/``nms_thresh``/``top_k``: the paper's inference (Sec. 3); ``display_thresh``:
        the score a detection needs to be drawn or returned by ``predict``; ``coco_metric``: also
        compute COCO AP every evaluation (needs pycocotools)."""
        super().__init__(score_thresh=score_thresh, nms_thresh=nms_thresh, top_k=top_k,
                         display_thresh=display_thresh, coco_metric=coco_metric, num_pictures=num_pictures)
        self.score_thresh, self.nms_thresh, self.top_k = float(score_thresh), float(nms_thresh), int(top_k)
        self.display_thresh, self.coco_metric = float(display_thresh), bool(coco_metric)
        self.num_pictures = int(num_pictures)
        self._per_class: tuple[tuple, list[dict]] | None = None

    # --- batches and steps ------------------------------------------------------------------------
    def collate(self, items: list) -> tuple[torch.Tensor, list[dict]]:
        return torch.stack([x for x, _ in items]), [t for _, t in items]

    def forward(self, model, batch):
        x, targets = batch
        return DetectorOutputs(model(x), model.loss), targets

    def evaluation_forward(self, model, batch):
        x, targets = batch
        raw = model(x)
        return DetectorOutputs(raw, model.loss, self._detect(model, raw)), targets

    def _detect(self, model, raw) -> list[dict]:
        return model.detect(raw, score_thresh=self.score_thresh, nms_thresh=self.nms_thresh, top_k=self.top_k)

    def loss(self, outputs: DetectorOutputs, targets):
        return outputs.criterion(outputs.raw, targets)

    def batch_size(self, targets) -> int:
        return len(targets)

    # --- metrics ---------------------------------------------------------------------------------
    def metrics(self, dataset) -> MetricCollection:
        return MetricCollection({"det": DetectionMAP(dataset.info.num_classes, coco=self.coco_metric)})

    def update_metrics(self, metrics, outputs: DetectorOutputs, targets):
        metrics.update(outputs.detections, targets)

    # --- models of this task ------------------------------------------------------------------------
    def model_kwargs(self, card, info) -> dict:
        return {"num_classes": info.num_classes} if info.num_classes else {}

    def output_shape(self, model, card, x):
        classes = getattr(model, "num_classes", None)
        classes = int(classes if classes is not None else card.num_classes)
        return (x.shape[0], num_priors(model, tuple(x.shape[-2:])), 4 + classes)

    def bench_spec(self, model, card, size):
        spatial = tuple(size) if size is not None else tuple(card.input_size)
        return {"input_shape": [card.in_chans, *spatial], "unit": "images/s"}

    def fits_model(self, card, info) -> bool:
        return info.in_chans == card.in_chans and info.num_classes == card.num_classes

    # --- people -------------------------------------------------------------------------------------
    def _input_size(self, card, info) -> tuple[int, int]:
        return tuple(info.input_size) if info is not None and info.input_size else tuple(card.input_size)

    def _norm(self, info) -> tuple[torch.Tensor, torch.Tensor]:
        extra = info.extra if info is not None else {}
        mean, std = extra.get("mean", MEAN), extra.get("std", STD)  # the detection sets' normalisation
        return torch.tensor(mean).reshape(3, 1, 1), torch.tensor(std).reshape(3, 1, 1)

    def _names(self, info, model) -> list[str]:
        if info is not None and info.class_names:
            return list(info.class_names)
        return [str(i) for i in range(int(getattr(model, "num_classes", 0)) or 1)]

    @torch.no_grad()
    def predict(self, model, inputs, dataset=None):
        """(B, 3, S, S) normalised -> per image ``{"detections": [{"box", "score", "label", "name"}]}``
        with scores >= ``display_thresh``, boxes in input pixels."""
        info = dataset.info if dataset is not None else None
        names = self._names(info, model)
        out = []
        for det in self._detect(model, model(inputs)):
            out.append({"detections": _readable(det, names, self.display_thresh)})
        return out

    @torch.no_grad()
    def predict_file(self, model, card, path: Path, info, out_dir: Path):
        from PIL import Image
        from torchvision.utils import draw_bounding_boxes

        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConvzooError(f"{path}: a detector needs an image file ({', '.join(IMAGE_SUFFIXES)})")
        rgb = read_image(path)  # (H0, W0, 3) uint8
        h0, w0 = rgb.shape[:2]
        s_h, s_w = self._input_size(card, info)
        small = np.asarray(Image.fromarray(rgb).resize((s_w, s_h), Image.BILINEAR), dtype=np.float32) / 255.0
        mean, std = self._norm(info)
        x = ((torch.from_numpy(small).permute(2, 0, 1) - mean) / std)[None]
        device = next(model.parameters()).device
        det = run_or_explain(lambda: self._detect(model, model(x.to(device)))[0], "image", x.shape)
        scale = torch.tensor([w0 / s_w, h0 / s_h, w0 / s_w, h0 / s_h])
        det = {"boxes": det["boxes"].float().cpu() * scale, "scores": det["scores"].float().cpu(),
               "labels": det["labels"].cpu()}
        found = _readable(det, self._names(info, model), self.display_thresh)
        out_dir.mkdir(parents=True, exist_ok=True)
        png, js = out_dir / f"{path.stem}_detections.png", out_dir / f"{path.stem}_detections.json"
        image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)
        if found:
            image = draw_bounding_boxes(image, torch.tensor([d["box"] for d in found]),
                                        [f"{d['name']} {d['score']:.2f}" for d in found], colors="red",
                                        width=max(1, round(max(h0, w0) / 200)))
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(png)
        pred = {"input": str(path), "image_size": [w0, h0], "detections": found, "output": str(png),
                "json": str(js)}
        js.write_text(json.dumps(pred, indent=1))
        yield pred

    def format_prediction(self, pred: dict) -> str:
        dets = pred["detections"]
        top = ", ".join(f"{d['name']} {d['score']:.2f}" for d in dets[:5])
        top += ", ..." if len(dets) > 5 else ""
        return f"{pred['input']}: {len(dets)} object(s){': ' + top if dets else ''} -> {pred['output']}"

    # --- run folder ---------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate_dataset(self, model, dataset, device, batch_size: int = 16) -> tuple[DetectionMAP, list]:
        """Detections of every item of ``dataset`` and the metric holding them (for pictures and report)."""
        metric = DetectionMAP(dataset.info.num_classes, coco=self.coco_metric)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=self.collate)
        kept = []
        for x, targets in loader:
            dets = [{k: v.float().cpu() if v.is_floating_point() else v.cpu() for k, v in d.items()}
                    for d in self._detect(model, model(x.to(device)))]
            metric.update(dets, targets)
            kept += dets
        return metric, kept

    @torch.no_grad()
    def pictures(self, model, dataset, run_dir: Path, device) -> list[Path]:
        from PIL import Image
        from torchvision.utils import draw_bounding_boxes, make_grid

        metric, dets = self.evaluate_dataset(model, dataset, device)
        names = self._names(dataset.info, model)
        voc = metric.voc_per_class()
        coco = metric.coco_results(per_class=True) if self.coco_metric else {}
        coco_ap = dict(zip(coco.get("classes", torch.zeros(0)).reshape(-1).tolist(),
                           coco.get("map_per_class", torch.zeros(0)).reshape(-1).tolist()))
        counts = np.bincount(metric._arrays()["gt_labels"], minlength=len(names))
        rows = [{"class": names[c], "label": c, "boxes": int(counts[c]), "ap50_voc07": voc[c],
                 "coco_ap": coco_ap.get(c, float("nan"))} for c in range(1, len(names))]
        self._per_class = (tuple(getattr(dataset, "names", ())), rows)
        run_dir = Path(run_dir)
        csv_path = write_csv(run_dir / "ap_per_class.csv", rows)
        tiles = []
        for i in range(min(self.num_pictures, len(dataset))):
            x, t = dataset[i]
            f = max(1, 256 // max(x.shape[-2:]))  # small inputs are enlarged so that labels stay readable
            img = denormalize(x).repeat_interleave(f, -1).repeat_interleave(f, -2)
            if len(t["boxes"]):
                img = draw_bounding_boxes(img, t["boxes"] * f, colors="lime", width=1)
            found = _readable(dets[i], names, self.display_thresh)
            if found:
                img = draw_bounding_boxes(img, torch.tensor([d["box"] for d in found]) * f,
                                          [f"{d['name']} {d['score']:.2f}" for d in found], colors="red",
                                          width=1)
            tiles.append(img)
        path = run_dir / "detections.png"
        grid = make_grid(tiles, nrow=4, padding=2, pad_value=255)
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
        return [path, csv_path]

    def report(self, results: dict[str, float], dataset) -> list[str]:
        m50, cm, cm50 = (_lookup(results, k) for k in ("map50", "coco_map", "coco_map50"))
        lines = ["### Detection: Pascal VOC2007 11-point mAP@0.5 (difficult boxes ignored) and COCO AP", ""]
        if m50 is not None:
            coco = f"; COCO AP@[.5:.95] {100 * cm:.1f}, AP50 {100 * cm50:.1f}" if cm is not None else ""
            lines += [f"VOC07 mAP@0.5 {100 * m50:.1f} %{coco} (test split, final weights).", ""]
        if self._per_class is not None and self._per_class[0] == tuple(getattr(dataset, "names", ())):
            lines += ["| class | boxes | AP50 (VOC07) | AP (COCO) |", "|---|---|---|---|"]
            lines += [f"| {r['class']} | {r['boxes']} | {_pct(r['ap50_voc07'])} | {_pct(r['coco_ap'])} |"
                      for r in self._per_class[1]]
            lines.append("")
        name = dataset.info.name
        if name == "voc":
            lines.append("Paper (Table 1, VOC2007 test, 07+12 training): " +
                         ", ".join(f"{k} {v}" for k, v in PAPER_VOC07.items()) + " mAP.")
        elif name == "coco":
            lines.append("Paper (Table 5, COCO test-dev): " + ", ".join(
                f"{k} AP {a}" + (f" / AP50 {b}" if b else "") for k, (a, b) in PAPER_COCO.items()) + ".")
        else:
            lines.append(f"The paper reports no result on '{name}'; its VOC2007 numbers are "
                         f"{PAPER_VOC07['SSD300']} (SSD300) and {PAPER_VOC07['SSD512']} (SSD512) mAP.")
        return lines


def _readable(det: dict, names: list[str], thresh: float) -> list[dict]:
    keep = det["scores"] >= thresh
    out = []
    boxes, scores, labels = (det[k][keep].tolist() for k in ("boxes", "scores", "labels"))
    for box, score, label in zip(boxes, scores, labels):
        out.append({"box": [round(v, 2) for v in box], "score": round(float(score), 4), "label": int(label),
                    "name": names[label] if 0 <= label < len(names) else str(label)})
    return out


def _pct(v: float) -> str:
    return "-" if v is None or not np.isfinite(v) or v < 0 else f"{100 * v:.1f}"


def _lookup(results: dict, name: str):
    for key in (name, f"test/{name}", f"test_{name}"):
        if key in results:
            return float(results[key])
    return None
