"""Speed, compute and memory of a model, measured the same way for ours and a reference peer.

:func:`bench` reports, for every requested *mode* of running the model,

- batch-1 latency (ms, median over rounds) and batch-N throughput (items/s, median over rounds);
- achieved GFLOP/s (FLOPs = 2 x MACs of a batch-1 forward, counted once with
  ``torch.utils.flop_counter.FlopCounterMode``) and its fraction of the fp32 GEMM peak, which is
  measured in the same run (best of a few 2048 x 2048 fp32 matmuls; bf16 modes are also set against
  a bf16 GEMM peak);
- peak memory of one batch-N forward (CUDA: ``torch.cuda.max_memory_allocated`` above the memory
  allocated before the call; CPU on Linux: peak resident set size ``VmHWM`` above ``VmRSS`` after
  ``malloc_trim`` and a reset of the peak through ``/proc/self/clear_refs``; elsewhere the increase of
  ``ru_maxrss``, a lower bound). ``tracemalloc`` does not see torch's allocations;
- CPU time / wall time of the timed calls, a trust indicator: on a CPU with T threads a value near T
  means the process had the cores to itself; the machine is often shared;
- on a CPU, items per CPU-second of the batch-N calls (``cpu_throughput``): with ``threads=1`` the
  speed measure least disturbed by other processes (with more threads, waiting threads that spin
  also count);
- the largest difference of the mode's output from the fp32 eager output on the same input
  (absolute, and relative to the largest absolute output), so a fast path that changes the result
  shows up.

Modes: ``eager`` (NCHW), ``channels_last``, ``compile`` (``torch.compile``, default mode, static
shapes; its compile time is timed separately), ``deploy`` (:func:`convzoo.deploy` fusion +
channels_last), ``deploy_compile`` (``deploy``, then ``torch.compile`` with Inductor's ``freezing``:
weights become constants that are folded and, on a CPU, pre-packed for oneDNN with fused
post-ops; inference only; not in the default set) and ``bf16`` (``torch.autocast`` bfloat16 +
channels_last). Modes that do not apply
(channels_last on a 1-D model) are reported as skipped. Timed calls of every (model, mode) pair are
interleaved round by round, so a burst of load from another process hits all of them alike.

``compare="timm:NAME"`` (or ``"torchvision:NAME"``) builds the peer in the same process without
weights and measures it in the same modes, in the same interleaved rounds; like with like, its deploy
modes are fused as ours are (:func:`deploy_peer`: ``timm.utils.reparameterize_model``, then every
conv+BN pair folded on a torch.fx trace), and the table's footnotes say how each deploy row was fused and
how many BatchNorms it kept. :data:`TIMM_ALIASES` names timm constructions that have no registered timm
name (e.g. the plain ECA-ResNet-50 of paper 43). Ratios are throughput ratios: ours eager / peer eager,
ours deploy / peer deploy, our best fp32 mode / the peer's best fp32 mode, ours bf16 / peer bf16 (and the
same ratios of items per CPU-second).

Input shapes come from the model card (dims, in_chans, input_size); ``size`` overrides the spatial
size (an int, "S", or "HxW"). For a super-resolution card ``size`` is the *output* size (HxW) and the
low-resolution input is output / scale (``model.scale``); throughput is then in frames/s.
"""

from __future__ import annotations

import copy
import ctypes
import math
import re
import resource
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convzoo.errors import ConvzooError

__all__ = ["DEFAULT_MODES", "MODES", "REF_MODES", "TIMM_ALIASES", "bench", "compare_markdown", "deploy_markdown",
           "deploy_peer", "environment", "fold_conv_bn", "format_bench", "gemm_peak"]

MODES = ("eager", "channels_last", "compile", "deploy", "deploy_compile", "bf16")
DEFAULT_MODES = ("eager", "channels_last", "compile", "deploy", "bf16")
REF_MODES = MODES  # a peer is measured in every mode; its deploy is timm's re-parameterisation + BN folding
FP32_MODES = ("eager", "channels_last", "compile", "deploy", "deploy_compile")


def _timm_eca_resnet50():
    from timm.models.resnet import Bottleneck, ResNet

    return ResNet(block=Bottleneck, layers=[3, 4, 6, 3], block_args={"attn_layer": "eca"})


