"""Poincare-ball layers of "Poincare ResNet" (arXiv 2303.14027, seed paper 54): FC, 2-D convolution, batch norm.

As in the official code, features travel between layers as tangent vectors at the origin: each layer maps
its input onto the ball with exp_0, works there, and returns log_0 of its output, so ReLU, pooling and
dropout between layers act in the tangent space. Each layer owns its :class:`~convzoo.layers.poincare.PoincareBall`
(``ball``; official default c = 0.1, fixed).

- :func:`poincare_fc`: the HNN++ fully connected layer (Shimizu et al. 2021, Eq. 8-10). Hyperplane k has
  orientation z_k (a column of ``z``) and offset r_k; the signed distance
  v_k(x) = 2|z_k|/sqrt(c) asinh(sqrt(c) lambda_x <x, z_k>/|z_k| cosh(2 sqrt(c) r_k) - (lambda_x - 1) sinh(2 sqrt(c) r_k))
  gives w = sinh(sqrt(c) v)/sqrt(c) and the output y = w / (1 + sqrt(1 + c|w|^2)), projected into the ball.
- :class:`PoincareLinear` (``z``: (in, out), ``bias``: (out,)) and :class:`PoincareConv2d` (``weights``:
  (C_in k k, out) in unfold order, ``bias``): the convolution beta-concatenates the k x k receptive field
  (tangent vectors scaled by B(C_in k^2/2, 1/2) / B(C_in/2, 1/2), HNN++ Sec. 3.3), maps it onto the ball and
  applies the Poincare FC. Here the patch inner products <x, z_k> and the patch norms come from two
  ``conv2d`` calls on the scaled tangent map (exp_0 only rescales each patch vector, so <exp_0(p), z> =
  g(|p|) <p, z>), not from ``unfold`` (``PoincareConv2d.forward_unfold`` is the literal unfold path; they are
  equal): no (B, C k^2, H W) tensor is built, and the layer exports to ONNX and runs channels_last.
- Identity initialisation (paper Sec. 4.2): weights = 1/2 I over the (C_in k^2) x C_out matrix, bias 0 (the
  1/2 cancels the 2 in v_k); with a square matrix the FC is then exactly the identity on the ball.
  ``id_init=False`` gives the HNN++ Gaussian, std (2 n_in n_out)^-1/2.
- :class:`PoincareBatchNorm2d`: the batch mean is the Einstein midpoint (``use_midpoint=True``) or the Frechet
  mean, the variance the mean squared distance to it (one scalar); points are moved by log at the batch mean,
  parallel transport to the learned mean exp_0(``mean``), rescaling by sqrt(``var`` / batch variance) and exp
  at the learned mean (Lou et al. 2020, Alg. 2).

Departures from the official code (``models/nn/modules``), and why:
- The official ``poincare_mlr`` computes lambda_x as 2 (1 - c|x|^2) instead of 2 / (1 - c|x|^2); the HNN++
  formula (and ``hypll``'s, the authors' later library) is used here.
- The official batch norm keeps ``running_mean`` / ``running_var`` buffers but never updates or uses them, so
  evaluation depends on the test batch. Here training updates them (geodesic step of ``momentum`` towards the
  batch mean, linear average of the variance) and evaluation uses them, as ``nn.BatchNorm2d`` does;
  ``track_running_stats=False`` restores the official batch statistics at evaluation. The official module
  nests the parameters under ``norm.`` (``bn.norm.mean``); here they are ``bn.mean`` / ``bn.var``.
- The official convolution computes the output size as (H - k + 1 + 2p) // s, which is wrong for odd maps;
  here it is the usual (H + 2p - k) // s + 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.layers.poincare import (
    MIN_NORM,
    PoincareBall,
    _eps,
    asinh,
    beta_scale,
    conformal_factor,
    cosh,
    frechet_mean,
    frechet_variance,
    poincare_midpoint,
    project,
    sinh,
)

__all__ = [
    "PoincareBatchNorm2d",
    "PoincareConv2d",
    "PoincareLinear",
    "hyperplane_dists",
    "identity_init_",
    "poincare_fc",
]


# --- the HNN++ fully connected operation ------------------------------------------------------------------

def _fc_from_dots(xz: torch.Tensor, x2: torch.Tensor, z_norm: torch.Tensor, r: torch.Tensor | None,
                  c: torch.Tensor, dim: int) -> torch.Tensor:
    """Poincare FC output from <x, z_k> (``xz``), |x|^2 (``x2``, keepdim) and |z_k|, broadcast along ``dim``."""
    s = c.sqrt()
    lam = 2 / (1 - c * x2).clamp_min(MIN_NORM)
    arg = s * lam / z_norm * xz
    if r is not None:
        arg = arg * cosh(2 * s * r) - (lam - 1) * sinh(2 * s * r)
    v = 2 * z_norm / s * asinh(arg)  # signed distances to the hyperplanes, v_k(x)
    w = sinh(s * v) / s
    y = w / (1 + (1 + c * w.pow(2).sum(dim, keepdim=True)).sqrt())
    return project(y, c, dim)


def hyperplane_dists(x: torch.Tensor, z: torch.Tensor, r: torch.Tensor | None, c: torch.Tensor) -> torch.Tensor:
    """HNN++ signed distances v_k(x) of points x (..., n) to the hyperplanes (z (n, m), r (m,)): (..., m)."""
    s, z_norm = c.sqrt(), z.norm(dim=0).clamp_min(MIN_NORM)
    lam = conformal_factor(x, c)
    arg = s * lam / z_norm * (x @ z)
    if r is not None:
        arg = arg * cosh(2 * s * r) - (lam - 1) * sinh(2 * s * r)
    return 2 * z_norm / s * asinh(arg)


def poincare_fc(x: torch.Tensor, z: torch.Tensor, r: torch.Tensor | None, c: torch.Tensor) -> torch.Tensor:
    """The Poincare FC layer on points x (..., n) of the ball: (..., m) points of the ball."""
    c = torch.as_tensor(c, dtype=x.dtype, device=x.device)
    return _fc_from_dots(x @ z, x.pow(2).sum(-1, keepdim=True), z.norm(dim=0).clamp_min(MIN_NORM), r, c, -1)


def identity_init_(weight: torch.Tensor, bias: torch.Tensor | None = None, identity: bool = True) -> None:
    """Identity initialisation 1/2 I (rows: inputs, columns: outputs) or the HNN++ Gaussian; bias 0."""
    n_in, n_out = weight.shape
    with torch.no_grad():
        if identity:
            weight.copy_(0.5 * torch.eye(n_in, n_out, dtype=weight.dtype, device=weight.device))
        else:
            nn.init.normal_(weight, 0.0, (2 * n_in * n_out) ** -0.5)
        if bias is not None:
            bias.zero_()


# --- layers ---------------------------------------------------------------------------------------------

class PoincareLinear(nn.Module):
    """Poincare FC on tangent vectors at the origin along the last dim: (..., in) -> (..., out)."""

    def __init__(self, in_features: int, out_features: int, c: float = 0.1, bias: bool = True,
                 id_init: bool = True, learnable_c: bool = False, manual: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.id_init = in_features, out_features, id_init
        self.ball = PoincareBall(c, learnable_c, manual)
        self.z = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        identity_init_(self.z, self.bias, self.id_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.ball.c.to(x.dtype)
        y = poincare_fc(self.ball.expmap0(x), self.z, self.bias, c)  # (..., out) on the ball
        return self.ball.logmap0(y)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class PoincareConv2d(nn.Module):
    """Poincare 2-D convolution on tangent maps at the origin: (B, C_in, H, W) -> (B, C_out, H', W')."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 0, c: float = 0.1, bias: bool = True, id_init: bool = True,
                 learnable_c: bool = False, manual: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.id_init = kernel_size, stride, padding, id_init
        self.ball = PoincareBall(c, learnable_c, manual)
        n_in = in_channels * kernel_size**2
        self.weights = nn.Parameter(torch.empty(n_in, out_channels))  # official layout: (C_in k k, C_out)
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.beta = beta_scale(in_channels, n_in)  # beta-concatenation of the k*k pieces of C_in dims
        self.reset_parameters()

    def reset_parameters(self) -> None:
        identity_init_(self.weights, self.bias, self.id_init)

    def _bias(self, ndim: int):
        return None if self.bias is None else self.bias.view(-1, *([1] * ndim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, k = self.ball.c.to(x.dtype), self.kernel_size
        v = x * self.beta  # (B, C_in, H, W) scaled tangent vectors
        w = self.weights.t().reshape(self.out_channels, self.in_channels, k, k)
        pz = F.conv2d(v, w, None, self.stride, self.padding)  # <patch, z_k>: (B, C_out, H', W')
        ones = v.new_ones(1, 1, k, k)
        n = F.conv2d(v.pow(2).sum(1, keepdim=True), ones, None, self.stride, self.padding)  # |patch|^2
        n = n.clamp_min(MIN_NORM**2).sqrt()  # (B, 1, H', W')
        # exp_0 then projection rescale each patch by g = min(tanh(sqrt(c) n), 1 - eps) / (sqrt(c) n)
        sn = c.sqrt() * n
        g = torch.tanh(sn).clamp_max(1 - _eps(x.dtype)) / sn
        z_norm = self.weights.norm(dim=0).clamp_min(MIN_NORM).view(-1, 1, 1)
        y = _fc_from_dots(g * pz, (g * n).pow(2), z_norm, self._bias(2), c, 1)  # (B, C_out, H', W') on the ball
        return self.ball.logmap0(y, dim=1)

    def forward_unfold(self, x: torch.Tensor) -> torch.Tensor:
        """The official computation: unfold the scaled map, exp_0 each patch, Poincare FC, log_0."""
        b, _, h, w = x.shape
        k, s, p = self.kernel_size, self.stride, self.padding
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        patches = F.unfold(x * self.beta, k, padding=p, stride=s).transpose(1, 2)  # (B, H'W', C_in k k)
        y = poincare_fc(self.ball.expmap0(patches), self.weights, self.bias, self.ball.c.to(x.dtype))
        y = self.ball.logmap0(y)  # (B, H'W', C_out)
        return y.transpose(1, 2).reshape(b, self.out_channels, ho, wo)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}")


class PoincareBatchNorm2d(nn.Module):
    """Poincare batch norm on tangent maps (B, C, *spatial) at the origin (any number of spatial dims).

    ``mean`` (C,) is the learned mean as a tangent vector at the origin, ``var`` the learned variance (one
    scalar): C + 1 parameters.
    """

    def __init__(self, num_features: int, c: float = 0.1, use_midpoint: bool = True, momentum: float = 0.1,
                 track_running_stats: bool = True, eps: float = 1e-6, learnable_c: bool = False,
                 manual: bool = True):
        super().__init__()
        self.num_features, self.use_midpoint, self.momentum, self.eps = num_features, use_midpoint, momentum, eps
        self.track_running_stats = track_running_stats
        self.ball = PoincareBall(c, learnable_c, manual)
        self.mean = nn.Parameter(torch.zeros(num_features))
        self.var = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("running_mean", torch.zeros(num_features))  # a point of the ball
        self.register_buffer("running_var", torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ball, shape = self.ball, (1, -1) + (1,) * (x.dim() - 2)
        c = ball.c.to(x.dtype)
        xb = ball.expmap0(x, dim=1)  # (B, C, *S) on the ball
        batch_dims = (0, *range(2, x.dim()))
        if self.training or not self.track_running_stats:
            if self.use_midpoint:
                mu = poincare_midpoint(xb, c, 1, batch_dims, keepdim=True)
            else:
                mu = frechet_mean(xb, c, 1, batch_dims, keepdim=True)
            var = frechet_variance(xb, mu, c, 1, ball.manual)
            if self.training and self.track_running_stats:
                self._update_running(mu.detach().reshape(-1), var.detach())
        else:
            mu, var = self.running_mean.to(x.dtype).view(shape), self.running_var.to(x.dtype)
        target = ball.expmap0(self.mean.to(x.dtype).view(shape), dim=1)  # learned mean on the ball
        v = ball.transp(mu, target, ball.logmap(mu, xb, dim=1), dim=1)
        v = v * (self.var / (var + self.eps)).sqrt()
        return ball.logmap0(ball.expmap(target, v, dim=1), dim=1)

    @torch.no_grad()
    def _update_running(self, mu: torch.Tensor, var: torch.Tensor) -> None:
        ball, rm = self.ball, self.running_mean
        step = ball.logmap(rm, mu.to(rm.dtype))
        rm.copy_(ball.expmap(rm, self.momentum * step))
        self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.to(self.running_var.dtype))

    def extra_repr(self) -> str:
        return f"{self.num_features}, use_midpoint={self.use_midpoint}, momentum={self.momentum}"
