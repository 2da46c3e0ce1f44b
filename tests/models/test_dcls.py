"""Paper 39, DCLS (arXiv 2112.03740) and its Gaussian follow-up (arXiv 2306.00817).

Checks the DCLS layers (kernel construction and convolution equal to the reference package ``dcls``
0.1.1 with copied parameters for every version and 1D/2D/3D, axis conventions converted; exact sparse
kernels at integer positions; gradients w.r.t. positions by gradcheck; normalised kernels sum to the
weight; clamping; repulsion loss on hand-made positions; the optimizer grouping of positions), the
ConvNeXt / ConvNeXt-dcls models (parameter counts of the fact sheet, iso-parameters through the
per-stage shared positions, parity of ConvNeXt with timm and of a DCLS stage with the package's
layers, official checkpoint keys) and the DCLS training method through the engine hooks.
"""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.dcls import (
    PACKAGE_AXES,
    Dcls1d,
    Dcls2d,
    Dcls3d,
    construct_kernel,
    dcls_param_groups,
    position_parameters,
    repulsion_loss,
)
from convzoo.models.convnext_dcls import ConvNeXt, ConvNeXtStage, remap_state_dict
from convzoo.registry import count_params

pytestmark = pytest.mark.paper(39)

# fact sheet G1a "Paper 39" Sec. 3: sum of numel at 1000 classes
SHEET = {
    "convnext_tiny": 28_589_128,
    "convnext_small": 50_223_688,
    "convnext_base": 88_591_464,
    "convnext_dcls_tiny": 28_587_688,
    "convnext_dcls_small": 50_217_064,
    "convnext_dcls_base": 88_582_632,
}
# depths / dims (Liu et al. Table 9) and Kc (DCLS README / official convnext_dcls.py; fact sheet G1a Sec. 3)
PAPER_CFGS = {
    "convnext_tiny": {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768)},
    "convnext_small": {"depths": (3, 3, 27, 3), "dims": (96, 192, 384, 768)},
    "convnext_base": {"depths": (3, 3, 27, 3), "dims": (128, 256, 512, 1024)},
    "convnext_dcls_tiny": {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768), "dcls_kernel_count": 34},
    "convnext_dcls_small": {"depths": (3, 3, 27, 3), "dims": (96, 192, 384, 768), "dcls_kernel_count": 40},
    "convnext_dcls_base": {"depths": (3, 3, 27, 3), "dims": (128, 256, 512, 1024), "dcls_kernel_count": 40},
}
# fact sheet G1a "Paper 39" Sec. 3: MACs @224 in G, 3 decimals (timm ConvNeXt / official ConvNeXt-dcls + dcls 0.1.1)
SHEET_GMACS = {"tiny": (4.456, 4.970), "small": (8.684, 9.524), "base": (15.355, 16.475)}
LAYERS = {1: Dcls1d, 2: Dcls2d, 3: Dcls3d}
VERSIONS = ["bilinear", "v1", "gauss", "max"]
PKG_VERSION = {"bilinear": "v0", "v1": "v1", "gauss": "gauss", "max": "max"}


def _meta(name: str, **kwargs) -> ConvNeXt:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs)