# timm constructions without a registered timm name: "timm:<alias>" builds them
TIMM_ALIASES: dict[str, Callable[[], nn.Module]] = {
    "eca_resnet50_paper": _timm_eca_resnet50,  # paper 43's ECA-Net50 layout, adaptive k (5,5,5,7)
    "ecaresnet50_plain": _timm_eca_resnet50,
}


# --- inputs -------------------------------------------------------------------------------------

def _parse_size(size, dims: int) -> tuple[int, ...] | None:
    """None | int | "S" | "HxW" | (H, W) -> a tuple of ``dims`` ints."""
    if size is None:
        return None
    if isinstance(size, str):
        parts = re.split(r"[x,×]", size.strip().lower())
        if not all(p.strip().isdigit() for p in parts) or len(parts) not in (1, dims):
            want = "x".join("S" * dims)
            raise ConvzooError(f"bench size must be S or {want} (positive integers), got {size!r}")
        size = [int(p) for p in parts]
    if isinstance(size, int):
        size = [size]
    size = tuple(int(s) for s in size)
    if len(size) == 1:
        size = size * dims
    if len(size) != dims or min(size) < 1:
        raise ConvzooError(f"bench size must give {dims} positive integer(s) for this model, got {size!r}")
    return size


def _input_spec(model: nn.Module, card, size) -> dict:
    """Per-item input shape (C, *spatial) and the unit; the model's task decides (e.g. super-resolution
    reads ``size`` as the output frame and feeds size / scale)."""
    dims = card.dims if card is not None else 2
    spatial = _parse_size(size, dims)
    if card is None:  # a bare module: an image classifier at 224 px unless told otherwise
        return {"task": None, "dims": dims, "unit": "items/s", "input_shape": [3, *(spatial or (224,) * dims)]}
    from convzoo.tasks import build_task

    return {"task": card.task, "dims": dims, **build_task(card.task).bench_spec(model, card, spatial)}


def _example(batch: int, spec: dict, device: torch.device) -> torch.Tensor:
    """Random inputs of the task's spec: Gaussian floats, or integer levels 0..levels-1 (density models)."""
    shape = (batch, *spec["input_shape"])
    if spec.get("input_dtype") == "int64":
        return torch.randint(0, spec["levels"], shape, device=device)
    return torch.randn(shape, device=device)


def _memory_format(ndim: int):
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(ndim)


# --- measurements ----------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def gemm_peak(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048,
              reps: int = 3) -> float:
    """GFLOP/s of the best of ``reps`` n x n matmuls (2 n^3 FLOPs each)."""
    device = torch.device(device)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    best = math.inf
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward on ``x`` (FlopCounterMode FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return int(fc.get_total_flops()) // 2


class _Memory:
    """Peak memory of one call above the memory in use before it (see the module docstring)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.proc = Path("/proc/self/clear_refs")
        self.libc = None
        if device.type == "cuda":
            self.source = "torch.cuda.max_memory_allocated above memory_allocated before the call"
        elif self._can_reset():
            self.source = "peak RSS (VmHWM) above VmRSS, reset via /proc/self/clear_refs after malloc_trim"
        else:
            self.source = "increase of the process's ru_maxrss (a lower bound: 0 = under an earlier peak)"

    def _can_reset(self) -> bool:
        try:
            self.proc.write_text("5")
            self.libc = ctypes.CDLL("libc.so.6")
            return True
        except OSError:
            return False

    @staticmethod
    def _status_kb(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        elif self.libc is not None:
            self.libc.malloc_trim(0)
            self.proc.write_text("5")
            self.base = self._status_kb("VmRSS") * 1024
        else:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def stop(self) -> float:
        """MiB above the start."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.libc is not None:
            peak = self._status_kb("VmHWM") * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, peak - self.base) / 2 ** 20


def _diff(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    out, ref = out.float(), ref.float()
    abs_diff = (out - ref).abs().max().item()
    return abs_diff, abs_diff / max(ref.abs().max().item(), 1e-12)


class _Runner:
    """One (model, mode) pair: a callable on prepared inputs, and its timings."""

    def __init__(self, who: str, mode: str, fn: Callable[[torch.Tensor], torch.Tensor],
                 x1: torch.Tensor, xn: torch.Tensor, context=None):
        self.who, self.mode, self.fn, self.x1, self.xn = who, mode, fn, x1, xn
        self.context = context  # factory of a context every call runs in (autocast, inductor config)
        self.t1: list[float] = []
        self.tn: list[float] = []
        self.cn: list[float] = []  # CPU seconds of each batch-N call
        self.cpu = self.wall = 0.0
        self.info: dict[str, Any] = {}
        self.reps1 = 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), (self.context() if self.context else nullcontext()):
            return self.fn(x)

    def timed(self, x: torch.Tensor, device: torch.device, reps: int = 1) -> tuple[float, float]:
        """(wall, CPU) seconds per call."""
        _sync(device)
        c, t = time.process_time(), time.perf_counter()
        for _ in range(reps):
            self(x)
        _sync(device)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        self.cpu += cpu
        self.wall += wall
        return wall / reps, cpu / reps


