"""The paper's experiments, one module per concept.

runs (the run cache), settings (a notebook's parameters, the profiles), recipes (the
paper's figures), executors, sweep and sweep_plots (the metrics sweep), metrics_table
(notebook 06's computation), soft_vs_hard, pipeline (file-level transfers). The doors
(CLI, batch, the notebook runner, the app, the report) live in :mod:`photostyle_lib.doors`.
"""
