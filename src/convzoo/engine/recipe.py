"""Recipes: YAML files that name model, data, task, optimiser, schedule and the run's numbers.

The schema is ``docs/recipes.md``; :data:`SCHEMA` below is its executable form. Validation is strict
and every problem is one :class:`~convzoo.errors.ConvzooError` line naming the key: an unknown key
gets the closest known keys as suggestions, a value of the wrong type names the type expected.
``--set key=value`` overrides (dotted keys, values read as YAML) are applied before validation, so
they are checked the same way. Missing sections and keys are filled with the defaults below.

``kwargs`` mappings (``model.kwargs``, ``data.kwargs``, ``task.kwargs``, ``optimizer.kwargs``,
``schedule.kwargs``) are passed on unchecked; the builder they go to reports bad entries.
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from convzoo.errors import ConvzooError, UnknownNameError, suggest

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
SPLITS = ("train", "val", "test")
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop", "kar2", "kar3")
SCHEDULES = ("constant", "cosine", "step", "multistep", "exponential", "plateau")
BATCH_TRANSFORMS = (None, "mixup", "cutmix", "mixup_cutmix", "jitter")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")
_REQUIRED = object()


@dataclass(frozen=True)
class Field:
    """One leaf of the schema: accepted types, default, allowed values, smallest value."""

    types: tuple[type, ...]
    default: Any = None
    choices: tuple = ()
    minimum: float | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def _f(types, default=None, choices=(), minimum=None) -> Field:
    return Field(types if isinstance(types, tuple) else (types,), default, choices, minimum)


NONE = type(None)
NUM = (float, int)
SCHEMA: dict[str, Any] = {
    "name": _f(str, _REQUIRED),
    "paper": _f((int, NONE)),
    "description": _f(str, ""),
    "source": _f(str, ""),
    "model": {"name": _f(str, _REQUIRED), "kwargs": _f(dict, {})},
    "data": {
        "name": _f(str, _REQUIRED),
        "root": _f((str, NONE)),
        "kwargs": _f(dict, {}),
        "train_split": _f(str, "train", SPLITS),
        "eval_split": _f((str, NONE), "val", SPLITS),
        "test_split": _f((str, NONE), "test", SPLITS),
        "num_workers": _f(int, 0, minimum=0),
    },
    "task": {"name": _f((str, NONE)), "kwargs": _f(dict, {})},  # name null: the data set's task
    "method": {"name": _f(str, "supervised"), "kwargs": _f(dict, {})},  # what is trained (convzoo.methods)
    "optimizer": {
        "name": _f(str, "sgd", OPTIMIZERS),
        "lr": _f(NUM, 0.1, minimum=0),
        "weight_decay": _f(NUM, 0.0, minimum=0),
        "kwargs": _f(dict, {}),
        "param_groups": _f(list, []),
        "decay_1d": _f(bool, False),  # false: no weight decay on 1-D parameters and no_weight_decay() names
    },
    "schedule": {
        "name": _f(str, "constant", SCHEDULES),
        "kwargs": _f(dict, {}),
        "warmup_epochs": _f(NUM, 0, minimum=0),
        "interval": _f(str, "epoch", ("epoch", "step")),  # step: the lr changes after every optimizer step
    },
    "epochs": _f(int, 10, minimum=1),
    "batch_size": _f(int, 64, minimum=1),
    "accumulate": _f(int, 1, minimum=1),  # gradient accumulation: optimizer steps every N batches
    "batch_transform": {"name": _f((str, NONE), None, BATCH_TRANSFORMS), "kwargs": _f(dict, {})},
    "eval_batch_size": _f(int, 256, minimum=1),
    "precision": _f(str, "32-true", PRECISIONS),
    "grad_clip": _f((float, int, NONE), None, minimum=0),
    "ema": _f((float, NONE), None, minimum=0),
    "seed": _f(int, 0, minimum=0),
    "fast": _f(bool, False),  # channels_last + bf16 autocast + torch.compile of the model
    # channels_last model and batches without compiling (on CPUs where torch.compile is slower than eager);
    # with precision bf16-mixed it is the eager half of "fast"
    "channels_last": _f(bool, False),
    # Lightning's names: at most N batches per training epoch (the schedule spans the shortened epochs) and
    # per evaluation pass; null = all. For smoke runs of a recipe as written (tests/engine/test_every_recipe.py)
    "limit_train_batches": _f((int, NONE), None, minimum=1),
    "limit_eval_batches": _f((int, NONE), None, minimum=1),
    # fine-tuning: start from a run folder's best weights or a checkpoint file (head re-initialised when the
    # classes differ); freeze the first N stages (the model's feature_info) or the named modules
    "init": _f((str, NONE)),
    "freeze": _f((int, list, NONE), None, minimum=0),
    # stop when the task's monitored validation metric has not improved by more than min_delta for patience epochs
    "early_stopping": {"patience": _f((int, NONE), None, minimum=1), "min_delta": _f(NUM, 0.0, minimum=0)},
    "log_every_n_steps": _f((int, NONE), None, minimum=1),  # steps.csv (and TensorBoard): one row every N steps
    "tensorboard": _f(bool, False),  # a SummaryWriter in RUN/tensorboard (needs the tensorboard package)
    "checkpoint_every_n_steps": _f((int, NONE), None, minimum=1),  # state.pt inside long epochs as well
}
# keys that may differ between a run and its resumption (what "train longer" or a new machine changes)
RESUMABLE = ("epochs", "description", "data.root", "data.num_workers", "limit_eval_batches", "early_stopping",
             "log_every_n_steps", "tensorboard", "checkpoint_every_n_steps")
# keys that decide what is trained: a resumption may not change them
IDENTITY = ("name", "model", "data.name", "data.kwargs", "data.train_split", "task", "method", "init", "freeze")
# one entry of optimizer.param_groups: parameters whose name matches the glob get lr * lr_mult
PARAM_GROUP: dict[str, Field] = {
    "match": _f(str, _REQUIRED),
    "lr_mult": _f(NUM, 1.0, minimum=0),
    "weight_decay": _f((float, int, NONE), None, minimum=0),
}
_FREE = ("kwargs",)  # mappings passed on unchecked


def _keys(schema: dict, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (sections and leaves)."""
    out = []
    for k, v in schema.items():
        out.append(prefix + k)
        if isinstance(v, dict):
            out += _keys(v, f"{prefix}{k}.")
    return out


