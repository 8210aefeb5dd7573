"""The paper's unmasked loss terms: content (eq. 2), style (eq. 3), similarity (eq. 8), total variation.

Shapes: a feature map is (1, C, H, W) or (C, H, W); all losses are scalars,
*means* as in the authors' code (see :mod:`photostyle_lib.losses`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.losses.gram import feature_matrix, gram_matrix


def content_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Content loss, eq. (2): mean squared error between output and content features.

    Parameters
    ----------
    output : torch.Tensor, (1, C, H, W) or (C, H, W), float
        Features F_l[O] of the output at one content layer.
    target : torch.Tensor, same shape as ``output``
        Features F_l[I] of the content image at that layer.

    Returns
    -------
    torch.Tensor, scalar
        ``mean((output - target)^2)``: a mean, not eq. (2)'s 1/(2 N_l D_l) sum
        (a constant factor absorbed into alpha; see the module docstring).

    Raises
    ------
    PhotostyleError
        If the two shapes differ.
    """
    _same_shape("output features", output, "content features", target)
    return F.mse_loss(output, target)


def style_loss(output: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Style loss, eq. (3): mean squared error between the Gram matrices of output and style features.

    Parameters
    ----------
    output : torch.Tensor, (1, C, H, W) or (C, H, W), float
        Features F_l[O] of the output at one style layer.
    style : torch.Tensor, (1, C, Hs, Ws) or (C, Hs, Ws), float
        Features F_l[S] of the style image; the spatial size may differ from ``output``'s.

    Returns
    -------
    torch.Tensor, scalar
        ``mean((G[O] - G[S])^2)`` over the C x C entries, with :func:`gram_matrix`.

    Raises
    ------
    PhotostyleError
        If a feature map is not (1, C, H, W) or (C, H, W), or the channel counts differ.
    """
    if feature_matrix(output).shape[0] != feature_matrix(style).shape[0]:
        raise PhotostyleError("output and style features have different channel counts")
    return F.mse_loss(gram_matrix(output), gram_matrix(style))


def similarity_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Similarity loss, eq. (8): mean absolute (L1) error between output and content features.

    Parameters
    ----------
    output : torch.Tensor, (1, C, H, W) or (C, H, W), float
        Output features at the similarity layer.
    target : torch.Tensor, same shape as ``output``
        Content features; detached (it gets no gradient).

    Returns
    -------
    torch.Tensor, scalar
        ``mean(|output - target|)`` (eq. (8)'s sum up to a constant factor); the
        subgradient at a zero difference is 0.

    Raises
    ------
    PhotostyleError
        If the two shapes differ.
    """
    _same_shape("output features", output, "content features", target)
    return _MeanAbsoluteError.apply(output, target.detach())


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Luan et al.'s total-variation term: a *sum* of squared neighbour differences.

    ``TV(x) = sum_c sum_{i < H-1, j < W-1} (x[c,i,j] - x[c,i,j+1])^2 + (x[c,i,j] - x[c,i+1,j])^2``

    Parameters
    ----------
    image : torch.Tensor, (1, 3, H, W) or (3, H, W), float in [0, 1]
        The output image.

    Returns
    -------
    torch.Tensor, scalar >= 0
        TV(x) in squared image-value units ([0, 1] scale).

    Notes
    -----
    Their ``TVLoss`` (``neuralstyle_seg.lua``, ``updateGradInput``; the same in
    ``deepmatting_seg.lua``) has no forward value; its backward, ``strength`` times
    the differences above, is the gradient of ``strength / 2 * TV`` of the 0-255
    Caffe image: a sum over pixels (not a mean), squared, and over the top-left
    (H-1) x (W-1) pixels only (the last row's horizontal and the last column's
    vertical differences are left out). The 1/2 and the 256^2 of their image scale
    go into the weight (``presets``).
    """
    core = image[..., :-1, :-1]
    dx = core - image[..., :-1, 1:]
    dy = core - image[..., 1:, :-1]
    return (dx * dx).sum() + (dy * dy).sum()


class _MeanAbsoluteError(torch.autograd.Function):
    """mean |a - b| with a fused forward (torch.dist) and a 3-pass backward.

    The similarity loss runs on full-resolution conv1 features (64 x H x W),
    where this loss is memory-bound: the autograd composition of sub / abs /
    mean took about twice as long per step. The target b gets no gradient.
    At a - b == 0 the subgradient used is 0 (torch.sign), as for torch.abs.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b)
        return torch.dist(a, b, 1) / a.numel()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        a, b = ctx.saved_tensors
        return torch.sub(a, b).sign_().mul_(grad / a.numel()), None


def _same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise PhotostyleError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} differ in shape; "
                              "content and output images must have the same size")
