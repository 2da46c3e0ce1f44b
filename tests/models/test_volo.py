"""VOLO (paper 51, arXiv 2106.13112): outlook attention against a per-location loop, the Outlooker and the
whole D1 against timm with copied weights, timm's counts / MACs / preprocessing for every registered resolution,
MixToken and the token-labelling loss against the official formulas, and the recipes.

Full-size models are built on the meta device (counts, MACs, keys); one D1 forward at 224 px, batch 1, proves
logit parity including the ``+ 0.5 * max aux`` term.
"""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.outlook import OutlookAttention, Outlooker
from convzoo.methods.token_labeling import MixToken, TokenLabeling, rand_token_box, swap_box, token_label_loss
from convzoo.models.volo import VOLO_VARIANTS
from convzoo.registry import count_params

NAMES = list(VOLO_VARIANTS)
# fact sheet G1b (timm 1.0.31, sum of numel over parameters, 1000 classes): written here, not read from the card
SHEET_PARAMS = {
    "volo_d1_224": 26_632_040, "volo_d1_384": 26_777_960, "volo_d2_224": 58_678_336, "volo_d2_384": 58_872_896,
    "volo_d3_224": 86_325_072, "volo_d3_448": 86_626_128, "volo_d4_224": 192_961_520, "volo_d4_448": 193_413_104,
    "volo_d5_224": 295_455_584, "volo_d5_448": 295_907_168, "volo_d5_512": 296_091_488,
}
# fact sheet G1b: timm's GMACs at 224 px to 0.01 G, counted without the fused attention of the Transformer blocks
SHEET_GMACS_224 = {"d1": 6.51, "d2": 13.60, "d3": 19.63, "d4": 42.61, "d5": 70.18}
# official models/volo.py (= timm): Transformer blocks (stages 2-4), width after the downsample
BLOCKS_WIDTH = {"d1": (14, 384), "d2": (18, 512), "d3": (28, 512), "d4": (28, 768), "d5": (36, 768)}


def _tiny(**kw):
    base = {"layers": (2, 1, 1), "embed_dims": (32, 64, 64), "num_heads": (2, 4, 4), "stem_hidden": 16,
            "img_size": 64, "num_classes": 5}
    return convzoo.create_model("volo_d1_224", **{**base, **kw})


# --- outlook attention ------------------------------------------------------------------------------------

def _naive_outlook(m: OutlookAttention, x: torch.Tensor) -> torch.Tensor:
    """Eq. 2-5 location by location: for each window centre, weights from the (pooled) centre token, softmax over
    the K^2 sources of the window (zero values outside the map), weighted sums scattered to the K^2 outputs."""
    b, hh, ww, c = x.shape
    k, s, p, nh = m.kernel_size, m.stride, m.padding, m.num_heads
    d = c // nh
    v = m.v(x)
    out = torch.zeros_like(x)
    for bi in range(b):
        for i in range(math.ceil(hh / s)):
            for j in range(math.ceil(ww / s)):
                centre = x[bi, i * s:i * s + s, j * s:j * s + s].reshape(-1, c).mean(0)  # ceil-mode avg pool
                a = m.attn(centre).reshape(nh, k * k, k * k) * m.scale
                a = a.softmax(-1)
                cells = [(i * s - p + dy, j * s - p + dx) for dy in range(k) for dx in range(k)]
                vals = torch.stack([v[bi, y, xx] if 0 <= y < hh and 0 <= xx < ww else torch.zeros(c, dtype=x.dtype)
                                    for y, xx in cells])  # (K^2, C)
                for h in range(nh):
                    res = a[h] @ vals[:, h * d:(h + 1) * d]  # (K^2 outputs, d)
                    for q, (y, xx) in enumerate(cells):
                        if 0 <= y < hh and 0 <= xx < ww:
                            out[bi, y, xx, h * d:(h + 1) * d] += res[q]
    return m.proj(out)


@pytest.mark.claim(paper=51, artefact="OutlookAttention",
                   claim="unfold/fold outlook attention equals a per-location loop of Eq. 2-5 (float64), stride 1 and the released stride 2, odd map sizes")