def _did_you_mean(key: str, known: list[str]) -> str:
    """Suggest keys of the same section whose last part is close; else close keys anywhere."""
    section, _, leaf = key.rpartition(".")
    same = [k for k in known if k.rpartition(".")[0] == section]
    close = [f"{section}.{c}" if section else c for c in suggest(leaf, [k.rpartition(".")[2] for k in same], n=2)]
    if not close:
        by_leaf: dict[str, str] = {}
        for k in known:
            by_leaf.setdefault(k.rpartition(".")[2], k)
        close = [by_leaf[c] for c in suggest(leaf, list(by_leaf), n=2)]
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _type_name(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "a mapping", list: "a list",
             NONE: "null", bool: "true or false"}
    seen = [names[t] for t in types if not (t is int and float in types)]
    return " or ".join(dict.fromkeys(seen))


def _check_leaf(key: str, value: Any, field: Field) -> Any:
    """The validated (and normalised) value of one leaf, or a one-line error."""
    if value is None and NONE in field.types:
        return None
    if value is None and field.types in ((dict,), (list,)):  # an empty ``kwargs:`` in YAML
        return copy.deepcopy(field.default)
    if float in field.types and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if key == "precision" and isinstance(value, int) and not isinstance(value, bool):
        value = {32: "32-true", 16: "16-mixed", 64: "64-true"}.get(value, value)
    ok = isinstance(value, field.types) and (not isinstance(value, bool) or bool in field.types)
    if not ok:
        raise ConvzooError(f"recipe key '{key}' must be {_type_name(field.types)}, got {value!r}")
    if float in field.types and isinstance(value, int):
        value = float(value)
    if field.choices and value not in field.choices:
        raise ConvzooError(f"recipe key '{key}' must be one of {', '.join(map(str, field.choices))}, "
                           f"got {value!r}{_did_you_mean(str(value), list(map(str, field.choices)))}")
    if field.minimum is not None and not isinstance(value, list) and value < field.minimum:
        raise ConvzooError(f"recipe key '{key}' must be >= {field.minimum:g}, got {value!r}")
    return copy.deepcopy(value)


def _validate(raw: dict, schema: dict, prefix: str = "", root_keys: list[str] | None = None) -> dict:
    root_keys = root_keys if root_keys is not None else _keys(SCHEMA)
    for k in raw:
        if k not in schema:
            key = f"{prefix}{k}"
            raise ConvzooError(f"bad recipe key '{key}'{_did_you_mean(key, root_keys)}")
    out: dict[str, Any] = {}
    for k, spec in schema.items():
        key = f"{prefix}{k}"
        if isinstance(spec, dict):
            sub = raw.get(k, {})
            if sub is None:
                sub = {}
            if not isinstance(sub, dict):
                raise ConvzooError(f"recipe key '{key}' must be a mapping, got {sub!r}")
            out[k] = _validate(sub, spec, f"{key}.", root_keys)
        elif k in raw:
            out[k] = _check_leaf(key, raw[k], spec)
        elif spec.required:
            raise ConvzooError(f"recipe is missing the key '{key}'")
        else:
            out[k] = copy.deepcopy(spec.default)
    if prefix == "optimizer.":
        out["param_groups"] = [_param_group(i, g) for i, g in enumerate(out["param_groups"])]
    return out


def _param_group(i: int, group: Any) -> dict:
    prefix = f"optimizer.param_groups[{i}]"
    if not isinstance(group, dict):
        raise ConvzooError(f"recipe key '{prefix}' must be a mapping like {{match: 'head.*', lr_mult: 0.1}}, "
                           f"got {group!r}")
    known = [f"{prefix}.{k}" for k in PARAM_GROUP]
    for k in group:
        if k not in PARAM_GROUP:
            raise ConvzooError(f"bad recipe key '{prefix}.{k}'{_did_you_mean(f'{prefix}.{k}', known)}")
    out = {}
    for k, spec in PARAM_GROUP.items():
        if k in group:
            out[k] = _check_leaf(f"{prefix}.{k}", group[k], spec)
        elif spec.required:
            raise ConvzooError(f"recipe is missing the key '{prefix}.{k}'")
        else:
            out[k] = spec.default
    return out


