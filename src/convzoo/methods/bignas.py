"""BigNAS training of a single-stage supernet (Yu et al., "BigNAS: Scaling Up Neural Architecture
Search with Big Single-Stage Models", ECCV 2020, arXiv 2003.11142, Sec. 3.1; seed paper 56).

``method: {name: bignas}`` over a :class:`~convzoo.models.bignas.BigNASSupernet` and the
classification task. One training step (one optimizer step):

* **sandwich rule**: the largest child, the smallest child and ``num_random`` (paper: 2) children drawn
  uniformly from the space run on the same batch; their losses are summed, so the gradients of all
  children accumulate before the single optimizer step. (The sum is returned for the engine to
  back-propagate once: one backward keeps DDP's one-gradient-per-step contract, at the cost of holding
  the children's activations together.)
* **inplace distillation**: the largest child learns from the labels (the task's loss, with its label
  smoothing); every other child learns from the largest child's *detached* softmax on the same image,
  resized to the child's resolution (soft-target cross-entropy, temperature 1).
* **regularisation only on the largest child**: dropout acts only in its pass (``model.regularize``),
  and weight decay is an explicit L2 term ``sum_g wd_g / 2 * ||W_g||^2`` added to its loss, with the
  optimizer's own weight decay set to 0 (parameter groups cannot tell children apart: every child's
  weights are a slice of the same tensors). The groups and their decays are the usual ones
  (:func:`convzoo.methods.base.param_groups`: no decay on 1-D parameters); for SGD / RMSprop this is
  the recipe's weight decay applied once per step, not once per child.
* **BN statistics**: only the largest child's pass updates the running statistics; the other children
  normalise with batch statistics and are calibrated after training (Sec. 3.1 "batch norm
  calibration", :func:`convzoo.nas.bignas.calibrate_bn`). So the per-epoch validation and the run's
  saved weights are the largest child's, consistent without calibration.
* **learning rate, exponentially decaying with a constant ending** (Sec. 3.1): the recipe's
  ``schedule: {name: exponential, interval: step}`` decays it; the engine's exponential schedule has no
  floor, so this method holds every group's lr at ``lr_floor`` x its initial lr once the schedule
  has started to decay (after any warm-up). The lr logged in
  ``metrics.csv`` is the schedule's value before this floor.

Children are drawn from ``random.Random`` seeded by ``(seed, step)`` with the step counter kept in the
method's state, so a resumed run draws the same children and every process of a DDP run the same ones.
Validation and the kept weights (:meth:`export_model`) are the supernet set to its largest child; feed
it images of that child's resolution.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from convzoo.errors import ConvzooError
from convzoo.methods.base import Method, register_method
from convzoo.models.bignas import BigNASSupernet, resize_to


@register_method("bignas")
class BigNAS(Method):
    def __init__(self, model, task, info=None, *, num_random: int = 2, lr_floor: float = 0.05, seed: int = 0):
        super().__init__(model, task)
        if not isinstance(model, BigNASSupernet):
            raise ConvzooError(f"method 'bignas' trains a BigNAS supernet (model bignas_supernet), got "
                               f"{type(model).__name__}")
        if num_random < 0 or not 0.0 <= lr_floor <= 1.0:
            raise ConvzooError(f"bignas needs num_random >= 0 and 0 <= lr_floor <= 1, got {num_random}, {lr_floor}")
        self.num_random, self.lr_floor, self.seed = int(num_random), float(lr_floor), int(seed)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("lr_prev", torch.full((), -1.0, dtype=torch.float64))  # last lr factor seen
        self.register_buffer("lr_decaying", torch.zeros((), dtype=torch.bool))
        self._decay: list[tuple[float, list[torch.nn.Parameter]]] = []  # (weight decay, params) of the L2 term

    # --- optimisation ------------------------------------------------------------------------------
    def configure_optimizers(self, opt: dict, build):
        """One optimizer with weight decay 0; the groups' decays move into the largest child's L2 term."""
        groups = self.param_groups(opt)
        self._decay = [(g["weight_decay"], g["params"]) for g in groups if g["weight_decay"] > 0]
        for g in groups:
            g["weight_decay"] = 0.0
        return [build(groups)]

    def l2_penalty(self) -> torch.Tensor:
        total = torch.zeros((), device=self.steps.device)
        for wd, params in self._decay:
            total = total + 0.5 * wd * sum(p.pow(2).sum() for p in params)
        return total

    @torch.no_grad()
    def _hold_lr_floor(self) -> None:
        """Raise every group's lr to ``lr_floor`` x its initial lr once the schedule has started to decay
        (the first step whose lr is below the previous step's), so warm-up is left alone."""
        for opt in self.optimizers():
            groups = [g for g in opt.param_groups if g.get("initial_lr")]
            if not groups:
                continue
            lr = groups[0]["lr"] / groups[0]["initial_lr"]  # the schedule's factor this step
            if 0 <= lr < float(self.lr_prev):
                self.lr_decaying.fill_(True)
            self.lr_prev.fill_(lr)
            if bool(self.lr_decaying):
                for g in groups:
                    g["lr"] = max(g["lr"], self.lr_floor * g["initial_lr"])

    # --- one step -----------------------------------------------------------------------------------
    def sandwich(self) -> list:
        """This step's children: largest, smallest, then ``num_random`` uniform draws."""
        net = self.model
        rng = random.Random(self.seed * 1_000_003 + int(self.steps))
        return [net.largest(), net.smallest(), *(net.sample_child(rng) for _ in range(self.num_random))]

    def _run(self, cfg, x: torch.Tensor, largest: bool) -> torch.Tensor:
        net = self.model
        net.set_active(cfg)
        net.regularize = largest
        net.track_bn(largest)
        return net(resize_to(x, cfg.resolution)).float()

    def training_step(self, batch) -> dict[str, torch.Tensor]:
        x, y = batch
        self._hold_lr_floor()
        biggest, *others = self.sandwich()
        self.steps += 1
        logits = self._run(biggest, x, largest=True)
        ce = self.task.loss(logits, y)
        ce = ce["loss"] if isinstance(ce, dict) else ce
        l2 = self.l2_penalty()
        soft = logits.detach().softmax(-1)  # the teacher: no gradient flows back through the targets
        kd = [F.cross_entropy(self._run(cfg, x, largest=False), soft) for cfg in others]
        self._run_done(biggest)
        total = ce + l2 + sum(kd)
        parts = {"loss": total, "max": ce.detach(), "l2": l2.detach()}
        if kd:
            parts["min"] = kd[0].detach()
        if len(kd) > 1:
            parts["rand"] = torch.stack(kd[1:]).mean().detach()
        return parts

    def _run_done(self, biggest) -> None:
        net = self.model
        net.set_active(biggest)
        net.regularize = True
        net.track_bn(True)

    def validation_step(self, batch):
        """The largest child at its resolution."""
        x, y = batch
        cfg = self.model.largest()
        self.model.set_active(cfg)
        return self.model(resize_to(x, cfg.resolution)), y

    def export_model(self):
        return self.model.set_active(self.model.largest())
