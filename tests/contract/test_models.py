"""The model contract, run over every registered model (DESIGN.md, "Tests").

Small inputs (card.test_size); full-size configurations are checked by parameter count only.
"""

from __future__ import annotations

import functools
import re

import pytest
import torch

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.features import FeatureListNet
from convzoo.layers.head import POOL_TYPES
from convzoo.registry import count_params
from convzoo.tasks import build_task
from convzoo.testing import randomise_bn

MODELS = convzoo.list_models()
# Variants above HEAVY parameters (UniRepLKNet-B/L/XL) are proven by count and MACs on the meta device
# only: one of them costs gigabytes and tens of seconds per build here, and their blocks run in the
# smaller variants of the same family.
HEAVY = 90_000_000
RUN = [n for n in MODELS if (convzoo.get_card(n).params or 0) <= HEAVY]


@functools.lru_cache(maxsize=4)
def _model(name: str):
    torch.manual_seed(0)
    return convzoo.create_model(name)


@functools.cache
def _task(name: str):
    """The task of a model's card: it says what the model takes, gives and which checks apply."""
    return build_task(convzoo.get_card(name).task)


def _input(card, batch: int = 2) -> torch.Tensor:
    return _task(card.name).example_input(card, batch, generator=torch.Generator().manual_seed(0))


def _expected_shape(model, card, x):
    return _task(card.name).output_shape(model, card, x)


def _applies(check: str, names):
    return [n for n in names if check in _task(n).contract_checks]


def _scale(t: torch.Tensor) -> float:
    return max(1.0, float(t.abs().max()))




def test_registry_not_empty():
    assert len(MODELS) >= 5


