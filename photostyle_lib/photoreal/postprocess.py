"""Post-processes that give a stylised image back the content's structure.

* :func:`recursive_filter`: the domain-transform recursive filter of Gastal and
  Oliveira (2011), an edge-aware smoothing guided by a joint image;
* :func:`refine`: the paper's post-process, eq. (9),
  O_p = (I - RF(I, sigma_s, sigma_r, I)) + RF(O, sigma_s, sigma_r, I);
* :func:`screened_poisson`: the alternative of Mechrez et al. (2017, the paper's
  reference [8]), which keeps the stylised colours but the content's gradients;
  :func:`screened_poisson_luminance` the same on the luminance alone (this project's);
* :func:`matting_smooth`: the closed-form smoothing with the content's matting
  Laplacian, (Id + lam L) O = S (this project's; the photorealism regulariser of
  eq. (4) solved as a post-process, as Li et al. 2018's photorealistic smoothing).

Array images are numpy (H, W, C) float in [0, 1] (``photostyle_lib.io.images``).
This module is pure maths: it imports nothing from the engine, the CLI or the runner.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.fft
import scipy.sparse
import scipy.sparse.linalg

from photostyle_lib.photoreal import image_kernels, matting
from photostyle_lib.checks import check_image_array, check_int, check_number, check_same_size
from photostyle_lib.errors import PhotostyleError

__all__ = ["recursive_filter", "refine", "screened_poisson", "screened_poisson_luminance", "matting_smooth", "DEFAULT_SIGMA_S",
           "DEFAULT_SIGMA_R", "DEFAULT_POISSON_LAMBDA", "DEFAULT_SMOOTH_LAMBDA"]

#: Spatial standard deviation of the paper's post-process, in pixels (section 4).
DEFAULT_SIGMA_S = 60.0
#: Range standard deviation of the paper's post-process: its 100 on 0-255 images,
#: i.e. 100/255 in the [0, 1] image-value units used here -- also what the authors'
#: code does (its main.py hands RF int32 arrays of 0-255 values, RF.m does not rescale).
#: ``sigma_r=100`` on [0, 1] images (nearly a plain smoothing) is only an ablation.
DEFAULT_SIGMA_R = 100.0 / 255.0
#: Gradient weight lambda of :func:`screened_poisson`, in pixels^2; see its docstring.
DEFAULT_POISSON_LAMBDA = 5.0
#: Weight lambda of :func:`matting_smooth` (dimensionless: L is Levin's Laplacian of 3 x 3
#: windows on [0, 1] colours): the ``enhanced`` preset's, chosen by studies/sweep_postprocess.py on
#: tuning pairs (presets.ENHANCED_POSTPROCESS).
DEFAULT_SMOOTH_LAMBDA = 3.0


def _as_joint(joint: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Validate a joint (guide) image (H, W) or (H, W, C) in [0, 1]; return (H, W, C) float64."""
    arr = np.asarray(joint)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    arr = check_image_array("joint", arr, channels=None)
    check_same_size("image", shape, "joint", arr.shape)
    return arr