@pytest.mark.parametrize("stride,size", [(1, (5, 4)), (2, (6, 6)), (2, (7, 5))])
def test_outlook_attention_equals_naive_loop(stride, size):
    torch.manual_seed(0)
    m = OutlookAttention(12, 3, kernel_size=3, padding=1, stride=stride, qkv_bias=True).double()
    with torch.no_grad():
        m.attn.weight.mul_(20)  # peaked softmax: a wrong source / output index cannot average out
    x = torch.randn(2, *size, 12, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _naive_outlook(m, x), rtol=1e-10, atol=1e-10)


@pytest.mark.claim(paper=51, artefact="Outlooker",
                   claim="equals timm's Outlooker with copied weights (keys norm1, attn.v, attn.attn, attn.proj, norm2, mlp.fc1, mlp.fc2)")
@pytest.mark.claim(paper=51, artefact="OutlookAttention", claim="equals timm's OutlookAttention with copied weights, stride 1 and 2")
def test_outlooker_matches_timm():
    from timm.models.volo import OutlookAttention as TimmOA
    from timm.models.volo import Outlooker as TimmOutlooker

    torch.manual_seed(0)
    x = torch.randn(2, 7, 6, 32)
    for s in (1, 2):
        ref, ours = TimmOA(32, 4, 3, 1, s).eval(), OutlookAttention(32, 4, 3, 1, s).eval()
        ours.load_state_dict(ref.state_dict())
        with torch.no_grad():
            torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)
    ref, ours = TimmOutlooker(32, 3, 1, 2, num_heads=4).eval(), Outlooker(32, 4).eval()
    assert set(ours.state_dict()) == set(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-5)


@pytest.mark.claim(paper=51, artefact="OutlookAttention",
                   claim="cost linear in the number of tokens: MACs per token are the same at 8x8 and 32x32 grids")
def test_outlook_cost_is_linear_in_tokens():
    from torch.utils.flop_counter import FlopCounterMode

    m = OutlookAttention(64, 2, stride=2)
    per_token = []
    for side in (8, 32):
        with FlopCounterMode(display=False) as c, torch.no_grad():
            m(torch.randn(1, side, side, 64))
        per_token.append(c.get_total_flops() / side ** 2)
    assert per_token[0] == per_token[1]


# --- the network against timm -----------------------------------------------------------------------------

@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="timm 26,632,040 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="timm 26,777,960 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="timm 58,678,336 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.claim(paper=51, artefact="volo_d2_384", claim="timm 58,872,896 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="timm 86,325,072 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.claim(paper=51, artefact="volo_d3_448", claim="timm 86,626,128 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="timm 192,961,520 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.claim(paper=51, artefact="volo_d4_448", claim="timm 193,413,104 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="timm 295,455,584 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.claim(paper=51, artefact="volo_d5_448", claim="timm 295,907,168 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.claim(paper=51, artefact="volo_d5_512", claim="timm 296,091,488 params (meta device; state-dict keys and shapes equal timm's)")
@pytest.mark.parametrize("name", NAMES)
def test_params_and_keys_match_timm(name):
    with torch.device("meta"):
        ours, ref = convzoo.create_model(name), timm.create_model(name, pretrained=False)
    assert count_params(ours) == count_params(ref) == SHEET_PARAMS[name]
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}


@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="MACs equal timm's (FlopCounterMode, meta); without the Transformer blocks' attention matmuls 6.51 G as the sheet")
@pytest.mark.claim(paper=51, artefact="volo_d1_384", claim="MACs equal timm's at 384 px (FlopCounterMode, meta)")
@pytest.mark.claim(paper=51, artefact="volo_d2_224", claim="MACs equal timm's (FlopCounterMode, meta); without the Transformer blocks' attention matmuls 13.60 G as the sheet")
@pytest.mark.claim(paper=51, artefact="volo_d3_224", claim="MACs equal timm's (FlopCounterMode, meta); without the Transformer blocks' attention matmuls 19.63 G as the sheet")
@pytest.mark.claim(paper=51, artefact="volo_d4_224", claim="MACs equal timm's (FlopCounterMode, meta); without the Transformer blocks' attention matmuls 42.61 G as the sheet")
@pytest.mark.claim(paper=51, artefact="volo_d5_224", claim="MACs equal timm's (FlopCounterMode, meta); without the Transformer blocks' attention matmuls 70.18 G as the sheet")
@pytest.mark.slow
@pytest.mark.parametrize("name", ["volo_d1_224", "volo_d1_384", "volo_d2_224", "volo_d3_224", "volo_d4_224",
                                  "volo_d5_224"])
