"""The authors' checkpoint layouts load through ``create_model(name, pretrained=PATH)``.

For each family, a generator below lists the state-dict keys of the OFFICIAL model, written from the
official source (file and commit named at each generator), each paired with the key of ours that holds
the same tensor. Where the official layout equals ours the pair is ``(key, key)`` and the test's first
assertion, "the official keys are exactly our keys", is the whole claim. The test then writes a fixture
file with the official names, random values and the container the authors' scripts save
(``{"model": ...}``, ``{"state_dict": {"module." ...}, "optimizer": ...}``, a bare dict), loads it by
``create_model(name, pretrained=PATH)`` and checks that every tensor landed where the pairs say. A few
tensor shapes per family are written literally from the official configurations.
"""

from __future__ import annotations

import pytest
import torch

import convzoo

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
FROZEN_BN = BN[:4]  # detectron2's FrozenBatchNorm2d keeps no num_batches_tracked
WB = ("weight", "bias")


def leaves(off: str, our: str, names=WB, sep: str = ".") -> list[tuple[str, str]]:
    return [(f"{off}{sep}{n}", f"{our}.{n}") for n in names]


def same(keys: list[str]) -> list[tuple[str, str]]:
    return [(k, k) for k in keys]


def load_official(name: str, pairs, tmp_path, wrap=lambda s: s, fmt: str = "pth", absent=(), **kw):
    """Write the official keys (random values) in ``wrap``'s container, load them, check where each landed."""
    ref = convzoo.create_model(name, **kw)
    own = ref.state_dict()
    ours = [o for _, o in pairs]
    assert len({o for o, _ in pairs}) == len(pairs), "an official key listed twice"
    assert set(ours) == {k for k in own if k not in absent}, (
        f"official keys not ours: {sorted(set(ours) - set(own))[:3]}; ours not official: "
        f"{sorted(set(own) - set(ours) - set(absent))[:3]}")
    g = torch.Generator().manual_seed(0)
    values = {k: (torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()) for k, v in own.items()}
    fixture = {off: values[our] for off, our in pairs}
    path = tmp_path / f"official.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in fixture.items()}, str(path))
    else:
        torch.save(wrap(fixture), path)
    loaded = convzoo.create_model(name, pretrained=path, **kw).state_dict()
    for off, our in pairs:
        assert torch.equal(loaded[our], fixture[off]), f"official {off} did not land at {our}"
    return fixture


def check_shapes(fixture: dict, shapes: dict) -> None:
    for key, shape in shapes.items():
        assert tuple(fixture[key].shape) == shape, key


# --- UniRepLKNet: AILab-CVC/UniRepLKNet unireplknet.py (b5677d8) = ours --------------------------------------

_DILATED = {13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5))}  # DilatedReparamBlock: kernel_sizes / dilates for 13


def unireplknet_keys(kernels, deploy: bool) -> list[str]:
    keys = [f"downsample_layers.0.{i}.{n}" for i in (0, 1, 3, 4) for n in WB]
    keys += [f"downsample_layers.{s}.{i}.{n}" for s in (1, 2, 3) for i in (0, 1) for n in WB]
    for s, stage in enumerate(kernels):
        for j, k in enumerate(stage):
            p = f"stages.{s}.{j}."
            conv = "dwconv.lk_origin" if k >= 7 else "dwconv"
            keys += [f"{p}{conv}.weight"] + ([f"{p}{conv}.bias"] if deploy else [])
            if k >= 7 and not deploy:
                keys += [f"{p}dwconv.origin_bn.{n}" for n in BN]
                for kk, r in _DILATED[k]:
                    keys += [f"{p}dwconv.dil_conv_k{kk}_{r}.weight"] + [f"{p}dwconv.dil_bn_k{kk}_{r}.{n}" for n in BN]
            if not deploy:
                keys += [f"{p}norm.{n}" for n in BN]
            keys += [f"{p}se.down.{n}" for n in WB] + [f"{p}se.up.{n}" for n in WB]
            keys += [f"{p}pwconv1.1.{n}" for n in WB] + [f"{p}act.1.gamma"] + ([] if deploy else [f"{p}act.1.beta"])
            keys += [f"{p}pwconv2.0.{n}" for n in WB] if deploy else \
                [f"{p}pwconv2.0.weight"] + [f"{p}pwconv2.2.{n}" for n in BN] + [f"{p}gamma"]
    return keys + ["norm.weight", "norm.bias", "head.weight", "head.bias"]


