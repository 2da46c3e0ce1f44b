"""Recipes: strict validation with suggestions, --set overrides, defaults; optimiser and schedule."""

import math

import pytest
import torch
import yaml
from torch import nn

from convzoo.engine import list_recipes, load_recipe, make_recipe
from convzoo.engine.optim import EpochSchedule, build_optimizer
from convzoo.engine.recipe import SCHEMA, dump_recipe
from convzoo.errors import ConvzooError, UnknownNameError

BASE = {"name": "r", "model": {"name": "m"}, "data": {"name": "d"}}


def with_(**over):
    r = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for k, v in over.items():
        r[k] = {**r.get(k, {}), **v} if isinstance(v, dict) else v
    return r


def test_defaults_filled_in_schema_order():
    cfg = load_recipe(BASE)
    assert list(cfg) == list(SCHEMA)
    assert cfg["optimizer"] == {"name": "sgd", "lr": 0.1, "weight_decay": 0.0, "kwargs": {}, "param_groups": [],
                                "decay_1d": False}
    assert cfg["method"] == {"name": "supervised", "kwargs": {}} and cfg["accumulate"] == 1 and not cfg["fast"]
    assert cfg["schedule"]["interval"] == "epoch" and cfg["batch_transform"] == {"name": None, "kwargs": {}}
    assert cfg["data"]["eval_split"] == "val" and cfg["precision"] == "32-true" and cfg["ema"] is None
    assert load_recipe(yaml.safe_load(dump_recipe(cfg))) == cfg  # a resolved recipe is a fixed point


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConvzooError, match=r"^bad recipe key 'optimizer.lrr'; did you mean 'optimizer.lr'\?$"):
        load_recipe(with_(optimizer={"lrr": 0.1}))
    with pytest.raises(ConvzooError, match=r"bad recipe key 'epoch'; did you mean 'epochs'"):
        load_recipe(with_(epoch=3))
    with pytest.raises(ConvzooError, match=r"bad recipe key 'optimizer.param_groups\[0\].lr_mul'; "
                                           r"did you mean 'optimizer.param_groups\[0\].lr_mult'"):
        load_recipe(with_(optimizer={"param_groups": [{"match": "fc.*", "lr_mul": 0.1}]}))


@pytest.mark.parametrize("over, msg", [
    ({"epochs": "ten"}, r"recipe key 'epochs' must be an integer, got 'ten'"),
    ({"epochs": 0}, r"recipe key 'epochs' must be >= 1, got 0"),
    ({"optimizer": {"lr": [1]}}, r"recipe key 'optimizer.lr' must be a number, got \[1\]"),
    ({"optimizer": {"name": "sgdd"}}, r"must be one of sgd, adam.*got 'sgdd'; did you mean 'sgd'"),
    ({"precision": "bf16"}, r"recipe key 'precision' must be one of"),
    ({"ema": 1.5}, r"'ema' is a decay and must lie in \(0, 1\)"),
    ({"model": "resnet"}, r"recipe key 'model' must be a mapping"),
    ({"data": {"kwargs": [1]}}, r"recipe key 'data.kwargs' must be a mapping"),
], ids=["int", "minimum", "number", "choice", "precision", "ema", "section", "kwargs"])
def test_wrong_types_are_one_line_errors(over, msg):
    with pytest.raises(ConvzooError, match=msg) as e:
        load_recipe(with_(**over))
    assert "\n" not in str(e.value)


def test_missing_required_key():
    with pytest.raises(ConvzooError, match=r"missing the key 'model.name'"):
        load_recipe({"name": "r", "model": {}, "data": {"name": "d"}})


def test_numbers_are_normalised():
    cfg = load_recipe(with_(optimizer={"lr": "1e-3", "weight_decay": 0}, grad_clip=1, precision=16))
    assert cfg["optimizer"]["lr"] == 1e-3 and isinstance(cfg["optimizer"]["weight_decay"], float)
    assert cfg["grad_clip"] == 1.0 and cfg["precision"] == "16-mixed"


def test_overrides_dotted_keys_yaml_values():
    cfg = load_recipe(BASE, ["optimizer.lr=0.05", "epochs=3", "model.kwargs.drop_rate=0.1",
                             "schedule.kwargs={milestones: [2, 4]}", "schedule.name=multistep",
                             "data.eval_split=null", "optimizer.param_groups=[{match: 'fc.*', lr_mult: 0.1}]"])
    assert cfg["optimizer"]["lr"] == 0.05 and cfg["epochs"] == 3
    assert cfg["model"]["kwargs"] == {"drop_rate": 0.1}
    assert cfg["schedule"]["kwargs"] == {"milestones": [2, 4]} and cfg["data"]["eval_split"] is None
    assert cfg["optimizer"]["param_groups"] == [{"match": "fc.*", "lr_mult": 0.1, "weight_decay": None}]


