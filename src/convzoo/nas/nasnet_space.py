"""The NASNet search space: cells of B blocks over 13 operations, as data, and a cell built from any genotype.

"Learning Transferable Architectures for Scalable Image Recognition" (Zoph, Vasudevan, Shlens, Le, CVPR 2018;
arXiv 1707.07012; seed paper 14), Sec. 3 and Fig. 3-4; official code: tensorflow/models
``research/slim/nets/nasnet/nasnet_utils.py`` (``NasNetABaseCell``, ``factorized_reduction``, ``drop_path``).

A cell takes two hidden states, h_i (the previous cell's output) and h_{i-1} (the one before), and has B = 5
blocks. Block j picks two inputs among the cell's states (0 = h_i after the cell's ReLU-1x1-BN, 1 = h_{i-1}
after its own reduction, 2 + k = output of block k < j), applies one of :data:`OPS` to each and combines the
two results by element-wise addition or channel concatenation. The states listed in ``concat`` are
concatenated into the cell output (the paper: "all unused hidden states"; the official NASNet-A normal cell
also concatenates h_{i-1}, so the list is explicit here, as in the official ``used_hiddenstates``). A
reduction cell applies stride 2 to every operation that reads an input state (0 or 1).

What is here:

- :data:`OPS`: the 13 operations of Sec. 3 (identity, 1x3-3x1 and 1x7-7x1 convolutions, 3x3 dilated
  convolution, 3x3 average pooling, 3x3 / 5x5 / 7x7 max pooling, 1x1 and 3x3 convolutions, 3x3 / 5x5 / 7x7
  depthwise-separable convolutions).
- :class:`Block`, :class:`CellGenotype`, :class:`Genotype`: the encoding, with :meth:`Genotype.validate`
  (one-line :class:`~convzoo.errors.ConvzooError`), :meth:`Genotype.to_dict` / :meth:`Genotype.from_dict`
  (JSON), :meth:`Genotype.encode` / :meth:`Genotype.decode` (the controller's 2 x 5B integer decisions),
  and :func:`random_genotype` (uniform over the space, the paper's random-search baseline).
- :data:`NASNET_A`: the NASNet-A normal and reduction cells (official ``NasNetANormalCell`` /
  ``NasNetAReductionCell``).
- :class:`NASNetCell`: a cell built from any :class:`CellGenotype`, with the official operation rules
  (``_apply_conv_operation``): separable convolutions are (ReLU, separable conv, BN) twice with the stride in
  the first; identity with a stride or a channel change becomes ReLU-1x1 conv-BN; pooling with a channel
  change is followed by 1x1 conv-BN; every operation but identity passes through :class:`ScheduledDropPath`.
  Padding is TensorFlow's "SAME" (asymmetric at stride 2), as the official weights need.
- :class:`ScheduledDropPath`: per-sample drop of an operation's output, keep probability
  ``1 - progress * (l + 1) / L * (1 - keep_prob)`` (cell l of L, ``progress`` = training step / total steps,
  official ``drop_connect_version='v3'``).

State-dict keys follow timm's ``nasnetalarge`` (``conv_1x1.conv``, ``conv_prev_1x1``, ``path_1.conv``,
``final_path_bn``, ``comb_iter_{j}_{left|right}.separable_1.depthwise_conv2d``, ``bn_sep_1`` ...), so timm's
and the ported official weights load key for key.

Departure (kept for parity with timm's port of the official weights): a stride-2 average pooling counts the
zeros of its "SAME" padding in the mean (TensorFlow excludes them); stride-1 pooling excludes them as
TensorFlow does. Concatenation as a combiner (in the space, not in NASNet-A, and not implemented by the
official code) gives a block of 2F channels; later operations map it back to F.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError

__all__ = [
    "COMBINERS",
    "NASNET_A",
    "NUM_BLOCKS",
    "OPS",
    "Block",
    "CellGenotype",
    "Genotype",
    "NASNetCell",
    "ScheduledDropPath",
    "make_op",
    "random_genotype",
]

NUM_BLOCKS = 5  # B in the paper
# Sec. 3: the operations the controller chooses from, in the paper's order
OPS = (
    "identity", "conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3", "max_pool_5x5",
    "max_pool_7x7", "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
)
COMBINERS = ("add", "concat")
BN_EPS = 1e-3  # official slim batch_norm epsilon (timm: eps=0.001, momentum=0.1)


# --- the encoding ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Block:
    """One block: ``ops[k]`` applied to state ``inputs[k]`` (k = 0, 1: the official left / right), combined."""

    inputs: tuple[int, int]
    ops: tuple[str, str]
    combine: str = "add"


@dataclass(frozen=True)
class CellGenotype:
    """B blocks and the states concatenated into the output (0 = h_i, 1 = h_{i-1}, 2 + j = block j)."""

    blocks: tuple[Block, ...]
    concat: tuple[int, ...]

    def validate(self, what: str = "cell") -> CellGenotype:
        if not self.blocks:
            raise ConvzooError(f"{what} has no blocks; a NASNet cell needs at least one")
        for j, b in enumerate(self.blocks):
            if len(b.inputs) != 2 or len(b.ops) != 2:
                raise ConvzooError(f"{what} block {j} needs 2 inputs and 2 ops, got {b.inputs!r} and {b.ops!r}")
            for i in b.inputs:
                if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < 2 + j:
                    raise ConvzooError(f"{what} block {j} reads state {i!r}; it can read states 0..{1 + j} "
                                       "(0 = h_i, 1 = h_i-1, 2+k = block k < {j})".replace("{j}", str(j)))
            for op in b.ops:
                if op not in OPS:
                    raise ConvzooError(f"{what} block {j}: unknown op {op!r}; ops are {', '.join(OPS)}")
            if b.combine not in COMBINERS:
                raise ConvzooError(f"{what} block {j}: combine must be 'add' or 'concat', got {b.combine!r}")
        n = 2 + len(self.blocks)
        if not self.concat or len(set(self.concat)) != len(self.concat) or \
                any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n for i in self.concat):
            raise ConvzooError(f"{what} concat {list(self.concat)!r} must list distinct states in 0..{n - 1}")
        return self


def unused_states(blocks) -> tuple[int, ...]:
    """The block outputs no later block reads (the paper's default cell output)."""
    used = {i for b in blocks for i in b.inputs}
    return tuple(2 + j for j in range(len(blocks)) if 2 + j not in used)


@dataclass(frozen=True)
class Genotype:
    """A NASNet architecture: the normal cell and the reduction cell."""

    normal: CellGenotype
    reduction: CellGenotype
    name: str = field(default="", compare=False)

    def validate(self) -> Genotype:
        self.normal.validate("normal cell")
        self.reduction.validate("reduction cell")
        return self

    def to_dict(self) -> dict:
        """Plain lists and strings (JSON / YAML)."""
        cell = lambda c: {"blocks": [{"inputs": list(b.inputs), "ops": list(b.ops), "combine": b.combine}
                                     for b in c.blocks], "concat": list(c.concat)}
        return {"normal": cell(self.normal), "reduction": cell(self.reduction)}

    @classmethod
    def from_dict(cls, d: dict, name: str = "") -> Genotype:
        def cell(c, what):
            try:
                blocks = tuple(Block(tuple(b["inputs"]), tuple(b["ops"]), b.get("combine", "add"))
                               for b in c["blocks"])
                concat = tuple(c["concat"]) if c.get("concat") is not None else unused_states(blocks)
            except (KeyError, TypeError) as e:
                raise ConvzooError(f"{what} genotype needs 'blocks' of {{inputs, ops, combine}} and 'concat' "
                                   f"({type(e).__name__}: {e})") from None
            return CellGenotype(blocks, concat)

        if not isinstance(d, dict) or not {"normal", "reduction"} <= set(d):
            raise ConvzooError("a genotype needs 'normal' and 'reduction' cells")
        return cls(cell(d["normal"], "normal cell"), cell(d["reduction"], "reduction cell"), name).validate()

    def encode(self) -> list[int]:
        """The controller's decisions: per block (input 0, input 1, op 0, op 1, combiner), normal cell first."""
        out = []
        for c in (self.normal, self.reduction):
            for b in c.blocks:
                out += [b.inputs[0], b.inputs[1], OPS.index(b.ops[0]), OPS.index(b.ops[1]),
                        COMBINERS.index(b.combine)]
        return out

    @classmethod
    def decode(cls, decisions, num_blocks: int = NUM_BLOCKS, normal_concat=None, reduction_concat=None,
               name: str = "") -> Genotype:
        """Inverse of :meth:`encode`; ``concat`` defaults to the unused block outputs (the paper's rule)."""
        decisions = [int(v) for v in decisions]
        if len(decisions) != 2 * 5 * num_blocks:
            raise ConvzooError(f"a genotype of {num_blocks} blocks per cell has {10 * num_blocks} decisions, "
                               f"got {len(decisions)}")
        cells = []
        for c, concat in enumerate((normal_concat, reduction_concat)):
            blocks = []
            for j in range(num_blocks):
                a, b, oa, ob, comb = decisions[5 * (c * num_blocks + j):5 * (c * num_blocks + j + 1)]
                if not (0 <= oa < len(OPS) and 0 <= ob < len(OPS) and 0 <= comb < len(COMBINERS)):
                    raise ConvzooError(f"decision out of range in block {j}: ops {oa}, {ob} (0..{len(OPS) - 1}), "
                                       f"combiner {comb} (0..1)")
                blocks.append(Block((a, b), (OPS[oa], OPS[ob]), COMBINERS[comb]))
            blocks = tuple(blocks)
            cells.append(CellGenotype(blocks, tuple(concat) if concat is not None else unused_states(blocks)))
        return cls(cells[0], cells[1], name).validate()


def random_genotype(rng: random.Random | int | None = None, num_blocks: int = NUM_BLOCKS, ops=OPS,
                    combiners=COMBINERS) -> Genotype:
    """A genotype drawn uniformly: each block's inputs among the states before it, ops and combiner from
    ``ops`` / ``combiners``; the output concatenates the unused block outputs (the paper's random search)."""
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)
    cells = []
    for _ in range(2):
        blocks = tuple(Block((rng.randrange(2 + j), rng.randrange(2 + j)), (rng.choice(ops), rng.choice(ops)),
                             rng.choice(combiners)) for j in range(num_blocks))
        cells.append(CellGenotype(blocks, unused_states(blocks)))
    return Genotype(cells[0], cells[1], "random").validate()


