"""On-disk formats, each read from fixture files written here in the real format.

CIFAR python pickles (the real dict keys), MNIST IDX (magic 2051/2049, big-endian dims, plain and
gzipped, in the folder layouts users have), SVHN .mat (X (32, 32, 3, N) uint8, y (N, 1), 10 = zero)
and ImageFolder PNG/JPEG trees. Pixels must round-trip exactly (``raw=True``), splits must partition,
and every missing or malformed file must be a one-line ConvzooError naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixture_files import (
    CIFAR10_NAMES,
    dump_pickle,
    write_cifar10,
    write_cifar100,
    write_idx,
    write_mnist,
    write_tree,
)
from scipy.io import savemat

from convzoo.data import build_dataset, list_datasets
from convzoo.data.transforms import NORMS
from convzoo.errors import ConvzooError


def _one_line_error(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(ConvzooError, match=match) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Inverse of raw=True (pixel / 255)."""
    return (x * 255).round().to(torch.uint8)


# ------------------------------------------------------------------------------------------------
# CIFAR
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def cifar10_root(tmp_path):
    return tmp_path, write_cifar10(tmp_path)


@pytest.mark.parametrize("where, style", [("parent", "py2"), ("extracted", "py2"), ("parent", "py3")])
def test_cifar10_reads_real_layout_and_pixels_round_trip(tmp_path, where, style):
    ref = write_cifar10(tmp_path, style=style)
    root = tmp_path if where == "parent" else tmp_path / "cifar-10-batches-py"
    test = build_dataset("cifar10", "test", root=str(root), raw=True)
    assert len(test) == 20
    assert test.info.num_classes == 10 and test.info.in_chans == 3 and test.info.input_size == (32, 32)
    assert test.info.class_names == tuple(CIFAR10_NAMES) and test.info.task == "classification"
    for j in (0, 7):
        x, y = test[j]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert torch.equal(_to_uint8(x), torch.from_numpy(ref["test_data"][j].reshape(3, 32, 32)))  # R, G, B planes
        assert y == ref["test_labels"][j]


def test_cifar10_val_is_stratified_holdout_of_train(cifar10_root):
    root, ref = cifar10_root
    train = build_dataset("cifar10", "train", root=root, val_size=20, raw=True)
    val = build_dataset("cifar10", "val", root=root, val_size=20, raw=True)
    assert (len(train), len(val)) == (80, 20)
    assert np.bincount(val.targets, minlength=10).tolist() == [2] * 10  # stratified

    def rows(ds):
        return [_to_uint8(ds[i][0]).numpy().tobytes() for i in range(len(ds))]

    assert sorted(rows(train) + rows(val)) == sorted(r.reshape(3, 32, 32).tobytes() for r in ref["train_data"])
    again = build_dataset("cifar10", "val", root=root, val_size=20)
    assert torch.equal(again.labels, val.labels) and torch.equal(again.images, val.images)  # seeded
    whole = build_dataset("cifar10", "train", root=root, val_size=0)
    assert len(whole) == 100
    _one_line_error("no val split", build_dataset, "cifar10", "val", root=root, val_size=0)
    _one_line_error("val_size must be in", build_dataset, "cifar10", "val", root=root, val_size=100)


def test_cifar10_normalisation_size_and_channels(cifar10_root):
    root, _ = cifar10_root
    raw = build_dataset("cifar10", "test", root=root, raw=True)[0][0]
    norm = build_dataset("cifar10", "test", root=root)[0][0]
    mean, std = (torch.tensor(v)[:, None, None] for v in NORMS["cifar10"])
    torch.testing.assert_close(norm, (raw - mean) / std)
    small = build_dataset("cifar10", "test", root=root, size=16)
    assert small[0][0].shape == (3, 16, 16) and small.info.input_size == (16, 16)
    grey = build_dataset("cifar10", "test", root=root, channels=1, raw=True)
    assert grey[0][0].shape == (1, 32, 32) and grey.info.in_chans == 1
    luma = (torch.tensor([0.299, 0.587, 0.114])[:, None, None] * raw).sum(0)
    torch.testing.assert_close(grey[0][0][0], luma, atol=1.5 / 255, rtol=0)  # uint8 rounding


