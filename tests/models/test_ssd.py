"""Paper 27 (SSD, arXiv 1512.02325): counts, default boxes, outputs, detections and loss against torchvision's
``ssd300_vgg16``; matching, hard negative mining, box coding and the loss against closed forms written from the
paper's Sec. 2.2 (Eq. 1-2) and the official Caffe code (bbox_util.cpp); L2Norm; a small SSD overfits.

Closed-form counts come from the official layer lists (examples/ssd/ssd_pascal.py, ssd_pascal_512.py) written
out below, independently of ``convzoo.models.ssd``; the SSD300 count and MACs of that closed form are checked
against torchvision first, so the same formula is trusted for SSD512.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection import SSD300_VGG16_Weights, ssd300_vgg16
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.l2norm import L2Norm
from convzoo.models.ssd import (
    SSD,
    FeatureTaps,
    decode_boxes,
    encode_boxes,
    hard_negative_mask,
    match,
    multibox_loss,
    remap_torchvision,
)
from convzoo.registry import count_params

pytestmark = pytest.mark.paper(27)


# --- closed forms of the official layer lists -------------------------------------------------------
def _conv_out(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def _vgg_ssd_counts(size, extras, ratios, num_classes, widths=(64, 128, 256, 512, 512), fc=1024):
    """(params, conv MACs) of VGGNetBody(reduced, dilated) + extra layers + multibox heads (Caffe)."""
    convs, sources, h, cin = [], [], size, 3  # convs: (kernel, c_in, c_out, output side)
    for stage, (n, w) in enumerate(zip((2, 2, 3, 3, 3), widths)):
        if stage:
            h = -(-h // 2)  # 2x2/2 max-pool, Caffe rounds up
        for _ in range(n):
            convs.append((3, cin, w, h))
            cin = w
        if stage == 3:
            sources.append((w, h))  # conv4_3
    convs += [(3, cin, fc, h), (1, fc, fc, h)]  # pool5 3x3/1 keeps h; fc6 (dilated, 'same'), fc7
    sources.append((fc, h))
    cin = fc
    for reduce, out, k, s, p in extras:
        convs.append((1, cin, reduce, h))
        h = _conv_out(h, k, s, p)
        convs.append((k, reduce, out, h))
        sources.append((out, h))
        cin = out
    for (c, h), r in zip(sources, ratios):
        boxes = 2 + 2 * len(r)
        convs += [(3, c, 4 * boxes, h), (3, c, num_classes * boxes, h)]
    params = sum(k * k * ci * co + co for k, ci, co, _ in convs) + sources[0][0]  # + L2Norm scales
    macs = sum(k * k * ci * co * h * h for k, ci, co, h in convs)
    priors = sum(h * h * (2 + 2 * len(r)) for (_, h), r in zip(sources, ratios))
    return params, macs, priors


# ssd_pascal.py: conv6_2, conv7_2 3x3/2 pad 1; conv8_2, conv9_2 3x3 valid
SSD300_EXTRAS = [(256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 1, 0), (128, 256, 3, 1, 0)]
SSD300_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
SSD512_EXTRAS = [(256, 512, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1), (128, 256, 3, 2, 1),
                 (128, 256, 4, 1, 1)]  # ssd_pascal_512.py: conv6..conv9 3x3/2 pad 1, conv10_2 4x4 pad 1
SSD512_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]]


# --- counts ---------------------------------------------------------------------------------------
@pytest.mark.claim(paper=27, artefact="ssd300",
                   claim="26,285,486 params (21 classes) and 35,641,826 (91 classes) = torchvision ssd300_vgg16")
def test_ssd300_params_equal_torchvision():
    for num_classes, expected in ((21, 26_285_486), (91, 35_641_826)):
        with torch.device("meta"):
            ours = convzoo.create_model("ssd300", num_classes=num_classes)
            ref = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=num_classes)
        assert count_params(ours) == count_params(ref) == expected
        assert _vgg_ssd_counts(300, SSD300_EXTRAS, SSD300_RATIOS, num_classes)[0] == expected
        mapped = remap_torchvision(ref.state_dict())  # every torchvision tensor has a place of the same shape
        shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        assert {k: tuple(v.shape) for k, v in mapped.items()} == shapes
    assert convzoo.get_card("ssd300").params == 26_285_486


@pytest.mark.claim(paper=27, artefact="ssd300",
                   claim="34.858 GMACs at 300 px with 91 classes (torchvision SSD300_VGG16_Weights meta); "
                         "card's 21-class MACs = that minus 70 classes of conf heads (closed form)")
def test_ssd300_macs_equal_torchvision():
    from torch.utils.flop_counter import FlopCounterMode

    assert SSD300_VGG16_Weights.COCO_V1.meta["_ops"] == 34.858
    for num_classes in (91, 21):
        with torch.device("meta"):
            model = convzoo.create_model("ssd300", num_classes=num_classes).eval()
            x = torch.empty(1, 3, 300, 300)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        macs = counter.get_total_flops() // 2
        assert macs == _vgg_ssd_counts(300, SSD300_EXTRAS, SSD300_RATIOS, num_classes)[1]
        if num_classes == 91:
            assert round(macs / 1e9, 3) == 34.858
    conf_cells = sum(c * a * h * h for c, a, h in [(512, 4, 38), (1024, 6, 19), (512, 6, 10), (256, 6, 5),
                                                    (256, 4, 3), (256, 4, 1)])
    assert convzoo.get_card("ssd300").macs == _vgg_ssd_counts(300, SSD300_EXTRAS, SSD300_RATIOS, 91)[1] \
        - 9 * conf_cells * (91 - 21)


@pytest.mark.claim(paper=27, artefact="ssd512",
                   claim="params and MACs equal the closed form of the official ssd_pascal_512 layer list "
                         "(conv12_2 4x4, 7 sources), 24,564 default boxes")
def test_ssd512_counts_closed_form():
    params, macs, priors = _vgg_ssd_counts(512, SSD512_EXTRAS, SSD512_RATIOS, 21)
    assert priors == 24_564
    card = convzoo.get_card("ssd512")
    with torch.device("meta"):
        model = convzoo.create_model("ssd512")
    assert count_params(model) == params == card.params and card.macs == macs
    assert model.feature_sizes((512, 512)) == [(s, s) for s in (64, 32, 16, 8, 4, 2, 1)]


@pytest.mark.claim(paper=27, artefact="ssd_tiny",
                   claim="params and MACs equal the closed form of its layer list (VGG-16 layout at 1/4 width)")
def test_ssd_tiny_counts_closed_form():
    extras, ratios = [(64, 128, 3, 2, 1), (32, 64, 3, 2, 1), (32, 64, 3, 2, 1)], [[2], [2, 3], [2, 3], [2], [2]]
    params, macs, priors = _vgg_ssd_counts(128, extras, ratios, 21, widths=(16, 32, 64, 128, 128), fc=256)
    card = convzoo.get_card("ssd_tiny")
    model = convzoo.create_model("ssd_tiny")
    assert count_params(model) == params == card.params and card.macs == macs
    assert model.default_boxes.shape == (priors, 4) == (1524, 4)


# --- default boxes ----------------------------------------------------------------------------------
def _torchvision_boxes(size, feature_sizes, ratios, scales, steps):
    gen = DefaultBoxGenerator(ratios, scales=list(scales), steps=list(steps), clip=False)
    images = ImageList(torch.zeros(1, 3, size, size), [(size, size)])
    return gen(images, [torch.zeros(1, 1, h, w) for h, w in feature_sizes])[0]


@pytest.mark.claim(paper=27, artefact="ssd300",
                   claim="8,732 default boxes equal torchvision DefaultBoxGenerator (VOC and COCO scales, steps "
                         "8..300); VOC min/max sizes 30,60,111,162,213,264 / 60,...,315 px (ssd_pascal.py)")
@pytest.mark.claim(paper=27, artefact="default_boxes",
                   claim="generate_default_boxes equals torchvision DefaultBoxGenerator (SSD300 VOC/COCO scales)")
def test_ssd300_default_boxes_equal_torchvision():
    with torch.device("meta"):  # default boxes need shapes only
        model = convzoo.create_model("ssd300")
        coco = convzoo.create_model("ssd300", scales="coco")
        tv_scales = ssd300_vgg16(weights=None, weights_backbone=None).anchor_generator.scales
    boxes = model.default_boxes
    assert boxes.shape == (8732, 4) and model.num_priors() == 8732
    sizes = model.feature_sizes((300, 300))
    assert sizes == [(s, s) for s in (38, 19, 10, 5, 3, 1)]
    assert [round(s * 300, 6) for s in model.scales] == [30, 60, 111, 162, 213, 264, 315]
    ref = _torchvision_boxes(300, sizes, SSD300_RATIOS, model.scales, [8, 16, 32, 64, 100, 300])
    torch.testing.assert_close(boxes, ref, atol=1e-4, rtol=0)
    assert list(coco.scales) == tv_scales
    ref = _torchvision_boxes(300, sizes, SSD300_RATIOS, tv_scales, [8, 16, 32, 64, 100, 300])
    torch.testing.assert_close(coco.default_boxes, ref, atol=1e-4, rtol=0)


@pytest.mark.claim(paper=27, artefact="ssd512",
                   claim="24,564 default boxes equal torchvision DefaultBoxGenerator with the official SSD512 "
                         "sizes 35.84,76.8,...,460.8 / 76.8,...,537.6 px and steps 8..512")
@pytest.mark.claim(paper=27, artefact="default_boxes",
                   claim="generate_default_boxes equals torchvision DefaultBoxGenerator (SSD512 sizes and steps)")
def test_ssd512_default_boxes_equal_torchvision():
    with torch.device("meta"):
        model = convzoo.create_model("ssd512")
    assert [round(s * 512, 6) for s in model.scales] == [35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6]
    boxes = model.default_boxes
    assert boxes.shape == (24_564, 4) and boxes.device.type == "cpu"
    ref = _torchvision_boxes(512, model.feature_sizes((512, 512)), SSD512_RATIOS, model.scales,
                             [8, 16, 32, 64, 128, 256, 512])
    torch.testing.assert_close(boxes, ref, atol=1e-4, rtol=0)


def test_default_boxes_follow_the_input_size():
    """Other sizes: the paper's centres (i + 0.5)/|f_k|, boxes found again from the output count."""
    model = convzoo.create_model("ssd_tiny", num_classes=3).eval()
    with torch.no_grad():
        raw = model(torch.randn(1, 3, 96, 80))
    priors = model.anchors((96, 80))
    assert raw.shape == (1, model.num_priors((96, 80)), 7) and priors.shape[0] == raw.shape[1]
    h0, w0 = model.feature_sizes((96, 80))[0]
    first = priors[0]  # cell (0, 0), square s_1: centred at (0.5 * 80 / w0, 0.5 * 96 / h0)
    torch.testing.assert_close((first[:2] + first[2:]) / 2, torch.tensor([40 / w0, 48 / h0]))
    torch.testing.assert_close(first[2:] - first[:2], torch.tensor([0.1 * 80, 0.1 * 96]))
    target = {"boxes": torch.tensor([[10.0, 10, 40, 50]]), "labels": torch.tensor([1])}
    assert model.loss(raw, [target])["loss"] > 0
    assert len(model.detect(raw)) == 1
    with pytest.raises(ConvzooError, match="boxes per image"):
        model.loss(raw[:, :-4], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])


