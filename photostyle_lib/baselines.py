"""Global colour-transfer baselines the paper compares against.

* :func:`reinhard`: Reinhard, Adhikhmin, Gooch and Shirley (2001), the paper's
  reference [11]: match each channel's mean and standard deviation in a
  decorrelated colour space (CIELab here);
* :func:`masked_reinhard`: the same per semantic region (this project's; the
  engine's ``init="reinhard"`` starting image);
* :func:`pitie_idt`: Pitie, Kokaram and Dahyot (2005), iterative distribution
  transfer (IDT), with the optional "regrain" step of Pitie et al. (2007);
* :func:`masked_idt`: IDT per semantic region (this project's; the engine's
  ``colour_match`` post-process step).

Both take array images (H, W, 3) float in [0, 1]; the content and style images
may have different sizes. This module is pure maths: it imports nothing from the
engine, the CLI or the runner.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from skimage.color import lab2rgb, rgb2lab

from photostyle_lib.photoreal import image_kernels
from photostyle_lib.checks import check_image_array, check_int, check_number, check_region_masks
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.photoreal.postprocess import screened_poisson

__all__ = ["reinhard", "masked_reinhard", "pitie_idt", "masked_idt", "DEFAULT_IDT_ITERATIONS", "DEFAULT_REGRAIN_LAMBDA"]

#: Rotations used by :func:`pitie_idt` by default. Pitie et al. report that the
#: colour distribution has converged after about 10-20 iterations in 3-D; 20 is
#: at the safe end (about 0.2 s at 700 x 437 px on one CPU core).
DEFAULT_IDT_ITERATIONS = 20
#: Gradient weight (pixels^2) of the regrain step; small, because the grain IDT
#: introduces is pixel-scale and the transferred colours should stay.
DEFAULT_REGRAIN_LAMBDA = 1.0


def reinhard(content: Any, style: Any) -> np.ndarray:
    """Reinhard et al. (2001) colour transfer in CIELab.

    Converts both images to CIELab (D65, skimage's ``rgb2lab``), maps every channel
    of the content as (x - mean_content) * std_style / std_content + mean_style,
    and converts back.

    Parameters
    ----------
    content : array (H, W, 3), float in [0, 1]
        The image to recolour (sRGB).
    style : array (H', W', 3), float in [0, 1]
        The reference whose colour statistics are copied; any size.

    Returns
    -------
    array (H, W, 3), float64 in [0, 1]
        The recoloured content. Lab colours outside the sRGB gamut are clipped to
        [0, 1] per channel (skimage's ``lab2rgb`` clips, and so do we after it), so
        the output's statistics match the style's exactly only when no clipping
        happens. A content channel with zero spread is only shifted.

    Raises
    ------
    PhotostyleError
        If an image is not an (H, W, 3) float array in [0, 1] (e.g. 8-bit 0-255 values).

    Notes
    -----
    Reinhard et al. work in Ruderman's l-alpha-beta space; CIELab is the common
    substitute (also decorrelated, opponent-colour), and is what
    ``ALGORITHMS.md`` allows.
    """
    cont = check_image_array("content", content)
    sty = check_image_array("style", style)
    lab_c = rgb2lab(cont).reshape(-1, 3)
    lab_s = rgb2lab(sty).reshape(-1, 3)
    mean_c, std_c = lab_c.mean(axis=0), lab_c.std(axis=0)
    mean_s, std_s = lab_s.mean(axis=0), lab_s.std(axis=0)
    # A flat content channel carries no variation to scale: shift it only.
    gain = np.where(std_c > 1e-12, std_s / np.where(std_c > 1e-12, std_c, 1.0), 1.0)
    lab_out = (lab_c - mean_c) * gain + mean_s
    return _lab_to_rgb(lab_out.reshape(cont.shape))


def _weighted_stats(lab: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted per-channel mean and standard deviation of (N, 3) colours, weights (N,) >= 0."""
    total = weight.sum()
    mean = (lab * weight[:, None]).sum(axis=0) / total
    var = (((lab - mean) ** 2) * weight[:, None]).sum(axis=0) / total
    return mean, np.sqrt(np.maximum(var, 0.0))


def masked_reinhard(content: Any, style: Any, content_masks: Any = None, style_masks: Any = None, *,
                    min_weight: float = 1.0) -> np.ndarray:
    """Reinhard et al.'s transfer per semantic region, blended by the content's masks.

    For every label k, the content region's CIELab mean mu_c,k and standard deviation
    sd_c,k (pixels weighted by the content mask c_k) and the style region's mu_s,k and
    sd_s,k (weighted by the style mask s_k) define the per-channel affine map

        T_k(x) = (x - mu_c,k) * sd_s,k / sd_c,k + mu_s,k

    and every content pixel p becomes ``sum_k c_k(p) T_k(x_p) / sum_k c_k(p)`` in Lab:
    the region's map where the masks are hard, a mix where they are soft (so soft
    masks give soft seams). Pixels no usable label covers get the global map
    (:func:`reinhard`). A label is usable when both its masks weigh at least
    ``min_weight`` pixels.

    This is not in the paper: it is this project's starting image for the
    optimisation (``TransferConfig.init="reinhard"``), a colour-matched image the
    losses then refine, where the paper's code starts from the content.

    Parameters
    ----------
    content : array (H, W, 3), float in [0, 1]
    style : array (H', W', 3), float in [0, 1]; any size
    content_masks : array (C, H, W) in [0, 1], or None (one region: :func:`reinhard`)
    style_masks : array (C, H', W') in [0, 1] with the same C labels, or None
    min_weight : float > 0, keyword-only
        Smallest mask sum (pixels) of a usable label.

    Returns
    -------
    array (H, W, 3), float64 in [0, 1]
        Out-of-gamut colours clipped, as :func:`reinhard`. With hard masks each
        region's Lab mean and spread equal the style region's up to that clipping.

    Raises
    ------
    PhotostyleError
        When only one of the mask stacks is given, their shapes do not fit the images,
        they hold negative or non-finite values, an image is not an (H, W, 3) float
        array in [0, 1], or ``min_weight`` <= 0.
    """
    cont = check_image_array("content", content)
    sty = check_image_array("style", style)
    if (content_masks is None) != (style_masks is None):
        raise PhotostyleError("give both content_masks and style_masks, or neither")
    min_weight = check_number("min_weight", min_weight, low=0.0, low_inclusive=False)
    lab_c = rgb2lab(cont).reshape(-1, 3)
    lab_s = rgb2lab(sty).reshape(-1, 3)
    if content_masks is None:
        cm = np.ones((1, lab_c.shape[0]))
        sm = np.ones((1, lab_s.shape[0]))
    else:
        cm, sm = check_region_masks(content_masks, style_masks, cont.shape, sty.shape)
        cm = cm.reshape(cm.shape[0], -1)
        sm = sm.reshape(sm.shape[0], -1)
    def region_map(wc: np.ndarray, ws: np.ndarray) -> np.ndarray:
        mean_c, std_c = _weighted_stats(lab_c, wc)
        mean_s, std_s = _weighted_stats(lab_s, ws)
        # A flat content channel carries no variation to scale: shift it only (as reinhard).
        gain = np.where(std_c > 1e-12, std_s / np.where(std_c > 1e-12, std_c, 1.0), 1.0)
        return (lab_c - mean_c) * gain + mean_s

    out = np.zeros_like(lab_c)
    covered = np.zeros(lab_c.shape[0])
    for wc, ws in zip(cm, sm):
        if wc.sum() < min_weight or ws.sum() < min_weight:
            continue
        out += region_map(wc, ws) * wc[:, None]
        covered += wc
    rest = covered <= 1e-12
    out[~rest] /= covered[~rest, None]
    if rest.any():
        out[rest] = region_map(np.ones(lab_c.shape[0]), np.ones(lab_s.shape[0]))[rest]
    return _lab_to_rgb(out.reshape(cont.shape))


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELab (H, W, 3) -> sRGB in [0, 1], clipping out-of-gamut colours."""
    with warnings.catch_warnings():
        # lab2rgb warns when a colour maps to negative XYZ; clipping is the documented behaviour.
        warnings.simplefilter("ignore", UserWarning)
        rgb = lab2rgb(lab)
    return np.clip(rgb, 0.0, 1.0)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A 3x3 rotation drawn uniformly (Haar measure): QR of a Gaussian matrix with sign fix."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _match_1d(values: np.ndarray, reference_sorted: np.ndarray) -> np.ndarray:
    """Map ``values`` onto the distribution of ``reference_sorted`` by quantile matching.

    The quantile of each value is its mid-rank (ties share a quantile, so flat
    regions stay flat); the target is the reference's quantile function,
    linearly interpolated.
    """
    n = values.size
    order = np.argsort(values)
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])   # first sorted position of each run of ties
    ends = np.r_[starts[1:], n]
    run_quantile = (starts + ends) / (2.0 * n)                         # mid-rank of the run, in (0, 1)
    run_of = np.repeat(np.arange(starts.size), ends - starts)
    m = reference_sorted.size
    ref_levels = (np.arange(m) + 0.5) / m
    matched = np.empty(n)
    matched[order] = np.interp(run_quantile[run_of], ref_levels, reference_sorted)
    return matched


def _idt_exact(colours: np.ndarray, reference: np.ndarray, rotations: np.ndarray) -> None:
    """IDT with the exact quantile match :func:`_match_1d`, in place on colours (3, N); the kernel's reference.

    reference: (3, M); rotations: (K, 3, 3), columns the rotated axes, applied in order.
    """
    for rot in rotations:
        projected = rot.T @ colours                          # rows: coordinates on the rotated axes
        reference_projected = np.sort(rot.T @ reference, axis=1)
        change = np.empty_like(projected)
        for axis in range(3):
            change[axis] = _match_1d(projected[axis], reference_projected[axis]) - projected[axis]
        colours += rot @ change


def pitie_idt(content: Any, style: Any, iterations: int = DEFAULT_IDT_ITERATIONS, seed: int = 0,
              regrain: bool = False, regrain_lambda: float = DEFAULT_REGRAIN_LAMBDA) -> np.ndarray:
    """Iterative distribution transfer (Pitie, Kokaram and Dahyot 2005) in RGB.

    Repeats ``iterations`` times: draw a random 3x3 rotation R; project the current
    output's colours and the style's colours on the three rotated axes; on each
    axis map the output's 1-D distribution onto the style's by quantile matching;
    rotate the change back and add it. The 3-D colour distribution of the output
    converges to the style's.

    Parameters
    ----------
    content : array (H, W, 3), float in [0, 1]
        The image to recolour.
    style : array (H', W', 3), float in [0, 1]
        The reference colour distribution; any size.
    iterations : int >= 1
        Number of random rotations (default :data:`DEFAULT_IDT_ITERATIONS` = 20).
    seed : int
        Seed of the ``numpy.random.Generator`` drawing the rotations; the result is
        a deterministic function of (content, style, iterations, seed).
    regrain : bool
        Apply the regrain step of Pitie et al. (2007) to remove the grain IDT
        introduces (see Notes).
    regrain_lambda : float >= 0
        Gradient weight of the regrain step, pixels^2 (default 1).

    Returns
    -------
    array (H, W, 3), float64 in [0, 1]
        The recoloured content, clipped to [0, 1] (quantile matching stays inside
        the style's range on each rotated axis, but the rotated box can poke out of
        the RGB cube).

    Raises
    ------
    PhotostyleError
        If an image is not an (H, W, 3) float array in [0, 1], ``iterations`` < 1,
        ``seed`` < 0, ``regrain`` is not a bool or ``regrain_lambda`` < 0.

    Notes
    -----
    The 1-D match: with numba (the [fast] extra) each axis is matched on histograms
    of :data:`photostyle_lib.photoreal.image_kernels.IDT_BINS` = 4096 equal bins spanning
    both images' coordinates (:func:`photostyle_lib.photoreal.image_kernels.idt_iterations`):
    O(N) per axis instead of a sort. It equals the exact match by mid-ranks
    (:func:`_match_1d`, used without numba and as the tests' reference) except
    inside bins that hold several distinct values, where values are placed by
    their position between the bin's smallest and largest rather than by rank
    (within the bin's share of the quantiles). On pair 1 at 700 x 437 px the two
    differ by 0.004 on average (about 1/255) after 20 rotations, and both end at
    the same distance to the style's colours (``metrics.style_distance`` 0.45 vs
    0.45 Delta-E). ``ALGORITHMS.md`` describes the step as quantile (histogram)
    matching; either form fits it.

    Pitie et al. (2007) regrain by minimising, over the output t,
    ``phi * ||grad t - grad I||^2 + psi * ||t - t_IDT||^2`` with weights that depend
    on the content's gradients, solved coarse to fine. Here this is approximated
    by the same energy with constant weights, a screened Poisson problem
    (``photostyle_lib.photoreal.postprocess.screened_poisson`` of the clipped IDT result with
    ``lam = regrain_lambda``), solved exactly by a DCT: the result keeps the IDT colours at large scales and
    the content's gradients at pixel scale.
    """
    cont = check_image_array("content", content)
    sty = check_image_array("style", style)
    iterations = check_int("iterations", iterations, low=1)
    seed = check_int("seed", seed, low=0)
    if not isinstance(regrain, (bool, np.bool_)):
        raise PhotostyleError(f"regrain must be True or False, got {regrain!r}")
    regrain_lambda = check_number("regrain_lambda", regrain_lambda, low=0.0)
    rng = np.random.default_rng(seed)
    rotations = np.stack([_random_rotation(rng) for _ in range(iterations)])   # columns: the rotated axes
    # Planar (3, N) layout: every per-axis operation runs on a contiguous row.
    colours = np.array(cont.reshape(-1, 3).T, dtype=np.float64, order="C")
    reference = np.ascontiguousarray(sty.reshape(-1, 3).T, dtype=np.float64)
    if image_kernels.AVAILABLE:
        image_kernels.idt_iterations(colours, reference, rotations)
    else:  # without the [fast] extra (numba)
        _idt_exact(colours, reference, rotations)
    result = np.clip(colours.T.reshape(cont.shape), 0.0, 1.0)
    if regrain:
        result = screened_poisson(result, cont, lam=regrain_lambda)
    return result


def masked_idt(image: Any, style: Any, content_masks: Any = None, style_masks: Any = None, *,
               iterations: int = DEFAULT_IDT_ITERATIONS, seed: int = 0, min_pixels: int = 16) -> np.ndarray:
    """:func:`pitie_idt` per semantic region: each region's colours take its style region's distribution.

    Every pixel is assigned to the label of its largest mask value (pixels whose
    masks are all 0 to none); the pixels of label k in ``image`` are recoloured by
    IDT onto the pixels of label k in ``style`` (``iterations`` rotations, seeded by
    ``seed + k``). Pixels with no label, or whose label holds fewer than
    ``min_pixels`` pixels in either image, get the global IDT of the whole image.
    Soft masks are thus made hard here (IDT moves sets of colours, not weighted ones).

    Not in the paper: this project's ``colour_match`` post-process step, which hands
    the optimised image's per-region colour distributions to the style's while keeping
    each region's rank order of colours (hence its structure and texture); a
    following ``matting_smooth`` or ``local_affine`` step removes the seams and grain
    it leaves.

    Parameters
    ----------
    image : array (H, W, 3), float in [0, 1]
        The image to recolour (e.g. the optimised result).
    style : array (H', W', 3), float in [0, 1]; any size
    content_masks : array (C, H, W) in [0, 1] for ``image``, or None (one region: :func:`pitie_idt`)
    style_masks : array (C, H', W') in [0, 1] with the same C labels, or None
    iterations, seed : as :func:`pitie_idt`.
    min_pixels : int >= 1, keyword-only

    Returns
    -------
    array (H, W, 3), float64 in [0, 1]

    Raises
    ------
    PhotostyleError
        When only one of the mask stacks is given, their shapes do not fit the images,
        they hold negative or non-finite values, an image is not an (H, W, 3) float
        array in [0, 1], ``iterations`` or ``min_pixels`` < 1, or ``seed`` < 0.
    """
    img = check_image_array("image", image)
    sty = check_image_array("style", style)
    iterations = check_int("iterations", iterations, low=1)
    seed = check_int("seed", seed, low=0)
    min_pixels = check_int("min_pixels", min_pixels, low=1)
    if (content_masks is None) != (style_masks is None):
        raise PhotostyleError("give both content_masks and style_masks, or neither")
    if content_masks is None:
        return pitie_idt(img, sty, iterations=iterations, seed=seed)
    cm, sm = check_region_masks(content_masks, style_masks, img.shape, sty.shape)
    label_i = np.where(cm.max(axis=0) > 0, cm.argmax(axis=0), -1)
    label_s = np.where(sm.max(axis=0) > 0, sm.argmax(axis=0), -1)
    out = np.empty_like(img)
    done = np.zeros(img.shape[:2], dtype=bool)
    for k in range(cm.shape[0]):
        region, target = label_i == k, label_s == k
        if region.sum() < min_pixels or target.sum() < min_pixels:
            continue
        out[region] = pitie_idt(img[region][:, None, :], sty[target][:, None, :], iterations=iterations,
                                seed=seed + k)[:, 0, :]
        done |= region
    if not done.all():
        out[~done] = pitie_idt(img, sty, iterations=iterations, seed=seed)[~done]
    return out
