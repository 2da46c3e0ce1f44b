"""SSD: Single Shot MultiBox Detector (paper 27).

Liu, Anguelov, Erhan, Szegedy, Reed, Fu, Berg, "SSD: Single Shot MultiBox Detector", ECCV 2016,
arXiv 1512.02325. Official code: weiliu89/caffe, branch ``ssd`` (examples/ssd/ssd_pascal.py,
src/caffe/util/bbox_util.cpp). Reference used for parity: torchvision ``ssd300_vgg16``.

What is implemented, in reading order:
- Default boxes (Sec. 2.2 "Choosing scales and aspect ratios"): per source layer k, boxes of scale s_k
  with aspect ratios {1, 2, 1/2[, 3, 1/3]} plus one square of scale sqrt(s_k s_{k+1}), centred on every
  cell. The scales are the official code's integer-percent version of the paper's linear rule
  (:func:`caffe_scales`: VOC SSD300 0.1, 0.2, 0.37, ..., 0.88, extra 1.05) and the centres use the
  official explicit steps (8, 16, 32, 64, 100, 300 px for SSD300) at the variant's own input size; at
  any other size the paper's (i + 0.5)/|f_k| is used. Order per cell: s_k, s'_k, then (w > h, h > w)
  per ratio, as Caffe's PriorBox and torchvision's DefaultBoxGenerator.
- Box coding (Sec. 2.2 Eq. 2, with the official variances 0.1/0.2): ``encode_boxes`` / ``decode_boxes``.
- Matching (Sec. 2.2 "Matching strategy"): each ground truth to the default box of best IoU (the
  official greedy bipartite matching), then every other default box to its best ground truth when the
  IoU >= 0.5 (``match``).
- Training objective (Sec. 2.2 Eq. 1, "Hard negative mining"): L = (L_conf + alpha L_loc) / N with
  smooth-L1 on the matched boxes, softmax cross-entropy on the positives and on the negatives of
  highest confidence loss, at most 3 per positive in each image; N = number of matches, L = 0 when
  N = 0 (``multibox_loss``, ``SSD.loss``).
- Inference (Sec. 3 and the official DetectionOutput settings): decode, clip to the image, per class
  drop scores <= 0.01, keep the 400 best, NMS at IoU 0.45, keep the 200 best of all classes
  (``detect``, ``SSD.detect``; torchvision.ops.batched_nms).
- Network (Sec. 3, Fig. 2): the VGG-16 base with pool5 3x3/1, fc6 as a 3x3 conv of dilation 6 and fc7
  as a 1x1 conv (1024 channels each), L2 normalisation of conv4_3 with a learnable scale initialised
  to 20 (:class:`~convzoo.layers.l2norm.L2Norm`), extra layers of 1x1 reduction + 3x3 (stride 2 or
  valid) convolutions, and one 3x3 conv per source map for the k*4 offsets and one for the k*C scores.
  SSD300 has 6 sources (38, 19, 10, 5, 3, 1 at 300 px: 8,732 boxes), SSD512 adds conv12_2 (a 4x4
  conv) for 7 sources (64 ... 1 at 512 px: 24,564 boxes).

``model(x)`` returns one tensor (B, num_priors, 4 + num_classes): the encoded offsets, then the class
logits (class 0 = background). The base network is a constructor argument: any module returning a
list of maps (the last one feeds the extra layers) with their channel counts, e.g. :class:`FeatureTaps`
around a convzoo classification backbone's ``features``.

Departures and choices:
- Every max-pool of the base rounds up (Caffe); torchvision rounds up pool3 only. Both give the same
  maps at 300 and 512 px, so :func:`remap_torchvision` loads torchvision ``ssd300_vgg16`` weights into
  ``ssd300`` (torchvision's model also normalises inputs as Caffe, on a 0-255 scale).
- ``decode_boxes`` clamps the log-scale offsets at log(1000/16), as torchvision, against overflow.
- The paper starts from ImageNet VGG-16 with fc6/fc7 sub-sampled; no such weights are bundled, so
  every convolution is Xavier-uniform initialised with zero bias (the official fillers).
- ``ssd_tiny`` (not in the paper): the same VGG-16 layer layout at a quarter of the widths, fc6 of
  dilation 3, three stride-2 extra layers, 5 sources (16 ... 1 at 128 px), scales from
  ``caffe_scales(20, 90, 5, 10)`` and centres by the paper's rule, for CPU-scale scenes.

Other backbones (:data:`BACKBONE_SSD_CFGS`; not in the SSD paper): a registered classification backbone's
stride-8/16/32 maps (:class:`FeatureTaps`) take the places of conv4_3, fc7 and conv8_2, then SSD300's
last three extra layers (1x1 to 128, 3x3/2 pad 1 to 256, then two 3x3 valid) and its heads, box counts
(4, 6, 6, 6, 4, 4 per cell) and VOC scales; centres by the paper's (i + 0.5)/|f_k| (a ResNet gives
38/19/10/5/3/1 maps at 300 px, a VoVNet's ceil-mode pools 37/18/9/5/3/1). ``ssd_vovnet27_slim`` and
``ssd_vovnet39`` carry the backbones VoVNet (arXiv 1904.09730, seed paper 53) Sec. 4 puts under DSOD
and RefineDet, with SSD's own head instead of those detectors' heads; ``ssd_eca_resnet50`` and
``ssd_ela_resnet50`` the ECA-Net (arXiv 1910.03151, paper 43) and ELA (arXiv 2403.01123, paper 10)
ResNet-50s. No backbone weights are bundled (``backbone_kwargs`` go to the backbone's constructor).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou

from convzoo.errors import ConvzooError
from convzoo.layers.l2norm import L2Norm
from convzoo.registry import ModelCard, register_model

__all__ = [
    "BACKBONE_SSD_CFGS",
    "SSD",
    "SSD_CFGS",
    "FeatureTaps",
    "VGGBase",
    "caffe_scales",
    "decode_boxes",
    "detect",
    "encode_boxes",
    "generate_default_boxes",
    "hard_negative_mask",
    "match",
    "multibox_loss",
    "remap_torchvision",
]

VARIANCES = (0.1, 0.2)  # official prior variances: centre offsets / 0.1, log sizes / 0.2
BBOX_CLIP = math.log(1000.0 / 16)  # largest decoded log-scale (torchvision / Detectron guard)


# --- default boxes (Sec. 2.2, Caffe PriorBox) ------------------------------------------------------
def caffe_scales(min_ratio: int, max_ratio: int, num_layers: int, first_ratio: int) -> tuple[float, ...]:
    """Scales s_1..s_m and s_{m+1} as fractions of the image side, the official way (ssd_pascal.py).

    The paper's s_k = s_min + (s_max - s_min)(k - 1)/(m - 1) over layers 2..m in integer percent with a
    floored step, the first layer (conv4_3) at ``first_ratio`` percent and s_{m+1} one step above s_m.
    VOC SSD300: (20, 90, 6, 10) -> 0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05.
    """
    step = (max_ratio - min_ratio) // (num_layers - 2)
    ratios = [first_ratio] + list(range(min_ratio, max_ratio + 1, step))
    if len(ratios) != num_layers:
        raise ConvzooError(f"caffe_scales({min_ratio}, {max_ratio}, {num_layers}) gives {len(ratios)} scales")
    return tuple(r / 100 for r in ratios) + ((ratios[-1] + step) / 100,)


def generate_default_boxes(feature_sizes: Sequence[tuple[int, int]], image_size: tuple[int, int],
                           scales: Sequence[float], aspect_ratios: Sequence[Sequence[float]],
                           steps: Sequence[float] | None = None, clip: bool = False) -> torch.Tensor:
    """Default boxes of every source map, (P, 4) xyxy in pixels of ``image_size`` (H, W).

    Per map k, per cell (row-major), per box: s_k square, sqrt(s_k s_{k+1}) square, then for each ratio
    a the pair (s_k sqrt(a), s_k / sqrt(a)) and its transpose (widths relative to W, heights to H).
    Centres: ((j + 0.5) step_k / W, (i + 0.5) step_k / H) with ``steps``, else ((j + 0.5)/f_w, (i + 0.5)/f_h).
    ``clip`` clips the boxes to the image (Caffe's ``clip``; the official configs leave it off).
    """
    h_img, w_img = image_size
    out = []
    for k, ((fh, fw), ratios) in enumerate(zip(feature_sizes, aspect_ratios)):
        s, s_next = scales[k], scales[k + 1]
        wh = [(s, s), (math.sqrt(s * s_next),) * 2]
        for a in ratios:
            wh += [(s * math.sqrt(a), s / math.sqrt(a)), (s / math.sqrt(a), s * math.sqrt(a))]
        wh = torch.tensor(wh, dtype=torch.float64)  # (A, 2)
        step_x, step_y = (steps[k] / w_img, steps[k] / h_img) if steps is not None else (1 / fw, 1 / fh)
        cy, cx = torch.meshgrid((torch.arange(fh, dtype=torch.float64) + 0.5) * step_y,
                                (torch.arange(fw, dtype=torch.float64) + 0.5) * step_x, indexing="ij")
        centres = torch.stack([cx, cy], -1).reshape(-1, 1, 2)  # (fh*fw, 1, 2)
        boxes = torch.cat([centres - wh / 2, centres + wh / 2], -1).reshape(-1, 4)  # (fh*fw*A, 4)
        out.append(boxes.clamp(0, 1) if clip else boxes)
    scale = torch.tensor([w_img, h_img, w_img, h_img], dtype=torch.float64)
    return (torch.cat(out) * scale).float()


# --- box coding (Sec. 2.2 Eq. 2) ------------------------------------------------------------------
def _centre_size(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode_boxes(boxes: torch.Tensor, priors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """Ground-truth boxes -> regression targets against their default boxes, both (..., 4) xyxy.

    (g_cx - d_cx)/(d_w v0), (g_cy - d_cy)/(d_h v0), log(g_w/d_w)/v1, log(g_h/d_h)/v1.
    """
    gx, gy, gw, gh = _centre_size(boxes)
    px, py, pw, ph = _centre_size(priors)
    v0, v1 = variances
    return torch.stack([(gx - px) / (pw * v0), (gy - py) / (ph * v0),
                        torch.log(gw / pw) / v1, torch.log(gh / ph) / v1], -1)


def decode_boxes(codes: torch.Tensor, priors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """The inverse of :func:`encode_boxes`: (..., P, 4) offsets and (P, 4) default boxes -> xyxy."""
    px, py, pw, ph = _centre_size(priors)
    v0, v1 = variances
    cx = px + codes[..., 0] * v0 * pw
    cy = py + codes[..., 1] * v0 * ph
    w = pw * torch.exp((codes[..., 2] * v1).clamp(max=BBOX_CLIP))
    h = ph * torch.exp((codes[..., 3] * v1).clamp(max=BBOX_CLIP))
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


# --- matching (Sec. 2.2 "Matching strategy"; bbox_util.cpp MatchBBox) ---------------------------
def match(gt_boxes: torch.Tensor, priors: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """Index of the ground truth matched to every default box, or -1: (P,) int64.

    1. bipartite: each ground truth takes the free default box of highest IoU, greedily, best pair
       first (a ground truth overlapping no box at all stays unmatched);
    2. per prediction: every remaining box takes its best ground truth if their IoU >= ``iou_threshold``.
    """
    matches = torch.full((priors.shape[0],), -1, dtype=torch.long, device=priors.device)
    if gt_boxes.numel() == 0:
        return matches
    iou = box_iou(gt_boxes, priors)  # (G, P)
    best_iou, best_gt = iou.max(0)
    above = best_iou >= iou_threshold
    matches[above] = best_gt[above]
    top_iou, top_prior = iou.max(1)  # best box of each ground truth
    if top_prior.unique().numel() == top_prior.numel():  # no two share a best box: greedy = argmax
        keep = top_iou > 0
        matches[top_prior[keep]] = torch.arange(gt_boxes.shape[0], device=priors.device)[keep]
        return matches
    work = iou.clone()
    for _ in range(gt_boxes.shape[0]):
        flat = int(work.argmax())
        g, p = divmod(flat, work.shape[1])
        if work[g, p] <= 0:
            break
        matches[p] = g
        work[g, :] = -1
        work[:, p] = -1
    return matches


# --- training objective (Sec. 2.2 Eq. 1, hard negative mining) -----------------------------------
def hard_negative_mask(conf_loss: torch.Tensor, positive: torch.Tensor,
                       neg_pos_ratio: float = 3.0) -> torch.Tensor:
    """(B, P) bool: per image the floor(ratio * #positives) negatives of highest confidence loss."""
    num_neg = torch.minimum(torch.floor(neg_pos_ratio * positive.sum(1, keepdim=True)),
                            (~positive).sum(1, keepdim=True))
    loss = conf_loss.detach().masked_fill(positive, -math.inf)
    rank = loss.argsort(1, descending=True).argsort(1)  # 0 = hardest negative
    return rank < num_neg


def _check_targets(targets, num_images: int, num_classes: int) -> None:
    if len(targets) != num_images:
        raise ConvzooError(f"SSD loss needs one target dict per image: {num_images} images, "
                           f"{len(targets)} targets")
    for i, t in enumerate(targets):
        boxes, labels = t["boxes"], t["labels"]
        if boxes.dim() != 2 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:1]:
            raise ConvzooError(f"target {i}: expected boxes (N, 4) and labels (N,), got {tuple(boxes.shape)} "
                               f"and {tuple(labels.shape)}")
        if boxes.numel() and bool(((boxes[:, 2:] - boxes[:, :2]) <= 0).any()):
            raise ConvzooError(f"target {i}: every box needs x2 > x1 and y2 > y1 (xyxy pixels)")
        if labels.numel() and not (1 <= int(labels.min()) and int(labels.max()) < num_classes):
            raise ConvzooError(f"target {i}: labels must lie in 1..{num_classes - 1} (0 is background), "
                               f"got {int(labels.min())}..{int(labels.max())}")


def multibox_loss(loc: torch.Tensor, conf: torch.Tensor, priors: torch.Tensor, targets: Sequence[dict],
                  iou_threshold: float = 0.5, neg_pos_ratio: float = 3.0, alpha: float = 1.0,
                  variances=VARIANCES) -> dict[str, torch.Tensor]:
    """Eq. 1: {"loss": (L_conf + alpha L_loc)/N, "loc": L_loc/N, "conf": L_conf/N}; all 0 when N = 0.

    ``loc`` (B, P, 4) encoded offsets, ``conf`` (B, P, C) logits, ``priors`` (P, 4) xyxy pixels,
    ``targets`` one dict per image with "boxes" (N, 4) xyxy pixels and "labels" (N,) in 1..C-1.
    """
    num_images, num_priors, num_classes = conf.shape
    _check_targets(targets, num_images, num_classes)
    labels_t = torch.zeros(num_images, num_priors, dtype=torch.long, device=conf.device)
    loc_t = torch.zeros(num_images, num_priors, 4, dtype=loc.dtype, device=loc.device)
    for i, t in enumerate(targets):
        boxes = t["boxes"].to(device=priors.device, dtype=priors.dtype)
        m = match(boxes, priors, iou_threshold)
        pos = m >= 0
        labels_t[i, pos] = t["labels"].to(conf.device)[m[pos]]
        loc_t[i, pos] = encode_boxes(boxes[m[pos]], priors[pos], variances).to(loc.dtype)
    positive = labels_t > 0  # (B, P)
    n = positive.sum().clamp(min=1)  # N = 0 gives 0 / 1 = 0 (no positives, hence no negatives)
    loc_loss = F.smooth_l1_loss(loc[positive], loc_t[positive], reduction="sum", beta=1.0)
    ce = F.cross_entropy(conf.reshape(-1, num_classes), labels_t.reshape(-1), reduction="none").view_as(labels_t)
    chosen = positive | hard_negative_mask(ce, positive, neg_pos_ratio)
    conf_loss = ce[chosen].sum()
    return {"loss": (conf_loss + alpha * loc_loss) / n, "loc": loc_loss / n, "conf": conf_loss / n}


# --- inference (Sec. 3; official DetectionOutput: conf 0.01, top_k 400, NMS 0.45, keep_top_k 200) ---
@torch.no_grad()
def detect(loc: torch.Tensor, conf: torch.Tensor, priors: torch.Tensor, image_sizes: Sequence[tuple[int, int]],
           score_thresh: float = 0.01, nms_thresh: float = 0.45, top_k: int = 200, candidates: int = 400,
           variances=VARIANCES) -> list[dict[str, torch.Tensor]]:
    """Per image {"boxes" (n, 4) xyxy pixels, "scores" (n,), "labels" (n,) int64 in 1..C-1}, best first."""
    boxes_all = decode_boxes(loc.float(), priors.float(), variances)  # (B, P, 4)
    scores_all = conf.float().softmax(-1)[..., 1:]  # (B, P, C-1), background dropped
    k = min(candidates, scores_all.shape[1])
    results = []
    for boxes, scores, (h, w) in zip(boxes_all, scores_all, image_sizes):
        boxes = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                             boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], -1)
        top, idx = scores.masked_fill(scores <= score_thresh, -1.0).topk(k, dim=0)  # (k, C-1) per class
        keep = top > score_thresh
        labels = torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(idx)[keep]
        cand_boxes, cand_scores = boxes[idx[keep]], top[keep]
        kept = batched_nms(cand_boxes, cand_scores, labels, nms_thresh)[:top_k]
        results.append({"boxes": cand_boxes[kept], "scores": cand_scores[kept], "labels": labels[kept]})
    return results


