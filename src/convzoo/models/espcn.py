"""ESPCN: Efficient Sub-Pixel Convolutional Neural Network (paper 41).

Shi, Caballero, Huszar, Totz, Aitken, Bishop, Rueckert, Wang, "Real-Time Single Image and Video
Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016,
arXiv 1609.05158.

What is implemented (paper Sec. 2 and 3.1): an ``L = 3`` layer network that works on the
low-resolution image directly (no bicubic pre-upsampling) and upsamples only at the very end with a
sub-pixel convolution (Eq. 4, :class:`~convzoo.layers.subpixel.SubPixelConv2d`):

    conv 5x5, 64 -> tanh -> conv 3x3, 32 -> tanh -> conv 3x3, r^2 C -> periodic shuffling PS

``(f1, n1) = (5, 64)``, ``(f2, n2) = (3, 32)``, ``f3 = 3``; tanh because the paper reports it beats
ReLU (Sec. 3.1); ``C = 1`` (the Y channel of YCbCr; chroma is upsampled bicubically, see
:func:`convzoo.tasks.super_resolution.upscale_image`). All convolutions are zero-padded to keep the LR
size, so an ``h x w`` input gives an ``rh x rw`` output.

Departures / options: there is no official code. ``act="relu"`` and ``widths``/``kernels`` are
options for the popular re-implementations (pytorch/examples ``super_resolution`` is a 4-layer ReLU
net, not this one). The paper gives no initialisation; PyTorch's default conv initialisation is
used. ``icnr=True`` applies ICNR to the last layer (Aitken et al. 2017, later work; off by default).
The paper's 10x smaller learning rate for the last layer is a recipe setting
(``optimizer.param_groups: [{match: "upsample.*", lr_mult: 0.1}]``).

Video (paper Sec. 3.4 / 4.5: 1080p video super-resolved frame by frame): ``espcn_x3`` runs per frame.
``espcn_x3_fusion3`` is the multi-frame option: early fusion of ``2k + 1 = 3`` neighbouring LR frames stacked on
the channel axis (``in_chans = frames``, ``out_chans = 1``), so only the first layer grows (``25 * 64`` weights
per extra frame); the rest is the paper's network. Early fusion without motion compensation is the simplest
multi-frame input of the authors' follow-up (Caballero et al. 2017, arXiv 1611.05250); the ESPCN paper itself
has no multi-frame network. Pass ``in_chans=2k+1`` for other windows. Data: :mod:`convzoo.data.video_sr`.

Compute (paper Sec. 2.2: cost is proportional to the LR size): MACs per LR pixel =
``25*64*C + 9*64*32 + 9*32*r^2 C`` = 21,184 / 22,624 / 24,640 for r = 2 / 3 / 4 (C = 1). The cards
state MACs for a 1920x1080 output frame, i.e. LR 960x540 (x2), 640x360 (x3), 480x270 (x4).
"""

from __future__ import annotations

import torch
from torch import nn

from convzoo.layers.subpixel import SubPixelConv2d
from convzoo.registry import ModelCard, register_model

