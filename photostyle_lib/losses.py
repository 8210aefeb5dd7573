"""Loss terms of the paper, on VGG feature maps.

Shapes: a feature map is a tensor (1, C, H, W) (or (C, H, W)); a mask stack
is (L, H, W) with values in [0, 1] at the feature map's resolution.

Normalisation (the paper's public code, after the PyTorch tutorial, which is
what makes beta = 1e7 a sensible style weight):

* Gram matrix ``G = F F^T / (C * H * W)`` with F the (C, H*W) feature matrix;
* content and style losses are *mean* squared errors, the similarity loss a
  *mean* absolute error.

.. note:: Eqs. (2), (3) and (8) write sums with 1/(2 N D) and 1/(2 N^2)
   factors; the means used here differ from them by constant factors only,
   absorbed into alpha, beta and gamma.
"""

from __future__ import annotations

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

    Args:
        features: (1, C, H, W) or (C, H, W).
    Returns:
        (C, C) symmetric positive semi-definite.
    """
    _as_matrix(features)  # shape checks
    rows = _pixel_rows(features)
    return _BatchedGram.apply(rows.T.unsqueeze(0))[0] / rows.numel()


def content_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (2): mean squared error between output and content features (same shape)."""
    _same_shape("output features", output, "content features", target)
    return F.mse_loss(output, target)


