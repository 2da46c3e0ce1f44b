"""Paper 46, Axial Attention in Multidimensional Transformers (Axial Transformer, arXiv 1912.12180).

Checks axial attention against dense attention under the axis mask (float64, every axis of a 3-D
grid, masked and unmasked), the whole model's causality (the gradient of every logit with respect to
every sub-pixel is exactly zero for the sub-pixel itself and all later ones in channel-then-raster
order, and non-zero for every earlier one), equal samples from the semi-parallel and the naive
sampler under the same Gumbel noise, the bits/dim bookkeeping (a uniform model scores log2 K
exactly), the parameter counts of the official ImageNet configurations against a closed form written
here from the official config values, the random-channel-slice training method, the paper recipe's
values and the CPU-scale digits recipe.
"""

from __future__ import annotations

import math

import pytest
import torch

import convzoo
from convzoo.engine import load_recipe, train
from convzoo.errors import ConvzooError
from convzoo.layers.axial_attention import AxialAttention
from convzoo.methods import build_method
from convzoo.models.axial_transformer import AxialTransformer, gumbel_noise, sample, shift_down, shift_right
from convzoo.registry import count_params
from convzoo.tasks import build_task
from convzoo.tasks.density import bits_per_dim

pytestmark = pytest.mark.paper(46)


def _tiny(**kw) -> AxialTransformer:
    """A small model with O(1) initial branches (the official 1e-10 init hides every dependency)."""
    torch.manual_seed(0)
    cfg = {"in_chans": 3, "num_classes": 5, "img_size": (4, 5), "embed_dim": 16, "num_heads": 2, "num_exterior_layers": 2,
               "num_outer_layers": 2, "num_inner_layers": 2, "res_init_scale": 1.0, "logits_init_scale": 1.0}
    return AxialTransformer(**{**cfg, **kw}).double().eval()


