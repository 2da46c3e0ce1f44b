"""Paper 20 (RotNet, arXiv 1803.07728): the NIN / AlexNet backbones against the official layer lists, the
rotation pretext task against the official data loader's order and rotation sense, the frozen-feature
probe (only the head learns; the backbone and its BN statistics stay bit-identical), the K-labels-per-class
data option, and a CPU-scale proof on real digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convzoo
from convzoo.data import build_dataset
from convzoo.data.subset import k_per_class
from convzoo.engine import evaluate, load_recipe, load_run, train
from convzoo.errors import ConvzooError
from convzoo.methods import build_method
from convzoo.registry import count_params
from convzoo.tasks import build_task
from convzoo.tasks.rotation import rotation_batch

pytestmark = pytest.mark.paper(20)

# The issue's counts (4-way head), checked below against a closed form of the official layer lists.
ISSUE_PARAMS = {"rotnet_nin3": 1_004_484, "rotnet_nin4": 1_411_140, "rotnet_nin5": 1_817_796,
                "rotnet_alexnet": 57_030_724}


# --- closed forms of the official architectures (architectures/NetworkInNetwork.py, AlexNet.py) ----------
def _conv_bn(cin, cout, k, bias=False):
    """(params, MACs per output pixel) of conv(k x k) [+ bias] + BatchNorm(cout)."""
    return k * k * cin * cout + (cout if bias else 0) + 2 * cout, k * k * cin * cout


def nin_closed_form(blocks: int, size: int = 32, classes: int = 4) -> tuple[int, int]:
    """Official NetworkInNetwork(num_stages=blocks, use_avg_on_conv3=False): bias-free convs + BN;
    block 1 5x5->192, 1x1->160, 1x1->96 + maxpool/2; block 2 5x5->192, 1x1->192, 1x1->192 + avgpool/2;
    blocks 3.. 3x3->192, 1x1->192, 1x1->192; Linear(192, classes)."""
    layers = [[(3, 192, 5), (192, 160, 1), (160, 96, 1)], [(96, 192, 5), (192, 192, 1), (192, 192, 1)]]
    layers += [[(192, 192, 3), (192, 192, 1), (192, 192, 1)]] * (blocks - 2)
    params, macs, side = 192 * classes + classes, 192 * classes, size
    for b, block in enumerate(layers, start=1):
        for cin, cout, k in block:
            p, m = _conv_bn(cin, cout, k)
            params, macs = params + p, macs + m * side * side
        side = side // 2 if b <= 2 else side  # pools of blocks 1 and 2 (3x3, stride 2, pad 1)
    return params, macs


def alexnet_closed_form(classes: int = 4) -> tuple[int, int]:
    """Official AlexNet: conv(+bias)+BN 64-11/4 (55 px), 192-5 (27), 384-3, 256-3, 256-3 (13); fc 9216->4096
    (no bias)+BN1d, 4096->4096 (no bias)+BN1d, Linear(4096, classes)."""
    convs = [(3, 64, 11, 55), (64, 192, 5, 27), (192, 384, 3, 13), (384, 256, 3, 13), (256, 256, 3, 13)]
    params = macs = 0
    for cin, cout, k, side in convs:
        p, m = _conv_bn(cin, cout, k, bias=True)
        params, macs = params + p, macs + m * side * side
    for fin, fout in [(256 * 6 * 6, 4096), (4096, 4096)]:
        params, macs = params + fin * fout + 2 * fout, macs + fin * fout
    return params + 4096 * classes + classes, macs + 4096 * classes


def _macs(model, size: int) -> int:
    """FlopCounterMode multiply-adds of ``model`` on one size x size image, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.to("meta").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, 3, size, size, device="meta"))
    return counter.get_total_flops() // 2


@pytest.mark.claim(paper=20, artefact="rotnet_nin3", claim="1,004,484 params (issue; closed form of the official "
                   "NetworkInNetwork layer list, 4-way head) and 224.7M MACs at 32 px")
@pytest.mark.claim(paper=20, artefact="rotnet_nin4", claim="1,411,140 params (issue; closed form of the official "
                   "NetworkInNetwork layer list, 4-way head) and 250.7M MACs at 32 px")
@pytest.mark.claim(paper=20, artefact="rotnet_nin5", claim="1,817,796 params (issue; closed form of the official "
                   "NetworkInNetwork layer list, 4-way head) and 276.6M MACs at 32 px")
