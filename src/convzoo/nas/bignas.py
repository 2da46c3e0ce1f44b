"""Selecting children of a trained BigNAS supernet (Yu et al., "BigNAS: Scaling Up Neural Architecture
Search with Big Single-Stage Models", ECCV 2020, arXiv 2003.11142, Sec. 3.1-3.2; seed paper 56).

* :func:`calibrate_bn` -- "batch norm calibration" (Sec. 3.1): reset the BN running statistics and
  recompute them for one child as the cumulative average over ``num_batches`` training batches (no
  weight changes). The supernet's other children lose their statistics: calibrate the child you use.
* :func:`evaluate_child` -- calibrate, then top-1 accuracy of the child on held-out data.
* :func:`measure_latency` -- median wall time of the extracted, BN-folded static child (batch 1 by
  default) on this machine.
* :func:`coarse_to_fine` -- the architecture selection of Sec. 3.2: a coarse grid of skeletons
  (resolution x depth level x width level, every stage at the same relative position in its choices,
  largest kernel and expansion) under a MACs target, then random mutations of the best skeleton's
  per-stage kernel size, expansion and width, keeping the best child under the target.
* :func:`search` -- multi-objective search with optuna's NSGA-II sampler over whole child
  configurations: accuracy (after calibration) against MACs or latency measured here. Writes
  ``trials.csv``, ``pareto.md`` and ``pareto.png`` into a folder. (Beyond the paper, which selects one
  child per FLOPs target; a Pareto front is what one wants when the target is not fixed.)

MACs are :func:`convzoo.models.bignas.count_child` (closed form; a test checks it against
``FlopCounterMode``). Accuracies are fractions in [0, 1]. Command line::

    python -m convzoo.nas.bignas search RUN_DIR --trials 40 --objective macs --out DIR
    python -m convzoo.nas.bignas select RUN_DIR --macs 2.5e6
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from convzoo.errors import ConvzooError
from convzoo.layers.elastic import ElasticBatchNorm2d
from convzoo.models.bignas import BigNASSupernet, ChildConfig, count_child, resize_to

__all__ = ["SearchResult", "calibrate_bn", "coarse_to_fine", "evaluate_child", "load_run", "measure_latency",
           "search"]


# --- calibration and evaluation ---------------------------------------------------------------------
def _device(net: torch.nn.Module) -> torch.device:
    return next(net.parameters()).device


@torch.no_grad()
def calibrate_bn(net: BigNASSupernet, cfg: ChildConfig, batches: Iterable, num_batches: int | None = None):
    """Recompute every BN's running statistics for child ``cfg``: the cumulative average of the batch
    means and (unbiased) variances over the first ``num_batches`` batches (all when None)."""
    net.set_active(cfg)
    bns = [m for m in net.modules() if isinstance(m, ElasticBatchNorm2d)]
    saved = [(m.momentum, m.track) for m in bns]
    was_training, regularize = net.training, net.regularize
    for m in bns:
        m.reset_running_stats()
        m.momentum, m.track = None, True
    net.train()
    net.regularize = False
    device, seen = _device(net), 0
    for i, batch in enumerate(batches):
        if num_batches is not None and i >= num_batches:
            break
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        net(resize_to(x.to(device), cfg.resolution))
        seen += 1
    if seen == 0:
        raise ConvzooError("BN calibration got no batches")
    for m, (momentum, track) in zip(bns, saved):
        m.momentum, m.track = momentum, track
    net.train(was_training)
    net.regularize = regularize
    return net


@torch.no_grad()
def accuracy(net: BigNASSupernet, cfg: ChildConfig, loader: Iterable) -> float:
    """Top-1 accuracy of child ``cfg`` (eval mode, inputs resized to its resolution)."""
    net.set_active(cfg)
    was_training = net.training
    net.eval()
    device, correct, total = _device(net), 0, 0
    for x, y in loader:
        pred = net(resize_to(x.to(device), cfg.resolution)).argmax(-1).cpu()
        correct += int((pred == y).sum())
        total += len(y)
    net.train(was_training)
    return correct / max(total, 1)


def evaluate_child(net: BigNASSupernet, cfg: ChildConfig, calib: Iterable, loader: Iterable,
                   num_calib_batches: int | None = None) -> float:
    """Calibrate BN on ``calib``, then the top-1 accuracy on ``loader``."""
    calibrate_bn(net, cfg, calib, num_calib_batches)
    return accuracy(net, cfg, loader)


def child_macs(net: BigNASSupernet, cfg: ChildConfig) -> int:
    return count_child(cfg, net.space, net.num_classes, net.in_chans)[1]


@torch.no_grad()
def measure_latency(net: BigNASSupernet, cfg: ChildConfig, batch_size: int = 1, repeats: int = 20,
                    warmup: int = 3) -> float:
    """Median seconds of one forward of the extracted child (BN folded, eval mode) on the net's device."""
    from convzoo.layers.fuse import deploy

    child = deploy(net.extract(cfg)).eval()
    x = torch.randn(batch_size, net.in_chans, cfg.resolution, cfg.resolution, device=_device(net))
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    for i in range(warmup + repeats):
        sync()
        t0 = time.perf_counter()
        child(x)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- coarse-to-fine selection (Sec. 3.2) --------------------------------------------------------------
