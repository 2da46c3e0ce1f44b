"""The ``convzoo`` command line: parses, calls the API, prints. No logic of its own.

Every error a user can cause is one line on stderr and exit code 2, without a traceback
(set CONVZOO_DEBUG=1 to see tracebacks). Output piped into a program that stops reading early
(``convzoo list --json | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from convzoo.errors import ConvzooError, UnknownNameError, suggest


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _head(text: str, width: int = 72) -> str:
    """The first sentence of ``text`` without pointers to the module docstring, cut to ``width`` characters."""
    text = " ".join(text.replace("``", "").split())
    first = re.split(r"\.\s+(?=[A-Z])", text)[0]
    first = re.sub(r"[:;,]?\s*\(?(see|as described in) the module docstring\)?", "", first).rstrip(" .")
    return first if len(first) <= width else first[:width - 3].rstrip() + "..."


# --- list / info / papers / recipes / data -----------------------------------------------------
def cmd_list(a) -> None:
    import convzoo

    names = convzoo.list_models(a.pattern, task=a.task, paper=a.paper)
    if a.json:
        return _print_json([convzoo.get_card(n).__dict__ | {"capabilities": sorted(convzoo.get_card(n).capabilities)}
                            for n in names])
    for n in names:
        c = convzoo.get_card(n)
        params = f"{c.params:,}" if c.params else "-"
        print(f"{n:34s} paper {c.paper:2d}  {c.task:16s} {c.dims}D  params {params}")


def count_macs_here(card) -> int:
    """MACs of one forward at the card's input size, batch 1, counted with FlopCounterMode on the meta
    device (no memory, no time: full-size models too)."""
    import torch

    import convzoo
    from convzoo.bench import count_macs
    from convzoo.tasks import build_task

    with torch.device("meta"):
        model = convzoo.create_model(card.name).eval()
        spec = build_task(card.task).bench_spec(model, card, None)
        shape = (1, card.in_chans, *card.input_size)  # a density model takes integer grey levels
        x = torch.randint(0, spec["levels"], shape) if spec.get("input_dtype") == "int64" else torch.empty(shape)
    return count_macs(model, x)


def cmd_info(a) -> None:
    import convzoo

    card = convzoo.get_card(a.model)
    d = card.__dict__ | {"capabilities": sorted(card.capabilities)}
    if card.macs is None:  # the paper gives none: counted here, and labelled so
        d["macs"] = count_macs_here(card)
        d["macs_source"] = (f"counted here: torch.utils.flop_counter at {'x'.join(map(str, card.input_size))}, "
                            "batch 1, MACs = FLOPs / 2")
    if a.json:
        return _print_json(d)
    for k, v in d.items():
        if v not in (None, "", (), []):
            print(f"{k:15s} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k:15s} {v}")


def cmd_papers(a) -> None:
    from convzoo.catalogue import get_paper, papers

    if a.paper is not None:
        p = get_paper(a.paper)
        if a.json:
            return _print_json(p.as_dict())
        print(f"[{p.seed}] {p.title} ({p.year}{', arXiv ' + p.arxiv if p.arxiv else ''}) — {p.status}")
        for art in p.artefacts:
            print(f"  {art.status:8s} {art.kind:7s} {art.name}" + (f"  -> {art.ref}" if art.ref else "")
                  + (f"  ({art.note})" if art.note else ""))
            for c in art.claims:
                print(f"           {'pin' if c.pin else 'claim'}: {c.claim}")
                for proof in c.proofs:
                    print(f"             test: {proof}")
        return
    ps = papers()
    if a.json:
        return _print_json([p.as_dict() for p in ps])
    print(f"{'#':>2}  {'paper':58s} {'status':8s} {'done':>4} {'plan':>4} {'proofs':>6}")
    for p in ps:
        title = p.title if len(p.title) <= 58 else p.title[:55] + "..."
        print(f"{p.seed:2d}  {title:58s} {p.status:8s} {len(p.done):4d} {len(p.planned):4d} "
              f"{len(p.proofs):6d}")
    done = sum(p.status != "planned" for p in ps)
    print(f"{len(ps)} papers: {done} with proven artefacts, {len(ps) - done} planned")


def cmd_recipes(a) -> None:
    from convzoo.engine import list_recipes, load_recipe

    names = list_recipes(a.pattern)
    if not names:
        close = suggest(a.pattern, list_recipes())
        raise ConvzooError(f"no recipe matches {a.pattern!r}" + (f"; did you mean {', '.join(close)}?" if close
                                                                 else "; `convzoo recipes` lists them all"))
    rows = []
    for n in names:
        r = load_recipe(n)
        rows.append({"name": n, "model": r["model"]["name"], "data": r["data"]["name"], "epochs": r["epochs"],
                     "paper": r.get("paper"), "description": r.get("description", "")})
    if a.json:
        return _print_json(rows)
    for r in rows:
        print(f"{r['name']:36s} {r['model']:24s} {r['data']:14s} {r['epochs']:>4} ep  {_head(r['description'])}")


def _data_rows() -> list[dict]:
    """Every registered data set: its description head and, for the fetchable ones, whether fetched."""
    import inspect

    from convzoo.data.fetch import data_home, is_fetched, list_fetchable
    from convzoo.data.registry import _DATA, list_datasets

    fetchable = set(list_fetchable())
    names = list_datasets()
    modules = [_DATA[n].__module__ for n in names]
    rows = []
    for n, mod in zip(names, modules):
        # a module holding one set describes it in its docstring; a module of several, each builder
        doc = inspect.getdoc(sys.modules[mod]) if modules.count(mod) == 1 else inspect.getdoc(_DATA[n])
        row = {"name": n, "fetch": "-", "description": _head(doc or "")}
        if n in fetchable:
            row |= {"fetch": "fetched" if is_fetched(n) else "not fetched", "cache": str(data_home(n))}
        rows.append(row)
    for n in sorted(fetchable - set(names)):  # fetchable files that feed another set (e.g. video_clips)
        rows.append({"name": n, "fetch": "fetched" if is_fetched(n) else "not fetched", "cache": str(data_home(n)),
                     "description": "files for another data set"})
    return rows


def cmd_data(a) -> None:
    from convzoo.data.fetch import fetch, list_fetchable

    if a.action == "list":
        rows = _data_rows()
        if a.json:
            return _print_json(rows)
        for r in rows:
            where = f"  [convzoo data fetch {r['name']} -> {r['cache']}]" if "cache" in r else ""
            print(f"{r['name']:16s} {r['fetch']:12s} {r['description']}{where}")
        return
    if not a.name:
        raise ConvzooError(f"data fetch needs a set name: one of {', '.join(list_fetchable())}")
    print(f"{a.name}: {fetch(a.name, a.dest)}")


# --- train / eval ----------------------------------------------------------------------------
def _freeze(text: str | None):
    """``--freeze 2`` -> 2 (the first two stages); ``--freeze stem,stages.0`` -> module names."""
    if text is None:
        return None
    if text.strip().isdigit():
        return int(text)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConvzooError(f"--freeze takes a number of stages or module names separated by commas, got {text!r}")
    return names


def cmd_train(a) -> None:
    from convzoo import engine

    if a.recipe is None and not (a.model and a.data) and not a.resume:
        raise ConvzooError("train needs a RECIPE, --model and --data, or --resume RUN")
    if a.freeze is not None and a.init is None:
        raise ConvzooError("--freeze keeps stages of the starting weights fixed: it needs --init RUN_OR_FILE")
    overrides = list(a.set or [])
    values = {}  # typed values: flags are never turned back into YAML text
    recipe = a.recipe
    if recipe is None and not a.resume:
        recipe = engine.recipe_for(a.model, a.data)
    elif a.model:  # with a recipe or a run: the engine refuses a model that differs from the run's
        values["model.name"] = a.model
    if a.data and (a.recipe or a.resume):
        values["data.name"] = a.data
    if a.data_root:
        values["data.root"] = a.data_root
    if a.epochs is not None:
        values["epochs"] = a.epochs
    if a.precision:
        values["precision"] = a.precision
    if a.fast:
        values["fast"] = True
    extra = {}  # the fine-tuning arguments, passed only when given
    if a.init is not None:
        extra["init"] = a.init
    if a.freeze is not None:
        extra["freeze"] = _freeze(a.freeze)
    result = engine.train(recipe, overrides=overrides, values=values, out_dir=a.out, run_name=a.name, resume=a.resume,
                          devices=a.devices, num_nodes=a.num_nodes, accelerator=a.accelerator,
                          progress=not a.no_progress, **extra)
    if result is None:  # non-zero ranks of a distributed run
        return
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    print(f"test: {metrics}")
    print(f"run folder: {result.run_dir}")


def _which(a) -> str:
    """"best" or "last" (``--last``), refused for anything but a run folder."""
    if a.last and not Path(a.source).expanduser().is_dir():
        raise ConvzooError(f"--last picks the last checkpoint of a run folder; {a.source} is not a folder")
    return "last" if a.last else "best"


def cmd_eval(a) -> None:
    import tempfile

    from convzoo import engine
    from convzoo.predict import checkpoint_run

    which = _which(a)
    source = Path(a.source).expanduser()
    values = {"data.root": a.data_root} if a.data_root else None
    with tempfile.TemporaryDirectory(prefix="convzoo-eval-") as tmp:
        if source.is_file() and not (source.parent / "config.yaml").is_file():  # a bare checkpoint
            if not (a.model and a.data):
                raise ConvzooError(f"{source} is not inside a run folder (no config.yaml next to it): evaluate it "
                                   "with --model NAME --data SET")
            source = checkpoint_run(source, a.model, a.data, Path(tmp) / source.stem, list(a.set or []), values)
        elif a.model:
            raise ConvzooError("--model names the architecture of a checkpoint file outside a run folder; "
                               f"{a.source} is not one")
        metrics = engine.evaluate(source, data=a.data, split=a.split, overrides=list(a.set or []), values=values,
                                  crops=a.crops, ensemble=a.ensemble or (), which=which, accelerator=a.accelerator)
    if a.json:
        return _print_json(metrics)
    print(", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


# --- predict ---------------------------------------------------------------------------------
def cmd_predict(a) -> None:
    from convzoo.predict import RESULT_FORMATS, load_model, predict, result_format, write_results

    results = None  # the one JSON/CSV file of all results
    if a.format or (a.out and Path(a.out).suffix.lower().lstrip(".") in RESULT_FORMATS):
        if not a.out:
            raise ConvzooError("--format names the format of the results file: give the file with --out FILE")
        results = Path(a.out)
        result_format(results, a.format)  # a bad name fails before the model is loaded
    which = _which(a)
    loaded = load_model(a.source, model=a.model, which=which)
    out_dir = results.parent if results is not None else Path(a.out or ".")  # image outputs (super-resolution)
    records = []
    for pred in predict(loaded, a.inputs, out_dir):
        print(json.dumps(pred) if a.json else loaded.task.format_prediction(pred), flush=True)
        records.append(pred)
    if results is not None:
        write_results(records, results, a.format)
        print(f"convzoo: {len(records)} predictions written to {results}", file=sys.stderr)


# --- features --------------------------------------------------------------------------------
def cmd_features(a) -> None:
    import numpy as np

    from convzoo.analysis.offtheshelf import OffTheShelfFeatures, layer_names, write_features
    from convzoo.predict import expand_inputs, load_model

    loaded = load_model(a.source, model=a.model, which=_which(a))
    if a.list_layers:
        default = getattr(loaded.model, "offtheshelf_layer", None)
        for name in layer_names(loaded.model):
            print(name + ("  (default)" if name == default else ""))
        return
    if not a.inputs or not a.out:
        raise ConvzooError("give the input files/folders and --out FILE.npy|FILE.npz (or --list-layers)")
    feats = OffTheShelfFeatures(loaded.model, a.layer, spatial=a.spatial, power=a.power, l2=not a.no_l2)
    paths = expand_inputs(a.inputs, loaded.task.input_suffixes)
    out = write_features(feats, paths, lambda p: loaded.task.read_input(p, loaded.card, loaded.info), a.out,
                         a.batch)
    if not loaded.trained:
        print(f"warning: '{loaded.card.name}' has no trained weights here; pass a run folder or a checkpoint "
              "for meaningful features", file=sys.stderr)
    n, d = (np.load(out)["features"] if out.suffix == ".npz" else np.load(out, mmap_mode="r")).shape
    where = feats.layer or "pre-logits embedding"
    print(f"{n} feature vectors of {d} values ({where}) written to {out}")


# --- analyse / bench / export ------------------------------------------------------------------
ANALYSES = {  # name -> module with main(argv) -> exit code
    "efficiency": "convzoo.analysis.efficiency",  # VoVNet's efficiency measures against DenseNet / ResNet (paper 53)
}


def cmd_analyse(a) -> None:
    import importlib

    if a.name not in ANALYSES:
        raise UnknownNameError("analysis", a.name, list(ANALYSES))
    code = importlib.import_module(ANALYSES[a.name]).main(a.args)
    if code:
        raise SystemExit(code)


def cmd_bench(a) -> None:
    from convzoo.bench import MODES, bench, format_bench

    if a.train:
        from convzoo.engine.speed import format_train_speed, train_speed

        result = train_speed(a.model, batch=a.batch, size=a.size and _size(a.size), rounds=a.rounds,
                             threads=a.threads)
        return _print_json(result) if a.json else print(format_train_speed(result))

    flags = {"channels_last": a.channels_last, "compile": a.compile, "deploy": a.deploy, "bf16": a.bf16,
             "deploy_compile": a.deploy and a.compile}
    if a.all:
        modes = MODES
    elif any(flags.values()):
        modes = ("eager",) + tuple(m for m in MODES if flags.get(m))
    else:
        modes = ("eager", "channels_last", "deploy")
    result = bench(a.model, batch=a.batch, size=a.size, modes=modes, compare=a.compare, rounds=a.rounds,
                   threads=a.threads)
    if a.json:
        return _print_json(result)
    print(format_bench(result))


def _size(text: str, dims: int = 2) -> tuple[int, ...]:
    """``S`` or ``HxW`` (``L`` for 1-D models, ``TxHxW`` for 3-D ones) -> a tuple of ``dims`` positive ints."""
    parts = text.lower().split("x")
    if not all(p.strip().isdigit() and int(p) > 0 for p in parts) or len(parts) not in (1, dims):
        shape = {1: "L", 3: "S or TxHxW"}.get(dims, "S or HxW")
        raise ConvzooError(f"--size must be {shape} (positive integers), got {text!r}")
    return tuple(int(p) for p in parts) * (dims if len(parts) == 1 else 1)


def cmd_export(a) -> None:
    import torch

    from convzoo.export import export_metadata, export_onnx, export_path, export_program
    from convzoo.predict import load_model

    fmt = a.format or ("torch-export" if a.out and a.out.lower().endswith(".pt2") else "onnx")
    if a.size:
        _size(a.size, max(2, len(a.size.split("x"))))  # a malformed size fails before the model is loaded
    which = _which(a)
    loaded = load_model(a.source, model=a.model, which=which)
    card, info = loaded.card, loaded.info  # a run's data facts (channels, size) win over the card's defaults
    size = (_size(a.size, card.dims) if a.size
            else tuple(info.input_size if info is not None and info.input_size else card.input_size))
    tag = loaded.tag + ("-last" if which == "last" else "")
    path = export_path(a.out, fmt=fmt, tag=tag, default_dir=loaded.run_dir or ".", force=a.force)
    if not loaded.trained:
        print(f"warning: '{card.name}' has no trained weights here; exporting random weights", file=sys.stderr)
    example = torch.randn(1, info.in_chans if info is not None else card.in_chans, *size)
    meta = export_metadata(card, info, size, weights=loaded.weights,
                           run=loaded.run_dir.name if loaded.run_dir is not None else None)
    if fmt == "onnx":
        report = export_onnx(loaded.model, example, path, check=a.check, opset=a.opset, metadata=meta)
    else:
        report = export_program(loaded.model, example, path, check=a.check, metadata=meta)
    print(", ".join(f"{k} {v}" for k, v in report.items()))


# --- parser ----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _weights_args(s) -> None:
    """The arguments eval, predict and export share: what to load."""
    s.add_argument("--last", action="store_true",
                   help="a run folder's last checkpoint instead of its best (best validation epoch)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="convzoo", description="Faithful, tested convolutional-network papers.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser, metavar="COMMAND")
    json_help = "print JSON instead of text"

    s = sub.add_parser("list", help="registered models", description="Registered models, one line each.")
    s.add_argument("pattern", nargs="?", help="glob or substring of model names (e.g. 'eca*', vovnet)")
    s.add_argument("--task", help="only models of this task (classification, super_resolution, detection, ...)")
    s.add_argument("--paper", type=int, help="only models of this seed paper number")
    s.add_argument("--json", action="store_true", help="print the cards as JSON")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("info", help="a model's card", description="A model's card: paper, counts, MACs, "
                       "preprocessing, capabilities, recipes.")
    s.add_argument("model", help="registered model name (convzoo list)")
    s.add_argument("--json", action="store_true", help=json_help)
    s.set_defaults(fn=cmd_info)

    s = sub.add_parser("papers", help="the paper catalogue and its proofs")
    s.add_argument("paper", nargs="?", help="seed number or key (default: the table of all papers)")
    s.add_argument("--json", action="store_true", help=json_help)
    s.set_defaults(fn=cmd_papers)

    s = sub.add_parser("recipes", help="training recipes, one line each",
                       description="Bundled recipes: name, model, data set, epochs, description.")
    s.add_argument("pattern", nargs="?", help="glob or substring of recipe names (e.g. digits, 'eca_*')")
    s.add_argument("--json", action="store_true", help=json_help)
    s.set_defaults(fn=cmd_recipes)

    s = sub.add_parser("data", help="data sets: list them (default), fetch NAME",
                       description="Every registered data set, and whether the fetchable ones are on this machine.")
    s.add_argument("action", nargs="?", choices=["list", "fetch"], default="list",
                   help="list (default): every data set; fetch: download a fetchable set into its cache")
    s.add_argument("name", nargs="?", help="the set to fetch")
    s.add_argument("--dest", help="cache folder (default $CONVZOO_DATA/NAME or ~/.cache/convzoo/NAME)")
    s.add_argument("--json", action="store_true", help=json_help)
    s.set_defaults(fn=cmd_data)

    s = sub.add_parser("train", help="train with a recipe (convzoo train simplenet_digits)")
    s.add_argument("recipe", nargs="?", help="recipe name (convzoo recipes) or YAML path")
    s.add_argument("--model", help="model to train: with --data instead of a recipe, or replacing the recipe's")
    s.add_argument("--data", help="data set (convzoo data): with --model instead of a recipe, or replacing the recipe's")
    s.add_argument("--data-root", help="folder holding the data set's files (CIFAR, MNIST IDX, ImageFolder, ...)")
    s.add_argument("--epochs", type=int, help="number of epochs (with --resume: train longer, the schedule stretched)")
    s.add_argument("--precision", help="32-true | bf16-mixed | 16-mixed")
    s.add_argument("--fast", action="store_true", help="channels_last + bf16 autocast + torch.compile")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a recipe field (repeatable), e.g. --set optimizer.lr=0.05")
    s.add_argument("--resume", metavar="RUN", help="continue a run folder where it stopped")
    s.add_argument("--init", metavar="RUN_OR_FILE",
                   help="start from these weights (a run folder's best checkpoint or a checkpoint file); "
                        "the head is re-initialised when the classes differ")
    s.add_argument("--freeze", metavar="N|NAMES",
                   help="with --init: keep the first N stages (or the named modules, comma-separated) fixed")
    s.add_argument("--out", default="runs", help="parent folder of run folders (default: runs)")
    s.add_argument("--name", help="run folder name (default: RECIPE-DATE-TIME)")
    s.add_argument("--devices", type=int, default=1, help="processes (devices) per node (default 1)")
    s.add_argument("--num-nodes", type=int, default=1, help="number of machines (default 1)")
    s.add_argument("--accelerator", default="auto", help="auto (default) | cpu | gpu | cuda | mps")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("eval", help="evaluate a run folder or checkpoint")
    s.add_argument("source", metavar="RUN|CHECKPOINT",
                   help="run folder, or a checkpoint file (inside a run folder, or with --model and --data)")
    _weights_args(s)
    s.add_argument("--model", help="architecture of a checkpoint file outside a run folder (with --data)")
    s.add_argument("--data", help="evaluate on another registered data set (its classes must fit the run's)")
    s.add_argument("--data-root", help="folder holding the data set's files")
    s.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to evaluate (default test)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field of the run's recipe")
    s.add_argument("--accelerator", default="auto", help="auto (default) | cpu | gpu | cuda | mps")
    s.add_argument("--json", action="store_true", help=json_help)
    s.add_argument("--crops", type=int, default=1, choices=(1, 10, 12, 144),
                   help="average the softmax over 10, 12 or 144 crops (Inception-v4 / GoogLeNet protocol)")
    s.add_argument("--ensemble", nargs="+", metavar="RUN", help="more runs whose softmax is averaged with RUN's")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("predict", help="predict on image / .npy files with a run, checkpoint or model",
                       description="One line per input on stdout; --out FILE.json|FILE.csv writes all results "
                                   "into one file as well.")
    s.add_argument("source", metavar="RUN|CHECKPOINT|MODEL",
                   help="run folder, checkpoint file (inside a run folder, or with --model) or registered model")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders and glob patterns ('photos/*.png')")
    _weights_args(s)
    s.add_argument("--model", help="architecture of a checkpoint file outside a run folder")
    s.add_argument("--out", help="FILE.json or FILE.csv: all results in one file; any other path: the folder for "
                                 "image outputs (super-resolution; default .)")
    s.add_argument("--format", choices=("json", "csv"), help="format of the --out file (default: its suffix)")
    s.add_argument("--json", action="store_true", help="print one JSON document per prediction")
    s.set_defaults(fn=cmd_predict)

    s = sub.add_parser("features", help="frozen features of a layer for image / .npy files (.npy or .npz)",
                       description="Off-the-shelf features (Razavian et al. 2014): the output of one layer of a run, "
                                   "checkpoint or model for every input, flattened and L2-normalised, written as "
                                   "FILE.npz (features, names) or FILE.npy plus FILE.names.txt.")
    s.add_argument("source", metavar="RUN|CHECKPOINT|MODEL",
                   help="run folder, checkpoint file (inside a run folder, or with --model) or registered model")
    s.add_argument("inputs", nargs="*", metavar="INPUT", help="files, folders and glob patterns ('photos/*.png')")
    _weights_args(s)
    s.add_argument("--model", help="architecture of a checkpoint file outside a run folder")
    s.add_argument("--out", help="FILE.npz or FILE.npy to write")
    s.add_argument("--layer", help="module name to read (default: the model's paper layer, else the pooled "
                                   "pre-logits embedding); --list-layers prints them")
    s.add_argument("--list-layers", action="store_true", help="print the model's layer names and stop")
    s.add_argument("--spatial", default="flatten", choices=("flatten", "avg", "max"),
                   help="what to do with a spatial map: flatten (default), or pool it")
    s.add_argument("--power", type=float, help="signed power transform sign(x)|x|^P before normalising")
    s.add_argument("--no-l2", action="store_true", help="keep the raw length (no L2 normalisation)")
    s.add_argument("--batch", type=int, default=32, help="images per forward pass (default 32)")
    s.set_defaults(fn=cmd_features)

    s = sub.add_parser("bench", help="speed, compute and memory against a peer")
    s.add_argument("model", help="registered model name")
    s.add_argument("--batch", type=int, default=16, help="batch size of the throughput figures (default 16)")
    s.add_argument("--size", help="input size S or HxW (SR: output size)")
    s.add_argument("--channels-last", action="store_true", help="add the channels_last mode")
    s.add_argument("--compile", action="store_true", help="add the torch.compile mode")
    s.add_argument("--deploy", action="store_true", help="add the deploy mode (re-parameterised, conv+BN fused)")
    s.add_argument("--bf16", action="store_true", help="add the bf16 autocast mode")
    s.add_argument("--all", action="store_true", help="every mode")
    s.add_argument("--train", action="store_true",
                   help="time a training step: the engine's and fast mode's against a plain PyTorch loop")
    s.add_argument("--rounds", type=int, default=5, help="timed rounds per figure (default 5)")
    s.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    s.add_argument("--compare", metavar="timm:NAME", help="a reference model measured in the same run")
    s.add_argument("--json", action="store_true", help=json_help)
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("analyse", help="paper analyses: efficiency (convzoo analyse efficiency --help)")
    s.add_argument("name", help="one of: " + ", ".join(ANALYSES))
    s.add_argument("args", nargs=argparse.REMAINDER, help="the analysis's own arguments")
    s.set_defaults(fn=cmd_analyse)

    s = sub.add_parser("export", help="export to ONNX or a torch.export program",
                       description="Writes <model>[-<run>][-last].onnx|.pt2 into the run folder (or --out DIR); the ONNX "
                                   "file carries model, class names, mean/std and input size as metadata.")
    s.add_argument("source", metavar="RUN|CHECKPOINT|MODEL",
                   help="run folder, checkpoint file (inside a run folder, or with --model) or registered model")
    _weights_args(s)
    s.add_argument("--model", help="architecture of a checkpoint file outside a run folder")
    s.add_argument("--format", choices=["onnx", "torch-export"],
                   help="onnx (default) or torch-export (.pt2; the default for --out FILE.pt2)")
    s.add_argument("--size", help="input size S or HxW (default: the run's or the card's)")
    s.add_argument("--out", help="folder to write into (created), or a file path ending in .onnx / .pt2 "
                                 "(default: the run folder, or . for a model)")
    s.add_argument("--force", action="store_true", help="overwrite an existing file")
    s.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    s.add_argument("--check", action="store_true", help="compare outputs with onnxruntime / the program")
    s.set_defaults(fn=cmd_export)
    return p


def _quiet_broken_pipe() -> int:
    """stdout's reader went away: point stdout at devnull so the interpreter's final flush is silent
    (the recipe of Python's signal module documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (captured in tests)
        pass
    return 1  # Python's own exit status on EPIPE


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
        sys.stdout.flush()  # a reader that has gone away is noticed here, not at interpreter exit
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except ConvzooError as e:
        print(f"convzoo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convzoo: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug of ours, not the user's: still one line unless debugging
        if os.environ.get("CONVZOO_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"convzoo: internal error: {type(e).__name__}: {msg} (set CONVZOO_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
