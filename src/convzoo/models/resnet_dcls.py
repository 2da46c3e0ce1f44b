"""ResNet-50-dcls: ResNet-50 whose 3x3 convolutions have learnable spacings.

Seed paper 39: Khalfaoui-Hassani, Pellegrini, Masquelier, "Dilated convolution with learnable
spacings", ICLR 2023, arXiv 2112.03740 -- the paper's first experiment (abstract and Sec. 5: "we
drop-in replaced the standard convolutions [of ResNet50] with DCLS ones", accuracy up at about the
same parameter count, throughput down). ConvNeXt-dcls, the paper's main model, is in
:mod:`convzoo.models.convnext_dcls`.

Implemented here, on the ResNet skeleton of :mod:`convzoo.models.resnet` (torchvision's ResNet-50 v1.5
layout and keys):
- every bottleneck's 3x3 convolution (stride 2 in the first block of stages 2-4) is a
  :class:`~convzoo.layers.dcls.Dcls2d` with a ``dcls_kernel_size`` (S) window, padding S // 2, no bias,
  ``dcls_kernel_count`` (Kc) elements per (output, input) channel pair and the paper's bilinear
  construction ("v0"). Everything else (stem, 1x1 convs, projection shortcuts, BNs, head) is
  ResNet-50's.
- S = 7 and Kc = 5 are the defaults of the official training code (K-H-Ismail/pytorch-image-models
  ``timm/models/resnet_dcls.py`` and ``train.py``: ``--dcls_kernel_size 7 --dcls_kernel_count 5``).
  As in that code with ``--dcls_sync`` (which its ``clamp_parameters`` requires), ONE position tensor
  P (2, width, width, Kc) per stage is shared by the DCLS convs of all its blocks; here the stage owns
  it (key ``layerN.P``, the optimizer glob ``"*.P"``) and passes it to its blocks, where the official
  code assigns the same Parameter to every block's ``conv2.P``. ``dcls_shared_positions=False`` gives
  each conv its own P (``layerN.B.conv2.P``).
- Counting: the constructed kernel is a dense S x S kernel, so the 3x3 convs' MACs grow by S^2 / 9
  (ResNet-50-dcls has 12.31 GMACs at 224 against ResNet-50's 4.09); parameters: Kc weights per pair
  and 2 Kc positions per pair and stage instead of 9 weights per pair (24,008,744 against
  25,557,032). Both are closed forms written in tests/models/test_dcls.py.

Departures: the paper's ResNet-50 table (its exact Kc / S and counts) was not available to us, so the
variant follows the official code's defaults; the paper's training recipe for it is not provided
(ConvNeXt-dcls's is); the official ResNet code leaves the repulsion loss off by default (``--use_loss_rep``), so
no ``regularization_loss`` here. The conv+BN after each DCLS conv is not folded by ``reparameterize()``
(the 1x1 conv+BN pairs and the stem are).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.dcls import Dcls2d, SharedPositions
from convzoo.models.resnet import Bottleneck, ResNet, fold_bn_pairs
from convzoo.registry import ModelCard, register_model

__all__ = ["DclsBottleneck", "DclsStage", "ResNetDcls"]


class DclsBottleneck(Bottleneck):
    """1x1 conv-BN-ReLU -> DCLS S x S (stride) conv-BN-ReLU -> 1x1 conv-BN -> + shortcut -> ReLU."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, *,
                 kernel_count: int = 5, dilated_kernel_size: int = 7, version: str = "bilinear",
                 own_positions: bool = False):
        super().__init__(inplanes, planes, stride, downsample)
        width = self.conv2.out_channels
        # (B, width, H, W) -> (B, width, H/s, W/s); the S x S window replaces the 3x3 kernel
        self.conv2 = Dcls2d(width, width, kernel_count, stride=stride, padding=dilated_kernel_size // 2,
                            dilated_kernel_size=dilated_kernel_size, bias=False, version=version,
                            own_positions=own_positions)

    def forward(self, x: torch.Tensor, P: torch.Tensor | None = None) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out, P)))
        return self._finish(self.bn3(self.conv3(out)), x)

    def reparameterize(self) -> None:
        fold_bn_pairs(self, [("conv1", "bn1"), ("conv3", "bn3")])  # the DCLS kernel is rebuilt each call


class DclsStage(SharedPositions, nn.Sequential):
    """The blocks of one stage (torchvision keys ``layerN.B``) and, when shared, their positions ``P``."""

    def __init__(self, blocks: Sequence[DclsBottleneck], width: int, kernel_count: int, window: int,
                 shared: bool):
        super().__init__(*blocks)
        # one (2, width, width, Kc) tensor for the DCLS conv of every block (official --dcls_sync)
        self.init_shared_positions((2, width, width, kernel_count) if shared else None, (window, window))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self:
            x = block(x, self.P)
        return x


