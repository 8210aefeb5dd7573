"""Matting Laplacian (Levin, Lischinski and Weiss 2008) and the photorealism term.

The photorealism regularisation of Luan et al., eq. (4) of the paper, penalises
output colours that are not a locally affine function of the content colours:

    L_m = sum over channels c of V_c[O]^T M_I V_c[O]                      (4)

with gradient 2 M_I V_c[O] (eq. 5), where M_I is the matting Laplacian of the
content image I and V_c[O] the row-major flattened channel c of the output O.

Conventions (see ``photostyle_lib.io.images``):

* array images are numpy (H, W, 3) float in [0, 1];
* tensor images are torch (1, 3, H, W) float in [0, 1];
* pixel p = (y, x) has the flat index ``y * W + x`` (row-major), so
  ``V_c = image[..., c].ravel()`` for arrays and ``tensor[0, c].reshape(-1)`` for tensors.

Use in an optimisation loop (build and convert once per content image and size)::

    lap = cached_matting_laplacian(content_array)              # scipy CSR, float64
    lap_t = laplacian_to_torch(lap, x.device, dtype=x.dtype)   # torch sparse CSR
    def closure():
        optimizer.zero_grad()
        loss = other_terms(x) + reg_weight * photorealism_loss(x, lap_t)
        loss.backward()
        return loss

This module is pure maths: it imports nothing from the engine, the CLI or the runner.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import scipy.sparse
import torch
from torch.autograd.function import once_differentiable

from photostyle_lib.photoreal import image_kernels
from photostyle_lib.checks import check_image_array, check_int, check_number
from photostyle_lib.errors import PhotostyleError

__all__ = [
    "matting_laplacian",
    "cached_matting_laplacian",
    "laplacian_cache_key",
    "clear_laplacian_cache",
    "laplacian_to_torch",
    "photorealism_loss",
    "laplacian_energy",
    "LAPLACIAN_CACHE_SIZE",
]

#: How many Laplacians :func:`cached_matting_laplacian` keeps (least recently used
#: dropped first). One Laplacian at 700 x 437 px with radius 1 takes about 90 MB.
LAPLACIAN_CACHE_SIZE = 4

# Window rows processed at once by the kernel: keeps the ~40 working planes
# of one chunk (about 16k window centres each) inside the CPU caches.
_CHUNK_WINDOWS = 16384


def matting_laplacian(image: Any, eps: float = 1e-7, radius: int = 1) -> scipy.sparse.csr_matrix:
    """Matting Laplacian of an image (Levin, Lischinski and Weiss 2008, eq. 12).

    For windows w_k of (2r+1)^2 pixels lying fully inside the image, with window
    mean mu_k (3-vector) and covariance Sigma_k (3x3, normalised by |w_k|)::

        L_ij = sum_{k : i, j in w_k} delta_ij - (1 / |w_k|) * (1 + (I_i - mu_k)^T
               (Sigma_k + (eps / |w_k|) Id_3)^-1 (I_j - mu_k))

    Parameters
    ----------
    image : array (H, W, 3), float in [0, 1]
        The content image I. Converted to float64; H and W must be at least 2r+1.
    eps : float > 0
        Regularisation of the window covariance (Luan et al. use 1e-7), in squared
        image-value units ([0, 1] scale).
    radius : int >= 1
        Window radius r in pixels; r = 1 gives Levin's 3x3 windows (the paper's choice).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (H*W, H*W), float64
        Rows and columns indexed by ``y * W + x``. Symmetric, positive semi-definite,
        every row sums to zero. Stored entries are exactly the pixel pairs within
        2r of each other in both axes (every such pair shares a window); column
        indices are sorted and int32 (int64 if they would overflow).

    Raises
    ------
    PhotostyleError
        If ``image`` is not an (H, W, 3) float array in [0, 1], ``eps`` <= 0,
        ``radius`` < 1, or the image is smaller than one (2r+1) x (2r+1) window.

    Notes
    -----
    With numba (the [fast] extra) a compiled kernel
    (:func:`photostyle_lib.photoreal.image_kernels.laplacian_csr`) visits the windows one by
    one and adds the (2r+1)^2 (2r+1)^2 / 2 pairwise terms of each (the form is
    symmetric) straight into the CSR arrays. Without numba, and as the reference
    the tests compare it with, :func:`_laplacian_reference` computes the same
    terms on planes of window centres with numpy. The covariance is computed from
    centred colours rather than from E[I I^T] - mu mu^T (box sums), because with
    eps = 1e-7 the regulariser eps/|w| is ~1e-8 and the cancellation error of the
    box-sum form would be of the same order in flat regions.

    pymatting's ``cf_laplacian`` computes the same matrix (its covariance is also
    (sum c c^T + eps Id) / |w| over the windows fully inside) but returns it with
    explicit zeros and repeated column 0 for the missing neighbours of border
    pixels and int64 indices; the kernel here is faster than it and returns a
    canonical matrix.
    """
    arr = check_image_array("image", image)
    eps = check_number("eps", eps, low=0.0, low_inclusive=False)
    radius = check_int("radius", radius, low=1)
    h, w = arr.shape[:2]
    side = 2 * radius + 1
    if h < side or w < side:
        raise PhotostyleError(
            f"image is {h}x{w} (HxW) but matting windows with radius {radius} are {side}x{side}; "
            f"give an image at least {side}x{side} or a smaller radius")
    if not image_kernels.AVAILABLE:  # without the [fast] extra (numba)
        return _laplacian_reference(arr, eps, radius)
    data, indices, indptr = image_kernels.laplacian_csr(np.ascontiguousarray(arr, dtype=np.float64), eps, radius)
    mat = scipy.sparse.csr_matrix((data, indices, indptr), shape=(h * w, h * w))
    mat.has_sorted_indices = True
    return mat


def _laplacian_reference(arr: np.ndarray, eps: float, radius: int) -> scipy.sparse.csr_matrix:
    """The numpy form of :func:`matting_laplacian` (unchecked arguments): the reference of its kernel."""
    diagonals = _laplacian_diagonals(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float64), eps, radius)
    return _diagonals_to_csr(diagonals, radius)


def _laplacian_diagonals(planes: np.ndarray, eps: float, r: int) -> np.ndarray:
    """Kernel of :func:`matting_laplacian`.

    planes: (3, H, W) float64 contiguous. Returns D of shape ((4r+1)^2, H, W) with
    D[k(dy, dx), y, x] = L[(y, x), (y+dy, x+dx)], where k(dy, dx) = (dy+2r)(4r+1) + dx+2r
    (entries whose neighbour falls outside the image are zero).
    """
    _, h, w = planes.shape
    side = 2 * r + 1
    n_win = side * side
    inv_n = 1.0 / n_win
    hk, wk = h - 2 * r, w - 2 * r          # window top-left corners: (ty, tx) in [0, hk) x [0, wk)
    k_side = 4 * r + 1
    out = np.zeros((k_side * k_side, h, w))
    positions = [(ay, ax) for ay in range(side) for ax in range(side)]
    chunk = max(1, _CHUNK_WINDOWS // wk)
    for t0 in range(0, hk, chunk):
        t1 = min(hk, t0 + chunk)
        shape = (t1 - t0, wk)
        # Colour of the pixel at position a of every window in the chunk: (3, n, wk).
        pix = [planes[:, t0 + ay:t1 + ay, ax:ax + wk] for ay, ax in positions]
        mu = pix[0].copy()
        for p in pix[1:]:
            mu += p
        mu *= inv_n
        cen = [p - mu for p in pix]        # I_{k+a} - mu_k
        # Sigma_k + (eps/|w|) Id, upper triangle (00, 01, 02, 11, 12, 22).
        s00, s01, s02, s11, s12, s22 = (np.zeros(shape) for _ in range(6))
        tmp = np.empty(shape)
        for x in cen:
            for acc, c, d in ((s00, 0, 0), (s01, 0, 1), (s02, 0, 2), (s11, 1, 1), (s12, 1, 2), (s22, 2, 2)):
                np.multiply(x[c], x[d], out=tmp)
                acc += tmp
        for acc in (s00, s01, s02, s11, s12, s22):
            acc *= inv_n
        for acc in (s00, s11, s22):
            acc += eps * inv_n
        # Batched 3x3 inverse by cofactors, pre-scaled by 1/|w|.
        c00 = s11 * s22 - s12 * s12
        c01 = s02 * s12 - s01 * s22
        c02 = s01 * s12 - s02 * s11
        c11 = s00 * s22 - s02 * s02
        c12 = s01 * s02 - s00 * s12
        c22 = s00 * s11 - s01 * s01
        scale = inv_n / (s00 * c00 + s01 * c01 + s02 * c02)
        for c in (c00, c01, c02, c11, c12, c22):
            c *= scale
        # U_a = (1/|w|) (Sigma + eps/|w| Id)^-1 (I_{k+a} - mu_k), three planes per position.
        inv_cen = [(c00 * x[0] + c01 * x[1] + c02 * x[2],
                    c01 * x[0] + c11 * x[1] + c12 * x[2],
                    c02 * x[0] + c12 * x[1] + c22 * x[2]) for x in cen]
        val = np.empty(shape)
        for ia, (ay, ax) in enumerate(positions):
            ua = inv_cen[ia]
            for ib in range(ia, n_win):
                by, bx = positions[ib]
                xb = cen[ib]
                np.multiply(ua[0], xb[0], out=val)
                np.multiply(ua[1], xb[1], out=tmp)
                val += tmp
                np.multiply(ua[2], xb[2], out=tmp)
                val += tmp
                dy, dx = by - ay, bx - ax
                out[(dy + 2 * r) * k_side + dx + 2 * r, t0 + ay:t1 + ay, ax:ax + wk] -= val
                if ib != ia:       # the quadratic form is symmetric in (a, b)
                    out[(2 * r - dy) * k_side + 2 * r - dx, t0 + by:t1 + by, bx:bx + wk] -= val
    # The constant part, delta_ij - 1/|w|, times the number of windows holding both i and j.
    for dy in range(-2 * r, 2 * r + 1):
        count_y = _shared_windows_1d(h, r, dy)
        for dx in range(-2 * r, 2 * r + 1):
            count = np.outer(count_y, _shared_windows_1d(w, r, dx))
            weight = (1.0 - inv_n) if dy == 0 and dx == 0 else -inv_n
            out[(dy + 2 * r) * k_side + dx + 2 * r] += weight * count
    return out


def _shared_windows_1d(length: int, r: int, d: int) -> np.ndarray:
    """Number of window positions (along one axis) covering both t and t + d, for t in [0, length)."""
    t = np.arange(length)
    first = np.maximum(np.maximum(t, t + d) - 2 * r, 0)
    last = np.minimum(np.minimum(t, t + d), length - 2 * r - 1)
    return np.maximum(last - first + 1, 0).astype(np.float64)


def _diagonals_to_csr(diagonals: np.ndarray, r: int) -> scipy.sparse.csr_matrix:
    """Turn the ((4r+1)^2, H, W) diagonal planes into a CSR matrix without sorting."""
    n_off, h, w = diagonals.shape
    n = h * w
    offsets = [(dy, dx) for dy in range(-2 * r, 2 * r + 1) for dx in range(-2 * r, 2 * r + 1)]
    ys, xs = np.arange(h), np.arange(w)
    inside_y = np.stack([(ys + dy >= 0) & (ys + dy < h) for dy, _ in offsets], axis=-1)   # (H, K)
    inside_x = np.stack([(xs + dx >= 0) & (xs + dx < w) for _, dx in offsets], axis=-1)   # (W, K)
    inside = inside_y[:, None, :] & inside_x[None, :, :]                                  # (H, W, K)
    index_dtype = np.int32 if n * n_off < np.iinfo(np.int32).max else np.int64
    # Offsets in (dy, dx) lexicographic order give increasing columns within a row.
    flat_offsets = np.array([dy * w + dx for dy, dx in offsets], dtype=index_dtype)
    data = diagonals.transpose(1, 2, 0)[inside]
    indices = (np.arange(n, dtype=index_dtype).reshape(h, w, 1) + flat_offsets)[inside]
    indptr = np.zeros(n + 1, dtype=index_dtype)
    np.cumsum(inside.sum(axis=2, dtype=index_dtype).ravel(), out=indptr[1:])
    mat = scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, n))
    mat.has_sorted_indices = True
    return mat


# ---------------------------------------------------------------------------
# Cache


_LAPLACIAN_CACHE: OrderedDict[tuple, scipy.sparse.csr_matrix] = OrderedDict()


def laplacian_cache_key(image: Any, eps: float = 1e-7, radius: int = 1) -> tuple[str, tuple[int, ...], float, int]:
    """Key under which :func:`cached_matting_laplacian` stores a Laplacian.

    The Laplacian depends on nothing else: two images with equal float64 values
    (e.g. the same picture given as float32 and float64) share an entry.

    Parameters
    ----------
    image : array (H, W, 3), float in [0, 1]
        The content image I.
    eps : float > 0
        As :func:`matting_laplacian` (squared image-value units).
    radius : int >= 1
        As :func:`matting_laplacian` (pixels).

    Returns
    -------
    tuple (str, tuple of int, float, int)
        ``(sha1 hex digest of the image as C-contiguous float64 bytes, image shape, eps, radius)``.

    Raises
    ------
    PhotostyleError
        If ``image`` is not an (H, W, 3) float array in [0, 1], ``eps`` <= 0 or ``radius`` < 1.
    """
    arr = check_image_array("image", image)
    eps = check_number("eps", eps, low=0.0, low_inclusive=False)
    radius = check_int("radius", radius, low=1)
    digest = hashlib.sha1(np.ascontiguousarray(arr, dtype=np.float64).tobytes()).hexdigest()
    return digest, tuple(arr.shape), eps, radius


def cached_matting_laplacian(image: Any, eps: float = 1e-7, radius: int = 1) -> scipy.sparse.csr_matrix:
    """:func:`matting_laplacian`, built once per key and kept in a small in-memory LRU.

    The key is :func:`laplacian_cache_key` ``(sha1 of the float64 image bytes, shape, eps,
    radius)``; the last :data:`LAPLACIAN_CACHE_SIZE` Laplacians are kept, in this process
    only. :func:`clear_laplacian_cache` empties the cache.

    Parameters
    ----------
    image, eps, radius
        As :func:`matting_laplacian`.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (H*W, H*W), float64
        As :func:`matting_laplacian`. The matrix is shared between callers, so its
        arrays are made read-only; copy it (``L.copy()``) before modifying it in place.

    Raises
    ------
    PhotostyleError
        As :func:`matting_laplacian`.
    """
    key = laplacian_cache_key(image, eps, radius)
    hit = _LAPLACIAN_CACHE.get(key)
    if hit is not None:
        _LAPLACIAN_CACHE.move_to_end(key)
        return hit
    lap = matting_laplacian(image, eps, radius)
    for a in (lap.data, lap.indices, lap.indptr):
        a.flags.writeable = False
    _LAPLACIAN_CACHE[key] = lap
    while len(_LAPLACIAN_CACHE) > LAPLACIAN_CACHE_SIZE:
        _LAPLACIAN_CACHE.popitem(last=False)
    return lap


def clear_laplacian_cache() -> None:
    """Forget every Laplacian kept by :func:`cached_matting_laplacian`."""
    _LAPLACIAN_CACHE.clear()


# ---------------------------------------------------------------------------
# Photorealism term, eq. (4)-(5)


def laplacian_to_torch(laplacian: scipy.sparse.spmatrix | scipy.sparse.sparray, device: torch.device | str = "cpu",
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Convert a scipy sparse Laplacian into a torch sparse CSR tensor for :func:`photorealism_loss`.

    Parameters
    ----------
    laplacian : scipy sparse matrix, shape (N, N)
        Usually from :func:`matting_laplacian` or :func:`cached_matting_laplacian`.
    device : torch device or str
        Where the loss will be evaluated ("cpu", "cuda", ...).
    dtype : torch.float32 or torch.float64
        Must equal the dtype of the images passed to :func:`photorealism_loss`.

    Returns
    -------
    torch.Tensor, sparse CSR layout, shape (N, N)
        int32 indices when they fit (the fastest CSR product on CPU; CUDA uses
        cuSPARSE). Convert once per content image, outside the optimisation loop.

    Raises
    ------
    PhotostyleError
        If ``laplacian`` is not a square scipy sparse matrix, or ``dtype`` is not
        torch.float32 or torch.float64.
    """
    if not scipy.sparse.issparse(laplacian):
        raise PhotostyleError(
            f"laplacian must be a scipy sparse matrix, got {type(laplacian).__name__}; "
            "build it with photostyle_lib.photoreal.matting.matting_laplacian")
    if laplacian.ndim != 2 or laplacian.shape[0] != laplacian.shape[1]:
        raise PhotostyleError(f"laplacian must be a square (N, N) matrix, got shape {laplacian.shape}")
    if dtype not in (torch.float32, torch.float64):
        raise PhotostyleError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    csr = scipy.sparse.csr_matrix(laplacian)
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    index_dtype = torch.int32 if csr.nnz < np.iinfo(np.int32).max and csr.shape[0] < np.iinfo(np.int32).max \
        else torch.int64
    with warnings.catch_warnings():
        # torch flags sparse CSR as "beta" on first use; the operations used here are stable.
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.tensor(csr.indptr, dtype=index_dtype),
            torch.tensor(csr.indices, dtype=index_dtype),
            torch.tensor(csr.data, dtype=dtype),
            size=csr.shape, device=device, check_invariants=False)


