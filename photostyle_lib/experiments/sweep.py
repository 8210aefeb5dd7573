"""The metrics sweep: every method on many pairs, scored, summarised and plotted.

One sweep is:

1. :func:`sweep_specs` -- one :class:`~photostyle_lib.experiments.runs.RunSpec` per
   (pair, method), with the same fields the figure notebooks use, so runs they
   already made come from the cache (``runs.run_cached``, same ``cache_dir``);
2. ``runs.run_many(specs, executor=...)`` -- every run an independent task
   writing its own cached result, on the executor
   :func:`~photostyle_lib.experiments.executors.make_executor` gives:
   here, one after another (``"serial"``); a local process pool
   (``"process"``); or a Dask ``distributed`` cluster (``"dask"``, a local one
   or the scheduler at ``address``), whose client is a ``concurrent.futures``
   executor. A lost worker loses only its task (Dask reschedules it); a rerun
   computes only what is missing (:mod:`photostyle_lib.experiments.executors`);
3. :func:`score_runs` -- the metrics of :mod:`photostyle_lib.metrics` for every
   run, one task per pair on the same executor, with the runtime and peak memory
   the run recorded: one row per (pair, method);
4. :func:`summarize` -- mean and a 95% interval per method and metric;
5. :func:`~photostyle_lib.experiments.sweep_plots.plot_metric_boxes`,
   :func:`~photostyle_lib.experiments.sweep_plots.plot_tradeoff` (the figures) and
   :func:`save_sweep` (tables, figures, metadata).

:func:`photostyle_lib.experiments.metrics_table.metrics_sweep` does all five for a
notebook's :class:`~photostyle_lib.experiments.settings.Settings` (notebook 06_metrics).

Regions: the style distance and the Gram distance are measured per region of
the pair's *gold* masks (the dataset's hand-made masks), whatever masks a
method used, so every method is judged on the same regions.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from photostyle_lib import metrics
from photostyle_lib.checks import check_choice, check_int, check_number
from photostyle_lib.io.data import get_pair, list_pairs
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.plots.figures import RANDOM_WEIGHTS_BANNER  # the title line of every figure made with random weights
from photostyle_lib.io.images import merge_warnings
from photostyle_lib.semantic.masks import SemanticMasks, load_gold_masks
from photostyle_lib.io.metadata import base_metadata, write_json
from photostyle_lib.engine.presets import ABLATION
from photostyle_lib.experiments.runs import METHODS, PUBLISHED, RunRecord, RunSpec
from photostyle_lib.checks import resolve_device

__all__ = [
    "SWEEP_METHODS",
    "INTERVALS",
    "SUMMARY_COLUMNS",
    "QUALITY_DIRECTIONS",
    "pair_gold_masks",
    "RANDOM_WEIGHTS_BANNER",
    "resolve_pair_ids",
    "sweep_specs",
    "score_pair",
    "score_runs",
    "summarize",
    "summary_table",
    "relative_to",
    "table_warning",
    "save_sweep",
]

#: The methods compared: the paper's five variants, then Gatys, the two colour
#: transfers, Luan et al. as run by this engine and as published.
SWEEP_METHODS: tuple[str, ...] = tuple(ABLATION) + ("gatys", "reinhard", "pitie_idt", "luan", "luan_published")
#: The quality measures of ``studies/quality.py`` and ``studies/time_to_quality.py``: +1 if higher is
#: better, -1 if lower is better (photorealism energy, gradient SSIM, per-region colour distance, the
#: judge's per-label Gram distance and edge SSIM).
QUALITY_DIRECTIONS: dict[str, int] = {"photorealism": -1, "structure": +1, "style_distance": -1, "judge_gram": -1,
                                      "edge_ssim": +1}
#: Reference row added by :func:`score_runs`: the content itself (no transfer).
CONTENT_ROW = "content"
INTERVALS = ("t", "bootstrap")
#: Columns :func:`summarize` summarises: the metrics, then the runs' cost.
SUMMARY_COLUMNS: tuple[str, ...] = metrics.METRICS + ("runtime_s", "peak_rss_mb")

# ---------------------------------------------------------------------------
# Specs


def resolve_pair_ids(pair_ids: Sequence[int] | int | None, data_dir: str | os.PathLike | None = None
                     ) -> list[int]:
    """``pair_ids`` as a list of ints; None means every pair of the dataset (the paper profile's 60).

    Parameters
    ----------
    pair_ids : int, sequence of int or None
        Example ids (>= 0); one int is a list of one.
    data_dir : str, os.PathLike or None
        The dataset, for None (None: ``$PHOTOSTYLE_DATA`` or data/luan2017).

    Returns
    -------
    list of int
        The ids, in the order given (the dataset's for None).

    Raises
    ------
    PhotostyleError
        If an id is not a whole number >= 0, or ``pair_ids`` is empty.
    """
    if pair_ids is None:
        return list_pairs(data_dir)
    if isinstance(pair_ids, (int, np.integer)):
        pair_ids = [pair_ids]
    ids = [check_int("pair id", p, low=0) for p in pair_ids]
    if not ids:
        raise PhotostyleError("pair_ids is empty; give at least one example id (1-60), or None for all")
    return ids


def sweep_specs(settings: Any, methods: Sequence[str] = SWEEP_METHODS) -> list[RunSpec]:
    """One RunSpec per (pair, method), pairs outer: the sweep's tasks.

    ``settings`` is the notebooks' :class:`photostyle_lib.experiments.settings.Settings`
    (anything with ``pair_ids`` and ``spec(pair_id, method)``): the specs are the
    very ones the figure notebooks ask for under the same parameters, so the runs
    those notebooks made are cache hits and the sweep's runs serve the figures.
    ``methods`` are names from ``runs.METHODS`` (default :data:`SWEEP_METHODS`).

    Returns
    -------
    list of RunSpec
        ``len(settings.pair_ids) * len(methods)`` specs.

    Raises
    ------
    PhotostyleError
        If ``methods`` is a string or empty, or holds a name not in ``runs.METHODS``.
    """
    if isinstance(methods, str) or not methods:
        raise PhotostyleError(f"methods must be a non-empty list of method names, got {methods!r}")
    for m in methods:
        check_choice("method", m, METHODS)
    return [settings.spec(int(p), m) for p in settings.pair_ids for m in methods]


# ---------------------------------------------------------------------------
# Scoring


def _cost_columns(record: RunRecord) -> dict[str, float]:
    """Runtime and peak memory the run recorded (runs.py metadata ``timings`` and ``memory``).

    ``runtime_s``: the method's own time (``timings.total``); ``wall_s``: the
    whole task (loading, masks, saving). NaN for published results, which were
    not computed here. ``peak_rss_mb`` is the peak resident memory of the
    process while the run computed (sampled during the run; where /proc is
    missing, the process's lifetime peak); ``cuda_peak_mb`` the run's own peak
    GPU allocation.
    """
    md = record.metadata
    published = record.spec.method in PUBLISHED
    mem = md.get("memory") or {}
    nan = float("nan")
    runtime = (md.get("timings") or {}).get("total")
    return {"runtime_s": nan if published or runtime is None else float(runtime),
            "wall_s": nan if published else float(md.get("wall_seconds", nan)),
            "peak_rss_mb": nan if published else float(mem.get("run_peak_rss_mb", mem.get("process_peak_rss_mb", nan))),
            "cuda_peak_mb": float(mem.get("cuda_peak_allocated_mb", nan))}


def pair_gold_masks(pair_id: int, data_dir: str | None) -> tuple[SemanticMasks | None, str]:
    """Pair ``pair_id``'s gold masks (content labels the style lacks dropped) and what the regions are.

    Returns ``(masks, "gold")``, or ``(None, "none (...)")`` saying why there are none (no mask
    files, or files that cannot be read as masks): scores are then taken over the whole image.
    """
    pair = get_pair(pair_id, data_dir)
    if pair.content_mask is None or pair.style_mask is None:
        return None, "none (no gold masks)"
    try:
        return load_gold_masks(pair.content_mask, pair.style_mask, unmatched="drop"), "gold"
    except PhotostyleError as exc:
        return None, f"none ({exc})"


def score_pair(records: Sequence[RunRecord], *, data_dir: str | os.PathLike | None = None,
               gram_weights: str = "imagenet", device: str = "auto", include_content: bool = True,
               judge_weights: str | None = None) -> list[dict[str, Any]]:
    """Metric rows of the runs of one pair (one task of :func:`score_runs`).

    The content's matting Laplacian is built once for all methods of the pair.
    With ``include_content`` a row for the content itself (method ``"content"``)
    comes first: the no-transfer reference.

    Parameters
    ----------
    records : sequence of RunRecord
        Runs of one pair (empty: no rows).
    data_dir, gram_weights, device, include_content, judge_weights
        As :func:`score_runs`.

    Returns
    -------
    list of dict
        One row per method (the columns of :func:`score_runs`).

    Raises
    ------
    PhotostyleError
        If the records belong to more than one pair, or the device is unavailable.
    """
    if not records:
        return []
    pair_ids = {r.spec.pair_id for r in records}
    if len(pair_ids) != 1:
        raise PhotostyleError(f"score_pair takes the runs of one pair, got pairs {sorted(pair_ids)}")
    pair_id = pair_ids.pop()
    data_dir = None if data_dir is None else str(data_dir)
    masks, regions = pair_gold_masks(pair_id, data_dir)
    vgg = metrics.load_gram_vgg(gram_weights, device=str(resolve_device(device)))
    judge = metrics.load_judge(judge_weights, device=str(resolve_device(device)))
    rows = []
    todo: list[tuple[str, RunRecord, Any]] = [(r.spec.method, r, None) for r in records]
    if include_content:
        todo.insert(0, (CONTENT_ROW, records[0], "content"))
    for method, rec, which in todo:
        content, style = rec.content(), rec.style()
        output = content if which == "content" else rec.image()
        row: dict[str, Any] = {"pair_id": pair_id, "method": method}
        row.update(metrics.image_metrics(output, content, style, masks, vgg=vgg, judge=judge))
        nan = float("nan")
        row.update({"runtime_s": nan, "wall_s": nan, "peak_rss_mb": nan, "cuda_peak_mb": nan}
                   if which == "content" else _cost_columns(rec))
        row.update({"height": int(content.shape[-2]), "width": int(content.shape[-1]),
                    "iterations": rec.spec.iterations, "weights": rec.spec.weights,
                    "random_weights": False if which == "content" else rec.random_weights,
                    "weights_warning": None if which == "content" else rec.weights_warning,
                    "regions": regions, "gram_note": vgg.note, "judge_note": judge.note,
                    "key": None if which == "content" else rec.key,
                    "device": None if which == "content" else rec.metadata.get("device")})
        rows.append(row)
    return rows


def score_runs(records: Sequence[RunRecord], *, data_dir: str | os.PathLike | None = None,
               gram_weights: str = "imagenet", device: str = "auto", executor: Any = None,
               include_content: bool = True, progress: bool = True, judge_weights: str | None = None) -> pd.DataFrame:
    """The metrics table: one row per (pair, method), one :func:`score_pair` task per pair.

    Parameters
    ----------
    records : from ``runs.run_many``.
    data_dir : the dataset (for the gold masks that define the regions).
    gram_weights : VGG weights of the Gram distance ("imagenet"); where they are
        missing the column is NaN and ``gram_note`` says why.
    device : where the Gram distance's VGG runs ("cpu", "cuda", "auto").
    judge_weights : the judge of ``judge_gram`` and ``edge_ssim`` ("hed-vgg16", a network no
        method optimises: :func:`metrics.load_judge`); None (default) leaves them NaN.
    executor : None (here) or a ``concurrent.futures``-style executor.
    include_content : add the content itself as method ``"content"`` (reference).

    Returns
    -------
    DataFrame with columns ``pair_id, method``, the metrics (``metrics.METRICS``),
    ``runtime_s, wall_s, peak_rss_mb, cuda_peak_mb`` (the run's own cost, from its
    metadata), ``height, width, iterations, weights, random_weights, regions,
    gram_note, key, device``; rows ordered by pair, then method as given.

    Raises
    ------
    PhotostyleError
        If there are no runs to score, or a :func:`score_pair` task raises it.
    """
    from tqdm.auto import tqdm

    by_pair: dict[int, list[RunRecord]] = {}
    for r in records:
        by_pair.setdefault(r.spec.pair_id, []).append(r)
    kwargs = {"data_dir": None if data_dir is None else str(data_dir), "gram_weights": gram_weights,
              "device": device, "include_content": include_content, "judge_weights": judge_weights}
    groups = list(by_pair.values())
    if executor is None:
        parts = [score_pair(g, **kwargs) for g in tqdm(groups, desc="metrics", disable=not progress)]
    else:
        futures = [executor.submit(score_pair, g, **kwargs) for g in groups]
        parts = [f.result() for f in tqdm(futures, desc="metrics", disable=not progress)]
    table = pd.DataFrame([row for part in parts for row in part])
    if table.empty:
        raise PhotostyleError("no runs to score; give at least one run record")
    return table


# ---------------------------------------------------------------------------
# Summary


def _interval(values: np.ndarray, kind: str, level: float, n_boot: int, rng: np.random.Generator
              ) -> tuple[float, float]:
    n = values.size
    if n < 2:
        return float("nan"), float("nan")
    if kind == "t":
        from scipy import stats

        half = stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
        return float(values.mean() - half), float(values.mean() + half)
    means = values[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return float(lo), float(hi)


def summarize(table: pd.DataFrame, columns: Sequence[str] = SUMMARY_COLUMNS, *, level: float = 0.95,
              interval: str = "t", n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean and ``level`` interval of the mean per method and column, over pairs.

    ``interval="t"`` (default): Student's t interval, mean +- t_{n-1} s / sqrt(n).
    Each method is run once per pair, so the n values are independent pairs and
    the mean over many pairs is close to normal; with few pairs (the ci profile's
    3) the t interval is honest about the uncertainty by being wide, where a
    bootstrap would be too narrow. ``interval="bootstrap"``: percentile bootstrap
    of the mean (``n_boot`` resamples, seeded), for skewed metrics over many pairs.
    NaN values are left out; fewer than two values give a NaN interval.

    Returns a long table: ``method, metric, n, mean, low, high, interval, level``,
    methods in the table's order.

    Raises
    ------
    PhotostyleError
        If ``interval`` is not "t" or "bootstrap", ``level`` is not in (0, 1), ``n_boot`` < 10,
        or the table lacks ``method`` or one of ``columns``.
    """
    check_choice("interval", interval, INTERVALS)
    level = check_number("level", level, low=0, high=1, low_inclusive=False, high_inclusive=False)
    n_boot = check_int("n_boot", n_boot, low=10)
    missing = [c for c in ("method", *columns) if c not in table.columns]
    if missing:
        raise PhotostyleError(f"the table lacks columns {missing}; make it with score_runs()")
    rng = np.random.default_rng(seed)
    rows = []
    for method in pd.unique(table["method"]):
        sub = table[table["method"] == method]
        for col in columns:
            v = pd.to_numeric(sub[col], errors="coerce").to_numpy(dtype=np.float64)
            v = v[np.isfinite(v)]
            lo, hi = _interval(v, interval, level, n_boot, rng)
            rows.append({"method": method, "metric": col, "n": int(v.size),
                         "mean": float(v.mean()) if v.size else float("nan"), "low": lo, "high": hi,
                         "interval": interval, "level": level})
    return pd.DataFrame(rows)


def summary_table(summary: pd.DataFrame, *, digits: int = 3) -> pd.DataFrame:
    """The summary for reading: methods as rows, metrics as columns, "mean [low, high]" strings."""
    def fmt(r) -> str:
        if not np.isfinite(r["mean"]):
            return "n/a"
        if not np.isfinite(r["low"]):
            return f"{r['mean']:.{digits}g}"
        return f"{r['mean']:.{digits}g} [{r['low']:.{digits}g}, {r['high']:.{digits}g}]"

    cells = summary.assign(cell=summary.apply(fmt, axis=1))
    wide = cells.pivot(index="method", columns="metric", values="cell")
    return wide.loc[pd.unique(summary["method"]), list(pd.unique(summary["metric"]))]


def relative_to(table: pd.DataFrame, reference: str, columns: Sequence[str] = metrics.METRICS) -> pd.DataFrame:
    """Per-pair differences from a reference method: ``value(method) - value(reference)`` on the same pair.

    Pairs differ far more from each other than methods do on one pair, so
    intervals of raw means overlap even where one method beats another on
    every pair; :func:`summarize` of this table gives paired intervals instead.
    Rows of pairs without a reference row are dropped; the reference's own
    rows become 0.

    Parameters
    ----------
    table : pandas.DataFrame
        The metrics table (:func:`score_runs`).
    reference : str
        The method subtracted.
    columns : sequence of str
        The columns differenced (default: ``metrics.METRICS``).

    Returns
    -------
    pandas.DataFrame
        The rows of pairs with a reference row, ``columns`` replaced by the differences.

    Raises
    ------
    PhotostyleError
        If ``reference`` is not a method of the table, or has several rows for one pair.
    """
    if reference not in set(table["method"]):
        raise PhotostyleError(f"reference method {reference!r} is not in the table "
                              f"(methods: {', '.join(map(str, pd.unique(table['method'])))})")
    ref = table[table["method"] == reference].set_index("pair_id")[list(columns)]
    if ref.index.duplicated().any():
        raise PhotostyleError(f"the table has several {reference!r} rows for one pair; score each run once")
    out = table[table["pair_id"].isin(ref.index)].copy()
    for col in columns:
        out[col] = out[col].to_numpy(dtype=np.float64) - ref.loc[out["pair_id"], col].to_numpy(dtype=np.float64)
    return out


# ---------------------------------------------------------------------------
# Weights banners of a table


def _random(table: pd.DataFrame) -> bool:
    return bool(table.get("random_weights", pd.Series(dtype=bool)).fillna(False).astype(bool).any())


def table_warning(table: pd.DataFrame) -> str | None:
    """The table's runs' weights banner (images.merge_warnings: random first, then the stand-in's)."""
    found = table["weights_warning"].dropna().tolist() if "weights_warning" in table else []
    return merge_warnings([RANDOM_WEIGHTS_BANNER if _random(table) else None, *found])


# ---------------------------------------------------------------------------
# Output


def save_sweep(output_dir: str | os.PathLike, table: pd.DataFrame, summary: pd.DataFrame,
               figures: dict[str, Figure], *, tables: dict[str, pd.DataFrame] | None = None,
               records: Sequence[RunRecord] = (), parameters: dict[str, Any] | None = None,
               dpi: int = 120, notebook: str | None = None, profile: str | None = None) -> dict[str, Path]:
    """Write the sweep into ``output_dir``, next to the notebook's other outputs.

    Files: ``metrics.csv`` (one row per pair and method), ``metrics_summary.csv``
    (the long summary of :func:`summarize`), ``<name>.csv`` per extra table
    (e.g. a summary of :func:`relative_to`), ``<name>.png`` per figure, and
    ``metadata.json`` in the layout of the other notebooks (what the runner
    reads and extends): parameters, figures (file, title lines, random
    weights), tables, the runs used (cache key, spec, wall time), the interval
    kind, the Gram note, whether random weights were used, versions and git
    revision; with ``notebook`` and ``profile``, those too (as the figure
    notebooks' metadata has them). Returns the paths by name.

    Raises
    ------
    PhotostyleError
        The folder cannot be written (from write_json).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "metrics.csv", "summary": out / "metrics_summary.csv"}
    table.to_csv(paths["table"], index=False)
    summary.to_csv(paths["summary"], index=False)
    for name, extra in (tables or {}).items():
        paths[name] = out / f"{name}.csv"
        extra.to_csv(paths[name], index=False)
    random = _random(table)
    listing = []
    for name, fig in figures.items():
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=dpi)
        listing.append({"name": name, "file": paths[name].name, "title": fig.get_suptitle().split("\n"),
                        "random_weights": random, "weights_warning": table_warning(table),
                        "table": paths["table"].name})
    md = base_metadata()
    if notebook is not None:
        md["notebook"] = notebook
    if profile is not None:
        md["profile"] = profile
    md.update({
        "parameters": dict(parameters or {}), "random_weights": random, "figures": listing,
        "tables": {"metrics": paths["table"].name, "summary": paths["summary"].name,
                   **{name: paths[name].name for name in (tables or {})}},
        "interval": sorted(set(summary["interval"])) if "interval" in summary else [],
        "gram_note": sorted(set(table["gram_note"])) if "gram_note" in table else [],
        "pairs": sorted(int(p) for p in pd.unique(table["pair_id"])),
        "methods": list(pd.unique(table["method"])),
        "cache_keys": [r.key for r in records],
        "runs": [{"key": r.key, "directory": str(r.directory), "spec": dataclasses.asdict(r.spec),
                  "random_weights": r.random_weights, "wall_seconds": r.metadata.get("wall_seconds")}
                 for r in records],
    })
    if table_warning(table):
        md["warning"] = table_warning(table)
    paths["metadata"] = write_json(md, out / "metadata.json")
    return paths
