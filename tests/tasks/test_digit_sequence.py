"""Paper 47, multi-digit number recognition (arXiv 1312.6082): the sequence model, its data and recipes.

The exact decoder against brute force over every sequence, the loss against its definition (digits past
the length change neither the loss nor any gradient), coverage at 98 % accuracy against a threshold scan,
the metrics on a hand-made batch, SVHN format 1 (digitStruct.mat written here in MATLAB v7.3 / HDF5
layout with h5py) and format 2 (.mat with scipy) readers with the paper's preprocessing, the 'numbers'
set (fixed splits of real digits and photos), the paper recipe's values, a short learning run of the
CPU-scale recipe and ``convzoo predict`` on an image of a number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixture_svhn import write_digit_struct
from PIL import Image

import convzoo
from convzoo.data import build_dataset
from convzoo.data.opencv_digits import opencv_digits_split
from convzoo.data.photos import SPLIT_PHOTOS
from convzoo.data.svhn import center_crop, encode_target, number_box, read_cropped_digits, read_digit_struct
from convzoo.engine import load_recipe
from convzoo.tasks import build_task
from convzoo.tasks.multidigit import SequenceMetrics, coverage_at_accuracy, decode, sequence_nll

pytestmark = pytest.mark.paper(47)


def _targets(numbers: list[list[int]]) -> torch.Tensor:
    return torch.stack([encode_target(n) for n in numbers])


# --- decoder -------------------------------------------------------------------------------------------
def _brute_force(out: torch.Tensor, d: int) -> tuple[int, list[int], float]:
    """Every sequence S = (L, s_1..s_min(L,5)), L in 0..6, digits in 0..9: the most probable one."""
    lp_len = out[:7].log_softmax(-1)
    lp = out[7:].view(5, d).log_softmax(-1)
    best = (-math.inf, None, None)
    for length in range(7):
        n = min(length, 5)
        seqs = torch.cartesian_prod(*[torch.arange(10)] * n).reshape(-1, n) if n else torch.zeros(1, 0, dtype=torch.long)
        scores = lp_len[length] + lp[torch.arange(n), seqs].sum(-1) if n else lp_len[length].reshape(1)
        v, i = scores.max(0)
        if float(v) > best[0]:
            best = (float(v), length, seqs[i].tolist())
    return best[1], best[2], best[0]


@pytest.mark.claim(paper=47, artefact="sequence_decoding",
                   claim="the decoder equals brute-force argmax over every sequence (L 0..5 and >5, 10^L digit strings)")
@pytest.mark.parametrize("d", [10, 11])
def test_decoder_equals_brute_force(d):
    g = torch.Generator().manual_seed(d)
    out = torch.randn(4, 7 + 5 * d, generator=g) * 3
    out[1, :7] = torch.tensor([0, 0, 0, 0, 0, 9.0, 0])  # a confident 5-digit number
    out[2, :7] = torch.tensor([0, 0, 0, 0, 0, 0, 9.0])  # "more than 5": the first five digits are read
    lengths, digits, logp = decode(out)
    for b in range(4):
        length, seq, value = _brute_force(out[b], d)
        assert int(lengths[b]) == length and digits[b, :min(length, 5)].tolist() == seq
        assert (digits[b, min(length, 5):] == -1).all()
        assert float(logp[b]) == pytest.approx(value, abs=1e-5)


# --- loss ------------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=47, artefact="sequence_likelihood_loss",
                   claim="-log P(S|X) = CE(length) + sum_{i<=L} CE(digit i); digits past L change neither loss nor gradient")
def test_loss_definition_and_masked_digits():
    g = torch.Generator().manual_seed(0)
    numbers = [[3], [1, 2, 3, 4, 5], [], [9, 9], [1, 2, 3, 4, 5, 6, 7]]
    y = _targets(numbers)
    out = torch.randn(len(numbers), 57, generator=g, requires_grad=True)
    loss = sequence_nll(out, y)["loss"]
    want = []
    for b, n in enumerate(numbers):
        v = F.cross_entropy(out[b, :7], y[b, 0])
        for i, s in enumerate(n[:5]):
            v = v + F.cross_entropy(out[b, 7 + 10 * i:17 + 10 * i], torch.tensor(s))
        want.append(v)
    torch.testing.assert_close(loss, torch.stack(want).mean())
    loss.backward()
    grad = out.grad.clone()
    for b, n in enumerate(numbers):  # no gradient reaches the heads past the length
        assert (grad[b, 7 + 10 * min(len(n), 5):] == 0).all()
        assert (grad[b, 7:7 + 10 * min(len(n), 5)] != 0).any() or not n
    other = out.detach().clone()
    for b, n in enumerate(numbers):
        other[b, 7 + 10 * min(len(n), 5):] = torch.randn(57 - 7 - 10 * min(len(n), 5), generator=g) * 50
    other.requires_grad_(True)
    loss2 = sequence_nll(other, y)["loss"]
    loss2.backward()
    assert float(loss2.detach()) == pytest.approx(float(loss.detach()), abs=1e-6)
    torch.testing.assert_close(other.grad, grad)


def test_port_loss_scores_no_digit_class():
    """``score_absent``: potterhsu's train.py _loss, the sum of six batch-mean cross-entropies, class 10 past L."""
    g = torch.Generator().manual_seed(1)
    y = _targets([[1, 2], [7], [0, 1, 2, 3, 4]])
    out = torch.randn(3, 62, generator=g)
    digits = torch.where(y[:, 1:] >= 0, y[:, 1:], torch.full_like(y[:, 1:], 10))
    want = F.cross_entropy(out[:, :7], y[:, 0]) + sum(F.cross_entropy(out[:, 7 + 11 * i:18 + 11 * i], digits[:, i])
                                                    for i in range(5))
    torch.testing.assert_close(sequence_nll(out, y, score_absent=True)["loss"], want)


