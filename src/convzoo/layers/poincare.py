"""The Poincare ball of curvature -c (c > 0): gyrovector operations, maps, transport, distance, means.

From "Poincare ResNet" (van Spengler, Berkhout, Mettes; ICCV 2023; arXiv 2303.14027; seed paper 54),
which builds on Ganea et al. 2018 (Hyperbolic Neural Networks, arXiv 1805.09112) and Shimizu et al. 2021
(HNN++, arXiv 2006.08210). The ball is {x : c|x|^2 < 1}; every function takes ``c`` as a tensor (a
0-dim tensor, or anything that broadcasts against the reduced vector dimension) and reduces over ``dim``.

- :func:`mobius_add` x (+) y = ((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c<x,y> + c^2|x|^2|y|^2)
- :func:`expmap0` / :func:`logmap0`: tangent space at the origin <-> ball (tanh / artanh of sqrt(c)|v|)
- :func:`expmap` / :func:`logmap` at any point x (conformal factor lambda_x = 2 / (1 - c|x|^2))
- :func:`gyration`, :func:`transp` (parallel transport x -> y: gyr[y, -x] v lambda_x / lambda_y)
- :func:`dist` = 2/sqrt(c) artanh(sqrt(c) |(-x) (+) y|), :func:`project` (back inside the ball, eps margin)
- :func:`poincare_midpoint` (Einstein midpoint in gyrovector form), :func:`klein_midpoint` (the same point
  through the Klein model), :func:`frechet_mean` (Karcher flow), :func:`frechet_variance`
- :func:`beta_scale` B(n/2, 1/2) / B(n_i/2, 1/2), the factor of beta-concatenation (HNN++ Sec. 3.3)
- :class:`PoincareBall`: the curvature as a module (fixed buffer or learnable through softplus) with
  these operations as methods.

Manual backward passes: :class:`MobiusAdd`, :class:`ExpMap0` and :class:`LogMap0` are
``torch.autograd.Function`` s whose ``backward`` is the closed-form vector-Jacobian product (derived in their
docstrings, gradients for x, y and c); the same forward written with plain torch ops is the autograd twin.
``manual=True`` (the official ``custom_autograd=True``) picks the Functions whenever a gradient is recorded;
without gradients (inference, export, compile of an eval model) both paths are the same plain ops.
:func:`expmap`, :func:`logmap` and :func:`dist` inherit the choice through the Mobius addition inside them.

Departures from the official code (maxvanspengler/poincare-resnet, ``models/manifolds``), and why:
- The official custom backward of the Mobius addition returns a wrong curvature gradient (its first term
  is ``1 / (denom * (...))``); the gradients here are derived anew and checked by ``gradcheck`` in fp64.
- A learnable curvature is ``softplus(isp_c)`` with ``isp_c`` initialised to softplus^-1(c) so that the
  curvature starts at c; the official code stores ``isp_c = c`` and so starts at softplus(c). A fixed
  curvature is a buffer ``isp_c`` equal to c (official: a frozen parameter), so it is not counted as a
  parameter.
- The Frechet mean is the Karcher flow (mu <- exp_mu(mean_i log_mu(x_i))), differentiated through its
  iterations, instead of the Lou et al. 2020 solver with its implicit backward; both converge to the same
  point (tested against ``hypll``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ExpMap0",
    "LogMap0",
    "MobiusAdd",
    "PoincareBall",
    "beta_scale",
    "conformal_factor",
    "dist",
    "expmap",
    "expmap0",
    "frechet_mean",
    "frechet_variance",
    "gyration",
    "klein_midpoint",
    "klein_to_poincare",
    "logmap",
    "logmap0",
    "mobius_add",
    "poincare_midpoint",
    "poincare_to_klein",
    "project",
    "transp",
]

MIN_NORM = 1e-15


def _eps(dtype: torch.dtype) -> float:
    """Margin of :func:`project` (the official values: 4e-3 in fp32 and lower precisions, 1e-5 in fp64)."""
    return 1e-5 if dtype == torch.float64 else 4e-3


# The TorchScript ONNX exporter has no symbolic for aten::atanh / asinh / sinh / cosh: while exporting, these
# are written with exp / log (ONNX Exp, Log), elsewhere the accurate torch kernels run.
def atanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.log((1 + x) / (1 - x)) if torch.onnx.is_in_onnx_export() else torch.atanh(x)


def asinh(x: torch.Tensor) -> torch.Tensor:
    if torch.onnx.is_in_onnx_export():
        a = x.abs()
        return torch.sign(x) * torch.log(a + (a * a + 1).sqrt())
    return torch.asinh(x)


def sinh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (torch.exp(x) - torch.exp(-x)) if torch.onnx.is_in_onnx_export() else torch.sinh(x)


def cosh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (torch.exp(x) + torch.exp(-x)) if torch.onnx.is_in_onnx_export() else torch.cosh(x)


def _sq(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.pow(2).sum(dim=dim, keepdim=True)


def _dot(x: torch.Tensor, y: torch.Tensor, dim: int) -> torch.Tensor:
    return (x * y).sum(dim=dim, keepdim=True)


def _use_manual(manual: bool, *tensors: torch.Tensor) -> bool:
    return manual and torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _to_shape(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Sum a broadcast gradient back to the shape of the input it belongs to."""
    return grad.sum_to_size(like.shape) if grad.shape != like.shape else grad


