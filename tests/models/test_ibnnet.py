"""Paper 37, IBN-Net (arXiv 1807.09441).

The IBN layer against the functional definition (IN on the first int(C * ratio) channels, BN on the
rest) and its core property (the IN half is invariant to per-channel affine appearance changes, the BN
half is not); IBN-a / IBN-b placement as in the official code; parameter and MAC counts of every variant
against the official code's (written literally below, with the commit and files they were counted on) and against
the torchvision / timm baselines (+0 for IBN-a, +384 / +1,536 for IBN-b);
numerical parity with torchvision's ResNet / ResNeXt in which the same layers are replaced (weights
copied by name: the official checkpoint keys); the official state-dict key names.
"""

from __future__ import annotations

import copy
import functools
import types

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.ibn import IBN
from convzoo.layers.se import SqueezeExcite
from convzoo.models.ibnnet import IBNResNet, remap_state_dict
from convzoo.registry import count_params
from convzoo.testing import randomise_bn

pytestmark = pytest.mark.paper(37)


@functools.cache
def _meta(name: str):
    """The registered model on the meta device (shapes only; shared by the read-only tests below)."""
    with torch.device("meta"):
        return convzoo.create_model(name)


@functools.cache
def _model_macs(name: str) -> int:
    return _macs(_meta(name))


@torch.no_grad()
def _randomise_norms(model: nn.Module, seed: int = 3) -> nn.Module:
    """Random BN statistics and random affine parameters of every norm (BN and IN)."""
    randomise_bn(model, seed=seed)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.InstanceNorm2d) and m.affine:
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


# --- the IBN layer -------------------------------------------------------------------------------------

@pytest.mark.claim(paper=37, artefact="IBN",
                   claim="IN on the first int(C*ratio) channels, BN on the rest; the parameters of one BN")
@pytest.mark.parametrize("planes,ratio,half", [(64, 0.5, 32), (7, 0.5, 3), (100, 0.4, 40)])
def test_ibn_equals_instance_norm_on_first_channels_batch_norm_on_rest(planes, ratio, half):
    layer = _randomise_norms(IBN(planes, ratio))
    assert layer.half == half and count_params(layer) == count_params(nn.BatchNorm2d(planes)) == 2 * planes
    x = torch.randn(4, planes, 6, 5) * 3 + 1
    for train in (True, False):
        layer.train(train)
        bn = layer.BN
        ref_in = F.instance_norm(x[:, :half], weight=layer.IN.weight, bias=layer.IN.bias, eps=layer.IN.eps)
        ref_bn = F.batch_norm(x[:, half:], bn.running_mean.clone(), bn.running_var.clone(), bn.weight, bn.bias,
                              training=train, eps=bn.eps)
        torch.testing.assert_close(layer(x), torch.cat((ref_in, ref_bn), 1), atol=1e-5, rtol=1e-5)


@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a",
                   claim="numerical parity with torchvision densenet121 with the same layers replaced; official keys via remap_state_dict")
def test_ibn_in_last_order_of_the_official_densenet():
    layer = _randomise_norms(IBN(10, 0.4, in_first=False)).eval()  # BN on int(10 * 0.6) = 6, IN on 4
    assert layer.BN.num_features == 6 and layer.IN.num_features == 4
    x = torch.randn(2, 10, 5, 5)
    ref_in = F.instance_norm(x[:, 6:], weight=layer.IN.weight, bias=layer.IN.bias, eps=layer.IN.eps)
    ref_bn = F.batch_norm(x[:, :6], layer.BN.running_mean, layer.BN.running_var, layer.BN.weight, layer.BN.bias,
                          training=False, eps=layer.BN.eps)
    torch.testing.assert_close(layer(x), torch.cat((ref_bn, ref_in), 1), atol=1e-5, rtol=1e-5)


@pytest.mark.claim(paper=37, artefact="IBN", claim="a ratio that leaves one side empty is a clear error")
def test_ibn_rejects_a_ratio_that_leaves_no_channel_to_one_side():
    with pytest.raises(ConvzooError, match="instance-normalised channels"):
        IBN(1, 0.5)
    with pytest.raises(ConvzooError):
        IBN(8, 1.0)


@pytest.mark.claim(paper=37, artefact="IBN",
                   claim="the IN half is invariant to per-channel affine appearance changes, the BN half is not (Sec. 3.1)")
