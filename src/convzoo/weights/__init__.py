"""Weights as safetensors: save, load (no pickled code runs), and the tiny weights shipped here.

``load_weights`` accepts checkpoints saved from ``DataParallel``/``DDP`` (a ``module.`` prefix) and
turns every failure into one readable line: a missing file, a file that is not safetensors, or a
checkpoint whose keys/shapes do not match the model.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from convzoo.errors import ConvzooError

BUNDLED = Path(__file__).parent


def save_weights(model: nn.Module, path) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)  # atomic: a killed run never leaves a half-written checkpoint
    return path


def read_state(path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ConvzooError(f"checkpoint not found: {path}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ConvzooError(f"corrupt or unreadable checkpoint {path}: expected a safetensors file ({e})") from None
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights(model: nn.Module, path, strict: bool = True) -> nn.Module:
    state = read_state(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [k for k in own if k in state and own[k].shape != state[k].shape]
    if shape:
        k = shape[0]
        raise ConvzooError(f"checkpoint {path} does not fit this model: '{k}' has shape "
                           f"{tuple(state[k].shape)}, the model expects {tuple(own[k].shape)}")
    if strict and (missing or unexpected):
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise ConvzooError(f"checkpoint {path} does not fit this model: {what} "
                           f"({len(missing)} missing, {len(unexpected)} unexpected keys)")
    model.load_state_dict(state, strict=strict)
    return model


def bundled_path(name: str) -> Path:
    return BUNDLED / f"{name}.safetensors"


def load_bundled(model: nn.Module, name: str) -> nn.Module:
    path = bundled_path(name)
    if not path.is_file():
        raise ConvzooError(f"no weights ship with convzoo for '{name}' (looked for {path.name}); "
                           "train them with `convzoo train` and load the run")
    return load_weights(model, path)


def load_pretrained(model: nn.Module, card, source) -> nn.Module:
    """``create_model(pretrained=...)``: True loads the shipped weights; a path loads that checkpoint.

    Interim: only safetensors files in convzoo's own layout (issue 9 adds timm's and the authors' layouts).
    """
    if source is True:
        return load_bundled(model, card.name)
    return load_weights(model, source)