def test_cifar10_augment_is_padded_crop_and_flip_on_train_only(cifar10_root):
    root, _ = cifar10_root
    plain = build_dataset("cifar10", "train", root=root, val_size=10, raw=True)
    aug = build_dataset("cifar10", "train", root=root, val_size=10, raw=True, augment=True)
    val = build_dataset("cifar10", "val", root=root, val_size=10, augment=True)
    assert aug.info.extra["augment"] == "crop_flip" and val.info.extra["augment"] == "none"
    torch.manual_seed(0)
    moved = 0
    for i in range(6):
        x, orig = aug[i][0], plain[i][0]
        padded = F.pad(orig, (4, 4, 4, 4))
        views = [v[:, dy:dy + 32, dx:dx + 32] for v in (padded, padded.flip(-1)) for dy in range(9) for dx in range(9)]
        assert any(torch.equal(x, v) for v in views)  # a 32x32 window of the 4-padded image, maybe flipped
        moved += not torch.equal(x, orig)
    assert moved >= 3


def test_cifar100_fine_and_coarse(tmp_path):
    ref = write_cifar100(tmp_path)
    test = build_dataset("cifar100", "test", root=tmp_path, raw=True)
    assert test.info.num_classes == 100 and test.info.class_names[:2] == ("fine0", "fine1")
    x, y = test[3]
    assert torch.equal(_to_uint8(x), torch.from_numpy(ref["test"][0][3].reshape(3, 32, 32)))
    assert y == ref["test"][1][3]
    coarse = build_dataset("cifar100", "test", root=tmp_path / "cifar-100-python", labels="coarse")
    assert coarse.info.num_classes == 20 and coarse.targets == (ref["test"][1] // 5).tolist()
    train = build_dataset("cifar100", "train", root=tmp_path, val_size=10)
    assert len(train) == 50 and len(build_dataset("cifar100", "val", root=tmp_path, val_size=10)) == 10
    _one_line_error("labels must be 'fine' or 'coarse'", build_dataset, "cifar100", "test", root=tmp_path,
                    labels="super")


def test_cifar_missing_files_name_path_and_expectation(tmp_path, cifar10_root):
    msg = _one_line_error("needs a root folder", build_dataset, "cifar10", "train")
    assert "cifar-10-batches-py/data_batch_1..5" in msg
    nowhere = tmp_path / "nope"
    assert str(nowhere) in _one_line_error("is not a folder", build_dataset, "cifar10", "train", root=nowhere)
    empty = tmp_path / "empty"
    empty.mkdir()
    msg = _one_line_error("no CIFAR-10 python batches under", build_dataset, "cifar10", "test", root=empty)
    assert msg == (f"cifar10: no CIFAR-10 python batches under {empty} "
                   "(expected cifar-10-batches-py/data_batch_1..5, test_batch and batches.meta)")
    (empty / "cifar-10-python.tar.gz").write_bytes(b"")
    assert "extract" in _one_line_error("no CIFAR-10", build_dataset, "cifar10", "test", root=empty)
    _one_line_error("no CIFAR-100 python batches", build_dataset, "cifar100", "test", root=empty)
    root, _ = cifar10_root
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    assert str(root / "cifar-10-batches-py" / "data_batch_3") in _one_line_error(
        "missing", build_dataset, "cifar10", "train", root=root)


def test_cifar_malformed_pickles_name_the_file(cifar10_root):
    root, _ = cifar10_root
    d = root / "cifar-10-batches-py"
    f = d / "test_batch"
    f.write_bytes(f.read_bytes()[:5000])  # truncated
    assert str(f) in _one_line_error("cannot read .* as a CIFAR python pickle", build_dataset, "cifar10", "test",
                                     root=root)
    dump_pickle(f, {b"data": np.zeros((2, 3072), np.uint8)})  # no labels
    assert str(f) in _one_line_error("lacks key b'data' or b'labels'", build_dataset, "cifar10", "test", root=root)
    dump_pickle(f, {b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]})  # wrong shape
    assert str(f) in _one_line_error("expected uint8 \\(N, 3072\\)", build_dataset, "cifar10", "test", root=root)
    dump_pickle(f, [1, 2, 3])
    _one_line_error("holds a list, expected a dict", build_dataset, "cifar10", "test", root=root)


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/convzoo_pickle_ran"),))


def test_cifar_unpickler_admits_only_numpy_arrays(cifar10_root):
    root, _ = cifar10_root
    f = root / "cifar-10-batches-py" / "test_batch"
    marker = Path("/tmp/convzoo_pickle_ran")
    marker.unlink(missing_ok=True)
    dump_pickle(f, {b"data": _Evil(), b"labels": []})
    assert "is not allowed" in _one_line_error("cannot read", build_dataset, "cifar10", "test", root=root)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------