# --- parity with torchvision: head outputs and detections ---------------------------------------------
@pytest.mark.claim(paper=27, artefact="ssd300",
                   claim="with torchvision ssd300_vgg16 random weights mapped in: same raw offsets and logits and "
                         "same detections (postprocess_detections vs detect: 0.01 / NMS 0.45 / top 200), <= 1e-4")
def test_outputs_and_detections_equal_torchvision():
    torch.manual_seed(0)
    ref = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21).eval()
    with torch.no_grad():  # non-zero biases and per-channel L2 scales, so that every mapped tensor matters
        for name, p in ref.named_parameters():
            p.add_(torch.randn_like(p) * (1.0 if name.endswith("scale_weight") else 0.01))
    ref.anchor_generator.clip = False  # torchvision clamps default-box sizes to 1 by default; Caffe does not
    model = convzoo.create_model("ssd300", scales="coco").eval()  # torchvision's (COCO) scales
    model.load_state_dict(remap_torchvision(ref.state_dict()))
    x = torch.randn(2, 3, 300, 300)
    with torch.no_grad():
        raw = model(x)
        feats = list(ref.backbone(x).values())
        head = ref.head(feats)
        anchors = ref.anchor_generator(ImageList(x, [(300, 300)] * 2), feats)
        dets_ref = ref.postprocess_detections(head, anchors, [(300, 300)] * 2)  # end to end
        same_in = {"bbox_regression": raw[..., :4], "cls_logits": raw[..., 4:]}  # the same tensors as ours
        dets_same = ref.postprocess_detections(same_in, anchors, [(300, 300)] * 2)
    assert raw.shape == (2, 8732, 25)
    assert (raw[..., :4] - head["bbox_regression"]).abs().max() <= 1e-4
    assert (raw[..., 4:] - head["cls_logits"]).abs().max() <= 1e-4
    torch.testing.assert_close(model.default_boxes, anchors[0], atol=1e-4, rtol=0)
    dets = model.detect(raw)
    for ours, theirs, end in zip(dets, dets_same, dets_ref):
        assert len(ours["boxes"]) == len(theirs["boxes"]) == len(end["boxes"]) == 200
        assert torch.equal(ours["labels"], theirs["labels"]) and torch.equal(ours["labels"], end["labels"])
        assert (ours["boxes"] - theirs["boxes"]).abs().max() <= 1e-4  # pixels of a 300 px image
        assert (ours["scores"] - theirs["scores"]).abs().max() <= 1e-4
        # end to end the head outputs differ by float rounding (~2e-6), which decoding scales by up to ~60 px
        assert (ours["boxes"] - end["boxes"]).abs().max() <= 1e-3
        assert (ours["scores"] - end["scores"]).abs().max() <= 1e-4