def recursive_filter(image: Any, sigma_s: float, sigma_r: float, num_iterations: int = 3,
                     joint: Any = None) -> np.ndarray:
    """Domain-transform recursive filter, RF(image, sigma_s, sigma_r, joint) (Gastal and Oliveira 2011).

    Parameters
    ----------
    image : array (H, W, C), float in [0, 1]
        The image X to filter (usually C = 3).
    sigma_s : float > 0
        Spatial standard deviation of the filter, in pixels (the paper uses 60).
    sigma_r : float > 0
        Range standard deviation, in image-value units of the [0, 1] scale
        (the paper's 100 on 0-255 images is 100/255 here).
    num_iterations : int >= 1
        Number K of horizontal + vertical iterations (3 in the paper).
    joint : array (H, W) or (H, W, C'), float in [0, 1], optional
        Joint (guide) image J whose edges are preserved; defaults to ``image``.

    Returns
    -------
    array (H, W, C), float64
        The filtered image. Each output pixel is a convex combination of input
        pixels, so values stay in [0, 1].

    Raises
    ------
    PhotostyleError
        If ``image`` or ``joint`` is not a float array in [0, 1] ((H, W, C); a joint
        may be (H, W)), the two differ in size, ``sigma_s`` or ``sigma_r`` <= 0, or
        ``num_iterations`` < 1.

    Notes
    -----
    As in Gastal and Oliveira's reference code: the transform's derivative between
    neighbours n-1 and n is d(n) = 1 + (sigma_s / sigma_r) * sum_c |J_c(n) - J_c(n-1)|
    (along rows for horizontal passes, along columns for vertical ones). Iteration
    i = 1..K uses sigma_H_i = sigma_s * sqrt(3) * 2^(K-i) / sqrt(4^K - 1) and link
    weights V(n) = a^d(n), a = exp(-sqrt(2) / sigma_H_i); one 1-D pass runs
    Y(n) = X(n) + V(n) (Y(n-1) - X(n)) left to right, then
    Y(n) = Y(n) + V(n+1) (Y(n+1) - Y(n)) right to left. Each iteration filters all
    rows, then all columns.

    The recursion is sequential along a row. With numba (the [fast] extra) a compiled
    kernel (:func:`photostyle_lib.photoreal.image_kernels.recursive_filter_iteration`) runs
    it in place, several rows at a time; without it, and as the reference the
    tests compare it with, numpy updates all rows (and channels) at once on a
    contiguous slice of the transposed image. Both do the same float64 arithmetic.
    OpenCV's ``ximgproc.dtFilter(..., DTF_RF)`` computes this filter too (equal to
    ~1e-6 on the paper's parameters, see ``benchmarks/bench_photorealism.py``), but
    only in float32, on 8-bit or float32 images of at most 4 channels.
    """
    arr = check_image_array("image", image, channels=None)
    sigma_s = check_number("sigma_s", sigma_s, low=0.0, low_inclusive=False)
    sigma_r = check_number("sigma_r", sigma_r, low=0.0, low_inclusive=False)
    num_iterations = check_int("num_iterations", num_iterations, low=1)
    guide = arr if joint is None else _as_joint(joint, arr.shape)
    return _recursive_filter(arr, guide, sigma_s, sigma_r, num_iterations)


def _transform_derivatives(joint: np.ndarray, sigma_s: float, sigma_r: float) -> tuple[np.ndarray, np.ndarray]:
    """d(n) of the links along rows and along columns, each (H, W); entry 0 of each line is never used."""
    h, w = joint.shape[:2]
    ratio = sigma_s / sigma_r
    d_horiz = np.ones((h, w))
    d_horiz[:, 1:] += ratio * np.abs(np.diff(joint, axis=1)).sum(axis=2)
    d_vert = np.ones((h, w))
    d_vert[1:, :] += ratio * np.abs(np.diff(joint, axis=0)).sum(axis=2)
    return d_horiz, d_vert


def _log_a(sigma_s: float, num_iterations: int, i: int) -> float:
    """log a of iteration i = 1..K: a^d = exp(d * log a), no underflow trouble for tiny sigma_H_i."""
    k = num_iterations
    sigma_h = sigma_s * math.sqrt(3.0) * 2.0 ** (k - i) / math.sqrt(4.0 ** k - 1.0)
    return -math.sqrt(2.0) / sigma_h


def _recursive_filter(image: np.ndarray, joint: np.ndarray, sigma_s: float, sigma_r: float,
                      num_iterations: int) -> np.ndarray:
    """Unchecked :func:`recursive_filter`: image (H, W, C) and joint (H, W, C') float64, any values."""
    if not image_kernels.AVAILABLE:  # without the [fast] extra (numba)
        return _recursive_filter_reference(image, joint, sigma_s, sigma_r, num_iterations)
    d_horiz, d_vert = image_kernels.transform_derivatives(joint, sigma_s / sigma_r)
    out = np.array(image, dtype=np.float64, order="C", copy=True)
    for i in range(1, num_iterations + 1):
        log_a = _log_a(sigma_s, num_iterations, i)
        image_kernels.recursive_filter_iteration(out, np.exp(log_a * d_horiz), np.exp(log_a * d_vert))
    return out


