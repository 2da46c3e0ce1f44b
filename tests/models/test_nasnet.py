"""NASNet-A (paper 14, arXiv 1707.07012): the search space, the cells, the networks, their counts and parity.

Outside numbers: timm ``nasnetalarge`` (built here), Keras's NASNetLarge / NASNetMobile counts (Keras
applications table, which counts BN moving statistics), the paper's Table 1-2 (3.3M, 23.8B and 564M
mult-adds), and the official ``nasnet_utils.py`` / ``nasnet.py`` lists and configs written literally below.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.errors import ConvzooError
from convzoo.methods import build_method
from convzoo.models.nasnet import NASNet, reduction_indices
from convzoo.nas.nasnet_space import (
    NASNET_A,
    OPS,
    Genotype,
    NASNetCell,
    ScheduledDropPath,
    make_op,
    random_genotype,
)
from convzoo.registry import count_params
from convzoo.tasks import build_task
from convzoo.testing import randomise_bn

TIMM_LARGE = 88_753_150  # timm 1.0.31 nasnetalarge, sum of numel (fact sheet G1b)
KERAS_LARGE, KERAS_MOBILE = 88_949_818, 5_326_716  # Keras applications NASNetLarge / NASNetMobile (incl. BN stats)
SMALL = {"num_cells": 3, "num_conv_filters": 8, "stem": "cifar", "skip_reduction_layer_input": False,
         "img_size": 16, "num_classes": 10}


def _meta(name, **kw):
    with torch.device("meta"):
        return convzoo.create_model(name, **kw)


def _bn_statistics(model: nn.Module) -> int:
    """BN running mean + running variance values (Keras's non-trainable 'moving' weights), not num_batches_tracked."""
    return sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules()
               if isinstance(m, nn.BatchNorm2d))


# --- the search space -----------------------------------------------------------------------------------

@pytest.mark.claim(paper=14, artefact="nasnet_search_space",
                   claim="13 operations of Sec. 3 and cells of B = 5 blocks (2 inputs, 2 ops, add/concat)")
def test_search_space_has_the_papers_13_ops():
    paper = {"identity", "1x3 then 3x1 convolution", "1x7 then 7x1 convolution", "3x3 dilated convolution",
             "3x3 average pooling", "3x3 max pooling", "5x5 max pooling", "7x7 max pooling", "1x1 convolution",
             "3x3 convolution", "3x3 depthwise-separable conv", "5x5 depthwise-separable conv",
             "7x7 depthwise-separable conv"}
    assert len(OPS) == len(set(OPS)) == len(paper) == 13
    assert len(NASNET_A.normal.blocks) == len(NASNET_A.reduction.blocks) == 5
    # every op builds at stride 1 and 2, to F channels, from F and from another width
    x = torch.randn(2, 6, 9, 9)
    for op in OPS:
        for stride in (1, 2):
            for cin in (6, 4):
                y = make_op(op, cin, 4, stride)(x[:, :cin])
                assert y.shape == (2, 4, 5 if stride == 2 else 9, 5 if stride == 2 else 9), (op, stride, cin)


@pytest.mark.claim(paper=14, artefact="nasnet_search_space",
                   claim="genotype round trip: dict/JSON and the controller's 2 x 5B integer decisions")
def test_genotype_round_trip():
    for g in (NASNET_A, random_genotype(0), random_genotype(1)):
        assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
        codes = g.encode()
        assert len(codes) == 2 * 5 * 5 and all(isinstance(c, int) for c in codes)
        assert Genotype.decode(codes, normal_concat=g.normal.concat, reduction_concat=g.reduction.concat) == g
    # without concat: the block outputs no block reads (the paper's rule); the official NASNet-A lists differ
    # (its normal cell also concatenates h_i-1, its reduction cell block 1, which block 3 reads), hence explicit
    g = Genotype.decode(NASNET_A.encode())
    assert g.reduction.concat == (4, 5, 6) and g.normal.concat == (2, 3, 4, 5, 6)