# --- network (Sec. 3, Fig. 2) ----------------------------------------------------------------------
def _xavier_init_(*modules: nn.Module) -> None:
    """The official fillers: Xavier-uniform conv weights, zero biases."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


class VGGBase(nn.Module):
    """VGG-16 with fc6/fc7 as convolutions (Caffe ``VGGNetBody(fully_conv, reduced, dilated)``).

    (B, C, H, W) -> [L2Norm(conv4_3) (B, w4, H/8, W/8), fc7 (B, fc_width, H/16, W/16)] (sizes rounded up).
    ``to_conv4_3`` holds conv1_1 .. relu4_3 and ``to_fc7`` pool4, conv5_x, pool5 (3x3/1), fc6 (3x3,
    dilation ``fc6_dilation``), fc7 (1x1); the Sequential indices are torchvision's VGG-16 ``features``
    indices (0..22, then 23..29 shifted by -23), so ImageNet VGG-16 weights map by index.
    """

    def __init__(self, in_chans: int = 3, widths: Sequence[int] = (64, 128, 256, 512, 512),
                 fc_width: int = 1024, fc6_dilation: int = 6, l2_scale: float = 20.0):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for stage, (n_convs, w) in enumerate(zip((2, 2, 3, 3, 3), widths)):
            if stage:
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))  # pool1..pool4 (Caffe rounds up)
            for _ in range(n_convs):
                layers += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(inplace=True)]
                cin = w
        split = len(layers) - 2 * 3 - 1  # pool4 opens stage 5
        self.to_conv4_3 = nn.Sequential(*layers[:split])
        self.norm4_3 = L2Norm(widths[3], l2_scale)
        self.to_fc7 = nn.Sequential(
            *layers[split:],
            nn.MaxPool2d(3, 1, padding=1),  # pool5: 3x3 stride 1 instead of 2x2/2
            nn.Conv2d(widths[4], fc_width, 3, padding=fc6_dilation, dilation=fc6_dilation), nn.ReLU(inplace=True),
            nn.Conv2d(fc_width, fc_width, 1), nn.ReLU(inplace=True),
        )
        self.out_channels = (widths[3], fc_width)
        _xavier_init_(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c4 = self.to_conv4_3(x)  # (B, 512, 38, 38) at 300 px
        return [self.norm4_3(c4), self.to_fc7(c4)]  # fc7: (B, 1024, 19, 19)


class FeatureTaps(nn.Module):
    """A convzoo classification backbone as an SSD base: the maps ``indices`` of ``backbone.features(x)``
    (its classifier is removed: it would get no gradient)."""

    def __init__(self, backbone: nn.Module, indices: Sequence[int]):
        super().__init__()
        if hasattr(backbone, "reset_classifier"):
            backbone.reset_classifier(0)
        self.backbone, self.indices = backbone, tuple(indices)
        self.out_channels = tuple(backbone.feature_info[i]["num_chs"] for i in self.indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.backbone.features(x)
        return [feats[i] for i in self.indices]


def _flatten_head(t: torch.Tensor, k: int) -> torch.Tensor:
    # (B, A*k, H, W) -> (B, H*W*A, k): cell-major, then box, as Caffe's permute + flatten
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1, k)


class _Features(nn.Module):
    """Shape-only view of ``SSD.features`` (run on the meta device to size the default boxes)."""

    def __init__(self, ssd: SSD):
        super().__init__()
        self.ssd = ssd

    def forward(self, x):
        return self.ssd.features(x)


class SSD(nn.Module):
    """SSD (Sec. 2-3): base maps + extra layers -> per-source 3x3 heads -> (B, P, 4 + num_classes).

    Args:
        base: module mapping (B, C, H, W) to a list of maps; the last one feeds ``extras``.
        base_channels: channels of the base's maps.
        extras: one (reduce, out, kernel, stride, padding) per extra layer: 1x1 conv to ``reduce``, ReLU,
            kernel x kernel conv to ``out``, ReLU (paper's conv8_2 .. conv11_2/12_2).
        aspect_ratios: ratios beyond 1 per source map (each gives a and 1/a).
        scales: s_1..s_m and s_{m+1} as fractions of the image side.
        steps: official centre steps in pixels at ``input_size`` (None: the paper's (i + 0.5)/|f_k|).
        num_classes: classes including background (index 0).
        input_size: (H, W) the variant is defined at (default boxes of ``model.default_boxes``).
    """

    def __init__(self, base: nn.Module, base_channels: Sequence[int], extras: Sequence[tuple[int, ...]],
                 aspect_ratios: Sequence[Sequence[float]], scales: Sequence[float],
                 steps: Sequence[float] | None = None, num_classes: int = 21,
                 input_size: tuple[int, int] = (300, 300), clip: bool = False, iou_threshold: float = 0.5,
                 neg_pos_ratio: float = 3.0, alpha: float = 1.0, variances=VARIANCES):
        super().__init__()
        channels = list(base_channels)
        if len(channels) + len(extras) != len(aspect_ratios) or len(scales) != len(aspect_ratios) + 1 \
                or (steps is not None and len(steps) != len(aspect_ratios)):
            raise ConvzooError(f"SSD needs one aspect-ratio list and step per source map and one more scale: "
                               f"{len(channels) + len(extras)} maps, {len(aspect_ratios)} ratio lists, "
                               f"{len(scales)} scales, {None if steps is None else len(steps)} steps")
        self.num_classes, self.input_size = num_classes, tuple(input_size)
        self.aspect_ratios, self.scales = tuple(tuple(a) for a in aspect_ratios), tuple(scales)
        self.steps, self.clip, self.variances = (None if steps is None else tuple(steps)), clip, tuple(variances)
        self.iou_threshold, self.neg_pos_ratio, self.alpha = iou_threshold, neg_pos_ratio, alpha
        self.base = base
        self.extras = nn.ModuleList()
        for reduce, out, kernel, stride, padding in extras:
            self.extras.append(nn.Sequential(
                nn.Conv2d(channels[-1], reduce, 1), nn.ReLU(inplace=True),
                nn.Conv2d(reduce, out, kernel, stride, padding), nn.ReLU(inplace=True)))
            channels.append(out)
        self.out_channels = tuple(channels)
        self.boxes_per_location = tuple(2 + 2 * len(a) for a in self.aspect_ratios)
        self.loc = nn.ModuleList(nn.Conv2d(c, a * 4, 3, padding=1)
                                 for c, a in zip(channels, self.boxes_per_location))
        self.conf = nn.ModuleList(nn.Conv2d(c, a * num_classes, 3, padding=1)
                                  for c, a in zip(channels, self.boxes_per_location))
        _xavier_init_(self.extras, self.loc, self.conf)  # the base keeps its own (maybe trained) weights
        self._feature_sizes: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._size_of_count: dict[int, tuple[int, int]] = {}
        self._anchors: dict[tuple[int, int], torch.Tensor] = {}

    # --- forward ------------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The source maps: the base's maps, then one per extra layer."""
        maps = list(self.base(x))
        y = maps[-1]
        for layer in self.extras:
            y = layer(y)
            maps.append(y)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.features(x)
        loc = torch.cat([_flatten_head(h(m), 4) for h, m in zip(self.loc, maps)], 1)  # (B, P, 4)
        conf = torch.cat([_flatten_head(h(m), self.num_classes) for h, m in zip(self.conf, maps)], 1)  # (B, P, C)
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()):
            self._remember_sizes(x, maps)
        return torch.cat([loc, conf], -1)

    @torch.compiler.disable  # runs eagerly (a graph break under torch.compile) to see concrete sizes
    def _remember_sizes(self, x: torch.Tensor, maps: list[torch.Tensor]) -> None:
        """Map this input's box count to its size, so that ``loss``/``detect`` find the default boxes."""
        size = (int(x.shape[-2]), int(x.shape[-1]))
        self._feature_sizes[size] = [(int(m.shape[-2]), int(m.shape[-1])) for m in maps]
        self._size_of_count[sum(h * w * a for (h, w), a in zip(self._feature_sizes[size],
                                                                 self.boxes_per_location))] = size

    # --- default boxes ------------------------------------------------------------------------------
    def feature_sizes(self, image_size: Sequence[int]) -> list[tuple[int, int]]:
        """(h, w) of every source map for an input of ``image_size`` (shape-only pass on the meta device)."""
        size = (int(image_size[0]), int(image_size[1]))
        if size not in self._feature_sizes:
            view = _Features(self)
            meta = {n: torch.empty_like(t, device="meta")
                    for n, t in [*view.named_parameters(), *view.named_buffers()]}
            x = torch.empty(1, self._in_chans(), *size, device="meta")
            with torch.no_grad():
                maps = torch.func.functional_call(view, meta, (x,))
            self._feature_sizes[size] = [(int(m.shape[-2]), int(m.shape[-1])) for m in maps]
        return self._feature_sizes[size]

    def _in_chans(self) -> int:
        first = next(m for m in self.modules() if isinstance(m, nn.Conv2d))
        return first.in_channels

    def anchors(self, image_size: Sequence[int] | None = None) -> torch.Tensor:
        """Default boxes for an input of ``image_size`` (H, W), (P, 4) xyxy pixels (cached per size).

        The official steps apply at the variant's ``input_size``; other sizes use (i + 0.5)/|f_k|.
        """
        size = tuple(int(s) for s in (image_size or self.input_size))
        if size not in self._anchors:
            steps = self.steps if size == self.input_size else None
            boxes = generate_default_boxes(self.feature_sizes(size), size, self.scales, self.aspect_ratios,
                                           steps, self.clip)
            self._anchors[size] = boxes
            self._size_of_count.setdefault(boxes.shape[0], size)
        return self._anchors[size]

    def num_priors(self, image_size: Sequence[int] | None = None) -> int:
        """Default boxes per image for an input of ``image_size`` (H, W) (default: ``input_size``)."""
        sizes = self.feature_sizes(image_size or self.input_size)
        return sum(h * w * a for (h, w), a in zip(sizes, self.boxes_per_location))

    @property
    def default_boxes(self) -> torch.Tensor:
        """Default boxes at the variant's input size: (8,732, 4) for SSD300, (24,564, 4) for SSD512."""
        return self.anchors(self.input_size)

    def _priors_for(self, raw: torch.Tensor, image_size=None) -> tuple[torch.Tensor, tuple[int, int]]:
        """Default boxes matching ``raw``'s box count, and the input size they belong to.

        The size is ``image_size`` if given, else the last input of that box count seen by ``forward``,
        else the variant's ``input_size``."""
        count = raw.shape[1]
        size = tuple(image_size or self._size_of_count.get(count) or self.input_size)
        priors = self.anchors(size)
        if priors.shape[0] != count:
            raise ConvzooError(f"outputs hold {count} boxes per image but an input of {size} has "
                               f"{priors.shape[0]}; pass image_size=(H, W) of the network input")
        return priors.to(raw.device), size

    # --- training and inference -----------------------------------------------------------------------
    def loss(self, raw: torch.Tensor, targets: Sequence[dict], image_size=None) -> dict[str, torch.Tensor]:
        """Eq. 1 on ``model(images)`` outputs and per-image {"boxes", "labels"} targets (input pixels)."""
        raw = raw.float()
        priors, _ = self._priors_for(raw, image_size)
        return multibox_loss(raw[..., :4], raw[..., 4:], priors, targets, self.iou_threshold, self.neg_pos_ratio,
                             self.alpha, self.variances)

    def detect(self, raw: torch.Tensor, image_sizes: Sequence[tuple[int, int]] | None = None,
               score_thresh: float = 0.01, nms_thresh: float = 0.45, top_k: int = 200, candidates: int = 400,
               image_size=None) -> list[dict[str, torch.Tensor]]:
        """Detections per image in input pixels (Sec. 3), clipped to ``image_sizes`` (H, W) per image
        (default: the whole input, e.g. pass the un-padded sizes of a padded batch)."""
        priors, size = self._priors_for(raw, image_size)
        sizes = [size] * raw.shape[0] if image_sizes is None else [tuple(s) for s in image_sizes]
        return detect(raw[..., :4], raw[..., 4:], priors, sizes, score_thresh, nms_thresh, top_k, candidates,
                      self.variances)


# --- torchvision checkpoints ------------------------------------------------------------------------
_TV_RULES = (  # torchvision ssd300_vgg16 key -> ours
    (r"backbone\.features\.(.+)", lambda m: f"base.to_conv4_3.{m[1]}"),
    (r"backbone\.scale_weight", lambda m: "base.norm4_3.weight"),
    (r"backbone\.extra\.0\.7\.(\d+)\.(.+)", lambda m: f"base.to_fc7.{7 + int(m[1])}.{m[2]}"),
    (r"backbone\.extra\.0\.(\d+)\.(.+)", lambda m: f"base.to_fc7.{m[1]}.{m[2]}"),
    (r"backbone\.extra\.(\d+)\.(.+)", lambda m: f"extras.{int(m[1]) - 1}.{m[2]}"),
    (r"head\.regression_head\.module_list\.(.+)", lambda m: f"loc.{m[1]}"),
    (r"head\.classification_head\.module_list\.(.+)", lambda m: f"conf.{m[1]}"),
)


def remap_torchvision(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision ``ssd300_vgg16`` state dict with ``ssd300``'s keys (same shapes, same order)."""
    out = {}
    for key, value in state_dict.items():
        for pattern, rename in _TV_RULES:
            m = re.fullmatch(pattern, key)
            if m:
                out[rename(m)] = value
                break
        else:
            raise ConvzooError(f"unexpected key in a torchvision SSD state dict: {key}")
    return out


# --- variants -------------------------------------------------------------------------------------
_NOTES = ("model(x) -> (B, P, 4 + num_classes): encoded offsets, then logits (class 0 = background); "
          "model.loss(out, targets) is Eq. 1 and model.detect(out) the per-image detections in input pixels. ")
SSD_CFGS = {
    "ssd300": {  # Sec. 3, Fig. 2; ssd_pascal.py
        "input_size": (300, 300),
        "extras": ((256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 1, 0), (128, 256, 3, 1, 0)),
        "aspect_ratios": ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)),
        "steps": (8, 16, 32, 64, 100, 300),
        "scales": {"voc": caffe_scales(20, 90, 6, 10), "coco": caffe_scales(15, 90, 6, 7)},
        "card": {
            "params": 26_285_486,
            "params_source": ("torchvision ssd300_vgg16(num_classes=21), the official layer graph "
                              "(tests/models/test_ssd.py::test_ssd300_params_equal_torchvision); "
                              "the paper gives no count"),
            "macs": 31_373_537_792,
            "macs_source": ("torchvision SSD300_VGG16_Weights meta 34.858 GMACs (91 classes) minus 70 classes "
                            "of conf-head MACs (closed form, tests/models/test_ssd.py::"
                            "test_ssd300_macs_equal_torchvision)"),
            "reference": "torchvision:ssd300_vgg16",
            "recipes": ("ssd300_voc_paper", "ssd300_coco_paper"),
            "notes": _NOTES + ("scales='voc' (default) or 'coco' (official COCO min_ratio 15). "
                               "remap_torchvision loads torchvision ssd300_vgg16 weights. No weights bundled "
                               "(the paper starts from ImageNet VGG-16)."),
        },
    },
    "ssd512": {  # Sec. 3 footnote: conv12_2 added; ssd_pascal_512.py (extras 3x3/2 pad 1, then 4x4 pad 1)
        "input_size": (512, 512),
        "extras": ((256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1),
                   (128, 256, 4, 1, 1)),
        "aspect_ratios": ((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)),
        "steps": (8, 16, 32, 64, 128, 256, 512),
        "scales": {"voc": caffe_scales(15, 90, 7, 7), "coco": caffe_scales(10, 90, 7, 4)},
        "card": {
            "params": 27_188_676,
            "params_source": ("closed form of the official ssd_pascal_512 layer list (VGG-16 reduced, "
                              "conv6..conv10 extras, 7 heads of 4,6,6,6,6,4,4 boxes), 21 classes: closed form, "
                              "tests/models/test_ssd.py::test_ssd512_counts_closed_form; the paper gives no count"),
            "macs": 90_207_908_864,
            "macs_source": ("closed form of the same layer list at 512 px (conv MACs), "
                            "tests/models/test_ssd.py::test_ssd512_counts_closed_form"),
            "capabilities": frozenset({"compile", "channels_last"}),
            "notes": _NOTES + ("scales='voc' (default) or 'coco' (official COCO min_ratio 10). The layers of "
                               "ssd300 plus a 4x4 conv: ONNX export is proven on ssd300, not repeated here to "
                               "keep the suite short. No weights bundled."),
        },
    },
    "ssd_tiny": {  # not in the paper: CPU-scale scenes
        "input_size": (128, 128),
        "base": {"widths": (16, 32, 64, 128, 128), "fc_width": 256, "fc6_dilation": 3},
        "extras": ((64, 128, 3, 2, 1), (32, 64, 3, 2, 1), (32, 64, 3, 2, 1)),
        "aspect_ratios": ((2,), (2, 3), (2, 3), (2,), (2,)),
        "steps": None,
        "scales": {"voc": caffe_scales(20, 90, 5, 10)},
        "card": {
            "params": 2_164_776,
            "params_source": ("closed form of this layer list, 21 classes, "
                              "tests/models/test_ssd.py::test_ssd_tiny_counts_closed_form; not in the paper"),
            "macs": 398_630_144,
            "macs_source": ("closed form of this layer list at 128 px (conv MACs), "
                            "tests/models/test_ssd.py::test_ssd_tiny_counts_closed_form"),
            "test_size": (64, 64),
            "recipes": ("ssd_scenes",),
            "notes": _NOTES + ("Not in the paper: the VGG-16 SSD layout at 1/4 width, fc6 dilation 3, 5 sources "
                               "(16..1 maps at 128 px), centres by the paper's rule, for CPU-scale scenes."),
        },
    },
}


