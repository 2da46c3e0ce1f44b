"""Registry behaviour: names, filters, suggestions, cards, weights errors."""

from __future__ import annotations

import pytest
import torch

import convzoo
from convzoo.errors import ConvzooError, UnknownNameError


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError) as e:
        convzoo.create_model("ecaresnet50")
    assert "eca_resnet50" in e.value.suggestions
    assert str(e.value).startswith("unknown model 'ecaresnet50'")


def test_list_models_filters():
    assert "eca_resnet50" in convzoo.list_models("eca*")
    assert set(convzoo.list_models(paper=41)) == {"espcn_x2", "espcn_x3", "espcn_x4", "espcn_x2_paper",
                                                     "espcn_x3_paper", "espcn_x4_paper", "espcn_x3_fusion3"}
    assert all(convzoo.get_card(n).task == "super_resolution" for n in convzoo.list_models(task="super_resolution"))
    assert convzoo.list_models("resnet50") == [n for n in convzoo.list_models() if "resnet50" in n]


def test_create_model_honours_classes_and_chans():
    m = convzoo.create_model("simplenet", num_classes=3, in_chans=1)
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    assert m.card.name == "simplenet"


def test_load_weights_errors(tmp_path):
    m = convzoo.create_model("simplenet_cifar_310k")
    with pytest.raises(ConvzooError, match="not found"):
        convzoo.load_weights(m, tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ConvzooError, match="corrupt"):
        convzoo.load_weights(m, bad)
    other = convzoo.save_weights(convzoo.create_model("simplenet_cifar_460k"), tmp_path / "other.safetensors")
    with pytest.raises(ConvzooError, match="does not fit"):
        convzoo.load_weights(m, other)


def test_load_weights_strips_dataparallel_prefix(tmp_path):
    from safetensors.torch import save_file

    m = convzoo.create_model("simplenet_cifar_310k")
    save_file({f"module.{k}": v.contiguous() for k, v in m.state_dict().items()}, str(tmp_path / "dp.safetensors"))
    convzoo.load_weights(convzoo.create_model("simplenet_cifar_310k"), tmp_path / "dp.safetensors")


def test_deploy_folds_conv_bn():
    from convzoo.layers.fuse import deploy

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    net[1].weight.data.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 8, 8)
    ref = net.eval()(x)
    fused = deploy(net)
    assert isinstance(fused[1], torch.nn.Identity)
    torch.testing.assert_close(fused(x), ref, atol=1e-5, rtol=1e-5)
