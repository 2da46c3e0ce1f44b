"""Optimisers, learning-rate schedules and the weight EMA, built from a recipe.

* Optimiser: ``torch.optim`` SGD / Adam / AdamW / Adadelta / RMSprop with ``optimizer.kwargs``
  passed through. ``optimizer.param_groups`` gives parameters whose name matches a glob their own
  lr multiplier (and optionally weight decay); the first matching entry wins. ESPCN, for example,
  trains its last layer with a 10x smaller rate: ``[{match: "conv3.*", lr_mult: 0.1}]``.
* Schedule: one lr factor per epoch, stepped once at the end of each epoch. Linear warmup over
  ``warmup_epochs`` (factor ``(e + 1) / (W + 1)`` in epoch ``e < W``), then the named shape. Step
  and multistep milestones count absolute epochs (as papers write them: "divide by 10 at epochs 30
  and 60"); cosine decays over the epochs after warmup. ``plateau`` is
  ``torch.optim.lr_scheduler.ReduceLROnPlateau`` on the task's monitored validation metric.
* EMA: ``torch.optim.swa_utils.AveragedModel`` with the EMA update and buffers averaged too;
  evaluation and the saved weights use the average when ``ema`` is set.
"""

from __future__ import annotations

import bisect
import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from convzoo.errors import ConvzooError
from convzoo.methods.base import param_groups
from convzoo.optim.kar import Kar2, Kar3

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
    "kar2": Kar2,  # sign optimisers of the Terminator paper (34), convzoo.optim.kar
    "kar3": Kar3,
}


