"""Paper 10, ELA (arXiv 2403.01123): the ELA module, its four sizes, and ELA-ResNet-18/50 / ELA-MobileNetV2.

Checks the per-module parameter cost of ELA-T/B/S/L (7C / 9C / 42C / 58C), the forward pass against an
explicit reference (strip pooling, grouped 1-D convolution, GroupNorm, sigmoid, products) on H != W maps,
that ONE conv and ONE GroupNorm serve both directions, the one-line error for channel counts the group
counts do not divide, and the model-level counts (torchvision base + the ELA modules). Full-size models
are built on the meta device.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.ela import ELA, ELA_VARIANTS, ela_param_count
from convzoo.models.ela import remap_state_dict
from convzoo.registry import count_params

pytestmark = pytest.mark.paper(10)

# the paper's variant table: k, conv groups as a function of C, GN groups, parameters per channel
TABLE = {"T": (5, lambda c: c, 32, 7), "B": (7, lambda c: c, 16, 9), "S": (5, lambda c: c // 8, 16, 42),
         "L": (7, lambda c: c // 8, 16, 58)}
# channels each model's ELA modules see: ResNet basic block -> planes, bottleneck -> 4 planes,
# MobileNetV2 -> the expanded (hidden) width of every inverted-residual block
R18_CH = [64] * 2 + [128] * 2 + [256] * 2 + [512] * 2
R50_CH = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
MBV2_CH = [32, 96, 144, 144, 192, 192, 192, 384, 384, 384, 384, 576, 576, 576, 960, 960, 960]
MODELS = {"ela_resnet18": ("resnet18", R18_CH, "B"), "ela_resnet50": ("resnet50", R50_CH, "S"),
          "ela_mobilenetv2": ("mobilenet_v2", MBV2_CH, "S")}


def _meta(fn, *args, **kwargs):
    with torch.device("meta"):
        return fn(*args, **kwargs)


def _randomise(layer: ELA, seed: int = 0) -> ELA:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if p is layer.gn.weight else 0.0))
    return layer


# --- the module and its sizes ---------------------------------------------------------------------

@pytest.mark.claim(paper=10, artefact="ELA",
                   claim="ELA-T/B/S/L parameter cost 7C / 9C / 42C / 58C with the table's k, groups, GN groups")
@pytest.mark.parametrize("variant", ["T", "B", "S", "L"])
@pytest.mark.parametrize("channels", [64, 256])
def test_variant_table_and_param_cost(variant, channels):
    k, groups, gn_groups, per_channel = TABLE[variant]
    layer = ELA.from_variant(channels, variant)
    assert (layer.conv.kernel_size, layer.conv.groups, layer.gn.num_groups) == ((k,), groups(channels), gn_groups)
    assert layer.conv.padding == (k // 2,) and layer.conv.bias is None
    assert count_params(layer) == per_channel * channels == ela_param_count(channels, variant)


@pytest.mark.claim(paper=10, artefact="ELA",
                   claim="equals an explicit reference (strip pooling, shared 1D conv, GroupNorm, sigmoid) for H != W")
@pytest.mark.parametrize("variant", ["T", "B", "S", "L"])
def test_matches_explicit_reference(variant):
    """Eq.-level reference on an H != W map: pool, grouped conv by windows, GroupNorm, sigmoid, products."""
    b, c, h, w = 2, 64, 5, 9
    layer = _randomise(ELA.from_variant(c, variant)).eval()
    x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(1))
    k, g, gn = layer.kernel_size, layer.groups, layer.gn_groups
    weight = layer.conv.weight.detach().reshape(g, c // g, c // g, k)  # (group, out, in, k)

    def gate(strip):  # (B, C, L)
        length = strip.shape[-1]
        windows = torch.nn.functional.pad(strip, (k // 2, k // 2)).unfold(2, k, 1)  # (B, C, L, k)
        windows = windows.reshape(b, g, c // g, length, k)
        y = torch.einsum("goik,bgilk->bgol", weight, windows).reshape(b, c, length)
        y = y.reshape(b, gn, -1)
        y = (y - y.mean(-1, keepdim=True)) / torch.sqrt(y.var(-1, unbiased=False, keepdim=True) + layer.gn.eps)
        y = y.reshape(b, c, length) * layer.gn.weight.detach()[:, None] + layer.gn.bias.detach()[:, None]
        return 1 / (1 + torch.exp(-y))

    a_h = gate(x.sum(3) / w)  # (B, C, H)
    a_w = gate(x.sum(2) / h)  # (B, C, W)
    assert ((a_h > 0) & (a_h < 1)).all() and ((a_w > 0) & (a_w < 1)).all()
    expected = torch.einsum("bchw,bch,bcw->bchw", x, a_h, a_w)
    with torch.no_grad():
        out = layer(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.claim(paper=10, artefact="ELA", claim="one conv and one GroupNorm shared by both directions")
@pytest.mark.parametrize("variant", ["B", "S"])
def test_conv_and_norm_are_shared_between_directions(variant):
    layer = _randomise(ELA.from_variant(32, variant))
    # one set of weights: a single Conv1d and a single GroupNorm
    assert {n for n, _ in layer.named_parameters()} == {"conv.weight", "gn.weight", "gn.bias"}
    assert sum(isinstance(m, torch.nn.Conv1d) for m in layer.modules()) == 1
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in layer.modules()) == 1
    # and a shared module treats H and W alike: transposing the input transposes the output (with one
    # conv per direction and different weights this fails)
    x = torch.randn(2, 32, 6, 11)
    with torch.no_grad():
        torch.testing.assert_close(layer(x.transpose(2, 3)), layer(x).transpose(2, 3), atol=1e-6, rtol=1e-6)


@pytest.mark.claim(paper=10, artefact="ELA",
                   claim="a channel count that does not fit the groups is one clear line")
@pytest.mark.parametrize("channels, variant, needs", [(24, "B", "16"), (48, "T", "32"), (20, "S", "8"),
                                                      (56, "L", "16"), (0, "B", "16")])
def test_bad_channels_is_one_clear_line(channels, variant, needs):
    with pytest.raises(ConvzooError) as err:
        ELA.from_variant(channels, variant)
    msg = str(err.value)
    assert "\n" not in msg and f"ELA-{variant}" in msg and f"got {channels} channels" in msg and needs in msg


@pytest.mark.claim(paper=10, artefact="ELA",
                   claim="a channel count that does not fit the groups is one clear line")
def test_bad_arguments():
    with pytest.raises(ConvzooError, match="unknown ELA variant"):
        ELA.from_variant(64, "M")
    with pytest.raises(ConvzooError, match="odd"):
        ELA(64, kernel_size=4)
    with pytest.raises(ConvzooError, match="divisible"):
        ELA(64, kernel_size=3, groups=5)
    with pytest.raises(ConvzooError, match="144 channels"):  # ELA-T's 32 GN groups vs MobileNetV2's 144
        convzoo.create_model("ela_mobilenetv2", variant="T")
    assert sorted(ELA_VARIANTS) == ["B", "L", "S", "T"]


# --- the networks ---------------------------------------------------------------------------------

@pytest.mark.claim(paper=10, artefact="ela_resnet18",
                   claim="parameters = torchvision's network + the ELA modules")
@pytest.mark.claim(paper=10, artefact="ela_resnet50",
                   claim="parameters = torchvision's network + the ELA modules")
@pytest.mark.claim(paper=10, artefact="ela_mobilenetv2",
                   claim="parameters = torchvision's MobileNetV2 + ELA-S on the expanded channels")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_params(name):
    tv_name, channels, default = MODELS[name]
    base = count_params(_meta(getattr(torchvision.models, tv_name)))
    model = _meta(convzoo.create_model, name)
    assert model.variant == default
    expected = base + sum(ela_param_count(c, default) for c in channels)
    assert count_params(model) == expected == convzoo.get_card(name).params
    assert sum(isinstance(m, ELA) for m in model.modules()) == len(channels)


@pytest.mark.parametrize("variant", ["T", "B", "S", "L"])
def test_resnet50_every_variant(variant):
    model = _meta(convzoo.create_model, "ela_resnet50", variant=variant)
    assert count_params(model) - 25_557_032 == TABLE[variant][3] * sum(R50_CH)


@pytest.mark.claim(paper=10, artefact="ela_resnet18", claim="torchvision weights load; only ELA keys are new")
@pytest.mark.claim(paper=10, artefact="ela_resnet50", claim="torchvision weights load; only ELA keys are new")
@pytest.mark.claim(paper=10, artefact="ela_mobilenetv2",
                   claim="torchvision weights load; only ELA keys are new")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchvision_weights_load(name):
    tv_name, channels, _ = MODELS[name]
    ref = _meta(getattr(torchvision.models, tv_name))
    model = _meta(convzoo.create_model, name)
    result = model.load_state_dict(remap_state_dict(ref.state_dict()), strict=False, assign=True)
    assert not result.unexpected_keys
    assert result.missing_keys and all(".ela." in k for k in result.missing_keys)
    assert len(result.missing_keys) == 3 * len(channels)  # conv.weight, gn.weight, gn.bias per ELA


@pytest.mark.parametrize("name", ["ela_resnet18", "ela_mobilenetv2"])
def test_in_chans_one_and_non_square(name):
    model = convzoo.create_model(name, in_chans=1, num_classes=10).eval()
    x = torch.randn(2, 1, 48, 80)  # H != W at every stage
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        model.reset_classifier(0)
        assert model(x).shape == (2, model.num_features)


@pytest.mark.parametrize("name, chans", [("ela_resnet18", [64, 128, 256, 512]),
                                         ("ela_mobilenetv2", [24, 32, 96, 320])])
def test_features(name, chans):
    model = convzoo.create_model(name).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        feats = model.features(x)
    assert [f.shape[1] for f in feats] == chans == [i["num_chs"] for i in model.feature_info]
    assert [i["reduction"] for i in model.feature_info] == [4, 8, 16, 32]
    for f, info in zip(feats, model.feature_info):
        assert f.shape[2:] == (64 // info["reduction"], 96 // info["reduction"])
