"""Paper 53, VoVNet (arXiv 1904.09730) and VoVNetV2 / eSE (CenterMask, arXiv 1911.06667).

Checks the eSE layer (no reduction: C*C + C parameters, hard-sigmoid gate in [0, 1], identity when
W = 0 and b = 3, equal to timm's), the OSA channel arithmetic (one concatenation of the input and
every layer output), parameter counts of every variant against the fact sheet, the eSE placement and
residual options, numerical parity with timm (weights copied, random BN, eval) and with the official
V1 residual layout, the official checkpoint key names, strides and ceil-mode shapes, and conv-BN
fusion. Full-size models are built on the meta device unless they run.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.ese import EffectiveSE
from convzoo.models.vovnet import OSABlock, VoVNet, remap_state_dict
from convzoo.registry import count_params
from convzoo.testing import batch_norms, deploy_outputs, randomise_bn

pytestmark = pytest.mark.paper(53)

# fact sheet G1a "Paper 53" Sec. 2-3: sum of numel at 1000 classes (timm 1.0.31 / official V1 code)
SHEET = {
    "vovnet27_slim": 3_525_736,
    "vovnet39": 22_600_296,
    "vovnet57": 36_640_296,
    "vovnet39a": 22_600_296,
    "vovnet57a": 36_640_296,
    "ese_vovnet19b_slim_dw": 1_897_752,
    "ese_vovnet19b_dw": 6_543_080,
    "ese_vovnet19b_slim": 3_166_136,
    "ese_vovnet39b": 24_568_936,
    "ese_vovnet57b": 38_608_936,
    "ese_vovnet99b": 63_199_272,
    "eca_vovnet39b": 22_600_316,
}
WIDE = (256, 512, 768, 1024)
# the timm network each variant equals (fact sheet G1a "Paper 53" Sec. 2; V1 paper = timm "a")
TIMM_NAMES = {
    "vovnet39": "vovnet39a", "vovnet57": "vovnet57a", "vovnet39a": "vovnet39a", "vovnet57a": "vovnet57a",
    "ese_vovnet19b_slim_dw": "ese_vovnet19b_slim_dw", "ese_vovnet19b_dw": "ese_vovnet19b_dw",
    "ese_vovnet19b_slim": "ese_vovnet19b_slim", "ese_vovnet19b": None,  # timm defines, does not register
    "ese_vovnet39b": "ese_vovnet39b", "ese_vovnet57b": "ese_vovnet57b", "ese_vovnet99b": "ese_vovnet99b",
    "eca_vovnet39b": "eca_vovnet39b",
}
# V1 paper Table 1 (and the official VoVNet.pytorch specs): stage_ch, concat_ch, OSA modules per stage
V1_TABLE1 = {
    "vovnet27_slim": ((64, 80, 96, 112), (128, 256, 384, 512), (1, 1, 1, 1)),
    "vovnet39": ((128, 160, 192, 224), WIDE, (1, 1, 2, 2)),
    "vovnet57": ((128, 160, 192, 224), WIDE, (1, 1, 4, 3)),
}


def _meta(name: str, **kwargs) -> VoVNet:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs)


def _macs(model: torch.nn.Module, size: int = 224) -> int:
    with torch.device("meta"), FlopCounterMode(display=False) as fc:
        model.eval()(torch.empty(1, 3, size, size))
    return fc.get_total_flops() // 2


def v1_macs(stage_ch, concat_ch, blocks, layers: int = 5, size: int = 224, classes: int = 1000) -> int:
    """Conv + linear multiply-adds of a V1 VoVNet, layer by layer from Table 1 (stem 3x3/2 3->64,
    3x3 64->64, 3x3/2 64->128; OSA: 3x3 in->mid, (n-1) 3x3 mid->mid, 1x1 (in + n mid)->concat;
    3x3/2 ceil-mode max-pool before stages 3-5; GAP; linear)."""
    def conv(side, k, cin, cout):
        return side * side * k * k * cin * cout

    side = (size - 1) // 2 + 1  # 3x3/2, padding 1
    macs = conv(side, 3, 3, 64) + conv(side, 3, 64, 64)
    side = (side - 1) // 2 + 1
    macs += conv(side, 3, 64, 128)
    cin = 128
    for i, (mid, out, n) in enumerate(zip(stage_ch, concat_ch, blocks)):
        if i:
            side = -(-(side - 3) // 2) + 1  # ceil mode
        for _ in range(n):
            macs += conv(side, 3, cin, mid) + (layers - 1) * conv(side, 3, mid, mid) \
                + conv(side, 1, cin + layers * mid, out)
            cin = out
    return macs + cin * classes




# --- eSE ---------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=53, artefact="eSE", claim="no dimensionality reduction: C*C + C parameters")
@pytest.mark.parametrize("channels", [1, 16, 256, 1024])
def test_ese_has_no_reduction(channels):
    layer = EffectiveSE(channels)
    assert count_params(layer) == channels * channels + channels  # one C x C FC + bias, no C/r bottleneck
    assert layer.fc.weight.shape == (channels, channels, 1, 1) and layer.fc.bias.shape == (channels,)


@pytest.mark.claim(paper=53, artefact="eSE",
                   claim="hard-sigmoid gate formula; equals timm's EffectiveSEModule")
def test_ese_matches_formula_and_gate_range():
    torch.manual_seed(0)
    layer = EffectiveSE(24)
    torch.nn.init.normal_(layer.fc.weight, std=3.0)  # large weights: the gate saturates on both sides
    x = torch.randn(3, 24, 5, 7)
    w, b = layer.fc.weight.detach().flatten(1), layer.fc.bias.detach()
    z = x.mean((2, 3)) @ w.T + b  # (B, C)
    gate = F.relu6(z + 3) / 6  # hard-sigmoid as written in the paper / official Hsigmoid
    torch.testing.assert_close(layer(x), x * gate[:, :, None, None], atol=1e-6, rtol=1e-6)
    assert gate.min() == 0 and gate.max() == 1 and ((gate > 0) & (gate < 1)).any()


def test_ese_identity_when_w_zero_b_three():
    layer = EffectiveSE(8)
    with torch.no_grad():
        layer.fc.weight.zero_()
        layer.fc.bias.fill_(3.0)
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(layer(x), x)
    with pytest.raises(ConvzooError):
        EffectiveSE(0)


@pytest.mark.claim(paper=53, artefact="eSE",
                   claim="hard-sigmoid gate formula; equals timm's EffectiveSEModule")
@pytest.mark.parity
def test_ese_matches_timm():
    from timm import layers as timm_layers
    torch.manual_seed(0)
    ours, ref = EffectiveSE(32), timm_layers.EffectiveSEModule(32)
    torch.nn.init.normal_(ours.fc.weight)
    ref.load_state_dict(ours.state_dict())  # same keys: fc.weight, fc.bias
    x = torch.randn(2, 32, 6, 5)
    assert (ours(x) - ref(x)).abs().max().item() <= 1e-6


# --- the OSA module ------------------------------------------------------------------------------------

@pytest.mark.claim(paper=53, artefact="OSABlock",
                   claim="one-shot concatenation: width = in + n*mid, holds the input and every layer")
@pytest.mark.parametrize("in_chs, mid, out, n, dw", [
    (128, 128, 256, 5, False),  # V-39 stage 2: 128 + 5 * 128 = 768 -> 256
    (768, 224, 1024, 5, False),  # V-39 stage 5, first block: 768 + 1120 = 1888
    (64, 64, 112, 3, True),  # V2-19-slim-DW stage 2: no reduction (64 == stage_ch)
    (256, 160, 512, 3, True),  # V2-19-DW stage 3: 1x1 reduction 256 -> 160, concat keeps the 256-wide input
])
def test_osa_concat_arithmetic(in_chs, mid, out, n, dw):
    block = OSABlock(in_chs, mid, out, n, depthwise=dw).eval()
    assert block.concat_chs == block.conv_concat.conv.in_channels == in_chs + n * mid
    assert (block.conv_reduction is not None) == (dw and in_chs != mid)
    # one-shot: every chain layer sees a constant width (the block input, or stage_ch), never a growing concat
    widths = [(layer.conv_dw if dw else layer.conv).in_channels for layer in block.conv_mid]
    assert widths == ([mid] * n if dw else [in_chs] + [mid] * (n - 1))
    seen = {}
    block.conv_concat.register_forward_hook(lambda m, i, o: seen.update(cat=i[0].shape, out=o.shape))
    x = torch.randn(1, in_chs, 5, 6)
    with torch.no_grad():
        y = block(x)
    assert seen["cat"] == (1, in_chs + n * mid, 5, 6) and y.shape == seen["out"] == (1, out, 5, 6)


@pytest.mark.claim(paper=53, artefact="OSABlock",
                   claim="one-shot concatenation: width = in + n*mid, holds the input and every layer")
def test_osa_concat_contains_input_and_every_layer():
    """Zero the 1x1 weights except one input slice: the output then depends only on that slice."""
    torch.manual_seed(0)
    block = OSABlock(6, 4, 5, 3).eval()
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        feats = [x]
        for layer in block.conv_mid:
            feats.append(layer(feats[-1]))
        w = block.conv_concat.conv.weight
        for i, (lo, hi) in enumerate([(0, 6), (6, 10), (10, 14), (14, 18)]):
            keep = torch.zeros_like(w)
            keep[:, lo:hi] = w[:, lo:hi]
            probe = copy.deepcopy(block)
            probe.conv_concat.conv.weight.copy_(keep)
            expected = probe.conv_concat.act(probe.conv_concat.bn(F.conv2d(feats[i], w[:, lo:hi])))
            torch.testing.assert_close(probe(x), expected, atol=1e-6, rtol=1e-6)


# --- parameter counts, placement and residual options ---------------------------------------------------

@pytest.mark.claim(paper=53, artefact="vovnet27_slim", claim="parameter count equals the sheet")
@pytest.mark.claim(paper=53, artefact="vovnet39a", claim="parameter count equals the sheet")
@pytest.mark.claim(paper=53, artefact="vovnet57a", claim="parameter count equals the sheet")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_dw", claim="parameter count equals the sheet")
@pytest.mark.claim(paper=53, artefact="ese_vovnet39b", claim="parameter count equals the sheet")
@pytest.mark.claim(paper=53, artefact="ese_vovnet99b", claim="parameter count equals the sheet")
@pytest.mark.parametrize("name", list(SHEET))
def test_params_match_sheet(name):
    assert count_params(_meta(name)) == SHEET[name] == convzoo.get_card(name).params


@pytest.mark.claim(paper=53, artefact="vovnet27_slim", claim="MACs equal the closed form of Table 1")
@pytest.mark.claim(paper=53, artefact="vovnet39", claim="MACs equal the closed form of Table 1")
@pytest.mark.claim(paper=53, artefact="vovnet57", claim="MACs equal the closed form of Table 1")
@pytest.mark.parametrize("name", sorted(V1_TABLE1))
def test_v1_macs_closed_form(name):
    card = convzoo.get_card(name)
    assert card.macs == v1_macs(*V1_TABLE1[name]) == _macs(_meta(name)) and card.macs_rtol == 0.0


@pytest.mark.claim(paper=53, artefact="vovnet39a", claim="MACs equal timm's model counted the same way")
@pytest.mark.claim(paper=53, artefact="vovnet57a", claim="MACs equal timm's model counted the same way")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_slim_dw", claim="MACs equal timm's model counted the same way")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_dw", claim="MACs equal timm's model counted the same way")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_slim", claim="MACs equal timm's model counted the same way")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b", claim="MACs equal timm's model counted the same way")
@pytest.mark.claim(paper=53, artefact="ese_vovnet39b", claim="MACs equal timm's model counted the same way")
@pytest.mark.claim(paper=53, artefact="ese_vovnet57b", claim="MACs equal timm's model counted the same way")
@pytest.mark.claim(paper=53, artefact="ese_vovnet99b", claim="MACs equal timm's model counted the same way")
@pytest.mark.claim(paper=53, artefact="eca_vovnet39b", claim="MACs equal timm's model counted the same way")
@pytest.mark.parity
@pytest.mark.parametrize("name", sorted(TIMM_NAMES))
def test_macs_match_timm(name):
    import timm
    from timm.models import vovnet as timm_vovnet
    with torch.device("meta"):
        ref = (timm.create_model(TIMM_NAMES[name]) if TIMM_NAMES[name]
               else timm_vovnet.VovNet(timm_vovnet.model_cfgs["ese_vovnet19b"]))
    card = convzoo.get_card(name)
    assert card.macs == _macs(ref) == _macs(_meta(name)) and card.macs_rtol == 0.0


@pytest.mark.parity
def test_ese_vovnet19b_count_from_timm_config():
    """V2-19 (no DW, not slim) is defined but not registered by timm: count timm's construction."""
    from timm.models import vovnet
    with torch.device("meta"):
        ref = vovnet.VovNet(vovnet.model_cfgs["ese_vovnet19b"])
    assert count_params(_meta("ese_vovnet19b")) == count_params(ref) == convzoo.get_card("ese_vovnet19b").params