def _recursive_filter_reference(image: np.ndarray, joint: np.ndarray, sigma_s: float, sigma_r: float,
                                num_iterations: int) -> np.ndarray:
    """The numpy form of :func:`_recursive_filter`: the reference of its kernel."""
    d_horiz, d_vert = _transform_derivatives(joint, sigma_s, sigma_r)
    d_horiz_t = np.ascontiguousarray(d_horiz.T)           # (W, H): columns become leading axis
    out = np.array(image, dtype=np.float64, order="C", copy=True)
    for i in range(1, num_iterations + 1):
        log_a = _log_a(sigma_s, num_iterations, i)
        transposed = np.ascontiguousarray(out.transpose(1, 0, 2))        # (W, H, C)
        _recursive_pass(transposed, np.exp(log_a * d_horiz_t))
        out = np.ascontiguousarray(transposed.transpose(1, 0, 2))         # (H, W, C)
        _recursive_pass(out, np.exp(log_a * d_vert))
    return out


def _recursive_pass(lines: np.ndarray, weights: np.ndarray) -> None:
    """One causal + anti-causal 1-D pass along axis 0, in place.

    lines: (L, M, C) C-contiguous, filtered along L for all M*C at once;
    weights: (L, M), weights[n] is V(n), the weight of the link between n-1 and n.
    """
    n = lines.shape[0]
    # Broadcast once so that every step is a same-shape contiguous ufunc call.
    v = np.ascontiguousarray(np.broadcast_to(weights[:, :, None], lines.shape))
    buf = np.empty(lines.shape[1:])
    subtract, multiply, add = np.subtract, np.multiply, np.add
    for i in range(1, n):
        subtract(lines[i - 1], lines[i], out=buf)
        multiply(buf, v[i], out=buf)
        add(lines[i], buf, out=lines[i])
    for i in range(n - 2, -1, -1):
        subtract(lines[i + 1], lines[i], out=buf)
        multiply(buf, v[i + 1], out=buf)
        add(lines[i], buf, out=lines[i])


def refine(output: Any, content: Any, sigma_s: float = DEFAULT_SIGMA_S, sigma_r: float = DEFAULT_SIGMA_R,
           num_iterations: int = 3) -> np.ndarray:
    """The paper's recursive-filter post-process, eq. (9).

    O_p = (I - RF(I, sigma_s, sigma_r, I)) + RF(O, sigma_s, sigma_r, I): the
    smoothed stylised colours of O plus the content's detail layer.

    Parameters
    ----------
    output : array (H, W, 3), float in [0, 1]
        The stylised image O.
    content : array (H, W, 3), float in [0, 1]
        The content image I, also the joint image of both filters.
    sigma_s : float > 0
        Spatial standard deviation in pixels (paper: 60).
    sigma_r : float > 0
        Range standard deviation in [0, 1] image-value units (paper: 100 on 0-255 = 100/255).
    num_iterations : int >= 1
        Filter iterations (paper: 3).

    Returns
    -------
    array (H, W, 3), float64 in [0, 1]
        O_p, clipped to [0, 1]: adding the content's detail layer to the smoothed
        output can overshoot where O is darker or brighter than I, and the result
        is an image to display and save.

    Raises
    ------
    PhotostyleError
        If an image is not an (H, W, 3) float array in [0, 1], the two differ in size,
        ``sigma_s`` or ``sigma_r`` <= 0, or ``num_iterations`` < 1.
    """
    out = check_image_array("output", output)
    cont = check_image_array("content", content)
    check_same_size("output", out.shape, "content", cont.shape)
    sigma_s = check_number("sigma_s", sigma_s, low=0.0, low_inclusive=False)
    sigma_r = check_number("sigma_r", sigma_r, low=0.0, low_inclusive=False)
    num_iterations = check_int("num_iterations", num_iterations, low=1)
    # Both filters share the joint image, so filter I and O together as 6 channels.
    both = _recursive_filter(np.concatenate([cont, out], axis=2), cont, sigma_s, sigma_r, num_iterations)
    refined = (cont - both[:, :, :3]) + both[:, :, 3:]
    return np.clip(refined, 0.0, 1.0)


