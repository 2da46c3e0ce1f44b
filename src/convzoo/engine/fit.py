"""Training on Lightning Fabric: one loop for CPU, one GPU, many GPUs and many nodes.

``train(recipe)`` builds data, model and task from a recipe (see :mod:`convzoo.engine.recipe`),
trains for ``epochs``, validates after every epoch, checkpoints every epoch (see
:mod:`convzoo.engine.checkpoint`), evaluates the final weights on the test split and writes the run
folder's report. ``resume=RUN_DIR`` continues a killed run exactly where its last checkpoint left it
(an epoch boundary, or with ``checkpoint_every_n_steps`` a step inside an epoch); with more ``epochs``
it trains longer, the schedule re-built for the new length from the step reached (the run says so on
stdout, in ``config.yaml`` and in the report). ``init=RUN_OR_FILE`` starts a new run from earlier
weights and ``freeze`` keeps its first stages fixed (:mod:`convzoo.engine.finetune`). With
``early_stopping: {patience: P, min_delta: D}`` the run stops when the task's monitored validation metric
has not improved by more than D for P epochs. ``log_every_n_steps`` and ``tensorboard`` log steps
(:mod:`convzoo.engine.report`).

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
:func:`_early_stop`, :func:`_train_epoch` (-> :func:`_train_batch` -> :func:`_optimizer_step`,
:func:`_after_step`: step log, mid-epoch checkpoint), :func:`_validate`, :func:`_end_epoch`
(schedule, best, checkpoint), :func:`_finish` (test split with the final and the best weights, report). Gradient accumulation
(``accumulate: N``) steps the optimizer every N batches (DDP synchronises only then); schedules step
per epoch or per optimizer step (``schedule.interval``); ``batch_transform`` (MixUp / CutMix, jitter) applies
to training batches; ``fast: true`` trains channels_last, under bf16 autocast, with the model compiled;
``channels_last: true`` alone is its eager layout half (with ``precision: bf16-mixed``, fast without compiling).
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
    check_accelerator,
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
    seed_step,
    write_atomic,
)
from convzoo.engine.evaluate import (
    channels_last_batch,
    evaluate_loader,
    precision_of,
    to_run_layout,
    uses_channels_last,
)
from convzoo.engine.finetune import freeze as freeze_modules
from convzoo.engine.finetune import frozen_modules, load_init, resolve_init
from convzoo.engine.optim import Schedule, build_ema, build_optimizer
from convzoo.engine.recipe import IDENTITY, RESUMABLE, dump_recipe, load_recipe
from convzoo.engine.report import (
    Progress,
    StepLog,
    plot_curves,
    write_metrics_csv,
    write_report,
    write_results,
)
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
    test_best: dict[str, float] | None = None  # test metrics of best.safetensors (None: the best epoch is the last)
    stopped_early: str | None = None  # why early stopping ended the run, or None
    notes: list[str] = field(default_factory=list)  # init weights, frozen modules, resumed to train longer


def train(recipe=None, *, overrides=(), values: dict | None = None, out_dir="runs", run_name: str | None = None, resume=None,
          init=None, freeze=None, devices: int = 1, num_nodes: int = 1, accelerator: str = "auto",
          strategy: str | None = None, progress: bool = True, callbacks=()) -> RunResult | None:
    """Train a recipe (bundled name, YAML path or mapping) and return its :class:`RunResult`.

    The run folder is ``out_dir/run_name``, by default ``out_dir/<recipe name>-<YYYYmmdd-HHMMSS>``.
    ``resume=RUN_DIR`` continues that run from its ``state.pt`` (``recipe`` may be None; the run's
    ``config.yaml`` is used, with ``overrides`` applied, e.g. ``values={"epochs": 20}`` to train longer:
    the schedule is re-built for 20 epochs from the step reached). A ``recipe`` given with ``resume`` must
    match the run's (up to the keys ``recipe.RESUMABLE``), and overrides may not change what is trained
    (``recipe.IDENTITY``: model, data, task, method ...): one-line errors.
    ``init`` (a run folder: its best checkpoint; or a checkpoint file) starts a new run from those weights,
    the classifier re-initialised when the classes differ; ``freeze`` (N or module names) keeps the first N
    stages of the model's ``feature_info`` (and the stem) or the named modules fixed. Both are recipe keys
    too (``init``, ``freeze``), recorded in ``config.yaml``.
    ``values`` sets dotted keys to typed values after the ``overrides`` strings (the CLI's flags).
    ``callbacks`` are objects with any of the hooks ``on_train_start(fabric, model, method, run_dir,
    recipe)``, ``on_train_batch_end(fabric, epoch, step, loss)``, ``on_train_epoch_end(fabric, epoch, row,
    run_dir)`` and ``on_train_end(fabric, result)``; they are called on every process.
    Returns the :class:`RunResult` on global rank 0 and None on the other processes.
    """
    resume_dir, cfg = _the_recipe(recipe, overrides, values, resume, init, freeze)
    fabric = _fabric(cfg, accelerator, devices, num_nodes, strategy, callbacks)
    return fabric.launch(_fit, cfg, Path(out_dir), run_name, resume_dir, progress)


def _the_recipe(recipe, overrides, values, resume, init, freeze) -> tuple[Path | None, dict]:
    """(run folder to resume or None, the checked recipe) of :func:`train`'s arguments."""
    values = dict(values or {})
    if init is not None:
        values["init"] = str(init)
    if freeze is not None:
        values["freeze"] = list(freeze) if isinstance(freeze, (list, tuple)) else freeze
    resume_dir = None
    if resume is not None:
        if init is not None:
            raise ConvzooError("init starts a new run from weights and resume continues a run: give one of them")
        resume_dir, cfg = _resume_recipe(resume, recipe, overrides, values)
    elif recipe is None:
        raise ConvzooError("train needs a recipe (name, YAML path or mapping) or resume=RUN_DIR")
    else:
        cfg = load_recipe(recipe, overrides, values)
        if cfg["init"] is not None:
            cfg["init"] = str(resolve_init(cfg["init"]))
    if cfg["tensorboard"]:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ConvzooError("tensorboard: true needs the tensorboard package: pip install tensorboard")
    return resume_dir, cfg


def _fabric(cfg: dict, accelerator: str, devices: int, num_nodes: int, strategy, callbacks):
    """The Lightning Fabric of a run (not launched yet); one-line errors for a machine that cannot run it."""
    from lightning.fabric import Fabric

    check_accelerator(accelerator)
    if not (isinstance(devices, int) and devices >= 1 and isinstance(num_nodes, int) and num_nodes >= 1):
        raise ConvzooError(f"devices and num_nodes must be positive integers, got {devices!r}, {num_nodes!r}")
    world = devices * num_nodes
    if cfg["batch_size"] % world:
        raise ConvzooError(f"batch_size {cfg['batch_size']} is the global batch and must divide evenly "
                           f"over {world} processes")
    strategy = strategy or _default_strategy(world)
    precision = precision_of(cfg)
    try:
        return Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                      precision=precision, callbacks=list(callbacks))
    except (ValueError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConvzooError(f"cannot run on accelerator={accelerator!r} devices={devices} "
                           f"precision={precision!r}: {first}") from None


def _resume_recipe(resume, recipe, overrides, values: dict) -> tuple[Path, dict]:
    """(run folder, recipe) of a resumed run: the run's ``config.yaml`` with the overrides applied, or the
    ``recipe`` given when it matches the run's; one-line errors when either would change what is trained."""
    resume_dir = run_folder(resume)
    done = load_state(resume_dir / STATE)["epoch"]  # fail early on a missing or corrupt state
    saved = load_recipe(resume_dir / CONFIG)
    cfg = load_recipe(saved, overrides, values)
    if cfg["epochs"] < done:
        raise ConvzooError(f"--resume {resume_dir}: the run has trained {done} epochs already; epochs "
                           f"{cfg['epochs']} would be fewer (give more to train longer)")
    if recipe is not None:
        given = load_recipe(recipe, overrides, values)
        if given["task"]["name"] is None:  # the data set's task, which the run's config.yaml names
            given["task"]["name"] = cfg["task"]["name"]
        key = _first_difference(given, cfg, lambda k: not k.startswith(RESUMABLE))
        if key is not None:
            raise ConvzooError(f"--resume {resume_dir}: the recipe given differs from the run's at '{key}' "
                               f"({_get(given, key)!r} here, {_get(cfg, key)!r} in the run); resume without a "
                               "recipe or model, or start a new run")
        cfg = given
    key = _first_difference(cfg, saved, lambda k: k.startswith(IDENTITY))
    if key is not None:
        raise ConvzooError(f"--resume {resume_dir}: {key} is {_get(saved, key)!r} in the run, {_get(cfg, key)!r} "
                           f"here; resume without changing it, or start a new run (--init {resume_dir} fine-tunes "
                           "from its weights)")
    return resume_dir, cfg


def _first_difference(a: dict, b: dict, compared, prefix: str = "") -> str | None:
    """The first dotted key (``compared(key)`` true) whose values differ in two recipes, or None."""
    for k in list(a) + [k for k in b if k not in a]:
        key = prefix + k
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict) and k != "kwargs":
            found = _first_difference(va, vb, compared, key + ".")
            if found is not None:
                return found
        elif va != vb and compared(key):
            return key
    return None


