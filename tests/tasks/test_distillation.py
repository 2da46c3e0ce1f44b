"""The DeiT-style distillation method (used by paper 18, LSNet, for its distilled results).

Checks the hard and soft losses against their formulas, that the student's two heads are used
(class head on labels, distillation head on the teacher), a student without a distillation head,
evaluation on the ordinary output, the frozen teacher loaded from safetensors weights, bad options,
and one short engine run on the bundled digits.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import convzoo
from convzoo.errors import ConvzooError
from convzoo.methods import build_method, list_methods
from convzoo.tasks import build_task

pytestmark = pytest.mark.paper(18)

TINY = {"embed_dim": (16, 32, 48, 64), "depth": (0, 2, 2, 2), "num_heads": (1, 1, 1, 2), "img_size": 16}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only fight over the shared cores
    yield
    torch.set_num_threads(threads)


def _batch(n: int = 6, classes: int = 4):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 16, 16, generator=g), torch.randint(0, classes, (n,), generator=g)


def _student(**kw):
    torch.manual_seed(1)
    model = convzoo.create_model("lsnet_t_distill", num_classes=4, in_chans=1, **TINY, **kw)
    with torch.no_grad():
        model.head_dist.l.weight.normal_()  # make the two heads differ
    return model


def _method(student, teacher_path=None, label_smoothing=0.0, **kw):
    task = build_task("classification", label_smoothing=label_smoothing)
    return build_method("distillation", student, task, None, teacher="lsnet_t",
                        teacher_weights=str(teacher_path) if teacher_path else None, teacher_kwargs=TINY, **kw)


def _teacher(tmp_path):
    torch.manual_seed(2)
    teacher = convzoo.create_model("lsnet_t", num_classes=4, in_chans=1, **TINY)
    with torch.no_grad():
        teacher.head.l.weight.normal_()
    path = convzoo.save_weights(teacher.eval(), tmp_path / "teacher.safetensors")
    return path, teacher


def test_registered():
    assert "distillation" in list_methods()


@pytest.mark.claim(paper=18, artefact="distillation",
                   claim="hard: 0.5 CE(class head, y) + 0.5 CE(dist head, argmax teacher); teacher frozen from safetensors")
def test_hard_loss_is_half_ce_labels_half_ce_teacher_argmax(tmp_path):
    path, teacher = _teacher(tmp_path)
    student = _student().train()
    method = _method(student, path)
    x, y = _batch()
    cls, dist, t = method.heads(x)
    # the method's teacher is the saved one, frozen, in eval mode and outside the checkpointed state
    with torch.no_grad():
        torch.testing.assert_close(t, teacher(x))
    assert not method.teacher.training and not any(p.requires_grad for p in method.teacher.parameters())
    assert all(k.startswith("model.") for k in method.state_dict())
    ref_cls, ref_dist = student(x, return_both=True)
    torch.testing.assert_close(cls, ref_cls)
    torch.testing.assert_close(dist, ref_dist)
    loss = method.distillation_loss(cls, dist, t, y)["loss"]
    expected = 0.5 * F.cross_entropy(cls, y) + 0.5 * F.cross_entropy(dist, t.argmax(-1))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(method.training_step((x, y))["loss"], expected)
    assert (t.argmax(-1) != y).any()  # the two targets differ, so the test tells the terms apart
    # gradients: labels reach only the class head, the teacher's labels only the distillation head
    student.zero_grad()
    method.distillation_loss(cls, dist, t, y)["loss"].backward()
    assert student.head.l.weight.grad.abs().sum() > 0 and student.head_dist.l.weight.grad.abs().sum() > 0
    student.zero_grad()
    _, dist2 = student(x, return_both=True)
    F.cross_entropy(dist2, t.argmax(-1)).backward()
    assert student.head.l.weight.grad is None or student.head.l.weight.grad.abs().sum() == 0


@pytest.mark.claim(paper=18, artefact="distillation",
                   claim="soft (KL with temperature) and label smoothing as DeiT's DistillationLoss")
def test_soft_loss_and_label_smoothing(tmp_path):
    method = _method(_student(), distillation_type="soft", alpha=0.3, tau=2.0, label_smoothing=0.1)
    g = torch.Generator().manual_seed(3)
    cls, dist, t = (torch.randn(5, 4, generator=g) for _ in range(3))
    y = torch.tensor([0, 1, 2, 3, 0])
    p_t = (t / 2).softmax(-1)
    kl = (p_t * (p_t.log() - (dist / 2).log_softmax(-1))).sum() * 4 / dist.numel()
    expected = 0.7 * F.cross_entropy(cls, y, label_smoothing=0.1) + 0.3 * kl
    torch.testing.assert_close(method.distillation_loss(cls, dist, t, y)["loss"], expected)


@pytest.mark.claim(paper=18, artefact="distillation",
                   claim="evaluation on the mean of the heads; students without a distillation head")
def test_student_without_distillation_head_uses_its_logits_twice(tmp_path):
    path, _ = _teacher(tmp_path)
    torch.manual_seed(4)
    student = convzoo.create_model("lsnet_t", num_classes=4, in_chans=1, **TINY).train()
    x, _ = _batch()
    cls, dist, _ = _method(student, path).heads(x)
    assert cls is dist


@pytest.mark.claim(paper=18, artefact="distillation",
                   claim="evaluation on the mean of the heads; students without a distillation head")
def test_eval_is_plain_classification_on_the_mean_of_the_heads(tmp_path):
    path, _ = _teacher(tmp_path)
    student = _student()
    method = _method(student, path).eval()
    x, y = _batch()
    with torch.no_grad():
        out, targets = method(x_y := (x, y))  # eval mode: the validation step
        cls, dist = student(x, return_both=True)
    assert isinstance(out, torch.Tensor) and x_y[1] is targets
    torch.testing.assert_close(out, (cls + dist) / 2)
    torch.testing.assert_close(method.task.loss(out, targets), F.cross_entropy(out, y))
    assert method.teacher is None  # evaluation never builds the teacher


def test_bad_options():
    task = build_task("classification")
    for kw in ({"distillation_type": "medium"}, {"alpha": 1.5}, {"tau": 0.0}):
        with pytest.raises(ConvzooError):
            build_method("distillation", _student(), task, None, teacher="lsnet_t", **kw)
    with pytest.raises(ConvzooError):
        build_method("distillation", _student(), task, None, teacher="no_such_teacher")


@pytest.mark.claim(paper=18, artefact="distillation", claim="trains through the engine")
def test_short_engine_run_on_digits(tmp_path):
    from convzoo.engine import train

    _teacher(tmp_path)
    recipe = {
        "name": "distill_smoke", "paper": 18, "description": "smoke", "source": "test",
        "model": {"name": "lsnet_t_distill", "kwargs": dict(TINY)},
        "data": {"name": "digits", "kwargs": {"size": 16}},
        "method": {"name": "distillation", "kwargs": {
            "teacher": "lsnet_t", "teacher_weights": str(tmp_path / "teacher.safetensors"),
            "teacher_kwargs": {**TINY, "num_classes": 4}}},
        "optimizer": {"name": "adamw", "lr": 1e-3},
        "epochs": 1, "batch_size": 128,
    }
    # a 4-class teacher cannot teach a 10-class student: a one-line error on the first batch
    with pytest.raises(ConvzooError):
        train(recipe, out_dir=tmp_path / "runs", progress=False)
    recipe["method"]["kwargs"] = {"teacher": "lsnet_t", "teacher_kwargs": dict(TINY)}  # random 10-class teacher
    result = train(recipe, out_dir=tmp_path / "runs", progress=False)
    assert result is not None and 0.0 <= result.metrics["acc"] <= 1.0
