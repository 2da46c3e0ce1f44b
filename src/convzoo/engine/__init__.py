"""The engine: recipes, training on Lightning Fabric, checkpoints, evaluation and run folders.

Public API (the CLI's ``convzoo train / eval / predict`` call these)::

    load_recipe(name_or_path, overrides=()) -> dict        # validated, defaults filled
    list_recipes(pattern=None) -> list[str]
    make_recipe(model, data, overrides=(), **fields) -> dict   # alias recipe_for
    train(recipe, *, overrides=(), values=None, out_dir="runs", run_name=None, resume=None, init=None,
          freeze=None, devices=1, num_nodes=1, accelerator="auto", strategy=None, progress=True,
          callbacks=()) -> RunResult (None on ranks > 0)
    evaluate(run_or_checkpoint, data=None, split="test", overrides=(), which="best") -> dict
    load_run(run_or_checkpoint, which="best", device="cpu") -> (model, recipe, task, data_info)

The workflow: ``train(resume=RUN, values={"epochs": N})`` trains longer on the schedule re-built for N
epochs; ``train(recipe, init=RUN_OR_FILE, freeze=N)`` fine-tunes; ``evaluate`` / ``load_run`` take a
run's best checkpoint (``which="last"``: the final weights) or a checkpoint file in a run folder. Recipe
keys ``early_stopping: {patience, min_delta}``, ``log_every_n_steps`` (``steps.csv``), ``tensorboard``
and ``checkpoint_every_n_steps`` (exact resume inside long epochs).

Several processes and nodes (see :mod:`convzoo.engine.fit` for details)::

    convzoo train RECIPE --devices 2                   # 2 processes on this machine (CPU: gloo)
    MASTER_ADDR=node0 MASTER_PORT=29500 NODE_RANK=<0|1> \\
        convzoo train RECIPE --devices 8 --num-nodes 2  # the same command on each of 2 nodes

``batch_size`` is global; it is split evenly over all processes.
"""

from convzoo.engine.evaluate import evaluate, load_run
from convzoo.engine.fit import RunResult, train
from convzoo.engine.recipe import list_recipes, load_recipe, make_recipe, recipe_for

__all__ = ["RunResult", "evaluate", "list_recipes", "load_recipe", "load_run", "make_recipe", "recipe_for", "train"]
