"""Detection metrics: Pascal VOC2007 11-point mAP@0.5 and COCO AP@[.5:.95] (SSD, arXiv 1512.02325 Sec. 3).

**VOC2007** (the devkit's ``VOCevaldet.m`` / ``voc_eval.py``), per class:

1. all detections of the class over all images, sorted by decreasing score;
2. each detection is compared with the ground truth of its image and class; with ``ovmax`` its
   largest IoU (first box on ties) and ``j`` that box: if ``ovmax > 0.5`` (strictly) and box ``j``
   is "difficult", the detection counts neither as true nor as false positive; if ``j`` is not
   difficult and not yet detected, it is a true positive (``j`` is now detected); if ``j`` was
   already detected, a false positive (duplicate); if ``ovmax <= 0.5``, a false positive;
3. recall = cumulative TP / number of non-difficult boxes, precision = TP / (TP + FP);
4. 11-point AP = mean over t in {0, 0.1, ..., 1} of max(precision at recall >= t) (0 if none).

mAP is the mean over the classes that have at least one non-difficult box. The devkit measures
IoU on inclusive integer pixel indices (``+1`` in widths); boxes here are continuous coordinates, so
IoU is ``torchvision.ops.box_iou``. Thresholds are the exact decimals ``i / 10``.

**COCO** AP@[.5:.95] and AP50 come from ``torchmetrics.detection.MeanAveragePrecision`` (pycocotools
backend); difficult boxes are passed as ``iscrowd`` (COCO's evaluation ignores detections matched
to them, close to the VOC rule). The ``pycocotools`` package must be installed.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchvision.ops import box_iou

VOC_THRESHOLDS = tuple(i / 10 for i in range(11))
STATES = ("det_boxes", "det_scores", "det_labels", "det_img",  # one row per detection
          "gt_boxes", "gt_labels", "gt_difficult", "gt_img")  # one row per ground-truth box


def voc07_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """The VOC2007 11-point interpolated average precision of one precision/recall curve."""
    recall, precision = np.asarray(recall, dtype=float), np.asarray(precision, dtype=float)
    total = 0.0
    for t in VOC_THRESHOLDS:
        above = recall >= t
        total += precision[above].max() if above.any() else 0.0
    return total / len(VOC_THRESHOLDS)


def _match(det_boxes, det_labels, det_img, gt_boxes, gt_labels, gt_img) -> tuple[np.ndarray, np.ndarray]:
    """For every detection: the index of its best-IoU ground-truth box of the same image and class
    (-1 if none) and that IoU."""
    best = np.full(len(det_boxes), -1, dtype=np.int64)
    ov = np.zeros(len(det_boxes))
    det_order, gt_order = np.argsort(det_img, kind="stable"), np.argsort(gt_img, kind="stable")
    d_ids, d_start = np.unique(det_img[det_order], return_index=True)
    g_ids, g_start = np.unique(gt_img[gt_order], return_index=True)
    d_end, g_end = np.append(d_start[1:], len(det_order)), np.append(g_start[1:], len(gt_order))
    g_pos = {int(i): (s, e) for i, s, e in zip(g_ids, g_start, g_end)}
    for img, s, e in zip(d_ids, d_start, d_end):
        if int(img) not in g_pos:
            continue
        di = det_order[s:e]
        gs, ge = g_pos[int(img)]
        gi = gt_order[gs:ge]
        iou = box_iou(torch.as_tensor(det_boxes[di]), torch.as_tensor(gt_boxes[gi])).numpy()  # (d, g)
        iou = np.where(det_labels[di][:, None] == gt_labels[gi][None, :], iou, -1.0)
        j = iou.argmax(1)  # first maximum, as MATLAB's max
        o = iou[np.arange(len(di)), j]
        best[di] = np.where(o >= 0, gi[j], -1)
        ov[di] = np.maximum(o, 0.0)
    return best, ov


def voc07_class_ap(scores: np.ndarray, best: np.ndarray, ov: np.ndarray, gt_difficult: np.ndarray,
                   npos: int, iou_thresh: float = 0.5) -> float:
    """AP of one class from its detections' scores and matches (see :func:`_match`)."""
    if npos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    best, ov = best[order], ov[order]
    hit = (ov > iou_thresh) & (best >= 0)
    ignore = hit & gt_difficult[np.where(best >= 0, best, 0)]
    cand = hit & ~ignore
    first = np.zeros(len(order), dtype=bool)
    if cand.any():
        pos = np.flatnonzero(cand)
        _, idx = np.unique(best[pos], return_index=True)
        first[pos[idx]] = True
    tp = first.astype(float)
    fp = (~hit | (cand & ~first)).astype(float)
    keep = ~ignore
    tp, fp = np.cumsum(tp[keep]), np.cumsum(fp[keep])
    recall = tp / npos
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    return voc07_ap(recall, precision)


