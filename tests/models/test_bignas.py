"""Paper 56 (BigNAS, arXiv 2003.11142): weight slicing, the paper's space and counts, BN calibration,
the sandwich rule with inplace distillation through the engine, and the selection tools."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.layers.elastic import ElasticBatchNorm2d, ElasticConv2d
from convzoo.methods import build_method
from convzoo.models.bignas import (
    NAMED_CHILDREN,
    BigNASSupernet,
    ChildConfig,
    SearchSpace,
    StageSpace,
    count_child,
    resize_to,
)
from convzoo.nas.bignas import calibrate_bn, coarse_to_fine, evaluate_child, search
from convzoo.registry import count_params
from convzoo.tasks import build_task

pytestmark = pytest.mark.paper(56)

# a tiny space for the tests that train or search (the digits and paper spaces are checked below)
TINY = SearchSpace(resolutions=(8, 12), stem=(4, 8), head=(16, 24), stages=(
    StageSpace((4,), (1,), (3,), (1,), 1),
    StageSpace((8, 12), (1, 2), (3, 5), (2, 3), 2),
    StageSpace((12, 16), (1, 2), (3, 5), (2, 3), 1)))
TINY_MAPPING = {"resolutions": [8, 12], "stem": [4, 8], "head": [16, 24], "stages": [
    {"widths": [4], "depths": [1], "kernels": [3], "expands": [1], "stride": 1},
    {"widths": [8, 12], "depths": [1, 2], "kernels": [3, 5], "expands": [2, 3], "stride": 2},
    {"widths": [12, 16], "depths": [1, 2], "kernels": [3, 5], "expands": [2, 3], "stride": 1}]}


@torch.no_grad()
def _random_bn(net, seed=1):
    """Random running statistics and affine parameters in every elastic BN (so eval comparisons bite)."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, ElasticBatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net


# --- slicing ------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=56, artefact="bignas_supernet",
                   claim="an extracted child (static layers, copied slices) gives the supernet's outputs in that "
                         "configuration to 1e-6 (eval, float64), digits and paper spaces")
@pytest.mark.parametrize("space,seed", [("digits", 0), ("digits", 1), ("digits", 2), ("paper", 3)])
def test_extracted_child_equals_supernet(space, seed):
    torch.manual_seed(seed)
    net = _random_bn(BigNASSupernet(space, num_classes=7, in_chans=2).double().eval(), seed)
    cfg = net.sample_child(random.Random(seed))
    size = 48 if space == "paper" else cfg.resolution  # any size: the nets are fully convolutional
    x = torch.randn(2, 2, size, size, dtype=torch.double)
    with torch.no_grad():
        ref = net.set_active(cfg)(x)
        child = net.extract(cfg).eval()
        out = child(x)
    assert child.config == cfg
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    assert all(not isinstance(m, (ElasticConv2d, ElasticBatchNorm2d)) for m in child.modules())


@pytest.mark.claim(paper=56, artefact="bignas_supernet",
                   claim="the largest child is the whole supernet: same outputs and the same parameter count")
def test_largest_child_is_the_supernet():
    net = _random_bn(BigNASSupernet("digits", num_classes=10, in_chans=1).eval())
    child = net.extract(net.largest()).eval()
    assert count_params(child) == count_params(net)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(child(x), net.set_active(net.largest())(x), atol=1e-6, rtol=0)
    with torch.device("meta"):
        big = BigNASSupernet("paper")
        assert count_params(big.extract(big.largest())) == count_params(big)


@pytest.mark.claim(paper=56, artefact="bignas_supernet",
                   claim="kernel slicing is the centre crop of the largest kernel: equals a conv with the hand-cut "
                         "centre 3x3 (depth-wise and dense, 'same' padding)")
def test_kernel_centre_crop_equals_hand_built_kernel():
    torch.manual_seed(0)
    dw = ElasticConv2d(6, 6, 5, stride=2, depthwise=True).double()
    dense = ElasticConv2d(6, 9, 5).double()
    x = torch.randn(2, 4, 11, 11, dtype=torch.double)  # a 4-channel child of the 6-channel layer
    w = dw.weight.detach()
    hand = torch.empty(4, 1, 3, 3, dtype=torch.double)
    for c in range(4):
        for i in range(3):
            for j in range(3):
                hand[c, 0, i, j] = w[c, 0, i + 1, j + 1]
    torch.testing.assert_close(dw(x, kernel_size=3), F.conv2d(x, hand, stride=2, padding=1, groups=4), atol=1e-12, rtol=0)
    hand_dense = dense.weight.detach()[:5, :4, 1:4, 1:4]
    torch.testing.assert_close(dense(x, 5, 3), F.conv2d(x, hand_dense, padding=1), atol=1e-12, rtol=0)
    assert dense(x, 5, 5).shape == (2, 5, 11, 11)


