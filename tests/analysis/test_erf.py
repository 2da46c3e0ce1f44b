"""The effective-receptive-field tool (paper 11's analysis): area ratios on hand-made maps, the exact ERF
of one convolution, and the paper's claim that large kernels give a larger ERF (at initialisation)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convzoo.analysis import area_ratio, effective_receptive_field
from convzoo.errors import ConvzooError
from convzoo.models.unireplknet import UniRepLKNet


@pytest.mark.claim(paper=11, artefact="effective_receptive_field",
                   claim="ERF of one convolution is exactly its kernel footprint; area ratios of known maps")
def test_area_ratio_of_a_point_and_of_a_uniform_map():
    point = torch.zeros(21, 21)
    point[10, 10] = 1.0
    assert area_ratio(point, 0.99) == 1 / 21 ** 2
    flat = torch.ones(21, 21)
    for t in (0.2, 0.5, 0.99):
        r = area_ratio(flat, t)
        assert t <= r <= t + 2 * (2 * 21 + 1) / 21 ** 2  # the smallest odd square holding t of the area
    with pytest.raises(ConvzooError, match="all zero"):
        area_ratio(torch.zeros(5, 5), 0.5)


@pytest.mark.claim(paper=11, artefact="effective_receptive_field",
                   claim="ERF of one convolution is exactly its kernel footprint; area ratios of known maps")
@pytest.mark.parametrize("k", [1, 3, 7])
def test_erf_of_one_convolution_is_its_kernel_footprint(k):
    conv = nn.Conv2d(1, 1, k, padding=k // 2, bias=False)
    nn.init.constant_(conv.weight, 1.0)
    erf = effective_receptive_field(conv, torch.rand(2, 1, 15, 15) + 0.1)
    nonzero = erf.map.nonzero()
    assert nonzero.min(0).values.tolist() == [7 - k // 2] * 2 and nonzero.max(0).values.tolist() == [7 + k // 2] * 2
    assert erf.area_ratio[0.99] == pytest.approx(k * k / 225)


@pytest.mark.claim(paper=11, artefact="effective_receptive_field",
                   claim="large kernels give a larger ERF: UniRepLKNet with 13x13 vs 3x3 kernels, r(99 %) > 1.5x")
@pytest.mark.paper(11)
@pytest.mark.parametrize("seed", [0, 1])
def test_large_kernels_give_a_larger_effective_receptive_field(seed):
    """Paper 11 (abstract, Sec. on ERF): the same UniRepLKNet with 13x13 instead of 3x3 depth-wise kernels
    spreads the contribution to the stride-16 centre over a larger area (r at t = 99 %)."""
    images = torch.randn(8, 3, 96, 96, generator=torch.Generator().manual_seed(seed))
    ratios = {}
    for k in (3, 13):
        torch.manual_seed(seed)
        model = UniRepLKNet(depths=(1, 1, 3, 1), dims=(8, 16, 32, 64), kernel_sizes=tuple((k,) * d for d in (1, 1, 3, 1)),
                            layer_scale_init_value=1.0, num_classes=0)
        ratios[k] = effective_receptive_field(model, images, feature=2).area_ratio
    assert ratios[13][0.99] > 1.5 * ratios[3][0.99]
    assert all(ratios[13][t] >= ratios[3][t] for t in ratios[3])


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(ConvzooError, match=r"\(N, C, H, W\)"):
        effective_receptive_field(nn.Conv2d(1, 1, 3), torch.rand(1, 8, 8))
    with pytest.raises(ConvzooError, match="not a \\(B, C, h, w\\) map"):
        effective_receptive_field(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), torch.rand(1, 1, 8, 8))
