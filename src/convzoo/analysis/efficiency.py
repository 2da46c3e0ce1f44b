"""Energy and GPU-computation efficiency of a backbone, measured side by side (VoVNet, seed paper 53).

Lee, Hwang, Lee, Bae, Park, "An Energy and GPU-Computation Efficient Backbone Network for Real-Time
Object Detection", CVPR-W 2019, arXiv 1904.09730. The paper argues (Sec. 3.1 "Rethinking dense
connection") that FLOPs and parameters do not predict speed or energy: DenseNet's dense aggregation
makes each layer read a growing concatenation, so its *memory access cost*

    MAC = h w (c_i + c_o) + k^2 c_i c_o                                   (Sec. 3.1, after ShuffleNetV2)

for a k x k convolution of c_i input and c_o output channels on an h x w map is high for the
multiply-adds it does, and its *GPU-computation efficiency* (FLOPs / inference time, Sec. 3.1 and
the "Computation efficiency (GFLOPs/s)" column of its detection tables) is low. VoVNet's one-shot
aggregation keeps every layer's input width constant. This module measures, for any set of models:

- ``memory_access``: the MAC above summed over every convolution (and the linear classifier as a 1 x 1
  conv on a 1 x 1 map), in elements; with a stride the map terms are the input and output maps,
  h_i w_i c_i + h_o w_o c_o + k_h k_w c_i c_o / groups, which is the paper's formula when h_i = h_o;
- ``macs``: multiply-accumulates of a batch-1 forward (``FlopCounterMode``, FLOPs = 2 x MACs), and
  ``memory_access / macs``, the paper's argument in one number (lower = less traffic per unit of work);
- ``peak_activation_mib``: the largest total size of tensors alive at once during a batch-1
  inference forward, counted exactly by following every tensor the forward creates until Python frees
  it (a ``TorchDispatchMode``; weights and the input excluded; deterministic, unlike process RSS);
- ``traffic_mib``: bytes every operator of the eager forward reads and writes (all tensor arguments and
  results, weights included), the memory traffic of unfused execution (BN, ReLU, concat included);
- from :func:`convzoo.bench.bench` (eager mode, fp32, this machine): batch-1 latency, batch-N
  throughput, items per CPU-second, achieved GFLOP/s (= the paper's computation efficiency; also per
  CPU-second, ``gflops_cpu``, which other processes on a shared machine disturb least) and the peak
  resident memory of one batch-N forward.

Energy per image needs a power meter (the paper reads the GPU's); on a CPU without one it is not
measured. Run ``python -m convzoo.analysis.efficiency --help``; the default set is the paper's:
VoVNet-39/57 against DenseNet-121/161/201 and ResNet-50/101 (torchvision, random weights).
"""

from __future__ import annotations

import argparse
import json
import weakref
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from convzoo.errors import ConvzooError

__all__ = ["DEFAULT_MODELS", "build", "conv_memory_access", "efficiency", "format_table", "main",
           "memory_access_cost", "memory_profile"]

# the paper's comparison (ImageNet Table of the official README; Sec. 4 detection backbones)
DEFAULT_MODELS = ("vovnet39", "vovnet57", "torchvision:densenet121", "torchvision:densenet161",
                  "torchvision:densenet201", "torchvision:resnet50", "torchvision:resnet101")


