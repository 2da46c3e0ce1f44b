"""Training: reproducibility, run folder, evaluate/load_run, resume, bf16, EMA, clipping, errors."""

import csv
import importlib
import json
import math
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file

from convzoo.engine import evaluate, load_recipe, load_run, train
from convzoo.engine.checkpoint import load_state
from convzoo.errors import ConvzooError


def run(tiny, tmp_path, name, callbacks=(), **over):
    return train(tiny.recipe(**over), out_dir=tmp_path, run_name=name, progress=False, callbacks=callbacks)


def weights(run_dir, which="last"):
    return load_file(str(run_dir / f"{which}.safetensors"))


def csv_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def base(tiny, tmp_path_factory):
    """One 3-epoch run (dropout, augmentation, warmup + cosine) shared by several tests."""
    return run(tiny, tmp_path_factory.mktemp("runs"), "base")


def test_same_seed_same_weights_other_seed_other_weights(tiny, base, tmp_path):
    again = run(tiny, tmp_path, "again")
    assert same(weights(base.run_dir), weights(again.run_dir))
    assert again.metrics == base.metrics and again.history[-1]["train_loss"] == base.history[-1]["train_loss"]
    other = run(tiny, tmp_path, "seed1", seed=1)
    assert not same(weights(base.run_dir), weights(other.run_dir))


def test_run_folder_contents(base):
    d = base.run_dir
    for f in ("config.yaml", "data_info.yaml", "last.safetensors", "best.safetensors", "state.pt", "metrics.csv",
              "curves.png", "report.md", "results.json", "confusion_matrix.png"):
        assert (d / f).is_file(), f
    rows = csv_rows(d)
    assert len(rows) == base.epochs == 3
    assert list(rows[0]) == ["epoch", "train_loss", "lr", "val_loss", "val_acc", "val_acc5", "val_f1", "time"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.1, 0.05])  # warmup 1, cosine over 2
    assert load_recipe(d / "config.yaml")["model"]["kwargs"] == {"drop_rate": 0.2}
    report = (d / "report.md").read_text()
    assert f"| acc | {base.metrics['acc']:.4f} |" in report and "![confusion_matrix](confusion_matrix.png)" in report
    assert f"best validation epoch: {base.best_epoch} of 3" in report
    results = json.loads((d / "results.json").read_text())
    assert results["test"] == base.metrics and results["epochs"] == 3
    best_row = rows[base.best_epoch - 1]
    assert float(best_row["val_acc"]) == base.best["acc"] == max(float(r["val_acc"]) for r in rows)


def test_evaluate_and_load_run_reproduce_the_run(base):
    assert evaluate(base.run_dir, which="last") == pytest.approx(base.metrics, abs=1e-6)
    val = evaluate(base.run_dir, split="val", which="last")
    assert val["acc"] == base.history[-1]["val_acc"] and val["loss"] == pytest.approx(base.history[-1]["val_loss"])
    best = evaluate(base.run_dir / "best.safetensors", split="val")
    assert best["acc"] == base.best["acc"]
    model, cfg, task, info = load_run(base.run_dir)
    assert cfg["name"] == "tiny" and info.num_classes == 4 and info.class_names == ("a", "b", "c", "d")
    x = torch.randn(2, 1, 8, 8)
    assert len(task.predict(model, x)) == 2 and not model.training


