"""Checkpoints, atomic files, run folders and the random streams that make resuming exact.

A run folder holds, after every epoch::

    config.yaml         the resolved recipe (what ``evaluate``/``load_run`` rebuild from)
    data_info.yaml      the data set's DataInfo (class names, channels), so predict needs no data
    last.safetensors    the weights that are evaluated (the EMA when the recipe sets ``ema``)
    best.safetensors    the same, from the epoch with the best validation ``task.monitor``
    state.pt            everything else needed to continue: training weights, optimiser,
                        schedule, EMA, epoch, history, best, elapsed time and the RNG states
    metrics.csv         one row per epoch

``state.pt`` is written last, atomically, and alone decides where a resumed run continues, so a run
killed at any instant resumes consistently. With ``checkpoint_every_n_steps: N`` it is also written every
N optimizer steps inside an epoch (``step`` > 0: the epoch in progress, with its partial sums); the weights
files and ``metrics.csv`` stay those of the last finished epoch. It holds tensors, numbers, strings, lists and dicts only
and is read with ``torch.load(weights_only=True)``: no pickled code runs when a checkpoint is read.

Random streams: every epoch starts by seeding torch, numpy and ``random`` from
``(seed, epoch, rank)`` (:func:`seed_epoch`), and the samplers shuffle with ``seed + epoch``
(``DistributedSampler``). Data order, augmentation and dropout of epoch ``e`` therefore depend only
on the recipe's seed, ``e`` and the rank, never on what ran before: a run resumed at an epoch
boundary draws exactly the numbers an uninterrupted run draws. After a mid-epoch checkpoint every RNG
is re-seeded from ``(seed, epoch, rank, step)`` (:func:`seed_step`); a run resumed there skips the
batches already done (the loader still reads them, so data-loader workers draw as before), re-seeds the
same way and continues at that step exactly. The RNG states at the end of the last
epoch are stored in ``state.pt`` as well, for inspection.
"""

from __future__ import annotations

import io
import os
import random
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from convzoo.errors import ConvzooError

STATE, CONFIG, DATA_INFO = "state.pt", "config.yaml", "data_info.yaml"
LAST, BEST = "last.safetensors", "best.safetensors"
STATE_VERSION = 2  # 2: the whole method, a list of optimizers and schedules
_UMASK = os.umask(0o022)
os.umask(_UMASK)


# --- atomic files ------------------------------------------------------------------------------
def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_state(path: Path, state: dict) -> Path:
    buf = io.BytesIO()
    torch.save(state, buf)
    return write_atomic(path, buf.getvalue())


def load_state(path: Path) -> dict:
    """``state.pt`` read with weights_only; a missing or corrupt file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ConvzooError(f"cannot resume: {path} not found (is this a convzoo run folder?)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - unpickling raises many kinds; all mean "corrupt"
        raise ConvzooError(f"corrupt or unreadable training state {path}: {type(e).__name__}") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ConvzooError(f"{path} is not a convzoo training state (version {STATE_VERSION})")
    return state


# --- random streams ----------------------------------------------------------------------------
def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A 32-bit seed for (recipe seed, epoch, rank), mixed by numpy's SeedSequence."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def seed_epoch(seed: int, epoch: int, rank: int) -> int:
    """Seed torch (CPU and CUDA), numpy and ``random`` for epoch ``epoch`` on ``rank``."""
    s = epoch_seed(seed, epoch, rank)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)  # also seeds every CUDA device
    return s


def seed_step(seed: int, epoch: int, step: int, rank: int) -> int:
    """Seed every RNG after optimizer step ``step`` of ``epoch`` (where a mid-epoch checkpoint was written),
    so that a run resumed from that checkpoint draws what the uninterrupted run draws."""
    s = int(np.random.SeedSequence([seed, epoch, rank, step, 1]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    return s


def rng_state() -> dict:
    """The current torch / numpy / python RNG states as tensors and numbers (weights_only-safe)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, pstate, pgauss = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": list(pstate), "gauss": pgauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- run folders -------------------------------------------------------------------------------
def run_folder(path) -> Path:
    """An existing run folder (one holding ``config.yaml``), or a one-line error."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ConvzooError(f"run folder not found: {path}")
    if not (path / CONFIG).is_file():
        raise ConvzooError(f"{path} is not a convzoo run folder (no {CONFIG})")
    return path


def _plain(x: Any) -> Any:
    """YAML-safe copy: tuples become lists, unknown objects their repr."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, (np.generic,)):
        return x.item()
    return repr(x)


def save_data_info(run_dir: Path, info) -> None:
    write_atomic(run_dir / DATA_INFO, yaml.safe_dump(_plain(asdict(info)), sort_keys=False))


def load_data_info(run_dir: Path):
    """The DataInfo saved with a run (None for runs without one)."""
    from convzoo.data import DataInfo

    path = Path(run_dir) / DATA_INFO
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text())
        for k in ("class_names", "input_size"):
            raw[k] = tuple(raw.get(k) or ())
        return DataInfo(**raw)
    except (yaml.YAMLError, TypeError, AttributeError) as e:
        raise ConvzooError(f"corrupt {path}: {e}") from None