def _level(choices: tuple, t: float):
    return choices[round(t * (len(choices) - 1))]


def skeleton(net: BigNASSupernet, resolution: int, depth_level: float, width_level: float) -> ChildConfig:
    """Every stage's depth and width at the same relative position of its choices; largest kernel/expansion."""
    sp = net.space
    return ChildConfig(resolution, _level(sp.stem, width_level), tuple(_level(s.widths, width_level) for s in sp.stages),
                       tuple(_level(s.depths, depth_level) for s in sp.stages), tuple(max(s.kernels) for s in sp.stages),
                       tuple(max(s.expands) for s in sp.stages), _level(sp.head, width_level))


def mutate(net: BigNASSupernet, cfg: ChildConfig, rng: random.Random, prob: float = 0.5) -> ChildConfig:
    """Re-draw each stage's kernel size, expansion and width with probability ``prob`` each."""
    sp = net.space

    def pick(cur, choices):
        return rng.choice(choices) if rng.random() < prob else cur

    return replace(cfg, kernels=tuple(pick(k, s.kernels) for k, s in zip(cfg.kernels, sp.stages)),
                   expands=tuple(pick(e, s.expands) for e, s in zip(cfg.expands, sp.stages)),
                   widths=tuple(pick(w, s.widths) for w, s in zip(cfg.widths, sp.stages)))


@dataclass
class Selection:
    config: ChildConfig
    acc: float
    macs: int
    history: list[dict] = field(default_factory=list)  # every evaluated child: stage, config, acc, macs


def coarse_to_fine(net: BigNASSupernet, calib, loader, max_macs: float, levels=(0.0, 0.5, 1.0),
                   n_mutations: int = 20, seed: int = 0, num_calib_batches: int | None = None) -> Selection:
    """The best child under ``max_macs``: best coarse skeleton, then its best mutation (Sec. 3.2)."""
    rng, history = random.Random(seed), []

    def consider(stage: str, cfg: ChildConfig):
        macs = child_macs(net, cfg)
        if macs > max_macs:
            return None
        acc = evaluate_child(net, cfg, calib, loader, num_calib_batches)
        history.append({"stage": stage, "config": cfg.to_dict(), "acc": acc, "macs": macs})
        return acc, macs, cfg

    grid = {skeleton(net, r, d, w) for r in net.space.resolutions for d in levels for w in levels}
    coarse = [c for c in (consider("coarse", cfg) for cfg in sorted(grid, key=repr)) if c is not None]
    if not coarse:
        raise ConvzooError(f"no skeleton of the space fits {max_macs:.4g} MACs; the smallest child has "
                           f"{child_macs(net, net.smallest()):.4g}")
    best = max(coarse, key=lambda c: c[0])
    for _ in range(n_mutations):
        found = consider("fine", mutate(net, best[2], rng))
        if found is not None and found[0] > best[0]:
            best = found
    return Selection(best[2], best[0], best[1], history)


# --- multi-objective search (optuna NSGA-II) -------------------------------------------------------------
@dataclass
class SearchResult:
    trials: list[dict]  # every trial: config, acc, macs, params, latency_ms, pareto
    front: list[dict]  # the Pareto-optimal trials, cheapest first
    out_dir: Path


_KEY = {"macs": "macs", "latency": "latency_ms"}  # objective -> its column in the trial records


