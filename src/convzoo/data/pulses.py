"""Simulated nuclear-detector pulses for the PulseDL-II-like pipeline (seed paper 3).

Paper: Ai et al., "PulseDL-II: A System-on-Chip Neural Network Accelerator for Timing and Energy
Extraction of Nuclear Detector Signals", arXiv 2209.00884 (IEEE TNS 2023). The paper measures its
networks on DDS-generated pulses digitised by an ADC; that bench data is not public and the paper
body (pulse shape, ADC rate, window length) was not available to us, so everything below is a
documented *PulseDL-II-like* simulator, not the paper's setup. The only numbers taken from the
paper are its operating point, SNR = 47.4 dB, and its results there (60 ps, 0.40 %; abstract).

Model of one pulse (our choice, stated here once):

* Shape: a bi-exponential detector pulse, the standard "fast rise, slow decay" template,
  ``f(t) = (exp(-t / tau_d) - exp(-t / tau_r)) / f_peak`` for ``t >= 0`` and 0 before, normalised
  to peak 1. ``rise_ns`` = tau_r and ``decay_ns`` = tau_d are time *constants* (not 10-90 % times).
  The peak lies ``t_peak = ln(tau_d / tau_r) * tau_r * tau_d / (tau_d - tau_r)`` after the onset.
* Arrival time ``t0`` (ns, continuous: any sub-sample phase) is the onset, measured from sample 0;
  sample ``k`` is taken at ``t = k * sample_period_ns``.
* Amplitude = energy (one ADC unit per energy unit): ``v_k = baseline + E * f(k T - t0) + noise``.
* Noise: white Gaussian with ``SNR_dB = 20 log10(A_peak / sigma_noise)``. With
  ``noise_ref="pulse"`` (default) A_peak is each pulse's own amplitude, so every pulse has exactly
  the requested SNR (the paper quotes one SNR per measurement); with ``noise_ref="max_energy"``
  sigma is fixed by the largest energy in ``energy_range``, as for a detector whose noise does not
  depend on the signal. ``snr_db`` may be one value or a ``(lo, hi)`` range (uniform in dB, per pulse).
* Optional ADC: ``adc_bits`` levels over ``adc_range`` (volts), round to nearest and clip.

Targets of the data set are normalised to [0, 1] over ``t0_range`` and ``energy_range``;
``DataInfo.extra`` carries the constants to undo that (``denormalise``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from convzoo.data.registry import SPLITS, DataInfo, register_dataset
from convzoo.errors import ConvzooError

PAPER_SNR_DB = 47.4  # the paper's operating point (abstract)


@dataclass(frozen=True)
class PulseConfig:
    """Every physical setting of the simulator; the defaults are the documented PulseDL-II-like set.

    500 MS/s ADC (2 ns), tau_r = 4 ns, tau_d = 40 ns, 64-sample window (128 ns), onset anywhere in
    16-24 ns (samples 8-12: a coarse trigger has placed the window, the residual jitter is four
    samples plus the sub-sample phase), energies 0.5-1.5 (arbitrary units).
    """

    length: int = 64
    sample_period_ns: float = 2.0
    rise_ns: float = 4.0
    decay_ns: float = 40.0
    t0_range: tuple[float, float] = (16.0, 24.0)
    energy_range: tuple[float, float] = (0.5, 1.5)
    baseline: float = 0.0
    adc_bits: int | None = None
    adc_range: tuple[float, float] = (-0.5, 2.0)
    noise_ref: str = "pulse"  # "pulse" | "max_energy"

    def check(self) -> PulseConfig:
        if not self.decay_ns > self.rise_ns > 0:
            raise ConvzooError(f"pulse needs decay_ns > rise_ns > 0, got rise {self.rise_ns}, "
                               f"decay {self.decay_ns}")
        if self.length < 4 or self.sample_period_ns <= 0:
            raise ConvzooError(f"pulse window needs length >= 4 and sample_period_ns > 0, got {self.length}, "
                               f"{self.sample_period_ns}")
        lo, hi = self.t0_range
        if not 0 <= lo <= hi < self.length * self.sample_period_ns:
            raise ConvzooError(f"t0_range {self.t0_range} must lie inside the window [0, "
                               f"{self.length * self.sample_period_ns}) ns")
        if not 0 < self.energy_range[0] <= self.energy_range[1]:
            raise ConvzooError(f"energy_range must be positive (lo <= hi), got {self.energy_range}")
        if self.noise_ref not in ("pulse", "max_energy"):
            raise ConvzooError(f"noise_ref must be 'pulse' or 'max_energy', got {self.noise_ref!r}")
        return self


def peak_time(rise_ns: float, decay_ns: float) -> float:
    """Time from onset to the peak of the bi-exponential (ns)."""
    return float(np.log(decay_ns / rise_ns) * rise_ns * decay_ns / (decay_ns - rise_ns))


def pulse_shape(t_ns, rise_ns: float, decay_ns: float) -> np.ndarray:
    """The unit-peak bi-exponential ``f(t)`` at times ``t_ns`` after the onset (0 for t < 0)."""
    t = np.asarray(t_ns, dtype=np.float64)
    tp = peak_time(rise_ns, decay_ns)
    peak = np.exp(-tp / decay_ns) - np.exp(-tp / rise_ns)
    tc = np.clip(t, 0.0, None)
    return np.where(t > 0, (np.exp(-tc / decay_ns) - np.exp(-tc / rise_ns)) / peak, 0.0)


def snr_to_sigma(amplitude, snr_db) -> np.ndarray:
    """sigma_noise such that 20 log10(amplitude / sigma_noise) = snr_db."""
    return np.asarray(amplitude, dtype=np.float64) / 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 20.0)


def _snr_values(snr_db, n: int, rng: np.random.Generator) -> np.ndarray:
    if np.ndim(snr_db) == 0:
        return np.full(n, float(snr_db))
    lo, hi = (float(v) for v in snr_db)
    if lo > hi:
        raise ConvzooError(f"snr_db range must be [lo, hi], got {list(snr_db)}")
    return rng.uniform(lo, hi, n)


def quantise(v: np.ndarray, bits: int, adc_range: tuple[float, float]) -> np.ndarray:
    """An ideal ``bits``-bit ADC over ``adc_range``: round to the nearest level, clip to the range."""
    lo, hi = adc_range
    lsb = (hi - lo) / 2 ** bits
    return lo + np.clip(np.round((v - lo) / lsb), 0, 2 ** bits - 1) * lsb


def simulate_pulses(n: int, *, length: int = 64, sample_period_ns: float = 2.0, rise_ns: float = 4.0,
                    decay_ns: float = 40.0, snr_db=PAPER_SNR_DB, t0_range=(16.0, 24.0),
                    energy_range=(0.5, 1.5), adc_bits: int | None = None, adc_range=(-0.5, 2.0),
                    baseline: float = 0.0, noise_ref: str = "pulse", seed=0,
                    return_snr: bool = False):
    """``n`` digitised pulses -> ``(waveforms (n, L) float32, t0_ns (n,), energy (n,))`` (float64).

    ``snr_db``: one value, ``(lo, hi)`` (uniform per pulse) or ``None`` (noiseless). ``seed``: an int,
    SeedSequence or numpy Generator. ``return_snr=True`` appends the per-pulse SNR (dB) array.
    """
    cfg = PulseConfig(length, sample_period_ns, rise_ns, decay_ns, tuple(t0_range), tuple(energy_range),
                      baseline, adc_bits, tuple(adc_range), noise_ref).check()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    t0 = rng.uniform(*cfg.t0_range, n)  # (n,)
    energy = rng.uniform(*cfg.energy_range, n)  # (n,)
    t = np.arange(length) * sample_period_ns  # (L,)
    v = energy[:, None] * pulse_shape(t[None, :] - t0[:, None], rise_ns, decay_ns)  # (n, L)
    snr = np.full(n, np.inf) if snr_db is None else _snr_values(snr_db, n, rng)
    if snr_db is not None:
        ref = energy if noise_ref == "pulse" else np.full(n, cfg.energy_range[1])
        v = v + snr_to_sigma(ref, snr)[:, None] * rng.standard_normal((n, length))
    v = v + baseline
    if adc_bits is not None:
        v = quantise(v, int(adc_bits), cfg.adc_range)
    out = (v.astype(np.float32), t0, energy)
    return out + (snr,) if return_snr else out


# --- normalisation of the targets -----------------------------------------------------------------
def normalise(t0_ns, energy, extra: dict) -> np.ndarray:
    """(t0 ns, E) -> targets in [0, 1]: ``(t0 - t0_lo) / t0_span``, ``(E - E_lo) / E_span``; shape (n, 2)."""
    t = (np.asarray(t0_ns, dtype=np.float64) - extra["t0_offset_ns"]) / extra["t0_scale_ns"]
    e = (np.asarray(energy, dtype=np.float64) - extra["energy_offset"]) / extra["energy_scale"]
    return np.stack([t, e], -1)


def denormalise(targets, extra: dict):
    """Inverse of :func:`normalise`: ``targets[..., 0]`` -> t0 in ns, ``targets[..., 1]`` -> energy."""
    return (targets[..., 0] * extra["t0_scale_ns"] + extra["t0_offset_ns"],
            targets[..., 1] * extra["energy_scale"] + extra["energy_offset"])


def pulse_extra(cfg: PulseConfig) -> dict:
    """What ``DataInfo.extra`` records: the simulator settings and the normalisation constants."""
    return {**asdict(cfg), "t0_offset_ns": cfg.t0_range[0],
            "t0_scale_ns": cfg.t0_range[1] - cfg.t0_range[0] or 1.0, "energy_offset": cfg.energy_range[0],
            "energy_scale": cfg.energy_range[1] - cfg.energy_range[0] or 1.0}


DEFAULT_EXTRA = pulse_extra(PulseConfig())  # used by predict() when no data set is at hand


class PulseDataset(Dataset):
    """Pre-simulated pulses held in memory. Items: ``(waveform (1, L) float32, target (2,) float32)``
    with target = [t0 normalised, energy normalised]. ``t0_ns``, ``energy`` and ``snr_db`` keep
    the raw truth for evaluation."""

    def __init__(self, waveforms: np.ndarray, t0_ns: np.ndarray, energy: np.ndarray, snr_db: np.ndarray,
                 info: DataInfo):
        w = np.ascontiguousarray(waveforms, dtype=np.float32)
        self.waveforms = torch.from_numpy(w)[:, None]  # (n, 1, L)
        self.t0_ns, self.energy, self.snr_db = t0_ns, energy, snr_db
        self.targets = torch.from_numpy(normalise(t0_ns, energy, info.extra).astype(np.float32))  # (n, 2)
        self.info = info

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return self.waveforms[i], self.targets[i]


def make_pulse_dataset(n: int, cfg: PulseConfig, snr_db, seed, name: str = "pulses") -> PulseDataset:
    """Simulate ``n`` pulses with ``cfg`` at ``snr_db`` and wrap them as a :class:`PulseDataset`."""
    w, t0, e, snr = simulate_pulses(n, **asdict(cfg), snr_db=snr_db, seed=seed, return_snr=True)
    extra = {**pulse_extra(cfg), "snr_db": snr_db if np.ndim(snr_db) == 0 else list(snr_db)}
    info = DataInfo(name=name, task="pulse_regression", in_chans=1, num_classes=2, input_size=(cfg.length,),
                    class_names=("t0", "energy"), extra=extra)
    return PulseDataset(w, t0, e, snr, info)


@register_dataset("pulses")
def build_pulses(split: str, root: str | None = None, *, n_train: int = 30000, n_val: int = 2000,
                 n_test: int = 5000, snr_db=PAPER_SNR_DB, eval_snr_db=None, seed: int = 0,
                 **sim) -> PulseDataset:
    """The simulated PulseDL-II-like pulse set (module docstring). ``snr_db`` is a value or a
    ``[lo, hi]`` range; ``eval_snr_db`` (optional) replaces it for the val and test splits, e.g.
    train over 25-55 dB and report at the paper's 47.4 dB. ``sim``: any :class:`PulseConfig` field.
    Each split draws from its own seed (``SeedSequence([seed, split index])``)."""
    if root is not None:
        raise ConvzooError(f"the 'pulses' data set is simulated and reads no folder; set data.root to null "
                           f"(got {root!r})")
    unknown = set(sim) - set(PulseConfig.__dataclass_fields__)
    if unknown:
        raise ConvzooError(f"unknown 'pulses' option(s) {sorted(unknown)}; known: "
                           f"{sorted(PulseConfig.__dataclass_fields__)} and n_train, n_val, n_test, snr_db, "
                           "eval_snr_db, seed")
    sim = {k: tuple(v) if isinstance(v, list) else v for k, v in sim.items()}
    cfg = replace(PulseConfig(), **sim).check()
    n = {"train": n_train, "val": n_val, "test": n_test}[split]
    snr = snr_db if split == "train" or eval_snr_db is None else eval_snr_db
    return make_pulse_dataset(int(n), cfg, snr, np.random.SeedSequence([int(seed), SPLITS.index(split)]))


def load_pulse_file(path) -> torch.Tensor:
    """A ``.npy`` file with one pulse ``(L,)`` or a batch ``(N, L)`` -> float32 tensor ``(N, 1, L)``."""
    p = Path(path)
    try:
        arr = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise ConvzooError(f"pulse file not found: {p}") from None
    except (OSError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise ConvzooError(f"cannot read pulse file {p}: expected a .npy array of shape (L,) or (N, L) "
                           f"({type(exc).__name__}: {why})") from None
    if arr.ndim not in (1, 2) or arr.size == 0 or not np.issubdtype(arr.dtype, np.number) \
            or np.iscomplexobj(arr):
        raise ConvzooError(f"pulse file {p} holds an array of shape {arr.shape} and dtype {arr.dtype}; "
                           "expected real numbers of shape (L,) or (N, L)")
    arr = np.atleast_2d(arr).astype(np.float32)
    if not np.isfinite(arr).all():
        raise ConvzooError(f"pulse file {p} contains NaN or infinite samples")
    return torch.from_numpy(arr)[:, None]
