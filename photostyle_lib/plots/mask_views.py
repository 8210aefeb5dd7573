"""Figures of semantic masks: the paper's Figure 3 (hard vs soft) and Figure 8 (per label).

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot, so nothing is shown or kept open: save it with ``fig.savefig(path)``
or let a notebook display it. Masks come as
:class:`photostyle_lib.semantic.masks.SemanticMasks` whatever made them (gold masks,
hard or soft segmenter masks). Images are tensors (1, 3, H, W) or arrays
(H, W, 3) with values in [0, 1].

Each function takes ``weights_note``: a line (or lines) added under the
title, e.g. ``describe_weights(segmenter)`` or a run's weights banner
(images.RANDOM_WEIGHTS_BANNER, images.STAND_IN_BANNER), so a figure made with
randomly initialised segmentation weights, or from runs of the stand-in VGG,
says so. A title with a note is drawn in :data:`WARNING_COLOUR`, bold.

Colours: hard masks are drawn as a label map, one colour per label (matplotlib's
``tab20``, in label order; gold and user masks in their own palette colours)
with a legend of label names; pixels with no label are dark grey. Soft masks are drawn one label at a time as probability maps
with the ``magma`` colour map on [0, 1], darker meaning less probable, as in
the paper's Figure 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from photostyle_lib.checks import check_int
from photostyle_lib.errors import PhotostyleError
from photostyle_lib.io.images import as_image_array
from photostyle_lib.semantic.masks import PALETTE, SemanticMasks, label_map

#: Colour map of soft probability maps.
PROBABILITY_CMAP = "magma"
#: RGB of pixels with no label in a label map.
NO_LABEL_COLOUR = (0.25, 0.25, 0.25)
#: Colour of weights warnings (random or stand-in weights) on figures, panels and widgets.
WARNING_COLOUR = "#b00020"


def describe_weights(segmenter: Any) -> str | None:
    """A note for figure titles when a segmenter's weights are random; None for pretrained ones.

    ``segmenter`` is anything with ``weights`` (``"random"`` / ``"pretrained"``)
    and optionally ``seed``, such as :class:`photostyle_lib.semantic.segmenter.ADE20KSegmenter`.
    """
    if getattr(segmenter, "weights", None) == "random":
        seed = getattr(segmenter, "seed", None)
        return f"RANDOM segmentation weights (seed {seed}): masks carry no meaning"
    return None


def label_colours(labels: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One RGB colour (floats in [0, 1]) per label, stable for a given label order.

    Labels that are all palette colour names (gold and user masks, whose
    labels are the colours they were painted in: ``masks.PALETTE``) are drawn
    in those colours, so a figure's note or legend ("blue, black") names what
    the reader sees; other labels take ``tab20`` colours in label order.
    """
    if labels and all(lab in PALETTE for lab in labels):
        return {lab: tuple(v / 255.0 for v in PALETTE[lab]) for lab in labels}
    cmaps = [matplotlib.colormaps["tab20"], matplotlib.colormaps["tab20b"], matplotlib.colormaps["tab20c"]]
    out = {}
    for i, lab in enumerate(labels):
        cmap = cmaps[(i // 20) % len(cmaps)]
        out[lab] = tuple(float(v) for v in cmap(i % 20)[:3])
    return out


def legend_note(labels: Sequence[str]) -> str:
    """A one-line legend for a figure's note: each label with the colour it is drawn in (:func:`label_colours`).

    Gold and user masks: "labels, drawn in their own colours: blue, black";
    others: "label colours: sky #aec7e8, tree #2ca02c".
    """
    colours = label_colours(labels)
    if labels and all(lab in PALETTE for lab in labels):
        return f"labels, drawn in their own colours: {', '.join(labels)}"
    hexes = {lab: "#" + "".join(f"{round(v * 255):02x}" for v in rgb) for lab, rgb in colours.items()}
    return "label colours: " + ", ".join(f"{lab} {hexes[lab]}" for lab in labels)


def top_labels_by_area(masks: SemanticMasks, k: int) -> tuple[str, ...]:
    """The ``k`` labels with the largest area, area = mean content mask + mean style mask.

    Means are area fractions of each image, so a label matters as much in a
    small style image as in a large content image. Ties keep label order.

    Raises
    ------
    PhotostyleError
        If ``k`` is not an integer >= 1.
    """
    k = check_int("top_k", k, low=1)
    area = masks.content.float().flatten(1).mean(1) + masks.style.float().flatten(1).mean(1)
    order = sorted(range(masks.num_labels), key=lambda i: (-float(area[i]), i))
    return tuple(masks.labels[i] for i in order[:k])


def label_map_rgb(stack: torch.Tensor, labels: Sequence[str],
                  colours: dict[str, tuple[float, float, float]] | None = None) -> np.ndarray:
    """(C, H, W) masks -> (H, W, 3) RGB floats in [0, 1] of each pixel's strongest label.

    Colours default to :func:`label_colours` of ``labels``; grey
    (``NO_LABEL_COLOUR``) where no label has any weight.
    """
    colours = label_colours(labels) if colours is None else colours
    idx = label_map(stack.detach().cpu().float()).numpy()
    table = np.array([colours[lab] for lab in labels] + [NO_LABEL_COLOUR], dtype=np.float64)
    return table[np.where(idx < 0, len(labels), idx)]


def _titled(fig: Figure, title: str | None, weights_note: str | None) -> None:
    lines = [t for t in (title, weights_note) if t]
    if lines:
        style = {"color": WARNING_COLOUR, "fontweight": "bold"} if weights_note else {}
        fig.suptitle("\n".join(lines), **style)


def _show(ax: Any, data: np.ndarray, title: str | None = None, **kwargs: Any) -> Any:
    im = ax.imshow(data, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_anchor("N")  # images of other aspects in one row: their titles at one height (figures.grid_figure)
    if title:
        ax.set_title(title, fontsize=9)
    return im


def add_label_legend(fig: Figure, labels: Sequence[str],
                     colours: dict[str, tuple[float, float, float]] | None = None) -> Any:
    """A legend of label names under ``fig`` (constrained layout), one colour swatch per label.

    Colours default to :func:`label_colours` of ``labels``: those of :func:`label_map_rgb`, so
    the swatches match the label maps drawn with the same labels (gold and user masks: their
    palette colours). Returns the legend.
    """
    colours = label_colours(labels) if colours is None else colours
    handles = [Patch(facecolor=colours[lab], edgecolor="none", label=lab) for lab in labels]
    return fig.legend(handles=handles, loc="outside lower center", ncol=min(len(labels), 6), fontsize=8,
                      frameon=False)


_legend = add_label_legend


def label_map_figure(masks: SemanticMasks, *, content_image: torch.Tensor | np.ndarray | None = None,
                     style_image: torch.Tensor | np.ndarray | None = None, title: str | None = None,
                     weights_note: str | None = None) -> Figure:
    """Colour-coded label maps of content and style, side by side, with a legend of label names.

    Soft masks are shown by their strongest label per pixel. With both images
    given, they sit above their maps: 4 axes; otherwise 2 axes.
    """
    with_images = _check_image_pair(content_image, style_image)
    colours = label_colours(masks.labels)
    rows = 2 if with_images else 1
    fig = Figure(figsize=(8, 3.2 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    if with_images:
        _show(axes[0, 0], as_image_array("content_image", content_image), "content")
        _show(axes[0, 1], as_image_array("style_image", style_image), "style")
    _show(axes[-1, 0], label_map_rgb(masks.content, masks.labels, colours), f"content labels ({masks.kind})")
    _show(axes[-1, 1], label_map_rgb(masks.style, masks.labels, colours), f"style labels ({masks.kind})")
    _legend(fig, masks.labels, colours)
    _titled(fig, title, weights_note)
    return fig


def probability_maps_figure(masks: SemanticMasks, *, top_k: int = 4,
                            content_image: torch.Tensor | np.ndarray | None = None,
                            style_image: torch.Tensor | np.ndarray | None = None, title: str | None = None,
                            weights_note: str | None = None) -> Figure:
    """Per-label mask values for the ``top_k`` labels by area: content row above style row.

    Columns are labels (named in their titles), values on [0, 1] with one
    shared colour bar. With both images given, they lead their rows. Axes:
    2 * min(top_k, C) (+ 2 with images) + 1 colour bar.

    Raises
    ------
    PhotostyleError
        If ``top_k`` is not an integer >= 1, or only one of the two images is given (or they are not images).
    """
    with_images = _check_image_pair(content_image, style_image)
    labels = top_labels_by_area(masks, min(check_int("top_k", top_k, low=1), masks.num_labels))
    ncols = len(labels) + (1 if with_images else 0)
    fig = Figure(figsize=(2.4 * ncols + 0.8, 5.0), layout="constrained")
    axes = fig.subplots(2, ncols, squeeze=False)
    first = 0
    if with_images:
        _show(axes[0, 0], as_image_array("content_image", content_image), "content")
        _show(axes[1, 0], as_image_array("style_image", style_image), "style")
        first = 1
    im = None
    for j, lab in enumerate(labels):
        c = masks.labels.index(lab)
        im = _show(axes[0, first + j], masks.content[c].detach().cpu().float().numpy(), f"{lab} (content)",
                   cmap=PROBABILITY_CMAP, vmin=0.0, vmax=1.0)
        _show(axes[1, first + j], masks.style[c].detach().cpu().float().numpy(), f"{lab} (style)",
              cmap=PROBABILITY_CMAP, vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=axes[:, first:].ravel().tolist(), shrink=0.8, label=f"{masks.kind} mask value")
    _titled(fig, title, weights_note)
    return fig


def masks_figure(content_image: torch.Tensor | np.ndarray, style_image: torch.Tensor | np.ndarray,
                 masks: SemanticMasks, *, top_k: int = 4, title: str | None = None,
                 weights_note: str | None = None) -> Figure:
    """Content and style side by side with their masks, drawn as suits the masks' kind.

    Soft masks: :func:`probability_maps_figure` (top ``top_k`` labels);
    hard, gold and user masks: :func:`label_map_figure`.
    """
    if masks.kind == "soft":
        return probability_maps_figure(masks, top_k=top_k, content_image=content_image,
                                       style_image=style_image, title=title, weights_note=weights_note)
    return label_map_figure(masks, content_image=content_image, style_image=style_image, title=title,
                            weights_note=weights_note)


def hard_soft_figure(content_image: torch.Tensor | np.ndarray, style_image: torch.Tensor | np.ndarray,
                     hard: SemanticMasks, soft: SemanticMasks, *, top_k: int = 4, title: str | None = None,
                     weights_note: str | None = None) -> Figure:
    """The paper's Figure 3: hard against soft segmentation of one content/style pair.

    Rows: content, style. Columns: the image, its hard label map (legend of
    label names below), then the soft masks of the ``top_k`` labels with the
    largest soft area, as probability maps. Axes: 2 * (2 + min(top_k, C_soft)) + 1 colour bar.

    Raises
    ------
    PhotostyleError
        If ``top_k`` is not an integer >= 1.
    """
    labels = top_labels_by_area(soft, min(check_int("top_k", top_k, low=1), soft.num_labels))
    colours = label_colours(hard.labels)
    ncols = 2 + len(labels)
    fig = Figure(figsize=(2.4 * ncols + 0.8, 5.6), layout="constrained")
    axes = fig.subplots(2, ncols, squeeze=False)
    _show(axes[0, 0], as_image_array("content_image", content_image), "content")
    _show(axes[1, 0], as_image_array("style_image", style_image), "style")
    _show(axes[0, 1], label_map_rgb(hard.content, hard.labels, colours), "hard (content)")
    _show(axes[1, 1], label_map_rgb(hard.style, hard.labels, colours), "hard (style)")
    im = None
    for j, lab in enumerate(labels):
        c = soft.labels.index(lab)
        im = _show(axes[0, 2 + j], soft.content[c].detach().cpu().float().numpy(), f"soft: {lab}",
                   cmap=PROBABILITY_CMAP, vmin=0.0, vmax=1.0)
        _show(axes[1, 2 + j], soft.style[c].detach().cpu().float().numpy(), f"soft: {lab}",
              cmap=PROBABILITY_CMAP, vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=axes[:, 2:].ravel().tolist(), shrink=0.8, label="probability")
    _legend(fig, hard.labels, colours)
    _titled(fig, title, weights_note)
    return fig


#: Narrowest per-label figure (inches): at 100 dpi, 640 px, room for a title and a warning.
MIN_FIGURE_WIDTH = 6.4


def wrap_title(text: str | None, width_inches: float, *, font_pt: float = 12.0) -> str | None:
    """``text`` wrapped (each line separately) to fit ``width_inches`` at ``font_pt`` points.

    A character of matplotlib's default sans-serif is about 0.6 em wide, so a
    line holds ``72 * width / (0.6 * font_pt)`` characters (bold: a little wider; 0.65 em).
    """
    import textwrap

    if not text:
        return text
    chars = max(12, int(72.0 * width_inches / (0.65 * font_pt)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def per_label_figure(masks: SemanticMasks, *, labels: Sequence[str] | None = None, max_labels: int = 6,
                     title: str | None = None, weights_note: str | None = None) -> Figure:
    """The paper's Figure 8 view: for each label, its content mask above its style mask.

    Parameters
    ----------
    masks
        any SemanticMasks.
    labels
        which labels to show, in this order (default: the
        ``max_labels`` largest by area, :func:`top_labels_by_area`).
    max_labels
        cap when ``labels`` is None.


    One column per label, titled with its name; 2 axes per label and a colour
    bar. Values are drawn in :data:`PROBABILITY_CMAP` on [0, 1] (the colour
    map of the saved panels, ``figures.probability_image``). The figure is at
    least :data:`MIN_FIGURE_WIDTH` inches wide and its title and note are
    wrapped to that width, so one or two labels still show them whole.

    Raises
    ------
    PhotostyleError
        If ``max_labels`` is not an integer >= 1, ``labels`` is empty or names labels not in the masks.
    """
    if labels is None:
        labels = top_labels_by_area(masks, min(check_int("max_labels", max_labels, low=1), masks.num_labels))
    labels = tuple(labels)
    if not labels:
        raise PhotostyleError("labels is empty; name at least one label or pass labels=None")
    unknown = [lab for lab in labels if lab not in masks.labels]
    if unknown:
        raise PhotostyleError(f"labels {', '.join(map(repr, unknown))} are not in the masks; "
                              f"choose among {', '.join(masks.labels)}")
    width = max(2.2 * len(labels) + 1.2, MIN_FIGURE_WIDTH)
    fig = Figure(figsize=(width, 4.8), layout="constrained")
    axes = fig.subplots(2, len(labels), squeeze=False)
    im = None
    for j, lab in enumerate(labels):
        c = masks.labels.index(lab)
        im = _show(axes[0, j], masks.content[c].detach().cpu().float().numpy(), lab, cmap=PROBABILITY_CMAP,
                   vmin=0.0, vmax=1.0)
        _show(axes[1, j], masks.style[c].detach().cpu().float().numpy(), None, cmap=PROBABILITY_CMAP,
              vmin=0.0, vmax=1.0)
    axes[0, 0].set_ylabel("content")
    axes[1, 0].set_ylabel("style")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=f"{masks.kind} mask value")
    _titled(fig, wrap_title(title, width), wrap_title(weights_note, width))
    return fig


def _check_image_pair(content_image: Any, style_image: Any) -> bool:
    if (content_image is None) != (style_image is None):
        raise PhotostyleError("give both content_image and style_image, or neither")
    return content_image is not None
