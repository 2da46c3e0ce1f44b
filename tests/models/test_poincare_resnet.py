"""Paper 54, Poincare ResNet (arXiv 2303.14027).

Checks the Poincare-ball operations against their closed forms and identities in float64, the manual backward
passes against autograd (``gradcheck``), the ball operations and the Poincare linear / convolution / batch-norm
layers against the authors' ``hypll`` package (0.1.1) with copied weights, the identity-initialisation claim,
the parameter counts against a closed form derived from the layer shapes, and the recipes (the official
CIFAR-10 values, a short run on the real digits that beats chance without NaN).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers import poincare as pb
from convzoo.layers.poincare_nn import PoincareBatchNorm2d, PoincareConv2d, PoincareLinear, poincare_fc
from convzoo.models.poincare_resnet import VARIANTS, PoincareBlock, PoincareResNet, from_official_name
from convzoo.registry import count_params

pytestmark = pytest.mark.paper(54)

D = torch.float64


def _points(n: int, dim: int, c: float, radius: float = 0.9, seed: int = 0) -> torch.Tensor:
    """n points of the ball of curvature -c at norms up to radius / sqrt(c)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=D)
    r = torch.rand(n, 1, generator=g, dtype=D) * radius / math.sqrt(c)
    return x / x.norm(dim=-1, keepdim=True) * r


# --- the ball: identities in float64 ------------------------------------------------------------------------

@pytest.mark.claim(paper=54, artefact="PoincareBall",
                   claim="float64 identities: exp0(log0 x) = x, log0(exp0 v) = v, x (+) 0 = 0 (+) x = x, (-x) (+) x = 0, left cancellation, exp_x(log_x y) = y, distance symmetric and equal to the arcosh closed form, transport keeps the Riemannian norm, outputs inside the ball")
