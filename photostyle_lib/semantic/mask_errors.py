"""Controlled segmentation errors on hard label masks, and soft masks made from them (section 3.3).

The paper's central claim for soft masks is robustness: "if the semantic
segmentation is inaccurate, the results will be even worse [with hard masks]
... we propose soft semantic segmentation" (section 3.3), illustrated by
Figure 5 (a bridge whose right part was given a wrong label; "unnatural style
split around edges"). Without an ADE20K checkpoint the claim can still be
measured under errors we control: take the gold masks of a pair, corrupt
them with a seeded error model, and give the engine either the corrupted
one-hot masks ("hard") or soft masks derived from them ("soft").

The error model (pure functions on (C, H, W) one-hot arrays)
------------------------------------------------------------
* :func:`boundary_shift` -- one label grows into its neighbours (``k > 0``)
  or shrinks and gives its border to them (``k < 0``) by ``|k|`` pixels
  (Euclidean distance between pixel centres): a segmenter that puts a
  boundary in the wrong place.
* :func:`region_swap` -- a *connected* part holding ``fraction`` of one
  label's pixels is given another label: the paper's bridge. The part grows
  from one side of the region (a flood fill ordered along a seeded
  direction), so it is a contiguous slice such as "the right part".
* :func:`speckle` -- ``fraction`` of the labelled pixels, chosen uniformly,
  take a wrong label uniformly among the others: scattered misclassified
  pixels.

Pixels with no label (an all-zero column: the content's labels the style
lacks, dropped by ``masks.align_labels``) are never labelled nor relabelled.
Every random choice comes from ``numpy.random.default_rng(seed)``.

Soft masks from a hard mask (:func:`soft_from_hard`)
----------------------------------------------------
A segmenter's probabilities are needed for soft masks; there is none here.
We derive a per-label probability from the **signed distance to the label's
boundary** with a softmax at a temperature ``T`` in pixels::

    d_c(x) = +(dist(x, outside R_c) - 1/2)   for x in R_c
             -(dist(x, R_c) - 1/2)           otherwise       (px; -inf if R_c is empty)
    p_c(x) = exp(d_c(x) / T) / sum_j exp(d_j(x) / T)

so that at signed distance s (px, positive inside) from a straight boundary
between two labels ``p = sigmoid(2 s / T)``: certain deep inside a region,
50/50 on the boundary, and ``T -> 0`` gives back the hard mask. The
probabilities then go through the same theta_s cut as the segmenter's
(``cut.semantic_masks``, the pipeline of ``cut.SOFT_PIPELINE``):
:func:`soft_masks_from_hard`.

Why a distance softmax and not a classifier on trained features (the
alternative: fit a per-image classifier, e.g. logistic regression on VGG
features, to the corrupted labels and use its probabilities): a classifier
learns the *image*, so it would partly undo the errors we inject (the
swapped half of the bridge looks like the other half) and its softness
would depend on the network, the features and the fit; the measurement would
then mix "soft masks" with "a second segmenter correcting the first". The
distance model has one knob with a unit (T px), no training, no randomness,
and it isolates the property the paper credits soft masks with: graded
membership where labels meet. It is also honest about what it cannot do: a
segmenter can be unsure in the *interior* of a wrongly labelled region; this
model is sure there (a stricter test of the claim).

This module is maths: it imports masks and the cut (``semantic/cut.py``), never
the engine or the runner.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from photostyle_lib.checks import check_choice, check_int, check_number
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.semantic.masks import SemanticMasks

__all__ = [
    "ERROR_KINDS", "TARGETS", "RENDERS", "UNLABELLED",
    "label_map", "one_hot", "boundary_shift", "region_swap", "speckle", "apply_error",
    "signed_distances", "soft_from_hard", "soft_masks_from_hard", "hard_at_size", "masks_with_errors",
    "check_error_spec",
]

#: Error kinds of :func:`apply_error`; "none" leaves the masks as they are.
ERROR_KINDS = ("none", "boundary", "swap", "speckle")
#: Which image's masks :func:`masks_with_errors` corrupts.
TARGETS = ("content", "style", "both")
#: How corrupted masks are handed to the engine.
RENDERS = ("hard", "soft")
#: Name of the extra channel that carries unlabelled pixels through the theta_s cut.
UNLABELLED = "__unlabelled__"


# --------------------------------------------------------------------------- one-hot <-> label map


def label_map(masks: Any) -> np.ndarray:
    """(C, H, W) one-hot stack (array or tensor, values 0/1) -> (H, W) int64 labels, -1 where no label.

    Raises PhotostyleError when a pixel has more than one label or values other than 0 and 1.

    Raises
    ------
    PhotostyleError
        If ``masks`` is not a (C, H, W) stack with C >= 1, or not hard (values other than 0 and 1,
        or a pixel with two labels).
    """
    m = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if m.ndim != 3 or m.shape[0] < 1:
        raise PhotostyleError(f"masks must be a (C, H, W) one-hot stack with C >= 1, got shape {m.shape}")
    if not np.all((m == 0) | (m == 1)) or np.any(m.sum(0) > 1):
        raise PhotostyleError("masks must be hard (one-hot: values 0 or 1, at most one label per pixel); "
                              "make them with masks.read_color_mask or mask_errors.hard_at_size")
    lab = m.argmax(0).astype(np.int64)
    lab[m.sum(0) == 0] = -1
    return lab


def one_hot(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """(H, W) int labels in [-1, num_labels) -> (num_labels, H, W) float32 one-hot (-1: an all-zero column)."""
    lab = np.asarray(labels)
    return (lab[None] == np.arange(num_labels)[:, None, None]).astype(np.float32)


def _present(lab: np.ndarray, num_labels: int) -> np.ndarray:
    return np.flatnonzero(np.bincount(lab[lab >= 0].ravel(), minlength=num_labels) > 0)


def _pick_label(lab: np.ndarray, num_labels: int, rng: np.random.Generator, label: int | None,
                need_other: bool = True) -> int:
    """``label`` checked, or a seeded choice among the present labels with probability proportional to area."""
    present = _present(lab, num_labels)
    if need_other and present.size < 2:
        raise PhotostyleError("this error needs at least two labels present in the mask; the mask has "
                              f"{present.size}")
    if label is not None:
        label = check_int("label", label, low=0, high=num_labels - 1)
        if label not in present:
            raise PhotostyleError(f"label {label} has no pixels in the mask; choose one of {present.tolist()}")
        return label
    area = np.bincount(lab[lab >= 0].ravel(), minlength=num_labels)[present].astype(np.float64)
    return int(rng.choice(present, p=area / area.sum()))


# --------------------------------------------------------------------------- the error model


def boundary_shift(masks: Any, k: int, *, label: int | None = None, seed: int = 0) -> np.ndarray:
    """Move one label's boundary by ``k`` pixels: dilate it into its neighbours (k > 0) or erode it (k < 0).

    Dilation: every labelled pixel of another label whose centre lies within
    Euclidean distance ``k`` of the label's region takes the label. Erosion:
    every pixel of the label within distance ``|k|`` of a pixel of another
    label takes the label of its nearest such pixel (its neighbour). A
    straight boundary thus moves by exactly ``|k|`` rows or columns.

    Parameters
    ----------
    masks
        (C, H, W) one-hot stack (0/1; all-zero columns = unlabelled, left as they are).
    k
        signed shift in pixels; 0 returns the masks unchanged.
    label
        the label moved; None: a seeded choice, probability proportional to area.
    seed
        seeds the choice of label.

    Returns
    -------
    np.ndarray
        (C, H, W) float32 one-hot stack, the same unlabelled pixels.

    Raises
    ------
    PhotostyleError
        If ``k`` is not an integer, or as :func:`label_map`.
    """
    lab = label_map(masks)
    c = masks.shape[0]
    k = check_int("k", k)
    if k == 0:
        return one_hot(lab, c)
    target = _pick_label(lab, c, np.random.default_rng(seed), label)
    region = lab == target
    out = lab.copy()
    if k > 0:
        dist = ndimage.distance_transform_edt(~region)
        out[(dist <= k) & (lab >= 0)] = target
    else:
        others = (lab >= 0) & ~region
        dist, (iy, ix) = ndimage.distance_transform_edt(~others, return_indices=True)
        move = region & (dist <= -k)
        out[move] = lab[iy[move], ix[move]]
    return one_hot(out, c)


def region_swap(masks: Any, fraction: float, *, label: int | None = None, to: int | None = None,
                seed: int = 0) -> np.ndarray:
    """Give a connected part holding ``fraction`` of one label's pixels another label (Figure 5's bridge).

    The part is grown by a flood fill inside the label's region, 4-connected,
    always taking next the frontier pixel farthest along a seeded random
    direction; it starts at the region's extreme pixel along that direction
    in its largest connected component. So it is a contiguous slice of the
    region seen from one side ("the right part of the bridge"), connected as
    long as it fits in that component (further components are then taken
    whole or in part, largest first).

    Parameters
    ----------
    masks
        (C, H, W) one-hot stack.
    fraction
        in [0, 1]; exactly ``round(fraction * area)`` pixels change label.
    label
        the region (None: seeded, probability proportional to area).
    to
        the wrong label (None: seeded, uniform among the other present labels).
    seed
        seeds the choices and the direction.

    Returns
    -------
    np.ndarray
        (C, H, W) float32 one-hot stack.

    Raises
    ------
    PhotostyleError
        If ``fraction`` is not in [0, 1], ``to`` is not a label index or is the region's own label,
        or as :func:`label_map`.
    """
    lab = label_map(masks)
    c = masks.shape[0]
    fraction = check_number("fraction", fraction, low=0, high=1)
    rng = np.random.default_rng(seed)
    src = _pick_label(lab, c, rng, label)
    others = [int(x) for x in _present(lab, c) if x != src]
    if to is None:
        to = int(rng.choice(others))
    elif check_int("to", to, low=0, high=c - 1) == src:
        raise PhotostyleError(f"to={to} is the swapped region's own label; give another label")
    region = lab == src
    n = int(round(fraction * int(region.sum())))
    if n == 0:
        return one_hot(lab, c)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    yy, xx = np.mgrid[0:lab.shape[0], 0:lab.shape[1]]
    score = np.cos(angle) * xx + np.sin(angle) * yy
    comps, num = ndimage.label(region)
    sizes = np.bincount(comps.ravel(), minlength=num + 1)[1:]
    chosen = np.zeros_like(region)
    taken = 0
    for comp in np.argsort(-sizes, kind="stable") + 1:
        if taken >= n:
            break
        taken += _flood_slice(comps == comp, score, n - taken, chosen)
    out = lab.copy()
    out[chosen] = to
    return one_hot(out, c)


def _flood_slice(region: np.ndarray, score: np.ndarray, n: int, chosen: np.ndarray) -> int:
    """Mark up to ``n`` pixels of a connected ``region`` in ``chosen``, flooding from its highest score."""
    h, w = region.shape
    ys, xs = np.nonzero(region)
    start = int(np.argmax(score[ys, xs]))
    heap = [(-score[ys[start], xs[start]], int(ys[start]), int(xs[start]))]
    seen = np.zeros_like(region)
    seen[ys[start], xs[start]] = True
    taken = 0
    while heap and taken < n:
        _, y, x = heapq.heappop(heap)
        chosen[y, x] = True
        taken += 1
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            v, u = y + dy, x + dx
            if 0 <= v < h and 0 <= u < w and region[v, u] and not seen[v, u]:
                seen[v, u] = True
                heapq.heappush(heap, (-score[v, u], v, u))
    return taken


def speckle(masks: Any, fraction: float, *, seed: int = 0) -> np.ndarray:
    """Relabel ``fraction`` of the labelled pixels, each to a label drawn uniformly among the other present ones.

    Parameters
    ----------
    masks
        (C, H, W) one-hot stack with at least two labels present.
    fraction
        in [0, 1]; exactly ``round(fraction * labelled pixels)`` pixels change label.
    seed
        seeds which pixels and their new labels.

    Returns
    -------
    np.ndarray
        (C, H, W) float32 one-hot stack.

    Raises
    ------
    PhotostyleError
        If ``fraction`` is not in [0, 1], fewer than two labels are present, or as :func:`label_map`.
    """
    lab = label_map(masks)
    c = masks.shape[0]
    fraction = check_number("fraction", fraction, low=0, high=1)
    present = _present(lab, c)
    flat = np.flatnonzero(lab.ravel() >= 0)
    n = int(round(fraction * flat.size))
    if n == 0:
        return one_hot(lab, c)
    if present.size < 2:
        raise PhotostyleError("speckle needs at least two labels present in the mask")
    rng = np.random.default_rng(seed)
    idx = rng.choice(flat, size=n, replace=False)
    old = lab.ravel()[idx]
    # a uniform draw among the present labels other than the pixel's own: shift past it
    pos = np.searchsorted(present, old)
    draw = rng.integers(0, present.size - 1, size=n)
    draw = draw + (draw >= pos)
    out = lab.ravel().copy()
    out[idx] = present[draw]
    return one_hot(out.reshape(lab.shape), c)


def check_error_spec(kind: str, severity: float) -> tuple[str, float]:
    """``(kind, severity)`` checked; severity 0 (or kind "none") is written ``("none", 0)``.

    Severity units: ``boundary`` pixels (an integer, the signed shift k);
    ``swap`` and ``speckle`` a fraction in [0, 1].

    Raises
    ------
    PhotostyleError
        If ``kind`` is not one of :data:`ERROR_KINDS`, or the severity is not an integer (boundary)
        or in [0, 1] (swap, speckle).
    """
    kind = check_choice("error kind", kind, ERROR_KINDS)
    if kind == "boundary":
        severity = float(check_int("boundary severity (pixels)", severity))
    elif kind in ("swap", "speckle"):
        severity = check_number(f"{kind} severity (fraction)", severity, low=0, high=1)
    else:
        severity = 0.0
    return ("none", 0.0) if severity == 0 else (kind, float(severity))


def apply_error(masks: Any, kind: str, severity: float, *, seed: int = 0) -> np.ndarray:
    """One error of :data:`ERROR_KINDS` at ``severity`` (units: :func:`check_error_spec`), seeded."""
    kind, severity = check_error_spec(kind, severity)
    if kind == "boundary":
        return boundary_shift(masks, int(severity), seed=seed)
    if kind == "swap":
        return region_swap(masks, severity, seed=seed)
    if kind == "speckle":
        return speckle(masks, severity, seed=seed)
    return one_hot(label_map(masks), masks.shape[0])


# --------------------------------------------------------------------------- soft masks


def signed_distances(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """(H, W) int labels -> (num_labels, H, W) float64 signed distances d_c to each region's boundary, px.

    ``d_c = dist(x, outside R_c) - 1/2`` inside R_c and ``-(dist(x, R_c) - 1/2)``
    outside (Euclidean distances between pixel centres), so pixels on either
    side of a boundary get +1/2 and -1/2; ``-inf`` for a label with no pixels.
    Label -1 is not a region (its pixels are outside every R_c).
    """
    lab = np.asarray(labels)
    out = np.full((num_labels, *lab.shape), -np.inf)
    for c in range(num_labels):
        region = lab == c
        if not region.any():
            continue
        if region.all():
            out[c] = np.inf
            continue
        inside = ndimage.distance_transform_edt(region)
        outside = ndimage.distance_transform_edt(~region)
        out[c] = np.where(region, inside - 0.5, -(outside - 0.5))
    return out


def soft_from_hard(masks: Any, temperature: float) -> np.ndarray:
    """Per-label probabilities from a hard mask: a softmax of signed distances at ``temperature`` px.

    ``p_c = softmax_c(d_c / T)`` over the labels with :func:`signed_distances`
    d_c; unlabelled pixels (all-zero columns) stay all zero. Near a straight
    two-label boundary ``p = sigmoid(2 s / T)`` at signed distance s px.

    Parameters
    ----------
    masks
        (C, H, W) one-hot stack.
    temperature
        T > 0, pixels (the width of the transition); T -> 0 gives the hard mask back.

    Returns
    -------
    np.ndarray
        (C, H, W) float32 in [0, 1], each labelled pixel summing to 1 (unlabelled: 0).

    Raises
    ------
    PhotostyleError
        If ``temperature`` <= 0, or as :func:`label_map`.
    """
    temperature = check_number("temperature (pixels)", temperature, low=0, low_inclusive=False)
    lab = label_map(masks)
    c = masks.shape[0]
    d = signed_distances(lab, c)
    if (d == np.inf).any():  # one label covers every pixel: it is certain everywhere
        return one_hot(lab, c)
    z = d / temperature
    z -= z.max(axis=0, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=0, keepdims=True)
    p[:, lab < 0] = 0.0
    return p.astype(np.float32)


def _with_unlabelled(prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Add a last channel, 1 on unlabelled pixels, so every pixel sums to 1 (a probability stack)."""
    return np.concatenate([prob, (labels < 0)[None].astype(np.float32)], axis=0)