@pytest.mark.claim(paper=14, artefact="nasnet_search_space", claim="invalid genotypes are refused in one line")
@pytest.mark.parametrize("bad, match", [
    ({"blocks": [{"inputs": [0, 2], "ops": ["identity", "identity"]}], "concat": [2]}, "reads state 2"),
    ({"blocks": [{"inputs": [0, 1], "ops": ["identity", "conv_5x5"]}], "concat": [2]}, "unknown op"),
    ({"blocks": [{"inputs": [0, 1], "ops": ["identity", "identity"], "combine": "mul"}], "concat": [2]}, "combine"),
    ({"blocks": [{"inputs": [0, 1], "ops": ["identity", "identity"]}], "concat": [3]}, "concat"),
    ({"blocks": [{"ops": ["identity", "identity"]}], "concat": [2]}, "needs 'blocks'"),
])
def test_genotype_validation(bad, match):
    with pytest.raises(ConvzooError, match=match) as e:
        Genotype.from_dict({"normal": bad, "reduction": NASNET_A.to_dict()["reduction"]})
    assert "\n" not in str(e.value)
    with pytest.raises(ConvzooError, match="decisions"):
        Genotype.decode([0] * 7)


@pytest.mark.claim(paper=14, artefact="NASNetACell",
                   claim="NASNet-A cells = official nasnet_utils NasNetANormalCell / NasNetAReductionCell lists")
def test_nasnet_a_genotype_is_the_official_one():
    # nasnet_utils.py: operations, hiddenstate_indices (0 = current input, 1 = previous), used_hiddenstates
    normal_ops = ["separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2", "avg_pool_3x3",
                  "none", "avg_pool_3x3", "avg_pool_3x3", "separable_3x3_2", "none"]
    normal_idx, normal_used = [0, 1, 1, 1, 0, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0]
    red_ops = ["separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2", "avg_pool_3x3",
               "separable_5x5_2", "none", "avg_pool_3x3", "separable_3x3_2", "max_pool_3x3"]
    red_idx, red_used = [0, 1, 0, 1, 0, 1, 3, 2, 2, 0], [1, 1, 1, 0, 0, 0, 0]
    name = {"none": "identity", "avg_pool_3x3": "avg_pool_3x3", "max_pool_3x3": "max_pool_3x3"}
    for cell, ops, idx, used in ((NASNET_A.normal, normal_ops, normal_idx, normal_used),
                                 (NASNET_A.reduction, red_ops, red_idx, red_used)):
        want_ops = [name.get(o, f"sep_conv_{o[10:13]}") for o in ops]
        assert [o for b in cell.blocks for o in b.ops] == want_ops
        assert [i for b in cell.blocks for i in b.inputs] == idx
        assert all(b.combine == "add" for b in cell.blocks)
        assert cell.concat == tuple(i for i, u in enumerate(used) if not u)


@pytest.mark.claim(paper=14, artefact="NASNetACell",
                   claim="normal cell keeps the size and gives 6F channels; reduction cell halves it and gives 4F")
def test_cell_widths_and_strides():
    f = 8
    normal = NASNetCell(NASNET_A.normal, 48, 32, f)
    red = NASNetCell(NASNET_A.reduction, 48, 48, f, reduction=True)
    x, prev = torch.randn(2, 48, 10, 10), torch.randn(2, 32, 10, 10)
    assert normal.out_chs == 6 * f and normal(x, prev).shape == (2, 6 * f, 10, 10)
    assert red.out_chs == 4 * f and red(x, x).shape == (2, 4 * f, 5, 5)
    after = NASNetCell(NASNET_A.normal, 4 * f, 48, 2 * f, prev_reduced=True)  # factorized reduction of h_i-1
    assert after(torch.randn(2, 4 * f, 5, 5), x).shape == (2, 12 * f, 5, 5)
    # network widths: P = 24 F (6 concat states x two doublings)
    for name, p in (("nasnetalarge", 4032), ("nasnetamobile", 1056), ("nasnet_a_cifar", 768),
                    ("nasnet_a_cifar_7_2304", 2304)):
        assert _meta(name).num_features == p, name
    assert reduction_indices(18) == [6, 12] and reduction_indices(12) == [4, 8]  # official calc_reduction_layers


