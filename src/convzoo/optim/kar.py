"""The Kar2 / Kar3 sign optimisers of the Terminator paper.

"HyperZ.Z.W Operator Connects Slow-Fast Networks for Full Context Interaction" (Harvie Zhang, arXiv
2401.17948; seed paper 34), as the surviving ``models/kar.py`` of the withdrawn official repository specifies
them. Kar3 keeps two exponential moving averages m1, m2 of the gradient (betas b1, b2, no bias correction,
both start at 0) and takes three sign steps per call, the averages read before they are updated::

    p <- p - lr * (sign(g) + sign(m1) + sign(m2));   m1 <- b1 m1 + (1 - b1) g;   m2 <- b2 m2 + (1 - b2) g

Kar2 is the same with one average (beta b). Neither has weight decay (the paper's point); ``weight_decay`` is
accepted so the engine can pass its default, and must be 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.optim import Optimizer

from convzoo.errors import ConvzooError

__all__ = ["Kar2", "Kar3"]


class _Kar(Optimizer):
    num_avgs = 0

    def __init__(self, params, lr: float, betas: Sequence[float], weight_decay: float = 0.0):
        betas = tuple(float(b) for b in betas)
        if lr < 0:
            raise ConvzooError(f"{type(self).__name__}: lr must be >= 0, got {lr}")
        if len(betas) != self.num_avgs or not all(0.0 <= b < 1.0 for b in betas):
            raise ConvzooError(f"{type(self).__name__} takes {self.num_avgs} beta(s) in [0, 1), got {list(betas)}")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})
        if any(g["weight_decay"] for g in self.param_groups):
            raise ConvzooError(f"{type(self).__name__} has no weight decay (the paper removes it); set "
                               f"optimizer.weight_decay: 0 (got {weight_decay})")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, betas = group["lr"], group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state.update({f"exp_avg{i}": torch.zeros_like(p) for i in range(len(betas))})
                avgs = [state[f"exp_avg{i}"] for i in range(len(betas))]
                direction = torch.sign(g)
                for m in avgs:
                    direction.add_(torch.sign(m))  # the averages as they were before this gradient
                p.add_(direction, alpha=-lr)
                for m, b in zip(avgs, betas):
                    m.mul_(b).add_(g, alpha=1 - b)
        return loss


class Kar3(_Kar):
    """Three sign steps per call: the gradient and two moving averages (default betas (0.5, 0.95))."""

    num_avgs = 2

    def __init__(self, params, lr: float = 1e-4, betas: Sequence[float] = (0.5, 0.95), weight_decay: float = 0.0):
        super().__init__(params, lr, betas, weight_decay)


class Kar2(_Kar):
    """Two sign steps per call: the gradient and one moving average (default beta 0.95)."""

    num_avgs = 1

    def __init__(self, params, lr: float = 1e-4, betas: float | Sequence[float] = 0.95, weight_decay: float = 0.0):
        super().__init__(params, lr, (betas,) if isinstance(betas, (int, float)) else betas, weight_decay)
