"""LRCN: Long-term Recurrent Convolutional Networks, the activity-recognition half.

Seed paper 42; Donahue, Hendricks, Guadarrama, Rohrbach, Venugopalan, Saenko, Darrell; "Long-term
Recurrent Convolutional Networks for Visual Recognition and Description", CVPR 2015 / TPAMI 2017;
arXiv 1411.4389. Official code: LisaAnne/lisa-caffe-public, branch ``lstm_video_deploy``,
``examples/LRCN_activity_recognition/`` (``train_test_lstm_RGB.prototxt``, ``lstm_solver_RGB.prototxt``,
``sequence_input_layer.py``, ``classify_video.py``). The captioning half (image -> sentence) is
:mod:`convzoo.models.lrcn_caption`; it may reuse the per-frame CNNs of this file.

Implemented here (paper Sec. 3-4, official prototxt):
- Per-frame visual CNNs phi_V, weights shared over time: :class:`CaffeNetFc6` (the official CaffeNet
  variant up to fc6: conv1 96@7x7 s2, pool, LRN; conv2 384@5x5 s2 g2, pool, LRN; conv3 512@3x3; conv4
  512@3x3 g2; conv5 384@3x3 g2; pool5; fc6 4096 + ReLU + dropout 0.9) and :class:`SmallFrameCNN` (three
  3x3 Conv-BN-ReLU stages and a small flattening FC, for CPU runs). Both map (B, C, H, W) -> (B, F) and
  say their width in ``num_features``; :func:`build_frame_cnn` builds one by name (``FRAME_CNNS``).
- :class:`ClipLSTM`: an LSTM stack with Caffe's clip markers (``cont`` flags): at a step whose marker is
  0 the hidden and cell state are multiplied by 0, so that step starts from zero state, as Caffe's
  ``LSTM`` layer does (h_{t-1} scaled by cont_t, the forget term of ``LSTMUnit`` by cont_t). Gate order
  and parameter names are torch's ``nn.LSTM`` (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
  ``bias_hh_l0``; gates i, f, g, o), so an ``nn.LSTM`` state dict loads into it. ``bias="caffe"`` keeps
  Caffe's single input bias (``bias_hh_l*`` absent): 4H fewer parameters per layer.
  :func:`caffe_lstm_to_torch` turns Caffe's LSTM blobs (W_xc, b_c, W_hc; gates i, f, o, g) into it.
- :class:`LRCN`: (N, C, T, H, W) -> shared frame CNN on the N*T frames -> (N, T, F) -> dropout? ->
  ClipLSTM -> dropout -> per-step linear -> per-step scores (N, T, K) (:meth:`LRCN.forward_steps`) ->
  temporal pool -> (N, K). ``temporal_pool="probs"`` (the official test rule of ``classify_video.py``:
  the mean of the per-frame softmax probabilities) returns log(mean_t softmax(s_t)), which are
  log-probabilities, so cross-entropy on them is -log of the averaged probability and a later softmax
  (video-level averaging over clips) gives back the averaged probabilities; ``"logits"`` averages the
  raw scores; ``"none"`` returns (N, T, K). ``recurrent=False`` is the single-frame baseline: the same
  frame CNN, no LSTM, a linear classifier per frame, frame-averaged.
- Variants (``LRCN_CFGS``, one record each): ``lrcn_activity`` (the official RGB activity model,
  torch's two LSTM biases: 65,422,309 parameters), ``lrcn_activity_caffe`` (Caffe's single LSTM bias:
  65,421,285 = the official graph), ``lrcn_small`` / ``lrcn_small_single_frame`` (a small frame CNN at
  CPU scale, convs 8-16-32 with the whole 8 x 8 map of a 32 x 32 frame flattened into its FC, with and
  without the LSTM).

Departures from the official code, and why:
- An adaptive average pool to 6 x 6 sits before fc6 (as torchvision's AlexNet): at the official 227 px
  pool5 is already 6 x 6 and the pool is the identity; other frame sizes (the contract tests' small
  clips) then work too.
- The official training loss is a per-step softmax loss (every step scored against the clip label);
  a plain task loss sees the pooled (N, K) output. The method ``per_step`` (:mod:`convzoo.methods.per_step`)
  trains the per-step loss on :meth:`LRCN.forward_steps`.
- Initialisation follows the prototxt (Gaussian std 0.01 for conv / fc weights, conv and fc6 biases 0.1,
  LSTM weights uniform +-0.01 and bias 0, fc8 bias 0) for the activity model; the small variants use
  torch's defaults with BN. The official flow stream is the same network on 3-channel flow images.
- ``drop_rate`` is the dropout after the LSTM (official 0.5 in the activity model); ``frame_drop_rate``
  the dropout after fc6 (official 0.9). There is no residual path, so ``drop_path_rate`` is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from convzoo.errors import ConvzooError
from convzoo.registry import ModelCard, register_model

__all__ = [
    "FRAME_CNNS",
    "LRCN",
    "LRCN_CFGS",
    "CaffeNetFc6",
    "ClipLSTM",
    "PoolTo",
    "SmallFrameCNN",
    "build_frame_cnn",
    "caffe_lstm_to_torch",
]

TEMPORAL_POOLS = ("probs", "logits", "none")


# --- per-frame CNNs --------------------------------------------------------------------------------

class PoolTo(nn.Module):
    """Average pool to ``size`` x ``size`` (timm/torchvision's adaptive pool); a map whose sides ``size`` divides
    uses a plain average pool of the same windows, which ONNX export can take at any batch size."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w, p = int(x.shape[-2]), int(x.shape[-1]), self.size
        if (h, w) == (p, p):
            return x
        if h % p == 0 and w % p == 0:
            return F.avg_pool2d(x, (h // p, w // p))
        return F.adaptive_avg_pool2d(x, p)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class CaffeNetFc6(nn.Module):
    """The official per-frame CNN up to fc6 (``train_test_lstm_RGB.prototxt``): (B, C, H, W) -> (B, 4096).

    Layer names are the prototxt's (``conv1`` .. ``conv5``, ``fc6``). Caffe pools round up (ceil mode);
    Caffe's LRN (local_size 5, alpha 1e-4, beta 0.75, k 1, alpha divided by the size) is torch's.
    """

    def __init__(self, in_chans: int = 3, num_features: int = 4096, drop_rate: float = 0.9, pool_size: int = 6):
        super().__init__()
        self.in_chans, self.num_features = in_chans, num_features
        self.conv1 = nn.Conv2d(in_chans, 96, 7, stride=2)  # 227 -> 111
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)  # -> 55
        self.norm1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2 = nn.Conv2d(96, 384, 5, stride=2, groups=2)  # -> 26
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)  # -> 13
        self.norm2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv3 = nn.Conv2d(384, 512, 3, padding=1)
        self.conv4 = nn.Conv2d(512, 512, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(512, 384, 3, padding=1, groups=2)
        self.pool5 = nn.MaxPool2d(3, 2, ceil_mode=True)  # 13 -> 6
        self.pool = PoolTo(pool_size)  # identity at 227 px (departure: any frame size)
        self.fc6 = nn.Linear(384 * pool_size * pool_size, num_features)
        self.drop6 = nn.Dropout(drop_rate)
        for m in self.modules():  # prototxt fillers: gaussian std 0.01, bias 0.1
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.constant_(m.bias, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, 227, 227) -> (B, 96, 55, 55) -> (B, 384, 13, 13) -> (B, 384, 6, 6) -> (B, 4096)
        x = self.norm1(self.pool1(F.relu(self.conv1(x))))
        x = self.norm2(self.pool2(F.relu(self.conv2(x))))
        x = F.relu(self.conv5(F.relu(self.conv4(F.relu(self.conv3(x))))))
        x = self.pool(self.pool5(x)).flatten(1)
        return self.drop6(F.relu(self.fc6(x)))


class SmallFrameCNN(nn.Module):
    """A small per-frame CNN for CPU runs: three 3x3 Conv-BN-ReLU stages (max-pool 2 after the first two),
    an adaptive average pool to ``pool_size`` x ``pool_size`` that keeps coarse positions (a global pool
    would discard where the object is, which motion needs), flatten, FC + ReLU + dropout:
    (B, C, H, W) -> (B, num_features)."""

    def __init__(self, in_chans: int = 1, widths: Sequence[int] = (16, 32, 64), num_features: int = 128,
                 pool_size: int = 4, drop_rate: float = 0.0):
        super().__init__()
        self.in_chans, self.num_features = in_chans, num_features
        layers, cin = [], in_chans
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = w
        self.convs = nn.Sequential(*layers)
        self.pool = PoolTo(pool_size)
        self.fc = nn.Linear(cin * pool_size * pool_size, num_features)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, w_last, H/4, W/4) -> (B, w_last, p, p) -> (B, num_features)
        x = self.pool(self.convs(x)).flatten(1)
        return self.drop(F.relu(self.fc(x)))


FRAME_CNNS = {"caffenet_fc6": CaffeNetFc6, "small": SmallFrameCNN}


def build_frame_cnn(name: str, in_chans: int, **kwargs) -> nn.Module:
    """A per-frame CNN by name (``FRAME_CNNS``): (B, in_chans, H, W) -> (B, model.num_features)."""
    if name not in FRAME_CNNS:
        raise ConvzooError(f"unknown frame CNN '{name}'; choose one of {', '.join(FRAME_CNNS)}")
    return FRAME_CNNS[name](in_chans=in_chans, **kwargs)


# --- the LSTM with clip markers --------------------------------------------------------------------

class ClipLSTM(nn.Module):
    """An LSTM stack over (N, T, D) with Caffe's clip markers: (N, T, D), cont (N, T) -> (N, T, H).

    ``cont[n, t] == 0`` starts a new clip at step t: the state entering step t is multiplied by 0 (Caffe's
    ``LSTM`` layer), in every layer. Without ``cont`` the sequence runs from ``state`` (zeros by default)
    as ``nn.LSTM`` does. ``bias="torch"``: two biases per layer (``bias_ih_l*``, ``bias_hh_l*``, as
    ``nn.LSTM``); ``"caffe"``: one (``bias_ih_l*``, Caffe's b_c), 4H fewer parameters per layer.
    The input projection of all steps is one matrix product; the recurrence is a loop over the T steps.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: str = "torch"):
        super().__init__()
        if bias not in ("torch", "caffe"):
            raise ConvzooError(f"LSTM bias must be 'torch' (two bias vectors) or 'caffe' (one), got {bias!r}")
        self.input_size, self.hidden_size, self.num_layers, self.bias = input_size, hidden_size, num_layers, bias
        for k in range(num_layers):
            d = input_size if k == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(4 * hidden_size, d)))
            self.register_parameter(f"weight_hh_l{k}", nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
            self.register_parameter(f"bias_ih_l{k}", nn.Parameter(torch.empty(4 * hidden_size)))
            if bias == "torch":
                self.register_parameter(f"bias_hh_l{k}", nn.Parameter(torch.empty(4 * hidden_size)))
        self.reset_parameters()

    def reset_parameters(self, uniform: float | None = None) -> None:
        """torch's ``nn.LSTM`` initialisation (uniform +-1/sqrt(H)), or uniform +-``uniform`` weights and zero
        biases (the prototxt's filler: 0.01)."""
        bound = 1.0 / math.sqrt(self.hidden_size) if uniform is None else uniform
        for name, p in self.named_parameters():
            if uniform is not None and name.startswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.uniform_(p, -bound, bound)

    def _layer(self, k: int):
        return (getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}"), getattr(self, f"bias_ih_l{k}"),
                getattr(self, f"bias_hh_l{k}", None))

    def forward(self, x: torch.Tensor, cont: torch.Tensor | None = None,
                state: tuple[torch.Tensor, torch.Tensor] | None = None):
        """(N, T, D) -> outputs (N, T, H) and the last (h, c), each (num_layers, N, H)."""
        n, t, _ = x.shape
        if cont is not None:
            if cont.shape != (n, t):
                raise ConvzooError(f"clip markers must have shape (N, T) = ({n}, {t}), got {tuple(cont.shape)}")
            cont = cont.to(x.dtype).unsqueeze(-1)  # (N, T, 1)
        if state is None:
            zeros = x.new_zeros(self.num_layers, n, self.hidden_size)
            state = (zeros, zeros)
        hs, cs = [], []
        for k in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._layer(k)
            gates_x = F.linear(x, w_ih, b_ih)  # (N, T, 4H): the input projection of every step at once
            h, c = state[0][k], state[1][k]
            outs = []
            for s in range(t):
                if cont is not None:  # clip marker 0: this step starts from zero state
                    h, c = h * cont[:, s], c * cont[:, s]
                i, f, g, o = (gates_x[:, s] + F.linear(h, w_hh, b_hh)).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            x = torch.stack(outs, dim=1)  # (N, T, H)
            hs.append(h)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias!r}"


