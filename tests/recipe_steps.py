"""A CPU recipe's first optimizer steps on a batch of the bundled real digits.

The token models' CPU recipes (ConViT, CrossViT, HaloNet) name Fashion-MNIST, which CI may not have
fetched; their smoke claims run the recipe's model, kwargs and optimizer on 32 real digits at 32 px instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import convzoo
from convzoo.data import build_dataset
from convzoo.engine import load_recipe
from convzoo.engine.optim import build_optimizer


def digits_recipe_losses(recipe: str, model_name: str | None = None, steps: int = 15, batch: int = 32,
                         size: int = 32) -> tuple[torch.nn.Module, list[float]]:
    """(model, training losses of ``steps`` full-batch steps) for ``recipe``'s model and optimizer, seed 0."""
    r = load_recipe(recipe)
    name = model_name or r["model"]["name"]
    assert recipe in convzoo.get_card(name).recipes
    data = build_dataset("digits", "train", size=size)
    x, y = map(torch.stack, zip(*[(data[i][0], torch.tensor(data[i][1])) for i in range(batch)]))
    torch.manual_seed(0)
    model = convzoo.create_model(name, num_classes=10, in_chans=x.shape[1], **r["model"]["kwargs"])
    opt = build_optimizer(model, r["optimizer"])
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses
