"""All loss terms of one VGG layer in one autograd node: the engine's fast path.

:mod:`photostyle_lib.losses` defines the terms (eqs. 2, 3, 6-8) and is the
reference; this module computes the same values and gradients (the tests
check both against it) in the form the optimisation loop needs. The layer's
feature map passes through a node that also returns the layer's weighted
loss terms; its backward adds each term's gradient *in place* into the
gradient arriving from the deeper layers:

* content (alpha): ``2 alpha (F - T) / N``;
* style (beta), plain or masked: ``R_l S_l`` per label segment of the pixel
  rows, scattered back (masked) or accumulated by one matrix product (plain);
* similarity (gamma): ``gamma sign(F - T) / N``.

Why: on the CPU these terms are memory-bound. Composed from autograd
operations, every term allocates its own full-size gradient, autograd then
sums the gradients of a feature map used by the next layer and by up to
three terms, and a masked Gram's backward starts from a zero-filled map.
Here each term costs one pass over the map it reads; on the CPU the
content and similarity terms, and the ReLU that follows a tapped
convolution (``apply_relu``), run as fused numba kernels
(:mod:`photostyle_lib.features.kernels`; torch operations otherwise).

The node may only be inserted where the feature map's single consumer
produces a fresh gradient tensor (the next VGG module), since it writes into
that tensor: :meth:`photostyle_lib.features.vgg.VGGFeatures.forward` with ``taps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch.autograd.function import once_differentiable

from photostyle_lib.features import kernels
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.losses import MaskIndex, pixel_rows, rows_gram, rows_times

#: Order of the values returned by :func:`layer_losses`.
TERMS = ("content", "style", "similarity")


@dataclass(frozen=True)
class LayerTerms:
    """The loss terms on one layer, each with its weight (alpha, beta, gamma) folded in.

    Attributes
    ----------
    content_target
        (1, C, H, W) content features, or None (no content term).
    content_weight
        alpha.
    style_target
        (L, C, C) target Gram matrices, area-normalised as
        :func:`losses.masked_gram_matrices` (L = 1 and ``style_index`` None:
        the plain Gram of :func:`losses.gram_matrix`), or None.
    style_index
        the output's masks at this layer, or None for the plain Gram.
    style_valid
        (L,) 1.0 for labels present in both images, 0.0 otherwise
        (their terms are skipped, as in :func:`losses.gram_loss`).
    style_weight
        beta.
    style_norm
        (L,) the divisor of each output label Gram, or None for ``C * area``
        (:func:`losses.masked_gram_matrices`); the ``authors`` normalisation passes
        ``C * H * W``, ``authors_joint`` ``L_base * C * H * W`` (:func:`losses.joint_gram_label_masks`).
    style_label_weights
        (L,) weight of each label's mean squared Gram difference,
        or None for 1 (the ``authors`` normalisation: 1 / L; ``authors_joint``: 1 / L_base^2
        for a label's own block, 2 / L_base^2 for a cross-label block, which appears twice).
    similarity_target
        (1, C, H, W) content features for the L1 term, or None.
    similarity_weight
        gamma.
    """

    content_target: torch.Tensor | None = None
    content_weight: float = 0.0
    style_target: torch.Tensor | None = None
    style_index: MaskIndex | None = None
    style_valid: torch.Tensor | None = None
    style_weight: float = 0.0
    style_norm: torch.Tensor | None = None
    style_label_weights: torch.Tensor | None = None
    similarity_target: torch.Tensor | None = None
    similarity_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.style_target is not None:
            if self.style_target.ndim != 3:
                raise PhotostyleError(f"style_target must be (L, C, C), got {tuple(self.style_target.shape)}")
            labels = self.style_target.shape[0]
            if self.style_index is None and labels != 1:
                raise PhotostyleError("a plain Gram term (style_index None) takes one target Gram (1, C, C)")
            if self.style_index is not None and self.style_index.num_labels != labels:
                raise PhotostyleError(f"{self.style_index.num_labels} mask labels but {labels} target Grams")

    @cached_property
    def style_labels(self) -> tuple[tuple[int, ...], torch.Tensor | None, torch.Tensor]:
        """Worked out once per run, not per step: the labels whose terms count (non-empty in the
        output and valid), the divisors of their output Grams (None for the plain Gram: C times
        the map's pixel count) and their target Grams (K, C, C)."""
        if self.style_index is None:
            return (0,), None, self.style_target
        keep = self.style_index.areas > 0
        if self.style_valid is not None:
            keep = keep & (self.style_valid > 0)
        used = tuple(int(i) for i in torch.nonzero(keep).flatten())
        sel = torch.tensor(used, dtype=torch.long, device=self.style_target.device)
        c = self.style_target.shape[-1]
        norm = c * self.style_index.areas if self.style_norm is None else self.style_norm.to(self.style_index.areas)
        return used, norm[sel], self.style_target[sel]

    @cached_property
    def style_extras(self) -> tuple[torch.Tensor | None, float]:
        """(weights of the counted labels (K,) or None, the constant the uncounted valid labels add).

        A valid label that is empty in the output has an all-zero output Gram: its term is
        ``w mean(T^2)``, a constant with no gradient, counted so that the value equals the
        reference formula (it is 0 for the area normalisation, whose such labels are invalid)."""
        if self.style_index is None or self.style_label_weights is None:
            return None, 0.0
        used = self.style_labels[0]
        w = self.style_label_weights.to(self.style_target)
        sel = torch.tensor(used, dtype=torch.long, device=w.device)
        valid = torch.ones_like(w) if self.style_valid is None else (self.style_valid > 0).to(w)
        rest = valid.clone()
        rest[sel] = 0.0
        constant = float((rest * w * (self.style_target ** 2).mean(dim=(1, 2))).sum())
        return w[sel], constant

    @cached_property
    def style_blocks(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The counted labels' pixels cut into equal-length chunks, for the batched GPU form.

        Each label's pixel list is cut into chunks of B rows (B about 1/64 of
        all listed pixels, at least 64), its last chunk padded with row 0 at
        weight 0; a label's Gram is the sum of its chunks' Grams. Padding to
        chunks, not to the longest label, wastes at most B rows per label
        (unequal labels, as most photos have, would otherwise multiply the work).

        Returns (order, weights, chunk_label): order (J * B,) long pixel row
        indices, chunk by chunk; weights (J, B, 1) the mask values there (1 for
        hard masks), 0 on the padding; chunk_label (J,) long, the position in
        the counted labels (``style_labels[0]``) each chunk belongs to."""
        index = self.style_index
        used = self.style_labels[0]
        bounds = index.segments()
        lengths = [bounds[lab][1] - bounds[lab][0] for lab in used]
        chunk = max(64, -(-sum(lengths) // 64))
        counts = [-(-n // chunk) for n in lengths]
        dev = index.order.device
        dtype = torch.float32 if index.weights is None else index.weights.dtype
        order = torch.zeros(sum(counts) * chunk, dtype=torch.long, device=dev)
        weights = torch.zeros(sum(counts) * chunk, dtype=dtype, device=dev)
        start = 0
        for lab, n, cnt in zip(used, lengths, counts):
            a = bounds[lab][0]
            order[start:start + n] = index.order[a:a + n]
            weights[start:start + n] = 1.0 if index.weights is None else index.weights[a:a + n]
            start += cnt * chunk
        chunk_label = torch.repeat_interleave(torch.arange(len(used), device=dev),
                                              torch.tensor(counts, device=dev))
        return order, weights.view(-1, chunk, 1), chunk_label


#: Switch for the numba kernels (tests turn it off to check the torch path against them).
USE_KERNELS = {"enabled": True}

#: The accelerator form of the torch path: masked Grams as one batched product over
#: equal-length chunks of the labels' pixels (:attr:`LayerTerms.style_blocks`) instead of
#: one product per label, and the backward's term scales kept as device tensors instead of
#: read back per layer. Used on GPUs, where every small operation costs a kernel launch and
#: every read-back a wait; on the CPU only when tests ask (measured there: the per-label
#: products, unpadded, are 2-6% faster).
GPU_FORM = {"on_cpu": False}


def _gpu_form(t: torch.Tensor) -> bool:
    return t.device.type != "cpu" or GPU_FORM["on_cpu"]


def layer_losses(features: torch.Tensor, terms: LayerTerms,
                 apply_relu: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Pass ``features`` through and compute its layer's loss terms.

    Parameters
    ----------
    features
        (1, C, H, W) float, any memory format.
    terms
        what to compute on this layer.
    apply_relu
        return ``relu(features)`` instead, taking over the ReLU
        that follows a convolution (its backward is then fused with the
        terms' gradients; the caller skips its own ReLU module).

    Returns
    -------
    tuple[torch.Tensor, torch.Tensor]
        (out, values): ``features`` itself (or its ReLU), now carrying the
        terms' gradient in its backward; and (3,) weighted values in
        :data:`TERMS` order (0 for absent terms): alpha * mse, beta * sum over
        labels of the Gram mse, gamma * mean absolute error.

    Raises
    ------
    PhotostyleError
        If a content or similarity target and the features differ in shape, or the
        style masks were prepared at another size than the features.
    """
    for name, target in (("content", terms.content_target), ("similarity", terms.similarity_target)):
        if target is not None and target.shape != features.shape:
            raise PhotostyleError(f"{name} target {tuple(target.shape)} and features {tuple(features.shape)} "
                                  "differ in shape; content and output images must have the same size")
    if terms.style_index is not None and terms.style_index.size != tuple(features.shape[-2:]):
        raise PhotostyleError(f"masks are {terms.style_index.size} but the features are "
                              f"{tuple(features.shape[-2:])}; resize the masks to each layer")
    return _LayerLoss.apply(features, terms, bool(apply_relu))


def _kernel_views(features: torch.Tensor, terms: LayerTerms) -> dict | None:
    """Flat numpy views for the fused kernels, or None when they don't apply (then: torch operations)."""
    if not (kernels.AVAILABLE and USE_KERNELS["enabled"]):
        return None
    has_c = terms.content_target is not None and terms.content_weight
    has_s = terms.similarity_target is not None and terms.similarity_weight
    layout = kernels.layout_of(features)
    if layout is None or not (has_c or has_s):
        return None
    views = {"f": kernels.flat_view(features, layout)}
    for key, target, weight in (("c", terms.content_target, terms.content_weight),
                                ("s", terms.similarity_target, terms.similarity_weight)):
        views[key] = kernels.flat_view(target, layout) if target is not None and weight else None
        if target is not None and weight and views[key] is None:
            return None
    return views if views["f"] is not None else None


class _LayerLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features: torch.Tensor, terms: LayerTerms, apply_relu: bool):  # type: ignore[override]
        ctx.set_materialize_grads(False)
        values = [features.new_zeros(()) for _ in TERMS]
        numel = features.numel()
        views = _kernel_views(features, terms)
        saved: list[tuple] = []
        content = terms.content_target is not None and terms.content_weight
        similarity = terms.similarity_target is not None and terms.similarity_weight
        if content:
            scale = 2.0 * terms.content_weight / numel
            if views is not None:
                total = kernels.sq_diff_sum(views["f"], views["c"])
                values[0] = features.new_tensor(terms.content_weight * total / numel)
            else:
                diff = torch.sub(features, terms.content_target)
                flat = _flat(diff)
                values[0] = terms.content_weight * torch.dot(flat, flat) / numel
                saved.append(("scaled", diff, scale))
        if terms.style_target is not None and terms.style_weight:
            values[1], item = _style_forward(features, terms)
            saved.append(item)
        if similarity:
            if views is not None:
                total = kernels.abs_diff_sum(views["f"], views["s"])
                values[2] = features.new_tensor(terms.similarity_weight * total / numel)
            else:
                diff = torch.sub(features, terms.similarity_target)
                # abs + sum: about 3x faster than vector_norm(diff, 1) on the CPU
                values[2] = terms.similarity_weight * diff.abs().sum() / numel
                saved.append(("sign", diff, terms.similarity_weight / numel))
        ctx.saved = saved
        ctx.views = views
        ctx.terms = terms
        ctx.apply_relu = apply_relu
        ctx.numel = numel
        if apply_relu or views is not None:
            ctx.save_for_backward(features)
        ctx.shape, ctx.dtype, ctx.device = features.shape, features.dtype, features.device
        ctx.layout = kernels.layout_of(features) or torch.contiguous_format
        out = torch.relu(features) if apply_relu else features
        return out, torch.stack(values)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor | None, grad_values: torch.Tensor | None):
        views, terms = ctx.views, ctx.terms
        fmt = ctx.layout
        if grad_out is None:
            grad = torch.empty(ctx.shape, dtype=ctx.dtype, device=ctx.device, memory_format=fmt)
        elif grad_out.is_contiguous(memory_format=fmt):
            grad = grad_out  # a fresh tensor from the next module's backward: add into it
        else:
            grad = grad_out.clone(memory_format=fmt)
        if grad_values is None:
            scale = [0.0, 0.0, 0.0]
        elif views is not None or not _gpu_form(grad):
            scale = grad_values.tolist()
        else:  # on a GPU the scales stay on the device: one wait per layer less
            scale = grad_values.unbind()
        if views is not None:
            (features,) = ctx.saved_tensors
            g = kernels.flat_view(grad, fmt)
            kernels.fused_grad(g, grad_out is not None, ctx.apply_relu, views["f"],
                               views["c"], scale[0] * 2.0 * terms.content_weight / ctx.numel,
                               views["s"], scale[2] * terms.similarity_weight / ctx.numel)
        else:
            if grad_out is None:
                grad.zero_()
            elif ctx.apply_relu:
                (features,) = ctx.saved_tensors
                grad = torch.ops.aten.threshold_backward(grad, features, 0)
            for item in ctx.saved:
                if item[0] == "scaled":
                    _add_scaled(grad, item[1], scale[0], item[2])
                elif item[0] == "sign":
                    # in place: sign is idempotent, so a retained graph's second backward is still right
                    _add_scaled(grad, item[1].sign_(), scale[2], item[2])
        for item in ctx.saved:
            if item[0] == "style" and grad_values is not None:
                _style_backward(grad, item, scale[1])
        return grad, None, None


