"""ConvNeXt and ConvNeXt-dcls: ConvNeXt whose depth-wise convolutions have learnable spacings.

Seed paper 39: Khalfaoui-Hassani, Pellegrini, Masquelier, "Dilated convolution with learnable
spacings", ICLR 2023, arXiv 2112.03740, Sec. 4-5 (ConvNeXt-T/S/B-dcls, ImageNet-1K). Baseline:
Liu et al., "A ConvNet for the 2020s", CVPR 2022, arXiv 2201.03545 (ConvNeXt-T/S/B). Official code:
K-H-Ismail/ConvNeXt-dcls (``models/convnext_dcls.py``, ``engine.py``, ``utils.py``,
``optim_factory.py``); reference for the baseline: timm's ``convnext.py``.

Implemented here:
- ConvNeXt (Liu et al. Sec. 2, Fig. 4): 4x4/4 patchify stem conv + LayerNorm; four stages at strides
  4/8/16/32 (stages 2-4 open with LayerNorm + 2x2/2 conv); each block is 7x7 depth-wise conv ->
  LayerNorm -> Linear(C, 4C) -> GELU -> Linear(4C, C) -> layer scale (gamma, init 1e-6) ->
  stochastic depth -> + input; head: global average pool -> LayerNorm -> linear. T/S/B.
- ConvNeXt-dcls (DCLS paper Sec. 5.1): every 7x7 depth-wise conv replaced by a depth-wise
  :class:`~convzoo.layers.dcls.Dcls2d` with a 17x17 window (padding 8) and Kc = 34 (T) or 40 (S, B)
  elements, bilinear construction ("v0"). ONE position tensor P (2, C, 1, Kc) per stage is shared by
  all blocks of the stage (weights and biases stay per block): that sharing is what keeps the model
  iso-parameter with ConvNeXt (28,587,688 vs 28,589,128 for T). ``dcls_shared_positions=False`` gives
  per-block positions (an ablation: + 2 C Kc per block).
- The DCLS training method (official engine.py/utils.py): ``clamp_parameters()`` after every optimizer
  step (exposed as the stages' ``post_optimizer_step`` engine hook) and ``regularization_loss(epoch)``
  = ``repulsion_weight * repulsion_loss(P of every stage) ** 2`` from epoch ``repulsion_start_epoch``
  on (official: ``loss + loss_rep ** 2 if epoch > 20``, epochs counted from 0, so 21; weight 1), None
  before. Positions train with lr x5 and no weight decay: the recipe's ``optimizer.param_groups``
  (glob ``"*.P"``) or :func:`~convzoo.layers.dcls.dcls_param_groups`.

State-dict keys are timm's ConvNeXt keys (``stem.0/1``, ``stages.S.downsample.0/1``,
``stages.S.blocks.B.conv_dw/norm/mlp.fc1/mlp.fc2/gamma``, ``head.norm``, ``head.fc``), so timm ConvNeXt
weights load directly; the shared positions are ``stages.S.P``. :func:`remap_state_dict` converts the
official ConvNeXt (facebookresearch) and ConvNeXt-dcls checkpoints (``downsample_layers``,
``stages.S.B.dwconv/pwconv1/pwconv2``, ``norm``, ``head``, and the shared P, which those files store
once per block) to these keys. Positions follow the package's "v0" axis convention (P[0] = row), so
the released ConvNeXt-dcls weights need no transposition.

Departures: LayerNorm on (B, C, H, W) is computed as timm does (permute + ``F.layer_norm``) rather than
the official manual mean/variance (equal up to float rounding); the package's implicit-GEMM CUDA
depth-wise kernel is not used; the input size is free (the positions do not depend on it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

from convzoo.errors import ConvzooError
from convzoo.layers.dcls import Dcls2d, SharedPositions, position_parameters, repulsion_loss
from convzoo.layers.drop_path import check_drop_rate
from convzoo.layers.head import SelectAdaptivePool, StagedBackbone, apply_fc, check_pool, make_fc
from convzoo.registry import ModelCard, register_model

__all__ = ["CONVNEXT_CFGS", "ConvNeXt", "ConvNeXtBlock", "ConvNeXtStage", "LayerNorm2d", "remap_state_dict"]


# --- layers ---------------------------------------------------------------------------------------

class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (timm's LayerNorm2d; eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Mlp(nn.Module):
    """Inverted bottleneck as two linear layers on channels-last maps: C -> 4C -> GELU -> C."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