@pytest.mark.claim(paper=56, artefact="bignas_supernet",
                   claim="Sec. 3.1 initialization: the last BN gamma of every residual block is zero, so every "
                         "residual block starts as the identity")
def test_residual_blocks_start_as_identity():
    torch.manual_seed(0)
    net = BigNASSupernet("digits", num_classes=10, in_chans=1)
    residual = [b for stage in net.stages for b in stage if b.residual]
    assert len(residual) == sum(max(s.depths) - 1 for s in net.space.stages) > 0
    for b in residual:
        assert torch.all(b.project_bn.weight == 0)
        x = torch.randn(2, b.project_bn.num_features, 8, 8)
        torch.testing.assert_close(b(x), x, atol=0, rtol=0)
    assert all(torch.all(b.project_bn.weight == 1) for stage in net.stages for b in stage if not b.residual)


# --- the paper's space and counts -----------------------------------------------------------------------
def _table1_counts(res, stem, stages, head, classes=1000):
    """(params, MACs) written out from Table 1's layer list: conv3x3/2 stem, MBConv blocks (1x1 expand
    unless e = 1, k x k depth-wise, SE with int(cin / 4) biased 1x1 convs, 1x1 project; BN = 2 params per
    channel), 1x1 head, classifier. ``stages``: (width, depth, kernel, expansion, stride) per stage."""
    h = (res + 1) // 2
    p, m, c = 27 * stem + 2 * stem, h * h * 27 * stem, stem
    for w, d, k, e, s in stages:
        for i in range(d):
            ho = (h + 1) // 2 if (i == 0 and s == 2) else h
            hid, se = c * e, c // 4
            if e > 1:
                p, m = p + c * hid + 2 * hid, m + h * h * c * hid
            p += hid * k * k + 2 * hid + 2 * hid * se + se + hid + hid * w + 2 * w
            m += ho * ho * (hid * k * k + hid * w) + 2 * hid * se
            c, h = w, ho
    return p + c * head + 2 * head + head * classes + classes, m + h * h * c * head + head * classes


SMALLEST = [(16, 1, 3, 1, 1), (24, 2, 3, 6, 2), (40, 2, 3, 6, 2), (80, 2, 3, 6, 2), (112, 2, 3, 6, 1),
            (192, 2, 3, 6, 2), (320, 1, 3, 6, 1)]
LARGEST = [(24, 2, 3, 1, 1), (32, 3, 3, 6, 2), (48, 3, 5, 6, 2), (88, 4, 5, 6, 2), (128, 6, 5, 6, 1),
           (216, 6, 5, 6, 2), (352, 2, 5, 6, 1)]


def _measure(net, cfg):
    with torch.device("meta"):
        child = net.extract(cfg).eval()
        x = torch.empty(1, 3, cfg.resolution, cfg.resolution)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        child(x)
    return count_params(child), counter.get_total_flops() // 2


@pytest.mark.claim(paper=56, artefact="bignas_supernet",
                   claim="smallest (192 px) and largest (320 px) children of Table 1's space have the counts of a "
                         "closed form written from Table 1 (3,747,412 / 206.7M MACs and 10,892,790 / 1843.0M MACs); "
                         "the card holds the largest child's")
def test_table1_smallest_and_largest_children():
    with torch.device("meta"):
        net = BigNASSupernet("paper")
    small, big = _table1_counts(192, 32, SMALLEST, 1280), _table1_counts(320, 40, LARGEST, 1408)
    assert _measure(net, net.smallest()) == small == (3_747_412, 206_739_328)
    assert _measure(net, net.largest()) == big == (10_892_790, 1_843_030_528)
    card = convzoo.get_card("bignas_supernet")
    assert (card.params, card.macs) == big
    # the abstract's range: child models "from 200 to 1000 MFLOPs"; BigNASModel-S (242M) lies above the smallest
    assert 200e6 <= small[1] <= 242e6


