"""The optimisation engine's entry point: ``stylize``, eq. (10) minimised over the output image.

``stylize(content, style, config, masks=...)`` starts from the content image and minimises

    alpha * sum_l L_c^l + beta * sum_l L_s+^l + gamma * sum_l L_sim^l          (10)
    (+ lambda * L_m, the photorealism regularisation of eq. 4, when enabled)
    (+ tv * total variation, Luan et al.'s smoothness term, when enabled)

with L-BFGS (one iteration = one loss evaluation, as the paper's code counts) or Adam,
then applies the chosen post-process (eq. 9 by default). It is a list of named steps,
each in the module of its concept:

==========================  ===============================================================
step                        where
==========================  ===============================================================
check the images            :func:`photostyle_lib.io.images.as_image_tensor`
prepare the masks           :func:`photostyle_lib.engine.inputs.prepare_masks`
schedule (two stages or     :func:`photostyle_lib.engine.schedule.two_stage`,
coarse to fine)             :func:`photostyle_lib.engine.schedule.coarse_to_fine`
the network                 :func:`photostyle_lib.engine.extractor.run_extractor`
the allocator (CPU)         :func:`photostyle_lib.features.allocator.keep_freed_memory`
build the objective         :func:`photostyle_lib.engine.objective.build_objective`
the starting image          :func:`photostyle_lib.engine.inputs.starting_image`
optimise (with the guards)  :func:`photostyle_lib.engine.optimise.optimise`
post-process                :func:`photostyle_lib.engine.postprocess_chain.apply_postprocess`
the result                  :class:`photostyle_lib.engine.config.TransferResult`
==========================  ===============================================================

The settings are a :class:`~photostyle_lib.engine.config.TransferConfig`.
"""

from __future__ import annotations

import functools
import time
from typing import Callable

import torch

from photostyle_lib.checks import resolve_device
from photostyle_lib.features import allocator
from photostyle_lib.features.vgg import VGGFeatures
from photostyle_lib.io.images import as_image_tensor
from photostyle_lib.io.metadata import device_description
from photostyle_lib.semantic.masks import SemanticMasks
from photostyle_lib.engine import schedule
from photostyle_lib.engine.config import TransferConfig, TransferResult
from photostyle_lib.engine.extractor import run_extractor
from photostyle_lib.engine.inputs import prepare_masks, starting_image
from photostyle_lib.engine.objective import build_objective
from photostyle_lib.engine.optimise import Optimised, optimise
from photostyle_lib.engine.postprocess_chain import apply_postprocess


