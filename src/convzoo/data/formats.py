"""Standard image-classification formats users already have on disk.

Registered names (``build_dataset(name, split, root=DIR, **options)``):

=================  ==========================================================================
``cifar10``        the python pickle batches: ``cifar-10-batches-py/data_batch_1..5``,
                   ``test_batch``, ``batches.meta``. ``root`` is the extracted folder or its parent.
``cifar100``       ``cifar-100-python/train``, ``test``, ``meta``; ``labels="fine"`` (100 classes,
                   default) or ``"coarse"`` (20 super-classes). ``root`` as for CIFAR-10.
``mnist``          the IDX files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``fashion_mnist``  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``
                   (the ``train-images.idx3-ubyte`` spelling too), in ``root``, ``root/raw`` or
                   torchvision's ``root/MNIST/raw`` (``root/FashionMNIST/raw``). ``fashion_mnist`` is
                   registered in :mod:`convzoo.data.fashion_mnist`: without ``root`` it reads the cache
                   that ``convzoo data fetch fashion_mnist`` fills from the Debian package.
``svhn``           cropped digits ``train_32x32.mat`` / ``test_32x32.mat`` (``extra_32x32.mat``
                   added to train with ``extra=True``), read with scipy.io.loadmat; label 10 -> 0.
``imagefolder``    ``root/train/<class>/*.png|jpg...``, ``root/val/...``, ``root/test/...``
                   (torchvision ImageFolder); classes are the train subfolders, in sorted order.
=================  ==========================================================================

Splits. Test is the set's own test split. Val is a seeded, class-stratified hold-out of the
training split (``val_size`` images, default 5,000, ``split_seed`` 0; ``val_size=0`` trains on the
whole training split and has no val), so train/val/test are CIFAR 45,000/5,000/10,000, MNIST
55,000/5,000/10,000, SVHN 68,257/5,000/26,032. MNIST / Fashion-MNIST also take ``train_size``: a seeded,
class-stratified subset of that many of the remaining training images (CPU-scale runs). ImageFolder uses ``root/val`` when it exists and
otherwise holds out ``val_fraction`` (0.1) of ``root/train`` the same way (unstratified when some
class is too small to stratify).

Options (all sets): ``size`` (resize to size x size, bilinear antialiased; default native, 224 for
ImageFolder), ``channels`` (1 or 3; default the set's own), ``augment`` (train split only:
``True`` = crop+flip for CIFAR and ImageFolder, small affine for MNIST/SVHN whose digits a flip
would change; or a policy name from :mod:`convzoo.data.transforms`), ``raw`` (skip normalisation:
items are floats in [0, 1], pixel / 255). Items are ``(float tensor (C, size, size), int label)``.

The readers are our own because torchvision's CIFAR/MNIST/SVHN classes insist on the files' MD5
sums and on their own folder layout; the format facts follow the data sets' home pages (CIFAR:
cs.toronto.edu/~kriz/cifar.html, IDX: yann.lecun.com/exdb/mnist, SVHN: ufldl.stanford.edu/housenumbers).
CIFAR pickles are read with an unpickler that only admits numpy arrays. Every missing or malformed
file raises a one-line :class:`~convzoo.errors.ConvzooError` naming the path and what was expected.
"""

from __future__ import annotations

import gzip
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision import tv_tensors
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from convzoo.data.registry import DataInfo, register_dataset
from convzoo.data.transforms import split_transform
from convzoo.errors import ConvzooError

# ------------------------------------------------------------------------------------------------
# Shared: an in-memory image set, the stratified hold-out, the split logic
# ------------------------------------------------------------------------------------------------


