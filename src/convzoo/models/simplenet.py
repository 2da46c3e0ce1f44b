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
- 1x1 convs are unpadded, as in the paper's Caffe nets, the 2018 PyTorch CIFAR code that trained the
  released CIFAR weights (``models/simplenet.py``) and the official code since commit 7457947
  (2023-04-11: "these weights are trained with no padding on conv1x1", the released ImageNet
  weights). Only the interim refactor of February 2023 padded every conv by 1 (each 1x1 conv then
  grows the map by 2 pixels: more MACs, same parameters); its ImageNet weights were replaced.
  ``pad_1x1=1`` rebuilds that interim layout.
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

timm's arguments: ``global_pool`` ("max" by default, the paper's; "avg", "avgmax", "catavgmax", ""),
``drop_rate`` (above), ``drop_path_rate`` 0 only (a plain network: no residual paths), and
``set_grad_checkpointing()``, which recomputes each segment of ``features`` between two stage taps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import no_drop_path
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
    raise ConvzooError(f"unknown SimpleNet network {network_idx!r}; expected an index "
                       f"0-{len(NETWORK_IDX) - 1} or one of {', '.join(NETWORKS)}")


# --- the network -------------------------------------------------------------------------------
class StageSequential(nn.Sequential):
    """The official ``features`` stack; calling it returns the Backbone ``features(x)`` list.

    Keeping the official attribute name ``features`` (so that state-dict keys read ``features.N.*``)
    means ``model.features(x)`` is this module: it returns one map per ``feature_info`` entry (the map
    entering every max-pool, then the last map), and ``forward_features`` takes the last one.
    """

    def __init__(self, mods: list[nn.Module], taps: list[int]):
        super().__init__(*mods)
        self.taps = tuple(taps)
        self.grad_checkpointing = False

    def _segment(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        for i in range(start, end):
            x = self[i](x)
        return x

    def forward(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """The map at each tap (the first ``stop`` only when given)."""
        out, start = [], 0
        ckpt = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        for tap in self.taps[:stop]:  # segment start..tap ends at a stage output
            if ckpt:
                x = checkpoint(self._segment, x, start, tap + 1, use_reentrant=False)
            else:
                x = self._segment(x, start, tap + 1)
            out.append(x)
            start = tap + 1
        return out


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
        pad_1x1: padding of the 1x1 convs: 0 (paper, official code and weights), 1 (the February 2023
            interim official layout).
        layers: a custom token table (overrides ``network_idx``).
        global_pool: "max" (the paper), "avg", "avgmax", "catavgmax" or "" (timm's values).
        drop_path_rate: 0 only (no residual paths).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, scale: float = 1.0,
                 network_idx: int | str = 0, mode: int = 2, drop_rates: Mapping[int, float] | None = None,
                 drop_rate: float | None = None, pad_1x1: int = 0, layers: str | None = None,
                 global_pool: str = "max", drop_path_rate: float = 0.0):
        super().__init__()
        no_drop_path(drop_path_rate, "SimpleNet")
        if mode not in STRIDE_MODES:
            raise ConvzooError(f"SimpleNet stride mode must be one of {sorted(STRIDE_MODES)}, got {mode!r}")
        network = None if layers else _resolve_network(network_idx)
        self.table = parse_table(layers or NETWORKS[network])
        self.network, self.scale, self.mode = network, scale, mode
        self.pad_1x1 = pad_1x1
        drop_rates = {int(k): float(v) for k, v in (drop_rates or {}).items()}
        strides = STRIDE_MODES[mode]

        # features: (B, in_chans, H, W) -> (B, C_last, H / reduction, W / reduction)
        mods: list[nn.Module] = []
        self.feature_info: list[dict] = []
        c_in, reduction = in_chans, 1

        def tap() -> None:  # the output of the last module so far is a stage output
            self.feature_info.append({"num_chs": c_in, "reduction": reduction,
                                      "module": f"features.{len(mods) - 1}"})

        for idx, (kind, channels, k, slot) in enumerate(self.table):
            stride = strides.get(idx, 2 if kind == "pool" else 1)
            rate = drop_rates.get(idx)
            if kind == "pool":
                if mods:  # the map entering each max-pool
                    tap()
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
        tap()  # the last map
        taps = [int(f["module"].rpartition(".")[2]) for f in self.feature_info]
        self.features = StageSequential(mods, taps)  # official name: keys are features.N.*

        self.num_features = c_in
        self.num_classes = num_classes
        head_rate = drop_rates.get(HEAD_DROP_KEY, 0.0) if drop_rate is None else drop_rate
        self.head = ClassifierHead(c_in, num_classes, pool=global_pool, drop_rate=head_rate)  # global MAX pool
        self._init_weights()

    @property
    def features(self) -> StageSequential:
        """The official ``features`` stack; ``model.features(x)`` returns the stage maps (Backbone)."""
        return self._modules["features"]  # shadows Backbone.features; nn.Module stores it in _modules

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each segment of ``features`` between two stage taps in the backward pass."""
        self.features.grad_checkpointing = self.grad_checkpointing = enable

    def _init_weights(self) -> None:
        # official: Xavier-uniform with the ReLU gain on conv weights; biases, BN, Linear keep defaults
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("relu"))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]  # (B, C_last, h, w), unpooled


# --- official checkpoints ----------------------------------------------------------------------
def official_layer_indices(model: SimpleNet, legacy: bool = False) -> list[int]:
    """``features`` indices of the conv and BN modules in official numbering, in order.

    ``legacy=True`` gives the numbering of checkpoints saved before the official refactor, which had
    a Dropout2d only after the pools (conv -> BN -> ReLU; pool -> dropout).
    """
    out, i, prev = [], 0, None
    for m in model.features:
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
            out.append(i)
        i += 1
        if legacy and isinstance(m, nn.Dropout2d) and not isinstance(prev, nn.MaxPool2d):
            i -= 1  # this placeholder did not exist in the legacy layout
        prev = m
    return out


def _read_checkpoint(checkpoint) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, Mapping):
        state = dict(checkpoint)
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise ConvzooError(f"checkpoint not found: {path}")
        if path.suffix == ".safetensors":
            from convzoo.weights import read_state

            state = read_state(path)
        else:
            try:  # weights_only: tensors and plain containers only, no pickled code runs
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001  (torch raises many types for unreadable files)
                raise ConvzooError(f"cannot read SimpleNet checkpoint {path}: {type(e).__name__}: "
                                   f"{str(e).splitlines()[0] if str(e) else ''}") from None
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):  # cifar/main.py checkpoints
        state = dict(state["state_dict"])
    return state


def remap_official_state_dict(state: Mapping[str, torch.Tensor], model: SimpleNet) -> dict[str, torch.Tensor]:
    """Official SimpleNet_Pytorch keys -> this model's keys.

    Strips DataParallel ``module.`` prefixes, renames ``classifier.*`` to ``head.fc.*`` and, when the
    checkpoint uses the pre-refactor numbering (issue #7), shifts ``features.N`` onto the current one.
    Raises ConvzooError when the layer numbering fits neither layout (e.g. extra-pool weights given to
    ``simplenet_cifar_5m``: use ``simplenet_cifar_5m_extra_pool``).
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {("head.fc." + k.removeprefix("classifier.") if k.startswith("classifier.") else k): v
             for k, v in state.items()}
    found = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.")})
    ours = official_layer_indices(model)
    if found == ours:
        mapping = dict(zip(ours, ours))
    elif found == official_layer_indices(model, legacy=True):
        mapping = dict(zip(found, ours))
    else:
        raise ConvzooError(f"checkpoint has {len(found)} conv/BN layers at features indices {found[:6]}..., "
                           f"which fits neither the current nor the legacy official numbering of this "
                           f"SimpleNet ({len(ours)} layers); check the variant (released CIFAR weights "
                           f"need simplenet_cifar_5m_extra_pool)")
    out = {}
    for k, v in state.items():
        if k.startswith("features."):
            _, idx, rest = k.split(".", 2)
            k = f"features.{mapping[int(idx)]}.{rest}"
        out[k] = v
    for k, v in model.state_dict().items():  # checkpoints older than PyTorch 0.4.1 lack this buffer
        if k.endswith("num_batches_tracked") and k not in out:
            out[k] = v.clone()
    return out


def load_official_state_dict(model: SimpleNet, checkpoint) -> SimpleNet:
    """Load an official SimpleNet_Pytorch checkpoint (path to .pth/.pth.tar/.safetensors, or a dict).

    Accepts DataParallel prefixes, ``{"state_dict": ...}`` wrappers (cifar/main.py) and both the
    current and the legacy ``features.N`` numbering; shape mismatches raise one readable line.
    """
    state = remap_official_state_dict(_read_checkpoint(checkpoint), model)
    own = model.state_dict()
    bad = [k for k in own if k in state and state[k].shape != own[k].shape]
    missing = [k for k in own if k not in state]
    if bad or missing:
        k = (bad or missing)[0]
        what = f"'{k}' has shape {tuple(state[k].shape)}, the model expects {tuple(own[k].shape)}" if bad \
            else f"'{k}' is missing"
        raise ConvzooError(f"SimpleNet checkpoint does not fit this model: {what}")
    model.load_state_dict(state, strict=True)
    return model


# --- registered variants -----------------------------------------------------------------------
_SRC = "paper 1608.06037 Sec. 3; layer tables of the official Coderx7/SimpleNet_Pytorch"
_PARAMS_SRC = ("sum of parameter numel (BN running stats excluded) of the official PyTorch model; "
               "fact sheet G1a, paper 32 §3 (measured with the official code); README {readme}")
_MACS_CLOSED = ("closed form (conv + linear multiply-adds of the official layer table, 1x1 convs unpadded), "
                "tests/models/test_simplenet.py::test_macs_closed_form")
_MACS_BENCH = ("; equals the official benchmark CSV infer_gmacs {csv} G (imagenet/training_scripts/imagenet_training/"
               "results/bench_infer_GTX1080_fp32_*.csv: fvcore, BN counted, 2 decimals; "
               "tests/models/test_simplenet.py::test_macs_match_official_benchmark)")


# the evaluation preprocessing of the released weights: ImageNet nets, the official default_cfgs
# (imagenet/training_scripts/.../timm/models/simplenet.py: bicubic, crop 0.875, ImageNet statistics); CIFAR nets,
# the official Cifar/main.py (CIFAR-10 mean / std of [125.3, 123.0, 113.9] / [63.0, 62.1, 66.7] / 255, CenterCrop(32))
CIFAR10_MEAN = tuple(x / 255 for x in (125.3, 123.0, 113.9))
CIFAR10_STD = tuple(x / 255 for x in (63.0, 62.1, 66.7))
_PREPROCESSING = {True: {"interpolation": "bicubic", "crop_pct": 0.875},
                  False: {"mean": CIFAR10_MEAN, "std": CIFAR10_STD, "crop_pct": 1.0}}
_PREPROCESSING_NOTE = {True: " Preprocessing: official default_cfgs (bicubic, crop 0.875, ImageNet statistics).",
                       False: " Preprocessing: official Cifar/main.py (CIFAR-10 statistics, no crop)."}


def _card(name: str, params: int, macs: int, *, imagenet: bool, readme: str = "-", csv_gmacs: str = "",
          num_classes: int | None = None, notes: str = "", recipes: tuple[str, ...] = ()) -> ModelCard:
    return ModelCard(
        name=name, paper=32, family="simplenet", task="classification", in_chans=3,
        num_classes=num_classes or (1000 if imagenet else 10),
        input_size=(224, 224) if imagenet else (32, 32), test_size=(32, 32),
        params=params, params_source=_PARAMS_SRC.format(readme=readme), macs=macs, macs_rtol=0.0,
        macs_source=_MACS_CLOSED + (_MACS_BENCH.format(csv=csv_gmacs) if csv_gmacs else ""),
        reference=None,  # not in timm / torchvision
        capabilities=frozenset({"compile", "onnx", "features"}),
        recipes=recipes, source=_SRC, notes=notes + _PREPROCESSING_NOTE[imagenet], **_PREPROCESSING[imagenet])


def _build(num_classes: int, in_chans: int, network: str, scale: float = 1.0, mode: int = 0,
           **kw) -> SimpleNet:
    kw.setdefault("network_idx", network)
    kw.setdefault("scale", scale)
    kw.setdefault("mode", mode)
    return SimpleNet(num_classes=num_classes, in_chans=in_chans, **kw)


@register_model(_card("simplenet", 5_498_378, 652_151_296, imagenet=False, readme="5.48M",
                      recipes=("simplenet_cifar10_paper",),
                      notes="the paper's 13-layer CIFAR network (= simplenet_cifar_5m); accepts every "
                            "SimpleNet option (network_idx, scale, mode, drop_rates, pad_1x1)"))
def simplenet(num_classes: int = 10, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "cifar_5m", **kw)


@register_model(_card("simplenet_cifar_310k", 312_362, 55_788_160, imagenet=False,
                      recipes=("simplenet_digits",),
                      notes="the paper's slim CIFAR/MNIST/SVHN network (310K); the project demo's model"))
def simplenet_cifar_310k(num_classes: int = 10, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "cifar_310k", **kw)


@register_model(_card("simplenet_cifar_460k", 385_790, 73_189_864, imagenet=False,
                      notes="named 460k officially; the official layer table gives 385,790 parameters"))
def simplenet_cifar_460k(num_classes: int = 10, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "cifar_460k", **kw)


@register_model(_card("simplenet_cifar_5m", 5_498_378, 652_151_296, imagenet=False, readme="5.48M",
                      notes="CIFAR-100 head: 5,521,508 parameters"))
def simplenet_cifar_5m(num_classes: int = 10, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "cifar_5m", **kw)


@register_model(_card("simplenet_cifar_5m_extra_pool", 5_498_378, 631_507_456, imagenet=False,
                      notes="early PyTorch port with a redundant max-pool after the "
                      "10th conv (issue #5); only for the released CIFAR weights (95.51% / 78.37%), which that "
                      "2018 code trained with unpadded 1x1 convs"))
def simplenet_cifar_5m_extra_pool(num_classes: int = 10, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "cifar_5m_extra_pool", **kw)


@register_model(_card("simplenetv1_small_m1_05", 1_506_792, 340_923_392, imagenet=True,
                      readme="1.51M, top-1 61.122", csv_gmacs="0.34"))
def simplenetv1_small_m1_05(num_classes: int = 1000, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "imagenet_5m", scale=0.5, mode=1, **kw)


@register_model(_card("simplenetv1_small_m2_05", 1_506_792, 427_627_520, imagenet=True,
                      readme="1.5M, top-1 61.67", csv_gmacs="0.43"))
def simplenetv1_small_m2_05(num_classes: int = 1000, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "imagenet_5m", scale=0.5, mode=2, **kw)


@register_model(_card("simplenetv1_small_m1_075", 3_287_272, 758_853_120, imagenet=True,
                      readme="3.29M, top-1 67.784", csv_gmacs="0.76"))
def simplenetv1_small_m1_075(num_classes: int = 1000, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "imagenet_5m", scale=0.75, mode=1, **kw)


@register_model(_card("simplenetv1_small_m2_075", 3_287_272, 953_937_408, imagenet=True,
                      readme="3M, top-1 68.506", csv_gmacs="0.96"))
def simplenetv1_small_m2_075(num_classes: int = 1000, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "imagenet_5m", scale=0.75, mode=2, **kw)


@register_model(_card("simplenetv1_5m_m1", 5_752_808, 1_341_761_536, imagenet=True,
                      readme="5.75M, top-1 71.548", csv_gmacs="1.35"))
def simplenetv1_5m_m1(num_classes: int = 1000, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "imagenet_5m", mode=1, **kw)


@register_model(_card("simplenetv1_5m_m2", 5_752_808, 1_688_578_048, imagenet=True,
                      readme="5.7M, top-1 72.03", csv_gmacs="1.69"))
def simplenetv1_5m_m2(num_classes: int = 1000, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "imagenet_5m", mode=2, **kw)


@register_model(_card("simplenetv1_9m_m1", 9_508_968, 2_774_249_984, imagenet=True,
                      readme="9.51M, top-1 73.792", csv_gmacs="2.78"))
def simplenetv1_9m_m1(num_classes: int = 1000, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "imagenet_9m", mode=1, **kw)


@register_model(_card("simplenetv1_9m_m2", 9_508_968, 3_554_587_136, imagenet=True,
                      readme="9.5M, top-1 74.23", csv_gmacs="3.56"))
def simplenetv1_9m_m2(num_classes: int = 1000, in_chans: int = 3, **kw) -> SimpleNet:
    return _build(num_classes, in_chans, "imagenet_9m", mode=2, **kw)