def _prepare(who: str, mode: str, model: nn.Module, x1: torch.Tensor, xn: torch.Tensor,
             device: torch.device) -> _Runner | str:
    """A runner for ``mode``, or a string saying why the mode does not apply."""
    fmt = _memory_format(x1.dim())
    if mode == "channels_last" and fmt is None:
        return f"channels_last needs a 4-D or 5-D input, this model takes {x1.dim()}-D"
    if mode == "eager":
        return _Runner(who, mode, model, x1, xn)
    if mode == "compile":
        return _Runner(who, mode, torch.compile(model, dynamic=False), x1, xn)
    info = {}
    if mode in ("deploy", "deploy_compile"):
        if who == "ours":
            from convzoo.layers.fuse import deploy

            model = deploy(copy.deepcopy(model))
        else:  # the peer is fused as ours is (like with like)
            model, how = deploy_peer(model)
            info["deploy"] = how["how"]
        info["bn_left"] = _bn_count(model)
        info["params"] = sum(p.numel() for p in model.parameters())  # after fusion
    else:
        model = copy.deepcopy(model)
    if fmt is not None:
        try:
            model = model.to(memory_format=fmt)
        except RuntimeError:  # e.g. 2-D convs run over the frames of a 5-D clip (LRCN): its weights are 4-D
            if mode == "channels_last":
                return f"{fmt} does not fit this model's weights (it takes {x1.dim()}-D inputs, runs lower-D layers)"
            fmt = None
    if fmt is not None:
        x1, xn = x1.contiguous(memory_format=fmt), xn.contiguous(memory_format=fmt)
    context = None
    if mode == "bf16":
        def context():
            return torch.autocast(device.type, dtype=torch.bfloat16)
    elif mode == "deploy_compile":
        import torch._inductor.config as inductor_config

        model = torch.compile(model, dynamic=False)

        def context():  # weights become constants: folded, and pre-packed for oneDNN on a CPU
            return inductor_config.patch(freezing=True)
    runner = _Runner(who, mode, model, x1, xn, context)
    runner.info.update(info)
    return runner


# --- the peer in deploy mode: re-parameterised and BN-folded as ours is --------------------------------

_PLAIN_CONV_FORWARDS = {nn.Conv1d.forward, nn.Conv2d.forward, nn.Conv3d.forward}
_SAME_PAD_CONVS = {"Conv2dSame", "Conv2dSameExport"}  # timm: pads, then F.conv2d(x, weight, bias)


def _foldable_conv(m: nn.Module) -> bool:
    """A conv whose forward is conv(x; weight, bias), so folding a BN into its weight and bias is exact."""
    return (isinstance(m, nn.modules.conv._ConvNd) and not isinstance(m, nn.modules.conv._ConvTransposeNd)
            and (type(m).forward in _PLAIN_CONV_FORWARDS or type(m).__name__ in _SAME_PAD_CONVS))


def _after_bn(bn: nn.Module) -> nn.Module | None:
    """What a BN module does after normalising (its replacement once folded), or None when unknown."""
    if type(bn) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm):
        return nn.Identity()
    if type(bn).__name__ == "BatchNormAct2d" and hasattr(bn, "act") and hasattr(bn, "drop"):  # timm
        return nn.Sequential(bn.drop, bn.act)  # its forward: batch_norm, then drop, then act
    return None


def _fx_graph(model: nn.Module):
    """A torch.fx graph of ``model`` with convs, BNs and timm's no-trace modules and functions as leaves."""
    import torch.fx

    leaf_types: tuple = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm)
    functions: tuple = ()
    try:
        from timm.layers import get_notrace_functions, get_notrace_modules

        leaf_types += tuple(get_notrace_modules())
        functions = tuple(f for f in get_notrace_functions() if callable(f))
    except ImportError:
        pass

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, leaf_types) or super().is_leaf_module(m, qualname)

    return Tracer(autowrap_functions=functions).trace(model)