def soft_masks_from_hard(content: Any, style: Any, label_names: tuple[str, ...] | list[str], *,
                         temperature: float, theta_s: float) -> SemanticMasks:
    """Soft masks of two aligned hard masks: :func:`soft_from_hard`, then the segmenter path's theta_s cut.

    The probabilities go through ``cut.semantic_masks(mode="soft",
    soft_pipeline=cut.SOFT_PIPELINE, merge=())`` -- exactly the code that cuts
    a segmenter's probabilities (the authors' pipeline: the style cut per label,
    the content restricted to the style's labels and renormalised, then cut).
    Unlabelled pixels ride along in an extra channel (:data:`UNLABELLED`),
    removed afterwards, so they get no label, as with gold masks.

    Parameters
    ----------
    content, style
        (C, Hc, Wc) and (C, Hs, Ws) one-hot stacks over the same labels.
    label_names
        the C names.
    temperature
        pixels (:func:`soft_from_hard`).
    theta_s
        the cutoff, in (0, 1].

    Returns
    -------
    SemanticMasks
        SemanticMasks of kind "soft" (float32 in [0, 1], per-pixel sums <= 1), labels in
        ``label_names`` order (those the cut leaves in the style).

    Raises
    ------
    PhotostyleError
        If no label survives the cut at ``theta_s``, or as :func:`soft_from_hard`.
    """
    from photostyle_lib.semantic.cut import SOFT_PIPELINE, semantic_masks

    names = tuple(label_names) + (UNLABELLED,)
    cp = _with_unlabelled(soft_from_hard(content, temperature), label_map(content))
    sp = _with_unlabelled(soft_from_hard(style, temperature), label_map(style))
    m = semantic_masks(torch.from_numpy(cp), torch.from_numpy(sp), mode="soft", theta_s=theta_s,
                       soft_pipeline=SOFT_PIPELINE, merge=(), label_names=names)
    keep = [i for i, n in enumerate(m.labels) if n != UNLABELLED]
    if not keep:
        raise PhotostyleError(f"no label survives the cut at theta_s={theta_s}; lower theta_s")
    return SemanticMasks(m.content[keep].contiguous(), m.style[keep].contiguous(),
                         tuple(m.labels[i] for i in keep), kind="soft",
                         dropped_content_labels=tuple(n for n in m.dropped_content_labels if n != UNLABELLED),
                         pipeline=m.pipeline)


