"""Global Response Normalization (GRN), channels-last, as used in the UniRepLKNet block.

GRN was introduced by ConvNeXt V2 (Woo et al., CVPR 2023, arXiv 2301.00808, Sec. 3, Eq. 1-3); UniRepLKNet
(seed papers 11 and 13) puts it after the GELU of every block's FFN. For an input X of shape (B, H, W, C):

    G(X)_c = || X[:, :, :, c] ||_2                 L2 norm over the spatial positions   (B, 1, 1, C)
    N(X)_c = G(X)_c / (mean_c' G(X)_c' + eps)       divisive normalisation over channels (B, 1, 1, C)
    GRN(X) = gamma * (X * N(X)) + beta + X          residual form, gamma = beta = 0 at init

Parameters ``gamma`` and ``beta`` have shape (1, 1, 1, C), the layout of the ConvNeXt-V2 and UniRepLKNet
checkpoints (``act.1.gamma`` / ``act.1.beta`` in UniRepLKNet), and eps = 1e-6. ``use_bias=False`` drops
``beta``: UniRepLKNet's deploy structure folds beta into the following Linear layer (W (y + beta) =
W y + W beta), which is exact because beta is added after every data-dependent operation.
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["GlobalResponseNorm"]


class GlobalResponseNorm(nn.Module):
    """GRN on channels-last input (B, H, W, C): ``(gamma * N(x) + 1) * x [+ beta]``.

    Args:
        dim: C, the channel count (last dimension of the input).
        use_bias: keep the learnable shift ``beta`` (False in UniRepLKNet's deploy structure).
        eps: added to the channel mean of the spatial norms (1e-6 in ConvNeXt V2 and UniRepLKNet).
    """

    def __init__(self, dim: int, use_bias: bool = True, eps: float = 1e-6):
        super().__init__()
        if int(dim) != dim or dim < 1:
            raise ConvzooError(f"GlobalResponseNorm needs a positive channel count, got {dim!r}")
        self.dim, self.use_bias, self.eps = int(dim), bool(use_bias), float(eps)
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, self.dim))
        if self.use_bias:
            self.beta = nn.Parameter(torch.zeros(1, 1, 1, self.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, H, W, C)
        g = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)  # (B, 1, 1, C)
        n = g / (g.mean(dim=-1, keepdim=True) + self.eps)  # (B, 1, 1, C)
        y = (self.gamma * n + 1) * x
        return y + self.beta if self.use_bias else y

    def drop_bias(self) -> torch.Tensor | None:
        """Remove ``beta`` (returns it, detached) so a caller can fold it into the next linear layer."""
        if not self.use_bias:
            return None
        beta = self.beta.detach()
        del self.beta
        self.use_bias = False
        return beta

    def extra_repr(self) -> str:
        return f"dim={self.dim}, use_bias={self.use_bias}, eps={self.eps}"
