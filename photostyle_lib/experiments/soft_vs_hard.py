"""Soft against hard masks under controlled segmentation errors (the paper's section 3.3 claim, Figure 5).

The paper: hard masks make a wrong segmentation worse ("it is unlikely for
style to be applied on the correct contents"), soft masks cut at theta_s
soften that, and give "a more natural transition between two different
styles" at label boundaries (section 5.2, Figure 5). Without an ADE20K
checkpoint we measure it under errors we control (:mod:`photostyle_lib.semantic.mask_errors`):

1. :func:`plan` -- per pair, error kind and severity, one run of the full
   model with the corrupted masks handed over **hard** (one-hot) and one per
   theta_s with **soft** masks (signed-distance softmax at ``temperature`` px,
   cut at theta_s by the segmenter path's code, ``cut.semantic_masks``); plus the **gold** run (the
   clean gold masks, the same cached run as Figure 5's gold column). Severity
   0 is the same run for every kind. Every run is a
   :class:`~photostyle_lib.experiments.runs.RunSpec` with ``mask_errors``, so it goes
   through the run cache (``results/cache``) and an interrupted measurement
   resumes.
2. :func:`score` -- per run, :mod:`photostyle_lib.metrics` against the
   **true** gold masks, whatever masks the run used: ``style_distance`` (per
   gold region), ``photorealism``, ``structure``, ``edge_transition`` (the
   colour gradient in a band around the *true* boundaries relative to the
   content's) and ``edge_transition_used`` (the same around the boundaries of
   the masks the run used: where a wrong mask puts its split).
3. :func:`summarize` -- mean and 95% Student-t interval over pairs per
   (kind, severity, masks); :func:`plot_vs_severity` and
   :func:`examples_figure` (a grid like Figure 5).

:func:`soft_vs_hard` does all three and returns the notebook's figures.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from photostyle_lib.plots import figures
from photostyle_lib.semantic import mask_errors
from photostyle_lib import metrics
from photostyle_lib.checks import check_choice, check_number
from photostyle_lib.io.data import get_pair
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.experiments.recipes import FigureOutput, grid_output
from photostyle_lib.experiments.settings import Settings, canonical_spec
from photostyle_lib.semantic.masks import load_gold_masks
from photostyle_lib.experiments.runs import RunRecord, RunSpec

__all__ = ["DEFAULT_SEVERITIES", "DEFAULT_TEMPERATURE", "SCORES", "MASK_KINDS", "error_spec", "plan", "score",
           "summarize", "plot_vs_severity", "examples_figure", "SoftVsHard", "soft_vs_hard"]

#: Severities per error kind: boundary shift in pixels of the run's images, swap and speckle fractions.
DEFAULT_SEVERITIES: dict[str, tuple[float, ...]] = {"boundary": (0, 4, 8, 16), "swap": (0, 0.25, 0.5),
                                                     "speckle": (0, 0.05, 0.2)}
#: Soft masks' temperature, pixels of the run's images (p = sigmoid(2 s / T) at s px from a boundary).
#: Our choice, not tuned: about a segmenter's transition width at 256 px, and wide enough to survive
#: the pooling to conv3_1 (1/4 resolution).
DEFAULT_TEMPERATURE = 8.0
#: Metric columns of :func:`score`, and whether lower is better.
SCORES: dict[str, bool] = {"style_distance": True, "photorealism": True, "structure": False,
                           "edge_transition": None, "edge_transition_used": None}
MASK_KINDS = ("hard", "soft", "gold")
_UNITS = {"boundary": "boundary shift (px)", "swap": "fraction of a region swapped",
          "speckle": "fraction of pixels relabelled"}


def _mask_label(mask: str, theta_s: float | None) -> str:
    return f"soft (theta_s={theta_s:g})" if mask == "soft" else mask


def error_spec(settings: Settings, pair_id: int, kind: str, severity: float, render: str, *,
               theta_s: float | None = None, temperature: float = DEFAULT_TEMPERATURE,
               target: str = "content") -> RunSpec:
    """The cached run of the full model on ``pair_id`` with gold masks corrupted by (kind, severity).

    ``render`` "hard" or "soft" (then ``theta_s``, default the settings', and
    ``temperature`` px apply); the error is seeded by ``settings.seed``.
    Severity 0 gives the same spec for every kind.

    Parameters
    ----------
    settings : Settings
        The notebook's settings (size, iterations, weights, seed, theta_s).
    pair_id : int
        The pair.
    kind : str
        An error kind of ``mask_errors.ERROR_KINDS`` ("boundary", "swap", "speckle", "none").
    severity : float >= 0
        In the kind's unit: boundary shift in px, fraction of a region swapped, or fraction of
        pixels relabelled.
    render : "hard" or "soft"
        How the corrupted masks reach the engine.
    theta_s : float in (0, 1] or None
        Soft cutoff (soft render only; None: ``settings.theta_s``).
    temperature : float > 0
        Soft masks' temperature in pixels of the run's images (soft render only).
    target : "content", "style" or "both"
        Which side's gold masks are corrupted.

    Returns
    -------
    RunSpec
        The canonical spec (the same for equal conditions).

    Raises
    ------
    PhotostyleError
        If ``render``, ``kind`` or ``target`` is not one of its choices, ``severity`` is out of
        the kind's range, ``temperature`` <= 0, or ``theta_s`` is outside (0, 1].
    """
    check_choice("render", render, mask_errors.RENDERS)
    kind, severity = mask_errors.check_error_spec(kind, severity)
    check_choice("target", target, mask_errors.TARGETS)
    base = settings.spec(pair_id, "full", "gold")
    params: dict[str, Any] = {"kind": kind, "severity": severity, "seed": settings.seed, "render": render,
                              "target": target if kind != "none" else "content"}
    cutoff = base.theta_s
    if render == "soft":
        params["temperature"] = check_number("temperature (pixels)", temperature, low=0, low_inclusive=False)
        cutoff = settings.theta_s if theta_s is None else theta_s  # checked by the mask request
    return canonical_spec(dataclasses.replace(base, theta_s=cutoff, mask_errors=tuple(params.items())))


def plan(settings: Settings, severities: Mapping[str, Sequence[float]] | None = None,
         thetas: Sequence[float] | None = None, *, temperature: float = DEFAULT_TEMPERATURE,
         target: str = "content") -> pd.DataFrame:
    """Every (pair, kind, severity, masks) condition and its RunSpec: one row each.

    Parameters
    ----------
    severities : mapping of str to sequence of float, optional
        {kind: severities} (default :data:`DEFAULT_SEVERITIES`); kinds of
        ``mask_errors.ERROR_KINDS`` but "none".
    thetas : sequence of float, optional
        theta_s of the soft runs (default: ``settings.theta_s`` alone).

    Returns
    -------
    pandas.DataFrame
        DataFrame ``pair_id, kind, severity, mask, theta_s, condition, spec``; the gold
        run appears at every (kind, severity) as the reference. Pairs whose gold masks
        (of the corrupted side, ``target``) hold fewer than two labels admit no error
        between labels: they are left out, listed in ``table.attrs["left_out"]``
        ({pair: reason}); all pairs left out is an error.

    Raises
    ------
    PhotostyleError
        If ``severities`` is empty, names an unknown kind or a kind without severities,
        ``thetas`` is empty, a pair has no gold masks, a condition is invalid
        (:func:`error_spec`), or no pair's gold masks hold two labels.
    """
    sev = dict(DEFAULT_SEVERITIES if severities is None else severities)
    if not sev:
        raise PhotostyleError("no error kinds given; give severities such as {'boundary': [0, 4, 8]}")
    for k, values in sev.items():
        check_choice("error kind", k, tuple(x for x in mask_errors.ERROR_KINDS if x != "none"))
        if not list(values):
            raise PhotostyleError(f"no severities for {k!r}; give at least one")
    thetas = [settings.theta_s] if thetas is None else [float(t) for t in thetas]
    if not thetas:
        raise PhotostyleError("thetas is empty; give at least one theta_s in (0, 1]")
    rows = []
    left_out: dict[int, str] = {}
    for p in settings.pair_ids:
        counts = _label_counts(p, settings.data_dir)
        sides = {"content": ("content",), "style": ("style",), "both": ("content", "style")}[target]
        few = [side for side in sides if counts[side] < 2]
        if few:
            left_out[p] = ", ".join(f"{side} gold mask has {counts[side]} label(s)" for side in few)
            continue
        gold = settings.spec(p, "full", "gold")
        for kind, values in sev.items():
            for s in values:
                rows.append(dict(pair_id=p, kind=kind, severity=float(s), mask="hard", theta_s=np.nan,
                                 spec=error_spec(settings, p, kind, s, "hard", target=target)))
                for t in thetas:
                    rows.append(dict(pair_id=p, kind=kind, severity=float(s), mask="soft", theta_s=t,
                                     spec=error_spec(settings, p, kind, s, "soft", theta_s=t,
                                                     temperature=temperature, target=target)))
                rows.append(dict(pair_id=p, kind=kind, severity=float(s), mask="gold", theta_s=np.nan, spec=gold))
    if not rows:
        raise PhotostyleError(f"no pair admits an error between labels: {left_out}; choose pairs whose gold masks "
                              "hold at least two labels")
    table = pd.DataFrame(rows)
    table.insert(5, "condition", [_mask_label(m, t) for m, t in zip(table["mask"], table["theta_s"])])
    table.attrs["left_out"] = left_out
    return table


def _label_counts(pair_id: int, data_dir: str | None) -> dict[str, int]:
    """Labels with pixels in the pair's aligned gold masks, per side: {"content": n, "style": m}."""
    pair = get_pair(pair_id, data_dir)
    if pair.content_mask is None or pair.style_mask is None:
        raise PhotostyleError(f"pair {pair_id} has no gold masks; the measurement needs them")
    gold = load_gold_masks(pair.content_mask, pair.style_mask, unmatched="drop")
    return {"content": int((gold.content.flatten(1).amax(1) > 0).sum()),
            "style": int((gold.style.flatten(1).amax(1) > 0).sum())}