def _get(cfg: dict, key: str):
    for part in key.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


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
    frozen: list = field(default_factory=list)  # modules kept in eval mode while training
    resume_step: int = 0  # optimizer steps of epoch ``start`` already done (a mid-epoch checkpoint)
    partial: dict | None = None  # that checkpoint's partial epoch: sums of the train parts, lr, time
    notes: list[str] = field(default_factory=list)  # kept in state.pt, config.yaml and the report
    notes_shown: int = 0  # notes printed by an earlier part of this run
    steplog: Any = None
    stopped: str | None = None
    epoch_lr: float = 0.0  # the lr of the epoch in progress at its first step
    epoch_t0: float = 0.0  # when it started (perf_counter), less the time a resumed part took before

    @property
    def eval_method(self):
        return self.ema.module if self.ema is not None else self.method

    @property
    def steps_per_epoch(self) -> int:
        return _batches_per_epoch(self.loader, self.cfg) // self.cfg["accumulate"]


def _fit(fabric, cfg: dict, out_dir: Path, run_name: str | None, resume_dir: Path | None,
         progress: bool) -> RunResult:
    run = _setup(fabric, cfg, out_dir, run_name, resume_dir)
    monitor, rank0, spe = run.task.monitor, fabric.global_rank == 0, run.steps_per_epoch
    bar = Progress(progress and rank0, spe * cfg["epochs"], cfg["epochs"], monitor,
                   done_steps=min(spe * run.start + run.resume_step, spe * cfg["epochs"]))
    run.steplog = StepLog(run.run_dir, rank0, cfg["log_every_n_steps"], cfg["tensorboard"],
                          resume_step=spe * run.start + run.resume_step)
    for note in run.notes[run.notes_shown:]:
        _say(run, bar, note)
    fabric.call("on_train_start", fabric=fabric, model=run.method.export_model(), method=run.method,
                run_dir=run.run_dir, recipe=cfg)
    try:
        for epoch in range(run.start, cfg["epochs"]):
            run.stopped = _early_stop(run)
            if run.stopped:
                _say(run, bar, run.stopped)
                break
            t0 = time.perf_counter()
            bar.epoch(epoch)
            lr = run.partial["lr"] if run.partial else _base_lr(run.optimizers[0])
            if run.partial:
                t0 -= run.partial["time"]
            run.epoch_lr, run.epoch_t0 = lr, t0
            train_parts = _train_epoch(run, epoch, bar)
            val = _validate(run)
            row = {"epoch": epoch + 1, **train_parts, "lr": lr, **{f"val_{k}": v for k, v in val.items()}}
            _end_epoch(run, epoch, row, val, t0)
            run.steplog.epoch(row, spe * (epoch + 1))
            bar.epoch_end(row)
            fabric.call("on_train_epoch_end", fabric=fabric, epoch=epoch, row=row, run_dir=run.run_dir)
    finally:
        bar.close()
        run.steplog.close()
        if rank0 and run.history:
            _try(plot_curves, run.run_dir, run.history, monitor)
    return _finish(run)