@pytest.mark.claim(paper=14, artefact="nasnet_search_space",
                   claim="random genotypes (both combiners, all 13 ops) build into a network that trains a step")
def test_random_genotypes_build_and_run():
    seen = set()
    for seed in range(4):
        g = random_genotype(seed)
        seen |= {o for c in (g.normal, g.reduction) for b in c.blocks for o in b.ops}
        torch.manual_seed(seed)
        model = NASNet(genotype=g.to_dict(), **SMALL, aux_head=True, drop_path_rate=0.2).train()
        x = torch.randn(2, 3, 16, 16)
        logits, aux = model(x)
        assert logits.shape == aux.shape == (2, 10)
        (logits.logsumexp(1) + aux.logsumexp(1)).sum().backward()
        assert all(p.grad is not None for p in model.parameters())
        assert model.eval()(x).shape == (2, 10)
    assert len(seen) >= 11  # the sampler covers the space


# --- ScheduledDropPath ------------------------------------------------------------------------------------

@pytest.mark.claim(paper=14, artefact="scheduled_drop_path",
                   claim="keep prob 1 at step 0, 1 - (l+1)/L (1 - p) at the end, identity in eval")
def test_scheduled_drop_path_schedule():
    keep_p, total = 0.6, 20
    x = torch.ones(20000, 1, 1, 1)
    for cell in (0, 9, 19):
        d = ScheduledDropPath(1 - keep_p, cell, total).train()
        d.set_progress(0.0)
        assert float(d.keep_prob()) == 1.0 and torch.equal(d(x), x)
        d.set_progress(1.0)
        end = 1 - (cell + 1) / total * (1 - keep_p)
        assert float(d.keep_prob()) == pytest.approx(end)
        d.set_progress(0.5)
        assert float(d.keep_prob()) == pytest.approx(1 - 0.5 * (cell + 1) / total * (1 - keep_p))
        d.set_progress(1.0)
        torch.manual_seed(cell)
        y = d(x)
        kept = (y != 0).float().mean()
        assert torch.allclose(y[y != 0], torch.tensor(1 / end))  # kept samples scaled by 1 / keep
        assert abs(float(kept) - end) < 0.02 and abs(float(y.mean()) - 1) < 0.05  # unbiased
        assert torch.equal(d.eval()(x), x)


@pytest.mark.claim(paper=14, artefact="scheduled_drop_path",
                   claim="the auxiliary method moves the network's drop-path progress step by step (official "
                         "total_training_steps)")
def test_method_drives_drop_path_progress():
    model = NASNet(**SMALL, aux_head=True, drop_path_rate=0.4)
    drops = [m for m in model.modules() if isinstance(m, ScheduledDropPath)]
    assert len(drops) == 3 + 2 and all(float(d.progress) == 1.0 for d in drops)  # undriven: the full rate
    assert [d.cell_index for d in drops] == list(range(5)) and {d.total_cells for d in drops} == {5}
    method = build_method("auxiliary", model, build_task("classification"), None, drop_path_steps=4)
    method.on_train_epoch_start(0)
    assert all(float(d.progress) == 0.0 for d in drops)
    for step in range(1, 7):
        method.on_after_optimizer_step()
        assert all(float(d.progress) == min(1.0, step / 4) for d in drops)


# --- counts ------------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="parameters equal timm nasnetalarge's 88,753,150")
def test_large_params_equal_timm():
    import timm

    with torch.device("meta"):
        ref = timm.create_model("nasnetalarge")
    ours = _meta("nasnetalarge")
    assert count_params(ref) == count_params(ours) == TIMM_LARGE
    assert {k: v.shape for k, v in ref.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}


