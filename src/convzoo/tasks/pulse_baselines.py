"""Classic digital pulse-processing estimators: the baselines the PulseDL-II-like CNN must beat.

Seed paper 3 (PulseDL-II, arXiv 2209.00884) compares its network against no named algorithm in the
abstract; the standard references in nuclear electronics are used here, on the same waveforms:

* Time - constant-fraction discrimination (CFD), two digital forms, each tuned once on calibration
  pulses: the classic delay-line CFD (Gedcke & McDonald, NIM 58 (1968) 253): the bipolar signal
  ``s(n) = v(n - D) - f v(n)`` (the input delayed by D, minus an attenuated copy, i.e. delayed plus
  attenuated-inverted), whose zero crossing after its minimum is located by linear interpolation
  (:func:`cfd_delay_line`); and the amplitude-referenced form: the leading-edge crossing of
  ``fraction x amplitude`` (amplitude from the parabolic peak), interpolated likewise (:func:`cfd_time`).
* Energy - pulse height (the peak of a parabola through the three samples around the maximum,
  after baseline subtraction) and the trapezoidal shaper of Jordanov & Knoll (NIM A 345 (1994) 337,
  recursive form with pole-zero correction ``M = 1 / (exp(T / tau_d) - 1)``, :func:`trapezoid`; the
  equivalent direct form, a pole-zero deconvolution then two moving sums, is
  :func:`trapezoid_moving_sum`), flat top averaged; the rise time is tuned on calibration pulses.
* Bound - the Cramer-Rao lower bound on (t0, A) for white Gaussian noise and the known template
  (cf. Ai et al., JINST 2021, on NN timing vs the CRLB): no unbiased estimator does better.

Every estimator is mapped to (t0 ns, E) by a linear calibration fitted on noisy calibration pulses
(``ClassicEstimators.fit``), as one calibrates a real spectrometer with known lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convzoo.data.pulses import PulseConfig, peak_time, pulse_shape, snr_to_sigma


def _baseline_subtract(w: np.ndarray, baseline: float | None, n_pre: int) -> np.ndarray:
    """(n, L) minus the known baseline, or minus the mean of the first ``n_pre`` samples."""
    w = np.asarray(w, dtype=np.float64)
    return w - (w[:, :n_pre].mean(1, keepdims=True) if baseline is None else baseline)


def pulse_height(w: np.ndarray, *, baseline: float | None = 0.0, n_pre: int = 4,
                 interpolate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Peak amplitude and peak position (in samples) of each row of ``w`` (n, L).

    ``interpolate``: vertex of the parabola through the maximum sample and its two neighbours.
    """
    v = _baseline_subtract(w, baseline, n_pre)
    n, L = v.shape
    k = np.clip(v.argmax(1), 1, L - 2)  # (n,)
    rows = np.arange(n)
    ym, y0, yp = v[rows, k - 1], v[rows, k], v[rows, k + 1]
    if not interpolate:
        return v[rows, v.argmax(1)], v.argmax(1).astype(np.float64)
    curv = ym - 2 * y0 + yp
    safe = np.where(curv < 0, curv, -1.0)
    p = np.where(curv < 0, np.clip(0.5 * (ym - yp) / safe, -0.5, 0.5), 0.0)  # vertex offset in samples
    return y0 - 0.25 * (ym - yp) * p, k + p


def cfd_time(w: np.ndarray, *, sample_period_ns: float, fraction: float = 0.3, baseline: float | None = 0.0,
             n_pre: int = 4) -> np.ndarray:
    """Digital CFD: time (ns from sample 0) where the leading edge crosses ``fraction`` of the peak.

    The crossing is the last sample pair (k, k+1) before the peak with v_k < thr <= v_{k+1},
    interpolated linearly: t = (k + (thr - v_k) / (v_{k+1} - v_k)) * T.
    """
    v = _baseline_subtract(w, baseline, n_pre)
    n, L = v.shape
    amp, kpk = pulse_height(v, baseline=0.0)
    thr = fraction * amp  # (n,)
    idx = np.arange(L - 1)[None, :]
    below = (v[:, :-1] < thr[:, None]) & (v[:, 1:] >= thr[:, None]) & (idx < np.ceil(kpk)[:, None])
    k = np.where(below.any(1), (L - 2) - np.argmax(below[:, ::-1], 1), 0)  # last crossing before the peak
    rows = np.arange(n)
    v0, v1 = v[rows, k], v[rows, k + 1]
    frac = np.clip((thr - v0) / np.where(v1 - v0 == 0, 1.0, v1 - v0), 0.0, 1.0)
    return (k + frac) * sample_period_ns


