"""Paper 18, LSNet: See Large, Focus Small (arXiv 2503.23135).

Checks SKA against a nested-loop definition (the official Triton kernel's index arithmetic, including
the interleaved c mod (C/G) kernel sharing) and with float64 gradcheck, LKP / LSConv against their
formulas, the block layout, parameter counts of every variant before and after ``convzoo.deploy``
and the fused model's MACs against the fact sheet, conv-BN / BN-Linear / RepVGGDW fusion with random
BN statistics, the attention-bias table (official enumeration, other input sizes, no stale cache),
the distillation head, official state-dict key names, strides, and the recipes. Full-size models are
built on the meta device unless they run.
"""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.lsconv import LKP, SKA, LSConv, ska
from convzoo.models.lsnet import (
    Attention,
    Block,
    BNLinear,
    LSNet,
    RepVGGDW,
    SqueezeExcite,
    relative_position_index,
)
from convzoo.registry import count_params
from convzoo.testing import batch_norms, deploy_outputs, randomise_bn

pytestmark = pytest.mark.paper(18)

# fact sheet G1a "Paper 18" Sec. 3 (official lsnet.py, measured): train-time, fused, distill-head params,
# MACs @224 of the fused model in G (3 decimals)
SHEET = {
    "lsnet_t": (11_409_832, 11_370_488, 11_795_600, 0.315),
    "lsnet_s": (16_146_304, 16_098_232, 16_596_200, 0.537),
    "lsnet_b": (23_313_608, 23_249_320, 23_827_632, 1.240),
}
# fact sheet G1a "Paper 18" Sec. 3 (official lsnet.py): embed dims and depths per variant
PAPER_CFGS = {
    "lsnet_t": {"embed_dim": (64, 128, 256, 384), "depth": (0, 2, 8, 10)},
    "lsnet_s": {"embed_dim": (96, 192, 320, 448), "depth": (1, 2, 8, 10)},
    "lsnet_b": {"embed_dim": (128, 256, 384, 512), "depth": (4, 6, 8, 10)},
}
TINY = {"embed_dim": (16, 32, 48, 64), "depth": (1, 2, 2, 2), "num_heads": (1, 1, 1, 2), "img_size": 64}
# torchvision.models.RegNet_Y_16GF_Weights meta "num_params" (torchvision 0.29): the RegNetY-16GF teacher
REGNETY_16GF_PARAMS = 83_590_140


def _meta(name: str, **kwargs) -> LSNet:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


# --- SKA -----------------------------------------------------------------------------------------------