@pytest.mark.claim(paper=14, artefact="nasnetalarge",
                   claim="the paper's 88.9M counts BN statistics: parameters + BN mean/var = Keras 88,949,818")
@pytest.mark.claim(paper=14, artefact="nasnetamobile",
                   claim="the paper's 5.3M counts BN statistics: parameters + BN mean/var = Keras 5,326,716")
def test_paper_counts_include_bn_statistics():
    large, mobile = _meta("nasnetalarge"), _meta("nasnetamobile")
    assert count_params(large) + _bn_statistics(large) == KERAS_LARGE
    assert count_params(mobile) + _bn_statistics(mobile) == KERAS_MOBILE
    assert round(KERAS_LARGE / 1e6, 1) == 88.9 and round(KERAS_MOBILE / 1e6, 1) == 5.3  # the paper's rounding
    assert round(count_params(large) / 1e6, 1) == 88.8  # parameters alone round off the paper's figure
    assert convzoo.get_card("nasnetamobile").params == count_params(mobile)


@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar", claim="NASNet-A (6 @ 768) has the paper's 3.3M parameters")
def test_cifar_counts():
    model = _meta("nasnet_a_cifar")
    assert round(count_params(model) / 1e6, 1) == 3.3  # paper Table 1
    aux = _meta("nasnet_a_cifar", aux_head=True)
    assert aux.aux_head.conv.kernel_size == (4, 4)  # 16x16 map -> 5x5/3 pool -> 4x4: the "full-size" kernel


@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar_7_2304",
                   claim="32,590,954 parameters at N = 7, F = 96 (the paper's 27.6M is not reproduced)", pin=True)
def test_cifar_7_2304_count_pin():
    model = _meta("nasnet_a_cifar_7_2304")
    assert model.num_features == 2304 and count_params(model) == 32_590_954


@pytest.mark.claim(paper=14, artefact="nasnetalarge", claim="23.8 G mult-adds at 331 px (paper Table 2)")
@pytest.mark.claim(paper=14, artefact="nasnetamobile", claim="564 M mult-adds at 224 px (paper Table 2)")
@pytest.mark.slow  # shape-only (meta) passes of Large and Mobile: ~5-15 s on the shared machine
def test_macs_match_paper():
    from torch.utils.flop_counter import FlopCounterMode

    def macs(name, size):
        model = _meta(name).eval()
        with torch.device("meta"), FlopCounterMode(display=False) as c, torch.no_grad():
            model(torch.empty(1, 3, size, size))
        return c.get_total_flops() // 2

    assert round(macs("nasnetalarge", 331) / 1e9, 1) == 23.8
    assert round(macs("nasnetamobile", 224) / 1e6) == 564


# --- parity with timm -------------------------------------------------------------------------------------

@pytest.mark.claim(paper=14, artefact="nasnetalarge",
                   claim="timm's weights load key for key and give timm's logits and feature maps (TF SAME padding, "
                         "odd and even sizes)")
@pytest.mark.slow  # two 88.7M-parameter models: ~15-40 s on the shared 2-core machine
def test_large_parity_with_timm():
    import timm

    torch.manual_seed(0)
    ref = timm.create_model("nasnetalarge").eval()
    randomise_bn(ref)
    with torch.no_grad():
        ref.last_linear.weight.normal_(0, 0.05)
    ours = convzoo.create_model("nasnetalarge").eval()
    ours.load_state_dict(ref.state_dict())
    for size in (35, 32):  # odd and even maps: TF SAME pads asymmetrically at stride 2 on even sizes
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            a, b = ref(x), ours(x)
            fa, fb = ref.forward_intermediates(x, intermediates_only=True), ours.features(x)
        assert float(a.abs().max()) > 0.1
        torch.testing.assert_close(b, a, atol=1e-5 * max(1.0, float(a.abs().max())), rtol=0)
        assert [f.shape for f in fa] == [f.shape for f in fb]
        for p, q in zip(fa, fb):
            torch.testing.assert_close(q, p, atol=1e-5 * max(1.0, float(p.abs().max())), rtol=0)
    assert [(f["num_chs"], f["reduction"]) for f in ours.feature_info] == \
        [(f["num_chs"], f["reduction"]) for f in ref.feature_info]


