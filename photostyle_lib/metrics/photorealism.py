"""The photorealism score: eq. (4)'s matting-Laplacian energy of the output, per pixel and channel."""

from __future__ import annotations

from typing import Any

from photostyle_lib.checks import check_same_size
from photostyle_lib.io.images import as_image_array
from photostyle_lib.photoreal.matting import laplacian_energy


def photorealism_score(output: Any, content: Any, *, eps: float = 1e-7, radius: int = 1) -> float:
    """Matting-Laplacian energy of the output under the content's Laplacian, per pixel and channel.

    ``sum_c V_c[O]^T M_I V_c[O] / (3 H W)``: eq. (4) of the paper (Luan et al.'s
    photorealism term) divided by the number of values, so images of different
    sizes compare. Lower is more photo-like.

    Parameters
    ----------
    output : array (H, W, 3) or tensor (1, 3, H, W), float in [0, 1]
        The stylised image O.
    content : same type rules, same H and W as ``output``
        The content image I whose matting Laplacian M_I is used
        (``matting.cached_matting_laplacian``: built once per content image).
    eps, radius
        Levin's regulariser and window radius; the defaults (1e-7, 3x3 windows)
        are Luan et al.'s.

    Returns
    -------
    float >= 0 (up to rounding), in squared image-value units ([0, 1] scale)
        Near 0 (of order ``eps``) when the output is a locally affine function of the
        content's colours in every 3x3 window -- the content itself, or any global
        affine recolouring of it; about ``8 sigma^2`` in flat regions for added
        pixel noise of standard deviation sigma. 8-bit quantisation of a saved
        image alone gives about 1e-6.

    Raises
    ------
    PhotostyleError
        Not an image, or the two sizes differ.
    """
    out = as_image_array("output", output)
    con = as_image_array("content", content)
    check_same_size("output", out.shape, "content", con.shape)
    return laplacian_energy(out, con, eps=eps, radius=radius) / out.size
