"""Every CPU-scale digits recipe builds its method, data and task, and its training step fits a batch of real digits.

A cheap proof behind each family's "CPU-scale recipe trains" claim: 30 AdamW steps of the recipe's method
(``training_step`` on a batch the task collates from 32 training digits) must halve the loss. The full runs
and their test accuracies are in the run reports (`convzoo train NAME`). A method that starts from an
earlier run (a frozen probe of a pretext run) starts from random weights here.
"""

from __future__ import annotations

import pytest
import torch

from convzoo.engine import list_recipes, load_recipe
from convzoo.engine.build import build_data, build_method, build_task_for

STEPS = 30
DIGITS = [n for n in list_recipes() if n.endswith("_digits")]
# a density model's loss (bits/dim) has a floor near 2 on digits, not near 0, and the Terminator's recipe trains with
# its own Kar3 (sign) optimizer: 30 AdamW steps take these from 4.09 to 2.06 bits/dim and from 2.35 to 1.40
FALL = {"axial_digits": 0.6, "terminator_digits": 0.65}


@pytest.mark.claim(paper=10, artefact="ela_resnet18_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (30 AdamW steps halve the loss)")
@pytest.mark.claim(paper=13, artefact="unireplknet_digits",
                   claim="recipe validates; a narrow UniRepLKNet lowers the loss on a digits batch")
@pytest.mark.claim(paper=18, artefact="lsnet_digits",
                   claim="recipe validates; a narrow LSNet lowers the loss on a digits batch")
@pytest.mark.claim(paper=21, artefact="spartan_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (30 AdamW steps halve the loss)")
@pytest.mark.claim(paper=32, artefact="simplenet_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (30 AdamW steps halve the loss)")
@pytest.mark.claim(paper=33, artefact="inception_v4_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (30 AdamW steps halve the loss)")
@pytest.mark.claim(paper=37, artefact="ibnnet_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (30 AdamW steps halve the loss)")
@pytest.mark.claim(paper=39, artefact="convnext_dcls_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (30 AdamW steps halve the loss)")
@pytest.mark.claim(paper=40, artefact="cnn_svm_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (30 AdamW steps halve the loss)")
@pytest.mark.claim(paper=43, artefact="eca_resnet18_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (30 AdamW steps halve the loss)")
@pytest.mark.claim(paper=53, artefact="vovnet_digits",
                   claim="the recipe's model, data and loss fit a batch of real digits (30 AdamW steps halve the loss)")
@pytest.mark.parametrize("name", DIGITS)
def test_cpu_recipe_model_fits_a_batch(name):
    cfg = load_recipe(name)
    if "pretext" in cfg["method"]["kwargs"]:
        cfg = load_recipe(cfg, values={"method.kwargs.pretext": None})
    data = build_data(cfg, "train")
    task = build_task_for(cfg, data.info)
    torch.manual_seed(0)
    method = build_method(cfg, data.info, task).train()
    batch = task.collate([data[i] for i in range(32)])
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(STEPS):
        loss = method(batch)["loss"]
        opt.zero_grad()
        if loss.requires_grad:
            loss.backward()
        opt.step()
        method.on_after_optimizer_step()
        losses.append(loss.item())
    assert losses[-1] < FALL.get(name, 0.5) * losses[0], losses