_UNIREPLKNET_A = ((3, 3), (13, 13), (13,) * 6, (13, 13))  # default_UniRepLKNet_A_F_P_kernel_sizes


@pytest.mark.claim(paper=13, artefact="unireplknet_a",
                   claim="the official UniRepLKNet checkpoint layout (train-time and re-parameterised) loads by create_model(pretrained=PATH)")
@pytest.mark.parametrize("deploy", [False, True], ids=["train-time", "deploy"])
def test_unireplknet_official_layout(deploy, tmp_path):
    pairs = same(unireplknet_keys(_UNIREPLKNET_A, deploy))
    fixture = load_official("unireplknet_a", pairs, tmp_path, wrap=lambda s: {"model": s}, deploy=deploy)
    check_shapes(fixture, {"downsample_layers.0.0.weight": (20, 3, 3, 3), "stages.1.0.dwconv.lk_origin.weight":
                           (80, 1, 13, 13), "stages.0.0.pwconv1.1.weight": (160, 40), "head.weight": (1000, 320)})
    if not deploy:
        check_shapes(fixture, {"stages.2.5.dwconv.dil_conv_k7_2.weight": (160, 1, 7, 7)})


# --- LSNet: THU-MIG/lsnet model/lsnet.py (cbe737c) = ours ---------------------------------------------------

def lsnet_keys(embed, depth, distill: bool) -> list[str]:
    cbn = ["c.weight"] + [f"bn.{n}" for n in BN]
    keys = [f"patch_embed.{i}.{k}" for i in (0, 2, 4) for k in cbn]
    for s in range(4):
        idx = 0
        if s > 0:  # the previous stage's downsampling opens this stage's Sequential
            keys += [f"blocks{s + 1}.{i}.{k}" for i in (0, 1) for k in cbn]
            idx = 2
        for d in range(depth[s]):
            p = f"blocks{s + 1}.{idx + d}."
            if d % 2 == 0:  # RepVGGDW + timm SqueezeExcite(ed, 0.25)
                keys += [f"{p}mixer.{m}.{k}" for m in ("conv", "conv1") for k in cbn]
                keys += [f"{p}se.{fc}.{n}" for fc in ("fc1", "fc2") for n in WB]
            elif s == 3:  # Residual(Attention)
                keys += [f"{p}mixer.m.{m}.{k}" for m in ("qkv", "proj.1", "dw") for k in cbn]
                keys += [f"{p}mixer.m.attention_biases", f"{p}mixer.m.attention_bias_idxs"]
            else:  # LSConv
                keys += [f"{p}mixer.lkp.{m}.{k}" for m in ("cv1", "cv2", "cv3") for k in cbn]
                keys += [f"{p}mixer.lkp.cv4.{n}" for n in WB] + [f"{p}mixer.lkp.norm.{n}" for n in WB]
                keys += [f"{p}mixer.bn.{n}" for n in BN]
            keys += [f"{p}ffn.m.{m}.{k}" for m in ("pw1", "pw2") for k in cbn]
    for head in ("head", "head_dist") if distill else ("head",):
        keys += [f"{head}.bn.{n}" for n in BN] + [f"{head}.l.{n}" for n in WB]
    return keys


@pytest.mark.claim(paper=18, artefact="lsnet_t_distill",
                   claim="the official LSNet checkpoint layout ({'model': ...} of main.py) loads by create_model(pretrained=PATH)")
def test_lsnet_official_layout(tmp_path):
    import timm.layers

    # the official block's SE is timm's SqueezeExcite(ed, 0.25): its keys are fc1 / fc2
    assert set(timm.layers.SqueezeExcite(64, 0.25).state_dict()) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    pairs = same(lsnet_keys((64, 128, 256, 384), (0, 2, 8, 10), distill=True))  # official lsnet_t
    fixture = load_official("lsnet_t_distill", pairs, tmp_path,
                            wrap=lambda s: {"model": s, "epoch": 299, "args": __import__("argparse").Namespace(lr=1e-3)})
    check_shapes(fixture, {"patch_embed.0.c.weight": (16, 3, 3, 3), "blocks2.0.c.weight": (64, 1, 3, 3),
                           "blocks3.3.mixer.lkp.cv2.c.weight": (128, 1, 7, 7), "head_dist.l.weight": (1000, 384)})