def style_loss(output: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Eq. (3): mean squared error between the Gram matrices of output and style features.

    The two feature maps may have different spatial sizes but need the same C.
    """
    if _as_matrix(output).shape[0] != _as_matrix(style).shape[0]:
        raise PhotostyleError("output and style features have different channel counts")
    return F.mse_loss(gram_matrix(output), gram_matrix(style))


def similarity_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (8): mean absolute (L1) error between output and content features (same shape)."""
    _same_shape("output features", output, "content features", target)
    return _MeanAbsoluteError.apply(output, target.detach())


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels of a (1, 3, H, W) image (Luan et al.'s TV term)."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return torch.mean(dy ** 2) + torch.mean(dx ** 2)


@dataclass(frozen=True)
class _Chunks:
    """Pixels gathered into K chunks of B: flat indices (K*B,), weights or None (all 1), chunk labels (K,)."""

    gather: torch.Tensor
    weights: torch.Tensor | None
    labels: torch.Tensor
    size: int


@dataclass(frozen=True)
class MaskIndex:
    """A mask stack prepared once for fast masked Gram matrices.

    Pixels where a label's mask is 0 are skipped: each label's pixels (with
    their mask values) are gathered into fixed-size chunks, the chunks' Grams
    come from one batched matrix product, and are summed per label. One-hot
    masks then cost about one plain Gram matrix in all, soft masks cut at
    theta_s about (mean labels per pixel) of them -- instead of L full ones,
    with one gather and one batched product instead of L small ones.

    Each label's pixels fill ``full`` chunks of B pixels exactly; what is left
    (fewer than B per label) goes into ``rest``, padded with weight-0 pixels.
    For binary masks (hard, gold) the full chunks need no multiplication by
    the mask values (all 1), which saves two passes over the features.

    Attributes:
        full: chunks without padding.
        rest: the remainders, padded (weights always given).
        areas: (L,) sum of squared mask values per label (the Gram's normaliser).
        size: (H, W) the masks were prepared at.
    """

    full: _Chunks
    rest: _Chunks
    areas: torch.Tensor
    size: tuple[int, int]

    @staticmethod
    def from_masks(masks: torch.Tensor, chunk: int | None = None) -> "MaskIndex":
        if masks.ndim != 3:
            raise PhotostyleError(f"masks must have shape (L, H, W), got {tuple(masks.shape)}")
        num, h, w = masks.shape
        flat = masks.reshape(num, -1)
        if chunk is None:
            chunk = int(min(1024, max(16, -(-flat.shape[1] // max(num, 1)))))
        binary = bool(torch.all((flat == 0) | (flat == 1)))
        full_g, full_w, full_l, rest_g, rest_w, rest_l = [], [], [], [], [], []
        for lab, row in enumerate(flat):
            nz = torch.nonzero(row > 0, as_tuple=False).flatten()
            k = nz.numel() // chunk
            head, tail = nz[:k * chunk], nz[k * chunk:]
            full_g.append(head)
            full_w.append(row[head])
            full_l.append(torch.full((k,), lab, dtype=torch.long, device=masks.device))
            if tail.numel():
                pad = chunk - tail.numel()
                rest_g.append(torch.cat([tail, tail.new_zeros(pad)]))
                rest_w.append(torch.cat([row[tail], row.new_zeros(pad)]))
                rest_l.append(torch.tensor([lab], dtype=torch.long, device=masks.device))

        def pack(g, wts, labels, weighted):
            long0 = torch.zeros(0, dtype=torch.long, device=masks.device)
            gather = torch.cat(g) if g else long0
            weights = (torch.cat(wts) if wts else masks.new_zeros(0)) if weighted else None
            return _Chunks(gather, weights, torch.cat(labels) if labels else long0, chunk)

        return MaskIndex(pack(full_g, full_w, full_l, not binary), pack(rest_g, rest_w, rest_l, True),
                         (flat ** 2).sum(1), (int(h), int(w)))

    @property
    def num_labels(self) -> int:
        return int(self.areas.shape[0])


def _chunk_grams(rows: torch.Tensor, chunks: _Chunks) -> torch.Tensor:
    """(K, C, C) Grams of the chunks; rows is the (P, C) pixel-by-channel feature matrix."""
    k = chunks.labels.shape[0]
    fm = rows.index_select(0, chunks.gather)
    if chunks.weights is not None:
        fm = fm * chunks.weights.to(rows.dtype).unsqueeze(1)
    fm = fm.reshape(k, chunks.size, rows.shape[1]).transpose(1, 2)          # (K, C, B)
    return _BatchedGram.apply(fm)


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

    Args:
        features: (1, C, H, W), in any memory format (channels-last features,
            as the engine uses on the CPU, are gathered without a copy).
        masks: (L, H, W) in [0, 1] at the features' resolution, or a
            :class:`MaskIndex` prepared from such a stack (do that once per run).
    Returns:
        (L, C, C).
    """
    _as_matrix(features)  # shape checks
    index = masks if isinstance(masks, MaskIndex) else MaskIndex.from_masks(masks.to(features.dtype))
    h, w = features.shape[-2:]
    if index.size != (int(h), int(w)):
        raise PhotostyleError(f"masks are {index.size[0]}x{index.size[1]} but the features are {h}x{w}; "
                              "resize the masks to each layer (masks.resize_masks)")
    c = features.shape[-3]
    rows = _pixel_rows(features)
    grams = features.new_zeros(index.num_labels, c, c)
    for chunks in (index.full, index.rest):
        if chunks.labels.numel():
            grams = grams.index_add(0, chunks.labels, _chunk_grams(rows, chunks))
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


class _BatchedGram(torch.autograd.Function):
    """``G_k = A_k A_k^T`` for a batch A of shape (K, C, B).

    The backward uses the symmetry of G: dA = (dG + dG^T) A, one batched
    product instead of the two autograd would run for ``bmm(A, A^T)``.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a)
        return torch.bmm(a, a.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (a,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), a)


def masked_style_loss(output: torch.Tensor, style: torch.Tensor,
                      output_masks: torch.Tensor | MaskIndex, style_masks: torch.Tensor | MaskIndex) -> torch.Tensor:
    """Eqs. (6)-(7): sum over labels of the MSE between per-label Gram matrices.

    Args:
        output: (1, C, H, W) features of the output (masked with the content's masks).
        style: (1, C, Hs, Ws) features of the style image.
        output_masks: (L, H, W) content masks at this layer (hard or soft).
        style_masks: (L, Hs, Ws) style masks at this layer, same L labels.
    Returns:
        scalar; labels empty in either image contribute nothing.
    """
    g_out = masked_gram_matrices(output, output_masks)
    g_sty = masked_gram_matrices(style, style_masks)
    return gram_loss(g_out, g_sty, _areas(output_masks), _areas(style_masks))


def gram_loss(g_out: torch.Tensor, g_target: torch.Tensor,
              out_areas: torch.Tensor | None = None, target_areas: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over labels of the mean squared Gram difference, skipping labels of zero area.

    g_out, g_target: (L, C, C). Areas: (L,) or None (all labels used).
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


def _same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise PhotostyleError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} differ in shape; "
                              "content and output images must have the same size")


def style_loss_from_gram(output: torch.Tensor, style_gram: torch.Tensor) -> torch.Tensor:
    """Eq. (3) against a precomputed style Gram matrix (C, C) (computed once per run)."""
    return F.mse_loss(gram_matrix(output), style_gram)