@pytest.mark.claim(paper=56, artefact="bignas_s",
                   claim="a child of Table 1's space with BigNASModel-S's Table 2 counts (4.5M params, 242 MFLOPs "
                         "at 192 px; paper rounding); configuration chosen by convzoo")
@pytest.mark.claim(paper=56, artefact="bignas_m",
                   claim="a child with BigNASModel-M's Table 2 counts (5.5M, 418 MFLOPs at 224 px)")
@pytest.mark.claim(paper=56, artefact="bignas_l",
                   claim="a child with BigNASModel-L's Table 2 counts (6.4M, 586 MFLOPs at 224 px)")
@pytest.mark.claim(paper=56, artefact="bignas_xl",
                   claim="a child with BigNASModel-XL's Table 2 counts (9.5M, 1040 MFLOPs at 288 px)")
@pytest.mark.parametrize("name,params,macs", [("bignas_s", 4.5e6, 242e6), ("bignas_m", 5.5e6, 418e6),
                                               ("bignas_l", 6.4e6, 586e6), ("bignas_xl", 9.5e6, 1040e6)])
def test_named_children_have_table2_counts(name, params, macs):
    with torch.device("meta"):
        net = BigNASSupernet("paper")
        model = convzoo.create_model(name)
    cfg = NAMED_CHILDREN[name]
    n, m = _measure(net, cfg)
    assert count_params(model) == n
    assert abs(n - params) <= 0.05e6 and abs(m - macs) <= 0.5e6, (n, m)


@pytest.mark.claim(paper=56, artefact="bignas_supernet", pin=True,
                   claim="count_child (the search's MACs objective) equals FlopCounterMode and count_params of the "
                         "extracted child for random children")
@pytest.mark.parametrize("space", ["digits", "paper"])
def test_count_child_matches_flop_counter(space):
    with torch.device("meta"):
        net = BigNASSupernet(space)
    rng = random.Random(0)
    for _ in range(4):
        cfg = net.sample_child(rng)
        assert count_child(cfg, net.space) == _measure(net, cfg)


# --- BN calibration -----------------------------------------------------------------------------------------
@pytest.mark.claim(paper=56, artefact="bn_calibration",
                   claim="Sec. 3.1 BN calibration: running mean/var of every BN become the average over the "
                         "calibration batches of the batch mean and unbiased variance of that child's activations")