def stylize(content: torch.Tensor, style: torch.Tensor, config: TransferConfig | None = None, *,
            masks: SemanticMasks | None = None, content_masks: torch.Tensor | None = None,
            style_masks: torch.Tensor | None = None, extractor: VGGFeatures | None = None,
            progress: bool = True, init: torch.Tensor | None = None,
            callback: Callable[[int, dict[str, float]], None] | None = None,
            image_callback: Callable[[int, torch.Tensor], None] | None = None,
            keep_freed_memory: bool = True) -> TransferResult:
    """Transfer the style of ``style`` onto ``content`` (eq. 10, then the post-process).

    Parameters
    ----------
    content : tensor (1, 3, H, W) float in [0, 1]; H, W >= 16
    style : tensor (1, 3, Hs, Ws) float in [0, 1]; any size >= 16
    config : TransferConfig or None
        Default: ``TransferConfig()`` (the paper's settings).
    masks : SemanticMasks or None
        Aligned masks (gold, hard or soft) at any resolution of the images' shapes. Required
        unless ``config.segmentation == "none"`` (then ignored, with a note).
    content_masks, style_masks : tensor (C, H', W'), (C, Hs', Ws') or None
        Alternatively, raw aligned stacks.
    extractor : VGGFeatures or None
        A network to reuse (it must cover the config's layers); default: built from
        ``config.weights`` once per weights identity (:mod:`photostyle_lib.engine.extractor`).
    progress : bool
        Show a tqdm progress bar.
    init : tensor (1, 3, H, W) or None
        The starting image (default ``config.init``'s: the content, as the paper's code).
    callback : callable (iteration, loss terms) or None
        Called after each evaluation with its row of the losses table.
    image_callback : callable (iteration, image) or None
        Called after each evaluation with the evaluated image, (1, 3, H, W) in [0, 1] on the
        run's device, before any post-process: a view the optimiser goes on changing -- copy
        what you keep. Either callback may raise :class:`~photostyle_lib.engine.config.StopRun`.
    keep_freed_memory : bool
        On the CPU, call :func:`photostyle_lib.features.allocator.keep_freed_memory` before
        optimising: glibc then keeps freed blocks for reuse instead of page-faulting large
        tensors in at every step (about a third of a step; the process keeps its peak memory
        afterwards). A process-wide setting, made once per process and not undone; False
        leaves malloc as it is for this call (as does ``$PHOTOSTYLE_KEEP_FREED_MEMORY=0`` for
        the whole process). No effect on the numbers.

    Returns
    -------
    TransferResult
        Ctrl-C ends the run early and still returns the best image so far (stop reason
        "interrupted"); so does ``StopRun`` (stop reason ``STOPPED_BY_USER``). A two-stage run
        stopped by ``StopRun`` in its first stage runs no second stage. With
        ``config.pyramid_levels > 1`` the run is :func:`~photostyle_lib.engine.schedule.coarse_to_fine`'s
        schedule (callbacks numbered across levels, a ``level`` column).

    Raises
    ------
    PhotostyleError
        On bad images or masks, masks missing for a masked config, an extractor without the
        config's layers, an ``init`` of another shape, an unavailable device, or a first
        evaluation that is not finite.
    KeyboardInterrupt
        On Ctrl-C before the first evaluation finished.
    """
    cfg = config or TransferConfig()
    content = as_image_tensor("content", content, min_side=16)
    style = as_image_tensor("style", style, min_side=16)
    masks, notes = prepare_masks(cfg, content, style, masks, content_masks, style_masks)
    if cfg.uses_pyramid or (cfg.two_stage and cfg.use_regularization):
        run = functools.partial(stylize, keep_freed_memory=keep_freed_memory)
        given = dict(masks=masks, extractor=extractor, progress=progress, init=init, callback=callback,
                     image_callback=image_callback)
        if cfg.uses_pyramid:
            return schedule.coarse_to_fine(run, content, style, cfg, notes=notes, **given)
        return schedule.two_stage(run, content, style, cfg, **given)

    t_start = time.perf_counter()
    device = resolve_device(cfg.device)
    vgg = run_extractor(extractor, cfg.all_layers(), cfg.weights, cfg.seed, cfg.weights_convention, device)
    if keep_freed_memory and device.type == "cpu":
        allocator.keep_freed_memory()
    content, style = content.to(device, torch.float32), style.to(device, torch.float32)
    objective = build_objective(content, style, cfg, masks, vgg)
    x = starting_image(content, style, cfg, masks, init)
    t_setup = time.perf_counter() - t_start
    optimised = optimise(objective, x, cfg, progress=progress, callback=callback, image_callback=image_callback)
    raw = optimised.best_image.detach().clamp(0, 1).to("cpu")
    t_post = time.perf_counter()
    final = apply_postprocess(raw, content.to("cpu"), cfg, style=style, masks=masks)
    timings = {"setup": t_setup, "optimise": optimised.seconds, "postprocess": time.perf_counter() - t_post}
    return _result(cfg, optimised, final, raw, vgg, device, masks, notes, timings, t_start)


def _result(cfg: TransferConfig, optimised: Optimised, final: torch.Tensor, raw: torch.Tensor, vgg: VGGFeatures,
            device: torch.device, masks: SemanticMasks | None, notes: tuple[str, ...], timings: dict[str, float],
            t_start: float) -> TransferResult:
    """The TransferResult of one single-level run; ``timings`` gains total and per_step (seconds)."""
    timings = {**timings, "total": time.perf_counter() - t_start,
               "per_step": optimised.seconds / max(len(optimised.losses), 1)}
    return TransferResult(image=final, raw_image=raw, losses=optimised.losses,
                          best_iteration=int(optimised.best_iteration), stop_reason=optimised.stop_reason,
                          timings=timings, config=cfg, weights=vgg.weights_label, device=str(device),
                          device_name=device_description(device), network=vgg.describe(),
                          labels=masks.labels if masks is not None else (), notes=tuple(notes))