def test_instance_norm_half_is_invariant_to_appearance_batch_norm_half_is_not():
    """Sec. 3.1: IN removes per-channel contrast / brightness (x -> a x + b per image and channel)."""
    layer = _randomise_norms(IBN(16)).eval()
    x = torch.randn(2, 16, 8, 8)
    a = torch.rand(2, 16, 1, 1) * 2 + 0.5
    b = torch.randn(2, 16, 1, 1)
    y, y_shift = layer(x), layer(a * x + b)
    torch.testing.assert_close(y_shift[:, :8], y[:, :8], atol=1e-4, rtol=1e-4)
    assert (y_shift[:, 8:] - y[:, 8:]).abs().max() > 0.1


# --- placement (official resnet_ibn.py / resnext_ibn.py / se_resnet_ibn.py) ------------------------------

def _blocks(model):
    return [(s, i, blk) for s in range(4) for i, blk in enumerate(getattr(model, f"layer{s + 1}"))]


@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="IBN placement as the official code")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="IBN placement as the official code")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="IBN placement as the official code")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="IBN placement as the official code")
@pytest.mark.claim(paper=37, artefact="resnext152_ibn_a", claim="IBN placement as the official code")
@pytest.mark.claim(paper=37, artefact="se_resnet152_ibn_a", claim="IBN placement as the official code")
@pytest.mark.parametrize("name", ["resnet18_ibn_a", "resnet50_ibn_a", "resnext50_ibn_a", "se_resnet50_ibn_a",
                                  "resnext152_ibn_a", "se_resnet152_ibn_a"])
def test_ibn_a_in_first_norm_of_every_block_of_layer1_to_3(name):
    model = _meta(name)
    assert type(model.bn1) is nn.BatchNorm2d
    for s, i, blk in _blocks(model):
        assert isinstance(blk.bn1, IBN) == (s < 3), (s, i)
        assert blk.IN is None
        assert all(type(getattr(blk, f"bn{k}")) is nn.BatchNorm2d for k in range(2, len(blk.convs) + 1))
    assert [len(getattr(model, f"layer{s + 1}")) for s in range(4)] == \
        ([3, 8, 36, 3] if "152" in name else [2, 2, 2, 2] if "18" in name else [3, 4, 6, 3])
    if name.startswith("resnext"):  # IBN on the D*C = 128 channels of the first 32x4d bottleneck
        assert model.layer1[0].bn1.planes == 128 and model.layer1[0].conv2.groups == 32
    if name.startswith("se_"):  # official SELayer(planes * 4, 16) in every block
        assert all(blk.se.fc[0].weight.shape[::-1] == (blk.conv3.out_channels, blk.conv3.out_channels // 16)
                   for _, _, blk in _blocks(model))


@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="IBN placement as the official code")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="IBN placement as the official code")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="IBN placement as the official code")
@pytest.mark.parametrize("name", ["resnet18_ibn_b", "resnet50_ibn_b", "resnet101_ibn_b"])
def test_ibn_b_instance_norm_in_stem_and_after_last_block_of_layer1_and_2(name):
    model = _meta(name)
    assert isinstance(model.bn1, nn.InstanceNorm2d) and model.bn1.affine
    for s, i, blk in _blocks(model):
        last = i == len(getattr(model, f"layer{s + 1}")) - 1
        assert (blk.IN is not None) == (s < 2 and last), (s, i)
        assert not isinstance(blk.bn1, IBN)


def test_placement_options_and_errors():
    m = IBNResNet("basic", (2, 2, 2, 2), ibn="a", ibn_stages=(3,), num_classes=4)
    assert [isinstance(b.bn1, IBN) for _, _, b in _blocks(m)] == [False] * 6 + [True] * 2
    with pytest.raises(ConvzooError, match="'a' or 'b'"):
        IBNResNet(ibn="c")
    with pytest.raises(ConvzooError, match="stage indices"):
        IBNResNet(ibn_stages=(4,))


# --- counts ------------------------------------------------------------------------------------------------