def test_bad_override_key_and_value():
    with pytest.raises(ConvzooError, match=r"^bad --set key 'optimizer.lrr'; did you mean 'optimizer.lr'"):
        load_recipe(BASE, ["optimizer.lrr=0.1"])
    with pytest.raises(ConvzooError, match=r"bad --set 'epochs3': expected key=value"):
        load_recipe(BASE, ["epochs3"])
    with pytest.raises(ConvzooError, match=r"'epochs' must be an integer, got 'abc'"):
        load_recipe(BASE, ["epochs=abc"])


@pytest.mark.claim(paper=10, artefact="ela_resnet18_digits", claim="recipe validates against the schema")
@pytest.mark.claim(paper=33, artefact="inception_v4_digits", claim="recipe validates against the schema")
@pytest.mark.claim(paper=37, artefact="ibnnet_in1k", claim="recipe validates against the schema")
@pytest.mark.claim(paper=37, artefact="ibnnet_digits", claim="recipe validates against the schema")
@pytest.mark.claim(paper=43, artefact="eca_resnet18_digits", claim="recipe validates against the schema")
@pytest.mark.claim(paper=53, artefact="vovnet_digits", claim="recipe validates against the schema")
def test_files_names_and_listing(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model: {name: m}\ndata: {name: d}\nepochs: 2\n")
    cfg = load_recipe(path, ["seed=3"])
    assert cfg["name"] == "mine" and cfg["epochs"] == 2 and cfg["seed"] == 3
    (tmp_path / "bad.yaml").write_text("model: {name: m\n")
    with pytest.raises(ConvzooError, match=r"bad.yaml is not valid YAML at line"):
        load_recipe(tmp_path / "bad.yaml")
    with pytest.raises(ConvzooError, match=r"recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(UnknownNameError, match=r"unknown recipe 'no_such_recipe_xyz'"):
        load_recipe("no_such_recipe_xyz")
    for name in list_recipes():  # every bundled recipe validates
        assert load_recipe(name)["name"] == name
    assert make_recipe("m", "d", ["epochs=1"])["name"] == "m_d"


def test_param_groups_lr_multipliers():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 3, 3))
    cfg = load_recipe(with_(optimizer={"name": "adam", "lr": 0.01, "weight_decay": 1e-4,
                                       "param_groups": [{"match": "2.*", "lr_mult": 0.1, "weight_decay": 0}]}))
    opt = build_optimizer(model, cfg["optimizer"])
    assert isinstance(opt, torch.optim.Adam)
    groups = {(round(g["lr"], 9), g["weight_decay"]): g["params"] for g in opt.param_groups}
    assert groups[(1e-3, 0)] == [model[2].weight, model[2].bias]
    # the default rule: no weight decay on 1-D parameters (biases) outside the recipe's groups
    assert groups[(0.01, 1e-4)] == [model[0].weight] and groups[(0.01, 0.0)] == [model[0].bias]
    cfg["optimizer"]["param_groups"] = [{"match": "head.*", "lr_mult": 0.1, "weight_decay": None}]
    with pytest.raises(ConvzooError, match=r"match 'head.\*' selects no parameter; names look like 0.weight"):
        build_optimizer(model, cfg["optimizer"])
    cfg["optimizer"].update(param_groups=[], kwargs={"momentm": 0.9}, name="sgd")
    with pytest.raises(ConvzooError, match=r"optimizer 'sgd' rejects optimizer.kwargs"):
        build_optimizer(model, cfg["optimizer"])