@pytest.mark.parametrize("manual", [False, True])
@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_ball_identities(c, manual):
    x, y = _points(64, 5, c, seed=1), _points(64, 5, c, seed=2)
    v = torch.randn(64, 5, dtype=D, generator=torch.Generator().manual_seed(3))
    ct = torch.tensor(c, dtype=D)
    tol = {"atol": 1e-10, "rtol": 1e-9}
    torch.testing.assert_close(pb.expmap0(pb.logmap0(x, ct, manual=manual), ct, manual=manual), x, **tol)
    torch.testing.assert_close(pb.logmap0(pb.expmap0(v, ct), ct), v, **tol)
    zero = torch.zeros_like(x)
    torch.testing.assert_close(pb.mobius_add(x, zero, ct, manual=manual), x, **tol)
    torch.testing.assert_close(pb.mobius_add(zero, x, ct, manual=manual), x, **tol)
    torch.testing.assert_close(pb.mobius_add(-x, x, ct, manual=manual), zero, **tol)
    torch.testing.assert_close(pb.mobius_add(-x, pb.mobius_add(x, y, ct), ct), y, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(pb.expmap(x, pb.logmap(x, y, ct), ct), y, atol=1e-8, rtol=1e-8)
    # distance: symmetric, the arcosh closed form, and 2/sqrt(c) artanh(sqrt(c)|y|) from the origin
    d = pb.dist(x, y, ct, manual=manual)
    torch.testing.assert_close(d, pb.dist(y, x, ct), atol=1e-8, rtol=1e-8)
    x2, y2, xy2 = x.pow(2).sum(-1), y.pow(2).sum(-1), (x - y).pow(2).sum(-1)
    closed = torch.acosh(1 + 2 * c * xy2 / ((1 - c * x2) * (1 - c * y2))) / math.sqrt(c)
    torch.testing.assert_close(d, closed, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(pb.dist(zero, y, ct), 2 / math.sqrt(c) * torch.atanh(math.sqrt(c) * y2.sqrt()), **tol)
    # parallel transport keeps lambda_x |v| (the Riemannian norm); transporting back returns v
    w = pb.transp(x, y, v, ct)
    torch.testing.assert_close(pb.conformal_factor(y, ct) * w.norm(dim=-1, keepdim=True),
                               pb.conformal_factor(x, ct) * v.norm(dim=-1, keepdim=True), **tol)
    torch.testing.assert_close(pb.transp(y, x, w, ct), v, atol=1e-9, rtol=1e-9)
    # every output lies inside the ball, also for huge tangent vectors (projection)
    for out in (pb.expmap0(1e3 * v, ct), pb.mobius_add(x, y, ct), pb.expmap(x, 50 * v, ct)):
        assert bool((out.norm(dim=-1) < 1 / math.sqrt(c)).all())


@pytest.mark.claim(paper=54, artefact="PoincareBall",
                   claim="c -> 0 limit: Mobius addition -> vector addition, exp0/log0 -> identity, distance -> 2|x - y| (float64, c = 1e-12)")
def test_flat_limit():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 4, dtype=D, generator=g), torch.randn(16, 4, dtype=D, generator=g)
    c = torch.tensor(1e-12, dtype=D)
    torch.testing.assert_close(pb.mobius_add(x, y, c), x + y, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(pb.expmap0(x, c), x, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(pb.logmap0(x, c), x, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(pb.dist(x, y, c), 2 * (x - y).norm(dim=-1), atol=1e-6, rtol=1e-6)


@pytest.mark.claim(paper=54, artefact="PoincareBatchNorm2d",
                   claim="the Einstein midpoint in gyrovector form equals the Klein-model midpoint, and the midpoint of two points lies halfway on their geodesic (float64)")
def test_midpoints():
    c = torch.tensor(0.7, dtype=D)
    x = _points(50, 6, 0.7, seed=4)
    torch.testing.assert_close(pb.poincare_midpoint(x, c), pb.klein_midpoint(x, c), atol=1e-12, rtol=1e-10)
    a, b = x[:1], x[1:2]
    m = pb.poincare_midpoint(torch.cat([a, b]), c)
    d = pb.dist(a, b, c)
    torch.testing.assert_close(pb.dist(a, m, c), d / 2, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(pb.dist(m, b, c), d / 2, atol=1e-10, rtol=1e-10)


# --- manual backward passes ---------------------------------------------------------------------------------

@pytest.mark.claim(paper=54, artefact="PoincareBall",
                   claim="the manual backward passes of Mobius addition, exp0 and log0 (x, y and curvature gradients) pass torch.autograd.gradcheck in float64 and equal the autograd twins")
def test_manual_backward_gradcheck():
    g = torch.Generator().manual_seed(0)
    c = torch.tensor(0.8, dtype=D, requires_grad=True)
    x = _points(6, 4, 0.8, seed=5).requires_grad_()
    y = _points(6, 4, 0.8, seed=6).requires_grad_()
    v = torch.randn(6, 4, dtype=D, generator=g, requires_grad=True)
    assert gradcheck(lambda a, b, k: pb.MobiusAdd.apply(a, b, k, -1), (x, y, c))
    assert gradcheck(lambda a, k: pb.ExpMap0.apply(a, k, -1), (v, c))
    assert gradcheck(lambda a, k: pb.LogMap0.apply(a, k, -1), (x, c))
    # broadcasting (one point against a batch, vectors along dim 1) reduces the gradients to the input shapes
    xb = _points(1, 4, 0.8, seed=7).view(1, 4, 1).requires_grad_()
    yb = _points(6, 4, 0.8, seed=8).view(6, 4, 1).requires_grad_()
    assert gradcheck(lambda a, b, k: pb.MobiusAdd.apply(a, b, k, 1), (xb, yb, c))
    # manual == autograd on a composite (exp, log, transport, distance) with a random upstream gradient
    def composite(manual):
        w = pb.logmap(x, pb.mobius_add(pb.expmap0(v, c, manual=manual), y, c, manual=manual), c, manual=manual)
        return (pb.logmap0(pb.expmap(y, w, c, manual=manual), c, manual=manual) * torch.arange(4, dtype=D)).sum() \
            + pb.dist(x, y, c, manual=manual).sum()
    ga = torch.autograd.grad(composite(False), (x, y, v, c))
    gm = torch.autograd.grad(composite(True), (x, y, v, c))
    for a, b in zip(ga, gm):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)


@pytest.mark.claim(paper=54, artefact="poincare_resnet20",
                   claim="a Poincare residual block gives the same output and gradients with the manual backward passes as with autograd (float64)")
def test_block_manual_equals_autograd():
    torch.manual_seed(0)
    a = PoincareBlock(4, 8, stride=2, manual=True).double()
    b = PoincareBlock(4, 8, stride=2, manual=False).double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 4, 6, 6, dtype=D)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb, atol=1e-12, rtol=1e-12)
    ya.pow(2).sum().backward()
    yb.pow(2).sum().backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-10, rtol=1e-8, msg=n)


# --- parity with hypll (the authors' library) -----------------------------------------------------------------

@contextlib.contextmanager
def _float64():
    """hypll's parameters refuse ``.double()``: build its modules with float64 as the default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _hypll_ball(c: float):
    from hypll.manifolds.poincare_ball import Curvature, PoincareBall

    ball = PoincareBall(Curvature(value=c, constraining_strategy=lambda t: t))
    ball.c.value.data = torch.tensor(c, dtype=D)  # hypll stores c in float32
    return ball


def _exact_c(module, c: float):
    """float64 copies of a fixed curvature (the buffers hold the float32 value of c)."""
    for m in module.modules():
        if isinstance(m, pb.PoincareBall):
            m.isp_c.fill_(c)
    return module


@pytest.mark.claim(paper=54, artefact="PoincareBall",
                   claim="equals hypll 0.1.1's Poincare-ball math (Mobius addition, exp/log maps at 0 and at a point, gyration, transport, distance, midpoint, Frechet mean and variance) in float64")
def test_ball_matches_hypll():
    from hypll.manifolds.poincare_ball.math import diffgeom as hd
    from hypll.manifolds.poincare_ball.math import stats as hs

    c = torch.tensor(0.3, dtype=D)
    x, y = _points(40, 5, 0.3, seed=10), _points(40, 5, 0.3, seed=11)
    v = torch.randn(40, 5, dtype=D, generator=torch.Generator().manual_seed(12))
    tol = {"atol": 1e-12, "rtol": 1e-10}
    torch.testing.assert_close(pb.mobius_add(x, y, c), hd.mobius_add(x, y, c), **tol)
    torch.testing.assert_close(pb.expmap0(v, c), hd.expmap0(v, c), **tol)
    torch.testing.assert_close(pb.logmap0(x, c), hd.logmap0(x, c), **tol)
    torch.testing.assert_close(pb.expmap(x, v, c), hd.expmap(x, v, c), **tol)
    torch.testing.assert_close(pb.logmap(x, y, c), hd.logmap(x, y, c), **tol)
    torch.testing.assert_close(pb.gyration(x, y, v, c), hd.gyration(x, y, v, c), **tol)
    torch.testing.assert_close(pb.transp(x, y, v, c), hd.transp(x, y, v, c), **tol)
    torch.testing.assert_close(pb.dist(x, y, c), hd.dist(x, y, c), **tol)
    torch.testing.assert_close(pb.project(10 * x, c), hd.project(10 * x, c), **tol)
    pts = _points(40, 5, 0.3, radius=0.6, seed=13)
    torch.testing.assert_close(pb.poincare_midpoint(pts, c), hs.midpoint(pts, c), **tol)
    fm = pb.frechet_mean(pts, c)
    torch.testing.assert_close(fm, hs.frechet_mean(pts, c), atol=1e-9, rtol=1e-8)
    torch.testing.assert_close(pb.frechet_variance(pts, fm, c), hs.frechet_variance(pts, c, mu=fm), **tol)
    # the midpoint approximates the Frechet mean (close, not equal: the paper's cheaper batch statistic)
    gap = float(pb.dist(pb.poincare_midpoint(pts, c), fm, c))
    assert 0 < gap < 0.05 * float(pb.dist(pts, fm, c).mean())


@pytest.mark.claim(paper=54, artefact="PoincareConv2d",
                   claim="Poincare linear and 2-D convolution (beta-concatenation, stride, padding, 1x1 and 3x3) equal hypll's HLinear and HConvolution2d with copied weights (float64); the conv2d formulation equals the literal unfold path")
def test_linear_and_conv_match_hypll():
    from hypll.nn import HConvolution2d, HLinear
    from hypll.tensors import ManifoldTensor

    torch.manual_seed(0)
    c = 0.1
    hball = _hypll_ball(c)
    # linear
    ours = _exact_c(PoincareLinear(12, 7, c=c, id_init=False).double(), c)
    with torch.no_grad():
        ours.bias.normal_(0, 0.3)
    with _float64():
        ref = HLinear(12, 7, manifold=hball)
    with torch.no_grad():
        ref.z.tensor.copy_(ours.z)
        ref.bias.copy_(ours.bias)
    t = torch.randn(5, 12, dtype=D)
    want = hball.logmap(None, ref(ManifoldTensor(pb.expmap0(t, torch.tensor(c, dtype=D)), hball, -1))).tensor
    torch.testing.assert_close(ours(t), want, atol=1e-12, rtol=1e-10)
    # convolutions
    for cin, cout, k, s, p in ((3, 8, 3, 1, 1), (8, 16, 3, 2, 1), (8, 16, 1, 2, 0), (4, 5, 3, 1, 0)):
        ours = _exact_c(PoincareConv2d(cin, cout, k, s, p, c=c, id_init=False).double(), c)
        with torch.no_grad():
            ours.bias.normal_(0, 0.3)
        with _float64():
            ref = HConvolution2d(cin, cout, k, manifold=hball, stride=s, padding=p)
        with torch.no_grad():
            ref.weights.tensor.copy_(ours.weights)
            ref.bias.copy_(ours.bias)
        t = torch.randn(2, cin, 9, 9, dtype=D)
        want = ref(ManifoldTensor(pb.expmap0(t, torch.tensor(c, dtype=D), dim=1), hball, 1))
        want = hball.logmap(None, want).tensor
        got = ours(t)
        torch.testing.assert_close(got, want, atol=1e-11, rtol=1e-9)
        torch.testing.assert_close(ours.forward_unfold(t), got, atol=1e-11, rtol=1e-9)


@pytest.mark.claim(paper=54, artefact="PoincareBatchNorm2d",
                   claim="Poincare batch norm in training (midpoint and Frechet-mean options) equals hypll's HBatchNorm2d with copied learned mean and variance (float64), gradients included")
@pytest.mark.parametrize("use_midpoint", [True, False])
def test_batchnorm_matches_hypll(use_midpoint):
    from hypll.nn import HBatchNorm2d
    from hypll.tensors import ManifoldTensor

    torch.manual_seed(0)
    c = 0.1
    hball = _hypll_ball(c)
    ours = _exact_c(PoincareBatchNorm2d(6, c=c, use_midpoint=use_midpoint).double().train(), c)
    with torch.no_grad():
        ours.mean.normal_(0, 0.5)
        ours.var.fill_(0.7)
    with _float64():
        ref = HBatchNorm2d(6, manifold=hball, use_midpoint=use_midpoint)
    with torch.no_grad():
        ref.norm.bias.copy_(ours.mean)
        ref.norm.weight.copy_(ours.var)
    t = torch.randn(4, 6, 3, 3, dtype=D).requires_grad_()
    got = ours(t)
    want = hball.logmap(None, ref(ManifoldTensor(pb.expmap0(t, torch.tensor(c, dtype=D), dim=1), hball, 1))).tensor
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-8)
    if use_midpoint:  # hypll's Frechet mean has its own implicit backward; the midpoint path is plain autograd
        g = torch.randn_like(got)
        ga = torch.autograd.grad(got, (t, ours.mean, ours.var), g)
        gb = torch.autograd.grad(want, (t, ref.norm.bias, ref.norm.weight), g)
        for a, b in zip(ga, gb):
            torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)


def test_batchnorm_running_statistics():
    """Training moves the running mean / variance; evaluation uses them (the official code uses the test batch)."""
    torch.manual_seed(0)
    bn = PoincareBatchNorm2d(5, c=0.1).double()
    x = torch.randn(8, 5, 4, 4, dtype=D) + 1.0
    with torch.no_grad():
        bn.eval()
        torch.testing.assert_close(bn(x), x, atol=1e-5, rtol=1e-6)  # identity (up to the 1e-6 eps) before statistics
        bn.train()
        for _ in range(150):  # 0.9^150 ~ 1e-7 of the initial statistics left
            train_out = bn(x)
        bn.eval()
        torch.testing.assert_close(bn(x), train_out, atol=1e-4, rtol=1e-4)  # converged running statistics
        bn.track_running_stats = False
        torch.testing.assert_close(bn(x), train_out, atol=1e-12, rtol=1e-12)


# --- identity initialisation -----------------------------------------------------------------------------------

@pytest.mark.claim(paper=54, artefact="identity_init",
                   claim="identity initialisation keeps activation norms through 20 Poincare 1x1 conv layers (ratio within [0.5, 2]) while the HNN++ Gaussian initialisation collapses them towards the origin (ratio < 1e-3); a square Poincare FC at identity initialisation is exactly the identity")
def test_identity_init_keeps_norms():
    """The official 1/2 I over the (C_in k^2) x C_out matrix is the identity for 1x1 convolutions and square FCs;
    for a 3x3 kernel its rows pick unfold entries (channel 0, taps 0..8, channel 1, ...), i.e. a shifted copy of
    the first input channels, not a centre-tap identity (kept as the official code has it)."""
    torch.manual_seed(0)
    k = 1
    x = torch.randn(2, 16, 8, 8, dtype=D)
    n0 = x.norm(dim=1).mean()
    ratios = {}
    for identity in (True, False):
        layers = [PoincareConv2d(16, 16, k, 1, k // 2, c=0.1, id_init=identity).double() for _ in range(20)]
        h = x
        with torch.no_grad():
            for layer in layers:
                h = layer(h)
        ratios[identity] = float(h.norm(dim=1).mean() / n0)
    assert 0.5 <= ratios[True] <= 2.0, ratios
    assert ratios[False] < 1e-3, ratios
    # a square Poincare FC at identity initialisation is exactly the identity on the ball
    lin = PoincareLinear(9, 9, c=0.1).double()
    t = torch.randn(4, 9, dtype=D)
    torch.testing.assert_close(lin(t), t, atol=1e-10, rtol=1e-10)
    ball_x = pb.expmap0(t, torch.tensor(0.1, dtype=D))
    torch.testing.assert_close(poincare_fc(ball_x, lin.z.detach(), lin.bias.detach(), torch.tensor(0.1, dtype=D)),
                               ball_x, atol=1e-12, rtol=1e-10)


# --- counts ----------------------------------------------------------------------------------------------------

def _closed_form(kind: str, widths, depth: int, classes: int) -> int:
    """Parameters from the layer shapes of the official code: conv k^2 C_in C_out + C_out (biases on), BN 2C
    (Euclidean) or C + 1 (Poincare: mean vector and one variance), classifier C w3 + C (Poincare FC: z and r);
    the Euclidean net with hyperbolic classifier adds the classifier's learnable curvature."""
    n = (depth - 2) // 6
    bn = (lambda ch: ch + 1) if kind == "hyperbolic" else (lambda ch: 2 * ch)
    conv = lambda ci, co, k: k * k * ci * co + co
    total = conv(3, widths[0], 3) + bn(widths[0])
    cin = widths[0]
    for g, w in enumerate(widths):
        for i in range(n):
            total += conv(cin, w, 3) + conv(w, w, 3) + 2 * bn(w)
            if g > 0 and i == 0:
                total += conv(cin, w, 1)  # the stride-2 shortcut
            cin = w
    total += widths[2] * classes + classes
    return total + (kind == "euclideanwhypclass")


@pytest.mark.claim(paper=54, artefact="poincare_resnet20",
                   claim="hyperbolic-8-16-32-resnet-20 has 68,757 parameters for CIFAR-10 (71,727 for CIFAR-100), the closed form of the official layer shapes; the Euclidean baseline 69,082 (72,052)")
@pytest.mark.claim(paper=54, artefact="poincare_resnet32",
                   claim="hyperbolic-8-16-32-resnet-32 has 117,601 parameters for CIFAR-10 (120,571 for CIFAR-100); the Euclidean baseline 118,138 (121,108)")
def test_param_counts_closed_form():
    sheet = {  # sheet G1b, Sec. 3 (derived counts)
        ("hyperbolic", 20, 10): 68_757, ("hyperbolic", 20, 100): 71_727,
        ("euclidean", 20, 10): 69_082, ("euclidean", 20, 100): 72_052,
        ("hyperbolic", 32, 10): 117_601, ("hyperbolic", 32, 100): 120_571,
        ("euclidean", 32, 10): 118_138, ("euclidean", 32, 100): 121_108,
    }
    with torch.device("meta"):
        for (kind, depth, classes), want in sheet.items():
            assert _closed_form(kind, (8, 16, 32), depth, classes) == want
            model = from_official_name(f"{kind}-8-16-32-resnet-{depth}", classes)
            assert count_params(model) == want, (kind, depth, classes)
        for name, v in VARIANTS.items():
            kind, depth = v.official.split("-")[0], int(v.official.split("-")[-1])
            assert convzoo.get_card(name).params == v.params == _closed_form(kind, (8, 16, 32), depth, 10)
            assert count_params(convzoo.create_model(name)) == v.params


def test_official_names_and_errors():
    m = from_official_name("hyperbolic-4-8-16-resnet-8", 7)
    assert (m.kind, m.widths, m.depth, len(m.group1)) == ("hyperbolic", (4, 8, 16), 8, 1)
    assert isinstance(m.fc, PoincareLinear) and not m.fc.ball.learnable and float(m.fc.ball.c) == pytest.approx(0.1)
    e = from_official_name("euclideanwhypclass-8-16-32-resnet-20")
    assert e.fc.ball.learnable and float(e.fc.ball.c.detach()) == pytest.approx(math.log1p(math.e))  # official softplus(1)
    assert isinstance(from_official_name("euclidean-8-16-32-resnet-20").fc, torch.nn.Linear)
    for bad in ("hyperbolic-8-16-resnet-20", "poincare-8-16-32-resnet-20"):
        with pytest.raises(ConvzooError, match="resnet-depth"):
            from_official_name(bad)
    with pytest.raises(ConvzooError, match="6n"):
        PoincareResNet(depth=21)
    with pytest.raises(ConvzooError, match="c > 0"):
        PoincareConv2d(3, 4, c=0.0)
    # state-dict keys follow the official modules
    keys = set(convzoo.create_model("poincare_resnet20").state_dict())
    assert {"conv.weights", "bn.mean", "bn.var", "group2.0.downsample.weights", "group3.2.conv2.bias",
            "fc.z", "fc.bias"} <= keys


# --- recipes ---------------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=54, artefact="poincare_resnet20_cifar10_paper",
                   claim="the paper recipe holds the official train.py / train.sh values: Adam (Riemannian Adam on Euclidean parameters) lr 1e-3, weight decay 1e-4, batch 128, 100 epochs, CIFAR-10 with RandomCrop 32 pad 4 + flip and mean = std = 0.5")