def _say(run: _Run, bar: Progress, text: str) -> None:
    """One line on stdout (rank 0): what the run decided (resumed longer, stopped early ...)."""
    if run.fabric.global_rank == 0:
        bar.note(f"convzoo: {text}")


# --- set-up ----------------------------------------------------------------------------------------
def _batches_per_epoch(loader, cfg: dict) -> int:
    """The loader's length, capped by ``limit_train_batches``."""
    limit = cfg["limit_train_batches"]
    return len(loader) if limit is None else min(len(loader), limit)


def _setup(fabric, cfg: dict, out_dir: Path, run_name: str | None, resume_dir: Path | None) -> _Run:
    """Data, task, method (initial weights, frozen modules), optimizers, schedules, EMA and loaders; the
    run folder; a resumed state."""
    rank, world, d = fabric.global_rank, fabric.world_size, cfg["data"]
    fabric.seed_everything(cfg["seed"], verbose=False)  # identical initial weights on every process
    train_ds = build_data(cfg, d["train_split"])
    eval_ds = build_data(cfg, d["eval_split"]) if d["eval_split"] else None
    if cfg["early_stopping"]["patience"] is not None and eval_ds is None:
        raise ConvzooError("early_stopping follows the validation metric, but this recipe has no "
                           "data.eval_split")
    info = train_ds.info
    task = build_task_for(cfg, info)
    cfg["task"]["name"] = task.name
    method = build_method(cfg, info, task)
    frozen, notes = _start_weights(cfg, method.export_model(), new_run=resume_dir is None)
    if fabric.world_size > 1 and fabric.device.type == "cuda":  # BN statistics over the global batch
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    to_run_layout(method.export_model(), cfg)
    if cfg["fast"]:
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
    run.frozen = frozen_modules(method.export_model(), frozen)
    if resume_dir is None:
        status, text = fabric.broadcast(_new_run_dir(out_dir, cfg, run_name) if rank == 0 else None, src=0)
        if status == "error":
            raise ConvzooError(text)
        run.run_dir = Path(text)
        run.notes = notes
    else:
        run.run_dir = resume_dir
        state = load_state(resume_dir / STATE)
        _restore(run, state)
        _extend(run, state)
    if rank == 0:
        write_atomic(run.run_dir / CONFIG, "".join(f"# {n}\n" for n in run.notes) + dump_recipe(cfg))
        save_data_info(run.run_dir, info)
    return run