# (params, MACs at 224 px) of the OFFICIAL code, XingangPan/IBN-Net d167338: each builder of ibnnet/resnet_ibn.py,
# resnext_ibn.py, se_resnet_ibn.py and densenet_ibn.py with its defaults (1000 classes), counted as sum of numel and
# torch FlopCounterMode (convs + linears) on the meta device. The fact sheet (G1a "Paper 37" Sec. 3) lists the
# same params and these MACs to 3 decimals of G (4.089 G ...); it has no row for the four 152/161/201 variants.
OFFICIAL = {
    "resnet18_ibn_a": (11_689_512, 1_814_073_344), "resnet34_ibn_a": (21_797_672, 3_663_761_408),
    "resnet50_ibn_a": (25_557_032, 4_089_184_256), "resnet101_ibn_a": (44_549_160, 7_801_405_440),
    "resnet152_ibn_a": (60_192_808, 11_513_626_624),
    "resnet18_ibn_b": (11_689_896, 1_814_073_344), "resnet34_ibn_b": (21_798_056, 3_663_761_408),
    "resnet50_ibn_b": (25_558_568, 4_089_184_256), "resnet101_ibn_b": (44_550_696, 7_801_405_440),
    "resnet152_ibn_b": (60_194_344, 11_513_626_624),
    "resnext50_ibn_a": (25_028_904, 4_230_479_872), "resnext101_ibn_a": (44_177_704, 7_969_996_800),
    "resnext152_ibn_a": (59_951_400, 11_709_513_728),
    "se_resnet50_ibn_a": (28_071_976, 4_091_699_200), "se_resnet101_ibn_a": (49_292_328, 7_806_148_608),
    "se_resnet152_ibn_a": (66_770_984, 11_520_204_800),
    "densenet121_ibn_a": (7_978_856, 2_834_161_664), "densenet169_ibn_a": (14_149_480, 3_359_843_328),
    "densenet161_ibn_a": (28_681_000, 7_727_907_072), "densenet201_ibn_a": (20_013_928, 4_291_365_888),
}


def _macs(model: nn.Module, size: int = 224) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        x = torch.empty(1, 3, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    return counter.get_total_flops() // 2


@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="resnext152_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="se_resnet152_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="densenet161_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.claim(paper=37, artefact="densenet201_ibn_a",
                   claim="params and MACs at 224 equal the official code's (XingangPan/IBN-Net ibnnet/*.py, counted on it)")
@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_params_and_macs_match_the_official_code(name):
    assert (count_params(_meta(name)), _model_macs(name)) == OFFICIAL[name]
    card = convzoo.get_card(name)
    assert (card.params, card.macs, card.macs_rtol) == (*OFFICIAL[name], 0.0)


def _timm_resnext152_32x4d():
    from timm.models.resnet import Bottleneck, ResNet

    return ResNet(Bottleneck, [3, 8, 36, 3], cardinality=32, base_width=4)


