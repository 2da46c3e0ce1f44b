"""Paper 21, SpaRTAN (arXiv 2507.10999): the shipped 3.8M configuration, SMixer and CMixer.

Checks the parameter count (3,820,296) and MACs (1.044 G at 256 px, 0.800 G at 224, conv + linear as
FlopCounterMode counts them) of the official configuration; CMixer's complex multiply against the explicit
real form and against ``torch.view_as_complex`` (the official formulation), its arg-max gather against a
one-hot reference, and its fp32 complex step under bf16 autocast; SMixer's feature decomposition (no effect
on spatially constant maps) and the 3x3 / 9x9 receptive fields of its two branches; the dense/grouped split
of the stages, the stochastic-depth schedule, the official state-dict keys and a functional re-statement of
the official forward (random weights, random BN statistics, eval), eval determinism, features at strides
4-32, and the official weight-decay split expressed by the recipes' ``param_groups``.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torchvision.ops import StochasticDepth

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers import spartan_mixers
from convzoo.layers.spartan_mixers import CMixer, SMixer, complex_multiply
from convzoo.models.spartan import SpaRTAN, no_weight_decay_names
from convzoo.registry import count_params
from convzoo.testing import batch_norms, deploy_outputs, randomise_bn

pytestmark = pytest.mark.paper(21)

SHEET_PARAMS = 3_820_296  # fact sheet G1a Paper 21 Sec. 3 (official module, 1000 classes); the paper's "3.8M"
SHEET_GMACS = {224: 0.800, 256: 1.044}  # conv/linear only, 3 decimals; the paper's "approximately 1.0 GFLOPs"
# MACs of the official module (henry-pay/SpaRTAN 1715a43 src/model/spartan.py built with
# src/config/model/spartan.yaml, 1000 classes), counted with torch FlopCounterMode on the meta device
OFFICIAL_MACS = {224: 799_589_888, 256: 1_044_147_968}
# the official src/config/model/spartan.yaml: layer_depths, init_dim + dims, expand_ratios
OFFICIAL_CFG = {"depths": (3, 3, 12, 2), "dims": (32, 64, 128, 256), "expand_ratios": (4, 4, 2, 2)}
TINY = {"depths": (1, 1, 2, 1), "dims": (16, 16, 32, 32), "expand_ratios": (4, 4, 2, 2)}


def _meta(**kwargs) -> SpaRTAN:
    with torch.device("meta"):
        return convzoo.create_model("spartan_t", **kwargs)


# --- counts ---------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=21, artefact="spartan_t", claim="parameter count equals the sheet (3,820,296)")
def test_params_match_sheet():
    model = _meta()
    assert count_params(model) == SHEET_PARAMS == convzoo.get_card("spartan_t").params
    assert sum(isinstance(m, SMixer) for m in model.modules()) == sum(OFFICIAL_CFG["depths"]) == 20


def _closed_form_macs(size: int, depths=(3, 3, 12, 2), dims=(32, 64, 128, 256), ratios=(4, 4, 2, 2),
                      classes: int = 1000) -> int:
    """Conv + linear MACs summed layer by layer from the paper's / official structure (fact sheet Sec. 1):
    stem 3x3/2 3 -> C0/2 and 3x3/2 C0/2 -> C0; per block, SMixer = 1x1 C -> h (h = C/2), three 3x3 convs on h
    (dense in stages 1-2, depth-wise in 3-4), two SEs h -> h/4 -> h on the pooled vector, 1x1 C -> C; CMixer =
    two 1x1 C -> n (n = rC), 3x3 on n (groups n early, C late: r inputs per group), SE n -> C/4 -> n, 1x1 n -> C;
    2x2/2 downsampling; linear."""
    r0 = size // 4
    macs = (size // 2) ** 2 * (dims[0] // 2) * 3 * 9 + r0 ** 2 * dims[0] * (dims[0] // 2) * 9
    for s, (d, c, r) in enumerate(zip(depths, dims, ratios)):
        res2, h, n, late = (r0 >> s) ** 2, c // 2, c * r, s >= len(depths) // 2
        smixer = res2 * (h * c + 3 * h * (1 if late else h) * 9 + c * c) + 2 * 2 * h * (h // 4)
        cmixer = res2 * (2 * n * c + n * (r if late else 1) * 9 + c * n) + 2 * n * (c // 4)
        macs += d * (smixer + cmixer)
        if s < len(depths) - 1:
            macs += (r0 >> (s + 1)) ** 2 * dims[s + 1] * c * 4
    return macs + dims[-1] * classes


@pytest.mark.claim(paper=21, artefact="spartan_t",
                   claim="MACs at 224 / 256 px equal the official module's (FlopCounterMode on henry-pay/SpaRTAN spartan.py) and a closed form summed from the paper's structure; round to the sheet's 0.800 / 1.044 G")
@pytest.mark.parametrize("size", [224, 256])
def test_macs_match_sheet(size):
    model = _meta().eval()
    with torch.device("meta"):
        x = torch.empty(1, 3, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    macs = counter.get_total_flops() // 2
    assert macs == OFFICIAL_MACS[size] == _closed_form_macs(size)
    assert round(macs / 1e9, 3) == SHEET_GMACS[size]
    # what the convention counts: convolutions and the classifier's addmm only; the complex multiply,
    # the gathers, norms and activations are element-wise and not counted
    assert {str(op) for op in counter.get_flop_counts()["Global"]} == {"aten.convolution", "aten.addmm"}
    if size == 256:
        card = convzoo.get_card("spartan_t")
        assert card.input_size == (256, 256) and card.macs == OFFICIAL_MACS[256] and card.macs_rtol == 0.0


# --- CMixer -----------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=21, artefact="CMixer",
                   claim="complex multiply equals (a+ib)(c+id) on interleaved channel pairs and torch.view_as_complex (official form)")
def test_complex_multiply_equals_real_form_on_interleaved_pairs():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 12, 3, 4, generator=g)
    weight = torch.randn(1, 1, 1, 6, 2, generator=g)
    out = complex_multiply(feat, weight)
    for k in range(6):
        a, b = feat[:, 2 * k], feat[:, 2 * k + 1]  # (a + ib): channel 2k real, 2k+1 imaginary
        c, d = weight[0, 0, 0, k]  # (c + id)
        torch.testing.assert_close(out[:, 2 * k], a * c - b * d, rtol=0, atol=1e-6)
        torch.testing.assert_close(out[:, 2 * k + 1], a * d + b * c, rtol=0, atol=1e-6)
    # the official formulation: channels last, pairs as complex numbers, torch's complex product
    z = torch.view_as_complex(feat.permute(0, 2, 3, 1).reshape(2, 3, 4, 6, 2).contiguous())
    ref = torch.view_as_real(torch.view_as_complex(weight) * z).reshape(2, 3, 4, 12).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


@pytest.mark.claim(paper=21, artefact="CMixer", claim="arg-max channel gather equals a one-hot reference")
def test_argmax_gather_matches_one_hot_reference():
    torch.manual_seed(0)
    mixer = CMixer(8, 4).eval()
    x = torch.randn(2, 8, 5, 6)
    with torch.no_grad():
        feat = mixer.aggregate(x)
        theta, w = F.gelu(mixer.theta(x)), mixer.proj(x)  # (B, 32, H, W)
        one_hot = F.one_hot(x.argmax(1), num_classes=32).permute(0, 3, 1, 2).float()  # over the rC channels
        theta_max = (theta * one_hot).sum(1, keepdim=True)
        w_max = (w * one_hot).sum(1, keepdim=True)
    torch.testing.assert_close(feat, w * theta + w_max * theta_max, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(feat, w * theta)  # the gathered term is really there


@pytest.mark.claim(paper=21, artefact="CMixer",
                   claim="complex step runs in fp32 with autocast off under bf16 autocast")
def test_complex_step_runs_in_fp32_under_bf16_autocast(monkeypatch):
    seen = []

    def spy(feat, weight):
        seen.append((feat.dtype, weight.dtype, torch.is_autocast_enabled("cpu")))
        return complex_multiply(feat, weight)

    monkeypatch.setattr(spartan_mixers, "complex_multiply", spy)
    torch.manual_seed(0)
    mixer = CMixer(16, 2).eval()
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        feat = mixer.aggregate(x)
        assert feat.dtype == torch.bfloat16  # the 1x1 convs do run in bf16
        out = mixer.modulate(feat)
        y = mixer(x)
    assert seen == [(torch.float32, torch.float32, False)] * 2
    assert out.dtype == torch.float32 and y.dtype == torch.bfloat16
    # the product is the exact fp32 product of the bf16 features, not a bf16 product
    exact = complex_multiply(feat.float(), mixer.complex.detach())
    assert torch.equal(out, exact)
    rounded = complex_multiply(feat, mixer.complex.detach().bfloat16()).float()
    assert not torch.equal(out, rounded)


@pytest.mark.claim(paper=21, artefact="CMixer",
                   claim="complex step runs in fp32 with autocast off under bf16 autocast")
def test_whole_model_under_bf16_autocast():
    model = convzoo.create_model("spartan_t", num_classes=10, **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.05 * ref.abs().max().item() + 1e-3, rtol=0.05)


# --- SMixer -----------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=21, artefact="SMixer",
                   claim="feature decomposition x + gamma (x - GAP x) is zero for spatially constant maps")
def test_feature_decomposition_is_zero_for_spatially_constant_maps():
    torch.manual_seed(0)
    mixer = SMixer(16).eval()
    const = torch.randn(2, 8, 1, 1).expand(2, 8, 5, 5)
    assert torch.equal(mixer.feature_decomposition(const), const)  # x - GAP(x) == 0 exactly
    other = copy.deepcopy(mixer)
    with torch.no_grad():
        other.gamma.normal_(0, 3.0)
        xc = torch.randn(2, 16, 1, 1).expand(2, 16, 7, 7)  # constant input map: output independent of gamma
        torch.testing.assert_close(other(xc), mixer(xc), rtol=0, atol=1e-6)
        xv = torch.randn(2, 16, 7, 7)  # a varying map: gamma matters
        assert (other(xv) - mixer(xv)).abs().max() > 1e-2


def _footprint(branch: torch.nn.Module, channels: int, size: int = 21) -> tuple[int, int]:
    x = torch.randn(1, channels, size, size, requires_grad=True)
    branch(x)[0, :, size // 2, size // 2].sum().backward()
    rows = x.grad.abs().sum((0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum((0, 1, 2)).nonzero().flatten()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.claim(paper=21, artefact="SMixer",
                   claim="receptive fields: 3x3 branch 3x3, two dilation-2 3x3 convs 9x9 (gradient footprint); dense in stages 1-2, depth-wise in 3-4")
@pytest.mark.parametrize("grouped", [False, True])
def test_receptive_fields_3x3_and_dilated_9x9(grouped):
    torch.manual_seed(0)
    mixer = SMixer(16, grouped=grouped).eval()
    assert _footprint(mixer.l_conv, 8) == (9, 9)  # two 3x3 convs with dilation 2: 1 + 2 * 2 * 2
    assert _footprint(mixer.h_conv, 8) == (3, 3)
    convs = [mixer.h_conv.conv, mixer.l_conv[0].conv, mixer.l_conv[1].conv]
    assert [c.dilation for c in convs] == [(1, 1), (2, 2), (2, 2)]
    assert {c.groups for c in convs} == {8 if grouped else 1}
    assert not hasattr(mixer.l_conv[0], "norm") and not hasattr(mixer.l_conv[0], "act")


# --- structure ----------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=21, artefact="SMixer",
                   claim="receptive fields: 3x3 branch 3x3, two dilation-2 3x3 convs 9x9 (gradient footprint); dense in stages 1-2, depth-wise in 3-4")
def test_dense_then_grouped_stages_and_drop_path_schedule():
    model = _meta()
    blocks = [m for m in model.layers if hasattr(m, "smixer")]
    depths, dims, ratios = (OFFICIAL_CFG[k] for k in ("depths", "dims", "expand_ratios"))
    stage = [s for s, d in enumerate(depths) for _ in range(d)]
    for b, s in zip(blocks, stage, strict=True):
        c, r = dims[s], ratios[s]
        assert b.smixer.h_conv.conv.groups == (1 if s < 2 else c // 2)
        assert b.cmixer.conv.conv.groups == (c * r if s < 2 else c)
        assert b.cmixer.complex.shape == (c * r // 2, 2)  # (1, 1, 1, rC/2, 2) in state dicts
        assert b.cmixer.attn.squeeze.out_channels == c // 4 and b.smixer.h_attn.squeeze.out_channels == c // 8
    rates = [b.dropout_1.p for b in blocks]
    assert rates == pytest.approx([0.1 * i / 20 for i in range(20)]) and rates == [b.dropout_2.p for b in blocks]
    downs = [m for m in model.layers if not hasattr(m, "smixer")]
    assert [(d.conv.kernel_size, d.conv.stride, type(d.act).__name__) for d in downs] == [((2, 2), (2, 2), "SiLU")] * 3
    assert [type(m.act).__name__ for m in model.conv] == ["GELU", "GELU"]  # official stem: GELU on both convs
    assert all(m.eps == 1e-6 for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)))
    assert all(m.num_groups == 1 for m in model.modules() if isinstance(m, torch.nn.GroupNorm))


def test_drop_path_per_sample():
    block = next(m for m in SpaRTAN(drop_path_rate=0.5).layers if hasattr(m, "smixer"))
    assert isinstance(block.dropout_1, StochasticDepth) and block.dropout_1.mode == "row"
    layer = StochasticDepth(0.5, "row").train()
    x = torch.ones(64, 3, 2, 2)
    y = layer(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 2.0}  # dropped or scaled by 1 / (1 - p)
    assert (per_sample == per_sample[:, :1]).all()  # one decision per sample
    assert torch.equal(layer.eval()(x), x)


def _official_keys(depths, dims, ratios, num_classes=1000) -> dict[str, tuple]:
    """State-dict keys and shapes of the official ``SpaRTAN`` module, written from its structure."""
    bn = lambda p, c: {f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,),
                       f"{p}.running_var": (c,), f"{p}.num_batches_tracked": ()}
    keys = {"conv.0.conv.weight": (dims[0] // 2, 3, 3, 3), "conv.1.conv.weight": (dims[0], dims[0] // 2, 3, 3),
            **bn("conv.0.norm", dims[0] // 2), **bn("conv.1.norm", dims[0]),
            "linear.weight": (num_classes, dims[-1]), "linear.bias": (num_classes,)}
    i = 0
    for s, (depth, c, r) in enumerate(zip(depths, dims, ratios)):
        h, n, late = c // 2, c * r, s >= len(depths) // 2
        for _ in range(depth):
            p = f"layers.{i}"
            keys.update({f"{p}.scale_1": (1, c, 1, 1), f"{p}.scale_2": (1, c, 1, 1), f"{p}.norm_1.weight": (c,),
                         f"{p}.norm_1.bias": (c,), f"{p}.norm_2.weight": (c,), f"{p}.norm_2.bias": (c,)})
            sm, kin = f"{p}.smixer", 1 if late else h
            keys.update({f"{sm}.gamma": (1, h, 1, 1), f"{sm}.proj_in.weight": (h, c, 1, 1), f"{sm}.proj_in.bias": (h,),
                         f"{sm}.h_conv.conv.weight": (h, kin, 3, 3), f"{sm}.l_conv.0.conv.weight": (h, kin, 3, 3),
                         f"{sm}.l_conv.1.conv.weight": (h, kin, 3, 3), **bn(f"{sm}.h_conv.norm", h),
                         **bn(f"{sm}.l_conv.1.norm", h), f"{sm}.proj_out.weight": (c, c, 1, 1), f"{sm}.proj_out.bias": (c,)})
            for a in ("h_attn", "l_attn"):
                keys.update({f"{sm}.{a}.squeeze.weight": (h // 4, h, 1, 1), f"{sm}.{a}.squeeze.bias": (h // 4,),
                             f"{sm}.{a}.expand.weight": (h, h // 4, 1, 1), f"{sm}.{a}.expand.bias": (h,)})
            cm = f"{p}.cmixer"
            keys.update({f"{cm}.theta.weight": (n, c, 1, 1), f"{cm}.theta.bias": (n,), f"{cm}.proj.weight": (n, c, 1, 1),
                         f"{cm}.proj.bias": (n,), f"{cm}.complex": (1, 1, 1, n // 2, 2),
                         f"{cm}.conv.conv.weight": (n, r if late else 1, 3, 3), **bn(f"{cm}.conv.norm", n),
                         f"{cm}.attn.squeeze.weight": (c // 4, n, 1, 1), f"{cm}.attn.squeeze.bias": (c // 4,),
                         f"{cm}.attn.expand.weight": (n, c // 4, 1, 1), f"{cm}.attn.expand.bias": (n,),
                         f"{cm}.proj_out.weight": (c, n, 1, 1), f"{cm}.proj_out.bias": (c,)})
            i += 1
        if s < len(depths) - 1:
            keys.update({f"layers.{i}.conv.weight": (dims[s + 1], c, 2, 2), **bn(f"layers.{i}.norm", dims[s + 1])})
            i += 1
    return keys


@pytest.mark.claim(paper=21, artefact="spartan_t",
                   claim="official state-dict keys and shapes; forward equals a functional re-statement of the official module (random weights and BN, eval)")
def test_state_dict_matches_official_keys_and_shapes():
    cfg = OFFICIAL_CFG
    expected = _official_keys(cfg["depths"], cfg["dims"], cfg["expand_ratios"])
    ours = {k: tuple(v.shape) for k, v in _meta().state_dict().items()}
    assert ours == expected
    assert sum(int(torch.Size(s).numel()) for k, s in expected.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))) == SHEET_PARAMS


@pytest.mark.claim(paper=21, artefact="CMixer",
                   claim="complex vector stored with the official (1,1,1,rC/2,2) shape in state dicts; channels_last works")
def test_complex_parameter_official_shape_in_state_dict_and_channels_last():
    torch.manual_seed(0)
    mixer = CMixer(16, 2)
    sd = mixer.state_dict()
    assert sd["complex"].shape == (1, 1, 1, 16, 2) and torch.equal(sd["complex"].flatten(), mixer.complex.flatten())
    other = CMixer(16, 2)
    other.load_state_dict({k: v.clone() for k, v in sd.items()})  # official 5-D shape loads
    assert torch.equal(other.complex, mixer.complex)
    flat = {k: (v.reshape(16, 2) if k == "complex" else v) for k, v in sd.items()}
    other.load_state_dict(flat)  # and so does the in-memory shape
    other.to(memory_format=torch.channels_last)  # a 5-D parameter would make this raise
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(other.eval()(x.contiguous(memory_format=torch.channels_last)), mixer.eval()(x))


def _reference_forward(sd: dict, x: torch.Tensor, depths, dims, ratios) -> torch.Tensor:
    """The official forward in eval mode, re-stated functionally from a state dict (complex via view_as_complex)."""
    def cna(p, x, stride=1, pad=0, dil=1, groups=1, norm=True, act=F.gelu):
        x = F.conv2d(x, sd[f"{p}.conv.weight"], None, stride, pad, dil, groups)
        if norm:
            x = F.batch_norm(x, sd[f"{p}.norm.running_mean"], sd[f"{p}.norm.running_var"],
                             sd[f"{p}.norm.weight"], sd[f"{p}.norm.bias"], False, 0.0, 1e-6)
        return act(x) if act else x

    def se(p, x):
        s = F.relu(F.conv2d(x.mean((2, 3), keepdim=True), sd[f"{p}.squeeze.weight"], sd[f"{p}.squeeze.bias"]))
        return x * torch.sigmoid(F.conv2d(s, sd[f"{p}.expand.weight"], sd[f"{p}.expand.bias"]))

    def gn(p, x):
        return F.group_norm(x, 1, sd[f"{p}.weight"], sd[f"{p}.bias"], 1e-6)

    x = cna("conv.1", cna("conv.0", x, 2, 1), 2, 1)
    i = 0
    for s, (depth, c, r) in enumerate(zip(depths, dims, ratios)):
        late = s >= len(depths) // 2
        for _ in range(depth):
            p = f"layers.{i}"
            m = f"{p}.smixer"  # SMixer
            y = F.conv2d(gn(f"{p}.norm_1", x), sd[f"{m}.proj_in.weight"], sd[f"{m}.proj_in.bias"])
            y = y + sd[f"{m}.gamma"] * (y - y.mean((2, 3), keepdim=True))
            g = c // 2 if late else 1
            hb = se(f"{m}.h_attn", cna(f"{m}.h_conv", y, pad=1, groups=g))
            lb = cna(f"{m}.l_conv.0", y, pad=2, dil=2, groups=g, norm=False, act=None)
            lb = se(f"{m}.l_attn", cna(f"{m}.l_conv.1", lb, pad=2, dil=2, groups=g))
            y = F.conv2d(torch.cat([hb, lb], 1), sd[f"{m}.proj_out.weight"], sd[f"{m}.proj_out.bias"])
            x = x + sd[f"{p}.scale_1"] * y
            m = f"{p}.cmixer"  # CMixer
            z = gn(f"{p}.norm_2", x)
            idx = z.argmax(1, keepdim=True)
            th = F.gelu(F.conv2d(z, sd[f"{m}.theta.weight"], sd[f"{m}.theta.bias"]))
            w = F.conv2d(z, sd[f"{m}.proj.weight"], sd[f"{m}.proj.bias"])
            f = w * th + w.gather(1, idx) * th.gather(1, idx)
            b, n, hh, ww = f.shape
            zc = torch.view_as_complex(f.permute(0, 2, 3, 1).reshape(b, hh, ww, n // 2, 2).contiguous())
            f = torch.view_as_real(torch.view_as_complex(sd[f"{m}.complex"]) * zc).reshape(b, hh, ww, n).permute(0, 3, 1, 2)
            y = se(f"{m}.attn", cna(f"{m}.conv", f, pad=1, groups=c if late else n))
            x = x + sd[f"{p}.scale_2"] * F.conv2d(y, sd[f"{m}.proj_out.weight"], sd[f"{m}.proj_out.bias"])
            i += 1
        if s < len(depths) - 1:
            x = cna(f"layers.{i}", x, 2, act=F.silu)
            i += 1
    return F.linear(x.mean((2, 3)), sd["linear.weight"], sd["linear.bias"])


@pytest.mark.claim(paper=21, artefact="spartan_t",
                   claim="official state-dict keys and shapes; forward equals a functional re-statement of the official module (random weights and BN, eval)")
def test_forward_equals_official_formulation():
    torch.manual_seed(0)
    cfg = OFFICIAL_CFG
    model = convzoo.create_model("spartan_t").eval()
    randomise_bn(model)
    with torch.no_grad():  # give the tiny-initialised scales and gamma real weight
        for name, p in model.named_parameters():
            if name.endswith(("scale_1", "scale_2", "gamma")):
                p.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
        ref = _reference_forward(model.state_dict(), x, cfg["depths"], cfg["dims"], cfg["expand_ratios"])
    assert out.abs().max() > 1e-2
    torch.testing.assert_close(out, ref, atol=1e-4 * out.abs().max().item(), rtol=1e-4)


@pytest.mark.claim(paper=21, artefact="spartan_t",
                   claim="eval determinism, features at strides 4/8/16/32, BN folding")
def test_eval_deterministic_and_features():
    torch.manual_seed(0)
    model = convzoo.create_model("spartan_t", num_classes=10, in_chans=1).eval()
    randomise_bn(model)
    x = torch.randn(2, 1, 64, 48)
    with torch.no_grad():
        a, b = model(x), model(x)
        feats = model.features(x)
        unpooled = model.forward_features(x)
    assert torch.equal(a, b) and a.shape == (2, 10)
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 16, 12), (64, 8, 6), (128, 4, 3), (256, 2, 1)]  # 2x2/2 downsamplers floor odd sizes
    assert torch.equal(feats[-1], unpooled)
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape == (2, 256)


@pytest.mark.claim(paper=21, artefact="spartan_t",
                   claim="eval determinism, features at strides 4/8/16/32, BN folding")
def test_deploy_folds_bn_and_keeps_outputs():
    torch.manual_seed(0)
    model = convzoo.create_model("spartan_t", num_classes=10, **TINY)
    ref, out, fused = deploy_outputs(model, torch.randn(2, 3, 32, 32))
    assert batch_norms(fused) == []
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_bad_options():
    for kwargs in ({"dims": (32, 64, 128)}, {"dims": (32, 64, 128, 250)}, {"depths": (3, 0, 12, 2)},
                   {"expand_ratios": (4, 4, 1, 2)}, {"drop_path_rate": 1.0}):
        with pytest.raises(ConvzooError):
            SpaRTAN(**kwargs)


# --- the official weight-decay split in the recipes --------------------------------------------------------

@pytest.mark.claim(paper=21, artefact="spartan_in1k",
                   claim="recipe validates; the default groups (1-D rule + the model's no_weight_decay()) select exactly the official no-weight-decay set (1-D, bias, 'norm', 'gamma')")
@pytest.mark.claim(paper=21, artefact="spartan_digits",
                   claim="recipe validates with the official no-decay split; a narrow SpaRTAN lowers the loss on a digits batch")
@pytest.mark.parametrize("recipe", ["spartan_imagenet_paper", "spartan_digits"])
def test_recipe_param_groups_select_official_no_decay_set(recipe):
    from convzoo.engine import load_recipe
    from convzoo.engine.optim import param_groups

    r = load_recipe(recipe)
    assert r["paper"] == 21 and recipe in convzoo.get_card(r["model"]["name"]).recipes
    assert r["optimizer"]["name"] == "adamw" and r["optimizer"]["lr"] == 2.5e-3
    assert r["optimizer"]["weight_decay"] == 0.03
    model = convzoo.create_model(r["model"]["name"], num_classes=10, **r["model"]["kwargs"])
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for g in param_groups(model, r["optimizer"]) if g["weight_decay"] == 0 for p in g["params"]}
    decay = {names[id(p)] for g in param_groups(model, r["optimizer"]) if g["weight_decay"] == 0.03 for p in g["params"]}
    # the official rule (henry-pay/SpaRTAN src/main.py set_weight_decay, skip_list of src/config/model/spartan.yaml)
    official = {n for n, p in model.named_parameters()
                if len(p.shape) == 1 or n.endswith("bias") or any(k in n for k in ("norm", "gamma"))}
    assert no_decay == official == no_weight_decay_names(model) and decay == set(names.values()) - no_decay
    assert {"layers.0.smixer.gamma", "layers.0.norm_1.weight", "layers.0.cmixer.conv.norm.bias",
            "conv.0.norm.weight", "linear.bias"} <= no_decay
    # official quirk: the 4-D layer scales and the complex vector keep weight decay
    assert {"layers.0.scale_1", "layers.0.scale_2", "layers.0.cmixer.complex", "linear.weight"} <= decay
    if recipe.endswith("_paper"):
        assert (r["epochs"], r["batch_size"], r["data"]["kwargs"]["size"]) == (300, 2048, 256)
        assert r["schedule"]["warmup_epochs"] == 20 and r["schedule"]["kwargs"]["eta_min"] == 1e-6
        assert r["task"]["kwargs"]["label_smoothing"] == 0.2


@pytest.mark.claim(paper=21, artefact="spartan_digits",
                   claim="recipe validates with the official no-decay split; a narrow SpaRTAN lowers the loss on a digits batch")
def test_narrow_model_lowers_loss_on_a_batch_with_official_groups():
    from convzoo.data import build_dataset
    from convzoo.engine import load_recipe
    from convzoo.engine.optim import build_optimizer

    r = load_recipe("spartan_digits")
    data = build_dataset("digits", "train", **r["data"]["kwargs"])
    x, y = map(torch.stack, zip(*[(data[i][0], torch.tensor(data[i][1])) for i in range(32)]))
    torch.manual_seed(0)
    model = convzoo.create_model(r["model"]["name"], num_classes=10, in_chans=x.shape[1], **r["model"]["kwargs"])
    opt = build_optimizer(model, r["optimizer"])  # AdamW with the official no-decay groups
    assert sorted({g["weight_decay"] for g in opt.param_groups}) == [0.0, 0.03]
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# --- timm's arguments and preprocessing (issue 9) ----------------------------------------------------------

@pytest.mark.claim(paper=21, artefact="spartan_t", claim="card preprocessing = official src/dataset/imagenet.py eval transform")
def test_preprocessing_is_the_official_eval_transform():
    # official henry-pay/SpaRTAN 1715a43 src/dataset/imagenet.py (eval) with src/config/data/imagenet.yaml:
    # v2.Resize(img_size=256) (torchvision's default bilinear) -> v2.CenterCrop(crop_size=256), ImageNet mean/std
    assert convzoo.data_config("spartan_t") == {"input_size": (3, 256, 256), "interpolation": "bilinear",
                                                "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
                                                "crop_pct": 256 / 256, "crop_mode": "center"}


@pytest.mark.claim(paper=21, artefact="spartan_t", claim="global_pool (all timm values), per-block gradient checkpointing with equal gradients")
def test_global_pool_and_grad_checkpointing():
    x = torch.randn(2, 3, 32, 32)
    for pool, width in (("avg", 7), ("max", 7), ("avgmax", 7), ("catavgmax", 7), ("", 7)):
        model = convzoo.create_model("spartan_t", num_classes=width, global_pool=pool).eval()
        with torch.no_grad():
            pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        assert pooled.shape[1] == 256 * (2 if pool == "catavgmax" else 1)
        assert model(x).shape == ((2, 7, 1, 1) if pool == "" else (2, 7))
    torch.manual_seed(0)
    model = convzoo.create_model("spartan_t", num_classes=5, drop_path_rate=0.0)
    model(x).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing()
    model(x).sum().backward()
    for a, p in zip(plain, model.parameters()):
        torch.testing.assert_close(p.grad, a)
