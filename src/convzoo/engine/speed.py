"""Training speed: the engine's step against a plain PyTorch loop, in the same run (``bench --train``).

Three ways to take the same optimizer steps on the same model, batch and optimizer (SGD, momentum
0.9), measured interleaved round by round so that machine load affects them alike:

* ``plain``: ``loss = F.cross_entropy(model(x), y); loss.backward(); opt.step(); opt.zero_grad()`` --
  the loop a person writes by hand, fp32, eager;
* ``engine``: the engine's own batch step (:func:`convzoo.engine.fit._train_batch`: the method
  wrapped by Fabric, its ``training_step``, ``fabric.backward``, the optimizer step and its hooks),
  on the recipe defaults (fp32);
* ``engine_fast``: the same with ``fast: true`` (channels_last, bf16 autocast, the model compiled).

Reported: items/s of each (median over rounds of ``steps`` timed steps after ``warmup`` steps),
the ratios to ``plain``, and the CPU-time / wall ratio (whether the timing could use the cores).
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from convzoo.errors import ConvzooError

MODES = ("plain", "engine", "engine_fast")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _plain(model, batch, lr: float):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    x, y = batch

    def step():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _engine(model, card, batch, lr: float, fast: bool, device: torch.device):
    from lightning.fabric import Fabric

    from convzoo.engine.fit import _Run, _train_batch
    from convzoo.engine.optim import build_optimizer
    from convzoo.engine.recipe import validate_recipe
    from convzoo.methods import build_method
    from convzoo.tasks import build_task

    cfg = validate_recipe({"name": "bench", "model": {"name": card.name}, "data": {"name": "none"}, "fast": fast,
                           "optimizer": {"name": "sgd", "lr": lr, "kwargs": {"momentum": 0.9}, "decay_1d": True}})
    fabric = Fabric(accelerator=device.type, devices=1, precision="bf16-mixed" if fast else "32-true")
    task = build_task(card.task)
    method = build_method("supervised", model, task, None)
    if fast:
        model.to(memory_format=torch.channels_last)
        model.compile()
    opt = build_optimizer(method, cfg["optimizer"])
    wrapped, fopt = fabric.setup(method, opt)
    run = _Run(cfg, fabric, task, None, method, wrapped, [fopt], [], None, None, None, torch.Generator(), None,
               None, None)
    wrapped.train()
    batch = fabric.to_device(batch)
    return lambda: _train_batch(run, 0, batch)


def train_speed(model: str, *, batch: int = 32, size=None, steps: int = 5, warmup: int = 3, rounds: int = 3,
                modes=MODES, lr: float = 0.01, threads: int | None = None, device: str | None = None,
                seed: int = 0) -> dict[str, Any]:
    """Items/s of a training step of the registered ``model`` in each of ``modes``; see the module docstring."""
    from convzoo.registry import create_model, get_card
    from convzoo.tasks import build_task

    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ConvzooError(f"unknown training bench mode '{bad[0]}'; expected some of {', '.join(MODES)}")
    if batch < 1 or steps < 1 or rounds < 1:
        raise ConvzooError("bench --train needs batch, steps and rounds >= 1")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        card = get_card(model)
        torch.manual_seed(seed)
        base = create_model(model).to(dev)
        g = torch.Generator().manual_seed(seed)
        data = build_task(card.task).example_batch(card, batch, size, g)
        steps_fns = {}
        for mode in modes:
            net = copy.deepcopy(base)
            if mode == "plain":
                steps_fns[mode] = _plain(net, tuple(t.to(dev) for t in data), lr)
            else:
                steps_fns[mode] = _engine(net, card, data, lr, mode == "engine_fast", dev)
        for fn in steps_fns.values():  # warm-up (compilation happens here)
            for _ in range(warmup):
                fn()
        times: dict[str, list[float]] = {m: [] for m in modes}
        cpu = wall = 0.0
        for _ in range(rounds):
            for mode, fn in steps_fns.items():
                _sync(dev)
                c, t = time.process_time(), time.perf_counter()
                for _ in range(steps):
                    fn()
                _sync(dev)
                dt = time.perf_counter() - t
                cpu, wall = cpu + time.process_time() - c, wall + dt
                times[mode].append(dt / steps)
        result: dict[str, Any] = {"model": model, "device": str(dev), "batch": batch, "steps": steps,
                                  "rounds": rounds, "threads": torch.get_num_threads(),
                                  "cpu_per_wall": round(cpu / wall, 2) if wall else None, "modes": {}}
        for mode, ts in times.items():
            med = statistics.median(ts)
            result["modes"][mode] = {"step_ms": round(med * 1e3, 2), "items_per_s": round(batch / med, 2)}
        if "plain" in times:
            p = result["modes"]["plain"]["items_per_s"]
            for mode in modes:
                result["modes"][mode]["vs_plain"] = round(result["modes"][mode]["items_per_s"] / p, 3)
        return result
    finally:
        torch.set_num_threads(old_threads)


def format_train_speed(result: dict) -> str:
    lines = [(f"training step of {result['model']} on {result['device']}, batch {result['batch']}, "
              f"{result['threads']} threads, CPU/wall {result['cpu_per_wall']}"),
             f"{'mode':12s} {'step ms':>9s} {'items/s':>9s} {'vs plain':>9s}"]
    for mode, r in result["modes"].items():
        lines.append(f"{mode:12s} {r['step_ms']:9.2f} {r['items_per_s']:9.2f} {r.get('vs_plain', float('nan')):9.3f}")
    return "\n".join(lines)