def test_paper_recipe():
    from convzoo.engine import load_recipe

    r = load_recipe("poincare_resnet20_cifar10_paper")
    assert r["paper"] == 54 and r["model"]["name"] == "poincare_resnet20"
    assert "poincare_resnet20_cifar10_paper" in convzoo.get_card("poincare_resnet20").recipes
    assert (r["optimizer"]["name"], r["optimizer"]["lr"], r["optimizer"]["weight_decay"]) == ("adam", 1e-3, 1e-4)
    assert r["optimizer"]["decay_1d"] is True  # torch Adam's weight_decay on every parameter, as the official code
    assert (r["batch_size"], r["epochs"], r["schedule"]["name"]) == (128, 100, "constant")
    assert r["data"]["name"] == "cifar10" and r["data"]["kwargs"]["augment"] == "crop_flip"
    card = convzoo.get_card("poincare_resnet20")
    assert card.mean == card.std == (0.5, 0.5, 0.5) and card.input_size == (32, 32)


@pytest.mark.slow
@pytest.mark.claim(paper=54, artefact="poincare_resnet_digits",
                   claim="a hyperbolic-4-8-16-resnet-8 trained for 2 epochs with the CPU recipe on the real digits beats chance (chance 10%) with finite losses: >= 70% on the 360 validation images with the official batch-statistics evaluation, >= 30% with the running statistics that still lag after 68 steps")