# --- SpaRTAN: henry-pay/SpaRTAN src/model/spartan.py + src/config/model/spartan.yaml (1715a43) = ours -------------

def spartan_keys(depths=(3, 3, 12, 2)) -> list[str]:
    keys = ["conv.0.conv.weight"] + [f"conv.0.norm.{n}" for n in BN] + ["conv.1.conv.weight"] + \
        [f"conv.1.norm.{n}" for n in BN]
    se = lambda p: [f"{p}.{m}.{n}" for m in ("squeeze", "expand") for n in WB]
    n_ = 0
    for layer, depth in enumerate(depths):
        for _ in range(depth):
            p = f"layers.{n_}."
            keys += [f"{p}smixer.gamma"] + [f"{p}smixer.proj_in.{n}" for n in WB]
            keys += [f"{p}smixer.h_conv.conv.weight"] + [f"{p}smixer.h_conv.norm.{n}" for n in BN]
            keys += [f"{p}smixer.l_conv.0.conv.weight", f"{p}smixer.l_conv.1.conv.weight"]
            keys += [f"{p}smixer.l_conv.1.norm.{n}" for n in BN]
            keys += se(f"{p}smixer.h_attn") + se(f"{p}smixer.l_attn") + [f"{p}smixer.proj_out.{n}" for n in WB]
            keys += [f"{p}cmixer.theta.{n}" for n in WB] + [f"{p}cmixer.proj.{n}" for n in WB] + [f"{p}cmixer.complex"]
            keys += [f"{p}cmixer.conv.conv.weight"] + [f"{p}cmixer.conv.norm.{n}" for n in BN]
            keys += se(f"{p}cmixer.attn") + [f"{p}cmixer.proj_out.{n}" for n in WB]
            keys += [f"{p}norm_1.{n}" for n in WB] + [f"{p}norm_2.{n}" for n in WB] + [f"{p}scale_1", f"{p}scale_2"]
            n_ += 1
        if layer != len(depths) - 1:
            keys += [f"layers.{n_}.conv.weight"] + [f"layers.{n_}.norm.{n}" for n in BN]
            n_ += 1
    return keys + ["linear.weight", "linear.bias"]


@pytest.mark.claim(paper=21, artefact="spartan_t",
                   claim="the official SpaRTAN checkpoint layout (state_dict['model']) loads by create_model(pretrained=PATH)")
def test_spartan_official_layout(tmp_path):
    fixture = load_official("spartan_t", same(spartan_keys()), tmp_path, wrap=lambda s: {"model": s, "epoch": 1})
    check_shapes(fixture, {"conv.0.conv.weight": (16, 3, 3, 3), "layers.3.conv.weight": (64, 32, 2, 2),
                           "layers.0.cmixer.complex": (1, 1, 1, 64, 2), "linear.weight": (1000, 256)})


# --- IBN-Net: XingangPan/IBN-Net ibnnet/resnet_ibn.py, se_resnet_ibn.py, densenet_ibn.py (d167338) -----------------

def ibn_resnet_keys(layers, bottleneck: bool, ibn: str, se: bool = False) -> list[str]:
    keys = ["conv1.weight"] + ([f"bn1.{n}" for n in WB] if ibn == "b" else [f"bn1.{n}" for n in BN])
    for s, n_blocks in enumerate(layers):
        for b in range(n_blocks):
            p = f"layer{s + 1}.{b}."
            keys.append(f"{p}conv1.weight")
            if ibn == "a" and s < 3:  # IBN: IN on the first half, BN on the rest
                keys += [f"{p}bn1.IN.{n}" for n in WB] + [f"{p}bn1.BN.{n}" for n in BN]
            else:
                keys += [f"{p}bn1.{n}" for n in BN]
            for i in (2, 3) if bottleneck else (2,):
                keys += [f"{p}conv{i}.weight"] + [f"{p}bn{i}.{n}" for n in BN]
            if se:
                keys += [f"{p}se.fc.0.weight", f"{p}se.fc.2.weight"]
            if ibn == "b" and s < 2 and b == n_blocks - 1:
                keys += [f"{p}IN.{n}" for n in WB]
            if b == 0 and (s > 0 or bottleneck):
                keys += [f"{p}downsample.0.weight"] + [f"{p}downsample.1.{n}" for n in BN]
    return keys + ["fc.weight", "fc.bias"]


