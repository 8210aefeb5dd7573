"""Compiled CPU kernels (numba) behind the photorealism and colour-transfer maths.

Three loops that numpy can only express with many passes over the image:

* :func:`laplacian_csr`: the matting Laplacian of Levin et al. (2008), eq. 12,
  window by window, written straight into the CSR arrays that
  :func:`photostyle_lib.photoreal.matting.matting_laplacian` returns;
* :func:`transform_derivatives` and :func:`recursive_filter_iteration`: Gastal
  and Oliveira's recursive filter for :mod:`photostyle_lib.photoreal.postprocess`;
* :func:`idt_iterations`: the rotations of Pitie et al.'s iterative distribution
  transfer for :func:`photostyle_lib.baselines.pitie_idt`, with a binned quantile
  match (see its docstring for how it departs from the exact match).

The functions here are private to the package: the modules named above call them
when numba is importable (:data:`AVAILABLE`) and keep their numpy code as the
fallback and as the reference the tests compare with. The kernels run serially on
one core, in float64, without ``fastmath``, and are deterministic. The Laplacian
and filter kernels repeat the reference's arithmetic (to rounding where the order
of a sum differs); the IDT kernel replaces the reference's sort by a histogram, a
documented approximation. numba compiles them on first use and caches the result
beside this file (``cache=True``).
"""

from __future__ import annotations

import numpy as np

try:
    from numba import njit
except ImportError:  # numba is optional (the [fast] extra): the callers fall back to numpy / torch
    njit = None

AVAILABLE = njit is not None

#: Bins per axis of the quantile match in :func:`idt_iterations`.
IDT_BINS = 4096
#: Rec. 601 luminance weights (R, G, B): Y = 0.299 R + 0.587 G + 0.114 B, in the image's units.
REC601_LUMA = np.array([0.299, 0.587, 0.114])


