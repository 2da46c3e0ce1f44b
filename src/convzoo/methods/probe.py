"""Frozen-feature evaluation of self-supervised features: the second stage of RotNet ("Unsupervised
Representation Learning by Predicting Image Rotations", Gidaris, Singh, Komodakis; ICLR 2018,
arXiv 1803.07728; seed paper 20), Sec. 3.

A recipe with ``method: {name: frozen_probe, kwargs: {pretext: RUN, block: 2, classifier: nonlinear}}``
trains, on a labelled data set (the task is ordinary ``classification``), a classifier on the output
of one block of a backbone whose weights come from a pretext run (e.g. ``rotnet_nin4_digits``) and
stay frozen. The recipe's ``model`` section names the backbone (the pretext run's model and
``model.kwargs``); its own classifier is dropped and the pretext weights are loaded into the rest.
As the official ``FeatureClassificationModel``, the frozen backbone runs in eval mode (its BatchNorm
keeps the pretext statistics) and without gradients; only the probe head is optimised
(``param_groups`` holds only the head). ``export_model()`` is the whole network (frozen backbone +
head), saved as the run's weights and used by ``predict`` / ``evaluate`` / ``export``.

Classifiers (official ``architectures/NonLinearClassifier.py`` / ``LinearClassifier.py``):

* ``nonlinear`` (paper Table 1 / Table 2 "RotNet + non-linear"; official ``MultLayer``): flatten ->
  fc (no bias) -> BN -> ReLU -> fc (no bias) -> BN -> ReLU -> linear, hidden width
  ``min(20 * classes, 2048)`` (200 for 10 classes);
* ``conv`` (Table 2 "RotNet + conv" and the semi-supervised Figure 5; official ``NIN_ConvBlock3``):
  a NIN block (3x3 -> 192, 1x1 -> 192, 1x1 -> 192, each BN-ReLU) -> global average pool -> linear;
* ``linear`` (the linear protocol of Sec. 3.2 / Table 5; official ``LinearClassifier``): adaptive
  max-pool to ``pool_size`` x ``pool_size`` -> BatchNorm without affine -> flatten -> linear. The
  default pool size keeps about 9,216 features (``round(sqrt(9216 / C))``), which reproduces every
  official AlexNet choice (conv1 12, conv2 7, conv3 5, conv4/5 6).

The heads start as the official ``initilize`` does (conv and linear weights ~ N(0, 2 / fan-out), BN
scales 1, biases 0). ``hidden`` overrides the hidden width (fc units, or the conv block's channels:
CPU-scale recipes use narrow backbones). ``finetune: true`` trains the backbone too (Table 2
"fine-tuned" rows). ``pretext: null`` probes a randomly initialised backbone (Table 2 "Random Init.").

``pretext`` is a run folder (its ``last.safetensors``), a ``.safetensors`` file, or a run-name prefix
such as ``runs/rotnet_nin4_digits``: the newest ``runs/rotnet_nin4_digits-*`` run folder. The weights
are loaded when training starts (first epoch, or the first ``training_step``), not when the method is
built: a finished probe run's weights already hold them, so ``predict`` / ``evaluate`` of a probe run
do not need the pretext run any more. The K-labels-per-class setting is the ``few_labels`` data set
(:mod:`convzoo.data.subset`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.methods.base import Method, register_method
from convzoo.methods.supervised import loss_parts

CLASSIFIERS = ("nonlinear", "conv", "linear")
LINEAR_FEATURES = 9216  # official linear probes keep ~256 x 6 x 6 features (pool size per layer)


# --- the probe heads -------------------------------------------------------------------------------
class MultiLayerHead(nn.Sequential):
    """Official ``MultLayer``: (B, C, H, W) -> flatten -> [fc -> BN -> ReLU] x 2 -> linear."""

    def __init__(self, in_features: int, hidden: int, num_classes: int):
        super().__init__(
            nn.Flatten(1),
            nn.Linear(in_features, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )


class NINConvHead(nn.Sequential):
    """Official ``NIN_ConvBlock3``: a NIN block (3x3, 1x1, 1x1 conv-BN-ReLU) -> global avg pool -> linear."""

    def __init__(self, in_chs: int, width: int, num_classes: int):
        layers = []
        for k, cin in ((3, in_chs), (1, width), (1, width)):
            layers += [nn.Conv2d(cin, width, k, padding=(k - 1) // 2, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
        super().__init__(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(width, num_classes))


class LinearHead(nn.Sequential):
    """Official ``LinearClassifier``: adaptive max-pool (s x s) -> BN (no affine) -> flatten -> linear."""

    def __init__(self, in_chs: int, pool_size: int, num_classes: int):
        super().__init__(nn.AdaptiveMaxPool2d(pool_size), nn.BatchNorm2d(in_chs, affine=False), nn.Flatten(1),
                         nn.Linear(in_chs * pool_size * pool_size, num_classes))


@torch.no_grad()
def official_init_(head: nn.Module) -> nn.Module:
    """The official classifiers' ``initilize``: conv/linear weights ~ N(0, 2 / fan-out), BN 1 / 0, biases 0."""
    for m in head.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.normal_(0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0.0, math.sqrt(2.0 / m.out_features))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.fill_(1.0)
            m.bias.zero_()
    return head


