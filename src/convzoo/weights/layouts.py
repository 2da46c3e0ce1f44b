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

The authors' released files (:data:`RELEASED`, per model; :data:`RELEASES`, per family) and timm's pretrained tags (:data:`TIMM_WEIGHTS`)
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
    "RELEASED",
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
    "halonet": "timm byoanet.py halonet_h1 (ByobNet SelfAttnBlock + HaloAttn keys)",
    "nasnet": "timm nasnet.py (nasnetalarge; the official TF-slim variables as timm ported them)",
    "crossvit": "timm crossvit.py (official IBM/CrossViT keys less the .0 of pos_embed / cls_token)",
    "convit": "official facebookresearch/convit convit.py (= timm convit.py)",
    "volo": "official sail-sg/volo models/volo.py (= timm volo.py)",
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
    "crossvit": (Layout("official IBM/CrossViT crossvit.py (pos_embed.0, cls_token.0)", _family_remap("crossvit")),),
    "multidigit": (Layout("potterhsu/SVHNClassifier-PyTorch model.py (multidigit_net_port)", _family_remap("multidigit")),),
    "p3d": (Layout("qijiezhao/pseudo-3d-pytorch p3d_model.py (P3D199 ported weights)", _family_remap("p3d")),),
    "replknet": (Layout("official DingXiaoH/RepLKNet-pytorch small_kernel_merged (conv-BN pairs folded on load)",
                        fold_conv_bn),),
}

_HF = "https://huggingface.co"
_DROPBOX = "https://dl.dropbox.com/s"
_IBN = "https://github.com/XingangPan/IBN-Net/releases/download/v1.0"
# The authors' released files, per model (official READMEs and model_urls, read for these facts).
RELEASED: dict[str, str] = {
    # XingangPan/IBN-Net ibnnet/resnet_ibn.py, resnext_ibn.py, se_resnet_ibn.py, densenet_ibn.py model_urls
    **{f"{n}": f"{_IBN}/{n}-{h}.pth" for n, h in (
        ("resnet18_ibn_a", "2f571257"), ("resnet34_ibn_a", "94bc1577"), ("resnet50_ibn_a", "d9d0bb7b"),
        ("resnet101_ibn_a", "59ea0ac6"), ("resnet18_ibn_b", "bc2f3c11"), ("resnet34_ibn_b", "04134c37"),
        ("resnet50_ibn_b", "9ca61e85"), ("resnet101_ibn_b", "c55f6dba"), ("resnext101_ibn_a", "6ace051d"),
        ("se_resnet101_ibn_a", "fabed4e2"), ("densenet121_ibn_a", "e4af5cc1"), ("densenet169_ibn_a", "9f32c161"))},
    # THU-MIG/lsnet README
    **{f"lsnet_{v}{d}": f"{_HF}/jameslahm/lsnet/blob/main/lsnet_{v}{d}.pth" for v in "tsb" for d in ("", "_distill")},
    # AILab-CVC/UniRepLKNet unireplknet.py huggingface_file_names (repo DingXiaoH/UniRepLKNet)
    **{f"unireplknet_{v}": f"{_HF}/DingXiaoH/UniRepLKNet/blob/main/{f}" for v, f in (
        ("a", "unireplknet_a_in1k_224_acc77.03.pth"), ("f", "unireplknet_f_in1k_224_acc78.58.pth"),
        ("p", "unireplknet_p_in1k_224_acc80.23.pth"), ("n", "unireplknet_n_in1k_224_acc81.64.pth"),
        ("t", "unireplknet_t_in1k_224_acc83.21.pth"), ("s", "unireplknet_s_in1k_224_acc83.91.pth"),
        ("b", "unireplknet_b_in22k_to_in1k_384_acc87.40.pth"), ("l", "unireplknet_l_in22k_to_in1k_384_acc87.88.pth"),
        ("xl", "unireplknet_xl_in22k_to_in1k_384_acc87.96.pth"))},
    # DingXiaoH/RepLKNet-pytorch README (Google Drive / Baidu links; the file names its commands use)
    "replknet_31b": "RepLKNet-31B_ImageNet-1K_224.pth from the DingXiaoH/RepLKNet-pytorch README's Google Drive link",
    "replknet_31l": "RepLKNet-31L_ImageNet-22K-to-1K_384.pth from the DingXiaoH/RepLKNet-pytorch README's Google Drive link",
    "replknet_xl": "RepLKNet-XL_MegData73M_ImageNet1K.pth from the DingXiaoH/RepLKNet-pytorch README's Google Drive link",
    # BangguWu/ECANet README (Google Drive / Baidu links)
    **{n: f"{f} from the BangguWu/ECANet README's Google Drive / Baidu links" for n, f in (
        ("eca_resnet18", "eca_resnet18_k3577"), ("eca_resnet34", "eca_resnet34_k3357"),
        ("eca_resnet50", "eca_resnet50_k3557"), ("eca_resnet101", "eca_resnet101_k3357"),
        ("eca_resnet152", "eca_resnet152_k3357"), ("eca_mobilenetv2", "eca_mobilenetv2_k13"))},
    # K-H-Ismail/ConvNeXt-dcls README and facebookresearch/ConvNeXt
    **{f"convnext_dcls_{v}": f"https://zenodo.org/record/7112021/files/convnext_dcls_{v}_1k_224_ema.pth"
       for v in ("tiny", "small", "base")},
    **{f"convnext_{v}": f"https://dl.fbaipublicfiles.com/convnext/convnext_{v}_1k_224_ema.pth"
       for v in ("tiny", "small", "base")},
    # stigma0617/VoVNet.pytorch model_urls (V1: build with residual=True, the official V1 code's identity)
    **{n: f"{_DROPBOX}/1lnzsgnixd8gjra/vovnet39_torchvision.pth (build with residual=True)"
       for n in ("vovnet39", "vovnet39a")},
    **{n: f"{_DROPBOX}/6bfu9gstbwfw31m/vovnet57_torchvision.pth (build with residual=True)"
       for n in ("vovnet57", "vovnet57a")},
    # youngwanLEE/vovnet-detectron2 README: ImageNet backbones (eSE in every block, no classifier)
    **{f"ese_vovnet{d}b": f"{_DROPBOX}/{h}/vovnet{d}_ese_detectron2.pth (build with attn_placement='block')"
       for d, h in (("39", "q98pypf96rhtd8y"), ("57", "8xl0cb3jj51f45a"), ("99", "1mlv31coewx8trd"))},
    "ssd300": ("torchvision's COCO weights: save torchvision.models.detection.ssd300_vgg16(weights='COCO_V1')"
               ".state_dict() with torch.save (91 classes: num_classes=91)"),
}
# Families whose authors publish weights that convzoo does not list file by file.
RELEASES: dict[str, str] = {
    "simplenet": "the authors' GitHub releases of Coderx7/SimpleNet_Pytorch",
}


