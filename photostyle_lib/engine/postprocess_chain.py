"""The post-process chain of a run: the config's steps, left to right, on the optimised image.

The steps (:data:`~photostyle_lib.engine.config.POSTPROCESS_STEP_NAMES`) are the paper's
recursive filter (eq. 9, ``postprocess.refine``), the screened Poisson step (per channel or on
the luminance), Luan et al.'s
local affine smoothing, and this project's per-region colour matching, per-region detail
matching and matting-Laplacian smoothing; ``TransferConfig.postprocess`` names one, "none", or several joined by "+".
"""

from __future__ import annotations

import numpy as np
import torch

from photostyle_lib import baselines
from photostyle_lib.checks import resolve_device
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import array_to_tensor, tensor_to_array
from photostyle_lib.photoreal import detail, local_affine, matting, postprocess
from photostyle_lib.semantic.masks import SemanticMasks
from photostyle_lib.engine.config import TransferConfig, postprocess_steps
from photostyle_lib.engine.inputs import mask_arrays


def apply_postprocess(image: torch.Tensor, content: torch.Tensor, cfg: TransferConfig, *,
                      style: torch.Tensor | None = None, masks: SemanticMasks | None = None) -> torch.Tensor:
    """The config's post-process steps (:func:`~photostyle_lib.engine.config.postprocess_steps`), in order.

    Parameters
    ----------
    image : tensor (1, 3, H, W) float in [0, 1]
        The optimised image (any device).
    content : tensor (1, 3, H, W) float in [0, 1], on the CPU
        The guide of the edge-aware steps.
    cfg : TransferConfig
        ``postprocess`` and each step's settings (``rf_sigma_s`` in pixels, ``rf_sigma_r``
        in [0, 1] units, ``poisson_lambda`` in pixels^2, ``affine_radius`` in pixels,
        ``affine_edge`` in [0, 1] units, ``smooth_lambda``, ``matting_eps`` / ``matting_radius``).
    style : tensor (1, 3, Hs, Ws) float in [0, 1], or None
        Needed by the ``colour_match`` and ``detail_match`` steps only.
    masks : SemanticMasks or None
        The run's masks, for ``colour_match`` and ``detail_match`` (used when ``cfg.uses_masks``).

    Returns
    -------
    tensor (1, 3, H, W) float32 in [0, 1], on the CPU
        A new tensor ("none": a copy of ``image``).

    Raises
    ------
    PhotostyleError
        When ``colour_match`` or ``detail_match`` is a step and ``style`` is None.

    Notes
    -----
    ``local_affine`` runs the numpy kernel on the CPU and the torch version on the run's
    device when that is a CUDA GPU (the same result up to rounding). Luan et al. smooth the
    iterate of their 1000th evaluation, unclipped; here it is the returned (best) image.
    """
    out = image.to("cpu", torch.float32).clone()
    for step in postprocess_steps(cfg.postprocess):
        out = _postprocess_step(out, content, step, cfg, style, masks)
    return out


def _postprocess_step(image: torch.Tensor, content: torch.Tensor, step: str, cfg: TransferConfig,
                      style: torch.Tensor | None = None, masks: SemanticMasks | None = None) -> torch.Tensor:
    """One post-process step (POSTPROCESS_STEP_NAMES) -> (1, 3, H, W) float32 on the CPU."""
    if step in ("colour_match", "detail_match"):
        if style is None:
            raise PhotostyleError(f"the {step} post-process needs the style image (apply_postprocess(style=...))")
        cm, sm = mask_arrays(masks if cfg.uses_masks else None, image, style)
        img, sty = tensor_to_array(image), tensor_to_array(style.cpu())
        if step == "detail_match":
            return array_to_tensor(detail.match_region_detail(img, sty, cm, sm, bands=cfg.detail_bands,
                                                              max_gain=cfg.detail_max_gain))
        return array_to_tensor(baselines.masked_idt(img, sty, cm, sm, seed=cfg.seed))
    if step == "matting_smooth":
        ref = tensor_to_array(content)
        lap = matting.cached_matting_laplacian(ref, eps=cfg.matting_eps, radius=cfg.matting_radius)
        return array_to_tensor(postprocess.matting_smooth(tensor_to_array(image), ref, cfg.smooth_lambda,
                                                          laplacian=lap))
    if step == "local_affine":
        device = resolve_device(cfg.device)
        if device.type == "cuda":
            res = local_affine.smooth_local_affine_torch(image.to(device), content.to(device), cfg.affine_radius,
                                                         cfg.affine_edge)
            return res.to("cpu", torch.float32)
    out, ref = tensor_to_array(image), tensor_to_array(content)
    if step == "local_affine":
        return array_to_tensor(local_affine.smooth_local_affine(out, ref, cfg.affine_radius, cfg.affine_edge))
    if step == "recursive_filter":
        res = postprocess.refine(out, ref, sigma_s=cfg.rf_sigma_s, sigma_r=cfg.rf_sigma_r,
                                 num_iterations=cfg.rf_iterations)
    elif step == "screened_poisson_luminance":
        res = postprocess.screened_poisson_luminance(out, ref, lam=cfg.poisson_lambda)
    else:
        res = postprocess.screened_poisson(out, ref, lam=cfg.poisson_lambda)
    return array_to_tensor(np.clip(res, 0.0, 1.0))
