"""Loss terms of the paper, on VGG feature maps.

Shapes: a feature map is a tensor (1, C, H, W) (or (C, H, W)); a mask stack
is (L, H, W) with values in [0, 1] at the feature map's resolution.

Normalisation (the paper's public code, after the PyTorch tutorial, which is
what makes beta = 1e7 a sensible style weight):

* Gram matrix ``G = F F^T / (C * H * W)`` with F the (C, H*W) feature matrix;
* content and style losses are *mean* squared errors, the similarity loss a
  *mean* absolute error.

.. note:: Eqs. (2), (3) and (8) write sums with 1/(2 N D) and 1/(2 N^2)
   factors (N = C filters, D = H*W positions, G = F F^T unnormalised). The
   content and similarity means here are 2 times eqs. (2) and (8), a constant.
   The Gram MSE is not a constant multiple of eq. (3): it is
   ``2 / (C * H * W)^2`` times it, a factor that differs per layer and with the
   image size. beta = 1e7 belongs to the code's form (the authors' run script),
   which this project keeps; eq. (3) literally would need another beta per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from photostyle_lib.errors import PhotostyleError


def _as_matrix(features: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) or (C, H, W) -> (C, H*W)."""
    if features.ndim == 4 and features.shape[0] != 1:
        raise PhotostyleError(f"expected a batch of one feature map, got batch size {features.shape[0]}")
    if features.ndim not in (3, 4):
        raise PhotostyleError(f"expected features of shape (1, C, H, W), got {tuple(features.shape)}")
    # One reshape, not features[0] then reshape: indexing's backward allocates and
    # fills a full-size zero tensor per call, costly on conv1 features.
    return features.reshape(features.shape[-3], -1)