class DetectionMAP(Metric):
    """VOC07 11-point mAP@0.5 (``map50``, the headline) and COCO ``coco_map`` / ``coco_map50``.

    ``update(detections, targets)``: per image, ``{"boxes", "scores", "labels"}`` and ``{"boxes",
    "labels", "difficult"?}``. Image ``k`` of process ``r`` of ``W`` is item ``r + k W`` of the data
    set (the engine's evaluation sharding), so gathering the states keeps images apart.
    """

    full_state_update = False

    def __init__(self, num_classes: int, iou_thresh: float = 0.5, coco: bool = True):
        super().__init__()
        self.num_classes, self.iou_thresh, self.coco = int(num_classes), float(iou_thresh), coco
        for name in STATES:
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._seen = 0

    def reset(self) -> None:
        super().reset()
        self._seen = 0

    def update(self, detections: list[dict], targets: list[dict]) -> None:
        import torch.distributed as dist

        ddp = dist.is_available() and dist.is_initialized()
        rank, world = (dist.get_rank(), dist.get_world_size()) if ddp else (0, 1)
        for det, tgt in zip(detections, targets):
            img = rank + world * self._seen
            self._seen += 1
            n, g = len(det["labels"]), len(tgt["labels"])
            self.det_boxes.append(det["boxes"].detach().float().reshape(-1, 4))
            self.det_scores.append(det["scores"].detach().float().reshape(-1))
            self.det_labels.append(det["labels"].detach().long().reshape(-1))
            self.det_img.append(torch.full((n,), img, dtype=torch.long, device=self.device))
            self.gt_boxes.append(tgt["boxes"].detach().float().reshape(-1, 4))
            self.gt_labels.append(tgt["labels"].detach().long().reshape(-1))
            diff = tgt.get("difficult")
            if diff is None:
                diff = torch.zeros(g, dtype=torch.bool, device=self.device)
            self.gt_difficult.append(diff.bool().reshape(-1))
            self.gt_img.append(torch.full((g,), img, dtype=torch.long, device=self.device))

    def _arrays(self) -> dict[str, np.ndarray]:
        shapes = {"det_boxes": (0, 4), "gt_boxes": (0, 4)}
        out = {}
        for name in STATES:
            v = getattr(self, name)
            if isinstance(v, list):
                v = torch.cat(v) if v else torch.zeros(shapes.get(name, (0,)))
            out[name] = v.cpu().numpy()
        out["gt_difficult"] = out["gt_difficult"].astype(bool)
        for k in ("det_labels", "det_img", "gt_labels", "gt_img"):
            out[k] = out[k].astype(np.int64)
        return out

    def voc_per_class(self) -> dict[int, float]:
        """Label -> VOC07 11-point AP@``iou_thresh`` (NaN for a class without non-difficult boxes)."""
        a = self._arrays()
        best, ov = _match(a["det_boxes"], a["det_labels"], a["det_img"], a["gt_boxes"], a["gt_labels"],
                          a["gt_img"])
        out = {}
        for c in range(1, self.num_classes):
            sel = a["det_labels"] == c
            npos = int(((a["gt_labels"] == c) & ~a["gt_difficult"]).sum())
            out[c] = voc07_class_ap(a["det_scores"][sel], best[sel], ov[sel], a["gt_difficult"], npos,
                                    self.iou_thresh)
        return out

    def coco_results(self, per_class: bool = False) -> dict:
        """torchmetrics' MeanAveragePrecision over the stored images (``map``, ``map_50``, ...)."""
        from torchmetrics.detection import MeanAveragePrecision

        a = self._arrays()
        metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=per_class,
                                      backend="pycocotools")
        metric.warn_on_many_detections = False  # COCO's protocol scores the top 100 per image
        preds, targets = [], []
        for img in np.union1d(a["det_img"], a["gt_img"]):
            d, g = a["det_img"] == img, a["gt_img"] == img
            preds.append({"boxes": torch.from_numpy(a["det_boxes"][d]).float(),
                          "scores": torch.from_numpy(a["det_scores"][d]).float(),
                          "labels": torch.from_numpy(a["det_labels"][d])})
            targets.append({"boxes": torch.from_numpy(a["gt_boxes"][g]).float(),
                            "labels": torch.from_numpy(a["gt_labels"][g]),
                            "iscrowd": torch.from_numpy(a["gt_difficult"][g].astype(np.int64))})
        if not preds:
            return {"map": torch.tensor(0.0), "map_50": torch.tensor(0.0)}
        metric.update(preds, targets)
        return metric.compute()

    def compute(self) -> dict[str, torch.Tensor]:
        aps = [v for v in self.voc_per_class().values() if np.isfinite(v)]
        out = {"map50": torch.tensor(float(np.mean(aps)) if aps else 0.0)}
        if self.coco:
            res = self.coco_results()
            out["coco_map"] = res["map"].float().clamp(min=0)
            out["coco_map50"] = res["map_50"].float().clamp(min=0)
        return out
