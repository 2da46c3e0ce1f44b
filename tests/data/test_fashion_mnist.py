"""Real benchmark data from Debian packages: Fashion-MNIST (``dataset-fashion-mnist``) and OpenCV's
``digits.png`` (``opencv-doc``), fetched with ``convzoo data fetch NAME`` (apt-get download, files read out
of the .deb).

Fixture tests write the formats here (IDX, the digits sheet, .deb archives; tests/fixture_files.py) and
replace ``apt-get`` by a function that writes the fixture .deb, so no network is used. The tests on the
fetched files (marked ``real data``) need ``convzoo data fetch fashion_mnist`` and ``... opencv_digits``
once (``make test`` does it) and fail, naming the command, when the cache is empty.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from fixture_files import write_deb, write_mnist, write_opencv_digits

from convzoo.data import build_dataset
from convzoo.data import fetch as fetch_mod
from convzoo.data.fashion_mnist import FILES
from convzoo.data.fashion_mnist import SPEC as FASHION
from convzoo.data.opencv_digits import SPEC as OPENCV
from convzoo.data.opencv_digits import opencv_digits_split, read_digits_png
from convzoo.data.transforms import NORMS
from convzoo.errors import ConvzooError, UnknownNameError

pytestmark = pytest.mark.paper(40)

FASHION_COPYRIGHT = b"Source: https://github.com/zalandoresearch/fashion-mnist\n\nFiles: *\nLicense: Expat\n"
OPENCV_COPYRIGHT = b"Upstream-Name: OpenCV\n\nFiles: *\nLicense: Apache-2.0 AND BSD-3-Clause\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache: $CONVZOO_DATA points into tmp_path."""
    monkeypatch.setenv("CONVZOO_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fake_apt(monkeypatch, tmp_path, files: dict[str, bytes], compression: str = "xz", package: str = "pkg"):
    """subprocess.run stands in for `apt-get download PACKAGE`: it writes a fixture .deb into cwd."""
    calls = []

    def run(cmd, cwd=None, **kw):
        calls.append((list(cmd), cwd))
        if cmd[:2] != ["apt-get", "download"]:
            raise AssertionError(f"unexpected command {cmd}")
        write_deb(Path(cwd) / f"{cmd[2]}_1.0-1_all.deb", files, compression)
        return subprocess.CompletedProcess(cmd, 0, "Get:1 http://deb.debian.org ...\n", "")

    monkeypatch.setattr(fetch_mod.subprocess, "run", run)
    return calls


def _fashion_deb_files(src: Path) -> dict[str, bytes]:
    write_mnist(src, n_train=60, n_test=20, gz=True)
    files = {m: (src / Path(m).name).read_bytes() for m in FASHION.members}
    files["usr/share/doc/dataset-fashion-mnist/copyright"] = FASHION_COPYRIGHT
    files["usr/share/doc/dataset-fashion-mnist/README.md.gz"] = gzip.compress(b"# Fashion-MNIST")
    return files


# --- fetching from a Debian package ------------------------------------------------------------------------

@pytest.mark.claim(paper=27, artefact="fetch",
                   claim="fetch of a Debian-package set runs `apt-get download PACKAGE`, reads only the listed files and "
                         "the copyright file out of the .deb's data.tar into the cache, and refuses a package whose "
                         "copyright lacks the checked licence")
@pytest.mark.parametrize("compression", ["xz", "gz"])
def test_fetch_fashion_mnist_from_a_deb(tmp_path, cache, monkeypatch, compression):
    calls = _fake_apt(monkeypatch, tmp_path, _fashion_deb_files(tmp_path / "src"), compression)
    assert not fetch_mod.is_fetched("fashion_mnist")
    folder = fetch_mod.fetch("fashion_mnist")
    assert calls[0][0] == ["apt-get", "download", "dataset-fashion-mnist"]
    assert folder == cache / "fashion_mnist" == fetch_mod.data_home("fashion_mnist")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, "copyright", "SOURCE.txt"])
    assert (folder / "copyright").read_bytes() == FASHION_COPYRIGHT and fetch_mod.is_fetched("fashion_mnist")
    assert "dataset-fashion-mnist_1.0-1_all.deb" in (folder / "SOURCE.txt").read_text()
    test = build_dataset("fashion_mnist", "test")  # root: the cache
    assert len(test) == 20 and test.info.num_classes == 10


