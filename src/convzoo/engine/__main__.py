"""``python -m convzoo.engine``: a minimal command line over the engine (the full CLI is ``convzoo``).

    python -m convzoo.engine train RECIPE [--set k=v ...] [--out DIR] [--name NAME] [--resume RUN]
                                    [--init RUN_OR_FILE] [--devices N] [--num-nodes N] [--accelerator A]
                                    [--no-progress] [--import FILE_OR_MODULE ...]
    python -m convzoo.engine eval RUN [--split S] [--data D] [--weights best|last] [--set k=v ...]
    python -m convzoo.engine recipes [PATTERN]

``--import`` loads a Python file or module first, so that models and data sets it registers can be
named in the recipe (it is passed on to every process of a distributed run).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path

from convzoo.errors import ConvzooError


def _import(spec: str) -> None:
    path = Path(spec)
    if path.suffix == ".py":
        if not path.is_file():
            raise ConvzooError(f"--import file not found: {path}")
        mod_spec = importlib.util.spec_from_file_location(f"_convzoo_plugin_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_spec.name] = module
        mod_spec.loader.exec_module(module)
    else:
        importlib.import_module(spec)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m convzoo.engine")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a recipe")
    t.add_argument("recipe", nargs="?")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument("--out", default="runs")
    t.add_argument("--name", default=None)
    t.add_argument("--resume", default=None, metavar="RUN_DIR")
    t.add_argument("--init", default=None, metavar="RUN_OR_FILE")
    t.add_argument("--devices", type=int, default=1)
    t.add_argument("--num-nodes", type=int, default=1)
    t.add_argument("--accelerator", default="auto")
    t.add_argument("--strategy", default=None)
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE_OR_MODULE")
    e = sub.add_parser("eval", help="evaluate a run folder or checkpoint")
    e.add_argument("run")
    e.add_argument("--split", default="test")
    e.add_argument("--data", default=None)
    e.add_argument("--weights", default="best", choices=["best", "last"])
    e.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    e.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE_OR_MODULE")
    r = sub.add_parser("recipes", help="list the bundled recipes")
    r.add_argument("pattern", nargs="?")
    args = p.parse_args(argv)
    try:
        for spec in getattr(args, "imports", []):
            _import(spec)
        if args.cmd == "recipes":
            from convzoo.engine import list_recipes

            print("\n".join(list_recipes(args.pattern)))
        elif args.cmd == "train":
            from convzoo.engine import train

            res = train(args.recipe, overrides=args.overrides, out_dir=args.out, run_name=args.name,
                        resume=args.resume, init=args.init, devices=args.devices, num_nodes=args.num_nodes,
                        accelerator=args.accelerator, strategy=args.strategy, progress=not args.no_progress)
            if res is not None:  # None on the other processes of a distributed run
                print(json.dumps({"run_dir": str(res.run_dir), "test": res.metrics, "best_epoch": res.best_epoch,
                                  "epochs": res.epochs, "wall_time": round(res.wall_time, 2)}))
        else:
            from convzoo.engine import evaluate

            print(json.dumps(evaluate(args.run, data=args.data, split=args.split, overrides=args.overrides,
                                      which=args.weights)))
    except ConvzooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