def test_deploy_folds_every_bn():
    """``convzoo.deploy`` folds every BN (into the conv before it; the factorized reductions' BN after the
    concatenation of two path convs split over them) of NASNet-A and of random genotypes: no BN left, same
    logits; the model runs with the shared ReLUs (each state's once per cell) before and after."""
    import copy

    for genotype, cells in ((None, SMALL["num_cells"]), (random_genotype(7).to_dict(), 3)):
        torch.manual_seed(0)
        model = randomise_bn(NASNet(**{**SMALL, "num_cells": cells}, genotype=genotype, aux_head=True)).eval()
        fused = convzoo.deploy(copy.deepcopy(model))
        assert not [m for m in fused.modules() if isinstance(m, nn.BatchNorm2d)]
        x = torch.randn(2, 3, 17, 17)
        with torch.no_grad():
            a, b = model(x), fused(x)
            aux = (model.aux_head(F.relu(model._run(x)[model.aux_tap])),
                   fused.aux_head(F.relu(fused._run(x)[fused.aux_tap])))
        assert float(a.abs().max()) > 1e-3
        torch.testing.assert_close(b, a, atol=1e-5 * max(1.0, float(a.abs().max())), rtol=0)
        torch.testing.assert_close(aux[1], aux[0], atol=1e-5 * max(1.0, float(aux[0].abs().max())), rtol=0)


# --- auxiliary head and method ----------------------------------------------------------------------------

@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar",
                   claim="auxiliary head: (logits, aux) in training, logits in eval; loss = CE + 0.4 CE(aux)")
def test_aux_head_and_auxiliary_loss():
    torch.manual_seed(0)
    model = NASNet(**SMALL, aux_head=True)
    task = build_task("classification")
    method = build_method("auxiliary", model, task, None)
    assert method.aux_weight == 0.4  # paper Sec. 4.1 / official training notes
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    method.train()
    torch.manual_seed(1)
    parts = method((x, y))
    torch.manual_seed(1)
    logits, aux = model(x)
    want = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
    torch.testing.assert_close(parts["loss"], want)
    model.eval()
    assert model(x).shape == (4, 10)
    plain = NASNet(**SMALL)
    assert plain.aux_head is None and count_params(model) - count_params(plain) == count_params(model.aux_head)


# --- recipes ---------------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=14, artefact="nasnet_a_cifar10_paper",
                   claim="the official CIFAR recipe: batch 32, lr 0.025 cosine, 600 epochs (937,500 steps), aux 0.4, "
                         "clip 5, drop-path keep 0.6, wd 5e-4")
@pytest.mark.claim(paper=14, artefact="nasnet_a_mobile_imagenet_paper",
                   claim="the official mobile recipe: 50 x 32 batch, lr 0.04 x 50, 0.97 per 2.4 epochs, smoothing "
                         "0.1, aux 0.4, clip 10, dropout 0.5, no drop path, wd 4e-5")
@pytest.mark.claim(paper=14, artefact="nasnet_a_large_imagenet_paper",
                   claim="the official large recipe: 100 x 16 batch, lr 0.015 x 100, 0.97 per 2.4 epochs, smoothing "
                         "0.1, aux 0.4, clip 10, dropout 0.5, drop-path keep 0.7 over 250k steps, wd 5e-5")
