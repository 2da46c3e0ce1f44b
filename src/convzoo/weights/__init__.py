"""Weights: save as safetensors, load checkpoints users already have, and the tiny weights shipped here.

``load_weights`` reads convzoo's own layout (a run's checkpoint); ``load_pretrained`` (behind
``create_model(name, pretrained=PATH)``) reads any file of :mod:`convzoo.weights.checkpoint`'s formats
in any key layout of :mod:`convzoo.weights.layouts` (the authors', timm's, ours), re-initialises a
classifier whose class count differs, and turns every failure into one readable line: a missing or
corrupt file, a pickle that needs code, a checkpoint of another architecture (first missing and
unexpected keys, with counts), a re-parameterised checkpoint given to a train-time model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

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
    """The flat state dict in a checkpoint file (safetensors or PyTorch, see :mod:`convzoo.weights.checkpoint`)."""
    from convzoo.weights.checkpoint import read_checkpoint

    return read_checkpoint(path)


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

    The file's layout is found by :func:`convzoo.weights.layouts.best_layout`. Classifier weights whose
    shape differs from the model's (other class count) or that the model lacks (``num_classes=0``) are
    left out, and a checkpoint without a classifier leaves the model's: the classifier keeps its fresh
    initialisation and a warning says so (timm does the same). Everything else must fit exactly.
    """
    if source is True:
        if bundled_path(card.name).is_file():
            return load_bundled(model, card.name)
        from convzoo.weights.layouts import where_weights

        raise ConvzooError(where_weights(card))
    from convzoo.weights.layouts import best_layout

    state = read_state(source)
    layout, state = best_layout(card, model, state)
    return _load_fitted(model, card, state, f"checkpoint {source} ({layout.name} layout)")


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Key prefixes of the model's classifier(s): ``get_classifier()``'s module, a distillation twin, an aux head."""
    get = getattr(model, "get_classifier", None)
    clf = get() if callable(get) else None
    if clf is None:
        return ()
    names = [n for n, m in model.named_modules() if m is clf and n]
    prefixes = [names[0] + "."] if names else []
    if names and names[0].startswith("head"):  # LSNet / DeiT-style distillation head beside the class head
        twin = "head_dist" + names[0].removeprefix("head")
        if twin in dict(model.named_modules()):
            prefixes.append(twin + ".")
        if "aux_head" in dict(model.named_modules()):  # VOLO's token-labelling head: one output per class too
            prefixes.append("aux_head.")
    return tuple(prefixes)


def _load_fitted(model: nn.Module, card, state: dict[str, torch.Tensor], what: str) -> nn.Module:
    import warnings

    own = model.state_dict()
    heads = classifier_prefixes(model)

    def in_head(key: str) -> bool:
        return bool(heads) and key.startswith(heads)

    left_out = [k for k in state if in_head(k) and (k not in own or tuple(own[k].shape) != tuple(state[k].shape))]
    state = {k: v for k, v in state.items() if k not in left_out}
    state, adapted = _adapt_input_convs(own, state, card.in_chans)
    shape = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if shape:
        k = shape[0]
        raise ConvzooError(f"{what} does not fit {card.name}: '{k}' has shape {tuple(state[k].shape)}, the model "
                           f"expects {tuple(own[k].shape)} ({len(shape)} keys differ in shape)")
    # buffers that checkpoints older than PyTorch 0.4.1 lack; BatchNorm fills them in on load
    missing = [k for k in own if k not in state and not in_head(k) and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        first = []
        if missing:
            first.append(f"{len(missing)} keys missing (first '{missing[0]}')")
        if unexpected:
            first.append(f"{len(unexpected)} unexpected (first '{unexpected[0]}')")
        raise ConvzooError(f"{what} does not fit {card.name}: {', '.join(first)}{_deploy_hint(model, card, state)}")
    head_missing = [k for k in own if in_head(k) and k not in state]
    model.load_state_dict(state, strict=False)
    if adapted:
        warnings.warn(f"{card.name}: input convolution {', '.join(adapted)} adapted from {card.in_chans} to "
                      f"{own[adapted[0]].shape[1]} channels (summed for 1, else repeated and rescaled, as timm does)",
                      UserWarning, stacklevel=4)
    classes = getattr(model, "num_classes", None)
    if left_out and classes == 0:
        warnings.warn(f"{card.name}: the model has no classifier (num_classes=0): the file's ({', '.join(left_out[:2])}) "
                      "is left out, every other weight is loaded", UserWarning, stacklevel=4)
    elif left_out or head_missing:
        why = "the checkpoint holds no classifier" if not left_out else \
            f"its classifier ({', '.join(left_out[:2])}) does not fit {classes} classes"
        warnings.warn(f"{card.name}: {why}; the classifier keeps its fresh initialisation, every other weight "
                      f"is loaded", UserWarning, stacklevel=4)
    return model


def _adapt_input_convs(own, state, file_chans: int):
    """Convolutions that read the image (``file_chans`` input channels in the file, another count in the model):
    for 1 channel the weights are summed over the file's channels; otherwise they are tiled up to the model's
    count and scaled by ``file_chans / in_chans``, so a constant image gives the same response (timm's rule)."""
    out, adapted = dict(state), []
    for k, theirs in state.items():
        mine = own.get(k)
        if mine is None or theirs.ndim < 3 or theirs.shape[1] != file_chans or mine.shape[1] == file_chans \
                or theirs.shape[:1] + theirs.shape[2:] != mine.shape[:1] + mine.shape[2:]:
            continue
        w, n = theirs.float(), mine.shape[1]
        if n == 1:
            w = w.sum(dim=1, keepdim=True)
        else:
            reps = -(-n // file_chans)
            w = w.repeat(1, reps, *[1] * (w.ndim - 2))[:, :n] * (file_chans / n)
        out[k] = w.to(theirs.dtype)
        adapted.append(k)
    return out, adapted


def _deploy_hint(model: nn.Module, card, state: dict[str, torch.Tensor]) -> str:
    """For a re-parameterisable model: say when the file fits the other structure (deploy vs train-time)."""
    if "reparam" not in card.capabilities:
        return ""
    from convzoo.registry import create_model

    own = set(model.state_dict())
    for deploy in (True, False):
        try:
            with torch.device("meta"):
                other = create_model(card.name, num_classes=getattr(model, "num_classes", None), deploy=deploy)
        except (TypeError, ConvzooError):
            return ""
        keys = set(other.state_dict())
        if keys == own:
            continue  # the model's own structure
        if set(state) <= keys and not [k for k in keys - set(state) if not k.endswith("num_batches_tracked")]:
            return ("; it is a re-parameterised (deploy) checkpoint: create_model(..., deploy=True)" if deploy else
                    "; it is a train-time checkpoint: build without deploy=True (convzoo.deploy fuses it later)")
    return ""
