"""The key layouts that released checkpoints use, per family, and where each family's weights come from.

``create_model(name, pretrained=PATH)`` tries every layout that a family's checkpoints are known to
use and keeps the one whose renamed keys fit the model best (most keys present with the model's
shape, then fewest keys the model lacks; ties go to the first listed). Layouts, per family:

- convzoo's own keys, which for most families ARE the official or timm keys (:data:`OWN_LAYOUT` says
  whose: the family files keep those names on purpose, so the authors' files load unchanged);
- timm's, for models whose card names a ``timm:`` reference and whose family file registered renaming
  rules with :func:`convzoo.weights.from_timm.register_timm_rules` (Inception-v4, Inception-ResNet-v2);
- the authors' layouts that differ from ours (:data:`FAMILY_LAYOUTS`), renamed by the converter the
  family file already provides (``remap_state_dict``): official VoVNet-V1 (VoVNet.pytorch) and V2
  (vovnet-detectron2), official ConvNeXt / ConvNeXt-dcls, official ECA-MobileNetV2 and timm's ECA
  ResNets, official DenseNet-IBN-a, official SimpleNet (both numberings), torchvision's SSD300-VGG16, and
  RepLKNet's official re-parameterised files (conv-BN pairs folded on load, :func:`fold_conv_bn`).

Each family's release places (:data:`RELEASES`) and timm's pretrained tags (:data:`TIMM_WEIGHTS`)
make the line that ``pretrained=True`` prints when no weights ship inside convzoo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from convzoo.errors import ConvzooError

__all__ = [
    "FAMILY_LAYOUTS",
    "OWN_LAYOUT",
    "RELEASES",
    "TIMM_WEIGHTS",
    "Layout",
    "best_layout",
    "candidates",
    "where_weights",
]

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Layout:
    """A checkpoint key layout: its name (for messages) and ``convert(state, model) -> state`` in our keys."""

    name: str
    convert: Callable[[State, nn.Module], State]


def _family_remap(module: str, func: str = "remap_state_dict") -> Callable[[State, nn.Module], State]:
    def convert(state: State, model: nn.Module) -> State:
        import importlib

        return getattr(importlib.import_module(f"convzoo.models.{module}"), func)(state)

    return convert


def _detectron2_backbone(state: State, model: nn.Module) -> State:
    """A whole detectron2 detector checkpoint: its ``backbone.bottom_up.`` part (FPN and heads left out), then the
    VoVNet renaming."""
    if not any(k.startswith("backbone.bottom_up.") for k in state):
        raise ValueError("no detectron2 backbone keys")
    from convzoo.models.vovnet import remap_state_dict

    return remap_state_dict({k: v for k, v in state.items() if k.startswith("backbone.bottom_up.")})


def _simplenet(state: State, model: nn.Module) -> State:
    from convzoo.models.simplenet import remap_official_state_dict

    return remap_official_state_dict(state, model)


_BN_LEAVES = ("weight", "bias", "running_mean", "running_var")


def fold_conv_bn(state: State, model: nn.Module) -> State:
    """Unfolded ``X.conv`` + ``X.bn`` pairs of a file, folded where the model holds ``X.conv`` with a bias and no
    ``X.bn`` (a deploy structure that folds every conv-BN pair, e.g. RepLKNet's, given the official
    ``small_kernel_merged`` checkpoint): W' = W s, b' = beta - mean s, s = gamma / sqrt(var + 1e-5)
    (``nn.BatchNorm2d``'s eps, the official models' BN)."""
    own = model.state_dict()
    out = dict(state)
    for key in own:
        if not key.endswith(".conv.bias") or key in state:
            continue
        base = key.removesuffix(".conv.bias")
        bn = [f"{base}.bn.{leaf}" for leaf in _BN_LEAVES]
        if f"{base}.conv.weight" not in state or not all(k in state for k in bn) or f"{base}.bn.weight" in own:
            continue
        gamma, beta, mean, var = (state[k].float() for k in bn)
        scale = gamma / torch.sqrt(var + 1e-5)
        w = state[f"{base}.conv.weight"]
        out[f"{base}.conv.weight"] = (w.float() * scale.reshape(-1, *[1] * (w.ndim - 1))).to(w.dtype)
        out[key] = (beta - mean * scale).to(w.dtype)
        for k in [*bn, f"{base}.bn.num_batches_tracked"]:
            out.pop(k, None)
    return out


# Whose keys convzoo's own layout equals, per family (checked by tests/weights/test_official_layouts.py).
OWN_LAYOUT: dict[str, str] = {
    "unireplknet": "official AILab-CVC/UniRepLKNet unireplknet.py (train-time; deploy=True: the re-parameterised)",
    "replknet": "official DingXiaoH/RepLKNet-pytorch replknet.py (deploy=True: small_kernel_merged)",
    "lsnet": "official THU-MIG/lsnet model/lsnet.py",
    "spartan": "official henry-pay/SpaRTAN src/model/spartan.py",
    "ibnnet": "official XingangPan/IBN-Net ResNet/ResNeXt/SE-ResNet-IBN (ibnnet/*.py)",
    "ecanet": "official BangguWu/ECANet eca_resnet.py",
    "vovnet": "timm vovnet.py",
    "convnext_dcls": "timm convnext.py (ConvNeXt; -dcls: timm's names plus stages.S.P)",
    "inception_v4": "timm inception_v4.py (through from_timm)",
    "inception_resnet": "timm inception_resnet_v2.py (through from_timm)",
    "simplenet": "official Coderx7/SimpleNet_Pytorch (current numbering)",
    "resnet_dcls": "torchvision ResNet keys plus layerN.P",
    "ela": "torchvision ResNet / MobileNetV2 keys plus .ela.",
}

# Layouts besides our own, per family, in the order they are tried.
FAMILY_LAYOUTS: dict[str, tuple[Layout, ...]] = {
    "vovnet": (Layout("official VoVNet.pytorch (V1) / vovnet-detectron2 (V2)", _family_remap("vovnet")),
               Layout("vovnet-detectron2 detector (its backbone)", _detectron2_backbone)),
    "convnext_dcls": (Layout("official facebookresearch/ConvNeXt / K-H-Ismail/ConvNeXt-dcls",
                             _family_remap("convnext_dcls")),),
    "ecanet": (Layout("official BangguWu/ECANet eca_mobilenetv2.py / timm ResNet attn_layer='eca'",
                      _family_remap("ecanet")),),
    "ibnnet": (Layout("official XingangPan/IBN-Net densenet_ibn.py", _family_remap("ibnnet")),),
    "simplenet": (Layout("official Coderx7/SimpleNet_Pytorch (either numbering)", _simplenet),),
    "ssd": (Layout("torchvision ssd300_vgg16", _family_remap("ssd", "remap_torchvision")),),
    "replknet": (Layout("official DingXiaoH/RepLKNet-pytorch small_kernel_merged (conv-BN pairs folded on load)",
                        fold_conv_bn),),
}

_HF = "https://huggingface.co"
_IBN = "https://github.com/XingangPan/IBN-Net/releases/download/v1.0"
_DROPBOX = "https://dl.dropbox.com/s"
# Where released weights are, per family (the official READMEs, read for these facts); "{name}" is the model.
RELEASES: dict[str, str] = {
    "unireplknet": f"the authors' files on {_HF}/DingXiaoH/UniRepLKNet (e.g. unireplknet_a_in1k_224_acc77.03.pth; "
                   "AILab-CVC/UniRepLKNet README)",
    "replknet": "the authors' Google Drive / Baidu files linked from the DingXiaoH/RepLKNet-pytorch README "
                "(e.g. RepLKNet-31B_ImageNet-1K_224.pth)",
    "lsnet": f"the authors' file {_HF}/jameslahm/lsnet/blob/main/{{name}}.pth (THU-MIG/lsnet README)",
    "ibnnet": f"the authors' releases {_IBN}/{{name}}-<hash>.pth (resnet18/34/50/101 IBN-a and IBN-b, "
              "resnext101, se_resnet101, densenet121/169 IBN-a; XingangPan/IBN-Net resnet_ibn.py model_urls)",
    "ecanet": "the authors' Google Drive / Baidu files linked from the BangguWu/ECANet README (e.g. eca_resnet50_k3557)",
    "simplenet": "the authors' GitHub releases of Coderx7/SimpleNet_Pytorch",
}
_SSD300 = ("torchvision's COCO weights (save torchvision.models.detection.ssd300_vgg16(weights='COCO_V1').state_dict() "
           "with torch.save; 91 classes: num_classes=91)")
_VOVNET_V1 = (f"the authors' V1 file {_DROPBOX}/1lnzsgnixd8gjra/vovnet39_torchvision.pth (vovnet57: "
              f"{_DROPBOX}/6bfu9gstbwfw31m/vovnet57_torchvision.pth; stigma0617/VoVNet.pytorch), built with residual=True")
_VOVNET_V2 = (f"the authors' ImageNet backbone {_DROPBOX}/q98pypf96rhtd8y/vovnet39_ese_detectron2.pth (57: "
              f"{_DROPBOX}/8xl0cb3jj51f45a/vovnet57_ese_detectron2.pth, 99: "
              f"{_DROPBOX}/1mlv31coewx8trd/vovnet99_ese_detectron2.pth; youngwanLEE/vovnet-detectron2), built with "
              "attn_placement='block', num_classes=0")


def _release(card) -> str | None:
    name, family = card.name, card.family
    if family == "vovnet":
        if name.startswith(("vovnet39", "vovnet57")):
            return _VOVNET_V1
        return _VOVNET_V2 if name in ("ese_vovnet39b", "ese_vovnet57b", "ese_vovnet99b") else None
    if family == "convnext_dcls":
        if name.startswith("convnext_dcls"):
            return f"the authors' file https://zenodo.org/record/7112021/files/{name}_1k_224_ema.pth (K-H-Ismail/ConvNeXt-dcls)"
        return f"the authors' file https://dl.fbaipublicfiles.com/convnext/{name}_1k_224_ema.pth (facebookresearch/ConvNeXt)"
    if name == "ssd300":
        return _SSD300
    if family in ("lsnet", "ibnnet"):
        return RELEASES[family].format(name=name)
    return RELEASES.get(family)


# timm's pretrained tag for each model whose card names a timm reference (timm 1.0 list_pretrained).
TIMM_WEIGHTS: dict[str, str] = {
    "convnext_tiny": "convnext_tiny.fb_in1k",
    "convnext_small": "convnext_small.fb_in1k",
    "convnext_base": "convnext_base.fb_in1k",
    "ese_vovnet19b_dw": "ese_vovnet19b_dw.ra_in1k",
    "ese_vovnet39b": "ese_vovnet39b.ra_in1k",
    "ese_vovnet57b": "ese_vovnet57b.ra4_e3600_r256_in1k",
    "inception_v4": "inception_v4.tf_in1k",
    "inception_resnet_v2": "inception_resnet_v2.tf_in1k",
}


def where_weights(card) -> str:
    """One line: no weights ship for ``card.name``; where released weights are; how to load a file."""
    places = []
    if card.name in TIMM_WEIGHTS:
        tag = TIMM_WEIGHTS[card.name]
        places.append(f"timm's '{tag}' (save timm.create_model('{tag}', pretrained=True).state_dict() "
                      "with torch.save)")
    release = _release(card)
    if release:
        places.append(release)
    if not places:
        return (f"no weights ship with convzoo for '{card.name}' and none are released for the {card.family} family "
                f"that convzoo knows of: train them with `convzoo train`, or load a file with "
                f"create_model('{card.name}', pretrained='PATH')")
    return (f"no weights ship with convzoo for '{card.name}'; released weights: {'; or '.join(places)}; load the "
            f"file with create_model('{card.name}', pretrained='PATH')")


def _timm_layout(card) -> Layout | None:
    if not (card.reference or "").startswith("timm:"):
        return None
    from convzoo.weights import from_timm as ft

    ft._load_families()
    if card.name not in ft._RULES:
        return None  # our keys are timm's
    return Layout(f"timm {card.reference.removeprefix('timm:')}", lambda state, model: ft.from_timm(card.name, state))


def candidates(card) -> list[Layout]:
    """The layouts tried for ``card``'s model: our own keys, timm's (when renamed), then the family's."""
    own = Layout("convzoo" + (f" (= {OWN_LAYOUT[card.family]})" if card.family in OWN_LAYOUT else ""),
                 lambda state, model: dict(state))
    timm = _timm_layout(card)
    return [own, *([timm] if timm else []), *FAMILY_LAYOUTS.get(card.family, ())]


def _score(state: State, own: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Keys that fit (present with the model's shape), then fewest keys the model lacks."""
    fit = sum(1 for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape))
    return fit, -sum(1 for k in state if k not in own)


def best_layout(card, model: nn.Module, state: State) -> tuple[Layout, State]:
    """The layout whose renaming of ``state`` fits ``model`` best, and the renamed state."""
    own = model.state_dict()
    best: tuple[tuple[int, int], Layout, State] | None = None
    for layout in candidates(card):
        try:
            renamed = layout.convert(state, model)
        except (ConvzooError, KeyError, ValueError, IndexError):
            continue  # a converter that cannot read these keys: not this layout
        score = _score(renamed, own)
        if best is None or score > best[0]:
            best = (score, layout, renamed)
    assert best is not None  # our own layout never raises
    return best[1], best[2]
