"""``create_model(name, pretrained=PATH)``: file formats, the containers authors save, classifiers of another
class count, re-parameterised checkpoints, and one line for every mistake. Fixture files only (no downloads)."""

from __future__ import annotations

import argparse

import pytest
import torch

import convzoo
from convzoo.errors import ConvzooError
from convzoo.weights.checkpoint import read_checkpoint

NAME = "eca_resnet18"  # small, official layout = ours


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(0)
    return convzoo.create_model(NAME).eval()


def _equal(a: torch.nn.Module, b: torch.nn.Module, skip: tuple[str, ...] = ()) -> bool:
    sb = b.state_dict()
    return all(torch.equal(v, sb[k]) for k, v in a.state_dict().items() if not k.startswith(skip))


def _one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and text, text
    return text


@pytest.mark.parametrize("fmt", ["safetensors", "pth", "pt", "bin", "pth.tar", "legacy", "snapshot"])
def test_formats(fmt, source, tmp_path):
    state = source.state_dict()
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file(state, str(path))
    elif fmt == "legacy":  # PyTorch's pre-1.6 pickle stream
        path = tmp_path / "w.pth"
        torch.save(state, path, _use_new_zipfile_serialization=False)
    elif fmt == "snapshot":  # a Hugging Face snapshot folder
        torch.save(state, tmp_path / "pytorch_model.bin")
        path = tmp_path
    else:
        path = tmp_path / f"w.{fmt}"
        torch.save(state, path)
    assert _equal(source, convzoo.create_model(NAME, pretrained=path))


@pytest.mark.parametrize("wrap, picks", [
    (lambda s, e: {"state_dict": s, "state_dict_ema": e, "epoch": 3}, "ema"),  # timm train.py
    (lambda s, e: {"model": s, "model_ema": e, "optimizer": {}, "epoch": 3}, "ema"),  # DeiT / ConvNeXt main.py
    (lambda s, e: {"model": s, "epoch": 3, "args": argparse.Namespace(lr=0.1)}, "model"),  # LeViT / LSNet main.py
    (lambda s, e: {"state_dict": {f"module.{k}": v for k, v in s.items()}, "arch": "x", "best_prec1": 1.0}, "model"),
    (lambda s, e: {"model": {"state_dict": s}}, "model"),  # nested
    (lambda s, e: {f"_orig_mod.{k}": v for k, v in s.items()}, "model"),  # torch.compile
    (lambda s, e: {f"module._orig_mod.{k}": v for k, v in s.items()}, "model"),
], ids=["timm-ema", "deit-ema", "namespace", "dataparallel", "nested", "compiled", "ddp-compiled"])
def test_containers(wrap, picks, source, tmp_path):
    ema = {k: (v + 1 if v.is_floating_point() else v) for k, v in source.state_dict().items()}
    torch.save(wrap(source.state_dict(), ema), tmp_path / "c.pth")
    got = convzoo.create_model(NAME, pretrained=tmp_path / "c.pth").state_dict()
    expected = ema if picks == "ema" else source.state_dict()
    assert all(torch.equal(got[k], v) for k, v in expected.items())


def test_timm_spelling_pretrained_cfg_overlay(source, tmp_path):
    torch.save(source.state_dict(), tmp_path / "w.pth")
    # timm's users write pretrained_cfg_overlay=dict(file=PATH)
    model = convzoo.create_model(NAME, pretrained=True, pretrained_cfg_overlay={"file": str(tmp_path / "w.pth")})
    assert _equal(source, model)


def test_checkpoint_without_batchnorm_counters_loads(source, tmp_path):
    """Files saved before PyTorch 0.4.1 (IBN-Net's, SimpleNet's) have no num_batches_tracked."""
    torch.save({k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")},
               tmp_path / "old.pth")
    assert _equal(source, convzoo.create_model(NAME, pretrained=tmp_path / "old.pth"),
                  skip=tuple(k for k in source.state_dict() if k.endswith("num_batches_tracked")))


# --- classifiers of another class count ---------------------------------------------------------------------

def test_other_class_count_loads_all_but_the_classifier(source, tmp_path):
    torch.save(source.state_dict(), tmp_path / "w.pth")
    with pytest.warns(UserWarning, match="classifier") as seen:
        model = convzoo.create_model(NAME, num_classes=10, pretrained=tmp_path / "w.pth")
    assert len([w for w in seen if "classifier" in str(w.message)]) == 1  # said once
    assert model.fc.weight.shape == (10, 512)
    assert _equal(source, model, skip=("fc.",))
    x = torch.randn(2, 3, 64, 64)
    assert model.eval()(x).shape == (2, 10)


def test_distillation_heads_are_both_classifiers(tmp_path):
    src = convzoo.create_model("lsnet_t_distill")
    torch.save({"model": src.state_dict()}, tmp_path / "w.pth")
    with pytest.warns(UserWarning, match="classifier"):
        model = convzoo.create_model("lsnet_t_distill", num_classes=5, pretrained=tmp_path / "w.pth")
    assert model.head.l.weight.shape == model.head_dist.l.weight.shape == (5, 384)
    assert _equal(src, model, skip=("head.l.", "head_dist.l."))


def test_pooled_embedding_model_leaves_the_classifier_out(source, tmp_path):
    torch.save(source.state_dict(), tmp_path / "w.pth")
    with pytest.warns(UserWarning, match="classifier"):
        model = convzoo.create_model(NAME, num_classes=0, pretrained=tmp_path / "w.pth")
    assert _equal(model, source)  # every tensor the embedding model has came from the file


# --- re-parameterised (deploy) checkpoints -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["unireplknet_a", "lsnet_t"])
def test_deploy_checkpoint_loads_into_deploy_model(name, tmp_path):
    trained = convzoo.create_model(name).eval()
    fused = convzoo.deploy(trained)
    torch.save(fused.state_dict(), tmp_path / "fused.pth")
    model = convzoo.create_model(name, deploy=True, pretrained=tmp_path / "fused.pth").eval()
    x = torch.randn(1, 3, *convzoo.get_card(name).test_size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), fused(x))
    with pytest.raises(ConvzooError, match="deploy=True") as e:  # given to the train-time structure: a hint
        convzoo.create_model(name, pretrained=tmp_path / "fused.pth")
    _one_line(e)


# --- one line for every mistake ------------------------------------------------------------------------------

def test_another_architecture_names_first_missing_and_unexpected_keys(tmp_path):
    torch.save(convzoo.create_model("resnet18_ibn_b").state_dict(), tmp_path / "ibn.pth")
    with pytest.raises(ConvzooError) as e:
        convzoo.create_model("vovnet39a", pretrained=tmp_path / "ibn.pth")
    text = _one_line(e)
    # counted without BatchNorm counters (files may lack them) and the classifier (re-initialised when absent)
    n_ours = len([k for k in convzoo.create_model("vovnet39a").state_dict()
                  if not k.endswith("num_batches_tracked") and not k.startswith("head.fc.")])
    assert f"{n_ours} keys missing (first 'stem.0.conv.weight')" in text
    assert "unexpected (first 'conv1.weight')" in text and "vovnet39a" in text


def test_same_keys_other_shapes(tmp_path):
    torch.save(convzoo.create_model("eca_resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ConvzooError, match="has shape") as e:
        convzoo.create_model("eca_resnet34", pretrained=tmp_path / "r18.pth")
    _one_line(e)


def test_pickled_code_is_refused(source, tmp_path):
    torch.save({"model": source}, tmp_path / "whole.pth")  # a whole pickled module: unpickling runs its class code
    with pytest.raises(ConvzooError, match="weights_only") as e:
        convzoo.create_model(NAME, pretrained=tmp_path / "whole.pth")
    assert "ECAResNet" in _one_line(e)


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 10, b"PK\x03\x04" + b"\x00" * 100, "truncated",
                                     "truncated-safetensors", b"\x80\x02not a pickle"],
                         ids=["empty", "garbage", "bad-zip", "truncated", "truncated-safetensors", "bad-pickle"])
def test_corrupt_files(content, source, tmp_path):
    path = tmp_path / "w.pth"
    if content == "truncated":
        torch.save(source.state_dict(), path)
        path.write_bytes(path.read_bytes()[:5000])
    elif content == "truncated-safetensors":
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
        path.write_bytes(path.read_bytes()[:5000])
    else:
        path.write_bytes(content)
    with pytest.raises(ConvzooError, match="corrupt") as e:
        convzoo.create_model(NAME, pretrained=path)
    _one_line(e)


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(ConvzooError, match="not found") as e:
        convzoo.create_model(NAME, pretrained=tmp_path / "nope.pth")
    _one_line(e)
    with pytest.raises(ConvzooError, match="model.safetensors") as e:
        convzoo.create_model(NAME, pretrained=tmp_path)
    _one_line(e)


