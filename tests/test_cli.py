"""The CLI: every command answers, every user error is one line on stderr with exit code 2."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from convzoo.cli import build_parser, main


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]


def digit_png(path, index=0, side=56):
    """A real handwritten digit of scikit-learn's set, written as a grey PNG."""
    from PIL import Image
    from sklearn.datasets import load_digits

    img = (load_digits().images[index] / 16 * 255).astype(np.uint8)
    Image.fromarray(img).resize((side, side), Image.NEAREST).save(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real run folder: cnn_softmax_digits trained for one epoch (config, data facts, best/last, state)."""
    from convzoo import engine

    out = tmp_path_factory.mktemp("runs")
    return engine.train("cnn_softmax_digits", values={"epochs": 1}, out_dir=out, run_name="run", progress=False).run_dir


@pytest.fixture
def run_copy(trained, tmp_path):
    """A copy of the run whose last checkpoint has a zero classifier (uniform probabilities), so that best
    and last differ visibly."""
    import torch
    from safetensors.torch import load_file, save_file

    copy = shutil.copytree(trained, tmp_path / "run")
    state = load_file(str(copy / "last.safetensors"))
    head = ("head.fc.weight", "head.fc.bias")  # cnn_svm_mnist's classifier
    assert set(head) <= set(state)
    save_file({k: torch.zeros_like(v) if k in head else v for k, v in state.items()}, str(copy / "last.safetensors"))
    return copy


# --- list, info, papers, recipes, data ----------------------------------------------------------
def test_list_and_info(capsys):
    code, out, _ = run(capsys, "list", "eca")
    assert code == 0 and "eca_resnet50" in out
    code, out, _ = run(capsys, "list", "--paper", "41", "--json")
    assert code == 0 and {m["name"] for m in json.loads(out)} >= {"espcn_x2", "espcn_x3", "espcn_x4"}
    code, out, _ = run(capsys, "info", "simplenet")
    assert code == 0 and "paper" in out and "5,498,378" in out


def test_info_shows_macs_for_every_model(capsys, monkeypatch):
    """Every card shows MACs; one without the paper's gets them counted on the meta device, and says so
    (counted here for the first variant of each such family: about a second each)."""
    import convzoo
    from convzoo import cli

    names = convzoo.list_models()
    counted = {}
    for name in names:
        card = convzoo.get_card(name)
        if card.macs is None:
            counted.setdefault(card.family, name)
    assert counted  # the cards of LSNet, RepLKNet, UniRepLKNet and the SSDs give none
    real = cli.count_macs_here
    monkeypatch.setattr(cli, "count_macs_here", lambda card: real(card) if card.name in counted.values() else 1)
    for name in names:
        code, out, err = run(capsys, "info", name, "--json")
        assert code == 0, err
        card = json.loads(out)
        assert isinstance(card["macs"], int) and card["macs"] > 0, name
        if convzoo.get_card(name).macs is None:
            assert card["macs_source"].startswith("counted here"), name
            floor = 10 ** 8 if min(convzoo.get_card(name).input_size) >= 200 else 10 ** 5  # ImageNet-size nets
            assert name not in counted.values() or card["macs"] > floor, (name, card["macs"])


def test_info_macs_counted_here_match_a_closed_form(capsys, monkeypatch):
    """The count the CLI makes for a card without MACs, against the closed form of a one-layer model."""
    from torch import nn

    from convzoo import registry

    card = registry.get_card("cnn_svm_mnist").with_(name="_one_conv", macs=None, in_chans=3, input_size=(10, 12))
    monkeypatch.setitem(registry._REGISTRY, card.name, registry._Entry(card, lambda **kw: nn.Conv2d(3, 5, 3, padding=1)))
    code, out, err = run(capsys, "info", "_one_conv", "--json")
    assert code == 0, err
    assert json.loads(out)["macs"] == 10 * 12 * 5 * 3 * 3 * 3  # output positions x out channels x (Cin k k)


def test_unknown_model_suggests(capsys):
    code, _, err = run(capsys, "info", "eca_resnet5")
    assert_one_line_error(code, err, "unknown model 'eca_resnet5'", "eca_resnet50")


def test_papers_table_and_one_paper(capsys):
    code, out, _ = run(capsys, "papers")
    assert code == 0 and "57 papers" in out
    code, out, _ = run(capsys, "papers", "43", "--json")
    paper = json.loads(out)
    assert code == 0 and paper["seed"] == 43 and paper["status"] != "planned"
    assert any(a["claims"] for a in paper["artefacts"])
    code, _, err = run(capsys, "papers", "99")
    assert_one_line_error(code, err, "unknown paper")


def test_recipes_one_line_each(capsys):
    from convzoo.engine import list_recipes

    code, out, err = run(capsys, "recipes")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == len(list_recipes()) >= 40
    line = next(ln for ln in lines if ln.startswith("simplenet_digits "))
    assert line.split()[1:4] == ["simplenet_cifar_310k", "digits", "12"] and "SimpleNet" in line
    code, out, _ = run(capsys, "recipes", "digits", "--json")
    rows = json.loads(out)
    assert code == 0 and rows and all("digits" in r["name"] for r in rows)
    assert {"name", "model", "data", "epochs", "description"} <= set(rows[0])


def test_data_lists_every_registered_set(capsys, tmp_path, monkeypatch):
    from convzoo.data import list_datasets
    from convzoo.data.fetch import list_fetchable

    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path))
    for argv in (["data"], ["data", "list"]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        first = {ln.split()[0]: ln for ln in out.strip().splitlines()}
        assert set(list_datasets()) | set(list_fetchable()) == set(first)
        assert "not fetched" in first["deepforest"] and str(tmp_path / "deepforest") in first["deepforest"]
        assert "scikit-learn" in first["digits"]
    code, out, _ = run(capsys, "data", "--json")
    assert code == 0 and {r["name"] for r in json.loads(out)} >= set(list_datasets())


def test_data_fetch_errors(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path))
    code, _, err = run(capsys, "data", "fetch", "deepforst")
    assert_one_line_error(code, err, "deepforst", "deepforest")
    code, _, err = run(capsys, "data", "fetch")
    assert_one_line_error(code, err, "needs a set name")


def test_every_option_has_help():
    """``--help`` describes every option and positional argument of every command."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {c.dest for c in sub._choices_actions} == set(sub.choices)
    assert all(c.help for c in sub._choices_actions)
    for name, command in sub.choices.items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, f"convzoo {name} {action.option_strings or action.dest}"


# --- predict -------------------------------------------------------------------------------------
def test_predict_espcn_writes_png(capsys, tmp_path):
    from PIL import Image
    from skimage import data

    src = tmp_path / "chelsea.png"
    img = data.chelsea()[:60, :80]
    Image.fromarray(img).save(src)
    code, _, err = run(capsys, "predict", "espcn_x3", src, "--out", tmp_path / "out")
    assert code == 0, err
    up = np.asarray(Image.open(tmp_path / "out" / "chelsea_x3.png"))
    assert up.shape == (180, 240, 3)


def test_predict_with_an_untrained_registered_model_names_class_indices(capsys, tmp_path):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    code, out, err = run(capsys, "predict", "resnet18_ibn_b", tmp_path / "cat.png")
    assert code == 0, err
    assert "no trained weights" in err  # a warning on stderr; stdout holds only the predictions
    assert out.startswith(str(tmp_path / "cat.png") + ": ") and len(out.split(",")) == 5  # top-5 class indices


def test_predict_files_folders_globs_into_one_json_and_csv(capsys, trained, tmp_path):
    """Files, a folder and a glob; stdout one line per input; --out FILE.json / FILE.csv all results."""
    (tmp_path / "more").mkdir()
    files = [digit_png(tmp_path / "a.png", 0), digit_png(tmp_path / "more" / "b.png", 1),
             digit_png(tmp_path / "more" / "c.png", 2)]
    (tmp_path / "more" / "notes.txt").write_text("not an input")
    code, out, err = run(capsys, "predict", trained, files[0], tmp_path / "more", "--out", tmp_path / "res.json")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [ln.split(": ")[0] for ln in lines] == [str(f) for f in files]
    rows = json.loads((tmp_path / "res.json").read_text())
    assert [r["path"] for r in rows] == [str(f) for f in files]
    assert all(len(r["top5"]) == 5 and {t["name"] for t in r["top5"]} <= set("0123456789") for r in rows)
    assert all(sum(t["score"] for t in r["top5"]) <= 1 + 1e-6 for r in rows)

    code, out, err = run(capsys, "predict", trained, str(tmp_path / "more" / "*.png"), "--out", tmp_path / "res.txt",
                         "--format", "csv")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 2
    with open(tmp_path / "res.txt", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["path"] for r in table] == [str(f) for f in files[1:]]
    assert {"top1_name", "top1_score", "top5_name", "prediction"} <= set(table[0])
    assert table[0]["top1_name"] == rows[1]["top5"][0]["name"]


def test_predict_takes_the_best_checkpoint_unless_last(capsys, run_copy, tmp_path):
    png = digit_png(tmp_path / "d.png", 3)
    code, out, err = run(capsys, "predict", run_copy, png, "--json")
    assert code == 0, err
    best = json.loads(out)["top5"]
    assert best[0]["score"] > 0.2  # trained for an epoch: not uniform
    code, out, err = run(capsys, "predict", run_copy, png, "--json", "--last")
    assert code == 0, err
    assert [t["score"] for t in json.loads(out)["top5"]] == pytest.approx([0.1] * 5)  # the zeroed classifier
    code, out, err = run(capsys, "predict", run_copy / "last.safetensors", png, "--json")  # a file in the run
    assert code == 0, err
    assert json.loads(out)["top5"][0]["score"] == pytest.approx(0.1)


def test_predict_a_bare_checkpoint_file_with_model(capsys, trained, tmp_path):
    """A checkpoint outside its run folder needs --model; its predictions are the run's."""
    png = digit_png(tmp_path / "d.png", 5)
    bare = shutil.copy(trained / "best.safetensors", tmp_path / "weights.safetensors")
    code, out, err = run(capsys, "predict", trained, png, "--json")
    from_run = json.loads(out)["top5"]
    code, out, err = run(capsys, "predict", bare, png, "--json", "--model", "cnn_svm_mnist")
    assert code == 0, err
    assert [t["class"] for t in json.loads(out)["top5"]] == [t["class"] for t in from_run]


# --- eval ----------------------------------------------------------------------------------------
def test_eval_best_by_default_and_last_and_a_bare_checkpoint(capsys, run_copy, tmp_path):
    code, out, err = run(capsys, "eval", run_copy, "--json")
    assert code == 0, err
    assert json.loads(out)["acc"] > 0.2
    code, out, err = run(capsys, "eval", run_copy, "--json", "--last")
    assert code == 0, err
    assert json.loads(out)["acc"] == pytest.approx(0.1, abs=0.03)  # uniform scores: one class for all
    code, out, err = run(capsys, "eval", run_copy / "best.safetensors", "--json")
    assert code == 0, err
    best = json.loads(out)
    assert best["acc"] > 0.2
    bare = shutil.copy(run_copy / "best.safetensors", tmp_path / "weights.safetensors")  # outside its run
    code, out, err = run(capsys, "eval", bare, "--model", "cnn_svm_mnist", "--data", "digits",
                         "--set", "data.kwargs.size=28", "--set", "data.kwargs.channels=1", "--json")
    assert code == 0, err
    assert json.loads(out) == pytest.approx(best, abs=1e-6)


# --- export --------------------------------------------------------------------------------------
def test_export_into_the_run_folder_twice_and_metadata(capsys, run_copy, tmp_path):
    """Into the run folder by default, named after model and run; the second export is refused without
    --force; the ONNX file carries class names, mean/std and input size, and computes the best checkpoint."""
    import onnx
    import onnxruntime as ort
    import torch
    import yaml

    from convzoo.engine import load_run

    code, out, err = run(capsys, "export", run_copy, "--check")
    assert code == 0, err
    path = run_copy / "cnn_svm_mnist-run.onnx"
    assert path.is_file() and "max_abs_diff" in out
    code, _, err = run(capsys, "export", run_copy)
    assert_one_line_error(code, err, str(path), "--force")
    code, _, err = run(capsys, "export", run_copy, "--force")
    assert code == 0, err

    info = yaml.safe_load((run_copy / "data_info.yaml").read_text())  # what the training wrote
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["class_names"]) == [str(d) for d in range(10)]
    assert json.loads(meta["input_size"]) == [1, 28, 28] == [info["in_chans"], *info["input_size"]]
    assert json.loads(meta["mean"]) == pytest.approx(info["extra"]["mean"])
    assert json.loads(meta["std"]) == pytest.approx(info["extra"]["std"])
    assert meta["model"] == "cnn_svm_mnist" and meta["convzoo_version"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_modelmeta().custom_metadata_map["class_names"] == meta["class_names"]
    x = torch.randn(2, 1, 28, 28)
    model = load_run(run_copy, which="best")[0]
    with torch.no_grad():
        assert np.abs(sess.run(None, {"input": x.numpy()})[0] - model(x).numpy()).max() < 1e-4

    code, out, err = run(capsys, "export", run_copy, "--last")  # the last checkpoint: its own name
    assert code == 0, err
    assert (run_copy / "cnn_svm_mnist-run-last.onnx").is_file()


def test_export_out_folder_file_and_program(capsys, trained, tmp_path):
    code, out, err = run(capsys, "export", trained, "--out", tmp_path / "exports" / "deep")  # created
    assert code == 0, err
    assert (tmp_path / "exports" / "deep" / "cnn_svm_mnist-run.onnx").is_file()
    code, out, err = run(capsys, "export", trained, "--out", tmp_path / "m.onnx")  # a file path still works
    assert code == 0, err
    assert (tmp_path / "m.onnx").is_file()
    code, out, err = run(capsys, "export", trained, "--out", tmp_path / "m.pt2", "--check")  # format from suffix
    assert code == 0, err
    assert float(out.split("max_abs_diff ")[1]) < 1e-5

    import torch

    extra = {"convzoo.json": ""}
    torch.export.load(str(tmp_path / "m.pt2"), extra_files=extra)
    assert json.loads(extra["convzoo.json"])["model"] == "cnn_svm_mnist"


def test_export_a_registered_model_uses_its_own_channels_not_its_recipes_data(capsys, tmp_path, monkeypatch):
    """resnet18_ibn_a's first recipe trains on 1-channel digits; the registered model has 3 input channels."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "export", "resnet18_ibn_a", "--format", "onnx", "--size", "32x32", "--check")
    assert code == 0, err
    assert "max_abs_diff" in out and (tmp_path / "resnet18_ibn_a.onnx").is_file()
    assert "random weights" in err  # warned on stderr


# --- train ---------------------------------------------------------------------------------------
def test_train_flags_are_typed_values_not_yaml_text(capsys, monkeypatch):
    """``--data-root 2024`` once failed with "must be a string or null, got 2024": flags are set as typed values."""
    from types import SimpleNamespace

    from convzoo import engine

    seen = {}

    def fake_train(recipe, overrides=(), values=None, **kw):
        seen["cfg"] = engine.load_recipe(recipe, overrides, values)
        seen["kw"] = kw
        return SimpleNamespace(metrics={"acc": 1.0}, run_dir="runs/x")

    monkeypatch.setattr(engine, "train", fake_train)
    code, _, err = run(capsys, "train", "simplenet_digits", "--data-root", "2024", "--epochs", "3", "--fast",
                         "--set", "optimizer.lr=0.5")
    assert code == 0, err
    cfg = seen["cfg"]
    assert cfg["data"]["root"] == "2024" and cfg["epochs"] == 3 and cfg["fast"] is True
    assert cfg["optimizer"]["lr"] == 0.5  # --set stays the one string channel (read as YAML)
    assert "init" not in seen["kw"] and "freeze" not in seen["kw"]

    code, _, err = run(capsys, "train", "simplenet_digits", "--init", "runs/a", "--freeze", "2")
    assert code == 0, err
    assert seen["kw"]["init"] == "runs/a" and seen["kw"]["freeze"] == 2
    code, _, err = run(capsys, "train", "simplenet_digits", "--init", "w.pth", "--freeze", "stem, stages.0")
    assert code == 0, err
    assert seen["kw"]["freeze"] == ["stem", "stages.0"]


# --- every user mistake: one line on stderr, exit 2 ----------------------------------------------
@pytest.fixture
def at(trained, run_copy, tmp_path, monkeypatch):
    """Paths the mistakes below name: the run, a corrupt copy, stray files."""
    import convzoo
    from convzoo.weights import save_weights

    monkeypatch.chdir(tmp_path)
    corrupt = shutil.copytree(trained, tmp_path / "corrupt")
    (corrupt / "best.safetensors").write_bytes(b"\x00not safetensors")
    (corrupt / "state.pt").write_bytes(b"not a state")
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "cnn_svm_mnist-run.onnx").write_bytes(b"an earlier export")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("x")
    save_weights(convzoo.create_model("simplenet_cifar_310k", in_chans=1, num_classes=10), tmp_path / "other.safetensors")
    np.save(tmp_path / "bad.npy", np.zeros((3, 4, 5, 6), dtype=np.float32))
    return {"run": str(trained), "tmp": str(tmp_path), "corrupt": str(corrupt), "png": str(digit_png(tmp_path / "d.png")),
            "npy": str(tmp_path / "bad.npy"), "other": str(tmp_path / "other.safetensors"), "no": str(tmp_path / "nowhere")}


MISTAKES = [  # (id, argv, what the one line names); {run} etc. are the paths of the fixture ``at``
    # the list
    ("eval-split-foo", "eval {run} --split foo", ["foo"]),
    ("eval-data-of-another-set", "eval {run} --data photos", ["photos"]),
    ("image-to-pulse-model", "predict pulsedl2_cnn {png}", ["d.png"]),
    ("export-size-abc", "export {run} --size abc", ["abc"]),
    ("export-clash", "export {run} --out exports", ["cnn_svm_mnist-run.onnx", "--force"]),
    ("accelerator-tpu-train", "train cnn_softmax_digits --accelerator tpu --no-progress --out runs", ["tpu"]),
    ("accelerator-tpu-eval", "eval {run} --accelerator tpu", ["tpu"]),
    ("broken-pipe", "list --json", None),  # run through a real pipe whose reader has gone: quiet
    # runs, checkpoints and resuming
    ("unknown-recipe", "train simplenet_digts", ["simplenet_digts", "simplenet_digits"]),
    ("eval-missing-run", "eval {no}", ["nowhere"]),
    ("eval-folder-not-a-run", "eval {tmp}/empty", ["config.yaml"]),
    ("eval-bare-file-without-model", "eval {other}", ["--model"]),
    ("eval-bare-file-other-model", "eval {other} --model cnn_svm_mnist --data digits", ["other.safetensors"]),
    ("predict-missing-run", "predict {no} {png}", ["nowhere"]),
    ("export-missing-run", "export {no}", ["nowhere"]),
    ("resume-missing-run", "train --resume {no}", ["nowhere"]),
    ("resume-other-model", "train --resume {run} --model simplenet_cifar_310k --no-progress", ["simplenet_cifar_310k"]),
    ("resume-other-recipe", "train simplenet_digits --resume {run} --no-progress", ["simplenet_digits"]),
    ("resume-corrupt-state", "train --resume {corrupt} --no-progress", ["state.pt"]),
    ("eval-corrupt-checkpoint", "eval {corrupt}", ["best.safetensors"]),
    ("predict-corrupt-checkpoint", "predict {corrupt} {png}", ["best.safetensors"]),
    ("init-missing", "train cnn_softmax_digits --init {no} --no-progress --out runs", ["nowhere"]),
    ("init-other-architecture", "train cnn_softmax_digits --init {other} --epochs 1 --no-progress --out runs",
     ["other.safetensors"]),
    ("freeze-without-init", "train cnn_softmax_digits --freeze 2", ["--init"]),
    ("last-of-a-model-name", "predict resnet18_ibn_b {png} --last", ["--last"]),
    ("bare-checkpoint-without-model", "predict {other} {png}", ["--model"]),
    ("bare-checkpoint-other-model", "predict {other} {png} --model cnn_svm_mnist", ["other.safetensors"]),
    ("model-with-a-run", "predict {run} {png} --model resnet18_ibn_b", ["cnn_svm_mnist"]),
    # predict inputs and outputs
    ("predict-missing-file", "predict {run} {tmp}/missing.png", ["missing.png"]),
    ("predict-unreadable-file", "predict {run} {tmp}/junk.png", ["junk.png"]),
    ("predict-empty-folder", "predict {run} {tmp}/empty", ["empty"]),
    ("predict-glob-no-match", "predict {run} {tmp}/*.jpeg", ["*.jpeg"]),
    ("predict-unsupported-type", "predict {run} {tmp}/a_file", ["a_file"]),
    ("predict-npy-wrong-shape", "predict pulsedl2_cnn {npy}", ["bad.npy"]),
    ("predict-format-without-out", "predict {run} {png} --format csv", ["--out"]),
    ("predict-results-file-suffix", "predict {run} {png} --out r.json --format xml", ["xml"]),
    # export
    ("export-out-suffix-vs-format", "export {run} --out m.pt2 --format onnx", ["m.pt2"]),
    ("export-out-is-a-file", "export {run} --out a_file", ["a_file"]),
    ("export-unknown-model", "export resnet18_ibn", ["resnet18_ibn_a"]),
    # recipes, data, options
    ("bad-set-key", "train cnn_softmax_digits --set optimizer.lrr=0.1 --no-progress", ["optimizer.lrr"]),
    ("set-without-value", "train cnn_softmax_digits --set epochs --no-progress", ["epochs"]),
    ("missing-data-root", "train --model simplenet_cifar_310k --data cifar10 --data-root {no} --no-progress", ["nowhere"]),
    ("model-too-small-for-input", "train simplenet_digits --set data.kwargs.size=4 --epochs 1 --no-progress --out runs",
     ["size"]),
    ("train-nothing", "train", ["RECIPE"]),
    ("devices-zero", "train cnn_softmax_digits --devices 0 --no-progress", ["devices"]),
    ("unknown-recipe-pattern", "recipes no_such_recipe", ["no_such_recipe"]),
    ("unknown-data-set", "data fetch no_such_set", ["no_such_set"]),
    ("unknown-command", "trian", ["trian"]),
    ("eval-crops-7", "eval {run} --crops 7", ["7"]),
    ("bench-unknown-model", "bench no_such_net", ["no_such_net"]),
]


@pytest.mark.parametrize("argv, needles", [pytest.param(a, n, id=i) for i, a, n in MISTAKES])
def test_user_mistake_is_one_line(argv, needles, at, capsys):
    argv = [part.format(**at) for part in argv.split()]
    if needles is None:  # the reader of stdout has gone before the first byte: no traceback, no message
        proc = subprocess.Popen([sys.executable, "-m", "convzoo.cli", *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == 1 and err == "", err  # Python's exit status on EPIPE, nothing said
        return
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *[n.format(**at) for n in needles])


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "convzoo.cli", "info", "no_such_net"], check=False,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_analyse_efficiency_and_unknown_analysis(capsys):
    code = main(["analyse", "efficiency", "--counts-only", "--size", "32", "--json", "vovnet27_slim"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)[0]["model"] == "vovnet27_slim"
    code = main(["analyse", "efficency"])
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, "efficency", "efficiency")


@pytest.mark.slow
def test_train_eval_predict_export_end_to_end(capsys, tmp_path):
    """The CLI's main path on real data: train one epoch, evaluate the run, predict a digit image, export."""
    code, out, err = run(capsys, "train", "simplenet_digits", "--epochs", "1", "--no-progress",
                         "--out", tmp_path, "--name", "run")
    assert code == 0, err
    assert "test: " in out and "run folder:" in out
    run_dir = tmp_path / "run"
    assert (run_dir / "report.md").is_file() and (run_dir / "confusion_matrix.png").is_file()

    code, out, err = run(capsys, "eval", run_dir, "--json")
    assert code == 0, err
    assert 0.0 <= json.loads(out)["acc"] <= 1.0

    path = digit_png(tmp_path / "digit.png", 0, side=64)  # a real "0"
    code, out, err = run(capsys, "predict", run_dir, path, "--json")
    assert code == 0, err
    pred = json.loads(out.strip().splitlines()[-1])
    assert len(pred["top5"]) == 5 and {t["name"] for t in pred["top5"]} <= set("0123456789")

    code, out, err = run(capsys, "export", run_dir, "--format", "onnx", "--size", "16x16", "--check")
    assert code == 0, err
    assert (run_dir / "simplenet_cifar_310k-run.onnx").is_file() and "max_abs_diff" in out
