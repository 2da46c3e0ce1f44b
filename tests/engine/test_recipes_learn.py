"""Every CPU-scale digits recipe builds its model, data and task, and the model fits a batch of real digits.

A cheap proof behind each family's "CPU-scale recipe trains" claim: 20 AdamW steps on 32 training digits
(the recipe's model, data options and task loss) must halve the loss. The full runs and their test
accuracies are in the run reports (`convzoo train NAME`).
"""

from __future__ import annotations

import pytest
import torch

from convzoo.engine import list_recipes, load_recipe
from convzoo.engine.evaluate import build_data, build_model, build_task_for

STEPS = 20
DIGITS = [n for n in list_recipes() if n.endswith("_digits")]


@pytest.mark.claim(paper=10, artefact="ela_resnet18_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (20 AdamW steps halve the loss)")
@pytest.mark.claim(paper=13, artefact="unireplknet_digits",
                   claim="recipe validates; a narrow UniRepLKNet lowers the loss on a digits batch")
@pytest.mark.claim(paper=18, artefact="lsnet_digits",
                   claim="recipe validates; a narrow LSNet lowers the loss on a digits batch")
@pytest.mark.claim(paper=21, artefact="spartan_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (20 AdamW steps halve the loss)")
@pytest.mark.claim(paper=32, artefact="simplenet_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (20 AdamW steps halve the loss)")
@pytest.mark.claim(paper=33, artefact="inception_v4_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (20 AdamW steps halve the loss)")
@pytest.mark.claim(paper=37, artefact="ibnnet_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (20 AdamW steps halve the loss)")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (20 AdamW steps halve the loss)")
@pytest.mark.claim(paper=40, artefact="cnn_svm_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (20 AdamW steps halve the loss)")
@pytest.mark.claim(paper=43, artefact="eca_resnet18_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (20 AdamW steps halve the loss)")
@pytest.mark.claim(paper=53, artefact="vovnet_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (20 AdamW steps halve the loss)")
@pytest.mark.parametrize("name", DIGITS)
def test_cpu_recipe_model_fits_a_batch(name):
    cfg = load_recipe(name)
    data = build_data(cfg, "train")
    task = build_task_for(cfg, data.info)
    torch.manual_seed(0)
    model = build_model(cfg, data.info).train()
    x = torch.stack([data[i][0] for i in range(32)])
    y = torch.tensor([data[i][1] for i in range(32)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(STEPS):
        outputs, targets = task.forward(model, (x, y))
        loss = task.loss(outputs, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
