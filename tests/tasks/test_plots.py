"""Readable pictures: the layout decisions of convzoo.tasks.plots on their own, then the figures the tasks
write (PNG files PIL reads) with no overlapping tick labels, class names or counts."""

from __future__ import annotations

from itertools import pairwise
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from convzoo.tasks import build_task
from convzoo.tasks.plots import (
    confusion_counts,
    confusion_figure,
    confusion_layout,
    format_time_ps,
    linear_ticks,
    log_ticks,
    relative_luminance,
    spaced_ticks,
    text_colour,
    tick_label,
    time_unit,
    use_log_scale,
)

FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


# --- the decisions ------------------------------------------------------------------------------------------
def test_log_scale_only_where_the_values_span_a_decade():
    assert use_log_scale([14.6, 48.8, 2391.6])  # CRLB and an untrained CNN: two decades
    assert not use_log_scale([14.6, 142.0 * 0.99])  # under one decade: linear reads better
    assert not use_log_scale([0.0, 10.0, 100.0])  # a zero: no log axis
    assert not use_log_scale([5.0])
    assert use_log_scale([0.11, 2.65])  # energy resolutions 0.11 %-2.65 % (1.38 decades)


@pytest.mark.parametrize("lo, hi, want", [
    (15.0, 2400.0, [20, 50, 100, 200, 500, 1000, 2000]),  # 1-2-5 inside the range, 7 of them
    (0.11, 21.8, [0.2, 0.5, 1, 2, 5, 10, 20]),
    (0.011, 25.0, [0.03, 0.1, 0.3, 1, 3, 10]),  # 1-2-5 gives 10 ticks: 1-3 instead
    (1e-3, 1e6, [0.001, 0.1, 10, 1000, 1e5]),  # ten decades: every other power of ten
    (14.0, 18.0, [10, 20]),  # narrow: the nearest values outside are added
])
def test_log_ticks(lo, hi, want):
    ticks = log_ticks(lo, hi, max_ticks=7)
    assert ticks == pytest.approx(want)
    assert 2 <= len(ticks) <= 7


def test_tick_labels_are_plain_numbers():
    assert [tick_label(t) for t in (1000, 2000, 20, 0.5, 0.05, 47.4, 30.0, 0)] == \
        ["1000", "2000", "20", "0.5", "0.05", "47.4", "30", "0"]
    assert "e" not in tick_label(100000.0) and tick_label(2e7) == "2e+07"


def test_snr_ticks_are_the_measured_snrs_while_few_and_apart():
    assert spaced_ticks([30.0, 40.0, 47.4]) == [30.0, 40.0, 47.4]
    assert spaced_ticks([47.4, 30.0, 30.0]) == [30.0, 47.4]
    assert spaced_ticks([30.0, 30.5, 47.4]) == [30.0, 35.0, 40.0, 45.0]  # 30.5 would collide: round ticks
    many = list(np.arange(0.0, 61.0, 2.5))
    assert spaced_ticks(many) == [0, 10, 20, 30, 40, 50, 60]
    assert linear_ticks(0.0, 1.0, 6) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert linear_ticks(3.0, 3.0) == [3.0]


def test_time_unit():
    assert time_unit([14.6, 60.0, 142.0]) == ("ps", 1.0)
    assert time_unit([-6000.0, 1200.0, 2500.0]) == ("ns", 1e-3)
    assert format_time_ps(60.2) == "60.2 ps" and format_time_ps(2078.7) == "2.08 ns"


def test_confusion_layout_scales_with_the_classes():
    layouts = {n: confusion_layout(n, max_count=1000, max_name_len=11) for n in (2, 4, 10, 20, 40)}
    fonts = [layouts[n]["count_fontsize"] for n in sorted(layouts)]
    assert fonts == sorted(fonts, reverse=True) and fonts[0] <= 12 and fonts[-1] > 0
    sides = [layouts[n]["figsize"][0] for n in sorted(layouts)]
    assert sides == sorted(sides) and 4.5 <= sides[0] and sides[-1] <= 12
    assert confusion_layout(10, 36, 1)["rotation"] == 0  # digits: names level
    assert confusion_layout(4, 400, 4)["rotation"] == 0  # "180°" fits a wide column
    assert confusion_layout(10, 1000, 11)["rotation"] == 45  # Fashion-MNIST's names
    assert confusion_layout(20, 1000, 11)["rotation"] == 90
    # more digits, smaller counts
    assert confusion_layout(10, 9999, 1)["count_fontsize"] < confusion_layout(10, 9, 1)["count_fontsize"]
    with pytest.raises(ValueError):
        confusion_layout(0)