def test_bn_calibration_equals_data_statistics():
    torch.manual_seed(0)
    net = BigNASSupernet("digits", num_classes=10, in_chans=1)
    cfg = net.sample_child(random.Random(5))
    for m in net.modules():  # trained-looking BN affine parameters, non-zero residual branches
        if isinstance(m, ElasticBatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
    batches = [(torch.randn(16, 1, 32, 32) * 2 + 1, torch.zeros(16, dtype=torch.long)) for _ in range(3)]
    seen: dict[ElasticBatchNorm2d, list] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.setdefault(mod, []).append(args[0].detach()))
             for m in net.modules() if isinstance(m, ElasticBatchNorm2d)]
    calibrate_bn(net, cfg, batches)
    for h in hooks:
        h.remove()
    assert len(seen) > 10
    for m, xs in seen.items():
        assert len(xs) == 3
        c = xs[0].shape[1]
        mean = torch.stack([x.mean((0, 2, 3)) for x in xs]).mean(0)
        var = torch.stack([x.transpose(0, 1).reshape(c, -1).var(1, unbiased=True) for x in xs]).mean(0)
        torch.testing.assert_close(m.running_mean[:c], mean, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(m.running_var[:c], var, atol=1e-5, rtol=1e-5)
        assert int(m.num_batches_tracked) == 3 and m.momentum == 0.1 and m.track


# --- the method ------------------------------------------------------------------------------------------------
def _method(space=TINY, drop_rate=0.2, label_smoothing=0.1, weight_decay=1e-3):
    torch.manual_seed(0)
    net = BigNASSupernet(space, num_classes=5, in_chans=1, drop_rate=drop_rate)
    task = build_task("classification", label_smoothing=label_smoothing)
    method = build_method("bignas", net, task, None)
    opt_cfg = {"name": "sgd", "lr": 0.1, "weight_decay": weight_decay, "kwargs": {}, "param_groups": []}
    (opt,) = method.configure_optimizers(opt_cfg, lambda groups: torch.optim.SGD(groups, lr=0.1))
    method._optimizers = [opt]
    return method, net, opt


@pytest.mark.claim(paper=56, artefact="sandwich_inplace_distill",
                   claim="inplace distillation: the largest child's logits receive only the gradient of its own "
                         "label-smoothed CE (checked against the hand-written (softmax - q) / B): the children's "
                         "soft targets are detached")
def test_inplace_distillation_targets_are_detached():
    method, net, _ = _method(drop_rate=0.0)
    method.train()
    x, y = torch.randn(6, 1, 12, 12), torch.tensor([0, 1, 2, 3, 4, 0])
    grads, outs = [], []

    def keep(module, args, out):
        if not outs:  # the first pass is the largest child's
            out.register_hook(grads.append)
        outs.append(out)

    h = net.register_forward_hook(keep)
    parts = method((x, y))
    h.remove()
    parts["loss"].backward()
    assert len(outs) == 4 and len(grads) == 1
    z = outs[0].detach()
    q = F.one_hot(y, 5).double() * 0.9 + 0.1 / 5
    torch.testing.assert_close(grads[0].double(), (z.double().softmax(-1) - q) / 6, atol=1e-7, rtol=1e-6)


@pytest.mark.claim(paper=56, artefact="sandwich_inplace_distill",
                   claim="Sec. 3.1 regularization only on the largest child: dropout and BN tracking only in its pass; "
                         "weight decay as an explicit L2 term (optimizer decay 0) equal to sum wd/2 ||W||^2 over "
                         "the decayed (ndim > 1) weights")
def test_regularisation_only_on_the_largest_child():
    method, net, opt = _method(weight_decay=1e-3)
    flags = []
    h = net.register_forward_pre_hook(
        lambda mod, args: flags.append((mod.active, mod.regularize, mod.stem_bn.track)))
    method.train()
    parts = method((torch.randn(4, 1, 12, 12), torch.tensor([0, 1, 2, 3])))
    h.remove()
    assert [f[1:] for f in flags] == [(True, True), (False, False), (False, False), (False, False)]
    assert flags[0][0] == net.largest() and flags[1][0] == net.smallest()
    assert all(g["weight_decay"] == 0.0 for g in opt.param_groups)
    by_hand = sum(0.5 * 1e-3 * float(p.detach().pow(2).sum()) for p in net.parameters() if p.ndim > 1)
    assert float(parts["l2"]) == pytest.approx(by_hand, rel=1e-6)
    assert net.regularize and net.active == net.largest()  # left as the largest child


@pytest.mark.claim(paper=56, artefact="bignas_lr_schedule",
                   claim="Sec. 3.1 lr schedule: exponential decay with a constant ending at lr_floor x the initial lr "
                         "(engine exponential schedule per step + the method's floor), warm-up left alone")
@pytest.mark.filterwarnings("ignore:Detected call of")
def test_lr_decays_exponentially_to_a_constant_floor():
    from convzoo.engine.optim import Schedule

    method, _net, opt = _method()
    sched = Schedule(opt, {"name": "exponential", "kwargs": {"gamma": 0.5}, "warmup_epochs": 1,
                           "interval": "step"}, 20, 0.1, "max", steps_per_epoch=2)
    used = []
    for _ in range(12):
        method._hold_lr_floor()
        used.append(opt.param_groups[0]["lr"])
        sched.step_batch()
    # factor of step n: warm-up min(1, (n + 1) / 2), then 0.5 ** (n / 2); decaying from step 2 on
    expected = [0.1 * min(1.0, (n + 1) / 2) * 0.5 ** (n / 2) for n in range(12)]
    expected = [e if n < 2 else max(e, 0.05 * 0.1) for n, e in enumerate(expected)]
    assert used == pytest.approx(expected)
    assert used[-1] == pytest.approx(0.005) and used[8] > 0.005
    # a floor above the warm-up's first value does not lift the warm-up
    method, _net, opt = _method()
    method.lr_floor = 0.6
    sched = Schedule(opt, {"name": "exponential", "kwargs": {"gamma": 0.5}, "warmup_epochs": 1,
                           "interval": "step"}, 20, 0.1, "max", steps_per_epoch=2)
    used = []
    for _ in range(4):
        method._hold_lr_floor()
        used.append(opt.param_groups[0]["lr"])
        sched.step_batch()
    assert used == pytest.approx([0.05, 0.1 * 0.5 ** 0.5, 0.06, 0.06])


@pytest.mark.claim(paper=56, artefact="sandwich_inplace_distill",
                   claim="sandwich rule through convzoo.engine.train (digits, 1 epoch): per step exactly 4 forward "
                         "passes (largest, smallest, 2 random children) and one optimizer step")
def test_sandwich_rule_through_the_engine(tmp_path):
    from convzoo.engine.fit import train

    log = {"forwards": [], "steps": 0, "batches": 0}

    class Counter:
        def on_train_start(self, fabric, model, method, run_dir, recipe):
            method.model.register_forward_pre_hook(lambda mod, args: log["forwards"].append(mod.active))
            for opt in method.optimizers():
                getattr(opt, "optimizer", opt).register_step_post_hook(
                    lambda *a: log.__setitem__("steps", log["steps"] + 1))

        def on_train_batch_end(self, fabric, epoch, step, loss):
            log["batches"] += 1

    recipe = {"name": "bignas_tiny", "model": {"name": "bignas_supernet", "kwargs": {"space": TINY_MAPPING}},
              "data": {"name": "digits", "kwargs": {"size": 12}}, "task": {"name": "classification"},
              "method": {"name": "bignas", "kwargs": {"seed": 3}},
              "optimizer": {"name": "sgd", "lr": 0.05, "weight_decay": 1e-4, "kwargs": {"momentum": 0.9}},
              "schedule": {"name": "exponential", "interval": "step", "kwargs": {"gamma": 0.9}},
              "epochs": 1, "batch_size": 128, "eval_batch_size": 360}
    result = train(recipe, out_dir=tmp_path, run_name="r", progress=False, callbacks=[Counter()])
    n = log["batches"]
    assert n == 1077 // 128 and log["steps"] == n
    train_forwards = log["forwards"][:4 * n]
    net_space = BigNASSupernet(TINY_MAPPING)
    for i in range(n):
        step = train_forwards[4 * i: 4 * i + 4]
        assert step[0] == net_space.largest() and step[1] == net_space.smallest()
    assert all(f == net_space.largest() for f in log["forwards"][4 * n:])  # validation and test: the largest
    assert {"train_max", "train_min", "train_rand", "train_l2"} <= set(result.history[0])
    assert (result.run_dir / "last.safetensors").is_file() and 0.0 <= result.metrics["acc"] <= 1.0


# --- selection tools ---------------------------------------------------------------------------------------------
def _tiny_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 5, (n,), generator=g)
    x = torch.randn(n, 1, 12, 12, generator=g) + y[:, None, None, None].float()
    return torch.utils.data.TensorDataset(x, y)


