"""Read a checkpoint file as a flat ``{key: tensor}`` state dict, whatever container its authors used.

Formats, recognised by their first bytes (the suffix is only a hint): safetensors, PyTorch's zip
format (``torch.save`` since 1.6: ``.pth``, ``.pt``, ``.bin``, ``.pth.tar``) and its older pickle
format. PyTorch files are read with ``torch.load(weights_only=True)``: no code from the file runs. A
file that needs code to unpickle (a whole pickled model, a custom class) is refused with one line
naming the first such global; ``argparse.Namespace`` and numpy scalars, which the training scripts of
DeiT, ConvNeXt, LeViT/LSNet and timm store beside the weights, are allowed (constructing them runs no
code of the file).

Containers, as timm's ``load_checkpoint(use_ema=True)`` reads them: the first of ``state_dict_ema``,
``model_ema``, ``state_dict``, ``model``, ``module``, ``net`` that holds tensors (nested containers
are opened in turn), else the top level. Prefixes that wrappers add to every key (``module.`` from
DataParallel/DDP, ``_orig_mod.`` from ``torch.compile``) are dropped. A folder (a Hugging Face
snapshot) is read through its ``model.safetensors`` or ``pytorch_model.bin``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from convzoo.errors import ConvzooError

__all__ = ["CONTAINER_KEYS", "read_checkpoint", "unwrap_state"]

CONTAINER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module", "net")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
SNAPSHOT_FILES = ("model.safetensors", "pytorch_model.bin")


def _safe_globals() -> list:
    import argparse

    allowed: list = [argparse.Namespace]
    try:  # numpy scalars (e.g. a best metric saved as np.float64) and their dtypes
        import numpy as np

        allowed += [np.dtype, type(np.dtype("float64")), type(np.dtype("float32")), type(np.dtype("int64"))]
        allowed.append(np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar)
    except (ImportError, AttributeError):
        pass
    return allowed


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(e).__name__  # torch appends advice sentences


def _unpickle_refusal(path: Path, e: BaseException) -> ConvzooError:
    text = str(e)
    what = ""
    for marker in ("Unsupported global: GLOBAL ", "Unsupported class ", "global "):
        if marker in text:
            what = text.split(marker, 1)[1].split()[0].rstrip(".,")
            break
    named = f" (first: {what})" if what else ""
    return ConvzooError(f"checkpoint {path} holds pickled Python objects{named} that convzoo will not unpickle "
                        "(torch.load(weights_only=True): no code from a file runs); re-save its tensors where you "
                        "trust it: torch.save(model.state_dict(), 'weights.pth')")


def _load_torch(path: Path):
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported" in str(e):
            raise _unpickle_refusal(path, e) from None
        raise ConvzooError(f"corrupt or unreadable checkpoint {path}: {_first_line(e)}") from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, AttributeError, TypeError, IndexError) as e:
        raise ConvzooError(f"corrupt or unreadable checkpoint {path}: {_first_line(e)}") from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ConvzooError(f"corrupt or unreadable checkpoint {path}: expected a safetensors file "
                           f"({_first_line(e)})") from None


def _resolve(path: Path) -> Path:
    if path.is_dir():
        for name in SNAPSHOT_FILES:
            if (path / name).is_file():
                return path / name
        raise ConvzooError(f"checkpoint folder {path} has none of {', '.join(SNAPSHOT_FILES)}; pass the weights file")
    if not path.is_file():
        raise ConvzooError(f"checkpoint not found: {path}")
    return path


def _kind(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(16)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch zip archive / legacy pickle stream
        return "torch"
    if len(head) > 8 and head[8:9] == b"{":  # safetensors: u64 header length, then a JSON header
        return "safetensors"
    raise ConvzooError(f"corrupt or unreadable checkpoint {path}: neither safetensors nor a PyTorch file "
                       f"({os.path.getsize(path)} bytes)")


def _holds_tensors(obj) -> bool:
    return isinstance(obj, Mapping) and any(
        isinstance(v, torch.Tensor) or (isinstance(v, Mapping) and _holds_tensors(v)) for v in obj.values())


def unwrap_state(obj, where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint object (see the module docstring for the order)."""
    for _ in range(4):  # containers nest at most a few levels ({"model": {"state_dict": ...}})
        if not isinstance(obj, Mapping):
            raise ConvzooError(f"{where} holds a {type(obj).__name__}, not a state dict of tensors")
        inner = next((obj[k] for k in CONTAINER_KEYS if k in obj and _holds_tensors(obj[k])), None)
        if inner is None:
            break
        obj = inner
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        keys = ", ".join(map(str, list(obj)[:5]))
        raise ConvzooError(f"{where} holds no tensors (top-level keys: {keys or 'none'})")
    return {_strip(k): v for k, v in state.items()}


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in WRAPPER_PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def read_checkpoint(path) -> dict[str, torch.Tensor]:
    """The flat state dict stored in ``path`` (safetensors or PyTorch; containers opened, wrapper prefixes dropped)."""
    path = _resolve(Path(path).expanduser())
    obj = _load_safetensors(path) if _kind(path) == "safetensors" else _load_torch(path)
    return unwrap_state(obj, where=f"checkpoint {path}")