def caffe_lstm_to_torch(w_xc: torch.Tensor, b_c: torch.Tensor, w_hc: torch.Tensor, layer: int = 0) -> dict:
    """Caffe ``LSTM`` blobs (W_xc (4H, D), b_c (4H), W_hc (4H, H); gates i, f, o, g) -> a ``ClipLSTM``
    (``bias="caffe"``) state dict for ``layer`` (gates i, f, g, o)."""
    def reorder(t: torch.Tensor) -> torch.Tensor:
        i, f, o, g = t.chunk(4, dim=0)
        return torch.cat([i, f, g, o], dim=0)

    return {f"weight_ih_l{layer}": reorder(w_xc), f"weight_hh_l{layer}": reorder(w_hc), f"bias_ih_l{layer}": reorder(b_c)}


# --- the network -------------------------------------------------------------------------------------

class LRCN(nn.Module):
    """Shared per-frame CNN -> LSTM -> per-step linear -> temporal pool: (N, C, T, H, W) -> (N, K).

    ``clip_markers`` (N, T) (optional, every forward method): 0 where a new clip starts inside a sequence.
    """

    def __init__(self, num_classes: int = 101, in_chans: int = 3, frame_cnn: str = "caffenet_fc6",
                 frame_cnn_kwargs: dict | None = None, hidden_size: int = 256, num_layers: int = 1,
                 lstm_bias: str = "torch", recurrent: bool = True, temporal_pool: str = "probs",
                 drop_rate: float = 0.0, frame_drop_rate: float | None = None, drop_path_rate: float = 0.0,
                 init: str = "torch"):
        super().__init__()
        if drop_path_rate:
            raise ConvzooError("LRCN has no residual paths: drop_path_rate must be 0 (use drop_rate / frame_drop_rate)")
        if temporal_pool not in TEMPORAL_POOLS:
            raise ConvzooError(f"temporal_pool must be one of {', '.join(TEMPORAL_POOLS)}, got {temporal_pool!r}")
        cnn_kw = dict(frame_cnn_kwargs or {})
        if frame_drop_rate is not None:
            cnn_kw["drop_rate"] = frame_drop_rate
        self.in_chans, self.num_classes, self.recurrent = in_chans, num_classes, recurrent
        self.temporal_pool, self.grad_checkpointing = temporal_pool, False
        self.frame_cnn = build_frame_cnn(frame_cnn, in_chans, **cnn_kw)
        width = self.frame_cnn.num_features
        # recurrent: (N, T, F) -> (N, T, hidden); single-frame: the frame features go to the classifier
        self.lstm = ClipLSTM(width, hidden_size, num_layers, lstm_bias) if recurrent else None
        self.num_features = hidden_size if recurrent else width
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.feature_info: list[dict] = []
        if init == "caffe":  # the prototxt's fillers (the frame CNN applies its own)
            if self.lstm is not None:
                self.lstm.reset_parameters(uniform=0.01)
            if isinstance(self.fc, nn.Linear):
                nn.init.normal_(self.fc.weight, std=0.01)
                nn.init.zeros_(self.fc.bias)

    # --- stages ---
    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> per-frame features (N, T, F), one CNN for all N*T frames."""
        if x.dim() != 5 or x.shape[1] != self.in_chans:
            raise ConvzooError(f"LRCN takes clips (N, {self.in_chans}, T, H, W), got shape {tuple(x.shape)}")
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)  # (N*T, C, H, W)
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            feats = checkpoint(self.frame_cnn, frames, use_reentrant=False)
        else:
            feats = self.frame_cnn(frames)  # (N*T, F)
        return feats.reshape(n, t, -1)

    def forward_features(self, x: torch.Tensor, clip_markers: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, T, H, W) -> the per-step features the classifier reads: (N, T, num_features)."""
        feats = self.forward_frames(x)
        if self.lstm is not None:
            feats, _ = self.lstm(feats, clip_markers)
        return feats

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, T, num_features) -> per-step scores (N, T, K) pooled over time as ``temporal_pool`` says."""
        x = self.drop(x)
        if pre_logits or self.num_classes == 0:
            return x.mean(1)  # (N, num_features)
        return self.pool_steps(self.fc(x))

    def pool_steps(self, scores: torch.Tensor) -> torch.Tensor:
        """Per-step scores (N, T, K) -> (N, K) (or unchanged for ``temporal_pool="none"``)."""
        if self.temporal_pool == "none":
            return scores
        if self.temporal_pool == "logits":
            return scores.mean(1)
        # log of the mean per-step probability (official test rule), as a log-sum-exp over time
        return torch.logsumexp(scores.log_softmax(-1), dim=1) - math.log(scores.shape[1])

    def forward_steps(self, x: torch.Tensor, clip_markers: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, T, H, W) -> per-step class scores (N, T, K) (the official ``fc8-final`` blob)."""
        return self.fc(self.drop(self.forward_features(x, clip_markers)))

    def forward(self, x: torch.Tensor, clip_markers: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, clip_markers))

    # --- timm-style helpers ---
    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new per-step classifier for ``num_classes`` (0: the time-averaged features);
        ``global_pool`` sets ``temporal_pool``."""
        if global_pool is not None:
            if global_pool not in TEMPORAL_POOLS:
                raise ConvzooError(f"LRCN pools over time: global_pool must be one of {', '.join(TEMPORAL_POOLS)}")
            self.temporal_pool = global_pool
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the frame CNN's activations in the backward pass (they dominate the memory)."""
        self.grad_checkpointing = enable


