"""Terminator: a slow-fast network of SFNE blocks built on the HyperZ.Z.W operator.

"HyperZ.Z.W Operator Connects Slow-Fast Networks for Full Context Interaction" (Harvie Zhang, arXiv
2401.17948; seed paper 34). The official repository (hyperevolnet/Terminator) was withdrawn; older versions
of some of its files survive (``cfg/config.yaml``, ``models/modules/{fast_multi_branch, sfne_block, hyperzzw,
slow_net, magnet, rgu, local_conv, hyper_interact, loss}.py``, ``models/kar.py``) and were read for facts. The
files that assembled the network (``models/terminator.py`` survives only as a placeholder), ``g_ibs.py`` and
``linear.py`` are missing.

Implemented (operator and slow nets: :mod:`convzoo.layers.hyperzzw`):

- :class:`SFNEBlock` (slow-fast neural encoding, no residual connection), as the stored
  ``fast_multi_branch.py`` + ``sfne_block.py``: from x (B, C, N, N), a global hyper-kernel W (1, C, N, N) of a
  slow net gives the context weight x * W; ten branches of C channels each: the global HyperZZW of x * W with
  (1) the RGU fast features, (2) the channel-mixed x and (3) the hyper-channel-interacted x, (4) SiGLU of (1),
  (5) hyper interaction of (1) with x, (6) the RGU fast features themselves, (7) the channel-mixed x, and four
  local HyperZZW branches with context-dependent kernels of sizes 3, 9, 5, 7; plus the channel-tiled outputs of
  the 1 or 2 blocks before the previous one; concatenated (the stored order), 1x1 bottleneck to the block width,
  G-IBS (12 groups), activation, Dropout2d, a scalar bias.
- :class:`Terminator`: the blocks at full resolution (no downsampling: the global kernels cover the whole map),
  then global average pooling, dropout and a linear classifier.
- Slow neural loss (:meth:`Terminator.slow_neural_loss`, stored ``loss.cal_slow_loss``): for every pair of
  blocks j < i, the mean squared difference between block i's global hyper-kernel and block j's tiled along
  channels to the same width. The training loss adds it and the stored L2 term through
  :meth:`Terminator.regularization_loss` (the supervised method's model hook); label smoothing 0.09 is the
  task's ``label_smoothing`` (the stored loss is torch's formula).
- Variant ``terminator_cifar10`` = the stored CIFAR-10 config: 5 blocks, widths 12/36/72/144/288 (input
  channels 3/12/36/72/144 times bottleneck factors 4/3/2/2/2), previous-block concatenations 0/0/1/1/2,
  Dropout2d 0/0.05/0.05/0.05/0.05, global slow nets of 64 hidden units with 3/2/2/2/2 layers on the 32x32 grid,
  local slow nets of 32 hidden units and 2 layers, hyper-channel slow nets 32, hyper-interaction 16 (channel)
  and 64 (spatial).

Reconstructed (not in the surviving files): the order in which the network feeds the previous outputs
(block i receives the outputs of blocks i-2 and i-3, i.e. the inputs of the two blocks before it, which the
config's channel ratios make integer), the block activation (GELU, the activation used everywhere else in the
files), the classifier head (average pool + linear), ``omega_0`` (1.0), G-IBS (per-sample group
standardisation by default; see :class:`~convzoo.layers.hyperzzw.GIBS`), and the exact L2 rule (see
``regularization_loss``). The 1-D sequence models of the paper (sMNIST, sCIFAR) are not built: the surviving
code is 2-D only (its README says so).

Departures and properties worth knowing:

- The input must be square (the global branch multiplies N x N maps); any N works: kernels are evaluated on the
  input's grid (at the configured 32 x 32 they are exactly the stored ones), ``img_size`` sets the grid of the
  learned per-position biases and of the slow loss.
- Local branches normalise over the batch (the stored LocalConv's BatchNorm without running statistics) and
  their kernels come from the batch-mean input, in training and evaluation alike: a sample's logits depend on
  the other samples of its batch, as in the official code.
- ``drop_path_rate`` must be 0 (no residual paths); ``drop_rate`` is dropout before the classifier.
- No published parameter or MAC count exists; the card's count is this reconstruction's own (a pin).

Recorded: ``convzoo train terminator_digits`` (2 blocks, widths 12/36, 102,867 parameters, Kar3, 15 epochs on
the real 8x8 digits) reaches 98.33 % test accuracy (97.78 % at the best-validation checkpoint); logistic
regression on the same pixels and split reaches 97.50 % (C chosen on the validation split).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import no_drop_path
from convzoo.layers.head import Backbone, ClassifierHead
from convzoo.layers.hyperzzw import (
    GIBS,
    RGU,
    HyperChannelInteract,
    HyperInteract,
    LocalConv,
    LocalSlowNet,
    SlowNet,
    hyperzzw_global,
    instance_std,
)
from convzoo.registry import ModelCard, register_model

__all__ = ["TERMINATOR_CFGS", "SFNEBlock", "Terminator", "TerminatorCfg", "tile_channels"]


def tile_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """x (B, c, ...) repeated along channels to ``channels`` (the stored ``repeat`` when c divides them)."""
    reps = -(-channels // x.shape[1])
    return x.repeat(1, reps, *(1,) * (x.dim() - 2))[:, :channels]


# --- the block ---------------------------------------------------------------------------------------

class SFNEBlock(nn.Module):
    """Slow-fast neural encoding block: (B, C, N, N) [+ earlier maps] -> (B, out_channels, N, N)."""

    def __init__(self, in_channels: int, out_channels: int, *, img_size: int = 32, num_pre: int = 0,
                 g_layers: int = 2, g_hidden: int = 64, l_hidden: int = 32, l_layers: int = 2,
                 local_sizes: Sequence[int] = (3, 9, 5, 7), gc_hidden: int = 32, hi_c_hidden: int = 16,
                 hi_s_hidden: int = 64, omega_0: float = 1.0, groups: int = 12, gibs_mode: str = "instance",
                 dropout: float = 0.0):
        super().__init__()
        c = in_channels
        self.in_channels, self.out_channels, self.num_pre = c, out_channels, num_pre
        # slow nets: the global hyper-kernel and four context-dependent local ones
        self.slow_net_g = SlowNet(2, c, img_size, g_hidden, g_layers, omega_0)
        self.slow_net_l = nn.ModuleList(LocalSlowNet(c, k, l_hidden, l_layers, omega_0) for k in local_sizes)
        self.local_conv = nn.ModuleList(LocalConv(c) for _ in local_sizes)
        self.local_bias = nn.Parameter(torch.zeros(len(local_sizes)))
        # fast net
        self.channel_mixer_mlp = nn.Conv2d(c, c, 1)
        nn.init.kaiming_normal_(self.channel_mixer_mlp.weight)
        nn.init.zeros_(self.channel_mixer_mlp.bias)
        self.rgu_fast, self.rgu_slow = RGU(c, img_size), RGU(c, img_size)
        self.channel_mixer_hci = HyperChannelInteract(c, gc_hidden, 2, omega_0)
        self.hyper_interact = HyperInteract(c, img_size, hi_c_hidden, hi_s_hidden, 2, omega_0)
        # fusion
        self.bottleneck = nn.Conv2d(c * (6 + len(local_sizes) + num_pre), out_channels, 1)
        nn.init.kaiming_normal_(self.bottleneck.weight)
        nn.init.zeros_(self.bottleneck.bias)
        self.gibs = GIBS(out_channels, groups, gibs_mode)
        self.drop = nn.Dropout2d(dropout)
        self.bias = nn.Parameter(torch.zeros(1))

    def global_kernel(self, size: int | None = None) -> torch.Tensor:
        """The global hyper-kernel (1, C, N, N) on the N x N grid (default: the configured one)."""
        return self.slow_net_g.kernel(None if size is None else (size, size))

    def forward(self, x: torch.Tensor, *pre: torch.Tensor) -> torch.Tensor:
        # x: (B, C, N, N); pre: the num_pre earlier maps (B, c_j, N, N), nearest first
        w = self.slow_net_g(x)  # (1, C, N, N), from coordinates only
        fast = instance_std(self.rgu_slow(x * w) + self.rgu_fast(x))  # RGU on the context weight and on x
        mixed = instance_std(self.channel_mixer_mlp(x))
        hci = instance_std(self.channel_mixer_hci(x))
        out = hyperzzw_global(x, w, fast)  # (x * w) @ fast per channel
        out_x = hyperzzw_global(x, w, mixed)
        out_hci = hyperzzw_global(x, w, hci)
        glu = torch.sigmoid(out) * out
        hyper = self.hyper_interact(out, x)
        # local HyperZZW: kernels from (x, hci, mixed, x), applied to (hci, x, x, mixed)
        sources, targets = (x, hci, mixed, x), (hci, x, x, mixed)
        local = [conv(slow(s), t) + b for slow, conv, s, t, b in
                 zip(self.slow_net_l, self.local_conv, sources, targets, self.local_bias)]
        tiled = [tile_channels(p, self.in_channels) for p in pre]
        branches = [out, local[1], *tiled[:1], fast, out_x, local[0], glu, local[2], out_hci, local[3],
                    *tiled[1:], hyper]  # the stored concatenation order
        y = self.bottleneck(torch.cat(branches, 1))  # (B, out_channels, N, N)
        return self.drop(F.gelu(self.gibs(y)) + self.bias)


# --- the network -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TerminatorCfg:
    """One Terminator configuration (block widths and slow-net sizes)."""

    widths: tuple[int, ...]
    num_pre: tuple[int, ...]
    dropout: tuple[float, ...]
    g_layers: tuple[int, ...]
    img_size: int = 32
    g_hidden: int = 64
    l_hidden: int = 32
    l_layers: int = 2
    local_sizes: tuple[int, ...] = (3, 9, 5, 7)
    gc_hidden: int = 32
    hi_c_hidden: int = 16
    hi_s_hidden: int = 64


TERMINATOR_CFGS = {
    # stored cfg/config.yaml (CIFAR-10): in_channel [3, 12, 36, 72, 144] x bottleneck_factors [4, 3, 2, 2, 2]
    "terminator_cifar10": TerminatorCfg(widths=(12, 36, 72, 144, 288), num_pre=(0, 0, 1, 1, 2),
                                        dropout=(0.0, 0.05, 0.05, 0.05, 0.05), g_layers=(3, 2, 2, 2, 2)),
}


class Terminator(Backbone):
    """SFNE blocks at full resolution -> global pool -> dropout -> linear."""

    def __init__(self, widths: Sequence[int], num_pre: Sequence[int], dropout: Sequence[float],
                 g_layers: Sequence[int], *, in_chans: int = 3, num_classes: int = 10, img_size: int = 32,
                 g_hidden: int = 64, l_hidden: int = 32, l_layers: int = 2, local_sizes: Sequence[int] = (3, 9, 5, 7),
                 gc_hidden: int = 32, hi_c_hidden: int = 16, hi_s_hidden: int = 64, omega_0: float = 1.0,
                 groups: int = 12, gibs_mode: str = "instance", global_pool: str = "avg", drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, slow_loss_weight: float = 1.0, weight_l2: float = 0.0):
        """widths: block output channels; num_pre[i]: earlier maps block i concatenates (0, 1 or 2, at most i);
        dropout[i]: Dropout2d rate of block i; g_layers[i]: hidden layers of block i's global slow net.
        slow_loss_weight, weight_l2: weights of the slow neural loss and the L2 term in ``regularization_loss``."""
        super().__init__()
        no_drop_path(drop_path_rate, "Terminator")
        n = len(widths)
        if not (len(num_pre) == len(dropout) == len(g_layers) == n):
            raise ConvzooError(f"Terminator needs one num_pre, dropout and g_layers entry per block ({n} widths)")
        if any(not 0 <= p <= min(i, 2) for i, p in enumerate(num_pre)):
            raise ConvzooError(f"num_pre[i] must be 0, 1 or 2 and at most i (the earlier maps block i can take); "
                               f"got {list(num_pre)}")
        self.num_classes, self.num_features, self.img_size = num_classes, widths[-1], img_size
        self.slow_loss_weight, self.weight_l2 = slow_loss_weight, weight_l2
        chans = (in_chans, *widths)
        self.blocks = nn.ModuleList(
            SFNEBlock(chans[i], widths[i], img_size=img_size, num_pre=num_pre[i], g_layers=g_layers[i],
                      g_hidden=g_hidden, l_hidden=l_hidden, l_layers=l_layers, local_sizes=local_sizes,
                      gc_hidden=gc_hidden, hi_c_hidden=hi_c_hidden, hi_s_hidden=hi_s_hidden, omega_0=omega_0,
                      groups=groups, gibs_mode=gibs_mode, dropout=dropout[i])
            for i in range(n))
        self.feature_info = [{"num_chs": w, "reduction": 1, "module": f"blocks.{i}"} for i, w in enumerate(widths)]
        self.head = ClassifierHead(widths[-1], num_classes, global_pool, drop_rate)

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """Each block's output (B, width_i, N, N); block i also takes the maps two and three back."""
        if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
            raise ConvzooError(f"Terminator takes square images (B, C, N, N): its global HyperZZW multiplies NxN "
                               f"maps; got shape {tuple(x.shape)}")
        maps = [x]  # maps[i] is block i's input
        for block in self.blocks[:stop]:
            pre = maps[-2:-2 - block.num_pre:-1]  # the inputs of the previous blocks, nearest first
            maps.append(block(maps[-1], *pre))
        return maps[1:]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]  # (B, num_features, N, N)

    def slow_neural_loss(self) -> torch.Tensor:
        """Sum over block pairs j < i of mean((tile(W_j) - W_i)^2), W the global hyper-kernels on the configured
        grid (stored ``cal_slow_loss``); depends on the slow nets' parameters only."""
        kernels = [b.global_kernel() for b in self.blocks]
        loss = kernels[0].new_zeros(())
        for i in range(1, len(kernels)):
            for j in range(i):
                loss = loss + (tile_channels(kernels[j], kernels[i].shape[1]) - kernels[i]).pow(2).mean()
        return loss

    def bias_device_zero(self) -> torch.Tensor:
        return self.blocks[0].bias.new_zeros(())

    def weight_penalty(self) -> torch.Tensor:
        """The stored L2 term's rule: the 2-norms of the fast-net parameters named ``fast*`` (RGU) plus 1e-6 x
        those of the slow nets' weights."""
        total = self.bias_device_zero()
        for name, p in self.named_parameters():
            if ".slow_net" in name:
                total = total + (1e-6 * p.norm(2) if name.endswith("weight") else 0.0)
            elif ".fast_" in name:
                total = total + p.norm(2)
        return total

    def regularization_loss(self, epoch: int) -> torch.Tensor | None:
        """Added to the task loss in training: slow_loss_weight x slow neural loss + weight_l2 x weight_penalty."""
        if not self.slow_loss_weight and not self.weight_l2:
            return None
        loss = self.slow_loss_weight * self.slow_neural_loss()
        return loss + self.weight_l2 * self.weight_penalty() if self.weight_l2 else loss


