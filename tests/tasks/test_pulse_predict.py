"""What the pulse model reads from a person: a .npy pulse file; anything else, an image above all, is one
line (exit code 2 from the CLI) that names what the model takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import convzoo
from convzoo.cli import main
from convzoo.errors import ConvzooError
from convzoo.tasks import build_task

TAKES = "'pulsedl2_cnn' takes detector pulses of 64 samples: a .npy array of shape (64,) or (N, 64)"


def _inputs(tmp_path):
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(tmp_path / "digit.png")
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(tmp_path / "photo.jpg")
    np.save(tmp_path / "image.npy", np.zeros((3, 28, 28), np.float32))  # an image saved as an array
    np.save(tmp_path / "long.npy", np.zeros((2, 100), np.float32))  # pulses of another window
    (tmp_path / "notes.txt").write_text("not a pulse")
    return {"digit.png": "digit.png is an image", "photo.jpg": "photo.jpg is an image",
            "image.npy": "holds an array of shape (3, 28, 28)", "long.npy": "holds pulses of 100 samples",
            "notes.txt": "is a '.txt' file"}


def test_read_input_names_what_the_model_takes(tmp_path):
    task, card = build_task("pulse_regression"), convzoo.get_card("pulsedl2_cnn")
    for name, why in _inputs(tmp_path).items():
        with pytest.raises(ConvzooError) as e:
            task.read_input(tmp_path / name, card, None)
        msg = str(e.value)
        assert "\n" not in msg and why in msg and msg.endswith(TAKES), msg
    np.save(tmp_path / "ok.npy", np.zeros((3, 64), np.float32))
    x = task.read_input(tmp_path / "ok.npy", card, None)
    assert x.shape == (3, 1, 64) and x.dtype == torch.float32


def test_cli_predict_on_an_image_is_one_line(tmp_path, capsys):
    for name, why in _inputs(tmp_path).items():
        try:
            code = main(["predict", "pulsedl2_cnn", str(tmp_path / name)])
        except SystemExit as e:
            code = e.code
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1, err
        assert why in lines[0] and TAKES in lines[0] and "Traceback" not in err, err