def _card(name: str) -> ModelCard:
    defaults = {"test_size": (260, 260),  # the smallest input at which every SSD300/512 map exists is 257
                "capabilities": frozenset({"compile", "onnx", "channels_last"}), "macs_rtol": 0.0}
    return ModelCard(
        name=name, paper=27, family="ssd", task="detection", dims=2, in_chans=3, num_classes=21,
        input_size=SSD_CFGS[name]["input_size"],
        source=("paper Sec. 2.2 (default boxes, matching, Eq. 1-2, hard negative mining), Sec. 3 (VGG-16 base, "
                "L2Norm on conv4_3, extra layers; inference 0.01 / NMS 0.45 / top 200); ssd_pascal*.py settings"),
        **(defaults | SSD_CFGS[name]["card"]))


def _ssd(name: str, num_classes: int = 21, in_chans: int = 3, scales: str | Sequence[float] = "voc",
         **kwargs) -> SSD:
    cfg = SSD_CFGS[name]
    if isinstance(scales, str):
        if scales not in cfg["scales"]:
            raise ConvzooError(f"{name}: scales must be one of {sorted(cfg['scales'])} or a list, got {scales!r}")
        scales = cfg["scales"][scales]
    base = VGGBase(in_chans, **cfg.get("base", {}))
    kwargs.setdefault("steps", cfg["steps"])
    return SSD(base, base.out_channels, cfg["extras"], cfg["aspect_ratios"], scales, num_classes=num_classes,
               input_size=cfg["input_size"], **kwargs)


