"""The CLI: every command answers, every user error is one line on stderr with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from convzoo.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def test_list_and_info(capsys):
    code, out, _ = run(capsys, "list", "eca")
    assert code == 0 and "eca_resnet50" in out
    code, out, _ = run(capsys, "list", "--paper", "41", "--json")
    assert code == 0 and {m["name"] for m in json.loads(out)} >= {"espcn_x2", "espcn_x3", "espcn_x4"}
    code, out, _ = run(capsys, "info", "simplenet")
    assert code == 0 and "paper" in out and "5,498,378" in out


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


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1


def test_bad_set_key(capsys):
    code, _, err = run(capsys, "train", "simplenet_digits", "--set", "optimizer.lrr=0.1", "--no-progress")
    assert_one_line_error(code, err, "optimizer.lrr")


def test_missing_data_root(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--model", "simplenet_cifar_310k", "--data", "cifar10",
                       "--data-root", str(tmp_path / "nowhere"), "--no-progress", "--out", str(tmp_path))
    assert_one_line_error(code, err, "nowhere")


def test_corrupt_checkpoint(capsys, tmp_path):
    bad = tmp_path / "run"
    bad.mkdir()
    code, _, err = run(capsys, "eval", str(bad))
    assert code == 2 and "Traceback" not in err


def test_predict_unreadable_and_wrong_shape(capsys, tmp_path):
    junk = tmp_path / "photo.png"
    junk.write_bytes(b"not a png")
    code, _, err = run(capsys, "predict", "espcn_x3", str(junk))
    assert_one_line_error(code, err, "photo.png")
    arr = tmp_path / "pulse.npy"
    np.save(arr, np.zeros((3, 4, 5, 6), dtype=np.float32))
    code, _, err = run(capsys, "predict", "pulsedl2_cnn", str(arr))
    assert_one_line_error(code, err, "pulse.npy")


def test_predict_espcn_writes_png(capsys, tmp_path):
    from PIL import Image
    from skimage import data

    src = tmp_path / "chelsea.png"
    img = data.chelsea()[:60, :80]
    Image.fromarray(img).save(src)
    code, out, err = run(capsys, "predict", "espcn_x3", str(src), "--out", str(tmp_path / "out"))
    assert code == 0, err
    up = np.asarray(Image.open(tmp_path / "out" / "chelsea_x3.png"))
    assert up.shape == (180, 240, 3)


def test_export_a_registered_model_uses_its_own_channels_not_its_recipes_data(capsys, tmp_path, monkeypatch):
    """resnet18_ibn_a's first recipe trains on 1-channel digits; the registered model has 3 input channels."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "export", "resnet18_ibn_a", "--format", "onnx", "--size", "32x32", "--check")
    assert code == 0, err
    assert "max_abs_diff" in out and (tmp_path / "resnet18_ibn_a.onnx").is_file()


def test_predict_with_an_untrained_registered_model_names_class_indices(capsys, tmp_path):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    code, out, err = run(capsys, "predict", "resnet18_ibn_b", str(tmp_path / "cat.png"))
    assert code == 0, err
    assert "no trained weights" in err  # a warning on stderr; stdout holds only the predictions
    assert out.startswith(str(tmp_path / "cat.png") + ": ") and len(out.split(",")) == 5  # top-5 class indices


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "convzoo.cli", "info", "no_such_net"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_train_eval_predict_export_end_to_end(capsys, tmp_path):
    """The CLI's main path on real data: train one epoch, evaluate the run, predict a digit image, export."""
    from PIL import Image
    from sklearn.datasets import load_digits

    code, out, err = run(capsys, "train", "simplenet_digits", "--epochs", "1", "--no-progress",
                         "--out", str(tmp_path), "--name", "run")
    assert code == 0, err
    assert "test: " in out and "run folder:" in out
    run_dir = tmp_path / "run"
    assert (run_dir / "report.md").is_file() and (run_dir / "confusion_matrix.png").is_file()

    code, out, err = run(capsys, "eval", str(run_dir), "--json")
    assert code == 0, err
    assert 0.0 <= json.loads(out)["acc"] <= 1.0

    digit = load_digits()
    img = (digit.images[0] / 16 * 255).astype(np.uint8)  # a real "0"
    path = tmp_path / "digit.png"
    Image.fromarray(img).resize((64, 64), Image.NEAREST).save(path)
    code, out, err = run(capsys, "predict", str(run_dir), str(path), "--json")
    assert code == 0, err
    pred = json.loads(out.strip().splitlines()[-1])
    assert len(pred["top5"]) == 5 and {t["name"] for t in pred["top5"]} <= set("0123456789")

    code, out, err = run(capsys, "export", str(run_dir), "--format", "onnx", "--size", "16x16", "--check",
                         "--out", str(tmp_path / "m.onnx"))
    assert code == 0, err
    assert (tmp_path / "m.onnx").is_file() and "max_abs_diff" in out


def test_train_flags_are_typed_values_not_yaml_text(capsys, monkeypatch):
    """``--data-root 2024`` once failed with "must be a string or null, got 2024": flags are set as typed values."""
    from types import SimpleNamespace

    from convzoo import engine

    seen = {}

    def fake_train(recipe, overrides=(), values=None, **kw):
        seen["cfg"] = engine.load_recipe(recipe, overrides, values)
        return SimpleNamespace(metrics={"acc": 1.0}, run_dir="runs/x")

    monkeypatch.setattr(engine, "train", fake_train)
    code, out, err = run(capsys, "train", "simplenet_digits", "--data-root", "2024", "--epochs", "3", "--fast",
                         "--set", "optimizer.lr=0.5")
    assert code == 0, err
    cfg = seen["cfg"]
    assert cfg["data"]["root"] == "2024" and cfg["epochs"] == 3 and cfg["fast"] is True
    assert cfg["optimizer"]["lr"] == 0.5  # --set stays the one string channel (read as YAML)


def test_data_list_and_fetch_errors(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path))
    code, out, _ = run(capsys, "data", "list")
    assert code == 0 and "deepforest" in out and str(tmp_path) in out
    code, _, err = run(capsys, "data", "fetch", "deepforst")
    assert_one_line_error(code, err, "deepforst", "deepforest")
    code, _, err = run(capsys, "data", "fetch")
    assert_one_line_error(code, err, "needs a set name")


def test_analyse_efficiency_and_unknown_analysis(capsys):
    code = main(["analyse", "efficiency", "--counts-only", "--size", "32", "--json", "vovnet27_slim"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)[0]["model"] == "vovnet27_slim"
    code = main(["analyse", "efficency"])
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, "efficency", "efficiency")