@pytest.mark.claim(paper=27, artefact="multibox_loss",
                   claim="matching and loss (loc, conf) equal torchvision SSD's SSDMatcher + compute_loss on "
                         "random outputs and targets (1e-5)")
def test_loss_equals_torchvision_compute_loss():
    g = torch.Generator().manual_seed(3)
    with torch.device("meta"):
        model = convzoo.create_model("ssd300")
        ref = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
    priors = model.anchors((300, 300))
    targets = []
    for n in (3, 5, 1):
        xy = torch.rand(n, 2, generator=g) * 200
        wh = torch.rand(n, 2, generator=g) * 90 + 10
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(1, 21, (n,), generator=g)})
    raw = torch.randn(3, 8732, 25, generator=g)
    matched = []
    for t in targets:
        iou = box_iou(t["boxes"], priors)
        assert iou.argmax(1).unique().numel() == len(t["boxes"])  # no shared best box: both rules agree
        matched.append(ref.proposal_matcher(iou))
        assert torch.equal(match(t["boxes"], priors), matched[-1])
    theirs = ref.compute_loss(targets, {"bbox_regression": raw[..., :4], "cls_logits": raw[..., 4:]},
                              [priors] * 3, matched)
    ours = model.loss(raw, targets, image_size=(300, 300))
    torch.testing.assert_close(ours["loc"], theirs["bbox_regression"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours["conf"], theirs["classification"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours["loss"], ours["loc"] + ours["conf"])


# --- matching, mining, coding and the loss: closed forms (Sec. 2.2, Eq. 1-2) -------------------------
@pytest.mark.claim(paper=27, artefact="multibox_loss",
                   claim="matching: each ground truth takes its best default box even below IoU 0.5, then every "
                         "box with IoU >= 0.5 (hand-built boxes)")
def test_match_closed_form():
    priors = torch.tensor([[0.0, 0, 10, 10],    # 0: IoU 1 with gt A
                           [0, 0, 10, 15],      # 1: IoU 100/150 = 0.67 with A -> matched
                           [0, 0, 10, 25],      # 2: IoU 0.4 with A -> not matched
                           [100, 100, 150, 150],  # 3: best box of gt B, IoU 900/2500 = 0.36 < 0.5 -> matched
                           [200, 200, 210, 210]])  # 4: overlaps nothing
    gt = torch.tensor([[0.0, 0, 10, 10], [100, 100, 130, 130]])
    assert match(gt, priors).tolist() == [0, 0, -1, 1, -1]
    assert match(gt[1:], priors, iou_threshold=0.3).tolist() == [-1, -1, -1, 0, -1]
    assert match(torch.zeros(0, 4), priors).tolist() == [-1] * 5


def test_match_bipartite_resolves_shared_best_box():
    """Two ground truths with the same best box: the better pair wins it, the other takes its next best
    (the official greedy bipartite matching, best pair first)."""
    priors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 12, 10], [50, 50, 60, 60]])
    gt = torch.tensor([[0.0, 0, 10, 10],    # IoU 1 with 0, 10/12 with 1
                       [0, 0, 11, 10]])     # IoU 10/11 with 0 (its best), 11/12 with 1
    assert match(gt, priors).tolist() == [0, 1, -1]
    assert match(gt.flip(0), priors).tolist() == [1, 0, -1]


