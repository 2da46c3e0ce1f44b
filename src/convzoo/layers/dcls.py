"""Dilated Convolution with Learnable Spacings (DCLS): convolutions whose kernel elements move.

Seed paper 39: Khalfaoui-Hassani, Pellegrini, Masquelier, "Dilated convolution with learnable
spacings", ICLR 2023, arXiv 2112.03740 (the bilinear construction, ``version="bilinear"``, the
official package's ``"v0"``); and its follow-up "Dilated convolution with learnable spacings: beyond
bilinear interpolation", ICML-W 2023, arXiv 2306.00817 (``"gauss"``, and the triangle constructions
``"v1"`` and ``"max"`` of the official package).

A DCLS layer holds, for every (output channel, input channel of its group) pair, ``kernel_count``
(Kc) weights ``w_k`` and their continuous positions ``p_k`` (one coordinate per spatial dim) inside
a ``dilated_kernel_size`` (S) window. Each forward *constructs* a dense S kernel,
``K[i] = sum_k w_k * g(i - c - p_k)`` on the integer grid ``i`` with centre ``c = S // 2``, and calls
the native convolution (``F.conv1d/2d/3d``, no dilation: the window already is the dilated kernel).
``g`` per version, separable over the spatial dims (a product of one-dimensional factors):

* ``"bilinear"`` (alias ``"v0"``; the ICLR paper, Sec. 3): bilinear interpolation. With
  ``f = floor(p)``, ``r = p - f`` a weight goes to ``f`` with ``1 - r`` and to ``f + 1`` with ``r``;
  not normalised. Computed from floor/frac as the official code does, so the derivative w.r.t. a
  position is the right-sided one also at integer positions (a clamped position on the window edge
  still receives a gradient). With integer positions the kernel is exactly sparse. The 2^n taps of
  each element are added into the window with one ``index_add`` (on CUDA an atomic sum: run-to-run
  differences at float rounding unless ``torch.use_deterministic_algorithms(True)``).
* ``"v1"``: triangle ``(1 - |x|)+``, normalised over the window to sum 1 (per element).
* ``"max"``: triangle of learnable half-width ``sigma = |SIG| + 1``, ``(sigma - |x|)+``, normalised.
* ``"gauss"`` (follow-up, Sec. 3): ``exp(-x^2 / (2 sigma^2))`` with learnable
  ``sigma = |SIG| + 0.27`` (``SIG`` initialised to 0.23), normalised, so each element's spread
  kernel sums to its weight (up to the official ``1e-7`` in the denominator).

Parameters (names as the official package, so checkpoints and the optimizer glob ``"*.P"`` work):
``weight`` (out, in/groups, Kc), ``P`` (dims, out, in/groups, Kc), ``SIG`` (same shape as ``P``;
"gauss" and "max" only) and ``bias`` (out). Positions are initialised ~ N(0, 0.5) and clamped to the
window; ``clamp_parameters()`` (also exposed as ``post_optimizer_step()``, which the convzoo engine
calls after every optimizer step) keeps them inside it. ``own_positions=False`` builds a layer
without ``P`` whose forward takes the positions as an argument: ConvNeXt-dcls shares one position
tensor between all blocks of a stage (:mod:`convzoo.models.convnext_dcls`).

The training method of the paper (ConvNeXt-dcls ``engine.py``/``utils.py``/``optim_factory.py``):
positions in their own optimizer group with lr x5 and no weight decay (:func:`dcls_param_groups`, or
``optimizer.param_groups: [{match: "*.P", lr_mult: 5, weight_decay: 0}]`` in a recipe), clamping
after each step, and a repulsion loss (:func:`repulsion_loss`) that penalises kernel elements closer
than one pixel, added squared to the loss after epoch 20.

Axis convention (fact sheet G1a, "Paper 39" trap): here ``P[d]`` is the offset along spatial dim
``d`` of the kernel (``P[0]`` = rows for 2D, depth for 3D), for EVERY version. The package
``dcls`` 0.1.1 agrees for 2D "v0" only; its 2D "v1"/"gauss"/"max" use the reversed order
(``P[0]`` = columns), its 3D "v1"/"gauss"/"max" the reversed order (D, H, W) -> (W, H, D), and its 3D
"v0" the order (D, W, H). It also centres every coordinate with the size of the *other* axis when the
window is not square, which we do not copy. :data:`PACKAGE_AXES` gives the permutation that turns
our ``P``/``SIG`` into the package's (used by the parity tests).

Departures: even window sizes clamp to ``[-S//2, S - 1 - S//2]`` (the package clamps to ``+S//2``,
which puts an element on index ``S``, outside the window); the DepthWiseConv2dImplicitGEMM CUDA
fast path of the package is not used (native convolution only); the default version is the paper's
"bilinear", whereas the package defaults to "gauss".
"""

