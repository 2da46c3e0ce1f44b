"""Two at Once: Enhancing Learning and Generalization Capacities via IBN-Net.

Seed paper 37; Pan, Luo, Shi, Tang; ECCV 2018; arXiv 1807.09441. Official code XingangPan/IBN-Net
(``ibnnet/resnet_ibn.py``, ``resnext_ibn.py``, ``se_resnet_ibn.py``, ``modules.py``; torch.hub entries).

Implemented here, on the ResNet skeleton of :mod:`convzoo.models.resnet` (torchvision layout):

- IBN-a (Sec. 3.2, Fig. 3(b)): the first norm of every residual block (after ``conv1``) in stages
  conv2_x - conv4_x (``layer1..3``) is an :class:`~convzoo.layers.ibn.IBN` layer (half InstanceNorm,
  half BatchNorm); ``layer4`` keeps BatchNorm, since "the last stage should stay discriminative".
  ResNet-18/34/50/101/152, ResNeXt-50/101 (32x4d, IBN on the D*C channels of the grouped bottleneck)
  and SE-ResNet-50/101 (bias-free SE, reduction 16, after the last BN as in SENet). Zero extra
  parameters and MACs (the abstract's "without increasing computational cost").
- IBN-b (Sec. 3.2, Fig. 3(c)): InstanceNorm (affine) replaces the stem's BN and is added after the
  residual addition, before the ReLU, of the LAST block of ``layer1`` and ``layer2`` (the official code;
  the paper's figure shows one block). ResNet-18/34/50/101/152; +2 * (64 + 128) = 384 (basic) or
  2 * (256 + 512) = 1,536 (bottleneck) parameters.

Placement is data (:data:`IBN_CFGS`): ``ibn="a" | "b"``, ``ibn_ratio`` (0.5), and any variant can be
built with other stages via ``ibn_stages``. Parameter counts equal the fact sheet's (measured with the
official code, G1a "Paper 37" Sec. 3) and torchvision's ResNets for IBN-a.

Departures from the official code, none in the forward function at 224 px: the head pools with a
global mean instead of the official fixed ``AvgPool2d(7)`` (same result at 224 px, any size works);
``zero_init_last=True`` (default here, as convzoo's other ResNets) starts the last BN of each residual
branch at 0 for numerically tame random networks; the official init (all norms at 1) is
``zero_init_last=False``, which the paper recipe sets. State-dict keys equal the official ones
(``layerX.Y.bn1.IN.weight``, ``layerX.Y.bn1.BN.running_mean``, ``layerX.Y.IN.weight``, stem ``bn1``,
SE ``layerX.Y.se.fc.0.weight``), so the released hub checkpoints load by name.
DenseNet-IBN-a, the segmentation / domain-generalisation experiments and the appearance analysis are
later work.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.ibn import IBN
from convzoo.layers.se import SqueezeExcite
from convzoo.models.resnet import ResNet
from convzoo.registry import ModelCard, register_model

__all__ = ["IBN_CFGS", "IBNResNet"]


class IBNResNet(ResNet):
    """ResNet / ResNeXt / SE-ResNet with IBN-a or IBN-b.

    Args:
        block, layers, groups, base_width: the ResNet skeleton (see :class:`~convzoo.models.resnet.ResNet`).
        ibn: "a" (IBN in the first norm of every block of ``ibn_stages``) or "b" (stem InstanceNorm and an
            InstanceNorm after the add of the last block of each stage in ``ibn_stages``).
        ibn_stages: stage indices (0-based) that get IBN; default (0, 1, 2) for "a", (0, 1) for "b".
        ibn_ratio: fraction of instance-normalised channels in an IBN layer (IBN-a; 0.5 in the paper).
        se_reduction: add a bias-free SE block with this reduction to every block (SE-ResNet), or None.
        num_classes, in_chans, drop_rate, zero_init_last: as :class:`~convzoo.models.resnet.ResNet`.
    """

    def __init__(self, block: str = "bottleneck", layers: Sequence[int] = (3, 4, 6, 3), ibn: str = "a",
                 ibn_stages: Sequence[int] | None = None, ibn_ratio: float = 0.5, se_reduction: int | None = None,
                 groups: int = 1, base_width: int = 64, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, zero_init_last: bool = True):
        if ibn not in ("a", "b"):
            raise ConvzooError(f"ibn must be 'a' or 'b', got {ibn!r}")
        stages = tuple(ibn_stages) if ibn_stages is not None else ((0, 1, 2) if ibn == "a" else (0, 1))
        if not set(stages) <= {0, 1, 2, 3}:
            raise ConvzooError(f"ibn_stages are stage indices 0..3, got {list(stages)}")

        def placement(stage: int, index: int, num_blocks: int) -> dict:
            opts: dict = {}
            if se_reduction is not None:
                opts.update(attn=lambda c: SqueezeExcite(c, se_reduction, bias=False), attn_name="se")
            if stage in stages and ibn == "a":
                opts["norm1"] = lambda c: IBN(c, ibn_ratio)
            # IBN-b: the official code leaves the first block of a stage without IN, so a one-block
            # stage gets none; otherwise the last block gets it
            if stage in stages and ibn == "b" and index == num_blocks - 1 and index > 0:
                opts["post_norm"] = lambda c: nn.InstanceNorm2d(c, affine=True)
            return opts

        stem = (lambda c: nn.InstanceNorm2d(c, affine=True)) if ibn == "b" else None
        super().__init__(block, layers, num_classes, in_chans, drop_rate, zero_init_last, groups=groups,
                         base_width=base_width, stem_norm=stem, block_args=placement)
        self.ibn, self.ibn_stages, self.ibn_ratio = ibn, stages, ibn_ratio


# --- variants (official hubconf / resnet_ibn.py etc.; counts: fact sheet G1a "Paper 37" Sec. 3) ----------

_R18, _R34 = dict(block="basic", layers=(2, 2, 2, 2)), dict(block="basic", layers=(3, 4, 6, 3))
_R50, _R101 = dict(block="bottleneck", layers=(3, 4, 6, 3)), dict(block="bottleneck", layers=(3, 4, 23, 3))
_R152 = dict(block="bottleneck", layers=(3, 8, 36, 3))
_X32x4d, _SE = dict(groups=32, base_width=4), dict(se_reduction=16)

# name: (architecture, params (official code), MACs @224 in G (sheet, 3 decimals), ImageNet top-1/top-5 error
# of the official README (IBN-a re-implementation), the torchvision/timm baseline it equals or extends)
IBN_CFGS = {
    "resnet18_ibn_a": ({**_R18, "ibn": "a"}, 11_689_512, 1.814, "29.17/10.24", "torchvision resnet18"),
    "resnet34_ibn_a": ({**_R34, "ibn": "a"}, 21_797_672, 3.664, "25.78/8.19", "torchvision resnet34"),
    "resnet50_ibn_a": ({**_R50, "ibn": "a"}, 25_557_032, 4.089, "22.54/6.32", "torchvision resnet50"),
    "resnet101_ibn_a": ({**_R101, "ibn": "a"}, 44_549_160, 7.801, "21.39/5.59", "torchvision resnet101"),
    "resnet152_ibn_a": ({**_R152, "ibn": "a"}, 60_192_808, 11.514, None, "torchvision resnet152"),
    "resnet18_ibn_b": ({**_R18, "ibn": "b"}, 11_689_896, 1.814, None, "torchvision resnet18 + 384"),
    "resnet34_ibn_b": ({**_R34, "ibn": "b"}, 21_798_056, 3.664, None, "torchvision resnet34 + 384"),
    "resnet50_ibn_b": ({**_R50, "ibn": "b"}, 25_558_568, 4.089, None, "torchvision resnet50 + 1,536"),
    "resnet101_ibn_b": ({**_R101, "ibn": "b"}, 44_550_696, 7.801, None, "torchvision resnet101 + 1,536"),
    "resnet152_ibn_b": ({**_R152, "ibn": "b"}, 60_194_344, 11.514, None, "torchvision resnet152 + 1,536"),
    "resnext50_ibn_a": ({**_R50, **_X32x4d, "ibn": "a"}, 25_028_904, 4.230, None, "torchvision resnext50_32x4d"),
    "resnext101_ibn_a": ({**_R101, **_X32x4d, "ibn": "a"}, 44_177_704, 7.970, "20.88/5.42",
                         "timm resnext101_32x4d"),
    "se_resnet50_ibn_a": ({**_R50, **_SE, "ibn": "a"}, 28_071_976, 4.092, None,
                          "timm legacy_seresnet50 less its 16,048 SE biases"),
    "se_resnet101_ibn_a": ({**_R101, **_SE, "ibn": "a"}, 49_292_328, 7.806, "21.25/5.51",
                           "timm legacy_seresnet101 less its 34,544 SE biases"),
}

_CAPS = frozenset({"features", "compile", "onnx", "channels_last", "bf16"})


def _card(name: str) -> ModelCard:
    arch, params, gmacs, err, base = IBN_CFGS[name]
    kind = "IBN-a (IBN after conv1 of every block of layer1-3)" if arch["ibn"] == "a" else \
        "IBN-b (stem InstanceNorm; InstanceNorm after the add of the last block of layer1 and layer2)"
    return ModelCard(
        name=name, paper=37, family="ibnnet", task="classification", params=params,
        params_source=f"sum of numel, 1000 classes, official IBN-Net code (fact sheet G1a Paper 37 Sec. 3); = {base}",
        macs=round(gmacs * 1e9), macs_rtol=5e-4,
        macs_source=("fact sheet G1a Paper 37 Sec. 3 (official code, 224 px, convs + linear, 3 decimals); "
                     "norms are not counted"),
        reference=None, capabilities=_CAPS, test_size=(64, 64),
        source="paper Sec. 3.2 / Fig. 3; official ibnnet/*.py",
        recipes=("resnet50_ibn_a_imagenet_paper",) if name == "resnet50_ibn_a" else
        ("ibnnet_digits",) if name == "resnet18_ibn_a" else (),
        notes=(f"{kind}. " + (f"ImageNet top-1/top-5 error {err} % (official README; the plain ResNet "
                             f"re-implementation in the same README is worse). " if err else "") +
               "Weights: torch.hub XingangPan/IBN-Net (keys load by name; not downloadable here). Not in timm "
               "or torchvision."),
    )


def _register(name: str) -> None:
    def factory(**kwargs) -> IBNResNet:
        return IBNResNet(**{**IBN_CFGS[name][0], **kwargs})

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"{name}: IBN-Net (paper 37) {IBN_CFGS[name][0]}"
    globals()[name] = register_model(_card(name))(factory)


for _name in IBN_CFGS:
    _register(_name)
