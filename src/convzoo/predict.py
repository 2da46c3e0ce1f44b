"""Predictions on files a person has; what a file means and what comes back is the task's business.

:func:`load_model` accepts what a person has at hand:

* a run folder written by ``convzoo train`` (its best weights, or the last with ``which="last"``, and
  its recipe, task and data facts: class names, normalisation, input size);
* a checkpoint file inside a run folder (next to its ``config.yaml``);
* a bare checkpoint file (convzoo's safetensors, timm's or the authors' key layout) with ``model=NAME``;
* a registered model name (with the weights shipped in the package, if any).

:func:`predict` expands files, folders and glob patterns into the files the task reads and yields one
record per prediction; :func:`write_results` writes all of them as one JSON or CSV file.
"""

from __future__ import annotations

import csv
import glob
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from convzoo.errors import ConvzooError, UnknownNameError

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
RESULT_FORMATS = ("json", "csv")


@dataclass
class Loaded:
    """A model ready for prediction or export, with what is known about it."""

    model: object  # nn.Module in eval mode
    card: object  # its ModelCard
    task: object  # the task that reads inputs and formats predictions
    info: object  # the run's DataInfo (class names, channels, size, mean/std) or None
    recipe: dict | None
    trained: bool  # False: a registered model with random weights
    run_dir: Path | None = None  # the run folder the weights come from
    weights: str = ""  # what was loaded: a file path, "shipped weights" or "random weights"

    @property
    def tag(self) -> str:
        """``<model>`` or ``<model>-<run folder name>``: the stem of exported files."""
        return f"{self.card.name}-{self.run_dir.name}" if self.run_dir is not None else self.card.name


def _default_task(card):
    from convzoo.tasks import build_task

    if card.recipes:
        from convzoo.engine import load_recipe

        recipe = load_recipe(card.recipes[0])
        return build_task(recipe["task"]["name"] or card.task, **recipe["task"].get("kwargs", {})), recipe
    return build_task(card.task), None


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.startswith(".") or Path(text).suffix.lower() in CHECKPOINT_SUFFIXES


def load_model(source, *, model: str | None = None, which: str = "best") -> Loaded:
    """A model in eval mode from a run folder, a checkpoint file or a registered name (module docstring).

    ``which`` ("best" or "last") picks a run folder's checkpoint; ``model`` names the architecture of a
    checkpoint file outside a run folder.
    """
    import convzoo

    if which not in ("best", "last"):
        raise ConvzooError(f"which must be 'best' or 'last', got {which!r}")
    path = Path(source).expanduser()
    if path.is_dir() or (path.is_file() and (path.parent / "config.yaml").is_file()):
        from convzoo.engine import load_run

        net, recipe, task, info = load_run(path, which=which)
        if model is not None and model != net.card.name:
            raise ConvzooError(f"{path} holds a '{net.card.name}' model, not '{model}' (leave out --model)")
        run_dir = path if path.is_dir() else path.parent
        weights = str(path) if path.is_file() else f"{which} checkpoint of {run_dir}"
        return Loaded(net.eval(), net.card, task, info, recipe, True, run_dir, weights)
    if path.is_file():
        if model is None:
            raise ConvzooError(f"{path} is not inside a run folder (no config.yaml next to it): name its "
                               "architecture with --model NAME")
        card = convzoo.get_card(model)
        net = convzoo.create_model(card.name, pretrained=str(path)).eval()
        task, recipe = _default_task(card)
        return Loaded(net, card, task, _recipe_info(recipe, task, card), recipe, True, None, str(path))
    if _looks_like_path(str(source)):
        raise ConvzooError(f"run folder or checkpoint not found: {path}")
    if model is not None:
        raise ConvzooError(f"--model names the architecture of a checkpoint file; {source!r} is not a file")
    names = convzoo.list_models()
    if str(source) not in names:
        raise UnknownNameError("model (or run folder)", str(source), names)
    from convzoo.weights import bundled_path

    card = convzoo.get_card(str(source))
    trained = bundled_path(card.name).is_file()
    net = convzoo.create_model(card.name, pretrained=trained).eval()
    task, recipe = _default_task(card)
    return Loaded(net, card, task, _recipe_info(recipe, task, card), recipe, trained, None,
                  "shipped weights" if trained else "random weights")