def test_macs_match_timm_and_sheet(name):
    from torch.utils.flop_counter import FlopCounterMode

    res = int(name.rsplit("_", 1)[1])
    counts = []
    with torch.device("meta"):
        for m in (convzoo.create_model(name).eval(), timm.create_model(name).eval()):
            with FlopCounterMode(display=False) as c, torch.no_grad():
                m(torch.empty(1, 3, res, res))
            counts.append(c.get_total_flops() // 2)
    assert counts[0] == counts[1] == convzoo.get_card(name).macs
    if res == 224:  # QK^T and AV of each Transformer block: 2 N^2 C with N = 14 x 14 (closed form)
        blocks, width = BLOCKS_WIDTH[name.split("_")[1]]
        attention = 2 * 196 ** 2 * width * blocks
        assert round((counts[0] - attention) / 1e9, 2) == SHEET_GMACS_224[name.split("_")[1]]


@pytest.mark.claim(paper=51, artefact="volo_d1_224",
                   claim="eval logits (class head + 0.5 max aux) equal timm's volo_d1_224 with copied weights at 224 px")
def test_d1_logits_match_timm():
    torch.manual_seed(0)
    ref = timm.create_model("volo_d1_224").eval()
    ours = convzoo.create_model("volo_d1_224").eval()
    ours.load_state_dict(ref.state_dict())  # timm / official keys, no map
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        a, b = ref(x), ours(x)
        aux = ref.aux_head(ref.forward_features(x)[:, 1:]).amax(1)
    assert float(aux.abs().max()) > 0.1  # the aux term is present and not negligible
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5 * max(1.0, float(a.abs().max())))


@pytest.mark.claim(paper=51, artefact="volo_d1_224",
                   claim="dense outputs (class head, per-token aux head) equal timm's forward_train in training mode; "
                         "small inputs use the bicubically resampled position embedding as timm's resample_abs_pos_embed")
def test_dense_outputs_and_small_inputs_match_timm():
    from timm.layers import resample_abs_pos_embed

    torch.manual_seed(0)
    ref = timm.create_model("volo_d1_224", img_size=64)
    ours = convzoo.create_model("volo_d1_224", img_size=64)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 64)
    ref.train(), ours.train()  # batch-statistics BN in both; no dropout
    with torch.no_grad():
        cls_ref, aux_ref, _ = ref.forward_train(x)
        cls, aux = ours(x, dense=True)
    # timm 1.0.31's forward_train returns the class token's features, not its logits (official: head(x[:, 0]))
    torch.testing.assert_close(cls, ref.head(cls_ref), rtol=0, atol=1e-5)
    torch.testing.assert_close(aux, aux_ref, rtol=0, atol=1e-5)
    # the 224-px model at 64 px == timm built at 64 px with the 224 embedding resampled (14x14 -> 4x4)
    big = timm.create_model("volo_d1_224").eval()
    ours224 = convzoo.create_model("volo_d1_224").eval()
    ours224.load_state_dict(big.state_dict())
    state = dict(big.state_dict())
    pos = state["pos_embed"]  # (1, 14, 14, C)
    state["pos_embed"] = resample_abs_pos_embed(pos.reshape(1, 196, -1), (4, 4), (14, 14), num_prefix_tokens=0).reshape(1, 4, 4, -1)
    ref.load_state_dict(state)
    ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours224(x), ref(x), rtol=0, atol=1e-5)


