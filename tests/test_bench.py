"""convzoo.bench: the result's contents and invariants on tiny models (no timing assertions)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import convzoo
from convzoo.bench import (
    COMPARE_HEADER,
    DEPLOY_HEADER,
    MODES,
    TIMM_ALIASES,
    _parse_size,
    bench,
    compare_markdown,
    count_macs,
    deploy_markdown,
    deploy_peer,
    environment,
    fold_conv_bn,
    format_bench,
)
from convzoo.errors import ConvzooError
from convzoo.registry import ModelCard, count_params

FAST_MODES = ("eager", "channels_last", "deploy", "bf16")


@pytest.fixture(scope="module")
def result():
    import timm  # noqa: F401  (dev extra)
    return bench("eca_resnet18", batch=2, size=32, modes=FAST_MODES, rounds=1, compare="timm:test_resnet")


def test_result_is_json_and_complete(result):
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert result["params"] == convzoo.get_card("eca_resnet18").params
    model = convzoo.create_model("eca_resnet18").eval()
    assert result["macs"] == count_macs(model, torch.randn(1, 3, 32, 32)) > 0
    assert result["input_shape"] == [3, 32, 32] and result["batch"] == 2 and result["unit"] == "items/s"
    assert result["gemm_peak_gflops"] > 0 and result["gemm_peak_bf16_gflops"] > 0
    assert "VmHWM" in result["memory_source"] or "ru_maxrss" in result["memory_source"]
    assert list(result["modes"]) == list(FAST_MODES)
    for mode, row in result["modes"].items():
        assert row["throughput"] > 0 and row["latency_ms"] > 0 and row["peak_mem_mib"] >= 0, mode
        assert row["gflops"] == pytest.approx(2 * result["macs"] * row["throughput"] / 1e9, rel=0.02, abs=0.1)
        # gflops is kept to 0.1 and the fraction to 3 decimals: on a slow (shared) CPU 0.05 / peak dominates
        assert row["peak_fraction"] == pytest.approx(row["gflops"] / result["gemm_peak_gflops"],
                                                     abs=1e-3 + 0.05 / result["gemm_peak_gflops"])
        assert row["cpu_wall"] > 0
    assert set(result["trust"]) >= {"ok", "why"}


def test_fast_paths_keep_results_and_bf16_is_checked(result):
    modes = result["modes"]
    assert modes["eager"]["max_abs_diff"] == 0
    assert modes["channels_last"]["max_rel_diff"] < 1e-4
    assert modes["deploy"]["max_rel_diff"] < 1e-4  # fused conv+BN: float tolerance only
    assert 0 < modes["bf16"]["max_rel_diff"] < 0.1  # autocast really ran in bf16, and stayed close
    assert "bf16_peak_fraction" in modes["bf16"]


def test_compare_with_timm(result):
    import timm

    cmp = result["compare"]
    assert cmp["name"] == "timm:test_resnet"
    assert cmp["params"] == count_params(timm.create_model("test_resnet"))
    assert list(cmp["modes"]) == list(FAST_MODES)  # the peer runs every mode, deploy included
    ratios = cmp["ratios"]
    ours, ref = result["modes"], cmp["modes"]
    assert ratios["eager"] == pytest.approx(ours["eager"]["throughput"] / ref["eager"]["throughput"],
                                            rel=1e-2, abs=1e-3)  # ratios are kept to 3 decimals
    assert ratios["deploy"] == pytest.approx(ours["deploy"]["throughput"] / ref["deploy"]["throughput"],
                                             rel=1e-2, abs=1e-3)
    best_ours = max(ours[m]["throughput"] for m in ("eager", "channels_last", "deploy"))
    best_ref = max(ref[m]["throughput"] for m in ("eager", "channels_last", "deploy"))
    assert ratios["best"] == pytest.approx(best_ours / best_ref, rel=1e-2, abs=1e-3)  # ratios kept to 3 decimals
    assert ratios["best_ours_mode"] in ("eager", "channels_last", "deploy")
    assert ratios["bf16"] == pytest.approx(ours["bf16"]["throughput"] / ref["bf16"]["throughput"], rel=1e-2,
                                           abs=1e-3)
    # the same ratios per CPU-second (less disturbed by other processes on a shared CPU)
    assert ratios["cpu_eager"] == pytest.approx(
        ours["eager"]["cpu_throughput"] / ref["eager"]["cpu_throughput"], rel=1e-2, abs=1e-3)
    assert ratios["cpu_best_ours_mode"] in ("eager", "channels_last", "deploy")


def test_peer_deploy_is_fused_like_ours(result):
    """Like with like: in deploy mode timm's model is re-parameterised and BN-folded too, and says so."""
    ref = result["compare"]["modes"]["deploy"]
    assert ref["deploy"] == "timm.utils.reparameterize_model + conv+BN folded"
    assert ref["bn_left"] == 0 and ref["max_rel_diff"] < 1e-4
    assert result["modes"]["deploy"]["bn_left"] == 0  # ours: convzoo.deploy folds every BN of eca_resnet18
    lines = format_bench(result, plain=True).splitlines()
    assert "deploy ours: convzoo.deploy (reparameterize() + conv+BN folding); BatchNorm left: 0" in lines
    assert ("deploy peer timm:test_resnet: timm.utils.reparameterize_model + conv+BN folded; BatchNorm left: 0"
            in lines)