def test_paper_recipes():
    from convzoo.engine import load_recipe

    c = load_recipe("nasnet_a_cifar10_paper")
    assert (c["model"]["name"], c["batch_size"], c["optimizer"]["lr"], c["schedule"]["name"]) == \
        ("nasnet_a_cifar", 32, 0.025, "cosine")
    assert c["epochs"] * 50_000 // c["batch_size"] == 937_500 == c["method"]["kwargs"]["drop_path_steps"]
    assert (c["grad_clip"], c["optimizer"]["weight_decay"], c["method"]["kwargs"]["aux_weight"]) == (5.0, 5e-4, 0.4)
    assert c["model"]["kwargs"]["drop_path_rate"] == pytest.approx(1 - 0.6) and c["model"]["kwargs"]["aux_head"]
    for name, model, batch, lr, keep, wd in (("nasnet_a_mobile_imagenet_paper", "nasnetamobile", 32 * 50, 0.04 * 50,
                                              1.0, 4e-5),
                                             ("nasnet_a_large_imagenet_paper", "nasnetalarge", 16 * 100, 0.015 * 100,
                                              0.7, 5e-5)):
        r = load_recipe(name)
        kw = r["model"]["kwargs"]
        assert (r["model"]["name"], r["batch_size"], r["optimizer"]["lr"]) == (model, batch, pytest.approx(lr))
        assert r["schedule"]["kwargs"]["gamma"] ** 2.4 == pytest.approx(0.97)
        assert (r["task"]["kwargs"]["label_smoothing"], r["method"]["kwargs"]["aux_weight"], r["grad_clip"]) == \
            (0.1, 0.4, 10.0)
        assert (kw["drop_rate"], kw["drop_path_rate"], r["optimizer"]["weight_decay"]) == \
            (pytest.approx(1 - 0.5), pytest.approx(1 - keep), wd)
        assert abs(r["epochs"] * 1_281_167 / batch - 250_000) < 1_000  # total_training_steps 250000
        if keep < 1:
            assert r["method"]["kwargs"]["drop_path_steps"] == 250_000
        assert name in convzoo.get_card(model).recipes


@pytest.mark.claim(paper=14, artefact="nasnet_digits",
                   claim="a narrow NASNet-A with aux head and ScheduledDropPath learns real digits (loss falls)")
@pytest.mark.slow  # 30 SGD steps of a 3-cell NASNet at 16 px: ~10-20 s on the shared machine
def test_digits_recipe_learns():
    from convzoo.data import build_dataset
    from convzoo.engine import load_recipe

    r = load_recipe("nasnet_digits")
    assert r["method"]["name"] == "auxiliary" and "nasnet_digits" in convzoo.get_card(r["model"]["name"]).recipes
    ds = build_dataset(r["data"]["name"], "train", **{**r["data"]["kwargs"], "augment": False})
    torch.manual_seed(0)
    model = convzoo.create_model(r["model"]["name"], num_classes=10, in_chans=1, **r["model"]["kwargs"])
    # CPU-scale cells; the paper's auxiliary head (1x1 conv 128, 4x4 conv 768) holds 1.57M of one-position compute
    assert count_params(model) - count_params(model.aux_head) < 150_000
    method = build_method("auxiliary", model, build_task("classification"), ds.info, **r["method"]["kwargs"])
    opt = torch.optim.SGD(method.parameters(), lr=r["optimizer"]["lr"], momentum=0.9)
    loader = torch.utils.data.DataLoader(ds, batch_size=r["batch_size"], shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    method.train()
    method.on_train_epoch_start(0)
    losses = []
    while len(losses) < 30:
        for batch in loader:
            loss = method(batch)["loss"]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(method.parameters(), r["grad_clip"])
            opt.step()
            method.on_after_optimizer_step()
            losses.append(float(loss.detach()))
            if len(losses) == 30:
                break
    assert sum(losses[-8:]) / 8 < 0.75 * sum(losses[:8]) / 8, losses
    assert float(method.steps) == 30
