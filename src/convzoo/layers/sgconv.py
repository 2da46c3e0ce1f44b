"""Structured global convolution (SGConv): "What Makes Convolutional Models Great on Long Sequence Modeling?"
(Li, Cai, Zhang, Chen, Dey, ICLR 2023, arXiv 2210.09298; seed paper 52), Sec. 3.

A convolution whose kernel spans the whole sequence but has few parameters, built from two principles
(Sec. 3.1): *sub-linear parameterisation* and a *decaying* kernel. Per channel h (and per head c):

    S   = 1 + ceil(log2(L / d)) - init_scale         number of sub-kernels of d parameters each
    k_i = upsample(w_i, 2^(max(i-1, 0) + init_scale))  sub-kernel i, stretched (linear or nearest)
    K   = concat_i( alpha^(S-1-i) k_i )               length d 2^(S-1+init_scale) >= L; cut / zero-padded to L
    K   = K / ||K_init||_2                            the norm of the first kernel, frozen (a buffer)

so the kernel has S d parameters per channel per direction, logarithmic in L, and every scale weighs
``1 / alpha`` of the previous one (alpha = ``decay`` = 2: each block's amplitude halves while its length
doubles). ``mode`` names the official variants: ``cat_randn`` (w_i ~ N(0, 1)), ``cat_cos`` (w_i = cos of a
channel-dependent frequency, shuffled over channels), ``..._nearest`` (nearest instead of linear
upsampling), ``..._learnable`` / ``..._learnable_fixed`` (no per-scale factor; the whole kernel times
``(t + 1)^-lambda_h`` with a per-channel ``decay`` parameter, trained or frozen). ``decay_min`` /
``decay_max`` give alpha (or lambda) per channel, linearly spaced over the channels.

The layer (:class:`SGConv`, the official ``GConv``) convolves each channel with its kernel by FFT (rfft of
length 2L: linear, not circular, convolution), adds the skip ``D u``, and mixes channels point-wise:

    y = output_linear( dropout( GELU( K * u + D u ) ) )       (B, H, L) -> (B, H, L)

``bidirectional=True`` learns a second kernel applied backwards (anti-causal, starting at lag -1);
``channels`` > 1 gives several kernels per input channel ("heads") that the output linear mixes;
``postact="glu"`` doubles the output linear and gates it (the LRA configurations).

:class:`SGConv2d` is the image version of the paper's plug-in experiments (Sec. 4.3, "SGConv as a
replacement of the depth-wise convolution"), which have no released code: a depth-wise global 2-D kernel
from d x d sub-kernels, sub-kernel i bilinearly upsampled by 2^i and weighted by alpha^-i, summed centred
on the map ("sum" layout: the 2-D analogue of the concatenation of nested scales), normalised as in 1-D and
applied by 2-D FFT with zero padding (no wrap-around). It is a reconstruction; the paper's exact 2-D
layout is not public.

Departures from the official ``gconv_standalone.py`` (HEAD 97862df) / ``preview`` branch ``gconv.py``:
* layout (B, H, L) only (the official ``transposed=False`` path transposes to the same computation);
* only the sub-kernels that reach positions < L are built (the rest would be cut off); the first call
  also builds the full kernel once, without gradients, to measure the norm that is then frozen (the
  official code divides by the detached norm, so the gradients are the same);
* the official prints, the unused ``d_state`` / ``shift`` / ``hyper_act`` options and the experimental
  ``sum`` / ``hankel`` / ``expand`` / ``trunc`` modes are left out.
State-dict keys are the official ones: ``D``, ``kernel_list.{i}``, ``decay``, ``multiplier``,
``kernel_norm`` (shape (channels x directions, H, 1): the fix of the official commit "kernel_norm size
bug"), ``kernel_norm_initialized``, ``output_linear.0.{weight,bias}``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["SGConv", "SGConv2d", "fft_conv", "kernel_length", "num_scales", "sgconv_kernel_params"]

MODES = ("cat_randn", "cat_cos", "cat_randn_nearest", "cat_cos_nearest", "cat_randn_learnable",
         "cat_randn_learnable_fixed", "cat_cos_learnable", "cat_cos_learnable_fixed")


def num_scales(l_max: int, kernel_dim: int, init_scale: int = 0) -> int:
    """S = 1 + ceil(log2(l_max / d)) - init_scale (official ``n_scales`` default)."""
    if l_max < 1 or kernel_dim < 1:
        raise ConvzooError(f"SGConv needs l_max >= 1 and kernel_dim >= 1, got l_max={l_max}, kernel_dim={kernel_dim}")
    s = 1 + math.ceil(math.log2(l_max / kernel_dim)) - init_scale
    if s < 1:
        raise ConvzooError(f"SGConv with l_max={l_max}, kernel_dim={kernel_dim}, init_scale={init_scale} has "
                           f"{s} sub-kernels; use a smaller kernel_dim or init_scale")
    return s


def kernel_length(n_scales: int, kernel_dim: int, init_scale: int = 0) -> int:
    """Length of the concatenated kernel: d 2^(S - 1 + init_scale)."""
    return kernel_dim * 2 ** (n_scales - 1 + init_scale)


def sgconv_kernel_params(l_max: int, kernel_dim: int, d_model: int = 1, channels: int = 1,
                         bidirectional: bool = False, init_scale: int = 0) -> int:
    """Kernel parameters: S d per channel, head and direction (the closed form of Sec. 3.1)."""
    return num_scales(l_max, kernel_dim, init_scale) * kernel_dim * d_model * channels * (2 if bidirectional else 1)


def fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Linear convolution of (B, H, L) ``u`` with per-channel kernels ``k`` (C, H, Lk) by FFT of length 2L.

    ``Lk`` is L (causal: y[t] = sum_{s<=t} k[t-s] u[s]) or 2L (the second half holds lags -L..-1, as the
    bidirectional kernel). Returns (B, C, H, L), computed in float32 at least.
    """
    L = u.shape[-1]
    dtype = torch.promote_types(u.dtype, torch.float32)
    u_f = torch.fft.rfft(u.to(dtype), n=2 * L)  # (B, H, L + 1)
    k_f = torch.fft.rfft(k.to(dtype), n=2 * L)  # (C, H, L + 1)
    return torch.fft.irfft(u_f.unsqueeze(1) * k_f, n=2 * L)[..., :L]  # (B, C, H, L)