# --- Mobius addition ---------------------------------------------------------------------------------

def _mobius_add(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, dim: int = -1) -> torch.Tensor:
    x2, y2, xy = _sq(x, dim), _sq(y, dim), _dot(x, y, dim)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    den = 1 + 2 * c * xy + c**2 * x2 * y2
    return num / den.clamp_min(MIN_NORM)


class MobiusAdd(torch.autograd.Function):
    """x (+) y with the closed-form backward.

    With A = 1 + 2c<x,y> + c|y|^2, B = 1 - c|x|^2, D = 1 + 2c<x,y> + c^2|x|^2|y|^2, f = (A x + B y) / D and the
    upstream gradient u (t = <u, A x + B y>):
      d<u,f>/dx = (A u + 2c<u,x> y - 2c<u,y> x) / D - t / D^2 (2c y + 2c^2|y|^2 x)
      d<u,f>/dy = (B u + 2c<u,x> (x + y)) / D - t / D^2 (2c x + 2c^2|x|^2 y)
      d<u,f>/dc = (<u,x> (2<x,y> + |y|^2) - <u,y> |x|^2) / D - t / D^2 (2<x,y> + 2c|x|^2|y|^2)
    """

    @staticmethod
    def forward(ctx, x, y, c, dim):
        x2, y2, xy = _sq(x, dim), _sq(y, dim), _dot(x, y, dim)
        a = 1 + 2 * c * xy + c * y2
        b = 1 - c * x2
        d = (1 + 2 * c * xy + c**2 * x2 * y2).clamp_min(MIN_NORM)
        ctx.save_for_backward(x, y, c, x2, y2, xy, a, b, d)
        ctx.dim = dim
        return (a * x + b * y) / d

    @staticmethod
    def backward(ctx, u):
        x, y, c, x2, y2, xy, a, b, d = ctx.saved_tensors
        dim = ctx.dim
        ux, uy = _dot(u, x, dim), _dot(u, y, dim)
        t = (a * ux + b * uy) / d**2
        gx = gy = gc = None
        if ctx.needs_input_grad[0]:
            gx = (a * u + 2 * c * ux * y - 2 * c * uy * x) / d - t * (2 * c * y + 2 * c**2 * y2 * x)
            gx = _to_shape(gx, x)
        if ctx.needs_input_grad[1]:
            gy = (b * u + 2 * c * ux * (x + y)) / d - t * (2 * c * x + 2 * c**2 * x2 * y)
            gy = _to_shape(gy, y)
        if ctx.needs_input_grad[2]:
            gc = (ux * (2 * xy + y2) - uy * x2) / d - t * (2 * xy + 2 * c * x2 * y2)
            gc = _to_shape(gc, c)
        return gx, gy, gc, None


def mobius_add(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, dim: int = -1,
               manual: bool = False) -> torch.Tensor:
    """Mobius addition x (+) y (``manual``: the closed-form backward of :class:`MobiusAdd`)."""
    c = torch.as_tensor(c, dtype=x.dtype, device=x.device)
    if _use_manual(manual, x, y, c):
        return MobiusAdd.apply(x, y, c, dim)
    return _mobius_add(x, y, c, dim)


# --- maps at the origin ------------------------------------------------------------------------------

def project(x: torch.Tensor, c: torch.Tensor, dim: int = -1, eps: float | None = None) -> torch.Tensor:
    """Rescale points with sqrt(c)|x| > 1 - eps onto the sphere of radius (1 - eps) / sqrt(c)."""
    c = torch.as_tensor(c, dtype=x.dtype, device=x.device)
    maxnorm = (1 - (_eps(x.dtype) if eps is None else eps)) / c.sqrt()
    norm = x.norm(dim=dim, keepdim=True).clamp_min(MIN_NORM)
    return torch.where(norm > maxnorm, x / norm * maxnorm, x)


