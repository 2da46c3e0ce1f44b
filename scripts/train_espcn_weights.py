"""Train the ESPCN weights that ship inside convzoo (paper 41) and report them against bicubic.

Two sets of weights per scale r, one registered model name each (``pretrained=True`` loads
``src/convzoo/weights/<model>.safetensors``, about 90 KB):

* ``espcn_x{r}`` (default) from recipe ``espcn_x{r}_mixed``: LR patches drawn from a uniform mixture of
  bicubic downscaling, Gaussian blur sigma 1 and Gaussian blur sigma r/2 (``photos`` degradation "mixed");
  at x4 the train split also holds every 10th frame of the real ``video_clips`` (``extra_train``; run
  ``convzoo data fetch video_clips`` first): 13 small photos alone leave sigma-1 LR at +0.23 dB;
* ``espcn_x{r}_paper`` (``--paper``) from recipe ``espcn_x{r}_photos``: the paper's protocol, Gaussian
  blur (sigma r/2) + decimation only.

For each scale it trains the recipe with the project engine (``convzoo.engine.train``; the same as
``convzoo train <recipe>``), takes the run's best-validation weights, prints the held-out test photos'
PSNR (Y channel, r-pixel border crop, averaged per photo) for ESPCN and for bicubic interpolation under
each of the three degradations, and copies the weights into the package. Runs are deterministic for a
given machine and thread count (the recipe's seed fixes the initialisation and every patch).

    OMP_NUM_THREADS=1 python scripts/train_espcn_weights.py --threads 1          # x2, x3, x4 defaults
    OMP_NUM_THREADS=1 python scripts/train_espcn_weights.py --threads 1 --paper  # the paper-protocol set
    python scripts/train_espcn_weights.py --scales 3 --set epochs=30 --no-install
    python scripts/train_espcn_weights.py --table-only                          # only the table
"""

from __future__ import annotations

import argparse
import shutil

import numpy as np
import torch

import convzoo
from convzoo.data import build_dataset
from convzoo.engine import load_recipe, train
from convzoo.tasks.super_resolution import evaluate_pairs
from convzoo.weights import bundled_path

# the held-out evaluation: (label, photos data set options)
DEGRADATIONS = (("bicubic (torch, antialias)", {"degradation": "bicubic"}),
                ("Gaussian sigma 1", {"degradation": "gaussian", "sigma": 1.0}),
                ("Gaussian sigma r/2", {"degradation": "gaussian"}))


def table_rows(model_name: str, model=None) -> list[str]:
    """Markdown rows: mean bicubic / ESPCN PSNR and the margin on the test photos, per degradation."""
    if model is None:
        model = convzoo.create_model(model_name, pretrained=True)
    r = model.scale
    rows = []
    for label, kw in DEGRADATIONS:
        per_photo = evaluate_pairs(model, build_dataset("photos", "test", scale=r, **kw))
        bic = float(np.mean([p["psnr_bicubic"] for p in per_photo]))
        sr = float(np.mean([p["psnr"] for p in per_photo]))
        worst = min(p["psnr"] - p["psnr_bicubic"] for p in per_photo)
        rows.append(f"| {model_name} | x{r} | {label} | {bic:.2f} | {sr:.2f} | {sr - bic:+.2f} | {worst:+.2f} |")
    return rows


TABLE_HEAD = ["| weights | scale | LR degradation | bicubic PSNR | ESPCN PSNR | margin (dB) | worst photo |",
              "|---|---|---|---|---|---|---|"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--paper", action="store_true", help="train the paper-protocol weights espcn_x{r}_paper")
    ap.add_argument("--out", default="runs/espcn_weights", help="folder for the run folders")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override key=value")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--no-install", action="store_true", help="do not copy the weights into the package")
    ap.add_argument("--table-only", action="store_true",
                    help="train nothing: print the table for the shipped weights (both sets)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.table_only:
        print("\n".join(TABLE_HEAD))
        for suffix in ("", "_paper"):
            for r in a.scales:
                print("\n".join(table_rows(f"espcn_x{r}{suffix}")))
        return 0
    for r in a.scales:
        recipe_name = f"espcn_x{r}_photos" if a.paper else f"espcn_x{r}_mixed"
        result = train(recipe_name, overrides=a.overrides, out_dir=a.out, run_name=recipe_name, progress=False)
        model_name = load_recipe(result.run_dir / "config.yaml")["model"]["name"]
        best = result.run_dir / "best.safetensors"
        model = convzoo.load_weights(convzoo.create_model(model_name), best)
        print(f"\n## {model_name} ({recipe_name}): best epoch {result.best_epoch}/{result.epochs}, "
              f"{result.wall_time:.0f} s, run {result.run_dir}")
        print("\n".join(TABLE_HEAD + table_rows(model_name, model)), flush=True)
        if not a.no_install:
            target = bundled_path(model_name)
            shutil.copyfile(best, target)
            print(f"installed {target} ({target.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
