"""What a person sees of a run: the progress bar, ``metrics.csv``, ``steps.csv``, ``curves.png``, ``report.md``.

``metrics.csv`` has one row per epoch (epoch, train parts, the lr of the epoch's first step, validation
metrics, time). With ``log_every_n_steps: N`` the run also writes ``steps.csv``, one row every N optimizer
steps: ``step`` (optimizer steps since the start), ``epoch`` (fractional: ``step / steps per epoch``),
``lr`` (the rate that step used) and ``loss`` (the mean training loss of that step over all processes);
with ``tensorboard: true`` the same values, and every epoch row, go to a TensorBoard event file in
``RUN/tensorboard`` (``tensorboard --logdir RUN``).

Every file except ``steps.csv`` is written atomically (temporary file + rename), so an error or a kill
never leaves a half-written one, and earlier epochs' rows are never lost; ``steps.csv`` is appended to,
and a resumed run first drops the rows after the step it resumes from.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from convzoo.engine.checkpoint import write_atomic

METRICS_CSV, CURVES, REPORT, RESULTS = "metrics.csv", "curves.png", "report.md", "results.json"
STEPS_CSV, TENSORBOARD = "steps.csv", "tensorboard"
STEP_COLUMNS = ("step", "epoch", "lr", "loss")


# --- progress bar ------------------------------------------------------------------------------
class Progress:
    """A rich progress bar over all training steps (loss, monitored metric, ETA); rank 0 only.

    Disabled (``enabled=False``), every method is a no-op, so the loop never branches on it.
    """

    def __init__(self, enabled: bool, total_steps: int, epochs: int, monitor: str, done_steps: int = 0):
        self.enabled, self.epochs, self.monitor = enabled, epochs, monitor
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[metric]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        )
        self.task = self.bar.add_task("", total=total_steps, completed=done_steps, loss="-", metric="")
        self.bar.start()

    def epoch(self, epoch: int) -> None:
        if self.enabled:
            self.bar.update(self.task, description=f"epoch {epoch + 1}/{self.epochs}")

    def step(self, loss: float) -> None:
        if self.enabled:
            self.bar.update(self.task, advance=1, loss=f"{loss:.4f}")

    def epoch_end(self, row: dict) -> None:
        if not self.enabled:
            return
        value = row.get(f"val_{self.monitor}")
        metric = f"val {self.monitor} {value:.4f}" if isinstance(value, float) else ""
        self.bar.update(self.task, metric=metric)
        self.bar.console.print(format_row(row), soft_wrap=True, markup=False, highlight=False)

    def note(self, text: str) -> None:
        """One line on stdout (above the bar when it runs)."""
        if self.enabled:
            self.bar.console.print(text, soft_wrap=True, markup=False, highlight=False)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()


def format_row(row: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())


# --- metrics.csv -------------------------------------------------------------------------------
def write_metrics_csv(run_dir: Path, history: list[dict]) -> Path:
    """All epochs so far: epoch, train_loss, lr, each validation metric, time (seconds)."""
    cols: list[str] = []
    for row in history:
        cols += [k for k in row if k not in cols]
    cols = [c for c in cols if c != "time"] + (["time"] if "time" in cols else [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return write_atomic(Path(run_dir) / METRICS_CSV, buf.getvalue())


def read_metrics_csv(run_dir: Path) -> list[dict]:
    with open(Path(run_dir) / METRICS_CSV, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""}
                for row in csv.DictReader(f)]


# --- steps.csv and TensorBoard -------------------------------------------------------------------
class StepLog:
    """``steps.csv`` rows every ``every`` optimizer steps and, with ``tensorboard``, a SummaryWriter;
    rank 0 only (``enabled=False``: every method is a no-op). ``resume_step``: drop rows after it."""

    def __init__(self, run_dir: Path, enabled: bool, every: int | None, tensorboard: bool, resume_step: int = 0):
        self.path, self.every = Path(run_dir) / STEPS_CSV, every
        self.enabled, self.writer = enabled, None
        if not enabled:
            return
        if every is not None:
            self._truncate(resume_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD),
                                        purge_step=resume_step + 1 if resume_step else None)

    def _truncate(self, step: int) -> None:
        keep = [r for r in read_steps_csv(self.path.parent) if r["step"] <= step] if self.path.is_file() else []
        text = ",".join(STEP_COLUMNS) + "\n" + "".join(_step_line(r) for r in keep)
        write_atomic(self.path, text)

    def wants(self, step: int) -> bool:
        return self.every is not None and step % self.every == 0

    def step(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(_step_line(row))
        if self.writer is not None:
            self.writer.add_scalar("train/loss_step", row["loss"], row["step"])
            self.writer.add_scalar("lr_step", row["lr"], row["step"])

    def epoch(self, row: dict, step: int) -> None:
        if self.writer is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, float):
                    self.writer.add_scalar(f"epoch/{k}", v, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _step_line(row: dict) -> str:
    return ",".join(repr(row[k]) if isinstance(row[k], float) else str(row[k]) for k in STEP_COLUMNS) + "\n"


def read_steps_csv(run_dir: Path) -> list[dict]:
    """The rows of ``steps.csv`` (empty when the run logged no steps)."""
    path = Path(run_dir) / STEPS_CSV
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "step" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)
                if row.get("loss")]


# --- curves.png --------------------------------------------------------------------------------
def plot_curves(run_dir: Path, history: list[dict], monitor: str) -> Path | None:
    """``curves.png``: :func:`curves_figure` of the epochs and the logged steps of ``steps.csv``."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = curves_figure(history, read_steps_csv(run_dir), monitor)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return write_atomic(Path(run_dir) / CURVES, buf.getvalue())


