"""Paper 3 (PulseDL-II-like): the pulse simulator, its data set, .npy pulse files, classic baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convzoo.data import build_dataset
from convzoo.data.pulses import (
    PulseConfig,
    denormalise,
    load_pulse_file,
    pulse_shape,
    quantise,
    simulate_pulses,
)
from convzoo.errors import ConvzooError
from convzoo.tasks.pulse_baselines import ClassicEstimators, cfd_time, crlb, pulse_height

pytestmark = pytest.mark.paper(3)


def _fixed(t0, energy, **kw):
    """One noiseless pulse with a chosen onset and energy (degenerate ranges)."""
    w, t, e = simulate_pulses(1, snr_db=None, t0_range=(t0, t0), energy_range=(energy, energy), **kw)
    assert t[0] == t0 and e[0] == energy
    return w[0].astype(np.float64)


@pytest.mark.claim(paper=3, artefact="pulses", claim="noise std matches the requested SNR within 2%")
@pytest.mark.parametrize("snr_db", [30.0, 47.4])
def test_noise_std_matches_requested_snr(snr_db):
    clean, t0, e = simulate_pulses(4000, snr_db=None, seed=3)
    noisy, t0b, eb = simulate_pulses(4000, snr_db=snr_db, seed=3)
    assert np.array_equal(t0, t0b) and np.array_equal(e, eb)  # same pulses, only noise added
    noise = (noisy.astype(np.float64) - clean) / e[:, None]  # per-pulse SNR: sigma = A / 10^(SNR/20)
    measured_db = 20 * np.log10(1.0 / noise.std())
    assert noise.std() == pytest.approx(10 ** (-snr_db / 20), rel=0.02), measured_db
    assert abs(noise.mean()) < 0.05 * noise.std()  # white noise around the pulse, no offset


def test_noise_reference_max_energy_and_snr_range():
    clean, _, _e = simulate_pulses(3000, snr_db=None, seed=4)
    noisy, _, _e2, snr = simulate_pulses(3000, snr_db=40.0, seed=4, noise_ref="max_energy", return_snr=True)
    sigma = (noisy - clean).std()
    assert sigma == pytest.approx(1.5 / 100, rel=0.02)  # fixed by the top of energy_range (1.5)
    _, _, _, snr = simulate_pulses(2000, snr_db=(25, 55), seed=5, return_snr=True)
    assert 25 <= snr.min() < 27 and 53 < snr.max() <= 55  # uniform over the range, per pulse


@pytest.mark.claim(paper=3, artefact="pulses", claim="seeded and deterministic")
def test_seeded_determinism():
    a = simulate_pulses(50, seed=7)
    b = simulate_pulses(50, seed=7)
    c = simulate_pulses(50, seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    g1, g2 = np.random.default_rng(1), np.random.default_rng(1)
    np.testing.assert_array_equal(simulate_pulses(5, seed=g1)[0], simulate_pulses(5, seed=g2)[0])


@pytest.mark.claim(paper=3, artefact="pulses",
                   claim="a one-sample shift of t0 shifts the waveform by one sample")
@pytest.mark.parametrize("t0", [20.0, 21.3, 30.77])
def test_shift_by_one_sample_period_shifts_waveform_by_one_sample(t0):
    cfg = PulseConfig()
    T = cfg.sample_period_ns
    a, b = _fixed(t0, 1.0), _fixed(t0 + T, 1.0)
    np.testing.assert_allclose(b[1:], a[:-1], atol=1e-6)
    assert b[0] == 0.0
    # a sub-sample shift is not a whole-sample shift: the waveform genuinely depends on the phase
    assert np.abs(_fixed(t0 + T / 2, 1.0)[1:] - a[:-1]).max() > 0.05


@pytest.mark.claim(paper=3, artefact="pulses", claim="amplitude is linear in energy; ADC quantisation")
def test_energy_scales_amplitude_linearly():
    a, b, c = _fixed(25.0, 0.5), _fixed(25.0, 1.0), _fixed(25.0, 1.5)
    np.testing.assert_allclose(b, 2 * a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(c, 3 * a, rtol=1e-6, atol=1e-7)
    t = np.linspace(0, 200, 200001)
    assert pulse_shape(t, 4.0, 40.0).max() == pytest.approx(1.0, abs=1e-8)  # unit-peak template


@pytest.mark.claim(paper=3, artefact="pulses", claim="amplitude is linear in energy; ADC quantisation")
def test_adc_quantisation():
    w = simulate_pulses(20, snr_db=40.0, adc_bits=8, adc_range=(-0.5, 2.0), baseline=0.1, seed=1)[0]
    codes = (w.astype(np.float64) + 0.5) / (2.5 / 256)
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)
    assert quantise(np.array([-9.0, 9.0]), 8, (-0.5, 2.0)).tolist() == [-0.5, -0.5 + 255 * 2.5 / 256]


@pytest.mark.claim(paper=3, artefact="pulses", claim="data set splits, .npy pulse files and one-line errors")
def test_dataset_items_info_and_splits():
    kw = {"n_train": 64, "n_val": 32, "n_test": 48, "snr_db": [30, 50], "eval_snr_db": 40.0, "seed": 2}
    tr, va, te = (build_dataset("pulses", s, **kw) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (64, 32, 48)
    x, y = tr[0]
    assert x.shape == (1, 64) and x.dtype == torch.float32 and y.shape == (2,) and y.dtype == torch.float32
    info = tr.info
    assert (info.task, info.in_chans, info.num_classes, info.input_size) == ("pulse_regression", 1, 2, (64,))
    assert info.extra["sample_period_ns"] == 2.0 and info.extra["snr_db"] == [30, 50]
    assert 0 <= tr.targets.min() and tr.targets.max() <= 1
    t0, e = denormalise(tr.targets.double().numpy(), info.extra)
    np.testing.assert_allclose(t0, tr.t0_ns, atol=1e-4)
    np.testing.assert_allclose(e, tr.energy, atol=1e-6)
    assert not torch.equal(tr.waveforms[:32], va.waveforms)  # each split has its own seed
    assert np.all(va.snr_db == 40.0) and np.all(te.snr_db == 40.0) and tr.snr_db.std() > 1
    again = build_dataset("pulses", "train", **kw)
    assert torch.equal(again.waveforms, tr.waveforms)


@pytest.mark.claim(paper=3, artefact="pulses", claim="data set splits, .npy pulse files and one-line errors")
def test_dataset_errors_are_one_line():
    with pytest.raises(ConvzooError, match="unknown 'pulses' option") as e1:
        build_dataset("pulses", "train", n_train=4, rise_time=3)
    with pytest.raises(ConvzooError, match="simulated") as e2:
        build_dataset("pulses", "train", root="/tmp/x", n_train=4)
    with pytest.raises(ConvzooError, match="decay_ns > rise_ns") as e3:
        build_dataset("pulses", "train", n_train=4, rise_ns=50.0)
    for e in (e1, e2, e3):
        assert "\n" not in str(e.value)


@pytest.mark.claim(paper=3, artefact="pulses", claim="data set splits, .npy pulse files and one-line errors")
def test_load_pulse_file(tmp_path):
    one = np.linspace(0, 1, 64, dtype=np.float32)
    np.save(tmp_path / "one.npy", one)
    np.save(tmp_path / "batch.npy", np.stack([one, 2 * one]).astype(np.float64))
    x = load_pulse_file(tmp_path / "one.npy")
    assert x.shape == (1, 1, 64) and x.dtype == torch.float32 and torch.equal(x[0, 0], torch.from_numpy(one))
    assert load_pulse_file(tmp_path / "batch.npy").shape == (2, 1, 64)

    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    (tmp_path / "junk.npy").write_text("not an array")
    cases = {"cube.npy": r"shape \(2, 3, 4\).*expected real numbers of shape \(L,\) or \(N, L\)",
             "junk.npy": "cannot read pulse file", "missing.npy": "not found"}
    for name, msg in cases.items():
        with pytest.raises(ConvzooError, match=msg) as err:
            load_pulse_file(tmp_path / name)
        assert "\n" not in str(err.value) and name in str(err.value)


# --- classic baselines -----------------------------------------------------------------------------
@pytest.mark.claim(paper=3, artefact="pulse_regression",
                   claim="classic baselines (CFD, pulse height, Jordanov trapezoid) recover noiseless pulses")
def test_baselines_recover_noiseless_pulses():
    """Finely sampled (0.25 ns) noiseless pulses: CFD time and both energy filters are near exact."""
    cfg = PulseConfig(length=512, sample_period_ns=0.25, t0_range=(16.0, 48.0), decay_ns=40.0)
    sim = {"length": 512, "sample_period_ns": 0.25, "snr_db": None}
    w, t0, e = simulate_pulses(400, seed=1, **sim)
    est = ClassicEstimators(cfg, trap_rise_ns=48.0, trap_flat_ns=24.0).fit(w, t0, e, tune=False)
    w, t0, e = simulate_pulses(400, seed=2, **sim)
    p = est.predict(w)
    assert np.abs(p["time_cfd"] - t0).max() < 2e-3  # ns, i.e. < 2 ps
    assert np.abs(p["energy_height"] / e - 1).max() < 1e-4
    assert np.abs(p["energy_trapezoid"] / e - 1).max() < 2e-3


def test_cfd_and_pulse_height_uncalibrated():
    """Raw CFD crossing = onset + the template's own fraction time; height = amplitude."""
    t = np.arange(0, 40, 1e-4)
    f = pulse_shape(t, 4.0, 40.0)
    t_half = t[np.argmax(f >= 0.5)]  # template time to 50 % of peak
    w = np.stack([_fixed(t0, 1.2, sample_period_ns=0.1, length=800) for t0 in (20.0, 20.05, 33.33)])
    tc = cfd_time(w, sample_period_ns=0.1, fraction=0.5)
    np.testing.assert_allclose(tc, np.array([20.0, 20.05, 33.33]) + t_half, atol=2e-3)
    h, _ = pulse_height(w)
    np.testing.assert_allclose(h, 1.2, rtol=1e-5)


@pytest.mark.claim(paper=3, artefact="pulse_regression",
                   claim="classic baselines (CFD, pulse height, Jordanov trapezoid) recover noiseless pulses")
def test_crlb_scales_with_noise():
    cfg = PulseConfig()
    t40, e40 = crlb(cfg, 40.0)
    t60, e60 = crlb(cfg, 60.0)
    assert t40 / t60 == pytest.approx(10.0, rel=1e-6) and e40 / e60 == pytest.approx(10.0, rel=1e-6)
    assert 0 < t60 < t40
