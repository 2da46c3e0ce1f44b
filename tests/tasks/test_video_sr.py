"""Paper 41 (ESPCN) on video: the ``video_sr`` data set (real clips, fixed clip split, single- and multi-frame
LR stacks), the early-fusion ESPCN, the super-resolution task's video paths (centre-frame bicubic baseline,
per-clip report, ``upscale_video``) and the shipped weights against bicubic on the held-out real clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convzoo
from convzoo.data import build_dataset
from convzoo.data.photos import degrade, quantize
from convzoo.data.video_sr import SPLIT
from convzoo.errors import ConvzooError
from convzoo.registry import count_params
from convzoo.tasks import build_task
from convzoo.tasks.super_resolution import centre_frame, evaluate_pairs, per_clip_table, upscale_video

pytestmark = pytest.mark.paper(41)

CLIP_FRAMES = {"bikes.mp4": 216, "bigbuckbunny.mp4": 6, "carphone_pristine.mp4": 7}


def _frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """A moving textured scene, (n, h, w, 3) uint8: smooth enough to survive H.264, different per frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = rng.uniform(0, 2 * np.pi, size=3)
    out = [np.stack([127 + 100 * np.sin(0.35 * xx + 0.21 * yy + 0.3 * t + base[c]) for c in range(3)], -1)
           for t in range(n)]
    return np.clip(np.stack(out), 0, 255).astype(np.uint8)