def build_optimizer(module: nn.Module, opt: dict, groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """The recipe's ``optimizer`` section as a torch optimiser over ``groups`` (default: the
    :func:`~convzoo.methods.base.param_groups` of ``module``: recipe globs + the no-decay rule)."""
    cls = OPTIMIZERS[opt["name"]]
    if groups is None:
        groups = param_groups(module, opt)
    try:
        return cls(groups, lr=opt["lr"], weight_decay=opt["weight_decay"], **opt["kwargs"])
    except (TypeError, ValueError) as e:
        raise ConvzooError(f"optimizer '{opt['name']}' rejects optimizer.kwargs {opt['kwargs']}: {e}") from None


def _shape(name: str, kw: dict, warmup: int, epochs: int, base_lr: float):
    """Factor of the base lr in (0-based) epoch ``e`` for the closed-form schedules."""
    allowed = {"constant": set(), "cosine": {"eta_min"}, "step": {"step_size", "gamma"},
               "multistep": {"milestones", "gamma"}, "exponential": {"gamma", "eta_min"}}[name]
    bad = set(kw) - allowed
    if bad:
        raise ConvzooError(f"schedule '{name}' does not take schedule.kwargs {sorted(bad)}; "
                           f"it takes {sorted(allowed) or 'none'}")
    gamma = float(kw.get("gamma", 0.1))
    if name == "constant":
        return lambda e: 1.0
    if name == "cosine":  # torch's CosineAnnealingLR closed form, over the epochs after warmup
        floor = float(kw.get("eta_min", 0.0)) / base_lr if base_lr > 0 else 0.0
        span = max(1, epochs - warmup)
        return lambda e: floor + (1 - floor) * (1 + math.cos(math.pi * min(max(e - warmup, 0), span) / span)) / 2
    if name == "step":
        if "step_size" not in kw:
            raise ConvzooError("schedule 'step' needs schedule.kwargs.step_size (epochs between decays)")
        step = int(kw["step_size"])
        return lambda e: gamma ** (int(e) // step)
    if name == "multistep":
        if "milestones" not in kw:
            raise ConvzooError("schedule 'multistep' needs schedule.kwargs.milestones (a list of epochs)")
        miles = sorted(int(m) for m in kw["milestones"])
        return lambda e: gamma ** bisect.bisect_right(miles, int(e))
    if "gamma" not in kw:
        raise ConvzooError("schedule 'exponential' needs schedule.kwargs.gamma (decay per epoch)")
    # smooth per step when evaluated at fractional epochs; eta_min: the constant ending (BigNAS, paper 56)
    floor = float(kw.get("eta_min", 0.0)) / base_lr if base_lr > 0 else 0.0
    return lambda e: max(gamma**e, floor)


class Schedule:
    """Linear warmup, then one of the named schedules, stepped per epoch or per optimizer step.

    ``sched["interval"]``: ``"epoch"`` (the lr set after ``n`` calls to :meth:`step_epoch` is the one
    of epoch ``n``; warmup factor ``(e + 1) / (W + 1)``) or ``"step"`` (the closed forms are evaluated
    at the fractional epoch ``t = s / steps_per_epoch`` after ``s`` optimizer steps, warmup factor
    ``(s + 1) / (W * steps_per_epoch)`` up to 1, as timm's per-iteration schedules). ``plateau`` steps
    per epoch on the monitored metric. ``state_dict`` holds plain numbers only (``state.pt`` is read
    with weights_only).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, sched: dict, epochs: int, base_lr: float,
                 mode: str = "max", steps_per_epoch: int = 1):
        self.optimizer, self.name = optimizer, sched["name"]
        self.interval = sched.get("interval", "epoch")
        self.warmup, self.epoch = float(sched["warmup_epochs"]), 0
        self.spe = max(1, int(steps_per_epoch)) if self.interval == "step" else 1
        self.base = [g["lr"] for g in optimizer.param_groups]
        if self.name == "plateau":
            if self.interval == "step":
                raise ConvzooError("schedule 'plateau' follows a validation metric and steps per epoch; "
                                   "set schedule.interval: epoch")
            try:
                self.inner = ReduceLROnPlateau(optimizer, mode=mode, **sched["kwargs"])
            except TypeError as e:
                raise ConvzooError(f"schedule 'plateau' rejects schedule.kwargs {sched['kwargs']}: {e}") from None
            self._set_warm(0)
        else:
            shape = _shape(self.name, sched["kwargs"], self.warmup, epochs, base_lr)
            self.inner = LambdaLR(optimizer, lambda n: self._warm(n) * shape(n / self.spe))

    def _warm(self, n: int) -> float:
        if self.interval == "step":
            span = self.warmup * self.spe
            return min(1.0, (n + 1) / span) if span > 0 else 1.0
        return (n + 1) / (self.warmup + 1) if n < self.warmup else 1.0

    def _set_warm(self, e: int) -> None:
        if e <= self.warmup:
            for g, lr in zip(self.optimizer.param_groups, self.base):
                g["lr"] = lr * self._warm(e)

    def step_batch(self) -> None:
        """After every optimizer step."""
        if self.interval == "step":
            self.inner.step()

    def step_epoch(self, metric: float | None = None) -> None:
        """After every epoch (with the monitored validation metric, for ``plateau``)."""
        self.epoch += 1
        if self.interval == "step":
            return
        if self.name != "plateau":
            self.inner.step()
        elif self.epoch <= self.warmup:
            self._set_warm(self.epoch)
        elif metric is not None and math.isfinite(metric):
            self.inner.step(metric)

    step = step_epoch  # the per-epoch call of earlier versions

    def sync(self) -> None:
        """Set the lr to this schedule's closed form at the position reached (after :meth:`load_state_dict`
        into a schedule built for other ``epochs``: resuming to train longer follows the stretched schedule)."""
        if self.name == "plateau":
            return
        n = self.inner.last_epoch
        for g, base, fn in zip(self.optimizer.param_groups, self.inner.base_lrs, self.inner.lr_lambdas):
            g["lr"] = base * fn(n)
        self.inner._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def lrs(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        inner = {k: v for k, v in self.inner.state_dict().items() if k != "lr_lambdas"}
        return {"epoch": self.epoch, "inner": inner}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        inner = dict(state["inner"])
        if self.name != "plateau":
            inner["lr_lambdas"] = [None] * len(self.optimizer.param_groups)
        self.inner.load_state_dict(inner)


EpochSchedule = Schedule


def build_ema(model: nn.Module, decay: float | None) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers, or None."""
    if decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