def _add_scaled(grad: torch.Tensor, t: torch.Tensor, scale: float | torch.Tensor, factor: float) -> None:
    """grad += scale * factor * t in place; ``scale`` a number or a 0-dim tensor (kept on the device)."""
    if isinstance(scale, torch.Tensor):
        grad.addcmul_(t, scale * factor)
    else:
        grad.add_(t, alpha=scale * factor)


def _flat(t: torch.Tensor) -> torch.Tensor:
    """All elements of t as a 1-D view (any order), without a copy for either memory format."""
    if kernels.layout_of(t) == torch.channels_last and not t.is_contiguous():
        return t.permute(0, 2, 3, 1).reshape(-1)
    return t.reshape(-1)


def _style_forward(features: torch.Tensor, terms: LayerTerms) -> tuple[torch.Tensor, tuple]:
    """beta * sum_l valid_l mean((G_l - T_l)^2), and what the backward needs.

    One Gram product per counted label; everything on the (K, C, C) stack
    after that is batched (small tensors: per-label Python work dominates
    them at small image sizes).
    """
    c = features.shape[1]
    rows = pixel_rows(features)
    index = terms.style_index
    used, label_norm, target = terms.style_labels
    label_weights, constant = terms.style_extras
    if not used:
        return features.new_full((), terms.style_weight * constant), ("style", None, index, used, None, terms)
    if index is None:
        data = rows if rows.is_contiguous() else rows.contiguous()
        grams = rows_gram(data).unsqueeze(0)
        norm = torch.full((1, 1, 1), float(c * data.shape[0]), dtype=features.dtype, device=features.device)
    elif _gpu_form(features):
        order, weights, chunk_label = terms.style_blocks
        weights = weights.to(features.dtype)
        data = rows.index_select(0, order).view(weights.shape[0], weights.shape[1], c).mul_(weights)
        grams = features.new_zeros(len(used), c, c).index_add_(0, chunk_label,
                                                                torch.bmm(data.transpose(1, 2), data))
        norm = label_norm.to(features.dtype).view(-1, 1, 1)
    else:
        data = index.gather(rows)
        bounds = index.segments()
        grams = torch.stack([rows_gram(data[bounds[lab][0]:bounds[lab][1]]) for lab in used])
        norm = label_norm.to(features.dtype).view(-1, 1, 1)
    diff = grams / norm - target.to(features.dtype)
    per_label = (diff * diff).mean(dim=(1, 2))
    # d/dR of w mean((R^T R / n - T)^2) = R (4 w / (C^2 n)) (G - T), G symmetric
    coefs = diff * (4.0 * terms.style_weight / (c * c) / norm)
    if label_weights is not None:
        per_label = per_label * label_weights.to(features.dtype)
        coefs = coefs * label_weights.to(features.dtype).view(-1, 1, 1)
    value = per_label.sum() + constant
    return terms.style_weight * value, ("style", data, index, used, coefs, terms)


def _style_backward(grad: torch.Tensor, item: tuple, scale: float | torch.Tensor) -> None:
    """Add the style term's gradient, times ``scale`` (a number, or a 0-dim tensor on the device)."""
    _, data, index, used, coefs, terms = item
    if coefs is None:
        return
    if isinstance(scale, torch.Tensor):  # fold a device scalar in: no wait for the device
        coefs, scale = coefs * scale, 1.0
    grad_rows = pixel_rows(grad)
    if index is not None and data.ndim == 3:  # batched chunks (J, B, C)
        order, weights, chunk_label = terms.style_blocks
        blocks = torch.bmm(data, coefs.index_select(0, chunk_label)).mul_(weights.to(data.dtype))
        grad_rows.index_add_(0, order, blocks.view(-1, blocks.shape[2]), alpha=scale)
    elif index is not None:
        index.scatter_products_(grad_rows, data, used, coefs, alpha=scale)
    elif grad_rows.is_contiguous():
        grad_rows.addmm_(data, coefs[0], alpha=scale)
    else:
        grad_rows.add_(rows_times(data, coefs[0]), alpha=scale)