class ResNetDcls(ResNet):
    """ResNet (bottleneck blocks) with DCLS convs in place of the 3x3 convs.

    Args:
        layers: blocks per stage ((3, 4, 6, 3) for ResNet-50).
        dcls_kernel_count: Kc, elements per (output, input) channel pair (5).
        dcls_kernel_size: S, the window (7, padding 3).
        dcls_version: "bilinear" (= "v0", the paper), "v1", "max" or "gauss".
        dcls_shared_positions: one P per stage (official --dcls_sync) or one per conv.
        num_classes, in_chans, drop_rate, zero_init_last, drop_path_rate, global_pool: as
            :class:`~convzoo.models.resnet.ResNet`.
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), dcls_kernel_count: int = 5, dcls_kernel_size: int = 7,
                 dcls_version: str = "bilinear", dcls_shared_positions: bool = True, num_classes: int = 1000,
                 in_chans: int = 3, drop_rate: float = 0.0, zero_init_last: bool = True, drop_path_rate: float = 0.0,
                 global_pool: str = "avg"):
        if dcls_kernel_count < 1 or dcls_kernel_size < 1:
            raise ConvzooError(f"DCLS needs kernel_count >= 1 and dilated_kernel_size >= 1, "
                               f"got {dcls_kernel_count} and {dcls_kernel_size}")
        super().__init__("bottleneck", layers, num_classes, in_chans, drop_rate, zero_init_last,
                         drop_path_rate=drop_path_rate, global_pool=global_pool)
        dcls = {"kernel_count": dcls_kernel_count, "dilated_kernel_size": dcls_kernel_size, "version": dcls_version,
                "own_positions": not dcls_shared_positions}
        for info in self.feature_info:  # rebuild each stage's blocks around the skeleton's shortcuts
            old = getattr(self, info["module"])
            blocks = [DclsBottleneck(b.conv1.in_channels, b.conv3.out_channels // Bottleneck.expansion,
                                     b.conv2.stride[0], b.downsample, **dcls) for b in old]
            width = blocks[0].conv2.out_channels
            setattr(self, info["module"], DclsStage(blocks, width, dcls_kernel_count, dcls_kernel_size,
                                                    dcls_shared_positions))
        self.set_drop_path(drop_path_rate)  # on the rebuilt blocks
        # torchvision / official init: Kaiming fan-out for the plain convs, BN 1 / 0, last BN 0; the DCLS
        # convs keep nn.ConvNd's default (their own reset_parameters), as the official code leaves them
        self._init_weights(zero_init_last)

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Clamp every position tensor into its window (official name; the engine uses the hooks)."""
        for m in self.modules():
            if m is not self and hasattr(m, "post_optimizer_step"):
                m.post_optimizer_step()


# --- variants ------------------------------------------------------------------------------------------

# ResNet-50-dcls at 1000 classes, 224 px: closed forms of tests/models/test_dcls.py (torchvision ResNet-50
# with its 3x3 convs replaced, see the module docstring)
_PARAMS, _MACS = 24_008_744, 12_310_020_096


@register_model(ModelCard(
    name="resnet50_dcls", paper=39, family="resnet_dcls", task="classification", input_size=(224, 224),
    test_size=(32, 32), params=_PARAMS,
    params_source=("closed form, tests/models/test_dcls.py::test_resnet50_dcls_counts_closed_form: torchvision "
                   "resnet50 (ResNet50_Weights meta num_params 25,557,032) less its 3x3 convs (9 sum n w^2) plus "
                   "Kc sum n w^2 DCLS weights and 2 Kc sum w^2 shared positions (Kc 5, official defaults)"),
    macs=_MACS, macs_rtol=0.0,
    macs_source=("closed form, tests/models/test_dcls.py::test_resnet50_dcls_counts_closed_form: FlopCounterMode "
                 "MACs of torchvision resnet50 @224 plus (7^2 - 3^2) w^2 H W per bottleneck (the constructed "
                 "7x7 kernel is dense)"),
    reference=None,
    # torch.compile and ONNX of the DCLS construction are proven on convnext_dcls_tiny, those of the ResNet
    # skeleton on the ECA-ResNets; here they would cost minutes of CI (and a 0.7 GB ONNX file of dense 7x7 kernels)
    capabilities=frozenset({"features", "channels_last", "bf16"}),
    source=("DCLS paper abstract / Sec. 5 (ResNet50 with DCLS convs) and official K-H-Ismail/pytorch-image-models "
            "timm/models/resnet_dcls.py + train.py (S 7, Kc 5, positions shared per stage, bilinear)"),
    notes=("No ImageNet figures: the paper's ResNet-50-dcls table was not available; Kc / S are the official code's "
           "defaults. Preprocessing: timm's ResNet _cfg of the official timm fork (bilinear, crop 0.875, ImageNet "
           "statistics; the card defaults)."),
))
def resnet50_dcls(**kwargs) -> ResNetDcls:
    return ResNetDcls(**{"layers": (3, 4, 6, 3), **kwargs})