# --- the layer ----------------------------------------------------------------------------------------
def _dense_reference(layer: AxialAttention, x: torch.Tensor, axis: int, causal: bool) -> torch.Tensor:
    """Plain multi-head attention over ALL positions of x (B, *S, D) with a mask that keeps the pairs that
    share every coordinate but ``axis`` (and, if causal, j <= i along it)."""
    b, *spatial, d = x.shape
    h = layer.num_heads
    coords = torch.stack(torch.meshgrid(*[torch.arange(s) for s in spatial], indexing="ij"), -1).reshape(-1, len(spatial))
    a = axis - 1
    others = [i for i in range(len(spatial)) if i != a]
    allowed = (coords[:, None, others] == coords[None, :, others]).all(-1)
    if causal:
        allowed &= coords[None, :, a] <= coords[:, None, a]
    flat = x.reshape(b, -1, d)
    q, k, v = (lin(flat).view(b, -1, h, d // h).transpose(1, 2) for lin in (layer.q, layer.k, layer.v))
    w = q @ k.transpose(-1, -2) / math.sqrt(d // h)
    w = w.masked_fill(~allowed, float("-inf")).softmax(-1)
    out = (w @ v).transpose(1, 2).reshape(b, -1, d)
    return layer.proj_out(out).reshape(x.shape)


@pytest.mark.claim(paper=46, artefact="AxialAttention",
                   claim="equals dense multi-head attention under the axis mask (masked and unmasked, every axis of a 3-D grid, float64)")
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("axis", [1, 2, 3, -1])
def test_axial_attention_equals_masked_dense_attention(axis, causal):
    torch.manual_seed(axis + 10 * causal)
    layer = AxialAttention(12, 3, axis=axis, causal=causal).double()
    x = torch.randn(2, 3, 4, 5, 12, dtype=torch.float64)
    ref = _dense_reference(layer, x, axis if axis > 0 else 3, causal)
    torch.testing.assert_close(layer(x), ref, atol=1e-12, rtol=1e-12)


def test_shifts():
    x = torch.arange(2 * 3 * 4 * 1.0).view(1, 3, 4, 2)[..., :1].expand(1, 3, 4, 2)
    assert torch.equal(shift_down(x)[:, 0], torch.zeros(1, 4, 2)) and torch.equal(shift_down(x)[:, 1:], x[:, :-1])
    assert torch.equal(shift_right(x)[:, :, 0], torch.zeros(1, 3, 2)) and torch.equal(shift_right(x)[:, :, 1:], x[:, :, :-1])


# --- the model ----------------------------------------------------------------------------------------
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32",
                   claim="whole model is causal: the gradient of every logit w.r.t. the sub-pixel itself and every later one (channel, then raster order) is exactly zero, w.r.t. every earlier one non-zero")
def test_whole_model_is_causal():
    model = _tiny()
    c, h, w, k = 3, 4, 5, 5
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, k, (1, c, h, w), generator=g)
    onehot = torch.nn.functional.one_hot(x, k).double().requires_grad_(True)
    logits = model(onehot)  # (1, C, H, W, K)
    torch.testing.assert_close(logits, model(x), atol=1e-12, rtol=0)  # one-hot codes = integer levels
    order = torch.arange(c * h * w).view(c, h, w)  # generation order: channel, then row, then column
    for t in range(c * h * w):
        tc, tr, tw = divmod(t, h * w)[0], *divmod(t % (h * w), w)
        # a random mix of the K logits of sub-pixel t (all K carry information)
        mix = torch.randn(k, generator=g, dtype=torch.float64)
        (grad,) = torch.autograd.grad(logits[0, tc, tr, tw] @ mix, onehot, retain_graph=True)
        dep = grad[0].abs().sum(-1)  # (C, H, W)
        assert torch.all(dep[order >= t] == 0), t  # itself and every later sub-pixel: exactly zero
        assert torch.all(dep[order < t] > 0), t  # every earlier one reaches it


def test_slices_and_forward_agree():
    model = _tiny()
    x = torch.randint(0, 5, (2, 3, 4, 5), generator=torch.Generator().manual_seed(2))
    full = model(x)
    for ch in range(3):
        torch.testing.assert_close(model.slice_logits(x, torch.full((2,), ch)), full[:, ch], atol=1e-12, rtol=0)
    mixed = model.slice_logits(x, torch.tensor([2, 0]))
    torch.testing.assert_close(mixed, torch.stack([full[0, 2], full[1, 0]]), atol=1e-12, rtol=0)
    with pytest.raises(ConvzooError, match="integer images"):
        model(x.double())
    with pytest.raises(ConvzooError, match="position tables fix the size"):
        model(x[..., :4])


@pytest.mark.claim(paper=46, artefact="axial_sampling",
                   claim="the semi-parallel sampler (outer context once per row) and the naive per-pixel sampler give identical samples under identical Gumbel noise")
def test_fast_and_naive_sampling_agree():
    model = _tiny()
    noise = gumbel_noise((3, 3, 4, 5, 5), torch.Generator().manual_seed(3), torch.float64)
    fast, slow = model.sample(noise, fast=True), model.sample(noise, fast=False)
    assert fast.dtype == torch.long and fast.shape == (3, 3, 4, 5)
    assert torch.equal(fast, slow)
    assert len(fast.unique()) > 1  # not a degenerate image
    # each sample is the argmax of its own logits plus its noise (the Gumbel-max draw), all sub-pixels at once
    assert torch.equal((model(fast) + noise).argmax(-1), fast)
    a = sample(model, 2, generator=torch.Generator().manual_seed(4))
    b = sample(model, 2, generator=torch.Generator().manual_seed(4), fast=False)
    assert torch.equal(a, b)


@pytest.mark.claim(paper=46, artefact="axial_ar_training",
                   claim="bits/dim bookkeeping: a uniform model scores exactly log2 K (8 bits/dim for 256 levels, log2 17 for 17)")
@pytest.mark.claim(paper=46, artefact="density_estimation",
                   claim="the task's loss is NLL in bits/dim: a uniform model scores exactly log2 K (8 for 256 levels)")
@pytest.mark.parametrize("levels", [256, 17])
def test_uniform_model_scores_log2_levels(levels):
    x = torch.randint(0, levels, (2, 3, 4, 4), generator=torch.Generator().manual_seed(5))
    bpd = bits_per_dim(torch.zeros(2, 3, 4, 4, levels), x)
    assert torch.allclose(bpd, torch.full((2,), math.log2(levels)), atol=1e-6, rtol=0)
    if levels == 256:
        assert abs(float(bpd.mean()) - 8.0) < 1e-6
    # the same through a model whose logits layer is zero, and through the task's loss
    model = AxialTransformer(in_chans=3, num_classes=levels, img_size=(4, 4), embed_dim=16, num_heads=2,
                             num_exterior_layers=2, num_outer_layers=2, num_inner_layers=2).eval()
    torch.nn.init.zeros_(model.transformer2d.final_dense.weight)
    task = build_task("density_estimation", levels=levels)
    with torch.no_grad():
        loss = task.loss(*task.forward(model, (x.float() / (levels - 1), None)))
    assert abs(float(loss) - math.log2(levels)) < 1e-5


def test_task_reads_levels_and_refuses_normalised_pixels():
    task = build_task("density_estimation", levels=17)
    x = torch.randint(0, 17, (2, 1, 8, 8))
    assert torch.equal(task.to_levels(x.float() / 16), x)
    with pytest.raises(ConvzooError, match="raw pixels on 17 levels"):
        task.to_levels((x.float() / 16 - 0.3) / 0.37)


# --- counts ----------------------------------------------------------------------------------------------
# official axial/config_imagenet32.py and config_imagenet64.py, "ardec" (img_channels 3, num_embs 256 in models.py)
OFFICIAL = {
    "axial_transformer_imagenet32": {"img": 32, "d": 1536, "heads": 16, "ext": 8, "outer": 8, "inner": 8, "hdim_factor": 1},
    "axial_transformer_imagenet64": {"img": 64, "d": 2048, "heads": 16, "ext": 8, "outer": 8, "inner": 8, "hdim_factor": 1},
}


def _official_count(img, d, ext, outer, inner, hdim_factor, c=3, k=256, **_) -> int:
    """The variables the official Transformer3d creates (transformers.py, nn.py), summed by hand."""
    dense = lambda i, o: i * o + o  # nn.Dense: w [in, out], b [out]
    hd = d * hdim_factor
    block = 4 * dense(d, d) + dense(d, hd) + dense(hd, d) + 2 * (2 * d)  # q, k, v, proj_out; MLP; 2 LayerNorms (g, b)
    ext_tables = 2 * img * d  # pos_embs_h, pos_embs_w
    conv = 3 * 3 * (2 * c) * d + d  # exterior_input_conv: 3x3 filter [3, 3, 2C, d] + b
    dec = k * d + 2 * img * d + 2 * d + dense(d, k)  # embs, pos_embs_h/w, final_ln, final_dense
    return (ext + outer + inner) * block + ext_tables + conv + dec


@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32",
                   claim="341,178,112 parameters = the closed form of the official config (d 1536, 16 heads, 8/8/8 layers); the sheet's ~341M")