def _expmap0(v: torch.Tensor, c: torch.Tensor, dim: int = -1) -> torch.Tensor:
    sn = v.norm(dim=dim, keepdim=True).clamp_min(MIN_NORM) * c.sqrt()
    return torch.tanh(sn) * v / sn


def _radial_grads(ctx, u, x, c, n, h, k):
    """Backward of a radial map ``f(x) = h(s|x|) x`` (s = sqrt(c), n = |x|) given ``h`` and
    ``k = s n h'(s n) = d(h)/d(log n)``: ``d<u,f>/dx = h u + <u,x> k / n^2 x`` and ``d<u,f>/dc = <u,x> k / (2c)``
    (for the ``(x, c, dim)`` inputs of :class:`ExpMap0` and :class:`LogMap0`)."""
    ux = _dot(u, x, ctx.dim)
    gx = h * u + ux * k / n**2 * x if ctx.needs_input_grad[0] else None
    gc = _to_shape(ux * k / (2 * c), c) if ctx.needs_input_grad[1] else None
    return gx, gc, None


class ExpMap0(torch.autograd.Function):
    """exp_0(v) = tanh(s|v|) v / (s|v|), s = sqrt(c), with the closed-form backward.

    With n = |v|, g = tanh(sn) / (sn) and upstream u:
      d<u,f>/dv = g u + <u,v> (sech^2(sn) - g) / n^2 v,   d<u,f>/dc = <u,v> (sech^2(sn) - g) / (2c).
    """

    @staticmethod
    def forward(ctx, v, c, dim):
        n = v.norm(dim=dim, keepdim=True).clamp_min(MIN_NORM)
        sn = n * c.sqrt()
        th = torch.tanh(sn)
        g = th / sn
        ctx.save_for_backward(v, c, n, g, th)
        ctx.dim = dim
        return g * v

    @staticmethod
    def backward(ctx, u):
        v, c, n, g, th = ctx.saved_tensors
        return _radial_grads(ctx, u, v, c, n, g, (1 - th**2) - g)  # k = sech^2 - g


def expmap0(v: torch.Tensor, c: torch.Tensor, dim: int = -1, manual: bool = False) -> torch.Tensor:
    """Exponential map at the origin, projected inside the ball (as the official code)."""
    c = torch.as_tensor(c, dtype=v.dtype, device=v.device)
    y = ExpMap0.apply(v, c, dim) if _use_manual(manual, v, c) else _expmap0(v, c, dim)
    return project(y, c, dim)


def _logmap0(y: torch.Tensor, c: torch.Tensor, dim: int = -1) -> torch.Tensor:
    sn = y.norm(dim=dim, keepdim=True).clamp_min(MIN_NORM) * c.sqrt()
    return atanh(sn) * y / sn


class LogMap0(torch.autograd.Function):
    """log_0(y) = artanh(s|y|) y / (s|y|), s = sqrt(c), with the closed-form backward.

    With n = |y|, h = artanh(sn) / (sn) and upstream u:
      d<u,f>/dy = h u + <u,y> (1 / (1 - cn^2) - h) / n^2 y,   d<u,f>/dc = <u,y> (1 / (1 - cn^2) - h) / (2c).
    """

    @staticmethod
    def forward(ctx, y, c, dim):
        n = y.norm(dim=dim, keepdim=True).clamp_min(MIN_NORM)
        sn = n * c.sqrt()
        h = atanh(sn) / sn
        ctx.save_for_backward(y, c, n, h)
        ctx.dim = dim
        return h * y

    @staticmethod
    def backward(ctx, u):
        y, c, n, h = ctx.saved_tensors
        return _radial_grads(ctx, u, y, c, n, h, 1 / (1 - c * n**2).clamp_min(MIN_NORM) - h)


def logmap0(y: torch.Tensor, c: torch.Tensor, dim: int = -1, manual: bool = False) -> torch.Tensor:
    """Logarithmic map at the origin (ball -> tangent space at 0)."""
    c = torch.as_tensor(c, dtype=y.dtype, device=y.device)
    return LogMap0.apply(y, c, dim) if _use_manual(manual, y, c) else _logmap0(y, c, dim)


# --- maps, transport and distance at any point ---------------------------------------------------------