_ACTS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class ESPCN(nn.Module):
    """ESPCN (paper Sec. 2, 3.1): two LR-space feature layers and a sub-pixel convolution layer.

    (B, in_chans, h, w) -> (B, out_chans, scale*h, scale*w); ``out_chans`` defaults to ``in_chans``. Early
    fusion of ``frames`` video frames: ``in_chans = frames * out_chans`` (frame-major channels).
    """

    def __init__(self, scale: int = 3, in_chans: int = 1, widths: tuple[int, int] = (64, 32),
                 kernels: tuple[int, int, int] = (5, 3, 3), act: str = "tanh", icnr: bool = False,
                 out_chans: int | None = None):
        super().__init__()
        if act not in _ACTS:
            raise ValueError(f"act must be one of {sorted(_ACTS)}, got {act!r}")
        if len(widths) != 2 or len(kernels) != 3:
            raise ValueError(f"ESPCN has L=3 layers: widths needs 2 entries and kernels 3, got {widths}, "
                             f"{kernels}")
        out_chans = in_chans if out_chans is None else int(out_chans)
        if in_chans % out_chans:
            raise ValueError(f"in_chans ({in_chans}) must be a multiple of out_chans ({out_chans}): frames x channels")
        self.scale, self.in_chans, self.out_chans = int(scale), in_chans, out_chans
        self.frames = in_chans // out_chans  # LR frames fused at the input (1: single image / frame)
        self.widths, self.kernels = tuple(widths), tuple(kernels)
        (n1, n2), (f1, f2, f3) = widths, kernels
        # layer 1: patch extraction in LR space, (B, frames C, h, w) -> (B, n1, h, w) (early fusion when frames > 1)
        self.conv1 = nn.Conv2d(in_chans, n1, f1, padding=f1 // 2)
        self.act1 = _ACTS[act]()
        # layer 2: non-linear mapping, (B, n1, h, w) -> (B, n2, h, w)
        self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        self.act2 = _ACTS[act]()
        # layer 3: sub-pixel convolution (Eq. 4), (B, n2, h, w) -> (B, r^2 C, h, w) -> (B, C, rh, rw)
        self.upsample = SubPixelConv2d(n2, out_chans, self.scale, f3, icnr=icnr)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The LR-space feature maps f^{L-1}(I_LR): (B, C, h, w) -> (B, n2, h, w)."""
        return self.act2(self.conv2(self.act1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.forward_features(x))


# --- variants -----------------------------------------------------------------------------------
# scale -> LR size (H, W) whose x-scale output is a 1920x1080 frame (the paper's video setting, Sec. 3.4)
ESPCN_CFGS = {
    "espcn_x2": {"scale": 2, "params": 21_284, "lr_1080p": (540, 960), "macs": 10_981_785_600},
    "espcn_x3": {"scale": 3, "params": 22_729, "lr_1080p": (360, 640), "macs": 5_212_569_600},
    "espcn_x4": {"scale": 4, "params": 24_752, "lr_1080p": (270, 480), "macs": 3_193_344_000},
}
# Two sets of shipped weights per scale, one registered name each (``pretrained=True`` loads
# ``convzoo/weights/<name>.safetensors``); the network is the same (Sec. 3.1), only the training LR differs:
# * ``espcn_x{r}`` (default): trained on a mixture of bicubic downscaling, Gaussian blur sigma 1 and
#   Gaussian blur sigma r/2 (recipe ``espcn_x{r}_mixed``; not the paper's), so it beats bicubic
#   interpolation on sharp (benchmark-style bicubic) and on blurred LR photos alike (held-out margins in
#   tests/models/test_espcn.py; x4 on sigma 1, the most aliased LR, only +0.2 dB);
# * ``espcn_x{r}_paper``: the paper's protocol (Sec. 3.1, blur + sub-sample; sigma r/2 here, the paper
#   gives none), recipe ``espcn_x{r}_photos``: best on that blur, over-sharpens sharper inputs.
WEIGHTS = {
    "": ("mixed", ("a mixture of bicubic downscaling (torch, antialiased), Gaussian blur sigma 1 and "
                   "Gaussian blur sigma r/2, each + decimation (not the paper's protocol); held-out margin "
                   "over bicubic >= 0.3 dB under each, except x4 sigma 1: +0.2 dB")),
    "_paper": ("photos", ("the paper's protocol, Gaussian blur (sigma r/2) + decimation only; on sharper "
                          "inputs (e.g. bicubic-downscaled photos) they over-sharpen and lose to bicubic "
                          "interpolation -- use espcn_x{r} for those")),
}
MACS_TEST = "tests/models/test_espcn.py::test_espcn_params_and_macs_from_the_paper_layers"
# early fusion (multi-frame) variants: name -> frames; counts from the closed form in FUSION_TEST
FUSION = {"espcn_x3_fusion3": {"base": "espcn_x3", "frames": 3, "params": 25_929, "macs": 5_949_849_600}}
FUSION_TEST = "tests/tasks/test_video_sr.py::test_fusion_counts_closed_form"


def _card(base: str, suffix: str) -> ModelCard:
    cfg, (recipe, trained_on) = ESPCN_CFGS[base], WEIGHTS[suffix]
    r, (h, w) = cfg["scale"], cfg["lr_1080p"]
    name = base + suffix
    return ModelCard(
        name=name, paper=41, family="espcn", task="super_resolution", dims=2, in_chans=1, num_classes=0,
        scale=r,
        input_size=(h, w), test_size=(16, 16),
        params=cfg["params"],
        params_source=("closed form of the paper's Sec. 3.1 architecture (5x5x64, 3x3x32, 3x3xr^2, C=1, with "
                       f"biases): 1,664 + 18,464 + (288+1) r^2, {MACS_TEST}; the paper states no count"),
        macs=cfg["macs"], macs_rtol=0.0,
        macs_source=(f"closed form, {MACS_TEST}: (1,600 + 18,432 + 288 r^2) MACs per LR pixel (paper "
                     f"Sec. 3.1 layer sizes) x {h}x{w} LR pixels = one 1920x1080 Y frame at x{r} (paper "
                     "Sec. 3.4 real-time 1080p claim); biases not counted"),
        reference=None,
        capabilities=frozenset({"compile", "onnx", "channels_last", "bf16"}),
        recipes=(f"espcn_x{r}_{recipe}",) + (("espcn_x3_imagenet_paper",) if suffix and r == 3 else ()),
        source="paper Sec. 2.2 (Eq. 4, sub-pixel convolution), Sec. 3.1 (l=3, (f,n) = (5,64),(3,32),3; tanh)",
        notes=("Y channel only (in_chans=1); chroma upsampled bicubically by upscale_image. Shipped weights "
               "(pretrained=True) were trained a few CPU minutes on bundled photos (recipe "
               f"espcn_x{r}_{recipe}, scripts/train_espcn_weights.py), not on ImageNet, for LR made by "
               f"{trained_on.format(r=r)}."),
    )


def _fusion_card(name: str) -> ModelCard:
    cfg = FUSION[name]
    base, f = ESPCN_CFGS[cfg["base"]], cfg["frames"]
    r, (h, w) = base["scale"], base["lr_1080p"]
    return ModelCard(
        name=name, paper=41, family="espcn", task="super_resolution", dims=2, in_chans=f, num_classes=0,
        scale=r, input_size=(h, w), test_size=(16, 16),
        params=cfg["params"],
        params_source=(f"closed form, {FUSION_TEST}: the paper's x{r} network with a first layer over {f} stacked "
                       f"frames, 1,664 + 1,600 ({f} - 1) + 18,464 + 289 r^2; no source states a count"),
        macs=cfg["macs"], macs_rtol=0.0,
        macs_source=(f"closed form, {FUSION_TEST}: (1,600 x {f} + 18,432 + 288 r^2) MACs per LR pixel x {h}x{w} "
                     f"LR pixels (one 1920x1080 output frame); biases not counted"),
        reference=None,
        capabilities=frozenset({"compile", "onnx", "channels_last", "bf16"}),
        recipes=("espcn_x3_video_fusion",),
        source=("paper Sec. 3.1 network; multi-frame early fusion as in Caballero et al. 2017 (arXiv 1611.05250), "
                "the option the issue asks for (the ESPCN paper super-resolves video frame by frame)"),
        notes=(f"input: {f} neighbouring LR Y frames t-{f // 2}..t+{f // 2} on the channel axis, output: HR Y frame t "
               f"(data set video_sr with frames={f}); no shipped weights (train espcn_x3_video_fusion)"),
    )


def _espcn(name: str, **kwargs) -> ESPCN:
    kwargs.setdefault("scale", ESPCN_CFGS[name]["scale"])
    return ESPCN(**kwargs)


@register_model(_card("espcn_x2", ""))
def espcn_x2(**kwargs) -> ESPCN:
    return _espcn("espcn_x2", **kwargs)


@register_model(_card("espcn_x3", ""))
def espcn_x3(**kwargs) -> ESPCN:
    return _espcn("espcn_x3", **kwargs)


@register_model(_card("espcn_x4", ""))
def espcn_x4(**kwargs) -> ESPCN:
    return _espcn("espcn_x4", **kwargs)


@register_model(_card("espcn_x2", "_paper"))
def espcn_x2_paper(**kwargs) -> ESPCN:
    return _espcn("espcn_x2", **kwargs)


@register_model(_card("espcn_x3", "_paper"))
def espcn_x3_paper(**kwargs) -> ESPCN:
    return _espcn("espcn_x3", **kwargs)


@register_model(_card("espcn_x4", "_paper"))
def espcn_x4_paper(**kwargs) -> ESPCN:
    return _espcn("espcn_x4", **kwargs)


@register_model(_fusion_card("espcn_x3_fusion3"))
def espcn_x3_fusion3(**kwargs) -> ESPCN:
    """ESPCN x3 over 3 stacked LR frames (early fusion); ``in_chans=2k+1`` for another window."""
    kwargs.setdefault("in_chans", FUSION["espcn_x3_fusion3"]["frames"])
    kwargs.setdefault("out_chans", 1)
    return ESPCN(scale=kwargs.pop("scale", 3), **kwargs)
