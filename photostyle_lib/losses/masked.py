"""The masked style loss of eqs. (6)-(7): per-label Gram matrices, area-normalised, and their distance.

Shapes: features (1, C, H, W); masks (L, H, W) in [0, 1] at the features'
resolution, or a :class:`~photostyle_lib.losses.mask_index.MaskIndex` of them.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.losses.gram import feature_matrix, pixel_rows, rows_gram
from photostyle_lib.losses.mask_index import MaskIndex


class _SegmentGrams(torch.autograd.Function):
    """Unnormalised per-label Grams ``G_l = R_l^T R_l`` of gathered rows; (L, C, C).

    The backward gathers nothing again: it multiplies each saved segment by
    ``dG_l + dG_l^T`` (G is symmetric) and scatters the result back.
    """

    @staticmethod
    def forward(ctx, rows: torch.Tensor, index: MaskIndex) -> torch.Tensor:
        gathered = index.gather(rows)
        c = rows.shape[1]
        grams = rows.new_zeros(index.num_labels, c, c)
        for lab, (a, b) in enumerate(index.segments()):
            if b > a:
                grams[lab] = rows_gram(gathered[a:b])
        ctx.save_for_backward(gathered)
        ctx.index = index
        ctx.rows_shape = rows.shape
        return grams

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (gathered,) = ctx.saved_tensors
        sym = grad + grad.transpose(1, 2)
        out = gathered.new_zeros(ctx.rows_shape)
        return ctx.index.scatter_products_(out, gathered, range(ctx.index.num_labels), sym), None


def segment_grams(rows: torch.Tensor, index: MaskIndex) -> torch.Tensor:
    """Unnormalised per-label Grams ``G_l = R_l^T R_l`` of the rows each label's mask keeps.

    Parameters
    ----------
    rows : torch.Tensor, (P, C), float
        Feature rows (:func:`~photostyle_lib.losses.gram.pixel_rows`), P = H * W.
    index : MaskIndex
        The labels' masks at the same H x W.

    Returns
    -------
    torch.Tensor, (L, C, C), rows' dtype
        ``sum_p m_l(p)^2 f(p) f(p)^T``; all zero for an empty label. Differentiable
        in ``rows`` (a one-product-per-label backward).
    """
    return _SegmentGrams.apply(rows, index)


def masked_gram_matrices(features: torch.Tensor, masks: torch.Tensor | MaskIndex) -> torch.Tensor:
    """Per-label Gram matrices of eq. (7): ``G_c = (F M_c)(F M_c)^T``, area-normalised.

    ``G_c = sum_p m_c(p)^2 f(p) f(p)^T / (C * sum_p m_c(p)^2)``, i.e. the Gram of
    the masked features divided by C times the label's (squared-mask) area
    instead of by C * H * W. A label's Gram is then the feature statistics
    *of its region*, whatever the region's size, so a small region of the
    content is pushed toward its style region's statistics, not toward a
    smaller copy of them. With one all-ones mask this is exactly
    :func:`gram_matrix`; hard masks and one-hot soft masks give the same result.
    Labels with zero area get an all-zero Gram.

    Parameters
    ----------
    features : torch.Tensor, (1, C, H, W), float
        In any memory format (channels-last features, as the engine uses on the
        CPU, are gathered without a transpose).
    masks : torch.Tensor (L, H, W) in [0, 1], or MaskIndex
        At the features' resolution, or a :class:`MaskIndex` prepared from such a
        stack (do that once per run).

    Returns
    -------
    torch.Tensor, (L, C, C), features' dtype

    Raises
    ------
    PhotostyleError
        If ``features`` is not (1, C, H, W) or (C, H, W), ``masks`` is not (L, H, W),
        or the masks' H x W differ from the features'.

    Notes
    -----
    The area normalisation departs from the authors' code, which divides every
    label by the whole map's size (:func:`authors_masked_grams`), and from Luan et
    al.'s Lua code, which divides by the sum of the mask values (:func:`luan_masked_grams`).
    """
    feature_matrix(features)  # shape checks
    index = masks if isinstance(masks, MaskIndex) else MaskIndex.from_masks(masks.to(features.dtype))
    h, w = features.shape[-2:]
    if index.size != (int(h), int(w)):
        raise PhotostyleError(f"masks are {index.size[0]}x{index.size[1]} but the features are {h}x{w}; "
                              "resize the masks to each layer (masks.resize_masks)")
    c = features.shape[-3]
    grams = segment_grams(pixel_rows(features), index)
    norm = (c * index.areas.to(features.dtype)).clamp_min(torch.finfo(features.dtype).tiny)
    return grams / norm.view(-1, 1, 1)


def masked_style_loss(output: torch.Tensor, style: torch.Tensor,
                      output_masks: torch.Tensor | MaskIndex, style_masks: torch.Tensor | MaskIndex) -> torch.Tensor:
    """Masked style loss, eqs. (6)-(7): sum over labels of the MSE between per-label Gram matrices.

    Parameters
    ----------
    output : torch.Tensor, (1, C, H, W), float
        Features of the output (masked with the content's masks).
    style : torch.Tensor, (1, C, Hs, Ws), float
        Features of the style image.
    output_masks : torch.Tensor (L, H, W) in [0, 1], or MaskIndex
        Content masks at this layer (hard or soft).
    style_masks : torch.Tensor (L, Hs, Ws) in [0, 1], or MaskIndex
        Style masks at this layer, the same L labels.

    Returns
    -------
    torch.Tensor, scalar
        ``sum_l mean_CxC((G_l[O] - G_l[S])^2)`` with :func:`masked_gram_matrices`;
        labels empty in either image contribute nothing.

    Raises
    ------
    PhotostyleError
        If a shape is wrong, masks and features differ in size, or the two mask
        stacks have different numbers of labels.
    """
    g_out = masked_gram_matrices(output, output_masks)
    g_sty = masked_gram_matrices(style, style_masks)
    return gram_loss(g_out, g_sty, _areas(output_masks), _areas(style_masks))


def gram_loss(g_out: torch.Tensor, g_target: torch.Tensor,
              out_areas: torch.Tensor | None = None, target_areas: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over labels of the mean squared Gram difference, skipping labels of zero area.

    Parameters
    ----------
    g_out, g_target : torch.Tensor, (L, C, C)
        Per-label Grams of the output and the target (style).
    out_areas, target_areas : torch.Tensor (L,) or None
        Label areas (any positive measure) in each image; a label whose area is 0 in
        either is skipped. None (either one): all labels are used.

    Returns
    -------
    torch.Tensor, scalar
        ``sum_l mean_CxC((g_out[l] - g_target[l])^2)`` over the used labels.

    Raises
    ------
    PhotostyleError
        If the two stacks differ in shape (content and style masks with different labels).
    """
    if g_out.shape != g_target.shape:
        raise PhotostyleError(f"Gram stacks differ in shape: {tuple(g_out.shape)} vs {tuple(g_target.shape)}; "
                              "content and style masks must share their labels")
    per_label = ((g_out - g_target) ** 2).mean(dim=(1, 2))
    if out_areas is not None and target_areas is not None:
        valid = (out_areas > 0) & (target_areas > 0)
        per_label = per_label * valid.to(per_label.dtype)
    return per_label.sum()


def _areas(m: torch.Tensor | MaskIndex) -> torch.Tensor:
    if isinstance(m, MaskIndex):
        return m.areas
    return (m.reshape(m.shape[0], -1) ** 2).sum(1)
