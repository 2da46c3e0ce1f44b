"""The training workflow (issue 9 section 2): resume to train longer, fine-tuning from earlier weights with
frozen stages, best/last checkpoints, early stopping, per-step logging, mid-epoch checkpoints, curves.png,
and the user mistakes that end in the engine (split, data set, accelerator)."""

import json
import math
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from convzoo.engine import evaluate, load_run, train
from convzoo.engine.checkpoint import load_state
from convzoo.engine.report import curves_figure, read_metrics_csv, read_steps_csv
from convzoo.errors import ConvzooError

# lr 0 from the second epoch on (multistep at epoch 1, gamma 0): the weights, and so the validation
# metric, stay what epoch 1 made them -- "no improvement" without depending on how training goes
FLAT = {"schedule": {"name": "multistep", "warmup_epochs": 0, "kwargs": {"milestones": [1], "gamma": 0.0}}}


def run(tiny, tmp_path, name, callbacks=(), init=None, freeze=None, **over):
    return train(tiny.recipe(**over), out_dir=tmp_path, run_name=name, progress=False, callbacks=callbacks,
                 init=init, freeze=freeze)


def weights(path):
    return load_file(str(path))


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Crash:
    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def on_train_batch_end(self, epoch, step):
        if (epoch, step) == (self.epoch, self.step):
            raise RuntimeError("simulated crash")


class Start:
    """The model's weights when training starts."""

    def on_train_start(self, model):
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- resume to train longer ---------------------------------------------------------------------
def _cos(t, n):  # torch's CosineAnnealingLR closed form, eta_min 0
    return (1 + math.cos(math.pi * t / n)) / 2


@pytest.mark.parametrize("schedule, expected", [
    ({"name": "cosine", "warmup_epochs": 0}, [0.1 * _cos(e, 4) for e in range(4)]),
    ({"name": "cosine", "warmup_epochs": 0, "interval": "step"}, [0.1 * _cos(e, 4) for e in range(4)]),
    ({"name": "step", "warmup_epochs": 0, "kwargs": {"step_size": 1, "gamma": 0.5}}, [0.1 * 0.5**e for e in range(4)]),
])
def test_resume_longer_follows_the_stretched_schedule(tiny, tmp_path, capsys, schedule, expected):
    """Trained 2 epochs, resumed to 4: epoch 3 runs at the closed form of the schedule over 4 epochs at t = 2
    (cosine: 0.05, not the 0.0 the 2-epoch cosine ended on); the run says so in one line and config.yaml."""
    short = run(tiny, tmp_path, "short", epochs=2, schedule=schedule)
    first = [0.1 * _cos(e, 2) for e in range(2)] if schedule["name"] == "cosine" else expected[:2]
    assert [r["lr"] for r in short.history] == pytest.approx(first)
    capsys.readouterr()
    longer = train(resume=short.run_dir, values={"epochs": 4}, progress=False)
    lrs = [r["lr"] for r in longer.history]  # epochs 1-2 ran on the 2-epoch schedule, 3-4 on the 4-epoch one
    assert lrs == pytest.approx(first + expected[2:]) and lrs[2] > 0
    out = capsys.readouterr().out
    line = [x for x in out.splitlines() if "resumed to train 4 epochs instead of 2" in x]
    assert len(line) == 1 and f"epoch 3 continues at lr {expected[2]:.6g}" in line[0]
    assert "# resumed to train 4 epochs instead of 2" in (short.run_dir / "config.yaml").read_text()
    assert yaml.safe_load((short.run_dir / "config.yaml").read_text())["epochs"] == 4
    assert "resumed to train 4 epochs" in (short.run_dir / "report.md").read_text()