@pytest.mark.claim(paper=53, artefact="eSE", claim="no dimensionality reduction: C*C + C parameters")
def test_ese_adds_sum_c2_plus_c_per_stage():
    # timm layout: one eSE per stage -> V2-39 minus V1-39 = sum(C^2 + C) over the stage widths
    delta = count_params(_meta("ese_vovnet39b")) - count_params(_meta("vovnet39a"))
    assert delta == sum(c * c + c for c in WIDE) == 1_968_640
    per_stage = _meta("ese_vovnet39b")
    assert [sum(isinstance(m, EffectiveSE) for m in s.modules()) for s in per_stage.stages] == [1, 1, 1, 1]
    assert all(s.blocks[-1].attn is not None for s in per_stage.stages)
    # official detectron2 layout: eSE in every OSA module (2 more in V2-39: stages 4 and 5)
    every = _meta("ese_vovnet39b", attn_placement="block")
    assert [sum(isinstance(m, EffectiveSE) for m in s.modules()) for s in every.stages] == [1, 1, 2, 2]
    assert count_params(every) == 24_568_936 + 768 * 769 + 1024 * 1025 == 26_209_128
    # 1-module stages: both layouts agree
    assert count_params(_meta("ese_vovnet19b_dw", attn_placement="block")) == SHEET["ese_vovnet19b_dw"]