def _start_weights(cfg: dict, model: torch.nn.Module, new_run: bool) -> tuple[list[str], list[str]]:
    """The recipe's ``init`` weights (a new run only: a resumed one has its own) and ``freeze``; the frozen
    module names and the notes saying what was done."""
    notes = []
    if cfg["init"] is not None and new_run:
        notes.append(load_init(model, cfg["init"]))
    frozen = freeze_modules(model, cfg["freeze"])
    if frozen and new_run:
        n = sum(p.numel() for m in frozen_modules(model, frozen) for p in m.parameters())
        notes.append(f"frozen (weights, BatchNorm statistics and dropout): {', '.join(frozen)} ({n:,} parameters)")
    return frozen, notes


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
    run.resume_step, run.partial = int(state.get("step", 0)), state.get("partial")
    run.notes = list(state.get("notes", []))
    run.notes_shown = len(run.notes)


def _extend(run: _Run, state: dict) -> None:
    """Resumed with other ``epochs``: every schedule continues on its closed form re-built for the new length
    from the step reached (not the rate the old schedule ended on), and the run says so."""
    cfg = run.cfg
    old = state.get("epochs") or load_recipe(run.run_dir / CONFIG)["epochs"]  # (states before issue 9: the config)
    if old == cfg["epochs"] or run.start >= cfg["epochs"]:
        return
    for s in run.schedules:
        s.sync()
    at = f"epoch {run.start + 1}" + (f", step {run.resume_step + 1}" if run.resume_step else "")
    how = ("the plateau schedule keeps its rate" if cfg["schedule"]["name"] == "plateau" else
           f"the {cfg['schedule']['name']} schedule is re-built for {cfg['epochs']} epochs")
    run.notes.append(f"resumed to train {cfg['epochs']} epochs instead of {old}: {how}; {at} continues at lr "
                     f"{_base_lr(run.optimizers[0]):.6g}")