def curves_figure(history: list[dict], steps: list[dict], monitor: str):
    """Loss (train and validation, on a log axis when every loss is positive, so one spike does not flatten
    the rest), the monitored validation metric, and the learning rate, against epoch; the per-step loss and
    lr are drawn too when ``steps`` (rows of ``steps.csv``) are given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    key = f"val_{monitor}"
    panels = 3 if any(key in r for r in history) else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 4))
    a, c = axes[0], axes[-1]
    if steps:
        a.plot([r["epoch"] for r in steps], [r["loss"] for r in steps], "-", color="C0", alpha=0.3, lw=0.8,
               label="train (steps)")
    a.plot(epochs, [r["train_loss"] for r in history], "o-", color="C0", label="train")
    losses = [r["train_loss"] for r in history] + [r["loss"] for r in steps]
    if any("val_loss" in r for r in history):
        a.plot(epochs, [r.get("val_loss", math.nan) for r in history], "s-", color="C1", label="validation")
        losses += [r["val_loss"] for r in history if "val_loss" in r]
    finite = [v for v in losses if math.isfinite(v)]
    if finite and min(finite) > 0:  # a log axis: one spike no longer flattens the rest
        a.set_yscale("log")
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    a.legend()
    if panels == 3:
        axes[1].plot(epochs, [r.get(key, math.nan) for r in history], "o-", color="C2")
        axes[1].set(xlabel="epoch", ylabel=monitor, title=f"validation {monitor}")
    if steps:
        c.plot([r["epoch"] for r in steps], [r["lr"] for r in steps], "-", color="C3", drawstyle="steps-pre")
    else:  # the lr of each epoch, held over it
        c.step([e - 1 for e in epochs] + [epochs[-1]], [r["lr"] for r in history] + [history[-1]["lr"]], where="post",
               color="C3")
    c.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    c.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --- results.json and report.md ----------------------------------------------------------------
def write_results(run_dir: Path, results: dict) -> Path:
    return write_atomic(Path(run_dir) / RESULTS, json.dumps(results, indent=2, sort_keys=False) + "\n")


def _kw(kwargs: dict) -> str:
    return " (" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")" if kwargs else ""


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _recipe_lines(cfg: dict, world_size: int) -> list[str]:
    """The report's recipe table: what was trained on what, and how."""
    m, d, o, s = cfg["model"], cfg["data"], cfg["optimizer"], cfg["schedule"]
    layout = " (channels_last)" if cfg.get("channels_last") and not cfg.get("fast") else ""
    lines = ["## Recipe", "", "| | |", "|---|---|",
             f"| recipe | `{cfg['name']}`" + (f" (paper {cfg['paper']})" if cfg.get("paper") else "") + " |"]
    if cfg.get("source"):
        lines.append(f"| numbers from | {cfg['source']} |")
    return lines + [
        f"| model | `{m['name']}`{_kw(m['kwargs'])} |",
        (f"| data | `{d['name']}`{_kw(d['kwargs'])}: train `{d['train_split']}`, validation "
         f"`{d['eval_split']}`, test `{d['test_split']}` |"),
        f"| task | `{cfg['task']['name']}`{_kw(cfg['task']['kwargs'])} |",
        f"| optimizer | {o['name']}, lr {o['lr']:g}, weight decay {o['weight_decay']:g}{_kw(o['kwargs'])}"
        + "".join(f"; `{g['match']}` lr x{g['lr_mult']:g}" for g in o["param_groups"]) + " |",
        f"| schedule | {s['name']}{_kw(s['kwargs'])}, warmup {s['warmup_epochs']} epochs |",
        (f"| epochs x batch | {cfg['epochs']} x {cfg['batch_size']} (global, {world_size} process"
         f"{'es' if world_size > 1 else ''}) |"),
        (f"| precision / grad clip / EMA / seed | {cfg['precision']}{layout} / {cfg['grad_clip']} / {cfg['ema']} / "
         f"{cfg['seed']} |"),
    ]


