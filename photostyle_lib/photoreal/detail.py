"""Per-region multi-scale detail matching: each region's texture contrast given its style region's.

The ``detail_match`` post-process step (this project's; not in the paper or the authors'
code). Colour matching (``baselines.masked_idt``) hands every region the style's colour
distribution but keeps the image's own amount of fine detail; a style region that is
grainy, painterly or crisp then reads as smoother or flatter than it should, and one
that is soft reads as too busy. This step rescales each region's detail, band by band,
to the style region's: the idea of Bae, Paris and Durand's "two-scale tone management"
(2006), which matches a photograph's "textureness" to a model's, here per semantic
region and over several octaves.

The image I is split into ``bands`` difference-of-Gaussians layers and a base::

    L_0 = I,  L_k = G_{s_k} * L_{k-1},  s_k = 2^(k-1) px,  D_k = L_{k-1} - L_k  (k = 1..K)
    I = L_K + sum_k D_k                                                        (exact)

and the same for the style S. For band k and label j, with Y the Rec. 601 luminance and
``std_w`` the standard deviation weighted by the label's mask::

    g_kj = clip( std_w(Y(D_k^S), m_j^S) / std_w(Y(D_k^I), m_j^I), 1 / max_gain, max_gain )

The gain map of band k is the mask-weighted mean of the g_kj (1 where no label is
present), feathered by a Gaussian of ``feather * 2^(k-1)`` px so that region
boundaries leave no seam, and the output is ``clip(L_K + sum_k gain_k * D_k, 0, 1)``.
Every band is scaled by one gain per pixel for all three channels: the detail keeps
its colour and its position, so the result stays a locally affine function of the
image where the gain is smooth (what the matting-Laplacian smoothing keeps).

Array images are numpy (H, W, 3) float in [0, 1] (``photostyle_lib.io.images``).
This module is pure maths: it imports nothing from the engine, the CLI or the runner.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from photostyle_lib.checks import check_image_array, check_int, check_number, check_region_masks
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.photoreal.image_kernels import REC601_LUMA

__all__ = ["detail_bands", "match_region_detail", "band_gains", "DEFAULT_DETAIL_BANDS", "DEFAULT_DETAIL_MAX_GAIN",
           "DEFAULT_DETAIL_FEATHER"]

#: Octaves of detail matched (sigmas 1, 2, 4, 8 px): the texture scales of a 256-700 px image.
DEFAULT_DETAIL_BANDS = 4
#: Largest factor by which a band's contrast may grow (or shrink): a style region far busier than
#: the image's (foliage against sky) must not turn the image's noise into texture.
DEFAULT_DETAIL_MAX_GAIN = 2.0
#: Gain maps are feathered by a Gaussian of this many times each band's sigma (pixels per pixel).
DEFAULT_DETAIL_FEATHER = 4.0
#: Labels with fewer pixels than this (weight sum) in either image keep gain 1.
_MIN_WEIGHT = 16.0


def detail_bands(image: np.ndarray, bands: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The difference-of-Gaussians layers D_1..D_K and the base L_K of an (H, W, C) image.

    Parameters
    ----------
    image : array (H, W, C) float
    bands : int >= 1
        K; band k is the detail between Gaussian blurs of cumulative scale s_1..s_k,
        s_k = 2^(k-1) px (each level blurs the previous one, reflecting at the border).

    Returns
    -------
    (list of K arrays (H, W, C), array (H, W, C)) float64
        ``base + sum(layers)`` equals ``image`` up to rounding.
    """
    cur = np.asarray(image, dtype=np.float64)
    layers = []
    for k in range(bands):
        sigma = 2.0 ** k
        low = gaussian_filter(cur, sigma=(sigma, sigma) + (0,) * (cur.ndim - 2), mode="reflect")
        layers.append(cur - low)
        cur = low
    return layers, cur


def _weighted_std(values: np.ndarray, weights: np.ndarray) -> float:
    """Standard deviation of ``values`` under non-negative ``weights`` (same shape; sum > 0)."""
    w = weights / weights.sum()
    mean = float((w * values).sum())
    return float(np.sqrt(max(float((w * (values - mean) ** 2).sum()), 0.0)))