def _se_biases(depths, reduction=16):
    """The SE biases of timm's legacy SE-ResNet (fc1: C/16, fc2: C per block; the official SE has none)."""
    return sum(n * (4 * w // reduction + 4 * w) for n, w in zip(depths, (64, 128, 256, 512)))


def _se_macs(depths, reduction=16):
    """MACs of the official SE's two bias-free linears, C -> C/16 -> C on the pooled vector, per block.
    (timm's legacy SE-ResNet strides its first 1x1 conv, Caffe-style, so its conv MACs differ: the SE-ResNet
    MAC baseline is torchvision's ResNet, whose layout the official code has, plus these.)"""
    return sum(n * 2 * (4 * w) * (4 * w // reduction) for n, w in zip(depths, (64, 128, 256, 512)))


# IBN-a changes no conv or linear and replaces a BN by IN + BN of the same total width, so every IBN-a variant
# has exactly the parameters and MACs of its plain baseline in a reference package (the SE-ResNets less the SE
# biases that timm's legacy SE has and the official one has not); name: (params reference, its extra params,
# MACs reference, MACs to add)
BASELINES = {
    "resnet18_ibn_a": (lambda: torchvision.models.resnet18(), 0),
    "resnet34_ibn_a": (lambda: torchvision.models.resnet34(), 0),
    "resnet50_ibn_a": (lambda: torchvision.models.resnet50(), 0),
    "resnet101_ibn_a": (lambda: torchvision.models.resnet101(), 0),
    "resnet152_ibn_a": (lambda: torchvision.models.resnet152(), 0),
    "resnext50_ibn_a": (lambda: torchvision.models.resnext50_32x4d(), 0),
    "resnext101_ibn_a": (lambda: timm.create_model("resnext101_32x4d"), 0),
    "resnext152_ibn_a": (_timm_resnext152_32x4d, 0),
    "se_resnet50_ibn_a": (lambda: timm.create_model("legacy_seresnet50"), _se_biases((3, 4, 6, 3)),
                          lambda: torchvision.models.resnet50(), _se_macs((3, 4, 6, 3))),
    "se_resnet101_ibn_a": (lambda: timm.create_model("legacy_seresnet101"), _se_biases((3, 4, 23, 3)),
                           lambda: torchvision.models.resnet101(), _se_macs((3, 4, 23, 3))),
    "se_resnet152_ibn_a": (lambda: timm.create_model("legacy_seresnet152"), _se_biases((3, 8, 36, 3)),
                           lambda: torchvision.models.resnet152(), _se_macs((3, 8, 36, 3))),
    "densenet121_ibn_a": (lambda: torchvision.models.densenet121(), 0),
    "densenet169_ibn_a": (lambda: torchvision.models.densenet169(), 0),
    "densenet161_ibn_a": (lambda: torchvision.models.densenet161(), 0),
    "densenet201_ibn_a": (lambda: torchvision.models.densenet201(), 0),
}


@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="resnext152_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="se_resnet152_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="densenet161_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.claim(paper=37, artefact="densenet201_ibn_a",
                   claim="IBN-a adds no parameter and no MAC: counts equal the torchvision / timm baseline's (less timm's SE biases)")
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_ibn_a_has_the_params_and_macs_of_its_reference_baseline(name):
    build, se_biases, build_macs, se_macs = (*BASELINES[name], None, 0)[:4]
    with torch.device("meta"):
        ref = build()
        ref_macs = _macs(build_macs()) if build_macs else _macs(ref)
    assert _se_biases((3, 4, 6, 3)) == 16_048 and _se_biases((3, 4, 23, 3)) == 34_544  # as the sheet notes
    assert count_params(_meta(name)) == count_params(ref) - se_biases
    assert _model_macs(name) == ref_macs + se_macs


@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a",
                   claim="IBN (ratio 0.4, BN part first) in every third layer of dense blocks 1-3 (official densenet_ibn.py); adds 0 params over torchvision")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a",
                   claim="IBN (ratio 0.4, BN part first) in every third layer of dense blocks 1-3 (official densenet_ibn.py); adds 0 params over torchvision")
@pytest.mark.claim(paper=37, artefact="densenet161_ibn_a",
                   claim="IBN (ratio 0.4, BN part first) in every third layer of dense blocks 1-3 (official densenet_ibn.py); adds 0 params over torchvision")
@pytest.mark.claim(paper=37, artefact="densenet201_ibn_a",
                   claim="IBN (ratio 0.4, BN part first) in every third layer of dense blocks 1-3 (official densenet_ibn.py); adds 0 params over torchvision")
@pytest.mark.parametrize("depth", [121, 169, 161, 201])
def test_densenet_ibn_a_in_every_third_layer_of_blocks_1_to_3_and_adds_nothing(depth):
    model = _meta(f"densenet{depth}_ibn_a")
    for b in range(4):
        for i, layer in enumerate(getattr(model.body, f"denseblock{b + 1}")):
            assert isinstance(layer.norm1, IBN) == (b < 3 and i % 3 == 0), (b, i)
    with torch.device("meta"):
        assert count_params(model) == count_params(getattr(torchvision.models, f"densenet{depth}")())
    # official builders: DenseNet-161 k = 48, stem 96; the others k = 32, stem 64
    assert (model.body.conv0.out_channels, model.body.denseblock1.denselayer1.conv2.out_channels) == \
        ((96, 48) if depth == 161 else (64, 32))


@pytest.mark.claim(paper=37, artefact="resnext152_ibn_a", claim="full-size forward: finite (2, 10) logits")
@pytest.mark.claim(paper=37, artefact="se_resnet152_ibn_a", claim="full-size forward: finite (2, 10) logits")
@pytest.mark.claim(paper=37, artefact="densenet161_ibn_a", claim="full-size forward: finite (2, 10) logits")
@pytest.mark.claim(paper=37, artefact="densenet201_ibn_a", claim="full-size forward: finite (2, 10) logits")
@pytest.mark.parametrize("name", ["resnext152_ibn_a", "se_resnet152_ibn_a", "densenet161_ibn_a", "densenet201_ibn_a"])
def test_full_size_forward_of_the_deepest_variants(name):
    torch.manual_seed(0)
    model = convzoo.create_model(name, num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a",
                   claim="IBN-a adds 0 parameters, IBN-b only the IN affines (+384 / +1,536) over torchvision")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a",
                   claim="IBN-a adds 0 parameters, IBN-b only the IN affines (+384 / +1,536) over torchvision")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a",
                   claim="IBN-a adds 0 parameters, IBN-b only the IN affines (+384 / +1,536) over torchvision")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a",
                   claim="IBN-a adds 0 parameters, IBN-b only the IN affines (+384 / +1,536) over torchvision")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a",
                   claim="IBN-a adds 0 parameters, IBN-b only the IN affines (+384 / +1,536) over torchvision")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b",
                   claim="IBN-a adds 0 parameters, IBN-b only the IN affines (+384 / +1,536) over torchvision")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b",
                   claim="IBN-a adds 0 parameters, IBN-b only the IN affines (+384 / +1,536) over torchvision")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b",
                   claim="IBN-a adds 0 parameters, IBN-b only the IN affines (+384 / +1,536) over torchvision")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b",
                   claim="IBN-a adds 0 parameters, IBN-b only the IN affines (+384 / +1,536) over torchvision")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b",
                   claim="IBN-a adds 0 parameters, IBN-b only the IN affines (+384 / +1,536) over torchvision")