def _true_masks(pair_id: int, data_dir: str, hw: tuple[int, int]):
    pair = get_pair(pair_id, data_dir)
    if pair.content_mask is None or pair.style_mask is None:
        raise PhotostyleError(f"pair {pair_id} has no gold masks; the measurement needs them")
    gold = load_gold_masks(pair.content_mask, pair.style_mask, unmatched="drop")
    return gold, mask_errors.hard_at_size(gold.content, hw)


def score(table: pd.DataFrame, records: Sequence[RunRecord], settings: Settings, *,
          width: float = 2.0) -> pd.DataFrame:
    """The plan's rows with their metrics (:data:`SCORES`), all against the TRUE gold masks.

    ``records`` are the runs of ``table["spec"]`` in order. ``width``: the
    edge-transition band, px either side of a boundary. Adds ``key`` and
    ``stop_reason`` columns. Each distinct run is scored once.

    Parameters
    ----------
    table : pandas.DataFrame
        The plan (:func:`plan`).
    records : sequence of RunRecord
        The runs of ``table["spec"]``, in order.
    settings : Settings
        For the data directory (the true gold masks).
    width : float > 0
        Edge-transition band half-width in pixels.

    Returns
    -------
    pandas.DataFrame
        The plan's rows without ``spec``, with the :data:`SCORES` columns, ``key``,
        ``stop_reason`` and ``weights_warning``.

    Raises
    ------
    PhotostyleError
        If ``records`` and ``table`` differ in length, a pair has no gold masks, or a metric
        rejects its inputs.
    """
    if len(records) != len(table):
        raise PhotostyleError(f"{len(records)} records for {len(table)} planned runs; run table['spec'] first")
    done: dict[str, dict[str, float]] = {}
    for rec in records:
        if rec.key in done:
            continue
        content, style, out = rec.content(), rec.style(), rec.image()
        gold, true_content = _true_masks(rec.spec.pair_id, settings.data_dir, tuple(content.shape[-2:]))
        used = rec.masks()
        row = {"style_distance": metrics.style_distance(out, style, gold),
               "photorealism": metrics.photorealism_score(out, content),
               "structure": metrics.structure_score(out, content),
               "edge_transition": metrics.edge_transition(out, content, true_content, width=width),
               "edge_transition_used": metrics.edge_transition(out, content, used.content, width=width)}
        row.update(key=rec.key, stop_reason=rec.metadata.get("stop_reason"), weights_warning=rec.weights_warning)
        done[rec.key] = row
    scored = pd.DataFrame([done[r.key] for r in records], index=table.index)
    return pd.concat([table.drop(columns=["spec"]), scored], axis=1)