from __future__ import annotations

import fnmatch
import itertools
import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = [
    "PACKAGE_AXES",
    "POSITION_GLOB",
    "VERSIONS",
    "Dcls1d",
    "Dcls2d",
    "Dcls3d",
    "SharedPositions",
    "clamp_positions_",
    "construct_kernel",
    "dcls_param_groups",
    "init_positions_",
    "position_parameters",
    "repulsion_loss",
]

VERSIONS = ("bilinear", "v0", "v1", "max", "gauss")
_ALIASES = {"v0": "bilinear"}
_NORMALISED = ("v1", "max", "gauss")
_SIGMA_OFFSET = {"max": 1.0, "gauss": 0.27}  # sigma = |SIG| + offset (official ConstructKernel)
_SIG_INIT = {"max": 0.0, "gauss": 0.23}
NORM_EPS = 1e-7  # the official normalisation X / (X.sum() + 1e-7)
POSITION_GLOB = "*.P"  # parameter names of positions: "<layer>.P" or a shared "<stage>.P"

# (dims, version) -> index of our axis for each package axis: P_package = P_ours[PACKAGE_AXES[...]]
PACKAGE_AXES = {
    (1, "bilinear"): (0,), (1, "v1"): (0,), (1, "max"): (0,), (1, "gauss"): (0,),
    (2, "bilinear"): (0, 1), (2, "v1"): (1, 0), (2, "max"): (1, 0), (2, "gauss"): (1, 0),
    (3, "bilinear"): (0, 2, 1), (3, "v1"): (2, 1, 0), (3, "max"): (2, 1, 0), (3, "gauss"): (2, 1, 0),
}


def _version(version: str) -> str:
    if version not in VERSIONS:
        raise ConvzooError(f"unknown DCLS version {version!r}; expected one of {', '.join(VERSIONS)}")
    return _ALIASES.get(version, version)


def _limits(size: int) -> tuple[int, int]:
    """Range of a centred position in a window of ``size``: [-(size // 2), size - 1 - size // 2]."""
    c = size // 2
    return -c, size - 1 - c


# --- kernel construction ---------------------------------------------------------------------------

def _factor(p: torch.Tensor, sig: torch.Tensor | None, size: int, version: str) -> torch.Tensor:
    """One-dimensional interpolation weights of every element on the grid of one axis ("v1", "max", "gauss").

    p, sig: (out, in/groups, Kc) centred positions and width parameters -> (out, in/groups, Kc, size).
    """
    grid = torch.arange(size, device=p.device, dtype=p.dtype) - size // 2  # centred integer coordinates
    x = grid - p.unsqueeze(-1)  # (O, I, Kc, size): signed distance of each grid point to the element
    if version == "v1":
        return (1 - x.abs()).relu()
    sigma = sig.abs().unsqueeze(-1) + _SIGMA_OFFSET[version]
    if version == "max":
        return (sigma - x.abs()).relu()
    return torch.exp(-0.5 * (x / sigma) ** 2)  # gauss


