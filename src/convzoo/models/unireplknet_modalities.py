"""UniRepLKNet beyond images: the modality adapters of "UniRepLKNet: A Universal Perception Large-Kernel
ConvNet for Audio, Video, Point Cloud, Time-Series and Image Recognition" (CVPR 2024, arXiv 2311.15599;
seed paper 13; the same section in its TPAMI extension arXiv 2410.08049, seed paper 11).

The paper keeps the backbone (:class:`convzoo.models.unireplknet.UniRepLKNet`) unchanged and only turns each
modality into an image-like tensor ("modality-specific preprocessing", CVPR paper Sec. 5). The layouts below
are read from the official sub-projects (AILab-CVC/UniRepLKNet; facts only):

* **Audio** (``Audio/src/dataloader.py`` + ``models/ast_models.py``, after AST): a Kaldi-style log-Mel filter
  bank (25 ms Hann frames every 10 ms, 128 Mel bins, no dither), cut/zero-padded to ``target_length`` frames,
  normalised ``(x - mean) / (2 std)`` (Speech Commands V2: mean -6.845978, std 5.5654526), viewed as a
  one-channel image: the paper's 1 x T x F (``layout="paper"``); the official model transposes it to
  1 x F x T (``layout="official"``). :func:`log_mel_fbank`, :func:`spectrogram_image`, :func:`read_wav`.
* **Time series** (``Time-Series/models/Corrformer.py`` + ``layers/Embed.py``): each series (D variables x L
  steps) is normalised over time (mean/std per variable), embedded by Corrformer's token embedding (a
  circular 1-D conv of width 3, D -> d_model, no bias) plus the sinusoidal position embedding, and the
  (L, d_model) embedding is reshaped into a one-channel map (official: 192 x 192 for L * d_model = 36,864;
  here ``map_size``, default (L, d_model)). :class:`TimeSeriesEmbedding`, :class:`UniRepLKNetTimeSeries`
  (registered as ``unireplknet_ts``). Departure: the forecasting decoder of Corrformer is not built; the
  adapter feeds a classifier (the CPU-scale task here), and the temporal/geographic embeddings of the
  weather data (time stamps, station positions) are left out because the UCR sets carry none.
* **Point cloud** (``Point/models/p2p_adaptor_lk.py`` + ``layers/encoder.py``, after P2P, Wang et al. 2022):
  the cloud is rotated into ``num_views`` views (official Euler angles :data:`P2P_VIEWS`), each point gets a
  feature from a k-NN edge encoder (1x1 conv 3 -> 8, edge features (f_j - f_i, f_i), 1x1 conv -> 64,
  GroupNorm(4), LeakyReLU 0.2, max over k, 1x1 conv), the features are splatted (3 x 3, summed) onto an
  orthographic S x S grid centred on the object, refined by a residual 3x3 block + 1x1 conv, coloured by a
  1x1 conv to 3 channels, sigmoid, ImageNet-normalised: one RGB image per view. :class:`PointCloudProjector`,
  :class:`UniRepLKNetPoint` (view embeddings averaged, then a linear classifier). Departures: P2P's
  multi-view attention fusion and pooling-MLP head are replaced by the view average and one Linear; the
  view translation (which only moves z) is dropped because the projection is orthographic.
* **Video** (``Video/engine_for_finetuning.py``): a clip (B, 3, T, H, W) with T = 16 frames is reshaped, as
  memory, into (B, 3, 4H, 4W) (``layout="official"``: ``reshape``, so each row of the result holds s
  consecutive rows of one frame, s = sqrt(T)); ``layout="mosaic"`` tiles the frames in an s x s grid instead
  (same pixels, readable layout). :func:`video_to_image`, :func:`read_video` (PyAV).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convzoo.errors import ConvzooError
from convzoo.layers.head import Backbone
from convzoo.models.unireplknet import UNIREPLKNET_CFGS, UniRepLKNet
from convzoo.registry import ModelCard, register_model

__all__ = ["P2P_VIEWS", "PointCloudProjector", "TimeSeriesEmbedding", "UniRepLKNetPoint", "UniRepLKNetTimeSeries",
           "log_mel_fbank", "read_points", "read_video", "read_wav", "spectrogram_image", "video_to_image"]

# --- audio: Kaldi-style log-Mel filter bank -> one-channel image -----------------------------------------------

SPEECHCOMMANDS_NORM = (-6.845978, 5.5654526)  # official Audio/egs/speechcommands/run_sc.sh dataset_mean / std


def read_wav(path: str | Path) -> tuple[torch.Tensor, int]:
    """A .wav file -> (mono float32 waveform (N,) in [-1, 1] for integer PCM, sample rate)."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(str(path))
    except (OSError, ValueError) as e:
        raise ConvzooError(f"cannot read wav file {path}: {e}") from None
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        data = (data.astype(np.float64) - (info.max + 1 + info.min) / 2) / ((info.max - info.min + 1) / 2)
    wave = torch.from_numpy(data.astype(np.float32))
    return (wave.mean(-1) if wave.dim() == 2 else wave), int(rate)