# --- blocks (Liu et al. Fig. 4; DCLS Sec. 5.1) --------------------------------------------------------

class ConvNeXtBlock(nn.Module):
    """DW conv (7x7, or DCLS 17x17 / Kc) -> LN -> Linear 4C -> GELU -> Linear C -> gamma -> drop path -> + x.

    ``dcls`` is None (plain ConvNeXt) or a dict ``kernel_count``, ``dilated_kernel_size``, ``version``,
    ``shared`` (positions passed in by the stage).
    """

    def __init__(self, dim: int, drop_path: float = 0.0, ls_init_value: float | None = 1e-6,
                 kernel_size: int = 7, dcls: dict | None = None):
        super().__init__()
        if dcls is None:
            self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        else:
            size = dcls["dilated_kernel_size"]
            self.conv_dw = Dcls2d(dim, dim, dcls["kernel_count"], dilated_kernel_size=size, padding=size // 2,
                                  groups=dim, version=dcls["version"], own_positions=not dcls["shared"])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(ls_init_value))) if ls_init_value else None
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, P: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, C, H, W) -> (B, C, H, W)
        shortcut = x
        x = self.conv_dw(x) if P is None else self.conv_dw(x, P)  # depth-wise spatial mixing
        x = self.mlp(self.norm(x.permute(0, 2, 3, 1)))  # (B, H, W, C): channel mixing
        if self.gamma is not None:
            x = x * self.gamma
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))