@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="stochastic-depth rates per block equal timm's (Transformer blocks only)")
def test_drop_path_rates_match_timm():
    with torch.device("meta"):
        ours = convzoo.create_model("volo_d1_224", drop_path_rate=0.1)
        ref = timm.create_model("volo_d1_224", drop_path_rate=0.1)

    def rates(model):
        return {n: getattr(m, "p", getattr(m, "drop_prob", 0.0)) for n, m in model.named_modules()
                if n.endswith(("drop_path1", "drop_path2"))}

    got, want = rates(ours), rates(ref)
    assert got == pytest.approx({n: r for n, r in want.items() if n.startswith("network.")})
    assert max(got.values()) == pytest.approx(0.1)
    assert all(r == 0 for n, r in want.items() if not n.startswith("network."))  # class blocks: none in timm


@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="feature_info channels and reductions equal timm's (strides 8, 16, 16, 16)")
def test_feature_info_matches_timm():
    with torch.device("meta"):
        ours, ref = convzoo.create_model("volo_d1_224"), timm.create_model("volo_d1_224")
    assert [(f["num_chs"], f["reduction"], f["module"]) for f in ours.feature_info] == \
        [(f["num_chs"], f["reduction"], f["module"]) for f in ref.feature_info]
    m = _tiny().eval()
    with torch.no_grad():
        maps = m.features(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in maps] == [(1, 32, 8, 8), (1, 64, 4, 4), (1, 64, 4, 4)]


@pytest.mark.claim(paper=51, artefact="volo_d1_224", claim="card preprocessing = timm's pretrained_cfg (bicubic, crop_pct, mean/std, input size) at every resolution")
@pytest.mark.parametrize("name", NAMES)
def test_card_preprocessing_is_timms(name):
    card = convzoo.get_card(name)
    with torch.device("meta"):
        cfg = timm.create_model(name).pretrained_cfg
    assert (card.interpolation, card.crop_pct, tuple(card.mean), tuple(card.std), (3, *card.input_size)) == \
        (cfg["interpolation"], cfg["crop_pct"], tuple(cfg["mean"]), tuple(cfg["std"]), tuple(cfg["input_size"]))


def test_pools_and_errors_are_one_line():
    m = _tiny().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for pool in ("token", "avg", "max", "avgmax"):
            m.reset_classifier(5, pool)
            assert m(x).shape == (2, 5)
        m.reset_classifier(5, "")
        assert m(x).shape == (2, 5, 16)  # the classifier at every grid token
        for bad in ("catavgmax", "mean"):
            with pytest.raises(ConvzooError, match="global_pool") as e:
                m.reset_classifier(5, bad)
            assert "\n" not in str(e.value)
        m.reset_classifier(5, "token")
        with pytest.raises(ConvzooError, match="at least 16 x 16") as e:
            m(torch.randn(1, 3, 12, 40))
        with pytest.raises(ConvzooError, match="dense=True"):
            m(x, mix=MixToken())


# --- MixToken and the token-labelling loss ------------------------------------------------------------------

@pytest.mark.claim(paper=51, artefact="token_labeling",
                   claim="MixToken: mixing then un-mixing restores every token to its own sample (the box swap with the reversed batch is an involution), lam = 1 - box area / N")
def test_mix_token_unmix_restores_token_order():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        mix = MixToken(beta=1.0, scale=2, generator=g)
        tokens = torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, 10, 8, 3)  # each token holds its sample's index
        mixed = mix.mix(tokens)
        h, w = mix.grid
        assert (h, w) == (5, 4)
        y1, y2, x1, x2 = mix.box
        assert mix.lam == pytest.approx(1 - (y2 - y1) * (x2 - x1) / 20)
        # the box (scaled by 2) came from the reversed batch, the rest is untouched
        inside = torch.zeros(10, 8, dtype=torch.bool)
        inside[2 * y1:2 * y2, 2 * x1:2 * x2] = True
        assert torch.equal(mixed[:, inside], tokens.flip(0)[:, inside])
        assert torch.equal(mixed[:, ~inside], tokens[:, ~inside])
        # a per-token prediction on the aux grid (here: the mixed token itself, pooled 2x2) un-mixes to its sample
        pred = mixed[:, ::2, ::2]
        assert torch.equal(mix.unmix(pred), tokens[:, ::2, ::2])
        assert torch.equal(swap_box(swap_box(tokens, mix.box, 2), mix.box, 2), tokens)