@register_model(_card("ssd300"))
def ssd300(**kwargs) -> SSD:
    return _ssd("ssd300", **kwargs)


@register_model(_card("ssd512"))
def ssd512(**kwargs) -> SSD:
    return _ssd("ssd512", **kwargs)


@register_model(_card("ssd_tiny"))
def ssd_tiny(**kwargs) -> SSD:
    return _ssd("ssd_tiny", **kwargs)


# --- other backbones (not in the SSD paper) -----------------------------------------------------------
BACKBONE_SSD_CFGS = {  # registered name -> (backbone, seed paper it serves, where that paper uses it)
    "ssd_vovnet27_slim": ("vovnet27_slim", 53, "VoVNet Sec. 4.1: the DSOD backbone (PASCAL VOC, from scratch)"),
    "ssd_vovnet39": ("vovnet39", 53, "VoVNet Sec. 4: the RefineDet / Mask R-CNN backbone"),
    "ssd_eca_resnet50": ("eca_resnet50", 43, "ECA-Net Sec. 4.3: ECA-Net50 as a detection backbone"),
    "ssd_ela_resnet50": ("ela_resnet50", 10, "ELA: ELA-ResNet-50 as a detection backbone"),
}
_TAPS = (1, 2, 3)  # feature_info entries at strides 8, 16, 32
_BACKBONE_EXTRAS = SSD_CFGS["ssd300"]["extras"][1:]  # conv9_2 (3x3/2), conv10_2, conv11_2 (3x3 valid)
_BACKBONE_COUNTS = {  # params at 21 classes: closed forms in tests/models/test_ssd.py::test_backbone_ssd_params
    "ssd_vovnet27_slim": 6_276_846,
    "ssd_vovnet39": 26_344_942,
    "ssd_eca_resnet50": 30_136_830,
    "ssd_ela_resnet50": 30_170_734,  # with the ela_resnet50 card's count: update both together
}