@pytest.mark.claim(paper=11, artefact="unireplknet_l", claim="model contract (count only above 100M params)")
@pytest.mark.claim(paper=11, artefact="unireplknet_xl", claim="model contract (count only above 100M params)")
@pytest.mark.claim(paper=11, artefact="replknet_31l", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=11, artefact="replknet_xl", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet161_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet201_ibn_a", claim="model contract")
@pytest.mark.claim(paper=39, artefact="resnet50_dcls", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ssd_vovnet27_slim", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ssd_vovnet39", claim="model contract")
@pytest.mark.claim(paper=43, artefact="ssd_eca_resnet50", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ssd_ela_resnet50", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_ts", claim="model contract")
@pytest.mark.claim(paper=3, artefact="pulsedl2_cnn_tiny", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet39", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet57", claim="model contract")
@pytest.mark.claim(paper=53, artefact="eca_vovnet39b", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_slim", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_slim_dw", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet57b", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x2_paper", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x3_paper", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x4_paper", claim="model contract")
@pytest.mark.claim(paper=5, artefact="image_text_embedding", claim="model contract")
@pytest.mark.claim(paper=7, artefact="overfeat_fast", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=7, artefact="overfeat_accurate", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=41, artefact="espcn_x3_fusion3", claim="model contract")
@pytest.mark.claim(paper=42, artefact="lrcn_activity", claim="model contract")
@pytest.mark.claim(paper=42, artefact="lrcn_activity_caffe", claim="model contract")
@pytest.mark.claim(paper=42, artefact="lrcn_small", claim="model contract")
@pytest.mark.claim(paper=42, artefact="lrcn_small_single_frame", claim="model contract")
@pytest.mark.claim(paper=42, artefact="lrcn_caption", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=47, artefact="multidigit_net", claim="model contract")
@pytest.mark.claim(paper=47, artefact="multidigit_net_port", claim="model contract")
@pytest.mark.claim(paper=47, artefact="multidigit_small", claim="model contract")
@pytest.mark.claim(paper=49, artefact="p3d_a_resnet50", claim="model contract")
@pytest.mark.claim(paper=49, artefact="p3d_b_resnet50", claim="model contract")
@pytest.mark.claim(paper=49, artefact="p3d_c_resnet50", claim="model contract")
@pytest.mark.claim(paper=49, artefact="p3d_resnet199", claim="model contract")
@pytest.mark.claim(paper=49, artefact="p3d_a_digits", claim="model contract")
@pytest.mark.claim(paper=49, artefact="p3d_a_digits_frame2d", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_convnext_tiny", claim="model contract")
@pytest.mark.parametrize("name", MODELS)
def test_card_is_complete(name):
    card = convzoo.get_card(name)
    assert card.name == name and 1 <= card.paper <= 57
    assert card.dims in (1, 2, 3) and len(card.test_size) == card.dims and len(card.input_size) == card.dims
    assert card.source, "card must state the paper section/table it follows"
    if card.params is not None:
        assert card.params_source, "a reported count needs its source"
    if card.macs is not None:
        assert card.macs_source


@pytest.mark.claim(paper=3, artefact="pulsedl2_cnn",
                   claim="model contract (count, backward, safetensors, ONNX, compile)")
@pytest.mark.claim(paper=10, artefact="ela_resnet18", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_resnet50", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=11, artefact="unireplknet_b", claim="model contract")
@pytest.mark.claim(paper=11, artefact="unireplknet_l", claim="model contract (count only above 100M params)")
@pytest.mark.claim(paper=11, artefact="unireplknet_xl", claim="model contract (count only above 100M params)")
@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="model contract")
@pytest.mark.claim(paper=11, artefact="replknet_31l", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=11, artefact="replknet_xl", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_f", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_p", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_n", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_t", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_digits", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet64", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_base", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_base_plus", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_small", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_small_plus", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny_plus", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_base_240", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=28, artefact="crossvit_small_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_tiny_240", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet32", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet32", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h0", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h1", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h2", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h3", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h4", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h5", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h6", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h7", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar_7_2304", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetamobile", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet32", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_image", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_listops", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathfinder", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathx", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_retrieval", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_text", claim="model contract")
@pytest.mark.claim(paper=34, artefact="terminator_cifar10", claim="model contract")
@pytest.mark.claim(paper=52, artefact="ts_resnet", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_448", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d4_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_512", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=18, artefact="lsnet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_b", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t_distill", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_s_distill",
                   claim="parameter count with the distillation head equals the sheet")
@pytest.mark.claim(paper=18, artefact="lsnet_b_distill",
                   claim="parameter count with the distillation head equals the sheet")
@pytest.mark.claim(paper=21, artefact="spartan_t", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_310k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_460k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m1", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m2", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_9m_m2", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_v4", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v2", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v1", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_small", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_base", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_small", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_base", claim="model contract")
@pytest.mark.claim(paper=40, artefact="cnn_svm_mnist", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x2", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x3", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x4", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet18", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet34", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet50", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet101", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet152", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet27_slim", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet39a", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet57a", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_dw", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet39b", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet99b", claim="model contract")
@pytest.mark.parametrize("name", MODELS)
def test_param_count_matches_card(name):
    card = convzoo.get_card(name)
    if card.params is None:
        pytest.skip("the paper reports no count for this configuration")
    if card.params > HEAVY:
        with torch.device("meta"):
            n = count_params(convzoo.create_model(name))
    else:
        n = count_params(_model(name))
    if card.params_rtol == 0:
        assert n == card.params
    else:
        assert abs(n - card.params) <= card.params_rtol * card.params, (n, card.params)


@pytest.mark.claim(paper=3, artefact="pulsedl2_cnn",
                   claim="model contract (count, backward, safetensors, ONNX, compile)")
@pytest.mark.claim(paper=10, artefact="ela_resnet18", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_resnet50", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_f", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_p", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_n", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_t", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_digits", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet64", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_base", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_base_plus", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_small", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_small_plus", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny_plus", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_base_240", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=28, artefact="crossvit_small_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_tiny_240", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet32", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet32", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h0", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h1", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h2", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h3", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h4", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h5", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h6", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h7", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar_7_2304", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetamobile", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet32", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_image", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_listops", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathfinder", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathx", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_retrieval", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_text", claim="model contract")
@pytest.mark.claim(paper=34, artefact="terminator_cifar10", claim="model contract")
@pytest.mark.claim(paper=52, artefact="ts_resnet", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_448", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d4_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_512", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=18, artefact="lsnet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_b", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t_distill", claim="model contract")
@pytest.mark.claim(paper=21, artefact="spartan_t", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_310k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_460k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m1", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m2", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_9m_m2", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_v4", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v2", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v1", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_small", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_base", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_small", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_base", claim="model contract")
@pytest.mark.claim(paper=40, artefact="cnn_svm_mnist", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x2", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x3", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x4", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet18", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet34", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet50", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet101", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet152", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet27_slim", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet39a", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet57a", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_dw", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet39b", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet99b", claim="model contract")
@pytest.mark.parametrize("name", _applies("forward_backward", RUN))
def test_forward_backward(name):
    card = convzoo.get_card(name)
    model = _model(name).train()
    x = _input(card)
    y = model(x)
    assert tuple(y.shape) == _expected_shape(model, card, x)
    _task(name).output_tensor(y).float().pow(2).mean().backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"no gradient reaches {pname}"
            assert torch.isfinite(p.grad).all(), pname
    model.zero_grad(set_to_none=True)


@pytest.mark.claim(paper=10, artefact="ela_resnet18", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_resnet50", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_f", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_p", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_n", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_t", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_digits", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet64", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_base", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_base_plus", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_small", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_small_plus", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny_plus", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_base_240", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=28, artefact="crossvit_small_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_tiny_240", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet32", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet32", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h0", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h1", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h2", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h3", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h4", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h5", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h6", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h7", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar_7_2304", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetamobile", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet32", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_image", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_listops", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathfinder", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathx", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_retrieval", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_text", claim="model contract")
@pytest.mark.claim(paper=34, artefact="terminator_cifar10", claim="model contract")
@pytest.mark.claim(paper=52, artefact="ts_resnet", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_448", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d4_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_512", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=18, artefact="lsnet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_b", claim="model contract")
@pytest.mark.claim(paper=21, artefact="spartan_t", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_310k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_460k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m1", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m2", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_9m_m2", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_v4", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v2", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v1", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_small", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_base", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="model contract")
@pytest.mark.claim(paper=40, artefact="cnn_svm_mnist", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet18", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet34", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet50", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet101", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet152", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet27_slim", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet39a", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet57a", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_dw", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet39b", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet99b", claim="model contract")
@pytest.mark.parametrize("name", _applies("determinism", RUN))
def test_eval_deterministic_and_channels_last(name):
    card = convzoo.get_card(name)
    model = _model(name).eval()
    randomise_bn(model, affine=False)
    x = _input(card)
    with torch.no_grad():
        a, b = model(x), model(x)
        assert torch.equal(a, b)
        assert torch.isfinite(a).all()
        if card.dims == 2:
            cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
            model.to(memory_format=torch.contiguous_format)
            # fp32 rounding grows with the activations (deep nets under random BN statistics reach
            # logits of ~1e3), so the tolerance is relative to the output scale
            torch.testing.assert_close(cl, a, atol=1e-4 * _scale(a), rtol=1e-4)


@pytest.mark.parametrize("name", RUN)
def test_in_chans(name):
    card = convzoo.get_card(name)
    chans = 3 if card.in_chans == 1 else 1
    model = convzoo.create_model(name, in_chans=chans).eval()
    x = _task(name).example_input(card.with_(in_chans=chans), 1)
    with torch.no_grad():
        assert tuple(model(x).shape) == tuple(_expected_shape(model, card.with_(in_chans=chans), x))


@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_f", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_p", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_n", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_t", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t_distill", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a", claim="model contract")
@pytest.mark.parametrize("name", _applies("num_classes", RUN))
def test_in_chans_and_num_classes(name):
    card = convzoo.get_card(name)
    model = convzoo.create_model(name, num_classes=7, in_chans=1).eval()
    x = torch.randn(2, 1, *card.test_size)
    with torch.no_grad():
        assert model(x).shape == (2, 7)
    if hasattr(model, "reset_classifier"):
        model.reset_classifier(0)
        with torch.no_grad():
            emb = model(x)
        assert emb.shape == (2, model.num_features)


@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_f", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_p", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_n", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_t", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_digits", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet64", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_base", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_base_plus", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_small", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_small_plus", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny_plus", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_base_240", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=28, artefact="crossvit_small_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_tiny_240", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet32", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet32", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h0", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h1", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h2", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h3", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h4", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h5", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h6", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h7", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar_7_2304", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetamobile", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet32", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_image", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_listops", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathfinder", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathx", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_retrieval", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_text", claim="model contract")
@pytest.mark.claim(paper=34, artefact="terminator_cifar10", claim="model contract")
@pytest.mark.claim(paper=52, artefact="ts_resnet", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_448", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d4_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_512", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=18, artefact="lsnet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_b", claim="model contract")
@pytest.mark.claim(paper=21, artefact="spartan_t", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny", claim="model contract")
@pytest.mark.parametrize("name", [n for n in RUN if "features" in convzoo.get_card(n).capabilities])
def test_features(name):
    card = convzoo.get_card(name)
    model = _model(name).eval()
    x = _input(card, batch=1)
    with torch.no_grad():
        feats = model.features(x)
        unpooled = model.forward_features(x)
        logits = model.forward_head(unpooled)
    assert len(feats) == len(model.feature_info)
    for f, info in zip(feats, model.feature_info):
        assert f.shape[1] == info["num_chs"], info
        for d, s in zip(f.shape[2:], x.shape[2:]):
            # 'same'-padded nets give s / reduction (+-1); valid-padded stems (Inception) lose a few
            # input pixels per stage, so the map may be smaller, never larger, and not by half
            assert s / info["reduction"] / 2 - 1 <= d <= s / info["reduction"] + 1, (f.shape, info)
    assert [i["reduction"] for i in model.feature_info] == sorted(i["reduction"] for i in model.feature_info)
    assert logits.shape == (1, card.num_classes)


@pytest.mark.claim(paper=3, artefact="pulsedl2_cnn",
                   claim="model contract (count, backward, safetensors, ONNX, compile)")
@pytest.mark.claim(paper=10, artefact="ela_resnet18", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_resnet50", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_f", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_p", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_n", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_t", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_digits", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet64", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_base", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_base_plus", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_small", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_small_plus", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny_plus", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_base_240", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=28, artefact="crossvit_small_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_tiny_240", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet32", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet32", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h0", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h1", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h2", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h3", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h4", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h5", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h6", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h7", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar_7_2304", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetamobile", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet32", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_image", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_listops", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathfinder", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathx", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_retrieval", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_text", claim="model contract")
@pytest.mark.claim(paper=34, artefact="terminator_cifar10", claim="model contract")
@pytest.mark.claim(paper=52, artefact="ts_resnet", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_448", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d4_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_512", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=18, artefact="lsnet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_b", claim="model contract")
@pytest.mark.claim(paper=21, artefact="spartan_t", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_310k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_460k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m1", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m2", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_9m_m2", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_v4", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v2", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v1", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_small", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_base", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="model contract")
@pytest.mark.claim(paper=40, artefact="cnn_svm_mnist", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x2", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x3", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x4", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet18", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet34", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet50", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet101", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet152", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet27_slim", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet39a", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet57a", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_dw", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet39b", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet99b", claim="model contract")
@pytest.mark.parametrize("name", RUN)
def test_safetensors_round_trip(name, tmp_path):
    card = convzoo.get_card(name)
    model = _model(name).eval()
    randomise_bn(model, affine=False)
    path = convzoo.save_weights(model, tmp_path / "w.safetensors")
    torch.manual_seed(123)
    other = convzoo.create_model(name).eval()
    convzoo.load_weights(other, path)
    x = _input(card, batch=1)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))


def _architecture(name: str) -> tuple[str, str]:
    """(family, name without depth digits and size tokens): resnet18_ibn_a -> (ibnnet, resnet),
    lsnet_t_distill -> (lsnet, lsnet_distill), unireplknet_xl -> (unireplknet, unireplknet)."""
    stem = re.sub(r"_(a|b|f|p|n|t|s|l|xl|tiny|small|base|large)(?=_|$)", "", name)
    return convzoo.get_card(name).family, re.match(r"[a-z_]+", stem).group(0).rstrip("_")


def _one_per_family(capability: str) -> list[str]:
    """The smallest model of each architecture that claims ``capability``.

    torch.compile costs 10-120 s per model on 2 CPU cores; depth/width variants of an architecture
    (eca_resnet18 ... eca_resnet152, lsnet_t / _s / _b) are built from the same blocks, so compiling the
    smallest one proves those blocks trace and lower.
    """
    best: dict[tuple[str, str], str] = {}
    for n in RUN:
        card = convzoo.get_card(n)
        if capability in card.capabilities:
            arch = _architecture(n)
            cur = best.get(arch)
            if cur is None or (card.params or 0) < (convzoo.get_card(cur).params or 0):
                best[arch] = n
    return sorted(best.values())


@pytest.mark.claim(paper=10, artefact="ela_resnet18", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_digits", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet64", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_base", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_base_plus", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_small", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_small_plus", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny_plus", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_base_240", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=28, artefact="crossvit_small_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_tiny_240", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet32", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet32", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h0", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h1", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h2", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h3", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h4", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h5", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h6", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h7", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar_7_2304", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetamobile", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet32", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_image", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_listops", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathfinder", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathx", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_retrieval", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_text", claim="model contract")
@pytest.mark.claim(paper=34, artefact="terminator_cifar10", claim="model contract")
@pytest.mark.claim(paper=52, artefact="ts_resnet", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_448", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d4_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_512", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=21, artefact="spartan_t", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_310k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_v4", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v1", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="model contract")
@pytest.mark.claim(paper=40, artefact="cnn_svm_mnist", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x2", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet18", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet27_slim", claim="model contract")
@pytest.mark.slow
@pytest.mark.parametrize("name", _one_per_family("compile"))
def test_torch_compile(name):
    card = convzoo.get_card(name)
    model = _model(name).eval()
    x = _input(card, batch=1)
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model)(x)
    torch.testing.assert_close(out, ref, atol=1e-4 * _scale(ref), rtol=1e-4)
    torch._dynamo.reset()


@pytest.mark.claim(paper=3, artefact="pulsedl2_cnn",
                   claim="model contract (count, backward, safetensors, ONNX, compile)")
@pytest.mark.claim(paper=10, artefact="ela_resnet18", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_resnet50", claim="model contract")
@pytest.mark.claim(paper=10, artefact="ela_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_f", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_p", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_n", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_t", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_digits", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet64", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_base", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_base_plus", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_small", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_small_plus", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny_plus", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_base_240", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=28, artefact="crossvit_small_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_tiny_240", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet32", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet32", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h0", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h1", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h2", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h3", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h4", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h5", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h6", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h7", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar_7_2304", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetamobile", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet32", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_image", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_listops", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathfinder", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathx", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_retrieval", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_text", claim="model contract")
@pytest.mark.claim(paper=34, artefact="terminator_cifar10", claim="model contract")
@pytest.mark.claim(paper=52, artefact="ts_resnet", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_448", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d4_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_512", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=18, artefact="lsnet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_b", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t_distill", claim="model contract")
@pytest.mark.claim(paper=21, artefact="spartan_t", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_310k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_460k", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m1", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m2", claim="model contract")
@pytest.mark.claim(paper=32, artefact="simplenetv1_9m_m2", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_v4", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v2", claim="model contract")
@pytest.mark.claim(paper=33, artefact="inception_resnet_v1", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_small", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_base", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_small", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_base", claim="model contract")
@pytest.mark.claim(paper=40, artefact="cnn_svm_mnist", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x2", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x3", claim="model contract")
@pytest.mark.claim(paper=41, artefact="espcn_x4", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet18", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet34", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet50", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet101", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_resnet152", claim="model contract")
@pytest.mark.claim(paper=43, artefact="eca_mobilenetv2", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet27_slim", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet39a", claim="model contract")
@pytest.mark.claim(paper=53, artefact="vovnet57a", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_dw", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet39b", claim="model contract")
@pytest.mark.claim(paper=53, artefact="ese_vovnet99b", claim="model contract")
@pytest.mark.parametrize("name", [n for n in RUN if "onnx" in convzoo.get_card(n).capabilities])
def test_onnx_export(name, tmp_path):
    from convzoo.export import export_onnx

    card = convzoo.get_card(name)
    model = _model(name).eval()
    x = _input(card, batch=1)
    report = export_onnx(model, x, tmp_path / "m.onnx", check=True)
    with torch.no_grad():
        scale = _scale(model(x))
    assert report["max_abs_diff"] <= 1e-4 * scale


@pytest.mark.claim(paper=21, artefact="spartan_t",
                   claim="MACs 1.044 G at 256 px and 0.800 G at 224 px (conv + linear, FlopCounterMode)")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny", claim="4.970 GMACs at 224 (meta device)")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_small", claim="9.524 GMACs at 224 (meta device)")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_base", claim="16.475 GMACs at 224 (meta device)")
@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_small", claim="model contract")
@pytest.mark.claim(paper=39, artefact="convnext_base", claim="model contract")
@pytest.mark.parametrize("name", [n for n in MODELS if convzoo.get_card(n).macs is not None])
def test_macs_match_card(name):
    """MACs at the card's input size, counted shape-only on the meta device (FLOPs = 2 x MACs)."""
    from torch.utils.flop_counter import FlopCounterMode

    card = convzoo.get_card(name)
    with torch.device("meta"):
        model = convzoo.create_model(name).eval()
        x = torch.empty(1, card.in_chans, *card.input_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    macs = counter.get_total_flops() // 2
    assert abs(macs - card.macs) <= card.macs_rtol * card.macs, (macs, card.macs)


@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_f", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_p", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_n", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_t", claim="model contract")
@pytest.mark.claim(paper=13, artefact="unireplknet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_digits", claim="model contract")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet64", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_base", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_base_plus", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=36, artefact="convit_small", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_small_plus", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny", claim="model contract")
@pytest.mark.claim(paper=36, artefact="convit_tiny_plus", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_408", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_9_dagger_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_base_240", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=28, artefact="crossvit_small_240", claim="model contract")
@pytest.mark.claim(paper=28, artefact="crossvit_tiny_240", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_hypclass_resnet32", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="euclidean_resnet32", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h0", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h1", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h2", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h3", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h4", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h5", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h6", claim="model contract")
@pytest.mark.claim(paper=23, artefact="halonet_h7", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar_7_2304", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="model contract")
@pytest.mark.claim(paper=14, artefact="nasnetamobile", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet20", claim="model contract")
@pytest.mark.claim(paper=54, artefact="poincare_resnet32", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_image", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_listops", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathfinder", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_pathx", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_retrieval", claim="model contract")
@pytest.mark.claim(paper=52, artefact="sgconv_lra_text", claim="model contract")
@pytest.mark.claim(paper=34, artefact="terminator_cifar10", claim="model contract")
@pytest.mark.claim(paper=52, artefact="ts_resnet", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d2_384", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d3_448", claim="model contract")
@pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d4_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_448", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=51, artefact="volo_d5_512", claim="model contract (count only above 90M params)")
@pytest.mark.claim(paper=18, artefact="lsnet_s", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_b", claim="model contract")
@pytest.mark.claim(paper=18, artefact="lsnet_t_distill", claim="model contract")
@pytest.mark.claim(paper=21, artefact="spartan_t", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet34_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet50_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet101_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnet152_ibn_b", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="resnext101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="se_resnet101_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a", claim="model contract")
@pytest.mark.claim(paper=37, artefact="densenet169_ibn_a", claim="model contract")
@pytest.mark.parametrize("name", RUN)
def test_deploy_keeps_outputs(name):
    """``convzoo.deploy`` (re-parameterisation + conv/BN folding) changes no output beyond float tolerance."""
    import copy

    card = convzoo.get_card(name)
    model = _model(name).eval()
    randomise_bn(model)
    x = _input(card)
    with torch.no_grad():
        ref = model(x)
        out = convzoo.deploy(copy.deepcopy(model))(x)
    torch.testing.assert_close(out, ref, atol=1e-4 * _scale(ref), rtol=1e-4)


@pytest.mark.parametrize("name", [n for n in RUN if "bf16" in convzoo.get_card(n).capabilities])
def test_bf16_autocast(name):
    """Cards that claim bf16: eval under CPU bfloat16 autocast is finite and within bf16 rounding of fp32
    (relative to the output scale: bf16 keeps ~3 significant digits through every layer)."""
    card = convzoo.get_card(name)
    model = _model(name).eval()
    randomise_bn(model, affine=False)
    x = _input(card)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert torch.isfinite(out).all()
    err = float((out.float() - ref).abs().max())
    assert err <= 5e-2 * _scale(ref), (err, _scale(ref))


# --- timm's arguments (issue 9): features_only / out_indices, global_pool, drop_rate, drop_path_rate,
# set_grad_checkpointing on every classifier -----------------------------------------------------------


CLASSIFIERS = [n for n in MODELS if convzoo.get_card(n).task == "classification"]
# networks without a residual sum (the papers' architectures): plain stacks (SimpleNet, the CNN of CNN-SVM),
# Inception-v4 (Sec. 3.1: no residual connections), DenseNet (concatenation), VoVNet V1 (no identity path)
# and the VoVNet-V2-19 variants (one OSA module per stage: the V2 identity only joins non-first modules)
NO_RESIDUAL = re.compile(r"^(simplenet.*|cnn_svm_mnist|inception_v4.*|densenet\d+_ibn_a|vovnet\d+.*|ese_vovnet19b.*|terminator.*)$")


def _spatial_ok(shape, x_shape, reduction) -> bool:
    # as test_features: 'same'-padded nets give s / reduction (+-1), valid-padded stems a little less
    return all(s / reduction / 2 - 1 <= d <= s / reduction + 1 for d, s in zip(shape[2:], x_shape[2:]))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_timm_features_only_and_global_pool(name):
    """Shapes only, on the meta device (every classifier, the heavy ones too): each ``global_pool`` value gives
    ``(B, num_classes)`` (``""``: the classifier at every position of the unpooled map, or the flattening MLP
    of CNN-SVM), catavgmax doubles the classifier's input (a LayerNorm head may refuse it in one line, as timm's
    NormMlpClassifierHead cannot take it); features_only gives one map per ``feature_info`` entry with its
    channels and reduction; ``out_indices`` selects (negative from the end) and is range-checked in one line."""
    card = convzoo.get_card(name)
    with torch.device("meta"):
        model = convzoo.create_model(name, global_pool="max", num_classes=7).eval()
        x = torch.empty(2, card.in_chans, *card.test_size)
        assert tuple(model(x).shape) == (2, 7)
        widths = {}
        for pool in POOL_TYPES:
            try:
                model.reset_classifier(7, pool)
            except ConvzooError as e:
                assert pool == "catavgmax" and "\n" not in str(e), (pool, e)
                continue
            y = model(x)
            assert y.shape[:2] == (2, 7) and (y.dim() == 2 or pool == ""), (pool, tuple(y.shape))
            # the linear layer that reads the pooled features: the classifier, or CNN-SVM's first MLP layer
            fc = model.head.fc1 if name == "cnn_svm_mnist" else model.get_classifier()
            widths[pool] = getattr(fc, "in_features", None)
        if widths.get("catavgmax") is not None:
            assert widths["catavgmax"] == 2 * widths["avg"], widths
        with pytest.raises(ConvzooError, match="global_pool"):
            model.reset_classifier(7, "mean")
        model.reset_classifier(0, "avg")
        assert tuple(model(x).shape)[:2] == (2, model.num_features)
        if "features" not in card.capabilities:
            with pytest.raises(ConvzooError):
                FeatureListNet(model)
            return
        n = len(model.feature_info)
        net = FeatureListNet(model)
        maps = net(x)
        info = net.feature_info
        assert len(maps) == len(info) == n and info.out_indices == tuple(range(n))
        assert [m.shape[1] for m in maps] == info.channels() == [f["num_chs"] for f in model.feature_info]
        assert info.reduction() == sorted(info.reduction()) and info.module_name() == [f["module"] for f in
                                                                                       model.feature_info]
        for m, r in zip(maps, info.reduction()):
            assert _spatial_ok(m.shape, x.shape, r), (tuple(m.shape), r)
        sub = FeatureListNet(model, (0, -1))
        assert [m.shape for m in sub(x)] == [maps[0].shape, maps[-1].shape]
        assert sub.feature_info.channels() == [info.channels()[0], info.channels()[-1]]
        assert FeatureListNet(model, 2).feature_info.out_indices == (n - 2, n - 1)  # timm: an int = the last n
        with pytest.raises(ConvzooError, match=rf"-{n}\.\.{n - 1}"):
            FeatureListNet(model, (n,))


def _smallest_per_architecture(names) -> list[str]:
    """One model per architecture (and per residual / residual-free variant of it), the smallest: depth and
    width variants reuse the same blocks (as ``_one_per_family``), so training-mode checks run there."""
    best: dict = {}
    for n in names:
        key = (*_architecture(n), bool(NO_RESIDUAL.match(n)))
        size = convzoo.get_card(n).params or 0
        if key not in best or size < (convzoo.get_card(best[key]).params or 0):
            best[key] = n
    return sorted(best.values())


def _live_branches(model):
    """Random BN statistics and random scales on every norm layer (also the elastic / custom ones that
    ``randomise_bn`` does not know): zero-initialised last norms (ResNet, BigNAS) would hide a dropped branch."""
    randomise_bn(model)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            w = getattr(m, "weight", None)
            if isinstance(w, torch.Tensor) and w.dim() == 1 and "norm" in type(m).__name__.lower():
                w.copy_(torch.rand(w.shape, generator=g) * 0.5 + 0.25)
    return model


def _differs(model, x) -> bool:
    torch.manual_seed(1)
    return not torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", _smallest_per_architecture([n for n in RUN if n in CLASSIFIERS]))
def test_timm_training_arguments(name):
    """Real compute at test_size: ``drop_rate`` and ``drop_path_rate`` make two training forwards differ and
    leave evaluation deterministic (drop_path_rate is refused in one line by networks without residual paths);
    ``set_grad_checkpointing()`` gives the same loss and gradients, with the checkpointed stages run twice per
    step (forward hooks on every module that holds parameters count the recomputation); features_only maps equal
    the model's."""
    card = convzoo.get_card(name)
    x = _task(name).example_input(card, 4, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    dropped = _live_branches(convzoo.create_model(name, drop_rate=0.5, num_classes=7))
    assert _differs(dropped.train(), x), "drop_rate=0.5 changes nothing in training"
    assert not _differs(dropped.eval(), x)
    if NO_RESIDUAL.match(name):
        with pytest.raises(ConvzooError, match="drop_path_rate") as e:
            convzoo.create_model(name, drop_path_rate=0.1)
        assert "\n" not in str(e.value)
    else:
        torch.manual_seed(0)
        dp = _live_branches(convzoo.create_model(name, drop_rate=0.0, drop_path_rate=0.5, num_classes=7))
        assert _differs(dp.train(), x), "drop_path_rate=0.5 changes nothing in training"
        assert not _differs(dp.eval(), x)

    model = _model(name)
    calls: dict = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: calls.__setitem__(k, calls.get(k, 0) + 1))
             for k, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]

    def step():
        calls.clear()
        model.zero_grad(set_to_none=True)
        torch.manual_seed(2)  # the same dropout masks (checkpointing restores the RNG state for the recompute)
        loss = model(x).float().pow(2).mean()
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    state = {k: v.clone() for k, v in model.state_dict().items()}  # BN statistics move in training forwards
    try:
        model.train()
        ref_loss, ref_grads = step()
        ref_calls = dict(calls)  # ELA runs its 1-D conv twice (H and W): counts are compared, not assumed 1
        model.load_state_dict(state)
        model.set_grad_checkpointing(True)
        loss, grads = step()
        assert all(calls[k] in (n, 2 * n) for k, n in ref_calls.items()), (calls, ref_calls)
        assert any(calls[k] == 2 * n for k, n in ref_calls.items()), "no stage was recomputed in the backward pass"
    finally:
        model.set_grad_checkpointing(False)
        for h in hooks:
            h.remove()
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        model.eval()
    torch.testing.assert_close(loss, ref_loss)
    assert grads.keys() == ref_grads.keys()
    for k in grads:
        torch.testing.assert_close(grads[k], ref_grads[k], atol=1e-5 * _scale(ref_grads[k]), rtol=1e-4)

    if "features" in card.capabilities:
        import copy

        with torch.no_grad():
            full = model.features(x)
            sub = FeatureListNet(copy.deepcopy(model), (-1, 0)).eval()(x)
        assert torch.equal(sub[0], full[-1]) and torch.equal(sub[1], full[0])


def test_features_only_through_create_model():
    """The registry path: a FeatureListNet with timm's FeatureInfo, no classifier left, no stage past the last
    one asked computed (the model's ``features`` takes ``stop``)."""
    net = convzoo.create_model("vovnet27_slim", features_only=True, out_indices=(1,))
    assert isinstance(net, FeatureListNet) and net._stop == 2
    assert net.feature_info.channels() == [256] and net.feature_info.reduction() == [8]
    assert len(net.feature_info) == 4 and net.feature_info[1]["module"] == "stages.1"  # timm: the full list
    assert not any("head.fc" in k for k in net.state_dict())
    ran = []
    net.model.stages[2].register_forward_hook(lambda *a: ran.append(1))
    with torch.no_grad():
        (m,) = net(torch.randn(1, 3, 64, 64))
    assert m.shape == (1, 256, 8, 8) and not ran
    with pytest.raises(ConvzooError, match="last n"):
        convzoo.create_model("vovnet27_slim", features_only=True, out_indices=5)
    with pytest.raises(ConvzooError, match="global_pool"):
        convzoo.create_model("vovnet27_slim", global_pool="mean")


def test_drop_path_rates_are_timms():
    """Per-block stochastic-depth rates equal timm's for the same architecture (timm's models built here):
    ResNet-50 (linear over all 16 blocks) and eSE-VoVNet-39 (linear over all OSA modules; only the modules with
    an identity path drop here, timm also drops the others)."""
    import timm

    with torch.device("meta"):
        ours = convzoo.create_model("eca_resnet50", drop_path_rate=0.3)
        ref = timm.create_model("resnet50", drop_path_rate=0.3)
        got = [getattr(b.drop_path, "p", 0.0) for b in ours.residual_blocks()]
        want = [getattr(b.drop_path, "drop_prob", 0.0) for s in (ref.layer1, ref.layer2, ref.layer3, ref.layer4)
                for b in s]
        assert got == pytest.approx(want)
        ours = convzoo.create_model("ese_vovnet39b", drop_path_rate=0.3)
        ref = timm.create_model("ese_vovnet39b", drop_path_rate=0.3)
        got = [getattr(b.drop_path, "p", 0.0) for s in ours.stages for b in s.blocks if b.residual]
        want = [b.drop_path.drop_prob for s in ref.stages for b in s.blocks if b.residual]
        assert got == pytest.approx(want) and len(got) == 2


# every classifier whose card names a timm model of the same architecture (literal list: the claims)
TIMM_FEATURES = [
    pytest.param("vovnet39a", marks=pytest.mark.claim(paper=53, artefact="vovnet39a", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("vovnet57a", marks=pytest.mark.claim(paper=53, artefact="vovnet57a", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("vovnet39", marks=pytest.mark.claim(paper=53, artefact="vovnet39", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("vovnet57", marks=pytest.mark.claim(paper=53, artefact="vovnet57", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("ese_vovnet19b_dw", marks=pytest.mark.claim(paper=53, artefact="ese_vovnet19b_dw", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("ese_vovnet19b_slim", marks=pytest.mark.claim(paper=53, artefact="ese_vovnet19b_slim", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("ese_vovnet19b_slim_dw", marks=pytest.mark.claim(paper=53, artefact="ese_vovnet19b_slim_dw", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("ese_vovnet39b", marks=pytest.mark.claim(paper=53, artefact="ese_vovnet39b", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("ese_vovnet57b", marks=pytest.mark.claim(paper=53, artefact="ese_vovnet57b", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("ese_vovnet99b", marks=pytest.mark.claim(paper=53, artefact="ese_vovnet99b", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("eca_vovnet39b", marks=pytest.mark.claim(paper=53, artefact="eca_vovnet39b", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("inception_v4", marks=pytest.mark.claim(paper=33, artefact="inception_v4", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("inception_resnet_v2", marks=pytest.mark.claim(paper=33, artefact="inception_resnet_v2", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("convnext_tiny", marks=pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("convnext_small", marks=pytest.mark.claim(paper=39, artefact="convnext_small", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("convnext_base", marks=pytest.mark.claim(paper=39, artefact="convnext_base", claim="features_only channels and reductions equal timm's feature_info")),    pytest.param("convit_base", marks=pytest.mark.claim(paper=36, artefact="convit_base", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("convit_small", marks=pytest.mark.claim(paper=36, artefact="convit_small", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("convit_tiny", marks=pytest.mark.claim(paper=36, artefact="convit_tiny", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_15_240", marks=pytest.mark.claim(paper=28, artefact="crossvit_15_240", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_15_dagger_240", marks=pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_240", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_15_dagger_408", marks=pytest.mark.claim(paper=28, artefact="crossvit_15_dagger_408", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_18_240", marks=pytest.mark.claim(paper=28, artefact="crossvit_18_240", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_18_dagger_240", marks=pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_240", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_18_dagger_408", marks=pytest.mark.claim(paper=28, artefact="crossvit_18_dagger_408", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_9_240", marks=pytest.mark.claim(paper=28, artefact="crossvit_9_240", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_9_dagger_240", marks=pytest.mark.claim(paper=28, artefact="crossvit_9_dagger_240", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_base_240", marks=pytest.mark.claim(paper=28, artefact="crossvit_base_240", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_small_240", marks=pytest.mark.claim(paper=28, artefact="crossvit_small_240", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("crossvit_tiny_240", marks=pytest.mark.claim(paper=28, artefact="crossvit_tiny_240", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("halonet_h1", marks=pytest.mark.claim(paper=23, artefact="halonet_h1", claim="features_only channels and reductions equal timm's feature_info (less its stride-2 stem map)")),
    pytest.param("nasnetalarge", marks=pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d1_224", marks=pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d1_384", marks=pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d2_224", marks=pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d2_384", marks=pytest.mark.claim(paper=51, artefact="volo_d2_384", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d3_224", marks=pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d3_448", marks=pytest.mark.claim(paper=51, artefact="volo_d3_448", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d4_224", marks=pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d4_448", marks=pytest.mark.claim(paper=51, artefact="volo_d4_448", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d5_224", marks=pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d5_448", marks=pytest.mark.claim(paper=51, artefact="volo_d5_448", claim="features_only channels and reductions equal timm's feature_info")),
    pytest.param("volo_d5_512", marks=pytest.mark.claim(paper=51, artefact="volo_d5_512", claim="features_only channels and reductions equal timm's feature_info")),
]


def test_timm_features_list_is_complete():
    assert sorted(p.values[0] for p in TIMM_FEATURES) == sorted(
        n for n in CLASSIFIERS if (convzoo.get_card(n).reference or "").startswith("timm:"))


@pytest.mark.parametrize("name", TIMM_FEATURES)
def test_features_only_matches_timm(name):
    """Outside proof: timm's own ``features_only`` model of the card's reference (built here, meta device), asked
    for every map it lists (its default ``out_indices`` pick a few blocks of a ViT; convzoo's default is all).
    convzoo's VoVNet and HaloNet list the four stages; timm also lists the stride-2 stem map in front."""
    import timm

    ref = convzoo.get_card(name).reference.removeprefix("timm:")
    with torch.device("meta"):
        every = tuple(range(len(timm.create_model(ref, pretrained=False).feature_info)))
        theirs = timm.create_model(ref, features_only=True, out_indices=every, pretrained=False).feature_info
        ours = convzoo.create_model(name, features_only=True).feature_info
    t = list(zip(theirs.channels(), theirs.reduction()))
    o = list(zip(ours.channels(), ours.reduction()))
    if "vovnet" in name or name == "halonet_h1":
        assert t[0][1] == 2 and t[1:] == o, (t, o)
    else:
        assert t == o, (t, o)