def checkpoint_run(file, model: str, data: str, folder, overrides=(), values: dict | None = None) -> Path:
    """A run folder in ``folder`` for a checkpoint file that has none, so that ``engine.evaluate`` reads it:
    the recipe ``make_recipe(model, data)`` (with ``overrides``/``values``) and the weights, in any layout
    ``create_model(pretrained=PATH)`` loads, saved as its ``best.safetensors``. The model is built for the data
    set (its classes and channels), so the checkpoint must fit them."""
    from convzoo.engine import make_recipe
    from convzoo.engine.build import build_data, build_method, build_task_for
    from convzoo.engine.recipe import dump_recipe
    from convzoo.weights import load_pretrained, save_weights

    cfg = make_recipe(model, data, overrides, values)
    info = build_data(cfg, cfg["data"]["test_split"] or "test").info
    net = build_method(cfg, info, build_task_for(cfg, info)).export_model()
    load_pretrained(net, getattr(net, "card", None), file)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(dump_recipe(cfg))
    save_weights(net, folder / "best.safetensors")
    return folder


def _recipe_info(recipe, task, card):
    """Data facts (class names, normalisation) from the card's first recipe's data set, when at hand and
    when they fit the model built from the card's defaults (e.g. not the 1-channel digits of a 3-channel net)."""
    if recipe is None:
        return None
    from convzoo.data import build_dataset

    try:
        info = build_dataset(recipe["data"]["name"], "test", root=recipe["data"].get("root"),
                             **recipe["data"].get("kwargs", {})).info
    except ConvzooError:
        return None
    return info if task.fits_model(card, info) else None


# --- inputs --------------------------------------------------------------------------------------
def expand_inputs(items, suffixes) -> list[Path]:
    """Files, folders (their files with one of ``suffixes``, sorted) and glob patterns -> file paths.

    A missing file, a folder without such files or a pattern that matches nothing is a one-line error.
    """
    suffixes = tuple(s.lower() for s in suffixes)
    out: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if not found:
                raise ConvzooError(f"folder {path} holds no input files ({', '.join(suffixes)})")
            out.extend(found)
        elif glob.has_magic(str(item)):
            found = sorted(Path(p) for p in glob.glob(str(path), recursive=True)
                           if Path(p).is_file() and Path(p).suffix.lower() in suffixes)
            if not found:
                raise ConvzooError(f"no input files ({', '.join(suffixes)}) match {item}")
            out.extend(found)
        else:
            raise ConvzooError(f"input not found: {path}")
    return out


def predict(loaded: Loaded, inputs, out_dir=".", warn=True):
    """Yield one record per prediction: ``{"input": path[, index], **the task's fields}``.

    An untrained model gets a warning on stderr, once, just before its first prediction.
    """
    for path in expand_inputs(inputs, loaded.task.input_suffixes):
        for pred in loaded.task.predict_file(loaded.model, loaded.card, path, loaded.info, Path(out_dir)):
            if warn and not loaded.trained:
                print(f"warning: '{loaded.card.name}' has no trained weights here; pass a run folder or a "
                      "checkpoint for meaningful predictions", file=sys.stderr)
                warn = False
            yield pred


def predict_files(model_or_run, inputs, out_dir=".", json_out: bool = False, *, model: str | None = None,
                  which: str = "best"):
    """Yield one printable line (one JSON document with ``json_out``) per prediction."""
    loaded = load_model(model_or_run, model=model, which=which)
    for pred in predict(loaded, inputs, out_dir):
        yield json.dumps(pred) if json_out else loaded.task.format_prediction(pred)


# --- one results file ----------------------------------------------------------------------------
def result_format(path, fmt: str | None) -> str:
    """"json" or "csv": ``fmt`` when given, else the file's suffix."""
    fmt = fmt or Path(path).suffix.lower().lstrip(".")
    if fmt not in RESULT_FORMATS:
        raise ConvzooError(f"results file {path}: name it .json or .csv, or pass --format json|csv")
    return fmt


def flat_record(pred: dict) -> dict:
    """A CSV row of one prediction: ``path`` first; a top-k list becomes ``top1_name, top1_class, top1_score,
    ...``; other lists and mappings are written as JSON text."""
    row = {"path": pred["input"]}
    for key, value in pred.items():
        if key == "input":
            continue
        if key.startswith("top") and isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for i, entry in enumerate(value, 1):
                for field, v in entry.items():
                    row[f"top{i}_{field}"] = v
        elif isinstance(value, (list, tuple, dict)):
            row[key] = json.dumps(value)
        else:
            row[key] = value
    return row


def write_results(records: list[dict], path, fmt: str | None = None) -> Path:
    """All predictions in one file: a JSON list of records (``path`` plus the task's fields) or a CSV table."""
    path = Path(path)
    fmt = result_format(path, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        rows = [{"path": r["input"], **{k: v for k, v in r.items() if k != "input"}} for r in records]
        path.write_text(json.dumps(rows, indent=2) + "\n")
        return path
    rows = [flat_record(r) for r in records]
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["path"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