def test_resume_refuses_another_recipe_or_model(tiny, tmp_path):
    base = run(tiny, tmp_path, "base", epochs=2)
    with pytest.raises(ConvzooError, match=r"differs from the run's at 'optimizer.lr' \(0.5 here, 0.1 in the run\)"):
        train(tiny.recipe(optimizer={"lr": 0.5}), resume=base.run_dir, progress=False)
    with pytest.raises(ConvzooError, match=r"model.name is '_tiny_net' in the run, 'resnet18' here") as e:
        train(resume=base.run_dir, values={"model.name": "resnet18"}, progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(ConvzooError, match=r"model.kwargs is \{'drop_rate': 0.2\} in the run"):
        train(resume=base.run_dir, overrides=["model.kwargs.width=4"], progress=False)
    with pytest.raises(ConvzooError, match=r"the run has trained 2 epochs already; epochs 1 would be fewer"):
        train(resume=base.run_dir, values={"epochs": 1}, progress=False)
    with pytest.raises(ConvzooError, match=r"init starts a new run .* give one of them"):
        train(resume=base.run_dir, init=base.run_dir, progress=False)
    # the run's own recipe (with the new length) is accepted
    again = train(tiny.recipe(), resume=base.run_dir, values={"epochs": 3}, progress=False)
    assert again.epochs == 3


# --- fine-tuning --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source(tiny, tmp_path_factory):
    """A 4-class run to fine-tune from (with BatchNorm, so frozen statistics can be checked)."""
    return run(tiny, tmp_path_factory.mktemp("src"), "src", epochs=2, model={"kwargs": {"bn": True}})


def test_init_from_a_run_reinitialises_the_head_for_other_classes(tiny, source, tmp_path):
    start = Start()
    res = run(tiny, tmp_path, "ft", callbacks=[start], init=source.run_dir, epochs=1,
              data={"kwargs": {"classes": 3}}, model={"kwargs": {"bn": True}})
    best = weights(source.run_dir / "best.safetensors")
    assert set(start.weights) == set(best)
    for k, v in start.weights.items():
        if k.startswith("fc."):
            assert v.shape[0] == 3 and best[k].shape[0] == 4  # a new head for 3 classes
        else:
            assert torch.equal(v, best[k]), k  # everything else starts from the run's best checkpoint
    note = (f"started from the weights {source.run_dir / 'best.safetensors'}; head re-initialised for 3 classes "
            "(the checkpoint has 4): fc.weight, fc.bias")
    assert note in (res.run_dir / "report.md").read_text() and res.notes == [note]
    assert json.loads((res.run_dir / "results.json").read_text())["init"] == str(source.run_dir / "best.safetensors")
    assert yaml.safe_load((res.run_dir / "config.yaml").read_text())["init"] == str(source.run_dir / "best.safetensors")


def test_init_from_a_file_and_frozen_stages(tiny, source, tmp_path):
    file = source.run_dir / "last.safetensors"
    start = Start()
    res = run(tiny, tmp_path, "frozen", callbacks=[start], init=file, freeze=1, epochs=2,
              model={"kwargs": {"bn": True}})
    last = weights(file)
    assert same(start.weights, last)  # same classes: every tensor starts from the file
    after = weights(res.run_dir / "last.safetensors")
    stem = [k for k in last if k.startswith("stem.")]
    assert "stem.1.running_mean" in stem and all(torch.equal(after[k], last[k]) for k in stem)  # BN stats too
    assert not torch.equal(after["conv.0.weight"], last["conv.0.weight"])  # stage 2 and the head train
    assert not torch.equal(after["fc.weight"], last["fc.weight"])
    assert "frozen (weights, BatchNorm statistics and dropout): stem (" in (res.run_dir / "report.md").read_text()
    named = run(tiny, tmp_path, "named", init=file, freeze=["stem", "conv"], epochs=1, model={"kwargs": {"bn": True}})
    w = weights(named.run_dir / "last.safetensors")
    assert all(torch.equal(w[k], last[k]) for k in last if not k.startswith("fc."))
    # resuming keeps the stages frozen
    longer = train(resume=res.run_dir, values={"epochs": 3}, progress=False)
    assert longer.epochs == 3
    assert all(torch.equal(weights(res.run_dir / "last.safetensors")[k], last[k]) for k in stem)


def test_init_from_a_torch_file_with_other_classes(tiny, source, tmp_path):
    """A ``torch.save``d state dict (read with weights_only) in the model's own keys, 4 classes -> 3."""
    best = weights(source.run_dir / "best.safetensors")
    torch.save(best, tmp_path / "w.pth")
    start = Start()
    res = run(tiny, tmp_path, "pth", callbacks=[start], init=tmp_path / "w.pth", epochs=1,
              data={"kwargs": {"classes": 3}}, model={"kwargs": {"bn": True}})
    assert all(torch.equal(start.weights[k], best[k]) for k in best if not k.startswith("fc."))
    assert "head re-initialised for 3 classes (the checkpoint has 4)" in res.notes[0]


def test_fine_tuning_mistakes_are_one_line(tiny, source, tmp_path):
    with pytest.raises(ConvzooError, match=r"init weights not found: .*nothing"):
        run(tiny, tmp_path, "a", init=tmp_path / "nothing")
    with pytest.raises(ConvzooError, match=r"init checkpoint .* does not fit this model: 'stem.0.weight' has shape"):
        run(tiny, tmp_path, "b", init=source.run_dir, model={"kwargs": {"bn": True, "width": 4}})
    other = {f"backbone.{k}": v for k, v in weights(source.run_dir / "best.safetensors").items()}
    save_file(other, str(tmp_path / "other.safetensors"))
    with pytest.raises(ConvzooError, match=r"other.safetensors") as e:  # another architecture's keys
        run(tiny, tmp_path, "o", init=tmp_path / "other.safetensors", model={"kwargs": {"bn": True}})
    assert "\n" not in str(e.value)
    with pytest.raises(ConvzooError, match=r"freeze 3: the model has 2 stages \(stem, conv\)"):
        run(tiny, tmp_path, "c", freeze=3)
    with pytest.raises(ConvzooError, match=r"unknown module to freeze 'stemm'; did you mean stem"):
        run(tiny, tmp_path, "d", freeze=["stemm"])


# --- best and last checkpoints ------------------------------------------------------------------
@pytest.fixture(scope="module")
def worse(tiny, tmp_path_factory):
    """A run whose last epoch is worse than the one before: in epoch 4 the classifier weights are zeroed after
    every step, so the validation accuracy falls to chance (0.25; the bias alone picks one class)."""
    return run(tiny, tmp_path_factory.mktemp("worse"), "worse", epochs=4, schedule={"name": "constant",
               "warmup_epochs": 0}, model={"kwargs": {"drop_rate": 0.0, "zero_from": 3}})


def test_evaluate_and_load_run_take_the_best_checkpoint_unless_last(worse):
    assert worse.history[-1]["val_acc"] <= 0.25 < worse.best["acc"] and worse.best_epoch < worse.epochs == 4
    d = worse.run_dir
    assert not same(weights(d / "best.safetensors"), weights(d / "last.safetensors"))
    assert evaluate(d, which="last") == pytest.approx(worse.metrics, abs=1e-6)
    assert evaluate(d) == pytest.approx(worse.test_best, abs=1e-6) != pytest.approx(worse.metrics, abs=1e-6)
    assert evaluate(d / "best.safetensors") == evaluate(d)
    results = json.loads((d / "results.json").read_text())
    assert results["test_best"] == worse.test_best and results["test"] == worse.metrics
    report = (d / "report.md").read_text()
    assert f"best checkpoint (epoch {worse.best_epoch})" in report
    assert f"| acc | {worse.metrics['acc']:.4f} | {worse.test_best['acc']:.4f} |" in report
    best_model, *_ = load_run(d)
    last_model, *_ = load_run(d, which="last")
    assert same(best_model.state_dict(), weights(d / "best.safetensors"))
    assert same(last_model.state_dict(), weights(d / "last.safetensors"))
    with pytest.raises(ConvzooError, match=r"which weights: 'best' or 'last', got 'first'"):
        load_run(d, which="first")


# --- early stopping -----------------------------------------------------------------------------
def test_early_stopping_on_the_monitored_metric(tiny, tmp_path, capsys):
    """Epoch 1 sets the best val acc; with lr 0 afterwards epochs 2 and 3 cannot improve on it, so with
    patience 2 the run stops before epoch 4 of 6, and says why."""
    res = run(tiny, tmp_path, "es", epochs=6, early_stopping={"patience": 2}, **FLAT)
    assert res.epochs == 3 and len(read_metrics_csv(res.run_dir)) == 3
    acc = res.history[0]["val_acc"]
    why = (f"stopped early after epoch 3 of 6: validation acc has not improved by more than 0 for 2 epochs "
           f"(patience 2; best {acc:.4g} at epoch 1)")
    assert res.stopped_early == why
    assert f"convzoo: {why}" in capsys.readouterr().out
    assert why in (res.run_dir / "report.md").read_text()
    assert json.loads((res.run_dir / "results.json").read_text())["stopped_early"] == why
    again = train(resume=res.run_dir, progress=False)  # resuming a stopped run does not train on
    assert again.epochs == 3 and again.stopped_early == why
    # min_delta: epoch 2 of an ordinary run must beat epoch 1 by more than 1.0 (impossible for accuracy)
    strict = run(tiny, tmp_path, "delta", epochs=4, early_stopping={"patience": 1, "min_delta": 1.0})
    assert strict.epochs == 2 and "by more than 1 for 1 epochs" in strict.stopped_early
    with pytest.raises(ConvzooError, match=r"early_stopping follows the validation metric"):
        run(tiny, tmp_path, "noval", early_stopping={"patience": 1}, data={"eval_split": None})


# --- per-step logging, TensorBoard --------------------------------------------------------------
def test_steps_csv_logs_step_lr_and_loss(tiny, tmp_path):
    res = run(tiny, tmp_path, "steps", epochs=2, log_every_n_steps=2,
              schedule={"name": "cosine", "warmup_epochs": 0, "interval": "step"})
    rows = read_steps_csv(res.run_dir)
    spe = 96 // 16
    assert [r["step"] for r in rows] == list(range(2, 2 * spe + 1, 2))
    assert [r["epoch"] for r in rows] == pytest.approx([s / spe for s in range(2, 2 * spe + 1, 2)])
    # step s (1-based) runs at the per-step cosine's closed form at t = (s - 1) / spe of 2 epochs
    assert [r["lr"] for r in rows] == pytest.approx([0.1 * _cos((s - 1) / spe, 2) for s in range(2, 13, 2)])
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)
    header = (res.run_dir / "steps.csv").read_text().splitlines()[0]
    assert header == "step,epoch,lr,loss"
    assert list(read_metrics_csv(res.run_dir)[0])[:3] == ["epoch", "train_loss", "lr"]  # epoch rows unchanged


