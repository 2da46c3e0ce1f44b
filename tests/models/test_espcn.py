"""Paper 41 (ESPCN): sub-pixel convolution identities, the model's counts and shapes, the SR task's
metrics, and the shipped weights beating bicubic on held-out photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.data import build_dataset
from convzoo.data.photos import bicubic_upscale
from convzoo.layers.subpixel import SubPixelConv2d, equivalent_conv_transpose
from convzoo.registry import count_params
from convzoo.tasks import build_task
from convzoo.tasks.super_resolution import evaluate_pairs, upscale_image
from convzoo.weights import bundled_path

pytestmark = pytest.mark.paper(41)

PARAMS = {"espcn_x2": (2, 21_284), "espcn_x3": (3, 22_729), "espcn_x4": (4, 24_752)}


# --- the layer (Sec. 2.2, Eq. 4) -------------------------------------------------------------------
@pytest.mark.claim(paper=41, artefact="SubPixelConv2d",
                   claim="sub-pixel conv equals a stride-r transposed conv with rearranged weights (1e-6)")
@pytest.mark.parametrize("scale,k", [(2, 3), (3, 3), (4, 3), (3, 5), (2, 1)])
def test_subpixel_equals_strided_transposed_conv(scale, k):
    """PS(conv_{r^2 C}(x)) equals a stride-r transposed conv with the rearranged (r k)-wide kernel."""
    torch.manual_seed(scale * 10 + k)
    layer = SubPixelConv2d(5, 2, scale, k).double()
    x = torch.randn(2, 5, 7, 9, dtype=torch.double)
    deconv = equivalent_conv_transpose(layer)
    assert deconv.kernel_size == (scale * k, scale * k) and deconv.stride == (scale, scale)
    bias_map = F.pixel_shuffle(layer.conv.bias.view(1, -1, 1, 1).expand(1, -1, 7, 9), scale)  # periodic bias
    torch.testing.assert_close(layer(x), deconv(x) + bias_map, atol=1e-6, rtol=0)


@pytest.mark.claim(paper=41, artefact="SubPixelConv2d",
                   claim="sub-pixel conv equals a stride-r transposed conv with rearranged weights (1e-6)")
def test_subpixel_transposed_weights_built_independently():
    """The same identity with the transposed kernel written out loop by loop (not via the helper)."""
    torch.manual_seed(0)
    r, k, p, cin, c = 3, 3, 1, 2, 1
    layer = SubPixelConv2d(cin, c, r, k, bias=False).double()
    w = layer.conv.weight
    wt = torch.zeros(cin, c, r * k, r * k, dtype=torch.double)
    for i in range(r):
        for j in range(r):
            for u in range(k):
                for v in range(k):
                    wt[:, 0, r * (k - 1 - u) + i, r * (k - 1 - v) + j] = w[i * r + j, :, u, v]
    x = torch.randn(1, cin, 6, 5, dtype=torch.double)
    ref = F.conv_transpose2d(x, wt, stride=r, padding=r * p)
    torch.testing.assert_close(layer(x), ref, atol=1e-6, rtol=0)


@pytest.mark.claim(paper=41, artefact="SubPixelConv2d", claim="PixelUnshuffle inverts PixelShuffle")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pixel_unshuffle_inverts_shuffle(scale):
    x = torch.randn(2, 3 * scale**2, 5, 6)
    assert torch.equal(F.pixel_unshuffle(F.pixel_shuffle(x, scale), scale), x)
    y = torch.randn(2, 3, 5 * scale, 6 * scale)
    assert torch.equal(F.pixel_shuffle(F.pixel_unshuffle(y, scale), scale), y)


def test_icnr_starts_as_nearest_upsampling():
    """ICNR (later work, optional): every r x r output block is constant at initialisation."""
    layer = SubPixelConv2d(4, 2, 3, 3, icnr=True)
    y = layer(torch.randn(1, 4, 5, 5))
    blocks = y.unfold(2, 3, 3).unfold(3, 3, 3)  # (1, 2, 5, 5, 3, 3)
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks))
    assert not torch.allclose(SubPixelConv2d(4, 2, 3, 3)(torch.randn(1, 4, 5, 5)).unfold(2, 3, 3).std(-1),
                              torch.zeros(1))


# --- the model (Sec. 3.1) --------------------------------------------------------------------------
@pytest.mark.claim(paper=41, artefact="espcn_x2",
                   claim="parameter count and MACs of the paper's 3-layer tanh net")
@pytest.mark.claim(paper=41, artefact="espcn_x3",
                   claim="parameter count and MACs of the paper's 3-layer tanh net")
@pytest.mark.claim(paper=41, artefact="espcn_x4",
                   claim="parameter count and MACs of the paper's 3-layer tanh net")
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_espcn_params_and_shape(name):
    scale, params = PARAMS[name]
    model = convzoo.create_model(name)
    assert model.scale == scale and count_params(model) == params == convzoo.get_card(name).params
    assert model(torch.randn(1, 1, 11, 13)).shape == (1, 1, 11 * scale, 13 * scale)
    assert isinstance(model.act1, torch.nn.Tanh)  # the paper's choice over ReLU
    # MACs per LR pixel, Sec. 2.2: (25*64 + 9*64*32 + 9*32*r^2) * h * w
    card = convzoo.get_card(name)
    h, w = card.input_size
    assert card.macs == (25 * 64 + 9 * 64 * 32 + 9 * 32 * scale**2) * h * w
    assert (h * scale, w * scale) == (1080, 1920)


def test_espcn_receptive_field_is_9_lr_pixels():
    """5 + 2 + 2 = 9 LR pixels: an impulse moves only the HR pixels of LR pixels within 4 of it."""
    model = convzoo.create_model("espcn_x3").eval()
    x = torch.rand(1, 1, 21, 21)
    x2 = x.clone()
    x2[0, 0, 10, 10] += 1
    with torch.no_grad():
        changed = (model(x2) - model(x)).abs()[0, 0].amax(1) > 0  # per HR row
    rows = changed.nonzero().flatten()
    assert rows.min() == 3 * (10 - 4) and rows.max() == 3 * (10 + 4) + 2


# --- the task: loss and metrics --------------------------------------------------------------------
def _psnr_by_hand(pred, hr, b):
    pred = pred.clamp(0, 1)[..., b:-b, b:-b].double()
    hr = hr[..., b:-b, b:-b].double()
    return float(10 * torch.log10(1.0 / ((pred - hr) ** 2).mean()))


@pytest.mark.claim(paper=41, artefact="super_resolution",
                   claim="PSNR on Y with an r-pixel border crop, averaged per image")
def test_psnr_crops_border_and_averages_per_image():
    from types import SimpleNamespace

    scale = 3
    ds = SimpleNamespace(info=SimpleNamespace(extra={"scale": scale}))
    g = torch.Generator().manual_seed(0)
    task = build_task("super_resolution")
    metrics = task.metrics(ds)
    hand, hand_bic, sq_err, n_px = [], [], 0.0, 0
    for (h, w), noise in (((10, 12), 0.02), ((9, 15), 0.1)):  # different errors: mean of PSNRs != pooled
        lr, hr = torch.rand(1, 1, h, w, generator=g), torch.rand(1, 1, h * scale, w * scale, generator=g)
        sr = hr + noise * torch.randn(hr.shape, generator=g)
        sr[..., :scale, :] = 5.0  # garbage inside the border must not count
        bic = bicubic_upscale(lr, scale)
        targets = {"hr": hr, "bicubic": bic}
        assert task.loss(sr, targets) == F.mse_loss(sr, hr)
        task.update_metrics(metrics, sr, targets)
        hand.append(_psnr_by_hand(sr, hr, scale))
        hand_bic.append(_psnr_by_hand(bic, hr, scale))
        d = (sr.clamp(0, 1) - hr)[..., scale:-scale, scale:-scale]
        sq_err, n_px = sq_err + float(d.pow(2).sum()), n_px + d.numel()
    out = metrics.compute()
    assert abs(float(out["psnr"]) - np.mean(hand)) < 1e-4  # mean over images ...
    assert abs(float(out["psnr"]) - 10 * np.log10(n_px / sq_err)) > 0.5  # ... not the pooled MSE
    assert abs(float(out["psnr_bicubic"]) - np.mean(hand_bic)) < 1e-4
    no_crop = build_task("super_resolution", border=0)
    m0 = no_crop.metrics(ds)
    no_crop.update_metrics(m0, sr, targets)
    assert float(m0["psnr"].compute()) < 15  # the garbage rows count without the crop


def test_task_trains_on_hr_and_evaluates_against_hr_and_bicubic():
    model = convzoo.create_model("espcn_x2")
    lr, hr = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 16, 16)
    task = build_task("super_resolution")
    sr, targets = task.forward(model, (lr, hr))  # training: no bicubic computed on every step
    assert sr.shape == hr.shape and targets is hr
    sr, targets = task.evaluation_forward(model, (lr, hr))
    assert torch.equal(targets["hr"], hr)
    torch.testing.assert_close(targets["bicubic"], bicubic_upscale(lr, 2))
    assert task.loss(sr, targets) == task.loss(sr, hr)
    assert task.monitor == "psnr" and task.monitor_mode == "max"


class _BicubicY(torch.nn.Module):
    """A stand-in 'network' that upscales Y bicubically: the pipeline must then equal RGB bicubic."""

    scale, in_chans = 2, 1

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return bicubic_upscale(x, self.scale) + self.dummy


@pytest.mark.claim(paper=41, artefact="super_resolution",
                   claim="ESPCN on Y, bicubic on CbCr for colour photos")
def test_upscale_image_y_network_bicubic_chroma():
    """RGB photo -> Y through the network, Cb/Cr bicubic (Sec. 3.1); a grey photo stays grey."""
    rgb = (np.random.default_rng(0).random((12, 10, 3)) * 155 + 50).astype(np.uint8)
    out = upscale_image(_BicubicY(), rgb)
    assert out.shape == (24, 20, 3) and out.dtype == np.uint8
    ref = bicubic_upscale(torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255, 2).clamp(0, 1)
    got = torch.from_numpy(out).permute(2, 0, 1).float()[None] / 255
    assert (got - ref).abs().max() < 3 / 255  # the colour transform is linear: equal up to rounding
    model = convzoo.create_model("espcn_x2")
    grey = rgb[..., 0]
    up = upscale_image(model, grey)
    assert up.shape == (24, 20)
    assert np.array_equal(up, upscale_image(model, np.repeat(grey[..., None], 3, -1))[..., 0])
    preds = build_task("super_resolution").predict(model, torch.from_numpy(rgb).permute(2, 0, 1)[None])
    assert np.array_equal(preds[0]["image"], upscale_image(model, rgb)) and preds[0]["scale"] == 2


@pytest.mark.claim(paper=41, artefact="super_resolution",
                   claim="per-photo table and before/bicubic/after picture")
def test_pictures_and_report(tmp_path):
    model = convzoo.create_model("espcn_x3")
    ds = build_dataset("photos", "val", scale=3)
    ds.pairs, ds.names = ds.pairs[1:], ds.names[1:]  # the two small photos, to keep it quick
    task = build_task("super_resolution")
    paths = task.pictures(model, ds, tmp_path, "cpu")
    assert (tmp_path / "sr_examples.png").is_file() and (tmp_path / "sr_per_image.csv").is_file()
    assert len(paths) == 2
    lines = task.report({"psnr": 30.0, "psnr_bicubic": 29.0}, ds)
    text = "\n".join(lines)
    assert "+1.00 dB" in text and all(n in text for n in ds.names) and "Set5 33.13" in text


# --- shipped weights: ESPCN beats bicubic on held-out photos ------------------------------------------
def _gain(name, photos, degradation="gaussian"):
    scale = PARAMS[name][0]
    if not bundled_path(name).is_file():
        pytest.fail(f"no shipped weights for {name}; run scripts/train_espcn_weights.py")
    model = convzoo.create_model(name, pretrained=True)
    ds = build_dataset("photos", "test", scale=scale, degradation=degradation)
    keep = [ds.names.index(p) for p in photos]
    ds.pairs, ds.names = [ds.pairs[i] for i in keep], [ds.names[i] for i in keep]
    rows = evaluate_pairs(model, ds)
    return float(np.mean([r["psnr"] - r["psnr_bicubic"] for r in rows])), rows


@pytest.mark.claim(paper=41, artefact="espcn_x3",
                   claim="shipped weights beat bicubic PSNR on the held-out photos by >= 0.5 dB")
def test_shipped_x3_beats_bicubic_by_half_a_db():
    gain, rows = _gain("espcn_x3", ["astronaut", "camera", "chelsea", "coffee", "rocket"])
    assert gain >= 0.5, rows


@pytest.mark.claim(paper=41, artefact="espcn_x2",
                   claim="shipped weights beat bicubic PSNR on the held-out photos")
@pytest.mark.claim(paper=41, artefact="espcn_x4",
                   claim="shipped weights beat bicubic PSNR on the held-out photos")
@pytest.mark.parametrize("name", ["espcn_x2", "espcn_x4"])
def test_shipped_x2_x4_beat_bicubic(name):
    gain, rows = _gain(name, ["astronaut", "coffee"])
    assert gain > 0.0, rows