def screened_poisson(output: Any, content: Any, lam: float = DEFAULT_POISSON_LAMBDA) -> np.ndarray:
    """Screened Poisson post-process of Mechrez et al. (2017), solved exactly with a DCT.

    Per channel, minimises over O (S = ``output``, I = ``content``)::

        sum_p (O_p - S_p)^2 + lam * sum_{p~q} ((O_p - O_q) - (I_p - I_q))^2

    over the 4-neighbour pairs p~q inside the image (forward differences, i.e.
    Neumann boundary). The normal equations are (Id + lam * G) O = S + lam * G I
    with G the graph Laplacian (G = -Laplace with Neumann boundary), i.e.
    (Id - lam * Laplace) O = S - lam * Laplace(I). Since (Id + lam G)(O - I) = S - I,
    the solution is O = I + (Id + lam G)^-1 (S - I), and the type-II DCT
    diagonalises G with eigenvalues (2 - 2 cos(pi u / H)) + (2 - 2 cos(pi v / W)).

    Parameters
    ----------
    output : array (H, W, 3), float in [0, 1]
        The stylised image S.
    content : array (H, W, 3), float in [0, 1]
        The content image I whose gradients the result follows.
    lam : float >= 0
        Gradient weight lambda, in pixels^2 (the squared length scale below which
        the content's structure wins). lam = 0 returns S; lam -> infinity returns I
        shifted by the mean difference of S and I per channel. The default 5 lets
        (Id + lam G)^-1 pass colour variations of S with wavelengths longer than
        about 2 pi sqrt(lam) ~ 14 px and take finer structure (edges, texture,
        the grain and distortions of neural style transfer) from I, the scale of
        the fine distortions the post-process is meant to remove. The paper gives
        no value (it mentions but does not implement this post-process).

    Returns
    -------
    array (H, W, 3), float64 in [0, 1]
        O, clipped to [0, 1] (the unconstrained solution can leave the range where
        S and I disagree strongly near edges).

    Raises
    ------
    PhotostyleError
        If an image is not an (H, W, 3) float array in [0, 1], the two differ in size,
        or ``lam`` < 0.
    """
    out, cont, lam = _poisson_inputs(output, content, lam)
    return np.clip(_screened_poisson(out, cont, lam), 0.0, 1.0)


def screened_poisson_luminance(output: Any, content: Any, lam: float = DEFAULT_POISSON_LAMBDA) -> np.ndarray:
    """:func:`screened_poisson` on the luminance alone: the content's brightness gradients, the output's colours.

    With Y the Rec. 601 luminance (0.299 R + 0.587 G + 0.114 B), Y_O solves the screened
    Poisson problem of :func:`screened_poisson` for the single channel (S = Y(output),
    I = Y(content)), and every channel of the output moves by the same amount::

        O = S + (Y_O - Y(S)) [1, 1, 1]

    so O's chroma differences (R - G, B - G) are S's and only its brightness takes the
    content's gradients. The per-channel version gives back the content's *colour*
    gradients too: under a grey style a red object regains red and cyan fringes at its
    edges. Not in the paper: this project's ``screened_poisson_luminance`` step. For a
    grey output and content (three equal channels) it equals :func:`screened_poisson`.

    Parameters
    ----------
    output : array (H, W, 3), float in [0, 1]
    content : array (H, W, 3), float in [0, 1]
    lam : float >= 0
        Gradient weight, pixels^2 (as :func:`screened_poisson`); 0 returns the output.

    Returns
    -------
    array (H, W, 3), float64 in [0, 1]
        O, clipped to [0, 1].

    Raises
    ------
    PhotostyleError
        If an image is not an (H, W, 3) float array in [0, 1], the two differ in size,
        or ``lam`` < 0.
    """
    out, cont, lam = _poisson_inputs(output, content, lam)
    y_out = (out @ image_kernels.REC601_LUMA)[:, :, None]
    y_new = _screened_poisson(y_out, (cont @ image_kernels.REC601_LUMA)[:, :, None], lam)
    return np.clip(out + (y_new - y_out), 0.0, 1.0)