# MNIST IDX
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["plain", "gz", "raw_subfolder", "torchvision", "kaggle_names"])
def test_mnist_layouts_and_round_trip(tmp_path, layout):
    folder = {"raw_subfolder": tmp_path / "raw", "torchvision": tmp_path / "MNIST" / "raw"}.get(layout, tmp_path)
    ref = write_mnist(folder, gz=layout in ("gz", "torchvision"), sep="." if layout == "kaggle_names" else "-")
    test = build_dataset("mnist", "test", root=tmp_path, raw=True)
    assert len(test) == 12 and test.info.in_chans == 1 and test.info.num_classes == 10
    assert test.info.class_names == tuple("0123456789") and test.info.input_size == (28, 28)
    x, y = test[5]
    assert x.shape == (1, 28, 28) and torch.equal(_to_uint8(x[0]), torch.from_numpy(ref["t10k"][0][5]))
    assert y == ref["t10k"][1][5]
    train = build_dataset("mnist", "train", root=tmp_path, val_size=10)
    val = build_dataset("mnist", "val", root=tmp_path, val_size=10)
    assert (len(train), len(val)) == (30, 10) and sorted(val.targets) == list(range(10))


def test_mnist_normalisation_channels_and_fashion(tmp_path):
    write_mnist(tmp_path)
    raw = build_dataset("mnist", "test", root=tmp_path, raw=True)[0][0]
    norm = build_dataset("mnist", "test", root=tmp_path)[0][0]
    (m,), (s,) = NORMS["mnist"]
    torch.testing.assert_close(norm, (raw - m) / s)
    rgb = build_dataset("mnist", "test", root=tmp_path, channels=3, size=32)
    assert rgb[0][0].shape == (3, 32, 32) and rgb.info.in_chans == 3 and rgb.info.input_size == (32, 32)
    fashion = build_dataset("fashion_mnist", "test", root=tmp_path)
    assert fashion.info.class_names[0] == "T-shirt/top" and fashion.info.class_names[9] == "Ankle boot"
    aug = build_dataset("mnist", "train", root=tmp_path, val_size=10, augment=True)
    assert aug.info.extra["augment"] == "affine" and aug[0][0].shape == (1, 28, 28)


def test_mnist_errors_name_the_file(tmp_path):
    ref = write_mnist(tmp_path)
    images_path, labels_path = ref["t10k"][2], ref["t10k"][3]
    write_idx(images_path, ref["t10k"][0], 2049)  # label magic in an image file
    msg = _one_line_error("has magic number 2049, expected 2051", build_dataset, "mnist", "test", root=tmp_path)
    assert str(images_path) in msg
    write_idx(images_path, ref["t10k"][0], 2051)
    images_path.write_bytes(images_path.read_bytes()[:-100])  # truncated data
    assert str(images_path) in _one_line_error("truncated", build_dataset, "mnist", "test", root=tmp_path)
    write_idx(images_path, ref["t10k"][0][:5], 2051)
    assert str(labels_path) in _one_line_error("has 5 images but", build_dataset, "mnist", "test", root=tmp_path)
    gz = write_idx(tmp_path / "g" / "t10k-images-idx3-ubyte", ref["t10k"][0], 2051, gz=True)
    write_idx(tmp_path / "g" / "t10k-labels-idx1-ubyte", ref["t10k"][1], 2049)
    gz.write_bytes(gz.read_bytes()[:200])  # truncated gzip stream
    assert str(gz) in _one_line_error("cannot read", build_dataset, "mnist", "test", root=tmp_path / "g")
    labels_path.unlink()
    msg = _one_line_error("no t10k-labels-idx1-ubyte", build_dataset, "mnist", "test", root=tmp_path)
    assert str(tmp_path) in msg and "MNIST/raw" in msg


# ------------------------------------------------------------------------------------------------
# SVHN .mat
# ------------------------------------------------------------------------------------------------


def write_svhn(root: Path, name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8)[:, None]  # 1..10, 10 meaning the digit zero
    savemat(root / name, {"X": x, "y": y})
    return x, y


def test_svhn_reads_mat_maps_ten_to_zero_and_round_trips(tmp_path):
    write_svhn(tmp_path, "train_32x32.mat", 30, 0)
    xte, yte = write_svhn(tmp_path, "test_32x32.mat", 20, 1)
    test = build_dataset("svhn", "test", root=tmp_path, raw=True)
    assert len(test) == 20 and test.info.num_classes == 10 and test.info.in_chans == 3
    assert test.info.class_names == tuple("0123456789")
    x, y = test[9]
    assert int(yte[9, 0]) == 10 and y == 0
    assert torch.equal(_to_uint8(x), torch.from_numpy(xte[:, :, :, 9]).permute(2, 0, 1))
    assert test.targets == [int(v) % 10 for v in yte[:, 0]]
    assert len(build_dataset("svhn", "train", root=tmp_path, val_size=10)) == 20
    write_svhn(tmp_path, "extra_32x32.mat", 15, 2)
    assert len(build_dataset("svhn", "train", root=tmp_path, val_size=10, extra=True)) == 35
    assert build_dataset("svhn", "train", root=tmp_path, val_size=10, augment=True).info.extra["augment"] == "affine"


