"""P3D (paper 49): counts against the official prototxt, block structure and cycling, 2-D -> P3D inflation against
torchvision/timm ResNets, the paper clip's shapes, ONNX of all three block types, recipes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convzoo.layers.p3d import Bottleneck2d, P3DBlock
from convzoo.models.p3d import (
    P3DResNet,
    inflate_2d_init,
    p3d_a_digits,
    p3d_a_digits_frame2d,
    p3d_a_resnet50,
    p3d_b_resnet50,
    p3d_c_resnet50,
    p3d_resnet199,
    set_temporal_identity_,
    set_temporal_zero_,
)
from convzoo.registry import count_params
from convzoo.testing import randomise_bn


def _meta(fn, **kw):
    with torch.device("meta"):
        return fn(**kw)


# --- counts -----------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=49, artefact="p3d_resnet199",
                   claim="66,670,503 parameters with the 487-class Sports-1M head and 66,492,240 with the 400-class "
                         "Kinetics head (official deploy prototxts, sheet G3)")
def test_p3d_resnet199_counts_equal_official_prototxt():
    assert count_params(_meta(p3d_resnet199, num_classes=487)) == 66_670_503
    assert count_params(_meta(p3d_resnet199, num_classes=400)) == 66_492_240


@pytest.mark.claim(paper=49, artefact="p3d_a_resnet50",
                   claim="count = torchvision ResNet-50 + one 3x1x1 T conv and its BN per res2-res4 block (closed form)")
@pytest.mark.claim(paper=49, artefact="p3d_b_resnet50",
                   claim="count = torchvision ResNet-50 + one 3x1x1 T conv and its BN per res2-res4 block (closed form)")
@pytest.mark.claim(paper=49, artefact="p3d_c_resnet50",
                   claim="count = torchvision ResNet-50 + one 3x1x1 T conv and its BN per res2-res4 block (closed form)")
def test_resnet50_variant_counts_closed_form():
    from torchvision.models import resnet50

    base = count_params(_meta(resnet50, num_classes=101))  # S convs = the 2-D 3x3s, the 1x1s, BN and FC unchanged
    temporal = sum(n * (3 * c * c + 2 * c) for n, c in ((3, 64), (4, 128), (6, 256)))  # 3 c^2 weights + BN gamma/beta
    for fn in (p3d_a_resnet50, p3d_b_resnet50, p3d_c_resnet50):
        assert count_params(_meta(fn, num_classes=101)) == base + temporal == 25_132_581 == fn.card.params


@pytest.mark.claim(paper=49, artefact="P3DBlock",
                   claim="S (1x3x3) + T (3x1x1) hold 9c^2 + 3c^2 weights against 27c^2 for a 3x3x3 conv")
def test_spatial_plus_temporal_weights():
    block = P3DBlock(64, 16, "A")
    c = 16
    assert block.conv2.weight.numel() == 9 * c * c and block.conv3.weight.numel() == 3 * c * c
    assert nn.Conv3d(c, c, 3, bias=False).weight.numel() == 27 * c * c


# --- structure ----------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=49, artefact="p3d_resnet199",
                   claim='block i of res2-res4 has type "ABC"[i % 3] (47 blocks, 4a is C); res5 is three 2-D '
                         "bottlenecks; 152 ResNet layers + 47 temporal convs = 199")
def test_p3d_resnet199_cycles_abc():
    model = _meta(p3d_resnet199, num_classes=487)
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3) for b in layer]
    assert len(blocks) == 47 and all(isinstance(b, P3DBlock) for b in blocks)
    assert [b.block_type for b in blocks] == ["ABC"[i % 3] for i in range(47)]
    assert model.layer3[0].block_type == "C" and model.layer2[1].block_type == "B"  # 4a, 3b
    assert len(model.layer4) == 3 and all(isinstance(b, Bottleneck2d) for b in model.layer4)
    convs = [m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Conv3d)) and "downsample" not in n]
    temporal = [m for m in convs if isinstance(m, nn.Conv3d) and tuple(m.kernel_size) == (3, 1, 1)]
    assert len(temporal) == 47 and len(convs) + 1 == 199  # + the FC


@pytest.mark.claim(paper=49, artefact="P3DBlock",
                   claim="A: T reads S's output; B: S and T read the same input and are summed; C: output = S + T(S)")
@pytest.mark.parametrize("kind", ["A", "B", "C"])
def test_block_graphs(kind):
    torch.manual_seed(0)
    block = P3DBlock(32, 8, kind).eval()
    randomise_bn(block)
    seen = {}
    block.conv2.register_forward_hook(lambda m, i, o: seen.__setitem__("s_in", i[0]))
    block.conv3.register_forward_hook(lambda m, i, o: seen.__setitem__("t_in", i[0]))
    block.relu.register_forward_hook(lambda m, i, o: seen.setdefault("relu_out", []).append(o.clone()))
    block.conv4.register_forward_hook(lambda m, i, o: seen.__setitem__("mid", i[0]))
    x = torch.randn(2, 32, 4, 6, 6)
    with torch.no_grad():
        block(x)
        s = block.spatial(seen["s_in"])  # relu(bn2(S(r)))
        if kind == "A":
            torch.testing.assert_close(seen["t_in"], s)
            torch.testing.assert_close(seen["mid"], block.temporal(s))
        elif kind == "B":
            assert torch.equal(seen["t_in"], seen["s_in"])
            torch.testing.assert_close(seen["mid"], s + block.temporal(seen["s_in"]))
        else:
            torch.testing.assert_close(seen["t_in"], s)
            torch.testing.assert_close(seen["mid"], s + block.temporal(s))


# --- inflation --------------------------------------------------------------------------------------------
def _copy_bottleneck(p3d: P3DBlock, ref) -> None:
    """torchvision Bottleneck (conv1/conv2/conv3, bn1-3) -> P3DBlock (conv1, S = conv2, conv4), kernels 1 x k x k."""
    with torch.no_grad():
        for dst, src in (("conv1", "conv1"), ("conv2", "conv2"), ("conv4", "conv3")):
            getattr(p3d, dst).weight.copy_(getattr(ref, src).weight.unsqueeze(2))
        for dst, src in (("bn1", "bn1"), ("bn2", "bn2"), ("bn4", "bn3")):
            getattr(p3d, dst).load_state_dict(getattr(ref, src).state_dict())


@pytest.mark.claim(paper=49, artefact="P3DBlock",
                   claim="with temporal identity weights P3D-A on a clip of identical frames equals the 2-D ResNet-50 "
                         "bottleneck (torchvision, weights copied) on each frame; B and C with a zero T branch too")
@pytest.mark.parametrize("kind", ["A", "B", "C"])
def test_still_clip_equals_2d_bottleneck(kind):
    from torchvision.models.resnet import Bottleneck

    torch.manual_seed(0)
    ref = Bottleneck(256, 64).eval()  # a res2 block of ResNet-50 (identity shortcut)
    randomise_bn(ref)
    block = P3DBlock(256, 64, kind).eval()
    _copy_bottleneck(block, ref)
    (set_temporal_identity_ if kind == "A" else set_temporal_zero_)(block.conv3, block.bn3)
    frame = torch.randn(2, 256, 8, 8)
    clip = frame[:, :, None].expand(2, 256, 4, 8, 8).contiguous()
    with torch.no_grad():
        want, got = ref(frame), block(clip)
    for t in range(4):
        torch.testing.assert_close(got[:, :, t], want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.claim(paper=49, artefact="inflate_2d_init",
                   claim="timm ResNet-50 weights inflated into P3D ResNet-50 (A everywhere, and A/B/C cycling with the "
                         "neutral T init) give timm's logits on every still clip")
def test_inflate_timm_resnet50():
    import timm

    torch.manual_seed(0)
    ref = timm.create_model("resnet50", pretrained=False).eval()
    randomise_bn(ref)
    frame = torch.randn(1, 3, 64, 64)
    clip = frame[:, :, None].expand(1, 3, 2, 64, 64).contiguous()
    with torch.no_grad():
        want = ref(frame)
        for types in ("A", "ABC"):
            model = P3DResNet((3, 4, 6, 3), types, num_classes=1000, stride_in="3x3").eval()
            inflate_2d_init(model, ref.state_dict(), temporal="neutral")
            got = model(clip)
            torch.testing.assert_close(got, want, atol=1e-4 * float(want.abs().max()), rtol=1e-4)
        # the paper's identity init everywhere: an A-only net keeps it exact, B and C blocks then add S twice
        model = P3DResNet((3, 4, 6, 3), "A", num_classes=1000, stride_in="3x3").eval()
        inflate_2d_init(model, ref.state_dict(), temporal="identity")
        torch.testing.assert_close(model(clip), want, atol=1e-4 * float(want.abs().max()), rtol=1e-4)
    block = model.layer2[0]
    assert torch.equal(block.conv3.weight[:, :, 1, 0, 0], torch.eye(128))
    assert torch.equal(block.conv2.weight[:, :, 0], ref.state_dict()["layer2.0.conv2.weight"])


def test_inflate_rejects_other_layouts():
    from torchvision.models import resnet18

    from convzoo.errors import ConvzooError

    with pytest.raises(ConvzooError, match="inflate_2d_init"):
        inflate_2d_init(P3DResNet((2, 2, 2, 2), "A", num_classes=10), resnet18().state_dict())


# --- shapes, official layout -----------------------------------------------------------------------------
@pytest.mark.claim(paper=49, artefact="p3d_resnet199",
                   claim="a 16 x 160 x 160 clip: T 16 -> 8 -> 4 -> 2 -> 1 and res5's map 2048 x 5 x 5 (sheet G3)")
def test_paper_clip_shapes():
    model = _meta(p3d_resnet199, num_classes=487)
    with torch.device("meta"):
        feats = model.features(torch.empty(1, 3, 16, 160, 160))
        logits = model(torch.empty(1, 3, 16, 160, 160))
    assert [tuple(f.shape) for f in feats] == [(1, 256, 8, 40, 40), (1, 512, 4, 20, 20), (1, 1024, 2, 10, 10),
                                               (1, 2048, 1, 5, 5)]
    assert tuple(logits.shape) == (1, 487)


def test_state_dict_keys_are_the_ports():
    """Key names and shapes of qijiezhao/pseudo-3d-pytorch p3d_model.py (conv1_custom, conv_S/conv_T as conv2/conv3,
    res5 conv_normal, fc); its 2-D res5 kernels (Conv2d there) load through remap_state_dict."""
    from convzoo.models.p3d import remap_state_dict

    model = P3DResNet((1, 1, 1, 1), "ABC", num_classes=5, width=8)
    sd = model.state_dict()
    want = {"conv1_custom.weight": (8, 3, 1, 7, 7), "layer1.0.conv2.weight": (8, 8, 1, 3, 3),
            "layer1.0.conv3.weight": (8, 8, 3, 1, 1), "layer2.0.conv1.weight": (16, 32, 1, 1, 1),
            "layer2.0.downsample.0.weight": (64, 32, 1, 1, 1), "layer4.0.conv_normal.weight": (64, 64, 1, 3, 3),
            "layer4.0.downsample.0.weight": (256, 128, 1, 1, 1), "fc.weight": (5, 256)}
    for k, shape in want.items():
        assert tuple(sd[k].shape) == shape, k
    # the port's file: DataParallel prefix, res5 as Conv2d / BatchNorm2d
    port = {f"module.{k}": (v.squeeze(2) if k.startswith("layer4.") and v.dim() == 5 else v) for k, v in sd.items()}
    assert port["module.layer4.0.conv_normal.weight"].dim() == 4
    other = P3DResNet((1, 1, 1, 1), "ABC", num_classes=5, width=8)
    other.load_state_dict(remap_state_dict(port))  # strict
    assert all(torch.equal(other.state_dict()[k], v) for k, v in sd.items())


def test_per_frame_model_ignores_frame_order():
    torch.manual_seed(0)
    clip = torch.randn(2, 1, 8, 32, 32)
    perm = torch.randperm(8)
    frame2d, p3d = p3d_a_digits_frame2d().eval(), p3d_a_digits().eval()
    randomise_bn(p3d)
    frame2d.load_state_dict(p3d.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(frame2d(clip[:, :, perm]), frame2d(clip), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(p3d(clip[:, :, perm]), p3d(clip), atol=1e-4)
    assert count_params(frame2d) == count_params(p3d)


def test_any_clip_length_and_bad_input():
    from convzoo.errors import ConvzooError

    model = p3d_a_digits().eval()
    with torch.no_grad():
        for t in (1, 3, 7, 16):
            assert model(torch.randn(1, 1, t, 32, 32)).shape == (1, 4)
    with pytest.raises(ConvzooError, match="clips"):
        model(torch.randn(1, 1, 32, 32))


def test_onnx_all_block_types(tmp_path):
    from convzoo.export import export_onnx

    torch.manual_seed(0)
    model = P3DResNet((1, 1, 1, 1), "ABC", num_classes=4, in_chans=1, width=8).eval()
    randomise_bn(model)
    assert [model.layer1[0].block_type, model.layer2[0].block_type, model.layer3[0].block_type] == ["A", "B", "C"]
    report = export_onnx(model, torch.randn(1, 1, 4, 32, 32), tmp_path / "p3d.onnx", check=True)
    assert report["max_abs_diff"] <= 1e-4


# --- recipes ---------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=49, artefact="p3d_resnet199_sports1m_paper",
                   claim="paper Sec. 4: 16-frame clips, 160 x 160 crops of 182 x 242 frames, batch 128, lr 0.001 / 10 "
                         "every 60K iterations, 150K iterations (epochs of Sports-1M's 793,211 train videos)")
def test_paper_recipe_values():
    from convzoo.engine import load_recipe

    cfg = load_recipe("p3d_resnet199_sports1m_paper")
    assert cfg["model"]["name"] == "p3d_resnet199" and cfg["data"]["name"] == "video_folder"
    data = cfg["data"]["kwargs"]
    assert (data["clip_len"], data["crop"], data["resize"]) == (16, 160, 182)
    assert cfg["batch_size"] == 128 and cfg["optimizer"]["lr"] == pytest.approx(0.001)
    iters_per_epoch = 793_211 / 128
    assert cfg["schedule"]["kwargs"] == {"milestones": [10, 19], "gamma": 0.1}
    for epochs, iters in ((10, 60_000), (19, 120_000), (cfg["epochs"], 150_000)):
        assert abs(epochs * iters_per_epoch - iters) / iters < 0.04
    assert cfg["model"]["kwargs"]["drop_rate"] == pytest.approx(0.1)  # deploy prototxt


@pytest.mark.slow
@pytest.mark.claim(paper=49, artefact="p3d_moving_digits",
                   claim="a small P3D-A learns the direction of moving real digits (>= 60 % after 50 steps, chance 25 %); "
                         "a per-frame 2-D model cannot: it scores a clip and its reversal alike, so <= 50 % on both "
                         "(recorded full runs: P3D-A 100 %, per-frame 26.0 % on the 400 test videos)")
def test_moving_digits_p3d_learns_per_frame_cannot():
    from convzoo.data import build_dataset
    from convzoo.data.moving_digits import DIRECTIONS
    from convzoo.tasks import build_task

    task = build_task("video_classification")
    kw = {"frames": 8, "digits": "sklearn", "size": 32}
    train = build_dataset("moving_digits", "train", num_videos=800, **kw)
    test = build_dataset("moving_digits", "test", num_videos=200, **kw)
    xs, ys = torch.stack([test[i][0] for i in range(len(test))]), test.labels
    torch.manual_seed(0)
    model = p3d_a_digits()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=True)
    model.train()
    for _ in range(2):
        for batch in loader:
            out, y = task.forward(model, batch)
            loss = task.loss(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((task.forward(model, (xs, ys))[0].argmax(-1) == ys).float().mean())
    assert acc >= 0.6, acc
    # time reversal turns right into left and down into up; a per-frame model cannot see the difference
    reverse = torch.tensor([DIRECTIONS.index(d) for d in ("left", "right", "up", "down")])
    frame2d = p3d_a_digits_frame2d().eval()
    frame2d.load_state_dict(model.state_dict())  # the trained weights, run per frame
    with torch.no_grad():
        fwd, bwd = frame2d(xs), frame2d(xs.flip(2))
    torch.testing.assert_close(fwd, bwd, atol=1e-4, rtol=1e-4)
    both = torch.cat([fwd.argmax(-1) == ys, bwd.argmax(-1) == reverse[ys]]).float().mean()
    assert float(both) <= 0.5


@pytest.mark.slow
@pytest.mark.claim(paper=49, artefact="p3d_moving_digits",
                   claim="the CPU-scale recipe learns through the engine: training loss falls over two short epochs")
def test_moving_digits_recipe_learns(tmp_path):
    from convzoo.engine import train

    values = {"epochs": 2, "data.kwargs.num_videos": 160, "data.kwargs.digits": "sklearn", "data.kwargs.frames": 8,
              "data.kwargs.clip_len": 6, "data.kwargs.eval_clips": 2, "eval_batch_size": 80}
    torch.manual_seed(0)
    res = train("p3d_moving_digits", values=values, out_dir=tmp_path, run_name="r", progress=False)
    first, last = res.history[0]["train_loss"], res.history[-1]["train_loss"]
    assert last < first, (first, last)
