"""Fine-tuning: start a run from earlier weights, optionally with its first stages frozen.

``init`` (recipe key; ``train(init=...)``) names a run folder (its ``best.safetensors``) or a checkpoint
file or folder that :func:`convzoo.weights.read_state` reads (safetensors, torch files with
``weights_only``). A checkpoint with the model's own keys loads key for key; the classifier's tensors,
when their class count differs (a checkpoint trained on other classes), keep their fresh initialisation,
as timm's ``load_pretrained`` does with ``num_classes`` != 1000 (the classifier is ``get_classifier()``,
timm's contract, or the last module holding parameters). A file in another key
layout (timm's, the authors') goes through :func:`convzoo.weights.load_pretrained`, the loader behind
``create_model(pretrained=PATH)``.

``freeze``: a number N freezes the first N stages of the model's ``feature_info`` and every module before
them (the stem), in module order; a list freezes the named modules (``[stem, stages.0]``). Frozen modules
get ``requires_grad=False`` (so the optimizer never sees them) and stay in eval mode while training, so
their BatchNorm statistics and dropout are frozen too.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from convzoo.engine.checkpoint import BEST, CONFIG
from convzoo.errors import ConvzooError, UnknownNameError


def resolve_init(path) -> Path:
    """The weights file ``init`` names: a run folder's best checkpoint, or the file itself."""
    p = Path(path).expanduser()
    if p.is_dir() and (p / CONFIG).is_file():
        if not (p / BEST).is_file():
            raise ConvzooError(f"init run {p} has no {BEST} yet (it has not finished an epoch)")
        return p / BEST
    if not p.exists():
        raise ConvzooError(f"init weights not found: {p} (give a run folder or a checkpoint file)")
    return p


def load_init(model: nn.Module, path) -> str:
    """Load the weights ``path`` into ``model``; one sentence saying what was loaded (for the report)."""
    from convzoo.weights import read_state

    path = Path(path)
    state, own = read_state(path), model.state_dict()  # safetensors, or torch files read with weights_only
    if set(state) == set(own):
        return _load_same_layout(model, own, state, path)
    card = getattr(model, "card", None)
    if card is None:  # not built by create_model: no layouts to try
        from convzoo.weights import load_weights

        load_weights(model, path)
        return f"started from the weights {path}"
    from convzoo.weights import load_pretrained

    load_pretrained(model, card, path)  # timm's and the authors' layouts; it warns about a new head itself
    return f"started from the weights {path} (converted from another key layout)"


def _classifier_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the classifier: ``get_classifier()`` (timm's contract), else the last module
    holding parameters of its own."""
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Module):
        owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
        head = owners[-1] if owners else None
    names = {id(m): n for n, m in model.named_modules()}
    if head is None or id(head) not in names:
        return set()
    prefix = names[id(head)] + "." if names[id(head)] else ""
    return {prefix + k for k in head.state_dict()}


def _load_same_layout(model: nn.Module, own: dict, state: dict, path: Path) -> str:
    differ = [k for k in own if own[k].shape != state[k].shape]
    classifier = _classifier_keys(model)
    head = [k for k in differ if k in classifier and own[k].shape[1:] == state[k].shape[1:]]
    bad = [k for k in differ if k not in head]
    if bad:
        k = bad[0]
        raise ConvzooError(f"init checkpoint {path} does not fit this model: '{k}' has shape {tuple(state[k].shape)}, "
                           f"the model expects {tuple(own[k].shape)}")
    model.load_state_dict({k: v for k, v in state.items() if k not in head}, strict=False)
    if not head:
        return f"started from the weights {path}"
    old, new = state[head[0]].shape[0], own[head[0]].shape[0]
    return (f"started from the weights {path}; head re-initialised for {new} classes (the checkpoint has "
            f"{old}): {', '.join(head)}")


def freeze(model: nn.Module, spec) -> list[str]:
    """Freeze ``spec`` (a stage count or module names) of ``model``; the frozen module names, in order."""
    if spec is None or spec == 0 or spec == []:
        return []
    modules = dict(model.named_modules())
    if isinstance(spec, int):
        info = getattr(model, "feature_info", None)
        stages = [f.get("module") for f in info or [] if isinstance(f, dict)]
        if not stages or not all(stages):
            top = [n for n, _ in model.named_children()]
            raise ConvzooError(f"freeze {spec}: {type(model).__name__} lists no stages (feature_info); name the "
                               f"modules instead, e.g. freeze: [{', '.join(top[:2])}] (its modules: {', '.join(top)})")
        if spec > len(stages):
            raise ConvzooError(f"freeze {spec}: the model has {len(stages)} stages ({', '.join(stages)})")
        names = _up_to(model, stages[spec - 1])
    else:
        names = list(spec)
        for n in names:
            if n not in modules or not n:
                raise UnknownNameError("module to freeze", n, [m for m in modules if m and m.count(".") <= 1])
    for n in names:
        modules[n].requires_grad_(False)
    return names


def _up_to(model: nn.Module, path: str) -> list[str]:
    """Module ``path`` and every module before it in module order (the preceding siblings at each level)."""
    names, node, prefix = [], model, ""
    for part in path.split("."):
        for name, _ in node.named_children():
            if name == part:
                break
            names.append(prefix + name)
        node = node.get_submodule(part)
        prefix += part + "."
    return names + [path]


def frozen_modules(model: nn.Module, names: list[str]) -> list[nn.Module]:
    modules = dict(model.named_modules())
    return [modules[n] for n in names]