@pytest.mark.claim(paper=27, artefact="multibox_loss",
                   claim="hard negative mining keeps min(3 x positives, negatives) negatives per image, those of "
                         "highest confidence loss")
def test_hard_negative_mining_closed_form():
    ce = torch.tensor([[5.0, 0.1, 3, 7, 1, 2, 4, 0.5],
                       [5.0, 0.1, 3, 7, 1, 2, 4, 0.5],
                       [5.0, 0.1, 3, 7, 1, 2, 4, 0.5]])
    pos = torch.zeros(3, 8, dtype=torch.bool)
    pos[0, 1] = True  # 1 positive -> the 3 hardest negatives: 7 (3), 5 (0), 4 (6)
    pos[2, :5] = True  # 5 positives, only 3 negatives left -> all of them
    mask = hard_negative_mask(ce, pos)
    assert mask[0].nonzero().flatten().tolist() == [0, 3, 6]
    assert not mask[1].any()  # no positive, no negative
    assert mask[2].nonzero().flatten().tolist() == [5, 6, 7]
    assert hard_negative_mask(ce, pos, neg_pos_ratio=2)[0].nonzero().flatten().tolist() == [0, 3]


def _log_softmax(row, k):
    return row[k] - math.log(sum(math.exp(v) for v in row))


