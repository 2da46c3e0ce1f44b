"""Paper 47, multi-digit number recognition (arXiv 1312.6082): the network.

Parameter counts of the paper-like and port-compatible variants from a closed form written here from the
layer sizes (fact sheet G3 "Paper 47" Sec. 3), the pooling arithmetic (54 -> 7), maxout and subtractive
normalisation against their definitions, and the port variant against an independent re-statement of
potterhsu/SVHNClassifier-PyTorch ``model.py`` with its weights loaded through ``remap_state_dict``.
Full-size models are counted on the meta device; the port parity runs once at batch 1 in eval mode.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.errors import ConvzooError
from convzoo.models.multidigit import (
    Maxout2d,
    MultiDigitNet,
    SubtractiveNorm2d,
    pooled_size,
    remap_state_dict,
)
from convzoo.registry import count_params
from convzoo.testing import randomise_bn

pytestmark = pytest.mark.paper(47)

# fact sheet G3 "Paper 47" Sec. 3 / issue 11
SHEET_PAPER_LIKE, SHEET_PORT = 42_858_329, 42_868_734
WIDTHS = [48, 64, 128, 160, 192, 192, 192, 192]  # paper Sec. 5.1


def closed_form(maxout: int, bn: bool, digit_classes: int, grid: int = 7, fc: int = 3072, k: int = 5,
                widths=tuple(WIDTHS)) -> int:
    """Parameters of 8 conv k x k layers (+ biases; maxout multiplies the first layer's filters; BN 2 per
    channel), FC (widths[-1] grid^2 -> fc -> fc) and the heads (7 lengths + 5 x digit_classes)."""
    total, c_in = 0, 3
    for i, w in enumerate(widths):
        filters = w * (maxout if i == 0 else 1)
        total += filters * (c_in * k * k + 1) + (2 * w if bn else 0)
        c_in = w
    total += (c_in * grid * grid + 1) * fc + (fc + 1) * fc
    total += (fc + 1) * 7 + 5 * (fc + 1) * digit_classes
    return total


def _meta(name: str):
    with torch.device("meta"):
        return convzoo.create_model(name)


@pytest.mark.claim(paper=47, artefact="multidigit_net",
                   claim="42,858,329 parameters (sheet, paper-like: maxout x3, no BN, 10-way heads) = closed form")
@pytest.mark.claim(paper=47, artefact="multidigit_net_port",
                   claim="42,868,734 parameters (issue / potterhsu port: Conv-BN-ReLU, 11-way heads) = closed form")
@pytest.mark.claim(paper=47, artefact="multidigit_small", claim="503,833 parameters = closed form of its widths")
def test_counts_from_the_closed_form():
    assert closed_form(maxout=3, bn=False, digit_classes=10) == SHEET_PAPER_LIKE
    assert closed_form(maxout=1, bn=True, digit_classes=11) == SHEET_PORT
    assert count_params(_meta("multidigit_net")) == SHEET_PAPER_LIKE
    # the CPU-scale width: 36 px -> 19, 20, 11, 12, 7, 8, 5, 6: a 6 x 6 map
    small = closed_form(maxout=1, bn=True, digit_classes=10, grid=6, fc=256, widths=(16, 16, 24, 24, 32, 32, 32, 32))
    assert count_params(_meta("multidigit_small")) == small == convzoo.get_card("multidigit_small").params
    assert count_params(_meta("multidigit_net_port")) == SHEET_PORT
    # the sheet's split of the port's count: conv 4,333,504, FC 38,344,704, heads 190,526
    port = _meta("multidigit_net_port")
    assert count_params(port.features) == 4_333_504
    assert count_params(port.fc1) + count_params(port.fc2) == 38_344_704
    assert count_params(port.head_length) + count_params(port.head_digits) == 190_526
    # the difference: BN (2 x 1,168), the 11th class (5 x 3,073), maxout's extra first-layer filters (2 x 48 x 76)
    assert SHEET_PORT - SHEET_PAPER_LIKE == 2 * 1168 + 5 * 3073 - 2 * 48 * 76


def test_pool_arithmetic_and_output_layout():
    """Pools of kernel 2, padding 1, strides 2,1,2,...: 54 -> 28, 29, 15, 16, 9, 10, 6, 7."""
    strides = [2, 1] * 4
    sides, n = [], 54
    for s in strides:
        n = pooled_size(n, [s])
        sides.append(n)
    assert sides == [28, 29, 15, 16, 9, 10, 6, 7]
    net = _meta("multidigit_net")
    assert net.grid == 7 and net.fc1.in_features == 192 * 49 and net.strides == tuple(strides)
    with torch.device("meta"):
        feats = net.features(torch.empty(2, 3, 54, 54))
        out = net(torch.empty(2, 3, 54, 54))
    assert feats.shape == (2, 192, 7, 7) and out.shape == (2, 7 + 5 * 10)
    assert _meta("multidigit_net_port")(torch.empty(1, 3, 54, 54, device="meta")).shape == (1, 7 + 5 * 11)


def test_maxout_is_the_max_of_its_filters():
    torch.manual_seed(0)
    m = Maxout2d(3, 4, 5, pieces=3)
    x = torch.randn(2, 3, 9, 9)
    y = F.conv2d(x, m.conv.weight, m.conv.bias, padding=2)  # (2, 12, 9, 9): unit c has filters 3c .. 3c + 2
    want = torch.stack([y[:, 3 * c:3 * c + 3].max(1).values for c in range(4)], 1)
    torch.testing.assert_close(m(x), want)


def test_subtractive_normalisation_definition():
    """y = x - sum_{c,p,q} w_pq x_c,i+p,j+q / C with binomial 3x3 weights, renormalised at the borders."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 5, 6)
    w = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    want = torch.empty_like(x)
    for i in range(5):
        for j in range(6):
            acc, wsum = 0.0, 0.0
            for p in (-1, 0, 1):
                for q in (-1, 0, 1):
                    if 0 <= i + p < 5 and 0 <= j + q < 6:
                        acc += w[p + 1, q + 1] * x[0, :, i + p, j + q].mean()
                        wsum += w[p + 1, q + 1]
            want[0, :, i, j] = x[0, :, i, j] - acc / wsum
    torch.testing.assert_close(SubtractiveNorm2d()(x), want)
    assert not list(SubtractiveNorm2d().parameters()) and not SubtractiveNorm2d().state_dict()
    flat = torch.full((1, 3, 4, 4), 2.5)
    assert SubtractiveNorm2d()(flat).abs().max() < 1e-6  # a constant map has nothing left