def _model_lines(card, n_params: int, info) -> list[str]:
    """The parameters as trained, and the model card's facts (paper, counts, what it follows)."""
    lines = ["## Model", "", f"- parameters: {n_params:,} as trained here"
             + (f" ({info.num_classes} outputs, {info.in_chans} input channels)" if info is not None else "")]
    if card is None:
        return lines
    lines.append(f"- model card: paper {card.paper}, family `{card.family}`")
    if card.params:
        lines.append(f"- card parameters: {card.params:,} at {card.num_classes} outputs, {card.in_chans} input "
                     f"channels ({card.params_source})")
    if card.macs:
        size = "x".join(map(str, card.input_size))
        lines.append(f"- card compute: {card.macs / 1e6:,.1f} M MACs at {size} ({card.macs_source})")
    if card.source:
        lines.append(f"- implementation follows: {card.source}")
    return lines


def _result_lines(cfg: dict, results: dict) -> list[str]:
    """Test metrics of the final and the best weights, the best validation epoch, wall time."""
    test, test_best = results.get("test", {}), results.get("test_best")
    best = results.get("best") or {}
    lines = [f"## Test metrics (`{cfg['data']['test_split']}`)", ""]
    if test and test_best is not None:
        lines += [f"| metric | final weights (epoch {results['epochs']}) | best checkpoint (epoch {best.get('epoch')}) |",
                  "|---|---|---|"]
        lines += [f"| {k} | {_fmt(v)} | {_fmt(test_best.get(k, ''))} |" for k, v in test.items()]
    elif test:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in test.items()]
        lines += ["", "final weights = best checkpoint" if best.get("epoch") == results["epochs"]
                  else "final weights"]
    else:
        lines.append("no test split in this recipe")
    lines += [""]
    if best:
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in best.items() if k != "epoch")
        lines.append(f"- best validation epoch: {best.get('epoch')} of {results['epochs']} ({shown})")
    lines.append(f"- wall time: {results['wall_time']:.1f} s")
    if results.get("stopped_early"):
        lines.append(f"- {results['stopped_early']}")
    return lines


def write_report(run_dir: Path, cfg: dict, card, n_params: int, results: dict, task_lines: list[str],
                 pictures: list[Path], world_size: int, info=None) -> Path:
    """``report.md``: the recipe, the model card's facts, the test metrics, best epoch, notes, pictures."""
    run_dir = Path(run_dir)
    lines = [f"# {run_dir.name}", ""] + ([cfg["description"], ""] if cfg.get("description") else [])
    lines += _recipe_lines(cfg, world_size) + [""] + _model_lines(card, n_params, info) + [""]
    lines += _result_lines(cfg, results)
    run_notes = list(results.get("notes") or [])
    if task_lines or run_notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in run_notes] + list(task_lines)
    lines += ["", "## Pictures", "", f"![curves]({CURVES})"]
    lines += [f"![{Path(p).stem}]({os.path.relpath(Path(p), run_dir)})" for p in pictures]
    return write_atomic(run_dir / REPORT, "\n".join(lines) + "\n")
