"""Paper 42, LRCN (arXiv 1411.4389), the activity-recognition half.

Checks the parameter counts of the official activity model (Caffe's single LSTM bias and torch's two)
against a closed form of the official prototxt written here, the CaffeNet frame CNN's map sizes at
227 px, the clip-marker LSTM against torch's ``nn.LSTM`` (float64) and the clip-marker reset against
independent sequences (exact), Caffe's gate order, the temporal pools (the official mean of per-frame
probabilities), the per-step loss, that the single-frame baseline cannot tell a clip from its
time-reversed twin (so it cannot beat chance on the moving digits) while LRCN can, and that LRCN
learns the moving-digit directions. Full-size models are built on the meta device.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import ConvzooError
from convzoo.models.lrcn import (
    LRCN,
    LRCN_CFGS,
    CaffeNetFc6,
    ClipLSTM,
    SmallFrameCNN,
    build_frame_cnn,
    caffe_lstm_to_torch,
)
from convzoo.registry import count_params

pytestmark = pytest.mark.paper(42)


def _official_count(caffe_bias: bool) -> int:
    """Closed form of train_test_lstm_RGB.prototxt (LisaAnne/lisa-caffe-public, lstm_video_deploy):
    conv (out, in/groups, k) with biases, fc6 on pool5 (384 x 6 x 6), LSTM 256 on fc6 (Caffe: W_xc, b_c, W_hc;
    torch adds b_hh), fc8-final 101."""
    convs = [(96, 3, 7), (384, 96 // 2, 5), (512, 384, 3), (512, 512 // 2, 3), (384, 512 // 2, 3)]
    conv = sum(o * i * k * k + o for o, i, k in convs)
    fc6 = 384 * 6 * 6 * 4096 + 4096
    h, d = 256, 4096
    lstm = 4 * h * d + 4 * h * h + 4 * h * (1 if caffe_bias else 2)
    fc8 = h * 101 + 101
    assert (conv, fc6, fc8) == (4_310_656, 56_627_200, 25_957)  # the fact sheet's layer groups
    return conv + fc6 + lstm + fc8


def _build(name: str, **kw) -> LRCN:
    cfg = LRCN_CFGS[name]
    return LRCN(num_classes=cfg["num_classes"], in_chans=cfg["in_chans"], **{**cfg["kwargs"], **kw})


# --- counts and shapes -------------------------------------------------------------------------------

@pytest.mark.claim(paper=42, artefact="lrcn_activity",
                   claim="65,421,285 parameters with Caffe's single LSTM bias (official prototxt, closed form)")
def test_activity_count_caffe_bias():
    with torch.device("meta"):
        model = _build("lrcn_activity_caffe")
    assert count_params(model) == _official_count(caffe_bias=True) == 65_421_285
    assert count_params(model.lstm) == 4_457_472


@pytest.mark.claim(paper=42, artefact="lrcn_activity",
                   claim="+1,024 parameters (65,422,309) with torch's two LSTM biases")
def test_activity_count_torch_bias():
    with torch.device("meta"):
        model = _build("lrcn_activity")
        ref = torch.nn.LSTM(4096, 256)
    assert count_params(model) == _official_count(caffe_bias=False) == 65_421_285 + 1_024
    assert count_params(model.lstm) == count_params(ref) == 4_458_496


def test_caffenet_map_sizes_at_227():
    """pool5 is 384 x 6 x 6 at 227 px (Caffe's ceil-mode pools), so the adaptive pool is the identity there."""
    cnn = CaffeNetFc6().eval()
    maps = {}
    for name in ("pool1", "pool2", "pool5"):
        getattr(cnn, name).register_forward_hook(lambda m, i, o, n=name: maps.__setitem__(n, tuple(o.shape)))
    with torch.no_grad():
        out = cnn(torch.randn(1, 3, 227, 227))
    assert maps == {"pool1": (1, 96, 55, 55), "pool2": (1, 384, 13, 13), "pool5": (1, 384, 6, 6)}
    assert out.shape == (1, 4096)
    x = torch.randn(2, 384, 6, 6)
    assert torch.equal(cnn.pool(x), x)


@pytest.mark.claim(paper=42, artefact="activity_recognition",
                   claim="per-frame scores averaged over time and clips: the video's probabilities are the mean of "
                         "every frame's softmax over its K clips (classify_video.py's rule)")
def test_video_score_is_the_mean_of_all_frame_probabilities():
    from convzoo.tasks import build_task

    torch.manual_seed(0)
    model = _build("lrcn_small").eval()
    clips = torch.randn(2, 3, 1, 5, 32, 32)  # (N videos, K clips, C, T, H, W)
    with torch.no_grad():
        video, _ = build_task("video_classification").forward(model, (clips, torch.zeros(2, dtype=torch.long)))
        steps = model.forward_steps(clips.flatten(0, 1)).reshape(2, 3 * 5, 4)  # every frame of every clip
    torch.testing.assert_close(video.softmax(-1), steps.softmax(-1).mean(1))


def test_output_shapes_and_pools():
    model = _build("lrcn_small").eval()
    x = torch.randn(3, 1, 5, 32, 32)
    with torch.no_grad():
        steps = model.forward_steps(x)
        assert steps.shape == (3, 5, 4)
        assert model.forward_features(x).shape == (3, 5, 64)
        # official test rule: the mean over frames of the per-frame softmax probabilities
        torch.testing.assert_close(model(x).exp(), steps.softmax(-1).mean(1))
        model.temporal_pool = "logits"
        torch.testing.assert_close(model(x), steps.mean(1))
        model.reset_classifier(0)
        assert model(x).shape == (3, 64)
        model.reset_classifier(7, "none")
        assert model(x).shape == (3, 5, 7)


# --- the LSTM with clip markers ----------------------------------------------------------------------

@pytest.mark.claim(paper=42, artefact="lrcn_activity",
                   claim="the clip-marker LSTM equals torch.nn.LSTM (float64, 2 layers) with its weights")
def test_clip_lstm_equals_torch_lstm():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(6, 5, num_layers=2, batch_first=True).double()
    ours = ClipLSTM(6, 5, num_layers=2).double()
    ours.load_state_dict(ref.state_dict())  # same parameter names
    x = torch.randn(3, 7, 6, dtype=torch.float64)
    h0, c0 = torch.randn(2, 3, 5, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64)
    want, (hn, cn) = ref(x, (h0, c0))
    got, (gh, gc) = ours(x, state=(h0, c0))
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    torch.testing.assert_close(gh, hn, atol=1e-12, rtol=0)
    torch.testing.assert_close(gc, cn, atol=1e-12, rtol=0)


@pytest.mark.claim(paper=42, artefact="lrcn_activity",
                   claim="clip-marker reset equals running the sequences independently (float64, to 1e-12)")
def test_clip_markers_equal_independent_sequences():
    """Two clips of lengths 3 and 4 packed into one 7-step sequence with a marker (0) at step 3: every output
    equals that of the clips run separately from zero state. Float64: the only differences left are the
    rounding of matrix products of other shapes (BLAS blocks an (N*7, D) product differently from (N*3, D))."""
    torch.manual_seed(0)
    model = _build("lrcn_small").double().eval()
    a, b = torch.randn(2, 1, 3, 32, 32, dtype=torch.float64), torch.randn(2, 1, 4, 32, 32, dtype=torch.float64)
    packed = torch.cat([a, b], dim=2)
    cont = torch.ones(2, 7)
    cont[:, 0] = cont[:, 3] = 0
    exact = {"atol": 1e-12, "rtol": 0.0}
    with torch.no_grad():
        joint = model.forward_steps(packed, cont)
        sep = torch.cat([model.forward_steps(a), model.forward_steps(b)], dim=1)
        torch.testing.assert_close(joint, sep, **exact)
        # without the marker the second clip continues the first one's state
        assert (model.forward_steps(packed)[:, 3:] - sep[:, 3:]).abs().max() > 1e-6
        # per batch element: a marker in one sequence leaves the others alone
        cont2 = torch.ones(2, 7)
        cont2[0, 3] = 0
        mixed = model.forward_steps(packed, cont2)
        torch.testing.assert_close(mixed[0], sep[0], **exact)
        torch.testing.assert_close(mixed[1], model.forward_steps(packed)[1], **exact)


def test_caffe_bias_and_gate_order():
    """A Caffe LSTM (one bias; gates i, f, o, g) written out step by step equals ClipLSTM(bias="caffe") loaded
    through caffe_lstm_to_torch; the Caffe variant has no bias_hh."""
    torch.manual_seed(0)
    d, h = 4, 3
    w_xc, b_c, w_hc = torch.randn(4 * h, d), torch.randn(4 * h), torch.randn(4 * h, h)
    lstm = ClipLSTM(d, h, bias="caffe")
    assert not hasattr(lstm, "bias_hh_l0") and count_params(lstm) == 4 * h * (d + h + 1)
    lstm.load_state_dict(caffe_lstm_to_torch(w_xc, b_c, w_hc))
    x = torch.randn(2, 5, d)
    cont = torch.tensor([[0, 1, 1, 0, 1], [0, 1, 1, 1, 1]], dtype=torch.float32)
    hp, cp, outs = torch.zeros(2, h), torch.zeros(2, h), []
    for t in range(5):  # Caffe: h_conted = cont * h; LSTMUnit: c = cont * f * c_prev + i * g
        m = cont[:, t:t + 1]
        pre = x[:, t] @ w_xc.T + b_c + (m * hp) @ w_hc.T
        i, f, o, g = pre[:, :h].sigmoid(), pre[:, h:2 * h].sigmoid(), pre[:, 2 * h:3 * h].sigmoid(), pre[:, 3 * h:].tanh()
        cp = m * f * cp + i * g
        hp = o * cp.tanh()
        outs.append(hp)
    got, _ = lstm(x, cont)
    torch.testing.assert_close(got, torch.stack(outs, 1), atol=1e-6, rtol=1e-6)


def test_prototxt_fillers():
    model = _build("lrcn_activity_caffe")
    assert model.lstm.weight_ih_l0.abs().max() <= 0.01 and torch.all(model.lstm.bias_ih_l0 == 0)
    assert torch.all(model.frame_cnn.conv1.bias == 0.1) and torch.all(model.fc.bias == 0)
    assert abs(float(model.frame_cnn.fc6.weight.detach().std()) - 0.01) < 1e-3
    assert model.drop.p == 0.5 and model.frame_cnn.drop6.p == 0.9


# --- loss, single frame, errors ----------------------------------------------------------------------

@pytest.mark.claim(paper=42, artefact="per_step",
                   claim="method per_step is the official SoftmaxWithLoss over the (T, N) steps, each step against its "
                         "clip's label")
def test_per_step_method_is_the_softmax_loss_over_all_steps():
    """Method ``per_step``: the official SoftmaxWithLoss over the (T, N) steps, every step against its clip's label."""
    from convzoo.methods import build_method

    torch.manual_seed(0)
    model = _build("lrcn_small").eval()
    x, y = torch.randn(3, 1, 4, 32, 32), torch.tensor([0, 3, 1])
    steps = model.forward_steps(x)
    want = sum(F.cross_entropy(steps[:, t], y) for t in range(4)) / 4
    method = build_method("per_step", model, None, None)
    torch.testing.assert_close(method.training_step((x, y))["loss"], want)
    with pytest.raises(ConvzooError, match="forward_steps"):
        build_method("per_step", torch.nn.Linear(2, 2), None, None)


def test_single_frame_is_order_blind_and_lrcn_is_not():
    """The single-frame baseline averages per-frame scores: a clip and its time-reversal (a digit moving right
    and the same digit moving left through the same positions) get the same scores, so on a set closed under
    reversal it cannot beat chance; LRCN tells them apart."""
    torch.manual_seed(0)
    x = torch.randn(2, 1, 6, 32, 32, dtype=torch.float64)
    single = _build("lrcn_small_single_frame").double().eval()
    lrcn = _build("lrcn_small").double().eval()
    with torch.no_grad():
        torch.testing.assert_close(single(x.flip(2)), single(x), atol=1e-12, rtol=0)
        assert (lrcn(x.flip(2)) - lrcn(x)).abs().max() > 1e-4


def test_bad_inputs_and_arguments():
    model = _build("lrcn_small")
    with pytest.raises(ConvzooError, match=r"\(N, 1, T, H, W\)"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(ConvzooError, match="clip markers"):
        model(torch.randn(2, 1, 3, 32, 32), torch.ones(2, 4))
    with pytest.raises(ConvzooError, match="drop_path_rate"):
        _build("lrcn_small", drop_path_rate=0.1)
    with pytest.raises(ConvzooError, match="temporal_pool"):
        _build("lrcn_small", temporal_pool="max")
    with pytest.raises(ConvzooError, match="frame CNN"):
        build_frame_cnn("vgg", 3)
    assert isinstance(build_frame_cnn("small", 3), SmallFrameCNN)


@pytest.mark.claim(paper=42, artefact="lrcn_small_single_frame",
                   claim="on moving_digits every right-moving (down-moving) clip has a left-moving (up-moving) twin with "
                         "the same frames in reverse order, which the frame-averaged single-frame model scores identically: "
                         "the sign of the motion is at chance for it (accuracy at most 50 %); LRCN scores the twins apart")
def test_moving_digits_reversed_twin_fools_the_single_frame_model():
    from convzoo.data.moving_digits import render_video

    g = torch.Generator().manual_seed(0)
    ink = torch.rand(8, 8, generator=g)
    frames, speed, start = 6, 2, (5, 3)
    right = render_video(ink, "right", start, speed, frames, 16)
    # the same digit moving left from where the right-moving one ends: its frames reversed
    left = render_video(ink, "left", (start[0], start[1] + (frames - 1) * speed), speed, frames, 16)
    assert torch.equal(left, right.flip(1))
    down = render_video(ink, "down", start, speed, frames, 16)
    up = render_video(ink, "up", (start[0] + (frames - 1) * speed, start[1]), speed, frames, 16)
    assert torch.equal(up, down.flip(1))
    torch.manual_seed(0)
    single = LRCN(num_classes=4, in_chans=1, frame_cnn="small", recurrent=False).double().eval()
    lrcn = LRCN(num_classes=4, in_chans=1, frame_cnn="small", hidden_size=16).double().eval()
    clips = torch.stack([right, left, down, up]).double()
    with torch.no_grad():
        s = single(clips)
        torch.testing.assert_close(s[0], s[1], atol=1e-12, rtol=0)
        torch.testing.assert_close(s[2], s[3], atol=1e-12, rtol=0)
        o = lrcn(clips)
        assert (o[0] - o[1]).abs().max() > 1e-6 and (o[2] - o[3]).abs().max() > 1e-6


# --- recipes -----------------------------------------------------------------------------------------

@pytest.mark.claim(paper=42, artefact="lrcn_ucf101_paper",
                   claim="the official lstm_solver_RGB / train_test_lstm_RGB values: SGD lr 0.001 momentum 0.9, weight "
                         "decay 0.005, step x0.1 every 10,000 of 30,000 iterations, clip 5, 24 clips x 16 frames, per-step "
                         "loss, fc8 lr x10 / x20, biases x2 without decay, 227 crops of 240 px frames, BGR mean")
def test_paper_recipe_values():
    from convzoo.engine import load_recipe
    from convzoo.engine.optim import param_groups

    r = load_recipe("lrcn_ucf101_paper")
    assert r["paper"] == 42 and "lrcn_ucf101_paper" in convzoo.get_card(r["model"]["name"]).recipes
    opt = r["optimizer"]
    assert (opt["name"], opt["lr"], opt["weight_decay"], opt["kwargs"]) == ("sgd", 0.001, 0.005, {"momentum": 0.9})
    assert (r["batch_size"], r["grad_clip"], r["seed"], r["method"]["name"]) == (24, 5.0, 1701, "per_step")
    # 30,000 iterations of 24 clips over UCF101 split 1's 9,537 training videos; the step every 10,000
    iters_per_epoch = 9_537 / 24
    assert r["epochs"] == round(30_000 / iters_per_epoch) and r["schedule"]["name"] == "step"
    assert r["schedule"]["kwargs"] == {"step_size": round(10_000 / iters_per_epoch), "gamma": 0.1}
    data = r["data"]["kwargs"]
    assert (data["clip_len"], data["crop"], data["resize"]) == (16, 227, 240)
    bgr_mean = (103.939, 116.779, 128.68)  # sequence_input_layer.py, on 0-255 BGR
    assert data["mean"] == pytest.approx([m / 255 for m in bgr_mean[::-1]], abs=1e-6)
    assert data["std"] == pytest.approx([1 / 255] * 3, abs=1e-7)
    with torch.device("meta"):
        model = convzoo.create_model("lrcn_activity")
    lr_mult, decay = {}, {}
    for g in param_groups(model, opt):
        for p in g["params"]:
            lr_mult[id(p)], decay[id(p)] = g["lr"] / opt["lr"], g["weight_decay"]
    named = dict(model.named_parameters())
    assert lr_mult[id(named["fc.weight"])] == pytest.approx(10) and lr_mult[id(named["fc.bias"])] == pytest.approx(20)
    assert lr_mult[id(named["frame_cnn.conv1.bias"])] == pytest.approx(2) and decay[id(named["frame_cnn.fc6.bias"])] == 0
    assert decay[id(named["lstm.bias_ih_l0"])] == 0.005 and decay[id(named["frame_cnn.conv3.weight"])] == 0.005


@pytest.mark.claim(paper=42, artefact="lrcn_moving_digits",
                   claim="recipe validates; the CPU LRCN and its single-frame baseline share data, loss and budget")
@pytest.mark.claim(paper=42, artefact="lrcn_single_frame_moving_digits",
                   claim="recipe validates; the same data, loss and budget as lrcn_moving_digits, without the LSTM")
def test_cpu_recipes_load():
    from convzoo.engine import load_recipe

    a, b = load_recipe("lrcn_moving_digits"), load_recipe("lrcn_single_frame_moving_digits")
    assert (a["model"]["name"], b["model"]["name"]) == ("lrcn_small", "lrcn_small_single_frame")
    for key in ("data", "task", "method", "optimizer", "schedule", "epochs", "batch_size", "seed"):
        assert a[key] == b[key], key
    assert a["method"]["name"] == "per_step" and a["data"]["name"] == "moving_digits"
    assert count_params(convzoo.create_model("lrcn_small")) < 500_000  # CPU scale


@pytest.mark.slow
@pytest.mark.claim(paper=42, artefact="lrcn_moving_digits",
                   claim="LRCN learns on moving real digits: 50 steps of the per-step loss (from log 4) lift held-out "
                         "accuracy above chance (25 %) (recorded full runs: README)")
def test_moving_digits_lrcn_learns():
    from convzoo.data import build_dataset
    from convzoo.methods import build_method
    from convzoo.tasks import build_task

    task = build_task("video_classification")
    kw = {"frames": 8, "digits": "sklearn", "size": 32}
    train = build_dataset("moving_digits", "train", num_videos=800, **kw)
    test = build_dataset("moving_digits", "test", num_videos=200, **kw)
    xs, ys = torch.stack([test[i][0] for i in range(len(test))]), test.labels
    torch.manual_seed(0)
    model = convzoo.create_model("lrcn_small")
    method = build_method("per_step", model, task, train.info)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=True)
    method.train()
    losses = []
    for _ in range(2):
        for batch in loader:
            loss = method.training_step(batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        acc = float((task.forward(model, (xs, ys))[0].argmax(-1) == ys).float().mean())
    assert abs(losses[0] - math.log(4)) < 0.1, losses[0]  # four balanced classes, an uninformed start
    assert acc >= 0.33, acc
