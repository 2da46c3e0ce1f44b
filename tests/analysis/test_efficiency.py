"""VoVNet's efficiency measures (paper 53, arXiv 1904.09730, Sec. 3.1): the memory access cost of a
convolution against the paper's closed form, exact peak activation memory of a hand-sized network, the
paper's qualitative claim on counted (deterministic) memory access per multiply-add, and a small timed run
through ``convzoo.bench``."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import convzoo
from convzoo.analysis.efficiency import (
    conv_memory_access,
    efficiency,
    format_table,
    main,
    memory_access_cost,
    memory_profile,
)
from convzoo.errors import ConvzooError

pytestmark = pytest.mark.paper(53)


@pytest.mark.claim(paper=53, artefact="vovnet_efficiency",
                   claim="memory access cost of a conv = the paper's hw(c_i + c_o) + k^2 c_i c_o (Sec. 3.1)")
@pytest.mark.parametrize("c_i, c_o, k, h, w", [(16, 32, 3, 14, 10), (64, 64, 1, 7, 7), (3, 8, 5, 9, 12)])
def test_memory_access_of_one_conv_is_the_paper_formula(c_i, c_o, k, h, w):
    conv = nn.Conv2d(c_i, c_o, k, padding=k // 2, bias=False)
    out = memory_access_cost(conv, torch.randn(1, c_i, h, w))
    assert out["memory_access"] == h * w * (c_i + c_o) + k * k * c_i * c_o  # Sec. 3.1, as written in the paper
    assert out["conv_macs"] == h * w * k * k * c_i * c_o and out["layers"] == 1
    # a strided, grouped conv reads the input map, writes the (smaller) output map, reads c_i c_o k^2 / g weights
    strided = nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=4)
    assert memory_access_cost(strided, torch.randn(1, 8, 10, 10))["memory_access"] \
        == 10 * 10 * 8 + 5 * 5 * 12 + 9 * 8 * 12 // 4 == conv_memory_access(10, 10, 8, 5, 5, 12, 3, 4)
    with pytest.raises(ConvzooError, match="batch of 1"):
        memory_access_cost(conv, torch.randn(2, c_i, h, w))


def test_peak_activation_memory_is_exact():
    """conv 3->8 (out 8x32x32 fp32), in-place ReLU, conv 8->8: at most two 8x32x32 maps live at once."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1)).eval()
    x = torch.randn(1, 3, 32, 32)
    prof = memory_profile(net, x)
    one_map = 8 * 32 * 32 * 4
    assert prof["peak_activation_mib"] * 2 ** 20 == 2 * one_map
    weights = sum(p.numel() for p in net.parameters()) * 4
    # traffic: conv1 reads x + its weights and writes a map; ReLU reads and writes it; conv2 likewise
    assert prof["traffic_mib"] * 2 ** 20 == x.numel() * 4 + weights + 5 * one_map


@pytest.mark.claim(paper=53, artefact="vovnet_efficiency",
                   claim="VoVNet-39/57 have less memory access per multiply-add than DenseNet-121/161/201 "
                         "(counted at 224; the paper's Sec. 3.1 argument)")
def test_vovnet_accesses_less_memory_per_mac_than_densenet():
    ratios = {}
    with torch.device("meta"):
        x = torch.empty(1, 3, 224, 224)
        for name in ("vovnet39", "vovnet57"):
            c = memory_access_cost(convzoo.create_model(name).eval(), x)
            ratios[name] = c["memory_access"] / c["conv_macs"]
        for name in ("densenet121", "densenet161", "densenet201"):
            c = memory_access_cost(torchvision.models.get_model(name, weights=None).eval(), x)
            ratios[name] = c["memory_access"] / c["conv_macs"]
    assert max(ratios["vovnet39"], ratios["vovnet57"]) < min(ratios[d] for d in ("densenet121", "densenet161",
                                                                                  "densenet201"))


@pytest.mark.claim(paper=53, artefact="vovnet_efficiency",
                   claim="the side-by-side measurement runs through convzoo.bench and prints its table")
def test_efficiency_runs_on_small_inputs(capsys):
    rows = efficiency(["vovnet27_slim"], size=32, batch=1, rounds=1, threads=1)
    row = rows[0]
    for key in ("params", "macs", "memory_access", "access_per_mac", "peak_activation_mib", "traffic_mib",
                "latency_ms", "throughput", "gflops", "peak_mem_mib"):
        assert row[key] is not None and row[key] >= 0, key
    assert row["params"] == 3_525_736 and row["macs"] == row["conv_macs"]  # only convs + the classifier
    counted = efficiency(["torchvision:resnet18"], size=32, timed=False)
    assert "latency_ms" not in counted[0] and counted[0]["params"] == 11_689_512  # torchvision's count
    assert "| vovnet27_slim |" in format_table(rows) and "b1 latency" not in format_table(counted)
    assert main(["--counts-only", "--size", "32", "torchvision:resnet18"]) == 0
    assert "torchvision:resnet18" in capsys.readouterr().out
    with pytest.raises(ConvzooError, match="torchvision:NAME"):
        efficiency(["timm:resnet18"], timed=False)
