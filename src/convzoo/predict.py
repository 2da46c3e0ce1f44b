"""Predictions on files a person has: images (classification, super-resolution) and .npy signals.

``load_model`` accepts a registered model name (with the weights shipped in the package, if any)
or a run folder written by ``convzoo train`` (its best weights, recipe, task and data facts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from convzoo.errors import ConvzooError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def _default_task(card):
    from convzoo.tasks import build_task

    if card.recipes:
        from convzoo.engine import load_recipe

        recipe = load_recipe(card.recipes[0])
        return build_task(recipe["task"]["name"], **recipe["task"].get("kwargs", {})), recipe
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
        if info is not None and (info.in_chans != card.in_chans or
                                 (card.task == "classification" and info.num_classes != card.num_classes)):
            info = None
    return model, card, SimpleNamespace(task=task, info=info, recipe=recipe, trained=trained)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ConvzooError(f"cannot read image {path}: {e}") from None


def _image_to_input(rgb: np.ndarray, card, info) -> torch.Tensor:
    """An RGB uint8 image -> (1, C, H, W) as the model's data set feeds it."""
    from PIL import Image

    size = tuple(info.input_size) if info is not None and info.input_size else tuple(card.input_size)
    chans = info.in_chans if info is not None else card.in_chans
    im = Image.fromarray(rgb).convert("L" if chans == 1 else "RGB").resize(size[::-1], Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)
    x = x[None] if chans == 1 else x.permute(2, 0, 1)
    extra = info.extra if info is not None else {}
    if "mean" in extra and "std" in extra:
        mean = torch.tensor(extra["mean"], dtype=torch.float32).reshape(-1, 1, 1)
        std = torch.tensor(extra["std"], dtype=torch.float32).reshape(-1, 1, 1)
        x = (x - mean) / std
    return x[None]


def _run(fn, what: str, shape):
    try:
        return fn()
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ConvzooError(f"{what} of shape {tuple(shape)} does not fit the model: {first}") from None


def predict_files(model_or_run: str, inputs, out_dir=".", json_out: bool = False):
    """Yield one printable line (or JSON document) per input file.

    An untrained model gets a warning on stderr, once, just before its first prediction (stdout holds only
    predictions, one JSON document per line with ``json_out``; an input error stays a single line).
    """
    model, card, ctx = load_model(model_or_run)
    warned = ctx.trained
    for line in _predict_lines(model, card, ctx, inputs, Path(out_dir), json_out):
        if not warned:
            print(f"warning: '{card.name}' has no trained weights here; pass a run folder for meaningful "
                  "predictions", file=sys.stderr)
            warned = True
        yield line


def _predict_lines(model, card, ctx, inputs, out_dir: Path, json_out: bool):
    for item in inputs:
        path = Path(item)
        if not path.is_file():
            raise ConvzooError(f"input not found: {path}")
        suffix = path.suffix.lower()
        if card.task == "super_resolution":
            if suffix not in IMAGE_SUFFIXES:
                raise ConvzooError(f"{path}: a super-resolution model needs an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
            from PIL import Image

            from convzoo.tasks.super_resolution import upscale_image

            rgb = _read_image(path)
            up = _run(lambda: upscale_image(model, rgb), "image", rgb.shape)
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / f"{path.stem}_x{model.scale}.png"
            Image.fromarray(up).save(target)
            result = {"input": str(path), "output": str(target), "input_size": rgb.shape[:2], "output_size": up.shape[:2]}
            yield json.dumps(result) if json_out else f"{path}: wrote {target} ({up.shape[1]}x{up.shape[0]})"
            continue
        dataset = SimpleNamespace(info=ctx.info) if ctx.info is not None else None  # None: class indices
        if suffix in IMAGE_SUFFIXES:
            x = _image_to_input(_read_image(path), card, ctx.info)
        elif suffix == ".npy" and hasattr(ctx.task, "load_input"):
            x = ctx.task.load_input(path)  # the task knows its signal files, e.g. (L,) or (N, L) pulses
        elif suffix == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as e:
                raise ConvzooError(f"cannot read {path} as a .npy array: {e}") from None
            x = torch.as_tensor(arr, dtype=torch.float32)
            want = card.dims + 2
            while x.dim() < want:
                x = x[None]
            if x.dim() != want or x.shape[1] != card.in_chans:
                raise ConvzooError(f"{path}: array of shape {tuple(arr.shape)} does not fit '{card.name}', which "
                                   f"expects (N, {card.in_chans}, {', '.join(map(str, card.input_size))}) or fewer leading axes")
        else:
            raise ConvzooError(f"{path}: unsupported input type '{suffix}' (images or .npy)")
        with torch.no_grad():
            preds = _run(lambda: ctx.task.predict(model, x, dataset), "input", x.shape)
        for i, pred in enumerate(preds):
            label = f"{path}" + (f"[{i}]" if len(preds) > 1 else "")
            if json_out:
                yield json.dumps({"input": label, **pred})
            elif "top5" in pred:
                yield f"{label}: " + ", ".join(f"{t['name']} {t['score']:.3f}" for t in pred["top5"])
            else:
                yield f"{label}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in pred.items())