@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_ibn_a_adds_nothing_and_ibn_b_adds_only_instance_norm_affines(depth):
    with torch.device("meta"):
        base = count_params(getattr(torchvision.models, f"resnet{depth}")())
    assert count_params(_meta(f"resnet{depth}_ibn_a")) == base
    assert count_params(_meta(f"resnet{depth}_ibn_b")) - base == (384 if depth < 50 else 1536)


@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="count equals torchvision resnext50_32x4d")
def test_resnext_ibn_a_equals_torchvision_resnext_count():
    with torch.device("meta"):
        assert count_params(_meta("resnext50_ibn_a")) == count_params(torchvision.models.resnext50_32x4d())


# --- parity with torchvision, the same layers replaced ---------------------------------------------------

def _ibn_b_forward(block, x):
    """The official IBN-b block: InstanceNorm after the residual add, before the ReLU."""
    shortcut = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    if hasattr(block, "conv3"):
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    else:
        out = block.bn2(block.conv2(out))
    return block.relu(block.IN(out + shortcut))


def _torchvision_with_ibn(arch: str, ibn: str) -> nn.Module:
    ref = getattr(torchvision.models, arch)()
    if ibn == "a":
        for layer in (ref.layer1, ref.layer2, ref.layer3):
            for blk in layer:
                blk.bn1 = IBN(blk.bn1.num_features)
    else:
        ref.bn1 = nn.InstanceNorm2d(64, affine=True)
        for layer in (ref.layer1, ref.layer2):
            blk = layer[-1]
            blk.IN = nn.InstanceNorm2d(blk.conv1.in_channels, affine=True)
            blk.forward = types.MethodType(_ibn_b_forward, blk)
    return ref


@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a",
                   claim="numerical parity with torchvision with the same layers replaced, official keys (<= 1e-5)")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b",
                   claim="numerical parity with torchvision with the same layers replaced, official keys (<= 1e-5)")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b",
                   claim="numerical parity with torchvision with the same layers replaced, official keys (<= 1e-5)")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a",
                   claim="numerical parity with torchvision with the same layers replaced, official keys (<= 1e-5)")
@pytest.mark.parity
@pytest.mark.parametrize("name,arch", [("resnet18_ibn_a", "resnet18"), ("resnet18_ibn_b", "resnet18"),
                                       ("resnet50_ibn_b", "resnet50"), ("resnext50_ibn_a", "resnext50_32x4d")])
def test_parity_with_torchvision_with_the_same_layers_replaced(name, arch):
    torch.manual_seed(0)
    ours = _randomise_norms(convzoo.create_model(name, zero_init_last=False)).eval()
    ref = _torchvision_with_ibn(arch, name[-1]).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)  # the official keys are torchvision's + IBN's
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out, expected = ours(x), ref(x)
    assert (out - expected).abs().max() <= 1e-5 * max(1.0, float(expected.abs().max()))


@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a",
                   claim="numerical parity with torchvision densenet121 with the same layers replaced; official keys via remap_state_dict")