def _random_layer(dims: int, version: str, seed: int = 0, size: int = 7, **kwargs):
    """A float64 layer with positions spread over the window (a few exactly on integers and edges)."""
    g = torch.Generator().manual_seed(seed)
    layer = LAYERS[dims](4, 6, 5, dilated_kernel_size=size, padding=size // 2, groups=2, version=version,
                         **kwargs).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g, dtype=torch.float64))
        layer.bias.copy_(torch.randn(layer.bias.shape, generator=g, dtype=torch.float64))
        P = (torch.rand(layer.P.shape, generator=g, dtype=torch.float64) * 2 - 1) * (size // 2)
        P[..., 0] = P[..., 0].round()  # integer positions
        P[0, :, :, 1] = size // 2  # on the window's edges, where the bilinear gradient is one-sided
        P[-1, :, :, 2] = -(size // 2)
        layer.P.copy_(P)
        if layer.SIG is not None:
            layer.SIG.copy_(torch.rand(layer.SIG.shape, generator=g, dtype=torch.float64) - 0.5)
    return layer


def _package_layer(ours, dims: int, version: str):
    """The reference package's layer with our parameters copied (positions/widths axes converted)."""
    from DCLS.construct import modules
    logging.disable(logging.WARNING)  # the package logs that its CUDA fast path is off
    try:
        cls = {1: modules.Dcls1d, 2: modules.Dcls2d, 3: modules.Dcls3d}[dims]
        kw = {"use_implicit_gemm": False} if dims == 2 else {}
        ref = cls(ours.in_channels, ours.out_channels, ours.kernel_count, stride=ours.stride, padding=ours.padding,
                  dilated_kernel_size=ours.dilated_kernel_size, groups=ours.groups, version=PKG_VERSION[version],
                  **kw).double()
    finally:
        logging.disable(logging.NOTSET)
    axes = list(PACKAGE_AXES[(dims, ours.version)])
    with torch.no_grad():
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
        ref.P.copy_(ours.P[axes])
        if ours.SIG is not None:
            ref.SIG.copy_(ours.SIG[axes])
    return ref, axes


# --- the layers against the reference package ----------------------------------------------------------

@pytest.mark.claim(paper=39, artefact="Dcls2d",
                   claim="output, constructed kernel and all gradients equal the dcls 0.1.1 package (1D/2D/3D, bilinear/v1/gauss/max, float64, axes converted)")
@pytest.mark.claim(paper=39, artefact="dcls_construct_kernel",
                   claim="bilinear (v0), v1, max and gauss constructions equal the package's ConstructKernel1d/2d/3d")
@pytest.mark.parity
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("version", VERSIONS)
def test_parity_with_dcls_package(version, dims):
    """Constructed kernel, output and every gradient equal the package's (float64, copied parameters)."""
    ours = _random_layer(dims, version)
    ref, axes = _package_layer(ours, dims, version)
    kernel_ref = ref.DCK(ref.weight, ref.P, ref.SIG)
    assert (ours.kernel() - kernel_ref).abs().max().item() <= 1e-12
    x = torch.randn(2, 4, *(9,) * dims, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a, b = ours(x), ref(x)
    assert a.abs().max() > 0.1 and (a - b).abs().max().item() <= 1e-12
    g = torch.randn_like(a)
    (a * g).sum().backward()
    (b * g).sum().backward()
    for name in ("weight", "bias", "P", "SIG"):
        mine = getattr(ours, name)
        if mine is None:
            continue
        theirs = getattr(ref, name).grad
        if name in ("P", "SIG"):
            theirs = theirs[torch.argsort(torch.tensor(axes))]  # back to our axis order
        assert mine.grad.abs().max() > 0
        torch.testing.assert_close(mine.grad, theirs, atol=1e-10, rtol=1e-10)


@pytest.mark.claim(paper=39, artefact="dcls_construct_kernel",
                   claim="the package's v0 and v1 read P[0] as rows and columns respectively; ours as rows")
@pytest.mark.parity
def test_package_axis_conventions_differ_by_version():
    """The trap of the sheet: the package's v0 reads P[0] as rows, its v1/gauss as columns."""
    from DCLS.construct import modules
    logging.disable(logging.WARNING)
    try:
        kernels = {}
        for v in ("v0", "v1"):
            ref = modules.Dcls2d(1, 1, 1, dilated_kernel_size=7, version=v, use_implicit_gemm=False)
            with torch.no_grad():
                ref.weight.fill_(1.0)
                ref.P.copy_(torch.tensor([2.0, -1.0]).reshape(2, 1, 1, 1))
            kernels[v] = ref.DCK(ref.weight, ref.P, ref.SIG)[0, 0].detach()
    finally:
        logging.disable(logging.NOTSET)
    ours = Dcls2d(1, 1, 1, dilated_kernel_size=7)
    with torch.no_grad():
        ours.weight.fill_(1.0)
        ours.P.copy_(torch.tensor([2.0, -1.0]).reshape(2, 1, 1, 1))
    k = ours.kernel()[0, 0].detach()
    assert k[3 + 2, 3 - 1] == 1 and k.sum() == 1  # ours: P[0] = row offset, P[1] = column offset
    assert torch.equal(kernels["v0"], k) and kernels["v1"][3 - 1, 3 + 2] > 0.99  # v1: transposed


# --- properties of the construction ---------------------------------------------------------------------

@pytest.mark.claim(paper=39, artefact="Dcls2d",
                   claim="integer positions give an exact sparse kernel; Dcls == F.conv1d/2d/3d with it")
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_integer_positions_give_exact_sparse_kernel(dims):
    """Integer positions: the bilinear kernel is the weights scattered on the grid; Dcls == F.convNd with it."""
    g = torch.Generator().manual_seed(dims)
    size, kc = 7, 6
    layer = LAYERS[dims](3, 4, kc, dilated_kernel_size=size, padding=size // 2, stride=2, bias=True)
    coords = torch.stack([torch.randperm(size ** dims, generator=g)[:kc] for _ in range(4 * 3)])  # distinct cells
    sparse = torch.zeros(4, 3, *(size,) * dims)
    with torch.no_grad():
        cells = coords.reshape(4, 3, kc)
        for d in range(dims):
            stride = size ** (dims - 1 - d)
            layer.P[d].copy_((cells // stride) % size - size // 2)
        flat = sparse.view(4, 3, -1)
        flat.scatter_(2, cells, layer.weight)
    kernel = layer.kernel()
    assert torch.equal(kernel, sparse)
    x = torch.randn(2, 3, *(11,) * dims, generator=g)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    assert torch.equal(layer(x), conv(x, sparse, layer.bias, stride=2, padding=size // 2))


@pytest.mark.claim(paper=39, artefact="Dcls2d",
                   claim="gradient w.r.t. positions passes gradcheck (float64, non-integer positions)")
@pytest.mark.parametrize("version", VERSIONS)
def test_gradcheck_positions(version):
    """d output / d (P, weight, SIG) by finite differences in float64 at non-integer positions."""
    torch.manual_seed(0)
    layer = Dcls2d(2, 2, 3, dilated_kernel_size=5, padding=2, groups=2, version=version).double()
    with torch.no_grad():
        layer.P.copy_(torch.tensor([[0.3, -1.6, 1.25], [-0.7, 0.45, -1.35]], dtype=torch.float64)
                      .reshape(2, 1, 1, 3) + 0.05 * torch.rand_like(layer.P))  # >= 0.05 from any integer
        if layer.SIG is not None:
            layer.SIG.copy_(0.2 + 0.3 * torch.rand_like(layer.SIG))
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)

    def fn(P, W, *sig):
        return construct_kernel(W, P, (5, 5), version, sig[0] if sig else None)

    inputs = [layer.P.detach().clone().requires_grad_(), layer.weight.detach().clone().requires_grad_()]
    if layer.SIG is not None:
        inputs.append(layer.SIG.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(fn, tuple(inputs), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(lambda P: layer(x, P), (inputs[0],), eps=1e-6, atol=1e-7)


@pytest.mark.claim(paper=39, artefact="dcls_construct_kernel",
                   claim="normalised versions (v1/max/gauss) sum to the weights; bilinear keeps the mass inside the window")
@pytest.mark.parametrize("version", ["v1", "gauss", "max", "bilinear"])
def test_kernel_sums_to_weights(version):
    """Normalised versions (and bilinear inside the window): each element's spread sums to its weight."""
    layer = Dcls2d(3, 3, 4, dilated_kernel_size=9, groups=3, version=version)
    with torch.no_grad():
        layer.P.uniform_(-3.0, 3.0)  # well inside the +-4 window: no interpolation mass is cut off
        if layer.SIG is not None:
            layer.SIG.uniform_(0.0, 1.0)  # gauss sigma up to 1.27: its tails leave the window (renormalised)
    kernel = layer.kernel()
    torch.testing.assert_close(kernel.sum((-2, -1)), layer.weight.sum(-1), atol=1e-5, rtol=1e-6)
    # one element alone: its spread kernel sums to exactly its weight (normalisation per element)
    single = construct_kernel(torch.tensor([[[2.5]]]), torch.tensor([0.3, -3.9]).reshape(2, 1, 1, 1), (9, 9),
                              version, torch.full((2, 1, 1, 1), 0.8))
    assert abs(single.sum().item() - 2.5) <= 1e-5  # bilinear: 0.9 of the mass at -4, 0.1 at -3
    if version == "gauss":  # the Gaussian is cut by the window edge, yet the kernel still sums to the weight
        unnormalised = torch.exp(-0.5 * ((torch.arange(9.0) - 4 + 3.9) / 1.07) ** 2).sum()
        assert unnormalised < 0.97 * (2 * torch.pi) ** 0.5 * 1.07


@pytest.mark.claim(paper=39, artefact="Dcls2d",
                   claim="positions init N(0, 0.5) clamped; clamp_parameters / post_optimizer_step keep them in the window")
def test_clamp_keeps_positions_in_window():
    layer = Dcls2d(2, 2, 8, dilated_kernel_size=(7, 8), padding=3)
    with torch.no_grad():
        layer.P.uniform_(-50, 50)
    assert layer.P.abs().max() > 10
    layer.post_optimizer_step()  # the engine hook
    assert layer.P[0].min() == -3 and layer.P[0].max() == 3  # odd size 7: [-3, 3]
    assert layer.P[1].min() == -4 and layer.P[1].max() == 3  # even size 8: [-4, 3], never index 8
    # every element is now inside the window: a bilinear kernel keeps all of its mass
    torch.testing.assert_close(layer.kernel().sum((-2, -1)), layer.weight.detach().sum(-1))
    # shared positions are clamped by their owner, the stage
    stage = ConvNeXtStage(8, 8, 2, False, [0.0, 0.0], 1e-6, 7,
                          {"kernel_count": 5, "dilated_kernel_size": 9, "version": "bilinear", "shared": True})
    with torch.no_grad():
        stage.P.mul_(100)
    stage.post_optimizer_step()
    assert stage.P.abs().max() == 4
    assert all(b.conv_dw.P is None for b in stage.blocks)


@pytest.mark.claim(paper=39, artefact="Dcls2d",
                   claim="positions init N(0, 0.5) clamped; clamp_parameters / post_optimizer_step keep them in the window")
def test_init_positions_and_shapes():
    torch.manual_seed(0)
    layer = Dcls2d(96, 96, kernel_count=34, dilated_kernel_size=17, padding=8, groups=96, version="gauss")
    assert layer.weight.shape == (96, 1, 34) and layer.P.shape == layer.SIG.shape == (2, 96, 1, 34)
    assert torch.all(layer.SIG == 0.23)
    assert 0.45 < layer.P.std().item() < 0.55 and layer.P.abs().max() <= 8  # N(0, 0.5), clamped
    assert Dcls2d(4, 4, 3, dilated_kernel_size=5).SIG is None  # bilinear (= "v0"): positions only
    assert Dcls2d(4, 4, 3, dilated_kernel_size=5, version="v0").version == "bilinear"


def test_bad_arguments():
    with pytest.raises(ConvzooError):
        Dcls2d(4, 4, 3, dilated_kernel_size=5, version="cubic")
    with pytest.raises(ConvzooError):
        Dcls2d(4, 6, 3, dilated_kernel_size=5, groups=4)
    with pytest.raises(ConvzooError):
        Dcls2d(4, 4, 0, dilated_kernel_size=5)
    with pytest.raises(ConvzooError):
        Dcls3d(4, 4, 3, dilated_kernel_size=(5, 5))
    with pytest.raises(ConvzooError):
        construct_kernel(torch.ones(2, 2, 3), torch.zeros(2, 2, 2, 4), (5, 5))
    shared = Dcls2d(4, 4, 3, dilated_kernel_size=5, padding=2, own_positions=False)
    with pytest.raises(ConvzooError):
        shared(torch.randn(1, 4, 6, 6))
    assert shared(torch.randn(1, 4, 6, 6), torch.zeros(2, 4, 4, 3)).shape == (1, 4, 6, 6)
    with pytest.raises(ConvzooError):
        convzoo.create_model("convnext_dcls_tiny", depths=(3, 3, 9))


# --- repulsion loss and optimizer groups --------------------------------------------------------------

@pytest.mark.claim(paper=39, artefact="dcls_training",
                   claim="repulsion loss: positive for elements closer than 1 pixel, zero at >= 1, mean over pairs / channels / layers")
def test_repulsion_loss_hand_made_positions():
    def pos(*points):  # (n=2, O=1, I=1, Kc)
        return torch.tensor(points, dtype=torch.float64).T.reshape(2, 1, 1, len(points))

    assert repulsion_loss(pos((0.0, 0.0), (0.5, 0.0))).item() == pytest.approx(0.5)  # mean over 1 pair of 1 - 0.5
    assert repulsion_loss(pos((0.0, 0.0), (0.6, 0.8))).item() == 0.0  # exactly 1 apart
    assert repulsion_loss(pos((0.0, 0.0), (3.0, -2.0), (-4.0, 4.0))).item() == 0.0
    # three elements: pairs (0.5 apart, 0.25 apart, 0.75 apart on a line): mean of 0.5, 0.75, 0.25
    assert repulsion_loss(pos((0.0, 0.0), (0.0, 0.5), (0.0, 0.75))).item() == pytest.approx(0.5)
    # averaged over (out, in) pairs and over tensors
    two = torch.cat([pos((0.0, 0.0), (0.5, 0.0)), pos((0.0, 0.0), (2.0, 0.0))], dim=1)  # O = 2
    assert repulsion_loss(two).item() == pytest.approx(0.25)
    assert repulsion_loss([pos((0.0, 0.0), (0.5, 0.0)), pos((0.0, 0.0), (2.0, 0.0))]).item() == pytest.approx(0.25)
    # its gradient pushes close elements apart
    p = pos((0.0, 0.0), (0.5, 0.0)).requires_grad_()
    repulsion_loss(p).backward()
    assert p.grad[0, 0, 0, 0] > 0 and p.grad[0, 0, 0, 1] < 0  # descent moves x0 left, x1 right


@pytest.mark.claim(paper=39, artefact="dcls_training",
                   claim="model.regularization_loss = rep^2 from epoch 21 (official: epoch > 20), None before")
def test_regularization_loss_schedule():
    model = convzoo.create_model("convnext_dcls_tiny", depths=(1, 1, 1, 1), dims=(8, 8, 16, 16), num_classes=3)
    positions = position_parameters(model)
    assert [p.shape for p in positions] == [(2, 8, 1, 34), (2, 8, 1, 34), (2, 16, 1, 34), (2, 16, 1, 34)]
    assert model.regularization_loss(0) is None and model.regularization_loss(20) is None  # official: epoch > 20
    value = model.regularization_loss(21)
    assert value.item() == pytest.approx(repulsion_loss(positions).item() ** 2) and value.item() > 0
    value.backward()
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in positions)
    custom = convzoo.create_model("convnext_dcls_tiny", depths=(1, 1, 1, 1), dims=(8, 8, 16, 16),
                                  repulsion_weight=0.5, repulsion_start_epoch=0)
    assert custom.regularization_loss(0).item() == pytest.approx(0.5 * repulsion_loss(position_parameters(custom)).item() ** 2)
    assert _meta("convnext_dcls_tiny", repulsion_weight=0.0).regularization_loss(99) is None
    assert _meta("convnext_tiny").regularization_loss(99) is None  # no positions


@pytest.mark.claim(paper=39, artefact="dcls_training",
                   claim="positions in their own group with lr x5 and no weight decay (helper and recipe globs agree)")
def test_position_param_groups():
    from convzoo.engine import load_recipe
    from convzoo.engine.optim import param_groups

    model = _meta("convnext_dcls_tiny")
    groups = {id(p): g for g in dcls_param_groups(model, lr=4e-3, weight_decay=0.05) for p in g["params"]}
    named = dict(model.named_parameters())
    assert groups[id(named["stages.2.P"])]["lr"] == pytest.approx(2e-2)
    assert groups[id(named["stages.2.P"])]["weight_decay"] == 0.0
    assert groups[id(named["stages.2.blocks.4.conv_dw.weight"])]["weight_decay"] == 0.05
    assert groups[id(named["stages.2.blocks.4.norm.weight"])]["weight_decay"] == 0.0
    assert groups[id(named["stages.2.blocks.4.conv_dw.bias"])]["weight_decay"] == 0.0
    # the paper recipe's globs split the same way in the engine
    opt = load_recipe("convnext_dcls_tiny_imagenet_paper")["optimizer"]
    engine = {id(p): g for g in param_groups(model, opt) for p in g["params"]}
    for name, p in named.items():
        mine, theirs = groups[id(p)], engine[id(p)]
        assert (mine["lr"], mine["weight_decay"]) == pytest.approx((theirs["lr"], theirs["weight_decay"])), name
    assert sum(len(g["params"]) for g in param_groups(model, opt) if g["lr_mult"] == 5.0) == 4  # one P per stage


# --- ConvNeXt / ConvNeXt-dcls --------------------------------------------------------------------------

@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny",
                   claim="parameter count equals the sheet (iso-parameter with ConvNeXt-T through per-stage shared positions)")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_small", claim="parameter count equals the sheet")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_base", claim="parameter count equals the sheet")
@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="parameter count equals the sheet (timm)")
@pytest.mark.claim(paper=39, artefact="convnext_small", claim="parameter count equals the sheet (timm)")
@pytest.mark.claim(paper=39, artefact="convnext_base", claim="parameter count equals the sheet (timm)")
@pytest.mark.parametrize("name", list(SHEET))
def test_params_match_sheet(name):
    assert count_params(_meta(name)) == SHEET[name] == convzoo.get_card(name).params


@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny",
                   claim="parameter count equals the sheet (iso-parameter with ConvNeXt-T through per-stage shared positions)")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_small", claim="parameter count equals the sheet")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_base", claim="parameter count equals the sheet")
@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_iso_parameters_through_shared_positions(size):
    cfg = PAPER_CFGS[f"convnext_dcls_{size}"]
    kc, dims, depths = cfg["dcls_kernel_count"], cfg["dims"], cfg["depths"]
    # per block: C*Kc + C (DCLS weights, bias) instead of C*49 + C; per stage: one 2*C*Kc position tensor
    delta = sum(d * (c * kc - c * 49) + 2 * c * kc for c, d in zip(dims, depths))
    assert SHEET[f"convnext_dcls_{size}"] - SHEET[f"convnext_{size}"] == delta
    per_block = count_params(_meta(f"convnext_dcls_{size}", dcls_shared_positions=False))
    assert per_block - SHEET[f"convnext_dcls_{size}"] == sum((d - 1) * 2 * c * kc for c, d in zip(dims, depths))


def _macs_224(model) -> int:
    with torch.device("meta"):
        x = torch.empty(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(x)
    return counter.get_total_flops() // 2


@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="MACs @224 equal timm's convnext_tiny (FlopCounterMode), the card's exact figure")
@pytest.mark.claim(paper=39, artefact="convnext_small", claim="MACs @224 equal timm's convnext_small (FlopCounterMode), the card's exact figure")
@pytest.mark.claim(paper=39, artefact="convnext_base", claim="MACs @224 equal timm's convnext_base (FlopCounterMode), the card's exact figure")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny",
                   claim="MACs @224 = timm ConvNeXt-T + (17^2 - 7^2) C H W per block (closed form), = the card, = the sheet's 4.970 G")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_small", claim="MACs @224 closed form from timm ConvNeXt-S, = the card and the sheet's 9.524 G")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_base", claim="MACs @224 closed form from timm ConvNeXt-B, = the card and the sheet's 16.475 G")
@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_macs_closed_form_from_timm(size):
    """timm's ConvNeXt is the reference; the DCLS model only widens each depth-wise kernel from 7x7 to the
    dense 17x17 constructed one, so it adds (17^2 - 7^2) C H W multiply-adds per block (maps 56/28/14/7)."""
    import timm

    with torch.device("meta"):
        ref = timm.create_model(f"convnext_{size}")
    plain = _macs_224(ref)
    cfg = PAPER_CFGS[f"convnext_dcls_{size}"]
    dcls = plain + sum(d * (17 ** 2 - 7 ** 2) * c * h * h for d, c, h in zip(cfg["depths"], cfg["dims"], (56, 28, 14, 7)))
    for name, expected, sheet in ((f"convnext_{size}", plain, SHEET_GMACS[size][0]),
                                  (f"convnext_dcls_{size}", dcls, SHEET_GMACS[size][1])):
        card = convzoo.get_card(name)
        assert _macs_224(_meta(name)) == expected == card.macs and card.macs_rtol == 0.0
        assert round(expected / 1e9, 3) == sheet


@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny",
                   claim="parameter count equals the sheet (iso-parameter with ConvNeXt-T through per-stage shared positions)")
def test_shared_positions_equal_per_block_copies():
    """Sharing = one tensor used by every block; its gradient is the sum of the blocks' gradients."""
    torch.manual_seed(0)
    kw = {"depths": (2, 1, 3, 1), "dims": (8, 8, 16, 16), "num_classes": 5, "dcls_kernel_count": 6,
          "dcls_kernel_size": 7, "ls_init_value": 0.5}
    shared = ConvNeXt(**kw).eval()
    unshared = ConvNeXt(**kw, dcls_shared_positions=False).eval()
    state = shared.state_dict()
    for i, stage in enumerate(shared.stages):
        P = state.pop(f"stages.{i}.P")
        state.update({f"stages.{i}.blocks.{j}.conv_dw.P": P for j in range(len(stage.blocks))})
    unshared.load_state_dict(state, strict=True)  # per-block copies of each stage's positions
    x = torch.randn(2, 3, 32, 32)
    a, b = shared(x), unshared(x)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    a.sum().backward()
    b.sum().backward()
    for i, stage in enumerate(shared.stages):
        summed = sum(blk.conv_dw.P.grad for blk in unshared.stages[i].blocks)
        assert stage.P.grad.abs().max() > 0
        torch.testing.assert_close(stage.P.grad, summed, atol=1e-6, rtol=1e-5)


@pytest.mark.claim(paper=39, artefact="convnext_tiny",
                   claim="numerical parity with timm convnext_tiny, copied weights, logits and features")
@pytest.mark.parity
def test_convnext_tiny_parity_with_timm():
    import timm
    torch.manual_seed(0)
    ref = timm.create_model("convnext_tiny").eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # not the init: layer scale 1e-6 would hide the blocks
    ours = _meta("convnext_tiny").eval()
    result = ours.load_state_dict(ref.state_dict(), strict=True, assign=True)  # timm's keys, unchanged
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours(x), ref(x)
        feats = ours.features(x)
        ref_feats = ref.forward_intermediates(x, indices=[0, 1, 2, 3], intermediates_only=True)
    assert a.abs().max() > 0.1 and (a - b).abs().max().item() <= 1e-5
    for f, r in zip(feats, ref_feats, strict=True):
        assert (f - r).abs().max().item() <= 1e-5


@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny",
                   claim="a DCLS stage equals blocks built on the package's Dcls2d v0 sharing one P")
