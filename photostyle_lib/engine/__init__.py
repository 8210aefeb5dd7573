"""The optimisation (eq. 10): TransferConfig and stylize, the presets, the L-BFGS variants."""
