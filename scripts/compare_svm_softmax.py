"""CNN-SVM vs CNN-Softmax (paper 40) on scikit-learn's digits: the paper's comparison at CPU scale.

Trains the recipes ``cnn_svm_digits`` (L2-SVM top layer, C = 1) and ``cnn_softmax_digits`` (the same
network with softmax cross-entropy) with the project engine for each seed, and prints a markdown
table of their test accuracies next to the paper's MNIST numbers (99.04% vs 99.23%). Each run's
``report.md`` holds its own result.

    python scripts/compare_svm_softmax.py                     # seed 0 (a few CPU minutes)
    python scripts/compare_svm_softmax.py --seeds 0 1 2 --set epochs=20
"""

from __future__ import annotations

import argparse
import statistics

from convzoo.engine import train

RECIPES = {"cnn_svm_digits": "CNN-SVM (L2-SVM, C = 1)", "cnn_softmax_digits": "CNN-Softmax"}
PAPER_MNIST = {"cnn_svm_digits": 99.04, "cnn_softmax_digits": 99.23}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override applied to both runs, e.g. epochs=20")
    ap.add_argument("--out", default="runs")
    args = ap.parse_args()

    acc: dict[str, list[float]] = {r: [] for r in RECIPES}
    folders: dict[str, list[str]] = {r: [] for r in RECIPES}
    for seed in args.seeds:
        for recipe in RECIPES:
            result = train(recipe, overrides=[*args.overrides, f"seed={seed}"], out_dir=args.out,
                           run_name=f"{recipe}-seed{seed}", progress=False)
            acc[recipe].append(100 * result.metrics["acc"])
            folders[recipe].append(str(result.run_dir))

    print("| model | digits test accuracy (%) per seed | mean | paper, MNIST (%) | runs |")
    print("|---|---|---|---|---|")
    for recipe, label in RECIPES.items():
        per_seed = ", ".join(f"{a:.2f}" for a in acc[recipe])
        print(f"| {label} | {per_seed} | {statistics.mean(acc[recipe]):.2f} | {PAPER_MNIST[recipe]} | "
              f"{', '.join(folders[recipe])} |")


if __name__ == "__main__":
    main()