def _poisson_inputs(output: Any, content: Any, lam: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """The screened Poisson steps' checked inputs: two (H, W, 3) float64 images of one size, lam >= 0."""
    out = check_image_array("output", output)
    cont = check_image_array("content", content)
    check_same_size("output", out.shape, "content", cont.shape)
    return out, cont, check_number("lam", lam, low=0.0)


def _screened_poisson(target: np.ndarray, guide: np.ndarray, lam: float) -> np.ndarray:
    """Unclipped, unchecked solution of (Id + lam G) O = target + lam G guide, per channel; (H, W, C) float64."""
    h, w = target.shape[:2]
    eig_y = 2.0 - 2.0 * np.cos(np.pi * np.arange(h) / h)
    eig_x = 2.0 - 2.0 * np.cos(np.pi * np.arange(w) / w)
    denom = 1.0 + lam * (eig_y[:, None] + eig_x[None, :])
    diff = scipy.fft.dctn(target - guide, type=2, axes=(0, 1), norm="ortho")
    diff /= denom[:, :, None]
    return guide + scipy.fft.idctn(diff, type=2, axes=(0, 1), norm="ortho")


def matting_smooth(output: Any, content: Any, lam: float = DEFAULT_SMOOTH_LAMBDA, *, laplacian: Any = None,
                   eps: float = 1e-7, radius: int = 1, rtol: float = 1e-6, max_iterations: int = 5000) -> np.ndarray:
    """Smooth ``output`` towards a locally affine function of ``content``: (Id + lam L) O = S.

    O minimises ``sum_c ||O_c - S_c||^2 + lam * O_c^T L O_c``: stay near the given
    image S while lowering the photorealism energy of eq. (4) (L: Levin et al.'s
    matting Laplacian of the content, ``matting.matting_laplacian``). This is the
    paper's photorealism regularisation as a closed-form post-process instead of a
    loss term; Li et al. (2018, FastPhotoStyle) smooth the same way with an affinity
    of their own. Not in the paper or the authors' code: this project's
    ``matting_smooth`` step.

    Solved per channel by conjugate gradients (Id + lam L is symmetric positive
    definite), started at S, with a Jacobi preconditioner.

    Parameters
    ----------
    output : array (H, W, 3), float in [0, 1]
        The image S to smooth.
    content : array (H, W, 3), float in [0, 1]
        The guide I whose Laplacian is used.
    lam : float >= 0
        Smoothing weight; 0 returns S. Larger values make O closer to locally affine
        in I (lower photorealism energy) and move it further from S.
    laplacian : scipy sparse (H*W, H*W), keyword-only
        A precomputed matting Laplacian of ``content`` (else built with ``eps``, ``radius``).
    eps, radius : see ``matting.matting_laplacian``.
    rtol : float > 0
        Relative residual at which CG stops.
    max_iterations : int >= 1
        CG iterations per channel; a solve that does not reach ``rtol`` raises.

    Returns
    -------
    array (H, W, 3), float64 in [0, 1]
        O, clipped to [0, 1].

    Raises
    ------
    PhotostyleError
        When CG does not converge within ``max_iterations``.
    """
    out = check_image_array("output", output)
    cont = check_image_array("content", content)
    check_same_size("output", out.shape, "content", cont.shape)
    lam = check_number("lam", lam, low=0.0)
    rtol = check_number("rtol", rtol, low=0.0, low_inclusive=False)
    max_iterations = check_int("max_iterations", max_iterations, low=1)
    if lam == 0:
        return out.copy()
    lap = matting.cached_matting_laplacian(cont, eps=eps, radius=radius) if laplacian is None else laplacian
    n = out.shape[0] * out.shape[1]
    if not scipy.sparse.issparse(lap) or lap.shape != (n, n):
        raise PhotostyleError(f"laplacian must be a sparse ({n}, {n}) matrix of the content; build it with "
                              "matting.matting_laplacian(content)")
    system = (scipy.sparse.identity(n, format="csr") + lam * lap).tocsr()
    diag = system.diagonal()
    precond = scipy.sparse.linalg.LinearOperator((n, n), matvec=lambda v: v / diag, dtype=np.float64)
    result = np.empty_like(out)
    for ch in range(out.shape[2]):
        rhs = out[..., ch].reshape(-1)
        sol, info = scipy.sparse.linalg.cg(system, rhs, x0=rhs.copy(), rtol=rtol, maxiter=max_iterations,
                                           M=precond)
        if info != 0:
            raise PhotostyleError(f"matting_smooth: conjugate gradients did not converge in {max_iterations} "
                                  f"iterations (lam={lam:g}); lower lam or raise max_iterations")
        result[..., ch] = sol.reshape(out.shape[:2])
    return np.clip(result, 0.0, 1.0)
