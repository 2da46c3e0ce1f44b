"""RepLKNet (CVPR 2022, arXiv 2203.06717), the preliminary version of seed paper 11.

Counts and MACs of the full-size variants are taken on the meta device; everything that runs a
31x31 depth-wise conv uses a few channels and 32-64 px inputs (the conv is slow on CPU).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.errors import ConvzooError
from convzoo.models.replknet import ReparamLargeKernelConv, RepLKNet
from convzoo.registry import count_params
from convzoo.testing import randomise_bn

pytestmark = pytest.mark.paper(11)

# The official configurations, written from DingXiaoH/RepLKNet-pytorch replknet.py (create_RepLKNet31B /
# create_RepLKNet31L / create_RepLKNetXL) and paper Sec. 4.1 / Table 5: kernels, pairs per stage, widths, the
# parallel small kernel, depth-wise width ratio, FFN ratio. Written here, not imported, so that the closed-form
# counts below are independent of the module under test.
OFFICIAL = {
    "31b": {"large_kernel_sizes": (31, 29, 27, 13), "layers": (2, 2, 18, 2), "channels": (128, 256, 512, 1024),
            "small_kernel": 5, "dw_ratio": 1.0, "ffn_ratio": 4.0},
    "31l": {"large_kernel_sizes": (31, 29, 27, 13), "layers": (2, 2, 18, 2), "channels": (192, 384, 768, 1536),
            "small_kernel": 5, "dw_ratio": 1.0, "ffn_ratio": 4.0},
    "xl": {"large_kernel_sizes": (27, 27, 27, 13), "layers": (2, 2, 18, 2), "channels": (256, 512, 1024, 2048),
           "small_kernel": None, "dw_ratio": 1.5, "ffn_ratio": 4.0},
}
# official README.md "Results and Pre-trained Models" tables (ImageNet-1K / 22K / MegData-73M): "#params" in
# whole millions and "FLOPs" (multiply-adds) at the listed resolution
README = {"31b": {"params": 79, "flops": {224: 15.3e9, 384: 45.1e9}},
          "31l": {"params": 172, "flops": {384: 96.0e9}},
          "xl": {"params": 335, "flops": {320: 128.7e9}}}

# a narrow RepLKNet with the 31B kernel plan (31-29-27-13, small kernel 5)
TINY = {"large_kernel_sizes": (31, 29, 27, 13), "layers": (1, 1, 2, 1), "channels": (8, 8, 16, 16),
        "small_kernel": 5, "drop_path_rate": 0.0, "num_classes": 10}


def _meta(v: str, **kw) -> RepLKNet:
    with torch.device("meta"):
        return convzoo.create_model(f"replknet_{v}", **kw)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


# --- closed-form parameter count of the official layer list (replknet.py) -------------------------------

def _official_count(cfg: dict, deploy: bool, in_chans: int = 3, num_classes: int = 1000) -> int:
    def conv_bn(cin, cout, k, groups=1):  # conv without bias + BN (weight, bias)
        return cin // groups * cout * k * k + 2 * cout

    c, ks, small = cfg["channels"], cfg["large_kernel_sizes"], cfg["small_kernel"]
    n = conv_bn(in_chans, c[0], 3) + conv_bn(c[0], c[0], 3, c[0]) + conv_bn(c[0], c[0], 1) \
        + conv_bn(c[0], c[0], 3, c[0])
    for i, (ci, k, blocks) in enumerate(zip(c, ks, cfg["layers"])):
        d, h = int(ci * cfg["dw_ratio"]), int(ci * cfg["ffn_ratio"])
        if deploy:  # one K x K depth-wise conv with bias
            lk = d * k * k + d
        else:  # K x K conv-BN (+ k x k conv-BN)
            lk = conv_bn(d, d, k, d) + (conv_bn(d, d, small, d) if small else 0)
        replk = 2 * ci + conv_bn(ci, d, 1) + lk + conv_bn(d, ci, 1)
        ffn = 2 * ci + conv_bn(ci, h, 1) + conv_bn(h, ci, 1)
        n += blocks * (replk + ffn)
        if i < len(c) - 1:
            n += conv_bn(ci, c[i + 1], 1) + conv_bn(c[i + 1], c[i + 1], 3, c[i + 1])
    return n + 2 * c[-1] + c[-1] * num_classes + num_classes


@pytest.mark.claim(paper=11, artefact="replknet_31b",
                   claim="train-time and re-parameterised parameter counts equal a closed-form count of the official layer list; README '79M' = both truncated to whole millions")
@pytest.mark.claim(paper=11, artefact="replknet_31l",
                   claim="train-time and re-parameterised parameter counts equal a closed-form count of the official layer list; README '172M' truncated")
@pytest.mark.claim(paper=11, artefact="replknet_xl",
                   claim="train-time and re-parameterised parameter counts equal a closed-form count of the official layer list; README '335M' truncated")
@pytest.mark.parametrize("v", list(OFFICIAL))
def test_params_match_official_layer_list(v):
    merged = _meta(v)
    merged.structural_reparam()  # official small_kernel_merged structure (deploy=True also folds the conv-BN pairs)
    train, deploy = count_params(_meta(v)), count_params(merged)
    assert train == _official_count(OFFICIAL[v], False) == convzoo.get_card(f"replknet_{v}").params
    assert deploy == _official_count(OFFICIAL[v], True)
    # README "#params" (79M / 172M / 335M): whole millions, truncated (79.86M train / 79.53M deploy for 31B)
    assert train // 10**6 == deploy // 10**6 == README[v]["params"]


def _macs(model, size: int) -> int:
    with torch.device("meta"):
        x = torch.empty(1, 3, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    return counter.get_total_flops() // 2


@pytest.mark.claim(paper=11, artefact="replknet_31b",
                   claim="README FLOPs 15.3G @224 and 45.1G @384 are the re-parameterised structure's MACs (within 0.35 %; train-time > 0.5 % above)")
@pytest.mark.claim(paper=11, artefact="replknet_31l",
                   claim="README FLOPs 96.0G @384 = re-parameterised MACs (within 0.35 %)")
@pytest.mark.claim(paper=11, artefact="replknet_xl", claim="README FLOPs 128.7G @320 = MACs (within 0.35 %)")
@pytest.mark.parametrize("v, size", [("31b", 224), ("31b", 384), ("31l", 384), ("xl", 320)])
def test_readme_flops_are_deploy_macs(v, size):
    """README "FLOPs" = multiply-adds of the re-parameterised structure (within 0.35 %, 1 decimal)."""
    reported = README[v]["flops"][size]
    deploy = _macs(_meta(v, deploy=True), size)
    assert abs(deploy - reported) <= 0.0035 * reported, deploy
    if v == "31b":  # the train-time structure (with the 5x5 branches) is > 0.5 % above at both sizes
        assert _macs(_meta(v), size) - reported > 0.005 * reported


# --- the large-kernel conv and its re-parameterisation (paper Sec. 3, guideline 3) --------------------------

def _bn_scale_shift(bn):
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return s, bn.bias - bn.running_mean * s


@pytest.mark.claim(paper=11, artefact="ReparamLargeKernelConv",
                   claim="merged kernel = BN-folded large kernel + zero-padded BN-folded small kernel; zero padding is an identity")
@pytest.mark.parametrize("k_large, k_small", [(31, 5), (13, 5), (7, 3), (5, 5)])
def test_merged_kernel_is_large_plus_zero_padded_small(k_large, k_small):
    torch.manual_seed(0)
    conv = randomise_bn(ReparamLargeKernelConv(3, 3, k_large, k_small)).eval()
    s_l, t_l = _bn_scale_shift(conv.lkb_origin.bn)
    s_s, t_s = _bn_scale_shift(conv.small_conv.bn)
    w_small = conv.small_conv.conv.weight * s_s.view(-1, 1, 1, 1)
    p = (k_large - k_small) // 2
    expected = (conv.lkb_origin.conv.weight * s_l.view(-1, 1, 1, 1)).detach().clone()
    expected[:, :, p:p + k_small, p:p + k_small] += w_small.detach()
    conv.reparameterize()
    torch.testing.assert_close(conv.lkb_reparam.weight, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(conv.lkb_reparam.bias, (t_l + t_s).detach(), atol=1e-6, rtol=1e-6)
    # zero padding is an identity: a k x k kernel = its K x K zero-padded copy with padding K // 2
    x = torch.randn(1, 3, 17, 19)
    padded = F.pad(w_small, [p] * 4)
    assert padded.shape[-2:] == (k_large, k_large)
    torch.testing.assert_close(F.conv2d(x, w_small, padding=k_small // 2, groups=3),
                               F.conv2d(x, padded, padding=k_large // 2, groups=3), atol=1e-5, rtol=1e-5)


@pytest.mark.claim(paper=11, artefact="ReparamLargeKernelConv",
                   claim="re-parameterisation keeps outputs (random BN statistics, eval, relative error <= 1e-5) for K/k = 31/5, 29/5, 27/5, 13/5, 9/3, 13/5 stride 2, 27/none")
@pytest.mark.parametrize("k_large, k_small, stride", [(31, 5, 1), (29, 5, 1), (27, 5, 1), (13, 5, 1), (9, 3, 1),
                                                      (13, 5, 2), (27, None, 1)])
def test_reparam_keeps_outputs(k_large, k_small, stride):
    torch.manual_seed(0)
    conv = randomise_bn(ReparamLargeKernelConv(6, 6, k_large, k_small, stride=stride)).eval()
    x = torch.randn(2, 6, 40, 36)
    with torch.no_grad():
        ref = conv(x)
        conv.reparameterize()
        out = conv(x)
        conv.merge_kernel()  # official name; idempotent
        again = conv(x)
    assert conv.merged and not hasattr(conv, "lkb_origin") and not hasattr(conv, "small_conv")
    assert out.shape == ref.shape == (2, 6, -(-40 // stride), -(-36 // stride))
    assert _rel(ref, out) <= 1e-5 and torch.equal(out, again)


@pytest.mark.claim(paper=11, artefact="replknet_31b",
                   claim="narrow 31-29-27-13 model: deploy keeps outputs (rel <= 1e-5) and loads into the deploy=True structure; in_chans, features at strides 4/8/16/32, stage norms")
def test_narrow_model_deploy_keeps_outputs_and_loads_into_deploy_structure():
    torch.manual_seed(0)
    model = randomise_bn(RepLKNet(**TINY)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        merged = copy.deepcopy(model)
        merged.structural_reparam()  # large-kernel convs only: official deployed keys
        fused = convzoo.deploy(copy.deepcopy(model))  # + every conv-BN pair folded
        out_merged, out_fused = merged(x), fused(x)
    assert _rel(ref, out_merged) <= 1e-5 and _rel(ref, out_fused) <= 1e-5
    keys = set(merged.state_dict())
    assert not any("lkb_origin" in k or "small_conv" in k for k in keys)
    assert sum(k.endswith("large_kernel.lkb_reparam.weight") for k in keys) == sum(TINY["layers"])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.stem.modules())
    assert count_params(merged) == _official_count({**OFFICIAL["31b"], **TINY}, True, num_classes=10)
    # the deploy=True constructor holds exactly convzoo.deploy's tensors, and the official merged layout
    # (small_kernel_merged=True: conv-BN pairs unfolded) loads into it too, folded on load
    for state in (fused.state_dict(), merged.state_dict()):
        deployed = RepLKNet(**TINY, deploy=True).eval()
        deployed.load_state_dict(state, strict=True)
        assert count_params(deployed) == count_params(fused)
        with torch.no_grad():
            assert _rel(ref, deployed(x)) <= 1e-5


# --- official key names (replknet.py) ---------------------------------------------------------------------

def _official_keys(cfg: dict, deploy: bool) -> set[str]:
    bn = [f"bn.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    pre = lambda name: [f"{name}.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    conv_bn = lambda prefix: [f"{prefix}.conv.weight"] + [f"{prefix}.{b}" for b in bn]
    keys = [k for i in range(4) for k in conv_bn(f"stem.{i}")]
    for s, blocks in enumerate(cfg["layers"]):
        for j in range(blocks):
            lk, ffn = f"stages.{s}.blocks.{2 * j}", f"stages.{s}.blocks.{2 * j + 1}"
            keys += pre(f"{lk}.prelkb_bn") + conv_bn(f"{lk}.pw1") + conv_bn(f"{lk}.pw2")
            if deploy:
                keys += [f"{lk}.large_kernel.lkb_reparam.weight", f"{lk}.large_kernel.lkb_reparam.bias"]
            else:
                keys += conv_bn(f"{lk}.large_kernel.lkb_origin")
                keys += conv_bn(f"{lk}.large_kernel.small_conv") if cfg["small_kernel"] else []
            keys += pre(f"{ffn}.preffn_bn") + conv_bn(f"{ffn}.pw1") + conv_bn(f"{ffn}.pw2")
        if s < 3:
            keys += conv_bn(f"transitions.{s}.0") + conv_bn(f"transitions.{s}.1")
    return set(keys + pre("norm") + ["head.weight", "head.bias"])


@pytest.mark.claim(paper=11, artefact="replknet_31b",
                   claim="official state-dict key names (train-time and small_kernel_merged structures)")
@pytest.mark.claim(paper=11, artefact="replknet_xl",
                   claim="official state-dict key names (no small_conv, depth-wise width 1.5 C)")
@pytest.mark.parametrize("v, deploy", [("31b", False), ("31b", True), ("xl", False)])
def test_official_state_dict_keys(v, deploy):
    model = _meta(v)
    if deploy:  # the official small_kernel_merged structure; it loads into deploy=True (pairs folded on load)
        model.structural_reparam()
        _meta(v, deploy=True).load_state_dict(model.state_dict(), strict=True)
    ours = model.state_dict()
    assert set(ours) == _official_keys(OFFICIAL[v], deploy)
    assert ours["stages.0.blocks.0.large_kernel.lkb_reparam.weight" if deploy else
                "stages.0.blocks.0.large_kernel.lkb_origin.conv.weight"].shape[-1] == OFFICIAL[v]["large_kernel_sizes"][0]
    if v == "xl":  # depth-wise width 1.5 C, no small kernel
        assert ours["stages.0.blocks.0.pw1.conv.weight"].shape[:2] == (384, 256)


# --- backbone contract: in_chans, features, heads, options ---------------------------------------------------

@pytest.mark.claim(paper=11, artefact="replknet_31b",
                   claim="narrow 31-29-27-13 model: deploy keeps outputs (rel <= 1e-5) and loads into the deploy=True structure; in_chans, features at strides 4/8/16/32, stage norms")
def test_in_chans_features_and_stage_norms():
    torch.manual_seed(0)
    model = RepLKNet(**{**TINY, "num_classes": 7}, in_chans=1).eval()
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [(8, 4), (8, 8), (16, 16), (16, 32)]
    x = torch.randn(2, 1, 64, 48)
    with torch.no_grad():
        feats = model.features(x)
        assert model(x).shape == (2, 7)
        assert torch.equal(feats[-1], model.forward_features(x))
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 16, 12), (8, 8, 6), (16, 4, 3), (16, 2, 2)]
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape == (2, 16)
    # official XL downstream option: a BN on each stage output, applied in features only
    normed = randomise_bn(RepLKNet(**TINY, norm_intermediate_features=True)).eval()
    assert {f"stages.{i}.norm.weight" for i in range(4)} <= set(normed.state_dict())
    with torch.no_grad():
        h = normed.stem[3](normed.stem[2](normed.stem[1](normed.stem[0](x.expand(-1, 3, -1, -1)))))
        first = normed.features(x.expand(-1, 3, -1, -1))[0]
        torch.testing.assert_close(first, normed.stages[0].norm(normed.stages[0](h)))


@pytest.mark.claim(paper=11, artefact="replknet_31b",
                   claim="drop-path schedule shared by each RepLK/ConvFFN pair; gradient checkpointing changes no gradient")
def test_drop_path_schedule_is_shared_by_each_pair():
    model = _meta("31b", drop_path_rate=0.5)
    rates = [[getattr(b.drop_path, "p", 0.0) for b in s.blocks] for s in model.stages]
    flat = [r for s in rates for r in s[::2]]
    assert all(s[0::2] == s[1::2] for s in rates)  # RepLKBlock and its ConvFFN share the rate
    torch.testing.assert_close(torch.tensor(flat), torch.linspace(0, 0.5, 24))


@pytest.mark.claim(paper=11, artefact="replknet_31b",
                   claim="drop-path schedule shared by each RepLK/ConvFFN pair; gradient checkpointing changes no gradient")
def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = RepLKNet(**TINY).train()
    ckpt = copy.deepcopy(plain)
    for s in ckpt.stages:
        s.use_checkpoint = True
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for m in (plain, ckpt):
        m(x).pow(2).mean().backward()
        grads.append([p.grad for p in m.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_bad_arguments():
    for kw in ({"layers": (1, 1, 1)}, {"drop_path_rate": 1.0}, {"dw_ratio": 0}):
        with pytest.raises(ConvzooError):
            convzoo.create_model("replknet_31b", **kw)
    for args in ((4, 4, 30, 5), (4, 4, 31, 4), (4, 4, 5, 7)):
        with pytest.raises(ConvzooError):
            ReparamLargeKernelConv(*args)


@pytest.mark.claim(paper=11, artefact="replknet_31b_in1k",
                   claim="recipe validates and matches the official README command and main.py/optim_factory defaults (no decay on 1-D parameters and biases)")
def test_paper_recipe_loads_and_matches_the_official_command():
    from convzoo.engine import load_recipe
    from convzoo.engine.optim import param_groups

    r = load_recipe("replknet_31b_imagenet_paper")
    assert r["paper"] == 11 and r["name"] in convzoo.get_card(r["model"]["name"]).recipes
    opt = r["optimizer"]
    assert (opt["name"], opt["lr"], opt["weight_decay"], r["batch_size"] * r["accumulate"]) == ("adamw", 4e-3, 0.05, 8 * 64 * 4)
    assert (r["epochs"], r["schedule"]["warmup_epochs"], r["schedule"]["kwargs"]["eta_min"]) == (300, 10, 1e-6)
    assert (r["ema"], r["task"]["kwargs"]["label_smoothing"], r["model"]["kwargs"]["drop_path_rate"]) == \
        (0.9999, 0.1, 0.5)
    # official optim_factory: no weight decay on 1-D parameters and on names ending in ".bias"
    model = _meta("31b", **r["model"]["kwargs"])
    no_decay = {n for g in param_groups(model, opt) if g["weight_decay"] == 0 for n, p in model.named_parameters()
                if any(p is q for q in g["params"])}
    assert no_decay == {n for n, p in model.named_parameters() if p.ndim == 1 or n.endswith(".bias")}


# --- timm's arguments and preprocessing (issue 9) ----------------------------------------------------------

@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="deploy=True builds convzoo.deploy's structure: state dict key for key (all variants, meta), same outputs")
@pytest.mark.claim(paper=11, artefact="replknet_31l", claim="deploy=True builds convzoo.deploy's structure: state dict key for key (all variants, meta), same outputs")
@pytest.mark.claim(paper=11, artefact="replknet_xl", claim="deploy=True builds convzoo.deploy's structure: state dict key for key (all variants, meta), same outputs")
@pytest.mark.parametrize("v", list(OFFICIAL))
def test_deploy_true_is_the_deployed_structure(v):
    shapes = lambda m: {k: tuple(t.shape) for k, t in m.state_dict().items()}
    fused = convzoo.deploy(_meta(v))
    deployed = _meta(v, deploy=True)
    assert shapes(deployed) == shapes(fused)
    deployed.load_state_dict(fused.state_dict(), strict=True)
    # numbers on a narrow model with the variant's kernel plan, small kernel and depth-wise ratio
    cfg = {k: OFFICIAL[v][k] for k in ("large_kernel_sizes", "small_kernel", "dw_ratio")}
    narrow = {**cfg, "layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16), "num_classes": 10}
    torch.manual_seed(0)
    model = randomise_bn(RepLKNet(**narrow)).eval()
    x = torch.randn(2, 3, 32, 32)
    deployed = RepLKNet(**narrow, deploy=True).eval()
    with torch.no_grad():
        deployed.load_state_dict(convzoo.deploy(copy.deepcopy(model)).state_dict(), strict=True)
        assert _rel(model(x), deployed(x)) <= 1e-4


@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="drop_rate, global_pool (all timm values, after the final BN), set_grad_checkpointing = official use_checkpoint")
def test_drop_rate_global_pool_and_checkpointing():
    narrow = {**TINY, "layers": (1, 1, 1, 1)}
    x = torch.randn(2, 3, 32, 32)
    for pool in ("avg", "max", "avgmax", "catavgmax", ""):
        model = RepLKNet(**narrow, global_pool=pool, drop_rate=0.2).eval()
        with torch.no_grad():
            y = model(x)
            normed = model.norm(model.forward_features(x))
        pooled = {"avg": normed.mean((2, 3)), "max": normed.amax((2, 3)), "": None,
                  "avgmax": 0.5 * (normed.mean((2, 3)) + normed.amax((2, 3))),
                  "catavgmax": torch.cat([normed.mean((2, 3)), normed.amax((2, 3))], 1)}[pool]
        expected = (F.conv2d(normed, model.head.weight[:, :, None, None], model.head.bias) if pool == ""
                    else F.linear(pooled, model.head.weight, model.head.bias))
        torch.testing.assert_close(y, expected)
    model = convzoo.create_model("replknet_31b", **narrow)
    model.set_grad_checkpointing()
    assert model.grad_checkpointing and all(s.use_checkpoint for s in model.stages)


@pytest.mark.claim(paper=11, artefact="replknet_31b", claim="card preprocessing = official datasets.py eval transform and README mean/std")
def test_preprocessing_is_the_official_eval_transform():
    # official DingXiaoH/RepLKNet-pytorch datasets.py build_transform(is_train=False): BICUBIC; below 384 px
    # Resize(int(size / (224 / 256))) + CenterCrop, at 384 px a warp (crop 1.0); README "Evaluation": 31B/L use
    # IMAGENET_DEFAULT_MEAN/STD, XL mean = std = [0.5, 0.5, 0.5] (--imagenet_default_mean_and_std false)
    imagenet = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    expected = {"31b": (224, 0.875, imagenet), "31l": (384, 1.0, imagenet),
                "xl": (320, 0.875, {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)})}
    for v, (size, crop, stats) in expected.items():
        assert convzoo.data_config(f"replknet_{v}") == {"input_size": (3, size, size), "interpolation": "bicubic",
                                                         **stats, "crop_pct": crop,
                                                         "crop_mode": "squash" if size >= 384 else "center"}