class ImageTensorDataset(Dataset):
    """Images held as one ``(N, C, H, W)`` tensor (uint8, or float in [0, 1]) with int labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform, info: DataInfo):
        self.images, self.labels, self.transform, self.info = images, labels.long(), transform, info

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(tv_tensors.Image(self.images[i])), int(self.labels[i])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()


def holdout(labels: np.ndarray, n_val: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices: a seeded hold-out, class-stratified where every class allows it."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    try:
        tr, va = train_test_split(idx, test_size=n_val, stratify=labels, random_state=seed)
    except ValueError:  # a class with one member, or fewer val slots than classes
        tr, va = train_test_split(idx, test_size=n_val, random_state=seed)
    return np.sort(tr), np.sort(va)


def _pick_split(name: str, split: str, train, val_size: int, seed: int):
    """(images, labels) of the train or val split: ``val_size`` images held out of ``train``."""
    images, labels = train
    if val_size < 0 or val_size >= len(labels):
        raise ConvzooError(f"{name}: val_size must be in [0, {len(labels)}) (training images), got {val_size}")
    if val_size == 0:
        if split == "val":
            raise ConvzooError(f"{name}: val_size=0 trains on the whole training split, so there is no val split")
        return train
    tr, va = holdout(labels.numpy(), val_size, seed)
    keep = torch.from_numpy(tr if split == "train" else va)
    return images[keep], labels[keep]


def _subset(name: str, images: torch.Tensor, labels: torch.Tensor, n: int, seed: int):
    """A seeded, class-stratified ``n`` of a split (its order kept): CPU-scale runs on a big set."""
    if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= len(labels):
        raise ConvzooError(f"{name}: train_size must be an integer in [1, {len(labels)}] (the training images "
                           f"left after the val hold-out), got {n!r}")
    if n == len(labels):
        return images, labels
    _, keep = holdout(labels.numpy(), n, seed)
    keep = torch.from_numpy(keep)
    return images[keep], labels[keep]


def make_image_dataset(name: str, split: str, images: torch.Tensor, labels: torch.Tensor, class_names, *,
                       norm: str, size, channels, augment, raw: bool, default_augment: str) -> ImageTensorDataset:
    """Arrays of one split -> an :class:`ImageTensorDataset` with its transform and classification DataInfo."""
    native = tuple(images.shape[2:])
    tf, channels, extra = split_transform(name, split, in_chans=images.shape[1], channels=channels, size=size,
                                          native_size=native, norm=norm, augment=augment,
                                          default_augment=default_augment, raw=raw)
    info = DataInfo(name=name, task="classification", in_chans=channels, num_classes=len(class_names),
                    class_names=tuple(class_names), input_size=(size, size) if size else native, extra=extra)
    return ImageTensorDataset(images, labels, tf, info)


def _need_root(name: str, root, expected: str) -> Path:
    if root is None:
        raise ConvzooError(f"{name}: needs a root folder (--data-root DIR) holding {expected}")
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        raise ConvzooError(f"{name}: root {path} is not a folder (expected one holding {expected})")
    return path


# ------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 python pickles
# ------------------------------------------------------------------------------------------------

_CIFAR = {  # name -> (label, folder, train files, test file, meta file, archive, what is expected)
    "cifar10": ("CIFAR-10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
                "batches.meta", "cifar-10-python.tar.gz",
                "cifar-10-batches-py/data_batch_1..5, test_batch and batches.meta"),
    "cifar100": ("CIFAR-100", "cifar-100-python", ("train",), "test", "meta", "cifar-100-python.tar.gz",
                 "cifar-100-python/train, test and meta"),
}
_NUMPY_GLOBALS = {"_reconstruct", "scalar", "_frombuffer", "ndarray", "dtype"}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits the few globals a pickled dict of numpy arrays and lists needs, nothing else."""

    def find_class(self, module, name):
        if module.split(".")[0] == "numpy" and name in _NUMPY_GLOBALS:
            return super().find_class(module.replace("numpy.core", "numpy._core"), name)
        if (module, name) == ("_codecs", "encode"):  # bytes pickled by Python 3 at protocol < 3
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def _text(x) -> str:
    return x.decode("latin1") if isinstance(x, bytes) else str(x)


