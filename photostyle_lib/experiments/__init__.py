"""The paper's experiments, one module per concept.

runs (the run cache), settings (a notebook's parameters, the profiles), recipes (the
paper's figures), runner (the notebook suite), executors, sweep and sweep_plots (the
metrics sweep), metrics_table (notebook 06's computation), soft_vs_hard, pipeline
(file-level transfers), interactive (the app), report (the HTML page).
"""