@pytest.mark.claim(paper=53, artefact="OSABlock",
                   claim="V1 official residual layout and the V2 identity residual")
def test_residual_flag():
    paper, official = _meta("vovnet39"), _meta("vovnet39", residual=True)
    assert count_params(paper) == count_params(official) == SHEET["vovnet39"]  # identity adds nothing
    assert [[b.residual for b in s.blocks] for s in paper.stages] == [[False], [False], [False, False], [False] * 2]
    assert [[b.residual for b in s.blocks] for s in official.stages] == [[False], [False], [False, True], [False, True]]
    v2 = _meta("ese_vovnet99b")
    assert [[b.residual for b in s.blocks] for s in v2.stages] == [[False], [False, True, True],
                                                                   [False] + [True] * 8, [False, True, True]]


def test_bad_options():
    for kwargs in ({"attn": "se"}, {"attn_placement": "first"}, {"blocks": (1, 1, 1)}):
        with pytest.raises(ConvzooError):
            convzoo.create_model("vovnet27_slim", **kwargs)
    with pytest.raises(ConvzooError):
        OSABlock(64, 32, 128, 3, residual=True)


# --- numerical parity with timm ---------------------------------------------------------------------

@pytest.mark.claim(paper=53, artefact="vovnet39a",
                   claim="numerical parity with timm, copied weights, logits and features (<= 1e-5)")