def test_digits_run_beats_chance():
    from convzoo.data.digits import _load, digits_split
    from convzoo.engine import load_recipe
    from convzoo.engine.optim import build_optimizer

    r = load_recipe("poincare_resnet_digits")
    assert r["paper"] == 54 and "poincare_resnet_digits" in convzoo.get_card(r["model"]["name"]).recipes
    torch.manual_seed(0)
    model = convzoo.create_model(r["model"]["name"], num_classes=10, in_chans=1, **r["model"]["kwargs"])
    assert model.kind == "hyperbolic" and model.depth == 8 and count_params(model) < 6_000
    images, labels = _load()
    split = digits_split()
    x = ((torch.from_numpy(images) - 0.3053) / 0.3760).unsqueeze(1)  # (N, 1, 8, 8), the data set's normalisation
    y = torch.from_numpy(labels).long()
    tr, va = torch.as_tensor(split["train"]), torch.as_tensor(split["val"])
    opt = build_optimizer(model, r["optimizer"])
    g = torch.Generator().manual_seed(0)
    losses = []
    model.train()
    for _ in range(2):  # epochs over the 1,077 training images
        for idx in tr[torch.randperm(len(tr), generator=g)].split(r["batch_size"]):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
    assert np.isfinite(losses).all()
    model.eval()
    with torch.no_grad():
        running = float((model(x[va]).argmax(1) == y[va]).float().mean())
        for m in model.modules():  # the official evaluation: statistics of the evaluation batch
            if isinstance(m, PoincareBatchNorm2d):
                m.track_running_stats = False
        official = float((model(x[va]).argmax(1) == y[va]).float().mean())
    print(f"digits: val accuracy {official:.3f} (batch statistics), {running:.3f} (running statistics); "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert official >= 0.7 and running >= 0.3, (official, running, losses[::10])