@pytest.mark.parity
def test_dcls_stage_matches_package_layers():
    """A ConvNeXt-dcls stage equals blocks built on the package's Dcls2d (v0) that share one P."""
    torch.manual_seed(0)
    stage = ConvNeXtStage(16, 24, 3, True, [0.0] * 3, 0.3, 7,
                          {"kernel_count": 10, "dilated_kernel_size": 17, "version": "bilinear", "shared": True}).eval()
    from DCLS.construct import modules
    logging.disable(logging.WARNING)
    try:
        convs = [modules.Dcls2d(24, 24, 10, dilated_kernel_size=17, padding=8, groups=24, version="v0",
                                use_implicit_gemm=False) for _ in stage.blocks]
    finally:
        logging.disable(logging.NOTSET)
    for conv, block in zip(convs, stage.blocks):
        with torch.no_grad():
            conv.weight.copy_(block.conv_dw.weight)
            conv.bias.copy_(block.conv_dw.bias)
        conv.P = stage.P  # the official model assigns one Parameter to every block of a stage
    x = torch.randn(2, 16, 20, 20)
    with torch.no_grad():
        h = stage.downsample(x)
        for conv, block in zip(convs, stage.blocks):
            y = block.mlp(block.norm(conv(h).permute(0, 2, 3, 1))) * block.gamma
            h = h + y.permute(0, 3, 1, 2)
        out = stage(x)
    assert out.shape == (2, 24, 10, 10) and (out - h).abs().max().item() <= 1e-5