def _smooth_l1(d):
    return 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5


@pytest.mark.claim(paper=27, artefact="multibox_loss",
                   claim="Eq. 1 by hand: (CE of positives + CE of the 3N hardest negatives + smooth-L1 of the "
                         "encoded offsets) / N; N = number of matches; L = 0 when N = 0")
def test_multibox_loss_closed_form():
    priors = torch.tensor([[0.0, 0, 20, 20], [100, 100, 120, 120], [40, 0, 60, 20], [0, 40, 20, 60],
                           [40, 40, 60, 60], [80, 0, 100, 20], [0, 80, 20, 100]])
    gt = torch.tensor([[2.0, 4, 22, 20]])  # IoU with prior 0 = 288/432 = 0.67: one match, 6 negatives
    logits = torch.tensor([[0.2, 1.5, -0.3], [2.0, 0.1, 0.3], [-1.0, 0.5, 0.2], [0.3, 0.3, 0.3],
                           [1.0, -2.0, 2.5], [0.0, 1.0, 0.0], [3.0, 0.0, -1.0]])
    loc = torch.tensor([[0.5, -2.0, 0.3, 1.5]] + [[9.0, 9, 9, 9]] * 6)  # only the matched row counts
    out = multibox_loss(loc[None], logits[None], priors, [{"boxes": gt, "labels": torch.tensor([1])}])
    rows = logits.tolist()
    neg_ce = sorted((-_log_softmax(rows[i], 0) for i in range(1, 7)), reverse=True)
    conf = -_log_softmax(rows[0], 1) + sum(neg_ce[:3])
    # Eq. 2 with variances (0.1, 0.2): g = (12, 12, 20, 16) against d = (10, 10, 20, 20)
    target = [(12 - 10) / (20 * 0.1), (12 - 10) / (20 * 0.1), math.log(20 / 20) / 0.2, math.log(16 / 20) / 0.2]
    loc_loss = sum(_smooth_l1(p - t) for p, t in zip([0.5, -2.0, 0.3, 1.5], target))
    assert abs(float(out["conf"]) - conf) < 1e-5 and abs(float(out["loc"]) - loc_loss) < 1e-5
    assert abs(float(out["loss"]) - (conf + loc_loss)) < 1e-5
    # N normalises over the batch: a second image with two matches, the loss of both = weighted mean
    gt2 = {"boxes": torch.tensor([[0.0, 0, 20, 20], [40, 40, 60, 61]]), "labels": torch.tensor([2, 1])}
    one = multibox_loss(loc[None], logits[None], priors, [gt2])["loss"]
    both = multibox_loss(torch.stack([loc, loc]), torch.stack([logits, logits]), priors,
                         [{"boxes": gt, "labels": torch.tensor([1])}, gt2])["loss"]
    torch.testing.assert_close(both, (out["loss"] * 1 + one * 2) / 3)
    # no ground truth anywhere: L = 0, and gradients are defined (zero)
    loc0, conf0 = torch.randn(2, 7, 4, requires_grad=True), torch.randn(2, 7, 3, requires_grad=True)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    zero = multibox_loss(loc0, conf0, priors, [empty, empty])
    assert float(zero["loss"].detach()) == 0.0
    zero["loss"].backward()
    assert torch.equal(loc0.grad, torch.zeros_like(loc0)) and torch.equal(conf0.grad, torch.zeros_like(conf0))


def test_loss_rejects_bad_targets():
    model = convzoo.create_model("ssd_tiny", num_classes=3)
    raw = model(torch.randn(1, 3, 64, 64))
    for bad, msg in [({"boxes": torch.tensor([[5.0, 5, 5, 9]]), "labels": torch.tensor([1])}, "x2 > x1"),
                     ({"boxes": torch.tensor([[1.0, 1, 5, 9]]), "labels": torch.tensor([0])}, "labels must lie"),
                     ({"boxes": torch.tensor([[1.0, 1, 5, 9]]), "labels": torch.tensor([3])}, "labels must lie")]:
        with pytest.raises(ConvzooError, match=msg):
            model.loss(raw, [bad])


