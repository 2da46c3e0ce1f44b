"""Readable pictures for the tasks: the layout decisions as small functions, then the figures that use them.

The decisions (which ticks, which scale, which unit, what font size and text colour) are plain functions
of the data so that tests check them on their own; the figure functions only apply them:

- :func:`use_log_scale`: a log axis only where the values span at least a decade;
- :func:`log_ticks`: 1-2-5 ticks inside the data's range, thinned to at most ``max_ticks``, labelled as
  plain numbers (:func:`tick_label`: ``20``, ``0.5``, ``1000``; never ``10^3`` or ``2e+03``);
- :func:`spaced_ticks`: the measured x values (e.g. the SNRs of a study) as ticks while they are few and
  apart, else round ticks (:func:`linear_ticks`);
- :func:`time_unit`: ps while typical values are below a nanosecond, else ns;
- :func:`confusion_layout`: figure size, count font size and class-name rotation for ``n`` classes, so
  that counts fit their cells and names do not overlap up to ~20 classes (and beyond, smaller);
- :func:`text_colour`: black or white, whichever contrasts more with a cell's colour (WCAG contrast).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np

# --- layout decisions ---------------------------------------------------------------------------------------


def use_log_scale(values: Sequence[float], decades: float = 1.0) -> bool:
    """Whether an axis of these values should be logarithmic: all positive and max / min >= 10^decades."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return v.size > 1 and bool((v > 0).all()) and math.log10(v.max() / v.min()) >= decades


def log_ticks(lo: float, hi: float, max_ticks: int = 7) -> list[float]:
    """Ticks for a log axis over [lo, hi]: the 1-2-5 values inside it, else 1-3, else powers of ten
    (every k-th decade when there are many), whichever first gives at most ``max_ticks``; at least
    two ticks, the nearest outside values added where the range holds fewer."""
    if not (0 < lo <= hi):
        raise ValueError(f"log ticks need 0 < lo <= hi, got {lo}, {hi}")
    first, last = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    eps = 1e-9
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** e for e in range(first, last + 1) for m in mantissas]
        ticks = [float(f"{t:.12g}") for t in ticks]
        inside = [t for t in ticks if lo * (1 - eps) <= t <= hi * (1 + eps)]
        if len(inside) <= max_ticks:
            break
    else:  # many decades: every k-th power of ten
        k = math.ceil(len(inside) / max_ticks)
        inside = inside[::k]
    while len(inside) < 2:  # too narrow a range: add the nearest candidates outside it
        below = [t for t in ticks if t < lo * (1 - eps) and t not in inside]
        above = [t for t in ticks if t > hi * (1 + eps) and t not in inside]
        if below and (not above or lo / below[-1] <= above[0] / hi):
            inside.insert(0, below[-1])
        else:
            inside.append(above[0])
    return inside


def tick_label(v: float) -> str:
    """A tick value as a plain number: 1000, 20, 0.5, 0.05 (no exponent notation up to 1e6)."""
    if v == 0:
        return "0"
    if 1e-4 <= abs(v) < 1e6:
        return np.format_float_positional(float(f"{v:.6g}"), trim="-")
    return f"{v:.3g}"


def linear_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[float]:
    """Round ticks over [lo, hi]: multiples of the smallest step 1, 2 or 5 x 10^k that gives at most
    ``max_ticks`` of them inside the range."""
    if hi <= lo:
        return [float(lo)]
    raw = (hi - lo) / max(1, max_ticks - 1)
    base = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        step = m * base
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
        if last - first + 1 <= max_ticks:
            return [float(f"{k * step:.12g}") for k in range(first, last + 1)]
    return [float(lo), float(hi)]


def spaced_ticks(values: Sequence[float], max_ticks: int = 8, min_gap: float | None = None) -> list[float]:
    """Ticks for measured x values (e.g. the SNRs of a study): the values themselves while there are at
    most ``max_ticks`` and none lies closer than ``min_gap`` (default: span / (2 max_ticks)) to the next;
    else round ticks over their range (:func:`linear_ticks`)."""
    v = sorted({float(x) for x in values})
    if len(v) <= 1:
        return v
    gap = (v[-1] - v[0]) / (2 * max_ticks) if min_gap is None else min_gap
    if len(v) <= max_ticks and min(b - a for a, b in pairwise(v)) >= gap:
        return v
    return linear_ticks(v[0], v[-1], max_ticks)


def time_unit(values_ps: Sequence[float]) -> tuple[str, float]:
    """(unit, factor from ps) for showing times: ps while the typical (median) magnitude is below
    1000 ps, else ns."""
    v = np.abs(np.asarray(values_ps, dtype=float))
    v = v[np.isfinite(v)]
    return ("ns", 1e-3) if v.size and np.median(v) >= 1000 else ("ps", 1.0)


