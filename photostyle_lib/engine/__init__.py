"""The optimisation (eq. 10): config, inputs, extractor, objective, optimise, schedule, postprocess_chain,
transfer (``stylize``, which runs them as named steps), the presets, the L-BFGS variants, the paper's symbols."""