# --- variants ----------------------------------------------------------------------------------------
# One record per variant: constructor arguments, the card's facts. Counts: official graph
# (train_test_lstm_RGB.prototxt) conv 4,310,656 + fc6 56,627,200 + LSTM 4 x 256 x (4,096 + 256) + biases
# + fc8 25,957; torch's nn.LSTM adds a second 4 x 256 bias.
# The CPU variants' frame CNN: narrow convs 8-16-32 and the whole 8 x 8 map of a 32 x 32 frame flattened into
# the FC (no pooling before it), so each feature can say where the digit is to the pixel-pair; a 4 x 4 pool
# of it blurs the position the LSTM reads the motion from (lrcn_moving_digits: 55 % -> 100 % held out).
SMALL_FRAME_CNN = {"widths": (8, 16, 32), "pool_size": 8}

LRCN_CFGS = {
    "lrcn_activity": {
        "kwargs": {"frame_cnn": "caffenet_fc6", "hidden_size": 256, "lstm_bias": "torch", "drop_rate": 0.5,
                   "frame_drop_rate": 0.9, "init": "caffe"},
        "num_classes": 101, "in_chans": 3, "input_size": (16, 227, 227), "test_size": (2, 67, 67),
        "params": 65_422_309,
        "params_source": ("official train_test_lstm_RGB.prototxt graph counted layer by layer (fact sheet G3 Paper 42: "
                          "65,421,285 with Caffe's single LSTM bias) + 1,024 for torch's second LSTM bias (b_hh)"),
        "capabilities": frozenset(),
        "recipes": ("lrcn_ucf101_paper",),
    },
    "lrcn_activity_caffe": {
        "kwargs": {"frame_cnn": "caffenet_fc6", "hidden_size": 256, "lstm_bias": "caffe", "drop_rate": 0.5,
                   "frame_drop_rate": 0.9, "init": "caffe"},
        "num_classes": 101, "in_chans": 3, "input_size": (16, 227, 227), "test_size": (2, 67, 67),
        "params": 65_421_285,
        "params_source": ("official train_test_lstm_RGB.prototxt graph counted layer by layer, Caffe's LSTM with one "
                          "bias vector (fact sheet G3 Paper 42: conv 4,310,656 + fc6 56,627,200 + LSTM 4,457,472 + "
                          "fc8 25,957)"),
        "capabilities": frozenset(),
        "recipes": (),
    },
    "lrcn_small": {
        "kwargs": {"frame_cnn": "small", "frame_cnn_kwargs": SMALL_FRAME_CNN, "hidden_size": 64, "lstm_bias": "torch"},
        "num_classes": 4, "in_chans": 1, "input_size": (16, 32, 32), "test_size": (4, 32, 32),
        "params": 318_140,
        "params_source": ("closed form of this CPU configuration (no paper count): frame CNN 268,216 (3x3 convs "
                          "1-8-16-32 with BN, FC 32*8*8 -> 128) + LSTM 4*64*(128 + 64) + 2*256 + FC 64*4 + 4"),
        "capabilities": frozenset({"compile", "onnx"}),
        "recipes": ("lrcn_moving_digits",),
    },
    "lrcn_small_single_frame": {
        "kwargs": {"frame_cnn": "small", "frame_cnn_kwargs": SMALL_FRAME_CNN, "recurrent": False},
        "num_classes": 4, "in_chans": 1, "input_size": (16, 32, 32), "test_size": (4, 32, 32),
        "params": 268_732,
        "params_source": "closed form of this CPU configuration (no paper count): frame CNN 268,216 + FC 128*4 + 4",
        "capabilities": frozenset({"compile", "onnx"}),
        "recipes": ("lrcn_single_frame_moving_digits",),
    },
}


