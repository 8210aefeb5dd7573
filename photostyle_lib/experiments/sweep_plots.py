"""Figures of the metrics sweep: box plots per metric and the photorealism / style trade-off.

They draw the table of :func:`photostyle_lib.experiments.sweep.score_runs` (one row per
pair and method) and, for the trade-off's error bars, :func:`~photostyle_lib.experiments.sweep.summarize`.
Built without pyplot; every figure made from random or stand-in weights says so in its title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from photostyle_lib.experiments.sweep import CONTENT_ROW, table_warning

__all__ = ["plot_metric_boxes", "plot_tradeoff"]

_LABELS = {"photorealism": "photorealism (Laplacian energy, lower = more photo-like)",
           "structure": "structure (gradient SSIM, higher = better)",
           "style_distance": "style distance, gold regions (\u0394E, lower = closer)",
           "style_distance_global": "style distance, whole image (\u0394E)",
           "gram_distance": "Gram distance, VGG (lower = closer)",
           "runtime_s": "runtime (s)", "peak_rss_mb": "peak memory (MB, RSS during the run)"}
_LOG_SCALE = ("photorealism", "gram_distance", "runtime_s")
# Energies are >= 0 up to rounding (-1e-12 for an exactly affine output); drawn on a log axis from here.
_LOG_FLOOR = 1e-12


def _plotted(col: str, values: Any) -> np.ndarray:
    """Values as drawn: floored at _LOG_FLOOR on log-scale axes."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    return np.maximum(v, _LOG_FLOOR) if col in _LOG_SCALE else v


def _title(fig: Figure, title: str, table: pd.DataFrame) -> None:
    warning = table_warning(table)
    lines = [title] + ([warning] if warning else [])
    fig.suptitle("\n".join(lines), color="firebrick" if warning else "black")


def plot_metric_boxes(table: pd.DataFrame, columns: Sequence[str] = ("photorealism", "structure",
                      "style_distance", "gram_distance"), *, title: str = "Metrics per method over pairs"
                      ) -> Figure:
    """One box plot per metric: a box per method over pairs, each pair a dot.

    Energies and runtimes are drawn on a log axis. A metric that is NaN
    everywhere (the Gram distance without ImageNet weights) gets an empty panel
    that says it was skipped. Built without pyplot: save it or show it.
    """
    methods = list(pd.unique(table["method"]))
    fig = Figure(figsize=(max(6.0, 0.55 * len(methods)) * min(2, len(columns)),
                          3.6 * math.ceil(len(columns) / 2) + 0.8), layout="constrained")
    axes = fig.subplots(math.ceil(len(columns) / 2), min(2, len(columns)), squeeze=False).ravel()
    for ax, col in zip(axes, columns):
        data = [_plotted(col, table.loc[table["method"] == m, col]) for m in methods]
        data = [d[np.isfinite(d)] for d in data]
        ax.set_title(_LABELS.get(col, col), fontsize=9)
        if not any(d.size for d in data):
            note = table["gram_note"].iloc[0] if col == "gram_distance" and "gram_note" in table else "no values"
            note = note.split(". ")[0]     # the reason; the fix is in metadata.json
            ax.text(0.5, 0.5, _wrap(f"{col}: {note}", 60), ha="center", va="center", fontsize=7,
                    transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        log = col in _LOG_SCALE
        ax.boxplot([d if d.size else [np.nan] for d in data], showfliers=False)
        rng = np.random.default_rng(0)
        for i, d in enumerate(data, start=1):
            ax.plot(i + rng.uniform(-0.12, 0.12, d.size), d, ".", color="0.3", markersize=3)
        if log:
            ax.set_yscale("log")
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=45, ha="right", fontsize=8)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    _title(fig, title, table)
    return fig


def plot_tradeoff(table: pd.DataFrame, summary: pd.DataFrame | None = None, *, x: str = "style_distance",
                  y: str = "photorealism", title: str = "Photorealism vs style distance") -> Figure:
    """Scatter of two metrics: every (pair, method) a small dot, every method's mean a large
    marker with its interval (from :func:`summarize`) as error bars. Lower-left is better
    for the defaults (close to the style and photo-like); the ``content`` row marks where no
    transfer at all lands."""
    methods = list(pd.unique(table["method"]))
    fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab20"]
    for i, m in enumerate(methods):
        sub = table[table["method"] == m]
        colour = "black" if m == CONTENT_ROW else cmap(i % 20)
        xs, ys = _plotted(x, sub[x]), _plotted(y, sub[y])
        ax.scatter(xs, ys, s=10, alpha=0.35, color=colour)
        mx, my = _plotted(x, [sub[x].mean()])[0], _plotted(y, [sub[y].mean()])[0]
        err = {}
        if summary is not None:
            for axis, col in (("xerr", x), ("yerr", y)):
                r = summary[(summary["method"] == m) & (summary["metric"] == col)]
                if len(r) and np.isfinite(r["low"].iloc[0]):
                    err[axis] = [[max(0.0, r["mean"].iloc[0] - r["low"].iloc[0])],
                                 [max(0.0, r["high"].iloc[0] - r["mean"].iloc[0])]]
        ax.errorbar([mx], [my], fmt="*" if m == CONTENT_ROW else "o", markersize=9, color=colour,
                    capsize=3, elinewidth=0.8, alpha=0.9, label=m, **err)
    if x in _LOG_SCALE:
        ax.set_xscale("log")
    if y in _LOG_SCALE:
        ax.set_yscale("log")
    ax.set_xlabel(_LABELS.get(x, x))
    ax.set_ylabel(_LABELS.get(y, y))
    ax.legend(fontsize=7, loc="best", ncols=2)
    _title(fig, title, table)
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