def _bilinear_kernel(weight: torch.Tensor, P: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """The bilinear ("v0") kernel by accumulating each element's 2^n corner taps into the window.

    The values of the separable product ``prod_d (1 - |x_d - p_d|)+`` (a corner outside the window is
    dropped), without an (O, I, Kc, S_0, ..., S_n-1) intermediate: the O I Kc 2^n taps are added with
    one ``index_add`` (no multiply-add that a FLOP counter would see). All corners at once, so that
    ``torch.compile`` sees a few ops per layer.
    """
    n, (O, I, _Kc) = len(sizes), weight.shape
    lo = P.detach().floor()  # floor has no gradient: d/dp flows through the fraction only
    frac = P - lo  # (n, O, I, Kc)
    shape = (1, n, 1, 1, 1)
    bits = torch.tensor(list(itertools.product((0, 1), repeat=n)), device=P.device).view(2 ** n, *shape[1:])
    size = torch.tensor(list(sizes), device=P.device).view(shape)
    stride = torch.tensor([math.prod(sizes[d + 1:]) for d in range(n)], device=P.device).view(shape)
    idx = lo.long().unsqueeze(0) + size // 2 + bits  # (2^n, n, O, I, Kc): window index of each corner
    inside = ((idx >= 0) & (idx < size)).all(1)  # (2^n, O, I, Kc)
    base = (torch.arange(O * I, device=P.device) * math.prod(sizes)).view(1, O, I, 1)  # each (o, i) window
    flat = base + (torch.minimum(idx.clamp_min(0), size - 1) * stride).sum(1)
    share = torch.where(bits.bool(), frac.unsqueeze(0), 1 - frac.unsqueeze(0)).prod(1)  # (2^n, O, I, Kc)
    values = torch.where(inside, weight * share, torch.zeros_like(share))
    kernel = weight.new_zeros(O * I * math.prod(sizes)).index_add(0, flat.reshape(-1), values.reshape(-1))
    return kernel.view(O, I, *sizes)


def construct_kernel(weight: torch.Tensor, P: torch.Tensor, dilated_kernel_size: Sequence[int],
                     version: str = "bilinear", SIG: torch.Tensor | None = None) -> torch.Tensor:
    """The dense DCLS kernel: ``weight`` (O, I, Kc) spread at positions ``P`` (n, O, I, Kc).

    Returns (O, I, *dilated_kernel_size). ``P[d]`` is the offset from the window centre
    (``S_d // 2``) along kernel dim ``d``; ``SIG`` (n, O, I, Kc) is needed by "gauss" and "max".
    Elementwise products and sums only (no matmul), so FLOP counters see the convolution alone, as
    with the official implementation. "bilinear" adds each element's 2^n taps (:func:`_bilinear_kernel`);
    the other versions spread over the whole window and take the separable product.
    """
    version = _version(version)
    n = len(dilated_kernel_size)
    if P.shape[0] != n or P.shape[1:] != weight.shape:
        raise ConvzooError(f"DCLS positions of shape {tuple(P.shape)} do not fit weights {tuple(weight.shape)} "
                           f"in {n} dims")
    if version in _SIGMA_OFFSET and SIG is None:
        raise ConvzooError(f"DCLS version {version!r} needs SIG (learnable widths)")
    if version == "bilinear":
        return _bilinear_kernel(weight, P, [int(s) for s in dilated_kernel_size])
    factors = [_factor(P[d], None if SIG is None else SIG[d], int(dilated_kernel_size[d]), version)
               for d in range(n)]  # each (O, I, Kc, S_d)
    scale = weight
    if version in _NORMALISED:  # sum over the window of a separable product = product of the sums
        total = factors[0].sum(-1)
        for f in factors[1:]:
            total = total * f.sum(-1)
        scale = weight / (total + NORM_EPS)
    # outer product of the factors, weighted, summed over the Kc elements: (O, I, Kc, S_0, ..., S_n-1)
    kernel = scale.reshape(*scale.shape, *(1,) * n)
    for d, f in enumerate(factors):
        kernel = kernel * f.reshape(*f.shape[:3], *(1,) * d, f.shape[-1], *(1,) * (n - 1 - d))
    return kernel.sum(2)


# --- position helpers ------------------------------------------------------------------------------

@torch.no_grad()
def init_positions_(P: torch.Tensor, dilated_kernel_size: Sequence[int], std: float = 0.5) -> torch.Tensor:
    """Official initialisation: P ~ N(0, std) per coordinate, clamped to the window (in place)."""
    P.normal_(0.0, std)
    return clamp_positions_(P, dilated_kernel_size)


@torch.no_grad()
def clamp_positions_(P: torch.Tensor, dilated_kernel_size: Sequence[int]) -> torch.Tensor:
    """Clamp every coordinate ``P[d]`` to the window of dim ``d`` (in place)."""
    for d, size in enumerate(dilated_kernel_size):
        lo, hi = _limits(int(size))
        P[d].clamp_(lo, hi)
    return P


class SharedPositions:
    """Mixin for a network stage whose DCLS convs share one position tensor ``P`` (the official
    ``--dcls_sync``): :meth:`init_shared_positions` creates ``P`` inside the window (or registers none), and
    the engine's ``post_optimizer_step`` hook clamps it back into the window after every optimizer step."""

    def init_shared_positions(self, shape: Sequence[int] | None, window: tuple[int, int] | None) -> None:
        self.window = window
        if shape is None:
            self.register_parameter("P", None)
        else:
            self.P = nn.Parameter(init_positions_(torch.empty(*shape), window))

    @torch.no_grad()
    def post_optimizer_step(self) -> None:
        """Engine hook: clamp the shared positions into the window after every optimizer step."""
        if self.P is not None:
            clamp_positions_(self.P, self.window)


def repulsion_loss(positions: torch.Tensor | Iterable[torch.Tensor]) -> torch.Tensor:
    """Mean penalty on kernel elements closer than one pixel (ConvNeXt-dcls ``get_dcls_loss_rep``).

    For each position tensor (n, O, I, Kc) and each (O, I) pair: the Euclidean distances between its
    Kc elements, ``mean over pairs i < j of max(0, 1 - d_ij)``, averaged over the (O, I) pairs; then
    averaged over the tensors. 0 when all elements are at least 1 apart. The official engine adds
    ``loss_rep ** 2`` to the loss after epoch 20.
    """
    tensors = [positions] if isinstance(positions, torch.Tensor) else list(positions)
    if not tensors:
        raise ConvzooError("repulsion_loss needs at least one position tensor")
    total = None
    for P in tensors:
        n, kc = P.shape[0], P.shape[-1]
        if kc < 2:
            term = P.sum() * 0.0
        else:
            pts = P.reshape(n, -1, kc).permute(1, 2, 0)  # (O*I, Kc, n)
            dist = torch.cdist(pts, pts, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")  # (O*I, Kc, Kc)
            close = (1 - dist).triu(diagonal=1).clamp_min(0)  # pairs i < j only
            term = 2 * close.sum() / (kc * (kc - 1) * pts.shape[0])
        total = term if total is None else total + term
    return total / len(tensors)


def position_parameters(model: nn.Module) -> list[torch.Tensor]:
    """Every distinct DCLS position tensor of ``model`` (parameters named ``P`` or ``*.P``)."""
    return [p for name, p in model.named_parameters() if name == "P" or fnmatch.fnmatchcase(name, POSITION_GLOB)]


def dcls_param_groups(model: nn.Module, lr: float, weight_decay: float, position_lr_mult: float = 5.0,
                      position_weight_decay: float = 0.0) -> list[dict]:
    """torch.optim parameter groups of the official ConvNeXt-dcls recipe (``optim_factory.py``).

    Positions (``*.P``): lr x ``position_lr_mult`` (5), weight decay ``position_weight_decay`` (0);
    1-D parameters and biases: no weight decay; everything else: ``weight_decay``. Each group carries
    ``lr_mult`` for schedulers that rescale the base lr.
    """
    pos, no_decay, decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim == 1 or name.endswith(".bias"):
            no_decay.append(p)
        elif name == "P" or fnmatch.fnmatchcase(name, POSITION_GLOB):
            pos.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "lr": lr, "lr_mult": 1.0, "weight_decay": weight_decay},
              {"params": no_decay, "lr": lr, "lr_mult": 1.0, "weight_decay": 0.0},
              {"params": pos, "lr": lr * position_lr_mult, "lr_mult": position_lr_mult,
               "weight_decay": position_weight_decay}]
    return [g for g in groups if g["params"]]