# --- one epoch -------------------------------------------------------------------------------------
def _early_stop(run: _Run) -> str | None:
    """Why the run stops before its next epoch (early_stopping on the task's monitored metric), or None."""
    es, key, mode = run.cfg["early_stopping"], f"val_{run.task.monitor}", run.task.monitor_mode
    if es["patience"] is None:
        return None
    best, best_epoch, wait = None, 0, 0
    for row in run.history:
        v = row.get(key)
        better = v is not None and math.isfinite(v) and (
            best is None or (v > best + es["min_delta"] if mode == "max" else v < best - es["min_delta"]))
        if better:
            best, best_epoch, wait = v, row["epoch"], 0
        else:
            wait += 1
    if wait < es["patience"]:
        return None
    return (f"stopped early after epoch {len(run.history)} of {run.cfg['epochs']}: validation {run.task.monitor} "
            f"has not improved by more than {es['min_delta']:g} for {wait} epochs (patience {es['patience']}; best "
            f"{best if best is None else format(best, '.4g')} at epoch {best_epoch})")


def _train_epoch(run: _Run, epoch: int, bar: Progress) -> dict[str, float]:
    """One pass over the training split; the mean of every logged part (``train_loss`` ...). A run resumed
    from a mid-epoch checkpoint skips the batches done and carries on with that checkpoint's sums."""
    fabric, cfg, method, accumulate = run.fabric, run.cfg, run.method, run.cfg["accumulate"]
    run.generator.manual_seed(seed_epoch(cfg["seed"], epoch, fabric.global_rank))  # worker seeds; see checkpoint.py
    run.sampler.set_epoch(epoch)
    run.wrapped.train()
    for m in run.frozen:
        m.eval()
    method.on_train_epoch_start(epoch)
    sums: dict[str, torch.Tensor] = {}
    skip = run.resume_step * accumulate
    if run.partial:
        sums = {k: v.to(fabric.device) / fabric.world_size for k, v in run.partial["sums"].items()}
    run.resume_step, run.partial = 0, None
    n_batches = run.steps_per_epoch * accumulate  # a last, incomplete accumulation group is dropped
    group = torch.zeros((), dtype=torch.float64, device=fabric.device)
    lr = 0.0
    for i, batch in enumerate(run.loader):
        if i >= n_batches:
            break
        if i < skip:  # done before the checkpoint this run resumed from: read (workers draw as then), not trained
            if i == skip - 1:
                seed_step(cfg["seed"], epoch, (i + 1) // accumulate, fabric.global_rank)
            continue
        if i % accumulate == 0:
            lr = _base_lr(run.optimizers[0])
        if epoch == run.start and i == skip:
            parts = _first_batch(run, i, fabric.to_device(batch))
        else:
            parts = _train_batch(run, i, fabric.to_device(batch))
        for k, v in parts.items():
            sums[k] = sums.get(k, torch.zeros((), dtype=torch.float64, device=fabric.device)) + v.detach().double()
        group += parts["loss"].detach().double()
        boundary = (i + 1) % accumulate == 0
        if boundary:
            _after_step(run, epoch, (i + 1) // accumulate, float(lr), group / accumulate, sums)
            group = torch.zeros_like(group)
        if bar.enabled and boundary:
            bar.step(float(parts["loss"].detach()))
        fabric.call("on_train_batch_end", fabric=fabric, epoch=epoch, step=i, loss=parts["loss"].detach())
    out = {f"train_{k}": float(fabric.all_reduce(v / n_batches, reduce_op="mean")) for k, v in sums.items()}
    if not math.isfinite(out["train_loss"]):
        raise ConvzooError(f"training diverged: the loss is {out['train_loss']} in epoch {epoch + 1}; lower "
                           "optimizer.lr or set grad_clip (the last good checkpoint is kept)")
    return out


_SHAPE_WORDS = ("size", "shape", "dimension", "channels")


def _first_batch(run: _Run, i: int, batch) -> dict[str, torch.Tensor]:
    """:func:`_train_batch` for the first batch of a run: a shape error there means the data does not fit the
    model (inputs too small for its strides, other channels): a one-line error naming both."""
    try:
        return _train_batch(run, i, batch)
    except RuntimeError as e:
        first = (str(e).strip().splitlines() or [""])[0]
        if not any(w in first.lower() for w in _SHAPE_WORDS):
            raise
        x = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
        shape = f" (inputs {tuple(x.shape)})" if isinstance(x, torch.Tensor) else ""
        raise ConvzooError(f"model '{run.cfg['model']['name']}' cannot take the training batches of "
                           f"'{run.cfg['data']['name']}'{shape}: {first}; give the data another size (data.kwargs) "
                           "or choose a model for these inputs") from None


def _after_step(run: _Run, epoch: int, step: int, lr: float, loss: torch.Tensor, sums: dict) -> None:
    """After optimizer step ``step`` (1-based) of ``epoch``: the step log, and every
    ``checkpoint_every_n_steps`` a mid-epoch checkpoint (then every RNG is re-seeded, see checkpoint.py)."""
    fabric, spe = run.fabric, run.steps_per_epoch
    global_step = epoch * spe + step
    if run.steplog.wants(global_step):
        loss = float(fabric.all_reduce(loss, reduce_op="mean"))
        run.steplog.step({"step": global_step, "epoch": global_step / spe, "lr": lr, "loss": loss})
    every = run.cfg["checkpoint_every_n_steps"]
    if every is None or global_step % every or step == spe:  # the epoch's end writes its own checkpoint
        return
    reduced = {k: fabric.all_reduce(v, reduce_op="sum").detach().cpu() for k, v in sums.items()}
    if fabric.global_rank == 0:
        _save_state(run, epoch, step, {"sums": reduced, "lr": run.epoch_lr, "time": time.perf_counter() - run.epoch_t0})
    fabric.barrier()
    seed_step(run.cfg["seed"], epoch, step, fabric.global_rank)


def _train_batch(run: _Run, i: int, batch) -> dict[str, torch.Tensor]:
    """Batch ``i`` of an epoch (on the device): transform, forward, backward, and every ``accumulate``-th
    batch the optimizer step. ``convzoo bench --train`` times this same function."""
    fabric, method, accumulate = run.fabric, run.method, run.cfg["accumulate"]
    if run.batch_transform is not None:
        batch = run.batch_transform(batch)
    if uses_channels_last(run.cfg):
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
    val = evaluate_loader(run.fabric, run.eval_method, run.val_loader, run.task, run.eval_ds, uses_channels_last(run.cfg),
                          run.cfg["limit_eval_batches"])
    if run.task.monitor not in val:
        raise ConvzooError(f"task '{run.task.name}' monitors '{run.task.monitor}' but its metrics are {list(val)}")
    return val


def _end_epoch(run: _Run, epoch: int, row: dict, val: dict, t0: float) -> None:
    """Schedules, best epoch, history and the checkpoint (rank 0), then every process waits."""
    monitor, mode = run.task.monitor, run.task.monitor_mode
    for s in run.schedules:
        s.step_epoch(val.get(monitor))
    # without a validation split the best checkpoint follows the last epoch
    improved = monitor not in val or not run.best or _better(val.get(monitor), run.best.get(monitor), mode)
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
    _save_state(run, epoch)


def _save_state(run: _Run, epoch: int, step: int = 0, partial: dict | None = None) -> None:
    """``state.pt``: after ``epoch`` epochs, or (``step`` > 0) after ``step`` optimizer steps of epoch
    ``epoch`` (0-based) with that epoch's ``partial`` sums, lr and time."""
    save_state(run.run_dir / STATE, {
        "version": STATE_VERSION, "epoch": epoch, "step": step, "partial": partial, "epochs": run.cfg["epochs"],
        "world_size": run.fabric.world_size, "recipe": run.cfg["name"],
        "method": {k: v.detach().cpu() for k, v in run.method.state_dict().items()},
        "optimizers": [o.state_dict() for o in run.optimizers],
        "schedules": [s.state_dict() for s in run.schedules],
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "history": run.history, "best": run.best, "elapsed": run.elapsed, "rng": rng_state(), "notes": run.notes,
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
    """The test split with the final weights and (when another epoch was best) with ``best.safetensors``;
    results.json, pictures and report.md (rank 0)."""
    fabric, cfg, d = run.fabric, run.cfg, run.cfg["data"]
    t0 = time.perf_counter()
    test_ds = build_data(cfg, d["test_split"]) if d["test_split"] else None
    metrics, test_best = {}, None
    if test_ds is not None:
        test_loader = eval_loader(test_ds, cfg["eval_batch_size"], fabric.global_rank, fabric.world_size,
                                  d["num_workers"], fabric.device.type == "cuda", run.task.collate)

        def test():
            return evaluate_loader(fabric, run.eval_method, test_loader, run.task, test_ds, uses_channels_last(cfg),
                                   cfg["limit_eval_batches"])

        metrics = test()
        if run.best.get("epoch", len(run.history)) != len(run.history) and (run.run_dir / BEST).is_file():
            test_best = _with_weights(run, run.run_dir / BEST, test)
    run.elapsed += time.perf_counter() - t0
    result = RunResult(run.run_dir, metrics, run.best, int(run.best.get("epoch", 0)), len(run.history),
                       run.elapsed, run.history, test_best, run.stopped, list(run.notes))
    if fabric.global_rank == 0:
        _report(run, test_ds if test_ds is not None else run.eval_ds, result)
    fabric.barrier()
    fabric.call("on_train_end", fabric=fabric, result=result)
    return result if fabric.global_rank == 0 else None


def _with_weights(run: _Run, path: Path, fn):
    """``fn()`` with the kept model holding the weights file ``path``; the final weights are put back."""
    from convzoo.weights import load_weights

    model = run.eval_method.export_model()
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        load_weights(model, path)
        return fn()
    finally:
        model.load_state_dict(final)


def _report(run: _Run, dataset, result: RunResult) -> None:
    from convzoo.registry import count_params, get_card

    results = {"test": result.metrics, "best": result.best, "epochs": result.epochs,
               "wall_time": result.wall_time, "world_size": run.fabric.world_size}
    if result.test_best is not None:
        results["test_best"] = result.test_best
    if result.stopped_early:
        results["stopped_early"] = result.stopped_early
    if result.notes:
        results["notes"] = result.notes
    if run.cfg["init"]:
        results["init"] = run.cfg["init"]
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
