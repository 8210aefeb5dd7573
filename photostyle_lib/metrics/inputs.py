"""Inputs shared by the metrics: mask stacks checked and aligned to the images, images as tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.semantic.masks import SemanticMasks, resize_masks


def mask_stack(name: str, masks: Any) -> torch.Tensor:
    """One mask stack checked and brought to float32 on the CPU.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    masks : torch.Tensor or np.ndarray, (C, H, W), float in [0, 1]

    Returns
    -------
    torch.Tensor, (C, H, W), float32 on the CPU, detached

    Raises
    ------
    PhotostyleError
        If ``masks`` is not a 3-dimensional array or tensor, or has values outside [0, 1] or not finite.
    """
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))
    if not isinstance(masks, torch.Tensor) or masks.ndim != 3:
        shape = tuple(masks.shape) if hasattr(masks, "shape") else type(masks).__name__
        raise PhotostyleError(f"{name} must be a (C, H, W) mask stack or SemanticMasks, got {shape}")
    masks = masks.detach().to("cpu", torch.float32)
    if not torch.isfinite(masks).all() or float(masks.min()) < -1e-6 or float(masks.max()) > 1 + 1e-6:
        raise PhotostyleError(f"{name} values must be finite and in [0, 1]")
    return masks


def aligned_masks(content_masks: Any, style_masks: Any, content_hw: tuple[int, int],
                  style_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The (content, style) mask stacks at the images' sizes (area averaging), or None without masks.

    Parameters
    ----------
    content_masks : SemanticMasks, (L, H', W') stack in [0, 1], or None
        A SemanticMasks holds both stacks (then ``style_masks`` must be None).
    style_masks : (L, Hs', Ws') stack in [0, 1], or None
    content_hw, style_hw : (int, int)
        (H, W) of the output (content) and of the style image, in pixels.

    Returns
    -------
    (torch.Tensor (L, H, W), torch.Tensor (L, Hs, Ws)) float32 in [0, 1], or None
        None when neither stack is given.

    Raises
    ------
    PhotostyleError
        Only one stack given, both given with a SemanticMasks, different label counts, or a
        malformed stack (:func:`mask_stack`).
    """
    if isinstance(content_masks, SemanticMasks):
        if style_masks is not None:
            raise PhotostyleError("content_masks is a SemanticMasks (which holds both stacks); "
                                  "leave style_masks out")
        content_masks, style_masks = content_masks.content, content_masks.style
    if content_masks is None and style_masks is None:
        return None
    if content_masks is None or style_masks is None:
        raise PhotostyleError("give both content_masks and style_masks (or a SemanticMasks), or neither")
    cm, sm = mask_stack("content_masks", content_masks), mask_stack("style_masks", style_masks)
    if cm.shape[0] != sm.shape[0]:
        raise PhotostyleError(f"content_masks has {cm.shape[0]} labels but style_masks has {sm.shape[0]}; "
                              "align them first (photostyle_lib.semantic.masks.align_labels)")
    return resize_masks(cm, content_hw, "avg"), resize_masks(sm, style_hw, "avg")


def image_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """An image array as the networks' input.

    Parameters
    ----------
    image : np.ndarray, (H, W, 3), float in [0, 1]
    device : torch.device

    Returns
    -------
    torch.Tensor, (1, 3, H, W), float32 on ``device``
    """
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[None].to(device)
