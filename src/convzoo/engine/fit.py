"""Training on Lightning Fabric: one loop for CPU, one GPU, many GPUs and many nodes.

``train(recipe)`` builds data, model and task from a recipe (see :mod:`convzoo.engine.recipe`),
trains for ``epochs``, validates after every epoch, checkpoints every epoch (see
:mod:`convzoo.engine.checkpoint`), evaluates the final weights on the test split and writes the run
folder's report. ``resume=RUN_DIR`` continues a killed run exactly where its last checkpoint left it.

Distributed training (``devices * num_nodes > 1``) uses Fabric's ``ddp`` strategy (gloo on CPU,
NCCL on GPU). ``batch_size`` is the *global* batch: each of the ``W`` processes takes
``batch_size / W`` items per step from a ``DistributedSampler`` shuffled with ``seed + epoch``, and
DDP averages the gradients, so the update equals the single-process one on the same global batch
(up to float summation order). BatchNorm statistics are per process; on GPUs BatchNorm layers are
converted to ``SyncBatchNorm`` so that they, too, see the global batch (SyncBatchNorm needs GPUs,
so with processes on CPU BatchNorm models differ slightly from one process).

Fabric's ``ddp`` launcher starts the other local processes by re-running the command line
(``convzoo train ...`` or ``python -m convzoo.engine train ...``), so calling ``train(devices=2)``
from a script works. From an interactive session or a test runner, which cannot be re-run, the
processes are forked instead (``ddp_fork``). Multi-node: run the same command on every node with
the rendezvous in the environment, e.g. on node 0 and node 1 of two 8-GPU nodes::

    MASTER_ADDR=node0 MASTER_PORT=29500 NODE_RANK=0 convzoo train RECIPE --devices 8 --num-nodes 2
    MASTER_ADDR=node0 MASTER_PORT=29500 NODE_RANK=1 convzoo train RECIPE --devices 8 --num-nodes 2

(``torchrun`` and SLURM ``srun`` environments are detected by Fabric as well). Global rank 0 writes
the run folder; to resume on several nodes, the run folder must be readable on every node.

What is trained is a :class:`~convzoo.methods.Method` (the recipe's ``method:``, default
``supervised``): the engine optimises, wraps, checkpoints and resumes the whole method (model, heads,
teachers), calls ``method(batch)`` for a training step (its ``training_step``: ``"loss"`` and named
parts, logged as ``train_<part>``), and keeps ``method.export_model()`` as the run's weights.
Model hooks kept by the supervised method: ``model.regularization_loss(epoch) -> Tensor | None`` joins
the loss (DCLS, paper 39); ``post_optimizer_step()`` on any submodule runs after every optimizer step.

The loop, in reading order: :func:`train` -> :func:`_fit` -> :func:`_setup` (build, wrap, restore),
:func:`_train_epoch` (-> :func:`_optimizer_step`), :func:`_validate`, :func:`_end_epoch`
(schedule, best, checkpoint), :func:`_finish` (test split, report). Gradient accumulation
(``accumulate: N``) steps the optimizer every N batches (DDP synchronises only then); schedules step
per epoch or per optimizer step (``schedule.interval``); ``batch_transform`` (MixUp / CutMix) applies
to training batches; ``fast: true`` trains channels_last, under bf16 autocast, with the model compiled.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from convzoo.engine.build import (
    build_batch_transform,
    build_data,
    build_method,
    build_task_for,
    eval_loader,
    train_loader,
)
from convzoo.engine.checkpoint import (
    BEST,
    CONFIG,
    LAST,
    STATE,
    STATE_VERSION,
    load_state,
    rng_state,
    run_folder,
    save_data_info,
    save_state,
    seed_epoch,
    write_atomic,
)
from convzoo.engine.evaluate import channels_last_batch, evaluate_loader, precision_of
from convzoo.engine.optim import Schedule, build_ema, build_optimizer
from convzoo.engine.recipe import dump_recipe, load_recipe
from convzoo.engine.report import Progress, plot_curves, write_metrics_csv, write_report, write_results
from convzoo.errors import ConvzooError


@dataclass
class RunResult:
    """What ``train`` returns (on global rank 0; the other processes of a distributed run get None)."""

    run_dir: Path
    metrics: dict[str, float]  # final test metrics (final weights) incl. "loss"
    best: dict[str, float]  # validation metrics of the best epoch, with "epoch"
    best_epoch: int
    epochs: int  # epochs completed
    wall_time: float  # seconds of training and evaluation, summed over resumes
    history: list[dict] = field(default_factory=list)  # the rows of metrics.csv


def train(recipe=None, *, overrides=(), values: dict | None = None, out_dir="runs", run_name: str | None = None, resume=None,
          devices: int = 1, num_nodes: int = 1, accelerator: str = "auto", strategy: str | None = None,
          progress: bool = True, callbacks=()) -> RunResult | None:
    """Train a recipe (bundled name, YAML path or mapping) and return its :class:`RunResult`.

    The run folder is ``out_dir/run_name``, by default ``out_dir/<recipe name>-<YYYYmmdd-HHMMSS>``.
    ``resume=RUN_DIR`` continues that run from its ``state.pt`` (``recipe`` may be None; the run's
    ``config.yaml`` is used, with ``overrides`` applied, e.g. ``["epochs=20"]`` to train longer).
    ``values`` sets dotted keys to typed values after the ``overrides`` strings (the CLI's flags).
    ``callbacks`` are objects with any of the hooks ``on_train_start(fabric, model, method, run_dir,
    recipe)``, ``on_train_batch_end(fabric, epoch, step, loss)``, ``on_train_epoch_end(fabric, epoch, row,
    run_dir)`` and ``on_train_end(fabric, result)``; they are called on every process.
    Returns the :class:`RunResult` on global rank 0 and None on the other processes.
    """
    from lightning.fabric import Fabric

    resume_dir = None
    if resume is not None:
        resume_dir = run_folder(resume)
        load_state(resume_dir / STATE)  # fail early on a missing or corrupt state
        cfg = load_recipe(resume_dir / CONFIG, overrides, values)
    elif recipe is None:
        raise ConvzooError("train needs a recipe (name, YAML path or mapping) or resume=RUN_DIR")
    else:
        cfg = load_recipe(recipe, overrides, values)
    if not (isinstance(devices, int) and devices >= 1 and isinstance(num_nodes, int) and num_nodes >= 1):
        raise ConvzooError(f"devices and num_nodes must be positive integers, got {devices!r}, {num_nodes!r}")
    world = devices * num_nodes
    if cfg["batch_size"] % world:
        raise ConvzooError(f"batch_size {cfg['batch_size']} is the global batch and must divide evenly "
                           f"over {world} processes")
    strategy = strategy or _default_strategy(world)
    precision = precision_of(cfg)
    try:
        fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                        precision=precision, callbacks=list(callbacks))
    except (ValueError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConvzooError(f"cannot run on accelerator={accelerator!r} devices={devices} "
                           f"precision={precision!r}: {first}") from None
    return fabric.launch(_fit, cfg, Path(out_dir), run_name, resume_dir, progress)


def _default_strategy(world: int) -> str:
    """"ddp" (re-runs the command line) when it can be re-run, else "ddp_fork"."""
    if world == 1:
        return "auto"
    import __main__

    rerunnable = hasattr(__main__, "__file__") and "pytest" not in sys.modules and "ipykernel" not in sys.modules
    return "ddp" if rerunnable else "ddp_fork"


@dataclass
class _Run:
    """Everything one training run holds; built by :func:`_setup`."""

    cfg: dict
    fabric: Any
    task: Any
    info: Any
    method: torch.nn.Module  # the raw method (what is checkpointed)
    wrapped: torch.nn.Module  # the method as Fabric wraps it (what is called)
    optimizers: list  # Fabric-wrapped optimizers
    schedules: list[Schedule]
    ema: Any
    loader: Any
    sampler: Any
    generator: torch.Generator
    val_loader: Any
    eval_ds: Any
    batch_transform: Any
    run_dir: Path = Path(".")
    start: int = 0
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def eval_method(self):
        return self.ema.module if self.ema is not None else self.method

    @property
    def steps_per_epoch(self) -> int:
        return _batches_per_epoch(self.loader, self.cfg) // self.cfg["accumulate"]


def _fit(fabric, cfg: dict, out_dir: Path, run_name: str | None, resume_dir: Path | None,
         progress: bool) -> RunResult:
    run = _setup(fabric, cfg, out_dir, run_name, resume_dir)
    monitor = run.task.monitor
    bar = Progress(progress and fabric.global_rank == 0, run.steps_per_epoch * cfg["epochs"], cfg["epochs"],
                   monitor, done_steps=run.steps_per_epoch * min(run.start, cfg["epochs"]))
    fabric.call("on_train_start", fabric=fabric, model=run.method.export_model(), method=run.method,
                run_dir=run.run_dir, recipe=cfg)
    try:
        for epoch in range(run.start, cfg["epochs"]):
            t0 = time.perf_counter()
            bar.epoch(epoch)
            lr = _base_lr(run.optimizers[0])
            train_parts = _train_epoch(run, epoch, bar)
            val = _validate(run)
            row = {"epoch": epoch + 1, **train_parts, "lr": lr, **{f"val_{k}": v for k, v in val.items()}}
            _end_epoch(run, epoch, row, val, t0)
            bar.epoch_end(row)
            fabric.call("on_train_epoch_end", fabric=fabric, epoch=epoch, row=row, run_dir=run.run_dir)
    finally:
        bar.close()
        if fabric.global_rank == 0 and run.history:
            _try(plot_curves, run.run_dir, run.history, monitor)
    return _finish(run)


# --- set-up ----------------------------------------------------------------------------------------
def _batches_per_epoch(loader, cfg: dict) -> int:
    """The loader's length, capped by ``limit_train_batches``."""
    limit = cfg["limit_train_batches"]
    return len(loader) if limit is None else min(len(loader), limit)


def _setup(fabric, cfg: dict, out_dir: Path, run_name: str | None, resume_dir: Path | None) -> _Run:
    """Data, task, method, optimizers, schedules, EMA and loaders; the run folder; a resumed state."""
    rank, world, d = fabric.global_rank, fabric.world_size, cfg["data"]
    fabric.seed_everything(cfg["seed"], verbose=False)  # identical initial weights on every process
    train_ds = build_data(cfg, d["train_split"])
    eval_ds = build_data(cfg, d["eval_split"]) if d["eval_split"] else None
    info = train_ds.info
    task = build_task_for(cfg, info)
    cfg["task"]["name"] = task.name
    method = build_method(cfg, info, task)
    if fabric.world_size > 1 and fabric.device.type == "cuda":  # BN statistics over the global batch
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    if cfg["fast"]:
        method.export_model().to(memory_format=torch.channels_last)
        method.export_model().compile()
    cuda = fabric.device.type == "cuda"
    loader, sampler, generator = train_loader(train_ds, task, cfg, rank, world, cuda)
    # (not fabric.setup_dataloaders: its wrapper would call sampler.set_epoch(number of passes so far),
    # which restarts at 0 after a resume; batches are moved with fabric.to_device instead)
    val_loader = (eval_loader(eval_ds, cfg["eval_batch_size"], rank, world, d["num_workers"], cuda, task.collate)
                  if eval_ds is not None else None)
    raw_opts = method.configure_optimizers(cfg["optimizer"], lambda groups: build_optimizer(method, cfg["optimizer"],
                                                                                              groups))
    n_batches = _batches_per_epoch(loader, cfg)
    if n_batches < cfg["accumulate"]:
        raise ConvzooError(f"an epoch of {n_batches} batches of {cfg['batch_size'] // world} is shorter than one "
                           f"accumulated optimizer step (accumulate {cfg['accumulate']})")
    spe = n_batches // cfg["accumulate"]
    schedules = [Schedule(o, cfg["schedule"], cfg["epochs"], cfg["optimizer"]["lr"], task.monitor_mode, spe)
                 for o in raw_opts]
    wrapped, *optimizers = fabric.setup(method, *raw_opts)
    method._backward = fabric.backward
    method._optimizers = optimizers
    ema = build_ema(method, cfg["ema"])
    if ema is not None:
        ema.to(fabric.device)
    run = _Run(cfg, fabric, task, info, method, wrapped, optimizers, schedules, ema, loader, sampler, generator,
               val_loader, eval_ds, build_batch_transform(cfg, info))
    if resume_dir is None:
        status, text = fabric.broadcast(_new_run_dir(out_dir, cfg, run_name) if rank == 0 else None, src=0)
        if status == "error":
            raise ConvzooError(text)
        run.run_dir = Path(text)
    else:
        run.run_dir = resume_dir
        _restore(run, load_state(resume_dir / STATE))
    if rank == 0:
        write_atomic(run.run_dir / CONFIG, dump_recipe(cfg))
        save_data_info(run.run_dir, info)
    return run


def _new_run_dir(out_dir: Path, cfg: dict, run_name: str | None) -> tuple[str, str]:
    """("ok", path) or ("error", message); decided on rank 0 and broadcast."""
    if run_name is not None:
        path = out_dir / run_name
        if (path / STATE).exists():  # a folder that never finished an epoch holds nothing to keep
            return "error", (f"run folder {path} already exists; resume it with --resume {path} "
                             "or choose another --name")
        return "ok", str(path)
    base = f"{cfg['name']}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = out_dir / base, 1
    while path.exists():
        i += 1
        path = out_dir / f"{base}-{i}"
    return "ok", str(path)


def _restore(run: _Run, state: dict) -> None:
    try:
        run.method.load_state_dict(state["method"])
        if len(state["optimizers"]) != len(run.optimizers):
            raise ValueError(f"{len(state['optimizers'])} optimizers saved, {len(run.optimizers)} built")
        for opt, s in zip(run.optimizers, state["optimizers"]):
            opt.load_state_dict(s)
        for sched, s in zip(run.schedules, state["schedules"]):
            sched.load_state_dict(s)
        if run.ema is not None and state.get("ema") is not None:
            run.ema.load_state_dict(state["ema"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise ConvzooError(f"{run.run_dir / STATE} does not fit this recipe: {str(e).splitlines()[0]}") from None
    run.start, run.history, run.best, run.elapsed = state["epoch"], state["history"], state["best"], state["elapsed"]


# --- one epoch -------------------------------------------------------------------------------------
def _train_epoch(run: _Run, epoch: int, bar: Progress) -> dict[str, float]:
    """One pass over the training split; the mean of every logged part (``train_loss`` ...)."""
    fabric, cfg, method, accumulate = run.fabric, run.cfg, run.method, run.cfg["accumulate"]
    run.generator.manual_seed(seed_epoch(cfg["seed"], epoch, fabric.global_rank))  # worker seeds; see checkpoint.py
    run.sampler.set_epoch(epoch)
    run.wrapped.train()
    method.on_train_epoch_start(epoch)
    sums: dict[str, torch.Tensor] = {}
    n_batches = run.steps_per_epoch * accumulate  # a last, incomplete accumulation group is dropped
    for i, batch in enumerate(run.loader):
        if i >= n_batches:
            break
        parts = _train_batch(run, i, fabric.to_device(batch))
        for k, v in parts.items():
            sums[k] = sums.get(k, torch.zeros((), dtype=torch.float64, device=fabric.device)) + v.detach().double()
        boundary = (i + 1) % accumulate == 0
        if bar.enabled and boundary:
            bar.step(float(parts["loss"].detach()))
        fabric.call("on_train_batch_end", fabric=fabric, epoch=epoch, step=i, loss=parts["loss"].detach())
    out = {f"train_{k}": float(fabric.all_reduce(v / n_batches, reduce_op="mean")) for k, v in sums.items()}
    if not math.isfinite(out["train_loss"]):
        raise ConvzooError(f"training diverged: the loss is {out['train_loss']} in epoch {epoch + 1}; lower "
                           "optimizer.lr or set grad_clip (the last good checkpoint is kept)")
    return out


def _train_batch(run: _Run, i: int, batch) -> dict[str, torch.Tensor]:
    """Batch ``i`` of an epoch (on the device): transform, forward, backward, and every ``accumulate``-th
    batch the optimizer step. ``convzoo bench --train`` times this same function."""
    fabric, method, accumulate = run.fabric, run.method, run.cfg["accumulate"]
    if run.batch_transform is not None:
        batch = run.batch_transform(batch)
    if run.cfg["fast"]:
        batch = channels_last_batch(batch)
    boundary = (i + 1) % accumulate == 0
    with fabric.no_backward_sync(run.wrapped, enabled=not boundary):
        parts = run.wrapped(batch)
        loss = parts["loss"]
        if method.automatic_optimization and loss.requires_grad:
            fabric.backward(loss / accumulate if accumulate > 1 else loss)
    if boundary and method.automatic_optimization:
        _optimizer_step(run)
    elif boundary:  # the method stepped its own optimizers
        for s in run.schedules:
            s.step_batch()
        if run.ema is not None:
            run.ema.update_parameters(method)
    return parts


def _optimizer_step(run: _Run) -> None:
    """Clip, step and zero every optimizer; the method's after-step hook, the EMA, per-step schedules."""
    clip = run.cfg["grad_clip"]
    for opt in run.optimizers:
        if clip is not None:
            run.fabric.clip_gradients(run.wrapped, opt, max_norm=clip, error_if_nonfinite=False)
        opt.step()
        opt.zero_grad(set_to_none=True)
    run.method.on_after_optimizer_step()
    for s in run.schedules:
        s.step_batch()
    if run.ema is not None:
        run.ema.update_parameters(run.method)


def _validate(run: _Run) -> dict[str, float]:
    if run.val_loader is None:
        return {}
    val = evaluate_loader(run.fabric, run.eval_method, run.val_loader, run.task, run.eval_ds, run.cfg["fast"],
                          run.cfg["limit_eval_batches"])
    if run.task.monitor not in val:
        raise ConvzooError(f"task '{run.task.name}' monitors '{run.task.monitor}' but its metrics are {list(val)}")
    return val


def _end_epoch(run: _Run, epoch: int, row: dict, val: dict, t0: float) -> None:
    """Schedules, best epoch, history and the checkpoint (rank 0), then every process waits."""
    monitor, mode = run.task.monitor, run.task.monitor_mode
    for s in run.schedules:
        s.step_epoch(val.get(monitor))
    improved = not run.best or _better(val.get(monitor), run.best.get(monitor), mode)
    if improved:
        run.best = {"epoch": epoch + 1, **val}
    row["time"] = time.perf_counter() - t0
    run.elapsed += row["time"]
    run.history.append(row)
    if run.fabric.global_rank == 0:
        _checkpoint(run, epoch + 1, improved)
    run.fabric.barrier()


def _base_lr(optimizer) -> float:
    """The current lr of the recipe's ``optimizer.lr`` (groups with an lr_mult are scaled from it)."""
    g = next((g for g in optimizer.param_groups if g.get("lr_mult", 1.0) == 1.0), optimizer.param_groups[0])
    mult = g.get("lr_mult", 1.0)
    return g["lr"] / mult if mult else g["lr"]


def _better(value, best, mode: str) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _checkpoint(run: _Run, epoch: int, improved: bool) -> None:
    """Weights first, ``state.pt`` last: the state file is the commit point of an epoch."""
    from convzoo.weights import save_weights

    keep = run.eval_method.export_model()
    save_weights(keep, run.run_dir / LAST)
    if improved:
        save_weights(keep, run.run_dir / BEST)
    write_metrics_csv(run.run_dir, run.history)
    save_state(run.run_dir / STATE, {
        "version": STATE_VERSION, "epoch": epoch, "world_size": run.fabric.world_size, "recipe": run.cfg["name"],
        "method": {k: v.detach().cpu() for k, v in run.method.state_dict().items()},
        "optimizers": [o.state_dict() for o in run.optimizers],
        "schedules": [s.state_dict() for s in run.schedules],
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "history": run.history, "best": run.best, "elapsed": run.elapsed, "rng": rng_state(),
    })


# --- the end ------------------------------------------------------------------------------------------
def _try(fn, *args):
    """Run a reporting step; a failure is reported, never fatal to a finished training."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - a broken figure must not lose the run
        print(f"convzoo: {getattr(fn, '__name__', fn)} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def _finish(run: _Run) -> RunResult | None:
    """The test split with the final weights, results.json, pictures and report.md (rank 0)."""
    fabric, cfg, d = run.fabric, run.cfg, run.cfg["data"]
    t0 = time.perf_counter()
    test_ds = build_data(cfg, d["test_split"]) if d["test_split"] else None
    metrics = {}
    if test_ds is not None:
        test_loader = eval_loader(test_ds, cfg["eval_batch_size"], fabric.global_rank, fabric.world_size,
                                  d["num_workers"], fabric.device.type == "cuda", run.task.collate)
        metrics = evaluate_loader(fabric, run.eval_method, test_loader, run.task, test_ds, cfg["fast"],
                                  cfg["limit_eval_batches"])
    run.elapsed += time.perf_counter() - t0
    result = RunResult(run.run_dir, metrics, run.best, int(run.best.get("epoch", 0)), len(run.history),
                       run.elapsed, run.history)
    if fabric.global_rank == 0:
        _report(run, test_ds if test_ds is not None else run.eval_ds, result)
    fabric.barrier()
    fabric.call("on_train_end", fabric=fabric, result=result)
    return result if fabric.global_rank == 0 else None


def _report(run: _Run, dataset, result: RunResult) -> None:
    from convzoo.registry import count_params, get_card

    results = {"test": result.metrics, "best": result.best, "epochs": result.epochs,
               "wall_time": result.wall_time, "world_size": run.fabric.world_size}
    write_results(run.run_dir, results)
    pictures, lines = [], []
    model = run.eval_method.export_model()
    if dataset is not None and run.cfg["limit_eval_batches"] is not None:
        from convzoo.data.subset import Head

        dataset = Head(dataset, run.cfg["limit_eval_batches"] * run.cfg["eval_batch_size"])
    if dataset is not None:
        # tasks draw with float32 inputs; a model trained at "bf16-true"/"64-true" is drawn as a float32 copy
        pic_model = model
        if any(p.dtype != torch.float32 for p in model.parameters()):
            pic_model = copy.deepcopy(model).float()
        pic_model.eval()
        pictures = _try(run.task.pictures, pic_model, dataset, run.run_dir, run.fabric.device) or []
        lines = _try(run.task.report, result.metrics, dataset) or []
    write_report(run.run_dir, run.cfg, get_card(run.cfg["model"]["name"]), count_params(run.method), results,
                 lines, pictures, run.fabric.world_size, run.info)
