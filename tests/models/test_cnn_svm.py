"""Paper 40 (CNN-SVM): the L2-SVM loss and decision rules, the frozen-feature equivalence with
scikit-learn's LinearSVC, the base CNN, short training on digits, and the recipes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import convzoo
from convzoo.errors import ConvzooError
from convzoo.layers.svm import L2SVMLoss, pm_one_targets, squared_hinge, svm_decision
from convzoo.registry import count_params
from convzoo.tasks import build_task

pytestmark = pytest.mark.paper(40)


@pytest.mark.claim(paper=40, artefact="l2_svm_loss", claim="targets 0 -> -1 (one-vs-rest)")
def test_targets_map_zero_to_minus_one():
    y = pm_one_targets(torch.tensor([2, 0]), 3)
    assert y.tolist() == [[-1, -1, 1], [1, -1, -1]]


@pytest.mark.claim(paper=40, artefact="l2_svm_loss", claim="squared hinge on a hand-computed example")
def test_loss_on_hand_computed_example():
    # scores o and labels; y = [[1,-1,-1], [-1,1,-1]]
    o = torch.tensor([[2.0, -0.5, 0.3], [-1.0, 0.5, -2.0]])
    t = torch.tensor([0, 1])
    # max(0, 1 - y*o): [[0, 0.5, 1.3], [0, 0.5, 0]] -> squares sum 0.25 + 1.69 + 0.25 = 2.19, mean / 6
    assert squared_hinge(o, t).item() == pytest.approx(2.19 / 6)
    readout = nn.Linear(2, 3)
    with torch.no_grad():
        readout.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]))  # mean(W^2) = 30 / 6 = 5
    assert L2SVMLoss(C=2.0, readout=readout)(o, t).item() == pytest.approx(5 + 2 * 2.19 / 6)
    # not Crammer-Singer: torch's MultiMarginLoss(p=2) gives another value on the same scores
    assert nn.MultiMarginLoss(p=2)(o, t).item() != pytest.approx(2.19 / 6)


@pytest.mark.claim(paper=40, artefact="l2_svm_loss", claim="zero gradient beyond the margin")
def test_zero_gradient_for_samples_beyond_the_margin():
    o = torch.tensor([[3.0, -2.0, -1.0], [0.2, 0.1, -1.5]], requires_grad=True)
    squared_hinge(o, torch.tensor([0, 1])).backward()
    assert torch.equal(o.grad[0], torch.zeros(3))  # every y*o >= 1: no loss, no gradient
    assert (o.grad[1] != 0).sum() == 2  # class 2 of sample 1 also satisfies its margin
    assert o.grad[1, 2] == 0


@pytest.mark.claim(paper=40, artefact="l2_svm_loss", claim="regulariser = mean(W^2) of the readout only")
def test_regulariser_is_mean_square_of_the_readout_only():
    model = convzoo.create_model("cnn_svm_mnist").train()
    task = build_task("classification", loss="l2svm", svm_c=0.0)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 9, 1])
    out, y = task.forward(model, (x, y))
    loss = task.loss(out, y)
    assert loss.item() == pytest.approx(model.head.fc.weight.pow(2).mean().item(), rel=1e-6)
    loss.backward()
    w = model.head.fc.weight
    torch.testing.assert_close(w.grad, 2 * w.detach() / w.numel())
    for name, p in model.named_parameters():
        if name != "head.fc.weight":
            assert p.grad is None or not p.grad.any(), name  # biases and hidden layers are not penalised
    other = convzoo.create_model("cnn_svm_mnist")  # the readout of the model run now is the one penalised
    out, y = task.forward(other, (x, y))
    assert task.loss(out, y).item() == pytest.approx(other.head.fc.weight.pow(2).mean().item(), rel=1e-6)


@pytest.mark.claim(paper=40, artefact="l2_svm_loss",
                   claim="decision: argmax, and the official argmax(sign) quirk")
def test_decision_rules_argmax_and_official_sign_quirk():
    s = torch.tensor([[-0.9, -0.2, -0.5],   # all negative: official -> class 0, argmax -> 1
                      [0.3, 2.0, -1.0],     # two positive: official ties -> first positive (0), argmax -> 1
                      [-1.0, 0.4, -0.3]])   # one positive: both -> 1
    assert svm_decision(s).tolist() == [1, 1, 1]
    assert svm_decision(s, "official").tolist() == [0, 0, 1]
    # the task's metric scores rank the same way for each rule (top-1 = the rule's decision)
    for rule in ("argmax", "official"):
        task = build_task("classification", loss="l2svm", decision=rule)
        assert task.scores_to_probs(s).argmax(-1).tolist() == svm_decision(s, rule).tolist()
    with pytest.raises(ValueError, match="decision"):
        build_task("classification", loss="l2svm", decision="vote")


@pytest.mark.claim(paper=40, artefact="l2_svm_loss",
                   claim="frozen features: same decisions as sklearn LinearSVC(squared_hinge)")
def test_frozen_features_svm_head_agrees_with_linear_svc():
    """Readout trained with our loss on frozen CNN features == LinearSVC(squared hinge, one-vs-rest).

    Our objective, mean(W^2) + C * mean_ik h_ik^2 with W of shape (K, D) and N samples, is a sum over
    classes of ||w_k||^2 / (K D) + C / (N K) * sum_i h_ik^2; times K D / 2 that is LinearSVC's
    0.5 ||w_k||^2 + C_svc * sum_i h_ik^2 with C_svc = C * D / (2 N).
    The bias is unregularised here and regularised (as a constant feature) by liblinear: a large
    intercept_scaling makes that penalty negligible.
    """
    from sklearn.datasets import load_digits
    from sklearn.svm import LinearSVC

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X[:600], dtype=torch.float32) / 16.0
    y = torch.tensor(y[:600])
    x28 = nn.functional.interpolate(X.view(-1, 1, 8, 8), size=28, mode="bilinear", align_corners=False)
    torch.manual_seed(0)
    cnn = convzoo.create_model("cnn_svm_mnist", hidden=128).eval()  # a smaller frozen feature extractor
    with torch.no_grad():
        f = cnn.forward_head(cnn.forward_features(x28), pre_logits=True)  # (600, 128)
        f = (f - f.mean(0)) / (f.std(0) + 1e-6)
    ftr, ytr, fte = f[:400], y[:400], f[400:]
    n, d = ftr.shape
    c = 0.5

    readout = nn.Linear(d, 10)
    nn.init.zeros_(readout.weight)
    nn.init.zeros_(readout.bias)
    crit = L2SVMLoss(C=c, readout=readout)
    opt = torch.optim.LBFGS(readout.parameters(), lr=1, max_iter=500, tolerance_grad=1e-9,
                            tolerance_change=1e-12, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = crit(readout(ftr), ytr)
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    ours = svm_decision(readout(fte).detach()).numpy()

    svc = LinearSVC(C=c * d / (2 * n), loss="squared_hinge", multi_class="ovr", intercept_scaling=100,
                    tol=1e-8, max_iter=100_000).fit(ftr.numpy(), ytr.numpy())
    ref = svc.predict(fte.numpy())
    assert np.mean(ours == ref) >= 0.98
    assert np.mean(ours == y[400:].numpy()) > 0.8  # and the problem is learnt, not trivially agreed on
    w = readout.weight.detach().numpy()
    assert np.abs(w - svc.coef_).max() <= 1e-2 * np.abs(svc.coef_).max()  # the same optimum


@pytest.mark.claim(paper=40, artefact="cnn_svm_mnist",
                   claim="3,274,634 parameters and the paper's truncated-normal init")
def test_cnn_svm_params_and_init():
    model = convzoo.create_model("cnn_svm_mnist")
    assert count_params(model) == 3_274_634
    layers = (model.conv1, model.conv2, model.head.fc1, model.head.fc)
    parts = [sum(p.numel() for p in m.parameters()) for m in layers]
    # paper Sec. 2.2 (the TF "Deep MNIST" net): 5x5x1 -> 32, 5x5x32 -> 64, 7*7*64 -> 1024, 1024 -> 10, all with bias
    assert parts == [5 * 5 * 1 * 32 + 32, 5 * 5 * 32 * 64 + 64, 7 * 7 * 64 * 1024 + 1024, 1024 * 10 + 10]
    assert parts == [832, 51_264, 3_212_288, 10_250]  # the fact sheet's sum (G2 section 40)
    for m in (model.conv1, model.conv2, model.head.fc1, model.head.fc):
        assert m.weight.abs().max() <= 0.2 and torch.all(m.bias == 0.1)  # truncated normal, std 0.1
        if m.weight.numel() > 10_000:
            assert 0.07 < m.weight.std().item() < 0.095  # std of N(0, 0.1) truncated at 2 std = 0.088
    assert model.get_classifier() is model.head.fc and model.num_features == 1024


@pytest.mark.claim(paper=40, artefact="cnn_svm_mnist",
                   claim="MACs at 28x28 = 13,883,904, a closed form from the paper's layers (Sec. 2.2); = FlopCounterMode's count and the card's, exactly")
def test_cnn_svm_macs_closed_form():
    """Paper Sec. 2.2: conv 5x5 1 -> 32 SAME on 28x28, max-pool 2, conv 5x5 32 -> 64 SAME on 14x14, max-pool 2,
    fc 7*7*64 -> 1024, fc 1024 -> 10. MACs of a conv = output pixels x out channels x k*k x in channels (bias adds
    and pooling are not multiply-adds), of a linear = in x out."""
    from torch.utils.flop_counter import FlopCounterMode

    closed = 28 * 28 * 32 * 5 * 5 * 1 + 14 * 14 * 64 * 5 * 5 * 32 + 7 * 7 * 64 * 1024 + 1024 * 10
    assert closed == 13_883_904  # the fact sheet's "13.88M" (G2 section 40)
    with torch.device("meta"):
        model, x = convzoo.create_model("cnn_svm_mnist").eval(), torch.empty(1, 1, 28, 28)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    card = convzoo.get_card("cnn_svm_mnist")
    assert counter.get_total_flops() // 2 == closed == card.macs and card.macs_rtol == 0.0


@pytest.mark.claim(paper=40, artefact="cnn_svm_mnist", claim="28x28 input; other sizes are a one-line error")
def test_cnn_svm_shapes_and_wrong_size():
    model = convzoo.create_model("cnn_svm_mnist").eval()
    x = torch.randn(2, 1, 28, 28)
    f1, f2 = model.features(x)
    assert f1.shape == (2, 32, 14, 14) and f2.shape == (2, 64, 7, 7)
    with pytest.raises(ConvzooError, match="28x28"):
        model(torch.randn(1, 1, 32, 32))


def _digits_tensors(split: str):
    from convzoo.data import build_dataset

    ds = build_dataset("digits", split, size=28)
    return torch.stack([ds[i][0] for i in range(len(ds))]), torch.tensor([ds[i][1] for i in range(len(ds))])


@pytest.mark.claim(paper=40, artefact="cnn_svm_mnist", claim="trains with the L2-SVM task on digits to > 90%")
@pytest.mark.slow  # 3 epochs of the 3.3M-parameter net: ~30-50 s on the shared 2-core machine
def test_l2svm_task_trains_cnn_on_digits():
    """Paper 40's CNN-SVM (Adam 1e-3, C = 1, dropout 0.5) learns real digits: > 90% test accuracy."""
    torch.manual_seed(0)
    xtr, ytr = _digits_tensors("train")
    xte, yte = _digits_tensors("test")
    model = convzoo.create_model("cnn_svm_mnist")
    task = build_task("classification", loss="l2svm", svm_c=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # epochs, batch 32
        model.train()
        for idx in torch.randperm(len(ytr), generator=g).split(32):
            out, y = task.forward(model, (xtr[idx], ytr[idx]))
            loss = task.loss(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = svm_decision(model(xte))
    assert (pred == yte).float().mean() > 0.90


@pytest.mark.claim(paper=40, artefact="cnn_svm_digits", claim="recipes validate")
@pytest.mark.parametrize("name", ["cnn_svm_digits", "cnn_softmax_digits", "cnn_svm_mnist_paper"])
def test_recipes_load(name):
    from convzoo.engine import load_recipe

    r = load_recipe(name)
    assert r["paper"] == 40 and r["model"]["name"] == "cnn_svm_mnist"
    assert (r["optimizer"]["name"], r["optimizer"]["lr"], r["batch_size"]) == ("adam", 1e-3, 128)
    loss = r["task"]["kwargs"].get("loss", "ce")
    assert loss == ("ce" if "softmax" in name else "l2svm")
    if loss == "l2svm":
        assert r["task"]["kwargs"]["svm_c"] == 1.0
    if name.endswith("_paper"):
        steps = r["epochs"] * (55_000 // 128 + 1)
        assert r["data"]["name"] == "mnist" and abs(steps - 10_000) < 430
    else:
        assert r["data"]["kwargs"]["size"] == 28