def _release(card) -> str | None:
    if card.name in RELEASED:
        return f"the authors' file {RELEASED[card.name]}" if card.name != "ssd300" else RELEASED[card.name]
    return RELEASES.get(card.family)


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
    "convit_base": "convit_base.fb_in1k",
    "convit_small": "convit_small.fb_in1k",
    "convit_tiny": "convit_tiny.fb_in1k",
    "crossvit_15_240": "crossvit_15_240.in1k",
    "crossvit_15_dagger_240": "crossvit_15_dagger_240.in1k",
    "crossvit_15_dagger_408": "crossvit_15_dagger_408.in1k",
    "crossvit_18_240": "crossvit_18_240.in1k",
    "crossvit_18_dagger_240": "crossvit_18_dagger_240.in1k",
    "crossvit_18_dagger_408": "crossvit_18_dagger_408.in1k",
    "crossvit_9_240": "crossvit_9_240.in1k",
    "crossvit_9_dagger_240": "crossvit_9_dagger_240.in1k",
    "crossvit_base_240": "crossvit_base_240.in1k",
    "crossvit_small_240": "crossvit_small_240.in1k",
    "crossvit_tiny_240": "crossvit_tiny_240.in1k",
    "nasnetalarge": "nasnetalarge.tf_in1k",
    "volo_d1_224": "volo_d1_224.sail_in1k",
    "volo_d1_384": "volo_d1_384.sail_in1k",
    "volo_d2_224": "volo_d2_224.sail_in1k",
    "volo_d2_384": "volo_d2_384.sail_in1k",
    "volo_d3_224": "volo_d3_224.sail_in1k",
    "volo_d3_448": "volo_d3_448.sail_in1k",
    "volo_d4_224": "volo_d4_224.sail_in1k",
    "volo_d4_448": "volo_d4_448.sail_in1k",
    "volo_d5_224": "volo_d5_224.sail_in1k",
    "volo_d5_448": "volo_d5_448.sail_in1k",
    "volo_d5_512": "volo_d5_512.sail_in1k",
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
        return (f"no weights ship with convzoo for '{card.name}' and convzoo knows of no released ones: train them "
                f"with `convzoo train`, or load a file with create_model('{card.name}', pretrained='PATH')")
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
