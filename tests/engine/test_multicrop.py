"""Multi-crop (10 / 12 / 144) and ensemble evaluation, paper 33 (Inception-v4, arXiv 1602.07261, Sec. 6).

The expected crop boxes are written out here from the protocol's definition (GoogLeNet arXiv 1409.4842
Sec. 10: 4 scales x 3 squares x (4 corners + centre + whole square) x 2 mirrors); the expected metrics of
``evaluate(..., crops=, ensemble=)`` are recomputed here by slicing and averaging softmax outputs by hand.
"""

import json

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from convzoo.cli import main
from convzoo.engine import evaluate, load_run, train
from convzoo.engine.multicrop import crop_set, crops_of, resized_size
from convzoo.errors import ConvzooError

pytestmark = pytest.mark.paper(33)


def _boxes(crops):
    return [(c.resized, c.box, c.flip) for c in crops]


@pytest.mark.claim(paper=33, artefact="multicrop",
                   claim="144 crops = 4 scales (256/288/320/352 for 224) x 3 squares x 6 crops x 2 mirrors; "
                         "boxes written out from GoogLeNet Sec. 10")
def test_144_crops_closed_form_boxes():
    crops = crop_set(320, 480, 224, 144)  # landscape 2:3
    assert len(crops) == 144 == 4 * 3 * 6 * 2 and len(set(_boxes(crops))) == 144
    assert [c.resized for c in crops[::36]] == [(256, 384), (288, 432), (320, 480), (352, 528)]
    # scale 256: squares at left 0, 64, 128 (= (384 - 256) / 2, 384 - 256); corners 0 / 32, centre 16
    first = [(c.box, c.flip) for c in crops[:36]]
    want = []
    for left in (0, 64, 128):
        for box in [(0, left, 224, 224), (0, left + 32, 224, 224), (32, left, 224, 224), (32, left + 32, 224, 224),
                    (16, left + 16, 224, 224), (0, left, 256, 256)]:
            want += [(box, False), (box, True)]
    assert first == want
    # scale 352 of a portrait image: squares top/centre/bottom of a 528 x 352 resize; corners 0 / 128
    port = crop_set(480, 320, 224, 144)[108:]
    assert {c.resized for c in port} == {(528, 352)}
    assert [c.box for c in port[::12]] == [(0, 0, 224, 224), (88, 0, 224, 224), (176, 0, 224, 224)]
    assert [c.box for c in port[12:24:2]] == [(88, 0, 224, 224), (88, 128, 224, 224), (216, 0, 224, 224),
                                               (216, 128, 224, 224), (152, 64, 224, 224), (88, 0, 352, 352)]


@pytest.mark.claim(paper=33, artefact="multicrop",
                   claim="12 crops = centre square at the first scale x 6 crops x 2 mirrors; 10 crops = 4 corners + "
                         "centre x 2 mirrors (boxes written out)")
def test_12_and_10_crops_closed_form_boxes():
    twelve = crop_set(320, 480, 224, 12)
    assert len(twelve) == 12 and {c.resized for c in twelve} == {(256, 384)}
    assert [c.box for c in twelve[::2]] == [(0, 64, 224, 224), (0, 96, 224, 224), (32, 64, 224, 224),
                                            (32, 96, 224, 224), (16, 80, 224, 224), (0, 64, 256, 256)]
    assert [c.flip for c in twelve] == [False, True] * 6
    ten = crop_set(320, 480, 224, 10)
    assert [c.box for c in ten[::2]] == [(0, 0, 224, 224), (0, 160, 224, 224), (32, 0, 224, 224),
                                         (32, 160, 224, 224), (16, 80, 224, 224)]
    assert {c.resized for c in ten} == {(256, 384)} and len(ten) == 10
    # other crop sizes scale the 256..352 shorter sides: round(299 * g / 224)
    assert sorted({c.resized[0] for c in crop_set(299, 299, 299, 144)}) == [342, 384, 427, 470]
    assert resized_size(300, 500, 256) == (256, 426)  # floor(500 * 256 / 300) = 426
    with pytest.raises(ConvzooError, match="crops must be one of 1, 10, 12, 144, got 5"):
        crop_set(8, 8, 8, 5)


