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

Model hooks (for methods that train more than the task's loss, e.g. DCLS, paper 39):
``model.regularization_loss(epoch) -> Tensor | None`` on the top-level model is added to the task's
loss at every training step (None: nothing this epoch); ``post_optimizer_step()`` on any submodule is
called after every optimizer step, under ``torch.no_grad`` (e.g. clamping learnable positions).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

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
from convzoo.engine.evaluate import build_data, build_model, build_task_for, eval_loader, evaluate_loader
from convzoo.engine.optim import EpochSchedule, build_ema, build_optimizer
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


def train(recipe=None, *, overrides=(), out_dir="runs", run_name: str | None = None, resume=None,
          devices: int = 1, num_nodes: int = 1, accelerator: str = "auto", strategy: str | None = None,
          progress: bool = True, callbacks=()) -> RunResult | None:
    """Train a recipe (bundled name, YAML path or mapping) and return its :class:`RunResult`.

    The run folder is ``out_dir/run_name``, by default ``out_dir/<recipe name>-<YYYYmmdd-HHMMSS>``.
    ``resume=RUN_DIR`` continues that run from its ``state.pt`` (``recipe`` may be None; the run's
    ``config.yaml`` is used, with ``overrides`` applied, e.g. ``["epochs=20"]`` to train longer).
    ``callbacks`` are objects with any of the hooks ``on_train_start(fabric, model, run_dir, recipe)``,
    ``on_train_batch_end(fabric, epoch, step, loss)``, ``on_train_epoch_end(fabric, epoch, row,
    run_dir)`` and ``on_train_end(fabric, result)``; they are called on every process.
    Returns the :class:`RunResult` on global rank 0 and None on the other processes.
    """
    from lightning.fabric import Fabric

    resume_dir = None
    if resume is not None:
        resume_dir = run_folder(resume)
        load_state(resume_dir / STATE)  # fail early on a missing or corrupt state
        cfg = load_recipe(resume_dir / CONFIG, overrides)
    elif recipe is None:
        raise ConvzooError("train needs a recipe (name, YAML path or mapping) or resume=RUN_DIR")
    else:
        cfg = load_recipe(recipe, overrides)
    if not (isinstance(devices, int) and devices >= 1 and isinstance(num_nodes, int) and num_nodes >= 1):
        raise ConvzooError(f"devices and num_nodes must be positive integers, got {devices!r}, {num_nodes!r}")
    world = devices * num_nodes
    if cfg["batch_size"] % world:
        raise ConvzooError(f"batch_size {cfg['batch_size']} is the global batch and must divide evenly "
                           f"over {world} processes")
    strategy = strategy or _default_strategy(world)
    try:
        fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                        precision=cfg["precision"], callbacks=list(callbacks))
    except (ValueError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConvzooError(f"cannot run on accelerator={accelerator!r} devices={devices} "
                           f"precision={cfg['precision']!r}: {first}") from None
    return fabric.launch(_fit, cfg, Path(out_dir), run_name, resume_dir, progress)


def _default_strategy(world: int) -> str:
    """"ddp" (re-runs the command line) when it can be re-run, else "ddp_fork"."""
    if world == 1:
        return "auto"
    import __main__

    rerunnable = hasattr(__main__, "__file__") and "pytest" not in sys.modules and "ipykernel" not in sys.modules
    return "ddp" if rerunnable else "ddp_fork"


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


def _sync_batchnorm(model: nn.Module, fabric) -> nn.Module:
    if fabric.world_size > 1 and fabric.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: seed numpy and ``random`` from the worker's torch seed."""
    import random

    import numpy as np

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def _fit(fabric, cfg: dict, out_dir: Path, run_name: str | None, resume_dir: Path | None,
         progress: bool) -> RunResult:
    rank, world = fabric.global_rank, fabric.world_size
    d, seed = cfg["data"], cfg["seed"]
    fabric.seed_everything(seed, verbose=False)  # identical initial weights on every process

    # --- data, task, model -----------------------------------------------------------------------
    train_ds = build_data(cfg, d["train_split"])
    eval_ds = build_data(cfg, d["eval_split"]) if d["eval_split"] else None
    info = train_ds.info
    task = build_task_for(cfg, info)
    cfg["task"]["name"] = task.name
    raw = _sync_batchnorm(build_model(cfg, info), fabric)
    optimizer = build_optimizer(raw, cfg["optimizer"])
    schedule = EpochSchedule(optimizer, cfg["schedule"], cfg["epochs"], cfg["optimizer"]["lr"], task.monitor_mode)
    model, fopt = fabric.setup(raw, optimizer)
    ema = build_ema(raw, cfg["ema"])
    if ema is not None:
        ema.to(fabric.device)
    eval_model = ema.module if ema is not None else raw
    regularizer = getattr(raw, "regularization_loss", None)
    post_step = [m.post_optimizer_step for m in raw.modules() if hasattr(m, "post_optimizer_step")]

    # --- run folder and resume ---------------------------------------------------------------------
    if resume_dir is None:
        status, text = fabric.broadcast(_new_run_dir(out_dir, cfg, run_name) if rank == 0 else None, src=0)
        if status == "error":
            raise ConvzooError(text)
        run_dir = Path(text)
    else:
        run_dir = resume_dir
    start, history, best, elapsed = 0, [], {}, 0.0
    if resume_dir is not None:
        state = load_state(run_dir / STATE)
        try:
            raw.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise ConvzooError(f"{run_dir / STATE} does not fit this recipe: {str(e).splitlines()[0]}") from None
        start, history, best, elapsed = state["epoch"], state["history"], state["best"], state["elapsed"]
    if rank == 0:
        write_atomic(run_dir / CONFIG, dump_recipe(cfg))
        save_data_info(run_dir, info)

    # --- loaders -----------------------------------------------------------------------------------
    per_device = cfg["batch_size"] // world
    cuda = fabric.device.type == "cuda"
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    generator = torch.Generator()
    loader = DataLoader(train_ds, batch_size=per_device, sampler=sampler, drop_last=True,
                        num_workers=d["num_workers"], worker_init_fn=_seed_worker, generator=generator,
                        pin_memory=cuda)
    if len(loader) == 0:
        raise ConvzooError(f"the '{d['train_split']}' split of {d['name']} has {len(train_ds)} items, fewer "
                           f"than one batch of {per_device} per process (batch_size {cfg['batch_size']})")
    # (not fabric.setup_dataloaders: its wrapper would call sampler.set_epoch(number of passes so far),
    # which restarts at 0 after a resume; batches are moved with fabric.to_device instead)
    val_loader = None
    if eval_ds is not None:
        val_loader = eval_loader(eval_ds, cfg["eval_batch_size"], rank, world, d["num_workers"], cuda)

    # --- epochs --------------------------------------------------------------------------------------
    bar = Progress(progress and rank == 0, len(loader) * cfg["epochs"], cfg["epochs"], task.monitor,
                   done_steps=len(loader) * min(start, cfg["epochs"]))
    fabric.call("on_train_start", fabric=fabric, model=raw, run_dir=run_dir, recipe=cfg)
    clip = cfg["grad_clip"]
    try:
        for epoch in range(start, cfg["epochs"]):
            t0 = time.perf_counter()
            generator.manual_seed(seed_epoch(seed, epoch, rank))  # worker seeds; see checkpoint.py
            sampler.set_epoch(epoch)
            bar.epoch(epoch)
            lr = _base_lr(optimizer)
            model.train()
            total = torch.zeros((), dtype=torch.float64, device=fabric.device)
            for step, batch in enumerate(loader):
                outputs, targets = task.forward(model, fabric.to_device(batch))
                loss = task.loss(outputs, targets)
                extra = regularizer(epoch) if regularizer is not None else None
                if extra is not None:
                    loss = loss + extra
                fabric.backward(loss)
                if clip is not None:
                    fabric.clip_gradients(model, fopt, max_norm=clip, error_if_nonfinite=False)
                fopt.step()
                fopt.zero_grad(set_to_none=True)
                if post_step:
                    with torch.no_grad():
                        for hook in post_step:
                            hook()
                if ema is not None:
                    ema.update_parameters(raw)
                total += loss.detach().double()
                if bar.enabled:
                    bar.step(float(loss.detach()))
                fabric.call("on_train_batch_end", fabric=fabric, epoch=epoch, step=step, loss=loss.detach())
            train_loss = float(fabric.all_reduce(total / len(loader), reduce_op="mean"))
            if not math.isfinite(train_loss):
                raise ConvzooError(f"training diverged: the loss is {train_loss} in epoch {epoch + 1}; lower "
                                   "optimizer.lr or set grad_clip (the last good checkpoint is kept)")
            val = evaluate_loader(fabric, eval_model, val_loader, task, eval_ds) if val_loader else {}
            if val and task.monitor not in val:
                raise ConvzooError(f"task '{task.name}' monitors '{task.monitor}' but its metrics are {list(val)}")
            row = {"epoch": epoch + 1, "train_loss": train_loss, "lr": lr,
                   **{f"val_{k}": v for k, v in val.items()}}
            schedule.step(val.get(task.monitor))
            improved = not best or _better(val.get(task.monitor), best.get(task.monitor), task.monitor_mode)
            if improved:
                best = {"epoch": epoch + 1, **val}
            row["time"] = time.perf_counter() - t0
            elapsed += row["time"]
            history.append(row)
            if rank == 0:
                _checkpoint(run_dir, cfg, epoch + 1, raw, eval_model, optimizer, schedule, ema, history, best,
                            elapsed, improved, world)
            fabric.barrier()
            bar.epoch_end(row)
            fabric.call("on_train_epoch_end", fabric=fabric, epoch=epoch, row=row, run_dir=run_dir)
    finally:
        bar.close()
        if rank == 0 and history:
            _try(plot_curves, run_dir, history, task.monitor)

    # --- final test and report ------------------------------------------------------------------------
    t0 = time.perf_counter()
    test_ds = build_data(cfg, d["test_split"]) if d["test_split"] else None
    metrics = {}
    if test_ds is not None:
        test_loader = eval_loader(test_ds, cfg["eval_batch_size"], rank, world, d["num_workers"], cuda)
        metrics = evaluate_loader(fabric, eval_model, test_loader, task, test_ds)
    elapsed += time.perf_counter() - t0
    result = RunResult(run_dir, metrics, best, int(best.get("epoch", 0)), len(history), elapsed, history)
    if rank == 0:
        _finish(run_dir, cfg, raw, eval_model, task, test_ds if test_ds is not None else eval_ds, fabric, result,
                world, info)
    fabric.barrier()
    fabric.call("on_train_end", fabric=fabric, result=result)
    return result if rank == 0 else None


def _base_lr(optimizer) -> float:
    """The current lr of the recipe's ``optimizer.lr`` (groups with an lr_mult are scaled from it)."""
    g = next((g for g in optimizer.param_groups if g["lr_mult"] == 1.0), optimizer.param_groups[0])
    return g["lr"] / g["lr_mult"] if g["lr_mult"] else g["lr"]


def _better(value, best, mode: str) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _checkpoint(run_dir, cfg, epoch, raw, eval_model, optimizer, schedule, ema, history, best, elapsed,
                improved, world) -> None:
    """Weights first, ``state.pt`` last: the state file is the commit point of an epoch."""
    from convzoo.weights import save_weights

    save_weights(eval_model, run_dir / LAST)
    if improved:
        save_weights(eval_model, run_dir / BEST)
    write_metrics_csv(run_dir, history)
    save_state(run_dir / STATE, {
        "version": STATE_VERSION, "epoch": epoch, "world_size": world, "recipe": cfg["name"],
        "model": {k: v.detach().cpu() for k, v in raw.state_dict().items()},
        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "history": history, "best": best, "elapsed": elapsed, "rng": rng_state(),
    })


def _try(fn, *args):
    """Run a reporting step; a failure is reported, never fatal to a finished training."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - a broken figure must not lose the run
        print(f"convzoo: {getattr(fn, '__name__', fn)} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def _finish(run_dir, cfg, raw, eval_model, task, dataset, fabric, result: RunResult, world: int, info) -> None:
    from convzoo.registry import count_params, get_card

    results = {"test": result.metrics, "best": result.best, "epochs": result.epochs,
               "wall_time": result.wall_time, "world_size": world}
    write_results(run_dir, results)
    pictures, lines = [], []
    if dataset is not None:
        # tasks draw with float32 inputs; a model trained at "bf16-true"/"64-true" is drawn as a float32 copy
        pic_model = eval_model
        if any(p.dtype != torch.float32 for p in eval_model.parameters()):
            pic_model = copy.deepcopy(eval_model).float()
        pic_model.eval()
        pictures = _try(task.pictures, pic_model, dataset, run_dir, fabric.device) or []
        lines = _try(task.report, result.metrics, dataset) or []
    write_report(run_dir, cfg, get_card(cfg["model"]["name"]), count_params(raw), results, lines, pictures, world,
                 info)
