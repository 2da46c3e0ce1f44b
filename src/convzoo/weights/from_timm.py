"""Convert a timm state dict to the key layout of a convzoo model.

``from_timm(model_name, timm_state_dict)`` renames every key by the rules that the family file of
``model_name`` registered with :func:`register_timm_rules`; tensors are passed through unchanged
(shared, not copied). A rule is ``(regex, replacement)`` applied with :func:`re.sub` in the order
given, so a replacement may be a string with group references or a function of the match (e.g. to
turn timm's flat ``features.N`` index into a named stage). Keys that no rule touches keep their name.

Example::

    import timm, convzoo
    from convzoo.weights.from_timm import from_timm

    ref = timm.create_model("inception_v4")
    ours = convzoo.create_model("inception_v4")
    ours.load_state_dict(from_timm("inception_v4", ref.state_dict()))

Converters are registered per convzoo model name (which is the timm name where both exist).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

import torch

from convzoo.errors import ConvzooError, UnknownNameError

__all__ = ["from_timm", "register_timm_rules", "timm_convertible"]

Rule = tuple[str, "str | Callable[[re.Match], str]"]

_RULES: dict[str, list[tuple[re.Pattern, str | Callable[[re.Match], str]]]] = {}


def register_timm_rules(names: str | Iterable[str], rules: Iterable[Rule]) -> None:
    """Register key-renaming ``rules`` (``(regex, replacement)``, applied in order) for ``names``."""
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    for name in [names] if isinstance(names, str) else names:
        _RULES[name] = compiled


def timm_convertible() -> list[str]:
    """Names of the convzoo models that have a timm converter."""
    _load_families()
    return sorted(_RULES)


def _load_families() -> None:
    from convzoo.registry import _load_all  # the family files register their rules on import

    _load_all()


def from_timm(model_name: str, timm_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``timm_state_dict`` (of timm's ``model_name``) renamed to the keys of convzoo's ``model_name``."""
    _load_families()
    if model_name not in _RULES:
        raise UnknownNameError("timm conversion (model with a timm layout)", model_name, sorted(_RULES))
    rules = _RULES[model_name]
    out: dict[str, torch.Tensor] = {}
    for key, value in timm_state_dict.items():
        new = key.removeprefix("module.")
        for pattern, repl in rules:
            new = pattern.sub(repl, new)
        if new in out:
            raise ConvzooError(f"from_timm('{model_name}'): timm keys map twice onto '{new}' (last: '{key}'); "
                               "is this a state dict of that timm model?")
        out[new] = value
    return out