def format_time_ps(value_ps: float) -> str:
    """A time given in ps, in the unit :func:`time_unit` picks for it: ``60.2 ps``, ``2.08 ns``."""
    unit, f = time_unit([value_ps])
    return f"{value_ps * f:.3g} {unit}"


def confusion_layout(n: int, max_count: int = 100, max_name_len: int = 1) -> dict:
    """Figure size (inches), count and name font sizes (points) and the rotation of the class names
    under the matrix, for ``n`` classes whose largest count is ``max_count``.

    The figure grows with ``n`` (4.5 in for a few classes, 12 in at most); a count's font is as large as
    fits its cell (a character is ~0.6 em wide; the text takes at most 80% of the cell's width and 55% of
    its height) and at most 12 pt; names are set level when the longest fits in 80% of a column, else at
    45 degrees, and at 90 degrees past 12 classes."""
    if n < 1:
        raise ValueError(f"a confusion matrix needs at least one class, got {n}")
    side = float(min(12.0, max(4.5, 2.5 + 0.45 * n)))
    cell_pt = 0.62 * side * 72 / n  # the matrix takes ~62% of the figure's side
    digits = len(str(max(0, int(max_count))))
    count_pt = min(12.0, 0.8 * cell_pt / (0.6 * digits), 0.55 * cell_pt)
    name_pt = min(10.0, max(6.0, 0.7 * cell_pt))
    if name_pt * 0.6 * max_name_len <= 0.8 * cell_pt:  # the longest name fits its column level
        rotation = 0
    elif n <= 12:
        rotation = 45
    else:
        rotation = 90
    return {"figsize": (side, side), "count_fontsize": round(count_pt, 1), "name_fontsize": round(name_pt, 1),
            "rotation": rotation}


def _linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(rgb: Sequence[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour given as floats in [0, 1]."""
    r, g, b = (_linear(float(c)) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_colour(rgb: Sequence[float]) -> str:
    """``"black"`` or ``"white"``, whichever has the larger WCAG contrast ratio against ``rgb``."""
    lum = relative_luminance(rgb)
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


# --- figures -----------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_figure(cm: np.ndarray, names: Sequence[str] | None, path: Path, title: str,
                     xlabel: str = "predicted", ylabel: str = "true") -> Path:
    """Counts of ``cm`` (true x predicted) in a Blues matrix, laid out by :func:`confusion_layout`."""
    plt = _plt()
    cm = np.asarray(cm)
    n = cm.shape[0]
    names = [str(x) for x in names] if names is not None and len(names) == n else [str(i) for i in range(n)]
    lay = confusion_layout(n, int(cm.max()) if cm.size else 0, max(len(s) for s in names))
    fig, ax = plt.subplots(figsize=lay["figsize"])
    cmap = plt.get_cmap("Blues")
    vmax = max(1, int(cm.max()))
    ax.imshow(cm, cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=lay["count_fontsize"],
                    color=text_colour(cmap(cm[i, j] / vmax)))
    ticks = list(range(n))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    rot = lay["rotation"]
    ax.set_xticklabels(names, fontsize=lay["name_fontsize"], rotation=rot,
                       ha="right" if rot == 45 else "center", rotation_mode="anchor" if rot == 45 else "default")
    ax.set_yticklabels(names, fontsize=lay["name_fontsize"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def confusion_counts(trues, preds, n: int) -> np.ndarray:
    """(n, n) counts: row = true class, column = predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(trues, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    return cm


def apply_value_axis(ax, values: Sequence[float], max_ticks: int = 7) -> None:
    """A y axis for positive quantities: logarithmic with plain 1-2-5 labels where they span a decade,
    else linear."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    v = [x for x in values if x is not None and np.isfinite(x)]
    if not use_log_scale(v):
        return
    ax.set_yscale("log")
    pad = 1.25  # the axis shows the data's range widened by this factor at each end
    ticks = log_ticks(min(v) / pad, max(v) * pad, max_ticks)
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda t, _: tick_label(t)))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(min(min(v) / pad, ticks[0]), max(max(v) * pad, ticks[-1]))


def apply_snr_axis(ax, snrs: Sequence[float], max_ticks: int = 8) -> None:
    """x ticks at the measured SNRs (thinned by :func:`spaced_ticks`), labelled as plain numbers."""
    ticks = spaced_ticks(snrs, max_ticks)
    ax.set_xticks(ticks)
    ax.set_xticklabels([tick_label(t) for t in ticks])
    ax.set_xlabel("SNR (dB)")