def suggest(trial, net: BigNASSupernet) -> ChildConfig:
    sp = net.space
    cat = trial.suggest_categorical
    return ChildConfig(cat("resolution", list(sp.resolutions)), cat("stem", list(sp.stem)),
                       tuple(cat(f"width{i}", list(s.widths)) for i, s in enumerate(sp.stages)),
                       tuple(cat(f"depth{i}", list(s.depths)) for i, s in enumerate(sp.stages)),
                       tuple(cat(f"kernel{i}", list(s.kernels)) for i, s in enumerate(sp.stages)),
                       tuple(cat(f"expand{i}", list(s.expands)) for i, s in enumerate(sp.stages)),
                       cat("head", list(sp.head)))


def _params_of(cfg: ChildConfig) -> dict:
    d = {"resolution": cfg.resolution, "stem": cfg.stem, "head": cfg.head}
    for i in range(len(cfg.widths)):
        d.update({f"width{i}": cfg.widths[i], f"depth{i}": cfg.depths[i], f"kernel{i}": cfg.kernels[i],
                  f"expand{i}": cfg.expands[i]})
    return d


def search(run_or_supernet, data=None, n_trials: int = 40, objectives=("acc", "macs"), out_dir=None,
           seed: int = 0, batch_size: int = 128, num_calib_batches: int | None = None,
           population_size: int | None = None) -> SearchResult:
    """NSGA-II over child configurations of a trained supernet; writes trials.csv, pareto.md, pareto.png.

    ``run_or_supernet``: a run folder of the ``bignas`` method or a :class:`BigNASSupernet`. ``data``:
    None (the run's recipe data: BN calibration on its train split, accuracy on its val split) or a pair
    ``(calibration dataset, evaluation dataset)`` of (image, label) items. ``objectives``: "acc" and one
    or both of "macs", "latency". The largest and smallest children are evaluated first.
    """
    import optuna

    objectives = tuple(objectives)
    costs = [o for o in objectives if o != "acc"]
    if "acc" not in objectives or not costs or set(costs) - {"macs", "latency"}:
        raise ConvzooError(f"objectives are 'acc' and 'macs' and/or 'latency', got {objectives}")
    net, calib_ds, eval_ds, run_dir = _resolve(run_or_supernet, data)
    out = Path(out_dir) if out_dir is not None else (run_dir / "bignas_search" if run_dir else Path("bignas_search"))
    out.mkdir(parents=True, exist_ok=True)
    loader = torch.utils.data.DataLoader(eval_ds, batch_size=batch_size)
    records: dict[int, dict] = {}

    def calib():  # the same shuffled (and augmented) batches for every child
        torch.manual_seed(seed)
        return torch.utils.data.DataLoader(calib_ds, batch_size=batch_size, shuffle=True,
                                           generator=torch.Generator().manual_seed(seed))

    def objective(trial):
        cfg = suggest(trial, net)
        acc = evaluate_child(net, cfg, calib(), loader, num_calib_batches)
        params, macs = count_child(cfg, net.space, net.num_classes, net.in_chans)
        lat = measure_latency(net, cfg) * 1e3 if "latency" in costs else None
        records[trial.number] = {"trial": trial.number, "acc": acc, "macs": macs, "params": params,
                                 "latency_ms": lat, "config": cfg.to_dict()}
        return [acc] + [macs if c == "macs" else lat for c in costs]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size or max(4, min(50, n_trials // 4)))
    study = optuna.create_study(directions=["maximize"] + ["minimize"] * len(costs), sampler=sampler)
    for anchor in (net.largest(), net.smallest()):
        study.enqueue_trial(_params_of(anchor))
    study.optimize(objective, n_trials=n_trials)
    front_ids = {t.number for t in study.best_trials}
    trials = [dict(records[n], pareto=n in front_ids) for n in sorted(records)]
    front = sorted((t for t in trials if t["pareto"]), key=lambda t: (t[_KEY[costs[0]]], -t["acc"]))
    _write(out, trials, front, costs)
    net.set_active(net.largest())
    return SearchResult(trials, front, out)


def _resolve(run_or_supernet, data):
    if isinstance(run_or_supernet, BigNASSupernet):
        if data is None:
            raise ConvzooError("search of a supernet object needs data=(calibration dataset, evaluation dataset)")
        return run_or_supernet, data[0], data[1], None
    net, cfg, run_dir = load_run(run_or_supernet)
    if data is None:
        from convzoo.data import build_dataset

        d = cfg["data"]
        data = tuple(build_dataset(d["name"], split, root=d.get("root"), **d.get("kwargs", {}))
                     for split in (d.get("train_split", "train"), d.get("eval_split") or "val"))
    return net, data[0], data[1], run_dir


def load_run(run_dir, weights: str = "last.safetensors"):
    """(supernet with the run's weights, the run's recipe, run folder) of a ``bignas`` training run."""
    import yaml

    from convzoo.registry import create_model
    from convzoo.weights import load_weights

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / weights).is_file():
        raise ConvzooError(f"{run_dir} is not a finished run folder (config.yaml and {weights} expected)")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    info = yaml.safe_load((run_dir / "data_info.yaml").read_text()) if (run_dir / "data_info.yaml").is_file() else {}
    kwargs = dict(cfg["model"].get("kwargs") or {})
    kwargs.setdefault("num_classes", info.get("num_classes") or 1000)
    kwargs.setdefault("in_chans", info.get("in_chans") or 3)
    net = create_model(cfg["model"]["name"], **kwargs)
    if not isinstance(net, BigNASSupernet):
        raise ConvzooError(f"{run_dir} trained {cfg['model']['name']}, not a BigNAS supernet")
    load_weights(net, run_dir / weights)
    return net, cfg, run_dir


def _write(out: Path, trials: list[dict], front: list[dict], costs: list[str]) -> None:
    with open(out / "trials.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trial", "acc", "macs", "params", "latency_ms", "pareto", "config"])
        for t in trials:
            w.writerow([t["trial"], f"{t['acc']:.4f}", t["macs"], t["params"],
                        "" if t["latency_ms"] is None else f"{t['latency_ms']:.3f}", int(t["pareto"]),
                        json.dumps(t["config"])])
    lines = ["| trial | top-1 % | MMACs | params | latency ms | resolution | depths | widths | kernels | expands |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for t in front:
        c = t["config"]
        lat = "" if t["latency_ms"] is None else f"{t['latency_ms']:.2f}"
        lines.append(f"| {t['trial']} | {100 * t['acc']:.2f} | {t['macs'] / 1e6:.3f} | {t['params']:,} | {lat} | "
                     f"{c['resolution']} | {c['depths']} | {c['widths']} | {c['kernels']} | {c['expands']} |")
    (out / "pareto.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(costs), figsize=(5.5 * len(costs), 4), squeeze=False)
    for ax, c in zip(axes[0], costs):
        key, label = _KEY[c], ("MMACs" if c == "macs" else "latency (ms, batch 1, this machine)")
        scale = 1e6 if c == "macs" else 1.0
        ax.scatter([t[key] / scale for t in trials], [100 * t["acc"] for t in trials], s=12, c="0.6", label="trials")
        pts = sorted((t[key] / scale, 100 * t["acc"]) for t in front)
        ax.plot(*zip(*pts), "o-", c="C3", label="Pareto front")
        ax.set_xlabel(label)
        ax.set_ylabel("top-1 % (BN calibrated)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=100)
    plt.close(fig)


# --- command line -------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m convzoo.nas.bignas", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("search", help="NSGA-II Pareto search over children of a trained supernet")
    s.add_argument("run")
    s.add_argument("--trials", type=int, default=40)
    s.add_argument("--objective", choices=("macs", "latency", "both"), default="macs")
    s.add_argument("--out", default=None)
    s.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("select", help="coarse-to-fine selection of one child under a MACs target")
    c.add_argument("run")
    c.add_argument("--macs", type=float, required=True)
    c.add_argument("--mutations", type=int, default=20)
    c.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        if a.cmd == "search":
            costs = {"macs": ("macs",), "latency": ("latency",), "both": ("macs", "latency")}[a.objective]
            res = search(a.run, n_trials=a.trials, objectives=("acc", *costs), out_dir=a.out, seed=a.seed)
            print((res.out_dir / "pareto.md").read_text())
        else:
            net, calib_ds, eval_ds, _ = _resolve(a.run, None)
            dl = torch.utils.data.DataLoader
            sel = coarse_to_fine(net, dl(calib_ds, batch_size=128), dl(eval_ds, batch_size=128), a.macs,
                                 n_mutations=a.mutations, seed=a.seed)
            print(json.dumps({"config": sel.config.to_dict(), "acc": sel.acc, "macs": sel.macs}))
    except ConvzooError as e:
        print(f"error: {e}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