def _write_mp4(path, frames: np.ndarray, fps: int = 25) -> None:
    """An H.264 MP4 (the clips' real format) written with PyAV."""
    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The three clips of the split as small fixture MP4s (same names, fewer and smaller frames)."""
    root = tmp_path_factory.mktemp("clips")
    for i, (name, n) in enumerate(CLIP_FRAMES.items()):
        _write_mp4(root / name, _frames(n, 24, 30, i))
    return root


def _decoded_y(path) -> np.ndarray:
    """The reference luma: PyAV RGB frames -> 16 + (65.481 R + 128.553 G + 24.966 B) / 255, 8-bit (MATLAB rgb2ycbcr)."""
    import av

    with av.open(str(path)) as c:
        rgb = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.float64)
    y = 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255
    return np.round(y)


# --- the data set -----------------------------------------------------------------------------------
@pytest.mark.claim(paper=41, artefact="video_sr",
                   claim="HR frames are the clip's decoded BT.601 luma (modcropped) and LR frames its degradation")
def test_video_sr_pairs_from_real_format_clips(clips):
    ds = build_dataset("video_sr", "test", root=str(clips), scale=3)
    assert len(ds) == CLIP_FRAMES["carphone_pristine.mp4"] and ds.info.in_chans == 1
    assert ds.info.task == "super_resolution" and ds.info.extra["scale"] == 3
    ref = _decoded_y(clips / "carphone_pristine.mp4")[:, :24, :30]  # 24 x 30 is a multiple of 3
    for t in range(len(ds)):
        lr, hr = ds[t]
        assert lr.shape == (1, 8, 10) and hr.shape == (1, 24, 30) and ds.names[t] == f"carphone_pristine#{t}"
        assert np.abs(hr[0].numpy() * 255 - ref[t]).max() <= 1.0  # float rounding at .5 only
        torch.testing.assert_close(lr, quantize(degrade(hr, 3)), atol=1e-6, rtol=0)  # Gaussian sigma r/2


@pytest.mark.claim(paper=41, artefact="video_sr",
                   claim="frames=2k+1 stacks LR frames t-k..t+k on the channel axis, edges repeated")
def test_multi_frame_stack_is_neighbouring_frames(clips):
    one = build_dataset("video_sr", "test", root=str(clips), frames=1)
    three = build_dataset("video_sr", "test", root=str(clips), frames=3)
    five = build_dataset("video_sr", "test", root=str(clips), frames=5)
    assert three.info.in_chans == 3 and five.info.in_chans == 5
    n = len(one)
    for t in range(n):
        lr3, hr3 = three[t]
        lr5, _ = five[t]
        assert torch.equal(hr3, one[t][1])
        for j, s in enumerate(range(t - 1, t + 2)):
            assert torch.equal(lr3[j], one[min(max(s, 0), n - 1)][0][0])
        for j, s in enumerate(range(t - 2, t + 3)):
            assert torch.equal(lr5[j], one[min(max(s, 0), n - 1)][0][0])
    assert torch.equal(centre_frame(three[2][0][None], 1)[0], one[2][0])


def test_train_patches_are_aligned_and_reproducible(clips):
    ds = build_dataset("video_sr", "train", root=str(clips), frames=3, patch=6, patches_per_epoch=10)
    ds.set_epoch(0)
    a = [ds[i] for i in range(10)]
    ds.set_epoch(0)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, [ds[i] for i in range(10)]))
    ds.set_epoch(1)
    assert not all(torch.equal(x[0], ds[i][0]) for i, x in enumerate(a))
    lr, hr = a[0]
    assert lr.shape == (3, 6, 6) and hr.shape == (1, 18, 18)
    # alignment: the centre LR channel is a window of one whole LR frame, the HR patch the same window x3
    full = build_dataset("video_sr", "test", root=str(clips))  # frames come from train clips here: search them
    frames = [f for name in ("bikes.mp4", "bigbuckbunny.mp4") for f in _clip_lr_hr(clips / name)]
    hits = [(y, x) for lr_f, hr_f in frames for y in range(lr_f.shape[-2] - 5) for x in range(lr_f.shape[-1] - 5)
            if torch.equal(lr_f[y:y + 6, x:x + 6], lr[1]) and torch.equal(hr_f[3 * y:3 * y + 18, 3 * x:3 * x + 18], hr[0])]
    assert hits and full.info.extra["frames"] == 1


def _clip_lr_hr(path):
    from convzoo.data.video_sr import clip_pairs

    lr, hr = clip_pairs(str(path), 3, "gaussian", None)
    return [(lr[t].float() / 255, hr[t].float() / 255) for t in range(lr.shape[0])]


def test_split_is_fixed_and_disjoint():
    """Train and val take different bikes frames (10 apart: no 2k+1 <= 19 window reaches across); the test
    clip is used by no other split."""
    (bikes_train,) = [s for s in SPLIT["train"] if s[0] == "bikes.mp4"]
    ((val_clip, val_first, _, _),) = SPLIT["val"]
    assert val_clip == "bikes.mp4" and bikes_train[2] + 9 <= val_first
    test_clips = {c for c, *_ in SPLIT["test"]}
    assert test_clips == {"carphone_pristine.mp4"}
    assert not test_clips & {c for s in ("train", "val") for c, *_ in SPLIT[s]}


def test_video_sr_errors(tmp_path, clips):
    with pytest.raises(ConvzooError, match="convzoo data fetch video_clips"):
        build_dataset("video_sr", "test", root=str(tmp_path))
    with pytest.raises(ConvzooError, match="odd"):
        build_dataset("video_sr", "test", root=str(clips), frames=2)
    with pytest.raises(ConvzooError, match="degradation"):
        build_dataset("video_sr", "test", root=str(clips), degradation="jpeg")


# --- the early-fusion model ---------------------------------------------------------------------------
@pytest.mark.claim(paper=41, artefact="espcn_x3_fusion3",
                   claim="params and MACs (1080p output) equal the closed form of the Sec. 3.1 layers with a "
                         "3-frame first layer")
def test_fusion_counts_closed_form():
    """Layer by layer: 5x5 over F frames -> 64, 3x3 64 -> 32, 3x3 32 -> r^2 (biases in params, not in MACs)."""
    r, f = 3, 3
    layers = [(5, f, 64), (3, 64, 32), (3, 32, r * r)]
    params = sum(k * k * a * b + b for k, a, b in layers)
    macs = sum(k * k * a * b for k, a, b in layers) * (1080 // r) * (1920 // r)
    assert params == 25_929 == 22_729 + 2 * 1_600  # the single-frame x3 count of the fact sheet + 2 x 25 x 64
    card = convzoo.get_card("espcn_x3_fusion3")
    assert card.params == params and card.macs == macs and card.in_chans == f and card.scale == r
    with torch.device("meta"):
        assert count_params(convzoo.create_model("espcn_x3_fusion3")) == params
        assert count_params(convzoo.create_model("espcn_x3_fusion3", in_chans=5)) == params + 2 * 1_600


@pytest.mark.claim(paper=41, artefact="espcn_x3_fusion3",
                   claim="on a static scene (identical frames) early fusion equals the single-frame ESPCN whose "
                         "first-layer weights are the frames' sum")
def test_fusion_of_identical_frames_equals_single_frame():
    torch.manual_seed(0)
    fused = convzoo.create_model("espcn_x3_fusion3").double().eval()
    single = convzoo.create_model("espcn_x3").double().eval()
    state = dict(fused.state_dict())
    state["conv1.weight"] = state["conv1.weight"].sum(1, keepdim=True)  # (64, 3, 5, 5) -> (64, 1, 5, 5)
    single.load_state_dict(state)
    x = torch.rand(2, 1, 9, 11, dtype=torch.double)
    with torch.no_grad():
        torch.testing.assert_close(fused(x.repeat(1, 3, 1, 1)), single(x), atol=1e-12, rtol=0)
    assert fused(x.repeat(1, 3, 1, 1)).shape == (2, 1, 27, 33)


# --- the task ------------------------------------------------------------------------------------------
def test_task_uses_the_centre_frame_for_bicubic_and_reports_per_clip(clips):
    from convzoo.data.photos import bicubic_upscale

    task = build_task("super_resolution")
    model = convzoo.create_model("espcn_x3_fusion3").eval()
    ds = build_dataset("video_sr", "test", root=str(clips), frames=3)
    lr, hr = ds[3]
    with torch.no_grad():
        sr, targets = task.evaluation_forward(model, (lr[None], hr[None]))
    assert sr.shape == hr[None].shape
    torch.testing.assert_close(targets["bicubic"], bicubic_upscale(lr[None, 1:2], 3))
    assert task.fits_model(convzoo.get_card("espcn_x3_fusion3"), ds.info)
    assert not task.fits_model(convzoo.get_card("espcn_x3"), ds.info)
    rows = evaluate_pairs(model, ds)
    assert [r["photo"] for r in rows] == ds.names
    table = per_clip_table(rows)
    assert table[2].startswith(f"| carphone_pristine | {len(ds)} |")
    spec = task.bench_spec(model, convzoo.get_card("espcn_x3_fusion3"), (1080, 1920))
    assert spec["input_shape"] == [3, 360, 640] and spec["output_size"] == [1080, 1920]


@pytest.mark.claim(paper=41, artefact="super_resolution",
                   claim="predict on a video file writes the upscaled video (r x size, every frame)")
def test_predict_writes_an_upscaled_video(clips, tmp_path):
    import av

    task = build_task("super_resolution")
    for name in ("espcn_x3", "espcn_x3_fusion3"):
        model = convzoo.create_model(name).eval()
        (pred,) = task.predict_file(model, convzoo.get_card(name), clips / "carphone_pristine.mp4", None,
                                    tmp_path / name)
        assert pred["frames"] == CLIP_FRAMES["carphone_pristine.mp4"] and pred["output_size"] == [72, 90]
        with av.open(pred["output"]) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == pred["frames"] and frames[0].shape == (72, 90, 3)
        assert "wrote" in task.format_prediction(pred) and "7 frames" in task.format_prediction(pred)
    assert len(upscale_video(model, clips / "carphone_pristine.mp4", tmp_path / "two.mp4", max_frames=2)) == 5
    with pytest.raises(ConvzooError, match="cannot decode"):
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"not a video")
        upscale_video(model, bad, tmp_path / "out.mp4")


# --- real data: the held-out clip ----------------------------------------------------------------------
def _require_clips():
    from convzoo.data.fetch import data_home, is_fetched

    if not is_fetched("video_clips"):
        pytest.fail(f"video clips not in {data_home('video_clips')}: run `convzoo data fetch video_clips` first",
                    pytrace=False)


@pytest.mark.claim(paper=41, artefact="espcn_x3", pin=True,
                   claim="on the held-out real clip carphone_pristine (x3, Gaussian blur sigma 1.5) the shipped "
                         "weights beat bicubic on every frame, mean +1.46 dB")
def test_shipped_espcn_x3_beats_bicubic_on_every_frame_of_the_held_out_clip():
    _require_clips()
    model = convzoo.create_model("espcn_x3", pretrained=True).eval()
    ds = build_dataset("video_sr", "test", scale=3)
    rows = evaluate_pairs(model, ds)
    assert len(rows) == 120
    gains = np.array([r["psnr"] - r["psnr_bicubic"] for r in rows])
    assert (gains > 0).all()
    assert gains.mean() == pytest.approx(1.46, abs=0.05)


@pytest.mark.slow
@pytest.mark.claim(paper=41, artefact="espcn_x3_video_fusion",
                   claim="the CPU-scale multi-frame recipe learns on the real clips: training loss falls")
def test_video_fusion_recipe_learns(tmp_path):
    from convzoo.engine import train

    _require_clips()
    torch.manual_seed(0)
    res = train("espcn_x3_video_fusion", values={"epochs": 3, "data.kwargs.patches_per_epoch": 640,
                                                "data.test_split": None, "schedule.name": "constant",
                                                "schedule.kwargs": {}},
                out_dir=tmp_path, run_name="r", progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.claim(paper=41, artefact="espcn_x3_video",
                   claim="single- and multi-frame video recipes differ only in the model and the number of frames")
@pytest.mark.claim(paper=41, artefact="espcn_x3_video_fusion",
                   claim="single- and multi-frame video recipes differ only in the model and the number of frames")
def test_video_recipes_compare_single_and_multi_frame_on_equal_budgets():
    from convzoo.engine import load_recipe

    a, b = load_recipe("espcn_x3_video"), load_recipe("espcn_x3_video_fusion")
    assert (a["model"]["name"], b["model"]["name"]) == ("espcn_x3", "espcn_x3_fusion3")
    assert (a["data"]["kwargs"].pop("frames"), b["data"]["kwargs"].pop("frames")) == (1, 3)
    for key in ("epochs", "batch_size", "data", "optimizer", "schedule", "seed"):
        assert a[key] == b[key], key
    assert a["data"]["name"] == "video_sr" and a["data"]["test_split"] == "test"