def test_missing_and_corrupt_runs_are_one_line_errors(base, tmp_path):
    with pytest.raises(ConvzooError, match=r"run folder not found"):
        evaluate(tmp_path / "nope")
    with pytest.raises(ConvzooError, match=r"not a convzoo run folder \(no config.yaml\)"):
        evaluate(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(base.run_dir, bad)
    (bad / "last.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConvzooError, match=r"corrupt or unreadable checkpoint .*last.safetensors") as e:
        evaluate(bad, which="last")
    assert "\n" not in str(e.value)
    (bad / "state.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ConvzooError, match=r"corrupt or unreadable training state .*state.pt"):
        train(resume=bad, progress=False)
    with pytest.raises(ConvzooError, match=r"already exists; resume it with --resume"):
        train(yaml.safe_load((base.run_dir / "config.yaml").read_text()), out_dir=base.run_dir.parent,
              run_name=base.run_dir.name, progress=False)


class Crash:
    """Raises in the middle of epoch 2 (0-based 1), after epoch 1's checkpoint is written."""

    def on_train_batch_end(self, epoch, step):
        if epoch == 1 and step == 2:
            raise RuntimeError("simulated crash")


def test_resume_after_crash_equals_uninterrupted(tiny, base, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny, tmp_path, "crashed", callbacks=[Crash()])
    d = tmp_path / "crashed"
    assert load_state(d / "state.pt")["epoch"] == 1 and len(csv_rows(d)) == 1
    resumed = train(resume=d, progress=False)
    assert same(weights(d), weights(base.run_dir))
    untimed = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]
    assert resumed.metrics == base.metrics and untimed(resumed.history) == untimed(base.history)
    longer = train(resume=d, overrides=["epochs=4"], progress=False)  # continue for one more epoch
    assert longer.epochs == 4 and len(csv_rows(d)) == 4


def test_bf16_mixed_trains(tiny, base, tmp_path):
    res = run(tiny, tmp_path, "bf16", precision="bf16-mixed", epochs=2)
    assert all(torch.isfinite(torch.tensor(v)) for v in res.metrics.values())
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] + 0.05
    assert not same(weights(res.run_dir), weights(base.run_dir))  # the precision was applied
    assert evaluate(res.run_dir, which="last") == pytest.approx(res.metrics, abs=1e-6)


class Watch:
    """Keeps the initial weights and the trained weights after every step (and a manual EMA)."""

    def __init__(self, decay=None):
        self.decay, self.ema = decay, None

    def on_train_start(self, model):
        self.model = model
        self.initial = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_train_batch_end(self, step):
        w = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if self.decay is not None:
            self.ema = w if self.ema is None else {k: self.decay * self.ema[k] + (1 - self.decay) * w[k] for k in w}


def test_ema_is_what_gets_evaluated_and_does_not_change_training(tiny, base, tmp_path):
    watch = Watch(decay=0.8)
    res = run(tiny, tmp_path, "ema", callbacks=[watch], ema=0.8)
    raw = {k.removeprefix("model."): v for k, v in load_state(res.run_dir / "state.pt")["method"].items()}
    assert same(raw, weights(base.run_dir))  # training itself is unchanged by the EMA
    saved = weights(res.run_dir)
    assert not same(saved, raw)
    for k in saved:
        torch.testing.assert_close(saved[k], watch.ema[k], rtol=1e-5, atol=1e-6)
    assert res.metrics != base.metrics and evaluate(res.run_dir, which="last") == pytest.approx(res.metrics, abs=1e-6)


def test_gradient_clipping_bounds_the_step(tiny, tmp_path):
    one_step = {"epochs": 1, "batch_size": 96, "optimizer": {"lr": 1.0, "kwargs": {}},
                "schedule": {"name": "constant", "warmup_epochs": 0}, "model": {"kwargs": {"drop_rate": 0.0}}}

    def step_norm(clip):
        watch = Watch()
        res = run(tiny, tmp_path, f"clip{clip}", callbacks=[watch], grad_clip=clip, **one_step)
        after = weights(res.run_dir)
        return torch.stack([(after[k] - watch.initial[k]).norm() for k in after]).norm().item()

    assert step_norm(0.01) == pytest.approx(0.01, rel=1e-4)  # lr 1 x clipped global grad norm
    assert step_norm(None) > 0.05


def test_a_split_smaller_than_one_batch_trains_in_one_batch(tiny, tmp_path, capsys):
    res = run(tiny, tmp_path, "big", batch_size=4096, epochs=1)
    assert "fewer than one batch of 4096: training with batches of" in capsys.readouterr().err
    assert res.epochs == 1


def test_user_errors_before_training(tiny, tmp_path):
    with pytest.raises(ConvzooError, match=r"batch_size 15 is the global batch and must divide evenly over 2"):
        train(tiny.recipe(batch_size=15), devices=2, out_dir=tmp_path, progress=False)
    with pytest.raises(ConvzooError, match=r"model '_tiny_net' rejects model.kwargs"):
        run(tiny, tmp_path, "kw", model={"kwargs": {"depth": 3}})
    with pytest.raises(ConvzooError, match=r"training diverged"):
        run(tiny, tmp_path, "nan", epochs=1, optimizer={"lr": 1e30})


def test_plateau_schedule_follows_the_monitored_validation_metric(tiny, tmp_path):
    res = run(tiny, tmp_path, "plateau", epochs=4, optimizer={"lr": 0.2},
              schedule={"name": "plateau", "warmup_epochs": 0, "kwargs": {"factor": 0.5, "patience": 0}})
    lrs, accs = [r["lr"] for r in res.history], [r["val_acc"] for r in res.history]
    best, expected = -1.0, [0.2]
    for acc in accs[:-1]:  # task.monitor is "acc" (max): halve after every epoch without a new best
        improved = acc > best * (1 + 1e-4)
        best = max(best, acc)
        expected.append(expected[-1] * (1.0 if improved else 0.5))
    assert lrs == pytest.approx(expected)


def test_module_entry_point_reports_user_errors_in_one_line(tmp_path, capsys):
    from convzoo.engine.__main__ import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: m}\ndata: {name: d}\noptimizer: {lrr: 0.1}\n")
    assert main(["train", str(bad), "--no-progress", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == "error: bad recipe key 'optimizer.lrr'; did you mean 'optimizer.lr'?\n"


def test_model_hooks_regularization_loss_and_post_optimizer_step(tiny, tmp_path):
    """``regularization_loss(epoch)`` joins the loss (None before its start epoch); ``post_optimizer_step``
    of any submodule runs after every step (here: clamps the classifier), as DCLS training needs (paper 39)."""
    kw = {"drop_rate": 0.2}
    plain = run(tiny, tmp_path, "plain", epochs=2)
    late = run(tiny, tmp_path, "late", epochs=2, model={"kwargs": {**kw, "penalty": 1.0, "penalty_from": 1}})
    early = run(tiny, tmp_path, "early", epochs=2, model={"kwargs": {**kw, "penalty": 1.0, "penalty_from": 0}})
    clamped = run(tiny, tmp_path, "clamped", epochs=2, model={"kwargs": {**kw, "clamp": 0.05}})
    p, lt, e = plain.history, late.history, early.history
    assert lt[0]["train_loss"] == p[0]["train_loss"]  # epoch 0: the penalty returns None
    assert lt[1]["train_loss"] > p[1]["train_loss"] and e[0]["train_loss"] > p[0]["train_loss"]
    assert weights(late.run_dir)["fc.weight"].norm() < weights(plain.run_dir)["fc.weight"].norm()
    assert weights(plain.run_dir)["fc.weight"].abs().max() > 0.05
    assert weights(clamped.run_dir)["fc.weight"].abs().max() <= 0.05


def test_gradient_accumulation_equals_the_larger_batch(tiny, tmp_path):
    """accumulate: 2 with half the batch takes the same optimizer steps as the full batch (mean of the
    two half-batch gradients = the full-batch gradient): same weights up to float summation order."""
    plain = {"model": {"kwargs": {"drop_rate": 0.0}}, "data": {"kwargs": {"jitter": 0.0}}, "epochs": 2,
             "optimizer": {"name": "sgd", "lr": 0.1, "kwargs": {}}}
    full = run(tiny, tmp_path, "full", batch_size=32, **plain)
    accumulated = run(tiny, tmp_path, "acc", batch_size=16, accumulate=2, **plain)
    a, b = weights(accumulated.run_dir), weights(full.run_dir)
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    halves = run(tiny, tmp_path, "halves", batch_size=16, **plain)  # twice the steps: other weights
    assert not all(torch.allclose(weights(halves.run_dir)[k], b[k], atol=1e-4) for k in b)


def test_per_step_schedule_in_a_run(tiny, tmp_path):
    res = run(tiny, tmp_path, "perstep", epochs=3, batch_size=16,
              schedule={"name": "cosine", "warmup_epochs": 0, "interval": "step"})
    steps = 96 // 16  # per epoch
    # the lr logged for epoch e is the one of its first step: the closed form at t = e
    assert [r["lr"] for r in res.history] == pytest.approx([0.1 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)])
    state = load_state(res.run_dir / "state.pt")
    assert state["schedules"][0]["inner"]["last_epoch"] == 3 * steps


def test_mixup_batch_transform(tiny, tmp_path):
    from convzoo.engine.build import build_batch_transform
    from convzoo.engine.recipe import load_recipe

    cfg = load_recipe(tiny.recipe(batch_transform={"name": "mixup", "kwargs": {"mixup_alpha": 1.0}}))
    info = tiny.TinyBlobs("train").info
    fn = build_batch_transform(cfg, info)
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8) % 4
    torch.manual_seed(0)
    mx, my = fn((x, y))
    assert my.shape == (8, 4) and torch.allclose(my.sum(1), torch.ones(8))
    lam = my[0, y[0]] if y[0] != y[-1] else None  # v2.MixUp pairs item i with item i - 1 (a roll)
    if lam is not None:
        torch.testing.assert_close(mx[0], lam * x[0] + (1 - lam) * x[-1])
    res = run(tiny, tmp_path, "mixup", epochs=2, batch_transform={"name": "mixup_cutmix", "kwargs": {}})
    assert math.isfinite(res.history[-1]["train_loss"]) and 0 <= res.metrics["acc"] <= 1
    with pytest.raises(ConvzooError, match=r"batch_transform takes kwargs"):
        run(tiny, tmp_path, "badmix", batch_transform={"name": "mixup", "kwargs": {"alpha": 1}})