@pytest.mark.claim(paper=27, artefact="fetch",
                   claim="fetch of a Debian-package set runs `apt-get download PACKAGE`, reads only the listed files and "
                         "the copyright file out of the .deb's data.tar into the cache, and refuses a package whose "
                         "copyright lacks the checked licence")
def test_fetch_debian_errors(tmp_path, cache, monkeypatch):
    files = _fashion_deb_files(tmp_path / "src")
    _fake_apt(monkeypatch, tmp_path, {**files, "usr/share/doc/dataset-fashion-mnist/copyright": b"License: GPL-3"})
    with pytest.raises(ConvzooError, match="does not state 'License: Expat'.*nothing cached"):
        fetch_mod.fetch("fashion_mnist")
    assert not (cache / "fashion_mnist").exists()
    _fake_apt(monkeypatch, tmp_path, {k: v for k, v in files.items() if "t10k-labels" not in k})
    with pytest.raises(ConvzooError, match="lacks usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"):
        fetch_mod.fetch("fashion_mnist")

    def missing_apt(cmd, **kw):
        raise FileNotFoundError(2, "No such file or directory", "apt-get")

    monkeypatch.setattr(fetch_mod.subprocess, "run", missing_apt)
    with pytest.raises(ConvzooError, match="cannot run apt-get.*set data.root") as e:
        fetch_mod.fetch("fashion_mnist")
    assert "\n" not in str(e.value)

    def no_lists(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 100, "", "Reading package lists...\nE: Unable to locate package "
                                                         "dataset-fashion-mnist\n")

    monkeypatch.setattr(fetch_mod.subprocess, "run", no_lists)
    with pytest.raises(ConvzooError, match=r"E: Unable to locate package .*run `apt-get update` once") as e:
        fetch_mod.fetch("fashion_mnist")
    assert "\n" not in str(e.value)
    not_a_deb = tmp_path / "x.deb"
    not_a_deb.write_bytes(b"PK\x03\x04 a zip")
    with pytest.raises(ConvzooError, match="not a Debian package"):
        fetch_mod.deb_files(not_a_deb, {"a"})
    assert {"fashion_mnist", "opencv_digits"} <= set(fetch_mod.list_fetchable())


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build a zstd package")
def test_deb_with_zstd_data_is_read_through_dpkg_deb(tmp_path):
    """Ubuntu's packages compress data.tar with zstd, which Python's tarfile cannot read before 3.14."""
    tree = tmp_path / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text("Package: t\nVersion: 1\nArchitecture: all\nMaintainer: a <a@b.c>\n"
                                             "Description: t\n")
    (tree / "usr" / "share" / "x").mkdir(parents=True)
    (tree / "usr" / "share" / "x" / "a.bin").write_bytes(b"\x00\x01zstd")
    deb = tmp_path / "t.deb"
    subprocess.run(["dpkg-deb", "-Zzstd", "--build", str(tree), str(deb)], check=True, capture_output=True)
    assert fetch_mod.deb_files(deb, {"usr/share/x/a.bin"}) == {"usr/share/x/a.bin": b"\x00\x01zstd"}


# --- the fashion_mnist data set ----------------------------------------------------------------------------

@pytest.mark.claim(paper=40, artefact="fashion_mnist",
                   claim="reads the fetched cache by default (one line naming `convzoo data fetch fashion_mnist` when it "
                         "is empty); class names are torchvision's FashionMNIST.classes; train_size keeps a seeded, "
                         "class-stratified subset")
def test_fashion_mnist_reads_the_cache_and_subsets(cache):
    from torchvision.datasets import FashionMNIST

    with pytest.raises(ConvzooError, match=r"run `convzoo data fetch fashion_mnist` first") as e:
        build_dataset("fashion_mnist", "train")
    assert "\n" not in str(e.value)
    write_mnist(cache / "fashion_mnist", n_train=200, n_test=30, gz=True)
    train = build_dataset("fashion_mnist", "train", val_size=50)
    val = build_dataset("fashion_mnist", "val", val_size=50)
    test = build_dataset("fashion_mnist", "test", val_size=50)
    assert (len(train), len(val), len(test)) == (150, 50, 30)
    assert train.info.class_names == tuple(FashionMNIST.classes)
    assert train.info.input_size == (28, 28) and train[0][0].shape == (1, 28, 28)
    sub = build_dataset("fashion_mnist", "train", val_size=50, train_size=40)
    assert len(sub) == 40 and set(Counter(sub.labels.tolist()).values()) == {4}  # 4 per class
    again = build_dataset("fashion_mnist", "train", val_size=50, train_size=40)
    assert torch.equal(sub.images, again.images)
    full = {bytes(im.numpy().tobytes()) for im in train.images}
    assert all(bytes(im.numpy().tobytes()) in full for im in sub.images)  # a subset of the train split
    assert len(build_dataset("fashion_mnist", "val", val_size=50, train_size=40)) == 50  # val untouched
    with pytest.raises(ConvzooError, match=r"train_size must be an integer in \[1, 150\]"):
        build_dataset("fashion_mnist", "train", val_size=50, train_size=151)
    with pytest.raises(UnknownNameError, match="option for data set 'fashion_mnist'"):
        build_dataset("fashion_mnist", "train", trainsize=10)
    elsewhere = cache.parent / "elsewhere"
    write_mnist(elsewhere, n_train=40, n_test=12)
    assert len(build_dataset("fashion_mnist", "test", root=str(elsewhere))) == 12


