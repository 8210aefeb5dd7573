"""The paper's experiments: cached runs, figure recipes and the notebook runner, sweeps, batch runs, the interactive app, the report."""