def build_head(kind: str, feature_shape: tuple[int, int, int], num_classes: int, hidden: int | None = None,
               pool_size: int | None = None) -> nn.Module:
    """A probe head for features of shape (C, H, W)."""
    c, h, w = feature_shape
    if kind == "nonlinear":
        head = MultiLayerHead(c * h * w, hidden or min(20 * num_classes, 2048), num_classes)
    elif kind == "conv":
        head = NINConvHead(c, hidden or 192, num_classes)
    elif kind == "linear":
        head = LinearHead(c, pool_size or max(1, round(math.sqrt(LINEAR_FEATURES / c))), num_classes)
    else:
        raise ConvzooError(f"frozen_probe classifier must be one of {', '.join(CLASSIFIERS)}, got {kind!r}")
    return official_init_(head)


# --- the network a person keeps --------------------------------------------------------------------
class ProbedNetwork(nn.Module):
    """``head(backbone.forward_blocks(x, [block])[0])``; a frozen backbone stays in eval mode."""

    def __init__(self, backbone: nn.Module, head: nn.Module, block: int, num_classes: int, frozen: bool = True):
        super().__init__()
        self.backbone, self.head, self.block = backbone, head, int(block)
        self.num_classes, self.frozen = num_classes, frozen
        if frozen:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> ProbedNetwork:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # BatchNorm keeps the pretext statistics (official: feat_extractor.eval())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            feats = self.backbone.forward_blocks(x, [self.block])[0]  # (B, C, h, w) of the probed block
        return self.head(feats)  # (B, num_classes)