@pytest.mark.slow
def test_fast_mode_trains_channels_last_bf16_compiled(tiny, tmp_path):
    res = run(tiny, tmp_path, "fast", epochs=2, fast=True)
    cfg = load_recipe(res.run_dir / "config.yaml")
    assert cfg["fast"] and cfg["precision"] == "32-true"  # fast turns fp32 into bf16 autocast at run time
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] + 0.05
    assert evaluate(res.run_dir, which="last") == pytest.approx(res.metrics, abs=1e-2)


def test_channels_last_key_converts_batches_without_compiling(tiny, tmp_path, monkeypatch):
    """``channels_last: true``: every training and evaluation batch goes channels_last, nothing is compiled,
    and in fp32 the run is the plain run up to summation order."""
    import convzoo.engine.fit as fit_module

    plain = run(tiny, tmp_path, "plain_layout", epochs=1)
    calls = []
    real = fit_module.channels_last_batch
    monkeypatch.setattr(fit_module, "channels_last_batch", lambda b: calls.append(1) or real(b))
    monkeypatch.setattr(torch.nn.Module, "compile", lambda *a, **k: pytest.fail("channels_last compiled the model"))
    res = run(tiny, tmp_path, "channels_last", epochs=1, channels_last=True)
    assert calls and load_recipe(res.run_dir / "config.yaml")["channels_last"]
    assert res.history[0]["train_loss"] == pytest.approx(plain.history[0]["train_loss"], rel=1e-4)
    a, b = weights(res.run_dir), weights(plain.run_dir)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-4) for k in b)
    evaluate_module = importlib.import_module("convzoo.engine.evaluate")  # (the package exports the function)

    seen = []
    real_eval = evaluate_module.channels_last_batch
    monkeypatch.setattr(evaluate_module, "channels_last_batch", lambda b: seen.append(1) or real_eval(b))
    assert evaluate(res.run_dir, which="last") == pytest.approx(res.metrics, abs=1e-6) and seen


def test_manual_optimisation_two_optimizers_resume_exactly(tiny, tmp_path):
    """A method that declares two optimizers and steps them itself: both are checkpointed and restored."""
    over = {"method": {"name": "_tiny_alternating"}, "optimizer": {"name": "adam", "lr": 0.01, "kwargs": {}}}
    full = run(tiny, tmp_path, "alt", **over)
    state = load_state(full.run_dir / "state.pt")
    assert len(state["optimizers"]) == 2 and len(state["schedules"]) == 2
    assert {"train_ce", "train_aux"} <= set(full.history[-1])
    assert full.history[-1]["train_aux"] < full.history[0]["train_aux"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny, tmp_path, "alt_crashed", callbacks=[Crash()], **over)
    resumed = train(resume=tmp_path / "alt_crashed", progress=False)
    assert same(weights(resumed.run_dir), weights(full.run_dir))
    a, b = load_state(resumed.run_dir / "state.pt")["method"], state["method"]
    assert all(torch.equal(a[k], b[k]) for k in b)  # the auxiliary head too
