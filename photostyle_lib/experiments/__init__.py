"""The paper's experiments, one module per concept.

pipeline (the one run from files: FileTransfer, run_files, run_to_files), runs (the run
cache, computing through pipeline) and cache_store (its entries on disk), settings (a
notebook's parameters, the profiles), recipes (the paper's figures), executors, sweep and
sweep_plots (the metrics sweep), metrics_table (notebook 06's computation), soft_vs_hard. The doors
(CLI, batch, the notebook runner, the app, the report) live in :mod:`photostyle_lib.doors`.
"""