def test_text_colour_contrasts_with_the_cell():
    import matplotlib

    blues = matplotlib.colormaps["Blues"]
    assert text_colour((1.0, 1.0, 1.0)) == "black" and text_colour((0.0, 0.0, 0.0)) == "white"
    assert text_colour(blues(0.0)) == "black" and text_colour(blues(1.0)) == "white"
    assert relative_luminance((1.0, 1.0, 1.0)) == pytest.approx(1.0)
    for v in np.linspace(0, 1, 21):  # whichever colour is chosen reaches WCAG's 4.5:1 for normal text
        lum = relative_luminance(blues(v))
        ratio = (lum + 0.05) / 0.05 if text_colour(blues(v)) == "black" else 1.05 / (lum + 0.05)
        assert ratio >= 4.5, v


# --- the figures --------------------------------------------------------------------------------------------
def _no_overlap(boxes, what):
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), f"{what} overlap: {a} {b}"


def _labels_clear(fig, labels, horizontal_axis):
    """Tick labels neither overlap nor leave the figure. Level labels: their boxes are disjoint; labels
    rotated by a (parallel strips): the perpendicular distance between neighbours, spacing x sin(a),
    exceeds a line of text."""
    r = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(r) for t in labels]
    width, height = fig.canvas.get_width_height()
    for b in boxes:
        assert b.x0 >= 0 and b.y0 >= 0 and b.x1 <= width and b.y1 <= height, f"label cut off: {b}"
    rot = labels[0].get_rotation() % 180
    if rot == 0 or not horizontal_axis:
        _no_overlap(boxes, "class names")
        return
    xs = sorted(t.get_transform().transform(t.get_position())[0] for t in labels)
    spacing = min(b - a for a, b in pairwise(xs))
    line = labels[0].get_fontsize() * fig.dpi / 72
    assert spacing * np.sin(np.radians(rot)) > line, (spacing, rot, line)


def _confusion(n, big, seed=0):
    rng = np.random.default_rng(seed)
    cm = rng.integers(0, big // 20, (n, n))
    cm[np.arange(n), np.arange(n)] = rng.integers(big // 2, big, n)
    return cm


@pytest.mark.parametrize("n, big, names", [
    (10, 40, [str(i) for i in range(10)]),  # the bundled digits
    (10, 1000, list(FASHION)),  # Fashion-MNIST's test split
    (20, 9999, [f"category_{i:02d}_long_name" for i in range(20)]),
    (4, 400, ["0°", "90°", "180°", "270°"]),  # RotNet
])
def test_confusion_figure_is_legible(tmp_path, monkeypatch, n, big, names):
    import matplotlib.pyplot as plt

    kept = {}
    monkeypatch.setattr(plt, "close", lambda fig: kept.setdefault("fig", fig))
    path = confusion_figure(_confusion(n, big), names, tmp_path / "cm.png", "confusion matrix (test)")
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) >= 400
    fig = kept["fig"]
    ax = fig.axes[0]
    r = fig.canvas.get_renderer()
    counts = [t for t in ax.texts]
    assert len(counts) == n * n
    boxes = [t.get_window_extent(r) for t in counts]
    _no_overlap(boxes, "counts")
    # every count inside its own cell
    cell = ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]
    assert max(b.width for b in boxes) < cell and max(b.height for b in boxes) < abs(cell)
    for axis in (ax.xaxis, ax.yaxis):
        labels = [t for t in axis.get_ticklabels() if t.get_text()]
        assert [t.get_text() for t in labels] == names
        _labels_clear(fig, labels, axis is ax.xaxis)
    # dark cells get white counts, light cells black ones
    colours = {t.get_text(): t.get_color() for t in counts}
    cm = _confusion(n, big)
    assert colours[str(cm.max())] == "white"
    plt.close("all")


def _tick_label_boxes(fig, ax, axis):
    r = fig.canvas.get_renderer()
    return [t.get_window_extent(r) for t in getattr(ax, axis).get_ticklabels() if t.get_visible() and t.get_text()]