if AVAILABLE:
    @njit(cache=True, nogil=True)
    def _csr_constant_part(h, w, r, data, indices, indptr):  # pragma: no cover - compiled
        """Fill the CSR structure of the (h w) x (h w) Laplacian and every entry's constant part.

        Returns the offset tables (dy_min, ny, dx_min, nx): (h,) and (w,) int64, the first
        stored row / column offset of each row / column of pixels and how many are stored.
        """
        side = 2 * r + 1
        n_win = side * side
        inv_n = 1.0 / n_win
        # Row (y, x) stores the offsets (dy, dx) with both y+dy and x+dx inside, in
        # (dy, dx) lexicographic order, so columns increase; the first valid dy / dx:
        dy_min = np.empty(h, np.int64)
        ny = np.empty(h, np.int64)
        for y in range(h):
            dy_min[y] = max(-2 * r, -y)
            ny[y] = min(2 * r, h - 1 - y) - dy_min[y] + 1
        dx_min = np.empty(w, np.int64)
        nx = np.empty(w, np.int64)
        for x in range(w):
            dx_min[x] = max(-2 * r, -x)
            nx[x] = min(2 * r, w - 1 - x) - dx_min[x] + 1
        # Start every entry at its constant part, delta_ij - 1/|w| times the number of
        # windows holding both i and j; the windows then subtract their quadratic terms.
        p = 0
        for y in range(h):
            for x in range(w):
                indptr[y * w + x] = p
                for dy in range(dy_min[y], dy_min[y] + ny[y]):
                    count_y = min(y, y + dy, h - 2 * r - 1) - max(max(y, y + dy) - 2 * r, 0) + 1
                    for dx in range(dx_min[x], dx_min[x] + nx[x]):
                        count_x = min(x, x + dx, w - 2 * r - 1) - max(max(x, x + dx) - 2 * r, 0) + 1
                        weight = (1.0 - inv_n) if dy == 0 and dx == 0 else -inv_n
                        indices[p] = (y + dy) * w + x + dx
                        data[p] = weight * float(max(count_y, 0) * max(count_x, 0))
                        p += 1
        indptr[h * w] = p
        return dy_min, ny, dx_min, nx

    @njit(cache=True, nogil=True)
    def _window_terms(image, ty, tx, eps, pos_y, pos_x, cen, inv_cen):  # pragma: no cover - compiled
        """One window's factors of its quadratic term, written into ``cen`` and ``inv_cen`` (|w|, 3).

        The window has its top-left pixel at (ty, tx) and pixel a at (ty + pos_y[a], tx + pos_x[a]);
        ``cen[a]`` is pixel a's colour minus the window mean, ``inv_cen[a]`` is
        ``(Sigma + eps / |w| I)^-1 cen[a] / |w|``: the window's factors in the matting Laplacian of eq. (4).
        """
        n_win = pos_y.shape[0]
        inv_n = 1.0 / n_win
        m0 = image[ty, tx, 0]
        m1 = image[ty, tx, 1]
        m2 = image[ty, tx, 2]
        for a in range(1, n_win):
            m0 += image[ty + pos_y[a], tx + pos_x[a], 0]
            m1 += image[ty + pos_y[a], tx + pos_x[a], 1]
            m2 += image[ty + pos_y[a], tx + pos_x[a], 2]
        m0 *= inv_n
        m1 *= inv_n
        m2 *= inv_n
        s00 = s01 = s02 = s11 = s12 = s22 = 0.0
        for a in range(n_win):
            c0 = image[ty + pos_y[a], tx + pos_x[a], 0] - m0
            c1 = image[ty + pos_y[a], tx + pos_x[a], 1] - m1
            c2 = image[ty + pos_y[a], tx + pos_x[a], 2] - m2
            cen[a, 0] = c0
            cen[a, 1] = c1
            cen[a, 2] = c2
            s00 += c0 * c0
            s01 += c0 * c1
            s02 += c0 * c2
            s11 += c1 * c1
            s12 += c1 * c2
            s22 += c2 * c2
        s00 = s00 * inv_n + eps * inv_n
        s01 *= inv_n
        s02 *= inv_n
        s11 = s11 * inv_n + eps * inv_n
        s12 *= inv_n
        s22 = s22 * inv_n + eps * inv_n
        q00 = s11 * s22 - s12 * s12
        q01 = s02 * s12 - s01 * s22
        q02 = s01 * s12 - s02 * s11
        q11 = s00 * s22 - s02 * s02
        q12 = s01 * s02 - s00 * s12
        q22 = s00 * s11 - s01 * s01
        scale = inv_n / (s00 * q00 + s01 * q01 + s02 * q02)
        q00 *= scale
        q01 *= scale
        q02 *= scale
        q11 *= scale
        q12 *= scale
        q22 *= scale
        for a in range(n_win):
            c0, c1, c2 = cen[a, 0], cen[a, 1], cen[a, 2]
            inv_cen[a, 0] = q00 * c0 + q01 * c1 + q02 * c2
            inv_cen[a, 1] = q01 * c0 + q11 * c1 + q12 * c2
            inv_cen[a, 2] = q02 * c0 + q12 * c1 + q22 * c2

    @njit(cache=True, nogil=True)
    def _laplacian_csr(image, eps, r, data, indices, indptr):  # pragma: no cover - compiled
        h, w, _ = image.shape
        side = 2 * r + 1
        n_win = side * side
        k_side = 4 * r + 1
        dy_min, ny, dx_min, nx = _csr_constant_part(h, w, r, data, indices, indptr)
        cen = np.empty((n_win, 3))
        inv_cen = np.empty((n_win, 3))
        pos_y = np.empty(n_win, np.int64)
        pos_x = np.empty(n_win, np.int64)
        for a in range(n_win):
            pos_y[a] = a // side
            pos_x[a] = a % side
        row_start = np.empty(n_win, np.int64)
        slot = np.empty((n_win, n_win), np.int64)
        interior_slot = np.empty((n_win, n_win), np.int64)
        for a in range(n_win):
            for b in range(n_win):
                interior_slot[a, b] = (pos_y[b] - pos_y[a] + 2 * r) * k_side + pos_x[b] - pos_x[a] + 2 * r
        for ty in range(h - 2 * r):
            for tx in range(w - 2 * r):
                # The same sums, in the same order, as matting._laplacian_diagonals.
                _window_terms(image, ty, tx, eps, pos_y, pos_x, cen, inv_cen)
                # Where in data the entry (pixel a, pixel b) of this window lies: row a's
                # start plus the rank of b's offset among row a's stored offsets.
                interior = 2 * r <= ty <= h - 1 - 4 * r and 2 * r <= tx <= w - 1 - 4 * r
                for a in range(n_win):
                    ya = ty + pos_y[a]
                    xa = tx + pos_x[a]
                    row_start[a] = indptr[ya * w + xa]
                    for b in range(n_win):
                        if interior:   # all 9 rows store all (4r+1)^2 offsets
                            slot[a, b] = interior_slot[a, b]
                        else:
                            yb = ty + pos_y[b]
                            xb = tx + pos_x[b]
                            slot[a, b] = (yb - ya - dy_min[ya]) * nx[xa] + xb - xa - dx_min[xa]
                for a in range(n_win):
                    for b in range(a, n_win):
                        val = inv_cen[a, 0] * cen[b, 0] + inv_cen[a, 1] * cen[b, 1] + inv_cen[a, 2] * cen[b, 2]
                        data[row_start[a] + slot[a, b]] -= val
                        if b != a:  # the quadratic form is symmetric in (a, b)
                            data[row_start[b] + slot[b, a]] -= val

    @njit(cache=True, nogil=True)
    def _rf_derivatives(joint, ratio, d_h, d_v):  # pragma: no cover - compiled
        h, w, ch = joint.shape
        for y in range(h):
            for x in range(w):
                if x == 0:
                    d_h[y, x] = 1.0
                else:
                    s = 0.0
                    for c in range(ch):
                        s += abs(joint[y, x, c] - joint[y, x - 1, c])
                    d_h[y, x] = 1.0 + ratio * s
                if y == 0:
                    d_v[y, x] = 1.0
                else:
                    s = 0.0
                    for c in range(ch):
                        s += abs(joint[y, x, c] - joint[y - 1, x, c])
                    d_v[y, x] = 1.0 + ratio * s

    @njit(cache=True, nogil=True)
    def _rf_iteration(img, v_h, v_v):  # pragma: no cover - compiled
        h, w, ch = img.shape
        # Horizontal: the recursion runs along x; 8 rows at a time keep 8 * C
        # independent chains in flight instead of waiting on one.
        for y0 in range(0, h, 8):
            y1 = min(h, y0 + 8)
            for x in range(1, w):
                for y in range(y0, y1):
                    a = v_h[y, x]
                    for c in range(ch):
                        img[y, x, c] += a * (img[y, x - 1, c] - img[y, x, c])
            for x in range(w - 2, -1, -1):
                for y in range(y0, y1):
                    a = v_h[y, x + 1]
                    for c in range(ch):
                        img[y, x, c] += a * (img[y, x + 1, c] - img[y, x, c])
        # Vertical: along y; every step updates a whole contiguous row.
        for y in range(1, h):
            for x in range(w):
                a = v_v[y, x]
                for c in range(ch):
                    img[y, x, c] += a * (img[y - 1, x, c] - img[y, x, c])
        for y in range(h - 2, -1, -1):
            for x in range(w):
                a = v_v[y + 1, x]
                for c in range(ch):
                    img[y, x, c] += a * (img[y + 1, x, c] - img[y, x, c])

    @njit(cache=True, nogil=True)
    def _match_axis(x, ref, lo, hi, n_bins, change, work):  # pragma: no cover - compiled
        n = x.size
        m = ref.size
        if not hi > lo:          # every value equal: nothing to move
            change[:] = 0.0
            return
        scale = n_bins / (hi - lo)
        # Per bin b: counts (then cumulative: number of values in bins < b) and the
        # smallest and largest value, for the content (c*) and the reference (r*).
        c_cum = work[0]
        r_cum = work[1]
        c_min, c_max, r_min, r_max, low, high = work[2], work[3], work[4], work[5], work[6], work[7]
        c_cum[:] = 0.0
        r_cum[:] = 0.0
        c_min[:] = np.inf
        r_min[:] = np.inf
        c_max[:] = -np.inf
        r_max[:] = -np.inf
        for i in range(m):
            v = ref[i]
            b = min(int((v - lo) * scale), n_bins - 1)
            r_cum[b + 1] += 1.0
            r_min[b] = min(r_min[b], v)
            r_max[b] = max(r_max[b], v)
        for i in range(n):
            v = x[i]
            b = min(int((v - lo) * scale), n_bins - 1)
            c_cum[b + 1] += 1.0
            c_min[b] = min(c_min[b], v)
            c_max[b] = max(c_max[b], v)
        for b in range(n_bins):
            c_cum[b + 1] += c_cum[b]
            r_cum[b + 1] += r_cum[b]
        # Content bin b holds the content's quantiles [c_cum[b], c_cum[b+1]] / n; low[b]
        # and high[b] are where the reference holds the same quantiles, its values
        # spread linearly between the smallest and largest of each reference bin. The
        # start is taken right-continuous and the end left-continuous, so the bin lands
        # on the reference's mass, not on an empty stretch next to it. Both are merges
        # of the two cumulative histograms.
        ratio = m / n
        first = 0
        while r_cum[first + 1] == 0.0:
            first += 1
        last = n_bins - 1
        while r_cum[last + 1] == r_cum[last]:
            last -= 1
        j = first
        for b in range(n_bins):
            qm = c_cum[b] * ratio
            while j < last and r_cum[j + 1] <= qm:
                j += 1
            frac = min(1.0, max(0.0, (qm - r_cum[j]) / (r_cum[j + 1] - r_cum[j])))
            low[b] = r_min[j] + (r_max[j] - r_min[j]) * frac
        j = first
        for b in range(n_bins):
            qm = c_cum[b + 1] * ratio
            while j < last and r_cum[j + 1] < qm:
                j += 1
            frac = min(1.0, max(0.0, (qm - r_cum[j]) / (r_cum[j + 1] - r_cum[j])))
            high[b] = r_min[j] + (r_max[j] - r_min[j]) * frac
        # A bin holding a single value (ties) goes where the reference holds the middle
        # of its quantiles, as by its mid-rank; in the others, map linearly from
        # [c_min, c_max] to [low, high].
        j = first
        for b in range(n_bins):
            qm = 0.5 * (c_cum[b] + c_cum[b + 1]) * ratio
            while j < last and r_cum[j + 1] <= qm:
                j += 1
            width = c_max[b] - c_min[b]
            if width > 0.0:
                c_max[b] = (high[b] - low[b]) / width      # reused: the slope
            else:
                frac = min(1.0, max(0.0, (qm - r_cum[j]) / (r_cum[j + 1] - r_cum[j])))
                low[b] = r_min[j] + (r_max[j] - r_min[j]) * frac
                c_max[b] = 0.0
        for i in range(n):
            v = x[i]
            b = min(int((v - lo) * scale), n_bins - 1)
            change[i] = low[b] + c_max[b] * (v - c_min[b]) - v

    @njit(cache=True, nogil=True)
    def _idt(colours, reference, rotations, n_bins):  # pragma: no cover - compiled
        n = colours.shape[1]
        m = reference.shape[1]
        proj = np.empty((3, n))
        ref_proj = np.empty((3, m))
        change = np.empty((3, n))
        work = np.empty((8, n_bins + 1))
        for k in range(rotations.shape[0]):
            rot = rotations[k]
            for a in range(3):
                r0, r1, r2 = rot[0, a], rot[1, a], rot[2, a]
                lo = np.inf
                hi = -np.inf
                for i in range(n):
                    v = r0 * colours[0, i] + r1 * colours[1, i] + r2 * colours[2, i]
                    proj[a, i] = v
                    lo = min(lo, v)
                    hi = max(hi, v)
                for i in range(m):
                    v = r0 * reference[0, i] + r1 * reference[1, i] + r2 * reference[2, i]
                    ref_proj[a, i] = v
                    lo = min(lo, v)
                    hi = max(hi, v)
                _match_axis(proj[a], ref_proj[a], lo, hi, n_bins, change[a], work)
            for c in range(3):
                r0, r1, r2 = rot[c, 0], rot[c, 1], rot[c, 2]
                for i in range(n):
                    colours[c, i] += r0 * change[0, i] + r1 * change[1, i] + r2 * change[2, i]