def _random_bn_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine maps far from identity, so a wrong fold shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                if m.affine:
                    m.weight.copy_(0.5 + torch.rand(c, generator=g))
                    m.bias.copy_(0.2 * torch.randn(c, generator=g))
    return model.eval()


def _timm_peer(name: str) -> nn.Module:
    import timm
    from timm.models.byobnet import ByoBlockCfg, ByobNet, ByoModelCfg

    if name == "repvgg_mobileone":  # timm's RepVGG ("rep") and MobileOne ("one") blocks, at test size
        cfg = ByoModelCfg(blocks=(ByoBlockCfg(type="rep", d=2, c=16, s=2, gs=0, br=1.0),
                                  ByoBlockCfg(type="one", d=2, c=32, s=2, gs=0, br=1.0)),
                          stem_type="rep", stem_chs=8, num_features=0)
        return ByobNet(cfg, num_classes=5)
    return timm.create_model(name, num_classes=5)


@pytest.mark.parametrize("name", ["test_resnet",        # conv1/bn1 attribute pairs, downsample Sequential
                                  "test_efficientnet",  # timm BatchNormAct2d (BN + act in one module)
                                  "repvgg_mobileone"])  # branches that only reparameterize_model merges
def test_peer_in_deploy_mode_has_no_batchnorm_and_the_same_outputs(name):
    torch.manual_seed(0)
    peer = _random_bn_stats(_timm_peer(name))
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in peer.modules())
    assert n_bn > 0
    fused, how = deploy_peer(peer)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    assert how["bn_left"] == [] and how["how"] == "timm.utils.reparameterize_model + conv+BN folded"
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in peer.modules())  # the peer is kept
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = peer(x), fused(x)
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


