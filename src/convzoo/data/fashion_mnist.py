"""Fashion-MNIST, the real 70,000-image benchmark beyond digits: ``convzoo data fetch fashion_mnist``.

Xiao, Rasul and Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
Algorithms" (arXiv 1708.07747): 28x28 grey photographs of Zalando articles in 10 classes (T-shirt/top,
Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot), 60,000 training and 10,000 test
images, 6,000 / 1,000 per class, in MNIST's IDX format.

**Where the files come from.** The Debian package ``dataset-fashion-mnist`` (bookworm
0.0~git20200523.55506a9-1, 30.9 MB; licence Expat/MIT, Zalando SE, so a local cache is fine; the data is
never committed) ships the four gzipped IDX files of the upstream repository under
``/usr/share/datasets/fashion-mnist/``. ``convzoo data fetch fashion_mnist`` runs ``apt-get download`` (no
root, nothing installed) and copies just those files and the package's ``copyright`` into the cache
(:func:`convzoo.data.fetch.data_home`, ``~/.cache/convzoo/fashion_mnist``). Debian re-compressed the files:
their gzip MD5s differ from the upstream README's, the decompressed IDX data are the data set.

**The registered set** ``fashion_mnist`` reads them with the IDX reader of :mod:`convzoo.data.formats`
(``root`` = the cache unless given; any folder with the four files, e.g. torchvision's
``FashionMNIST/raw``, works too). Splits: ``test`` is the official 10,000-image test set; ``val`` is a
class-stratified ``val_size`` (default 5,000) hold-out of the 60,000 training images with ``split_seed``
0 and ``train`` the other 55,000; ``train_size`` keeps a seeded class-stratified subset of those (the
CPU-scale recipes ``*_fashion``). Pixels: /255, then normalised with the training pixels' mean/std
0.2860 / 0.3530 (:data:`convzoo.data.transforms.NORMS`, recomputed by a test on the fetched data).
``augment=True`` is the small random affine of the MNIST-like sets (no flips).
"""

from __future__ import annotations

from pathlib import Path

from convzoo.data.fetch import Fetchable, data_home, is_fetched, register_fetchable
from convzoo.data.formats import ImageTensorDataset, _mnist
from convzoo.data.registry import register_dataset
from convzoo.errors import ConvzooError

__all__ = ["FILES", "SPEC", "fashion_mnist"]

NAME = "fashion_mnist"
PACKAGE = "dataset-fashion-mnist"
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")
SPEC = register_fetchable(Fetchable(
    NAME, PACKAGE, tuple(f"usr/share/datasets/fashion-mnist/{f}" for f in FILES),
    "Fashion-MNIST (Xiao et al. 2017, arXiv 1708.07747), 60,000 + 10,000 28x28 grey images, 10 classes; "
    "Debian package dataset-fashion-mnist, licence Expat (MIT), Zalando SE.",
    source="debian", licence="License: Expat"))


def fashion_root(root: str | Path | None = None) -> Path:
    """``root``, or the fetched cache; one line naming the fetch command when the cache is empty."""
    if root is not None:
        return Path(str(root)).expanduser()
    folder = data_home(NAME)
    if not is_fetched(NAME, folder):
        raise ConvzooError(f"fashion_mnist: the IDX files are not in {folder}; run `convzoo data fetch "
                           f"fashion_mnist` first (or set data.root to a folder holding them)")
    return folder


@register_dataset(NAME)
def fashion_mnist(split: str, root=None, *, size=None, channels=None, augment=False, raw=False,
                  val_size: int = 5000, split_seed: int = 0, train_size: int | None = None) -> ImageTensorDataset:
    """The ``split`` of Fashion-MNIST as described in the module docstring."""
    return _mnist(NAME, split, fashion_root(root), size=size, channels=channels, augment=augment, raw=raw,
                  val_size=val_size, split_seed=split_seed, train_size=train_size)