def test_rand_token_box_area_follows_lam():
    g = torch.Generator().manual_seed(1)
    for lam in (0.0, 0.3, 0.75, 1.0):
        y1, y2, x1, x2 = rand_token_box(14, 14, lam, g)
        assert 0 <= y1 <= y2 <= 14 and 0 <= x1 <= x2 <= 14
        assert (y2 - y1) * (x2 - x1) <= math.ceil(14 * (1 - lam) ** 0.5) ** 2


def _official_token_label_ce(output, aux_output, bb, target, dense_weight=0.5, cls_weight=1.0):
    """sail-sg/volo loss/cross_entropy.py TokenLabelCrossEntropy.forward, restated (targets as the official
    loader gives them: (B, K) or (B, K, 2 + N) with [:, :, 1] the class target and [:, :, 2:] the dense maps)."""
    bbx1, bby1, bbx2, bby2 = bb
    b, n, c = aux_output.shape
    if target.dim() == 2:
        target_cls, target_aux = target, target.repeat(1, n).reshape(b * n, c)
    else:
        target_cls, target_aux = target[:, :, 1], target[:, :, 2:].transpose(1, 2).reshape(-1, c)
    lam = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / n)
    if lam < 1:
        target_cls = lam * target_cls + (1 - lam) * target_cls.flip(0)
    ce = lambda x, t: torch.sum(-t * F.log_softmax(x, dim=-1), dim=-1).mean()
    return cls_weight * ce(output, target_cls) + dense_weight * ce(aux_output.reshape(-1, c), target_aux)


@pytest.mark.claim(paper=51, artefact="token_labeling",
                   claim="loss equals the official TokenLabelCrossEntropy: ground-truth fallback for every token and dense score maps, with the MixToken lam on the class target")
def test_token_label_loss_equals_official():
    g = torch.Generator().manual_seed(0)
    b, h, w, k = 4, 3, 5, 7
    n = h * w
    cls, aux = torch.randn(b, k, generator=g), torch.randn(b, n, k, generator=g)
    y = torch.randint(0, k, (b,), generator=g)
    onehot = F.one_hot(y, k).float()
    box = (1, 0, 4, 2)  # official (bbx1, bby1, bbx2, bby2): 3 x 2 tokens, lam = 1 - 6 / 15
    lam = 1 - 6 / n
    ours = token_label_loss(cls, aux, y, lam=lam)["loss"]
    torch.testing.assert_close(ours, _official_token_label_ce(cls, aux, box, onehot))
    maps = torch.rand(b, k, h, w, generator=g)
    maps = maps / maps.sum(1, keepdim=True)
    dense = torch.cat([onehot[:, :, None], onehot[:, :, None], maps.flatten(2)], dim=2)  # (B, K, 2 + N)
    ours = token_label_loss(cls, aux, y, lam=lam, maps=maps, grid=(h, w))["loss"]
    torch.testing.assert_close(ours, _official_token_label_ce(cls, aux, box, dense))
    # label smoothing on index targets, soft (MixUp) targets pass through
    sm = token_label_loss(cls, aux, y, smoothing=0.1)["loss"]
    torch.testing.assert_close(sm, token_label_loss(cls, aux, onehot * 0.9 + 0.1 / k)["loss"])


@pytest.mark.claim(paper=51, artefact="token_labeling",
                   claim="a training step mixes tokens, un-mixes the aux predictions and trains both heads; models without an aux head are refused in one line")