@pytest.mark.parametrize("name,blocks", [("rotnet_nin3", 3), ("rotnet_nin4", 4), ("rotnet_nin5", 5)])
def test_nin_counts_match_official_layer_list(name, blocks):
    params, macs = nin_closed_form(blocks)
    card = convzoo.get_card(name)
    model = convzoo.create_model(name)
    assert count_params(model) == params == ISSUE_PARAMS[name] == card.params
    assert _macs(model, 32) == macs == card.macs and card.macs_rtol == 0.0 and card.input_size == (32, 32)


@pytest.mark.claim(paper=20, artefact="rotnet_alexnet", claim="57,030,724 params (issue; closed form of the official "
                   "AlexNet with BN, 4-way head) and 710.1M MACs at 224 px")
def test_alexnet_counts_match_official_layer_list():
    params, macs = alexnet_closed_form()
    with torch.device("meta"):
        model = convzoo.create_model("rotnet_alexnet")
    card = convzoo.get_card("rotnet_alexnet")
    assert count_params(model) == params == ISSUE_PARAMS["rotnet_alexnet"] == card.params
    assert _macs(model, 224) == macs == card.macs and card.macs_rtol == 0.0


@pytest.mark.claim(paper=20, artefact="rotnet_nin4", claim="block outputs for probing: ConvB1 96x16x16, ConvB2..4 "
                   "192x8x8 at 32 px (official use_avg_on_conv3=False); forward_blocks stops after the last asked")
def test_nin_block_outputs():
    model = convzoo.create_model("rotnet_nin4").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.features(x)
        assert [tuple(f.shape[1:]) for f in feats] == [(96, 16, 16)] + [(192, 8, 8)] * 3
        two, one = model.forward_blocks(x, [2, 1])
        assert torch.equal(two, feats[1]) and torch.equal(one, feats[0])
        ran = []
        hook = model.blocks[2].register_forward_hook(lambda *a: ran.append(3))
        model.forward_blocks(x, [2])
        hook.remove()
        assert ran == []  # blocks after the asked one do not run
        assert torch.equal(model.forward_head(model.forward_features(x)), model(x))
    pooled = convzoo.create_model("rotnet_nin4", pool_block3=True).eval()
    assert pooled.features(x)[2].shape[-1] == 4  # the official optional pool after block 3
    with pytest.raises(ConvzooError, match="numbered 1..4"):
        model.forward_blocks(x, [5])
    alex = convzoo.create_model("rotnet_alexnet").eval()
    with torch.no_grad():
        sides = [f.shape[-1] for f in alex.features(torch.randn(1, 3, 224, 224))]
    assert sides == [55, 27, 13, 13, 13]  # the official conv1..conv5 maps


# --- the rotation task --------------------------------------------------------------------------------
def official_rotate_img(img: np.ndarray, rot: int) -> np.ndarray:
    """dataloader.py's rotate_img on an (H, W, C) array, written out from its transposes and flips."""
    if rot == 0:
        return img
    if rot == 90:
        return np.flipud(np.transpose(img, (1, 0, 2)))
    if rot == 180:
        return np.fliplr(np.flipud(img))
    return np.transpose(np.flipud(img), (1, 0, 2))  # 270


@pytest.mark.claim(paper=20, artefact="rotation", claim="collate = the official loader: per image its 0/90/180/270 "
                   "copies (rotate_img's sense) with labels 0,1,2,3, image after image, all in one 4B batch")
def test_collate_matches_official_order_and_sense():
    g = torch.Generator().manual_seed(0)
    items = [(torch.randn(3, 5, 5, generator=g), label) for label in (7, 1, 4)]  # (C, H, W), labels ignored
    batch = build_task("rotation").collate(items)
    expected_x, expected_y = [], []
    for img, _ in items:  # official _load_function + _collate_fun: stack 4 per image, then view(B*4, ...)
        hwc = img.permute(1, 2, 0).numpy()
        for label, angle in enumerate((0, 90, 180, 270)):
            expected_x.append(torch.from_numpy(official_rotate_img(hwc, angle).copy()).permute(2, 0, 1))
            expected_y.append(label)
    assert torch.equal(batch["images"], torch.stack(expected_x))
    assert batch["rotations"].tolist() == expected_y == [0, 1, 2, 3] * 3
    # 90 degrees is counter-clockwise as displayed: the top-right pixel moves to the top-left
    img = torch.arange(4.0).reshape(1, 1, 2, 2)  # [[0, 1], [2, 3]]
    assert rotation_batch(img)[0][1, 0].tolist() == [[1.0, 3.0], [0.0, 2.0]]