@pytest.mark.claim(paper=27, artefact="multibox_loss",
                   claim="box encoding by hand (Eq. 2, variances 0.1/0.2) and encode/decode round trip")
def test_encode_closed_form_and_round_trip():
    codes = encode_boxes(torch.tensor([[10.0, 20, 50, 80]]), torch.tensor([[0.0, 0, 40, 40]]))
    torch.testing.assert_close(codes, torch.tensor([[2.5, 7.5, 0.0, math.log(1.5) / 0.2]]))
    g = torch.Generator().manual_seed(1)
    priors = torch.cat([torch.rand(50, 2, generator=g) * 100, torch.zeros(50, 2)], 1)
    priors[:, 2:] = priors[:, :2] + torch.rand(50, 2, generator=g) * 50 + 1
    boxes = priors + torch.randn(50, 4, generator=g) * 3
    boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    torch.testing.assert_close(decode_boxes(encode_boxes(boxes, priors), priors), boxes, atol=1e-4, rtol=0)


@pytest.mark.claim(paper=27, artefact="detection",
                   claim="SSD.detect by hand: per-class threshold and NMS (overlapping boxes of one class "
                         "suppressed, of two classes kept), best first, clipped to the image, top_k")
def test_detect_closed_form():
    model = convzoo.create_model("ssd_tiny", num_classes=3).eval()
    raw = torch.zeros(1, model.num_priors((64, 64)), 7)
    raw[..., 4] = 10.0  # background everywhere ...
    priors = model.anchors((64, 64))
    a, b = 0, 1  # ... except two overlapping boxes of cell (0, 0): the s_1 square and the s' square
    assert box_iou(priors[a:a + 1], priors[b:b + 1]) > 0.45
    raw[0, a, 4:] = torch.tensor([0.0, math.log(9), 0.0])  # class 1 with p = 9/11
    raw[0, b, 4:] = torch.tensor([0.0, math.log(4), math.log(4)])  # classes 1 and 2 with p = 4/9 each
    raw[0, b, :4] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # shifted by 0.1 w along x
    det = model.detect(raw, score_thresh=0.3)[0]
    assert det["labels"].tolist() == [1, 2]  # box b of class 1 suppressed by a (same class, IoU > 0.45)
    torch.testing.assert_close(det["scores"], torch.tensor([9 / 11, 4 / 9]))
    w = priors[b, 2] - priors[b, 0]
    expected_b = priors[b] + torch.tensor([0.1 * w, 0, 0.1 * w, 0])
    torch.testing.assert_close(det["boxes"], torch.stack([priors[a], expected_b]).clamp(0, 64))
    assert det["boxes"].min() >= 0 and det["boxes"].max() <= 64
    assert model.detect(raw, score_thresh=0.3, top_k=1)[0]["labels"].tolist() == [1]
    assert len(model.detect(raw, score_thresh=0.9)[0]["boxes"]) == 0


# --- the L2Norm layer (Sec. 3.1, ParseNet) ----------------------------------------------------------
@pytest.mark.claim(paper=27, artefact="L2Norm",
                   claim="per-position channel L2 norm rescaled to a learnable per-channel scale starting at 20 "
                         "(= torchvision's scale_weight * F.normalize)")
def test_l2norm():
    layer = L2Norm(16)
    assert torch.equal(layer.weight, torch.full((16,), 20.0))
    x = torch.randn(2, 16, 5, 7)
    y = layer(x)
    torch.testing.assert_close(y.norm(dim=1), torch.full((2, 5, 7), 20.0))
    torch.testing.assert_close(y, 20 * F.normalize(x, dim=1))
    with torch.no_grad():
        layer.weight.copy_(torch.arange(16.0))
    torch.testing.assert_close(layer(x), torch.arange(16.0).view(1, -1, 1, 1) * F.normalize(x, dim=1))
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert torch.isfinite(L2Norm(4)(torch.zeros(1, 4, 2, 2))).all()