@torch.no_grad()
def fold_conv_bn(model: nn.Module) -> dict:
    """Fold, in place, every eval-mode BatchNorm whose only input is a conv output that nothing else uses.

    The pairs are found on a torch.fx trace (so attribute pairs such as timm's ``conv1``/``bn1`` are found,
    not only ``nn.Sequential`` neighbours): the conv takes W' = W gamma / sqrt(var + eps) and
    b' = beta + (b - mean) gamma / sqrt(var + eps) (:func:`convzoo.layers.fuse.fuse_bn_tensors`), and the
    BN module becomes what it does after normalising (Identity; timm's ``BatchNormAct2d``: its drop and
    act). Returns ``{"folded": n, "bn_left": [names], "why": ...}``; a model torch.fx cannot trace is
    left as it is (``why`` says so).
    """
    from convzoo.layers.fuse import fuse_bn_tensors

    bns = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return {"folded": 0, "bn_left": [], "why": "no BatchNorm"}
    try:
        graph = _fx_graph(model)
    except Exception as e:  # noqa: BLE001  (data-dependent control flow: reported, not fatal)
        return {"folded": 0, "bn_left": bns,
                "why": f"not folded: torch.fx cannot trace it ({type(e).__name__}: {str(e).splitlines()[0][:120]})"}
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    folded = 0
    for node in graph.nodes:
        if node.op != "call_module" or len(node.users) != 1:
            continue
        conv = model.get_submodule(node.target)
        user = next(iter(node.users))
        if user.op != "call_module" or user.args != (node,) or user.kwargs:
            continue
        bn = model.get_submodule(user.target)
        if not (_foldable_conv(conv) and isinstance(bn, nn.modules.batchnorm._BatchNorm)
                and calls[node.target] == calls[user.target] == 1 and not bn.training
                and bn.running_mean is not None and bn.num_features == conv.out_channels):
            continue
        tail = _after_bn(bn)
        if tail is None:
            continue
        bn_affine = bn if bn.affine else _AffineView(bn)
        w, b = fuse_bn_tensors(conv.weight, conv.bias, bn_affine)
        conv.weight.copy_(w)
        conv.bias = nn.Parameter(b.to(conv.weight.dtype))
        parent, _, leaf = user.target.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, tail)
        folded += 1
    left = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    why = "every BatchNorm folded" if not left else f"{len(left)} BatchNorm not after a foldable conv"
    return {"folded": folded, "bn_left": left, "why": why}


class _AffineView:
    """A non-affine BN seen as an affine one (gamma = 1, beta = 0) by :func:`fuse_bn_tensors`."""

    def __init__(self, bn):
        self.running_mean, self.running_var, self.eps = bn.running_mean, bn.running_var, bn.eps
        self.weight, self.bias = torch.ones_like(bn.running_mean), torch.zeros_like(bn.running_mean)


def deploy_peer(model: nn.Module) -> tuple[nn.Module, dict]:
    """A deploy copy of a reference model, fused as :func:`convzoo.deploy` fuses ours: timm's
    ``reparameterize_model`` (every ``fuse()`` / ``reparameterize()`` / ``switch_to_deploy()``), then
    :func:`fold_conv_bn`. Returns (the copy in eval mode, what was done)."""
    model = copy.deepcopy(model).eval()
    try:
        from timm.utils import reparameterize_model
    except ImportError:  # a torchvision peer without timm installed: BN folding only
        how = "conv+BN folded"
    else:
        model = reparameterize_model(model, inplace=True).eval()
        how = "timm.utils.reparameterize_model + conv+BN folded"
    info = fold_conv_bn(model)
    return model, {"how": how, **info}


def _bn_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _build_reference(compare: str, card, device: torch.device) -> nn.Module:
    kind, _, name = compare.partition(":")
    if not name or kind not in ("timm", "torchvision"):
        raise ConvzooError(f"bench --compare expects timm:NAME or torchvision:NAME, got {compare!r}")
    kw = {}
    if card is not None and card.num_classes:
        kw = {"num_classes": card.num_classes}
    if kind == "timm":
        try:
            import timm
        except ImportError:
            raise ConvzooError("bench --compare timm:... needs timm (pip install 'convzoo[dev]')") from None
        if name in TIMM_ALIASES:
            model = TIMM_ALIASES[name]()
        elif name in timm.list_models():
            model = timm.create_model(name, pretrained=False,
                                      **(dict(kw, in_chans=card.in_chans) if card is not None else {}))
        else:
            from convzoo.errors import suggest

            known = sorted(set(timm.list_models()) | set(TIMM_ALIASES))
            close = suggest(name, known)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConvzooError(f"unknown timm model '{name}'{hint}")
    else:
        import torchvision

        try:
            model = torchvision.models.get_model(name, weights=None, **kw)
        except ValueError:
            raise ConvzooError(f"unknown torchvision model '{name}'") from None
    return model.to(device).eval()