class ConvNeXtStage(SharedPositions, nn.Module):
    """[LN + 2x2/2 conv] -> ``depth`` blocks; with shared DCLS positions, the stage owns ``P``."""

    def __init__(self, in_dim: int, dim: int, depth: int, downsample: bool, drop_paths: Sequence[float],
                 ls_init_value: float | None, kernel_size: int, dcls: dict | None):
        super().__init__()
        self.downsample = nn.Sequential(LayerNorm2d(in_dim), nn.Conv2d(in_dim, dim, 2, stride=2)) \
            if downsample else nn.Identity()
        shared = dcls is not None and dcls["shared"]
        # one (2, C, 1, Kc) position tensor for every depth-wise DCLS conv of the stage
        self.init_shared_positions((2, dim, 1, dcls["kernel_count"]) if shared else None,
                                   (dcls["dilated_kernel_size"],) * 2 if shared else None)
        self.blocks = nn.Sequential(*[ConvNeXtBlock(dim, drop_paths[j], ls_init_value, kernel_size, dcls)
                                      for j in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, in_dim, H, W) -> (B, dim, H/2, W/2) with downsampling, else same size
        x = self.downsample(x)
        for block in self.blocks:
            x = block(x, self.P)
        return x


def check_norm_pool(pool: str | None) -> str:
    """timm's ``global_pool`` values a pool -> LayerNorm(C) head takes: all but "catavgmax", whose doubled
    width the norm cannot take (timm's NormMlpClassifierHead refuses it too)."""
    pool = check_pool(pool)
    if pool == "catavgmax":
        raise ConvzooError("global_pool 'catavgmax' doubles the pooled width, which a LayerNorm head cannot take "
                           "(as in timm); use 'avg', 'max', 'avgmax' or ''")
    return pool


def norm_channels(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A norm over C of a pooled (B, C) tensor, or at every position of an unpooled (B, C, *spatial) map."""
    return norm(x) if x.dim() == 2 else norm(x.movedim(1, -1)).movedim(-1, 1)


class NormHead(nn.Module):
    """Global pool (avg) -> LayerNorm -> dropout -> linear (timm's NormMlpClassifierHead keys). With
    ``pool=""`` the norm and the linear act at every position (timm's unpooled head)."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0, pool: str = "avg"):
        super().__init__()
        self.in_features = in_features
        self.global_pool = SelectAdaptivePool(check_norm_pool(pool))
        self.norm = nn.LayerNorm(in_features, eps=1e-6)
        self.drop = nn.Dropout(drop_rate)
        self.fc = make_fc(in_features, num_classes)

    def reset(self, num_classes: int, pool: str | None = None) -> None:
        if pool is not None:
            self.global_pool = SelectAdaptivePool(check_norm_pool(pool))
        self.fc = make_fc(self.in_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = norm_channels(self.norm, self.global_pool(x))  # (B, C, H, W) -> (B, C)
        return x if pre_logits else apply_fc(self.fc, self.drop(x))


# --- the network --------------------------------------------------------------------------------------

class ConvNeXt(StagedBackbone):
    """ConvNeXt (``dcls_kernel_count=None``) or ConvNeXt-dcls.

    Args:
        depths, dims: blocks and widths of the four stages.
        kernel_size: depth-wise kernel of plain ConvNeXt (7).
        dcls_kernel_count: Kc of the DCLS depth-wise convs (34 T, 40 S/B); None = plain convs.
        dcls_kernel_size: DCLS window S (17, padding S // 2).
        dcls_version: "bilinear" (= "v0", the paper), "v1", "max" or "gauss".
        dcls_shared_positions: one P per stage (the paper) or per block.
        repulsion_weight, repulsion_start_epoch: ``regularization_loss`` = weight * rep ** 2 from that
            (0-based) epoch on (official: 1.0, 21); weight 0 disables it.
        patch_size: stem patchify size (4).
        ls_init_value: layer-scale init (1e-6); None/0 = no layer scale.
        head_init_scale: multiplies the classifier's initial weights and bias (1.0).
        drop_path_rate: stochastic depth, linear in depth from 0 to this value (0.1 T, 0.4 S, 0.5 B).
        drop_rate: dropout before the classifier.
        num_classes: 0 gives the pooled, normalised embedding; in_chans: input channels.
        global_pool: timm's pool before the head's LayerNorm ("avg"; "max", "avgmax", "" as well).
    """

    def __init__(self, depths: Sequence[int] = (3, 3, 9, 3), dims: Sequence[int] = (96, 192, 384, 768),
                 kernel_size: int = 7, dcls_kernel_count: int | None = None, dcls_kernel_size: int = 17,
                 dcls_version: str = "bilinear", dcls_shared_positions: bool = True,
                 repulsion_weight: float = 1.0, repulsion_start_epoch: int = 21, patch_size: int = 4,
                 ls_init_value: float | None = 1e-6, head_init_scale: float = 1.0, drop_path_rate: float = 0.0,
                 drop_rate: float = 0.0, num_classes: int = 1000, in_chans: int = 3, global_pool: str = "avg"):
        super().__init__()
        if len(depths) != 4 or len(dims) != 4:
            raise ConvzooError(f"ConvNeXt needs 4 depths and 4 dims, got {tuple(depths)} and {tuple(dims)}")
        if dcls_kernel_count is not None and (dcls_kernel_count < 1 or dcls_kernel_size < 1):
            raise ConvzooError(f"DCLS needs kernel_count >= 1 and dilated_kernel_size >= 1, "
                               f"got {dcls_kernel_count} and {dcls_kernel_size}")
        check_drop_rate(drop_path_rate)
        check_drop_rate(drop_rate, "drop_rate")
        dcls = None if dcls_kernel_count is None else {
            "kernel_count": dcls_kernel_count, "dilated_kernel_size": dcls_kernel_size,
            "version": dcls_version, "shared": dcls_shared_positions}
        self.num_classes, self.drop_rate = num_classes, drop_rate
        self.repulsion_weight, self.repulsion_start_epoch = float(repulsion_weight), int(repulsion_start_epoch)
        # stem: (B, in_chans, H, W) -> (B, dims[0], H/p, W/p)
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], patch_size, stride=patch_size), LayerNorm2d(dims[0]))
        total = sum(depths)  # linear stochastic-depth rule, as torch.linspace(0, rate, total) (plain floats: meta-safe)
        rates = [drop_path_rate * j / (total - 1) if total > 1 else 0.0 for j in range(total)]
        stages, cin, cur, self.feature_info = [], dims[0], 0, []
        for i in range(4):
            stages.append(ConvNeXtStage(cin, dims[i], depths[i], i > 0, rates[cur:cur + depths[i]], ls_init_value,
                                        kernel_size, dcls))
            cin, cur = dims[i], cur + depths[i]
            self.feature_info.append({"num_chs": cin, "reduction": patch_size * 2 ** i, "module": f"stages.{i}"})
        self.stages = nn.Sequential(*stages)
        self.num_features = cin
        self.head = NormHead(cin, num_classes, drop_rate, global_pool)
        self._init_weights(head_init_scale)

    @torch.no_grad()
    def _init_weights(self, head_init_scale: float) -> None:
        # official/timm: trunc-normal(0.02) for conv, linear and DCLS weights, zero biases; scaled head
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, Dcls2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if isinstance(self.head.fc, nn.Linear):
            self.head.fc.weight.mul_(head_init_scale)
            self.head.fc.bias.mul_(head_init_scale)

    # --- the DCLS training method ---

    @torch.no_grad()
    def clamp_parameters(self) -> None:
        """Clamp every position tensor into its window (official name; the engine uses the hooks)."""
        for m in self.modules():
            if m is not self and hasattr(m, "post_optimizer_step"):
                m.post_optimizer_step()

    def regularization_loss(self, epoch: int) -> torch.Tensor | None:
        """Engine hook: ``repulsion_weight * repulsion_loss(P) ** 2`` from ``repulsion_start_epoch``, else None."""
        if self.repulsion_weight == 0 or epoch < self.repulsion_start_epoch:
            return None
        positions = position_parameters(self)
        if not positions:
            return None
        return self.repulsion_weight * repulsion_loss(positions) ** 2


# --- official checkpoints -------------------------------------------------------------------------------

def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official ConvNeXt / ConvNeXt-dcls checkpoint to this file's (timm) keys.

    Accepts the file's dict or its ``"model"``/``"model_ema"`` entry; drops a ``module.`` prefix;
    ``downsample_layers.0.{0,1}`` -> ``stem.{0,1}``, ``downsample_layers.S.{0,1}`` ->
    ``stages.S.downsample.{0,1}``, ``stages.S.B.dwconv`` -> ``stages.S.blocks.B.conv_dw``, ``pwconv1/2``
    -> ``mlp.fc1/2``, ``norm`` -> ``head.norm``, ``head`` -> ``head.fc``. The shared ``dwconv.P`` that
    the official files repeat in every block becomes one ``stages.S.P`` (the copies must agree).
    timm keys pass unchanged.
    """
    for outer in ("model_ema", "model"):
        if outer in state and isinstance(state[outer], dict):
            state = state[outer]
            break
    out: dict[str, torch.Tensor] = {}
    for key, v in state.items():
        k = key.removeprefix("module.")
        k = re.sub(r"^downsample_layers\.0\.", "stem.", k)
        k = re.sub(r"^downsample_layers\.(\d+)\.", r"stages.\1.downsample.", k)
        m = re.match(r"^stages\.(\d+)\.(\d+)\.dwconv\.P$", k)
        if m:
            k = f"stages.{m[1]}.P"
            if k in out:
                if out[k] is not v and not torch.equal(out[k], v):
                    raise ConvzooError(f"checkpoint key '{key}' differs from block 0: positions are not shared")
                continue
        k = re.sub(r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2.", k)
        k = k.replace(".dwconv.", ".conv_dw.").replace(".pwconv1.", ".mlp.fc1.").replace(".pwconv2.", ".mlp.fc2.")
        k = re.sub(r"^norm\.", "head.norm.", k)
        k = re.sub(r"^head\.(weight|bias)$", r"head.fc.\1", k)
        out[k] = v
    return out


# --- variants (Liu et al. Table 9 / DCLS Table 2 and README; counts: fact sheet G1a "Paper 39") ---------

CONVNEXT_CFGS: dict[str, dict] = {
    "convnext_tiny": {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768)},
    "convnext_small": {"depths": (3, 3, 27, 3), "dims": (96, 192, 384, 768)},
    "convnext_base": {"depths": (3, 3, 27, 3), "dims": (128, 256, 512, 1024)},
    "convnext_dcls_tiny": {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768), "dcls_kernel_count": 34},
    "convnext_dcls_small": {"depths": (3, 3, 27, 3), "dims": (96, 192, 384, 768), "dcls_kernel_count": 40},
    "convnext_dcls_base": {"depths": (3, 3, 27, 3), "dims": (128, 256, 512, 1024), "dcls_kernel_count": 40},
}

# name: (params @1000 classes, MACs @224, README top-1). MACs: FlopCounterMode on timm's ConvNeXt, and for
# -dcls that + (17^2 - 7^2) C H W per block (the sheet's 4.456 / 4.970, 8.684 / 9.524, 15.355 / 16.475 G)
_REPORTED = {
    "convnext_tiny": (28_589_128, 4_455_531_264, "82.1"),
    "convnext_small": (50_223_688, 8_683_712_256, "83.1"),
    "convnext_base": (88_591_464, 15_354_729_472, "83.8"),
    "convnext_dcls_tiny": (28_587_688, 4_970_337_024, "82.5"),
    "convnext_dcls_small": (50_217_064, 9_523_658_496, "83.7"),
    "convnext_dcls_base": (88_582_632, 16_474_657_792, "84.1"),
}


def _card(name: str) -> ModelCard:
    params, macs, top1 = _REPORTED[name]
    dcls = "dcls" in name
    return ModelCard(
        name=name, paper=39, family="convnext_dcls", task="classification", input_size=(224, 224),
        test_size=(32, 32), params=params,
        params_source=("fact sheet G1a Paper 39 Sec. 3: official ConvNeXt-dcls built with dcls 0.1.1, sum of numel, "
                       "1000 classes; positions shared per stage (README: ~28M / 50M / 89M)") if dcls else
                      "timm 1.0.31 convnext_* (fact sheet G1a Paper 39 Sec. 3), sum of numel, 1000 classes",
        macs=macs, macs_rtol=0.0,
        macs_source=("closed form, tests/models/test_dcls.py::test_macs_closed_form_from_timm: timm ConvNeXt MACs + "
                     "(17^2 - 7^2) C H W per block (the constructed 17x17 kernels are counted, their construction is "
                     "elementwise); = the official model measured in fact sheet G1a Paper 39 Sec. 3 to its 3 decimals "
                     "(README 5.0 / 9.5 / 16.5 GFLOPs are these MACs)")
        if dcls else ("FlopCounterMode @224 on timm 1.0.31's model, exact (tests/models/test_dcls.py::"
                      "test_macs_closed_form_from_timm; fact sheet G1a Paper 39 Sec. 3 to 3 decimals)"),
        reference=None if dcls else f"timm:{name}",
        # torch.compile: the contract compiles the smallest variant of each architecture (the tiny ones)
        capabilities=frozenset({"features", "onnx", "channels_last", "compile", "bf16"}),
        recipes=("convnext_dcls_digits", "convnext_dcls_tiny_imagenet_paper") if dcls else (),
        source=("DCLS paper Sec. 5.1 and official ConvNeXt-dcls models/convnext_dcls.py (S=17, Kc 34/40, v0, "
                "P shared per stage)") if dcls else "Liu et al. 2022 Sec. 2 / Table 9; timm convnext.py",
        notes=f"ImageNet-1K top-1 {top1} % (README){'; ConvNeXt baseline of paper 39' if not dcls else ''}",
        # eval transform of the ImageNet-1K weights: official ConvNeXt-dcls datasets.py build_transform (bicubic
        # Resize(224 / crop_pct), crop_pct default 224 / 256, CenterCrop, ImageNet mean/std) = timm's
        # pretrained_cfg of convnext_*.fb_in1k (timm's untagged default is the in12k fine-tune, crop 0.95)
        interpolation="bicubic", crop_pct=224 / 256,
    )


def _convnext(name: str, **kwargs) -> ConvNeXt:
    return ConvNeXt(**{**CONVNEXT_CFGS[name], **kwargs})


@register_model(_card("convnext_tiny"))
def convnext_tiny(**kwargs) -> ConvNeXt:
    return _convnext("convnext_tiny", **kwargs)


@register_model(_card("convnext_small"))
def convnext_small(**kwargs) -> ConvNeXt:
    return _convnext("convnext_small", **kwargs)


@register_model(_card("convnext_base"))
def convnext_base(**kwargs) -> ConvNeXt:
    return _convnext("convnext_base", **kwargs)


@register_model(_card("convnext_dcls_tiny"))
def convnext_dcls_tiny(**kwargs) -> ConvNeXt:
    return _convnext("convnext_dcls_tiny", **kwargs)


@register_model(_card("convnext_dcls_small"))
def convnext_dcls_small(**kwargs) -> ConvNeXt:
    return _convnext("convnext_dcls_small", **kwargs)


@register_model(_card("convnext_dcls_base"))
def convnext_dcls_base(**kwargs) -> ConvNeXt:
    return _convnext("convnext_dcls_base", **kwargs)