@pytest.mark.claim(paper=53, artefact="vovnet57a",
                   claim="numerical parity with timm, copied weights, logits and features (<= 1e-5)")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_dw",
                   claim="numerical parity with timm, copied weights, logits and features (<= 1e-5)")
@pytest.mark.claim(paper=53, artefact="ese_vovnet39b",
                   claim="numerical parity with timm, copied weights, logits and features (<= 1e-5)")
@pytest.mark.parity
@pytest.mark.parametrize("name", ["vovnet39a", "vovnet57a", "ese_vovnet19b_dw", "ese_vovnet39b"])
def test_parity_with_timm(name):
    import timm
    torch.manual_seed(0)
    ref = timm.create_model(name).eval()
    randomise_bn(ref)
    ours = _meta(name).eval()
    result = ours.load_state_dict(ref.state_dict(), strict=True, assign=True)  # timm keys, unchanged
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))  # 12 -> 6 -> 3 -> 1: ceil-mode pools
    with torch.no_grad():
        a, b = ours(x), ref(x)
        assert a.abs().max() > 1e-3
        assert (a - b).abs().max().item() <= 1e-5
        ours_feats = ours.features(x)
        ref_feats = ref.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
    for f, g in zip(ours_feats, ref_feats, strict=True):
        assert (f - g).abs().max().item() <= 1e-5


@pytest.mark.claim(paper=53, artefact="OSABlock",
                   claim="V1 official residual layout and the V2 identity residual")