# --- the benchmark ---------------------------------------------------------------------------------

def bench(model: str | nn.Module, *, batch: int = 16, size=None, modes=DEFAULT_MODES,
          compare: str | None = None, rounds: int = 5, threads: int | None = None, device: str | None = None,
          seed: int = 0) -> dict:
    """Benchmark ``model`` (a registered name, or a module carrying a ``card``); see the module docstring.

    Returns a JSON-serialisable dict; :func:`format_bench` renders it as a table.
    """
    from convzoo.registry import count_params, create_model

    modes = tuple(dict.fromkeys(modes))
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ConvzooError(f"unknown bench mode '{bad[0]}'; expected some of {', '.join(MODES)}")
    if batch < 1 or rounds < 1:
        raise ConvzooError(f"bench needs batch >= 1 and rounds >= 1, got batch={batch}, rounds={rounds}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        torch.manual_seed(seed)
        if isinstance(model, str):
            name, net = model, create_model(model)
        else:
            name, net = type(model).__name__, model
        card = getattr(net, "card", None)
        net = net.to(dev).eval()
        spec = _input_spec(net, card, size)
        x1, xn = (_example(n, spec, dev) for n in (1, batch))

        result: dict[str, Any] = {
            "model": name, "device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "batch": batch, "rounds": rounds, **spec,
            "params": count_params(net), "macs": count_macs(net, x1),
            "macs_source": "torch.utils.flop_counter.FlopCounterMode, batch 1, MACs = FLOPs / 2",
        }
        result["gemm_peak_gflops"] = round(gemm_peak(dev), 1)
        if "bf16" in modes:
            result["gemm_peak_bf16_gflops"] = round(gemm_peak(dev, torch.bfloat16), 1)
        nets = {"ours": (net, modes)}
        if compare:
            ref = _build_reference(compare, card, dev)
            result["compare"] = {"name": compare, "params": count_params(ref), "macs": count_macs(ref, x1)}
            nets["ref"] = (ref, tuple(m for m in modes if m in REF_MODES))

        memory = _Memory(dev)
        result["memory_source"] = memory.source
        runners, skipped = [], {"ours": {}, "ref": {}}
        eager_out = {}
        for who, (m, who_modes) in nets.items():
            with torch.inference_mode():
                eager_out[who] = m(x1)
            for mode in who_modes:
                try:
                    r = _prepare(who, mode, m, x1, xn, dev)
                except Exception as e:  # a peer that timm cannot fuse is reported, not fatal
                    if who == "ours":
                        raise
                    r = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                if isinstance(r, str):
                    skipped[who][mode] = r
                    continue
                try:
                    _warm_up(r, dev, eager_out[who], memory)
                except Exception as e:  # noqa: BLE001  (a failed compile is reported, not fatal)
                    skipped[who][mode] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                    continue
                runners.append(r)

        for i in range(rounds):  # interleaved: each round times every (model, mode) once
            k = i % max(1, len(runners))
            for r in runners[k:] + runners[:k]:
                wall, cpu = r.timed(r.xn, dev)
                r.tn.append(wall)
                r.cn.append(cpu)
                r.t1.append(r.timed(r.x1, dev, r.reps1)[0])

        for who in nets:
            out = {}
            for r in (r for r in runners if r.who == who):
                macs = result["macs"] if who == "ours" else result["compare"]["macs"]
                tn, t1, cn = statistics.median(r.tn), statistics.median(r.t1), statistics.median(r.cn)
                gflops = 2 * macs * batch / tn / 1e9
                row = {"latency_ms": round(t1 * 1e3, 3), "throughput": round(batch / tn, 2),
                       "cpu_throughput": round(batch / cn, 2) if dev.type == "cpu" else None,
                       "gflops": round(gflops, 1),
                       "peak_fraction": round(gflops / result["gemm_peak_gflops"], 3),
                       "cpu_wall": round(r.cpu / r.wall, 2) if r.wall else None, **r.info}
                if r.mode == "bf16" and "gemm_peak_bf16_gflops" in result:
                    row["bf16_peak_fraction"] = round(gflops / result["gemm_peak_bf16_gflops"], 3)
                out[r.mode] = row
            for mode, why in skipped[who].items():
                out[mode] = {"skipped": why}
            out = {m: out[m] for m in MODES if m in out}
            if who == "ours":
                result["modes"] = out
            else:
                result["compare"]["modes"] = out
        if compare:
            result["compare"]["ratios"] = _ratios(result["modes"], result["compare"]["modes"])
        result["trust"] = _trust(result, runners, dev)
        return result
    finally:
        torch.set_num_threads(old_threads)


def _warm_up(r: _Runner, dev: torch.device, eager_out: torch.Tensor, memory: _Memory) -> None:
    """First calls (compile happens here and is timed), output check, memory of one batch-N call."""
    t = time.perf_counter()
    r(r.xn)
    out = r(r.x1)
    _sync(dev)
    if "compile" in r.mode:
        r.info["compile_s"] = round(time.perf_counter() - t, 2)
    t1 = time.perf_counter()
    r(r.x1)
    _sync(dev)
    r.reps1 = max(1, min(20, int(0.05 / max(time.perf_counter() - t1, 1e-6))))  # >= ~50 ms per round
    r.info["max_abs_diff"], r.info["max_rel_diff"] = (float(f"{v:.3g}") for v in _diff(out, eager_out))
    memory.start()
    r(r.xn)
    r.info["peak_mem_mib"] = round(memory.stop(), 1)


def _best(modes: dict, allowed, key: str = "throughput") -> tuple[str | None, float]:
    rows = [(m, v[key]) for m, v in modes.items() if m in allowed and v.get(key)]
    return max(rows, key=lambda mv: mv[1]) if rows else (None, 0.0)


def _ratios(ours: dict, ref: dict) -> dict:
    """Speed ratios ours / reference (> 1: ours is faster): wall-clock throughput, and on a CPU the
    same ratios of items per CPU-second (``cpu_`` keys), which a shared machine disturbs less."""
    out: dict[str, Any] = {}
    for key, prefix in (("throughput", ""), ("cpu_throughput", "cpu_")):
        if ours.get("eager", {}).get(key) and ref.get("eager", {}).get(key):
            out[prefix + "eager"] = round(ours["eager"][key] / ref["eager"][key], 3)
        (om, ov), (rm, rv) = _best(ours, FP32_MODES, key), _best(ref, FP32_MODES, key)
        if om and rm:
            out.update({prefix + "best": round(ov / rv, 3), prefix + "best_ours_mode": om,
                        prefix + "best_ref_mode": rm})
        for mode in ("deploy", "bf16"):  # deploy: both re-parameterised and BN-folded
            if ours.get(mode, {}).get(key) and ref.get(mode, {}).get(key):
                out[prefix + mode] = round(ours[mode][key] / ref[mode][key], 3)
    return out


def _trust(result: dict, runners: list[_Runner], dev: torch.device) -> dict:
    if dev.type != "cpu":
        return {"ok": True, "why": "timed with device synchronisation"}
    cpu, wall = sum(r.cpu for r in runners), sum(r.wall for r in runners)
    ratio = cpu / wall if wall else 0.0
    threads = result["threads"]
    ok = ratio >= 0.9 * threads
    why = (f"CPU time / wall {ratio:.2f} with {threads} threads"
           + ("" if ok else " (< 0.9 x threads: the machine was shared; compare only within this run, "
                            "and prefer the items per CPU-second of a run with threads=1)"))
    return {"ok": ok, "cpu_wall": round(ratio, 2), "why": why}


# --- presentation ---------------------------------------------------------------------------------

_COLUMNS = (("mode", "mode"), ("latency_ms", "b1 ms"), ("throughput", "bN {unit}"),
            ("cpu_throughput", "per CPU-s"), ("gflops", "GFLOP/s"),
            ("peak_fraction", "of peak"), ("peak_mem_mib", "mem MiB"), ("cpu_wall", "cpu/wall"),
            ("max_rel_diff", "rel diff"), ("compile_s", "compile s"))


def _fmt(key: str, v) -> str:
    if v is None:
        return "-"
    if key == "peak_fraction":
        return f"{100 * v:.0f}%"
    if key == "max_rel_diff":
        return f"{v:.1e}"
    if isinstance(v, float):
        return f"{v:,.1f}" if v >= 10 else f"{v:.2f}"
    return str(v)


def _rows(label: str, modes: dict) -> list[list[str]]:
    rows = []
    for mode, v in modes.items():
        if "skipped" in v:
            rows.append([label, mode, f"skipped: {v['skipped']}"] + [""] * (len(_COLUMNS) - 2))
            continue
        rows.append([label, mode] + [_fmt(k, v.get(k)) for k, _ in _COLUMNS[1:]])
    return rows


def format_bench(result: dict, plain: bool = False) -> str:
    """A readable report of :func:`bench`'s result: a rich table, or plain text (``plain=True``)."""
    shape = "x".join(map(str, result["input_shape"]))
    out = f", output {'x'.join(map(str, result['output_size']))}" if "output_size" in result else ""
    bf16 = f", bf16 {result['gemm_peak_bf16_gflops']:,.0f}" if "gemm_peak_bf16_gflops" in result else ""
    head = [(f"{result['model']}: {result['params']:,} params, {result['macs'] / 1e9:.3f} GMACs per item "
             f"(input {shape}{out}), batch {result['batch']}, {result['rounds']} rounds"),
            (f"{result['device']}, {result['threads']} threads, torch {result['torch']}; fp32 GEMM peak "
             f"{result['gemm_peak_gflops']:,.0f} GFLOP/s{bf16}")]
    rows = _rows("ours", result["modes"])
    cmp = result.get("compare")
    if cmp:
        head.append(f"reference {cmp['name']}: {cmp['params']:,} params, {cmp['macs'] / 1e9:.3f} GMACs")
        rows += _rows(cmp["name"], cmp["modes"])
    tail = []
    if cmp and cmp.get("ratios"):
        r = cmp["ratios"]
        parts = []
        if "eager" in r:
            parts.append(f"eager {r['eager']:.2f}x")
        if "deploy" in r:
            parts.append(f"deploy {r['deploy']:.2f}x")
        if "best" in r:
            parts.append(f"best fp32 {r['best']:.2f}x ({r['best_ours_mode']} vs {r['best_ref_mode']})")
        if "bf16" in r:
            parts.append(f"bf16 {r['bf16']:.2f}x")
        tail.append("throughput ours / reference: " + ", ".join(parts))
        if "cpu_eager" in r:
            parts = [f"eager {r['cpu_eager']:.2f}x"]
            if "cpu_deploy" in r:
                parts.append(f"deploy {r['cpu_deploy']:.2f}x")
            if "cpu_best" in r:
                parts.append(f"best fp32 {r['cpu_best']:.2f}x "
                             f"({r['cpu_best_ours_mode']} vs {r['cpu_best_ref_mode']})")
            if "cpu_bf16" in r:
                parts.append(f"bf16 {r['cpu_bf16']:.2f}x")
            tail.append("per CPU-second: " + ", ".join(parts))
    tail += _deploy_notes(result)
    tail.append(f"memory: {result['memory_source']}")
    tail.append(("trusted: " if result["trust"]["ok"] else "NOT trusted: ") + result["trust"]["why"])
    cols = ["model"] + [c.format(unit=result["unit"]) for _, c in _COLUMNS]
    if not plain:
        try:
            return _rich_table(head, cols, rows, tail)
        except ImportError:
            pass
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = head + ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines + tail)