class PotterhsuModel(nn.Module):
    """potterhsu/SVHNClassifier-PyTorch ``model.py`` re-stated from its layer list (keys ``_hidden1.0``,
    ``_digit1.0``, ...): 8 x [Conv 5x5 pad 2, BN, ReLU, MaxPool(2, s, pad 1), Dropout 0.2], FC 9408-3072-3072
    with ReLU, heads 7 and 5 x 11; forward returns the six logits."""

    def __init__(self):
        super().__init__()
        c = 3
        for i, (w, s) in enumerate(zip(WIDTHS, [2, 1] * 4), 1):
            setattr(self, f"_hidden{i}", nn.Sequential(nn.Conv2d(c, w, 5, padding=2), nn.BatchNorm2d(w), nn.ReLU(),
                                                       nn.MaxPool2d(2, s, padding=1), nn.Dropout(0.2)))
            c = w
        self._hidden9 = nn.Sequential(nn.Linear(192 * 7 * 7, 3072), nn.ReLU())
        self._hidden10 = nn.Sequential(nn.Linear(3072, 3072), nn.ReLU())
        self._digit_length = nn.Sequential(nn.Linear(3072, 7))
        for k in range(1, 6):
            setattr(self, f"_digit{k}", nn.Sequential(nn.Linear(3072, 11)))

    def forward(self, x):
        for i in range(1, 9):
            x = getattr(self, f"_hidden{i}")(x)
        x = self._hidden10(self._hidden9(x.view(x.size(0), -1)))
        return (self._digit_length(x), *(getattr(self, f"_digit{k}")(x) for k in range(1, 6)))


@pytest.mark.claim(paper=47, artefact="multidigit_net_port",
                   claim="equals potterhsu/SVHNClassifier-PyTorch model.py with its weights (remap_state_dict), eval")
def test_port_variant_equals_potterhsu_model():
    torch.manual_seed(0)
    ref = randomise_bn(PotterhsuModel()).eval()
    ours = convzoo.create_model("multidigit_net_port").eval()
    missing, unexpected = ours.load_state_dict(remap_state_dict(ref.state_dict()), strict=True)
    assert not missing and not unexpected
    x = torch.randn(1, 3, 54, 54)
    with torch.no_grad():
        want = torch.cat(ref(x), 1)
        got = ours(x)
    assert sum(p.numel() for p in ref.parameters()) == SHEET_PORT
    torch.testing.assert_close(got, want, atol=1e-5 * max(1.0, float(want.abs().max())), rtol=1e-5)


def test_other_sizes_and_errors():
    """A model built for 54 x 54 runs on other sizes (the map pooled to its 7 x 7 grid); at 54 nothing is
    pooled. Bad heads/strides are one-line errors."""
    small = convzoo.create_model("multidigit_small").eval()
    with torch.no_grad():
        assert small(torch.randn(2, 3, 36, 36)).shape == (2, 57)
        assert small(torch.randn(1, 3, 28, 28)).shape == (1, 57)
    with pytest.raises(ConvzooError, match="10 classes"):
        MultiDigitNet(num_classes=7)
    with pytest.raises(ConvzooError, match="stride"):
        MultiDigitNet(strides=(2, 1))