def test_tensorboard_without_the_package_is_one_line(tiny, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConvzooError, match=r"^tensorboard: true needs the tensorboard package: pip install tensorboard$"):
        run(tiny, tmp_path, "tb", tensorboard=True)


def test_tensorboard_writer(tiny, tmp_path):
    # tensorboard is in the dev extra
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = run(tiny, tmp_path, "tb", epochs=1, log_every_n_steps=1, tensorboard=True)
    events = EventAccumulator(str(res.run_dir / "tensorboard")).Reload()
    assert {"train/loss_step", "lr_step", "epoch/train_loss", "epoch/val_acc"} <= set(events.Tags()["scalars"])
    steps = events.Scalars("train/loss_step")
    assert [e.step for e in steps] == [r["step"] for r in read_steps_csv(res.run_dir)] == list(range(1, 7))
    assert [e.value for e in steps] == pytest.approx([r["loss"] for r in read_steps_csv(res.run_dir)], rel=1e-6)


# --- mid-epoch checkpoints ----------------------------------------------------------------------
def test_resume_from_a_mid_epoch_checkpoint_is_exact(tiny, tmp_path):
    """checkpoint_every_n_steps 4 with 6 steps per epoch: a checkpoint after global step 8 (epoch 2, step 2);
    killed at step 5 of epoch 2, the resumed run skips the 2 steps done and ends with exactly the weights,
    metrics, history and step log of the uninterrupted run."""
    over = {"epochs": 3, "checkpoint_every_n_steps": 4, "log_every_n_steps": 1}
    full = run(tiny, tmp_path, "full", **over)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny, tmp_path, "killed", callbacks=[Crash(epoch=1, step=4)], **over)
    d = tmp_path / "killed"
    state = load_state(d / "state.pt")
    assert (state["epoch"], state["step"]) == (1, 2) and len(state["history"]) == 1
    resumed = train(resume=d, progress=False)
    assert same(weights(d / "last.safetensors"), weights(full.run_dir / "last.safetensors"))
    untimed = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]
    assert untimed(resumed.history) == untimed(full.history) and resumed.metrics == full.metrics
    assert read_steps_csv(d) == read_steps_csv(full.run_dir) and len(read_steps_csv(d)) == 18