def conformal_factor(x: torch.Tensor, c: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """lambda_x = 2 / (1 - c|x|^2) (keepdim)."""
    return 2 / (1 - c * _sq(x, dim)).clamp_min(MIN_NORM)


def expmap(x: torch.Tensor, v: torch.Tensor, c: torch.Tensor, dim: int = -1, manual: bool = False) -> torch.Tensor:
    """exp_x(v) = x (+) tanh(sqrt(c) lambda_x |v| / 2) v / (sqrt(c)|v|), projected."""
    c = torch.as_tensor(c, dtype=v.dtype, device=v.device)
    s, n = c.sqrt(), v.norm(dim=dim, keepdim=True).clamp_min(MIN_NORM)
    second = torch.tanh(s * conformal_factor(x, c, dim) * n / 2) * v / (s * n)
    return project(mobius_add(x, second, c, dim, manual), c, dim)


def logmap(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, dim: int = -1, manual: bool = False) -> torch.Tensor:
    """log_x(y) = 2 / (sqrt(c) lambda_x) artanh(sqrt(c)|w|) w / |w|, w = (-x) (+) y."""
    c = torch.as_tensor(c, dtype=y.dtype, device=y.device)
    w = mobius_add(-x, y, c, dim, manual)
    s, n = c.sqrt(), w.norm(dim=dim, keepdim=True).clamp_min(MIN_NORM)
    return 2 / (s * conformal_factor(x, c, dim)) * atanh(s * n) * w / n


def gyration(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor, c: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """gyr[u, v] w = (-(u (+) v)) (+) (u (+) (v (+) w)), in closed form (Ungar)."""
    c = torch.as_tensor(c, dtype=w.dtype, device=w.device)
    u2, v2 = _sq(u, dim), _sq(v, dim)
    uv, uw, vw = _dot(u, v, dim), _dot(u, w, dim), _dot(v, w, dim)
    a = -(c**2) * uw * v2 + c * vw + 2 * c**2 * uv * vw
    b = -(c**2) * vw * u2 - c * uw
    d = 1 + 2 * c * uv + c**2 * u2 * v2
    return w + 2 * (a * u + b * v) / d.clamp_min(MIN_NORM)


def transp(x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, c: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Parallel transport of the tangent vector v at x to y: gyr[y, -x] v lambda_x / lambda_y."""
    c = torch.as_tensor(c, dtype=v.dtype, device=v.device)
    return gyration(y, -x, v, c, dim) * conformal_factor(x, c, dim) / conformal_factor(y, c, dim)


def dist(x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, dim: int = -1, keepdim: bool = False,
         manual: bool = False) -> torch.Tensor:
    """Geodesic distance 2/sqrt(c) artanh(sqrt(c) |(-x) (+) y|)."""
    c = torch.as_tensor(c, dtype=y.dtype, device=y.device)
    s = c.sqrt()
    n = mobius_add(-x, y, c, dim, manual).norm(dim=dim, keepdim=True)
    d = 2 / s * atanh(s * n)
    return d if keepdim else d.squeeze(dim)


# --- means and variance --------------------------------------------------------------------------------

def poincare_to_klein(x: torch.Tensor, c: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return 2 * x / (1 + c * _sq(x, dim))


def klein_to_poincare(k: torch.Tensor, c: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return k / (1 + (1 - c * _sq(k, dim)).clamp_min(MIN_NORM).sqrt())


def poincare_midpoint(x: torch.Tensor, c: torch.Tensor, dim: int = -1, batch_dim: int | tuple[int, ...] = 0,
                      keepdim: bool = False) -> torch.Tensor:
    """Einstein midpoint in the Poincare ball: 1/2 (x) (sum_i lambda_i x_i / sum_i (lambda_i - 1)), where
    1/2 (x) m = m / (1 + sqrt(1 - c|m|^2)) (the paper's midpoint batch norm, Ungar's gyromidpoint)."""
    lam = conformal_factor(x, c, dim)
    m = (lam * x).sum(batch_dim, keepdim=True) / (lam - 1).sum(batch_dim, keepdim=True).clamp_min(MIN_NORM)
    m = m / (1 + (1 - c * _sq(m, dim)).clamp_min(MIN_NORM).sqrt())
    return m if keepdim else m.squeeze(batch_dim)


def klein_midpoint(x: torch.Tensor, c: torch.Tensor, dim: int = -1, batch_dim: int | tuple[int, ...] = 0,
                   keepdim: bool = False) -> torch.Tensor:
    """The Einstein midpoint computed in the Klein model: gamma-weighted mean of the Klein points, mapped back."""
    k = poincare_to_klein(x, c, dim)
    gamma = 1 / (1 - c * _sq(k, dim)).clamp_min(MIN_NORM).sqrt()
    m = (gamma * k).sum(batch_dim, keepdim=True) / gamma.sum(batch_dim, keepdim=True)
    m = klein_to_poincare(m, c, dim)
    return m if keepdim else m.squeeze(batch_dim)


def frechet_mean(x: torch.Tensor, c: torch.Tensor, dim: int = -1, batch_dim: int | tuple[int, ...] = 0,
                 keepdim: bool = False,
                 iters: int = 100, tol: float | None = None) -> torch.Tensor:
    """Frechet (Karcher) mean argmin_mu sum_i d(mu, x_i)^2 by the Karcher flow mu <- exp_mu(mean_i log_mu(x_i)),
    started at the midpoint; stops when a step moves mu by less than ``tol`` (default 1e-12 in fp64, 1e-6
    otherwise). Differentiable through its iterations."""
    tol = (1e-12 if x.dtype == torch.float64 else 1e-6) if tol is None else tol
    mu = poincare_midpoint(x, c, dim, batch_dim, keepdim=True)
    for _ in range(iters):
        step = logmap(mu, x, c, dim).mean(batch_dim, keepdim=True)
        mu = expmap(mu, step, c, dim)
        if float(step.detach().norm(dim=dim).max()) < tol:
            break
    return mu if keepdim else mu.squeeze(batch_dim)


def frechet_variance(x: torch.Tensor, mu: torch.Tensor, c: torch.Tensor, dim: int = -1,
                     manual: bool = False) -> torch.Tensor:
    """Mean squared geodesic distance of all points to ``mu`` (broadcast against x): one scalar, as the paper's
    batch norm uses it."""
    return dist(x, mu, c, dim, manual=manual).pow(2).mean()


def beta_scale(n_i: int, n: int) -> float:
    """B(n/2, 1/2) / B(n_i/2, 1/2): the factor that beta-concatenation of n_i-dim pieces into n dims applies to
    each piece's tangent vector (HNN++ Sec. 3.3)."""
    def log_beta(a: float, b: float) -> float:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    return math.exp(log_beta(n / 2, 0.5) - log_beta(n_i / 2, 0.5))


# --- the ball as a module ------------------------------------------------------------------------------

class PoincareBall(nn.Module):
    """Curvature -c of one layer's ball and the operations on it.

    ``learnable=False``: c is the buffer ``isp_c`` (the official fixed curvature, c = 0.1 in the network);
    ``learnable=True``: c = softplus(isp_c), a parameter initialised so that c starts at the given value.
    ``manual``: use the closed-form backward passes (official ``custom_autograd``).
    """

    def __init__(self, c: float = 1.0, learnable: bool = False, manual: bool = True):
        super().__init__()
        if c <= 0:
            from convzoo.errors import ConvzooError

            raise ConvzooError(f"the Poincare ball needs a curvature c > 0, got {c!r}")
        self.learnable, self.manual = learnable, manual
        if learnable:
            self.isp_c = nn.Parameter(torch.tensor(math.log(math.expm1(c))))
        else:
            self.register_buffer("isp_c", torch.tensor(float(c)))

    @property
    def c(self) -> torch.Tensor:
        return F.softplus(self.isp_c) if self.learnable else self.isp_c

    def _c(self, x: torch.Tensor) -> torch.Tensor:
        return self.c.to(x.dtype)

    def mobius_add(self, x, y, dim: int = -1):
        return mobius_add(x, y, self._c(x), dim, self.manual)

    def project(self, x, dim: int = -1):
        return project(x, self._c(x), dim)

    def expmap0(self, v, dim: int = -1):
        return expmap0(v, self._c(v), dim, self.manual)

    def logmap0(self, y, dim: int = -1):
        return logmap0(y, self._c(y), dim, self.manual)

    def expmap(self, x, v, dim: int = -1):
        return expmap(x, v, self._c(v), dim, self.manual)

    def logmap(self, x, y, dim: int = -1):
        return logmap(x, y, self._c(y), dim, self.manual)

    def transp(self, x, y, v, dim: int = -1):
        return transp(x, y, v, self._c(v), dim)

    def dist(self, x, y, dim: int = -1, keepdim: bool = False):
        return dist(x, y, self._c(y), dim, keepdim, self.manual)

    def extra_repr(self) -> str:
        return f"c={float(self.c):.4g}, learnable={self.learnable}, manual={self.manual}"
