"""Other normalisations of the masked style loss: the authors' final and pre-fix code, and Luan et al.'s.

Each comes as the per-label Grams the engine's fused nodes use and as a dense
reference loss for tests. Shapes: features (1, C, H, W); masks (L, H, W) in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from photostyle_lib.losses.gram import pixel_rows
from photostyle_lib.losses.mask_index import MaskIndex
from photostyle_lib.losses.masked import segment_grams


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
    grams = segment_grams(pixel_rows(features), index)
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
    grams = segment_grams(pixel_rows(features), index)
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
