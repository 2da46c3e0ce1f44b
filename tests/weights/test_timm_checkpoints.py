"""timm's state dicts load through ``create_model(name, pretrained=PATH)``: the proof for every model whose card
names a ``timm:`` reference.

Each case builds timm's model (``pretrained=False``: no download) with its random initialisation, spreads every
BatchNorm statistic and 1-D parameter (layer scales start at 1e-6 and biases at 0, which would hide a misplaced
tensor), saves the state dict as timm's hub does (``torch.save`` of the state dict, or ``model.safetensors``),
loads the file into ours by ``create_model(name, pretrained=PATH)`` and compares the outputs in eval mode.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convzoo
from convzoo.registry import _REGISTRY, _load_all

pytestmark = [pytest.mark.parity, pytest.mark.slow]


def _spread(model: nn.Module) -> None:
    """Distinct values where timm's init leaves constants (BN statistics, biases, LayerNorm, layer scale)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
                if p.abs().max() < 1e-3:  # a layer scale at 1e-6: give it weight
                    p.add_(0.5)


def _save(state: dict, path, fmt: str) -> None:
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)


# every card with a timm reference (test_every_timm_reference_is_here keeps the list complete)
CASES = [
    pytest.param("convnext_tiny", "convnext_tiny", "pth", id="convnext_tiny", marks=pytest.mark.claim(
        paper=39, artefact="convnext_tiny", claim="timm's convnext_tiny state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("convnext_small", "convnext_small", "safetensors", id="convnext_small", marks=pytest.mark.claim(
        paper=39, artefact="convnext_small", claim="timm's convnext_small state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("convnext_base", "convnext_base", "bin", id="convnext_base", marks=pytest.mark.claim(
        paper=39, artefact="convnext_base", claim="timm's convnext_base state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("vovnet39", "vovnet39a", "pth", id="vovnet39", marks=pytest.mark.claim(
        paper=53, artefact="vovnet39", claim="timm's vovnet39a state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("vovnet39a", "vovnet39a", "safetensors", id="vovnet39a", marks=pytest.mark.claim(
        paper=53, artefact="vovnet39a", claim="timm's vovnet39a state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("vovnet57", "vovnet57a", "bin", id="vovnet57", marks=pytest.mark.claim(
        paper=53, artefact="vovnet57", claim="timm's vovnet57a state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("vovnet57a", "vovnet57a", "pth", id="vovnet57a", marks=pytest.mark.claim(
        paper=53, artefact="vovnet57a", claim="timm's vovnet57a state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("ese_vovnet19b_dw", "ese_vovnet19b_dw", "safetensors", id="ese_vovnet19b_dw", marks=pytest.mark.claim(
        paper=53, artefact="ese_vovnet19b_dw", claim="timm's ese_vovnet19b_dw state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("ese_vovnet19b_slim", "ese_vovnet19b_slim", "bin", id="ese_vovnet19b_slim", marks=pytest.mark.claim(
        paper=53, artefact="ese_vovnet19b_slim", claim="timm's ese_vovnet19b_slim state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("ese_vovnet19b_slim_dw", "ese_vovnet19b_slim_dw", "pth", id="ese_vovnet19b_slim_dw", marks=pytest.mark.claim(
        paper=53, artefact="ese_vovnet19b_slim_dw", claim="timm's ese_vovnet19b_slim_dw state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("ese_vovnet39b", "ese_vovnet39b", "safetensors", id="ese_vovnet39b", marks=pytest.mark.claim(
        paper=53, artefact="ese_vovnet39b", claim="timm's ese_vovnet39b state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("ese_vovnet57b", "ese_vovnet57b", "bin", id="ese_vovnet57b", marks=pytest.mark.claim(
        paper=53, artefact="ese_vovnet57b", claim="timm's ese_vovnet57b state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("ese_vovnet99b", "ese_vovnet99b", "pth", id="ese_vovnet99b", marks=pytest.mark.claim(
        paper=53, artefact="ese_vovnet99b", claim="timm's ese_vovnet99b state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("eca_vovnet39b", "eca_vovnet39b", "safetensors", id="eca_vovnet39b", marks=pytest.mark.claim(
        paper=53, artefact="eca_vovnet39b", claim="timm's eca_vovnet39b state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("inception_v4", "inception_v4", "pth", id="inception_v4", marks=pytest.mark.claim(
        paper=33, artefact="inception_v4", claim="timm's inception_v4 state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("inception_resnet_v2", "inception_resnet_v2", "safetensors", id="inception_resnet_v2", marks=pytest.mark.claim(
        paper=33, artefact="inception_resnet_v2", claim="timm's inception_resnet_v2 state dict loads by create_model(pretrained=PATH) with equal outputs")),
    # one per attention / hybrid architecture of issue 10; their other variants: keys and shapes below
    pytest.param("halonet_h1", "halonet_h1", "pth", id="halonet_h1", marks=pytest.mark.claim(
        paper=23, artefact="halonet_h1", claim="timm's halonet_h1 state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("nasnetalarge", "nasnetalarge", "safetensors", id="nasnetalarge", marks=pytest.mark.claim(
        paper=14, artefact="nasnetalarge", claim="timm's nasnetalarge state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("crossvit_tiny_240", "crossvit_tiny_240", "pth", id="crossvit_tiny_240", marks=pytest.mark.claim(
        paper=28, artefact="crossvit_tiny_240", claim="timm's crossvit_tiny_240 state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("crossvit_9_dagger_240", "crossvit_9_dagger_240", "safetensors", id="crossvit_9_dagger_240", marks=pytest.mark.claim(
        paper=28, artefact="crossvit_9_dagger_240", claim="timm's crossvit_9_dagger_240 state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("convit_tiny", "convit_tiny", "pth", id="convit_tiny", marks=pytest.mark.claim(
        paper=36, artefact="convit_tiny", claim="timm's convit_tiny state dict loads by create_model(pretrained=PATH) with equal outputs")),
    pytest.param("volo_d1_224", "volo_d1_224", "safetensors", id="volo_d1_224", marks=pytest.mark.claim(
        paper=51, artefact="volo_d1_224", claim="timm's volo_d1_224 state dict loads by create_model(pretrained=PATH) with equal outputs")),
]