class ChannelLinear(nn.Linear):
    """``nn.Linear`` over dim 1 of (B, C, *spatial) (a 1x1 convolution with Linear's keys and init)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x.flatten(2), self.weight.unsqueeze(-1), self.bias).view(x.shape[0], -1, *x.shape[2:])


def _activation(name: str | None, dim: int = 1) -> nn.Module:
    acts = {None: nn.Identity, "id": nn.Identity, "gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU,
            "tanh": nn.Tanh}
    if name == "glu":
        return nn.GLU(dim=dim)
    if name not in acts:
        raise ConvzooError(f"unknown SGConv activation {name!r}; expected one of glu, {', '.join(map(str, acts))}")
    return acts[name]()


class SGConv(nn.Module):
    """SGConv layer (official ``GConv``): (B, H, L) -> (B, H, L). See the module docstring.

    Args:
        d_model: channels H.
        l_max: the sequence length the kernel is built for (sets S); shorter inputs use its start, longer ones
            see it zero-padded (official).
        kernel_dim: d, parameters per sub-kernel.
        channels: kernels per input channel (heads); the output linear maps channels x H -> H.
        bidirectional: add a backward kernel (non-causal).
        init_scale: start the first scale at upsampling 2^init_scale (Path-X: 1).
        n_scales: override S.
        mode: one of :data:`MODES`.
        decay_min, decay_max: alpha (or lambda in the learnable modes) per channel, linearly spaced.
        activation, postact: after the convolution (GELU) and after the output linear (GLU, or None).
        dropout: after the activation.
        linear: True returns the convolution + skip only (no activation, dropout, output linear).
    """

    def __init__(self, d_model: int, l_max: int, kernel_dim: int = 64, channels: int = 1,
                 bidirectional: bool = False, init_scale: int = 0, n_scales: int | None = None,
                 mode: str = "cat_randn", decay_min: float = 2.0, decay_max: float = 2.0,
                 activation: str | None = "gelu", postact: str | None = "glu", dropout: float = 0.0,
                 linear: bool = False):
        super().__init__()
        if mode not in MODES:
            raise ConvzooError(f"unknown SGConv mode {mode!r}; expected one of {', '.join(MODES)}")
        self.h, self.channels, self.bidirectional, self.mode = d_model, channels, bidirectional, mode
        self.l_max, self.kernel_dim, self.init_scale, self.linear = l_max, kernel_dim, init_scale, linear
        self.num_scales = n_scales if n_scales is not None else num_scales(l_max, kernel_dim, init_scale)
        self.interpolate = "nearest" if "nearest" in mode else "linear"
        kc = channels * (2 if bidirectional else 1)  # kernels per channel (heads x directions)
        self.D = nn.Parameter(torch.randn(channels, d_model))
        self.kernel_list = nn.ParameterList(nn.Parameter(self._init_sub_kernel(kc)) for _ in range(self.num_scales))
        if "learnable" in mode:
            self.decay = nn.Parameter(torch.rand(d_model) * (decay_max - decay_min) + decay_min,
                                      requires_grad="fixed" not in mode)
            self.register_buffer("multiplier", torch.tensor(1.0))
        else:
            self.register_buffer("multiplier", torch.linspace(decay_min, decay_max, d_model).view(1, -1, 1))
        self.register_buffer("kernel_norm", torch.ones(kc, d_model, 1))
        self.register_buffer("kernel_norm_initialized", torch.tensor(False))
        self._norm_ready = False  # Python mirror of the buffer (no data-dependent branch in compiled graphs)
        self.register_load_state_dict_post_hook(SGConv._sync_norm_flag)
        if not linear:
            self.activation = _activation(activation)
            self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
            out = d_model * (2 if postact == "glu" else 1)
            fc = ChannelLinear(d_model * channels, out)
            # official keys: output_linear.0.* behind an activation, output_linear.* without one
            self.output_linear = fc if postact is None else nn.Sequential(fc, _activation(postact, dim=1))

    def _init_sub_kernel(self, kc: int) -> torch.Tensor:
        d, h = self.kernel_dim, self.h
        if "randn" in self.mode:
            return torch.randn(kc, h, d)
        # cos: channel j gets cos(linspace(0, 2 pi j, d)), the channels then shuffled (official)
        t = torch.arange(d, dtype=torch.float32) / max(d - 1, 1)  # linspace(0, 1, d)
        waves = torch.cos(2 * math.pi * torch.arange(h, dtype=torch.float32)[:, None] * t)  # (H, d)
        return waves[torch.randperm(h)].expand(kc, h, d).clone()

    @staticmethod
    def _sync_norm_flag(module, incompatible_keys) -> None:
        flag = module.kernel_norm_initialized
        module._norm_ready = flag.device.type != "meta" and bool(flag)

    # --- the kernel ------------------------------------------------------------------------------------
    def block_starts(self) -> list[int]:
        """Start position of each sub-kernel's block in the concatenated kernel."""
        d, s0 = self.kernel_dim, self.init_scale
        return [0] + [d * 2 ** (i - 1 + s0) for i in range(1, self.num_scales)]

    def kernel(self, length: int | None = None) -> torch.Tensor:
        """The unnormalised kernel (channels x directions, H, n): all scales, or those starting before ``length``."""
        starts = self.block_starts()
        n = self.num_scales if length is None else sum(1 for s in starts if s < length)
        blocks = []
        for i in range(n):
            w = self.kernel_list[i]  # (C, H, d)
            factor = 2 ** (max(0, i - 1) + self.init_scale)
            if factor > 1:
                w = F.interpolate(w, scale_factor=factor, mode=self.interpolate)
            blocks.append(w * self.multiplier ** (self.num_scales - i - 1))
        # the scales past ``length`` enter as empty slices: zero gradients, as the official truncation gives them
        blocks += [self.kernel_list[i][..., :0] for i in range(n, self.num_scales)]
        k = torch.cat(blocks, dim=-1)  # (C, H, n)
        if "learnable" in self.mode:  # power-law decay (t + 1)^-lambda_h
            t = torch.arange(k.shape[-1], device=k.device, dtype=k.dtype)
            k = k * torch.exp(-self.decay.view(1, -1, 1) * torch.log1p(t))
        return k

    def normalised_kernel(self, length: int) -> torch.Tensor:
        """The kernel cut / zero-padded to ``length`` and divided by the frozen norm: (C x dirs, H, length).

        The first call measures the norm of the full kernel (detached, as the official code) and stores it; the
        kernel itself is built the same way on every call, so activation checkpointing recomputes the same graph.
        """
        norm = self.kernel_norm
        if not self._norm_ready and self.D.device.type != "meta":
            with torch.no_grad():
                norm = self.kernel().norm(dim=-1, keepdim=True)
            if not (torch.compiler.is_compiling() or torch.jit.is_tracing()):  # tracing: use it, store nothing
                with torch.no_grad():
                    self.kernel_norm.copy_(norm)
                    self.kernel_norm_initialized.fill_(True)
                self._norm_ready = True
                norm = self.kernel_norm
        k = self.kernel(length)
        k = k[..., :length] if k.shape[-1] >= length else F.pad(k, (0, length - k.shape[-1]))
        return k / norm

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        # u: (B, H, L)
        L = u.shape[-1]
        k = self.normalised_kernel(L)  # (C x dirs, H, L)
        if self.bidirectional:
            k0, k1 = k.chunk(2, dim=0)  # forward / backward kernels, (C, H, L) each
            k = torch.cat([k0, k1.flip(-1)], dim=-1)  # (C, H, 2L): lags 0..L-1, then -L..-1
        y = fft_conv(u, k).to(u.dtype)  # (B, C, H, L)
        y = y + u.unsqueeze(1) * self.D.unsqueeze(-1)  # skip D u
        y = y.flatten(1, 2)  # (B, C H, L), channel index c H + h
        if self.linear:
            return y
        return self.output_linear(self.dropout(self.activation(y)))  # (B, H, L)

    def extra_repr(self) -> str:
        return (f"d_model={self.h}, l_max={self.l_max}, kernel_dim={self.kernel_dim}, num_scales={self.num_scales}, "
                f"channels={self.channels}, bidirectional={self.bidirectional}, mode={self.mode!r}")