def test_image_sets_reject_unknown_options_in_one_line(tmp_path):
    """mnist / cifar took **options and ended a misspelt option in a bare TypeError."""
    for name in ("mnist", "cifar10", "cifar100"):
        with pytest.raises(UnknownNameError, match=f"option for data set '{name}'"):
            build_dataset(name, "train", root=str(tmp_path), sise=32)


# --- the opencv_digits data set ----------------------------------------------------------------------------

@pytest.mark.claim(paper=40, artefact="opencv_digits",
                   claim="digits.png is read as OpenCV's samples/python/digits.py reads it: 50 x 100 cells of 20 x 20 "
                         "in row-major order, labels repeat(arange(10), 500); fixed stratified split 3000/1000/1000")
def test_opencv_digits_layout_and_split(tmp_path, cache, monkeypatch):
    cells = write_opencv_digits(tmp_path / "src")
    x, y = read_digits_png(tmp_path / "src" / "digits.png")
    assert x.shape == (5000, 20, 20) and np.array_equal(x, cells)
    assert np.array_equal(y, np.repeat(np.arange(10), 500))  # OpenCV digits.py: CLASS_N = 10, 500 each
    split = opencv_digits_split()
    assert [len(split[s]) for s in ("train", "val", "test")] == [3000, 1000, 1000]
    assert len(np.unique(np.concatenate(list(split.values())))) == 5000
    for s, n in (("train", 300), ("val", 100), ("test", 100)):
        assert set(Counter(y[split[s]].tolist()).values()) == {n}
    with pytest.raises(ConvzooError, match=r"run `convzoo data fetch opencv_digits` first"):
        build_dataset("opencv_digits", "train")
    # fetched from a fixture opencv-doc .deb, then read from the cache
    member = OPENCV.members[0]
    _fake_apt(monkeypatch, tmp_path, {member: (tmp_path / "src" / "digits.png").read_bytes(),
                                      "usr/share/doc/opencv-doc/copyright": OPENCV_COPYRIGHT})
    folder = fetch_mod.fetch("opencv_digits")
    assert sorted(p.name for p in folder.iterdir()) == ["SOURCE.txt", "copyright", "digits.png"]
    test = build_dataset("opencv_digits", "test", raw=True)
    assert len(test) == 1000 and test.info.input_size == (20, 20) and test.info.class_names == tuple("0123456789")
    i = int(split["test"][0])
    assert torch.allclose(test[0][0][0], torch.from_numpy(cells[i]).float() / 255)
    big = build_dataset("opencv_digits", "train", size=28, channels=3)
    assert big[0][0].shape == (3, 28, 28) and len(big) == 3000
    bad = tmp_path / "bad"
    bad.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((100, 200), np.uint8)).save(bad / "digits.png")
    with pytest.raises(ConvzooError, match="is 200 x 100 pixels, expected 2000 x 1000"):
        build_dataset("opencv_digits", "train", root=str(bad))


# --- the fetched files --------------------------------------------------------------------------------------

def _need(name: str) -> Path:
    if not fetch_mod.is_fetched(name):
        pytest.fail(f"{name} not in {fetch_mod.data_home(name)}: run `convzoo data fetch {name}` first", pytrace=False)
    return fetch_mod.data_home(name)


@pytest.mark.claim(paper=40, artefact="fashion_mnist",
                   claim="the fetched files are the data set the Fashion-MNIST paper describes (arXiv 1708.07747: 60,000 "
                         "train / 10,000 test 28x28 images, 6,000 / 1,000 per class), read identically to torchvision's "
                         "IDX reader; normalisation constants are the training pixels' mean/std")