def test_rotation_task_contract():
    task = build_task("rotation")
    x = torch.randn(2, 1, 6, 6)
    rotated, _ = rotation_batch(x)
    assert rotated.shape == (8, 1, 6, 6) and not torch.equal(rotated[0], rotated[2])
    turned = x
    for _ in range(4):
        turned = rotation_batch(turned)[0][1::4]  # the 90-degree copies, four times over: the identity
    assert torch.equal(turned, x) and torch.equal(rotated[2::4], rotation_batch(rotated[1::4])[0][1::4])
    model = convzoo.create_model("rotnet_nin3", in_chans=1, width=0.125).eval()
    out_collated, y1 = task.forward(model, task.collate([(img, 0) for img in x]))
    out_plain, y2 = task.forward(model, (x, torch.tensor([3, 9])))  # a pair that bypassed collate
    assert torch.equal(out_collated, out_plain) and torch.equal(y1, y2) and out_plain.shape == (8, 4)
    preds = task.predict(model, rotated[:4])
    assert [set(p) >= {"rotation", "score", "upright_turn"} for p in preds] == [True] * 4
    with pytest.raises(ConvzooError, match="square"):
        rotation_batch(torch.randn(1, 1, 4, 6))


# --- the frozen probe -------------------------------------------------------------------------------------
class _Info:
    name, task, in_chans, num_classes, class_names, input_size, extra = "t", "classification", 1, 10, (), (16, 16), {}


def _tiny_pretext(path):
    torch.manual_seed(1)
    pre = convzoo.create_model("rotnet_nin4", in_chans=1, width=0.125)
    from convzoo.testing import randomise_bn

    randomise_bn(pre)
    return convzoo.save_weights(pre, path), pre


@pytest.mark.claim(paper=20, artefact="frozen_probe", claim="only the probe head learns: backbone weights and BN "
                   "statistics stay bit-identical (eval mode, no grad), param_groups hold only the head, the export "
                   "predicts the 10 classes")
@pytest.mark.parametrize("classifier", ["nonlinear", "conv", "linear"])
def test_probe_trains_only_the_head(tmp_path, classifier):
    path, pre = _tiny_pretext(tmp_path / "pre.safetensors")
    task = build_task("classification")
    model = convzoo.create_model("rotnet_nin4", in_chans=1, num_classes=10, width=0.125)
    method = build_method("frozen_probe", model, task, _Info(), pretext=str(path), block=2, classifier=classifier,
                          hidden=16)
    opt_cfg = {"lr": 0.1, "weight_decay": 5e-4, "param_groups": []}
    groups = method.param_groups(opt_cfg)
    head_ids = {id(p) for p in method.model.head.parameters()}
    assert {id(p) for g in groups for p in g["params"]} == head_ids
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    method.train()
    x, y = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    head_before = [p.detach().clone() for p in method.model.head.parameters()]
    for _ in range(3):
        loss = method((x, y))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    backbone = method.model.backbone
    assert not backbone.training and method.model.head.training
    expected = {k: v for k, v in pre.state_dict().items() if not k.startswith("head.")}
    got = backbone.state_dict()
    assert set(got) == set(expected)
    assert all(torch.equal(got[k], expected[k]) for k in expected)  # weights, running stats, num_batches_tracked
    assert all(p.grad is None for p in backbone.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(head_before, method.model.head.parameters()))
    net = method.export_model().eval()
    assert net(x).shape == (8, 10)


@pytest.mark.claim(paper=20, artefact="frozen_probe", claim="pretext run -> probe run through convzoo.engine.train: "
                   "the probe's weights hold the pretext backbone unchanged; evaluate and load_run of the probe run "
                   "need no pretext")