# --- the base network as a constructor argument ----------------------------------------------------------
def test_ssd_on_another_backbone():
    """Any backbone with ``features``/``feature_info`` feeds the heads (for later VoVNet / ECA-ResNet SSDs)."""
    backbone = convzoo.create_model("eca_resnet18")
    base = FeatureTaps(backbone, [2, 3])  # strides 16 and 32
    model = SSD(base, base.out_channels, [(128, 256, 3, 2, 1)], [[2], [2, 3], [2]], [0.2, 0.45, 0.7, 0.95],
                num_classes=4, input_size=(96, 96)).train()
    x = torch.randn(2, 3, 96, 96)
    raw = model(x)
    assert raw.shape == (2, model.num_priors(), 8) == (2, 6 * 6 * 4 + 3 * 3 * 6 + 2 * 2 * 4, 8)
    loss = model.loss(raw, [{"boxes": torch.tensor([[10.0, 10, 50, 60]]), "labels": torch.tensor([2])}] * 2)
    loss["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


# --- a small SSD learns ------------------------------------------------------------------------------
def _shapes(n: int, size: int, g: torch.Generator):
    """Images with 1-2 flat coloured squares on noise; class 1 = red, class 2 = blue."""
    images, targets = torch.rand(n, 3, size, size, generator=g) * 0.2, []
    for i in range(n):
        boxes, labels = [], []
        for j in range(1 + i % 2):
            side = int(torch.randint(14, 30, (1,), generator=g))
            x0, y0 = (int(v) for v in torch.randint(0, size - side, (2,), generator=g))
            cls = 1 + (i + j) % 2
            images[i, :, y0:y0 + side, x0:x0 + side] = 0.0
            images[i, 0 if cls == 1 else 2, y0:y0 + side, x0:x0 + side] = 1.0
            boxes.append([x0, y0, x0 + side, y0 + side])
            labels.append(cls)
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float), "labels": torch.tensor(labels)})
    return (images - 0.5) / 0.25, targets


@pytest.mark.claim(paper=27, artefact="ssd_tiny",
                   claim="a small SSD overfits a few synthetic boxes on CPU: loss falls 10x and the best "
                         "detection of each image finds one of its boxes (IoU > 0.5, right class)")
def test_small_ssd_overfits_synthetic_boxes():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, targets = _shapes(4, 64, g)
    model = convzoo.create_model("ssd_tiny", num_classes=3).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(100):
        out = model.loss(model(x), targets)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < losses[0] / 10, losses[::10]
    model.eval()
    with torch.no_grad():
        dets = model.detect(model(x))
    for det, t in zip(dets, targets):
        iou = box_iou(det["boxes"][:1], t["boxes"])[0]
        assert iou.max() > 0.5 and det["labels"][0] == t["labels"][iou.argmax()], (det["boxes"][:1], t)


# --- other backbones (VoVNet paper 53, ECA-Net paper 43, ELA paper 10) ---------------------------------
# SSD300's heads (4, 6, 6, 6, 4, 4 boxes) on a backbone's stride-8/16/32 maps + SSD300's last three extras
BACKBONE_EXTRAS = SSD300_EXTRAS[1:]
RESNET50_FC = 2048 * 1000 + 1000  # torchvision resnet50's classifier, removed by FeatureTaps
# VoVNet V1 Table 1 (stage_ch, concat_ch, modules per stage; 5 layers per module); fact sheet params at
# 1000 classes (official V1 code / timm vovnet39a) to check the closed form first
V1 = {"vovnet27_slim": ((64, 80, 96, 112), (128, 256, 384, 512), (1, 1, 1, 1), 3_525_736),
      "vovnet39": ((128, 160, 192, 224), (256, 512, 768, 1024), (1, 1, 2, 2), 22_600_296)}
ECA50_K = (3, 5, 5, 7)  # released ECA-Net50 kernel sizes per stage (official eca_resnet.py; sheet G1a Paper 43)


def _ssd_additions(channels, num_classes=21):
    """Params of the extras (1x1 reduce + kxk, with biases) and of the 3x3 loc/conf heads on each source."""
    params, cin, sources = 0, channels[-1], list(channels)
    for reduce, out, k, _, _ in BACKBONE_EXTRAS:
        params += cin * reduce + reduce + k * k * reduce * out + out
        sources.append(out)
        cin = out
    for c, r in zip(sources, SSD300_RATIOS):
        boxes = 2 + 2 * len(r)
        params += (9 * c + 1) * boxes * (4 + num_classes)
    return params


def _v1_trunk_params(stage_ch, concat_ch, blocks, layers=5):
    """VoVNet V1 without classifier: conv weights (no bias) + BN weight and bias, layer by layer."""
    def cbr(k, cin, cout):
        return k * k * cin * cout + 2 * cout

    params, cin = cbr(3, 3, 64) + cbr(3, 64, 64) + cbr(3, 64, 128), 128
    for mid, out, n in zip(stage_ch, concat_ch, blocks):
        for _ in range(n):
            params += cbr(3, cin, mid) + (layers - 1) * cbr(3, mid, mid) + cbr(1, cin + layers * mid, out)
            cin = out
    return params