# --- variants ----------------------------------------------------------------------------------------

_PARAMS = {"terminator_cifar10": 1_336_855}  # this reconstruction's own count (no published one): a pin


def _card(name: str) -> ModelCard:
    return ModelCard(
        name=name, paper=34, family="terminator", task="classification", num_classes=10, input_size=(32, 32),
        test_size=(8, 8), params=_PARAMS[name],
        params_source=("sum of numel of this reconstruction, 10 classes (a pin: the paper gives no count and "
                       "the official code was withdrawn; the stored files do not define the whole network)"),
        reference=None, capabilities=frozenset({"features", "channels_last"}),
        recipes=("terminator_cifar10_paper", "terminator_digits"),
        mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), crop_pct=1.0,
        source=("arXiv 2401.17948 (HyperZZW, slow-fast networks, SFNE) and the surviving files of the withdrawn "
                "hyperevolnet/Terminator: cfg/config.yaml (5 blocks, widths, slow-net sizes), "
                "models/modules/{fast_multi_branch,sfne_block,hyperzzw,slow_net,magnet,rgu,local_conv,"
                "hyper_interact,loss}.py"),
        notes=("RECONSTRUCTED where the files are missing: network assembly (earlier-map feeding), block "
               "activation GELU, avg-pool + linear head, omega_0 = 1, G-IBS as per-sample group standardisation. "
               "Square inputs only; local branches use batch statistics in eval too (as the stored code). "
               "No published count, MACs or weights."),
    )


@register_model(_card("terminator_cifar10"))
def terminator_cifar10(**kwargs) -> Terminator:
    cfg = TERMINATOR_CFGS["terminator_cifar10"]
    return Terminator(**{**cfg.__dict__, **kwargs})