def test_frozen_probe_through_the_engine(tmp_path):
    small = ["model.kwargs.width=0.0625", "data.kwargs.size=8", "epochs=1", "batch_size=64", "eval_batch_size=360"]
    pre = train("rotnet_nin4_digits", overrides=small, out_dir=tmp_path, run_name="pre", progress=False)
    assert 0.0 <= pre.metrics["acc"] <= 1.0
    probe = train("rotnet_probe_digits", overrides=[*small, f"method.kwargs.pretext={tmp_path / 'pre'}"],
                  out_dir=tmp_path, run_name="probe", progress=False)
    from convzoo.weights import read_state

    pre_w, probe_w = read_state(tmp_path / "pre" / "last.safetensors"), read_state(tmp_path / "probe" / "last.safetensors")
    backbone = {k.removeprefix("backbone."): v for k, v in probe_w.items() if k.startswith("backbone.")}
    assert backbone and all(torch.equal(v, pre_w[k]) for k, v in backbone.items())
    assert set(pre_w) - set(backbone) == {"head.fc.weight", "head.fc.bias"}  # only the rotation head is left out
    (tmp_path / "pre" / "last.safetensors").unlink()  # the probe run stands alone now
    again = evaluate(tmp_path / "probe")
    assert again["acc"] == pytest.approx(probe.metrics["acc"], abs=1e-6)
    model, cfg, _, _ = load_run(tmp_path / "probe")
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10) and cfg["method"]["name"] == "frozen_probe"
    # a run-name prefix resolves to the newest matching run; a missing one is a one-line error
    with pytest.raises(ConvzooError, match="pretext run not found"):
        train("rotnet_probe_digits", overrides=[*small, f"method.kwargs.pretext={tmp_path / 'nothing'}"],
              out_dir=tmp_path, run_name="bad", progress=False)


def test_probe_finetune_trains_the_backbone_too(tmp_path):
    """Table 2's fine-tuned rows: ``finetune: true`` optimises the backbone and keeps it in train mode."""
    path, _ = _tiny_pretext(tmp_path / "pre.safetensors")
    model = convzoo.create_model("rotnet_nin4", in_chans=1, num_classes=10, width=0.125)
    method = build_method("frozen_probe", model, build_task("classification"), _Info(), pretext=str(path),
                          classifier="conv", hidden=8, finetune=True).train()
    groups = method.param_groups({"lr": 0.1, "weight_decay": 0.0, "param_groups": []})
    assert sum(p.numel() for g in groups for p in g["params"]) == count_params(method.model)
    assert method.model.backbone.training
    method.load_pretext()
    method((torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,))))["loss"].backward()
    assert method.model.backbone.blocks[0].conv1.conv.weight.grad is not None


def test_probe_rejects_mismatched_pretext(tmp_path):
    path, _ = _tiny_pretext(tmp_path / "pre.safetensors")
    model = convzoo.create_model("rotnet_nin4", in_chans=1, num_classes=10, width=0.25)  # another width
    method = build_method("frozen_probe", model, build_task("classification"), _Info(), pretext=str(path))
    with pytest.raises(ConvzooError, match="do not fit the probe's backbone"):
        method.load_pretext()
    with pytest.raises(ConvzooError, match="block must be in 1..4"):
        build_method("frozen_probe", convzoo.create_model("rotnet_nin4", in_chans=1, width=0.25),
                     build_task("classification"), _Info(), block=5)


# --- K labelled examples per class ------------------------------------------------------------------------
@pytest.mark.claim(paper=20, artefact="few_labels", claim="semi-supervised setting: exactly K labelled training "
                   "examples per class (default the first K, as the official num_imgs_per_cat; or seeded), val/test whole")
def test_few_labels_keeps_k_per_class():
    full = build_dataset("digits", "train", size=8)
    sub = build_dataset("few_labels", "train", of="digits", labels_per_class=5, size=8)
    labels = np.asarray(full.targets)
    assert len(sub) == 50 and np.bincount(np.asarray(sub.targets)).tolist() == [5] * 10
    first = sorted(i for c in range(10) for i in np.flatnonzero(labels == c)[:5])  # official: first K per class
    assert list(sub.indices) == first and torch.equal(sub[0][0], full[first[0]][0])
    a, b = k_per_class(labels, 5, seed=3), k_per_class(labels, 5, seed=3)
    assert np.array_equal(a, b) and not np.array_equal(a, k_per_class(labels, 5, seed=4))
    assert len(build_dataset("few_labels", "test", of="digits", labels_per_class=5, size=8)) == 360
    assert sub.info.num_classes == 10 and sub.info.extra["labels_per_class"] == 5
    with pytest.raises(ConvzooError, match="fewer than labels_per_class"):
        build_dataset("few_labels", "train", of="digits", labels_per_class=500, size=8)


