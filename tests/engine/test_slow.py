"""The two end-to-end guarantees, with real processes: resume after SIGKILL, and DDP == one process."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from convzoo.engine import train
from convzoo.engine.checkpoint import load_state
from convzoo.engine.report import read_steps_csv

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # same arithmetic as this process (conftest: 1 thread)


def weights(run_dir):
    return load_file(str(Path(run_dir) / "last.safetensors"))


METHODS = [pytest.param("supervised", id="supervised"),
           pytest.param("_tiny_aux", id="head-outside-the-model")]


def _state_of_head(run_dir):
    return {k: v for k, v in load_state(Path(run_dir) / "state.pt")["method"].items() if k.startswith("aux.")}


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_resume_after_sigkill_equals_uninterrupted(tiny, tmp_path, recipe_file, method):
    # dropout + random augmentation + warmup/cosine + momentum; with a trainable head outside the model
    recipe = recipe_file(tiny.recipe(method={"name": method}))
    marker = tmp_path / "paused"
    proc = subprocess.Popen([sys.executable, str(HERE / "tiny_run.py"), str(recipe), str(tmp_path), "killed",
                             "--pause", "1", str(marker)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240  # a guard against hanging, not a timing assertion
        while not marker.exists():
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the run never reached epoch 2"
            time.sleep(0.2)
        # epoch 1 is checkpointed; the process is in the middle of epoch 2
        assert load_state(tmp_path / "killed" / "state.pt")["epoch"] == 1
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    resumed = train(resume=tmp_path / "killed", progress=False)
    reference = train(str(recipe), out_dir=tmp_path, run_name="reference", progress=False)
    a, b = weights(resumed.run_dir), weights(reference.run_dir)
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    assert resumed.epochs == 3 and resumed.metrics == pytest.approx(reference.metrics, abs=1e-6)
    ha, hb = _state_of_head(resumed.run_dir), _state_of_head(reference.run_dir)
    assert ha.keys() == hb.keys() and (method == "supervised") == (not hb)
    for k in hb:  # the head outside the model was checkpointed, restored and trained on identically
        torch.testing.assert_close(ha[k], hb[k], rtol=0, atol=1e-6)
    if method != "supervised":  # its loss parts are logged per epoch, and equal after the resume
        aux = lambda res: [r["train_aux"] for r in res.history]
        assert aux(resumed) == pytest.approx(aux(reference), abs=1e-6) and aux(reference)[-1] < aux(reference)[0]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_cpu_processes_equal_one_process(tiny, tmp_path, recipe_file, method):
    # no dropout / augmentation (they draw per-process random numbers) and no BatchNorm (per-process
    # statistics; SyncBatchNorm needs GPUs): then DDP on the same global batch is the same arithmetic
    # (with mid-epoch checkpoints and a step log: their collectives run on every process)
    recipe = recipe_file(tiny.recipe(model={"kwargs": {"drop_rate": 0.0}}, data={"kwargs": {"jitter": 0.0}},
                                     epochs=2, method={"name": method}, checkpoint_every_n_steps=4,
                                     log_every_n_steps=1))
    cmd = [sys.executable, "-m", "convzoo.engine", "train", str(recipe), "--import", str(HERE / "tiny_plugin.py"),
           "--devices", "2", "--accelerator", "cpu", "--no-progress", "--out", str(tmp_path), "--name", "ddp"]
    out = subprocess.run(cmd, check=False, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = json.loads(out.stdout.strip().splitlines()[-1])  # rank 0 prints one JSON line
    one = train(str(recipe), out_dir=tmp_path, run_name="one", accelerator="cpu", progress=False)
    a, b = weights(tmp_path / "ddp"), weights(one.run_dir)
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
    ha, hb = _state_of_head(tmp_path / "ddp"), _state_of_head(one.run_dir)
    assert ha.keys() == hb.keys() and (method == "supervised") == (not hb)
    for k in hb:  # DDP synchronised the head outside the model too
        torch.testing.assert_close(ha[k], hb[k], rtol=0, atol=1e-5)
    assert printed["test"] == pytest.approx(one.metrics, abs=1e-5)
    steps_a, steps_b = read_steps_csv(tmp_path / "ddp"), read_steps_csv(one.run_dir)
    assert [r["step"] for r in steps_a] == [r["step"] for r in steps_b] == list(range(1, 13))
    assert [r["loss"] for r in steps_a] == pytest.approx([r["loss"] for r in steps_b], abs=1e-5)
    assert json.loads((tmp_path / "ddp" / "results.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["ddp", "one"]