def _study_rows(snrs, cnn_scale=1.0):
    """Resolution-vs-SNR rows shaped as convzoo.tasks.pulse.snr_study returns them."""
    rows = []
    for s in snrs:
        f = 10 ** ((30 - s) / 20)  # resolution falls with the noise amplitude
        rows.append({"snr_db": float(s), "cnn_time_ps": 110 * f * cnn_scale, "cfd_time_ps": 138 * f,
                     "cfd_delay_time_ps": 142 * f, "crlb_time_ps": 108 * f / 2, "cnn_energy_pct": 1.1 * f * cnn_scale,
                     "height_energy_pct": 2.65 * f, "trapezoid_energy_pct": 1.03 * f, "crlb_energy_pct": 0.815 * f,
                     "cfd_fraction": 0.3})
    return rows


@pytest.mark.parametrize("snrs, cnn_scale", [
    ((30.0, 40.0, 47.4), 1.0),  # the recipe's study
    ((30.0, 40.0, 47.4), 20.0),  # an untrained CNN: two decades over the CRLB
    (tuple(np.arange(0.0, 61.0, 2.5)), 1.0),  # a dense sweep over three decades
])
def test_snr_plot_ticks_are_readable(tmp_path, monkeypatch, snrs, cnn_scale):
    import matplotlib.pyplot as plt

    from convzoo.tasks.pulse import plot_snr_study

    kept = {}
    monkeypatch.setattr(plt, "close", lambda fig: kept.setdefault("fig", fig))
    path = plot_snr_study(_study_rows(snrs, cnn_scale), tmp_path / "pulse_snr.png")
    with Image.open(path) as im:
        assert im.format == "PNG"
    fig = kept["fig"]
    for ax in fig.axes[:2]:
        for axis in ("xaxis", "yaxis"):
            boxes = _tick_label_boxes(fig, ax, axis)
            assert len(boxes) >= 2, axis
            _no_overlap(boxes, f"{axis} tick labels")
        labels = [t.get_text() for t in ax.yaxis.get_ticklabels() if t.get_text()]
        assert not any("e" in s or "^" in s for s in labels), labels  # plain numbers, no exponents
        values = [y for line in ax.get_lines() for y in line.get_ydata()]
        assert ax.get_yscale() == ("log" if use_log_scale(values) else "linear")
    xlabels = [t.get_text() for t in fig.axes[0].xaxis.get_ticklabels() if t.get_text()]
    if len(snrs) == 3:
        assert xlabels == ["30", "40", "47.4"]  # ticks at the measured SNRs
    plt.close("all")


# --- the tasks write them -----------------------------------------------------------------------------------
class _Data(torch.utils.data.TensorDataset):
    def __init__(self, x, y, **info):
        super().__init__(x, y)
        self.info = SimpleNamespace(**info)


def test_classification_writes_a_legible_confusion_matrix(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    data = _Data(torch.randn(200, 1, 4, 4), torch.randint(0, 10, (200,)), num_classes=10, class_names=FASHION)
    [path] = build_task("classification").pictures(model, data, tmp_path, torch.device("cpu"))
    assert path.name == "confusion_matrix.png"
    with Image.open(path) as im:
        im.verify()


def test_rotation_writes_examples_and_confusion(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    data = _Data(torch.randn(12, 1, 8, 8), torch.zeros(12, dtype=torch.long))
    paths = build_task("rotation").pictures(model, data, tmp_path, torch.device("cpu"))
    assert [p.name for p in paths] == ["rotation_examples.png", "rotation_confusion.png"]
    for p in paths:
        with Image.open(p) as im:
            im.verify()


def test_pulse_writes_scatter_and_snr_study(tmp_path):
    from convzoo.data.pulses import DEFAULT_EXTRA

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    extra = dict(DEFAULT_EXTRA)
    data = _Data(torch.randn(64, 1, 64), torch.rand(64, 2), extra=extra)
    task = build_task("pulse_regression", study_snrs=(30.0, 47.4), study_n=32)
    paths = task.pictures(model, data, tmp_path, torch.device("cpu"))
    assert [p.name for p in paths] == ["pulse_scatter.png", "pulse_snr.png"]
    for p in paths:
        with Image.open(p) as im:
            im.verify()


def test_confusion_counts():
    cm = confusion_counts([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