def _official_keys(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official ConvNeXt-dcls (or facebookresearch ConvNeXt) checkpoint."""
    dims, depths, kc = cfg["dims"], cfg["depths"], cfg.get("dcls_kernel_count")
    keys = {"downsample_layers.0.0.weight": (dims[0], 3, 4, 4), "downsample_layers.0.0.bias": (dims[0],),
            "downsample_layers.0.1.weight": (dims[0],), "downsample_layers.0.1.bias": (dims[0],)}
    for i in range(1, 4):
        keys.update({f"downsample_layers.{i}.0.weight": (dims[i - 1],), f"downsample_layers.{i}.0.bias": (dims[i - 1],),
                     f"downsample_layers.{i}.1.weight": (dims[i], dims[i - 1], 2, 2),
                     f"downsample_layers.{i}.1.bias": (dims[i],)})
    for i, (c, d) in enumerate(zip(dims, depths)):
        for j in range(d):
            b = f"stages.{i}.{j}."
            keys.update({b + "gamma": (c,), b + "dwconv.bias": (c,), b + "norm.weight": (c,), b + "norm.bias": (c,),
                         b + "pwconv1.weight": (4 * c, c), b + "pwconv1.bias": (4 * c,),
                         b + "pwconv2.weight": (c, 4 * c), b + "pwconv2.bias": (c,)})
            keys[b + "dwconv.weight"] = (c, 1, 7, 7) if kc is None else (c, 1, kc)
            if kc is not None:
                keys[b + "dwconv.P"] = (2, c, 1, kc)  # the shared tensor, repeated in every block
    keys.update({"norm.weight": (dims[-1],), "norm.bias": (dims[-1],), "head.weight": (1000, dims[-1]),
                 "head.bias": (1000,)})
    return keys


@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny",
                   claim="official ConvNeXt-dcls checkpoint keys map onto the model")
@pytest.mark.claim(paper=39, artefact="convnext_tiny",
                   claim="official ConvNeXt checkpoint keys map onto the model")
@pytest.mark.parametrize("name", ["convnext_dcls_tiny", "convnext_tiny"])
def test_official_checkpoint_keys(name):
    """Full-size key sets: the official names map one-to-one (P once per stage) onto ours."""
    official, shared = {}, {}
    for k, shape in _official_keys(PAPER_CFGS[name]).items():
        t = torch.empty(shape, device="meta")
        official[k] = shared.setdefault(k.split(".")[1], t) if k.endswith("dwconv.P") else t
    ours = {k: tuple(v.shape) for k, v in _meta(name).state_dict().items()}
    remapped = {k: tuple(v.shape) for k, v in remap_state_dict(official).items()}
    assert remapped == ours  # same keys, same shapes
    assert len(official) - len(remapped) == (sum(PAPER_CFGS[name]["depths"]) - 4 if "dcls" in name else 0)


@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny",
                   claim="official ConvNeXt-dcls checkpoint keys map onto the model")
@pytest.mark.claim(paper=39, artefact="convnext_tiny",
                   claim="official ConvNeXt checkpoint keys map onto the model")
@pytest.mark.parametrize("name", ["convnext_dcls_tiny", "convnext_tiny"])
def test_remap_official_checkpoint_loads(name):
    torch.manual_seed(0)
    cfg = {**PAPER_CFGS[name], "depths": (1, 2, 2, 1), "dims": (8, 16, 24, 32)}  # narrow copy: cheap
    ours = ConvNeXt(**cfg)
    official, shared = {}, {}
    for k, shape in _official_keys(cfg).items():
        if k.endswith("dwconv.P"):
            official[k] = shared.setdefault(k.split(".")[1], torch.randn(shape))
        else:
            official[k] = torch.randn(shape)
    remapped = remap_state_dict({"model": {f"module.{k}": v for k, v in official.items()}})
    ours.load_state_dict(remapped, strict=True)
    assert torch.equal(ours.head.fc.weight, official["head.weight"])
    assert torch.equal(ours.stem[1].bias, official["downsample_layers.0.1.bias"])
    assert torch.equal(ours.stages[1].blocks[1].mlp.fc1.weight, official["stages.1.1.pwconv1.weight"])
    if "dcls" in name:
        assert torch.equal(ours.stages[2].P, shared["2"])
        official["stages.2.1.dwconv.P"] = torch.zeros_like(shared["2"])  # copies that disagree: not shared
        with pytest.raises(ConvzooError):
            remap_state_dict(official)


# --- recipes and the engine hooks ------------------------------------------------------------------------

@pytest.mark.claim(paper=39, artefact="dcls_training",
                   claim="positions in their own group with lr x5 and no weight decay (helper and recipe globs agree)")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_digits",
                   claim="recipes validate and every parameter-group glob selects parameters")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny_imagenet_paper",
                   claim="the paper's recipe validates (AdamW 4e-3, wd 0.05, batch 4096, 300 epochs, 20 warm-up, EMA, positions x5 / no WD)")
@pytest.mark.parametrize("name", ["convnext_dcls_digits", "convnext_dcls_tiny_imagenet_paper"])
def test_recipes_load(name):
    from convzoo.engine import load_recipe
    from convzoo.engine.optim import param_groups

    r = load_recipe(name)
    assert r["paper"] == 39 and name in convzoo.get_card(r["model"]["name"]).recipes
    assert r["optimizer"]["param_groups"][0] == {"match": "*.P", "lr_mult": 5.0, "weight_decay": 0.0}
    with torch.device("meta"):
        model = convzoo.create_model(r["model"]["name"], num_classes=10, in_chans=1, **r["model"]["kwargs"])
    groups = param_groups(model, r["optimizer"])  # each glob selects; 1-D parameters get no decay by the default rule
    assert {(g["lr_mult"], g["weight_decay"]) for g in groups} == {(5.0, 0.0), (1.0, 0.0), (1.0, 0.05)}
    if name.endswith("_paper"):
        assert (r["optimizer"]["name"], r["optimizer"]["lr"], r["optimizer"]["weight_decay"]) == ("adamw", 4e-3, 0.05)
        assert (r["epochs"], r["batch_size"], r["schedule"]["warmup_epochs"], r["ema"]) == (300, 4096, 20, 0.9999)
        assert r["model"]["kwargs"]["repulsion_start_epoch"] == 21


@pytest.mark.claim(paper=39, artefact="dcls_training",
                   claim="the engine clamps positions after every step and adds the repulsion term")
@pytest.mark.slow
def test_engine_calls_clamp_and_repulsion_hooks(tmp_path):
    """One short engine run: positions pushed far out by a huge lr end inside the window (clamped after
    every step), and a huge repulsion weight shows up in the training loss (regularization_loss added)."""
    from safetensors.torch import load_file

    from convzoo.engine import load_recipe, train

    recipe = load_recipe("convnext_dcls_digits", [
        "epochs=1", "data.test_split=null", "data.eval_split=null", "model.kwargs.depths=[1, 1, 1, 1]", "model.kwargs.dims=[8, 8, 16, 16]",
        "model.kwargs.patch_size=2", "model.kwargs.repulsion_start_epoch=0", "model.kwargs.repulsion_weight=1000.0",
        "data.kwargs.size=16"])
    recipe["optimizer"]["param_groups"][0]["lr_mult"] = 500.0  # AdamW: positions move ~1 pixel per step
    first_losses = []

    class FirstLoss:  # engine callback: the loss of each step, regularization included
        def on_train_batch_end(self, fabric, epoch, step, loss):
            first_losses.append(float(loss))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny layers: one thread is ~10x faster than two on a busy machine
    try:
        result = train(recipe, out_dir=tmp_path, run_name="hooks", progress=False, callbacks=[FirstLoss()])
    finally:
        torch.set_num_threads(threads)
    state = load_file(str(result.run_dir / "last.safetensors"))
    positions = [v for k, v in state.items() if k.endswith(".P")]
    assert len(positions) == 4 and all(p.abs().max() <= 4 for p in positions)  # 9x9 window: [-4, 4]
    assert any((p.abs() == 4).any() for p in positions)  # some were clamped on the edge
    # initial positions ~ N(0, 0.5): many closer than 1 pixel, so 1000 * rep^2 >> the ~2.3 of cross-entropy
    assert first_losses[0] > 10


# --- ResNet-50-dcls (the paper's first experiment) ---------------------------------------------------------

# torchvision ResNet-50 (models.ResNet50_Weights.IMAGENET1K_V1 meta num_params) and its bottleneck 3x3 convs:
# (blocks, width, output side at 224) per stage, from He et al. Table 1 (v1.5: stride on the 3x3 conv)
TV_RESNET50_PARAMS = 25_557_032
RESNET50_3X3 = [(3, 64, 56), (4, 128, 28), (6, 256, 14), (3, 512, 7)]
DCLS_KC, DCLS_S = 5, 7  # official timm/models/resnet_dcls.py + train.py defaults (dcls_kernel_count, dcls_kernel_size)


def _tv_resnet50_macs() -> int:
    import torchvision

    with torch.device("meta"):
        ref, x = torchvision.models.resnet50().eval(), torch.empty(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ref(x)
    return counter.get_total_flops() // 2


@pytest.mark.claim(paper=39, artefact="resnet50_dcls",
                   claim="params and MACs equal closed forms from torchvision resnet50 (25,557,032 params; its FlopCounterMode MACs) with every 3x3 conv replaced by a 7x7-window DCLS conv, Kc 5, positions shared per stage")
def test_resnet50_dcls_counts_closed_form():
    import torchvision

    assert torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["num_params"] == TV_RESNET50_PARAMS
    pairs = sum(n * w * w for n, w, _ in RESNET50_3X3)  # (out, in) channel pairs of all 3x3 convs
    stage_pairs = sum(w * w for _, w, _ in RESNET50_3X3)
    shared = TV_RESNET50_PARAMS - 9 * pairs + DCLS_KC * pairs + 2 * DCLS_KC * stage_pairs
    per_conv = TV_RESNET50_PARAMS - 9 * pairs + 3 * DCLS_KC * pairs  # Kc weights + 2 Kc positions per pair
    assert (shared, per_conv) == (24_008_744, 33_101_864)
    assert count_params(_meta("resnet50_dcls")) == shared == convzoo.get_card("resnet50_dcls").params
    assert count_params(_meta("resnet50_dcls", dcls_shared_positions=False)) == per_conv
    # MACs: the constructed S x S kernel is dense, so each 3x3 conv costs S^2 / 9 times as much
    macs = _tv_resnet50_macs() + sum((DCLS_S ** 2 - 9) * n * w * w * h * h for n, w, h in RESNET50_3X3)
    model = _meta("resnet50_dcls").eval()
    with torch.device("meta"):
        x = torch.empty(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert counter.get_total_flops() // 2 == macs == convzoo.get_card("resnet50_dcls").macs
    card = convzoo.get_card("resnet50_dcls")
    assert card.macs_rtol == 0.0 and "closed form" in card.params_source and "closed form" in card.macs_source


def _resnet50_dcls_from_torchvision(positions: list[tuple[int, int]], dilation: int = 1):
    """resnet50_dcls (one block per stage: the DCLS kernel construction is costly on a CPU) whose Kc = 9
    elements sit on the integer offsets ``positions``, weights copied from a random torchvision ResNet of
    the same layout, whose 3x3 convs get ``dilation``."""
    import torchvision

    torch.manual_seed(0)
    ref = torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, [1, 1, 1, 1], num_classes=10).eval()
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics and affine parameters
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.0)
            m.bias.data.uniform_(-0.1, 0.1)
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3):
            m.dilation, m.padding = (dilation, dilation), (dilation, dilation)
    ref.fc.weight.data.mul_(30.0)  # logits of order 1
    ours = convzoo.create_model("resnet50_dcls", num_classes=10, dcls_kernel_count=9, layers=(1, 1, 1, 1)).eval()
    state = ref.state_dict()
    grid = torch.tensor(positions, dtype=torch.float32).T  # (2, 9): row, column offsets
    for s in range(1, 5):
        stage = getattr(ours, f"layer{s}")
        w = stage.P.shape[1]
        state[f"layer{s}.P"] = grid[:, None, None, :].expand(2, w, w, 9).clone()
        for b in range(len(stage)):
            key = f"layer{s}.{b}.conv2.weight"
            state[key] = state[key].flatten(2)  # (out, in, 3, 3) -> (out, in, 9) in row-major tap order
    ours.load_state_dict(state, strict=True)
    return ours, ref


@pytest.mark.claim(paper=39, artefact="resnet50_dcls",
                   claim="with integer positions on the 3x3 grid it equals torchvision's ResNet bottleneck network, and on the dilation-2 grid the same with dilated 3x3 convs (copied weights, one block per stage); every other key is torchvision's")
@pytest.mark.parity
@pytest.mark.parametrize("dilation", [1, 2])
def test_resnet50_dcls_integer_positions_equal_torchvision(dilation):
    offsets = [(dilation * (r - 1), dilation * (c - 1)) for r in range(3) for c in range(3)]
    ours, ref = _resnet50_dcls_from_torchvision(offsets, dilation)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.abs().max() > 0.1 and (a - b).abs().max().item() <= 1e-4 * b.abs().max().item()
    for m in ref.modules():  # the other placement differs: the test tells placements apart
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3):
            m.dilation = m.padding = (3 - dilation,) * 2
    with torch.no_grad():
        assert (ref(x) - a).abs().max() > 1e-2


@pytest.mark.claim(paper=39, artefact="resnet50_dcls",
                   claim="forward/backward at a small size; the stage's shared positions receive gradients and are clamped into the 7x7 window by the engine hook")
def test_resnet50_dcls_forward_backward_and_clamp():
    torch.manual_seed(0)
    model = convzoo.create_model("resnet50_dcls", num_classes=7, in_chans=1, layers=(1, 1, 1, 1), zero_init_last=False,
                                 dcls_kernel_count=2)  # the kernel construction of 512-wide convs is costly on a CPU
    x = torch.randn(2, 1, 32, 32)
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(getattr(model, f"layer{s}").P.grad.abs().sum() > 0 for s in range(1, 5))
    with torch.no_grad():
        assert [f.shape[1:] for f in model.features(x)] == [(256, 8, 8), (512, 4, 4), (1024, 2, 2), (2048, 1, 1)]
    assert {n for n, _ in model.named_parameters() if n.endswith(".P")} == {f"layer{s}.P" for s in range(1, 5)}
    with torch.no_grad():
        model.layer3.P.mul_(100.0)
    for m in model.modules():  # what the engine does after every optimizer step
        if hasattr(m, "post_optimizer_step"):
            m.post_optimizer_step()
    assert model.layer3.P.abs().max() == 3  # +-(S // 2)
    with pytest.raises(ConvzooError):
        convzoo.create_model("resnet50_dcls", dcls_kernel_count=0)


# --- timm's arguments and preprocessing (issue 9) ----------------------------------------------------------

@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="card preprocessing = timm's resolve_data_config of convnext_tiny.fb_in1k")
@pytest.mark.claim(paper=39, artefact="convnext_small", claim="card preprocessing = timm's resolve_data_config of convnext_small.fb_in1k")
@pytest.mark.claim(paper=39, artefact="convnext_base", claim="card preprocessing = timm's resolve_data_config of convnext_base.fb_in1k")
@pytest.mark.parametrize("name", ["convnext_tiny", "convnext_small", "convnext_base"])
def test_data_config_matches_timm(name):
    import timm
    from timm.data import resolve_data_config

    # the paper's ImageNet-1K weights are timm's ".fb_in1k" tag (the untagged default is the in12k fine-tune)
    with torch.device("meta"):
        reference = timm.create_model(f"{name}.fb_in1k", pretrained=False)
    assert convzoo.data_config(name) == resolve_data_config(model=reference)


@pytest.mark.claim(paper=39, artefact="convnext_dcls_tiny", claim="card preprocessing = official datasets.py eval transform")
def test_dcls_preprocessing_is_the_official_eval_transform():
    # official K-H-Ismail/ConvNeXt-dcls datasets.py build_transform(is_train=False) below 384 px: crop_pct default
    # 224 / 256, Resize(int(224 / crop_pct), BICUBIC), CenterCrop(224), ImageNet mean/std (main.py default)
    for name in ("convnext_dcls_tiny", "convnext_dcls_small", "convnext_dcls_base"):
        assert convzoo.data_config(name) == {"input_size": (3, 224, 224), "interpolation": "bicubic",
                                             "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
                                             "crop_pct": 0.875, "crop_mode": "center"}


@pytest.mark.claim(paper=39, artefact="convnext_tiny", claim="global_pool avg/max/avgmax/'' before the LayerNorm head as timm's NormMlpClassifierHead; catavgmax refused")
@pytest.mark.parametrize("pool", ["avg", "max", "avgmax", ""])
def test_global_pool_matches_timm_norm_head(pool):
    import timm

    torch.manual_seed(0)
    ours = convzoo.create_model("convnext_tiny", num_classes=7, global_pool=pool, depths=(1, 1, 1, 1)).eval()
    ref = timm.create_model("convnext_tiny", num_classes=7, global_pool=pool, depths=(1, 1, 1, 1)).eval()
    state = ref.state_dict()
    if pool == "":  # timm's unpooled head is a 1x1 conv: the same weights as our per-position linear
        state = {k: v.flatten(1) if k == "head.fc.weight" else v for k, v in state.items()}
    ours.load_state_dict(state)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(ConvzooError, match="catavgmax"):
        convzoo.create_model("convnext_tiny", global_pool="catavgmax")
