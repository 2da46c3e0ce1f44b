"""Paper 41 data: bundled photos as super-resolution pairs (split, sizes, colour, degradation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convzoo.data import build_dataset
from convzoo.data.photos import (
    PHOTOS,
    SPLIT_PHOTOS,
    degrade,
    gaussian_sigma,
    rgb_to_y,
    rgb_to_ycbcr,
    to_rgb_tensor,
    ycbcr_to_rgb,
)
from convzoo.errors import ConvzooError

pytestmark = pytest.mark.paper(41)


@pytest.mark.claim(paper=41, artefact="photos",
                   claim="fixed, disjoint photo split; whole mod-cropped eval photos")
def test_split_is_fixed_and_disjoint():
    splits = {k: set(v) for k, v in SPLIT_PHOTOS.items()}
    assert not (splits["train"] & splits["val"]) and not (splits["train"] & splits["test"])
    assert not (splits["val"] & splits["test"])
    assert splits["train"] | splits["val"] | splits["test"] == set(PHOTOS)
    assert SPLIT_PHOTOS["test"] == ("astronaut", "camera", "chelsea", "coffee", "rocket")
    for split in ("val", "test"):
        assert build_dataset("photos", split, scale=3).names == list(SPLIT_PHOTOS[split])


@pytest.mark.claim(paper=41, artefact="photos",
                   claim="fixed, disjoint photo split; whole mod-cropped eval photos")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_eval_items_are_whole_modcropped_photos(scale):
    ds = build_dataset("photos", "val", scale=scale)
    assert ds.info.task == "super_resolution" and ds.info.in_chans == 1
    assert ds.info.extra["scale"] == scale and ds.info.extra["eval_batch_size"] == 1
    for name, (lr, hr) in zip(ds.names, ds):
        h, w = PHOTOS[name]().shape[:2]
        assert hr.shape == (1, h - h % scale, w - w % scale)
        assert lr.shape == (1, hr.shape[1] // scale, hr.shape[2] // scale)
        assert lr.dtype == hr.dtype == torch.float32
        assert torch.equal(lr, torch.round(lr * 255) / 255)  # 8-bit levels, as a saved LR image


@pytest.mark.parametrize("scale", [3])
def test_train_patches_are_aligned_and_reproducible(scale):
    ds = build_dataset("photos", "train", scale=scale, patch=17, patches_per_epoch=64, seed=5)
    assert len(ds) == 64 and ds.info.input_size == (17, 17)
    ds.set_epoch(0)
    lr, hr = ds[7]
    assert lr.shape == (1, 17, 17) and hr.shape == (1, 17 * scale, 17 * scale)
    # the documented draw: photo, then top-left corner, from default_rng((seed, epoch, index))
    rng = np.random.default_rng((5, 0, 7))
    full_lr, full_hr = ds.pairs[int(rng.integers(len(ds.pairs)))]
    y, x = int(rng.integers(full_lr.shape[-2] - 16)), int(rng.integers(full_lr.shape[-1] - 16))
    assert torch.equal(lr, full_lr[:, y:y + 17, x:x + 17])
    assert torch.equal(hr, full_hr[:, scale * y:scale * (y + 17), scale * x:scale * (x + 17)])
    assert torch.equal(ds[7][0], lr)  # same epoch, same patch
    ds.set_epoch(1)
    assert not torch.equal(ds[7][0], lr)  # next epoch, fresh patch


def test_train_patches_change_with_the_engine_epoch_seed():
    """Without set_epoch the draw follows torch's seed, which the engine sets per epoch."""
    ds = build_dataset("photos", "train", scale=3, patches_per_epoch=4)
    torch.manual_seed(100)
    a = ds[0][0]
    torch.manual_seed(100)
    assert torch.equal(ds[0][0], a)
    torch.manual_seed(101)
    assert not torch.equal(ds[0][0], a)


@pytest.mark.claim(paper=41, artefact="photos", claim="Y channel equals skimage rgb2ycbcr (BT.601)")
def test_y_matches_skimage_rgb2ycbcr():
    from skimage.color import rgb2ycbcr

    img = PHOTOS["coffee"]()
    ref = rgb2ycbcr(img) / 255.0  # MATLAB convention: Y in [16, 235]
    ours = rgb_to_ycbcr(to_rgb_tensor(img).double()).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    y = rgb_to_y(to_rgb_tensor(img))
    assert 16 / 255 - 1e-6 <= y.min() and y.max() <= 235 / 255 + 1e-6
    rgb = to_rgb_tensor(img).double()
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-9, rtol=0)


@pytest.mark.claim(paper=41, artefact="photos", claim="degradations equal scipy Gaussian / PIL bicubic")
@pytest.mark.parametrize("scale", [3, 4])
def test_gaussian_degradation_matches_scipy(scale):
    """Gaussian blur (sigma r/2, 3-sigma kernel, mirror padding) then the centre of each r x r block."""
    from scipy.ndimage import gaussian_filter

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 8 * scale, 7 * scale, generator=g, dtype=torch.float64)
    sigma = gaussian_sigma(scale)
    blurred = gaussian_filter(hr[0].numpy(), sigma, mode="mirror", truncate=3.0)
    if scale % 2:
        ref = blurred[scale // 2::scale, scale // 2::scale]
    else:  # even r: the block centre lies between four pixels
        c = scale // 2
        ref = (blurred[c - 1::scale, c - 1::scale] + blurred[c::scale, c - 1::scale]
               + blurred[c - 1::scale, c::scale] + blurred[c::scale, c::scale]) / 4
    np.testing.assert_allclose(degrade(hr, scale, "gaussian")[0].numpy(), ref, atol=1e-6)


@pytest.mark.claim(paper=41, artefact="photos", claim="degradations equal scipy Gaussian / PIL bicubic")
def test_bicubic_degradation_matches_pil():
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 48, 36, generator=g)
    ref = np.asarray(Image.fromarray(hr[0].numpy(), mode="F").resize((12, 16), Image.BICUBIC))
    np.testing.assert_allclose(degrade(hr, 3, "bicubic")[0].numpy(), ref, atol=2e-4)


def test_rgb_colour_and_errors(tmp_path):
    ds = build_dataset("photos", "test", scale=2, colour="rgb", degradation="bicubic")
    assert ds.info.in_chans == 3 and ds[0][0].shape[0] == 3
    with pytest.raises(ConvzooError, match="degradation"):
        build_dataset("photos", "test", degradation="box")
    with pytest.raises(ConvzooError, match="scale"):
        build_dataset("photos", "test", scale=1)
    with pytest.raises(ConvzooError, match="no images"):
        build_dataset("photos", "test", root=str(tmp_path))
    from PIL import Image

    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ConvzooError, match="smaller than"):
        build_dataset("photos", "train", root=str(tmp_path), scale=3, patch=17)


def test_root_folder_of_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, size in (("baby", (30, 40)), ("bird", (25, 31))):
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = build_dataset("photos", "test", root=str(tmp_path), scale=3)
    assert ds.names == ["baby", "bird"]
    assert [tuple(hr.shape) for _, hr in ds] == [(1, 30, 39), (1, 24, 30)]
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConvzooError, match="broken.png"):
        build_dataset("photos", "test", root=str(tmp_path), scale=3)