# --- coverage and metrics -------------------------------------------------------------------------------
def _coverage_scan(conf, ok, acc):
    best = 0.0
    for t in sorted(set(conf)):
        kept = [o for c, o in zip(conf, ok) if c >= t]
        if kept and sum(kept) / len(kept) >= acc:
            best = max(best, len(kept) / len(conf))
    return best


@pytest.mark.claim(paper=47, artefact="coverage_at_accuracy",
                   claim="coverage at 98% accuracy equals a scan over every confidence threshold")
def test_coverage_equals_threshold_scan():
    assert coverage_at_accuracy([0.9, 0.8, 0.7, 0.6], [1, 1, 0, 1], 0.98) == 0.5
    assert coverage_at_accuracy([0.5, 0.5, 0.4], [1, 0, 1], 0.98) == 0.0  # ties are kept together
    assert coverage_at_accuracy([0.3], [1], 0.98) == 1.0
    rng = np.random.default_rng(0)
    for _ in range(20):
        conf = rng.integers(0, 30, 200).astype(float).tolist()
        ok = (rng.random(200) < 0.5 + np.asarray(conf) / 60).astype(int).tolist()
        for acc in (0.98, 0.9, 0.75):
            assert coverage_at_accuracy(conf, ok, acc) == pytest.approx(_coverage_scan(conf, ok, acc))


@pytest.mark.claim(paper=47, artefact="digit_sequence",
                   claim="sequence, per-digit and length accuracy and coverage of hand-made numbers equal hand-computed values")
def test_metrics_on_a_hand_made_batch():
    """Three numbers read from one-hot-like logits: right; one digit wrong; length wrong."""
    y = _targets([[1, 2, 3], [4, 5], [6]])
    out = torch.zeros(3, 57)
    for b, (length, ds, v) in enumerate([(3, [1, 2, 3], 12.0), (2, [4, 0], 5.0), (2, [6, 7], 5.0)]):
        out[b, length] = v  # the right number is the most confident one
        for i, s in enumerate(ds):
            out[b, 7 + 10 * i + s] = v
    m = SequenceMetrics()
    m.update(out, y)
    r = m.compute()
    assert float(r["seq_acc"]) == pytest.approx(1 / 3) and float(r["length_acc"]) == pytest.approx(2 / 3)
    assert float(r["digit_acc"]) == pytest.approx(5 / 6)  # 6 true digits, the 5 of item 2 read as 0
    assert float(r["coverage"]) == pytest.approx(1 / 3)


# --- SVHN formats ---------------------------------------------------------------------------------------
def _svhn_folder(root):
    """train/ (4 images) and test/ (2) with digitStruct.mat; label 10 = digit 0; one 6-digit number."""
    rng = np.random.default_rng(0)
    recs = {"train": [("1.png", [(10, 5, 8, 16, 1), (19, 6, 9, 15, 10)]), ("2.png", [(4, 4, 10, 20, 7)]),
                      ("3.png", [(3, 3, 5, 10, d) for d in (1, 2, 3, 4, 5, 6)]), ("4.png", [(30, 2, 6, 12, 9)])],
            "test": [("1.png", [(12, 8, 7, 14, 2), (20, 8, 7, 14, 3), (28, 8, 7, 14, 10)]), ("2.png", [(2, 2, 9, 9, 5)])]}
    for split, items in recs.items():
        (root / split).mkdir(parents=True)
        for name, _ in items:
            Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(root / split / name)
        write_digit_struct(root / split / "digitStruct.mat", items)
    return recs


