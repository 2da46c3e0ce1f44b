"""Helpers for tests that compare models numerically (like ``torch.testing``, for convzoo checks)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomise_bn(model: nn.Module, seed: int = 1, affine: bool = True) -> nn.Module:
    """Give every BatchNorm (1D/2D/3D) random running statistics (and, with ``affine``, random
    scale and shift), so that eval-mode comparisons, fusion and parity checks cannot pass trivially
    with the identity statistics of a fresh model."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        # BatchNorm, and norms that keep BN statistics without subclassing it (BigNAS's ElasticBatchNorm2d)
        is_bn = isinstance(m, nn.modules.batchnorm._BatchNorm) or (
            getattr(m, "running_var", None) is not None and isinstance(getattr(m, "weight", None), torch.Tensor))
        if is_bn and getattr(m, "track_running_stats", True) and m.running_var is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if affine and getattr(m, "affine", m.weight is not None) and m.weight is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.25)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


@torch.no_grad()
def deploy_outputs(model: nn.Module, x: torch.Tensor, seed: int = 1):
    """Eval ``model`` with random BN statistics (``randomise_bn``) on ``x`` before and after
    ``convzoo.deploy`` of a copy. Returns ``(reference, deployed_output, deployed_model)``; the caller
    asserts the tolerance and which norms may remain."""
    import copy

    from convzoo.layers.fuse import deploy

    model.eval()
    randomise_bn(model, seed=seed)
    ref = model(x)
    fused = deploy(copy.deepcopy(model))
    return ref, fused(x), fused


def batch_norms(model: nn.Module) -> list[str]:
    """Names of the BatchNorm modules (1D/2D/3D) left in ``model``."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
