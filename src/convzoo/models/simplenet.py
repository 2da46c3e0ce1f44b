"""SimpleNet — "Lets keep it simple, Using simple architectures to outperform deeper and more
complex architectures" (Hasanpour, Rouhani, Fayyaz, Sabokrou; arXiv 1608.06037, 2016). Seed paper 32.

What is implemented
- The paper's plain 13-layer CNN (Sec. 3, Fig. 1 / Table 1 of the paper; Caffe prototxts in
  Coderx7/SimpleNet): stacks of 3x3 conv (stride 1, pad 1, with bias) -> BatchNorm -> ReLU, 2x2/2
  max-pooling between groups, two 1x1 convs near the end, then **global max pooling** (not average,
  Sec. 3 "we used global max pooling") -> (dropout) -> linear classifier.
- The configurable family of the official PyTorch code (Coderx7/SimpleNet_Pytorch, cifar/models and
  imagenet/simplenet.py): ``SimpleNet(num_classes, in_chans, scale, network_idx, mode, drop_rates)``
  with the official layer tables (:data:`NETWORKS`), width multiplier ``scale`` (channels =
  round(c * scale)), stride modes m0..m4 (:data:`STRIDE_MODES`, early 3x3 convs made stride 2 for
  224-px inputs), per-layer Dropout2d rates (pool layers count as layers), BN momentum 0.05 / eps 1e-5,
  Xavier-uniform conv init with ReLU gain, and the official names as registered variants.
- State-dict layout = the official one: ``features.N.*`` with the official numbering, including the
  zero-rate ``Dropout2d`` placeholders the 2023 refactor inserted after most convs (they hold no
  weights but shift the indices). Only the classifier is named ``head.fc`` (Backbone contract) instead
  of ``classifier``. :func:`load_official_state_dict` maps official checkpoints onto this layout:
  strips DataParallel ``module.`` prefixes, renames ``classifier.*`` and re-numbers checkpoints saved
  with the pre-refactor layout (dropout only after pools) — SimpleNet_Pytorch issue #7.

Where paper and official code differ (each available as an option)
- 1x1 convs: the paper's Caffe nets use padding 0; the official PyTorch code pads *every* conv by 1,
  so each 1x1 conv grows the map by 2 pixels (MACs and the final map size change, parameters do not).
  ``pad_1x1`` selects it. The CIFAR variants default to the paper (0); the ImageNet variants and
  ``simplenet_cifar_5m_extra_pool`` exist only as PyTorch-trained weights, so they default to 1.
- ``simplenet_cifar_5m_extra_pool``: the early PyTorch port put a redundant max-pool after the 10th
  conv (issue #5, not in the paper or Caffe). The released CIFAR-10/100 weights (95.51% / 78.37%) were
  trained with it, so this variant exists only to load them; ``simplenet_cifar_5m`` is the paper's net.
- Head dropout: the official forward applies ``dropout2d(drop_rates.get(15, 0))`` after the global
  pool, so key 15 means "head" for the ImageNet table but *also* the dropout after the last pool for
  the CIFAR tables. We reproduce that when ``drop_rate`` is None; pass ``drop_rate`` to set it alone.
- The Caffe CIFAR nets used dropout 0.2 after most layers; the official PyTorch defaults are 0 (the
  placeholders); use ``drop_rates`` to restore them.
- The official generic builder ``simplenet()`` returns simplenetv1_5m_m2; here ``simplenet`` is the
  paper's CIFAR network (= simplenet_cifar_5m, 10 classes, 32x32) and accepts every constructor option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from convzoo.errors import ConvzooError
from convzoo.layers.head import Backbone, ClassifierHead
from convzoo.registry import ModelCard, register_model

# --- variants as data --------------------------------------------------------------------------
# Layer tables of the official code, one token per layer, read left to right:
#   "64"     3x3 conv (pad 1, bias) -> BN -> ReLU with 64 (x scale) output channels
#   "2048k1" 1x1 conv ("cccp" layers of the Caffe nets) -> BN -> ReLU
#   "p"      2x2 max-pool (stride 2) followed by a Dropout2d
#   "*"      suffix: the official code puts no Dropout2d placeholder after this conv
NETWORKS: dict[str, str] = {
    "imagenet_5m": "64 128 128 128 128 128 p 256 256 256 512 p 2048k1 256k1 256",
    "imagenet_9m": "128 192 192 192 192 192 p 320 320 320 640 p 2560k1 320k1 320",
    "cifar_310k": "64 32 32 32* p 32 32 64* p 64 64* p 128 256k1 64k1* p 64*",
    "cifar_460k": "32 32 32 64* p 64 64 64* p 64 64* p 96 96k1 96k1* p 100*",
    "cifar_5m": "64 128 128 128* p 128 128 256* p 256 256* p 512 2048k1 256k1* p 256*",
    "cifar_5m_extra_pool": "64 128 128 128* p 128 128 256* p 256 256* p 512 p 2048k1 256k1* p 256*",
}
NETWORK_IDX = tuple(NETWORKS)  # the official ``network_idx`` order (0 = imagenet_5m ... 5 = extra pool)
PAD_1X1 = {"imagenet_5m": 1, "imagenet_9m": 1, "cifar_310k": 0, "cifar_460k": 0, "cifar_5m": 0,
           "cifar_5m_extra_pool": 1}  # see the module docstring: paper (0) vs official PyTorch (1)

# Stride modes (official ``self.strides``): table index -> stride, for 224-px inputs.
STRIDE_MODES: dict[int, dict[int, int]] = {
    0: {},
    1: {0: 2, 1: 2, 2: 2},
    2: {0: 2, 1: 2, 2: 1, 3: 2},
    3: {0: 2, 1: 2, 2: 1, 3: 1, 4: 2},
    4: {0: 2, 1: 1, 2: 2, 3: 1, 4: 2, 5: 1},
}
HEAD_DROP_KEY = 15  # official: ``drop_rates.get(15, 0.0)`` is the dropout after the global pool


def parse_table(table: str) -> list[tuple[str, int, int, bool]]:
    """Token string -> [(kind "conv" | "pool", channels, kernel, has_dropout_slot)]."""
    layers = []
    for tok in table.split():
        if tok == "p":
            layers.append(("pool", 0, 2, True))
            continue
        slot = not tok.endswith("*")
        tok = tok.rstrip("*")
        kernel = 1 if tok.endswith("k1") else 3
        layers.append(("conv", int(tok.removesuffix("k1")), kernel, slot))
    return layers


def _resolve_network(network_idx: int | str) -> str:
    if isinstance(network_idx, int) and 0 <= network_idx < len(NETWORK_IDX):
        return NETWORK_IDX[network_idx]
    if network_idx in NETWORKS:
        return network_idx
    raise ConvzooError(f"unknown SimpleNet network {network_idx!r}; expected an index 0-{len(NETWORK_IDX) - 1} "
                       f"or one of {', '.join(NETWORKS)}")


# --- the network -------------------------------------------------------------------------------
class SimpleNet(Backbone):
    """SimpleNet(V1) family (paper Sec. 3; official PyTorch configurable builder).

    Args:
        num_classes: classifier outputs; 0 gives the pooled embedding.
        in_chans: input channels.
        scale: width multiplier, channels = round(c * scale) (official "small" nets use 0.5 / 0.75).
        network_idx: a key of :data:`NETWORKS` or its official index (0 imagenet_5m ... 5 extra pool).
        mode: stride mode 0-4 (:data:`STRIDE_MODES`).
        drop_rates: ``{table index: Dropout2d rate}``; pools count as layers (official semantics).
        drop_rate: dropout after the global pool; None = official ``drop_rates.get(15, 0.0)``.
        pad_1x1: padding of the 1x1 convs; None = the network's default (:data:`PAD_1X1`).
        layers: a custom token table (overrides ``network_idx``).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, scale: float = 1.0,
                 network_idx: int | str = 0, mode: int = 2, drop_rates: Mapping[int, float] | None = None,
                 drop_rate: float | None = None, pad_1x1: int | None = None, layers: str | None = None):
        super().__init__()
        if mode not in STRIDE_MODES:
            raise ConvzooError(f"SimpleNet stride mode must be one of {sorted(STRIDE_MODES)}, got {mode!r}")
        network = None if layers else _resolve_network(network_idx)
        self.table = parse_table(layers or NETWORKS[network])
        self.network, self.scale, self.mode = network, scale, mode
        self.pad_1x1 = (PAD_1X1[network] if network else 1) if pad_1x1 is None else pad_1x1
        drop_rates = {int(k): float(v) for k, v in (drop_rates or {}).items()}
        strides = STRIDE_MODES[mode]

        # features: (B, in_chans, H, W) -> (B, C_last, H / reduction, W / reduction)
        mods: list[nn.Module] = []
        self.feature_info: list[dict] = []
        c_in, reduction = in_chans, 1
        for idx, (kind, channels, k, slot) in enumerate(self.table):
            stride = strides.get(idx, 2 if kind == "pool" else 1)
            rate = drop_rates.get(idx)
            if kind == "pool":
                if mods:  # the map entering each pool is a stage output
                    self.feature_info.append(dict(num_chs=c_in, reduction=reduction, module=f"features.{len(mods) - 1}"))
                mods += [nn.MaxPool2d(2, stride), nn.Dropout2d(rate or 0.0)]
            else:
                c_out = round(channels * scale)
                pad = 1 if k == 3 else self.pad_1x1
                mods += [nn.Conv2d(c_in, c_out, k, stride, pad, bias=True),
                         nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.05),
                         nn.ReLU(inplace=True)]
                if slot or rate is not None:  # official: a Dropout2d unless the table's rate is None
                    mods.append(nn.Dropout2d(rate or 0.0))
                c_in = c_out
            reduction *= stride
        self.feature_info.append(dict(num_chs=c_in, reduction=reduction, module=f"features.{len(mods) - 1}"))
        self.features_seq = None  # (placeholder name kept free; the stack is ``self.features``)
        del self.features_seq
        self.features = nn.Sequential(*mods)
        self._taps = [int(f["module"].split(".")[1]) for f in self.feature_info]

        self.num_features = c_in
        self.num_classes = num_classes
        head_rate = drop_rates.get(HEAD_DROP_KEY, 0.0) if drop_rate is None else drop_rate
        self.head = ClassifierHead(c_in, num_classes, pool="max", drop_rate=head_rate)  # global MAX pool
        self._init_weights()

    def _init_weights(self) -> None:
        # official: Xavier-uniform with the ReLU gain on conv weights; biases, BN, Linear keep defaults
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("relu"))

    # nn.Module attribute lookup finds the submodule ``features`` before this method, so the
    # multi-scale maps are served by ``features`` *called with a tensor* through __call__ below.
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, C_last, h, w), unpooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, num_classes)


def _stage_maps(model: SimpleNet, x: torch.Tensor) -> list[torch.Tensor]:
    """One map per feature_info entry: the map entering every max-pool, then the last map."""
    out, taps = [], set(model._taps)
    for i, m in enumerate(model.features):
        x = m(x)
        if i in taps:
            out.append(x)
    return out
