"""Terminator / HyperZ.Z.W (paper 34): the operator identities, slow nets as functions of coordinates, G-IBS,
the SFNE widths of the stored CIFAR-10 config, the slow neural loss, the Kar optimisers and the recipes.

No reference implementation survives (the official repository was withdrawn): expected values are closed forms
written here (explicit sums, the MAGNet recursion evaluated point by point, the Kar update by hand) and the
numbers of the stored ``cfg/config.yaml`` / ``models/kar.py``, written literally.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.hyperzzw import (
    GIBS,
    LocalSlowNet,
    SlowNet,
    hyperzzw_2e,
    hyperzzw_global,
    hyperzzw_local,
    resample_position_bias,
)
from convzoo.models.terminator import SFNEBlock, Terminator, tile_channels
from convzoo.optim.kar import Kar2, Kar3
from convzoo.registry import count_params

# the stored official cfg/config.yaml (withdrawn hyperevolnet/Terminator), CIFAR-10
CFG_IN_CHANNEL = [3, 12, 36, 72, 144]
CFG_BOTTLENECK = [4, 3, 2, 2, 2]
CFG_FINAL = 288
CFG_NUM_CONCAT_PRE = [0, 0, 1, 1, 2]
CFG_DROPOUT = [0.0, 0.05, 0.05, 0.05, 0.05]
CFG_G_LAYERS, CFG_G_HIDDEN, CFG_G_SIZE = [3, 2, 2, 2, 2], 64, 32
CFG_L_HIDDEN, CFG_L_LAYERS, CFG_L_SIZES = 32, 2, [3, 9, 5, 7]


def _tiny(**kw) -> Terminator:
    base = {"widths": (12, 24, 48), "num_pre": (0, 1, 2), "dropout": (0.0, 0.0, 0.0), "g_layers": (2, 2, 2),
            "img_size": 8, "g_hidden": 8, "l_hidden": 8, "gc_hidden": 8, "hi_c_hidden": 4, "hi_s_hidden": 8,
            "in_chans": 3, "num_classes": 5}
    return Terminator(**{**base, **kw})


# --- the operator ----------------------------------------------------------------------------------------

@pytest.mark.claim(paper=34, artefact="HyperZZW",
                   claim="global HyperZZW = the explicit per-channel sum out[b,c,i,j] = sum_k z[b,c,i,k] w[c,i,k] v[b,c,k,j] (float64)")
def test_global_hyperzzw_equals_explicit_formula():
    g = torch.Generator().manual_seed(0)
    b, c, n = 2, 3, 5
    z, v = torch.randn(b, c, n, n, generator=g, dtype=torch.float64), torch.randn(b, c, n, n, generator=g, dtype=torch.float64)
    w = torch.randn(1, c, n, n, generator=g, dtype=torch.float64)
    expected = torch.zeros(b, c, n, n, dtype=torch.float64)
    for bi in range(b):
        for ci in range(c):
            for i in range(n):
                for j in range(n):
                    expected[bi, ci, i, j] = sum(z[bi, ci, i, k] * w[0, ci, i, k] * v[bi, ci, k, j] for k in range(n))
    torch.testing.assert_close(hyperzzw_global(z, w, v), expected, rtol=1e-12, atol=1e-12)
    # v defaults to z: (Z * W) applied to Z itself
    torch.testing.assert_close(hyperzzw_global(z, w), torch.einsum("bcik,cik,bckj->bcij", z, w[0], z))
    torch.testing.assert_close(hyperzzw_2e(w, z), z * w * z)
    with pytest.raises(ConvzooError, match="square") as e:
        hyperzzw_global(torch.randn(1, 2, 4, 5), torch.randn(1, 2, 4, 5))
    assert "\n" not in str(e.value)


@pytest.mark.claim(paper=34, artefact="HyperZZW",
                   claim="local HyperZZW = unfold-multiply-sum with the generated (context-dependent) k x k kernel per channel (float64)")
@pytest.mark.parametrize("k", [3, 5])
def test_local_hyperzzw_equals_unfold_multiply_sum(k):
    torch.manual_seed(0)
    c, h, w = 4, 6, 7
    slow = LocalSlowNet(c, k, hidden=8).double()
    x = torch.randn(2, c, h, w, dtype=torch.float64)
    kernel = slow(x)  # (C, 1, k, k), generated from coordinates and the batch context
    assert kernel.shape == (c, 1, k, k)
    patches = F.unfold(x, k, padding=k // 2).view(2, c, k * k, h * w)  # (B, C, k*k, HW)
    expected = (patches * kernel.view(1, c, k * k, 1)).sum(2).view(2, c, h, w)
    torch.testing.assert_close(hyperzzw_local(kernel, x), expected, rtol=1e-12, atol=1e-12)
    # context-dependent: another batch gives another local kernel (the paper's HyperZZW_L)
    assert not torch.allclose(slow(x + 1.0), kernel)


# --- slow nets: functions of coordinates -------------------------------------------------------------------

def _magnet_at(net: SlowNet, point: torch.Tensor) -> torch.Tensor:
    """The MAGNet recursion at one coordinate (D,), from the parameters: h0 = sin(A0 c + b0),
    h_l = sin(A_l c + b_l) * (L_l h_{l-1} + d_l) + p(c), out = O h_L + o (float64)."""
    d = point.numel()

    def lin(conv, v):
        return conv.weight.reshape(conv.weight.shape[0], -1) @ v + conv.bias

    h = torch.sin(lin(net.filters[0].linear, point))
    idx = tuple(round((float(point[a]) + 1) / 2 * (net.size[a] - 1)) for a in range(d))
    bias = net.bias_p[(0, 0, *idx)]
    for filt, l in zip(net.filters[1:], net.linears):
        h = torch.sin(lin(filt.linear, point)) * lin(l, h) + bias
    return lin(net.output_linear, h)


@pytest.mark.claim(paper=34, artefact="SlowNet",
                   claim="the slow net's kernel is the MAGNet coordinate MLP evaluated at linspace(-1, 1) coordinates: every entry equals the recursion computed point by point (float64)")
def test_slow_net_kernel_is_the_mlp_at_each_coordinate():
    torch.manual_seed(0)
    net = SlowNet(2, 3, 5, hidden=6, num_layers=2).double()
    with torch.no_grad():
        net.bias_p.normal_()
    k = net.kernel()  # (1, 3, 5, 5)
    axis = torch.linspace(-1, 1, 5, dtype=torch.float64)
    for i in range(5):
        for j in range(5):
            torch.testing.assert_close(k[0, :, i, j], _magnet_at(net, torch.stack([axis[i], axis[j]])))
    # 1-D (channel-index) slow net
    net1 = SlowNet(1, 1, 7, hidden=4).double()
    k1 = net1.kernel()
    for i, t in enumerate(torch.linspace(-1, 1, 7, dtype=torch.float64)):
        torch.testing.assert_close(k1[0, :, i], _magnet_at(net1, t.view(1)))


@pytest.mark.claim(paper=34, artefact="SlowNet",
                   claim="global and channel hyper-kernels depend on coordinates only: the same kernel for any input, no gradient to the input, and the kernel on a finer grid (63 vs 32, 31 vs 16 points) equals the coarse one at the shared coordinates (the same continuous function)")
def test_global_kernels_are_functions_of_coordinates_only():
    torch.manual_seed(0)
    net = SlowNet(2, 4, 32, hidden=8, num_layers=3).double()
    with torch.no_grad():
        net.bias_p.normal_()  # a learned position bias: resampled with the grid
    x1 = torch.randn(2, 4, 32, 32, dtype=torch.float64, requires_grad=True)
    x2 = torch.randn(3, 4, 32, 32, dtype=torch.float64) * 10
    k1, k2 = net(x1), net(x2)
    assert k1.shape == (1, 4, 32, 32) and torch.equal(k1, k2)
    assert torch.autograd.grad(k1.sum(), x1, allow_unused=True)[0] is None
    torch.testing.assert_close(net.kernel((63, 63))[..., ::2, ::2], net.kernel((32, 32)), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(net.kernel((31, 31))[..., ::2, ::2], net.kernel((16, 16)), rtol=1e-10, atol=1e-10)
    # the position bias is resampled as F.interpolate(bilinear / linear, align_corners=True)
    for size in ((8, 8), (63, 63), (16, 40)):
        torch.testing.assert_close(resample_position_bias(net.bias_p, size),
                                   F.interpolate(net.bias_p, size=size, mode="bilinear", align_corners=True))
    p1 = torch.randn(1, 1, 7, dtype=torch.float64)
    torch.testing.assert_close(resample_position_bias(p1, (13,)), F.interpolate(p1, size=13, mode="linear", align_corners=True))
    # the block's global kernel: a function of coordinates, whatever the input
    block = SFNEBlock(12, 24, img_size=8, g_hidden=8, l_hidden=8, gc_hidden=8, hi_c_hidden=4, hi_s_hidden=8).double()
    a = block.slow_net_g(torch.randn(2, 12, 8, 8, dtype=torch.float64))
    b = block.slow_net_g(torch.zeros(5, 12, 8, 8, dtype=torch.float64))
    assert torch.equal(a, b) and torch.equal(a, block.global_kernel())


@pytest.mark.claim(paper=34, artefact="SlowNet",
                   claim="the last layer is scaled by 1/sqrt(#kernel positions) (Chang et al. 2020): its weights' spread shrinks by exactly that factor")
def test_chang_scaling_of_the_last_layer():
    torch.manual_seed(0)
    a = SlowNet(2, 8, 32, hidden=16).output_linear.weight
    torch.manual_seed(0)
    b = SlowNet(2, 8, 1, hidden=16).output_linear.weight  # one position: unscaled, same random draw
    torch.testing.assert_close(a, b / 32.0)


# --- G-IBS -------------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=34, artefact="GIBS",
                   claim="G-IBS output has zero mean and unit variance per group (per sample; or over the batch), no learnable parameters or buffers, same in train and eval")
@pytest.mark.parametrize("mode", ["instance", "batch"])
def test_gibs_standardises_each_group(mode):
    torch.manual_seed(0)
    norm = GIBS(24, groups=12, mode=mode)
    assert list(norm.parameters()) == [] and list(norm.buffers()) == []
    x = torch.randn(3, 24, 5, 6, dtype=torch.float64) * 4 + torch.arange(24, dtype=torch.float64).view(1, 24, 1, 1)
    y = norm(x)
    groups = y.view(3, 12, 2 * 5 * 6)
    if mode == "batch":
        groups = groups.transpose(0, 1).reshape(12, -1)
    torch.testing.assert_close(groups.mean(-1), torch.zeros(groups.shape[:-1], dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(groups.var(-1, unbiased=False), torch.ones(groups.shape[:-1], dtype=torch.float64),
                               atol=1e-5, rtol=0)  # eps 1e-5 in the denominator
    torch.testing.assert_close(norm.eval()(x), y)
    with pytest.raises(ConvzooError):
        GIBS(20, groups=12)


# --- the network -------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=34, artefact="terminator_cifar10",
                   claim="the stored CIFAR-10 config: 5 SFNE blocks with outputs 12/36/72/144/288 (= in_channel x bottleneck_factors), 10 + num_concat_pre branches into each bottleneck, Dropout2d 0/0.05/..., global slow nets of 3/2/2/2/2 layers x 64 on the 32x32 grid, local slow nets 32 x 2 layers of sizes 3/9/5/7")
def test_cifar10_config_widths_and_branches():
    widths = [c * f for c, f in zip(CFG_IN_CHANNEL, CFG_BOTTLENECK)]
    assert widths == [12, 36, 72, 144, 288] and widths[-1] == CFG_FINAL
    with torch.device("meta"):
        model = convzoo.create_model("terminator_cifar10")
    assert [f["num_chs"] for f in model.feature_info] == widths and model.num_features == CFG_FINAL
    for i, block in enumerate(model.blocks):
        assert block.in_channels == CFG_IN_CHANNEL[i] and block.out_channels == widths[i]
        assert block.bottleneck.in_channels == CFG_IN_CHANNEL[i] * (10 + CFG_NUM_CONCAT_PRE[i])
        assert block.num_pre == CFG_NUM_CONCAT_PRE[i] and block.drop.p == CFG_DROPOUT[i]
        assert len(block.slow_net_g.linears) == CFG_G_LAYERS[i] and block.slow_net_g.hidden == CFG_G_HIDDEN
        assert block.slow_net_g.size == (CFG_G_SIZE, CFG_G_SIZE) and block.gibs.groups == 12
        assert [s.kernel_size for s in block.slow_net_l] == CFG_L_SIZES
        assert all(s.hidden == CFG_L_HIDDEN and len(s.linears) == CFG_L_LAYERS for s in block.slow_net_l)
    assert count_params(model) == convzoo.get_card("terminator_cifar10").params
    # real maps at a small square size: full resolution in every block
    feats = convzoo.create_model("terminator_cifar10").eval().features(torch.randn(2, 3, 8, 8))
    assert [tuple(f.shape) for f in feats] == [(2, w, 8, 8) for w in widths]


@pytest.mark.claim(paper=34, artefact="SFNEBlock",
                   claim="SFNE block: no residual path (zeroing the bottleneck leaves only the scalar bias), the earlier maps enter the concatenation channel-tiled, and non-square inputs are refused in one line")
def test_sfne_block_structure():
    torch.manual_seed(0)
    model = _tiny().eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        for b in model.blocks:
            b.bottleneck.weight.zero_()
            b.bottleneck.bias.zero_()
            b.bias.fill_(0.25)
        feats = model.features(x)
    for f in feats:  # GELU(G-IBS(0)) + bias = bias: nothing of the input passes around the bottleneck
        torch.testing.assert_close(f, torch.full_like(f, 0.25))
    assert torch.equal(tile_channels(torch.arange(3.0).view(1, 3, 1, 1), 7).flatten(), torch.tensor([0., 1, 2, 0, 1, 2, 0]))
    with pytest.raises(ConvzooError, match="square") as e:
        model(torch.randn(1, 3, 8, 6))
    assert "\n" not in str(e.value)
    for bad in ({"num_pre": (0, 2, 0)}, {"dropout": (0.0,)}, {"widths": (12, 20, 48)}):
        with pytest.raises(ConvzooError):
            _tiny(**bad)
    with pytest.raises(ConvzooError, match="drop_path_rate"):
        _tiny(drop_path_rate=0.1)


@pytest.mark.claim(paper=34, artefact="slow_neural_loss",
                   claim="slow neural loss = sum over block pairs j < i of mean((W_j tiled by the product of bottleneck factors j..i-1 - W_i)^2) of the global hyper-kernels (stored loss.cal_slow_loss); its gradient reaches the global slow nets only")
def test_slow_neural_loss_is_the_stored_formula():
    torch.manual_seed(0)
    model = _tiny(widths=(12, 24, 48), in_chans=3)
    kernels = [b.global_kernel() for b in model.blocks]  # (1, 3 / 12 / 24, 8, 8)
    factors = [12 // 3, 24 // 12]  # input-channel ratios between consecutive blocks
    expected = 0.0
    for i in range(len(kernels) - 1, 0, -1):
        for j in range(i):
            factor = math.prod(factors[j:i])
            expected = expected + torch.mean((torch.tile(kernels[j], (1, factor, 1, 1)) - kernels[i]) ** 2)
    loss = model.slow_neural_loss()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    with_grad = {n.split(".")[2] for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == {"slow_net_g"}
    model.weight_l2 = 1e-3
    torch.testing.assert_close(model.regularization_loss(0), loss.detach() + 1e-3 * model.weight_penalty(), atol=1e-6, rtol=0)


# --- Kar optimisers ----------------------------------------------------------------------------------------

@pytest.mark.claim(paper=34, artefact="Kar3",
                   claim="Kar3 (stored models/kar.py): p -= lr (sign g + sign m1 + sign m2) with the averages read before m_i <- b_i m_i + (1 - b_i) g; Kar2 the same with one average; no weight decay")
def test_kar_updates_by_hand():
    grads = [torch.tensor([0.3, -2.0]), torch.tensor([-0.1, -1.0]), torch.tensor([0.2, 0.5])]
    lr, (b1, b2) = 0.01, (0.5, 0.95)
    p = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    opt = Kar3([p], lr=lr, betas=(b1, b2))
    ref, m1, m2 = p.detach().clone().double(), torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    for g in grads:
        p.grad = g.clone()
        opt.step()
        gd = g.double()
        ref = ref - lr * (torch.sign(gd) + torch.sign(m1) + torch.sign(m2))
        m1, m2 = b1 * m1 + (1 - b1) * gd, b2 * m2 + (1 - b2) * gd
        torch.testing.assert_close(p.detach().double(), ref, atol=1e-7, rtol=0)
    # the first step moves by exactly lr (averages still 0), later by up to 3 lr
    q = torch.nn.Parameter(torch.zeros(1))
    opt2 = Kar2([q], lr=0.1, betas=0.95)
    for g, expected in ((1.0, -0.1), (1.0, -0.3), (-1.0, -0.3)):  # sign(m) after one +1 is +1: -0.2 more; then -1 + 1
        q.grad = torch.tensor([g])
        opt2.step()
        assert float(q.detach()) == pytest.approx(expected)
    with pytest.raises(ConvzooError, match="weight decay"):
        Kar3([p], lr=0.1, weight_decay=1e-4)
    with pytest.raises(ConvzooError):
        Kar3([p], lr=0.1, betas=(0.5,))


# --- recipes -----------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=34, artefact="terminator_cifar10_paper",
                   claim="the recipe holds the stored config: Kar3 lr 0.001215 betas (0.5, 0.95), l2 5e-5, no weight decay, 100 epochs, batch 64, cosine with 8 warm-up epochs per iteration, no grad clip, label smoothing 0.09, CIFAR-10 crop + flip, validated on the test set")
def test_paper_recipe_is_the_stored_config():
    from convzoo.engine import load_recipe
    from convzoo.engine.optim import build_optimizer

    r = load_recipe("terminator_cifar10_paper")
    assert r["paper"] == 34 and r["model"]["name"] == "terminator_cifar10"
    assert "terminator_cifar10_paper" in convzoo.get_card("terminator_cifar10").recipes
    assert (r["optimizer"]["name"], r["optimizer"]["lr"], r["optimizer"]["weight_decay"]) == ("kar3", 0.001215, 0.0)
    assert list(r["optimizer"]["kwargs"]["betas"]) == [0.5, 0.95]
    assert r["model"]["kwargs"] == {"slow_loss_weight": 1.0, "weight_l2": 5e-5}
    assert (r["epochs"], r["batch_size"], r["grad_clip"]) == (100, 64, None)
    assert (r["schedule"]["name"], r["schedule"]["warmup_epochs"], r["schedule"]["interval"]) == ("cosine", 8, "step")
    assert r["task"]["kwargs"] == {"label_smoothing": 0.09}
    assert r["data"]["name"] == "cifar10" and r["data"]["kwargs"]["augment"] == "crop_flip"
    assert r["data"]["eval_split"] == "test"
    with torch.device("meta"):
        model = convzoo.create_model(r["model"]["name"], **r["model"]["kwargs"])
    opt = build_optimizer(model, r["optimizer"])
    assert isinstance(opt, Kar3) and all(g["betas"] == (0.5, 0.95) and g["lr"] == 0.001215 for g in opt.param_groups)


@pytest.mark.claim(paper=34, artefact="terminator_digits",
                   claim="the CPU recipe validates (a 2-block Terminator, Kar3) and its training lowers the loss on real digits in a few steps")
def test_digits_recipe_learns():
    from convzoo.data.digits import _load, digits_split
    from convzoo.engine import load_recipe
    from convzoo.engine.optim import build_optimizer

    r = load_recipe("terminator_digits")
    assert r["paper"] == 34 and "terminator_digits" in convzoo.get_card(r["model"]["name"]).recipes
    torch.manual_seed(0)
    model = convzoo.create_model(r["model"]["name"], num_classes=10, in_chans=1, **r["model"]["kwargs"])
    assert len(model.blocks) == 2 and count_params(model) < 150_000
    images, labels = _load()
    idx = digits_split()["train"][:32]
    x = ((torch.from_numpy(images[idx]) - 0.3053) / 0.3760).unsqueeze(1)  # (32, 1, 8, 8)
    y = torch.from_numpy(labels[idx])
    opt = build_optimizer(model, {**r["optimizer"], "lr": 2e-3})
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y, label_smoothing=0.09) + model.regularization_loss(0)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and losses[-1] < 0.85 * losses[0], losses


# recorded run (not repeated here: ~40 s on 2 quiet cores, minutes on a busy one):
#   convzoo train terminator_digits   (15 epochs, seed 0; run folder results.json)
RECORDED_DIGITS_TEST_ACC = {"last": 0.9833, "best_val_checkpoint": 0.9778}


@pytest.mark.claim(paper=34, artefact="terminator_digits", pin=True,
                   claim="a 2-block Terminator trained by `convzoo train terminator_digits` reaches 98.33% test accuracy (97.78% at the best-val checkpoint; recorded), above logistic regression on the same 64 pixels and split (C picked on val: 97.50%; sklearn default C=1: 96.39%), computed here")
def test_recorded_digits_run_beats_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    from convzoo.data.digits import _load, digits_split

    images, labels = _load()
    x, s = images.reshape(len(images), -1), digits_split()
    fits = {c: LogisticRegression(C=c, max_iter=5000).fit(x[s["train"]], labels[s["train"]]) for c in (0.1, 1.0, 10.0, 100.0)}
    best_c = max(fits, key=lambda c: fits[c].score(x[s["val"]], labels[s["val"]]))
    linear = fits[best_c].score(x[s["test"]], labels[s["test"]])
    assert (best_c, round(linear, 4), round(fits[1.0].score(x[s["test"]], labels[s["test"]]), 4)) == (10.0, 0.975, 0.9639)
    assert min(RECORDED_DIGITS_TEST_ACC.values()) > linear