@pytest.mark.parity
def test_official_v1_residual_layout():
    """residual=True = the official VoVNet.pytorch forward: identity added to non-first OSA modules."""
    import timm
    torch.manual_seed(0)
    ref = timm.create_model("vovnet39a").eval()
    randomise_bn(ref)
    ours = _meta("vovnet39", residual=True).eval()
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)
    x = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        h = ref.stem(x)
        for stage in ref.stages:
            h = h if stage.pool is None else stage.pool(h)
            for i, block in enumerate(stage.blocks):
                h = block(h) + h if i > 0 else block(h)
        expected = ref.forward_head(h)
        out = ours(x)
        plain = ref(x)
    assert (out - expected).abs().max().item() <= 1e-5
    assert (out - plain).abs().max().item() > 1e-3  # a different function from timm's "a" model


# --- official checkpoints ---------------------------------------------------------------------------

def _official_keys(cfg: dict, detectron2: bool) -> set[str]:
    """State-dict keys of the official VoVNet.pytorch (V1) / vovnet-detectron2 (V2) module naming."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    conv_leaf = ["dw_conv3x3.weight", "pw_conv1x1.weight"] + [f"pw_norm.{p}" for p in bn]
    plain_leaf = ["conv.weight"] + [f"norm.{p}" for p in bn]
    pre = "backbone.bottom_up." if detectron2 else "module."
    keys = [f"stem.stem_1/{leaf}" for leaf in plain_leaf]
    for k in (2, 3):
        keys += [f"stem.stem_{k}/{leaf}" for leaf in (conv_leaf if cfg["depthwise"] else plain_leaf)]
    cin = cfg["stem_chs"][2]
    for s, (mid, n) in enumerate(zip(cfg["stage_chs"], cfg["blocks"]), start=2):
        for b in range(1, n + 1):
            osa = f"stage{s}.OSA{s}_{b}"
            if cfg["depthwise"] and (cin if b == 1 else cfg["concat_chs"][s - 2]) != mid:
                keys += [f"{osa}.conv_reduction.OSA{s}_{b}_reduction_0/{leaf}" for leaf in plain_leaf]
            for i in range(cfg["layers"]):
                keys += [f"{osa}.layers.{i}.OSA{s}_{b}_{i}/{leaf}"
                         for leaf in (conv_leaf if cfg["depthwise"] else plain_leaf)]
            keys += [f"{osa}.concat.OSA{s}_{b}_concat/{leaf}" for leaf in plain_leaf]
            if detectron2:
                keys += [f"{osa}.ese.fc.weight", f"{osa}.ese.fc.bias"]
        cin = cfg["concat_chs"][s - 2]
    if not detectron2:
        keys += ["classifier.weight", "classifier.bias"]
    return {pre + k for k in keys}


# stage specs of the official code (VoVNet.pytorch vovnet.py; vovnet-detectron2 vovnet.py _STAGE_SPECS)
OFFICIAL_SPECS = {
    "vovnet27_slim": {"stem_chs": (64, 64, 128), "stage_chs": (64, 80, 96, 112),
                      "concat_chs": (128, 256, 384, 512), "blocks": (1, 1, 1, 1), "layers": 5, "depthwise": False},
    "vovnet57": {"stem_chs": (64, 64, 128), "stage_chs": (128, 160, 192, 224), "concat_chs": WIDE,
                 "blocks": (1, 1, 4, 3), "layers": 5, "depthwise": False},
    "ese_vovnet19b_slim_dw": {"stem_chs": (64, 64, 64), "stage_chs": (64, 80, 96, 112),
                              "concat_chs": (112, 256, 384, 512), "blocks": (1, 1, 1, 1), "layers": 3,
                              "depthwise": True},
    "ese_vovnet39b": {"stem_chs": (64, 64, 128), "stage_chs": (128, 160, 192, 224), "concat_chs": WIDE,
                      "blocks": (1, 1, 2, 2), "layers": 5, "depthwise": False},
}


@pytest.mark.parametrize("name, detectron2", [("vovnet27_slim", False), ("vovnet57", False),
                                              ("ese_vovnet19b_slim_dw", True), ("ese_vovnet39b", True)])
def test_remap_official_checkpoint_keys(name, detectron2):
    official = {k: i for i, k in enumerate(sorted(_official_keys(OFFICIAL_SPECS[name], detectron2)))}
    kwargs = {"attn_placement": "block", "num_classes": 0} if detectron2 else {"residual": True}
    ours = _meta(name, **kwargs).state_dict()
    remapped = remap_state_dict(official)
    assert len(remapped) == len(official) and set(remapped) == set(ours)


def test_remap_keeps_timm_keys_and_sample_names():
    ours = _meta("ese_vovnet19b_dw").state_dict()
    assert set(remap_state_dict(dict.fromkeys(ours))) == set(ours)
    sample = {"module.stage4.OSA4_2.layers.3.OSA4_2_3/norm.running_var": 1, "module.classifier.weight": 2,
              "backbone.bottom_up.stem.stem_3/pw_conv1x1.weight": 3, "stage3.OSA3_1.ese.fc.bias": 4}
    assert remap_state_dict(sample) == {"stages.2.blocks.1.conv_mid.3.bn.running_var": 1, "head.fc.weight": 2,
                                        "stem.2.conv_pw.weight": 3, "stages.1.blocks.0.attn.fc.bias": 4}


# --- strides, ceil-mode pooling, fusion ---------------------------------------------------------------

def test_feature_strides_and_ceil_mode_shapes():
    model = convzoo.create_model("ese_vovnet19b_slim_dw", in_chans=1, num_classes=10).eval()
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    assert [f["num_chs"] for f in model.feature_info] == [112, 256, 384, 512]
    h, w = 65, 70  # the 3x3/2 max-pools round up (ceil_mode=True): 17 -> 8 -> 4 -> 2, not 8 -> 3 -> 1
    x = torch.randn(1, 1, h, w)
    with torch.no_grad():
        feats = model.features(x)
        assert model(x).shape == (1, 10)
    conv = lambda n: (n + 2 - 3) // 2 + 1  # 3x3/2 conv, padding 1
    pool = lambda n: -(-(n - 3) // 2) + 1  # 3x3/2 max-pool, ceil mode
    sizes = [(conv(conv(h)), conv(conv(w)))]
    for _ in range(3):
        sizes.append((pool(sizes[-1][0]), pool(sizes[-1][1])))
    assert [tuple(f.shape[2:]) for f in feats] == sizes == [(17, 18), (8, 9), (4, 4), (2, 2)]


def test_deploy_fusion_keeps_outputs():
    torch.manual_seed(0)
    model = convzoo.create_model("ese_vovnet19b_slim_dw", num_classes=10)
    ref, out, fused = deploy_outputs(model, torch.randn(2, 3, 64, 64))
    assert batch_norms(fused) == []
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_slim_dw",
                   claim="every timm global_pool value gives timm's logits with copied weights (<= 1e-5)")
@pytest.mark.parity
def test_global_pool_matches_timm():
    """timm's ``global_pool`` values on the same weights: avg / max / avgmax / catavgmax logits (catavgmax: a
    classifier of twice the width, loaded from timm's), and ``""`` with ``num_classes=0`` the unpooled map."""
    import timm

    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    for pool, classes in (("avg", 5), ("max", 5), ("avgmax", 5), ("catavgmax", 5), ("", 0)):
        torch.manual_seed(0)
        ref = randomise_bn(timm.create_model("ese_vovnet19b_slim_dw", global_pool=pool, num_classes=classes)).eval()
        ours = convzoo.create_model("ese_vovnet19b_slim_dw", global_pool=pool, num_classes=classes).eval()
        result = ours.load_state_dict(ref.state_dict(), strict=True)
        assert not result.missing_keys and not result.unexpected_keys, pool
        with torch.no_grad():
            a, b = ours(x), ref(x)
        assert a.shape == b.shape and (a - b).abs().max().item() <= 1e-5, (pool, tuple(a.shape))


def test_drop_path_only_on_identity_residuals():
    """Stochastic depth sits on the V2 identity residuals only (CenterMask Sec. 2: the non-first OSA modules of a
    stage); V1 and one-module-per-stage V2-19 refuse a rate in one line."""
    model = convzoo.create_model("ese_vovnet39b", drop_path_rate=0.2)
    dropped = [(s, b) for s, stage in enumerate(model.stages) for b, blk in enumerate(stage.blocks)
               if not isinstance(blk.drop_path, torch.nn.Identity)]
    assert dropped == [(2, 1), (3, 1)]  # blocks (1, 1, 2, 2): the second module of stages 3 and 4
    for name in ("vovnet39a", "ese_vovnet19b_dw"):
        with pytest.raises(ConvzooError, match="no residual paths"):
            convzoo.create_model(name, drop_path_rate=0.1)