def _mel(f: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(f / 700.0)  # Kaldi / HTK Mel scale


def log_mel_fbank(wave: torch.Tensor, sample_rate: int, num_mel_bins: int = 128, frame_ms: float = 25.0,
                  shift_ms: float = 10.0, preemphasis: float = 0.97, low_hz: float = 20.0) -> torch.Tensor:
    """Kaldi ``fbank`` as the official audio loader calls it (Hann window, no dither, no energy): (N,) -> (T, F).

    Frames of ``frame_ms`` every ``shift_ms`` (edges snipped: T = 1 + (N - win) // shift), DC removed per frame,
    pre-emphasis, symmetric Hann window, power spectrum of the next power-of-two FFT, triangular Mel filters
    (equal width on the Mel scale between ``low_hz`` and Nyquist), natural log floored at float eps.
    """
    wave = torch.as_tensor(wave, dtype=torch.float32).flatten()
    win, shift = int(sample_rate * frame_ms / 1000), int(sample_rate * shift_ms / 1000)
    if wave.numel() < win:
        raise ConvzooError(f"a waveform of {wave.numel()} samples is shorter than one {frame_ms} ms frame ({win})")
    frames = wave.unfold(0, win, shift)  # (T, win)
    frames = frames - frames.mean(-1, keepdim=True)
    prev = torch.cat([frames[:, :1], frames[:, :-1]], -1)
    frames = frames - preemphasis * prev
    frames = frames * torch.hann_window(win, periodic=False)
    n_fft = 1 << (win - 1).bit_length()
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)  # (T, n_fft/2 + 1)
    # triangular filters: centres equally spaced in Mel; weights from each FFT bin's Mel value
    lo, hi = _mel(torch.tensor(low_hz)), _mel(torch.tensor(sample_rate / 2.0))
    edges = torch.linspace(float(lo), float(hi), num_mel_bins + 2)  # (F + 2,)
    bins = _mel(torch.arange(n_fft // 2 + 1) * sample_rate / n_fft)  # (n_fft/2 + 1,)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up, down = (bins - left) / (centre - left), (right - bins) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)  # (F, n_fft/2 + 1)
    return torch.log(torch.clamp(power @ banks.T, min=torch.finfo(torch.float32).eps))  # (T, F)


def spectrogram_image(fbank: torch.Tensor, target_length: int | None = None,
                      norm: tuple[float, float] | None = SPEECHCOMMANDS_NORM, layout: str = "paper") -> torch.Tensor:
    """(T, F) filter bank -> a one-channel image: (1, T', F) (paper) or (1, F, T') (official transpose).

    ``target_length`` zero-pads or cuts the time axis (official: 128 frames for Speech Commands); ``norm`` =
    (mean, std) gives ``(x - mean) / (2 std)`` as the official loader, None leaves the values.
    """
    if fbank.dim() != 2:
        raise ConvzooError(f"expected a (frames, mel bins) filter bank, got shape {tuple(fbank.shape)}")
    if target_length is not None:
        t = fbank.shape[0]
        fbank = F.pad(fbank, (0, 0, 0, target_length - t)) if t < target_length else fbank[:target_length]
    if norm is not None:
        fbank = (fbank - norm[0]) / (2 * norm[1])
    if layout not in ("paper", "official"):
        raise ConvzooError(f"layout must be 'paper' (1 x T x F) or 'official' (1 x F x T), got {layout!r}")
    return (fbank if layout == "paper" else fbank.T).unsqueeze(0)


# --- time series: Corrformer's token embedding -> one-channel map -------------------------------------------

def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """(length, dim) fixed position embedding: sin on even, cos on odd columns (Vaswani et al. 2017)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class TimeSeriesEmbedding(nn.Module):
    """(B, D, L) series -> (B, 1, H, W) map with H * W = L * d_model (default (H, W) = (L, d_model)).

    Normalise every variable over time (mean 0, std 1, eps 1e-5), token embedding = circular Conv1d
    (D -> d_model, width 3, no bias, Kaiming-normal init), + sinusoidal position embedding, reshape.
    """

    def __init__(self, in_dims: int = 1, d_model: int = 64, map_size: tuple[int, int] | None = None):
        super().__init__()
        self.in_dims, self.d_model, self.map_size = in_dims, d_model, None if map_size is None else tuple(map_size)
        self.token = nn.Conv1d(in_dims, d_model, 3, padding=1, padding_mode="circular", bias=False)
        nn.init.kaiming_normal_(self.token.weight, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_dims:
            raise ConvzooError(f"expected series (B, {self.in_dims}, L), got shape {tuple(x.shape)}")
        b, _, length = x.shape
        x = x - x.mean(-1, keepdim=True)
        x = x / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5)
        e = self.token(x).transpose(1, 2)  # (B, L, d_model)
        e = e + sinusoid_table(length, self.d_model).to(e)
        h, w = self.map_size or (length, self.d_model)
        if h * w != length * self.d_model:
            raise ConvzooError(f"map_size {h}x{w} must hold L * d_model = {length} * {self.d_model} values")
        return e.reshape(b, 1, h, w)  # row-major, as the official reshape


class UniRepLKNetTimeSeries(Backbone):
    """TimeSeriesEmbedding -> UniRepLKNet(in_chans=1): (B, D, L) -> (B, num_classes).

    ``features`` gives the backbone's four stage maps of the embedded (H, W) map (``feature_info``
    reductions are relative to that map: strides 4..32 of (L, d_model) by default); the other keyword
    arguments (``drop_rate``, ``drop_path_rate``, ``global_pool``, ``deploy``, ...) go to the backbone.
    """

    def __init__(self, in_chans: int = 1, num_classes: int = 2, d_model: int = 64,
                 map_size: tuple[int, int] | None = None, **backbone):
        super().__init__()
        self.embed = TimeSeriesEmbedding(in_chans, d_model, map_size)
        self.backbone = UniRepLKNet(in_chans=1, num_classes=num_classes, **backbone)
        self.num_classes, self.num_features = num_classes, self.backbone.num_features
        self.feature_info = [{**f, "module": f"backbone.{f['module']}"} for f in self.backbone.feature_info]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(self.embed(x))  # (B, C3, h, w)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone.features(self.embed(x))  # four maps of the embedded map, strides 4..32

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.backbone.forward_head(x, pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.backbone.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.backbone.reset_classifier(num_classes, global_pool)
        self.num_classes = num_classes

    def reparameterize(self) -> None:
        self.backbone.reparameterize()


# --- point cloud: P2P projection -> one RGB image per view ----------------------------------------------------

# official Point/models/p2p_adaptor_lk.py ``views`` (first ``num_views`` are used; ModelNet-40 config: 4):
# Euler angles (x, y, z) in radians
P2P_VIEWS = ((0.0, 0.0, math.pi / 2), (math.pi / 2, 0.0, math.pi / 2), (math.pi, 0.0, math.pi / 2),
             (3 * math.pi / 2, 0.0, math.pi / 2), (5 * math.pi / 4, -math.pi / 4, math.pi / 2),
             (5 * math.pi / 4, math.pi / 4, math.pi / 2), (7 * math.pi / 4, -math.pi / 4, math.pi / 2),
             (7 * math.pi / 4, math.pi / 4, math.pi / 2), (0.0, -math.pi / 2, math.pi / 2),
             (0.0, math.pi / 2, math.pi / 2))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def euler_to_matrix(x: float, y: float, z: float) -> torch.Tensor:
    """R = R_x @ R_y @ R_z (the official euler2mat); points are rotated as ``p @ R.T``."""
    cx, sx, cy, sy, cz, sz = math.cos(x), math.sin(x), math.cos(y), math.sin(y), math.cos(z), math.sin(z)
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=torch.float32)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float32)
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=torch.float32)
    return rx @ ry @ rz


def read_points(path: str | Path) -> torch.Tensor:
    """(N, 3) float32 points from .npy, .xyz/.txt/.csv (x y z per line, extra columns ignored) or ASCII .ply."""
    path = Path(path)
    if not path.is_file():
        raise ConvzooError(f"point-cloud file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        pts = np.load(path)
    elif suffix == ".ply":
        lines = path.read_text(errors="replace").splitlines()
        if not lines or lines[0].strip() != "ply" or not any(li.startswith("format ascii") for li in lines[:5]):
            raise ConvzooError(f"{path}: only ASCII PLY files are read (header 'ply', 'format ascii 1.0')")
        n = next((int(li.split()[2]) for li in lines if li.startswith("element vertex")), None)
        end = next((i for i, li in enumerate(lines) if li.strip() == "end_header"), None)
        if n is None or end is None:
            raise ConvzooError(f"{path}: PLY header without 'element vertex N' or 'end_header'")
        pts = np.array([li.split()[:3] for li in lines[end + 1:end + 1 + n]], dtype=np.float64)
    elif suffix in (".xyz", ".txt", ".csv"):
        pts = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=2)[:, :3]
    else:
        raise ConvzooError(f"{path}: expected a .npy, .xyz, .txt, .csv or ASCII .ply point cloud")
    pts = np.asarray(pts)
    if pts.ndim != 2 or pts.shape[1] < 3 or len(pts) < 1:
        raise ConvzooError(f"{path}: expected an (N, 3) array of points, got shape {pts.shape}")
    return torch.from_numpy(np.ascontiguousarray(pts[:, :3], dtype=np.float32))


class _ResidualBlock(nn.Module):
    """3x3 conv-BN-ReLU -> 3x3 conv-BN -> + x -> ReLU (the BasicBlock of P2P's image block)."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class PointCloudProjector(nn.Module):
    """(B, N, 3) points -> (B * num_views, 3, img_size, img_size) images (views of one cloud are consecutive)."""

    def __init__(self, num_views: int = 4, img_size: int = 224, k: int = 32, trans_dim: int = 8,
                 graph_dim: int = 64):
        super().__init__()
        if not 1 <= num_views <= len(P2P_VIEWS) or img_size < 8 or k < 1:
            raise ConvzooError(f"need 1 <= num_views <= {len(P2P_VIEWS)}, img_size >= 8, k >= 1; got "
                               f"{num_views}, {img_size}, {k}")
        self.num_views, self.img_size, self.k = num_views, img_size, k
        self.register_buffer("rotations", torch.stack([euler_to_matrix(*v) for v in P2P_VIEWS[:num_views]]),
                             persistent=False)  # (V, 3, 3)
        self.input_trans = nn.Conv1d(3, trans_dim, 1)
        self.graph_layer = nn.Sequential(nn.Conv2d(2 * trans_dim, graph_dim, 1, bias=False), nn.GroupNorm(4, graph_dim),
                                         nn.LeakyReLU(0.2))
        self.proj_layer = nn.Conv1d(graph_dim, graph_dim, 1)
        self.img_block = nn.Sequential(_ResidualBlock(graph_dim), nn.Conv2d(graph_dim, graph_dim, 1))
        self.img_layer = nn.Conv2d(graph_dim, 3, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def point_features(self, pts: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) -> (B, N, graph_dim): k-NN edge features (f_j - f_i, f_i), max over the k neighbours."""
        f = self.input_trans(pts.transpose(1, 2))  # (B, t, N)
        k = min(self.k, pts.shape[1])
        idx = torch.cdist(pts, pts).topk(k, dim=-1, largest=False).indices  # (B, N, k), self included
        nbr = torch.gather(f.unsqueeze(2).expand(-1, -1, pts.shape[1], -1), 3,
                           idx.unsqueeze(1).expand(-1, f.shape[1], -1, -1))  # (B, t, N, k)
        centre = f.unsqueeze(-1).expand_as(nbr)
        g = self.graph_layer(torch.cat([nbr - centre, centre], 1)).amax(-1)  # (B, graph_dim, N)
        return self.proj_layer(g).transpose(1, 2)

    def pixel_indices(self, xy: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) projected coordinates -> (B, 9N) flat pixel indices of each point's 3 x 3 splat, the
        object's box centred on the image (grid step = largest xy extent / (S - 3))."""
        s = self.img_size
        lo = xy.amin(1, keepdim=True)
        step = ((xy.amax(1) - xy.amin(1)).amax(-1) / (s - 3)).clamp(min=1e-12)  # (B,)
        cell = torch.floor((xy - lo) / step[:, None, None])  # (B, N, 2)
        off = torch.tensor([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=cell.dtype, device=cell.device)
        dense = (cell.unsqueeze(2) + off + 1).flatten(1, 2)  # (B, 9N, 2)
        centre = torch.floor((dense.amax(1) + dense.amin(1)) / 2)  # (B, 2)
        dense = (dense + (s // 2 - 1 - centre).unsqueeze(1)).clamp(0, s - 1).long()
        return dense[..., 0] * s + dense[..., 1]

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        if pts.dim() != 3 or pts.shape[-1] != 3:
            raise ConvzooError(f"expected points (B, N, 3), got shape {tuple(pts.shape)}")
        b, v, s = pts.shape[0], self.num_views, self.img_size
        feats = self.point_features(pts).repeat_interleave(v, 0)  # (B V, N, C)
        rotated = torch.einsum("bnj,vij->bvni", pts, self.rotations).flatten(0, 1)  # (B V, N, 3)
        idx = self.pixel_indices(rotated[..., :2])  # (B V, 9N)
        c = feats.shape[-1]
        grid = feats.new_zeros(b * v, s * s, c)
        grid.scatter_add_(1, idx.unsqueeze(-1).expand(-1, -1, c), feats.repeat_interleave(9, 1))
        img = grid.view(b * v, s, s, c).permute(0, 3, 1, 2)  # (B V, C, S, S)
        img = torch.sigmoid(self.img_layer(self.img_block(img)))  # (B V, 3, S, S) in (0, 1)
        return (img - self.mean) / self.std


class UniRepLKNetPoint(nn.Module):
    """PointCloudProjector -> UniRepLKNet embedding per view -> mean over views -> Linear."""

    def __init__(self, num_classes: int = 40, num_views: int = 4, img_size: int = 224, **backbone):
        super().__init__()
        self.projector = PointCloudProjector(num_views, img_size)
        self.backbone = UniRepLKNet(in_chans=3, num_classes=0, **backbone)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        z = self.backbone(self.projector(pts))  # (B V, C)
        return self.head(z.view(pts.shape[0], self.projector.num_views, -1).mean(1))


# --- video: frames -> one image ------------------------------------------------------------------------------

def video_to_image(clip: torch.Tensor, layout: str = "official") -> torch.Tensor:
    """(B, C, T, H, W) with T = s^2 -> (B, C, s H, s W).

    ``official``: ``clip.reshape(B, C, sH, sW)`` (the official fine-tuning loop, T = 16 -> 4H x 4W);
    ``mosaic``: frame t at grid cell (t // s, t % s).
    """
    if clip.dim() != 5:
        raise ConvzooError(f"expected a clip (B, C, T, H, W), got shape {tuple(clip.shape)}")
    b, c, t, h, w = clip.shape
    s = math.isqrt(t)
    if s * s != t:
        raise ConvzooError(f"the number of frames must be a square (16 in the paper), got {t}")
    if layout == "official":
        return clip.reshape(b, c, s * h, s * w)
    if layout == "mosaic":
        return clip.reshape(b, c, s, s, h, w).permute(0, 1, 2, 4, 3, 5).reshape(b, c, s * h, s * w)
    raise ConvzooError(f"layout must be 'official' or 'mosaic', got {layout!r}")


def read_video(path: str | Path, num_frames: int = 16, size: int | None = None) -> torch.Tensor:
    """Decode a clip with PyAV and take ``num_frames`` equally spaced frames: (3, T, H, W) float in [0, 1]
    (``size``: bilinear resize of the shorter side, then a centre square crop of ``size``)."""
    from convzoo.data.video import decode_frames

    frames = decode_frames(path)
    pick = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)
    clip = torch.from_numpy(np.stack([frames[i] for i in pick])).permute(0, 3, 1, 2).float() / 255  # (T, 3, H, W)
    if size is not None:
        h, w = clip.shape[-2:]
        scale = size / min(h, w)
        clip = F.interpolate(clip, size=(max(size, round(h * scale)), max(size, round(w * scale))),
                             mode="bilinear", align_corners=False, antialias=True)
        top, left = (clip.shape[-2] - size) // 2, (clip.shape[-1] - size) // 2
        clip = clip[..., top:top + size, left:left + size]
    return clip.permute(1, 0, 2, 3).contiguous()  # (3, T, H, W)


# --- registered time-series classifier (the CPU-scale recipe's model) ---------------------------------------

@register_model(ModelCard(
    name="unireplknet_ts", paper=13, family="unireplknet", task="classification", dims=1, in_chans=1,
    num_classes=2, input_size=(150,), test_size=(32,), params=4_328_534,
    params_source="closed form, tests/models/test_unireplknet_modalities.py::test_ts_model_params_closed_form: "
                  "the official UniRepLKNet-A train-time count (4,649,060 at in_chans 3, 1000 classes) with a "
                  "1-channel stem and 2 classes, plus the 1 x 64 x 3 token embedding",
    source="CVPR paper Sec. 5 (time series via Corrformer's embedding); official Time-Series/models/Corrformer.py "
           "and layers/Embed.py (token embedding, reshape to one channel)",
    capabilities=frozenset({"bf16", "features", "reparam"}),
    recipes=("unireplknet_ucr",),
    notes="UniRepLKNet-A backbone (depths 2-2-6-2, widths 40-80-160-320, kernel plan of A) with in_chans=1 behind "
          "the time-series embedding (d_model 64, map (L, 64)); the paper pairs the S backbone with Corrformer's "
          "forecasting decoder, not built here."))
def unireplknet_ts(**kwargs) -> UniRepLKNetTimeSeries:
    cfg = {k: v for k, v in UNIREPLKNET_CFGS["a"].items()}
    return UniRepLKNetTimeSeries(**{**cfg, **kwargs})