# --- the method ---------------------------------------------------------------------------------------
@register_method("frozen_probe")
class FrozenProbe(Method):
    """Train a classifier on block ``block`` (1-based) of a pretext-trained backbone (module docstring)."""

    def __init__(self, model, task, info=None, *, pretext: str | None = None, block: int = 2,
                 classifier: str = "nonlinear", hidden: int | None = None, pool_size: int | None = None,
                 finetune: bool = False):
        if not callable(getattr(model, "forward_blocks", None)):
            raise ConvzooError(f"frozen_probe needs a backbone with forward_blocks(x, blocks) (e.g. rotnet_nin4); "
                               f"'{getattr(getattr(model, 'card', None), 'name', type(model).__name__)}' has none")
        blocks = getattr(model, "num_blocks", None)
        if blocks is not None and not 1 <= int(block) <= blocks:
            raise ConvzooError(f"frozen_probe block must be in 1..{blocks} for this backbone, got {block}")
        num_classes = getattr(info, "num_classes", 0) or 0
        if num_classes < 2:
            raise ConvzooError("frozen_probe trains a classifier: the data set must have classes (num_classes >= 2)")
        model.reset_classifier(0)  # the backbone's own (pretext) head is not part of the probe
        shape = _feature_shape(model, int(block), info)
        head = build_head(classifier, shape, num_classes, hidden, pool_size)
        super().__init__(ProbedNetwork(model, head, int(block), num_classes, frozen=not finetune), task)
        card = getattr(model, "card", None)
        if card is not None:  # what predict / export read: the backbone's card, now a classifier of the data's classes
            self.model.card = card.with_(task=task.name, num_classes=num_classes, in_chans=shape_chans(info, card),
                                         params=None, macs=None)
        self.pretext, self.classifier = pretext, classifier
        # 1 once the pretext weights are in the backbone (kept in state.pt, so a resumed run does not reload)
        self.register_buffer("pretext_loaded", torch.tensor(int(pretext is None), dtype=torch.uint8))

    @property
    def backbone(self) -> nn.Module:
        return self.model.backbone

    def on_train_epoch_start(self, epoch: int) -> None:
        super().on_train_epoch_start(epoch)
        self.load_pretext()

    def training_step(self, batch) -> dict[str, torch.Tensor]:
        self.load_pretext()
        outputs, targets = self.task.forward(self.model, batch)
        return loss_parts(self.task.loss(outputs, targets))

    @torch.no_grad()
    def load_pretext(self) -> None:
        """Copy the pretext run's weights into the backbone (once); its rotation head is left out."""
        if int(self.pretext_loaded):
            return
        from convzoo.weights import read_state

        path = resolve_pretext(self.pretext, getattr(getattr(self.backbone, "card", None), "name", None))
        state = read_state(path)
        own = self.backbone.state_dict()
        missing = [k for k in own if k not in state]
        extra = [k for k in state if k not in own and not k.startswith("head.")]
        shape = [k for k in own if k in state and state[k].shape != own[k].shape]
        if missing or extra or shape:
            what = (f"'{shape[0]}' has shape {tuple(state[shape[0]].shape)}, the backbone {tuple(own[shape[0]].shape)}"
                    if shape else f"missing {missing[:2]}" if missing else f"unexpected {extra[:2]}")
            raise ConvzooError(f"pretext weights {path} do not fit the probe's backbone ({what}): the probe "
                               "recipe's model name and model.kwargs must be the pretext run's")
        self.backbone.load_state_dict({k: state[k] for k in own})
        self.pretext_loaded.fill_(1)


def shape_chans(info, card) -> int:
    return getattr(info, "in_chans", None) or card.in_chans


def _feature_shape(model: nn.Module, block: int, info) -> tuple[int, int, int]:
    """(C, H, W) of block ``block`` for one input of the data set's size (one eval-mode forward)."""
    size = tuple(getattr(info, "input_size", ()) or getattr(getattr(model, "card", None), "input_size", (32, 32)))
    chans = getattr(info, "in_chans", None) or getattr(getattr(model, "card", None), "in_chans", 3)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            param = next(model.parameters())
            feats = model.forward_blocks(torch.zeros(1, chans, *size, dtype=param.dtype, device=param.device), [block])[0]
    finally:
        model.train(was_training)
    return tuple(int(d) for d in feats.shape[1:])


def resolve_pretext(pretext, model_name: str | None = None) -> Path:
    """The safetensors file of ``pretext``: a file, a run folder, or the newest run ``<prefix>-*``."""
    if pretext is None:
        raise ConvzooError("frozen_probe has no pretext weights to load (method.kwargs.pretext is null)")
    path = Path(pretext).expanduser()
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ConvzooError(f"pretext weights not found: {path}")
        return path
    run = path if (path / "config.yaml").is_file() else None
    if run is None and path.parent.is_dir():
        runs = [p for p in path.parent.glob(f"{path.name}-*") if (p / "last.safetensors").is_file()]
        run = max(runs, key=lambda p: (p / "last.safetensors").stat().st_mtime) if runs else None
    if run is None or not (run / "last.safetensors").is_file():
        raise ConvzooError(f"pretext run not found: {path} (expected a run folder with last.safetensors, a "
                           f".safetensors file, or a prefix of run folders; train the pretext recipe first, e.g. "
                           f"`convzoo train rotnet_nin4_digits`)")
    if model_name is not None:
        import yaml

        pre = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("model", {}).get("name")
        if pre is not None and pre != model_name:
            raise ConvzooError(f"pretext run {run} trained '{pre}', the probe recipe's model is '{model_name}'")
    return run / "last.safetensors"