@pytest.mark.claim(paper=37, artefact="resnet50_ibn_a",
                   claim="the official IBN-Net checkpoint layout (hub .pth) loads by create_model(pretrained=PATH)")
@pytest.mark.claim(paper=37, artefact="resnet18_ibn_b",
                   claim="the official IBN-Net checkpoint layout (hub .pth) loads by create_model(pretrained=PATH)")
@pytest.mark.claim(paper=37, artefact="se_resnet50_ibn_a",
                   claim="the official IBN-Net checkpoint layout (hub .pth) loads by create_model(pretrained=PATH)")
@pytest.mark.parametrize("name, layers, bottleneck, ibn, se", [
    ("resnet50_ibn_a", (3, 4, 6, 3), True, "a", False),
    ("resnet18_ibn_b", (2, 2, 2, 2), False, "b", False),
    ("se_resnet50_ibn_a", (3, 4, 6, 3), True, "a", True),
])
def test_ibn_resnet_official_layout(name, layers, bottleneck, ibn, se, tmp_path):
    fixture = load_official(name, same(ibn_resnet_keys(layers, bottleneck, ibn, se)), tmp_path)
    if ibn == "a":  # IBN(planes): InstanceNorm on int(planes * 0.5) channels (modules.py)
        check_shapes(fixture, {"layer1.0.bn1.IN.weight": (32,), "layer1.0.bn1.BN.running_mean": (32,)})


def densenet_ibn_pairs(blocks=(6, 12, 24, 16), growth=32, init=64) -> list[tuple[str, str]]:
    keys = ["features.conv0.weight"] + [f"features.norm0.{n}" for n in BN]
    for i, n_layers in enumerate(blocks):
        for j in range(n_layers):
            p = f"features.denseblock{i + 1}.denselayer{j + 1}."
            if i < 3 and j % 3 == 0:  # IBN(C, 0.4): BN on the first 60 %, IN on the rest
                keys += [f"{p}norm1.BN.{n}" for n in BN] + [f"{p}norm1.IN.{n}" for n in WB]
            else:
                keys += [f"{p}norm1.{n}" for n in BN]
            keys += [f"{p}conv1.weight"] + [f"{p}norm2.{n}" for n in BN] + [f"{p}conv2.weight"]
        if i != len(blocks) - 1:
            keys += [f"features.transition{i + 1}.norm.{n}" for n in BN] + [f"features.transition{i + 1}.conv.weight"]
    keys += [f"features.norm5.{n}" for n in BN] + ["classifier.weight", "classifier.bias"]
    # ours: the body is ``body`` (``features`` is the backbone contract's method), the classifier ``head.fc``
    return [(k, "body." + k.removeprefix("features.") if k.startswith("features.") else
             "head.fc." + k.removeprefix("classifier.")) for k in keys]


@pytest.mark.claim(paper=37, artefact="densenet121_ibn_a",
                   claim="the official DenseNet-IBN-a checkpoint layout (features./classifier.) loads by create_model(pretrained=PATH)")
def test_densenet_ibn_official_layout(tmp_path):
    fixture = load_official("densenet121_ibn_a", densenet_ibn_pairs(), tmp_path)
    check_shapes(fixture, {"features.denseblock1.denselayer1.norm1.BN.weight": (38,),
                           "features.denseblock1.denselayer1.norm1.IN.weight": (26,), "classifier.weight": (1000, 1024)})


# --- VoVNet: stigma0617/VoVNet.pytorch models_vovnet/vovnet.py (039d9dc, V1) and youngwanLEE/vovnet-detectron2
# vovnet/vovnet.py (b81c813, V2); ours: timm's names --------------------------------------------------------------