def test_token_labeling_step_trains_both_heads():
    from convzoo.tasks import build_task

    torch.manual_seed(0)
    model = _tiny().train()
    method = TokenLabeling(model, build_task("classification", label_smoothing=0.1))
    x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 5, (4,))
    parts = method.training_step((x, y))
    assert set(parts) == {"loss", "cls", "aux"} and torch.isfinite(parts["loss"])
    parts["loss"].backward()
    assert model.head.weight.grad.abs().sum() > 0 and model.aux_head.weight.grad.abs().sum() > 0
    assert model.patch_embed.proj.weight.grad.abs().sum() > 0
    maps = torch.rand(4, 5, 2, 2)  # dense score maps at another size are resized to the 4 x 4 aux grid
    assert torch.isfinite(method.training_step((x, y, maps))["loss"])
    with pytest.raises(ConvzooError, match="aux head") as e:
        TokenLabeling(_tiny(use_aux_head=False), build_task("classification"))
    assert "\n" not in str(e.value)


# --- recipes ---------------------------------------------------------------------------------------------

@pytest.mark.claim(paper=51, artefact="volo_d1_imagenet_paper",
                   claim="official README / main.py values: AdamW lr 1.6e-3, batch 1024, 310 epochs, drop-path 0.1, wd 0.05, 20 warm-up epochs, min lr 1e-5, label smoothing 0.1, token labelling dense 0.5 / cls 1.0 with MixToken")
@pytest.mark.claim(paper=51, artefact="volo_d1_384_finetune_paper",
                   claim="official README fine-tune values: lr 8e-6, min lr 4e-6, batch 512, 30 epochs, wd 1e-8, 5 warm-up epochs, ground truth, 384 px")
def test_paper_recipe_values():
    from convzoo.engine import load_recipe

    r = load_recipe("volo_d1_imagenet_paper")
    opt, sch = r["optimizer"], r["schedule"]
    assert (r["model"]["name"], r["model"]["kwargs"]["drop_path_rate"], r["data"]["kwargs"]["size"]) == ("volo_d1_224", 0.1, 224)
    assert (opt["name"], opt["lr"], opt["weight_decay"]) == ("adamw", 1.6e-3, 0.05)
    assert (r["epochs"], r["batch_size"] * r["accumulate"]) == (310, 8 * 128)
    assert (sch["name"], sch["warmup_epochs"], sch["kwargs"]["eta_min"]) == ("cosine", 20, 1e-5)
    assert r["task"]["kwargs"]["label_smoothing"] == 0.1 and r["batch_transform"]["name"] is None
    assert r["method"] == {"name": "token_labeling",
                           "kwargs": {"dense_weight": 0.5, "cls_weight": 1.0, "mix_token": True, "beta": 1.0}}
    f = load_recipe("volo_d1_384_finetune_paper")
    assert (f["model"]["name"], f["model"]["kwargs"]["drop_path_rate"], f["data"]["kwargs"]["size"]) == ("volo_d1_384", 0.1, 384)
    assert (f["optimizer"]["lr"], f["schedule"]["kwargs"]["eta_min"], f["optimizer"]["weight_decay"]) == (8e-6, 4e-6, 1e-8)
    assert (f["epochs"], f["batch_size"], f["schedule"]["warmup_epochs"]) == (30, 8 * 64, 5)
    assert f["method"]["kwargs"]["ground_truth"] is True
    assert "volo_d1_imagenet_paper" in convzoo.get_card("volo_d1_224").recipes
    assert "volo_d1_384_finetune_paper" in convzoo.get_card("volo_d1_384").recipes


@pytest.mark.slow
@pytest.mark.claim(paper=51, artefact="volo_fashion",
                   claim="the narrow VOLO learns real Fashion-MNIST with token labelling + MixToken: validation accuracy well above chance after 30 steps")
def test_fashion_recipe_learns(tmp_path):
    from convzoo.engine import train

    torch.manual_seed(0)
    values = {"epochs": 1, "limit_train_batches": 30, "batch_size": 32, "schedule.warmup_epochs": 0,
              "limit_eval_batches": 1, "data.kwargs.train_size": 2000, "data.kwargs.val_size": 500}
    res = train("volo_fashion", values=values, out_dir=tmp_path, run_name="r", progress=False)
    first = res.history[0]
    assert first["val_acc"] > 0.3 and first["val_loss"] < math.log(10), first
