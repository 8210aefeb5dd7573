"""What masks a run asks for, and the one function that makes them (eqs. 6-7, section 3.3).

Every door (the command line and batch files, the cached runs of notebooks and
the interactive app) states its masks as one :class:`MaskRequest` -- the mode,
the segmenter, theta_s, the soft pipeline, how to treat unmatched gold labels,
controlled errors -- checked once when it is made, and gets them from
:func:`make_masks`, so a request gives the same masks whichever door it came
through. theta_s travels on the request, not on the engine's
``TransferConfig``: it is a setting of the masks (``engine/symbols.py``), read
by :func:`photostyle_lib.semantic.cut.semantic_masks` and nothing else.

Segmenter probabilities always go through a
:class:`photostyle_lib.semantic.cache.SegmentationCache` (memory-only when the
caller keeps none), so masks are computed from the same float16-stored values
whether the probabilities were just computed or read from disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import torch

from photostyle_lib.checks import check_choice
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.semantic.cache import SegmentationCache
from photostyle_lib.semantic.cut import DEFAULT_THETA_S, SOFT_PIPELINE, SOFT_PIPELINES, check_theta_s, semantic_masks
from photostyle_lib.semantic.masks import SemanticMasks, load_gold_masks
from photostyle_lib.semantic.segmenter import ADE20KSegmenter, segmenter_for

#: The mask modes a request may ask for: gold (files), the segmenter's hard or soft masks, or none.
MASK_MODES: tuple[str, ...] = ("gold", "hard", "soft", "none")
MaskModeName = Literal["gold", "hard", "soft", "none"]
PathLike = str | os.PathLike


@dataclass(frozen=True)
class MaskRequest:
    """The masks of one run, checked once (here).

    Parameters
    ----------
    mode : {"gold", "hard", "soft", "none"}
        ``"gold"``: colour-coded mask files (the dataset's, or a user's);
        ``"hard"`` / ``"soft"``: the ADE20K segmenter's argmax / cut
        probabilities (section 3.3); ``"none"``: no masks (plain Gram loss).
    segmenter : str or None
        The segmenter for hard / soft masks, by name
        (:func:`photostyle_lib.semantic.segmenter.segmenter_from_name`: None
        for the default checkpoint, ``"paper-scales"``, ``"random-tiny"``, a
        hub id or a directory). Unused by gold and none.
    theta_s : float
        The soft cutoff, in (0, 1] (section 3.3; default 0.2, the authors'
        ``cutoff``). Acts on soft masks, and on gold masks rendered soft by
        ``mask_errors`` (render "soft"); carried but unused otherwise.
    soft_pipeline : {"authors", "merged"}
        The probability -> soft-mask maths
        (:func:`photostyle_lib.semantic.cut.semantic_masks`; default the
        authors' code's, :data:`photostyle_lib.semantic.cut.SOFT_PIPELINE`).
    unmatched : {"error", "drop"}
        Gold only: a content label absent from the style mask is an error
        (the CLI's default) or is dropped (the dataset's runs).
    mask_errors : tuple of (str, object) pairs
        Gold only: controlled errors for
        :func:`photostyle_lib.semantic.mask_errors.masks_with_errors` (kind,
        severity, seed, target, render, temperature), sorted; () for none.

    Raises
    ------
    PhotostyleError
        An unknown mode, soft pipeline or ``unmatched``; theta_s outside (0, 1];
        mask errors on a mode other than gold.
    """

    mode: MaskModeName
    segmenter: str | None = None
    theta_s: float = DEFAULT_THETA_S
    soft_pipeline: str = SOFT_PIPELINE
    unmatched: str = "error"
    mask_errors: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        check_choice("masks", self.mode, MASK_MODES)
        set_("theta_s", check_theta_s(self.theta_s))
        check_choice("soft_pipeline", self.soft_pipeline, SOFT_PIPELINES)
        check_choice("unmatched", self.unmatched, ("error", "drop"))
        if self.segmenter is not None:
            set_("segmenter", os.fspath(self.segmenter))
        set_("mask_errors", tuple(sorted((str(k), v) for k, v in dict(self.mask_errors).items())))
        if self.mask_errors and self.mode != "gold":
            raise PhotostyleError("mask_errors corrupt gold masks: give masks='gold' with a preset that uses masks")

    @property
    def uses_segmenter(self) -> bool:
        """True for hard and soft masks: the ADE20K segmenter makes them."""
        return self.mode in ("hard", "soft")

    @property
    def uses_theta_s(self) -> bool:
        """True when theta_s changes the masks: soft masks, or gold masks rendered soft with errors."""
        return self.mode == "soft" or dict(self.mask_errors).get("render") == "soft"


def make_masks(request: MaskRequest, content: torch.Tensor, style: torch.Tensor, *,
               content_mask: PathLike | None = None, style_mask: PathLike | None = None,
               cache: SegmentationCache | None = None, segmenter: ADE20KSegmenter | None = None,
               device: str = "auto") -> tuple[SemanticMasks | None, dict[str, Any]]:
    """The masks ``request`` asks for, and what made them (for the run's metadata).

    Parameters
    ----------
    request : MaskRequest
        The masks asked for.
    content, style : torch.Tensor
        (1, 3, Hc, Wc) and (1, 3, Hs, Ws) float in [0, 1]: the run's images
        (the segmenter's input; the sizes gold masks with errors are brought to).
    content_mask, style_mask : str or os.PathLike, optional
        Gold only: the colour-coded mask files (both, or an error).
    cache : SegmentationCache, optional
        Hard / soft only: where probabilities are looked up and kept (None: a
        memory-only cache for this call, so the maths sees the same stored
        values either way).
    segmenter : ADE20KSegmenter, optional
        Hard / soft only: a built segmenter to use instead of building
        ``request.segmenter`` by name.
    device : str
        Where a segmenter built by name runs ("auto", "cpu", "cuda", ...).

    Returns
    -------
    masks : SemanticMasks or None
        None for mode "none"; else gold (or, with errors, "hard" / "soft"),
        hard or soft masks: float32 (C, Hc, Wc) and (C, Hs, Ws) stacks in [0, 1].
    metadata : dict
        ``segmenter`` ("gold masks", "gold masks with errors" or the
        segmenter's ``describe()``), ``mask_pipeline``, and as they apply
        ``segmenter_random_weights``, ``mask_errors`` and ``theta_s``.

    Raises
    ------
    PhotostyleError
        Gold without both mask files, unreadable or mismatched masks, missing
        segmenter weights, a theta_s that keeps no label.
    """
    if request.mode == "none":
        return None, {}
    if request.mode == "gold":
        return _gold_masks(request, content, style, content_mask, style_mask)
    seg = segmenter_for(request.segmenter if segmenter is None else segmenter, device)
    cache = SegmentationCache() if cache is None else cache
    masks = semantic_masks(cache.probabilities(seg, content), cache.probabilities(seg, style), mode=request.mode,
                           theta_s=request.theta_s, soft_pipeline=request.soft_pipeline)
    md: dict[str, Any] = {"segmenter": seg.describe(), "segmenter_random_weights": seg.weights == "random",
                          "mask_pipeline": masks.pipeline}
    if request.uses_theta_s:
        md["theta_s"] = request.theta_s
    return masks, md


def _gold_masks(request: MaskRequest, content: torch.Tensor, style: torch.Tensor, content_mask: PathLike | None,
                style_mask: PathLike | None) -> tuple[SemanticMasks, dict[str, Any]]:
    """Gold masks read from the two files, with the request's controlled errors when it has any."""
    if content_mask is None or style_mask is None:
        if content_mask is not None or style_mask is not None:
            raise PhotostyleError("give both a content mask and a style mask, or neither")
        raise PhotostyleError("gold masks need mask files: give --content-mask and --style-mask "
                              "(the dataset's segmentation/in<N>.png and tar<N>.png)")
    gold = load_gold_masks(content_mask, style_mask, unmatched=request.unmatched)
    if not request.mask_errors:
        return gold, {"segmenter": "gold masks"}
    from photostyle_lib.semantic.mask_errors import masks_with_errors

    errors = dict(request.mask_errors)
    masks = masks_with_errors(gold, tuple(content.shape[-2:]), tuple(style.shape[-2:]), errors,
                              theta_s=request.theta_s)
    md: dict[str, Any] = {"segmenter": "gold masks with errors", "mask_errors": errors,
                          "mask_pipeline": masks.pipeline}
    if request.uses_theta_s:
        md["theta_s"] = request.theta_s
    return masks, md
