"""Paper 33: Inception-v4, Inception-ResNet-v1/-v2 (arXiv 1602.07261) and the TF-slim IR-v2 layout.

Checks parameter counts (timm's for the TF-slim layouts, an independent sum over the figures' conv
widths for the paper layouts), numerical parity with timm with weights converted by ``from_timm``,
the grid sizes / depths of Figs. 9 and 15 at 299 px (meta device: shapes without arithmetic), the
Reduction-A (k, l, m, n) table, the residual scaling of Sec. 3.3, the paper-vs-TF-slim factorisation
order, in_chans and the width multiplier.
"""

from __future__ import annotations

import pytest
import torch

import convzoo
from convzoo.errors import ConvzooError
from convzoo.models.inception_resnet import InceptionResNetBlock
from convzoo.models.inception_v4 import Conv
from convzoo.registry import count_params
from convzoo.weights.from_timm import from_timm

pytestmark = pytest.mark.paper(33)

NAMES = ["inception_v4", "inception_v4_paper", "inception_resnet_v1", "inception_resnet_v2_paper",
         "inception_resnet_v2"]
# timm 1.0.31, 1000 classes (fact sheet G1a "Paper 33" Sec. 2)
TIMM_COUNTS = {"inception_v4": 42_679_816, "inception_resnet_v2": 55_843_464}


def _meta(name: str, **kwargs):
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs)