class _SharedConvOutput(nn.Module):
    """conv -> bn, and the conv's output also feeds the sum: folding the BN would change that path."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.conv2, self.bn2 = nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn2(self.conv2(self.bn(y) + y))


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            x = -x
        return self.bn(self.conv(x))


def test_fold_conv_bn_folds_only_what_is_exact():
    model = _random_bn_stats(_SharedConvOutput())
    x = torch.randn(2, 3, 8, 8)
    want = model(x)
    info = fold_conv_bn(model)
    assert info["folded"] == 1 and info["bn_left"] == ["bn"]  # conv2+bn2 folded, the shared conv kept
    torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
    info = fold_conv_bn(_random_bn_stats(_Untraceable()))
    assert info["folded"] == 0 and info["bn_left"] == ["bn"] and "torch.fx cannot trace" in info["why"]


def test_format_bench(result):
    plain = format_bench(result, plain=True)
    assert "eca_resnet18" in plain and "timm:test_resnet" in plain and "best fp32" in plain
    assert len(plain.splitlines()) == 3 + 1 + 8 + 6  # header, column names, 8 rows, 6 tail lines
    fancy = format_bench(result)
    for mode in FAST_MODES:
        assert mode in fancy


class _TinySR(nn.Module):
    def __init__(self, scale=2):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Tanh(),
                                  nn.Conv2d(8, scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        self.card = ModelCard(name="tiny_sr", paper=41, family="test", task="super_resolution", in_chans=1,
                              num_classes=0, input_size=(8, 8))

    def forward(self, x):
        return self.body(x)


def test_super_resolution_frames_per_second():
    r = bench(_TinySR(2), batch=1, size="32x48", modes=("eager", "deploy"), rounds=1)
    assert r["unit"] == "frames/s" and r["scale"] == 2
    assert r["output_size"] == [32, 48] and r["input_shape"] == [1, 16, 24]  # LR = output / scale
    assert r["modes"]["deploy"]["max_rel_diff"] < 1e-4
    assert "frames/s" in format_bench(r, plain=True)
    default = bench(_TinySR(2), batch=1, modes=("eager",), rounds=1)
    assert default["input_shape"] == [1, 8, 8] and default["output_size"] == [16, 16]  # card input_size
    with pytest.raises(ConvzooError, match="divisible"):
        bench(_TinySR(2), size="33x48", modes=("eager",), rounds=1)


class _Tiny1D(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(2, 4, 5, padding=2), nn.BatchNorm1d(4), nn.ReLU())
        self.card = ModelCard(name="tiny_1d", paper=1, family="test", task="classification", dims=1,
                              in_chans=2, num_classes=4, input_size=(100,), test_size=(50,))

    def forward(self, x):
        return self.body(x).mean(-1)


def test_one_dimensional_model():
    r = bench(_Tiny1D(), batch=3, modes=("eager", "channels_last", "deploy"), rounds=1)
    assert r["input_shape"] == [2, 100] and r["dims"] == 1
    assert "skipped" in r["modes"]["channels_last"]
    assert r["modes"]["deploy"]["max_rel_diff"] < 1e-5  # Conv1d + BN1d fused in a Sequential
    assert "skipped" in format_bench(r, plain=True)


def test_parse_size_and_errors():
    assert _parse_size(None, 2) is None
    assert _parse_size(64, 2) == (64, 64) and _parse_size("64", 2) == (64, 64)
    assert _parse_size("1080x1920", 2) == (1080, 1920) and _parse_size((3, 4), 2) == (3, 4)
    assert _parse_size("500", 1) == (500,)
    for bad in ("12xab", "1x2x3", "0", (1, 2, 3)):
        with pytest.raises(ConvzooError):
            _parse_size(bad, 2)
    with pytest.raises(ConvzooError, match="mode"):
        bench("eca_resnet18", modes=("eager", "fast"))
    with pytest.raises(ConvzooError, match="unknown model"):
        bench("eca_resnet_18", modes=("eager",))
    with pytest.raises(ConvzooError, match="timm:NAME"):
        bench(_Tiny1D(), modes=("eager",), rounds=1, compare="resnet18")


@pytest.mark.parity
def test_timm_alias_builds_the_plain_eca_resnet50():
    import timm  # noqa: F401  (dev extra)
    with torch.device("meta"):
        ref = TIMM_ALIASES["eca_resnet50_paper"]()
    assert count_params(ref) == 25_557_118  # = convzoo eca_resnet50 with k_size="adaptive"
    with pytest.raises(ConvzooError, match="unknown timm model"):
        bench(_Tiny1D(), modes=("eager",), rounds=1, compare="timm:not_a_model_xyz")


@pytest.mark.slow
def test_compile_modes_are_timed_separately():
    r = bench(_Tiny1D(), batch=2, modes=("eager", "compile", "deploy_compile"), rounds=1)
    assert list(r["modes"]) == ["eager", "compile", "deploy_compile"] and set(MODES) >= set(r["modes"])
    for mode in ("compile", "deploy_compile"):  # deploy_compile: fused + Inductor freezing
        row = r["modes"][mode]
        assert "skipped" not in row, row
        assert row["compile_s"] > 0 and row["max_rel_diff"] < 1e-4


def test_train_bench_times_the_same_step_as_a_plain_loop():
    """``bench --train``: the engine's step and the plain loop take the same SGD step on the same batch."""
    import copy

    import convzoo
    from convzoo.engine.speed import _engine, _plain, train_speed

    card = convzoo.get_card("cnn_svm_mnist")
    torch.manual_seed(0)
    model = convzoo.create_model("cnn_svm_mnist")
    a, b = copy.deepcopy(model), copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(4, 1, 28, 28, generator=g), torch.randint(0, 10, (4,), generator=g))
    plain, engine = _plain(a, batch, 0.01), _engine(b, card, batch, 0.01, False, torch.device("cpu"))
    for i in range(2):
        torch.manual_seed(i)  # the same dropout masks
        plain()
        torch.manual_seed(i)
        engine()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=name)
    r = train_speed("cnn_svm_mnist", batch=4, steps=1, warmup=1, rounds=1, modes=("plain", "engine"))
    assert set(r["modes"]) == {"plain", "engine"} and r["modes"]["plain"]["vs_plain"] == 1.0
    assert all(m["items_per_s"] > 0 for m in r["modes"].values())


