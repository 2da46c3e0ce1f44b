"""Inference-time fusion: conv+BN folding and the ``deploy`` walk over re-parameterisable blocks.

Folding (Ioffe & Szegedy 2015, used by every re-parameterisation paper): for y = BN(conv(x)),
W' = W * gamma / sqrt(var + eps) per output channel, b' = beta + (b - mean) * gamma / sqrt(var + eps).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def fuse_bn_tensors(weight: torch.Tensor, bias: torch.Tensor | None,
                    bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(W', b') with conv(x; W', b') == bn(conv(x; W, b)) in eval mode (per output channel)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    b = torch.zeros_like(bn.running_mean) if bias is None else bias
    w = weight * scale.reshape((-1,) + (1,) * (weight.dim() - 1))
    return w, bn.bias + (b - bn.running_mean) * scale


@torch.no_grad()
def fuse_conv_bn(conv: nn.modules.conv._ConvNd, bn: nn.modules.batchnorm._BatchNorm) -> nn.modules.conv._ConvNd:
    """A new conv (1D/2D/3D, on the conv's device and dtype) equal to ``bn(conv(x))`` in eval mode."""
    fused = type(conv)(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                       device=conv.weight.device, dtype=conv.weight.dtype)
    w, b = fuse_bn_tensors(conv.weight, conv.bias, bn)
    fused.weight.copy_(w)
    fused.bias.copy_(b)
    return fused


def fuse_sequential_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every BN that directly follows a conv inside an ``nn.Sequential`` (recursively)."""
    for name, child in list(module.named_children()):
        fuse_sequential_conv_bn(child)
    if isinstance(module, nn.Sequential):
        keys = list(module._modules)
        for a, b in itertools.pairwise(keys):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.modules.conv._ConvNd) and isinstance(bn, nn.modules.batchnorm._BatchNorm) \
                    and not isinstance(conv, nn.modules.conv._ConvTransposeNd) and bn.track_running_stats:
                module._modules[a] = fuse_conv_bn(conv, bn)
                module._modules[b] = nn.Identity()
    return module


def deploy(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode, call every ``reparameterize()`` bottom-up, fold conv+BN pairs."""
    model.eval()
    for m in reversed(list(model.modules())):
        if m is not model and hasattr(m, "reparameterize"):
            m.reparameterize()
    if hasattr(model, "reparameterize"):
        model.reparameterize()
    fuse_sequential_conv_bn(model)
    return model