class _PhotorealismLoss(torch.autograd.Function):
    """sum_c V_c^T L V_c with the analytic gradient 2 L V_c (eq. 5; L symmetric)."""

    @staticmethod
    def forward(ctx, image: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        _, channels, h, w = image.shape
        columns = image.detach().reshape(channels, h * w).t().contiguous()    # (N, C): V_c as columns
        lap_v = laplacian @ columns                                           # (N, C): L V_c
        ctx.save_for_backward(lap_v)
        ctx.image_shape = image.shape
        return (columns * lap_v).sum()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        (lap_v,) = ctx.saved_tensors
        _, channels, h, w = ctx.image_shape
        # Eq. (5): d/dV_c = 2 L V_c, reusing the forward product (valid because L = L^T).
        grad = (2.0 * grad_output) * lap_v.t().reshape(ctx.image_shape)
        return grad, None


def photorealism_loss(image: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
    """Photorealism regularisation of Luan et al., eq. (4): sum_c V_c[O]^T M_I V_c[O].

    Parameters
    ----------
    image : torch.Tensor (1, 3, H, W), float32 or float64
        The output O being optimised (values normally in [0, 1]; not checked, so
        that an optimiser may step outside). May require grad.
    laplacian : torch sparse tensor (N, N), N = H*W
        From :func:`laplacian_to_torch` on the content's Laplacian, with the same
        device and dtype as ``image``.

    Returns
    -------
    torch.Tensor, scalar, dtype of ``image``
        Unnormalised (no division by N); weight it in the total loss (the
        regularisation weight lambda = 1e4 of Luan et al. is for this scale).

    Raises
    ------
    PhotostyleError
        If ``image`` is not a float32/float64 tensor (1, 3, H, W), or ``laplacian`` is
        not a torch sparse (H*W, H*W) tensor on the image's device with its dtype.

    Notes
    -----
    Implemented as a ``torch.autograd.Function``: the forward computes L V once
    (one sparse-dense product with the 3 channels as columns) and the backward
    returns eq. (5), 2 L V_c, from that stored product, so a forward + backward
    costs one sparse product. Double backward is not supported.
    """
    if not isinstance(image, torch.Tensor):
        raise PhotostyleError(
            f"image must be a torch tensor (1, 3, H, W), got {type(image).__name__}; "
            "convert arrays with photostyle_lib.io.images.array_to_tensor")
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise PhotostyleError(f"image must be a tensor of shape (1, 3, H, W), got {tuple(image.shape)}")
    if image.dtype not in (torch.float32, torch.float64):
        raise PhotostyleError(f"image must be float32 or float64, got {image.dtype}")
    if not isinstance(laplacian, torch.Tensor) or laplacian.layout == torch.strided:
        raise PhotostyleError(
            "laplacian must be a torch sparse tensor; convert the scipy matrix once with "
            "photostyle_lib.photoreal.matting.laplacian_to_torch(L, device, dtype)")
    n = image.shape[2] * image.shape[3]
    if tuple(laplacian.shape) != (n, n):
        raise PhotostyleError(
            f"laplacian has shape {tuple(laplacian.shape)} but the image is {image.shape[2]}x{image.shape[3]} "
            f"(HxW), which needs ({n}, {n}); build the Laplacian from the content image at the output's size")
    if laplacian.device != image.device:
        raise PhotostyleError(
            f"laplacian is on {laplacian.device} but image is on {image.device}; "
            "pass device= to laplacian_to_torch")
    if laplacian.dtype != image.dtype:
        raise PhotostyleError(
            f"laplacian is {laplacian.dtype} but image is {image.dtype}; pass dtype= to laplacian_to_torch")
    return _PhotorealismLoss.apply(image, laplacian)


def laplacian_energy(output: Any, laplacian_or_content: Any, *, eps: float = 1e-7, radius: int = 1) -> float:
    """Photorealism energy sum_c V_c[O]^T L V_c[O] (eq. 4) of an array image, in numpy.

    Parameters
    ----------
    output : array (H, W, C), real, finite
        The image O whose energy is measured (usually (H, W, 3) in [0, 1]; the
        range is not checked so that affine recolourings can be measured).
    laplacian_or_content : scipy sparse (H*W, H*W) or array (H, W, 3) in [0, 1]
        A matting Laplacian, or the content image to build it from
        (with :func:`cached_matting_laplacian` and ``eps``, ``radius``).
    eps, radius
        Used only when a content image is given; see :func:`matting_laplacian`.

    Returns
    -------
    float
        The energy; >= 0 up to rounding (L is positive semi-definite) and 0 exactly
        when every window's output colours are an affine function of its content
        colours (in the limit eps -> 0).

    Raises
    ------
    PhotostyleError
        If ``output`` is not a real finite (H, W, C) array, the content is not an
        (H, W, 3) float array in [0, 1] of the output's size, or the Laplacian is not
        (H*W, H*W).
    """
    out = np.asarray(output)
    if out.ndim != 3 or not np.issubdtype(out.dtype, np.number) or np.issubdtype(out.dtype, np.complexfloating):
        raise PhotostyleError(f"output must be a real array of shape (H, W, C), got shape {out.shape}, dtype {out.dtype}")
    out = out.astype(np.float64, copy=False)
    if not np.all(np.isfinite(out)):
        raise PhotostyleError("output contains NaN or infinite values")
    if scipy.sparse.issparse(laplacian_or_content):
        lap = laplacian_or_content
    else:
        content = check_image_array("laplacian_or_content", laplacian_or_content)
        if content.shape[:2] != out.shape[:2]:
            raise PhotostyleError(
                f"output is {out.shape[0]}x{out.shape[1]} (HxW) but the content is "
                f"{content.shape[0]}x{content.shape[1]}; resize one to the other's size first")
        lap = cached_matting_laplacian(content, eps, radius)
    n = out.shape[0] * out.shape[1]
    if lap.shape != (n, n):
        raise PhotostyleError(
            f"laplacian has shape {lap.shape} but output is {out.shape[0]}x{out.shape[1]} (HxW), "
            f"which needs ({n}, {n}); build it from the content at the output's size")
    columns = out.reshape(n, -1)
    return float(np.sum(columns * (lap @ columns)))
