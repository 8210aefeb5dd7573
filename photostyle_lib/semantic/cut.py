"""From segmenter probabilities to hard and soft masks: the theta_s cut (sections 3.3 and 4).

The paper uses either the argmax (*hard* masks, one-hot) or the softmax
probabilities with values below a cutoff theta_s set to zero (*soft* masks) as
the masks M_{l,c} of eqs. (6)-(7); similar labels are merged, and the content's
labels are restricted to those present in the style image. In what order and
by which rules the paper does not say; :func:`semantic_masks` offers two
answers, ``soft_pipeline="authors"`` (the authors' public code, step for step:
cut each raw class, restrict and renormalise the content, then merge; the
default) and ``"merged"`` (our own: merge, restrict and renormalise both
images, then cut).

The authors' code is ``segment.py`` of Billijk/Deep-Photo-Style-Transfer-PyTorch
(the repository the paper names), branch master for soft masks; branch
``hard_seg`` holds their hard masks (merge by the members' maximum, argmax),
which this module does not reproduce: hard masks here follow the ``"merged"``
steps.

Pure functions on (K, H, W) probability stacks, wherever they came from
(:class:`photostyle_lib.semantic.segmenter.ADE20KSegmenter`, a cache, or
``mask_errors``' rendered gold masks); the result is a
:class:`photostyle_lib.semantic.masks.SemanticMasks` (kind ``"hard"`` or
``"soft"``), the type gold masks have, so the engine takes either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from photostyle_lib.checks import check_choice, check_number
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.semantic.ade20k import ADE20K_LABELS, AUTHORS_MERGES, DEFAULT_MERGES
from photostyle_lib.semantic.masks import SemanticMasks, align_labels
from photostyle_lib.semantic.merge import MergeSpec, absorbed_channels, checked_groups, merge_into_first_member, \
    merge_labels

MaskMode = Literal["hard", "soft"]
#: The probability -> soft masks maths (see :func:`semantic_masks`).
SoftPipeline = Literal["authors", "merged"]
SOFT_PIPELINES: tuple[str, ...] = ("authors", "merged")
#: The soft pipeline segmenter runs use (the paper profile's): the authors' ``segment.py`` maths.
SOFT_PIPELINE: SoftPipeline = "authors"
#: The soft cutoff when none is given: the default ``cutoff`` of the authors' ``segment_img``
#: (the paper gives no value).
DEFAULT_THETA_S = 0.2
#: Smallest normal float32: guards divisions without distorting tiny probabilities.
_TINY = float(torch.finfo(torch.float32).tiny)


def check_theta_s(theta_s: Any) -> float:
    """The soft cutoff theta_s as a float in (0, 1], the one check every door's value goes through.

    Parameters
    ----------
    theta_s : float
        Values below it are set to 0 (section 3.3); 1 keeps only certain pixels.

    Returns
    -------
    float
        ``theta_s``.

    Raises
    ------
    PhotostyleError
        Not a number, or outside (0, 1].
    """
    return check_number("theta_s", theta_s, low=0.0, high=1.0, low_inclusive=False)


def present_labels(prob: torch.Tensor, label_names: Sequence[str], min_fraction: float) -> tuple[str, ...]:
    """Labels that are the argmax of at least ``min_fraction`` of the pixels (the ``"merged"`` rule).

    The label covering the most pixels is always returned, so the result is
    never empty. Order follows ``label_names``.
    """
    k = prob.shape[0]
    counts = torch.bincount(prob.argmax(0).flatten(), minlength=k).double() / prob[0].numel()
    keep = (counts >= min_fraction)
    keep[int(counts.argmax())] = True
    return tuple(n for n, kept in zip(label_names, keep.tolist()) if kept)


def _check_probabilities(name: str, prob: Any, num_labels: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(prob) if not isinstance(prob, torch.Tensor) else prob)
    t = t.detach().to("cpu", torch.float32)
    if t.ndim != 3:
        raise PhotostyleError(f"{name} must have shape (K, H, W), got {tuple(t.shape)}")
    if t.shape[0] != num_labels:
        raise PhotostyleError(f"{name} has {t.shape[0]} channels but {num_labels} label names were given; "
                              "pass the label_names of the segmenter that made it")
    if t.shape[1] < 1 or t.shape[2] < 1:
        raise PhotostyleError(f"{name} is empty (shape {tuple(t.shape)})")
    if not torch.isfinite(t).all():
        raise PhotostyleError(f"{name} contains NaN or infinite values")
    sums = t.sum(0)
    if float(t.min()) < -1e-6 or float((sums - 1).abs().max()) > 1e-2:
        raise PhotostyleError(
            f"{name} is not a probability stack (values in [{float(t.min()):.3g}, {float(t.max()):.3g}], "
            f"pixel sums in [{float(sums.min()):.3g}, {float(sums.max()):.3g}]); pass softmax probabilities "
            "such as ADE20KSegmenter.probabilities(), not logits")
    return t.clamp_(min=0.0)


def semantic_masks(content_prob: torch.Tensor | np.ndarray, style_prob: torch.Tensor | np.ndarray,
                   mode: MaskMode = "soft", *, theta_s: float = DEFAULT_THETA_S, soft_pipeline: SoftPipeline = "authors",
                   merge: MergeSpec | str = "pipeline", label_names: Sequence[str] = ADE20K_LABELS,
                   min_style_fraction: float = 0.01) -> SemanticMasks:
    """Hard or soft masks for the masked style loss (eqs. 6-7, section 3.3) from two probability stacks.

    The paper says only that soft masks are the softmax values "with a cutoff
    threshold theta_s to ignore labels with small possibilities", that similar
    labels are merged and that the content's labels are restricted to the
    style's (sections 3.3 and 4). Two pipelines fill in the rest:

    * ``soft_pipeline="authors"`` (the default: the paper profile) -- what the
      authors' public code does, step for step; see :func:`_authors_soft_masks`.
      Cut each raw ADE20K class at theta_s, restrict and renormalise the
      content over the style's raw classes, then add merged classes with the
      authors' merge table (:data:`ade20k.AUTHORS_MERGES`). Style masks are
      not renormalised.
    * ``soft_pipeline="merged"`` -- our own choice (not the authors'): merge
      first with :data:`ade20k.DEFAULT_MERGES`, restrict both images to the
      style's present merged labels and renormalise both, then cut; see
      :func:`_merged_masks`.

    Hard masks (``mode="hard"``) always follow the ``"merged"`` steps and take
    the argmax (``soft_pipeline`` is ignored for them). A departure to know when
    reading Figure 5: its hard column then differs from the soft one (the authors'
    pipeline) in the merge table and the presence rule too, not only in hard vs
    soft.

    Parameters
    ----------
    content_prob
        (K, Hc, Wc) softmax probabilities of the content (tensor or array).
    style_prob
        (K, Hs, Ws) softmax probabilities of the style.
    mode
        "hard" or "soft".
    theta_s
        the soft cutoff, in (0, 1]: values below it become 0, values
        equal to it are kept. The paper gives no value; the default
        :data:`DEFAULT_THETA_S`, 0.2, is the default ``cutoff`` of the
        authors' ``segment_img``.
    soft_pipeline
        "authors" or "merged" (above); soft masks only.
    merge
        groups of labels to merge: ``"pipeline"`` (default) for the
        pipeline's own table (``AUTHORS_MERGES`` for "authors",
        ``DEFAULT_MERGES`` for "merged" and for hard masks), a sequence of
        ``ade20k.MergeGroup``, a mapping ``{name: [labels]}``, or ``()`` /
        None for none.
    label_names
        the K label names (default the 150 ADE20K labels).
    min_style_fraction
        in [0, 1); the ``"merged"`` pipeline's presence
        rule (see :func:`_merged_masks`); unused by ``"authors"``.

    Returns
    -------
    SemanticMasks
        SemanticMasks of kind ``mode`` whose ``pipeline`` names the maths
        ("authors" or "merged"; "merged" for hard masks), float32 stacks in [0, 1].

    Raises
    ------
    PhotostyleError
        If ``mode``, ``soft_pipeline``, ``theta_s``, ``min_style_fraction`` or ``merge``
        is invalid, ``label_names`` has duplicates, or a probability stack is not
        a finite (len(label_names), H, W) stack of probabilities (>= 0, summing to 1
        per pixel within 1e-2).
    """
    mode = check_choice("mode", mode, ("hard", "soft"))
    soft_pipeline = check_choice("soft_pipeline", soft_pipeline, SOFT_PIPELINES)
    theta_s = check_theta_s(theta_s)
    min_style_fraction = check_number("min_style_fraction", min_style_fraction, low=0.0, high=1.0,
                                      high_inclusive=False)
    names = tuple(label_names)
    if len(set(names)) != len(names):
        raise PhotostyleError("label_names contains duplicates; give each channel a distinct name")
    c = _check_probabilities("content_prob", content_prob, len(names))
    s = _check_probabilities("style_prob", style_prob, len(names))
    pipeline = soft_pipeline if mode == "soft" else "merged"
    if isinstance(merge, str):
        if merge != "pipeline":
            raise PhotostyleError(f"merge={merge!r} is not a merge table; pass 'pipeline', a sequence of "
                                  "ade20k.MergeGroup, a mapping {name: [labels]}, or () for none")
        merge = AUTHORS_MERGES if pipeline == "authors" else DEFAULT_MERGES
    if pipeline == "authors":
        return _authors_soft_masks(c, s, theta_s=theta_s, merge=merge, label_names=names)
    return _merged_masks(c, s, mode, theta_s=theta_s, merge=merge, label_names=names,
                        min_style_fraction=min_style_fraction)


def _authors_soft_masks(content_prob: torch.Tensor, style_prob: torch.Tensor, *, theta_s: float = DEFAULT_THETA_S,
                       merge: MergeSpec = AUTHORS_MERGES,
                       label_names: Sequence[str] = ADE20K_LABELS) -> SemanticMasks:
    """Soft masks as the authors' code makes them (``segment_img`` and ``test`` in their ``segment.py``).

    With P_S, P_C the (K, H, W) probabilities of style and content (the
    segmenter's softmax averaged over scales) and theta = ``theta_s``:

    1. **Style, cut per raw class, not renormalised**:
       ``S_k = P_S,k * [P_S,k >= theta]``.
    2. **Presence** of a raw class in the style: ``S_k`` is non-zero at some
       pixel, i.e. ``max_pixels P_S,k >= theta``. V = the present classes.
    3. **Content, restricted to V and renormalised over it, then cut**:
       ``Q_k = P_C,k [k in V] / (sum_{j in V} P_C,j + 1e-6)`` and
       ``C_k = Q_k [Q_k >= theta]`` (the 1e-6 is theirs).
    4. **Merge after the cut**: for each group (``merge``, default
       :data:`ade20k.AUTHORS_MERGES`, whose first member receives the sum) the
       cut values of its members are added into the first member's channel
       and the other members' channels become 0, in both images.
    5. **Keep** the channels that are non-zero somewhere in the merged style,
       in channel order. A kept label may be empty in the content; it is kept
       (as in their code) and adds nothing to the style loss.

    Consequences worth knowing: a merged group is present when any member
    reaches theta somewhere in the style, but a content member that is absent
    from the style (lake when the style shows only sea) is dropped before the
    merge; per-pixel sums of the style masks lie in [0, 1] and the merged
    channels of both images can exceed any single class's value.

    Parameters
    ----------
    content_prob
        (K, Hc, Wc) float32 probabilities (pixels sum to 1).
    style_prob
        (K, Hs, Ws) float32 probabilities.
    theta_s
        the cutoff, in (0, 1].
    merge
        groups to merge, ``members[0]`` receiving the sum; () for none.
    label_names
        the K names.

    Returns
    -------
    SemanticMasks
        SemanticMasks (kind "soft", pipeline "authors"); ``dropped_content_labels``
        lists the labels that pass the presence rule in the content but not in
        the style; ``dropped_style_labels`` is empty (nothing present in the
        style is dropped).

    Raises
    ------
    PhotostyleError
        no class reaches theta_s anywhere in the style (their
        code would then have no masks and a NaN style loss), or no kept
        label is non-empty in the content.
    """
    names = tuple(label_names)
    groups = checked_groups(names, merge)
    s_cut = _cut(style_prob, theta_s)
    present = s_cut.flatten(1).amax(1) > 0
    if not bool(present.any()):
        raise PhotostyleError(
            f"no class reaches theta_s={theta_s} anywhere in the style (largest probability "
            f"{float(style_prob.max()):.3g}), so the authors' soft pipeline finds no label; lower theta_s "
            "below that value or use soft_pipeline='merged' (random segmenter weights give probabilities "
            "near 1/150)")
    c_kept = content_prob * present.to(content_prob.dtype)[:, None, None]
    c_cut = _cut(c_kept / (c_kept.sum(0, keepdim=True) + 1e-6), theta_s)
    c_merged, merged_names = merge_into_first_member(c_cut, names, groups)
    s_merged, _ = merge_into_first_member(s_cut, names, groups)
    keep = torch.nonzero(s_merged.flatten(1).amax(1) > 0).flatten()
    labels = tuple(merged_names[i] for i in keep.tolist())
    cm, sm = c_merged[keep].clamp_(0.0, 1.0).contiguous(), s_merged[keep].clamp_(0.0, 1.0).contiguous()
    if not bool((cm.flatten(1).amax(1) > 0).any()):
        raise PhotostyleError(f"no label of the style keeps a content pixel at theta_s={theta_s}; lower theta_s "
                              "or use mode='hard'")
    content_alone, _ = merge_into_first_member(_cut(content_prob, theta_s), names, groups)
    in_content = content_alone.flatten(1).amax(1) > 0
    dropped = tuple(n for i, n in enumerate(merged_names) if bool(in_content[i]) and n not in labels
                    and i not in absorbed_channels(names, groups))
    return SemanticMasks(content=cm, style=sm, labels=labels, kind="soft", dropped_content_labels=dropped,
                         dropped_style_labels=(), pipeline="authors")


def _cut(prob: torch.Tensor, theta_s: float) -> torch.Tensor:
    """Values below theta_s set to 0 (the authors' ``pred[pred < cutoff] = 0``), as a new tensor."""
    return torch.where(prob >= theta_s, prob, torch.zeros_like(prob))


def _merged_masks(content_prob: torch.Tensor, style_prob: torch.Tensor, mode: MaskMode = "soft", *,
                 theta_s: float = DEFAULT_THETA_S, merge: MergeSpec = DEFAULT_MERGES,
                 label_names: Sequence[str] = ADE20K_LABELS, min_style_fraction: float = 0.01) -> SemanticMasks:
    """Hard masks, and soft masks of the ``"merged"`` pipeline: our choices, not the authors' code's.

    Steps, in order:

    1. **Merge** similar labels first (:func:`merge_labels`, default our
       :data:`ade20k.DEFAULT_MERGES`): the probabilities of a group's members
       are added before anything is cut.
    2. **Restrict** to the style's labels. A label is *present* in an image
       when it is the argmax of at least ``min_style_fraction`` of its pixels
       (after merging); specks below that are segmentation noise whose few
       pixels would make a poor style sample. Both stacks keep only the
       style's present labels and are renormalised over them, so each pixel's
       values again sum to 1: a content pixel's distribution becomes the
       segmenter's distribution *given* that the label is one the style has,
       and every content pixel receives some style. (This is
       ``masks.align_labels(..., unmatched="drop", renormalize=True)``.) A
       content pixel whose every kept probability underflowed to 0 gets no
       label and no style.
    3. **Hard** (``mode="hard"``): one-hot of the argmax, each pixel sums to 1.
       **Soft**: values below ``theta_s`` are set to 0 and the remainder is
       *not* renormalised, so an uncertain pixel weighs less in every label's
       Gram matrix than a confident one; per-pixel sums lie in [0, 1].
    4. Labels whose mask is empty in the content (after the cutoff) are
       dropped as style-only; labels empty in the style are dropped too.

    How this departs from the authors' code (:func:`_authors_soft_masks`):
    merging before the cutoff (so a merged group's summed probability can pass
    theta_s where no member does), the argmax-fraction presence rule, the
    renormalisation of the style as well as the content, our merge table,
    and dropping labels empty in the content.

    ``mode="hard"`` equals the one-hot of the argmax of ``mode="soft"`` for any
    theta_s <= 1 / (number of kept labels), since the cutoff never removes a
    pixel's largest value then.

    Parameters
    ----------
    content_prob, style_prob
        (K, H, W) float32 probabilities.
    mode
        "hard" or "soft".
    theta_s
        the soft cutoff, in (0, 1].
    merge
        groups to merge; ``()`` or None for none.
    label_names
        the K names.
    min_style_fraction
        in [0, 1); see step 2.

    Returns
    -------
    SemanticMasks
        SemanticMasks of kind ``mode`` (pipeline "merged"): ``content`` (C, Hc, Wc)
        and ``style`` (C, Hs, Ws) float32 in [0, 1], the C shared (merged) label
        names, ``dropped_content_labels`` (content labels the style lacks: those
        that are the argmax of at least ``min_style_fraction`` of the content,
        plus kept labels whose style mask the cutoff emptied) and
        ``dropped_style_labels`` (style labels with an empty content mask).
    """
    names = tuple(label_names)
    c, merged = merge_labels(content_prob, names, merge)
    s, _ = merge_labels(style_prob, names, merge)

    style_labels = present_labels(s, merged, min_style_fraction)
    s_idx = [merged.index(n) for n in style_labels]
    s_kept = s[s_idx]
    s_kept = s_kept / s_kept.sum(0, keepdim=True).clamp_min(_TINY)
    aligned = align_labels(c, merged, s_kept.clamp(0.0, 1.0), style_labels, kind=mode,
                           unmatched="drop", renormalize=True)
    content_present = set(present_labels(c, merged, min_style_fraction))
    cm, sm = aligned.content, aligned.style
    # align_labels rescales each pixel's kept values to its old total (1 for a
    # probability stack); divide by the sum explicitly to remove rounding drift.
    cm = cm / cm.sum(0, keepdim=True).clamp_min(_TINY)

    if mode == "hard":
        cm = _one_hot_argmax(cm)
        sm = _one_hot_argmax(sm)
    else:
        cm, sm = _cut(cm, theta_s), _cut(sm, theta_s)

    return _without_empty_labels(cm, sm, aligned.labels, merged, content_present, mode, theta_s)


def _without_empty_labels(cm: torch.Tensor, sm: torch.Tensor, labels: tuple[str, ...], merged: tuple[str, ...],
                          content_present: set[str], mode: MaskMode, theta_s: float) -> SemanticMasks:
    """Step 4 of :func:`_merged_masks`: drop the labels empty in either cut stack, and say which went.

    ``cm`` (C, Hc, Wc) and ``sm`` (C, Hs, Ws) are the cut stacks over ``labels``; ``merged`` all
    the merged names and ``content_present`` those present in the content (step 2's rule).

    Raises
    ------
    PhotostyleError
        When no label is left in both images.
    """
    c_any = cm.flatten(1).amax(1) > 0
    s_any = sm.flatten(1).amax(1) > 0
    keep = c_any & s_any
    if not bool(keep.any()):
        raise PhotostyleError(
            f"no label has a non-empty mask in both images after the cutoff theta_s={theta_s}; "
            "lower theta_s (at most 1 / number of labels keeps every pixel's top label) or use mode='hard'")
    dropped_content = [n for n in merged if n not in labels and n in content_present]
    dropped_content += [n for n, ci, si in zip(labels, c_any.tolist(), s_any.tolist()) if ci and not si]
    dropped_style = [n for n, ci in zip(labels, c_any.tolist()) if not ci]
    kept_idx = torch.nonzero(keep).flatten()
    return SemanticMasks(content=cm[kept_idx].float().clamp_(0.0, 1.0).contiguous(),
                         style=sm[kept_idx].float().clamp_(0.0, 1.0).contiguous(),
                         labels=tuple(labels[i] for i in kept_idx.tolist()), kind=mode,
                         dropped_content_labels=tuple(dropped_content),
                         dropped_style_labels=tuple(dropped_style), pipeline="merged")


def _one_hot_argmax(prob: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> one-hot (C, H, W) of the argmax over C (ties: lowest index); all-zero pixels stay zero."""
    idx = prob.argmax(0, keepdim=True)
    one_hot = torch.zeros_like(prob).scatter_(0, idx, 1.0)
    return one_hot * (prob.amax(0, keepdim=True) > 0)