def test_no_tensors(tmp_path):
    torch.save({"epoch": 3, "arch": "resnet"}, tmp_path / "w.pth")
    with pytest.raises(ConvzooError, match="no tensors") as e:
        read_checkpoint(tmp_path / "w.pth")
    _one_line(e)


# --- pretrained=True without shipped weights ------------------------------------------------------------------

@pytest.mark.parametrize("name, says", [
    ("vovnet39a", "vovnet39_torchvision.pth"),
    ("ese_vovnet39b", "ese_vovnet39b.ra_in1k"),
    ("unireplknet_a", "huggingface.co/DingXiaoH/UniRepLKNet"),
    ("lsnet_t", "huggingface.co/jameslahm/lsnet/blob/main/lsnet_t.pth"),
    ("resnet50_ibn_a", "github.com/XingangPan/IBN-Net/releases/download/v1.0/resnet50_ibn_a-d9d0bb7b.pth"),
    ("resnet152_ibn_a", "no released ones"),
    ("eca_resnet50", "BangguWu/ECANet"),
    ("convnext_dcls_tiny", "zenodo.org/record/7112021/files/convnext_dcls_tiny_1k_224_ema.pth"),
    ("inception_v4", "inception_v4.tf_in1k"),
    ("ssd300", "COCO_V1"),
    ("bignas_s", "convzoo train"),
])
def test_pretrained_true_says_where_weights_are(name, says):
    with pytest.raises(ConvzooError) as e:
        convzoo.create_model(name, pretrained=True)
    text = _one_line(e)
    assert says in text and "pretrained='PATH'" in text


def test_timm_tags_named_exist_in_timm():
    import timm

    from convzoo.weights.layouts import TIMM_WEIGHTS

    for name, tag in TIMM_WEIGHTS.items():
        assert tag in timm.list_pretrained(tag.split(".")[0] + "*"), tag
        assert convzoo.get_card(name).reference == f"timm:{tag.split('.')[0]}"


def test_shipped_weights_still_load():
    assert convzoo.create_model("espcn_x2", pretrained=True) is not None


@pytest.mark.parametrize("in_chans", [1, 4])
def test_input_convolution_adapts_to_other_channel_counts(in_chans, source, tmp_path):
    """timm's rule for pretrained=True with in_chans != 3: sum the RGB filters for one channel, else tile them
    and scale by 3 / in_chans; for one channel a grey image then gives the RGB model's response."""
    torch.save(source.state_dict(), tmp_path / "w.pth")
    with pytest.warns(UserWarning, match="input convolution conv1.weight adapted from 3"):
        model = convzoo.create_model(NAME, in_chans=in_chans, pretrained=tmp_path / "w.pth").eval()
    rgb = source.conv1.weight
    expected = rgb.sum(1, keepdim=True) if in_chans == 1 else torch.cat([rgb, rgb[:, :1]], 1) * 3 / 4
    torch.testing.assert_close(model.conv1.weight, expected)
    assert _equal(source, model, skip=("conv1.",))
    if in_chans == 1:
        grey = torch.rand(2, 1, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(model(grey), source(grey.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_every_model_without_shipped_weights_says_where_in_one_line():
    from convzoo.weights import bundled_path
    from convzoo.weights.layouts import where_weights

    for name in convzoo.list_models():
        card = convzoo.get_card(name)
        if bundled_path(name).is_file():
            continue
        text = where_weights(card)
        assert "\n" not in text and f"create_model('{name}', pretrained='PATH')" in text, name


def test_container_with_a_tensor_beside_the_weights(source, tmp_path):
    """{"state_dict": ..., "best_acc1": tensor} (the PyTorch ImageNet example): the tensor is not the model."""
    torch.save({"state_dict": source.state_dict(), "best_acc1": torch.tensor(70.0)}, tmp_path / "w.pth")
    assert _equal(source, convzoo.create_model(NAME, pretrained=tmp_path / "w.pth"))


def test_another_num_classes_drops_volos_aux_head_too(tmp_path):
    """VOLO's token-labelling aux head has one output per class, like its class head: both are re-initialised."""
    from safetensors.torch import save_file

    src = convzoo.create_model("volo_d1_224")
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "model.safetensors"))
    with pytest.warns(UserWarning):
        net = convzoo.create_model("volo_d1_224", pretrained=tmp_path / "model.safetensors", num_classes=10)
    assert net.head.weight.shape == net.aux_head.weight.shape == (10, 384)
    kept = {k: v for k, v in src.state_dict().items() if not k.startswith(("head.", "aux_head."))}
    assert all(torch.equal(net.state_dict()[k], v) for k, v in kept.items())
