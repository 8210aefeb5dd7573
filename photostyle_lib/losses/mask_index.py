"""A mask stack indexed once per run, so that per-label Grams (eq. 7) skip the pixels outside each label.

Shapes: masks (L, H, W) in [0, 1]; pixel rows (P, C) with P = H * W, pixel p = y * W + x.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from photostyle_lib.errors import PhotostyleError
from photostyle_lib.losses.gram import rows_times


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
