"""Gram matrices of feature maps and of (N, C) pixel rows, eq. (3)'s G_l.

Shapes: a feature map is (1, C, H, W) or (C, H, W); pixel rows are (N, C), one
row per pixel. ``G = F F^T / (C * H * W)`` (see :mod:`photostyle_lib.losses`
for why the code's normalisation, not eq. (3)'s). On the CPU, tall float32 row
matrices go through oneDNN's 1x1-convolution kernels.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from photostyle_lib.errors import PhotostyleError


def feature_matrix(features: torch.Tensor) -> torch.Tensor:
    """The (C, H*W) feature matrix F of one feature map.

    Parameters
    ----------
    features : torch.Tensor, (1, C, H, W) or (C, H, W), float
        VGG feature map of one layer.

    Returns
    -------
    torch.Tensor, (C, H*W)
        A view when the map is contiguous (NCHW), else a copy.

    Raises
    ------
    PhotostyleError
        If ``features`` is a batch of more than one map or not 3- or 4-dimensional.
    """
    if features.ndim == 4 and features.shape[0] != 1:
        raise PhotostyleError(f"expected a batch of one feature map, got batch size {features.shape[0]}")
    if features.ndim not in (3, 4):
        raise PhotostyleError(f"expected features of shape (1, C, H, W), got {tuple(features.shape)}")
    # One reshape, not features[0] then reshape: indexing's backward allocates and
    # fills a full-size zero tensor per call, costly on conv1 features.
    return features.reshape(features.shape[-3], -1)


def pixel_rows(features: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) or (C, H, W) -> (H*W, C) without copying, in either memory format.

    Channels-last features (the engine's layout on the CPU, where the
    convolutions run faster in it) are pixel rows already; NCHW features give
    the transposed view of their (C, H*W) matrix.

    Parameters
    ----------
    features : torch.Tensor, (1, C, H, W) or (C, H, W), float
        VGG feature map of one layer.

    Returns
    -------
    torch.Tensor, (H*W, C)
        Row p = y * W + x holds pixel (y, x)'s C features.
    """
    c = features.shape[-3]
    if features.ndim == 4 and features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(-1, c)
    return feature_matrix(features).T


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of a feature map, ``G = F F^T / (C * H * W)`` (eq. 3's G_l, normalised).

    Parameters
    ----------
    features : torch.Tensor, (1, C, H, W) or (C, H, W), float
        VGG feature map F of one layer, in any memory format (channels-last is read
        without a transpose).

    Returns
    -------
    torch.Tensor, (C, C), features' dtype
        Symmetric positive semi-definite; differentiable (a one-product backward).

    Raises
    ------
    PhotostyleError
        If ``features`` is not (1, C, H, W) or (C, H, W).
    """
    feature_matrix(features)  # shape checks
    rows = pixel_rows(features)
    return _Gram.apply(rows) / rows.numel()


# oneDNN's 1x1-convolution kernels beat BLAS on tall, narrow float32 products
# on the CPU (about 1.5x for C = 64): the weight gradient of a 1x1 convolution
# of a map with itself is its Gram matrix, and its input gradient is rows @ S.
_ONEDNN_MIN_ROWS = 4096


def _use_onednn(rows: torch.Tensor) -> bool:
    return (rows.device.type == "cpu" and rows.dtype == torch.float32 and rows.shape[0] >= _ONEDNN_MIN_ROWS
            and rows.is_contiguous() and torch.backends.mkldnn.is_available())


def _as_map(rows: torch.Tensor) -> torch.Tensor:
    """(N, C) contiguous -> the (1, C, 1, N) channels-last map with the same memory."""
    n, c = rows.shape
    return rows.view(1, 1, n, c).permute(0, 3, 1, 2)


def rows_gram(rows: torch.Tensor) -> torch.Tensor:
    """``rows^T rows`` of (N, C) rows, unnormalised.

    Parameters
    ----------
    rows : torch.Tensor, (N, C), float

    Returns
    -------
    torch.Tensor, (C, C)
        Symmetric (symmetrised exactly on the oneDNN path, CPU float32 with N >= 4096).
    """
    if _use_onednn(rows):
        m = _as_map(rows)
        c = rows.shape[1]
        g = torch.ops.aten.convolution_backward(m, m, rows.new_empty(c, c, 1, 1), None, (1, 1), (0, 0), (1, 1),
                                                False, (0, 0), 1, (False, True, False))[1].reshape(c, c)
        return (g + g.T) / 2  # exactly symmetric, as the backward formulas assume
    return rows.T @ rows


def rows_times(rows: torch.Tensor, sym: torch.Tensor) -> torch.Tensor:
    """``rows @ sym`` for (N, C) rows and a symmetric (C, C) matrix.

    Parameters
    ----------
    rows : torch.Tensor, (N, C), float
    sym : torch.Tensor, (C, C)
        Assumed symmetric (the oneDNN path uses it as a 1x1 convolution weight).

    Returns
    -------
    torch.Tensor, (N, C), contiguous
    """
    if _use_onednn(rows):
        m = _as_map(rows)
        c = rows.shape[1]
        out = torch.ops.aten.convolution_backward(m, m, sym.reshape(c, c, 1, 1).contiguous(), None, (1, 1), (0, 0),
                                                  (1, 1), False, (0, 0), 1, (True, False, False))[0]
        out = out.permute(0, 2, 3, 1).reshape(rows.shape)
        return out if out.is_contiguous() else out.contiguous()
    return rows @ sym


class _Gram(torch.autograd.Function):
    """``G = R^T R`` of (N, C) rows with a one-product backward ``dR = R (dG + dG^T)``."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:
        rows = rows if rows.is_contiguous() else rows.contiguous()
        ctx.save_for_backward(rows)
        return rows_gram(rows)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (rows,) = ctx.saved_tensors
        return rows_times(rows, grad + grad.T)