# --- the layers ------------------------------------------------------------------------------------

def _tuple(value, n: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ConvzooError(f"DCLS {what} needs {n} values, got {value}")
    return value


class _DclsNd(nn.Module):
    """Shared implementation of :class:`Dcls1d`, :class:`Dcls2d`, :class:`Dcls3d`.

    Args (positional order as the official package):
        in_channels, out_channels: channels; both divisible by ``groups``.
        kernel_count: Kc, learnable elements per (out, in/groups) pair.
        stride, padding: as ``nn.ConvNd`` (int or tuple; padding may be "same"/"valid").
        dilated_kernel_size: S, the window the elements live in (int or tuple).
        groups, bias, padding_mode: as ``nn.ConvNd``.
        version: "bilinear" (= "v0", the paper), "v1", "max" or "gauss" (the follow-up).
        own_positions: False for a layer whose positions are passed to ``forward`` (shared).
    """

    dims: int = 0
    _conv = None

    def __init__(self, in_channels: int, out_channels: int, kernel_count: int, stride=1, padding=0,
                 dilated_kernel_size=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 version: str = "bilinear", own_positions: bool = True):
        super().__init__()
        n = self.dims
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ConvzooError(f"DCLS channels {in_channels} -> {out_channels} must be divisible by groups={groups}")
        if kernel_count < 1:
            raise ConvzooError(f"DCLS kernel_count must be >= 1, got {kernel_count}")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ConvzooError(f"DCLS padding_mode must be zeros/reflect/replicate/circular, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.kernel_count = in_channels, out_channels, kernel_count
        self.stride = _tuple(stride, n, "stride")
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n, "padding")
        if isinstance(self.padding, str) and padding_mode != "zeros":
            raise ConvzooError("DCLS string padding ('same'/'valid') needs padding_mode='zeros'")
        self.dilated_kernel_size = _tuple(dilated_kernel_size, n, "dilated_kernel_size")
        if min(self.dilated_kernel_size) < 1:
            raise ConvzooError(f"DCLS dilated_kernel_size must be >= 1, got {self.dilated_kernel_size}")
        self.groups, self.padding_mode = groups, padding_mode
        self.version = _version(version)
        shape = (out_channels, in_channels // groups, kernel_count)
        self.weight = nn.Parameter(torch.empty(shape))
        self.register_parameter("P", nn.Parameter(torch.empty(n, *shape)) if own_positions else None)
        self.register_parameter("SIG", nn.Parameter(torch.empty(n, *shape)) if self.version in _SIGMA_OFFSET else None)
        self.register_parameter("bias", nn.Parameter(torch.empty(out_channels)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.ConvNd's default (kaiming-uniform, a = sqrt 5; bias U(+-1/sqrt(fan_in)), fan_in = in/groups * Kc)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight.shape[1] * self.kernel_count)
            nn.init.uniform_(self.bias, -bound, bound)
        if self.P is not None:
            init_positions_(self.P, self.dilated_kernel_size)
        if self.SIG is not None:
            nn.init.constant_(self.SIG, _SIG_INIT[self.version])

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Keep the layer's own positions inside the window (the official name)."""
        if self.P is not None:
            clamp_positions_(self.P, self.dilated_kernel_size)

    def post_optimizer_step(self) -> None:
        """Engine hook, called after every optimizer step under no_grad."""
        self.clamp_parameters()

    def kernel(self, P: torch.Tensor | None = None) -> torch.Tensor:
        """The constructed dense kernel (out, in/groups, *dilated_kernel_size)."""
        if P is None:
            P = self.P
        if P is None:
            raise ConvzooError("this DCLS layer has shared positions (own_positions=False): pass P to forward")
        return construct_kernel(self.weight, P, self.dilated_kernel_size, self.version, self.SIG)

    def forward(self, x: torch.Tensor, P: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, in, *spatial) -> (B, out, *spatial') with the S-sized constructed kernel
        kernel = self.kernel(P)
        if self.padding_mode != "zeros":
            pad = [p for p in reversed(self.padding) for _ in range(2)]
            return self._conv(F.pad(x, pad, mode=self.padding_mode), kernel, self.bias, self.stride, 0, 1,
                              self.groups)
        return self._conv(x, kernel, self.bias, self.stride, self.padding, 1, self.groups)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_count={self.kernel_count}, "
             f"dilated_kernel_size={self.dilated_kernel_size}, stride={self.stride}, padding={self.padding}, "
             f"version={self.version}")
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.P is None:
            s += ", shared positions"
        return s


class Dcls1d(_DclsNd):
    """1D DCLS convolution (input (B, C, L)); see the module docstring."""

    dims = 1
    _conv = staticmethod(F.conv1d)


class Dcls2d(_DclsNd):
    """2D DCLS convolution (input (B, C, H, W)); ``P[0]`` row, ``P[1]`` column offsets."""

    dims = 2
    _conv = staticmethod(F.conv2d)


class Dcls3d(_DclsNd):
    """3D DCLS convolution (input (B, C, D, H, W)); ``P[0..2]`` depth, row, column offsets."""

    dims = 3
    _conv = staticmethod(F.conv3d)