# --- curves.png ---------------------------------------------------------------------------------
def test_curves_loss_on_a_log_axis_and_an_lr_panel():
    history = [{"epoch": e, "train_loss": 1.0 / e, "lr": 0.1 / e, "val_loss": 50.0 if e == 2 else 1.0 / e,
                "val_acc": 0.5} for e in range(1, 5)]
    steps = [{"step": s, "epoch": s / 2, "lr": 0.1, "loss": 1.0} for s in range(1, 9)]
    fig = curves_figure(history, steps, "acc")
    loss, metric, lr = fig.axes
    assert loss.get_yscale() == "log" and metric.get_title() == "validation acc" and lr.get_title() == "learning rate"
    assert len(curves_figure(history, [], "f1").axes) == 2  # no monitored column: loss and lr
    negative = [{**r, "train_loss": -1.0} for r in history]
    assert curves_figure(negative, [], "acc").axes[0].get_yscale() == "linear"


# --- the engine's user mistakes -----------------------------------------------------------------
def test_eval_split_data_and_accelerator_mistakes_are_one_line(tiny, worse, tmp_path):
    with pytest.raises(ConvzooError, match=r"^unknown split 'foo': the splits are train, val, test$"):
        evaluate(worse.run_dir, split="foo")
    with pytest.raises(ConvzooError, match=r"^data set 'digits' does not fit the run worse: it has classes 10; the "
                       r"model was trained on '_tiny_blobs' with classes 4 \(fine-tune"):
        evaluate(worse.run_dir, data="digits")
    with pytest.raises(ConvzooError, match=r"it has classes 3; .* with classes 4"):
        evaluate(worse.run_dir, overrides=["data.kwargs.classes=3"])
    for call in (lambda: evaluate(worse.run_dir, accelerator="tpu"),
                 lambda: train(tiny.recipe(), out_dir=tmp_path, accelerator="tpu", progress=False)):
        with pytest.raises(ConvzooError, match=r"^accelerator 'tpu' is not available on this machine; available: "
                           r"auto, cpu"):
            call()
    bare = tmp_path / "bare"
    shutil.copytree(worse.run_dir, bare)
    (bare / "best.safetensors").unlink()
    with pytest.raises(ConvzooError, match=r"has no best.safetensors yet"):
        evaluate(bare)


def test_data_that_does_not_fit_the_model_is_one_line(tiny, tmp_path):
    with pytest.raises(ConvzooError, match=r"^model '_tiny_net' cannot take the training batches of '_tiny_blobs' "
                       r"\(inputs \(16, 1, 8, 8\)\): .*channels.*; give the data another size") as e:
        run(tiny, tmp_path, "chans", model={"kwargs": {"in_chans": 3}})
    assert "\n" not in str(e.value)