def _card(name: str) -> ModelCard:
    cfg = LRCN_CFGS[name]
    official = cfg["kwargs"]["frame_cnn"] == "caffenet_fc6"
    return ModelCard(
        name=name, paper=42, family="lrcn", task="video_classification", dims=3, in_chans=cfg["in_chans"],
        num_classes=cfg["num_classes"], input_size=cfg["input_size"], test_size=cfg["test_size"],
        params=cfg["params"], params_source=cfg["params_source"], reference=None,
        capabilities=cfg["capabilities"], recipes=cfg["recipes"],
        # the official data layer: BGR minus the ImageNet mean [103.939, 116.779, 128.68] on a 0-255 scale
        mean=(128.68 / 255, 116.779 / 255, 103.939 / 255) if official else (0.0,),
        std=(1 / 255, 1 / 255, 1 / 255) if official else (1.0,),
        crop_pct=227 / 240 if official else 1.0,
        source=("paper Sec. 3 and 4.1 (LRCN-fc6, 16-frame clips, per-step scores averaged); official "
                "train_test_lstm_RGB.prototxt (layers, fillers), classify_video.py (mean of per-frame probabilities)"
                if official else "paper Sec. 3 (shared frame CNN -> LSTM -> per-step scores averaged over time); "
                "a small frame CNN for CPU (no paper configuration)"),
        notes=("UCF101 RGB stream; the flow stream is the same network on flow images (x, y, magnitude). Frames "
               "resized to 240x320 and cropped to 227 in the official data layer."
               if official else ("the single-frame baseline: the same frame CNN, no LSTM, frame-averaged"
                                 if not cfg["kwargs"].get("recurrent", True) else "")),
    )


def _lrcn(name: str, num_classes: int, in_chans: int, **kwargs) -> LRCN:
    return LRCN(num_classes=num_classes, in_chans=in_chans, **{**LRCN_CFGS[name]["kwargs"], **kwargs})


@register_model(_card("lrcn_activity"))
def lrcn_activity(num_classes: int = 101, in_chans: int = 3, **kwargs) -> LRCN:
    return _lrcn("lrcn_activity", num_classes, in_chans, **kwargs)


@register_model(_card("lrcn_activity_caffe"))
def lrcn_activity_caffe(num_classes: int = 101, in_chans: int = 3, **kwargs) -> LRCN:
    return _lrcn("lrcn_activity_caffe", num_classes, in_chans, **kwargs)


@register_model(_card("lrcn_small"))
def lrcn_small(num_classes: int = 4, in_chans: int = 1, **kwargs) -> LRCN:
    return _lrcn("lrcn_small", num_classes, in_chans, **kwargs)


@register_model(_card("lrcn_small_single_frame"))
def lrcn_small_single_frame(num_classes: int = 4, in_chans: int = 1, **kwargs) -> LRCN:
    return _lrcn("lrcn_small_single_frame", num_classes, in_chans, **kwargs)