@pytest.mark.claim(paper=56, artefact="coarse_to_fine_selection",
                   claim="Sec. 3.2 coarse-to-fine selection returns the most accurate evaluated child under the "
                         "MACs target, after a coarse skeleton grid and fine mutations")
def test_coarse_to_fine_respects_the_target():
    torch.manual_seed(0)
    net = BigNASSupernet(TINY, num_classes=5, in_chans=1)
    dl = torch.utils.data.DataLoader(_tiny_data(), batch_size=32)
    budget = (count_child(net.smallest(), TINY, 5, 1)[1] + count_child(net.largest(), TINY, 5, 1)[1]) / 2
    sel = coarse_to_fine(net, dl, dl, budget, n_mutations=4)
    stages = {h["stage"] for h in sel.history}
    assert stages == {"coarse", "fine"} or stages == {"coarse"}
    assert all(h["macs"] <= budget for h in sel.history)
    assert sel.acc == max(h["acc"] for h in sel.history) and sel.macs <= budget
    assert evaluate_child(net, sel.config, dl, dl) == pytest.approx(sel.acc)


@pytest.mark.claim(paper=56, artefact="bignas_pareto_search",
                   claim="optuna NSGA-II search writes trials.csv, pareto.md and pareto.png; the reported front is "
                         "exactly the non-dominated set of the evaluated trials (acc vs MACs; acc vs latency runs)")
