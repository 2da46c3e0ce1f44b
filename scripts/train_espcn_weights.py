"""Train the ESPCN weights that ship inside convzoo (paper 41) and report them against bicubic.

For each scale r it trains the CPU-scale recipe ``espcn_x{r}_photos`` with the project engine
(``convzoo.engine.train``), takes the run's best-validation weights, prints PSNR/SSIM per held-out
test photo (Y channel, r-pixel border cropped) for ESPCN and for bicubic interpolation, and copies
the weights to ``src/convzoo/weights/espcn_x{r}.safetensors`` (about 90 KB each), from where
``convzoo.create_model("espcn_x{r}", pretrained=True)`` loads them.

    python scripts/train_espcn_weights.py                       # x2, x3, x4 (a few CPU minutes each)
    python scripts/train_espcn_weights.py --scales 3 --set epochs=30 --no-install
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch

import convzoo
from convzoo.data import build_dataset
from convzoo.engine import load_recipe, train
from convzoo.tasks.super_resolution import evaluate_pairs, per_image_table
from convzoo.weights import bundled_path


def per_photo_table(name: str, weights: Path, recipe: dict) -> tuple[list[str], float]:
    """Markdown rows: PSNR/SSIM of the weights and of bicubic on each test photo, and the mean gain."""
    model = convzoo.create_model(name)
    convzoo.load_weights(model, weights)
    d = recipe["data"]
    rows = evaluate_pairs(model, build_dataset(d["name"], d["test_split"], root=d["root"], **d["kwargs"]))
    return per_image_table(rows), float(np.mean([r["psnr"] - r["psnr_bicubic"] for r in rows]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--out", default="runs/espcn_weights", help="folder for the run folders")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override key=value")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--no-install", action="store_true", help="do not copy the weights into the package")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    for r in a.scales:
        recipe_name, model_name = f"espcn_x{r}_photos", f"espcn_x{r}"
        result = train(recipe_name, overrides=a.overrides, out_dir=a.out, run_name=recipe_name,
                       progress=False)
        best = result.run_dir / "best.safetensors"
        lines, gain = per_photo_table(model_name, best, load_recipe(result.run_dir / "config.yaml"))
        print(f"\n## {model_name}: best epoch {result.best_epoch}/{result.epochs}, "
              f"{result.wall_time:.0f} s, run {result.run_dir}")
        print("\n".join(lines))
        if not a.no_install:
            target = bundled_path(model_name)
            shutil.copyfile(best, target)
            print(f"installed {target} ({target.stat().st_size / 1024:.0f} KB), mean gain {gain:+.2f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