def _nasnet_a_cell(ops, indices, concat) -> CellGenotype:
    """From the official lists: ``operations`` and ``hiddenstate_indices`` in (left, right) pairs."""
    return CellGenotype(tuple(Block((indices[2 * j], indices[2 * j + 1]), (ops[2 * j], ops[2 * j + 1]))
                              for j in range(len(ops) // 2)), tuple(concat))


# official NasNetANormalCell / NasNetAReductionCell (nasnet_utils.py); 'none' = identity
NASNET_A = Genotype(
    normal=_nasnet_a_cell(
        ("sep_conv_5x5", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_3x3", "avg_pool_3x3", "identity",
         "avg_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "identity"),
        (0, 1, 1, 1, 0, 1, 1, 1, 0, 0),
        concat=(1, 2, 3, 4, 5, 6)),  # used_hiddenstates [1, 0, 0, 0, 0, 0, 0]: h_i-1 and every block
    reduction=_nasnet_a_cell(
        ("sep_conv_5x5", "sep_conv_7x7", "max_pool_3x3", "sep_conv_7x7", "avg_pool_3x3", "sep_conv_5x5",
         "identity", "avg_pool_3x3", "sep_conv_3x3", "max_pool_3x3"),
        (0, 1, 0, 1, 0, 1, 3, 2, 2, 0),
        concat=(3, 4, 5, 6)),  # used_hiddenstates [1, 1, 1, 0, 0, 0, 0]: blocks 1-4
    name="NASNet-A",
)


# --- TensorFlow "SAME" padding -------------------------------------------------------------------------

def _same_pad(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of TF "SAME": output ceil(size / stride), the extra pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, k, stride, dilation=(1, 1), value: float = 0.0) -> torch.Tensor:
    ph = _same_pad(x.shape[-2], k[0], stride[0], dilation[0])
    pw = _same_pad(x.shape[-1], k[1], stride[1], dilation[1])
    if not any(ph + pw):
        return x
    return F.pad(x, (pw[0], pw[1], ph[0], ph[1]), value=value)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TF "SAME" padding: static and symmetric at stride 1, computed from the input at stride 2."""

    def __init__(self, cin: int, cout: int, k, stride=1, dilation=1, groups: int = 1):
        k, stride, dilation = nn.modules.utils._pair(k), nn.modules.utils._pair(stride), nn.modules.utils._pair(dilation)
        self.dynamic = stride != (1, 1)
        pad = (0, 0) if self.dynamic else tuple((kk - 1) * d // 2 for kk, d in zip(k, dilation))
        super().__init__(cin, cout, k, stride, pad, dilation, groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic:
            x = _pad_same(x, self.kernel_size, self.stride, self.dilation)
        return super().forward(x)


class PoolSame(nn.Module):
    """Max or average pooling with TF "SAME" padding. Stride 1: padding excluded from averages (as TF).
    Stride 2: max pads -inf; average pads zeros that count in the mean (timm's ``AvgPool2dSame``)."""

    def __init__(self, kind: str, k: int, stride: int):
        super().__init__()
        self.kind, self.k, self.stride = kind, k, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.k, self.stride
        if s == 1:
            if self.kind == "max":
                return F.max_pool2d(x, k, 1, k // 2)
            return F.avg_pool2d(x, k, 1, k // 2, count_include_pad=False)
        x = _pad_same(x, (k, k), (s, s), value=float("-inf") if self.kind == "max" else 0.0)
        return F.max_pool2d(x, k, s) if self.kind == "max" else F.avg_pool2d(x, k, s)

    def extra_repr(self) -> str:
        return f"{self.kind}, k={self.k}, stride={self.stride}"


# --- operations ---------------------------------------------------------------------------------------

def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.1)


@torch.no_grad()
def fold_bn_(bn: nn.BatchNorm2d, *convs: nn.Conv2d) -> nn.Identity:
    """Fold an eval-mode BN into the conv(s) before it, in place: one conv, or several whose outputs are
    concatenated (in order) into the BN's channels; returns the Identity that replaces the BN."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    start = 0
    for conv in convs:
        s, t = scale[start:start + conv.out_channels], shift[start:start + conv.out_channels]
        start += conv.out_channels
        conv.weight.mul_(s.reshape(-1, 1, 1, 1))
        conv.bias = nn.Parameter(t if conv.bias is None else conv.bias * s + t)
    if start != bn.num_features:
        raise ConvzooError(f"cannot fold a BN of {bn.num_features} channels into convs of {start} outputs")
    return nn.Identity()


class ActConvBn(nn.Module):
    """ReLU -> conv (TF "SAME") -> BN (timm keys ``act``, ``conv``, ``bn``)."""

    relu_first = True  # forward = forward_activated(ReLU(x)): a cell shares ReLU(x) between such ops

    def __init__(self, cin: int, cout: int, k=1, stride=1, dilation=1):
        super().__init__()
        self.act = nn.ReLU()
        self.conv = Conv2dSame(cin, cout, k, stride, dilation)
        self.bn = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_activated(self.act(x))

    def forward_activated(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def reparameterize(self) -> None:
        """Inference: BN folded into the conv (``convzoo.deploy``)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.bn = fold_bn_(self.bn, self.conv)


class FactorizedConv(nn.Module):
    """ReLU -> 1xk conv (stride on W) -> kx1 conv (stride on H) -> BN: the "1xk then kx1" operations."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1):
        super().__init__()
        self.act = nn.ReLU()
        self.conv_1 = Conv2dSame(cin, cout, (1, k), (1, stride))
        self.conv_2 = Conv2dSame(cout, cout, (k, 1), (stride, 1))
        self.bn = _bn(cout)

    relu_first = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_activated(self.act(x))

    def forward_activated(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv_2(self.conv_1(x)))

    def reparameterize(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.bn = fold_bn_(self.bn, self.conv_2)


class SeparableConv2d(nn.Module):
    """Depthwise kxk (stride) -> pointwise 1x1, no bias (slim ``separable_conv2d``, depth multiplier 1)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1):
        super().__init__()
        self.depthwise_conv2d = Conv2dSame(cin, cin, k, stride, groups=cin)
        self.pointwise_conv2d = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv2d(self.depthwise_conv2d(x))


class BranchSeparables(nn.Module):
    """(ReLU -> separable kxk -> BN) twice, the stride in the first, both to ``cout`` channels (official
    ``_stacked_separable_conv``; timm's ``BranchSeparables`` keys)."""

    relu_first = True

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1):
        super().__init__()
        self.act_1 = nn.ReLU()
        self.separable_1 = SeparableConv2d(cin, cout, k, stride)
        self.bn_sep_1 = _bn(cout)
        self.act_2 = nn.ReLU(inplace=True)  # on the fresh BN (or, deployed, conv) output
        self.separable_2 = SeparableConv2d(cout, cout, k, 1)
        self.bn_sep_2 = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_activated(self.act_1(x))

    def forward_activated(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_sep_1(self.separable_1(x))
        return self.bn_sep_2(self.separable_2(self.act_2(x)))

    def reparameterize(self) -> None:
        """Inference: each BN folded into the pointwise conv before it (``convzoo.deploy``)."""
        if isinstance(self.bn_sep_1, nn.BatchNorm2d):
            self.bn_sep_1 = fold_bn_(self.bn_sep_1, self.separable_1.pointwise_conv2d)
            self.bn_sep_2 = fold_bn_(self.bn_sep_2, self.separable_2.pointwise_conv2d)


class PoolOp(nn.Module):
    """Pooling, then 1x1 conv-BN when the channel count changes (official rule; no ReLU)."""

    def __init__(self, kind: str, k: int, stride: int, cin: int, cout: int):
        super().__init__()
        self.pool = PoolSame(kind, k, stride)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else None
        self.bn = _bn(cout) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return x if self.conv is None else self.bn(self.conv(x))

    def reparameterize(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.bn = fold_bn_(self.bn, self.conv)


def make_op(name: str, cin: int, cout: int, stride: int = 1) -> nn.Module:
    """Operation ``name`` of :data:`OPS` from ``cin`` to ``cout`` channels (stride 1 or 2)."""
    if name == "identity":  # official 'none': a strided / channel-changing identity is ReLU-1x1 conv-BN
        return nn.Identity() if stride == 1 and cin == cout else ActConvBn(cin, cout, 1, stride)
    if name.startswith("sep_conv_"):
        return BranchSeparables(cin, cout, int(name[-1]), stride)
    if name.startswith(("avg_pool_", "max_pool_")):
        return PoolOp(name[:3], int(name[-1]), stride, cin, cout)
    if name == "conv_1x1":
        return ActConvBn(cin, cout, 1, stride)
    if name == "conv_3x3":
        return ActConvBn(cin, cout, 3, stride)
    if name == "dil_conv_3x3":
        return ActConvBn(cin, cout, 3, stride, dilation=2)
    if name in ("conv_1x3_3x1", "conv_1x7_7x1"):
        return FactorizedConv(cin, cout, int(name[-1]), stride)
    raise ConvzooError(f"unknown op {name!r}; ops are {', '.join(OPS)}")


# --- ScheduledDropPath ----------------------------------------------------------------------------------

class ScheduledDropPath(nn.Module):
    """Per-sample drop of a branch, with keep probability falling with depth and with training progress.

    ``keep = 1 - progress * (cell_index + 1) / total_cells * drop_prob`` (official ``_apply_drop_path``,
    version v3; ``drop_prob = 1 - drop_path_keep_prob``); kept samples are scaled by ``1 / keep``. ``progress``
    (step / total steps, clipped to [0, 1]) is a non-persistent buffer set by :meth:`set_progress`; it is 1
    until something drives it (then the depth-scaled rate is constant). Identity in evaluation.
    """

    def __init__(self, drop_prob: float, cell_index: int, total_cells: int):
        super().__init__()
        self.drop_prob, self.cell_index, self.total_cells = float(drop_prob), int(cell_index), int(total_cells)
        self.register_buffer("progress", torch.ones(()), persistent=False)

    def set_progress(self, progress: float) -> None:
        self.progress.fill_(min(max(float(progress), 0.0), 1.0))

    def keep_prob(self) -> torch.Tensor:
        return 1.0 - self.progress * ((self.cell_index + 1) / self.total_cells * self.drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = self.keep_prob().to(x.dtype)
        mask = torch.floor(keep + torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype))
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}, cell={self.cell_index + 1}/{self.total_cells}"


# --- the cell -------------------------------------------------------------------------------------------

class _SkipPath(nn.Module):
    """One path of the factorized reduction: (shift by one pixel) -> stride-2 subsample -> 1x1 conv."""

    def __init__(self, cin: int, cout: int, shift: bool):
        super().__init__()
        self.shift = shift
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the stride-2 subsample as a 1x1 average pool (exact; a dense map in x's memory format, which the conv
        # takes without a copy); the shifted path (official: drop the first row and column, pad one zero
        # after, subsample) = odd rows/columns, then a zero row/column where H/W is odd
        if not self.shift:
            return self.conv(F.avg_pool2d(x, 1, 2))
        h, w = x.shape[-2:]
        x = F.avg_pool2d(x[:, :, 1:, 1:], 1, 2)
        if h % 2 or w % 2:
            x = F.pad(x, (0, w % 2, 0, h % 2))
        return self.conv(x)


class FactorizedReduction(nn.Module):
    """Official ``factorized_reduction``: stride 2 -> two half-width 1x1 paths (one shifted by a pixel),
    concatenated, BN; stride 1 -> 1x1 conv-BN. No ReLU (callers put one in front when the official code does)."""

    def __init__(self, cin: int, cout: int, stride: int = 2):
        super().__init__()
        self.stride = stride
        if stride == 1:
            self.path_conv, self.path_bn = nn.Conv2d(cin, cout, 1, bias=False), _bn(cout)
        else:
            self.path_1, self.path_2 = _SkipPath(cin, cout // 2, False), _SkipPath(cin, cout - cout // 2, True)
            self.final_path_bn = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return self.path_bn(self.path_conv(x))
        return self.final_path_bn(torch.cat([self.path_1(x), self.path_2(x)], 1))

    def reparameterize(self) -> None:
        """Inference: the BN folded into the conv(s) before it (split by channel over the two paths)."""
        if self.stride == 1 and isinstance(self.path_bn, nn.BatchNorm2d):
            self.path_bn = fold_bn_(self.path_bn, self.path_conv)
        elif self.stride != 1 and isinstance(self.final_path_bn, nn.BatchNorm2d):
            self.final_path_bn = fold_bn_(self.final_path_bn, self.path_1.conv, self.path_2.conv)


class NASNetCell(nn.Module):
    """A normal or reduction cell built from a :class:`CellGenotype` (official ``NasNetABaseCell``).

    ``forward(x, x_prev)``: ``x`` = h_i (``in_chs`` channels), ``x_prev`` = h_{i-1} (``prev_chs`` channels, at
    the same resolution or, with ``prev_reduced``, twice it) or None (then h_{i-1} is ``x`` itself, as the
    official code does for the first cell). Output: ``out_chs`` channels, at half the resolution when
    ``reduction``. ``filters`` = F, the width of each state; ``cell_index`` / ``total_cells`` place the cell
    for :class:`ScheduledDropPath` (``drop_prob`` = 1 - the official ``drop_path_keep_prob``).
    """

    def __init__(self, genotype: CellGenotype, in_chs: int, prev_chs: int | None, filters: int,
                 reduction: bool = False, prev_reduced: bool = False, drop_prob: float = 0.0,
                 cell_index: int = 0, total_cells: int = 1):
        super().__init__()
        genotype.validate("reduction cell" if reduction else "normal cell")
        self.genotype, self.reduction, self.filters = genotype, reduction, filters
        stride = 2 if reduction else 1
        # the cell base: h_i -> ReLU-1x1-BN; h_i-1 -> factorized reduction / ReLU-1x1-BN / as is
        self.conv_1x1 = ActConvBn(in_chs, filters, 1)
        self.prev_mode = "none" if prev_chs is None else "reduce" if prev_reduced else \
            "conv" if prev_chs != filters else "identity"
        if self.prev_mode == "reduce":  # timm's FirstCell keys: act, path_1, path_2, final_path_bn
            self.act = nn.ReLU()
            self.path_1, self.path_2 = _SkipPath(prev_chs, filters // 2, False), _SkipPath(prev_chs, filters - filters // 2, True)
            self.final_path_bn = _bn(filters)
        elif self.prev_mode == "conv":
            self.conv_prev_1x1 = ActConvBn(prev_chs, filters, 1)
        chans = [filters, in_chs if prev_chs is None else filters]  # channels of each state
        for j, b in enumerate(genotype.blocks):
            for side, i, op in zip(("left", "right"), b.inputs, b.ops):
                s = stride if i < 2 else 1  # the stride applies to ops on the cell's inputs only
                self.add_module(f"comb_iter_{j}_{side}", make_op(op, chans[i], filters, s))
            chans.append(2 * filters if b.combine == "concat" else filters)
        # concatenated input states need the blocks' resolution and width (official _combine_unused_states)
        self.fix = nn.ModuleDict()
        for i in genotype.concat:
            if i < 2 and (reduction or chans[i] != filters):
                self.fix[f"reduction_{i}"] = FactorizedReduction(chans[i], filters, stride)
                chans[i] = filters
        self.out_chs = sum(chans[i] for i in genotype.concat)
        self.drop_path = ScheduledDropPath(drop_prob, cell_index, total_cells)
        # (module name, input state, drop-path applies) per op, in order: forward reads no genotype
        self._wiring = tuple(tuple((f"comb_iter_{j}_{side}", i, op != "identity")
                                   for side, i, op in zip(("left", "right"), b.inputs, b.ops)) + (b.combine == "add",)
                             for j, b in enumerate(genotype.blocks))
        self._outputs = tuple((i, f"reduction_{i}" if f"reduction_{i}" in self.fix else None) for i in genotype.concat)

    @property
    def prev_needs_relu(self) -> bool:
        """Whether the cell reads ReLU(x_prev) (then a caller holding it passes it as ``x_prev_act``)."""
        return self.prev_mode in ("reduce", "conv")

    def _prev(self, x: torch.Tensor, x_prev: torch.Tensor | None, x_prev_act: torch.Tensor | None) -> torch.Tensor:
        if self.prev_mode == "none":
            return x
        if self.prev_mode == "identity":
            return x_prev
        x_prev = self.act_of(x_prev, x_prev_act)
        if self.prev_mode == "reduce":
            return self.final_path_bn(torch.cat([self.path_1(x_prev), self.path_2(x_prev)], 1))
        return self.conv_prev_1x1.forward_activated(x_prev)

    @staticmethod
    def act_of(x: torch.Tensor, x_act: torch.Tensor | None) -> torch.Tensor:
        return F.relu(x) if x_act is None else x_act

    def forward(self, x: torch.Tensor, x_prev: torch.Tensor | None = None, x_act: torch.Tensor | None = None,
                x_prev_act: torch.Tensor | None = None) -> torch.Tensor:
        # (B, in_chs, H, W), (B, prev_chs, H or 2H, W or 2W) -> (B, out_chs, H or H/2, W or W/2)
        # x_act / x_prev_act: ReLU(x) / ReLU(x_prev) when the caller already has them (the network computes
        # each cell output's ReLU once for the two cells that read it); each state's ReLU is likewise computed
        # once for all the operations that start with one (ops with ``relu_first``): same values, fewer passes
        states = [self.conv_1x1.forward_activated(self.act_of(x, x_act)), self._prev(x, x_prev, x_prev_act)]
        acts: dict[int, torch.Tensor] = {}
        for (name_a, i_a, drop_a), (name_b, i_b, drop_b), add in self._wiring:
            pair = []
            for name, i, drop in ((name_a, i_a, drop_a), (name_b, i_b, drop_b)):
                op = getattr(self, name)
                if getattr(op, "relu_first", False):
                    if i not in acts:
                        acts[i] = F.relu(states[i])
                    y = op.forward_activated(acts[i])
                else:
                    y = op(states[i])
                pair.append(self.drop_path(y) if drop else y)  # official: no drop path on identity
            a, b = pair
            states.append(a + b if add else torch.cat([a, b], 1))
        return torch.cat([states[i] if fix is None else self.fix[fix](states[i]) for i, fix in self._outputs], 1)

    def reparameterize(self) -> None:
        """Inference: the h_i-1 reduction's BN folded into its two path convs (the ops fold their own)."""
        if self.prev_mode == "reduce" and isinstance(self.final_path_bn, nn.BatchNorm2d):
            self.final_path_bn = fold_bn_(self.final_path_bn, self.path_1.conv, self.path_2.conv)
