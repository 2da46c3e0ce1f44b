"""``convzoo features`` (paper 7, CNN Features off-the-shelf): frozen features of a folder of images written as
.npz (features + names) or .npy (+ names file), from a registered model or a checkpoint as ``predict`` takes
them; the layer by name (--list-layers), pooling, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convzoo
from convzoo.cli import main

pytestmark = pytest.mark.paper(7)

MODEL = "cnn_svm_mnist"  # a small registered model (28 x 28 grey, 1,024-d pre-logits)


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code, err, needle):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three real handwritten digits of scikit-learn's set as PNGs (and a text file that is not an input)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("digits")
    images = load_digits().images[:3]
    for i, im in enumerate(images):
        Image.fromarray((im * 255 / 16).astype(np.uint8)).resize((32, 32)).save(root / f"d{i}.png")
    (root / "notes.txt").write_text("not an image\n")
    return root


@pytest.mark.claim(paper=7, artefact="OffTheShelfFeatures", claim="convzoo features writes unit-length features of every image of a folder to .npz (features, names) and .npy + names file")
def test_features_npz_and_npy(capsys, folder, tmp_path):
    code, out, _ = run(capsys, "features", MODEL, folder, "--out", tmp_path / "f.npz")
    assert code == 0 and "3 feature vectors of 1024 values" in out, out
    with np.load(tmp_path / "f.npz") as z:
        feats, names = z["features"], z["names"].tolist()
    assert feats.shape == (3, 1024) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    assert names == [str(folder / f"d{i}.png") for i in range(3)]

    code, out, _ = run(capsys, "features", MODEL, folder / "d1.png", folder / "d2.png", "--layer", "conv1",
                       "--spatial", "avg", "--no-l2", "--out", tmp_path / "g.npy")
    assert code == 0, out
    g = np.load(tmp_path / "g.npy")
    assert g.shape == (2, 32) and (g >= -1e9).all()
    assert (tmp_path / "g.names.txt").read_text().splitlines() == [str(folder / "d1.png"), str(folder / "d2.png")]


@pytest.mark.claim(paper=7, artefact="OffTheShelfFeatures", claim="convzoo features on a checkpoint (--model) gives the features of those weights (= the Python API on the same input)")
def test_features_of_a_checkpoint_equal_the_api(capsys, folder, tmp_path):
    from convzoo.analysis.offtheshelf import OffTheShelfFeatures
    from convzoo.predict import load_model

    torch.manual_seed(7)
    path = convzoo.save_weights(convzoo.create_model(MODEL), tmp_path / "w.safetensors")
    code, out, _ = run(capsys, "features", path, folder, "--model", MODEL, "--layer", "head.fc1",
                       "--out", tmp_path / "c.npz")
    assert code == 0, out
    loaded = load_model(path, model=MODEL)
    x = torch.cat([loaded.task.read_input(folder / f"d{i}.png", loaded.card, loaded.info) for i in range(3)])
    want = OffTheShelfFeatures(loaded.model, "head.fc1")(x).numpy()
    with np.load(tmp_path / "c.npz") as z:
        np.testing.assert_allclose(z["features"], want, rtol=1e-5, atol=1e-6)


def test_list_layers_and_errors(capsys, folder, tmp_path):
    code, out, _ = run(capsys, "features", MODEL, "--list-layers")
    assert code == 0 and {"conv1", "conv2", "head.fc1", "head.fc"} <= set(out.split())
    code, _, err = run(capsys, "features", MODEL, folder, "--layer", "conv_2", "--out", tmp_path / "x.npz")
    _one_line_error(code, err, "conv2")
    code, _, err = run(capsys, "features", MODEL, folder, "--out", tmp_path / "x.txt")
    _one_line_error(code, err, ".npy or .npz")
    code, _, err = run(capsys, "features", MODEL)
    _one_line_error(code, err, "--out")
    code, _, err = run(capsys, "features", MODEL, tmp_path / "missing", "--out", tmp_path / "x.npz")
    _one_line_error(code, err, "not found")