def vovnet_pairs(blocks, layers: int, *, v2: bool, dw: bool = False, classifier: bool = True):
    bn = FROZEN_BN if v2 else BN

    def conv_bn(off: str, our: str, depthwise: bool = False):
        if depthwise:
            return [(f"{off}/dw_conv3x3.weight", f"{our}.conv_dw.weight"),
                    (f"{off}/pw_conv1x1.weight", f"{our}.conv_pw.weight")] + leaves(f"{off}/pw_norm", f"{our}.bn", bn)
        return [(f"{off}/conv.weight", f"{our}.conv.weight")] + leaves(f"{off}/norm", f"{our}.bn", bn)

    pairs = conv_bn("stem.stem_1", "stem.0")
    pairs += conv_bn("stem.stem_2", "stem.1", dw) + conv_bn("stem.stem_3", "stem.2", dw)
    for s, n_blocks in enumerate(blocks):
        for b in range(n_blocks):
            name = f"OSA{s + 2}_{b + 1}"
            off, our = f"stage{s + 2}.{name}.", f"stages.{s}.blocks.{b}."
            if dw:  # a 1x1 reduction when the block input is wider than stage_ch: every block of V-19-dw
                pairs += conv_bn(f"{off}conv_reduction.{name}_reduction_0", f"{our}conv_reduction")
            for i in range(layers):
                pairs += conv_bn(f"{off}layers.{i}.{name}_{i}", f"{our}conv_mid.{i}", dw)
            pairs += conv_bn(f"{off}concat.{name}_concat", f"{our}conv_concat")
            if v2:
                pairs += leaves(f"{off}ese.fc", f"{our}attn.fc")
    return pairs + (leaves("classifier", "head.fc") if classifier else [])


@pytest.mark.claim(paper=53, artefact="vovnet39",
                   claim="the official VoVNet.pytorch (V1) checkpoint layout loads by create_model(pretrained=PATH, residual=True)")
def test_vovnet_v1_official_layout(tmp_path):
    pairs = vovnet_pairs((1, 1, 2, 2), 5, v2=False)  # official vovnet39
    fixture = load_official("vovnet39", pairs, tmp_path, residual=True)
    check_shapes(fixture, {"stage2.OSA2_1.concat.OSA2_1_concat/conv.weight": (256, 128 + 5 * 128, 1, 1),
                           "stage5.OSA5_2.layers.4.OSA5_2_4/conv.weight": (224, 224, 3, 3)})


@pytest.mark.claim(paper=53, artefact="ese_vovnet39b",
                   claim="the vovnet-detectron2 (V2) backbone layout loads by create_model(pretrained=PATH, attn_placement='block')")
@pytest.mark.claim(paper=53, artefact="ese_vovnet19b_dw",
                   claim="the vovnet-detectron2 (V2) backbone layout loads by create_model(pretrained=PATH)")
@pytest.mark.parametrize("name, blocks, layers, dw, kw", [
    ("ese_vovnet39b", (1, 1, 2, 2), 5, False, {"attn_placement": "block"}),  # V-39-eSE
    ("ese_vovnet19b_dw", (1, 1, 1, 1), 3, True, {}),  # V-19-dw-eSE
])
def test_vovnet_v2_detectron2_layout(name, blocks, layers, dw, kw, tmp_path):
    """vovnet-detectron2 keys (FrozenBN, no classifier) inside a whole detector checkpoint as detectron2 saves it."""
    pairs = [(f"backbone.bottom_up.{off}", our) for off, our in vovnet_pairs(blocks, layers, v2=True, dw=dw,
                                                                           classifier=False)]
    absent = {k for k in convzoo.create_model(name, num_classes=0, **kw).state_dict() if k.endswith("num_batches_tracked")}
    detector = {"backbone.fpn_lateral2.weight": torch.zeros(256, 256, 1, 1),  # a whole detector: FPN and heads too
                "roi_heads.box_predictor.cls_score.weight": torch.zeros(81, 1024)}
    with pytest.warns(UserWarning, match="holds no classifier"):
        load_official(name, pairs, tmp_path, wrap=lambda s: {"model": {**s, **detector}, "iteration": 0},
                      absent=absent | {"head.fc.weight", "head.fc.bias"}, **kw)


# --- ConvNeXt / ConvNeXt-dcls: K-H-Ismail/ConvNeXt-dcls models/convnext.py, convnext_dcls.py (aad45f3) -----------

