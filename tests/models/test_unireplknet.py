"""Papers 11 + 13, UniRepLKNet (arXiv 2311.15599) and its TPAMI extension (arXiv 2410.08049).

Checks the train-time and deploy parameter counts of every variant and the deploy MACs against the fact
sheet (meta device), the dilated-to-dense kernel identity, output equality before and after
re-parameterisation of the Dilated Reparam Block (every K of the branch table), of the UniRepLKNet block
(SmaK 3/5 and LarK 7..17) and of whole models (``reparameterize()``, ``convzoo.deploy``, timm's top-down
order), that ``deploy=True`` loads a re-parameterised state dict, the official state-dict key names, GRN,
in_chans=1, the multi-scale features and the features_only (downstream) structure.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.dilated_reparam import (
    BRANCHES,
    DilatedReparamBlock,
    dilated_to_dense,
    merge_into_large_kernel,
)
from convzoo.layers.grn import GlobalResponseNorm
from convzoo.models.unireplknet import UNIREPLKNET_CFGS, UniRepLKNet, UniRepLKNetBlock
from convzoo.registry import count_params
from convzoo.testing import randomise_bn

pytestmark = pytest.mark.paper(13)

# fact sheet G1a "Papers 11 + 13" Sec. 3 (official unireplknet.py, 1000 classes): train-time params,
# deploy params, deploy MACs in G (FlopCounterMode / 2) at the listed input sizes, as printed in the sheet
SHEET = {
    "a": (4_649_060, 4_437_300, {224: "0.640"}),
    "f": (6_489_328, 6_235_216, {224: "0.905"}),
    "p": (11_080_520, 10_741_704, {224: "1.573"}),
    "n": (18_818_880, 18_318_560, {224: "2.767"}),
    "t": (31_693_420, 31_037_980, {224: "4.899"}),
    "s": (56_456_704, 55_645_984, {224: "9.094", 384: "26.72"}),
    "b": (99_089_416, 98_008_456, {384: "47.18"}),
    "l": (220_076_056, 218_454_616, {192: "26.37", 384: "105.42"}),
    "xl": (388_690_984, 386_529_064, {192: "46.71", 384: "186.77"}),
}
# official unireplknet.py (default_{A,F,P,N,T,S}_kernel_sizes, UniRepLKNet_*_depths), fact sheet Sec. 3 table:
# depths and the kernel size of every block per stage (3 = SmaK, 13 = LarK), written here, not imported
OFFICIAL_DEPTHS = {"a": (2, 2, 6, 2), "f": (2, 2, 6, 2), "p": (2, 2, 6, 2), "n": (2, 2, 8, 2), "t": (3, 3, 18, 3),
                   "s": (3, 3, 27, 3), "b": (3, 3, 27, 3), "l": (3, 3, 27, 3), "xl": (3, 3, 27, 3)}
OFFICIAL_KERNELS = {
    (2, 2, 6, 2): ((3, 3), (13, 13), (13,) * 6, (13, 13)),
    (2, 2, 8, 2): ((3, 3), (13, 13), (13,) * 8, (13, 13)),
    (3, 3, 18, 3): ((3, 3, 3), (13, 13, 13), (13, 3) * 9, (13, 13, 13)),
    (3, 3, 27, 3): ((3, 3, 3), (13, 13, 13), (13, 3, 3) * 9, (13, 13, 13)),
}
TINY = {"dims": (8, 16, 24, 32)}  # A's depths and kernel plan at a width a CPU runs in milliseconds


def _meta(name: str, **kwargs) -> UniRepLKNet:
    with torch.device("meta"):
        if kwargs.get("features_only"):  # the official downstream structure (create_model's features_only is timm's)
            return _downstream(name, **kwargs)
        return convzoo.create_model(name, **kwargs)


def _downstream(name: str, **kwargs) -> UniRepLKNet:
    """The official detection/segmentation structure (``norm0..3``, no head), built by the constructor:
    ``create_model(..., features_only=True)`` is timm's wrapper of the classifier's stage maps."""
    return UniRepLKNet(**{**UNIREPLKNET_CFGS[name.removeprefix("unireplknet_")], **kwargs, "features_only": True})


@torch.no_grad()
def _randomise(module: nn.Module, seed: int = 1) -> nn.Module:
    """Random BN statistics/affine, random layer scale and GRN gamma/beta: folding cannot pass trivially."""
    randomise_bn(module, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    for name, p in module.named_parameters():
        if name.endswith(("gamma", "beta")):
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return module.eval()


def _x(*shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- parameter counts and deploy MACs (meta device) ----------------------------------------------------------

@pytest.mark.claim(paper=11, artefact="unireplknet_b",
                   claim="train-time and deploy parameter counts equal the sheet (official code)")
@pytest.mark.claim(paper=11, artefact="unireplknet_l",
                   claim="train-time and deploy parameter counts equal the sheet (official code)")
@pytest.mark.claim(paper=11, artefact="unireplknet_xl",
                   claim="train-time and deploy parameter counts equal the sheet (official code)")
@pytest.mark.claim(paper=13, artefact="unireplknet_a",
                   claim="train-time and deploy parameter counts equal the sheet (official code)")
@pytest.mark.claim(paper=13, artefact="unireplknet_f",
                   claim="train-time and deploy parameter counts equal the sheet (official code)")
@pytest.mark.claim(paper=13, artefact="unireplknet_p",
                   claim="train-time and deploy parameter counts equal the sheet (official code)")
@pytest.mark.claim(paper=13, artefact="unireplknet_n",
                   claim="train-time and deploy parameter counts equal the sheet (official code)")
@pytest.mark.claim(paper=13, artefact="unireplknet_t",
                   claim="train-time and deploy parameter counts equal the sheet (official code)")
@pytest.mark.claim(paper=13, artefact="unireplknet_s",
                   claim="train-time and deploy parameter counts equal the sheet (official code)")
@pytest.mark.parametrize("v", list(SHEET))
def test_params_match_sheet(v):
    train, deploy, _ = SHEET[v]
    name = f"unireplknet_{v}"
    assert count_params(_meta(name)) == train == convzoo.get_card(name).params
    assert count_params(_meta(name, deploy=True)) == deploy


@pytest.mark.claim(paper=11, artefact="unireplknet_b",
                   claim="deploy MACs equal the README 'FLOPs' (deploy multiply-adds)")
@pytest.mark.claim(paper=11, artefact="unireplknet_l",
                   claim="deploy MACs equal the README 'FLOPs' (deploy multiply-adds)")
@pytest.mark.claim(paper=11, artefact="unireplknet_xl",
                   claim="deploy MACs equal the README 'FLOPs' (deploy multiply-adds)")
@pytest.mark.claim(paper=13, artefact="unireplknet_a",
                   claim="deploy MACs equal the README 'FLOPs' (deploy multiply-adds)")
@pytest.mark.claim(paper=13, artefact="unireplknet_f",
                   claim="deploy MACs equal the README 'FLOPs' (deploy multiply-adds)")
@pytest.mark.claim(paper=13, artefact="unireplknet_p",
                   claim="deploy MACs equal the README 'FLOPs' (deploy multiply-adds)")
@pytest.mark.claim(paper=13, artefact="unireplknet_n",
                   claim="deploy MACs equal the README 'FLOPs' (deploy multiply-adds)")
@pytest.mark.claim(paper=13, artefact="unireplknet_t",
                   claim="deploy MACs equal the README 'FLOPs' (deploy multiply-adds)")
@pytest.mark.claim(paper=13, artefact="unireplknet_s",
                   claim="deploy MACs equal the README 'FLOPs' (deploy multiply-adds)")
@pytest.mark.parametrize("v, size", [(v, s) for v in SHEET for s in SHEET[v][2]])
def test_deploy_macs_match_sheet(v, size):
    """The README's 'FLOPs' are the deploy structure's multiply-adds (FlopCounterMode counts 2 per MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    sheet = SHEET[v][2][size]
    model = _meta(f"unireplknet_{v}", deploy=True).eval()
    with torch.device("meta"):
        x = torch.empty(1, 3, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    macs_g = counter.get_total_flops() / 2 / 1e9
    decimals = len(sheet.split(".")[1])
    assert abs(macs_g - float(sheet)) <= 0.5 * 10 ** -decimals + 1e-9, (macs_g, sheet)


# --- the dilated-to-dense identity and the Dilated Reparam Block ------------------------------------------

@pytest.mark.claim(paper=13, artefact="DilatedReparamBlock",
                   claim="dilated-to-dense identity: conv with dilation r == conv with the zero-inserted kernel")
@pytest.mark.parametrize("k, r, groups", [(3, 2, 6), (3, 5, 6), (5, 3, 6), (7, 2, 6), (9, 2, 6), (3, 4, 1), (5, 2, 3)])
def test_dilated_to_dense_identity(k, r, groups):
    g = torch.Generator().manual_seed(k * 10 + r)
    w = torch.randn(6, 6 // groups, k, k, generator=g)
    dense = dilated_to_dense(w, r)
    assert dense.shape[-1] == (k - 1) * r + 1
    assert torch.equal(dense[..., ::r, ::r], w) and (dense != 0).sum() == (w != 0).sum()  # zeros between taps
    x = torch.randn(2, 6, 23, 19, generator=g)
    pad = (r * (k - 1) + 1) // 2
    a = F.conv2d(x, w, padding=pad, dilation=r, groups=groups)
    b = F.conv2d(x, dense, padding=pad, groups=groups)
    assert a.shape == b.shape == x.shape
    assert (a - b).abs().max().item() <= 1e-5
    # centred zero-padding into a larger kernel keeps the "same" output
    big = merge_into_large_kernel(torch.zeros(6, 6 // groups, dense.shape[-1] + 4, dense.shape[-1] + 4), w, r)
    assert (F.conv2d(x, big, padding=big.shape[-1] // 2, groups=groups) - a).abs().max().item() <= 1e-5
    with pytest.raises(ConvzooError):
        merge_into_large_kernel(torch.zeros(6, 6 // groups, 3, 3), w, r)


@pytest.mark.claim(paper=13, artefact="DilatedReparamBlock",
                   claim="branch table of the official code for every K in 5..17")
def test_branch_table():
    # fact sheet Sec. 3: kernel sizes / dilations of the parallel branches besides the main K x K
    table = {17: ((5, 9, 3, 3, 3), (1, 2, 4, 5, 7)), 15: ((5, 7, 3, 3, 3), (1, 2, 3, 5, 7)),
             13: ((5, 7, 3, 3, 3), (1, 2, 3, 4, 5)), 11: ((5, 5, 3, 3, 3), (1, 2, 3, 4, 5)),
             9: ((5, 5, 3, 3), (1, 2, 3, 4)), 7: ((5, 3, 3), (1, 2, 3)), 5: ((3, 3), (1, 2))}
    assert {K: tuple(zip(*b)) for K, b in BRANCHES.items()} == table
    for K, branches in BRANCHES.items():
        assert all((k - 1) * r + 1 <= K for k, r in branches)  # every branch fits inside K x K


@pytest.mark.claim(paper=13, artefact="DilatedReparamBlock",
                   claim="merged K x K conv gives the same outputs (random BN, eval, <= 1e-5) for every K; deploy=True loads it")
@pytest.mark.parametrize("K", sorted(BRANCHES))
def test_dilated_reparam_block_merge(K):
    torch.manual_seed(K)
    c = 6
    block = _randomise(DilatedReparamBlock(c, K), seed=K)
    keys = set(block.state_dict())
    assert "lk_origin.weight" in keys and "origin_bn.running_var" in keys
    assert all(f"dil_conv_k{k}_{r}.weight" in keys and f"dil_bn_k{k}_{r}.weight" in keys for k, r in BRANCHES[K])
    x = _x(2, c, 20, 17, seed=K)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        block.reparameterize()  # idempotent
        out = block(x)
    assert block.deploy and [n for n, _ in block.named_children()] == ["lk_origin"]
    assert block.lk_origin.kernel_size == (K, K) and block.lk_origin.bias is not None
    assert ref.abs().max() > 0.1 and (out - ref).abs().max().item() <= 1e-5
    deployed = DilatedReparamBlock(c, K, deploy=True)
    assert count_params(deployed) == c * K * K + c
    deployed.load_state_dict(block.state_dict())
    with torch.no_grad():
        assert torch.equal(deployed(x), out)


# --- the UniRepLKNet block -----------------------------------------------------------------------------------

@pytest.mark.claim(paper=13, artefact="UniRepLKNetBlock",
                   claim="re-parameterised block equals the train-time block (random BN, gamma, GRN beta; eval; <= 1e-5), SmaK 3/5 and LarK 7..17")
@pytest.mark.parametrize("K", [3, 5, 7, 9, 11, 13, 15, 17])
def test_block_reparameterize(K):
    torch.manual_seed(K)
    dim = 8
    block = _randomise(UniRepLKNetBlock(dim, K), seed=K)
    assert isinstance(block.dwconv, DilatedReparamBlock) == (K >= 7)
    assert block.act[1].use_bias and block.gamma is not None
    x = _x(2, dim, 15, 18, seed=K)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        block.reparameterize()  # idempotent
        out = block(x)
    assert (ref - x).abs().max() > 0.1  # the residual branch contributes
    assert (out - ref).abs().max().item() <= 1e-5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    assert block.gamma is None and not block.act[1].use_bias and len(block.pwconv2) == 2 and block.deploy
    built = UniRepLKNetBlock(dim, K, deploy=True).eval()
    assert set(built.state_dict()) == set(block.state_dict()) and count_params(built) == count_params(block)
    built.load_state_dict(block.state_dict())
    with torch.no_grad():
        assert torch.equal(built(x), out)


@pytest.mark.claim(paper=13, artefact="UniRepLKNetBlock",
                   claim="folding keeps dtype and works without layer scale; SE C/4, FFN 4C, DropPath")
def test_block_reparameterize_float64_and_without_layer_scale():
    """dtype is kept (float64 folding is exact to 1e-12); a block without layer scale folds too."""
    for ls in (1e-6, None):
        block = _randomise(UniRepLKNetBlock(8, 13, layer_scale_init_value=ls)).double()
        x = _x(1, 8, 14, 14).double()
        with torch.no_grad():
            ref = block(x)
            block.reparameterize()
            out = block(x)
        assert block.dwconv.lk_origin.weight.dtype == torch.float64
        assert (out - ref).abs().max().item() <= 1e-12


@pytest.mark.claim(paper=13, artefact="UniRepLKNetBlock",
                   claim="folding keeps dtype and works without layer scale; SE C/4, FFN 4C, DropPath")
def test_block_structure_and_drop_path():
    block = UniRepLKNetBlock(16, 13, drop_path=0.5)
    assert block.se.down.out_channels == 4 and block.pwconv1[1].out_features == 64  # SE C/4, FFN 4C
    assert torch.equal(block.gamma, torch.full((16,), 1e-6))
    block.train()
    torch.manual_seed(0)
    with torch.no_grad():
        _randomise(block).train()
        x = _x(64, 16, 5, 5)
        y = block(x)
    same = ((y - x).flatten(1).abs().amax(1) == 0).float().mean()  # dropped samples are the identity
    assert 0.3 < same < 0.7
    for bad in (0, 4, 19, 6):
        with pytest.raises(ConvzooError):
            UniRepLKNetBlock(8, bad)


@pytest.mark.claim(paper=13, artefact="GRN",
                   claim="ConvNeXt-V2 formula, identity at init, bias removable for folding")
def test_grn_formula():
    torch.manual_seed(0)
    grn = GlobalResponseNorm(12)
    with torch.no_grad():
        grn.gamma.normal_()
        grn.beta.normal_()
    x = torch.randn(2, 5, 7, 12)
    g = x.pow(2).sum((1, 2), keepdim=True).sqrt()
    n = g / (g.mean(-1, keepdim=True) + 1e-6)
    expected = grn.gamma * (x * n) + grn.beta + x
    torch.testing.assert_close(grn(x), expected, atol=1e-6, rtol=1e-6)
    assert torch.equal(GlobalResponseNorm(12)(x), x)  # identity at init
    beta = grn.drop_bias()
    assert not grn.use_bias and "beta" not in dict(grn.named_parameters())
    torch.testing.assert_close(grn(x) + beta, expected, atol=1e-6, rtol=1e-6)


# --- whole models --------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=13, artefact="reparameterize_unireplknet",
                   claim="model outputs equal before/after (random BN, gamma, GRN beta; <= 1e-5); deploy=True loads the state dict and gives the same outputs")
def test_model_reparameterize_and_deploy_constructor():
    torch.manual_seed(0)
    model = _randomise(convzoo.create_model("unireplknet_a", num_classes=10, **TINY))
    x = _x(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model.reparameterize_unireplknet()
        out = model(x)
    assert ref.abs().max() > 0.1 and (out - ref).abs().max().item() <= 1e-5
    assert model.deploy and not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    built = convzoo.create_model("unireplknet_a", num_classes=10, deploy=True, **TINY).eval()
    assert count_params(built) == count_params(model)
    built.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(built(x), out)


@pytest.mark.claim(paper=13, artefact="reparameterize_unireplknet",
                   claim="convzoo.deploy (bottom-up) and timm reparameterize_model order (top-down) agree")
def test_convzoo_deploy_and_timm_order():
    """convzoo.deploy (bottom-up) and timm's reparameterize_model order (top-down) give the same model."""
    torch.manual_seed(0)
    model = _randomise(convzoo.create_model("unireplknet_a", num_classes=10, **TINY))
    x = _x(2, 3, 32, 32, seed=3)
    with torch.no_grad():
        ref = model(x)
        a = convzoo.deploy(copy.deepcopy(model))
        b = copy.deepcopy(model)
        for m in b.modules():  # timm.utils.reparameterize_model
            if hasattr(m, "reparameterize"):
                m.reparameterize()
        assert (a(x) - ref).abs().max().item() <= 1e-5 and torch.equal(a(x), b(x))
    assert a.deploy and b.deploy and set(a.state_dict()) == set(b.state_dict())


def _official_keys(depths, kernels, deploy: bool, features_only: bool = False) -> set[str]:
    """State-dict keys of the official unireplknet.py module tree, written out from its attribute names."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = [f"downsample_layers.0.{i}.{p}" for i in (0, 1, 3, 4) for p in ("weight", "bias")]
    keys += [f"downsample_layers.{s}.{i}.{p}" for s in (1, 2, 3) for i in (0, 1) for p in ("weight", "bias")]
    for s, d in enumerate(depths):
        for j in range(d):
            pre, K = f"stages.{s}.{j}.", kernels[s][j]
            if K >= 7:
                keys += [pre + "dwconv.lk_origin.weight"]
                if deploy:
                    keys += [pre + "dwconv.lk_origin.bias"]
                else:
                    keys += [pre + f"dwconv.origin_bn.{p}" for p in bn]
                    for k, r in BRANCHES[K]:
                        keys += [pre + f"dwconv.dil_conv_k{k}_{r}.weight"]
                        keys += [pre + f"dwconv.dil_bn_k{k}_{r}.{p}" for p in bn]
            else:
                keys += [pre + "dwconv.weight"] + ([pre + "dwconv.bias"] if deploy else [])
            if not deploy:
                keys += [pre + f"norm.{p}" for p in bn] + [pre + f"pwconv2.2.{p}" for p in bn]
                keys += [pre + "gamma", pre + "act.1.beta", pre + "pwconv2.0.weight"]
            else:
                keys += [pre + "pwconv2.0.weight", pre + "pwconv2.0.bias"]
            keys += [pre + f"se.{a}.{p}" for a in ("down", "up") for p in ("weight", "bias")]
            keys += [pre + "pwconv1.1.weight", pre + "pwconv1.1.bias", pre + "act.1.gamma"]
    if features_only:
        keys += [f"norm{i}.{p}" for i in range(4) for p in ("weight", "bias")]
    else:
        keys += ["norm.weight", "norm.bias", "head.weight", "head.bias"]
    return set(keys)


@pytest.mark.claim(paper=13, artefact="unireplknet_a",
                   claim="official checkpoint key names (train and deploy)")
@pytest.mark.claim(paper=13, artefact="unireplknet_t",
                   claim="official kernel plan (LarK/SmaK alternation) and key names")
@pytest.mark.claim(paper=13, artefact="unireplknet_s",
                   claim="official key names, deploy and downstream (norm0..3) structures")
@pytest.mark.parametrize("v, deploy, features_only", [("a", False, False), ("a", True, False), ("t", False, False),
                                                      ("s", True, False), ("s", False, True)])
def test_official_state_dict_keys(v, deploy, features_only):
    depths = OFFICIAL_DEPTHS[v]
    model = _meta(f"unireplknet_{v}", deploy=deploy, features_only=features_only)
    assert set(model.state_dict()) == _official_keys(depths, OFFICIAL_KERNELS[depths], deploy, features_only)


@pytest.mark.claim(paper=13, artefact="unireplknet_t",
                   claim="official kernel plan (LarK/SmaK alternation) and key names")
def test_kernel_plans():
    for v, depths in OFFICIAL_DEPTHS.items():
        model = _meta(f"unireplknet_{v}")
        assert [[b.kernel_size for b in st] for st in model.stages] == [list(k) for k in OFFICIAL_KERNELS[depths]]
    model = _meta("unireplknet_t")
    rates = [b.drop_path.p if hasattr(b.drop_path, "p") else 0.0 for st in model.stages for b in st]
    assert rates[0] == 0.0 and abs(rates[-1] - 0.2) < 1e-7 and rates == sorted(rates)  # linear to the default


@pytest.mark.claim(paper=13, artefact="unireplknet_a",
                   claim="in_chans=1 (audio / time series) and features at strides 4/8/16/32")
def test_in_chans_1_and_feature_strides():
    model = convzoo.create_model("unireplknet_a", in_chans=1, num_classes=35, **TINY).eval()
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    x = _x(2, 1, 64, 48)  # a log-Mel "image" (audio) or a time-series map
    with torch.no_grad():
        feats = model.features(x)
        assert model(x).shape == (2, 35)
        model.reset_classifier(0)
        assert model(x).shape == (2, 32)
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 16, 12), (16, 8, 6), (24, 4, 3), (32, 2, 2)]


@pytest.mark.claim(paper=13, artefact="unireplknet_a",
                   claim="in_chans=1 (audio / time series) and features at strides 4/8/16/32")
def test_features_only_downstream_structure():
    torch.manual_seed(0)
    model = _randomise(_downstream("unireplknet_a", **TINY))
    plain = convzoo.create_model("unireplknet_a", num_classes=0, **TINY).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    x = _x(1, 3, 64, 64)
    with torch.no_grad():
        outs, raw = model(x), plain.features(x)
    for i, (o, r) in enumerate(zip(outs, raw)):
        assert o.shape[2:] == (16 // 2 ** i, 16 // 2 ** i)
        ln = getattr(model, f"norm{i}")
        expected = F.layer_norm(r.permute(0, 2, 3, 1), r.shape[1:2], ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
        torch.testing.assert_close(o, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConvzooError):
        model.forward_head(outs[-1])


def test_head_init_scale_and_bad_options():
    torch.manual_seed(0)
    a = convzoo.create_model("unireplknet_a", **TINY)
    torch.manual_seed(0)
    b = convzoo.create_model("unireplknet_a", head_init_scale=1e-3, **TINY)
    assert a.head.weight.abs().max() > 0 and torch.equal(a.head.bias, torch.zeros(1000))
    torch.testing.assert_close(b.head.weight, a.head.weight * 1e-3)
    for kwargs in ({"depths": (2, 2, 6)}, {"depths": (1, 1, 1, 1)}, {"kernel_sizes": ((3,), (13,), (13,), (13,))},
                   {"drop_path_rate": 1.0}):
        with pytest.raises(ConvzooError):
            convzoo.create_model("unireplknet_a", **{**TINY, **kwargs})


# --- recipes -------------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=13, artefact="unireplknet_in1k",
                   claim="recipe validates; no weight decay on 1-D parameters as the official optimiser factory")
@pytest.mark.claim(paper=13, artefact="unireplknet_digits",
                   claim="recipe validates; a narrow UniRepLKNet lowers the loss on a digits batch")
@pytest.mark.parametrize("name", ["unireplknet_digits", "unireplknet_a_imagenet_paper"])
def test_recipes_load(name):
    from convzoo.engine import load_recipe
    from convzoo.engine.optim import param_groups

    r = load_recipe(name)
    assert r["paper"] == 13 and name in convzoo.get_card(r["model"]["name"]).recipes
    if name.endswith("_paper"):  # official Image/README.md + main.py defaults (fact sheet Sec. 1)
        opt = r["optimizer"]
        assert (opt["name"], opt["lr"], opt["weight_decay"]) == ("adamw", 4e-3, 0.05)
        assert (r["epochs"], r["batch_size"] * r["accumulate"], r["schedule"]["warmup_epochs"]) == (300, 4096, 20)
        assert r["schedule"]["kwargs"]["eta_min"] == 1e-6 and r["task"]["kwargs"]["label_smoothing"] == 0.1
        # the ConvNeXt optimiser factory: no decay on 1-D parameters (GRN's (1,1,1,C) gamma/beta are decayed)
        model = _meta("unireplknet_a")
        no_decay = {id(p) for g in param_groups(model, opt) if g["weight_decay"] == 0 for p in g["params"]}
        assert no_decay == {id(p) for p in model.parameters() if p.ndim <= 1}
    else:
        model = convzoo.create_model(r["model"]["name"], num_classes=10, in_chans=1, **r["model"]["kwargs"])
        assert count_params(model) < 500_000  # CPU-scale
        assert any(isinstance(m, DilatedReparamBlock) and m.kernel_size == 13 for m in model.modules())


# --- timm's arguments and preprocessing (issue 9) ----------------------------------------------------------

VARIANTS = ["a", "f", "p", "n", "t", "s", "b", "l", "xl"]


@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="deploy=True builds convzoo.deploy's structure: state dict key for key, same outputs")
@pytest.mark.claim(paper=13, artefact="unireplknet_f", claim="deploy=True builds convzoo.deploy's structure: state dict key for key, same outputs")
@pytest.mark.claim(paper=13, artefact="unireplknet_p", claim="deploy=True builds convzoo.deploy's structure: state dict key for key, same outputs")
@pytest.mark.claim(paper=13, artefact="unireplknet_n", claim="deploy=True builds convzoo.deploy's structure: state dict key for key, same outputs")
@pytest.mark.claim(paper=13, artefact="unireplknet_t", claim="deploy=True builds convzoo.deploy's structure: state dict key for key, same outputs")
@pytest.mark.claim(paper=13, artefact="unireplknet_s", claim="deploy=True builds convzoo.deploy's structure: state dict key for key, same outputs")
@pytest.mark.claim(paper=11, artefact="unireplknet_b", claim="deploy=True builds convzoo.deploy's structure: state dict key for key, same outputs")
@pytest.mark.claim(paper=11, artefact="unireplknet_l", claim="deploy=True builds convzoo.deploy's structure: state dict key for key, same outputs")
@pytest.mark.claim(paper=11, artefact="unireplknet_xl", claim="deploy=True builds convzoo.deploy's structure: state dict key for key, same outputs")
@pytest.mark.parametrize("v", VARIANTS)
def test_deploy_true_is_the_deployed_structure(v):
    name = f"unireplknet_{v}"
    shapes = lambda m: {k: tuple(t.shape) for k, t in m.state_dict().items()}
    fused = convzoo.deploy(_meta(name))
    deployed = _meta(name, deploy=True)
    assert shapes(deployed) == shapes(fused)
    deployed.load_state_dict(fused.state_dict(), strict=True)
    # numbers: the variant's depths and kernel plan at narrow widths, random BN statistics and layer scales
    torch.manual_seed(0)
    model = _randomise(convzoo.create_model(name, num_classes=10, **TINY))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        deployed = convzoo.create_model(name, num_classes=10, deploy=True, **TINY).eval()
        deployed.load_state_dict(convzoo.deploy(copy.deepcopy(model)).state_dict(), strict=True)
        out = deployed(x)
    assert float((out - ref).abs().max() / ref.abs().max()) <= 1e-4


@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="drop_rate, global_pool before the LayerNorm head (catavgmax refused, as timm's norm head), generic set_grad_checkpointing with equal gradients")
def test_drop_rate_global_pool_and_checkpointing():
    x = torch.randn(2, 3, 32, 32)
    for pool in ("avg", "max", "avgmax", ""):
        model = convzoo.create_model("unireplknet_a", num_classes=10, global_pool=pool, drop_rate=0.3, **TINY).eval()
        with torch.no_grad():
            feats = model.forward_features(x)
            pooled = {"avg": feats.mean((2, 3)), "max": feats.amax((2, 3)), "": feats.movedim(1, -1),
                      "avgmax": 0.5 * (feats.mean((2, 3)) + feats.amax((2, 3)))}[pool]
            expected = model.head(model.norm(pooled))
            torch.testing.assert_close(model(x), expected.movedim(-1, 1) if pool == "" else expected)
    with pytest.raises(ConvzooError, match="catavgmax"):
        convzoo.create_model("unireplknet_a", global_pool="catavgmax", **TINY)
    torch.manual_seed(0)
    model = convzoo.create_model("unireplknet_a", num_classes=5, **TINY)
    model(x).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing()
    model(x).sum().backward()
    for a, p in zip(plain, model.parameters()):
        torch.testing.assert_close(p.grad, a)


@pytest.mark.claim(paper=13, artefact="unireplknet_a", claim="card preprocessing = official datasets.py eval transform")
@pytest.mark.claim(paper=11, artefact="unireplknet_b", claim="card preprocessing = official datasets.py eval transform (384 px: warped, crop 1.0)")
def test_preprocessing_is_the_official_eval_transform():
    # official AILab-CVC/UniRepLKNet datasets.py build_transform(is_train=False): BICUBIC; below 384 px
    # Resize(int(size / (224 / 256))) + CenterCrop, at 384 px a warp to the size; main.py default
    # --imagenet_default_mean_and_std True (ImageNet mean/std)
    for v in VARIANTS:
        size, crop = (384, 1.0) if v in ("b", "l", "xl") else (224, 0.875)
        assert convzoo.data_config(f"unireplknet_{v}") == {
            "input_size": (3, size, size), "interpolation": "bicubic", "mean": (0.485, 0.456, 0.406),
            "std": (0.229, 0.224, 0.225), "crop_pct": crop, "crop_mode": "squash" if size == 384 else "center"}