def test_svhn_errors_name_the_file(tmp_path):
    write_svhn(tmp_path, "train_32x32.mat", 10, 0)
    missing = tmp_path / "test_32x32.mat"
    assert str(missing) in _one_line_error("missing", build_dataset, "svhn", "test", root=tmp_path)
    savemat(missing, {"images": np.zeros((32, 32, 3, 2), np.uint8)})
    assert str(missing) in _one_line_error("lacks 'X' or 'y'", build_dataset, "svhn", "test", root=tmp_path)
    missing.write_bytes(b"this is not a MATLAB file at all" * 10)
    assert str(missing) in _one_line_error("cannot read", build_dataset, "svhn", "test", root=tmp_path)
    savemat(missing, {"X": np.zeros((32, 32, 3, 2), np.float64), "y": np.ones((2, 1))})
    assert str(missing) in _one_line_error("expected X uint8", build_dataset, "svhn", "test", root=tmp_path)


# ------------------------------------------------------------------------------------------------
# ImageFolder
# ------------------------------------------------------------------------------------------------


def test_imagefolder_splits_classes_and_round_trip(tmp_path):
    train = write_tree(tmp_path, "train", {"cat": 3, "dog": 4, "emu": 2})
    write_tree(tmp_path, "val", {"dog": 2}, seed=1)  # val lacks some classes: indices must still agree
    write_tree(tmp_path, "test", {"cat": 1, "emu": 2}, ext="jpg", seed=2)
    ds = build_dataset("imagefolder", "train", root=tmp_path, size=16, raw=True)
    assert len(ds) == 9 and ds.info.class_names == ("cat", "dog", "emu") and ds.info.num_classes == 3
    assert ds.info.input_size == (16, 16) and ds.info.in_chans == 3
    x, y = ds[3]  # sorted: cat/000..002, dog/000 ...
    assert y == 1 and torch.equal(_to_uint8(x), torch.from_numpy(train[tmp_path / "train/dog/000.png"]).permute(2, 0, 1))
    assert build_dataset("imagefolder", "val", root=tmp_path).targets == [1, 1]
    test = build_dataset("imagefolder", "test", root=tmp_path, size=24)
    assert test.targets == [0, 2, 2] and test[0][0].shape == (3, 24, 24)  # JPEG decoded and resized
    grey = build_dataset("imagefolder", "test", root=tmp_path, channels=1, size=8)
    assert grey[0][0].shape == (1, 8, 8) and grey.info.in_chans == 1
    aug = build_dataset("imagefolder", "train", root=tmp_path, size=12, augment=True)
    assert aug.info.extra["augment"] == "resized_crop_flip" and aug[0][0].shape == (3, 12, 12)


def test_imagefolder_val_falls_back_to_seeded_holdout(tmp_path):
    write_tree(tmp_path, "train", {"a": 10, "b": 10})
    kw = {"root": tmp_path, "size": 16, "val_fraction": 0.2}
    train, val = build_dataset("imagefolder", "train", **kw), build_dataset("imagefolder", "val", **kw)
    assert (len(train), len(val)) == (16, 4) and sorted(val.targets) == [0, 0, 1, 1]
    assert not set(train.indices) & set(val.indices)
    assert build_dataset("imagefolder", "val", **kw).indices == val.indices  # seeded
    assert build_dataset("imagefolder", "val", **kw).info.class_names == ("a", "b")


def test_imagefolder_errors(tmp_path):
    assert str(tmp_path / "train") in _one_line_error("no class subfolders", build_dataset, "imagefolder", "train",
                                                      root=tmp_path)
    write_tree(tmp_path, "train", {"a": 2})
    # no test/ folder: the test split is the validation hold-out, said on stderr
    test = build_dataset("imagefolder", "test", root=tmp_path, size=8, val_fraction=0.5)
    assert test.indices == build_dataset("imagefolder", "val", root=tmp_path, size=8, val_fraction=0.5).indices
    write_tree(tmp_path, "val", {"zebra": 1})
    _one_line_error("has classes not in .*: zebra", build_dataset, "imagefolder", "val", root=tmp_path)
    _one_line_error("unknown normalisation 'imagnet'", build_dataset, "imagefolder", "train", root=tmp_path,
                    norm="imagnet")
    (tmp_path / "test" / "a").mkdir(parents=True)
    _one_line_error("no images in", build_dataset, "imagefolder", "test", root=tmp_path)


def test_all_formats_are_registered():
    assert {"digits", "imagefolder", "cifar10", "cifar100", "mnist", "fashion_mnist", "svhn"} <= set(list_datasets())