def convnext_pairs(depths=(3, 3, 9, 3), dcls: bool = False) -> list[tuple[str, str]]:
    pairs = [(f"downsample_layers.0.{i}.{n}", f"stem.{i}.{n}") for i in (0, 1) for n in WB]
    pairs += [(f"downsample_layers.{s}.{i}.{n}", f"stages.{s}.downsample.{i}.{n}") for s in (1, 2, 3)
              for i in (0, 1) for n in WB]
    for s, depth in enumerate(depths):
        for j in range(depth):
            off, our = f"stages.{s}.{j}.", f"stages.{s}.blocks.{j}."
            pairs += leaves(f"{off}dwconv", f"{our}conv_dw") + leaves(f"{off}norm", f"{our}norm")
            pairs += leaves(f"{off}pwconv1", f"{our}mlp.fc1") + leaves(f"{off}pwconv2", f"{our}mlp.fc2")
            pairs.append((f"{off}gamma", f"{our}gamma"))
            if dcls:  # one P per stage, which the official state dict repeats in every block
                pairs.append((f"{off}dwconv.P", f"stages.{s}.P"))
    return pairs + leaves("norm", "head.norm") + leaves("head", "head.fc")


@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny",
                   claim="the official ConvNeXt-dcls checkpoint layout ({'model': ...}, P repeated per block) loads by create_model(pretrained=PATH)")
@pytest.mark.claim(paper=39, artefact="convnext_tiny",
                   claim="the official ConvNeXt checkpoint layout ({'model': ...}) loads by create_model(pretrained=PATH)")
@pytest.mark.parametrize("name, dcls", [("convnext_dcls_tiny", True), ("convnext_tiny", False)])
def test_convnext_official_layout(name, dcls, tmp_path):
    fixture = load_official(name, convnext_pairs(dcls=dcls), tmp_path, wrap=lambda s: {"model": s})
    check_shapes(fixture, {"downsample_layers.0.0.weight": (96, 3, 4, 4), "stages.2.8.pwconv1.weight": (1536, 384)})
    check_shapes(fixture, {"stages.0.0.dwconv.weight": (96, 1, 34), "stages.3.2.dwconv.P": (2, 768, 1, 34)} if dcls
                 else {"stages.0.0.dwconv.weight": (96, 1, 7, 7)})


# --- ECA-Net: BangguWu/ECANet models/eca_resnet.py, eca_mobilenetv2.py, main.py checkpoints (b332f6b) ------------

def eca_resnet_keys(layers=(3, 4, 6, 3)) -> list[str]:
    keys = ["conv1.weight"] + [f"bn1.{n}" for n in BN]
    for s, n_blocks in enumerate(layers):
        for b in range(n_blocks):
            p = f"layer{s + 1}.{b}."
            for i in (1, 2, 3):
                keys += [f"{p}conv{i}.weight"] + [f"{p}bn{i}.{n}" for n in BN]
            keys.append(f"{p}eca.conv.weight")
            if b == 0:
                keys += [f"{p}downsample.0.weight"] + [f"{p}downsample.1.{n}" for n in BN]
    return keys + ["fc.weight", "fc.bias"]


def eca_mobilenetv2_pairs() -> list[tuple[str, str]]:
    keys = ["features.0.0.weight"] + [f"features.0.1.{n}" for n in BN]
    i = 1
    for t, _, n_blocks, _ in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                              (6, 160, 3, 2), (6, 320, 1, 1)):
        for _ in range(n_blocks):
            p, j = f"features.{i}.conv.", 0
            if t != 1:  # 1x1 expansion ConvBNReLU
                keys += [f"{p}0.0.weight"] + [f"{p}0.1.{n}" for n in BN]
                j = 1
            keys += [f"{p}{j}.0.weight"] + [f"{p}{j}.1.{n}" for n in BN]  # depth-wise ConvBNReLU
            keys += [f"{p}{j + 1}.weight"] + [f"{p}{j + 2}.{n}" for n in BN] + [f"{p}{j + 3}.conv.weight"]
            i += 1
    keys += [f"features.{i}.0.weight"] + [f"features.{i}.1.{n}" for n in BN] + ["classifier.1.weight", "classifier.1.bias"]
    return [(k, "blocks." + k.removeprefix("features.") if k.startswith("features.") else k) for k in keys]


