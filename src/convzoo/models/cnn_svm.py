"""CNN-SVM — "An Architecture Combining Convolutional Neural Network (CNN) and Support Vector Machine
(SVM) for Image Classification" (Abien Fred Agarap; arXiv 1712.03541, 2017). Seed paper 40.

What is implemented
- The paper's base CNN (Sec. 2.2 / 3.2; official AFAgarap/cnn-svm ``model/cnn_svm.py``, the
  TensorFlow "Deep MNIST" network): 28x28x1 -> conv 5x5x32 SAME + bias -> ReLU -> max-pool 2x2/2 ->
  conv 5x5x64 SAME -> ReLU -> max-pool 2x2/2 -> flatten 7*7*64 = 3136 -> fc 1024 -> ReLU ->
  dropout 0.5 -> linear 1024 -> 10 class scores. Init as the official code: weights from a normal
  with std 0.1 truncated at two std (``tf.truncated_normal``), biases 0.1. 3,274,634 parameters.
- The **same network** is the paper's CNN-Softmax baseline: the model only produces scores; what
  makes it CNN-SVM is the loss. The L2-SVM top layer (paper Sec. 2.3, Eq. 4 after Tang 2013) is
  :class:`convzoo.layers.svm.L2SVMLoss`, reached from any classifier by the classification task's
  ``loss: l2svm`` (with ``svm_c``; it regularises ``model.get_classifier()``, here ``head.fc``).
  Recipes: ``cnn_svm_digits`` (L2-SVM) and ``cnn_softmax_digits`` (cross-entropy), and the paper's
  ``cnn_svm_mnist_paper`` (Adam 1e-3, batch 128, 10,000 steps).

Departures
- Flatten order: TensorFlow flattens NHWC (h, w, c); we flatten NCHW (c, h, w). The function class
  is identical (a fixed permutation of fc1's input rows); TF checkpoints need that permutation.
- The official code predicts ``argmax(sign(scores))`` (all-negative rows go to class 0); the task
  uses argmax of the raw scores and offers the official rule as ``decision: official``.
- ``in_chans`` is honoured (first conv); the input must be 28x28 (the fc layer fixes 7*7*64), which
  is why the digits recipes resize the 8x8 digits to 28.
- timm's ``global_pool``: the paper's head has none (``""``, the default: fc1 reads the flattened 7x7x64
  map); "avg" / "max" / "avgmax" / "catavgmax" pool the map first, so fc1 reads 64 (128) features and any
  input size works. Unlike timm's ``""`` the output stays ``(B, num_classes)``: the MLP flattens.
  ``drop_path_rate`` must be 0 (no residual paths).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from convzoo.errors import ConvzooError
from convzoo.layers.drop_path import no_drop_path
from convzoo.layers.head import Backbone, SelectAdaptivePool, make_fc
from convzoo.registry import ModelCard, register_model

INPUT_SIZE = 28  # the flatten fixes it: 28 -> 14 -> 7


class MlpHead(nn.Module):
    """[global pool] -> flatten -> fc 1024 -> ReLU -> dropout -> readout (paper Sec. 2.2, "fully-connected
    layer"; the paper has no pool: ``pool=""``)."""

    def __init__(self, map_shape: tuple[int, int, int], hidden: int, num_classes: int, drop_rate: float,
                 pool: str = ""):
        super().__init__()
        self.map_shape, self.hidden = tuple(map_shape), hidden
        self.global_pool = SelectAdaptivePool(pool)
        self.in_features = self._in_features()
        self.fc1 = nn.Linear(self.in_features, hidden)
        self.drop = nn.Dropout(drop_rate)
        self.fc = make_fc(hidden, num_classes)

    def _in_features(self) -> int:
        c, h, w = self.map_shape
        return c * h * w if self.global_pool.is_identity() else c * self.global_pool.feat_mult()

    def reset(self, num_classes: int, pool: str | None = None) -> None:
        if pool is not None:  # another pool: fc1 reads another width
            self.global_pool = SelectAdaptivePool(pool)
            self.in_features = self._in_features()
            self.fc1 = nn.Linear(self.in_features, self.hidden)
        self.fc = make_fc(self.hidden, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)  # (B, 64, 7, 7) -> (B, 3136), or pooled (B, 64)
        if x.shape[1] != self.in_features:
            raise ConvzooError(f"cnn_svm_mnist takes {INPUT_SIZE}x{INPUT_SIZE} inputs (its fc layer fixes "
                               f"7x7x64), got a map of {x.shape[1]} values; resize the data (e.g. digits size=28) "
                               f"or build it with global_pool='avg'")
        x = self.drop(torch.relu(self.fc1(x)))  # (B, 1024)
        return x if pre_logits else self.fc(x)  # (B, num_classes): SVM margins or softmax logits


class CnnSvmNet(Backbone):
    """The paper's two-conv CNN (shared by CNN-SVM and CNN-Softmax); see the module docstring."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, widths: tuple[int, int] = (32, 64),
                 hidden: int = 1024, kernel_size: int = 5, drop_rate: float = 0.5, init_std: float = 0.1,
                 bias_init: float = 0.1, global_pool: str = "", drop_path_rate: float = 0.0):
        super().__init__()
        no_drop_path(drop_path_rate, "CNN-SVM")
        c1, c2 = widths
        pad = kernel_size // 2  # SAME for odd kernels at stride 1
        self.conv1 = nn.Conv2d(in_chans, c1, kernel_size, padding=pad)  # (B, 1, 28, 28) -> (B, 32, 28, 28)
        self.pool1 = nn.MaxPool2d(2, 2)  # -> (B, 32, 14, 14)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size, padding=pad)  # -> (B, 64, 14, 14)
        self.pool2 = nn.MaxPool2d(2, 2)  # -> (B, 64, 7, 7)
        side = INPUT_SIZE // 4
        self.head = MlpHead((c2, side, side), hidden, num_classes, drop_rate, global_pool)
        self.num_classes, self.num_features = num_classes, hidden
        self.feature_info = [{"num_chs": c1, "reduction": 2, "module": "pool1"},
                             {"num_chs": c2, "reduction": 4, "module": "pool2"}]
        self.init_std, self.bias_init = init_std, bias_init
        self.apply(self._init)

    def _init(self, m: nn.Module) -> None:
        # official weight_variable / bias_variable: truncated_normal(std 0.1) (cut at 2 std), constant 0.1
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=self.init_std, a=-2 * self.init_std, b=2 * self.init_std)
            nn.init.constant_(m.bias, self.bias_init)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        super().reset_classifier(num_classes, global_pool)
        if global_pool is not None:
            self._init(self.head.fc1)
        if num_classes > 0:
            self._init(self.head.fc)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each conv -> ReLU -> pool stage in the backward pass."""
        self.grad_checkpointing = enable

    def _stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        conv, pool = (self.conv1, self.pool1) if i == 0 else (self.conv2, self.pool2)
        return pool(torch.relu(conv(x)))

    def features(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """(B, 32, 14, 14) and (B, 64, 7, 7) at 28 px (the first ``stop`` only when given)."""
        ckpt = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        out = []
        for i in range(stop or 2):
            x = checkpoint(self._stage, i, x, use_reentrant=False) if ckpt else self._stage(i, x)
            out.append(x)
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]  # (B, 64, 7, 7), unpooled


@register_model(ModelCard(
    name="cnn_svm_mnist", paper=40, family="cnn_svm", task="classification", in_chans=1, num_classes=10,
    input_size=(28, 28), test_size=(28, 28), params=3_274_634,
    params_source="paper Sec. 2.2 network, by arithmetic 832 + 51,264 + 3,212,288 + 10,250 "
                  "(fact sheet G2 §40; the paper prints no count)",
    macs=13_883_904, macs_rtol=0.0,
    macs_source="closed form, tests/models/test_cnn_svm.py::test_cnn_svm_macs_closed_form (paper Sec. 2.2 layers at "
                "28x28: 28*28*32*25 + 14*14*64*25*32 + 3136*1024 + 1024*10; fact sheet G2 §40: 13.88M)",
    reference=None, capabilities=frozenset({"features", "compile", "onnx"}),
    recipes=("cnn_svm_digits", "cnn_softmax_digits", "cnn_svm_mnist_paper"),
    source="paper Sec. 2.2-2.3 / official model/cnn_svm.py (network, init); "
           "L2-SVM loss in convzoo.layers.svm",
    mean=(0.0,), std=(1.0,), crop_pct=1.0,
    notes="same network as the paper's CNN-Softmax; CNN-SVM = this model + task loss 'l2svm'. Preprocessing: none "
          "beyond pixels in [0, 1] (official code: TensorFlow's MNIST input_data), 28x28, no crop"))
def cnn_svm_mnist(num_classes: int = 10, in_chans: int = 1, **kw) -> CnnSvmNet:
    return CnnSvmNet(num_classes=num_classes, in_chans=in_chans, **kw)