@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet64",
                   claim="606,161,152 parameters = the closed form of the official config (d 2048, 16 heads, 8/8/8 layers); the sheet's ~606M")
@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_paper_configurations_counts(name):
    want = _official_count(**OFFICIAL[name])
    assert want == {"axial_transformer_imagenet32": 341_178_112, "axial_transformer_imagenet64": 606_161_152}[name]
    # the sheet's estimate: 24 blocks x (6 d^2 + 10 d) + embeddings, ~341M / ~606M
    d = OFFICIAL[name]["d"]
    assert 24 * (6 * d * d + 10 * d) < want < 24 * (6 * d * d + 10 * d) * 1.01
    with torch.device("meta"):
        model = convzoo.create_model(name)
    assert count_params(model) == want == convzoo.get_card(name).params
    card = convzoo.get_card(name)
    attn = model.exterior_layers[0].attn
    assert (model.embed_dim, attn.num_heads, len(model.exterior_layers), len(model.transformer2d.outer_layers),
            len(model.transformer2d.inner_layers)) == (d, 16, 8, 8, 8)
    assert card.input_size == (OFFICIAL[name]["img"],) * 2 and card.num_classes == 256
    # layer kinds: exterior row/col unmasked; outer row unmasked / column masked; inner row masked
    kinds = lambda blocks: [(b.attn.axis, b.attn.causal) for b in blocks]
    assert kinds(model.exterior_layers) == [(2, False), (1, False)] * 4
    assert kinds(model.transformer2d.outer_layers) == [(2, False), (1, True)] * 4
    assert kinds(model.transformer2d.inner_layers) == [(2, True)] * 8


# --- training --------------------------------------------------------------------------------------------
@pytest.mark.claim(paper=46, artefact="axial_ar_training",
                   claim="random channel slice per image: the step's loss is the bits/dim of one random channel per image given the earlier ones")