def _eca_main_checkpoint(state: dict) -> dict:
    """What the official main.py saves: DataParallel keys under 'state_dict', beside the optimizer's state."""
    return {"epoch": 100, "arch": "eca_resnet50", "state_dict": {f"module.{k}": v for k, v in state.items()},
            "best_prec1": torch.tensor(77.42), "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]}}


@pytest.mark.claim(paper=43, artefact="eca_resnet50",
                   claim="the official ECA-Net checkpoint (main.py container, module. keys) loads by create_model(pretrained=PATH)")
def test_eca_resnet_official_layout(tmp_path):
    fixture = load_official("eca_resnet50", same(eca_resnet_keys()), tmp_path, wrap=_eca_main_checkpoint)
    check_shapes(fixture, {"layer1.0.eca.conv.weight": (1, 1, 3), "layer2.0.eca.conv.weight": (1, 1, 5),
                           "layer4.0.eca.conv.weight": (1, 1, 7)})  # k 3,5,5,7 of the released eca_resnet50_k3557


@pytest.mark.claim(paper=43, artefact="eca_mobilenetv2",
                   claim="the official ECA-MobileNetV2 checkpoint layout (features.N) loads by create_model(pretrained=PATH)")
def test_eca_mobilenetv2_official_layout(tmp_path):
    fixture = load_official("eca_mobilenetv2", eca_mobilenetv2_pairs(), tmp_path, wrap=_eca_main_checkpoint)
    check_shapes(fixture, {"features.1.conv.3.conv.weight": (1, 1, 1), "features.14.conv.4.conv.weight": (1, 1, 3),
                           "classifier.1.weight": (1000, 1280)})


# --- RepLKNet: DingXiaoH/RepLKNet-pytorch replknet.py (b76808a) = ours; small_kernel_merged folds on load ------

def replknet_keys(layers=(2, 2, 18, 2), merged: bool = False) -> list[str]:
    cbn = ["conv.weight"] + [f"bn.{n}" for n in BN]  # conv_bn / conv_bn_relu: conv (no bias), bn, nonlinear
    keys = [f"stem.{i}.{k}" for i in range(4) for k in cbn]
    for s, n_blocks in enumerate(layers):
        for j in range(n_blocks):
            p, q = f"stages.{s}.blocks.{2 * j}.", f"stages.{s}.blocks.{2 * j + 1}."  # RepLKBlock, ConvFFN
            keys += [f"{p}pw1.{k}" for k in cbn] + [f"{p}pw2.{k}" for k in cbn]
            keys += [f"{p}large_kernel.lkb_reparam.{n}" for n in WB] if merged else \
                [f"{p}large_kernel.{m}.{k}" for m in ("lkb_origin", "small_conv") for k in cbn]
            keys += [f"{p}prelkb_bn.{n}" for n in BN]
            keys += [f"{q}preffn_bn.{n}" for n in BN] + [f"{q}pw1.{k}" for k in cbn] + [f"{q}pw2.{k}" for k in cbn]
        if s < len(layers) - 1:
            keys += [f"transitions.{s}.{i}.{k}" for i in (0, 1) for k in cbn]
    return keys + [f"norm.{n}" for n in BN] + ["head.weight", "head.bias"]


@pytest.mark.claim(paper=11, artefact="replknet_31b",
                   claim="the official RepLKNet train-time checkpoint layout loads by create_model(pretrained=PATH)")
def test_replknet_official_layout(tmp_path):
    fixture = load_official("replknet_31b", same(replknet_keys()), tmp_path, wrap=lambda s: {"model": s})
    check_shapes(fixture, {"stages.0.blocks.0.large_kernel.lkb_origin.conv.weight": (128, 1, 31, 31),
                           "stages.0.blocks.0.large_kernel.small_conv.conv.weight": (128, 1, 5, 5),
                           "stages.3.blocks.2.large_kernel.lkb_origin.conv.weight": (1024, 1, 13, 13)})


@pytest.mark.claim(paper=11, artefact="replknet_31b",
                   claim="the official small_kernel_merged checkpoint loads into deploy=True (conv-BN pairs folded on load)")
def test_replknet_official_merged_checkpoint_folds_into_deploy(tmp_path):
    keys = replknet_keys(merged=True)
    g = torch.Generator().manual_seed(0)
    own = convzoo.create_model("replknet_31b").state_dict()  # shapes of the unfolded pairs
    fixture = {}
    for k in keys:
        if k.endswith("num_batches_tracked"):
            fixture[k] = torch.tensor(0)
        elif k.endswith("running_var"):
            fixture[k] = torch.rand(own[k].shape, generator=g) + 0.5
        elif "lkb_reparam" in k:
            ref = k.replace("lkb_reparam", "lkb_origin.conv")
            fixture[k] = torch.randn(own[ref.replace(".bias", ".weight")].shape if k.endswith("weight")
                                     else own[ref.replace("conv.bias", "bn.bias")].shape, generator=g)
        else:
            fixture[k] = torch.randn(own[k].shape, generator=g)
    torch.save(fixture, tmp_path / "merged.pth")
    model = convzoo.create_model("replknet_31b", deploy=True, pretrained=tmp_path / "merged.pth").state_dict()
    for conv in ("stem.0", "stages.1.blocks.2.pw1", "stages.2.blocks.5.pw2", "transitions.2.1"):  # closed form
        scale = fixture[f"{conv}.bn.weight"] / torch.sqrt(fixture[f"{conv}.bn.running_var"] + 1e-5)
        torch.testing.assert_close(model[f"{conv}.conv.weight"],
                                   fixture[f"{conv}.conv.weight"] * scale.reshape(-1, 1, 1, 1))
        torch.testing.assert_close(model[f"{conv}.conv.bias"],
                                   fixture[f"{conv}.bn.bias"] - fixture[f"{conv}.bn.running_mean"] * scale)
    for k in ("stages.0.blocks.0.large_kernel.lkb_reparam.weight", "stages.0.blocks.0.prelkb_bn.running_var", "head.weight"):
        assert torch.equal(model[k], fixture[k])


# --- SimpleNet: Coderx7/SimpleNet_Pytorch, checkpoints saved before its refactor (features.N without dropout
# placeholders after convs; cifar/main.py container) -----------------------------------------------------------

def _simplenet_legacy(table: str, num_classes: int) -> torch.nn.Module:
    """The pre-refactor official CIFAR model rebuilt from its layer table: conv-BN-ReLU per number, pool +
    Dropout2d per "p"; ``features`` then ``classifier`` (global max pool between them)."""
    mods, c = [], 3
    for tok in table.split():
        if tok == "p":
            mods += [torch.nn.MaxPool2d(2, 2), torch.nn.Dropout2d(0.0)]
            continue
        k1, out = "k1" in tok, int(tok.removesuffix("k1"))
        mods += [torch.nn.Conv2d(c, out, 1 if k1 else 3, 1, 0 if k1 else 1), torch.nn.BatchNorm2d(out), torch.nn.ReLU()]
        c = out
    ref = torch.nn.Module()
    ref.features, ref.classifier = torch.nn.Sequential(*mods), torch.nn.Linear(c, num_classes)
    return ref


@pytest.mark.claim(paper=32, artefact="simplenet_cifar_310k",
                   claim="a pre-refactor official SimpleNet checkpoint (cifar/main.py, module. keys) loads by create_model(pretrained=PATH) with equal outputs")
def test_simplenet_legacy_official_checkpoint(tmp_path):
    # official cifar_310k table (imagenet/simplenet.py self.cfg, HEAD 4334c57)
    ref = _simplenet_legacy("64 32 32 32 p 32 32 64 p 64 64 p 128 256k1 64k1 p 64", 10).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}, "epoch": 3,
                "best_prec1": 90.0}, tmp_path / "model_best.pth.tar")
    model = convzoo.create_model("simplenet_cifar_310k", pretrained=tmp_path / "model_best.pth.tar").eval()
    x = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref.classifier(ref.features(x).amax(dim=(2, 3))))


# --- SSD300: torchvision ssd300_vgg16 (the card's reference) ------------------------------------------------

def test_torchvision_ssd300_state_dict_loads(tmp_path):
    import torchvision

    from convzoo.models.ssd import remap_torchvision

    ref = torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
    torch.save(ref.state_dict(), tmp_path / "ssd300_vgg16.pth")
    model = convzoo.create_model("ssd300", pretrained=tmp_path / "ssd300_vgg16.pth").state_dict()
    expected = remap_torchvision(ref.state_dict())  # tests/models/test_ssd.py proves its outputs equal torchvision's
    assert set(expected) == set(model) and all(torch.equal(model[k], v) for k, v in expected.items())