def laplacian_csr(image: np.ndarray, eps: float, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays (data, indices, indptr) of the matting Laplacian (Levin et al. 2008, eq. 12).

    Same definition and per-window arithmetic as
    :func:`photostyle_lib.photoreal.matting._laplacian_diagonals`; arguments are not checked
    (:func:`photostyle_lib.photoreal.matting.matting_laplacian` checks them).

    Parameters
    ----------
    image : numpy.ndarray, (H, W, 3), float64, C-contiguous
        The content image in [0, 1]; H and W >= 2r+1.
    eps : float > 0
        Covariance regulariser, squared image-value units.
    r : int >= 1
        Window radius in pixels.

    Returns
    -------
    data : numpy.ndarray, (nnz,), float64
    indices : numpy.ndarray, (nnz,), int32 (int64 if H*W*(4r+1)^2 would overflow int32)
        Row y*W + x holds the columns of the pixels within 2r in both axes, sorted.
    indptr : numpy.ndarray, (H*W + 1,), indices' dtype
    """
    h, w, _ = image.shape
    n = h * w
    ky = sum(min(2 * r, h - 1 - y) - max(-2 * r, -y) + 1 for y in range(h))
    kx = sum(min(2 * r, w - 1 - x) - max(-2 * r, -x) + 1 for x in range(w))
    nnz = ky * kx
    index_dtype = np.int32 if max(nnz, n) < np.iinfo(np.int32).max else np.int64
    data = np.empty(nnz)
    indices = np.empty(nnz, dtype=index_dtype)
    indptr = np.empty(n + 1, dtype=index_dtype)
    _laplacian_csr(image, float(eps), int(r), data, indices, indptr)
    return data, indices, indptr


def transform_derivatives(joint: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Domain-transform derivatives (d_h, d_v) of a joint image (Gastal and Oliveira 2011).

    ``d_h[y, x] = 1 + ratio * sum_c |J_c(y, x) - J_c(y, x-1)|`` (1 at x = 0), d_v likewise
    along columns.

    Parameters
    ----------
    joint : numpy.ndarray, (H, W, C), float
        The joint (guide) image J in [0, 1]; converted to contiguous float64.
    ratio : float > 0
        sigma_s / sigma_r (pixels per image-value unit).

    Returns
    -------
    d_h, d_v : numpy.ndarray, (H, W), float64, >= 1
    """
    h, w = joint.shape[:2]
    d_h = np.empty((h, w))
    d_v = np.empty((h, w))
    _rf_derivatives(np.ascontiguousarray(joint, dtype=np.float64), float(ratio), d_h, d_v)
    return d_h, d_v


def recursive_filter_iteration(image: np.ndarray, v_h: np.ndarray, v_v: np.ndarray) -> None:
    """One iteration of the recursive filter, in place: all rows, then all columns.

    Each 1-D pass runs ``Y(n) += V(n) (Y(n-1) - Y(n))`` forwards, then
    ``Y(n) += V(n+1) (Y(n+1) - Y(n))`` backwards, the arithmetic of
    :func:`photostyle_lib.photoreal.postprocess._recursive_pass`.

    Parameters
    ----------
    image : numpy.ndarray, (H, W, C), float64, C-contiguous
        Filtered in place.
    v_h, v_v : numpy.ndarray, (H, W), float64 in [0, 1]
        Link weights: v_h[y, x] between (y, x-1) and (y, x), v_v[y, x] between
        (y-1, x) and (y, x).
    """
    _rf_iteration(image, v_h, v_v)


def idt_iterations(colours: np.ndarray, reference: np.ndarray, rotations: np.ndarray,
                   n_bins: int = IDT_BINS) -> None:
    """Pitie et al.'s IDT rotations, in place on ``colours``.

    For each rotation R, on each axis a (coordinates x = R[:, a]^T colours and
    r = R[:, a]^T reference), on n_bins equal bins spanning [min(x, r), max(x, r)]:
    the content values in a bin hold a range of the content's quantiles; they are
    spread linearly, in order, from their smallest to their largest, over the
    stretch where the reference holds the same quantiles (the reference's values
    in turn taken spread linearly between the smallest and largest of each of its
    bins). A bin holding a single value goes where the reference holds the
    middle of its quantiles, as by its mid-rank.

    Parameters
    ----------
    colours : numpy.ndarray, (3, N), float64, C-contiguous
        The content's colours (RGB in [0, 1] at the start), updated.
    reference : numpy.ndarray, (3, M), float64
        The style's colours.
    rotations : numpy.ndarray, (K, 3, 3), float64
        Columns the rotated axes, applied in order.
    n_bins : int >= 1
        Histogram bins per axis (default :data:`IDT_BINS`).

    Notes
    -----
    This departs from the exact match of
    :func:`photostyle_lib.baselines._match_1d` (mid-ranks and the sorted
    reference) only inside a bin holding several distinct values, where a value
    lands by its position between them rather than by its rank; with bins fine
    enough that each holds one distinct value the two agree up to the reference's
    spread inside its bins. It costs O(N + M + n_bins) per axis instead of a
    sort; the map is increasing, so equal values move together and the order of
    values is kept, and a content equal to the reference is left as it is (to
    rounding).
    (python-color-transfer's ``pdf_transfer`` also matches on histograms, of 300 bins.)
    """
    _idt(colours, reference, rotations, int(n_bins))
