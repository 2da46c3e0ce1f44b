"""The HyperZ.Z.W operator and its slow networks.

"HyperZ.Z.W Operator Connects Slow-Fast Networks for Full Context Interaction" (Harvie Zhang, arXiv
2401.17948; seed paper 34). A *slow network* maps coordinates to a hyper-kernel W; the *fast network*
multiplies its hidden activation Z with W into a context-dependent weight Z * W and applies that weight to
(a feature of) Z again:

- :func:`hyperzzw_global`: per channel, the H x W matrix (Z * W) times the H x W matrix V (V = Z by default):
  ``out[b, c] = (Z[b, c] * W[c]) @ V[b, c]``; a full-context interaction (every output pixel sees a whole
  row of Z * W and a whole column of V), so the map must be square (as the withdrawn official code's
  ``torch.matmul``).
- :func:`hyperzzw_local`: sliding-window depthwise convolution of V with a generated k x k kernel per channel.
- :func:`hyperzzw_2e`: the "two elementwise multiplications" form Z * W * Z of the hyper-interaction branches.

Slow networks (:class:`SlowNet`, :class:`LocalSlowNet`) are MAGNet-style multiplicative filter networks
(Romero et al., FlexConv / CCNN): ``h_0 = sin(g_0(c))``, ``h_l = sin(g_l(c)) * (A_l h_{l-1} + b_l) + p``,
``W = A_out h_L + b_out``, where the Gabor-like filters g_l have frequencies scaled by ``2 pi omega_0`` times
a Gamma(alpha / (l + 1), beta) sample per hidden unit and coordinate axis, and ``p`` is a learned bias per
kernel position. Coordinates are ``linspace(-1, 1)`` on each axis. :class:`SlowNet`'s kernel is a function
of the coordinates only (its input ``x`` is not read); :class:`LocalSlowNet` modulates each hidden layer with
the batch-averaged, pooled input (the paper's context-dependent local hyper-kernel, "HyperZZW in the kernel
generation process") and renormalises each hidden layer ("s-renormalisation").

Other pieces of the fast network: :class:`GIBS` (group instance / batch standardisation, no parameters),
:class:`RGU` (recursive gated unit), :class:`LocalConv` (the local branch: generated depthwise kernel, 1x1
channel mixer, batch standardisation, GELU), :class:`HyperChannelInteract` and :class:`HyperInteract`.

What follows what (the official repository hyperevolnet/Terminator was withdrawn; older file versions were
read for facts): the operator, the MAGNet slow nets, RGU, LocalConv, the two interaction modules and their
initialisations follow the stored ``models/modules/{hyperzzw,magnet,slow_net,rgu,local_conv,hyper_interact}.py``.
Reconstructed or changed:

- ``omega_0``: the stored config has no value; the default 1.0 puts the highest initial frequencies of a
  32-point grid near its Nyquist rate (a choice, not a paper number).
- The last layer's Chang et al. (2020) scaling by ``1 / sqrt(#kernel positions)``: the stored code applies it
  at the first forward call with the configured kernel size; here it is applied at construction with the same
  configured size (identical weights, and a loaded checkpoint is not rescaled a second time).
- Kernels may be evaluated on another grid than the configured one (the network then takes other square input
  sizes); the per-position bias ``p`` (and RGU's position bias) is then resampled bilinearly with
  ``align_corners=True``, which keeps its values at the coordinates both grids share.
- :class:`LocalSlowNet`'s renormalisation scales ``alpha`` (1) and ``beta`` (0.1) are unregistered tensors in
  the stored code (never trained); here they are constant buffers with those values.
- :class:`GIBS` (``g_ibs.py`` is not among the stored files): per sample, channels split into groups, each
  group standardised over its channels and positions (``mode="instance"``), or over the batch as well
  (``mode="batch"``); no affine parameters, no running statistics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = [
    "GIBS",
    "RGU",
    "HyperChannelInteract",
    "HyperInteract",
    "LocalConv",
    "LocalSlowNet",
    "SlowNet",
    "coordinate_grid",
    "hyperzzw_2e",
    "hyperzzw_global",
    "hyperzzw_local",
    "resample_position_bias",
]


# --- the operator ----------------------------------------------------------------------------------

def hyperzzw_global(z: torch.Tensor, w: torch.Tensor, v: torch.Tensor | None = None) -> torch.Tensor:
    """Global HyperZZW: ``(z * w) @ v`` per channel over square ``(N, N)`` maps.

    z: (B, C, N, N) fast activation; w: (1 or B, C, N, N) hyper-kernel; v: (B, C, N, N), default z.
    Returns (B, C, N, N) with ``out[b, c, i, j] = sum_k z[b, c, i, k] w[c, i, k] v[b, c, k, j]``.
    """
    v = z if v is None else v
    if z.shape[-1] != z.shape[-2] or v.shape[-1] != v.shape[-2]:
        raise ConvzooError(f"the global HyperZZW multiplies each channel's HxW map as a matrix and needs square "
                           f"maps; got {tuple(z.shape[-2:])} (give a square input, e.g. 32x32)")
    return torch.matmul(z * w, v)


def hyperzzw_local(kernel: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Local HyperZZW: depthwise sliding-window convolution of v (B, C, H, W) with kernel (C, 1, k, k), 'same'
    padding (odd k)."""
    return F.conv2d(v, kernel, padding=kernel.shape[-1] // 2, groups=kernel.shape[0])


def hyperzzw_2e(w: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The two-multiplication form ``z * w * z`` (context weight z * w applied elementwise to z)."""
    return z * w * z


# --- slow networks ---------------------------------------------------------------------------------

def coordinate_grid(sizes: tuple[int, ...], device=None, dtype=None) -> torch.Tensor:
    """(1, D, *sizes): ``linspace(-1, 1)`` coordinates on each of the D axes (matrix 'ij' order)."""
    axes = [torch.linspace(-1.0, 1.0, s, device=device, dtype=dtype) for s in sizes]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), 0).unsqueeze(0)


def _hat_matrix(n_new: int, n_old: int, like: torch.Tensor) -> torch.Tensor:
    """(n_new, n_old) linear-interpolation weights between linspace(-1, 1) grids (corners aligned): row i holds
    the hat function max(0, 1 - |s_i - j|) at the old index j of new point i's position s_i."""
    s = torch.arange(n_new, device=like.device, dtype=like.dtype) * ((n_old - 1) / max(n_new - 1, 1))
    j = torch.arange(n_old, device=like.device, dtype=like.dtype)
    return (1 - (s[:, None] - j[None, :]).abs()).clamp_min(0)


def resample_position_bias(p: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """A per-position bias (1, 1, *grid) on another grid: itself, or its separable linear resampling with the
    corners kept (= ``F.interpolate(..., mode="(bi)linear", align_corners=True)``, as two small matmuls)."""
    sizes = tuple(sizes)
    if tuple(p.shape[2:]) == sizes:
        return p
    if len(sizes) == 1:
        return p @ _hat_matrix(sizes[0], p.shape[-1], p).T
    return _hat_matrix(sizes[0], p.shape[-2], p) @ p @ _hat_matrix(sizes[1], p.shape[-1], p).T


def _pointwise(dims: int, cin: int, cout: int) -> nn.Module:
    """A linear map over channels at every position ("Linear1d/2d" of the official code): a 1x1 convolution."""
    return (nn.Conv1d if dims == 1 else nn.Conv2d)(cin, cout, 1)


class GaborFilter(nn.Module):
    """``sin(2 pi omega_0 gamma * (A c) + 0)``: one multiplicative-filter layer of MAGNet (bias starts at 0)."""

    def __init__(self, dims: int, hidden: int, omega_0: float, alpha: float, beta: float):
        super().__init__()
        self.linear = _pointwise(dims, dims, hidden)
        cpu = {"device": "cpu"}  # sampled on the CPU also when the model is built on the meta device
        gamma = torch.distributions.Gamma(torch.tensor(float(alpha), **cpu), torch.tensor(float(beta), **cpu))
        gamma = gamma.sample((hidden, dims)).to(self.linear.weight.device)
        with torch.no_grad():
            self.linear.weight.mul_(2 * math.pi * omega_0 * gamma.view(hidden, dims, *(1,) * dims))
            self.linear.bias.zero_()

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.linear(coords))  # (1, D, *grid) -> (1, hidden, *grid)


class SlowNet(nn.Module):
    """Coordinate MLP (MAGNet) generating a hyper-kernel (1, out_channels, *size) from coordinates only.

    dims: 1 (channel-index kernels, MAGNet_GC) or 2 (spatial kernels, MAGNet_G); size: the configured grid (the
    last layer is scaled by ``1 / sqrt(prod(size))``, Chang et al. 2020); num_layers: hidden layers.
    """

    def __init__(self, dims: int, out_channels: int, size: int | tuple[int, ...], hidden: int = 64,
                 num_layers: int = 2, omega_0: float = 1.0, alpha: float = 6.0, beta: float = 1.0):
        super().__init__()
        self.dims, self.hidden = dims, hidden
        self.size = (size,) * dims if isinstance(size, int) else tuple(size)
        self.filters = nn.ModuleList(GaborFilter(dims, hidden, omega_0, alpha / (i + 1), beta)
                                     for i in range(num_layers + 1))
        self.linears = nn.ModuleList(_pointwise(dims, hidden, hidden) for _ in range(num_layers))
        self.output_linear = _pointwise(dims, hidden, out_channels)
        self.bias_p = nn.Parameter(torch.zeros(1, 1, *self.size))  # one bias per kernel position
        with torch.no_grad():
            for lin in self.linears:
                nn.init.kaiming_uniform_(lin.weight, nonlinearity="linear")
                lin.bias.fill_(1.0)
            nn.init.kaiming_uniform_(self.output_linear.weight, nonlinearity="linear")
            self.output_linear.weight.mul_(math.sqrt(1.0 / math.prod(self.size)))
            self.output_linear.bias.zero_()

    def hidden_features(self, coords: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        p = resample_position_bias(self.bias_p, tuple(coords.shape[2:]))
        h = self.filters[0](coords)  # (1, hidden, *grid)
        for filt, lin in zip(self.filters[1:], self.linears):
            h = filt(coords) * lin(h) + p
        return h

    def kernel(self, sizes: tuple[int, ...] | None = None, device=None, dtype=None) -> torch.Tensor:
        """The hyper-kernel on the grid ``sizes`` (default: the configured one): (1, out_channels, *sizes)."""
        w = self.output_linear.weight
        coords = coordinate_grid(tuple(sizes or self.size), device=device or w.device, dtype=dtype or w.dtype)
        return self.output_linear(self.hidden_features(coords))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The kernel on the grid of x's trailing ``dims`` axes; x itself is not read."""
        return self.kernel(tuple(x.shape[-self.dims:]), device=x.device, dtype=x.dtype)


class LocalSlowNet(SlowNet):
    """Context-dependent local hyper-kernel (MAGNet_L): (C, 1, k, k) for a depthwise convolution.

    Each hidden layer is renormalised (``alpha * h.detach() + beta * h / ||h||`` per hidden unit, alpha 1, beta
    0.1) and multiplied by a context ``A_l g``, where g = GELU(fc(mean over the batch of reduce(pool_k(x)))):
    one kernel for the whole batch, built from the batch's average pooled input.
    """

    def __init__(self, channels: int, kernel_size: int, hidden: int = 32, num_layers: int = 2,
                 omega_0: float = 1.0, alpha: float = 6.0, beta: float = 1.0):
        super().__init__(2, channels, kernel_size, hidden, num_layers, omega_0, alpha, beta)
        self.channels, self.kernel_size = channels, kernel_size
        self.fast_reduce = nn.Conv2d(channels, hidden, 1)
        self.fast_fc1 = nn.Conv2d(hidden, hidden, 1)
        self.fast_linears_x = nn.ModuleList(_pointwise(2, hidden, hidden) for _ in range(num_layers))
        with torch.no_grad():
            for lin in self.fast_linears_x:
                nn.init.kaiming_uniform_(lin.weight, nonlinearity="linear")
                lin.bias.fill_(1.0)
        self.register_buffer("renorm_alpha", torch.ones(num_layers, hidden, 1, 1), persistent=False)
        self.register_buffer("renorm_beta", torch.full((num_layers, hidden, 1, 1), 0.1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        g = self.fast_reduce(F.adaptive_avg_pool2d(x, k)).mean(0, keepdim=True)  # (1, hidden, k, k)
        g = F.gelu(self.fast_fc1(g))
        coords = coordinate_grid((k, k), device=x.device, dtype=x.dtype)
        h = self.filters[0](coords)  # (1, hidden, k, k)
        for i, (filt, lin) in enumerate(zip(self.filters[1:], self.linears)):
            h = filt(coords) * lin(h) + self.bias_p
            unit = h / h.flatten(2).norm(dim=2).clamp_min(1e-12)[..., None, None]  # per hidden unit over k x k
            h = self.renorm_alpha[i] * h.detach() + self.renorm_beta[i] * unit
            h = h * self.fast_linears_x[i](g)
        return self.output_linear(h).view(self.channels, 1, k, k)  # (C, 1, k, k)


# --- fast-network pieces ---------------------------------------------------------------------------

class GIBS(nn.Module):
    """Group instance / batch standardisation: channels in ``groups`` groups, each standardised to zero mean
    and unit variance (biased, eps 1e-5) over its channels and positions, per sample (``"instance"``) or over
    the batch too (``"batch"``). No parameters, no running statistics: train and eval compute the same."""

    def __init__(self, channels: int, groups: int = 12, mode: str = "instance", eps: float = 1e-5):
        super().__init__()
        if channels % groups:
            raise ConvzooError(f"G-IBS splits {channels} channels into {groups} groups: the width must be a "
                               f"multiple of {groups}")
        if mode not in ("instance", "batch"):
            raise ConvzooError(f"G-IBS mode must be 'instance' or 'batch', got {mode!r}")
        self.channels, self.groups, self.mode, self.eps = channels, groups, mode, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "instance":
            return F.group_norm(x, self.groups, eps=self.eps)
        b = x.shape[0]
        g = x.reshape(b, self.groups, -1).transpose(0, 1).reshape(self.groups, -1)  # (G, B * C/G * HW)
        var, mean = torch.var_mean(g, dim=1, unbiased=False, keepdim=True)
        g = (g - mean) * torch.rsqrt(var + self.eps)
        return g.reshape(self.groups, b, -1).transpose(0, 1).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.channels}, groups={self.groups}, mode={self.mode!r}"


def instance_std(x: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel standardisation over positions (InstanceNorm without parameters)."""
    return F.instance_norm(x, eps=1e-5)


def batch_std(x: torch.Tensor) -> torch.Tensor:
    """Per-channel standardisation over batch and positions, in training and evaluation alike (BatchNorm
    without parameters or running statistics, as the official LocalConv)."""
    return F.batch_norm(x, None, None, training=True, eps=1e-5)


class RGU(nn.Module):
    """Recursive gated unit: ``y = W_Y(GELU(IS(W_K x * W_Q(W_V x))) + p)``; p: a learned bias per position of
    the configured grid (resampled for another input size)."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.fast_linear_k, self.fast_linear_v, self.fast_linear_q, self.fast_linear_y = (
            nn.Conv2d(channels, channels, 1) for _ in range(4))
        with torch.no_grad():
            for lin in (self.fast_linear_k, self.fast_linear_v, self.fast_linear_q, self.fast_linear_y):
                nn.init.kaiming_uniform_(lin.weight, nonlinearity="linear")
                lin.bias.zero_()
        self.fast_bias_p = nn.Parameter(torch.zeros(1, 1, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, v = self.fast_linear_k(x), self.fast_linear_v(x)  # (B, C, H, W)
        q = F.gelu(instance_std(k * self.fast_linear_q(v))) + resample_position_bias(self.fast_bias_p, x.shape[2:])
        return self.fast_linear_y(q)


class LocalConv(nn.Module):
    """The local branch after its kernel: depthwise conv with the generated (C, 1, k, k) kernel -> 1x1 channel
    mixer -> batch standardisation -> GELU."""

    def __init__(self, channels: int):
        super().__init__()
        self.channel_mixer = nn.Conv2d(channels, channels, 1)
        nn.init.kaiming_normal_(self.channel_mixer.weight)
        nn.init.zeros_(self.channel_mixer.bias)

    def forward(self, kernel: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.gelu(batch_std(self.channel_mixer(hyperzzw_local(kernel, v))))


def _channel_score(slow: SlowNet, y: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 1, 1): the pooled channels z interacting with their channel hyper-kernel, z * w * z."""
    z = y.mean((2, 3)).unsqueeze(1)  # (B, 1, C)
    return hyperzzw_2e(slow(z), z).transpose(1, 2).unsqueeze(-1)


class HyperChannelInteract(nn.Module):
    """Hyper-channel interaction: ``x * sigmoid(z * w_c * z)``, z the channel means of x, w_c a channel
    hyper-kernel from a 1-D slow net over the channel index."""

    def __init__(self, channels: int, hidden: int = 32, num_layers: int = 2, omega_0: float = 1.0):
        super().__init__()
        self.slow_net_gc = SlowNet(1, 1, channels, hidden, num_layers, omega_0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(_channel_score(self.slow_net_gc, x))


class HyperInteract(nn.Module):
    """Hyper interaction: ``x * sigmoid((s * w_s * s) (z * w_c * z))`` with z the channel means and s the
    channel-averaged map of y (a spatial hyper-kernel w_s from a 2-D slow net)."""

    def __init__(self, channels: int, size: int, hidden_c: int = 16, hidden_s: int = 64, num_layers: int = 2,
                 omega_0: float = 1.0):
        super().__init__()
        self.slow_net_gc = SlowNet(1, 1, channels, hidden_c, num_layers, omega_0)
        self.slow_net_gs = SlowNet(2, 1, size, hidden_s, num_layers, omega_0)

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        score_c = _channel_score(self.slow_net_gc, y)  # (B, C, 1, 1)
        s = y.mean(1, keepdim=True)  # (B, 1, H, W)
        score_s = hyperzzw_2e(self.slow_net_gs(s), s)  # (B, 1, H, W)
        return x * torch.sigmoid(score_s * score_c)