def test_default_groups_skip_1d_and_no_weight_decay_names_unless_decay_1d():
    """timm / ConvNeXt convention: no decay on ndim <= 1 and on what a module lists in no_weight_decay()."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.pos = nn.Parameter(torch.zeros(1, 4, 2, 2))

        def no_weight_decay(self):
            return {"pos"}

    from convzoo.methods.base import param_groups

    net = Net()
    opt = {"lr": 0.1, "weight_decay": 0.05, "param_groups": [], "decay_1d": False}
    decayed = {id(p) for g in param_groups(net, opt) if g["weight_decay"] == 0.05 for p in g["params"]}
    assert decayed == {id(net.conv.weight)}
    opt["decay_1d"] = True  # the older recipes: every parameter decayed
    assert all(g["weight_decay"] == 0.05 for g in param_groups(net, opt))


def _lrs(name, kwargs, warmup=0, epochs=6, mode="max", metrics=None):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 1.0, "lr_mult": 1.0}], lr=1.0)
    sched = EpochSchedule(opt, {"name": name, "kwargs": kwargs, "warmup_epochs": warmup}, epochs, 1.0, mode)
    out = []
    for e in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        sched.step(metrics[e] if metrics else None)
    return out


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_schedules_per_epoch_with_warmup():
    assert _lrs("constant", {}, warmup=2) == pytest.approx([1 / 3, 2 / 3, 1, 1, 1, 1])
    cos = [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)]
    assert _lrs("cosine", {}, warmup=2) == pytest.approx([1 / 3, 2 / 3] + cos)
    assert _lrs("step", {"step_size": 2, "gamma": 0.5}) == pytest.approx([1, 1, .5, .5, .25, .25])
    # milestones count absolute epochs, also with warmup
    assert _lrs("multistep", {"milestones": [3, 5]}, warmup=1) == pytest.approx([.5, 1, 1, .1, .1, .01])
    assert _lrs("exponential", {"gamma": 0.5}) == pytest.approx([1, .5, .25, .125, .0625, .03125])
    # with a constant ending (BigNAS): max(gamma^e, eta_min / lr)
    assert _lrs("exponential", {"gamma": 0.5, "eta_min": 0.1}) == pytest.approx([1, .5, .25, .125, .1, .1])
    # plateau: after warmup, halve when the (max-mode) metric stops improving for 1 epoch
    got = _lrs("plateau", {"factor": 0.5, "patience": 0}, warmup=1, metrics=[0, .5, .6, .6, .6, .6])
    assert got == pytest.approx([.5, 1, 1, 1, .5, .25])
    with pytest.raises(ConvzooError, match=r"schedule 'step' needs schedule.kwargs.step_size"):
        _lrs("step", {})
    with pytest.raises(ConvzooError, match=r"schedule 'cosine' does not take schedule.kwargs \['gamma'\]"):
        _lrs("cosine", {"gamma": 0.1})


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_schedules_per_step_evaluate_the_closed_form_at_fractional_epochs():
    from convzoo.engine.optim import Schedule

    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 1.0, "lr_mult": 1.0}], lr=1.0)
    spe, epochs, warmup = 4, 5, 1
    sched = Schedule(opt, {"name": "cosine", "kwargs": {}, "warmup_epochs": warmup, "interval": "step"}, epochs,
                     1.0, steps_per_epoch=spe)
    lrs = []
    for _ in range(epochs):
        for _ in range(spe):
            lrs.append(opt.param_groups[0]["lr"])
            sched.step_batch()
        sched.step_epoch()  # a no-op for per-step schedules
    # timm-style linear warmup over the first epoch's steps, then cosine over the remaining 4 epochs
    expected = []
    for s in range(epochs * spe):
        t = s / spe
        warm = min(1.0, (s + 1) / (warmup * spe))
        expected.append(warm * (1 + math.cos(math.pi * min(max(t - warmup, 0), epochs - warmup) / (epochs - warmup))) / 2)
    assert lrs == pytest.approx(expected)
    assert lrs[0] == pytest.approx(0.25) and lrs[3] == pytest.approx(1.0)
    assert len(set(lrs[spe:2 * spe])) == spe  # the lr changes within an epoch
    with pytest.raises(ConvzooError, match=r"plateau.*interval: epoch"):
        Schedule(opt, {"name": "plateau", "kwargs": {}, "warmup_epochs": 0, "interval": "step"}, 3, 1.0)


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_schedule_state_round_trip():
    p = nn.Parameter(torch.zeros(1))
    mk = lambda: torch.optim.SGD([{"params": [p], "lr": 1.0, "lr_mult": 1.0}], lr=1.0)
    spec = {"name": "cosine", "kwargs": {}, "warmup_epochs": 1}
    o1 = mk()
    s1 = EpochSchedule(o1, spec, 8, 1.0)
    for _ in range(3):
        s1.step()
    o2 = mk()
    s2 = EpochSchedule(o2, spec, 8, 1.0)
    o2.load_state_dict(o1.state_dict())
    s2.load_state_dict(s1.state_dict())
    for _ in range(3):
        s1.step()
        s2.step()
        assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"]