def conv_memory_access(h_in: int, w_in: int, c_in: int, h_out: int, w_out: int, c_out: int,
                       kernel: int | tuple[int, int], groups: int = 1) -> int:
    """Memory access cost of one convolution in elements: read the input map and the weights, write
    the output map (Sec. 3.1: hw(c_i + c_o) + k^2 c_i c_o when the map size does not change)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return h_in * w_in * c_in + h_out * w_out * c_out + kh * kw * c_in * c_out // groups


def memory_access_cost(model: nn.Module, x: torch.Tensor) -> dict:
    """Sum of :func:`conv_memory_access` over every Conv2d and Linear of one forward on ``x`` (batch 1).

    Works on the meta device (only shapes are needed). Returns ``memory_access`` (elements),
    ``conv_macs`` (multiply-adds of those layers) and ``layers`` (how many were counted).
    """
    if x.shape[0] != 1:
        raise ConvzooError(f"memory_access_cost counts one image: pass a batch of 1, got {x.shape[0]}")
    total = {"memory_access": 0, "conv_macs": 0, "layers": 0}

    def hook(m: nn.Module, inputs, out) -> None:
        i = inputs[0]
        if isinstance(m, nn.Conv2d):
            (_, ci, hi, wi), (_, co, ho, wo) = i.shape, out.shape
            kernel, groups = m.kernel_size, m.groups
        else:  # Linear: a 1x1 conv on a 1x1 map
            ci, co, hi, wi, ho, wo, kernel, groups = m.in_features, m.out_features, 1, 1, 1, 1, 1, 1
        total["memory_access"] += conv_memory_access(hi, wi, ci, ho, wo, co, kernel, groups)
        total["conv_macs"] += ho * wo * (kernel if isinstance(kernel, int) else kernel[0] * kernel[1]) \
            * ci * co // groups
        total["layers"] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


class _LiveTensors(TorchDispatchMode):
    """Follows every storage an operator creates until it is freed: peak live bytes and traffic."""

    def __init__(self, exclude: Sequence[torch.Tensor]):
        super().__init__()
        self.known = {t.untyped_storage().data_ptr() for t in exclude}  # weights, input: not activations
        self.live = self.peak = self.traffic = 0
        self.seen: set[int] = set()

    def _freed(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self.seen.discard(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        ins = [t for t in tree_flatten((args, kwargs or {}))[0] if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        self.traffic += sum(t.numel() * t.element_size() for t in ins + outs)
        for t in outs:
            storage = t.untyped_storage()
            key, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or key in self.seen or key in self.known:
                continue  # in-place results and views share a storage already counted
            self.seen.add(key)
            self.live += nbytes
            weakref.finalize(storage, self._freed, key, nbytes)
        self.peak = max(self.peak, self.live)
        return out


def memory_profile(model: nn.Module, x: torch.Tensor) -> dict:
    """Peak activation memory and eager memory traffic (MiB) of one inference forward on ``x``."""
    exclude = [x, *model.parameters(), *model.buffers()]
    with torch.inference_mode(), _LiveTensors(exclude) as tracker:
        out = model(x)
    del out
    return {"peak_activation_mib": tracker.peak / 2 ** 20, "traffic_mib": tracker.traffic / 2 ** 20}


def build(name: str) -> nn.Module:
    """A registered convzoo name, or ``torchvision:NAME`` (no weights), in eval mode."""
    kind, _, tv_name = name.partition(":")
    if tv_name and kind == "torchvision":
        import torchvision

        try:
            return torchvision.models.get_model(tv_name, weights=None).eval()
        except ValueError:
            raise ConvzooError(f"unknown torchvision model '{tv_name}'") from None
    if tv_name:
        raise ConvzooError(f"efficiency models are convzoo names or torchvision:NAME, got {name!r}")
    from convzoo.registry import create_model

    return create_model(name).eval()


def efficiency(models: Sequence[str] = DEFAULT_MODELS, size: int = 224, batch: int = 4, rounds: int = 3,
               threads: int | None = 1, timed: bool = True) -> list[dict]:
    """One row per model: counts (exact) and, if ``timed``, the eager measurements of ``convzoo.bench``."""
    from convzoo.bench import bench
    from convzoo.registry import count_params

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    rows = []
    try:
        for name in models:
            torch.manual_seed(0)
            model = build(name)
            x = torch.randn(1, 3, size, size)
            mac = memory_access_cost(model, x)
            row = {"model": name, "size": size, "params": count_params(model), **mac, **memory_profile(model, x)}
            if timed:
                b = bench(model, batch=batch, size=size, modes=("eager",), rounds=rounds, threads=threads)
                row["macs"], eager = b["macs"], b["modes"]["eager"]
                row.update({k: eager[k] for k in ("latency_ms", "throughput", "cpu_throughput", "gflops",
                                                   "peak_mem_mib")})
                row.update(batch=batch, threads=b["threads"], trust=b["trust"]["ok"])
                if eager.get("cpu_throughput"):  # GFLOP per CPU-second: the least load-disturbed efficiency
                    row["gflops_cpu"] = 2 * row["macs"] * eager["cpu_throughput"] / 1e9
            else:
                from convzoo.bench import count_macs

                row["macs"] = count_macs(model, x)
            row["access_per_mac"] = row["memory_access"] / row["macs"]
            rows.append(row)
    finally:
        torch.set_num_threads(old)
    return rows


_COLUMNS = (("model", "model", "{}"), ("params", "params (M)", "{:.2f}", 1e-6), ("macs", "GMACs", "{:.3f}", 1e-9),
            ("memory_access", "MAC (M elem.)", "{:.1f}", 1e-6), ("access_per_mac", "MAC / MACs", "{:.4f}"),
            ("peak_activation_mib", "peak act. (MiB)", "{:.1f}"), ("traffic_mib", "eager traffic (MiB)", "{:.0f}"),
            ("latency_ms", "b1 latency (ms)", "{:.1f}"), ("throughput", "img/s", "{:.2f}"),
            ("cpu_throughput", "img/CPU-s", "{:.2f}"), ("gflops", "GFLOP/s", "{:.1f}"),
            ("gflops_cpu", "GFLOP/CPU-s", "{:.1f}"),
            ("peak_mem_mib", "peak RSS (MiB)", "{:.0f}"))


def format_table(rows: Sequence[dict]) -> str:
    """A Markdown table of :func:`efficiency` rows (columns that no row has are left out)."""
    cols = [c for c in _COLUMNS if any(c[0] in r for r in rows)]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for key, _, fmt, *scale in cols:
            v = r.get(key)
            cells.append("-" if v is None else fmt.format(v * scale[0] if scale else v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m convzoo.analysis.efficiency",
                                description="VoVNet's efficiency measures (memory access cost, GFLOP/s, latency, "
                                            "peak memory) side by side, on this machine.")
    p.add_argument("models", nargs="*", default=list(DEFAULT_MODELS),
                   help="convzoo names or torchvision:NAME (default: the paper's VoVNet/DenseNet/ResNet set)")
    p.add_argument("--size", type=int, default=224, help="input side in pixels (default 224)")
    p.add_argument("--batch", type=int, default=4, help="batch of the throughput measurement (default 4)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds, median reported (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: least disturbed by load)")
    p.add_argument("--counts-only", action="store_true", help="exact counts only, no timing")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    a = p.parse_args(argv)
    try:
        rows = efficiency(a.models, a.size, a.batch, a.rounds, a.threads, timed=not a.counts_only)
    except ConvzooError as e:
        p.exit(2, f"error: {e}\n")
    print(json.dumps(rows, indent=1) if a.json else format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
