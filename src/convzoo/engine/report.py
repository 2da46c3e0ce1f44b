"""What a person sees of a run: the progress bar, ``metrics.csv``, ``curves.png``, ``report.md``.

Every file is written atomically (temporary file + rename), so an error or a kill never leaves a
half-written one, and earlier epochs' rows are never lost.
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


# --- curves.png --------------------------------------------------------------------------------
def plot_curves(run_dir: Path, history: list[dict], monitor: str) -> Path | None:
    """Loss (train and validation) and the monitored metric against epoch."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    if any("val_loss" in r for r in history):
        a.plot(epochs, [r.get("val_loss", math.nan) for r in history], "s-", label="validation")
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    a.legend()
    key = f"val_{monitor}"
    if any(key in r for r in history):
        b.plot(epochs, [r.get(key, math.nan) for r in history], "o-", color="C2")
        b.set(xlabel="epoch", ylabel=monitor, title=f"validation {monitor}")
    else:
        b.plot(epochs, [r["lr"] for r in history], "o-", color="C3")
        b.set(xlabel="epoch", ylabel="lr", title="learning rate")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return write_atomic(Path(run_dir) / CURVES, buf.getvalue())


# --- results.json and report.md ----------------------------------------------------------------
def write_results(run_dir: Path, results: dict) -> Path:
    return write_atomic(Path(run_dir) / RESULTS, json.dumps(results, indent=2, sort_keys=False) + "\n")


def _kw(kwargs: dict) -> str:
    return " (" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")" if kwargs else ""


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def write_report(run_dir: Path, cfg: dict, card, n_params: int, results: dict, task_lines: list[str],
                 pictures: list[Path], world_size: int, info=None) -> Path:
    """``report.md``: the recipe, the model card's facts, the test metrics, best epoch, pictures."""
    run_dir = Path(run_dir)
    m, d, o, s = cfg["model"], cfg["data"], cfg["optimizer"], cfg["schedule"]
    lines = [f"# {run_dir.name}", ""]
    if cfg.get("description"):
        lines += [cfg["description"], ""]
    lines += ["## Recipe", "", "| | |", "|---|---|",
              f"| recipe | `{cfg['name']}`" + (f" (paper {cfg['paper']})" if cfg.get("paper") else "") + " |"]
    if cfg.get("source"):
        lines.append(f"| numbers from | {cfg['source']} |")
    lines += [
        f"| model | `{m['name']}`{_kw(m['kwargs'])} |",
        (f"| data | `{d['name']}`{_kw(d['kwargs'])}: train `{d['train_split']}`, validation "
         f"`{d['eval_split']}`, test `{d['test_split']}` |"),
        f"| task | `{cfg['task']['name']}`{_kw(cfg['task']['kwargs'])} |",
        f"| optimizer | {o['name']}, lr {o['lr']:g}, weight decay {o['weight_decay']:g}{_kw(o['kwargs'])}"
        + "".join(f"; `{g['match']}` lr x{g['lr_mult']:g}" for g in o["param_groups"]) + " |",
        f"| schedule | {s['name']}{_kw(s['kwargs'])}, warmup {s['warmup_epochs']} epochs |",
        (f"| epochs x batch | {cfg['epochs']} x {cfg['batch_size']} (global, {world_size} process"
         f"{'es' if world_size > 1 else ''}) |"),
        (f"| precision / grad clip / EMA / seed | {cfg['precision']} / {cfg['grad_clip']} / {cfg['ema']} / "
         f"{cfg['seed']} |"),
        "",
        "## Model", "",
        f"- parameters: {n_params:,} as trained here"
        + (f" ({info.num_classes} outputs, {info.in_chans} input channels)" if info is not None else ""),
    ]
    if card is not None:
        lines.append(f"- model card: paper {card.paper}, family `{card.family}`")
        if card.params:
            lines.append(f"- card parameters: {card.params:,} at {card.num_classes} outputs, {card.in_chans} input "
                         f"channels ({card.params_source})")
        if card.macs:
            size = "x".join(map(str, card.input_size))
            lines.append(f"- card compute: {card.macs / 1e6:,.1f} M MACs at {size} ({card.macs_source})")
        if card.source:
            lines.append(f"- implementation follows: {card.source}")
    test = results.get("test", {})
    lines += ["", f"## Test metrics (`{d['test_split']}`, final weights)", ""]
    if test:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in test.items()]
    else:
        lines.append("no test split in this recipe")
    best = results.get("best") or {}
    lines += [""]
    if best:
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in best.items() if k != "epoch")
        lines.append(f"- best validation epoch: {best.get('epoch')} of {results['epochs']} ({shown})")
    lines.append(f"- wall time: {results['wall_time']:.1f} s")
    if task_lines:
        lines += ["", "## Notes", ""] + list(task_lines)
    pics = [Path(p) for p in pictures]
    lines += ["", "## Pictures", "", f"![curves]({CURVES})"]
    for p in pics:
        lines.append(f"![{p.stem}]({os.path.relpath(p, run_dir)})")
    return write_atomic(run_dir / REPORT, "\n".join(lines) + "\n")