def test_search_front_is_non_dominated(tmp_path):
    torch.manual_seed(0)
    net = BigNASSupernet(TINY, num_classes=5, in_chans=1)
    res = search(net, data=(_tiny_data(seed=1), _tiny_data(seed=2)), n_trials=8, out_dir=tmp_path, batch_size=32)
    assert {p.name for p in tmp_path.iterdir()} >= {"trials.csv", "pareto.md", "pareto.png"}
    assert len(res.trials) == 8 and res.trials[0]["config"] == net.largest().to_dict()

    def dominated(t):
        return any(o["acc"] >= t["acc"] and o["macs"] <= t["macs"] and (o["acc"], o["macs"]) != (t["acc"], t["macs"])
                   for o in res.trials)

    assert {t["trial"] for t in res.front} == {t["trial"] for t in res.trials if not dominated(t)}
    assert ChildConfig.from_dict(res.front[0]["config"]) in {ChildConfig.from_dict(t["config"]) for t in res.trials}
    lat = search(net, data=(_tiny_data(seed=1), _tiny_data(seed=2)), n_trials=3, objectives=("acc", "latency"),
                 out_dir=tmp_path / "latency", batch_size=32)
    assert all(t["latency_ms"] > 0 for t in lat.trials) and lat.front
    assert [t["latency_ms"] for t in lat.front] == sorted(t["latency_ms"] for t in lat.front)


def test_sample_child_is_seeded_and_inside_the_space():
    net = BigNASSupernet("digits", num_classes=10, in_chans=1)
    a = [net.sample_child(random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = random.Random(0)
    for _ in range(20):
        net.set_active(net.sample_child(rng))  # raises outside the space
    with pytest.raises(convzoo.ConvzooError):
        net.set_active(dataclasses.replace(net.largest(), resolution=20))
    assert resize_to(torch.zeros(1, 1, 32, 32), 16).shape == (1, 1, 16, 16)


# --- timm's arguments (issue 9) -------------------------------------------------------------------------------

@pytest.mark.claim(paper=56, artefact="bignas_s", claim="features_only: the last block at each resolution, strides 2-32 as timm's EfficientNet; supernet levels follow the active child")
def test_feature_levels_of_children_and_supernet():
    x = torch.randn(1, 3, 64, 64)
    for name in ("bignas_s", "bignas_m", "bignas_l", "bignas_xl", "bignas_supernet"):
        cfg = NAMED_CHILDREN.get(name)
        net = convzoo.create_model(name, features_only=True).eval()
        assert net.feature_info.reduction() == [2, 4, 8, 16, 32]  # Table 1: stem /2, stage strides 1-2-2-2-1-2-1
        if cfg is not None:  # the widths of stages 1, 2, 3, 5, 7 (the last one at each resolution)
            assert net.feature_info.channels() == [cfg.widths[i] for i in (0, 1, 2, 4, 6)]
        with torch.no_grad():
            maps = net(x)
        assert [m.shape[1] for m in maps] == net.feature_info.channels()
        assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 2]
    supernet = convzoo.create_model("bignas_supernet", num_classes=0)
    supernet.set_active(supernet.smallest())
    assert [f["num_chs"] for f in supernet.feature_info] == [16, 24, 40, 112, 320]  # Table 1's smallest widths


@pytest.mark.claim(paper=56, artefact="bignas_m", claim="drop_path_rate: EfficientNet's drop connect, rate * i / n per block on residual blocks; global_pool and per-block gradient checkpointing")
def test_drop_path_global_pool_and_grad_checkpointing():
    cfg = NAMED_CHILDREN["bignas_m"]
    child = convzoo.create_model("bignas_m", num_classes=10, drop_path_rate=0.2)
    n = sum(cfg.depths)
    rates = [getattr(b.drop_path, "p", 0.0) for b in child.blocks]
    assert rates == pytest.approx([0.2 * i / n if b.residual else 0.0 for i, b in enumerate(child.blocks)])
    x = torch.randn(2, 3, 32, 32)
    for pool in ("avg", "max", "avgmax", "catavgmax", ""):
        net = convzoo.create_model("bignas_m", num_classes=10, global_pool=pool).eval()
        assert net(x).shape == ((2, 10, 1, 1) if pool == "" else (2, 10))
    with pytest.raises(convzoo.ConvzooError, match="catavgmax"):
        convzoo.create_model("bignas_supernet", global_pool="catavgmax")
    torch.manual_seed(0)
    net = convzoo.create_model("bignas_s", num_classes=5)
    net(x).sum().backward()
    plain = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.set_grad_checkpointing()
    net(x).sum().backward()
    for a, p in zip(plain, net.parameters()):
        torch.testing.assert_close(p.grad, a)