# --- recipes ---------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=20, artefact="rotnet_nin4_cifar10_paper", claim="the official optimiser of "
                   "config/CIFAR10_RotNet_NIN4blocks.py (SGD lr 0.1, momentum 0.9, nesterov, wd 5e-4, batch 128) "
                   "with the paper's 100 epochs, x0.2 at 30/60/80")
@pytest.mark.claim(paper=20, artefact="rotnet_probe_cifar10_paper", claim="the official config/CIFAR10_MultLayer"
                   "Classifier_on_RotNet_NIN4blocks_Conv2_feats.py: frozen conv2 + MultLayer, SGD 0.1 nesterov, "
                   "50 epochs x0.2 at 20/40/45")
def test_paper_recipes_follow_the_official_configs():
    pre, probe = load_recipe("rotnet_nin4_cifar10_paper"), load_recipe("rotnet_probe_cifar10_paper")
    for cfg in (pre, probe):
        opt = cfg["optimizer"]
        assert (opt["name"], opt["lr"], opt["weight_decay"], cfg["batch_size"]) == ("sgd", 0.1, 5e-4, 128)
        assert opt["kwargs"] == {"momentum": 0.9, "nesterov": True} and opt["decay_1d"]
        assert cfg["model"]["name"] == "rotnet_nin4" and cfg["data"]["kwargs"]["augment"] == "crop_flip"
    assert pre["task"]["name"] == "rotation" and pre["epochs"] == 100
    assert pre["schedule"]["kwargs"] == {"milestones": [30, 60, 80], "gamma": 0.2}
    assert probe["method"]["name"] == "frozen_probe" and probe["epochs"] == 50
    assert probe["method"]["kwargs"]["block"] == 2 and probe["method"]["kwargs"]["classifier"] == "nonlinear"
    assert probe["schedule"]["kwargs"] == {"milestones": [20, 40, 45], "gamma": 0.2}


# --- CPU-scale proof on real digits -------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.claim(paper=20, artefact="rotnet_nin4_digits", claim="the rotation pretext learns on real digits: >= 90% "
                   "rotation accuracy on the held-out digits (chance 25%)")
@pytest.mark.claim(paper=20, artefact="rotnet_probe_digits", claim="frozen RotNet block-2 features beat the same "
                   "probe on a randomly initialised NIN by >= 10 points (linear probe on globally max-pooled features)")
def test_rotnet_learns_features_on_digits(tmp_path):
    """The recipes at 8 px (the digits' own grid: a quarter of the 16-px cost) and 10 pretext epochs. The probe is
    the official linear classifier with a 1x1 adaptive max-pool: it asks whether block 2's channels encode the
    digit wherever it is. (Spatially resolved probes reach ~95% even on random NIN features of digits, which a
    linear classifier separates from raw pixels: no room for a 10-point gap there.)"""
    cheap = ["data.kwargs.size=8", "data.eval_split=null"]
    pre = train("rotnet_nin4_digits", overrides=[*cheap, "epochs=10"], out_dir=tmp_path, run_name="pre",
                progress=False)
    assert pre.metrics["acc"] >= 0.90, pre.metrics  # measured 0.942
    probe = [*cheap, "epochs=8", "method.kwargs.classifier=linear", "method.kwargs.pool_size=1"]
    rotnet = train("rotnet_probe_digits", overrides=[*probe, f"method.kwargs.pretext={tmp_path / 'pre'}"],
                   out_dir=tmp_path, run_name="rotnet", progress=False)
    random = train("rotnet_probe_digits", overrides=[*probe, "method.kwargs.pretext=null"], out_dir=tmp_path,
                   run_name="random", progress=False)
    print(f"rotation acc {pre.metrics['acc']:.4f}; probe acc {rotnet.metrics['acc']:.4f}, random-init probe acc "
          f"{random.metrics['acc']:.4f}")
    assert rotnet.metrics["acc"] - random.metrics["acc"] >= 0.10, (rotnet.metrics, random.metrics)  # 0.872 vs 0.672
