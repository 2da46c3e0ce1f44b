"""Weight initialisations shared by several families' official codes."""

from __future__ import annotations

from torch import nn

__all__ = ["kaiming_bn_init_"]


def kaiming_bn_init_(model: nn.Module) -> nn.Module:
    """Convs ~ Kaiming normal (fan-in, PyTorch's defaults), BatchNorm weight 1 / bias 0, linear biases 0:
    torchvision's DenseNet and the official VoVNet.pytorch. Other layers keep their own initialisation."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
    return model