def t_interval(v: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The Student-t interval of the mean of ``v`` at ``level``: (low, high); (nan, nan) below two values.

    ``v``: (n,) finite float64 values (NaNs removed by the caller); ``level`` in (0, 1), e.g. 0.95.
    """
    if v.size < 2:
        return float("nan"), float("nan")
    from scipy import stats

    half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
    return float(v.mean() - half), float(v.mean() + half)


def summarize(scored: pd.DataFrame, columns: Sequence[str] = tuple(SCORES)) -> pd.DataFrame:
    """Mean and 95% Student-t interval over pairs per (kind, severity, condition) and metric (long table).

    Columns: ``kind, severity, condition, mask, theta_s, metric, n, mean, low, high``; NaNs left out,
    fewer than two pairs give a NaN interval.
    """
    rows = []
    keys = ["kind", "severity", "condition"]
    for (kind, sev, cond), sub in scored.groupby(keys, sort=False):
        for col in columns:
            v = pd.to_numeric(sub[col], errors="coerce").to_numpy(np.float64)
            v = v[np.isfinite(v)]
            lo, hi = t_interval(v)
            rows.append({"kind": kind, "severity": sev, "condition": cond, "mask": sub["mask"].iloc[0],
                         "theta_s": sub["theta_s"].iloc[0], "metric": col, "n": int(v.size),
                         "mean": float(v.mean()) if v.size else float("nan"), "low": lo, "high": hi})
    return pd.DataFrame(rows)


def plot_vs_severity(summary: pd.DataFrame, kind: str, *, weights_warning: str | None = None,
                     columns: Sequence[str] = tuple(SCORES)) -> Figure:
    """One panel per metric: mean score vs severity of ``kind``, one line per mask condition, 95% bands.

    Parameters
    ----------
    summary : pandas.DataFrame
        The long table of :func:`summarize`.
    kind : str
        The error kind to plot.
    weights_warning : str or None
        Banner for the title (random or stand-in weights).
    columns : sequence of str
        The metrics, one panel each.

    Returns
    -------
    matplotlib.figure.Figure
        1 x len(columns) panels; x in the kind's unit (:data:`_UNITS`).

    Raises
    ------
    PhotostyleError
        If the summary has no rows for ``kind``.
    """
    sub = summary[summary["kind"] == kind]
    if sub.empty:
        raise PhotostyleError(f"the summary has no rows for error kind {kind!r}")
    fig = Figure(figsize=(3.2 * len(columns), 3.4))
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    conditions = list(dict.fromkeys(sub["condition"]))
    for ax, col in zip(axes, columns):
        m = sub[sub["metric"] == col]
        for cond in conditions:
            c = m[m["condition"] == cond].sort_values("severity")
            style = {"linestyle": "--", "color": "0.3"} if cond == "gold" else {}
            line, = ax.plot(c["severity"], c["mean"], marker="o", label=cond, **style)
            ax.fill_between(c["severity"], c["low"], c["high"], alpha=0.2, color=line.get_color())
        better = SCORES.get(col)
        ax.set_title(col + ("" if better is None else (" (lower better)" if better else " (higher better)")),
                     fontsize=8)
        ax.set_xlabel(_UNITS.get(kind, "severity"), fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    n = int(sub["n"].max()) if len(sub) else 0
    figures.set_title(fig, figures.title_lines(f"Soft vs hard masks under {kind} errors (mean and 95% t "
                                               f"interval over {n} pairs)", weights_warning=weights_warning),
                      weights_warning, fontsize=9)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.16, top=0.74 if weights_warning else 0.8, wspace=0.35)
    return fig


def examples_figure(table: pd.DataFrame, records: Sequence[RunRecord], kind: str, severity: float, *,
                    theta_s: float | None = None) -> FigureOutput:
    """Figure 5 under a controlled error: per pair, content, style, corrupted mask, hard, soft and gold results.

    ``theta_s``: which soft condition (default the first planned).

    Parameters
    ----------
    table : pandas.DataFrame
        The plan (:func:`plan`), or rows of it.
    records : sequence of RunRecord
        The runs of ``table``'s rows, in order.
    kind : str
        The error kind.
    severity : float
        The severity shown (matched with ``numpy.isclose``).
    theta_s : float or None
        Which soft condition (None: the first planned).

    Returns
    -------
    FigureOutput
        One row per pair: content, style, the corrupted content mask, hard, soft and gold results.

    Raises
    ------
    PhotostyleError
        If no planned run has ``kind`` at ``severity``.
    """
    rec_of = {i: r for i, r in zip(table.index, records)}
    sel = table[(table["kind"] == kind) & np.isclose(table["severity"], severity)]
    if sel.empty:
        raise PhotostyleError(f"no planned runs for {kind} at severity {severity}")
    soft_rows = sel[sel["mask"] == "soft"]
    if theta_s is None and not soft_rows.empty:
        theta_s = float(soft_rows["theta_s"].iloc[0])
    rows, sources, used = [], {}, []
    for p, sub in sel.groupby("pair_id", sort=False):
        pick = {}
        for _, r in sub.iterrows():
            if r["mask"] != "soft" or np.isclose(r["theta_s"], theta_s):
                pick[r["mask"]] = rec_of[r.name]
        label = f"pair {p}"
        hard = pick["hard"]
        hm = hard.masks()
        images = {"content": hard.content(), "style": hard.style(),
                  "mask": figures.label_map_image(hm.content, hm.labels)}
        for m in MASK_KINDS:
            if m in pick:
                images[m] = pick[m].image()
                sources[(label, m)] = pick[m].key
        rows.append((label, images))
        used += list(pick.values())
    cols = [("content", "Content"), ("style", "Style"), ("mask", "Corrupted mask (content)"),
            ("hard", "Hard masks"), ("soft", f"Soft masks (theta_s={theta_s:g})"), ("gold", "Gold masks")]
    name = figures.file_name(f"examples_{kind}_{severity:g}")
    warning = figures.merge_warnings(r.weights_warning for r in used)
    grid = figures.comparison_grid(name, f"Figure 5 under control: {kind} error, severity {severity:g}", rows,
                                   cols, sources=sources, weights_warning=warning,
                                   notes=[f"{_UNITS.get(kind, 'severity')} = {severity:g}; soft masks: signed-"
                                          "distance softmax of the corrupted mask, cut at theta_s"])
    return grid_output(grid, used, caption=f"The full model with the gold masks corrupted by a {kind} error "
                                           f"(severity {severity:g}), handed to the engine hard (one-hot) or soft "
                                           "(mask_errors.soft_masks_from_hard), and with the clean gold masks.")


@dataclass(frozen=True, eq=False)
class SoftVsHard:
    """What :func:`soft_vs_hard` returns: the scored table, its summary and the figures."""

    table: pd.DataFrame
    summary: pd.DataFrame
    outputs: tuple[FigureOutput, ...]
    records: tuple[RunRecord, ...]
    left_out: dict[int, str] = dataclasses.field(default_factory=dict)


def soft_vs_hard(settings: Settings, severities: Mapping[str, Sequence[float]] | None = None,
                 thetas: Sequence[float] | None = None, *, temperature: float = DEFAULT_TEMPERATURE,
                 target: str = "content", width: float = 2.0) -> SoftVsHard:
    """Plan, run (cached), score, summarise and plot the measurement; see the module docstring.

    Figures: ``soft_vs_hard_<kind>`` (scores vs severity, the summary as its table)
    and ``examples_<kind>_<severity>`` at each kind's largest severity (the scored table
    of that kind as its table).
    """
    planned = plan(settings, severities, thetas, temperature=temperature, target=target)
    records = settings.run(list(planned["spec"]))
    scored = score(planned, records, settings, width=width)
    summary = summarize(scored)
    warning = figures.merge_warnings(r.weights_warning for r in records)
    outputs = []
    for kind in dict.fromkeys(planned["kind"]):
        sub = planned[planned["kind"] == kind]
        recs = [r for r, k in zip(records, planned["kind"]) if k == kind]
        fig = plot_vs_severity(summary, kind, weights_warning=warning)
        outputs.append(FigureOutput(f"soft_vs_hard_{kind}", fig, (), tuple({r.key: r for r in recs}.values()),
                                    warning, caption=f"Scores vs {_UNITS[kind]}: hard, soft and gold masks, mean "
                                                     "and 95% Student-t interval over pairs; every score against "
                                                     "the true gold masks.",
                                    table=summary[summary["kind"] == kind].reset_index(drop=True)))
        ex = examples_figure(sub, recs, kind, float(sub["severity"].max()))
        outputs.append(dataclasses.replace(ex, table=scored[scored["kind"] == kind].reset_index(drop=True)))
    return SoftVsHard(scored, summary, tuple(outputs), tuple(records), dict(planned.attrs.get("left_out", {})))