@pytest.mark.claim(paper=53, artefact="ssd_vovnet27_slim",
                   claim="params = closed form of V1 Table 1 trunk + SSD300 extras and heads (21 classes)")
@pytest.mark.claim(paper=53, artefact="ssd_vovnet39",
                   claim="params = closed form of V1 Table 1 trunk + SSD300 extras and heads (21 classes)")
@pytest.mark.parametrize("name", ["vovnet27_slim", "vovnet39"])
def test_backbone_ssd_params_vovnet(name):
    stage, concat, blocks, sheet = V1[name]
    trunk = _v1_trunk_params(stage, concat, blocks)
    assert trunk + concat[-1] * 1000 + 1000 == sheet  # the closed form reproduces the sheet's classifier count
    expected = trunk + _ssd_additions(concat[1:])
    with torch.device("meta"):
        model = convzoo.create_model(f"ssd_{name}")
    assert count_params(model) == expected == convzoo.get_card(f"ssd_{name}").params


@pytest.mark.claim(paper=43, artefact="ssd_eca_resnet50",
                   claim="params = torchvision resnet50 trunk + ECA k per block + SSD300 extras and heads")
@pytest.mark.parity
def test_backbone_ssd_params_eca():
    import torchvision

    with torch.device("meta"):
        trunk = count_params(torchvision.models.resnet50()) - RESNET50_FC
        model = convzoo.create_model("ssd_eca_resnet50")
    eca = sum(k * n for k, n in zip(ECA50_K, (3, 4, 6, 3)))  # one bias-free Conv1d(1, 1, k) per bottleneck
    expected = trunk + eca + _ssd_additions((512, 1024, 2048))
    assert count_params(model) == expected == convzoo.get_card("ssd_eca_resnet50").params


@pytest.mark.claim(paper=10, artefact="ssd_ela_resnet50",
                   claim="params = ELA-ResNet-50 card count without classifier + SSD300 extras and heads")
def test_backbone_ssd_params_ela():
    """The backbone count is the ela_resnet50 card's (proven against the paper in test_ela.py)."""
    expected = convzoo.get_card("ela_resnet50").params - RESNET50_FC + _ssd_additions((512, 1024, 2048))
    with torch.device("meta"):
        model = convzoo.create_model("ssd_ela_resnet50")
    assert count_params(model) == expected == convzoo.get_card("ssd_ela_resnet50").params


@pytest.mark.claim(paper=53, artefact="ssd_vovnet27_slim",
                   claim="forward, SSD loss and one SGD step on a small input; default boxes match the maps")
@pytest.mark.claim(paper=43, artefact="ssd_eca_resnet50",
                   claim="forward, SSD loss and one SGD step on a small input; default boxes match the maps")
@pytest.mark.claim(paper=10, artefact="ssd_ela_resnet50",
                   claim="forward, SSD loss and one SGD step on a small input; default boxes match the maps")
@pytest.mark.parametrize("name, side, maps", [
    ("ssd_vovnet27_slim", 288, [36, 18, 9, 5, 3, 1]),  # 3x3/2 stem convs, then ceil-mode 3x3/2 pools
    ("ssd_eca_resnet50", 260, [33, 17, 9, 5, 3, 1]),  # 7x7/2, 3x3/2 pool, stride-2 3x3 convs (pad 1)
    ("ssd_ela_resnet50", 260, [33, 17, 9, 5, 3, 1]),
])
def test_backbone_ssd_trains_a_step(name, side, maps):
    torch.manual_seed(0)
    model = convzoo.create_model(name, num_classes=3).train()
    assert convzoo.get_card(name).test_size == (side, side)
    x = torch.randn(1, 3, side, side)
    raw = model(x)
    priors = sum(m * m * a for m, a in zip(maps, (4, 6, 6, 6, 4, 4)))
    assert raw.shape == (1, priors, 4 + 3) and model.anchors((side, side)).shape == (priors, 4)
    target = [{"boxes": torch.tensor([[20.0, 30, 120, 160]]), "labels": torch.tensor([2])}]
    loss = model.loss(raw, target)["loss"]
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    opt.zero_grad()
    loss.backward()
    head = model.conf[0].weight
    before = head.detach().clone()
    opt.step()
    assert torch.isfinite(loss) and loss > 0 and not torch.equal(head, before)
