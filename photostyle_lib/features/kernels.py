"""Fused elementwise CPU kernels for the engine's per-layer losses (numba).

The content (eq. 2) and similarity (eq. 8) terms and the ReLU after a
tapped convolution are elementwise and memory-bound. Composed from torch
operations their forward and backward take about ten passes over a
feature map (difference, absolute value, sum; ReLU's backward, difference
again, sign, add); fused, the forward reads the map and its targets once
and the backward reads them once more and writes the gradient once.

Every function works on flat float32 numpy views of CPU tensors that share
one memory layout (:func:`flat_view` makes them, or says they cannot be
made); :mod:`photostyle_lib.features.layer_loss` falls back to torch operations when
numba is missing or the tensors do not qualify. Tests compare both paths.
Reductions accumulate in float64. The kernels run on numba's threads
(``NUMBA_NUM_THREADS``, default all cores), not on torch's; they leave
torch's thread setting as it is.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    import numba
    from numba import njit, prange
except ImportError:  # numba is optional (the [fast] extra): the callers fall back to numpy / torch
    numba = None

AVAILABLE = numba is not None


def flat_view(t: torch.Tensor, layout: torch.memory_format) -> np.ndarray | None:
    """t's elements as a 1-D float32 numpy view in ``layout`` order, or None if t isn't stored so."""
    if t.device.type != "cpu" or t.dtype != torch.float32 or t.ndim != 4:
        return None
    if not t.is_contiguous(memory_format=layout):
        return None
    v = t.permute(0, 2, 3, 1) if layout == torch.channels_last else t
    return v.detach().reshape(-1).numpy()


def layout_of(t: torch.Tensor) -> torch.memory_format | None:
    """torch.channels_last or torch.contiguous_format, whichever t is dense in (None: neither)."""
    if t.is_contiguous():
        return torch.contiguous_format
    if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return None


if AVAILABLE:
    # fastmath lets LLVM reassociate the float64 sums (vectorised); values match
    # torch's float32 reductions to ~1e-7 relative (tests)
    @njit(parallel=True, fastmath=True, cache=True)
    def _abs_diff_sum(f, t):  # pragma: no cover - compiled
        acc = 0.0
        for i in prange(f.shape[0]):
            acc += abs(np.float64(f[i]) - np.float64(t[i]))
        return acc

    @njit(parallel=True, fastmath=True, cache=True)
    def _sq_diff_sum(f, t):  # pragma: no cover - compiled
        acc = 0.0
        for i in prange(f.shape[0]):
            d = np.float64(f[i]) - np.float64(t[i])
            acc += d * d
        return acc

    @njit(parallel=True, fastmath=False, cache=True)
    def _grad(g, has_up, relu, f, tc, wc, has_c, ts, ws, has_s):  # pragma: no cover - compiled
        for i in prange(f.shape[0]):
            x = f[i]
            v = np.float32(0.0)
            if has_up and (not relu or x > 0):
                v = g[i]
            if has_c:
                v += np.float32(wc) * (x - tc[i])
            if has_s:
                d = x - ts[i]
                if d > 0:
                    v += np.float32(ws)
                elif d < 0:
                    v -= np.float32(ws)
            g[i] = v


def abs_diff_sum(f: np.ndarray, t: np.ndarray) -> float:
    """sum |f - t| over flat float32 arrays of one length."""
    return float(_abs_diff_sum(f, t))


def sq_diff_sum(f: np.ndarray, t: np.ndarray) -> float:
    """sum (f - t)^2 over flat float32 arrays of one length."""
    return float(_sq_diff_sum(f, t))


def fused_grad(g: np.ndarray, has_up: bool, relu: bool, f: np.ndarray,
               content: np.ndarray | None, content_scale: float,
               similarity: np.ndarray | None, similarity_scale: float) -> None:
    """In place: ``g = [relu'(f)] * g_up + content_scale * (f - content) + similarity_scale * sign(f - similarity)``.

    g holds the incoming gradient g_up when ``has_up`` (else it is overwritten
    from zero); ``relu`` masks g_up where f <= 0 (the ReLU after f). sign(0) = 0.
    """
    _grad(g, bool(has_up), bool(relu), f, f if content is None else content, float(content_scale),
          content is not None, f if similarity is None else similarity, float(similarity_scale),
          similarity is not None)