class SGConv2d(nn.Module):
    """Depth-wise global 2-D SGConv for images (B, C, H, W) -> (B, C, H, W); see the module docstring.

    y[c, i, j] = sum_{a, b} K[c, a, b] x[c, i - a, j - b] + D_c x[c, i, j] (a convolution, zero outside the map).

    The kernel covers offsets -K/2..K/2-1 in each axis with K = d 2^(S-1) >= max(H, W) of ``size``:
    sub-kernel i (C, d, d) is bilinearly upsampled by 2^i, weighted by alpha^-(i) relative to the finest
    (alpha = ``decay``), zero-padded to K x K around the centre, and the sum is divided by its norm at the
    first call (frozen). ``D`` adds a per-channel skip.
    """

    def __init__(self, channels: int, size: int | tuple[int, int], kernel_dim: int = 4, decay: float = 2.0):
        super().__init__()
        hmax = max(size) if isinstance(size, (tuple, list)) else int(size)
        self.channels, self.kernel_dim, self.decay = channels, kernel_dim, float(decay)
        self.num_scales = num_scales(hmax, kernel_dim)
        self.size = kernel_length(self.num_scales, kernel_dim)  # K
        self.D = nn.Parameter(torch.randn(channels))
        self.kernel_list = nn.ParameterList(nn.Parameter(torch.randn(channels, kernel_dim, kernel_dim))
                                            for _ in range(self.num_scales))
        self.register_buffer("kernel_norm", torch.ones(channels, 1, 1))
        self.register_buffer("kernel_norm_initialized", torch.tensor(False))
        self._norm_ready = False
        self.register_load_state_dict_post_hook(SGConv._sync_norm_flag)

    def kernel(self) -> torch.Tensor:
        """(C, K, K) unnormalised kernel, offset 0 at index (K/2, K/2)."""
        K, k = self.size, 0
        for i, w in enumerate(self.kernel_list):
            w = w.unsqueeze(0)  # (1, C, d, d)
            if i:
                w = F.interpolate(w, scale_factor=2 ** i, mode="bilinear")
            p = (K - w.shape[-1]) // 2
            k = k + F.pad(w[0], (p, K - w.shape[-1] - p, p, K - w.shape[-1] - p)) * self.decay ** (self.num_scales - 1 - i)
        return k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _B, C, H, W = x.shape
        norm = self.kernel_norm
        if not self._norm_ready and self.D.device.type != "meta":  # first call: measure and freeze (detached)
            with torch.no_grad():
                norm = self.kernel().flatten(1).norm(dim=-1).view(C, 1, 1)
            if not (torch.compiler.is_compiling() or torch.jit.is_tracing()):
                with torch.no_grad():
                    self.kernel_norm.copy_(norm)
                    self.kernel_norm_initialized.fill_(True)
                self._norm_ready = True
                norm = self.kernel_norm
        k = self.kernel() / norm  # (C, K, K)
        K, c = self.size, self.size // 2
        # place offsets (-c..K-1-c) of the kernel into a (H + K, W + K) circular frame: no wrap-around reaches x
        fh, fw = H + K, W + K
        k = torch.roll(F.pad(k, (0, fw - K, 0, fh - K)), shifts=(-c, -c), dims=(-2, -1))
        dtype = torch.promote_types(x.dtype, torch.float32)
        y = torch.fft.irfft2(torch.fft.rfft2(x.to(dtype), s=(fh, fw)) * torch.fft.rfft2(k.to(dtype)), s=(fh, fw))
        return (y[..., :H, :W] + x * self.D.view(1, C, 1, 1)).to(x.dtype)