def test_random_channel_slice_method():
    model = _tiny().float().train()
    task = build_task("density_estimation", levels=5)
    method = build_method("random_channel_slice", model, task, None, seed=7)
    x = torch.randint(0, 5, (4, 3, 4, 5), generator=torch.Generator().manual_seed(8))
    loss = method.training_step((x.float() / 4, None))["loss"]
    slices = torch.randint(0, 3, (4,), generator=torch.Generator().manual_seed(7))
    model.eval()  # no dropout in _tiny: eval and train give the same logits
    with torch.no_grad():
        full = model(x)
    want = bits_per_dim(full[torch.arange(4), slices], x[torch.arange(4), slices]).mean()
    torch.testing.assert_close(loss.detach(), want, atol=1e-5, rtol=1e-5)
    assert len(slices.unique()) > 1


@pytest.mark.claim(paper=46, artefact="axial_transformer_imagenet32_paper",
                   claim="the recipe carries the official config_imagenet32.py values: Adam 0.9/0.999, lr 1e-4, linear warm-up 5000 steps then constant, clip 1.0, batch 64, EMA 0.99995, dropout 0.04, random channel slices")
def test_paper_recipe_values():
    cfg = load_recipe("axial_transformer_imagenet32_paper")
    assert cfg["model"]["name"] == "axial_transformer_imagenet32"
    assert cfg["optimizer"]["name"] == "adam" and cfg["optimizer"]["lr"] == 1e-4
    assert tuple(cfg["optimizer"]["kwargs"]["betas"]) == (0.9, 0.999) and cfg["optimizer"]["weight_decay"] == 0
    assert cfg["batch_size"] == 64 and cfg["grad_clip"] == 1.0 and cfg["ema"] == 0.99995
    assert cfg["schedule"]["name"] == "constant" and cfg["schedule"]["interval"] == "step"
    steps_per_epoch = math.ceil(1_281_167 / 64)  # downsampled ImageNet train split, batch 64
    assert round(cfg["schedule"]["warmup_epochs"] * steps_per_epoch) == 5000
    assert cfg["method"]["name"] == "random_channel_slice"
    assert cfg["task"]["name"] == "density_estimation" and cfg["task"]["kwargs"]["levels"] == 256
    model = convzoo.get_card("axial_transformer_imagenet32")
    from convzoo.models.axial_transformer import AXIAL_CFGS

    assert AXIAL_CFGS[model.name]["drop_rate"] == 0.04 and AXIAL_CFGS["axial_transformer_imagenet64"]["drop_rate"] == 0.0


@pytest.mark.slow
@pytest.mark.claim(paper=46, artefact="axial_digits",
                   claim="the CPU-scale recipe learns on the real digits: held-out bits/dim falls below log2 17 - 0.5 = 3.59 within 20 steps, samples.png written")
def test_digits_recipe_learns(tmp_path):
    torch.manual_seed(0)
    values = {"epochs": 1, "limit_train_batches": 20, "batch_size": 16, "schedule.warmup_epochs": 0,
              "eval_batch_size": 64, "limit_eval_batches": 1, "task.kwargs.num_samples": 4}
    res = train("axial_digits", values=values, out_dir=tmp_path, run_name="r", progress=False)
    first = res.history[0]
    assert first["val_bits_per_dim"] < math.log2(17) - 0.5, first
    assert (res.run_dir / "samples.png").exists() and (res.run_dir / "data.png").exists()


def test_predict_file_gives_bits_per_dim_and_samples(tmp_path):
    from PIL import Image

    card = convzoo.get_card("axial_transformer_digits")
    model = convzoo.create_model("axial_transformer_digits").eval()
    task = build_task("density_estimation", levels=17)
    img = (torch.arange(64).view(8, 8) * 4).to(torch.uint8).numpy()
    Image.fromarray(img).save(tmp_path / "d.png")
    preds = list(task.predict_file(model, card, tmp_path / "d.png", None, tmp_path / "out"))
    assert abs(preds[0]["bits_per_dim"] - math.log2(17)) < 1e-3  # the initial model is uniform (1e-10 logits init)
    assert (tmp_path / "out" / "samples.png").exists() and "wrote" in task.format_prediction(preds[1])