def _randomise_bn(model: torch.nn.Module, seed: int = 1, he_convs: bool = False) -> None:
    """Random BN affine/statistics; ``he_convs``: He-normal conv weights too, so that the signal survives
    the 100+ layers of an eval-mode network (with PyTorch's default init the logits of a random
    Inception-v4 hardly depend on the input, which would make a parity check weak)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if he_convs and isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=g)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + (0.75 if he_convs else 0.25))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


# --- counts ------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=33, artefact="inception_v4", claim="42,679,816 parameters (timm's count)")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v2", claim="55,843,464 parameters (timm's count)")
@pytest.mark.parametrize("name", ["inception_v4", "inception_v4_paper", "inception_resnet_v2"])
def test_params_match_timm_count(name):
    base = name.removesuffix("_paper")
    assert count_params(_meta(name)) == TIMM_COUNTS[base]


@pytest.mark.claim(paper=33, artefact="inception_resnet_v2",
                   claim="paper-figure layout counted independently from the figure widths")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v1",
                   claim="parameter count from the paper's figure widths")
@pytest.mark.parametrize("name,version,depths", [
    ("inception_resnet_v1", 1, (256, 896, 1792)),  # Figs. 14 / 7 (Table 1) / 12 depths as printed
    ("inception_resnet_v2_paper", 2, (384, 1152, 2144)),  # 384 printed in Fig. 3; 1152, 2144 = sums
])
def test_paper_layout_count_from_figures(name, version, depths):
    total = _figure_ir(version).params  # the ledger below, summed from the figures' widths
    model = _meta(name)
    assert count_params(model) == total
    assert convzoo.get_card(name).params == total  # the card states the figure-derived count exactly
    assert [model.feature_info[i]["num_chs"] for i in (2, 3, 4)] == list(depths)


# --- multiply-accumulates at 299 px, summed layer by layer from the figures -------------------------------

class _Ledger:
    """Conv/FC layers of a figure: parameters (conv no bias + BN; linear 1x1 conv and FC with bias) and
    MACs = cin * cout * kh * kw * out_h * out_w (what FlopCounterMode / 2 counts: convolutions and the FC;
    pooling, BN, residual additions and scalings carry no multiply-accumulate of a conv/FC)."""

    def __init__(self):
        self.params = self.macs = 0

    def conv(self, cin, cout, k, out, bn=True):  # k: int or (kh, kw); out: output side
        kh, kw = (k, k) if isinstance(k, int) else k
        self.params += cin * cout * kh * kw + (2 * cout if bn else cout)
        self.macs += cin * cout * kh * kw * out * out
        return cout

    def fc(self, cin, cout):
        self.params += cin * cout + cout
        self.macs += cin * cout


def _stem_v4(g: _Ledger, cin=3) -> int:
    """Fig. 3, 299 -> 35x35x384 ("V" = valid: (n - k) / s + 1)."""
    g.conv(cin, 32, 3, 149), g.conv(32, 32, 3, 147), g.conv(32, 64, 3, 147)
    g.conv(64, 96, 3, 73)  # 3x3/2 V beside the 3x3/2 max-pool -> 160
    g.conv(160, 64, 1, 73), g.conv(64, 96, 3, 71)
    g.conv(160, 64, 1, 73), g.conv(64, 64, (7, 1), 73), g.conv(64, 64, (1, 7), 73), g.conv(64, 96, 3, 71)
    g.conv(192, 192, 3, 35)  # 3x3/2 V beside the max-pool -> 384
    return 384


def _reduction_a(g: _Ledger, c, k, l, m, n) -> int:  # Fig. 7, 35 -> 17
    g.conv(c, n, 3, 17), g.conv(c, k, 1, 35), g.conv(k, l, 3, 35), g.conv(l, m, 3, 17)
    return c + n + m


def _figure_v4() -> _Ledger:
    """Inception-v4, Fig. 9 with Figs. 3-8 (the widths of fact sheet G1a Paper 33 Sec. 3)."""
    g = _Ledger()
    c = _stem_v4(g)
    for _ in range(4):  # Inception-A, Fig. 4, 35x35
        g.conv(c, 96, 1, 35), g.conv(c, 96, 1, 35), g.conv(c, 64, 1, 35), g.conv(64, 96, 3, 35)
        g.conv(c, 64, 1, 35), g.conv(64, 96, 3, 35), g.conv(96, 96, 3, 35)
    c = _reduction_a(g, c, 192, 224, 256, 384)
    for _ in range(7):  # Inception-B, Fig. 5, 17x17
        g.conv(c, 128, 1, 17), g.conv(c, 384, 1, 17)
        g.conv(c, 192, 1, 17), g.conv(192, 224, (1, 7), 17), g.conv(224, 256, (7, 1), 17)
        g.conv(c, 192, 1, 17), g.conv(192, 192, (1, 7), 17), g.conv(192, 224, (7, 1), 17)
        g.conv(224, 224, (1, 7), 17), g.conv(224, 256, (7, 1), 17)
    g.conv(c, 192, 1, 17), g.conv(192, 192, 3, 8)  # Reduction-B, Fig. 8
    g.conv(c, 256, 1, 17), g.conv(256, 256, (1, 7), 17), g.conv(256, 320, (7, 1), 17), g.conv(320, 320, 3, 8)
    c = c + 192 + 320
    for _ in range(3):  # Inception-C, Fig. 6, 8x8
        g.conv(c, 256, 1, 8), g.conv(c, 256, 1, 8)
        g.conv(c, 384, 1, 8), g.conv(384, 256, (1, 3), 8), g.conv(384, 256, (3, 1), 8)
        g.conv(c, 384, 1, 8), g.conv(384, 448, (1, 3), 8), g.conv(448, 512, (3, 1), 8)
        g.conv(512, 256, (1, 3), 8), g.conv(512, 256, (3, 1), 8)
    g.fc(c, 1000)
    return g


def _figure_ir(version: int) -> _Ledger:
    """Inception-ResNet-v1 (Figs. 14, 10, 7, 11, 12, 13, 15) / -v2 (Figs. 3, 16, 7, 17, 18, 19, 15) at 299."""
    g = _Ledger()
    if version == 1:  # Fig. 14
        g.conv(3, 32, 3, 149), g.conv(32, 32, 3, 147), g.conv(32, 64, 3, 147)  # then 3x3/2 max-pool -> 73
        g.conv(64, 80, 1, 73), g.conv(80, 192, 3, 71), g.conv(192, 256, 3, 35)
        c, a, kmln = 256, (32, 32, 32, 32, 32, 32), (192, 192, 256, 384)
    else:
        c, a, kmln = _stem_v4(g), (32, 32, 32, 32, 48, 64), (256, 256, 384, 384)
    for _ in range(5):  # Inception-ResNet-A (Fig. 10 / 16), 35x35, linear 1x1 back to c
        g.conv(c, a[0], 1, 35), g.conv(c, a[1], 1, 35), g.conv(a[1], a[2], 3, 35)
        g.conv(c, a[3], 1, 35), g.conv(a[3], a[4], 3, 35), g.conv(a[4], a[5], 3, 35)
        g.conv(a[0] + a[2] + a[5], c, 1, 35, bn=False)
    c = _reduction_a(g, c, *kmln)
    for _ in range(10):  # Inception-ResNet-B (Fig. 11 / 17), 17x17
        if version == 1:
            g.conv(c, 128, 1, 17), g.conv(c, 128, 1, 17), g.conv(128, 128, (1, 7), 17), g.conv(128, 128, (7, 1), 17)
            g.conv(256, c, 1, 17, bn=False)
        else:
            g.conv(c, 192, 1, 17), g.conv(c, 128, 1, 17), g.conv(128, 160, (1, 7), 17), g.conv(160, 192, (7, 1), 17)
            g.conv(384, c, 1, 17, bn=False)
    r = (384, 256, 256, 256) if version == 1 else (384, 288, 288, 320)  # Reduction-B, Fig. 12 / 18
    g.conv(c, 256, 1, 17), g.conv(256, r[0], 3, 8)
    g.conv(c, 256, 1, 17), g.conv(256, r[1], 3, 8)
    g.conv(c, 256, 1, 17), g.conv(256, r[2], 3, 17), g.conv(r[2], r[3], 3, 8)
    c = c + r[0] + r[1] + r[3]
    for _ in range(5):  # Inception-ResNet-C (Fig. 13 / 19), 8x8
        if version == 1:
            g.conv(c, 192, 1, 8), g.conv(c, 192, 1, 8), g.conv(192, 192, (1, 3), 8), g.conv(192, 192, (3, 1), 8)
            g.conv(384, c, 1, 8, bn=False)
        else:
            g.conv(c, 192, 1, 8), g.conv(c, 192, 1, 8), g.conv(192, 224, (1, 3), 8), g.conv(224, 256, (3, 1), 8)
            g.conv(448, c, 1, 8, bn=False)
    g.fc(c, 1000)
    return g


def _flop_macs(model, size=299) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    return counter.get_total_flops() // 2


@pytest.mark.claim(paper=33, artefact="inception_resnet_v1",
                   claim="MACs at 299 px = closed form summed layer by layer from Figs. 7, 10-15 (6,206,361,696)")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v2",
                   claim="paper-figure layout: MACs at 299 px = closed form from Figs. 3, 7, 15-19 (9,257,953,632)")
@pytest.mark.claim(paper=33, artefact="inception_v4",
                   claim="MACs at 299 px = closed form from Figs. 3-9 (12,253,974,624; fact sheet: 12.254 G, timm)")
@pytest.mark.parametrize("name,ledger", [
    ("inception_resnet_v1", lambda: _figure_ir(1)), ("inception_resnet_v2_paper", lambda: _figure_ir(2)),
    ("inception_v4", _figure_v4), ("inception_v4_paper", _figure_v4)])
def test_macs_closed_form_from_figures(name, ledger):
    g = ledger()
    card = convzoo.get_card(name)
    model = _meta(name).eval()
    assert _flop_macs(model) == g.macs == card.macs and card.macs_rtol == 0.0
    assert count_params(model) == g.params == card.params
    if name.startswith("inception_v4"):  # the outside figures: timm's count, the sheet's 12.254 GMACs
        assert g.params == TIMM_COUNTS["inception_v4"] and round(g.macs / 1e9, 3) == 12.254


@pytest.mark.claim(paper=33, artefact="inception_resnet_v2",
                   claim="13.156 GMACs at 299 px (fact sheet: timm inception_resnet_v2, 3 decimals)")
def test_tf_slim_ir_v2_macs_match_timm_figure():
    card = convzoo.get_card("inception_resnet_v2")
    assert card.macs == 13_156_000_000 and card.macs_rtol == pytest.approx(0.0005 / 13.156)
    assert round(_flop_macs(_meta("inception_resnet_v2")) / 1e9, 3) == 13.156


# --- grid sizes (Figs. 3, 9, 14, 15) ----------------------------------------------------------------------

GRIDS = {  # (channels, size) of the five feature maps at 299 px
    "inception_v4": [(64, 147), (160, 73), (384, 35), (1024, 17), (1536, 8)],
    "inception_v4_paper": [(64, 147), (160, 73), (384, 35), (1024, 17), (1536, 8)],
    "inception_resnet_v1": [(64, 147), (192, 71), (256, 35), (896, 17), (1792, 8)],
    "inception_resnet_v2_paper": [(64, 147), (160, 73), (384, 35), (1152, 17), (2144, 8)],
    "inception_resnet_v2": [(64, 147), (192, 71), (320, 35), (1088, 17), (1536, 8)],
}


@pytest.mark.claim(paper=33, artefact="InceptionBlocks", claim="grid sizes 35/17/8 at 299 px")
@pytest.mark.parametrize("name", NAMES)
def test_grid_sizes_at_299(name):
    model = _meta(name).eval()
    x = torch.empty(1, 3, 299, 299, device="meta")
    feats = model.features(x)
    assert [(f.shape[1], f.shape[2]) for f in feats] == GRIDS[name]
    assert [(i["num_chs"], i["reduction"]) for i in model.feature_info] == [
        (c, r) for (c, _), r in zip(GRIDS[name], (2, 4, 8, 16, 32))]
    assert tuple(model.forward_features(x).shape) == (1, model.num_features, 8, 8)
    assert tuple(model(x).shape) == (1, 1000)


@pytest.mark.claim(paper=33, artefact="InceptionBlocks",
                   claim="Reduction-A (k, l, m, n) per network as Table 1")
@pytest.mark.parametrize("name,kmln", [
    ("inception_v4", (192, 224, 256, 384)), ("inception_resnet_v1", (192, 192, 256, 384)),
    ("inception_resnet_v2_paper", (256, 256, 384, 384)), ("inception_resnet_v2", (256, 256, 384, 384)),
])
def test_reduction_a_table1(name, kmln):
    ra = _meta(name).reduction_a
    got = (ra.branch1[0].conv.out_channels, ra.branch1[1].conv.out_channels, ra.branch1[2].conv.out_channels,
           ra.branch0.conv.out_channels)
    assert got == kmln
    assert ra.branch0.conv.stride == ra.branch1[2].conv.stride == (2, 2)
    assert ra.branch0.conv.padding == ra.branch1[2].conv.padding == (0, 0)  # "V"


@pytest.mark.claim(paper=33, artefact="InceptionBlocks", claim="paper vs TF-slim factorisation order")
def test_factorisation_order_paper_vs_tf_slim():
    slim, paper = _meta("inception_v4"), _meta("inception_v4_paper")
    ks = lambda seq: [m.conv.kernel_size for m in seq[1:]]
    assert ks(paper.inception_b[0].branch2) == [(1, 7), (7, 1), (1, 7), (7, 1)]  # Fig. 5
    assert ks(slim.inception_b[0].branch2) == [(7, 1), (1, 7), (7, 1), (1, 7)]  # TF-slim
    c_p, c_s = paper.inception_c[0], slim.inception_c[0]
    assert (c_p.branch2_1.conv.kernel_size, c_p.branch2_2.conv.kernel_size) == ((1, 3), (3, 1))  # Fig. 6
    assert (c_s.branch2_1.conv.kernel_size, c_s.branch2_2.conv.kernel_size) == ((3, 1), (1, 3))
    with pytest.raises(ConvzooError, match="order"):
        convzoo.create_model("inception_v4", order="fig")


# --- residual scaling (Sec. 3.3) -----------------------------------------------------------------------

@pytest.mark.claim(paper=33, artefact="InceptionResNetBlocks",
                   claim="relu(x + s * linear_1x1(concat(branches)))")
@pytest.mark.claim(paper=33, artefact="residual_scaling",
                   claim="residuals scaled by 0.1-0.3 before the addition (Sec. 3.3)")
@pytest.mark.parametrize("scale", [0.0, 0.1, 0.3])
def test_residual_block_scales_the_residual(scale):
    fig16 = [[Conv(32)], [Conv(32), Conv(32, 3)], [Conv(32), Conv(48, 3), Conv(64, 3)]]  # Fig. 16 branches
    block = InceptionResNetBlock(24, fig16, scale).eval()
    _randomise_bn(block)
    x = torch.randn(2, 24, 9, 9)
    with torch.no_grad():
        r = torch.cat([block.branch0(x), block.branch1(x), block.branch2(x)], 1)
        expected = torch.relu(x + scale * block.proj(r))
        assert block.proj(r).abs().max() > 0.1  # the residual is not negligible
        torch.testing.assert_close(block(x), expected, rtol=1e-6, atol=1e-6)
        if scale == 0.0:
            assert torch.equal(block(x), torch.relu(x))  # identity -> ReLU
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in (block.proj, block.act))  # no BN after the sum


@pytest.mark.claim(paper=33, artefact="residual_scaling",
                   claim="residuals scaled by 0.1-0.3 before the addition (Sec. 3.3)")
@pytest.mark.parametrize("name", ["inception_resnet_v1", "inception_resnet_v2_paper", "inception_resnet_v2"])
def test_models_apply_paper_scales(name):
    model = _meta(name)
    blocks = [m for m in model.modules() if isinstance(m, InceptionResNetBlock)]
    scaled = [b for b in blocks if isinstance(b.act, torch.nn.ReLU)]
    assert all(0.1 <= b.scale <= 0.3 for b in scaled)  # Sec. 3.3
    assert [b.scale for b in model.blocks_a] == [0.17] * len(model.blocks_a)
    assert [b.scale for b in model.blocks_b] == [0.10] * len(model.blocks_b)
    depths = (len(model.blocks_a), len(model.blocks_b), len(model.blocks_c))
    if name == "inception_resnet_v2":  # TF-slim: 10/20/9 + one linear Block8 with scale 1.0
        assert depths == (10, 20, 10) and len(scaled) == 39
        assert model.blocks_c[-1].scale == 1.0 and isinstance(model.blocks_c[-1].act, torch.nn.Identity)
    else:
        assert depths == (5, 10, 5) and len(scaled) == 20  # Fig. 15
    alt = _meta(name, scales=(0.3, 0.2, 0.1))
    assert {b.scale for b in alt.blocks_a} == {0.3}


# --- parity with timm (weights copied by from_timm) -----------------------------------------------------

@pytest.fixture(scope="module", params=["inception_v4", "inception_resnet_v2"])
def timm_pair(request):
    import timm
    name = request.param
    torch.manual_seed(0)
    ref = timm.create_model(name).eval()
    _randomise_bn(ref, he_convs=True)
    ours = convzoo.create_model(name).eval()
    ours.load_state_dict(from_timm(name, ref.state_dict()))  # strict: every key mapped, no key left
    return name, ref, ours


@pytest.mark.claim(paper=33, artefact="inception_v4",
                   claim="numerical parity with timm inception_v4 through from_timm (max abs diff 0.0)")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v2",
                   claim="numerical parity with timm inception_resnet_v2 through from_timm (max abs diff 0.0)")
@pytest.mark.parity
def test_timm_parity(timm_pair):
    name, ref, ours = timm_pair
    assert count_params(ours) == count_params(ref) == TIMM_COUNTS[name]
    x = torch.randn(2, 3, 75, 75, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # one pass each: the last feature map is the unpooled body output
        fa = ours.features(x)
        last_b, fb = ref.forward_intermediates(x)
        a, b = ours.forward_head(fa[-1]), ref.forward_head(last_b)
    assert (b[0] - b[1]).abs().max() > 0.01 * b.abs().max()  # the logits depend on the input
    assert (a - b).abs().max() <= 1e-5
    assert [tuple(f.shape) for f in fa] == [tuple(f.shape) for f in fb]
    assert max((p - q).abs().max().item() for p, q in zip(fa, fb)) <= 1e-5
    assert ours.forward_head(fa[-1], pre_logits=True).shape == (2, 1536)


@pytest.mark.claim(paper=33, artefact="inception_v4",
                   claim="numerical parity with timm inception_v4 through from_timm (max abs diff 0.0)")
def test_from_timm_rejects_unknown_and_foreign_dicts():
    with pytest.raises(ConvzooError, match="inception_v4"):
        from_timm("inception_v44", {})
    w = torch.zeros(1)
    with pytest.raises(ConvzooError, match="map twice"):
        from_timm("inception_resnet_v2", {"repeat.0.conv2d.weight": w, "repeat.0.proj.weight": w})


# --- in_chans, width, head ------------------------------------------------------------------------------

@pytest.mark.claim(paper=33, artefact="inception_v4", claim="in_chans=1")
@pytest.mark.parametrize("name", NAMES)
def test_in_chans_1(name):
    model = _meta(name, in_chans=1, num_classes=10).eval()
    assert model.stem[0].conv.weight.shape == (32, 1, 3, 3)
    assert model.head.drop.p == 0.2  # dropout keep 0.8 (Figs. 9 / 15)
    assert tuple(model(torch.empty(2, 1, 299, 299, device="meta")).shape) == (2, 10)
    assert count_params(model) == convzoo.get_card(name).params - 2 * 32 * 9 - 990 * (model.num_features + 1)


@pytest.mark.claim(paper=33, artefact="inception_v4_imagenet_paper",
                   claim="reduced-width network (CPU-scale recipe) runs")
def test_reduced_width_runs():
    full = _meta("inception_v4")
    small = convzoo.create_model("inception_v4", in_chans=1, num_classes=10, width=0.25).eval()
    assert small.num_features == 384 and count_params(small) < count_params(full) / 12
    with torch.no_grad():
        assert small(torch.randn(2, 1, 75, 75)).shape == (2, 10)
