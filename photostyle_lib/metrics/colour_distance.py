"""Style distance as colour distributions: sliced Wasserstein-2 in CIELab, per matched semantic region."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from skimage.color import rgb2lab

from photostyle_lib.checks import check_int
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import as_image_array
from photostyle_lib.metrics.inputs import aligned_masks


# Sliced Wasserstein: the 6 axes of an icosahedron (a spherical 5-design) under
# seeded random rotations. Every rotated copy has second moment exactly Id/3,
# which calibrates the distance (see style_distance); 16 copies = 96 directions.
_SW_COPIES = 16
_SW_SEED = 20170
_SW_LEVELS = 256
_SW_MAX_PIXELS = 1 << 16


def _sw_directions() -> np.ndarray:
    """(6 * copies, 3) unit directions whose second moment is exactly Id / 3."""
    g = (1.0 + math.sqrt(5.0)) / 2.0
    axes = np.array([[0, 1, g], [0, 1, -g], [1, g, 0], [1, -g, 0], [g, 0, 1], [-g, 0, 1]], dtype=np.float64)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    rng = np.random.default_rng(_SW_SEED)
    dirs = []
    for _ in range(_SW_COPIES):
        q, r = np.linalg.qr(rng.standard_normal((3, 3)))
        dirs.append(axes @ (q * np.sign(np.diag(r))).T)
    return np.concatenate(dirs)


_DIRECTIONS = _sw_directions()


def _quantile_functions(points: np.ndarray, weights: np.ndarray | None, levels: np.ndarray) -> np.ndarray:
    """Quantiles at ``levels`` of the projections of weighted points on every direction: (L, P).

    The quantile function of a weighted sample is the linear interpolation of
    its sorted values placed at their mid-cumulative weights (the weighted
    analogue of ``np.quantile``'s Hazen rule); flat beyond the extreme values.
    """
    proj = points @ _DIRECTIONS.T                                  # (N, P)
    order = np.argsort(proj, axis=0, kind="stable")
    values = np.take_along_axis(proj, order, axis=0)
    out = np.empty((levels.size, proj.shape[1]))
    if weights is None:
        positions = (np.arange(proj.shape[0]) + 0.5) / proj.shape[0]
        for j in range(proj.shape[1]):
            out[:, j] = np.interp(levels, positions, values[:, j])
        return out
    for j in range(proj.shape[1]):
        w = weights[order[:, j]]
        cum = np.cumsum(w)
        out[:, j] = np.interp(levels, (cum - 0.5 * w) / cum[-1], values[:, j])
    return out


def _sliced_w2(qa: np.ndarray, qb: np.ndarray) -> float:
    """sqrt(3 * mean over directions and levels of the squared quantile gaps)."""
    return float(math.sqrt(3.0 * np.mean((qa - qb) ** 2)))


def _lab_sample(image: np.ndarray, max_pixels: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """CIELab colours (N, 3) of the image, a seeded uniform subsample when N > max_pixels, and its indices."""
    lab = rgb2lab(image).reshape(-1, 3)
    if lab.shape[0] <= max_pixels:
        return lab, None
    idx = np.sort(np.random.default_rng(seed).choice(lab.shape[0], size=max_pixels, replace=False))
    return lab[idx], idx


def region_style_distances(output: Any, style: Any, content_masks: Any = None, style_masks: Any = None, *,
                           levels: int = _SW_LEVELS, max_pixels: int = _SW_MAX_PIXELS,
                           seed: int = 0) -> list[tuple[int, float, float]]:
    """The per-region terms of :func:`style_distance`: ``[(label index, distance, area weight), ...]``.

    Without masks: one entry ``(0, distance, 1.0)``. With masks: one entry per
    label present (non-zero area) in both images; the weight is the label's
    share of the output's labelled area (mask sums), the weights summing to 1.
    Labels missing from either image are left out (they have no target).

    Parameters
    ----------
    output, style, content_masks, style_masks, levels, max_pixels, seed
        As in :func:`style_distance`; ``seed`` draws the output's subsample, ``seed + 1``
        the style's.

    Returns
    -------
    list of (int, float, float)
        ``(label index, sliced Wasserstein-2 distance in Delta-E units, area weight in (0, 1])``.

    Raises
    ------
    PhotostyleError
        When no label is present in both; also when an input is not an image, ``levels`` < 2,
        ``max_pixels`` < 16, or the masks are malformed (not (C, H, W) in [0, 1], one stack
        given without the other, a SemanticMasks with ``style_masks`` too, or label counts
        that differ).
    """
    out = as_image_array("output", output)
    sty = as_image_array("style", style)
    levels = check_int("levels", levels, low=2)
    max_pixels = check_int("max_pixels", max_pixels, low=16)
    q = (np.arange(levels) + 0.5) / levels
    lab_o, idx_o = _lab_sample(out, max_pixels, seed)
    lab_s, idx_s = _lab_sample(sty, max_pixels, seed + 1)
    masks = aligned_masks(content_masks, style_masks, out.shape[:2], sty.shape[:2])
    if masks is None:
        return [(0, _sliced_w2(_quantile_functions(lab_o, None, q), _quantile_functions(lab_s, None, q)), 1.0)]
    cm = masks[0].reshape(masks[0].shape[0], -1).numpy().astype(np.float64)
    sm = masks[1].reshape(masks[1].shape[0], -1).numpy().astype(np.float64)
    if idx_o is not None:
        cm = cm[:, idx_o]
    if idx_s is not None:
        sm = sm[:, idx_s]
    terms = []
    for c in range(cm.shape[0]):
        wo, ws = cm[c], sm[c]
        if wo.sum() <= 0 or ws.sum() <= 0:
            continue
        ko, ks = wo > 0, ws > 0   # zero-weight pixels change nothing but the cost of sorting
        d = _sliced_w2(_quantile_functions(lab_o[ko], wo[ko], q), _quantile_functions(lab_s[ks], ws[ks], q))
        terms.append((c, d, float(wo.sum())))
    if not terms:
        raise PhotostyleError("no mask label covers part of both the output and the style image; "
                              "check that the masks belong to these images")
    total = sum(t[2] for t in terms)
    return [(c, d, a / total) for c, d, a in terms]


def style_distance(output: Any, style: Any, content_masks: Any = None, style_masks: Any = None, *,
                   levels: int = _SW_LEVELS, max_pixels: int = _SW_MAX_PIXELS, seed: int = 0) -> float:
    """How far the output's colours are from the style's: sliced Wasserstein-2 in CIELab.

    For each of 96 fixed unit directions theta in Lab space, both colour sets are
    projected on theta and the 1-D Wasserstein-2 distance W_theta is computed from
    their quantile functions (``levels`` quantiles). The result is

        SW = sqrt(3 * mean_theta W_theta^2)

    The directions are rotated copies of the icosahedron's axes, whose second
    moment is exactly Id/3; so shifting every colour by a Lab vector t gives
    exactly |t| (the CIE76 Delta-E of the shift), and SW never exceeds the full
    3-D Wasserstein-2 distance in Lab. Units: Delta-E (L* 0-100).

    With masks, the distance is computed per matched semantic region -- output
    pixels weighted by the content masks (the output has the content's layout),
    style pixels by the style masks, soft masks acting as weights -- and the
    regions' distances are averaged weighted by their area in the output
    (:func:`region_style_distances` gives the terms).

    Parameters
    ----------
    output : array (H, W, 3) or tensor (1, 3, H, W), float in [0, 1]
    style : array (H', W', 3) or tensor, float in [0, 1]; any size
    content_masks : SemanticMasks (then leave ``style_masks`` out), (C, H, W) stack in
        [0, 1] for the output / content, or None
    style_masks : (C, H', W') stack in [0, 1] with the same C labels, or None
        Stacks of another resolution are brought to the images' sizes by area averaging.
    levels : int
        Quantiles per direction (256).
    max_pixels : int
        Images with more pixels are subsampled uniformly (seeded by ``seed``) to
        this many (65536), which keeps the sort cheap at 700 px.

    Returns
    -------
    float >= 0, Delta-E units; 0 when the two colour distributions are equal
    (in particular ``style_distance(style, style) == 0``). Lower is better.
    """
    return float(sum(d * a for _, d, a in region_style_distances(
        output, style, content_masks, style_masks, levels=levels, max_pixels=max_pixels, seed=seed)))