def _load_pickle(name: str, path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()  # latin1: Python 2 numpy pickles
    except Exception as e:  # noqa: BLE001  truncated, not a pickle, or a pickle of something else
        raise ConvzooError(f"{name}: cannot read {path} as a CIFAR python pickle "
                           f"({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ConvzooError(f"{name}: {path} holds a {type(obj).__name__}, expected a dict of CIFAR arrays")
    return {_text(k): v for k, v in obj.items()}


def _cifar_dir(name: str, root) -> Path:
    label, folder, train_files, test_file, meta_file, archive, expected = _CIFAR[name]
    base = _need_root(name, root, expected)
    for d in (base, base / folder):
        if (d / train_files[0]).is_file() or (d / test_file).is_file():
            for f in (*train_files, test_file, meta_file):
                if not (d / f).is_file():
                    raise ConvzooError(f"{name}: missing {d / f} (expected {expected})")
            return d
    hint = f"; extract {base / archive} first" if (base / archive).is_file() else ""
    raise ConvzooError(f"{name}: no {label} python batches under {base} (expected {expected}){hint}")


def _cifar_batch(name: str, path: Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    d = _load_pickle(name, path)
    if "data" not in d or label_key not in d:
        raise ConvzooError(f"{name}: {path} lacks key b'data' or b'{label_key}' (has {sorted(d)})")
    data, labels = np.asarray(d["data"]), np.asarray(d[label_key], dtype=np.int64).reshape(-1)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ConvzooError(f"{name}: {path} has data {data.dtype}{list(data.shape)} and {len(labels)} labels, "
                           f"expected uint8 (N, 3072) and N labels")
    # each row: 1024 red, 1024 green, 1024 blue values, each a row-major 32x32 plane
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def _cifar(name: str, split: str, root, *, labels: str = "fine", size=None, channels=None,
           augment=False, raw=False, val_size=5000, split_seed=0):
    d = _cifar_dir(name, root)
    _, _, train_files, test_file, meta_file, _, _ = _CIFAR[name]
    if name == "cifar10":
        label_key, names_key = "labels", "label_names"
    elif labels in ("fine", "coarse"):
        label_key, names_key = f"{labels}_labels", f"{labels}_label_names"
    else:
        raise ConvzooError(f"cifar100: labels must be 'fine' or 'coarse', got {labels!r}")
    meta = _load_pickle(name, d / meta_file)
    if names_key not in meta:
        raise ConvzooError(f"{name}: {d / meta_file} lacks key b'{names_key}' (has {sorted(meta)})")
    class_names = [_text(c) for c in meta[names_key]]

    def read(files):
        parts = [_cifar_batch(name, d / f, label_key) for f in files]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    if split == "test":
        images, ys = read([test_file])
    else:
        images, ys = _pick_split(name, split, read(train_files), val_size, split_seed)
    if len(ys) and (int(ys.min()) < 0 or int(ys.max()) >= len(class_names)):
        raise ConvzooError(f"{name}: labels in {d} reach {int(ys.max())} but {d / meta_file} names "
                           f"{len(class_names)} classes")
    return make_image_dataset(name, split, images, ys, class_names, norm=name, size=size, channels=channels,
                 augment=augment, raw=raw, default_augment="crop_flip")


@register_dataset("cifar10")
def cifar10(split: str, root=None, *, size=None, channels=None, augment=False, raw=False, val_size=5000,
            split_seed=0) -> ImageTensorDataset:
    """CIFAR-10 (Krizhevsky 2009), 10 classes, 32x32 RGB: see the module docstring."""
    return _cifar("cifar10", split, root, size=size, channels=channels, augment=augment, raw=raw,
                  val_size=val_size, split_seed=split_seed)


@register_dataset("cifar100")
def cifar100(split: str, root=None, *, labels: str = "fine", size=None, channels=None, augment=False, raw=False,
             val_size=5000, split_seed=0) -> ImageTensorDataset:
    """CIFAR-100, 100 fine classes (``labels="coarse"``: 20 super-classes): see the module docstring."""
    return _cifar("cifar100", split, root, labels=labels, size=size, channels=channels, augment=augment, raw=raw,
                  val_size=val_size, split_seed=split_seed)


# ------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST IDX files
# ------------------------------------------------------------------------------------------------

_IDX_MAGIC = {3: 2051, 1: 2049}  # ndim -> magic number (0x0803 images, 0x0801 labels; 0x08 = ubyte)
_MNIST = {  # name -> (torchvision folder, class names)
    "mnist": ("MNIST", tuple(str(i) for i in range(10))),
    "fashion_mnist": ("FashionMNIST", ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                       "Shirt", "Sneaker", "Bag", "Ankle boot")),
}


def read_idx(name: str, path: Path, ndim: int) -> np.ndarray:
    """One IDX file (gzipped or not): big-endian magic, ``ndim`` big-endian int32 dims, uint8 data."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as e:
        raise ConvzooError(f"{name}: cannot read {path} ({type(e).__name__}: {e})") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if magic != _IDX_MAGIC[ndim]:
        raise ConvzooError(f"{name}: {path} has magic number {magic}, expected {_IDX_MAGIC[ndim]} "
                           f"(IDX {'images' if ndim == 3 else 'labels'})")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ConvzooError(f"{name}: {path} is truncated (shorter than its {head}-byte header)")
    dims = tuple(int(v) for v in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    if len(raw) - head != int(np.prod(dims)):
        raise ConvzooError(f"{name}: {path} holds {len(raw) - head} data bytes, its header {list(dims)} "
                           f"promises {int(np.prod(dims))} (truncated?)")
    return np.frombuffer(raw, np.uint8, offset=head).reshape(dims)


def _find_idx(name: str, base: Path, stem: str, kind: str) -> Path:
    dirs = (base, base / "raw", base / _MNIST[name][0] / "raw")
    tail = "idx3-ubyte" if kind == "images" else "idx1-ubyte"
    for d in dirs:
        for sep in ("-", "."):
            for ext in ("", ".gz"):
                if (p := d / f"{stem}-{kind}{sep}{tail}{ext}").is_file():
                    return p
    raise ConvzooError(f"{name}: no {stem}-{kind}-{tail}[.gz] in {base}, {base}/raw or "
                       f"{base}/{_MNIST[name][0]}/raw (expected the four MNIST IDX files)")


def _mnist_pair(name: str, base: Path, stem: str) -> tuple[torch.Tensor, torch.Tensor]:
    ip, lp = _find_idx(name, base, stem, "images"), _find_idx(name, base, stem, "labels")
    images, labels = read_idx(name, ip, 3), read_idx(name, lp, 1)
    if len(images) != len(labels):
        raise ConvzooError(f"{name}: {ip} has {len(images)} images but {lp} has {len(labels)} labels")
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))


def _mnist(name: str, split: str, root, *, size=None, channels=None, augment=False, raw=False,
           val_size=5000, split_seed=0, train_size=None):
    base = _need_root(name, root, "train-images-idx3-ubyte[.gz] and the other three IDX files")
    class_names = _MNIST[name][1]
    if split == "test":
        images, ys = _mnist_pair(name, base, "t10k")
    else:
        images, ys = _pick_split(name, split, _mnist_pair(name, base, "train"), val_size, split_seed)
    if split == "train" and train_size is not None:
        images, ys = _subset(name, images, ys, train_size, split_seed)
    if len(ys) and int(ys.max()) >= 10:
        raise ConvzooError(f"{name}: labels in {base} reach {int(ys.max())}, expected 0..9")
    return make_image_dataset(name, split, images, ys, class_names, norm=name, size=size, channels=channels,
                 augment=augment, raw=raw, default_augment="affine")


@register_dataset("mnist")
def mnist(split: str, root=None, *, size=None, channels=None, augment=False, raw=False, val_size=5000,
          split_seed=0, train_size=None) -> ImageTensorDataset:
    """MNIST (LeCun et al. 1998), 10 digits, 28x28 grey, from IDX files: see the module docstring."""
    return _mnist("mnist", split, root, size=size, channels=channels, augment=augment, raw=raw, val_size=val_size,
                  split_seed=split_seed, train_size=train_size)



# ------------------------------------------------------------------------------------------------
# SVHN cropped digits (.mat)
# ------------------------------------------------------------------------------------------------


def _svhn_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from scipy.io import loadmat

    if not path.is_file():
        raise ConvzooError(f"svhn: missing {path} (expected train_32x32.mat and test_32x32.mat)")
    try:
        mat = loadmat(path, variable_names=["X", "y"])
    except Exception as e:  # noqa: BLE001  not a MATLAB file, truncated, or v7.3 (HDF5)
        raise ConvzooError(f"svhn: cannot read {path} as a MATLAB v5 file ({type(e).__name__}: {e})") from None
    if "X" not in mat or "y" not in mat:
        raise ConvzooError(f"svhn: {path} lacks 'X' or 'y' (expected X (32, 32, 3, N) uint8 and y (N, 1))")
    x, y = mat["X"], mat["y"].reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y) or x.dtype != np.uint8:
        raise ConvzooError(f"svhn: {path} has X {x.dtype}{list(x.shape)} and {len(y)} labels, "
                           f"expected X uint8 (32, 32, 3, N) and N labels")
    if len(y) and (y.min() < 0 or y.max() > 10):
        raise ConvzooError(f"svhn: {path} has labels outside 1..10")
    y[y == 10] = 0  # SVHN writes the digit 0 as class 10
    return torch.from_numpy(x.transpose(3, 2, 0, 1).copy()), torch.from_numpy(y)


@register_dataset("svhn")
def svhn(split: str, root=None, *, extra: bool = False, size=None, channels=None, augment=False,
         raw=False, val_size=5000, split_seed=0) -> ImageTensorDataset:
    """SVHN cropped digits (Netzer et al. 2011), 32x32 RGB, 10 classes: see the module docstring."""
    base = _need_root("svhn", root, "train_32x32.mat and test_32x32.mat")
    if split == "test":
        images, ys = _svhn_mat(base / "test_32x32.mat")
    else:
        parts = [_svhn_mat(base / "train_32x32.mat")] + ([_svhn_mat(base / "extra_32x32.mat")] if extra else [])
        train = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        images, ys = _pick_split("svhn", split, train, val_size, split_seed)
    return make_image_dataset("svhn", split, images, ys, tuple(str(i) for i in range(10)), norm="svhn", size=size,
                 channels=channels, augment=augment, raw=raw, default_augment="affine")


# ------------------------------------------------------------------------------------------------
# ImageFolder trees
# ------------------------------------------------------------------------------------------------


class _FixedClassFolder(ImageFolder):
    """An ImageFolder whose class list is given (the train split's), so indices agree across splits."""

    def __init__(self, root: Path, classes: list[str], transform):
        self._classes = classes
        super().__init__(str(root), transform=transform, allow_empty=True)

    def find_classes(self, directory):
        return list(self._classes), {c: i for i, c in enumerate(self._classes)}


@register_dataset("imagefolder")
def imagefolder(split: str, root=None, *, size: int = 224, channels: int = 3, augment=False, raw=False,
                val_fraction: float = 0.1, split_seed: int = 0, norm: str = "imagenet") -> Dataset:
    """Class-subfolder trees read with torchvision's ImageFolder (PIL, converted to RGB).

    ``root/train`` is required; ``root/val`` and ``root/test`` are used when present, val otherwise
    being a seeded hold-out of ``val_fraction`` of train. Normalisation: ImageNet constants by default
    (``norm`` names any set in :data:`convzoo.data.transforms.NORMS`).
    """
    base = _need_root("imagefolder", root, "train/<class>/<image> (and optionally val/, test/)")
    train_dir = base / "train"
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir()) if train_dir.is_dir() else []
    if not classes:
        raise ConvzooError(f"imagefolder: no class subfolders in {train_dir} (expected {train_dir}/<class>/<image>)")
    own = base / split
    if split == "test" and not own.is_dir():  # a small folder of one's own: test on the validation hold-out, said once
        print(f"convzoo: imagefolder: no {own}; test metrics are those of the validation split", file=sys.stderr)
        split, own = "val", base / "val"
    if own.is_dir() and split != "train":
        unknown = sorted(p.name for p in own.iterdir() if p.is_dir() and p.name not in classes)
        if unknown:
            raise ConvzooError(f"imagefolder: {own} has classes not in {train_dir}: {', '.join(unknown)}")

    tf, channels, extra = split_transform("imagefolder", split, in_chans=3, channels=channels, size=size,
                                          native_size=None, norm=norm, augment=augment,
                                          default_augment="resized_crop_flip", raw=raw)
    tf = v2.Compose([v2.ToImage(), tf])  # PIL image -> uint8 tensor first
    try:
        folder = _FixedClassFolder(own if own.is_dir() else train_dir, classes, tf)
    except OSError as e:
        raise ConvzooError(f"imagefolder: {e}") from None
    if not len(folder):
        raise ConvzooError(f"imagefolder: no images in {folder.root} (expected {folder.root}/<class>/<image>)")
    if split != "test" and not (base / "val").is_dir():  # val = hold-out of train
        if not 0 < val_fraction < 1:
            raise ConvzooError(f"imagefolder: no {base / 'val'} and val_fraction={val_fraction} is not in (0, 1)")
        tr, va = holdout(np.asarray(folder.targets), val_fraction, split_seed)
        keep = (tr if split == "train" else va).tolist()
        targets = [folder.targets[i] for i in keep]
        folder = Subset(folder, keep)
        folder.targets = targets
    folder.info = DataInfo(name="imagefolder", task="classification", in_chans=channels, num_classes=len(classes),
                           class_names=tuple(classes), input_size=(size, size), extra={**extra, "root": str(base)})
    return folder