def _ska_loops(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Direct definition, element by element, as the official Triton forward kernel indexes it:
    pad = (k - 1) // 2, taps outside the map read 0, kernel index ci % wc."""
    b, c, h, width = x.shape
    wc, k = w.shape[1], math.isqrt(w.shape[2])
    pad = (k - 1) // 2
    out = torch.zeros_like(x)
    for n, ci, hi, wi in itertools.product(range(b), range(c), range(h), range(width)):
        acc = x.new_zeros(())
        for kh, kw in itertools.product(range(k), range(k)):
            hin, win = hi - pad + kh, wi - pad + kw
            if 0 <= hin < h and 0 <= win < width:
                acc = acc + x[n, ci, hin, win] * w[n, ci % wc, kh * k + kw, hi, wi]
        out[n, ci, hi, wi] = acc
    return out


@pytest.mark.claim(paper=18, artefact="SKA",
                   claim="equals a nested-loop definition (Triton kernel indexing, kernel c mod (C/G)) on random tensors, incl. wc = 1, wc = C, 5x5 and even k")
@pytest.mark.parametrize("b, c, h, w, wc, k", [
    (2, 8, 5, 6, 2, 3),  # 4 channels per kernel: c and c + 2, c + 4, c + 6 share
    (1, 12, 4, 4, 3, 3),
    (1, 6, 3, 5, 6, 5),  # wc = C: no sharing, 5x5 taps wider than the map
    (2, 4, 4, 3, 1, 3),  # one kernel for every channel
    (1, 4, 3, 4, 2, 2),  # even k: the extra tap after (pad = (k - 1) // 2 = 0)
])
def test_ska_matches_nested_loops(b, c, h, w, wc, k):
    g = torch.Generator().manual_seed(b + c + h + w + wc + k)
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    kern = torch.randn(b, wc, k * k, h, w, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ska(x, kern), _ska_loops(x, kern), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(SKA()(x, kern), _ska_loops(x, kern), atol=1e-12, rtol=1e-12)


@pytest.mark.claim(paper=18, artefact="SKA",
                   claim="kernel sharing is interleaved (tiled), not repeat-interleaved")
def test_ska_sharing_is_interleaved_not_repeated():
    """Spatially constant kernels: SKA = a static DW conv whose weight is the kernel set TILED over the
    channels (channel c uses kernel c mod wc); repeat-interleaving (c // (C / wc)) gives another result."""
    torch.manual_seed(0)
    c, wc, k = 8, 2, 3
    x = torch.randn(2, c, 6, 7)
    base = torch.randn(wc, k * k)  # one 3x3 kernel per shared group
    kern = base[None, :, :, None, None].expand(2, wc, k * k, 6, 7).contiguous()
    tiled = base.repeat(c // wc, 1).reshape(c, 1, k, k)  # rows 0, 1, 0, 1, ...
    torch.testing.assert_close(ska(x, kern), F.conv2d(x, tiled, padding=1, groups=c), atol=1e-5, rtol=1e-5)
    repeated = base.repeat_interleave(c // wc, 0).reshape(c, 1, k, k)  # rows 0, 0, 0, 0, 1, ...
    assert (ska(x, kern) - F.conv2d(x, repeated, padding=1, groups=c)).abs().max() > 1e-2


@pytest.mark.claim(paper=18, artefact="SKA", claim="gradients pass torch.autograd.gradcheck in float64")
@pytest.mark.parametrize("c, wc, k", [(4, 2, 3), (6, 3, 3), (2, 1, 5)])
def test_ska_gradcheck_float64(c, wc, k):
    g = torch.Generator().manual_seed(c * 10 + k)
    x = torch.randn(2, c, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    kern = torch.randn(2, wc, k * k, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ska, (x, kern), eps=1e-6, atol=1e-8)


@pytest.mark.claim(paper=18, artefact="SKA", claim="shape errors are one clear line")
def test_ska_rejects_bad_shapes():
    x = torch.randn(1, 6, 4, 4)
    for bad in (torch.randn(1, 4, 9, 4, 4), torch.randn(1, 2, 8, 4, 4), torch.randn(1, 2, 9, 3, 4),
                torch.randn(1, 2, 9, 4)):
        with pytest.raises(ConvzooError):
            ska(x, bad)


# --- LKP and LSConv -------------------------------------------------------------------------------------

@pytest.mark.claim(paper=18, artefact="LKP",
                   claim="1x1 -> DW 7x7 -> 1x1 -> 1x1 to sks^2 C/G kernels, one GroupNorm group per kernel, output (B, C/G, sks^2, H, W)")
def test_lkp_layout_and_kernels_shape():
    lkp = LKP(64, lks=7, sks=3, groups=8)
    assert lkp.cv1.c.weight.shape == (32, 64, 1, 1)
    assert lkp.cv2.c.weight.shape == (32, 1, 7, 7) and lkp.cv2.c.groups == 32  # depth-wise large kernel
    assert lkp.cv3.c.weight.shape == (32, 32, 1, 1)
    assert lkp.cv4.weight.shape == (9 * 8, 32, 1, 1) and lkp.cv4.bias is not None  # sks^2 * C/G outputs
    assert lkp.norm.num_groups == 8 and lkp.norm.num_channels == 72  # one GroupNorm group per dynamic kernel
    w = lkp.eval()(torch.randn(2, 64, 5, 6))
    assert w.shape == (2, 8, 9, 5, 6)
    # each kernel (9 taps x H x W) is normalised by its own group: zero mean per (b, kernel)
    assert w.mean((2, 3, 4)).abs().max() < 1e-5
    with pytest.raises(ConvzooError):
        LKP(60, groups=8)


@pytest.mark.claim(paper=18, artefact="LKP",
                   claim="each predicted kernel sees exactly the 7x7 window of its pixel (before the GroupNorm)")
@pytest.mark.claim(paper=18, artefact="LSConv",
                   claim="BN(SKA(x, LKP(x))) + x; aggregation reaches only the 3x3 neighbourhood")
def test_lsconv_is_bn_of_ska_plus_identity():
    torch.manual_seed(0)
    layer = LSConv(32).eval()
    randomise_bn(layer)
    x = torch.randn(2, 32, 7, 5)
    with torch.no_grad():
        w = layer.lkp(x)
        expected = layer.bn(_ska_loops(x.double(), w.double()).float()) + x
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)
    # "see large": the kernel predicted for a pixel sees LKP's 7x7 window (before the GroupNorm, whose
    # statistics are global); "focus small": SKA aggregates only the 3x3 neighbourhood of that pixel
    probe = torch.randn(1, 32, 11, 11, requires_grad=True)
    lkp = layer.lkp
    lkp.cv4(lkp.act(lkp.cv3(lkp.cv2(lkp.act(lkp.cv1(probe))))))[0, :, 5, 5].sum().backward()
    seen = probe.grad[0].abs().sum(0) > 0
    assert seen[2:9, 2:9].all() and seen.sum() == 49
    probe.grad = None
    ska(probe, torch.ones(1, 4, 9, 11, 11))[0, :, 5, 5].sum().backward()
    focus = probe.grad[0].abs().sum(0) > 0
    assert focus[4:7, 4:7].all() and focus.sum() == 9


# --- blocks and layout ----------------------------------------------------------------------------------

@pytest.mark.claim(paper=18, artefact="lsnet_s",
                   claim="block layout: RepVGGDW+SE / LSConv alternate, attention at odd stage-4 indices")
def test_block_layout_alternates_mixers():
    model = _meta("lsnet_s")
    kinds = []
    for stage in (model.blocks1, model.blocks2, model.blocks3, model.blocks4):
        kinds.append([type(b.mixer).__name__ for b in stage if hasattr(b, "mixer")])
    assert kinds[0] == ["RepVGGDW"]
    assert kinds[1] == ["RepVGGDW", "LSConv"]
    assert kinds[2] == ["RepVGGDW", "LSConv"] * 4
    assert kinds[3] == ["RepVGGDW", "Residual"] * 5 and isinstance(model.blocks4[3].mixer.m, Attention)
    # SE only after RepVGGDW; FFN expansion 2
    assert isinstance(model.blocks2[2].se, SqueezeExcite) and isinstance(model.blocks2[3].se, torch.nn.Identity)
    assert model.blocks3[2].ffn.m.pw1.c.out_channels == 640
    # stage-4 attention: attn_ratio = dim / (kd nh) = 448 / 64 = 7 -> d = 112, biases over 4x4 offsets at 224
    attn = model.blocks4[3].mixer.m
    assert (attn.num_heads, attn.key_dim, attn.d, attn.resolution) == (4, 16, 112, 4)
    assert attn.qkv.c.out_channels == 2 * 64 + 448 and attn.attention_biases.shape == (4, 16)
    assert len(model.blocks1) == 1 and len(_meta("lsnet_t").blocks1) == 0  # LSNet-T stage 1 is empty


def test_se_reduction_and_zero_init_residuals():
    se = SqueezeExcite(192, 0.25)
    assert se.fc1.out_channels == 48 and SqueezeExcite(20, 0.25).fc1.out_channels == 8  # make_divisible(., 8)
    model = convzoo.create_model("lsnet_t", **TINY)
    ffn_gammas = [m.ffn.m.pw2.bn.weight for s in (model.blocks2, model.blocks3, model.blocks4)
                  for m in s if hasattr(m, "ffn")]
    assert all(torch.all(g == 0) for g in ffn_gammas)
    assert torch.all(model.blocks4[3].mixer.m.proj[1].bn.weight == 0)


@pytest.mark.parity
def test_se_matches_timm():
    from timm import layers as timm_layers
    torch.manual_seed(0)
    ours, ref = SqueezeExcite(96, 0.25), timm_layers.SqueezeExcite(96, 0.25)
    ref.load_state_dict(ours.state_dict())  # keys fc1.*, fc2.*
    x = torch.randn(2, 96, 5, 4)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)


# --- parameter counts and MACs ----------------------------------------------------------------------------

@pytest.mark.claim(paper=18, artefact="lsnet_t",
                   claim="train-time 11,409,832 and fused 11,370,488 params (README 11.4M = fused), distill head 11,795,600")
@pytest.mark.claim(paper=18, artefact="lsnet_s",
                   claim="train-time 16,146,304 and fused 16,098,232 params, distill head 16,596,200")
@pytest.mark.claim(paper=18, artefact="lsnet_b",
                   claim="train-time 23,313,608 and fused 23,249,320 params, distill head 23,827,632")
@pytest.mark.claim(paper=18, artefact="lsnet_s_distill",
                   claim="parameter count with the distillation head equals the sheet")
@pytest.mark.claim(paper=18, artefact="lsnet_b_distill",
                   claim="parameter count with the distillation head equals the sheet")
@pytest.mark.claim(paper=18, artefact="lsnet_fuse",
                   claim="convzoo.deploy gives the README (fused) parameter counts and keeps outputs")
@pytest.mark.parametrize("name", list(SHEET))
def test_params_train_fused_and_distill_match_sheet(name):
    train, fused, distill, _ = SHEET[name]
    model = _meta(name)
    assert count_params(model) == train == convzoo.get_card(name).params
    with torch.device("meta"):
        convzoo.deploy(model)
    assert count_params(model) == fused  # the README's "Params" (11.4M / 16.1M / 23.2M)
    assert count_params(_meta(name + "_distill")) == distill == convzoo.get_card(name + "_distill").params
    # the distillation head is one more BN1d + Linear on the pooled features
    c = PAPER_CFGS[name]["embed_dim"][-1]
    assert distill - train == 2 * c + c * 1000 + 1000


@pytest.mark.claim(paper=18, artefact="lsnet_t",
                   claim="0.315 GMACs @224 on the fused model (conv/linear/matmul)")
@pytest.mark.claim(paper=18, artefact="lsnet_s", claim="0.537 GMACs @224 on the fused model")
@pytest.mark.claim(paper=18, artefact="lsnet_b",
                   claim="1.240 GMACs @224 on the fused model (the train-time model gives 1.2409)")
@pytest.mark.parametrize("name", list(SHEET))
def test_fused_macs_match_sheet(name):
    """The sheet's MACs (fvcore after replace_batchnorm; README "FLOPs") are those of the FUSED model:
    FlopCounterMode (conv, linear, matmul) on convzoo.deploy(model) at 224, within half a unit of the
    sheet's third decimal."""
    model = _meta(name).eval()
    with torch.device("meta"):
        convzoo.deploy(model)
        x = torch.empty(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    macs = counter.get_total_flops() / 2
    assert abs(macs / 1e9 - SHEET[name][3]) <= 0.0005, macs
    # SKA's own multiply-adds (sks^2 C H W per LSConv) are outside the count and below 0.004 G
    ska_macs, res = 0, 224 // 8
    for i, stage in enumerate((model.blocks1, model.blocks2, model.blocks3, model.blocks4)):
        res = res if i == 0 else (res - 1) // 2 + 1
        ska_macs += sum(9 * m.lkp.dim * res * res for m in stage.modules() if isinstance(m, LSConv))
    assert 0 < ska_macs < 4e6


# --- fusion -------------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=18, artefact="lsnet_fuse", claim="RepVGGDW folds into one 3x3 DW conv per block")
def test_repvggdw_fuses_into_one_conv():
    torch.manual_seed(0)
    block = RepVGGDW(24).eval()
    randomise_bn(block)
    x = torch.randn(2, 24, 7, 6)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        out = block(x)
    assert isinstance(block.conv, torch.nn.Conv2d) and block.conv1 is None
    assert block.conv.weight.shape == (24, 1, 3, 3) and block.conv.groups == 24
    assert _rel_err(out, ref) < 1e-6
    block.reparameterize()  # idempotent
    assert torch.equal(block(x), out)


@pytest.mark.claim(paper=18, artefact="lsnet_fuse", claim="BN1d + Linear folds into one Linear")
def test_bn_linear_fuses_into_linear():
    torch.manual_seed(0)
    head = BNLinear(32, 10).eval()
    randomise_bn(head)
    x = torch.randn(4, 32)
    with torch.no_grad():
        ref = head(x)
        head.reparameterize()
        out = head(x)
    assert isinstance(head.bn, torch.nn.Identity) and isinstance(head.l, torch.nn.Linear)
    assert _rel_err(out, ref) < 1e-6


@pytest.mark.claim(paper=18, artefact="lsnet_t",
                   claim="deploy folds Conv-BN, BN-Linear and RepVGGDW; only the LSConv BNs remain; outputs kept")
@pytest.mark.claim(paper=18, artefact="lsnet_b_distill",
                   claim="official keys incl. head_dist; deploy keeps outputs")
@pytest.mark.claim(paper=18, artefact="lsnet_fuse",
                   claim="convzoo.deploy gives the README (fused) parameter counts and keeps outputs")
@pytest.mark.parametrize("name", ["lsnet_t", "lsnet_b_distill"])
def test_deploy_keeps_outputs_and_leaves_only_lsconv_bn(name):
    torch.manual_seed(0)
    ref, out, fused = deploy_outputs(convzoo.create_model(name, num_classes=10), torch.randn(2, 3, 64, 64))
    assert _rel_err(out, ref) < 1e-4  # random BN statistics: activations grow, so relative error
    bns = batch_norms(fused)
    lsconvs = [n for n, m in fused.named_modules() if isinstance(m, LSConv)]
    assert bns == [f"{n}.bn" for n in lsconvs]  # SKA's shared kernels cannot absorb a per-channel BN
    assert all(m.conv1 is None for m in fused.modules() if isinstance(m, RepVGGDW))


ALL = ["lsnet_t", "lsnet_s", "lsnet_b", "lsnet_t_distill", "lsnet_s_distill", "lsnet_b_distill"]


@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="deploy=True builds the deployed structure: convzoo.deploy's state dict loads key for key, same outputs")
@pytest.mark.claim(paper=18, artefact="lsnet_s", claim="deploy=True builds the deployed structure: convzoo.deploy's state dict loads key for key, same outputs")
@pytest.mark.claim(paper=18, artefact="lsnet_b", claim="deploy=True builds the deployed structure: convzoo.deploy's state dict loads key for key, same outputs")
@pytest.mark.claim(paper=18, artefact="lsnet_t_distill", claim="deploy=True builds the deployed structure: convzoo.deploy's state dict loads key for key, same outputs")
@pytest.mark.claim(paper=18, artefact="lsnet_s_distill", claim="deploy=True builds the deployed structure: convzoo.deploy's state dict loads key for key, same outputs")
@pytest.mark.claim(paper=18, artefact="lsnet_b_distill", claim="deploy=True builds the deployed structure: convzoo.deploy's state dict loads key for key, same outputs")
@pytest.mark.parametrize("name", ALL)
def test_deploy_true_loads_the_deployed_state_dict_key_for_key(name):
    torch.manual_seed(0)
    model = randomise_bn(convzoo.create_model(name, num_classes=10)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        fused = convzoo.deploy(copy.deepcopy(model))
        deployed = convzoo.create_model(name, num_classes=10, deploy=True).eval()
        shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}
        assert shapes(deployed) == shapes(fused)
        deployed.load_state_dict(fused.state_dict(), strict=True)
        out = deployed(x)
        assert torch.equal(convzoo.deploy(deployed)(x), out)  # already deployed: nothing left to fold
    assert _rel_err(out, ref) <= 1e-4


@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="drop_rate (head dropout) and drop_path_rate (official Residual's per-sample drop, linear per block)")
def test_drop_rate_and_linear_drop_path():
    from torchvision.ops import StochasticDepth

    model = convzoo.create_model("lsnet_t", drop_path_rate=0.2, drop_rate=0.3)
    blocks = [m for m in model.modules() if isinstance(m, Block)]
    expected = torch.linspace(0, 0.2, len(blocks)).tolist()  # linear from 0 over all blocks (timm, DeiT)
    for block, p in zip(blocks, expected):
        residuals = [m for m in block.modules() if type(m).__name__ == "Residual"]
        assert residuals and all((r.drop_path.p if isinstance(r.drop_path, StochasticDepth) else 0.0) == pytest.approx(p)
                                 for r in residuals)
    assert model.head.drop.p == 0.3 and set(model.state_dict()) == set(convzoo.create_model("lsnet_t").state_dict())
    with pytest.raises(ConvzooError):
        convzoo.create_model("lsnet_t", drop_path_rate=1.0)


@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="card preprocessing = official data/datasets.py eval transform")
def test_preprocessing_is_the_official_eval_transform():
    # official THU-MIG/lsnet data/datasets.py build_transform(is_train=False): Resize(int(256 / 224 * 224),
    # interpolation=3 (PIL bicubic)), CenterCrop(224), Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    for name in ALL:
        assert convzoo.data_config(name) == {"input_size": (3, 224, 224), "interpolation": "bicubic",
                                             "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
                                             "crop_pct": 224 / 256, "crop_mode": "center"}


# --- attention biases -----------------------------------------------------------------------------------------

def _official_bias_idxs(resolution: int) -> torch.Tensor:
    """The official enumeration: offsets (|dy|, |dx|) numbered in order of first appearance."""
    points = list(itertools.product(range(resolution), range(resolution)))
    offsets, idxs = {}, []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            offsets.setdefault(off, len(offsets))
            idxs.append(offsets[off])
    return torch.tensor(idxs).view(len(points), len(points))


@pytest.mark.claim(paper=18, artefact="Attention", claim="bias index equals the official offset enumeration")
@pytest.mark.parametrize("res", [1, 2, 4, 7])
def test_bias_index_equals_official_enumeration(res):
    assert torch.equal(relative_position_index(res, res, res), _official_bias_idxs(res))
    attn = Attention(32, 8, 2, 2.0, res)
    assert torch.equal(attn.attention_bias_idxs, _official_bias_idxs(res))
    assert attn.attention_biases.shape == (2, res * res)


@pytest.mark.claim(paper=18, artefact="Attention",
                   claim="other input sizes index the same table; no cached biases (train/eval equal, new weights act at once)")
def test_bias_at_other_sizes_and_no_stale_cache():
    torch.manual_seed(0)
    attn = Attention(32, 8, 2, 2.0, resolution=4)
    with torch.no_grad():
        attn.attention_biases.copy_(torch.randn(2, 16))
    table = attn.attention_biases.detach().view(2, 4, 4)  # [head, |dy|, |dx|]
    small = attn.position_bias(2, 3)  # sub-table, exact
    assert small.shape == (2, 6, 6)
    assert torch.equal(small[:, 0, 5], table[:, 1, 2]) and torch.equal(small[:, 4, 1], table[:, 1, 0])
    large = attn.position_bias(6, 6)  # offsets beyond the table take its last row / column
    assert torch.equal(large[:, 0, 35], table[:, 3, 3])
    x = torch.randn(2, 32, 5, 3)
    assert attn(x).shape == (2, 32, 5, 3)
    # train and eval gather the same biases; nothing is cached, so new weights act at once in eval
    torch.testing.assert_close(attn.train().position_bias(4, 4), attn.eval().position_bias(4, 4))
    x = torch.randn(1, 32, 4, 4)
    with torch.no_grad():
        attn.proj[1].bn.weight.fill_(1.0)
        before = attn(x)
        attn.attention_biases.mul_(3.0)
        assert (attn(x) - before).abs().max() > 1e-4
        fresh = copy.deepcopy(attn)
        torch.testing.assert_close(fresh(x), attn(x))


@pytest.mark.claim(paper=18, artefact="Attention",
                   claim="equals an explicit per-head softmax(q^T k / sqrt(kd) + B) v")
def test_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(24, 4, 3, 2.0, resolution=3).eval()
    randomise_bn(attn)
    with torch.no_grad():
        attn.attention_biases.normal_()
    x = torch.randn(2, 24, 3, 3)
    with torch.no_grad():
        q, k, v = attn.qkv(x).split([12, 12, 24], 1)
        q = attn.dw(q)
        out = torch.zeros(2, 24, 9)
        for h in range(3):
            qh, kh, vh = (t[:, h * s:(h + 1) * s].flatten(2) for t, s in ((q, 4), (k, 4), (v, 8)))
            logits = torch.einsum("bdn,bdm->bnm", qh, kh) / 2.0 + attn.attention_biases[h][_official_bias_idxs(3)]
            out[:, h * 8:(h + 1) * 8] = torch.einsum("bnm,bdm->bdn", logits.softmax(-1), vh)
        expected = attn.proj(out.view(2, 24, 3, 3))
        torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


# --- distillation head --------------------------------------------------------------------------------------

@pytest.mark.claim(paper=18, artefact="lsnet_t_distill",
                   claim="distillation head: forward = mean of the two heads in eval and train, the pair on request")
def test_distillation_head_mean_and_pair():
    torch.manual_seed(0)
    model = convzoo.create_model("lsnet_t_distill", num_classes=5, **TINY)
    assert model.distillation and isinstance(model.head_dist, BNLinear)
    with torch.no_grad():
        model.head_dist.l.weight.normal_()  # heads differ
    x = torch.randn(3, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        cls, dist = model.forward_distill(x)
        out = model(x)
    assert cls.shape == dist.shape == out.shape == (3, 5) and (cls - dist).abs().max() > 1e-3
    torch.testing.assert_close(out, (cls + dist) / 2)
    model.train()
    y = model(x)  # train mode: still ONE logits tensor (the mean), the pair only on request
    assert isinstance(y, torch.Tensor) and y.shape == (3, 5)
    pair = model.forward_distill(x)
    assert isinstance(pair, tuple) and len(pair) == 2
    with pytest.raises(ConvzooError):
        convzoo.create_model("lsnet_t", **TINY).forward_distill(x)
    model.reset_classifier(7)
    assert model.head.l.out_features == model.head_dist.l.out_features == 7
    model.reset_classifier(0)
    assert model.eval()(x).shape == (3, 64)


# --- official checkpoint keys ---------------------------------------------------------------------------------

def _official_keys(cfg: dict, distill: bool) -> set[str]:
    """State-dict keys of the official lsnet.py module tree, written out from its layout."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    cbn = lambda p: [f"{p}.c.weight"] + [f"{p}.bn.{s}" for s in bn]
    keys = cbn("patch_embed.0") + cbn("patch_embed.2") + cbn("patch_embed.4")
    for i, n in enumerate(cfg["depth"]):
        pre, off = f"blocks{i + 1}", 0
        if i > 0:
            keys += cbn(f"{pre}.0") + cbn(f"{pre}.1")
            off = 2
        for d in range(n):
            blk = f"{pre}.{d + off}"
            if d % 2 == 0:
                keys += cbn(f"{blk}.mixer.conv") + cbn(f"{blk}.mixer.conv1")
                keys += [f"{blk}.se.fc1.weight", f"{blk}.se.fc1.bias", f"{blk}.se.fc2.weight", f"{blk}.se.fc2.bias"]
            elif i == 3:
                m = f"{blk}.mixer.m"
                keys += cbn(f"{m}.qkv") + cbn(f"{m}.proj.1") + cbn(f"{m}.dw")
                keys += [f"{m}.attention_biases", f"{m}.attention_bias_idxs"]
            else:
                m = f"{blk}.mixer"
                keys += cbn(f"{m}.lkp.cv1") + cbn(f"{m}.lkp.cv2") + cbn(f"{m}.lkp.cv3")
                keys += [f"{m}.lkp.cv4.weight", f"{m}.lkp.cv4.bias", f"{m}.lkp.norm.weight", f"{m}.lkp.norm.bias"]
                keys += [f"{m}.bn.{s}" for s in bn]
            keys += cbn(f"{blk}.ffn.m.pw1") + cbn(f"{blk}.ffn.m.pw2")
    for head in ["head"] + (["head_dist"] if distill else []):
        keys += [f"{head}.bn.{s}" for s in bn] + [f"{head}.l.weight", f"{head}.l.bias"]
    return set(keys)


@pytest.mark.claim(paper=18, artefact="lsnet_t",
                   claim="state-dict keys equal the official lsnet.py module tree")
@pytest.mark.claim(paper=18, artefact="lsnet_s",
                   claim="state-dict keys equal the official lsnet.py module tree")
@pytest.mark.claim(paper=18, artefact="lsnet_b_distill",
                   claim="official keys incl. head_dist; deploy keeps outputs")
@pytest.mark.parametrize("name", ["lsnet_t", "lsnet_s", "lsnet_b_distill"])
def test_state_dict_keys_match_official(name):
    base = name.removesuffix("_distill")
    ours = _meta(name).state_dict()
    assert set(ours) == _official_keys(PAPER_CFGS[base], name.endswith("_distill"))
    for key in ("patch_embed.0.c.weight", "blocks2.0.c.weight", "blocks2.2.mixer.conv.c.weight",
                "blocks2.3.mixer.lkp.cv1.c.weight", "blocks3.3.mixer.lkp.cv4.weight", "head.l.weight"):
        assert key in ours, key
    assert ours["blocks4.3.mixer.m.attention_bias_idxs"].shape == (16, 16)  # 4x4 stage-4 map at 224


# --- shapes and options -----------------------------------------------------------------------------------------

def test_feature_strides_and_shapes():
    model = convzoo.create_model("lsnet_t", in_chans=1, num_classes=10, **TINY).eval()
    assert [f["reduction"] for f in model.feature_info] == [8, 16, 32, 64]
    assert [f["num_chs"] for f in model.feature_info] == [16, 32, 48, 64]
    x = torch.randn(1, 1, 70, 90)  # stride-2 convs round up: 35 -> 18 -> 9, then 5, 3, 2
    with torch.no_grad():
        feats = model.features(x)
        assert model(x).shape == (1, 10)
    assert [tuple(f.shape[2:]) for f in feats] == [(9, 12), (5, 6), (3, 3), (2, 2)]


def test_bad_arguments():
    for kwargs in ({"embed_dim": (64, 128, 256)}, {"embed_dim": (60, 128, 256, 384)},
                   {"embed_dim": (64, 100, 256, 384)}, {"num_heads": (3, 3, 3, 0)}, {"depth": (0, 2, -1, 2)}):
        with pytest.raises(ConvzooError):
            convzoo.create_model("lsnet_t", **kwargs)


# --- recipes ----------------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=18, artefact="lsnet_in1k",
                   claim="recipe validates; no weight decay on 1-D params and attention biases as timm's optimiser factory")
@pytest.mark.claim(paper=18, artefact="lsnet_digits",
                   claim="recipe validates; a narrow LSNet lowers the loss on a digits batch")
@pytest.mark.parametrize("name", ["lsnet_digits", "lsnet_t_imagenet_paper"])
def test_recipes_load(name):
    from convzoo.engine import load_recipe

    r = load_recipe(name)
    assert r["paper"] == 18 and name in convzoo.get_card(r["model"]["name"]).recipes
    if name.endswith("_paper"):
        assert r["optimizer"]["name"] == "adamw" and r["optimizer"]["lr"] == 1e-3
        assert r["optimizer"]["weight_decay"] == 0.025 and r["task"]["kwargs"]["label_smoothing"] == 0.1
        assert (r["epochs"], r["batch_size"], r["schedule"]["warmup_epochs"]) == (300, 2048, 5)
        assert r["schedule"]["kwargs"]["eta_min"] == 1e-5
        # timm's optimiser factory: no decay on 1-D parameters and on no_weight_decay() (attention biases)
        from convzoo.engine.optim import param_groups

        model = _meta("lsnet_t")
        groups = param_groups(model, r["optimizer"])
        no_decay = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
        expected = {id(p) for n, p in model.named_parameters() if p.ndim <= 1 or n.endswith(".attention_biases")}
        assert no_decay == expected and model.no_weight_decay() == {
            f"blocks4.{i}.mixer.m.attention_biases" for i in (3, 5, 7, 9, 11)}  # the 5 stage-4 attentions
    else:
        model = convzoo.create_model(r["model"]["name"], num_classes=10, in_chans=1, **r["model"]["kwargs"])
        assert count_params(model) < 500_000  # CPU-scale


# --- the distilled recipe: RegNetY-16GF teacher from torchvision --------------------------------------------

@pytest.mark.claim(paper=18, artefact="lsnet_t_distill_imagenet_paper",
                   claim="the distilled recipe names hard distillation (alpha 0.5, tau 1) from torchvision regnet_y_16gf; the teacher builds through the method with torchvision's published 83,590,140 parameters (RegNet_Y_16GF_Weights meta num_params), the count of timm regnety_160 (DeiT's teacher)")
def test_distill_recipe_teacher_is_torchvision_regnety_16gf():
    import timm
    import torchvision

    from convzoo.engine import load_recipe
    from convzoo.methods import build_method
    from convzoo.tasks import build_task

    r = load_recipe("lsnet_t_distill_imagenet_paper")
    assert r["paper"] == 18 and r["model"]["name"] == "lsnet_t_distill"
    assert "lsnet_t_distill_imagenet_paper" in convzoo.get_card("lsnet_t_distill").recipes
    kw = r["method"]["kwargs"]
    assert r["method"]["name"] == "distillation" and kw["teacher"] == "torchvision:regnet_y_16gf"
    assert (kw["distillation_type"], kw["alpha"], kw["tau"]) == ("hard", 0.5, 1.0)
    assert kw["teacher_kwargs"] == {"weights": "IMAGENET1K_V2"}  # torchvision's 82.9 % weights
    # the rest of the paper recipe is the plain one's
    plain = load_recipe("lsnet_t_imagenet_paper")
    for key in ("optimizer", "schedule", "epochs", "batch_size", "batch_transform", "task", "data"):
        assert r[key] == plain[key], key
    # the teacher, built by the method exactly as in training (random weights here: no download)
    task = build_task("classification", label_smoothing=0.1)
    student = convzoo.create_model("lsnet_t_distill", num_classes=1000, **TINY)
    method = build_method("distillation", student, task, None, **{**kw, "teacher_kwargs": {}})
    teacher = method.build_teacher(1000, 3, torch.device("cpu"))
    assert isinstance(teacher, torchvision.models.RegNet) and not teacher.training
    assert count_params(teacher) == REGNETY_16GF_PARAMS
    weights = torchvision.models.get_model_weights("regnet_y_16gf").verify(kw["teacher_kwargs"]["weights"])
    assert weights.meta["num_params"] == REGNETY_16GF_PARAMS  # the weights the recipe names, torchvision's count
    with torch.device("meta"):
        assert count_params(timm.create_model("regnety_160")) == REGNETY_16GF_PARAMS
    assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(ConvzooError):  # torchvision teachers are RGB classifiers
        build_method("distillation", student, task, None, teacher="torchvision:regnet_y_400mf").build_teacher(
            10, 1, torch.device("cpu"))
    with pytest.raises(ConvzooError):
        build_method("distillation", student, task, None, teacher="torchvision:no_such_net")


@pytest.fixture(scope="module")
def _image_tree(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("imagenet_like")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 8), ("val", 2), ("test", 2)):
        for cls in ("n01", "n02"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = torch.randint(0, 255, (40, 48, 3), generator=g, dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(root / split / cls / f"{i}.png")
    return root


@pytest.mark.claim(paper=18, artefact="lsnet_t_distill_imagenet_paper",
                   claim="the distilled recipe runs as written (AdamW groups, per-step warm-up/cosine, RandAugment + erasing, MixUp/CutMix, hard distillation) with a small torchvision RegNetY stand-in teacher (regnet_y_400mf, same interface)")
def test_distill_recipe_takes_steps_with_a_stand_in_teacher(_image_tree, tmp_path):
    import torchvision

    from convzoo.engine import train

    values = {"data.root": str(_image_tree), "data.kwargs.size": 32, "data.num_workers": 0, "batch_size": 4,
              "eval_batch_size": 4, "epochs": 1, "precision": "32-true",
              "model.kwargs": {**TINY, "img_size": 32},  # a narrow student: same blocks, CPU-sized
              "method.kwargs.teacher": "torchvision:regnet_y_400mf", "method.kwargs.teacher_kwargs": {}}
    seen = {}

    class Watch:
        def on_train_start(self, method):
            seen["method"] = method
            seen["before"] = {k: v.detach().clone() for k, v in method.state_dict().items()}

        def on_train_batch_end(self, step):
            seen["steps"] = step + 1

    torch.manual_seed(0)
    res = train("lsnet_t_distill_imagenet_paper", values=values, out_dir=tmp_path, run_name="r", progress=False,
                callbacks=[Watch()])
    method = seen["method"]
    assert isinstance(method.teacher, torchvision.models.RegNet) and not method.teacher.training
    assert method.model.distillation and seen["steps"] == 16 // 4 and res.epochs == 1
    after = method.state_dict()
    assert all(k.startswith("model.") for k in after)  # the teacher is not checkpointed
    assert any(not torch.equal(v, after[k]) for k, v in seen["before"].items() if v.is_floating_point())
    assert math.isfinite(res.history[0]["train_loss"])
