"""Luan et al.'s final local affine smoothing ("SmoothLocalAffine"), in numpy and in torch.

Luan et al. (2017) save as their final result (``best<N>_t_1000.png``) not the
optimised image itself but a smoothed version of it: every pixel's colour is
re-expressed as an affine function of the *content* photo's colour, with affine
models fitted on small windows and then averaged edge-aware. Their code is the
CUDA function ``smooth_local_affine`` in ``cuda_utils.cu`` of
luanfujun/deep-photo-styletransfer, called by ``SmoothLocalAffine`` in
``deepmatting_seg.lua`` with ``patch = 3`` and, for the published results,
``-f_radius 15 -f_edge 0.01`` (their README and ``gen_all.py``).

Definition
----------
Notation: content (guide) I : (H, W, 3) in [0, 1]; the image to smooth O : (H, W, 3)
in [0, 1] (the optimised output); pixels p, q, k; channels c.  In the Lua code both
images are divided by 256 after adding back the VGG mean, i.e. they are the [0, 1]
images used here (the content exactly, the output up to the optimiser's excursions).

1. Local affine fit (``best_local_affine_kernel``).  For every pixel k, on the
   window W_k of the (2 r + 1)^2 pixels q with |q_x - k_x| <= r, |q_y - k_y| <= r,
   clipped to the image (N_k = |W_k| pixels; r = ``patch_radius`` = (patch - 1)/2 = 1),
   and for each output channel c::

       (a_kc, b_kc) = argmin_{a in R^3, b in R}  sum_{q in W_k} (a^T I_q + b - O_qc)^2 + epsilon |a|^2      (1)

   with epsilon = 1e-3 on the colour coefficients only, not on the offset b.  Its
   closed form (solve the 4x4 normal equations, eliminate b) is::

       a_kc = (Sigma_k + (epsilon / N_k) Id_3)^{-1} cov_k(I, O_c),                                       (2)
       b_kc = mu_k(O_c) - a_kc^T mu_k(I),

   with mu_k the window means and Sigma_k = mean_k(I I^T) - mu_k(I) mu_k(I)^T,
   cov_k(I, O_c) = mean_k(I O_c) - mu_k(I) mu_k(O_c) (population moments).  Note that
   epsilon weighs a *sum* over the window, so per pixel it is epsilon / N_k
   (1.1e-4 inside the image, more at borders where windows are clipped).  A_k =
   [a_k1 a_k2 a_k3; b_k] is the 3 x 4 model of window k, stored at its centre k.

2. Edge-aware averaging of the models (``bilateral_smooth_kernel``): a joint
   bilateral filter of the 12 model coefficients, guided by the content::

       Abar_p = sum_{k in B_p} w_pk A_k / sum_{k in B_p} w_pk,                                           (3)
       w_pk   = exp(-|p - k|^2 / (2 sigma_s^2)) * exp(-|I_p - I_k|^2 / (3 * 2 sigma_r^2)),

   B_p the (2 R + 1)^2 window of radius R = ``radius`` (f_radius, 15) around p,
   clipped to the image; sigma_s = R / 3 pixels; sigma_r = ``edge`` (f_edge, 0.01,
   in [0, 1] image units: the colour distance is the *mean* over the three channels
   of the squared differences).  So "overlapping windows" are not box-averaged as in
   the guided filter: each pixel's model is the bilateral average of the models of
   the windows centred around it.

3. Reconstruction (``reconstruction_best_kernel``)::

       Ohat_pc = abar_pc^T I_p + bbar_pc.                                                                (4)

   The result is then clipped to [0, 1] (``clip=True``): the CUDA code does not
   clip, but torch's ``image.save`` saturates to [0, 1] before writing the PNG, so
   the published PNGs are clipped.

Invariants (tested): an O that is constant is returned exactly; a content that is
constant gives a = 0, so Ohat is the spatial-Gaussian average of the box means of O;
an O that is a global affine recolouring O_q = G I_q + g is returned up to the
ridge bias of (1), Ohat_p - O_p = sum_k wbar_pk (a_k - G)^T (I_p - mu_k(I)) with
a_k - G = -(epsilon/N_k)(Sigma_k + (epsilon/N_k) Id)^{-1} G^T (rows per channel),
which vanishes as epsilon -> 0 on textured windows.

Departures from the CUDA code
-----------------------------
* Everything is float64; theirs reads float32 images, accumulates the moments and
  the weighted sums in double but evaluates the bilateral weights in float32, and
  multiplies two float ``exp`` results where we take one ``exp`` of the summed
  exponent (same value up to rounding).
* The fit (1) is solved in the centred form (2) with a 3 x 3 solve; theirs inverts the
  uncentred 4 x 4 normal matrix by cofactors and sets the model to 0 when its
  determinant is below 1e-9.  The determinant is N_k det(N_k Sigma_k + epsilon Id)
  >= N_k epsilon^3 = N_k 1e-9, so with their epsilon that fallback never fires on
  windows of >= 2 pixels; we have no fallback (any epsilon > 0 is well posed).
* Their ``epsilon`` argument (1e-7, the matting Laplacian's) is accepted but never
  used: the ridge 1e-3 is hard-coded in the kernel.  Here ``epsilon`` is that 1e-3
  and can be changed.
* Their kernel receives BGR planes (the Caffe order of the Lua code) and writes its
  result planes in reverse order, i.e. returns RGB; here everything is RGB.  The
  fit is symmetric in the colour channels, so the maths is the same.
* ``clip`` (default True) clips to [0, 1] as their PNG writer did; the 8-bit
  quantisation of the PNG is not applied.
* Both images must lie in [0, 1] here; theirs smooths the optimiser's current
  image unclipped (it may stray slightly outside [0, 1]).
* Their smoothing runs inside the optimisation's objective function, on the
  iterate of every ``save_iter``-th evaluation (the 1000th for ``best*_t_1000``);
  here it is a separate function of the final image.

Speed: step 2 costs (2 R + 1)^2 = 961 weights per pixel.  The numpy entry point runs
it as a numba kernel (threads: ``NUMBA_NUM_THREADS``), or, without numba, as a loop
over the window offsets; the torch entry point loops over the offsets with tensor
operations (one pass over the image per offset), which is what a GPU wants.

This module is pure maths: it imports nothing from the engine, the CLI or the runner.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from photostyle_lib.checks import check_image_array, check_int, check_number, check_same_size
from photostyle_lib.errors import PhotostyleError

try:
    from numba import njit, prange
except ImportError:  # numba is optional (the [fast] extra): the callers fall back to numpy / torch
    njit = None

__all__ = ["smooth_local_affine", "smooth_local_affine_torch", "fit_models_np", "bilateral_offsets_np",
           "bilateral_numba", "DEFAULT_RADIUS", "DEFAULT_EDGE", "DEFAULT_PATCH_RADIUS", "DEFAULT_EPSILON"]

#: Radius R of the bilateral averaging of the models, pixels (Luan et al.'s ``-f_radius 15``).
DEFAULT_RADIUS = 15
#: Range standard deviation sigma_r of that averaging, [0, 1] image units (``-f_edge 0.01``).
DEFAULT_EDGE = 0.01
#: Radius r of the affine fit's windows, pixels (their ``patch = 3``: 3 x 3 windows).
DEFAULT_PATCH_RADIUS = 1
#: Ridge epsilon of the fit (1), on the window's sum of squares (hard-coded 1e-3 in their kernel).
DEFAULT_EPSILON = 1e-3

_HAVE_NUMBA = njit is not None


def _check_params(radius: Any, edge: Any, patch_radius: Any, epsilon: Any) -> tuple[int, float, int, float]:
    radius = check_int("radius", radius, low=1)
    edge = check_number("edge", edge, low=0.0, low_inclusive=False)
    patch_radius = check_int("patch_radius", patch_radius, low=0)
    epsilon = check_number("epsilon", epsilon, low=0.0, low_inclusive=False)
    return radius, edge, patch_radius, epsilon


def smooth_local_affine(output: Any, content: Any, radius: int = DEFAULT_RADIUS, edge: float = DEFAULT_EDGE, *,
                        patch_radius: int = DEFAULT_PATCH_RADIUS, epsilon: float = DEFAULT_EPSILON,
                        clip: bool = True) -> np.ndarray:
    """Luan et al.'s local affine smoothing of ``output`` guided by ``content``, eqs. (1)-(4) of the module.

    Parameters
    ----------
    output : array (H, W, 3), float in [0, 1]
        The image to smooth O (the optimised result).
    content : array (H, W, 3), float in [0, 1]
        The guide I (the content photo) whose colours the result is affine in.
    radius : int >= 1
        Radius R of the bilateral averaging of the models, pixels (f_radius; 15);
        its spatial sigma is R / 3.
    edge : float > 0
        Range sigma sigma_r of that averaging, [0, 1] units, on the channel-mean
        squared colour difference (f_edge; 0.01).
    patch_radius : int >= 0, keyword-only
        Radius r of the fit windows (1: Luan et al.'s 3 x 3).
    epsilon : float > 0, keyword-only
        Ridge on the colour coefficients in eq. (1), on the window sum (1e-3).
    clip : bool, keyword-only
        Clip the result to [0, 1] (as Luan et al.'s PNG writer did).

    Returns
    -------
    array (H, W, 3), float64
        Ohat of eq. (4); in [0, 1] when ``clip`` (the affine reconstruction itself
        can leave [0, 1] slightly).

    Raises
    ------
    PhotostyleError
        If an image is not an (H, W, 3) float array in [0, 1], the two differ in
        size, ``radius`` < 1, ``patch_radius`` < 0, or ``edge`` or ``epsilon`` <= 0.
    """
    out = check_image_array("output", output)
    guide = check_image_array("content", content)
    check_same_size("output", out.shape, "content", guide.shape)
    radius, edge, patch_radius, epsilon = _check_params(radius, edge, patch_radius, epsilon)
    models = fit_models_np(out, guide, patch_radius, epsilon)              # (H, W, 12)
    if _HAVE_NUMBA:
        smoothed = bilateral_numba(models, guide, radius, radius / 3.0, edge)
    else:  # without the [fast] extra (numba)
        smoothed = bilateral_offsets_np(models, guide, radius, radius / 3.0, edge)
    res = _reconstruct_np(smoothed, guide)
    return np.clip(res, 0.0, 1.0) if clip else res


# -- numpy: step 1 (fit) ------------------------------------------------------------------------------------


def _box_sum_np(x: np.ndarray, r: int) -> np.ndarray:
    """Sums of x (H, W, ...) over the (2r+1)^2 windows clipped to the image, by 1-D cumulative sums."""
    for axis in (0, 1):
        n = x.shape[axis]
        c = np.concatenate([np.zeros_like(x.take([0], axis=axis)), np.cumsum(x, axis=axis)], axis=axis)
        idx = np.arange(n)
        x = c.take(np.minimum(idx + r, n - 1) + 1, axis=axis) - c.take(np.maximum(idx - r, 0), axis=axis)
    return x


def fit_models_np(out: np.ndarray, guide: np.ndarray, r: int, epsilon: float) -> np.ndarray:
    """Step 1, eq. (2): the ridge-regularised affine model of every window, in numpy.

    Parameters
    ----------
    out : array (H, W, 3), float in [0, 1]
        The image to smooth O.
    guide : array (H, W, 3), float in [0, 1]
        The content I.
    r : int >= 0
        Radius of the fit windows, pixels (clipped to the image).
    epsilon : float > 0
        The ridge on the window's sum of squares.

    Returns
    -------
    array (H, W, 12), float64
        a (3 content channels x 3 output channels, row-major) then b (3) of the window centred at each pixel.
    """
    h, w, _ = guide.shape
    n = _box_sum_np(np.ones((h, w, 1)), r)                                 # (H, W, 1) pixels per window
    mu_i = _box_sum_np(guide, r) / n
    mu_o = _box_sum_np(out, r) / n
    m_ii = _box_sum_np((guide[:, :, :, None] * guide[:, :, None, :]).reshape(h, w, 9), r) / n
    m_io = _box_sum_np((guide[:, :, :, None] * out[:, :, None, :]).reshape(h, w, 9), r) / n
    sigma = m_ii.reshape(h, w, 3, 3) - mu_i[:, :, :, None] * mu_i[:, :, None, :]
    cov = m_io.reshape(h, w, 3, 3) - mu_i[:, :, :, None] * mu_o[:, :, None, :]
    sigma = sigma + (epsilon / n)[:, :, :, None] * np.eye(3)
    a = np.linalg.solve(sigma, cov)                                        # a[..., i, c]
    b = mu_o - np.einsum("hwi,hwic->hwc", mu_i, a)
    return np.concatenate([a.reshape(h, w, 9), b], axis=2)


def _reconstruct_np(models: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """Eq. (4): Ohat_pc = sum_i I_pi abar_pic + bbar_pc; models (H, W, 12), guide (H, W, 3)."""
    h, w, _ = guide.shape
    a = models[:, :, :9].reshape(h, w, 3, 3)
    return np.einsum("hwi,hwic->hwc", guide, a) + models[:, :, 9:]


# -- numpy: step 2 (bilateral averaging of the models) ------------------------------------------------------


def bilateral_offsets_np(models: np.ndarray, guide: np.ndarray, radius: int, sigma_s: float,
                         sigma_r: float) -> np.ndarray:
    """Step 2, eq. (3), as a loop over the (2R+1)^2 offsets (numpy; the reference for the numba kernel).

    Parameters
    ----------
    models : array (H, W, C), float
        Per-pixel models (C = 12 from :func:`fit_models_np`).
    guide : array (H, W, 3), float in [0, 1]
        The content I.
    radius : int >= 1
        R, pixels.
    sigma_s : float > 0
        Spatial sigma, pixels.
    sigma_r : float > 0
        Range sigma, [0, 1] units, on the channel-mean squared colour difference.

    Returns
    -------
    array (H, W, C), float64
        The bilateral averages Abar.
    """
    h, w, c = models.shape
    num = np.zeros((h, w, c))
    den = np.zeros((h, w, 1))
    for dy in range(-radius, radius + 1):
        ys, yk = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
        for dx in range(-radius, radius + 1):
            xs, xk = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
            d = guide[ys, xs] - guide[yk, xk]                             # I_p - I_k, p = k - (dy, dx)
            expo = -(dx * dx + dy * dy) / (2.0 * sigma_s ** 2) - (d * d).sum(2, keepdims=True) / (6.0 * sigma_r ** 2)
            wgt = np.exp(expo)
            num[ys, xs] += wgt * models[yk, xk]
            den[ys, xs] += wgt
    return num / den


if _HAVE_NUMBA:
    @njit(parallel=True, fastmath=False, cache=True)
    def _bilateral_kernel(models, guide, radius, sigma_s, sigma_r):  # pragma: no cover - compiled
        h, w, c = models.shape
        res = np.empty((h, w, c))
        spatial = np.empty((2 * radius + 1, 2 * radius + 1))
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                spatial[dy + radius, dx + radius] = -(dx * dx + dy * dy) / (2.0 * sigma_s * sigma_s)
        inv_range = 1.0 / (6.0 * sigma_r * sigma_r)
        for y in prange(h):
            acc = np.empty(c)
            for x in range(w):
                acc[:] = 0.0
                den = 0.0
                g0, g1, g2 = guide[y, x, 0], guide[y, x, 1], guide[y, x, 2]
                for yy in range(max(0, y - radius), min(h, y + radius + 1)):
                    for xx in range(max(0, x - radius), min(w, x + radius + 1)):
                        d0 = guide[yy, xx, 0] - g0
                        d1 = guide[yy, xx, 1] - g1
                        d2 = guide[yy, xx, 2] - g2
                        wgt = math.exp(spatial[yy - y + radius, xx - x + radius]
                                       - (d0 * d0 + d1 * d1 + d2 * d2) * inv_range)
                        den += wgt
                        for j in range(c):
                            acc[j] += wgt * models[yy, xx, j]
                for j in range(c):
                    res[y, x, j] = acc[j] / den
        return res


def bilateral_numba(models: np.ndarray, guide: np.ndarray, radius: int, sigma_s: float,
                    sigma_r: float) -> np.ndarray:
    """Step 2, eq. (3), compiled (numba, parallel over rows): :func:`bilateral_offsets_np`'s result to rounding.

    Parameters and result as :func:`bilateral_offsets_np`; needs numba (the ``[fast]`` extra).
    """
    return _bilateral_kernel(np.ascontiguousarray(models), np.ascontiguousarray(guide), radius, sigma_s, sigma_r)


# -- torch --------------------------------------------------------------------------------------------------


def _check_tensor(name: str, t: Any) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise PhotostyleError(f"{name} must be a torch tensor of shape (1, 3, H, W), got {type(t).__name__}; "
                              "use smooth_local_affine for numpy arrays")
    if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] != 3 or t.shape[2] < 1 or t.shape[3] < 1:
        raise PhotostyleError(f"{name} must have shape (1, 3, H, W), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise PhotostyleError(f"{name} must be a floating-point tensor with values in [0, 1], got dtype {t.dtype}")
    if not bool(torch.isfinite(t).all()):
        raise PhotostyleError(f"{name} contains NaN or infinite values")
    lo, hi = float(t.min()), float(t.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise PhotostyleError(f"{name} values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]; "
                              "divide 8-bit images by 255 (photostyle_lib.io.images.load_image does this)")
    return t


def smooth_local_affine_torch(output: torch.Tensor, content: torch.Tensor, radius: int = DEFAULT_RADIUS,
                              edge: float = DEFAULT_EDGE, *, patch_radius: int = DEFAULT_PATCH_RADIUS,
                              epsilon: float = DEFAULT_EPSILON, clip: bool = True) -> torch.Tensor:
    """:func:`smooth_local_affine` in torch operations, on the tensors' device (CPU, CUDA, ...).

    Computes in float64 where the device has it (float32 on Apple MPS). Same
    parameters and result as the numpy version (up to the float32 rounding on MPS).

    Parameters
    ----------
    output : torch.Tensor, (1, 3, H, W), float in [0, 1]
        The image to smooth O (the engine's layout).
    content : torch.Tensor, (1, 3, H, W), float in [0, 1]
        The guide I, on ``output``'s device.
    radius, edge, patch_radius, epsilon, clip
        As :func:`smooth_local_affine`.

    Returns
    -------
    torch.Tensor, (1, 3, H, W), ``output``'s dtype and device
        In [0, 1] when ``clip``.

    Raises
    ------
    PhotostyleError
        If a tensor is not a finite floating-point (1, 3, H, W) tensor in [0, 1], the two
        differ in size or device, ``radius`` < 1, ``patch_radius`` < 0, or ``edge`` or
        ``epsilon`` <= 0.
    """
    out = _check_tensor("output", output)
    guide = _check_tensor("content", content)
    check_same_size("output", tuple(out.shape[2:]), "content", tuple(guide.shape[2:]))
    if out.device != guide.device:
        raise PhotostyleError(f"output is on {out.device} but content is on {guide.device}; move both to one device")
    radius, edge, patch_radius, epsilon = _check_params(radius, edge, patch_radius, epsilon)
    dtype = torch.float32 if out.device.type == "mps" else torch.float64
    o = out[0].to(dtype).permute(1, 2, 0)                                  # (H, W, 3)
    g = guide[0].to(dtype).permute(1, 2, 0)
    models = _fit_models_torch(o, g, patch_radius, epsilon)               # (H, W, 12)
    smoothed = _bilateral_offsets_torch(models.permute(2, 0, 1).contiguous(), g.permute(2, 0, 1).contiguous(),
                                        radius, radius / 3.0, edge)       # (12, H, W)
    h, w = o.shape[:2]
    a = smoothed[:9].reshape(3, 3, h, w)                                   # a[i, c]
    res = torch.einsum("ihw,ichw->chw", g.permute(2, 0, 1), a) + smoothed[9:]
    if clip:
        res = res.clamp(0.0, 1.0)
    return res.unsqueeze(0).to(output.dtype)


def _box_sum_torch(x: torch.Tensor, r: int) -> torch.Tensor:
    """Torch twin of :func:`_box_sum_np` (x (H, W, ...))."""
    for dim in (0, 1):
        n = x.shape[dim]
        c = torch.cat([torch.zeros_like(x.narrow(dim, 0, 1)), torch.cumsum(x, dim=dim)], dim=dim)
        idx = torch.arange(n, device=x.device)
        x = (c.index_select(dim, torch.clamp(idx + r, max=n - 1) + 1)
             - c.index_select(dim, torch.clamp(idx - r, min=0)))
    return x


def _fit_models_torch(out: torch.Tensor, guide: torch.Tensor, r: int, epsilon: float) -> torch.Tensor:
    """Torch twin of :func:`fit_models_np`: (H, W, 12)."""
    h, w, _ = guide.shape
    n = _box_sum_torch(torch.ones(h, w, 1, dtype=guide.dtype, device=guide.device), r)
    mu_i = _box_sum_torch(guide, r) / n
    mu_o = _box_sum_torch(out, r) / n
    m_ii = _box_sum_torch((guide[:, :, :, None] * guide[:, :, None, :]).reshape(h, w, 9), r) / n
    m_io = _box_sum_torch((guide[:, :, :, None] * out[:, :, None, :]).reshape(h, w, 9), r) / n
    sigma = m_ii.reshape(h, w, 3, 3) - mu_i[:, :, :, None] * mu_i[:, :, None, :]
    cov = m_io.reshape(h, w, 3, 3) - mu_i[:, :, :, None] * mu_o[:, :, None, :]
    sigma = sigma + (epsilon / n)[:, :, :, None] * torch.eye(3, dtype=guide.dtype, device=guide.device)
    a = torch.linalg.solve(sigma, cov)
    b = mu_o - torch.einsum("hwi,hwic->hwc", mu_i, a)
    return torch.cat([a.reshape(h, w, 9), b], dim=2)


def _bilateral_offsets_torch(models: torch.Tensor, guide: torch.Tensor, radius: int, sigma_s: float,
                             sigma_r: float) -> torch.Tensor:
    """Eq. (3) by a loop over the offsets: models (C, H, W), guide (3, H, W) -> (C, H, W).

    Zero padding plus a padded validity mask give the clipped windows; each offset
    is a few whole-image operations, so the cost on a GPU is (2R+1)^2 short passes.
    """
    c, h, w = models.shape
    pad = (radius, radius, radius, radius)
    m_pad = F.pad(models, pad)
    g_pad = F.pad(guide, pad)
    valid = F.pad(torch.ones(1, h, w, dtype=models.dtype, device=models.device), pad)
    num = torch.zeros_like(models)
    den = torch.zeros(1, h, w, dtype=models.dtype, device=models.device)
    inv_range = 1.0 / (6.0 * sigma_r ** 2)
    for dy in range(-radius, radius + 1):
        rows = slice(radius + dy, radius + dy + h)
        for dx in range(-radius, radius + 1):
            cols = slice(radius + dx, radius + dx + w)
            d = g_pad[:, rows, cols] - guide
            expo = (d * d).sum(0, keepdim=True).mul_(-inv_range).add_(-(dx * dx + dy * dy) / (2.0 * sigma_s ** 2))
            wgt = expo.exp_().mul_(valid[:, rows, cols])
            num.addcmul_(m_pad[:, rows, cols], wgt)
            den.add_(wgt)
    return num / den

