"""Structure measures: SSIM of luminance gradient magnitudes, and the forward-difference error of Figure 7."""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage.color import rgb2lab
from skimage.filters import sobel
from skimage.metrics import structural_similarity

from photostyle_lib.checks import check_choice, check_same_size
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import as_image_array


#: Values of :func:`structure_score`'s ``kind``.
STRUCTURE_KINDS = ("gradient", "luminance")

# Gaussian-weighted SSIM as in Wang et al. (2004): sigma 1.5, population covariances.
# skimage then uses an 11 x 11 window (truncate 3.5), so images need 11 px per side.
SSIM_SIGMA = 1.5
_SSIM_WINDOW = 11


def _luminance(image: np.ndarray) -> np.ndarray:
    """CIELab lightness L* / 100: (H, W) in [0, 1], perceptually uniform."""
    return rgb2lab(image)[..., 0] / 100.0


def structure_error(image: Any, content: Any) -> float:
    """Mean absolute difference of image and content gradients (forward differences, all channels).

    With D_x, D_y the forward differences along columns and rows,
    ``(mean |D_x I - D_x C| + mean |D_y I - D_y C|) / 2`` over every pixel and
    channel: 0 when the image has exactly the content's structure (edges and
    texture) whatever a constant colour offset, a measure of the distortions a
    post-process removes (Figure 7's table). Not scale-free: a global contrast
    change counts, unlike :func:`structure_score`.

    Parameters
    ----------
    image, content : array (H, W, 3) or tensor (1, 3, H, W) / (3, H, W), float in [0, 1]
        Same size, at least 2 x 2 pixels.

    Returns
    -------
    float
        >= 0, in image-value units (per pixel step).

    Raises
    ------
    PhotostyleError
        Not an image, or the two sizes differ.
    """
    a, b = as_image_array("image", image), as_image_array("content", content)
    check_same_size("image", a.shape, "content", b.shape)
    if min(a.shape[:2]) < 2:
        raise PhotostyleError(f"structure_error needs images of at least 2x2 pixels, got {a.shape[0]}x{a.shape[1]}")
    gx = np.abs(np.diff(a, axis=1) - np.diff(b, axis=1)).mean()
    gy = np.abs(np.diff(a, axis=0) - np.diff(b, axis=0)).mean()
    return float((gx + gy) / 2.0)


def structure_score(output: Any, content: Any, *, kind: str = "gradient", match_tone: bool = True) -> float:
    """How well the content's edges survive: SSIM of luminance gradient magnitudes.

    Steps: both images go to CIELab lightness L*/100; with ``match_tone`` the
    output's L* is mapped by one global affine function onto the content's mean
    and standard deviation; with ``kind="gradient"`` (the default) each L* map is
    replaced by its Sobel gradient magnitude (``skimage.filters.sobel``, at most
    1 on [0, 1] images); the two maps are compared with scikit-image's
    ``structural_similarity`` (Gaussian window sigma 1.5, data range 1,
    population covariances: Wang et al. 2004).

    Why gradients, and why the tone match: style transfer is *meant* to change
    tone -- the brightness and contrast of regions. SSIM of L* itself scores a
    faithful Reinhard recolouring toward a darker style as lost structure (its
    luminance and contrast terms see the tone change). A global tone change is
    removed by the affine match; a region-wise brightness shift leaves the
    gradient map unchanged except on the region's border. What is left is what
    "edges" means: blur removes gradients, Gatys-style texture and the grain of
    IDT invent them, and both lower the score. ``kind="luminance"`` gives the
    SSIM of (tone-matched) L* for comparison.

    Parameters
    ----------
    output, content : array (H, W, 3) or tensor (1, 3, H, W), float in [0, 1], same H and W
        (at least 11 x 11: the SSIM window).
    kind : "gradient" | "luminance"
    match_tone : bool
        Match the output's global L* mean and standard deviation to the content's first.

    Returns
    -------
    float in [-1, 1]; 1 exactly when ``output`` equals ``content``. Higher is better.

    Raises
    ------
    PhotostyleError
        ``kind`` is not "gradient" or "luminance", an input is not an image, the two sizes
        differ, or a side is shorter than the 11 px SSIM window.
    """
    check_choice("kind", kind, STRUCTURE_KINDS)
    out = as_image_array("output", output)
    con = as_image_array("content", content)
    check_same_size("output", out.shape, "content", con.shape)
    if min(out.shape[:2]) < _SSIM_WINDOW:
        raise PhotostyleError(f"images are {out.shape[0]}x{out.shape[1]} (HxW) but the SSIM window is "
                              f"{_SSIM_WINDOW}x{_SSIM_WINDOW}; give images at least {_SSIM_WINDOW} px per side")
    a, b = _luminance(out), _luminance(con)
    if match_tone:
        spread = a.std()
        # A flat output has no tone curve to undo: only shift it.
        a = (a - a.mean()) * (b.std() / spread if spread > 1e-12 else 1.0) + b.mean()
    if kind == "gradient":
        a, b = sobel(a), sobel(b)
    return float(structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=SSIM_SIGMA,
                                       use_sample_covariance=False))