@pytest.mark.parity
def test_densenet_parity_with_torchvision_with_the_same_layers_replaced():
    torch.manual_seed(0)
    ours = _randomise_norms(convzoo.create_model("densenet121_ibn_a")).eval()
    ref = torchvision.models.densenet121()
    for b in (1, 2, 3):
        for i, layer in enumerate(getattr(ref.features, f"denseblock{b}").values()):
            if i % 3 == 0:
                layer.norm1 = IBN(layer.norm1.num_features, 0.4, in_first=False)
    ref.eval()
    mapped = {("features." + k.removeprefix("body.") if k.startswith("body.") else
               "classifier." + k.removeprefix("head.fc.")): v for k, v in ours.state_dict().items()}
    ref.load_state_dict(mapped, strict=True)  # official / torchvision keys
    assert remap_state_dict(mapped).keys() == ours.state_dict().keys()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out, expected = ours(x), ref(x)
    assert (out - expected).abs().max() <= 1e-5 * max(1.0, float(expected.abs().max()))


# --- keys (official checkpoints load by name) and the SE block ------------------------------------------

@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="official state-dict key names")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="official state-dict key names")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="official state-dict key names")
def test_official_state_dict_keys():
    a = _meta("resnet50_ibn_a").state_dict()
    for k in ("layer1.0.bn1.IN.weight", "layer1.0.bn1.IN.bias", "layer1.0.bn1.BN.running_mean",
              "layer3.5.bn1.BN.num_batches_tracked", "layer4.0.bn1.running_var", "layer1.0.downsample.1.weight",
              "fc.weight"):
        assert k in a, k
    assert a["layer1.0.bn1.IN.weight"].shape == (32,) and a["layer1.0.bn1.BN.weight"].shape == (32,)
    assert not any(".IN.running" in k for k in a)  # InstanceNorm tracks no statistics (official)
    b = _meta("resnet50_ibn_b").state_dict()
    assert "bn1.weight" in b and "bn1.running_mean" not in b  # the stem norm is an InstanceNorm under "bn1"
    assert b["layer1.2.IN.weight"].shape == (256,) and b["layer2.3.IN.bias"].shape == (512,)
    assert not any(k.startswith(("layer1.0.IN", "layer3.")) and ".IN." in k for k in b)
    se = _meta("se_resnet50_ibn_a").state_dict()
    assert se["layer1.0.se.fc.0.weight"].shape == (16, 256) and se["layer4.2.se.fc.2.weight"].shape == (2048, 128)
    assert not any(k.startswith("layer1.0.se.") and k.endswith("bias") for k in se)


@pytest.mark.claim(paper=37, artefact="SqueezeExcite",
                   claim="bias-free SE of the official SE-ResNet-IBN: sigmoid(W2 relu(W1 GAP(x))) * x")
def test_squeeze_excite_formula():
    se = SqueezeExcite(32, 16)
    x = torch.randn(2, 32, 5, 5)
    w1, w2 = se.fc[0].weight, se.fc[2].weight
    gate = torch.sigmoid(torch.relu(x.mean((2, 3)) @ w1.T) @ w2.T)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])
    assert count_params(se) == 2 * 32 * 2


@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a",
                   claim="deploy folds every BN outside the IBN layers, outputs kept")
def test_deploy_folds_every_batch_norm_outside_ibn():
    model = _randomise_norms(convzoo.create_model("resnet18_ibn_a", num_classes=5)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        fused = convzoo.deploy(copy.deepcopy(model))
        out = fused(x)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    left = [n for n, m in fused.named_modules() if type(m) is nn.BatchNorm2d]
    assert left and all(n.endswith(".bn1.BN") for n in left)  # only the BN halves of the IBN layers


@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b",
                   claim="appearance invariance (Sec. 3.2 / Table 1): the IBN-b network output is unchanged by image contrast x -> 2.5x, IBN-a's is not")
@pytest.mark.parametrize("name,invariant", [("resnet18_ibn_b", True), ("resnet18_ibn_a", False)])
def test_ibn_b_output_is_invariant_to_image_contrast(name, invariant):
    """Sec. 3.2 / Table 1 (appearance transforms): IBN-b normalises the stem conv's output per image and
    channel, so scaling an image's contrast (x -> a x, the bias-free stem conv is linear) leaves the whole
    network's output unchanged; IBN-a keeps a BatchNorm stem and changes with the contrast."""
    model = _randomise_norms(convzoo.create_model(name, num_classes=10, zero_init_last=False)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y, y_contrast = model(x), model(2.5 * x)
    diff = float((y_contrast - y).abs().max() / y.abs().max())
    assert (diff < 1e-4) if invariant else (diff > 1e-2), diff
