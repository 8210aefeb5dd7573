"""Notebook 06's computation as one function: every method on the pairs, scored, summarised, saved.

:func:`metrics_sweep` runs the methods on a notebook's pairs through the run
cache (``runs.run_many``) on the chosen executor
(:func:`~photostyle_lib.experiments.executors.make_executor`), scores every run
(:func:`~photostyle_lib.experiments.sweep.score_runs`), summarises per method
(:func:`~photostyle_lib.experiments.sweep.summarize`, raw and paired against the
content), draws the two figures (:mod:`photostyle_lib.experiments.sweep_plots`)
and writes them with their metadata (:func:`~photostyle_lib.experiments.sweep.save_sweep`).
The notebook ``06_metrics`` only calls it and shows the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from photostyle_lib import metrics
from photostyle_lib.checks import check_choice
from photostyle_lib.experiments import sweep
from photostyle_lib.experiments.executors import make_executor
from photostyle_lib.experiments.runs import RunRecord, run_many
from photostyle_lib.experiments.settings import Settings
from photostyle_lib.experiments.sweep_plots import plot_metric_boxes, plot_tradeoff


@dataclass(frozen=True, eq=False)
class MetricsSweep:
    """What :func:`metrics_sweep` computed and wrote.

    Attributes
    ----------
    records : tuple of RunRecord
        The cached runs, pairs outer, methods inner (sweep.sweep_specs' order).
    table : DataFrame
        One row per (pair, method), the content reference first per pair (sweep.score_runs).
    summary : DataFrame
        Mean and interval per method and column (sweep.summarize), long format.
    paired : DataFrame
        The same for each method minus the content on the same pair (sweep.relative_to).
    figures : dict of str to Figure
        "metrics_boxes" and "metrics_tradeoff".
    paths : dict of str to Path
        The files written (sweep.save_sweep's keys), empty when not saved.
    """

    records: tuple[RunRecord, ...]
    table: pd.DataFrame
    summary: pd.DataFrame
    paired: pd.DataFrame
    figures: dict[str, Figure]
    paths: dict[str, Path]


def metrics_sweep(settings: Settings, methods: Sequence[str] | None = None, *, executor: str = "serial",
                  scheduler_address: str | None = None, workers: int | None = None, interval: str = "t",
                  gram_weights: str = "imagenet", save: bool = True) -> MetricsSweep:
    """Run, score, summarise and (with ``save``) write every method on ``settings.pair_ids``.

    Parameters
    ----------
    settings : Settings
        The notebook's parameters: pairs, size, iterations, weights, device,
        cache and output folders (the runs are those the figure notebooks ask
        for under the same parameters, so theirs are cache hits).
    methods : sequence of str, optional
        Names from ``runs.METHODS`` (None: :data:`sweep.SWEEP_METHODS`).
    executor : {"serial", "process", "dask"}
        Where the runs and the scoring go (executors.make_executor).
    scheduler_address : str, optional
        An existing Dask scheduler ("tcp://host:8786"), with ``executor="dask"``.
    workers : int, optional
        Local worker processes ("process", or "dask" without an address).
    interval : {"t", "bootstrap"}
        The 95% interval of the mean over pairs (sweep.summarize).
    gram_weights : str
        VGG weights of the Gram distance; NaN where missing (the table's gram_note says why).
    save : bool
        Write ``metrics.csv``, ``metrics_summary.csv``, ``metrics_vs_content.csv``,
        the two figures and ``metadata.json`` into ``settings.output_dir``.

    Returns
    -------
    MetricsSweep

    Raises
    ------
    PhotostyleError
        An unknown method, executor or interval kind, an unreachable scheduler,
        or a run that cannot be made (missing pair or weights).
    """
    methods = tuple(sweep.SWEEP_METHODS if methods is None else methods)
    check_choice("interval", interval, sweep.INTERVALS)
    specs = sweep.sweep_specs(settings, methods)
    with make_executor(executor, address=scheduler_address, workers=workers) as ex:
        records = run_many(specs, cache_dir=settings.cache_dir, data_dir=settings.data_dir, device=settings.device,
                           executor=ex, progress=settings.progress)
        table = sweep.score_runs(records, data_dir=settings.data_dir, gram_weights=gram_weights,
                                 device=settings.device, executor=ex, progress=settings.progress)
    summary = sweep.summarize(table, interval=interval)
    paired = sweep.summarize(sweep.relative_to(table, sweep.CONTENT_ROW), metrics.METRICS, interval=interval)
    figs = {"metrics_boxes": plot_metric_boxes(table), "metrics_tradeoff": plot_tradeoff(table, summary)}
    paths: dict[str, Path] = {}
    if save:
        options: dict[str, Any] = {"methods": list(methods), "executor": executor,
                                   "scheduler_address": scheduler_address, "workers": workers,
                                   "interval": interval, "gram_weights": gram_weights}
        paths = sweep.save_sweep(settings.output_dir, table, summary, figs, tables={"metrics_vs_content": paired},
                                 records=records, parameters={**settings.parameters(), **options},
                                 notebook=settings.notebook, profile=settings.profile)
    return MetricsSweep(tuple(records), table, summary, paired, figs, paths)