# --------------------------------------------------------------------------- gold masks -> corrupted masks


def hard_at_size(stack: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(C, H, W) masks -> (C, h, w) one-hot at ``size``: area average, then each pixel's largest share.

    A pixel whose largest share is "no label" (all-zero columns averaged in)
    stays unlabelled. At the stack's own size a one-hot stack is returned as it is.
    """
    from photostyle_lib.semantic.masks import resize_masks

    s = resize_masks(stack.float(), size, "avg").numpy()
    shares = np.concatenate([s, 1.0 - s.sum(0, keepdims=True)], axis=0)
    lab = shares.argmax(0)
    lab[lab == s.shape[0]] = -1
    return one_hot(lab, s.shape[0])


def masks_with_errors(gold: SemanticMasks, content_size: tuple[int, int], style_size: tuple[int, int],
                      params: Mapping[str, Any], *, theta_s: float) -> SemanticMasks:
    """Gold masks brought to the images' sizes, corrupted, rendered hard or soft: what an error run uses.

    Parameters
    ----------
    gold
        aligned gold masks (``masks.load_gold_masks(..., unmatched="drop")``).
    content_size, style_size
        (H, W) of the run's images; errors are applied at these sizes,
        so boundary shifts and temperatures are pixels of the run's images.
    params
        ``kind``, ``severity`` (:func:`check_error_spec`), ``seed`` (int), ``target``
        (:data:`TARGETS`: which image's masks get the error; "both" seeds the style with seed + 1),
        ``render`` (:data:`RENDERS`) and, for "soft", ``temperature`` (px).
    theta_s
        the soft cutoff (soft renders).

    Returns
    -------
    SemanticMasks
        SemanticMasks of kind "hard" (one-hot, labels empty in either image dropped) or "soft".

    Raises
    ------
    PhotostyleError
        If ``params`` has unknown keys or invalid values (kind, severity, seed,
        target, render, temperature), or the corrupted masks share no label.
    """
    p = dict(params)
    unknown = sorted(set(p) - {"kind", "severity", "seed", "target", "render", "temperature"})
    if unknown:
        raise PhotostyleError(f"unknown mask-error parameters {unknown}; use kind, severity, seed, target, "
                              "render, temperature")
    kind, severity = check_error_spec(p.get("kind", "none"), p.get("severity", 0))
    seed = check_int("seed", p.get("seed", 0), low=0)
    target = check_choice("target", p.get("target", "content"), TARGETS)
    render = check_choice("render", p.get("render", "hard"), RENDERS)
    c = hard_at_size(gold.content, content_size)
    s = hard_at_size(gold.style, style_size)
    if target in ("content", "both"):
        c = apply_error(c, kind, severity, seed=seed)
    if target in ("style", "both"):
        s = apply_error(s, kind, severity, seed=seed + 1)
    if render == "soft":
        return soft_masks_from_hard(c, s, gold.labels, temperature=p.get("temperature", 2.0), theta_s=theta_s)
    keep = [i for i in range(len(gold.labels)) if c[i].any() and s[i].any()]
    if not keep:
        raise PhotostyleError("the corrupted masks share no label between content and style; lower the severity")
    return SemanticMasks(torch.from_numpy(c[keep]), torch.from_numpy(s[keep]),
                         tuple(gold.labels[i] for i in keep), kind="hard")
