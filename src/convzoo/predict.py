"""Predictions on files a person has; what a file means and what comes back is the task's business.

``load_model`` accepts a registered model name (with the weights shipped in the package, if any)
or a run folder written by ``convzoo train`` (its best weights, recipe, task and data facts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

from convzoo.errors import ConvzooError


def _default_task(card):
    from convzoo.tasks import build_task

    if card.recipes:
        from convzoo.engine import load_recipe

        recipe = load_recipe(card.recipes[0])
        return build_task(recipe["task"]["name"] or card.task, **recipe["task"].get("kwargs", {})), recipe
    return build_task(card.task), None


def load_model(model_or_run: str):
    """-> (model in eval mode, card, context namespace with task, info, recipe, trained flag)."""
    import convzoo
    from convzoo.weights import bundled_path

    path = Path(model_or_run)
    if path.is_dir():
        from convzoo.engine import load_run

        model, recipe, task, info = load_run(path)
        return model.eval(), model.card, SimpleNamespace(task=task, info=info, recipe=recipe, trained=True)
    card = convzoo.get_card(model_or_run)
    trained = bundled_path(card.name).is_file()
    model = convzoo.create_model(card.name, pretrained=trained).eval()
    task, recipe = _default_task(card)
    info = None
    if recipe is not None:
        from convzoo.data import build_dataset

        try:  # data facts (class names, normalisation) from the recipe's data set, when it is at hand
            info = build_dataset(recipe["data"]["name"], "test", root=recipe["data"].get("root"),
                                 **recipe["data"].get("kwargs", {})).info
        except ConvzooError:
            info = None
        # the recipe's data describe the model the recipe trains (e.g. 1-channel digits, 10 classes), not
        # necessarily this one built from the card's defaults: keep them only where they fit it
        if info is not None and not task.fits_model(card, info):
            info = None
    return model, card, SimpleNamespace(task=task, info=info, recipe=recipe, trained=trained)


def predict_files(model_or_run: str, inputs, out_dir=".", json_out: bool = False):
    """Yield one printable line (or JSON document) per prediction.

    An untrained model gets a warning on stderr, once, just before its first prediction (stdout holds only
    predictions, one JSON document per line with ``json_out``; an input error stays a single line).
    """
    model, card, ctx = load_model(model_or_run)
    warned = ctx.trained
    for item in inputs:
        path = Path(item)
        if not path.is_file():
            raise ConvzooError(f"input not found: {path}")
        for pred in ctx.task.predict_file(model, card, path, ctx.info, Path(out_dir)):
            if not warned:
                print(f"warning: '{card.name}' has no trained weights here; pass a run folder for meaningful "
                      "predictions", file=sys.stderr)
                warned = True
            yield json.dumps(pred) if json_out else ctx.task.format_prediction(pred)