@pytest.mark.claim(paper=47, artefact="svhn_multidigit",
                   claim="SVHN format 1 (digitStruct.mat, HDF5) and format 2 (.mat) read; box + 30%, 64x64, random 54 / centre crops")
def test_svhn_format1_and_preprocessing(tmp_path):
    _svhn_folder(tmp_path)
    got = read_digit_struct(tmp_path / "train" / "digitStruct.mat")
    assert [r["name"] for r in got] == ["1.png", "2.png", "3.png", "4.png"]
    assert got[0]["digits"] == [1, 0] and got[0]["boxes"] == [(10, 5, 8, 16), (19, 6, 9, 15)]
    assert got[2]["digits"] == [1, 2, 3, 4, 5, 6] and got[1]["boxes"] == [(4, 4, 10, 20)]
    # the paper's box: tight rectangle (10..28, 5..21) expanded 30 % in x and y about its centre
    x0, y0, x1, y1 = number_box(got[0]["boxes"])
    assert (x0, y0, x1, y1) == pytest.approx((19 - 0.65 * 18, 13 - 0.65 * 16, 19 + 0.65 * 18, 13 + 0.65 * 16))
    assert number_box([(0, 0, 10, 4)], square=True) == pytest.approx((-1.5, -4.5, 11.5, 8.5))
    test = build_dataset("svhn_multidigit", "test", root=tmp_path)
    assert len(test) == 2 and test.info.task == "digit_sequence" and test.info.input_size == (54, 54)
    assert test.targets[0].tolist() == [3, 2, 3, 0, -1, -1]
    x, _ = test[0]
    assert x.shape == (3, 54, 54) and abs(float(x.mean())) < 1e-5  # per-image mean subtracted
    full = test.image(0)
    assert full.shape == (3, 64, 64) and full.dtype == torch.uint8
    torch.testing.assert_close(x + (center_crop(full, 54).float() / 255).mean(), center_crop(full, 54).float() / 255)
    train = build_dataset("svhn_multidigit", "train", root=tmp_path, val_size=1)
    val = build_dataset("svhn_multidigit", "val", root=tmp_path, val_size=1)
    assert len(train) == 3 and len(val) == 1
    assert sorted(t[0] for t in torch.cat([train.targets, val.targets]).tolist()) == [1, 1, 2, 6]  # 6 = "more than 5"
    torch.manual_seed(0)
    crops = {tuple(train[0][0][0, :2, :2].flatten().tolist()) for _ in range(6)}
    assert len(crops) > 1  # random 54 x 54 positions in training