def test_markdown_rows_for_quoted_tables(result):
    row = compare_markdown(result)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == len(COMPARE_HEADER.splitlines()[0].strip("|").split("|")) == 6
    assert cells[0].startswith("eca_resnet18 vs timm:test_resnet, batch 2, 32x32 px")
    r = result["compare"]["ratios"]
    assert cells[1].startswith(f"{r['eager']:.2f}x (") and cells[2].startswith(f"{r['deploy']:.2f}x (")
    assert "GFLOP/s GEMM" in cells[5]
    row = deploy_markdown(result)
    assert row.startswith("| eca_resnet18 (11.69M -> 11.68M params), batch 2") and row.count("|") == 5
    assert f"torch {torch.__version__}" in environment() and f"timm {__import__('timm').__version__}" in environment()


def test_bench_table_script_runs(monkeypatch, capsys):
    """scripts/bench_table.py (the README's Performance figures) on tiny stand-ins of its configurations."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_table.py"
    spec = importlib.util.spec_from_file_location("bench_table", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "ALL_MODES", ("eager", "deploy"))
    monkeypatch.setattr(script, "COMPARE", ({"model": "eca_resnet18", "compare": "timm:test_resnet", "batch": 2,
                                              "size": 32},))
    monkeypatch.setattr(script, "DEPLOY", ({"model": "eca_resnet18", "batch": 2, "size": 32},))
    monkeypatch.setattr(script, "ESPCN", {"model": "espcn_x3", "batch": 1, "size": "48x48", "threads": 1})
    script.main(["--rounds", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert COMPARE_HEADER in out and DEPLOY_HEADER in out and "ESPCN x3: a 16x16 Y frame to 48x48" in out
    assert out.count("| eca_resnet18 vs timm:test_resnet") == 2  # printed as measured, then in the table


def test_bench_feeds_a_density_model_integer_levels():
    """A task whose bench_spec says int64 inputs (the Axial Transformer's grey levels) gets levels, not floats."""
    res = bench("axial_transformer_digits", batch=2, modes=("eager",), rounds=1, threads=1)
    assert res["input_dtype"] == "int64" and res["levels"] == 17 and res["modes"]["eager"]["throughput"] > 0


def test_a_clip_model_of_frame_convs_skips_channels_last_only():
    """LRCN runs 2-D convs over the frames of a 5-D clip: its 4-D weights cannot take channels_last_3d, so that mode is
    skipped with a reason and the other modes run in the default layout (before: every mode but eager raised)."""
    res = bench("lrcn_small", batch=2, modes=("eager", "channels_last", "bf16"), rounds=1, threads=1)
    modes = res["modes"]
    assert "channels_last_3d" in modes["channels_last"]["skipped"]
    assert modes["bf16"]["throughput"] > 0 and "skipped" not in modes["bf16"]
    assert res["frames_per_clip"] == 16  # frames/s = clips/s x 16