# families whose variants share one architecture: one variant loads timm's file with equal outputs (CASES), and
# every variant has timm's keys and shapes (test_state_dict_keys_and_shapes_equal_timms, meta device)
BY_KEYS = ("crossvit", "convit", "volo")
# timm builds these at a fixed size (learned position embeddings) or block grid (HaloNet: 256 px multiples)
TIMM_SIZE = {"halonet_h1": 256, "crossvit_tiny_240": 240, "crossvit_9_dagger_240": 240, "convit_tiny": 224,
             "volo_d1_224": 224}


def _timm_references() -> dict[str, str]:
    _load_all()
    return {n: e.card.reference.removeprefix("timm:") for n, e in _REGISTRY.items()
            if (e.card.reference or "").startswith("timm:")}


def test_every_timm_reference_is_here():
    refs = {n: r for n, r in _timm_references().items() if convzoo.get_card(n).family not in BY_KEYS}
    cases = {p.values[0]: p.values[1] for p in CASES}
    assert refs == {n: r for n, r in cases.items() if convzoo.get_card(n).family not in BY_KEYS}
    assert {convzoo.get_card(n).family for n in _timm_references()} <= {convzoo.get_card(n).family for n in cases}


@pytest.mark.parametrize("name", sorted(n for n in _timm_references() if convzoo.get_card(n).family in BY_KEYS))
def test_state_dict_keys_and_shapes_equal_timms(name):
    import timm

    with torch.device("meta"):
        theirs = timm.create_model(_timm_references()[name], pretrained=False).state_dict()
        ours = convzoo.create_model(name).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.parametrize("name, ref, fmt", CASES)
def test_timm_state_dict_loads_with_equal_outputs(name, ref, fmt, tmp_path):
    import timm

    theirs = timm.create_model(ref, pretrained=False).eval()
    _spread(theirs)
    path = tmp_path / ("model.safetensors" if fmt == "safetensors" else f"pytorch_model.{fmt}")
    _save(theirs.state_dict(), path, fmt)
    ours = convzoo.create_model(name, pretrained=path).eval()
    size = (TIMM_SIZE[name],) * 2 if name in TIMM_SIZE else convzoo.get_card(name).test_size
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert expected.shape == got.shape == (2, 1000)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