def cfd_delay_line(w: np.ndarray, *, sample_period_ns: float, fraction: float = 0.3, delay: int = 2,
                   baseline: float | None = 0.0, n_pre: int = 4) -> np.ndarray:
    """Delay-line CFD: time (ns from sample 0) of the zero crossing of ``s(n) = v(n - delay) - fraction v(n)``.

    ``delay`` is in samples (samples before the window count as baseline). The crossing is the first
    sample pair (k, k+1) at or after the minimum of ``s`` with s_k < 0 <= s_{k+1}, interpolated
    linearly: t = (k + s_k / (s_k - s_{k+1})) * T. On a linear leading edge starting at t0 the crossing
    is ``t0 + delay * T / (1 - fraction)`` whatever the amplitude (the walk-free property of CFD).
    """
    if not 0 < fraction < 1 or delay < 1:
        from convzoo.errors import ConvzooError

        raise ConvzooError(f"delay-line CFD needs 0 < fraction < 1 and delay >= 1 sample, got {fraction}, {delay}")
    v = _baseline_subtract(w, baseline, n_pre)
    n, L = v.shape
    s = np.pad(v, ((0, 0), (delay, 0)))[:, :L] - fraction * v  # (n, L) bipolar signal
    kmin = s.argmin(1)
    idx = np.arange(L - 1)[None, :]
    cross = (s[:, :-1] < 0) & (s[:, 1:] >= 0) & (idx >= kmin[:, None])
    k = np.where(cross.any(1), np.argmax(cross, 1), L - 2)  # first crossing after the minimum
    rows = np.arange(n)
    s0, s1 = s[rows, k], s[rows, k + 1]
    frac = np.clip(s0 / np.where(s0 - s1 == 0, -1.0, s0 - s1), 0.0, 1.0)
    return (k + frac) * sample_period_ns


def trapezoid_moving_sum(w: np.ndarray, *, sample_period_ns: float, decay_ns: float | None, rise: int,
                         flat: int, baseline: float | None = 0.0, n_pre: int = 4) -> np.ndarray:
    """The trapezoid in direct form, (n, L): pole-zero deconvolution, then two moving sums.

    y(n) = v(n) + (1 - exp(-T / tau_d)) sum_{j<n} v(j) turns an exponential decay into a step
    (``decay_ns=None``: no correction, for step inputs); out(n) = (sum_{j=n-k+1..n} y(j) -
    sum_{j=n-l-k+1..n-l} y(j)) / k with l = k + flat. Equal to :func:`trapezoid`.
    """
    v = _baseline_subtract(w, baseline, n_pre)
    y = v if decay_ns is None else v + -np.expm1(-sample_period_ns / decay_ns) * (np.cumsum(v, 1) - v)
    k, l = rise, rise + flat
    c = np.cumsum(np.pad(y, ((0, 0), (l + k, 0))), 1)  # c[:, i] = sum of y up to sample i - l - k

    def window_sum(end):  # sum of y over (end - k, end], end = n - shift, for every n in the window
        return c[:, l + k + end: l + k + end + v.shape[1]] - c[:, l + end: l + end + v.shape[1]]

    return (window_sum(0) - window_sum(-l)) / k


def trapezoid(w: np.ndarray, *, sample_period_ns: float, decay_ns: float, rise: int, flat: int,
              baseline: float | None = 0.0, n_pre: int = 4) -> np.ndarray:
    """Jordanov-Knoll trapezoidal shaper (rise ``rise`` samples, flat top ``flat`` samples), (n, L).

    d(n) = v(n) - v(n-k) - v(n-l) + v(n-k-l), l = k + flat;  p(n) = p(n-1) + d(n);
    r(n) = p(n) + M d(n);  s(n) = s(n-1) + r(n);  returned as s / (k (M + 1)) so that a unit
    exponential step gives a unit flat top.
    """
    v = _baseline_subtract(w, baseline, n_pre)
    k, l = rise, rise + flat
    pad = np.pad(v, ((0, 0), (k + l, 0)))  # zeros before the window = baseline
    L = v.shape[1]

    def delayed(j):
        return pad[:, k + l - j: k + l - j + L]

    d = v - delayed(k) - delayed(l) + delayed(k + l)
    m = 1.0 / np.expm1(sample_period_ns / decay_ns)
    s = np.cumsum(np.cumsum(d, 1) + m * d, 1)
    return s / (k * (m + 1.0))


def fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y ~ a x + b``."""
    a, b = np.polyfit(np.asarray(x, np.float64), np.asarray(y, np.float64), 1)
    return float(a), float(b)


@dataclass
class ClassicEstimators:
    """CFD times, pulse-height energy and trapezoid energy, calibrated once on labelled pulses.

    ``fit(w, t0, E)`` tunes, on those pulses, the amplitude-referenced CFD fraction over ``fractions``,
    the delay-line CFD (fraction, delay) over ``fractions`` x ``delays`` (smallest std of the time
    error) and the trapezoid rise over ``trap_rises_ns`` (smallest std of the relative energy error
    after calibration), then fits the linear calibrations; ``predict(w)`` returns ``{"time_cfd",
    "time_cfd_delay", "energy_height", "energy_trapezoid"}`` arrays in ns and energy units.
    """

    cfg: PulseConfig = field(default_factory=PulseConfig)
    fraction: float = 0.3
    fractions: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7)
    delay_fraction: float = 0.3  # delay-line CFD: attenuation and delay (samples)
    delay: int = 2
    delays: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 12)
    trap_rise_ns: float = 48.0  # trapezoid rise k*T and flat top
    trap_flat_ns: float = 24.0
    trap_rises_ns: tuple[float, ...] = (16.0, 24.0, 32.0, 48.0, 64.0)
    cal: dict = field(default_factory=dict)

    def _trap_energy(self, w: np.ndarray, peak_index: np.ndarray) -> np.ndarray:
        c = self.cfg
        T = c.sample_period_ns
        k = max(1, round(self.trap_rise_ns / T))
        flat = max(2, round(self.trap_flat_ns / T))
        s = trapezoid(w, sample_period_ns=T, decay_ns=c.decay_ns, rise=k, flat=flat, baseline=c.baseline)
        # flat top: from onset + k + settling (3 tau_r) to onset + k + flat; onset = peak - t_peak
        onset = np.floor(peak_index - peak_time(c.rise_ns, c.decay_ns) / T).astype(int)
        settle = int(np.ceil(3 * c.rise_ns / T))
        lo = np.clip(onset + k + min(settle, flat - 1), 0, s.shape[1] - 1)
        hi = np.clip(onset + k + flat, lo + 1, s.shape[1])
        cols = np.arange(s.shape[1])[None, :]
        mask = (cols >= lo[:, None]) & (cols < hi[:, None])
        return (s * mask).sum(1) / mask.sum(1)

    def raw(self, w: np.ndarray, fraction: float | None = None) -> dict[str, np.ndarray]:
        c = self.cfg
        T = c.sample_period_ns
        t = cfd_time(w, sample_period_ns=T, fraction=fraction or self.fraction, baseline=c.baseline)
        td = cfd_delay_line(w, sample_period_ns=T, fraction=self.delay_fraction, delay=self.delay,
                            baseline=c.baseline)
        h, kpk = pulse_height(w, baseline=c.baseline)
        return {"time_cfd": t, "time_cfd_delay": td, "energy_height": h,
                "energy_trapezoid": self._trap_energy(w, kpk)}

    def fit(self, w: np.ndarray, t0_ns: np.ndarray, energy: np.ndarray,
            tune: bool = True) -> ClassicEstimators:
        T, base = self.cfg.sample_period_ns, self.cfg.baseline
        if tune:
            self.fraction = min(self.fractions, key=lambda f: np.std(
                cfd_time(w, sample_period_ns=T, fraction=f, baseline=base) - t0_ns))
            self.delay_fraction, self.delay = min(
                ((f, d) for f in self.fractions for d in self.delays), key=lambda fd: np.std(
                    cfd_delay_line(w, sample_period_ns=T, fraction=fd[0], delay=fd[1], baseline=base) - t0_ns))
            _, kpk = pulse_height(w, baseline=base)

            def trap_res(rise):
                self.trap_rise_ns = rise
                e = self._trap_energy(w, kpk)
                a, b = fit_linear(e, energy)
                return np.std((a * e + b) / energy - 1)

            self.trap_rise_ns = min(self.trap_rises_ns, key=trap_res)
        r = self.raw(w)
        self.cal = {k: fit_linear(v, t0_ns if k.startswith("time") else energy) for k, v in r.items()}
        return self

    def predict(self, w: np.ndarray) -> dict[str, np.ndarray]:
        r = self.raw(w)
        return {k: self.cal.get(k, (1.0, 0.0))[0] * v + self.cal.get(k, (1.0, 0.0))[1] for k, v in r.items()}


def crlb(cfg: PulseConfig, snr_db: float, n_phase: int = 64) -> tuple[float, float]:
    """Cramer-Rao bound (time ps, energy %) for (t0, A) at ``snr_db``, white noise, known template
    and baseline, averaged (in variance) over onsets spread across ``cfg.t0_range``."""
    t = np.arange(cfg.length) * cfg.sample_period_ns
    var_t, var_e = [], []
    sigma = float(snr_to_sigma(1.0, snr_db))  # A = 1: both bounds are relative to the amplitude
    h = 1e-4
    for t0 in np.linspace(*cfg.t0_range, n_phase):
        f = pulse_shape(t - t0, cfg.rise_ns, cfg.decay_ns)
        df = -(pulse_shape(t - t0 + h, cfg.rise_ns, cfg.decay_ns) - pulse_shape(t - t0 - h, cfg.rise_ns,
                                                                                 cfg.decay_ns)) / (2 * h)
        fisher = np.array([[df @ df, df @ f], [f @ df, f @ f]]) / sigma ** 2  # d/dt0, d/dA of A f(t - t0)
        cov = np.linalg.inv(fisher)
        var_t.append(cov[0, 0])
        var_e.append(cov[1, 1])
    return float(np.sqrt(np.mean(var_t)) * 1e3), float(np.sqrt(np.mean(var_e)) * 100)