def _deploy_notes(result: dict) -> list[str]:
    """Footnotes saying how each deploy row was fused, and how many BatchNorms it kept."""
    notes = []
    for label, modes, how in (("ours", result["modes"], "convzoo.deploy (reparameterize() + conv+BN folding)"),
                              (result.get("compare", {}).get("name"), result.get("compare", {}).get("modes", {}),
                               None)):
        rows = [v for m, v in modes.items() if m.startswith("deploy") and "skipped" not in v]
        if rows:
            left = rows[0].get("bn_left")
            notes.append(f"deploy {'ours' if how else 'peer ' + label}: {how or rows[0].get('deploy', '?')}"
                         + (f"; BatchNorm left: {left}" if left is not None else ""))
    return notes


def environment() -> str:
    """One line naming the machine and software a benchmark ran on (for tables quoted elsewhere)."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"torch {torch.__version__}"]
    try:
        import timm

        versions.append(f"timm {timm.__version__}")
    except ImportError:
        pass
    if torch.cuda.is_available():
        cpu += f"; {torch.cuda.get_device_name()}"
    return f"{cpu}, {os.cpu_count()} logical cores, {', '.join(versions)}, {time.strftime('%Y-%m-%d')}"


def _mode_speed(row: dict) -> str:
    return f"{row['throughput']:.3g}" if row and "throughput" in row else "-"


def compare_markdown(result: dict) -> str:
    """One Markdown row of a ``compare`` result: | model vs peer, setup | eager | deploy (both fused) |
    best fp32 | bf16 | best fraction of the fp32 GEMM peak |; each ratio with both throughputs."""
    ours, cmp = result["modes"], result["compare"]
    ref, r = cmp["modes"], cmp.get("ratios", {})
    unit = result["unit"].split("/")[0]
    size = "x".join(map(str, result["input_shape"][1:]))
    trust = "trusted" if result["trust"]["ok"] else "not trusted"
    cpu_wall = result["trust"].get("cpu_wall")
    head = (f"{result['model']} vs {cmp['name']}, batch {result['batch']}, {size} px, {result['threads']} threads, "
            f"{trust}" + (f" (CPU/wall {cpu_wall:.2f})" if cpu_wall is not None else ""))

    def ratio(mode: str) -> str:  # ours / peer in one mode, with both throughputs
        if mode not in r:
            return "-"
        cpu = f"; {r['cpu_' + mode]:.2f}x per CPU-s" if f"cpu_{mode}" in r else ""
        return f"{r[mode]:.2f}x ({_mode_speed(ours.get(mode))} vs {_mode_speed(ref.get(mode))} {unit}/s{cpu})"

    best = "-"
    if "best" in r:
        om, rm = r["best_ours_mode"], r["best_ref_mode"]
        best = f"{r['best']:.2f}x (our {om} {_mode_speed(ours[om])} vs peer {rm} {_mode_speed(ref[rm])} {unit}/s)"
    fractions = [(v["peak_fraction"], m) for m, v in ours.items() if m in FP32_MODES and "peak_fraction" in v]
    ref_fractions = [(v["peak_fraction"], m) for m, v in ref.items() if m in FP32_MODES and "peak_fraction" in v]
    peak = "-"
    if fractions:
        f, m = max(fractions)
        peak = f"{100 * f:.0f}% ({m}) of the {result['gemm_peak_gflops']:.0f} GFLOP/s GEMM"
        if ref_fractions:
            f2, m2 = max(ref_fractions)
            peak += f"; peer {100 * f2:.0f}% ({m2})"
    return " | ".join(["", head, ratio("eager"), ratio("deploy"), best, ratio("bf16"), peak, ""]).strip()


COMPARE_HEADER = ("| model vs peer, setup | ours eager / peer eager | ours deploy / peer deploy (both re-parameterised "
                  "and BN-folded) | ours best / peer best (fp32) | ours bf16 / peer bf16 | best fraction of fp32 "
                  "GEMM peak |\n|---|---|---|---|---|---|")
DEPLOY_HEADER = ("| model (params eager -> deploy), setup | eager items/s (batch-1 ms) | deploy items/s (batch-1 ms) "
                 "| deploy speed-up (throughput / latency) |\n|---|---|---|---|")


def deploy_markdown(result: dict) -> str:
    """One Markdown row of a result with eager and deploy modes: throughput, latency and their speed-ups."""
    e, d = result["modes"]["eager"], result["modes"]["deploy"]
    size = "x".join(map(str, result["input_shape"][1:]))
    params = f"{result['params'] / 1e6:.2f}M -> {d.get('params', result['params']) / 1e6:.2f}M params"
    return (f"| {result['model']} ({params}), batch {result['batch']}, {size} px, {result['threads']} threads | "
            f"{e['throughput']:.3g} ({e['latency_ms']:.3g}) | {d['throughput']:.3g} ({d['latency_ms']:.3g}) | "
            f"{d['throughput'] / e['throughput']:.2f}x / {e['latency_ms'] / d['latency_ms']:.2f}x |")


def _rich_table(head: list[str], cols: list[str], rows: list[list[str]], tail: list[str]) -> str:
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table(title="\n".join(head), title_justify="left", caption="\n".join(tail),
                  caption_justify="left")
    for i, c in enumerate(cols):
        table.add_column(c, justify="left" if i < 2 else "right", no_wrap=i < 2)
    for r in rows:
        table.add_row(*r)
    buf = io.StringIO()
    Console(file=buf, width=150, color_system=None, force_terminal=False).print(table)
    return buf.getvalue().rstrip()
