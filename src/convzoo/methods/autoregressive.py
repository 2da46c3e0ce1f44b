"""Training a channel-sliced autoregressive model on one random channel per image (paper 46).

Axial Transformer (arXiv 1912.12180), official ``models.py`` ``train_fn`` / ``compute_random_slice_nll``:
each training image contributes the NLL of ONE channel ``c ~ U{0..C-1}``, given channels ``< c``
(``model.slice_logits(x, slices)``), so a step costs one decoder pass instead of ``C``; the loss is in
bits per dimension. Its expectation over ``c`` is ``1/C`` of the full NLL per image, which evaluation
(:class:`convzoo.tasks.density.DensityEstimation`, all slices) reports. The optimiser, warm-up,
clipping and EMA of the paper are the recipe's (``axial_transformer_imagenet32_paper``).

Works for any model with ``slice_logits(x, slices) -> (B, H, W, K)`` and the task
``density_estimation``.
"""

from __future__ import annotations

import torch

from convzoo.errors import ConvzooError
from convzoo.methods.base import Method, register_method
from convzoo.tasks.density import bits_per_dim


@register_method("random_channel_slice")
class RandomChannelSlice(Method):
    def __init__(self, model, task, info=None, seed: int | None = None):
        """``seed``: a generator of its own for the slices (None: torch's global one, which the engine seeds)."""
        super().__init__(model, task)
        if not hasattr(model, "slice_logits") or not hasattr(task, "to_levels"):
            raise ConvzooError("random_channel_slice trains a channel-sliced model (slice_logits) on the "
                               "density_estimation task")
        self._gen = torch.Generator().manual_seed(seed) if seed is not None else None

    def training_step(self, batch) -> dict[str, torch.Tensor]:
        x = self.task.to_levels(batch[0])  # (B, C, H, W) levels
        b, c = x.shape[:2]
        slices = torch.randint(0, c, (b,), generator=self._gen).to(x.device)
        logits = self.model.slice_logits(x, slices)  # (B, H, W, K)
        target = x[torch.arange(b, device=x.device), slices]  # (B, H, W)
        return {"loss": bits_per_dim(logits, target).mean()}