@pytest.mark.claim(paper=33, artefact="multicrop", claim="crop pixels: slices of the resized image, mirrored")
def test_crop_pixels_are_slices_of_the_resized_image():
    img = torch.arange(2 * 3 * 256 * 384, dtype=torch.float32).reshape(2, 3, 256, 384)
    views = list(crops_of(img, 12, 224))  # scale 256 = this image's own size: no resampling but the squares'
    assert len(views) == 12 and all(v.shape == (2, 3, 224, 224) for v in views)
    torch.testing.assert_close(views[0], img[..., 0:224, 64:288], rtol=0, atol=0)  # top-left of centre square
    torch.testing.assert_close(views[1], img[..., 0:224, 64:288].flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(views[8], img[..., 16:240, 80:304], rtol=0, atol=0)  # centre
    square = TF.resize(img[..., :, 64:320], [224, 224], antialias=True)
    torch.testing.assert_close(views[10], square, rtol=0, atol=0)
    with pytest.raises(ConvzooError, match="image batches"):
        next(crops_of(torch.zeros(2, 1, 64), 12))


# --- evaluation through engine.evaluate and the CLI -----------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("mc")
    a = train(tiny.recipe(epochs=1), out_dir=out, run_name="a", progress=False)
    b = train(tiny.recipe(epochs=1, seed=1), out_dir=out, run_name="b", progress=False)
    return a, b


def _softmax_by_hand(models, test, boxes):
    """Mean softmax over models and the given crops, with crops cut by hand from the closed-form boxes."""
    x = torch.stack([test[i][0] for i in range(len(test))])
    total = 0
    for size, (t, left, h, w), flip in boxes:
        v = TF.resize(x, list(size), antialias=True) if size != tuple(x.shape[-2:]) else x
        v = v[..., t:t + h, left:left + w]
        v = TF.resize(v, [8, 8], antialias=True) if (h, w) != (8, 8) else v
        v = v.flip(-1) if flip else v
        with torch.no_grad():
            total = total + sum(F.softmax(m(v), -1) for m in models)
    return total / (len(boxes) * len(models)), torch.tensor([test[i][1] for i in range(len(test))])


@pytest.mark.claim(paper=33, artefact="multicrop",
                   claim="eval --crops 12 / 144 averages the softmax over the crop set (recomputed by hand)")
def test_evaluate_crops_matches_hand_computation(tiny, runs):
    a, _ = runs
    assert evaluate(a.run_dir, crops=1) == pytest.approx(a.metrics, abs=1e-6)  # the single crop is unchanged
    model = load_run(a.run_dir)[0]
    test = tiny.TinyBlobs("test")
    # 8 x 8 images, crop 8: shorter sides round(8 * (256, 288, 320, 352) / 224) = 9, 10, 11, 13
    s = 9
    boxes = [((s, s), (t, left, 8, 8), f) for t, left in ((0, 0), (0, 1), (1, 0), (1, 1), (0, 0))
             for f in (False, True)]
    boxes += [((s, s), (0, 0, 9, 9), f) for f in (False, True)]
    p, y = _softmax_by_hand([model], test, boxes)
    got = evaluate(a.run_dir, crops=12)
    assert got["acc"] == pytest.approx(float((p.argmax(1) == y).float().mean()), abs=1e-6)
    assert got["loss"] == pytest.approx(float(F.nll_loss(p.log(), y)), rel=1e-5)
    assert got["acc"] != pytest.approx(a.metrics["acc"]) or got["loss"] != pytest.approx(a.metrics["loss"])
    many = evaluate(a.run_dir, crops=144)
    boxes144 = [(c.resized, c.box, c.flip) for c in crop_set(8, 8, 8, 144)]
    assert {b[0] for b in boxes144} == {(9, 9), (10, 10), (11, 11), (13, 13)}
    p, y = _softmax_by_hand([model], test, boxes144)
    assert many["loss"] == pytest.approx(float(F.nll_loss(p.log(), y)), rel=1e-5)
    assert many["acc"] == pytest.approx(float((p.argmax(1) == y).float().mean()), abs=1e-6)


@pytest.mark.claim(paper=33, artefact="ensemble_eval",
                   claim="eval --ensemble averages the softmax of several runs (recomputed by hand)")
def test_evaluate_ensemble_matches_hand_computation(tiny, runs):
    a, b = runs
    test = tiny.TinyBlobs("test")
    models = [load_run(r.run_dir)[0] for r in (a, b)]
    p, y = _softmax_by_hand(models, test, [((8, 8), (0, 0, 8, 8), False)])
    got = evaluate(a.run_dir, ensemble=[b.run_dir])
    assert got["acc"] == pytest.approx(float((p.argmax(1) == y).float().mean()), abs=1e-6)
    assert got["loss"] == pytest.approx(float(F.nll_loss(p.log(), y)), rel=1e-5)
    alone = evaluate(a.run_dir, ensemble=[a.run_dir])  # an ensemble of one model with itself is that model
    assert alone == pytest.approx(a.metrics, abs=1e-5)


@pytest.mark.claim(paper=33, artefact="ensemble_eval",
                   claim="eval --ensemble averages the softmax of several runs (recomputed by hand)")
def test_cli_eval_crops_and_ensemble(tiny, runs, capsys):
    a, b = runs
    main(["eval", str(a.run_dir), "--crops", "12", "--ensemble", str(b.run_dir), "--json"])
    got = json.loads(capsys.readouterr().out)
    assert got == pytest.approx(evaluate(a.run_dir, crops=12, ensemble=[b.run_dir]), abs=1e-6)
    with pytest.raises(SystemExit):
        main(["eval", str(a.run_dir), "--crops", "7"])