def test_svhn_format2_and_missing_files(tmp_path):
    from scipy.io import savemat

    x = np.random.default_rng(0).integers(0, 255, (32, 32, 3, 5), dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": np.array([[10], [1], [2], [3], [10]], dtype=np.uint8)})
    images, labels = read_cropped_digits(tmp_path / "test_32x32.mat")
    assert images.shape == (5, 3, 32, 32) and labels.tolist() == [0, 1, 2, 3, 0]
    assert torch.equal(images[2], torch.from_numpy(x[..., 2]).permute(2, 0, 1))
    with pytest.raises(convzoo.errors.ConvzooError, match="ufldl") as e:
        read_digit_struct(tmp_path / "train" / "digitStruct.mat")
    assert "\n" not in str(e.value)
    with pytest.raises(convzoo.errors.ConvzooError, match="numbers"):
        build_dataset("svhn_multidigit", "test")


# --- the numbers set ------------------------------------------------------------------------------------
@pytest.mark.claim(paper=47, artefact="numbers",
                   claim="fixed seeded splits of real digits (opencv_digits split) on real photos (SPLIT_PHOTOS), 1-5 digits")
def test_numbers_are_fixed_and_held_out():
    a = build_dataset("numbers", "test", num_images=40)
    b = build_dataset("numbers", "test", num_images=40)
    assert torch.equal(a.images, b.images) and torch.equal(a.targets, b.targets)
    assert a.info.task == "digit_sequence" and a.images.shape == (40, 3, 40, 40) and a[0][0].shape == (3, 36, 36)
    assert set(a.targets[:, 0].tolist()) == {1, 2, 3, 4, 5}
    assert ((a.targets[:, 1:] >= 0).sum(1) == a.targets[:, 0]).all()
    split = opencv_digits_split()
    assert not set(split["train"]) & set(split["test"]) and not set(SPLIT_PHOTOS["train"]) & set(SPLIT_PHOTOS["test"])
    train = build_dataset("numbers", "train", num_images=8)
    train.set_epoch(0)
    torch.manual_seed(0)
    x0, _ = train[3]
    train.set_epoch(1)
    x1, _ = train[3]
    train.set_epoch(0)
    torch.manual_seed(0)
    assert torch.equal(train[3][0], x0) and not torch.equal(x0, x1)  # fresh numbers per epoch, reproducible


def test_numbers_train_pool_is_fixed_and_cached(tmp_path, monkeypatch):
    """``pool``: a fixed set of train numbers (epoch 0 of the fresh draws), rendered once and read back from
    the data cache; ``square``: the port's square box keeps the digits' aspect (a wider box than the paper's)."""
    from convzoo.data.fetch import data_home

    root = data_home("opencv_digits")  # the digits stay where they were fetched; the pool goes to tmp_path
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path))
    a = build_dataset("numbers", "train", root, pool=6)
    items = [a[i] for i in range(6)]  # rendered when first asked for; the cache is written after the last
    assert len(list((tmp_path / "numbers").glob("train_pool_*.npz"))) == 1
    assert all(x.shape == (3, 36, 36) for x, _ in items)
    b = build_dataset("numbers", "train", root, pool=6)  # from the cache
    assert torch.equal(a.images.images, b.images.images) and torch.equal(a.targets, b.targets) and len(a) == 6
    fresh = build_dataset("numbers", "train", root, num_images=6)
    crop, target = fresh.images.draw(4, epoch=0)
    assert torch.equal(a.image(4), crop) and torch.equal(a.targets[4], target)
    assert ((a.targets[:, 1:] >= 0).sum(1) == a.targets[:, 0]).all()
    sq = build_dataset("numbers", "test", root, num_images=4, square=True)
    assert torch.equal(sq.targets, build_dataset("numbers", "test", root, num_images=4).targets)
    with pytest.raises(convzoo.errors.ConvzooError, match="pool"):
        build_dataset("numbers", "train", root, pool=0)
    # a larger pool starts from the cached smaller one: its first 6 items are read, not rendered again
    bigger = build_dataset("numbers", "train", root, pool=8)
    assert bigger.images.missing == 2 and torch.equal(bigger.images.images[:6], a.images.images)
    assert [torch.equal(bigger.images.get(i)[0], fresh.images.draw(i, epoch=0)[0]) for i in (6, 7)] == [True, True]
    assert bigger.images.missing == 0 and (tmp_path / "numbers" / "train_pool_n8_r40_s0_l5.npz").is_file()


def test_numbers_warp_changes_only_the_train_digits(tmp_path, monkeypatch):
    """``warp``: each train digit under its own affine map, drawn after everything else, so the numbers
    (lengths, digits, sizes, places, photos) are those of ``warp=0``; val and test are never warped; the
    pool of warped numbers is cached under its own name."""
    from convzoo.data.fetch import data_home
    from convzoo.data.numbers import warp_digit

    root = data_home("opencv_digits")
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path))
    plain = build_dataset("numbers", "train", root, num_images=6)
    warped = build_dataset("numbers", "train", root, num_images=6, warp=1.0)
    for i in range(6):
        (x0, t0), (x1, t1) = plain.images.draw(i, epoch=0), warped.images.draw(i, epoch=0)
        assert torch.equal(t0, t1) and x0.shape == x1.shape and not torch.equal(x0, x1)
        assert torch.equal(warped.images.draw(i, epoch=0)[0], x1)  # reproducible
    test = build_dataset("numbers", "test", root, num_images=4, warp=1.0)
    assert torch.equal(test.images, build_dataset("numbers", "test", root, num_images=4).images)
    for kwargs in ({"warp": 0.5}, {}):  # each pool is written once all its numbers are rendered
        pooled = build_dataset("numbers", "train", root, pool=2, **kwargs)
        [pooled[i] for i in range(2)]
    assert sorted(p.name for p in (tmp_path / "numbers").glob("*.npz")) == [
        "train_pool_n2_r40_s0_l5.npz", "train_pool_n2_r40_s0_l5_w0.5.npz"]
    # the map itself: zero draws are the identity; a quarter turn of the range keeps the ink's mass
    ink = torch.zeros(20, 20)
    ink[4:16, 9:11] = 1.0  # a vertical stroke
    assert torch.allclose(warp_digit(ink, np.zeros(3), 1.0), ink, atol=1e-6)
    turned = warp_digit(ink, np.array([1.0, 0.0, 0.0]), 1.0)  # 15 degrees
    assert abs(float(turned.sum()) - float(ink.sum())) < 0.05 * float(ink.sum()) and not torch.allclose(turned, ink)
    with pytest.raises(convzoo.errors.ConvzooError, match="warp"):
        build_dataset("numbers", "train", root, warp=2.0)