def _backbone_card(name: str) -> ModelCard:
    backbone, paper, where = BACKBONE_SSD_CFGS[name]
    params = _BACKBONE_COUNTS[name]
    return ModelCard(
        name=name, paper=paper, family="ssd", task="detection", dims=2, in_chans=3, num_classes=21,
        input_size=(300, 300),  # test_size: a small side at which the last 3x3 valid map still exists
        test_size=(288, 288) if backbone.startswith("vovnet") else (260, 260),
        params=params, params_source=(
            f"closed form: the {backbone} backbone without its classifier plus SSD300's last three extra "
            f"layers and six heads at 21 classes, tests/models/test_ssd.py::test_backbone_ssd_params_"
            f"{'vovnet' if backbone.startswith('vovnet') else backbone.split('_')[0]}"),
        capabilities=frozenset({"channels_last"}),  # compile works as for ssd300; not claimed, to keep CI short
        source=(f"{where}; SSD (arXiv 1512.02325) Sec. 2.2-3 extra layers, heads, default boxes and loss "
                "on the backbone's stride-8/16/32 maps"),
        notes=_NOTES + f"Backbone: {backbone} (random init; no weights bundled), maps at strides 8/16/32 via FeatureTaps.")


def _backbone_ssd(name: str, num_classes: int = 21, in_chans: int = 3, scales: str | Sequence[float] = "voc",
                  backbone_kwargs: dict | None = None, **kwargs) -> SSD:
    from convzoo.registry import create_model

    if isinstance(scales, str):
        if scales not in SSD_CFGS["ssd300"]["scales"]:
            raise ConvzooError(f"{name}: scales must be 'voc', 'coco' or a list, got {scales!r}")
        scales = SSD_CFGS["ssd300"]["scales"][scales]
    base = FeatureTaps(create_model(BACKBONE_SSD_CFGS[name][0], in_chans=in_chans, **(backbone_kwargs or {})), _TAPS)
    kwargs.setdefault("steps", None)
    return SSD(base, base.out_channels, _BACKBONE_EXTRAS, SSD_CFGS["ssd300"]["aspect_ratios"], scales,
               num_classes=num_classes, input_size=(300, 300), **kwargs)


@register_model(_backbone_card("ssd_vovnet27_slim"))
def ssd_vovnet27_slim(**kwargs) -> SSD:
    return _backbone_ssd("ssd_vovnet27_slim", **kwargs)


@register_model(_backbone_card("ssd_vovnet39"))
def ssd_vovnet39(**kwargs) -> SSD:
    return _backbone_ssd("ssd_vovnet39", **kwargs)


@register_model(_backbone_card("ssd_eca_resnet50"))
def ssd_eca_resnet50(**kwargs) -> SSD:
    return _backbone_ssd("ssd_eca_resnet50", **kwargs)


@register_model(_backbone_card("ssd_ela_resnet50"))
def ssd_ela_resnet50(**kwargs) -> SSD:
    return _backbone_ssd("ssd_ela_resnet50", **kwargs)
