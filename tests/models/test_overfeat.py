"""Paper 7, CNN Features off-the-shelf (arXiv 1403.6382): the OverFeat fast and accurate networks.

Counts and MACs on the meta device against the fact sheet (jhjin/overfeat-torch layer stacks, which match
OverFeat's Table 4), the map sizes layer by layer, the dense sliding-window output at larger inputs (windows
every 32 / 36 px, checked numerically on a narrow copy of the same stack), the paper's feature layer by name,
the release's preprocessing on the cards, and the one-line error for too small inputs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.errors import ConvzooError
from convzoo.models.overfeat import FEATURE_LAYER, OVERFEAT_CFGS, OverFeat, OverFeatCfg
from convzoo.registry import count_params

pytestmark = pytest.mark.paper(7)

# fact sheet G4 "Paper 7" Sec. 3 (jhjin/overfeat-torch run.lua stacks, counted with torch; OverFeat Table 4:
# 145M / 144M parameters, 2.81 G / 5.37 G connections): params, GMACs (3 digits), input size
SHEET = {"overfeat_fast": (145_920_872, 2.80, 231), "overfeat_accurate": (144_656_488, 5.36, 221)}
# fact sheet G4 "Paper 7" Sec. 3: spatial size after conv1, pool1, conv2, pool2, last conv, last pool, first fc
SPATIAL = {"overfeat_fast": (56, 28, 24, 12, 12, 6, 1), "overfeat_accurate": (108, 36, 30, 15, 15, 5, 1)}
# OverFeat Sec. 3 / sheet: the stride between neighbouring windows of the dense output
WINDOW_STRIDE = {"overfeat_fast": 32, "overfeat_accurate": 36}
# the release's preprocessing (jhjin/overfeat-torch run.lua): (255 x - 118.380948) / 61.896913
PIXEL_MEAN, PIXEL_STD = 118.380948, 61.896913


def _meta(name: str, **kw) -> OverFeat:
    with torch.device("meta"):
        return convzoo.create_model(name, **kw).eval()


@pytest.mark.claim(paper=7, artefact="overfeat_fast", claim="145,920,872 parameters (sheet: jhjin/overfeat-torch stack; OverFeat Table 4 145M)")
@pytest.mark.claim(paper=7, artefact="overfeat_accurate", claim="144,656,488 parameters (sheet: jhjin/overfeat-torch stack; OverFeat Table 4 144M)")
@pytest.mark.parametrize("name", sorted(SHEET))
def test_param_count_equals_sheet(name):
    params, _, _ = SHEET[name]
    assert count_params(_meta(name)) == params
    assert convzoo.get_card(name).params == params


@pytest.mark.claim(paper=7, artefact="overfeat_fast", claim="2.80 GMACs at 231 px (sheet; conv + fc multiply-adds)")
@pytest.mark.claim(paper=7, artefact="overfeat_accurate", claim="5.36 GMACs at 221 px (sheet; conv + fc multiply-adds)")
@pytest.mark.parametrize("name", sorted(SHEET))
def test_macs_equal_sheet(name):
    _, gmacs, size = SHEET[name]
    model = _meta(name)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    assert round(counter.get_total_flops() / 2 / 1e9, 2) == gmacs


@pytest.mark.claim(paper=7, artefact="overfeat_fast", claim="maps 56-28-24-12-12-6-1 at 231 px (sheet)")
@pytest.mark.claim(paper=7, artefact="overfeat_accurate", claim="maps 108-36-30-15-15-5-1 at 221 px (sheet)")
@pytest.mark.parametrize("name", sorted(SHEET))
def test_layer_by_layer_sizes(name):
    model = _meta(name)
    size = SHEET[name][2]
    seen: dict[str, int] = {}
    for mod_name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            m.register_forward_hook(lambda m, i, o, k=mod_name: seen.__setitem__(k, o.shape[-1]))
    with torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    convs = [k for k in seen if ".conv" in k]
    pools = [k for k in seen if ".pool" in k]
    first_fc = f"pre_logits.fc{OVERFEAT_CFGS[name.removeprefix('overfeat_')].first_fc}"
    got = (seen[convs[0]], seen[pools[0]], seen[convs[1]], seen[pools[1]], seen[convs[-1]], seen[pools[-1]],
           seen[first_fc])
    assert got == SPATIAL[name]


@pytest.mark.claim(paper=7, artefact="overfeat_fast", claim="layers named by the OverFeat paper's numbering: conv1-conv5, fc6, fc7, fc8 (head.fc)")
@pytest.mark.claim(paper=7, artefact="overfeat_accurate", claim="layers named by the OverFeat paper's numbering: conv1-conv6, fc7, fc8, fc9 (head.fc)")
@pytest.mark.parametrize("name, layers", [
    ("overfeat_fast", ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc"]),
    ("overfeat_accurate", ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc7", "fc8", "fc"]),
])
def test_layer_names_follow_the_paper(name, layers):
    model = _meta(name)
    weighted = [k.rpartition(".")[2] for k, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert weighted == layers


@pytest.mark.claim(paper=7, artefact="overfeat_accurate", claim="the paper's feature layer (first fc after ReLU) is addressable by name and 4,096-d")
@pytest.mark.claim(paper=7, artefact="overfeat_fast", claim="the first fc after ReLU is addressable by name and 3,072-d")
@pytest.mark.parametrize("name, dim", [("overfeat_fast", 3072), ("overfeat_accurate", 4096)])
def test_feature_layer_by_name(name, dim):
    from convzoo.analysis.offtheshelf import OffTheShelfFeatures

    model = _meta(name)
    layer = FEATURE_LAYER[name.removeprefix("overfeat_")]
    assert model.offtheshelf_layer == layer and isinstance(model.get_submodule(layer), nn.ReLU)
    size = SHEET[name][2]
    f = OffTheShelfFeatures(model).raw(torch.empty(1, 3, size, size, device="meta"))
    assert tuple(f.shape) == (1, dim, 1, 1)


@pytest.mark.claim(paper=7, artefact="overfeat_fast", claim="263 px gives a 2x2 map of windows 32 px apart (sliding window, sheet Sec. 5)")
@pytest.mark.claim(paper=7, artefact="overfeat_accurate", claim="257 px gives a 2x2 map of windows 36 px apart (sliding window)")
@pytest.mark.parametrize("name", sorted(SHEET))
def test_dense_map_at_larger_inputs(name):
    size, step = SHEET[name][2], WINDOW_STRIDE[name]
    model = _meta(name, global_pool="")
    with torch.no_grad():
        assert tuple(model(torch.empty(1, 3, size + step, size + 2 * step, device="meta")).shape) == (1, 1000, 2, 3)
        pooled = _meta(name)(torch.empty(1, 3, size + step, size + step, device="meta"))
    assert tuple(pooled.shape) == (1, 1000)


def _narrow(cfg: OverFeatCfg, width: int = 4) -> OverFeatCfg:
    """The same kernels, strides and pools with ``width`` channels everywhere (cheap to run)."""
    stages = tuple(tuple((width, k, s, p) for _, k, s, p in convs) for convs in cfg.stages)
    return OverFeatCfg(stages, cfg.pools, (width, width), cfg.fc_kernel, cfg.input_size, cfg.first_fc)


@pytest.mark.claim(paper=7, artefact="overfeat_fast", claim="the fc layers are convolutions: on a larger last map, window (i, j) of the dense output equals the head on the 6x6 map at (i, j), 32 input px apart")
@pytest.mark.claim(paper=7, artefact="overfeat_accurate", claim="the fc layers are convolutions: on a larger last map, window (i, j) of the dense output equals the head on the 5x5 map at (i, j), 36 input px apart")
@pytest.mark.parametrize("name", sorted(SHEET))
def test_dense_head_equals_head_per_window(name):
    """OverFeat's sliding window (Sec. 3.5 of the OverFeat paper): one step of the last pooled map is one window
    step of the input (the product of all strides, 32 / 36 px; the 3x3 convs' zero padding makes whole-image
    crops differ from the dense windows at their borders, so the identity is stated on the last map)."""
    cfg = _narrow(OVERFEAT_CFGS[name.removeprefix("overfeat_")], width=8)
    steps = 1
    for convs, pool in zip(cfg.stages, cfg.pools):
        for _, _, stride, _ in convs:
            steps *= stride
        steps *= pool
    assert steps == WINDOW_STRIDE[name]
    torch.manual_seed(0)
    model = OverFeat(cfg, num_classes=5, global_pool="").eval().double()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.bias, std=0.1)  # live units: zero biases could leave a narrow net all-zero
    k = cfg.fc_kernel
    x = torch.randn(1, 8, k + 1, k + 2, dtype=torch.float64)  # the last map of a 2 x 3 window input
    with torch.no_grad():
        dense = model.forward_head(x)  # (1, 5, 2, 3)
        assert dense.shape == (1, 5, 2, 3)
        for i in range(2):
            for j in range(3):
                one = model.forward_head(x[..., i:i + k, j:j + k])
                torch.testing.assert_close(dense[..., i, j], one[..., 0, 0], atol=1e-12, rtol=1e-12)
        pooled = model.head.global_pool.__class__("avg")(model.pre_logits(x))  # default pool: mean of windows
        torch.testing.assert_close(model.head.fc(pooled), dense.mean((2, 3)), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(SHEET))
def test_too_small_input_is_one_line(name):
    size = SHEET[name][2]
    with pytest.raises(ConvzooError, match=f"at least {size}x{size}") as e:
        _meta(name)(torch.empty(1, 3, size - 1, size, device="meta"))
    assert "\n" not in str(e.value)


@pytest.mark.claim(paper=7, artefact="overfeat_fast", claim="card preprocessing = the release's (255 x - 118.380948) / 61.896913, shorter side to 231, centre crop")
@pytest.mark.parametrize("name", sorted(SHEET))
def test_card_preprocessing_is_the_releases(name):
    card = convzoo.get_card(name)
    x = torch.rand(3, 4, 4)
    mean, std = torch.tensor(card.mean).view(3, 1, 1), torch.tensor(card.std).view(3, 1, 1)
    torch.testing.assert_close((x - mean) / std, (255 * x - PIXEL_MEAN) / PIXEL_STD)
    assert card.input_size == (SHEET[name][2],) * 2 and card.crop_pct == 1.0


def test_drop_path_refused_and_unknown_variant():
    with pytest.raises(ConvzooError, match="drop_path_rate"):
        OverFeat("fast", drop_path_rate=0.1)
    with pytest.raises(ConvzooError, match="fast, accurate"):
        OverFeat("huge")


def test_narrow_model_trains_and_gives_features():
    """The Backbone contract on a narrow copy (the full-size nets are count-only in the contract): a backward
    pass reaches every parameter; ``features`` gives the three pooled maps of ``feature_info``."""
    torch.manual_seed(0)
    model = OverFeat(_narrow(OVERFEAT_CFGS["fast"]), num_classes=3)
    x = torch.randn(2, 3, 231, 231)
    model(x).pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    maps = model.eval().features(x)
    assert [m.shape[-1] for m in maps] == [28, 12, 6]
    assert [f["reduction"] for f in model.feature_info] == [8, 16, 32]