def validate_recipe(raw: dict) -> dict:
    """A complete, checked copy of ``raw``: unknown keys and wrong types are one-line errors."""
    if not isinstance(raw, dict):
        raise ConvzooError(f"a recipe must be a YAML mapping, got {type(raw).__name__}")
    cfg = _validate(raw, SCHEMA)
    if isinstance(cfg["freeze"], list) and not all(isinstance(m, str) for m in cfg["freeze"]):
        raise ConvzooError(f"recipe key 'freeze' must be a number of stages or a list of module names, "
                           f"got {cfg['freeze']!r}")
    if cfg["ema"] is not None and not 0.0 < cfg["ema"] < 1.0:
        raise ConvzooError(f"recipe key 'ema' is a decay and must lie in (0, 1), got {cfg['ema']!r}")
    return cfg


# --- overrides ---------------------------------------------------------------------------------
def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConvzooError(f"bad --set '{item}': expected key=value, e.g. --set optimizer.lr=0.05")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text  # not YAML: take it as a string
    return _key_path(key.strip()), value


def _key_path(key: str) -> list[str]:
    """The parts of a dotted recipe key, which must name a schema leaf or go inside a ``kwargs``."""
    parts = key.split(".")
    # the key must name a schema leaf/section, or go inside a free ``kwargs`` mapping
    node: Any = SCHEMA
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            if part in _FREE and i < len(parts) - 1:
                return parts  # model.kwargs.drop_rate=0.1 etc.
            continue
        raise ConvzooError(f"bad --set key '{key}'{_did_you_mean(key, _keys(SCHEMA))}")
    return parts


def _set(out: dict, parts: list[str], value: Any) -> None:
    node = out
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def apply_overrides(raw: dict, overrides=(), values: dict | None = None) -> dict:
    """``raw`` with every ``key=value`` string of ``overrides`` set (dotted keys; values read as YAML),
    then every ``values`` entry (dotted key -> a typed value, set as it is: what CLI flags give)."""
    out = copy.deepcopy(raw)
    for item in overrides or ():
        parts, value = _parse_override(str(item))
        _set(out, parts, value)
    for key, value in (values or {}).items():
        _set(out, _key_path(key), copy.deepcopy(value))
    return out


# --- finding and loading -----------------------------------------------------------------------
def list_recipes(pattern: str | None = None) -> list[str]:
    """Names of the bundled recipes (file stems in ``convzoo/recipes``), optionally glob-filtered."""
    names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml") if not p.stem.startswith("_"))
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatch(n, glob)]
    return names


def recipe_path(name_or_path: str | Path) -> Path:
    """The YAML file of a recipe given by bundled name or by path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in text or path.is_file():
        if not path.is_file():
            raise ConvzooError(f"recipe file not found: {path}")
        return path
    bundled = RECIPES_DIR / f"{text}.yaml"
    if not bundled.is_file():
        raise UnknownNameError("recipe", text, list_recipes())
    return bundled


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConvzooError(f"{path} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    except OSError as e:
        raise ConvzooError(f"cannot read {path}: {e.strerror}") from None


def load_recipe(name_or_path: str | Path | dict, overrides=(), values: dict | None = None) -> dict:
    """Find, override, validate and complete a recipe.

    ``name_or_path`` is a bundled recipe name (``simplenet_digits``), a path to a YAML file, or a
    mapping already in memory. ``overrides`` are ``"key=value"`` strings as given to ``--set``;
    ``values`` maps dotted keys to typed values (``{"data.root": "2024", "epochs": 5}``), set last.
    A bundled recipe's ``name`` must equal its file stem; a file elsewhere may leave it out.
    """
    if isinstance(name_or_path, dict):
        raw = copy.deepcopy(name_or_path)
    else:
        path = recipe_path(name_or_path)
        raw = read_yaml(path)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConvzooError(f"recipe {path} must be a YAML mapping, got {type(raw).__name__}")
        bundled = path.resolve().parent == RECIPES_DIR
        if bundled and raw.get("name") != path.stem:
            raise ConvzooError(f"recipe {path.name}: 'name' must equal the file stem '{path.stem}', "
                               f"got {raw.get('name')!r}")
        raw.setdefault("name", path.stem)
    return validate_recipe(apply_overrides(raw, overrides, values))


def make_recipe(model: str, data: str, overrides=(), values: dict | None = None, **fields) -> dict:
    """A recipe built from a model and a data set name (``convzoo train --model M --data D``)."""
    raw = {"name": f"{model}_{data}", "model": {"name": model}, "data": {"name": data}, **fields}
    return validate_recipe(apply_overrides(raw, overrides, values))


recipe_for = make_recipe  # the name the CLI uses


def dump_recipe(cfg: dict) -> str:
    """The recipe as YAML text, in schema order."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)