def test_fetched_fashion_mnist_is_the_published_set(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    from convzoo.data.formats import read_idx

    folder = _need("fashion_mnist")
    for stem, n in (("train", 60000), ("t10k", 10000)):
        images = read_idx("fashion_mnist", folder / f"{stem}-images-idx3-ubyte.gz", 3)
        labels = read_idx("fashion_mnist", folder / f"{stem}-labels-idx1-ubyte.gz", 1)
        assert images.shape == (n, 28, 28) and labels.shape == (n,)
        assert Counter(labels.tolist()) == {c: n // 10 for c in range(10)}
        for kind, ours, reader in (("images-idx3", images, read_image_file), ("labels-idx1", labels, read_label_file)):
            raw = tmp_path / f"{stem}-{kind}-ubyte"
            raw.write_bytes(gzip.decompress((folder / f"{raw.name}.gz").read_bytes()))
            assert np.array_equal(reader(str(raw)).numpy(), ours)
        if stem == "train":
            pixels = images.astype(np.float64) / 255
            assert (round(pixels.mean(), 4), round(pixels.std(), 4)) == (NORMS["fashion_mnist"][0][0],
                                                                        NORMS["fashion_mnist"][1][0])
    splits = {s: build_dataset("fashion_mnist", s) for s in ("train", "val", "test")}
    assert [len(d) for d in splits.values()] == [55000, 5000, 10000]


@pytest.mark.claim(paper=40, artefact="opencv_digits",
                   claim="the fetched digits.png holds 5,000 20x20 digits, 500 per class (OpenCV samples/python/digits.py); "
                         "normalisation constants are the train split's mean/std")
def test_fetched_opencv_digits():
    folder = _need("opencv_digits")
    x, y = read_digits_png(folder / "digits.png")
    assert x.shape == (5000, 20, 20) and x.dtype == np.uint8 and Counter(y.tolist()) == {c: 500 for c in range(10)}
    pixels = x[opencv_digits_split()["train"]].astype(np.float64) / 255
    assert (round(pixels.mean(), 4), round(pixels.std(), 4)) == (NORMS["opencv_digits"][0][0],
                                                                NORMS["opencv_digits"][1][0])
    # every cell holds a digit (some ink), none is blank
    ink = x.reshape(5000, -1).max(1)
    assert (ink > 128).all()


# --- the table command --------------------------------------------------------------------------------------

def _table_script():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "fashion_table.py"
    spec = importlib.util.spec_from_file_location("fashion_table", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fashion_table_writes_one_row_per_family_and_errors_in_one_line(tmp_path, cache, capsys):
    ft = _table_script()
    names = ft.fashion_recipes()
    assert len(names) >= 17 and all(n.endswith("_fashion") for n in names)  # 13 families + 4 of issue 10
    assert ft.main(["--only", "lsnet_fashion", "--runs", str(tmp_path / "runs")]) == 2  # not fetched: one line
    err = capsys.readouterr().err
    assert "run `convzoo data fetch fashion_mnist` first" in err and err.count("\n") == 1
    assert ft.main(["--only", "nope_fashion"]) == 2 and "not a Fashion-MNIST recipe: nope_fashion" in capsys.readouterr().err
    assert ft.main(["--reuse", "--runs", str(tmp_path / "runs")]) == 2 and "no saved result" in capsys.readouterr().err
    for i, n in enumerate(names):
        (tmp_path / "runs" / n).mkdir(parents=True)
        row = {"recipe": n, "paper": 1, "model": "m", "params": 1000 + i, "test_acc": 0.8 + i / 100,
               "best_val_acc": 0.8, "epochs": 3, "train_images": 10000, "size": 28, "wall_s": 60.0, "cpu_s": 100.0}
        (tmp_path / "runs" / n / "result.json").write_text(json.dumps(row))
    out = tmp_path / "docs" / "t.md"
    assert ft.main(["--reuse", "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 0
    text = out.read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "_fashion`" in ln]
    assert len(rows) == len(names) and "| 80.00 | 100 | 60 |" in rows[0]
    total = f"Total: {len(names) * 100 / 60:.1f} CPU-minutes, {len(names) * 60 / 60:.1f} wall-clock minutes"
    assert f"torch {torch.__version__}" in text and total in text
