"""Shape bias (seed paper 11, arXiv 2410.08049 / RepLKNet Sec. 5; Geirhos et al. cue-conflict, arXiv 1811.12231):
the metric on constructed cases with known answers, the cue-conflict stimulus builder on real digits, and
oracle classifiers whose shape bias is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from convzoo.analysis.shape_bias import (
    ShapeBias,
    cue_conflict,
    measure_shape_bias,
    shape_bias,
    silhouette,
    tile_texture,
)
from convzoo.errors import ConvzooError

pytestmark = pytest.mark.paper(11)


@pytest.mark.claim(paper=11, artefact="shape_bias",
                   claim="shape bias = shape / (shape + texture) decisions over conflicting stimuli whose prediction matches one cue; constructed case 6 / (6 + 2) = 0.75, agreeing stimuli excluded, 'other' decisions not counted")
def test_metric_on_a_constructed_case():
    shape = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3]
    texture = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3]  # the last three agree: no conflict
    pred = [0, 1, 2, 3, 4, 5, 7, 8, 5, 5, 9, 9, 9]  # 6 shape, 2 texture (7, 8), 2 neither
    r = shape_bias(pred, shape, texture)
    assert r == ShapeBias(shape=6, texture=2, other=2, excluded=3)
    assert r.value == 6 / 8 and r.cue_fraction == 8 / 10
    # closed form over random decisions: bias = #(p == s) / (#(p == s) + #(p == t)) on s != t
    rng = np.random.default_rng(0)
    s, t, p = rng.integers(0, 5, 500), rng.integers(0, 5, 500), rng.integers(0, 5, 500)
    c = s != t
    expected = (p[c] == s[c]).sum() / ((p[c] == s[c]).sum() + (p[c] == t[c]).sum())
    assert math.isclose(shape_bias(p, s, t).value, expected)
    assert math.isnan(shape_bias([3], [1], [2]).value)  # no cue followed
    with pytest.raises(ConvzooError):
        shape_bias([1, 2], [1], [2])


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.images / 16.0, dtype=torch.float32), torch.tensor(d.target)


@pytest.mark.claim(paper=11, artefact="shape_bias",
                   claim="cue-conflict stimuli from real digits: silhouette of the shape digit (bilinear upsampling > 0.5) filled with tiles of texture digits, zero outside (closed form); a shape oracle scores 1.0 and a texture oracle 0.0")
def test_cue_conflict_stimuli_and_oracles():
    x, y = _digits()
    size = 48
    # tiling: cell (r, c) holds tile (r * cols + c) mod k
    tiles = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    field = tile_texture(tiles, 10)
    assert field.shape == (2, 10, 10)
    assert torch.equal(field[1, 4:8, 0:4], tiles[1, (1 * 3 + 0) % 3]) and torch.equal(field[0, 0:4, 8:10], tiles[0, 2, :, :2])
    shapes, shape_lab = x[:20], y[:20]
    tex_lab = (shape_lab + 3) % 10
    tex_tiles = torch.stack([x[torch.nonzero(y == c)[:4, 0]] for c in tex_lab.tolist()])  # (20, 4, 8, 8)
    stim = cue_conflict(shapes, tex_tiles, size)
    assert stim.shape == (20, 1, size, size)
    mask = silhouette(shapes, size)
    up = torch.nn.functional.interpolate(shapes[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    assert torch.equal(mask, (up > 0.5).float()) and 0.1 < float(mask.mean()) < 0.6
    torch.testing.assert_close(stim[:, 0], mask * tile_texture(tex_tiles, size))
    assert torch.all(stim[:, 0][mask == 0] == 0)

    class Oracle(nn.Module):  # reads the class off a lookup of the stimulus index carried in a pixel
        def __init__(self, labels):
            super().__init__()
            self.labels = labels

        def forward(self, inp):
            return nn.functional.one_hot(self.labels[inp[:, 0, 0, 0].long()], 10).float()

    indexed = stim.clone()
    indexed[:, 0, 0, 0] = torch.arange(20, dtype=torch.float32)
    assert measure_shape_bias(Oracle(shape_lab), indexed, shape_lab, tex_lab).value == 1.0
    assert measure_shape_bias(Oracle(tex_lab), indexed, shape_lab, tex_lab, batch_size=7).value == 0.0
    with pytest.raises(ConvzooError):
        cue_conflict(shapes, tex_tiles[:3], size)
    with pytest.raises(ConvzooError):
        tile_texture(tiles[0], 8)