def _pixel_rows(features: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) or (C, H, W) -> (H*W, C) without copying, in either memory format.

    Channels-last features (the engine's layout on the CPU, where the
    convolutions run faster in it) are pixel rows already; NCHW features give
    the transposed view of their (C, H*W) matrix.
    """
    c = features.shape[-3]
    if features.ndim == 4 and features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(-1, c)
    return _as_matrix(features).T


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
    _as_matrix(features)  # shape checks
    rows = _pixel_rows(features)
    return _Gram.apply(rows) / rows.numel()


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
    if _as_matrix(output).shape[0] != _as_matrix(style).shape[0]:
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


@dataclass(frozen=True)
class MaskIndex:
    """A mask stack prepared once for fast masked Gram matrices.

    Pixels where a label's mask is 0 are skipped: each label's pixels are
    listed one label after the other (``order``), so that gathering the
    feature rows in that order puts every label's pixels in one contiguous
    segment, and a label's Gram is one matrix product over its segment. One-hot
    masks then cost about one plain Gram matrix in all (plus one gather),
    soft masks cut at theta_s about (mean labels per pixel) of them -- instead
    of L full-size ones. Binary masks (hard, gold) need no multiplication by
    the mask values.

    Attributes
    ----------
    order
        (N,) long, flat pixel indices (row-major over H x W), label 0's
        pixels first, then label 1's, ...
    weights
        (N,) the mask values at those pixels, or None when all are 1.
    offsets
        L + 1 segment bounds: label l's pixels are
        ``order[offsets[l]:offsets[l + 1]]``.
    areas
        (L,) sum of squared mask values per label (the Gram's normaliser).
    size
        (H, W) the masks were prepared at.
    """

    order: torch.Tensor
    weights: torch.Tensor | None
    offsets: tuple[int, ...]
    areas: torch.Tensor
    size: tuple[int, int]

    @staticmethod
    def from_masks(masks: torch.Tensor) -> "MaskIndex":
        """Prepare a stack of masks for :func:`masked_gram_matrices`.

        Parameters
        ----------
        masks : torch.Tensor, (L, H, W), float in [0, 1]
            One mask per label at the resolution of the feature map it will be used with.

        Returns
        -------
        MaskIndex
            With ``weights`` None when every value is exactly 0 or 1 (binary masks).

        Raises
        ------
        PhotostyleError
            If ``masks`` is not 3-dimensional.
        """
        if masks.ndim != 3:
            raise PhotostyleError(f"masks must have shape (L, H, W), got {tuple(masks.shape)}")
        num, h, w = masks.shape
        flat = masks.reshape(num, -1)
        binary = bool(torch.all((flat == 0) | (flat == 1)))
        parts = [torch.nonzero(row > 0, as_tuple=False).flatten() for row in flat]
        order = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=masks.device)
        weights = None if binary else torch.cat([row[idx] for row, idx in zip(flat, parts)])
        offsets = [0]
        for idx in parts:
            offsets.append(offsets[-1] + int(idx.numel()))
        return MaskIndex(order, weights, tuple(offsets), (flat ** 2).sum(1), (int(h), int(w)))

    @property
    def num_labels(self) -> int:
        """L, the number of labels (masks) indexed."""
        return int(self.areas.shape[0])

    @property
    def sums(self) -> torch.Tensor:
        """Sum of the mask values per label.

        Returns
        -------
        torch.Tensor, (L,)
            ``sum_p m_l(p)`` in pixels (``areas`` sums their squares; the two are equal for binary masks).
        """
        if self.weights is None:
            return self.areas.clone()
        counts = torch.tensor([b - a for a, b in self.segments()], device=self.weights.device)
        label = torch.repeat_interleave(torch.arange(self.num_labels, device=self.weights.device), counts)
        return torch.zeros_like(self.areas).index_add_(0, label, self.weights.to(self.areas.dtype))

    def segments(self) -> list[tuple[int, int]]:
        """Bounds of each label's rows in the gathered matrix.

        Returns
        -------
        list of (int, int), length L
            (start, stop) of label l's rows in the output of :meth:`gather`.
        """
        return list(zip(self.offsets[:-1], self.offsets[1:]))

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Gather pixel rows label by label, times the mask values.

        Parameters
        ----------
        rows : torch.Tensor, (P, C), P = H * W
            Feature rows, pixel p = y * W + x.

        Returns
        -------
        torch.Tensor, (N, C), rows' dtype
            Row k is ``weights[k] * rows[order[k]]`` (no multiplication for binary masks).
        """
        out = rows.index_select(0, self.order)
        if self.weights is not None:
            out.mul_(self.weights.to(rows.dtype).unsqueeze(1))
        return out

    def scatter_add_(self, target: torch.Tensor, gathered: torch.Tensor, alpha: float = 1.0,
                     segment: tuple[int, int] | None = None) -> torch.Tensor:
        """Adjoint of :meth:`gather`: ``target[order] += alpha * weights * gathered`` in place.

        Parameters
        ----------
        target : torch.Tensor, (P, C)
            Accumulated into and returned.
        gathered : torch.Tensor, (N, C), or (stop - start, C) with ``segment``
            Rows in the gathered order.
        alpha : float
            Scale of the added rows.
        segment : (int, int) or None
            (start, stop) of the gathered rows given; None: all N rows.

        Returns
        -------
        torch.Tensor
            ``target``.
        """
        a, b = segment if segment is not None else (0, self.order.numel())
        if self.weights is not None:
            gathered = gathered * self.weights[a:b].to(gathered.dtype).unsqueeze(1)
        return target.index_add_(0, self.order[a:b], gathered, alpha=alpha)

    def scatter_products_(self, target: torch.Tensor, gathered: torch.Tensor, labels: Sequence[int],
                          mats: Sequence[torch.Tensor] | torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """``target += alpha * adjoint-gather(R_l @ M_l)`` for each given label l, in place.

        The backward of per-label Grams (eq. 7).

        Parameters
        ----------
        target : torch.Tensor, (P, C)
            Accumulated into and returned.
        gathered : torch.Tensor, (N, C)
            Output of :meth:`gather`.
        labels : sequence of int
            Labels l to add.
        mats : sequence of torch.Tensor or torch.Tensor (len(labels), C, C)
            One symmetric (C, C) matrix M_l per entry of ``labels``.
        alpha : float
            Scale of the added rows.

        Returns
        -------
        torch.Tensor
            ``target``.
        """
        bounds = self.segments()
        for lab, mat in zip(labels, mats):
            a, b = bounds[lab]
            if b > a:
                self.scatter_add_(target, rows_times(gathered[a:b], mat), alpha=alpha, segment=(a, b))
        return target


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
    _as_matrix(features)  # shape checks
    index = masks if isinstance(masks, MaskIndex) else MaskIndex.from_masks(masks.to(features.dtype))
    h, w = features.shape[-2:]
    if index.size != (int(h), int(w)):
        raise PhotostyleError(f"masks are {index.size[0]}x{index.size[1]} but the features are {h}x{w}; "
                              "resize the masks to each layer (masks.resize_masks)")
    c = features.shape[-3]
    grams = _SegmentGrams.apply(_pixel_rows(features), index)
    norm = (c * index.areas.to(features.dtype)).clamp_min(torch.finfo(features.dtype).tiny)
    return grams / norm.view(-1, 1, 1)


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


def authors_masked_grams(features: torch.Tensor, masks: torch.Tensor | MaskIndex) -> torch.Tensor:
    """Per-label Grams as the authors' final code: ``G_l = (F m_l)(F m_l)^T / (C * H * W)``.

    Their ``model.py`` (master, since commit 91c7fb2): (1, C, H, W) features times
    (L, 1, H, W) masks, viewed as (L, C, H*W), ``torch.bmm`` with its transpose: one
    C x C Gram per label, every label divided by the *whole map's* C * H * W, not by
    its own area (so a label's Gram carries its area fraction).

    Parameters
    ----------
    features : torch.Tensor, (1, C, H, W), float
    masks : torch.Tensor (L, H, W) in [0, 1], or MaskIndex
        At the features' resolution.

    Returns
    -------
    torch.Tensor, (L, C, C)
    """
    index = masks if isinstance(masks, MaskIndex) else MaskIndex.from_masks(masks.to(features.dtype))
    c, h, w = features.shape[-3:]
    grams = _SegmentGrams.apply(_pixel_rows(features), index)
    return grams / float(c * h * w)


def authors_masked_style_loss(output: torch.Tensor, style: torch.Tensor,
                              output_masks: torch.Tensor, style_masks: torch.Tensor) -> torch.Tensor:
    """The masked style loss of eqs. (6)-(7) as the authors' final code computes it (a dense reference).

    ``X = features * masks`` -> (L, C, H*W); ``G = bmm(X, X^T) / (C * H * W)`` per image
    (each with its own H, W); loss = ``F.mse_loss`` over the L * C * C entries, i.e.
    ``(1 / L) sum_l mean_CxC((G_l[O] - G_l[S])^2)``. No cross-label blocks; every label
    counts, also one empty in either image (its Gram is zero there). For hard masks
    exactly L^3 times the joint-Gram form of their earlier code
    (:func:`joint_gram_masked_style_loss`).

    Parameters
    ----------
    output : torch.Tensor, (1, C, H, W), float
    style : torch.Tensor, (1, C, Hs, Ws), float
    output_masks : torch.Tensor, (L, H, W), float in [0, 1]
    style_masks : torch.Tensor, (L, Hs, Ws), float in [0, 1]

    Returns
    -------
    torch.Tensor, scalar
    """
    def grams(f: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        c, h, w = f.shape[-3:]
        x = (f.reshape(1, c, h, w) * m.unsqueeze(1).to(f.dtype)).reshape(m.shape[0], c, h * w)
        return torch.bmm(x, x.transpose(1, 2)) / (c * h * w)
    return F.mse_loss(grams(output, output_masks), grams(style, style_masks))


def joint_gram_label_masks(content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask stacks whose per-label Grams are the blocks of one joint (L*C) x (L*C) Gram.

    The form of ``style_normalization="authors_joint"``: the paper's public code
    *before* its commit 91c7fb2 ("bugs fix", 4 Dec 2018), not what the paper's
    results used (:func:`authors_masked_style_loss` is their final form). That code
    multiplied (1, C, H, W) features by (L, 1, H, W) masks and took the Gram of the
    (L*C) x (H*W) result: block
    (l, l') is ``sum_p m_l(p) m_l'(p) f(p) f(p)^T``. That is the Gram of the
    features masked by ``sqrt(m_l m_l')`` -- so the blocks are per-label Grams of
    an augmented stack: the L labels themselves, then one "pair label" per
    l < l' whose masks overlap in either image (soft masks; hard masks after
    max-pooling overlap at borders). Pairs that overlap in neither image have
    zero blocks on both sides and are left out.

    Parameters
    ----------
    content : torch.Tensor, (L, H, W), float in [0, 1]
        Content masks at one layer.
    style : torch.Tensor, (L, Hs, Ws), float in [0, 1]
        Style masks at that layer.

    Returns
    -------
    content_aug : torch.Tensor, (K, H, W)
        K = L + number of overlapping pairs.
    style_aug : torch.Tensor, (K, Hs, Ws)
    weights : torch.Tensor, (K,), float64
        1 / L^2 for a label's own block and 2 / L^2 for a pair (its block appears
        twice), so that ``sum_k weights_k mean_CxC((G_k - T_k)^2)`` is the mean over
        all (L*C)^2 entries -- the joint-Gram loss.
    """
    num = content.shape[0]
    pairs = [(a, b) for a in range(num) for b in range(a + 1, num)
             if bool((content[a] * content[b]).any()) or bool((style[a] * style[b]).any())]
    c_rows, s_rows = [content], [style]
    for a, b in pairs:
        c_rows.append((content[a] * content[b]).sqrt().unsqueeze(0))
        s_rows.append((style[a] * style[b]).sqrt().unsqueeze(0))
    weights = torch.cat([torch.full((num,), 1.0 / num ** 2, dtype=torch.float64),
                         torch.full((len(pairs),), 2.0 / num ** 2, dtype=torch.float64)])
    return torch.cat(c_rows), torch.cat(s_rows), weights


def joint_gram_masked_grams(features: torch.Tensor, masks: torch.Tensor | MaskIndex, num_labels: int) -> torch.Tensor:
    """Per-label Grams of the joint-Gram form (pre-fix code): ``(F M_k)(F M_k)^T / (L * C * H * W)``.

    Parameters
    ----------
    features : torch.Tensor, (1, C, H, W), float
    masks : torch.Tensor (K, H, W) in [0, 1], or MaskIndex
        E.g. the augmented stack of :func:`joint_gram_label_masks`, at the features' size.
    num_labels : int
        L, the number of base labels.

    Returns
    -------
    torch.Tensor, (K, C, C)
    """
    return authors_masked_grams(features, masks) / float(num_labels)  # the final form's Grams, / L


def joint_gram_masked_style_loss(output: torch.Tensor, style: torch.Tensor,
                              output_masks: torch.Tensor, style_masks: torch.Tensor) -> torch.Tensor:
    """The joint-Gram masked style loss of the authors' code before their fix (a dense reference).

    ``X = features * masks`` -> (L, C, H, W) viewed as (L*C, H*W); ``G = X X^T / (L*C*H*W)``;
    loss = mean over the (L*C)^2 entries of ``(G_out - G_style)^2``. Every label is
    normalised by the whole map's size, not its own area, and with soft masks the
    cross-label blocks count too. For hard masks exactly 1 / L^3 of the final form
    (:func:`authors_masked_style_loss`). Cost O((L*C)^2 H W): for tests and small maps.

    Parameters
    ----------
    output : torch.Tensor, (1, C, H, W), float
    style : torch.Tensor, (1, C, Hs, Ws), float
    output_masks : torch.Tensor, (L, H, W), float in [0, 1]
    style_masks : torch.Tensor, (L, Hs, Ws), float in [0, 1]

    Returns
    -------
    torch.Tensor, scalar
    """
    def gram(f: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        x = (f.reshape(1, *f.shape[-3:]) * m.unsqueeze(1).to(f.dtype)).reshape(m.shape[0] * f.shape[-3], -1)
        return x @ x.T / x.numel()
    return F.mse_loss(gram(output, output_masks), gram(style, style_masks))


def luan_masked_grams(features: torch.Tensor, masks: torch.Tensor | MaskIndex) -> torch.Tensor:
    """Per-label Grams normalised as Luan et al.'s code: ``(F M_l)(F M_l)^T / (C * sum_p m_l(p))``.

    Their ``StyleLossWithSeg`` (``neuralstyle_seg.lua``) divides the Gram of the masked
    (C, H, W) features by ``nElement * mean(mask) = C * H * W * sum_p m_l(p) / (H W)``:
    the label's *sum* of mask values, where :func:`masked_gram_matrices` takes the sum of
    squares (the same for binary masks). An empty label gets an all-zero Gram (theirs
    skips the division; its masked features are zero).

    Parameters
    ----------
    features : torch.Tensor, (1, C, H, W), float
    masks : torch.Tensor (L, H, W) in [0, 1], or MaskIndex
        At the features' resolution.

    Returns
    -------
    torch.Tensor, (L, C, C)
    """
    index = masks if isinstance(masks, MaskIndex) else MaskIndex.from_masks(masks.to(features.dtype))
    c = features.shape[-3]
    grams = _SegmentGrams.apply(_pixel_rows(features), index)
    norm = (c * index.sums.to(features.dtype)).clamp_min(torch.finfo(features.dtype).tiny)
    return grams / norm.view(-1, 1, 1)


def luan_label_weights(masks: torch.Tensor) -> torch.Tensor:
    """Luan et al.'s weight of each label's style term: the mean of its content mask at the layer.

    Parameters
    ----------
    masks : torch.Tensor, (L, H, W), float in [0, 1]
        Content (output) masks at one layer.

    Returns
    -------
    torch.Tensor, (L,), float64, in [0, 1]
        ``sum_p m_l(p) / (H W)`` (``loss_j * strength * l_content_mean`` in their
        ``StyleLossWithSeg``): the label's share of the map, not normalised over labels.
    """
    return masks.reshape(masks.shape[0], -1).to(torch.float64).mean(1)


def luan_masked_style_loss(output: torch.Tensor, style: torch.Tensor,
                           output_masks: torch.Tensor, style_masks: torch.Tensor) -> torch.Tensor:
    """The masked style loss as Luan et al.'s code computes it (a dense, per-label reference).

    ``sum_l a_l mean_CxC((G_l[O] - G_l[S])^2)`` with ``a_l`` = :func:`luan_label_weights` of the
    output masks and ``G_l`` = :func:`luan_masked_grams` (output with the content masks, style
    with the style masks). Every label present in the output counts, also one empty in the
    style (its target Gram is zero).

    Parameters
    ----------
    output : torch.Tensor, (1, C, H, W), float
    style : torch.Tensor, (1, C, Hs, Ws), float
    output_masks : torch.Tensor, (L, H, W), float in [0, 1]
    style_masks : torch.Tensor, (L, Hs, Ws), float in [0, 1]

    Returns
    -------
    torch.Tensor, scalar
    """
    g_out = luan_masked_grams(output, output_masks)
    g_sty = luan_masked_grams(style, style_masks)
    weights = luan_label_weights(output_masks).to(g_out.dtype)
    return (weights * ((g_out - g_sty) ** 2).mean(dim=(1, 2))).sum()


def _areas(m: torch.Tensor | MaskIndex) -> torch.Tensor:
    if isinstance(m, MaskIndex):
        return m.areas
    return (m.reshape(m.shape[0], -1) ** 2).sum(1)


def _same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise PhotostyleError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} differ in shape; "
                              "content and output images must have the same size")