# --- recipes --------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=47, artefact="multidigit_svhn_paper",
                   claim="the paper's settings: multidigit_net, SVHN train+extra, box +30%, 64 -> 54 crops; potterhsu README SGD")
def test_paper_recipe_values():
    cfg = load_recipe("multidigit_svhn_paper")
    assert cfg["model"]["name"] == "multidigit_net" and cfg["task"]["name"] == "digit_sequence"
    kw = cfg["data"]["kwargs"]
    assert cfg["data"]["name"] == "svhn_multidigit" and kw["extra"] is True
    assert (kw["expand"], kw["resize"], kw["crop"]) == (0.3, 64, 54)  # paper Sec. 5.1
    # potterhsu/SVHNClassifier-PyTorch README (the paper gives no optimizer settings): batch 512, lr 0.16,
    # decay 0.9 every 625 steps, 54k steps; train.py: SGD momentum 0.9, weight decay 5e-4
    opt = cfg["optimizer"]
    assert (opt["name"], opt["lr"], opt["weight_decay"], opt["kwargs"]["momentum"]) == ("sgd", 0.16, 5e-4, 0.9)
    assert cfg["batch_size"] == 512
    steps_per_epoch = math.ceil((33_402 + 202_353 - 5_000) / 512)  # SVHN train + extra less the held-out 5,000
    assert steps_per_epoch == 451 and round(54_000 / steps_per_epoch) == cfg["epochs"]
    assert cfg["schedule"]["kwargs"]["gamma"] == pytest.approx(0.9 ** (steps_per_epoch / 625), abs=1e-5)


@pytest.mark.slow
@pytest.mark.claim(paper=47, artefact="multidigit_numbers",
                   claim="the CPU-scale recipe's model, data and loss learn: 40 Adam steps on real-digit numbers lower the loss")
def test_numbers_recipe_learns():
    from convzoo.engine.build import build_data, build_method, build_task_for

    cfg = load_recipe("multidigit_numbers", values={"data.kwargs.num_images": 64})
    data = build_data(cfg, "train")
    task = build_task_for(cfg, data.info)
    torch.manual_seed(0)
    method = build_method(cfg, data.info, task).train()
    batch = task.collate([data[i] for i in range(64)])
    assert cfg["optimizer"]["name"] == "adam"
    opt = torch.optim.Adam(method.parameters(), lr=cfg["optimizer"]["lr"])  # the recipe's lr
    losses = []
    for _ in range(40):
        loss = method(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0], losses[::5]


@pytest.mark.claim(paper=47, artefact="digit_sequence", claim="predict on an image of a number prints the number")
def test_predict_prints_the_number(tmp_path):
    """``convzoo predict`` on an image of a number: read_input gives the evaluation crop of the set and the
    printed line is the decoded number."""
    from convzoo.predict import Loaded, predict

    ds = build_dataset("numbers", "test", num_images=2)
    png = tmp_path / "number.png"
    Image.fromarray(ds.image(0).permute(1, 2, 0).numpy()).save(png)
    task = build_task("digit_sequence")
    card = convzoo.get_card("multidigit_small")
    x = task.read_input(png, card, ds.info)
    torch.testing.assert_close(x[0], ds[0][0])
    torch.manual_seed(0)
    model = convzoo.create_model("multidigit_small").eval()
    loaded = Loaded(model, card, task, ds.info, None, True, None, "test")
    (pred,) = list(predict(loaded, [png], tmp_path))
    line = task.format_prediction(pred)
    _, digits, logp = decode(model(x))
    want = "".join(str(d) for d in digits[0].tolist() if d >= 0) or "(no digits)"
    assert line.startswith(f"{png}: {want}") and f"P = {math.exp(float(logp[0])):.3f}" in line
