"""Edge transition across label boundaries: the paper's "unnatural style split around edges" as a number."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from photostyle_lib.checks import check_same_size
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import as_image_array
from photostyle_lib.semantic.masks import SemanticMasks, resize_masks
from photostyle_lib.metrics.inputs import mask_stack


def _labels_of(masks: Any, hw: tuple[int, int]) -> np.ndarray:
    """(H, W) int label map (or a (C, H, W) stack, strongest label, -1 where empty) at size ``hw``."""
    if isinstance(masks, SemanticMasks):
        masks = masks.content
    if isinstance(masks, (np.ndarray, torch.Tensor)) and np.ndim(masks) == 2:
        lab = np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks)
        if not np.issubdtype(lab.dtype, np.integer):
            raise PhotostyleError(f"a label map must hold integers, got dtype {lab.dtype}")
        if lab.shape != tuple(hw):
            raise PhotostyleError(f"the label map is {lab.shape[0]}x{lab.shape[1]} but the images are "
                                  f"{hw[0]}x{hw[1]}; give it at the images' size")
        return lab.astype(np.int64)
    stack = resize_masks(mask_stack("masks", masks), hw, "avg")
    lab = stack.argmax(0).numpy().astype(np.int64)
    lab[stack.amax(0).numpy() <= 0] = -1
    return lab


def boundary_band(labels: np.ndarray, width: float) -> np.ndarray:
    """(H, W) bool: pixels within ``width`` px (Euclidean, centres) of a label boundary.

    Boundary pixels are those with a 4-neighbour of another label (both sides
    of a boundary; label -1, "no label", counts as a label). ``width=0`` is the
    boundary pixels alone: a straight boundary gives a band 2 px wide, and
    ``2 + 2 * floor(width)`` in general.
    """
    lab = np.asarray(labels)
    edge = np.zeros(lab.shape, dtype=bool)
    dy, dx = lab[1:] != lab[:-1], lab[:, 1:] != lab[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    if not edge.any():
        return edge
    from scipy import ndimage

    return ndimage.distance_transform_edt(~edge) <= width


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """(H, W) Euclidean norm over RGB channels and both axes of ``np.gradient`` (central differences)."""
    gy, gx = np.gradient(image, axis=(0, 1))
    return np.sqrt((gy ** 2 + gx ** 2).sum(-1))


def edge_transition(output: Any, content: Any, masks: Any, *, width: float = 2.0) -> float:
    """How sharp the output's colour changes are across label boundaries, relative to the content's.

    ``E = mean_{x in B} |grad O(x)| / mean_{x in B} |grad I(x)|`` where B is
    :func:`boundary_band` of the masks' boundaries (``width`` px either side)
    and ``|grad X|`` the Euclidean norm over the three RGB channels (values in
    [0, 1]) of both central-difference derivatives (``np.gradient``; one-sided
    at the image border). The paper's "unnatural style split around edges"
    (section 5.2) is a colour step the *masks* put where the content has a
    weaker edge or none: it raises E above the content's own 1; a transition
    smoothed over wider than the band lowers it. A global recolouring
    ``O = a I + b`` gives ``|a|`` exactly; ``O = I`` gives 1.

    Parameters
    ----------
    output, content : array (H, W, 3) or tensor (1, 3, H, W), float in [0, 1], same H and W.
    masks : SemanticMasks (its content stack), a (C, H', W') stack in [0, 1]
        (strongest label per pixel after area resizing to H x W; -1 where empty),
        or an (H, W) int label map. The recipes pass the *true* (gold) masks.
    width : float >= 0, pixels either side of the boundary.

    Returns
    -------
    float >= 0 (dimensionless); NaN when the masks have no boundary or the
    content is flat in the band (nothing to compare with).

    Raises
    ------
    PhotostyleError
        An input is not an image, the two sizes differ, ``width`` is not a finite number >= 0,
        or the masks are malformed (a label map not of integers or not H x W, a stack not
        (C, H, W) in [0, 1]).
    """
    out = as_image_array("output", output)
    con = as_image_array("content", content)
    check_same_size("output", out.shape, "content", con.shape)
    if not math.isfinite(float(width)) or float(width) < 0:
        raise PhotostyleError(f"width must be a finite number of pixels >= 0, got {width!r}")
    band = boundary_band(_labels_of(masks, out.shape[:2]), float(width))
    if not band.any():
        return float("nan")
    ref = float(_gradient_magnitude(con)[band].mean())
    if ref <= 0:
        return float("nan")
    return float(_gradient_magnitude(out)[band].mean() / ref)
