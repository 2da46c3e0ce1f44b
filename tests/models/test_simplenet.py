"""Paper 32 (SimpleNet): exact counts, global max pooling, stride modes, width scaling, official
state-dict layout and checkpoint loading, and the recipes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.errors import ConvzooError
from convzoo.models.simplenet import SimpleNet, load_official_state_dict, official_layer_indices
from convzoo.registry import count_params
from convzoo.testing import randomise_bn

pytestmark = pytest.mark.paper(32)

# fact sheet G1a, paper 32 §3: counts of the official PyTorch models
COUNTS = {
    ("simplenet", 10): 5_498_378,
    ("simplenet_cifar_5m", 10): 5_498_378,
    ("simplenet_cifar_5m", 100): 5_521_508,
    ("simplenet_cifar_5m_extra_pool", 10): 5_498_378,
    ("simplenet_cifar_310k", 10): 312_362,
    ("simplenet_cifar_460k", 10): 385_790,
    ("simplenetv1_small_m1_05", 1000): 1_506_792,
    ("simplenetv1_small_m2_05", 1000): 1_506_792,
    ("simplenetv1_small_m1_075", 1000): 3_287_272,
    ("simplenetv1_small_m2_075", 1000): 3_287_272,
    ("simplenetv1_5m_m1", 1000): 5_752_808,
    ("simplenetv1_5m_m2", 1000): 5_752_808,
    ("simplenetv1_9m_m1", 1000): 9_508_968,
    ("simplenetv1_9m_m2", 1000): 9_508_968,
}
# The official layer tables and stride modes, written out from Coderx7/SimpleNet_Pytorch
# imagenet/simplenet.py (HEAD 4334c57, ``self.cfg`` / ``self.strides``): a number = 3x3 conv (pad 1),
# "k1" = 1x1 conv (pad 0 since commit 7457947), "p" = 2x2/2 max-pool.
TABLES = {
    "imagenet_5m": "64 128 128 128 128 128 p 256 256 256 512 p 2048k1 256k1 256",
    "imagenet_9m": "128 192 192 192 192 192 p 320 320 320 640 p 2560k1 320k1 320",
    "cifar_310k": "64 32 32 32 p 32 32 64 p 64 64 p 128 256k1 64k1 p 64",
    "cifar_460k": "32 32 32 64 p 64 64 64 p 64 64 p 96 96k1 96k1 p 100",
    "cifar_5m": "64 128 128 128 p 128 128 256 p 256 256 p 512 2048k1 256k1 p 256",
    "cifar_5m_extra_pool": "64 128 128 128 p 128 128 256 p 256 256 p 512 p 2048k1 256k1 p 256",
}
OFFICIAL_STRIDES = {0: {}, 1: {0: 2, 1: 2, 2: 2}, 2: {0: 2, 1: 2, 2: 1, 3: 2}, 3: {0: 2, 1: 2, 2: 1, 3: 1, 4: 2},
                    4: {0: 2, 1: 1, 2: 2, 3: 1, 4: 2, 5: 1}}
# registered name -> (table, scale, stride mode, input side, classes): the official builders (hubconf.py)
LAYOUT = {
    "simplenet": ("cifar_5m", 1.0, 0, 32, 10),
    "simplenet_cifar_5m": ("cifar_5m", 1.0, 0, 32, 10),
    "simplenet_cifar_5m_extra_pool": ("cifar_5m_extra_pool", 1.0, 0, 32, 10),
    "simplenet_cifar_310k": ("cifar_310k", 1.0, 0, 32, 10),
    "simplenet_cifar_460k": ("cifar_460k", 1.0, 0, 32, 10),
    "simplenetv1_small_m1_05": ("imagenet_5m", 0.5, 1, 224, 1000),
    "simplenetv1_small_m2_05": ("imagenet_5m", 0.5, 2, 224, 1000),
    "simplenetv1_small_m1_075": ("imagenet_5m", 0.75, 1, 224, 1000),
    "simplenetv1_small_m2_075": ("imagenet_5m", 0.75, 2, 224, 1000),
    "simplenetv1_5m_m1": ("imagenet_5m", 1.0, 1, 224, 1000),
    "simplenetv1_5m_m2": ("imagenet_5m", 1.0, 2, 224, 1000),
    "simplenetv1_9m_m1": ("imagenet_9m", 1.0, 1, 224, 1000),
    "simplenetv1_9m_m2": ("imagenet_9m", 1.0, 2, 224, 1000),
}
# fact sheet G1a "Paper 32" Sec. 3 MACs (FlopCounterMode on the official code), with half a unit of
# their last digit
SHEET_MACS = {
    "simplenet_cifar_5m": (652.2e6, 0.05e6), "simplenet_cifar_310k": (55.8e6, 0.05e6),
    "simplenet_cifar_460k": (73.2e6, 0.05e6),
    "simplenetv1_small_m1_05": (0.341e9, 0.5e6), "simplenetv1_small_m2_05": (0.428e9, 0.5e6),
    "simplenetv1_small_m1_075": (0.759e9, 0.5e6), "simplenetv1_small_m2_075": (0.954e9, 0.5e6),
    "simplenetv1_5m_m1": (1.342e9, 0.5e6), "simplenetv1_5m_m2": (1.689e9, 0.5e6),
    "simplenetv1_9m_m1": (2.774e9, 0.5e6), "simplenetv1_9m_m2": (3.555e9, 0.5e6),
}
# official benchmark of the released ImageNet weights: infer_gmacs column of
# imagenet/training_scripts/imagenet_training/results/bench_infer_GTX1080_fp32_*_t1.11_NCHW_acc.csv
# (timm's benchmark.py: fvcore, which also counts 2 FLOPs per element of every eval BatchNorm; 2 decimals)
OFFICIAL_GMACS = {
    "simplenetv1_small_m1_05": 0.34, "simplenetv1_small_m2_05": 0.43, "simplenetv1_small_m1_075": 0.76,
    "simplenetv1_small_m2_075": 0.96, "simplenetv1_5m_m1": 1.35, "simplenetv1_5m_m2": 1.69,
    "simplenetv1_9m_m1": 2.78, "simplenetv1_9m_m2": 3.56,
}


def closed_form(name: str, pad_1x1: int = 0) -> tuple[int, int]:
    """(conv + linear multiply-adds, BatchNorm output elements) summed layer by layer from the table."""
    table, scale, mode, h, classes = LAYOUT[name]
    c, macs, bn_elems = 3, 0, 0
    for idx, tok in enumerate(TABLES[table].split()):
        stride = OFFICIAL_STRIDES[mode].get(idx, 2 if tok == "p" else 1)
        if tok == "p":
            h = (h - 2) // stride + 1
            continue
        k = 1 if tok.endswith("k1") else 3
        out = round(int(tok.removesuffix("k1")) * scale)
        h = (h + 2 * (1 if k == 3 else pad_1x1) - k) // stride + 1
        macs += h * h * k * k * c * out
        bn_elems += h * h * out
        c = out
    return macs + c * classes, bn_elems


VARIANTS = sorted({n for n, _ in COUNTS})


def _macs(model: nn.Module, size: int, in_chans: int = 3) -> int:
    with torch.device("meta"), FlopCounterMode(display=False) as fc:
        model(torch.empty(1, in_chans, size, size))
    return fc.get_total_flops() // 2


def _meta(name: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kw).eval()




@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m",
                   claim="parameter count equals the official code's")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m",
                   claim="the paper's 13-layer net is the registered short name `simplenet`")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_310k",
                   claim="parameter count equals the official code's")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_460k",
                   claim="parameter count equals the official code's")
@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05",
                   claim="parameter count equals the official code's")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m1", claim="parameter count equals the official code's")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m2", claim="parameter count equals the official code's")
@pytest.mark.claim(paper=32, artefact="simplenetv1_9m_m2", claim="parameter count equals the official code's")
@pytest.mark.parametrize("name,num_classes", sorted(COUNTS))
def test_param_counts_match_official(name, num_classes):
    assert count_params(_meta(name, num_classes=num_classes)) == COUNTS[name, num_classes]


def test_all_official_names_registered():
    assert set(convzoo.list_models(paper=32)) == set(VARIANTS)


@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m",
                   claim="MACs equal the closed form of the official layer table (1x1 convs unpadded)")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_310k",
                   claim="MACs equal the closed form of the official layer table (1x1 convs unpadded)")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_460k",
                   claim="MACs equal the closed form of the official layer table (1x1 convs unpadded)")
@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05",
                   claim="MACs equal the closed form of the official layer table (1x1 convs unpadded)")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m1",
                   claim="MACs equal the closed form of the official layer table (1x1 convs unpadded)")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m2",
                   claim="MACs equal the closed form of the official layer table (1x1 convs unpadded)")
@pytest.mark.claim(paper=32, artefact="simplenetv1_9m_m2",
                   claim="MACs equal the closed form of the official layer table (1x1 convs unpadded)")
@pytest.mark.parametrize("name", VARIANTS)
def test_macs_closed_form(name):
    card = convzoo.get_card(name)
    expected, _ = closed_form(name)
    assert card.macs == expected and card.macs_rtol == 0.0
    assert _macs(_meta(name), card.input_size[0]) == expected


@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m", claim="MACs equal the fact sheet's count to its rounding")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_310k", claim="MACs equal the fact sheet's count to its rounding")
@pytest.mark.claim(paper=32, artefact="simplenet_cifar_460k", claim="MACs equal the fact sheet's count to its rounding")
@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05", claim="MACs equal the fact sheet's count to its rounding")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m1", claim="MACs equal the fact sheet's count to its rounding")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m2", claim="MACs equal the fact sheet's count to its rounding")
@pytest.mark.claim(paper=32, artefact="simplenetv1_9m_m2", claim="MACs equal the fact sheet's count to its rounding")
@pytest.mark.parametrize("name", sorted(SHEET_MACS))
def test_macs_match_sheet(name):
    value, half_unit = SHEET_MACS[name]
    assert abs(convzoo.get_card(name).macs - value) <= half_unit


@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05",
                   claim="MACs reproduce the official benchmark CSV's GMACs (unpadded 1x1; padded fails)")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m1",
                   claim="MACs reproduce the official benchmark CSV's GMACs (unpadded 1x1; padded fails)")
@pytest.mark.claim(paper=32, artefact="simplenetv1_5m_m2",
                   claim="MACs reproduce the official benchmark CSV's GMACs (unpadded 1x1; padded fails)")
@pytest.mark.claim(paper=32, artefact="simplenetv1_9m_m2",
                   claim="MACs reproduce the official benchmark CSV's GMACs (unpadded 1x1; padded fails)")
@pytest.mark.parametrize("name", sorted(OFFICIAL_GMACS))
def test_macs_match_official_benchmark(name):
    """The released ImageNet weights' own benchmark counts unpadded 1x1 convs; the interim padded layout
    (official code of February 2023) would count more."""
    macs, bn_elems = closed_form(name)
    assert round((macs + 2 * bn_elems) / 1e9, 2) == OFFICIAL_GMACS[name]
    padded, padded_bn = closed_form(name, pad_1x1=1)
    assert round((padded + 2 * padded_bn) / 1e9, 2) != OFFICIAL_GMACS[name]
    assert _macs(_meta(name, pad_1x1=1), 224) == padded  # the option rebuilds that layout


@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m",
                   claim="the paper's 13-layer net is the registered short name `simplenet`")
def test_paper_net_is_the_registered_short_name():
    card = convzoo.get_card("simplenet")
    assert (card.num_classes, card.input_size, card.in_chans) == (10, (32, 32), 3)
    a, b = _meta("simplenet"), _meta("simplenet_cifar_5m")
    shapes = [[tuple(p.shape) for p in m.state_dict().values()] for m in (a, b)]
    assert shapes[0] == shapes[1]
    convs = [m for m in a.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13  # the paper's 13 layers
    assert [c.kernel_size[0] for c in convs].count(1) == 2 and all(c.bias is not None for c in convs)


@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m",
                   claim="global MAX pooling head (fails for average pooling)")
def test_global_max_pooling_head():
    model = convzoo.create_model("simplenet_cifar_310k").eval()
    randomise_bn(model, affine=False)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        fmap = model.forward_features(x)  # (3, 64, 2, 2)
        logits = model(x)
        as_max = model.head.fc(fmap.amax(dim=(2, 3)))
        as_avg = model.head.fc(fmap.mean(dim=(2, 3)))
    assert fmap.shape[-2:] == (2, 2)
    torch.testing.assert_close(logits, as_max)
    assert not torch.allclose(logits, as_avg, atol=1e-3)
    assert model.head.pool_type == "max"


@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05",
                   claim="stride modes m0..m4 give the official map sizes at 224")
@pytest.mark.parametrize("mode", sorted(OFFICIAL_STRIDES))
@pytest.mark.parametrize("pad_1x1", [0, 1])
def test_stride_modes_at_224(mode, pad_1x1):
    with torch.device("meta"):
        model = SimpleNet(num_classes=10, network_idx="imagenet_5m", mode=mode, pad_1x1=pad_1x1)
        maps = model.features(torch.empty(1, 3, 224, 224))
    strided = [i for i, (kind, *_) in enumerate(model.table)
               if kind == "conv" and model.features[_conv_index(model, i)].stride == (2, 2)]
    assert strided == [i for i, s in OFFICIAL_STRIDES[mode].items() if s == 2]
    first = 224 if mode == 0 else 28  # m1..m4: three stride-2 convs before the first pool
    last = first // 4 + 4 * pad_1x1  # two pools, then each padded 1x1 conv grows the map by 2
    assert [m.shape[-1] for m in maps] == [first, first // 2, last]
    assert [f["reduction"] for f in model.feature_info] == [224 // first, 448 // first, 896 // first]


def _conv_index(model: SimpleNet, table_idx: int) -> int:
    """features index of the conv that table entry ``table_idx`` built."""
    convs = [i for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)]
    return convs[[i for i, (k, *_) in enumerate(model.table) if k == "conv"].index(table_idx)]


@pytest.mark.claim(paper=32, artefact="simplenetv1_small_m1_05", claim="width scaling law")
@pytest.mark.parametrize("scale", [0.5, 0.75, 0.3])
def test_width_scaling(scale):
    with torch.device("meta"):
        model = SimpleNet(network_idx=0, scale=scale, mode=1)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    widths = [int(t.removesuffix("k1")) for t in TABLES["imagenet_5m"].split() if t != "p"]
    assert [c.out_channels for c in convs] == [round(w * scale) for w in widths]
    assert [c.in_channels for c in convs[1:]] == [c.out_channels for c in convs[:-1]]
    assert model.num_features == model.head.fc.in_features == round(256 * scale)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [b.num_features for b in bns] == [c.out_channels for c in convs]


def test_in_chans_one_and_embedding():
    model = convzoo.create_model("simplenet", in_chans=1).eval()
    assert model.features[0].weight.shape == (64, 1, 3, 3)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        model.reset_classifier(0)
        assert model(x).shape == (2, 256)


@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m",
                   claim="BN momentum 0.05 / eps 1e-5 and Xavier-uniform init with ReLU gain")
def test_bn_hyperparameters_and_xavier_init():
    model = convzoo.create_model("simplenet_cifar_310k")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(b.momentum == 0.05 and b.eps == 1e-5 and b.affine for b in bns)
    gain = nn.init.calculate_gain("relu")
    for conv in (m for m in model.modules() if isinstance(m, nn.Conv2d)):
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
        bound = gain * (6.0 / (fan_in + fan_out)) ** 0.5
        w = conv.weight.detach()
        assert w.abs().max() <= bound
        if w.numel() > 5000:  # uniform(-b, b) has std b / sqrt(3)
            assert abs(w.std().item() - bound / 3 ** 0.5) < 0.05 * bound


@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m",
                   claim="official features.N numbering; DataParallel and pre-refactor checkpoints load")
def test_official_features_numbering():
    """Conv indices of the current official layout, derived by hand from the official cfg
    (conv, BN, ReLU [+ Dropout2d placeholder unless the cfg rate is None]; pool + Dropout2d)."""
    model = _meta("simplenet_cifar_5m")
    convs = [int(k.split(".")[1]) for k in model.state_dict() if k.endswith(".weight") and
             model.state_dict()[k].dim() == 4]
    assert convs == [0, 4, 8, 12, 17, 21, 25, 30, 34, 39, 43, 47, 52]
    others = {k for k in model.state_dict() if not k.startswith("features.")}
    assert others == {"head.fc.weight", "head.fc.bias"}
    legacy = official_layer_indices(model, legacy=True)[::2]  # conv entries (conv, BN pairs)
    assert legacy == [0, 3, 6, 9, 14, 17, 20, 25, 28, 33, 36, 39, 44]  # dropout only after pools


def _legacy_reference(table: str, in_chans: int, num_classes: int) -> nn.Module:
    """An independent re-build of a pre-refactor official model: features + classifier."""
    mods, c = [], in_chans
    for tok in table.split():
        if tok == "p":
            mods += [nn.MaxPool2d(2, 2), nn.Dropout2d(0.0)]
        else:
            k1 = "k1" in tok
            out = int(tok.rstrip("*").removesuffix("k1"))
            mods += [nn.Conv2d(c, out, 1 if k1 else 3, 1, 0 if k1 else 1), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
    ref = nn.Module()
    ref.features = nn.Sequential(*mods)
    ref.classifier = nn.Linear(c, num_classes)
    return ref


@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m",
                   claim="official features.N numbering; DataParallel and pre-refactor checkpoints load")
def test_load_legacy_dataparallel_checkpoint(tmp_path):
    ref = _legacy_reference(TABLES["cifar_310k"], 3, 10).eval()
    for p in ref.parameters():
        nn.init.normal_(p, std=0.2)
    randomise_bn(ref, affine=False)
    ckpt = {"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}, "epoch": 3}
    torch.save(ckpt, tmp_path / "model_best.pth.tar")
    model = convzoo.create_model("simplenet_cifar_310k")
    load_official_state_dict(model, tmp_path / "model_best.pth.tar")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h = ref.features(x)
        expected = ref.classifier(h.amax(dim=(2, 3)))
        torch.testing.assert_close(model.eval()(x), expected)


@pytest.mark.claim(paper=32, artefact="simplenet_cifar_5m",
                   claim="official features.N numbering; DataParallel and pre-refactor checkpoints load")
def test_load_current_official_layout_and_reject_mismatch():
    src = convzoo.create_model("simplenet_cifar_310k").eval()
    randomise_bn(src, affine=False)
    official = {k.replace("head.fc.", "classifier."): v for k, v in src.state_dict().items()}
    dst = load_official_state_dict(convzoo.create_model("simplenet_cifar_310k").eval(), official)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))
    # weights of an extra-pool layout do not fit the paper layout: one readable line
    extra = TABLES["cifar_310k"].replace("128 256k1", "128 p 256k1")
    bad = _legacy_reference(extra, 3, 10).state_dict()
    with pytest.raises(ConvzooError, match="neither the current nor the legacy") as e:
        load_official_state_dict(convzoo.create_model("simplenet_cifar_310k"), bad)
    assert "\n" not in str(e.value)


def test_drop_rates_and_head_key_15_quirk():
    """Official semantics: table indices count pools; a rate for a cfg-None conv adds a Dropout2d;
    key 15 also sets the dropout after the global pool (for CIFAR tables: and after the last pool)."""
    plain = SimpleNet(num_classes=10, network_idx="cifar_310k", mode=0)
    assert isinstance(plain.features[15], nn.MaxPool2d)  # conv 3 ("32*") has no slot: 12-14, pool at 15
    model = SimpleNet(num_classes=10, network_idx="cifar_310k", mode=0, drop_rates={0: 0.2, 3: 0.1, 15: 0.3})
    assert isinstance(model.features[3], nn.Dropout2d) and model.features[3].p == 0.2
    assert isinstance(model.features[15], nn.Dropout2d) and model.features[15].p == 0.1
    last_pool = max(i for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d))
    assert model.features[last_pool + 1].p == 0.3 and model.head.drop_rate == 0.3
    assert SimpleNet(network_idx="cifar_310k", drop_rates={15: 0.3}, drop_rate=0.1).head.drop_rate == 0.1


def test_deploy_folds_bn_exactly():
    model = convzoo.create_model("simplenet_cifar_310k").eval()
    randomise_bn(model, affine=False)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        out = convzoo.deploy(model)(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConvzooError, match="stride mode"):
        SimpleNet(mode=7)
    with pytest.raises(ConvzooError, match="unknown SimpleNet network"):
        SimpleNet(network_idx="cifar_9m")


@pytest.mark.claim(paper=32, artefact="simplenet_digits", claim="the paper's Adadelta optimiser fits a batch")
def test_paper_optimizer_fits_a_batch():
    """The paper's Adadelta settings drive the training loss of a batch of real digits down."""
    from convzoo.data import build_dataset

    ds = build_dataset("digits", "train", size=16)
    x = torch.stack([ds[i][0] for i in range(32)])
    y = torch.tensor([ds[i][1] for i in range(32)])
    model = convzoo.create_model("simplenet_cifar_310k", in_chans=1)
    opt = torch.optim.Adadelta(model.parameters(), lr=0.1, rho=0.9, eps=1e-3, weight_decay=1e-3)
    losses = []
    for _ in range(15):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.claim(paper=32, artefact="simplenet_digits", claim="recipes validate against the schema")
@pytest.mark.parametrize("name", ["simplenet_digits", "simplenet_cifar10_paper"])
def test_recipes_load(name):
    from convzoo.engine import load_recipe

    r = load_recipe(name)
    assert r["paper"] == 32 and name in convzoo.get_card(r["model"]["name"]).recipes
    if name.endswith("_paper"):
        assert r["optimizer"]["name"] == "adadelta" and r["optimizer"]["lr"] == 0.1
        assert r["optimizer"]["kwargs"] == {"rho": 0.9, "eps": 1e-3}
        assert r["schedule"]["kwargs"]["milestones"] == [100, 190, 306, 390, 440, 540]
        assert (r["epochs"], r["batch_size"], r["data"]["name"]) == (700, 100, "cifar10")