def band_gains(image_band: np.ndarray, style_band: np.ndarray, content_masks: np.ndarray, style_masks: np.ndarray,
               max_gain: float) -> np.ndarray:
    """g_kj of one band for every label j: the style's detail contrast over the image's, clipped.

    Parameters
    ----------
    image_band, style_band : arrays (H, W) and (H', W')
        The band's luminance in the image and in the style.
    content_masks, style_masks : arrays (C, H, W) and (C, H', W'), >= 0
    max_gain : float >= 1

    Returns
    -------
    array (C,) float64 in [1 / max_gain, max_gain]
        1 for a label with fewer than 16 pixels (weight sum) in either image; a flat image
        region under a textured style region gets ``max_gain`` (nothing to scale: the
        result keeps its flatness), a flat style region ``1 / max_gain``.
    """
    gains = np.ones(content_masks.shape[0])
    for j in range(content_masks.shape[0]):
        if content_masks[j].sum() < _MIN_WEIGHT or style_masks[j].sum() < _MIN_WEIGHT:
            continue
        s_img = _weighted_std(image_band, content_masks[j])
        s_sty = _weighted_std(style_band, style_masks[j])
        if s_img <= 0.0:
            gains[j] = max_gain if s_sty > 0.0 else 1.0
            continue
        gains[j] = float(np.clip(s_sty / s_img, 1.0 / max_gain, max_gain))
    return gains


def match_region_detail(image: Any, style: Any, content_masks: Any = None, style_masks: Any = None, *,
                        bands: int = DEFAULT_DETAIL_BANDS, max_gain: float = DEFAULT_DETAIL_MAX_GAIN,
                        feather: float = DEFAULT_DETAIL_FEATHER) -> np.ndarray:
    """Each region's detail contrast, octave by octave, scaled to its style region's (module docstring).

    Parameters
    ----------
    image : array (H, W, 3), float in [0, 1]
        The image whose detail is rescaled (e.g. the colour-matched result).
    style : array (H', W', 3), float in [0, 1]; any size
    content_masks : array (C, H, W) in [0, 1] for ``image``, or None (one region: the whole images)
    style_masks : array (C, H', W') in [0, 1] with the same C labels, or None
    bands : int in [1, 8], keyword-only
        Octaves matched (sigmas 1 .. 2^(bands-1) px).
    max_gain : float >= 1, keyword-only
        Gains are clipped to [1 / max_gain, max_gain]; 1 returns the image unchanged.
    feather : float > 0, keyword-only
        The gain map of band k is blurred by a Gaussian of ``feather * 2^(k-1)`` px.

    Returns
    -------
    array (H, W, 3), float64 in [0, 1]

    Raises
    ------
    PhotostyleError
        When only one mask stack is given, the stacks do not fit the images or hold
        negative or non-finite values, an image is not an (H, W, 3) float array in
        [0, 1], or a parameter is out of range.
    """
    img = check_image_array("image", image)
    sty = check_image_array("style", style)
    bands = check_int("bands", bands, low=1, high=8)
    max_gain = check_number("max_gain", max_gain, low=1)
    feather = check_number("feather", feather, low=0, low_inclusive=False)
    if (content_masks is None) != (style_masks is None):
        raise PhotostyleError("give both content_masks and style_masks, or neither")
    if content_masks is None:
        cm, sm = np.ones((1,) + img.shape[:2]), np.ones((1,) + sty.shape[:2])
    else:
        cm, sm = check_region_masks(content_masks, style_masks, img.shape, sty.shape)
    layers, out = detail_bands(img, bands)
    style_layers, _ = detail_bands(sty, bands)
    weight = cm.sum(axis=0)
    for k, (layer, style_layer) in enumerate(zip(layers, style_layers)):
        gains = band_gains(layer @ REC601_LUMA, style_layer @ REC601_LUMA, cm, sm, max_gain)
        gain = np.where(weight > 0, np.tensordot(gains, cm, axes=1) / np.maximum(weight, 1e-12), 1.0)
        gain = gaussian_filter(gain, feather * 2.0 ** k, mode="reflect")
        out = out + layer * gain[:, :, None]
    return np.clip(out, 0.0, 1.0)
